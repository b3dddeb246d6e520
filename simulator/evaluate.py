"""The one evaluation path: points of a lowered `CaseBatch` through `serving.serve`, and candidates as points.

`evaluate_points` is what every task prices a point with (compare, validate, the calibration and its bands,
plan, advise, sweep; the sweep kernels in `kernels/` evaluate the same function in bulk and are checked
against it): it gathers each point's tables, knobs, AL and admission (at its own k) from the batch, runs the
aggregated or the disaggregated loop by the case's mask, and says which points are feasible.
`candidate_points` turns search candidates (a deployment, its concurrencies, draft lengths and engine
limits per concurrency) into cases and points; `evaluate` gives a `Curve` of them for the tables and plots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import pandas as pd
import torch

from simulator.acceptance import scaled_al
from simulator.batched import Case, CaseBatch, GroupKey, lower_cases
from simulator.breakdown import step_breakdown
from simulator.knobs import KnobTensors
from simulator.scenario import Scenario
from simulator.search import Candidate
from simulator.serving import DisaggregatedMetrics, LoopInputs, RowSplit, StepLimits, serve, split_rows
from simulator.specs.topology import DisaggregatedSpec
from simulator.speculative import StepTables


@dataclass(frozen=True)
class Evaluation:
    """Metrics of evaluated points (`serving.serve`), their AL, and which are feasible (NaN-free either way:
    callers mask with `feasible`)."""

    metrics: DisaggregatedMetrics
    al: torch.Tensor
    feasible: torch.Tensor  # bool: C >= 1, 0 <= k <= the case's K, and the deployment holds a request at k


@dataclass(frozen=True)
class GatheredPoints:
    """Rows of points with everything but the knobs and the acceptance scale read from the batch (`gather`):
    what `price` needs to evaluate them at any knobs."""

    rows: RowSplit
    knobs: KnobTensors  # the cases' own
    raw_al: torch.Tensor  # measured AL at each point's k (a pinned case's: its pinned AL)
    acceptance_scale: torch.Tensor  # the cases' own (1 for a pinned case), times the points' multiplier
    acceptance: torch.Tensor  # the points' multiplier of the acceptance scale
    pinned: torch.Tensor  # bool: the case's AL is pinned by its recipe (no fitted or trial scale applies)
    draft_tokens: torch.Tensor
    feasible: torch.Tensor


def gather(batch: CaseBatch, case: torch.Tensor, concurrency: torch.Tensor, draft_tokens: torch.Tensor,
           acceptance: torch.Tensor | float = 1.0) -> GatheredPoints:
    """Rows of points: `case` [R] (int64 index into the batch), and `concurrency`, `draft_tokens`, `acceptance`
    (a multiplier of each case's acceptance scale) broadcasting against [R, ...] (e.g. [R, 1, 1] against
    [1, n_k, n_a] for a grid). Each point's admission and AL are read at its own k."""
    f64 = torch.float64
    c, k = torch.as_tensor(concurrency, dtype=f64), torch.as_tensor(draft_tokens, dtype=f64)
    a = torch.as_tensor(acceptance, dtype=f64)
    trailing = max(c.ndim, k.ndim, a.ndim, 1) - 1
    n = case.numel()

    def sel(x: torch.Tensor) -> torch.Tensor:  # the rows' per-case values, laid out against the points
        return x[case].view(n, *(1,) * trailing, *x.shape[1:])

    def s(name: str) -> torch.Tensor:
        return sel(batch.scalar(name))

    shape = torch.broadcast_shapes((n, *(1,) * trailing), c.shape, k.shape, a.shape)
    k_idx = k.long().clamp(0, batch.al.shape[1] - 1).expand(shape)

    def per_k(table: torch.Tensor) -> torch.Tensor:  # a [n_cases, K + 1] table at each point's k
        return torch.take_along_dim(sel(table), k_idx[..., None], -1)[..., 0]

    max_batch = per_k(batch.max_batch)
    x = LoopInputs(
        StepTables(batch.table(0, sel), batch.table(1, sel)), StepTables(batch.table(2, sel), batch.table(3, sel)),
        s("input_tokens"), s("output_tokens"), s("chunked_prefill"), s("prefill_chunk_tokens"),
        s("prefill_attention_dp"), s("prefill_workers"), s("decode_workers"), s("kv_bytes"), s("kv_link_bytes_s"),
        c, k, s("gpus"), StepLimits(max_batch, s("max_step_tokens"), s("graph_max_batch"), s("graph_counts_tokens"),
                                       s("speculation_overlapped")),
        batch.scalar("disaggregated")[case] > 0.5)
    feasible = (c >= 1.0) & (max_batch >= 1.0) & (k >= 0.0) & (k <= s("max_draft_tokens"))
    return GatheredPoints(split_rows(x), batch.knob_tensors(sel), per_k(batch.al), s("acceptance_scale") * a, a,
                          s("acceptance_pinned") > 0.5, k, feasible)


def price(points: GatheredPoints, knobs: KnobTensors | None = None,
          acceptance_scale: torch.Tensor | None = None) -> Evaluation:
    """Evaluate gathered points (`serving.serve`) at the cases' knobs or at `knobs` (per row: the
    calibration's trial values), and at the cases' acceptance scales or at `acceptance_scale` (absolute, per
    row; the points' multiplier still applies). A pinned case keeps scale 1 (times the multiplier) whatever
    `acceptance_scale` says: its recipe fixed the AL."""
    scale = points.acceptance_scale if acceptance_scale is None else torch.where(
        points.pinned, points.acceptance, acceptance_scale * points.acceptance)
    al = scaled_al(points.raw_al, scale, points.draft_tokens)
    m = serve(points.rows, points.knobs if knobs is None else knobs, al)
    return Evaluation(m, al, points.feasible)


def evaluate_points(batch: CaseBatch, case: torch.Tensor, concurrency: torch.Tensor, draft_tokens: torch.Tensor,
                    acceptance: torch.Tensor | float = 1.0, knobs: KnobTensors | None = None,
                    acceptance_scale: torch.Tensor | None = None) -> Evaluation:
    """The one evaluation path: `gather` the points, then `price` them."""
    return price(gather(batch, case, concurrency, draft_tokens, acceptance), knobs, acceptance_scale)


@dataclass(frozen=True)
class CandidatePoints:
    """Candidates lowered: one batch of their cases (a case per deployment, side and engine limits) and one
    point per (candidate, concurrency, draft length), in candidate order, concurrency-major."""

    batch: CaseBatch
    cases: tuple[Case, ...]
    candidate: torch.Tensor  # [n] index into the candidates
    case: torch.Tensor  # [n] index into cases
    concurrency: torch.Tensor  # [n] float64
    draft_tokens: torch.Tensor  # [n] float64


def candidate_case(sc: Scenario, cand: Candidate, index: int = 0, group: GroupKey | None = None) -> Case:
    """The case a candidate's `index`-th concurrency runs as: its deployment and side, the limits there, the
    AL its recipe pins (if any), its engine and the cache dtypes it ran with (Candidate.run_scenario)."""
    return Case(cand.run_scenario(sc), cand.deployment, with_draft=cand.side == "mtp", group=group,
                limits=cand.limits_at(index), pinned_al=cand.pinned, engine=cand.engine)


def candidate_cases(pairs: Sequence[tuple[Scenario, Candidate]], groups: Sequence[GroupKey] | None = None
                    ) -> tuple[list[Case], list[tuple[int, int, int, int]]]:
    """The cases of (scenario, candidate) pairs and their points as (candidate, case, C, k): one case per
    distinct (scenario, deployment, side, engine limits, pinned AL, engine, group), so each point runs under its
    own limits, acceptance and engine. `groups`: each pair's frontier group (default: the case's CaseKey)."""
    cases: list[Case] = []
    index: dict[tuple, int] = {}
    points: list[tuple[int, int, int, int]] = []
    for j, (sc, cand) in enumerate(pairs):
        for ci, conc in enumerate(cand.concurrencies):
            group = groups[j] if groups is not None else None
            key = (id(sc), cand.deployment, cand.side, cand.limits_at(ci), cand.pinned, cand.engine, group)
            if key not in index:
                index[key] = len(cases)
                cases.append(candidate_case(sc, cand, ci, group))
            points += [(j, index[key], conc, k) for k in cand.draft_tokens]
    return cases, points


def candidate_points(pairs: Sequence[tuple[Scenario, Candidate]]) -> CandidatePoints:
    cases, points = candidate_cases(pairs)
    cols = list(zip(*points, strict=True))
    return CandidatePoints(lower_cases(cases), tuple(cases), torch.tensor(cols[0]), torch.tensor(cols[1]),
                           torch.tensor(cols[2], dtype=torch.float64), torch.tensor(cols[3], dtype=torch.float64))


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
    acceptance_pinned: list[bool] = field(default_factory=list)  # the recipe pinned the AL (synthetic acceptance)
    kv_cache_dtype: list[str] = field(default_factory=list)  # the KV cache the deployment stores (its script's)
    state_dtype: list[str] = field(default_factory=list)  # its linear-attention state ("" without such layers)
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

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(asdict(self))


def evaluate(sc: Scenario, cands: list[Candidate], acceptance_scale: float | None = None) -> Curve:
    """Every (concurrency, k) point of every candidate in one batched evaluation. Concurrency beyond what the
    engine admits queues (TTFT grows, throughput saturates); only a deployment holding no request is
    infeasible, with the reason. `acceptance_scale`: an absolute scale instead of the scenario's."""
    if not cands:
        return Curve()
    pts = candidate_points([(sc, c) for c in cands])
    scale = None if acceptance_scale is None else torch.full((pts.case.numel(),), float(acceptance_scale),
                                                             dtype=torch.float64)
    ev = evaluate_points(pts.batch, pts.case, pts.concurrency, pts.draft_tokens, acceptance_scale=scale)
    m, ok, n = ev.metrics, ev.feasible, pts.case.numel()
    reasons = [pts.batch.reasons[i][k] for i, k in zip(pts.case.tolist(), pts.draft_tokens.long().tolist(),
                                                        strict=True)]

    def masked(t: torch.Tensor, scale: float = 1.0) -> list[float]:
        return torch.where(ok, t.expand(n) * scale, torch.tensor(float("nan"), dtype=t.dtype)).tolist()

    deps = [cands[j].deployment for j in pts.candidate.tolist()]
    leads = [d.decode if isinstance(d, DisaggregatedSpec) else d for d in deps]
    return Curve(
        side=[cands[j].side for j in pts.candidate.tolist()], engine=[cands[j].engine for j in pts.candidate.tolist()],
        deployment=[d.label for d in deps], tp=[w.tp for w in leads], ep=[w.ep for w in leads],
        dp_attention=[w.dp_attention for w in leads], gpus=[d.gpus for d in deps],
        concurrency=[int(x) for x in pts.concurrency.tolist()], running_batch=masked(m.running_batch),
        draft_tokens=[int(x) for x in pts.draft_tokens.tolist()], acceptance_length=ev.al.expand(n).tolist(),
        acceptance_pinned=[cands[j].pinned_al is not None for j in pts.candidate.tolist()],
        kv_cache_dtype=[pts.cases[i].scenario.kv_cache_dtype for i in pts.case.tolist()],
        state_dtype=[pts.cases[i].scenario.state_dtype if pts.cases[i].scenario.model.has_recurrent_state else ""
                     for i in pts.case.tolist()],
        step_ms=masked(m.step_s, 1e3), prefill_stall_ms=masked(m.stall_s, 1e3), ttft_ms=masked(m.ttft_s, 1e3),
        tpot_ms=masked(m.tpot_s, 1e3), interactivity=masked(m.interactivity),
        tput_per_gpu=masked(m.tput_per_gpu), output_tput_per_gpu=masked(m.output_tput_per_gpu),
        feasible=ok.tolist(), infeasible_reason=[r if not f else "" for r, f in zip(reasons, ok.tolist(), strict=True)],
        throttled_by_prefill=(m.throttled & ok).tolist(),
    )


def point_breakdown(sc: Scenario, cand: Candidate, concurrency: int, draft_tokens: int,
                    acceptance_scale: float | None = None) -> dict[str, float]:
    """Milliseconds of the effective step by term (breakdown.TERMS) at one of the candidate's points."""
    i = cand.concurrencies.index(concurrency)
    one = replace(cand, concurrencies=(concurrency,), draft_tokens=(draft_tokens,), limits=(cand.limits_at(i),))
    pts = candidate_points([(sc, one)])
    scale = None if acceptance_scale is None else torch.tensor([float(acceptance_scale)], dtype=torch.float64)
    m = evaluate_points(pts.batch, pts.case, pts.concurrency, pts.draft_tokens, acceptance_scale=scale).metrics
    return {term: float(v.reshape(-1)[0]) * 1e3 for term, v in step_breakdown(m).items()}
