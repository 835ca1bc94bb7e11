"""The public faces match their use: each package exports what its users import (fewer than 30 names for the run
layer and the configs), an exported name means one class across the packages, the README reads without a line
longer than a screen, the benchmark studies share only public helpers and import without side effects, and a loss
passes its base's keyword arguments on with ``**kwargs`` instead of spelling them again."""
from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Every package of the API reference but trainer_configs, whose import registers TorchRL's groups in Hydra's store.
PACKAGES = ["functional", "validation", "objectives", "value", "modules", "data", "tabular", "planning", "envs", "loops",
            "configs", "run", "sweep", "report"]


@pytest.mark.parametrize("package", ["run", "configs"])
def test_the_run_layer_and_the_configs_export_fewer_than_30_names(package):
    exported = importlib.import_module(f"torchrl_reg.{package}").__all__
    assert len(exported) < 30, f"torchrl_reg.{package} exports {len(exported)} names: move the rest to its submodules"
    assert len(set(exported)) == len(exported)


def test_an_exported_name_is_one_class_across_the_packages():
    classes: dict[str, set[str]] = {}
    for package in PACKAGES:
        module = importlib.import_module(f"torchrl_reg.{package}")
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type):
                classes.setdefault(name, set()).add(f"{value.__module__}.{value.__qualname__}")
    assert {name: where for name, where in classes.items() if len(where) > 1} == {}


def test_no_readme_line_is_over_300_characters():
    long = [(number, len(line)) for number, line in enumerate((ROOT / "README.md").read_text().splitlines(), 1)
            if len(line) > 300]
    assert long == [], f"README.md lines (number, length) over 300 characters: {long}"


def _benchmark_modules() -> list[Path]:
    return sorted(p for p in (ROOT / "benchmarks").rglob("*.py") if "results" not in p.parts)


def test_no_benchmark_study_imports_a_private_helper_of_another():
    found = []
    for path in _benchmark_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("benchmarks"):
                found += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert found == [], "shared helpers are public (benchmarks/common.py, benchmarks/planning/common.py): " + ", ".join(found)


def test_importing_the_planning_studies_sets_no_environment_variable():
    tree = ast.parse((ROOT / "benchmarks" / "planning" / "__init__.py").read_text())
    module_level = [node for node in tree.body if not isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    assert not any("environ" in ast.dump(node) for node in module_level)


def _own_init(cls: type) -> tuple[inspect.Signature, type] | None:
    """The signature of ``cls.__init__`` and the nearest base of ours that defines one."""
    base = next((b for b in cls.__mro__[1:] if "__init__" in vars(b) and b.__module__.startswith("torchrl_reg")), None)
    return None if base is None or "__init__" not in vars(cls) else (inspect.signature(cls.__init__), base)


def test_a_loss_passes_its_bases_keyword_arguments_on_with_kwargs():
    """A loss (not a base class: their signatures are the documented ones) spells a base's argument again only to change its default (MIRL's and discrete VIREL's
    ``loss_function="l2"``) or to read it before the base does (VIREL's ``reduction``, MIRL's ``action_space``)."""
    objectives = importlib.import_module("torchrl_reg.objectives")
    read_before_base = {("VIRELLoss", "reduction"), ("MIRLLoss", "action_space")}
    respelled = []
    for name in objectives.__all__:
        cls = getattr(objectives, name)
        found = _own_init(cls) if isinstance(cls, type) and not name.endswith("Base") else None
        if found is None:
            continue
        signature, base = found
        inherited = inspect.signature(base.__init__).parameters
        for arg, parameter in signature.parameters.items():
            if parameter.kind is not parameter.KEYWORD_ONLY or arg not in inherited:
                continue  # the networks are positional: each loss names its own
            if parameter.default == inherited[arg].default and (name, arg) not in read_before_base:
                respelled.append(f"{name}({arg}=) re-spells {base.__name__}'s")
    assert respelled == []
