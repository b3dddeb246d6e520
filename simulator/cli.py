"""The Hydra CLI: `specsim task=compare ...` (also `python -m simulator`). The only module that imports Hydra.

Hydra composes conf/config.yaml (the groups) over a structured schema derived from `RunConfig`'s fields, so
every plain key and its default has one home (simulator/tasks/config.py). The composed config is validated
into a `RunConfig` and handed to the task, which never sees Hydra.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel

from simulator.catalog import CONF_DIR, SpecError
from simulator.economics import RateLookupError
from simulator.pages import PageParseError
from simulator.runconfig import GROUPS, RunConfig, run_config

# task name -> module with `run(cfg: RunConfig, out: Path) -> None`
TASKS: dict[str, str] = {
    "compare": "simulator.tasks.compare",
    "validate": "simulator.tasks.validate",
    "calibrate": "simulator.tasks.calibrate",
    "sweep": "simulator.tasks.sweep",
    "plan": "simulator.tasks.plan",
    "advise": "simulator.tasks.advise",
    "summarize": "simulator.tasks.summarize",
}
# RunConfig fields filled from the composed groups, not plain keys of the schema
GROUP_FIELDS = (*GROUPS, "acceptance", "rate_tier")


def schema_of(model: type[BaseModel], skip: tuple[str, ...] = ()) -> type:
    """A dataclass mirroring `model`'s fields and defaults, for Hydra's ConfigStore (types left to pydantic)."""
    fields: list[tuple[str, Any, Any]] = []
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            sub = schema_of(ann)
            fields.append((name, sub, dataclasses.field(default_factory=sub)))
        else:
            default = info.get_default(call_default_factory=True)
            fields.append((name, Any, dataclasses.field(default_factory=lambda d=default: copy.deepcopy(d))))
    return dataclasses.make_dataclass(f"{model.__name__}Schema", fields)


def register_schema() -> None:
    """Store the schema (first in config.yaml's defaults) with Hydra's ConfigStore.

    It is left open (struct off) so the groups merge in; Hydra makes the composed config struct again, so an
    unknown key on the command line still needs `+key=`.
    """
    node = OmegaConf.structured(schema_of(RunConfig, skip=GROUP_FIELDS))
    OmegaConf.set_struct(node, False)
    ConfigStore.instance().store(name="specsim_schema", node=node)


register_schema()


def compose(overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The RunConfig that `specsim OVERRIDES...` would run (Hydra's compose API), for programmatic use."""
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = hydra.compose(config_name="config", overrides=list(overrides))
    return run_config(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]


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
    try:
        run_cfg = run_config(plain)
        importlib.import_module(TASKS[run_cfg.task]).run(run_cfg, run_dir())
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
