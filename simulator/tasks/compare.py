"""compare: predict the Off and MTP curves, take each side's frontier, read both at matched interactivity.

Mirrors how the benchmark pages are made (reference/methodology.md): Pareto front per side, Steffen spline
through it, targets at 25/50/75 % of the range both sides cover unless given; cost = rate / throughput.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.economics import RateTable, cost_per_mtok, tok_s_per_mw
from simulator.evaluate import evaluate, front_of
from simulator.frontier import default_targets, steffen_interpolate
from simulator.pages import bundled_pages
from simulator.report_html import compare_report, page_points
from simulator.scenario import Scenario
from simulator.search import SearchMode, Side, candidates

SIDES: tuple[Side, ...] = ("mtp", "off")


@dataclass
class SideResult:
    side: Side
    points: pd.DataFrame
    front: pd.DataFrame
    note: str = ""
    candidates: list = field(default_factory=list)

    @property
    def interactivity_range(self) -> tuple[float, float] | None:
        if self.front.empty:
            return None
        x = self.front["interactivity"]
        return float(x.min()), float(x.max())


@dataclass
class CompareResult:
    keys: dict[str, str]
    sides: dict[str, SideResult]
    targets: list[float]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        return {**self.keys, "points": self.rows}

    def points_frame(self) -> pd.DataFrame:
        frames = [s.points for s in self.sides.values() if not s.points.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_front(front: pd.DataFrame, target: float, rate_usd_h: float, kw: float) -> dict[str, Any] | None:
    """The side's figures at `target` interactivity: spline through the front; None outside it."""
    if front.empty:
        return None
    x = front["interactivity"].to_numpy()
    if len(x) == 1:
        if not np.isclose(x[0], target):
            return None
        tput, conc = float(front["tput_per_gpu"].iloc[0]), float(front["concurrency"].iloc[0])
    else:
        tput = float(steffen_interpolate(x, front["tput_per_gpu"].to_numpy(), target))
        conc = float(steffen_interpolate(x, front["concurrency"].to_numpy(dtype=float), target))
    if not np.isfinite(tput):
        return None
    nearest = front.iloc[int(np.argmin(np.abs(x - target)))]
    return {
        "tput_per_gpu": tput,
        "cost_per_mtok": float(cost_per_mtok(tput, rate_usd_h)),
        "tok_s_per_mw": float(tok_s_per_mw(tput, kw)),
        "concurrency": int(np.floor(conc + 0.5)),
        "draft_tokens": int(nearest["draft_tokens"]),
        "deployment": str(nearest["deployment"]),
    }


def run_compare(sc: Scenario, keys: dict[str, str], search: SearchMode, rates: RateTable,
                tier: str = "hyperscaler", targets: list[float] | None = None,
                acceptance_scale: float | None = None) -> CompareResult:
    sides: dict[str, SideResult] = {}
    for side in SIDES:
        cands, note = candidates(sc, side, search, keys["model"], keys["hardware"], keys["workload"])
        frame = evaluate(sc, cands, acceptance_scale).frame()
        sides[side] = SideResult(side, frame, front_of(frame) if not frame.empty else frame, note, cands)
    if targets is None:
        fronts = [s.front["interactivity"].to_numpy() for s in sides.values() if not s.front.empty]
        targets = default_targets(*fronts) if len(fronts) == 2 else []
    rate, kw = rates.rate(keys["hardware"], tier), rates.all_in_kw(keys["hardware"])
    result = CompareResult(keys, sides, list(targets))
    for t in targets:
        row: dict[str, Any] = {"interactivity": float(t)}
        for side in SIDES:
            row[side] = read_front(sides[side].front, float(t), rate, kw)
        result.rows.append(row)
    return result


def add_bands(result: CompareResult, sc: Scenario, calibration: dict[str, Any]) -> None:
    """P10/P90 of each side's throughput at each target over the calibration's uncertainty (in place)."""
    from simulator.calibration.data import target_observations
    from simulator.tasks.validate import bands

    cands = {s: r.candidates for s, r in result.sides.items() if r.candidates}
    band = bands(target_observations(sc, cands, result.targets), calibration)
    for row in result.rows:
        for side in SIDES:
            b = band.get((side, row["interactivity"]))
            if row[side] and b:
                row[side]["tput_per_gpu_p10"], row[side]["tput_per_gpu_p90"] = float(b[0]), float(b[2])


def format_table(result: CompareResult) -> str:
    k = result.keys
    lines = [f"{k['model']} on {k['hardware']} {k['precision']} {k['workload']}: MTP vs Off at matched interactivity"]
    for s in result.sides.values():
        if s.note:
            lines.append(f"  note ({s.side}): {s.note}")
    if not result.rows:
        lines.append("  no interactivity range covered by both sides")
        return "\n".join(lines)
    head = f"{'tok/s/user':>10} | {'tok/s/GPU MTP':>13} {'P10-P90':>11} {'Off':>8} {'P10-P90':>11} {'ratio':>6} |" \
           f" {'$/M MTP':>8} {'Off':>7} | {'tok/s/MW MTP':>12} {'Off':>9} | {'conc MTP':>8} {'Off':>5} | {'k':>2}"
    lines += [head, "-" * len(head)]
    for r in result.rows:
        m, o = r["mtp"], r["off"]
        def f(d: dict[str, Any] | None, key: str, fmt: str) -> str:
            return format(d[key], fmt) if d else "-"
        ratio = f"{m['tput_per_gpu'] / o['tput_per_gpu']:.2f}x" if m and o else "-"
        def band(d: dict[str, Any] | None) -> str:
            return f"{d['tput_per_gpu_p10']:.0f}-{d['tput_per_gpu_p90']:.0f}" if d and "tput_per_gpu_p10" in d else "-"
        lines.append(
            f"{r['interactivity']:>10.0f} | {f(m, 'tput_per_gpu', '13.1f')} {band(m):>11} {f(o, 'tput_per_gpu', '8.1f')} "
            f"{band(o):>11} {ratio:>6} | {f(m, 'cost_per_mtok', '8.3f')} {f(o, 'cost_per_mtok', '7.3f')} | "
            f"{f(m, 'tok_s_per_mw', '12.0f')} {f(o, 'tok_s_per_mw', '9.0f')} | "
            f"{f(m, 'concurrency', '8d')} {f(o, 'concurrency', '5d')} | {f(m, 'draft_tokens', '2d')}")
    return "\n".join(lines)


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
    k = result.keys
    ax.set(xlabel="interactivity (tok/s/user)", ylabel="throughput per GPU (tok/s, input + output)",
           title=f"{k['model']} · {k['hardware']} {k['precision']} · {k['workload']} (predicted)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(cfg: dict[str, Any], out: Path) -> None:
    """The `compare` task: print the table, write curves.csv, curves.png and (report=PATH) JSON."""
    from simulator.catalog import load_calibration
    from simulator.tasks.setup import (
        build_rates,
        build_scenario,
        keys_of,
        search_of,
        targets_of,
        write_report,
    )
    from simulator.tasks.summarize import write_summary

    sc = build_scenario(cfg)
    rates, tier = build_rates(cfg)
    result = run_compare(sc, keys_of(cfg), search_of(cfg), rates, tier, targets_of(cfg))
    add_bands(result, sc, load_calibration(cfg.get("calibration")))
    print(format_table(result))
    result.points_frame().to_csv(out / "curves.csv", index=False)
    write_summary(result, out)
    plot_compare(result, str(out / "curves.png"))
    print(f"wrote {out / 'curves.csv'} and {out / 'curves.png'}")
    write_report(cfg, result.report())
    hw = result.keys["hardware"]
    html = compare_report(out, result.keys, result.points_frame(), result.rows, rates.rate(hw, tier),
                          rates.all_in_kw(hw), measured=page_points(bundled_pages(), result.keys))
    if cfg.get("validate_after"):
        from simulator.tasks.validate import format_validation, validate_all

        print()
        print(format_validation(*validate_all(cfg)))
    print(f"report: {html}")
