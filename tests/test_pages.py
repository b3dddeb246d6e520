"""Parser for the InferenceX "MTP vs Off" comparison pages: raw pages, hand-written fixtures, fuzzing."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.catalog import CONF_DIR, list_keys
from simulator.pages import (
    HARDWARE_NAMES,
    MODEL_NAMES,
    Page,
    PageParseError,
    PagePoint,
    SideFigures,
    bundled_pages,
    figures_pages,
    hardware_key,
    load_figures_file,
    load_page_file,
    measured_direction,
    model_key,
    modelled_pages,
    mtp_repeats_off,
    parse_page,
)

SHARED_PAGES = Path(__file__).parents[2] / "shared" / "pages"
SHARED_FIGURES = Path(__file__).parents[2] / "shared" / "data" / "pages" / "inferencex_mtp_vs_off.yaml"
BUNDLED_FIGURES = CONF_DIR / "page_figures" / "inferencex_mtp_vs_off.yaml"
NOT_MODELLED = {"deepseek-r1-gb200-fp4-mtp-vs-none", "deepseek-r1-b200-fp4-mtp-vs-none"}
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Hand-written, made-up figures in the one-value-per-line layout.
LINES_PAGE = """gpt-oss-120b · Speculative Decoding

GB200 NVL72 FP4: MTP vs Off Speculative Decoding

Comparison on GB200 NVL72 FP4 (NVIDIA Blackwell) running gpt-oss-120b. More text.

At 100 tok/s/user on gpt-oss-120b (GB200 NVL72 FP4), MTP delivers 900 tok/s/GPU; Off 800.

Throughput at 150 tok/s/user on gpt-oss-120b (GB200 NVL72 FP4): MTP hits 500, Off hits 300.
(Numbers reflect this URL's pinned 8k/1k · fp4 workload.)

Metric
Interactivity (tok/s/user)
Interactivity (tok/s/user)
Throughput (tok/s/gpu)
MTP:900.5Off:800.0
MTP:500.0Off:300.2
Cost ($/M tok)
MTP:$0.682Off:$0.767
MTP:$1.228Off:$2.045
tok/s/MW
MTP:428810Off:380952
MTP:238095Off:142952
Concurrency
MTP:~128Off:~96
MTP:~32Off:~12
"""

# The same kind of page as a markdown table.
TABLE_PAGE = """# MI325X FP8: MTP vs Off Speculative Decoding
Comparison on MI325X FP8 (AMD CDNA 3) running Llama 3.3 70B.
MTP posts 700 tok/s/GPU at 30 tok/s/user on Llama 3.3 70B (MI325X FP8); Off posts 650.
Numbers reflect this URL's pinned 1k/8k · fp8 workload.

| Metric | Interactivity (tok/s/user) |
|---|---|
| Throughput (tok/s/gpu) | MTP:700.0Off:650.5 |
| Cost ($/M tok) | MTP:$0.508Off:$0.547 |
| tok/s/MW | MTP:321101Off:298394 |
| Concurrency | MTP:~64Off:~60 |
"""

EXPECTED_RAW = {
    "deepseek-r1_mi355x_fp4_1k1k.txt": ("deepseek_r1", "mi355x", "fp4", [49.0, 85.0, 121.0]),
    "glm5_b200_fp4_1k1k.txt": ("glm5", "b200", "fp4", [40.0, 57.0, 75.0]),
    "qwen3.5-397b_h200_fp8_1k1k.txt": ("qwen3_5_397b", "h200", "fp8", [55.0, 75.0, 96.0]),
}


def _raw_paths() -> list[Path]:
    if not SHARED_PAGES.is_dir():
        pytest.skip("../shared/pages is not available")
    return sorted(SHARED_PAGES.glob("*.txt"))


def test_raw_pages_parse() -> None:
    paths = _raw_paths()
    assert {p.name for p in paths} == set(EXPECTED_RAW)
    for path in paths:
        page = load_page_file(path)
        model, hw, precision, targets = EXPECTED_RAW[path.name]
        assert (page.model, page.hardware, page.precision, page.workload) == (model, hw, precision, "1k1k")
        assert [pt.interactivity for pt in page.points] == targets


def test_raw_page_figures_spot_check() -> None:
    pages = {p.name: load_page_file(p) for p in _raw_paths()}
    ds = pages["deepseek-r1_mi355x_fp4_1k1k.txt"].points
    assert (ds[0].mtp.tput_per_gpu, ds[0].off.tput_per_gpu) == (2089.2, 1366.4)
    assert (ds[2].mtp.cost_per_mtok, ds[2].off.cost_per_mtok) == (0.895, 3.071)
    assert (ds[1].mtp.concurrency, ds[1].off.concurrency) == (256, 61)
    qw = pages["qwen3.5-397b_h200_fp8_1k1k.txt"].points  # markdown layout
    assert qw[2].off.tok_s_per_mw == 113948 and qw[0].mtp.concurrency == 40


def test_bundled_pages_equal_raw_pages() -> None:
    bundled = {p.source: p for p in bundled_pages()}
    assert set(EXPECTED_RAW) <= set(bundled)
    for path in _raw_paths():
        assert load_page_file(path) == bundled[path.name]
        assert all(pt.tput_resolution == 0.1 for pt in bundled[path.name].points)  # "549.4"


def test_bundled_pages_without_shared() -> None:
    pages = bundled_pages()
    assert len(pages) == 15 and all(isinstance(p, Page) and len(p.points) == 3 for p in pages)
    assert len({p.source for p in pages}) == 15
    for p in pages:  # every page names catalog entries
        assert p.model in list_keys("model") and p.hardware in list_keys("hardware")
        assert p.workload in list_keys("workload")


def test_exactly_two_pages_not_modelled() -> None:
    pages = bundled_pages()
    assert {p.source for p in pages if not p.modelled} == NOT_MODELLED
    assert all(p.not_modelled_reason for p in pages if not p.modelled)
    kept = modelled_pages()
    assert len(kept) == 13 and not {p.source for p in kept} & NOT_MODELLED
    assert modelled_pages(pages[:1]) == [pages[0]] or not pages[0].modelled


def test_figures_file_loader() -> None:
    pages = {p.source: p for p in load_figures_file(BUNDLED_FIGURES)}
    assert len(pages) == 12
    mi325 = pages["qwen-3-5-mi325x-bf16-mtp-vs-none"]
    assert (mi325.model, mi325.hardware, mi325.precision, mi325.workload) == ("qwen3_5_397b", "mi325x", "bf16", "1k1k")
    assert mi325.band == (41.0, 98.0) and mi325.url.endswith("/qwen-3-5-mi325x-bf16-mtp-vs-none")
    pt = mi325.points[0]
    assert (pt.interactivity, pt.mtp.tput_per_gpu, pt.off.tput_per_gpu, pt.mtp.cost_per_mtok) == (55, 392, 392, 0.9)
    assert pt.tput_resolution == 1.0 and pt.mtp.tok_s_per_mw is None and pt.off.concurrency is None
    v4 = pages["deepseek-v4-gb200-fp4-mtp-vs-none"]
    assert (v4.model, v4.hardware, v4.workload, v4.band) == ("deepseek_v4_pro", "gb200", "8k1k", None)
    assert pages["glm-5-1-b200-fp8-mtp-vs-none"].model == "glm5"


def test_bundled_figures_match_shared_copy() -> None:
    if not SHARED_FIGURES.is_file():
        pytest.skip("../shared/data/pages is not available")
    shared = load_figures_file(SHARED_FIGURES)
    bundled = load_figures_file(BUNDLED_FIGURES)
    strip = {"modelled", "not_modelled_reason"}
    assert [p.model_dump(exclude=strip) for p in shared] == [p.model_dump(exclude=strip) for p in bundled]
    assert all(p.modelled for p in shared)  # the marks are the project's, added in its copy only


ENTRY = {"url": "https://example.org/compare-spec-decode/x", "model": "GLM 5/5.1", "hardware": "MI325X",
         "precision": "fp8", "workload": "1k/1k", "band": None,
         "points": [{"interactivity": 50, "mtp_tput": 400, "off_tput": 300, "mtp_cost": 0.5, "off_cost": 0.7}]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "GLM 9"}, "entry 0 (https://example.org/compare-spec-decode/x): unknown model display name "
                             "'GLM 9'; known: deepseek_r1"),
        ({"hardware": "TPU v5"}, "unknown hardware display name 'TPU v5'; known: h100: H100"),
        ({"workload": "2k/2k"}, "unknown workload '2k/2k'; known: 1k/1k, 8k/1k, 1k/8k"),
        ({"precision": "int4"}, "unknown precision 'int4'; known: fp4, fp8, bf16"),
        ({"colour": "red"}, "unknown keys ['colour']; allowed: band"),
        ({"modelled": False}, "not_modelled_reason must be given exactly when modelled is false"),
        ({"band": [60, 40]}, "band must be [lo, hi]"),
        ({"points": [{"interactivity": 50, "mtp_tput": "fast"}]}, "mtp_tput must be a number, got 'fast'"),
        ({"points": []}, "points must be a non-empty list"),
    ],
)
def test_figures_errors_name_what_is_wrong(change: dict, message: str) -> None:
    with pytest.raises(PageParseError, match=re.escape(message)):
        figures_pages([{**ENTRY, **change}], "figs.yaml")


def test_figures_exact_figure_and_not_a_list(tmp_path: Path) -> None:
    point = {**ENTRY["points"][0], "mtp_tput_exact": 400.4, "off_tput_exact": 299.6}
    (page,) = figures_pages([{**ENTRY, "points": [point]}], "figs.yaml")
    assert page.points[0].mtp.tput_per_gpu == 400.4 and page.points[0].tput_resolution == pytest.approx(0.1)
    with pytest.raises(PageParseError, match="a figures file must be a non-empty list"):
        figures_pages({"url": "x"}, "figs.yaml")
    with pytest.raises(FileNotFoundError, match="figures file not found"):
        load_figures_file(tmp_path / "none.yaml")


def _point(mtp: float, off: float, step: float) -> PagePoint:
    return PagePoint(interactivity=50, mtp=SideFigures(tput_per_gpu=mtp, cost_per_mtok=1),
                     off=SideFigures(tput_per_gpu=off, cost_per_mtok=1), tput_resolution=step)


def test_measured_direction_respects_the_printed_rounding() -> None:
    assert measured_direction(_point(392, 392, 1.0)) is None  # MI325X: equal as printed, counts neither way
    assert measured_direction(_point(274, 275, 1.0)) is False  # one printed step apart: Off is ahead
    assert measured_direction(_point(275, 274, 1.0)) is True
    assert measured_direction(_point(549.4, 549.3, 0.1)) is True  # float noise in 549.4 - 549.3 still counts
    assert measured_direction(_point(549.4, 549.4, 0.1)) is None
    mi325 = next(p for p in bundled_pages() if p.source == "qwen-3-5-mi325x-bf16-mtp-vs-none")
    assert [measured_direction(pt) for pt in mi325.points] == [None, False, False]


def test_mtp_side_that_repeats_off_is_found_only_there() -> None:
    def page(pairs: list[tuple[float, float]]) -> Page:
        return Page(source="made-up", model="glm5", hardware="b200", precision="fp8", workload="1k1k",
                    points=[_point(m, o, 1.0) for m, o in pairs])

    assert mtp_repeats_off(page([(392, 392), (274, 275), (168, 170)]))  # within 2 % at every target
    assert not mtp_repeats_off(page([(392, 392), (274, 275), (168, 180)]))  # one target 7 % apart
    assert not mtp_repeats_off(page([(392, 392)]))  # one target is not a pattern
    assert not mtp_repeats_off(page([(100, 0), (50, 0)]))  # no Off throughput to compare with
    flagged = {p.source for p in bundled_pages() if mtp_repeats_off(p)}
    assert flagged == {"qwen-3-5-mi325x-bf16-mtp-vs-none"}  # the bundled pages: MI325X Qwen 3.5 BF16 only


def test_line_layout_fixture() -> None:
    page = parse_page(LINES_PAGE, "fixture-lines")
    assert (page.model, page.hardware, page.precision, page.workload) == ("gpt_oss_120b", "gb200", "fp4", "8k1k")
    assert [pt.interactivity for pt in page.points] == [100.0, 150.0]
    assert page.points[1].off.tput_per_gpu == 300.2 and page.points[1].off.cost_per_mtok == 2.045
    assert page.points[0].mtp.concurrency == 128 and page.points[1].mtp.tok_s_per_mw == 238095


def test_table_layout_fixture() -> None:
    page = parse_page(TABLE_PAGE, "fixture-table")
    assert (page.model, page.hardware, page.precision, page.workload) == ("llama3_3_70b", "mi325x", "fp8", "1k8k")
    (pt,) = page.points
    assert pt.interactivity == 30.0 and pt.off.tput_per_gpu == 650.5 and pt.mtp.concurrency == 64


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace("Throughput (tok/s/gpu)", "Speed"), "no throughput row found"),
        (lambda t: t.replace("Concurrency\n", "Batch\n"), "no concurrency row found"),
        (lambda t: t.replace("gpt-oss-120b", "Foo"), "unknown model display name 'Foo'; known: deepseek_r1"),
        (lambda t: t.replace("GB200 NVL72", "TPU v5"), "unknown hardware display name 'TPU v5'"),
        (lambda t: t.replace("8k/1k", "2k/2k"), "unknown workload '2k2k'"),
        (lambda t: t.replace("pinned", "fixed"), "no pinned workload"),
        (lambda t: t.replace("tok/s/user on", "on"), "no target interactivity"),
        (lambda t: t.replace("MTP:500.0Off:300.2\n", ""), "throughput row has 1 columns but the text names 2"),
        (lambda t: t.replace("· fp4 workload", "· fp8 workload"), "differs from the title"),
    ],
)
def test_errors_name_what_is_missing(mutate: Callable[[str], str], message: str) -> None:
    with pytest.raises(PageParseError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_page(mutate(LINES_PAGE), "fixture")


def test_load_page_file_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="page file not found"):
        load_page_file(tmp_path / "nope.txt")
    (tmp_path / "p.txt").write_text(TABLE_PAGE)
    assert load_page_file(tmp_path / "p.txt").source == "p.txt"


def test_display_names_cover_catalog_and_are_tolerant() -> None:
    for key, names in MODEL_NAMES.items():
        assert all(model_key(n) == key for n in names) and model_key(key) == key
    for key, names in HARDWARE_NAMES.items():
        assert all(hardware_key(n) == key for n in names) and hardware_key(key) == key
    assert model_key("glm 5 / 5.1") == model_key("GLM-5") == "glm5"
    assert model_key("GPT OSS 120B") == "gpt_oss_120b" and model_key("kimi-k2.5") == "kimi_k2_5"
    assert hardware_key("gb300-nvl72") == "gb300" and hardware_key(" mi355x ") == "mi355x"
    with pytest.raises(PageParseError, match="known: h100: H100"):
        hardware_key("A100")


def _seeds() -> list[str]:
    seeds = [LINES_PAGE, TABLE_PAGE]
    if SHARED_PAGES.is_dir():
        seeds += [p.read_text() for p in sorted(SHARED_PAGES.glob("*.txt"))]
    return seeds


def _parse_or_page_error(text: str) -> None:
    try:
        assert isinstance(parse_page(text, "fuzz"), Page)
    except PageParseError:
        pass


@FUZZ
@given(st.text(max_size=400))
def test_fuzz_random_text(text: str) -> None:
    _parse_or_page_error(text)


@FUZZ
@given(
    seed=st.sampled_from(_seeds()),
    cut=st.floats(0.0, 1.0),
    start=st.floats(0.0, 1.0),
    length=st.integers(0, 40),
    insert=st.text(alphabet=st.sampled_from(list("0123456789.:$~|-\n MTPOfk/·xX")) | st.characters(), max_size=12),
    op=st.sampled_from(["truncate", "delete", "replace", "insert"]),
)
def test_fuzz_mutated_pages(seed: str, cut: float, start: float, length: int, insert: str, op: str) -> None:
    i = int(start * len(seed))
    if op == "truncate":
        text = seed[: int(cut * len(seed))]
    elif op == "delete":
        text = seed[:i] + seed[i + length :]
    elif op == "replace":
        text = seed[:i] + insert + seed[i + len(insert) :]
    else:
        text = seed[:i] + insert + seed[i:]
    _parse_or_page_error(text)
