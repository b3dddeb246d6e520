"""Calibration recovers known knobs from data the model itself generated; validate/calibrate CLIs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from conftest import scenario
from simulator.batched import Case
from simulator.calibration.data import PointObs
from simulator.calibration.fit import RESIDUAL_COLUMNS, fit, observation_rows, write_residuals_csv
from simulator.calibration.problem import Problem
from simulator.calibration.speedup import SPEEDUP_COLUMNS, format_speedups, speedup_rows, write_speedups_csv

ROOT = Path(__file__).resolve().parents[1]


def synthetic_problem() -> tuple[Problem, list[PointObs]]:
    obs = []
    # varied layer counts, TP degrees (1 = no collectives), MoE and dense: the latency floors separate; three
    # deployments repeated on another engine identify its compute efficiency against the SGLang ones (a dense
    # 70B at large batch is compute-bound in decode; prefill of these prompts is launch-bound, PREFILL_EAGER).
    # Batch 1024 keeps each engine's rows compute-bound whatever the trial compute fraction, so the fit cannot
    # stall where an engine's factor has no gradient (its rows memory-bound at the trial knobs).
    for model, hw, prec, tp, mtp, engine in (
            ("llama3_3_70b", "h200", "fp8", 1, False, "sglang"), ("llama3_3_70b", "h200", "fp8", 4, False, "sglang"),
            ("glm5", "h200", "fp8", 8, True, "sglang"), ("gpt_oss_120b", "h200", "fp8", 1, False, "sglang"),
            ("glm5", "b200", "fp4", 4, True, "sglang"), ("glm5", "b200", "fp4", 4, False, "sglang"),
            ("gpt_oss_120b", "b200", "fp4", 1, False, "sglang"), ("llama3_3_70b", "b200", "fp8", 2, False, "sglang"),
            ("qwen3_235b", "b200", "fp8", 8, False, "sglang"), ("deepseek_r1", "h200", "fp8", 8, False, "sglang"),
            ("llama3_3_70b", "h200", "fp8", 4, False, "trtllm"), ("llama3_3_70b", "b200", "fp8", 2, False, "trt"),
            ("qwen3_235b", "b200", "fp8", 8, False, "vllm"), ("llama3_3_70b", "b200", "fp8", 2, False, "vllm")):
        sc = scenario(model, hw, prec)
        case = Case(sc, sc.deployment(tp=tp), with_draft=mtp, engine=engine)
        for c in (1, 2, 4, 16, 64, 256, 1024):
            label = f"{model}/{hw}/{engine}/c{c}"
            obs.append(PointObs("synthetic", case, c, 3 if mtp else 0, "tpot_s", 1.0, label))
            obs.append(PointObs("synthetic", case, c, 3 if mtp else 0, "tput_per_gpu", 1.0, label))
    return Problem(obs, []), obs


def test_calibration_recovers_known_knobs() -> None:
    problem, obs = synthetic_problem()
    assert problem.space.engines == ("vllm", "trt")  # SGLang is the unit; TensorRT-LLM under both spellings
    truth = problem.space.prior() + np.random.default_rng(1).normal(0, 0.3, len(problem.space.names))
    # single-node data say nothing of the scale-out (NIC) knobs: their truth is the prior, which the fit keeps
    nic = np.array(["scale_out" in n for n in problem.space.names])
    truth[nic] = problem.space.prior()[nic]
    # engine factors that keep every compute fraction below 1 (above it the clamp leaves them unidentified)
    truth[problem.space.names.index("engine_efficiency.trt")] = np.log(1.15)
    truth[problem.space.names.index("engine_efficiency.vllm")] = np.log(0.8)
    measured = problem.predict(truth)
    problem.points = [PointObs(o.dataset, o.case, o.concurrency, o.draft_tokens, o.metric, float(m), o.label)
                      for o, m in zip(obs, measured, strict=True)]
    result = fit(problem, max_nfev=200, prior_weight=1e-4)
    assert np.max(np.abs(problem.log_errors(result.z))) < 1e-3  # the data are reproduced
    rows = result.observations  # residuals.csv: one row per observation, at the fit
    assert [(r["label"], r["metric"]) for r in rows] == [(o.label, o.metric) for o in problem.points]
    assert max(abs(r["error_pct"]) for r in rows) < 0.1
    for i, name in enumerate(problem.space.names):
        true_value = problem.space.value(name, truth[i])
        assert result.values[name] == pytest.approx(true_value, rel=0.05), name


def test_residuals_csv_says_which_way_each_miss_goes(tmp_path: Path) -> None:
    """residuals.csv (task=calibrate): a TPOT priced below the measured one is optimistic, a throughput priced
    below it is not; the worst miss comes first."""

    class Fake:
        points = [SimpleNamespace(label="a", metric="tpot_s"), SimpleNamespace(label="b", metric="tput_per_gpu")]
        pages = [SimpleNamespace(label="p/mtp@50")]  # a page target: throughput per GPU

        def observations(self) -> tuple[np.ndarray, list[str], list[str]]:
            return np.array([0.02, 100.0, 50.0]), ["silicon", "sweeps", "pages"], ["a:tpot_s", "b:tput_per_gpu", ""]

        log_errors_of = Problem.log_errors_of  # the one home of the sign convention
        metrics_observed = Problem.metrics_observed

    rows = observation_rows(Fake(), np.array([0.01, 80.0, 100.0]))  # type: ignore[arg-type]
    assert [r["optimistic"] for r in rows] == [True, False, True]
    assert [round(r["error_pct"]) for r in rows] == [-50, -20, 100]
    frame = pd.read_csv(write_residuals_csv(rows, tmp_path / "residuals.csv"))
    assert tuple(frame.columns) == RESIDUAL_COLUMNS and list(frame["label"]) == ["p/mtp@50", "a", "b"]


def test_speedups_pair_each_sweep_point_measured_with_and_without_mtp(tmp_path: Path) -> None:
    """speedups.csv (task=calibrate): MTP interactivity over Off interactivity of one deployment at one
    concurrency, measured and predicted; a point measured one way only, or another metric, pairs with nothing."""
    sc = scenario("glm5", "b200", "fp8")
    dep = sc.deployment(tp=8)
    on, off = (Case(sc, dep, with_draft=d, engine="sglang") for d in (True, False))
    points = [PointObs("sweeps", on, 4, 3, "interactivity", 100.0, "a"),
              PointObs("sweeps", off, 8, 0, "interactivity", 40.0, "b"),
              PointObs("sweeps", off, 4, 0, "interactivity", 50.0, "c"),
              PointObs("sweeps", on, 8, 3, "interactivity", 60.0, "d"),
              PointObs("sweeps", on, 16, 3, "interactivity", 30.0, "e"),  # no Off run at c = 16
              PointObs("sweeps", on, 4, 3, "tput_per_gpu", 900.0, "f"),
              PointObs("sweeps", off, 4, 0, "tput_per_gpu", 500.0, "g")]
    rows = speedup_rows(points, np.array([90.0, 40.0, 60.0, 66.0, 30.0, 1.0, 1.0]))
    assert [r["concurrency"] for r in rows] == [4, 8]
    assert [r["measured"] for r in rows] == pytest.approx([2.0, 1.5])
    assert [r["predicted"] for r in rows] == pytest.approx([1.5, 1.65])
    assert [r["difference"] for r in rows] == pytest.approx([-0.5, 0.15])
    # each side's own interactivity error: c = 4 MTP 90 against 100, Off 60 against 50; c = 8 66/60, 40/40
    assert [r["mtp_error_pct"] for r in rows] == pytest.approx([-10.0, 10.0])
    assert [r["off_error_pct"] for r in rows] == pytest.approx([20.0, 0.0])
    assert rows[0]["model"] == "glm5" and rows[0]["deployment"] == dep.label and rows[0]["engine"] == "sglang"
    text = format_speedups(rows)
    assert "c4 1.50/2.00 c8 1.65/1.50  [0/2; worst c4: MTP -10 %, Off +20 %]" in text
    frame = pd.read_csv(write_speedups_csv(rows, tmp_path / "speedups.csv"))
    assert tuple(frame.columns) == SPEEDUP_COLUMNS and len(frame) == 2
    assert format_speedups([]) == ""


def specsim(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "simulator", f"hydra.run.dir={tmp_path}", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_validate_bundled_pages_reports_errors_and_bands(tmp_path: Path) -> None:
    report = tmp_path / "v.json"
    r = specsim(tmp_path, "task=validate", f"report={report}")
    assert r.returncode == 0, r.stderr
    data = json.loads(report.read_text())
    assert len(data["pages"]) == 13  # the bundled pages less the two not modelled
    for page in data["pages"]:
        assert {"source", "model", "hardware", "precision", "workload", "points"} <= set(page)
        for pt in page["points"]:
            assert set(pt["measured"]) == {"mtp", "off"} and set(pt["predicted"]) == {"mtp", "off"}
            for side in ("mtp", "off", "gain"):
                lo, hi = pt["band_p10_p90"][side]
                assert lo <= hi
    assert {"mtp", "off", "gain", "direction_right", "gain_inside_p10_p90"} <= set(data["summary"])
    assert len(list(tmp_path.glob("validate_*.png"))) == 13
    # the one page whose MTP side repeats its Off side is named under the table (pages.mtp_repeats_off)
    note = [line for line in r.stdout.splitlines() if line.startswith("MTP side repeats the Off side within 2%")]
    assert len(note) == 1 and note[0].endswith(": qwen-3-5-mi325x-bf16-mtp-vs-none")


def test_held_out_summary_counts_the_gain_inside_its_band() -> None:
    from simulator.calibration.crossval import target_summary

    def row(page: str, side: str, measured: float, predicted: float, gain_inside: bool | None = None) -> dict:
        r = {"page": page, "side": side, "interactivity": 50.0, "measured": measured, "predicted": predicted,
             "error_pct": (predicted / measured - 1) * 100, "inside_band": True, "direction_right": True}
        return r if gain_inside is None else {**r, "gain_inside_band": gain_inside}

    rows = [row("a", "mtp", 200, 300, True), row("a", "off", 100, 100),
            row("b", "mtp", 200, 200, False), row("b", "off", 100, 50)]
    summ = target_summary(rows)
    assert summ["gain_inside_p10_p90"] == "1/2"
    assert summ["gain"]["n"] == 2 and summ["gain"]["median_signed_pct"] == pytest.approx(75.0)  # +50 %, +100 %


def test_validate_missing_page_file_is_a_clear_error(tmp_path: Path) -> None:
    r = specsim(tmp_path, "task=validate", "pages=[nowhere/page.txt]")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "nowhere/page.txt" in r.stderr


def test_calibrate_without_data_is_a_clear_error(tmp_path: Path) -> None:
    r = specsim(tmp_path, "task=calibrate", f"calibrate.data_dir={tmp_path}", "calibrate.name=scratch")
    assert r.returncode != 0 and "calibration data not found" in r.stderr and "Traceback" not in r.stderr
