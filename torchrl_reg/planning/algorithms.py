"""The parts table of the tree searches: which tree policy, backup and recommendation make each algorithm.

Both search loops (:class:`~torchrl_reg.planning.search.TreeSearch`, one tree on plain floats, and
:class:`~torchrl_reg.planning.batched.BatchedTreeSearch`, B trees in tensors) take the same part
objects: a score module (``select`` / ``select_rows``), a backup (``update`` / ``update_rows``) and a
recommendation, functions of the records of :mod:`~torchrl_reg.planning.records` that return values. The table below
is data, :data:`TABLE` (one :class:`Algorithm` per row), and every knob's default and range is declared once, in
:data:`KNOB_TABLE`; the parts say what they read (a score's ``reads``, a backup's ``values``, ``entropy``, ``reads``
and ``reads_rows``), so the engines ask them instead of their types.
:func:`parts` assembles an algorithm's parts from its knobs, :func:`check_parts` refuses
parts that disagree (for both loops, before any simulation), and
:func:`~torchrl_reg.planning.factory.make_search` builds either loop from them.

============  ======================  ===================================  ==================  =============
algorithm     tree policy             backup                               recommendation      knobs
============  ======================  ===================================  ==================  =============
``ments``     :class:`E2WScore`       :class:`SoftmaxBackup` (``tau``)     ``search_value``    tau, eps
``bts``       :class:`BoltzmannScore` :class:`BellmanBackup`               ``search_value``    alpha, eps
``dents``     :class:`DENTSScore`     :class:`BellmanBackup` (entropy)     ``search_value``    alpha, beta_0, eps
``uct``       :class:`UCB1Score`      :class:`MeanBackup`                  ``most_visited``    c
``power_uct`` :class:`UCB1Score`      :class:`PowerMeanBackup` (``p``)     ``most_visited``    c, p
============  ======================  ===================================  ==================  =============

``search_value`` is the argmax of the backup's action values over tried root actions (soft for MENTS,
Bellman for BTS and DENTS), ``bellman_value`` the argmax of the Bellman values (kept for this when the
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
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

from torchrl_reg.planning.backups import Backup, BellmanBackup, MeanBackup, PowerMeanBackup, SoftmaxBackup
from torchrl_reg.planning.scores import BoltzmannScore, DENTSScore, E2WScore, UCB1Score
from torchrl_reg.validation import check_range

__all__ = [
    "ALGORITHMS", "Algorithm", "KNOBS", "KNOB_DEFAULTS", "KNOB_TABLE", "Knob", "RECOMMENDATIONS", "TABLE", "Policy", "algorithm_knobs",
    "check_knob", "check_parts", "parts",
]


@dataclass(frozen=True)
class Knob:
    """One knob of the algorithms: its default and its range (``> low``, or ``>= low`` where ``low_inclusive``)."""

    #: the value of the knob left out
    default: float
    #: what it is, for the docs and the config's comments
    doc: str
    #: the lowest value accepted
    low: float = 0.0
    #: whether ``low`` itself is accepted
    low_inclusive: bool = True

    def check(self, name: str, value: float) -> float:
        """``value`` if it is in the knob's range, else a ``ValueError`` naming ``name``."""
        return check_range(name, value, self.low, low_inclusive=self.low_inclusive)


@dataclass(frozen=True)
class Algorithm:
    """One row of the parts table: the tree policy class (built from the knobs it reads), the backup (built from
    the algorithm's knobs), the recommendation, and the knobs it reads (names in :data:`KNOB_TABLE`)."""

    #: the tree policy's class: ``tree_policy(**knobs)``
    tree_policy: type
    #: the backup from the algorithm's knobs
    backup: Callable[[dict[str, float]], Backup]
    #: the algorithm's own recommendation (one of :data:`RECOMMENDATIONS`)
    recommend: str
    #: the knobs it reads
    knobs: tuple[str, ...]

    def parts(self, knobs: dict[str, float]) -> tuple[Policy, Backup, str]:
        """``(tree policy, backup, recommendation)`` from the algorithm's knobs (all of them, filled in); the tree policy
        gets those its constructor takes (Power-UCT's ``p`` is its backup's)."""
        takes = inspect.signature(self.tree_policy).parameters
        return self.tree_policy(**{k: v for k, v in knobs.items() if k in takes}), self.backup(knobs), self.recommend


#: Every knob of the algorithms, its default and range, declared once: :func:`~torchrl_reg.planning.factory.make_search`
#: takes them as arguments and the planning recipe's config checks them here.
KNOB_TABLE: dict[str, Knob] = {
    "tau": Knob(1.0, "MENTS's temperature", low_inclusive=False),
    "eps": Knob(0.1, "the E2W exploration of MENTS, BTS and DENTS"),
    "alpha": Knob(1.0, "the search temperature of BTS and DENTS", low_inclusive=False),
    "beta_0": Knob(1.0, "DENTS's initial entropy weight"),
    "c": Knob(math.sqrt(2.0), "the exploration constant of UCT and Power-UCT"),
    "p": Knob(2.0, "Power-UCT's power: its backup's power mean (1: UCT's mean, larger: nearer the max)", low=1.0),
}

#: The parts table (module docstring): each algorithm by name.
TABLE: dict[str, Algorithm] = {
    "ments": Algorithm(E2WScore, lambda k: SoftmaxBackup(tau=k["tau"]), "search_value", ("tau", "eps")),
    "bts": Algorithm(BoltzmannScore, lambda k: BellmanBackup(), "search_value", ("alpha", "eps")),
    "dents": Algorithm(DENTSScore, lambda k: BellmanBackup(entropy=True), "search_value", ("alpha", "beta_0", "eps")),
    "uct": Algorithm(UCB1Score, lambda k: MeanBackup(), "most_visited", ("c",)),
    "power_uct": Algorithm(UCB1Score, lambda k: PowerMeanBackup(p=k["p"]), "most_visited", ("c", "p")),
}

#: the algorithms :func:`parts` assembles
ALGORITHMS = tuple(TABLE)
#: what the root's recommended action maximizes: the backed-up value, the Bellman value or the visit count
RECOMMENDATIONS = ("search_value", "bellman_value", "most_visited")
#: the knobs each algorithm reads; a set knob it does not read is refused
KNOBS: dict[str, tuple[str, ...]] = {name: algorithm.knobs for name, algorithm in TABLE.items()}
#: the value of a knob left out
KNOB_DEFAULTS: dict[str, float] = {name: knob.default for name, knob in KNOB_TABLE.items()}

Policy = E2WScore | DENTSScore | UCB1Score


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
        raise ValueError(
            f"{shown}: not read by {algorithm} (it reads {', '.join(prefix + k for k in reads)}); leave the other "
            "algorithms' knobs unset"
        )
    return {k: KNOB_DEFAULTS[k] if given.get(k) is None else given[k] for k in reads}


def check_knob(name: str, value: float, *, prefix: str = "") -> float:
    """``value`` of knob ``name`` (one of :data:`KNOB_TABLE`) if it is in the knob's range; ``prefix`` names it in the
    error (``"planner."`` for a recipe's config)."""
    return KNOB_TABLE[name].check(prefix + name, value)


def parts(algorithm: str, **knobs: float | None) -> tuple[Policy, Backup, str]:
    """``(tree policy, backup, recommendation)`` of ``algorithm`` (the module's table) from its knobs
    (:data:`KNOBS`; a knob left out or ``None`` takes :data:`KNOB_DEFAULTS`, a knob of another algorithm is refused)."""
    filled = algorithm_knobs(algorithm, knobs)  # refuses an unknown algorithm first
    return TABLE[algorithm].parts(filled)


def check_parts(policy: Policy, backup: Backup, recommend: str) -> None:
    """Refuse parts that disagree: one temperature for MENTS, DENTS's entropy backed up, UCB1 on means, a known recommendation."""
    if not isinstance(policy, (E2WScore, DENTSScore, UCB1Score)):
        raise TypeError(f"the tree policy must be E2WScore, BoltzmannScore, DENTSScore or UCB1Score, got {type(policy).__name__}")
    if not isinstance(backup, Backup):
        raise TypeError(f"backup must be a Backup (SoftmaxBackup, BellmanBackup, MeanBackup, PowerMeanBackup), got {backup!r}")
    if recommend not in RECOMMENDATIONS:
        raise ValueError(f"recommend must be one of {RECOMMENDATIONS}, got recommend={recommend!r}")
    if isinstance(policy, DENTSScore) != (isinstance(backup, BellmanBackup) and backup.entropy):
        raise ValueError(
            f"DENTSScore searches on Bellman values plus the entropy that BellmanBackup(entropy=True) backs up; "
            f"got {type(policy).__name__} with {backup!r}"
        )
    if isinstance(backup, SoftmaxBackup):
        if type(policy) is not E2WScore:
            raise ValueError(f"the softmax backup is MENTS's and goes with E2WScore, got {type(policy).__name__}")
        if policy.tau != backup.tau:
            raise ValueError(
                f"E2WScore(tau={policy.tau}) and SoftmaxBackup(tau={backup.tau}) disagree: MENTS explores and backs up "
                "at one temperature"
            )
    if isinstance(policy, UCB1Score) != isinstance(backup, (MeanBackup, PowerMeanBackup)):
        raise ValueError(
            f"UCB1Score goes with MeanBackup (UCT) or PowerMeanBackup (Power-UCT), got {type(policy).__name__} with "
            f"{type(backup).__name__}"
        )
