"""Roofline time of one forward pass: per operator max(compute, memory), plus collectives and latency floors.

All functions are pure and broadcast over tensors: a `PassTable` with shape [..., n_ops] and inputs of
shape [...]. Nothing here knows about speculation or serving.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simulator.knobs import KnobTensors
from simulator.lowering import PassTable
from simulator.moe import expected_experts_touched, routing_draws


@dataclass(frozen=True)
class PassCost:
    """Seconds of one pass by term; `total_s` is their sum. Per-operator tensors have shape [..., n_ops].

    `operator_s` = max(`compute_s`, `weight_s` + `kv_s` + `activation_s`) per operator (the memory time
    split by what the bytes are). `eager_s` is what a pass run without CUDA graphs adds: its kernels'
    host launch time beyond the GPU's own time (0 under graphs).
    """

    operator_s: torch.Tensor
    compute_bound: torch.Tensor
    comm_s: torch.Tensor
    latency_s: torch.Tensor
    compute_s: torch.Tensor
    weight_s: torch.Tensor
    kv_s: torch.Tensor
    activation_s: torch.Tensor
    eager_s: torch.Tensor

    @property
    def gpu_s(self) -> torch.Tensor:
        return self.operator_s.sum(-1) + self.comm_s + self.latency_s

    @property
    def total_s(self) -> torch.Tensor:
        return self.gpu_s + self.eager_s


# ceil(n / DP) of whole numbers carried in float64 (e.g. C / y of a cluster's split) may land a hair above the
# integer it should be; this slack, far below one request, keeps an exact multiple at n / DP
CEIL_SLACK = 1e-9


def busiest_rank_share(requests: torch.Tensor, attention_dp: torch.Tensor) -> torch.Tensor:
    """Share of a pass's requests on its busiest DP-attention rank: ceil(n / DP) of n requests (a count DP
    does not divide runs its busiest rank one request fuller, the benchmark's c = 180 on DEP32), the whole
    pass below one request. 1 / DP when DP divides n."""
    n = torch.clamp(torch.as_tensor(requests, dtype=torch.float64), min=1.0)
    return torch.clamp(torch.ceil(n / attention_dp - CEIL_SLACK) / n, max=1.0)


def link_knobs(t: PassTable, knobs: KnobTensors) -> tuple[torch.Tensor, torch.Tensor]:
    """(achieved fraction of `link_bytes_s`, latency per collective in us) of the pass's collectives: the
    scale-up knobs, or the scale-out (NIC) knobs where the pass's collectives cross the NICs."""
    s = t.scale_out
    fraction = knobs.link_bandwidth_fraction + s * (knobs.scale_out_bandwidth_fraction - knobs.link_bandwidth_fraction)
    latency = knobs.collective_latency_us + s * (knobs.scale_out_latency_us - knobs.collective_latency_us)
    return fraction, latency


def pass_cost(t: PassTable, knobs: KnobTensors, requests: torch.Tensor, tokens: torch.Tensor,
              context: torch.Tensor, layer_latency_us: torch.Tensor | None = None,
              eager: torch.Tensor | float = 0.0, state_writes: torch.Tensor | float = 1.0) -> PassCost:
    """Cost of a pass over `tokens` tokens from `requests` requests at mean context `context` tokens.

    Attention operators (dp_sharded) see the busiest DP-attention rank's share of requests (ceil(n / DP) of n,
    `busiest_rank_share`); MoE experts see all tokens (gathered), touching the expected number of distinct
    local experts on the busiest EP rank (moe.expected_experts_touched) over the routing draws the tokens amount
    to (moe.routing_draws: a request's consecutive tokens share experts). The latency floor is
    `layer_latency_us` (default: the knobs' per-layer floor) per layer pass. `eager` = 1: the pass runs
    without CUDA graphs; the host issues each layer in `eager_layer_pass_latency_us` while the GPU works
    asynchronously, so the pass takes max(GPU time, launch time) (never less than under graphs).
    `state_writes`: copies of each request's recurrent state the pass writes after reading it once (1: the
    final state; a verify pass over k + 1 positions keeps the state after each of them, for rollback).
    """
    requests, tokens, context = (torch.as_tensor(x, dtype=torch.float64) for x in (requests, tokens, context))
    share = busiest_rank_share(requests, t.attention_dp)
    rank = (t.dp_sharded * share[..., None] + (1.0 - t.dp_sharded))  # [..., n_ops]
    tok = tokens[..., None] * rank
    req = requests[..., None] * rank
    ctx = torch.minimum(t.ctx_scale * context[..., None] + t.ctx_offset, t.ctx_cap)
    imbalance = 1.0 + t.imbalance_weight * (knobs.moe_imbalance[..., None] - 1.0)
    flops = (t.flops_per_token * tok + t.flops_per_token_ctx * tok * ctx) * imbalance
    draws = routing_draws(requests, tokens, knobs.route_repeat_fraction)  # consecutive tokens share experts
    touched = expected_experts_touched(t.experts_local, t.route_prob, draws[..., None], t.busiest_rank_z,
                                       knobs.expert_popularity_cv[..., None])
    hbm = t.hbm_bytes_s[..., None] * knobs.hbm_bandwidth_fraction[..., None]
    weight_s = (t.weight_bytes + t.expert_bytes * touched) / hbm
    writes = torch.as_tensor(state_writes, dtype=torch.float64)[..., None]
    kv_s = (t.bytes_per_request_ctx * req * ctx + t.bytes_per_request * req * (1.0 + writes)) / hbm
    activation_s = t.bytes_per_token * tok / hbm
    compute_s = flops / (t.peak_flops * knobs.compute_fraction[..., None])
    memory_s = weight_s + kv_s + activation_s
    link_f, coll_us = link_knobs(t, knobs)
    comm_s = t.comm_bytes_per_token * tokens / (t.link_bytes_s * link_f) + t.collectives * coll_us * 1e-6
    floor_us = knobs.layer_pass_latency_us if layer_latency_us is None else layer_latency_us
    latency_s = t.layer_passes * floor_us * 1e-6
    operator_s = torch.maximum(compute_s, memory_s)
    gpu_s = operator_s.sum(-1) + comm_s + latency_s
    launch_s = t.layer_passes * knobs.eager_layer_pass_latency_us * 1e-6
    eager_s = torch.as_tensor(eager, dtype=torch.float64) * torch.clamp(launch_s - gpu_s, min=0.0)
    return PassCost(operator_s, compute_s >= memory_s, comm_s, latency_s, compute_s, weight_s, kv_s,
                    activation_s, eager_s)


def pass_time_s(t: PassTable, knobs: KnobTensors, requests: torch.Tensor, tokens: torch.Tensor,
                context: torch.Tensor, layer_latency_us: torch.Tensor | None = None,
                eager: torch.Tensor | float = 0.0, state_writes: torch.Tensor | float = 1.0) -> torch.Tensor:
    return pass_cost(t, knobs, requests, tokens, context, layer_latency_us, eager, state_writes).total_s
