"""Build specs from a plain config mapping (what Hydra composes, converted to dicts): no Hydra import here."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from simulator.catalog import (
    SpecError,
    calibrated_knobs,
    load_calibration,
    model_from_dict,
    validated,
)
from simulator.economics import RateTable
from simulator.scenario import Scenario
from simulator.search import SearchMode
from simulator.specs import HardwareSpec, ServingSpec, WorkloadSpec


def build_scenario(cfg: dict[str, Any]) -> Scenario:
    hw = validated(HardwareSpec, cfg["hardware"], "hardware")
    model, acceptance = model_from_dict(cfg["model"])
    workload = validated(WorkloadSpec, cfg["workload"], "workload")
    serving = validated(ServingSpec, cfg.get("serving") or {}, "serving")
    calibration = load_calibration(cfg.get("calibration"))
    knobs = calibrated_knobs(hw, calibration)
    scale = (calibration.get("acceptance_scale") or {}).get(model.name, calibration.get("acceptance_scale_transfer"))
    if cfg.get("acceptance_scale") is not None:
        scale = cfg["acceptance_scale"]
    if acceptance is not None and scale is not None:
        acceptance = validated(type(acceptance), {**acceptance.model_dump(), "scale": scale}, "acceptance")
    return validated(Scenario, {"model": model, "hardware": hw, "precision": cfg.get("precision"),
                                "workload": workload, "serving": serving, "acceptance": acceptance,
                                "knobs": knobs}, "scenario")


def build_rates(cfg: dict[str, Any]) -> tuple[RateTable, str]:
    data = dict(cfg["rates"])
    tier = data.pop("tier", "hyperscaler")
    return validated(RateTable, data, "rates"), tier


def keys_of(cfg: dict[str, Any]) -> dict[str, str]:
    return {"model": cfg["model"]["name"], "hardware": cfg["hardware"]["name"],
            "precision": str(cfg.get("precision")), "workload": cfg["workload"]["name"]}


def positive_numbers(cfg: dict[str, Any], key: str, unit: str) -> list[float] | None:
    """cfg[key] as a list of positive finite numbers (a single number is a list of one); None if unset."""
    raw = cfg.get(key)
    if raw is None:
        return None
    values = [raw] if isinstance(raw, (int, float, str)) else list(raw)
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise SpecError(f"{key} must be a list of numbers ({unit}), got {raw!r}") from None
    if not out or any(not math.isfinite(v) or v <= 0 for v in out):
        raise SpecError(f"{key} must be positive numbers ({unit}), got {raw!r}")
    return out


def targets_of(cfg: dict[str, Any]) -> list[float] | None:
    return positive_numbers(cfg, "interactivity", "tok/s/user")


def search_of(cfg: dict[str, Any]) -> SearchMode:
    mode = cfg.get("search")
    if mode not in ("benchmark", "open"):
        raise SpecError(f"search must be 'benchmark' or 'open', got {mode!r}")
    return mode  # type: ignore[return-value]


def write_report(cfg: dict[str, Any], report: dict[str, Any]) -> None:
    """Write `report` as JSON to cfg['report'] when given (relative paths: from the working directory)."""
    if not cfg.get("report"):
        return
    path = Path(cfg["report"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
