"""plan: the cheapest (and most power-efficient) GPU, precision and MTP setting per interactivity floor.

The options are collected and ranked in simulator/planning.py; this module prints, plots and writes them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.comparison import gain_band_text
from simulator.planning import collect_options, floors_of, merge_identical_precisions, rank_options
from simulator.report_html import plan_report
from simulator.runconfig import RunConfig
from simulator.tasks.advise import draft_note, gain_sigma_of, subject_of, write_advice
from simulator.tasks.plan_plot import plot_plan


def unit_note(r: pd.Series, demand_tok_s: float) -> str:
    """When one deployment already serves more than the demand: say it is the minimum unit."""
    capacity = float(r.tput_per_gpu) * float(r.gpus)
    if int(r.replicas) > 1 or capacity <= demand_tok_s:
        return ""
    return (f"  (demand {demand_tok_s:,.0f} tok/s is below one deployment: the minimum unit is {int(r.gpus)} GPUs, "
            f"{r.deployment}, which serves up to {capacity:,.0f} tok/s at this floor)")


def format_plan(table: pd.DataFrame, title: str, top: int = 10, demand_tok_s: float = math.inf) -> str:
    lines = [title]
    head = (f"{'#':>3} {'GPU':<10} {'prec':<4} {'MTP':<4} {'k':>2} {'deployment':<13} {'conc':>5} "
            f"{'tok/s/user':>10} {'tok/s/GPU':>10} {'vs Off':>6} {'P10-P90':>9} {'$/M tok':>8} {'tok/s/MW':>10} "
            f"{'GPUs':>7} {'MW':>7}")
    for floor, g in table.groupby("floor", sort=True):
        ok = g[g["feasible"]]
        lines += ["", f"interactivity >= {floor:g} tok/s/user ({len(ok)} feasible options)", head, "-" * len(head)]
        for r in ok.head(top).itertuples(index=False):
            gain = f"{r.mtp_gain:.2f}x" if r.side == "mtp" and np.isfinite(r.mtp_gain) else "-"
            band = gain_band_text(r.mtp_gain_p10, r.mtp_gain_p90)
            k = int(r.draft_tokens) if r.side == "mtp" else 0
            lines.append(
                f"{int(r.rank):>3} {r.gpu:<10} {r.precision:<4} {r.side:<4} {k:>2} {r.deployment:<13} "
                f"{int(r.concurrency):>5} {r.interactivity:>10.1f} {r.tput_per_gpu:>10.1f} {gain:>6} {band:>9} "
                f"{r.cost_per_mtok:>8.3f} {r.tok_s_per_mw:>10.0f} {int(r.gpus_needed):>7} {r.mw:>7.2f}")
        if len(ok) > top:
            lines.append(f"    ... {len(ok) - top} more in plan.csv")
        if not ok.empty:
            c, p = ok.iloc[0], ok[ok["best_power"]].iloc[0]
            lines.append(f"  cheapest: {_label(c)} at ${c.cost_per_mtok:.3f}/M tok, {int(c.gpus_needed)} GPUs, "
                         f"{c.mw:.2f} MW")
            if unit := unit_note(c, demand_tok_s):
                lines.append(unit)
            lines.append(f"  best tok/s/MW: {_label(p)} at {p.tok_s_per_mw:,.0f} tok/s/MW, "
                         f"{int(p.gpus_needed)} GPUs, {p.mw:.2f} MW")
        reach = g[~g["feasible"] & g["reason"].str.startswith("no point reaches")]
        for r in reach.itertuples(index=False):
            lines.append(f"  not reached: {r.gpu} {r.precision} {r.side}: {r.reason}")
    first = table[table["floor"] == table["floor"].min()]
    never = first[~first["feasible"] & ~first["reason"].str.startswith("no point reaches")]
    if not never.empty:
        lines += ["", "infeasible options:"]
        lines += [f"  {r.gpu} {r.precision} {r.side}: {r.reason}" for r in never.itertuples(index=False)]
    return "\n".join(lines)


def _label(r: pd.Series) -> str:
    mtp = f"MTP k={int(r.draft_tokens)}" if r.side == "mtp" else "MTP off"
    return f"{r.gpu} {r.precision} {mtp} {r.deployment} conc {int(r.concurrency)}"


def run(cfg: RunConfig, out: Path) -> None:
    """The `plan` task: print the ranked table; write plan.csv/.parquet/.png and advice.csv/.png."""
    floors, demand = floors_of(cfg), cfg.demand_tok_s
    points, options = collect_options(cfg)
    points, options, same = merge_identical_precisions(points, options)
    table = rank_options(points, options, floors, demand, gain_sigma_of(cfg))
    title = (f"plan: {cfg.model.name} {cfg.workload.name}, demand {demand:,.0f} tok/s "
             f"(input + output), rates {cfg.rates.name} {cfg.rate_tier}; ranked by $/M tokens")
    for line in same:
        print(f"note: {line}")
    print(format_plan(table, title, cfg.plan.top, demand))
    table.to_csv(out / "plan.csv", index=False)
    table.to_parquet(out / "plan.parquet", index=False)
    plot_plan(points, options, table, str(out / "plan.png"), title)
    print(f"wrote {out / 'plan.csv'}, {out / 'plan.parquet'} and {out / 'plan.png'}")
    write_advice(points, floors, out, draft_note(cfg), subject_of(cfg), gain_sigma_of(cfg))
    print(f"report: {plan_report(out, points, options, table, title, cfg.plan.top)}")
