"""Config schemas shared by every recipe, and the checks that run before training starts.

BenchMARL-style: each config group (``env``, ``collector``, ``buffer``, ``optim``, ``logger``) has
a dataclass schema here; a recipe defines its own loss dataclass and a top-level dataclass that
inherits the schema of its loop's family, and registers the latter in Hydra's ConfigStore with
:func:`~torchrl_reg.configs.compose.register_schema` (:func:`~torchrl_reg.configs.compose.recipe_schema`). Its primary YAML lists that schema first in its defaults, so every
YAML and every command-line override is type-checked against it and unknown keys are refused.

The schemas, one per layer of what a loop needs:

* :class:`RunConfig`: what every run has, whatever its loop (seed, run directory, threads, logger: the
  run-directory contract of :class:`~torchrl_reg.run.Run`), checked by :func:`~torchrl_reg.configs.checks.validate_run_config`;
  :class:`PlanningConfig` adds the episodes of the planning loop (no training);
* :class:`RecipeConfig`: what every replay-based run has (env, network, collector, buffer, Adam and
  the update schedule, evaluation, checkpoints, logger), checked by :func:`~torchrl_reg.configs.checks.validate_recipe_config`;
* :class:`ValueBasedConfig`: adds epsilon-greedy ``exploration`` and the periodic target copy
  ``optim.target_update_interval`` (:func:`~torchrl_reg.configs.checks.validate_value_based_config`); :class:`BoltzmannValueBasedConfig`
  the target copy alone, for a method whose policy explores by itself;
* :class:`ActorCriticConfig`: Box actions, MLP networks, targets Polyak-averaged by the loss
  after every update (:func:`~torchrl_reg.configs.checks.validate_actor_critic_config`); it has no Q-learning keys.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, List, Optional

from omegaconf import MISSING

from torchrl_reg.modules.policies import tanh_normal_policy
from torchrl_reg.run.rundir import AS_NEW
from torchrl_reg.validation import ReadOnlyIf, constructor_arguments

__all__ = [
    "ActorCriticConfig",
    "ActorCriticLossConfig",
    "BoltzmannValueBasedConfig",
    "BufferConfig",
    "CONTROL_FAMILIES",
    "CheckpointConfig",
    "CollectorConfig",
    "EnvConfig",
    "EvalConfig",
    "ExplorationConfig",
    "LOSS_FUNCTIONS",
    "LoggerConfig",
    "MAX_SEED",
    "NetworkConfig",
    "OptimConfig",
    "PLANNING_EVALUATORS",
    "PlanningCheckpointConfig",
    "PlanningConfig",
    "QOptimConfig",
    "RecipeConfig",
    "RunConfig",
    "RunLoggerConfig",
    "STORAGES",
    "TARGET_UPDATES",
    "ValueBasedConfig",
    "ValueBasedLossConfig",
    "arguments_of",
    "default_of",
]

#: Env families with Box actions (``classic`` for Pendulum-v1).
CONTROL_FAMILIES = ("classic", "mujoco")
STORAGES = ("tensor", "memmap")
#: The regression losses of TorchRL's ``distance_loss`` that the recipes' losses accept.
LOSS_FUNCTIONS = ("l2", "smooth_l1", "l1")
#: How the actor-critic loop's target networks follow the online ones (:class:`ActorCriticLossConfig`).
TARGET_UPDATES = ("polyak", "hard")
#: The planning loop's leaf evaluators (``evaluator.kind``): random rollouts, or a trained Q network.
PLANNING_EVALUATORS = ("rollout", "q_network")
#: Seeds numpy's legacy global RNG takes as they are (a larger one would be folded onto a smaller one).
MAX_SEED = 2**32 - 1


def _parameters(callable_: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    """A function's parameters; a class's constructor arguments, through the ``**kwargs`` it passes to its base's."""
    if isinstance(callable_, type):
        return constructor_arguments(callable_)
    return inspect.signature(callable_).parameters


def default_of(callable_: Callable[..., Any], name: str) -> Any:
    """The default of argument ``name`` of ``callable_`` (a loss class, also an argument its constructor passes on
    to its base's with ``**kwargs``): a config field declared as ``tau: float = default_of(MunchausenDQNLoss, "tau")``
    keeps the loss's default as its one source."""
    parameter = _parameters(callable_).get(name)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        raise ValueError(f"{getattr(callable_, '__name__', callable_)} has no argument {name!r} with a default")
    return parameter.default


def arguments_of(callable_: Callable[..., Any], node: Any) -> dict[str, Any]:
    """The values of the keys of config group ``node`` that are arguments of ``callable_`` (a loss
    class, with the arguments its constructor passes on to its base's; a builder), by name: the inverse of
    :func:`default_of`, for a config whose fields are named after the arguments they set. ``gamma`` is never
    passed: TorchRL keeps it in the loss's value estimator (``make_value_estimator(gamma=...)``), not in the
    constructor."""
    parameters = _parameters(callable_)
    return {key: node[key] for key in node if key in parameters and key != "gamma"}


@dataclass
class EnvConfig:
    """Which environment and how it is preprocessed (see :mod:`torchrl_reg.envs`)."""

    #: preprocessing family: classic, box, atari, minatar, multigoal (set by the env group)
    family: str = "classic"
    #: the gymnasium id (any id runs with the env option's settings)
    name: str = "CartPole-v1"
    #: probability of repeating the previous action (Atari protocol: 0.25)
    sticky_action_prob: float = 0.0
    #: env steps per agent step (Atari: 4, max-pooled frames)
    frame_skip: int = 1
    #: observations stacked as one input (Atari: 4)
    frame_stack: int = 1
    #: side of the resized square pixel frame (Atari: 84)
    screen_size: int = 84
    #: time limit in agent steps (null: the env's own)
    max_episode_steps: Optional[int] = None
    #: clip training rewards to [-c, c] (null: raw rewards; returns are logged raw)
    reward_clip: Optional[float] = None
    # CartPole: one numpy-vectorized env (VectorCartPole) instead of a SyncVectorEnv of gym.make copies.
    #: CartPole: one numpy-vectorized env instead of copies of gym.make
    native_vector: bool = True
    # Atari: per-env gymnasium wrappers (exact resume), or ale-py's C++ vector env (torchrl_reg.envs.atari_vector:
    # same protocol, resize rounding and episode-ending frames differ; its runs cannot resume from a checkpoint).
    #: Atari: wrappers (per-env, resumable) or vector (ale-py's C++ vector env, not resumable)
    backend: str = "wrappers"

    #: The keys only some families read (:func:`~torchrl_reg.envs.make.make_single_env`): a value given to one that the
    #: family ignores is refused, naming the family that reads it (``env=minatar env.frame_stack=4`` would train on
    #: single frames). ``backend`` has its own check (:func:`~torchrl_reg.configs.checks.check_env_backend`).
    read_only_if: ClassVar[ReadOnlyIf] = {
        "frame_skip": ("family", ("atari",)), "frame_stack": ("family", ("atari",)),
        "screen_size": ("family", ("atari",)), "sticky_action_prob": ("family", ("minatar", "atari")),
        "native_vector": ("family", ("classic",)),
    }


@dataclass
class NetworkConfig:
    """Q-network body: ``mlp`` (hidden sizes), ``minatar_conv`` or ``nature_cnn``."""

    #: network body: mlp, minatar_conv or nature_cnn
    kind: str = "mlp"
    #: hidden layer sizes of the mlp (and of the head after a conv torso)
    hidden: List[int] = field(default_factory=lambda: [120, 84])


@dataclass
class CollectorConfig:
    """``num_envs`` vectorized envs step together; one batch is ``frames_per_batch`` frames.

    The first ``init_random_frames`` frames are collected with uniformly random actions instead of
    the policy (TorchRL's ``Collector(init_random_frames=...)``, ``env.rand_action``): the warm-up of
    the SAC implementations (Dopamine's ``min_replay_history``, softlearning, CleanRL, TorchRL's
    example), 0 to act with the policy from the first frame.
    """

    #: environment frames (agent steps over all envs) of the whole run
    total_frames: int = 500_000
    #: envs stepped together by the collector
    num_envs: int = 16
    #: frames collected between two rounds of updates
    frames_per_batch: int = 320
    #: first frames collected with uniformly random actions (warm-up)
    init_random_frames: int = 0


@dataclass
class BufferConfig:
    """Replay buffer: uniform or prioritized (Schaul et al. 2016, ``priority_alpha``/``priority_beta``).

    ``dedup_frames`` keeps each frame of stacked pixel observations once
    (:class:`~torchrl_reg.data.FrameStackStorage`, ~7.4 KB instead of ~56 KB per Atari transition).
    """

    #: replay capacity in transitions (the checkpoint holds only the filled part)
    size: int = 10_000
    #: transitions per gradient step
    batch_size: int = 128
    #: prioritized replay on the TD error (Schaul et al. 2016)
    prioritized: bool = False
    #: prioritized replay's priority exponent
    priority_alpha: float = 0.6
    #: prioritized replay's importance-sampling exponent
    priority_beta: float = 0.4
    #: tensor (in memory) or memmap (memory-mapped files)
    storage: str = "tensor"
    #: store each frame of stacked pixel observations once
    dedup_frames: bool = False


@dataclass
class OptimConfig:
    """Adam and the update schedule, all counted in environment frames (agent steps)."""

    #: Adam learning rate
    lr: float = 2.5e-4
    #: Adam epsilon
    eps: float = 1e-8
    #: clip the gradient norm (null: no clipping)
    max_grad_norm: Optional[float] = None
    #: frames collected before the first update
    learning_starts: int = 10_000
    #: frames per gradient step (1: one update per frame)
    frames_per_update: int = 10


@dataclass
class QOptimConfig(OptimConfig):
    """:class:`OptimConfig` plus the value-based target copy every ``target_update_interval`` frames."""

    #: frames between two copies of the Q-network into its target
    target_update_interval: int = 500


@dataclass
class ExplorationConfig:
    """Epsilon-greedy annealed linearly from ``eps_init`` to ``eps_end`` over ``annealing_frames``."""

    #: epsilon-greedy's epsilon at the start
    eps_init: float = 1.0
    #: epsilon after the annealing
    eps_end: float = 0.05
    #: frames of the linear annealing from eps_init to eps_end
    annealing_frames: int = 250_000


@dataclass
class EvalConfig:
    """Greedy evaluation every ``interval`` frames (0: only at the end) on ``episodes`` episodes."""

    #: frames between greedy evaluations (0: only at the end)
    interval: int = 50_000
    #: episodes per evaluation
    episodes: int = 10
    #: epsilon of the evaluation policy (Atari protocol: 0.001)
    epsilon: float = 0.0
    #: agent steps after which an evaluation episode is cut
    max_steps: int = 27_000


@dataclass
class CheckpointConfig:
    """``checkpoint.pt`` is written every ``interval`` frames (0: only at the end and on stop)."""

    #: frames between checkpoints (0: only at the end and on stop)
    interval: int = 100_000


@dataclass
class RunLoggerConfig:
    """TorchRL logger backend and the progress bar, of every run."""

    #: csv, tensorboard or none (wandb is refused: it writes by path from a process of its own)
    backend: str = "csv"
    #: wandb project (read by no backend that runs)
    project: str = "torchrl_reg"
    #: show a progress bar
    progress_bar: bool = True


@dataclass
class LoggerConfig(RunLoggerConfig):
    """:class:`RunLoggerConfig` plus a training loop's log line every ``interval`` frames."""

    #: frames between two log lines
    interval: int = 10_000


@dataclass
class RunConfig:
    """Fields of every run, whatever its loop: the run-directory contract (:class:`~torchrl_reg.run.Run`)
    reads them. A family's schema inherits it (:class:`RecipeConfig`, :class:`PlanningConfig`)."""

    #: seed of every random stream of the run
    seed: int = 0
    #: run directory (null: Hydra's output directory); an existing one is resumed
    run_dir: Optional[str] = None
    #: torch CPU threads
    num_threads: int = 1
    logger: RunLoggerConfig = field(default_factory=RunLoggerConfig)

    #: The keys a resumed run may change (``"any"``, or ``"larger"``: only upwards), each a subclass's or a group's
    #: own (:func:`~torchrl_reg.run.rundir.resume_rules`): none of them changes a trained number. Here: what is
    #: logged and where the directory is.
    resumable_keys: ClassVar[Mapping[str, str]] = {
        "logger.backend": "any", "logger.project": "any", "logger.progress_bar": "any", "run_dir": "any",
    }
    #: Keys added after run directories were written without them, with the value their absence meant
    #: (:data:`~torchrl_reg.run.rundir.AS_NEW`: the new config's; a callable: a function of the stored, flat config).
    added_keys: ClassVar[Mapping[str, Any]] = {}


@dataclass
class PlanningCheckpointConfig:
    """The group of episodes in progress is saved in ``checkpoint.pt`` between two moves once ``interval_s``
    seconds have passed since the last checkpoint (besides after every finished group and at a stop), so that a run
    killed without a word (SIGKILL, a crash, a lost node) goes on from there, not from the group's start. In seconds,
    not moves: a move costs microseconds on a D-chain and seconds on MinAtar at 200 simulations."""

    #: seconds between checkpoints of the group in progress (0: only after a finished group and at a stop)
    interval_s: float = 300.0


@dataclass
class PlanningConfig(RunConfig):
    """Runs that play ``episodes`` episodes with a search before every move and train nothing
    (:mod:`torchrl_reg.loops.planning`, checked by :func:`~torchrl_reg.configs.checks.validate_planning_config`);
    its recipe (``recipes/tree_search.py``) adds the ``task``, ``planner`` and ``evaluator`` groups of
    :mod:`torchrl_reg.configs.planning`, each with its checks."""

    #: episode i's env, rollouts and search draw from seed + i
    seed: int = 0
    #: episodes to play (may grow on resume)
    episodes: int = 1
    checkpoint: PlanningCheckpointConfig = field(default_factory=PlanningCheckpointConfig)
    family: ClassVar[str] = "planning"
    #: A resume may play more episodes and checkpoint the group in progress at another interval.
    resumable_keys: ClassVar[Mapping[str, str]] = {"episodes": "larger", "checkpoint.interval_s": "any"}


@dataclass
class RecipeConfig(RunConfig):
    """Fields every replay-based recipe shares; a family adds its own (:class:`ValueBasedConfig`,
    :class:`ActorCriticConfig`) and a recipe its ``loss`` (and anything else) in a subclass."""

    #: seed of the networks, the envs and the replay
    seed: int = 0
    #: auto (an accelerator when present), cpu, cuda, ...
    device: str = "auto"
    #: torch.compile the update
    compile: bool = False
    # Opt-in: torchrl_reg.objectives.update.FusedAdamUpdate records the step.
    #: replay the compiled fused update as a CUDA graph (needs compile=true and a CUDA device)
    cuda_graph: bool = False
    env: EnvConfig = field(default_factory=EnvConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    #: The run's logger with the training log's ``interval`` (:class:`LoggerConfig`).
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    #: A resume may train longer, log and checkpoint at other intervals, and launch the compiled update otherwise
    #: (``cuda_graph``: how it is launched, not what it computes).
    resumable_keys: ClassVar[Mapping[str, str]] = {
        "collector.total_frames": "larger", "logger.interval": "any", "checkpoint.interval": "any", "cuda_graph": "any",
    }
    #: ``env.backend`` came with ale-py's vector env (before it, gymnasium's wrappers); ``loss.name`` came to the
    #: actor-critic configs when their loop started to read the loss from the config, and each actor-critic recipe
    #: offers exactly one loss name (the one it registers), so a stored config without one ran the name it now gives.
    added_keys: ClassVar[Mapping[str, Any]] = {"env.backend": "wrappers", "loss.name": AS_NEW}


@dataclass
class ValueBasedLossConfig:
    """What the value-based loop reads from every value-based loss config: the registered loss
    ``name`` (a recipe sets its default) and the discount ``gamma`` (set in the loss's value
    estimator). A recipe's loss config inherits it and adds the losses' own settings."""

    #: the loss (a choice of the loss group)
    name: str = MISSING
    #: discount factor
    gamma: float = 0.99

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
    #: The loop family that trains it (:func:`~torchrl_reg.loops.recipe_entry` runs that loop).
    family: ClassVar[str] = "value_based"


@dataclass
class BoltzmannValueBasedConfig(RecipeConfig):
    """:class:`ValueBasedConfig` without the epsilon-greedy ``exploration`` group: for a method on the
    value-based loop whose own policy is its only exploration (discrete VIREL's Boltzmann policy at the
    Bellman-error temperature, ``recipes/virel.py``), so no epsilon value can be set and ignored."""

    optim: QOptimConfig = field(default_factory=QOptimConfig)
    action_space: ClassVar[str] = "discrete"
    family: ClassVar[str] = "value_based"


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

    ``name`` is the registered actor-critic loss the loop builds (a recipe sets its default and its
    ``choices``). A recipe's loss config inherits it and adds the loss's own settings."""

    #: the registered loss the loop builds (one per recipe)
    name: str = MISSING
    #: discount factor
    gamma: float = 0.99
    #: polyak (averaged every update) or hard (copied every hard_update_interval updates)
    target_update: str = "polyak"
    #: rate of the Polyak averaging of the target networks
    polyak: float = 0.005
    #: updates between two copies into the targets (target_update=hard)
    hard_update_interval: Optional[int] = None

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
    family: ClassVar[str] = "actor_critic"


@dataclass
class GaussianPolicyConfig:
    """The tanh-Gaussian policy of the actor-critic recipes (:func:`~torchrl_reg.modules.policies.tanh_normal_policy`):
    ``scale_lb``, the floor of its standard deviation before the tanh. 0.1 (ln sigma >= -2.3) is TorchRL's SAC
    example's and this library's default; the MDAC authors' code floors ln sigma at -20 (``exp(-20)``, as a
    reviewer of the paper read it), other single-file SACs at -5 (``exp(-5)``). The floor bounds ln pi, hence the
    entropy and Munchausen terms alpha ln pi. The default stays 0.1 from ``benchmarks/mdac_std_floor.yaml`` (RESULTS.md,
    "The policy's std floor"): on HalfCheetah-v5 at 100k, seed 0, MDAC scored 6228 / 5636 / 4500 with the floors 0.1 /
    exp(-5) / exp(-20), and its unbounded variant failed under all three, faster the lower the floor. SAC, VIREL and
    IQ keep TorchRL's SAC's 0.1, not measured against the others."""

    #: floor of the tanh-Gaussian's std, in (0, 1): 0.1 (TorchRL's SAC's; ln sigma >= -2.3) scored best for MDAC
    #: against exp(-5) and exp(-20) (RESULTS.md, "The policy's std floor")
    scale_lb: float = default_of(tanh_normal_policy, "scale_lb")
