"""Tests for the shipped benchmark search-space table and its extractor."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.search_space import (
    DEFAULT_PATH,
    TOP_KEY,
    BenchmarkDeployment,
    SearchSpaceTable,
    expand_conc,
    extract,
    load_search_spaces,
    parse_conc,
    parse_config_entry,
    render,
    source_commit,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="module")
def table() -> SearchSpaceTable:
    return load_search_spaces()


def _summary(deps: list[BenchmarkDeployment]) -> set[tuple[str, int, int, bool, int | None, tuple[int, ...]]]:
    return {(d.engine, d.tp, d.ep, d.dp_attn, d.draft_tokens, tuple(d.concurrencies)) for d in deps}


def test_shipped_file_loads_and_validates(table: SearchSpaceTable) -> None:
    text = DEFAULT_PATH.read_text()
    assert text.startswith("#") and "Apache-2.0" in text and "python -m simulator.search_space" in text
    assert f"\n{TOP_KEY}:\n" in text
    assert len(table.entries) > 50
    workloads = {key[3] for key in table.available()}
    assert workloads == {"1k1k", "8k1k"}
    for deps in table.entries.values():
        assert deps
        for dep in deps:
            assert dep.engine in {"sglang", "vllm", "trt", "atom"}
            assert (dep.draft_tokens is None) == (dep.spec == "off")
            assert dep.concurrencies == sorted(set(dep.concurrencies))


def test_available_and_missing_lookup(table: SearchSpaceTable) -> None:
    assert ("deepseek_r1", "mi355x", "fp4", "1k1k") in table.available()
    assert table.lookup("deepseek_r1", "mi355x", "fp4", "1k8k", "mtp") == []
    assert table.lookup("no_such_model", "b200", "fp4", "1k1k", "off") == []


def test_deepseek_r1_mi355x_fp4_1k1k(table: SearchSpaceTable) -> None:
    mtp = table.lookup("deepseek_r1", "mi355x", "fp4", "1k1k", "mtp")
    full = list(range(2, 9))
    assert _summary(mtp) == {
        ("sglang", 8, 1, False, 3, tuple(2**i for i in range(2, 7))),
        ("atom", 4, 1, False, 3, tuple(2**i for i in full)),
        ("atom", 8, 1, False, 3, tuple(2**i for i in full)),
    }
    off = table.lookup("deepseek_r1", "mi355x", "fp4", "1k1k", "off")
    assert _summary(off) == {
        ("sglang", 4, 1, False, None, (4, 8, 16, 32, 64)),
        ("sglang", 8, 1, False, None, (4, 8, 16, 32, 64)),
        ("atom", 4, 1, False, None, (32, 64, 128, 256)),
        ("atom", 8, 1, False, None, (4, 8, 16, 32)),
    }
    atom_k = [d for d in mtp if d.engine == "atom"]
    assert all("methodology.md" in d.source for d in atom_k)  # script leaves k at the engine default


def test_glm5_b200_fp4_1k1k(table: SearchSpaceTable) -> None:
    sweep = (4, 8, 16, 32, 64, 128, 256)
    assert _summary(table.lookup("glm5", "b200", "fp4", "1k1k", "mtp")) == {
        ("sglang", 4, 1, False, 3, sweep),
        ("sglang", 8, 1, False, 3, (4,)),
    }
    assert _summary(table.lookup("glm5", "b200", "fp4", "1k1k", "off")) == {
        ("sglang", 4, 1, False, None, sweep),
        ("sglang", 8, 1, False, None, (4,)),
    }


def test_qwen3_5_h200_fp8_1k1k(table: SearchSpaceTable) -> None:
    assert _summary(table.lookup("qwen3_5_397b", "h200", "fp8", "1k1k", "mtp")) == {
        ("sglang", 8, 8, False, 3, (4, 8, 16, 32, 64, 128)),
    }
    assert _summary(table.lookup("qwen3_5_397b", "h200", "fp8", "1k1k", "off")) == {
        ("sglang", 8, 8, False, None, (4, 8, 16, 32, 64)),
    }


def test_draft_length_rules(table: SearchSpaceTable) -> None:
    # SGLang DeepSeek R1 on B200: 2 steps; TRT-LLM DeepSeek R1: MTP 3, MTP 1 with DP-attention.
    b200 = table.lookup("deepseek_r1", "b200", "fp4", "1k1k", "mtp")
    assert {d.draft_tokens for d in b200 if d.engine == "sglang"} == {2}
    assert {d.draft_tokens for d in b200 if d.engine == "trt" and d.dp_attn} == {1}
    assert {d.draft_tokens for d in b200 if d.engine == "trt" and not d.dp_attn} == {3}
    # TRT-LLM DeepSeek V4 at 8k input drops to 2 drafted tokens from concurrency 128.
    v4 = table.lookup("deepseek_v4_pro", "b200", "fp4", "8k1k", "mtp")
    trt = [d for d in v4 if d.engine == "trt"]
    assert {2, 3} <= {d.draft_tokens for d in trt}  # both branches of the script are in the table
    for dep in trt:
        assert dep.draft_tokens == (2 if min(dep.concurrencies) >= 128 else 3)
        assert max(dep.concurrencies) < 128 or dep.draft_tokens == 2


def test_conc_expansion() -> None:
    assert expand_conc(4, 256) == [4, 8, 16, 32, 64, 128, 256]
    assert parse_conc("4-256") == [4, 8, 16, 32, 64, 128, 256]
    assert parse_conc("1-512") == [2**i for i in range(10)]
    assert parse_conc("3-10") == [3, 6, 10]  # the end is always included
    assert parse_conc("64") == [64]
    assert parse_conc("512,1024") == [512, 1024]
    with pytest.raises(ValueError):
        expand_conc(8, 4)


def test_parse_config_entry() -> None:
    text = (
        "deprecated/amd-1k1k-master.yaml dsr1-fp4-mi355x-atom-mtp [img:tag]: "
        "1024/1024 tp4 ep1 conc 4-256; 1024/1024 tp8 ep8 dpa conc 1,2,4"
    )
    file, entry, rows = parse_config_entry(text)
    assert (file, entry) == ("deprecated/amd-1k1k-master.yaml", "dsr1-fp4-mi355x-atom-mtp")
    assert rows[0] == {
        "isl": 1024,
        "osl": 1024,
        "tp": 4,
        "ep": 1,
        "dp_attn": False,
        "concurrencies": (4, 8, 16, 32, 64, 128, 256),
    }
    assert rows[1]["dp_attn"] is True and rows[1]["ep"] == 8 and rows[1]["concurrencies"] == (1, 2, 4)
    with pytest.raises(ValueError):
        parse_config_entry("not an entry")


def test_reextract_reproduces_shipped_file() -> None:
    if not (SHARED / "data" / "benchmark-configs").is_dir():
        pytest.skip("../shared (InferenceX configs) not available")
    fresh = extract(SHARED)
    assert fresh == load_search_spaces()
    assert render(fresh, source_commit(SHARED)) == DEFAULT_PATH.read_text()
