from __future__ import annotations

import os

# Triton kernels run under the interpreter on the CPU in tests (no GPU in CI); set before triton loads.
os.environ.setdefault("TRITON_INTERPRET", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from simulator.catalog import load_hardware, load_model, load_workload  # noqa: E402
from simulator.scenario import Scenario  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"


def scenario(model: str = "glm5", hardware: str = "b200", precision: str = "fp4", workload: str = "1k1k",
             **kw: object) -> Scenario:
    m, acc = load_model(model)
    return Scenario(model=m, hardware=load_hardware(hardware), precision=precision,
                    workload=load_workload(workload), acceptance=acc, **kw)


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (only present in the development workplace)")
    return SHARED
