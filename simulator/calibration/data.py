"""Measured data as observations the model can predict: silicon TPOT, MTP on/off sweeps, page targets.

Sources (shipped in conf/measured, read only when calibrating; conf/measured/SOURCE.md):
- silicon_sample.csv: aiconfigurator's silicon sample (Apache-2.0): TPOT per deployment and
  concurrency, no speculation. Single-node ("agg") rows of catalog models only.
- glm5_8k1k_mtp_sweeps.csv: InferenceX blog tables: GLM-5 8k/1k, MTP on and off, SGLang.
- atom_ci_mtp_sweeps.csv: ATOM's CI dashboard (MIT): DeepSeek-R1 / V4-Pro on MI355X, MTP on and off.
- the comparison pages (bundled in conf/page_figures): MTP and Off throughput at matched interactivity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from simulator.batched import Case
from simulator.catalog import SpecError, load_hardware, load_model
from simulator.evaluate import candidate_case
from simulator.pages import Page
from simulator.scenario import Scenario
from simulator.search import Candidate, benchmark_candidates
from simulator.search_space import engine_default_limits
from simulator.specs import DeploymentSpec, EngineLimits, ServingSpec, WorkloadSpec
from simulator.specs.topology import DEFAULT_MAX_GPUS
from simulator.specs.vocabulary import SIDES, WORKLOADS, engine_key, workload_tokens

Metric = Literal["tpot_s", "interactivity", "tput_per_gpu"]
SILICON_MODELS = {
    "deepseek-ai/DeepSeek-R1": "deepseek_r1", "deepseek-ai/DeepSeek-V3": "deepseek_r1",
    "nvidia/DeepSeek-R1-NVFP4": "deepseek_r1", "Qwen/Qwen3-235B-A22B-FP8": "qwen3_235b",
    "Qwen/Qwen3.5-397B-A17B": "qwen3_5_397b", "meta-llama/Llama-3.1-70B": "llama3_3_70b",
    "moonshotai/Kimi-K2.5": "kimi_k2_5", "openai/gpt-oss-120b": "gpt_oss_120b", "zhipuai/GLM-5": "glm5",
}
SILICON_SYSTEMS = {"b200_sxm": "b200", "h100_sxm": "h100", "h200_sxm": "h200", "gb200": "gb200"}
# prefill scheduling by engine: vLLM mixes chunks into decode steps; SGLang and TensorRT-LLM (as the
# benchmark scripts configure them, data/benchmark-configs/engine_settings.yaml) run prefill batches apart
ENGINE_PREFILL = {"vllm": "chunked", "sglang": "separate", "trt": "separate", "atom": "separate"}


@dataclass(frozen=True)
class PointObs:
    """One measured operating point: `metric` of `case` at `concurrency` with k drafted tokens."""

    dataset: str
    case: Case
    concurrency: int
    draft_tokens: int
    metric: Metric
    measured: float
    label: str
    limits: EngineLimits = EngineLimits()  # the engine's limits at this point (default: memory only)


@dataclass(frozen=True)
class PageObs:
    """One page target: a side's throughput at `interactivity`, read off the predicted front."""

    dataset: str
    page: str
    side: str
    interactivity: float
    measured: float
    candidates: tuple[tuple[Case, Candidate], ...]
    label: str


_SCENARIOS: dict[tuple, Scenario] = {}


def scenario_for(model: str, hardware: str, precision: str, isl: int, osl: int,
                 prefill_mode: str = "separate") -> Scenario:
    key = (model, hardware, precision, isl, osl, prefill_mode)
    if key not in _SCENARIOS:
        m, acc = load_model(model)
        wl = WorkloadSpec(name=WORKLOADS.get((isl, osl), f"{isl}x{osl}"), isl_tokens=isl, osl_tokens=osl)
        _SCENARIOS[key] = Scenario(model=m, hardware=load_hardware(hardware), precision=precision,
                                   workload=wl, acceptance=acc, serving=ServingSpec(prefill_mode=prefill_mode))
    return _SCENARIOS[key]


def _silicon_precision(model: str, hw: str, precision: str) -> str | None:
    if precision not in ("fp4", "fp8", "bf16"):
        return None  # int4 (Kimi) is not a catalog precision
    if precision == "fp4" and hw in ("h100", "h200"):
        return "fp8" if model == "gpt_oss_120b" else None  # MXFP4 experts are native to gpt-oss
    return precision


def silicon_observations(path: Path) -> list[PointObs]:
    """TPOT of single-node runs of catalog models, one observation per row that maps cleanly."""
    df = pd.read_csv(path)
    df = df[df["mode"] == "agg"]
    out: list[PointObs] = []
    for r in df.itertuples(index=False):
        model, hw = SILICON_MODELS.get(r.model_path), SILICON_SYSTEMS.get(r.system)
        precision = _silicon_precision(model or "", hw or "", r.precision) if model and hw else None
        if precision is None or r.pp_size != 1:
            continue
        tp, dp = int(r.tp_size), int(r.attention_dp_size) if r.attention_dp_size == r.attention_dp_size else 1
        ep = max(int(r.moe_ep_size), 1) if r.moe_ep_size == r.moe_ep_size else 1
        if dp > 1 and tp > 1:
            continue  # attention TP x DP hybrids are not a single-node deployment of this model
        gpus = tp * dp
        m = re.search(r"silicon_concurrency=(\d+)", str(r.silicon_data_source))
        conc = int(m.group(1)) if m else int(r.batch_size) * dp
        try:
            engine = engine_key(str(r.backend))
        except ValueError as e:  # a row of a model and GPU we price, on an engine we do not know: say so
            raise SpecError(f"{path}: row {r.id}: backend: {e}") from e
        try:
            sc = scenario_for(model, hw, precision, int(r.isl), int(r.osl), ENGINE_PREFILL[engine])
            dep = sc.deployment(tp=gpus, ep=ep, dp_attention=dp > 1)
        except ValueError:
            continue
        if not sc.memory(dep, False).fits(conc):
            continue  # the model says it would not fit: not a point to fit knobs on
        out.append(PointObs("silicon", Case(sc, dep, with_draft=False, engine=engine), conc, 0, "tpot_s",
                            float(r.silicon_tpot_ms) / 1e3, str(r.id)))
    return out


def benchmark_setting(sc: Scenario, side: str, model: str, hardware: str, dep: DeploymentSpec,
                      concurrency: int) -> tuple[Scenario, EngineLimits]:
    """The scenario and engine limits the benchmark script ran this deployment at this concurrency with: its
    cache dtypes (Candidate.run_scenario) and limits; none recorded: the scenario as given and no limits beyond
    memory."""
    for cand in benchmark_candidates(sc, side, model, hardware, sc.workload.name):  # type: ignore[arg-type]
        if cand.deployment == dep and concurrency in cand.concurrencies:
            return cand.run_scenario(sc), cand.limits_at(cand.concurrencies.index(concurrency))
    return sc, EngineLimits(source="no limits recorded")


def _sweep_points(dataset: str, sc: Scenario, dep: DeploymentSpec, spec: str, k: int, engine: str,
                  concurrency: int, label: str, limits: EngineLimits, values: dict[str, float]) -> list[PointObs]:
    """One measured sweep point (a deployment at one concurrency, speculation on or off) as an observation
    per metric; none where not even one request fits (nothing to fit knobs on; beyond that the engine queues)."""
    mtp = spec == "mtp"
    if not sc.memory(dep, mtp, k).feasible:
        return []
    case = Case(sc, dep, with_draft=mtp, engine=engine)
    return [PointObs(dataset, case, concurrency, k, metric, float(value), label, limits)
            for metric, value in values.items()]


def sweep_observations(path: Path) -> list[PointObs]:
    """GLM-5 8k/1k MTP on/off sweeps (SGLang, k = 3): interactivity and throughput per concurrency."""
    df = pd.read_csv(path)
    out: list[PointObs] = []
    for r in df.itertuples(index=False):
        sc = scenario_for("glm5", r.hardware, r.precision, int(r.isl), int(r.osl))
        dep = sc.deployment(tp=int(r.tp), ep=int(r.ep))
        k = 3 if r.spec == "mtp" else 0  # SGLang GLM-5: 3 steps, top-k 1 (docs/sources.md#benchmark-methodology)
        label = f"glm5/{r.hardware}/{r.precision}/tp{r.tp}/{r.spec}/c{r.concurrency}"
        run_sc, limits = benchmark_setting(sc, r.spec, "glm5", r.hardware, dep, int(r.concurrency))
        out += _sweep_points("glm5_sweeps", run_sc, dep, str(r.spec), k, str(r.engine), int(r.concurrency), label,
                             limits, {"interactivity": r.interactivity, "tput_per_gpu": r.tput_per_gpu})
    return out


def atom_ci_observations(path: Path) -> list[PointObs]:
    """ATOM's CI MTP on/off sweeps (conf/measured/SOURCE.md): per concurrency, interactivity (1000 / mean TPOT)
    and throughput per GPU (input + output tokens of the whole server over its TP GPUs), at ATOM's default
    limits (the CI sets none: search_space.engine_default_limits) and the FP8 KV cache the CI sets."""
    df = pd.read_csv(path)
    out: list[PointObs] = []
    for i, r in enumerate(df.itertuples(index=False)):
        try:
            engine = engine_key(str(r.engine))
            sc = scenario_for(str(r.model), str(r.hardware), str(r.precision), int(r.isl), int(r.osl),
                              ENGINE_PREFILL[engine])
        except (ValueError, SpecError) as e:  # a row this catalog cannot price: say which, never a traceback
            raise SpecError(f"{path}: row {i + 1}: {e}") from e
        sc = sc.with_cache_dtypes(kv="fp8")  # the CI's server flags: --kv_cache_dtype fp8 (SOURCE.md)
        dep = sc.deployment(tp=int(r.tp), ep=int(r.ep))
        k = int(r.k)
        limits = engine_default_limits(engine, sc.hardware.hbm_capacity_gb, dep.tp, k)  # the CI sets none
        label = f"{r.model}/{r.hardware}/{r.precision}/{sc.workload.name}/tp{r.tp}/{r.spec}/c{r.concurrency}"
        out += _sweep_points("atom_ci", sc, dep, str(r.spec), k, engine, int(r.concurrency), label, limits,
                             {"interactivity": 1e3 / float(r.mean_tpot_ms),
                              "tput_per_gpu": float(r.total_tok_s) / int(r.tp)})
    return out


def target_observations(sc: Scenario, candidates: dict[str, list[Candidate]], targets: list[float],
                        measured: dict[tuple[str, float], float] | None = None, source: str = "",
                        dataset: str = "pages") -> list[PageObs]:
    """Each side's throughput at each target interactivity, read off the front of its candidates
    (`measured` NaN where not given: for predicting with uncertainty rather than fitting)."""
    out: list[PageObs] = []
    for side, cands in candidates.items():
        pairs = tuple((candidate_case(sc, c), c) for c in cands)
        for t in targets:
            value = (measured or {}).get((side, t), float("nan"))
            out.append(PageObs(dataset, source, side, t, value, pairs, f"{source}/{side}@{t:g}"))
    return out


def page_observations(pages: list[Page], max_gpus: int = DEFAULT_MAX_GPUS) -> list[PageObs]:
    """Each page target and side, with the benchmark's own deployments within `max_gpus` (single-node and
    multi-node xPyD rows) as the candidates to search."""
    out: list[PageObs] = []
    for page in pages:
        isl, osl = workload_tokens(page.workload)
        sc = scenario_for(page.model, page.hardware, page.precision, isl, osl)
        cands = {side: benchmark_candidates(sc, side, page.model, page.hardware, page.workload,  # type: ignore[arg-type]
                                            max_gpus) for side in SIDES}
        measured = {(side, p.interactivity): getattr(p, side).tput_per_gpu for p in page.points for side in cands}
        out += target_observations(sc, cands, [p.interactivity for p in page.points], measured, page.source)
    return out
