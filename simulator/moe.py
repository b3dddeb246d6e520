"""Distinct experts a batch touches on one expert-parallel rank: the mean rank, and the busiest of the EP ranks;
the routing draws a pass's tokens amount to when consecutive tokens of one request share experts."""

from __future__ import annotations

from statistics import NormalDist

import torch


def busiest_rank_z(ranks: int) -> float:
    """Standard-normal score of the largest of `ranks` i.i.d. draws, Blom's approximation
    Phi^-1((R - 0.375) / (R + 0.25)) (Blom 1958, "Statistical estimates and transformed beta-variables"): 0.590,
    1.049, 1.434, 1.769, 2.067 at R = 2, 4, 8, 16, 32 against the exact expected maxima 0.564, 1.029, 1.424,
    1.766, 2.070. 0 for one rank."""
    if ranks <= 1:
        return 0.0
    return NormalDist().inv_cdf((ranks - 0.375) / (ranks + 0.25))


def routing_draws(requests: torch.Tensor | float, tokens: torch.Tensor | float,
                  repeat_fraction: torch.Tensor | float) -> torch.Tensor:
    """Independent routing draws that `tokens` tokens of `requests` requests amount to: a request's first token
    routes afresh, and each later token of the same request (the k + 1 positions of a verify pass, a prompt's
    chunk) keeps `repeat_fraction` of its previous token's experts and draws the rest afresh, so it adds
    1 - `repeat_fraction` of a draw: R + (T - R)(1 - rho). Tokens of different requests stay independent, so a
    plain decode batch (T = R) is unchanged; rho = 0 is the uniform model. Consecutive tokens repeat their
    experts more often than chance (Cohere, "Why MoE models get more from speculative decoding", 2026: a verify
    pass's 4 tokens load ~2.5x one token's experts, not 4x; Mixtral of Experts, arXiv 2401.04088, section 5);
    rho is fitted (`EfficiencyKnobs.route_repeat_fraction`, prior 0.45)."""
    requests, tokens, rho = (torch.as_tensor(x, dtype=torch.float64) for x in (requests, tokens, repeat_fraction))
    return torch.minimum(requests, tokens) + torch.clamp(tokens - requests, min=0.0) * (1.0 - rho)


def expected_experts_touched(experts: torch.Tensor | float, route_prob: torch.Tensor | float,
                             tokens: torch.Tensor | float, rank_z: torch.Tensor | float = 0.0,
                             popularity_cv: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Distinct experts (of the `experts` on one EP rank) hit by T tokens routing to k of E each. Under uniform
    routing each local expert is hit with probability q = 1 - (1 - k/E)^T = 1 - exp(-lambda T), lambda =
    -log(1 - k/E), so a rank touches E_local q on average (docs/sources.md#serving-model-priors). Real routers
    favour some experts: with each expert's rate lambda m, its popularity m gamma-distributed with mean 1 and
    coefficient of variation c = `popularity_cv` (shape 1 / c^2), the miss probability averages to the gamma's
    Laplace transform, (1 + lambda T c^2)^(-1 / c^2): fewer distinct experts for the same tokens (c = 0: uniform).
    It treats hits as independent, so a lone token counts k (1 - c^2 k / 2E) experts instead of exactly k (3 % low
    at c = 1.5 and k/E = 8/256); from T = 4 on it is within 3 % of a Monte Carlo of top-k routing.
    Every rank reads the experts its tokens hit and the layer waits for the busiest one: `rank_z`
    (busiest_rank_z(EP), 0 without EP) adds that many standard deviations of the per-rank count,
    sqrt(E_local q (1 - q)), capped at E_local. The compute skew of the busiest rank is the separate
    `moe_imbalance` knob."""
    experts, route_prob, tokens, rank_z, cv = (torch.as_tensor(x, dtype=torch.float64)
                                               for x in (experts, route_prob, tokens, rank_z, popularity_cv))
    rate_t = -torch.log(1.0 - route_prob) * tokens
    c2 = cv * cv
    # -log(miss probability): log(1 + lambda T c^2) / c^2 (gamma popularity), lambda T at c = 0 (uniform)
    exponent = torch.where(c2 > 0.0, torch.log(1.0 + rate_t * c2) / torch.where(c2 > 0.0, c2, 1.0), rate_t)
    q = 1.0 - torch.exp(-exponent)
    spread = rank_z * torch.sqrt(torch.clamp(experts * q * (1.0 - q), min=0.0))
    return torch.minimum(experts * q + spread, experts)
