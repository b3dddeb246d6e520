"""Efficiency knobs as tensors, so the torch model broadcasts them over a batch (the calibration fits them
with scipy least squares on finite differences, simulator/calibration/fit.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simulator.specs import EfficiencyKnobs

KNOB_NAMES = tuple(EfficiencyKnobs.model_fields)


@dataclass(frozen=True)
class KnobTensors:
    hbm_bandwidth_fraction: torch.Tensor
    compute_fraction: torch.Tensor
    link_bandwidth_fraction: torch.Tensor
    layer_pass_latency_us: torch.Tensor
    collective_latency_us: torch.Tensor
    step_latency_us: torch.Tensor
    moe_imbalance: torch.Tensor
    draft_pass_latency_us: torch.Tensor
    eager_layer_pass_latency_us: torch.Tensor
    request_overhead_us: torch.Tensor
    scale_out_latency_us: torch.Tensor
    scale_out_bandwidth_fraction: torch.Tensor
    route_repeat_fraction: torch.Tensor
    expert_popularity_cv: torch.Tensor

    @classmethod
    def from_spec(cls, knobs: EfficiencyKnobs) -> KnobTensors:
        return cls(**{n: torch.tensor(float(getattr(knobs, n)), dtype=torch.float64) for n in KNOB_NAMES})
