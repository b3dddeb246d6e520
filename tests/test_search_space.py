"""Tests for the shipped deployment tables (conf/deployments/) and their builder (tools/build_deployments.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from simulator.search_space import (
    DEFAULT_PATH,
    MULTINODE_PATH,
    SOURCE_KEY,
    TOP_KEY,
    BenchmarkDeployment,
    SearchSpaceTable,
    load_multinode,
    load_search_spaces,
    load_source,
)
from tools.build_deployments import (
    CONFIG_DIR,
    benchmark_text,
    catalog_routed_experts,
    expand_conc,
    extract,
    multinode_rows,
    multinode_text,
    parse_conc,
    parse_config_entry,
    snapshot,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def table() -> SearchSpaceTable:
    return load_search_spaces()


def _summary(deps: list[BenchmarkDeployment]) -> set[tuple[str, int, int, bool, int | None, tuple[int, ...]]]:
    return {(d.engine, d.tp, d.ep, d.dp_attn, d.draft_tokens, tuple(d.concurrencies)) for d in deps}


def test_shipped_file_loads_and_validates(table: SearchSpaceTable) -> None:
    text = DEFAULT_PATH.read_text()
    assert text.startswith("#") and "Apache-2.0" in text and "python tools/build_deployments.py" in text
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


def test_shipped_tables_record_their_upstream_snapshot() -> None:
    """Each generated file names the InferenceX commit and one sha256 per input file it was read from."""
    for path, inputs in ((DEFAULT_PATH, {"nvidia-master.yaml", "amd-master.yaml", "engine_settings.yaml"}),
                         (MULTINODE_PATH, {"nvidia-master.yaml", "amd-master.yaml"})):
        source = load_source(path)
        assert source["repository"] == "https://github.com/SemiAnalysisAI/InferenceX"
        assert len(source["commit"]) == 40 and int(source["commit"], 16) >= 0
        assert {Path(p).name for p in source["sha256"]} == inputs
        assert all(len(h) == 64 and int(h, 16) >= 0 for h in source["sha256"].values())
        assert f"\n{SOURCE_KEY}:\n" in path.read_text()


def test_runtime_loader_does_not_import_the_builder() -> None:
    """simulator/search_space.py only reads the generated files: no extractor, no tools/ import."""
    tree = ast.parse((ROOT / "simulator" / "search_space.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if m.split(".")[0] in {"tools", "ast", "re", "hashlib"}}, imported


def test_loaders_read_each_file_once() -> None:
    assert load_search_spaces() is load_search_spaces(DEFAULT_PATH)
    assert load_multinode()[0] == load_multinode(MULTINODE_PATH)[0]


def test_rebuilding_from_shared_reproduces_the_shipped_tables(shared_dir: Path) -> None:
    """conf/deployments/{benchmark,multinode}.yaml are exactly what tools/build_deployments.py writes from
    ../shared (rows, header and the snapshot's sha256s)."""
    fresh = extract(shared_dir)
    assert fresh == load_search_spaces()
    assert benchmark_text(shared_dir, fresh) == DEFAULT_PATH.read_text()
    assert multinode_text(shared_dir) == MULTINODE_PATH.read_text()
    snap = snapshot(shared_dir, ["engine_settings.yaml"])
    assert snap.files[(CONFIG_DIR / "engine_settings.yaml").as_posix()] == load_source()["sha256"][
        (CONFIG_DIR / "engine_settings.yaml").as_posix()]


def test_benchmark_multinode_rows_are_read_or_skipped_with_a_reason(shared_dir: Path) -> None:
    rows, skipped = multinode_rows(shared_dir, {"deepseek_r1": 256, "deepseek_v4_pro": 384})
    r1_gb200 = [r for r in rows if (r.model, r.hardware, r.precision) == ("deepseek_r1", "gb200", "fp4")]
    assert r1_gb200 and all(r.workload == "8k1k" for r in r1_gb200)
    # a recipe named ..._mtp1.yaml with eplb256 (256 slots = no redundant experts) on DEP16
    dep16 = [r for r in r1_gb200 if r.deployment.decode.label == "DEP16" and r.spec == "mtp"]
    assert dep16 and {r.draft_tokens for r in dep16} <= {1, 3}
    assert all(r.deployment.gpus == r.deployment.prefill_gpus + r.deployment.decode_gpus for r in rows)
    assert any("0 decode workers" in s for s in skipped)
    assert catalog_routed_experts()["deepseek_r1"] == 256
