"""Citations of the recipe side (the layering of every package: tests/test_layers.py)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_recipe_side_cites_papers_not_files_outside_the_repository():
    """Docstrings cite title, venue and arXiv id, never the shared papers folder or REFERENCE.md."""
    paths = [*(ROOT / "recipes").glob("*.py")]
    for layer in ("torchrl_reg/loops", "torchrl_reg/modules", "torchrl_reg/configs", "torchrl_reg/run", "torchrl_reg/envs",
                  "torchrl_reg/data"):
        paths += (ROOT / layer).rglob("*.py")
    bad = [str(p.relative_to(ROOT)) for p in paths if "shared/papers" in p.read_text() or "REFERENCE.md" in p.read_text()]
    assert not bad
