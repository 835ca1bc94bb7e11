"""The studies under benchmarks/ use the library as a user would: no file there imports or assigns a private name of
torchrl_reg (a module, function, class or attribute whose name starts with one underscore), checked on their syntax."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _private(name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in name.split("."))


def private_uses(source: str) -> list[str]:
    """``line: what`` for each import of a private torchrl_reg name, and each read or write of a private attribute of
    a name bound to torchrl_reg (a module or anything imported from it)."""
    tree = ast.parse(source)
    ours: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "torchrl_reg":
                    if _private(alias.name):
                        found.append(f"{node.lineno}: import {alias.name}")
                    ours.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torchrl_reg":
            for alias in node.names:
                if _private(node.module) or _private(alias.name):
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
                ours.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in ours:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


#: Files allowed a private use, each with the names it uses: none. A before/after timing writes its "before" in the
#: benchmark itself, through a public hook (the Atari resize, the M-DQN loss's network calls).
BEFORE_AFTER_PATCHES: dict[str, set[str]] = {}


def test_no_benchmark_imports_or_assigns_a_private_name_of_the_library():
    files = sorted((ROOT / "benchmarks").rglob("*.py"))
    assert len(files) > 20 and (ROOT / "benchmarks" / "planning" / "__main__.py") in files
    offenders = {}
    for path in files:
        uses = {use.split(": ", 1)[1].split(" import ")[-1] for use in private_uses(path.read_text())}
        if uses:
            offenders[str(path.relative_to(ROOT))] = uses
    assert offenders == BEFORE_AFTER_PATCHES


def test_the_check_sees_each_way_to_reach_a_private_name():
    source = """
from torchrl_reg.planning.batched import _Work
import torchrl_reg.planning.snapshot_simulators as snapshots
from torchrl_reg.planning import BatchedMinAtar
snapshots._copy_minatar_game = None
BatchedMinAtar.roots = None
x = BatchedMinAtar._store
y = snapshots.SnapshotStore._add
"""
    assert [use.split(":")[0] for use in private_uses(source)] == ["2", "5", "7", "8"]
