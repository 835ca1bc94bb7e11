"""docs/adding_a_method.rst's worked example runs as written: its loss (RegularizedDQNLossBase plus
``next_value_and_bonus``) gives the target worked out by hand, and with its recipe's registration it trains in the
value-based loop for a few updates."""
from __future__ import annotations

import math
import re
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict
from torch import nn
from torchrl.modules import QValueActor

from tests.recipes.recipe_cases import CONF, recipe
from tests.recipes.test_m_dqn import SMALL
from torchrl_reg.configs import compose_config, config_sources
from torchrl_reg.loops import get_loss, offered_losses
from torchrl_reg.loops.registry import _LOSSES, _OFFERED

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding_a_method.rst"
MODULE = "adding_a_method_example"
LOSS_MODULE = "torchrl_reg.objectives.boltzmann"  # where the recipe block imports the loss from


def _python_blocks(text: str) -> list[str]:
    """The literal blocks (after ``::``) of ``text`` that are Python: they start with an import."""
    blocks = re.findall(r"::\n\n((?:    .*\n|\n)+)", text)
    code = ["\n".join(line[4:] for line in block.splitlines()) for block in blocks]
    return [block for block in code if block.lstrip().startswith(("import ", "from "))]


@pytest.fixture(scope="module")
def example():
    """The doc's loss and recipe blocks run in one namespace (the recipe's last line, ``recipe_entry``, needs a
    recipe file and its config directory: the doc shows it, the test calls the loop the entry would)."""
    loss_block, recipe_block = _python_blocks(DOC.read_text())
    # the loss block is the file the recipe imports it from, the recipe block a module as the recipe file would be
    loss_file = sys.modules[LOSS_MODULE] = types.ModuleType(LOSS_MODULE)
    module = sys.modules[MODULE] = types.ModuleType(MODULE)
    try:
        exec(compile(loss_block, f"{DOC}:loss", "exec"), loss_file.__dict__)  # noqa: S102 -- the documented code
        exec(compile(recipe_block, f"{DOC}:recipe", "exec"), module.__dict__)  # noqa: S102
        yield {**loss_file.__dict__, **module.__dict__}
    finally:
        del sys.modules[MODULE], sys.modules[LOSS_MODULE]
        _LOSSES.pop(("value_based", "boltzmann_dqn"), None)
        _OFFERED.pop(MODULE, None)


def test_the_example_loss_regresses_on_the_boltzmann_expected_value(example):
    torch.manual_seed(0)
    loss_class = example["BoltzmannDQNLoss"]
    net = nn.Linear(3, 2)
    actor = QValueActor(net, in_keys=["observation"], spec=None, action_space="categorical")
    loss = loss_class(actor, tau=0.5, action_space="categorical", loss_function="l2")
    loss.make_value_estimator(gamma=0.9)
    obs, next_obs = torch.randn(4, 3), torch.randn(4, 3)
    action = torch.tensor([0, 1, 1, 0])
    reward, terminated = torch.randn(4, 1), torch.tensor([[False], [False], [True], [False]])
    batch = TensorDict({
        "observation": obs, "action": action,
        "next": {"observation": next_obs, "reward": reward, "done": terminated, "terminated": terminated},
    }, batch_size=[4])
    out = loss(batch)
    # By hand in float64: y = r + gamma (1 - terminated) sum_a' softmax(q'/tau)(a') q'(s', a'), q' the target
    # network (a copy of the online one before any update).
    w, b = net.weight.detach().double(), net.bias.detach().double()
    q, q_next = obs.double() @ w.T + b, next_obs.double() @ w.T + b
    next_value = (torch.softmax(q_next / 0.5, -1) * q_next).sum(-1)
    target = reward.double().squeeze(-1) + 0.9 * (~terminated.squeeze(-1)).double() * next_value
    pred = q.gather(-1, action.unsqueeze(-1)).squeeze(-1)
    assert math.isclose(out["loss"].item(), ((pred - target) ** 2).mean().item(), rel_tol=1e-5)
    assert math.isclose(out["td_error"].item(), ((pred - target) ** 2).mean().item(), rel_tol=1e-5)


def test_the_example_trains_in_the_value_based_loop(example, tmp_path):
    """Registered as the doc shows, the loss is an entry of the value-based family offered by its module; the
    value-based loop trains it for a few updates on CartPole (the m_dqn protocol's config, the loss swapped)."""
    entry = get_loss("boltzmann_dqn", "value_based")
    assert entry.loss_class is example["BoltzmannDQNLoss"] and entry.fused_update
    assert offered_losses(MODULE, "value_based") == ["boltzmann_dqn"]
    with pytest.raises(ValueError, match=r"loss.tau must be a finite number in \[0.0001, 10.0\], got loss.tau=0.0"):
        entry.check_config(compose_config(CONF, "m_dqn", ["loss.tau=0"]))  # the loss's checks, on the config
    from torchrl_reg.loops import value_based

    cfg = recipe("m_dqn").validate(compose_config(CONF, "m_dqn", [*SMALL, f"run_dir={tmp_path / 'run'}"]))
    cfg.loss.name = "boltzmann_dqn"
    metrics = value_based.train(cfg)
    assert metrics["status"] == "completed" and metrics["loss"] == "boltzmann_dqn" and metrics["updates"] > 0
    assert math.isfinite(metrics["final_eval_return"])


def test_the_example_primary_config_runs_on_the_dqn_env_set(example, tmp_path):
    """The doc's primary config, beside a copy of ``recipes/conf`` with its loss option, composes on the DQN env set
    it names: each env option the M-DQN recipe offers, with the same protocol and epsilon-greedy schedule, and the
    loss config's defaults; no env file of its own."""
    blocks = re.findall(r"::\n\n((?:    .*\n|\n)+)", DOC.read_text())
    primary = next("\n".join(line[4:] for line in b.splitlines()) for b in blocks if "boltzmann_dqn_schema" in b)
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "boltzmann_dqn" / "loss").mkdir(parents=True)
    (conf / "boltzmann_dqn" / "boltzmann_dqn.yaml").write_text(primary)
    (conf / "boltzmann_dqn" / "loss" / "boltzmann_dqn.yaml").write_text("name: boltzmann_dqn\n")
    envs = config_sources(conf, "boltzmann_dqn").groups["env"]
    assert envs == ("cartpole", ("acrobot", "atari", "cartpole", "minatar"))
    recipe("m_dqn")
    for env in envs[1]:
        cfg = compose_config(conf, "boltzmann_dqn", [f"env={env}"])
        m_dqn = compose_config(CONF, "m_dqn", [f"env={env}"])
        assert (cfg.env, cfg.collector, cfg.optim, cfg.exploration) == (m_dqn.env, m_dqn.collector, m_dqn.optim, m_dqn.exploration)
        assert (cfg.loss.name, cfg.loss.tau, cfg.loss.loss_function) == ("boltzmann_dqn", 0.1, m_dqn.loss.loss_function)


def test_the_recipe_block_imports_the_package_first_as_every_recipe_must():
    """The rule ``tests/slurm/test_sweep_entry_points.py`` holds every ``recipes/*.py`` to: the first import (after
    ``__future__``) is ``import torchrl_reg``; a recipe copied from the doc passes it."""
    import ast

    _, recipe_block = _python_blocks(DOC.read_text())
    imports = [n for n in ast.parse(recipe_block).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    first = next(n for n in imports if not (isinstance(n, ast.ImportFrom) and n.module == "__future__"))
    assert isinstance(first, ast.Import) and first.names[0].name == "torchrl_reg"
