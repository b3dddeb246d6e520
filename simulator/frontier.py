"""Pareto fronts and matched-interactivity interpolation, as the InferenceX comparison pages do it.

Definitions follow ../shared/reference/methodology.md ("How a comparison page is made from the runs"):
an upper-left Pareto front of (interactivity, throughput) per side, a monotone cubic Hermite spline with
Steffen's (1990) slopes through it (identical to d3-shape's ``curveMonotoneX``), no extrapolation, and
default targets at 25/50/75 % of the interactivity range both sides cover.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "default_targets",
    "interpolate_front",
    "js_round",
    "pareto_front",
    "steffen_interpolate",
    "steffen_slopes",
]


def js_round(value: float) -> int:
    """Round half up, like JavaScript's ``Math.round`` (the dashboards are JS; Python rounds half-even)."""
    return int(math.floor(value + 0.5))


def pareto_front(interactivity: np.ndarray, throughput: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (or equals) on both interactivity and throughput.

    Non-finite points are ignored. Among exact duplicates the lowest index is kept. The result is
    sorted by interactivity ascending; throughput falls strictly along it.
    """
    x = np.asarray(interactivity, dtype=float).ravel()
    y = np.asarray(throughput, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"interactivity and throughput differ in length: {x.size} vs {y.size}")
    idx = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    # Highest interactivity first; within equal interactivity highest throughput first; then index.
    order = idx[np.lexsort((idx, -y[idx], -x[idx]))]
    kept: list[int] = []
    best = -math.inf
    for i in order:
        if y[i] > best:
            kept.append(int(i))
            best = float(y[i])
    return np.asarray(kept[::-1], dtype=np.intp)


def _check_knots(x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim != 1 or y.ndim != 1 or x.size != y.size:
        raise ValueError(f"x and y must be 1-D and equally long, got shapes {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("at least one knot is needed")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("knots must be finite")
    if np.any(np.diff(x) <= 0):
        raise ValueError("x must be strictly increasing")


def _sign(v: np.ndarray) -> np.ndarray:
    """d3's sign: -1 for negative, +1 otherwise (zero counts as positive)."""
    return np.where(v < 0, -1.0, 1.0)


def steffen_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Tangent at each knot exactly as d3-shape's monotoneX computes them.

    Interior (Steffen 1990): (sign(s0)+sign(s1)) * min(|s0|, |s1|, |p|/2) with
    p = (s0*h1 + s1*h0)/(h0+h1). Ends: (3*s - t)/2 with s the end secant and t the neighbour's tangent.
    Two knots give a straight line.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    _check_knots(x, y)
    n = x.size
    if n == 1:
        return np.zeros(1)
    h = np.diff(x)
    s = np.diff(y) / h
    if n == 2:
        return np.array([s[0], s[0]])
    s0, s1, h0, h1 = s[:-1], s[1:], h[:-1], h[1:]
    p = (s0 * h1 + s1 * h0) / (h0 + h1)
    interior = (_sign(s0) + _sign(s1)) * np.minimum(np.minimum(np.abs(s0), np.abs(s1)), 0.5 * np.abs(p))
    first = (3.0 * s[0] - interior[0]) / 2.0
    last = (3.0 * s[-1] - interior[-1]) / 2.0
    return np.concatenate(([first], interior, [last]))


def steffen_interpolate(x: np.ndarray, y: np.ndarray, xq: np.ndarray | float) -> np.ndarray:
    """Monotone cubic Hermite interpolation (Steffen / d3 curveMonotoneX) of knots (x, y) at ``xq``.

    ``x`` must be strictly increasing. Queries outside [x[0], x[-1]] (and NaN queries) give NaN.
    The result has the shape of ``xq`` (0-d for a scalar).
    """
    xk = np.asarray(x, dtype=float)
    yk = np.asarray(y, dtype=float)
    m = steffen_slopes(xk, yk)
    q = np.asarray(xq, dtype=float)
    out = np.full(q.shape, np.nan)
    inside = (q >= xk[0]) & (q <= xk[-1])
    if xk.size == 1:
        out[inside] = yk[0]
        return out
    qi = q[inside]
    seg = np.clip(np.searchsorted(xk, qi, side="right") - 1, 0, xk.size - 2)
    h = xk[seg + 1] - xk[seg]
    t = (qi - xk[seg]) / h
    t2, t3 = t * t, t * t * t
    h00 = 2 * t3 - 3 * t2 + 1
    h10 = t3 - 2 * t2 + t
    h01 = -2 * t3 + 3 * t2
    h11 = t3 - t2
    out[inside] = h00 * yk[seg] + h10 * h * m[seg] + h01 * yk[seg + 1] + h11 * h * m[seg + 1]
    return out


def default_targets(
    x_a: np.ndarray, x_b: np.ndarray, fractions: Sequence[float] = (0.25, 0.5, 0.75)
) -> list[float]:
    """Fractions of the interactivity range both sides cover, rounded to integers (half up).

    The covered range is [max of the minima, min of the maxima] over finite values; empty if it is
    empty or a single point.
    """
    a = np.asarray(x_a, dtype=float).ravel()
    b = np.asarray(x_b, dtype=float).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return []
    lo = max(float(a.min()), float(b.min()))
    hi = min(float(a.max()), float(b.max()))
    if hi <= lo:
        return []
    return [float(js_round(lo + f * (hi - lo))) for f in fractions]


def interpolate_front(
    interactivity: np.ndarray,
    throughput: np.ndarray,
    concurrency: np.ndarray,
    targets: Sequence[float] | np.ndarray,
) -> list[dict[str, float | int] | None]:
    """Throughput per GPU and concurrency (rounded half up) at each target interactivity.

    The inputs must already be a Pareto front: interactivity strictly increasing and throughput strictly
    decreasing. A target outside the front gives None (no extrapolation).
    """
    x = np.asarray(interactivity, dtype=float).ravel()
    y = np.asarray(throughput, dtype=float).ravel()
    c = np.asarray(concurrency, dtype=float).ravel()
    if c.shape != x.shape:
        raise ValueError(f"concurrency has {c.size} values for {x.size} front points")
    _check_knots(x, y)
    if np.any(np.diff(y) >= 0):
        raise ValueError("not a Pareto front: throughput must fall strictly as interactivity rises")
    tq = np.asarray(targets, dtype=float).ravel()
    tput = steffen_interpolate(x, y, tq)
    conc = steffen_interpolate(x, c, tq)
    result: list[dict[str, float | int] | None] = []
    for target, tp, cc in zip(tq, tput, conc, strict=True):
        if not np.isfinite(tp):
            result.append(None)
            continue
        result.append({"interactivity": float(target), "tput_per_gpu": float(tp), "concurrency": js_round(cc)})
    return result
