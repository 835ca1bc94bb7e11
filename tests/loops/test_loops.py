"""The training loops (torchrl_reg/loops): which update each preset builds, Atari replay
storage, MIRL's hooks."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.recipes.recipe_cases import TRAINING_RECIPES, loss_cases
from torchrl_reg.configs import compose_config, config_sources
from torchrl_reg.loops import actor_critic, get_loss, value_based
from torchrl_reg.objectives.update import FusedAdamUpdate
from torchrl_reg.run import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "recipes" / "conf"
#: Every training recipe -> its env presets (the options of recipes/conf/<recipe>/env).
ENVS = {name: config_sources(CONF, name).groups["env"][1] for name in TRAINING_RECIPES}
#: Recipe -> its value-based losses that a ``loss`` option selects (the option's override), as the recipe registers
#: them: each preset runs with each; a recipe without one runs its default loss (VIREL's discrete loss is picked by
#: the env).
VALUE_BASED = {
    name: losses
    for name in ENVS
    if (losses := {
        loss: overrides
        for (family, loss), overrides in loss_cases(name).items()
        if family == "value_based" and overrides[0].startswith("loss=")
    })
}
#: The recipes with an Atari env option (their presets store frames once: buffer.dedup_frames).
ATARI_RECIPES = [name for name in TRAINING_RECIPES if "atari" in ENVS[name]]
LOOPS = {"value_based": value_based, "actor_critic": actor_critic}


def _presets():
    for recipe, envs in ENVS.items():
        for env in envs:
            for loss in VALUE_BASED.get(recipe, {None: ()}):
                yield recipe, env, loss


class _Built(Exception):
    def __init__(self, update):
        self.update = update


@pytest.mark.parametrize("recipe, env, loss", list(_presets()))
def test_every_compiled_preset_builds_the_fused_update(recipe, env, loss, tmp_path, monkeypatch):
    """Compose each preset (every env option of every training recipe, with each value-based loss), run its loop
    up to the update it builds (no training), and check the type: every preset with ``compile=true`` runs the fused
    compiled step (FusedAdamUpdate) unless its loss is registered with ``fused_update=False`` (TorchRL's DQNLoss and
    SACLoss: compiled generic step); eager presets build the eager step."""
    module = importlib.import_module(f"recipes.{recipe}")
    preset = [f"env={env}", *(VALUE_BASED[recipe][loss] if loss else ())]
    family = OmegaConf.get_type(module.validate(compose_config(CONF, recipe, preset))).family
    overrides = [*preset, f"run_dir={tmp_path}", "collector.num_envs=1", "collector.frames_per_batch=4"]
    if family == "value_based":
        overrides += ["optim.frames_per_update=4", "optim.target_update_interval=4"]
    else:
        overrides += ["collector.frames_per_batch=1"]
    cfg = compose_config(CONF, recipe, overrides)
    loop = LOOPS[family]
    real = loop.make_update

    def capture(*args, **kwargs):
        raise _Built(real(*args, **kwargs))

    monkeypatch.setattr(loop, "make_update", capture)
    with pytest.raises(_Built) as built:
        module.train(cfg)
    update = built.value.update
    name = cfg.loss.name
    if cfg.compile and get_loss(name, family).fused_update:
        assert isinstance(update, FusedAdamUpdate), (recipe, env, name)
    elif cfg.compile:
        assert not isinstance(update, FusedAdamUpdate) and hasattr(update, "_torchdynamo_orig_callable"), (recipe, env, name)
    else:
        assert not isinstance(update, FusedAdamUpdate) and not hasattr(update, "_torchdynamo_orig_callable")


def test_the_compiled_presets_are_the_documented_ones():
    """``compile=true`` comes from the protocols docs/recipes.rst names (CartPole, Acrobot, MinAtar, MuJoCo), which
    every preset of the shared env sets inherits (a new recipe on ``envs/dqn`` compiles with M-DQN's presets, no list
    to extend), or from a recipe's own env option that says why in a comment (M-IQN's MinAtar preset); VIREL's
    presets (its temperature reads a value on every update) and soft Q-learning's are eager, as are the Atari,
    Pendulum and multi-goal presets: nothing compiles by a schema default."""
    compiled_protocols = {
        str(path.relative_to(CONF)) for path in (CONF / "protocol").rglob("*.yaml")
        if OmegaConf.load(path).get("compile") is True
    }
    documented = (ROOT / "docs" / "recipes.rst").read_text().split("With ``compile=true`` (the ", 1)[1].split(" protocols)")[0]
    assert {Path(path).stem for path in compiled_protocols} == {
        name.lower() for name in documented.replace(" and ", ", ").split(", ")
    }
    for recipe, envs in ENVS.items():
        for env in envs:
            cfg = compose_config(CONF, recipe, [f"env={env}"])
            source = config_sources(CONF, recipe, [f"env={env}"]).values.get("compile")
            assert not str(source).startswith("envs/"), f"{recipe} env={env}: an env set inherits its protocol's compile"
            if source is None:  # the schema default, eager
                assert not cfg.compile, (recipe, env)
            elif source not in compiled_protocols:  # a recipe's own file that sets it: it says why
                assert "compile" in "".join(
                    line for line in (CONF / source).read_text().splitlines() if line.lstrip().startswith("#")
                ).lower(), f"{source} sets compile={cfg.compile} without a comment saying why"
            else:
                assert cfg.compile, (recipe, env, source)


ATARI_TINY = [
    "env=atari", "env.name=Breakout", "compile=false", "collector.total_frames=48", "collector.num_envs=2",
    "collector.frames_per_batch=16", "optim.learning_starts=16", "optim.frames_per_update=4",
    "optim.target_update_interval=16", "buffer.size=200", "buffer.storage=tensor", "eval.episodes=0",
    "env.max_episode_steps=30", "logger.progress_bar=false",
]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ATARI_RECIPES)
def test_atari_replay_stores_each_frame_once(recipe, tmp_path):
    """``buffer.dedup_frames`` (on in the Atari presets) must reach the replay buffer in every value-based
    recipe: the checkpointed storage is a FrameStackStorage (rows + frames), not stacked observations.
    (recipes/mirl.py once built its own buffer without frame_stack, so MIRL stored every stack whole.)"""
    module = importlib.import_module(f"recipes.{recipe}")
    extra = ["loss.num_quantiles=8", "loss.num_target_quantiles=8", "loss.num_policy_quantiles=4"] if recipe == "m_iqn" else []
    cfg = compose_config(CONF, recipe, [*ATARI_TINY, *extra, f"run_dir={tmp_path}"])
    assert cfg.buffer.dedup_frames and cfg.env.frame_stack == 4
    metrics = module.train(cfg)
    storage = load_checkpoint(tmp_path / "checkpoint.pt")["replay_buffer"]["_storage"]
    assert set(storage) == {"rows", "frames", "meta"}
    if recipe == "mirl":  # Algorithm 1, line 8: one beta step per gradient step
        assert int(load_checkpoint(tmp_path / "checkpoint.pt")["loss_module"]["num_beta_updates"]) == metrics["updates"] > 0
