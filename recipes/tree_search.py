"""Planning with MENTS, DENTS, BTS or UCT: search before every move, act, repeat (no training).

    python recipes/tree_search.py                                         # MENTS on the D-chain (R_f = 0.5)
    python recipes/tree_search.py planner.algorithm=dents task.final_reward=1.0
    python recipes/tree_search.py tree_search_preset=frozenlake planner.simulations=2000
    python recipes/tree_search.py tree_search_preset=minatar evaluator.checkpoint=runs/m_dqn/.../checkpoint.pt
    python recipes/tree_search.py tree_search_preset=atari task.game=pong
    python recipes/tree_search.py planner.batch_episodes=16 episodes=64  # 16 episodes at a time, batched search
    python recipes/tree_search.py tree_search_preset=minatar planner.model=ensemble planner.futures=5 planner.simulations=50 ...

Searches: :func:`torchrl_reg.planning.make_search` (Xiao et al., Maximum Entropy Monte-Carlo
Planning, NeurIPS 2019; Painter et al., Monte Carlo Tree Search with Boltzmann Exploration,
NeurIPS 2023, arXiv:2404.07732). ``planner.algorithm=greedy`` acts by the Q network's argmax
without searching (the baseline the searches with that network are compared to).

Tasks (``tree_search_preset=``, :func:`torchrl_reg.planning.make_task`): ``dchain`` (default),
``frozenlake`` (8x8, deterministic), ``minatar`` (a Q network trained by ``recipes/m_dqn.py`` gives the
leaf values and the initial values of untried actions: ``evaluator.checkpoint`` is that run's
``checkpoint.pt``, its ``config.yaml`` beside it) and ``atari`` (random rollouts).

``planner.model`` is the model the search plans in (:data:`torchrl_reg.planning.models.MODELS`; it matters on
MinAtar and Atari, whose envs draw at random): ``sampled`` (default: fresh outcomes at every chance visit, the
single-tree search's chance nodes), ``determinized`` (one sampled future per move), ``ensemble``
(``planner.futures=K`` determinized futures per move, ``planner.simulations / K`` simulations each, the roots'
visits summed and values averaged: :mod:`torchrl_reg.planning.ensemble`) or ``oracle`` (the env's own stream: a
diagnostic of what the model costs, not a planner). ``planner.batch_episodes=K`` plays K episodes at
once, one batched search over their trees per move (:class:`torchrl_reg.planning.BatchedTreeSearch`) where it plans
in the model (dchain, frozenlake and minatar, in every model; the sampled one with chance nodes), else one single-tree
search per episode (atari); it changes how many episodes run at once, not the model.

The loop is :func:`torchrl_reg.loops.planning.plan`, its checks
:func:`torchrl_reg.configs.validate_planning_config`; this file declares the config. The run-directory contract
(config.yaml, checkpoint.pt after every episode or group of episodes and, with the group in progress, every
``checkpoint.interval_s`` seconds, resume, CSV logs, metrics.json, returns.png, stop signals and exit status 75) is
:class:`torchrl_reg.run.Run`'s.
"""
from __future__ import annotations

import torchrl_reg  # noqa: F401  first: a recipe run imports nothing from the working directory

from dataclasses import MISSING, dataclass, field, fields, make_dataclass
from typing import ClassVar, Optional

from torchrl_reg.configs import PlanningConfig, default_of, recipe_schema
from torchrl_reg.loops import recipe_entry
from torchrl_reg.planning import QNetworkEvaluator, RandomRollout, make_search, make_tensor_task
from torchrl_reg.planning.algorithms import KNOB_TABLE
from torchrl_reg.validation import ReadOnlyIf


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


@dataclass
class PlannerConfig:
    """The search (:func:`torchrl_reg.planning.make_search`'s arguments) and its budget per move."""

    #: ments, dents, bts, uct, or greedy (the Q network's argmax, no search)
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
    model: str = default_of(make_tensor_task, "model")
    #: ensemble: determinized futures per move (>= 2, dividing planner.simulations: each searches simulations /
    #: futures); 1 for the other models
    futures: int = 1
    #: episodes played at once (>1: one batched search per move on dchain, frozenlake and minatar; one single-tree
    #: search per episode on atari)
    batch_episodes: int = 1


def _with_knobs(cls: type) -> type:
    """``cls`` with one key per knob of :data:`~torchrl_reg.planning.algorithms.KNOB_TABLE` after ``simulations``
    (``None``: the knob's default), so that the config offers every knob the table declares, and no other."""
    own = [(f.name, f.type, field(default=f.default) if f.default is not MISSING else field(default_factory=f.default_factory))
           for f in fields(cls)]
    at = [name for name, *_ in own].index("simulations") + 1
    knobs = [(name, Optional[float], field(default=None)) for name in KNOB_TABLE]
    # each knob's key doc (``--help``) from the table: what it is and its default
    docs = {name: f"{knob.doc} (null: {knob.default:g})" for name, knob in KNOB_TABLE.items()}
    return make_dataclass(cls.__name__, own[:at] + knobs + own[at:],
                          namespace={"__doc__": cls.__doc__, "__module__": cls.__module__, "generated_field_docs": docs})


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


TreeSearchConfig = recipe_schema("tree_search", PlanningConfig, task=TaskConfig, planner=PlannerConfig, evaluator=EvaluatorConfig)


# ``train`` by the recipe contract (torchrl_reg.run: sweeps call recipes by it), though nothing is trained; ``validate``:
# the schema, torchrl_reg.configs.validate_planning_config and the keys the task or the evaluator leaves unread
validate, train, main = recipe_entry("tree_search", TreeSearchConfig)
train.__doc__ = "Play ``cfg.episodes`` episodes, searching before every move; returns the metrics (also in ``<run_dir>/metrics.json``)."

if __name__ == "__main__":
    main()
