"""Tree search: the algorithms of the parts table (:data:`ALGORITHMS`; the README lists them) as one family of parts
with two search loops.

The parts (:mod:`.algorithms`: the table of which tree policy, backup and recommendation make each
algorithm, its knobs and their defaults) are objects with a scalar and a row form: the tree policies
of :mod:`.scores` (``select`` / ``select_rows``) and the backups of :mod:`.backups` (``update`` /
``update_rows``), functions of the records of :mod:`.records` (:class:`NodeStats`, :class:`EdgeStats`) that return
values (:class:`BackupResult`): the loops do every write. Two loops take them: :class:`TreeSearch` (:mod:`.search`, one tree in NumPy
arrays on plain floats, :mod:`.tree`; the reference, and the faster for a single tree) and
:class:`BatchedTreeSearch` (:mod:`.batched`, B trees in tensors, after mctx; it reproduces :class:`TreeSearch` draw
for draw at B = 1). Both keep chance nodes for stochastic simulators, by the rule of :mod:`.backups`. :func:`make_search`
(:mod:`.factory`) builds either from an algorithm's name.

Models: :mod:`.simulators` (save/restore adapters for one tree: D-chain, synthetic trees, FrozenLake,
MinAtar, ALE), :mod:`.tensor_simulators` (pure tensor models of a batch of states) and
:mod:`.snapshot_simulators` (MinAtar and ALE for the batched loop: states are handles into a store
of emulator snapshots). Leaf evaluation: :mod:`.evaluators` (one evaluator object serves both loops). The tasks a planner acts in (one object per task, which gives both loops their model of it):
:mod:`.tasks`; the model it plans in (``sampled``, ``determinized``, ``ensemble``, ``oracle``): :mod:`.models`; the ensemble's
combined root: :mod:`.ensemble`. Exact values of the test problems, with chance (:class:`~.simulators.ChanceTree`,
slippery FrozenLake) and without: :mod:`.exact`.
"""
from __future__ import annotations

from torchrl_reg.planning.algorithms import ALGORITHMS, KNOB_DEFAULTS, KNOBS, RECOMMENDATIONS, parts
from torchrl_reg.planning.backups import BellmanBackup, MeanBackup, PowerMeanBackup, SoftmaxBackup, TsallisBackup
from torchrl_reg.planning.batched import BatchedTreeSearch
from torchrl_reg.planning.evaluators import QNetworkEvaluator, RandomRollout
from torchrl_reg.planning.exact import chance_tree_values, dchain_flip_temperature, dchain_soft_q, finite_horizon_q, synthetic_tree_q
from torchrl_reg.planning.factory import make_search
from torchrl_reg.planning.scores import BoltzmannScore, DENTSScore, E2WScore, TsallisScore, UCB1Score
from torchrl_reg.planning.search import TreeSearch
from torchrl_reg.planning.simulators import (
    ALESimulator,
    ChanceTree,
    DChain,
    FrozenLakeSimulator,
    MinAtarSimulator,
    Simulator,
    SyntheticTree,
    as_simulator,
)
from torchrl_reg.planning.snapshot_simulators import BatchedALE, BatchedMinAtar
from torchrl_reg.planning.models import MODELS, Model
from torchrl_reg.planning.records import BackupResult, EdgeStats, NodeStats
from torchrl_reg.planning.tasks import TASKS, make_task, make_tensor_task
from torchrl_reg.planning.tensor_simulators import (
    TensorChanceTree,
    TensorDChain,
    TensorFrozenLake,
    TensorSimulator,
    TensorSyntheticTree,
)

__all__ = [
    # the parts table and the factory of both loops
    "ALGORITHMS",
    "KNOBS",
    "KNOB_DEFAULTS",
    "RECOMMENDATIONS",
    "parts",
    "make_search",
    # the two loops
    "TreeSearch",
    "BatchedTreeSearch",
    # tree policies and backups (scalar and row forms)
    "E2WScore",
    "BoltzmannScore",
    "DENTSScore",
    "UCB1Score",
    "TsallisScore",
    "SoftmaxBackup",
    "BellmanBackup",
    "MeanBackup",
    "PowerMeanBackup",
    "TsallisBackup",
    # the records the parts read and return
    "NodeStats",
    "EdgeStats",
    "BackupResult",
    # leaf evaluation
    "RandomRollout",
    "QNetworkEvaluator",
    # models
    "Simulator",
    "as_simulator",
    "DChain",
    "SyntheticTree",
    "ChanceTree",
    "FrozenLakeSimulator",
    "MinAtarSimulator",
    "ALESimulator",
    "TensorSimulator",
    "TensorDChain",
    "TensorSyntheticTree",
    "TensorChanceTree",
    "TensorFrozenLake",
    "BatchedMinAtar",
    "BatchedALE",
    # tasks and the models a planner plans in
    "TASKS",
    "MODELS",
    "Model",
    "make_task",
    "make_tensor_task",
    # exact values
    "synthetic_tree_q",
    "dchain_soft_q",
    "dchain_flip_temperature",
    "chance_tree_values",
    "finite_horizon_q",
]
