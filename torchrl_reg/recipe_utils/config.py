"""Config schemas shared by every recipe, and the checks that run before training starts.

BenchMARL-style: each config group (``env``, ``collector``, ``buffer``, ``optim``, ``logger``) has
a dataclass schema here; a recipe defines its own loss dataclass and a top-level dataclass that
inherits the schema of its loop's family, and registers the latter in Hydra's ConfigStore with
:func:`register_schema`. Its primary YAML lists that schema first in its defaults, so every
YAML and every command-line override is type-checked against it and unknown keys are refused.

Three schemas, one per layer of what a loop needs:

* :class:`RecipeConfig`: what every replay-based run has (env, network, collector, buffer, Adam and
  the update schedule, evaluation, checkpoints, logger), checked by :func:`validate_recipe_config`;
* :class:`ValueBasedConfig`: adds epsilon-greedy ``exploration`` and the periodic target copy
  ``optim.target_update_interval`` (:func:`validate_value_based_config`); :class:`BoltzmannValueBasedConfig`
  the target copy alone, for a method whose policy explores by itself;
* :class:`ActorCriticConfig`: Box actions, MLP networks, targets Polyak-averaged by the loss
  after every update (:func:`validate_actor_critic_config`); it has no Q-learning keys.
"""
from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, make_dataclass
from pathlib import Path
from typing import Any, ClassVar, List, Optional

from omegaconf import MISSING, DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from torchrl_reg.envs.ids import ENV_BACKENDS, ENV_FAMILIES
from torchrl_reg.modules.q_networks import NETWORK_KINDS
from torchrl_reg.run.logs import LOGGER_BACKENDS
from torchrl_reg.validation import (
    select_device,
    check_choice,
    check_count,
    check_multiple,
    check_range,
    check_unread,
    declared,
    ReadOnlyIf,
    STABLE_TAU,
)

__all__ = [
    "EnvConfig",
    "NetworkConfig",
    "CollectorConfig",
    "BufferConfig",
    "OptimConfig",
    "QOptimConfig",
    "ExplorationConfig",
    "EvalConfig",
    "CheckpointConfig",
    "LoggerConfig",
    "RecipeConfig",
    "ValueBasedConfig",
    "BoltzmannValueBasedConfig",
    "ActorCriticConfig",
    "ActorCriticLossConfig",
    "ValueBasedLossConfig",
    "LOSS_FUNCTIONS",
    "TARGET_UPDATES",
    "default_of",
    "arguments_of",
    "check_loss_config",
    "recipe_schema",
    "check_config",
    "check_group_choice",
    "register_schema",
    "compose_config",
    "config_help",
    "key_docs",
    "register_group_choices",
    "structured",
    "STABLE_TAU",
    "validate_recipe_config",
    "validate_value_based_config",
    "validate_actor_critic_config",
]

#: Env families with Box actions (``classic`` for Pendulum-v1).
CONTROL_FAMILIES = ("classic", "mujoco")
STORAGES = ("tensor", "memmap")
#: The regression losses of TorchRL's ``distance_loss`` that the recipes' losses accept.
LOSS_FUNCTIONS = ("l2", "smooth_l1", "l1")
#: How the actor-critic loop's target networks follow the online ones (:class:`ActorCriticLossConfig`).
TARGET_UPDATES = ("polyak", "hard")
#: Seeds numpy's legacy global RNG takes as they are (a larger one would be folded onto a smaller one).
MAX_SEED = 2**32 - 1


def default_of(callable_: Callable[..., Any], name: str) -> Any:
    """The default of argument ``name`` of ``callable_`` (a loss class): a config field declared as
    ``tau: float = default_of(MunchausenDQNLoss, "tau")`` keeps the loss's default as its one source."""
    parameter = inspect.signature(callable_).parameters.get(name)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        raise ValueError(f"{getattr(callable_, '__name__', callable_)} has no argument {name!r} with a default")
    return parameter.default


def arguments_of(callable_: Callable[..., Any], node: Any) -> dict[str, Any]:
    """The values of the keys of config group ``node`` that are arguments of ``callable_`` (a loss
    class, a builder), by name: the inverse of :func:`default_of`, for a config whose fields are
    named after the arguments they set. ``gamma`` is never passed: TorchRL keeps it in the loss's
    value estimator (``make_value_estimator(gamma=...)``), not in the constructor."""
    parameters = inspect.signature(callable_).parameters
    return {key: node[key] for key in node if key in parameters and key != "gamma"}


def check_loss_config(loss_class: type, node: Any, **values: Any) -> None:
    """Check config group ``node`` (``loss``) with ``loss_class``'s own argument checks
    (:class:`~torchrl_reg.validation.ArgumentChecks`), errors naming ``loss.<key>``: the loss owns its ranges,
    and a recipe's ``validate`` adds only the rules across groups. ``values`` replace the config's (a value the
    config spells differently, e.g. ``None`` for the loss's own default); a loss without checks is skipped."""
    checks = getattr(loss_class, "argument_checks", None)
    if checks is None:
        return
    arguments = {key: node[key] for key in node if key in checks} | values
    loss_class.check_arguments(arguments, prefix="loss.")


@dataclass
class EnvConfig:
    """Which environment and how it is preprocessed (see :mod:`torchrl_reg.envs`)."""

    family: str = "classic"
    name: str = "CartPole-v1"
    sticky_action_prob: float = 0.0
    frame_skip: int = 1
    frame_stack: int = 1
    screen_size: int = 84
    max_episode_steps: Optional[int] = None
    reward_clip: Optional[float] = None
    # CartPole: one numpy-vectorized env (VectorCartPole) instead of a SyncVectorEnv of gym.make copies.
    native_vector: bool = True
    # Atari: per-env gymnasium wrappers (exact resume), or ale-py's C++ vector env (torchrl_reg.envs.atari_vector:
    # same protocol, resize rounding and episode-ending frames differ; its runs cannot resume from a checkpoint).
    backend: str = "wrappers"

    docs: ClassVar[dict[str, str]] = {
        "family": "preprocessing family: classic, box, atari, minatar, multigoal (set by the env group)",
        "name": "the gymnasium id (any id runs with the env group's preset)",
        "sticky_action_prob": "probability of repeating the previous action (Atari protocol: 0.25)",
        "frame_skip": "env steps per agent step (Atari: 4, max-pooled frames)",
        "frame_stack": "observations stacked as one input (Atari: 4)",
        "screen_size": "side of the resized square pixel frame (Atari: 84)",
        "max_episode_steps": "time limit in agent steps (null: the env's own)",
        "reward_clip": "clip training rewards to [-c, c] (null: raw rewards; returns are logged raw)",
        "native_vector": "CartPole: one numpy-vectorized env instead of copies of gym.make",
        "backend": "Atari: wrappers (per-env, resumable) or vector (ale-py's C++ vector env, not resumable)",
    }


@dataclass
class NetworkConfig:
    """Q-network body: ``mlp`` (hidden sizes), ``minatar_conv`` or ``nature_cnn``."""

    kind: str = "mlp"
    hidden: List[int] = field(default_factory=lambda: [120, 84])

    docs: ClassVar[dict[str, str]] = {
        "kind": "network body: mlp, minatar_conv or nature_cnn",
        "hidden": "hidden layer sizes of the mlp (and of the head after a conv torso)",
    }


@dataclass
class CollectorConfig:
    """``num_envs`` vectorized envs step together; one batch is ``frames_per_batch`` frames.

    The first ``init_random_frames`` frames are collected with uniformly random actions instead of
    the policy (TorchRL's ``Collector(init_random_frames=...)``, ``env.rand_action``): the warm-up of
    the SAC implementations (Dopamine's ``min_replay_history``, softlearning, CleanRL, TorchRL's
    example), 0 to act with the policy from the first frame.
    """

    total_frames: int = 500_000
    num_envs: int = 16
    frames_per_batch: int = 320
    init_random_frames: int = 0

    docs: ClassVar[dict[str, str]] = {
        "total_frames": "environment frames (agent steps over all envs) of the whole run",
        "num_envs": "envs stepped together by the collector",
        "frames_per_batch": "frames collected between two rounds of updates",
        "init_random_frames": "first frames collected with uniformly random actions (warm-up)",
    }


@dataclass
class BufferConfig:
    """Replay buffer: uniform or prioritized (Schaul et al. 2016, ``priority_alpha``/``priority_beta``).

    ``dedup_frames`` keeps each frame of stacked pixel observations once
    (:class:`~torchrl_reg.data.FrameStackStorage`, ~7.4 KB instead of ~56 KB per Atari transition).
    """

    size: int = 10_000
    batch_size: int = 128
    prioritized: bool = False
    priority_alpha: float = 0.6
    priority_beta: float = 0.4
    storage: str = "tensor"
    dedup_frames: bool = False

    docs: ClassVar[dict[str, str]] = {
        "size": "replay capacity in transitions (the checkpoint holds only the filled part)",
        "batch_size": "transitions per gradient step",
        "prioritized": "prioritized replay on the TD error (Schaul et al. 2016)",
        "priority_alpha": "prioritized replay's priority exponent",
        "priority_beta": "prioritized replay's importance-sampling exponent",
        "storage": "tensor (in memory) or memmap (memory-mapped files)",
        "dedup_frames": "store each frame of stacked pixel observations once",
    }


@dataclass
class OptimConfig:
    """Adam and the update schedule, all counted in environment frames (agent steps)."""

    lr: float = 2.5e-4
    eps: float = 1e-8
    max_grad_norm: Optional[float] = None
    learning_starts: int = 10_000
    frames_per_update: int = 10

    docs: ClassVar[dict[str, str]] = {
        "lr": "Adam learning rate",
        "eps": "Adam epsilon",
        "max_grad_norm": "clip the gradient norm (null: no clipping)",
        "learning_starts": "frames collected before the first update",
        "frames_per_update": "frames per gradient step (1: one update per frame)",
    }


@dataclass
class QOptimConfig(OptimConfig):
    """:class:`OptimConfig` plus the value-based target copy every ``target_update_interval`` frames."""

    target_update_interval: int = 500

    docs: ClassVar[dict[str, str]] = {"target_update_interval": "frames between two copies of the Q-network into its target"}


@dataclass
class ExplorationConfig:
    """Epsilon-greedy annealed linearly from ``eps_init`` to ``eps_end`` over ``annealing_frames``."""

    eps_init: float = 1.0
    eps_end: float = 0.05
    annealing_frames: int = 250_000

    docs: ClassVar[dict[str, str]] = {
        "eps_init": "epsilon-greedy's epsilon at the start",
        "eps_end": "epsilon after the annealing",
        "annealing_frames": "frames of the linear annealing from eps_init to eps_end",
    }


@dataclass
class EvalConfig:
    """Greedy evaluation every ``interval`` frames (0: only at the end) on ``episodes`` episodes."""

    interval: int = 50_000
    episodes: int = 10
    epsilon: float = 0.0
    max_steps: int = 27_000

    docs: ClassVar[dict[str, str]] = {
        "interval": "frames between greedy evaluations (0: only at the end)",
        "episodes": "episodes per evaluation",
        "epsilon": "epsilon of the evaluation policy (Atari protocol: 0.001)",
        "max_steps": "agent steps after which an evaluation episode is cut",
    }


@dataclass
class CheckpointConfig:
    """``checkpoint.pt`` is written every ``interval`` frames (0: only at the end and on stop)."""

    interval: int = 100_000

    docs: ClassVar[dict[str, str]] = {"interval": "frames between checkpoints (0: only at the end and on stop)"}


@dataclass
class LoggerConfig:
    """TorchRL logger backend; ``interval`` is in frames; ``progress_bar`` shows a tqdm bar."""

    backend: str = "csv"
    project: str = "torchrl_reg"
    interval: int = 10_000
    progress_bar: bool = True

    docs: ClassVar[dict[str, str]] = {
        "backend": "csv, tensorboard, wandb or none",
        "project": "wandb project",
        "interval": "frames between two log lines",
        "progress_bar": "show a progress bar",
    }


@dataclass
class RecipeConfig:
    """Fields every recipe shares; a family adds its own (:class:`ValueBasedConfig`,
    :class:`ActorCriticConfig`) and a recipe its ``loss`` (and anything else) in a subclass."""

    seed: int = 0
    device: str = "auto"
    run_dir: Optional[str] = None
    compile: bool = False
    #: Replay the compiled fused update as a CUDA graph (opt-in; needs compile and a CUDA device):
    #: :class:`~torchrl_reg.objectives.update.FusedAdamUpdate`.
    cuda_graph: bool = False
    num_threads: int = 1
    env: EnvConfig = field(default_factory=EnvConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    docs: ClassVar[dict[str, str]] = {
        "seed": "seed of the networks, the envs and the replay",
        "device": "auto (an accelerator when present), cpu, cuda, ...",
        "run_dir": "run directory (null: Hydra's output directory); an existing one is resumed",
        "compile": "torch.compile the update",
        "cuda_graph": "replay the compiled fused update as a CUDA graph (needs compile=true and a CUDA device)",
        "num_threads": "torch CPU threads",
    }


@dataclass
class ValueBasedLossConfig:
    """What the value-based loop reads from every value-based loss config: the registered loss
    ``name`` (a recipe sets its default) and the discount ``gamma`` (set in the loss's value
    estimator). A recipe's loss config inherits it and adds the losses' own settings."""

    name: str = MISSING
    gamma: float = 0.99

    docs: ClassVar[dict[str, str]] = {"name": "the loss (a choice of the loss group)", "gamma": "discount factor"}

    #: Keys with a closed set of values, e.g. ``{"name": ("m_dqn", "dqn")}``, the losses a recipe offers;
    #: checked before the keys they decide (``read_only_if``).
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {}
    #: Keys read only by some losses (:func:`~torchrl_reg.validation.unread_keys`), e.g.
    #: ``{"tau": ("name", ("m_dqn", "soft_dqn"))}``: a value given to one the chosen loss ignores is refused.
    read_only_if: ClassVar[ReadOnlyIf] = {}


@dataclass
class ValueBasedConfig(RecipeConfig):
    """Q-learning recipes: epsilon-greedy exploration and a target network copied every
    ``optim.target_update_interval`` frames (:mod:`torchrl_reg.loops.value_based`)."""

    optim: QOptimConfig = field(default_factory=QOptimConfig)
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    #: The action space the loop needs (:func:`~torchrl_reg.envs.specs.check_action_space`).
    action_space: ClassVar[str] = "discrete"


@dataclass
class BoltzmannValueBasedConfig(RecipeConfig):
    """:class:`ValueBasedConfig` without the epsilon-greedy ``exploration`` group: for a method on the
    value-based loop whose own policy is its only exploration (discrete VIREL's Boltzmann policy at the
    Bellman-error temperature, ``recipes/virel.py``), so no epsilon value can be set and ignored."""

    optim: QOptimConfig = field(default_factory=QOptimConfig)
    action_space: ClassVar[str] = "discrete"


@dataclass
class ActorCriticLossConfig:
    """What the actor-critic loop reads from every actor-critic loss config: the discount ``gamma``
    (set in the loss's value estimator) and how the target networks follow the online ones,
    ``target_update`` (one of :data:`TARGET_UPDATES`):

    * ``polyak`` (default): averaged at rate ``polyak`` after every gradient step (SAC's 0.005,
      Haarnoja et al. 2018b); ``hard_update_interval`` must stay unset;
    * ``hard``: the online parameters copied into the targets after updates ``N, 2N, ...`` with
      ``N = hard_update_interval`` (required; soft Q-learning's reference uses 1000); ``polyak`` is
      not read in this mode.

    A recipe's loss config inherits it and adds the loss's own settings."""

    gamma: float = 0.99
    target_update: str = "polyak"
    polyak: float = 0.005
    hard_update_interval: Optional[int] = None

    docs: ClassVar[dict[str, str]] = {
        "gamma": "discount factor",
        "target_update": "polyak (averaged every update) or hard (copied every hard_update_interval updates)",
        "polyak": "rate of the Polyak averaging of the target networks",
        "hard_update_interval": "updates between two copies into the targets (target_update=hard)",
    }

    #: Keys read only under some settings (:func:`~torchrl_reg.validation.unread_keys`); a recipe's
    #: loss config adds its own. ``hard_update_interval`` in polyak mode has its own check (it has no default).
    read_only_if: ClassVar[ReadOnlyIf] = {"polyak": ("target_update", ("polyak",))}


@dataclass
class ActorCriticConfig(RecipeConfig):
    """Actor-critic recipes on Box actions (:mod:`torchrl_reg.loops.actor_critic`): the acting policy
    is stochastic (no exploration schedule) and the targets are Polyak-averaged after every update
    at the loss's rate ``loss.polyak`` or copied every ``loss.hard_update_interval`` updates
    (``loss.target_update``; no ``optim.target_update_interval``)."""

    action_space: ClassVar[str] = "box"


def register_schema(name: str, node: type) -> None:
    """Store ``node`` (a dataclass) in Hydra's ConfigStore as ``<name>_schema``; list it first in the defaults."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=f"{name}_schema", node=node)


def recipe_schema(name: str, family: type | None = None, **groups: type) -> type:
    """A recipe's top-level schema: its family's (:class:`ValueBasedConfig`, :class:`ActorCriticConfig`)
    plus the recipe's own groups (``loss=MyLossConfig``, ``policy=...``), registered as ``<name>_schema``
    (:func:`register_schema`). ``family`` ``None``: the family whose loss config ``loss`` inherits
    (:class:`ValueBasedLossConfig` or :class:`ActorCriticLossConfig`)."""
    if family is None:
        family = next(f for base, f in _LOSS_FAMILIES.items() if issubclass(groups["loss"], base))
    schema = make_dataclass(
        f"{name}_config",
        [(group, node, field(default_factory=node)) for group, node in groups.items()],
        bases=(family,),
    )
    register_schema(name, schema)
    return schema


#: config name -> {group: the options of that shared config group the recipe accepts}, filled by
#: :func:`register_group_choices` (each recipe's ``recipe_entry``) and checked by :func:`compose_config`.
_GROUP_CHOICES: dict[str, dict[str, tuple[str, ...]]] = {}


def register_group_choices(config_name: str, group: str, choices: Iterable[str]) -> None:
    """Declare the options of the shared config ``group`` that the recipe config ``config_name`` accepts
    (``recipe_entry(..., losses=...)`` does it for the ``loss`` group): :func:`compose_config` then
    refuses any other, as the recipe's command line does."""
    _GROUP_CHOICES.setdefault(config_name, {})[group] = tuple(choices)


def compose_config(config_dir: str | Path, config_name: str, overrides: Iterable[str] = ()) -> DictConfig:
    """Compose a recipe config without running it (tests, notebooks); the recipe must be imported
    (its schema registered).

    The recipes share ``recipes/conf/loss/``, so Hydra composes another recipe's option too
    (``loss=iq`` on m_dqn would keep M-DQN with IQ's ``alpha: 0.0``, a silently different method):
    an option outside those the recipe declared (:func:`register_group_choices`) raises ``ValueError``
    naming the option and the accepted ones, as the command line does.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = list(overrides)
    groups = _GROUP_CHOICES.get(config_name, {})
    # An option named on the command line is checked before composing: another recipe's file may set
    # keys this schema lacks (loss=soft_q on virel), which Hydra would report as a key error instead.
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and key in groups:
            check_choice(key, value, groups[key])
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    picked = cfg.hydra.runtime.choices
    for group, accepted in groups.items():
        choice = picked.get(group)
        if choice is not None:
            check_choice(group, choice, accepted)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


#: Keys that mean the same in every loss config that has them (a class's own ``docs`` may override).
SHARED_KEY_DOCS = {
    "alpha": "weight of the Munchausen / advantage term (0: no term)",
    "tau": "entropy temperature (the softmax policy's)",
    "clip_value_min": "lower clip of the Munchausen term tau ln pi",
    "clip_value_max": "upper clip of the Munchausen term tau ln pi",
    "loss_function": "regression loss of the critic: l2, l1 or smooth_l1 (Huber)",
}


def key_docs(schema: type) -> dict[str, str]:
    """The one-line doc of each key of a config dataclass: :data:`SHARED_KEY_DOCS`, then its ``docs`` class
    variable merged over its bases."""
    docs: dict[str, str] = dict(SHARED_KEY_DOCS)
    for cls in reversed(getattr(schema, "__mro__", ())):
        docs.update(vars(cls).get("docs", {}))
    return docs


def config_help(cfg: DictConfig) -> list[str]:
    """``key=value  what it sets`` for every key of a composed, typed recipe config (``--help``), the
    doc from the schema's :func:`key_docs`."""
    lines: list[str] = []

    def walk(node: DictConfig, prefix: str) -> None:
        docs = key_docs(OmegaConf.get_type(node))
        for key in node:
            child = node._get_node(key)
            if isinstance(child, DictConfig):
                walk(child, f"{prefix}{key}.")
            else:
                value = OmegaConf.to_container(child) if OmegaConf.is_list(child) else child._value()
                shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else value
                lines.append(f"{prefix}{key}={shown}  {docs.get(key, '')}".rstrip())

    walk(cfg, "")
    return lines


def _accepted_keys(schema: type) -> list[str]:
    return [f.name for f in fields(schema)]


def _schema_at(schema: type, dotted_key: str) -> type:
    """The dataclass that holds the last component of ``dotted_key`` (for error messages)."""
    for part in dotted_key.split(".")[:-1]:
        sub = {f.name: f for f in fields(schema)}.get(part)
        if sub is None or sub.default_factory is dataclasses.MISSING or not is_dataclass(sub.default_factory()):
            break
        schema = type(sub.default_factory())
    return schema


def _unknown_keys(node: Any, schema: type, prefix: str = "") -> list[str]:
    """Keys of ``node`` that ``schema`` (a dataclass) does not declare, at any depth, dotted."""
    declared = {f.name: f for f in fields(schema)}
    unknown = []
    for key in node.keys():
        if key not in declared:
            unknown.append(f"{prefix}{key}")
            continue
        factory = declared[key].default_factory
        child = node._get_node(key) if isinstance(node, DictConfig) else node[key]
        if factory is not dataclasses.MISSING and is_dataclass(sub := factory()) and isinstance(child, (DictConfig, Mapping)):
            unknown += _unknown_keys(child, type(sub), f"{prefix}{key}.")
    return unknown


def structured(cfg: Mapping[str, Any] | DictConfig, schema: type) -> DictConfig:
    """Merge ``cfg`` onto the ``schema`` dataclass: refuses unknown keys and ill-typed values.

    Hydra already does this for configs composed from YAML, except for keys added with ``+key=``
    or ``++key=`` (Hydra adds those to any node), which are refused here, whatever the prefix;
    this also covers ``train(cfg)`` called with a plain dict or a config built by hand.
    """
    if not is_dataclass(schema):
        raise TypeError(f"schema must be a dataclass type, got {schema!r}")
    unknown = _unknown_keys(cfg, schema)
    if unknown:
        raise ValueError(
            f"invalid config entry {unknown[0]!r}: not a key of the schema (added with +/++ or by hand, it "
            "would be ignored). "
            f"Accepted keys at this level: {_accepted_keys(_schema_at(schema, unknown[0]))}"
            + (f"; also unknown: {unknown[1:]}" if len(unknown) > 1 else "")
        )
    base = OmegaConf.structured(schema)
    # As plain data: a config composed against another copy of the schema class (a recipe imported
    # twice, e.g. by a sweep) merges by its keys and values, not by its class.
    plain = OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else cfg
    try:
        merged = OmegaConf.merge(base, plain)
    except OmegaConfBaseException as err:
        key = str(getattr(err, "full_key", None) or getattr(err, "key", None) or "")
        raise ValueError(
            f"invalid config entry {key!r}: {str(getattr(err, 'msg', err)).splitlines()[0]}. "
            f"Accepted keys at this level: {_accepted_keys(_schema_at(schema, key))}"
        ) from None
    OmegaConf.set_struct(merged, True)
    return merged


def check_group_choice(group: str, choices: Iterable[str]) -> None:
    """In a Hydra run, raise ``ValueError`` unless the option picked for config ``group`` is one of
    ``choices``. The recipes share ``recipes/conf/<group>/``, so Hydra composes any recipe's option;
    one without a ``name`` key (``loss=iq`` on m_dqn) would silently keep the recipe's default loss
    with the other recipe's values. Call it from the recipe's ``@hydra.main``, before training."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(group)
        if choice is not None:
            check_choice(group, choice, choices)


def validate_recipe_config(cfg: DictConfig) -> None:
    """Range checks of :class:`RecipeConfig`'s groups; raises ``ValueError`` naming the value and the accepted range."""
    check_count("seed", cfg.seed, 0)
    if cfg.seed > MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, {MAX_SEED}] (numpy's seed range), got seed={cfg.seed}")
    check_count("num_threads", cfg.num_threads)
    if cfg.cuda_graph:
        if not cfg.compile:
            raise ValueError("cuda_graph=true replays the compiled fused update: it needs compile=true, got compile=false")
        device = select_device(cfg.device)
        if device.type != "cuda":
            raise ValueError(f"cuda_graph=true records CUDA graphs: it needs a CUDA device, got device={cfg.device!r} ({device})")
    check_choice("env.family", cfg.env.family, ENV_FAMILIES)
    check_range("env.sticky_action_prob", cfg.env.sticky_action_prob, 0.0, 1.0)
    check_count("env.frame_skip", cfg.env.frame_skip)
    check_count("env.frame_stack", cfg.env.frame_stack)
    check_count("env.screen_size", cfg.env.screen_size)
    if cfg.env.max_episode_steps is not None:
        check_count("env.max_episode_steps", cfg.env.max_episode_steps)
    if cfg.env.reward_clip is not None:
        check_range("env.reward_clip", cfg.env.reward_clip, 0.0, low_inclusive=False)
    check_env_backend(cfg.env)
    check_choice("network.kind", cfg.network.kind, NETWORK_KINDS)
    if cfg.network.kind == "mlp" and not cfg.network.hidden:
        raise ValueError("network.hidden must list at least one layer width for network.kind='mlp', got network.hidden=[]")
    for width in cfg.network.hidden:
        check_count("network.hidden[i]", width)

    c = cfg.collector
    check_count("collector.total_frames", c.total_frames)
    check_count("collector.num_envs", c.num_envs)
    check_count("collector.frames_per_batch", c.frames_per_batch)
    check_multiple("collector.frames_per_batch", c.frames_per_batch, "collector.num_envs", c.num_envs)
    check_count("collector.init_random_frames", c.init_random_frames, 0)
    # TorchRL rounds a partial batch up to a whole one: refuse it rather than collect more than asked.
    check_multiple("collector.init_random_frames", c.init_random_frames, "collector.frames_per_batch", c.frames_per_batch)

    b = cfg.buffer
    check_count("buffer.size", b.size)
    check_count("buffer.batch_size", b.batch_size)
    check_range("buffer.priority_alpha", b.priority_alpha, 0.0)
    check_range("buffer.priority_beta", b.priority_beta, 0.0, 1.0)
    check_choice("buffer.storage", b.storage, STORAGES)
    if b.size < b.batch_size:
        raise ValueError(f"buffer.size must be >= buffer.batch_size={b.batch_size} (a minibatch is drawn from it), got buffer.size={b.size}")

    o = cfg.optim
    check_range("optim.lr", o.lr, 0.0, low_inclusive=False)
    check_range("optim.eps", o.eps, 0.0, low_inclusive=False)  # Adam divides by sqrt(v) + eps
    if o.max_grad_norm is not None:
        check_range("optim.max_grad_norm", o.max_grad_norm, 0.0, low_inclusive=False)
    check_count("optim.learning_starts", o.learning_starts, 0)
    check_count("optim.frames_per_update", o.frames_per_update)
    check_multiple("collector.frames_per_batch", c.frames_per_batch, "optim.frames_per_update", o.frames_per_update)

    check_count("eval.interval", cfg.eval.interval, 0)
    check_count("eval.episodes", cfg.eval.episodes, 0)
    check_range("eval.epsilon", cfg.eval.epsilon, 0.0, 1.0)
    check_count("eval.max_steps", cfg.eval.max_steps)
    check_count("checkpoint.interval", cfg.checkpoint.interval, 0)
    check_choice("logger.backend", cfg.logger.backend, LOGGER_BACKENDS)
    check_count("logger.interval", cfg.logger.interval)


def check_env_backend(env: Any) -> None:
    """Raise ``ValueError`` unless ``env.backend`` (an :class:`EnvConfig`'s) is one of :data:`ENV_BACKENDS` and,
    for ``vector``, the env is Atari, its time limit fits ale-py's frame counter and ale-py has the vector env."""
    check_choice("env.backend", env.backend, ENV_BACKENDS)
    if env.backend != "vector":
        return
    if env.family != "atari":
        raise ValueError(
            f"env.backend='vector' is ale-py's Atari vector env: it needs env.family='atari', got env.family={env.family!r} "
            "(leave env.backend at 'wrappers')"
        )
    import ale_py
    from packaging.version import Version

    # The version read and tested (tests/recipe_utils/test_atari_vector_env.py): 0.11 lacks the vector env's
    # seeded and partial resets, which the TorchRL wrapper needs.
    if Version(ale_py.__version__) < Version("0.12.1"):
        raise ValueError(f"env.backend='vector' needs ale-py >= 0.12.1 (its AtariVectorEnv), found ale-py {ale_py.__version__}")
    from torchrl_reg.envs.atari_vector import MAX_EPISODE_FRAMES

    if env.max_episode_steps is not None and env.max_episode_steps * env.frame_skip > MAX_EPISODE_FRAMES:
        raise ValueError(
            f"env.backend='vector' counts an episode's frames in a C++ int: env.max_episode_steps * env.frame_skip must "
            f"be <= {MAX_EPISODE_FRAMES}, got {env.max_episode_steps} * {env.frame_skip}"
        )


def validate_value_based_config(cfg: DictConfig) -> None:
    """:func:`validate_recipe_config` plus the checks of :class:`ValueBasedConfig`'s own keys (those of
    :class:`BoltzmannValueBasedConfig`, which has no ``exploration``) and
    :class:`ValueBasedLossConfig`'s ``gamma`` (the loss name is the recipe's to check)."""
    validate_recipe_config(cfg)
    if cfg.network.kind == "nature_cnn" and cfg.env.screen_size < 36:
        raise ValueError(f"network.kind='nature_cnn' needs frames of at least 36x36, got env.screen_size={cfg.env.screen_size}")
    o = cfg.optim
    check_count("optim.target_update_interval", o.target_update_interval)
    check_multiple("optim.target_update_interval", o.target_update_interval, "optim.frames_per_update", o.frames_per_update)
    e = cfg.get("exploration")  # None: a BoltzmannValueBasedConfig
    if e is not None:
        check_range("exploration.eps_init", e.eps_init, 0.0, 1.0)
        check_range("exploration.eps_end", e.eps_end, 0.0, 1.0)
        check_count("exploration.annealing_frames", e.annealing_frames, 0)
    check_range("loss.gamma", cfg.loss.gamma, 0.0, 1.0)


def validate_actor_critic_config(cfg: DictConfig) -> None:
    """:func:`validate_recipe_config` plus the limits of :class:`ActorCriticConfig` (Box-action env
    families, MLP networks) and the checks of :class:`ActorCriticLossConfig`'s keys."""
    validate_recipe_config(cfg)
    check_choice("env.family", cfg.env.family, CONTROL_FAMILIES)
    check_choice("network.kind", cfg.network.kind, ("mlp",))
    check_range("loss.gamma", cfg.loss.gamma, 0.0, 1.0, high_inclusive=False)
    check_choice("loss.target_update", cfg.loss.target_update, TARGET_UPDATES)
    interval = cfg.loss.hard_update_interval
    if cfg.loss.target_update == "polyak":
        check_range("loss.polyak", cfg.loss.polyak, 0.0, 1.0, low_inclusive=False)
        if interval is not None:  # set without the mode that reads it: refused, never ignored
            raise ValueError(
                f"loss.hard_update_interval={interval!r} is read only with loss.target_update=hard, "
                "got loss.target_update=polyak (set loss.target_update=hard, or leave the interval unset)"
            )
    else:
        if interval is None:
            raise ValueError("loss.target_update=hard needs loss.hard_update_interval (an integer >= 1, in updates)")
        check_count("loss.hard_update_interval", interval)


def check_config(cfg: Mapping[str, Any] | DictConfig, schema: type) -> DictConfig:
    """``cfg`` merged onto ``schema`` (:func:`structured`: unknown keys and ill-typed values refused),
    checked by its family's validator (:func:`validate_value_based_config`,
    :func:`validate_actor_critic_config`, else :func:`validate_recipe_config`), the keys a group
    dataclass declares in ``choices`` (e.g. ``loss.name``) checked against their values,
    ``loss.loss_function`` (when the loss has one) against :data:`LOSS_FUNCTIONS`, and no group holding a value for a
    key that its settings leave unread (a group dataclass's ``read_only_if``,
    :func:`~torchrl_reg.validation.check_unread`): ``loss=dqn loss.alpha=0.5`` is refused, not ignored."""
    cfg = structured(cfg, schema)
    family = next(base for base in schema.__mro__ if base in _FAMILY_CHECKS)
    _FAMILY_CHECKS[family](cfg)
    for group in fields(schema):
        node = group.default_factory() if group.default_factory is not dataclasses.MISSING else None
        if not is_dataclass(node):
            continue
        for key, accepted in declared(type(node), "choices").items():
            check_choice(f"{group.name}.{key}", cfg[group.name][key], accepted)
        if group.name == "loss" and "loss_function" in cfg.loss:
            check_choice("loss.loss_function", cfg.loss.loss_function, LOSS_FUNCTIONS)
        check_unread(group.name, cfg[group.name], type(node))
    return cfg


_LOSS_FAMILIES = {ValueBasedLossConfig: ValueBasedConfig, ActorCriticLossConfig: ActorCriticConfig}
_FAMILY_CHECKS = {
    ValueBasedConfig: validate_value_based_config,
    BoltzmannValueBasedConfig: validate_value_based_config,
    ActorCriticConfig: validate_actor_critic_config,
    RecipeConfig: validate_recipe_config,
}
