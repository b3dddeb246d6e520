"""plan.png: $/M tokens vs interactivity per GPU, from each side's Pareto front (MTP solid, Off dashed)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from simulator.comparison import front_of
from simulator.economics import cost_per_mtok

PRECISION_COLORS = {"fp4": "tab:blue", "fp8": "tab:orange", "bf16": "tab:green"}
SIDE_STYLES = {"mtp": "-", "off": "--"}


def panel_grid(n: int) -> tuple[int, int]:
    cols = min(3, max(1, n))
    return math.ceil(n / cols), cols


def plot_plan(points: pd.DataFrame, options: pd.DataFrame, table: pd.DataFrame, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gpus = list(dict.fromkeys(options["gpu"]))
    rows, cols = panel_grid(len(gpus))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), sharex=True, sharey=True, squeeze=False)
    floors = sorted(table["floor"].unique())
    cheapest = table[table["rank"] == 1]
    for ax, gpu in zip(axes.ravel()[:len(gpus)], gpus, strict=True):
        mine = options[options["gpu"] == gpu]
        drawn = False
        for opt in mine.itertuples(index=False):
            pts = points[(points["gpu"] == gpu) & (points["precision"] == opt.precision)
                         & (points["side"] == opt.side)]
            if opt.reason or pts.empty:
                continue
            front = front_of(pts.assign(feasible=True))
            cost = cost_per_mtok(front["tput_per_gpu"].to_numpy(), opt.usd_per_gpu_hour)
            ax.plot(front["interactivity"], cost, SIDE_STYLES[opt.side], marker=".", ms=3,
                    color=PRECISION_COLORS.get(opt.precision.split("=")[0], "tab:gray"),
                    label=f"{opt.precision} {'MTP' if opt.side == 'mtp' else 'Off'}")
            drawn = True
        for floor in floors:
            ax.axvline(floor, color="gray", lw=0.8, ls=":")
        for i, r in enumerate(cheapest[cheapest["gpu"] == gpu].itertuples(index=False)):
            ax.plot(r.interactivity, r.cost_per_mtok, "k*", ms=11, zorder=5,
                    label="cheapest at a floor" if i == 0 else None)
        if not drawn:
            reasons = sorted(set(mine["reason"]))
            ax.text(0.5, 0.5, "infeasible:\n" + "\n".join(s[:60] for s in reasons[:3]), ha="center",
                    va="center", fontsize=7, transform=ax.transAxes, wrap=True)
        else:
            ax.legend(fontsize=7)
        ax.set_title(gpu, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(gpus):]:
        ax.set_visible(False)
    if np.isfinite(table["cost_per_mtok"]).any():
        axes[0, 0].set_yscale("log")
    for ax in axes[:, 0]:
        ax.set_ylabel("$ / M tokens")
    for ax in axes[-1, :]:
        ax.set_xlabel("interactivity (tok/s/user)")
    fig.suptitle(f"{title}\n(frontiers; MTP solid, Off dashed; * = cheapest per floor; dotted = floors)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
