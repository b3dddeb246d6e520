"""report.html: a small compare run writes it, headless Chromium renders it offline, hover shows the point.

The browser tests use the system Chromium and chromedriver (Debian's `chromium`, `chromium-driver`) through
Selenium; they skip with the reason where either is absent. SPECSIM_SCREENSHOT_TO_DOCS=1 (or a missing
docs/report_compare.png) copies the screenshot to docs/ for the README.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.report_html import (
    MAX_TRACE_POINTS,
    compare_report,
    plan_report,
    summarize_report,
    sweep_report,
)
from simulator.tasks.plan import rank_options

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
DOCS_SHOT = ROOT / "docs" / "report_compare.png"
FRONTIER_TRACES = {"MTP points", "MTP frontier", "MTP targets", "MTP P10-P90", "MTP measured (page)",
                   "Off points", "Off frontier", "Off targets", "Off P10-P90", "Off measured (page)"}


@pytest.fixture(scope="module")
def compare_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("compare")
    cmd = [sys.executable, "-m", "simulator", "task=compare", f"hydra.run.dir={out}", "validate_after=false"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return out, r.stdout


def test_compare_writes_self_contained_report(compare_run: tuple[Path, str]) -> None:
    out, stdout = compare_run
    path = out / "report.html"
    assert stdout.rstrip().splitlines()[-1] == f"report: {path}"
    text = path.read_text(encoding="utf-8")
    assert 4e6 < len(text) < 20e6  # plotly.js (~4.8 MB) inlined once, plus the data
    assert text.count("Plotly.newPlot") == 2  # frontier chart and step-time breakdown
    assert remote_references(text) == []


def remote_references(text: str) -> list[str]:
    """src/href attributes of the page's own tags (script bodies, i.e. plotly.js's strings, left out)."""
    tags = re.sub(r"(<script\b[^>]*>).*?</script>", r"\1</script>", text, flags=re.S | re.I)
    return re.findall(r"\b(?:src|href)\s*=\s*['\"]?(?:https?:)?//[^'\" >]*", tags, re.I)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(f"no system browser: needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium "
                    "chromium-driver)")
    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"specsim-chromium-{os.getpid()}"
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1300,900", f"--user-data-dir={profile}",
                "--proxy-server=127.0.0.1:9"):  # network disabled: any http(s) fetch would fail
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def rendered(driver: object, path: Path, timeout_s: float = 30.0) -> list[list[object]]:
    """Open path, wait until every plot has rendered; (name, point count) of the first plot's traces."""
    driver.get(path.as_uri())
    script = ("const g = document.querySelectorAll('.js-plotly-plot');"
              "if (!window.Plotly || g.length === 0 || [...g].some(d => !d._fullLayout)) return null;"
              "return g[0].data.map(t => [t.name, t.x ? t.x.length : 0]);")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        traces = driver.execute_script(script)
        if traces:
            return traces
        time.sleep(0.2)
    raise AssertionError(f"{path.name} did not render within {timeout_s:.0f} s")


def test_browser_renders_traces_and_hover_shows_deployment(compare_run: tuple[Path, str], browser: object,
                                                           tmp_path: Path) -> None:
    out, _ = compare_run
    traces = rendered(browser, out / "report.html")
    names = {n for n, _ in traces}
    assert FRONTIER_TRACES <= names, f"missing traces: {FRONTIER_TRACES - names}"
    assert all(count > 0 for _, count in traces)
    curves = pd.read_csv(out / "curves.csv")
    i = [n for n, _ in traces].index("MTP frontier")
    hover = browser.execute_script(
        "const gd = document.querySelector('.js-plotly-plot');"
        f"Plotly.Fx.hover(gd, [{{curveNumber: {i}, pointNumber: {traces[i][1] // 2}}}]);"
        "const t = gd.querySelector('.hoverlayer .hovertext'); return t ? t.textContent : '';")
    deployments = set(curves.loc[curves["side"] == "mtp", "deployment"])
    assert any(f"deployment: {d}" in hover for d in deployments), hover
    assert "TPOT ms" in hover and "$/M tokens" in hover and "tok/s/MW" in hover
    # the metric toggle swaps the y axis
    browser.execute_script("document.querySelectorAll('.updatemenu-button')[1].dispatchEvent("
                           "new MouseEvent('click', {bubbles: true}))")
    title = browser.execute_script("return document.querySelector('.js-plotly-plot').layout.yaxis.title.text")
    assert title.startswith("$ / M tokens")
    browser.execute_script("document.querySelectorAll('.updatemenu-button')[0].dispatchEvent("
                           "new MouseEvent('click', {bubbles: true}))")
    shot = tmp_path / "report_compare.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
    if os.environ.get("SPECSIM_SCREENSHOT_TO_DOCS") == "1" or not DOCS_SHOT.exists():
        shutil.copyfile(shot, DOCS_SHOT)


def test_report_renders_with_network_disabled(compare_run: tuple[Path, str], browser: object) -> None:
    """The browser's proxy is a closed port: the page must need nothing but the file itself."""
    out, _ = compare_run
    assert remote_references((out / "report.html").read_text(encoding="utf-8")) == []
    rendered(browser, out / "report.html")
    assert browser.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg').length") >= 2
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert [u for u in fetched if not u.startswith(("file:", "data:", "blob:"))] == []


def synthetic_sweep(groups: int, bins: int) -> pd.DataFrame:
    """A frontiers frame like sweep.frontier_frame's, `groups` (model, GPU) pairs x 2 precisions x 2 sides."""
    rng = np.random.default_rng(0)
    rows = []
    for g in range(groups):
        for precision in ("fp8", "fp4"):
            for side in ("off", "mtp"):
                x = np.sort(rng.uniform(1, 500, bins))
                rows.append(pd.DataFrame({
                    "model": f"m{g % 4}", "hardware": f"gpu{g // 4}", "precision": precision, "workload": "1k1k",
                    "side": side, "interactivity": x, "tput_per_gpu": 1e5 / x, "cost_per_mtok": x / 100,
                    "deployment": "tp8-ep8-dpa", "concurrency": 64, "draft_tokens": 3, "acceptance_scale": 1.0}))
    return pd.concat(rows, ignore_index=True)


def test_sweep_report_thins_frontiers_and_stays_small(tmp_path: Path) -> None:
    frame = synthetic_sweep(groups=72, bins=2048)  # 9 GPUs x 8 models, far more bins than any sweep keeps
    path = sweep_report(tmp_path, frame, {f"gpu{i}": 1.5 for i in range(18)})
    size = path.stat().st_size
    assert size < 20e6, f"{size / 1e6:.1f} MB"
    text = path.read_text(encoding="utf-8")
    assert text.count('"type":"dropdown"') == 1
    assert text.count('"label":"m') == 72  # one dropdown entry per (model, GPU)
    assert len(frame) > 72 * 4 * MAX_TRACE_POINTS  # the thinning did the work


def test_plan_report_tables_infeasible_options(tmp_path: Path) -> None:
    points = pd.DataFrame({"gpu": "b200", "precision": "fp8", "side": ["off", "off", "mtp", "mtp"],
                           "deployment": "tp8", "gpus": 8, "concurrency": [64, 8, 64, 8],
                           "draft_tokens": [0, 0, 2, 2], "interactivity": [40.0, 120.0, 60.0, 150.0],
                           "tput_per_gpu": [3000.0, 900.0, 3500.0, 1200.0]})
    options = pd.DataFrame({"gpu": ["b200", "b200", "h100", "h100"], "precision": "fp8",
                            "side": ["off", "mtp", "off", "mtp"], "usd_per_gpu_hour": [5.0, 5.0, 2.0, 2.0],
                            "all_in_kw": [2.0, 2.0, 1.2, 1.2],
                            "reason": ["", "", "does not fit even at tp8 (8 GPUs)", "does not fit even at tp8"]})
    table = rank_options(points, options, [50.0, 130.0], 1e6)
    text = plan_report(tmp_path, points, options, table, "plan test").read_text(encoding="utf-8")
    assert "does not fit even at tp8 (8 GPUs)" in text and "cheapest per floor" in text
    assert "no point reaches 130 tok/s/user" in text  # the Off option at the higher floor


def test_summarize_report_draws_every_job(tmp_path: Path) -> None:
    curves = pd.DataFrame({"side": ["mtp", "mtp", "off", "off"], "feasible": True, "deployment": "tp8",
                           "interactivity": [30.0, 90.0, 25.0, 70.0], "tput_per_gpu": [2000.0, 400.0, 1500.0, 300.0]})
    table = pd.DataFrame({"job": ["0", "0", "1"], "overrides": ["hardware=b200", "hardware=b200", "hardware=h200"],
                          "model": "glm5", "hardware": ["b200", "b200", "h200"], "interactivity": [40.0, 60.0, None],
                          "mtp_tput_per_gpu": [1500.0, 900.0, None], "off_tput_per_gpu": [1000.0, 600.0, None],
                          "error": [None, None, "h200: does not fit"]})
    text = summarize_report(tmp_path, table, {"0": curves}).read_text(encoding="utf-8")
    for name in ("0 glm5 b200 MTP", "0 glm5 b200 Off", "0 glm5 b200 MTP targets"):
        assert f'"name":"{name}"' in text
    assert "h200: does not fit" in text and '"name":"1 glm5 h200 MTP"' not in text


def test_compare_report_marks_clamped_targets_and_takes_a_breakdown(tmp_path: Path) -> None:
    points = pd.DataFrame({"side": ["mtp", "mtp", "off", "off"], "deployment": ["tp8-ep8", "tp4", "tp8", "tp4"],
                           "gpus": 8, "concurrency": [64, 4, 64, 4], "draft_tokens": [3, 3, 0, 0],
                           "acceptance_length": [2.5, 2.5, 1.0, 1.0], "step_ms": [30.0, 12.0, 20.0, 9.0],
                           "prefill_stall_ms": [2.0, 0.5, 2.0, 0.5], "interactivity": [60.0, 180.0, 50.0, 110.0],
                           "tput_per_gpu": [3000.0, 500.0, 2000.0, 300.0], "feasible": True})
    side = {"tput_per_gpu": 900.0, "cost_per_mtok": 1.0, "tok_s_per_mw": 1e5, "concurrency": 16,
            "draft_tokens": 3, "deployment": "tp8-ep8"}
    rows = [{"interactivity": 100.0, "mtp": side, "off": {**side, "draft_tokens": 0}},
            {"interactivity": 110.0, "clamped": True, "mtp": side, "off": None}]
    breakdown = pd.DataFrame({"side": ["mtp", "mtp", "off"], "interactivity": 100.0,
                              "term": ["MoE experts", "attention", "MoE experts"], "ms": [5.0, 3.0, 4.0]})
    text = compare_report(tmp_path, {"model": "m", "hardware": "g", "precision": "fp8", "workload": "1k1k"},
                          points, rows, 2.0, 1.5, breakdown=breakdown).read_text(encoding="utf-8")
    for name in ("MTP targets", "MTP clamped targets", "Off targets", "MoE experts", "attention"):
        assert f'"name":"{name}"' in text
    assert '"name":"Off clamped targets"' not in text and "Coarse breakdown" not in text
    coarse = compare_report(tmp_path, {"model": "m"}, points, rows, 2.0, 1.5).read_text(encoding="utf-8")
    assert "Coarse breakdown" in coarse and '"name":"prefill stall per step"' in coarse
