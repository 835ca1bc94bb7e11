"""The docs' lists are the code's lists: docs/adding_a_method.rst names the files each route of adding a method
touches, and every registered loss is where those lists say (its class in ``torchrl_reg/objectives/<family>.py`` and
``__all__``, its test file, its recipe and loss option, its README row, its trainer config when it has one); no test
keeps a hand list of recipes, loss options or trainer configs that the registry gives."""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from tests.recipes.recipe_cases import CONF, RECIPES, TRAINING_RECIPES, loss_cases, offered
from torchrl_reg.loops import get_loss

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "adding_a_method.rst").read_text()
#: The routes the doc lists files for, by the sentence that opens each list.
ROUTES = {
    "option": "The files a value-based loss added as a ``loss=`` option of an existing recipe touches:",
    "value_based_recipe": "The files a new value-based recipe touches",
    "actor_critic": "The files an actor-critic loss touches",
}


def listed_paths(route: str) -> list[str]:
    """The paths of the doc's numbered list for ``route``: one ``path`` (first literal) per item."""
    section = DOC.split(ROUTES[route], 1)[1]
    items = re.findall(r"^(\d+)\. ``([^`]+)``", section.split("\n\n", 2)[1], re.M)
    assert [int(n) for n, _ in items] == list(range(1, len(items) + 1)), items
    return [path for _, path in items]


def trainer_config_classes() -> dict[str, tuple[type, ...]]:
    """``trainer config name -> the loss classes it builds``, read from trainer_configs.py's declarations without
    importing it (importing registers TorchRL's groups in Hydra's store, where they shadow the recipes')."""
    source = ast.parse((ROOT / "torchrl_reg" / "trainer_configs.py").read_text())
    classes = {node.name: node for node in source.body if isinstance(node, ast.ClassDef)}
    objectives = importlib.import_module("torchrl_reg.objectives")
    found = {}
    for node in source.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "").endswith("_LOSS_CONFIGS"):
            for arg in node.value.args:
                fields = {
                    item.target.id: item.value for item in classes[arg.id].body
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None
                }
                found[fields["loss"].value] = tuple(getattr(objectives, e.id) for e in fields["loss_classes"].elts)
    return found


def library_losses() -> list[tuple[str, str, str, type]]:
    """``(recipe, family, loss name, class)`` of every registered loss whose class is ours (torchrl_reg.objectives)."""
    return [
        (name, family, loss, entry.loss_class)
        for name in TRAINING_RECIPES for family, loss in offered(name)
        if (entry := get_loss(loss, family)).loss_class.__module__.startswith("torchrl_reg.objectives.")
    ]


@pytest.mark.parametrize("route", ROUTES)
def test_each_listed_path_is_where_a_registered_method_has_that_part(route):
    """Every path of a list, with its placeholders filled in for a method of the library that took that route,
    exists: the lists name real places, not remembered ones."""
    fills = {
        "option": {"family": "munchausen", "recipe": "m_dqn", "option": "al"},
        "value_based_recipe": {"family": "mirl", "recipe": "mirl", "option": "mirl"},
        "actor_critic": {"family": "mdac", "recipe": "mdac", "option": "mdac"},
    }[route]
    for path in listed_paths(route):
        filled = re.sub(r"<(\w+)>", lambda m: fills[m.group(1)], path)
        assert (ROOT / filled).is_file(), f"{route}: {path} ({filled}) is no file"
    assert len(set(listed_paths(route))) == len(listed_paths(route))


def test_architecture_points_to_the_lists_and_keeps_no_count_of_its_own():
    architecture = (ROOT / "ARCHITECTURE.md").read_text()
    assert "docs/adding_a_method.rst" in architecture
    counted = re.findall(r"\b(two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\d+) (?:files )?for a", architecture)
    assert not counted, f"ARCHITECTURE.md counts files itself: {counted}"


@pytest.mark.parametrize("recipe, family, loss, cls", library_losses(), ids=lambda v: getattr(v, "__name__", v))
def test_every_registered_loss_is_where_the_lists_say(recipe, family, loss, cls):
    """The loss's parts are in the files the lists name: ``torchrl_reg/objectives/<family>.py`` with its name in
    ``__all__``, ``tests/objectives/test_<family>.py`` naming it, ``recipes/<recipe>.py`` registering it, an option
    of the recipe's loss (or env) group selecting it, a README row naming the class, and, when TorchRL's trainers run
    it, a trainer config naming it."""
    objectives = importlib.import_module("torchrl_reg.objectives")
    module_file = cls.__module__.removeprefix("torchrl_reg.objectives.")
    assert (ROOT / "torchrl_reg" / "objectives" / f"{module_file}.py").is_file()
    assert cls.__name__ in objectives.__all__, f"{cls.__name__} is not in torchrl_reg.objectives.__all__"
    test_file = ROOT / "tests" / "objectives" / f"test_{module_file}.py"
    assert test_file.is_file() and cls.__name__ in test_file.read_text(), f"{test_file} does not test {cls.__name__}"
    assert (family, loss) in loss_cases(recipe)  # an option selects it (or the recipe's loss_cases fails, saying so)
    readme = (ROOT / "README.md").read_text()
    assert f"`objectives.{cls.__name__}`" in readme, f"README's method table has no row naming objectives.{cls.__name__}"
    for name, classes in trainer_config_classes().items():
        if cls in classes:
            assert name in (loss, recipe) or loss.startswith(name), (name, loss)


def _literal_strings(node: ast.AST) -> list[str] | None:
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 2:
        if all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            return [e.value for e in node.elts]
    return None


def _enumerations(tree: ast.Module):
    """The literals a test enumerates cases with: module-level constants and ``pytest.mark.parametrize`` values."""
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            yield from ast.walk(node.value)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "parametrize" and len(node.args) >= 2:
            yield from ast.walk(node.args[1])


#: The comment that says a test's list is a choice of its own, not the registry's (a benchmark's methods, the cases of
#: one behaviour): put it on the line, with why.
NOT_THE_REGISTRY = "# a choice, not the registry's list:"


def test_no_test_keeps_a_hand_list_of_recipes_loss_options_or_trainer_configs():
    """A module-level constant or a ``parametrize`` list of two or more names, all of them recipes, loss names, loss
    options or trainer configs, is a list the registry, the config directories or ``trainer_configs``' declarations
    give (``tests/recipes/recipe_cases.py``): a test that keeps one misses the method added next. A list that is a
    choice of its own (a benchmark's methods, one behaviour's cases) says so on its line."""
    names = set(RECIPES) | {loss for recipe in TRAINING_RECIPES for _, loss in offered(recipe)}
    names |= {path.stem for path in CONF.glob("*/loss/*.yaml")} | set(trainer_config_classes())
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        for node in _enumerations(ast.parse(source)):
            strings = _literal_strings(node)
            if strings and len(set(strings)) >= 2 and set(strings) <= names and NOT_THE_REGISTRY not in lines[node.lineno - 1]:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {strings}")
    assert not found, "hand lists the registry gives:\n" + "\n".join(found)


def test_prose_lists_of_a_recipes_loss_options_are_whole_or_say_they_are_not():
    """A ``loss: a, b, c`` line (a ``--help`` sample in the docs, a primary config's help text) lists every option of
    the recipe's loss group, or ends with ``...``: a new ``loss=`` option leaves no stale list behind."""
    texts = {path: path.read_text() for path in (ROOT / "docs").glob("*.rst")}
    texts |= {path: path.read_text() for path in CONF.glob("*/*.yaml")}
    options = {path.stem for path in CONF.glob("*/loss/*.yaml")}
    for path, text in texts.items():
        for listed in re.findall(r"^\s*loss: ([\w*]+(?:, [\w*.]+)+)\s*$", text, re.M):
            names = [name.rstrip("*") for name in listed.split(", ")]
            if names[-1] == "...":
                continue
            recipes = {p.parent.parent.name for p in CONF.glob("*/loss/*.yaml") if p.stem in names}
            whole = [sorted(p.stem for p in (CONF / recipe / "loss").glob("*.yaml")) for recipe in recipes]
            assert set(names) <= options and sorted(names) in whole, f"{path}: loss: {listed}"
