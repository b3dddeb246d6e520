"""Fused Triton sweep over the flat grid case x concurrency x draft tokens k x acceptance scale a.

One program evaluates BLOCK consecutive flat points: it decodes (case, C, k, a) from its indices, reads the
case's packed row (operator tables, pass scalars, knobs, workload, memory limit, AL table) and computes the
closed loop of `simulator.serving` in float64: admission (running batch, queueing), the speculative step of
`simulator.speculative` (verify, draft extend, k - 1 draft decode passes, sampling, bookkeeping, eager above
the CUDA-graph limit), prefill (target + draft), the separate-prefill stall (or chunked prefill), TTFT, TPOT,
interactivity, throughput per GPU and feasibility. A block holding a disaggregated case also runs
`serving.disaggregated_loop_tokens` (prefill pool, KV transfer, decode pool, the prefill throttle's bisection)
and picks it for those points.

`sweep` streams chunks of the grid through the kernel (or the torch reference) and reduces each chunk on
the device into the best throughput per log-spaced interactivity bin, per (case group, spec side), with the
arg-best flat index, so peak memory is chunk_points x bytes_per_point whatever the sweep's size.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from collections import namedtuple
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from kernels.reference import METRICS, check_grid, evaluate_rows_torch, unravel
from simulator.batched import SCALAR_FIELDS, CaseBatch, GroupKey
from simulator.frontier import TIE_RTOL, pareto_front
from simulator.knobs import KNOB_NAMES
from simulator.lowering import OP_FIELDS, PASS_FIELDS
from simulator.serving import THROTTLE_BISECTION_STEPS

try:
    import triton
    import triton.language as tl
except ImportError:  # the torch backend still works
    triton = None

OUTPUTS = (*METRICS, "feasible")
BLOCK = 128
DEFAULT_CHUNK = 2**22
TORCH_CHUNK = 2**17  # the torch backend is fastest on the CPU at ~1e5-point chunks (cache)
TRITON_BYTES_PER_POINT = 8 * (len(OUTPUTS) + 14)  # kernel outputs + binning temporaries

# Every field the kernel reads (and every output it writes), by section. The kernel addresses each one by
# name through the positions `field_positions` derives from the simulator's field lists.
KERNEL_READS: dict[str, tuple[str, ...]] = {
    "op": ("flops_per_token", "flops_per_token_ctx", "ctx_scale", "ctx_offset", "ctx_cap", "weight_bytes",
           "expert_bytes", "experts_local", "route_prob", "bytes_per_token", "bytes_per_request_ctx",
           "bytes_per_request", "peak_flops", "dp_sharded", "imbalance_weight"),
    "pass": ("attention_dp", "comm_bytes_per_token", "collectives", "layer_passes", "link_bytes_s", "hbm_bytes_s",
             "logits_bytes_per_token", "logits_comm_bytes_per_token", "scale_out"),
    "knob": ("hbm_bandwidth_fraction", "compute_fraction", "link_bandwidth_fraction", "layer_pass_latency_us",
             "collective_latency_us", "step_latency_us", "moe_imbalance", "draft_pass_latency_us",
             "eager_layer_pass_latency_us", "request_overhead_us", "scale_out_latency_us",
             "scale_out_bandwidth_fraction"),
    "scalar": ("input_tokens", "output_tokens", "prefill_chunk_tokens", "chunked_prefill", "gpus",
               "max_draft_tokens", "acceptance_scale", "max_step_tokens", "graph_max_batch",
               "graph_counts_tokens", "disaggregated", "decode_workers", "prefill_workers", "prefill_attention_dp",
               "kv_bytes", "kv_link_bytes_s"),
    "output": OUTPUTS,
}


def field_positions(section: str, fields: tuple[str, ...]) -> tuple[int, ...]:
    """Position in `fields` of every field the kernel reads from `section`, as a named tuple (a layout guard:
    a field the kernel reads that `fields` lacks is an error naming it and the fields there are)."""
    reads = KERNEL_READS[section]
    missing = [f for f in reads if f not in fields]
    if missing:
        raise ValueError(f"the sweep kernel reads {section} field(s) {', '.join(missing)}, missing from the "
                         f"{section} layout; it has: {', '.join(fields)}")
    return namedtuple(f"{section.title()}Positions", reads)(*(fields.index(f) for f in reads))


def kernel_layout(op: tuple[str, ...] = OP_FIELDS, passes: tuple[str, ...] = PASS_FIELDS,
                  knob: tuple[str, ...] = KNOB_NAMES, scalar: tuple[str, ...] = SCALAR_FIELDS,
                  output: tuple[str, ...] = OUTPUTS) -> dict[str, tuple[int, ...]]:
    """The kernel's constexpr layout arguments (OP, PASS, KNOB, SCALAR, OUT) for these field lists."""
    return {"OP": field_positions("op", op), "PASS": field_positions("pass", passes),
            "KNOB": field_positions("knob", knob), "SCALAR": field_positions("scalar", scalar),
            "OUT": field_positions("output", output)}


LAYOUT = kernel_layout()  # fails at import if the simulator's layout lost a field the kernel reads


def bytes_per_point(batch: CaseBatch, backend: str) -> int:
    """Declared peak device bytes per point of a chunk (outputs, temporaries, gathered tables)."""
    if backend == "triton":
        return TRITON_BYTES_PER_POINT
    # per point: <= 24 live [n_ops] temporaries of pass_cost, ~64 of closed_loop, outputs and binning
    return 8 * (24 * batch.n_ops + 64) + TRITON_BYTES_PER_POINT


if triton is not None:

    @triton.jit
    def _busiest_share(requests, attn_dp):
        """step_cost.busiest_rank_share: ceil(n / DP) of n requests on the busiest DP rank, at most all."""
        n = tl.maximum(requests, 1.0)
        return tl.minimum(tl.ceil(n / attn_dp - 1e-9) / n, 1.0)

    @triton.jit
    def _link(q, mask, link_f, coll_us, so_f, so_us, PASS: tl.constexpr):
        """step_cost.link_knobs: the pass's collectives at the scale-up or, crossing the NICs, scale-out knobs."""
        s = tl.load(q + PASS.scale_out, mask=mask, other=0.0)
        return link_f + s * (so_f - link_f), coll_us + s * (so_us - coll_us)

    @triton.jit
    def _pass_s(p, q, n_ops, mask, requests, tokens, context, hbm_f, compute_f, link_f, layer_us, coll_us, imb,
                eager, eager_us, so_f, so_us, OP: tl.constexpr, PASS: tl.constexpr):
        """Seconds of one pass (step_cost.pass_cost): p -> the table's operator rows (field f of operator j
        at p + f n_ops + j), q -> its pass scalars; OP, PASS: the fields' positions. `layer_us`: the floor per
        layer pass; `eager` = 1: no CUDA graph, the pass takes max(GPU time, layers x `eager_us`); `so_f`,
        `so_us`: the scale-out knobs (the pass's `scale_out` picks them over `link_f`, `coll_us`)."""
        link_f, coll_us = _link(q, mask, link_f, coll_us, so_f, so_us, PASS)
        attn_dp = tl.load(q + PASS.attention_dp, mask=mask, other=1.0)
        comm_per_token = tl.load(q + PASS.comm_bytes_per_token, mask=mask, other=0.0)
        collectives = tl.load(q + PASS.collectives, mask=mask, other=0.0)
        layer_passes = tl.load(q + PASS.layer_passes, mask=mask, other=0.0)
        link = tl.load(q + PASS.link_bytes_s, mask=mask, other=1.0)
        hbm = tl.load(q + PASS.hbm_bytes_s, mask=mask, other=1.0)
        share = _busiest_share(requests, attn_dp)
        total = tl.full(tokens.shape, 0.0, tl.float64)
        for j in range(n_ops):
            r = p + j
            fpt = tl.load(r + OP.flops_per_token * n_ops, mask=mask, other=0.0)
            fpt_ctx = tl.load(r + OP.flops_per_token_ctx * n_ops, mask=mask, other=0.0)
            ctx_scale = tl.load(r + OP.ctx_scale * n_ops, mask=mask, other=0.0)
            ctx_offset = tl.load(r + OP.ctx_offset * n_ops, mask=mask, other=0.0)
            ctx_cap = tl.load(r + OP.ctx_cap * n_ops, mask=mask, other=0.0)
            weight_bytes = tl.load(r + OP.weight_bytes * n_ops, mask=mask, other=0.0)
            expert_bytes = tl.load(r + OP.expert_bytes * n_ops, mask=mask, other=0.0)
            experts = tl.load(r + OP.experts_local * n_ops, mask=mask, other=0.0)
            route = tl.load(r + OP.route_prob * n_ops, mask=mask, other=0.0)
            per_token = tl.load(r + OP.bytes_per_token * n_ops, mask=mask, other=0.0)
            per_request_ctx = tl.load(r + OP.bytes_per_request_ctx * n_ops, mask=mask, other=0.0)
            per_request = tl.load(r + OP.bytes_per_request * n_ops, mask=mask, other=0.0)
            peak = tl.load(r + OP.peak_flops * n_ops, mask=mask, other=1.0)
            dp = tl.load(r + OP.dp_sharded * n_ops, mask=mask, other=0.0)
            imb_w = tl.load(r + OP.imbalance_weight * n_ops, mask=mask, other=0.0)
            rank = dp * share + (1.0 - dp)
            tok = tokens * rank
            req = requests * rank
            ctx = tl.minimum(ctx_scale * context + ctx_offset, ctx_cap)
            flops = (fpt * tok + fpt_ctx * tok * ctx) * (1.0 + imb_w * (imb - 1.0))
            touched = experts * (1.0 - tl.exp(tokens * tl.log(1.0 - route)))  # moe.expected_experts_touched
            nbytes = weight_bytes + expert_bytes * touched + per_token * tok + per_request_ctx * req * ctx \
                + per_request * req
            total += tl.maximum(flops / (peak * compute_f), nbytes / (hbm * hbm_f))
        gpu_s = total + comm_per_token * tokens / (link * link_f) + collectives * coll_us * 1e-6 \
            + layer_passes * layer_us * 1e-6
        return gpu_s + eager * tl.maximum(layer_passes * eager_us * 1e-6 - gpu_s, 0.0)

    @triton.jit
    def _sampling_s(q, mask, requests, positions, hbm_f, link_f, so_f, PASS: tl.constexpr):
        """speculative.sampling_time_s: vocabulary-wide logits of `positions` rows (busiest DP rank's share)."""
        link_f, _ = _link(q, mask, link_f, 0.0, so_f, 0.0, PASS)
        attn_dp = tl.load(q + PASS.attention_dp, mask=mask, other=1.0)
        link = tl.load(q + PASS.link_bytes_s, mask=mask, other=1.0)
        hbm = tl.load(q + PASS.hbm_bytes_s, mask=mask, other=1.0)
        logits = tl.load(q + PASS.logits_bytes_per_token, mask=mask, other=0.0)
        logits_comm = tl.load(q + PASS.logits_comm_bytes_per_token, mask=mask, other=0.0)
        rows = positions * _busiest_share(requests, attn_dp)
        return rows * logits / (hbm * hbm_f) + rows * logits_comm / (link * link_f)

    @triton.jit
    def _prefill_s(tgt, tgt_q, drf, drf_q, n_ops, mask, p_tokens, n_in, chunk, spec, hbm_f, compute_f, link_f,
                   layer_us, coll_us, imb, eager_us, so_f, so_us, draft_us, step_lat,
                   OP: tl.constexpr, PASS: tl.constexpr):
        """speculative.prefill_time_s: `p_tokens` prompt tokens of `n_in`-token prompts in chunks of `chunk`
        (target + draft when `spec`); each chunk a pass at the causal mean context n_in / 2."""
        n_chunks = tl.maximum(tl.ceil(p_tokens / chunk), 1.0)
        per_chunk = p_tokens / n_chunks
        p_req = per_chunk / n_in
        p_ctx = n_in / 2.0
        return n_chunks * (
            _pass_s(tgt, tgt_q, n_ops, mask, p_req, per_chunk, p_ctx, hbm_f, compute_f, link_f, layer_us, coll_us,
                    imb, 0.0, eager_us, so_f, so_us, OP, PASS)
            + spec * _pass_s(drf, drf_q, n_ops, mask, p_req, per_chunk, p_ctx, hbm_f, compute_f, link_f, draft_us,
                             coll_us, imb, 0.0, eager_us, so_f, so_us, OP, PASS)
            + step_lat)

    @triton.jit
    def _step_s(tgt, tgt_q, drf, drf_q, n_ops, mask, b, k, ctx, extra, graph_max, graph_tokens, hbm_f, compute_f,
                link_f, layer_us, coll_us, imb, eager_us, so_f, so_us, draft_us, request_us, step_lat,
                OP: tl.constexpr, PASS: tl.constexpr):
        """speculative.decode_step_terms: verify over B (k + 1) (+ `extra` chunked prompt tokens), draft extend
        over B (k + 1), k - 1 draft decode passes over B, sampling, bookkeeping; eager above the graph limit."""
        spec = tl.where(k > 0.0, 1.0, 0.0)
        attn_dp = tl.load(tgt_q + PASS.attention_dp, mask=mask, other=1.0)
        eager = tl.where(tl.ceil(b / attn_dp) * (1.0 + graph_tokens * k) > graph_max, 1.0, 0.0)
        positions = b * (k + 1.0)
        return _pass_s(tgt, tgt_q, n_ops, mask, b, positions + extra, ctx, hbm_f, compute_f, link_f, layer_us,
                       coll_us, imb, eager, eager_us, so_f, so_us, OP, PASS) \
            + spec * _pass_s(drf, drf_q, n_ops, mask, b, positions, ctx, hbm_f, compute_f, link_f, draft_us, coll_us,
                             imb, eager, eager_us, so_f, so_us, OP, PASS) \
            + tl.maximum(k - 1.0, 0.0) * _pass_s(drf, drf_q, n_ops, mask, b, b, ctx, hbm_f, compute_f, link_f,
                                                 draft_us, coll_us, imb, eager, eager_us, so_f, so_us, OP, PASS) \
            + _sampling_s(tgt_q, mask, b, positions, hbm_f, link_f, so_f, PASS) \
            + k * _sampling_s(drf_q, mask, b, b, hbm_f, link_f, so_f, PASS) \
            + spec * b * request_us * 1e-6 + step_lat

    @triton.jit(do_not_specialize=["start", "n_points"])
    def _sweep_kernel(
        # inputs: the packed case rows (`pack`) and the three sweep axes
        row_ptr, conc_ptr, k_ptr, a_ptr,
        # output: [len(OUTPUTS), n_points]
        out_ptr,
        # sweep grid: this launch covers flat points start .. start + n_points - 1 of n_cases x n_c x n_k x n_a
        start, n_points, n_c, n_k, n_a,
        # row layout (`pack`): row length, operators per table, AL entries, offset of each section in a row
        row_len, n_ops, n_al, off_draft_ops, off_pass, off_draft_pass, off_knob, off_scalar, off_al, off_max_batch,
        # ... and of a disaggregated case's prefill worker tables
        off_pf_ops, off_pf_draft_ops, off_pf_pass, off_pf_draft_pass,
        # field positions inside each section (`kernel_layout`)
        OP: tl.constexpr, PASS: tl.constexpr, KNOB: tl.constexpr, SCALAR: tl.constexpr, OUT: tl.constexpr,
        # log-bisection steps of a throttled disaggregated decode batch (serving.THROTTLE_BISECTION_STEPS)
        THROTTLE_STEPS: tl.constexpr,
        # points per program
        BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n_points
        g = start.to(tl.int64) + offs
        ia = g % n_a
        ik = g // n_a % n_k
        ic = g // (n_a * n_k) % n_c
        row = row_ptr + g // (n_a * n_k * n_c) * row_len  # this point's case
        c = tl.load(conc_ptr + ic, mask=mask, other=1.0)
        k = tl.load(k_ptr + ik, mask=mask, other=0.0)
        a = tl.load(a_ptr + ia, mask=mask, other=1.0)
        knob, scalar = row + off_knob, row + off_scalar
        hbm_f = tl.load(knob + KNOB.hbm_bandwidth_fraction, mask=mask, other=1.0)
        compute_f = tl.load(knob + KNOB.compute_fraction, mask=mask, other=1.0)
        link_f = tl.load(knob + KNOB.link_bandwidth_fraction, mask=mask, other=1.0)
        layer_us = tl.load(knob + KNOB.layer_pass_latency_us, mask=mask, other=0.0)
        coll_us = tl.load(knob + KNOB.collective_latency_us, mask=mask, other=0.0)
        step_lat = tl.load(knob + KNOB.step_latency_us, mask=mask, other=1.0) * 1e-6
        imb = tl.load(knob + KNOB.moe_imbalance, mask=mask, other=1.0)
        draft_us = tl.load(knob + KNOB.draft_pass_latency_us, mask=mask, other=0.0)
        eager_us = tl.load(knob + KNOB.eager_layer_pass_latency_us, mask=mask, other=0.0)
        request_us = tl.load(knob + KNOB.request_overhead_us, mask=mask, other=0.0)
        so_us = tl.load(knob + KNOB.scale_out_latency_us, mask=mask, other=0.0)
        so_f = tl.load(knob + KNOB.scale_out_bandwidth_fraction, mask=mask, other=1.0)
        n_in = tl.load(scalar + SCALAR.input_tokens, mask=mask, other=1.0)
        n_out = tl.load(scalar + SCALAR.output_tokens, mask=mask, other=1.0)
        chunk = tl.load(scalar + SCALAR.prefill_chunk_tokens, mask=mask, other=1.0)
        chunked = tl.load(scalar + SCALAR.chunked_prefill, mask=mask, other=0.0)
        gpus = tl.load(scalar + SCALAR.gpus, mask=mask, other=1.0)
        max_k = tl.load(scalar + SCALAR.max_draft_tokens, mask=mask, other=0.0)
        scale = tl.load(scalar + SCALAR.acceptance_scale, mask=mask, other=1.0) * a
        max_step = tl.load(scalar + SCALAR.max_step_tokens, mask=mask, other=1.0)
        graph_max = tl.load(scalar + SCALAR.graph_max_batch, mask=mask, other=1.0)
        graph_tokens = tl.load(scalar + SCALAR.graph_counts_tokens, mask=mask, other=0.0)
        # acceptance.scaled_al: AL = min(1 + scale (AL_raw - 1), k + 1)
        k_at = tl.minimum(tl.maximum(k, 0.0), n_al - 1.0).to(tl.int32)  # this point's entry of the per-k tables
        raw = tl.load(row + off_al + k_at, mask=mask, other=1.0)
        # CaseBatch.max_batch: requests admitted at once at this k (0: the deployment holds none)
        max_c = tl.load(row + off_max_batch + k_at, mask=mask, other=0.0)
        al = tl.minimum(1.0 + scale * (raw - 1.0), k + 1.0)
        tgt, tgt_q = row, row + off_pass
        drf, drf_q = row + off_draft_ops, row + off_draft_pass
        # serving.running_batch: what memory / max_running_requests / the token budget admit; the rest queue
        b = tl.maximum(tl.minimum(tl.minimum(c, max_c), tl.floor(max_step / (k + 1.0))), 1.0)
        # serving.closed_loop: prefill of max(a, 1) arriving prompts in chunks (prefill_time_s)
        chunk0 = chunk
        chunk = tl.minimum(chunk, max_step)
        arrivals = b * al / n_out
        spec = tl.where(k > 0.0, 1.0, 0.0)
        prefill = _prefill_s(tgt, tgt_q, drf, drf_q, n_ops, mask, tl.maximum(arrivals, 1.0) * n_in, n_in, chunk, spec,
                             hbm_f, compute_f, link_f, layer_us, coll_us, imb, eager_us, so_f, so_us, draft_us,
                             step_lat, OP, PASS)
        ctx = n_in + n_out / 2.0
        step = _step_s(tgt, tgt_q, drf, drf_q, n_ops, mask, b, k, ctx, chunked * arrivals * n_in, graph_max,
                       graph_tokens, hbm_f, compute_f, link_f, layer_us, coll_us, imb, eager_us, so_f, so_us,
                       draft_us, request_us, step_lat, OP, PASS)
        stall = tl.where(chunked > 0.0, 0.0, tl.minimum(arrivals, 1.0) * prefill)
        wait = tl.where(chunked > 0.0, step * tl.maximum(tl.ceil(n_in / chunk), 1.0), prefill)
        tpot = (step + stall) / al
        served = wait + (step + stall) / 2.0 + n_out * tpot
        queue = (c / b - 1.0) * served
        ttft = queue + wait + (step + stall) / 2.0
        tput = c * (n_in + n_out) / (queue + served) / gpus  # Little's law over the C clients
        out_tput = c * n_out / (queue + served) / gpus
        disagg = tl.load(scalar + SCALAR.disaggregated, mask=mask, other=0.0)
        if tl.max(disagg, axis=0) > 0.5:  # serving.disaggregated_loop_tokens, for the block's disagg. cases
            y = tl.load(scalar + SCALAR.decode_workers, mask=mask, other=1.0)
            n_pf = tl.load(scalar + SCALAR.prefill_workers, mask=mask, other=1.0)
            pf_dp = tl.load(scalar + SCALAR.prefill_attention_dp, mask=mask, other=1.0)
            kv_bytes = tl.load(scalar + SCALAR.kv_bytes, mask=mask, other=0.0)
            kv_link = tl.load(scalar + SCALAR.kv_link_bytes_s, mask=mask, other=1.0)
            pf, pf_q, pfd, pfd_q = row + off_pf_ops, row + off_pf_pass, row + off_pf_draft_ops, row + off_pf_draft_pass
            # the prefill pool (serving.prefill_pool): passes of DP x max(I, chunk) prompt tokens per worker
            p_batch = pf_dp * tl.maximum(n_in, chunk0)
            t_batch = _prefill_s(pf, pf_q, pfd, pfd_q, n_ops, mask, p_batch, n_in, p_batch, spec, hbm_f, compute_f,
                                 link_f, layer_us, coll_us, imb, eager_us, so_f, so_us, draft_us, step_lat, OP, PASS)
            t_one = _prefill_s(pf, pf_q, pfd, pfd_q, n_ops, mask, n_in, n_in, p_batch, spec, hbm_f, compute_f,
                               link_f, layer_us, coll_us, imb, eager_us, so_f, so_us, draft_us, step_lat, OP, PASS)
            pool_rate = n_pf * p_batch / n_in / t_batch
            kv_s = so_us * 1e-6 + kv_bytes / (kv_link * so_f)  # serving.kv_transfer_s
            # the decode pool: ceil(C / y) per worker, admitted as running_batch, no prefill stall
            per_w = tl.ceil(c / y - 1e-9)
            bd = tl.maximum(tl.minimum(tl.minimum(per_w, max_c), tl.floor(max_step / (k + 1.0))), 1.0)
            step_d = _step_s(tgt, tgt_q, drf, drf_q, n_ops, mask, bd, k, ctx, 0.0, graph_max, graph_tokens, hbm_f,
                             compute_f, link_f, layer_us, coll_us, imb, eager_us, so_f, so_us, draft_us, request_us,
                             step_lat, OP, PASS)
            ttft_idle = t_one + kv_s + step_d / 2.0
            served_d = ttft_idle + n_out * step_d / al
            queue_d = (per_w / bd - 1.0) * served_d
            demand = c / (queue_d + served_d)
            throttled = demand > pool_rate
            # throttled: log-bisection of B = (rate / y) O TPOT(B) over [1, bd] (THROTTLE_BISECTION_STEPS)
            lo = tl.full(bd.shape, 1.0, tl.float64)
            hi = bd
            for _ in range(THROTTLE_STEPS):
                mid = tl.sqrt(lo * hi)
                step_m = _step_s(tgt, tgt_q, drf, drf_q, n_ops, mask, mid, k, ctx, 0.0, graph_max, graph_tokens,
                                 hbm_f, compute_f, link_f, layer_us, coll_us, imb, eager_us, so_f, so_us, draft_us,
                                 request_us, step_lat, OP, PASS)
                over = mid > pool_rate / y * n_out * step_m / al
                hi = tl.where(over, mid, hi)
                lo = tl.where(over, lo, mid)
            b_thr = tl.where(throttled, hi, bd)
            step_t = _step_s(tgt, tgt_q, drf, drf_q, n_ops, mask, b_thr, k, ctx, 0.0, graph_max, graph_tokens,
                             hbm_f, compute_f, link_f, layer_us, coll_us, imb, eager_us, so_f, so_us, draft_us,
                             request_us, step_lat, OP, PASS)
            tpot_t = step_t / al
            ttft_free = ttft_idle + demand / pool_rate * t_batch / 2.0 + queue_d
            rate_d = tl.where(throttled, pool_rate, c / (ttft_free + n_out * tpot_t))
            ttft_d = tl.where(throttled, tl.maximum(c / rate_d - n_out * tpot_t, ttft_idle), ttft_free)
            dis = disagg > 0.5
            step = tl.where(dis, step_t, step)
            tpot = tl.where(dis, tpot_t, tpot)
            ttft = tl.where(dis, ttft_d, ttft)
            tput = tl.where(dis, rate_d * (n_in + n_out) / gpus, tput)
            out_tput = tl.where(dis, rate_d * n_out / gpus, out_tput)
        feasible = mask & (c >= 1.0) & (max_c >= 1.0) & (k >= 0.0) & (k <= max_k)
        nan = float("nan")
        tl.store(out_ptr + OUT.interactivity * n_points + offs, tl.where(feasible, 1.0 / tpot, nan), mask=mask)
        tl.store(out_ptr + OUT.tput_per_gpu * n_points + offs,
                 tl.where(feasible, tput, nan), mask=mask)
        tl.store(out_ptr + OUT.output_tput_per_gpu * n_points + offs,
                 tl.where(feasible, out_tput, nan), mask=mask)
        tl.store(out_ptr + OUT.step_s * n_points + offs, tl.where(feasible, step, nan), mask=mask)
        tl.store(out_ptr + OUT.ttft_s * n_points + offs, tl.where(feasible, ttft, nan), mask=mask)
        tl.store(out_ptr + OUT.feasible * n_points + offs, tl.where(feasible, 1.0, 0.0), mask=mask)


def pack(batch: CaseBatch) -> tuple[torch.Tensor, dict[str, int]]:
    """One contiguous float64 row per case: target ops | draft ops | target pass | draft pass | knobs |
    scalars | AL | admitted batch per k | the prefill worker's ops and passes (zero for one-worker cases), and each section's offset."""
    sections = {"ops": batch.ops[:, 0].flatten(1), "draft_ops": batch.ops[:, 1].flatten(1),
                "pass": batch.passes[:, 0], "draft_pass": batch.passes[:, 1], "knob": batch.knobs,
                "scalar": batch.scalars, "al": batch.al, "max_batch": batch.max_batch,
                "pf_ops": batch.ops[:, 2].flatten(1), "pf_draft_ops": batch.ops[:, 3].flatten(1),
                "pf_pass": batch.passes[:, 2], "pf_draft_pass": batch.passes[:, 3]}
    offsets, at = {}, 0
    for name, p in sections.items():
        offsets[name], at = at, at + p.shape[1]
    return torch.cat(list(sections.values()), 1).contiguous(), offsets


def evaluate_points_triton(batch: CaseBatch, start: int, n_points: int, concurrency: torch.Tensor,
                           draft_tokens: torch.Tensor, acceptance_scale: torch.Tensor,
                           packed: tuple[torch.Tensor, dict[str, int]] | None = None) -> dict[str, torch.Tensor]:
    """All metrics at flat indices start .. start + n_points - 1 (one kernel launch)."""
    if triton is None:
        raise ValueError("the triton backend needs the triton package")
    c, k, a = check_grid(batch, concurrency, draft_tokens, acceptance_scale)
    if c.device.type != "cuda" and type(_sweep_kernel).__name__ != "InterpretedFunction":
        raise ValueError("the triton backend needs a CUDA device, or TRITON_INTERPRET=1 set before "
                         "kernels.sweep_triton is imported (then it runs in the interpreter on the CPU)")
    rows, off = packed or pack(batch)
    out = torch.empty(len(OUTPUTS), n_points, dtype=torch.float64, device=rows.device)
    _sweep_kernel[(triton.cdiv(n_points, BLOCK),)](
        rows, c, k, a, out, start, n_points, c.numel(), k.numel(), a.numel(), rows.shape[1], batch.n_ops,
        batch.al.shape[1], off["draft_ops"], off["pass"], off["draft_pass"], off["knob"], off["scalar"], off["al"],
        off["max_batch"], off["pf_ops"], off["pf_draft_ops"], off["pf_pass"], off["pf_draft_pass"],
        **LAYOUT, THROTTLE_STEPS=THROTTLE_BISECTION_STEPS, BLOCK=BLOCK)
    res = {name: out[i] for name, i in zip(KERNEL_READS["output"], LAYOUT["OUT"], strict=True)}
    return {**res, "feasible": res["feasible"] > 0.5}


@dataclass(frozen=True)
class Frontier:
    """Best `metric` per (case group, spec side, interactivity bin). Side 0: k = 0, side 1: k > 0.

    Bin b holds interactivity x with floor((ln x - ln lo) / (ln hi - ln lo) x n_bins) = b; points outside
    [lo, hi) are not binned. Empty bins: best and interactivity NaN, index -1. `index` is the flat grid
    index of the best point (ties: the lowest); `unravel(index)` gives (case, C, k, a) indices.
    """

    best: torch.Tensor  # [n_groups, 2, n_bins]
    index: torch.Tensor  # [n_groups, 2, n_bins] int64
    interactivity: torch.Tensor  # [n_groups, 2, n_bins] of the best point
    groups: tuple[GroupKey, ...]
    shape: tuple[int, int, int, int]  # (n_cases, n_c, n_k, n_a)
    metric: str
    points: dict[str, torch.Tensor] | None = None  # full [n_cases, n_c, n_k, n_a] tensors when asked for

    def unravel(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return unravel(index, *self.shape[1:])

    def front(self, group: int | GroupKey, side: int) -> dict[str, np.ndarray]:
        """The Pareto front (simulator.frontier.pareto_front) of one group and side's bin winners."""
        g = self.groups.index(group) if isinstance(group, tuple) else int(group)
        x, y, i = (v[g, side].cpu().numpy() for v in (self.interactivity, self.best, self.index))
        keep = pareto_front(x, y)
        return {"interactivity": x[keep], self.metric: y[keep], "index": i[keep]}


_COMPILED: list = []
PROGRESS_EVERY_S = 5.0  # a progress line this often when stdout is not a terminal (a log, a batch job)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class LineProgress:
    """tqdm's interface (update, context manager) as a printed line every PROGRESS_EVERY_S seconds with the
    rate and ETA: progress in a log file, where a tqdm bar is off."""

    def __init__(self, total: int, every_s: float = PROGRESS_EVERY_S) -> None:
        self.total, self.done, self.every_s = total, 0, every_s
        self.t0 = self.last = time.perf_counter()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.done and self.last > self.t0:  # a line was printed: close with the total time
            print(f"sweep: {self.done:,} points in {_duration(time.perf_counter() - self.t0)}", flush=True)

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last < self.every_s or self.done >= self.total:
            return
        self.last = now
        rate = self.done / (now - self.t0)
        print(f"sweep: {self.done:,} / {self.total:,} points ({100 * self.done / self.total:.1f} %), "
              f"{rate:,.0f} points/s, ETA {_duration((self.total - self.done) / rate)}", flush=True)


def progress_bar(total: int, progress: bool | None) -> tqdm | LineProgress:
    """progress=None: a tqdm bar on a terminal, else a line every few seconds; False: silent."""
    if progress is None and not sys.stdout.isatty():
        return LineProgress(total)
    return tqdm(total=total, unit="pt", unit_scale=True, disable=not progress and progress is not None)


def quiet_dynamo() -> None:
    """torch.compile's dynamo/inductor warnings are not the user's business: errors only."""
    torch._logging.set_logs(dynamo=logging.ERROR, inductor=logging.ERROR)
    warnings.filterwarnings("ignore", module=r"torch\._(dynamo|inductor)")


def compiled_rows_torch():  # noqa: ANN201 - a torch.compile wrapper of evaluate_rows_torch
    """evaluate_rows_torch fused by torch.compile (compiled once per process, on first use)."""
    if not _COMPILED:
        quiet_dynamo()
        _COMPILED.append(torch.compile(evaluate_rows_torch))
    return _COMPILED[0]


def frontier_bins(res: dict[str, torch.Tensor], flat: torch.Tensor, group: torch.Tensor, k: torch.Tensor,
                  n_groups: int, bins: int, log_range: tuple[float, float], metric: str,
                  max_ttft_s: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-slot (group x side x bin) best `metric`, its flat index and interactivity, for one chunk. Points
    within frontier.TIE_RTOL of the slot's maximum are one plateau: the lowest flat index (the smallest C of
    its case) wins. `max_ttft_s`: points with a longer TTFT are not binned."""
    lo, hi = log_range
    n_slots = n_groups * 2 * bins  # slot n_slots collects everything unbinned
    x, y = res["interactivity"], res[metric]
    b = torch.floor((torch.log(x) - lo) * (bins / (hi - lo)))
    ok = res["feasible"] & (b >= 0) & (b < bins) & torch.isfinite(y)
    if max_ttft_s is not None:
        ok = ok & (res["ttft_s"] <= max_ttft_s)
    slot = torch.where(ok, (group * 2 + (k > 0).long()) * bins + b.nan_to_num(0).long(), n_slots)
    y = torch.where(ok, y, -torch.inf)
    best = y.new_full((n_slots + 1,), -torch.inf).scatter_reduce(0, slot, y, "amax")
    win = ok & (y >= best[slot] * (1.0 - TIE_RTOL))
    idx = flat.new_full((n_slots + 1,), torch.iinfo(torch.int64).max)
    idx = idx.scatter_reduce(0, torch.where(win, slot, n_slots), flat, "amin")
    hit = win & (flat == idx[slot])
    at = torch.where(hit, slot, n_slots)
    xb = x.new_full((n_slots + 1,), torch.nan).scatter_(0, at, x)
    yb = torch.where(torch.isfinite(best), y.new_full((n_slots + 1,), -torch.inf).scatter_(0, at, y), best)
    return yb[:-1], idx[:-1], xb[:-1]


def sweep(batch: CaseBatch, concurrency: torch.Tensor, draft_tokens: torch.Tensor,
          acceptance_scale: torch.Tensor, backend: str = "auto", chunk_points: int | None = None,
          bins: int = 2048, interactivity_range: tuple[float, float] = (0.1, 1e4), metric: str = "tput_per_gpu",
          return_points: bool = False, max_chunk_bytes: int = 2**30, device: str | torch.device | None = None,
          progress: bool | None = None, compile_torch: bool = False, max_ttft_s: float | None = None) -> Frontier:
    """Stream the grid case x C x k x a through `backend` in chunks; reduce each chunk to the binned frontier.

    backend: "triton" (CUDA, or the interpreter under TRITON_INTERPRET=1), "torch" (the reference), or
    "auto" (triton when CUDA is available). chunk_points: points per chunk (default 2**22 for triton, 2**17
    for torch, lowered to fit max_chunk_bytes); an explicit chunk over max_chunk_bytes is an error.
    return_points keeps the full [n_cases, n_c, n_k, n_a] tensors (only if their outputs fit max_chunk_bytes).
    compile_torch fuses the torch backend with torch.compile (inductor; ~6x on a CPU, a one-off compile of
    a few seconds to half a minute, cached per process). max_ttft_s: points with a longer TTFT are left out.
    """
    if backend not in ("auto", "triton", "torch"):
        raise ValueError(f"unknown backend '{backend}'; use 'auto', 'triton' or 'torch'")
    if metric not in METRICS:
        raise ValueError(f"unknown metric '{metric}'; one of {', '.join(METRICS)}")
    lo, hi = interactivity_range
    if bins < 1 or not 0 < lo < hi:
        raise ValueError(f"need bins >= 1 and 0 < lo < hi, got bins={bins}, interactivity_range={interactivity_range}")
    if backend == "auto":
        backend = "triton" if torch.cuda.is_available() and triton is not None else "torch"
    batch = batch.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    c, k, a = check_grid(batch, concurrency, draft_tokens, acceptance_scale)
    shape = (batch.n_cases, c.numel(), k.numel(), a.numel())
    total = math.prod(shape)
    if return_points and total * 8 * len(OUTPUTS) > max_chunk_bytes:
        raise ValueError(f"return_points: {total} points x {8 * len(OUTPUTS)} bytes exceed max_chunk_bytes="
                         f"{max_chunk_bytes}; sweep without return_points")
    per_point = bytes_per_point(batch, backend)
    # the torch backend evaluates whole rows (case, C) of n_k x n_a points
    unit = shape[2] * shape[3] if backend == "torch" else 1
    default = DEFAULT_CHUNK if backend == "triton" else TORCH_CHUNK
    chunk = chunk_points if chunk_points is not None else min(default, total, max_chunk_bytes // per_point)
    chunk = chunk // unit * unit
    if chunk < 1 or chunk * per_point > max_chunk_bytes:
        raise ValueError(f"a chunk of {chunk_points or 'the default'} points x {per_point} bytes/point "
                         f"(the torch backend takes whole rows of {unit} points) does not fit max_chunk_bytes="
                         f"{max_chunk_bytes}; change chunk_points or max_chunk_bytes")
    n_groups, dev = len(batch.groups), batch.ops.device
    log_range = (math.log(lo), math.log(hi))
    best = torch.full((n_groups * 2 * bins,), -torch.inf, dtype=torch.float64, device=dev)
    index = torch.full_like(best, torch.iinfo(torch.int64).max, dtype=torch.int64)
    inter = torch.full_like(best, torch.nan)
    points: dict[str, list[torch.Tensor]] = {name: [] for name in OUTPUTS}
    packed = pack(batch) if backend == "triton" else None
    with progress_bar(total, progress) as bar:
        for start in range(0, total, chunk):
            n = min(chunk, total - start)
            flat = torch.arange(start, start + n, device=dev)
            if backend == "triton":
                res = evaluate_points_triton(batch, start, n, c, k, a, packed)
            else:
                rows = torch.arange(start // unit, (start + n) // unit, device=dev)
                evaluate = compiled_rows_torch() if compile_torch else evaluate_rows_torch
                res = {name: v.flatten() for name, v in evaluate(batch, rows, c, k, a).items()}
            case, _, ik, _ = unravel(flat, *shape[1:])
            cb, ci, cx = frontier_bins(res, flat, batch.group[case], k[ik], n_groups, bins, log_range, metric,
                                       max_ttft_s)
            tied = torch.isfinite(cb) & ((cb - best).abs() <= TIE_RTOL * torch.maximum(cb.abs(), best.abs()))
            better = ((cb > best) & ~tied) | (tied & (ci < index))
            best, index, inter = torch.where(better, cb, best), torch.where(better, ci, index), \
                torch.where(better, cx, inter)
            if return_points:
                for name in OUTPUTS:
                    points[name].append(res[name])
            bar.update(n)
    empty = torch.isinf(best)
    view = (n_groups, 2, bins)
    return Frontier(
        best=best.masked_fill(empty, torch.nan).view(view), index=index.masked_fill(empty, -1).view(view),
        interactivity=inter.masked_fill(empty, torch.nan).view(view), groups=batch.groups,
        shape=shape, metric=metric,
        points={name: torch.cat(v).view(shape) for name, v in points.items()} if return_points else None)
