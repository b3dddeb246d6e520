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
    pinned_acceptance,
    resolve_setting,
    sglang_spec_v2_default,
    snapshot,
    speculation_overlapped,
)
from tools.build_deployments import _graph_batch_list as graph_batch_list
from tools.build_deployments import _kv_setting as kv_setting
from tools.build_deployments import _Row as Row

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
        "image": "img:tag",
    }
    assert rows[1]["dp_attn"] is True and rows[1]["ep"] == 8 and rows[1]["concurrencies"] == (1, 2, 4)
    with pytest.raises(ValueError):
        parse_config_entry("not an entry")


@pytest.mark.parametrize("image, want", [
    ("lmsysorg/sglang:v0.5.8.post1-cu130", False),
    ("lmsysorg/sglang:v0.5.10-cu130", False),  # environ.py: SGLANG_ENABLE_SPEC_V2 = EnvBool(False)
    ("lmsysorg/sglang:v0.5.11-cu130", True),  # EnvBool(True)
    ("lmsysorg/sglang:v0.5.12-rocm700-mi35x", True),
    ("lmsysorg/sglang-rocm:v0.5.16-rocm720-mi35x-20260726", True),
    ("lmsysorg/sglang:nightly-dev-cu13-20260624-b2c8f7a2", True),
    ("lmsysorg/sglang:nightly-dev-cu13-20260401-00000000", False),
    ("lmsysorg/sglang:deepseek-v4-hopper@sha256:1bf5", None),  # no release or date in the tag
])
def test_sglang_spec_v2_default_by_image(image: str, want: bool | None) -> None:
    """Whether an SGLang image speculates under the overlap scheduler when the script sets nothing."""
    assert sglang_spec_v2_default(image) is want


def test_speculation_overlapped_reads_the_script_then_the_image() -> None:
    """A script's own SGLANG_ENABLE_SPEC_V2 decides; a TensorRT-LLM / vLLM script that turns its overlap or async
    scheduler off keeps the bookkeeping; otherwise the image's default (SGLang by release, ATOM never); Off rows
    never speculate, and a row no settings item covers is not overlapped."""
    def item(engine: str, settings: dict) -> dict:
        return {"spec": "mtp", "when": "always", "settings": settings, "engine": engine,
                "config_entries": ["f.yaml e [img]: 1024/1024 tp8 ep1 conc 4"]}
    def row(engine: str, image: str, spec: str = "mtp") -> Row:
        return Row("f.yaml", "e", "m", "b200", "fp8", engine, spec, 1024, 1024, 8, 1, False, (4,), image)
    new, old = "lmsysorg/sglang:v0.5.12-cu130", "lmsysorg/sglang:v0.5.10-cu130"
    assert speculation_overlapped([item("sglang", {})], row("sglang", new))
    assert not speculation_overlapped([item("sglang", {})], row("sglang", old))
    assert speculation_overlapped([item("sglang", {"env": {"SGLANG_ENABLE_SPEC_V2": 1}})], row("sglang", old))
    assert not speculation_overlapped([item("sglang", {"env": {"SGLANG_ENABLE_SPEC_V2": 0}})], row("sglang", new))
    assert speculation_overlapped([item("trt", {})], row("trt", "nvcr.io/nvidia/tensorrt-llm/release:1.2.0"))
    assert not speculation_overlapped([item("trt", {"overlap_scheduler": False})], row("trt", ""))
    assert not speculation_overlapped([item("vllm", {"async_scheduling": False})], row("vllm", ""))
    assert not speculation_overlapped([item("atom", {})], row("atom", "rocm/atom:latest"))
    assert not speculation_overlapped([item("sglang", {})], row("sglang", new, "off"))
    assert not speculation_overlapped([], row("sglang", new))


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


def test_pinned_acceptance_is_read_from_the_recipe_settings(shared_dir: Path) -> None:
    """Rows that pin their acceptance (SYNTHETIC_ACCEPTANCE=true + SYNTHETIC_ACCEPTANCE_LENGTH) carry it; the
    rest, the "-nosynthetic" twin of the same recipes included, carry none."""
    rows, _ = multinode_rows(shared_dir, catalog_routed_experts())
    pinned = {(r.entry, r.source.split(" row ")[1].split(";")[0], r.draft_tokens, r.pinned_acceptance_length)
              for r in rows if r.pinned_acceptance_length is not None}
    assert pinned == {("dsv4-fp4-gb200-dynamo-vllm-mtp2", str(i), 2, 2.27) for i in (1, 2, 3)}
    twin = [r for r in rows if r.entry == "dsv4-fp4-gb200-dynamo-vllm-mtp2-nosynthetic"]
    assert len(twin) == 3 and all(r.pinned_acceptance_length is None for r in twin)
    assert [r for r in load_multinode()[0] if r.pinned_acceptance_length is not None] == [
        r for r in rows if r.pinned_acceptance_length is not None]


def test_pinned_acceptance_parsing() -> None:
    assert pinned_acceptance(["CONFIG_FILE=x.yaml"], "w") is None
    assert pinned_acceptance(["SYNTHETIC_ACCEPTANCE=true", "SYNTHETIC_ACCEPTANCE_LENGTH=2.49", "CONFIG_FILE=x"],
                             "w") == 2.49
    # the prefill and decode lists of a row repeat the same pin: read once
    assert pinned_acceptance(["SYNTHETIC_ACCEPTANCE=true", "SYNTHETIC_ACCEPTANCE_LENGTH=1.79"] * 2, "w") == 1.79
    for bad in (["SYNTHETIC_ACCEPTANCE_LENGTH=2.27"], ["SYNTHETIC_ACCEPTANCE=true"],
                ["SYNTHETIC_ACCEPTANCE=true", "SYNTHETIC_ACCEPTANCE_LENGTH=2.27", "SYNTHETIC_ACCEPTANCE_LENGTH=2.49"]):
        with pytest.raises(ValueError, match="row 7: synthetic acceptance"):
            pinned_acceptance(bad, "row 7")


def test_no_shipped_limit_admits_less_than_one_step_of_one_request(table: SearchSpaceTable) -> None:
    """Every engine limit in the shipped table is one a script set or an engine default, never a misread: the
    running limit admits at least one request per attention-DP rank, the per-step token budget holds one
    request's k + 1 tokens, a CUDA-graph limit captures at least batch 1 (vLLM's: 1 x (1 + k) tokens)."""
    bad = []
    for key, deps in table.entries.items():
        for dep in deps:
            assert [row[0] for row in dep.limits] == dep.concurrencies, (key, dep.source)
            k = dep.draft_tokens or 0
            ranks = dep.tp if dep.dp_attn else 1
            for conc in dep.concurrencies:
                lim = dep.limits_at(conc)
                where = f"{key} {dep.engine} {dep.spec} tp{dep.tp} ep{dep.ep} dpa={dep.dp_attn} k={k} C={conc}"
                if lim.max_running_requests is not None and lim.max_running_requests < min(conc, ranks):
                    bad.append(f"{where}: max_running_requests {lim.max_running_requests}")
                if lim.max_num_tokens is not None and lim.max_num_tokens < k + 1:
                    bad.append(f"{where}: max_num_tokens {lim.max_num_tokens} < k + 1")
                graph_floor = k + 1 if lim.cuda_graph_counts_tokens else 1
                if lim.cuda_graph_max_batch is not None and lim.cuda_graph_max_batch < graph_floor:
                    bad.append(f"{where}: cuda_graph_max_batch {lim.cuda_graph_max_batch} < {graph_floor}")
    assert not bad, "limits below one step of one request:\n" + "\n".join(bad)


def test_r1_b200_trt_mtp_token_budget_is_the_scripts_formula(table: SearchSpaceTable) -> None:
    """dsr1_fp4_b200_trt_mtp.sh (no DP-attention) sets max_num_tokens = ceil64((MTP+1) x max_batch_size + ISL
    + 64) with max_batch_size = CONC and MTP = 3; engine_settings.yaml writes it "F = G" (G: F at MTP = 3),
    which read whole once became the comparison F == G, i.e. a budget of 1 token."""
    def ceil64(x: int) -> int:
        return -(-x // 64) * 64

    for workload, isl in (("1k1k", 1024), ("8k1k", 8192)):
        trt = [d for d in table.lookup("deepseek_r1", "b200", "fp4", workload, "mtp")
               if d.engine == "trt" and not d.dp_attn]
        assert trt
        for dep in trt:
            assert dep.draft_tokens == 3
            for conc in dep.concurrencies:
                assert dep.limits_at(conc).max_num_tokens == ceil64(4 * conc + isl + 64)


@pytest.mark.parametrize(("value", "env", "expected"), [
    ("ceil64((MTP+1)*max_batch_size+ISL+64) = ceil64(4*CONC+ISL+64)",
     {"CONC": 128, "ISL": 1024, "MTP": 3, "max_batch_size": 128}, 1600),
    ("ceil64((MTP+1)*max_batch_size+ISL+64) = ceil64(4*CONC+ISL+64)",
     {"CONC": 4, "ISL": 8192, "MTP": 1, "max_batch_size": 4}, 8320),  # F, not the MTP = 3 case G
    ("max(8, CONC*3/2) = 768", {"CONC": 512}, 768),
])
def test_a_worked_out_restatement_is_not_a_comparison(value: str, env: dict, expected: int) -> None:
    assert resolve_setting(value, env) == expected


@pytest.mark.parametrize(("value", "env", "match"), [
    ("CONC>=4", {"CONC": 8}, "not a number"),  # a truth value is no limit
    ("ISL=1024", {"ISL": 1024}, "not a number"),
    ("CONC/8", {"CONC": 4}, "below 1"),  # bash gives 0: no engine runs with that
])
def test_resolve_setting_refuses_values_that_are_no_limit(value: str, env: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        resolve_setting(value, env)


def test_graph_capture_lists() -> None:
    assert graph_batch_list([1, 2, 4, 128], {"CONC": 8}) == 128
    assert graph_batch_list("[1, 2, 4, 8, 16, 32, 48, 64, 128, 256, 512]", {"CONC": 8}) == 512
    assert graph_batch_list("1,2,4,8 then step 8 from 16 to CONC", {"CONC": 96}) == 96
    assert graph_batch_list("engine default", {"CONC": 8}) is None
    with pytest.raises(ValueError, match="unreadable"):
        graph_batch_list("same ladder as B200 TRT script", {"CONC": 8})


def test_kv_cache_dtype_settings() -> None:
    """A script's --kv-cache-dtype as the vocabulary names it; unset / auto: the engine's default (None)."""
    assert kv_setting("fp8_e4m3") == "fp8" and kv_setting("fp8") == "fp8" and kv_setting("bfloat16") == "bf16"
    for unset in (None, "auto", "engine default (not set)", "engine default"):
        assert kv_setting(unset) is None
    with pytest.raises(ValueError, match="unreadable kv_cache_dtype"):
        kv_setting("int8")


def test_each_deployment_records_the_kv_cache_dtype_it_ran_with(table: SearchSpaceTable) -> None:
    """Scripts that pass --kv-cache-dtype fp8 run FP8 caches; SGLang scripts that pass none run the engine's
    default, the checkpoint's BF16 (DeepSeek-R1 FP8 on H200; both sides of its SGLang rows)."""
    r1 = table.lookup("deepseek_r1", "h200", "fp8", "1k1k", "mtp") + table.lookup(
        "deepseek_r1", "h200", "fp8", "1k1k", "off")
    assert {d.kv_cache_dtype for d in r1 if d.engine == "sglang"} == {"bf16"}
    assert {d.kv_cache_dtype for d in r1 if d.engine == "trt"} == {"fp8"}
    glm = table.lookup("glm5", "b200", "fp4", "1k1k", "mtp")
    assert glm and {d.kv_cache_dtype for d in glm} == {"fp8"}
    for deps in table.entries.values():
        assert all(d.kv_cache_dtype is not None for d in deps)


def test_each_deployment_records_the_state_dtype_its_script_set(table: SearchSpaceTable) -> None:
    """Qwen3.5's FP8 SGLang scripts pass --mamba-ssm-dtype bfloat16 (the MI355X FP4 ones set
    SGLANG_MAMBA_SSM_DTYPE); its BF16 scripts set nothing (the config's FP32); models without linear
    attention never carry one."""
    for hw, precision, state in (("h200", "fp8", "bf16"), ("mi355x", "fp4", "bf16"), ("b200", "bf16", None)):
        deps = table.lookup("qwen3_5_397b", hw, precision, "1k1k", "mtp")
        assert deps and {d.ssm_state_dtype for d in deps if d.engine == "sglang"} == {state}, (hw, precision)
    assert all(d.ssm_state_dtype is None for key, deps in table.entries.items() if "qwen3_5" not in key
               for d in deps)
