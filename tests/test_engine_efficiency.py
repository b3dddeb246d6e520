"""An engine's compute efficiency (specs.EngineEfficiency): one factor on the compute fraction, priced by the
one evaluation path for a case on that engine, fitted by the calibration problem as the scenario prices it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import scenario
from simulator.batched import Case, lower_cases
from simulator.calibration.data import PointObs
from simulator.calibration.problem import Problem
from simulator.calibration.store import map_z
from simulator.knobs import KNOB_NAMES
from simulator.specs import Calibration, EfficiencyKnobs, EngineEfficiency

FACTORS = EngineEfficiency(trt=1.3, vllm=0.8)


def test_a_case_on_an_engine_runs_with_its_compute_fraction_only() -> None:
    sc = scenario("glm5", "b200", "fp4", knobs=EfficiencyKnobs(compute_fraction=0.5), engine_efficiency=FACTORS)
    dep = sc.deployment(tp=4)
    batch = lower_cases([Case(sc, dep, engine=e) for e in ("sglang", "any", "trt", "trtllm", "vllm", "atom")])
    cf = KNOB_NAMES.index("compute_fraction")
    assert batch.knobs[:, cf].tolist() == pytest.approx([0.5, 0.5, 0.65, 0.65, 0.4, 0.5])
    others = [i for i in range(len(KNOB_NAMES)) if i != cf]
    assert torch.equal(batch.knobs[:, others], batch.knobs[:1, others].expand(6, -1))  # nothing else moves
    # a factor that would take the fraction past 1 stops at 1
    hot = scenario("glm5", "b200", "fp4", knobs=EfficiencyKnobs(compute_fraction=0.9), engine_efficiency=FACTORS)
    assert Case(hot, dep, engine="trt").knob_tensors.compute_fraction.item() == 1.0


def test_an_unknown_engine_is_a_clear_error() -> None:
    sc = scenario()
    with pytest.raises(ValueError, match="unknown engine 'tgi'; known: sglang, vllm, trt, atom"):
        Case(sc, sc.deployment(tp=4), engine="tgi")
    with pytest.raises(ValueError, match="tgi"):
        Calibration.of({"engine_compute_efficiency": {"tgi": 1.2}})
    with pytest.raises(ValueError, match="trt"):
        Calibration.of({"engine_compute_efficiency": {"trt": -1.0}})


def test_the_fit_prices_an_engine_as_the_scenario_does() -> None:
    """The calibration problem's trial factor (z) and a scenario carrying the same factor price every point
    identically: what is fitted is what compare and validate then use."""
    knobs = EfficiencyKnobs()  # the fit's prior knobs, so only the engine factor differs between the two
    plain = scenario("glm5", "b200", "fp4", knobs=knobs)
    carried = scenario("glm5", "b200", "fp4", knobs=knobs, engine_efficiency=FACTORS)

    def problem(sc):  # noqa: ANN001, ANN202
        obs = [PointObs("x", Case(sc, sc.deployment(tp=tp), with_draft=mtp, engine=e), c, 3 if mtp else 0,
                        "tput_per_gpu", 1.0, f"{e}/{tp}/{c}")
               for e in ("sglang", "trt", "vllm") for tp in (4, 8) for mtp in (False, True) for c in (1, 64, 512)]
        return Problem(obs, [])

    fit_side, priced_side = problem(plain), problem(carried)
    assert fit_side.space.engines == ("vllm", "trt")
    z = map_z(fit_side.space, ["engine_efficiency.trt", "engine_efficiency.vllm"], np.log([1.3, 0.8]))
    trial, priced = fit_side.predict(z), priced_side.predict()
    np.testing.assert_allclose(trial, priced, rtol=1e-12)
    reference = fit_side.predict(fit_side.space.prior())
    assert not np.allclose(trial, reference)  # the factor does move compute-bound points
    assert math.isclose(fit_side.space.value("engine_efficiency.trt", float(np.log(1.3))), 1.3)


@pytest.mark.parametrize(("engine", "graph", "tokens_counted", "budget"),
                         [("sglang", 512, False, None), ("trt", 128, False, 8192), ("vllm", 512, True, 8192)])
def test_the_open_search_runs_on_the_configured_engine(engine: str, graph: int, tokens_counted: bool,
                                                       budget: int | None) -> None:
    """`serving.engine` puts the open search's deployments on that engine: its default limits and its fitted
    compute efficiency (the default calibration's)."""
    from simulator.cli import compose
    from simulator.evaluate import candidate_cases
    from simulator.search import candidates

    cfg = compose(["model=glm5", "hardware=b200", "precision=fp4", f"serving.engine={engine}"])
    sc = cfg.scenario()
    cands, _ = candidates(sc, "off", "open", "", "", "")
    cases, _ = candidate_cases([(sc, c) for c in cands])
    assert {c.engine for c in cases} == {engine}
    tp8 = next(c for c in cases if c.deployment.tp == 8 and not c.deployment.dp_attention)
    assert (tp8.limits.cuda_graph_max_batch, tp8.limits.cuda_graph_counts_tokens, tp8.limits.max_num_tokens) == (
        graph, tokens_counted, budget)
    assert tp8.limits.max_running_requests == sc.serving.max_running_requests
    factor = cfg.calibration.engine_compute_efficiency.compute_factor(engine)
    base = sc.knobs.compute_fraction  # type: ignore[union-attr]
    assert tp8.knob_tensors.compute_fraction.item() == pytest.approx(min(1.0, base * factor))


def test_an_unknown_serving_engine_names_the_allowed_ones() -> None:
    from simulator.catalog import SpecError
    from simulator.cli import compose

    with pytest.raises((SpecError, ValueError), match=r"serving.*engine.*sglang.*vllm.*trt.*atom"):
        compose(["serving.engine=tgi"])



def test_compare_says_which_engine_an_open_search_priced(tmp_path: Path) -> None:
    """The table and summary.json name the open search's engine (and a benchmark search does not claim one)."""
    import json

    from simulator.cli import compose
    from simulator.comparison import format_table, run_compare, write_summary

    cfg = compose(["model=llama3_3_70b", "hardware=h200", "precision=fp8", "search=open", "serving.engine=vllm"])
    result = run_compare(cfg.scenario(), cfg.key, cfg.search, cfg.rates, cfg.rate_tier, [40.0])
    assert "open search on vllm (serving.engine)" in format_table(result)
    assert json.loads(write_summary(result, tmp_path).read_text())["open_engine"] == "vllm"


def test_a_measured_row_on_an_unknown_engine_is_a_clear_error(tmp_path: Path) -> None:
    """A silicon row of a model and GPU the catalog prices, on an engine it does not know, stops the fit with
    the file, the row and the allowed engines (instead of a row silently left out)."""
    import csv

    from simulator.calibration.data import SILICON_MODELS, silicon_observations
    from simulator.calibration.dataset import DEFAULT_DATA_DIR
    from simulator.catalog import SpecError

    rows = list(csv.reader((DEFAULT_DATA_DIR / "silicon_sample.csv").open()))
    head = rows[0]
    row = next(r for r in rows[1:] if r[head.index("mode")] == "agg" and r[head.index("model_path")] in SILICON_MODELS)
    row[head.index("backend")] = "tgi"
    path = tmp_path / "silicon.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([head, row])
    with pytest.raises(SpecError, match=r"silicon.csv: row .*: backend: unknown engine 'tgi'; known: sglang"):
        silicon_observations(path)


def test_atom_ci_sweeps_load_at_atom_defaults_with_their_own_metrics() -> None:
    """ATOM's CI MTP on/off sweeps (conf/measured/atom_ci_mtp_sweeps.csv): every row is a feasible point of its
    own dataset, read at ATOM's default limits, interactivity 1000 / mean TPOT and throughput per GPU from the
    whole server's input + output tokens over its TP GPUs."""
    import pandas as pd

    from simulator.calibration.data import atom_ci_observations
    from simulator.calibration.dataset import ATOM_CI, DEFAULT_DATA_DIR

    path = DEFAULT_DATA_DIR / ATOM_CI
    df = pd.read_csv(path)
    obs = atom_ci_observations(path)
    assert len(obs) == 2 * len(df) and {o.dataset for o in obs} == {"atom_ci"}
    assert {o.case.engine for o in obs} == {"atom"}
    assert {(o.limits.cuda_graph_max_batch, o.limits.max_num_tokens, o.limits.max_running_requests) for o in obs} \
        == {(256, 16384, 512)}
    r = df[(df.model == "deepseek_r1") & (df.precision == "fp8") & (df.isl == 1024) & (df.spec == "mtp")
           & (df.concurrency == 128)].iloc[0]
    label = "deepseek_r1/mi355x/fp8/1k1k/tp8/mtp/c128"
    got = {o.metric: o.measured for o in obs if o.label == label}
    assert got["interactivity"] == pytest.approx(1e3 / r.mean_tpot_ms)
    assert got["tput_per_gpu"] == pytest.approx(r.total_tok_s / 8)
    assert all(o.draft_tokens == (3 if "/mtp/" in o.label else 0) for o in obs)


def test_an_atom_ci_row_the_catalog_cannot_price_names_the_file_and_row(tmp_path: Path) -> None:
    """A sweep row on an engine, model or GPU the catalog does not know: a SpecError naming the file, the row
    and the allowed values, never a traceback or a row silently dropped."""
    import pandas as pd

    from simulator.calibration.data import atom_ci_observations
    from simulator.calibration.dataset import ATOM_CI, DEFAULT_DATA_DIR
    from simulator.catalog import SpecError

    rows = pd.read_csv(DEFAULT_DATA_DIR / ATOM_CI).head(2)
    for column, value, allowed in (("engine", "tgi", "known: sglang"), ("model", "nosuch", "valid keys: deepseek_r1"),
                                   ("hardware", "tpu", "valid keys: b200")):
        bad = rows.copy()
        bad.loc[1, column] = value
        path = tmp_path / f"{column}.csv"
        bad.to_csv(path, index=False)
        with pytest.raises(SpecError, match=rf"{column}.csv: row 2: .*{value}.*{allowed}"):
            atom_ci_observations(path)
