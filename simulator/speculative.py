"""A speculative decode step: k sequential draft passes over B tokens + one verify pass over B x (k + 1).

Cost of the step (here) is kept apart from the tokens it yields (acceptance.py): the serving loop
combines them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simulator.knobs import KnobTensors
from simulator.lowering import PassTable
from simulator.step_cost import pass_time_s


@dataclass(frozen=True)
class StepTables:
    target: PassTable
    draft: PassTable | None  # None: the model has no draft module (only k = 0 is possible)


def draft_time_s(tables: StepTables, knobs: KnobTensors, batch: torch.Tensor, draft_tokens: torch.Tensor,
                 context: torch.Tensor) -> torch.Tensor:
    k = torch.as_tensor(draft_tokens, dtype=torch.float64)
    if tables.draft is None:
        if bool((k > 0).any()):
            raise ValueError("this model has no draft (MTP/EAGLE) module: draft_tokens must be 0")
        return torch.zeros_like(k * batch)
    return k * pass_time_s(tables.draft, knobs, batch, batch, context)


def decode_step_time_s(tables: StepTables, knobs: KnobTensors, batch: torch.Tensor,
                       draft_tokens: torch.Tensor, context: torch.Tensor,
                       extra_tokens: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Seconds of one decode step of `batch` requests (k = 0: plain decode). `extra_tokens` ride in the
    verify pass (chunked prefill)."""
    batch = torch.as_tensor(batch, dtype=torch.float64)
    k = torch.as_tensor(draft_tokens, dtype=torch.float64)
    verify = pass_time_s(tables.target, knobs, batch, batch * (k + 1.0) + extra_tokens, context)
    return verify + draft_time_s(tables, knobs, batch, k, context) + knobs.step_latency_us * 1e-6


def prefill_time_s(tables: StepTables, knobs: KnobTensors, tokens: torch.Tensor,
                   input_tokens: torch.Tensor | float, chunk_tokens: torch.Tensor | float,
                   with_draft: torch.Tensor | bool) -> torch.Tensor:
    """Seconds to prefill `tokens` prompt tokens (prompts of `input_tokens`) in chunks of `chunk_tokens`.

    Each chunk is one pass (weights re-read, latency floors paid again); attention sees the causal mean
    context input/2. With speculation the draft module also runs once over the prompt (its own KV cache).
    """
    tokens = torch.as_tensor(tokens, dtype=torch.float64)
    chunks = torch.clamp(torch.ceil(tokens / chunk_tokens), min=1.0)
    per_chunk = tokens / chunks
    requests = per_chunk / input_tokens
    ctx = torch.as_tensor(input_tokens, dtype=torch.float64) / 2.0
    t = pass_time_s(tables.target, knobs, requests, per_chunk, ctx)
    if tables.draft is not None:
        w = torch.as_tensor(with_draft, dtype=torch.float64)
        t = t + w * pass_time_s(tables.draft, knobs, requests, per_chunk, ctx)
    return chunks * (t + knobs.step_latency_us * 1e-6)
