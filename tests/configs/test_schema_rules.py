"""Each recipe's rules are its schema's: the keys a resume may change and the keys added after run directories were
written without them are declared on the config classes (a family's schema or a group's dataclass) and read by the
run layer, which names no recipe's key; the planning groups check themselves."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.recipes.recipe_cases import RECIPES, recipe
from torchrl_reg.configs import RunConfig
from torchrl_reg.run.rundir import resume_rules

ROOT = Path(__file__).resolve().parents[2]


def test_the_run_layer_names_no_recipe_key():
    # the planning recipe's groups and the env option Hydra's command line chose are the recipes' and the configs'
    for path in sorted((ROOT / "torchrl_reg" / "run").glob("*.py")):
        text = path.read_text()
        for word in ("planner", "tree_search", "task.", "evaluator", "runtime.choices"):
            assert word not in text, f"{path.relative_to(ROOT)} names {word!r}"


def _schemas():
    for name in RECIPES:
        module = recipe(name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, RunConfig) and value.__module__ != RunConfig.__module__:
                yield pytest.param(value, id=f"{name}:{value.__name__}")


def _keys(schema: type) -> set[str]:
    def flat(node, prefix=""):
        for key, value in node.items():
            yield from flat(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key]

    return set(flat(OmegaConf.to_container(OmegaConf.structured(schema))))


@pytest.mark.parametrize("schema", list(_schemas()))
def test_every_key_a_schema_declares_for_a_resume_is_one_of_its_keys(schema):
    resumable, added = resume_rules(schema)
    assert set(resumable) <= _keys(schema) and set(added) <= _keys(schema)
    assert set(resumable.values()) <= {"any", "larger"}
    assert {"run_dir", "logger.backend"} <= set(resumable)  # every run's, from RunConfig


def test_a_group_declares_its_keys_without_its_name():
    from recipes.tree_search import TreeSearchConfig

    _, added = resume_rules(TreeSearchConfig)
    assert {"planner.batch_episodes", "planner.futures", "planner.model"} <= set(added)
    model = added["planner.model"]
    assert model({"task.name": "minatar", "planner.batch_episodes": 4}) == "determinized"
    assert model({"task.name": "atari"}) == "sampled"
    # the digest of a checkpoint leaves out exactly these keys: a planning config's, not a training one's
    assert not {"collector.total_frames", "env.backend", "loss.name"} & (set(added) | set(resume_rules(TreeSearchConfig)[0]))


def test_the_planning_groups_check_themselves():
    from recipes.tree_search import TreeSearchConfig

    groups = {f.name: f.default_factory for f in dataclasses.fields(TreeSearchConfig)}
    assert all(hasattr(groups[name], "check_group") for name in ("task", "planner", "evaluator"))
    assert all(group.__module__ == "torchrl_reg.configs.planning" for group in (groups["task"], groups["planner"]))


def test_a_budget_that_makes_no_update_is_warned_naming_both_keys():
    """``collector.total_frames`` not past ``optim.learning_starts`` by one update's frames: the run would complete with 0
    updates and report its untrained policy; warned when the config is checked, naming both keys."""
    from tests.recipes.recipe_cases import CONF
    from torchrl_reg.configs import compose_config

    m_dqn = recipe("m_dqn")
    small = ["env=cartpole", "collector.total_frames=200", "collector.frames_per_batch=128", "optim.learning_starts=256",
             "optim.frames_per_update=4"]
    with pytest.warns(UserWarning) as record:
        m_dqn.validate(compose_config(CONF, "m_dqn", small))
    (warning,) = [w for w in record if "optim.learning_starts" in str(w.message)]
    assert str(warning.message) == (
        "collector.total_frames=200 (256 frames collected in whole batches) is not optim.frames_per_update=4 past "
        "optim.learning_starts=256: the run makes no update and reports an untrained policy; raise "
        "collector.total_frames above 259 or lower optim.learning_starts"
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one update's frames past learning_starts: no warning
        m_dqn.validate(compose_config(CONF, "m_dqn", [*small, "optim.learning_starts=252"]))
