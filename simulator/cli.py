"""The Hydra CLI: `specsim task=compare ...` (also `python -m simulator`)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from simulator.catalog import CONF_DIR, SpecError
from simulator.config_schema import SpecsimConfig
from simulator.economics import RateLookupError
from simulator.pages import PageParseError

# task name -> module with `run(cfg: dict, out: Path) -> None` (a plain config mapping, no Hydra inside)
TASKS: dict[str, str] = {
    "compare": "simulator.tasks.compare",
    "validate": "simulator.tasks.validate",
    "calibrate": "simulator.tasks.calibrate",
    "sweep": "simulator.tasks.sweep",
    "plan": "simulator.tasks.plan",
    "advise": "simulator.tasks.advise",
    "summarize": "simulator.tasks.summarize",
}



def register_schema() -> None:
    """Store the typed top-level schema (first in config.yaml's defaults) with Hydra's ConfigStore.

    The pydantic specs validate the groups after composition. The schema is left open (struct off) so a
    key added to config.yaml without a schema field still composes; Hydra makes the composed config struct
    again, so an unknown key on the command line still needs `+key=`.
    """
    node = OmegaConf.structured(SpecsimConfig)
    OmegaConf.set_struct(node, False)
    ConfigStore.instance().store(name="specsim_schema", node=node)


register_schema()


def run_dir() -> Path:
    try:
        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path.cwd()


def in_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def app(cfg: DictConfig) -> None:
    plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    task = plain.get("task")
    try:
        if task not in TASKS:
            raise SpecError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
        importlib.import_module(TASKS[task]).run(plain, run_dir())
    except (SpecError, RateLookupError, PageParseError, FileNotFoundError) as e:
        print(f"specsim: error: {e}", file=sys.stderr)
        if in_multirun():  # one bad job must not end the sweep: record it for task=summarize and go on
            (run_dir() / "error.txt").write_text(f"{e}\n")
            return
        sys.exit(2)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
