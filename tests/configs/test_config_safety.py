"""Config safety: resumes that would train another config are refused
before the directory is touched, no override slips past the schema, and the validation holes."""
from __future__ import annotations

import importlib
import json
import logging
import re
from pathlib import Path

import pytest
import torch
from tests.recipes.recipe_cases import TRAINING_RECIPES, loss_cases, offered
from tests.recipes.test_m_dqn import SMALL

from recipes import m_dqn, m_iqn, tree_search
from torchrl_reg.configs import compose_config, config_sources, register_schema
from torchrl_reg.run import request_stop_at
from torchrl_reg.run.rundir import ResumeRefused, resume_changes, resume_rules
from torchrl_reg.sweep.spec import Recipe, SweepError, plan_tasks

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "recipes" / "conf"


def _cfg(*overrides: str, recipe: str = "m_dqn"):
    return compose_config(CONF, recipe, list(overrides))


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("stopped")
    request_stop_at(80)
    assert m_dqn.train(_cfg(*SMALL, f"run_dir={run_dir}"))["status"] == "interrupted"
    return run_dir


@pytest.mark.parametrize(
    "change, key",
    [
        ("seed=1", "seed: 0 -> 1"),
        ("optim.lr=0.1", "optim.lr: 0.00025 -> 0.1"),
        ("loss=dqn", "loss.name: 'm_dqn' -> 'dqn'"),
        ("loss.alpha=0.5", "loss.alpha: 0.9 -> 0.5"),
        ("buffer.size=400", "buffer.size: 500 -> 400"),
        ("collector.total_frames=200", "collector.total_frames: 240 -> 200 (may only grow)"),
        ("network.hidden=[32]", "network.hidden: [120, 84] -> [32]"),
        ("env=acrobot", "env.name: 'CartPole-v1' -> 'Acrobot-v1'"),
        ("collector.num_envs=8", "collector.num_envs: 4 -> 8"),
        ("buffer=prioritized", "buffer.prioritized: False -> True"),
        ("compile=true", "compile: False -> True"),
    ],
)
def test_resume_with_a_changed_config_is_refused_before_the_directory_is_touched(stopped, change, key):
    before = {p.name: p.read_bytes() for p in stopped.iterdir() if p.is_file()}
    with pytest.raises(ResumeRefused, match=rf"(?s)holds a checkpoint of another config.*{__import__('re').escape(key)}"):
        m_dqn.train(_cfg(*SMALL, change, f"run_dir={stopped}"))
    assert {p.name: p.read_bytes() for p in stopped.iterdir() if p.is_file()} == before


def test_only_the_listed_keys_may_change_on_resume(tmp_path):
    schema = m_dqn.MDQNConfig
    assert resume_changes({"collector": {"total_frames": 10}}, {"collector": {"total_frames": 20}}, schema) == []
    assert resume_changes({"logger": {"interval": 10, "backend": "csv"}}, {"logger": {"interval": 5, "backend": "none"}},
                          schema) == []
    assert resume_changes({"a": float("nan")}, {"a": float("nan")}, schema) == []
    assert resume_changes({"eval": {"episodes": 2}}, {"eval": {"episodes": 3}}, schema) == ["eval.episodes: 2 -> 3"]
    assert resume_changes({}, {"loss": {"beta": 1}}, schema) == ["loss.beta: '<absent>' -> 1"]
    # cuda_graph changes how the fused step is launched, not what it computes; checkpoint.interval_s (planning) when
    # the group in progress is saved, not what it plays. Each schema lists its own keys, none another family's.
    every_run = {"logger.backend", "logger.project", "logger.progress_bar", "run_dir"}
    assert set(resume_rules(schema)[0]) == every_run | {"collector.total_frames", "logger.interval", "checkpoint.interval",
                                                        "cuda_graph"}
    assert set(resume_rules(tree_search.TreeSearchConfig)[0]) == every_run | {"episodes", "checkpoint.interval_s"}
    assert resume_changes({"episodes": 2}, {"episodes": 3}, tree_search.TreeSearchConfig) == []
    assert resume_changes({"episodes": 2}, {"episodes": 3}, schema) == ["episodes: 2 -> 3"]
    assert resume_changes({"logger": {"backend": "csv"}}, {"logger": {"backend": "none"}}, {}) == [
        "logger.backend: 'csv' -> 'none'"]  # no schema: nothing may change
    # an allowed change resumes and is recorded: a longer run, logged every 80 frames
    run_dir = tmp_path / "run"
    request_stop_at(80)
    m_dqn.train(_cfg(*SMALL, f"run_dir={run_dir}"))
    metrics = m_dqn.train(_cfg(*SMALL, "collector.total_frames=320", "logger.interval=80", f"run_dir={run_dir}"))
    assert metrics["status"] == "completed" and metrics["frames"] == 320
    assert "total_frames: 320" in (run_dir / "config.yaml").read_text()


@pytest.mark.parametrize("override", ["+optim.lrr=0.1", "++optim.lrr=0.1", "+foo=1", "++loss.temperature=2"])
def test_plus_prefixed_typos_are_refused_in_recipes_and_sweeps(override, tmp_path):
    key = override.lstrip("+").split("=")[0]
    with pytest.raises(ValueError, match=rf"invalid config entry '{key}': not a key of the schema"):
        m_dqn.train(_cfg(*SMALL, override, f"run_dir={tmp_path / 'run'}"))
    assert not (tmp_path / "run").exists()
    try:
        with pytest.raises(SweepError, match=rf"invalid config entry '{key}': not a key of the schema"):
            plan_tasks(Recipe.from_path(REPO / "recipes" / "m_dqn.py"), [override, "seed=0,1"], tmp_path / "sweep")
    finally:  # the sweep imports the recipe as its own module, with its own schema class: put ours back
        register_schema("m_dqn", m_dqn.MDQNConfig)


@pytest.mark.parametrize(
    "recipe, overrides, message",
    [
        ("m_dqn", ["optim.eps=0"], r"optim.eps must be a finite number in \(0.0, inf\]"),
        ("m_dqn", ["loss.tau=1e-5"], r"loss.tau must be a finite number in \[0.0001, 10.0\], got loss.tau=1e-05"),
        ("m_dqn", ["loss.tau=11"], r"loss.tau must be a finite number in \[0.0001, 10.0\]"),
        ("m_dqn", ["buffer.size=8"], "buffer.size must be >= buffer.batch_size=16"),
        ("m_dqn", ["network.hidden=[]"], "network.hidden must list at least one layer"),
        ("m_dqn", ["loss=dqn", "loss.alpha=nan"], r"loss.alpha=nan is not used by loss.name='dqn' \(it reads \['gamma', 'loss_function'\]\)"),
        ("m_dqn", ["loss=al", "loss.tau=0.5"], "loss.tau=0.5 is not used by loss.name='al'"),
        ("m_dqn", ["seed=4294967296"], r"seed must be an integer in \[0, 4294967295\]"),
        # +-inf is a clip bound that clips nothing on its side (MunchausenIQNLoss accepts it); NaN is refused.
        ("m_iqn", ["loss.clip_value_max=nan"], r"loss.clip_value_max must be a number \(\+-inf: no clip on that side\), got loss.clip_value_max=nan"),
        ("m_iqn", ["loss=iqn", "loss.clip_value_max=inf"], "loss.clip_value_max=inf is not used by loss.name='iqn'"),
    ],
)
def test_validation_holes_are_refused_before_anything_is_written(recipe, overrides, message, tmp_path):
    module = {"m_dqn": m_dqn, "m_iqn": m_iqn}[recipe]
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        module.train(_cfg(*SMALL, *overrides, f"run_dir={run_dir}", recipe=recipe))
    assert not run_dir.exists()  # no config.yaml, no lock, no directory: the report sees no run


def test_total_frames_rounded_up_to_whole_batches_is_said_and_counted(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        metrics = m_dqn.train(_cfg(*SMALL, "collector.total_frames=250", f"run_dir={tmp_path}"))
    assert "collector.total_frames=250 is not a multiple of collector.frames_per_batch=40: the run collects 280" in caplog.text
    assert metrics["frames"] == 280 == json.loads((tmp_path / "metrics.json").read_text())["frames"]


#: recipe -> (overrides, message): a value for a loss key that the chosen loss (or setting) ignores.
IGNORED_KEYS = {
    "m_dqn": (["loss=pal", "loss.clip_value_min=-2"], "loss.clip_value_min=-2.0 is not used by loss.name='pal'"),
    "m_iqn": (["loss=iqn", "loss.tau=0.1"], "loss.tau=0.1 is not used by loss.name='iqn'"),
    "mirl-dqn": (["loss=dqn", "loss.beta=10"], r"loss.beta=10.0 is not used by loss.name='dqn' \(it reads \['gamma', 'loss_function'\]\)"),
    "mirl-sql": (["loss=sql", "loss.prior_lr=0.01"], "loss.prior_lr=0.01 is not used by loss.name='sql'"),
    "iq": (["loss=iq", "loss.clip_value_min=-1"], "loss.clip_value_min=-1.0 is not used by loss.alpha=0.0"),
    "sac": (["loss.target_update=hard", "loss.hard_update_interval=10", "loss.polyak=0.01"],
            "loss.polyak=0.01 is not used by loss.target_update='hard'"),
    "sql-proposal": (["loss.proposal=uniform", "loss.uniform_weight=0.3"], "loss.uniform_weight=0.3 is not used by loss.proposal='uniform'"),
    "sql-annealing": (["loss.tau_annealing_updates=100"], "loss.tau_annealing_updates=100 is not used by loss.tau_final=None"),
    "virel": (["loss=virel_em", "loss.temperature_estimator=batch", "loss.temperature_batch_size=128"],
              "loss.temperature_batch_size=128 is not used by loss.temperature_estimator='batch'"),
}


@pytest.mark.parametrize("case", list(IGNORED_KEYS))
def test_values_for_keys_the_chosen_loss_ignores_are_refused_in_every_recipe(case, tmp_path):
    """``loss=dqn loss.alpha=nan`` and its kin in every recipe with several losses
    or settings: refused naming the setting, before the run directory (config.yaml, lock) exists."""
    import importlib

    recipe = case.split("-")[0]
    module = importlib.import_module(f"recipes.{recipe}")
    overrides, message = IGNORED_KEYS[case]
    run_dir = tmp_path / "run"
    cfg = _cfg(*overrides, f"run_dir={run_dir}", recipe=recipe)
    with pytest.raises(ValueError, match=message):
        module.validate(cfg)  # what sweeps check before submitting
    with pytest.raises(ValueError, match=message):
        module.train(cfg)
    assert not run_dir.exists()
    # Without the ignored value (the last override) the same config is accepted.
    module.validate(_cfg(*overrides[:-1], recipe=recipe))


@pytest.mark.parametrize("recipe", TRAINING_RECIPES)
def test_a_misspelled_device_is_refused_by_every_training_recipes_validate(recipe):
    """``device=foo`` passed validation and sweep creation, then failed after the run directory was locked,
    leaving its run.lock; a device this machine lacks (``cuda`` on a login node) is still accepted there."""
    module = importlib.import_module(f"recipes.{recipe}")
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got device='foo'"):
        module.validate(_cfg("device=foo", recipe=recipe))
    module.validate(_cfg("device=cuda:1", recipe=recipe))


def test_a_device_refused_when_the_run_starts_leaves_no_lock(tmp_path):
    run_dir = tmp_path / "run"
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA: device=cuda must be refused when the run starts")
    with pytest.raises(ValueError, match="CUDA is not available"):
        m_dqn.train(_cfg(*SMALL, "device=cuda", f"run_dir={run_dir}"))
    assert not (run_dir / "run.lock").exists()


@pytest.mark.parametrize("recipe", TRAINING_RECIPES)
def test_every_loss_option_validates_with_every_env_preset(recipe):
    """No env option sets a key that a loss option of its recipe ignores (the check above would refuse the
    documented ``python recipes/mirl.py env=minatar loss=sql``): every (env, loss) pair of the recipe's own
    groups (recipes/conf/<recipe>/env/, loss/) composes and validates, except, in a recipe whose losses run on two
    loops (VIREL), a pair of one loop's env and the other's loss option, which does not compose."""
    from hydra.errors import ConfigCompositionException

    module = importlib.import_module(f"recipes.{recipe}")
    groups = config_sources(CONF, recipe).groups
    two_loops = len({family for family, _ in offered(recipe)}) > 1
    for env in groups["env"][1]:
        for loss in groups["loss"][1]:
            try:
                cfg = _cfg(f"env={env}", f"loss={loss}", recipe=recipe)
            except ConfigCompositionException:
                assert two_loops, (env, loss)  # e.g. loss=virel_em (Box only) with env=cartpole
                continue
            module.validate(cfg)


def test_compose_config_refuses_another_recipes_loss_option():
    # Each recipe has its own loss group, so Hydra does not find another recipe's option (or an old name) and
    # lists the recipe's own. Before, the recipes shared one loss group and these composed into a silently
    # different run (m_dqn loss=iq: M-DQN with alpha=0, Soft-DQN; iq loss=sac: the default M-IQ; sac
    # loss=virel: SAC; sql loss=m_iq: soft Q-learning; sql loss=soft_q, the name before the groups split).
    from hydra.errors import MissingConfigException

    every = sorted({path.stem for path in CONF.glob("*/loss/*.yaml")} | {"soft_q"})
    for recipe in TRAINING_RECIPES:
        importlib.import_module(f"recipes.{recipe}")  # registers its schema
        accepted = sorted(path.stem for path in (CONF / recipe / "loss").glob("*.yaml"))
        assert config_sources(CONF, recipe).groups["loss"][1] == tuple(accepted)
        option = next(option for option in every if option not in accepted)
        listing = "\n".join(["Available options in 'loss':", *(f"\t{own}" for own in accepted)])
        with pytest.raises(MissingConfigException, match=re.escape(f"Could not find 'loss/{option}'\n\n{listing}\n")):
            compose_config(CONF, recipe, [f"loss={option}"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_graph_option_is_refused_without_cuda_or_compile(tmp_path):
    # Refused by validate, before the run directory is written.
    with pytest.raises(ValueError, match=r"cuda_graph=true records CUDA graphs: it needs a CUDA device, got device='auto' \(cpu\)"):
        m_dqn.validate(_cfg("cuda_graph=true", f"run_dir={tmp_path / 'run'}"))
    with pytest.raises(ValueError, match="needs compile=true, got compile=false"):
        m_dqn.validate(_cfg("cuda_graph=true", "compile=false", "device=cpu"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("recipe", TRAINING_RECIPES)
def test_every_recipe_refuses_cuda_graph_for_each_loss_without_a_cuda_graph_update(recipe, monkeypatch, tmp_path):
    """Each loss a recipe registers (found from the registry, the overrides from its loss and env options):
    ``cuda_graph=true`` is refused by ``validate`` (what a sweep checks before submitting) and by ``train`` before
    the run directory exists when the loss's step reads a value on the host (``cuda_graph_unsupported``: no CUDA
    graph can record it), and accepted otherwise (the fused step, or the compiled generic step recorded whole)."""
    from torchrl_reg.loops import get_loss

    monkeypatch.setattr("torchrl_reg.configs.checks.select_device", lambda device: torch.device("cuda"))
    module = importlib.import_module(f"recipes.{recipe}")
    for (family, name), overrides in loss_cases(recipe).items():
        run_dir = tmp_path / f"{family}-{name}"
        cfg = _cfg(*overrides, "cuda_graph=true", "compile=true", f"run_dir={run_dir}", recipe=recipe)
        if not getattr(get_loss(name, family).loss_class, "cuda_graph_unsupported", None):
            assert module.validate(cfg).cuda_graph
            continue
        message = rf"loss.name='{name}' \(\w+\) cannot be recorded: .*host.*use compile=true without cuda_graph"
        with pytest.raises(ValueError, match=message):
            module.validate(cfg)
        with pytest.raises(ValueError, match=message):
            module.train(cfg)
        assert not run_dir.exists()


def test_the_losses_without_a_cuda_graph_update_are_soft_q_learning_and_virel():
    from torchrl_reg.loops import get_loss, registered_losses

    for recipe in TRAINING_RECIPES:
        importlib.import_module(f"recipes.{recipe}")
    no_graph = {
        (family, name)
        for family in ("value_based", "actor_critic")
        for name in registered_losses(family)
        if getattr(get_loss(name, family).loss_class, "cuda_graph_unsupported", None)
    }
    assert no_graph == {("actor_critic", "sql"), ("actor_critic", "virel"), ("value_based", "virel_discrete")}


def test_mirl_accepts_cuda_graph_for_its_dqn_baseline_as_make_update_does(monkeypatch, tmp_path):
    """``python recipes/mirl.py loss=dqn compile=true cuda_graph=true`` on a GPU: TorchRL's DQNLoss has no fused
    step, and its compiled generic step is recorded as a CUDA graph, so ``validate`` accepts what the update runs."""
    from torchrl.data import Categorical
    from torchrl.modules import QValueActor
    from torchrl.objectives import DQNLoss

    from torchrl_reg.objectives import CudaGraphUpdate

    monkeypatch.setattr("torchrl_reg.configs.checks.select_device", lambda device: torch.device("cuda"))
    mirl = importlib.import_module("recipes.mirl")
    assert mirl.validate(_cfg("loss=dqn", "compile=true", "cuda_graph=true", f"run_dir={tmp_path / 'run'}", recipe="mirl")).cuda_graph
    dqn = DQNLoss(QValueActor(torch.nn.Linear(4, 2), in_keys=["observation"], spec=Categorical(2)), action_space="categorical")
    # Off CUDA the update names the device, not the loss: on a GPU it records the step.
    assert "must be on a CUDA device" in CudaGraphUpdate.unsupported_reason(dqn, torch.optim.Adam(dqn.parameters()))
