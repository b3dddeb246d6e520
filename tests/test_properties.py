"""Property tests: monotonicity and bounds that any honest roofline must satisfy."""

from __future__ import annotations

from dataclasses import replace

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import scenario
from simulator.acceptance import acceptance_length, al_table
from simulator.knobs import KNOB_NAMES, KnobTensors
from simulator.serving import closed_loop
from simulator.speculative import decode_step_time_s

CASES = [("glm5", "b200", "fp4", 4, 1), ("deepseek_r1", "mi355x", "fp4", 8, 1),
         ("qwen3_5_397b", "h200", "fp8", 8, 8), ("deepseek_v4_pro", "b300", "fp4", 8, 8),
         ("llama3_3_70b", "h100", "fp8", 4, 1), ("gpt_oss_120b", "mi300x", "fp8", 2, 2)]
_CACHE: dict = {}


def setup(i: int):
    if i not in _CACHE:
        model, hw, prec, tp, ep = CASES[i]
        sc = scenario(model, hw, prec)
        dep = sc.deployment(tp=tp, ep=ep)
        _CACHE[i] = (sc, dep, sc.tables(dep))
    return _CACHE[i]


case = st.integers(0, len(CASES) - 1)
conc = st.integers(1, 512)
ks = st.integers(0, 3)
IDEAL_VALUES = {"hbm_bandwidth_fraction": 1.0, "compute_fraction": 1.0, "link_bandwidth_fraction": 1.0,
                "moe_imbalance": 1.0, "scale_out_bandwidth_fraction": 1.0}  # every latency 0
IDEAL = KnobTensors(**{n: torch.tensor(IDEAL_VALUES.get(n, 0.0), dtype=torch.float64) for n in KNOB_NAMES})


def _k(sc, k: int) -> int:
    return k if sc.has_draft else 0


def run(sc, dep, tables, c: int, k: int, knobs=None, scale=None):
    al = acceptance_length(al_table(sc.acceptance, scale), k) if sc.acceptance else torch.tensor(1.0)
    return closed_loop(tables, knobs or sc.knob_tensors, sc.workload, sc.serving, torch.tensor(float(c)),
                       torch.tensor(float(k)), al, dep.gpus)


@settings(max_examples=60, deadline=None)
@given(case, conc, ks, st.floats(1.0, 4.0), st.sampled_from(["hbm_bytes_s", "link_bytes_s", "peak_flops"]))
def test_more_bandwidth_or_compute_never_slows_a_step(i: int, c: int, k: int, factor: float, what: str) -> None:
    sc, dep, tables = setup(i)
    k = _k(sc, k)
    faster = replace(tables, target=replace(tables.target, **{what: getattr(tables.target, what) * factor}),
                     draft=tables.draft and replace(tables.draft, **{what: getattr(tables.draft, what) * factor}))
    args = (sc.knob_tensors, torch.tensor(float(c)), torch.tensor(float(k)), torch.tensor(1500.0))
    assert float(decode_step_time_s(faster, *args)) <= float(decode_step_time_s(tables, *args)) * (1 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([0, 1, 2, 3]), conc, st.integers(1, 3), st.floats(0.2, 1.0), st.floats(0.0, 0.5))
def test_higher_acceptance_never_lowers_mtp_throughput(i: int, c: int, k: int, s: float, ds: float) -> None:
    sc, dep, tables = setup(i)
    lo = run(sc, dep, tables, c, k, scale=s)
    hi = run(sc, dep, tables, c, k, scale=s + ds)
    assert float(hi.tput_per_gpu) >= float(lo.tput_per_gpu) * (1 - 1e-12)
    assert float(hi.interactivity) >= float(lo.interactivity) * (1 - 1e-12)


@settings(max_examples=60, deadline=None)
@given(case, conc, ks)
def test_throughput_never_exceeds_the_pure_roofline(i: int, c: int, k: int) -> None:
    sc, dep, tables = setup(i)
    k = _k(sc, k)
    real = run(sc, dep, tables, c, k)
    ideal = run(sc, dep, tables, c, k, knobs=IDEAL)
    assert float(real.tput_per_gpu) <= float(ideal.tput_per_gpu)
    assert float(real.interactivity) <= float(ideal.interactivity)


@settings(max_examples=60, deadline=None)
@given(case, conc, st.integers(1, 256), ks)
def test_interactivity_falls_as_concurrency_rises(i: int, c: int, dc: int, k: int) -> None:
    sc, dep, tables = setup(i)
    k = _k(sc, k)
    assert float(run(sc, dep, tables, c + dc, k).interactivity) <= float(run(sc, dep, tables, c, k).interactivity)
