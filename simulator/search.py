"""Which deployments, concurrencies and draft lengths to evaluate.

`benchmark`: only what the benchmark ran (conf/deployments/benchmark.yaml, and with `max_gpus` above one
node its multi-node xPyD rows, conf/deployments/multinode.yaml), since a measured frontier stops where its
sweep stopped. `open`: every single-node deployment that fits, concurrency up to the memory limit, and
k = 1..4 on the MTP side; with `max_gpus` above one node also wide-EP workers and xPyD clusters within it
(open_cluster_shapes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from simulator.scenario import Scenario
from simulator.search_space import engine_default_limits, load_multinode, load_search_spaces
from simulator.specs import DeploymentSpec, EngineLimits, SpeculativeSpec
from simulator.specs.topology import NODE_GPUS, DisaggregatedSpec, WorkerSpec
from simulator.specs.vocabulary import KvCacheDtype, Side, StateDtype
from simulator.topology import worker_memory

SearchMode = Literal["benchmark", "open"]
OPEN_DRAFT_TOKENS = (1, 2, 3, 4)
# The deepest concurrency any search tries (open search, sweeps, the planner): the largest single-deployment
# conc-end in data/benchmark-configs/*-master.yaml (4096); memory and max_running_requests cut it per deployment.
OPEN_MAX_CONCURRENCY = 4096


@dataclass(frozen=True)
class Candidate:
    """A deployment with the concurrencies and draft lengths to run it at, on one side, and the engine
    limits it runs under: one `EngineLimits` per concurrency, or one for all (default: no limits).
    `pinned_al`: the acceptance length the recipe pins at its one draft length (a synthetic-acceptance run),
    which replaces the measured, calibrated AL(k) for this candidate's points; None: acceptance measured.
    `kv_cache_dtype` / `ssm_state_dtype`: the KV-cache and recurrent-state dtypes the deployment ran with (its
    script's settings or its engine's defaults, search_space); None: the scenario's own `serving` settings."""

    side: Side
    deployment: DeploymentSpec | DisaggregatedSpec  # one worker (single-node or wide), or xPyD pools
    concurrencies: tuple[int, ...]
    draft_tokens: tuple[int, ...]
    engine: str = "any"
    limits: tuple[EngineLimits, ...] = (EngineLimits(),)
    pinned_al: float | None = None
    kv_cache_dtype: KvCacheDtype | None = None
    ssm_state_dtype: StateDtype | None = None

    def __post_init__(self) -> None:  # each k is a valid speculative setting for its side
        for k in self.draft_tokens:
            SpeculativeSpec(mode=self.side, draft_tokens=k)
        if len(self.limits) not in (1, len(self.concurrencies)):
            raise ValueError(f"limits: give one EngineLimits or one per concurrency ({len(self.concurrencies)}), "
                             f"got {len(self.limits)}")
        if self.pinned_al is not None and (self.side != "mtp" or len(self.draft_tokens) != 1
                                           or not 1.0 <= self.pinned_al <= self.draft_tokens[0] + 1):
            raise ValueError(f"pinned_al {self.pinned_al}: a pinned acceptance length needs the MTP side, one "
                             f"draft length k and 1 <= AL <= k + 1 (side {self.side}, k {self.draft_tokens})")

    @property
    def pinned(self) -> tuple[int, float] | None:
        """(k, AL) the recipe pins, or None."""
        return None if self.pinned_al is None else (self.draft_tokens[0], self.pinned_al)

    def run_scenario(self, sc: Scenario) -> Scenario:
        """`sc` as this deployment ran it: with its own cache dtypes (Scenario.with_cache_dtypes)."""
        return sc.with_cache_dtypes(self.kv_cache_dtype, self.ssm_state_dtype)

    def limits_at(self, index: int) -> EngineLimits:
        """The limits at the `index`-th concurrency."""
        return self.limits[index if len(self.limits) > 1 else 0]


def open_limits(sc: Scenario, dep: DeploymentSpec, k: int) -> EngineLimits:
    """Limits of an open-search deployment on `serving.engine` (default SGLang, the benchmark's most common
    engine): that engine's documented CUDA-graph size and token budget (search_space.engine_default_limits) and the
    configured `serving.max_running_requests` (what a deployment engineer sets, in place of the engine's own
    default)."""
    engine = sc.serving.engine
    return engine_default_limits(engine, sc.hardware.hbm_capacity_gb, dep.tp, k).model_copy(update={
        "max_running_requests": sc.serving.max_running_requests,
        "source": f"{engine} defaults (open search); serving.max_running_requests"})


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
            out.append(Candidate(side, dep, open_concurrencies(limit), ks, sc.serving.engine,
                                 (open_limits(sc, dep, max(ks)),)))
    return out


def multinode_candidates(sc: Scenario, side: Side, model_key: str, hardware_key: str, workload_key: str,
                         max_gpus: int) -> list[Candidate]:
    """The benchmark's disaggregated rows for this case within `max_gpus` (conf/deployments/multinode.yaml)
    that the model's experts and the GPU's NIC admit, at their conc-lists and draft lengths (and the AL a row
    pins, where its recipe ran synthetic acceptance)."""
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
        limits = EngineLimits(speculation_overlapped=r.speculation_overlapped, source=f"{r.engine} decode workers")
        out.append(Candidate(side, dep, tuple(r.concurrencies), ((r.draft_tokens or 0) if side == "mtp" else 0,),
                             r.engine, (limits,), pinned_al=r.pinned_acceptance_length if side == "mtp" else None))
    return out


def benchmark_candidates(sc: Scenario, side: Side, model_key: str, hardware_key: str,
                         workload_key: str, max_gpus: int = NODE_GPUS) -> list[Candidate]:
    rows = load_search_spaces().lookup(model_key, hardware_key, sc.precision, workload_key, side)
    out = []
    for r in rows:
        dep = sc.deployment(tp=r.tp, ep=r.ep, dp_attention=r.dp_attn)
        k = (r.draft_tokens or 0) if side == "mtp" else 0
        out.append(Candidate(side, dep, tuple(r.concurrencies), (k,), r.engine,
                             tuple(r.limits_at(c) for c in r.concurrencies), kv_cache_dtype=r.kv_cache_dtype,
                             ssm_state_dtype=r.ssm_state_dtype))
    if max_gpus > NODE_GPUS:
        out += multinode_candidates(sc, side, model_key, hardware_key, workload_key, max_gpus)
    return out


# concurrencies of an open cluster shape: 1 .. 8192 (the benchmark's multi-node runs reach 7878)
CLUSTER_CONCURRENCIES = tuple(2**i for i in range(14))
CLUSTER_DRAFT_TOKENS = (1, 2, 3)  # the multi-node recipes run MTP 1-3


def open_cluster_candidates(sc: Scenario, side: Side, max_gpus: int) -> list[Candidate]:
    """Every open shape beyond one node within `max_gpus` (open_cluster_shapes): a wide-EP worker
    (concurrency per replica) or an xPyD cluster, under the open search's engine limits (`open_limits` of its
    decode worker)."""
    ks = (0,) if side == "off" else tuple(k for k in CLUSTER_DRAFT_TOKENS if sc.acceptance
                                          and k <= sc.acceptance.max_draft_tokens)
    if not ks:
        return []
    out = []
    for spec in open_cluster_shapes(sc, max_gpus):
        lead = spec.decode if isinstance(spec, DisaggregatedSpec) else spec
        out.append(Candidate(side, spec, CLUSTER_CONCURRENCIES, ks, sc.serving.engine,
                             (open_limits(sc, lead, max(ks)),)))
    return out


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


def no_fit_reason(sc: Scenario, side: Side) -> str:
    """Why no open deployment of `sc` fits (the memory reason at the largest one)."""
    deps = open_deployments(sc)
    if not deps:
        return "no valid single-node deployment (TP/EP) for this model on this GPU"
    largest = max(deps, key=lambda d: d.gpus)
    why = sc.memory(largest, side == "mtp").reason(1) or "no concurrency fits in memory"
    return f"does not fit even at {largest.label} ({largest.gpus} GPUs): {why}"


def side_reason(sc: Scenario, side: Side, max_gpus: int = NODE_GPUS) -> str:
    """Why a side cannot run at all ("" when some single-node deployment fits or, with `max_gpus` beyond one
    node, some deployment beyond it is there to price: its points then say whether it fits)."""
    if side == "mtp" and not sc.has_draft:
        return f"{sc.model.name} has no draft module (MTP impossible)"
    if open_candidates(sc, side) or (max_gpus > NODE_GPUS and open_cluster_candidates(sc, side, max_gpus)):
        return ""
    return no_fit_reason(sc, side)


# ----------------------------------------------------------------------------- open search over clusters
OPEN_PREFILL_WORKERS = (1, 2, 3, 4, 6, 8, 11, 14)  # the benchmark's recipes run ctx1..ctx14
OPEN_DECODE_WORKERS = (1, 2, 3, 4, 5)  # gen1..gen5 in the benchmark's recipes
OPEN_WIDE_EP = (16, 24, 32, 48, 64, 72)  # wide-EP decode widths (DEP16..DEP72), cut by EP | experts + EPLB
# EPLB redundant experts when EP does not divide the routed experts: at least 1/8 of them, as DeepSeek-V3's
# deployment (32 redundant of 256; the benchmark's DeepSeek R1 EP24/EP48 recipes run those 288 slots)
EPLB_MIN_REDUNDANT_FRACTION = 1 / 8


def _ep_worker(model_experts: list[int], width: int) -> WorkerSpec | None:
    """DEP`width`, with EPLB redundant slots only when EP does not divide the routed experts."""
    if all(e % width == 0 for e in model_experts):
        return WorkerSpec(tp=width, ep=width, dp_attention=True)
    low = math.ceil(max(model_experts) * EPLB_MIN_REDUNDANT_FRACTION)
    for redundant in range(low, low + width):
        if all((e + redundant) % width == 0 for e in model_experts):
            return WorkerSpec(tp=width, ep=width, dp_attention=True, redundant_experts=redundant)
    return None


def open_cluster_shapes(sc: Scenario, max_gpus: int) -> list[WorkerSpec | DisaggregatedSpec]:
    """Deployments beyond one node within `max_gpus`: wide-EP workers (inside the scale-up
    domain or across NICs), and xPyD with one 4-GPU (or the smallest fitting) DEP prefill worker shape and
    TEP8 / DEP8 / wide-EP decode workers. Shapes the model or the budget rule out are left out; dense models
    and hardware without `scale_out` figures get no shapes that need them."""
    experts = [f.num_experts or 0 for f in sc.model.moe_ffns]
    if not experts:
        return []  # wide EP and xPyD are what the benchmark ran beyond a node for its MoE models only
    ctx = {"model": sc.model, "hardware": sc.hardware, "max_gpus": max_gpus}
    wide = [w for w in (_ep_worker(experts, n) for n in OPEN_WIDE_EP) if w is not None] if experts else []
    node = [WorkerSpec(tp=8, ep=8 if experts else 1), WorkerSpec(tp=8, ep=8 if experts else 1, dp_attention=True)]
    prefill = [WorkerSpec(tp=n, ep=n if experts else 1, dp_attention=bool(experts)) for n in (4, 8)]
    out: list[WorkerSpec | DisaggregatedSpec] = []
    nic = sc.hardware.scale_out is not None
    for w in wide:
        if w.gpus <= max_gpus and (nic or not w.spans_scale_out(sc.hardware.scale_up_domain_gpus)):
            out.append(WorkerSpec.model_validate(w.model_dump(), context=ctx))
    if not nic:
        return out  # no NIC figures: nothing crosses the scale-up domain, no KV moves between workers
    for p in prefill:
        if worker_memory(sc, p, True).max_concurrency < 1:
            continue  # the weights do not fit this prefill worker
        for d in node + wide:
            for y in OPEN_DECODE_WORKERS if d.gpus <= 8 else (1,):
                for x in OPEN_PREFILL_WORKERS:
                    if x * p.gpus + y * d.gpus > max_gpus:
                        break
                    out.append(DisaggregatedSpec.model_validate(
                        {"prefill": p.model_dump(), "prefill_workers": x, "decode": d.model_dump(),
                         "decode_workers": y}, context=ctx))
    return out
