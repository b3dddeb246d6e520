"""Evaluate candidates into a `Curve`: every predicted point, feasible or not (with the reason)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd
import torch

from simulator.acceptance import acceptance_length, al_table
from simulator.breakdown import step_breakdown
from simulator.scenario import Scenario
from simulator.search import Candidate
from simulator.serving import (
    DisaggregatedMetrics,
    ServingMetrics,
    StepLimits,
    closed_loop,
    disaggregated_loop_tokens,
)
from simulator.specs.topology import DisaggregatedSpec
from simulator.topology import as_worker, kv_transfer, worker_memory, worker_model


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
    running_batch: list[float] = field(default_factory=list)  # requests the engine runs at once (rest queued)
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
    # disaggregated points: the prefill pool caps the loop (requests queue for prefill, TTFT grows)
    throttled_by_prefill: list[bool] = field(default_factory=list)

    def extend(self, other: Curve) -> None:
        for name, values in asdict(other).items():
            getattr(self, name).extend(values)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(asdict(self))


def candidate_limits(sc: Scenario, cand: Candidate, conc: list[int], ks: list[int]) -> tuple[StepLimits, list[str]]:
    """Per grid point: the engine limits (the (decode) worker's memory with k lookahead slots per request, the
    candidate's EngineLimits at that concurrency) and the infeasibility reason ("" when at least one request
    fits, on the prefill worker too where there is one)."""
    index = {c: i for i, c in enumerate(cand.concurrencies)}
    dep, draft = cand.deployment, cand.side == "mtp"
    lead = dep.decode if isinstance(dep, DisaggregatedSpec) else as_worker(dep)
    mems = {k: worker_memory(sc, lead, draft, k) for k in set(ks)}
    pre = {k: worker_memory(sc, dep.prefill, draft, k).reason(1) for k in set(ks)} \
        if isinstance(dep, DisaggregatedSpec) else {}
    rows, reasons = [], []
    for c, k in zip(conc, ks, strict=True):
        mem, lim = mems[k], cand.limits_at(index[c])
        rows.append(StepLimits.of(lim, mem.max_concurrency))
        why = mem.reason(1) if not mem.feasible else ""
        reasons.append(why or (f"prefill worker: {pre[k]}" if pre.get(k) else ""))
    return StepLimits(*(torch.stack([getattr(r, f) for r in rows]) for f in StepLimits.__dataclass_fields__)), reasons


def candidate_metrics(sc: Scenario, cand: Candidate, acceptance_scale: float | None = None
                      ) -> tuple[list[int], list[int], torch.Tensor, ServingMetrics, list[str]]:
    """(concurrencies, draft lengths, AL, metrics, infeasibility reasons) over the candidate's (C, k) grid: the
    aggregated loop of one worker, or the disaggregated loop of an xPyD candidate."""
    c = torch.tensor(cand.concurrencies, dtype=torch.float64)
    k = torch.tensor(cand.draft_tokens, dtype=torch.float64)
    cc, kk = (x.reshape(-1) for x in torch.meshgrid(c, k, indexing="ij"))
    table = al_table(sc.acceptance, acceptance_scale) if sc.acceptance else torch.ones(1, dtype=torch.float64)
    al = acceptance_length(table, kk.long())
    conc = [int(x) for x in cc.tolist()]
    ks = [int(x) for x in kk.tolist()]
    limits, reasons = candidate_limits(sc, cand, conc, ks)
    dep = cand.deployment
    if isinstance(dep, DisaggregatedSpec):
        wl = sc.workload
        kv = kv_transfer(sc, dep.prefill, wl.mean_input_tokens, cand.side == "mtp")
        m: ServingMetrics = disaggregated_loop_tokens(
            worker_model(sc, dep.decode).tables, worker_model(sc, dep.prefill).tables, sc.knob_tensors,
            wl.mean_input_tokens, wl.mean_output_tokens, sc.serving.prefill_chunk_tokens, dep.prefill.attention_dp,
            dep.prefill_workers, dep.decode_workers, kv.bytes_per_request, kv.link_bytes_s, cc, kk, al, dep.gpus,
            limits)
    else:
        m = closed_loop(worker_model(sc, as_worker(dep)).tables, sc.knob_tensors, sc.workload, sc.serving, cc, kk,
                        al, dep.gpus, limits)
    return conc, ks, al, m, reasons


def point_breakdown(sc: Scenario, cand: Candidate, concurrency: int, draft_tokens: int,
                    acceptance_scale: float | None = None) -> dict[str, float]:
    """Milliseconds of the effective step by term (breakdown.TERMS) at one of the candidate's points."""
    i = cand.concurrencies.index(concurrency)
    one = Candidate(cand.side, cand.deployment, (concurrency,), (draft_tokens,), cand.engine, (cand.limits_at(i),))
    _, _, _, m, _ = candidate_metrics(sc, one, acceptance_scale)
    return {term: float(v.reshape(-1)[0]) * 1e3 for term, v in step_breakdown(m).items()}


def evaluate_candidate(sc: Scenario, cand: Candidate, acceptance_scale: float | None = None) -> Curve:
    """All (concurrency, k) points of one candidate, vectorized over the grid. Concurrency beyond what the
    engine admits queues (TTFT grows, throughput saturates); only a deployment holding no request is infeasible."""
    dep = cand.deployment
    conc, ks, al, m, reasons = candidate_metrics(sc, cand, acceptance_scale)
    ok = torch.tensor([not r for r in reasons], dtype=torch.bool)
    n = len(conc)

    def masked(t: torch.Tensor, scale: float = 1.0) -> list[float]:
        return torch.where(ok, t.expand(n) * scale, torch.tensor(float("nan"), dtype=t.dtype)).tolist()

    lead = dep.decode if isinstance(dep, DisaggregatedSpec) else dep
    return Curve(
        side=[cand.side] * n, engine=[cand.engine] * n, deployment=[dep.label] * n, tp=[lead.tp] * n,
        ep=[lead.ep] * n, dp_attention=[lead.dp_attention] * n, gpus=[dep.gpus] * n, concurrency=conc,
        running_batch=masked(m.running_batch), draft_tokens=ks, acceptance_length=al.expand(n).tolist(),
        step_ms=masked(m.step_s, 1e3), prefill_stall_ms=masked(m.stall_s, 1e3), ttft_ms=masked(m.ttft_s, 1e3),
        tpot_ms=masked(m.tpot_s, 1e3), interactivity=masked(m.interactivity),
        tput_per_gpu=masked(m.tput_per_gpu), output_tput_per_gpu=masked(m.output_tput_per_gpu),
        feasible=ok.tolist(), infeasible_reason=reasons,
        throttled_by_prefill=(m.throttled & ok).tolist() if isinstance(m, DisaggregatedMetrics) else [False] * n,
    )


def evaluate(sc: Scenario, cands: list[Candidate], acceptance_scale: float | None = None) -> Curve:
    curve = Curve()
    for cand in cands:
        curve.extend(evaluate_candidate(sc, cand, acceptance_scale))
    return curve
