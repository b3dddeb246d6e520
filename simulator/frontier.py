"""Pareto fronts and matched-interactivity interpolation, as the InferenceX comparison pages do it.

Definitions follow docs/sources.md#comparison-pages:
an upper-left Pareto front of (interactivity, throughput) per side, a monotone cubic Hermite spline with
Steffen's (1990) slopes through it (identical to d3-shape's ``curveMonotoneX``), no extrapolation (or, as the
dashboard does, a target clamped to the front's edge: :func:`read_at`), and
default targets at 25/50/75 % of the interactivity range both sides cover.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from simulator.rounding import js_round

__all__ = [
    "OUTSIDE",
    "FrontReading",
    "default_targets",
    "pareto_front",
    "read_at",
    "steffen_interpolate",
    "steffen_slopes",
]


# Points whose interactivity and throughput agree to this relative tolerance are one point: a plateau, where
# a concurrency beyond what the engine admits only queues and its figures equal the admitted batch's up to
# float rounding. The lowest index stands for them (candidates list concurrencies in ascending order: the
# smallest concurrency, the shortest queue, the lowest TTFT).
TIE_RTOL = 1e-9


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TIE_RTOL * max(abs(a), abs(b))


def pareto_front(interactivity: np.ndarray, throughput: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (or equals) on both interactivity and throughput.

    Non-finite points are ignored. Points equal to within `TIE_RTOL` on both axes count as one, and the
    lowest index of them is kept. The result is sorted by interactivity ascending; throughput falls
    strictly along it.
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
        if kept and _close(x[i], x[kept[-1]]) and _close(y[i], y[kept[-1]]):
            kept[-1] = min(kept[-1], int(i))  # the same point: the lowest index stands for it
            continue
        if y[i] > best and not (kept and _close(y[i], best)):
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


Outside = Literal["null", "clamp"]
OUTSIDE: tuple[str, ...] = ("null", "clamp")


@dataclass(frozen=True)
class FrontReading:
    """A front read at each target: ``values`` (NaN where not read), ``clamped`` (read at the front's edge
    because the target lay outside it) and each ``extra`` column read the same way (NaN where not read;
    those named in ``rounded`` hold whole numbers)."""

    targets: np.ndarray
    values: np.ndarray
    clamped: np.ndarray
    extra: dict[str, np.ndarray]
    rounded: frozenset[str] = frozenset()

    def row(self, i: int) -> dict[str, float | int | bool] | None:
        """Target ``i`` as plain Python values (rounded columns as int), or None where nothing was read."""
        if not np.isfinite(self.values[i]):
            return None
        out: dict[str, float | int | bool] = {"interactivity": float(self.targets[i]),
                                              "value": float(self.values[i]), "clamped": bool(self.clamped[i])}
        for name, col in self.extra.items():
            out[name] = int(col[i]) if name in self.rounded else float(col[i])
        return out


def _js_round_all(values: np.ndarray) -> np.ndarray:
    return np.array([js_round(v) if np.isfinite(v) else np.nan for v in values], dtype=float)


def read_at(
    front_x: np.ndarray,
    front_y: np.ndarray,
    targets: Sequence[float] | np.ndarray,
    outside: Outside = "null",
    extra: Mapping[str, np.ndarray] | None = None,
    rounded: Collection[str] = ("concurrency",),
) -> FrontReading:
    """Read a front (x strictly increasing) at each target with the Steffen spline.

    ``outside="null"``: a target outside [x0, xn] gives NaN (the methodology's "not extrapolated").
    ``outside="clamp"``: it is read at the nearer edge and flagged ``clamped``, as the InferenceX dashboard
    does (SemiAnalysisAI/InferenceX-app, packages/app/src/components/calculator/interpolation.ts,
    ``interpolateForGPU``: the target is clamped to the front's [min, max] and the result carries
    ``clamped = clampedBelow || clampedAbove``). A one-point front is read only at its own x under "null",
    and gives its point everywhere under "clamp" (flagged wherever the target differs from it), as there.
    That code also clamps each interpolated metric to the front's range; Steffen's spline never overshoots
    its knots, so that holds here without a clamp. ``extra`` columns (e.g. concurrency) are read at the
    same x; those named in ``rounded`` are rounded half up with :func:`js_round` (its ``Math.round``).
    A NaN target gives NaN and is never flagged.
    """
    if outside not in OUTSIDE:
        raise ValueError(f"outside must be one of {', '.join(OUTSIDE)}; got {outside!r}")
    x = np.asarray(front_x, dtype=float).ravel()
    y = np.asarray(front_y, dtype=float).ravel()
    _check_knots(x, y)
    columns = {name: np.asarray(col, dtype=float).ravel() for name, col in (extra or {}).items()}
    for name, col in columns.items():
        if col.shape != x.shape or not np.all(np.isfinite(col)):
            raise ValueError(f"extra column {name!r} needs {x.size} finite values, one per front point")
    tq = np.asarray(targets, dtype=float).ravel()
    clamp = outside == "clamp"
    at = np.clip(tq, x[0], x[-1]) if clamp else tq
    extra_read = {name: steffen_interpolate(x, col, at) for name, col in columns.items()}
    names = frozenset(n for n in rounded if n in extra_read)
    for name in names:
        extra_read[name] = _js_round_all(extra_read[name])
    return FrontReading(targets=tq, values=steffen_interpolate(x, y, at),
                        clamped=((tq < x[0]) | (tq > x[-1])) & clamp, extra=extra_read, rounded=names)
