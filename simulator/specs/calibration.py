"""A calibration file (conf/calibration/<name>.yaml, written by task=calibrate) as a typed, validated spec.

The fitted efficiency knobs per GPU (and per hardware family, for a user's own GPU of a known generation),
the compute efficiency of each serving engine relative to SGLang,
the acceptance scale (one shared by every model, under ACCEPTANCE_GROUP; an older file's per-model scales and
its transfer value for a model without MTP data still read), the fitted parameters
in the fit's z space with their covariance (the P10-P90 bands draw from it), and the residual spreads the
bands use as model error. `Calibration()` (the `none` file) is no calibration: every knob at its prior.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, model_validator

from simulator.specs.base import Frozen
from simulator.specs.hardware import EngineEfficiency

# the key of the acceptance scale every model shares (task=calibrate fits one: calibration/problem.py)
ACCEPTANCE_GROUP = "all_models"


class ParameterFit(Frozen):
    value: float
    sigma: float
    z: float  # the fit's unconstrained coordinate (calibration.problem.to_z)


class CovarianceZ(Frozen):
    names: list[str]
    matrix: list[list[float]]

    @model_validator(mode="after")
    def _square(self) -> CovarianceZ:
        n = len(self.names)
        if len(self.matrix) != n or any(len(r) != n for r in self.matrix):
            raise ValueError(f"covariance_z: matrix must be {n} x {n} (one row and column per name)")
        return self


class CrossValidationSummary(Frozen):
    model_config = Frozen.model_config | {"extra": "allow"}  # the cv summary's own figures ride along

    mode: str = ""
    page_sigma_log: float | None = Field(default=None, ge=0)  # spread of held-out page residuals (log)
    gain_sigma_log: float | None = Field(default=None, ge=0)  # spread of held-out MTP/Off gain errors (log)


class Calibration(Frozen):
    name: str = "none"
    created: str = ""
    method: str = ""
    sources: dict[str, str] = Field(default_factory=dict)
    hardware: dict[str, dict[str, float]] = Field(default_factory=dict)  # GPU -> EfficiencyKnobs fields
    families: dict[str, dict[str, float]] = Field(default_factory=dict)  # hardware family -> knobs
    transferred: dict[str, str] = Field(default_factory=dict)  # GPU without data -> the family it took
    engine_compute_efficiency: EngineEfficiency = EngineEfficiency()  # engine -> factor on compute_fraction
    acceptance_scale: dict[str, float] = Field(default_factory=dict)  # ACCEPTANCE_GROUP (or a model) -> scale
    acceptance_scale_transfer: float | None = Field(default=None, gt=0)  # for a model without MTP data
    parameters: dict[str, ParameterFit] = Field(default_factory=dict)
    covariance_z: CovarianceZ | None = None
    residuals_log_pct: dict[str, dict[str, float]] = Field(default_factory=dict)  # dataset -> figures
    observations: int = Field(default=0, ge=0)
    cross_validation: CrossValidationSummary | None = None

    @property
    def fitted(self) -> bool:
        """Whether it holds a fit at all (`none`: no)."""
        return bool(self.parameters)

    def knobs_for(self, gpu: str, family: str | None) -> dict[str, float] | None:
        """The fitted knob values of a GPU: by name, else (a user's GPU) those of its generation's family."""
        return self.hardware.get(gpu) or (self.families.get(family) if family else None)

    def acceptance_scale_for(self, model: str) -> float | None:
        """The acceptance scale of `model`: its own (an older, per-model file), else the shared one, else the
        transfer value (None: no calibration)."""
        return self.acceptance_scale.get(model, self.acceptance_scale.get(ACCEPTANCE_GROUP,
                                                                          self.acceptance_scale_transfer))

    def model_error_sigma(self) -> float:
        """Log-space model error beyond the parameters: the spread of the held-out page residuals of its
        leave-one-page-out cross-validation, else (an older file) of its in-sample page residuals."""
        if self.cross_validation is not None and self.cross_validation.page_sigma_log is not None:
            return self.cross_validation.page_sigma_log
        return float(self.residuals_log_pct.get("pages", {}).get("sigma_log", 0.0))

    def gain_error_sigma(self) -> float:
        """Log-space model error of the MTP/Off gain beyond the parameters: the spread of the held-out gain
        errors of its leave-one-page-out cross-validation, else (no such figure) that of two sides whose
        errors are independent, sqrt(2) x `model_error_sigma`."""
        if self.cross_validation is not None and self.cross_validation.gain_sigma_log is not None:
            return self.cross_validation.gain_sigma_log
        return math.sqrt(2.0) * self.model_error_sigma()

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> Calibration:
        """From a file's content (with or without its top-level `calibration:` key); {} / None: none."""
        if not data:
            return cls()
        return cls.model_validate(data.get("calibration", data))
