"""The parts table of the tree searches: which tree policy, backup and recommendation make each algorithm.

Both search loops (:class:`~torchrl_reg.planning.search.TreeSearch`, one tree on plain floats, and
:class:`~torchrl_reg.planning.batched.BatchedTreeSearch`, B trees in tensors) take the same part
objects: a score module (``select`` / ``select_rows``), a backup (``update`` / ``update_rows``) and a
recommendation, functions of the records of :mod:`~torchrl_reg.planning.records` that return values. The table below
is data, :data:`TABLE` (one :class:`Algorithm` per row), and every knob's default and range is declared once, in
:data:`KNOB_TABLE`; the parts say what they read (a score's ``reads``, a backup's ``values``, ``entropy``, ``reads``
and ``reads_rows``), so the engines ask them instead of their types.
:func:`parts` assembles an algorithm's parts from its knobs, :func:`algorithm_of` finds the row that a tree policy and
a backup make and refuses parts that no row declares or whose shared knobs disagree (both loops call it, before any
simulation), and :func:`~torchrl_reg.planning.factory.make_search` builds either loop from them. A row declares its
parts' classes, the backup's fixed settings and its knobs: which parts go together is the table's, not a rule kept
elsewhere.

============  ======================  ===================================  ==================  =============
algorithm     tree policy             backup                               recommendation      knobs
============  ======================  ===================================  ==================  =============
``ments``     :class:`E2WScore`       :class:`SoftmaxBackup` (``tau``)     ``search_value``    tau, eps
``bts``       :class:`BoltzmannScore` :class:`BellmanBackup`               ``search_value``    alpha, eps
``dents``     :class:`DENTSScore`     :class:`BellmanBackup` (entropy)     ``search_value``    alpha, beta_0, eps
``uct``       :class:`UCB1Score`      :class:`MeanBackup`                  ``most_visited``    c
``power_uct`` :class:`UCB1Score`      :class:`PowerMeanBackup` (``p``)     ``most_visited``    c, p
``tents``     :class:`TsallisScore`   :class:`TsallisBackup` (``tau``)     ``search_value``    tau, eps
============  ======================  ===================================  ==================  =============

``search_value`` is the argmax of the backup's action values over tried root actions (soft for MENTS, Tsallis for
TENTS, Bellman for BTS and DENTS), ``bellman_value`` the argmax of the Bellman values (kept for this when the
backup does not keep them), ``most_visited`` the argmax of the root's visit counts.

References:

* [MENTS] Xiao, Huang, Mei, Schuurmans, Muller. Maximum Entropy Monte-Carlo Planning. NeurIPS 2019,
  Section 4 (Algorithm MENTS: E2W selection, softmax backup, argmax-soft-value recommendation).
* [DENTS] Painter, Baioumy, Hawes, Lacerda. Monte Carlo Tree Search with Boltzmann Exploration.
  NeurIPS 2023, arXiv:2404.07732, Section 4 (BTS, DENTS).
* [UCT] Kocsis, Szepesvari. Bandit based Monte-Carlo Planning. ECML 2006.
* [Power-UCT] Dam, Klink, D'Eramo, Peters, Pajarinen. Generalized Mean Estimation in Monte-Carlo Tree Search.
  IJCAI 2020, arXiv:1911.00384: UCB1 on ``Q`` and the power-mean backup, for any power ``p >= 1`` (``p = 1``: UCT's
  mean, ``p -> inf``: the max). The paper tunes ``p`` per problem; the default here, ``p = 2``, is a choice between
  the two ends (the value Dam, Maillard and Kaufmann's Stochastic-Power-UCT, arXiv:2406.02235, reports doing well
  across their problems).
* [TENTS] Dam, D'Eramo, Peters, Pajarinen. Convex Regularization in Monte-Carlo Tree Search. ICML 2021,
  arXiv:2007.00391, Sec. 4: E3W over sparsemax (:class:`TsallisScore`), the Tsallis-entropy backup ``tau spmax(Q / tau)``
  (:class:`TsallisBackup`), the argmax of the backed-up values recommended; one temperature ``tau`` for both, as MENTS.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torchrl_reg.planning.backups import Backup, BellmanBackup, MeanBackup, PowerMeanBackup, SoftmaxBackup, TsallisBackup
from torchrl_reg.planning.knobs import KNOB_DEFAULTS, KNOB_TABLE, Knob, check_knob
from torchrl_reg.planning.scores import BoltzmannScore, DENTSScore, E2WScore, TreePolicy, TsallisScore, UCB1Score
from torchrl_reg.validation import UnreadValue

__all__ = [
    "ALGORITHMS", "Algorithm", "KNOBS", "KNOB_DEFAULTS", "KNOB_TABLE", "Knob", "RECOMMENDATIONS", "TABLE", "Policy", "algorithm_knobs",
    "algorithm_of", "check_knob", "parts",
]

#: A tree policy: any score module of :mod:`~torchrl_reg.planning.scores` (its base class)
Policy = TreePolicy


@dataclass(frozen=True)
class Algorithm:
    """One row of the parts table: the tree policy's and the backup's classes (each built from the knobs its
    constructor takes, the backup also from the row's fixed ``backup_options``), the recommendation, and the knobs it
    reads (names in :data:`KNOB_TABLE`). The row is also the compatibility rule: a tree policy and a backup go together
    where some row has their classes and options (:meth:`accepts`)."""

    #: the tree policy's class
    tree_policy: type
    #: the backup's class
    backup: type
    #: the algorithm's own recommendation (one of :data:`RECOMMENDATIONS`)
    recommend: str
    #: the knobs it reads
    knobs: tuple[str, ...]
    #: the backup's fixed settings (DENTS's ``entropy=True``)
    backup_options: Mapping[str, Any] = field(default_factory=dict)

    def parts(self, knobs: dict[str, float]) -> tuple[Policy, Backup, str]:
        """``(tree policy, backup, recommendation)`` from the algorithm's knobs (all of them, filled in); each part gets
        those its constructor takes (Power-UCT's ``p`` is its backup's, MENTS's ``tau`` both's)."""
        return _build(self.tree_policy, knobs), _build(self.backup, {**knobs, **self.backup_options}), self.recommend

    def accepts(self, policy: Any, backup: Any) -> bool:
        """Whether ``policy`` and ``backup`` are this row's parts: its classes, its backup options, and one value of
        each knob the two parts both hold (MENTS explores and backs up at one temperature)."""
        if type(policy) is not self.tree_policy or type(backup) is not self.backup:
            return False
        if any(getattr(backup, name, None) != value for name, value in self.backup_options.items()):
            return False
        return all(getattr(policy, k) == getattr(backup, k) for k in self.knobs if hasattr(policy, k) and hasattr(backup, k))

    def describe(self) -> str:
        options = ", ".join(f"{k}={v}" for k, v in self.backup_options.items())
        return f"{self.tree_policy.__name__} with {self.backup.__name__}({options})"


def _build(part: type, knobs: Mapping[str, Any]) -> Any:
    takes = inspect.signature(part).parameters
    return part(**{k: v for k, v in knobs.items() if k in takes})


#: The parts table (module docstring): each algorithm by name.
TABLE: dict[str, Algorithm] = {
    "ments": Algorithm(E2WScore, SoftmaxBackup, "search_value", ("tau", "eps")),
    "bts": Algorithm(BoltzmannScore, BellmanBackup, "search_value", ("alpha", "eps")),
    "dents": Algorithm(DENTSScore, BellmanBackup, "search_value", ("alpha", "beta_0", "eps"), {"entropy": True}),
    "uct": Algorithm(UCB1Score, MeanBackup, "most_visited", ("c",)),
    "power_uct": Algorithm(UCB1Score, PowerMeanBackup, "most_visited", ("c", "p")),
    "tents": Algorithm(TsallisScore, TsallisBackup, "search_value", ("tau", "eps")),
}

#: the algorithms :func:`parts` assembles
ALGORITHMS = tuple(TABLE)
#: what the root's recommended action maximizes: the backed-up value, the Bellman value or the visit count
RECOMMENDATIONS = ("search_value", "bellman_value", "most_visited")
#: the knobs each algorithm reads; a set knob it does not read is refused
KNOBS: dict[str, tuple[str, ...]] = {name: algorithm.knobs for name, algorithm in TABLE.items()}


def algorithm_knobs(algorithm: str, given: dict[str, float | None], *, prefix: str = "") -> dict[str, float]:
    """The knobs of ``algorithm`` with their defaults filled in; a knob it does not read that is set is refused.

    ``given`` maps knob names to values or ``None`` (not set); ``prefix`` names them in the error
    (``"planner."`` for a recipe's config).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got algorithm={algorithm!r}")
    reads = KNOBS[algorithm]
    foreign = {k: v for k, v in given.items() if v is not None and k not in reads}
    if foreign:
        shown = ", ".join(f"{prefix}{k}={v}" for k, v in foreign.items())
        raise UnreadValue(
            f"{shown}: not read by {algorithm} (it reads {', '.join(prefix + k for k in reads)}); leave the other "
            "algorithms' knobs unset",
            {f"{prefix}{k}": "null" for k in foreign},
        )
    return {k: KNOB_DEFAULTS[k] if given.get(k) is None else given[k] for k in reads}


def parts(algorithm: str, **knobs: float | None) -> tuple[Policy, Backup, str]:
    """``(tree policy, backup, recommendation)`` of ``algorithm`` (the module's table) from its knobs
    (:data:`KNOBS`; a knob left out or ``None`` takes :data:`KNOB_DEFAULTS`, a knob of another algorithm is refused;
    the parts check each value's range, :data:`KNOB_TABLE`)."""
    filled = algorithm_knobs(algorithm, knobs)  # refuses an unknown algorithm first
    return TABLE[algorithm].parts(filled)


def algorithm_of(policy: Any, backup: Any, recommend: str) -> str:
    """The row of the table whose parts ``policy`` and ``backup`` are (:meth:`Algorithm.accepts`), refusing parts that no
    row declares (a ``TypeError`` for an object that is no tree policy or backup, a ``ValueError`` for parts that do not
    go together, naming the rows) and an unknown recommendation."""
    if not isinstance(policy, TreePolicy):
        raise TypeError(f"the tree policy must be a score of torchrl_reg.planning.scores (a TreePolicy), got {type(policy).__name__}")
    if not isinstance(backup, Backup):
        raise TypeError(f"backup must be a Backup of torchrl_reg.planning.backups, got {backup!r}")
    if recommend not in RECOMMENDATIONS:
        raise ValueError(f"recommend must be one of {RECOMMENDATIONS}, got recommend={recommend!r}")
    for name, row in TABLE.items():
        if row.accepts(policy, backup):
            return name
    rows = "; ".join(f"{name}: {row.describe()}" for name, row in TABLE.items())
    raise ValueError(
        f"{type(policy).__name__} with {backup!r} is no row of the algorithm table (the parts go together as its rows "
        f"declare them, with one value of a knob both parts hold): {rows}"
    )
