"""The Hydra CLI: `specsim task=compare ...` (also `python -m simulator`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from simulator.catalog import CONF_DIR, SpecError
from simulator.economics import RateLookupError

TASKS = ("compare",)


def run_dir() -> Path:
    try:
        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path.cwd()


def task_compare(cfg: dict[str, Any], out: Path) -> None:
    from simulator.tasks.compare import format_table, plot_compare, run_compare
    from simulator.tasks.setup import build_rates, build_scenario, keys_of, targets_of

    sc = build_scenario(cfg)
    rates, tier = build_rates(cfg)
    if cfg.get("search") not in ("benchmark", "open"):
        raise SpecError(f"search must be 'benchmark' or 'open', got {cfg.get('search')!r}")
    result = run_compare(sc, keys_of(cfg), cfg["search"], rates, tier, targets_of(cfg))
    print(format_table(result))
    result.points_frame().to_csv(out / "curves.csv", index=False)
    plot_compare(result, str(out / "curves.png"))
    print(f"wrote {out / 'curves.csv'} and {out / 'curves.png'}")
    if cfg.get("report"):
        path = Path(cfg["report"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result.report(), indent=2))
        print(f"wrote {path}")


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def app(cfg: DictConfig) -> None:
    plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    task = plain.get("task")
    try:
        if task not in TASKS:
            raise SpecError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
        {"compare": task_compare}[task](plain, run_dir())
    except (SpecError, RateLookupError, FileNotFoundError) as e:
        print(f"specsim: error: {e}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
