"""TorchRL's own DQNTrainer, configured with TorchRL 0.14's Hydra dataclasses, runs our losses from the
configs of :mod:`torchrl_reg.trainer_configs` on CartPole: a few updates each."""
from __future__ import annotations

import copy

import pytest
import torch
from hydra.core.config_store import ConfigStore
from hydra.utils import instantiate
from omegaconf import MISSING

from torchrl_reg.objectives import MIRLLoss, MunchausenDQNLoss, MunchausenIQNLoss


@pytest.fixture(autouse=True)
def _restore_the_config_store():
    """Importing ``torchrl.trainers.algorithms.configs`` (here, inside the tests) registers TorchRL's groups
    (env, loss, logger, ...) in Hydra's global ConfigStore, where they shadow the recipes' own
    ``recipes/conf`` groups of the same names: the store is restored after each test, and nothing is
    imported at collection, so the recipe tests of the same process compose as before."""
    store = ConfigStore.instance()
    saved = copy.deepcopy(store.repo)
    yield
    store.repo = saved


FRAMES, FRAMES_PER_BATCH = 64, 16


def trainer_config(loss, value_network, hooks=None):
    from torchrl.trainers.algorithms.configs.collectors import CollectorConfig
    from torchrl.trainers.algorithms.configs.data import LazyTensorStorageConfig, TensorDictReplayBufferConfig
    from torchrl.trainers.algorithms.configs.envs_libs import GymEnvConfig
    from torchrl.trainers.algorithms.configs.objectives import HardUpdateConfig
    from torchrl.trainers.algorithms.configs.trainers import DQNTrainerConfig
    from torchrl.trainers.algorithms.configs.utils import AdamConfig

    env = GymEnvConfig(env_name="CartPole-v1", categorical_action_encoding=True)
    return DQNTrainerConfig(
        collector=CollectorConfig(create_env_fn=env, frames_per_batch=FRAMES_PER_BATCH, total_frames=FRAMES, _partial_=True),
        total_frames=FRAMES,
        optim_steps_per_batch=2,
        loss_module=loss,
        optimizer=AdamConfig(lr=1e-3, _partial_=True),
        logger=None,
        save_trainer_file=None,
        replay_buffer=TensorDictReplayBufferConfig(storage=LazyTensorStorageConfig(max_size=1000), batch_size=8),
        value_network=value_network,
        target_net_updater=HardUpdateConfig(loss_module=MISSING, value_network_update_interval=10),  # the trainer passes its loss
        progress_bar=False,
        enable_logging=False,  # no logger; TorchRL's reward logging needs a RewardSum transform on the env
        log_interval=FRAMES,
        seed=0,
        hooks=hooks,
        eps_init=1.0,
        eps_end=0.1,
        annealing_num_steps=FRAMES,
    )


def mlp_q():
    from torchrl.trainers.algorithms.configs.modules import MLPConfig, QValueModelConfig

    return QValueModelConfig(
        network=MLPConfig(in_features=4, out_features=2, num_cells=[16]), in_keys=["observation"], action_space="categorical",
        _partial_=True,
    )


def cases() -> dict:
    from torchrl_reg.trainer_configs import (
        IQNQValueModelConfig,
        MIRLLossConfig,
        MIRLUpdatesHookConfig,
        MunchausenDQNLossConfig,
        MunchausenIQNLossConfig,
    )

    return {
        "m_dqn": (lambda: MunchausenDQNLossConfig(gamma=0.99, _partial_=True), mlp_q, None, MunchausenDQNLoss),
        "m_iqn": (
            lambda: MunchausenIQNLossConfig(gamma=0.99, num_quantiles=4, num_target_quantiles=4, num_policy_quantiles=4, _partial_=True),
            lambda: IQNQValueModelConfig(num_cells=[16], embedding_dim=8, num_policy_quantiles=4, _partial_=True),
            None,
            MunchausenIQNLoss,
        ),
        "mirl": (lambda: MIRLLossConfig(gamma=0.99, num_actions=2, _partial_=True), mlp_q, lambda: [MIRLUpdatesHookConfig()], MIRLLoss),
    }


@pytest.mark.filterwarnings("error:MIRLLoss")  # the hook drives the prior and beta: no warning
@pytest.mark.parametrize("name", ["m_dqn", "m_iqn", "mirl"])
def test_torchrl_dqn_trainer_runs_our_loss(name):
    loss_cfg, network_cfg, hooks, loss_class = cases()[name]
    torch.manual_seed(0)
    trainer = instantiate(trainer_config(loss_cfg(), network_cfg(), hooks() if hooks else None))
    loss = trainer.loss_module
    assert isinstance(loss, loss_class) and loss.value_estimator.gamma == 0.99
    before = [p.detach().clone() for p in loss.value_network_params.values(True, True)]
    trainer.train()
    assert trainer.collected_frames == FRAMES
    after = list(loss.value_network_params.values(True, True))
    assert any(not torch.equal(a, b) for a, b in zip(before, after))  # the optimizer stepped
    assert all(torch.isfinite(p).all() for p in after)
    if name == "mirl":  # Algorithm 1's updates ran: the prior left uniform, beta moved (adaptive)
        assert not torch.allclose(loss.prior.rho, torch.full_like(loss.prior.rho, 0.5))
        assert int(loss.num_beta_updates) == (FRAMES // FRAMES_PER_BATCH) * 2


def test_configs_are_stored_beside_torchrl_s():
    from torchrl_reg.trainer_configs import register_configs

    register_configs()
    store = ConfigStore.instance()
    for group, name, target in (
        ("loss", "m_dqn", "torchrl_reg.trainer_configs.make_loss"),
        ("loss", "m_iqn", "torchrl_reg.trainer_configs.make_loss"),
        ("loss", "mirl", "torchrl_reg.trainer_configs.make_loss"),
        ("value_network", "iqn", "torchrl_reg.trainer_configs.make_iqn_qvalue_model"),
        ("hook", "mirl_updates", "torchrl_reg.trainer_configs.MIRLUpdates"),
    ):
        assert store.load(f"{group}/{name}.yaml").node["_target_"] == target
    # One source: the losses' own defaults (M-IQN's Munchausen term shares M-DQN's).
    for name, loss_class in (("m_dqn", MunchausenDQNLoss), ("m_iqn", MunchausenIQNLoss)):
        node = store.load(f"loss/{name}.yaml").node
        for key in ("alpha", "tau", "clip_value_min", "clip_value_max"):
            assert node[key] == loss_class.__init__.__kwdefaults__[key], (name, key)
