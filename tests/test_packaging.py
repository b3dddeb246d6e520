"""Packaging: every package and every conf/ file reaches the wheel, and CONF_DIR finds an installed conf/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.calibration.dataset import ATOM_CI, DEFAULT_DATA_DIR, SILICON, SWEEPS
from simulator.catalog import CONF_DIR, SOURCE_CONF_DIR, find_conf_dir

ROOT = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_listed_packages_are_every_package_folder() -> None:
    listed = set(_setuptools()["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for top in ("simulator", "kernels")
               for p in (ROOT / top).rglob("__init__.py")}
    assert on_disk <= listed, f"add to pyproject's tool.setuptools.packages: {sorted(on_disk - listed)}"


def test_package_data_covers_every_conf_file() -> None:
    st = _setuptools()
    assert st["package-dir"]["specsim_conf"] == "conf"
    globs = st["package-data"]["specsim_conf"]
    conf = ROOT / "conf"
    shipped = {f for g in globs for f in conf.glob(g)}  # setuptools globs the same way (** recursive)
    missing = sorted(f.relative_to(conf).as_posix() for f in conf.rglob("*") if f.is_file() and f not in shipped)
    assert not missing, f"these conf/ files would not ship (package-data {globs}): {missing}"


def test_conf_dir_is_the_source_tree_here_else_the_installed_package(tmp_path: Path) -> None:
    assert CONF_DIR == SOURCE_CONF_DIR
    assert find_conf_dir(tmp_path / "conf", package="json") == Path(json.__file__).parent
    with pytest.raises(RuntimeError, match="no conf/ folder: neither .* nor an installed package 'no_such_pkg'"):
        find_conf_dir(tmp_path / "conf", package="no_such_pkg")


def test_calibration_data_ships_with_its_sources() -> None:
    assert DEFAULT_DATA_DIR == CONF_DIR / "measured"
    source = (DEFAULT_DATA_DIR / "SOURCE.md").read_text()
    for name in (SILICON, SWEEPS, ATOM_CI):
        assert (DEFAULT_DATA_DIR / name).is_file() and f"`{name}`" in source
    assert "Apache License 2.0" in source and (DEFAULT_DATA_DIR / "LICENSE-aiconfigurator.txt").is_file()
    assert "MIT (ROCm/ATOM)" in source and "MIT License" in (DEFAULT_DATA_DIR / "LICENSE-ATOM.txt").read_text()
