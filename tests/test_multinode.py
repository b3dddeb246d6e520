"""Beyond one node: all-to-all, EPLB, busiest DP rank, memory under wide EP, disaggregated serving, errors."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from pydantic import ValidationError

from conftest import point, scenario
from simulator.acceptance import al_table
from simulator.batched import Case, lower_cases
from simulator.evaluate import evaluate
from simulator.knobs import KnobTensors
from simulator.search import Candidate, benchmark_candidates, open_cluster_shapes
from simulator.serving import StepLimits, disaggregated_loop_tokens
from simulator.specs import EngineLimits, HardwareSpec
from simulator.specs.topology import DisaggregatedSpec, WorkerSpec, parse_xpyd
from simulator.step_cost import busiest_rank_share, pass_cost
from simulator.topology import (
    COMBINE_BYTES_PER_VALUE,
    DISPATCH_BYTES_PER_VALUE,
    eplb_residual,
    kv_transfer,
    kv_transfer_bytes_per_request,
    pair_fractions,
    redundant_expert_bytes,
    worker_memory,
    worker_model,
)

DSR1_HIDDEN, DSR1_TOPK, DSR1_MOE_LAYERS = 7168, 8, 58
DISPATCH = DSR1_HIDDEN * (1 + 4 / 128)  # FP8 + one fp32 scale per 128 channels = 7392 B per (token, expert)
COMBINE = DSR1_HIDDEN * 2  # BF16 = 14336 B
DEP16 = WorkerSpec(tp=16, ep=16, dp_attention=True)
DEP4 = WorkerSpec(tp=4, ep=4, dp_attention=True)


def r1(hardware: str, workload: str = "1k1k", precision: str = "fp4"):
    return scenario("deepseek_r1", hardware, precision, workload)


# ---- the all-to-all by hand: each phase's two paths priced apart (the reference the folded tables must meet)

@dataclass(frozen=True)
class AllToAllCost:
    """One MoE layer's dispatch + combine on the busiest rank, and over `moe_layers` layers (`total_s`).

    Bytes are what one rank sends per layer (both phases); seconds per layer unless named total.
    """

    over: str  # "scale_up" or "scale_out": the widest fabric the EP group spans
    scale_up_bytes: float
    scale_out_bytes: float
    bandwidth_s: float  # per layer, both phases: the slower path of each
    latency_s: float  # per layer, both phases
    moe_layers: int

    @property
    def layer_s(self) -> float:
        return self.bandwidth_s + self.latency_s

    @property
    def total_s(self) -> float:
        return self.moe_layers * self.layer_s


def alltoall_cost(tokens_per_rank: float, hidden: int, experts_per_token: int, ep: int, group_gpus: int,
                  hw: HardwareSpec, knobs: KnobTensors, moe_layers: int) -> AllToAllCost:
    """Dispatch + combine of `tokens_per_rank` tokens per EP rank, `experts_per_token` routed experts each.

    Scale-up path: the GPU's scale-up bandwidth x `link_bandwidth_fraction`, latency `collective_latency_us`
    per phase. Scale-out path: the NIC line rate x `scale_out_bandwidth_fraction`, latency
    `scale_out_latency_us` per phase (priors from DeepEP, specs/topology.py). A group inside one domain never
    touches the NIC.
    """
    up_frac, out_frac = pair_fractions(ep, group_gpus)
    so = hw.scale_out
    if out_frac > 0 and so is None:
        raise ValueError(f"{hw.name} has no scale_out spec: an EP group of {ep} spans more than its "
                         f"{group_gpus}-GPU scale-up group")
    up_bw = hw.link_bandwidth_gb_s(group_gpus) * 1e9 * float(knobs.link_bandwidth_fraction)
    pairs = tokens_per_rank * experts_per_token
    bw_s = lat_s = up_bytes = out_bytes = 0.0
    for per_value in (DISPATCH_BYTES_PER_VALUE, COMBINE_BYTES_PER_VALUE):
        phase = pairs * hidden * per_value
        up, out = phase * up_frac, phase * out_frac
        up_bytes, out_bytes = up_bytes + up, out_bytes + out
        if out_frac > 0:
            assert so is not None
            bw_s += max(up / up_bw, out / (so.bytes_per_s * float(knobs.scale_out_bandwidth_fraction)))
            lat_s += float(knobs.scale_out_latency_us) * 1e-6
        else:
            bw_s += up / up_bw
            lat_s += float(knobs.collective_latency_us) * 1e-6 if ep > 1 else 0.0
    return AllToAllCost("scale_out" if out_frac > 0 else "scale_up", up_bytes, out_bytes, bw_s, lat_s,
                        moe_layers)



def test_alltoall_dep16_on_gb200_nvl72_by_hand() -> None:
    """DEP16 inside one NVL72 domain: 15/16 of the pairs go over NVLink (900 GB/s x 0.7), none over a NIC."""
    sc = r1("gb200")
    a = alltoall_cost(64, DSR1_HIDDEN, DSR1_TOPK, 16, 16, sc.hardware, sc.knob_tensors, DSR1_MOE_LAYERS)
    pairs = 64 * 8
    up = pairs * (DISPATCH + COMBINE) * 15 / 16
    assert a.over == "scale_up" and a.scale_out_bytes == 0
    assert a.scale_up_bytes == pytest.approx(up) == pytest.approx(10_429_440)
    assert a.bandwidth_s == pytest.approx(up / (900e9 * 0.7))  # 16.55 us
    assert a.latency_s == pytest.approx(2 * 15e-6)  # one collective floor per phase
    assert a.total_s == pytest.approx(58 * (16.5547e-6 + 30e-6), rel=1e-4)  # 2.70 ms per pass


def test_alltoall_dep16_across_two_hgx_b200_nodes_by_hand() -> None:
    """DEP16 over two 8-GPU nodes: 7/16 of the pairs over NVLink, 8/16 over the 400 Gb/s NIC (50 GB/s x 0.8),
    the slower path per phase plus the 20 us RDMA message floor."""
    sc = r1("b200")
    a = alltoall_cost(64, DSR1_HIDDEN, DSR1_TOPK, 16, 8, sc.hardware, sc.knob_tensors, DSR1_MOE_LAYERS)
    pairs = 64 * 8
    nic = 50e9 * 0.8
    dispatch_s = max(pairs * DISPATCH * 7 / 16 / 630e9, pairs * DISPATCH / 2 / nic)  # 47.31 us (NIC)
    combine_s = max(pairs * COMBINE * 7 / 16 / 630e9, pairs * COMBINE / 2 / nic)  # 91.75 us (NIC)
    assert a.over == "scale_out"
    assert a.scale_out_bytes == pytest.approx(pairs * (DISPATCH + COMBINE) / 2) == pytest.approx(5_562_368)
    assert a.bandwidth_s == pytest.approx(dispatch_s + combine_s)
    assert a.layer_s == pytest.approx(dispatch_s + combine_s + 40e-6)  # 179.06 us per MoE layer
    # the same wide group inside an NVL72 rack is ~4x cheaper per layer
    gb = alltoall_cost(64, DSR1_HIDDEN, DSR1_TOPK, 16, 16, r1("gb200").hardware, sc.knob_tensors, 58)
    assert a.layer_s > 3.5 * gb.layer_s


def test_alltoall_close_to_deepep_published_ep16() -> None:
    """Sanity against the prior's source: DeepEP V1 low-latency EP16 (2 nodes, CX7 400 Gb/s, 128 tokens, top-8,
    hidden 7168) measured 118 us dispatch + 195 us combine = 313 us (deepseek-ai/DeepEP docs/legacy.md)."""
    sc = r1("b200")
    a = alltoall_cost(128, DSR1_HIDDEN, DSR1_TOPK, 16, 8, sc.hardware, sc.knob_tensors, 1)
    assert a.layer_s == pytest.approx(313e-6, rel=0.10)


def test_folded_pass_tables_price_the_same_alltoall() -> None:
    """The wide-EP worker's pass tables carry exactly the all-to-all term (torch step model reuses them)."""
    for hw, group in (("gb200", 16), ("b200", 8)):
        sc = r1(hw)
        wm = worker_model(sc, DEP16)
        batch = torch.tensor(1024.0, dtype=torch.float64)
        comm = pass_cost(wm.tables.target, sc.knob_tensors, batch, batch, torch.tensor(1000.0)).comm_s
        a = alltoall_cost(1024 / 16, DSR1_HIDDEN, DSR1_TOPK, 16, group, sc.hardware, sc.knob_tensors, 58)
        assert float(comm) == pytest.approx(a.total_s, rel=1e-9)
        assert wm.alltoall and wm.spans_scale_out == (hw == "b200")


def test_single_node_workers_keep_the_single_node_tables() -> None:
    sc = r1("b200")
    dep8 = WorkerSpec(tp=8, ep=8, dp_attention=True)
    wm = worker_model(sc, dep8)
    base = sc.tables(dep8.deployment())
    assert not wm.alltoall and not wm.spans_scale_out
    assert torch.equal(wm.tables.target.comm_bytes_per_token, base.target.comm_bytes_per_token)
    assert float(wm.tables.target.scale_out) == 0.0  # its collectives run at the scale-up knobs


def test_eplb_residual_skew_and_redundant_slots() -> None:
    # the share of the routed experts' skew EPLB leaves: all without slots, none with one per rank, half with half
    assert eplb_residual(0, 32) == 1.0 and eplb_residual(32, 32) == 0.0 and eplb_residual(16, 32) == 0.5
    sc = r1("gb200")  # DEP48 with 32 EPLB slots (288 / 48 = 6 per rank, the benchmark's EP48 recipes): 1/3 left
    dep48 = WorkerSpec.model_validate({"tp": 48, "ep": 48, "dp_attention": True, "redundant_experts": 32},
                                      context={"model": sc.model, "hardware": sc.hardware})
    t = worker_model(sc, dep48).tables.target
    routed = t.experts_local > 0
    assert torch.allclose(t.imbalance_weight[routed], torch.tensor(1 / 3, dtype=torch.float64))
    sc = r1("gb200")
    w = WorkerSpec(tp=24, ep=24, dp_attention=True, redundant_experts=32)
    wm = worker_model(sc, w)
    moe = wm.tables.target.experts_local > 0
    assert torch.equal(wm.tables.target.imbalance_weight[moe], torch.zeros(int(moe.sum()), dtype=torch.float64))
    assert torch.allclose(wm.tables.target.experts_local[moe], torch.tensor(288 / 24, dtype=torch.float64))
    # EPLB slots cost HBM: 58 layers x 32 x (3 x 7168 x 2048) FP4 (0.5625 B) experts over 24 GPUs
    assert redundant_expert_bytes(sc.model, "fp4", w, False) == pytest.approx(
        58 * 32 * 3 * 7168 * 2048 * 0.5625 / 24)


def test_busiest_dp_rank_runs_ceil_c_over_dp() -> None:
    """The benchmark's c = 180 on DEP32: the busiest rank holds ceil(180 / 32) = 6 requests."""
    share = busiest_rank_share(torch.tensor([180.0, 192.0, 4.0, 0.5]), torch.tensor(32.0))
    assert torch.allclose(share, torch.tensor([6 / 180, 6 / 192, 1 / 4, 1.0], dtype=torch.float64))
    sc = r1("gb200")
    spec = WorkerSpec(tp=32, ep=32, dp_attention=True)
    p160, p180, p192 = (point(sc, spec, c) for c in (160, 180, 192))
    # the step waits for the busiest rank (6 requests at 180 and 192, 5 at 160); only the 12 fewer MoE tokens
    # of 180 differ from 192 in the decode step, and the prefill stall goes with the arrivals (C / 192)
    assert p180.step_s == pytest.approx(p192.step_s, rel=3e-2) and p180.step_s < p192.step_s
    assert p180.stall_s == pytest.approx(p192.stall_s * 180 / 192, rel=1e-9)
    assert p180.tpot_s < p192.tpot_s
    assert p160.tpot_s < p180.tpot_s
    # the attention (KV) reads are the busiest rank's: the same 6 requests at 180 and 192, 5 at 160
    t = worker_model(sc, spec).tables.target
    kv = [float(pass_cost(t, sc.knob_tensors, torch.tensor(n), torch.tensor(n), torch.tensor(8000.0)).kv_s.sum())
          for n in (160.0, 180.0, 192.0)]
    assert kv[1] == pytest.approx(kv[2], rel=1e-12) and kv[0] == pytest.approx(kv[2] * 5 / 6, rel=1e-12)


def test_memory_under_wide_ep() -> None:
    """Experts spread over EP ranks: per-GPU weights fall with EP; KV per DP rank: capacity = per rank x DP."""
    sc = r1("gb200")
    m8 = worker_memory(sc, WorkerSpec(tp=8, ep=8, dp_attention=True), False)
    m16 = worker_memory(sc, DEP16, False)
    assert m16.weights_gb < m8.weights_gb
    per_rank = math.floor((m16.capacity_gb - m16.weights_gb) / m16.cache_gb_per_request)
    assert m16.max_concurrency == per_rank * 16


def test_kv_transfer_bytes_per_request_by_hand() -> None:
    """DeepSeek R1: MLA latent 512 + rope 64 = 576 values per layer per token, FP8 KV (1 B): 61 layers, plus
    the MTP layer's own cache when speculating; mean ISL of 1k/1k = 921.6 tokens."""
    sc = r1("b200")
    assert kv_transfer_bytes_per_request(sc, 921.6, False) == pytest.approx(61 * 576 * 921.6)  # 32.4 MB
    assert kv_transfer_bytes_per_request(sc, 921.6, True) == pytest.approx(62 * 576 * 921.6)
    assert kv_transfer_bytes_per_request(r1("h200", precision="bf16"), 921.6, False) == pytest.approx(
        61 * 576 * 2 * 921.6)
    kv = kv_transfer(sc, DEP4, 921.6, False)  # DP-attention prefill: one rank's NIC carries the request
    assert kv.lanes == 1 and kv.seconds == pytest.approx(20e-6 + 61 * 576 * 921.6 / 40e9)
    assert kv_transfer(sc, WorkerSpec(tp=8, ep=8), 921.6, False).lanes == 8


def test_gpus_counted_as_the_methodology_says() -> None:
    spec = parse_xpyd("7P1D-DEP16", prefill=DEP4)
    assert (spec.prefill_gpus, spec.decode_gpus, spec.gpus) == (28, 16, 44)
    assert parse_xpyd("1P4D", prefill=WorkerSpec(tp=8, ep=8)).gpus == 40
    sc = r1("b200", "8k1k")
    p = point(sc, spec, 256)
    rate = p.output_tput_per_gpu * 44 / sc.workload.mean_output_tokens
    io = sc.workload.mean_input_tokens + sc.workload.mean_output_tokens
    assert p.tput_per_gpu == pytest.approx(rate * io / 44)  # all 44 GPUs of both pools


def test_too_few_prefill_workers_throttle_the_loop_and_say_so() -> None:
    sc = r1("b200", "8k1k")
    few = parse_xpyd("1P1D-DEP16", prefill=DEP4)
    many = parse_xpyd("7P1D-DEP16", prefill=DEP4)
    p_few, p_many = (point(sc, s, 512) for s in (few, many))
    assert p_few.throttled and not p_many.throttled
    # throttled: the loop runs at the prefill pool's rate, the decode batch shrinks, TTFT holds the queue
    io = sc.workload.mean_input_tokens + sc.workload.mean_output_tokens
    assert p_few.tput_per_gpu == pytest.approx(p_few.prefill_rate * io / few.gpus)
    assert p_few.decode_batch < 512 and p_few.ttft_s > 10 * p_many.ttft_s
    assert p_few.demand_rate > p_few.prefill_rate
    # more prefill workers never lower the request rate
    assert p_many.tput_per_gpu * many.gpus > p_few.tput_per_gpu * few.gpus


def test_disaggregated_decode_has_no_prefill_stall() -> None:
    """Same worker: the decode pool's TPOT is the bare step; aggregated the prefill stall is added."""
    sc = r1("gb200")
    disagg = point(sc, parse_xpyd("7P1D-DEP16", prefill=DEP4), 256)
    agg = point(sc, DEP16, 256)
    assert disagg.tpot_s < agg.tpot_s
    assert disagg.ttft_s > disagg.kv_transfer_s > 0


def test_named_errors() -> None:
    m, hw = r1("b200").model, r1("b200").hardware
    ctx = {"model": m, "hardware": hw, "max_gpus": 72}
    with pytest.raises(ValidationError, match="max_gpus") as e:
        DisaggregatedSpec.model_validate({"prefill": {"tp": 8, "ep": 8}, "prefill_workers": 9,
                                          "decode": {"tp": 16, "ep": 16, "dp_attention": True},
                                          "decode_workers": 1}, context=ctx)
    assert "88 GPUs" in str(e.value)
    with pytest.raises(ValidationError, match="ep: ep=24 does not divide the 256 routed"):
        WorkerSpec.model_validate({"tp": 24, "ep": 24, "dp_attention": True}, context=ctx)
    with pytest.raises(ValidationError, match="max_gpus: the deployment DEP96 needs 96 GPUs"):
        WorkerSpec.model_validate({"tp": 96, "ep": 96, "dp_attention": True}, context=ctx)
    ok = WorkerSpec.model_validate({"tp": 24, "ep": 24, "dp_attention": True, "redundant_experts": 32}, context=ctx)
    assert ok.gpus == 24 and ok.label == "DEP24-EPLB32"
    with pytest.raises(ValidationError, match="scale_up_gpus: a scale-up group of 16 GPUs is larger") as e:
        DisaggregatedSpec.model_validate({"prefill": {"tp": 8}, "prefill_workers": 1,
                                          "decode": {"tp": 16, "ep": 16, "scale_up_gpus": 16},
                                          "decode_workers": 1}, context=ctx)
    assert e.value.errors()[0]["loc"][0] == "decode"
    gb = {"model": m, "hardware": r1("gb200").hardware}
    assert WorkerSpec.model_validate({"tp": 16, "ep": 16, "scale_up_gpus": 16}, context=gb).gpus == 16
    with pytest.raises(ValueError, match="not of the form"):
        parse_xpyd("7x1", prefill=DEP4)


def test_the_batched_lowering_prices_a_wide_deployment_as_a_wide_worker() -> None:
    """A plain DeploymentSpec beyond one node is lowered as the WorkerSpec it is (all-to-all folded in)."""
    sc = r1("b200")
    batch = lower_cases([Case(sc, DEP16.deployment()), Case(sc, DEP16)])
    want = worker_model(sc, DEP16).tables.target
    for i in range(2):
        got = batch.table(0, lambda x, i=i: x[i])
        assert float(got.comm_bytes_per_token) == float(want.comm_bytes_per_token) > 0
        assert float(got.scale_out) == 1.0  # two HGX nodes: its all-to-all runs over the NICs


def test_open_cluster_shapes_need_moe_and_nic_figures() -> None:
    assert open_cluster_shapes(scenario("llama3_3_70b", "h200", "fp8"), 72) == []  # dense: none
    sc = r1("gb200")
    shapes = open_cluster_shapes(sc, 72)
    assert shapes and all(s.gpus <= 72 for s in shapes)
    assert any(isinstance(s, DisaggregatedSpec) for s in shapes)
    no_nic = sc.model_copy(update={"hardware": sc.hardware.model_copy(update={"scale_out": None})})
    left = open_cluster_shapes(no_nic, 72)
    assert left and all(isinstance(s, WorkerSpec) and s.gpus <= 72 for s in left)  # inside the NVL72 only


def test_benchmark_candidates_beyond_one_node_follow_max_gpus() -> None:
    """DeepSeek V4 on GB200 8k/1k: only multi-node xPyD rows; max_gpus = 8 leaves none, 72 the ones that fit."""
    sc = scenario("deepseek_v4_pro", "gb200", "fp4", "8k1k")
    assert benchmark_candidates(sc, "mtp", "deepseek_v4_pro", "gb200", "8k1k", max_gpus=8) == []
    wide = benchmark_candidates(sc, "mtp", "deepseek_v4_pro", "gb200", "8k1k", max_gpus=72)
    assert wide and all(isinstance(c.deployment, DisaggregatedSpec) and c.deployment.gpus <= 72 for c in wide)
    assert all(c.draft_tokens[0] >= 1 for c in wide)
    assert len(benchmark_candidates(sc, "mtp", "deepseek_v4_pro", "gb200", "8k1k", max_gpus=4096)) >= len(wide)


def test_evaluate_prices_a_disaggregated_candidate_as_the_loop_on_its_workers() -> None:
    """evaluate (compare, validate, calibration, plan) == serving.disaggregated_loop_tokens called by hand on
    the two workers' tables, KV transfer and pools: the case table carries them unchanged."""
    sc = r1("b200", "8k1k")
    decode = WorkerSpec(tp=8, ep=8, dp_attention=True)
    spec = DisaggregatedSpec(prefill=DEP4, prefill_workers=1, decode=decode, decode_workers=2)
    curve = evaluate(sc, [Candidate("mtp", spec, (8, 64, 512), (3,))]).frame()
    al = torch.tensor(float(al_table(sc.acceptance)[3]), dtype=torch.float64)
    wl = sc.workload
    kv = kv_transfer(sc, DEP4, wl.mean_input_tokens, True)
    for row in curve.itertuples():
        m = disaggregated_loop_tokens(
            worker_model(sc, decode).tables, worker_model(sc, DEP4).tables, sc.knob_tensors, wl.mean_input_tokens,
            wl.mean_output_tokens, sc.serving.prefill_chunk_tokens, DEP4.attention_dp, 1, 2, kv.bytes_per_request,
            kv.link_bytes_s, torch.tensor(float(row.concurrency), dtype=torch.float64),
            torch.tensor(3.0, dtype=torch.float64), al, spec.gpus,
            StepLimits.of(EngineLimits(), worker_memory(sc, decode, True, 3).max_concurrency))
        assert row.tput_per_gpu == pytest.approx(float(m.tput_per_gpu), rel=1e-12)
        assert row.interactivity == pytest.approx(float(m.interactivity), rel=1e-12)
        assert row.throttled_by_prefill == bool(m.throttled)
    assert curve["throttled_by_prefill"].iloc[-1]  # one 4-GPU prefill worker cannot feed 512 8k prompts
    assert set(curve["gpus"]) == {4 + 16}
