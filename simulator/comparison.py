"""Comparison: predict the Off and MTP curves, take each side's frontier, read both at matched interactivity.

Mirrors how the benchmark pages are made (docs/sources.md#benchmark-methodology): Pareto front per side, Steffen spline
through it, targets at 25/50/75 % of the range both sides cover unless given; cost = rate / throughput.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.calibration.data import target_observations
from simulator.calibration.uncertainty import GAIN, bands
from simulator.economics import RateTable, cost_per_mtok, tok_s_per_mw
from simulator.evaluate import Curve, evaluate, point_breakdown
from simulator.frontier import Outside, default_targets, pareto_front, read_at
from simulator.scenario import Scenario
from simulator.search import Candidate, SearchMode, candidates, side_reason
from simulator.specs import Calibration
from simulator.specs.topology import NODE_GPUS
from simulator.specs.vocabulary import SIDES, CaseKey, Side

# what `CompareResult.search` says when search=benchmark found no recipe for a side and an open search priced it
FALLBACK = "open (fallback)"
CURVE_COLUMNS = list(Curve().frame().columns)


def infeasible_rows(side: Side, reason: str) -> pd.DataFrame:
    """The curves.csv row of a side that has no point at all: its reason, every column present."""
    row = {c: None for c in CURVE_COLUMNS}
    return pd.DataFrame([{**row, "side": side, "feasible": False, "infeasible_reason": reason}],
                        columns=CURVE_COLUMNS)


@dataclass
class SideResult:
    side: Side
    points: pd.DataFrame
    front: pd.DataFrame
    note: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    reason: str = ""  # why the side has no feasible point at all ("" when it has one)
    over_ttft: int = 0  # feasible points left off the frontier by max_ttft_s
    fallback: bool = False  # search=benchmark found no recipe for this side: an open search priced it instead

    @property
    def interactivity_range(self) -> tuple[float, float] | None:
        if self.front.empty:
            return None
        x = self.front["interactivity"]
        return float(x.min()), float(x.max())


@dataclass
class CompareResult:
    key: CaseKey
    sides: dict[Side, SideResult]
    targets: list[float]
    rows: list[dict[str, Any]] = field(default_factory=list)
    search: str = "benchmark"
    rate_usd_per_gpu_hour: float = float("nan")
    all_in_kw: float = float("nan")
    max_ttft_s: float | None = None  # the TTFT limit the fronts were taken under (None: none)
    open_engine: str = "sglang"  # the engine an open search (or its fallback) priced deployments on

    def report(self) -> dict[str, Any]:
        return {**self.key._asdict(), "search": self.search, "open_engine": self.open_engine, "points": self.rows}

    @property
    def feasible(self) -> bool:
        """Some side has a feasible point."""
        return any(not s.front.empty for s in self.sides.values())

    def points_frame(self) -> pd.DataFrame:
        """Every predicted point of both sides; a side without any point gives one row with its reason."""
        frames = [s.points if not s.points.empty else infeasible_rows(s.side, s.reason or s.note)
                  for s in self.sides.values()]
        return pd.concat(frames, ignore_index=True)


def front_of(frame: pd.DataFrame, max_ttft_s: float | None = None) -> pd.DataFrame:
    """Feasible points (within `max_ttft_s` when given) on the upper-left Pareto front of (interactivity,
    throughput), sorted."""
    keep = frame["feasible"] if max_ttft_s is None else frame["feasible"] & (frame["ttft_ms"] <= max_ttft_s * 1e3)
    ok = frame[keep].reset_index(drop=True)
    if ok.empty:
        return ok
    idx = pareto_front(ok["interactivity"].to_numpy(), ok["tput_per_gpu"].to_numpy())
    return ok.iloc[np.asarray(idx)].reset_index(drop=True)


def read_front(front: pd.DataFrame, targets: list[float], rate_usd_h: float, kw: float,
               outside: Outside = "null") -> list[dict[str, Any] | None]:
    """The side's figures at each target interactivity: Steffen spline through the front (frontier.read_at);
    outside the front None (`outside="null"`) or its edge, flagged `clamped` (`"clamp"`, as the pages do)."""
    if front.empty:
        return [None] * len(targets)
    x = front["interactivity"].to_numpy()
    reading = read_at(x, front["tput_per_gpu"].to_numpy(), targets, outside,
                      extra={"concurrency": front["concurrency"].to_numpy(dtype=float)})
    out: list[dict[str, Any] | None] = []
    for i, t in enumerate(targets):
        tput = float(reading.values[i])
        if not np.isfinite(tput):
            out.append(None)
            continue
        nearest = front.iloc[int(np.argmin(np.abs(x - t)))]
        # between two front points of different deployments the spline's concurrency is one nobody ran: None
        j = int(np.searchsorted(x, t))
        across = [str(front["deployment"].iloc[j - 1]), str(front["deployment"].iloc[j])] \
            if 0 < j < len(x) and x[j - 1] < t < x[j] and front["deployment"].iloc[j - 1] != front["deployment"].iloc[j] \
            else None
        ttft_ms = float(nearest["ttft_ms"]) if "ttft_ms" in front and pd.notna(nearest["ttft_ms"]) else None
        out.append({
            "tput_per_gpu": tput,
            "cost_per_mtok": float(cost_per_mtok(tput, rate_usd_h)),
            "tok_s_per_mw": float(tok_s_per_mw(tput, kw)),
            "concurrency": None if across else int(reading.extra["concurrency"][i]),
            "draft_tokens": int(nearest["draft_tokens"]),
            "deployment": str(nearest["deployment"]),
            "clamped": bool(reading.clamped[i]),
            "interpolated_between": across,  # the two deployments the read lies between (None: one only)
            "ttft_s": None if ttft_ms is None else ttft_ms / 1e3,  # of the nearest front point
            "throttled_by_prefill": bool(nearest["throttled_by_prefill"])
            if "throttled_by_prefill" in front and pd.notna(nearest["throttled_by_prefill"]) else None,
        })
    return out


def run_compare(sc: Scenario, key: CaseKey, search: SearchMode, rates: RateTable,
                tier: str = "hyperscaler", targets: list[float] | None = None,
                acceptance_scale: float | None = None, outside: Outside = "null",
                max_gpus: int | None = None, max_ttft_s: float | None = None) -> CompareResult:
    """Both sides' curves and fronts, read at `targets` (default: 25/50/75 % of the range both cover).

    `max_gpus` above one node also prices deployments beyond it within that GPU budget (search.candidates:
    the benchmark's multi-node rows, or every wide-EP / xPyD shape of the open search). `max_ttft_s`: points
    with a longer TTFT leave the frontier (counted in `SideResult.over_ttft`)."""
    sides: dict[Side, SideResult] = {}
    for side in SIDES:
        cands, note = candidates(sc, side, search, key.model, key.hardware, key.workload, max_gpus or NODE_GPUS)
        frame = evaluate(sc, cands, acceptance_scale).frame()
        front = front_of(frame, max_ttft_s) if not frame.empty else frame
        over = 0 if frame.empty or max_ttft_s is None else int(
            (frame["feasible"] & (frame["ttft_ms"] > max_ttft_s * 1e3)).sum())
        reason = "" if not front.empty else (
            _ttft_reason(max_ttft_s, over) or side_reason(sc, side, max_gpus or NODE_GPUS) or _points_reason(frame))
        fallback = search == "benchmark" and bool(note) and bool(cands)
        sides[side] = SideResult(side, frame, front, note, cands, reason, over, fallback)
    if targets is None:
        fronts = [s.front["interactivity"].to_numpy() for s in sides.values() if not s.front.empty]
        targets = default_targets(*fronts) if len(fronts) == 2 else []
    rate, kw = rates.rate(key.hardware, tier), rates.all_in_kw(key.hardware)
    searched = FALLBACK if any(s.fallback for s in sides.values()) else search
    result = CompareResult(key, sides, list(targets), search=searched, rate_usd_per_gpu_hour=rate,
                           all_in_kw=kw, max_ttft_s=max_ttft_s, open_engine=sc.serving.engine)
    readings = {side: read_front(sides[side].front, [float(t) for t in targets], rate, kw, outside)
                for side in SIDES}
    for i, t in enumerate(targets):
        result.rows.append({"interactivity": float(t), **{side: readings[side][i] for side in SIDES}})
    return result


def breakdown_at_targets(sc: Scenario, result: CompareResult, acceptance_scale: float | None = None
                         ) -> pd.DataFrame:
    """Predicted step time by term (ms; breakdown.TERMS) at each target, per side: the front point nearest the
    target (the one whose deployment and k the table reports). Columns: side, interactivity, term, ms."""
    rows: list[dict[str, Any]] = []
    for row in result.rows:
        for side in SIDES:
            s = result.sides[side]
            if not row[side] or s.front.empty:
                continue
            p = s.front.iloc[int(np.argmin(np.abs(s.front["interactivity"].to_numpy() - row["interactivity"])))]
            cand = next((c for c in s.candidates if c.deployment.label == p["deployment"]
                         and int(p["concurrency"]) in c.concurrencies
                         and (c.pinned_al is not None) == bool(p.get("acceptance_pinned", False))), None)
            if cand is None:
                continue
            parts = point_breakdown(sc, cand, int(p["concurrency"]), int(p["draft_tokens"]), acceptance_scale)
            rows += [{"side": side, "interactivity": row["interactivity"], "term": t, "ms": v} for t, v in parts.items()]
    return pd.DataFrame(rows, columns=["side", "interactivity", "term", "ms"])


def _ttft_reason(max_ttft_s: float | None, over: int) -> str:
    return f"every feasible point ({over}) has a TTFT above max_ttft_s={max_ttft_s:g} s" if over else ""


def ttft_note(result: CompareResult) -> str:
    """What max_ttft_s left off the fronts ("" without a limit)."""
    if result.max_ttft_s is None:
        return ""
    counts = ", ".join(f"{s.over_ttft} {s.side.upper()}" for s in result.sides.values())
    return f"max_ttft_s={result.max_ttft_s:g}: feasible points with a longer TTFT left the frontier ({counts})"


def _points_reason(frame: pd.DataFrame) -> str:
    """Why every evaluated point is infeasible: the most common reason."""
    if frame.empty:
        return "no candidate deployment"
    return str(frame["infeasible_reason"].mode().iloc[0]) or "no feasible point"


def add_bands(result: CompareResult, sc: Scenario, calibration: Calibration,
              acceptance_multiplier: float = 1.0, progress: bool = False) -> None:
    """P10/P90 of each side's throughput, and of the MTP/Off gain, at each target over the calibration's
    uncertainty (in place: `tput_per_gpu_p10` / `_p90` on a side, `gain_p10` / `gain_p90` on the row)."""
    cands = {s: r.candidates for s, r in result.sides.items() if r.candidates}
    if not cands or not result.targets:
        return
    band = bands(target_observations(sc, cands, result.targets), calibration,
                 acceptance_multiplier=acceptance_multiplier, max_ttft_s=result.max_ttft_s, progress=progress)
    for row in result.rows:
        for side in SIDES:
            b = band.get((side, row["interactivity"]))
            if row[side] and b:
                row[side]["tput_per_gpu_p10"], row[side]["tput_per_gpu_p90"] = float(b[0]), float(b[2])
        g = band.get((GAIN, row["interactivity"]))
        if row["mtp"] and row["off"] and g:
            row["gain_p10"], row["gain_p90"] = float(g[0]), float(g[2])


def format_table(result: CompareResult) -> str:
    k = result.key
    lines = [f"{k.model} on {k.hardware} {k.precision} {k.workload}: MTP vs Off at matched interactivity"]
    if result.search == FALLBACK:
        lines.append(f"  search: {FALLBACK}: the benchmark ran no recipe for this case; these figures predict "
                     "deployments nobody measured, not a page's")
    if result.search != "benchmark":
        lines.append(f"  open search on {result.open_engine} (serving.engine): its default CUDA-graph size and "
                     "token budget, its fitted compute efficiency")
    for s in result.sides.values():
        if s.note:
            lines.append(f"  note ({s.side}): {s.note}")
        if s.reason:
            lines.append(f"  infeasible ({s.side}): {s.reason}")
    if note := ttft_note(result):
        lines.append(f"  {note}")
    if not result.feasible:
        lines.append("  nothing feasible: no deployment within the GPU budget (max_gpus) fits this model on this GPU "
                     "at this precision" + (" within max_ttft_s" if result.max_ttft_s is not None else ""))
        return "\n".join(lines)
    if not result.rows:
        lines.append("  no interactivity range covered by both sides" + _reach(result))
        return "\n".join(lines)
    read = [r for r in result.rows if r["mtp"] or r["off"]]  # a target neither side reaches: the reach line
    if read:
        head = (f"{'tok/s/user':>10} | {'tok/s/GPU MTP':>13} {'P10-P90':>11} {'Off':>8} {'P10-P90':>11} "
                f"{'ratio':>6} {'P10-P90':>9} | {'$/M MTP':>8} {'Off':>7} | {'tok/s/MW MTP':>12} {'Off':>9} | "
                f"{'TTFT s MTP':>10} {'Off':>6} | {'conc MTP':>8} {'Off':>5} | {'k':>2}")
        lines += [head, "-" * len(head)]
        lines += [_table_row(r) for r in read]
    missed = [r["interactivity"] for r in result.rows if not (r["mtp"] and r["off"])]
    if missed:
        lines.append(f"  not reached at {', '.join(f'{t:g}' for t in missed)} tok/s/user:" + _reach(result))
    if any(r[s] and r[s].get("clamped") for r in read for s in SIDES):
        lines.append("  c: the target lies outside that side's predicted front: read at its edge, as the pages do "
                     "(read=page);" + _reach(result))
    if any(r[s] and r[s].get("interpolated_between") for r in read for s in SIDES):
        lines.append("  conc -: the target lies between two front points of different deployments (no single "
                     "concurrency ran there)")
    if any(r[s] and r[s].get("throttled_by_prefill") for r in read for s in SIDES):
        lines.append("  TTFT *: the nearest front point is throttled by prefill (requests queue for the prefill pool)")
    lines += [f"  {line}" for line in best_k_notes(result)]
    return "\n".join(lines)


def _reach(result: CompareResult) -> str:
    """' reachable: MTP 12.0-180.3, Off 10.1-120.4 tok/s/user' (the range each side's frontier covers)."""
    spans = [f"{ {'mtp': 'MTP', 'off': 'Off'}[s.side]} {r[0]:.1f}-{r[1]:.1f}" for s in result.sides.values()
             if (r := s.interactivity_range)]
    return " reachable " + ", ".join(spans) + " tok/s/user" if spans else ""


def best_k_notes(result: CompareResult) -> list[str]:
    """Which draft lengths the MTP frontier uses, and a warning when the best is the largest searched."""
    mtp = result.sides.get("mtp")
    if mtp is None or mtp.front.empty or not mtp.candidates:
        return []
    searched = sorted({k for c in mtp.candidates for k in c.draft_tokens})
    on_front = sorted({int(k) for k in mtp.front["draft_tokens"]})
    notes = [f"MTP frontier uses k = {', '.join(map(str, on_front))} (searched {', '.join(map(str, searched))})"]
    read = {r["mtp"]["draft_tokens"] for r in result.rows if r["mtp"]}
    if result.search != "benchmark" and len(searched) > 1 and max(searched) in (read or set(on_front)):
        notes.append(f"the best k is the largest searched ({max(searched)}): a larger k might be better still")
    return notes


def _cell(d: dict[str, Any] | None, key: str, fmt: str) -> str:
    """`d[key]` formatted, or "-" right-aligned to the same width when absent (no side, no value)."""
    width = int("".join(c for c in fmt.split(".")[0] if c.isdigit()) or 0)
    value = d.get(key) if d else None
    return format(value, fmt) if value is not None else "-".rjust(width)


def gain_band_text(lo: float | None, hi: float | None) -> str:
    """A gain's P10-P90 as every table prints it ("0.33-2.77"); "-" where there is none."""
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return "-"
    return f"{lo:.2f}-{hi:.2f}"


def _table_row(r: dict[str, Any]) -> str:
    m, o = r["mtp"], r["off"]
    ratio = f"{m['tput_per_gpu'] / o['tput_per_gpu']:.2f}x" if m and o else "-"
    gain_band = gain_band_text(r.get("gain_p10"), r.get("gain_p90"))

    def band(d: dict[str, Any] | None) -> str:
        return f"{d['tput_per_gpu_p10']:.0f}-{d['tput_per_gpu_p90']:.0f}" if d and "tput_per_gpu_p10" in d else "-"

    def ttft(d: dict[str, Any] | None, width: int) -> str:
        if not d or d.get("ttft_s") is None:
            return "-".rjust(width)
        return f"{d['ttft_s']:.3f}{'*' if d.get('throttled_by_prefill') else ''}".rjust(width)

    def tput(d: dict[str, Any] | None, width: int) -> str:  # c: read at the front's edge (read=page)
        if not d or d.get("tput_per_gpu") is None:
            return "-".rjust(width)
        return f"{d['tput_per_gpu']:.1f}{'c' if d.get('clamped') else ''}".rjust(width)

    return (f"{r['interactivity']:>10.0f} | {tput(m, 13)} {band(m):>11} "
            f"{tput(o, 8)} {band(o):>11} {ratio:>6} {gain_band:>9} | {_cell(m, 'cost_per_mtok', '8.3f')} "
            f"{_cell(o, 'cost_per_mtok', '7.3f')} | {_cell(m, 'tok_s_per_mw', '12.0f')} "
            f"{_cell(o, 'tok_s_per_mw', '9.0f')} | {ttft(m, 10)} {ttft(o, 6)} | {_cell(m, 'concurrency', '8d')} "
            f"{_cell(o, 'concurrency', '5d')} | {_cell(m, 'draft_tokens', '2d')}")


# ---- summary.json: the table as flat rows, for task=summarize ---------------------------------------------

FIGURES = ("tput_per_gpu", "cost_per_mtok", "tok_s_per_mw", "concurrency", "draft_tokens", "deployment", "ttft_s",
           "throttled_by_prefill", "clamped")
SHOWN = ["job", "model", "hardware", "precision", "workload", "interactivity", "mtp_tput_per_gpu",
         "off_tput_per_gpu", "mtp_gain", "mtp_cost_per_mtok", "off_cost_per_mtok", "mtp_draft_tokens"]


def summary_rows(result: CompareResult) -> list[dict[str, Any]]:
    """The compare table as flat rows: interactivity, then mtp_* / off_* figures and the MTP/Off ratio."""
    return flat_rows(result.rows)


def fronts_at(fronts: dict[str, pd.DataFrame], targets: list[float], rate: float, kw: float
              ) -> list[dict[str, Any]]:
    """Table rows ({interactivity, mtp: {...} | None, off: ...}) read from each side's front at `targets`."""
    readings = {side: read_front(fronts.get(side, pd.DataFrame()), [float(t) for t in targets], rate, kw)
                for side in SIDES}
    return [{"interactivity": float(t), **{side: readings[side][i] for side in SIDES}} for i, t in enumerate(targets)]


def flat_rows(table_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows flattened: interactivity, then mtp_* / off_* figures and the MTP/Off ratio."""
    rows = []
    for r in table_rows:
        row: dict[str, Any] = {"interactivity": r["interactivity"]}
        for side in SIDES:
            fig = r.get(side) or {}
            row.update({f"{side}_{k}": fig.get(k) for k in FIGURES})
        m, o = row["mtp_tput_per_gpu"], row["off_tput_per_gpu"]
        row["mtp_gain"] = m / o if m and o else None
        row["mtp_gain_p10"], row["mtp_gain_p90"] = r.get("gain_p10"), r.get("gain_p90")
        rows.append(row)
    return rows


def write_summary(result: CompareResult, out: Path) -> Path:
    """Write out/summary.json: {keys..., "notes": [...], "rows": [...]} (called by compare.run)."""
    notes = [f"{s.side}: {s.note}" for s in result.sides.values() if s.note]
    notes += [f"{s.side} infeasible: {s.reason}" for s in result.sides.values() if s.reason]
    notes += [n for n in (ttft_note(result),) if n]
    path = out / "summary.json"
    path.write_text(json.dumps({**result.key._asdict(), "search": result.search, "open_engine": result.open_engine,
                                "notes": notes, "feasible": result.feasible, "targets": result.targets,
                                "rate_usd_per_gpu_hour": result.rate_usd_per_gpu_hour, "all_in_kw": result.all_in_kw,
                                "rows": summary_rows(result)}, indent=2))
    return path
