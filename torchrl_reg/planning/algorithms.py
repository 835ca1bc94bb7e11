"""The parts table of the tree searches: which tree policy, backup and recommendation make each algorithm.

Both search loops (:class:`~torchrl_reg.planning.search.TreeSearch`, one tree on plain floats, and
:class:`~torchrl_reg.planning.batched.BatchedTreeSearch`, B trees in tensors) take the same part
objects: a score module (``select`` / ``select_rows``), a backup (``update`` / ``update_rows``) and a
recommendation. :func:`parts` assembles an algorithm's parts from its knobs, :func:`check_parts` refuses
parts that disagree (for both loops, before any simulation), and
:func:`~torchrl_reg.planning.factory.make_search` builds either loop from them.

============  ======================  ===================================  ==================  =============
algorithm     tree policy             backup                               recommendation      knobs
============  ======================  ===================================  ==================  =============
``ments``     :class:`E2WScore`       :class:`SoftmaxBackup` (``tau``)     ``search_value``    tau, eps
``bts``       :class:`BoltzmannScore` :class:`BellmanBackup`               ``search_value``    alpha, eps
``dents``     :class:`DENTSScore`     :class:`BellmanBackup` (entropy)     ``search_value``    alpha, beta_0, eps
``uct``       :class:`UCB1Score`      :class:`MeanBackup`                  ``most_visited``    c
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
"""
from __future__ import annotations

import math

from torchrl_reg.planning.backups import Backup, BellmanBackup, MeanBackup, SoftmaxBackup
from torchrl_reg.planning.scores import BoltzmannScore, DENTSScore, E2WScore, UCB1Score

__all__ = ["ALGORITHMS", "KNOBS", "KNOB_DEFAULTS", "RECOMMENDATIONS", "Policy", "algorithm_knobs", "check_parts", "parts"]

#: the algorithms :func:`parts` assembles
ALGORITHMS = ("ments", "bts", "dents", "uct")
#: what the root's recommended action maximizes: the backed-up value, the Bellman value or the visit count
RECOMMENDATIONS = ("search_value", "bellman_value", "most_visited")
#: the knobs each algorithm reads; a set knob it does not read is refused
KNOBS: dict[str, tuple[str, ...]] = {
    "ments": ("tau", "eps"),
    "bts": ("alpha", "eps"),
    "dents": ("alpha", "beta_0", "eps"),
    "uct": ("c",),
}
#: the value of a knob left out
KNOB_DEFAULTS: dict[str, float] = {"tau": 1.0, "eps": 0.1, "alpha": 1.0, "beta_0": 1.0, "c": math.sqrt(2.0)}

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


def parts(algorithm: str, **knobs: float | None) -> tuple[Policy, Backup, str]:
    """``(tree policy, backup, recommendation)`` of ``algorithm`` (the module's table) from its knobs
    (:data:`KNOBS`; a knob left out or ``None`` takes :data:`KNOB_DEFAULTS`, a knob of another algorithm is refused)."""
    k = algorithm_knobs(algorithm, knobs)
    if algorithm == "ments":
        return E2WScore(**k), SoftmaxBackup(tau=k["tau"]), "search_value"
    if algorithm == "bts":
        return BoltzmannScore(**k), BellmanBackup(), "search_value"
    if algorithm == "dents":
        return DENTSScore(**k), BellmanBackup(entropy=True), "search_value"
    return UCB1Score(**k), MeanBackup(), "most_visited"


def check_parts(policy: Policy, backup: Backup, recommend: str) -> None:
    """Refuse parts that disagree: one temperature for MENTS, DENTS's entropy backed up, UCB1 on means, a known recommendation."""
    if not isinstance(policy, (E2WScore, DENTSScore, UCB1Score)):
        raise TypeError(f"the tree policy must be E2WScore, BoltzmannScore, DENTSScore or UCB1Score, got {type(policy).__name__}")
    if not isinstance(backup, (SoftmaxBackup, BellmanBackup, MeanBackup)):
        raise TypeError(f"backup must be SoftmaxBackup, BellmanBackup or MeanBackup, got {backup!r}")
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
    if isinstance(policy, UCB1Score) != isinstance(backup, MeanBackup):
        raise ValueError(f"UCB1Score goes with MeanBackup (UCT), got {type(policy).__name__} with {type(backup).__name__}")
