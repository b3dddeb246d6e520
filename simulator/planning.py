"""Planning: the cheapest (and most power-efficient) GPU, precision and MTP setting per interactivity floor.

Two stages. `collect_options` sweeps every catalog GPU x precision x side (MTP off, MTP k = 1..4) over the
open search space (beyond one node too, wide EP and xPyD, within `max_gpus`) with the sweep engine (kernels/:
Triton on a GPU, torch otherwise) and gives two frames:
the best predicted point per interactivity bin, and one row per option with its rates
and, where it cannot run at all, the reason. `rank_options` is a pure function of those frames: per floor
and option, the max-throughput feasible point with interactivity >= floor, its $/M tokens and tok/s/MW, and
the GPUs and MW that serve `demand_tok_s` total tokens/s in whole deployments. Tests feed it synthetic frames.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from kernels import lower_cases, sweep
from simulator.calibration.uncertainty import gain_error_band
from simulator.catalog import SpecError, list_keys
from simulator.economics import RateLookupError, RateTable, cost_per_mtok, tok_s_per_mw
from simulator.evaluate import candidate_cases
from simulator.runconfig import PlanSettings, RunConfig
from simulator.scenario import Scenario
from simulator.search import OPEN_DRAFT_TOKENS, candidates, side_reason
from simulator.specs.topology import NODE_GPUS
from simulator.specs.vocabulary import SIDES, Side

DEFAULT_FLOORS: tuple[float, ...] = (25.0, 50.0, 100.0)
PLAN_SIDES: tuple[Side, ...] = tuple(reversed(SIDES))  # Off first: an option's MTP gain is read against it
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
                 demand_tok_s: float, gain_sigma: float = 0.0) -> pd.DataFrame:
    """One row per (floor, option): the chosen point and its economics, or the reason there is none.

    `points`: feasible predicted points (POINT_COLUMNS; `gpus` = GPUs per deployment). `options`: one row per
    (gpu, precision, side) with `usd_per_gpu_hour`, `all_in_kw` and `reason` ("" when it can run). Feasible
    rows are ranked by $/M tokens within each floor (`rank` 1 = cheapest); `best_power` marks the highest
    tok/s/MW. GPUs = replicas x GPUs per deployment, replicas = ceil(demand / (tok/s/GPU x GPUs per deployment)).
    An MTP row's gain over the Off row of its floor, GPU and precision carries a P10-P90 band from the
    calibration's gain model error `gain_sigma` (Calibration.gain_error_sigma; 0: no band).
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
    return _economics(df, demand_tok_s, gain_sigma)


def _economics(df: pd.DataFrame, demand_tok_s: float, gain_sigma: float = 0.0) -> pd.DataFrame:
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
    band = [gain_error_band(g, f, gain_sigma) for g, f in zip(df["mtp_gain"], df["floor"], strict=True)]
    df["mtp_gain_p10"] = [lo for lo, _ in band]
    df["mtp_gain_p90"] = [hi for _, hi in band]
    df = df.sort_values(["floor", "feasible", "cost_per_mtok", "tok_s_per_mw", "gpu", "precision", "side"],
                        ascending=[True, False, True, False, True, True, True], kind="stable")
    df["rank"] = df.groupby("floor").cumcount() + 1
    df.loc[~df["feasible"], "rank"] = np.nan
    power = df[df["feasible"]].groupby("floor")["tok_s_per_mw"].idxmax()
    df["best_power"] = df.index.isin(power.to_numpy())
    order = ["floor", "rank", "gpu", "precision", "side", "draft_tokens", "deployment", "gpus", "concurrency",
             "interactivity", "tput_per_gpu", "mtp_gain", "mtp_gain_p10", "mtp_gain_p90", "cost_per_mtok",
             "tok_s_per_mw", "usd_per_gpu_hour",
             "all_in_kw", "replicas", "gpus_needed", "mw", "usd_per_hour", "best_power", "feasible", "reason"]
    return df[order].reset_index(drop=True)


# ---- collecting options from the catalog --------------------------------------------------------------------

def floors_of(cfg: RunConfig) -> list[float]:
    """The interactivity floors (tok/s/user), sorted; DEFAULT_FLOORS when `min_interactivity` is unset."""
    return list(DEFAULT_FLOORS) if cfg.min_interactivity is None else sorted(set(cfg.min_interactivity))


def plan_gpus(cfg: RunConfig) -> list[str]:
    """`plan.gpus`, or every catalog GPU plus a user GPU composed via hydra.searchpath."""
    if cfg.plan.gpus:
        return list(cfg.plan.gpus)
    gpus = list_keys("hardware")
    return gpus if cfg.hardware.name in gpus else [*gpus, cfg.hardware.name]


def hardware_case(cfg: RunConfig, gpu: str, precision: str) -> RunConfig:
    """The run on `gpu` (the run's own hardware spec when it is that GPU: a user's file)."""
    return cfg.with_case(precision=precision, hardware=None if cfg.hardware.name == gpu else gpu)


def gpu_economics(rates: RateTable, tier: str, gpu: str, plan: PlanSettings) -> tuple[float, float, str]:
    """($/GPU-hour, all-in kW, reason) for `gpu`: user overrides first, then the rate table."""
    try:
        usd = (plan.usd_per_gpu_hour or {}).get(gpu) or rates.rate(gpu, tier)
        kw = (plan.all_in_kw or {}).get(gpu) or rates.all_in_kw(gpu)
    except RateLookupError as e:
        return math.nan, math.nan, f"{e} (or set plan.usd_per_gpu_hour / plan.all_in_kw)"
    return usd, kw, ""


SWEEP_BINS = 2048  # log-spaced interactivity bins over [0.1, 1e4): ~0.6 % wide


PROGRESS_AFTER_S = 5.0  # a plan expected to take longer than this says so and shows its progress


def sweep_points(runnable: list[tuple[str, str, Scenario, Side]], max_gpus: int = NODE_GPUS,
                 max_ttft_s: float | None = None, progress: bool = False) -> pd.DataFrame:
    """Best throughput per interactivity bin for every (GPU, precision, side, k), from the sweep engine.

    The deployments, concurrencies, draft lengths and engine limits are the open search's
    (`search.candidates`, beyond one node when `max_gpus` > 8), lowered one case per deployment and limits
    (`evaluate.candidate_cases`). One launch per draft length k (k = 0: the Off side, without the draft
    module) over the union of the candidates' concurrencies (a concurrency beyond what a deployment admits
    queues: no new frontier point); each bin's winner is a real evaluated point, so `best_point` reads the
    frontier at a floor to within one bin. `max_ttft_s`: points with a longer TTFT are left out. `progress`:
    the point count first, the expected time after the first launch when it is long, and a progress bar.
    """
    found = {(gpu, precision, side): (sc, candidates(sc, side, "open", "", "", "", max_gpus)[0])
             for gpu, precision, sc, side in runnable}
    launches = []
    for k in (0, *range(1, MAX_DRAFT_TOKENS + 1)):
        side = "off" if k == 0 else "mtp"
        picked = [(sc, c, (gpu, precision)) for (gpu, precision, s), (sc, cands) in found.items() if s == side
                  for c in cands if k in c.draft_tokens]
        if picked:
            cases, _ = candidate_cases([(sc, c) for sc, c, _ in picked], [g for _, _, g in picked])
            conc = torch.tensor(sorted({c for _, cand, _ in picked for c in cand.concurrencies}), dtype=torch.float64)
            launches.append((k, side, cases, conc))
    total = sum(len(cases) * conc.numel() for _, _, cases, conc in launches)
    if progress and launches:
        print(f"plan: {total:,} points ({len(runnable)} GPU x precision x side options, one launch per k = "
              f"{', '.join(str(k) for k, *_ in launches)})", flush=True)
    frames, done, t0 = [], 0, time.perf_counter()
    for i, (k, side, cases, conc) in enumerate(launches):
        f = sweep(lower_cases(cases), conc, torch.tensor([float(k)]), torch.tensor([1.0]), bins=SWEEP_BINS,
                  progress=False, max_ttft_s=max_ttft_s)
        done += len(cases) * conc.numel()
        if progress and i == 0 and done < total:
            expected = (time.perf_counter() - t0) / done * (total - done)
            if expected > PROGRESS_AFTER_S:
                print(f"plan: about {expected:.0f} s more ({len(launches) - 1} launches left)", flush=True)
        s_idx = 0 if k == 0 else 1
        ok = torch.isfinite(f.best[:, s_idx])
        g_idx, b_idx = ok.nonzero(as_tuple=True)
        case_i, conc_i, _, _ = f.unravel(f.index[g_idx, s_idx, b_idx])
        gpu_prec = [f.groups[int(g)] for g in g_idx]
        frames.append(pd.DataFrame({
            "gpu": [gp[0] for gp in gpu_prec], "precision": [gp[1] for gp in gpu_prec], "side": side,
            "deployment": [cases[int(i)].deployment.label for i in case_i],
            "gpus": [cases[int(i)].deployment.gpus for i in case_i],
            "concurrency": conc[conc_i].long().numpy(), "draft_tokens": k,
            "interactivity": f.interactivity[g_idx, s_idx, b_idx].numpy(),
            "tput_per_gpu": f.best[g_idx, s_idx, b_idx].numpy()}))
    return pd.concat(frames, ignore_index=True)[POINT_COLUMNS] if frames else pd.DataFrame(columns=POINT_COLUMNS)


def collect_options(cfg: RunConfig, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(points, options) over every GPU x precision x side of the plan; see the module docstring."""
    options: list[dict[str, Any]] = []
    runnable: list[tuple[str, str, Scenario, Side]] = []
    grid = [(g, p) for g in plan_gpus(cfg) for p in cfg.plan.precisions]
    for gpu, precision in tqdm(grid, desc="plan", unit="gpu x precision", disable=not progress or None):
        usd, kw, reason = gpu_economics(cfg.rates, cfg.rate_tier, gpu, cfg.plan)
        sc = None
        if not reason:
            try:
                case = hardware_case(cfg, gpu, precision)
                if not case.hardware.supports(precision):
                    reason = f"no {precision.upper()} tensor cores on {case.hardware.display_name}"
                else:
                    sc = case.scenario()
            except SpecError as e:
                reason = " ".join(str(e).split())
        for side in PLAN_SIDES:
            why = reason or side_reason(sc, side, cfg.max_gpus)  # type: ignore[arg-type]
            if not why:
                runnable.append((gpu, precision, sc, side))  # type: ignore[arg-type]
            options.append({"gpu": gpu, "precision": precision, "side": side, "usd_per_gpu_hour": usd,
                            "all_in_kw": kw, "reason": why})
    points = sweep_points(runnable, cfg.max_gpus, cfg.max_ttft_s, progress)
    opts = pd.DataFrame(options, columns=OPTION_COLUMNS)
    have = set(map(tuple, points[KEY].itertuples(index=False))) if not points.empty else set()
    missing = (opts["reason"] == "") & ~opts[KEY].apply(tuple, axis=1).isin(have)
    opts.loc[missing, "reason"] = "no feasible point (memory or running-request limit at every concurrency)"
    return points, opts


def _signature(points: pd.DataFrame) -> tuple:
    cols = ["deployment", "concurrency", "draft_tokens", "interactivity", "tput_per_gpu"]
    g = points[cols].sort_values(cols).round({"interactivity": 6, "tput_per_gpu": 6})
    return tuple(map(tuple, g.itertuples(index=False)))


def merge_identical_precisions(points: pd.DataFrame, options: pd.DataFrame
                               ) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Options of one GPU and side whose precisions predict exactly the same points (a model whose weights
    are natively FP4, say) are one deployment: keep the first precision, label it `fp4=fp8`, drop the rest.
    Returns (points, options, one note per merge)."""
    notes: list[str] = []
    points, options = points.copy(), options.copy()
    for (gpu, side), g in points.groupby(["gpu", "side"], sort=False):
        precisions = list(dict.fromkeys(g["precision"]))
        kept: dict[tuple, str] = {}
        for p in precisions:
            sig = _signature(g[g["precision"] == p])
            if sig not in kept:
                kept[sig] = p
                continue
            label = f"{kept[sig]}={p}"
            notes.append(f"{gpu} {side}: {p} predicts exactly as {kept[sig]} (the same deployment): listed once, "
                         f"as {label}")
            points = points[~((points["gpu"] == gpu) & (points["side"] == side) & (points["precision"] == p))]
            options = options[~((options["gpu"] == gpu) & (options["side"] == side) & (options["precision"] == p))]
            for frame in (points, options):
                frame.loc[(frame["gpu"] == gpu) & (frame["side"] == side) & (frame["precision"] == kept[sig]),
                          "precision"] = label
            kept[sig] = label
    return points.reset_index(drop=True), options.reset_index(drop=True), notes
