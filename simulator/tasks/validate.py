"""validate: predict each benchmark page with a calibration file (never fitting on it) and report errors.

The validation itself lives in simulator/validation.py (bands in simulator/calibration/uncertainty.py,
cross-validation in simulator/calibration/crossval.py); this module prints, plots and writes it.
"""

from __future__ import annotations

from pathlib import Path

from simulator.calibration.crossval import run_cv
from simulator.calibration.dataset import data_dir_of
from simulator.runconfig import RunConfig, write_report
from simulator.validation import PageValidation, format_validation, load_pages, report_of, validate_all


def plot_page(v: PageValidation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    colors = {"mtp": "tab:blue", "off": "tab:orange"}
    for side, s in v.compare.sides.items():
        if not s.front.empty:
            ax.plot(s.front["interactivity"], s.front["tput_per_gpu"], "-", color=colors[side],
                    label=f"{side.upper()} predicted frontier")
        xs = [pt["interactivity"] for pt in v.points]
        ax.plot(xs, [pt["measured"][side] for pt in v.points], "s", color=colors[side], mec="k",
                label=f"{side.upper()} measured (page)")
        bands_ = [(pt["interactivity"], pt["band"][side]) for pt in v.points if pt["band"][side]]
        for x, (lo, hi) in bands_:
            ax.plot([x, x], [lo, hi], "-", color=colors[side], lw=6, alpha=0.3)
    ax.set(xlabel="interactivity (tok/s/user)", ylabel="throughput per GPU (tok/s)",
           title=f"{v.page.model} · {v.page.hardware} {v.page.precision} · {v.page.workload}: predicted vs measured")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(cfg: RunConfig, out: Path) -> None:
    """The `validate` task: the table, one plot per page, (cv=...) cross-validation, (report=PATH) JSON."""
    data_dir = data_dir_of(cfg.calibrate.data_dir) if cfg.cv != "none" else None  # fail fast, before the work
    vals, summ = validate_all(cfg)
    print(format_validation(vals, summ))
    for v in vals:
        plot_page(v, out / f"validate_{Path(v.page.source).stem}.png")
    print(f"wrote {len(vals)} plots to {out}")
    report = report_of(vals, summ)
    if data_dir is not None:
        report["cv"] = run_cv(data_dir, cfg.cv, load_pages(cfg))
    write_report(cfg, report)
