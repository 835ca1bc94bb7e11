"""recipes/ and benchmarks/ are packages importable from the repository root, with no sys.path edits."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULES = [f"{folder}.{p.stem}" for folder in ("recipes", "benchmarks") for p in sorted((REPO / folder).glob("*.py"))]


@pytest.mark.parametrize("name", MODULES)
def test_imports_as_a_module(name):
    assert importlib.import_module(name).__file__.startswith(str(REPO))


def test_no_code_edits_sys_path():
    offenders = [
        str(p.relative_to(REPO))
        for folder in ("recipes", "benchmarks", "tests")
        for p in (REPO / folder).rglob("*.py")
        if p != Path(__file__).resolve() and any(edit in p.read_text() for edit in ("sys.path.insert", "sys.path.append"))
    ]
    assert offenders == []
