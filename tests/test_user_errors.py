"""What a new user hits (issue 11): each item through the CLI as a user types it (a subprocess), or through
`cli.compose` and the task's `run` where a subprocess would be slow. Small cases only."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator import cli
from simulator.calibration.dataset import ATOM_CI, DEFAULT_DATA_DIR, SILICON, SWEEPS
from simulator.calibration.fit import FitResult
from simulator.catalog import CONF_DIR, SpecError
from simulator.runconfig import NothingFeasible
from simulator.validation import has_own_page
from tests.test_pages import TABLE_PAGE

ROOT = Path(__file__).resolve().parents[1]
USER_CONF = ROOT / "examples" / "user_conf"
# 257 GB of weights per GPU at tp8; within one node (max_gpus=8): two nodes would hold it
NO_FIT = ["model=kimi_k2_5", "hardware=h100", "precision=bf16", "max_gpus=8"]


def specsim(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulator", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def run_task(out: Path, *overrides: str) -> None:
    """The task of `specsim OVERRIDES` run in this process (what `app` does, without Hydra's run dir)."""
    cfg = cli.compose(list(overrides))
    importlib.import_module(cli.TASKS[cfg.task]).run(cfg, out)


@pytest.fixture(scope="module")
def at_50(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The default case's report at 50 tok/s/user (shared by the band tests)."""
    return compare_report(tmp_path_factory.mktemp("at_50"), "interactivity=[50]")


def compare_report(tmp_path: Path, *overrides: str) -> dict:
    report = tmp_path / "report.json"
    run_task(tmp_path, "validate_after=false", f"report={report}", *overrides)
    return json.loads(report.read_text())


# ---- 1. acceptance_multiplier: one meaning, and the band follows it -----------------------------------------

def test_acceptance_multiplier_multiplies_the_calibrated_scale() -> None:
    base = cli.compose([])
    fitted = base.calibration.acceptance_scale_for(base.model.name)
    assert base.scenario().acceptance.scale == pytest.approx(fitted)  # 1 = unchanged
    assert cli.compose(["acceptance_multiplier=1.5"]).scenario().acceptance.scale == pytest.approx(1.5 * fitted)


def test_band_follows_the_acceptance_multiplier(tmp_path: Path, at_50: dict) -> None:
    one = at_50["points"][0]["mtp"]
    low = compare_report(tmp_path, "interactivity=[50]", "acceptance_multiplier=0.5")["points"][0]["mtp"]
    assert low["tput_per_gpu"] < one["tput_per_gpu"]
    assert low["tput_per_gpu_p10"] <= low["tput_per_gpu"] <= low["tput_per_gpu_p90"]
    assert low["tput_per_gpu_p90"] < one["tput_per_gpu_p90"]


@pytest.mark.parametrize("arg,new", [("acceptance_scale=1", "acceptance_multiplier"),
                                     ("sweep.acceptance_scale=[1.0]", "sweep.acceptance_multiplier")])
def test_the_old_acceptance_key_names_its_replacement(arg: str, new: str) -> None:
    r = specsim(arg)
    assert r.returncode == 2 and f"use {new}" in r.stderr and "Traceback" not in r.stderr


# ---- 2. a deployment that cannot fit: the reason, the rows, its own exit code ----------------------------

def test_compare_that_cannot_fit_says_why_and_exits_3(tmp_path: Path) -> None:
    r = specsim(*NO_FIT, f"hydra.run.dir={tmp_path}")
    assert r.returncode == 3, r.stderr
    assert "weights need 257.1 GB per GPU" in r.stdout and "nothing feasible" in r.stdout + r.stderr
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert set(curves["side"]) == {"mtp", "off"} and not curves["feasible"].any()
    assert curves["infeasible_reason"].str.contains("does not fit").all()
    assert "Traceback" not in r.stderr


# ---- 3. nothing dropped without a word -----------------------------------------------------------------------

def test_sweep_says_when_a_draft_length_is_left_out(tmp_path: Path) -> None:
    r = specsim("task=sweep", f"hydra.run.dir={tmp_path}", "sweep.hardware=[b200]", "sweep.concurrency=[1,8]",
                "sweep.draft_tokens=[0,10]", "sweep.backend=torch")
    assert r.returncode == 0, r.stderr
    assert "note: glm5: k = 10 above its max draft length" in r.stdout


def test_unreachable_target_says_the_reachable_range(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    compare_report(tmp_path, "interactivity=[1e9]")
    out = capsys.readouterr().out
    assert "not reached at 1e+09 tok/s/user: reachable MTP" in out and "Off " in out


def test_advise_for_a_model_without_draft_module(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_task(tmp_path, "task=advise", "model=llama3_3_70b", "plan.gpus=[h200]", "plan.precisions=[fp8]",
             "min_interactivity=[25]")
    out = capsys.readouterr().out
    assert "has no draft module" in out and "Off only (no MTP)" in out and "MTP hurts: run Off" not in out


def test_plan_for_a_tiny_demand_names_the_minimum_unit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_task(tmp_path, "task=plan", "demand_tok_s=1", "plan.gpus=[b200]", "plan.precisions=[fp8]",
             "min_interactivity=[50]")
    assert "below one deployment: the minimum unit is" in capsys.readouterr().out


def test_plan_lists_identical_precisions_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_task(tmp_path, "task=plan", "model=deepseek_v4_pro", "plan.gpus=[b200]", "min_interactivity=[50]")
    out = capsys.readouterr().out
    assert "predicts exactly as" in out
    plan = pd.read_csv(tmp_path / "plan.csv")
    assert set(plan["precision"]) <= {"fp8=fp4", "fp4=fp8"}


# ---- 4. user GPUs in every task ------------------------------------------------------------------------------

def test_mtp_model_on_a_user_gpu(tmp_path: Path) -> None:
    report = compare_report(tmp_path, f"hydra.searchpath=[file://{USER_CONF}]", "hardware=h200_2xbw",
                            "rates=era_a_user", "model=qwen3_5_397b", "precision=fp8", "interactivity=[50]")
    assert report["hardware"] == "h200_2xbw" and report["points"][0]["mtp"]["tput_per_gpu"] > 0


def test_sweep_takes_a_user_gpu(tmp_path: Path) -> None:
    cfg = cli.compose([f"hydra.searchpath=[file://{USER_CONF}]", "hardware=h200_2xbw"])
    sweep = importlib.import_module("simulator.tasks.sweep")
    assert "h200_2xbw" in sweep.sweep_settings(cfg)["hardware"]  # null = every GPU, the user's included
    r = specsim("task=sweep", f"hydra.run.dir={tmp_path}", f"hydra.searchpath=[file://{USER_CONF}]",
                "hardware=h200_2xbw", "rates=era_a_user", "precision=fp8", "sweep.hardware=[h200_2xbw]",
                "sweep.concurrency=[1,8]", "sweep.draft_tokens=[0,2]", "sweep.backend=torch")
    assert r.returncode == 0, r.stderr
    assert set(pd.read_csv(tmp_path / "frontiers.csv")["hardware"]) == {"h200_2xbw"}


# ---- 5. the README's dict overrides ------------------------------------------------------------------------

def test_plan_rate_overrides_in_cli_form() -> None:
    cfg = cli.compose(["plan.usd_per_gpu_hour={b200:2.5}", "plan.all_in_kw={b200:1.9}"])
    assert cfg.plan.usd_per_gpu_hour == {"b200": 2.5} and cfg.plan.all_in_kw == {"b200": 1.9}


# ---- 6. named errors instead of KeyErrors --------------------------------------------------------------------

def test_sweep_with_no_feasible_point_is_a_named_error(tmp_path: Path) -> None:
    # a concurrency beyond memory now queues (admission), so "nothing feasible" is a model that never fits
    r = specsim("task=sweep", f"hydra.run.dir={tmp_path}", "sweep.hardware=[h100]", "sweep.model=[kimi_k2_5]",
                "sweep.precision=[bf16]", "sweep.backend=torch", "sweep.concurrency=[1,8]", "max_gpus=8")
    assert r.returncode == 2 and "sweep: no feasible point" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(SpecError, match="sweep: no feasible point"):  # k = 10 only: above every max draft length
        run_task(tmp_path, "task=sweep", "sweep.hardware=[b200]", "sweep.backend=torch", "sweep.draft_tokens=[10]",
                 "sweep.concurrency=[1,8]")


def test_malformed_calibration_csv_names_the_file_and_column(tmp_path: Path) -> None:
    (tmp_path / SILICON).write_text("id,model_path\nx,y\n")
    (tmp_path / SWEEPS).write_text("hardware\nb200\n")
    (tmp_path / ATOM_CI).write_text((DEFAULT_DATA_DIR / ATOM_CI).read_text())  # a good file: the silicon one is named
    r = specsim("task=calibrate", f"calibrate.data_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2 and SILICON in r.stderr and "missing column(s)" in r.stderr and "mode" in r.stderr
    assert "Traceback" not in r.stderr


# ---- 7. a multirun whose job erred exits non-zero --------------------------------------------------------

@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]])
def test_multirun_with_a_failed_job_exits_nonzero(tmp_path: Path, launcher: list[str],
                                                  capsys: pytest.CaptureFixture) -> None:
    """Job 0 cannot fit (2: a recorded result, not an error), job 1 has a bad value (7: the exit code says so)."""
    sweep = tmp_path / "sweep"
    r = specsim("-m", "model=kimi_k2_5", "hardware=h100", "precision=bf16,fp16", "max_gpus=8", *launcher,
                f"hydra.sweep.dir={sweep}")
    assert r.returncode == 2, r.stderr
    assert "1 job(s) failed" in r.stderr
    assert (sweep / "0" / "infeasible.txt").is_file() and (sweep / "1" / "error.txt").is_file()
    assert not (sweep / "0" / "error.txt").exists()
    run_task(tmp_path, "task=summarize", f"summarize.dir={sweep}")
    table = pd.read_csv(tmp_path / "summary.csv").set_index("job")
    assert table.loc[0, "result"] == "nothing feasible" and "precision" in table.loc[1, "error"]


# ---- 8. calibrate and cv: fail fast, pages honoured, install only when asked ---------------------------------

def test_calibrate_checks_pages_before_fitting(tmp_path: Path) -> None:
    r = specsim("task=calibrate", "pages=[/nonexistent/page.yaml]", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2 and "/nonexistent/page.yaml" in r.stderr and "fitting" not in r.stdout


def test_cv_uses_the_given_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crossval = importlib.import_module("simulator.calibration.crossval")
    seen: list = []

    class Stop(Exception):
        pass

    def fake_build(data_dir: Path, pages: list | None = None, keep: object = None) -> None:
        seen.append(pages)
        raise Stop

    monkeypatch.setattr(crossval, "build_problem", fake_build)
    monkeypatch.setattr(importlib.import_module("simulator.tasks.validate"), "data_dir_of", lambda d: tmp_path)
    page = tmp_path / "page.txt"
    page.write_text(TABLE_PAGE)
    with pytest.raises(Stop):
        run_task(tmp_path, "task=validate", "cv=leave_one_page_out", f"pages=[{page}]")
    assert len(seen[0]) == 1  # the one page given, not the bundled three


def test_calibrate_installs_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = importlib.import_module("simulator.tasks.calibrate")

    class Problem:
        space = type("S", (), {"names": []})()
        points, pages, cases = [], [], []

    monkeypatch.setattr(task, "data_dir_of", lambda d: tmp_path)
    monkeypatch.setattr(task, "build_problem", lambda d, p=None: Problem())
    monkeypatch.setattr(task, "fit", lambda p: FitResult([], np.zeros(0), np.zeros((0, 0)), {}, {}))
    monkeypatch.setattr(task, "format_fit", lambda r: "fit")
    monkeypatch.setattr(task.store, "to_yaml_dict", lambda name, r, s: {"calibration": {"name": name}})
    name = "pytest_scratch_install"
    installed = CONF_DIR / "calibration" / f"{name}.yaml"
    try:
        run_task(tmp_path, "task=calibrate", f"calibrate.name={name}", "calibrate.cross_validate=false")
        assert (tmp_path / f"calibration_{name}.yaml").is_file() and not installed.exists()
        assert (tmp_path / "residuals.csv").is_file()  # the fit's residuals beside it (none here: a header)
        assert (tmp_path / "speedups.csv").is_file()  # and the sweeps' MTP/Off speed-ups (a header here too)
        run_task(tmp_path, "task=calibrate", f"calibrate.name={name}", "calibrate.cross_validate=false",
                 "calibrate.install=true")
        assert installed.is_file()
    finally:
        installed.unlink(missing_ok=True)


# ---- 10. a real help page ------------------------------------------------------------------------------------

def test_help_is_a_help_page() -> None:
    r = specsim("--help")
    assert r.returncode == 0
    text = r.stdout
    for needle in ("compare ", "plan ", "summarize ", "acceptance_multiplier", "[benchmark | open]",
                   "hardware ", "outputs/", "sweep.draft_tokens"):
        assert needle in text, needle
    for absent in ("powered by Hydra", "deployments", "page_figures", "covariance"):
        assert absent not in text, absent
    assert len(text.splitlines()) < 100


# ---- 12. validation table only for a case with a page; legends name every mark ------------------------------

def test_compare_prints_validation_only_for_a_case_with_its_own_page(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    run_task(tmp_path, "model=llama3_3_70b", "hardware=h200", "precision=fp8", "interactivity=[40]")
    assert "validation against the benchmark pages" not in capsys.readouterr().out
    assert has_own_page(cli.compose([]))  # the default case, GLM-5 on B200 FP4 1k/1k, has a page: auto prints it
    assert not has_own_page(cli.compose(["precision=fp8"]))


def test_compare_legend_names_every_mark(tmp_path: Path) -> None:
    compare = importlib.import_module("simulator.tasks.compare")
    cfg = cli.compose(["model=qwen3_5_397b", "hardware=h200", "precision=fp8", "search=open", "interactivity=[50]",
                       "max_gpus=8"])
    result = compare.run_compare(cfg.scenario(), cfg.key, cfg.search, cfg.rates, cfg.rate_tier, cfg.interactivity)
    compare.add_bands(result, cfg.scenario(), cfg.calibration)
    labels = compare.plot_compare(result, str(tmp_path / "curves.png"))
    for needle in ("MTP P10-P90 band", "OFF P10-P90 band", "matched-target read", "MTP frontier point, k="):
        assert any(needle in label for label in labels), (needle, labels)


# ---- 14. a target's band depends on that target only ---------------------------------------------------------

def test_band_at_a_target_does_not_move_with_other_targets(tmp_path: Path, at_50: dict) -> None:
    alone = at_50["points"][0]
    both = compare_report(tmp_path, "interactivity=[50,90]")["points"][0]
    for side in ("mtp", "off"):
        assert alone[side]["tput_per_gpu_p10"] == pytest.approx(both[side]["tput_per_gpu_p10"])
        assert alone[side]["tput_per_gpu_p90"] == pytest.approx(both[side]["tput_per_gpu_p90"])


# ---- 15. summarize reads every job at one set of targets -----------------------------------------------------

def test_summarize_uses_one_set_of_targets(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sweep = tmp_path / "sweep"
    for job, precision in (("0", "fp8"), ("1", "fp4")):
        (sweep / job).mkdir(parents=True)
        run_task(sweep / job, "validate_after=false", f"precision={precision}")
    capsys.readouterr()
    run_task(tmp_path, "task=summarize", f"summarize.dir={sweep}")
    out = capsys.readouterr().out
    assert "range every job's MTP and Off frontiers cover" in out
    table = pd.read_csv(tmp_path / "summary.csv")
    by_job = table.groupby("job")["interactivity"].apply(list)
    assert by_job.iloc[0] == by_job.iloc[1] and len(by_job.iloc[0]) == 3
    run_task(tmp_path, "task=summarize", f"summarize.dir={sweep}", "interactivity=[40]")
    assert "targets (tok/s/user): 40: yours" in capsys.readouterr().out


# ---- 16. search=open marks k; errors without pydantic's prefix ------------------------------------------------

def test_open_search_names_k_on_the_frontier(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    compare_report(tmp_path, "model=qwen3_5_397b", "hardware=h200", "precision=fp8", "search=open", "max_gpus=8")
    out = capsys.readouterr().out
    assert "MTP frontier uses k = " in out and "(searched 1, 2, 3, 4)" in out
    assert "largest searched (4)" in out


def test_spec_errors_have_no_pydantic_prefix(tmp_path: Path) -> None:
    r = specsim("+hardware.hbm_usable_gb=500", "precision=fp8", "hardware=h200", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2 and "hbm_usable_gb must not exceed hbm_capacity_gb" in r.stderr
    assert "(spec)" not in r.stderr and "Value error" not in r.stderr


def test_run_raises_nothing_feasible_after_writing(tmp_path: Path) -> None:
    with pytest.raises(NothingFeasible):
        run_task(tmp_path, *NO_FIT, "validate_after=false")
    assert (tmp_path / "curves.csv").is_file() and (tmp_path / "summary.json").is_file()


@pytest.mark.parametrize("key,allowed,priced", [("serving.kv_cache_dtype", "'auto', 'fp8' or 'bf16'", "kv_bytes"),
                                                ("serving.ssm_state_dtype", "'auto', 'fp32' or 'bf16'", "state_bytes")])
def test_a_cache_dtype_outside_the_vocabulary_names_the_key_and_the_allowed_values(key: str, allowed: str,
                                                                                   priced: str) -> None:
    with pytest.raises(SpecError) as err:
        cli.compose([f"{key}=int8"])
    assert key in str(err.value) and allowed in str(err.value)
    assert getattr(cli.compose([f"{key}=bf16"]).scenario(), priced) == 2.0  # an allowed value is priced as set
