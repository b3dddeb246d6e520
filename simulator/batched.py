"""Batched lowering: a list of cases (scenario x deployment x with/without draft) as flat padded float64 tensors.

A deployment is one worker (a single-node `DeploymentSpec`, or a `WorkerSpec` that spans an NVL72 domain or
nodes: its all-to-all, EPLB slots and NIC are folded into its tables by `topology.worker_model`) or a
`DisaggregatedSpec` (x prefill + y decode workers: tables of both, the pool sizes and the KV transfer as
scalars; `serving.disaggregated_loop_tokens` evaluates it). Concurrency is per deployment: for replicas of a
worker, per replica. Every number comes from the simulator (`topology.worker_model`, `worker_memory`,
`topology.kv_transfer`, `al_table`); this module only stacks them. Operators are padded with zero rows (`peak_flops` = 1 so that 0 / peak stays 0) and a case
without a draft gets an all-zero draft table whose pass costs exactly 0 s. Both the calibration and the
sweep kernels (`kernels/`) evaluate these batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

from simulator.acceptance import al_table
from simulator.knobs import KNOB_NAMES, KnobTensors
from simulator.lowering import OP_FIELDS, PASS_FIELDS, PassTable
from simulator.scenario import Scenario
from simulator.serving import StepLimits
from simulator.specs import DeploymentSpec, EngineLimits, ServingSpec, WorkloadSpec
from simulator.specs.topology import DisaggregatedSpec, WorkerSpec
from simulator.specs.vocabulary import CaseKey
from simulator.topology import as_worker, kv_transfer, worker_memory, worker_model

SCALAR_FIELDS = ("input_tokens", "output_tokens", "prefill_chunk_tokens", "chunked_prefill", "gpus",
                 "attention_dp", "max_concurrency", "max_draft_tokens", "acceptance_scale", "max_step_tokens",
                 "graph_max_batch", "graph_counts_tokens",
                 # disaggregated deployments (0 / neutral for one worker): pools, prefill worker, KV transfer
                 "disaggregated", "decode_workers", "prefill_workers", "prefill_attention_dp",
                 "prefill_max_concurrency", "kv_bytes", "kv_link_bytes_s")
# the tables of a case, by side: the (decode) worker's target and draft, a disaggregated prefill worker's
SIDES = ("target", "draft", "prefill_target", "prefill_draft")
# pad values that make a padded operator / a missing draft pass cost exactly 0 s (no 0 / 0)
OP_PAD = {f: (1.0 if f == "peak_flops" else 0.0) for f in OP_FIELDS}
PASS_PAD = {"attention_dp": 1.0, "link_bytes_s": 1.0, "hbm_bytes_s": 1.0}


GroupKey = tuple[str, ...]  # a CaseKey, or a caller's own tuple (e.g. (gpu, precision))


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@dataclass(frozen=True)
class Case:
    """One point of the outer sweep: a scenario deployed one way, with or without its draft module."""

    scenario: Scenario
    deployment: DeploymentSpec | DisaggregatedSpec  # one worker (WorkerSpec or single-node), or xPyD
    with_draft: bool = True
    group: GroupKey | None = None  # frontier group (default: the case's CaseKey)
    limits: EngineLimits = EngineLimits()  # the engine's limits (default: none beyond memory)

    @property
    def has_draft(self) -> bool:
        return self.with_draft and self.scenario.has_draft

    @property
    def disaggregated(self) -> bool:
        return isinstance(self.deployment, DisaggregatedSpec)

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
    """Per-case tensors (float64 unless noted). Sides of `ops`/`passes` as `SIDES` (a one-worker case's prefill
    sides are zero tables)."""

    ops: torch.Tensor  # [n_cases, len(SIDES), len(OP_FIELDS), n_ops]
    passes: torch.Tensor  # [n_cases, len(SIDES), len(PASS_FIELDS)]
    knobs: torch.Tensor  # [n_cases, len(KNOB_NAMES)]
    scalars: torch.Tensor  # [n_cases, len(SCALAR_FIELDS)]
    al: torch.Tensor  # [n_cases, K + 1] AL(k) at acceptance scale 1, padded with 1 beyond each case's K
    group: torch.Tensor  # [n_cases] int64 index into groups
    serving_group: torch.Tensor  # [n_cases] int64 index into servings
    groups: tuple[GroupKey, ...]
    servings: tuple[tuple[WorkloadSpec, ServingSpec], ...]  # what closed_loop reads, per serving group

    @property
    def n_cases(self) -> int:
        return self.ops.shape[0]

    @property
    def n_ops(self) -> int:
        return self.ops.shape[-1]

    def scalar(self, name: str) -> torch.Tensor:
        return self.scalars[:, SCALAR_FIELDS.index(name)]

    def table(self, side: int, sel: Callable[[torch.Tensor], torch.Tensor] = _identity) -> PassTable:
        """The padded PassTable of side `side` (index into SIDES); `sel` maps each [n_cases, ...] tensor."""
        ops = {f: sel(self.ops[:, side, i]) for i, f in enumerate(OP_FIELDS)}
        passes = {f: sel(self.passes[:, side, i]) for i, f in enumerate(PASS_FIELDS)}
        return PassTable(names=(), **ops, **passes)

    def step_limits(self, sel: Callable[[torch.Tensor], torch.Tensor] = _identity) -> StepLimits:
        """The cases' engine limits (max_concurrency: memory and max_running_requests) for closed_loop."""
        return StepLimits(max_batch=sel(self.scalar("max_concurrency")),
                          max_step_tokens=sel(self.scalar("max_step_tokens")),
                          graph_max_batch=sel(self.scalar("graph_max_batch")),
                          graph_counts_tokens=sel(self.scalar("graph_counts_tokens")))

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


def _worker_memory(c: Case, w: WorkerSpec, k_max: int) -> float:
    sc = c.scenario
    mem = worker_memory(sc, w, with_draft=c.has_draft, lookahead_tokens=k_max)
    return min(float(mem.max_concurrency), float(sc.serving.max_running_requests),
               inf_if_none(c.limits.max_running_requests))


def case_max_concurrency(c: Case, k_max: int) -> float:
    """Requests the case's (decode) worker runs at once: the KV cache (with k_max lookahead slots per
    request), serving.max_running_requests and the case's own max_running_requests."""
    return _worker_memory(c, c.worker, k_max)


def _scalar_row(c: Case, k_max: int) -> torch.Tensor:
    """The case's SCALAR_FIELDS, by name."""
    sc, dep, wl, sv = c.scenario, c.deployment, c.scenario.workload, c.scenario.serving
    row = {
        "input_tokens": wl.mean_input_tokens, "output_tokens": wl.mean_output_tokens,
        "prefill_chunk_tokens": sv.prefill_chunk_tokens, "chunked_prefill": sv.prefill_mode == "chunked",
        "gpus": dep.gpus, "attention_dp": c.worker.attention_dp,
        "max_concurrency": case_max_concurrency(c, k_max),
        "max_draft_tokens": k_max, "acceptance_scale": sc.acceptance.scale if c.has_draft else 1.0,
        "max_step_tokens": inf_if_none(c.limits.max_num_tokens),
        "graph_max_batch": inf_if_none(c.limits.cuda_graph_max_batch),
        "graph_counts_tokens": c.limits.cuda_graph_counts_tokens,
        "disaggregated": 0.0, "decode_workers": 1.0, "prefill_workers": 0.0, "prefill_attention_dp": 1.0,
        "prefill_max_concurrency": float("inf"), "kv_bytes": 0.0, "kv_link_bytes_s": 1.0,
    }
    if isinstance(dep, DisaggregatedSpec):
        kv = kv_transfer(sc, dep.prefill, wl.mean_input_tokens, c.has_draft)
        row.update(disaggregated=1.0, decode_workers=dep.decode_workers, prefill_workers=dep.prefill_workers,
                   prefill_attention_dp=dep.prefill.attention_dp, kv_bytes=kv.bytes_per_request,
                   kv_link_bytes_s=kv.link_bytes_s,
                   prefill_max_concurrency=_worker_memory(c, dep.prefill, k_max))
    return torch.tensor([float(row[f]) for f in SCALAR_FIELDS], dtype=torch.float64)


def case_tables(c: Case) -> tuple[PassTable | None, ...]:
    """The case's tables by SIDES (None: a zero table), all-to-all / EPLB / NIC folded in."""
    sc = c.scenario
    d = worker_model(sc, c.worker).tables
    tables: list[PassTable | None] = [d.target, d.draft if c.has_draft else None, None, None]
    if isinstance(c.deployment, DisaggregatedSpec):
        p = worker_model(sc, c.deployment.prefill).tables
        tables[2:] = [p.target, p.draft if c.has_draft else None]
    return tuple(tables)


def lower_cases(cases: list[Case] | tuple[Case, ...]) -> CaseBatch:
    """Stack the cases' step tables, knobs, workload, memory limit and AL table into a `CaseBatch`."""
    if not cases:
        raise ValueError("lower_cases: no cases given")
    tables = [case_tables(c) for c in cases]
    n_ops = max(len(t.names) for ts in tables for t in ts if t is not None)
    als = [al_table(c.scenario.acceptance, scale=1.0) if c.has_draft else torch.ones(1, dtype=torch.float64)
           for c in cases]
    k1 = max(a.numel() for a in als)
    groups = tuple(dict.fromkeys(c.group_key for c in cases))
    servings = tuple(dict.fromkeys((c.scenario.workload, c.scenario.serving) for c in cases))
    ops, passes = [], []
    for ts in tables:
        rows = [_table_rows(t, n_ops) for t in ts]
        ops.append(torch.stack([o for o, _ in rows]))
        passes.append(torch.stack([p for _, p in rows]))
    return CaseBatch(
        ops=torch.stack(ops), passes=torch.stack(passes),
        knobs=torch.stack([torch.stack([getattr(c.scenario.knob_tensors, n) for n in KNOB_NAMES]) for c in cases]),
        scalars=torch.stack([_scalar_row(c, al.numel() - 1) for c, al in zip(cases, als, strict=True)]),
        al=torch.stack([torch.cat([a, a.new_ones(k1 - a.numel())]) for a in als]),
        group=torch.tensor([groups.index(c.group_key) for c in cases]),
        serving_group=torch.tensor([servings.index((c.scenario.workload, c.scenario.serving)) for c in cases]),
        groups=groups, servings=servings)
