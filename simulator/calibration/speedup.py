"""What MTP buys on the measured on/off sweeps, at the fit: the MTP/Off TPOT speed-up by concurrency.

The GLM-5 and ATOM sweeps measure one deployment at each concurrency twice, speculation on and off. Their
ratio, MTP interactivity / Off interactivity (= Off TPOT / MTP TPOT), is the batch trend of what MTP is worth
(issue 17, lead 4: measured 1.5-2.1 at c = 4 falling to 0.9-1.2 at c = 256), and `task=calibrate` reports it
predicted beside measured (`speedups.csv`). It is read off the fit's own predictions, not priced again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.calibration.data import PointObs
from simulator.pages import error_pct

SPEEDUP_COLUMNS = ("dataset", "model", "hardware", "precision", "workload", "deployment", "engine", "concurrency",
                   "measured", "predicted", "difference", "mtp_error_pct", "off_error_pct")
# issue 17's bar for the GLM-5 sweeps: the predicted speed-up within 0.1 of the measured one at every concurrency
SPEEDUP_TOLERANCE = 0.1
_SWEEP_FIELDS = SPEEDUP_COLUMNS[:7]  # one sweep: every field but the concurrency and the figures
_POINT_FIELDS = (*_SWEEP_FIELDS, "concurrency")  # one operating point of a sweep (`_pair_key`, in this order)


def _pair_key(p: PointObs) -> tuple[Any, ...]:
    sc = p.case.scenario
    return (p.dataset, sc.model.name, sc.hardware.name, sc.precision, sc.workload.name, p.case.deployment.label,
            p.case.engine, p.concurrency)


def speedup_rows(points: Sequence[PointObs], predicted: np.ndarray) -> list[dict[str, Any]]:
    """One row (`SPEEDUP_COLUMNS`) per deployment and concurrency whose interactivity was measured with MTP and
    without; `predicted[i]` is the model's value of `points[i]`. Sorted by sweep, then concurrency.

    `mtp_error_pct` / `off_error_pct`: each side's interactivity error (predicted / measured - 1, > 0 where the
    model is optimistic), so a speed-up's miss reads as the side it comes from (a too-fast Off shortens the
    predicted speed-up as much as a too-slow MTP)."""
    sides: dict[tuple[Any, ...], dict[bool, tuple[float, float]]] = {}
    for p, pred in zip(points, predicted, strict=True):
        if p.metric == "interactivity":
            sides.setdefault(_pair_key(p), {})[p.case.with_draft] = (p.measured, float(pred))
    rows = []
    for key, by_side in sides.items():
        if len(by_side) < 2:
            continue
        (m_on, p_on), (m_off, p_off) = by_side[True], by_side[False]
        measured, pred = m_on / m_off, p_on / p_off
        rows.append({**dict(zip(_POINT_FIELDS, key, strict=True)), "measured": measured, "predicted": pred,
                     "difference": pred - measured, "mtp_error_pct": error_pct(p_on, m_on),
                     "off_error_pct": error_pct(p_off, m_off)})
    return sorted(rows, key=lambda r: tuple(str(r[c]) for c in _SWEEP_FIELDS) + (r["concurrency"],))


def write_speedups_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    pd.DataFrame(rows, columns=list(SPEEDUP_COLUMNS)).to_csv(path, index=False)
    return path


def format_speedups(rows: list[dict[str, Any]]) -> str:
    """One line per sweep: predicted / measured speed-up at each concurrency, how many lie within
    SPEEDUP_TOLERANCE, and each side's error where the speed-up misses most; "" without paired sweeps."""
    if not rows:
        return ""
    lines = [f"MTP/Off TPOT speed-up on the measured sweeps, predicted / measured (within {SPEEDUP_TOLERANCE:g}):"]
    sweeps: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        sweeps.setdefault(tuple(r[c] for c in _SWEEP_FIELDS), []).append(r)
    for key, rs in sweeps.items():
        near = sum(abs(r["difference"]) <= SPEEDUP_TOLERANCE for r in rs)
        cells = " ".join(f"c{r['concurrency']} {r['predicted']:.2f}/{r['measured']:.2f}" for r in rs)
        worst = max(rs, key=lambda r: abs(r["difference"]))
        sides = f"MTP {round(worst['mtp_error_pct']) + 0:+d} %, Off {round(worst['off_error_pct']) + 0:+d} %"
        lines.append(f"  {' '.join(str(k) for k in key[1:])} ({key[0]}): {cells}  [{near}/{len(rs)}; "
                     f"worst c{worst['concurrency']}: {sides}]")
    return "\n".join(lines)
