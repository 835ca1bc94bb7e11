"""Our losses in TorchRL 0.14's trainer configs (``torchrl.trainers.algorithms.configs``).

TorchRL configures its trainers with Hydra dataclasses: a ``DQNTrainerConfig`` takes a ``loss_module``
node (a ``LossConfig`` whose ``_target_`` builds the loss around the trainer's ``value_network``), an env,
a collector, a replay buffer, an optimizer and a target updater, and ``hydra.utils.instantiate`` builds a
``DQNTrainer`` that takes any loss module. The configs below put M-DQN, M-IQN and MIRL in that system,
beside TorchRL's ``DQNLossConfig``, with the same conventions (``gamma`` for the value estimator, the
``*_key`` fields renamed with ``set_keys``, ``_partial_=True`` when the trainer supplies the network):

* :class:`MunchausenDQNLossConfig` -> :class:`~torchrl_reg.objectives.MunchausenDQNLoss`
* :class:`MunchausenIQNLossConfig` -> :class:`~torchrl_reg.objectives.MunchausenIQNLoss`, on the
  quantile Q-network of :class:`IQNQValueModelConfig`
* :class:`MIRLLossConfig` -> :class:`~torchrl_reg.objectives.MIRLLoss`, with :class:`MIRLUpdatesHookConfig`
  in the trainer's ``hooks`` (Algorithm 1's prior update on each collected batch and beta update after
  each loss: without them MIRL is SQL with a fixed prior, and the loss warns)

:func:`register_configs` stores them in Hydra's ConfigStore (groups ``loss``, ``value_network``,
``hook``). Every field's default is the loss's own (``default_of``). Importing this module imports
``torchrl.trainers.algorithms.configs``, which registers TorchRL's own groups (``env``, ``loss``,
``logger``, ...) in Hydra's global ConfigStore, where they shadow the recipes' ``recipes/conf`` groups of
the same names: use it in a TorchRL trainer script, not in a process that also composes our recipes. ``tests/test_trainer_configs.py``
runs TorchRL's ``DQNTrainer`` a few updates with each on CartPole.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from torchrl.data import Categorical, OneHot
from torchrl.modules import QValueActor
from torchrl.objectives.common import LossModule
from torchrl.trainers.algorithms.configs.common import _normalize_hydra_key
from torchrl.trainers.algorithms.configs.modules import ModelConfig
from torchrl.trainers.algorithms.configs.objectives import LossConfig
from torchrl.trainers.trainers import Trainer, TrainerHookBase

from torchrl_reg.configs.schemas import default_of
from torchrl_reg.modules.iqn import ImplicitQuantileNetwork
from torchrl_reg.objectives import IQNLoss, MIRLLoss, MunchausenDQNLoss, MunchausenIQNLoss
from torchrl_reg.validation import check_choice

__all__ = [
    "IQNQValueModelConfig",
    "MIRLLossConfig",
    "MIRLUpdates",
    "MIRLUpdatesHookConfig",
    "MunchausenDQNLossConfig",
    "MunchausenIQNLossConfig",
    "register_configs",
]

_LOSSES = {"m_dqn": MunchausenDQNLoss, "m_iqn": MunchausenIQNLoss, "mirl": MIRLLoss}
_KEYS = ("action_key", "action_value_key", "reward_key", "done_key", "terminated_key", "priority_key", "priority_weight_key")


def make_loss(*, loss: str, value_network: Any = None, gamma: float | None = None, **kwargs: Any) -> LossModule:
    """Build the loss named ``loss`` (``"m_dqn"``, ``"m_iqn"``, ``"mirl"``) as TorchRL's ``_make_dqn_loss``
    builds ``DQNLoss``: keys renamed with ``set_keys``, gamma given to the value estimator."""
    keys = {name.removesuffix("_key"): _normalize_hydra_key(kwargs.pop(name)) for name in _KEYS if kwargs.get(name) is not None}
    for name in _KEYS:
        kwargs.pop(name, None)
    if value_network is not None and not isinstance(value_network, QValueActor) and callable(value_network):
        value_network = value_network()  # a partial config node
    module = _LOSSES[loss](value_network, **kwargs)
    if keys:
        module.set_keys(**keys)
    if gamma is not None:
        module.make_value_estimator(gamma=gamma)
    return module


@dataclass
class _RegularizedDQNLossConfig(LossConfig):
    """The fields every loss of the family shares (TorchRL's ``DQNLossConfig``'s, less ``double_dqn``)."""

    value_network: Any = None
    gamma: float | None = None
    action_space: Any = None
    reduction: str | None = None
    use_prioritized_weights: Any = "auto"
    check_finite: bool = False
    action_key: Any = None
    action_value_key: Any = None
    reward_key: Any = None
    done_key: Any = None
    terminated_key: Any = None
    priority_key: Any = None
    priority_weight_key: Any = None
    _target_: str = "torchrl_reg.trainer_configs.make_loss"

    def __post_init__(self) -> None:
        super().__post_init__()


@dataclass
class _MunchausenConfig(_RegularizedDQNLossConfig):
    """The Munchausen term's settings (Vieillard et al., NeurIPS 2020, arXiv 2007.14430, Eq. 2), the same
    defaults in M-DQN and M-IQN (``tests/test_trainer_configs.py`` checks both)."""

    alpha: float = default_of(MunchausenDQNLoss, "alpha")
    tau: float = default_of(MunchausenDQNLoss, "tau")
    clip_value_min: float = default_of(MunchausenDQNLoss, "clip_value_min")
    clip_value_max: float = default_of(MunchausenDQNLoss, "clip_value_max")


@dataclass
class MunchausenDQNLossConfig(_MunchausenConfig):
    """:class:`~torchrl_reg.objectives.MunchausenDQNLoss`."""

    loss: str = "m_dqn"
    loss_function: str = default_of(MunchausenDQNLoss, "loss_function")
    delay_value: bool = default_of(MunchausenDQNLoss, "delay_value")


@dataclass
class MunchausenIQNLossConfig(_MunchausenConfig):
    """:class:`~torchrl_reg.objectives.MunchausenIQNLoss` on an
    :class:`~torchrl_reg.modules.iqn.ImplicitQuantileNetwork` (:class:`IQNQValueModelConfig`)."""

    loss: str = "m_iqn"
    num_quantiles: int = default_of(IQNLoss, "num_quantiles")
    num_target_quantiles: int = default_of(IQNLoss, "num_target_quantiles")
    num_policy_quantiles: int = default_of(IQNLoss, "num_policy_quantiles")
    kappa: float = default_of(IQNLoss, "kappa")
    delay_value: bool = default_of(IQNLoss, "delay_value")


@dataclass
class MIRLLossConfig(_RegularizedDQNLossConfig):
    """:class:`~torchrl_reg.objectives.MIRLLoss` (Grau-Moya, Leibfried, Vrancx, ICLR 2019, arXiv 1809.01554);
    put :class:`MIRLUpdatesHookConfig` in the trainer's ``hooks``."""

    loss: str = "mirl"
    #: the prior's size, needed when the value network has no action spec (TorchRL's QValueModelConfig has none)
    num_actions: int | None = None
    beta: float = default_of(MIRLLoss, "beta")
    beta_schedule: str = default_of(MIRLLoss, "beta_schedule")
    beta_lr: float = default_of(MIRLLoss, "beta_lr")
    beta_slope: float = default_of(MIRLLoss, "beta_slope")
    beta_min: float = default_of(MIRLLoss, "beta_min")
    beta_max: float = default_of(MIRLLoss, "beta_max")
    learn_prior: bool = default_of(MIRLLoss, "learn_prior")
    prior_lr: float = default_of(MIRLLoss, "prior_lr")
    prior_in_backup: bool = default_of(MIRLLoss, "prior_in_backup")
    loss_function: str = default_of(MIRLLoss, "loss_function")
    delay_value: bool = default_of(MIRLLoss, "delay_value")


def make_iqn_qvalue_model(
    *, in_features: int, num_actions: int, num_cells: list[int], embedding_dim: int, num_policy_quantiles: int,
    action_space: str = "categorical", in_keys: Any = None, out_keys: Any = None, shared: bool = False,
) -> QValueActor:
    """A :class:`~torchrl.modules.QValueActor` on :meth:`ImplicitQuantileNetwork.mlp` (vector observations,
    ``in_keys`` default ``["observation"]``); ``out_keys`` are the actor's own (ignored, as TorchRL's
    ``QValueModelConfig`` ignores them)."""
    network = ImplicitQuantileNetwork.mlp(
        in_features, num_actions, num_cells=tuple(num_cells), embedding_dim=embedding_dim,
        num_policy_quantiles=num_policy_quantiles,
    )
    in_keys = ["observation"] if in_keys is None else [_normalize_hydra_key(key) for key in in_keys]
    check_choice("action_space", action_space, ("categorical", "one-hot"))
    spec = Categorical(num_actions) if action_space == "categorical" else OneHot(num_actions)
    actor = QValueActor(network, in_keys=in_keys, spec=spec)  # the trainer reads its exploration spec here
    return actor.share_memory() if shared else actor


@dataclass
class IQNQValueModelConfig(ModelConfig):
    """The quantile Q-network M-IQN trains, as TorchRL's ``QValueModelConfig`` builds an MLP one."""

    in_features: int = 4
    num_actions: int = 2
    num_cells: Any = (128, 128)
    embedding_dim: int = 64
    num_policy_quantiles: int = 32
    action_space: str = "categorical"
    _target_: str = "torchrl_reg.trainer_configs.make_iqn_qvalue_model"

    def __post_init__(self) -> None:
        super().__post_init__()


class MIRLUpdates(TrainerHookBase):
    """MIRL's Algorithm 1 in TorchRL's trainer: the prior update (line 5) on each collected batch
    (``batch_process``) and the beta update (line 8) after each loss (``post_loss``), from the per-sample
    squared TD errors the loss wrote in place as priorities (their mean is the loss output's ``td_error``)."""

    def __init__(self) -> None:
        self.loss: MIRLLoss | None = None

    def register(self, trainer: Trainer, name: str = "mirl_updates") -> None:
        if not isinstance(trainer.loss_module, MIRLLoss):
            raise TypeError(f"MIRLUpdates drives a MIRLLoss, the trainer's loss is a {type(trainer.loss_module).__name__}")
        self.loss = trainer.loss_module
        trainer.register_op("batch_process", self.update_prior)
        trainer.register_op("post_loss", self.update_beta)
        trainer.register_module(name, self)

    def update_prior(self, batch: Any) -> None:
        self.loss.update_prior(batch)

    def update_beta(self, batch: Any) -> None:
        self.loss.update_beta(batch.get(self.loss.tensor_keys.priority))

    def state_dict(self) -> dict[str, Any]:
        return {}  # the prior and beta are buffers of the loss, saved with it

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass


@dataclass
class MIRLUpdatesHookConfig:
    """:class:`MIRLUpdates` as a trainer ``hooks`` entry."""

    _target_: str = "torchrl_reg.trainer_configs.MIRLUpdates"


def register_configs() -> None:
    """Store the configs in Hydra's ConfigStore beside TorchRL's (call after importing
    ``torchrl.trainers.algorithms.configs``, which registers TorchRL's own)."""
    store = ConfigStore.instance()
    store.store(group="loss", name="m_dqn", node=MunchausenDQNLossConfig)
    store.store(group="loss", name="m_iqn", node=MunchausenIQNLossConfig)
    store.store(group="loss", name="mirl", node=MIRLLossConfig)
    store.store(group="value_network", name="iqn", node=IQNQValueModelConfig)
    store.store(group="hook", name="mirl_updates", node=MIRLUpdatesHookConfig)
