"""A scenario: one model on one GPU type at one precision and workload; builds the step tables."""

from __future__ import annotations

from functools import cached_property

from pydantic import BaseModel, ConfigDict, model_validator

from simulator.knobs import KnobTensors
from simulator.lowering import lower_draft, lower_target, memory_footprint
from simulator.memory import MemoryCheck, check_memory
from simulator.specs import (
    AcceptanceSpec,
    DeploymentSpec,
    EfficiencyKnobs,
    EngineEfficiency,
    HardwareSpec,
    ModelSpec,
    Precision,
    ServingSpec,
    WorkloadSpec,
)
from simulator.specs.vocabulary import BYTES_PER_VALUE, ENGINES, KvCacheDtype, StateDtype
from simulator.speculative import StepTables


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelSpec
    hardware: HardwareSpec
    precision: Precision
    workload: WorkloadSpec
    serving: ServingSpec = ServingSpec()
    acceptance: AcceptanceSpec | None = None
    knobs: EfficiencyKnobs | None = None  # None: the hardware's own defaults
    engine_efficiency: EngineEfficiency = EngineEfficiency()  # per engine, relative to SGLang (calibrated)

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        if self.precision == "fp4" and not self.hardware.supports("fp4"):
            raise ValueError(
                f"precision: fp4 weights need FP4 tensor cores, which {self.hardware.display_name} "
                f"({self.hardware.generation}) does not have; use fp8 or bf16")
        if self.acceptance is not None and self.model.draft is None:
            raise ValueError(f"acceptance: model {self.model.name} has no draft module to accept from")
        return self

    @property
    def has_draft(self) -> bool:
        return self.model.draft is not None and self.acceptance is not None

    @property
    def kv_cache_dtype(self) -> str:
        """The KV-cache dtype stored: the model's native cache format where its kernels take only that one, else
        the serving setting's (ServingSpec.stored_kv_cache_dtype)."""
        return self.model.native_kv_cache_dtype or self.serving.stored_kv_cache_dtype(self.precision)

    @property
    def kv_bytes(self) -> float:
        return BYTES_PER_VALUE[self.kv_cache_dtype]

    @property
    def state_dtype(self) -> str:
        """The dtype a linear-attention layer stores its recurrent state in (ServingSpec.stored_state_dtype)."""
        return self.serving.stored_state_dtype()

    @property
    def state_bytes(self) -> float:
        return BYTES_PER_VALUE[self.state_dtype]

    def with_cache_dtypes(self, kv: KvCacheDtype | None = None, state: StateDtype | None = None) -> Scenario:
        """This scenario with its KV cache stored as `kv` and its recurrent state as `state` (a deployment's
        own settings); None, or what it has already: unchanged (this scenario itself if both are)."""
        update = {f: v for f, v in (("kv_cache_dtype", kv), ("ssm_state_dtype", state))
                  if v is not None and v != getattr(self.serving, f)}
        if not update:
            return self
        return self.model_copy(update={"serving": self.serving.model_copy(update=update)})

    @cached_property
    def knob_tensors(self) -> KnobTensors:
        return KnobTensors.from_spec(self.knobs or self.hardware.efficiency)

    def engine_knobs(self, engine: str) -> EfficiencyKnobs:
        """The knobs a deployment on `engine` runs with: the GPU's, its compute fraction scaled by the engine's
        efficiency relative to SGLang (at most 1)."""
        knobs = self.knobs or self.hardware.efficiency
        factor = self.engine_efficiency.compute_factor(engine)
        if factor == 1.0:
            return knobs
        return knobs.model_copy(update={"compute_fraction": min(1.0, knobs.compute_fraction * factor)})

    @cached_property
    def engine_knob_tensors(self) -> dict[str, KnobTensors]:
        """`engine_knobs` as tensors, per engine of the vocabulary (vocabulary.engine_key names)."""
        return {e: KnobTensors.from_spec(self.engine_knobs(e)) for e in ENGINES}

    def deployment(self, **fields: object) -> DeploymentSpec:
        return DeploymentSpec.model_validate(fields, context={"model": self.model, "hardware": self.hardware})

    def tables(self, dep: DeploymentSpec) -> StepTables:
        args = (self.model, self.hardware, self.precision, dep, self.kv_bytes, self.state_bytes)
        return StepTables(lower_target(*args), lower_draft(*args) if self.has_draft else None)

    def memory(self, dep: DeploymentSpec, with_draft: bool, lookahead_tokens: int = 0) -> MemoryCheck:
        """KV capacity of `dep`; `lookahead_tokens` = k slots per request reserved for drafted tokens."""
        draft = with_draft and self.has_draft
        fp = memory_footprint(self.model, self.precision, dep, self.kv_bytes, draft, self.state_bytes)
        tokens = self.workload.mean_input_tokens + self.workload.mean_output_tokens
        return check_memory(fp, self.hardware.usable_hbm_gb, self.serving.mem_fraction, dep.attention_dp, tokens,
                            lookahead_tokens if draft else 0)
