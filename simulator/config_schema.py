"""Typed schema of conf/config.yaml's top-level keys, as plain dataclasses (no Hydra import here).

simulator.cli registers `SpecsimConfig` with Hydra's ConfigStore as `specsim_schema`, the first entry of
config.yaml's defaults list, so a misspelt key or a wrongly typed plain value (`demand_tok_s=lots`) fails at
composition with the key's name. The groups (hardware, model, workload, rates) stay free-form mappings here:
the pydantic specs (simulator.specs, economics.RateTable) are the source of truth and validate them after
composition with field-level errors (catalog.validated).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ServingConf:
    prefill_mode: str = "separate"
    prefill_chunk_tokens: int = 16384
    mem_fraction: float = 0.85
    kv_cache_dtype: str = "auto"
    max_running_requests: int = 1024


@dataclass
class PlanConf:
    """task=plan: which precisions to try, optional GPU subset, user rate overrides, rows printed per floor."""

    precisions: list[str] = field(default_factory=lambda: ["fp8", "fp4"])
    gpus: list[str] | None = None
    usd_per_gpu_hour: dict[str, float] | None = None
    all_in_kw: dict[str, float] | None = None
    top: int = 10


@dataclass
class SummarizeConf:
    dir: str | None = None


@dataclass
class CalibrateConf:
    """task=calibrate: output name (conf/calibration/<name>.yaml) and the measured-data folder."""

    name: str = "default"
    data_dir: str | None = None


@dataclass
class SweepConf:
    """task=sweep: lists to sweep in one launch (null = the run's own value; hardware null = all GPUs)."""

    hardware: list[str] | None = None
    model: list[str] | None = None
    precision: list[str] | None = None
    workload: list[str] | None = None
    concurrency: list[int] | None = None
    draft_tokens: list[int] | None = None
    acceptance_scale: list[float] | None = None
    backend: str = "auto"
    bins: int = 256
    chunk_points: int | None = None
    max_chunk_bytes: int = 2**30
    compile: Any = "auto"  # true | false | auto (compile the torch backend above 1e8 points on a CPU)


@dataclass
class SpecsimConfig:
    task: str = "compare"
    precision: str = "fp4"
    search: str = "benchmark"
    interactivity: Any = None  # a number or a list of numbers; checked by setup.targets_of
    report: str | None = None
    calibration: Any = None  # the `calibration` group: a fitted file's content, or null
    acceptance_scale: float | None = None
    min_interactivity: Any = None  # plan floors: a number or a list; checked by plan.floors_of
    demand_tok_s: float = 1.0e6
    hardware: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    workload: dict[str, Any] = field(default_factory=dict)
    rates: dict[str, Any] = field(default_factory=dict)
    serving: ServingConf = field(default_factory=ServingConf)
    plan: PlanConf = field(default_factory=PlanConf)
    summarize: SummarizeConf = field(default_factory=SummarizeConf)
    # validate / calibrate keys (typed loosely; their tasks check them)
    pages: Any = None
    cv: Any = "none"
    calibrate: Any = None
    pages: Any = None  # validate: page files (default: the bundled ones)
    cv: str = "none"
    validate_after: bool = True  # compare: end with the validation table against the bundled pages  # validate: none | leave_one_page_out | leave_one_hardware_out
    calibrate: CalibrateConf = field(default_factory=CalibrateConf)
    sweep: SweepConf = field(default_factory=SweepConf)
