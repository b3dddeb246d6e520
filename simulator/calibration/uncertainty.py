"""Uncertainty of a prediction: P10/P50/P90 over the calibration's parameter covariance and its model error.

Parameters are drawn from the fitted covariance (efficiency knobs and acceptance scales together, in the
fit's z space); each draw's prediction is multiplied by log-normal noise with the scatter of the
calibration's own page residuals (the error the parameters do not explain). The MTP/Off gain's band is the
ratio of the two sides within each draw, times the scatter of the held-out gain errors.
"""

from __future__ import annotations

import math
import time
import zlib

import numpy as np
from tqdm import tqdm

from simulator.calibration.data import PageObs
from simulator.calibration.problem import PRIOR_SIGMA_Z, Problem
from simulator.calibration.store import fitted_z, map_z
from simulator.specs import Calibration

# parameter draws per band: the P10 of 64 draws sits at the 10th percentile within +-3.8 percentile points
# (binomial standard error sqrt(0.1 x 0.9 / 64)), finer than the band's own model-error width
BAND_SAMPLES = 64


def _mapped_cov(space_names: list[str], names: list[str], z: np.ndarray, cov: np.ndarray) -> np.ndarray:
    idx = {n: i for i, n in enumerate(names)}
    acc = [i for i, n in enumerate(names) if n.startswith("acceptance_scale.")]
    acc_var = float(np.var(z[acc]) + np.mean(np.diag(cov)[acc])) if acc else PRIOR_SIGMA_Z**2
    out = np.zeros((len(space_names), len(space_names)))
    for a, na in enumerate(space_names):
        for b, nb in enumerate(space_names):
            if na in idx and nb in idx:
                out[a, b] = cov[idx[na], idx[nb]]
            elif a == b:
                out[a, b] = acc_var if na.startswith("acceptance_scale.") else PRIOR_SIGMA_Z**2
    return out


GAIN = "gain"  # the band key of the MTP/Off throughput ratio at a target: (GAIN, interactivity)


def _noise(key: str, target: float, sigma: float, samples: int) -> np.ndarray:
    """Log-normal model-error draws seeded by one band's key (a side or GAIN) and target only, not by what
    else was asked."""
    seed = zlib.crc32(f"{key}:{target:.9g}".encode())
    return np.exp(np.random.default_rng(seed).normal(0.0, sigma, size=samples))


def gain_error_band(gain: float, target: float, sigma: float, samples: int = BAND_SAMPLES) -> tuple[float, float]:
    """(P10, P90) of an MTP/Off gain under its model error alone: the log-normal draws `bands` multiplies each
    parameter draw's ratio by (`_noise`, keyed by GAIN and the target), without the parameter draws, for a
    caller that reads no page targets (task=plan); the parameters' spread is small beside this model error.
    NaN where the gain is not finite or there is no model error to draw (`sigma` <= 0: no calibration)."""
    if not math.isfinite(gain) or sigma <= 0.0:
        return math.nan, math.nan
    lo, hi = np.percentile(gain * _noise(GAIN, target, sigma, samples), [10, 90])
    return float(lo), float(hi)


def bands(observations: list[PageObs], calibration: Calibration, samples: int = BAND_SAMPLES,
          acceptance_multiplier: float = 1.0, max_ttft_s: float | None = None, progress: bool = False,
          gain_sigma: float | None = None) -> dict[tuple[str, float], tuple]:
    """(side, target) -> (P10, P50, P90) of predicted throughput over the calibration's uncertainty:
    parameter draws from its covariance (acceptance draws shifted by `acceptance_multiplier`), times the
    scatter of its page residuals (model error). A target's band depends on that target only.

    (GAIN, target) -> the same of the MTP/Off gain, where both sides are asked: each draw's ratio of its two
    sides (one parameter draw moves both, so their shared errors cancel), times the gain's own model error
    (`gain_sigma`, default `Calibration.gain_error_sigma`)."""
    observations = [o for o in observations if o.candidates]  # a side with no deployment has no band
    if calibration.covariance_z is None or not observations:
        return {}
    problem = Problem([], observations, max_ttft_s)
    names, z, cov = fitted_z(calibration)
    mean = map_z(problem.space, names, z)
    c = _mapped_cov(problem.space.names, names, z, cov)
    draws = np.random.default_rng(0).multivariate_normal(mean, c, size=samples, method="eigh")
    acc = [i for i, n in enumerate(problem.space.names) if n.startswith("acceptance_scale.")]
    draws[:, acc] += np.log(acceptance_multiplier)  # the scale is exp(z): multiplying it shifts z
    # model error beyond the parameters: the scatter of the calibration's own page residuals (log space)
    sigma_model = calibration.model_error_sigma()
    noise = np.stack([_noise(o.side, o.interactivity, sigma_model, samples) for o in problem.pages], axis=1)
    raw = np.array(_predict_draws(problem, draws, progress))
    q = np.percentile(raw * noise, [10, 50, 90], axis=0)
    out = {(o.side, o.interactivity): tuple(q[:, j]) for j, o in enumerate(problem.pages)}
    column = {(o.side, o.interactivity): j for j, o in enumerate(problem.pages)}
    sigma_gain = calibration.gain_error_sigma() if gain_sigma is None else gain_sigma
    for t in dict.fromkeys(o.interactivity for o in problem.pages):
        if ("mtp", t) in column and ("off", t) in column:
            ratio = raw[:, column["mtp", t]] / raw[:, column["off", t]] * _noise(GAIN, t, sigma_gain, samples)
            out[GAIN, t] = tuple(np.percentile(ratio, [10, 50, 90]))
    return out


PROGRESS_AFTER_S = 5.0  # a band run expected to take longer than this says so and shows its progress


def _predict_draws(problem: Problem, draws: np.ndarray, progress: bool) -> list[np.ndarray]:
    """Each draw's predictions; with `progress`, after the first draw the expected time when it is long, and
    a progress bar (a terminal) over the rest."""
    t0 = time.perf_counter()
    out = [problem.predict(draws[0])]
    expected = (time.perf_counter() - t0) * (len(draws) - 1)
    show = progress and expected > PROGRESS_AFTER_S
    if show:
        n = int(problem.case_idx.numel())
        print(f"P10-P90 bands: {len(draws)} parameter draws over {n:,} points, about {expected:.0f} s more",
              flush=True)
    out += [problem.predict(d) for d in tqdm(draws[1:], desc="bands", unit="draw", disable=not show or None)]
    return out
