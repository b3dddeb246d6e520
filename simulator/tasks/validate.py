"""validate: predict each benchmark page with a calibration file (never fitting on it) and report errors.

Central values come from the same path as `compare` (benchmark deployments, Pareto front, Steffen spline at
the page's own targets, no extrapolation). The P10-P90 band samples the calibration's parameter covariance
(efficiency knobs and acceptance scale together) and the scatter of its page residuals (model error). Cross-validation refits without the held-out part.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simulator.catalog import load_calibration, read_yaml
from simulator.pages import Page, bundled_pages, load_page_file
from simulator.report_html import page_points, validate_report
from simulator.tasks.compare import CompareResult, run_compare
from simulator.tasks.setup import build_rates, build_scenario

SIDES = ("mtp", "off")
BAND_SAMPLES = 64


@dataclass
class PageValidation:
    page: Page
    compare: CompareResult
    points: list[dict[str, Any]] = field(default_factory=list)


def page_config(page: Page, cfg: dict[str, Any]) -> dict[str, Any]:
    return {**cfg, "model": read_yaml("model", page.model), "hardware": read_yaml("hardware", page.hardware),
            "workload": read_yaml("workload", page.workload), "precision": page.precision}


def _mapped_cov(space_names: list[str], names: list[str], z: np.ndarray, cov: np.ndarray) -> np.ndarray:
    from simulator.calibration.problem import PRIOR_SIGMA_Z

    idx = {n: i for i, n in enumerate(names)}
    acc = [i for i, n in enumerate(names) if n.startswith("acceptance_scale.")]
    acc_var = float(np.var(z[acc]) + np.mean(np.diag(cov)[acc])) if acc else PRIOR_SIGMA_Z**2
    out = np.zeros((len(space_names), len(space_names)))
    for a, na in enumerate(space_names):
        for b, nb in enumerate(space_names):
            if na in idx and nb in idx:
                out[a, b] = cov[idx[na], idx[nb]]
            elif a == b:
                out[a, b] = acc_var if na.startswith("acceptance_scale.") else PRIOR_SIGMA_Z**2
    return out


def bands(observations: list, calibration: dict[str, Any], samples: int = BAND_SAMPLES
          ) -> dict[tuple[str, float], tuple]:
    """(side, target) -> (P10, P50, P90) of predicted throughput over the calibration's uncertainty:
    parameter draws from its covariance, times the scatter of its page residuals (model error)."""
    from simulator.calibration.problem import Problem
    from simulator.calibration.store import fitted_z, map_z

    if not calibration.get("covariance_z") or not observations:
        return {}
    problem = Problem([], observations)
    names, z, cov = fitted_z(calibration)
    mean = map_z(problem.space, names, z)
    c = _mapped_cov(problem.space.names, names, z, cov)
    rng = np.random.default_rng(0)
    draws = rng.multivariate_normal(mean, c, size=samples, method="eigh")
    # model error beyond the parameters: the scatter of the calibration's own page residuals (log space)
    sigma_model = float((calibration.get("residuals_log_pct") or {}).get("pages", {}).get("sigma_log", 0.0))
    noise = np.exp(rng.normal(0.0, sigma_model, size=(samples, len(problem.pages))))
    preds = np.array([problem.predict(d) for d in draws]) * noise
    q = np.percentile(preds, [10, 50, 90], axis=0)
    return {(o.side, o.interactivity): tuple(q[:, j]) for j, o in enumerate(problem.pages)}


def pct(pred: float | None, meas: float) -> float | None:
    return None if pred is None else (pred / meas - 1.0) * 100.0


def validate_page(page: Page, cfg: dict[str, Any], calibration: dict[str, Any]) -> PageValidation:
    pcfg = page_config(page, cfg)
    sc = build_scenario(pcfg)
    rates, tier = build_rates(pcfg)
    keys = {"model": page.model, "hardware": page.hardware, "precision": page.precision, "workload": page.workload}
    result = run_compare(sc, keys, "benchmark", rates, tier, [p.interactivity for p in page.points])
    from simulator.calibration.data import page_observations

    band = bands(page_observations([page]), calibration)
    v = PageValidation(page, result)
    for p, row in zip(page.points, result.rows, strict=True):
        point: dict[str, Any] = {"interactivity": p.interactivity, "measured": {}, "predicted": {}, "band": {},
                                 "error_pct": {}}
        for side in SIDES:
            meas = getattr(p, side).tput_per_gpu
            pred = row[side]["tput_per_gpu"] if row[side] else None
            point["measured"][side] = meas
            point["predicted"][side] = pred
            b = band.get((side, p.interactivity))
            point["band"][side] = [b[0], b[2]] if b else None
            point["error_pct"][side] = pct(pred, meas)
        m, o = point["predicted"]["mtp"], point["predicted"]["off"]
        point["measured"]["gain"] = p.mtp.tput_per_gpu / p.off.tput_per_gpu
        point["predicted"]["gain"] = m / o if m and o else None
        point["error_pct"]["gain"] = pct(point["predicted"]["gain"], point["measured"]["gain"])
        point["predicted"]["cost_per_mtok"] = {s: row[s]["cost_per_mtok"] if row[s] else None for s in SIDES}
        point["predicted"]["tok_s_per_mw"] = {s: row[s]["tok_s_per_mw"] if row[s] else None for s in SIDES}
        point["measured"]["cost_per_mtok"] = {s: getattr(p, s).cost_per_mtok for s in SIDES}
        point["measured"]["tok_s_per_mw"] = {s: getattr(p, s).tok_s_per_mw for s in SIDES}
        point["direction_right"] = None if point["predicted"]["gain"] is None else (
            (point["predicted"]["gain"] > 1) == (point["measured"]["gain"] > 1))
        v.points.append(point)
    return v


def summary(validations: list[PageValidation]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("mtp", "off", "gain"):
        errs = [pt["error_pct"][key] for v in validations for pt in v.points if pt["error_pct"][key] is not None]
        missing = sum(pt["error_pct"][key] is None for v in validations for pt in v.points)
        if errs:
            a = np.abs(errs)
            out[key] = {"n": len(errs), "median_abs_pct": float(np.median(a)), "max_abs_pct": float(a.max()),
                        "bias_pct": float(np.mean(errs)), "not_reached": int(missing)}
    tput = [abs(pt["error_pct"][s]) for v in validations for pt in v.points for s in SIDES
            if pt["error_pct"][s] is not None]
    out["throughput_median_abs_pct"] = float(np.median(tput)) if tput else None
    dirs = [pt["direction_right"] for v in validations for pt in v.points]
    out["direction_right"] = f"{sum(d is True for d in dirs)}/{len(dirs)}"
    return out


def _f(x: float | None, fmt: str) -> str:
    return format(x, fmt) if x is not None else "-"


def format_validation(validations: list[PageValidation], summ: dict[str, Any]) -> str:
    head = (f"{'page':34s} {'tok/s/user':>10} | {'MTP meas':>8} {'pred':>7} {'P10-P90':>13} {'err':>6} | "
            f"{'Off meas':>8} {'pred':>7} {'P10-P90':>13} {'err':>6} | {'gain meas':>9} {'pred':>5}")
    lines = ["validation against the benchmark pages (throughput per GPU, tok/s)", head, "-" * len(head)]
    for v in validations:
        for pt in v.points:
            cells = []
            for s in SIDES:
                b = pt["band"][s]
                band = f"{b[0]:.0f}-{b[1]:.0f}" if b else "-"
                cells.append(f"{pt['measured'][s]:8.1f} {_f(pt['predicted'][s], '7.1f')} {band:>13} "
                             f"{_f(pt['error_pct'][s], '+5.0f') + '%' if pt['error_pct'][s] is not None else '-':>6}")
            lines.append(f"{v.page.source[:34]:34s} {pt['interactivity']:10.0f} | {cells[0]} | {cells[1]} | "
                         f"{pt['measured']['gain']:8.2f}x {_f(pt['predicted']['gain'], '4.2f') + 'x' if pt['predicted']['gain'] else '-':>5}")
    lines.append("summary: " + ", ".join(
        f"{k}: median {v['median_abs_pct']:.1f} % max {v['max_abs_pct']:.1f} % bias {v['bias_pct']:+.1f} %"
        for k, v in summ.items() if isinstance(v, dict)) + f"; MTP-vs-Off direction right {summ['direction_right']}")
    return "\n".join(lines)


def plot_page(v: PageValidation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    colors = {"mtp": "tab:blue", "off": "tab:orange"}
    for side, s in v.compare.sides.items():
        if not s.front.empty:
            ax.plot(s.front["interactivity"], s.front["tput_per_gpu"], "-", color=colors[side],
                    label=f"{side.upper()} predicted frontier")
        xs = [pt["interactivity"] for pt in v.points]
        ax.plot(xs, [pt["measured"][side] for pt in v.points], "s", color=colors[side], mec="k",
                label=f"{side.upper()} measured (page)")
        bands_ = [(pt["interactivity"], pt["band"][side]) for pt in v.points if pt["band"][side]]
        for x, (lo, hi) in bands_:
            ax.plot([x, x], [lo, hi], "-", color=colors[side], lw=6, alpha=0.3)
    ax.set(xlabel="interactivity (tok/s/user)", ylabel="throughput per GPU (tok/s)",
           title=f"{v.page.model} · {v.page.hardware} {v.page.precision} · {v.page.workload}: predicted vs measured")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load_pages(cfg: dict[str, Any]) -> list[Page]:
    paths = cfg.get("pages")
    if not paths:
        return bundled_pages()
    return [load_page_file(p) for p in ([paths] if isinstance(paths, str) else paths)]


def calibration_of(cfg: dict[str, Any]) -> dict[str, Any]:
    return load_calibration(cfg.get("calibration"))


def validate_all(cfg: dict[str, Any]) -> tuple[list[PageValidation], dict[str, Any]]:
    calibration = calibration_of(cfg)
    vals = [validate_page(p, cfg, calibration) for p in load_pages(cfg)]
    return vals, summary(vals)


def report_of(vals: list[PageValidation], summ: dict[str, Any]) -> dict[str, Any]:
    pages = [{"source": v.page.source, "model": v.page.model, "hardware": v.page.hardware,
              "precision": v.page.precision, "workload": v.page.workload,
              "points": [{"interactivity": pt["interactivity"],
                          "measured": {s: pt["measured"][s] for s in SIDES},
                          "predicted": {s: pt["predicted"][s] for s in SIDES},
                          "band_p10_p90": pt["band"], "error_pct": pt["error_pct"],
                          "gain": {"measured": pt["measured"]["gain"], "predicted": pt["predicted"]["gain"]},
                          "cost_per_mtok": {"measured": pt["measured"]["cost_per_mtok"],
                                            "predicted": pt["predicted"]["cost_per_mtok"]},
                          "tok_s_per_mw": {"measured": pt["measured"]["tok_s_per_mw"],
                                           "predicted": pt["predicted"]["tok_s_per_mw"]}}
                         for pt in v.points]} for v in vals]
    return {"pages": pages, "summary": summ}


def run(cfg: dict[str, Any], out: Path) -> None:
    from simulator.tasks.crossval import run_cv

    vals, summ = validate_all(cfg)
    print(format_validation(vals, summ))
    for v in vals:
        path = out / f"validate_{Path(v.page.source).stem}.png"
        plot_page(v, path)
    print(f"wrote {len(vals)} plots to {out}")
    report = report_of(vals, summ)
    cv = cfg.get("cv")
    if cv and cv != "none":
        report["cv"] = run_cv(cfg, cv)
    if cfg.get("report"):
        path = Path(cfg["report"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))
        print(f"wrote {path}")
    rates, tier = build_rates(cfg)
    sections = [{"source": v.page.source, "keys": v.compare.keys, "points": v.compare.points_frame(),
                 "rows": v.compare.rows, "checks": v.points, "measured": page_points([v.page]),
                 "usd_per_gpu_hour": rates.rate(v.page.hardware, tier), "all_in_kw": rates.all_in_kw(v.page.hardware)}
                for v in vals]
    print(f"report: {validate_report(out, sections, summ)}")
