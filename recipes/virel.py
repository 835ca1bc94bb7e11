"""VIREL: a Boltzmann policy whose temperature is the critic's Bellman error, on Box and discrete actions.

    python recipes/virel.py                                   # Pendulum-v1, 20k steps, minutes on a CPU
    python recipes/virel.py env=hopper                        # the official MuJoCo settings
    python recipes/virel.py loss=virel_em                     # VIREL's E/M steps as written
    python recipes/virel.py loss.temperature_estimator=ema    # no separate temperature batch
    python recipes/virel.py env=cartpole                      # discrete VIREL, CleanRL's DQN schedule
    python recipes/virel.py env=minatar                       # discrete VIREL on MinAtar Breakout

Paper: Fellows, Mahajan, Rudner, Whiteson, "VIREL: A Variational Inference Framework for
Reinforcement Learning", NeurIPS 2019, arXiv 1811.01132: the Boltzmann policy
``pi_w(a|s) ∝ exp(Q_w(s, a) / eps_w)`` with ``eps_w = c/p ||T_w Q_w - Q_w||_p^p`` (Section 3).

Box actions (``env=pendulum|halfcheetah|hopper|walker2d|ant|humanoid``):
:class:`~torchrl_reg.objectives.VIRELLoss` (variants ``practical``, the official code, and ``em``;
equations in its docstring) on :func:`torchrl_reg.loops.actor_critic.train`. Settings:
``conf/virel/env/<env>.yaml``, on top of SAC's ``protocol/control/<family>.yaml``. Pendulum keeps the shared
Pendulum budget (20k steps, 2x64, batch 128) so that it compares with ``recipes/sac.py
env=pendulum``; the MuJoCo presets use the official code's settings (``protocol/virel/mujoco.yaml``: 300x300
networks, batch 128, Adam 3e-4, Polyak 1e-3, ``beta_scale`` 4e-3 from its README's Walker2d example, i.e.
``c = 0.008`` with ``p = 2``: its temperature is ``beta_scale * MSE``; and that command's reward scale 3,
``loss.reward_scale``: the critic and the temperature see ``3 r``, so the policy's temperature in raw
reward units is 3x that at scale 1), except that HalfCheetah takes SAC's sizes (2x256, batch 256, Polyak
5e-3): over 3 seeds at 100k they reach 1.05x SAC against 0.72x for the official sizes (its preset's comment;
RESULTS.md). On another env, try them with ``network.hidden=[256,256] buffer.batch_size=256 loss.polyak=0.005``.

Discrete actions (``env=cartpole|minatar``): :class:`~torchrl_reg.objectives.DiscreteVIRELLoss`
(``pi_w = softmax(Q/eps_w)`` exactly, the critic evaluates it) on
:func:`torchrl_reg.loops.value_based.train` with the DQN protocol of ``recipes/m_dqn.py``
(``protocol/dqn/<env>.yaml``: network, budget, replay, Adam, target copy) less its epsilon-greedy
schedule: :class:`BoltzmannTemperature` acts with ``softmax(Q/eps_w)`` of the online network at the
loss's current temperature, the only exploration (no ``exploration`` group: an epsilon cannot be set);
evaluation is greedy, the ``eps_w -> 0`` limit. The config schema follows the env preset
(``virel_schema: ${env}``), so a Box-only key (``loss.variant``, ``loss.polyak``) on a discrete
preset is refused when the config is composed.

The temperature, both families: :class:`ReplayTemperature` estimates ``eps = c/p mean|y - Q|^p`` on
a separate replay batch of ``loss.temperature_batch_size`` transitions before every update (the
official code: 4096), once the buffer holds that many; until then it stays at
``loss.initial_temperature`` (the official code's 1). ``loss.temperature_estimator=batch|ema``
estimates it on the training batch instead (no extra batch; cost in
``benchmarks/virel_estimator_cost.py``). It is logged as ``train/temperature``.
"""
from __future__ import annotations

import torchrl_reg  # noqa: F401  first: a recipe run imports nothing from the working directory

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.data import ReplayBuffer, TensorSpec
from torchrl.envs import EnvBase
from torchrl.modules import ProbabilisticActor, QValueActor

from torchrl_reg.configs import (
    ActorCriticConfig,
    ActorCriticLossConfig,
    BoltzmannValueBasedConfig,
    GaussianPolicyConfig,
    ValueBasedLossConfig,
    arguments_of,
    default_of,
)
from torchrl_reg.loops import RewardScale, ValueBasedHooks, actor_critic, recipe_entry, register_loss
from torchrl_reg.modules.exploration import BoltzmannExploration
from torchrl_reg.objectives import DiscreteVIRELLoss, VIRELLoss
from torchrl_reg.objectives.virel import TEMPERATURE_ESTIMATORS, VARIANTS
from torchrl_reg.validation import ReadOnlyIf, check_count, check_range

logger = logging.getLogger(__name__)

#: The env presets of each family; the schema is chosen by the preset (``virel_schema: ${env}``).
BOX_ENVS = ("pendulum", "halfcheetah", "hopper", "walker2d", "ant", "humanoid")
DISCRETE_ENVS = ("cartpole", "minatar")
#: The registered names (``loss.name``) of the Box loss (actor-critic) and of the discrete one (value-based).
BOX, DISCRETE = "virel", "virel_discrete"


@dataclass
class TemperatureConfig:
    """The temperature settings of both VIREL losses (their defaults, the same in both) plus
    ``temperature_batch_size``, the separate replay batch of the ``"replay"`` estimator (the official
    code's 4096)."""

    #: temperature scale: eps_w = c/p mean|y - Q|^p
    c: float = default_of(VIRELLoss, "c")
    #: power of the Bellman error in eps_w (1 or 2)
    p: int = default_of(VIRELLoss, "p")
    #: replay (separate batch), batch (training batch) or ema (average of batches)
    temperature_estimator: str = default_of(VIRELLoss, "temperature_estimator")
    #: transitions of the replay estimator's batch (the official code's 4096)
    temperature_batch_size: int = 4096
    #: rate of the ema estimator
    temperature_ema: float = default_of(VIRELLoss, "temperature_ema")
    #: eps_w until the first estimate
    initial_temperature: float = default_of(VIRELLoss, "initial_temperature")
    #: regression loss of the critic: l2, l1 or smooth_l1 (Huber)
    loss_function: str = default_of(VIRELLoss, "loss_function")

    choices: ClassVar[dict[str, tuple[str, ...]]] = {"temperature_estimator": TEMPERATURE_ESTIMATORS}
    # A setting the chosen estimator does not read is refused, never ignored.
    read_only_if: ClassVar[ReadOnlyIf] = {
        "temperature_batch_size": ("temperature_estimator", ("replay",)),
        "temperature_ema": ("temperature_estimator", ("ema",)),
    }


@dataclass
class VIRELLossConfig(ActorCriticLossConfig, TemperatureConfig):
    """:class:`VIRELLoss` settings (its defaults): the temperature, the variant, the number of critics."""

    name: str = BOX
    #: practical (the official code's TD critic) or em (the M-step as written)
    variant: str = default_of(VIRELLoss, "variant")
    #: critics (the min of two in the target and the actor)
    num_qvalue_nets: int = default_of(VIRELLoss, "num_qvalue_nets")
    # The temperature batch's rewards are scaled too (the logged returns stay raw). The Bellman error scales with
    # it, so the policy's temperature in raw reward units is reward_scale times the temperature at scale 1
    # (protocol/virel/mujoco.yaml: the official command's 3.0).
    #: multiplies the rewards the critic and the temperature see (official command: 3.0)
    reward_scale: float = 1.0

    choices: ClassVar[dict[str, tuple[Any, ...]]] = {"variant": VARIANTS, "num_qvalue_nets": (1, 2)}


@dataclass
class DiscreteVIRELLossConfig(ValueBasedLossConfig, TemperatureConfig):
    """:class:`DiscreteVIRELLoss` settings: the temperature (no actor, one Q-network)."""

    #: virel_discrete (the only discrete loss)
    name: str = DISCRETE


@dataclass
class VIRELConfig(ActorCriticConfig):
    loss: VIRELLossConfig = field(default_factory=VIRELLossConfig)
    policy: GaussianPolicyConfig = field(default_factory=GaussianPolicyConfig)


@dataclass
class DiscreteVIRELConfig(BoltzmannValueBasedConfig):
    loss: DiscreteVIRELLossConfig = field(default_factory=DiscreteVIRELLossConfig)


for _env in (*BOX_ENVS, *DISCRETE_ENVS):
    ConfigStore.instance().store(
        group="virel_schema", name=_env, node=DiscreteVIRELConfig if _env in DISCRETE_ENVS else VIRELConfig,
        package="_global_",
    )


def check_temperature_batch(cfg: DictConfig) -> None:
    """The replay estimator's batch (a count that fits in the replay buffer), the Box loss's reward scale, and a
    starting temperature > 0 (the losses accept 0, the hard-max limit; a run at 0 would act greedily and log an
    objective of -inf until the first estimate)."""
    loss = cfg.loss
    check_count("loss.temperature_batch_size", loss.temperature_batch_size)
    check_range("loss.initial_temperature", loss.initial_temperature, 0.0, low_inclusive=False)
    if "reward_scale" in loss:  # the Box loss's (its hooks scale the rewards)
        check_range("loss.reward_scale", loss.reward_scale, 0.0, low_inclusive=False)
    if loss.temperature_estimator == "replay" and loss.temperature_batch_size > cfg.buffer.size:
        raise ValueError(
            f"loss.temperature_batch_size={loss.temperature_batch_size} is larger than the replay buffer "
            f"(buffer.size={cfg.buffer.size}): the temperature batch must fit in the buffer"
        )


def from_config(cfg: DictConfig, env: EnvBase, device: torch.device) -> tuple[ProbabilisticActor, VIRELLoss]:
    """The tanh-Gaussian actor and :class:`VIRELLoss` over it and ``loss.num_qvalue_nets`` critics, gamma set."""
    actor, qvalue = actor_critic.actor_and_qvalue(cfg, env, device, scale_lb=cfg.policy.scale_lb)
    # check_finite: a NaN/inf observation or reward stops the run naming the key and index (one sync per update).
    loss = VIRELLoss(actor, qvalue, **arguments_of(VIRELLoss, cfg.loss), check_finite=True).to(device)
    loss.make_value_estimator(gamma=cfg.loss.gamma)
    return actor, loss


def discrete_from_config(cfg: DictConfig, actor: QValueActor) -> DiscreteVIRELLoss:
    """:class:`DiscreteVIRELLoss` over the loop's Q-network (target copy every ``optim.target_update_interval``
    frames), gamma set."""
    settings = arguments_of(DiscreteVIRELLoss, cfg.loss)  # the temperature settings
    loss = DiscreteVIRELLoss(actor, **settings, delay_value=True, action_space=actor.spec, check_finite=True)
    loss.make_value_estimator(gamma=cfg.loss.gamma)
    return loss


class ReplayTemperature(RewardScale):
    """The ``"replay"`` estimator (``batch_size`` transitions): before every update, the temperature on a
    separate uniform replay batch, once the buffer holds that many (NaN Bellman errors raise there, before
    the update and before any checkpoint). ``batch_size=None``: the loss estimates it in its forward
    (``"batch"``/``"ema"``). Either way ``metrics.json`` gets the ``final_temperature``. The rewards of
    the minibatch and of the temperature batch are multiplied by ``reward_scale`` (:class:`RewardScale`)."""

    def __init__(self, loss: VIRELLoss | DiscreteVIRELLoss, batch_size: int | None, reward_scale: float = 1.0):
        super().__init__(reward_scale)
        self.loss, self.batch_size, self.replay_buffer = loss, batch_size, None

    def attach(self, replay_buffer: ReplayBuffer) -> None:
        self.replay_buffer = replay_buffer

    def before_update(self, batch: TensorDictBase) -> None:
        self.scale(batch)
        if self.batch_size is None:
            return
        if len(self.replay_buffer) >= self.batch_size:
            self.loss.update_temperature(self.scale(self.replay_buffer.sample(self.batch_size)))
        else:
            self.loss.keep_temperature()  # the official code's initial temperature until the batch fits

    def final_metrics(self) -> dict[str, Any]:
        temperature = self.loss.temperature.item()
        if self.batch_size is not None and len(self.replay_buffer) < self.batch_size:
            # The buffer only grows: it never held a temperature batch, so no estimate was ever made.
            logger.warning(
                "the replay buffer holds %d transitions, fewer than loss.temperature_batch_size=%d: the "
                "temperature was never estimated and stayed at loss.initial_temperature=%g (run longer, lower "
                "loss.temperature_batch_size, or use loss.temperature_estimator=batch|ema)",
                len(self.replay_buffer), self.batch_size, temperature,
            )
        return {"final_temperature": temperature}

    def curve_scalars(self) -> dict[str, str]:
        # The temperature is VIREL's defining quantity: drawn beside the return, with the policy's entropy.
        return {"temperature": "temperature eps_w", "entropy": "policy entropy"}


class BoltzmannTemperature(ReplayTemperature, ValueBasedHooks):
    """Discrete VIREL on the value-based loop: the temperature as :class:`ReplayTemperature`, and the
    behaviour policy ``softmax(Q/eps_w)`` of the online Q-network at the loss's temperature, read at
    every step (:class:`BoltzmannExploration`), with no schedule of its own: the exploration of
    [VIREL] Section 3, nothing added. Evaluation keeps the loop's greedy argmax."""

    def exploration(self, action_spec: TensorSpec, cfg: DictConfig | None) -> TensorDictModuleBase:
        return BoltzmannExploration(action_spec, tau=lambda: self.loss.temperature)

    def anneal_exploration(self, exploration: TensorDictModuleBase, cfg: DictConfig | None, frames: int) -> dict[str, float]:
        return {}  # the temperature moves with the Bellman error; it is logged with the loss outputs


def _temperature_batch(cfg: DictConfig) -> int | None:
    return cfg.loss.temperature_batch_size if cfg.loss.temperature_estimator == "replay" else None


# Neither loss traces into one graph (the temperature buffer changes inside forward: fusable_update = False).
register_loss(
    BOX, VIRELLoss, from_config, family="actor_critic",
    hooks=lambda cfg, loss: ReplayTemperature(loss, _temperature_batch(cfg), cfg.loss.reward_scale),
    label=lambda cfg: f"virel_{cfg.loss.variant}", metrics=lambda cfg: {"temperature": cfg.loss.temperature_estimator},
    fused_update=False,
)
register_loss(
    DISCRETE, DiscreteVIRELLoss, discrete_from_config, family="value_based",
    hooks=lambda cfg, loss: BoltzmannTemperature(loss, _temperature_batch(cfg)), fused_update=False,
)


# Box configs run on the actor-critic loop, discrete ones on the value-based loop: their schemas' family (the
# schema is the one whose family has the config's loss.name; Box when the config names none).
validate, train, main = recipe_entry("virel", (VIRELConfig, DiscreteVIRELConfig), check_temperature_batch)

if __name__ == "__main__":
    main()
