"""Every task prices a point the same way: one prediction per page target, the planner beyond one node."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.calibration.data import target_observations
from simulator.calibration.problem import Problem
from simulator.cli import compose
from simulator.pages import modelled_pages
from simulator.planning import collect_options
from simulator.specs.vocabulary import SIDES
from simulator.validation import page_config, validate_page


def test_validate_calibration_and_bands_read_one_front_per_page_target() -> None:
    """The validate table's predicted value, the calibration problem's prediction at the same cases (what the
    fit and the bands evaluate) and the band around it come from the same points: they agree exactly."""
    page = next(p for p in modelled_pages() if (p.model, p.hardware) == ("glm5", "b200"))
    cfg = compose(["max_gpus=8"])
    v = validate_page(page, cfg)
    sc = page_config(page, cfg).scenario()
    targets = [p.interactivity for p in page.points]
    cands = {side: v.compare.sides[side].candidates for side in SIDES}
    obs = target_observations(sc, cands, targets)
    predicted = Problem([], obs).predict()
    checked = 0
    for o, value in zip(obs, predicted, strict=True):
        row = next(pt for pt in v.points if pt["interactivity"] == o.interactivity)
        assert row["predicted"][o.side] is not None
        assert value == row["predicted"][o.side]  # exactly: one evaluation path
        lo, hi = row["band"][o.side]
        assert lo < value < hi  # the band brackets the central value it was drawn around
        checked += 1
    assert checked == 2 * len(targets)
    for row in v.points:  # the gain's band: the same draws' MTP/Off ratio, around the central gain
        lo, hi = row["band"]["gain"]
        assert lo < row["predicted"]["gain"] < hi


def test_plan_prices_r1_fp8_on_h100_beyond_one_node() -> None:
    """DeepSeek-R1 FP8 does not fit one H100 node; within one rack's budget the planner prices wide-EP and
    xPyD options instead of reporting the option infeasible (compare prices the same shapes)."""
    cfg = compose(["task=plan", "model=deepseek_r1", "precision=fp8", "plan.gpus=[h100]", "plan.precisions=[fp8]",
                   "max_gpus=24"])
    points, options = collect_options(cfg, progress=False)
    assert (options["reason"] == "").all(), options
    assert set(points["side"]) == {"off", "mtp"}
    assert (points["gpus"] > 8).all()  # nothing fits on one node: every priced option spans nodes
    assert np.isfinite(points["tput_per_gpu"]).all() and (points["tput_per_gpu"] > 0).all()
    single = compose(["task=plan", "model=deepseek_r1", "precision=fp8", "plan.gpus=[h100]",
                      "plan.precisions=[fp8]", "max_gpus=8"])
    _, opts8 = collect_options(single, progress=False)
    assert opts8["reason"].str.contains("does not fit").all()


@pytest.mark.parametrize("side", SIDES)
def test_open_search_limits_reach_every_task(side: str) -> None:
    """Compare's open search and the planner's cases carry the same engine limits (SGLang's CUDA-graph limit
    and serving.max_running_requests), beyond one node too."""
    from simulator.evaluate import candidate_cases
    from simulator.search import candidates

    sc = compose(["model=deepseek_r1", "hardware=gb200", "workload=8k1k"]).scenario()
    cands, _ = candidates(sc, side, "open", "", "", "", 72)  # type: ignore[arg-type]
    cases, _ = candidate_cases([(sc, c) for c in cands])
    assert any(c.deployment.gpus > 8 for c in cases)
    assert all(c.limits.cuda_graph_max_batch is not None and c.limits.max_running_requests is not None
               for c in cases)


def test_a_plateau_is_read_at_its_smallest_concurrency() -> None:
    """Past what the decode workers admit, more clients only queue: throughput and interactivity stay exactly
    where they are (only TTFT grows), and the front keeps the smallest concurrency of the plateau."""
    from simulator.comparison import front_of
    from simulator.evaluate import evaluate
    from simulator.search import Candidate
    from simulator.specs.topology import DisaggregatedSpec, WorkerSpec

    sc = compose(["model=deepseek_r1", "hardware=gb200", "workload=8k1k"]).scenario()
    spec = DisaggregatedSpec(prefill=WorkerSpec(tp=4, ep=4, dp_attention=True), prefill_workers=11,
                             decode=WorkerSpec(tp=8, ep=8), decode_workers=1)
    conc = (256, 512, 1024, 2048, 4096, 8192)
    frame = evaluate(sc, [Candidate("off", spec, conc, (0,))]).frame()
    queued = frame[frame["running_batch"] < frame["concurrency"]]
    assert len(queued) >= 3
    assert queued["tput_per_gpu"].nunique() == 1 and queued["interactivity"].nunique() == 1
    assert queued["ttft_ms"].is_monotonic_increasing
    front = front_of(frame)
    on_plateau = front[front["tput_per_gpu"] == queued["tput_per_gpu"].iloc[0]]
    assert on_plateau["concurrency"].tolist() == [int(queued["concurrency"].min())]


def test_pareto_front_merges_points_equal_to_rounding_and_keeps_the_first() -> None:
    from simulator.frontier import TIE_RTOL, pareto_front

    x = np.array([10.0, 10.0 * (1 + TIE_RTOL / 4), 5.0, 20.0])
    y = np.array([100.0 * (1 + TIE_RTOL / 4), 100.0, 200.0, 50.0])  # 0 and 1 are one point
    assert pareto_front(x, y).tolist() == [2, 0, 3]


def test_an_open_fallback_is_marked_and_kept_out_of_the_benchmark_figures(tmp_path) -> None:  # noqa: ANN001
    """A case the benchmark ran no recipe for is priced by an open search: the table, summary.json and the
    report say "open (fallback)", and validate keeps such a page out of its error figures."""
    import dataclasses
    import json

    from simulator.comparison import FALLBACK, format_table, run_compare, write_summary
    from simulator.validation import summary

    cfg = compose(["model=llama3_3_70b", "hardware=h100", "precision=fp8", "max_gpus=8", "calibration=none"])
    res = run_compare(cfg.scenario(), cfg.key, "benchmark", cfg.rates, max_gpus=8)
    assert res.search == FALLBACK and res.sides["off"].fallback  # (no MTP side: llama has no draft module)
    assert f"search: {FALLBACK}" in format_table(res)
    write_summary(res, tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["search"] == FALLBACK
    assert res.report()["search"] == FALLBACK
    page = next(p for p in modelled_pages() if (p.model, p.hardware) == ("glm5", "b200"))
    v = validate_page(page, compose(["max_gpus=8"]))
    assert v.compare.search == "benchmark"
    moved = dataclasses.replace(v, compare=dataclasses.replace(v.compare, search=FALLBACK))
    both = summary([v, moved])
    assert both["fallback_pages"] == [page.source] and both["mtp"] == summary([v])["mtp"]


def test_a_benchmark_deployment_is_priced_with_the_kv_cache_dtype_its_script_ran() -> None:
    """DeepSeek-R1 FP8 on H200: the SGLang scripts set no --kv-cache-dtype (BF16, the engine's default), the
    TensorRT-LLM ones FP8. Every task's case carries that dtype: the SGLang case holds half the requests in its
    KV pool and reads twice the cache bytes per context token of the same deployment under FP8."""
    from simulator.evaluate import candidate_case
    from simulator.lowering import lower_target
    from simulator.search import benchmark_candidates

    sc = compose(["model=deepseek_r1", "hardware=h200", "precision=fp8", "workload=1k1k"]).scenario()
    assert sc.serving.kv_cache_dtype == "auto" and sc.kv_bytes == 1.0
    cands = benchmark_candidates(sc, "off", "deepseek_r1", "h200", "1k1k")
    sgl = next(c for c in cands if c.engine == "sglang")
    trt = next(c for c in cands if c.engine == "trt")
    case, fp8_case = candidate_case(sc, sgl), candidate_case(sc, trt)
    assert case.scenario.kv_bytes == 2.0 and fp8_case.scenario.kv_bytes == 1.0
    dep = sgl.deployment
    bf16_pool = case.scenario.memory(dep, False).max_concurrency
    fp8_pool = sc.memory(dep, False).max_concurrency
    assert 0.4 * fp8_pool <= bf16_pool <= 0.6 * fp8_pool
    reads = [float(lower_target(s.model, s.hardware, s.precision, dep, s.kv_bytes, s.state_bytes)
                   .bytes_per_request_ctx.sum()) for s in (case.scenario, sc)]
    assert reads[0] == pytest.approx(2 * reads[1])


def test_a_model_whose_kernels_take_one_cache_dtype_is_priced_in_it() -> None:
    """DeepSeek-V4's attention reads an FP8 cache only (ModelSpec.native_kv_cache_dtype): a deployment asking
    for BF16 still stores one byte per cached value, and the benchmark table records FP8 for its SGLang rows,
    which set no --kv-cache-dtype."""
    from simulator.search_space import load_search_spaces

    sc = compose(["model=deepseek_v4_pro", "hardware=h200", "precision=fp8", "workload=1k1k"]).scenario()
    assert sc.model.native_kv_cache_dtype == "fp8"
    assert sc.with_cache_dtypes(kv="bf16").kv_bytes == 1.0
    rows = load_search_spaces().lookup("deepseek_v4_pro", "h200", "fp8", "1k1k", "off")
    assert {(d.engine, d.kv_cache_dtype) for d in rows if d.engine == "sglang"} == {("sglang", "fp8")}


def test_a_benchmark_deployment_is_priced_with_the_state_dtype_its_script_ran() -> None:
    """Qwen3.5 FP8 on H200: the SGLang scripts pass --mamba-ssm-dtype bfloat16, so each request's Gated-DeltaNet
    state is half the bytes of the FP32 the model's config states (ServingSpec.ssm_state_dtype auto): half the
    bytes a verify pass reads and writes, half the state memory per request."""
    from simulator.evaluate import candidate_case
    from simulator.search import benchmark_candidates

    sc = compose(["model=qwen3_5_397b", "hardware=h200", "precision=fp8", "workload=1k1k"]).scenario()
    assert sc.serving.ssm_state_dtype == "auto" and sc.state_bytes == 4.0
    cand = next(c for c in benchmark_candidates(sc, "mtp", "qwen3_5_397b", "h200", "1k1k") if c.engine == "sglang")
    assert cand.ssm_state_dtype == "bf16"
    case = candidate_case(sc, cand)
    assert case.scenario.state_bytes == 2.0
    dep = cand.deployment
    t_bf16, t_fp32 = case.scenario.tables(dep).target, sc.tables(dep).target
    s = t_fp32.names.index("L0.linear_attn.state")
    assert float(t_bf16.bytes_per_request[s]) == pytest.approx(float(t_fp32.bytes_per_request[s]) / 2)
    from simulator.lowering import memory_footprint

    states = [memory_footprint(s.model, s.precision, dep, s.kv_bytes, True, s.state_bytes).state_bytes_per_request
              for s in (case.scenario, sc)]
    assert states[0] == pytest.approx(states[1] / 2)
    assert case.scenario.memory(dep, True, 3).cache_gb_per_request < sc.memory(dep, True, 3).cache_gb_per_request


def test_curves_name_the_cache_dtypes_each_point_stores() -> None:
    """compare's curves.csv says which KV-cache and state dtypes each benchmark point was priced with."""
    from simulator.evaluate import evaluate
    from simulator.search import benchmark_candidates

    sc = compose(["model=deepseek_r1", "hardware=h200", "precision=fp8", "workload=1k1k"]).scenario()
    curve = evaluate(sc, benchmark_candidates(sc, "off", "deepseek_r1", "h200", "1k1k")).frame()
    dtypes = set(zip(curve["engine"], curve["kv_cache_dtype"], curve["state_dtype"], strict=True))
    assert dtypes == {("sglang", "bf16", ""), ("trt", "fp8", "")}
