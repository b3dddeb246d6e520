"""Hardware spec: one GPU's peaks, memory, scale-up link, power, and the efficiency knobs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from simulator.specs.base import Frozen
from simulator.specs.topology import SCALE_OUT_BANDWIDTH_FRACTION, SCALE_OUT_MESSAGE_LATENCY_US, ScaleOutSpec
from simulator.specs.vocabulary import REFERENCE_ENGINE, engine_key


class PeakTflops(Frozen):
    """Dense (not sparse) tensor-core peaks in TFLOP/s; `fp4` is None where the GPU has no FP4 cores."""

    bf16: float = Field(gt=0)
    fp8: float = Field(gt=0)
    fp4: float | None = Field(default=None, gt=0)


class EfficiencyKnobs(Frozen):
    """The small named set of efficiency factors (per hardware). Calibration fits these and nothing else
    (besides the acceptance scale and the engine factors).

    Fractions are achieved / peak; latencies are floors that no bandwidth removes. The last two are the routers'
    statistics rather than the GPU's, carried with the knobs and fitted once for every family.
    """

    hbm_bandwidth_fraction: float = Field(default=0.8, gt=0, le=1)
    compute_fraction: float = Field(default=0.7, gt=0, le=1)
    link_bandwidth_fraction: float = Field(default=0.7, gt=0, le=1)
    layer_pass_latency_us: float = Field(default=30.0, ge=0, le=10_000)
    collective_latency_us: float = Field(default=15.0, ge=0, le=10_000)
    step_latency_us: float = Field(default=500.0, ge=0, le=1_000_000)
    moe_imbalance: float = Field(default=1.3, ge=1, le=8)
    # The draft pass's own floor (one MTP/EAGLE layer + 2h -> h fuse projection + LM head + top-1 over the
    # vocabulary + the next draft step's metadata kernels, under CUDA graphs), in place of the target's
    # per-layer floor. Prior from TensorRT-LLM's DeepSeek-R1 FP4 8 x B200 batch-1 table
    # (docs/sources.md#acceptance): AL / tok/s/user for k = 0..5 give 9.0 ms per plain step and +0.6-1.0 ms per
    # drafted token (least-squares slope 0.735 ms); the model with this floor at 0 and the other priors gives
    # 0.207 ms per drafted token (roofline, the verify pass's growth, the draft layer's collectives, with the
    # routing priors below; 0.310 ms under uniform routing), so the floor is the difference, 0.53 ms
    # (tests/test_speculative_terms.py checks the k = 0..5 trend). Read as 0.47 ms beside the former
    # routing-locality prior (0.15, which left 0.265 ms to the roofline).
    draft_pass_latency_us: float = Field(default=530.0, ge=0, le=100_000)
    # Host time to issue one layer's kernels when a pass runs WITHOUT CUDA graphs (every prefill pass; a decode
    # batch above the engine's cuda_graph_max_bs): the CPU runs ahead of the GPU, so a pass takes max(GPU time,
    # launch time). SGLang's published eager passes of MoE models, per layer, eager total (time above the graphed
    # pass): DeepSeek-Coder-V2-Lite decode, PR #1401, 0.92 (0.70) ms; a one-token DeepSeek-V3 prefill, PR #12160,
    # 1.35 (0.98) ms; DeepSeek-V4 decode at batch 1, PR #24047, 3.9 (2.3) ms. Prior 0.7 ms, the lowest reading:
    # 0.92 and 1.35 ms cross-validated worse, and fitting it per family worse still (docs/sources.md).
    eager_layer_pass_latency_us: float = Field(default=700.0, ge=0, le=100_000)
    # Host bookkeeping per request per speculative step that the scheduler cannot overlap with the GPU
    # (SGLang PR #9588: speculative decoding runs without the overlap scheduler because draft and verify are
    # sequential; overlapping it recovers 5-10 % at all batch sizes; PR #8490 profiles ~0.1 ms per batch
    # for future resolve + draft plan). Prior: 5-10 % of a ~20-40 ms step over ~128 requests ~ 15 us.
    # Plain decode hides this work behind the GPU (overlap scheduler on), so it is charged only when k > 0.
    request_overhead_us: float = Field(default=15.0, ge=0, le=10_000)
    # The scale-out network (NIC per GPU, RDMA): a pass whose collectives leave the scale-up domain (wide EP
    # across nodes, specs/topology.py) pays this per all-to-all phase and moves bytes at this fraction of the
    # NIC line rate; a KV transfer prefill -> decode pays them once. Priors from DeepEP's low-latency timings
    # (derivation at SCALE_OUT_MESSAGE_LATENCY_US in specs/topology.py).
    scale_out_latency_us: float = Field(default=SCALE_OUT_MESSAGE_LATENCY_US, ge=0, le=10_000)
    scale_out_bandwidth_fraction: float = Field(default=SCALE_OUT_BANDWIDTH_FRACTION, gt=0, le=1)
    # Routing locality: the fraction of its routed experts a token shares with the previous token of the same
    # request beyond chance (moe.routing_draws), so a verify pass's k + 1 positions touch fewer distinct experts
    # than k + 1 independent tokens. A property of trained routers rather than of the GPU, carried here so the
    # step model and the kernel see it with the other knobs, and fitted once for every family (one parameter,
    # `shared.route_repeat_fraction`). Prior 0.45 from Cohere's measurement of exactly this quantity on its
    # production MoE models under speculative verification ("Why MoE models get more from speculative decoding",
    # cohere.com/blog, 2026-04-21: the K + 1 = 4 tokens of a verify pass load about 2.5x one token's unique
    # expert weights rather than 4x, 31 % under independent routing; step-1 expert overlap 38 %: figures as the
    # post's summaries quote them, docs/sources.md#serving-model-priors). 2.5x with
    # the collisions that 31 % implies (E / k ~ 16) is 2.63 independent draws = 1 + 3 (1 - rho): rho = 0.46.
    # The former prior, 0.15, read Mixtral's first-choice repetition (arXiv 2401.04088, section 5: 14-28 % by
    # layer against 12.5 % by chance), a coarser router (top-2 of 8) and not a verify pass's union.
    route_repeat_fraction: float = Field(default=0.45, ge=0, lt=1)
    # Expert popularity: the coefficient of variation of the experts' routing rates (gamma-distributed,
    # moe.expected_experts_touched), so a batch touches fewer distinct experts than under uniform routing. Also
    # the routers' property, fitted once for every family (`shared.expert_popularity_cv`). Prior 1.0 (a Gini
    # coefficient of 0.5 for the gamma): Latent Prototype Routing (arXiv 2506.21328) measures the expert load of
    # DeepSeek-V3, Qwen3-MoE and Mixtral at a Gini coefficient of 0.70 on average (CV 1.6 for a gamma) over
    # single-domain datasets; a serving batch mixes prompts, so the prior sits below it.
    expert_popularity_cv: float = Field(default=1.0, ge=0, le=10)


class EngineEfficiency(Frozen):
    """Compute a serving engine achieves on the same GPU, relative to SGLang: the factor on
    `EfficiencyKnobs.compute_fraction` (the result clamped at 1) a deployment on that engine runs with.

    The hardware knobs are fitted with SGLang as the unit (the benchmark's most common engine, and the open
    search's limits); engines differ in the GEMM, attention and fused-MoE kernels they pick (TensorRT-LLM's
    trtllm-gen and CUTLASS paths, vLLM's, AMD's aiter under ATOM) far more than in how close a weight or KV
    stream gets to HBM peak, so the factor scales the compute roof only. Fitted (task=calibrate, parameters
    `engine_efficiency.<engine>`, prior 1) from measured rows that name their engine: aiconfigurator's silicon
    rows (TensorRT-LLM, vLLM, SGLang on the same GPUs) and the pages' recipes; 1.0: priced as SGLang.
    """

    vllm: float = Field(default=1.0, gt=0, le=4)
    trt: float = Field(default=1.0, gt=0, le=4)
    atom: float = Field(default=1.0, gt=0, le=4)

    def compute_factor(self, engine: str) -> float:
        """The factor of `engine` (as a config spells it; "any": the reference)."""
        key = engine_key(engine)
        return 1.0 if key == REFERENCE_ENGINE else float(getattr(self, key))


# Query heads per rank the vendors' sparse-attention kernels compute at least (docs/sources.md#serving-model-priors):
# FlashMLA's sparse decode kernel takes 64 or 128 (vLLM pads to 64); aiter's MLA kernels at least 16 (ROCm ATOM).
SPARSE_ATTENTION_HEAD_TILE = {"nvidia": 64, "amd": 16}


class HardwareSpec(Frozen):
    name: str
    display_name: str
    vendor: Literal["nvidia", "amd"]
    generation: str
    peak_tflops: PeakTflops
    hbm_capacity_gb: float = Field(gt=0, description=(
        "HBM per GPU in GB (1e9 B) as the driver exposes it (nvidia-smi / rocm-smi total); the data sheets' "
        "figures are binary GB, about 7 % fewer bytes"))
    hbm_usable_gb: float | None = Field(default=None, gt=0)
    hbm_bandwidth_tb_s: float = Field(gt=0)
    scale_up_bandwidth_gb_s: float = Field(gt=0, description="per GPU, per direction")
    scale_up_domain_gpus: int = Field(ge=1)
    scale_up_topology: Literal["switch", "mesh"] = "switch"
    mesh_links: int | None = Field(default=None, ge=1, description="point-to-point links per GPU (mesh only)")
    tdp_w: float = Field(gt=0)
    sparse_attention_head_tile: int = Field(default=None, ge=1, validate_default=False, description=(
        "query heads per rank the sparse-attention kernels (rows given as indices) compute at least; fewer are padded "
        "up to it (default: the vendor's kernels, SPARSE_ATTENTION_HEAD_TILE; docs/sources.md#serving-model-priors)"))
    efficiency: EfficiencyKnobs = EfficiencyKnobs()
    source: str = ""
    scale_out: ScaleOutSpec | None = None  # the NIC per GPU beyond the scale-up domain (specs/topology.py)

    @model_validator(mode="before")
    @classmethod
    def _vendor_defaults(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("sparse_attention_head_tile") is None \
                and data.get("vendor") in SPARSE_ATTENTION_HEAD_TILE:
            data = {**data, "sparse_attention_head_tile": SPARSE_ATTENTION_HEAD_TILE[data["vendor"]]}
        return data

    @model_validator(mode="after")
    def _check(self) -> HardwareSpec:
        if self.hbm_usable_gb is not None and self.hbm_usable_gb > self.hbm_capacity_gb:
            raise ValueError("hbm_usable_gb must not exceed hbm_capacity_gb")
        if self.scale_up_topology == "mesh" and self.mesh_links is None:
            raise ValueError("mesh_links is required when scale_up_topology is 'mesh'")
        return self

    @property
    def usable_hbm_gb(self) -> float:
        return self.hbm_usable_gb if self.hbm_usable_gb is not None else self.hbm_capacity_gb

    def supports(self, dtype: str) -> bool:
        return getattr(self.peak_tflops, dtype) is not None

    def peak_for(self, dtype: str) -> float:
        """Peak TFLOP/s for GEMMs in `dtype`. FP4 weights on a GPU without FP4 cores run weight-only (W4A16):
        dequantized in registers and multiplied on the BF16 tensor cores (vLLM's Marlin fallback, "Weight-only
        FP4 compression will be used leveraging the Marlin kernel"; the benchmark's DeepSeek-V4 H200 SGLang
        recipes set moe_backend marlin), so they compute at the BF16 peak."""
        peak = getattr(self.peak_tflops, dtype)
        return peak if peak is not None else self.peak_tflops.bf16

    def link_bandwidth_gb_s(self, group_gpus: int) -> float:
        """Per-GPU bandwidth a collective over `group_gpus` GPUs can use.

        A switch gives every GPU its full bandwidth to any peer set; a point-to-point mesh only the links
        to the peers in the group (docs/sources.md#hardware).
        """
        if group_gpus <= 1:
            return self.scale_up_bandwidth_gb_s
        if self.scale_up_topology == "mesh":
            links = self.mesh_links or 1
            return self.scale_up_bandwidth_gb_s * min(group_gpus - 1, links) / links
        return self.scale_up_bandwidth_gb_s
