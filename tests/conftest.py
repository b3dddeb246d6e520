from __future__ import annotations

from pathlib import Path

import pytest

from simulator.catalog import load_hardware, load_model, load_workload
from simulator.scenario import Scenario

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
