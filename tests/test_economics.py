"""Rate tables and the pages' cost / tok/s/MW formulas, checked against the seed pages' printed rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from simulator.economics import (
    RateLookupError,
    bundled_rate_table,
    cost_per_mtok,
    load_rate_table,
    tok_s_per_mw,
)
from simulator.pages import Page, bundled_pages, load_page_file

SHARED_PAGES = Path(__file__).parents[2] / "shared" / "pages"
CATALOG = {"h100", "h200", "b200", "b300", "gb200", "gb300", "mi300x", "mi325x", "mi355x"}
ERA_A = bundled_rate_table("era_a")


def _raw_pages() -> list[Page]:
    if not SHARED_PAGES.is_dir():
        pytest.skip("../shared/pages is not available")
    return [load_page_file(p) for p in sorted(SHARED_PAGES.glob("*.txt"))]


def _seed_pages() -> list[Page]:
    """The bundled pages extracted from page texts: the ones that print every row (figures files carry
    throughput and cost only, and their cost is not always rate / printed throughput)."""
    return [p for p in bundled_pages() if all(pt.mtp.tok_s_per_mw is not None for pt in p.points)]


def _sides(pages: list[Page]) -> list[tuple[str, float, float, float]]:
    """(page label, measured throughput, printed cost, printed tok/s/MW) for every side of every point."""
    out = []
    for page in pages:
        for pt in page.points:
            for name, side in (("mtp", pt.mtp), ("off", pt.off)):
                label = f"{page.source}@{pt.interactivity:g}/{name}"
                out.append((label, side.tput_per_gpu, side.cost_per_mtok, side.tok_s_per_mw))
    return out


def _page_gpu(label: str, pages: list[Page]) -> str:
    return next(p.hardware for p in pages if label.startswith(p.source))


def _check_mw(pages: list[Page]) -> None:
    for label, tput, _, printed in _sides(pages):
        kw = ERA_A.all_in_kw(_page_gpu(label, pages))
        # Printed as an integer from the unrounded throughput, which the page shows to 1 decimal.
        slack = 0.05 * 1000.0 / kw + 0.5
        assert abs(tok_s_per_mw(tput, kw) - printed) <= slack, label


def _cost_misses(pages: list[Page]) -> list[str]:
    misses = []
    for label, tput, printed, _ in _sides(pages):
        rate = ERA_A.rate(_page_gpu(label, pages))
        # Printed to 3 decimals (0.0005) plus what the throughput's own 1-decimal rounding can move it:
        # |d cost / d tput| * 0.05 = rate * 1e6 / 3600 / tput**2 * 0.05.
        slack = 0.0005 + rate * 1e6 / 3600.0 / tput**2 * 0.05 + 1e-9
        if abs(cost_per_mtok(tput, rate) - printed) > slack:
            misses.append(f"{label}: {cost_per_mtok(tput, rate):.4f} vs {printed}")
    return misses


def test_seed_check_from_hardware_reference() -> None:
    assert round(cost_per_mtok(1269.4, ERA_A.rate("b200")), 3) == 0.427
    assert abs(tok_s_per_mw(1269.4, ERA_A.all_in_kw("b200")) - 584966) <= 0.05 * 1000 / 2.17 + 0.5


def test_tok_s_per_mw_reproduces_bundled_pages() -> None:
    _check_mw(_seed_pages())


def test_tok_s_per_mw_reproduces_raw_pages() -> None:
    _check_mw(_raw_pages())


def test_page_cost_rows_close_to_rate_over_throughput() -> None:
    # Looser check that does hold: every printed cost is within 3 % of rate / printed throughput
    # (worst seen: 2.1 %, DeepSeek R1 MI355X MTP at 49 tok/s/user).
    pages = _seed_pages()
    for label, tput, printed, _ in _sides(pages):
        pred = cost_per_mtok(tput, ERA_A.rate(_page_gpu(label, pages)))
        assert abs(pred - printed) <= 0.03 * printed, label


@pytest.mark.xfail(
    strict=True,
    reason="13 of the 18 printed costs differ from era-A rate / printed throughput by more than the "
    "page's rounding (up to 2.1 %, both signs, while tok/s/MW matches): the pages evidently interpolate "
    "cost along the front on its own rather than dividing the rate by the interpolated throughput",
)
def test_page_cost_rows_to_printed_rounding() -> None:
    assert _cost_misses(_seed_pages()) == []


def test_raw_and_bundled_pages_give_same_cost_misses() -> None:
    assert _cost_misses(_raw_pages()) == _cost_misses(_seed_pages())


def test_formulas_elementwise_on_floats_arrays_tensors() -> None:
    tput = [1269.4, 576.9]
    as_float = [cost_per_mtok(t, 1.95) for t in tput]
    np.testing.assert_allclose(cost_per_mtok(np.array(tput), 1.95), as_float)
    np.testing.assert_allclose(cost_per_mtok(torch.tensor(tput, dtype=torch.float64), 1.95).numpy(), as_float)
    np.testing.assert_allclose(cost_per_mtok(np.array(tput), np.array([1.95, 1.41])), [as_float[0], 1.41 / (576.9 * 0.0036)])
    mw = tok_s_per_mw(torch.tensor(tput, dtype=torch.float64), 2.17)
    assert isinstance(mw, torch.Tensor)
    np.testing.assert_allclose(mw.numpy(), np.array(tput) * 1000 / 2.17)
    assert isinstance(cost_per_mtok(1000, 2), float) and cost_per_mtok(0.0, 1.0) == float("inf")
    assert tok_s_per_mw(2170.0, 2.17) == pytest.approx(1e6)


def test_bundled_tables_cover_catalog_and_dates() -> None:
    era_b = bundled_rate_table("era_b")
    assert set(ERA_A.gpus) == CATALOG and set(era_b.gpus) == CATALOG
    assert ERA_A.valid_until == dt.date(2026, 7, 30) and era_b.valid_from == dt.date(2026, 7, 31)
    assert ERA_A.covers(dt.date(2026, 7, 30)) and not ERA_A.covers(dt.date(2026, 7, 31))
    assert era_b.covers(dt.date(2026, 7, 31)) and not era_b.covers(dt.date(2026, 7, 30))
    assert ERA_A.rate("gb300", "neocloud") == 3.30 and ERA_A.rate("mi355x") == 1.48
    assert era_b.rate("b300") == 2.26 and era_b.all_in_kw("b300") == 1.90


def test_rate_errors_are_clear() -> None:
    era_b = bundled_rate_table("era_b")
    with pytest.raises(RateLookupError, match="valid keys: b200, b300, .*mi355x"):
        ERA_A.rate("a100")
    with pytest.raises(RateLookupError, match="no 'rental'.*tiers given: hyperscaler"):
        era_b.rate("h100", "rental")
    with pytest.raises(RateLookupError, match="valid tiers"):
        ERA_A.rate("h100", "spot")
    with pytest.raises(FileNotFoundError, match="era_a"):
        bundled_rate_table("era_z")


def test_rate_table_validation_names_the_field() -> None:
    bad = {"rates": {"name": "x", "gpus": {"h100": {"all_in_kw": -1.0, "usd_per_gpu_hour": {"hyperscaler": 1.0}}}}}
    with pytest.raises(ValidationError, match=r"gpus\.h100\.all_in_kw"):
        load_rate_table(bad)
    bad2 = {"name": "x", "gpus": {"h100": {"all_in_kw": 1.0, "usd_per_gpu_hour": {"hyperscaler": 0}}}}
    with pytest.raises(ValidationError, match=r"usd_per_gpu_hour\.hyperscaler"):
        load_rate_table(bad2)
    with pytest.raises(ValidationError, match="valid_until"):
        load_rate_table({**bad2, "gpus": ERA_A.model_dump()["gpus"], "valid_from": "2026-08-01", "valid_until": "2026-07-01"})
    with pytest.raises(FileNotFoundError):
        load_rate_table("/nonexistent/rates.yaml")
    table = load_rate_table(ERA_A.model_dump())
    assert table == ERA_A
    with pytest.raises(ValidationError):
        table.gpus["h100"].all_in_kw = 2.0  # type: ignore[misc]
