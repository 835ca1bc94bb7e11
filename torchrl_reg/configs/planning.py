"""The planning recipe's groups, each with its checks: the task played (:class:`TaskConfig`), the search
(:class:`PlannerConfig`) and the leaf evaluation (:class:`EvaluatorConfig`), which ``recipes/tree_search.py`` puts on
:class:`~torchrl_reg.configs.PlanningConfig`.

A group's ``check_group(cfg)`` runs in :func:`~torchrl_reg.configs.check_config` after the family's checks, with the
whole config (a rule across groups is the group's that reads it: the Q network an evaluator needs is the evaluator's);
its ``read_only_if`` names the keys only some settings read, and its ``added_keys`` the keys added after run
directories were written without them (:func:`~torchrl_reg.run.rundir.resume_rules`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

from omegaconf import DictConfig

from torchrl_reg.configs.schemas import PLANNING_EVALUATORS, default_of
from torchrl_reg.envs.ids import MINATAR_GAMES, require_extra
from torchrl_reg.planning import ALGORITHMS, KNOB_DEFAULTS, KNOBS, RECOMMENDATIONS, TASKS, QNetworkEvaluator, RandomRollout, make_search
from torchrl_reg.planning.algorithms import KNOB_TABLE, algorithm_knobs, check_knob
from torchrl_reg.planning.models import DEFAULT_MODEL, get_model
from torchrl_reg.planning.ensemble import check_futures
from torchrl_reg.planning.tasks import MODELS, check_model
from torchrl_reg.run.rundir import AS_NEW
from torchrl_reg.validation import ReadOnlyIf, check_choice, check_count, check_memory, check_range

__all__ = ["PLANNERS", "EvaluatorConfig", "PlannerConfig", "TaskConfig", "tree_memory"]

#: The planning loop's ``planner.algorithm`` values: the searches, and ``greedy``, the Q network's argmax without a search.
PLANNERS = ALGORITHMS + ("greedy",)


def _model_before(stored: Mapping[str, Any]) -> Any:
    """What a planning config without ``planner.model`` planned in: on MinAtar and Atari one episode at a time searched
    the sampled model and a batch of episodes the determinized one; on the deterministic tasks every model is the task."""
    if stored.get("task.name") not in ("minatar", "atari"):
        return AS_NEW
    return "determinized" if stored.get("planner.batch_episodes", 1) > 1 else "sampled"


@dataclass
class TaskConfig:
    """The env (:func:`torchrl_reg.planning.make_task`) and the episode's move cap."""

    #: dchain, frozenlake, minatar or atari
    name: str = "dchain"
    #: D-chain: number of states D
    length: int = 10
    #: D-chain: reward R_f at the chain's end
    final_reward: float = 0.5
    #: FrozenLake map (4x4, 8x8)
    map_name: str = "8x8"
    #: MinAtar or Atari game
    game: str = "breakout"
    #: MinAtar / Atari: probability that the env repeats the last action
    sticky_action_prob: float = 0.0
    #: Atari: emulator frames per move
    frame_skip: int = 4
    #: moves per episode at most
    max_steps: int = 200

    #: The keys only some tasks read (a value given to one the task ignores is refused).
    read_only_if: ClassVar[ReadOnlyIf] = {
        "length": ("name", ("dchain",)), "final_reward": ("name", ("dchain",)), "map_name": ("name", ("frozenlake",)),
        "game": ("name", ("minatar", "atari")), "sticky_action_prob": ("name", ("minatar", "atari")),
        "frame_skip": ("name", ("atari",)),
    }

    @staticmethod
    def check_group(cfg: DictConfig) -> None:
        """The task and its keys: a D-chain of at least 2 states, a FrozenLake map gymnasium builds by name, a MinAtar
        game that exists, an Atari game the emulator has a ROM for, probabilities in [0, 1]."""
        task = cfg.task
        check_choice("task.name", task.name, TASKS)
        check_count("task.max_steps", task.max_steps)
        if task.name == "dchain":
            check_count("task.length", task.length, 2)
            check_range("task.final_reward", task.final_reward)
        if task.name == "frozenlake":
            from gymnasium.envs.toy_text.frozen_lake import MAPS  # the maps FrozenLake-v1 builds by name

            check_choice("task.map_name", task.map_name, sorted(MAPS))
        if task.name in ("minatar", "atari"):  # its simulator installed: the extra named before anything else
            require_extra(task.name, f"task.name={task.name!r}")
        if task.name == "minatar":
            check_choice("task.game", task.game.lower(), [g.lower() for g in MINATAR_GAMES])
        if task.name in ("minatar", "atari"):
            check_range("task.sticky_action_prob", task.sticky_action_prob, 0.0, 1.0)
        if task.name == "atari":
            check_count("task.frame_skip", task.frame_skip)
            from ale_py import roms  # the emulator's games, by the ROM id make_task loads

            check_choice("task.game", task.game.lower(), roms.get_all_rom_ids())


@dataclass
class PlannerConfig:
    """The search (:func:`torchrl_reg.planning.make_search`'s arguments) and its budget per move."""

    # (its key doc is generated from the algorithm table: _with_knobs)
    algorithm: str = "ments"
    #: simulations per move (the ensemble model's total over its futures)
    simulations: int = 200
    # then one key per knob of the algorithm table (torchrl_reg.planning.KNOB_TABLE: tau, eps, alpha, beta_0, c, ...;
    # _with_knobs): each algorithm reads its own (KNOBS), null takes the knob's default and a set knob the algorithm
    # does not read is refused
    #: the move played: search_value, bellman_value or most_visited (null: the algorithm's own)
    recommend: Optional[str] = default_of(make_search, "recommend")
    #: discount of the tree and the rollouts
    gamma: float = default_of(make_search, "gamma")
    #: initial value of untried actions when the evaluator gives none
    q_init: float = default_of(make_search, "q_init")
    #: the model searched: sampled (fresh outcomes at every chance visit), determinized (one sampled future per move),
    #: ensemble (planner.futures futures per move, roots combined) or oracle (the env's own stream: a diagnostic)
    model: str = DEFAULT_MODEL
    #: ensemble: determinized futures per move (>= 2, dividing planner.simulations: each searches simulations /
    #: futures); 1 for the other models
    futures: int = 1
    #: episodes played at once (>1: one batched search per move on dchain, frozenlake and minatar; one single-tree
    #: search per episode on atari)
    batch_episodes: int = 1

    #: Keys added after planning run directories were written without them: ``batch_episodes`` came with the batched
    #: mode (before it, one episode at a time); ``model`` with the model knob (a function of the stored config:
    #: :func:`_model_before`); ``futures`` with the ensemble model (before it, one future, the only value another
    #: model takes). A knob of the algorithm table is added unset (``None``) when a stored config lacks it: no
    #: algorithm read it when that run was written (_with_knobs). :func:`~torchrl_reg.run.rundir.resume_rules` reads them.
    added_keys: ClassVar[Mapping[str, Any]] = {
        "batch_episodes": 1, "futures": 1, "model": lambda stored: _model_before(stored),
    }

    @staticmethod
    def check_group(cfg: DictConfig) -> None:
        """The algorithm and the knobs it reads (:func:`~torchrl_reg.planning.algorithms.algorithm_knobs`: a knob it
        does not read is refused; its range is the algorithm table's, :func:`~torchrl_reg.planning.algorithms.check_knob`), the model it plans
        in on the task (:func:`~torchrl_reg.planning.tasks.check_model`) and its futures
        (:func:`~torchrl_reg.planning.ensemble.check_futures`), the budget, discount and recommendation."""
        task, planner = cfg.task, cfg.planner
        check_choice("planner.algorithm", planner.algorithm, PLANNERS)
        check_count("planner.simulations", planner.simulations)
        check_count("planner.batch_episodes", planner.batch_episodes)
        check_choice("planner.model", planner.model, MODELS)
        check_futures(planner.model, planner.futures, planner.simulations)
        if planner.batch_episodes > 1 and planner.algorithm not in ALGORITHMS:
            raise ValueError(
                f"planner.batch_episodes={planner.batch_episodes} batches searches; planner.algorithm={planner.algorithm!r} "
                "does not search: use planner.batch_episodes=1"
            )
        if planner.algorithm in ALGORITHMS:
            try:  # the single-tree search plans in every model it is offered; the batched one where it can, else one tree each
                check_model(task.name, planner.model, batched=False)
            except ValueError as err:
                raise ValueError(f"planner.model={planner.model!r} on task.name={task.name!r}: {err}") from None
            knobs = algorithm_knobs(planner.algorithm, {k: planner[k] for k in KNOB_DEFAULTS}, prefix="planner.")
            for name, value in knobs.items():
                check_knob(name, value, prefix="planner.")
        check_range("planner.gamma", planner.gamma, 0.0, 1.0)
        check_range("planner.q_init", planner.q_init)
        if planner.recommend is not None:
            check_choice("planner.recommend", planner.recommend, RECOMMENDATIONS)
        if planner.algorithm in ALGORITHMS:
            trees, nodes, node_bytes = tree_memory(cfg)
            check_memory("planner.simulations", planner.simulations, trees * nodes * node_bytes,
                         f"search trees: {trees} trees x {nodes} nodes x {node_bytes} B")


#: Actions of each task (MinAtar's full set, ALE's full set) and bytes of one node's saved state (the D-chain's and
#: FrozenLake's position; a MinAtar env's state, at most 10 x 10 x 10 cells and its random stream; an ALE emulator
#: snapshot, a few KiB, counted as 32 KiB).
_TASK_ACTIONS = {"dchain": 2, "frozenlake": 4, "minatar": 6, "atari": 18}
_TASK_STATE_BYTES = {"dchain": 8, "frozenlake": 8, "minatar": 4 << 10, "atari": 32 << 10}


def tree_memory(cfg: DictConfig) -> tuple[int, int, int]:
    """``(trees, nodes per tree, bytes per node)`` that a move of the planning config ``cfg`` holds at once: an upper
    estimate. ``trees = planner.batch_episodes * planner.futures`` (the batched search holds the trees of a group;
    the ensemble one per future), ``nodes = planner.simulations / planner.futures + 2`` (one node per simulation, the
    root and a spare), and per node, with ``k`` actions: ``64 + 56 k`` bytes of statistics (a node's value, visits,
    flags; per edge visits, rewards, three values, a child), 256 bytes of Python objects, the node's saved state, and
    under a model with chance nodes (``planner.model=sampled``) in the batched search ``8 k n`` bytes of outcome slots (``n`` the simulations per
    tree: each chance edge keeps a slot per simulation)."""
    task, planner = cfg.task, cfg.planner
    k = _TASK_ACTIONS[task.name]
    per_tree = planner.simulations // planner.futures
    node = 64 + 56 * k + 256 + _TASK_STATE_BYTES[task.name]
    if get_model(planner.model).chance and planner.batch_episodes > 1:
        node += 8 * k * per_tree
    return planner.batch_episodes * planner.futures, per_tree + 2, node


def _with_knobs(cls: type) -> type:
    """``cls`` with one key per knob of :data:`~torchrl_reg.planning.algorithms.KNOB_TABLE` after ``simulations``
    (``None``: the knob's default), so that the config offers every knob the table declares, and no other; its
    class attributes (``added_keys``, ``check_group``) kept."""
    own = [(f.name, f.type, field(default=f.default) if f.default is not MISSING else field(default_factory=f.default_factory))
           for f in fields(cls)]
    at = [name for name, *_ in own].index("simulations") + 1
    knobs = [(name, Optional[float], field(default=None)) for name in KNOB_TABLE]
    kept = {k: v for k, v in vars(cls).items()
            if k not in {name for name, *_ in own} and (not k.startswith("__") or k in ("__doc__", "__module__"))}
    # each knob's key doc (``--help``) from the table: what it is and its default; the algorithms the table offers
    kept["generated_field_docs"] = {
        "algorithm": f"{', '.join(ALGORITHMS)} (the algorithm table's rows), or greedy (the Q network's argmax, no search)",
        **{name: f"{knob.doc}; read by {', '.join(a for a, reads in KNOBS.items() if name in reads)} (null: {knob.default:g})"
           for name, knob in KNOB_TABLE.items()},
    }
    # a knob added to the table after a run directory was written resumes unset (its default: no algorithm read it)
    kept["added_keys"] = {**{name: None for name in KNOB_TABLE}, **cls.added_keys}
    return make_dataclass(cls.__name__, own[:at] + knobs + own[at:], namespace=kept)


PlannerConfig = _with_knobs(PlannerConfig)


@dataclass
class EvaluatorConfig:
    """Leaf evaluation: ``rollout`` (random, ``rollout_steps``) or ``q_network`` (from an M-DQN ``checkpoint``)."""

    #: rollout (random actions) or q_network
    kind: str = "rollout"
    #: moves per random rollout
    rollout_steps: int = default_of(RandomRollout, "max_steps")
    #: checkpoint.pt of a recipes/m_dqn.py MinAtar run, its config.yaml beside it
    checkpoint: Optional[str] = None
    #: temperature of the network's prior and soft leaf value
    prior_tau: float = default_of(QNetworkEvaluator, "tau")
    #: leaf value: soft (tau logsumexp Q/tau) or max
    value: str = default_of(QNetworkEvaluator, "value")
    #: untried actions start at: q (the network's Q), log_prior, or none (planner.q_init)
    init: str = default_of(QNetworkEvaluator, "init")

    read_only_if: ClassVar[ReadOnlyIf] = {
        "rollout_steps": ("kind", ("rollout",)),
        **dict.fromkeys(("checkpoint", "prior_tau", "value", "init"), ("kind", ("q_network",))),
    }

    @staticmethod
    def check_group(cfg: DictConfig) -> None:
        """The leaf evaluator, and the Q network a ``q_network`` evaluator or the ``greedy`` planner reads (MinAtar
        only, from an M-DQN run's ``checkpoint.pt``)."""
        task, planner, evaluator = cfg.task, cfg.planner, cfg.evaluator
        check_choice("evaluator.kind", evaluator.kind, PLANNING_EVALUATORS)
        if evaluator.kind == "q_network" or planner.algorithm == "greedy":
            if task.name != "minatar":
                raise ValueError(
                    f"a Q network (evaluator.kind={evaluator.kind!r}, planner.algorithm={planner.algorithm!r}) needs "
                    f"task.name='minatar', got {task.name!r}"
                )
            if evaluator.kind != "q_network":  # the network's argmax: its evaluator's keys are the ones read
                raise ValueError(
                    f"planner.algorithm='greedy' plays the Q network's argmax: it needs evaluator.kind='q_network', "
                    f"got {evaluator.kind!r}"
                )
            if not evaluator.checkpoint:
                raise ValueError("evaluator.checkpoint must name an M-DQN run's checkpoint.pt (recipes/m_dqn.py env=minatar)")
            if not Path(evaluator.checkpoint).is_file():
                raise FileNotFoundError(f"evaluator.checkpoint={evaluator.checkpoint!r} is not a file")
            check_range("evaluator.prior_tau", evaluator.prior_tau, 0.0, low_inclusive=False)
            check_choice("evaluator.value", evaluator.value, QNetworkEvaluator.VALUES)
            check_choice("evaluator.init", evaluator.init, QNetworkEvaluator.INITS)
        else:
            check_count("evaluator.rollout_steps", evaluator.rollout_steps, 0)
