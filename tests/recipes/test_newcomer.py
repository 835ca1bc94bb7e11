"""Recipes for a newcomer: the README example (M-DQN on a gymnasium id with no preset of its
own), the preset settings it inherits (apart from the command line's) and the run summary written to
``<run_dir>/<recipe>.log``; no preset warns about its own settings."""
from __future__ import annotations

import importlib
import json
import logging
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.recipes.recipe_cases import CONF, TRAINING_RECIPES
from tests.recipes.test_m_dqn import SMALL
from torchrl_reg.configs import compose_config, config_sources
from torchrl_reg.run.metrics import summary_line

ROOT = Path(__file__).resolve().parents[2]
# test_m_dqn's few-hundred-frame budget, one short evaluation episode.
TINY = [*SMALL, "eval.episodes=1"]


def test_summary_says_no_finished_episode_instead_of_nan():
    metrics = {"status": "completed", "frames": 240, "wall_time_s": 1.0, "steps_per_s": 240.0, "final_eval_return": math.nan,
               "train_return_mean": math.nan, "episodes": 0, "run_dir": "runs/x"}
    line = summary_line(metrics)
    assert "no finished training episode" in line and "nan" not in line and "evaluation" not in line
    # A run's two returns, each named for what it is: the last greedy evaluation, the training episodes' running mean.
    both = summary_line({**metrics, "final_eval_return": -134.2, "train_return_mean": -1149.9, "episodes": 3})
    assert "final greedy evaluation -134.2, training return -1149.9 (mean of the last 3 episodes)" in both
    # A metrics.json written before these names (final_return, no final_eval_return) prints the same.
    old = {k: v for k, v in metrics.items() if k not in ("final_eval_return", "train_return_mean")}
    assert summary_line({**old, "final_return": -1149.9, "eval_returns": [-134.2], "episodes": 3}) == both
    # a planning run counts moves, and has no collector to raise
    planning = summary_line({**metrics, "moves": 240})
    assert "240 moves" in planning and "frames" not in planning and "collector" not in planning
    assert "mean return 0.5 over 4 episodes" in summary_line({**metrics, "moves": 40, "episodes": 4, "mean_return": 0.5})


def documented_metrics_fields() -> set[str]:
    """The fields docs/recipes.rst lists in its metrics.json section."""
    section = (ROOT / "docs" / "recipes.rst").read_text().split("What a run writes: ``metrics.json``")[1]
    return set(re.findall(r"``([a-z_]+)``", section))


def test_docs_list_every_metrics_json_field_of_the_recorded_runs():
    # Every recipe on every preset family (tests/recipes/recorded_metrics.json, whose runs drop the timings) and the
    # timings; the planning run's fields are checked in tests/loops/test_planning.py.
    recorded = json.loads((ROOT / "tests" / "recipes" / "recorded_metrics.json").read_text())["cases"]
    fields = {key for case in recorded.values() for key in case["metrics"]}
    fields |= {"wall_time_s", "steps_per_s", "updates_per_s", "run_dir", "resumable", "temperature", "final_temperature",
               "final_tau"}
    assert not fields - documented_metrics_fields(), sorted(fields - documented_metrics_fields())
    assert "final_return" in documented_metrics_fields()  # the earlier name, for old run directories


@pytest.mark.slow
def test_readme_example_m_dqn_on_a_gymnasium_id_without_preset(tmp_path):
    # The README's command, with a tiny budget: MountainCar-v0 has no preset, CartPole's applies. run_dir= takes the
    # whole run, Hydra's log included: nothing lands in the working directory.
    run_dir, cwd = tmp_path / "run", tmp_path / "cwd"
    cwd.mkdir()
    cmd = [sys.executable, str(ROOT / "recipes" / "m_dqn.py"), "env.name=MountainCar-v0", *TINY, f"run_dir={run_dir}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not any(cwd.iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["env"] == "MountainCar-v0" and metrics["frames"] == 240
    first, *rest = (run_dir / "m_dqn.log").read_text().splitlines()
    # The preset's values apart from the command line's: TINY sets every key of the line but the learning rate,
    # CartPole's 2.5e-4 (recipes/conf/protocol/dqn/cartpole.yaml).
    assert first.endswith(
        "env.name=MountainCar-v0 (family classic) runs with these preset settings: optim.lr=0.00025 (MountainCar-v0 "
        "has no preset of its own: it inherits the env preset made for CartPole-v1; override any on the command line), "
        "and these from the command line: collector.num_envs=4, collector.frames_per_batch=40, "
        "collector.total_frames=240, buffer.size=500, buffer.batch_size=16, optim.learning_starts=80, "
        "eval.interval=120, eval.max_steps=50"), first
    log = "\n".join(rest)
    # MountainCar never ends within 240 frames: the summary says so instead of 'final return nan'.
    assert "completed: 240 frames" in log and "no finished training episode" in log


@pytest.mark.parametrize("recipe", TRAINING_RECIPES)
def test_no_preset_warns_about_its_own_frame_budget(recipe):
    # TorchRL collects whole batches: a total_frames that is not a multiple of frames_per_batch makes
    # both RecipeRun and TorchRL's collector warn, on the default run (README command 1) too.
    module = importlib.import_module(f"recipes.{recipe}")
    for env in config_sources(CONF, recipe).groups["env"][1]:
        collector = module.validate(compose_config(CONF, recipe, [f"env={env}"])).collector
        assert collector.total_frames % collector.frames_per_batch == 0, (recipe, env, collector.total_frames, collector.frames_per_batch)


def test_the_preset_line_says_whether_the_id_has_its_own_preset():
    from omegaconf import OmegaConf

    from torchrl_reg.run.recipe_run import preset_line

    cfg = OmegaConf.create({"env": {"name": "CartPole-v1", "family": "classic"}, "seed": 0})
    own = preset_line(cfg, "CartPole-v1")
    assert "(the env preset made for CartPole-v1; override" in own and "inherit" not in own
    other = preset_line(OmegaConf.merge(cfg, {"env": {"name": "MountainCar-v0"}}), "CartPole-v1")
    assert "MountainCar-v0 has no preset of its own: it inherits the env preset made for CartPole-v1" in other
    assert "without a preset of its own inherits" in preset_line(cfg)  # outside the command line: both cases
    # the keys the command line set are told apart; every one of them set there: no preset value to list
    cfg = OmegaConf.merge(cfg, {"optim": {"lr": 0.001}, "buffer": {"size": 500}})
    assert preset_line(cfg, "CartPole-v1", {"optim.lr"}) == (
        "env.name=CartPole-v1 (family classic) runs with these preset settings: buffer.size=500 (the env preset made "
        "for CartPole-v1; override any on the command line), and these from the command line: optim.lr=0.001")
    assert preset_line(cfg, "CartPole-v1", {"optim.lr", "buffer.size"}) == (
        "env.name=CartPole-v1 (family classic) runs with these settings from the command line: buffer.size=500, "
        "optim.lr=0.001 (the env preset made for CartPole-v1)")


def test_the_first_update_of_a_compiled_run_says_that_it_compiles(caplog):
    # The progress bar stands still while torch.compile builds the first update: the log says why, once per process,
    # at the first batch that owes updates (none before optim.learning_starts), and only when the run compiles.
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from torchrl_reg.run.recipe_run import COMPILING, RecipeRun

    def run(compile: bool) -> SimpleNamespace:
        cfg = OmegaConf.create({"compile": compile, "optim": {"learning_starts": 80, "frames_per_update": 4}})
        return SimpleNamespace(cfg=cfg, frames=40, updates=0, announced_compile=False, pbar=None, compiled=compile)

    compiled, eager = run(True), run(False)
    with caplog.at_level(logging.INFO, logger="torchrl_reg.recipes"):
        assert RecipeRun.updates_due(compiled) == 0 and COMPILING not in caplog.text  # before learning_starts
        compiled.frames = eager.frames = 120
        assert RecipeRun.updates_due(compiled) == RecipeRun.updates_due(eager) == 10  # (120 - 80) / 4
        compiled.updates, compiled.frames = 10, 160
        assert RecipeRun.updates_due(compiled) == 10
    assert caplog.text.count(COMPILING) == 1 and "compiling" in COMPILING


def test_an_update_run_eagerly_on_a_cpu_does_not_say_that_it_compiles(caplog, tmp_path):
    # compile=true with loss=dqn (no fused update) runs the update eagerly on a CPU: the log says that, and not that the
    # first update compiles.
    import torch

    from torchrl_reg.loops.value_based import compiles
    from torchrl_reg.run.recipe_run import COMPILING
    from torchrl_reg.sweep.spec import Recipe

    module = Recipe.from_path(ROOT / "recipes" / "m_dqn.py").module()
    cfg = module.validate(compose_config(CONF, "m_dqn", ["loss=dqn", "compile=true"]))
    with caplog.at_level(logging.INFO, logger="torchrl_reg.recipes"):
        assert compiles(cfg, False, torch.device("cpu")) is False
        assert compiles(cfg, True, torch.device("cpu")) is True
    assert "runs eagerly on the CPU" in caplog.text
    tiny = ["env=cartpole", "loss=dqn", "compile=true", "collector.total_frames=80", "collector.num_envs=2",
            "collector.frames_per_batch=40", "optim.learning_starts=40", "buffer.size=100", "buffer.batch_size=8",
            "buffer.storage=tensor", "eval.interval=0", "eval.episodes=1", "eval.max_steps=5", "checkpoint.interval=0",
            "logger.progress_bar=false", f"run_dir={tmp_path / 'run'}"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="torchrl_reg.recipes"):
        assert module.train(compose_config(CONF, "m_dqn", tiny))["status"] == "completed"
    assert "runs eagerly on the CPU" in caplog.text and COMPILING not in caplog.text


def test_a_run_silences_two_notices_of_other_libraries_and_nothing_else():
    # torch's "No CUDA runtime is found" (printed when torch.compile first builds a CPU kernel on a machine with a
    # CUDA toolkit and no GPU) and the FutureWarning of tensordict's check under torch.compile; what each says
    # otherwise still shows.
    from tensordict.utils import _check_inbuild

    from torchrl_reg.run.process import quiet_third_party_notices

    cpp_extension = logging.getLogger("torch.utils.cpp_extension")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    filters = list(cpp_extension.filters)
    cpp_extension.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:  # the filters are restored on leaving
            warnings.simplefilter("always")
            _check_inbuild()
            if not any(issubclass(w.category, FutureWarning) for w in caught):
                pytest.skip("tensordict's check no longer warns under this torch: nothing to silence")
            quiet_third_party_notices()
            caught.clear()
            _check_inbuild()
            warnings.warn("another FutureWarning", FutureWarning)
            assert [str(w.message) for w in caught] == ["another FutureWarning"]
        cpp_extension.warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local")
        cpp_extension.warning("another notice")
        assert seen == ["another notice"]
    finally:
        cpp_extension.removeHandler(handler)
        cpp_extension.filters[:] = filters
