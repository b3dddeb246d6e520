"""The benchmark's closed loop at concurrency C: admission, decode steps, prefill of arriving requests, TTFT.

Definitions follow reference/methodology.md: interactivity = 1 / TPOT (TTFT excluded); throughput per GPU
= (input + output tokens) / s / GPUs, by Little's law over a request's lifetime.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simulator.knobs import KnobTensors
from simulator.specs import EngineLimits, ServingSpec, WorkloadSpec
from simulator.speculative import INF, StepTables, StepTerms, decode_step_terms, prefill_time_s


@dataclass(frozen=True)
class StepLimits:
    """The engine limits the loop obeys, as tensors: `max_batch` = most requests running at once (KV memory,
    max_running_requests), `max_step_tokens` = per-step token budget, and the CUDA-graph capture limit."""

    max_batch: torch.Tensor
    max_step_tokens: torch.Tensor
    graph_max_batch: torch.Tensor
    graph_counts_tokens: torch.Tensor

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
                   torch.tensor(float(limits.cuda_graph_counts_tokens), dtype=torch.float64))


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
    pass. Prefill chunks never exceed the per-step token budget.
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
                              lim.graph_counts_tokens)
    step = terms.total_s
    stall = (1.0 - mixed) * torch.clamp(arrivals, max=1.0) * batch_prefill
    effective = step + stall
    wait = (1.0 - mixed) * batch_prefill + mixed * step * torch.clamp(torch.ceil(i_tok / chunk), min=1.0)
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
