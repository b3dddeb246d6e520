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
from simulator.runconfig import NothingFeasible, RunConfig, write_report
from simulator.specs.vocabulary import SIDES
from simulator.validation import format_validation, own_pages, validate_all

COLORS = {"mtp": "tab:blue", "off": "tab:orange"}
K_MARKERS = "os^Dvp*hX"  # one marker per draft length on the MTP frontier


def _plot_front(ax, s) -> None:  # noqa: ANN001 (matplotlib axes, SideResult)
    ok = s.points[s.points["feasible"].astype(bool)]
    ax.scatter(ok["interactivity"], ok["tput_per_gpu"], s=8, alpha=0.25, color=COLORS[s.side],
               label=f"{s.side.upper()} predicted points")
    ax.plot(s.front["interactivity"], s.front["tput_per_gpu"], "-", color=COLORS[s.side],
            label=f"{s.side.upper()} frontier")
    if s.side != "mtp":
        ax.plot(s.front["interactivity"], s.front["tput_per_gpu"], "o", ms=3, color=COLORS[s.side])
        return
    for i, (k, g) in enumerate(s.front.groupby("draft_tokens")):
        ax.plot(g["interactivity"], g["tput_per_gpu"], K_MARKERS[i % len(K_MARKERS)], ms=5, mec="k", mew=0.4,
                color=COLORS[s.side], label=f"MTP frontier point, k={int(k)}")


def plot_compare(result: CompareResult, path: str) -> list[str]:
    """curves.png; returns the legend's labels (every mark drawn is named)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for s in result.sides.values():
        if not s.front.empty:
            _plot_front(ax, s)
    labelled: set[str] = set()
    for r in result.rows:
        for side in SIDES:
            d = r[side]
            if not d:
                continue
            star = "matched-target read" if "star" not in labelled else None
            ax.plot(r["interactivity"], d["tput_per_gpu"], "k*", ms=10, label=star)
            labelled.add("star")
            if "tput_per_gpu_p10" in d:  # the P10-P90 band over the calibration's uncertainty
                label = f"{side.upper()} P10-P90 band" if side not in labelled else None
                ax.plot([r["interactivity"]] * 2, [d["tput_per_gpu_p10"], d["tput_per_gpu_p90"]], "-",
                        color=COLORS[side], lw=6, alpha=0.3, label=label)
                labelled.add(side)
    k = result.key
    ax.set(xlabel="interactivity (tok/s/user)", ylabel="throughput per GPU (tok/s, input + output)",
           title=f"{k.model} · {k.hardware} {k.precision} · {k.workload} (predicted)")
    if not result.feasible:
        reasons = "\n".join(f"{s.side.upper()}: {s.reason}" for s in result.sides.values() if s.reason)
        ax.text(0.5, 0.5, f"nothing feasible\n{reasons}", ha="center", va="center", wrap=True, fontsize=8,
                transform=ax.transAxes)
    ax.grid(alpha=0.3)
    labels = ax.get_legend_handles_labels()[1]
    if labels:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return labels


def run(cfg: RunConfig, out: Path) -> None:
    """The `compare` task: print the table, write curves.csv, curves.png and (report=PATH) JSON.

    Raises NothingFeasible (after writing the outputs) when no deployment of either side can run."""
    sc = cfg.scenario()
    result = run_compare(sc, cfg.key, cfg.search, cfg.rates, cfg.rate_tier, cfg.interactivity,
                         outside="clamp" if cfg.read == "page" else "null", max_gpus=cfg.max_gpus,
                         max_ttft_s=cfg.max_ttft_s)
    add_bands(result, sc, cfg.calibration, cfg.acceptance_multiplier, progress=True)
    print(format_table(result))
    result.points_frame().to_csv(out / "curves.csv", index=False)
    write_summary(result, out)
    plot_compare(result, str(out / "curves.png"))
    print(f"wrote {out / 'curves.csv'} and {out / 'curves.png'}")
    write_report(cfg, result.report())
    own = own_pages(cfg) if cfg.validate_after == "auto" else []
    if cfg.validate_after is True or own:  # auto: this case's own page(s) only; true: every page
        print()
        print(format_validation(*validate_all(cfg, own or None)))
    if not result.feasible:
        raise NothingFeasible(f"nothing feasible for {cfg.key.model} on {cfg.key.hardware} {cfg.key.precision}")
    key = result.key._asdict()  # the interactive report (report.html)
    html = compare_report(out, key, result.points_frame(), result.rows, cfg.rates.rate(cfg.hardware.name, cfg.rate_tier),
                          cfg.rates.all_in_kw(cfg.hardware.name), measured=page_points(bundled_pages(), key),
                          breakdown=breakdown_at_targets(sc, result))
    print(f"report: {html}")
