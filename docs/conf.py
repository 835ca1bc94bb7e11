"""Sphinx configuration: the API reference from the docstrings (autodoc + napoleon), the guides, and their
code examples run as doctests (``sphinx-build -b doctest``; ``tests/test_docs.py`` builds both with -W)."""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path

from sphinx.ext.autodoc.mock import mock
from sphinx.pycode import ModuleAnalyzer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's torchrl_reg, also when it is not installed

#: The packages of the extras (pyproject's optional-dependencies; tests/test_install.py's list) that the API reference
#: imports. Those not installed are mocked while autodoc imports our modules, so that the HTML reference builds with
#: the core install and sphinx alone (``pip install -e . sphinx``); those installed are imported for real. The
#: guides' examples (the doctest build) run our code, and those that build environments or trainers need the
#: ``recipes`` extra (gymnasium, Hydra): ``pip install -e ".[recipes,test]"``.
OPTIONAL = ["hydra", "omegaconf", "gymnasium", "ale_py", "mujoco", "minatar", "submitit", "matplotlib", "scipy", "tqdm",
            "yaml"]
autodoc_mock_imports = [name for name in OPTIONAL if importlib.util.find_spec(name) is None]

project = "torchrl_reg"
author = "torchrl_reg contributors"
copyright = "torchrl_reg contributors, MIT license"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.doctest", "sphinx.ext.mathjax"]
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}
# Our own docstrings only: a method without one (an override of TorchRL's or gymnasium's) is not listed.
autodoc_inherit_docstrings = False
autodoc_typehints = "none"  # the signatures carry the hints; napoleon's Args sections say the rest
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# The examples in the guides and in the docstrings run: one torch thread, CPU, milliseconds each.
# A docstring's example reads the names of its module, as pytest's --doctest-modules would give it.
doctest_global_setup = """
import torch
from torchrl_reg.data import *
from torchrl_reg.modules import *
from torchrl_reg.objectives import *
torch.set_num_threads(1)
torch.manual_seed(0)
"""
html_theme = "alabaster"
exclude_patterns = ["_build"]


def _constant_doc(app, what, name, obj, options, lines) -> None:
    """A package's constant is defined in one of its modules, next to its ``#:`` comment: show that comment
    (autodoc would show the docstring of the constant's type, dict's or tuple's)."""
    package, _, attr = name.rpartition(".")
    with mock(app.config.autodoc_mock_imports):  # the modules are imported as autodoc imports them
        if what != "data" or not hasattr(importlib.import_module(package), "__path__"):
            return
        lines[:] = []
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
            docs = ModuleAnalyzer.for_module(f"{package}.{info.name}").find_attr_docs()
            if ("", attr) in docs:
                lines[:] = list(docs[("", attr)])
                return


def setup(app) -> None:
    app.connect("autodoc-process-docstring", _constant_doc)
