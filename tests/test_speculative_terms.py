"""Each term of the speculative step against a hand computation (issue 9), the engine limits and admission."""

from __future__ import annotations

import pytest
import torch

from conftest import scenario
from simulator.breakdown import TERMS, step_breakdown
from simulator.evaluate import evaluate
from simulator.knobs import KnobTensors
from simulator.lowering import ACTIVATION_BYTES, LOGIT_PASSES
from simulator.search import Candidate, benchmark_candidates
from simulator.search_space import default_limits, engine_default_limits, load_multinode
from simulator.serving import StepLimits, closed_loop, running_batch
from simulator.specs import EngineLimits
from simulator.speculative import (
    StepTables,
    decode_step_terms,
    decode_step_time_s,
    prefill_time_s,
    sampling_time_s,
)
from simulator.step_cost import pass_cost, pass_time_s
from tools.build_deployments import resolve_setting

F = torch.float64


def t(x: float) -> torch.Tensor:
    return torch.tensor(float(x), dtype=F)


@pytest.fixture(scope="module")
def glm5():
    sc = scenario("glm5", "b200", "fp4")
    dep = sc.deployment(tp=8)
    return sc, dep, sc.tables(dep)


def test_batch1_k_trend_matches_tensorrt_llm_deepseek_r1() -> None:
    """docs/sources.md#acceptance: TensorRT-LLM DeepSeek-R1 FP4 8 x B200, batch 1, AL and tok/s/user for k = 0..5.
    Measured step = AL / (tok/s/user). With the sourced priors (EfficiencyKnobs defaults) the model's added
    time per drafted token must follow the measured one: each step(k) - step(0) within 0.35 ms (half a draft
    pass) and the least-squares slope within 15 %. (The absolute plain step is the target's floors: calibrated.)"""
    al = [1.0, 1.92, 2.58, 2.82, 2.99, 3.01]
    tok_s = [111.0, 198.0, 250.0, 253.0, 245.0, 239.0]
    measured = [a / x for a, x in zip(al, tok_s, strict=True)]
    sc = scenario("deepseek_r1", "b200", "fp4")
    tables = sc.tables(sc.deployment(tp=8))
    ctx = t(1024 + 1024)  # 1k/2k: mean context while decoding
    pred = [float(decode_step_time_s(tables, sc.knob_tensors, t(1), t(k), ctx)) for k in range(6)]
    d_meas = [m - measured[0] for m in measured[1:]]
    d_pred = [p - pred[0] for p in pred[1:]]
    for k, (dm, dp) in enumerate(zip(d_meas, d_pred, strict=True), start=1):
        assert abs(dp - dm) <= 0.35e-3, (k, dp, dm)
    ks = range(1, 6)
    slope_m = sum(k * d for k, d in zip(ks, d_meas, strict=True)) / sum(k * k for k in ks)
    slope_p = sum(k * d for k, d in zip(ks, d_pred, strict=True)) / sum(k * k for k in ks)
    assert slope_p == pytest.approx(slope_m, rel=0.15)


def test_verify_reads_each_requests_kv_once_for_its_k_plus_1_queries(glm5) -> None:
    sc, _, tables = glm5
    b, ctx = t(32), t(2000)
    plain = pass_cost(tables.target, sc.knob_tensors, b, b, ctx)
    verify = pass_cost(tables.target, sc.knob_tensors, b, b * 4, ctx)
    assert torch.equal(plain.kv_s, verify.kv_s)  # same requests, same context: same KV bytes
    assert bool((verify.activation_s >= plain.activation_s).all())


def test_k0_equals_mtp_off_exactly(glm5) -> None:
    sc, dep, tables = glm5
    c = torch.tensor([1.0, 16.0, 256.0, 4096.0], dtype=F)
    lim = StepLimits.of(EngineLimits(cuda_graph_max_batch=64, max_running_requests=512), 1000)
    off = closed_loop(StepTables(tables.target, None), sc.knob_tensors, sc.workload, sc.serving, c,
                      torch.zeros(4), torch.ones(4), dep.gpus, lim)
    k0 = closed_loop(tables, sc.knob_tensors, sc.workload, sc.serving, c, torch.zeros(4), torch.ones(4), dep.gpus, lim)
    for name in ("step_s", "tpot_s", "ttft_s", "tput_per_gpu", "running_batch"):
        assert torch.equal(getattr(off, name), getattr(k0, name)), name


def test_cuda_graph_boundary_slows_the_step_never_speeds_it(glm5) -> None:
    sc, _, tables = glm5
    kn, ctx = sc.knob_tensors, t(1500)
    for b in (1.0, 8.0, 64.0, 512.0):
        for k in (0.0, 3.0):
            graphed = decode_step_time_s(tables, kn, t(b), t(k), ctx)
            eager = decode_step_time_s(tables, kn, t(b), t(k), ctx, graph_max_batch=b - 1)
            assert float(eager) >= float(graphed)
            assert float(decode_step_time_s(tables, kn, t(b), t(k), ctx, graph_max_batch=b)) == float(graphed)
    # at batch 1 the host launch (157 layer passes x 0.7 ms) exceeds the GPU's time: the step is strictly slower
    assert float(decode_step_time_s(tables, kn, t(1), t(0), ctx, graph_max_batch=0)) > float(
        decode_step_time_s(tables, kn, t(1), t(0), ctx))
    # hand: eager pass = max(GPU time, layers x eager floor)
    gpu = pass_cost(tables.target, kn, t(1), t(1), ctx)
    launch = float(tables.target.layer_passes) * float(kn.eager_layer_pass_latency_us) * 1e-6
    eager = pass_cost(tables.target, kn, t(1), t(1), ctx, eager=1.0)
    assert float(eager.total_s) == pytest.approx(max(float(gpu.total_s), launch))


def test_a_prefill_pass_runs_eagerly_so_a_short_prompt_is_launch_bound(glm5) -> None:
    """speculative.PREFILL_EAGER: a prefill chunk is one pass without CUDA graphs, max(GPU time, launch time).
    A 16-token prompt takes the layers' launch time (SGLang PR #12160's one-token prefill is 82.6 ms eager);
    a 16k prompt on GLM-5 is GPU-bound, so its prefill is the graphed pass's GPU time (plus the step floor)."""
    sc, _, tables = glm5
    kn = sc.knob_tensors
    launch = float(tables.target.layer_passes) * float(kn.eager_layer_pass_latency_us) * 1e-6
    step_s = float(kn.step_latency_us) * 1e-6
    short = prefill_time_s(tables, kn, t(16), 16.0, 16384.0, False)
    assert float(short) == pytest.approx(launch + step_s)
    gpu_short = float(pass_cost(tables.target, kn, t(1), t(16), t(8)).total_s)
    assert gpu_short < launch  # so the eager floor is what sets it
    long = prefill_time_s(tables, kn, t(16384), 16384.0, 16384.0, False)
    gpu_long = float(pass_cost(tables.target, kn, t(1), t(16384), t(8192)).total_s)
    assert gpu_long > launch
    assert float(long) == pytest.approx(gpu_long + step_s)


def test_vllm_graph_limit_counts_tokens(glm5) -> None:
    sc, _, tables = glm5
    kn, ctx = sc.knob_tensors, t(1500)
    sglang = decode_step_terms(tables, kn, t(100), t(3), ctx, graph_max_batch=256.0, graph_counts_tokens=0.0)
    vllm = decode_step_terms(tables, kn, t(100), t(3), ctx, graph_max_batch=256.0, graph_counts_tokens=1.0)
    assert float(sglang.eager) == 0.0 and float(vllm.eager) == 1.0  # 100 requests <= 256 < 400 tokens


def test_overlap_scheduler_hides_the_bookkeeping(glm5) -> None:
    """SGLang without SPEC_V2 pays B x request_overhead_us per speculative step; with the overlap scheduler on
    (SGLANG_ENABLE_SPEC_V2=1) the term is 0 and nothing else moves; plain decode never pays it."""
    sc, _, tables = glm5
    kn, ctx = sc.knob_tensors, t(1500)
    off = decode_step_terms(tables, kn, t(64), t(3), ctx)
    on = decode_step_terms(tables, kn, t(64), t(3), ctx, speculation_overlapped=1.0)
    assert float(off.bookkeeping_s) == pytest.approx(64 * float(kn.request_overhead_us) * 1e-6)
    assert float(on.bookkeeping_s) == 0.0
    assert float(off.total_s - on.total_s) == pytest.approx(float(off.bookkeeping_s))
    assert float(decode_step_terms(tables, kn, t(64), t(0), ctx).bookkeeping_s) == 0.0


def test_spec_v2_scripts_run_speculation_overlapped() -> None:
    """The search spaces carry whether SGLang speculated under the overlap scheduler into the candidates'
    limits: qwen3.5_fp8_b200_mtp.sh sets SGLANG_ENABLE_SPEC_V2=1; qwen3.5_fp8_mi325x_mtp.sh sets nothing but
    ran sglang v0.5.12, where spec v2 is the default; dsv4_fp8_h200_mtp.sh sets nothing and ran a
    model-specific image of unknown release (the older default, off). Off rows never speculate."""
    for model, hw, prec, want in (("qwen3_5_397b", "b200", "fp8", True), ("qwen3_5_397b", "mi325x", "fp8", True),
                                  ("deepseek_v4_pro", "h200", "fp8", False)):
        sc = scenario(model, hw, prec, "1k1k")
        mtp = [c for c in benchmark_candidates(sc, "mtp", model, hw, "1k1k") if c.engine == "sglang"]
        off = benchmark_candidates(sc, "off", model, hw, "1k1k")
        assert mtp and all(c.limits_at(0).speculation_overlapped is want for c in mtp), (model, hw)
        assert not any(c.limits_at(0).speculation_overlapped for c in off)


def test_engines_speculate_under_their_overlap_scheduler_by_default() -> None:
    """TensorRT-LLM (overlap scheduler, one-model MTP) and vLLM (async scheduling, v0.14 on) hide the per-request
    bookkeeping in every benchmark row and in the open search's defaults; ATOM, which reads each step's accepted
    counts back before it prepares the next, does not; plain decode never speculates."""
    sc = scenario("deepseek_r1", "h200", "fp8", "1k1k")
    trt = [c for c in benchmark_candidates(sc, "mtp", "deepseek_r1", "h200", "1k1k") if c.engine == "trt"]
    assert trt and all(c.limits_at(i).speculation_overlapped for c in trt for i in range(len(c.concurrencies)))
    sc = scenario("deepseek_r1", "mi355x", "fp8", "1k1k")
    atom = [c for c in benchmark_candidates(sc, "mtp", "deepseek_r1", "mi355x", "1k1k") if c.engine == "atom"]
    assert atom and not any(c.limits_at(0).speculation_overlapped for c in atom)
    for engine, want in (("sglang", True), ("vllm", True), ("trt", True), ("atom", False)):
        assert engine_default_limits(engine, 180, 8, 3).speculation_overlapped is want, engine
        assert engine_default_limits(engine, 180, 8, 0).speculation_overlapped is False
    rows, _ = load_multinode()
    mtp = [r for r in rows if r.spec == "mtp" and r.engine in ("trt", "vllm")]
    assert mtp and all(r.speculation_overlapped for r in mtp)
    assert not any(r.speculation_overlapped for r in rows if r.spec == "off")


def test_sampling_term_by_hand(glm5) -> None:
    sc, dep, tables = glm5
    kn, hw, m = sc.knob_tensors, sc.hardware, sc.model
    positions, b = 64.0 * 4, 64.0
    hbm = hw.hbm_bandwidth_tb_s * 1e12 * hw.efficiency.hbm_bandwidth_fraction
    link = hw.link_bandwidth_gb_s(8) * 1e9 * hw.efficiency.link_bandwidth_fraction
    per_pos = LOGIT_PASSES * m.vocab_size * ACTIVATION_BYTES / hbm + 7 / 8 * m.vocab_size * ACTIVATION_BYTES / link
    assert float(sampling_time_s(tables.target, kn, t(b), t(positions))) == pytest.approx(positions * per_pos)
    terms = decode_step_terms(tables, kn, t(b), t(3), t(1500))
    # verify samples B (k + 1) positions, each of the k draft passes B top-1 positions (same vocab: shared head)
    assert float(terms.sampling_s) == pytest.approx((positions + 3 * b) * per_pos)


def test_draft_extend_decode_and_bookkeeping_by_hand(glm5) -> None:
    sc, _, tables = glm5
    kn, b, ctx = sc.knob_tensors, t(32), t(1500)
    floor = kn.draft_pass_latency_us
    for k in (1, 3):
        terms = decode_step_terms(tables, kn, b, t(k), ctx)
        assert float(terms.draft_extend_s) == pytest.approx(float(pass_time_s(tables.draft, kn, b, b * (k + 1), ctx,
                                                                               floor)))
        assert float(terms.draft_decode_s) == pytest.approx((k - 1) * float(pass_time_s(tables.draft, kn, b, b, ctx,
                                                                                         floor)))
        assert float(terms.bookkeeping_s) == pytest.approx(32 * 15.0e-6)
    # the draft pass's floor is its own knob: one layer pass at draft_pass_latency_us, not the target's floor
    cost = pass_cost(tables.draft, kn, b, b, ctx, floor)
    assert float(cost.latency_s) == pytest.approx(530.0e-6)
    assert float(decode_step_terms(tables, kn, b, t(0), ctx).bookkeeping_s) == 0.0


def test_breakdown_sums_to_the_effective_step(glm5) -> None:
    sc, dep, tables = glm5
    c = torch.tensor([1.0, 64.0, 256.0, 2048.0], dtype=F)
    lim = StepLimits.of(EngineLimits(cuda_graph_max_batch=128), 1024)
    for k in (0.0, 3.0):
        m = closed_loop(tables, sc.knob_tensors, sc.workload, sc.serving, c, torch.full((4,), k), torch.full((4,), 2.5
                        if k else 1.0), dep.gpus, lim)
        parts = step_breakdown(m)
        assert tuple(parts) == TERMS
        total = sum(parts.values())
        assert torch.allclose(total, m.step_s + m.stall_s, rtol=1e-12, atol=0)
        assert all(bool((v >= 0).all()) for v in parts.values())
        assert (float(parts["draft_passes"][1]) > 0) == (k > 0)


def test_admission_queues_what_does_not_fit(glm5) -> None:
    """Little's law: B of C requests run; the rest wait (C / B - 1) lifetimes; throughput saturates at B."""
    sc, dep, tables = glm5
    lim = StepLimits.of(EngineLimits(), 100)
    c = torch.tensor([50.0, 100.0, 200.0, 400.0], dtype=F)
    m = closed_loop(tables, sc.knob_tensors, sc.workload, sc.serving, c, torch.zeros(4), torch.ones(4), dep.gpus, lim)
    assert m.running_batch.tolist() == [50.0, 100.0, 100.0, 100.0]
    assert float(m.tput_per_gpu[2]) == pytest.approx(float(m.tput_per_gpu[1]))
    assert float(m.tpot_s[3]) == pytest.approx(float(m.tpot_s[1]))
    served = float(m.ttft_s[1]) + sc.workload.mean_output_tokens * float(m.tpot_s[1])
    assert float(m.queue_s[2]) == pytest.approx(served) and float(m.queue_s[3]) == pytest.approx(3 * served)
    assert float(m.queue_s[0]) == 0.0
    budget = StepLimits.of(EngineLimits(max_num_tokens=256), 1e9)
    assert float(running_batch(t(1000), t(3), budget)) == 64.0  # 256 tokens / (k + 1)


def test_deployment_that_cannot_hold_all_is_feasible_and_saturates(glm5) -> None:
    sc, dep, _ = glm5
    mem = sc.memory(dep, True, 3)
    top = mem.max_concurrency
    cand = Candidate("mtp", dep, (top, 2 * top), (3,))
    curve = evaluate(sc, [cand]).frame()
    assert curve["feasible"].all()
    assert curve["running_batch"].tolist() == [top, top]
    assert curve["tput_per_gpu"][1] == pytest.approx(curve["tput_per_gpu"][0])
    assert curve["ttft_ms"][1] > curve["ttft_ms"][0]


def test_kv_slots_reserved_for_lookahead(glm5) -> None:
    sc, dep, _ = glm5
    plain, ahead = sc.memory(dep, True, 0), sc.memory(dep, True, 3)
    tokens = sc.workload.mean_input_tokens + sc.workload.mean_output_tokens
    assert ahead.cache_gb_per_request == pytest.approx(plain.cache_gb_per_request * (tokens + 3) / tokens, rel=1e-9)
    assert ahead.max_concurrency <= plain.max_concurrency
    assert sc.memory(dep, False, 3).cache_gb_per_request == pytest.approx(sc.memory(dep, False).cache_gb_per_request)


@pytest.mark.parametrize(("value", "env", "expected"), [
    ("CONC if CONC<4 else CONC/4", {"CONC": 2}, 2),
    ("CONC if CONC<4 else CONC/4", {"CONC": 64}, 16),
    ("max(CONC, 16)", {"CONC": 8}, 16),
    ("min(max(CONC, 16), 1024)", {"CONC": 4096}, 1024),
    ("CONC*2", {"CONC": 8}, 16),
    ("ISL*2", {"ISL": 8192}, 16384),
    ("max(8, CONC*3/2) = 768", {"CONC": 64}, 96),
    ("CONC (--cuda-graph-max-bs-decode)", {"CONC": 32}, 32),
    ("next power of two >= CONC*(1+3) (min 4, max 2048)", {"CONC": 100}, 512),
    ("next power of two >= 2*ceil(CONC/TP) (min 4, max 2048)", {"CONC": 1, "TP": 8}, 4),
    ("256 if TP=4; 128 if TP=8; else max(CONC,16)", {"TP": 8, "CONC": 4}, 128),
    ("256 if TP=4; 128 if TP=8; else max(CONC,16)", {"TP": 2, "CONC": 4}, 16),
    ("TP=2: 32 if EP_SIZE=2 and CONC>=32 else 256; TP>=4: 512; else max(CONC,16)",
     {"TP": 2, "EP_SIZE": 2, "CONC": 64}, 32),
    ("CONC if DP_ATTENTION=true or CONC>=64, else engine default", {"DP_ATTENTION": False, "CONC": 8}, None),
    ("CONC if DP_ATTENTION=true or CONC>=64, else engine default", {"DP_ATTENTION": True, "CONC": 8}, 8),
    ("ceil64(4*CONC+ISL+64)", {"CONC": 10, "ISL": 1024}, 1152),
    ("engine default (not set)", {}, None),
    (512, {}, 512),
])
def test_resolve_setting_as_the_script_would(value, env, expected) -> None:
    assert resolve_setting(value, env) == expected


def test_resolve_setting_rejects_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="unknown name"):
        resolve_setting("FOO*2", {"CONC": 4})


def test_engine_default_limits_are_documented_values() -> None:
    assert default_limits("sglang", 180, 8, 3)["cuda_graph_max_bs"] == 512  # B200
    assert default_limits("sglang", 80, 2, 0)["cuda_graph_max_bs"] == 256  # H100, TP < 4
    assert default_limits("vllm", 141, 8, 3) == {"cuda_graph_max_bs": 512, "max_running_requests": 1024,
                                                 "max_num_tokens": 8192}
    assert default_limits("trt", 180, 8, 1)["cuda_graph_max_bs"] == 128
    # SGLang: the KV pool decides how many run, but speculative decoding resets an unset limit to 48
    assert default_limits("sglang", 288, 8, 0)["max_running_requests"] is None
    assert default_limits("sglang", 288, 8, 3)["max_running_requests"] == 48


def test_sglang_mtp_scripts_without_a_running_limit_run_48() -> None:
    """dsr1_fp8_mi325x_mtp.sh sets no --max-running-requests: SGLang's speculative default (48) bounds the
    running batch at every concurrency, and the limits say where the value came from."""
    sc = scenario("deepseek_r1", "mi325x", "fp8", "1k1k")
    cands = benchmark_candidates(sc, "mtp", "deepseek_r1", "mi325x", "1k1k")
    assert cands
    for cand in cands:
        limits = [cand.limits_at(i) for i in range(len(cand.concurrencies))]
        assert {lim.max_running_requests for lim in limits} == {48}
        assert all("max_running_requests engine default" in lim.source for lim in limits)


def test_benchmark_candidates_carry_the_scripts_limits() -> None:
    """GLM-5 FP8 B200 8k/1k MTP (glm5_fp8_b200_mtp.sh): --cuda-graph-max-bs CONC, --max-running-requests CONC."""
    sc = scenario("glm5", "b200", "fp8", "8k1k")
    cands = benchmark_candidates(sc, "mtp", "glm5", "b200", "8k1k")
    assert cands
    for cand in cands:
        for i, c in enumerate(cand.concurrencies):
            lim = cand.limits_at(i)
            assert lim.cuda_graph_max_batch == c and lim.max_running_requests == c


def test_knob_tensors_cover_every_knob() -> None:
    kn = KnobTensors.from_spec(scenario().hardware.efficiency)
    assert float(kn.draft_pass_latency_us) == 530.0 and float(kn.request_overhead_us) == 15.0
