"""Serving on more than one node: aggregated replicas of a (wide) worker, and disaggregated prefill/decode.

The loops themselves are `serving.closed_loop_tokens` and `serving.disaggregated_loop_tokens` (tensors, also
what the batched lowering and the sweep kernel evaluate); this module lowers cluster specs onto them, point by
point, and enumerates the cluster shapes of the open and the benchmark search.

Disaggregated (reference/serving-model.md, "Disaggregated serving removes the stall from decode GPUs but
adds prefill GPUs to the denominator of throughput per GPU and a KV transfer to TTFT"):
- the decode pool: y workers share the C requests; each runs plain decode / draft + verify steps with no
  prefill stall (`speculative.decode_step_time_s` on the worker's folded tables, `topology.worker_model`);
- the prefill pool: x workers, each clearing `batch_tokens` prompt tokens per `prefill_time_s` pass; its
  capacity in requests/s is what the loop can admit. If the decode pool would take requests faster than
  that, the loop is throttled by prefill: requests queue for prefill (TTFT grows), the decode batch shrinks
  to rate x O x TPOT, and the result says so (`throttled`, `reason`);
- the KV transfer prefill -> decode: bytes = KV bytes per token x prompt tokens (reference/hardware.md),
  over the prefill worker's NICs, added to TTFT;
- throughput per GPU = request rate x (I + O) / (prefill GPUs + decode GPUs) (reference/methodology.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from simulator.memory import MemoryCheck
from simulator.scenario import Scenario
from simulator.serving import StepLimits, closed_loop_tokens, disaggregated_loop_tokens
from simulator.specs import EngineLimits
from simulator.specs.topology import AggregatedSpec, DisaggregatedSpec, WorkerSpec
from simulator.topology import KvTransfer, WorkerModel, kv_transfer, worker_memory, worker_model


def f64(x: float) -> torch.Tensor:
    return torch.tensor(float(x), dtype=torch.float64)


@dataclass(frozen=True)
class ClusterPoint:
    """One deployment at one concurrency and draft length; seconds, tokens/s, requests/s."""

    label: str
    gpus: int
    decode_gpus: int
    concurrency: float
    draft_tokens: int
    acceptance_length: float
    step_s: float
    tpot_s: float
    ttft_s: float
    tput_per_gpu: float  # input + output tokens / s / all GPUs
    output_tput_per_decode_gpu: float
    decode_batch: float  # requests decoding at once, whole decode pool
    kv_transfer_s: float = 0.0
    prefill_rate: float = math.inf  # requests/s the prefill pool clears (aggregated: not separate)
    demand_rate: float = 0.0  # requests/s the decode pool would take at C
    throttled: bool = False
    reason: str = ""
    feasible: bool = True
    infeasible_reason: str = ""

    @property
    def interactivity(self) -> float:
        return 1.0 / self.tpot_s


class ClusterCache:
    """Per-scenario memo of what cluster points share: worker models, prefill pools, KV transfers, and the
    decode step of each decode worker by (k, per-worker batch): xPyD shapes share their decode workers."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self._workers: dict[WorkerSpec, WorkerModel] = {}
        self._kv: dict[tuple[WorkerSpec, bool], KvTransfer] = {}
        self._memory: dict[tuple[WorkerSpec, int], MemoryCheck] = {}

    def memory(self, w: WorkerSpec, draft_tokens: int) -> MemoryCheck:
        if (w, draft_tokens) not in self._memory:
            self._memory[(w, draft_tokens)] = worker_memory(self.sc, w, draft_tokens > 0, draft_tokens)
        return self._memory[(w, draft_tokens)]

    def worker(self, w: WorkerSpec) -> WorkerModel:
        if w not in self._workers:
            self._workers[w] = worker_model(self.sc, w)
        return self._workers[w]

    def kv(self, w: WorkerSpec, with_draft: bool) -> KvTransfer:
        if (w, with_draft) not in self._kv:
            self._kv[(w, with_draft)] = kv_transfer(self.sc, w, self.sc.workload.mean_input_tokens, with_draft)
        return self._kv[(w, with_draft)]


def disaggregated_point(sc: Scenario, spec: DisaggregatedSpec, concurrency: float, draft_tokens: int,
                        al: float, cache: ClusterCache | None = None) -> ClusterPoint:
    """The closed loop at concurrency C on x prefill + y decode workers (serving.disaggregated_loop_tokens)."""
    cache = cache or ClusterCache(sc)
    with_draft = draft_tokens > 0
    kv = cache.kv(spec.prefill, with_draft)
    mem = cache.memory(spec.decode, draft_tokens)
    wl, sv = sc.workload, sc.serving
    m = disaggregated_loop_tokens(
        cache.worker(spec.decode).tables, cache.worker(spec.prefill).tables, sc.knob_tensors,
        wl.mean_input_tokens, wl.mean_output_tokens, sv.prefill_chunk_tokens, spec.prefill.attention_dp,
        spec.prefill_workers, spec.decode_workers, kv.bytes_per_request, kv.link_bytes_s,
        f64(concurrency), f64(draft_tokens), f64(al), spec.gpus,
        StepLimits.of(EngineLimits(), min(mem.max_concurrency, sv.max_running_requests)))
    throttled = bool(m.throttled)
    reason = ""
    if throttled:
        reason = (f"throttled by prefill: {spec.prefill_workers} prefill worker(s) {spec.prefill.label} clear "
                  f"{float(m.prefill_rate):.2f} req/s, the decode pool at C={concurrency:g} would take "
                  f"{float(m.demand_rate):.2f} req/s; requests queue for prefill and "
                  f"{float(m.running_batch) * spec.decode_workers:.0f} of {concurrency:g} decode")
    bad = [r for r in (cache.memory(spec.prefill, draft_tokens).reason(1), mem.reason(1)) if r]
    return ClusterPoint(
        label=spec.label, gpus=spec.gpus, decode_gpus=spec.decode_gpus, concurrency=concurrency,
        draft_tokens=draft_tokens, acceptance_length=al, step_s=float(m.step_s), tpot_s=float(m.tpot_s),
        ttft_s=float(m.ttft_s), tput_per_gpu=float(m.tput_per_gpu),
        output_tput_per_decode_gpu=float(m.output_tput_per_gpu) * spec.gpus / spec.decode_gpus,
        decode_batch=float(m.running_batch) * spec.decode_workers, kv_transfer_s=float(m.kv_transfer_s),
        prefill_rate=float(m.prefill_rate), demand_rate=float(m.demand_rate), throttled=throttled,
        reason=reason, feasible=not bad, infeasible_reason="; ".join(bad))


def aggregated_point(sc: Scenario, spec: AggregatedSpec, concurrency: float, draft_tokens: int,
                     al: float, cache: ClusterCache | None = None) -> ClusterPoint:
    """Replicas of one worker, each the single-node closed loop (prefill stalls decode) on its folded
    tables, at C / replicas requests; the busiest DP rank runs ceil(C_r / DP) of them."""
    cache = cache or ClusterCache(sc)
    c_rep = math.ceil(concurrency / spec.replicas - 1e-9)
    mem = cache.memory(spec.worker, draft_tokens)
    limits = StepLimits.of(EngineLimits(), min(mem.max_concurrency, sc.serving.max_running_requests))
    m = closed_loop_tokens(cache.worker(spec.worker).tables, sc.knob_tensors, sc.workload.mean_input_tokens,
                           sc.workload.mean_output_tokens, sc.serving.prefill_mode == "chunked",
                           sc.serving.prefill_chunk_tokens, f64(c_rep), f64(draft_tokens), f64(al), spec.worker.gpus,
                           limits)
    scale = concurrency / spec.replicas / c_rep  # throughput counts the real requests of the busiest replica
    reason = mem.reason(1)
    return ClusterPoint(
        label=spec.label, gpus=spec.gpus, decode_gpus=spec.gpus, concurrency=concurrency,
        draft_tokens=draft_tokens, acceptance_length=al, step_s=float(m.step_s), tpot_s=float(m.tpot_s),
        ttft_s=float(m.ttft_s), tput_per_gpu=float(m.tput_per_gpu) * scale,
        output_tput_per_decode_gpu=float(m.output_tput_per_gpu) * scale, decode_batch=float(m.running_batch),
        feasible=not reason, infeasible_reason=reason)


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


def open_cluster_shapes(sc: Scenario, max_gpus: int) -> list[AggregatedSpec | DisaggregatedSpec]:
    """Deployments beyond one node within `max_gpus`: aggregated wide-EP workers (inside the scale-up
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
    out: list[AggregatedSpec | DisaggregatedSpec] = []
    nic = sc.hardware.scale_out is not None
    for w in wide:
        if w.gpus <= max_gpus and (nic or not w.spans_scale_out(sc.hardware.scale_up_domain_gpus)):
            out.append(AggregatedSpec.model_validate({"worker": w.model_dump()}, context=ctx))
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
