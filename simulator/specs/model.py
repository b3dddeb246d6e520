"""Model architecture spec: a model is data (layer groups of attention + FFN kinds), not code per name."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from simulator.specs.base import Frozen


class IndexerSpec(Frozen):
    """DeepSeek-style sparse-attention indexer: scores every cached token, attention reads the top-k."""

    num_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    top_k_tokens: int = Field(ge=1)


class MlaAttention(Frozen):
    """Multi-head latent attention (DeepSeek-V3 family). Cache per token: kv_lora_rank + qk_rope_head_dim."""

    kind: Literal["mla"] = "mla"
    num_heads: int = Field(ge=1)
    q_lora_rank: int = Field(default=0, ge=0, description="0 = no low-rank query projection")
    kv_lora_rank: int = Field(ge=1)
    qk_nope_head_dim: int = Field(ge=1)
    qk_rope_head_dim: int = Field(ge=0)
    v_head_dim: int = Field(ge=1)
    indexer: IndexerSpec | None = None


class GqaAttention(Frozen):
    """Grouped-query attention (MHA/MQA as special cases), optionally windowed, compressed or low-rank."""

    kind: Literal["gqa"] = "gqa"
    num_heads: int = Field(ge=1)
    num_kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    output_gate: bool = False
    sliding_window_tokens: int | None = Field(default=None, ge=1)
    q_lora_rank: int = Field(default=0, ge=0)
    o_lora_rank: int = Field(default=0, ge=0, description="grouped low-rank output projection rank (0 = dense)")
    o_groups: int = Field(default=1, ge=1)
    shared_kv: bool = Field(default=False, description="K and V share one cached vector (MQA-style latent)")
    kv_compression_ratio: int = Field(default=1, ge=1, description="cached tokens = context / ratio (+ window)")
    indexer: IndexerSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> GqaAttention:
        if self.num_heads % self.num_kv_heads:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        return self


class LinearAttention(Frozen):
    """Gated DeltaNet linear attention: a fixed-size recurrent state per request instead of a KV cache."""

    kind: Literal["linear"] = "linear"
    num_key_heads: int = Field(ge=1)
    num_value_heads: int = Field(ge=1)
    key_head_dim: int = Field(ge=1)
    value_head_dim: int = Field(ge=1)
    conv_kernel: int = Field(default=4, ge=1)


AttentionSpec = Annotated[MlaAttention | GqaAttention | LinearAttention, Field(discriminator="kind")]


class FfnSpec(Frozen):
    """Dense SwiGLU MLP, or a mixture of SwiGLU experts with optional shared experts."""

    kind: Literal["dense", "moe"]
    intermediate_size: int | None = Field(default=None, ge=1, description="dense MLP width")
    num_experts: int | None = Field(default=None, ge=1)
    experts_per_token: int | None = Field(default=None, ge=1)
    expert_intermediate_size: int | None = Field(default=None, ge=1)
    num_shared_experts: int = Field(default=0, ge=0)
    shared_intermediate_size: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> FfnSpec:
        if self.kind == "dense":
            if self.intermediate_size is None:
                raise ValueError("intermediate_size is required for a dense FFN")
        else:
            for f in ("num_experts", "experts_per_token", "expert_intermediate_size"):
                if getattr(self, f) is None:
                    raise ValueError(f"{f} is required for an MoE FFN")
            if self.experts_per_token > self.num_experts:  # type: ignore[operator]
                raise ValueError("experts_per_token must not exceed num_experts")
        return self

    @property
    def shared_width(self) -> int:
        return self.shared_intermediate_size or self.expert_intermediate_size or 0


class LayerGroup(Frozen):
    """`count` consecutive-or-interleaved layers sharing one attention kind and one FFN kind."""

    count: int = Field(ge=1)
    attention: AttentionSpec
    ffn: FfnSpec


class DraftModuleSpec(Frozen):
    """The draft module run k times per step: one layer of the model's kind (MTP) or an EAGLE-3 head.

    `input_projection_factor` = 2 for MTP (concat of embedding and hidden state, 2h -> h), 3 for EAGLE-3
    (three fused hidden states). It shares the target's LM head unless `own_lm_head_vocab` is set.
    """

    kind: Literal["mtp", "eagle3"] = "mtp"
    layer: LayerGroup
    input_projection_factor: int = Field(default=2, ge=1)
    own_lm_head_vocab: int | None = Field(default=None, ge=1)


class ModelSpec(Frozen):
    name: str
    display_name: str
    hidden_size: int = Field(ge=1)
    vocab_size: int = Field(ge=1)
    tie_embeddings: bool = False
    layers: list[LayerGroup] = Field(min_length=1)
    native_expert_dtype: Literal["fp4"] | None = Field(
        default=None, description="experts stored in this dtype whatever the deployment precision")
    native_kv_cache_dtype: Literal["fp8"] | None = Field(default=None, description=(
        "the only KV-cache dtype the model's attention kernels take, whatever a deployment asks for (DeepSeek-V4: "
        "FlashMLA's sparse decode reads an FP8 cache; SGLang turns its 'auto' into fp8_e4m3)"))
    draft: DraftModuleSpec | None = None
    hyper_connection_streams: int = Field(default=1, ge=1, le=16, description=(
        "residual streams of manifold-constrained hyper-connections (DeepSeek-V4 hc_mult 4); 1: a plain "
        "residual. Above 1, each layer's attention and FFN run inside a mixing block whose small kernels pay "
        "a layer-pass latency floor each (operators.HYPER_CONNECTION_BLOCKS_PER_LAYER)"))
    reference_params_b: dict[str, float] = Field(
        default_factory=dict, description="published/derived counts (total, active, draft) for the spec test")
    source: str = ""

    @property
    def has_recurrent_state(self) -> bool:
        """Whether any layer keeps a recurrent state per request (linear attention) instead of a KV cache."""
        return any(g.attention.kind == "linear" for g in self.layers)

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.draft is not None and self.draft.layer.count != 1:
            raise ValueError("draft.layer.count must be 1 (the module is run k times, one layer each)")
        return self

    @property
    def moe_ffns(self) -> list[FfnSpec]:
        return [g.ffn for g in self.layers if g.ffn.kind == "moe"]
