"""docs/sources.md: every citation of one of its sections in the repository points at a section that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"docs/sources\.md#([a-z0-9-]+)")


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return out


def citing_files() -> list[Path]:
    skip = {".git", ".venv", "outputs", "__pycache__", "multirun"}
    return [p for p in ROOT.rglob("*") if p.suffix in {".py", ".yaml", ".md"} and p.is_file()
            and not skip & set(p.relative_to(ROOT).parts)]


def test_anchor_rule() -> None:
    assert anchors("## Rates and power\n### H100 SXM\n## Serving-model priors") == {
        "rates-and-power", "h100-sxm", "serving-model-priors"}


def test_every_citation_names_an_existing_section() -> None:
    known = anchors((ROOT / "docs" / "sources.md").read_text())
    cited = {(p.relative_to(ROOT).as_posix(), a) for p in citing_files() for a in CITATION.findall(p.read_text())}
    assert len(cited) > 20  # conf/ and simulator/ cite it throughout
    missing = sorted(f"{path}: #{a}" for path, a in cited if a not in known)
    assert not missing, "citations of sections docs/sources.md does not have:\n" + "\n".join(missing)


def test_conf_cites_no_workplace_only_file() -> None:
    """conf/ files cite public sources (docs/sources.md), not ../shared/reference, which users do not have."""
    bad = [p.relative_to(ROOT).as_posix() for p in (ROOT / "conf").rglob("*.yaml") if "reference/" in p.read_text()]
    assert not bad, bad
