"""Interactive HTML reports: one self-contained `report.html` per run (plotly, its JS inlined, no network).

Pure presentation. Each public function takes the run's frames and plain dicts, writes
`<run dir>/report.html` and returns its path: `compare_report`, `validate_report`, `plan_report`,
`sweep_report`, `summarize_report`. Charts carry every figure on hover and a toggle (plotly updatemenus)
between throughput per GPU, $/M tokens and tok/s/MW, computed with simulator.economics. Large inputs are
reduced before plotting (frontiers, each trace thinned to `MAX_TRACE_POINTS`), so a report stays a few MB.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from simulator.comparison import front_of
from simulator.economics import cost_per_mtok, tok_s_per_mw
from simulator.pages import Page
from simulator.specs.vocabulary import SIDES

__all__ = [
    "REPORT_NAME",
    "coarse_step_breakdown",
    "compare_report",
    "page_points",
    "plan_report",
    "summarize_report",
    "sweep_report",
    "validate_report",
]

REPORT_NAME = "report.html"
MAX_TRACE_POINTS = 300  # per trace: a frontier thinned evenly beyond this
POINT_BUDGET = 40_000  # points in one chart at most (~200 B each with hover data): a sweep's report < 20 MB
SIDE_LABEL = {"mtp": "MTP", "off": "Off"}
SIDE_COLOR = {"mtp": "#1f77b4", "off": "#ff7f0e"}
SIDE_DASH = {"mtp": "solid", "off": "dash"}
KEYS = ("model", "hardware", "precision", "workload")
METRIC_AXIS = {"tput_per_gpu": "throughput per GPU (tok/s, input + output)",
               "cost_per_mtok": "$ / M tokens (input + output)",
               "tok_s_per_mw": "tok/s per MW (all-in power)"}
METRIC_BUTTON = {"tput_per_gpu": "throughput", "cost_per_mtok": "$/M tokens", "tok_s_per_mw": "tok/s/MW"}
MEASURED_COLUMNS = ["source", "side", "interactivity", "tput_per_gpu", "cost_per_mtok", "tok_s_per_mw",
                    "concurrency"]
BREAKDOWN_COLUMNS = ["side", "interactivity", "term", "ms"]
# hover lines: (column, label, d3 format); a column absent from the frame is left out
POINT_HOVER = [("deployment", "deployment", ""), ("gpus", "GPUs", ""), ("concurrency", "concurrency", ""),
               ("draft_tokens", "k (draft tokens)", ""), ("acceptance_length", "AL (tokens/step)", ".2f"),
               ("step_ms", "step ms", ".2f"), ("ttft_ms", "TTFT ms", ".1f"), ("tpot_ms", "TPOT ms", ".2f"),
               ("interactivity", "tok/s/user", ".1f"), ("tput_per_gpu", "tok/s/GPU", ",.1f"),
               ("cost_per_mtok", "$/M tokens", ".3f"), ("tok_s_per_mw", "tok/s/MW", ",.0f")]
TARGET_HOVER = [("deployment", "deployment", ""), ("concurrency", "concurrency", ""),
                ("draft_tokens", "k (draft tokens)", ""), ("interactivity", "target tok/s/user", ".1f"),
                ("tput_per_gpu", "tok/s/GPU", ",.1f"), ("tput_per_gpu_p10", "P10", ",.1f"),
                ("tput_per_gpu_p90", "P90", ",.1f"), ("cost_per_mtok", "$/M tokens", ".3f"),
                ("tok_s_per_mw", "tok/s/MW", ",.0f"), ("clamped", "clamped", "")]
MEASURED_HOVER = [("source", "page", ""), ("interactivity", "tok/s/user", ".1f"),
                  ("tput_per_gpu", "tok/s/GPU", ",.1f"), ("cost_per_mtok", "$/M tokens", ".3f"),
                  ("tok_s_per_mw", "tok/s/MW", ",.0f"), ("concurrency", "concurrency", "")]
CSS = """body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1250px;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table.tbl{border-collapse:collapse;font-size:.82em;margin:.5em 0}
table.tbl th,table.tbl td{border:1px solid #ddd;padding:2px 6px;text-align:right}
table.tbl th{background:#f4f4f4}p.note{color:#555;font-size:.88em}"""


# ---- traces with one y per metric -----------------------------------------------------------------------------

@dataclass
class Chart:
    """Scatter traces and, for each, its y values per metric (what the metric toggle swaps in)."""

    metrics: tuple[str, ...]
    traces: list[go.Scatter] = field(default_factory=list)
    ys: list[dict[str, list[float | None]]] = field(default_factory=list)

    def add(self, frame: pd.DataFrame | Mapping[str, Any], hover: Sequence[tuple[str, str, str]] | None,
            **kw: Any) -> None:
        ys = {m: _list(frame[m]) if m in frame else [None] * len(frame["interactivity"]) for m in self.metrics}
        trace = go.Scatter(x=_list(frame["interactivity"]), y=ys[self.metrics[0]], **kw)
        if hover is not None:
            trace.customdata, trace.hovertemplate = _hover(frame, hover, kw.get("name", ""))
        self.traces.append(trace)
        self.ys.append(ys)

    def buttons(self, log_axes: Sequence[str] = ()) -> dict[str, Any]:
        """An updatemenus entry: one button per metric, swapping every trace's y and the y-axis title."""
        return dict(type="buttons", direction="right", x=0.0, xanchor="left", y=1.13, yanchor="bottom",
                    showactive=True, active=0, buttons=[
                        dict(label=METRIC_BUTTON[m], method="update",
                             args=[{"y": [y[m] for y in self.ys]},
                                   {"yaxis.title.text": METRIC_AXIS[m],
                                    "yaxis.type": "log" if m in log_axes else "linear"}])
                        for m in self.metrics])


def _list(values: Any) -> list[Any]:
    """Plain list, NaN/inf -> None (plotly leaves a gap)."""
    out = []
    for v in np.asarray(values, dtype=object).ravel():
        is_num = isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
        out.append(None if v is None or (is_num and not np.isfinite(float(v))) else
                   (float(v) if is_num else v))
    return out


def _hover(frame: pd.DataFrame | Mapping[str, Any], fields: Sequence[tuple[str, str, str]],
           name: str) -> tuple[list[list[Any]], str]:
    """customdata (one column per field present) and the matching hovertemplate."""
    present = [f for f in fields if f[0] in frame]
    columns = [_list(frame[c]) for c, _, _ in present]
    data = [list(row) for row in zip(*columns, strict=True)] if columns else []
    lines = [f"{label}: %{{customdata[{i}]{':' + fmt if fmt else ''}}}" for i, (_, label, fmt) in enumerate(present)]
    return data, "<br>".join(lines) + f"<extra>{html.escape(name)}</extra>"


def with_economics(frame: pd.DataFrame, usd_per_gpu_hour: Any, all_in_kw: Any) -> pd.DataFrame:
    """The frame plus $/M tokens and tok/s/MW of its `tput_per_gpu` (simulator.economics' formulas)."""
    tput = frame["tput_per_gpu"].astype(float).to_numpy()
    return frame.assign(cost_per_mtok=cost_per_mtok(tput, np.asarray(usd_per_gpu_hour, dtype=float)),
                        tok_s_per_mw=tok_s_per_mw(tput, np.asarray(all_in_kw, dtype=float)))


def thin(frame: pd.DataFrame, n: int = MAX_TRACE_POINTS) -> pd.DataFrame:
    """At most n rows, evenly spaced along the frame's order (first and last kept)."""
    if len(frame) <= n:
        return frame
    return frame.iloc[np.unique(np.linspace(0, len(frame) - 1, n).round().astype(int))]


def _layout(fig: go.Figure, title: str, chart: Chart | None = None, log_x: bool = False,
            log_axes: Sequence[str] = (), menus: Sequence[dict[str, Any]] = ()) -> go.Figure:
    first = chart.metrics[0] if chart else "tput_per_gpu"
    fig.update_layout(template="plotly_white", height=600, title=dict(text=html.escape(title), y=0.98),
                      margin=dict(t=110), hoverlabel=dict(align="left"),
                      xaxis=dict(title="interactivity (tok/s/user)", type="log" if log_x else "linear"),
                      yaxis=dict(title=METRIC_AXIS[first], type="log" if first in log_axes else "linear"),
                      updatemenus=[*([chart.buttons(log_axes)] if chart and len(chart.metrics) > 1 else []), *menus])
    return fig


# ---- HTML -----------------------------------------------------------------------------------------------------

def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "–"
        a = abs(v)
        return f"{v:,.0f}" if a >= 100 or float(v).is_integer() else f"{v:.2f}" if a >= 1 else f"{v:.3f}"
    return str(v)


def _table(frame: pd.DataFrame, caption: str = "") -> str:
    if frame.empty:
        return f"<p class='note'>{html.escape(caption)}: none</p>" if caption else ""
    cap = f"<p class='note'>{html.escape(caption)}</p>" if caption else ""
    return cap + frame.to_html(index=False, na_rep="–", float_format=_fmt, border=0, classes="tbl", escape=True)


def write_report(out: Path | str, title: str, parts: Sequence[str | go.Figure]) -> Path:
    """Write out/report.html: HTML fragments and figures in order; plotly.js is inlined once (first figure)."""
    body, js = [], True
    for i, part in enumerate(parts):
        if isinstance(part, go.Figure):
            body.append(part.to_html(full_html=False, include_plotlyjs=js, div_id=f"fig{i}",
                                     config={"displaylogo": False, "responsive": True}))
            js = False
        else:
            body.append(part)
    path = Path(out) / REPORT_NAME
    path.write_text("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>" + html.escape(title)
                    + f"</title><style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>\n"
                    + "\n".join(body) + "\n</body></html>\n", encoding="utf-8")
    return path


def _h2(text: str) -> str:
    return f"<h2>{html.escape(text)}</h2>"


def _note(text: str) -> str:
    return f"<p class='note'>{html.escape(text)}</p>"


# ---- compare / validate ---------------------------------------------------------------------------------------

def page_points(pages: Sequence[Page], keys: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The measured figures of the pages (those matching `keys`' model/hardware/precision/workload)."""
    rows = [{"source": page.source, "side": side, "interactivity": p.interactivity,
             **{c: getattr(getattr(p, side), c) for c in MEASURED_COLUMNS[3:]}}
            for page in pages if keys is None or all(str(getattr(page, k)) == str(keys[k]) for k in KEYS)
            for p in page.points for side in SIDES]
    return pd.DataFrame(rows, columns=MEASURED_COLUMNS)


def target_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (target, side) read off the frontiers; `clamped` from the row or the side's dict."""
    out = []
    for r in rows:
        for side in SIDES:
            d = r.get(side)
            if d:
                out.append({"interactivity": float(r["interactivity"]), "side": side, **d,
                            "clamped": bool(r.get("clamped") or d.get("clamped"))})
    frame = pd.DataFrame(out)
    if frame.empty:
        return frame
    off = frame[frame["side"] == "off"].set_index("interactivity")["tput_per_gpu"]
    gain = frame["tput_per_gpu"] / frame["interactivity"].map(off)
    return frame.assign(mtp_gain=gain.where(frame["side"] == "mtp"))


def coarse_step_breakdown(points: pd.DataFrame, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Fallback when no per-term breakdown is given: the step and the prefill stall charged to it
    (curve columns step_ms, prefill_stall_ms) at each side's frontier point nearest each target."""
    out = []
    for side in SIDES:
        front = front_of(points[points["side"] == side]) if not points.empty else points
        if front.empty:
            continue
        x = front["interactivity"].to_numpy()
        for r in rows:
            if r.get(side):
                p = front.iloc[int(np.argmin(np.abs(x - r["interactivity"])))]
                out += [{"side": side, "interactivity": float(r["interactivity"]), "term": term, "ms": float(p[col])}
                        for term, col in (("decode step (draft + verify)", "step_ms"),
                                          ("prefill stall per step", "prefill_stall_ms"))]
    return pd.DataFrame(out, columns=BREAKDOWN_COLUMNS)


def _bands(chart: Chart, targets: pd.DataFrame, side: str, usd: float, kw: float) -> None:
    if "tput_per_gpu_p10" not in targets:
        return
    t = targets[targets["side"] == side].dropna(subset=["tput_per_gpu_p10"])
    if t.empty:
        return
    seg = {"interactivity": [], "tput_per_gpu": []}
    for r in t.itertuples(index=False):
        seg["interactivity"] += [r.interactivity, r.interactivity, np.nan]
        seg["tput_per_gpu"] += [r.tput_per_gpu_p10, r.tput_per_gpu_p90, np.nan]
    chart.add(with_economics(pd.DataFrame(seg), usd, kw), None, name=f"{SIDE_LABEL[side]} P10-P90",
              mode="lines", hoverinfo="skip", opacity=0.3,
              line=dict(color=SIDE_COLOR[side], width=12))


def frontier_figure(title: str, points: pd.DataFrame, rows: Sequence[Mapping[str, Any]], usd_per_gpu_hour: float,
                    all_in_kw: float, measured: pd.DataFrame | None = None) -> go.Figure:
    """Both sides' predicted points and frontiers, targets (clamped ones marked), bands, measured points."""
    chart = Chart(("tput_per_gpu", "cost_per_mtok", "tok_s_per_mw"))
    targets = target_frame(rows)
    for side in SIDES:
        lab, color = SIDE_LABEL[side], SIDE_COLOR[side]
        mine = points[points["side"] == side] if not points.empty else points
        ok = mine[mine["feasible"].astype(bool)] if not mine.empty else mine
        if not ok.empty:
            ok = with_economics(ok.sort_values("interactivity"), usd_per_gpu_hour, all_in_kw)
            chart.add(ok, POINT_HOVER, name=f"{lab} points", mode="markers", legendgroup=side,
                      marker=dict(color=color, size=6, opacity=0.35))
            chart.add(with_economics(front_of(mine), usd_per_gpu_hour, all_in_kw), POINT_HOVER,
                      name=f"{lab} frontier", mode="lines+markers", legendgroup=side,
                      line=dict(color=color, width=2.5), marker=dict(size=5))
        t = targets[targets["side"] == side] if not targets.empty else targets
        if not t.empty:
            _bands(chart, targets, side, usd_per_gpu_hour, all_in_kw)
            for clamped, sub in t.groupby("clamped"):
                chart.add(sub, TARGET_HOVER, name=f"{lab} {'clamped ' if clamped else ''}targets",
                          mode="markers", legendgroup=side,
                          marker=dict(symbol="x-open" if clamped else "star", size=15, color=color,
                                      line=dict(color="black", width=1.5)))
        m = measured[measured["side"] == side] if measured is not None and not measured.empty else None
        if m is not None and not m.empty:
            chart.add(m, MEASURED_HOVER, name=f"{lab} measured (page)", mode="markers", legendgroup=side,
                      marker=dict(symbol="square", size=11, color=color, line=dict(color="black", width=1.5)))
    return _layout(go.Figure(chart.traces), title, chart)


def breakdown_figure(breakdown: pd.DataFrame, title: str) -> go.Figure:
    """Stacked bars of each step-time term at each target, MTP and Off side by side."""
    fig = go.Figure()
    for term, g in breakdown.groupby("term", sort=False):
        x = [[f"{v:.0f} tok/s/user" for v in g["interactivity"]], [SIDE_LABEL.get(s, s) for s in g["side"]]]
        fig.add_bar(x=x, y=g["ms"].to_numpy(dtype=float), name=str(term),
                    hovertemplate=f"{html.escape(str(term))}: %{{y:.3f}} ms<extra>%{{x}}</extra>")
    fig.update_layout(template="plotly_white", barmode="stack", height=430, title=html.escape(title),
                      yaxis_title="ms per step", xaxis_title="target interactivity · side")
    return fig


def _compare_parts(title: str, points: pd.DataFrame, rows: Sequence[Mapping[str, Any]], usd_per_gpu_hour: float,
                   all_in_kw: float, measured: pd.DataFrame | None, breakdown: pd.DataFrame | None
                   ) -> list[str | go.Figure]:
    parts: list[str | go.Figure] = [
        frontier_figure(title, points, rows, usd_per_gpu_hour, all_in_kw, measured),
        _note(f"Economics at ${usd_per_gpu_hour:g}/GPU-hour and {all_in_kw:g} kW all-in per GPU. Stars: the "
              "frontiers read at the target interactivities (x: clamped to a frontier's end); bars: P10-P90 "
              "over the calibration's uncertainty; squares: the benchmark page's measured figures.")]
    targets = target_frame(rows)
    if not targets.empty:
        cols = [c for c in ("interactivity", "side", "tput_per_gpu", "tput_per_gpu_p10", "tput_per_gpu_p90",
                            "mtp_gain", "cost_per_mtok", "tok_s_per_mw", "concurrency", "draft_tokens",
                            "deployment", "clamped") if c in targets]
        parts.append(_table(targets[cols], "Matched-interactivity targets"))
    coarse = breakdown is None
    bd = coarse_step_breakdown(points, rows) if coarse else breakdown
    if not bd.empty:
        parts.append(breakdown_figure(bd, "step time at each target, MTP vs Off"))
        if coarse:
            parts.append(_note("Coarse breakdown (no per-term breakdown given): the step and the prefill stall "
                               "charged to it at each side's frontier point nearest the target."))
    return parts


def _title(keys: Mapping[str, str]) -> str:
    return " · ".join(str(keys.get(k, "?")) for k in KEYS)


def compare_report(out: Path | str, keys: Mapping[str, str], points: pd.DataFrame,
                   rows: Sequence[Mapping[str, Any]], usd_per_gpu_hour: float, all_in_kw: float,
                   measured: pd.DataFrame | None = None, breakdown: pd.DataFrame | None = None) -> Path:
    """compare: `points` = every predicted point (evaluate.Curve columns), `rows` = the target rows
    ({"interactivity", "mtp": {...} | None, "off": ...}), `measured` = page_points(...),
    `breakdown` = (side, interactivity, term, ms) or None for the coarse fallback."""
    title = f"{_title(keys)}: MTP vs Off (predicted)"
    return write_report(out, title, _compare_parts(title, points, rows, usd_per_gpu_hour, all_in_kw, measured,
                                                   breakdown))


def _rows_with_bands(rows: Sequence[Mapping[str, Any]], checks: Sequence[Mapping[str, Any]]
                     ) -> list[dict[str, Any]]:
    """Rows with each side's P10-P90 from validate's per-target checks ({"band": {side: [p10, p90]}})."""
    out = []
    for r, c in zip(rows, checks, strict=True):
        row = dict(r)
        for side in SIDES:
            band = (c.get("band") or {}).get(side)
            if row.get(side) and band:
                row[side] = {**row[side], "tput_per_gpu_p10": band[0], "tput_per_gpu_p90": band[1]}
        out.append(row)
    return out


def _errors(checks: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{"interactivity": c["interactivity"],
                          **{f"{s}_{k}": c[k][s] for s in (*SIDES, "gain") for k in ("measured", "predicted",
                                                                                      "error_pct")}}
                         for c in checks])


def validate_report(out: Path | str, sections: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> Path:
    """validate: one compare section per page. Each section: source, keys, points, rows, usd_per_gpu_hour,
    all_in_kw, measured (page_points), checks (validate's per-target dicts: measured/predicted/band/error_pct)
    and optionally breakdown."""
    summ = pd.DataFrame([{"figure": k, **v} for k, v in summary.items() if isinstance(v, dict)])
    parts: list[str | go.Figure] = [
        _table(summ, f"Summary: MTP-vs-Off direction right {summary.get('direction_right', '-')}")]
    for s in sections:
        title = f"{s['source']}: {_title(s['keys'])}, predicted vs measured"
        parts.append(_h2(title))
        parts += _compare_parts(title, s["points"], _rows_with_bands(s["rows"], s["checks"]), s["usd_per_gpu_hour"],
                                s["all_in_kw"], s.get("measured"), s.get("breakdown"))
        parts.append(_table(_errors(s["checks"]), "Measured vs predicted (tok/s/GPU; error in %)"))
    return write_report(out, "validation against the benchmark pages", parts)


# ---- plan -----------------------------------------------------------------------------------------------------

def _option_label(gpu: str, precision: str, side: str) -> str:
    return f"{gpu} {precision} {'MTP' if side == 'mtp' else 'Off'}"


def plan_figure(points: pd.DataFrame, options: pd.DataFrame, table: pd.DataFrame, title: str) -> go.Figure:
    """$/M tokens (toggle: tok/s/MW, throughput) vs interactivity per option's frontier, cheapest per floor."""
    chart = Chart(("cost_per_mtok", "tok_s_per_mw", "tput_per_gpu"))
    gpus = list(dict.fromkeys(options["gpu"]))
    symbols = {"fp4": "circle", "fp8": "diamond", "bf16": "square"}
    for opt in options[options["reason"] == ""].itertuples(index=False):
        pts = points[(points["gpu"] == opt.gpu) & (points["precision"] == opt.precision)
                     & (points["side"] == opt.side)]
        if pts.empty:
            continue
        front = thin(with_economics(front_of(pts.assign(feasible=True)), opt.usd_per_gpu_hour, opt.all_in_kw))
        name = _option_label(opt.gpu, opt.precision, opt.side)
        chart.add(front, POINT_HOVER, name=name, mode="lines+markers", legendgroup=opt.gpu,
                  line=dict(color=qualitative.Plotly[gpus.index(opt.gpu) % 10], dash=SIDE_DASH[opt.side]),
                  marker=dict(size=4, symbol=symbols.get(opt.precision, "circle")))
    best = table[table["rank"] == 1].assign(option=lambda d: [_option_label(*r) for r in
                                                              d[["gpu", "precision", "side"]].itertuples(index=False)])
    if not best.empty:
        chart.add(best, [("floor", "floor tok/s/user", ""), ("option", "cheapest", ""), *POINT_HOVER,
                         ("gpus_needed", "GPUs for the demand", ""), ("mw", "MW", ".2f")],
                  name="cheapest per floor", mode="markers",
                  marker=dict(symbol="star", size=18, color="gold", line=dict(color="black", width=1.5)))
    fig = _layout(go.Figure(chart.traces), title, chart, log_axes=("cost_per_mtok",))
    for floor in sorted(table["floor"].unique()):
        fig.add_vline(x=float(floor), line=dict(color="gray", dash="dot", width=1))
    return fig


def _infeasible(table: pd.DataFrame) -> pd.DataFrame:
    bad = table[~table["feasible"].astype(bool)]
    if bad.empty:
        return pd.DataFrame(columns=["gpu", "precision", "side", "floors", "reason"])
    return (bad.groupby(["gpu", "precision", "side", "reason"], sort=False)["floor"]
            .agg(lambda f: ", ".join(f"{v:g}" for v in sorted(f))).rename("floors").reset_index()
            [["gpu", "precision", "side", "floors", "reason"]])


def plan_report(out: Path | str, points: pd.DataFrame, options: pd.DataFrame, table: pd.DataFrame,
                title: str, top: int = 10) -> Path:
    """plan: points/options as plan.collect_options gives them, `table` = plan.rank_options' output."""
    shown = ["floor", "rank", "gpu", "precision", "side", "draft_tokens", "deployment", "concurrency",
             "interactivity", "tput_per_gpu", "mtp_gain", "mtp_gain_p10", "mtp_gain_p90", "cost_per_mtok",
             "tok_s_per_mw", "gpus_needed", "mw"]
    ranked = table[table["feasible"].astype(bool)]
    parts: list[str | go.Figure] = [
        plan_figure(points, options, table, title),
        _note("Each option's frontier (MTP solid, Off dashed; marker: precision); dotted lines: the floors; "
              "stars: the cheapest option per floor."),
        _h2("Cheapest per floor"), _table(ranked[ranked["rank"] == 1][shown]),
        _h2(f"Ranked options (top {top} per floor)"),
        _table(ranked.groupby("floor", sort=True).head(top)[shown]),
        _h2("Infeasible options"), _table(_infeasible(table), "Options that cannot serve a floor, and why")]
    return write_report(out, title, parts)


# ---- sweep ----------------------------------------------------------------------------------------------------

def sweep_figure(frame: pd.DataFrame, all_in_kw: Mapping[str, float] | None = None) -> go.Figure:
    """Frontiers of every (model, GPU) with a dropdown selecting one; precision x workload x side traces."""
    kw = frame["hardware"].map(dict(all_in_kw or {})).astype(float)
    frame = frame.assign(tok_s_per_mw=tok_s_per_mw(frame["tput_per_gpu"].astype(float), kw))
    chart = Chart(("tput_per_gpu", "cost_per_mtok", "tok_s_per_mw"))
    n_traces = max(1, len(frame.groupby(["model", "hardware", "precision", "workload", "side"])))
    per_trace = max(20, min(MAX_TRACE_POINTS, POINT_BUDGET // n_traces))
    owner: list[tuple[str, str]] = []
    for (model, hw), g in frame.groupby(["model", "hardware"], sort=True):
        for i, ((precision, wl), h) in enumerate(g.groupby(["precision", "workload"], sort=True)):
            for side in ("mtp", "off"):
                f = thin(h[h["side"] == side].sort_values("interactivity"), per_trace)
                if f.empty:
                    continue
                chart.add(f, POINT_HOVER, name=f"{precision} {wl} {SIDE_LABEL[side]}", mode="lines+markers",
                          visible=not owner or owner[0] == (model, hw),
                          line=dict(color=qualitative.Plotly[i % 10], dash=SIDE_DASH[side]), marker=dict(size=4))
                owner.append((model, hw))
    groups = list(dict.fromkeys(owner))
    selector = dict(type="dropdown", x=1.0, xanchor="right", y=1.13, yanchor="bottom", active=0, buttons=[
        dict(label=f"{m} · {h}", method="update",
             args=[{"visible": [o == (m, h) for o in owner]}, {"title.text": f"{m} on {h}: frontiers"}])
        for m, h in groups])
    title = f"{groups[0][0]} on {groups[0][1]}: frontiers" if groups else "no frontier"
    return _layout(go.Figure(chart.traces), title, chart, log_x=True,
                   log_axes=("tput_per_gpu", "cost_per_mtok", "tok_s_per_mw"), menus=[selector])


def sweep_report(out: Path | str, frame: pd.DataFrame, all_in_kw: Mapping[str, float] | None = None) -> Path:
    """sweep: the binned frontiers (sweep.frontier_frame's columns); `all_in_kw` per GPU for tok/s/MW."""
    keys = ["model", "hardware", "precision", "workload", "side"]
    if frame.empty:
        return write_report(out, "sweep: no frontier", [_note("The sweep found no feasible point.")])
    peaks = frame.loc[frame.groupby(keys)["tput_per_gpu"].idxmax()]
    parts: list[str | go.Figure] = [
        sweep_figure(frame, all_in_kw),
        _note("Pick a model and GPU in the dropdown; MTP solid, Off dashed. Frontiers, not raw points: each is "
              "the sweep's Pareto front of its interactivity bins, thinned evenly to keep the report small "
              f"(at most {MAX_TRACE_POINTS} points per trace, {POINT_BUDGET:,} in all)."),
        _h2("Peak throughput per model, GPU, precision, workload and side"),
        _table(peaks[[c for c in (*keys, "tput_per_gpu", "interactivity", "cost_per_mtok", "deployment",
                                  "concurrency", "draft_tokens") if c in peaks]])]
    return write_report(out, f"sweep: {frame['model'].nunique()} model(s) x {frame['hardware'].nunique()} GPU(s)",
                        parts)


# ---- summarize ------------------------------------------------------------------------------------------------

def summarize_figure(table: pd.DataFrame, curves: Mapping[str, pd.DataFrame]) -> go.Figure:
    """Every job's frontiers (from its curves.csv) and its matched-interactivity targets."""
    chart = Chart(("tput_per_gpu",))
    jobs = list(dict.fromkeys(table["job"]))
    for j, job in enumerate(jobs):
        color = qualitative.Plotly[j % 10]
        frame = curves.get(job)
        rows = table[table["job"] == job]
        first = rows.iloc[0]
        label = " ".join([str(job), *(str(first[k]) for k in KEYS if k in rows and pd.notna(first[k]))])
        for side in SIDES:
            if frame is not None and "feasible" in frame:
                front = thin(front_of(frame[frame["side"] == side]))
                if not front.empty:
                    chart.add(front, POINT_HOVER, name=f"{label} {SIDE_LABEL[side]}", mode="lines+markers",
                              legendgroup=job, line=dict(color=color, dash=SIDE_DASH[side]), marker=dict(size=4))
            col = f"{side}_tput_per_gpu"
            if col in rows and "interactivity" in rows:
                t = rows.dropna(subset=["interactivity", col]).rename(columns={col: "tput_per_gpu"})
                if not t.empty:
                    chart.add(t, [("job", "job", ""), ("overrides", "overrides", ""),
                                  ("interactivity", "tok/s/user", ".1f"), ("tput_per_gpu", "tok/s/GPU", ",.1f")],
                              name=f"{label} {SIDE_LABEL[side]} targets", mode="markers", legendgroup=job,
                              marker=dict(symbol="star", size=12, color=color, line=dict(color="black", width=1)))
    return _layout(go.Figure(chart.traces), "every job's frontiers (MTP solid, Off dashed) and targets", chart)


def summarize_report(out: Path | str, table: pd.DataFrame, curves: Mapping[str, pd.DataFrame] | None = None) -> Path:
    """summarize: summarize.collect's table (one row per job x target) and each job's curves.csv by job."""
    return write_report(out, f"multirun summary: {table['job'].nunique()} jobs",
                        [summarize_figure(table, curves or {}), _table(table, "One row per job and target")])
