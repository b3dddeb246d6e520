"""Points/s of the sweep: a per-point Python loop over the scalar torch model (as peer tools work), the
vectorized torch backend on the CPU, and Triton / torch on a GPU (skipped without CUDA).

Run: pytest bench/ -n 0 --benchmark-json=PATH. Grid: 10 cases x n/1000 concurrencies x 10 k x 10 acceptance scales.
"""

import os
from collections.abc import Callable

import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture

from kernels import Case, CaseBatch, lower_cases, sweep
from simulator.acceptance import al_table
from simulator.catalog import load_hardware, load_model, load_workload
from simulator.scenario import Scenario
from simulator.serving import closed_loop

K = torch.arange(10.0)
A = torch.linspace(0.5, 1.4, 10)
CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not CUDA, reason="no CUDA device")


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    out = []
    for model in ("glm5", "deepseek_r1", "qwen3_5_397b", "kimi_k2_5", "deepseek_v4_pro"):
        m, acc = load_model(model)
        for hw in ("b200", "h200"):
            sc = Scenario(model=m, hardware=load_hardware(hw), precision="fp8", workload=load_workload("1k1k"),
                          acceptance=acc)
            out.append(Case(sc, sc.deployment(tp=8)))
    return out


@pytest.fixture(scope="module")
def batch(cases: list[Case]) -> CaseBatch:
    return lower_cases(cases)


def concurrency(points: int) -> torch.Tensor:
    return torch.linspace(1.0, 1000.0, points // 1000)  # x 10 cases x 10 k x 10 a


def run(benchmark: BenchmarkFixture, fn: Callable[[], object], points: int, rounds: int) -> None:
    benchmark.extra_info["points"] = points
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1 if rounds > 1 else 0)
    record_rate(benchmark, points)


def record_rate(benchmark: BenchmarkFixture, points: int) -> None:
    """points/s into the JSON's extra_info; nothing under --benchmark-disable (no timings: one plain run)."""
    if benchmark.stats is not None:
        benchmark.extra_info["points_per_s"] = points / benchmark.stats.stats.mean


def test_per_point_python_loop(benchmark: BenchmarkFixture, cases: list[Case]) -> None:
    """One closed_loop call per point (tables built once per case: the loop's best case)."""
    tables = [c.scenario.tables(c.deployment) for c in cases]
    c_values = concurrency(1000).tolist()

    def loop() -> None:
        for case, t in zip(cases, tables, strict=True):
            sc = case.scenario
            for c in c_values:
                for k in K.tolist():
                    for a in A.tolist():
                        al = al_table(sc.acceptance, scale=a)[int(k)] if k <= sc.acceptance.max_draft_tokens else 1.0
                        m = closed_loop(t, sc.knob_tensors, sc.workload, sc.serving, torch.tensor(c),
                                        torch.tensor(k), al, case.deployment.gpus)
                        float(m.tput_per_gpu)

    run(benchmark, loop, len(cases) * len(c_values) * K.numel() * A.numel(), rounds=2)


@pytest.mark.parametrize("points", [10**3, 10**4, 10**5, 10**6, 10**7])
def test_torch_cpu(benchmark: BenchmarkFixture, batch: CaseBatch, points: int) -> None:
    c = concurrency(points)
    run(benchmark, lambda: sweep(batch, c, K, A, backend="torch", device="cpu", progress=False), points,
        rounds=1 if points >= 10**7 else 3)


@pytest.mark.parametrize("points", [10**6, 10**7])
def test_torch_cpu_compiled(benchmark: BenchmarkFixture, batch: CaseBatch, points: int) -> None:
    """The torch backend fused by torch.compile (the one-off compile runs in the warm-up round)."""
    c = concurrency(points)
    benchmark.extra_info["points"] = points
    benchmark.pedantic(lambda: sweep(batch, c, K, A, backend="torch", device="cpu", progress=False,
                                     compile_torch=True), rounds=1, iterations=1, warmup_rounds=1)
    record_rate(benchmark, points)


def gpu_sweep(batch: CaseBatch, c: torch.Tensor, backend: str) -> None:
    sweep(batch, c, K, A, backend=backend, device="cuda", progress=False)
    torch.cuda.synchronize()


@gpu
@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="TRITON_INTERPRET=1 is set")
@pytest.mark.parametrize("points", [10**5, 10**6, 10**7, 10**8])
def test_triton_gpu(benchmark: BenchmarkFixture, batch: CaseBatch, points: int) -> None:
    c = concurrency(points)
    run(benchmark, lambda: gpu_sweep(batch, c, "triton"), points, rounds=3)


@gpu
@pytest.mark.parametrize("points", [10**5, 10**6, 10**7])
def test_torch_gpu(benchmark: BenchmarkFixture, batch: CaseBatch, points: int) -> None:
    c = concurrency(points)
    run(benchmark, lambda: gpu_sweep(batch, c, "torch"), points, rounds=3)
