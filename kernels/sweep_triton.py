"""Fused Triton sweep over the flat grid case x concurrency x draft tokens k x acceptance scale a.

One program evaluates BLOCK consecutive flat points: `_sweep_kernel` decodes (case, C, k, a) from their
indices, loads the case's packed row (tables, knobs, scalars, AL and admission at k), runs the closed loop
and, in a block holding a disaggregated case, the disaggregated loop for those points, and stores the
metrics and feasibility, all in float64. The physics is one `@triton.jit` helper per torch function, named
after it (`_pass_cost` = step_cost.pass_cost, `_decode_step_s` = speculative.decode_step_terms(...).total_s,
`_prefill_time_s`, `_running_batch`, `_closed_loop_tokens`, `_prefill_pool`, `_kv_transfer_s`,
`_disaggregated_loop_tokens`, ...), with the same arguments in the same order and the same arithmetic;
tables, knobs, limits and results travel as named tuples with the torch dataclasses' field names.
tests/kernel_probes.py checks every helper against its torch function.

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
from simulator.serving import MAX_BISECTION_BATCH, THROTTLE_BISECTION_STEPS
from simulator.speculative import PREFILL_EAGER
from simulator.step_cost import CEIL_SLACK

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
           "expert_bytes", "experts_local", "route_prob", "busiest_rank_z", "bytes_per_token",
           "bytes_per_request_ctx", "bytes_per_request", "peak_flops", "dp_sharded", "imbalance_weight"),
    "pass": ("attention_dp", "comm_bytes_per_token", "collectives", "layer_passes", "link_bytes_s", "hbm_bytes_s",
             "logits_bytes_per_token", "logits_comm_bytes_per_token", "scale_out"),
    "knob": ("hbm_bandwidth_fraction", "compute_fraction", "link_bandwidth_fraction", "layer_pass_latency_us",
             "collective_latency_us", "step_latency_us", "moe_imbalance", "draft_pass_latency_us",
             "eager_layer_pass_latency_us", "request_overhead_us", "scale_out_latency_us",
             "scale_out_bandwidth_fraction", "route_repeat_fraction", "expert_popularity_cv"),
    "scalar": ("input_tokens", "output_tokens", "prefill_chunk_tokens", "chunked_prefill", "gpus",
               "max_draft_tokens", "acceptance_scale", "max_step_tokens", "graph_max_batch",
               "graph_counts_tokens", "speculation_overlapped", "disaggregated", "decode_workers", "prefill_workers",
               "prefill_attention_dp", "kv_bytes", "kv_link_bytes_s"),
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


# What the helpers take, as named tuples (Triton passes tuples to and from jit functions): each mirrors a torch
# dataclass, with its fields named as there. `Table` is a lowering.PassTable: `ops` points at its operator rows
# (field f of operator j at ops + f n_ops + j, read one operator at a time as an `Op`) and the pass scalars.
Op = namedtuple("Op", KERNEL_READS["op"])
Table = namedtuple("Table", ("ops", "n_ops", *KERNEL_READS["pass"]))
Tables = namedtuple("Tables", ("target", "draft"))  # speculative.StepTables
Knobs = namedtuple("Knobs", KERNEL_READS["knob"])  # knobs.KnobTensors
Scalars = namedtuple("Scalars", KERNEL_READS["scalar"])  # the case's batched.SCALAR_FIELDS the kernel reads
Limits = namedtuple("Limits", ("max_batch", "max_step_tokens", "graph_max_batch", "graph_counts_tokens",
                               "speculation_overlapped"))  # StepLimits
Metrics = namedtuple("Metrics", ("step_s", "tpot_s", "ttft_s", "tput_per_gpu", "output_tput_per_gpu"))  # ServingMetrics
Pool = namedtuple("Pool", ("batch_tokens", "batch_s", "one_request_s", "requests_per_s"))  # serving.PrefillPool
# sections of a packed case row (`pack`), in order: the (decode) worker's target and draft tables, knobs,
# scalars, AL and admitted batch per k, a disaggregated case's prefill worker's tables (zero for one worker)
SECTIONS = ("target_ops", "draft_ops", "target_pass", "draft_pass", "knob", "scalar", "al", "max_batch",
            "prefill_target_ops", "prefill_draft_ops", "prefill_target_pass", "prefill_draft_pass")
Offsets = namedtuple("Offsets", SECTIONS)


if triton is not None:
    CEIL_SLACK_K = tl.constexpr(CEIL_SLACK)  # step_cost.CEIL_SLACK, as the kernel's helpers read it
    PREFILL_EAGER_K = tl.constexpr(PREFILL_EAGER)  # speculative.PREFILL_EAGER: prefill passes run without graphs

    @triton.jit
    def _load_knobs(p, KNOB: tl.constexpr):
        """The knobs.KnobTensors of the rows at p (KNOB: each knob's position there)."""
        return Knobs(*[tl.load(p + i) for i in KNOB])

    @triton.jit
    def _load_scalars(p, SCALAR: tl.constexpr):
        """The case's scalars (batched.SCALAR_FIELDS) the kernel reads, by name."""
        return Scalars(*[tl.load(p + i) for i in SCALAR])

    @triton.jit
    def _load_table(ops, q, n_ops, PASS: tl.constexpr):
        """The lowering.PassTable with operator rows at `ops` and pass scalars at `q`."""
        return Table(ops, n_ops, *[tl.load(q + i) for i in PASS])

    @triton.jit
    def _load_op(t, j, OP: tl.constexpr):
        """Operator j of table t."""
        return Op(*[tl.load(t.ops + i * t.n_ops + j) for i in OP])

    @triton.jit
    def _step_tables(row, ops, passes, draft_ops, draft_passes, n_ops, PASS: tl.constexpr):
        """The speculative.StepTables at these section offsets of the case rows at `row`."""
        return Tables(_load_table(row + ops, row + passes, n_ops, PASS),
                      _load_table(row + draft_ops, row + draft_passes, n_ops, PASS))

    @triton.jit
    def _scaled_al(raw_al, scale, draft_tokens):
        """acceptance.scaled_al: min(1 + s (AL_raw - 1), k + 1)."""
        return tl.minimum(1.0 + scale * (raw_al - 1.0), draft_tokens + 1.0)

    @triton.jit
    def _busiest_rank_share(requests, attention_dp):
        """step_cost.busiest_rank_share: ceil(n / DP) of n requests on the busiest DP rank, at most all."""
        n = tl.maximum(requests, 1.0)
        return tl.minimum(tl.ceil(n / attention_dp - CEIL_SLACK_K) / n, 1.0)

    @triton.jit
    def _link_knobs(t, kn):
        """step_cost.link_knobs: the pass's collectives at the scale-up or, crossing the NICs, scale-out knobs."""
        s = t.scale_out
        fraction = kn.link_bandwidth_fraction + s * (kn.scale_out_bandwidth_fraction - kn.link_bandwidth_fraction)
        latency = kn.collective_latency_us + s * (kn.scale_out_latency_us - kn.collective_latency_us)
        return fraction, latency

    @triton.jit
    def _expected_experts_touched(experts, route_prob, tokens, rank_z, popularity_cv):
        """moe.expected_experts_touched: the busiest EP rank's E q + z sqrt(E q (1 - q)), at most E, with the miss
        probability 1 - q = exp(-lambda T) under uniform routing (lambda = -log(1 - k/E)) and the gamma
        popularity's (1 + lambda T c^2)^(-1 / c^2) for c = `popularity_cv` > 0."""
        rate_t = -tl.log(1.0 - route_prob) * tokens
        c2 = popularity_cv * popularity_cv
        exponent = tl.where(c2 > 0.0, tl.log(1.0 + rate_t * c2) / tl.where(c2 > 0.0, c2, 1.0), rate_t)
        q = 1.0 - tl.exp(-exponent)
        spread = rank_z * tl.sqrt(tl.maximum(experts * q * (1.0 - q), 0.0))
        return tl.minimum(experts * q + spread, experts)

    @triton.jit
    def _routing_draws(requests, tokens, repeat_fraction):
        """moe.routing_draws: a request's first token routes afresh, each later one adds 1 - rho of a draw."""
        return tl.minimum(requests, tokens) + tl.maximum(tokens - requests, 0.0) * (1.0 - repeat_fraction)

    @triton.jit
    def _pass_cost(t, kn, requests, tokens, context, layer_latency_us, eager, state_writes, OP: tl.constexpr):
        """step_cost.pass_cost(...).total_s: seconds of a pass of table t over `tokens` tokens of `requests`
        requests at mean context `context` (`layer_latency_us`: the floor per layer pass; `eager` = 1: no
        CUDA graph; `state_writes`: recurrent-state copies written per request)."""
        share = _busiest_rank_share(requests, t.attention_dp)
        hbm = t.hbm_bytes_s * kn.hbm_bandwidth_fraction
        operator_s = tl.zeros_like(tokens)
        draws = _routing_draws(requests, tokens, kn.route_repeat_fraction)  # consecutive tokens share experts
        for j in range(t.n_ops):
            o = _load_op(t, j, OP)
            rank = o.dp_sharded * share + (1.0 - o.dp_sharded)
            tok = tokens * rank
            req = requests * rank
            ctx = tl.minimum(o.ctx_scale * context + o.ctx_offset, o.ctx_cap)
            imbalance = 1.0 + o.imbalance_weight * (kn.moe_imbalance - 1.0)
            flops = (o.flops_per_token * tok + o.flops_per_token_ctx * tok * ctx) * imbalance
            touched = _expected_experts_touched(o.experts_local, o.route_prob, draws, o.busiest_rank_z,
                                                kn.expert_popularity_cv)
            weight_s = (o.weight_bytes + o.expert_bytes * touched) / hbm
            kv_s = (o.bytes_per_request_ctx * req * ctx + o.bytes_per_request * req * (1.0 + state_writes)) / hbm
            activation_s = o.bytes_per_token * tok / hbm
            compute_s = flops / (o.peak_flops * kn.compute_fraction)
            operator_s += tl.maximum(compute_s, weight_s + kv_s + activation_s)
        link_f, coll_us = _link_knobs(t, kn)
        comm_s = t.comm_bytes_per_token * tokens / (t.link_bytes_s * link_f) + t.collectives * coll_us * 1e-6
        gpu_s = operator_s + comm_s + t.layer_passes * layer_latency_us * 1e-6
        launch_s = t.layer_passes * kn.eager_layer_pass_latency_us * 1e-6
        return gpu_s + eager * tl.maximum(launch_s - gpu_s, 0.0)

    @triton.jit
    def _runs_eager(batch, draft_tokens, attention_dp, graph_max_batch, graph_counts_tokens):
        """speculative.runs_eager: 1 where the decode batch exceeds the largest captured CUDA graph."""
        size = tl.ceil(batch / attention_dp) * (1.0 + graph_counts_tokens * draft_tokens)
        return tl.where(size > graph_max_batch, 1.0, 0.0)

    @triton.jit
    def _sampling_time_s(t, kn, requests, positions):
        """speculative.sampling_time_s: vocabulary-wide logits of `positions` rows (busiest DP rank's share)."""
        rows = positions * _busiest_rank_share(requests, t.attention_dp)
        link_f, _ = _link_knobs(t, kn)
        return (rows * t.logits_bytes_per_token / (t.hbm_bytes_s * kn.hbm_bandwidth_fraction)
                + rows * t.logits_comm_bytes_per_token / (t.link_bytes_s * link_f))

    @triton.jit
    def _decode_step_s(tables, kn, batch, draft_tokens, context, extra_tokens, graph_max_batch,
                       graph_counts_tokens, speculation_overlapped, OP: tl.constexpr):
        """speculative.decode_step_terms(...).total_s: verify over B (k + 1) (+ `extra_tokens` chunked prompt
        tokens), draft extend over B (k + 1), k - 1 draft decode passes over B, sampling, bookkeeping (hidden
        where `speculation_overlapped`); eager above the graph limit (a missing draft is a zero table: 0 s)."""
        k = draft_tokens
        spec = tl.where(k > 0.0, 1.0, 0.0)
        eager = _runs_eager(batch, k, tables.target.attention_dp, graph_max_batch, graph_counts_tokens)
        positions = batch * (k + 1.0)
        verify = _pass_cost(tables.target, kn, batch, positions + extra_tokens, context, kn.layer_pass_latency_us,
                            eager, k + 1.0, OP)
        d, floor = tables.draft, kn.draft_pass_latency_us
        extend = spec * _pass_cost(d, kn, batch, positions, context, floor, eager, 1.0, OP)
        decode = tl.maximum(k - 1.0, 0.0) * _pass_cost(d, kn, batch, batch, context, floor, eager, 1.0, OP)
        sampling = _sampling_time_s(tables.target, kn, batch, positions) + k * _sampling_time_s(d, kn, batch, batch)
        bookkeeping = spec * (1.0 - speculation_overlapped) * batch * kn.request_overhead_us * 1e-6
        return verify + extend + decode + sampling + bookkeeping + kn.step_latency_us * 1e-6

    @triton.jit
    def _prefill_time_s(tables, kn, tokens, input_tokens, chunk_tokens, with_draft, OP: tl.constexpr):
        """speculative.prefill_time_s: `tokens` prompt tokens of `input_tokens`-token prompts in chunks of
        `chunk_tokens` (target, + draft where `with_draft`); each chunk an eager pass at the causal mean context."""
        chunks = tl.maximum(tl.ceil(tokens / chunk_tokens), 1.0)
        per_chunk = tokens / chunks
        requests = per_chunk / input_tokens
        ctx = input_tokens / 2.0
        t = _pass_cost(tables.target, kn, requests, per_chunk, ctx, kn.layer_pass_latency_us, PREFILL_EAGER_K, 1.0,
                       OP)
        t = t + with_draft * _pass_cost(tables.draft, kn, requests, per_chunk, ctx, kn.draft_pass_latency_us,
                                        PREFILL_EAGER_K, 1.0, OP)
        return chunks * (t + kn.step_latency_us * 1e-6)

    @triton.jit
    def _running_batch(concurrency, draft_tokens, lim):
        """serving.running_batch: what memory / max_running_requests / the token budget admit; the rest queue."""
        budget = tl.floor(lim.max_step_tokens / (draft_tokens + 1.0))
        return tl.maximum(tl.minimum(tl.minimum(concurrency, lim.max_batch), budget), 1.0)

    @triton.jit
    def _closed_loop_tokens(tables, kn, input_tokens, output_tokens, chunked, chunk_tokens, concurrency,
                            draft_tokens, al, gpus, lim, OP: tl.constexpr):
        """serving.closed_loop_tokens: admission, the decode step, prefill of the arriving prompts (a stall,
        or chunked into the step), queueing, TTFT and throughput per GPU by Little's law."""
        c, k, i_tok, o_tok, mixed = concurrency, draft_tokens, input_tokens, output_tokens, chunked
        chunk = tl.minimum(chunk_tokens, lim.max_step_tokens)
        b = _running_batch(c, k, lim)
        ctx = i_tok + o_tok / 2.0
        arrivals = b * al / o_tok
        batch_prefill = _prefill_time_s(tables, kn, tl.maximum(arrivals, 1.0) * i_tok, i_tok, chunk,
                                        tl.where(k > 0.0, 1.0, 0.0), OP)
        step = _decode_step_s(tables, kn, b, k, ctx, mixed * arrivals * i_tok, lim.graph_max_batch,
                              lim.graph_counts_tokens, lim.speculation_overlapped, OP)
        stall = (1.0 - mixed) * tl.minimum(arrivals, 1.0) * batch_prefill
        effective = step + stall
        own_chunks = tl.maximum(tl.ceil(i_tok / chunk), 1.0)  # chunked: the steps that carry this prompt
        own_step = step
        if tl.max(mixed, axis=0) > 0.5:  # the block holds a chunked case: price its own-prompt steps
            own_step = _decode_step_s(tables, kn, b, k, ctx, mixed * (arrivals * i_tok + i_tok / own_chunks),
                                      lim.graph_max_batch, lim.graph_counts_tokens, lim.speculation_overlapped, OP)
        wait = (1.0 - mixed) * batch_prefill + mixed * own_chunks * own_step
        tpot = effective / al
        served = wait + effective / 2.0 + o_tok * tpot
        queue = (c / b - 1.0) * served
        lifetime = queue + served
        return Metrics(step, tpot, queue + wait + effective / 2.0, c * (i_tok + o_tok) / lifetime / gpus,
                       c * o_tok / lifetime / gpus)

    @triton.jit
    def _prefill_pool(tables, kn, input_tokens, chunk_tokens, attention_dp, workers, with_draft, OP: tl.constexpr):
        """serving.prefill_pool: `workers` prefill workers, each running passes of DP x max(I, chunk) tokens."""
        batch = attention_dp * tl.maximum(input_tokens, chunk_tokens)
        t_batch = _prefill_time_s(tables, kn, batch, input_tokens, batch, with_draft, OP)
        t_one = _prefill_time_s(tables, kn, input_tokens, input_tokens, batch, with_draft, OP)
        return Pool(batch, t_batch, t_one, workers * batch / input_tokens / t_batch)

    @triton.jit
    def _kv_transfer_s(kn, kv_bytes, link_bytes_s):
        """serving.kv_transfer_s: one request's KV over the scale-out link."""
        return kn.scale_out_latency_us * 1e-6 + kv_bytes / (link_bytes_s * kn.scale_out_bandwidth_fraction)

    @triton.jit
    def _disaggregated_loop_tokens(decode, prefill, kn, input_tokens, output_tokens, chunk_tokens, prefill_dp,
                                   prefill_workers, decode_workers, kv_bytes, kv_link_bytes_s, concurrency,
                                   draft_tokens, al, gpus, lim, OP: tl.constexpr, THROTTLE_STEPS: tl.constexpr,
                                   MAX_BATCH: tl.constexpr):
        """serving.disaggregated_loop_tokens: the prefill pool, the KV transfer, ceil(C / y) requests per decode
        worker without a prefill stall, and the prefill throttle's log-bisection (THROTTLE_STEPS steps)."""
        c, k, i_tok, o_tok, y = concurrency, draft_tokens, input_tokens, output_tokens, decode_workers
        ctx = i_tok + o_tok / 2.0
        pool = _prefill_pool(prefill, kn, i_tok, chunk_tokens, prefill_dp, prefill_workers,
                             tl.where(k > 0.0, 1.0, 0.0), OP)
        kv_s = _kv_transfer_s(kn, kv_bytes, kv_link_bytes_s)
        per_worker = tl.ceil(c / y - CEIL_SLACK_K)
        b = _running_batch(per_worker, k, lim)
        step = _decode_step_s(decode, kn, b, k, ctx, 0.0, lim.graph_max_batch, lim.graph_counts_tokens,
                              lim.speculation_overlapped, OP)
        ttft_idle = pool.one_request_s + kv_s + step / 2.0
        served = ttft_idle + o_tok * (step / al)
        demand = c / ((per_worker / b) * served)
        throttled = demand > pool.requests_per_s
        per_worker_rate = pool.requests_per_s / y
        # the bisection runs over [1, the most a worker admits] (serving.MAX_BISECTION_BATCH at most)
        lo = tl.full(b.shape, 1.0, tl.float64)
        hi = tl.minimum(_running_batch(tl.full(b.shape, float("inf"), tl.float64), k, lim), MAX_BATCH) + 0.0 * b
        for _ in range(THROTTLE_STEPS):
            mid = tl.sqrt(lo * hi)
            step_mid = _decode_step_s(decode, kn, mid, k, ctx, 0.0, lim.graph_max_batch, lim.graph_counts_tokens,
                                      lim.speculation_overlapped, OP)
            over = mid > per_worker_rate * o_tok * step_mid / al
            hi = tl.where(over, mid, hi)
            lo = tl.where(over, lo, mid)
        step = _decode_step_s(decode, kn, tl.where(throttled, tl.minimum(hi, b), b), k, ctx, 0.0,
                              lim.graph_max_batch, lim.graph_counts_tokens, lim.speculation_overlapped, OP)
        tpot = step / al
        prefill_wait = demand / pool.requests_per_s * pool.batch_s / 2.0
        queue = (per_worker / b - 1.0) * (served + prefill_wait)
        ttft_free = ttft_idle + prefill_wait + queue
        free = tl.where(per_worker > b, (c / per_worker) * b / (served + prefill_wait),
                        c / (ttft_free + o_tok * tpot))
        rate = tl.where(throttled, pool.requests_per_s, free)
        ttft = tl.where(throttled, tl.maximum(c / rate - o_tok * tpot, ttft_idle), ttft_free)
        return Metrics(step, tpot, ttft, rate * (i_tok + o_tok) / gpus, rate * o_tok / gpus)

    @triton.jit(do_not_specialize=["start", "n_points"])
    def _sweep_kernel(
        # inputs: the packed case rows (`pack`) and the three sweep axes
        row_ptr, conc_ptr, k_ptr, a_ptr,
        # output: [len(OUTPUTS), n_points]
        out_ptr,
        # sweep grid: this launch covers flat points start .. start + n_points - 1 of n_cases x n_c x n_k x n_a
        start, n_points, n_c, n_k, n_a,
        # row layout (`pack`): row length, operators per table, AL entries, each section's offset (`Offsets`)
        row_len, n_ops, n_al, off,
        # field positions inside each section (`kernel_layout`)
        OP: tl.constexpr, PASS: tl.constexpr, KNOB: tl.constexpr, SCALAR: tl.constexpr, OUT: tl.constexpr,
        # log-bisection steps of a throttled disaggregated decode batch (serving.THROTTLE_BISECTION_STEPS)
        THROTTLE_STEPS: tl.constexpr,
        # ... and its upper end where nothing else bounds a worker's batch (serving.MAX_BISECTION_BATCH)
        MAX_BATCH: tl.constexpr,
        # points per program
        BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n_points
        g = start.to(tl.int64) + tl.minimum(offs, n_points - 1)  # a tail's spare lanes repeat the last point
        k_at_axis, c_at_axis = g // n_a % n_k, g // (n_a * n_k) % n_c
        row = row_ptr + g // (n_a * n_k * n_c) * row_len  # this point's case
        c, k, a = tl.load(conc_ptr + c_at_axis), tl.load(k_ptr + k_at_axis), tl.load(a_ptr + g % n_a)
        kn = _load_knobs(row + off.knob, KNOB)
        x = _load_scalars(row + off.scalar, SCALAR)
        k_at = tl.minimum(tl.maximum(k, 0.0), n_al - 1.0).to(tl.int32)  # this point's entry of the per-k tables
        al = _scaled_al(tl.load(row + off.al + k_at), x.acceptance_scale * a, k)  # at the case's scale x a
        lim = Limits(tl.load(row + off.max_batch + k_at), x.max_step_tokens, x.graph_max_batch,
                     x.graph_counts_tokens, x.speculation_overlapped)
        tables = _step_tables(row, off.target_ops, off.target_pass, off.draft_ops, off.draft_pass, n_ops, PASS)
        m = _closed_loop_tokens(tables, kn, x.input_tokens, x.output_tokens, x.chunked_prefill,
                                x.prefill_chunk_tokens, c, k, al, x.gpus, lim, OP)
        if tl.max(x.disaggregated, axis=0) > 0.5:  # the block holds a disaggregated case: its loop for those
            prefill = _step_tables(row, off.prefill_target_ops, off.prefill_target_pass, off.prefill_draft_ops,
                                   off.prefill_draft_pass, n_ops, PASS)
            d = _disaggregated_loop_tokens(tables, prefill, kn, x.input_tokens, x.output_tokens,
                                           x.prefill_chunk_tokens, x.prefill_attention_dp, x.prefill_workers,
                                           x.decode_workers, x.kv_bytes, x.kv_link_bytes_s, c, k, al, x.gpus, lim,
                                           OP, THROTTLE_STEPS, MAX_BATCH)
            dis = x.disaggregated > 0.5
            m = Metrics(tl.where(dis, d.step_s, m.step_s), tl.where(dis, d.tpot_s, m.tpot_s),
                        tl.where(dis, d.ttft_s, m.ttft_s), tl.where(dis, d.tput_per_gpu, m.tput_per_gpu),
                        tl.where(dis, d.output_tput_per_gpu, m.output_tput_per_gpu))
        feasible = mask & (c >= 1.0) & (lim.max_batch >= 1.0) & (k >= 0.0) & (k <= x.max_draft_tokens)
        nan = float("nan")
        out = out_ptr + offs
        tl.store(out + OUT.interactivity * n_points, tl.where(feasible, 1.0 / m.tpot_s, nan), mask=mask)
        tl.store(out + OUT.tput_per_gpu * n_points, tl.where(feasible, m.tput_per_gpu, nan), mask=mask)
        tl.store(out + OUT.output_tput_per_gpu * n_points, tl.where(feasible, m.output_tput_per_gpu, nan), mask=mask)
        tl.store(out + OUT.step_s * n_points, tl.where(feasible, m.step_s, nan), mask=mask)
        tl.store(out + OUT.ttft_s * n_points, tl.where(feasible, m.ttft_s, nan), mask=mask)
        tl.store(out + OUT.feasible * n_points, tl.where(feasible, 1.0, 0.0), mask=mask)


def pack(batch: CaseBatch) -> tuple[torch.Tensor, Offsets]:
    """One contiguous float64 row per case, in the order of SECTIONS (a one-worker case's prefill tables are
    zero), and each section's offset in a row."""
    o, p = batch.ops, batch.passes
    sections = (o[:, 0].flatten(1), o[:, 1].flatten(1), p[:, 0], p[:, 1], batch.knobs, batch.scalars, batch.al,
                batch.max_batch, o[:, 2].flatten(1), o[:, 3].flatten(1), p[:, 2], p[:, 3])
    offsets = np.cumsum([0] + [s.shape[1] for s in sections[:-1]]).tolist()
    return torch.cat(sections, 1).contiguous(), Offsets(*offsets)


def evaluate_points_triton(batch: CaseBatch, start: int, n_points: int, concurrency: torch.Tensor,
                           draft_tokens: torch.Tensor, acceptance_scale: torch.Tensor,
                           packed: tuple[torch.Tensor, Offsets] | None = None) -> dict[str, torch.Tensor]:
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
        batch.al.shape[1], off, **LAYOUT, THROTTLE_STEPS=THROTTLE_BISECTION_STEPS,
        MAX_BATCH=MAX_BISECTION_BATCH, BLOCK=BLOCK)
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
