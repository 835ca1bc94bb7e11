"""TorchRL's own trainers, configured with TorchRL 0.14's Hydra dataclasses, run our losses from the configs of
:mod:`torchrl_reg.trainer_configs`: its DQNTrainer the DQN family on CartPole, its SACTrainer the actor-critic losses
on Pendulum, a few updates each."""
from __future__ import annotations

import copy

import pytest
import torch
from hydra.core.config_store import ConfigStore
from hydra.utils import instantiate
from omegaconf import MISSING
from tensordict import TensorDict

from torchrl_reg.objectives import MDACLoss, SoftQLearningLoss


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


def dqn_case(name: str) -> tuple:
    """``(loss config, value network config, hooks)`` that run the DQN-family loss ``name`` of
    :data:`~torchrl_reg.trainer_configs.DQN_LOSS_CONFIGS` on CartPole: the MLP Q-network and no hook, unless the loss
    needs its own (M-IQN's quantile network, MIRL's prior size and its hook)."""
    from torchrl_reg.trainer_configs import DQN_LOSS_CONFIGS, IQNQValueModelConfig, MIRLUpdatesHookConfig

    network, hooks, extra = mlp_q, None, {}
    if name == "m_iqn":
        extra = {"num_quantiles": 4, "num_target_quantiles": 4, "num_policy_quantiles": 4}
        network = lambda: IQNQValueModelConfig(num_cells=[16], embedding_dim=8, num_policy_quantiles=4, _partial_=True)  # noqa: E731
    if name == "mirl":
        extra, hooks = {"num_actions": 2}, lambda: [MIRLUpdatesHookConfig()]
    return lambda: DQN_LOSS_CONFIGS[name](gamma=0.99, _partial_=True, **extra), network, hooks


def _config_names(group: str) -> list[str]:
    """The names of :mod:`torchrl_reg.trainer_configs`' loss configs of ``group`` (``DQN_LOSS_CONFIGS`` or
    ``ACTOR_CRITIC_LOSS_CONFIGS``), read without importing TorchRL's trainer configs at collection."""
    import ast
    from pathlib import Path

    source = (Path(__file__).resolve().parents[1] / "torchrl_reg" / "trainer_configs.py").read_text()
    tree = ast.parse(source)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}

    def name_of(cls: str) -> str:
        for node in classes[cls].body:
            if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "loss":
                return node.value.value
        raise AssertionError(f"{cls} has no loss name")

    (assign,) = [n for n in tree.body if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", None) == group]
    return [name_of(arg.id) for arg in assign.value.args]


DQN_NAMES = _config_names("DQN_LOSS_CONFIGS")
AC_NAMES = _config_names("ACTOR_CRITIC_LOSS_CONFIGS")


@pytest.mark.filterwarnings("error:MIRLLoss")  # the hook drives the prior and beta: no warning
@pytest.mark.parametrize("name", DQN_NAMES)
def test_torchrl_dqn_trainer_runs_our_loss(name):
    from torchrl_reg.trainer_configs import DQN_LOSS_CONFIGS

    loss_cfg, network_cfg, hooks = dqn_case(name)
    (loss_class,) = DQN_LOSS_CONFIGS[name].loss_classes
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


#: Constructor arguments a loss config leaves to its builder: tensors and specs built from the trainer's networks.
BUILT_BY_THE_BUILDER = {"mirl": {"prior"}, "sql": {"action_spec", "actor"}}


@pytest.mark.parametrize("name", DQN_NAMES + AC_NAMES)
def test_each_loss_config_sets_every_keyword_argument_of_its_loss(name):
    """A trainer config can reach every setting of the loss (an argument added to a loss and not to its config, as
    MDAC's per-term bounds once were, fails here), and each field's default is the loss's own."""
    import dataclasses

    from torchrl_reg.configs.schemas import constructor_arguments
    from torchrl_reg.trainer_configs import ACTOR_CRITIC_LOSS_CONFIGS, DQN_LOSS_CONFIGS

    config = {**DQN_LOSS_CONFIGS, **ACTOR_CRITIC_LOSS_CONFIGS}[name]
    losses = config.loss_classes
    assert losses, f"{config.__name__} names no loss class (loss_classes)"
    fields = {field.name: field.default for field in dataclasses.fields(config)}
    for loss in losses:
        for argument, parameter in constructor_arguments(loss).items():
            if parameter.kind is not parameter.KEYWORD_ONLY or argument in BUILT_BY_THE_BUILDER.get(name, ()):
                continue
            assert argument in fields, f"{config.__name__} has no field {argument!r} of {loss.__name__}"
            assert fields[argument] == parameter.default, (config.__name__, argument)


def test_configs_are_stored_beside_torchrl_s():
    from torchrl_reg.trainer_configs import register_configs

    register_configs()
    store = ConfigStore.instance()
    from torchrl_reg.trainer_configs import ACTOR_CRITIC_LOSS_CONFIGS, DQN_LOSS_CONFIGS

    for names, target in ((DQN_LOSS_CONFIGS, "make_loss"), (ACTOR_CRITIC_LOSS_CONFIGS, "make_actor_critic_loss")):
        for name, config in names.items():
            node = store.load(f"loss/{name}.yaml").node
            assert node["_target_"] == f"torchrl_reg.trainer_configs.{target}", name
            # One source: the losses' own defaults (M-IQN's Munchausen term shares M-DQN's).
            for loss_class in config.loss_classes:
                for key, value in loss_class.__init__.__kwdefaults__.items():
                    if key in node and not key.endswith("_key"):
                        assert node[key] == value, (name, key)
    for group, name, target in (
        ("value_network", "iqn", "torchrl_reg.trainer_configs.make_iqn_qvalue_model"),
        ("hook", "mirl_updates", "torchrl_reg.trainer_configs.MIRLUpdates"),
    ):
        assert store.load(f"{group}/{name}.yaml").node["_target_"] == target
    for group, name in (("actor_network", "tanh_normal"), ("actor_network", "svgd_sampler"),
                        ("critic_network", "state_action_value"), ("hook", "virel_temperature")):
        assert store.load(f"{group}/{name}.yaml").node["_target_"].startswith("torchrl_reg.trainer_configs.")


# -- SACTrainer: MDAC, VIREL, soft Q-learning on Pendulum (obs 3, one action in [-2, 2]) ------------------------------

AC_FRAMES, AC_FRAMES_PER_BATCH, AC_STEPS = 96, 32, 2


def sac_trainer_config(loss, actor, critic, hooks=None, updater=None, log_rewards=False):
    from torchrl.trainers.algorithms.configs.collectors import CollectorConfig
    from torchrl.trainers.algorithms.configs.data import LazyTensorStorageConfig, TensorDictReplayBufferConfig
    from torchrl.trainers.algorithms.configs.envs import TransformedEnvConfig
    from torchrl.trainers.algorithms.configs.envs_libs import GymEnvConfig
    from torchrl.trainers.algorithms.configs.objectives import SoftUpdateConfig
    from torchrl.trainers.algorithms.configs.trainers import SACTrainerConfig
    from torchrl.trainers.algorithms.configs.transforms import RewardSumConfig
    from torchrl.trainers.algorithms.configs.utils import AdamConfig

    env = GymEnvConfig(env_name="Pendulum-v1")
    if log_rewards:  # TorchRL's reward logging reads the trainer's episode_reward_key ("reward_sum"), which only a
        # RewardSum transform writes, and RewardSum's own default out key is "episode_reward": name it
        env = TransformedEnvConfig(base_env=env, transform=RewardSumConfig(in_keys=["reward"], out_keys=["reward_sum"]))
    return SACTrainerConfig(
        collector=CollectorConfig(create_env_fn=env, policy=actor(), frames_per_batch=AC_FRAMES_PER_BATCH,
                                  total_frames=AC_FRAMES, _partial_=True),
        total_frames=AC_FRAMES,
        optim_steps_per_batch=AC_STEPS,
        loss_module=loss,
        actor_network=actor(_partial_=True),  # the loss's actor; the collector's policy gets its weights after every update
        critic_network=critic(_partial_=True),
        optimizer=AdamConfig(lr=1e-3, _partial_=True),
        logger=None,
        save_trainer_file=None,
        replay_buffer=TensorDictReplayBufferConfig(storage=LazyTensorStorageConfig(max_size=1000), batch_size=16),
        target_net_updater=updater or SoftUpdateConfig(loss_module=MISSING, tau=0.5),  # the trainer passes its loss
        progress_bar=False,
        enable_logging=log_rewards,
        log_rewards=log_rewards,
        log_actions=False,
        log_interval=AC_FRAMES,
        seed=0,
        hooks=hooks,
    )


def ac_case(name: str) -> tuple:
    """``(loss config, actor config, critic config, hooks, loss class)`` that run the actor-critic loss ``name`` of
    :data:`~torchrl_reg.trainer_configs.ACTOR_CRITIC_LOSS_CONFIGS` on Pendulum: a tanh-Gaussian actor, a ``Q(s, a)``
    critic and no hook, unless the loss needs its own (VIREL's temperature hook, soft Q-learning's sampler)."""
    from torchrl_reg.trainer_configs import (
        ACTOR_CRITIC_LOSS_CONFIGS,
        StateActionValueConfig,
        SVGDSamplerConfig,
        TanhNormalPolicyConfig,
        VIRELTemperatureHookConfig,
    )

    box = {"observation_dim": 3, "action_dim": 1, "low": -2.0, "high": 2.0, "num_cells": [16]}
    actor = lambda **kw: TanhNormalPolicyConfig(**box, **kw)  # noqa: E731
    critic = lambda **kw: StateActionValueConfig(observation_dim=3, action_dim=1, num_cells=[16], **kw)  # noqa: E731
    hooks, extra, loss_class = None, {}, {"sql": SoftQLearningLoss}.get(name)
    if name == "virel":  # a temperature batch of 40 transitions: the hook keeps the initial temperature for the first batch
        hooks = lambda: [VIRELTemperatureHookConfig(batch_size=40)]  # noqa: E731
    if name == "sql":
        extra = {"num_value_particles": 4, "num_particles": 4}
        actor = lambda **kw: SVGDSamplerConfig(**box, **kw)  # noqa: E731
    config = ACTOR_CRITIC_LOSS_CONFIGS[name]
    if loss_class is None:
        (loss_class,) = config.loss_classes
    return lambda: config(gamma=0.99, _partial_=True, **extra), actor, critic, hooks, loss_class


@pytest.mark.filterwarnings("error:.*VIRELLoss")  # the hook drives the replay temperature: no warning
@pytest.mark.filterwarnings("error:Got conflicting batch_sizes")  # nor does its draw set off TorchRL's
@pytest.mark.filterwarnings("error:No target network updater")  # the trainer's SoftUpdate is attached
@pytest.mark.filterwarnings("ignore:SACTrainer is an experimental")
@pytest.mark.parametrize("name", AC_NAMES)
def test_torchrl_sac_trainer_runs_our_actor_critic_loss(name):
    loss_cfg, actor_cfg, critic_cfg, hooks, loss_class = ac_case(name)
    torch.manual_seed(0)
    trainer = instantiate(sac_trainer_config(loss_cfg(), actor_cfg, critic_cfg, hooks() if hooks else None))
    loss = trainer.loss_module
    assert isinstance(loss, loss_class) and loss.value_estimator.gamma == 0.99
    online = loss.qvalue_network_params
    before = online.clone()
    target_before = loss.target_qvalue_network_params.clone()
    actor_before = TensorDict.from_module(loss.actor_network).clone()
    trainer.train()
    assert trainer.collected_frames == AC_FRAMES
    # The optimizer stepped the critic and the actor, and the updater moved the target towards the critic.
    assert (online != before).any() and (TensorDict.from_module(loss.actor_network) != actor_before).any()
    assert (loss.target_qvalue_network_params != target_before).any()
    assert all(torch.isfinite(p).all() for p in online.values(True, True))
    # The collector acts with the loss's actor: its policy holds the trained weights.
    policy = TensorDict.from_module(trainer.collector.policy)
    torch.testing.assert_close(policy, TensorDict.from_module(loss.actor_network).data)
    if name == "virel":  # estimated on the 40-transition batches once the buffer held them
        assert loss.temperature.item() != 1.0 and torch.isfinite(loss.temperature)


def test_the_sac_trainer_logs_episode_returns_with_reward_sum_and_hard_updates_take_the_loss():
    # The two settings a first trainer script trips on (docs/losses.rst): log_rewards=True reads "reward_sum", which
    # only a RewardSum transform writes (out_keys=["reward_sum"]), and HardUpdateConfig needs loss_module=MISSING
    # (the trainer passes its loss).
    from torchrl.trainers.algorithms.configs.objectives import HardUpdateConfig

    loss_cfg, actor_cfg, critic_cfg, _, _ = ac_case("mdac")
    updater = HardUpdateConfig(loss_module=MISSING, value_network_update_interval=4)
    trainer = instantiate(sac_trainer_config(loss_cfg(), actor_cfg, critic_cfg, updater=updater, log_rewards=True))
    trainer.train()
    assert trainer.collected_frames == AC_FRAMES and "r_training" in trainer._log_dict


def test_the_virel_temperature_hook_draws_its_batch_from_the_trainers_buffer_without_a_warning():
    # The trainer's buffer samples minibatches of 16; the hook draws 40 transitions with the buffer's sampler. Every
    # stored transition is the same, so the temperature is the loss's estimate on 40 copies of it, whichever are drawn.
    import types
    import warnings

    from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer

    from torchrl_reg.trainer_configs import (
        VIRELTemperature,
        make_actor_critic_loss,
        make_state_action_value,
        make_tanh_normal_policy,
    )

    torch.manual_seed(0)
    actor = make_tanh_normal_policy(observation_dim=3, action_dim=1, low=-2.0, high=2.0, num_cells=[8])
    critic = make_state_action_value(observation_dim=3, action_dim=1, num_cells=[8])
    loss = make_actor_critic_loss(loss="virel", actor_network=actor, critic_network=critic, gamma=0.9)
    one = TensorDict({"observation": torch.randn(3), "action": torch.tensor([0.5]), "next": {
        "observation": torch.randn(3), "reward": torch.tensor([1.0]), "done": torch.tensor([False]),
        "terminated": torch.tensor([False])}}, [])
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(100), batch_size=16)
    buffer.extend(one.expand(60).clone())
    trainer = types.SimpleNamespace(loss_module=loss, replay_buffer=buffer, register_op=lambda *a: None,
                                    register_module=lambda *a: None)
    hook = VIRELTemperature(batch_size=40)
    hook.register(trainer)
    drawn = []
    estimate = loss.update_temperature
    loss.update_temperature = lambda batch: drawn.append(batch.shape) or estimate(batch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hook.update_temperature(buffer.sample())
        hook.update_temperature(buffer.sample())
    assert drawn == [torch.Size([40])] * 2
    expected = estimate(one.expand(40).clone())
    assert torch.isfinite(expected) and expected.item() != 1.0
    torch.testing.assert_close(loss.temperature, expected)


def test_make_actor_critic_loss_takes_the_critic_under_either_name_and_refuses_both():
    from torchrl_reg.trainer_configs import make_actor_critic_loss, make_state_action_value, make_tanh_normal_policy

    actor = make_tanh_normal_policy(observation_dim=3, action_dim=1, num_cells=[8])
    critic = make_state_action_value(observation_dim=3, action_dim=1, num_cells=[8])
    for name in ("critic_network", "qvalue_network"):
        loss = make_actor_critic_loss(loss="mdac", actor_network=actor, gamma=0.9, **{name: critic})
        assert isinstance(loss, MDACLoss) and loss.value_estimator.gamma == 0.9
    with pytest.raises(ValueError, match="both critic_network= and qvalue_network="):
        make_actor_critic_loss(loss="mdac", actor_network=actor, critic_network=critic, qvalue_network=critic)
    with pytest.raises(ValueError, match="needs an actor and a critic"):
        make_actor_critic_loss(loss="virel", actor_network=actor)

