"""The torch reference of the sweep: `simulator.serving.closed_loop` broadcast over a lowered `CaseBatch`.

The grid is the cartesian product case x concurrency x draft tokens k x acceptance scale a, flattened
row-major in that order. Disaggregated cases run `serving.disaggregated_loop_tokens` instead. A point is infeasible when C < 1, the case holds no request (max_concurrency < 1),
or k is outside [0, the case's K] (K = 0 without a draft); its metrics are NaN and `feasible` is False.
Concurrency above max_concurrency is queued (serving.closed_loop admission), not infeasible.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

from simulator.acceptance import scaled_al
from simulator.batched import CaseBatch
from simulator.serving import closed_loop, disaggregated_loop_tokens
from simulator.specs import ServingSpec, WorkloadSpec
from simulator.speculative import StepTables

METRICS = ("interactivity", "tput_per_gpu", "output_tput_per_gpu", "step_s", "ttft_s")
Select = Callable[[torch.Tensor], torch.Tensor]


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


def _evaluate(batch: CaseBatch, sel: Select, c: torch.Tensor, k: torch.Tensor, a: torch.Tensor,
              workload: WorkloadSpec, serving: ServingSpec, disaggregated: bool) -> dict[str, torch.Tensor]:
    """Metrics of points whose per-case tensors `sel` picks; c, k, a broadcast against them. The cases are
    all one-worker (serving.closed_loop) or all disaggregated (serving.disaggregated_loop_tokens)."""
    tables = StepTables(batch.table(0, sel), batch.table(1, sel))  # a missing draft is a 0 s table
    raw = torch.take_along_dim(sel(batch.al), k.long().clamp(0, batch.al.shape[1] - 1)[..., None], -1)[..., 0]
    scale = sel(batch.scalar("acceptance_scale")) * a
    al = scaled_al(raw, scale, k)  # acceptance.al_table at scale spec.scale x a
    knobs, limits, gpus = batch.knob_tensors(sel), batch.step_limits(sel), sel(batch.scalar("gpus"))
    if disaggregated:
        def s(name: str) -> torch.Tensor:
            return sel(batch.scalar(name))
        m = disaggregated_loop_tokens(
            tables, StepTables(batch.table(2, sel), batch.table(3, sel)), knobs, workload.mean_input_tokens,
            workload.mean_output_tokens, serving.prefill_chunk_tokens, s("prefill_attention_dp"),
            s("prefill_workers"), s("decode_workers"), s("kv_bytes"), s("kv_link_bytes_s"), c, k, al, gpus, limits)
    else:
        m = closed_loop(tables, knobs, workload, serving, c, k, al, gpus, limits)
    # beyond max_concurrency the engine queues (serving.running_batch); a case holding no request is infeasible
    feasible = ((c >= 1.0) & (sel(batch.scalar("max_concurrency")) >= 1.0)
                & (sel(batch.scalar("prefill_max_concurrency")) >= 1.0)
                & (k >= 0.0) & (k <= sel(batch.scalar("max_draft_tokens"))))
    out = {name: torch.where(feasible, getattr(m, name), torch.nan) for name in METRICS}
    return {**out, "feasible": feasible & torch.ones_like(al, dtype=torch.bool)}


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
    case, shape = rows // c.numel(), (rows.numel(), k.numel(), a.numel())
    c, k, a = c[rows % c.numel()].view(-1, 1, 1), k.view(1, -1, 1), a.view(1, 1, -1)
    out: dict[str, torch.Tensor] = {}
    disagg = batch.scalar("disaggregated")[case] > 0.5
    for (g, (workload, serving)), d in itertools.product(enumerate(batch.servings), (False, True)):
        p = ((batch.serving_group[case] == g) & (disagg == d)).nonzero()[:, 0]
        if p.numel() == 0:
            continue
        res = _evaluate(batch, lambda x, i=case[p]: x[i].view(-1, 1, 1, *x.shape[1:]), c[p], k, a, workload, serving,
                        d)
        for name, v in res.items():
            out.setdefault(name, torch.empty(shape, dtype=v.dtype, device=v.device))[p] = v.expand(-1, *shape[1:])
    return out


def unravel(flat: torch.Tensor, n_c: int, n_k: int, n_a: int) -> tuple[torch.Tensor, ...]:
    """(case, concurrency, k, acceptance) indices of flat grid indices."""
    return flat // (n_a * n_k * n_c), flat // (n_a * n_k) % n_c, flat // n_a % n_k, flat % n_a
