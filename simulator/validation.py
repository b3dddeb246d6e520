"""Validation: predict each benchmark page with a calibration file (never fitting on it) and report errors.

Central values come from the same path as `compare` (benchmark deployments, Pareto front, Steffen spline at
the page's own targets, no extrapolation). The P10-P90 band samples the calibration's parameter covariance
(efficiency knobs and acceptance scale together) and the scatter of its page residuals (model error). Cross-validation refits without the held-out part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from simulator.comparison import (
    FALLBACK,
    CompareResult,
    add_bands,
    breakdown_at_targets,
    gain_band_text,
    run_compare,
)
from simulator.pages import (
    SIDES_REPEAT_RTOL,
    Page,
    error_pct,
    load_page_file,
    measured_direction,
    modelled_pages,
    mtp_repeats_off,
)
from simulator.runconfig import RunConfig
from simulator.specs.vocabulary import SIDES, CaseKey


@dataclass
class PageValidation:
    page: Page
    compare: CompareResult
    points: list[dict[str, Any]] = field(default_factory=list)
    breakdown: pd.DataFrame | None = None  # predicted step time by term at each target (comparison)


def page_config(page: Page, cfg: RunConfig) -> RunConfig:
    """The run config of `cfg` moved to the page's model, GPU, precision and workload."""
    return cfg.with_case(model=page.model, hardware=page.hardware, workload=page.workload,
                         precision=page.precision)


def pct(pred: float | None, meas: float) -> float | None:
    return None if pred is None else error_pct(pred, meas)


def validate_page(page: Page, cfg: RunConfig) -> PageValidation:
    pcfg = page_config(page, cfg)
    key = CaseKey(page.model, page.hardware, page.precision, page.workload)
    # the pages clamp a target outside a frontier to its edge (frontier.read_at): so do we, flagged
    sc = pcfg.scenario()
    result = run_compare(sc, key, "benchmark", pcfg.rates, pcfg.rate_tier,
                         [p.interactivity for p in page.points], outside="clamp", max_gpus=cfg.max_gpus,
                         max_ttft_s=cfg.max_ttft_s)
    # the bands price the same cases as the central value (the run's scenario: its serving keys, its files)
    add_bands(result, sc, cfg.calibration, cfg.acceptance_multiplier)
    v = PageValidation(page, result, breakdown=breakdown_at_targets(sc, result))
    for p, row in zip(page.points, result.rows, strict=True):
        point: dict[str, Any] = {"interactivity": p.interactivity, "measured": {}, "predicted": {}, "band": {},
                                 "error_pct": {}, "clamped": {}, "inside_band": {}}
        for side in SIDES:
            meas = getattr(p, side).tput_per_gpu
            pred = row[side]["tput_per_gpu"] if row[side] else None
            point["measured"][side] = meas
            point["predicted"][side] = pred
            b = (row[side]["tput_per_gpu_p10"], row[side]["tput_per_gpu_p90"]) if row[side] and \
                "tput_per_gpu_p10" in row[side] else None
            point["band"][side] = [b[0], b[1]] if b else None
            point["error_pct"][side] = pct(pred, meas)
            point["clamped"][side] = bool(row[side] and row[side]["clamped"])
            point["inside_band"][side] = None if not b else bool(b[0] <= meas <= b[1])
        m, o = point["predicted"]["mtp"], point["predicted"]["off"]
        point["measured"]["gain"] = p.mtp.tput_per_gpu / p.off.tput_per_gpu
        point["predicted"]["gain"] = m / o if m and o else None
        point["error_pct"]["gain"] = pct(point["predicted"]["gain"], point["measured"]["gain"])
        g = (row["gain_p10"], row["gain_p90"]) if "gain_p10" in row else None
        point["band"]["gain"] = [g[0], g[1]] if g else None
        point["inside_band"]["gain"] = None if not g else bool(g[0] <= point["measured"]["gain"] <= g[1])
        point["predicted"]["cost_per_mtok"] = {s: row[s]["cost_per_mtok"] if row[s] else None for s in SIDES}
        point["predicted"]["tok_s_per_mw"] = {s: row[s]["tok_s_per_mw"] if row[s] else None for s in SIDES}
        point["measured"]["cost_per_mtok"] = {s: getattr(p, s).cost_per_mtok for s in SIDES}
        point["measured"]["tok_s_per_mw"] = {s: getattr(p, s).tok_s_per_mw for s in SIDES}
        measured_up = measured_direction(p)  # None: equal as printed, counts neither way
        point["direction_right"] = None if point["predicted"]["gain"] is None or measured_up is None else (
            (point["predicted"]["gain"] > 1) == measured_up)
        v.points.append(point)
    return v


def summary(validations: list[PageValidation]) -> dict[str, Any]:
    """Error figures against the benchmark: pages an open fallback priced (no recipe left in the configs) are
    predictions for deployments nobody measured, so they stay out of them (listed under `fallback_pages`)."""
    fallback = [v.page.source for v in validations if v.compare.search == FALLBACK]
    validations = [v for v in validations if v.compare.search != FALLBACK]
    out: dict[str, Any] = {"fallback_pages": fallback}
    for key in ("mtp", "off", "gain"):
        errs = [pt["error_pct"][key] for v in validations for pt in v.points if pt["error_pct"][key] is not None]
        missing = sum(pt["error_pct"][key] is None for v in validations for pt in v.points)
        if errs:
            a = np.abs(errs)
            out[key] = {"n": len(errs), "median_abs_pct": float(np.median(a)), "max_abs_pct": float(a.max()),
                        "bias_pct": float(np.mean(errs)), "median_signed_pct": float(np.median(errs)),
                        "not_reached": int(missing)}
    tput = [abs(pt["error_pct"][s]) for v in validations for pt in v.points for s in SIDES
            if pt["error_pct"][s] is not None]
    out["throughput_median_abs_pct"] = float(np.median(tput)) if tput else None
    dirs = [pt["direction_right"] for v in validations for pt in v.points if pt["direction_right"] is not None]
    out["direction_right"] = f"{sum(dirs)}/{len(dirs)}"
    inside = [pt["inside_band"][s] for v in validations for pt in v.points for s in SIDES
              if pt["inside_band"][s] is not None]
    out["inside_p10_p90"] = f"{sum(inside)}/{len(inside)}"
    gain_inside = [pt["inside_band"]["gain"] for v in validations for pt in v.points
                   if pt["inside_band"].get("gain") is not None]
    out["gain_inside_p10_p90"] = f"{sum(gain_inside)}/{len(gain_inside)}"
    return out


def _f(x: float | None, fmt: str) -> str:
    return format(x, fmt) if x is not None else "-"


def _gain_band(b: list[float] | None) -> str:
    return gain_band_text(*b) if b else "-"


def format_validation(validations: list[PageValidation], summ: dict[str, Any]) -> str:
    head = (f"{'page':34s} {'tok/s/user':>10} | {'MTP meas':>8} {'pred':>7} {'P10-P90':>13} {'err':>6} | "
            f"{'Off meas':>8} {'pred':>7} {'P10-P90':>13} {'err':>6} | {'gain meas':>9} {'pred':>5} {'P10-P90':>9}")
    lines = ["validation against the benchmark pages (throughput per GPU, tok/s)", head, "-" * len(head)]
    for v in validations:
        for pt in v.points:
            cells = []
            for s in SIDES:
                b = pt["band"][s]
                band = f"{b[0]:.0f}-{b[1]:.0f}" if b else "-"
                mark = "c" if pt["clamped"][s] else " "  # c: the target lies outside the predicted front
                cells.append(f"{pt['measured'][s]:8.1f} {_f(pt['predicted'][s], '6.1f')}{mark} {band:>13} "
                             f"{_f(pt['error_pct'][s], '+5.0f') + '%' if pt['error_pct'][s] is not None else '-':>6}")
            lines.append(f"{v.page.source[:34]:34s} {pt['interactivity']:10.0f} | {cells[0]} | {cells[1]} | "
                         f"{pt['measured']['gain']:8.2f}x {_f(pt['predicted']['gain'], '4.2f') + 'x' if pt['predicted']['gain'] else '-':>5} "
                         f"{_gain_band(pt['band']['gain']):>9}")
    lines.append("summary: " + ", ".join(
        f"{k}: median {v['median_abs_pct']:.1f} % max {v['max_abs_pct']:.1f} % signed {v['median_signed_pct']:+.1f} %"
        for k, v in summ.items() if isinstance(v, dict)) + f"; MTP-vs-Off direction right {summ['direction_right']}"
        f"; measured inside P10-P90 {summ['inside_p10_p90']}, gain inside its P10-P90 {summ['gain_inside_p10_p90']}"
        "; c = clamped to the front's edge, as the pages do")
    repeats = [v.page.source for v in validations if mtp_repeats_off(v.page)]
    if repeats:
        lines.append(f"MTP side repeats the Off side within {SIDES_REPEAT_RTOL:.0%} at every target (its runs measured "
                     f"no speculation, pages.mtp_repeats_off; scored and fitted as printed): {', '.join(repeats)}")
    if summ.get("fallback_pages"):
        lines.append(f"not in the summary ({FALLBACK}: no benchmark recipe left, a prediction for deployments "
                     f"nobody measured): {', '.join(summ['fallback_pages'])}")
    return "\n".join(lines)


def load_pages(cfg: RunConfig) -> list[Page]:
    # the not-modelled deployments (marked in conf/page_figures) stay out by default
    return [load_page_file(p) for p in cfg.pages] if cfg.pages else modelled_pages()


def own_pages(cfg: RunConfig) -> list[Page]:
    """The pages (the run's `pages=`, else the bundled ones) that measured exactly this run's case."""
    return [p for p in load_pages(cfg) if CaseKey(p.model, p.hardware, p.precision, p.workload) == cfg.key]


def has_own_page(cfg: RunConfig) -> bool:
    """Whether a page (the run's `pages=`, else the bundled ones) measured exactly this run's case."""
    return bool(own_pages(cfg))


def validate_all(cfg: RunConfig, pages: list[Page] | None = None) -> tuple[list[PageValidation], dict[str, Any]]:
    """Every page of `pages` (default: the run's `pages=`, else the bundled ones) predicted and compared."""
    vals = [validate_page(p, cfg) for p in (load_pages(cfg) if pages is None else pages)]
    return vals, summary(vals)


def report_of(vals: list[PageValidation], summ: dict[str, Any]) -> dict[str, Any]:
    pages = [{"source": v.page.source, "model": v.page.model, "hardware": v.page.hardware,
              "precision": v.page.precision, "workload": v.page.workload,
              "points": [{"interactivity": pt["interactivity"],
                          "measured": {s: pt["measured"][s] for s in SIDES},
                          "predicted": {s: pt["predicted"][s] for s in SIDES},
                          "band_p10_p90": pt["band"], "error_pct": pt["error_pct"], "clamped": pt["clamped"],
                          "inside_band": pt["inside_band"], "direction_right": pt["direction_right"],
                          "gain": {"measured": pt["measured"]["gain"], "predicted": pt["predicted"]["gain"]},
                          "cost_per_mtok": {"measured": pt["measured"]["cost_per_mtok"],
                                            "predicted": pt["predicted"]["cost_per_mtok"]},
                          "tok_s_per_mw": {"measured": pt["measured"]["tok_s_per_mw"],
                                           "predicted": pt["predicted"]["tok_s_per_mw"]}}
                         for pt in v.points]} for v in vals]
    return {"pages": pages, "summary": summ}
