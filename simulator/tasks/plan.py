"""plan: the cheapest (and most power-efficient) GPU, precision and MTP setting per interactivity floor.

Two stages. `collect_options` sweeps every catalog GPU x precision x side (MTP off, MTP k = 1..4) over the
open search space with the sweep engine (kernels/: Triton on a GPU, torch otherwise) and gives two frames:
the best predicted point per interactivity bin, and one row per option with its rates
and, where it cannot run at all, the reason. `rank_options` is a pure function of those frames: per floor
and option, the max-throughput feasible point with interactivity >= floor, its $/M tokens and tok/s/MW, and
the GPUs and MW that serve `demand_tok_s` total tokens/s in whole deployments. Tests feed it synthetic frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from simulator.catalog import SpecError, list_keys, read_yaml
from simulator.economics import RateLookupError, RateTable, cost_per_mtok, tok_s_per_mw
from simulator.report_html import plan_report
from simulator.scenario import Scenario
from simulator.search import (
    OPEN_DRAFT_TOKENS,
    OPEN_MAX_CONCURRENCY,
    Side,
    open_candidates,
    open_concurrencies,
    open_deployments,
)

PRECISIONS: tuple[str, ...] = ("fp4", "fp8", "bf16")
SIDES: tuple[Side, ...] = ("off", "mtp")
DEFAULT_FLOORS: tuple[float, ...] = (25.0, 50.0, 100.0)
POINT_COLUMNS = ["gpu", "precision", "side", "deployment", "gpus", "concurrency", "draft_tokens",
                 "interactivity", "tput_per_gpu"]
OPTION_COLUMNS = ["gpu", "precision", "side", "usd_per_gpu_hour", "all_in_kw", "reason"]
KEY = ["gpu", "precision", "side"]
MAX_DRAFT_TOKENS = max(OPEN_DRAFT_TOKENS)


# ---- pure ranking -------------------------------------------------------------------------------------------

def best_point(points: pd.DataFrame, floor: float) -> pd.Series | None:
    """The max-throughput point with interactivity >= floor (None when no point reaches the floor)."""
    ok = points[(points["interactivity"] >= floor) & np.isfinite(points["tput_per_gpu"])]
    if ok.empty:
        return None
    return ok.loc[ok["tput_per_gpu"].idxmax()]


def rank_options(points: pd.DataFrame, options: pd.DataFrame, floors: Sequence[float],
                 demand_tok_s: float) -> pd.DataFrame:
    """One row per (floor, option): the chosen point and its economics, or the reason there is none.

    `points`: feasible predicted points (POINT_COLUMNS; `gpus` = GPUs per deployment). `options`: one row per
    (gpu, precision, side) with `usd_per_gpu_hour`, `all_in_kw` and `reason` ("" when it can run). Feasible
    rows are ranked by $/M tokens within each floor (`rank` 1 = cheapest); `best_power` marks the highest
    tok/s/MW. GPUs = replicas x GPUs per deployment, replicas = ceil(demand / (tok/s/GPU x GPUs per deployment)).
    """
    groups = {key: g for key, g in points.groupby(KEY, sort=False)} if not points.empty else {}
    rows: list[dict[str, Any]] = []
    for floor in floors:
        for opt in options.itertuples(index=False):
            row: dict[str, Any] = {"floor": float(floor), "gpu": opt.gpu, "precision": opt.precision,
                                   "side": opt.side, "usd_per_gpu_hour": opt.usd_per_gpu_hour,
                                   "all_in_kw": opt.all_in_kw, "reason": opt.reason or ""}
            mine = groups.get((opt.gpu, opt.precision, opt.side))
            if not row["reason"]:
                best = best_point(mine, floor) if mine is not None else None
                if best is None:
                    reach = float(mine["interactivity"].max()) if mine is not None and not mine.empty else 0.0
                    row["reason"] = f"no point reaches {floor:g} tok/s/user (max {reach:.1f})"
                else:
                    row.update({c: best[c] for c in ("deployment", "gpus", "concurrency", "draft_tokens",
                                                     "interactivity", "tput_per_gpu")})
            rows.append(row)
    df = pd.DataFrame(rows)
    return _economics(df, demand_tok_s)


def _economics(df: pd.DataFrame, demand_tok_s: float) -> pd.DataFrame:
    for col in ("deployment", "gpus", "concurrency", "draft_tokens", "interactivity", "tput_per_gpu"):
        if col not in df:
            df[col] = np.nan
    df["feasible"] = df["reason"] == ""
    tput = df["tput_per_gpu"].astype(float)
    df["cost_per_mtok"] = cost_per_mtok(tput, df["usd_per_gpu_hour"].astype(float))
    df["tok_s_per_mw"] = tok_s_per_mw(tput, df["all_in_kw"].astype(float))
    per_replica = tput * df["gpus"].astype(float)
    df["replicas"] = np.ceil(demand_tok_s / per_replica).where(df["feasible"])
    df["gpus_needed"] = df["replicas"] * df["gpus"]
    df["mw"] = df["gpus_needed"] * df["all_in_kw"].astype(float) / 1000.0
    df["usd_per_hour"] = df["gpus_needed"] * df["usd_per_gpu_hour"].astype(float)
    off = df[df["side"] == "off"].set_index(["floor", "gpu", "precision"])["tput_per_gpu"]
    idx = pd.MultiIndex.from_frame(df[["floor", "gpu", "precision"]])
    df["mtp_gain"] = np.where(df["side"] == "mtp", tput.to_numpy() / off.reindex(idx).to_numpy(), np.nan)
    df = df.sort_values(["floor", "feasible", "cost_per_mtok", "tok_s_per_mw", "gpu", "precision", "side"],
                        ascending=[True, False, True, False, True, True, True], kind="stable")
    df["rank"] = df.groupby("floor").cumcount() + 1
    df.loc[~df["feasible"], "rank"] = np.nan
    power = df[df["feasible"]].groupby("floor")["tok_s_per_mw"].idxmax()
    df["best_power"] = df.index.isin(power.to_numpy())
    order = ["floor", "rank", "gpu", "precision", "side", "draft_tokens", "deployment", "gpus", "concurrency",
             "interactivity", "tput_per_gpu", "mtp_gain", "cost_per_mtok", "tok_s_per_mw", "usd_per_gpu_hour",
             "all_in_kw", "replicas", "gpus_needed", "mw", "usd_per_hour", "best_power", "feasible", "reason"]
    return df[order].reset_index(drop=True)


# ---- collecting options from the catalog --------------------------------------------------------------------

def floors_of(cfg: dict[str, Any]) -> list[float]:
    from simulator.tasks.setup import positive_numbers

    out = positive_numbers(cfg, "min_interactivity", "tok/s/user")
    return list(DEFAULT_FLOORS) if out is None else sorted(set(out))


def demand_of(cfg: dict[str, Any]) -> float:
    try:
        demand = float(cfg.get("demand_tok_s", 1e6))
    except (TypeError, ValueError):
        raise SpecError(f"demand_tok_s must be a number (total tokens/s), got {cfg.get('demand_tok_s')!r}") from None
    if not math.isfinite(demand) or demand <= 0:
        raise SpecError(f"demand_tok_s must be a positive number (total tokens/s), got {demand!r}")
    return demand


def _overrides(plan: dict[str, Any], key: str) -> dict[str, float]:
    raw = plan.get(key) or {}
    if not isinstance(raw, dict):
        raise SpecError(f"plan.{key} must be null or a mapping {{gpu: value}}, got {raw!r}")
    out = {}
    for gpu, v in raw.items():
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise SpecError(f"plan.{key}.{gpu} must be a positive number, got {v!r}")
        out[str(gpu)] = float(v)
    return out


def plan_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """The `plan` block, checked: precisions, GPU keys, rate overrides, rows printed per floor."""
    plan = cfg.get("plan") or {}
    precisions = list(plan.get("precisions") or ["fp8", "fp4"])
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise SpecError(f"plan.precisions: unknown precision(s) {bad}; valid: {', '.join(PRECISIONS)}")
    own = cfg["hardware"].get("name")
    gpus = list(plan.get("gpus") or list_keys("hardware"))
    if not plan.get("gpus") and own and own not in gpus:
        gpus.append(own)  # a user GPU composed via hydra.searchpath joins the catalog
    return {"precisions": precisions, "gpus": gpus, "top": int(plan.get("top") or 10),
            "usd_per_gpu_hour": _overrides(plan, "usd_per_gpu_hour"), "all_in_kw": _overrides(plan, "all_in_kw")}


def hardware_data(cfg: dict[str, Any], gpu: str) -> dict[str, Any]:
    if cfg["hardware"].get("name") == gpu:
        return cfg["hardware"]
    return read_yaml("hardware", gpu)


def gpu_economics(rates: RateTable, tier: str, gpu: str, settings: dict[str, Any]) -> tuple[float, float, str]:
    """($/GPU-hour, all-in kW, reason) for `gpu`: user overrides first, then the rate table."""
    try:
        usd = settings["usd_per_gpu_hour"].get(gpu) or rates.rate(gpu, tier)
        kw = settings["all_in_kw"].get(gpu) or rates.all_in_kw(gpu)
    except RateLookupError as e:
        return math.nan, math.nan, f"{e} (or set plan.usd_per_gpu_hour / plan.all_in_kw)"
    return usd, kw, ""


def no_fit_reason(sc: Scenario, side: Side) -> str:
    deps = open_deployments(sc)
    if not deps:
        return "no valid single-node deployment (TP/EP) for this model on this GPU"
    largest = max(deps, key=lambda d: d.gpus)
    why = sc.memory(largest, side == "mtp").reason(1) or "no concurrency fits in memory"
    return f"does not fit even at {largest.label} ({largest.gpus} GPUs): {why}"


def side_reason(sc: Scenario, side: Side) -> str:
    """Why a side cannot run at all ("" when some deployment fits)."""
    if side == "mtp" and not sc.has_draft:
        return f"{sc.model.name} has no draft module (MTP impossible)"
    if not open_candidates(sc, side):
        return no_fit_reason(sc, side)
    return ""


SWEEP_BINS = 2048  # log-spaced interactivity bins over [0.1, 1e4): ~0.6 % wide


def sweep_points(runnable: list[tuple[str, str, Scenario, Side]]) -> pd.DataFrame:
    """Best throughput per interactivity bin for every (GPU, precision, side, k), from the sweep engine.

    One launch per draft length k (k = 0: the Off side, without the draft module); each bin's winner is a
    real evaluated point, so `best_point` reads the frontier at a floor to within one bin.
    """
    from kernels import Case, lower_cases, sweep

    frames = []
    for k in (0, *range(1, MAX_DRAFT_TOKENS + 1)):
        side = "off" if k == 0 else "mtp"
        cases = [Case(sc, dep, with_draft=k > 0, group=f"{gpu}/{precision}")
                 for gpu, precision, sc, s in runnable if s == side
                 and (k == 0 or (sc.acceptance is not None and k <= sc.acceptance.max_draft_tokens))
                 for dep in open_deployments(sc)]
        if not cases:
            continue
        conc = torch.tensor(open_concurrencies(OPEN_MAX_CONCURRENCY), dtype=torch.float64)
        f = sweep(lower_cases(cases), conc, torch.tensor([float(k)]), torch.tensor([1.0]), bins=SWEEP_BINS,
                  progress=False)
        s_idx = 0 if k == 0 else 1
        ok = torch.isfinite(f.best[:, s_idx])
        g_idx, b_idx = ok.nonzero(as_tuple=True)
        case_i, conc_i, _, _ = f.unravel(f.index[g_idx, s_idx, b_idx])
        gpu_prec = [f.group_names[int(g)].split("/") for g in g_idx]
        frames.append(pd.DataFrame({
            "gpu": [gp[0] for gp in gpu_prec], "precision": [gp[1] for gp in gpu_prec], "side": side,
            "deployment": [cases[int(i)].deployment.label for i in case_i],
            "gpus": [cases[int(i)].deployment.gpus for i in case_i],
            "concurrency": conc[conc_i].long().numpy(), "draft_tokens": k,
            "interactivity": f.interactivity[g_idx, s_idx, b_idx].numpy(),
            "tput_per_gpu": f.best[g_idx, s_idx, b_idx].numpy()}))
    return pd.concat(frames, ignore_index=True)[POINT_COLUMNS] if frames else pd.DataFrame(columns=POINT_COLUMNS)


def collect_options(cfg: dict[str, Any], progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(points, options) over every GPU x precision x side of the plan; see the module docstring."""
    from tqdm import tqdm

    from simulator.tasks.setup import build_rates, build_scenario

    settings = plan_settings(cfg)
    rates, tier = build_rates(cfg)
    options: list[dict[str, Any]] = []
    runnable: list[tuple[str, str, Scenario, Side]] = []
    grid = [(g, p) for g in settings["gpus"] for p in settings["precisions"]]
    for gpu, precision in tqdm(grid, desc="plan", unit="gpu x precision", disable=not progress or None):
        data = hardware_data(cfg, gpu)
        usd, kw, rate_reason = gpu_economics(rates, tier, gpu, settings)
        sc, reason = None, rate_reason
        peaks = data.get("peak_tflops") or {}
        if not reason and isinstance(peaks, dict) and precision in peaks and peaks[precision] is None:
            reason = f"no {precision.upper()} tensor cores on {data.get('display_name', gpu)}"
        if not reason:
            try:
                sc = build_scenario({**cfg, "hardware": data, "precision": precision})
            except SpecError as e:
                reason = " ".join(str(e).split())
        for side in SIDES:
            why = reason or side_reason(sc, side)  # type: ignore[arg-type]
            if not why:
                runnable.append((gpu, precision, sc, side))  # type: ignore[arg-type]
            options.append({"gpu": gpu, "precision": precision, "side": side, "usd_per_gpu_hour": usd,
                            "all_in_kw": kw, "reason": why})
    points = sweep_points(runnable)
    opts = pd.DataFrame(options, columns=OPTION_COLUMNS)
    have = set(map(tuple, points[KEY].itertuples(index=False))) if not points.empty else set()
    missing = (opts["reason"] == "") & ~opts[KEY].apply(tuple, axis=1).isin(have)
    opts.loc[missing, "reason"] = "no feasible point (memory or running-request limit at every concurrency)"
    return points, opts


# ---- report ---------------------------------------------------------------------------------------------------

def format_plan(table: pd.DataFrame, title: str, top: int = 10) -> str:
    lines = [title]
    head = (f"{'#':>3} {'GPU':<10} {'prec':<4} {'MTP':<4} {'k':>2} {'deployment':<13} {'conc':>5} "
            f"{'tok/s/user':>10} {'tok/s/GPU':>10} {'vs Off':>6} {'$/M tok':>8} {'tok/s/MW':>10} "
            f"{'GPUs':>7} {'MW':>7}")
    for floor, g in table.groupby("floor", sort=True):
        ok = g[g["feasible"]]
        lines += ["", f"interactivity >= {floor:g} tok/s/user ({len(ok)} feasible options)", head, "-" * len(head)]
        for r in ok.head(top).itertuples(index=False):
            gain = f"{r.mtp_gain:.2f}x" if r.side == "mtp" and np.isfinite(r.mtp_gain) else "-"
            k = int(r.draft_tokens) if r.side == "mtp" else 0
            lines.append(
                f"{int(r.rank):>3} {r.gpu:<10} {r.precision:<4} {r.side:<4} {k:>2} {r.deployment:<13} "
                f"{int(r.concurrency):>5} {r.interactivity:>10.1f} {r.tput_per_gpu:>10.1f} {gain:>6} "
                f"{r.cost_per_mtok:>8.3f} {r.tok_s_per_mw:>10.0f} {int(r.gpus_needed):>7} {r.mw:>7.2f}")
        if len(ok) > top:
            lines.append(f"    ... {len(ok) - top} more in plan.csv")
        if not ok.empty:
            c, p = ok.iloc[0], ok[ok["best_power"]].iloc[0]
            lines.append(f"  cheapest: {_label(c)} at ${c.cost_per_mtok:.3f}/M tok, {int(c.gpus_needed)} GPUs, "
                         f"{c.mw:.2f} MW")
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


def run(cfg: dict[str, Any], out: Path) -> None:
    """The `plan` task: print the ranked table; write plan.csv/.parquet/.png and advice.csv/.png."""
    from simulator.tasks.advise import write_advice
    from simulator.tasks.plan_plot import plot_plan
    from simulator.tasks.setup import build_rates

    floors, demand = floors_of(cfg), demand_of(cfg)
    settings = plan_settings(cfg)
    points, options = collect_options(cfg)
    table = rank_options(points, options, floors, demand)
    rates, tier = build_rates(cfg)
    title = (f"plan: {cfg['model']['name']} {cfg['workload']['name']}, demand {demand:,.0f} tok/s "
             f"(input + output), rates {rates.name} {tier}; ranked by $/M tokens")
    print(format_plan(table, title, settings["top"]))
    table.to_csv(out / "plan.csv", index=False)
    table.to_parquet(out / "plan.parquet", index=False)
    plot_plan(points, options, table, str(out / "plan.png"), title)
    print(f"wrote {out / 'plan.csv'}, {out / 'plan.parquet'} and {out / 'plan.png'}")
    write_advice(points, floors, out)
    print(f"report: {plan_report(out, points, options, table, title, settings['top'])}")
