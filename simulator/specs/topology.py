"""Beyond one node: the scale-out network per GPU, and deployment shapes that span nodes or pools.

- `ScaleOutSpec`: one NIC per GPU into a switched InfiniBand/RoCE fabric (docs/sources.md#scale-out-network);
  its per-message latency and achieved bandwidth are efficiency knobs with the priors below.
- `WorkerSpec`: one engine instance (TP GPUs; EP and DP-attention reuse them), which may span nodes or
  an NVL72 domain (DEP16, DEP32) and may carry EPLB redundant expert slots.
- `DisaggregatedSpec`: x prefill workers + y decode workers (1P4D, 7P1D-DEP16); GPUs = prefill GPUs +
  decode GPUs (docs/sources.md#benchmark-methodology).

Pass `context={"model": ModelSpec, "hardware": HardwareSpec, "max_gpus": int}` to model_validate to get the
named errors: a deployment larger than `max_gpus`, EP not dividing routed + redundant experts, a scale-up
group larger than the GPU's domain. Every error names its field.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, model_validator

from simulator.specs.base import Frozen
from simulator.specs.serving import DeploymentSpec

# Priors for the scale-out knobs, from DeepEP's published low-latency all-to-all timings (deepseek-ai/DeepEP,
# docs/legacy.md, "Low-latency kernels with pure RDMA": H800 + ConnectX-7 400 Gb/s, 128 tokens per batch,
# hidden 7168, top-8 experts, FP8 dispatch, BF16 combine). A line t = L + bytes / BW through each EP size's
# dispatch (118-194 us, ~7.6 MB per rank) and combine (195-360 us, ~14.7 MB) rows gives L = 3-36 us over
# EP16..EP256 and BW = 40-43 GB/s at EP128/EP256, where nearly all traffic leaves the node: 0.80-0.86 of the
# 50 GB/s line rate. Calibration may move both; they are priors, not measurements of these deployments.
SCALE_OUT_MESSAGE_LATENCY_US = 20.0  # us per all-to-all phase over RDMA (middle of the 3-36 us intercepts)
SCALE_OUT_BANDWIDTH_FRACTION = 0.8  # achieved / NIC line rate (DeepEP LL at EP128: 40 of 50 GB/s)
# The GPUs of one HGX / MI-series node: the single-node deployments the step model was calibrated on.
NODE_GPUS = 8
# Default GPU budget of one deployment: one GB200/GB300 NVL72 rack (or nine HGX nodes); the benchmark's
# multi-node recipes (conf/deployments/multinode.yaml) stay within it but for a few 2 x NVL72 rows.
DEFAULT_MAX_GPUS = 72


class ScaleOutSpec(Frozen):
    """One NIC per GPU into the scale-out fabric. Per-direction bytes/s = line rate (Gb/s) / 8.

    Its achieved fraction and per-message latency are efficiency knobs (`EfficiencyKnobs.scale_out_*`,
    priors above), so the calibration can fit them with the others."""

    nic: str
    nic_gb_s: float = Field(gt=0, le=10_000, description="NIC line rate per GPU, Gb/s")
    source: str = ""

    @property
    def bytes_per_s(self) -> float:
        return self.nic_gb_s / 8.0 * 1e9


def _ctx(info: ValidationInfo) -> dict[str, Any]:
    return info.context or {}


class WorkerSpec(DeploymentSpec):
    """One engine instance: tp x pp GPUs (EP and DP-attention reuse them), possibly beyond one node.

    `redundant_experts`: EPLB's extra expert slots per MoE layer (replicas of hot experts), so EP must divide
    routed + redundant experts (DeepSeek R1 runs EP24/EP48 with 32 redundant: 288 slots).
    `scale_up_gpus`: GPUs of the worker inside one scale-up domain (None: as many as the domain holds).
    """

    redundant_experts: int = Field(default=0, ge=0, le=4096)
    scale_up_gpus: int | None = Field(default=None, ge=1, le=1024)

    @property
    def label(self) -> str:
        """The benchmark's names: DEP16 (DP-attention + EP over all GPUs), TEP8 (TP + EP), TP8."""
        if self.dp_attention and self.ep == self.tp:
            name = f"DEP{self.tp}"
        elif self.ep == self.tp and self.ep > 1:
            name = f"TEP{self.tp}"
        else:
            name = f"TP{self.tp}" + (f"-EP{self.ep}" if self.ep > 1 else "") + ("-DPA" if self.dp_attention else "")
        return name + (f"-EPLB{self.redundant_experts}" if self.redundant_experts else "")

    def deployment(self) -> DeploymentSpec:
        """The same GPUs as the single-node spec the pass lowering reads (no domain check: this may span)."""
        return DeploymentSpec(tp=self.tp, ep=self.ep, dp_attention=self.dp_attention)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> WorkerSpec:
        if self.tp % self.ep:
            raise ValueError(f"ep: ep={self.ep} must divide tp={self.tp} (EP reuses the TP GPUs)")
        _check_budget(self.gpus, self.label, info)
        if self.redundant_experts and self.ep == 1:
            raise ValueError("redundant_experts: EPLB redundant slots need ep > 1")
        model, hw = _ctx(info).get("model"), _ctx(info).get("hardware")
        if model is not None:
            for ffn in model.moe_ffns:
                slots = ffn.num_experts + self.redundant_experts
                if slots % self.ep:
                    raise ValueError(
                        f"ep: ep={self.ep} does not divide the {ffn.num_experts} routed + {self.redundant_experts} "
                        f"redundant experts ({slots} slots) of {model.name}; allowed: a divisor of {slots}")
        if self.scale_up_gpus is not None:
            if self.scale_up_gpus > self.gpus or self.gpus % self.scale_up_gpus:
                raise ValueError(f"scale_up_gpus: {self.scale_up_gpus} must divide the worker's {self.gpus} GPUs")
            if hw is not None and self.scale_up_gpus > hw.scale_up_domain_gpus:
                raise ValueError(
                    f"scale_up_gpus: a scale-up group of {self.scale_up_gpus} GPUs is larger than the "
                    f"{hw.display_name} domain ({hw.scale_up_domain_gpus} GPUs); allowed: 1..{hw.scale_up_domain_gpus}")
        return self

    def scale_up_group(self, domain_gpus: int) -> int:
        """GPUs of this worker that share one scale-up domain."""
        return self.scale_up_gpus or min(self.gpus, domain_gpus)

    def spans_scale_out(self, domain_gpus: int) -> bool:
        return self.gpus > self.scale_up_group(domain_gpus)


def _check_budget(gpus: int, what: str, info: ValidationInfo) -> None:
    max_gpus = _ctx(info).get("max_gpus")
    if max_gpus is not None and gpus > max_gpus:
        raise ValueError(f"max_gpus: the deployment {what} needs {gpus} GPUs, more than max_gpus={max_gpus}")


class DisaggregatedSpec(Frozen):
    """x prefill workers + y decode workers, each pool with its own parallelism; KV moves over the NICs."""

    kind: Literal["disaggregated"] = "disaggregated"
    prefill: WorkerSpec
    prefill_workers: int = Field(ge=1, le=4096)
    decode: WorkerSpec
    decode_workers: int = Field(ge=1, le=4096)

    @property
    def prefill_gpus(self) -> int:
        return self.prefill_workers * self.prefill.gpus

    @property
    def decode_gpus(self) -> int:
        return self.decode_workers * self.decode.gpus

    @property
    def gpus(self) -> int:
        """docs/sources.md#benchmark-methodology: disaggregated GPUs = prefill GPUs + decode GPUs."""
        return self.prefill_gpus + self.decode_gpus

    @property
    def label(self) -> str:
        return f"{self.prefill_workers}P{self.decode_workers}D-{self.prefill.label}-{self.decode.label}"

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> DisaggregatedSpec:
        _check_budget(self.gpus, self.label, info)
        return self


_XPYD = re.compile(r"^(\d+)P(\d+)D(?:-(DEP|TEP|TP)(\d+))?$")


def parse_xpyd(name: str, prefill: WorkerSpec, decode: WorkerSpec | None = None) -> DisaggregatedSpec:
    """`1P4D` (decode workers like `prefill`) or `7P1D-DEP16` (decode worker named) -> DisaggregatedSpec."""
    m = _XPYD.match(name.strip())
    if m is None:
        raise ValueError(f"xPyD name {name!r} is not of the form 1P4D or 7P1D-DEP16")
    x, y, kind, width = m.groups()
    if kind is not None:
        w = int(width)
        decode = WorkerSpec(tp=w, ep=1 if kind == "TP" else w, dp_attention=kind == "DEP")
    return DisaggregatedSpec(prefill=prefill, prefill_workers=int(x), decode=decode or prefill,
                             decode_workers=int(y))
