"""Evaluate candidates into a `Curve`: every predicted point, feasible or not (with the reason)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd
import torch

from simulator.acceptance import acceptance_length, al_table
from simulator.scenario import Scenario
from simulator.search import Candidate
from simulator.serving import closed_loop


@dataclass
class Curve:
    """Columns of predicted points (one entry per deployment x concurrency x draft length)."""

    side: list[str] = field(default_factory=list)
    engine: list[str] = field(default_factory=list)
    deployment: list[str] = field(default_factory=list)
    tp: list[int] = field(default_factory=list)
    ep: list[int] = field(default_factory=list)
    dp_attention: list[bool] = field(default_factory=list)
    gpus: list[int] = field(default_factory=list)
    concurrency: list[int] = field(default_factory=list)
    draft_tokens: list[int] = field(default_factory=list)
    acceptance_length: list[float] = field(default_factory=list)
    step_ms: list[float] = field(default_factory=list)
    prefill_stall_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    tpot_ms: list[float] = field(default_factory=list)
    interactivity: list[float] = field(default_factory=list)
    tput_per_gpu: list[float] = field(default_factory=list)
    output_tput_per_gpu: list[float] = field(default_factory=list)
    feasible: list[bool] = field(default_factory=list)
    infeasible_reason: list[str] = field(default_factory=list)

    def extend(self, other: Curve) -> None:
        for name, values in asdict(other).items():
            getattr(self, name).extend(values)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(asdict(self))


def evaluate_candidate(sc: Scenario, cand: Candidate, acceptance_scale: float | None = None) -> Curve:
    """All (concurrency, k) points of one candidate, vectorized over the grid."""
    dep = cand.deployment
    c = torch.tensor(cand.concurrencies, dtype=torch.float64)
    k = torch.tensor(cand.draft_tokens, dtype=torch.float64)
    cc, kk = (x.reshape(-1) for x in torch.meshgrid(c, k, indexing="ij"))
    table = al_table(sc.acceptance, acceptance_scale) if sc.acceptance else torch.ones(1, dtype=torch.float64)
    al = acceptance_length(table, kk.long())
    m = closed_loop(sc.tables(dep), sc.knob_tensors, sc.workload, sc.serving, cc, kk, al, dep.gpus)
    mem = sc.memory(dep, cand.side == "mtp")
    limit = sc.serving.max_running_requests
    conc = [int(x) for x in cc.tolist()]
    reasons = [mem.reason(x) or (f"concurrency {x} exceeds max_running_requests {limit}" if x > limit else "")
               for x in conc]
    ok = torch.tensor([not r for r in reasons], dtype=torch.bool)
    n = len(conc)

    def masked(t: torch.Tensor, scale: float = 1.0) -> list[float]:
        return torch.where(ok, t.expand(n) * scale, torch.tensor(float("nan"), dtype=t.dtype)).tolist()

    return Curve(
        side=[cand.side] * n, engine=[cand.engine] * n, deployment=[dep.label] * n, tp=[dep.tp] * n,
        ep=[dep.ep] * n, dp_attention=[dep.dp_attention] * n, gpus=[dep.gpus] * n, concurrency=conc,
        draft_tokens=[int(x) for x in kk.tolist()], acceptance_length=al.expand(n).tolist(),
        step_ms=masked(m.step_s, 1e3), prefill_stall_ms=masked(m.stall_s, 1e3), ttft_ms=masked(m.ttft_s, 1e3),
        tpot_ms=masked(m.tpot_s, 1e3), interactivity=masked(m.interactivity),
        tput_per_gpu=masked(m.tput_per_gpu), output_tput_per_gpu=masked(m.output_tput_per_gpu),
        feasible=ok.tolist(), infeasible_reason=reasons,
    )


def evaluate(sc: Scenario, cands: list[Candidate], acceptance_scale: float | None = None) -> Curve:
    curve = Curve()
    for cand in cands:
        curve.extend(evaluate_candidate(sc, cand, acceptance_scale))
    return curve
