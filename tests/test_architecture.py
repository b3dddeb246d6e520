"""The layering of ARCHITECTURE.md, enforced: imports only go down, no cycles, no project imports in functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# lowest first; a module may import its own layer or a lower one (never a higher one), and nothing cyclic
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("specs", ("simulator.specs",)),
    ("data", ("simulator.catalog", "simulator.pages", "simulator.search_space", "simulator.economics",
              "simulator.rounding")),
    ("physics", ("simulator.operators", "simulator.lowering", "simulator.moe", "simulator.knobs",
                 "simulator.step_cost", "simulator.speculative", "simulator.acceptance", "simulator.memory",
                 "simulator.serving", "simulator.scenario", "simulator.search",
                 "simulator.breakdown", "simulator.topology")),
    ("batched", ("simulator.batched", "simulator.evaluate")),
    ("analysis", ("simulator.frontier", "simulator.calibration", "kernels")),
    ("library", ("simulator.runconfig", "simulator.comparison", "simulator.validation", "simulator.planning",
                 "simulator.report_html")),
    ("tasks", ("simulator.tasks",)),
    ("cli", ("simulator.cli", "simulator.__main__")),
]
# the analysis layer's parts do not import each other: calibration never imports kernels (kernels sit over
# simulator/ and are checked against it), and neither imports the other's frontier reduction
FORBIDDEN = [("simulator.calibration", "kernels")]
PACKAGES = ("simulator", "kernels")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    return best


def project_imports(path: Path) -> list[tuple[str, bool]]:
    """(imported project module, inside a function?) for every import in `path`."""
    tree = ast.parse(path.read_text())
    out: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                names = [child.module]
            out.extend((n, in_function) for n in names if n.split(".")[0] in PACKAGES)
            visit(child, inner)

    visit(tree, False)
    return out


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def graph() -> dict[str, set[str]]:
    mods = modules()

    def resolve(name: str) -> str:
        while name not in mods and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    return {m: {resolve(n) for n, _ in project_imports(p)} - {m} for m, p in mods.items()}


def test_every_module_has_a_layer() -> None:
    missing = [m for m in modules() if layer_of(m) < 0 and m != "simulator"]
    assert not missing, f"modules with no layer in ARCHITECTURE.md / LAYERS: {missing}"


def test_imports_only_go_down() -> None:
    bad = []
    for mod, deps in graph().items():
        for dep in deps:
            if "simulator" in (mod, dep):  # the top package's __init__ imports nothing of its own
                continue
            if layer_of(dep) > layer_of(mod):
                bad.append(f"{mod} ({LAYERS[layer_of(mod)][0]}) imports {dep} ({LAYERS[layer_of(dep)][0]})")
            bad += [f"{mod} imports {dep}" for lo, hi in FORBIDDEN
                    if (mod == lo or mod.startswith(lo + ".")) and (dep == hi or dep.startswith(hi + "."))]
    assert not bad, "imports going up:\n" + "\n".join(sorted(bad))


def test_the_top_package_imports_nothing() -> None:
    assert not project_imports(ROOT / "simulator" / "__init__.py")


def test_no_import_cycles() -> None:
    g = graph()
    state: dict[str, int] = {}
    cycles: list[str] = []

    def dfs(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(g.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*stack[stack.index(dep):], dep]))
            elif dep not in state:
                dfs(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            dfs(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_project_imports_inside_functions() -> None:
    """Only the CLI's task registry loads modules by name (importlib); heavy optional deps may import late."""
    bad = [f"{m}: {n}" for m, p in modules().items() for n, inside in project_imports(p) if inside]
    assert not bad, "project imports inside function bodies:\n" + "\n".join(bad)


@pytest.mark.parametrize("src,expect", [
    ("from simulator.tasks.compare import run\n", [("simulator.tasks.compare", False)]),
    ("def f():\n    import kernels.reference\n", [("kernels.reference", True)]),
    ("import numpy\n", []),
])
def test_the_import_scanner_sees_what_it_should(tmp_path: Path, src: str, expect: list) -> None:
    path = tmp_path / "m.py"
    path.write_text(src)
    assert project_imports(path) == expect
