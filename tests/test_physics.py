"""Operator FLOPs/bytes against hand-computed values; experts touched; MTP step structure; acceptance."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import scenario
from simulator.acceptance import acceptance_length, al_from_conditional_rates, al_table, scaled_al
from simulator.catalog import load_model
from simulator.lowering import memory_footprint
from simulator.moe import busiest_rank_z, expected_experts_touched, routing_draws
from simulator.operators import INDEXER_BLOCKS_PER_LAYER, draft_ops, target_ops
from simulator.serving import closed_loop
from simulator.specs import AcceptanceSpec, ServingSpec
from simulator.speculative import decode_step_time_s, sampling_time_s
from simulator.step_cost import pass_cost


def op(ops, name):
    return next(o for o in ops if o.name == name)


def row(table, name: str) -> int:
    return table.names.index(name)


def test_deepseek_r1_mla_and_moe_by_hand() -> None:
    m, _ = load_model("deepseek_r1")
    ops = target_ops(m)
    mla = op(ops, "L1.mla.proj")
    q = 7168 * 1536 + 1536 * 128 * (128 + 64)
    kv = 7168 * (512 + 64) + 512 * 128 * (128 + 128)
    o = 128 * 128 * 7168
    assert mla.params == q + kv + o == 187_105_280
    core = op(ops, "L1.mla.core")
    assert core.flops_per_token_ctx == 2 * 128 * ((512 + 64) + 512)  # absorbed MLA: scores + values
    assert core.cache_values_per_token == 576 and core.kv_heads == 0  # latent, replicated under TP
    experts = op(ops, "L1.moe.experts")
    assert experts.layers == 58 and experts.expert_params == 3 * 7168 * 2048
    assert experts.active_params == 8 * 3 * 7168 * 2048
    assert op(ops, "L0.ffn.dense").params == 3 * 7168 * 18432
    mtp = draft_ops(m)
    assert op(mtp, "draft.fuse_proj").params == 2 * 7168 * 7168


def test_deepseek_r1_lowered_per_gpu_by_hand() -> None:
    sc = scenario("deepseek_r1", "b200", "fp4")
    t = sc.tables(sc.deployment(tp=8)).target
    i = row(t, "L1.mla.proj")
    assert float(t.weight_bytes[i]) == pytest.approx(58 * 187_105_280 * 1.0 / 8)  # fp8 attention weights
    j = row(t, "L1.moe.experts")
    assert float(t.expert_bytes[j]) == pytest.approx(58 * 3 * 7168 * 2048 * 0.5625 / 8)  # NVFP4 experts, TP-split
    assert float(t.experts_local[j]) == 256 and float(t.route_prob[j]) == pytest.approx(8 / 256)
    assert float(t.peak_flops[j]) == 9000e12  # FP4 tensor cores
    c = row(t, "L1.mla.core")
    assert float(t.flops_per_token_ctx[c]) == pytest.approx(58 * 2 * 128 * 1088 / 8)
    assert float(t.bytes_per_request_ctx[c]) == pytest.approx(58 * 576 * 1.0)  # fp8 latent, not split by TP
    # one request, one token, 1000 context tokens: every row's time is max(compute, memory), by hand (uniform
    # routing: the token reads exactly its 8 experts; the popularity form undercounts a lone token by c^2 k / 2E)
    knobs = replace(sc.knob_tensors, expert_popularity_cv=torch.tensor(0.0, dtype=torch.float64))
    cost = pass_cost(t, knobs, torch.tensor(1.0), torch.tensor(1.0), torch.tensor(1000.0))
    hbm = 7.7e12 * 0.8
    experts_bytes = 58 * 3 * 7168 * 2048 * 0.5625 / 8 * 8 + 58 * 2 * 7168 * 2 * 8 / 8
    assert float(cost.operator_s[j]) == pytest.approx(experts_bytes / hbm)
    core_bytes = 58 * 576 * 1000 + 58 * (2 * 7168 * 2 + 576)
    assert float(cost.operator_s[c]) == pytest.approx(core_bytes / hbm)
    assert not bool(cost.compute_bound[j])


def test_qwen3_5_linear_and_full_attention_by_hand() -> None:
    m, _ = load_model("qwen3_5_397b")
    ops = target_ops(m)
    lin = op(ops, "L0.linear_attn.proj")
    assert lin.layers == 45
    assert lin.params == 4096 * (2 * 2048 + 2 * 8192) + 4096 * 2 * 64 + 8192 * 4096 + (2 * 2048 + 8192) * 4
    state = op(ops, "L0.linear_attn.state")
    assert state.state_values_per_request == 64 * 128 * 128 + (2 * 2048 + 8192) * 4
    full = op(ops, "L1.gqa.proj")
    assert full.layers == 15
    assert full.params == 4096 * 32 * 256 * 2 + 4096 * 2 * 256 * 2 + 32 * 256 * 4096
    core = op(ops, "L1.gqa.core")
    assert core.cache_values_per_token == 2 * 2 * 256 and core.kv_heads == 2
    sc = scenario("qwen3_5_397b", "h200", "fp8")
    t = sc.tables(sc.deployment(tp=8, ep=8)).target
    k = row(t, "L1.gqa.core")
    assert float(t.bytes_per_request_ctx[k]) == pytest.approx(15 * 1024 * 1.0 / 2)  # 2 KV heads over 8 ranks
    s = row(t, "L0.linear_attn.state")
    # one fp32 copy of the state per request (a pass reads it once and writes it per kept position)
    assert float(t.bytes_per_request[s]) == pytest.approx(45 * (64 * 128 * 128 + 12288 * 4) * 4 / 8)
    e = row(t, "L0.moe.experts")
    assert float(t.experts_local[e]) == 512 / 8
    assert float(t.expert_bytes[e]) == pytest.approx(45 * 3 * 4096 * 1024 * 1.0)  # whole experts under EP
    assert float(t.busiest_rank_z[e]) == pytest.approx(busiest_rank_z(8))  # the layer waits for the busiest rank
    assert float(sc.tables(sc.deployment(tp=8, ep=1)).target.busiest_rank_z[e]) == 0.0  # TP: every rank alike


def test_sparse_attention_indexer_is_replicated_and_fp8() -> None:
    """The DSA indexer runs whole on every attention-TP rank (not split) and scores in FP8; DeepSeek-V4 has it
    in its 30 compress-ratio-4 layers only."""
    sc = scenario("glm5", "b200", "fp8", "8k1k")
    tp8, tp1 = (sc.tables(sc.deployment(tp=n)).target for n in (8, 1))
    i, c = row(tp8, "L1.indexer.score"), row(tp8, "L1.mla.core")
    assert float(tp8.flops_per_token_ctx[i]) == float(tp1.flops_per_token_ctx[i]) == 75 * 2 * 32 * 128
    # the sparse core's heads split over TP, but its kernel computes no fewer than the GPU's head tile per rank
    # (64 on NVIDIA): 64 heads / TP8 = 8 per rank are padded back to 64 (the heads' share would be 1/8)
    assert float(tp8.flops_per_token_ctx[c]) == pytest.approx(float(tp1.flops_per_token_ctx[c]))
    p = row(tp8, "L1.indexer.proj")
    assert float(tp8.weight_bytes[p]) == float(tp1.weight_bytes[p]) > 0 and float(tp8.dp_sharded[i]) == 1.0
    assert float(tp8.peak_flops[i]) == sc.hardware.peak_tflops.fp8 * 1e12
    v4 = scenario("deepseek_v4_pro", "b200", "fp4", "8k1k")
    t = v4.tables(v4.deployment(tp=8)).target
    assert sum(name.endswith("indexer.score") for name in t.names) == 1  # one group: the 30 x4 layers
    assert float(t.flops_per_token_ctx[row(t, "L1.indexer.score")]) == 30 * 2 * 64 * 128


def test_hyper_connection_blocks_pay_a_layer_floor_each() -> None:
    """DeepSeek-V4's 61 layers each run two hyper-connection mixing blocks (around attention and the FFN):
    its target pass pays 62 + 2 x 61 layer-pass floors (the LM head's pass once) besides its 30 indexer blocks,
    but its collectives and hidden-state traffic stay per layer; a plain residual (one stream) pays the layer
    passes and the indexer blocks alone."""
    from simulator.scenario import Scenario

    v4 = scenario("deepseek_v4_pro", "b200", "fp4", "8k1k")
    plain = Scenario(model=v4.model.model_copy(update={"hyper_connection_streams": 1}), hardware=v4.hardware,
                     precision=v4.precision, workload=v4.workload, acceptance=v4.acceptance)
    dep = v4.deployment(tp=8)
    mixed, base = v4.tables(dep).target, plain.tables(dep).target
    assert float(base.layer_passes) == 62 + 30 and float(mixed.layer_passes) == 62 + 2 * 61 + 30
    assert float(mixed.collectives) == float(base.collectives) == 2 * 62
    assert float(mixed.comm_bytes_per_token) == float(base.comm_bytes_per_token)
    knobs = v4.knob_tensors
    extra = pass_cost(mixed, knobs, 1.0, 1.0, 8192.0).latency_s - pass_cost(base, knobs, 1.0, 1.0, 8192.0).latency_s
    assert float(extra) == pytest.approx(2 * 61 * float(knobs.layer_pass_latency_us) * 1e-6)
    assert float(v4.tables(dep).draft.layer_passes) == float(plain.tables(dep).draft.layer_passes) == 1
    r1 = scenario("deepseek_r1", "b200", "fp4")
    assert float(r1.tables(r1.deployment(tp=8)).target.layer_passes) == 62  # no hyper-connections
    assert INDEXER_BLOCKS_PER_LAYER == 1


def test_indexer_blocks_pay_a_layer_floor_each() -> None:
    """A sparse-attention layer's indexer (GLM-5's DSA in all 78 layers) is a chain of small kernels ahead of
    its attention: one more layer-pass floor per such layer on the target pass, on both sides alike; the same
    model without the indexer pays its layer passes alone, and the collectives and the draft pass's floor do
    not change."""
    from simulator.scenario import Scenario

    glm = scenario("glm5", "b200", "fp8", "8k1k")
    layers = [g.model_copy(update={"attention": g.attention.model_copy(update={"indexer": None})})
              for g in glm.model.layers]
    dense = Scenario(model=glm.model.model_copy(update={"layers": layers}), hardware=glm.hardware,
                     precision=glm.precision, workload=glm.workload, acceptance=glm.acceptance)
    dep = glm.deployment(tp=8)
    sparse_t, dense_t = glm.tables(dep).target, dense.tables(dep).target
    assert float(dense_t.layer_passes) == 79 and float(sparse_t.layer_passes) == 79 + 78
    assert float(sparse_t.collectives) == float(dense_t.collectives) == 2 * 79
    knobs = glm.knob_tensors
    extra = pass_cost(sparse_t, knobs, 1.0, 1.0, 8192.0).latency_s - pass_cost(dense_t, knobs, 1.0, 1.0, 8192.0).latency_s
    assert float(extra) == pytest.approx(78 * float(knobs.layer_pass_latency_us) * 1e-6)
    assert float(glm.tables(dep).draft.layer_passes) == 1


def test_sparse_attention_head_tile_pads_split_heads() -> None:
    """A sparse-attention core computes max(heads per rank, the hardware's head tile) heads per query token:
    GLM-5's 64 heads at TP8 pad 8 -> 64 on B200 (tile 64) and 8 -> 16 on MI355X (tile 16); a rank holding a
    tile or more (TP4 on MI355X, DP-attention) computes its own share; dense MLA (DeepSeek-R1) is never padded."""
    def core(model: str, hw: str, precision: str, **dep: object) -> float:
        sc = scenario(model, hw, precision, "1k1k")
        t = sc.tables(sc.deployment(**dep)).target
        return float(t.flops_per_token_ctx[row(t, "L1.mla.core")])
    whole = core("glm5", "b200", "fp8", tp=1)  # 64 heads on one rank: no padding anywhere
    assert core("glm5", "mi355x", "fp8", tp=1) == pytest.approx(whole)
    assert core("glm5", "b200", "fp8", tp=8) == pytest.approx(whole)  # 8 heads computed as 64
    assert core("glm5", "mi355x", "fp8", tp=8) == pytest.approx(whole * 16 / 64)  # 8 heads computed as 16
    assert core("glm5", "mi355x", "fp8", tp=4) == pytest.approx(whole / 4)  # 16 per rank: the tile, unpadded
    assert core("glm5", "b200", "fp8", tp=8, dp_attention=True) == pytest.approx(whole)  # all heads per rank
    r1 = [core("deepseek_r1", "b200", "fp8", tp=n) for n in (1, 8)]
    assert r1[1] == pytest.approx(r1[0] / 8)  # dense MLA: the heads' share, no tile
    # DeepSeek-V4: both compressed layer groups (x128 without an indexer, x4 with one) run the sparse kernel;
    # 128 heads / TP8 = 16 per rank computed as 64: half of TP1's 128, not an eighth
    v4 = scenario("deepseek_v4_pro", "b200", "fp4", "1k1k")
    t1, t8 = (v4.tables(v4.deployment(tp=n)).target for n in (1, 8))
    for name in ("L0.gqa.core", "L1.gqa.core"):
        assert float(t8.flops_per_token_ctx[row(t8, name)]) == pytest.approx(
            float(t1.flops_per_token_ctx[row(t1, name)]) / 2)


def test_linear_attention_state_per_verified_position() -> None:
    """A verify pass over k + 1 positions reads each request's recurrent state once and writes it k + 1 times
    (rollback); admission holds k + 1 more state copies per request. Plain decode: one read, one write."""
    sc = scenario("qwen3_5_397b", "b200", "fp8", "1k1k")
    dep = sc.deployment(tp=8, ep=8)
    t, kn = sc.tables(dep).target, sc.knob_tensors
    s = row(t, "L0.linear_attn.state")
    state = float(t.bytes_per_request[s])
    b, ctx = torch.tensor(64.0), torch.tensor(1500.0)
    hbm = float(t.hbm_bytes_s) * float(kn.hbm_bandwidth_fraction)
    for writes in (1.0, 4.0):
        kv = pass_cost(t, kn, b, b * writes, ctx, state_writes=writes).kv_s[..., s]
        assert float(kv) == pytest.approx(64 * state * (1 + writes) / hbm)
    fp = memory_footprint(sc.model, sc.precision, dep, sc.kv_bytes, True, sc.state_bytes)
    assert fp.state_bytes_per_request == pytest.approx(45 * (64 * 128 * 128 + 12288 * 4) * 4 / 8)  # one copy
    tokens = sc.workload.mean_input_tokens + sc.workload.mean_output_tokens
    for k, copies in ((0, 1), (3, 5)):
        assert sc.memory(dep, True, k).cache_gb_per_request * 1e9 == pytest.approx(
            fp.cache_bytes_per_request(tokens + k, 1.0) + (copies - 1) * fp.state_bytes_per_request)


def test_dp_attention_moves_an_all_gather_and_a_reduce_scatter_per_layer() -> None:
    """TP8: two ring all-reduces of the hidden state per layer, 4 (tp - 1) / tp; DEP8: attention needs none, the
    MoE an all-gather + a reduce-scatter, 2 (tp - 1) / tp: half the bytes, the same count of collectives."""
    sc = scenario("deepseek_r1", "b200", "fp4", "8k1k")
    tp8 = sc.tables(sc.deployment(tp=8, ep=8)).target
    dep8 = sc.tables(sc.deployment(tp=8, ep=8, dp_attention=True)).target
    h, layers = 7168, float(tp8.layer_passes)
    assert float(tp8.comm_bytes_per_token) == pytest.approx(layers * 4 * 7 / 8 * h * 2)
    assert float(dep8.comm_bytes_per_token) == pytest.approx(layers * 2 * 7 / 8 * h * 2)
    assert float(dep8.collectives) == float(tp8.collectives) == 2 * layers


def test_fp4_experts_without_fp4_cores_compute_at_the_bf16_peak() -> None:
    """DeepSeek-V4's FP4 experts on H200 (no FP4 tensor cores) run weight-only (W4A16, Marlin): FP4 bytes, BF16
    FLOPs; on B200 the FP4 cores run them."""
    for hw, peak in (("h200", "bf16"), ("b200", "fp4")):
        sc = scenario("deepseek_v4_pro", hw, "fp8", "1k1k")
        t = sc.tables(sc.deployment(tp=8)).target
        e = row(t, "L0.moe.experts")
        assert float(t.peak_flops[e]) == getattr(sc.hardware.peak_tflops, peak) * 1e12
        assert float(t.expert_bytes[e]) == pytest.approx(31 * 3 * 7168 * 3072 * 4.5 / 8 / 8)  # FP4 + scales, / TP8


def test_expected_experts_touched() -> None:
    assert float(expected_experts_touched(256, 8 / 256, 1)) == pytest.approx(8.0)
    assert float(expected_experts_touched(32, 8 / 256, 1)) == pytest.approx(1.0)  # one EP rank's share
    assert float(expected_experts_touched(256, 8 / 256, 2)) == pytest.approx(256 * (1 - (1 - 8 / 256) ** 2))
    assert float(expected_experts_touched(256, 8 / 256, 4096)) == pytest.approx(256.0, rel=1e-9)
    assert float(expected_experts_touched(256, 8 / 256, 0)) == 0.0


def test_routing_locality_matches_a_monte_carlo_of_repeating_routers() -> None:
    """A request's k + 1 verify positions, each keeping a fraction rho of its previous token's experts and drawing
    the rest afresh (distinct per token), touch as many distinct experts as R + (T - R)(1 - rho) independent
    tokens (moe.routing_draws); different requests stay independent, and rho = 0 is uniform routing."""
    assert float(routing_draws(8, 8, 0.5)) == 8.0  # plain decode: one token per request
    assert float(routing_draws(8, 32, 0.0)) == 32.0 and float(routing_draws(8, 32, 0.5)) == 20.0
    rng = np.random.default_rng(1)
    for experts, k, requests, positions, rho in ((256, 8, 4, 4, 0.4), (256, 8, 16, 3, 0.3), (512, 10, 8, 4, 0.6)):
        hits = []
        for _ in range(300):
            hit = np.zeros(experts, dtype=bool)
            for _ in range(requests):
                prev = rng.choice(experts, k, replace=False)
                hit[prev] = True
                for _ in range(positions - 1):
                    keep = prev[rng.random(k) < rho]
                    fresh = rng.choice(np.setdiff1d(np.arange(experts), keep), k - keep.size, replace=False)
                    prev = np.concatenate([keep, fresh])
                    hit[prev] = True
            hits.append(hit.sum())
        draws = routing_draws(requests, requests * positions, rho)
        model = float(expected_experts_touched(experts, k / experts, draws))
        assert model == pytest.approx(np.mean(hits), rel=0.04), (experts, k, requests, positions, rho)
        uniform = float(expected_experts_touched(experts, k / experts, requests * positions))
        assert model < uniform


def test_expert_popularity_matches_a_monte_carlo_of_skewed_routers() -> None:
    """Experts whose popularity is gamma-distributed (mean 1, coefficient of variation c), each token picking k
    distinct experts in proportion to it: the distinct experts T tokens touch follow E (1 - (1 + lambda T
    c^2)^(-1 / c^2)) (moe.expected_experts_touched), fewer than under uniform routing, the same at c = 0."""
    assert float(expected_experts_touched(256, 8 / 256, 16, 0.0, 0.0)) == pytest.approx(
        float(expected_experts_touched(256, 8 / 256, 16)), rel=1e-12)
    rng = np.random.default_rng(2)
    for experts, k, tokens, cv in ((256, 8, 16, 1.0), (256, 8, 64, 1.5), (512, 10, 64, 0.5)):
        hits = []
        for _ in range(200):
            weight = rng.gamma(1.0 / cv**2, cv**2, experts)
            hit = np.zeros(experts, dtype=bool)
            for _ in range(tokens):
                hit[rng.choice(experts, k, replace=False, p=weight / weight.sum())] = True
            hits.append(hit.sum())
        model = float(expected_experts_touched(experts, k / experts, tokens, 0.0, cv))
        assert model == pytest.approx(np.mean(hits), rel=0.04), (experts, k, tokens, cv)
        assert model < 0.95 * float(expected_experts_touched(experts, k / experts, tokens))


def test_busiest_expert_parallel_rank_matches_a_monte_carlo_of_uniform_routing() -> None:
    """Under EP the layer waits for the rank that touches the most experts: E/EP q plus Blom's score of EP
    ranks times sqrt(E/EP q (1 - q)), against sampled top-k routing (uniform, distinct experts per token)."""
    assert busiest_rank_z(1) == 0.0 and busiest_rank_z(8) == pytest.approx(1.4342, abs=1e-4)
    assert busiest_rank_z(2) == pytest.approx(0.564, abs=0.03) and busiest_rank_z(32) == pytest.approx(2.070, abs=0.01)
    rng = np.random.default_rng(0)
    for experts, k, ep, tokens in ((512, 10, 8, 4), (512, 10, 8, 16), (256, 8, 8, 32), (256, 8, 4, 16)):
        picks = np.argsort(rng.random((1000, tokens, experts)), axis=-1)[..., :k]  # k distinct experts per token
        hit = np.zeros((1000, experts), dtype=bool)
        np.put_along_axis(hit, picks.reshape(1000, -1), True, axis=-1)
        per_rank = hit.reshape(1000, ep, experts // ep).sum(-1)
        model = float(expected_experts_touched(experts / ep, k / experts, tokens, busiest_rank_z(ep)))
        mean = float(expected_experts_touched(experts / ep, k / experts, tokens))
        assert model == pytest.approx(per_rank.max(-1).mean(), rel=0.03)
        assert mean == pytest.approx(per_rank.mean(), rel=0.02) and model > 1.1 * mean
    # all experts touched: no spread, the busiest rank reads what every rank reads
    assert float(expected_experts_touched(32, 8 / 256, 4096, busiest_rank_z(8))) == pytest.approx(32.0, rel=1e-9)


def test_acceptance_lengths() -> None:
    rates = [0.9, 0.8, 0.5]
    al = al_from_conditional_rates(rates)
    assert al.tolist() == pytest.approx([1.0, 1.9, 1.9 + 0.72, 1.9 + 0.72 + 0.36])
    assert scaled_al(torch.tensor([1.0, 1.9, 2.6]), 0.5, torch.tensor([0.0, 1.0, 2.0])).tolist() == pytest.approx(
        [1.0, 1.45, 1.8])
    assert scaled_al(torch.tensor(2.6), 3.0, torch.tensor(2.0)).item() == 3.0  # kept <= k + 1
    table = al_table(AcceptanceSpec(al_by_draft_tokens=[1.9, 2.6, 3.0]))
    assert table.tolist() == pytest.approx([1.0, 1.9, 2.6, 3.0])
    doubled = al_table(AcceptanceSpec(al_by_draft_tokens=[1.9, 2.6, 3.0]), scale=2.0)
    assert (doubled <= torch.arange(4) + 1).all() and float(doubled[1]) == 2.0  # clamped to k + 1
    for key in ("deepseek_r1", "glm5", "qwen3_5_397b", "kimi_k2_5", "deepseek_v4_pro"):
        _, acc = load_model(key)
        t = al_table(acc)
        k = torch.arange(t.numel())
        assert bool(((t >= 1) & (t <= k + 1)).all()), key
    with pytest.raises(ValueError, match="exceeds the acceptance table"):
        acceptance_length(table, 5)


def test_mtp_off_equals_k_zero() -> None:
    sc = scenario("glm5", "b200", "fp4")
    dep = sc.deployment(tp=4)
    tables = sc.tables(dep)
    c = torch.tensor([1.0, 8.0, 64.0])
    plain = decode_step_time_s(tables.__class__(tables.target, None), sc.knob_tensors, c, torch.zeros(3),
                               torch.tensor(1000.0))
    with_draft = decode_step_time_s(tables, sc.knob_tensors, c, torch.zeros(3), torch.tensor(1000.0))
    assert torch.allclose(plain, with_draft)
    off = closed_loop(tables.__class__(tables.target, None), sc.knob_tensors, sc.workload, sc.serving, c,
                      torch.zeros(3), torch.ones(3), dep.gpus)
    k0 = closed_loop(tables, sc.knob_tensors, sc.workload, sc.serving, c, torch.zeros(3), torch.ones(3), dep.gpus)
    assert torch.allclose(off.tput_per_gpu, k0.tput_per_gpu) and torch.allclose(off.interactivity, k0.interactivity)


def test_chunked_ttft_waits_for_the_steps_that_carry_its_own_prompt() -> None:
    """Under chunked prefill a request's first token waits for the steps that carry its own prompt, so its TTFT
    grows with the prompt as a prefill does, not as one mean decode step (aiconfigurator's silicon vLLM rows:
    the 8k-minus-1k TTFT at concurrency 4 ran 66-127x the earlier model's, about 1-2.4x once this is priced)."""
    growth = {}
    for mode in ("separate", "chunked"):
        ttft = []
        for wl in ("1k1k", "8k1k"):
            sc = scenario("llama3_3_70b", "h100", "fp8", wl).model_copy(
                update={"serving": ServingSpec(prefill_mode=mode, prefill_chunk_tokens=8192)})
            dep = sc.deployment(tp=4)
            r = closed_loop(sc.tables(dep), sc.knob_tensors, sc.workload, sc.serving, torch.tensor([2.0]),
                            torch.zeros(1), torch.ones(1), dep.gpus)
            ttft.append(float(r.ttft_s[0]))
        growth[mode] = ttft[1] - ttft[0]
    assert growth["separate"] > 0.05  # ~6.5k more prompt tokens of a 70B dense model on 4 H100s
    assert 0.5 < growth["chunked"] / growth["separate"] < 2.0


def test_mtp_step_is_k_drafts_plus_one_verify() -> None:
    sc = scenario("deepseek_r1", "b200", "fp4")
    tables = sc.tables(sc.deployment(tp=8))
    b, ctx = torch.tensor(16.0), torch.tensor(1500.0)
    kn = sc.knob_tensors
    from simulator.step_cost import pass_time_s

    floor = kn.draft_pass_latency_us
    for k in (1, 3):
        # SGLang EAGLE: draft extend over B (k + 1) positions, k - 1 draft decode passes, one verify pass
        expected = (pass_time_s(tables.target, kn, b, b * (k + 1), ctx)
                    + pass_time_s(tables.draft, kn, b, b * (k + 1), ctx, floor)
                    + (k - 1) * pass_time_s(tables.draft, kn, b, b, ctx, floor)
                    + sampling_time_s(tables.target, kn, b, b * (k + 1)) + k * sampling_time_s(tables.draft, kn, b, b)
                    + b * kn.request_overhead_us * 1e-6 + kn.step_latency_us * 1e-6)
        assert float(decode_step_time_s(tables, kn, b, torch.tensor(float(k)), ctx)) == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="no draft"):
        decode_step_time_s(tables.__class__(tables.target, None), kn, b, torch.tensor(2.0), ctx)


def test_latency_floor_dominates_at_batch_one() -> None:
    """docs/sources.md#serving-model-priors: at batch 1 the roofline is ~1 ms, the step ~10 ms; latency is modelled."""
    sc = scenario("deepseek_r1", "b200", "fp4")
    t = sc.tables(sc.deployment(tp=8)).target
    cost = pass_cost(t, sc.knob_tensors, torch.tensor(1.0), torch.tensor(4.0), torch.tensor(1500.0))
    roofline = float(cost.operator_s.sum())
    assert roofline < 2e-3
    assert float(cost.latency_s + cost.comm_s) > 2 * roofline
    assert math.isfinite(float(cost.total_s))
