"""The project's vocabulary, defined once: sides, precisions, cache dtypes, workloads, engines, hardware families, case
keys.

Every module that names one of these imports it from here (specs layer: no physics, no I/O).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

# ---- side: speculative decoding on (MTP) or off ---------------------------------------------------------
Side = Literal["mtp", "off"]
SIDES: tuple[Side, ...] = ("mtp", "off")  # the order tables and plots show them in


def side_of(with_draft: bool) -> Side:
    return "mtp" if with_draft else "off"


# ---- precision: weight format of a deployment -------------------------------------------------------------
Precision = Literal["fp4", "fp8", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("fp4", "fp8", "bf16")


class PrecisionFormat(NamedTuple):
    """Bytes per stored value and the tensor-core peak (`PeakTflops` field) its GEMMs run at."""

    bytes_per_value: float
    peak: Precision


# FP4 = NVFP4/MXFP4: 4 bits + one 8-bit scale per 16 elements (NVFP4) = 4.5 bits.
PRECISION_FORMATS: dict[Precision, PrecisionFormat] = {
    "fp4": PrecisionFormat(0.5625, "fp4"),
    "fp8": PrecisionFormat(1.0, "fp8"),
    "bf16": PrecisionFormat(2.0, "bf16"),
}
BYTES_PER_VALUE: dict[str, float] = {p: f.bytes_per_value for p, f in PRECISION_FORMATS.items()} | {"fp32": 4.0}

# ---- KV-cache dtype: how a deployment stores its cache ----------------------------------------------------
# "auto": the simulator's rule for a deployment nobody configured (FP8 cache beside FP8 / FP4 weights, BF16
# beside BF16 ones, ServingSpec.stored_kv_cache_dtype); "fp8" / "bf16": what an engine was told (or defaults to)
KvCacheDtype = Literal["auto", "fp8", "bf16"]
# ---- recurrent-state dtype: how a linear-attention (Gated DeltaNet) layer stores its state per request ---------
# "auto": the model's configured dtype (Qwen3.5's config.json: mamba_ssm_dtype float32, which SGLang reads);
# "bf16" where a script sets --mamba-ssm-dtype bfloat16 (or SGLANG_MAMBA_SSM_DTYPE)
StateDtype = Literal["auto", "fp32", "bf16"]

# ---- workload: the benchmark's fixed-length random prompts, by (ISL, OSL) ---------------------------------
Workload = Literal["1k1k", "8k1k", "1k8k"]
WORKLOADS: dict[tuple[int, int], Workload] = {(1024, 1024): "1k1k", (8192, 1024): "8k1k", (1024, 8192): "1k8k"}
WORKLOAD_NAMES: tuple[Workload, ...] = tuple(WORKLOADS.values())


def workload_tokens(name: str) -> tuple[int, int]:
    """(ISL, OSL) of a benchmark workload name; a clear error for an unknown one."""
    for tokens, w in WORKLOADS.items():
        if w == name:
            return tokens
    raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOAD_NAMES)}")


# ---- hardware family: the unit the efficiency knobs are calibrated per ------------------------------------
HardwareFamily = Literal["hopper", "blackwell", "cdna"]
HARDWARE_FAMILIES: tuple[HardwareFamily, ...] = ("hopper", "blackwell", "cdna")
GENERATION_FAMILY: dict[str, HardwareFamily] = {
    "hopper": "hopper", "blackwell": "blackwell", "blackwell_ultra": "blackwell", "cdna3": "cdna", "cdna4": "cdna"}


def family_of_generation(generation: str) -> HardwareFamily | None:
    """The calibration family of a GPU generation (None: a generation no family covers)."""
    return GENERATION_FAMILY.get(generation)


# ---- engine: the serving engine a benchmark recipe (or a measured row) runs ----------------------------------
# Names as the benchmark configs write them (data/benchmark-configs/*-master.yaml, via the search spaces);
# measured rows spell TensorRT-LLM "trtllm" (aiconfigurator's backend column). SGLang is the reference: the
# hardware knobs are fitted with it as the unit, and a deployment whose engine is not given ("any": the open
# search, which runs under SGLang's documented defaults) is priced as SGLang.
Engine = Literal["sglang", "vllm", "trt", "atom"]
ENGINES: tuple[Engine, ...] = ("sglang", "vllm", "trt", "atom")
REFERENCE_ENGINE: Engine = "sglang"
ENGINE_ALIASES: dict[str, Engine] = {"trtllm": "trt", "any": "sglang"}


def engine_key(name: str) -> Engine:
    """The vocabulary name of an engine as a config or a measured row spells it; a clear error otherwise."""
    key = ENGINE_ALIASES.get(name, name)
    if key not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(ENGINES)} (aliases: "
                         f"{', '.join(f'{a} = {e}' for a, e in ENGINE_ALIASES.items())})")
    return key  # type: ignore[return-value]


# ---- case key: which model x GPU x precision x workload a result belongs to -------------------------------
class CaseKey(NamedTuple):
    model: str
    hardware: str
    precision: str
    workload: str

    def __str__(self) -> str:  # for file names and logs only; code compares the tuple
        return f"{self.model} {self.hardware} {self.precision} {self.workload}"


__all__ = [
    "BYTES_PER_VALUE", "ENGINES", "ENGINE_ALIASES", "GENERATION_FAMILY", "REFERENCE_ENGINE", "HARDWARE_FAMILIES", "PRECISIONS", "PRECISION_FORMATS", "SIDES",
    "WORKLOADS", "WORKLOAD_NAMES", "CaseKey", "Engine", "HardwareFamily", "Precision", "PrecisionFormat", "Side",
    "Workload", "engine_key", "family_of_generation", "side_of", "workload_tokens",
]
