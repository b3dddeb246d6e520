"""Specs: catalog completeness, parameter counts, and clear validation errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from conftest import scenario
from simulator.catalog import SpecError, list_keys, load_hardware, load_model, load_workload
from simulator.operators import param_counts
from simulator.scenario import Scenario
from simulator.specs import AcceptanceSpec, DeploymentSpec, SpeculativeSpec

HARDWARE = ["b200", "b300", "gb200", "gb300", "h100", "h200", "mi300x", "mi325x", "mi355x"]
MODELS = ["deepseek_r1", "deepseek_v4_pro", "glm5", "gpt_oss_120b", "kimi_k2_5", "llama3_3_70b",
          "qwen3_235b", "qwen3_5_397b"]
# derived counts in docs/sources.md#models: 2 %; "stated" round figures (V4-Pro 1.6T/49B, Kimi 1T): 5 %
TOLERANCE = {"deepseek_v4_pro": 0.05, "kimi_k2_5": 0.05}


def test_catalog_keys_are_the_documented_ones() -> None:
    assert list_keys("hardware") == HARDWARE
    assert list_keys("model") == MODELS
    assert list_keys("workload") == ["1k1k", "1k8k", "8k1k"]


@pytest.mark.parametrize("key", MODELS)
def test_parameter_counts_match_reference(key: str) -> None:
    model, _ = load_model(key)
    counts = param_counts(model)
    assert model.reference_params_b, "every model cites its reference parameter counts"
    for what, ref_b in model.reference_params_b.items():
        assert counts[what] / 1e9 == pytest.approx(ref_b, rel=TOLERANCE.get(key, 0.02)), what


def test_every_hardware_loads_with_source() -> None:
    for key in HARDWARE:
        hw = load_hardware(key)
        assert "docs/sources.md#hardware" in hw.source  # every figure cites where it comes from


def test_unknown_keys_list_the_valid_ones() -> None:
    with pytest.raises(SpecError, match="unknown model 'gpt5'.*deepseek_r1.*qwen3_5_397b"):
        load_model("gpt5")
    with pytest.raises(SpecError, match="unknown hardware 'a100'.*b200.*mi355x"):
        load_hardware("a100")
    with pytest.raises(SpecError, match="unknown workload"):
        load_workload("2k2k")


def test_fp4_on_hopper_is_an_error() -> None:
    with pytest.raises(ValidationError, match="precision"):
        scenario("deepseek_r1", "h200", "fp4")
    with pytest.raises(ValidationError, match="precision"):
        scenario("deepseek_r1", "mi300x", "fp4")
    scenario("deepseek_r1", "mi355x", "fp4")  # CDNA4 has FP4


def test_acceptance_out_of_range_names_the_field() -> None:
    with pytest.raises(ValidationError, match=r"al_by_draft_tokens\[1\].*outside \[1, 3\]"):
        AcceptanceSpec(al_by_draft_tokens=[1.5, 3.5])
    with pytest.raises(ValidationError, match=r"conditional_rates\[0\]"):
        AcceptanceSpec(conditional_rates=[1.2])
    with pytest.raises(ValidationError, match="draft_tokens"):
        SpeculativeSpec(mode="mtp", draft_tokens=0)


def test_deployment_checks_against_model_and_hardware() -> None:
    sc = scenario("deepseek_r1", "b200", "fp4")
    with pytest.raises(ValidationError, match="scale-up domain"):
        sc.deployment(tp=16)
    with pytest.raises(ValidationError, match="must divide tp"):
        DeploymentSpec(tp=8, ep=3)
    m, _ = load_model("qwen3_235b")
    group = m.layers[0]
    odd = m.model_copy(update={"layers": [group.model_copy(update={"ffn": group.ffn.model_copy(
        update={"num_experts": 132})})]})
    with pytest.raises(ValidationError, match="does not divide the 132 experts"):
        DeploymentSpec.model_validate({"tp": 8, "ep": 8}, context={"model": odd})
    with pytest.raises(ValidationError, match="ep"):
        DeploymentSpec(tp=2, ep=0)


def test_model_without_draft_rejects_acceptance() -> None:
    m, _ = load_model("llama3_3_70b")
    with pytest.raises(ValidationError, match="no draft module"):
        Scenario(model=m, hardware=load_hardware("h200"), precision="fp8", workload=load_workload("1k1k"),
                 acceptance=AcceptanceSpec(al_by_draft_tokens=[1.8]))


def test_candidates_carry_valid_speculative_settings() -> None:
    from simulator.search import Candidate

    dep = DeploymentSpec(tp=8)
    Candidate("mtp", dep, (4, 8), (1, 3))
    with pytest.raises(ValidationError, match="draft_tokens must be 0 when mode is 'off'"):
        Candidate("off", dep, (4,), (3,))
    with pytest.raises(ValidationError, match="draft_tokens must be >= 1"):
        Candidate("mtp", dep, (4,), (0,))


def test_calibration_is_a_typed_spec_with_named_errors() -> None:
    import yaml
    from pydantic import ValidationError

    from simulator.catalog import CONF_DIR, load_calibration
    from simulator.specs import Calibration
    from simulator.specs.calibration import ACCEPTANCE_GROUP

    cal = load_calibration("default")
    assert isinstance(cal, Calibration) and cal.fitted and cal.covariance_z is not None
    # one acceptance scale shared by every model; an older file's own scale for a model still wins
    assert cal.acceptance_scale_for("glm5") == cal.acceptance_scale_for("not_a_model") == cal.acceptance_scale[
        ACCEPTANCE_GROUP]
    older = Calibration.of({**cal.model_dump(), "acceptance_scale": {"glm5": 0.5}, "acceptance_scale_transfer": 0.7})
    assert older.acceptance_scale_for("glm5") == 0.5 and older.acceptance_scale_for("qwen3_5_397b") == 0.7
    assert cal.model_error_sigma() > 0
    # the gain's model error: the held-out gain errors' spread, else two independent sides' (sqrt(2) x sigma)
    assert cal.gain_error_sigma() == cal.cross_validation.gain_sigma_log > 0
    no_cv = Calibration.of({**cal.model_dump(), "cross_validation": None})
    assert no_cv.gain_error_sigma() == pytest.approx(2**0.5 * no_cv.model_error_sigma())
    assert not load_calibration("none").fitted and load_calibration("none").acceptance_scale_for("glm5") is None
    data = yaml.safe_load((CONF_DIR / "calibration" / "default.yaml").read_text())["calibration"]
    data["covariance_z"]["matrix"] = data["covariance_z"]["matrix"][:-1]
    with pytest.raises(ValidationError, match="covariance_z"):
        Calibration.of(data)
