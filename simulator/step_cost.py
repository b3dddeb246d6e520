"""Roofline time of one forward pass: per operator max(compute, memory), plus collectives and latency floors.

All functions are pure and broadcast over tensors: a `PassTable` with shape [..., n_ops] and inputs of
shape [...]. Nothing here knows about speculation or serving.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simulator.knobs import KnobTensors
from simulator.lowering import PassTable
from simulator.moe import expected_experts_touched


@dataclass(frozen=True)
class PassCost:
    """Seconds of one pass by term; `total_s` is their sum. `operator_s` has shape [..., n_ops]."""

    operator_s: torch.Tensor
    compute_bound: torch.Tensor
    comm_s: torch.Tensor
    latency_s: torch.Tensor

    @property
    def total_s(self) -> torch.Tensor:
        return self.operator_s.sum(-1) + self.comm_s + self.latency_s


def pass_cost(t: PassTable, knobs: KnobTensors, requests: torch.Tensor, tokens: torch.Tensor,
              context: torch.Tensor) -> PassCost:
    """Cost of a pass over `tokens` tokens from `requests` requests at mean context `context` tokens.

    Attention operators (dp_sharded) see the busiest DP-attention rank's share of requests; MoE experts
    see all tokens (gathered), touching the expected number of distinct local experts.
    """
    requests, tokens, context = (torch.as_tensor(x, dtype=torch.float64) for x in (requests, tokens, context))
    share = torch.maximum(1.0 / t.attention_dp, 1.0 / torch.clamp(requests, min=1.0))
    rank = (t.dp_sharded * share[..., None] + (1.0 - t.dp_sharded))  # [..., n_ops]
    tok = tokens[..., None] * rank
    req = requests[..., None] * rank
    ctx = torch.minimum(t.ctx_scale * context[..., None] + t.ctx_offset, t.ctx_cap)
    imbalance = 1.0 + t.moe * (knobs.moe_imbalance[..., None] - 1.0)
    flops = (t.flops_per_token * tok + t.flops_per_token_ctx * tok * ctx) * imbalance
    touched = expected_experts_touched(t.experts_local, t.route_prob, tokens[..., None])
    bytes_ = (t.weight_bytes + t.expert_bytes * touched + t.bytes_per_token * tok
              + t.bytes_per_request_ctx * req * ctx + t.bytes_per_request * req)
    compute_s = flops / (t.peak_flops * knobs.compute_fraction[..., None])
    memory_s = bytes_ / (t.hbm_bytes_s[..., None] * knobs.hbm_bandwidth_fraction[..., None])
    comm_s = (t.comm_bytes_per_token * tokens / (t.link_bytes_s * knobs.link_bandwidth_fraction)
              + t.collectives * knobs.collective_latency_us * 1e-6)
    latency_s = t.layer_passes * knobs.layer_pass_latency_us * 1e-6
    return PassCost(torch.maximum(compute_s, memory_s), compute_s >= memory_s, comm_s, latency_s)


def pass_time_s(t: PassTable, knobs: KnobTensors, requests: torch.Tensor, tokens: torch.Tensor,
                context: torch.Tensor) -> torch.Tensor:
    return pass_cost(t, knobs, requests, tokens, context).total_s

