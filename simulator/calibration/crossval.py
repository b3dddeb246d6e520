"""Cross-validation of the calibration: refit without a page (or a GPU) and predict what was held out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from simulator.calibration.data import PageObs
from simulator.calibration.dataset import build_problem
from simulator.calibration.fit import FitResult, fit, summarize
from simulator.calibration.problem import Problem
from simulator.calibration.store import map_z, to_yaml_dict
from simulator.calibration.uncertainty import GAIN, bands
from simulator.catalog import SpecError
from simulator.pages import Page, error_pct, measured_direction, modelled_pages
from simulator.specs import Calibration
from simulator.specs.vocabulary import SIDES

MODES = ("leave_one_page_out", "leave_one_hardware_out")


def _hardware(obs: Any) -> str:
    case = obs.case if hasattr(obs, "case") else obs.candidates[0][0]
    return case.scenario.hardware.name


@dataclass
class Fold:
    held_out: str
    test: Problem
    result: FitResult
    errors: np.ndarray  # held-out log(predicted / measured), > 0: optimistic
    datasets: list[str]


def _fold(data_dir: Path, pages: list[Page] | None, group: str, held: Callable[[Any, str], bool]) -> Fold:
    train = build_problem(data_dir, pages, keep=lambda o: not held(o, group))
    test = build_problem(data_dir, pages, keep=lambda o: held(o, group))
    result = fit(train)
    _, datasets, _ = test.observations()
    return Fold(group, test, result, test.log_errors(map_z(test.space, result.names, result.z)), datasets)


def _page_errors(folds: list[Fold], skip: str | None = None) -> np.ndarray:
    return np.concatenate([f.errors[np.array(f.datasets) == "pages"] for f in folds if f.held_out != skip]
                          or [np.zeros(0)])


def _gain_errors_log(folds: list[Fold], skip: str | None = None) -> np.ndarray:
    """Held-out log errors of the MTP/Off gain (MTP's log error less Off's, per page target with both)."""
    out = []
    for f in folds:
        if f.held_out == skip:
            continue
        sides: dict[tuple[str, float], dict[str, float]] = {}
        for i, o in enumerate(f.test.pages):
            sides.setdefault((o.page, o.interactivity), {})[o.side] = float(f.errors[len(f.test.points) + i])
        out += [s["mtp"] - s["off"] for s in sides.values() if len(s) == 2]
    return np.array(out)


def held_out_targets(folds: list[Fold], pages: list[Page]) -> list[dict[str, Any]]:
    """One row per held-out page target and side: measured, predicted, signed error, direction, whether the
    measured value lies inside the P10-P90 band. The band uses the fold's own fit (its covariance) and, as
    model error, the held-out residual spread of the OTHER folds (so no fold sees its own residuals)."""
    by_source = {p.source: p for p in pages}
    rows: list[dict[str, Any]] = []
    for f in folds:
        others = _page_errors(folds, skip=f.held_out)
        calibration = to_yaml_dict("cv", f.result, {})["calibration"]
        calibration["residuals_log_pct"] = {"pages": {"sigma_log": float(np.std(others)) if others.size else 0.0}}
        others_gain = _gain_errors_log(folds, skip=f.held_out)
        band = bands(f.test.pages, Calibration.of(calibration),
                     gain_sigma=float(np.std(others_gain)) if others_gain.size else None)
        measured, datasets, _ = f.test.observations()
        pred = measured * np.exp(f.errors)
        per_target: dict[float, dict[str, Any]] = {}
        for i, o in enumerate(f.test.pages):
            j = len(f.test.points) + i
            b = band.get((o.side, o.interactivity))
            row = {"page": o.page, "side": o.side, "interactivity": o.interactivity, "measured": float(measured[j]),
                   "predicted": float(pred[j]), "error_pct": float(np.expm1(f.errors[j]) * 100),
                   "p10": float(b[0]) if b else None, "p90": float(b[2]) if b else None,
                   "inside_band": bool(b[0] <= measured[j] <= b[2]) if b else None}
            rows.append(row)
            per_target.setdefault(o.interactivity, {})[o.side] = row
        page = by_source.get(f.held_out)
        for point in page.points if page else []:
            sides = per_target.get(point.interactivity, {})
            up = measured_direction(point)
            right = None if up is None or len(sides) < 2 else (sides["mtp"]["predicted"] > sides["off"]["predicted"]) == up
            for r in sides.values():
                r["direction_right"] = right
            g = band.get((GAIN, point.interactivity))
            if g and "mtp" in sides:  # the gain's band rides on the target's MTP row, as its gain error does
                measured_gain = point.mtp.tput_per_gpu / point.off.tput_per_gpu
                sides["mtp"].update(gain_p10=float(g[0]), gain_p90=float(g[2]),
                                    gain_inside_band=bool(g[0] <= measured_gain <= g[2]))
    return rows


def gain_errors(rows: list[dict[str, Any]]) -> dict[tuple[str, float], float]:
    """Per held-out page target with both sides: the MTP/Off gain's error in % (predicted gain / measured
    gain - 1, the gain = MTP throughput / Off throughput at the same interactivity)."""
    sides: dict[tuple[str, float], dict[str, dict[str, Any]]] = {}
    for r in rows:
        sides.setdefault((r["page"], r["interactivity"]), {})[r["side"]] = r
    return {key: error_pct(s["mtp"]["predicted"] / s["off"]["predicted"], s["mtp"]["measured"] / s["off"]["measured"])
            for key, s in sides.items() if len(s) == 2}


def _row_gain(gains: dict[tuple[str, float], float], r: dict[str, Any]) -> float | None:
    """The gain error shown on a target's MTP row (None on the Off row, or without both sides)."""
    return gains.get((r["page"], r["interactivity"])) if r["side"] == "mtp" else None


def write_targets_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """The held-out targets as a CSV (one row per page target and side; `gain_error_pct` on the MTP row)."""
    gains = gain_errors(rows)
    frame = pd.DataFrame([{**r, "gain_error_pct": _row_gain(gains, r)} for r in rows])
    frame.to_csv(path, index=False)
    return path


def target_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per side: median absolute and signed error over held-out targets; the MTP/Off gain's; direction;
    P10-P90 coverage."""
    out: dict[str, Any] = {}
    errors = {side: np.array([r["error_pct"] for r in rows if r["side"] == side]) for side in SIDES}
    errors["gain"] = np.array(list(gain_errors(rows).values()))
    for side, e in errors.items():
        if e.size:
            out[side] = {"n": int(e.size), "median_abs_pct": float(np.median(np.abs(e))),
                         "median_signed_pct": float(np.median(e)),
                         # every target's error, not only the middle one's: the mean |log(pred / meas)|
                         "mean_abs_log": float(np.mean(np.abs(np.log1p(e / 100.0))))}
    dirs = [r["direction_right"] for r in rows if r["side"] == "mtp" and r.get("direction_right") is not None]
    inside = [r["inside_band"] for r in rows if r["inside_band"] is not None]
    gain_inside = [r["gain_inside_band"] for r in rows if r.get("gain_inside_band") is not None]
    out["direction_right"] = f"{sum(dirs)}/{len(dirs)}"
    out["inside_p10_p90"] = f"{sum(inside)}/{len(inside)}"
    out["inside_p10_p90_pct"] = float(100 * np.mean(inside)) if inside else None
    out["gain_inside_p10_p90"] = f"{sum(gain_inside)}/{len(gain_inside)}"
    return out


def refit_each(groups: list[str], refit: Callable[[str], Fold], desc: str) -> list[Fold]:
    """`refit` per held-out group with progress: a tqdm bar (ETA) on a terminal, else a line per refit."""
    folds: list[Fold] = []
    bar = tqdm(groups, desc=desc, unit="refit", disable=None)  # None: no bar when stderr is not a terminal
    start = time.perf_counter()
    for i, g in enumerate(bar, 1):
        folds.append(refit(g))
        if bar.disable:
            elapsed = time.perf_counter() - start
            print(f"  refit {i}/{len(groups)} done (held out {g}): {elapsed:.0f} s so far, "
                  f"~{elapsed / i * (len(groups) - i):.0f} s left", flush=True)
    return folds


def run_cv(data_dir: Path, mode: str, pages: list[Page] | None = None) -> dict[str, Any]:
    """Refit per held-out group (`mode`: leave_one_page_out | leave_one_hardware_out); print and return it."""
    if mode not in MODES:
        raise SpecError(f"cv must be one of none, {', '.join(MODES)}; got {mode!r}")
    pages = modelled_pages() if pages is None else pages
    full = build_problem(data_dir, pages)
    if mode == "leave_one_page_out":
        groups = sorted({o.page for o in full.pages})

        def held(o: Any, g: str) -> bool:
            return isinstance(o, PageObs) and o.page == g
    else:
        groups = sorted({_hardware(o) for o in [*full.points, *full.pages]})

        def held(o: Any, g: str) -> bool:
            return _hardware(o) == g
    folds = refit_each(groups, lambda g: _fold(data_dir, pages, g, held), f"cv {mode}")
    out: dict[str, Any] = {"mode": mode, "folds": []}
    lines = [f"cross-validation ({mode}): held-out |predicted/measured - 1|"]
    for f in folds:
        fold = {"held_out": f.held_out, "by_dataset": summarize(f.errors, f.datasets)}
        out["folds"].append(fold)
        for d, st in fold["by_dataset"].items():
            lines.append(f"  {f.held_out:40s} {d:12s} n={st['n']:4d} median {st['median_abs_pct']:5.1f} % "
                         f"max {st['max_abs_pct']:6.1f} % bias {st['bias_pct']:+6.1f} %")
    if mode == "leave_one_page_out":
        rows = held_out_targets(folds, pages)
        out["targets"], out["summary"] = rows, target_summary(rows)
        lines.append(format_targets(rows, out["summary"]))
    page_err = _page_errors(folds)
    out["page_sigma_log"] = float(np.std(page_err)) if page_err.size else None
    gain_err = _gain_errors_log(folds)
    out["gain_sigma_log"] = float(np.std(gain_err)) if gain_err.size else None
    all_err = [f["by_dataset"] for f in out["folds"]]
    out["median_of_fold_medians_pct"] = float(np.median([st["median_abs_pct"] for f in all_err for st in f.values()]))
    print("\n".join(lines))
    return out


def _signed(values: list[float]) -> str:
    """Signed percentages joined by "/" ("+4/+28/+43 %"), "-" for none."""
    return "/".join(f"{v:+.0f}" for v in values) + " %" if values else "-"


def page_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per held-out page: each side's signed error and the gain's at its targets (lowest interactivity
    first), how many targets the MTP-vs-Off direction gets right and how many measured values lie inside their
    P10-P90 bands (the per-page table issue 17 asks for)."""
    gains = gain_errors(rows)
    pages: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        pages.setdefault(r["page"], []).append(r)
    lines = []
    for page, rs in pages.items():
        rs = sorted(rs, key=lambda r: r["interactivity"])
        cells = [f"{side} {_signed([r['error_pct'] for r in rs if r['side'] == side])}" for side in SIDES]
        mtp = [r for r in rs if r["side"] == "mtp"]
        gain = [gains[key] for r in mtp if (key := (page, r["interactivity"])) in gains]
        dirs = [r["direction_right"] for r in mtp if r.get("direction_right") is not None]
        inside = [r["inside_band"] for r in rs if r["inside_band"] is not None]
        lines.append(f"  {page[:45]:45s} {', '.join(cells)}, gain {_signed(gain)}; "
                     f"direction {sum(dirs)}/{len(dirs)}, inside {sum(inside)}/{len(inside)}")
    return lines


def format_targets(rows: list[dict[str, Any]], summ: dict[str, Any]) -> str:
    gains = gain_errors(rows)
    lines = [f"{'held-out page':45s} {'side':4s} {'tok/s/user':>10} {'measured':>9} {'predicted':>9} {'err':>7} "
             f"{'P10-P90':>13} {'dir':>4} {'gain err':>8}"]
    for r in rows:
        band = f"{r['p10']:.0f}-{r['p90']:.0f}" if r["p10"] is not None else "-"
        d = {True: "ok", False: "x", None: "-"}[r.get("direction_right")]
        gain = _row_gain(gains, r)
        lines.append(f"{r['page'][:45]:45s} {r['side']:4s} {r['interactivity']:10.0f} {r['measured']:9.1f} "
                     f"{r['predicted']:9.1f} {r['error_pct']:+6.0f}% {band:>13} {d:>4} "
                     f"{'' if gain is None else f'{gain:+.0f}%':>8}")
    lines.append("held out, per page (signed, lowest interactivity first):")
    lines += page_lines(rows)
    lines.append("held out: " + ", ".join(
        f"{s}: median |err| {v['median_abs_pct']:.1f} %, median signed {v['median_signed_pct']:+.1f} %, "
        f"mean |log err| {v['mean_abs_log']:.3f} (n={v['n']})"
        for s, v in summ.items() if isinstance(v, dict))
        + f"; direction right {summ['direction_right']}; measured inside P10-P90 {summ['inside_p10_p90']}"
        + f"; measured gain inside its P10-P90 {summ['gain_inside_p10_p90']}")
    return "\n".join(lines)
