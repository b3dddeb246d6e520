"""Sweep engine: lower cases to flat tensors, evaluate the grid (Triton kernel or torch reference), bin the frontier."""

from kernels.lowering import SCALAR_FIELDS, Case, CaseBatch, lower_cases
from kernels.reference import METRICS, evaluate_grid_torch, evaluate_rows_torch, unravel
from kernels.sweep_triton import Frontier, bytes_per_point, evaluate_points_triton, frontier_bins, sweep

__all__ = [
    "METRICS",
    "SCALAR_FIELDS",
    "Case",
    "CaseBatch",
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
