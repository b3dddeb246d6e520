"""Typed, validated specifications (pydantic v2, frozen), with units in the field names."""

from simulator.specs.calibration import Calibration
from simulator.specs.hardware import EfficiencyKnobs, EngineEfficiency, HardwareSpec, PeakTflops
from simulator.specs.model import (
    AttentionSpec,
    DraftModuleSpec,
    FfnSpec,
    GqaAttention,
    IndexerSpec,
    LayerGroup,
    LinearAttention,
    MlaAttention,
    ModelSpec,
)
from simulator.specs.serving import (
    AcceptanceSpec,
    DeploymentSpec,
    EngineLimits,
    Precision,
    ServingSpec,
    SpeculativeSpec,
    WorkloadSpec,
)

__all__ = [
    "Calibration",
    "AcceptanceSpec",
    "AttentionSpec",
    "DeploymentSpec",
    "DraftModuleSpec",
    "EfficiencyKnobs",
    "EngineEfficiency",
    "EngineLimits",
    "FfnSpec",
    "GqaAttention",
    "HardwareSpec",
    "IndexerSpec",
    "LayerGroup",
    "LinearAttention",
    "MlaAttention",
    "ModelSpec",
    "PeakTflops",
    "Precision",
    "ServingSpec",
    "SpeculativeSpec",
    "WorkloadSpec",
]
