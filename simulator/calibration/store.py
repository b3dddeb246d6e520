"""Read and write calibration files (conf/calibration/<name>.yaml) and map fitted z between problems."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from simulator.calibration.fit import FitResult
from simulator.calibration.problem import ENGINE_PARAMETER, FITTED_KNOBS, SHARED_PARAMETER, ParamSpace
from simulator.catalog import family_members
from simulator.specs import Calibration, EfficiencyKnobs


def transfer_scale_z(names: list[str], z: np.ndarray) -> float:
    """Acceptance scale for a model with no MTP data: the geometric mean of the fitted ones (0 if none)."""
    acc = [z[i] for i, n in enumerate(names) if n.startswith("acceptance_scale.")]
    return float(np.mean(acc)) if acc else 0.0


def map_z(space: ParamSpace, names: list[str], z: np.ndarray) -> np.ndarray:
    """z for `space` from a fit over `names`: same name -> fitted value; a knob of an unfitted family or an
    unfitted engine's efficiency -> prior; an unfitted model's acceptance scale -> the transfer value."""
    fitted = dict(zip(names, z, strict=True))
    prior = dict(zip(space.names, space.prior(), strict=True))
    out = []
    for n in space.names:
        if n in fitted:
            out.append(fitted[n])
        elif n.startswith("acceptance_scale."):
            out.append(transfer_scale_z(names, z))
        else:
            out.append(prior[n])
    return np.array(out)


def to_yaml_dict(name: str, result: FitResult, sources: dict[str, str]) -> dict[str, Any]:
    defaults = EfficiencyKnobs().model_dump()
    hardware, families = {}, {}
    shared = {n.split(".", 1)[1]: round(v, 6) for n, v in result.values.items()
              if n.startswith(f"{SHARED_PARAMETER}.")}
    for fam in sorted({n.split(".")[0] for n in result.names
                       if not n.startswith(("acceptance_scale.", f"{ENGINE_PARAMETER}.", f"{SHARED_PARAMETER}."))}):
        families[fam] = {**defaults, **{k: round(result.values[f"{fam}.{k}"], 6) for k in FITTED_KNOBS}, **shared}
        for hw in family_members(fam):
            hardware[hw] = dict(families[fam])
    scales = {n.split(".", 1)[1]: round(v, 6) for n, v in result.values.items() if n.startswith("acceptance_scale.")}
    engines = {n.split(".", 1)[1]: round(v, 6) for n, v in result.values.items()
               if n.startswith(f"{ENGINE_PARAMETER}.")}
    return {"calibration": {
        "name": name,
        "created": dt.date.today().isoformat(),
        "method": "robust (soft_l1, scale 0.5) least squares on log errors, datasets equally weighted, weak prior at the defaults; "
                  "sigma from the Gauss-Newton covariance",
        "sources": sources,
        "hardware": dict(sorted(hardware.items())),
        "families": families,  # for GPUs not listed (a user's own), by generation: simulator.catalog
        "transferred": result.transferred,
        "engine_compute_efficiency": engines,  # factor on compute_fraction relative to SGLang (unfitted: 1)
        "acceptance_scale": scales,
        "acceptance_scale_transfer": round(float(np.exp(transfer_scale_z(result.names, result.z))), 6),
        "parameters": {n: {"value": round(result.values[n], 6), "sigma": round(result.sigma[n], 6),
                           "z": float(result.z[i])} for i, n in enumerate(result.names)},
        "covariance_z": {"names": result.names, "matrix": np.round(result.cov_z, 10).tolist()},
        "residuals_log_pct": result.residuals,
        "observations": result.n_obs,
    }}


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Fitted by `specsim task=calibrate` (simulator/calibration). Knobs per hardware family; hardware\n"
              "# without data takes its family's values (see `transferred`). Do not edit by hand: refit.\n")
    path.write_text(header + yaml.dump(data, Dumper=_NoAliases, sort_keys=False, width=120))


def fitted_z(calibration: Calibration) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(parameter names, fitted z, covariance of z) of a calibration with a covariance."""
    cov = calibration.covariance_z
    if cov is None:
        raise ValueError(f"calibration {calibration.name!r} has no covariance_z: refit it")
    z = np.array([calibration.parameters[n].z for n in cov.names])
    return list(cov.names), z, np.array(cov.matrix)


__all__ = ["fitted_z", "map_z", "to_yaml_dict", "transfer_scale_z", "write"]
