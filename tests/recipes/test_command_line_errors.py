"""What a recipe's command line prints when it refuses a config: the one-line reason (naming the key and what it
accepts) and exit status 2, no traceback, nothing written (no run directory, no Hydra directory); a misspelled key
gets the closest key, a misspelled option the closest option of its group."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hydra.errors import HydraException

from tests.recipes.recipe_cases import CONF, ROOT, recipe
from torchrl_reg.configs import compose_config
from torchrl_reg.loops.entry import EXIT_REFUSED, misspelled_key_hint, override_refusal


def _run(tmp_path, recipe_file: str, *args: str) -> subprocess.CompletedProcess:
    """``python recipes/<recipe_file> args`` from an empty working directory, ``tmp_path / "cwd"``: whatever the
    command writes without being told where lands there (Hydra's ``runs/`` or ``outputs/``)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "recipes" / recipe_file), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _nothing_on_disk(tmp_path) -> bool:
    """Neither the run directory nor anything in the working directory (no Hydra directory)."""
    return not (tmp_path / "run").exists() and not any((tmp_path / "cwd").iterdir())


@pytest.mark.slow
def test_a_refused_config_prints_its_one_line_reason_alone(tmp_path):
    done = _run(tmp_path, "m_dqn.py", "loss.tau=100", f"run_dir={tmp_path / 'run'}")
    assert done.returncode == EXIT_REFUSED != 0
    reason = "m_dqn: config refused: loss.tau must be a finite number in [0.0001, 10.0], got loss.tau=100.0"
    assert done.stderr.splitlines() == [reason] and done.stdout == ""
    assert _nothing_on_disk(tmp_path)


@pytest.mark.slow
def test_a_misspelled_key_gets_one_line_with_the_closest_key(tmp_path):
    done = _run(tmp_path, "tree_search.py", "planner.simulation=200", f"run_dir={tmp_path / 'run'}")
    assert done.returncode == EXIT_REFUSED
    # one line: no Hydra error, no "+planner.simulation" hint, no traceback
    (line,) = done.stderr.splitlines()
    assert line.startswith("tree_search: planner.simulation is not a config key; did you mean `planner.simulations`? "
                           "(planner has: ")
    assert _nothing_on_disk(tmp_path)


@pytest.mark.slow
def test_a_misspelled_option_gets_one_line_with_the_closest_option(tmp_path):
    done = _run(tmp_path, "sac.py", "env=pendullum")
    assert done.returncode == EXIT_REFUSED
    assert done.stderr.splitlines() == [
        "sac: env=pendullum is not an option of env; did you mean `env=pendulum`? "
        "(env has: ant, halfcheetah, hopper, humanoid, multigoal, pendulum, walker2d)"]
    assert _nothing_on_disk(tmp_path)


def _refusal(*overrides: str) -> str:
    """The line the m_dqn command line prints for ``overrides``, which Hydra refuses to compose."""
    recipe("m_dqn")
    with pytest.raises(HydraException) as refused:
        compose_config(CONF, "m_dqn", list(overrides))
    return override_refusal(CONF, "m_dqn", list(overrides), refused.value)


def test_each_refusal_of_hydra_is_one_line_naming_the_override():
    assert _refusal("env=minatar", "optim.lrr=0.1").startswith(
        "m_dqn: optim.lrr is not a config key; did you mean `optim.lr`? (optim has: lr, eps, ")
    # a top-level key and a group, by their names beside them
    assert _refusal("sed=3").startswith("m_dqn: sed is not a config key; did you mean `seed`? (the config has: ")
    assert _refusal("evn=minatar").startswith("m_dqn: evn is not a config key; did you mean `env`?")
    # an option of another recipe: none close, the group's own listed
    options = ", ".join(sorted(path.stem for path in (CONF / "m_dqn" / "loss").glob("*.yaml")))
    assert _refusal("loss=iq") == f"m_dqn: loss=iq is not an option of loss (loss has: {options})"
    assert _refusal("env=minatr").startswith("m_dqn: env=minatr is not an option of env; did you mean `env=minatar`?")
    # a value of the wrong type: Hydra's reason and its cause, on one line
    assert _refusal("seed=abc") == ("m_dqn: config refused: Error merging override seed=abc; "
                                    "Value 'abc' of type 'str' could not be converted to Integer")
    for line in (_refusal("seed=1,2"), _refusal("optim.zzzzzz=1")):
        assert "\n" not in line


def test_the_hint_names_the_closest_key_of_the_composed_config():
    recipe("m_dqn")
    hint = misspelled_key_hint(CONF, "m_dqn", ["env=minatar", "optim.lrr=0.1", "seed=3"])
    assert hint.startswith("m_dqn: optim.lrr is not a config key; did you mean `optim.lr`? (optim has: lr, eps, ")
    assert misspelled_key_hint(CONF, "m_dqn", ["loss.tua=0.1"]).startswith("m_dqn: loss.tua is not a config key; "
                                                                         "did you mean `loss.tau`?")
    assert misspelled_key_hint(CONF, "m_dqn", ["optim.lr=0.1", "env=minatar"]) is None  # every key exists
    # nothing close: the keys beside it
    assert misspelled_key_hint(CONF, "m_dqn", ["optim.zzzzzz=1"]).startswith("m_dqn: optim.zzzzzz is not a config key "
                                                                            "(optim has: lr, eps, ")


def test_a_plus_prefixed_misspelled_key_is_refused_with_the_closest_key():
    m_dqn = recipe("m_dqn")
    with pytest.raises(ValueError, match=r"invalid config entry 'optim.lrr': not a key of the schema .*; did you "
                                         r"mean 'optim.lr'\? Accepted keys at this level: \['lr', "):
        m_dqn.validate(compose_config(CONF, "m_dqn", ["+optim.lrr=0.1"]))


PRESET_CONFLICTS = {
    # the override, the key the preset set, the file, the override that works
    "planner.algorithm=dents": ("planner.tau=0.1: not read by dents", "planner.tau", "tree_search_preset/minatar.yaml",
                                "planner.tau=null"),
    "evaluator.kind=rollout": ("evaluator.prior_tau=0.1 is not used by evaluator.kind='rollout'", "evaluator.prior_tau",
                               "tree_search_preset/minatar.yaml", "evaluator.prior_tau=1.0"),
}


@pytest.mark.parametrize("override", list(PRESET_CONFLICTS))
def test_a_presets_value_that_the_choice_does_not_read_names_the_preset_and_the_override(override):
    """The MinAtar preset sets MENTS's planner.tau and the network evaluator's prior_tau: another algorithm or evaluator
    is refused, and the refusal says which file set the value and the override that unsets it."""
    from torchrl_reg.configs import preset_overrides

    refused, key, source, fix = PRESET_CONFLICTS[override]
    overrides = ["tree_search_preset=minatar", override]
    tree_search = recipe("tree_search")
    with pytest.raises(ValueError) as info:
        tree_search.validate(compose_config(CONF, "tree_search", overrides))
    assert str(info.value).startswith(refused), info.value
    note = preset_overrides(CONF, "tree_search", overrides, info.value)
    assert note == f" ({key} was set by {source}, add {fix} to the command line)"
    # the override it names is accepted: that refusal is gone
    try:
        tree_search.validate(compose_config(CONF, "tree_search", [*overrides, fix]))
    except ValueError as err:
        assert key not in str(err), err
    # a value of the command line gets no note: the user set it
    with pytest.raises(ValueError) as info:
        tree_search.validate(compose_config(CONF, "tree_search", [*overrides, fix.replace("null", "0.2").replace("1.0", "0.2")]))
    assert preset_overrides(CONF, "tree_search", [*overrides, fix.replace("null", "0.2").replace("1.0", "0.2")], info.value) == ""


@pytest.mark.slow
def test_a_preset_conflict_is_one_line_naming_the_preset_file_and_the_override(tmp_path):
    done = _run(tmp_path, "tree_search.py", "tree_search_preset=minatar", "planner.algorithm=dents",
                f"run_dir={tmp_path / 'run'}")
    assert done.returncode == EXIT_REFUSED
    assert done.stderr.splitlines() == [
        "tree_search: config refused: planner.tau=0.1: not read by dents (it reads planner.alpha, planner.beta_0, "
        "planner.eps); leave the other algorithms' knobs unset (planner.tau was set by tree_search_preset/minatar.yaml, "
        "add planner.tau=null to the command line)"
    ]
    assert _nothing_on_disk(tmp_path)
