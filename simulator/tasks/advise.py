"""Draft-length advice: per GPU, precision and interactivity floor, the k that maximises throughput, and
the interactivity ranges where MTP stops paying (the Off frontier above every MTP k's frontier).

A frontier here is the staircase f(x) = max throughput over feasible points with interactivity >= x, the
same reading `plan` uses (a real configuration that meets the floor). k = 0 is MTP off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.calibration.uncertainty import gain_error_band
from simulator.comparison import gain_band_text
from simulator.planning import collect_options, floors_of
from simulator.runconfig import RunConfig
from simulator.tasks.plan_plot import panel_grid

MAX_K = 4
K_COLORS = {0: "black", 1: "tab:purple", 2: "tab:blue", 3: "tab:green", 4: "tab:brown"}
PRECISION_STYLES = {"fp4": "-", "fp8": "--", "bf16": ":"}


def staircase(interactivity: np.ndarray, tput: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """For each x in `xs`, the max `tput` over points with interactivity >= x (NaN where none)."""
    out = np.full(len(xs), np.nan)
    ok = np.isfinite(interactivity) & np.isfinite(tput)
    if not ok.any():
        return out
    order = np.argsort(interactivity[ok])
    xi, yi = interactivity[ok][order], tput[ok][order]
    suffix = np.maximum.accumulate(yi[::-1])[::-1]
    pos = np.searchsorted(xi, np.asarray(xs, dtype=float), side="left")
    valid = pos < len(xi)
    out[valid] = suffix[pos[valid]]
    return out


def with_k(points: pd.DataFrame) -> pd.DataFrame:
    """Points with `k`: 0 on the Off side, the draft length on the MTP side."""
    return points.assign(k=np.where(points["side"] == "off", 0, points["draft_tokens"]).astype(int))


def by_k(points: pd.DataFrame, xs: np.ndarray) -> dict[int, np.ndarray]:
    """The staircase of every k present in `points` (which carries a `k` column), at `xs`."""
    return {int(k): staircase(g["interactivity"].to_numpy(float), g["tput_per_gpu"].to_numpy(float), xs)
            for k, g in points.groupby("k")}


def hurt_mask(curves: dict[int, np.ndarray]) -> np.ndarray:
    """True where Off is reachable and above every MTP k (or no MTP k reaches); needs k = 0 and some k > 0."""
    off = curves.get(0)
    mtp = [v for k, v in curves.items() if k > 0]
    if off is None or not mtp:
        return np.zeros(0 if off is None else len(off), dtype=bool)
    best = np.fmax.reduce(mtp)
    return np.isfinite(off) & ~(best >= off)


# what the frontiers resolve: neighbouring points (one concurrency step apart, or two k at nearly the same
# interactivity) differ by a few % in interactivity, so a range, or a gap between two ranges, narrower than
# this share of its interactivity is no finding (a 52.7-52.8 sliver)
RESOLUTION = 0.02


def coarsen(ranges: list[tuple[float, float]], resolution: float = RESOLUTION) -> list[tuple[float, float]]:
    """`ranges` with gaps narrower than `resolution` x interactivity closed, then slivers that narrow dropped."""
    merged: list[tuple[float, float]] = []
    for lo, hi in ranges:
        if merged and lo - merged[-1][1] < resolution * lo:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return [(lo, hi) for lo, hi in merged if hi - lo >= resolution * hi]


def hurt_ranges(points: pd.DataFrame) -> list[tuple[float, float]]:
    """Interactivity intervals (lo, hi] where MTP hurts, for one GPU x precision (lo = 0: from the start),
    coarsened to what the frontiers resolve (`coarsen`)."""
    pts = with_k(points)
    xs = np.unique(pts["interactivity"].to_numpy(float))
    hurt = hurt_mask(by_k(pts, xs))
    ranges: list[tuple[float, float]] = []
    for i in np.flatnonzero(hurt):
        lo = float(xs[i - 1]) if i > 0 else 0.0
        if ranges and ranges[-1][1] == lo:
            ranges[-1] = (ranges[-1][0], float(xs[i]))
        else:
            ranges.append((lo, float(xs[i])))
    return coarsen(ranges)


def format_ranges(ranges: list[tuple[float, float]]) -> str:
    if not ranges:
        return "none"
    return "; ".join(f"<= {hi:.1f}" if lo == 0 else f"{lo:.1f}-{hi:.1f}" for lo, hi in ranges)


def advice_table(points: pd.DataFrame, floors: list[float], gain_sigma: float = 0.0) -> pd.DataFrame:
    """One row per GPU x precision x floor: throughput by k, the best k, MTP's gain (with its P10-P90 band
    from the calibration's gain model error `gain_sigma`, as plan.rank_options gives it) and where MTP hurts."""
    rows: list[dict[str, Any]] = []
    if points.empty:
        return pd.DataFrame(rows)
    pts = with_k(points)
    xs = np.asarray(floors, dtype=float)
    for (gpu, precision), g in pts.groupby(["gpu", "precision"], sort=False):
        curves = by_k(g, xs)
        has_mtp = any(k > 0 for k in curves)
        hurts = format_ranges(hurt_ranges(g)) if has_mtp and 0 in curves else "n/a"
        for i, floor in enumerate(xs):
            row: dict[str, Any] = {"gpu": gpu, "precision": precision, "floor": float(floor)}
            values = {k: float(curves[k][i]) if k in curves else np.nan for k in range(MAX_K + 1)}
            row.update({f"tput_k{k}": v for k, v in values.items()})
            reached = {k: v for k, v in values.items() if np.isfinite(v)}
            best_k = max(reached, key=lambda k: (reached[k], -k)) if reached else None
            mtp_best = max((v for k, v in reached.items() if k > 0), default=np.nan)
            row["best_k"] = best_k
            row["mtp_gain"] = mtp_best / values[0] if np.isfinite(values[0]) else np.nan
            row["mtp_gain_p10"], row["mtp_gain_p90"] = gain_error_band(row["mtp_gain"], float(floor), gain_sigma)
            row["verdict"] = ("unreachable" if best_k is None else "Off only (no MTP)" if not has_mtp
                              else "MTP hurts: run Off" if best_k == 0 else f"MTP k={best_k}")
            row["mtp_hurts_at"] = hurts
            rows.append(row)
    return pd.DataFrame(rows)


def format_advice(table: pd.DataFrame, subject: str = "") -> str:
    """The advice table; `subject` names what it advises on ("glm5, workload 1k1k")."""
    about = f" for {subject}" if subject else ""
    if table.empty:
        return f"draft-length advice{about}: no feasible points"
    head = (f"{'GPU':<10} {'prec':<4} {'floor':>6} {'best k':>6} {'MTP/Off':>8} {'P10-P90':>9}  {'verdict':<20} "
            "MTP hurts at (tok/s/user)")
    lines = [f"draft-length advice{about} (k that maximises tok/s/GPU at each floor):", head, "-" * len(head)]
    for r in table.itertuples(index=False):
        k = "-" if r.best_k is None or pd.isna(r.best_k) else str(int(r.best_k))
        gain = f"{r.mtp_gain:.2f}x" if np.isfinite(r.mtp_gain) else "-"
        band = gain_band_text(r.mtp_gain_p10, r.mtp_gain_p90)
        lines.append(f"{r.gpu:<10} {r.precision:<4} {r.floor:>6g} {k:>6} {gain:>8} {band:>9}  {r.verdict:<20} "
                     f"{r.mtp_hurts_at}")
    return "\n".join(lines)


def plot_advice(points: pd.DataFrame, floors: list[float], path: str) -> None:
    """Per GPU: best-MTP / Off throughput ratio vs interactivity, dots coloured by the best k, red = MTP hurts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    pts = with_k(points) if not points.empty else points
    gpus = list(dict.fromkeys(pts["gpu"])) if not pts.empty else []
    rows, cols = panel_grid(max(1, len(gpus)))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.2 * rows), sharex=True, squeeze=False)
    for ax, gpu in zip(axes.ravel()[:len(gpus)], gpus, strict=True):
        for precision, g in pts[pts["gpu"] == gpu].groupby("precision"):
            xs = np.unique(g["interactivity"].to_numpy(float))
            curves = by_k(g, xs)
            mtp = [v for k, v in curves.items() if k > 0]
            if 0 not in curves or not mtp:
                continue
            ratio = np.fmax.reduce(mtp) / curves[0]
            ax.step(xs, ratio, PRECISION_STYLES.get(str(precision), "-."), where="pre", color="0.45",
                    lw=1, label=str(precision))
            stack = np.vstack([np.nan_to_num(curves.get(k, np.full(len(xs), np.nan)), nan=-1.0)
                               for k in range(MAX_K + 1)])
            best = stack.argmax(axis=0)
            ax.scatter(xs, ratio, c=[K_COLORS[int(k)] for k in best], s=9, zorder=3)
            for lo, hi in hurt_ranges(g):
                ax.axvspan(lo, hi, color="red", alpha=0.08)
        ax.axhline(1.0, color="k", lw=0.8)
        for floor in floors:
            ax.axvline(floor, color="gray", lw=0.8, ls=":")
        ax.set_title(str(gpu), fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    for ax in axes.ravel()[len(gpus):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("best MTP / Off tok/s/GPU")
    for ax in axes[-1, :]:
        ax.set_xlabel("interactivity (tok/s/user)")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", color=c, label=f"best k = {k}" if k else "best: Off (k = 0)")
               for k, c in K_COLORS.items()]
    handles.append(Line2D([], [], color="red", alpha=0.3, lw=6, label="MTP hurts"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle("Draft-length advice (dots coloured by the best k; red band: MTP hurts)", fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draft_note(cfg: RunConfig) -> str:
    """A line for a model that cannot speculate at all ("" when it has a draft module)."""
    if cfg.acceptance is None:
        return f"{cfg.model.name} has no draft module: MTP is not possible, the advice is Off only"
    return ""


def subject_of(cfg: RunConfig) -> str:
    """What plan and advise advise on: 'glm5, workload 1k1k'."""
    return f"{cfg.model.name}, workload {cfg.workload.name}"


def write_advice(points: pd.DataFrame, floors: list[float], out: Path, note: str = "", subject: str = "",
                 gain_sigma: float = 0.0) -> pd.DataFrame:
    table = advice_table(points, floors, gain_sigma)
    print()
    if note:
        print(f"note: {note}")
    print(format_advice(table, subject))
    table.to_csv(out / "advice.csv", index=False)
    plot_advice(points, floors, str(out / "advice.png"))
    print(f"wrote {out / 'advice.csv'} and {out / 'advice.png'}")
    return table


def gain_sigma_of(cfg: RunConfig) -> float:
    """The gain model error plan and advise band MTP's gain with: the calibration's, 0 (no band) without one."""
    return cfg.calibration.gain_error_sigma() if cfg.calibration.fitted else 0.0


def run(cfg: RunConfig, out: Path) -> None:
    """The `advise` task: draft-length advice alone (same GPUs, precisions and floors as `plan`)."""
    floors = floors_of(cfg)
    points, _ = collect_options(cfg)
    write_advice(points, floors, out, draft_note(cfg), subject_of(cfg), gain_sigma_of(cfg))
