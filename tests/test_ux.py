"""What a new user hits (issue 18): each item through the CLI as a user types it (a subprocess: exit code, the
line printed, the file written), or through `cli.compose` and the task's `run` where a subprocess would be
slow. Cheap cases only: one node (`max_gpus=8`), no validation table, uncalibrated priors where allowed."""

from __future__ import annotations

import importlib
import json
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator import cli
from simulator.calibration.fit import FitResult
from simulator.comparison import format_table, run_compare
from tests.test_user_errors import run_task, specsim

ROOT = Path(__file__).resolve().parents[1]
CHEAP = ["max_gpus=8", "validate_after=false", "calibration=none"]


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    """The run's stderr, checked to be exactly one `specsim: error: ...` line, exit code 2, no traceback."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("specsim: error: "), r.stderr
    return lines[0]


# ---- 5. empty lists ------------------------------------------------------------------------------------------

def test_empty_interactivity_means_the_default_targets(tmp_path: Path) -> None:
    r = specsim("interactivity=[]", *CHEAP, f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    assert "no interactivity range covered" not in r.stdout
    rows = [line for line in r.stdout.splitlines() if line.strip()[:1].isdigit() and " | " in line]
    assert len(rows) == 3, r.stdout  # 25/50/75 % of the range both sides cover
    assert cli.compose(["min_interactivity=[]"]).min_interactivity is None  # plan's default floors


@pytest.mark.parametrize("arg,key", [("plan.gpus=[]", "plan.gpus"), ("pages=[]", "pages")])
def test_an_empty_selection_is_a_named_error(tmp_path: Path, arg: str, key: str) -> None:
    line = one_error_line(specsim("task=plan" if key == "plan.gpus" else "task=validate", arg,
                                  f"hydra.run.dir={tmp_path}"))
    assert f"{key}: an empty list" in line
    if key == "plan.gpus":
        assert "h100, h200" in line  # the allowed values


# ---- 6 and 7. a group given something that is not a name; a misspelt key ---------------------------------

HARDWARE = "hardware: expected one of b200, b300, gb200, gb300, h100, h200, mi300x, mi325x, mi355x"


@pytest.mark.parametrize("arg,expected", [
    ("hardware=null", f"{HARDWARE}; got null"),
    ("hardware=3", f"{HARDWARE}; got 3"),
    ("hardware=inf", f"{HARDWARE}; got inf"),
    ("hardware=h2000", f"{HARDWARE}; got 'h2000' (did you mean h200?)"),
    ("model=[a,b]", "model: expected one of deepseek_r1, deepseek_v4_pro, glm5, "),
    ("workload=nan", "workload: expected one of 1k1k, 1k8k, 8k1k; got nan"),
    ("workload=1k1", "(did you mean 1k1k?)"),
    ("modle=glm5", "unknown key 'modle' (did you mean model?); keys: task, precision,"),
    ("plan.gpu=[b200]", "unknown key 'plan.gpu' (did you mean plan.gpus?)"),
    ("hardware.hbm_bandwith_tb_s=9", "hardware has no field 'hbm_bandwith_tb_s' (did you mean hbm_bandwidth_tb_s?)"),
])
def test_a_bad_group_value_or_key_is_one_named_line(tmp_path: Path, arg: str, expected: str) -> None:
    line = one_error_line(specsim(arg, f"hydra.run.dir={tmp_path}"))
    assert expected in line, line
    assert "+modle" not in line and "Traceback" not in line


def test_a_multirun_with_a_bad_option_fails_before_any_job(tmp_path: Path) -> None:
    line = one_error_line(specsim("-m", "hardware=h200,b2000", f"hydra.sweep.dir={tmp_path / 'sweep'}"))
    assert f"{HARDWARE}; got 'b2000' (did you mean b200?)" in line
    assert not (tmp_path / "sweep").exists()


def test_valid_overrides_pass_the_check() -> None:
    user_conf = ROOT / "examples" / "user_conf"
    for argv in (["-m", "hardware=h200,b200", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
                 ["plan.usd_per_gpu_hour={b200:2.5}", "rates.tier=neocloud", "+hardware.hbm_usable_gb=500"],
                 ["--cfg", "job", "model=glm5", "serving.prefill_mode=chunked", "sweep.draft_tokens=[0,1]"],
                 [f"hydra.searchpath=[file://{user_conf}]", "hardware=h200_2xbw", "rates=era_a_user"]):
        assert cli.override_error(argv) is None, argv


# ---- 9. calibration: the estimate first, progress per refit ------------------------------------------------

def test_calibrate_prints_its_estimate_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture) -> None:
    task = importlib.import_module("simulator.tasks.calibrate")
    calls: list[str] = []

    class Problem:
        space = type("S", (), {"names": []})()
        points, cases = [], []
        pages = [type("O", (), {"page": p})() for p in ("a", "b", "b")]

    def fake_cv(data_dir: Path, mode: str, pages: list) -> dict:
        calls.append(capsys.readouterr().out)  # what was printed before the refits start
        return {"mode": mode, "page_sigma_log": 0.1, "summary": {}}

    monkeypatch.setattr(task, "data_dir_of", lambda d: tmp_path)
    monkeypatch.setattr(task, "build_problem", lambda d, p=None: Problem())
    monkeypatch.setattr(task, "fit", lambda p: FitResult([], np.zeros(0), np.zeros((0, 0)), {}, {}))
    monkeypatch.setattr(task, "format_fit", lambda r: "fit")
    monkeypatch.setattr(task, "run_cv", fake_cv)
    monkeypatch.setattr(task.store, "to_yaml_dict", lambda name, r, s: {"calibration": {"name": name}})
    run_task(tmp_path, "task=calibrate", "calibrate.name=pytest_scratch")
    before = calls[0].splitlines()
    assert before[0].startswith("calibrate: one fit, then 13 leave-one-page-out refits")  # the bundled pages
    assert "min in all; calibrate.cross_validate=false skips the refits" in before[0]
    assert any(line.startswith("calibrate: then 2 leave-one-page-out refits") for line in before)


def test_cross_validation_reports_each_refit(capsys: pytest.CaptureFixture) -> None:
    crossval = importlib.import_module("simulator.calibration.crossval")
    folds = crossval.refit_each(["p1", "p2", "p3"], lambda g: g, "cv")  # stderr is no terminal under pytest
    assert folds == ["p1", "p2", "p3"]
    out = capsys.readouterr().out
    assert "refit 1/3 done (held out p1)" in out and "refit 3/3 done (held out p3)" in out and "left" in out


# ---- 8. compare validates only against its own page(s) ----------------------------------------------------

def validation_rows(text: str) -> list[str]:
    """The rows of the validation table in `text` (each starts with the page's file name)."""
    return [line for line in text.splitlines() if line.split(" ", 1)[0].endswith((".txt", ".yaml"))
            and " | " in line]


def test_default_compare_validates_its_own_page_only_in_every_job(tmp_path: Path) -> None:
    r = specsim("-m", "precision=fp4,fp8", "max_gpus=8", f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    fp4, fp8 = r.stdout.split("#1 : ")  # Hydra's header of each job
    rows = validation_rows(fp4)
    assert len(rows) == 3 and {row.split()[0] for row in rows} == {"glm5_b200_fp4_1k1k.txt"}, fp4
    assert "validation against the benchmark pages" not in fp8  # GLM-5 B200 FP8 1k/1k has no page


# ---- 2 (table). TTFT of each side's reading; no concurrency nobody ran ----------------------------------------

def test_compare_table_and_summary_carry_ttft(tmp_path: Path) -> None:
    r = specsim("interactivity=[60,100]", *CHEAP, f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    head = next(line for line in r.stdout.splitlines() if line.startswith("tok/s/user"))
    assert "TTFT s MTP" in head
    rows = json.loads((tmp_path / "summary.json").read_text())["rows"]
    for row in rows:
        for side in ("mtp", "off"):
            assert 0 < row[f"{side}_ttft_s"] < 10 and row[f"{side}_throttled_by_prefill"] is False
    cell = f"{rows[0]['mtp_ttft_s']:.3f}"  # the printed TTFT is the summary's
    assert cell in next(line for line in r.stdout.splitlines() if line.strip().startswith("60 |"))


def test_a_read_between_two_deployments_prints_no_concurrency() -> None:
    cfg = cli.compose(CHEAP)
    result = run_compare(cfg.scenario(), cfg.key, cfg.search, cfg.rates, cfg.rate_tier, None, max_gpus=8)
    switches = [(side, (x[i - 1] + x[i]) / 2) for side, s in result.sides.items()
                for x, d in [(s.front["interactivity"].to_numpy(), s.front["deployment"].to_numpy())]
                for i in range(1, len(d)) if d[i] != d[i - 1]]
    assert switches, "the default case's fronts change deployment somewhere (tp4 -> tp8)"
    side, target = switches[0]
    result = run_compare(cfg.scenario(), cfg.key, cfg.search, cfg.rates, cfg.rate_tier, [target], max_gpus=8)
    read = result.rows[0][side]
    assert read["concurrency"] is None and len(set(read["interpolated_between"])) == 2
    table = format_table(result)
    row = next(line for line in table.splitlines() if line.strip().startswith(f"{target:.0f} |"))
    conc = row.split(" | ")[-2].split()  # the conc MTP / Off cells
    assert conc[0 if side == "mtp" else 1] == "-" and "conc -: the target lies between" in table
    header = next(line for line in table.splitlines() if line.startswith("tok/s/user"))
    assert len(row) == len(header)  # the dash keeps the columns aligned


# ---- 10. smaller things --------------------------------------------------------------------------------------

def test_an_unreachable_target_prints_the_reach_line_only(tmp_path: Path) -> None:
    r = specsim("interactivity=[1e9]", *CHEAP, f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    assert "not reached at 1e+09 tok/s/user: reachable MTP" in r.stdout and ", Off " in r.stdout
    assert "tok/s/user |" not in r.stdout and "    - " not in r.stdout  # no header, no row of dashes


def test_summarize_prints_consistent_digits_and_integer_counts(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    run_task(sweep / "0", *CHEAP, "interactivity=[60,100]")
    (sweep / "1").mkdir()
    (sweep / "1" / "error.txt").write_text("invalid config: precision: Input should be 'fp4', 'fp8' or 'bf16'\n")
    r = specsim("task=summarize", f"summarize.dir={sweep}", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("job "))
    table = [line.split() for line in lines[head + 1:head + 3]]
    columns = lines[head].split()
    k = [row[columns.index("mtp_draft_tokens")] for row in table]
    assert k == ["3", "3"], lines[head:head + 3]  # not 3.0, though job 1 has none
    cost = [row[columns.index("mtp_cost_per_mtok")] for row in table]
    assert all(len(c.replace(".", "").lstrip("0")) == 3 for c in cost), cost  # three significant digits each
    csv = (sweep / "summary.csv").read_text().splitlines()
    written = pd.read_csv(sweep / "summary.csv")
    assert not written.isna().all().any()  # no column without a value
    assert ",3,tp" in csv[1] and ",3.0," not in csv[1]


def test_advise_names_its_model_and_workload(tmp_path: Path) -> None:
    r = specsim("task=advise", "plan.gpus=[b200]", "plan.precisions=[fp8]", "min_interactivity=[50]", *CHEAP,
                f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    assert "draft-length advice for glm5, workload 1k1k (k that maximises" in r.stdout
    assert (tmp_path / "advice.csv").is_file()


def test_mtp_hurts_ranges_drop_slivers_and_merge_near_gaps() -> None:
    advise = importlib.import_module("simulator.tasks.advise")
    assert advise.coarsen([(0.0, 10.0), (52.7, 52.8), (60.0, 70.0), (70.5, 80.0)]) == [(0.0, 10.0), (60.0, 80.0)]
    assert advise.format_ranges(advise.coarsen([(52.7, 52.8)])) == "none"


# ---- 4. the README's commands that say their exit code do what it says --------------------------------------

def readme_commands(readme: Path = ROOT / "README.md") -> list[tuple[str, int, str]]:
    """(command, exit code, the rest of its comment) of each `specsim ...` line in the README's ```bash blocks
    whose comment says `exit N` (the cheap ones: each runs in seconds)."""
    found, in_bash = [], False
    for line in readme.read_text().splitlines():
        if line.startswith("```"):
            in_bash = line.strip() == "```bash"
            continue
        match = re.match(r"(specsim .*?)\s+#(.*\bexit (\d)\b.*)$", line) if in_bash else None
        if match:
            found.append((match.group(1), int(match.group(3)), match.group(2)))
    return found


def test_readme_marks_its_cheap_commands() -> None:
    commands = {cmd: code for cmd, code, _ in readme_commands()}
    assert commands.get("specsim model=kimi_k2_5 hardware=h100 precision=bf16 max_gpus=8") == 3
    assert commands.get("specsim modle=glm5") == 2 and commands.get("specsim --help") == 0


@pytest.mark.parametrize("command,code,comment", readme_commands())
def test_readme_command_exits_as_it_says(tmp_path: Path, command: str, code: int, comment: str) -> None:
    args = shlex.split(command)[1:]
    r = specsim(*args, *([] if "--help" in args else [f"hydra.run.dir={tmp_path}"]))
    assert r.returncode == code, (command, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    if code == 3:  # it says why, and writes each side's row with the reason
        assert "weights need 257.1 GB per GPU" in r.stdout and "nothing feasible" in r.stdout
        curves = pd.read_csv(tmp_path / "curves.csv")
        assert set(curves["side"]) == {"mtp", "off"} and not curves["feasible"].any()
    if code == 2:  # the line the comment promises, as far as it quotes it
        promised = comment.split("exit 2: ", 1)[1].split("...")[0].strip()
        assert one_error_line(r).startswith(f"specsim: error: {promised}"), (promised, r.stderr)


# ---- 2. a TTFT limit a planner can set; 1. long work says so first and shows progress ----------------------

def test_max_ttft_s_leaves_long_waits_off_the_frontier_and_says_how_many(tmp_path: Path) -> None:
    r = specsim(f"hydra.run.dir={tmp_path}", *CHEAP, "model=glm5", "hardware=b200", "search=open", "max_ttft_s=0.2")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if "max_ttft_s=0.2" in x)
    counts = [int(n) for n in re.findall(r"(\d+) (?:MTP|OFF)", line)]
    assert len(counts) == 2 and sum(counts) > 0, line
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert any("max_ttft_s=0.2" in n for n in summary["notes"])
    curves = pd.read_csv(tmp_path / "curves.csv")
    over = curves[curves["feasible"] & (curves["ttft_ms"] > 200)]
    assert len(over) == sum(counts)  # the points it left off are counted, every one of them
    cfg = cli.compose([*CHEAP, "model=glm5", "hardware=b200", "search=open", "max_ttft_s=0.2"])
    res = run_compare(cfg.scenario(), cfg.key, "open", cfg.rates, max_gpus=8, max_ttft_s=0.2)
    assert all((s.front["ttft_ms"] <= 200).all() for s in res.sides.values())


def test_a_ttft_limit_nothing_meets_is_said(tmp_path: Path) -> None:
    r = specsim(f"hydra.run.dir={tmp_path}", *CHEAP, "model=glm5", "hardware=b200", "max_ttft_s=1e-6")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "TTFT above max_ttft_s=1e-06" in r.stdout and "within max_ttft_s" in r.stdout


def test_long_bands_validate_and_plan_say_their_time_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from simulator import planning
    from simulator.calibration import uncertainty
    from simulator.comparison import add_bands
    from simulator.tasks import validate

    monkeypatch.setattr(uncertainty, "PROGRESS_AFTER_S", 0.0)  # every run counts as long here
    monkeypatch.setattr(validate, "PROGRESS_AFTER_S", 0.0)
    monkeypatch.setattr(planning, "PROGRESS_AFTER_S", 0.0)
    cfg = cli.compose(["max_gpus=8"])
    res = run_compare(cfg.scenario(), cfg.key, "benchmark", cfg.rates, max_gpus=8)
    add_bands(res, cfg.scenario(), cfg.calibration, progress=True)
    assert re.search(r"P10-P90 bands: 64 parameter draws over [\d,]+ points, about \d+ s more", capsys.readouterr().out)
    pages = validate.load_pages(cfg)[:2]
    validate.validate_with_progress(pages, cfg)
    assert re.search(r"validate: 2 pages, about \d+ s more", capsys.readouterr().out)
    plan_cfg = cli.compose(["task=plan", "max_gpus=8", "plan.gpus=[b200]", "plan.precisions=[fp8]"])
    planning.collect_options(plan_cfg, progress=True)
    out = capsys.readouterr().out
    assert re.search(r"plan: [\d,]+ points \(2 GPU x precision x side options, one launch per k = 0, 1, 2, 3", out)
    assert re.search(r"plan: about \d+ s more", out)


def test_sweep_estimate_is_measured_on_the_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_task(tmp_path, "task=sweep", "max_gpus=8", "sweep.hardware=[b200]", "sweep.backend=torch",
             "sweep.concurrency=[1,8,64]", "sweep.draft_tokens=[0,2]")
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("sweeping"))
    assert "points/s (measured on this batch)" in line


def test_cross_validation_reports_the_gain_error(tmp_path: Path) -> None:
    """The held-out table carries the MTP/Off gain's error per target (predicted gain / measured gain - 1), and
    the summary its median, beside each side's."""
    crossval = importlib.import_module("simulator.calibration.crossval")

    def row(side: str, t: float, measured: float, predicted: float) -> dict:
        return {"page": "p", "side": side, "interactivity": t, "measured": measured, "predicted": predicted,
                "error_pct": (predicted / measured - 1) * 100, "p10": None, "p90": None, "inside_band": None}
    rows = [row("mtp", 10, 200, 300), row("off", 10, 100, 100),  # gain 2 -> 3: +50 %
            row("mtp", 20, 100, 50), row("off", 20, 100, 100),  # gain 1 -> 0.5: -50 %
            row("mtp", 30, 100, 110)]  # one side only: no gain
    assert crossval.gain_errors(rows) == {("p", 10): pytest.approx(50.0), ("p", 20): pytest.approx(-50.0)}
    summary = crossval.target_summary(rows)
    assert summary["gain"] == {"n": 2, "median_abs_pct": pytest.approx(50.0), "median_signed_pct": pytest.approx(0.0),
                               "mean_abs_log": pytest.approx((np.log(1.5) + abs(np.log(0.5))) / 2)}
    table = crossval.format_targets(rows, summary)
    assert "+50%" in table and "gain: median |err| 50.0 %" in table
    # and one line per page: each side's signed errors and the gain's, lowest interactivity first
    assert "mtp +50/-50/+10 %, off +0/+0 %, gain +50/-50 %; direction 0/0, inside 0/0" in table
    frame = pd.read_csv(crossval.write_targets_csv(rows, tmp_path / "cv.csv"))  # the gain on the MTP row
    mtp, off = frame[frame.side == "mtp"], frame[frame.side == "off"]
    assert len(frame) == 5 and mtp.gain_error_pct.round(6).tolist()[:2] == [50.0, -50.0]
    assert mtp.gain_error_pct.isna().tolist() == [False, False, True] and off.gain_error_pct.isna().all()
