"""The run config: one validated, typed object that every task receives (built from the composed Hydra config).

Each plain key's default lives here, once, as a pydantic field; `simulator.cli` derives Hydra's structured
schema from these models (so `key=value` overrides and multirun work) and conf/config.yaml only selects the
groups. The groups Hydra composes from files (hardware, model, workload, rates, calibration) arrive as
mappings and are validated into their specs, field by field, with errors naming the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from simulator.catalog import (
    SpecError,
    calibrated_knobs,
    list_keys,
    load_calibration,
    model_from_dict,
    read_yaml,
    validated,
)
from simulator.economics import RateTable, Tier
from simulator.scenario import Scenario
from simulator.search import SearchMode
from simulator.specs import AcceptanceSpec, Calibration, HardwareSpec, ModelSpec, ServingSpec, WorkloadSpec
from simulator.specs.topology import DEFAULT_MAX_GPUS
from simulator.specs.vocabulary import PRECISIONS, CaseKey, Precision

TaskName = Literal["compare", "validate", "calibrate", "sweep", "plan", "advise", "summarize"]
CvMode = Literal["none", "leave_one_page_out", "leave_one_hardware_out"]
GROUPS = ("hardware", "model", "workload", "rates", "calibration")
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]  # finite and > 0


def _as_list(v: Any) -> Any:
    """A single value given where a list is expected is a list of one (`interactivity=50`)."""
    return [v] if isinstance(v, (int, float, str)) else v


def _empty_is_default(v: Any) -> Any:
    """`interactivity=[]` (or `min_interactivity=[]`) means the default targets, as null does."""
    return None if isinstance(v, (list, tuple)) and not v else _as_list(v)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlanSettings(Settings):
    """task=plan / advise: precisions to try, GPU subset, user rate overrides, rows printed per floor."""

    precisions: list[Precision] = Field(default=["fp8", "fp4"], min_length=1,
                                        description="fp4 only where the GPU has FP4 cores")
    gpus: list[str] | None = Field(default=None, description="null = every catalog GPU (+ a user hardware=)")
    usd_per_gpu_hour: dict[str, PositiveFloat] | None = Field(default=None, description="{gpu: $/GPU-hour}")
    all_in_kw: dict[str, PositiveFloat] | None = Field(default=None, description="{gpu: all-in kW per GPU}")
    top: PositiveInt = Field(default=10, description="ranked rows printed per floor (plan.csv has all)")

    @field_validator("gpus")
    @classmethod
    def _some_gpu(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError(f"an empty list selects no GPU: leave it out (null) for every catalog GPU, or name "
                             f"some of {', '.join(list_keys('hardware'))}")
        return v


class SummarizeSettings(Settings):
    dir: str | None = Field(default=None, description="task=summarize: the multirun sweep dir to collect")


class CalibrateSettings(Settings):
    name: str = Field(default="default", min_length=1, description="result calibration_<name>.yaml in the run dir")
    install: bool = Field(default=False, description="also install it as conf/calibration/<name>.yaml")
    data_dir: str | None = Field(default=None, description="folder with the measured CSVs (null: bundled)")
    cross_validate: bool = Field(default=True, description=(
        "then refit once per page left out (the bands' model error): ~1 min per refit on 2 cores; false skips it"))


class SweepSettings(Settings):
    """task=sweep: lists swept in one launch; null = this run's own value (hardware: every GPU)."""

    hardware: list[str] | None = Field(default=None, min_length=1)
    model: list[str] | None = Field(default=None, min_length=1)
    precision: list[Precision] | None = Field(default=None, min_length=1)
    workload: list[str] | None = Field(default=None, min_length=1)
    concurrency: list[PositiveInt] | None = Field(default=None, min_length=1,
                                                  description="null: 1, 2, 3, 4, 6, ... up to the open-search ceiling")
    draft_tokens: list[Annotated[int, Field(ge=0, le=16)]] = Field(default=[0, 1, 2, 3, 4], min_length=1)
    acceptance_multiplier: list[PositiveFloat] = Field(
        default=[1.0], min_length=1, description="multipliers on the calibrated acceptance scale (1 = unchanged)")
    backend: Literal["auto", "triton", "torch"] = "auto"
    bins: PositiveInt = Field(default=256, description="log-spaced interactivity bins of each frontier")
    chunk_points: PositiveInt | None = None
    max_chunk_bytes: PositiveInt = 2**30
    compile: bool | Literal["auto"] = Field(
        default="auto", description="torch backend: torch.compile (auto: above 1e8 points on a CPU)")


class RunConfig(Settings):
    """Everything a task reads. Groups are validated specs; plain keys carry their one default here."""

    task: TaskName = "compare"
    precision: Precision = "fp4"
    search: SearchMode = Field(default="benchmark", description=(
        "benchmark: only what the benchmark ran; open: every deployment that fits, MTP with k = 1..4"))
    max_gpus: PositiveInt = Field(default=DEFAULT_MAX_GPUS, le=4096, description=(
        "GPU budget of one deployment (default one NVL72 rack); above one node (8) compare also prices the "
        "benchmark's multi-node xPyD recipes (search=benchmark) or every wide-EP / xPyD shape (search=open); "
        "8 = one node only"))
    max_ttft_s: PositiveFloat | None = Field(default=None, description=(
        "TTFT limit in s: points with a longer TTFT leave the frontier (compare, validate, plan), the count is "
        "said; null (default) = none, as the benchmark sets none"))
    interactivity: list[PositiveFloat] | None = Field(
        default=None, description="targets in tok/s/user; null or [] = 25/50/75 % of the range both sides cover")
    report: str | None = Field(default=None, description="path for a JSON copy of the table")
    read: Literal["strict", "page"] = Field(default="strict", description=(
        "compare: how a target outside a side's predicted front is read: strict: not read (null, the reach "
        "printed); page: at the front's edge, as the benchmark pages do, flagged clamped (c in the table)"))
    acceptance_multiplier: PositiveFloat = Field(
        default=1.0, description="multiplies the calibrated acceptance scale (1 = unchanged; bands follow it)")
    min_interactivity: list[PositiveFloat] | None = Field(
        default=None, description="plan/advise floors in tok/s/user; null or [] = [25, 50, 100]")
    demand_tok_s: PositiveFloat = Field(default=1.0e6, description="plan: total (input + output) tokens/s")
    pages: list[str] | None = Field(default=None, description="validate: page files (null: the bundled ones)")
    cv: CvMode = "none"
    validate_after: bool | Literal["auto"] = Field(
        default="auto", description=(
        "compare ends with the validation table: auto: against this case's own page(s), when it has one; "
        "true: every page"))
    serving: ServingSpec = ServingSpec()
    plan: PlanSettings = PlanSettings()
    summarize: SummarizeSettings = SummarizeSettings()
    calibrate: CalibrateSettings = CalibrateSettings()
    sweep: SweepSettings = SweepSettings()
    # the composed groups
    hardware: HardwareSpec
    model: ModelSpec
    acceptance: AcceptanceSpec | None = None
    workload: WorkloadSpec
    rates: RateTable
    rate_tier: Tier = "hyperscaler"
    calibration: Calibration = Calibration()

    _lists = field_validator("pages", mode="before")(_as_list)
    _targets = field_validator("interactivity", "min_interactivity", mode="before")(_empty_is_default)

    @field_validator("pages")
    @classmethod
    def _some_page(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("an empty list names no page: leave it out (null) for the bundled pages, or give "
                             "page files ([path/a.txt,path/b.yaml])")
        return v

    @property
    def key(self) -> CaseKey:
        return CaseKey(self.model.name, self.hardware.name, self.precision, self.workload.name)

    @property
    def acceptance_scale_used(self) -> float | None:
        """The acceptance scale of this run: the calibration's for the model (else its transfer value for a
        model without MTP data, else the model file's own) times `acceptance_multiplier`."""
        base = self.calibration.acceptance_scale_for(self.model.name)
        if base is None:
            base = self.acceptance.scale if self.acceptance is not None else None
        return None if base is None else base * self.acceptance_multiplier

    def scenario(self) -> Scenario:
        """The model on the GPU at this precision and workload, with the calibration's knobs, engine efficiencies
        and acceptance."""
        acceptance, scale = self.acceptance, self.acceptance_scale_used
        if acceptance is not None and scale is not None:
            acceptance = validated(AcceptanceSpec, {**acceptance.model_dump(), "scale": scale}, "acceptance")
        return validated(Scenario, {"model": self.model, "hardware": self.hardware, "precision": self.precision,
                                    "workload": self.workload, "serving": self.serving, "acceptance": acceptance,
                                    "knobs": calibrated_knobs(self.hardware, self.calibration),
                                    "engine_efficiency": self.calibration.engine_compute_efficiency}, "scenario")

    def with_case(self, model: str | None = None, hardware: str | None = None, workload: str | None = None,
                  precision: str | None = None) -> RunConfig:
        """The same run for another catalog model / GPU / workload / precision (validate, plan, sweep)."""
        update: dict[str, Any] = {}
        model = None if model == self.model.name else model  # this run's own spec (a user's file) stays
        hardware = None if hardware == self.hardware.name else hardware
        workload = None if workload == self.workload.name else workload
        if model is not None:
            update["model"], update["acceptance"] = model_from_dict(read_yaml("model", model))
        if hardware is not None:
            update["hardware"] = validated(HardwareSpec, read_yaml("hardware", hardware), f"hardware '{hardware}'")
        if workload is not None:
            update["workload"] = validated(WorkloadSpec, read_yaml("workload", workload), f"workload '{workload}'")
        if precision is not None:
            if precision not in PRECISIONS:
                raise SpecError(f"precision: unknown {precision!r}; valid: {', '.join(PRECISIONS)}")
            update["precision"] = precision
        return self.model_copy(update=update)


class NothingFeasible(Exception):  # noqa: N818 (a result, not a failure)
    """The task ran and wrote its outputs, but no deployment can run: the CLI exits with EXIT_INFEASIBLE
    (in a multirun it is that job's recorded result, not an error)."""


EXIT_ERROR, EXIT_INFEASIBLE = 2, 3
# keys renamed since an earlier release -> the key to use now (the CLI names it instead of Hydra's error)
RENAMED_KEYS = {
    "acceptance_scale": "acceptance_multiplier (multiplies the calibrated acceptance scale; 1 = unchanged)",
    "sweep.acceptance_scale": "sweep.acceptance_multiplier (multipliers on the calibrated acceptance scale)",
}


def run_config(composed: dict[str, Any]) -> RunConfig:
    """Validate the composed Hydra config (plain containers) into a RunConfig; SpecError names each bad key."""
    data = dict(composed)
    missing = [g for g in GROUPS if g not in data]
    if missing:
        raise SpecError(f"config lacks the group(s) {', '.join(missing)}")
    hardware = validated(HardwareSpec, data.pop("hardware") or {}, "hardware")
    model, acceptance = model_from_dict(data.pop("model") or {})
    workload = validated(WorkloadSpec, data.pop("workload") or {}, "workload")
    rates_data = dict(data.pop("rates") or {})
    tier = rates_data.pop("tier", "hyperscaler")
    rates = validated(RateTable, rates_data, "rates")
    calibration = load_calibration(data.pop("calibration"))
    return validated(RunConfig, {**data, "hardware": hardware, "model": model, "acceptance": acceptance,
                                 "workload": workload, "rates": rates, "rate_tier": tier,
                                 "calibration": calibration}, "config")


def write_report(cfg: RunConfig, report: dict[str, Any]) -> Path | None:
    """Write `report` as JSON to cfg.report when given (relative paths: from the working directory)."""
    if not cfg.report:
        return None
    path = Path(cfg.report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return path
