"""calibrate: fit the efficiency knobs and acceptance scales; write conf/calibration/<name>.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.catalog import CONF_DIR, SpecError

DEFAULT_DATA_DIR = CONF_DIR / "measured"  # package data: conf/measured/SOURCE.md
SILICON, SWEEPS = "silicon_sample.csv", "glm5_8k1k_mtp_sweeps.csv"


def data_dir_of(cfg: dict[str, Any]) -> Path:
    d = Path((cfg.get("calibrate") or {}).get("data_dir") or DEFAULT_DATA_DIR)
    missing = [f for f in (SILICON, SWEEPS) if not (d / f).is_file()]
    if missing:
        raise SpecError(f"calibration data not found: {', '.join(str(d / f) for f in missing)}; "
                        "set calibrate.data_dir=PATH to the folder holding them")
    return d


def build_problem(data_dir: Path, pages: list | None = None, keep=None):
    """The full calibration problem (optionally only the observations `keep(obs)` accepts)."""
    from simulator.calibration.data import page_observations, silicon_observations, sweep_observations
    from simulator.calibration.problem import Problem
    from simulator.pages import modelled_pages

    points = silicon_observations(data_dir / SILICON) + sweep_observations(data_dir / SWEEPS)
    page_obs = page_observations(modelled_pages() if pages is None else pages)
    if keep is not None:
        points = [p for p in points if keep(p)]
        page_obs = [o for o in page_obs if keep(o)]
    return Problem(points, page_obs)


def format_fit(result: Any) -> str:
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


def run(cfg: dict[str, Any], out: Path) -> None:
    from simulator.calibration import store
    from simulator.calibration.fit import fit

    data_dir = data_dir_of(cfg)
    name = (cfg.get("calibrate") or {}).get("name") or "default"
    problem = build_problem(data_dir)
    print(f"fitting {len(problem.space.names)} parameters to {len(problem.points) + len(problem.pages)} "
          f"observations ({len(problem.cases)} deployments)...")
    result = fit(problem)
    print(format_fit(result))
    data = store.to_yaml_dict(name, result, {
        "silicon": f"{SILICON} (aiconfigurator silicon sample, Apache-2.0): single-node TPOT",
        "sweeps": f"{SWEEPS} (InferenceX blog tables): GLM-5 8k/1k MTP on/off",
        "pages": "conf/page_figures/*.yaml (InferenceX comparison pages)"})
    path = CONF_DIR / "calibration" / f"{name}.yaml"
    store.write(path, data)
    store.write(out / f"calibration_{name}.yaml", data)
    print(f"wrote {path}")
