"""Planning with a tree search of the algorithm table (``planner.algorithm``; the README's method table lists them):
search before every move, act, repeat (no training).

    python recipes/tree_search.py                                         # MENTS on the D-chain (R_f = 0.5)
    python recipes/tree_search.py planner.algorithm=dents task.final_reward=1.0
    python recipes/tree_search.py planner.algorithm=tents planner.tau=0.1
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
those of its groups (:mod:`torchrl_reg.configs.planning`: the task, the planner and the evaluator, each with its
checks); this file declares the config. The run-directory contract
(config.yaml, checkpoint.pt after every episode or group of episodes and, with the group in progress, every
``checkpoint.interval_s`` seconds, resume, CSV logs, metrics.json, returns.png, stop signals and exit status 75) is
:class:`torchrl_reg.run.Run`'s.
"""
from __future__ import annotations

import torchrl_reg  # noqa: F401  first: a recipe run imports nothing from the working directory

from torchrl_reg.configs import PlanningConfig, recipe_schema
from torchrl_reg.configs.planning import EvaluatorConfig, PlannerConfig, TaskConfig
from torchrl_reg.loops import recipe_entry


TreeSearchConfig = recipe_schema("tree_search", PlanningConfig, task=TaskConfig, planner=PlannerConfig, evaluator=EvaluatorConfig)


# ``train`` by the recipe contract (torchrl_reg.run: sweeps call recipes by it), though nothing is trained; ``validate``:
# the schema, the groups' checks (torchrl_reg.configs.planning) and the keys the task or the evaluator leaves unread
validate, train, main = recipe_entry("tree_search", TreeSearchConfig)
train.__doc__ = "Play ``cfg.episodes`` episodes, searching before every move; returns the metrics (also in ``<run_dir>/metrics.json``)."

if __name__ == "__main__":
    main()
