"""validate: predict each benchmark page with a calibration file (never fitting on it) and report errors.

The validation itself lives in simulator/validation.py (bands in simulator/calibration/uncertainty.py,
cross-validation in simulator/calibration/crossval.py); this module prints, plots and writes it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from simulator.calibration.crossval import run_cv, write_targets_csv
from simulator.calibration.dataset import data_dir_of
from simulator.report_html import page_points, validate_report
from simulator.runconfig import RunConfig, write_report
from simulator.specs.vocabulary import SIDES
from simulator.validation import (
    PageValidation,
    format_validation,
    load_pages,
    report_of,
    summary,
    validate_page,
)

TERM_COLORS = {"weights": "#4c72b0", "kv_cache": "#55a868", "activations": "#8fbc8f", "compute": "#c44e52",
               "collectives": "#8172b2", "latency_floors": "#937860", "draft_passes": "#da8bc3",
               "sampling": "#ccb974", "speculative_overheads": "#64b5cd", "prefill_stall": "#999999"}


def plot_page(v: PageValidation, path: Path) -> None:
    """Left: predicted frontiers vs the page's measured points (P10-P90 bands, clamped targets hollow).
    Right: the predicted step time by term at each target, MTP and Off side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1.2, 1]})
    colors = {"mtp": "tab:blue", "off": "tab:orange"}
    for side, s in v.compare.sides.items():
        if not s.front.empty:
            ax.plot(s.front["interactivity"], s.front["tput_per_gpu"], "-", color=colors[side],
                    label=f"{side.upper()} predicted frontier")
        xs = [pt["interactivity"] for pt in v.points]
        ax.plot(xs, [pt["measured"][side] for pt in v.points], "s", color=colors[side], mec="k",
                label=f"{side.upper()} measured (page)")
        pred = [(pt["interactivity"], pt["predicted"][side], pt["clamped"][side]) for pt in v.points
                if pt["predicted"][side] is not None]
        for clamped in (False, True):
            sel = [(x, y) for x, y, c in pred if c == clamped]
            if sel:
                ax.plot(*zip(*sel, strict=True), "o", color=colors[side], mfc="none" if clamped else colors[side],
                        label=f"{side.upper()} predicted at target" + (" (clamped to the front's edge)" if clamped else ""))
        for i, (x, b) in enumerate((pt["interactivity"], pt["band"][side]) for pt in v.points if pt["band"][side]):
            ax.plot([x, x], b, "-", color=colors[side], lw=6, alpha=0.3,
                    label=f"{side.upper()} P10-P90 band" if i == 0 else None)
    ax.set(xlabel="interactivity (tok/s/user)", ylabel="throughput per GPU (tok/s)",
           title=f"{v.page.model} · {v.page.hardware} {v.page.precision} · {v.page.workload}: predicted vs measured")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    plot_breakdown(bx, v.breakdown)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_breakdown(ax: Any, breakdown: pd.DataFrame | None) -> None:
    """Stacked bars of the predicted effective step (ms) by term at each target: MTP left, Off right."""
    if breakdown is None or breakdown.empty:
        ax.set_axis_off()
        return
    targets = sorted(breakdown["interactivity"].unique())
    width = 0.38
    for j, side in enumerate(SIDES):
        bottom = np.zeros(len(targets))
        part = breakdown[breakdown["side"] == side].pivot_table(index="interactivity", columns="term", values="ms")
        part = part.reindex(targets)
        for term, color in TERM_COLORS.items():
            if term not in part:
                continue
            vals = part[term].fillna(0.0).to_numpy()
            ax.bar(np.arange(len(targets)) + (j - 0.5) * width, vals, width, bottom=bottom, color=color,
                   edgecolor="k" if side == "mtp" else "white", lw=0.4, label=term if j == 0 else None)
            bottom += vals
    ax.set_xticks(np.arange(len(targets)), [f"{t:g}\nMTP | Off" for t in targets])
    ax.set(xlabel="target interactivity (tok/s/user)", ylabel="predicted effective step (ms)",
           title="where a step's time goes (front point nearest each target)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, axis="y")


PROGRESS_AFTER_S = 5.0  # a run expected to take longer than this says so and shows its progress


def validate_with_progress(pages: list, cfg: RunConfig) -> list:
    """validate_page over the pages; after the first, the expected time when it is long, and progress."""
    if not pages:
        return []
    t0 = time.perf_counter()
    vals = [validate_page(pages[0], cfg)]
    expected = (time.perf_counter() - t0) * (len(pages) - 1)
    show = expected > PROGRESS_AFTER_S
    if show:
        print(f"validate: {len(pages)} pages, about {expected:.0f} s more", flush=True)
    vals += [validate_page(p, cfg) for p in tqdm(pages[1:], desc="validate", unit="page", disable=not show or None)]
    return vals


def run(cfg: RunConfig, out: Path) -> None:
    """The `validate` task: the table, one plot per page, (cv=...) cross-validation, (report=PATH) JSON."""
    data_dir = data_dir_of(cfg.calibrate.data_dir) if cfg.cv != "none" else None  # fail fast, before the work
    pages = load_pages(cfg)
    vals = validate_with_progress(pages, cfg)
    summ = summary(vals)
    print(format_validation(vals, summ))
    for v in vals:
        plot_page(v, out / f"validate_{Path(v.page.source).stem}.png")
    print(f"wrote {len(vals)} plots to {out}")
    report = report_of(vals, summ)
    if data_dir is not None:
        report["cv"] = run_cv(data_dir, cfg.cv, pages)
        if report["cv"].get("targets"):
            print(f"wrote {write_targets_csv(report['cv']['targets'], out / 'cross_validation.csv')} (held-out targets)")
    write_report(cfg, report)
    sections = [{"source": v.page.source, "keys": v.compare.key._asdict(), "points": v.compare.points_frame(),
                 "rows": v.compare.rows, "checks": v.points, "measured": page_points([v.page]),
                 "breakdown": v.breakdown, "usd_per_gpu_hour": cfg.rates.rate(v.page.hardware, cfg.rate_tier),
                 "all_in_kw": cfg.rates.all_in_kw(v.page.hardware)} for v in vals]
    print(f"report: {validate_report(out, sections, summ)}")
