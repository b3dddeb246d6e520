"""The torch reference of the sweep: `simulator.evaluate.evaluate_points` (the one evaluation path) on a grid.

The grid is the cartesian product case x concurrency x draft tokens k x acceptance scale a, flattened
row-major in that order. A point is infeasible when C < 1, the case holds no request at its k
(`CaseBatch.max_batch` < 1), or k is outside [0, the case's K] (K = 0 without a draft); its metrics are NaN
and `feasible` is False. Concurrency above what the engine admits is queued (serving admission), not
infeasible.
"""

from __future__ import annotations

import torch

from simulator.batched import CaseBatch
from simulator.evaluate import evaluate_points

METRICS = ("interactivity", "tput_per_gpu", "output_tput_per_gpu", "step_s", "ttft_s")


def check_grid(batch: CaseBatch, concurrency: torch.Tensor, draft_tokens: torch.Tensor,
               acceptance_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three axes as 1-D float64 tensors on the batch's device, with clear errors."""
    axes = []
    for name, x in (("concurrency", concurrency), ("draft_tokens", draft_tokens),
                    ("acceptance_scale", acceptance_scale)):
        x = torch.as_tensor(x, dtype=torch.float64, device=batch.ops.device)
        if x.ndim != 1 or x.numel() == 0:
            raise ValueError(f"{name} must be a non-empty 1-D tensor, got shape {tuple(x.shape)}")
        axes.append(x)
    if not bool((axes[1] == axes[1].round()).all()):
        raise ValueError("draft_tokens must be whole numbers")
    return axes[0], axes[1], axes[2]


def evaluate_grid_torch(batch: CaseBatch, concurrency: torch.Tensor, draft_tokens: torch.Tensor,
                        acceptance_scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """All metrics on the full grid, each of shape [n_cases, n_c, n_k, n_a]."""
    n_c = torch.as_tensor(concurrency).numel()
    rows = torch.arange(batch.n_cases * n_c, device=batch.ops.device)
    res = evaluate_rows_torch(batch, rows, concurrency, draft_tokens, acceptance_scale)
    return {name: v.view(batch.n_cases, n_c, *v.shape[1:]) for name, v in res.items()}


def evaluate_rows_torch(batch: CaseBatch, rows: torch.Tensor, concurrency: torch.Tensor,
                        draft_tokens: torch.Tensor, acceptance_scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """All metrics of grid rows (row = case x n_c + concurrency index), each of shape [n_rows, n_k, n_a].

    Rows r0 .. r1 are the flat grid points r0 n_k n_a .. r1 n_k n_a - 1: a chunk of a sweep.
    """
    c, k, a = check_grid(batch, concurrency, draft_tokens, acceptance_scale)
    case = rows // c.numel()
    c, k, a = c[rows % c.numel()].view(-1, 1, 1), k.view(1, -1, 1), a.view(1, 1, -1)
    ev = evaluate_points(batch, case, c, k, a)
    shape = (rows.numel(), k.numel(), a.numel())
    out = {name: torch.where(ev.feasible, getattr(ev.metrics, name), torch.nan).expand(shape) for name in METRICS}
    return {**out, "feasible": ev.feasible.expand(shape)}


def unravel(flat: torch.Tensor, n_c: int, n_k: int, n_a: int) -> tuple[torch.Tensor, ...]:
    """(case, concurrency, k, acceptance) indices of flat grid indices."""
    return flat // (n_a * n_k * n_c), flat // (n_a * n_k) % n_c, flat // n_a % n_k, flat % n_a
