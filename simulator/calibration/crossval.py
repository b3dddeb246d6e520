"""Cross-validation of the calibration: refit without a page (or a GPU) and predict what was held out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simulator.calibration.data import PageObs
from simulator.calibration.dataset import build_problem
from simulator.calibration.fit import fit, summarize
from simulator.calibration.problem import Problem
from simulator.calibration.store import map_z
from simulator.catalog import SpecError
from simulator.pages import Page

MODES = ("leave_one_page_out", "leave_one_hardware_out")


def _hardware(obs: Any) -> str:
    case = obs.case if hasattr(obs, "case") else obs.candidates[0][0]
    return case.scenario.hardware.name


def _held_out_errors(train: Problem, test: Problem) -> tuple[np.ndarray, list[str], list[str]]:
    result = fit(train)
    z = map_z(test.space, result.names, result.z)
    _, datasets, labels = test.observations()
    return test.log_errors(z), datasets, labels


def run_cv(data_dir: Path, mode: str, pages: list[Page] | None = None) -> dict[str, Any]:
    """Refit per held-out group (`mode`: leave_one_page_out | leave_one_hardware_out) over `pages` (None: the
    bundled ones); print and return it."""
    if mode not in MODES:
        raise SpecError(f"cv must be one of none, {', '.join(MODES)}; got {mode!r}")
    full = build_problem(data_dir, pages)
    out: dict[str, Any] = {"mode": mode, "folds": []}
    if mode == "leave_one_page_out":
        groups = sorted({o.page for o in full.pages})
        def held(o: Any, g: str) -> bool:
            return isinstance(o, PageObs) and o.page == g
    else:
        groups = sorted({_hardware(o) for o in [*full.points, *full.pages]})
        def held(o: Any, g: str) -> bool:
            return _hardware(o) == g
    lines = [f"cross-validation ({mode}): held-out |predicted/measured - 1|"]
    for g in groups:
        train = build_problem(data_dir, pages, keep=lambda o, g=g: not held(o, g))
        test = build_problem(data_dir, pages, keep=lambda o, g=g: held(o, g))
        errors, datasets, labels = _held_out_errors(train, test)
        fold: dict[str, Any] = {"held_out": g, "by_dataset": summarize(errors, datasets)}
        if mode == "leave_one_page_out":
            pred = np.exp(errors)
            meas, _, _ = test.observations()
            by_target: dict[float, dict[str, float]] = {}
            for o, m, e in zip(test.pages, meas, pred, strict=True):
                by_target.setdefault(o.interactivity, {})[o.side] = m * e
                by_target[o.interactivity][o.side + "_measured"] = m
            fold["direction_right"] = int(sum(
                (v["mtp"] > v["off"]) == (v["mtp_measured"] > v["off_measured"]) for v in by_target.values()))
            fold["targets"] = len(by_target)
        out["folds"].append(fold)
        for d, s in fold["by_dataset"].items():
            extra = (f", direction right {fold['direction_right']}/{fold['targets']}"
                     if "direction_right" in fold else "")
            lines.append(f"  {g:40s} {d:12s} n={s['n']:4d} median {s['median_abs_pct']:5.1f} % "
                         f"max {s['max_abs_pct']:6.1f} % bias {s['bias_pct']:+6.1f} %{extra}")
    all_err = [f["by_dataset"] for f in out["folds"]]
    out["median_of_fold_medians_pct"] = float(np.median([s["median_abs_pct"] for f in all_err for s in f.values()]))
    print("\n".join(lines))
    return out
