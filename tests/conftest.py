from __future__ import annotations

import os

# Triton kernels run under the interpreter on the CPU in tests (no GPU in CI); set before triton loads.
os.environ.setdefault("TRITON_INTERPRET", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

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


def point(sc: Scenario, deployment, concurrency: float, draft_tokens: int = 0, limits=None):  # noqa: ANN001, ANN201
    """One point through the one evaluation path (evaluate.evaluate_points): its metrics as floats, plus
    `feasible`, the scenario's AL at k, and `decode_batch` (requests decoding at once, all decode workers)."""
    from types import SimpleNamespace

    from simulator.evaluate import candidate_points, evaluate_points
    from simulator.search import Candidate
    from simulator.specs import EngineLimits

    cand = Candidate("mtp" if draft_tokens else "off", deployment, (int(concurrency),), (draft_tokens,),
                     limits=(limits or EngineLimits(),))
    pts = candidate_points([(sc, cand)])
    ev = evaluate_points(pts.batch, pts.case, pts.concurrency, pts.draft_tokens)
    m = ev.metrics
    out = {f: (bool(v.reshape(-1)[0]) if v.dtype == torch.bool else float(v.reshape(-1)[0]))
           for f in m.__dataclass_fields__ if isinstance(v := getattr(m, f), torch.Tensor)}
    workers = getattr(deployment, "decode_workers", 1)
    return SimpleNamespace(**out, feasible=bool(ev.feasible[0]), al=float(ev.al.reshape(-1)[0]),
                           decode_batch=out["running_batch"] * workers)
