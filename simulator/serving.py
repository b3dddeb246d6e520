"""The benchmark's closed loop at concurrency C: admission, decode steps, prefill of arriving requests, TTFT.

Definitions follow docs/sources.md#benchmark-methodology: interactivity = 1 / TPOT (TTFT excluded); throughput per GPU
= (input + output tokens) / s / GPUs, by Little's law over a request's lifetime. Two loops: aggregated
(`closed_loop_tokens`: prefill shares the decode GPUs) and disaggregated (`disaggregated_loop_tokens`: a
prefill pool feeds a decode pool over the NICs). Both take tensors, so the torch model, the calibration and
the sweep kernel's reference broadcast them over a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simulator.knobs import KnobTensors
from simulator.specs import EngineLimits, ServingSpec, WorkloadSpec
from simulator.speculative import INF, StepTables, StepTerms, decode_step_terms, prefill_time_s
from simulator.step_cost import CEIL_SLACK


@dataclass(frozen=True)
class StepLimits:
    """The engine limits the loop obeys, as tensors: `max_batch` = most requests running at once (KV memory,
    max_running_requests), `max_step_tokens` = per-step token budget, the CUDA-graph capture limit, and
    whether speculation runs with the overlap scheduler (EngineLimits.speculation_overlapped)."""

    max_batch: torch.Tensor
    max_step_tokens: torch.Tensor
    graph_max_batch: torch.Tensor
    graph_counts_tokens: torch.Tensor
    speculation_overlapped: torch.Tensor | float = 0.0  # 1: bookkeeping hidden by the overlap scheduler

    @classmethod
    def none(cls) -> StepLimits:
        inf = torch.tensor(INF, dtype=torch.float64)
        return cls(inf, inf, inf, torch.tensor(0.0, dtype=torch.float64))

    @classmethod
    def of(cls, limits: EngineLimits, max_concurrency: float) -> StepLimits:
        """From a resolved `EngineLimits` and the memory limit (deepest concurrency the KV cache holds)."""
        def t(x: float | None) -> torch.Tensor:
            return torch.tensor(INF if x is None else float(x), dtype=torch.float64)
        running = min(float(max_concurrency), INF if limits.max_running_requests is None
                      else float(limits.max_running_requests))
        return cls(t(running), t(limits.max_num_tokens), t(limits.cuda_graph_max_batch),
                   torch.tensor(float(limits.cuda_graph_counts_tokens), dtype=torch.float64),
                   torch.tensor(float(limits.speculation_overlapped), dtype=torch.float64))


@dataclass(frozen=True)
class ServingMetrics:
    """Tensors over the evaluated points; times in seconds, throughputs in tokens/s."""

    step_s: torch.Tensor  # one draft + verify (or plain decode) step
    stall_s: torch.Tensor  # prefill time charged to each step
    tpot_s: torch.Tensor
    ttft_s: torch.Tensor  # queueing for admission included
    interactivity: torch.Tensor  # tok/s/user
    tput_per_gpu: torch.Tensor  # input + output tokens
    output_tput_per_gpu: torch.Tensor
    tokens_per_step: torch.Tensor  # AL
    running_batch: torch.Tensor  # requests the engine runs at once (<= C)
    queue_s: torch.Tensor  # mean wait for admission, part of ttft_s
    terms: StepTerms  # step_s by term (breakdown.step_breakdown)


def running_batch(concurrency: torch.Tensor, draft_tokens: torch.Tensor, limits: StepLimits) -> torch.Tensor:
    """Requests running at once: C, or what fits in KV memory / max_running_requests / the per-step token
    budget (B x (k + 1) tokens per step); never below 1 (a deployment that holds none is infeasible)."""
    budget = torch.floor(limits.max_step_tokens / (draft_tokens + 1.0))
    return torch.clamp(torch.minimum(torch.minimum(concurrency, limits.max_batch), budget), min=1.0)


def closed_loop(tables: StepTables, knobs: KnobTensors, workload: WorkloadSpec, serving: ServingSpec,
                concurrency: torch.Tensor, draft_tokens: torch.Tensor, al: torch.Tensor,
                gpus: int | torch.Tensor, limits: StepLimits | None = None) -> ServingMetrics:
    """Steady state of C requests decoding while finished ones are replaced and prefilled (one workload)."""
    return closed_loop_tokens(tables, knobs, workload.mean_input_tokens, workload.mean_output_tokens,
                              serving.prefill_mode == "chunked", serving.prefill_chunk_tokens, concurrency,
                              draft_tokens, al, gpus, limits)


def closed_loop_tokens(tables: StepTables, knobs: KnobTensors, input_tokens: torch.Tensor | float,
                       output_tokens: torch.Tensor | float, chunked: torch.Tensor | bool,
                       chunk_tokens: torch.Tensor | float, concurrency: torch.Tensor,
                       draft_tokens: torch.Tensor, al: torch.Tensor, gpus: int | torch.Tensor,
                       limits: StepLimits | None = None) -> ServingMetrics:
    """The closed loop with the workload's mean input/output tokens and the prefill mode as tensors.

    Admission: the engine runs B = `running_batch` requests and queues the other C - B; by Little's law
    over the C clients each request then waits (C / B - 1) running lifetimes, and throughput saturates at B.
    Per step about a = B x AL / O requests finish and as many are admitted. Separate prefill: one prefill
    batch of max(a, 1) prompts stalls decoding every 1 / min(a, 1) steps; TTFT = that batch plus, on
    average, half a step of waiting. Chunked (`chunked` = 1): the a x I prompt tokens ride inside the decode
    pass (on average, for TPOT); a request's own TTFT is the ceil(I / chunk) steps that carry its prompt, each
    the mean step plus that chunk. Prefill chunks never exceed the per-step token budget.
    """
    f64 = torch.float64
    lim = limits or StepLimits.none()
    c = torch.as_tensor(concurrency, dtype=f64)
    k = torch.as_tensor(draft_tokens, dtype=f64)
    al = torch.as_tensor(al, dtype=f64)
    i_tok, o_tok = torch.as_tensor(input_tokens, dtype=f64), torch.as_tensor(output_tokens, dtype=f64)
    mixed = torch.as_tensor(chunked, dtype=f64)
    chunk = torch.minimum(torch.as_tensor(chunk_tokens, dtype=f64), lim.max_step_tokens)
    b = running_batch(c, k, lim)
    ctx = i_tok + o_tok / 2.0
    arrivals = b * al / o_tok
    batch_prefill = prefill_time_s(tables, knobs, torch.clamp(arrivals, min=1.0) * i_tok, i_tok, chunk, k > 0)
    terms = decode_step_terms(tables, knobs, b, k, ctx, mixed * arrivals * i_tok, lim.graph_max_batch,
                              lim.graph_counts_tokens, lim.speculation_overlapped)
    step = terms.total_s
    stall = (1.0 - mixed) * torch.clamp(arrivals, max=1.0) * batch_prefill
    effective = step + stall
    # chunked: a prompt's own chunks ride in ceil(I / chunk) steps, each the mean step plus that chunk
    # (priced only where some row is chunked: separate-prefill rows never read it, and a second decode step per
    # point cost a CPU sweep 50-80 % more time)
    own_chunks = torch.clamp(torch.ceil(i_tok / chunk), min=1.0)
    own_step = step
    if bool(mixed.any()):
        own_step = decode_step_terms(tables, knobs, b, k, ctx, mixed * (arrivals * i_tok + i_tok / own_chunks),
                                     lim.graph_max_batch, lim.graph_counts_tokens,
                                     lim.speculation_overlapped).total_s
    wait = (1.0 - mixed) * batch_prefill + mixed * own_chunks * own_step
    tpot = effective / al
    served = wait + effective / 2.0 + o_tok * tpot  # a running request's lifetime, TTFT included
    queue = (c / b - 1.0) * served
    lifetime = queue + served
    gpus_t = torch.as_tensor(gpus, dtype=f64)
    return ServingMetrics(
        step_s=step, stall_s=stall, tpot_s=tpot, ttft_s=queue + wait + effective / 2.0, interactivity=1.0 / tpot,
        tput_per_gpu=c * (i_tok + o_tok) / lifetime / gpus_t,
        output_tput_per_gpu=c * o_tok / lifetime / gpus_t, tokens_per_step=al, running_batch=b, queue_s=queue,
        terms=terms,
    )


# Disaggregated serving (docs/sources.md#serving-model-priors, "Disaggregated serving removes the stall from decode GPUs
# but adds prefill GPUs to the denominator of throughput per GPU and a KV transfer to TTFT").
THROTTLE_BISECTION_STEPS = 16  # log-bisection of the throttled decode batch over [1, B]: B^(1/65536) apart
MAX_BISECTION_BATCH = 2.0**30  # the bisection's upper end where nothing else bounds a worker's batch


@dataclass(frozen=True)
class DisaggregatedMetrics(ServingMetrics):
    """The disaggregated loop's metrics (`running_batch` per decode worker) and what only it has."""

    throttled: torch.Tensor  # True where the prefill pool caps the loop
    kv_transfer_s: torch.Tensor  # one request's KV prefill -> decode, part of ttft_s
    prefill_rate: torch.Tensor  # requests/s the prefill pool clears
    demand_rate: torch.Tensor  # requests/s the decode pool would take at C without the prefill cap


@dataclass(frozen=True)
class PrefillPool:
    """A pool of prefill workers, as tensors: what one pass clears and what the pool admits per second."""

    batch_tokens: torch.Tensor  # prompt tokens per prefill pass of one worker (every DP rank fills its chunk)
    batch_s: torch.Tensor  # seconds of that pass
    one_request_s: torch.Tensor  # a lone prompt's prefill (TTFT at low load)
    requests_per_s: torch.Tensor  # the pool's capacity


def prefill_pool(tables: StepTables, knobs: KnobTensors, input_tokens: torch.Tensor | float,
                 chunk_tokens: torch.Tensor | float, attention_dp: torch.Tensor | float,
                 workers: torch.Tensor | float, with_draft: torch.Tensor | bool) -> PrefillPool:
    """`workers` prefill workers, each running passes of DP x max(I, chunk) prompt tokens."""
    f64 = torch.float64
    i_tok = torch.as_tensor(input_tokens, dtype=f64)
    batch = torch.as_tensor(attention_dp, dtype=f64) * torch.maximum(i_tok, torch.as_tensor(chunk_tokens, dtype=f64))
    t_batch = prefill_time_s(tables, knobs, batch, i_tok, batch, with_draft)
    t_one = prefill_time_s(tables, knobs, i_tok, i_tok, batch, with_draft)
    return PrefillPool(batch, t_batch, t_one, torch.as_tensor(workers, dtype=f64) * batch / i_tok / t_batch)


def kv_transfer_s(knobs: KnobTensors, kv_bytes: torch.Tensor | float, link_bytes_s: torch.Tensor | float
                  ) -> torch.Tensor:
    """One request's KV over the scale-out link: a message latency + bytes / (lanes' NIC bytes/s x fraction)."""
    return knobs.scale_out_latency_us * 1e-6 + torch.as_tensor(kv_bytes, dtype=torch.float64) / (
        torch.as_tensor(link_bytes_s, dtype=torch.float64) * knobs.scale_out_bandwidth_fraction)


def disaggregated_loop_tokens(decode: StepTables, prefill: StepTables, knobs: KnobTensors,
                              input_tokens: torch.Tensor | float, output_tokens: torch.Tensor | float,
                              chunk_tokens: torch.Tensor | float, prefill_dp: torch.Tensor | float,
                              prefill_workers: torch.Tensor | float, decode_workers: torch.Tensor | float,
                              kv_bytes: torch.Tensor | float, kv_link_bytes_s: torch.Tensor | float,
                              concurrency: torch.Tensor, draft_tokens: torch.Tensor, al: torch.Tensor,
                              gpus: int | torch.Tensor, limits: StepLimits | None = None) -> DisaggregatedMetrics:
    """The closed loop at C on x prefill + y decode workers; GPUs = prefill + decode GPUs (methodology.md).

    - decode pool: each of the y workers runs ceil(C / y) requests (its busiest DP rank ceil of those), at
      most what its memory / engine admits (the rest queue, as in `closed_loop_tokens`), with no prefill
      stall: plain decode or draft + verify steps (`decode_step_terms`);
    - prefill pool (`prefill_pool`): the requests/s it clears; TTFT = a lone prefill + the KV transfer
      (`kv_transfer_s`) + half a decode step + on average half a prefill pass per unit of its load;
    - if the decode pool would take requests faster than the prefill pool clears them, the loop is throttled
      by prefill: requests queue for prefill, the rate is the pool's, and each decode worker runs the batch
      B with B = (rate / y) x O x TPOT(B) (log-bisection, `THROTTLE_BISECTION_STEPS`); `throttled` says so.
    """
    f64 = torch.float64
    lim = limits or StepLimits.none()
    c = torch.as_tensor(concurrency, dtype=f64)
    k, al = torch.as_tensor(draft_tokens, dtype=f64), torch.as_tensor(al, dtype=f64)
    i_tok, o_tok = torch.as_tensor(input_tokens, dtype=f64), torch.as_tensor(output_tokens, dtype=f64)
    y = torch.as_tensor(decode_workers, dtype=f64)
    ctx = i_tok + o_tok / 2.0
    pool = prefill_pool(prefill, knobs, i_tok, chunk_tokens, prefill_dp, prefill_workers, k > 0)
    kv_s = kv_transfer_s(knobs, kv_bytes, kv_link_bytes_s)

    def step_terms(batch: torch.Tensor) -> StepTerms:
        return decode_step_terms(decode, knobs, batch, k, ctx, 0.0, lim.graph_max_batch, lim.graph_counts_tokens,
                                 lim.speculation_overlapped)

    per_worker = torch.ceil(c / y - CEIL_SLACK)
    b = running_batch(per_worker, k, lim)
    terms = step_terms(b)
    tpot = terms.total_s / al
    ttft_idle = pool.one_request_s + kv_s + terms.total_s / 2.0
    served = ttft_idle + o_tok * tpot
    demand = c / ((per_worker / b) * served)  # beyond what a decode worker admits, requests wait (Little)
    throttled = demand > pool.requests_per_s
    # throttled: the decode batch per worker that the prefill rate sustains, B = (P / y) O TPOT(B), found by
    # log-bisection over [1, the most a worker admits]: a range that does not depend on C, so every C that the
    # prefill pool throttles lands on the same batch (a plateau, read at its smallest C)
    per_worker_rate = pool.requests_per_s / y
    upper = torch.clamp(running_batch(torch.full_like(b, INF), k, lim), max=MAX_BISECTION_BATCH)
    lo, hi = torch.ones_like(b), upper + 0.0 * b
    for _ in range(THROTTLE_BISECTION_STEPS):
        mid = torch.sqrt(lo * hi)
        over = mid > per_worker_rate * o_tok * step_terms(mid).total_s / al
        hi, lo = torch.where(over, mid, hi), torch.where(over, lo, mid)
    b_thr = torch.where(throttled, torch.minimum(hi, b), b)
    terms = step_terms(b_thr)
    tpot = terms.total_s / al
    # a free-running pool: each admitted request also waits, on average, half a prefill pass per unit of the
    # pool's load; requests beyond what a worker admits wait whole lifetimes of those (Little), so past the
    # admission limit throughput stays at y B / lifetime (a plateau) and only TTFT grows
    prefill_wait = demand / pool.requests_per_s * pool.batch_s / 2.0
    queue = (per_worker / b - 1.0) * (served + prefill_wait)
    ttft_free = ttft_idle + prefill_wait + queue
    # past admission the rate is y B per lifetime, written so that every queued C gives the same figure
    free = torch.where(per_worker > b, (c / per_worker) * b / (served + prefill_wait),
                       c / (ttft_free + o_tok * tpot))
    rate = torch.where(throttled, pool.requests_per_s, free)
    # throttled: a request's lifetime is C / rate, of which O x TPOT decoding; the rest waits for prefill
    ttft = torch.where(throttled, torch.maximum(c / rate - o_tok * tpot, ttft_idle), ttft_free)
    gpus_t = torch.as_tensor(gpus, dtype=f64)
    zero = torch.zeros_like(tpot)
    return DisaggregatedMetrics(
        step_s=terms.total_s, stall_s=zero, tpot_s=tpot, ttft_s=ttft, interactivity=1.0 / tpot,
        tput_per_gpu=rate * (i_tok + o_tok) / gpus_t, output_tput_per_gpu=rate * o_tok / gpus_t,
        tokens_per_step=al + zero, running_batch=b_thr, queue_s=torch.where(throttled, zero, queue), terms=terms,
        throttled=throttled, kv_transfer_s=kv_s + zero, prefill_rate=pool.requests_per_s + zero,
        demand_rate=demand)


def _rows(x: object, idx: torch.Tensor, n: int) -> object:
    """Rows `idx` of a tensor whose first dimension is the n rows (a broadcast tensor stays as it is), or of
    every such tensor in a dataclass (tables, knobs, limits)."""
    if isinstance(x, torch.Tensor):
        return x[idx] if x.ndim and x.shape[0] == n else x
    if hasattr(x, "__dataclass_fields__"):
        return type(x)(**{f: _rows(getattr(x, f), idx, n) for f in x.__dataclass_fields__})  # type: ignore[arg-type]
    return x


@dataclass(frozen=True)
class LoopInputs:
    """What the loops read besides the knobs and AL, per row of points (tensors with the n rows first, or
    broadcasting against them): the (decode) worker's and a disaggregated prefill worker's tables, the
    workload, the prefill schedule, the pools and KV link, C, k, GPUs and the engine limits."""

    decode: StepTables
    prefill: StepTables
    input_tokens: torch.Tensor
    output_tokens: torch.Tensor
    chunked: torch.Tensor
    chunk_tokens: torch.Tensor
    prefill_dp: torch.Tensor
    prefill_workers: torch.Tensor
    decode_workers: torch.Tensor
    kv_bytes: torch.Tensor
    kv_link_bytes_s: torch.Tensor
    concurrency: torch.Tensor
    draft_tokens: torch.Tensor
    gpus: torch.Tensor
    limits: StepLimits
    disaggregated: torch.Tensor  # [n] bool: the row runs the disaggregated loop


@dataclass(frozen=True)
class RowSplit:
    """Rows of `LoopInputs` split by loop, once (the calibration prices the same rows at many knobs)."""

    n: int
    aggregated: tuple[torch.Tensor, LoopInputs] | None  # (row indices, their inputs)
    disaggregated: tuple[torch.Tensor, LoopInputs] | None


def split_rows(x: LoopInputs) -> RowSplit:
    n = x.disaggregated.shape[0]
    parts = []
    for mask in (~x.disaggregated, x.disaggregated):
        idx = mask.nonzero()[:, 0]
        parts.append((idx, _rows(x, idx, n)) if idx.numel() else None)
    return RowSplit(n, parts[0], parts[1])  # type: ignore[arg-type]


def serve(rows: RowSplit, knobs: KnobTensors, al: torch.Tensor) -> DisaggregatedMetrics:
    """The one loop every task prices its points with: rows marked disaggregated run
    `disaggregated_loop_tokens` (prefill pool, KV transfer, decode pool), the others `closed_loop_tokens`;
    `knobs` and `al` have the rows first (or broadcast). The result has the points' broadcast shape, rows
    first. Each kind of row is evaluated with its own loop only (the sweep kernel does the same per block)."""
    agg = dis = None
    if rows.aggregated is not None:
        idx, x = rows.aggregated
        kn, a = _rows(knobs, idx, rows.n), _rows(al, idx, rows.n)
        m = closed_loop_tokens(x.decode, kn, x.input_tokens, x.output_tokens, x.chunked, x.chunk_tokens,  # type: ignore[arg-type]
                               x.concurrency, x.draft_tokens, a, x.gpus, x.limits)  # type: ignore[arg-type]
        zero = 0.0 * m.tpot_s
        agg = DisaggregatedMetrics(**{f: getattr(m, f) for f in ServingMetrics.__dataclass_fields__},
                                   throttled=torch.zeros_like(m.tpot_s, dtype=torch.bool), kv_transfer_s=zero,
                                   prefill_rate=INF + zero, demand_rate=zero)
    if rows.disaggregated is not None:
        idx, x = rows.disaggregated
        kn, a = _rows(knobs, idx, rows.n), _rows(al, idx, rows.n)
        dis = disaggregated_loop_tokens(
            x.decode, x.prefill, kn, x.input_tokens, x.output_tokens, x.chunk_tokens, x.prefill_dp,  # type: ignore[arg-type]
            x.prefill_workers, x.decode_workers, x.kv_bytes, x.kv_link_bytes_s, x.concurrency, x.draft_tokens,
            a, x.gpus, x.limits)  # type: ignore[arg-type]
    if dis is None or agg is None:
        return dis if agg is None else agg  # type: ignore[return-value]
    # both kinds: each kind's rows into the full [n, ...] result
    return _scatter([(rows.aggregated[0], agg), (rows.disaggregated[0], dis)], rows.n)  # type: ignore[index,return-value]


def _scatter(parts: list[tuple[torch.Tensor, object]], n: int) -> object:
    """Results of disjoint row sets (row indices, result) as one result of n rows, field by field (a field's
    trailing dimensions broadcast over the parts)."""
    first = parts[0][1]
    if isinstance(first, torch.Tensor):
        vals = [v for _, v in parts]
        trailing = torch.broadcast_shapes(*(v.shape[1:] for v in vals))
        out = torch.empty((n, *trailing), dtype=first.dtype, device=first.device)
        for idx, v in parts:
            out[idx] = v.expand(idx.numel(), *trailing) if v.ndim else v
        return out
    return type(first)(**{f: _scatter([(idx, getattr(v, f)) for idx, v in parts], n)  # type: ignore[arg-type]
                          for f in first.__dataclass_fields__})
