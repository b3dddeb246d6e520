"""Acceptance length AL(k): tokens a request gains per verify step with k drafted tokens (bonus included)."""

from __future__ import annotations

import torch

from simulator.specs import AcceptanceSpec


def al_from_conditional_rates(rates: list[float] | torch.Tensor) -> torch.Tensor:
    """AL(k) for k = 0..K from per-position conditional acceptance p_1..p_K: 1 + sum_i prod_{j<=i} p_j."""
    p = torch.as_tensor(rates, dtype=torch.float64)
    return torch.cat([torch.ones(1, dtype=torch.float64), 1.0 + torch.cumsum(torch.cumprod(p, 0), 0)])


def al_iid(rate: float | torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
    """Leviathan et al. (2023): AL(k) = (1 - a^(k+1)) / (1 - a) for i.i.d. acceptance a."""
    a = torch.as_tensor(rate, dtype=torch.float64)
    k = torch.as_tensor(k, dtype=torch.float64)
    return torch.where(a >= 1.0, k + 1.0, (1.0 - a ** (k + 1.0)) / (1.0 - torch.clamp(a, max=1 - 1e-12)))


def al_table(spec: AcceptanceSpec, scale: float | torch.Tensor | None = None) -> torch.Tensor:
    """AL for k = 0..K (AL(0) = 1), the accepted part scaled by `scale` (default: the spec's) and kept in
    [1, k + 1]."""
    if spec.conditional_rates is not None:
        raw = al_from_conditional_rates(spec.conditional_rates)
    else:
        raw = torch.tensor([1.0, *spec.al_by_draft_tokens], dtype=torch.float64)  # type: ignore[misc]
    s = torch.as_tensor(spec.scale if scale is None else scale, dtype=torch.float64)
    k = torch.arange(raw.numel(), dtype=torch.float64)
    return torch.minimum(1.0 + s * (raw - 1.0), k + 1.0)


def acceptance_length(table: torch.Tensor, draft_tokens: torch.Tensor | int) -> torch.Tensor:
    """AL at k drafted tokens (k = 0 is no speculation: AL = 1)."""
    k = torch.as_tensor(draft_tokens, dtype=torch.long)
    if int(k.max()) >= table.numel():
        raise ValueError(f"draft_tokens={int(k.max())} exceeds the acceptance table (k <= {table.numel() - 1})")
    return table[k]
