"""Hydra done properly: typed schema, multirun with the joblib launcher + summarize, user config dirs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from simulator.comparison import run_compare, write_summary
from simulator.economics import bundled_rate_table
from simulator.specs.vocabulary import CaseKey
from simulator.tasks.summarize import collect
from tests.conftest import scenario

ROOT = Path(__file__).resolve().parents[1]
USER_CONF = ROOT / "examples" / "user_conf"


def specsim(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "simulator", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_joblib_multirun_then_summarize(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    r = specsim("-m", "hardware=h100,h200", "model=llama3_3_70b", "precision=fp8", "task=compare", "search=open",
                "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr
    assert "Joblib.Parallel" in r.stdout + r.stderr
    for job in ("0", "1"):
        assert (sweep / job / "curves.csv").is_file()
    r = specsim("task=summarize", f"summarize.dir={sweep}", f"hydra.run.dir={tmp_path / 'summary'}")
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(tmp_path / "summary" / "summary.csv")
    assert set(table["hardware"]) == {"h100", "h200"} and set(table["job"].astype(str)) == {"0", "1"}
    assert table["overrides"].str.contains("hardware=h[12]00 ").all()
    assert (sweep / "summary.csv").is_file() and "2 jobs" in r.stdout


def test_summary_json_round_trip(tmp_path: Path) -> None:
    sc = scenario("glm5", "b200", "fp8")
    result = run_compare(sc, CaseKey("glm5", "b200", "fp8", "1k1k"), "benchmark", bundled_rate_table("era_a"))
    job = tmp_path / "0"
    job.mkdir()
    data = json.loads(write_summary(result, job).read_text())
    assert data["model"] == "glm5" and len(data["rows"]) == 3
    table = collect(tmp_path)
    row = table.iloc[0]
    assert row["hardware"] == "b200" and row["mtp_gain"] == pytest.approx(
        row["mtp_tput_per_gpu"] / row["off_tput_per_gpu"])


def test_user_hardware_from_the_search_path(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    r = specsim("-m", f"hydra.searchpath=[file://{USER_CONF}]", "hardware=h200,h200_2xbw", "rates=era_a_user",
                "model=llama3_3_70b", "precision=fp8", "search=open", "calibration=none",
                f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr
    base, fast = (pd.read_csv(sweep / j / "curves.csv") for j in ("0", "1"))
    assert fast["feasible"].any() and "on h200_2xbw" in r.stdout  # the user GPU ran, named as such
    m = base.merge(fast, on=["side", "deployment", "concurrency", "draft_tokens"], suffixes=("", "_2x"))
    m = m[(m["feasible"] == 1) & (m["feasible_2x"] == 1)]
    ratio = m["tput_per_gpu_2x"] / m["tput_per_gpu"]
    assert len(m) > 10 and (ratio > 1).all() and (ratio <= 2 + 1e-9).all()  # bandwidth helps, at most 2x


def test_broken_user_hardware_names_the_field(tmp_path: Path) -> None:
    conf = tmp_path / "myconf" / "hardware"
    conf.mkdir(parents=True)
    text = (USER_CONF / "hardware" / "h200_2xbw.yaml").read_text()
    (conf / "broken.yaml").write_text(text.replace("hbm_bandwidth_tb_s: 9.6", "hbm_bandwidth_tb_s: -1"))
    r = specsim(f"hydra.searchpath=[file://{tmp_path / 'myconf'}]", "hardware=broken", "precision=fp8",
                f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2
    assert "hbm_bandwidth_tb_s" in r.stderr and "greater than 0" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args,needle", [
    (["demand_tok_s=lots"], "demand_tok_s"),
    (["plan.top=many"], "plan.top"),
    (["task=plan", "min_interactivity=[fast]"], "min_interactivity"),
    (["task=plan", "plan.precisions=[fp16]"], "plan.precisions"),
    (["task=summarize"], "summarize.dir is required"),
    (["task=summarize", "summarize.dir=/nonexistent/sweep"], "no such directory"),
])
def test_config_errors_are_clear(tmp_path: Path, args: list[str], needle: str) -> None:
    r = specsim(f"hydra.run.dir={tmp_path}", *args)
    assert r.returncode != 0
    assert needle in r.stderr + r.stdout
    assert "Traceback" not in r.stderr


def test_summarize_lists_failed_jobs(tmp_path: Path) -> None:
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "error.txt").write_text("invalid hardware:\n  hbm_bandwidth_tb_s: bad\n")
    (tmp_path / "1").mkdir()
    pd.DataFrame({"side": ["off", "mtp"], "feasible": [True, True], "interactivity": [40.0, 60.0],
                  "tput_per_gpu": [900.0, 1200.0]}).to_csv(tmp_path / "1" / "curves.csv", index=False)
    table = collect(tmp_path).set_index("job")
    assert "hbm_bandwidth_tb_s" in table.loc["0", "error"]
    assert table.loc["1", "mtp_tput_per_gpu"] == 1200.0 and table.loc["1", "off_max_interactivity"] == 40.0


def test_submitit_local_multirun_then_summarize(tmp_path: Path) -> None:
    """The cluster path: hydra-submitit-launcher's local executor runs the jobs as the Slurm one would."""
    sweep = tmp_path / "sweep"
    r = specsim("-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "model=kimi_k2_5",
                "hardware=h100,h200", "precision=bf16", "max_gpus=8", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr
    assert (sweep / ".submitit").is_dir()
    r = specsim("task=summarize", f"summarize.dir={sweep}", f"hydra.run.dir={tmp_path / 'summary'}")
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(tmp_path / "summary" / "summary.csv")
    assert set(table["hardware"]) == {"h100", "h200"} and (table["result"] == "nothing feasible").all()
