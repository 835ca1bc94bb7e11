"""The import layers of ARCHITECTURE.md, checked on the source files (milliseconds, nothing imported).

Every ``import`` / ``from ... import`` statement counts, at module level or inside a function, a method or a
``try`` block: an import moved into a function still makes the dependency (it only delays it), so it may
hide a cycle but not pass this test. ``MAY_IMPORT`` writes down, once, which of our packages each package may
import; a package missing from it, an import it does not allow, an allowed graph that is not a strict
order, or a cycle between two of our modules (inside one package too) fails.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package (or top-level module) -> the packages it may import, besides its own modules. Short names are
#: under ``torchrl_reg.``; ``torchrl_reg`` is the package's ``__init__`` alone (its subpackages are listed).
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "cli": (),
    "validation": (),
    "plain_state": (),
    "functional": ("validation",),
    "value": ("functional", "validation"),
    "data": (),
    "envs": ("plain_state", "validation"),
    "tabular": ("functional", "validation"),
    "planning": ("functional", "plain_state", "validation"),
    "modules": ("functional", "validation"),
    "objectives": ("functional", "validation", "value", "modules"),
    "run": ("cli", "envs", "plain_state", "validation"),
    "configs": ("cli", "envs", "modules", "planning", "run", "validation"),
    "trainer_configs": ("configs", "modules", "objectives", "validation"),
    "loops": ("cli", "configs", "data", "envs", "modules", "objectives", "planning", "run", "validation"),
    "torchrl_reg": ("cli", "functional", "modules", "objectives", "tabular", "value"),
    "sweep": ("torchrl_reg", "cli", "configs", "envs", "run", "validation"),
    "report": ("cli", "run", "sweep", "validation"),
    # recipes/ is not part of the package: nothing in torchrl_reg/ may import it.
    "recipes": (
        "torchrl_reg", "configs", "data", "envs", "functional", "loops", "modules", "objectives", "planning", "run", "tabular",
        "validation", "value",
    ),
}


def _unit_name(short: str) -> str:
    return short if short in ("torchrl_reg", "recipes") else f"torchrl_reg.{short}"


UNITS = {_unit_name(short): {_unit_name(a) for a in allowed} for short, allowed in MAY_IMPORT.items()}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    paths = [*(ROOT / "torchrl_reg").rglob("*.py"), *(ROOT / "recipes").glob("*.py")]
    return {_module_name(p): p for p in paths}


SOURCES = _sources()


def _unit(module: str) -> str | None:
    """The longest ``UNITS`` entry that ``module`` is or lies under (``torchrl_reg`` only for its ``__init__``)."""
    if module in ("torchrl_reg", "recipes"):
        return module
    found = [u for u in UNITS if u not in ("torchrl_reg",) and (module == u or module.startswith(u + "."))]
    return max(found, key=len) if found else None


def _target(name: str) -> str:
    """The module of ours that importing ``name`` runs: ``name`` itself, else its longest module prefix."""
    while name not in SOURCES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(module: str, path: Path) -> set[str]:
    """Our modules that ``module`` imports, from every Import/ImportFrom node anywhere in the file."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            # ``from pkg import sub`` imports the module pkg.sub when there is one, else pkg
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in SOURCES else base for alias in node.names]
        else:
            continue
        found.update(_target(n) for n in names if n.split(".")[0] in ("torchrl_reg", "recipes"))
    found.discard(module)
    return {t for t in found if t in SOURCES}


def _graph() -> dict[str, set[str]]:
    return {module: imports_of(module, path) for module, path in SOURCES.items()}


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in graph.items():
        unit = _unit(module)
        if unit is None:
            bad.append(f"{module}: its package is not in MAY_IMPORT (add it, with what it may import)")
            continue
        for target in sorted(targets):
            other = _unit(target)
            if other != unit and other not in UNITS[unit]:
                bad.append(f"{module} imports {target}: {unit} may import only {sorted(UNITS[unit])}")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each one import cycle or more."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_package_imports_only_what_its_layer_allows():
    assert not layer_violations(_graph())


def test_no_import_cycle_between_modules():
    assert cycles(_graph()) == []


def test_the_allowed_directions_form_a_strict_order():
    """MAY_IMPORT itself has no cycle: two packages that may import each other would be one layer."""
    assert cycles({unit: allowed for unit, allowed in UNITS.items()}) == []


def test_nothing_in_the_package_imports_recipes():
    graph = _graph()
    bad = [f"{m} imports {t}" for m, targets in graph.items() if m.startswith("torchrl_reg") for t in targets
           if t == "recipes" or t.startswith("recipes.")]
    assert not bad


@pytest.mark.parametrize(
    "module, planted",
    [
        # an upward import hidden in a function: envs is below run
        ("torchrl_reg.envs.make", "def f():\n    from torchrl_reg.run.checkpoint import has_checkpoint\n"),
        # a cycle inside one package, through a function-local import: rundir already imports checkpoint
        ("torchrl_reg.run.checkpoint", "def f():\n    from torchrl_reg.run.rundir import open_run_dir\n"),
        # a relative upward import
        ("torchrl_reg.modules.torsos", "from ..objectives import common\n"),
    ],
)
def test_a_planted_upward_or_cyclic_import_is_caught(tmp_path, module, planted):
    path = tmp_path / "planted.py"
    path.write_text(SOURCES[module].read_text() + "\n\n" + planted)
    graph = _graph()
    graph[module] = imports_of(module, path)
    assert layer_violations(graph) or cycles(graph)
