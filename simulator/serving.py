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
    """Steady state of C requests decoding while finished ones are replaced and prefilled.

    Per step about a = C x AL / O requests finish and as many arrive. `separate` prefill: one prefill batch
    of max(a, 1) prompts stalls decoding every 1 / min(a, 1) steps. `chunked`: the a x I prompt tokens ride
    inside the decode pass.
    """
    c = torch.as_tensor(concurrency, dtype=torch.float64)
    k = torch.as_tensor(draft_tokens, dtype=torch.float64)
    al = torch.as_tensor(al, dtype=torch.float64)
    i_tok, o_tok = workload.mean_input_tokens, workload.mean_output_tokens
    ctx = torch.as_tensor(i_tok + o_tok / 2.0, dtype=torch.float64)
    arrivals = c * al / o_tok
    spec = k > 0
    batch_prefill = prefill_time_s(tables, knobs, torch.clamp(arrivals, min=1.0) * i_tok, i_tok,
                                   serving.prefill_chunk_tokens, spec)
    if serving.prefill_mode == "separate":
        step = decode_step_time_s(tables, knobs, c, k, ctx)
        stall = torch.clamp(arrivals, max=1.0) * batch_prefill
        ttft = batch_prefill + (step + stall) / 2.0
    else:
        step = decode_step_time_s(tables, knobs, c, k, ctx, extra_tokens=arrivals * i_tok)
        stall = torch.zeros_like(step)
        ttft = step * torch.clamp(torch.ceil(i_tok / torch.as_tensor(float(serving.prefill_chunk_tokens))),
                                  min=1.0) + step / 2.0
    effective = step + stall
    tpot = effective / al
    lifetime = ttft + o_tok * tpot
    gpus_t = torch.as_tensor(gpus, dtype=torch.float64)
    return ServingMetrics(
        step_s=step, stall_s=stall, tpot_s=tpot, ttft_s=ttft, interactivity=1.0 / tpot,
        tput_per_gpu=c * (i_tok + o_tok) / lifetime / gpus_t,
        output_tput_per_gpu=c * o_tok / lifetime / gpus_t, tokens_per_step=al,
    )
