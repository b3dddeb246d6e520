"""Batched lowering: a list of cases (scenario x deployment x with/without draft x engine limits) as flat
padded float64 tensors, the one representation every task evaluates (`simulator.evaluate.evaluate_points`, the
calibration, and the sweep kernels in `kernels/`).

A deployment is one worker (a single-node `DeploymentSpec`, or a `WorkerSpec` that spans an NVL72 domain or
nodes: its all-to-all, EPLB slots and NIC are folded into its tables by `topology.worker_model`) or a
`DisaggregatedSpec` (x prefill + y decode workers: tables of both, the pool sizes and the KV transfer as
scalars). Concurrency is per deployment: for replicas of a worker, per replica. Every number comes from the
simulator (`topology.worker_model`, `worker_memory`, `topology.kv_transfer`, `al_table`); this module only
stacks them. Operators are padded with zero rows (`peak_flops` = 1 so that 0 / peak stays 0) and a case
without a draft gets an all-zero draft table whose pass costs exactly 0 s.

What the engine admits depends on the draft length k (k lookahead KV slots per request), so it is a table
per case and k, `max_batch[case, k]`, beside the AL table `al[case, k]`: the requests that run at once (KV
memory with k lookahead slots, the case's `max_running_requests`), 0 where the deployment holds no request
(a disaggregated case's prefill worker included) and beyond the case's largest k; `reasons[case][k]` says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

from simulator.acceptance import al_table, raw_al_table
from simulator.knobs import KNOB_NAMES, KnobTensors
from simulator.lowering import OP_FIELDS, PASS_FIELDS, PassTable
from simulator.memory import MemoryCheck
from simulator.scenario import Scenario
from simulator.specs import DeploymentSpec, EngineLimits
from simulator.specs.topology import DisaggregatedSpec, WorkerSpec
from simulator.specs.vocabulary import CaseKey, engine_key
from simulator.topology import WorkerModel, as_worker, kv_transfer, worker_memory, worker_model

SCALAR_FIELDS = ("input_tokens", "output_tokens", "prefill_chunk_tokens", "chunked_prefill", "gpus",
                 "attention_dp", "max_draft_tokens", "acceptance_scale", "acceptance_pinned", "max_step_tokens",
                 "graph_max_batch", "graph_counts_tokens", "speculation_overlapped",
                 # disaggregated deployments (0 / neutral for one worker): pools, prefill worker, KV transfer
                 "disaggregated", "decode_workers", "prefill_workers", "prefill_attention_dp",
                 "kv_bytes", "kv_link_bytes_s")
# the tables of a case, in the order of CaseBatch.ops / .passes: the (decode) worker's target and draft, a
# disaggregated prefill worker's
TABLES = ("target", "draft", "prefill_target", "prefill_draft")
# pad values that make a padded operator / a missing draft pass cost exactly 0 s (no 0 / 0)
OP_PAD = {f: (1.0 if f == "peak_flops" else 0.0) for f in OP_FIELDS}
PASS_PAD = {"attention_dp": 1.0, "link_bytes_s": 1.0, "hbm_bytes_s": 1.0}


GroupKey = tuple[str, ...]  # a CaseKey, or a caller's own tuple (e.g. (gpu, precision))


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@dataclass(frozen=True)
class Case:
    """One deployment of a scenario, with or without its draft module, under one set of engine limits."""

    scenario: Scenario
    deployment: DeploymentSpec | DisaggregatedSpec  # one worker (WorkerSpec or single-node), or xPyD
    with_draft: bool = True
    group: GroupKey | None = None  # frontier group (default: the case's CaseKey)
    limits: EngineLimits = EngineLimits()  # the engine's limits (default: none beyond memory)
    # (k, AL) a synthetic-acceptance recipe pins: the case's AL at k is that value, not the measured AL(k) times
    # the acceptance scale (the lowering stores it with scale 1, so no fitted or trial scale moves it)
    pinned_al: tuple[int, float] | None = None
    engine: str = "any"  # the serving engine it runs on (vocabulary.ENGINES or an alias; "any": the reference)

    def __post_init__(self) -> None:
        if self.pinned_al is not None:
            k, al = self.pinned_al
            if not self.has_draft or not 1 <= k <= self.max_draft_tokens or not 1.0 <= al <= k + 1:
                raise ValueError(f"pinned_al {self.pinned_al}: needs a case with its draft, 1 <= k <= "
                                 f"{self.max_draft_tokens} and 1 <= AL <= k + 1")
        engine_key(self.engine)  # an unknown engine is an error here, not a silent reference price

    @property
    def knob_tensors(self) -> KnobTensors:
        """The knobs its steps are priced with: the scenario's, for its engine."""
        return self.scenario.engine_knob_tensors[engine_key(self.engine)]

    @property
    def has_draft(self) -> bool:
        return self.with_draft and self.scenario.has_draft

    @property
    def disaggregated(self) -> bool:
        return isinstance(self.deployment, DisaggregatedSpec)

    @property
    def max_draft_tokens(self) -> int:
        """The largest k the case can run (0 without a draft)."""
        acc = self.scenario.acceptance
        return acc.max_draft_tokens if self.has_draft and acc is not None else 0

    @property
    def worker(self) -> WorkerSpec:
        """The worker whose steps decode: the deployment itself, or a disaggregated one's decode worker."""
        d = self.deployment
        if isinstance(d, DisaggregatedSpec):
            return d.decode
        return as_worker(d)

    @property
    def group_key(self) -> GroupKey:
        s = self.scenario
        return self.group or CaseKey(s.model.name, s.hardware.name, s.precision, s.workload.name)


@dataclass(frozen=True)
class CaseBatch:
    """Per-case tensors (float64 unless noted). Tables of `ops`/`passes` as `TABLES` (a one-worker case's
    prefill tables are zero)."""

    ops: torch.Tensor  # [n_cases, len(TABLES), len(OP_FIELDS), n_ops]
    passes: torch.Tensor  # [n_cases, len(TABLES), len(PASS_FIELDS)]
    knobs: torch.Tensor  # [n_cases, len(KNOB_NAMES)]
    scalars: torch.Tensor  # [n_cases, len(SCALAR_FIELDS)]
    al: torch.Tensor  # [n_cases, K + 1] measured AL(k) (acceptance.raw_al_table; a pinned case's: `_al_row`),
    # padded with 1 beyond each K
    max_batch: torch.Tensor  # [n_cases, K + 1] requests admitted at once at k (0: holds none, or k > K)
    group: torch.Tensor  # [n_cases] int64 index into groups
    groups: tuple[GroupKey, ...]
    reasons: tuple[tuple[str, ...], ...]  # [case][k]: why the case holds no request at k ("" when it does)

    @property
    def n_cases(self) -> int:
        return self.ops.shape[0]

    @property
    def n_ops(self) -> int:
        return self.ops.shape[-1]

    def scalar(self, name: str) -> torch.Tensor:
        return self.scalars[:, SCALAR_FIELDS.index(name)]

    def table(self, side: int, sel: Callable[[torch.Tensor], torch.Tensor] = _identity) -> PassTable:
        """The padded PassTable `TABLES[side]`; `sel` maps each [n_cases, ...] tensor."""
        ops = {f: sel(self.ops[:, side, i]) for i, f in enumerate(OP_FIELDS)}
        passes = {f: sel(self.passes[:, side, i]) for i, f in enumerate(PASS_FIELDS)}
        return PassTable(names=(), **ops, **passes)

    def knob_tensors(self, sel: Callable[[torch.Tensor], torch.Tensor] = _identity) -> KnobTensors:
        return KnobTensors(**{n: sel(self.knobs[:, i]) for i, n in enumerate(KNOB_NAMES)})

    def to(self, device: torch.device | str) -> CaseBatch:
        return CaseBatch(**{f.name: (v.to(device) if isinstance(v := getattr(self, f.name), torch.Tensor) else v)
                            for f in fields(self)})


def _table_rows(t: PassTable | None, n_ops: int) -> tuple[torch.Tensor, torch.Tensor]:
    ops = torch.tensor([OP_PAD[f] for f in OP_FIELDS], dtype=torch.float64)[:, None].repeat(1, n_ops)
    if t is None:
        return ops, torch.tensor([PASS_PAD.get(f, 0.0) for f in PASS_FIELDS], dtype=torch.float64)
    n = len(t.names)
    ops[:, :n] = torch.stack([getattr(t, f) for f in OP_FIELDS])
    return ops, torch.stack([getattr(t, f) for f in PASS_FIELDS])


def inf_if_none(x: int | None) -> float:
    return float("inf") if x is None else float(x)


class _Lowering:
    """What cases of one lowering share, computed once: worker models and memory checks by (scenario,
    worker[, draft, k]); xPyD shapes and replicas share their workers."""

    def __init__(self) -> None:
        self._workers: dict[tuple[int, WorkerSpec], WorkerModel] = {}
        self._memory: dict[tuple[int, WorkerSpec, bool, int], MemoryCheck] = {}
        self._keep: list[Scenario] = []  # the scenarios keyed by id() stay alive while this memo does

    def worker(self, sc: Scenario, w: WorkerSpec) -> WorkerModel:
        key = (id(sc), w)
        if key not in self._workers:
            self._keep.append(sc)
            self._workers[key] = worker_model(sc, w)
        return self._workers[key]

    def memory(self, sc: Scenario, w: WorkerSpec, draft: bool, k: int) -> MemoryCheck:
        key = (id(sc), w, draft, k)
        if key not in self._memory:
            self._keep.append(sc)
            self._memory[key] = worker_memory(sc, w, draft, k)
        return self._memory[key]

    def tables(self, c: Case) -> tuple[PassTable | None, ...]:
        """The case's tables by TABLES (None: a zero table), all-to-all / EPLB / NIC folded in."""
        d = self.worker(c.scenario, c.worker).tables
        tables: list[PassTable | None] = [d.target, d.draft if c.has_draft else None, None, None]
        if isinstance(c.deployment, DisaggregatedSpec):
            p = self.worker(c.scenario, c.deployment.prefill).tables
            tables[2:] = [p.target, p.draft if c.has_draft else None]
        return tuple(tables)

    def admission(self, c: Case, k: int) -> tuple[float, str]:
        """(requests the case admits at once at draft length k, why it holds none: "" when it holds one)."""
        mem = self.memory(c.scenario, c.worker, c.has_draft, k)
        why = mem.reason(1)
        if not why and isinstance(c.deployment, DisaggregatedSpec):
            pre = self.memory(c.scenario, c.deployment.prefill, c.has_draft, k).reason(1)
            why = f"prefill worker: {pre}" if pre else ""
        running = min(float(mem.max_concurrency), inf_if_none(c.limits.max_running_requests))
        return (0.0 if why else running), why

    def scalar_row(self, c: Case) -> torch.Tensor:
        """The case's SCALAR_FIELDS, by name."""
        sc, dep, wl, sv = c.scenario, c.deployment, c.scenario.workload, c.scenario.serving
        row = {
            "input_tokens": wl.mean_input_tokens, "output_tokens": wl.mean_output_tokens,
            "prefill_chunk_tokens": sv.prefill_chunk_tokens, "chunked_prefill": sv.prefill_mode == "chunked",
            "gpus": dep.gpus, "attention_dp": c.worker.attention_dp, "max_draft_tokens": c.max_draft_tokens,
            "acceptance_scale": sc.acceptance.scale if c.has_draft and c.pinned_al is None else 1.0,
            "acceptance_pinned": c.pinned_al is not None,
            "max_step_tokens": inf_if_none(c.limits.max_num_tokens),
            "graph_max_batch": inf_if_none(c.limits.cuda_graph_max_batch),
            "graph_counts_tokens": c.limits.cuda_graph_counts_tokens,
            "speculation_overlapped": c.limits.speculation_overlapped,
            "disaggregated": 0.0, "decode_workers": 1.0, "prefill_workers": 0.0, "prefill_attention_dp": 1.0,
            "kv_bytes": 0.0, "kv_link_bytes_s": 1.0,
        }
        if isinstance(dep, DisaggregatedSpec):
            kv = kv_transfer(sc, dep.prefill, wl.mean_input_tokens, c.has_draft)
            row.update(disaggregated=1.0, decode_workers=dep.decode_workers, prefill_workers=dep.prefill_workers,
                       prefill_attention_dp=dep.prefill.attention_dp, kv_bytes=kv.bytes_per_request,
                       kv_link_bytes_s=kv.link_bytes_s)
        return torch.tensor([float(row[f]) for f in SCALAR_FIELDS], dtype=torch.float64)


def _al_row(c: Case) -> torch.Tensor:
    """The case's AL for k = 0..K: the measured table (its scale applied later, per point), or for a pinned
    case final values (its scale is 1): the pinned AL at its k, the scenario's scaled AL(k) at any other k."""
    if not c.has_draft:
        return torch.ones(1, dtype=torch.float64)
    if c.pinned_al is None:
        return raw_al_table(c.scenario.acceptance)
    row = al_table(c.scenario.acceptance).clone()
    k, al = c.pinned_al
    row[k] = al
    return row


def lower_cases(cases: list[Case] | tuple[Case, ...]) -> CaseBatch:
    """Stack the cases' step tables, knobs, workload, admission per k and AL table into a `CaseBatch`."""
    if not cases:
        raise ValueError("lower_cases: no cases given")
    low = _Lowering()
    tables = [low.tables(c) for c in cases]
    n_ops = max(len(t.names) for ts in tables for t in ts if t is not None)
    als = [_al_row(c) for c in cases]
    k1 = max(a.numel() for a in als)
    admitted = [[low.admission(c, k) if k < a.numel() else (0.0, f"k = {k} beyond the case's largest draft "
                                                                 f"length {a.numel() - 1}") for k in range(k1)]
                for c, a in zip(cases, als, strict=True)]
    groups = tuple(dict.fromkeys(c.group_key for c in cases))
    ops, passes = [], []
    for ts in tables:
        rows = [_table_rows(t, n_ops) for t in ts]
        ops.append(torch.stack([o for o, _ in rows]))
        passes.append(torch.stack([p for _, p in rows]))
    return CaseBatch(
        ops=torch.stack(ops), passes=torch.stack(passes),
        knobs=torch.stack([torch.stack([getattr(c.knob_tensors, n) for n in KNOB_NAMES]) for c in cases]),
        scalars=torch.stack([low.scalar_row(c) for c in cases]),
        al=torch.stack([torch.cat([a, a.new_ones(k1 - a.numel())]) for a in als]),
        max_batch=torch.tensor([[m for m, _ in row] for row in admitted], dtype=torch.float64),
        group=torch.tensor([groups.index(c.group_key) for c in cases]),
        groups=groups, reasons=tuple(tuple(why for _, why in row) for row in admitted))
