"""The benchmarks time one process: pytest-benchmark disables itself under pytest-xdist, which the project's
addopts turn on for the test suite (-n auto). Ask for -n 0 instead of reporting nothing."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    workers = getattr(config.option, "numprocesses", None)
    if workers not in (None, 0):
        raise pytest.UsageError(
            "bench/ times one process and pytest-benchmark measures nothing under pytest-xdist: "
            "run `pytest bench/ -n 0 --benchmark-json=bench.json` (the project's addopts set -n auto for tests/)")
