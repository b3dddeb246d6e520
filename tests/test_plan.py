"""Capacity planner and draft-length advice: pure ranking on synthetic data, then the real catalog."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from simulator.calibration.uncertainty import gain_error_band
from simulator.catalog import SpecError
from simulator.cli import compose
from simulator.planning import collect_options, rank_options
from simulator.tasks.advise import advice_table, hurt_ranges, staircase

ROOT = Path(__file__).resolve().parents[1]


def pts(gpu: str, side: str, k: int, xy: list[tuple[float, float]], gpus: int = 4) -> list[dict[str, Any]]:
    return [{"gpu": gpu, "precision": "fp8", "side": side, "deployment": f"tp{gpus}", "gpus": gpus,
             "concurrency": 8, "draft_tokens": k, "interactivity": x, "tput_per_gpu": y} for x, y in xy]


def synthetic() -> tuple[pd.DataFrame, pd.DataFrame]:
    points = pd.DataFrame(
        pts("cheap", "off", 0, [(20, 1000), (60, 400), (120, 100)])
        + pts("cheap", "mtp", 2, [(30, 1200), (60, 700), (110, 300)])
        + pts("cheap", "mtp", 1, [(55, 650)])
        + pts("fast", "off", 0, [(20, 4000), (60, 2000), (120, 1000)], gpus=8))
    options = pd.DataFrame([
        {"gpu": "cheap", "precision": "fp8", "side": "off", "usd_per_gpu_hour": 1.0, "all_in_kw": 1.0, "reason": ""},
        {"gpu": "cheap", "precision": "fp8", "side": "mtp", "usd_per_gpu_hour": 1.0, "all_in_kw": 1.0, "reason": ""},
        {"gpu": "fast", "precision": "fp8", "side": "off", "usd_per_gpu_hour": 3.0, "all_in_kw": 1.0, "reason": ""},
        {"gpu": "fast", "precision": "fp8", "side": "mtp", "usd_per_gpu_hour": 3.0, "all_in_kw": 1.0,
         "reason": "fastmodel has no draft module (MTP impossible)"},
        {"gpu": "old", "precision": "fp4", "side": "off", "usd_per_gpu_hour": 0.5, "all_in_kw": 1.0,
         "reason": "no FP4 tensor cores on Old"},
    ])
    return points, options


def test_planner_picks_the_cheapest_feasible_option_per_floor() -> None:
    points, options = synthetic()
    table = rank_options(points, options, [50, 100, 150], demand_tok_s=1e5)
    first = table[table["rank"] == 1].set_index("floor")
    # floor 50: cheap MTP (k=2 beats k=1: 700 > 650 tok/s/GPU) at 1 / (700 x 0.0036) < fast Off at 3 / (2000 x 0.0036)
    assert (first.loc[50, "gpu"], first.loc[50, "side"], first.loc[50, "draft_tokens"]) == ("cheap", "mtp", 2)
    assert first.loc[50, "cost_per_mtok"] == pytest.approx(1 / (700 * 3600 / 1e6))
    # 1e5 tok/s over 4-GPU deployments of 700 tok/s/GPU: ceil(35.7) = 36 replicas = 144 GPUs, 0.144 MW
    assert first.loc[50, "gpus_needed"] == 144 and first.loc[50, "mw"] == pytest.approx(0.144)
    assert first.loc[50, "mtp_gain"] == pytest.approx(700 / 400)
    # floor 100: fast Off (1000 tok/s/GPU at $3) is cheaper than cheap MTP (300 at $1)
    assert (first.loc[100, "gpu"], first.loc[100, "side"]) == ("fast", "off")
    best_power = table[table["best_power"]].set_index("floor")
    assert best_power.loc[50, "gpu"] == "fast"  # 2e6 tok/s/MW
    assert 150 not in first.index  # nobody reaches 150


def test_an_mtp_gain_carries_its_model_error_band() -> None:
    """With a calibration's gain model error, an MTP row's gain over Off carries a P10-P90 band: the same
    log-normal draws compare multiplies its parameter draws' ratio by (keyed by the floor), so about a factor
    exp(1.28 sigma) either way; Off rows and a run without a calibration (sigma 0) carry none."""
    import math

    import numpy as np

    from simulator.calibration.uncertainty import GAIN, _noise

    points, options = synthetic()
    sigma = 0.7
    table = rank_options(points, options, [50], demand_tok_s=1e5, gain_sigma=sigma)
    mtp = table[(table["side"] == "mtp") & table["feasible"]].iloc[0]
    assert mtp["mtp_gain_p10"] < mtp["mtp_gain"] < mtp["mtp_gain_p90"]
    want = np.percentile(mtp["mtp_gain"] * _noise(GAIN, 50.0, sigma, 64), [10, 90])
    assert (mtp["mtp_gain_p10"], mtp["mtp_gain_p90"]) == pytest.approx(tuple(want))
    assert math.log(mtp["mtp_gain_p90"] / mtp["mtp_gain_p10"]) == pytest.approx(2 * 1.2816 * sigma, rel=0.3)
    assert table.loc[table["side"] == "off", "mtp_gain_p10"].isna().all()
    plain = rank_options(points, options, [50], demand_tok_s=1e5)
    assert plain["mtp_gain_p10"].isna().all() and plain["mtp_gain_p90"].isna().all()
    assert all(math.isnan(v) for v in gain_error_band(float("nan"), 50.0, sigma))


def test_infeasible_options_carry_their_reason() -> None:
    points, options = synthetic()
    table = rank_options(points, options, [50, 150], demand_tok_s=1e5)
    bad = table[~table["feasible"]]
    assert (bad["reason"].str.len() > 0).all() and bad["rank"].isna().all()
    at50 = bad[bad["floor"] == 50].set_index(["gpu", "side"])["reason"]
    assert "no draft module" in at50[("fast", "mtp")]
    assert "FP4" in at50[("old", "off")]
    assert table[(table["floor"] == 150)]["reason"].str.contains("no point reaches 150|no draft|FP4").all()


def test_staircase_and_mtp_hurts_ranges() -> None:
    x = pd.Series([10.0, 50.0]).to_numpy()
    assert list(staircase(x, pd.Series([1000.0, 500.0]).to_numpy(), [5, 10, 30, 50, 60])[:4]) == [
        1000, 1000, 500, 500]
    p = pd.DataFrame(pts("g", "off", 0, [(10, 1000), (50, 500)]) + pts("g", "mtp", 1, [(10, 800), (50, 600), (80, 300)])
                     + pts("g", "mtp", 2, [(60, 550), (90, 350)]))
    assert hurt_ranges(p) == [(0.0, 10.0)]  # Off 1000 > best MTP 800 up to 10 tok/s/user
    advice = advice_table(p, [10, 50, 85]).set_index("floor")
    assert list(advice["best_k"]) == [0, 1, 2]
    assert advice.loc[10, "verdict"].startswith("MTP hurts") and advice.loc[50, "mtp_hurts_at"] == "<= 10.0"
    # the advice's gain carries the same band as the plan's (none without a calibration's gain error)
    assert advice["mtp_gain_p10"].isna().all()
    banded = advice_table(p, [10, 50, 85], gain_sigma=0.7).set_index("floor")
    assert (banded.loc[50, "mtp_gain_p10"], banded.loc[50, "mtp_gain_p90"]) == pytest.approx(
        gain_error_band(banded.loc[50, "mtp_gain"], 50.0, 0.7))
    assert banded.loc[50, "mtp_gain_p10"] < banded.loc[50, "mtp_gain"] < banded.loc[50, "mtp_gain_p90"]


@pytest.mark.parametrize("override,needle", [
    ("min_interactivity=[fast]", "min_interactivity"),
    ("plan.precisions=[fp16]", "plan.precisions"),
    ("plan.usd_per_gpu_hour={b200:-1}", "plan.usd_per_gpu_hour.b200"),
])
def test_bad_plan_settings_are_clear(override: str, needle: str) -> None:
    with pytest.raises(SpecError, match=needle.replace(".", r"\.")):
        compose(["task=plan", override])


def plain_cfg(model: str, gpus: list[str], **plan: Any):
    overrides = [f"model={model}", f"plan.gpus=[{','.join(gpus)}]"]
    overrides += [f"plan.{k}=" + (f"[{','.join(v)}]" if isinstance(v, list) else
                                  "{" + ",".join(f"{g}:{x}" for g, x in v.items()) + "}") for k, v in plan.items()]
    return compose(overrides)


def test_catalog_options_list_fp4_and_draft_reasons() -> None:
    points, options = collect_options(plain_cfg("llama3_3_70b", ["h200", "b200"]), progress=False)
    reasons = options.set_index(["gpu", "precision", "side"])["reason"]
    assert "FP4" in reasons[("h200", "fp4", "off")]
    assert "no draft module" in reasons[("b200", "fp8", "mtp")]
    assert reasons[("b200", "fp4", "off")] == "" and reasons[("h200", "fp8", "off")] == ""
    assert set(points["side"]) == {"off"} and set(points["gpu"]) == {"h200", "b200"}
    table = rank_options(points, options, [30], 1e6)
    assert table["feasible"].sum() == 3  # b200 fp8, b200 fp4, h200 fp8 (Off)


def test_user_rate_override_changes_the_ranking() -> None:
    cfg = plain_cfg("llama3_3_70b", ["h200", "b200"], precisions=["fp8"], usd_per_gpu_hour={"h200": 0.01})
    points, options = collect_options(cfg, progress=False)
    table = rank_options(points, options, [30], 1e6)
    assert table.iloc[0]["gpu"] == "h200" and table.iloc[0]["usd_per_gpu_hour"] == 0.01


def test_plan_prices_deployments_beyond_one_node() -> None:
    """max_gpus above one node: the planner's sweep (the kernel's lowering) also runs wide-EP workers and
    xPyD clusters, and at a deep batch on an NVL72 one of them beats every 8-GPU deployment."""
    cfg = compose(["model=deepseek_r1", "workload=8k1k", "plan.gpus=[gb200]", "plan.precisions=[fp4]",
                   "max_gpus=16"])
    points, options = collect_options(cfg, progress=False)
    assert (points["gpus"] > 8).any() and (points["gpus"] <= 16).all()
    wide = points[points["gpus"] > 8]
    assert wide["deployment"].str.contains("P").any() or wide["deployment"].str.startswith("DEP16").any()
    single, _ = collect_options(compose(["model=deepseek_r1", "workload=8k1k", "plan.gpus=[gb200]",
                                         "plan.precisions=[fp4]", "max_gpus=8"]), progress=False)
    assert (single["gpus"] <= 8).all()
    # widening the budget adds options: the best throughput at a mid floor is no lower than on one node
    both = rank_options(points, options, [50], 1e6)
    one = rank_options(single, options, [50], 1e6)
    assert both.iloc[0]["tput_per_gpu"] >= one.iloc[0]["tput_per_gpu"] - 1e-9


def test_plan_cli_writes_table_files_and_advice(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "simulator", f"hydra.run.dir={tmp_path}", "task=plan", "model=deepseek_v4_pro",
           "workload=8k1k", "min_interactivity=[50,100]", "demand_tok_s=2e6", "plan.gpus=[b200,h100,h200]",
           "max_gpus=8"]  # single-node shapes: the multi-node planner is tested on its own (below)
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "cheapest:" in r.stdout and "infeasible options:" in r.stdout and "draft-length advice" in r.stdout
    table = pd.read_parquet(tmp_path / "plan.parquet")
    assert set(table["floor"]) == {50.0, 100.0}
    best = table[table["rank"] == 1]
    assert len(best) == 2 and (best["interactivity"] >= best["floor"]).all()
    assert all(math.isfinite(v) and v > 0 for v in best["mw"])
    assert (table.loc[table["gpu"] == "h100", "reason"].str.len() > 0).all()
    for name in ("plan.csv", "plan.png", "advice.csv", "advice.png"):
        assert (tmp_path / name).stat().st_size > 500
