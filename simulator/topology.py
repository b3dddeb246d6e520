"""Physics of one worker beyond a node: MoE all-to-all over the scale-up domain or the NICs, EPLB, memory.

A worker (specs/topology.py) whose EP group is wider than one node runs its MoE layers the wide-EP way
(DeepEP-style dispatch + combine; SGLang `--moe-a2a-backend deepep`, TensorRT-LLM wide EP): each rank sends
each of its tokens to the ranks holding the token's top-k experts (FP8, one message per (token, expert) pair
as DeepEP's low-latency kernels do) and gets the expert outputs back (BF16). The pair goes
- nowhere when the expert is on the sending rank (1 / EP of the pairs),
- over the scale-up link when it is on another GPU of the same scale-up domain ((G - 1) / EP),
- over the NIC when it is in another domain ((EP - G) / EP), G = the worker's GPUs per scale-up domain.
The two paths run at once; a phase (dispatch or combine) costs its latency floor plus the slower path.

`worker_model` (`_fold`) folds that cost into the pass tables the single-node step model reads (`lowering.PassTable`:
comm bytes per token, link bytes/s, collectives), so `speculative.decode_step_time_s`, `prefill_time_s` and
`serving.closed_loop_tokens` price a wide-EP worker without a copy of their arithmetic. A worker whose
collectives cross the NICs runs them with the scale-out knobs (message latency, achieved NIC fraction).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from simulator.lowering import BYTES_PER_VALUE, MemoryFootprint, PassTable, memory_footprint, weight_dtype
from simulator.memory import MemoryCheck, check_memory
from simulator.operators import OpDef, draft_ops, target_ops
from simulator.scenario import Scenario
from simulator.serving import kv_transfer_s
from simulator.specs import DeploymentSpec, HardwareSpec, ModelSpec, Precision
from simulator.specs.topology import NODE_GPUS, WorkerSpec
from simulator.speculative import StepTables

# DeepEP low-latency dispatch sends FP8 values with one FP32 scale per 128 channels; combine returns BF16
# (deepseek-ai/DeepEP docs/legacy.md: "FP8 dispatching and BF16 combining"; per-128-channel scales as in
# DeepSeek-V3's FP8 recipe).
DISPATCH_BYTES_PER_VALUE = 1.0 + 4.0 / 128.0
COMBINE_BYTES_PER_VALUE = 2.0


def pair_fractions(ep: int, group_gpus: int) -> tuple[float, float]:
    """(scale-up, scale-out) shares of a rank's (token, expert) pairs under uniform routing over EP ranks."""
    g = min(group_gpus, ep)
    return (g - 1) / ep, (ep - g) / ep


def eplb_residual(redundant_experts: int, ep: int) -> float:
    """Share of the routed experts' busiest-rank skew that EPLB leaves (the op's `imbalance_weight`).

    Without redundant slots the measured skew (`moe_imbalance`, 1.2-1.5x, docs/sources.md#serving-model-priors) stays.
    EPLB replicates hot experts into the redundant slots and places them to even out the ranks; with one
    slot per rank (R >= EP, DeepSeek-V3's deployment: 32 redundant experts over EP32 in prefill) we take the
    static skew as balanced, with fewer slots a proportional share of it. Routing noise is not modelled.
    """
    return 1.0 - min(redundant_experts, ep) / ep


def uses_alltoall(worker: WorkerSpec) -> bool:
    """Wide EP: DP-attention with EP over all the worker's GPUs, wider than one node. Inside one node the
    single-node step model (all-gather + reduce-scatter around the experts) stays as calibrated."""
    return worker.dp_attention and worker.ep == worker.tp and worker.ep > 1 and worker.gpus > NODE_GPUS


def moe_layers(ops: list[OpDef]) -> int:
    return int(sum(op.layers for op in ops if op.shard == "experts"))


def routed_experts_per_token(model: ModelSpec) -> int:
    return max((f.experts_per_token or 0) for f in model.moe_ffns) if model.moe_ffns else 0


def _fold(t: PassTable, model: ModelSpec, hw: HardwareSpec, worker: WorkerSpec, ops: list[OpDef]) -> PassTable:
    """The pass table of a wide-EP or node-spanning worker (per-GPU coefficients as lowering defines them)."""
    f64 = torch.float64
    group = worker.scale_up_group(hw.scale_up_domain_gpus)
    spans = worker.spans_scale_out(hw.scale_up_domain_gpus)
    out = t
    if worker.redundant_experts:
        local, prob, weight = [], [], []
        residual = eplb_residual(worker.redundant_experts, worker.ep)
        for op in ops:
            slots = op.num_experts + worker.redundant_experts if op.shard == "experts" else 0
            local.append(slots / worker.ep if slots else 0.0)
            prob.append(op.experts_per_token / slots if slots else 0.0)
            weight.append(residual if slots else 0.0)
        out = replace(out, experts_local=torch.tensor(local, dtype=f64), route_prob=torch.tensor(prob, dtype=f64),
                      imbalance_weight=torch.tensor(weight, dtype=f64))
    if uses_alltoall(worker):
        # per token of the whole pass: a rank sends its own tokens (tokens / DP) to k experts each
        # spanning: the NIC path is the slower one (its share / NIC rate is >= 15x the NVLink path's for
        # every GPU in conf/hardware), so the pass is priced on the bytes that leave the domain
        up_frac, out_frac = pair_fractions(worker.ep, group)
        frac = out_frac if spans else up_frac
        per_pair = model.hidden_size * (DISPATCH_BYTES_PER_VALUE + COMBINE_BYTES_PER_VALUE)
        layers = moe_layers(ops)
        comm = layers * routed_experts_per_token(model) * per_pair * frac / worker.attention_dp
        out = replace(out, comm_bytes_per_token=torch.tensor(comm, dtype=f64),
                      collectives=torch.tensor(2.0 * layers, dtype=f64))
    if spans:
        assert hw.scale_out is not None
        out = replace(out, link_bytes_s=torch.tensor(hw.scale_out.bytes_per_s, dtype=f64),
                      scale_out=torch.tensor(1.0, dtype=f64))
    return out


@dataclass(frozen=True)
class WorkerModel:
    """What the step model needs for one worker: its pass tables (all-to-all, EPLB, NIC folded in)."""

    worker: WorkerSpec
    tables: StepTables
    alltoall: bool
    spans_scale_out: bool


def worker_model(sc: Scenario, worker: WorkerSpec) -> WorkerModel:
    """Lower one worker: the single-node tables, with the all-to-all, EPLB slots and NIC folded in. The
    knobs stay the scenario's: the tables say which of them (scale-up or scale-out) each pass runs at."""
    hw = sc.hardware
    spans = worker.spans_scale_out(hw.scale_up_domain_gpus)
    if spans and hw.scale_out is None:
        raise ValueError(f"worker {worker.label} spans more than one {hw.display_name} scale-up domain, "
                         f"but the hardware spec has no scale_out (NIC) figures")
    base = sc.tables(worker.deployment())
    target = _fold(base.target, sc.model, hw, worker, target_ops(sc.model))
    draft = _fold(base.draft, sc.model, hw, worker, draft_ops(sc.model)) if base.draft is not None else None
    return WorkerModel(worker, StepTables(target, draft), uses_alltoall(worker), spans)


def kv_transfer_bytes_per_request(sc: Scenario, input_tokens: float, with_draft: bool) -> float:
    """Bytes of one request's KV cache (and recurrent state) after prefill, all layers, unsharded: what the
    decode worker must receive. The draft module's own cache moves too when speculating."""
    fp = memory_footprint(sc.model, sc.precision, DeploymentSpec(tp=1), sc.kv_bytes, with_draft and sc.has_draft,
                          sc.state_bytes)
    return fp.cache_bytes_per_request(input_tokens)


@dataclass(frozen=True)
class KvTransfer:
    """One request's KV move prefill -> decode; `seconds` at the scenario's scale-out knobs
    (serving.kv_transfer_s, which the loops evaluate with whatever knobs they run at)."""

    bytes_per_request: float
    lanes: int  # NICs that send one request's KV at once
    link_bytes_s: float  # lanes x the NIC line rate
    seconds: float


def kv_transfer(sc: Scenario, prefill: WorkerSpec, input_tokens: float, with_draft: bool) -> KvTransfer:
    """One request's KV over the scale-out link: message latency + bytes / (lanes x NIC x fraction).

    Lanes: the prefill worker's attention-TP ranks each hold (a shard or a replica of) the request's KV and
    send their part; under DP-attention a request lives on one rank (1 lane).
    """
    so = sc.hardware.scale_out
    if so is None:
        raise ValueError(f"{sc.hardware.name} has no scale_out spec: cannot move KV between workers")
    b = kv_transfer_bytes_per_request(sc, input_tokens, with_draft)
    lanes = 1 if prefill.dp_attention else prefill.tp
    link = lanes * so.bytes_per_s
    return KvTransfer(b, lanes, link, float(kv_transfer_s(sc.knob_tensors, b, link)))


def as_worker(dep: DeploymentSpec) -> WorkerSpec:
    """A deployment as the worker it is (a plain single-node DeploymentSpec has no EPLB slots)."""
    return dep if isinstance(dep, WorkerSpec) else WorkerSpec(**dep.model_dump())


def redundant_expert_bytes(model: ModelSpec, precision: Precision, worker: WorkerSpec, with_draft: bool) -> float:
    """Per-GPU bytes of the EPLB redundant expert slots (R extra experts per MoE layer over EP ranks)."""
    ops = target_ops(model) + (draft_ops(model) if with_draft else [])
    total = 0.0
    for op in ops:
        if op.shard == "experts":
            wbytes = BYTES_PER_VALUE[weight_dtype(op, model, precision)]
            total += op.layers * worker.redundant_experts * op.expert_params * wbytes / worker.tp
    return total


def worker_footprint(sc: Scenario, worker: WorkerSpec, with_draft: bool) -> MemoryFootprint:
    """Per-GPU residents under wide EP: experts spread over the EP ranks ((E + R) / EP each, at moe TP),
    attention weights replicated per DP rank, KV of the requests on this DP rank."""
    draft = with_draft and sc.has_draft
    fp = memory_footprint(sc.model, sc.precision, worker.deployment(), sc.kv_bytes, draft, sc.state_bytes)
    return replace(fp, weight_bytes=fp.weight_bytes + redundant_expert_bytes(sc.model, sc.precision, worker, draft))


def worker_memory(sc: Scenario, worker: WorkerSpec, with_draft: bool, lookahead_tokens: int = 0) -> MemoryCheck:
    """The concurrency limit of one worker: KV per DP rank times the DP ranks (busiest rank at ceil(C/DP));
    `lookahead_tokens` = the k draft slots per request speculation reserves (memory.check_memory)."""
    tokens = sc.workload.mean_input_tokens + sc.workload.mean_output_tokens
    draft = with_draft and sc.has_draft
    return check_memory(worker_footprint(sc, worker, with_draft), sc.hardware.usable_hbm_gb,
                        sc.serving.mem_fraction, worker.attention_dp, tokens, lookahead_tokens if draft else 0)
