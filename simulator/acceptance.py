"""Acceptance length AL(k): tokens a request gains per verify step with k drafted tokens (bonus included)."""

from __future__ import annotations

import torch

from simulator.specs import AcceptanceSpec


def al_from_conditional_rates(rates: list[float] | torch.Tensor) -> torch.Tensor:
    """AL(k) for k = 0..K from per-position conditional acceptance p_1..p_K: 1 + sum_i prod_{j<=i} p_j."""
    p = torch.as_tensor(rates, dtype=torch.float64)
    return torch.cat([torch.ones(1, dtype=torch.float64), 1.0 + torch.cumsum(torch.cumprod(p, 0), 0)])


def scaled_al(raw_al: torch.Tensor, scale: float | torch.Tensor, draft_tokens: torch.Tensor) -> torch.Tensor:
    """AL with its accepted part scaled by `scale` and kept in [1, k + 1]: min(1 + s (AL_raw - 1), k + 1).

    The one home of this formula: the torch model, the calibration and both sweep kernels call or mirror it.
    """
    return torch.minimum(1.0 + scale * (raw_al - 1.0), draft_tokens + 1.0)


def raw_al_table(spec: AcceptanceSpec) -> torch.Tensor:
    """The measured AL for k = 0..K (AL(0) = 1), before any acceptance scale."""
    if spec.conditional_rates is not None:
        return al_from_conditional_rates(spec.conditional_rates)
    return torch.tensor([1.0, *spec.al_by_draft_tokens], dtype=torch.float64)  # type: ignore[misc]


def al_table(spec: AcceptanceSpec, scale: float | torch.Tensor | None = None) -> torch.Tensor:
    """AL for k = 0..K (AL(0) = 1), the accepted part scaled by `scale` (default: the spec's) and kept in
    [1, k + 1]."""
    raw = raw_al_table(spec)
    s = torch.as_tensor(spec.scale if scale is None else scale, dtype=torch.float64)
    return scaled_al(raw, s, torch.arange(raw.numel(), dtype=torch.float64))


def acceptance_length(table: torch.Tensor, draft_tokens: torch.Tensor | int) -> torch.Tensor:
    """AL at k drafted tokens (k = 0 is no speculation: AL = 1)."""
    k = torch.as_tensor(draft_tokens, dtype=torch.long)
    if int(k.max()) >= table.numel():
        raise ValueError(f"draft_tokens={int(k.max())} exceeds the acceptance table (k <= {table.numel() - 1})")
    return table[k]
