"""calibrate: fit the efficiency knobs and acceptance scales; write calibration_<name>.yaml into the run dir
(and, with calibrate.install=true, install it as conf/calibration/<name>.yaml: `calibration=<name>`), beside
residuals.csv (every observation at the fit), speedups.csv (the measured sweeps' MTP/Off speed-up) and,
cross-validated, cross_validation.csv (the held-out targets)."""

from __future__ import annotations

import time
from pathlib import Path

from simulator.calibration import store
from simulator.calibration.crossval import run_cv, write_targets_csv
from simulator.calibration.dataset import ATOM_CI, SILICON, SWEEPS, build_problem, data_dir_of
from simulator.calibration.fit import FitResult, fit, write_residuals_csv
from simulator.calibration.speedup import format_speedups, write_speedups_csv
from simulator.catalog import CONF_DIR
from simulator.runconfig import RunConfig
from simulator.validation import load_pages


def format_fit(result: FitResult) -> str:
    lines = [f"{'parameter':45s} {'value':>10s}   sigma"]
    lines += [f"{n:45s} {result.values[n]:10.4g} ± {result.sigma[n]:.3g}" for n in result.names]
    lines.append("residuals (|predicted/measured - 1|):")
    for d, s in result.residuals.items():
        lines.append(f"  {d:12s} n={s['n']:5d}  median {s['median_abs_pct']:5.1f} %  max {s['max_abs_pct']:6.1f} %"
                     f"  bias {s['bias_pct']:+6.1f} %")
    if result.transferred:
        lines.append("no data, knobs transferred from their family: "
                     + ", ".join(f"{h} <- {f}" for h, f in sorted(result.transferred.items())))
    return "\n".join(lines)


# one build + fit of the full problem on this project's 2-core CPU (measured 15-30 s with the one evaluation
# path and 34 parameters; each cross-validation refit builds and fits a problem of nearly the same size, ~25 s,
# about 350 s for the 13 pages): the estimate printed before anything runs
FIT_SECONDS_2_CORES = 30.0


def minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def estimate_line(refits: int, cross_validate: bool, fit_s: float = FIT_SECONDS_2_CORES, measured: bool = False
                  ) -> str:
    """What calibrate will run and roughly how long: one fit, then (cross_validate) one refit per page."""
    each = f"the fit took {minutes(fit_s)}" if measured else f"a fit takes ~{minutes(fit_s)} on 2 CPU cores"
    if not cross_validate:
        return f"calibrate: one fit ({each}); cross-validation skipped (calibrate.cross_validate=false)"
    return (f"calibrate: {'then ' if measured else 'one fit, then '}{refits} leave-one-page-out refits for the "
            f"bands' model error ({each}): ~{minutes(fit_s * (refits + (not measured)))} "
            f"{'left' if measured else 'in all'}; calibrate.cross_validate=false skips the refits")


def run(cfg: RunConfig, out: Path) -> None:
    data_dir = data_dir_of(cfg.calibrate.data_dir)  # fail fast: data and pages checked before the fit
    pages = load_pages(cfg)
    name = cfg.calibrate.name
    print(estimate_line(len(pages), cfg.calibrate.cross_validate), flush=True)
    start = time.perf_counter()
    problem = build_problem(data_dir, pages)
    print(f"fitting {len(problem.space.names)} parameters to {len(problem.points) + len(problem.pages)} "
          f"observations ({len(problem.cases)} deployments)...", flush=True)
    result = fit(problem)
    fit_s = time.perf_counter() - start
    print(format_fit(result))
    print(f"wrote {write_residuals_csv(result.observations, out / 'residuals.csv')} (every observation at the fit, "
          "worst first)")
    if speedups := format_speedups(result.speedups):
        print(speedups)
    print(f"wrote {write_speedups_csv(result.speedups, out / 'speedups.csv')} (the measured sweeps' MTP/Off "
          "speed-up by concurrency)")
    if cfg.calibrate.cross_validate:
        refits = len({o.page for o in problem.pages})
        print(estimate_line(refits, True, fit_s, measured=True), flush=True)
    data = store.to_yaml_dict(name, result, {
        "silicon": f"{SILICON} (aiconfigurator silicon sample, Apache-2.0): single-node TPOT",
        "sweeps": f"{SWEEPS} (InferenceX blog tables): GLM-5 8k/1k MTP on/off",
        "atom_ci": f"{ATOM_CI} (ATOM's CI dashboard, MIT): DeepSeek-R1 / V4-Pro on MI355X, MTP on/off",
        "pages": "conf/page_figures/*.yaml (InferenceX comparison pages)"})
    if cfg.calibrate.cross_validate:  # the held-out residual spread is the bands' model error
        cv = run_cv(data_dir, "leave_one_page_out", pages)
        data["calibration"]["cross_validation"] = {
            "mode": cv["mode"], "page_sigma_log": round(cv["page_sigma_log"], 6),
            "gain_sigma_log": None if cv.get("gain_sigma_log") is None else round(cv["gain_sigma_log"], 6),
            "summary": cv["summary"]}
        if cv.get("targets"):
            print(f"wrote {write_targets_csv(cv['targets'], out / 'cross_validation.csv')} (held-out targets)")
    result_path = out / f"calibration_{name}.yaml"
    store.write(result_path, data)
    print(f"wrote {result_path}")
    if cfg.calibrate.install:
        path = CONF_DIR / "calibration" / f"{name}.yaml"
        store.write(path, data)
        print(f"installed {path} (select it with calibration={name})")
    else:
        print(f"not installed: add calibrate.install=true to make it conf/calibration/{name}.yaml")
