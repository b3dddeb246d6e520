"""Operators of one forward pass, per layer group, before any parallel split.

Each `OpDef` states an operator's weights, FLOPs per token, attention work per context token, cache and
state sizes in *elements*; `lowering.py` turns them into per-GPU bytes and FLOPs for a deployment and
precision. Parameter counts (total, active, draft) are derived from the same definitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simulator.specs.model import (
    FfnSpec,
    GqaAttention,
    IndexerSpec,
    LayerGroup,
    LinearAttention,
    MlaAttention,
    ModelSpec,
)

# attention: split over attention-TP ranks, each attention-DP rank runs its own requests; replicated: the same
# but computed whole on every attention-TP rank (not split); tp: split over TP; experts: the routed experts
Shard = Literal["attention", "replicated", "tp", "experts", "none"]
WeightClass = Literal["dense", "expert", "embedding"]
# gemm: the weights' dtype; attention and lm_head: bf16; indexer: the sparse-attention indexer's FP8 logits
ComputeClass = Literal["gemm", "attention", "lm_head", "indexer"]

INF_TOKENS = 1e12  # "no cap" for context lengths


@dataclass(frozen=True)
class OpDef:
    """One operator summed over `layers` identical layers; quantities per layer, unsharded."""

    name: str
    layers: int
    shard: Shard
    weight_class: WeightClass = "dense"
    compute: ComputeClass = "gemm"
    params: float = 0.0  # weight elements
    active_params: float = 0.0  # weight elements one token multiplies
    flops_per_token: float = 0.0  # besides 2 x active_params (e.g. recurrent state update)
    flops_per_token_ctx: float = 0.0  # attention FLOPs per token per (effective) context token
    cache_values_per_token: float = 0.0  # KV-cache elements written per token, read per context token
    ctx_scale: float = 1.0  # effective context = min(ctx_scale x L + ctx_offset, ctx_cap)
    ctx_offset: float = 0.0
    ctx_cap: float = INF_TOKENS  # reads (sparse top-k, window)
    # query heads of an attention core run by the sparse kernel (rows given as indices: a top-k selection, or
    # DeepSeek-V4's window + compressed rows): it computes every token at no fewer than the GPU's
    # sparse-attention head tile per rank (lowering.head_padding; 0: a dense kernel)
    sparse_heads: int = 0
    store_cap: float = INF_TOKENS  # cached tokens kept (sliding window)
    kv_heads: int = 0  # KV heads the cache splits over under attention TP (0: replicated, MLA-style)
    state_values_per_request: float = 0.0  # recurrent state elements (fp32) read + written per step
    state_heads: int = 1
    num_experts: int = 0
    experts_per_token: int = 0
    expert_params: float = 0.0  # weight elements of one routed expert


def _indexer_ops(idx: IndexerSpec, hidden: int, q_in: int, layers: int, scale: float) -> list[OpDef]:
    """The lightning indexer (DeepSeek-V3.2 DSA, GLM-5, DeepSeek-V4 CSA): its q / k / head-weight projections
    and its logits of every query against every cached index key, before the top-k selection.

    Replicated on every attention-TP rank, not split (SGLang nsa_indexer.py and vLLM / ATOM Indexer: wq_b, wk
    and weights_proj are ReplicatedLinear, "no tensor parallel, just replicated", all index heads per rank),
    logits in FP8 (DeepGEMM fp8_mqa_logits / fp8_paged_mqa_logits over an FP8 index-key cache).
    """
    proj = q_in * idx.num_heads * idx.head_dim + hidden * idx.head_dim + hidden * idx.num_heads
    return [
        OpDef("indexer.proj", layers, "replicated", params=proj, active_params=proj),
        OpDef("indexer.score", layers, "replicated", compute="indexer",
              flops_per_token_ctx=2 * idx.num_heads * idx.head_dim, cache_values_per_token=idx.head_dim,
              ctx_scale=scale),
    ]


def mla_ops(a: MlaAttention, hidden: int, layers: int) -> list[OpDef]:
    qk_dim = a.qk_nope_head_dim + a.qk_rope_head_dim
    q = (hidden * a.q_lora_rank + a.q_lora_rank * a.num_heads * qk_dim) if a.q_lora_rank else (
        hidden * a.num_heads * qk_dim)
    kv = hidden * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank * a.num_heads * (
        a.qk_nope_head_dim + a.v_head_dim)
    o = a.num_heads * a.v_head_dim * hidden
    latent = a.kv_lora_rank + a.qk_rope_head_dim
    cap = a.indexer.top_k_tokens if a.indexer else INF_TOKENS
    ops = [
        OpDef("mla.proj", layers, "attention", params=q + kv + o, active_params=q + kv + o),
        # absorbed MLA: scores over the latent (+rope) and values from the latent, per head
        OpDef("mla.core", layers, "attention", compute="attention",
              flops_per_token_ctx=2 * a.num_heads * (latent + a.kv_lora_rank),
              cache_values_per_token=latent, ctx_cap=cap, sparse_heads=a.num_heads if a.indexer else 0),
    ]
    if a.indexer:
        ops += _indexer_ops(a.indexer, hidden, a.q_lora_rank or hidden, layers, 1.0)
    return ops


def gqa_ops(a: GqaAttention, hidden: int, layers: int) -> list[OpDef]:
    q_out = a.num_heads * a.head_dim * (2 if a.output_gate else 1)
    q = hidden * a.q_lora_rank + a.q_lora_rank * q_out if a.q_lora_rank else hidden * q_out
    kv_vectors = 1 if a.shared_kv else 2
    kv = hidden * a.num_kv_heads * a.head_dim * kv_vectors
    attn_out = a.num_heads * a.head_dim
    if a.o_lora_rank:
        o = attn_out * a.o_lora_rank + a.o_groups * a.o_lora_rank * hidden
    else:
        o = attn_out * hidden
    cache = a.num_kv_heads * a.head_dim * kv_vectors
    scale = 1.0 / a.kv_compression_ratio
    offset = float(a.sliding_window_tokens or 0) if a.kv_compression_ratio > 1 else 0.0
    store = INF_TOKENS
    if a.kv_compression_ratio == 1 and a.sliding_window_tokens:
        cap = store = float(a.sliding_window_tokens)
    elif a.indexer:
        cap = a.indexer.top_k_tokens + offset
    else:
        cap = INF_TOKENS
    kv_heads = 0 if a.shared_kv else a.num_kv_heads
    # compressed attention (DeepSeek-V4) runs every layer through the sparse kernel, its window and compressed
    # rows (all of them at x128, the indexer's top-k at x4) given as indices: "two-stage sparse attention over
    # original + compressed KV" (vLLM / SGLang DeepseekV4 attention)
    sparse = a.indexer is not None or a.kv_compression_ratio > 1
    ops = [
        OpDef("gqa.proj", layers, "attention", params=q + kv + o, active_params=q + kv + o),
        OpDef("gqa.core", layers, "attention", compute="attention",
              flops_per_token_ctx=2 * a.num_heads * a.head_dim * 2, cache_values_per_token=cache,
              ctx_scale=scale, ctx_offset=offset, ctx_cap=cap, store_cap=store, kv_heads=kv_heads,
              sparse_heads=a.num_heads if sparse else 0),
    ]
    if a.indexer:
        ops += _indexer_ops(a.indexer, hidden, a.q_lora_rank or hidden, layers, scale)
    return ops


def linear_attention_ops(a: LinearAttention, hidden: int, layers: int) -> list[OpDef]:
    qk = a.num_key_heads * a.key_head_dim
    v = a.num_value_heads * a.value_head_dim
    proj = hidden * (2 * qk + 2 * v) + hidden * 2 * a.num_value_heads + v * hidden
    conv = (2 * qk + v) * a.conv_kernel
    state = a.num_value_heads * a.value_head_dim * a.key_head_dim
    return [
        OpDef("linear_attn.proj", layers, "attention", params=proj + conv, active_params=proj + conv),
        # delta-rule update and readout: a few multiply-adds per state element per token
        OpDef("linear_attn.state", layers, "attention", compute="attention", flops_per_token=8 * state,
              state_values_per_request=state + conv, state_heads=a.num_value_heads),
    ]


def attention_ops(a: MlaAttention | GqaAttention | LinearAttention, hidden: int, layers: int) -> list[OpDef]:
    if isinstance(a, MlaAttention):
        return mla_ops(a, hidden, layers)
    if isinstance(a, GqaAttention):
        return gqa_ops(a, hidden, layers)
    return linear_attention_ops(a, hidden, layers)


def ffn_ops(f: FfnSpec, hidden: int, layers: int) -> list[OpDef]:
    if f.kind == "dense":
        p = 3 * hidden * f.intermediate_size  # SwiGLU: gate, up, down
        return [OpDef("ffn.dense", layers, "tp", params=p, active_params=p)]
    assert f.num_experts and f.experts_per_token and f.expert_intermediate_size
    expert = 3 * hidden * f.expert_intermediate_size
    router = hidden * f.num_experts
    ops = [
        OpDef("moe.router", layers, "none", params=router, active_params=router),
        OpDef("moe.experts", layers, "experts", weight_class="expert", params=f.num_experts * expert,
              active_params=f.experts_per_token * expert, num_experts=f.num_experts,
              experts_per_token=f.experts_per_token, expert_params=expert),
    ]
    if f.num_shared_experts:
        shared = f.num_shared_experts * 3 * hidden * f.shared_width
        ops.append(OpDef("moe.shared", layers, "tp", params=shared, active_params=shared))
    return ops


def layer_ops(g: LayerGroup, hidden: int, prefix: str = "") -> list[OpDef]:
    ops = attention_ops(g.attention, hidden, g.count) + ffn_ops(g.ffn, hidden, g.count)
    return [OpDef(**{**op.__dict__, "name": prefix + op.name}) for op in ops] if prefix else ops


def lm_head_op(hidden: int, vocab: int, name: str = "lm_head") -> OpDef:
    return OpDef(name, 1, "tp", weight_class="embedding", compute="lm_head", params=hidden * vocab,
                 active_params=hidden * vocab)


def embedding_op(hidden: int, vocab: int) -> OpDef:
    """Token embedding: a lookup (no GEMM), counted in parameters; reads one row per token."""
    return OpDef("embedding", 1, "none", weight_class="embedding", params=hidden * vocab, active_params=hidden)


def target_ops(m: ModelSpec) -> list[OpDef]:
    """Every operator of one forward pass of the target model, group by group."""
    ops: list[OpDef] = []
    for i, g in enumerate(m.layers):
        ops += layer_ops(g, m.hidden_size, prefix=f"L{i}.")
    ops.append(lm_head_op(m.hidden_size, m.vocab_size))
    return ops


def draft_ops(m: ModelSpec) -> list[OpDef]:
    """One pass of the draft module: its layer, the input fusion projection, and the LM head it uses."""
    if m.draft is None:
        return []
    d = m.draft
    h = m.hidden_size
    fuse = d.input_projection_factor * h * h
    ops = layer_ops(d.layer, h, prefix="draft.")
    ops.append(OpDef("draft.fuse_proj", 1, "tp", params=fuse, active_params=fuse))
    ops.append(lm_head_op(h, d.own_lm_head_vocab or m.vocab_size, name="draft.lm_head"))
    return ops


def _sum(ops: list[OpDef], field: str) -> float:
    return sum(getattr(op, field) * op.layers for op in ops)


def param_counts(m: ModelSpec) -> dict[str, float]:
    """Total, active-per-token and unique draft parameters, embeddings and LM head included."""
    emb = embedding_op(m.hidden_size, m.vocab_size)
    body = target_ops(m)
    lm_head = m.hidden_size * m.vocab_size
    total = _sum(body, "params") + (0 if m.tie_embeddings else emb.params)
    active = _sum(body, "active_params") + (0 if m.tie_embeddings else emb.params)
    counts = {"total": total, "active": active}
    if m.draft is not None:
        shared_head = 0 if m.draft.own_lm_head_vocab else lm_head
        counts["draft"] = _sum(draft_ops(m), "params") - shared_head
    return counts


# Mixing blocks per layer under hyper-connections: one around attention, one around the FFN (DeepSeek-V4
# reference inference code, model.py Block.forward: hc_pre / hc_post around attn and ffn). Each block runs a
# chain of about 14 dependent small kernels there (hc_pre: the streams flattened and cast, their RMS, the
# mixing projection, the scaling, the Sinkhorn split, the pre-mix product and sum, the cast back; hc_post:
# the post-mix product, the comb product and sum, the add, the cast), about as many as the rest of a layer
# (docs/sources.md#serving-model-priors), so each pays one layer-pass latency floor.
HYPER_CONNECTION_BLOCKS_PER_LAYER = 2
# The sparse-attention indexer (GLM-5 DSA, DeepSeek-V4 CSA layers) runs ahead of its layer's attention as a
# chain of about 13 dependent small kernels per decode pass in the engines (SGLang nsa_indexer.py: the q
# projection, q RoPE and Hadamard rotation, the k projection, k norm, RoPE and rotation, the FP8 quantization of
# q and of k with its cache store, the head-weight projection, the paged-logits schedule, the FP8 paged MQA
# logits, the top-k transform), about as many as the rest of a layer: one more layer-pass floor per such layer.
# Its bytes and FLOPs are priced as operators (_indexer_ops); this is the latency of its chain.
INDEXER_BLOCKS_PER_LAYER = 1


def floor_passes(m: ModelSpec, ops: list[OpDef]) -> int:
    """Layer passes whose latency floor a target pass pays: its layer passes (`total_layers`), plus the
    hyper-connection blocks of its transformer layers and the indexer blocks of its sparse-attention layers."""
    blocks = HYPER_CONNECTION_BLOCKS_PER_LAYER * sum(g.count for g in m.layers) if m.hyper_connection_streams > 1 else 0
    indexers = INDEXER_BLOCKS_PER_LAYER * sum(g.count for g in m.layers
                                              if getattr(g.attention, "indexer", None) is not None)
    return total_layers(ops) + blocks + indexers


def total_layers(ops: list[OpDef]) -> int:
    """Distinct layer passes (groups' layer counts, not operators)."""
    seen: dict[str, int] = {}
    for op in ops:
        prefix = op.name.split(".")[0]
        seen[prefix] = max(seen.get(prefix, 0), op.layers)
    return int(sum(seen.values()))
