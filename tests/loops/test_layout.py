"""Layering and citations of the recipe side (ARCHITECTURE.md): checked on the source files, in milliseconds."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: layer -> packages it must not import (the higher layers; see ARCHITECTURE.md).
FORBIDDEN = {
    "torchrl_reg/modules": ("recipes", "torchrl_reg.loops", "torchrl_reg.recipe_utils", "torchrl_reg.objectives"),
    "torchrl_reg/recipe_utils": ("recipes", "torchrl_reg.loops"),
    "torchrl_reg/loops": ("recipes",),
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", list(FORBIDDEN))
def test_lower_layers_do_not_import_higher_ones(layer):
    bad = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / layer).rglob("*.py")
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer])
    }
    assert not bad, sorted(bad)


def test_recipe_side_cites_papers_not_files_outside_the_repository():
    """Docstrings cite title, venue and arXiv id, never the shared papers folder or REFERENCE.md."""
    paths = [*(ROOT / "recipes").glob("*.py")]
    for layer in ("torchrl_reg/loops", "torchrl_reg/modules", "torchrl_reg/recipe_utils"):
        paths += (ROOT / layer).rglob("*.py")
    bad = [str(p.relative_to(ROOT)) for p in paths if "shared/papers" in p.read_text() or "REFERENCE.md" in p.read_text()]
    assert not bad
