"""A decode step as engines run it: the verify (or plain decode) pass, the draft passes, sampling, bookkeeping.

With k drafted tokens per request and batch B (SGLang EAGLE worker, vLLM EagleProposer, TensorRT-LLM MTP):
- draft extend: one draft pass over the B x (k + 1) positions the last verify produced (SGLang runs it over
  speculative_num_steps + 1 tokens per request, padded under CUDA graphs; vLLM's first proposer pass runs
  over every verified position), which refreshes the draft's KV and proposes draft token 1;
- k - 1 draft decode passes over B tokens (draft tokens 2..k);
- verify: one target pass over B x (k + 1) tokens (a linear-attention layer writes its recurrent state after
  each of the k + 1 positions, so a rejected draft can roll back);
- sampling: vocabulary-wide softmax / argmax / accept-reject over B x (k + 1) verify positions, plus B top-1
  positions per draft pass (also B positions for plain decode);
- bookkeeping: per-request host work the scheduler cannot overlap while speculating.
Each pass runs under CUDA graphs unless the batch exceeds the engine's capture limit (then eagerly).
Cost of the step (here) is kept apart from the tokens it yields (acceptance.py): the serving loop combines them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simulator.knobs import KnobTensors
from simulator.lowering import PassTable
from simulator.step_cost import PassCost, busiest_rank_share, link_knobs, pass_cost

INF = float("inf")
# A prefill (extend) pass runs without CUDA graphs: its shapes vary with the prompts, and the engines capture
# decode batches only (SGLang's piecewise prefill graphs do not cover the sparse-attention MLA models, sglang
# issues #18148 and #23842; prompt chunks of 1k-32k tokens exceed vLLM's largest capture size). So a prefill pass
# takes at least its layers' eager launch time (EfficiencyKnobs.eager_layer_pass_latency_us): a short prompt's
# prefill is launch-bound (SGLang PR #12160: a one-token DeepSeek-V3 prefill, 82.6 ms eager).
PREFILL_EAGER = 1.0


@dataclass(frozen=True)
class StepTables:
    target: PassTable
    draft: PassTable | None  # None: the model has no draft module (only k = 0 is possible)


@dataclass(frozen=True)
class StepTerms:
    """Seconds of one decode step by term; `total_s` is their sum."""

    verify: PassCost  # the target pass over B x (k + 1) tokens (plain decode at k = 0)
    draft_extend_s: torch.Tensor
    draft_decode_s: torch.Tensor
    sampling_s: torch.Tensor
    bookkeeping_s: torch.Tensor
    step_latency_s: torch.Tensor
    eager: torch.Tensor  # 1 where the step ran without CUDA graphs

    @property
    def total_s(self) -> torch.Tensor:
        return (self.verify.total_s + self.draft_extend_s + self.draft_decode_s + self.sampling_s
                + self.bookkeeping_s + self.step_latency_s)


def runs_eager(batch: torch.Tensor, draft_tokens: torch.Tensor, attention_dp: torch.Tensor,
               graph_max_batch: torch.Tensor | float, graph_counts_tokens: torch.Tensor | float) -> torch.Tensor:
    """1 where the decode batch exceeds the largest captured CUDA graph, else 0.

    SGLang / TensorRT-LLM capture per attention-DP rank batch sizes; vLLM (`graph_counts_tokens` = 1) captures
    token counts B x (1 + k) (engine_settings.yaml header: cuda_graph_max_bs).
    """
    per_rank = torch.ceil(batch / attention_dp)
    size = per_rank * (1.0 + torch.as_tensor(graph_counts_tokens, dtype=torch.float64) * draft_tokens)
    return (size > torch.as_tensor(graph_max_batch, dtype=torch.float64)).to(torch.float64)


def sampling_time_s(t: PassTable, knobs: KnobTensors, requests: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Seconds to gather and sample `positions` vocabulary-wide logit rows of `requests` requests (lowering.
    LOGIT_PASSES): HBM bytes on the busiest attention-DP rank plus the TP all-gather of the logits."""
    rows = positions * busiest_rank_share(requests, t.attention_dp)
    link_f, _ = link_knobs(t, knobs)
    return (rows * t.logits_bytes_per_token / (t.hbm_bytes_s * knobs.hbm_bandwidth_fraction)
            + rows * t.logits_comm_bytes_per_token / (t.link_bytes_s * link_f))


def _no_draft(tables: StepTables, k: torch.Tensor) -> None:
    if tables.draft is None and bool((k > 0).any()):
        raise ValueError("this model has no draft (MTP/EAGLE) module: draft_tokens must be 0")


def decode_step_terms(tables: StepTables, knobs: KnobTensors, batch: torch.Tensor, draft_tokens: torch.Tensor,
                      context: torch.Tensor, extra_tokens: torch.Tensor | float = 0.0,
                      graph_max_batch: torch.Tensor | float = INF,
                      graph_counts_tokens: torch.Tensor | float = 0.0,
                      speculation_overlapped: torch.Tensor | float = 0.0) -> StepTerms:
    """The named terms of one decode step of `batch` requests with k = `draft_tokens` (k = 0: plain decode,
    identical with or without a draft table). `extra_tokens` ride in the verify pass (chunked prefill).
    `speculation_overlapped` = 1: the overlap scheduler hides the per-request bookkeeping (EngineLimits)."""
    f64 = torch.float64
    batch = torch.as_tensor(batch, dtype=f64)
    k = torch.as_tensor(draft_tokens, dtype=f64)
    _no_draft(tables, k)
    spec = (k > 0).to(f64)
    eager = runs_eager(batch, k, tables.target.attention_dp, graph_max_batch, graph_counts_tokens)
    positions = batch * (k + 1.0)
    # linear attention keeps each request's state after every verified position (rollback to the accepted one):
    # SGLang's intermediate_ssm_state_cache (draft tokens per slot), vLLM's 1 + k states per step
    verify = pass_cost(tables.target, knobs, batch, positions + extra_tokens, context, eager=eager,
                       state_writes=k + 1.0)
    sampling = sampling_time_s(tables.target, knobs, batch, positions)
    zero = torch.zeros_like(verify.total_s)
    extend = decode = zero
    if tables.draft is not None:
        d, floor = tables.draft, knobs.draft_pass_latency_us
        extend = spec * pass_cost(d, knobs, batch, positions, context, floor, eager).total_s
        one = pass_cost(d, knobs, batch, batch, context, floor, eager).total_s
        decode = torch.clamp(k - 1.0, min=0.0) * one
        sampling = sampling + k * sampling_time_s(d, knobs, batch, batch)
    hidden = torch.as_tensor(speculation_overlapped, dtype=f64)
    bookkeeping = spec * (1.0 - hidden) * batch * knobs.request_overhead_us * 1e-6
    return StepTerms(verify, extend + zero, decode + zero, sampling + zero, bookkeeping + zero,
                     knobs.step_latency_us * 1e-6 + zero, eager + zero)


def decode_step_time_s(tables: StepTables, knobs: KnobTensors, batch: torch.Tensor,
                       draft_tokens: torch.Tensor, context: torch.Tensor,
                       extra_tokens: torch.Tensor | float = 0.0, graph_max_batch: torch.Tensor | float = INF,
                       graph_counts_tokens: torch.Tensor | float = 0.0,
                       speculation_overlapped: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Seconds of one decode step (the sum of `decode_step_terms`)."""
    return decode_step_terms(tables, knobs, batch, draft_tokens, context, extra_tokens, graph_max_batch,
                             graph_counts_tokens, speculation_overlapped).total_s


def prefill_time_s(tables: StepTables, knobs: KnobTensors, tokens: torch.Tensor,
                   input_tokens: torch.Tensor | float, chunk_tokens: torch.Tensor | float,
                   with_draft: torch.Tensor | bool) -> torch.Tensor:
    """Seconds to prefill `tokens` prompt tokens (prompts of `input_tokens`) in chunks of `chunk_tokens`.

    Each chunk is one pass (weights re-read, latency floors paid again), run eagerly (`PREFILL_EAGER`: at least
    its layers' launch time); attention sees the causal mean context input/2. With speculation the draft module
    also runs once over the prompt (its own KV cache).
    """
    tokens = torch.as_tensor(tokens, dtype=torch.float64)
    chunks = torch.clamp(torch.ceil(tokens / chunk_tokens), min=1.0)
    per_chunk = tokens / chunks
    requests = per_chunk / input_tokens
    ctx = torch.as_tensor(input_tokens, dtype=torch.float64) / 2.0
    t = pass_cost(tables.target, knobs, requests, per_chunk, ctx, eager=PREFILL_EAGER).total_s
    if tables.draft is not None:
        w = torch.as_tensor(with_draft, dtype=torch.float64)
        t = t + w * pass_cost(tables.draft, knobs, requests, per_chunk, ctx, knobs.draft_pass_latency_us,
                              PREFILL_EAGER).total_s
    return chunks * (t + knobs.step_latency_us * 1e-6)
