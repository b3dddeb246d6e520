"""Fit the parameters by robust least squares on log errors (each dataset weighted to equal total weight) with a
weak prior toward the hardware defaults; uncertainty from the Gauss-Newton covariance at the optimum."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from simulator.calibration.problem import PRIOR_SIGMA_Z, Problem
from simulator.calibration.speedup import speedup_rows
from simulator.catalog import family_members
from simulator.pages import error_pct


@dataclass
class FitResult:
    names: list[str]
    z: np.ndarray
    cov_z: np.ndarray
    values: dict[str, float]
    sigma: dict[str, float]  # one standard deviation in natural units (delta method)
    residuals: dict[str, dict[str, float]] = field(default_factory=dict)  # per dataset summary
    transferred: dict[str, str] = field(default_factory=dict)
    n_obs: int = 0
    cost: float = 0.0
    observations: list[dict[str, Any]] = field(default_factory=list)  # every observation at the fit (rows)
    speedups: list[dict[str, Any]] = field(default_factory=list)  # the sweeps' MTP/Off speed-up (speedup.py)


def dataset_weights(datasets: list[str]) -> np.ndarray:
    counts = {d: datasets.count(d) for d in set(datasets)}
    return np.array([1.0 / np.sqrt(counts[d]) for d in datasets])


RESIDUAL_COLUMNS = ("dataset", "label", "metric", "measured", "predicted", "error_pct", "optimistic")


def observation_rows(problem: Problem, predicted: np.ndarray) -> list[dict[str, Any]]:
    """Every observation with its prediction (`Problem.predict`), in `RESIDUAL_COLUMNS`: `error_pct` =
    predicted / measured - 1 in the metric's own terms; `optimistic`: the model promises more than was measured
    (`Problem.log_errors_of` > 0: a higher throughput or interactivity, a lower TPOT)."""
    measured, datasets, _ = problem.observations()
    optimistic = problem.log_errors_of(predicted) > 0
    labels = [p.label for p in problem.points] + [o.label for o in problem.pages]
    metrics = problem.metrics_observed()
    return [{"dataset": d, "label": lab, "metric": m, "measured": float(meas), "predicted": float(pred),
             "error_pct": error_pct(float(pred), float(meas)), "optimistic": bool(opt)}
            for d, lab, m, meas, pred, opt in zip(datasets, labels, metrics, measured, predicted, optimistic,
                                                  strict=True)]


def write_residuals_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """The fit's in-sample residuals (`observation_rows`) as a CSV, worst first."""
    frame = pd.DataFrame(rows, columns=list(RESIDUAL_COLUMNS))
    frame = frame.reindex(frame["error_pct"].abs().sort_values(ascending=False).index)
    frame.to_csv(path, index=False)
    return path


def summarize(errors: np.ndarray, datasets: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for d in sorted(set(datasets)):
        e = errors[np.array(datasets) == d]
        pct = np.abs(np.expm1(e)) * 100
        out[d] = {"n": int(e.size), "median_abs_pct": float(np.median(pct)), "max_abs_pct": float(pct.max()),
                  "bias_pct": float(np.expm1(np.mean(e)) * 100), "sigma_log": float(np.std(e))}
    return out


# Robust loss on the log errors (scipy's soft_l1, applied before the dataset weights so its scale is a log
# error): quadratic below ROBUST_SCALE_LOG (a factor e^0.5 = 1.65), growing like sqrt(|r|) beyond, so one
# target past a frontier's cliff (a page side that drops 20x between two targets) cannot steer the knobs.
ROBUST_SCALE_LOG = 0.5


def robust(r: np.ndarray, scale: float = ROBUST_SCALE_LOG) -> np.ndarray:
    """Residuals whose squares are soft_l1(r): 2 s^2 (sqrt(1 + (r / s)^2) - 1), sign kept."""
    return np.sign(r) * scale * np.sqrt(2.0 * (np.sqrt(1.0 + (r / scale) ** 2) - 1.0))


# Fit settings. MAX_EVALUATIONS: trust-region steps (each a Jacobian by finite differences over ~30
# parameters): the default fit converges in ~25 (the leave-one-page-out refits too); 60 bounds a hard case.
# PRIOR_WEIGHT: the prior residual (z - z0) / PRIOR_SIGMA_Z counts a tenth of one observation: it only
# decides parameters the data leave free. FD_STEP: relative finite-difference step in z; the model is smooth
# at that scale except at the admission and CUDA-graph kinks, which a step of 1e-3 straddles less often than
# a larger one.
MAX_EVALUATIONS = 60
PRIOR_WEIGHT = 0.1
FD_STEP = 1e-3


def fit(problem: Problem, max_nfev: int = MAX_EVALUATIONS, prior_weight: float = PRIOR_WEIGHT) -> FitResult:
    space = problem.space
    z0 = space.prior()
    _, datasets, _ = problem.observations()
    w = dataset_weights(datasets)

    def residuals(z: np.ndarray) -> np.ndarray:
        data = w * robust(problem.log_errors(z))
        return np.concatenate([data, (z - z0) / PRIOR_SIGMA_Z * prior_weight])

    sol = least_squares(residuals, z0, method="trf", x_scale=1.0, diff_step=FD_STEP, max_nfev=max_nfev)
    jac = sol.jac
    dof = max(len(sol.fun) - len(z0), 1)
    s2 = float(np.sum(sol.fun**2) / dof)
    cov = np.linalg.pinv(jac.T @ jac) * s2
    values, sigma = {}, {}
    for i, name in enumerate(space.names):
        values[name] = space.value(name, sol.x[i])
        h = 1e-4
        deriv = (space.value(name, sol.x[i] + h) - space.value(name, sol.x[i] - h)) / (2 * h)
        sigma[name] = float(abs(deriv) * np.sqrt(max(cov[i, i], 0.0)))
    data_hw = {c.scenario.hardware.name for c in problem.cases}
    transferred = {hw: fam for fam in space.families for hw in family_members(fam) if hw not in data_hw}
    predicted = problem.predict(sol.x)
    errors = problem.log_errors_of(predicted)
    return FitResult(space.names, sol.x, cov, values, sigma, summarize(errors, datasets), transferred,
                     len(errors), float(sol.cost), observation_rows(problem, predicted),
                     speedup_rows(problem.points, predicted[:len(problem.points)]))
