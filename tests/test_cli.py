"""End-to-end CLI: the README's main command, JSON report, and clear errors for user mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def specsim(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "simulator", f"hydra.run.dir={tmp_path}", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_compare_writes_table_curves_plot_and_report(tmp_path: Path) -> None:
    report = tmp_path / "out.json"
    r = specsim(tmp_path, "model=deepseek_r1", "hardware=mi355x", "precision=fp4",
                "interactivity=[40,80]", f"report={report}", "validate_after=false")
    assert r.returncode == 0, r.stderr
    assert "MTP vs Off" in r.stdout
    data = json.loads(report.read_text())
    assert (data["model"], data["hardware"], data["precision"], data["workload"]) == (
        "deepseek_r1", "mi355x", "fp4", "1k1k")
    assert [p["interactivity"] for p in data["points"]] == [40.0, 80.0]
    for p in data["points"]:
        for side in ("mtp", "off"):
            fig = p[side]
            assert fig is None or {"tput_per_gpu", "cost_per_mtok", "tok_s_per_mw", "concurrency",
                                   "draft_tokens"} <= set(fig)
            if fig:  # the band over the calibration's uncertainty
                assert 0 < fig["tput_per_gpu_p10"] <= fig["tput_per_gpu_p90"]
    curves = pd.read_csv(tmp_path / "curves.csv")
    for col in ("deployment", "concurrency", "draft_tokens", "step_ms", "ttft_ms", "interactivity",
                "tput_per_gpu", "output_tput_per_gpu", "gpus", "feasible"):
        assert col in curves.columns
    assert set(curves["side"]) == {"mtp", "off"}
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_open_search_reports_best_k_and_infeasible_points(tmp_path: Path) -> None:
    r = specsim(tmp_path, "model=qwen3_5_397b", "hardware=h200", "precision=fp8", "search=open", "max_gpus=8",
                "validate_after=false")  # the page's validation table is tested in test_calibration
    assert r.returncode == 0, r.stderr
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert set(curves.loc[curves["side"] == "mtp", "draft_tokens"]) == {1, 2, 3, 4}
    assert curves["feasible"].all() or curves.loc[~curves["feasible"], "infeasible_reason"].str.len().gt(0).all()


def test_read_page_clamps_a_target_outside_the_front_and_flags_it(tmp_path: Path) -> None:
    """read=page: 10 tok/s/user lies below both predicted fronts of GLM-5 on B200 (they start above 15): it is
    read at the front's edge as the pages do, marked c in the table and clamped in the JSON; the default
    (strict) leaves it unread (null) and says what each side reaches."""
    report = tmp_path / "page.json"
    r = specsim(tmp_path / "page", "interactivity=[10,60]", "read=page", f"report={report}", "validate_after=false")
    assert r.returncode == 0, r.stderr
    row10 = next(line for line in r.stdout.splitlines() if line.strip().startswith("10 |"))
    assert row10.count("c ") >= 2  # both sides' throughput cells carry the mark
    assert "c: the target lies outside that side's predicted front" in r.stdout
    points = {p["interactivity"]: p for p in json.loads(report.read_text())["points"]}
    assert points[10.0]["mtp"]["clamped"] is True and points[10.0]["off"]["clamped"] is True
    assert points[10.0]["mtp"]["tput_per_gpu"] > 0
    assert points[60.0]["mtp"]["clamped"] is False
    summary = json.loads((tmp_path / "page" / "summary.json").read_text())
    assert summary["rows"][0]["mtp_clamped"] is True

    strict = tmp_path / "strict.json"
    r = specsim(tmp_path / "strict", "interactivity=[10,60]", f"report={strict}", "validate_after=false")
    assert r.returncode == 0, r.stderr
    assert "not reached at 10 tok/s/user" in r.stdout
    points = {p["interactivity"]: p for p in json.loads(strict.read_text())["points"]}
    assert points[10.0]["mtp"] is None and points[10.0]["off"] is None


@pytest.mark.parametrize("args,needle", [
    (["read=edge"], "read: Input should be 'strict' or 'page'"),
    (["model=gpt5"], "model: expected one of deepseek_r1"),
    (["hardware=h200", "precision=fp4"], "FP4 tensor cores"),
    (["search=everything"], "search: Input should be 'benchmark' or 'open'"),
    (["task=nope"], "task: Input should be 'compare', 'validate'"),
    (["serving.mem_fraction=2"], "mem_fraction"),
    (["interactivity=[fast]"], "interactivity"),
])
def test_user_mistakes_get_a_clear_error(tmp_path: Path, args: list[str], needle: str) -> None:
    r = specsim(tmp_path, *args)
    assert r.returncode != 0
    assert needle in r.stderr + r.stdout
    assert "Traceback" not in r.stderr
