"""End to end, as a user runs them (issue 16's bar, on this project's 2-core CPU machine):

- `compare model=deepseek_r1 hardware=gb200 workload=8k1k search=open` (max_gpus=72): <= 20 s
- `task=plan model=deepseek_r1 workload=8k1k` over every catalog GPU and both precisions within 72 GPUs: <= 90 s
- `task=validate` on every modelled page: <= 60 s

Run: pytest bench/test_bench_tasks.py -n 0 --benchmark-json=PATH (one round each: they are long). The figures
are measured here, never asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from simulator.cli import compose
from simulator.tasks import compare, plan, validate

CASES = {
    "compare_r1_gb200_8k1k_open": (compare, ["model=deepseek_r1", "hardware=gb200", "workload=8k1k", "search=open",
                                             "validate_after=false"]),
    "plan_r1_8k1k_all_gpus": (plan, ["task=plan", "model=deepseek_r1", "workload=8k1k",
                                     "plan.precisions=[fp4,fp8]"]),
    "validate_all_pages": (validate, ["task=validate"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_task_end_to_end(benchmark: BenchmarkFixture, name: str, tmp_path: Path) -> None:
    module, overrides = CASES[name]
    cfg = compose(overrides)
    benchmark.pedantic(lambda: module.run(cfg, tmp_path), rounds=1, iterations=1)
