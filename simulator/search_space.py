"""Benchmark search spaces: the deployments the InferenceX benchmark actually ran, as shipped tables.

Two generated files, read here once each (cached per path and modification time):

* ``conf/deployments/benchmark.yaml``: single-node deployments per model/hardware/precision/workload, with the
  concurrencies swept, the MTP draft length and the engine limits the benchmark script set at each concurrency.
* ``conf/deployments/multinode.yaml``: the disaggregated (xPyD) rows, and the rows the builder skipped (with why).

Both are generated from the InferenceX configs (Apache-2.0) by ``tools/build_deployments.py`` (run as
``python tools/build_deployments.py --shared ../shared``); this module only reads them and never imports the
builder. Each file's ``source`` block names the upstream commit and the sha256 of every input file read.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.catalog import CONF_DIR
from simulator.specs import EngineLimits
from simulator.specs.topology import DisaggregatedSpec
from simulator.specs.vocabulary import KvCacheDtype, StateDtype
from simulator.specs.vocabulary import Side as Spec  # the side a benchmark row runs ("spec-decoding")

DEFAULT_PATH = CONF_DIR / "deployments" / "benchmark.yaml"
MULTINODE_PATH = CONF_DIR / "deployments" / "multinode.yaml"
TOP_KEY = "benchmark_search_spaces"
MULTINODE_KEY = "benchmark_multinode"
SOURCE_KEY = "source"  # the upstream snapshot a generated file was read from (repository, commit, input sha256s)
LIMIT_KEYS = ("max_running_requests", "max_num_tokens", "cuda_graph_max_bs")

LimitRow = tuple[int, int | None, int | None, int | None]  # [C, cuda_graph_max_batch, max_running, max_num_tokens]


class BenchmarkDeployment(BaseModel):
    """One benchmarked single-node deployment and the concurrencies it was swept at."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: str
    spec: Spec
    tp: int = Field(ge=1)
    ep: int = Field(ge=1)
    dp_attn: bool
    concurrencies: list[int] = Field(min_length=1)
    draft_tokens: int | None  # drafted tokens k verified per step; None when spec is off
    source: str
    # engine limits the script set, one row per concurrency: [C, cuda_graph_max_batch, max_running_requests,
    # max_num_tokens] (None = no limit); cuda_graph_counts_tokens: vLLM's graph limit counts B x (1 + k) tokens
    limits: list[LimitRow] = Field(default_factory=list)
    cuda_graph_counts_tokens: bool = False
    # the script runs speculation with the overlap scheduler on (SGLang spec v2: set, or its image's default; EngineLimits)
    speculation_overlapped: bool = False
    limits_source: str = ""
    # the KV-cache dtype the script set (--kv-cache-dtype / kv_cache_config.dtype), or its engine's default where
    # it sets none (kv_cache_dtype_of); None: not recorded (the scenario's own setting prices it)
    kv_cache_dtype: KvCacheDtype | None = None
    # the linear-attention state dtype the script set (--mamba-ssm-dtype / SGLANG_MAMBA_SSM_DTYPE); None: not set
    # (the model's configured dtype, ServingSpec.ssm_state_dtype "auto")
    ssm_state_dtype: StateDtype | None = None

    def limits_at(self, concurrency: int) -> EngineLimits:
        """The EngineLimits this deployment ran with at `concurrency` (none recorded: no limits)."""
        for conc, graph, running, budget in self.limits:
            if conc == concurrency:
                return EngineLimits(cuda_graph_max_batch=graph, cuda_graph_counts_tokens=self.cuda_graph_counts_tokens,
                                    max_running_requests=running, max_num_tokens=budget,
                                    speculation_overlapped=self.speculation_overlapped, source=self.limits_source)
        return EngineLimits(source="no limits recorded")


class SearchSpaceTable(BaseModel):
    """Deployments keyed ``model/hardware/precision/workload``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entries: dict[str, list[BenchmarkDeployment]]

    @staticmethod
    def key(model: str, hardware: str, precision: str, workload: str) -> str:
        return f"{model}/{hardware}/{precision}/{workload}"

    def lookup(
        self, model: str, hardware: str, precision: str, workload: str, spec: Spec
    ) -> list[BenchmarkDeployment]:
        """Deployments of one side (``spec``) of one page; empty when the benchmark ran none."""
        deployments = self.entries.get(self.key(model, hardware, precision, workload), [])
        return [d for d in deployments if d.spec == spec]

    def available(self) -> list[tuple[str, str, str, str]]:
        """Sorted (model, hardware, precision, workload) tuples present in the table."""
        keys = []
        for key in self.entries:
            model, hardware, precision, workload = key.split("/")
            keys.append((model, hardware, precision, workload))
        return sorted(keys)


class MultinodeDeployment(BaseModel):
    """One disaggregated search-space row of a master config: x prefill + y decode workers, swept at a
    conc-list. `draft_tokens` from the recipe name (`..._mtp3.yaml`), else the benchmark's MTP settings
    (docs/sources.md#benchmark-methodology). `pinned_acceptance_length`: the AL the recipe pins instead of
    measuring it (`SYNTHETIC_ACCEPTANCE=true` + `SYNTHETIC_ACCEPTANCE_LENGTH=x` in its additional-settings: the
    engine accepts drafts at that synthetic length), None where acceptance is measured."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entry: str
    engine: str
    model: str
    hardware: str
    precision: str
    workload: str
    spec: Spec
    draft_tokens: int | None
    concurrencies: list[int] = Field(min_length=1)
    deployment: DisaggregatedSpec
    source: str
    pinned_acceptance_length: float | None = Field(default=None, ge=1.0)
    speculation_overlapped: bool = False  # the decode workers speculate under the overlap scheduler (EngineLimits)

    @model_validator(mode="after")
    def _pinned_needs_its_k(self) -> MultinodeDeployment:
        if self.pinned_acceptance_length is not None:
            k = self.draft_tokens or 0
            if self.spec != "mtp" or k < 1 or self.pinned_acceptance_length > k + 1:
                raise ValueError(f"pinned_acceptance_length {self.pinned_acceptance_length} needs an MTP row "
                                 f"with 1 <= AL <= k + 1 (spec {self.spec}, k {self.draft_tokens})")
        return self


# SGLang server_args._handle_speculative_decoding: with EAGLE / MTP and no --max-running-requests, the engine runs
# at most 48 requests at once (docs/sources.md#engine-defaults)
SGLANG_SPECULATIVE_MAX_RUNNING = 48

# Whether each engine's current releases speculate under their overlap / async scheduler when nothing says
# otherwise, hiding the per-request host bookkeeping of a step behind the GPU (docs/sources.md#engine-defaults):
# SGLang spec v2 (default from v0.5.11; older images: tools/build_deployments.sglang_spec_v2_default), vLLM async
# scheduling (default from v0.14.0, with EAGLE / MTP), TensorRT-LLM's overlap scheduler (default since ~0.20, kept
# for one-model MTP); ATOM reads each step's accepted counts back before it prepares the next step, so its host
# work is not hidden.
SPECULATION_OVERLAPPED_BY_DEFAULT: dict[str, bool] = {"sglang": True, "vllm": True, "trt": True, "atom": False}


def default_limits(engine: str, hbm_gb: float, tp: int, k: int) -> dict[str, Any]:
    """Each engine's documented defaults, for knobs a script leaves unset (docs/sources.md#engine-defaults).

    - SGLang (server_args._handle_gpu_memory_settings): cuda_graph_max_bs 256 if TP < 4 else 512 on GPUs under
      160 GB (H100, H200), 512 above (B200, B300, MI355X); max_running_requests: derived from the KV pool
      (None here: the memory check decides), except under speculative decoding (k > 0), where
      _handle_speculative_decoding resets an unset limit to 48 ("Max running requests is reset to 48 for
      speculative decoding"); no per-step token budget for decode.
    - vLLM (EngineArgs defaults for GPUs >= 70 GiB, OpenAI server): max_num_seqs 1024, max_num_batched_tokens
      8192; CompilationConfig: max_cudagraph_capture_size = min(2 x max_num_seqs x (1 + k), 512) tokens.
    - TensorRT-LLM (LlmArgs / CudaGraphConfig): max_batch_size 2048, max_num_tokens 8192, CUDA graphs up to
      batch 128.
    - ATOM (atom/model_engine/arg_utils.py EngineArgs, unchanged from 2025-12-15 through 2026-08-22):
      max_num_seqs 512, max_num_batched_tokens 16384, cudagraph_capture_sizes up to 256 (batches of requests:
      model_runner keys its graphs by (batch, query length)).
    """
    if engine == "sglang":
        small = hbm_gb < 160
        return {"cuda_graph_max_bs": 256 if small and tp < 4 else 512,
                "max_running_requests": SGLANG_SPECULATIVE_MAX_RUNNING if k > 0 else None, "max_num_tokens": None}
    if engine == "vllm":
        return {"cuda_graph_max_bs": min(2 * 1024 * (1 + k), 512), "max_running_requests": 1024,
                "max_num_tokens": 8192}
    if engine == "trt":
        return {"cuda_graph_max_bs": 128, "max_running_requests": 2048, "max_num_tokens": 8192}
    if engine == "atom":
        return {"cuda_graph_max_bs": 256, "max_running_requests": 512, "max_num_tokens": 16384}
    return dict.fromkeys(LIMIT_KEYS)


# The KV-cache dtype each engine stores when a script leaves --kv-cache-dtype unset (docs/sources.md#engine-defaults)
ENGINE_DEFAULT_KV_CACHE_DTYPE: dict[str, KvCacheDtype] = {"sglang": "bf16", "vllm": "bf16", "trt": "auto", "atom": "bf16"}


def kv_cache_dtype_of(engine: str, native: KvCacheDtype | None = None) -> KvCacheDtype:
    """The KV-cache dtype `engine` runs with where nothing sets it (docs/sources.md#engine-defaults): the model's
    `native` cache format where its kernels take only that one (ModelSpec.native_kv_cache_dtype), else:

    - SGLang (`--kv-cache-dtype auto`, v0.5.12-0.5.16 configure_kv_cache_dtype): the model's dtype (BF16) unless
      the checkpoint's quantization config states `kv_cache_quant_algo: FP8` (ModelOpt configs only; the
      block-FP8 checkpoints the benchmark runs do not).
    - vLLM (`kv_cache_dtype="auto"`): the model's dtype, BF16 likewise.
    - TensorRT-LLM (`kv_cache_config.dtype="auto"`): "Using checkpoint KV quantization", the checkpoint's
      quantization config decides; "auto" keeps the simulator's rule (FP8 beside FP8 / FP4 weights).
    - ATOM (atom/model_engine/arg_utils.py): kv_cache_dtype "bf16" (bf16 or fp8, no "auto").
    """
    return native or ENGINE_DEFAULT_KV_CACHE_DTYPE.get(engine, "auto")


def engine_default_limits(engine: str, hbm_gb: float, tp: int, k: int) -> EngineLimits:
    """`default_limits` as the EngineLimits a deployment runs with when nothing sets them (vLLM's graph limit
    counts B x (1 + k) tokens, the others' requests; speculation under the engine's overlap scheduler as
    SPECULATION_OVERLAPPED_BY_DEFAULT says)."""
    d = default_limits(engine, hbm_gb, tp, k)
    return EngineLimits(cuda_graph_max_batch=d["cuda_graph_max_bs"], cuda_graph_counts_tokens=engine == "vllm",
                        max_running_requests=d["max_running_requests"], max_num_tokens=d["max_num_tokens"],
                        speculation_overlapped=k > 0 and SPECULATION_OVERLAPPED_BY_DEFAULT.get(engine, False),
                        source=f"{engine} defaults")


def _read_yaml(path: Path) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader where libyaml is built in: ~6x faster
    return yaml.load(path.read_text(), Loader=loader)  # noqa: S506 - a safe loader


def _cache_key(path: Path | None, default: Path) -> tuple[Path, int]:
    """(resolved path, mtime): a regenerated file is read again, an unchanged one never twice."""
    resolved = Path(path or default).resolve()
    return resolved, resolved.stat().st_mtime_ns


@lru_cache(maxsize=8)
def _search_spaces(path: Path, _mtime_ns: int) -> SearchSpaceTable:
    return SearchSpaceTable.model_validate({"entries": _read_yaml(path)[TOP_KEY]})


@lru_cache(maxsize=8)
def _multinode(path: Path, _mtime_ns: int) -> tuple[tuple[MultinodeDeployment, ...], tuple[str, ...]]:
    data = _read_yaml(path)
    return (tuple(MultinodeDeployment.model_validate(r) for r in data[MULTINODE_KEY]),
            tuple(data.get("skipped", [])))


def load_search_spaces(path: Path | None = None) -> SearchSpaceTable:
    """The shipped single-node table (default ``conf/deployments/benchmark.yaml``), read once per file."""
    return _search_spaces(*_cache_key(path, DEFAULT_PATH))


def load_multinode(path: Path | None = None) -> tuple[list[MultinodeDeployment], list[str]]:
    """The shipped multi-node rows (default conf/deployments/multinode.yaml) and the skipped rows' reasons."""
    rows, skipped = _multinode(*_cache_key(path, MULTINODE_PATH))
    return list(rows), list(skipped)


def load_source(path: Path | None = None) -> dict[str, Any]:
    """The ``source`` block of a generated table: upstream repository, commit, and the sha256 of each input."""
    return dict(_read_yaml(Path(path or DEFAULT_PATH)).get(SOURCE_KEY) or {})
