"""Sweep engine: evaluate the grid of lowered cases (Triton kernel or torch reference), bin the frontier."""

from kernels.reference import METRICS, evaluate_grid_torch, evaluate_rows_torch, unravel
from kernels.sweep_triton import Frontier, bytes_per_point, evaluate_points_triton, frontier_bins, sweep
from simulator.batched import SCALAR_FIELDS, Case, CaseBatch, CaseKey, lower_cases

__all__ = [
    "METRICS",
    "SCALAR_FIELDS",
    "Case",
    "CaseBatch",
    "CaseKey",
    "Frontier",
    "bytes_per_point",
    "evaluate_grid_torch",
    "evaluate_rows_torch",
    "evaluate_points_triton",
    "frontier_bins",
    "lower_cases",
    "sweep",
    "unravel",
]
