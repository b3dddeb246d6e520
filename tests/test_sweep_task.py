"""task=sweep: one launch over lists, frontiers as Parquet + CSV + PNG, clear errors for bad lists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def specsim(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "simulator", f"hydra.run.dir={tmp_path}", "task=sweep", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_sweep_writes_frontiers_and_reports_speed(tmp_path: Path) -> None:
    r = specsim(tmp_path, "sweep.hardware=[b200,h200]", "sweep.model=[glm5,llama3_3_70b]",
                "sweep.precision=[fp8,fp4]", "sweep.concurrency=[1,4,16,64]", "sweep.backend=torch")
    assert r.returncode == 0, r.stderr
    assert "points/s" in r.stdout
    assert "skipped glm5/h200/fp4" in r.stdout  # no FP4 on Hopper: listed, not crashed
    frame = pd.read_parquet(tmp_path / "frontiers.parquet")
    assert set(frame["hardware"]) == {"b200", "h200"}
    assert set(frame.loc[frame["model"] == "llama3_3_70b", "side"]) == {"off"}  # no draft module
    assert set(frame.loc[frame["side"] == "mtp", "draft_tokens"]) <= {1, 2, 3, 4}
    assert (tmp_path / "frontiers.csv").is_file()
    assert {p.name for p in tmp_path.glob("sweep_*.png")} == {"sweep_glm5.png", "sweep_llama3_3_70b.png"}
    for _, g in frame.groupby(["model", "hardware", "precision", "side"]):
        g = g.sort_values("interactivity")
        assert (g["tput_per_gpu"].diff().dropna() < 0).all()  # a Pareto front


@pytest.mark.parametrize("args,needle", [
    (["sweep.hardware=[]"], "sweep.hardware: List should have at least 1 item"),
    (["sweep.hardware=[a100]"], "unknown hardware 'a100'"),
    (["sweep.backend=cuda"], "sweep.backend: Input should be 'auto', 'triton' or 'torch'"),
    (["sweep.compile=maybe"], "sweep.compile"),
    (["sweep.hardware=[b200]", "sweep.chunk_points=100000000", "sweep.max_chunk_bytes=1000"], "max_chunk_bytes"),
])
def test_sweep_bad_input_is_a_clear_error(tmp_path: Path, args: list[str], needle: str) -> None:
    r = specsim(tmp_path, *args)
    assert r.returncode != 0 and needle in r.stderr and "Traceback" not in r.stderr


def test_sweep_prints_the_size_and_progress_lines_when_not_on_a_terminal(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    """Issue 11 item 11: the point count and an estimate up front; progress with ETA in a log."""
    from kernels import sweep_triton

    r = specsim(tmp_path, "sweep.hardware=[b200]", "sweep.concurrency=[1,8]", "sweep.backend=torch")
    assert r.returncode == 0, r.stderr
    assert r.stdout.index("sweeping ") < r.stdout.index("points/s on")
    assert "deployments x 2 concurrency x 5 draft_tokens x 1 acceptance_multiplier" in r.stdout
    assert "about " in r.stdout and "dynamo" not in r.stderr.lower()
    bar = sweep_triton.progress_bar(1000, None)  # stdout captured: not a terminal
    assert isinstance(bar, sweep_triton.LineProgress)
    bar.every_s = 0.0
    with bar:
        bar.update(250)
    out = capsys.readouterr().out
    assert "sweep: 250 / 1,000 points (25.0 %)" in out and "ETA" in out and "sweep: 250 points in" in out
