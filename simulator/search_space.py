"""Benchmark search spaces: the single-node deployments the InferenceX benchmark actually ran.

The table is shipped as ``conf/deployments/benchmark.yaml`` and regenerated from the InferenceX
configs (Apache-2.0) with::

    python -m simulator.search_space --shared ../shared --out conf/deployments/benchmark.yaml

Sources read by :func:`extract` (all under ``<shared>/data/benchmark-configs``):

* ``nvidia-master.yaml`` / ``amd-master.yaml``: current single-node fixed-seq-len entries.
* ``engine_settings.yaml``: the ``config_entries`` strings of retired master configs (files under
  ``deprecated/``, e.g. the 1k/1k ones), and the draft settings each benchmark script passed.
* Draft lengths missing from ``engine_settings.yaml`` fall back to the MTP rules listed in
  ``reference/methodology.md`` ("Deployments that were benchmarked").
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from simulator.catalog import CONF_DIR

Spec = Literal["off", "mtp"]

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATH = CONF_DIR / "deployments" / "benchmark.yaml"
TOP_KEY = "benchmark_search_spaces"
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
WORKLOADS: dict[tuple[int, int], str] = {(1024, 1024): "1k1k", (8192, 1024): "8k1k", (1024, 8192): "1k8k"}


class BenchmarkDeployment(BaseModel):
    """One benchmarked single-node deployment and the concurrencies it was swept at."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: str
    spec: Spec
    tp: int = Field(ge=1)
    ep: int = Field(ge=1)
    dp_attn: bool
    concurrencies: list[int] = Field(min_length=1)
    draft_tokens: int | None  # drafted tokens k verified per step; None when spec is off
    source: str


class SearchSpaceTable(BaseModel):
    """Deployments keyed ``model/hardware/precision/workload``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entries: dict[str, list[BenchmarkDeployment]]

    @staticmethod
    def key(model: str, hardware: str, precision: str, workload: str) -> str:
        return f"{model}/{hardware}/{precision}/{workload}"

    def lookup(
        self, model: str, hardware: str, precision: str, workload: str, spec: Spec
    ) -> list[BenchmarkDeployment]:
        """Deployments of one side (``spec``) of one page; empty when the benchmark ran none."""
        deployments = self.entries.get(self.key(model, hardware, precision, workload), [])
        return [d for d in deployments if d.spec == spec]

    def available(self) -> list[tuple[str, str, str, str]]:
        """Sorted (model, hardware, precision, workload) tuples present in the table."""
        keys = []
        for key in self.entries:
            model, hardware, precision, workload = key.split("/")
            keys.append((model, hardware, precision, workload))
        return sorted(keys)


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


def _master_rows(path: Path) -> Iterator[_Row]:
    """Single-node fixed-seq-len rows of one current master config."""
    data = yaml.safe_load(path.read_text())
    for name, entry in data.items():
        if entry.get("multinode") or entry.get("disagg"):
            continue
        for workload in entry.get("scenarios", {}).get("fixed-seq-len", []):
            for space in workload["search-space"]:
                if space.get("pp", 1) != 1 or space.get("pcp-size", 1) != 1:
                    continue
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
                )


_ENTRY_RE = re.compile(r"^(?P<file>\S+) (?P<entry>\S+) \[[^\]]*\]: (?P<rows>.+)$")
_ROW_RE = re.compile(
    r"^(?P<isl>\d+)/(?P<osl>\d+) tp(?P<tp>\d+) ep(?P<ep>\d+)(?P<dpa> dpa)? conc (?P<conc>[\d,\-]+)$"
)


def parse_config_entry(text: str) -> tuple[str, str, list[dict[str, Any]]]:
    """Split an engine_settings ``config_entries`` string into (file, entry name, rows)."""
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
    """MTP draft lengths as stated in reference/methodology.md, for scripts that leave k implicit."""
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
    for conc in row.concurrencies:
        if row.spec == "off":
            k, source = None, origin
        else:
            k, draft_source = _resolve_draft(items, row, conc)
            source = f"{origin}; k from {draft_source}"
        groups.setdefault((k, source), []).append(conc)
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
        )
        for (k, source), concs in groups.items()
    ]


def _merge(deployments: Iterable[BenchmarkDeployment]) -> list[BenchmarkDeployment]:
    """Union the concurrencies of identical deployments; keep each distinct source once."""
    merged: dict[tuple[Any, ...], tuple[set[int], list[str]]] = {}
    for dep in deployments:
        ident = (dep.spec, dep.engine, dep.tp, dep.ep, dep.dp_attn, dep.draft_tokens)
        concs, sources = merged.setdefault(ident, (set(), []))
        concs.update(dep.concurrencies)
        if dep.source not in sources:
            sources.append(dep.source)
    result = [
        BenchmarkDeployment(
            spec=spec,
            engine=engine,
            tp=tp,
            ep=ep,
            dp_attn=dp_attn,
            draft_tokens=k,
            concurrencies=sorted(concs),
            source=" | ".join(sorted(sources)),
        )
        for (spec, engine, tp, ep, dp_attn, k), (concs, sources) in merged.items()
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


def source_commit(shared_dir: Path) -> str:
    """InferenceX commit named in the engine_settings.yaml header."""
    text = (Path(shared_dir) / CONFIG_DIR / SETTINGS_FILE).read_text()
    match = re.search(r"^# Commit:\s+([0-9a-f]{7,40})", text, flags=re.MULTILINE)
    return match.group(1) if match else "unknown"


def _header(commit: str) -> str:
    return (
        "# Benchmark search spaces: single-node deployments the InferenceX benchmark ran, per\n"
        "# model/hardware/precision/workload, with the concurrencies swept and the MTP draft length k.\n"
        "# Source: InferenceX benchmark configs (https://github.com/SemiAnalysisAI/InferenceX, Apache-2.0),\n"
        f"#   commit {commit}, read from ../shared/data/benchmark-configs (nvidia-master.yaml,\n"
        "#   amd-master.yaml, and the retired configs listed in engine_settings.yaml config_entries).\n"
        "# Generated file; do not edit. Regenerate with:\n"
        "#   python -m simulator.search_space --shared ../shared --out conf/deployments/benchmark.yaml\n"
    )


def render(table: SearchSpaceTable, commit: str) -> str:
    """The shipped YAML text: header comment plus a single ``benchmark_search_spaces`` mapping."""
    body = {TOP_KEY: {k: [d.model_dump() for d in v] for k, v in table.entries.items()}}
    return _header(commit) + yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=200)


def load_search_spaces(path: Path | None = None) -> SearchSpaceTable:
    """Load the shipped table (default ``conf/deployments/benchmark.yaml``)."""
    data = yaml.safe_load(Path(path or DEFAULT_PATH).read_text())
    return SearchSpaceTable.model_validate({"entries": data[TOP_KEY]})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Regenerate the benchmark search-space table.")
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared", help="shared/ directory")
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH, help="output YAML path")
    args = parser.parse_args(argv)
    table = extract(args.shared)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(table, source_commit(args.shared)))
    print(f"wrote {len(table.entries)} search spaces to {args.out}")


if __name__ == "__main__":
    main()
