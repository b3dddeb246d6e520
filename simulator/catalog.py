"""Load specs from the YAML files in conf/ (the same files Hydra composes), with clear errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simulator.specs import (
    AcceptanceSpec,
    Calibration,
    EfficiencyKnobs,
    HardwareSpec,
    ModelSpec,
    WorkloadSpec,
)
from simulator.specs.vocabulary import GENERATION_FAMILY

SOURCE_CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
CONF_PACKAGE = "specsim_conf"  # conf/ as a wheel installs it (pyproject.toml: tool.setuptools.package-dir)


def find_conf_dir(source: Path = SOURCE_CONF_DIR, package: str = CONF_PACKAGE) -> Path:
    """The source tree's conf/ (a clone, an editable install) when present, else the installed copy."""
    if (source / "config.yaml").is_file():
        return source
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise RuntimeError(f"no conf/ folder: neither {source} nor an installed package {package!r}; "
                           "reinstall specsim (pip install .)")
    return Path(locations[0])


CONF_DIR = find_conf_dir()


class SpecError(ValueError):
    """A user-facing configuration error: says which key or field is wrong and what is allowed."""


def list_keys(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def read_yaml(group: str, key: str, conf_dir: Path = CONF_DIR) -> dict[str, Any]:
    path = conf_dir / group / f"{key}.yaml"
    if not path.is_file():
        raise SpecError(f"unknown {group} '{key}'; valid keys: {', '.join(list_keys(group, conf_dir))}")
    return yaml.safe_load(path.read_text()) or {}


def _error_line(err: Any) -> str:
    """'  field.sub: message' (pydantic's 'Value error, ' prefix dropped; no field: the message alone)."""
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    loc = ".".join(str(x) for x in err["loc"])
    return f"  {loc}: {msg}" if loc else f"  {msg}"


def validated(cls: type, data: dict[str, Any], what: str, **kw: Any) -> Any:
    """model_validate with the error rewritten as one readable SpecError naming each bad field."""
    try:
        return cls.model_validate(data, **kw)
    except ValidationError as e:
        lines = [_error_line(err) for err in e.errors()]
        if len(lines) == 1:  # one bad field: one line
            raise SpecError(f"invalid {what}: {lines[0].strip()}") from None
        raise SpecError(f"invalid {what}:\n" + "\n".join(lines)) from None


def model_from_dict(data: dict[str, Any]) -> tuple[ModelSpec, AcceptanceSpec | None]:
    d = dict(data)
    acc = d.pop("acceptance", None)
    model = validated(ModelSpec, d, f"model '{d.get('name', '?')}'")
    acceptance = validated(AcceptanceSpec, acc, f"acceptance of model '{model.name}'") if acc else None
    return model, acceptance


def load_model(key: str) -> tuple[ModelSpec, AcceptanceSpec | None]:
    return model_from_dict(read_yaml("model", key))


def load_hardware(key: str) -> HardwareSpec:
    return validated(HardwareSpec, read_yaml("hardware", key), f"hardware '{key}'")


def load_workload(key: str) -> WorkloadSpec:
    return validated(WorkloadSpec, read_yaml("workload", key), f"workload '{key}'")


def load_calibration(ref: str | dict[str, Any] | None, conf_dir: Path = CONF_DIR) -> Calibration:
    """Fitted knobs per hardware and acceptance scales per model: a file's name in conf/calibration, or
    its content as Hydra composed it (the `calibration` group); no calibration for None."""
    if not ref:
        return Calibration()
    data = read_yaml("calibration", ref, conf_dir) if isinstance(ref, str) else ref
    return validated(Calibration, data.get("calibration", data), "calibration")


def family_members(family: str, conf_dir: Path = CONF_DIR) -> tuple[str, ...]:
    """The catalog GPUs (conf/hardware) whose generation belongs to a calibration family."""
    return tuple(k for k in list_keys("hardware", conf_dir)
                 if GENERATION_FAMILY.get(str(read_yaml("hardware", k, conf_dir).get("generation"))) == family)


def calibrated_knobs(hw: HardwareSpec, calibration: Calibration) -> EfficiencyKnobs:
    """The calibration's knobs for `hw`: by name, else (a user's GPU) those of its generation's family."""
    fitted = calibration.knobs_for(hw.name, GENERATION_FAMILY.get(hw.generation))
    if not fitted:
        return hw.efficiency
    values = {k: v for k, v in fitted.items() if k in EfficiencyKnobs.model_fields}
    return validated(EfficiencyKnobs, {**hw.efficiency.model_dump(), **values}, f"calibration knobs of {hw.name}")
