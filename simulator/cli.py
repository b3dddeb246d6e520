"""The Hydra CLI: `specsim task=compare ...` (also `python -m simulator`). The only module that imports Hydra.

Hydra composes conf/config.yaml (the groups) over a structured schema derived from `RunConfig`'s fields, so
every plain key and its default has one home (simulator/runconfig.py). The composed config is validated
into a `RunConfig` and handed to the task, which never sees Hydra.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib
import sys
import traceback
import typing
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, ValueType
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel

from simulator.catalog import CONF_DIR, SpecError, list_keys
from simulator.economics import RateLookupError
from simulator.pages import PageParseError
from simulator.runconfig import (
    EXIT_ERROR,
    EXIT_INFEASIBLE,
    GROUPS,
    RENAMED_KEYS,
    NothingFeasible,
    RunConfig,
    run_config,
)
from simulator.specs import HardwareSpec, ModelSpec, WorkloadSpec

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

TASK_HELP = {
    "compare": "MTP vs Off at matched interactivity for one model x GPU x precision x workload (the default)",
    "validate": "predict the bundled benchmark pages (or pages=[...]) and report the errors; cv=... refits",
    "calibrate": "fit the efficiency knobs and acceptance scales to the measured data (calibrate.install=true "
                 "installs it)",
    "sweep": "one launch of the sweep engine over sweep.* lists; the binned frontiers out",
    "plan": "the cheapest GPU, precision and MTP setting per interactivity floor for demand_tok_s",
    "advise": "which draft length k to run per GPU and floor (also written by plan)",
    "summarize": "collect a multirun's jobs (summarize.dir=PATH) into one table at matched targets",
}
SELECTABLE_GROUPS = ("hardware", "model", "workload", "rates", "calibration")  # deployments, page_figures: internal


def _allowed(annotation: Any) -> str:
    """'a | b | c' for a Literal (inside Optional / list / Union too), '' otherwise."""
    literals: list[str] = []
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is typing.Literal:
            literals += [str(a).lower() if isinstance(a, bool) else str(a) for a in typing.get_args(arg)]
        elif typing.get_args(arg) and arg is not annotation:
            literals += _allowed(arg).split(" | ") if _allowed(arg) else []
    if bool in typing.get_args(annotation) or annotation is bool:
        literals = ["true", "false", *literals]
    return " | ".join(dict.fromkeys(literals))


def key_lines(model: type[BaseModel], prefix: str = "", skip: tuple[str, ...] = ()) -> list[str]:
    """One help line per plain key of `model` (nested settings flattened): name, default, allowed, description."""
    lines: list[str] = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if name in skip:
            continue
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            lines += key_lines(ann, f"{prefix}{name}.")
            continue
        default = info.get_default(call_default_factory=True)
        default = "null" if default is None else str(default).lower() if isinstance(default, bool) else default
        allowed = _allowed(ann)
        text = " ".join(x for x in (f"[{allowed}]" if allowed else "", info.description or "") if x)
        lines.append(f"  {prefix + name:28s} = {str(default).replace(' ', ''):12s} {text}".rstrip())
    return lines


def help_text() -> str:
    """`specsim --help` (hydra.help.template in conf/config.yaml resolves to this)."""
    lines = ["specsim: roofline + speculative-decoding (MTP) simulator for LLM serving economics", "",
             "usage: specsim [task=TASK] [group=option ...] [key=value ...]      (also python -m simulator)",
             "       specsim -m key=a,b ...   (multirun: one job per combination)", "", "== Tasks (task=) =="]
    lines += [f"  {name:10s} {text}" for name, text in TASK_HELP.items()]
    lines += ["", "== Groups (group=option) =="]
    lines += [f"  {g:12s} {', '.join(list_keys(g))}" for g in SELECTABLE_GROUPS]
    lines += ["  (your own files: hydra.searchpath=[file://DIR] with DIR/hardware/NAME.yaml, DIR/model/..., "
              "see examples/user_conf)", "", "== Main keys (key=value; default, [allowed values]) =="]
    lines += key_lines(RunConfig, skip=GROUP_FIELDS)
    lines += ["", "== Outputs ==",
              "  each run writes into outputs/DATE/TIME/ (hydra.run.dir=PATH to choose), a multirun into",
              "  multirun/DATE/TIME/N/ (hydra.sweep.dir=PATH); the printed table is also in report=PATH (JSON).",
              "  exit codes: 0 ok, 2 a configuration error (named), 3 nothing feasible (compare), 1 a crash.",
              "", "Hydra's own flags: --hydra-help;  the composed config: --cfg job"]
    return "\n".join(lines).replace("$", "$$")  # Hydra substitutes $NAMES in the template


OmegaConf.register_new_resolver("specsim_help", help_text, replace=True)


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


USER_ERRORS = (SpecError, RateLookupError, PageParseError, FileNotFoundError)
ERROR_FILE, INFEASIBLE_FILE = "error.txt", "infeasible.txt"  # a multirun job's recorded outcome


class MultirunErrors(Callback):
    """Registered in conf/config.yaml (hydra.callbacks): after a multirun, find the jobs that erred (their
    error.txt, written by `app` in whichever process the launcher ran them) so `main` exits non-zero."""

    erred: list[Path] = []

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        MultirunErrors.erred = sorted(sweep_dir.rglob(ERROR_FILE)) if sweep_dir.is_dir() else []


def record(name: str, text: str) -> None:
    """Write a multirun job's outcome file in its run dir (read by task=summarize and MultirunErrors)."""
    (run_dir() / name).write_text(text if text.endswith("\n") else text + "\n")


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def app(cfg: DictConfig) -> None:
    plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    multirun = in_multirun()
    try:
        run_cfg = run_config(plain)
        importlib.import_module(TASKS[run_cfg.task]).run(run_cfg, run_dir())
    except NothingFeasible as e:
        print(f"specsim: {e}", file=sys.stderr)
        if multirun:  # a result of this job, not a failure of the sweep
            record(INFEASIBLE_FILE, str(e))
            return
        sys.exit(EXIT_INFEASIBLE)
    except USER_ERRORS as e:
        print(f"specsim: error: {e}", file=sys.stderr)
        if multirun:  # one bad job must not end the sweep: record it for task=summarize and go on
            record(ERROR_FILE, str(e))
            return
        sys.exit(EXIT_ERROR)
    except Exception as e:
        if not multirun:
            raise
        traceback.print_exc()  # a crash in one job: recorded, the sweep goes on, the exit code says so
        record(ERROR_FILE, f"{type(e).__name__}: {e}")


def renamed_key_error(argv: list[str]) -> str | None:
    """The message for an override of a renamed key (`acceptance_scale=1`), else None."""
    for arg in argv:
        key = arg.lstrip("+~").split("=", 1)[0]
        if "=" in arg and key in RENAMED_KEYS:
            return f"specsim: error: {key} was renamed: use {RENAMED_KEYS[key]}"
    return None


def plain_keys(model: type[BaseModel] = RunConfig, prefix: str = "", skip: tuple[str, ...] = GROUP_FIELDS
               ) -> list[str]:
    """Every plain key of the command line (nested settings flattened: `plan.gpus`), in RunConfig's order."""
    keys: list[str] = []
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += plain_keys(ann, f"{prefix}{name}.", ())
        else:
            keys.append(prefix + name)
    return keys


# flags of Hydra's own whose value is the next argument (it is no override)
FLAGS_WITH_VALUE = ("-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-c", "--cfg",
                    "-p", "--package", "-i", "--info", "--experimental-rerun")


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _overrides(argv: list[str]) -> tuple[list[str], bool]:
    """The override arguments of `argv` (Hydra's flags and their values left out), and whether a flag names
    another config dir (-cd / -cp: the groups' options are then unknown here)."""
    args, other_conf, skip_next = [], False, False
    for arg in argv:
        if skip_next:
            skip_next = False
            continue
        if arg.startswith("-"):
            flag = arg.split("=", 1)[0]
            other_conf |= flag in ("-cp", "--config-path", "-cd", "--config-dir")
            skip_next = arg in FLAGS_WITH_VALUE
            continue
        args.append(arg)
    return args, other_conf


def group_options(group: str, overrides: list[Override]) -> list[str] | None:
    """The names `group=` accepts: conf/GROUP/*.yaml plus the files of each hydra.searchpath dir (None when
    a search path is not a plain directory: the options are then Hydra's to judge)."""
    names = list_keys(group)
    for o in overrides:
        if o.key_or_group != "hydra.searchpath":
            continue
        paths = o.value()
        for path in paths if isinstance(paths, list) else [paths]:
            if not (isinstance(path, str) and path.startswith("file://")):
                return None
            names += list_keys(group, Path(path.removeprefix("file://")))
    return sorted(set(names))


def _shown(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, (bool, float)) else repr(value) \
        if isinstance(value, str) else str(value)


def _group_error(o: Override, overrides: list[Override]) -> str | None:
    group = o.key_or_group
    options = group_options(group, overrides)
    if options is None or o.value_type in (ValueType.GLOB_CHOICE_SWEEP, ValueType.INTERVAL_SWEEP):
        return None
    values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
    for v in values:
        if isinstance(v, str) and (v in options or "${" in v):
            continue
        got = _shown(v) if not isinstance(v, str) else f"'{v}'"
        hint = _suggest(v, options) if isinstance(v, str) else ""
        return f"{group}: expected one of {', '.join(options)}; got {got}{hint}"
    return None


# the fields a group file's spec has (`hardware.hbm_bandwidth_tb_s=9.6` overrides one of the selected file)
GROUP_SPECS: dict[str, tuple[str, ...]] = {
    "hardware": tuple(HardwareSpec.model_fields), "workload": tuple(WorkloadSpec.model_fields),
    "model": (*ModelSpec.model_fields, "acceptance")}


def _key_error(o: Override) -> str | None:
    key = o.key_or_group
    keys = plain_keys()
    parts = key.split(".")
    if parts[0] in GROUP_SPECS and len(parts) > 1 and parts[1] not in GROUP_SPECS[parts[0]]:
        fields = GROUP_SPECS[parts[0]]
        return (f"unknown key '{key}': {parts[0]} has no field '{parts[1]}'"
                f"{_suggest(parts[1], list(fields))}; fields: {', '.join(fields)}")
    if parts[0] in GROUPS or any(".".join(parts[:i]) in keys for i in range(1, len(parts) + 1)):
        return None  # a plain key, one inside a dict-valued key, or a field of a group file (Hydra checks it)
    tops = list(dict.fromkeys(k.split(".")[0] + (".*" if "." in k else "") for k in keys))
    return (f"unknown key '{key}'{_suggest(key, keys + list(SELECTABLE_GROUPS))}; keys: {', '.join(tops)}; "
            f"groups: {', '.join(SELECTABLE_GROUPS)} (specsim --help lists each with its values)")


def override_error(argv: list[str]) -> str | None:
    """The one-line message for an override Hydra would answer with its own multi-line text or a traceback:
    a group given something that is not one of its names (`hardware=null`, `model=[a,b]`, `model=gpt5`), an
    unknown key (`modle=glm5`), a malformed override. None when every override is fine (Hydra goes on)."""
    args, other_conf = _overrides(argv)
    parser, overrides = OverridesParser.create(), []
    for arg in args:
        try:
            overrides += parser.parse_overrides([arg])
        except HydraException as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            return f"specsim: error: cannot read the override {arg!r} (key=value, lists as [a,b]): {first}"
    for o in overrides:
        if o.is_hydra_override() or o.package is not None or o.type == OverrideType.DEL:
            continue
        if o.key_or_group in SELECTABLE_GROUPS:
            message = None if other_conf else _group_error(o, overrides)
        elif o.type == OverrideType.CHANGE:  # +key / ++key add on purpose: pydantic names an unknown one
            message = _key_error(o)
        else:
            message = None
        if message:
            return f"specsim: error: {message}"
    return None


def main() -> None:
    message = renamed_key_error(sys.argv[1:]) or override_error(sys.argv[1:])
    if message:
        print(message, file=sys.stderr)
        sys.exit(EXIT_ERROR)
    MultirunErrors.erred = []
    app()
    if MultirunErrors.erred:
        print(f"specsim: {len(MultirunErrors.erred)} job(s) failed: "
              + ", ".join(str(p.parent) for p in MultirunErrors.erred), file=sys.stderr)
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
