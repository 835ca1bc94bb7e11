"""The contract between a method and its loop (torchrl_reg/loops/registry.py, torchrl_reg/objectives/protocols.py):
every recipe's loss options name a registered entry of the loop its schema runs, the entries' builders take
their family's arguments, each loss's fused-update declaration is true, and a wrong lookup or registration is
refused with a message naming what is wrong."""
from __future__ import annotations

import importlib
import inspect
import re

import pytest
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf
from torchrl.objectives import DQNLoss, SACLoss

from tests.recipes.recipe_cases import CONF, RECIPES, TRAINING_RECIPES, loss_cases, offered, recipe
from torchrl_reg.configs import ActorCriticConfig, ValueBasedConfig, compose_config, config_sources
from torchrl_reg.loops import (
    BUILDERS,
    LOOPS,
    HooksBuilder,
    NetworkBuilder,
    get_loss,
    offered_losses,
    register_loss,
    registered_losses,
)
from torchrl_reg.loops.registry import _LOSSES
from torchrl_reg.objectives import (
    FusableLoss,
    InputChecks,
    MIRLLoss,
    MunchausenDQNLoss,
    SoftQLearningLoss,
    SoftQLoss,
    VIRELLoss,
    protocol_gaps,
)
from torchrl_reg.run.rundir import resume_changes
from torchrl_reg.validation import constructor_arguments

def _import_all() -> None:
    for name in RECIPES:
        recipe(name)


@pytest.mark.parametrize("name", TRAINING_RECIPES)
def test_every_loss_option_names_an_entry_of_its_schemas_loop(name):
    """Each option of a recipe's loss group composes to a ``loss.name`` that the recipe registered in the family
    of the schema it validates against (whose loop ``train`` runs); every loss it registers is reached by an
    option (:func:`loss_cases`); and the recipe refuses every other recipe's option."""
    module = recipe(name)
    options = config_sources(CONF, name).groups["loss"][1]
    for option in options:
        cfg = module.validate(compose_config(CONF, name, [f"loss={option}"]))
        family = OmegaConf.get_type(cfg).family
        assert (family, cfg.loss.name) in offered(name), (name, option)
        assert get_loss(cfg.loss.name, family).family == family
    assert set(loss_cases(name)) == set(offered(name))
    # another recipe's option is not in this recipe's loss group (recipes/conf/<recipe>/loss/)
    for option in sorted({path.stem for path in CONF.glob("*/loss/*.yaml")} - set(options)):
        with pytest.raises(MissingConfigException, match=f"Could not find 'loss/{option}'"):
            compose_config(CONF, name, [f"loss={option}"])


def test_every_loss_option_belongs_to_a_training_recipe():
    assert {path.parent.parent.name for path in CONF.glob("*/loss/*.yaml")} == set(TRAINING_RECIPES)
    assert set(TRAINING_RECIPES) < set(RECIPES)  # the planning recipe trains nothing


def test_a_recipe_accepts_the_losses_its_file_registers_and_no_other():
    """``loss.name`` is checked against the names the recipe file registered (no list repeated in its config): a
    name of the same family registered by another recipe is refused, listing the recipe's own."""
    m_iqn = recipe("m_iqn")
    recipe("m_dqn")
    for name in ("m_iqn", "m_dqn"):  # in the order the file registers them, and no other recipe's
        assert offered_losses(f"recipes.{name}", "value_based") == [loss for _, loss in offered(name)]
    assert "dqn" in registered_losses("value_based") and "dqn" not in offered_losses("recipes.m_iqn", "value_based")
    accepted = re.escape(str(offered_losses("recipes.m_iqn", "value_based")))
    with pytest.raises(ValueError, match=rf"loss.name must be one of {accepted}, got loss.name='dqn'"):
        m_iqn.validate(compose_config(CONF, "m_iqn", ["loss.name=dqn"]))


def test_the_two_sql_entries_are_one_name_in_two_families():
    _import_all()
    assert get_loss("sql", "value_based").loss_class is MIRLLoss  # loss=sql of recipes/mirl.py
    assert get_loss("sql", "actor_critic").loss_class is SoftQLearningLoss  # recipes/sql.py
    assert "sql" in registered_losses("value_based") and "sql" in registered_losses("actor_critic")
    assert set(registered_losses()) == set(registered_losses("value_based")) | set(registered_losses("actor_critic"))


def test_get_loss_refuses_another_familys_loss_and_an_unknown_name():
    _import_all()
    with pytest.raises(ValueError, match=r"loss 'implicit_q' is registered for the actor_critic loop, not the value_based "
                                         r"loop: a value_based config cannot run it; value_based losses: \[.*'m_dqn'"):
        get_loss("implicit_q", "value_based")
    with pytest.raises(ValueError, match=r"loss 'm_dqn' is registered for the value_based loop, not the actor_critic loop"):
        get_loss("m_dqn", "actor_critic")
    with pytest.raises(ValueError, match=r"unknown actor_critic loss 'nope'; registered actor_critic losses: \[.*'sac'"):
        get_loss("nope", "actor_critic")
    with pytest.raises(ValueError, match=r"unknown loop family 'planing'; the families are \['actor_critic', 'value_based'\]"):
        get_loss("m_dqn", "planing")


def test_every_entry_matches_its_familys_protocols():
    """The builders take the arguments their family's loop passes (the Protocols' parameters, by signature)."""
    _import_all()
    assert set(BUILDERS) == set(LOOPS) - {"planning"} and {entry.family for entry in _LOSSES.values()} == set(BUILDERS)
    for (family, name), entry in _LOSSES.items():
        assert (entry.family, entry.name) == (family, name)
        for builder, protocol in ((entry.from_config, BUILDERS[family]), (entry.hooks, HooksBuilder),
                                  (entry.network, NetworkBuilder)):
            if builder is not None:
                expected = [p for p in inspect.signature(protocol.__call__).parameters if p != "self"]
                inspect.signature(builder).bind(*expected)  # raises TypeError on a mismatch
        assert entry.network is None or family == "value_based"



@pytest.mark.parametrize("name", TRAINING_RECIPES)
def test_every_argument_check_names_an_argument_of_the_loss_or_a_key_of_the_config(name):
    """The checks an entry runs on the config (the loss class's ``argument_checks``, or its ``checks=``: SAC's
    ranges, soft Q-learning's two component losses) name arguments of a constructor (of the loss, or of the class
    that owns them: a class with checks and a constructor is refused when defined otherwise,
    :class:`~torchrl_reg.validation.ArgumentChecks`) or keys of the recipe's loss group: none is skipped for a name
    that no longer exists."""
    module = recipe(name)
    for family, loss in offered(name):
        entry = get_loss(loss, family)
        cfg = module.validate(compose_config(CONF, name, list(loss_cases(name)[(family, loss)])))
        for owner in entry.checks or (entry.loss_class,):
            accepted = {*constructor_arguments(owner), *constructor_arguments(entry.loss_class), *cfg.loss}
            unknown = set(getattr(owner, "argument_checks", {})) - accepted
            assert not unknown, (name, loss, owner.__name__, unknown)


def test_each_loss_is_fusable_or_declared_not_to_be():
    """``fused_update`` is declared at registration and must be true of the class: the regularized losses fuse;
    TorchRL's DQNLoss and SACLoss, soft Q-learning and VIREL (no loss_and_outputs; VIREL's temperature changes
    inside forward: fusable_update = False) run the generic update. Every loss of this
    library checks its transitions before the buffer (InputChecks); TorchRL's and the SQL pair do not."""
    _import_all()
    unchecked = {DQNLoss, SACLoss, SoftQLearningLoss}
    for key, entry in _LOSSES.items():
        assert (protocol_gaps(entry.loss_class, FusableLoss) == []) is entry.fused_update, key
        assert (protocol_gaps(entry.loss_class, InputChecks) == []) is (entry.loss_class not in unchecked), key
    assert protocol_gaps(DQNLoss, FusableLoss) == ["has no loss_and_outputs", "has no fusable_update"]
    assert protocol_gaps(SoftQLoss, FusableLoss) == ["does not trace into one graph (fusable_update=False)"]
    assert protocol_gaps(SACLoss, InputChecks) == ["has no check_inputs", "has no inputs_checked"]


def _value_based(cfg, actor):
    return MunchausenDQNLoss(actor)


def _actor_critic(cfg, env, device):
    raise AssertionError("never built")


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("x", MunchausenDQNLoss, _value_based), {"family": "planing"},
         r"loss 'x': unknown loop family 'planing'; the families are \['actor_critic', 'value_based'\]"),
        (("x", MunchausenDQNLoss, _actor_critic), {"family": "value_based"},
         r"loss 'x': from_config must be called as from_config\(cfg, actor\) \(ValueBasedBuilder\); '_actor_critic' "
         r"takes \(cfg, env, device\)"),
        (("x", VIRELLoss, _value_based), {"family": "actor_critic", "fused_update": False},
         r"from_config must be called as from_config\(cfg, env, device\) \(ActorCriticBuilder\)"),
        (("x", MunchausenDQNLoss, _value_based), {"family": "value_based", "hooks": lambda loss: None},
         r"hooks must be called as hooks\(cfg, loss\) \(HooksBuilder\)"),
        (("x", VIRELLoss, _actor_critic), {"family": "actor_critic", "network": lambda cfg, shape, n: None,
                                           "fused_update": False},
         r"network= builds the value-based loop's Q-network; the actor_critic loop would not read it"),
        (("x", DQNLoss, _value_based), {"family": "value_based"},
         r"loss 'x': DQNLoss has no loss_and_outputs and has no fusable_update, so its update cannot be fused "
         r"\(FusableLoss\); register it with fused_update=False"),
        (("x", MunchausenDQNLoss, _value_based), {"family": "value_based", "fused_update": False},
         r"loss 'x': fused_update=False, but MunchausenDQNLoss is a FusableLoss; drop fused_update=False"),
        (("m_dqn", MIRLLoss, _value_based), {"family": "value_based"},
         r"value_based loss name 'm_dqn' is already registered for MunchausenDQNLoss, not MIRLLoss"),
    ],
)
def test_register_loss_refuses_a_builder_or_declaration_that_breaks_the_contract(args, kwargs, message):
    importlib.import_module("recipes.m_dqn")
    before = dict(_LOSSES)
    with pytest.raises(ValueError, match=message):
        register_loss(*args, **kwargs)
    assert _LOSSES == before  # nothing registered


def test_the_loop_is_the_validated_schemas_and_an_unvalidated_config_is_refused():
    virel = importlib.import_module("recipes.virel")
    from torchrl_reg.loops import actor_critic, train_loop, value_based

    assert train_loop(virel.validate(compose_config(CONF, "virel", []))) is actor_critic.train
    assert train_loop(virel.validate(compose_config(CONF, "virel", ["env=cartpole"]))) is value_based.train
    with pytest.raises(ValueError, match=r"the config's schema .* names no training loop \(family=None"):
        train_loop(OmegaConf.create({"loss": {"name": "virel"}}))


def test_the_entry_names_the_run_by_its_settings():
    """metrics.json's "loss" is the method the settings make (IQ's Section 6 names), then the entry's other entries."""
    iq = importlib.import_module("recipes.iq")
    for option, label in (("m_iq", "m_iq"), ("iq", "iq"), ("trust_pcl", "trust_pcl"), ("pcl", "pcl")):
        cfg = iq.validate(compose_config(CONF, "iq", [f"loss={option}", "policy=gaussian"]))
        entry = get_loss(cfg.loss.name, "actor_critic")
        assert entry.run_metrics(cfg) == {"loss": label, "policy": "gaussian"}
        assert entry.title(cfg) == f"{label} (gaussian) on HalfCheetah-v5 (seed 0)"
    m_dqn = importlib.import_module("recipes.m_dqn")
    cfg = m_dqn.validate(compose_config(CONF, "m_dqn", ["loss=al"]))
    assert get_loss("al", "value_based").run_metrics(cfg) == {"loss": "al"}


def test_a_run_directory_without_the_actor_critic_loss_name_resumes():
    """Actor-critic configs gained ``loss.name``; each recipe offers one, so a stored config without it ran that one.
    A value-based config always had it: a change stays refused."""
    assert resume_changes({"loss": {"gamma": 0.99}}, {"loss": {"name": "implicit_q", "gamma": 0.99}}, ActorCriticConfig) == []
    assert resume_changes({"loss": {"name": "m_dqn"}}, {"loss": {"name": "dqn"}}, ValueBasedConfig) == [
        "loss.name: 'm_dqn' -> 'dqn'"]
    assert resume_changes({"loss": {"name": "sac"}}, {"loss": {}}, ActorCriticConfig) == ["loss.name: 'sac' -> '<absent>'"]
