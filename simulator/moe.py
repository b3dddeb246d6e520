"""Expected number of distinct experts a batch touches."""

from __future__ import annotations

import torch


def expected_experts_touched(experts: torch.Tensor | float, route_prob: torch.Tensor | float,
                             tokens: torch.Tensor | float) -> torch.Tensor:
    """E x (1 - (1 - k/E)^T): distinct experts (of `experts` on this GPU) hit by T tokens routing to k of E
    each, under uniform routing (docs/sources.md#serving-model-priors). Skew is the separate `moe_imbalance` knob."""
    experts, route_prob, tokens = (torch.as_tensor(x, dtype=torch.float64) for x in (experts, route_prob, tokens))
    return experts * (1.0 - torch.pow(1.0 - route_prob, tokens))
