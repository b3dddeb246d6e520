"""The benchmark's closed loop at concurrency C: decode steps, prefill of arriving requests, TTFT, metrics.

Definitions follow reference/methodology.md: interactivity = 1 / TPOT (TTFT excluded); throughput per GPU
= (input + output tokens) / s / GPUs, by Little's law over a request's lifetime.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simulator.knobs import KnobTensors
from simulator.specs import ServingSpec, WorkloadSpec
from simulator.speculative import StepTables, decode_step_time_s, prefill_time_s


@dataclass(frozen=True)
class ServingMetrics:
    """Tensors over the evaluated points; times in seconds, throughputs in tokens/s."""

    step_s: torch.Tensor  # one draft + verify (or plain decode) step
    stall_s: torch.Tensor  # prefill time charged to each step
    tpot_s: torch.Tensor
    ttft_s: torch.Tensor
    interactivity: torch.Tensor  # tok/s/user
    tput_per_gpu: torch.Tensor  # input + output tokens
    output_tput_per_gpu: torch.Tensor
    tokens_per_step: torch.Tensor  # AL


def closed_loop(tables: StepTables, knobs: KnobTensors, workload: WorkloadSpec, serving: ServingSpec,
                concurrency: torch.Tensor, draft_tokens: torch.Tensor, al: torch.Tensor,
                gpus: int | torch.Tensor) -> ServingMetrics:
    """Steady state of C requests decoding while finished ones are replaced and prefilled (one workload)."""
    return closed_loop_tokens(tables, knobs, workload.mean_input_tokens, workload.mean_output_tokens,
                              serving.prefill_mode == "chunked", serving.prefill_chunk_tokens, concurrency,
                              draft_tokens, al, gpus)


def closed_loop_tokens(tables: StepTables, knobs: KnobTensors, input_tokens: torch.Tensor | float,
                       output_tokens: torch.Tensor | float, chunked: torch.Tensor | bool,
                       chunk_tokens: torch.Tensor | float, concurrency: torch.Tensor,
                       draft_tokens: torch.Tensor, al: torch.Tensor, gpus: int | torch.Tensor) -> ServingMetrics:
    """The closed loop with the workload's mean input/output tokens and the prefill mode as tensors.

    Per step about a = C x AL / O requests finish and as many arrive. Separate prefill: one prefill batch
    of max(a, 1) prompts stalls decoding every 1 / min(a, 1) steps; TTFT = that batch plus, on average,
    half a step of waiting. Chunked (`chunked` = 1): the a x I prompt tokens ride inside the decode pass.
    """
    f64 = torch.float64
    c = torch.as_tensor(concurrency, dtype=f64)
    k = torch.as_tensor(draft_tokens, dtype=f64)
    al = torch.as_tensor(al, dtype=f64)
    i_tok, o_tok = torch.as_tensor(input_tokens, dtype=f64), torch.as_tensor(output_tokens, dtype=f64)
    mixed = torch.as_tensor(chunked, dtype=f64)
    chunk = torch.as_tensor(chunk_tokens, dtype=f64)
    ctx = i_tok + o_tok / 2.0
    arrivals = c * al / o_tok
    batch_prefill = prefill_time_s(tables, knobs, torch.clamp(arrivals, min=1.0) * i_tok, i_tok, chunk, k > 0)
    step = decode_step_time_s(tables, knobs, c, k, ctx, extra_tokens=mixed * arrivals * i_tok)
    stall = (1.0 - mixed) * torch.clamp(arrivals, max=1.0) * batch_prefill
    effective = step + stall
    wait = (1.0 - mixed) * batch_prefill + mixed * step * torch.clamp(torch.ceil(i_tok / chunk), min=1.0)
    ttft = wait + effective / 2.0
    tpot = effective / al
    lifetime = ttft + o_tok * tpot
    gpus_t = torch.as_tensor(gpus, dtype=f64)
    return ServingMetrics(
        step_s=step, stall_s=stall, tpot_s=tpot, ttft_s=ttft, interactivity=1.0 / tpot,
        tput_per_gpu=c * (i_tok + o_tok) / lifetime / gpus_t,
        output_tput_per_gpu=c * o_tok / lifetime / gpus_t, tokens_per_step=al,
    )
