"""InferenceX "<GPU> <PRECISION>: MTP vs Off Speculative Decoding" comparison pages, from two kinds of source.

A page's text (see ../shared/pages): two layouts occur, the table as one value per line and as a markdown
table. Both carry the same facts: model, GPU, precision, the pinned workload, the target interactivities
(in the prose, in table-column order) and per target the MTP and Off throughput, cost, tok/s/MW and
concurrency. A figures file (../shared/data/pages/inferencex_mtp_vs_off.yaml, format in its header): one
entry per page with its url, display names, the covered band and per target the throughput and cost only.

``bundled_pages`` reads the project's own copies in conf/page_figures/*.yaml: one extracted page per file,
or a figures file (a YAML list). A page the model cannot represent yet is marked ``modelled: false`` with a
``not_modelled_reason`` in that data; ``modelled_pages`` leaves those out.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simulator.catalog import CONF_DIR
from simulator.rounding import js_round
from simulator.specs.vocabulary import WORKLOAD_NAMES, Precision, Workload

__all__ = [
    "HARDWARE_NAMES",
    "MODEL_NAMES",
    "PAGES_DIR",
    "Page",
    "PageParseError",
    "PagePoint",
    "SideFigures",
    "bundled_pages",
    "figures_pages",
    "hardware_key",
    "load_figures_file",
    "load_page_file",
    "measured_direction",
    "model_key",
    "modelled_pages",
    "parse_page",
]

PAGES_DIR = CONF_DIR / "page_figures"

# Display names as the pages write them -> catalog keys.
MODEL_NAMES: dict[str, tuple[str, ...]] = {
    "deepseek_r1": ("DeepSeek R1",),
    "deepseek_v4_pro": ("DeepSeek V4 Pro 1.6T", "DeepSeek V4 Pro", "DeepSeek V4"),
    "glm5": ("GLM 5/5.1", "GLM 5", "GLM-5"),
    "qwen3_5_397b": ("Qwen 3.5 397B-A17B",),
    "kimi_k2_5": ("Kimi K2.5",),
    "qwen3_235b": ("Qwen 3 235B-A22B",),
    "gpt_oss_120b": ("gpt-oss-120b", "gpt-oss 120B"),
    "llama3_3_70b": ("Llama 3.3 70B",),
}
HARDWARE_NAMES: dict[str, tuple[str, ...]] = {
    "h100": ("H100",),
    "h200": ("H200",),
    "b200": ("B200",),
    "b300": ("B300",),
    "gb200": ("GB200 NVL72", "GB200"),
    "gb300": ("GB300 NVL72", "GB300"),
    "mi300x": ("MI300X",),
    "mi325x": ("MI325X",),
    "mi355x": ("MI355X",),
}
WORKLOADS: tuple[str, ...] = WORKLOAD_NAMES


class PageParseError(ValueError):
    """The text is not a comparison page, or a required part of it is missing or malformed."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SideFigures(_Frozen):
    """One side's (MTP or Off) figures at one target interactivity, as printed (a figures file has no
    tok/s/MW or concurrency: None)."""

    tput_per_gpu: float = Field(ge=0, allow_inf_nan=False)
    cost_per_mtok: float = Field(ge=0, allow_inf_nan=False)
    tok_s_per_mw: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    concurrency: int | None = Field(default=None, ge=0)


class PagePoint(_Frozen):
    """A target interactivity (tok/s/user) and both sides' figures there; ``tput_resolution`` is the
    coarser of the two printed throughput steps (0.1 for "549.4", 1 for "392")."""

    interactivity: float = Field(gt=0, allow_inf_nan=False)
    mtp: SideFigures
    off: SideFigures
    tput_resolution: float = Field(gt=0, allow_inf_nan=False)


class Page(_Frozen):
    """One comparison page: which model/GPU/precision/workload and its matched-interactivity points.

    ``band``: the interactivity range both fronts cover, where the page states it. ``modelled``: False for
    a deployment the simulator cannot represent yet (kept out of fits), with ``not_modelled_reason``.
    """

    source: str
    model: str
    hardware: str
    precision: Precision
    workload: Workload
    points: list[PagePoint] = Field(min_length=1)
    url: str | None = None
    band: tuple[float, float] | None = None
    modelled: bool = True
    not_modelled_reason: str | None = None

    @model_validator(mode="after")
    def _reason_iff_not_modelled(self) -> Page:
        if self.modelled == bool(self.not_modelled_reason):
            raise ValueError("not_modelled_reason must be given exactly when modelled is false")
        if self.band is not None and not 0 < self.band[0] < self.band[1]:
            raise ValueError(f"band must be [lo, hi] with 0 < lo < hi, got {list(self.band)}")
        return self


def error_pct(predicted: float, measured: float) -> float:
    """Signed error of a prediction in % of the measured figure: predicted / measured - 1 (> 0: over)."""
    return (predicted / measured - 1.0) * 100.0


def measured_direction(point: PagePoint) -> bool | None:
    """True where measured MTP throughput beats Off, False where Off beats MTP, None where the two differ by
    less than the page's printed rounding (MI325X Qwen 3.5: 392 vs 392), so the target counts neither way."""
    diff = point.mtp.tput_per_gpu - point.off.tput_per_gpu
    if abs(diff) < point.tput_resolution * (1.0 - 1e-6):  # printed figures are multiples of the step
        return None
    return diff > 0


# A page whose MTP front repeats its Off front: both sides within this relative difference at every target (and
# at least two targets). MI325X Qwen 3.5 BF16 prints 392/392, 274/275 and 168/170 tok/s/GPU: its MTP and Off
# recipes run the same TP8, concurrency 4-64 grid on the same image, and a run that speculates changes both the
# step's cost (k draft passes, a verify over k + 1 tokens) and its tokens per step, so three targets within
# 1 % of each other mean the page's MTP side measured no speculation. validate names such a page under its
# table. It stays in the fit and the error figures as printed: leaving its MTP side out of the fit made the
# leave-one-page-out errors worse (docs/sources.md#measured-data).
SIDES_REPEAT_RTOL = 0.02


def mtp_repeats_off(page: Page) -> bool:
    """True where the page's measured MTP throughput equals its Off throughput within `SIDES_REPEAT_RTOL` at
    every one of at least two targets: its MTP side is not a measurement of speculative decoding."""
    return len(page.points) >= 2 and all(
        p.off.tput_per_gpu > 0 and abs(p.mtp.tput_per_gpu / p.off.tput_per_gpu - 1.0) <= SIDES_REPEAT_RTOL
        for p in page.points)


def modelled_pages(pages: list[Page] | None = None) -> list[Page]:
    """The pages (default: all bundled ones) whose deployments the simulator can represent."""
    return [p for p in (bundled_pages() if pages is None else pages) if p.modelled]


def _norm(name: str) -> str:
    """Lower case, letters and digits only: tolerant to case, spacing and punctuation."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _lookup(kind: str, names: dict[str, tuple[str, ...]], display: str) -> str:
    wanted = _norm(display)
    for key, aliases in names.items():
        if wanted and wanted in {_norm(key), *(_norm(a) for a in aliases)}:
            return key
    known = "; ".join(f"{key}: {', '.join(aliases)}" for key, aliases in names.items())
    raise PageParseError(f"unknown {kind} display name {display.strip()!r}; known: {known}")


def model_key(display: str) -> str:
    """Catalog key of a model display name (e.g. 'GLM 5/5.1' -> 'glm5')."""
    return _lookup("model", MODEL_NAMES, display)


def hardware_key(display: str) -> str:
    """Hardware key of a GPU display name (e.g. 'GB200 NVL72' -> 'gb200')."""
    return _lookup("hardware", HARDWARE_NAMES, display)


_FLAGS = re.IGNORECASE | re.MULTILINE
_TITLE = re.compile(r"^[#\s]*([^\n:]{1,60}?)[ \t]+(fp4|fp8|bf16)[ \t]*:[ \t]*mtp[ \t]+vs\.?[ \t]+off\b", _FLAGS)
_RUNNING = re.compile(r"\brunning[ \t]+([^\n]{1,80}?)\.(?:\s|$)", _FLAGS)
_HEADER = re.compile(r"^[#\s]*([^\n·]{1,80}?)[ \t]*·[ \t]*speculative decoding[ \t]*$", _FLAGS)
_ON_GPU = re.compile(r"\bon[ \t]+([^\n()]{1,80}?)[ \t]+\(([^\n()]{1,40}?)[ \t]+(fp4|fp8|bf16)\)", _FLAGS)
_WORKLOAD = re.compile(r"pinned[ \t]+(\d{1,2}k)[ \t]*/[ \t]*(\d{1,2}k)(?:[ \t]*·[ \t]*(fp4|fp8|bf16))?", _FLAGS)
_TARGET = re.compile(r"\bat[ \t]+(\d{1,6}(?:\.\d{1,6})?)[ \t]*tok/s/user", _FLAGS)
_NUM = r"(\d{1,12}(?:,\d{3}){0,4}(?:\.\d{1,9})?)"
_SIDE = re.compile(r"(mtp|off)[ \t]*:[ \t]*[~≈$]{0,2}[ \t]*" + _NUM, re.IGNORECASE)
_VALUE_CELL = re.compile(r"^(?:(?:mtp|off)[ \t]*:[ \t]*[~≈$]{0,2}[ \t]*" + _NUM + r"[ \t]*){2}$", re.IGNORECASE)
_ROWS: dict[str, re.Pattern[str]] = {
    "tput_per_gpu": re.compile(r"^throughput[ \t]*\([ \t]*tok/s/gpu[ \t]*\)$", re.IGNORECASE),
    "cost_per_mtok": re.compile(r"^cost[ \t]*\([ \t]*\$[ \t]*/[ \t]*m[ \t]*tok(?:ens)?[ \t]*\)$", re.IGNORECASE),
    "tok_s_per_mw": re.compile(r"^tok/s/mw$", re.IGNORECASE),
    "concurrency": re.compile(r"^concurrency$", re.IGNORECASE),
}
_ROW_WORDS = {
    "tput_per_gpu": "throughput",
    "cost_per_mtok": "cost",
    "tok_s_per_mw": "tok/s/MW",
    "concurrency": "concurrency",
}


def _cells(text: str) -> list[str]:
    """Table cells in reading order: markdown rows split on '|', other lines whole."""
    cells: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("|"):
            parts = [p.strip() for p in line.strip("|").split("|")]
            cells.extend(p for p in parts if p and not re.fullmatch(r":?-{3,}:?", p))
        elif line:
            cells.append(line)
    return cells


def _printed_step(number: str) -> float:
    """The rounding step a printed number shows: 1 for '392', 0.1 for '549.4', 0.001 for '0.201'."""
    _, _, decimals = number.partition(".")
    return 10.0 ** -len(decimals)


def _pair(cell: str) -> tuple[float, float, float]:
    """(MTP, Off, coarser printed step) of a value cell such as 'MTP:$0.201Off:$0.301'."""
    found: dict[str, str] = {}
    for side, num in _SIDE.findall(cell):
        if side.lower() in found:
            raise PageParseError(f"value cell {cell!r} names {side} twice")
        found[side.lower()] = num.replace(",", "")
    if set(found) != {"mtp", "off"}:
        raise PageParseError(f"value cell {cell!r} lacks an MTP or Off figure")
    return float(found["mtp"]), float(found["off"]), max(map(_printed_step, found.values()))


def _table_rows(text: str) -> dict[str, list[tuple[float, float, float]]]:
    """Each metric row's (MTP, Off, printed step) triples, in column order."""
    rows: dict[str, list[tuple[float, float, float]]] = {}
    current: str | None = None
    for cell in _cells(text):
        label = next((k for k, pat in _ROWS.items() if pat.match(cell)), None)
        if label is not None:
            if label in rows:
                raise PageParseError(f"the {_ROW_WORDS[label]} row appears twice")
            rows[label] = []
            current = label
        elif current is not None and _VALUE_CELL.match(cell):
            rows[current].append(_pair(cell))
        else:
            current = None
    for key, word in _ROW_WORDS.items():
        if not rows.get(key):
            raise PageParseError(f"no {word} row found")
    return rows


def _title(text: str) -> tuple[str | None, str | None]:
    m = _TITLE.search(text)
    return (m.group(1), m.group(2).lower()) if m else (None, None)


def _model(text: str) -> str:
    candidates = [m.group(1) for pat in (_RUNNING, _HEADER, _ON_GPU) for m in pat.finditer(text)]
    if not candidates:
        raise PageParseError("no model name found (no 'running <model>.', '<model> · Speculative Decoding' "
                             "or 'on <model> (<GPU> <precision>)')")
    key = model_key(candidates[0])
    for other in candidates[1:]:
        try:
            other_key = model_key(other)
        except PageParseError:
            continue
        if other_key != key:
            raise PageParseError(f"inconsistent model names: {candidates[0]!r} and {other!r}")
    return key


def _hardware_precision(text: str) -> tuple[str, str]:
    gpu, precision = _title(text)
    if gpu is None or precision is None:
        m = _ON_GPU.search(text)
        if m is None:
            raise PageParseError("no '<GPU> <precision>: MTP vs Off' title and no '(<GPU> <precision>)' found")
        gpu, precision = m.group(2), m.group(3).lower()
    return hardware_key(gpu), precision


def _workload(text: str, precision: str) -> str:
    m = _WORKLOAD.search(text)
    if m is None:
        raise PageParseError("no pinned workload found (e.g. 'pinned 1k/1k · fp4')")
    workload = f"{m.group(1)}{m.group(2)}".lower()
    if workload not in WORKLOADS:
        raise PageParseError(f"unknown workload {workload!r}; known: {', '.join(WORKLOADS)}")
    if m.group(3) and m.group(3).lower() != precision:
        raise PageParseError(f"workload precision {m.group(3)!r} differs from the title's {precision!r}")
    return workload


def _targets(text: str) -> list[float]:
    targets = [float(t) for t in _TARGET.findall(text)]
    if not targets:
        raise PageParseError("no target interactivity found (e.g. 'At 49 tok/s/user')")
    return targets


def _points(targets: list[float], rows: dict[str, list[tuple[float, float, float]]]) -> list[PagePoint]:
    for key, word in _ROW_WORDS.items():
        if len(rows[key]) != len(targets):
            raise PageParseError(
                f"the {word} row has {len(rows[key])} columns but the text names {len(targets)} targets"
            )
    points = []
    for i, target in enumerate(targets):
        sides = []
        for j in (0, 1):
            conc = rows["concurrency"][i][j]
            sides.append(
                SideFigures(
                    tput_per_gpu=rows["tput_per_gpu"][i][j],
                    cost_per_mtok=rows["cost_per_mtok"][i][j],
                    tok_s_per_mw=rows["tok_s_per_mw"][i][j],
                    concurrency=js_round(conc) if math.isfinite(conc) else -1,
                )
            )
        points.append(PagePoint(interactivity=target, mtp=sides[0], off=sides[1],
                                tput_resolution=rows["tput_per_gpu"][i][2]))
    return points


def parse_page(text: str, source: str) -> Page:
    """Parse one comparison page; any defect raises :class:`PageParseError` naming what is missing."""
    if not isinstance(text, str):
        raise PageParseError(f"page text must be a str, got {type(text).__name__}")
    try:
        hardware, precision = _hardware_precision(text)
        model = _model(text)
        workload = _workload(text, precision)
        targets = _targets(text)
        rows = _table_rows(text)
        points = _points(targets, rows)
        return Page(
            source=str(source), model=model, hardware=hardware, precision=precision,  # type: ignore[arg-type]
            workload=workload, points=points,  # type: ignore[arg-type]
        )
    except ValidationError as err:
        raise PageParseError(f"{source}: implausible figures: {err}") from None
    except PageParseError as err:
        raise PageParseError(f"{source}: {err}") from None
    except (ValueError, OverflowError) as err:  # e.g. float() of a malformed number
        raise PageParseError(f"{source}: malformed number: {err}") from None


def load_page_file(path: str | Path) -> Page:
    """Read and parse a page's text file (the source recorded is its file name)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"page file not found: {p}")
    return parse_page(p.read_text(encoding="utf-8", errors="replace"), source=p.name)


_ENTRY_KEYS = frozenset({"url", "model", "hardware", "precision", "workload", "band", "points", "modelled",
                         "not_modelled_reason"})
_POINT_KEYS = frozenset({"interactivity", *(f"{side}_{fig}{ex}" for side in ("mtp", "off")
                                           for fig in ("tput", "cost") for ex in ("", "_exact"))})


def _known_keys(what: str, data: Any, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PageParseError(f"{what} must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - allowed)
    if unknown:
        raise PageParseError(f"{what} has unknown keys {unknown}; allowed: {', '.join(sorted(allowed))}")
    return data


def _figure(point: dict[str, Any], key: str) -> tuple[float, float]:
    """A figure (its one-more-digit ``_exact`` form where given) and its printed step."""
    value = point.get(f"{key}_exact", point.get(key))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PageParseError(f"point at {point.get('interactivity')} tok/s/user: {key} must be a number, got {value!r}")
    return float(value), _printed_step(repr(value))


def _figures_point(point: Any) -> PagePoint:
    p = _known_keys("a point", point, _POINT_KEYS)
    (mtp, step_m), (off, step_o) = _figure(p, "mtp_tput"), _figure(p, "off_tput")
    return PagePoint(
        interactivity=p.get("interactivity"),
        mtp=SideFigures(tput_per_gpu=mtp, cost_per_mtok=_figure(p, "mtp_cost")[0]),
        off=SideFigures(tput_per_gpu=off, cost_per_mtok=_figure(p, "off_cost")[0]),
        tput_resolution=max(step_m, step_o),
    )


def _figures_workload(display: Any) -> str:
    workload = re.sub(r"[\s/]", "", str(display)).lower()
    if workload not in WORKLOADS:
        raise PageParseError(f"unknown workload {display!r}; known: 1k/1k, 8k/1k, 1k/8k")
    return workload


def _figures_page(entry: Any) -> Page:
    e = _known_keys("an entry", entry, _ENTRY_KEYS)
    url = str(e.get("url") or "")
    if not url:
        raise PageParseError("an entry lacks its url")
    precision = str(e.get("precision", "")).lower()
    if precision not in ("fp4", "fp8", "bf16"):
        raise PageParseError(f"unknown precision {e.get('precision')!r}; known: fp4, fp8, bf16")
    points = e.get("points")
    if not isinstance(points, list) or not points:
        raise PageParseError("points must be a non-empty list")
    return Page(
        source=url.rstrip("/").rsplit("/", 1)[-1], url=url, model=model_key(str(e.get("model", ""))),
        hardware=hardware_key(str(e.get("hardware", ""))), precision=precision,  # type: ignore[arg-type]
        workload=_figures_workload(e.get("workload")), band=e.get("band"),  # type: ignore[arg-type]
        points=[_figures_point(pt) for pt in points],
        modelled=e.get("modelled", True), not_modelled_reason=e.get("not_modelled_reason"),
    )


def figures_pages(entries: Any, source: str) -> list[Page]:
    """Pages from a figures file's loaded entries (a list); any defect raises :class:`PageParseError`
    naming the file, the entry and what is wrong."""
    if not isinstance(entries, list) or not entries:
        raise PageParseError(f"{source}: a figures file must be a non-empty list of page entries")
    pages = []
    for i, entry in enumerate(entries):
        where = f"{source}: entry {i}" + (f" ({entry['url']})" if isinstance(entry, dict) and "url" in entry else "")
        try:
            pages.append(_figures_page(entry))
        except ValidationError as err:
            raise PageParseError(f"{where}: implausible figures: {err}") from None
        except PageParseError as err:
            raise PageParseError(f"{where}: {err}") from None
    return pages


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise PageParseError(f"{path}: not valid YAML: {err}") from None


def load_figures_file(path: str | Path) -> list[Page]:
    """Read a figures file (e.g. ../shared/data/pages/inferencex_mtp_vs_off.yaml): one Page per entry."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"figures file not found: {p}")
    return figures_pages(_read_yaml(p), source=p.name)


def _bundled_file(path: Path) -> list[Page]:
    data = _read_yaml(path)
    if isinstance(data, list):
        return figures_pages(data, source=path.name)
    try:
        return [Page.model_validate(data)]
    except ValidationError as err:
        raise PageParseError(f"{path}: not a page: {err}") from None


def bundled_pages(directory: str | Path | None = None) -> list[Page]:
    """Every page shipped in conf/page_figures/*.yaml (extracted pages and figures files), files sorted by
    name, entries in file order; sources must be unique."""
    folder = Path(directory) if directory is not None else PAGES_DIR
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no page files (*.yaml) in {folder}")
    pages = [page for f in files for page in _bundled_file(f)]
    seen: set[str] = set()
    for page in pages:
        if page.source in seen:
            raise PageParseError(f"{folder}: two pages share the source {page.source!r}")
        seen.add(page.source)
    return pages
