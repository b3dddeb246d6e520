"""summarize: gather a multirun's per-job outputs into one table.

Each compare job writes `summary.json` (its keys, rates and table rows) next to curves.csv.
`task=summarize summarize.dir=PATH` walks PATH and reads every job's frontiers from curves.csv at ONE set of
targets for the whole multirun, so rows line up at matched interactivity: the user's `interactivity=`, else
25/50/75 % of the range every job's both sides cover (else, when the jobs share no range, each job's own
targets, and it says so). A job without summary.json gives each side's peak from curves.csv. It adds the
job's Hydra overrides, prints one table and writes summary.csv into the run dir and into PATH. A job that
failed (error.txt) is listed with its error; one with nothing feasible (infeasible.txt) with that result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from simulator.catalog import SpecError
from simulator.comparison import SHOWN, flat_rows, front_of, fronts_at
from simulator.frontier import default_targets
from simulator.report_html import summarize_report
from simulator.runconfig import RunConfig
from simulator.specs.vocabulary import SIDES


def job_overrides(job_dir: Path) -> str:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return ""
    return " ".join(str(x) for x in yaml.safe_load(path.read_text()) or [])


def job_keys(job_dir: Path) -> dict[str, Any]:
    """model / hardware / precision / workload from the job's .hydra/config.yaml (empty if absent)."""
    path = job_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    cfg = yaml.safe_load(path.read_text()) or {}
    keys = {g: (cfg.get(g) or {}).get("name") for g in ("model", "hardware", "workload")}
    return {**keys, "precision": cfg.get("precision")}


def rows_from_curves(path: Path) -> list[dict[str, Any]]:
    """Fallback for a job without summary.json: each side's peak throughput and top interactivity."""
    curves = pd.read_csv(path)
    ok = curves[curves["feasible"].fillna(False).astype(bool)] if "feasible" in curves else curves
    row: dict[str, Any] = {"interactivity": None}
    for side in SIDES:
        s = ok[ok["side"] == side]
        row[f"{side}_tput_per_gpu"] = float(s["tput_per_gpu"].max()) if not s.empty else None
        row[f"{side}_max_interactivity"] = float(s["interactivity"].max()) if not s.empty else None
    return [row]


def job_dirs(root: Path) -> list[Path]:
    """Dirs under `root` holding a job's outputs (summary.json, curves.csv, error.txt or infeasible.txt)."""
    if not root.is_dir():
        raise SpecError(f"summarize.dir: no such directory: {root}")
    pats = ("summary.json", "curves.csv", "error.txt", "infeasible.txt")
    return sorted({p.parent for pat in pats for p in root.rglob(pat)})


def job_fronts(job: Path) -> dict[str, pd.DataFrame]:
    """Each side's Pareto front from the job's curves.csv ({} without one)."""
    path = job / "curves.csv"
    if not path.is_file():
        return {}
    curves = pd.read_csv(path)
    if "feasible" not in curves or "side" not in curves:
        return {}
    curves = curves[curves["feasible"].fillna(False).astype(bool)]
    return {str(side): front_of(g.reset_index(drop=True)) for side, g in curves.groupby("side")}


def shared_targets(fronts: list[dict[str, pd.DataFrame]]) -> list[float]:
    """25/50/75 % of the interactivity range that both sides of every job cover ([] when none is shared)."""
    spans = [(f["interactivity"].min(), f["interactivity"].max()) for job in fronts for f in job.values()
             if not f.empty]
    if not spans or any(len(job) < 2 for job in fronts):
        return []
    lo, hi = max(s[0] for s in spans), min(s[1] for s in spans)
    return default_targets(np.array([lo, hi]), np.array([lo, hi])) if hi > lo else []


def common_targets(jobs: list[Path], given: list[float] | None) -> tuple[list[float] | None, str]:
    """(targets, how they were chosen) for the whole multirun; None: each job's own."""
    if given:
        return list(given), "yours (interactivity=)"
    fronts = [job_fronts(j) for j in jobs if (j / "summary.json").is_file()]
    targets = shared_targets([f for f in fronts if f])
    if targets:
        return targets, "25/50/75 % of the range every job's MTP and Off frontiers cover"
    return None, "each job's own (the jobs share no interactivity range both sides cover)"


def summary_job_rows(job: Path, data: dict[str, Any], targets: list[float] | None) -> list[dict[str, Any]]:
    """The job's rows at `targets` read from its frontiers (None: the rows it wrote itself)."""
    rows = data.get("rows") or []
    rate, kw = data.get("rate_usd_per_gpu_hour"), data.get("all_in_kw")
    if targets is not None and rate is not None and kw is not None:
        rows = flat_rows(fronts_at(job_fronts(job), targets, float(rate), float(kw)))
    return rows or [{}]


def collect(root: Path, targets: list[float] | None = None) -> pd.DataFrame:
    """One row per job x interactivity target under `root` at `targets` (None: each job's own); jobs are
    dirs with summary.json, curves.csv, error.txt (a job that failed in a multirun) or infeasible.txt."""
    frames = []
    for job in job_dirs(root):
        base = {"job": str(job.relative_to(root)) or ".", "overrides": job_overrides(job)}
        summary, error, infeasible = job / "summary.json", job / "error.txt", job / "infeasible.txt"
        if error.is_file():
            base.update(job_keys(job))
            rows = [{"error": " ".join(error.read_text().split())}]
        elif summary.is_file():
            data = json.loads(summary.read_text())
            rows = summary_job_rows(job, data, targets)
            base.update({k: v for k, v in data.items() if k in ("model", "hardware", "precision", "workload")})
            base["notes"] = " | ".join(data.get("notes") or [])
            if infeasible.is_file():
                base["result"] = "nothing feasible"
        else:
            base.update(job_keys(job))
            rows = rows_from_curves(job / "curves.csv")
        frames.append(pd.DataFrame([{**base, **r} for r in rows]))
    if not frames:
        raise SpecError(f"summarize.dir: no job outputs (summary.json or curves.csv) under {root}")
    return pd.concat(frames, ignore_index=True)


INTEGER_COLUMNS = tuple(f"{side}_{c}" for side in SIDES for c in ("concurrency", "draft_tokens", "gpus"))


def tidy(table: pd.DataFrame) -> pd.DataFrame:
    """The table as printed and written: columns with no value at all (NaN or "") dropped, counts (concurrency,
    draft tokens) as integers with a blank for a job without them (pandas Int64), not 3.0."""
    table = table.loc[:, table.replace("", np.nan).notna().any()]
    ints = {c: "Int64" for c in INTEGER_COLUMNS if c in table}
    return table.astype({c: "float64" for c in ints}).round({c: 0 for c in ints}).astype(ints)


def cell(v: Any) -> str:
    """One printed value: floats with three significant digits the same way in every column (0.140, 5.90,
    68.0, 3,866), integers as integers, '-' for no value."""
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return "-"
    if isinstance(v, (float, np.floating)):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:#.3g}"
    return str(v)


def format_summary(table: pd.DataFrame) -> str:
    extra = ("mtp_max_interactivity", "off_max_interactivity", "result", "error")
    table = tidy(table)
    cols = [c for c in SHOWN if c in table] + [c for c in extra if c in table]
    return table[cols].astype(object).map(cell).to_string(index=False)


def run(cfg: RunConfig, out: Path) -> None:
    """The `summarize` task: `summarize.dir=PATH` (a multirun sweep dir)."""
    raw = cfg.summarize.dir
    if not raw:
        raise SpecError("summarize.dir is required: the multirun sweep directory to collect, e.g. "
                        "summarize.dir=multirun/2026-01-01/12-00-00")
    root = Path(raw).expanduser()
    targets, how = common_targets(job_dirs(root), cfg.interactivity)
    table = collect(root, targets)
    print(f"{table['job'].nunique()} jobs under {root}")
    shown = ", ".join(f"{t:g}" for t in targets) if targets else "per job"
    print(f"targets (tok/s/user): {shown}: {how}")
    print(format_summary(table))
    for dest in {out, root}:
        tidy(table).to_csv(dest / "summary.csv", index=False)
        print(f"wrote {dest / 'summary.csv'}")
    curves = {j: pd.read_csv(root / j / "curves.csv") for j in table["job"].unique() if (root / j / "curves.csv").is_file()}
    print(f"report: {summarize_report(out, table, curves)}")
