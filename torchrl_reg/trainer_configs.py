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

and the actor-critic losses in TorchRL's ``SACTrainerConfig``, whose trainer builds its loss as
``loss_module(actor_network=, critic_network=)`` from its own ``actor_network`` and ``critic_network`` nodes
(:class:`TanhNormalPolicyConfig`, :class:`SVGDSamplerConfig`, :class:`StateActionValueConfig`; the collector's
``policy`` is another instance of the actor's config, whose weights the trainer copies from the loss's after every
update):

* :class:`MDACLossConfig` -> :class:`~torchrl_reg.objectives.MDACLoss`
* :class:`VIRELLossConfig` -> :class:`~torchrl_reg.objectives.VIRELLoss`, with :class:`VIRELTemperatureHookConfig`
  in the trainer's ``hooks`` (the ``"replay"`` temperature on a separate replay batch before every update: without
  it the temperature stays at its initial value, and the loss warns)
* :class:`SoftQLearningLossConfig` -> :class:`~torchrl_reg.objectives.SoftQLearningLoss` (``SoftQLoss`` and
  ``SVGDPolicyLoss`` on one critic) over an amortized SVGD sampler

:func:`register_configs` stores them in Hydra's ConfigStore (groups ``loss``, ``value_network``, ``actor_network``,
``critic_network``, ``hook``). Every field's default is the loss's own (``default_of``). Importing this module imports
``torchrl.trainers.algorithms.configs``, which registers TorchRL's own groups (``env``, ``loss``,
``logger``, ...) in Hydra's global ConfigStore, where they shadow the recipes' ``recipes/conf`` groups of
the same names: use it in a TorchRL trainer script, not in a process that also composes our recipes. ``tests/test_trainer_configs.py``
runs TorchRL's ``DQNTrainer`` a few updates with each DQN-family loss on CartPole and its ``SACTrainer`` with each
actor-critic loss on Pendulum; docs/losses.rst has a complete script for each trainer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from hydra.core.config_store import ConfigStore
from torchrl.data import Bounded, Categorical, OneHot, TensorSpec
from torchrl.modules import QValueActor
from torchrl.objectives.common import LossModule
from torchrl.trainers.algorithms.configs.common import _normalize_hydra_key
from torchrl.trainers.algorithms.configs.modules import ModelConfig
from torchrl.trainers.algorithms.configs.objectives import LossConfig
from torchrl.trainers.trainers import Trainer, TrainerHookBase

from torchrl_reg.configs.schemas import default_of
from torchrl_reg.modules.critics import state_action_value_network
from torchrl_reg.modules.iqn import ImplicitQuantileNetwork
from torchrl_reg.modules.policies import tanh_normal_policy
from torchrl_reg.modules.soft_q import svgd_sampler_actor
from torchrl_reg.objectives import (
    IQNLoss,
    MDACLoss,
    MIRLLoss,
    MunchausenDQNLoss,
    MunchausenIQNLoss,
    SoftQLearningLoss,
    SoftQLoss,
    SVGDPolicyLoss,
    VIRELLoss,
)
from torchrl_reg.validation import check_choice, check_count, constructor_arguments

__all__ = [
    "IQNQValueModelConfig",
    "MDACLossConfig",
    "MIRLLossConfig",
    "MIRLUpdates",
    "MIRLUpdatesHookConfig",
    "MunchausenDQNLossConfig",
    "MunchausenIQNLossConfig",
    "SVGDSamplerConfig",
    "SoftQLearningLossConfig",
    "StateActionValueConfig",
    "TanhNormalPolicyConfig",
    "VIRELLossConfig",
    "VIRELTemperature",
    "VIRELTemperatureHookConfig",
    "register_configs",
    "DQN_LOSS_CONFIGS",
    "ACTOR_CRITIC_LOSS_CONFIGS",
]

_KEYS = ("action_key", "action_value_key", "reward_key", "done_key", "terminated_key", "priority_key", "priority_weight_key")


def _finish(module: LossModule, keys: dict[str, Any], gamma: float | None) -> LossModule:
    """Rename the loss's keys with ``set_keys`` and give gamma to its value estimator, as TorchRL's builders do."""
    if keys:
        module.set_keys(**keys)
    if gamma is not None:
        module.make_value_estimator(gamma=gamma)
    return module


def _pop_keys(kwargs: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The ``*_key`` entries of ``kwargs`` that are set, as ``set_keys`` arguments; all of them leave ``kwargs``."""
    keys = {name.removesuffix("_key"): _normalize_hydra_key(kwargs[name]) for name in names if kwargs.get(name) is not None}
    for name in names:
        kwargs.pop(name, None)
    return keys


def _built(network: Any) -> Any:
    """A network given as a partial config node (a callable that is not a module) is built."""
    return network() if network is not None and not isinstance(network, torch.nn.Module) and callable(network) else network


def make_loss(*, loss: str, value_network: Any = None, gamma: float | None = None, **kwargs: Any) -> LossModule:
    """Build the loss named ``loss`` (a name of :data:`DQN_LOSS_CONFIGS`) as TorchRL's ``_make_dqn_loss`` builds
    ``DQNLoss``: keys renamed with ``set_keys``, gamma given to the value estimator."""
    keys = _pop_keys(kwargs, _KEYS)
    (loss_class,) = DQN_LOSS_CONFIGS[loss].loss_classes
    return _finish(loss_class(_built(value_network), **kwargs), keys, gamma)


@dataclass
class _OurLossConfig(LossConfig):
    """The fields every loss config here shares: gamma (for the value estimator), the reductions, the input check
    and the keys that both families read (renamed with ``set_keys`` when set)."""

    gamma: float | None = None
    reduction: str | None = None
    use_prioritized_weights: Any = "auto"
    check_finite: bool = False
    action_key: Any = None
    reward_key: Any = None
    done_key: Any = None
    terminated_key: Any = None
    priority_key: Any = None
    priority_weight_key: Any = None

    #: the loss classes whose keyword arguments the config's fields set (``tests/test_trainer_configs.py`` checks
    #: every one has its field, with the loss's default)
    loss_classes: ClassVar[tuple[type, ...]] = ()

    def __post_init__(self) -> None:
        super().__post_init__()


@dataclass
class _RegularizedDQNLossConfig(_OurLossConfig):
    """The fields every loss of the family shares (TorchRL's ``DQNLossConfig``'s, less ``double_dqn``)."""

    value_network: Any = None
    action_space: Any = None
    action_value_key: Any = None
    _target_: str = "torchrl_reg.trainer_configs.make_loss"


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

    loss_classes: ClassVar[tuple[type, ...]] = (MunchausenDQNLoss,)
    loss: str = "m_dqn"
    loss_function: str = default_of(MunchausenDQNLoss, "loss_function")
    delay_value: bool = default_of(MunchausenDQNLoss, "delay_value")


@dataclass
class MunchausenIQNLossConfig(_MunchausenConfig):
    """:class:`~torchrl_reg.objectives.MunchausenIQNLoss` on an
    :class:`~torchrl_reg.modules.iqn.ImplicitQuantileNetwork` (:class:`IQNQValueModelConfig`)."""

    loss_classes: ClassVar[tuple[type, ...]] = (MunchausenIQNLoss,)
    loss: str = "m_iqn"
    num_quantiles: int = default_of(IQNLoss, "num_quantiles")
    num_target_quantiles: int = default_of(IQNLoss, "num_target_quantiles")
    num_policy_quantiles: int = default_of(IQNLoss, "num_policy_quantiles")
    kappa: float = default_of(IQNLoss, "kappa")
    independent_fractions: bool = default_of(IQNLoss, "independent_fractions")
    delay_value: bool = default_of(IQNLoss, "delay_value")


@dataclass
class MIRLLossConfig(_RegularizedDQNLossConfig):
    """:class:`~torchrl_reg.objectives.MIRLLoss` (Grau-Moya, Leibfried, Vrancx, ICLR 2019, arXiv 1809.01554);
    put :class:`MIRLUpdatesHookConfig` in the trainer's ``hooks``."""

    loss_classes: ClassVar[tuple[type, ...]] = (MIRLLoss,)
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


# -- the actor-critic losses in TorchRL's SACTrainer ---------------------------------------------------------------

_AC_KEYS = ("action_key", "state_action_value_key", "reward_key", "done_key", "terminated_key", "priority_key",
            "priority_weight_key")


def _keyword_names(cls: type) -> set[str]:
    """The keyword arguments ``cls(...)`` takes, those it passes on to its base with ``**kwargs`` included."""
    return {name for name, p in constructor_arguments(cls).items() if p.kind is p.KEYWORD_ONLY}


def _action_spec(actor: torch.nn.Module) -> TensorSpec:
    """The action box of a TorchRL actor (its spec, or the ``"action"`` entry of its Composite spec)."""
    spec = getattr(actor, "spec", None)
    if spec is not None and "action" in getattr(spec, "keys", lambda: ())():
        spec = spec["action"]
    if spec is None:
        raise ValueError(f"the actor ({type(actor).__name__}) has no action spec: build it with one (SVGDSamplerConfig does)")
    return spec


def make_actor_critic_loss(
    *, loss: str, actor_network: Any = None, critic_network: Any = None, qvalue_network: Any = None,
    gamma: float | None = None, **kwargs: Any,
) -> LossModule:
    """Build the actor-critic loss named ``loss`` (a name of :data:`ACTOR_CRITIC_LOSS_CONFIGS`) on an actor and a ``Q(s, a)``
    critic, as TorchRL's ``SACTrainer`` asks for it (``loss_module(actor_network=, critic_network=)``);
    ``qvalue_network=`` (the losses' own name, and ``SACLossConfig``'s) is taken too, one of the two. Keys are
    renamed with ``set_keys``, gamma is given to the value estimator. ``"sql"``: :class:`SoftQLoss` (the keyword
    arguments it takes, its action box the actor's spec) and :class:`SVGDPolicyLoss` (the rest) on the one
    critic, combined in a :class:`SoftQLearningLoss`."""
    if critic_network is not None and qvalue_network is not None:
        raise ValueError("got both critic_network= and qvalue_network= (one critic, under either name)")
    actor, critic = _built(actor_network), _built(critic_network if critic_network is not None else qvalue_network)
    if actor is None or critic is None:
        raise ValueError(f"the {loss!r} loss needs an actor and a critic: got actor_network={actor!r}, critic_network={critic!r}")
    keys = _pop_keys(kwargs, _AC_KEYS)
    if loss != "sql":
        (loss_class,) = ACTOR_CRITIC_LOSS_CONFIGS[loss].loss_classes
        return _finish(loss_class(actor, critic, **kwargs), keys, gamma)
    critic_args = {k: v for k, v in kwargs.items() if k in _keyword_names(SoftQLoss)}
    actor_args = {k: v for k, v in kwargs.items() if k in _keyword_names(SVGDPolicyLoss) and k not in ("check_finite",)}
    unknown = set(kwargs) - set(critic_args) - set(actor_args)
    if unknown:
        raise TypeError(f"soft Q-learning takes no argument {sorted(unknown)}")
    module = SoftQLearningLoss(
        SoftQLoss(critic, action_spec=_action_spec(actor), actor=actor, **critic_args),
        SVGDPolicyLoss(actor, critic, **actor_args),
    )
    return _finish(module, keys, gamma)


@dataclass
class _ActorCriticLossConfig(_OurLossConfig):
    """The fields every actor-critic loss config shares: the two networks (the trainer passes its own when the
    config is partial) and the critic's key."""

    actor_network: Any = None
    critic_network: Any = None
    state_action_value_key: Any = None
    _target_: str = "torchrl_reg.trainer_configs.make_actor_critic_loss"


@dataclass
class MDACLossConfig(_ActorCriticLossConfig):
    """:class:`~torchrl_reg.objectives.MDACLoss` (Mirror Descent Actor Critic, arXiv 2502.03854) on a
    :class:`TanhNormalPolicyConfig` actor and a :class:`StateActionValueConfig` critic; target critics moved by
    the trainer's ``target_net_updater`` (``SoftUpdateConfig``); ``bound_current`` / ``bound_successor`` (and their
    ``_scale``) bound one log-density term each, e.g. ``bound_successor="none"`` for the current-term-only ablation."""

    loss_classes: ClassVar[tuple[type, ...]] = (MDACLoss,)
    loss: str = "mdac"
    beta: float = default_of(MDACLoss, "beta")
    bound: str = default_of(MDACLoss, "bound")
    bound_scale: float = default_of(MDACLoss, "bound_scale")
    bound_current: str | None = default_of(MDACLoss, "bound_current")
    bound_current_scale: float | None = default_of(MDACLoss, "bound_current_scale")
    bound_successor: str | None = default_of(MDACLoss, "bound_successor")
    bound_successor_scale: float | None = default_of(MDACLoss, "bound_successor_scale")
    alpha_init: float = default_of(MDACLoss, "alpha_init")
    fixed_alpha: bool = default_of(MDACLoss, "fixed_alpha")
    target_entropy: Any = default_of(MDACLoss, "target_entropy")
    num_qvalue_nets: int = default_of(MDACLoss, "num_qvalue_nets")
    loss_function: str = default_of(MDACLoss, "loss_function")
    delay_qvalue: bool = default_of(MDACLoss, "delay_qvalue")
    delay_actor: bool = default_of(MDACLoss, "delay_actor")


@dataclass
class VIRELLossConfig(_ActorCriticLossConfig):
    """:class:`~torchrl_reg.objectives.VIRELLoss` (Fellows et al., NeurIPS 2019, arXiv 1811.01132) on a
    :class:`TanhNormalPolicyConfig` actor and a :class:`StateActionValueConfig` critic; with the default
    ``temperature_estimator="replay"`` put :class:`VIRELTemperatureHookConfig` in the trainer's ``hooks``."""

    loss_classes: ClassVar[tuple[type, ...]] = (VIRELLoss,)
    loss: str = "virel"
    variant: str = default_of(VIRELLoss, "variant")
    num_qvalue_nets: int = default_of(VIRELLoss, "num_qvalue_nets")
    c: float = default_of(VIRELLoss, "c")
    p: int = default_of(VIRELLoss, "p")
    temperature_estimator: str = default_of(VIRELLoss, "temperature_estimator")
    temperature_ema: float = default_of(VIRELLoss, "temperature_ema")
    initial_temperature: float = default_of(VIRELLoss, "initial_temperature")
    loss_function: str = default_of(VIRELLoss, "loss_function")
    delay_qvalue: bool = default_of(VIRELLoss, "delay_qvalue")


@dataclass
class SoftQLearningLossConfig(_ActorCriticLossConfig):
    """Soft Q-learning (Haarnoja et al., ICML 2017, arXiv 1702.08165) as one
    :class:`~torchrl_reg.objectives.SoftQLearningLoss`: :class:`~torchrl_reg.objectives.SoftQLoss`'s settings
    and :class:`~torchrl_reg.objectives.SVGDPolicyLoss`'s (``num_particles``, ``fixed_ratio``, ``space``,
    ``min_bandwidth``), one ``tau`` for both, on an :class:`SVGDSamplerConfig` actor."""

    loss_classes: ClassVar[tuple[type, ...]] = (SoftQLoss, SVGDPolicyLoss)
    loss: str = "sql"
    tau: float = default_of(SoftQLoss, "tau")
    reward_scale: float = default_of(SoftQLoss, "reward_scale")
    num_value_particles: int = default_of(SoftQLoss, "num_value_particles")
    proposal: str = default_of(SoftQLoss, "proposal")
    num_fit_particles: int = default_of(SoftQLoss, "num_fit_particles")
    uniform_weight: float = default_of(SoftQLoss, "uniform_weight")
    loss_function: str = default_of(SoftQLoss, "loss_function")
    delay_qvalue: bool = default_of(SoftQLoss, "delay_qvalue")
    num_particles: int = default_of(SVGDPolicyLoss, "num_particles")
    fixed_ratio: float = default_of(SVGDPolicyLoss, "fixed_ratio")
    space: str = default_of(SVGDPolicyLoss, "space")
    min_bandwidth: float = default_of(SVGDPolicyLoss, "min_bandwidth")


def _box(action_dim: int, low: Any, high: Any) -> Bounded:
    return Bounded(low=torch.as_tensor(low, dtype=torch.float32).expand(action_dim).clone(),
                   high=torch.as_tensor(high, dtype=torch.float32).expand(action_dim).clone(), shape=(action_dim,))


def make_tanh_normal_policy(
    *, observation_dim: int, action_dim: int, low: Any = -1.0, high: Any = 1.0, num_cells: Any = (256, 256),
    scale_lb: float = 0.1, in_keys: Any = None, out_keys: Any = None, shared: bool = False,
) -> torch.nn.Module:
    """:func:`~torchrl_reg.modules.policies.tanh_normal_policy` on the box ``[low, high]^action_dim`` (``low``,
    ``high``: numbers or one per dimension); ``out_keys`` are the actor's own (ignored, as TorchRL's model
    configs ignore them)."""
    in_keys = ("observation",) if in_keys is None else tuple(_normalize_hydra_key(key) for key in in_keys)
    actor = tanh_normal_policy(observation_dim, _box(action_dim, low, high), num_cells=tuple(num_cells),
                               scale_lb=scale_lb, in_keys=in_keys)
    return actor.share_memory() if shared else actor


def make_svgd_sampler(
    *, observation_dim: int, action_dim: int, low: Any = -1.0, high: Any = 1.0, num_cells: Any = (128, 128),
    noise_dim: int | None = None, in_keys: Any = None, out_keys: Any = None, shared: bool = False,
) -> torch.nn.Module:
    """:func:`~torchrl_reg.modules.soft_q.svgd_sampler_actor` on the box ``[low, high]^action_dim``."""
    in_keys = ("observation",) if in_keys is None else tuple(_normalize_hydra_key(key) for key in in_keys)
    actor = svgd_sampler_actor(observation_dim, _box(action_dim, low, high), num_cells=tuple(num_cells),
                               noise_dim=noise_dim, in_keys=in_keys)
    return actor.share_memory() if shared else actor


def make_state_action_value(
    *, observation_dim: int, action_dim: int, num_cells: Any = (256, 256), in_keys: Any = None, out_keys: Any = None,
    shared: bool = False,
) -> torch.nn.Module:
    """:func:`~torchrl_reg.modules.critics.state_action_value_network`: ``Q(s, a)`` writing
    ``"state_action_value"`` (``in_keys`` default ``["observation", "action"]``)."""
    in_keys = ("observation", "action") if in_keys is None else tuple(_normalize_hydra_key(key) for key in in_keys)
    critic = state_action_value_network(observation_dim, action_dim, num_cells=tuple(num_cells), in_keys=in_keys)
    return critic.share_memory() if shared else critic


@dataclass
class TanhNormalPolicyConfig(ModelConfig):
    """SAC's tanh-Gaussian policy (:func:`~torchrl_reg.modules.policies.tanh_normal_policy`), MDAC's and VIREL's
    actor; also the collector's ``policy``."""

    observation_dim: int = 3
    action_dim: int = 1
    low: Any = -1.0
    high: Any = 1.0
    num_cells: Any = (256, 256)
    scale_lb: float = 0.1
    _target_: str = "torchrl_reg.trainer_configs.make_tanh_normal_policy"

    def __post_init__(self) -> None:
        super().__post_init__()


@dataclass
class SVGDSamplerConfig(ModelConfig):
    """Soft Q-learning's amortized sampler (:func:`~torchrl_reg.modules.soft_q.svgd_sampler_actor`)."""

    observation_dim: int = 3
    action_dim: int = 1
    low: Any = -1.0
    high: Any = 1.0
    num_cells: Any = (128, 128)
    noise_dim: int | None = None
    _target_: str = "torchrl_reg.trainer_configs.make_svgd_sampler"

    def __post_init__(self) -> None:
        super().__post_init__()


@dataclass
class StateActionValueConfig(ModelConfig):
    """The ``Q(s, a)`` critic of the three actor-critic losses (:func:`~torchrl_reg.modules.critics.state_action_value_network`)."""

    observation_dim: int = 3
    action_dim: int = 1
    num_cells: Any = (256, 256)
    _target_: str = "torchrl_reg.trainer_configs.make_state_action_value"

    def __post_init__(self) -> None:
        super().__post_init__()


class VIRELTemperature(TrainerHookBase):
    """VIREL's ``"replay"`` temperature in TorchRL's trainer, as ``recipes/virel.py`` drives it: before every update
    (``process_optim_batch``, after the trainer samples its minibatch) ``loss.update_temperature`` on a separate
    sample of ``batch_size`` transitions of the trainer's replay buffer, drawn by its sampler (the official code: 4096
    uniform ones), and
    ``loss.keep_temperature()`` until the buffer holds that many. With ``"batch"`` or ``"ema"`` the loss estimates
    the temperature in its forward and this hook does nothing. The temperature is a buffer of the loss, saved with
    it."""

    def __init__(self, batch_size: int = 4096) -> None:
        self.batch_size = check_count("batch_size", batch_size)
        self.loss: VIRELLoss | None = None
        self.replay_buffer = None

    def register(self, trainer: Trainer, name: str = "virel_temperature") -> None:
        if not isinstance(trainer.loss_module, VIRELLoss):
            raise TypeError(f"VIRELTemperature drives a VIRELLoss, the trainer's loss is a {type(trainer.loss_module).__name__}")
        if getattr(trainer, "replay_buffer", None) is None:
            raise ValueError("VIRELTemperature samples its temperature batch from the trainer's replay buffer: the trainer has none")
        self.loss, self.replay_buffer = trainer.loss_module, trainer.replay_buffer
        trainer.register_op("process_optim_batch", self.update_temperature)
        trainer.register_module(name, self)

    def update_temperature(self, batch: Any) -> None:
        if self.loss.temperature_estimator != "replay":
            return
        buffer = self.replay_buffer
        if len(buffer) >= self.batch_size:
            # drawn by the buffer's own sampler, then read by index: buffer.sample(batch_size) at a size other than the
            # trainer's minibatch would set off TorchRL's "conflicting batch_sizes" warning on every run
            index, _ = buffer.sampler.sample(buffer.storage, self.batch_size)
            self.loss.update_temperature(buffer[index])
        else:
            self.loss.keep_temperature()  # the official code's initial temperature until the batch fits

    def state_dict(self) -> dict[str, Any]:
        return {}  # the temperature is a buffer of the loss, saved with it

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass


@dataclass
class VIRELTemperatureHookConfig:
    """:class:`VIRELTemperature` as a trainer ``hooks`` entry."""

    batch_size: int = 4096
    _target_: str = "torchrl_reg.trainer_configs.VIRELTemperature"


def _by_name(*configs: type) -> dict[str, type]:
    return {config.loss: config for config in configs}


#: The loss configs of TorchRL's ``DQNTrainerConfig`` (``loss_module``), by the name :func:`make_loss` builds: the one
#: list, which :func:`register_configs` stores and the tests run.
DQN_LOSS_CONFIGS: dict[str, type] = _by_name(MunchausenDQNLossConfig, MunchausenIQNLossConfig, MIRLLossConfig)
#: The loss configs of TorchRL's ``SACTrainerConfig`` (``loss_module``), by the name :func:`make_actor_critic_loss`
#: builds.
ACTOR_CRITIC_LOSS_CONFIGS: dict[str, type] = _by_name(MDACLossConfig, VIRELLossConfig, SoftQLearningLossConfig)


def register_configs() -> None:
    """Store the configs in Hydra's ConfigStore beside TorchRL's (call after importing
    ``torchrl.trainers.algorithms.configs``, which registers TorchRL's own)."""
    store = ConfigStore.instance()
    for name, node in {**DQN_LOSS_CONFIGS, **ACTOR_CRITIC_LOSS_CONFIGS}.items():
        store.store(group="loss", name=name, node=node)
    store.store(group="value_network", name="iqn", node=IQNQValueModelConfig)
    store.store(group="hook", name="mirl_updates", node=MIRLUpdatesHookConfig)
    store.store(group="actor_network", name="tanh_normal", node=TanhNormalPolicyConfig)
    store.store(group="actor_network", name="svgd_sampler", node=SVGDSamplerConfig)
    store.store(group="critic_network", name="state_action_value", node=StateActionValueConfig)
    store.store(group="hook", name="virel_temperature", node=VIRELTemperatureHookConfig)
