"""Maximum-entropy Monte-Carlo tree search (MENTS) with DENTS, BTS and UCT on one array-based tree.

Parts: :mod:`.scores` (tree policies), :mod:`.backups`, :mod:`.tree`, :mod:`.search` (the loop and
:func:`make_search`), :mod:`.evaluators` (leaf evaluation), :mod:`.simulators` (save/restore
adapters), :mod:`.exact` (exact values of the test problems) and :mod:`.tasks` (the envs a planner
acts in, :func:`make_task`). :mod:`.batched` searches B trees at once in tensors (policies and
backups passed in) over the pure tensor simulators of :mod:`.tensor_simulators`, and over MinAtar
and ALE through :mod:`.snapshot_simulators` (states are handles into a store of emulator snapshots,
each with a fresh random stream from the planner's seed: the search plans in a determinized model).
"""
from __future__ import annotations

from torchrl_reg.planning.batched import BatchedTree, BatchedTreeSearch, BellmanBackup, MeanBackup, SoftmaxBackup, make_batched_search
from torchrl_reg.planning.backups import bellman_value, policy_entropy, softmax_value
from torchrl_reg.planning.evaluators import QNetworkEvaluator, RandomRollout, TensorQNetworkEvaluator, TensorRandomRollout
from torchrl_reg.planning.exact import dchain_flip_temperature, dchain_soft_q, synthetic_tree_q
from torchrl_reg.planning.scores import BoltzmannScore, DENTSScore, E2WScore, UCB1Score, mixed_boltzmann_probs
from torchrl_reg.planning.search import ALGORITHMS, KNOB_DEFAULTS, KNOBS, RECOMMENDATIONS, TreeSearch, algorithm_knobs, make_search
from torchrl_reg.planning.simulators import (
    ALESimulator,
    DChain,
    FrozenLakeSimulator,
    MinAtarSimulator,
    Simulator,
    SyntheticTree,
    as_simulator,
    check_simulator,
)
from torchrl_reg.planning.snapshot_simulators import BatchedALE, BatchedMinAtar, SnapshotStore, planner_rng
from torchrl_reg.planning.tasks import TASKS, TENSOR_TASKS, make_task, make_tensor_task, tensor_roots
from torchrl_reg.planning.tensor_simulators import TensorDChain, TensorFrozenLake, TensorSimulator, TensorSyntheticTree
from torchrl_reg.planning.tree import SearchTree

__all__ = [
    "BatchedALE",
    "BatchedMinAtar",
    "SnapshotStore",
    "planner_rng",
    "make_batched_search",
    "TensorQNetworkEvaluator",
    "algorithm_knobs",
    "KNOB_DEFAULTS",
    "KNOBS",
    "TensorSyntheticTree",
    "TensorSimulator",
    "TensorDChain",
    "TensorFrozenLake",
    "TensorRandomRollout",
    "SoftmaxBackup",
    "MeanBackup",
    "BellmanBackup",
    "BatchedTreeSearch",
    "BatchedTree",
    "ALGORITHMS",
    "RECOMMENDATIONS",
    "ALESimulator",
    "BoltzmannScore",
    "DChain",
    "DENTSScore",
    "E2WScore",
    "FrozenLakeSimulator",
    "MinAtarSimulator",
    "QNetworkEvaluator",
    "RandomRollout",
    "SearchTree",
    "Simulator",
    "SyntheticTree",
    "TreeSearch",
    "UCB1Score",
    "as_simulator",
    "bellman_value",
    "check_simulator",
    "dchain_flip_temperature",
    "dchain_soft_q",
    "make_search",
    "make_task",
    "TASKS",
    "TENSOR_TASKS",
    "make_tensor_task",
    "tensor_roots",
    "mixed_boltzmann_probs",
    "policy_entropy",
    "softmax_value",
    "synthetic_tree_q",
]
