"""Dated $/GPU-hour and all-in power tables, and the pages' cost and tok/s/MW formulas.

Formulas from docs/sources.md#benchmark-methodology: cost ($/M tokens) = $/GPU-hour / (tput/GPU x 3600 / 1e6)
on total (input + output) tokens; tok/s/MW = tput/GPU x 1000 / all-in kW per GPU. Rates live in
conf/rates/*.yaml (figures from docs/sources.md#rates-and-power).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.catalog import CONF_DIR

__all__ = [
    "TIERS",
    "Tier",
    "GpuRate",
    "RateLookupError",
    "RateTable",
    "TierPrices",
    "bundled_rate_table",
    "cost_per_mtok",
    "load_rate_table",
    "tok_s_per_mw",
]

Tier = Literal["hyperscaler", "neocloud", "rental"]
TIERS: tuple[Tier, ...] = ("hyperscaler", "neocloud", "rental")
RATES_DIR = CONF_DIR / "rates"

T = TypeVar("T")


class RateLookupError(KeyError):
    """Unknown GPU key or tier, or a tier the rate table does not give."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


_Positive = Field(gt=0, allow_inf_nan=False)


class TierPrices(BaseModel):
    """$ per GPU-hour at each tier; only the hyperscaler ("owning") tier is mandatory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hyperscaler: float = _Positive
    neocloud: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    rental: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class GpuRate(BaseModel):
    """Economics of one GPU: all-in kW (chip + share of host, network, cooling) and $/GPU-hour."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    all_in_kw: float = _Positive
    usd_per_gpu_hour: TierPrices


class RateTable(BaseModel):
    """A dated rate table; ``valid_from``/``valid_until`` are inclusive, None means open-ended."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    source: str = ""
    gpus: dict[str, GpuRate] = Field(min_length=1)

    @model_validator(mode="after")
    def _dates_ordered(self) -> RateTable:
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise ValueError(f"valid_until ({self.valid_until}) is before valid_from ({self.valid_from})")
        return self

    def gpu(self, gpu_key: str) -> GpuRate:
        """The entry for ``gpu_key``; a RateLookupError lists the valid keys."""
        try:
            return self.gpus[gpu_key]
        except KeyError:
            known = ", ".join(sorted(self.gpus))
            raise RateLookupError(
                f"rate table {self.name!r} has no GPU {gpu_key!r}; valid keys: {known}"
            ) from None

    def rate(self, gpu_key: str, tier: str = "hyperscaler") -> float:
        """$ per GPU-hour of ``gpu_key`` at ``tier`` (hyperscaler = the comparison pages' rate)."""
        entry = self.gpu(gpu_key)
        if tier not in TIERS:
            raise RateLookupError(f"unknown tier {tier!r}; valid tiers: {', '.join(TIERS)}")
        value = getattr(entry.usd_per_gpu_hour, tier)
        if value is None:
            given = [t for t in TIERS if getattr(entry.usd_per_gpu_hour, t) is not None]
            raise RateLookupError(
                f"rate table {self.name!r} gives no {tier!r} $/GPU-hour for {gpu_key!r} "
                f"(tiers given: {', '.join(given)})"
            )
        return float(value)

    def all_in_kw(self, gpu_key: str) -> float:
        """All-in kW per GPU of ``gpu_key``."""
        return self.gpu(gpu_key).all_in_kw

    def covers(self, day: dt.date) -> bool:
        """Whether ``day`` falls in the table's validity window."""
        after_start = self.valid_from is None or day >= self.valid_from
        before_end = self.valid_until is None or day <= self.valid_until
        return after_start and before_end


def load_rate_table(source: str | Path | Mapping[str, Any]) -> RateTable:
    """Rate table from a YAML path or a mapping (with or without the top-level ``rates:`` key)."""
    if isinstance(source, Mapping):
        data: Any = source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"rate table file not found: {path}")
        data = yaml.safe_load(path.read_text())
    if isinstance(data, Mapping) and set(data) == {"rates"}:
        data = data["rates"]
    if not isinstance(data, Mapping):
        raise ValueError(f"a rate table must be a mapping, got {type(data).__name__}")
    return RateTable.model_validate(dict(data))


def bundled_rate_table(name: str) -> RateTable:
    """One of the project's tables in conf/rates (e.g. ``era_a``)."""
    path = RATES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RATES_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"no bundled rate table {name!r}; available: {known}")
    return load_rate_table(path)


def cost_per_mtok(tput_per_gpu: T, usd_per_gpu_hour: Any) -> T:
    """$ per million (input + output) tokens; elementwise on floats, numpy arrays and torch tensors.

    Plain numbers give a float (zero throughput gives inf rather than raising).
    """
    if all(isinstance(a, Real) for a in (tput_per_gpu, usd_per_gpu_hour)):
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.float64(usd_per_gpu_hour) / (np.float64(tput_per_gpu) * 3600.0 / 1e6)
        return float(value)  # type: ignore[return-value]
    return usd_per_gpu_hour / (tput_per_gpu * 3600.0 / 1e6)  # type: ignore[operator]


def tok_s_per_mw(tput_per_gpu: T, all_in_kw: Any) -> T:
    """Tokens per second per megawatt of all-in power; elementwise like :func:`cost_per_mtok`."""
    if all(isinstance(a, Real) for a in (tput_per_gpu, all_in_kw)):
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.float64(tput_per_gpu) * 1000.0 / np.float64(all_in_kw)
        return float(value)  # type: ignore[return-value]
    return tput_per_gpu * 1000.0 / all_in_kw  # type: ignore[operator]
