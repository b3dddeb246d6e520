"""Lowering: (model, hardware, precision, deployment) -> per-GPU coefficient tensors of one forward pass.

A `PassTable` holds, for every operator, FLOPs and bytes as affine functions of the pass's tokens,
requests and context, plus the pass's collectives and latency floors. `step_cost.pass_time_s` evaluates
it with arithmetic only, so the torch model and the Triton kernel read the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simulator.moe import busiest_rank_z
from simulator.operators import OpDef, draft_ops, embedding_op, floor_passes, target_ops, total_layers
from simulator.specs import DeploymentSpec, HardwareSpec, ModelSpec, Precision
from simulator.specs.vocabulary import BYTES_PER_VALUE

ACTIVATION_BYTES = 2.0  # bf16 activations and collectives
# Sampling a position reads its vocabulary-wide logits: the vocab-parallel LM head's shards are all-gathered
# onto every TP rank (SGLang LogitsProcessor, vLLM LogitsProcessor gather), written once and read once by the
# softmax / argmax / accept-reject compare (SGLang eagle_info verify: argmax or softmax over
# bs x draft_token_num x vocab). ~4 FLOPs per logit (max, subtract, exp, sum) against 2 x 2 bytes: ~1 FLOP/byte,
# memory-bound on every GPU here (CUDA-core FP32 peak / HBM bandwidth >= 10 FLOP/byte), so only bytes count.
LOGIT_PASSES = 2.0

OP_FIELDS = (
    "flops_per_token", "flops_per_token_ctx", "ctx_scale", "ctx_offset", "ctx_cap", "weight_bytes",
    "expert_bytes", "experts_local", "route_prob", "busiest_rank_z", "bytes_per_token", "bytes_per_request_ctx",
    "bytes_per_request", "peak_flops", "dp_sharded", "imbalance_weight",
)
PASS_FIELDS = ("attention_dp", "comm_bytes_per_token", "collectives", "layer_passes", "link_bytes_s",
               "hbm_bytes_s", "logits_bytes_per_token", "logits_comm_bytes_per_token", "scale_out")


@dataclass(frozen=True)
class PassTable:
    """Per-GPU coefficients of one forward pass. Operator fields have shape [..., n_ops], pass fields [...].

    Units: FLOPs, bytes, FLOP/s, bytes/s, tokens. `bytes_per_request` is one copy of a request's recurrent
    state (linear attention): a pass reads it once and writes it once per position it keeps
    (step_cost.pass_cost's `state_writes`). `dp_sharded` is a 0/1 mask; `imbalance_weight` is the share
    of the `moe_imbalance` skew an operator sees (1 for routed experts, less under EPLB redundant slots,
    topology.eplb_residual; 0 elsewhere). `scale_out` = 1: the pass's collectives cross the NICs and run at
    the scale-out knobs (step_cost.link_knobs), 0: over the scale-up link. `layer_passes`: the layer passes
    whose latency floor and eager launch time the pass pays (its layers, plus hyper-connection blocks).
    """

    names: tuple[str, ...]
    flops_per_token: torch.Tensor
    flops_per_token_ctx: torch.Tensor
    ctx_scale: torch.Tensor
    ctx_offset: torch.Tensor
    ctx_cap: torch.Tensor
    weight_bytes: torch.Tensor
    expert_bytes: torch.Tensor
    experts_local: torch.Tensor
    route_prob: torch.Tensor
    busiest_rank_z: torch.Tensor  # routed experts: moe.busiest_rank_z(EP), the busiest EP rank's excess touches
    bytes_per_token: torch.Tensor
    bytes_per_request_ctx: torch.Tensor
    bytes_per_request: torch.Tensor
    peak_flops: torch.Tensor
    dp_sharded: torch.Tensor
    imbalance_weight: torch.Tensor
    attention_dp: torch.Tensor
    comm_bytes_per_token: torch.Tensor
    collectives: torch.Tensor
    layer_passes: torch.Tensor
    link_bytes_s: torch.Tensor
    hbm_bytes_s: torch.Tensor
    logits_bytes_per_token: torch.Tensor  # HBM bytes to sample one position (per GPU), see LOGIT_PASSES
    logits_comm_bytes_per_token: torch.Tensor  # all-gather bytes of one position's vocab-parallel logits
    scale_out: torch.Tensor  # 1: collectives over the NICs (scale-out knobs), 0: over the scale-up link


@dataclass(frozen=True)
class MemoryFootprint:
    """Per-GPU resident bytes: weights, and cache per request as a function of its context length."""

    weight_bytes: float
    kv_bytes_per_token: tuple[tuple[float, float, float, float], ...]  # (bytes/token, scale, offset, cap)
    state_bytes_per_request: float  # one copy of the recurrent state

    def cache_bytes_per_request(self, context_tokens: float, state_copies: float = 1.0) -> float:
        """KV of `context_tokens` plus `state_copies` copies of the recurrent state (speculation keeps more)."""
        kv = sum(b * min(s * context_tokens + o, c) for b, s, o, c in self.kv_bytes_per_token)
        return kv + state_copies * self.state_bytes_per_request


def weight_dtype(op: OpDef, model: ModelSpec, precision: Precision) -> str:
    if op.weight_class == "embedding":
        return "bf16"
    if op.weight_class == "expert":
        return model.native_expert_dtype or precision
    return "bf16" if precision == "bf16" else "fp8"


def compute_peak_flops(op: OpDef, model: ModelSpec, hw: HardwareSpec, precision: Precision) -> float:
    if op.compute == "indexer":
        return hw.peak_for("fp8") * 1e12
    if op.compute in ("attention", "lm_head"):
        return hw.peak_tflops.bf16 * 1e12
    return hw.peak_for(weight_dtype(op, model, precision)) * 1e12


def _split(op: OpDef, dep: DeploymentSpec) -> int:
    """GPUs a non-expert operator's weights and FLOPs are divided over (operators.Shard)."""
    return {"attention": dep.attention_tp, "replicated": 1, "tp": dep.tp, "none": 1}[op.shard]


def _kv_shard(op: OpDef, dep: DeploymentSpec) -> int:
    return min(dep.attention_tp, op.kv_heads) if op.kv_heads else 1


def head_padding(op: OpDef, hw: HardwareSpec, split: int) -> float:
    """Factor on a sparse-attention core's context FLOPs: its kernel computes max(heads per rank, the GPU's
    sparse-attention head tile) heads for each query token (FlashMLA's sparse decode kernel takes 64 or 128
    query heads, so vLLM and SGLang's FlashMLA backends pad TP-split heads up to 64; aiter's MLA kernels take
    at least 16; for SGLang's TRT-LLM-gen backend on Blackwell the padding is an assumption, docs/sources.md).
    1 for dense attention and for a rank holding at least a tile of heads."""
    if not op.sparse_heads:
        return 1.0
    per_rank = op.sparse_heads / split
    return max(per_rank, float(hw.sparse_attention_head_tile)) / per_rank


def lower_op(op: OpDef, model: ModelSpec, hw: HardwareSpec, precision: Precision, dep: DeploymentSpec,
             kv_bytes: float, state_bytes: float) -> dict[str, float]:
    """Per-GPU coefficients of one operator, summed over its layers. `kv_bytes` / `state_bytes`: bytes per
    cached value and per recurrent-state value (Scenario.kv_bytes / state_bytes)."""
    n = op.layers
    wbytes = BYTES_PER_VALUE[weight_dtype(op, model, precision)]
    row = dict.fromkeys(OP_FIELDS, 0.0)
    row.update(ctx_scale=op.ctx_scale, ctx_offset=op.ctx_offset, ctx_cap=op.ctx_cap,
               peak_flops=compute_peak_flops(op, model, hw, precision))
    io_bytes = 2 * model.hidden_size * ACTIVATION_BYTES  # hidden state in and out, per token
    if op.shard == "experts":
        row["expert_bytes"] = n * op.expert_params * wbytes / dep.moe_tp
        row["experts_local"] = op.num_experts / dep.ep
        row["route_prob"] = op.experts_per_token / op.num_experts
        row["busiest_rank_z"] = busiest_rank_z(dep.ep)
        row["flops_per_token"] = n * 2 * op.active_params / dep.tp
        row["bytes_per_token"] = n * io_bytes * op.experts_per_token / dep.tp
        row["imbalance_weight"] = 1.0
        return row
    split = _split(op, dep)
    row["weight_bytes"] = n * op.params * wbytes / split
    row["flops_per_token"] = n * (2 * op.active_params + op.flops_per_token) / split
    row["flops_per_token_ctx"] = n * op.flops_per_token_ctx / split * head_padding(op, hw, split)
    kv = n * op.cache_values_per_token * kv_bytes / _kv_shard(op, dep)
    row["bytes_per_token"] = n * io_bytes + kv  # activations + the new token's cache entry
    row["bytes_per_request_ctx"] = kv
    row["bytes_per_request"] = n * op.state_values_per_request * state_bytes / min(dep.attention_tp, op.state_heads)
    row["dp_sharded"] = 1.0 if op.shard in ("attention", "replicated") else 0.0
    return row


def lower_ops(ops: list[OpDef], model: ModelSpec, hw: HardwareSpec, precision: Precision,
              dep: DeploymentSpec, kv_bytes: float, state_bytes: float, layer_passes: int,
              floors: int | None = None) -> PassTable:
    """The pass's per-GPU table. `layer_passes`: its layers (two collectives and the hidden-state traffic
    each); `floors`: the layer passes whose latency floor it pays (default: as many; more with
    hyper-connections, operators.floor_passes)."""
    rows = [lower_op(op, model, hw, precision, dep, kv_bytes, state_bytes) for op in ops]
    tp = dep.tp
    collectives = 2 * layer_passes if tp > 1 else 0
    # Hidden-state bytes per GPU, per token of the pass, per layer. Around the MoE / FFN: a ring all-reduce over
    # the TP ranks, 2 (tp - 1) / tp; under DP-attention an all-gather of every rank's tokens before it and a
    # reduce-scatter after, (tp - 1) / tp each, the same 2 (tp - 1) / tp (SGLang dp_attention dp_gather /
    # dp_scatter; vLLM's allgather_reducescatter all2all backend). Around attention: an all-reduce over the
    # attention-TP ranks of their own 1 / DP share of the tokens, 2 (atp - 1) / atp / DP (none under full
    # DP-attention, which is why it moves half the bytes of TP attention).
    atp, dp = dep.attention_tp, dep.attention_dp
    per_layer = 2 * (tp - 1) / tp + 2 * (atp - 1) / atp / dp
    comm = layer_passes * per_layer * model.hidden_size * ACTIVATION_BYTES if tp > 1 else 0.0
    vocab = sum(op.params / model.hidden_size for op in ops if op.compute == "lm_head")
    logits_bytes = LOGIT_PASSES * vocab * ACTIVATION_BYTES
    logits_comm = (tp - 1) / tp * vocab * ACTIVATION_BYTES
    def col(f: str) -> torch.Tensor:
        return torch.tensor([r[f] for r in rows], dtype=torch.float64)
    def scalar(x: float) -> torch.Tensor:
        return torch.tensor(float(x), dtype=torch.float64)
    return PassTable(
        names=tuple(op.name for op in ops), **{f: col(f) for f in OP_FIELDS},
        attention_dp=scalar(dep.attention_dp), comm_bytes_per_token=scalar(comm),
        collectives=scalar(collectives), layer_passes=scalar(layer_passes if floors is None else floors),
        link_bytes_s=scalar(hw.link_bandwidth_gb_s(tp) * 1e9), hbm_bytes_s=scalar(hw.hbm_bandwidth_tb_s * 1e12),
        logits_bytes_per_token=scalar(logits_bytes), logits_comm_bytes_per_token=scalar(logits_comm),
        scale_out=scalar(0.0),
    )


def lower_target(model: ModelSpec, hw: HardwareSpec, precision: Precision, dep: DeploymentSpec,
                 kv_bytes: float, state_bytes: float) -> PassTable:
    ops = target_ops(model)
    return lower_ops(ops, model, hw, precision, dep, kv_bytes, state_bytes, total_layers(ops),
                     floor_passes(model, ops))


def lower_draft(model: ModelSpec, hw: HardwareSpec, precision: Precision, dep: DeploymentSpec,
                kv_bytes: float, state_bytes: float) -> PassTable | None:
    ops = draft_ops(model)
    if not ops:
        return None
    return lower_ops(ops, model, hw, precision, dep, kv_bytes, state_bytes, 1)


def memory_footprint(model: ModelSpec, precision: Precision, dep: DeploymentSpec, kv_bytes: float,
                     with_draft: bool, state_bytes: float) -> MemoryFootprint:
    """Resident weights (all local experts) and cache per request, per GPU."""
    ops = target_ops(model) + (draft_ops(model) if with_draft else [])
    weights = 0.0
    kv: list[tuple[float, float, float, float]] = []
    state = 0.0
    for op in ops:
        wbytes = BYTES_PER_VALUE[weight_dtype(op, model, precision)]
        if op.shard == "experts":
            weights += op.layers * op.params * wbytes / dep.tp
            continue
        split = _split(op, dep)
        weights += op.layers * op.params * wbytes / split
        if op.cache_values_per_token:
            per_token = op.layers * op.cache_values_per_token * kv_bytes / _kv_shard(op, dep)
            kv.append((per_token, op.ctx_scale, op.ctx_offset, op.store_cap))
        if op.state_values_per_request:
            state += op.layers * op.state_values_per_request * state_bytes / min(dep.attention_tp, op.state_heads)
    emb = embedding_op(model.hidden_size, model.vocab_size)
    weights += emb.params * BYTES_PER_VALUE["bf16"] / dep.tp
    return MemoryFootprint(weights, tuple(kv), state)
