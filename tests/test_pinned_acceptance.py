"""Pinned acceptance: recipes that run the engine's synthetic acceptance (SYNTHETIC_ACCEPTANCE_LENGTH) are priced
at the AL they pin, whatever the acceptance scale, and never inform the fitted scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import scenario
from simulator.acceptance import raw_al_table
from simulator.batched import Case, lower_cases
from simulator.calibration.data import target_observations
from simulator.calibration.problem import Problem
from simulator.evaluate import evaluate
from simulator.search import Candidate, benchmark_candidates
from simulator.specs.calibration import ACCEPTANCE_GROUP
from simulator.specs.topology import DisaggregatedSpec

MODEL, GPU, WL = "deepseek_v4_pro", "gb200", "8k1k"


@pytest.fixture(scope="module")
def sc():  # noqa: ANN201
    base = scenario(MODEL, GPU, "fp4", WL)
    # a calibrated-looking scale (not 1), so that "the scale does not apply" is visible
    return base.model_copy(update={"acceptance": base.acceptance.model_copy(update={"scale": 0.69})})


@pytest.fixture(scope="module")
def cands(sc) -> list[Candidate]:  # noqa: ANN001
    return benchmark_candidates(sc, "mtp", MODEL, GPU, WL, max_gpus=72)


def test_the_benchmark_rows_that_pin_their_acceptance_reach_the_search(cands: list[Candidate]) -> None:
    """DeepSeek-V4 GB200 8k/1k: the three dsv4-fp4-gb200-dynamo-vllm-mtp2 xPyD rows pin AL 2.27 at k = 2;
    their -nosynthetic twins (same shapes) and the other recipes measure it."""
    pinned = [c for c in cands if c.pinned_al is not None]
    assert len(pinned) == 3 and {(c.draft_tokens, c.pinned_al) for c in pinned} == {((2,), 2.27)}
    shapes = {c.deployment for c in pinned}
    assert len([c for c in cands if c.pinned_al is None and c.deployment in shapes]) == 3
    assert all(isinstance(c.deployment, DisaggregatedSpec) for c in pinned)
    assert benchmark_candidates(scenario(MODEL, GPU, "fp4", WL), "off", MODEL, GPU, WL, max_gpus=72)[0].pinned_al is None


def test_a_pinned_candidate_is_priced_at_its_pinned_al_whatever_the_scale(sc, cands: list[Candidate]) -> None:  # noqa: ANN001
    pinned = next(c for c in cands if c.pinned_al is not None)
    got = evaluate(sc, [pinned]).frame()
    assert (got["acceptance_length"] == 2.27).all()
    # no absolute scale (what-if, calibration trial values) moves it either
    for scale in (0.2, 1.0, 1.7):
        other = evaluate(sc, [pinned], acceptance_scale=scale).frame()
        assert other["tput_per_gpu"].tolist() == got["tput_per_gpu"].tolist()
    # == the same deployment with measured acceptance, priced at the scale whose AL(2) is 2.27
    raw = float(raw_al_table(sc.acceptance)[2])
    free = Candidate("mtp", pinned.deployment, pinned.concurrencies, pinned.draft_tokens, pinned.engine, pinned.limits)
    same = evaluate(sc, [free], acceptance_scale=(2.27 - 1) / (raw - 1)).frame()
    np.testing.assert_allclose(same["tput_per_gpu"], got["tput_per_gpu"], rtol=1e-12)
    np.testing.assert_allclose(same["interactivity"], got["interactivity"], rtol=1e-12)
    assert evaluate(sc, [free]).frame()["acceptance_length"].iloc[0] == pytest.approx(1 + 0.69 * (raw - 1))


def test_the_lowering_stores_a_pinned_case_with_scale_one(sc) -> None:  # noqa: ANN001
    dep = sc.deployment(tp=8)
    batch = lower_cases([Case(sc, dep), Case(sc, dep, pinned_al=(3, 2.0))])
    assert batch.scalar("acceptance_scale").tolist() == [0.69, 1.0]
    assert batch.scalar("acceptance_pinned").tolist() == [0.0, 1.0]
    raw = raw_al_table(sc.acceptance)
    assert torch.equal(batch.al[0, : raw.numel()], raw)
    assert float(batch.al[1, 3]) == 2.0
    # any other k of a pinned case holds its final (scaled) AL, since its scale is 1
    assert float(batch.al[1, 2]) == pytest.approx(1 + 0.69 * (float(raw[2]) - 1))
    with pytest.raises(ValueError, match="1 <= AL <= k \\+ 1"):
        Case(sc, dep, pinned_al=(1, 2.5))
    with pytest.raises(ValueError, match="pinned_al"):
        Candidate("mtp", dep, (1,), (1, 2), pinned_al=2.0)


def test_pinned_points_neither_use_nor_move_the_fitted_acceptance_scale(sc, cands: list[Candidate]) -> None:  # noqa: ANN001
    """Calibration: a page target read off pinned candidates only does not depend on the model's acceptance
    scale (zero sensitivity: its residual cannot move the fit), and a model whose only MTP data are pinned
    gets no acceptance scale to fit."""
    pinned = [c for c in cands if c.pinned_al is not None]
    measured = [c for c in cands if c.pinned_al is None]
    targets = [60.0, 100.0, 150.0]
    only_pinned = Problem([], target_observations(sc, {"mtp": pinned}, targets, source="pinned"))
    assert only_pinned.space.models == ()
    pages = (target_observations(sc, {"mtp": pinned}, targets, source="pinned")
             + target_observations(sc, {"mtp": measured}, targets, source="measured"))
    problem = Problem([], pages)
    assert problem.space.models == (ACCEPTANCE_GROUP,)
    z = problem.space.prior()
    acc = problem.space.names.index(f"acceptance_scale.{ACCEPTANCE_GROUP}")
    z_up = z.copy()
    z_up[acc] += 0.4
    before, after = problem.predict(z), problem.predict(z_up)
    is_pinned = np.array([o.page == "pinned" for o in problem.pages])
    np.testing.assert_array_equal(before[is_pinned], after[is_pinned])
    assert np.all(after[~is_pinned] >= before[~is_pinned]) and np.any(after[~is_pinned] > before[~is_pinned])
