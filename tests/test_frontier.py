"""Pareto front, Steffen (d3 monotoneX) interpolation and default targets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.frontier import (
    default_targets,
    pareto_front,
    read_at,
    steffen_interpolate,
    steffen_slopes,
)
from simulator.rounding import js_round

FAST = settings(max_examples=200, deadline=None)


def _hermite(y0: float, y1: float, m0: float, m1: float, h: float, t: float) -> float:
    return (
        (2 * t**3 - 3 * t**2 + 1) * y0
        + (t**3 - 2 * t**2 + t) * h * m0
        + (-2 * t**3 + 3 * t**2) * y1
        + (t**3 - t**2) * h * m1
    )


def test_steffen_matches_hand_computed_example() -> None:
    x = np.array([0.0, 1.0, 2.0, 4.0])
    y = np.array([0.0, 1.0, 3.0, 4.0])
    # Secants: s = [1, 2, 0.5]; widths h = [1, 1, 2].
    # Knot 1: p = (1*1 + 2*1)/2 = 1.5 -> (1+1)*min(1, 2, 0.75) = 1.5
    # Knot 2: p = (2*2 + 0.5*1)/3 = 1.5 -> (1+1)*min(2, 0.5, 0.75) = 1.0
    # Ends (d3): (3*s - t)/2 -> (3*1 - 1.5)/2 = 0.75 and (3*0.5 - 1.0)/2 = 0.25
    m = [0.75, 1.5, 1.0, 0.25]
    np.testing.assert_allclose(steffen_slopes(x, y), m)
    expected = {
        0.5: _hermite(0.0, 1.0, m[0], m[1], 1.0, 0.5),  # 0.40625
        1.5: _hermite(1.0, 3.0, m[1], m[2], 1.0, 0.5),  # 2.0625
        3.0: _hermite(3.0, 4.0, m[2], m[3], 2.0, 0.5),  # 3.6875
        3.5: _hermite(3.0, 4.0, m[2], m[3], 2.0, 0.75),
    }
    assert expected[0.5] == pytest.approx(0.40625)
    assert expected[1.5] == pytest.approx(2.0625)
    assert expected[3.0] == pytest.approx(3.6875)
    got = steffen_interpolate(x, y, np.array(list(expected)))
    np.testing.assert_allclose(got, list(expected.values()), rtol=1e-12)
    np.testing.assert_allclose(steffen_interpolate(x, y, x), y)


def test_local_extremum_gets_flat_tangent_and_two_knots_are_linear() -> None:
    assert steffen_slopes(np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 0.0]))[1] == 0.0
    got = steffen_interpolate(np.array([0.0, 2.0]), np.array([1.0, 5.0]), np.array([0.5, 1.0, 1.5]))
    np.testing.assert_allclose(got, [2.0, 3.0, 4.0])


def test_no_extrapolation_and_single_knot() -> None:
    x, y = np.array([10.0, 20.0, 40.0]), np.array([300.0, 200.0, 50.0])
    got = steffen_interpolate(x, y, np.array([9.999, 10.0, 40.0, 40.001, np.nan]))
    assert math.isnan(got[0]) and math.isnan(got[3]) and math.isnan(got[4])
    assert got[1] == 300.0 and got[2] == 50.0
    assert steffen_interpolate(x, y, 5.0).shape == ()
    one = steffen_interpolate(np.array([3.0]), np.array([7.0]), np.array([3.0, 3.1]))
    assert one[0] == 7.0 and math.isnan(one[1])


def test_rejects_unsorted_knots() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        steffen_interpolate(np.array([0.0, 0.0, 1.0]), np.array([1.0, 2.0, 3.0]), 0.5)


_steps = st.lists(st.floats(0.01, 100.0), min_size=2, max_size=12)


@FAST
@given(dx=_steps, dy_seed=st.lists(st.floats(0.0, 100.0), min_size=12, max_size=12), rising=st.booleans())
def test_spline_preserves_monotonicity(dx: list[float], dy_seed: list[float], rising: bool) -> None:
    x = np.cumsum(dx)
    steps = np.array(dy_seed[: len(dx)])
    y = np.cumsum(steps if rising else -steps)
    xq = np.linspace(x[0], x[-1], 400)
    yq = steffen_interpolate(x, y, xq)
    assert np.all(np.isfinite(yq))
    d = np.diff(yq)
    tol = 1e-9 * (1.0 + np.abs(y).max())
    assert np.all(d >= -tol) if rising else np.all(d <= tol)
    assert yq.min() >= y.min() - tol and yq.max() <= y.max() + tol


def test_pareto_front_small_known_set() -> None:
    x = np.array([10, 20, 20, 15, 30, 30, 5, np.nan, np.inf, 25])
    y = np.array([100, 90, 95, 80, 50, 50, 100, 1000, 5, 50])
    # (20,90) loses to (20,95); (15,80) to (20,95); (5,100) ties (10,100) on throughput but is slower;
    # (25,50) loses to (30,50); of the duplicate (30,50) pair the first index stays; NaN/inf ignored.
    assert pareto_front(x, y).tolist() == [0, 2, 4]


@FAST
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=40))
def test_pareto_front_properties(pts: list[tuple[int, int]]) -> None:
    x = np.array([p[0] for p in pts], dtype=float)
    y = np.array([p[1] for p in pts], dtype=float)
    front = pareto_front(x, y)
    assert np.all(np.diff(x[front]) > 0) and np.all(np.diff(y[front]) < 0)
    for i in range(len(pts)):
        covered = np.any((x[front] >= x[i]) & (y[front] >= y[i]))
        assert covered
        if i in front:
            others = np.delete(np.arange(len(pts)), i)
            beats = (x[others] >= x[i]) & (y[others] >= y[i]) & ((x[others] > x[i]) | (y[others] > y[i]))
            assert not np.any(beats)


def test_default_targets() -> None:
    # Overlap [13, 157]: 25/50/75 % are 49, 85, 121 (the DeepSeek R1 MI355X page's targets).
    assert default_targets(np.array([13.0, 60.0, 160.0]), np.array([10.0, 157.0])) == [49.0, 85.0, 121.0]
    assert default_targets(np.array([0.0, 10.0]), np.array([0.0, 10.0])) == [3.0, 5.0, 8.0]  # half up
    assert default_targets(np.array([1.0, 5.0]), np.array([6.0, 9.0])) == []
    assert default_targets(np.array([]), np.array([6.0, 9.0])) == []
    assert default_targets(np.array([0.0, 100.0]), np.array([0.0, 100.0]), fractions=(0.1,)) == [10.0]
    assert js_round(2.5) == 3 and js_round(-2.5) == -2


FRONT_X, FRONT_Y, FRONT_C = np.array([10.0, 20.0, 40.0]), np.array([300.0, 200.0, 50.0]), np.array([64, 32, 8])


def test_read_at_null_outside_the_front() -> None:
    got = read_at(FRONT_X, FRONT_Y, [5.0, 10.0, 20.0, 30.0, 41.0, np.nan], extra={"concurrency": FRONT_C})
    assert got.row(0) is None and got.row(4) is None and got.row(5) is None
    assert not got.clamped.any()
    assert got.row(1) == {"interactivity": 10.0, "value": 300.0, "clamped": False, "concurrency": 64}
    assert got.row(2) == {"interactivity": 20.0, "value": 200.0, "clamped": False, "concurrency": 32}
    mid = got.row(3)
    assert mid is not None and 50.0 < mid["value"] < 200.0 and isinstance(mid["concurrency"], int)


def test_read_at_clamps_to_the_edge_and_flags_it() -> None:
    # Below the front: its first point; above: its last; inside: the same spline as "null".
    got = read_at(FRONT_X, FRONT_Y, [5.0, 10.0, 30.0, 41.0, 1e6], outside="clamp", extra={"concurrency": FRONT_C})
    assert got.values[0] == 300.0 and got.values[3] == 50.0 and got.values[4] == 50.0
    assert got.clamped.tolist() == [True, False, False, True, True]
    assert got.extra["concurrency"][[0, 3]].tolist() == [64.0, 8.0]
    inside = read_at(FRONT_X, FRONT_Y, [30.0])
    assert got.values[2] == inside.values[0]
    assert got.row(0) == {"interactivity": 5.0, "value": 300.0, "clamped": True, "concurrency": 64}
    assert np.isnan(read_at(FRONT_X, FRONT_Y, [np.nan], outside="clamp").values[0])


def test_read_at_one_point_front() -> None:
    x, y = np.array([25.0]), np.array([700.0])
    null = read_at(x, y, [20.0, 25.0, 30.0])
    assert np.isnan(null.values[[0, 2]]).all() and null.values[1] == 700.0
    clamp = read_at(x, y, [20.0, 25.0, 30.0], outside="clamp", extra={"concurrency": np.array([12.5])})
    assert clamp.values.tolist() == [700.0] * 3 and clamp.clamped.tolist() == [True, False, True]
    assert clamp.extra["concurrency"].tolist() == [13.0] * 3  # rounded half up, as Math.round


def test_read_at_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="outside must be one of null, clamp"):
        read_at(FRONT_X, FRONT_Y, [15.0], outside="extrapolate")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="strictly increasing"):
        read_at(FRONT_X[::-1], FRONT_Y, [15.0])
    with pytest.raises(ValueError, match="extra column 'concurrency' needs 3 finite values"):
        read_at(FRONT_X, FRONT_Y, [15.0], extra={"concurrency": np.array([1, 2])})
