"""The calibration problem: every observation predicted in one batched evaluation of the torch model.

Parameters live in an unconstrained space z: fractions = sigmoid(z), latencies = exp(z),
imbalance = 1 + exp(z), acceptance scale = exp(z), engine efficiency = exp(z). Knobs are shared by a hardware
family; B300/GB300 and MI300X/MI325X have no data here and take their family's fitted values (reported as
transferred). Each engine other than SGLang (the reference) that some observation runs on gets one factor on
the compute fraction (specs.EngineEfficiency), shared by every family. One acceptance scale is shared by every
model (ACCEPTANCE_GROUP): the benchmark's own prompts against the golden curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from simulator.batched import Case, lower_cases
from simulator.calibration.data import PageObs, PointObs
from simulator.catalog import SpecError
from simulator.evaluate import gather, price
from simulator.frontier import pareto_front, read_at
from simulator.knobs import KNOB_NAMES, KnobTensors
from simulator.serving import ServingMetrics
from simulator.specs import EfficiencyKnobs, HardwareSpec
from simulator.specs.calibration import ACCEPTANCE_GROUP
from simulator.specs.vocabulary import (
    ENGINES,
    GENERATION_FAMILY,
    HARDWARE_FAMILIES,
    REFERENCE_ENGINE,
    HardwareFamily,
    engine_key,
    family_of_generation,
)

# Fitted per hardware family. The speculative-step terms' knobs stay at their sourced priors
# (specs/hardware.py: draft_pass_latency_us from TensorRT-LLM's batch-1 table, eager_layer_pass_latency_us from
# launch costs) except the per-request bookkeeping, which only the batch trend of MTP runs identifies. The
# scale-out (NIC) knobs are identified only by the benchmark's multi-node rows (pages whose front they make);
# a family without such data keeps their DeepEP priors (PRIOR_SIGMA_Z pulls them there).
FITTED_KNOBS = ("hbm_bandwidth_fraction", "compute_fraction", "layer_pass_latency_us", "collective_latency_us",
                "step_latency_us", "moe_imbalance", "request_overhead_us", "scale_out_latency_us",
                "scale_out_bandwidth_fraction")
# Fitted once for every family: the routing locality of a request's consecutive tokens and the spread of the
# experts' popularity are the trained routers' properties, not the GPU's (specs/hardware.py:
# route_repeat_fraction, expert_popularity_cv), parameters `shared.<knob>`.
SHARED_KNOBS = ("route_repeat_fraction", "expert_popularity_cv")
SHARED_PARAMETER = "shared"
FRACTIONS = ("hbm_bandwidth_fraction", "compute_fraction", "link_bandwidth_fraction", "scale_out_bandwidth_fraction",
             "route_repeat_fraction")
Z_AT_FULL_FRACTION = 6.0  # z of a fraction given as exactly 1 (sigmoid(6) = 0.9975; logit(1) is infinite)
MIN_EXCESS_IMBALANCE = 1e-3  # an imbalance given as exactly 1 maps to 1.001 (log(0) is infinite)
UNREACHED_TPUT_PER_GPU = 1e-3  # tok/s of a page target whose side has no feasible point: a huge miss, not NaN
PRIOR_SIGMA_Z = 1.0  # prior width in z: a factor ~e on latencies, ~0.2 on a fraction near 0.75
ENGINE_PARAMETER = "engine_efficiency"  # name prefix of an engine's factor (engine_efficiency.<engine>)
# The acceptance scale is one parameter for every model, acceptance_scale.<ACCEPTANCE_GROUP>: the ratio
# of the benchmark's AL (random-token prompts in a chat template, methodology.md) to the golden curves' (real
# prompts). Scales fitted per model cross-validated worse (leave-one-page-out: MTP mean |log error| 0.459
# against 0.409 shared, gain 0.550 against 0.528; docs/sources.md#measured-data): with one to six pages a
# model, a model's own scale absorbed its pages' other errors.


def family_of(hw: HardwareSpec) -> HardwareFamily:
    """The calibration family a GPU's knobs are shared with (by its generation)."""
    family = family_of_generation(hw.generation)
    if family is None:
        raise SpecError(f"hardware {hw.name}: generation {hw.generation!r} belongs to no calibration family; "
                        f"known generations: {', '.join(GENERATION_FAMILY)}")
    return family


def to_z(name: str, value: float) -> float:
    if name in FRACTIONS:
        return math.log(value / (1.0 - value)) if value < 1.0 else Z_AT_FULL_FRACTION
    if name == "moe_imbalance":
        return math.log(max(value - 1.0, MIN_EXCESS_IMBALANCE))
    return math.log(max(value, 1e-6))


def from_z(name: str, z: torch.Tensor) -> torch.Tensor:
    if name in FRACTIONS:
        return torch.sigmoid(z)
    if name == "moe_imbalance":
        return 1.0 + torch.exp(z)
    return torch.exp(z)


@dataclass(frozen=True)
class ParamSpace:
    """The fitted parameters, in this order: the knobs of each family, the shared acceptance scale, the
    compute efficiency of each engine (relative to REFERENCE_ENGINE), the knobs shared by every family."""

    families: tuple[str, ...]
    models: tuple[str, ...]  # acceptance groups whose scale is fitted: (ACCEPTANCE_GROUP,) or () without MTP data
    engines: tuple[str, ...] = ()  # engines (not the reference) whose compute efficiency is fitted
    shared: tuple[str, ...] = SHARED_KNOBS  # knobs fitted once for every family

    @property
    def names(self) -> list[str]:
        return ([f"{f}.{k}" for f in self.families for k in FITTED_KNOBS]
                + [f"acceptance_scale.{m}" for m in self.models]
                + [f"{ENGINE_PARAMETER}.{e}" for e in self.engines]
                + [f"{SHARED_PARAMETER}.{k}" for k in self.shared])

    @property
    def n_knobs(self) -> int:
        return len(self.families) * len(FITTED_KNOBS)

    @property
    def engines_start(self) -> int:
        """Index in z of the first engine factor (after the family knobs and the acceptance scales)."""
        return self.n_knobs + len(self.models)

    @property
    def shared_start(self) -> int:
        """Index in z of the first knob shared by every family (after the engine factors)."""
        return self.engines_start + len(self.engines)

    def prior(self) -> np.ndarray:
        d = EfficiencyKnobs()
        knobs = [to_z(k, getattr(d, k)) for _ in self.families for k in FITTED_KNOBS]
        shared = [to_z(k, getattr(d, k)) for k in self.shared]
        return np.array(knobs + [0.0] * (len(self.models) + len(self.engines)) + shared)

    def value(self, name: str, z: float) -> float:
        group, knob = name.split(".", 1)
        zt = torch.tensor(z, dtype=torch.float64)
        return float(torch.exp(zt)) if group in ("acceptance_scale", ENGINE_PARAMETER) else float(from_z(knob, zt))


class Problem:
    """Observations + one lowered batch of every case they need."""

    def __init__(self, points: list[PointObs], pages: list[PageObs], max_ttft_s: float | None = None) -> None:
        """`max_ttft_s`: page fronts are read from the points within that TTFT only (compare's limit)."""
        self.max_ttft_s = max_ttft_s
        self.points, self.pages = points, pages
        cases: dict[tuple, int] = {}
        ordered: list[Case] = []

        def index(case: Case) -> int:
            key = (id(case.scenario), case.deployment, case.has_draft, case.limits, case.pinned_al,
                   engine_key(case.engine))
            if key not in cases:
                cases[key] = len(ordered)
                ordered.append(case)
            return cases[key]

        flat_case, flat_c, flat_k = [], [], []
        for p in points:
            flat_case.append(index(replace(p.case, limits=p.limits)))
            flat_c.append(p.concurrency)
            flat_k.append(p.draft_tokens)
        self.page_groups: dict[tuple[str, str], tuple[np.ndarray, list[int]]] = {}
        for j, obs in enumerate(pages):
            key = (obs.page, obs.side)
            if key not in self.page_groups:
                start = len(flat_case)
                for case, cand in obs.candidates:
                    for ci, c in enumerate(cand.concurrencies):
                        for k in cand.draft_tokens:
                            flat_case.append(index(replace(case, limits=cand.limits_at(ci))))
                            flat_c.append(c)
                            flat_k.append(k)
                self.page_groups[key] = (np.arange(start, len(flat_case)), [])
            self.page_groups[key][1].append(j)
        self.cases = ordered
        self.batch = lower_cases(ordered)
        self.case_idx = torch.tensor(flat_case, dtype=torch.long)
        self.conc = torch.tensor(flat_c, dtype=torch.float64)
        self.k = torch.tensor(flat_k, dtype=torch.float64)
        case_families = [family_of(c.scenario.hardware) for c in ordered]
        fams = tuple(f for f in HARDWARE_FAMILIES if f in case_families)
        # the shared acceptance scale is fitted on points whose acceptance was measured: a case whose recipe
        # pins its AL (synthetic acceptance) keeps scale 1 and neither uses nor informs the fit
        models = [None if c.pinned_al is not None else ACCEPTANCE_GROUP for c in ordered]
        measured_mtp = (any(p.draft_tokens > 0 and p.case.pinned_al is None for p in points)
                        or any(o.side == "mtp" and case.pinned_al is None for o in pages for case, _ in o.candidates))
        acc_groups = [ACCEPTANCE_GROUP] if measured_mtp else []
        # an engine's compute efficiency is fitted where some observation runs on it (SGLang is the unit)
        case_engines = [engine_key(c.engine) for c in ordered]
        engines = tuple(e for e in ENGINES if e != REFERENCE_ENGINE and e in case_engines)
        self.space = ParamSpace(fams, tuple(acc_groups), engines)
        self.family_idx = torch.tensor([fams.index(f) for f in case_families])[self.case_idx]
        self.engine_idx = torch.tensor([engines.index(e) if e in engines else -1
                                        for e in case_engines])[self.case_idx]
        acc = [acc_groups.index(m) if m in acc_groups else -1 for m in models]
        self.acc_idx = torch.tensor(acc)[self.case_idx]
        sel = self.case_idx
        self.base_knobs = self.batch.knob_tensors(lambda x: x[sel])
        self.case_scale = self.batch.scalar("acceptance_scale")[sel]
        # admission: a point is feasible when at least one request fits at its k; beyond that the engine queues
        self.gathered = gather(self.batch, sel, self.conc, self.k)
        self.feasible = self.gathered.feasible.numpy()

    def knobs(self, z: torch.Tensor) -> KnobTensors:
        n_f = len(self.space.families)
        fam = z[: n_f * len(FITTED_KNOBS)].reshape(n_f, len(FITTED_KNOBS))
        values = {}
        for j, name in enumerate(FITTED_KNOBS):
            values[name] = from_z(name, fam[:, j])[self.family_idx]
        if self.space.engines:  # as Scenario.engine_knobs: the engine's factor on the compute fraction, at most 1
            n0 = self.space.engines_start
            eff = torch.exp(z[n0:n0 + len(self.space.engines)])
            factor = torch.where(self.engine_idx >= 0, eff[self.engine_idx.clamp(min=0)], torch.ones((), dtype=z.dtype))
            values["compute_fraction"] = torch.clamp(values["compute_fraction"] * factor, max=1.0)
        for j, name in enumerate(self.space.shared):
            values[name] = from_z(name, z[self.space.shared_start + j]).expand(self.family_idx.shape)
        return KnobTensors(**{n: values.get(n, getattr(self.base_knobs, n)) for n in KNOB_NAMES})

    def metrics(self, z: np.ndarray | torch.Tensor | None = None) -> ServingMetrics:
        """Every point's metrics at parameters z (the trial knobs and acceptance scales), or with z = None at
        the cases' own knobs and scales (what compare and validate price)."""
        if z is None:
            return price(self.gathered).metrics
        z = torch.as_tensor(z, dtype=torch.float64)
        n_knobs = self.space.n_knobs
        scales = torch.exp(z[n_knobs:n_knobs + len(self.space.models)])
        scale = torch.where(self.acc_idx >= 0, scales[self.acc_idx.clamp(min=0)] if len(scales) else 1.0,
                            self.case_scale)
        return price(self.gathered, self.knobs(z), scale).metrics

    def predict(self, z: np.ndarray | torch.Tensor | None = None) -> np.ndarray:
        """Predicted value of every observation (points first, then page targets); z = None: at the cases' own
        knobs and acceptance scales."""
        m = self.metrics(z)
        out = np.empty(len(self.points) + len(self.pages))
        for i, p in enumerate(self.points):
            out[i] = float(getattr(m, p.metric)[i])
        x_all, y_all = m.interactivity.detach().numpy(), m.tput_per_gpu.detach().numpy()
        usable = self.feasible if self.max_ttft_s is None else self.feasible & (
            m.ttft_s.detach().numpy() <= self.max_ttft_s)
        for (idx, obs_ids) in self.page_groups.values():
            ok = idx[usable[idx]]
            x, y = x_all[ok], y_all[ok]
            front = pareto_front(x, y)
            targets = [self.pages[j].interactivity for j in obs_ids]
            rows = [len(self.points) + j for j in obs_ids]
            if front.size == 0:
                out[rows] = UNREACHED_TPUT_PER_GPU
            else:  # read as the pages read a front: a target outside it is clamped to its edge
                out[rows] = read_at(x[front], y[front], targets, outside="clamp").values
        return out

    def observations(self) -> tuple[np.ndarray, list[str], list[str]]:
        measured = np.array([p.measured for p in self.points] + [o.measured for o in self.pages])
        datasets = [p.dataset for p in self.points] + [o.dataset for o in self.pages]
        labels = [f"{p.label}:{p.metric}" for p in self.points] + [o.label for o in self.pages]
        return measured, datasets, labels

    def log_errors(self, z: np.ndarray) -> np.ndarray:
        """log(predicted / measured) with the sign such that > 0 means the model is optimistic."""
        return self.log_errors_of(self.predict(z))

    def log_errors_of(self, pred: np.ndarray) -> np.ndarray:
        """`log_errors` of predictions already made (`predict`): > 0 where the model is optimistic (a lower
        TPOT, a higher throughput or interactivity than measured)."""
        measured, _, _ = self.observations()
        err = np.log(np.maximum(pred, 1e-12) / measured)
        return np.where(np.array(self.metrics_observed()) == "tpot_s", -err, err)

    def metrics_observed(self) -> list[str]:
        """The metric of every observation (points first, then page targets: throughput per GPU)."""
        return [p.metric for p in self.points] + ["tput_per_gpu"] * len(self.pages)
