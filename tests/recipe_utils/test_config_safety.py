"""Config safety (issue 26, items 2, 5 and 8): resumes that would train another config are refused
before the directory is touched, no override slips past the schema, and the validation holes."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from tests.recipes.test_m_dqn import SMALL

from recipes import m_dqn, m_iqn
from torchrl_reg.recipe_utils import compose_config, register_schema, request_stop_at
from torchrl_reg.recipe_utils.rundir import RESUMABLE_CHANGES, ResumeRefused, resume_changes
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
    assert resume_changes({"collector": {"total_frames": 10}}, {"collector": {"total_frames": 20}}) == []
    assert resume_changes({"logger": {"interval": 10, "backend": "csv"}}, {"logger": {"interval": 5, "backend": "none"}}) == []
    assert resume_changes({"a": float("nan")}, {"a": float("nan")}) == []
    assert resume_changes({"eval": {"episodes": 2}}, {"eval": {"episodes": 3}}) == ["eval.episodes: 2 -> 3"]
    assert resume_changes({}, {"loss": {"beta": 1}}) == ["loss.beta: '<absent>' -> 1"]
    assert set(RESUMABLE_CHANGES) == {"collector.total_frames", "logger.backend", "logger.project", "logger.interval",
                                      "logger.progress_bar", "checkpoint.interval", "run_dir"}
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
        ("m_iqn", ["loss.clip_value_max=inf"], r"loss.clip_value_max must be a finite number"),
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
