"""Build the shipped deployment tables from an InferenceX benchmark-config snapshot.

Regenerates ``conf/deployments/benchmark.yaml`` (single-node deployments) and
``conf/deployments/multinode.yaml`` (disaggregated xPyD rows)::

    python tools/build_deployments.py --shared ../shared

Inputs (all under ``<shared>/data/benchmark-configs``, InferenceX, Apache-2.0):

* ``nvidia-master.yaml`` / ``amd-master.yaml``: current single-node fixed-seq-len entries and the multi-node
  (disaggregated) recipes.
* ``engine_settings.yaml``: the ``config_entries`` strings of retired master configs (files under
  ``deprecated/``, e.g. the 1k/1k ones), the draft settings and the engine limits each benchmark script set.
* Draft lengths missing from ``engine_settings.yaml`` fall back to the benchmark's MTP rules
  (docs/sources.md#benchmark-methodology, "Deployments that were benchmarked").

Each generated file records the upstream commit (from the ``engine_settings.yaml`` header) and the sha256 of
every input file it was read from. This tool is not part of the installed package: the simulator only reads
the generated files (``simulator.search_space``).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import math
import operator
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: import this checkout's simulator, not an installed one
    sys.path.insert(0, str(REPO_ROOT))

from simulator.catalog import load_hardware, load_model  # noqa: E402
from simulator.search_space import (  # noqa: E402
    DEFAULT_PATH,
    LIMIT_KEYS,
    MULTINODE_KEY,
    MULTINODE_PATH,
    SOURCE_KEY,
    SPECULATION_OVERLAPPED_BY_DEFAULT,
    TOP_KEY,
    BenchmarkDeployment,
    MultinodeDeployment,
    SearchSpaceTable,
    default_limits,
    kv_cache_dtype_of,
)
from simulator.specs.topology import DisaggregatedSpec, WorkerSpec  # noqa: E402
from simulator.specs.vocabulary import WORKLOADS, KvCacheDtype, StateDtype  # noqa: E402
from simulator.specs.vocabulary import Side as Spec  # noqa: E402

REPOSITORY = "https://github.com/SemiAnalysisAI/InferenceX"
CONFIG_DIR = Path("data") / "benchmark-configs"
MASTER_FILES = ("nvidia-master.yaml", "amd-master.yaml")
SETTINGS_FILE = "engine_settings.yaml"

# InferenceX model-prefix -> simulator catalog key (prefixes not listed are skipped).
MODEL_KEYS: dict[str, str] = {
    "dsr1": "deepseek_r1",
    "dsv4": "deepseek_v4_pro",
    "glm5": "glm5",
    "glm5.1": "glm5",
    "glm5.2": "glm5",
    "qwen3.5": "qwen3_5_397b",
    "kimik2.5": "kimi_k2_5",
    "gptoss": "gpt_oss_120b",
}
GPUS = frozenset({"h100", "h200", "b200", "b300", "mi300x", "mi325x", "mi355x"})
ENGINES = frozenset({"sglang", "vllm", "trt", "atom"})


# ----------------------------------------------------------------------------- raw rows


@dataclass(frozen=True)
class _Row:
    """One search-space row of a master config, before draft lengths are resolved."""

    file: str
    entry: str
    prefix: str
    gpu: str
    precision: str
    engine: str
    spec: Spec
    isl: int
    osl: int
    tp: int
    ep: int
    dp_attn: bool
    concurrencies: tuple[int, ...]
    image: str = ""  # the container image the row ran (master config `image`, or the entry string's [..])


def expand_conc(start: int, end: int) -> list[int]:
    """Doubling sweep from ``start`` up to ``end``; ``end`` is always included."""
    if start < 1 or end < start:
        raise ValueError(f"bad concurrency range {start}-{end}")
    values: list[int] = []
    conc = start
    while conc < end:
        values.append(conc)
        conc *= 2
    values.append(end)
    return values


def parse_conc(text: str) -> list[int]:
    """Parse ``"4-256"`` (doubling range), ``"1,8,16"`` (explicit list) or ``"64"``."""
    text = text.strip()
    if "-" in text:
        start, end = text.split("-", 1)
        return expand_conc(int(start), int(end))
    return sorted({int(v) for v in text.split(",")})


def _gpu_from_runner(runner: str) -> str:
    """``"cluster:b200-dgxc"`` / ``"b200-dsv4"`` / ``"h200"`` -> ``"b200"`` / ``"b200"`` / ``"h200"``."""
    return runner.removeprefix("cluster:").split("-", 1)[0]


def _spec_of(value: Any) -> Spec:
    if value in (None, "none", "off"):
        return "off"
    if value == "mtp":
        return "mtp"
    raise ValueError(f"unknown spec-decoding value {value!r}")


def _row_concurrencies(space: dict[str, Any]) -> tuple[int, ...]:
    if "conc-list" in space:
        return tuple(sorted(set(space["conc-list"])))
    return tuple(expand_conc(int(space["conc-start"]), int(space["conc-end"])))


_SYNTHETIC_ON = "SYNTHETIC_ACCEPTANCE=true"
_SYNTHETIC_LENGTH = re.compile(r"^SYNTHETIC_ACCEPTANCE_LENGTH=(?P<al>[0-9.]+)$")


def pinned_acceptance(settings: Iterable[str], where: str) -> float | None:
    """The acceptance length a recipe pins instead of measuring it, or None.

    InferenceX recipes switch the engine's synthetic acceptance on with ``SYNTHETIC_ACCEPTANCE=true`` and
    set its length with ``SYNTHETIC_ACCEPTANCE_LENGTH=x`` in a row's ``additional-settings`` (nvidia-master.yaml:
    "SYNTHETIC_ACCEPTANCE is a throughput-only control (injected into the recipe by
    runners/inject_synthetic_acceptance.py)"); the prefill and decode lists of a row are read together. A
    length without the switch, the switch without a length, or two different lengths are errors naming `where`.
    """
    items = [str(x).strip() for x in settings]
    lengths = {float(m["al"]) for x in items if (m := _SYNTHETIC_LENGTH.match(x))}
    on = _SYNTHETIC_ON in items
    if not on and not lengths:
        return None
    if not on or len(lengths) != 1:
        raise ValueError(f"{where}: synthetic acceptance needs {_SYNTHETIC_ON} and one SYNTHETIC_ACCEPTANCE_LENGTH, "
                         f"got {[x for x in items if x.startswith('SYNTHETIC_ACCEPTANCE')]}")
    return lengths.pop()


def _master_rows(path: Path) -> Iterator[_Row]:
    """Single-node fixed-seq-len rows of one current master config (a row that pins its acceptance is an
    error: the single-node table has no field for it, and no such row exists in the snapshot read)."""
    data = yaml.safe_load(path.read_text())
    for name, entry in data.items():
        if entry.get("multinode") or entry.get("disagg"):
            continue
        for workload in entry.get("scenarios", {}).get("fixed-seq-len", []):
            for space in workload["search-space"]:
                if space.get("pp", 1) != 1 or space.get("pcp-size", 1) != 1:
                    continue
                if pinned_acceptance(space.get("additional-settings") or [], f"{path.name} {name}") is not None:
                    raise ValueError(f"{path.name} {name}: a single-node row pins its acceptance; "
                                     "conf/deployments/benchmark.yaml cannot carry it yet")
                yield _Row(
                    file=path.name,
                    entry=name,
                    prefix=entry["model-prefix"],
                    gpu=_gpu_from_runner(entry["runner"]),
                    precision=entry["precision"],
                    engine=entry["framework"],
                    spec=_spec_of(space.get("spec-decoding")),
                    isl=int(workload["isl"]),
                    osl=int(workload["osl"]),
                    tp=int(space["tp"]),
                    ep=int(space.get("ep", 1)),
                    dp_attn=bool(space.get("dp-attn", False)),
                    concurrencies=_row_concurrencies(space),
                    image=str(entry.get("image", "")),
                )


_ENTRY_RE = re.compile(r"^(?P<file>\S+) (?P<entry>\S+) \[(?P<image>[^\]]*)\]: (?P<rows>.+)$")
_ROW_RE = re.compile(
    r"^(?P<isl>\d+)/(?P<osl>\d+) tp(?P<tp>\d+) ep(?P<ep>\d+)(?P<dpa> dpa)? conc (?P<conc>[\d,\-]+)$"
)


def parse_config_entry(text: str) -> tuple[str, str, list[dict[str, Any]]]:
    """Split an engine_settings ``config_entries`` string into (file, entry name, rows); each row carries the
    entry's image."""
    match = _ENTRY_RE.match(text.strip())
    if match is None:
        raise ValueError(f"unparsable config entry: {text!r}")
    rows = []
    for part in match["rows"].split("; "):
        row = _ROW_RE.match(part.strip())
        if row is None:
            raise ValueError(f"unparsable config row {part!r} in {text!r}")
        rows.append(
            {
                "isl": int(row["isl"]),
                "osl": int(row["osl"]),
                "tp": int(row["tp"]),
                "ep": int(row["ep"]),
                "dp_attn": row["dpa"] is not None,
                "concurrencies": tuple(parse_conc(row["conc"])),
                "image": match["image"],
            }
        )
    return match["file"], match["entry"], rows


def _deprecated_rows(items: list[dict[str, Any]]) -> Iterator[_Row]:
    """Rows of retired master configs, which survive only as engine_settings strings."""
    seen: set[str] = set()
    for item in items:
        for text in item.get("config_entries", []):
            if not text.startswith("deprecated/") or text in seen:
                continue
            seen.add(text)
            file, entry, rows = parse_config_entry(text)
            for row in rows:
                yield _Row(
                    file=file,
                    entry=entry,
                    prefix=item.get("model_variant", item["model"]),
                    gpu=item["gpu"],
                    precision=item["precision"],
                    engine=item["engine"],
                    spec="off" if item["spec"] == "none" else "mtp",
                    **row,
                )


# ----------------------------------------------------------------------------- draft lengths

DraftFn = Callable[[int, int], int]  # (isl, conc) -> k
_CONDITIONAL_RE = re.compile(r"(\d+) if ISL>=(\d+) and CONC>=(\d+) else (\d+)")


def _draft_expression(value: Any) -> DraftFn | None:
    """An engine_settings draft value as a function of (isl, conc); None when not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return lambda _isl, _conc: value
    match = _CONDITIONAL_RE.search(str(value))
    if match is None:
        return None
    hit, isl_min, conc_min, miss = (int(g) for g in match.groups())
    return lambda isl, conc: hit if isl >= isl_min and conc >= conc_min else miss


def _draft_field(item: dict[str, Any]) -> tuple[str, Any]:
    """The knob that sets k for this script: SGLang steps (top-k 1), TRT MTP layers, else spec tokens."""
    if item["engine"] == "sglang" and "num_steps" in item:
        if item.get("topk", 1) != 1:
            raise ValueError(f"{item['script']}: top-k {item['topk']} drafts a tree, not a chain")
        return "num_steps", item["num_steps"]
    if "mtp_layers" in item:
        return "mtp_layers", item["mtp_layers"]
    return "num_speculative_tokens", item.get("num_speculative_tokens")


def _when_allows(when: str, dp_attn: bool) -> bool:
    """Whether an item's condition branch can apply to a row (only DP-attention is decisive).

    ``"always (...)"`` marks a script without branches; its parenthesised note is not a condition.
    """
    if when.startswith("always"):
        return True
    if "DP_ATTENTION=true" in when:
        return dp_attn
    if "DP_ATTENTION=false" in when:
        return not dp_attn
    return True


def _methodology_draft(row: _Row, conc: int) -> int | None:
    """MTP draft lengths the benchmark methodology states (docs/sources.md#benchmark-methodology), for scripts
    that leave k implicit."""
    if row.engine == "sglang":
        return 2 if row.prefix == "dsr1" and row.gpu in {"b200", "b300", "h200"} else 3
    if row.engine == "trt" and row.prefix == "dsr1":
        return 1 if row.dp_attn else 3
    if row.engine == "trt" and row.prefix == "dsv4":
        return 2 if row.isl >= 4096 and conc >= 128 else 3
    if row.engine == "vllm" and row.prefix == "dsv4":
        return 2
    if row.engine == "atom":
        return 3
    return None


def _matching_items(items: list[dict[str, Any]], row: _Row) -> list[dict[str, Any]]:
    """engine_settings items (condition branches) of the MTP script that ran this row."""
    tag = f"{row.file} {row.entry} ["
    return [
        item
        for item in items
        if item["spec"] != "none"
        and any(text.startswith(tag) for text in item.get("config_entries", []))
        and _when_allows(str(item.get("when", "")), row.dp_attn)
    ]


def _draft_from_items(items: list[dict[str, Any]], row: _Row, conc: int) -> tuple[int, str] | None:
    """k from the script's own settings; raises when its branches disagree."""
    found: set[tuple[int, str]] = set()
    for item in items:
        field, value = _draft_field(item)
        fn = _draft_expression(value)
        if fn is not None:
            script = item["script"].rsplit("/", 1)[-1]
            found.add((fn(row.isl, conc), f"{SETTINGS_FILE} {script} {field}"))
    if len({k for k, _ in found}) > 1:
        raise ValueError(f"conflicting draft lengths for {row.entry} tp{row.tp} conc {conc}: {sorted(found)}")
    return min(found) if found else None


def _resolve_draft(items: list[dict[str, Any]], row: _Row, conc: int) -> tuple[int, str]:
    resolved = _draft_from_items(_matching_items(items, row), row, conc)
    if resolved is not None:
        return resolved
    fallback = _methodology_draft(row, conc)
    if fallback is None:
        raise ValueError(f"no draft length known for {row.file} {row.entry}")
    return fallback, "methodology.md MTP settings"


# ----------------------------------------------------------------------------- engine limits


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv}
_CMPS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
         ast.Eq: operator.eq, ast.NotEq: operator.ne}
_FUNCS = {"max": max, "min": min, "ceil": math.ceil, "ceil64": lambda x: 64 * math.ceil(x / 64)}
_POW2_RE = re.compile(r"^next power of two >= (?P<expr>.+) \(min (?P<lo>\d+), max (?P<hi>\d+)\)$")
_WORKED_OUT_RE = re.compile(r"\s+=\s+")  # "F = G" (a comparison is written "A=x", without spaces)
_SEGMENT_RE = re.compile(r"^(?:(?P<cond>[^:]+): (?P<val>.+)|(?P<val2>.+?) if (?P<cond2>.+)|else (?P<other>.+))$")


def _eval_node(node: ast.AST, env: dict[str, Any]) -> Any:
    """A tiny, closed arithmetic evaluator for engine_settings expressions (no names beyond `env`)."""
    if isinstance(node, ast.Expression):
        return _eval_node(node.body, env)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in env:
            raise ValueError(f"unknown name {node.id!r}")
        return env[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval_node(node.left, env), _eval_node(node.right, env))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMPS:
        return _CMPS[type(node.ops[0])](_eval_node(node.left, env), _eval_node(node.comparators[0], env))
    if isinstance(node, ast.BoolOp):
        values = [_eval_node(v, env) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.IfExp):
        return _eval_node(node.body if _eval_node(node.test, env) else node.orelse, env)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
        return _FUNCS[node.func.id](*(_eval_node(a, env) for a in node.args))
    raise ValueError(f"unsupported expression {ast.dump(node)}")


def _pythonic(text: str) -> str:
    """The scripts' notation as a Python expression: `A=x` comparisons, true/false, "engine default"."""
    text = re.sub(r"(?<![<>=!])=(?!=)", "==", text.replace(", else", " else"))
    text = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", text))
    return text.replace("engine default", "None")


def _segments(text: str) -> str:
    """`V if C; W if D; else E` and `C: V; ...; else E` (one value per condition) as one Python expression."""
    parts = [p.strip() for p in text.split(";")]
    out = "None"
    for part in reversed(parts):
        m = _SEGMENT_RE.match(part)
        if m is None:
            raise ValueError(f"unparsable branch {part!r}")
        if m["other"] is not None:
            out = m["other"]
        else:
            cond = (m["cond"] or m["cond2"]).replace(",", " and ")
            out = f"({m['val'] or m['val2']}) if ({cond}) else ({out})"
    return out


def resolve_setting(value: Any, env: dict[str, Any]) -> int | None:
    """An engine_settings value for one condition (`env`: CONC, ISL, OSL, TP, EP_SIZE, DP_ATTENTION, MTP,
    max_batch_size), as the script computes it (bash integer arithmetic: floored); None = engine default.
    Raises ValueError on a value it cannot read, and on one that is not a limit (a comparison, or below 1).

    ``"F = G"`` (spaces around one ``=``) states a formula F and its value worked out for one case G, e.g.
    ``"max(8, CONC*3/2) = 768"`` or ``"ceil64((MTP+1)*max_batch_size+ISL+64) = ceil64(4*CONC+ISL+64)"``: F is
    the setting. (Read whole, the ``=`` would become a comparison and the limit the truth value 1.)"""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, list):
        return int(max(value))
    text = str(value).strip()
    if text.startswith("engine default") or text == "not set":
        return None
    pow2 = _POW2_RE.match(text)
    if pow2:
        x = _eval_node(ast.parse(_pythonic(pow2["expr"]), mode="eval"), env)
        return min(max(2 ** math.ceil(math.log2(max(x, 1))), int(pow2["lo"])), int(pow2["hi"]))
    text = _WORKED_OUT_RE.split(text, maxsplit=1)[0]  # "F = G": G is F worked out for one case
    text = re.sub(r"\s+\([^()]*\)$", "", text)  # a trailing note, e.g. "(--cuda-graph-max-bs-decode)"
    if ";" in text:
        text = _segments(text)
    result = _eval_node(ast.parse(_pythonic(text), mode="eval"), env)
    if result is None:
        return None
    if isinstance(result, bool) or not isinstance(result, int | float):
        raise ValueError(f"{value!r} evaluates to {result!r}, not a number")
    if math.floor(result) < 1:
        raise ValueError(f"{value!r} evaluates to {result!r} at {env}: below 1, not a limit an engine accepts")
    return int(math.floor(result))


def _graph_batch_list(value: Any, env: dict[str, Any]) -> int | None:
    """Largest batch of an explicit capture list (a list, its text "[1, 2, ...]", or a ladder described as
    running "to CONC"); None where the script leaves the engine default. Raises ValueError on other text."""
    if isinstance(value, list):
        return int(max(value))
    text = str(value).strip()
    if text.startswith("engine default") or text == "not set":
        return None
    if re.fullmatch(r"\[\s*\d+(\s*,\s*\d+)*\s*\]", text):
        return max(int(v) for v in text.strip("[]").split(","))
    if text.endswith("to CONC"):
        return int(env["CONC"])
    raise ValueError(f"unreadable CUDA-graph capture list {value!r}")


def _settings_items(items: list[dict[str, Any]], row: _Row) -> list[dict[str, Any]]:
    """engine_settings items (condition branches) of the script that ran this row (either side)."""
    tag = f"{row.file} {row.entry} ["
    return [
        item
        for item in items
        if (item["spec"] == "none") == (row.spec == "off")
        and any(text.startswith(tag) for text in item.get("config_entries", []))
        and _when_allows(str(item.get("when", "")), row.dp_attn)
    ]


def _item_limits(item: dict[str, Any], env: dict[str, Any]) -> dict[str, int | None]:
    """One branch's limits at one condition. A value it cannot read stops the build (ValueError naming the
    script and the setting) rather than falling back to a default or to a misread number."""
    st = item.get("settings", {})
    out: dict[str, int | None] = {}
    try:
        for key in ("max_running_requests", "max_num_tokens"):
            out[key] = resolve_setting(st.get(key), env)
            env = {**env, "max_batch_size": out["max_running_requests"] or env["CONC"]}
        key = "cuda_graph_max_bs"
        graph = st.get(key)
        out[key] = (out["max_running_requests"] if graph == "same as max_running_requests"
                    else resolve_setting(graph, env))
        for key in ("cuda_graph_batch_sizes", "cuda_graph_capture_sizes"):
            if out["cuda_graph_max_bs"] is None and key in st:
                out["cuda_graph_max_bs"] = _graph_batch_list(st[key], env)
    except (ValueError, TypeError, ZeroDivisionError, SyntaxError) as e:
        raise ValueError(f"{item['script']} ({item.get('when', '')}): {key} = {st.get(key)!r}: {e}") from e
    return out


# SGLang releases from which speculation runs under the overlap scheduler by default (spec v2): the released
# wheels' sglang/srt/environ.py has SGLANG_ENABLE_SPEC_V2 = EnvBool(False) up to v0.5.10 (built 2026-04-05),
# EnvBool(True) from v0.5.11 (built 2026-05-07); v0.5.14 drops the variable and always runs spec v2 unless the
# overlap schedule is disabled (server_args._handle_speculative_decoding). Nightly images are dated.
SGLANG_SPEC_V2_DEFAULT_FROM = (0, 5, 11)
SGLANG_SPEC_V2_DEFAULT_SINCE = "20260507"
_SGLANG_RELEASE = re.compile(r"sglang(?:-rocm)?:v(\d+)\.(\d+)\.(\d+)")
_SGLANG_NIGHTLY = re.compile(r"sglang(?:-rocm)?:nightly-\S*?(20\d{6})")


def sglang_spec_v2_default(image: str) -> bool | None:
    """Whether the SGLang image runs speculation with the overlap scheduler when the script says nothing:
    from its release number (v0.5.11 on) or its nightly date; None where the tag names neither (e.g. a
    model-specific build such as ``sglang:deepseek-v4-hopper@sha256:...``)."""
    if m := _SGLANG_RELEASE.search(image):
        return tuple(int(x) for x in m.groups()) >= SGLANG_SPEC_V2_DEFAULT_FROM
    if m := _SGLANG_NIGHTLY.search(image):
        return m[1] >= SGLANG_SPEC_V2_DEFAULT_SINCE
    return None


def overlapped_by_default(engine: str, image: str) -> bool:
    """Whether `engine` in `image` speculates under its overlap scheduler when the script says nothing: SGLang by
    its release (`sglang_spec_v2_default`; an image of unknown release: off, the older default), the others as
    search_space.SPECULATION_OVERLAPPED_BY_DEFAULT says for their current releases (every vLLM image the benchmark
    runs is v0.14 or later, every TensorRT-LLM image 1.1 or later)."""
    if engine == "sglang":
        return bool(sglang_spec_v2_default(image))
    return SPECULATION_OVERLAPPED_BY_DEFAULT.get(engine, False)


def speculation_overlapped(items: list[dict[str, Any]], row: _Row) -> bool:
    """Whether the script runs speculation with the overlap scheduler on. SGLang's EAGLE / MTP worker runs
    spec v1 (overlap off) unless SGLANG_ENABLE_SPEC_V2 is on ("Spec v2 is enabled ... and overlap schedule
    is turned on", server_args._handle_speculative_decoding): a script's own setting decides. TensorRT-LLM's
    `overlap_scheduler` and vLLM's `async_scheduling`, where a script sets them to false, turn it off. Where a
    script sets nothing, the image's default (`overlapped_by_default`). Every benchmark script runs eagle top-k
    1, which SGLang's spec v2 needs."""
    if row.spec == "off":
        return False
    default = overlapped_by_default(row.engine, row.image)
    decided = []
    for item in _settings_items(items, row):
        st = item.get("settings") or {}
        env = st.get("env") or {}
        if row.engine == "sglang" and "SGLANG_ENABLE_SPEC_V2" in env:
            decided.append(str(env["SGLANG_ENABLE_SPEC_V2"]).lower() in ("1", "true"))
        elif st.get("overlap_scheduler", st.get("async_scheduling")) is False:
            decided.append(False)
        else:
            decided.append(default)
    return bool(decided) and all(decided)


def _unset(value: Any) -> bool:
    """Whether a settings value leaves the engine's default (not given, "auto", "engine default ...")."""
    text = "" if value is None else str(value).strip().lower()
    return not text or text == "auto" or text.startswith("engine default") or text == "not set"


def _kv_setting(value: Any) -> KvCacheDtype | None:
    """A script's KV-cache dtype as the vocabulary names it; None where the script leaves the engine default
    ("auto" resolves to that default too). Raises ValueError on text it cannot read."""
    if _unset(value):
        return None
    text = str(value).strip().lower()
    if text.startswith("fp8"):  # fp8, fp8_e4m3, fp8_e5m2
        return "fp8"
    if text in ("bf16", "bfloat16"):
        return "bf16"
    raise ValueError(f"unreadable kv_cache_dtype {value!r}")


def _state_setting(value: Any) -> StateDtype | None:
    """A script's --mamba-ssm-dtype as the vocabulary names it; None where it sets none. ValueError otherwise."""
    if _unset(value):
        return None
    names: dict[str, StateDtype] = {"float32": "fp32", "bfloat16": "bf16"}
    if str(value) not in names:
        raise ValueError(f"unreadable mamba_ssm_dtype {value!r}")
    return names[str(value)]


def _script_setting(items: list[dict[str, Any]], row: _Row, read: Callable[[dict[str, Any]], Any]) -> Any:
    """The one value `read` finds in the settings of the row's script (None where no branch sets it); branches
    that disagree, or a value `read` cannot parse, stop the build with the script named."""
    found = set()
    for item in _settings_items(items, row):
        try:
            value = read(item.get("settings") or {})
        except ValueError as e:
            raise ValueError(f"{item['script']} ({item.get('when', '')}): {e}") from e
        if value is not None:
            found.add(value)
    if len(found) > 1:
        raise ValueError(f"{row.file} {row.entry}: branches set different values {sorted(found)}")
    return found.pop() if found else None


def resolve_kv_cache_dtype(items: list[dict[str, Any]], row: _Row) -> tuple[KvCacheDtype, str]:
    """The KV-cache dtype the row's script ran with and where it came from: the script's --kv-cache-dtype (one
    value across its branches, else the build stops), or the engine's default (search_space.kv_cache_dtype_of)."""
    setting = _script_setting(items, row, lambda st: _kv_setting(st.get("kv_cache_dtype")))
    if setting is not None:
        return setting, "kv_cache_dtype script"
    native = load_model(MODEL_KEYS[row.prefix])[0].native_kv_cache_dtype
    return kv_cache_dtype_of(row.engine, native), "kv_cache_dtype " + ("model's native" if native else "engine default")


def resolve_state_dtype(items: list[dict[str, Any]], row: _Row) -> StateDtype | None:
    """The linear-attention state dtype the row's script set (`--mamba-ssm-dtype`, or the
    SGLANG_MAMBA_SSM_DTYPE environment variable, which overrides it); None where it sets none (the model's
    configured dtype). One value across its branches, else the build stops."""
    return _script_setting(items, row, lambda st: _state_setting(
        (st.get("env") or {}).get("SGLANG_MAMBA_SSM_DTYPE", st.get("mamba_ssm_dtype"))))


PER_RANK_LIMIT_ENGINES = frozenset({"trt", "vllm"})  # engines whose running / token limits are per DP rank


def resolve_limits(items: list[dict[str, Any]], row: _Row, conc: int, k: int) -> tuple[dict[str, Any], str]:
    """The limits of one row at one concurrency: the script's values (the tightest where branches differ),
    else the engine's documented default. vLLM's graph limit counts tokens B x (1 + k)."""
    env = {"CONC": conc, "ISL": row.isl, "OSL": row.osl, "TP": row.tp, "EP_SIZE": row.ep,
           "DP_ATTENTION": row.dp_attn, "MTP": k, "max_batch_size": conc}
    found = [_item_limits(item, env) for item in _settings_items(items, row)]
    defaults = default_limits(row.engine, load_hardware(row.gpu).hbm_capacity_gb, row.tp, k)
    out: dict[str, Any] = {}
    origin = []
    for key in LIMIT_KEYS:
        values = [f[key] for f in found if f[key] is not None]
        out[key] = min(values) if values else defaults[key]
        origin.append(f"{key} {'script' if values else 'engine default'}")
    # TensorRT-LLM's max_batch_size / max_num_tokens and vLLM's max_num_seqs / max_num_batched_tokens bound
    # each attention-DP rank's own scheduler (the scripts set them to CONC / TP under DP-attention for that
    # reason); EngineLimits bounds the whole engine, so a per-rank value counts DP = TP times. SGLang's
    # --max-running-requests is the whole engine's already. The CUDA-graph limit stays per rank (EngineLimits).
    per_rank = row.tp if row.dp_attn and row.engine in PER_RANK_LIMIT_ENGINES else 1
    scale = (lambda v: None if v is None else v * per_rank)  # noqa: E731
    limits = {"cuda_graph_max_batch": out["cuda_graph_max_bs"], "cuda_graph_counts_tokens": row.engine == "vllm",
              "max_running_requests": scale(out["max_running_requests"]), "max_num_tokens": scale(out["max_num_tokens"])}
    if per_rank > 1:
        origin.append(f"running and token limits per DP rank x {per_rank}")
    return limits, f"{SETTINGS_FILE}: " + ", ".join(origin)


# ----------------------------------------------------------------------------- table assembly


def _row_key(row: _Row) -> str | None:
    """Table key of a row, or None when the model, GPU, engine or workload is out of scope."""
    model = MODEL_KEYS.get(row.prefix)
    workload = WORKLOADS.get((row.isl, row.osl))
    if model is None or workload is None or row.gpu not in GPUS or row.engine not in ENGINES:
        return None
    return SearchSpaceTable.key(model, row.gpu, row.precision, workload)


def _deployments(row: _Row, items: list[dict[str, Any]]) -> list[BenchmarkDeployment]:
    """One deployment per distinct draft length across the row's concurrencies."""
    origin = f"{row.file} {row.entry}"
    groups: dict[tuple[int | None, str], list[int]] = {}
    rows: dict[tuple[int | None, str], list[tuple[int, int | None, int | None, int | None]]] = {}
    limits_source = ""
    overlapped = speculation_overlapped(items, row)
    kv_dtype, kv_source = resolve_kv_cache_dtype(items, row)
    state_dtype = resolve_state_dtype(items, row)
    for conc in row.concurrencies:
        if row.spec == "off":
            k, source = None, origin
        else:
            k, draft_source = _resolve_draft(items, row, conc)
            source = f"{origin}; k from {draft_source}"
        limits, limits_source = resolve_limits(items, row, conc, k or 0)
        limits_source += f", {kv_source}"
        groups.setdefault((k, source), []).append(conc)
        rows.setdefault((k, source), []).append((conc, limits["cuda_graph_max_batch"],
                                                 limits["max_running_requests"], limits["max_num_tokens"]))
    return [
        BenchmarkDeployment(
            engine=row.engine,
            spec=row.spec,
            tp=row.tp,
            ep=row.ep,
            dp_attn=row.dp_attn,
            concurrencies=concs,
            draft_tokens=k,
            source=source,
            limits=rows[(k, source)],
            cuda_graph_counts_tokens=row.engine == "vllm",
            speculation_overlapped=overlapped,
            limits_source=limits_source,
            kv_cache_dtype=kv_dtype,
            ssm_state_dtype=state_dtype,
        )
        for (k, source), concs in groups.items()
    ]


def _merge(deployments: Iterable[BenchmarkDeployment]) -> list[BenchmarkDeployment]:
    """Union the concurrencies (and their limits) of identical deployments; keep each distinct source once."""
    merged: dict[tuple[Any, ...], tuple[dict[int, tuple[int, int | None, int | None, int | None]], list[str]]] = {}
    for dep in deployments:
        ident = (dep.spec, dep.engine, dep.tp, dep.ep, dep.dp_attn, dep.draft_tokens, dep.cuda_graph_counts_tokens,
                 dep.speculation_overlapped, dep.kv_cache_dtype, dep.ssm_state_dtype)
        limits, sources = merged.setdefault(ident, ({}, []))
        for row in dep.limits:
            limits.setdefault(row[0], row)  # the first source's limits where two scripts ran the same point
        for conc in dep.concurrencies:
            limits.setdefault(conc, (conc, None, None, None))
        for src in (dep.source, dep.limits_source):
            if src and src not in sources:
                sources.append(src)
    result = [
        BenchmarkDeployment(
            spec=spec,
            engine=engine,
            tp=tp,
            ep=ep,
            dp_attn=dp_attn,
            draft_tokens=k,
            concurrencies=sorted(limits),
            source=" | ".join(sorted(s for s in sources if not s.startswith(SETTINGS_FILE))),
            limits=[limits[c] for c in sorted(limits)],
            cuda_graph_counts_tokens=tokens,
            speculation_overlapped=overlapped,
            limits_source=" | ".join(sorted({s for s in sources if s.startswith(SETTINGS_FILE)})),
            kv_cache_dtype=kv_dtype,
            ssm_state_dtype=state_dtype,
        )
        for (spec, engine, tp, ep, dp_attn, k, tokens, overlapped, kv_dtype, state_dtype), (limits, sources)
        in merged.items()
    ]
    return sorted(result, key=lambda d: (d.spec, d.engine, d.tp, d.ep, d.dp_attn, d.draft_tokens or 0))


def _all_rows(config_dir: Path, items: list[dict[str, Any]]) -> Iterator[_Row]:
    for name in MASTER_FILES:
        yield from _master_rows(config_dir / name)
    yield from _deprecated_rows(items)


def extract(shared_dir: Path) -> SearchSpaceTable:
    """Build the table from an InferenceX config snapshot under ``shared_dir``."""
    config_dir = Path(shared_dir) / CONFIG_DIR
    items = yaml.safe_load((config_dir / SETTINGS_FILE).read_text())
    grouped: dict[str, list[BenchmarkDeployment]] = {}
    for row in _all_rows(config_dir, items):
        key = _row_key(row)
        if key is not None:
            grouped.setdefault(key, []).extend(_deployments(row, items))
    return SearchSpaceTable(entries={key: _merge(grouped[key]) for key in sorted(grouped)})


# ----------------------------------------------------------------------------- file I/O



# ----------------------------------------------------------------------------- multi-node / disaggregated rows
_RECIPE_MTP = re.compile(r"mtp(\d+)")
_RECIPE_EPLB = re.compile(r"eplb(\d+)")


def _engine_of(framework: str) -> str:
    for engine in ("trt", "sglang", "vllm", "atom"):
        if engine in framework:
            return engine
    return framework


def _worker(block: dict[str, Any], eplb_slots: int, experts: int | None) -> WorkerSpec:
    redundant = max(0, eplb_slots - experts) if experts and eplb_slots else 0
    return WorkerSpec(tp=int(block["tp"]), ep=int(block.get("ep", 1)), dp_attention=bool(block.get("dp-attn", False)),
                      redundant_experts=redundant)


def multinode_rows(shared_dir: Path, routed_experts: dict[str, int] | None = None
                   ) -> tuple[list[MultinodeDeployment], list[str]]:
    """Every disaggregated fixed-seq-len row of the master configs under `shared_dir` that the simulator can
    read, and one reason per row it skips (0 decode workers, context parallelism, heterogeneous pools,
    PP > 1, an unknown model or GPU). `routed_experts` (catalog model key -> routed experts) turns a recipe's
    `eplbN` slot count into redundant experts (N - routed)."""
    config_dir = Path(shared_dir) / CONFIG_DIR
    rows: list[MultinodeDeployment] = []
    skipped: list[str] = []
    for fname in MASTER_FILES:
        data = yaml.safe_load((config_dir / fname).read_text())
        for name, entry in data.items():
            if not (entry.get("multinode") and entry.get("disagg")):
                continue
            model = MODEL_KEYS.get(entry["model-prefix"])
            gpu = _gpu_from_runner(entry["runner"])
            for workload in entry.get("scenarios", {}).get("fixed-seq-len", []):
                wl = WORKLOADS.get((int(workload["isl"]), int(workload["osl"])))
                for i, space in enumerate(workload["search-space"]):
                    where = f"{fname} {name} row {i}"
                    pre, dec = space.get("prefill", {}), space.get("decode", {})
                    settings = [str(x) for x in (pre.get("additional-settings") or [])
                                + (dec.get("additional-settings") or [])]
                    recipe = " ".join(settings)
                    reason = ""
                    if model is None or wl is None:
                        reason = f"model prefix {entry['model-prefix']!r} or workload not in the catalog"
                    elif int(dec.get("num-worker", 0)) == 0:
                        reason = "0 decode workers (aggregated prefill+decode recipe)"
                    elif any(int(b.get(f, 1)) != 1 for b in (pre, dec) for f in ("pp", "pcp-size", "dcp-size")):
                        reason = "pipeline / context parallelism is not modelled"
                    elif pre.get("hardware") or dec.get("hardware"):
                        reason = "heterogeneous prefill/decode hardware"
                    if reason:
                        skipped.append(f"{where}: {reason}")
                        continue
                    assert model is not None and wl is not None
                    spec = _spec_of(space.get("spec-decoding"))
                    eplb = [int(x) for x in _RECIPE_EPLB.findall(recipe)]
                    experts = (routed_experts or {}).get(model)
                    try:
                        dep = DisaggregatedSpec(
                            prefill=_worker(pre, 0, experts), prefill_workers=int(pre["num-worker"]),
                            decode=_worker(dec, max(eplb, default=0), experts), decode_workers=int(dec["num-worker"]))
                    except ValueError as e:  # pydantic's ValidationError: keep its first message
                        msg = e.errors()[0]["msg"] if hasattr(e, "errors") else str(e)
                        skipped.append(f"{where}: {msg}")
                        continue
                    k: int | None = None
                    if spec == "mtp":
                        named = _RECIPE_MTP.findall(recipe)
                        row = _Row(fname, name, entry["model-prefix"], gpu, entry["precision"],
                                   _engine_of(entry["framework"]), spec, int(workload["isl"]), int(workload["osl"]),
                                   int(dec["tp"]), int(dec.get("ep", 1)), bool(dec.get("dp-attn", False)), ())
                        k = int(named[0]) if named else _methodology_draft(row, int(max(space["conc-list"])))
                        if k is None:
                            skipped.append(f"{where}: no draft length in the recipe or the benchmark methodology")
                            continue
                    pinned = pinned_acceptance(settings, where)
                    overlapped = spec == "mtp" and overlapped_by_default(_engine_of(entry["framework"]),
                                                                         str(entry.get("image", "")))
                    rows.append(MultinodeDeployment(
                        entry=name, engine=_engine_of(entry["framework"]), model=model, hardware=gpu,
                        precision=entry["precision"], workload=wl, spec=spec, draft_tokens=k,
                        concurrencies=sorted(set(space["conc-list"])), deployment=dep,
                        source=f"{where}" + (f"; recipe {recipe.split('/')[-1]}" if recipe else ""),
                        pinned_acceptance_length=pinned, speculation_overlapped=overlapped))
    return rows, skipped




def catalog_routed_experts() -> dict[str, int]:
    """Routed experts of every catalog MoE model the master configs name (for the recipes' `eplbN` slots)."""
    out: dict[str, int] = {}
    for key in sorted(set(MODEL_KEYS.values())):
        model, _ = load_model(key)
        if model.moe_ffns:
            out[key] = max(f.num_experts or 0 for f in model.moe_ffns)
    return out




# ----------------------------------------------------------------------------- the upstream snapshot


@dataclass(frozen=True)
class Snapshot:
    """The upstream snapshot a table is read from: the InferenceX commit and the sha256 of each input file."""

    commit: str
    files: dict[str, str]  # path under shared/ -> sha256 hex digest

    def block(self) -> dict[str, Any]:
        """The ``source`` mapping written into a generated file."""
        return {"repository": REPOSITORY, "license": "Apache-2.0", "commit": self.commit,
                "sha256": dict(self.files)}


def source_commit(shared_dir: Path) -> str:
    """InferenceX commit named in the engine_settings.yaml header ("unknown" where it names none)."""
    text = (Path(shared_dir) / CONFIG_DIR / SETTINGS_FILE).read_text()
    match = re.search(r"^# Commit:\s+([0-9a-f]{7,40})", text, flags=re.MULTILINE)
    return match.group(1) if match else "unknown"


def snapshot(shared_dir: Path, names: Iterable[str]) -> Snapshot:
    """The commit and the sha256 of each named file under ``<shared>/data/benchmark-configs``."""
    files = {}
    for name in names:
        digest = hashlib.sha256((Path(shared_dir) / CONFIG_DIR / name).read_bytes()).hexdigest()
        files[(CONFIG_DIR / name).as_posix()] = digest
    return Snapshot(source_commit(shared_dir), files)


def _header(title: str, snap: Snapshot) -> str:
    lines = [
        *title.splitlines(),
        f"Source: InferenceX benchmark configs ({REPOSITORY}, Apache-2.0),",
        f"  commit {snap.commit}, read from ../shared;",
        "  the `source` block below holds the sha256 of every input file.",
        "Generated file; do not edit. Regenerate with:",
        "  python tools/build_deployments.py --shared ../shared",
    ]
    return "".join(f"# {line}\n" for line in lines)


def _dump(body: dict[str, Any], flow: bool | None = None) -> str:
    return yaml.safe_dump(body, sort_keys=False, default_flow_style=flow, width=200)


def render(table: SearchSpaceTable, snap: Snapshot) -> str:
    """The shipped single-node YAML text: header, the ``source`` block, then the ``benchmark_search_spaces`` map."""
    title = ("Benchmark search spaces: single-node deployments the InferenceX benchmark ran, per\n"
             "model/hardware/precision/workload, with the concurrencies swept, the MTP draft length k and the\n"
             "engine limits each benchmark script set (engine_settings.yaml, retired configs in its config_entries).")
    return (_header(title, snap) + _dump({SOURCE_KEY: snap.block()}, flow=False)
            + _dump({TOP_KEY: {k: [d.model_dump() for d in v] for k, v in table.entries.items()}}))


def render_multinode(rows: list[MultinodeDeployment], skipped: list[str], snap: Snapshot) -> str:
    """The shipped multi-node YAML text: header, the ``source`` block, the rows and the skipped rows' reasons."""
    title = ("Benchmark multi-node search spaces: the disaggregated (xPyD) rows of the InferenceX master configs,\n"
             "with the prefill / decode workers, their parallelism, the conc-list and the MTP draft length.")
    return (_header(title, snap) + _dump({SOURCE_KEY: snap.block()}, flow=False)
            + _dump({MULTINODE_KEY: [_row_dump(r) for r in rows], "skipped": skipped}))


def _row_dump(row: MultinodeDeployment) -> dict[str, Any]:
    """A row as written: every field, but `pinned_acceptance_length` only on the rows that pin one."""
    out = row.model_dump()
    if out["pinned_acceptance_length"] is None:
        del out["pinned_acceptance_length"]
    return out


def benchmark_text(shared_dir: Path, table: SearchSpaceTable | None = None) -> str:
    """conf/deployments/benchmark.yaml as the snapshot under ``shared_dir`` gives it (`table`: already extracted)."""
    return render(table or extract(shared_dir), snapshot(shared_dir, (*MASTER_FILES, SETTINGS_FILE)))


def multinode_text(shared_dir: Path, read: tuple[list[MultinodeDeployment], list[str]] | None = None) -> str:
    """conf/deployments/multinode.yaml as the snapshot under ``shared_dir`` gives it (`read`: rows, skipped)."""
    rows, skipped = read or multinode_rows(shared_dir, catalog_routed_experts())
    return render_multinode(rows, skipped, snapshot(shared_dir, MASTER_FILES))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Regenerate conf/deployments/{benchmark,multinode}.yaml.")
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared", help="shared/ directory")
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH, help="output YAML path (single-node)")
    parser.add_argument("--multinode-out", type=Path, default=MULTINODE_PATH, help="output YAML path (multi-node)")
    args = parser.parse_args(argv)
    if not (args.shared / CONFIG_DIR).is_dir():
        parser.error(f"no {CONFIG_DIR} under {args.shared}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table = extract(args.shared)
    args.out.write_text(benchmark_text(args.shared, table))
    print(f"wrote {len(table.entries)} search spaces to {args.out}")
    args.multinode_out.parent.mkdir(parents=True, exist_ok=True)
    rows, skipped = multinode_rows(args.shared, catalog_routed_experts())
    args.multinode_out.write_text(multinode_text(args.shared, (rows, skipped)))
    print(f"wrote {len(rows)} multi-node rows ({len(skipped)} skipped, with reasons) to {args.multinode_out}")


if __name__ == "__main__":
    main()
