"""Planning with MENTS, DENTS, BTS or UCT: search before every move, act, repeat (no training).

    python recipes/tree_search.py                                         # MENTS on the D-chain (R_f = 0.5)
    python recipes/tree_search.py planner.algorithm=dents task.final_reward=1.0
    python recipes/tree_search.py tree_search_preset=frozenlake planner.simulations=2000
    python recipes/tree_search.py tree_search_preset=minatar evaluator.checkpoint=runs/m_dqn/.../checkpoint.pt
    python recipes/tree_search.py tree_search_preset=atari task.game=pong
    python recipes/tree_search.py planner.batch_episodes=16 episodes=64  # 16 episodes at a time, batched search

Searches: :func:`torchrl_reg.planning.make_search` (Xiao et al., Maximum Entropy Monte-Carlo
Planning, NeurIPS 2019; Painter et al., Monte Carlo Tree Search with Boltzmann Exploration,
NeurIPS 2023, arXiv:2404.07732). ``planner.algorithm=greedy`` acts by the Q network's argmax
without searching (the baseline the searches with that network are compared to).

Tasks (``tree_search_preset=``, :func:`torchrl_reg.planning.make_task`): ``dchain`` (default),
``frozenlake`` (8x8, deterministic), ``minatar`` (a Q network trained by ``recipes/m_dqn.py`` gives the
leaf values and the initial values of untried actions: ``evaluator.checkpoint`` is that run's
``checkpoint.pt``, its ``config.yaml`` beside it) and ``atari`` (random rollouts).

``planner.batch_episodes=K`` plays K episodes at once, one batched search over their trees per move
(:class:`torchrl_reg.planning.BatchedTreeSearch`; dchain, frozenlake and minatar).

The loop is :func:`torchrl_reg.loops.planning.plan`; this file declares the config and its checks. The
run-directory contract (config.yaml, checkpoint.pt after every episode or group of episodes, resume from the
last finished one, CSV logs, metrics.json, returns.png, stop signals and exit status 75) is that loop's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Optional

from omegaconf import DictConfig

from torchrl_reg.configs import default_of, register_schema
from torchrl_reg.envs import MINATAR_GAMES
from torchrl_reg.loops import recipe_entry
from torchrl_reg.planning import (
    ALGORITHMS,
    KNOB_DEFAULTS,
    RECOMMENDATIONS,
    TASKS,
    TENSOR_TASKS,
    QNetworkEvaluator,
    RandomRollout,
    algorithm_knobs,
    make_search,
)
from torchrl_reg.run.logs import LOGGER_BACKENDS
from torchrl_reg.validation import check_choice, check_count, check_range

PLANNERS = ALGORITHMS + ("greedy",)
EVALUATORS = ("rollout", "q_network")


@dataclass
class TaskConfig:
    """The env (:func:`torchrl_reg.planning.make_task`) and the episode's move cap."""

    name: str = "dchain"
    length: int = 10
    final_reward: float = 0.5
    map_name: str = "8x8"
    game: str = "breakout"
    sticky_action_prob: float = 0.0
    frame_skip: int = 4
    max_steps: int = 200

    docs: ClassVar[dict[str, str]] = {
        "name": "dchain, frozenlake, minatar or atari",
        "length": "D-chain: number of states D",
        "final_reward": "D-chain: reward R_f at the chain's end",
        "map_name": "FrozenLake map (4x4, 8x8)",
        "game": "MinAtar or Atari game",
        "sticky_action_prob": "MinAtar / Atari: probability that the env repeats the last action",
        "frame_skip": "Atari: emulator frames per move",
        "max_steps": "moves per episode at most",
    }


@dataclass
class PlannerConfig:
    """The search (:func:`torchrl_reg.planning.make_search`'s arguments) and its budget per move."""

    algorithm: str = "ments"
    simulations: int = 200
    # each algorithm reads its own knobs (torchrl_reg.planning.KNOBS); unset ones take KNOB_DEFAULTS and
    # a set knob the algorithm does not read is refused
    tau: Optional[float] = None
    eps: Optional[float] = None
    alpha: Optional[float] = None
    beta_0: Optional[float] = None
    c: Optional[float] = None
    recommend: Optional[str] = default_of(make_search, "recommend")
    gamma: float = default_of(make_search, "gamma")
    q_init: float = default_of(make_search, "q_init")
    batch_episodes: int = 1

    docs: ClassVar[dict[str, str]] = {
        "algorithm": "ments, dents, bts, uct, or greedy (the Q network's argmax, no search)",
        "simulations": "simulations per move",
        "tau": "MENTS's temperature (null: its default)",
        "eps": "E2W exploration of MENTS, BTS and DENTS (null: its default)",
        "alpha": "search temperature of BTS and DENTS (null: its default)",
        "beta_0": "DENTS's initial entropy weight (null: its default)",
        "c": "UCT's exploration constant (null: its default)",
        "recommend": "the move played: search_value, bellman_value or most_visited (null: the algorithm's own)",
        "gamma": "discount of the tree and the rollouts",
        "q_init": "initial value of untried actions when the evaluator gives none",
        "batch_episodes": "episodes played at once, one batched search per move (1: the single-tree search; >1: dchain, frozenlake, minatar)",
    }


@dataclass
class EvaluatorConfig:
    """Leaf evaluation: ``rollout`` (random, ``rollout_steps``) or ``q_network`` (from an M-DQN ``checkpoint``)."""

    kind: str = "rollout"
    rollout_steps: int = default_of(RandomRollout, "max_steps")
    checkpoint: Optional[str] = None
    prior_tau: float = default_of(QNetworkEvaluator, "tau")
    value: str = default_of(QNetworkEvaluator, "value")
    init: str = default_of(QNetworkEvaluator, "init")

    docs: ClassVar[dict[str, str]] = {
        "kind": "rollout (random actions) or q_network",
        "rollout_steps": "moves per random rollout",
        "checkpoint": "checkpoint.pt of a recipes/m_dqn.py MinAtar run, its config.yaml beside it",
        "prior_tau": "temperature of the network's prior and soft leaf value",
        "value": "leaf value: soft (tau logsumexp Q/tau) or max",
        "init": "untried actions start at: q (the network's Q), log_prior, or none (planner.q_init)",
    }


@dataclass
class PlanningLoggerConfig:
    """TorchRL logger backend (one row per episode) and the progress bar."""

    backend: str = "csv"
    project: str = "torchrl_reg"
    progress_bar: bool = True

    docs: ClassVar[dict[str, str]] = {
        "backend": "csv, tensorboard, wandb or none",
        "project": "wandb project",
        "progress_bar": "show a progress bar over moves",
    }


@dataclass
class TreeSearchConfig:
    seed: int = 0
    episodes: int = 1
    run_dir: Optional[str] = None
    num_threads: int = 1
    task: TaskConfig = field(default_factory=TaskConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    logger: PlanningLoggerConfig = field(default_factory=PlanningLoggerConfig)
    #: The loop that runs it (:data:`torchrl_reg.loops.LOOPS`): torchrl_reg.loops.planning.plan.
    family: ClassVar[str] = "planning"

    docs: ClassVar[dict[str, str]] = {
        "seed": "episode i's env, rollouts and search draw from seed + i",
        "episodes": "episodes to play (may grow on resume)",
        "run_dir": "run directory (default: Hydra's output directory)",
        "num_threads": "torch threads",
    }


register_schema("tree_search", TreeSearchConfig)


def check_ranges(cfg: DictConfig) -> None:
    """Range checks after the schema's (:func:`~torchrl_reg.loops.recipe_entry`), all before anything is built."""
    check_count("episodes", cfg.episodes)
    check_count("num_threads", cfg.num_threads)
    check_choice("logger.backend", cfg.logger.backend, LOGGER_BACKENDS)
    task, planner, evaluator = cfg.task, cfg.planner, cfg.evaluator
    check_choice("task.name", task.name, TASKS)
    check_count("task.max_steps", task.max_steps)
    if task.name == "dchain":
        check_count("task.length", task.length, 2)
        check_range("task.final_reward", task.final_reward)
    if task.name == "minatar":
        check_choice("task.game", task.game.lower(), [g.lower() for g in MINATAR_GAMES])
    if task.name in ("minatar", "atari"):
        check_range("task.sticky_action_prob", task.sticky_action_prob, 0.0, 1.0)
    check_choice("planner.algorithm", planner.algorithm, PLANNERS)
    check_count("planner.simulations", planner.simulations)
    check_count("planner.batch_episodes", planner.batch_episodes)
    if planner.batch_episodes > 1:
        if task.name not in TENSOR_TASKS:
            raise ValueError(
                f"planner.batch_episodes={planner.batch_episodes} needs a task the batched search models "
                f"({', '.join(TENSOR_TASKS)}), got task.name={task.name!r}; use planner.batch_episodes=1"
            )
        if planner.algorithm not in ALGORITHMS:
            raise ValueError(
                f"planner.batch_episodes={planner.batch_episodes} batches searches; planner.algorithm={planner.algorithm!r} "
                "does not search: use planner.batch_episodes=1"
            )
    if planner.algorithm in ALGORITHMS:
        knobs = algorithm_knobs(planner.algorithm, {k: planner[k] for k in KNOB_DEFAULTS}, prefix="planner.")
        for name, value in knobs.items():
            check_range(f"planner.{name}", value, 0.0, low_inclusive=name not in ("tau", "alpha"))
    check_range("planner.gamma", planner.gamma, 0.0, 1.0)
    check_range("planner.q_init", planner.q_init)
    if planner.recommend is not None:
        check_choice("planner.recommend", planner.recommend, RECOMMENDATIONS)
    check_choice("evaluator.kind", evaluator.kind, EVALUATORS)
    if evaluator.kind == "q_network" or planner.algorithm == "greedy":
        if task.name != "minatar":
            raise ValueError(f"a Q network (evaluator.kind={evaluator.kind!r}, planner.algorithm={planner.algorithm!r}) needs task.name='minatar', got {task.name!r}")
        if not evaluator.checkpoint:
            raise ValueError("evaluator.checkpoint must name an M-DQN run's checkpoint.pt (recipes/m_dqn.py env=minatar)")
        if not Path(evaluator.checkpoint).is_file():
            raise FileNotFoundError(f"evaluator.checkpoint={evaluator.checkpoint!r} is not a file")
        check_range("evaluator.prior_tau", evaluator.prior_tau, 0.0, low_inclusive=False)
        check_choice("evaluator.value", evaluator.value, QNetworkEvaluator.VALUES)
        check_choice("evaluator.init", evaluator.init, QNetworkEvaluator.INITS)
    else:
        check_count("evaluator.rollout_steps", evaluator.rollout_steps, 0)


# ``train`` by the recipe contract (torchrl_reg.run: sweeps call recipes by it), though nothing is trained
validate, train, main = recipe_entry("tree_search", TreeSearchConfig, check_ranges)
train.__doc__ = "Play ``cfg.episodes`` episodes, searching before every move; returns the metrics (also in ``<run_dir>/metrics.json``)."

if __name__ == "__main__":
    main()
