"""Workload, deployment, speculative and serving-engine specs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from simulator.specs.base import Frozen
from simulator.specs.vocabulary import Engine, KvCacheDtype, Precision, StateDtype


class WorkloadSpec(Frozen):
    """Fixed-length random prompts; each request's ISL and OSL drawn uniformly from [low x L, L]."""

    name: str
    isl_tokens: int = Field(ge=1, le=1_048_576)
    osl_tokens: int = Field(ge=2, le=1_048_576)
    length_low_fraction: float = Field(default=0.8, gt=0, le=1)

    @property
    def mean_input_tokens(self) -> float:
        return self.isl_tokens * (1 + self.length_low_fraction) / 2

    @property
    def mean_output_tokens(self) -> float:
        return self.osl_tokens * (1 + self.length_low_fraction) / 2


class DeploymentSpec(Frozen):
    """One single-node deployment. GPUs = tp (no pipeline parallelism: the benchmark ran none); EP and
    DP-attention reuse the same GPUs.

    Pass `context={"model": ModelSpec, "hardware": HardwareSpec}` to model_validate to check it against both.
    """

    tp: int = Field(ge=1, le=1024)
    ep: int = Field(default=1, ge=1, le=1024)
    dp_attention: bool = False

    @property
    def gpus(self) -> int:
        return self.tp

    @property
    def attention_dp(self) -> int:
        return self.tp if self.dp_attention else 1

    @property
    def attention_tp(self) -> int:
        return 1 if self.dp_attention else self.tp

    @property
    def moe_tp(self) -> int:
        return self.tp // self.ep

    @property
    def label(self) -> str:
        return f"tp{self.tp}-ep{self.ep}" + ("-dpa" if self.dp_attention else "")

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> DeploymentSpec:
        if self.tp % self.ep:
            raise ValueError(f"ep={self.ep} must divide tp={self.tp} (EP reuses the TP GPUs)")
        ctx: dict[str, Any] = info.context or {}
        model, hw = ctx.get("model"), ctx.get("hardware")
        if hw is not None and self.gpus > hw.scale_up_domain_gpus:
            raise ValueError(
                f"tp={self.tp} exceeds the scale-up domain of {hw.name} ({hw.scale_up_domain_gpus} GPUs)")
        if model is not None:
            for ffn in model.moe_ffns:
                if ffn.num_experts % self.ep:
                    raise ValueError(f"ep={self.ep} does not divide the {ffn.num_experts} experts of {model.name}")
        return self


class AcceptanceSpec(Frozen):
    """Acceptance length AL(k) by drafted tokens k, as a measured table or per-position conditional rates.

    AL(k) = 1 + sum_{i<=k} prod_{j<=i} p_j for conditional rates p_j. `scale` multiplies the accepted part
    (AL - 1) and is the one acceptance parameter calibration may fit per model.
    """

    al_by_draft_tokens: list[float] | None = Field(default=None, min_length=1, max_length=16)
    conditional_rates: list[float] | None = Field(default=None, min_length=1, max_length=16)
    scale: float = Field(default=1.0, gt=0, le=2)
    source: str = ""

    @field_validator("conditional_rates")
    @classmethod
    def _rates_in_range(cls, v: list[float] | None) -> list[float] | None:
        for i, p in enumerate(v or []):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"conditional_rates[{i}]={p} is outside [0, 1]")
        return v

    @field_validator("al_by_draft_tokens")
    @classmethod
    def _al_in_range(cls, v: list[float] | None) -> list[float] | None:
        for i, al in enumerate(v or []):
            k = i + 1
            if not 1.0 <= al <= k + 1:
                raise ValueError(f"al_by_draft_tokens[{i}] (k={k}) = {al} is outside [1, {k + 1}]")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> AcceptanceSpec:
        if (self.al_by_draft_tokens is None) == (self.conditional_rates is None):
            raise ValueError("give exactly one of al_by_draft_tokens or conditional_rates")
        return self

    @property
    def max_draft_tokens(self) -> int:
        table = self.al_by_draft_tokens if self.al_by_draft_tokens is not None else self.conditional_rates
        return len(table or [])


class SpeculativeSpec(Frozen):
    """Off, or MTP drafting k tokens per step (verified in one pass over k + 1 tokens per request)."""

    mode: Literal["off", "mtp"] = "off"
    draft_tokens: int = Field(default=0, ge=0, le=16)

    @model_validator(mode="after")
    def _check(self) -> SpeculativeSpec:
        if self.mode == "off" and self.draft_tokens != 0:
            raise ValueError("draft_tokens must be 0 when mode is 'off'")
        if self.mode == "mtp" and self.draft_tokens < 1:
            raise ValueError("draft_tokens must be >= 1 when mode is 'mtp'")
        return self


class ServingSpec(Frozen):
    """Engine behaviour that the benchmark's scripts set (data/benchmark-configs/engine_settings.yaml).

    `engine`: the engine the open search and the planner run their deployments on (its default CUDA-graph size
    and token budget, search_space.default_limits, and its calibrated compute efficiency); the benchmark's
    recipes carry their own. Prefill scheduling stays `prefill_mode` whatever the engine (vLLM's chunked prefill,
    priced for the benchmark's vLLM recipes, made leave-one-page-out worse: docs/sources.md).
    """

    engine: Engine = Field(default="sglang", description="the engine the open search and the planner price on")
    prefill_mode: Literal["separate", "chunked"] = Field(
        default="separate", description="separate: a prefill batch stalls decode; chunked: mixed into decode")
    prefill_chunk_tokens: int = Field(default=16384, ge=256, le=1_048_576)
    mem_fraction: float = Field(default=0.85, gt=0.1, le=0.98, description="share of HBM for weights + KV")
    kv_cache_dtype: KvCacheDtype = Field(default="auto", description=(
        "KV-cache storage: auto (FP8 beside FP8 / FP4 weights, BF16 beside BF16), fp8 or bf16; a benchmark "
        "deployment runs with the dtype its script set, or its engine's default (search_space.kv_cache_dtype_of)"))
    ssm_state_dtype: StateDtype = Field(default="auto", description=(
        "linear-attention recurrent state per request: auto (the model's configured dtype, FP32 for Qwen3.5), "
        "fp32 or bf16; a benchmark deployment runs with the dtype its script set"))
    max_running_requests: int = Field(default=1024, ge=1, le=65_536)

    def stored_kv_cache_dtype(self, precision: Precision) -> Literal["fp8", "bf16"]:
        """The KV-cache dtype stored: the setting, "auto" resolved (FP8 beside FP8 / FP4 weights, else BF16)."""
        if self.kv_cache_dtype == "auto":
            return "bf16" if precision == "bf16" else "fp8"
        return self.kv_cache_dtype

    def stored_state_dtype(self) -> Literal["fp32", "bf16"]:
        """The recurrent-state dtype stored ("auto": FP32, the configured dtype of the hybrid models priced)."""
        return "bf16" if self.ssm_state_dtype == "bf16" else "fp32"


class EngineLimits(Frozen):
    """Engine limits one benchmark script set, resolved for one condition (concurrency, TP, ...).

    `cuda_graph_max_batch`: largest decode batch captured in a CUDA graph, per attention-DP rank (SGLang
    --cuda-graph-max-bs, TRT-LLM cuda_graph_config.max_batch_size) or, when `cuda_graph_counts_tokens`, in
    tokens B x (1 + k) (vLLM max_cudagraph_capture_size); None: every batch is captured. Above it the step
    runs eagerly (EfficiencyKnobs.eager_layer_pass_latency_us). `max_running_requests`: most requests
    scheduled at once (None: memory decides). `max_num_tokens`: per-step token budget (vLLM
    --max-num-batched-tokens, TRT-LLM max_num_tokens): decode tokens B x (1 + k) and prefill chunks fit in it.
    `speculation_overlapped`: the scheduler overlaps its per-request host work with the GPU while speculating
    (SGLang's spec v2, the default from v0.5.11; vLLM's async scheduling from v0.14; TensorRT-LLM's overlap
    scheduler), so the per-request bookkeeping term (EfficiencyKnobs.request_overhead_us) does not add to the
    step; False: a speculative worker whose host work is exposed (SGLang's spec v1, up to v0.5.10; ATOM).
    """

    cuda_graph_max_batch: int | None = Field(default=None, ge=0, le=1_048_576)
    cuda_graph_counts_tokens: bool = False
    max_running_requests: int | None = Field(default=None, ge=1, le=1_048_576)
    max_num_tokens: int | None = Field(default=None, ge=1, le=16_777_216)
    speculation_overlapped: bool = False
    source: str = ""
