"""sweep: one launch of the sweep engine over lists of models x GPUs x precisions x workloads x every
deployment that fits x concurrency x draft length x acceptance scale; the binned frontiers out.

`specsim task=sweep 'sweep.hardware=[b200,h200,mi355x]' 'sweep.model=[glm5,deepseek_r1]'` — no multirun:
the grid is lowered once and streamed through the Triton kernel (GPU) or its torch reference (CPU).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from kernels import lower_cases, sweep
from kernels.reference import evaluate_rows_torch
from simulator.catalog import SpecError, list_keys
from simulator.evaluate import candidate_cases
from simulator.report_html import sweep_report
from simulator.runconfig import RunConfig
from simulator.search import OPEN_MAX_CONCURRENCY, candidates, open_concurrencies, side_reason
from simulator.specs.vocabulary import side_of

FRONTIER_COLUMNS = ["model", "hardware", "precision", "workload", "side", "interactivity", "tput_per_gpu",
                    "cost_per_mtok", "deployment", "concurrency", "draft_tokens", "acceptance_multiplier"]
# points/s measured on a 2-core CPU (README "Speed"); a GPU's Triton rate is a rough order of magnitude
NOMINAL_POINTS_PER_S = {"torch": 6.5e5, "torch.compile": 3.0e6, "triton": 1.0e9}
COMPILE_S = (30, 70)  # torch.compile's one-off compile on a CPU
AUTO_COMPILE_POINTS = 100_000_000  # above this a CPU sweep amortises torch.compile's 30-70 s compile


def sweep_settings(cfg: RunConfig) -> dict[str, Any]:
    """The `sweep` lists with every null resolved to this run's own value (hardware: every catalog GPU)."""
    sw = cfg.sweep
    catalog = list_keys("hardware")
    return {
        "hardware": sw.hardware or (catalog if cfg.hardware.name in catalog else [*catalog, cfg.hardware.name]),
        "model": sw.model or [cfg.model.name],
        "precision": sw.precision or [cfg.precision],
        "workload": sw.workload or [cfg.workload.name],
        "concurrency": sw.concurrency or list(open_concurrencies(OPEN_MAX_CONCURRENCY)),
        "draft_tokens": sw.draft_tokens, "acceptance_multiplier": sw.acceptance_multiplier, "backend": sw.backend,
        "bins": sw.bins, "chunk_points": sw.chunk_points, "max_chunk_bytes": sw.max_chunk_bytes,
        "compile": sw.compile,
    }


def draft_notes(sc: Any, draft_tokens: list[int]) -> list[str]:
    """What the sweep leaves out of the MTP side of `sc` for the asked draft lengths (said, not silent)."""
    mtp_k = sorted(k for k in draft_tokens if k > 0)
    if not mtp_k:
        return [f"{sc.model.name}: no draft length > 0 in sweep.draft_tokens: no MTP side"]
    if not sc.has_draft:
        return [f"{sc.model.name} has no draft module: no MTP side"]
    limit = sc.acceptance.max_draft_tokens
    over = [k for k in mtp_k if k > limit]
    if not over:
        return []
    left = [k for k in mtp_k if k <= limit]
    tail = f"MTP swept at k = {', '.join(map(str, left))} only" if left else "no MTP side"
    return [f"{sc.model.name}: k = {', '.join(map(str, over))} above its max draft length {limit}: {tail}"]


def build_cases(cfg: RunConfig, s: dict[str, Any]) -> tuple[list, list[str], list[str]]:
    """Every (model, GPU, precision, workload) x open deployment within `max_gpus` (search.candidates, with
    their engine limits), without and with the draft module; the combinations skipped (why) and notes on
    what the MTP side leaves out."""
    pairs, skipped, notes, unfit = [], [], [], []
    for model in s["model"]:
        for hw in s["hardware"]:
            for precision in s["precision"]:
                for wl in s["workload"]:
                    try:
                        sc = cfg.with_case(model=model, hardware=hw, workload=wl, precision=precision).scenario()
                    except SpecError as e:
                        skipped.append(f"{model}/{hw}/{precision}/{wl}: {str(e).splitlines()[-1].strip()}")
                        continue
                    notes += [n for n in draft_notes(sc, s["draft_tokens"]) if n not in notes]
                    found = [(sc, c) for side in ("off", "mtp")
                             for c in candidates(sc, side, "open", "", "", "", cfg.max_gpus)[0]]
                    pairs += found
                    if not found:
                        unfit.append(f"{model}/{hw}/{precision}/{wl}: {side_reason(sc, 'off', cfg.max_gpus)}")
    if not pairs and unfit:
        raise SpecError("sweep: no feasible point: no deployment fits within max_gpus="
                        f"{cfg.max_gpus}:\n  " + "\n  ".join(unfit))
    if not pairs:
        raise SpecError("sweep: no valid (model, GPU, precision, workload) combination:\n  " + "\n  ".join(skipped))
    return candidate_cases(pairs)[0], skipped, notes


def frontier_frame(frontier: Any, cases: list, s: dict[str, Any], rates: Any, tier: str) -> pd.DataFrame:
    c, k, a = (np.asarray(s[n]) for n in ("concurrency", "draft_tokens", "acceptance_multiplier"))
    rows = []
    for g, (model, hw, precision, wl) in enumerate(frontier.groups):
        for side in (0, 1):
            front = frontier.front(g, side)
            for x, y, idx in zip(front["interactivity"], front[frontier.metric], front["index"], strict=True):
                ci, ic, ik, ia = (int(v) for v in frontier.unravel(torch.tensor(int(idx))))
                rate = rates.rate(hw, tier) if hw in rates.gpus else float("nan")
                rows.append({"model": model, "hardware": hw, "precision": precision, "workload": wl,
                             "side": side_of(side == 1), "interactivity": float(x), "tput_per_gpu": float(y),
                             "cost_per_mtok": rate / (float(y) * 3600 / 1e6),
                             "deployment": cases[ci].deployment.label, "concurrency": int(c[ic]),
                             "draft_tokens": int(k[ik]), "acceptance_multiplier": float(a[ia])})
    return pd.DataFrame(rows, columns=FRONTIER_COLUMNS)


def plot_fronts(frame: pd.DataFrame, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for model, mf in frame.groupby("model"):
        fig, ax = plt.subplots(figsize=(8, 5))
        for i, ((hw, precision, wl), g) in enumerate(mf.groupby(["hardware", "precision", "workload"])):
            color = plt.cm.tab10(i % 10)
            for side, style in (("mtp", "-"), ("off", "--")):
                f = g[g["side"] == side].sort_values("interactivity")
                if not f.empty:
                    ax.plot(f["interactivity"], f["tput_per_gpu"], style, color=color,
                            label=f"{hw} {precision} {wl} {side.upper()}")
        ax.set(xscale="log", yscale="log", xlabel="interactivity (tok/s/user)", ylabel="throughput per GPU (tok/s)",
               title=f"{model}: frontiers (MTP solid, Off dashed)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        path = out / f"sweep_{model}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


PROBE_ROWS = 64  # (case, C) rows timed before a CPU sweep to estimate its rate on this very batch


def probe_points_per_s(batch: Any, s: dict[str, Any]) -> float:
    """Points/s of the torch reference on this batch, timed on PROBE_ROWS rows spread over the grid (a
    disaggregated case costs ~20x a single-node one: a nominal rate misleads)."""
    n_c = len(s["concurrency"])
    rows = torch.linspace(0, batch.n_cases * n_c - 1, min(PROBE_ROWS, batch.n_cases * n_c)).long().unique()
    t0 = time.perf_counter()
    evaluate_rows_torch(batch, rows, torch.tensor(s["concurrency"]), torch.tensor(s["draft_tokens"]),
                        torch.tensor(s["acceptance_multiplier"]))
    points = rows.numel() * len(s["draft_tokens"]) * len(s["acceptance_multiplier"])
    return points / max(time.perf_counter() - t0, 1e-6)


def plan_line(n_points: int, n_cases: int, s: dict[str, Any], compile_torch: bool,
              measured_points_per_s: float | None = None) -> str:
    """What is about to run and a rough time: printed before the sweep starts (the torch rate measured on
    this batch when given, else the nominal one)."""
    backend = s["backend"] if s["backend"] != "auto" else ("triton" if torch.cuda.is_available() else "torch")
    path = "torch.compile" if backend == "torch" and compile_torch else backend
    rate = measured_points_per_s if measured_points_per_s and path == "torch" else NOMINAL_POINTS_PER_S[path]
    estimate = n_points / rate
    extra = f" + a one-off compile of {COMPILE_S[0]}-{COMPILE_S[1]} s" if path == "torch.compile" else ""
    grid = " x ".join(f"{len(s[n])} {n}" for n in ("concurrency", "draft_tokens", "acceptance_multiplier"))
    how = "measured on this batch" if rate != NOMINAL_POINTS_PER_S[path] else "nominal"
    return (f"sweeping {n_points:,} points ({n_cases} deployments x {grid}) on {path}: "
            f"about {max(estimate, 0.1):.1f} s{extra} at {rate:,.0f} points/s ({how})")


def run(cfg: RunConfig, out: Path) -> None:
    s = sweep_settings(cfg)
    rates, tier = cfg.rates, cfg.rate_tier
    cases, skipped, notes = build_cases(cfg, s)
    for line in skipped:
        print(f"skipped {line}")
    for line in notes:
        print(f"note: {line}")
    batch = lower_cases(cases)
    n_points = len(cases) * len(s["concurrency"]) * len(s["draft_tokens"]) * len(s["acceptance_multiplier"])
    compile_torch = s["compile"] is True or (s["compile"] == "auto" and n_points >= AUTO_COMPILE_POINTS
                                              and not torch.cuda.is_available())
    on_cpu = s["backend"] == "torch" or (s["backend"] == "auto" and not torch.cuda.is_available())
    rate = probe_points_per_s(batch, s) if on_cpu and not compile_torch else None
    print(plan_line(n_points, len(cases), s, compile_torch, rate), flush=True)
    t0 = time.perf_counter()
    try:
        frontier = sweep(batch, torch.tensor(s["concurrency"]), torch.tensor(s["draft_tokens"]),
                         torch.tensor(s["acceptance_multiplier"]), backend=s["backend"], bins=s["bins"],
                         chunk_points=s["chunk_points"], max_chunk_bytes=s["max_chunk_bytes"],
                         compile_torch=compile_torch, max_ttft_s=cfg.max_ttft_s)
    except ValueError as e:
        raise SpecError(f"sweep: {e}") from None
    elapsed = time.perf_counter() - t0
    frame = frontier_frame(frontier, cases, s, rates, tier)
    if frame.empty:
        raise SpecError(f"sweep: no feasible point in {n_points:,} (every point exceeds memory or "
                        f"serving.max_running_requests={cfg.serving.max_running_requests}); check sweep.concurrency "
                        f"and sweep.draft_tokens (given: {s['concurrency'][:8]}, {s['draft_tokens']})")
    frame.to_parquet(out / "frontiers.parquet", index=False)
    frame.to_csv(out / "frontiers.csv", index=False)
    plots = plot_fronts(frame, out)
    best = frame.loc[frame.groupby(["model", "hardware", "precision", "workload", "side"])["tput_per_gpu"].idxmax()]
    print(best[["model", "hardware", "precision", "workload", "side", "tput_per_gpu", "interactivity",
                "deployment", "concurrency", "draft_tokens"]].to_string(index=False))
    print(f"{n_points:,} points ({len(cases)} deployments) in {elapsed:.2f} s: {n_points / elapsed:,.0f} points/s "
          f"on {frontier.best.device.type}" + (" (torch.compile, compile time included)" if compile_torch else ""))
    print(f"wrote {out / 'frontiers.parquet'}, {out / 'frontiers.csv'} and {len(plots)} plot(s)")
    print(f"report: {sweep_report(out, frame, {h: rates.all_in_kw(h) for h in rates.gpus})}")
