"""compare: the MTP vs Off table at matched interactivity for one model x GPU x precision x workload.

Mirrors how the benchmark pages are made (reference/methodology.md); the comparison itself lives in
simulator/comparison.py, this module prints, plots and writes it.
"""

from __future__ import annotations

from pathlib import Path

from simulator.comparison import (
    CompareResult,
    add_bands,
    breakdown_at_targets,
    format_table,
    run_compare,
    write_summary,
)
from simulator.pages import bundled_pages
from simulator.report_html import compare_report, page_points
from simulator.runconfig import RunConfig, write_report
from simulator.specs.vocabulary import SIDES
from simulator.validation import format_validation, validate_all


def plot_compare(result: CompareResult, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    colors = {"mtp": "tab:blue", "off": "tab:orange"}
    for s in result.sides.values():
        ok = s.points[s.points["feasible"]] if not s.points.empty else s.points
        if ok.empty:
            continue
        ax.scatter(ok["interactivity"], ok["tput_per_gpu"], s=8, alpha=0.25, color=colors[s.side])
        ax.plot(s.front["interactivity"], s.front["tput_per_gpu"], "-o", ms=3, color=colors[s.side],
                label=f"{s.side.upper()} frontier")
    for r in result.rows:
        for side in SIDES:
            d = r[side]
            if d:
                ax.plot(r["interactivity"], d["tput_per_gpu"], "k*", ms=10)
                if "tput_per_gpu_p10" in d:  # the P10-P90 band over the calibration's uncertainty
                    ax.plot([r["interactivity"]] * 2, [d["tput_per_gpu_p10"], d["tput_per_gpu_p90"]], "-",
                            color=colors[side], lw=6, alpha=0.3)
    k = result.key
    ax.set(xlabel="interactivity (tok/s/user)", ylabel="throughput per GPU (tok/s, input + output)",
           title=f"{k.model} · {k.hardware} {k.precision} · {k.workload} (predicted)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(cfg: RunConfig, out: Path) -> None:
    """The `compare` task: print the table, write curves.csv, curves.png and (report=PATH) JSON."""
    sc = cfg.scenario()
    result = run_compare(sc, cfg.key, cfg.search, cfg.rates, cfg.rate_tier, cfg.interactivity,
                         max_gpus=cfg.max_gpus)
    add_bands(result, sc, cfg.calibration)
    print(format_table(result))
    result.points_frame().to_csv(out / "curves.csv", index=False)
    write_summary(result, out)
    plot_compare(result, str(out / "curves.png"))
    print(f"wrote {out / 'curves.csv'} and {out / 'curves.png'}")
    write_report(cfg, result.report())
    if cfg.validate_after:
        print()
        print(format_validation(*validate_all(cfg)))
    key = result.key._asdict()
    html = compare_report(out, key, result.points_frame(), result.rows, cfg.rates.rate(cfg.hardware.name, cfg.rate_tier),
                          cfg.rates.all_in_kw(cfg.hardware.name), measured=page_points(bundled_pages(), key),
                          breakdown=breakdown_at_targets(sc, result))
    print(f"report: {html}")
