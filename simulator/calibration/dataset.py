"""The calibration's measured data: where it lives and the full problem built from it.

Files (read only when calibrating or cross-validating): the silicon sample, the GLM-5 MTP sweeps and ATOM's
CI MTP sweeps in
`data_dir` (default: the copy shipped in conf/measured), and the benchmark pages.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.calibration.data import (
    atom_ci_observations,
    page_observations,
    silicon_observations,
    sweep_observations,
)
from simulator.calibration.problem import Problem
from simulator.catalog import CONF_DIR, SpecError
from simulator.pages import Page, modelled_pages

DEFAULT_DATA_DIR = CONF_DIR / "measured"  # package data: conf/measured/SOURCE.md
SILICON, SWEEPS, ATOM_CI = "silicon_sample.csv", "glm5_8k1k_mtp_sweeps.csv", "atom_ci_mtp_sweeps.csv"
MEASURED = (SILICON, SWEEPS, ATOM_CI)
# the columns each measured file must have (read by calibration/data.py)
COLUMNS = {
    SILICON: ("id", "silicon_data_source", "backend", "model_path", "system", "precision", "mode", "isl", "osl",
              "batch_size", "tp_size", "pp_size", "attention_dp_size", "moe_ep_size", "silicon_tpot_ms"),
    SWEEPS: ("hardware", "precision", "tp", "ep", "spec", "isl", "osl", "concurrency", "tput_per_gpu",
             "interactivity"),
    ATOM_CI: ("model", "hardware", "precision", "engine", "tp", "ep", "spec", "k", "isl", "osl", "concurrency",
              "total_tok_s", "mean_tpot_ms"),
}


def check_columns(path: Path) -> None:
    """A measured CSV that lacks a column the calibration reads: a SpecError naming the file and columns."""
    try:
        have = set(pd.read_csv(path, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise SpecError(f"calibration data {path}: not a readable CSV ({e})") from None
    missing = [c for c in COLUMNS[path.name] if c not in have]
    if missing:
        raise SpecError(f"calibration data {path}: missing column(s) {', '.join(missing)}; "
                        f"expected: {', '.join(COLUMNS[path.name])}")


def data_dir_of(data_dir: str | Path | None) -> Path:
    """The folder holding the measured CSVs (`calibrate.data_dir`, default DEFAULT_DATA_DIR), checked."""
    d = Path(data_dir or DEFAULT_DATA_DIR)
    missing = [f for f in MEASURED if not (d / f).is_file()]
    if missing:
        raise SpecError(f"calibration data not found: {', '.join(str(d / f) for f in missing)}; "
                        "set calibrate.data_dir=PATH to the folder holding them")
    for f in MEASURED:
        check_columns(d / f)
    return d


def build_problem(data_dir: Path, pages: list[Page] | None = None,
                  keep: Callable[[Any], bool] | None = None) -> Problem:
    """The full calibration problem (optionally only the observations `keep(obs)` accepts)."""
    points = (silicon_observations(data_dir / SILICON) + sweep_observations(data_dir / SWEEPS)
              + atom_ci_observations(data_dir / ATOM_CI))
    page_obs = page_observations(modelled_pages() if pages is None else pages)
    if keep is not None:
        points = [p for p in points if keep(p)]
        page_obs = [o for o in page_obs if keep(o)]
    return Problem(points, page_obs)
