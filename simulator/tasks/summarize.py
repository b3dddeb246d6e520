"""summarize: gather a multirun's per-job outputs into one table.

Each compare job writes `summary.json` (`write_summary`: its keys and the table rows, flattened) next to
curves.csv. `task=summarize summarize.dir=PATH` walks PATH, reads every job's summary.json (or, for a job
without one, the peak of each side in curves.csv), adds the job's Hydra overrides, prints one table and
writes summary.csv into the run dir and into PATH. A job that failed (error.txt) is listed with its error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from simulator.catalog import SpecError
from simulator.comparison import SHOWN
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


def collect(root: Path) -> pd.DataFrame:
    """One row per job x interactivity target under `root` (jobs: dirs with summary.json, curves.csv or
    error.txt, which the CLI writes for a job that failed in a multirun)."""
    if not root.is_dir():
        raise SpecError(f"summarize.dir: no such directory: {root}")
    jobs = sorted({p.parent for pat in ("summary.json", "curves.csv", "error.txt") for p in root.rglob(pat)})
    frames = []
    for job in jobs:
        base = {"job": str(job.relative_to(root)) or ".", "overrides": job_overrides(job)}
        summary, error = job / "summary.json", job / "error.txt"
        if error.is_file():
            base.update(job_keys(job))
            rows = [{"error": " ".join(error.read_text().split())}]
        elif summary.is_file():
            data = json.loads(summary.read_text())
            rows = data.pop("rows") or [{}]
            base.update({k: v for k, v in data.items() if k != "notes"})
            base["notes"] = " | ".join(data.get("notes") or [])
        else:
            base.update(job_keys(job))
            rows = rows_from_curves(job / "curves.csv")
        frames.append(pd.DataFrame([{**base, **r} for r in rows]))
    if not frames:
        raise SpecError(f"summarize.dir: no job outputs (summary.json or curves.csv) under {root}")
    return pd.concat(frames, ignore_index=True)


def format_summary(table: pd.DataFrame) -> str:
    extra = ("mtp_max_interactivity", "off_max_interactivity", "error")
    cols = [c for c in SHOWN if c in table] + [c for c in extra if c in table]
    return table[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}" if abs(v) < 1 else f"{v:,.1f}")


def run(cfg: RunConfig, out: Path) -> None:
    """The `summarize` task: `summarize.dir=PATH` (a multirun sweep dir)."""
    raw = cfg.summarize.dir
    if not raw:
        raise SpecError("summarize.dir is required: the multirun sweep directory to collect, e.g. "
                        "summarize.dir=multirun/2026-01-01/12-00-00")
    root = Path(raw).expanduser()
    table = collect(root)
    print(f"{table['job'].nunique()} jobs under {root}")
    print(format_summary(table))
    for dest in {out, root}:
        table.to_csv(dest / "summary.csv", index=False)
        print(f"wrote {dest / 'summary.csv'}")
    curves = {j: pd.read_csv(root / j / "curves.csv") for j in table["job"].unique() if (root / j / "curves.csv").is_file()}
    print(f"report: {summarize_report(out, table, curves)}")
