"""Which deployments, concurrencies and draft lengths to evaluate.

`benchmark`: only what the benchmark ran (conf/deployments/benchmark.yaml, and with `max_gpus` above one
node its multi-node xPyD rows, conf/deployments/multinode.yaml), since a measured frontier stops where its
sweep stopped. `open`: every single-node deployment that fits, concurrency up to the memory limit, and
k = 1..4 on the MTP side; with `max_gpus` above one node also wide-EP workers and xPyD clusters within it
(disagg.open_cluster_shapes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simulator.disagg import open_cluster_shapes
from simulator.scenario import Scenario
from simulator.search_space import default_limits, load_multinode, load_search_spaces
from simulator.specs import DeploymentSpec, EngineLimits, SpeculativeSpec
from simulator.specs.topology import NODE_GPUS, AggregatedSpec, DisaggregatedSpec
from simulator.specs.vocabulary import Side

SearchMode = Literal["benchmark", "open"]
OPEN_DRAFT_TOKENS = (1, 2, 3, 4)
# The deepest concurrency any search tries (open search, sweeps, the planner): the largest single-deployment
# conc-end in data/benchmark-configs/*-master.yaml (4096); memory and max_running_requests cut it per deployment.
OPEN_MAX_CONCURRENCY = 4096


@dataclass(frozen=True)
class Candidate:
    """A deployment with the concurrencies and draft lengths to run it at, on one side, and the engine
    limits it runs under: one `EngineLimits` per concurrency, or one for all (default: no limits)."""

    side: Side
    deployment: DeploymentSpec | DisaggregatedSpec  # one worker (single-node or wide), or xPyD pools
    concurrencies: tuple[int, ...]
    draft_tokens: tuple[int, ...]
    engine: str = "any"
    limits: tuple[EngineLimits, ...] = (EngineLimits(),)

    def __post_init__(self) -> None:  # each k is a valid speculative setting for its side
        for k in self.draft_tokens:
            SpeculativeSpec(mode=self.side, draft_tokens=k)
        if len(self.limits) not in (1, len(self.concurrencies)):
            raise ValueError(f"limits: give one EngineLimits or one per concurrency ({len(self.concurrencies)}), "
                             f"got {len(self.limits)}")

    def limits_at(self, index: int) -> EngineLimits:
        """The limits at the `index`-th concurrency."""
        return self.limits[index if len(self.limits) > 1 else 0]


def open_limits(sc: Scenario, dep: DeploymentSpec, k: int) -> EngineLimits:
    """Limits of an open-search deployment: SGLang's documented defaults (the benchmark's most common engine;
    search_space.default_limits) and the configured max_running_requests."""
    d = default_limits("sglang", sc.hardware.hbm_capacity_gb, dep.tp, k)
    return EngineLimits(cuda_graph_max_batch=d["cuda_graph_max_bs"],
                        max_running_requests=sc.serving.max_running_requests,
                        source="SGLang defaults (open search); serving.max_running_requests")


def open_concurrencies(limit: int) -> tuple[int, ...]:
    """1, 2, 3, 4, 6, 8, 12, ... (powers of two and their midpoints) up to `limit`."""
    out: list[int] = []
    c = 1
    while c <= limit:
        out.append(c)
        if c >= 2 and c * 3 // 2 <= limit:
            out.append(c * 3 // 2)
        c *= 2
    return tuple(sorted(set(out)))


def open_deployments(sc: Scenario) -> list[DeploymentSpec]:
    moe = bool(sc.model.moe_ffns)
    out = []
    tp = 1
    while tp <= min(sc.hardware.scale_up_domain_gpus, 8):
        for ep in sorted({1, tp} if moe else {1}):
            for dpa in (False, True) if tp > 1 else (False,):
                try:
                    out.append(sc.deployment(tp=tp, ep=ep, dp_attention=dpa))
                except ValueError:
                    continue  # e.g. EP not dividing the experts
        tp *= 2
    return out


def open_candidates(sc: Scenario, side: Side) -> list[Candidate]:
    ks = (0,) if side == "off" else tuple(k for k in OPEN_DRAFT_TOKENS if sc.acceptance
                                          and k <= sc.acceptance.max_draft_tokens)
    out = []
    for dep in open_deployments(sc):
        limit = min(sc.memory(dep, side == "mtp").max_concurrency, OPEN_MAX_CONCURRENCY,
                    sc.serving.max_running_requests)
        if limit >= 1 and ks:
            out.append(Candidate(side, dep, open_concurrencies(limit), ks, limits=(open_limits(sc, dep, max(ks)),)))
    return out


def multinode_candidates(sc: Scenario, side: Side, model_key: str, hardware_key: str, workload_key: str,
                         max_gpus: int) -> list[Candidate]:
    """The benchmark's disaggregated rows for this case within `max_gpus` (conf/deployments/multinode.yaml)
    that the model's experts and the GPU's NIC admit, at their conc-lists and draft lengths."""
    if sc.hardware.scale_out is None:
        return []
    rows, _ = load_multinode()
    ctx = {"model": sc.model, "hardware": sc.hardware, "max_gpus": max_gpus}
    out = []
    for r in rows:
        if (r.model, r.hardware, r.precision, r.workload, r.spec) != (model_key, hardware_key, sc.precision,
                                                                      workload_key, side):
            continue
        try:
            dep = DisaggregatedSpec.model_validate(r.deployment.model_dump(), context=ctx)
        except ValueError:
            continue  # beyond max_gpus, or EP not dividing this model's experts
        out.append(Candidate(side, dep, tuple(r.concurrencies), ((r.draft_tokens or 0) if side == "mtp" else 0,),
                             r.engine))
    return out


def benchmark_candidates(sc: Scenario, side: Side, model_key: str, hardware_key: str,
                         workload_key: str, max_gpus: int = NODE_GPUS) -> list[Candidate]:
    rows = load_search_spaces().lookup(model_key, hardware_key, sc.precision, workload_key, side)
    out = []
    for r in rows:
        dep = sc.deployment(tp=r.tp, ep=r.ep, dp_attention=r.dp_attn)
        k = (r.draft_tokens or 0) if side == "mtp" else 0
        out.append(Candidate(side, dep, tuple(r.concurrencies), (k,), r.engine,
                             tuple(r.limits_at(c) for c in r.concurrencies)))
    if max_gpus > NODE_GPUS:
        out += multinode_candidates(sc, side, model_key, hardware_key, workload_key, max_gpus)
    return out


# concurrencies of an open cluster shape: 1 .. 8192 (the benchmark's multi-node runs reach 7878)
CLUSTER_CONCURRENCIES = tuple(2**i for i in range(14))
CLUSTER_DRAFT_TOKENS = (1, 2, 3)  # the multi-node recipes run MTP 1-3


def open_cluster_candidates(sc: Scenario, side: Side, max_gpus: int) -> list[Candidate]:
    """Every open shape beyond one node within `max_gpus` (disagg.open_cluster_shapes): an aggregated
    wide-EP worker (concurrency per replica) or an xPyD cluster."""
    ks = (0,) if side == "off" else tuple(k for k in CLUSTER_DRAFT_TOKENS if sc.acceptance
                                          and k <= sc.acceptance.max_draft_tokens)
    if not ks:
        return []
    return [Candidate(side, spec.worker if isinstance(spec, AggregatedSpec) else spec, CLUSTER_CONCURRENCIES, ks)
            for spec in open_cluster_shapes(sc, max_gpus)]


def candidates(sc: Scenario, side: Side, mode: SearchMode, model_key: str, hardware_key: str,
               workload_key: str, max_gpus: int = NODE_GPUS) -> tuple[list[Candidate], str]:
    """Candidates for one side, and a note when `benchmark` had nothing and `open` was used instead.
    `max_gpus` above one node adds deployments beyond it (benchmark: its multi-node rows; open: all shapes)."""
    if side == "mtp" and not sc.has_draft:
        return [], f"{sc.model.name} has no draft module: no MTP side"
    wide = open_cluster_candidates(sc, side, max_gpus) if max_gpus > NODE_GPUS else []
    if mode == "benchmark":
        found = benchmark_candidates(sc, side, model_key, hardware_key, workload_key, max_gpus)
        if found:
            return found, ""
        note = (f"the benchmark ran no {side} deployment of {model_key} on {hardware_key} "
                f"{sc.precision} {workload_key}; searched open deployments instead")
        return open_candidates(sc, side) + wide, note
    return open_candidates(sc, side) + wide, ""
