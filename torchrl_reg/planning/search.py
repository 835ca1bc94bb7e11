"""One Monte-Carlo tree search loop with pluggable tree policy, backup, recommendation and leaf evaluation.

A simulation restores the root state, descends by the tree policy until it leaves the tree (a
new node, which is evaluated) or ends the episode, then backs the result up the path. The four
algorithms are combinations of parts (:func:`make_search`):

============  ======================  =====================  ========================
algorithm     tree policy             backup                 recommendation
============  ======================  =====================  ========================
``ments``     :class:`E2WScore`       softmax (``tau``)      argmax soft value
``bts``       :class:`BoltzmannScore` Bellman max            argmax Bellman value
``dents``     :class:`DENTSScore`     Bellman max + entropy  argmax Bellman value
``uct``       :class:`UCB1Score`      mean of returns        most visited
============  ======================  =====================  ========================

References:

* [MENTS] Xiao, Huang, Mei, Schuurmans, Muller. Maximum Entropy Monte-Carlo Planning. NeurIPS 2019,
  Section 4 (Algorithm MENTS: E2W selection, softmax backup, argmax-soft-value recommendation).
* [DENTS] Painter, Baioumy, Hawes, Lacerda. Monte Carlo Tree Search with Boltzmann Exploration.
  NeurIPS 2023, arXiv:2404.07732, Section 4 (BTS, DENTS).
* [UCT] Kocsis, Szepesvari. Bandit based Monte-Carlo Planning. ECML 2006.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np

from torchrl_reg.planning.backups import BACKUPS, bellman_value, policy_entropy, softmax_value
from torchrl_reg.planning.evaluators import RandomRollout
from torchrl_reg.planning.scores import (
    BoltzmannScore,
    DENTSScore,
    E2WScore,
    UCB1Score,
)
from torchrl_reg.planning.simulators import Simulator, check_simulator
from torchrl_reg.planning.tree import SearchTree
from torchrl_reg.validation import check_count, check_positive

__all__ = ["ALGORITHMS", "KNOBS", "KNOB_DEFAULTS", "RECOMMENDATIONS", "TreeSearch", "algorithm_knobs", "make_search"]

#: the algorithms :func:`make_search` assembles
ALGORITHMS = ("ments", "bts", "dents", "uct")
#: what the root's recommended action maximizes: the backed-up value, the Bellman value or the visit count
RECOMMENDATIONS = ("search_value", "bellman_value", "most_visited")

Evaluator = Callable[[Simulator], "tuple[float, Any]"]


class TreeSearch:
    """Monte-Carlo tree search over a :class:`~torchrl_reg.planning.simulators.Simulator`.

    Args:
        simulator: the model to search in; its current state is the root of every search.
        tree_policy: one of the score modules (``select`` is called once per node per simulation).
        backup: ``"softmax"`` (MENTS, needs ``tau``), ``"bellman"`` (BTS, DENTS) or ``"mean"`` (UCT).
        recommend: ``"search_value"`` (argmax of the backup's Q over tried actions),
            ``"bellman_value"`` or ``"most_visited"``.
        evaluator: leaf evaluation, ``(simulator) -> (value, q_init or None)``.
        tau: temperature of the softmax backup.
        gamma: discount inside the tree.
        q_init: the initial value of untried actions when the evaluator gives none.
        seed: seeds the tree policy's draws.
    """

    def __init__(
        self,
        simulator: Simulator,
        *,
        tree_policy: E2WScore | DENTSScore | UCB1Score,
        backup: str,
        recommend: str = "search_value",
        evaluator: Evaluator | None = None,
        tau: float | None = None,
        gamma: float = 1.0,
        q_init: float = 0.0,
        seed: int = 0,
    ):
        self.simulator = check_simulator(simulator)
        if backup not in BACKUPS:
            raise ValueError(f"backup must be one of {BACKUPS}, got backup={backup!r}")
        if recommend not in RECOMMENDATIONS:
            raise ValueError(f"recommend must be one of {RECOMMENDATIONS}, got recommend={recommend!r}")
        if backup == "softmax":
            if tau is None:
                raise ValueError("backup='softmax' needs tau, the temperature of MENTS's soft values; got none")
            tau = check_positive("tau", tau)
            if type(tree_policy) is E2WScore and tree_policy.tau != tau:
                raise ValueError(
                    f"E2WScore(tau={tree_policy.tau}) and the softmax backup's tau={tau} disagree: MENTS explores and "
                    "backs up at one temperature"
                )
        if not (isinstance(gamma, (int, float)) and 0.0 <= gamma <= 1.0):
            raise ValueError(f"gamma must be a number in [0, 1], got gamma={gamma!r}")
        evaluator_gamma = getattr(evaluator, "gamma", gamma)
        if evaluator_gamma != gamma:
            raise ValueError(
                f"{type(evaluator).__name__}(gamma={evaluator_gamma}) and the search's gamma={gamma} disagree: one "
                "discount for the tree and its leaf estimates"
            )
        if not math.isfinite(q_init):
            raise ValueError(f"q_init must be finite, got q_init={q_init}")
        if isinstance(tree_policy, DENTSScore) and backup != "bellman":
            raise ValueError(f"DENTSScore searches on Bellman values plus entropy; it needs backup='bellman', got {backup!r}")
        self.tree_policy = tree_policy
        self.backup = backup
        self.recommend = recommend
        self.evaluator = evaluator if evaluator is not None else RandomRollout(gamma=gamma, seed=seed)
        self.tau = tau
        self.gamma = float(gamma)
        self.q_init = float(q_init)
        self.rng = random.Random(seed)
        self.tree: SearchTree | None = None
        # read once per search step instead of once per node (the hot path)
        self._dents = isinstance(tree_policy, DENTSScore)
        self._on_bellman = backup == "bellman"
        # Bellman values cost a row max per node: kept only when searched on or recommended from
        self._track_bellman = backup == "bellman" or recommend == "bellman_value"

    # -- the search ---------------------------------------------------------------------------
    def search(self, num_simulations: int) -> int:
        """Run ``num_simulations`` simulations from the simulator's current state; return the recommended action.

        The simulator is left in the root state. The tree stays in :attr:`tree` for inspection.
        """
        num_simulations = check_count("num_simulations", num_simulations)
        sim = self.simulator
        root_state = sim.save()
        tree = SearchTree(sim.num_actions, num_simulations + 1)
        self.tree = tree
        value, q_init = self._evaluate()
        sim.restore(root_state)
        tree.add_node(value, False, q_init)
        for _ in range(num_simulations):
            sim.restore(root_state)
            self._simulate(tree)
        sim.restore(root_state)
        return self.recommended_action()

    def _evaluate(self) -> tuple[float, Any]:
        """The evaluator's ``(value, initial action values)`` at the simulator's state, refused unless finite."""
        value, q_init = self.evaluator(self.simulator)
        if not math.isfinite(value):
            raise ValueError(f"the leaf evaluation is {value}; a tree search needs finite values")
        if q_init is None:
            return value, self.q_init
        if not np.isfinite(q_init).all():
            raise ValueError(f"the evaluator's initial action values {list(q_init)} are not all finite")
        return value, q_init

    def _select(self, tree: SearchTree, node: int) -> int:
        second = tree.entropy_q[node].tolist() if self._dents else tree.visits[node].tolist()
        q = tree.q_bellman[node].tolist() if self._on_bellman else tree.q[node].tolist()
        return self.tree_policy.select(q, second, float(tree.total[node]), self.rng.random())

    def _simulate(self, tree: SearchTree) -> None:
        sim = self.simulator
        deterministic = sim.deterministic
        path: list[tuple[int, int, float, int]] = []
        node = 0
        while True:
            action = self._select(tree, node)
            reward, done = sim.step(action)
            if not math.isfinite(reward):
                raise ValueError(f"the simulator returned reward={reward} for action {action}; a tree search needs finite rewards")
            if deterministic:
                child = int(tree.child[node, action])
            else:
                outcomes = tree.outcomes.setdefault((node, action), {})
                key = sim.state_key()  # before the evaluator moves the simulator on
                child = outcomes.get(key, -1)
            if child < 0:
                if done:
                    child = tree.add_node(0.0, True, 0.0)
                else:
                    value, q_init = self._evaluate()
                    child = tree.add_node(value, False, q_init)
                if deterministic:
                    tree.child[node, action] = child
                else:
                    outcomes[key] = child
                path.append((node, action, reward, child))
                break
            path.append((node, action, reward, child))
            if tree.terminal[child]:
                break
            node = child
        self._backup(tree, path)

    @staticmethod
    def _child_values(tree: SearchTree, node: int, action: int) -> tuple[float, float, float]:
        """(value, Bellman value, entropy) of a stochastic edge's next states, averaged by arrival counts."""
        children = list(tree.outcomes[(node, action)].values())
        counts = tree.arrivals[children]
        weights = counts / counts.sum()
        return (
            float(weights @ tree.value[children]),
            float(weights @ tree.bellman[children]),
            float(weights @ tree.entropy[children]),
        )

    def _backup(self, tree: SearchTree, path: list[tuple[int, int, float, int]]) -> None:
        gamma, backup, deterministic = self.gamma, self.backup, self.simulator.deterministic
        dents, track_bellman = self._dents, self._track_bellman
        ret = float(tree.leaf_value[path[-1][3]])
        for node, action, reward, child in reversed(path):
            tree.arrivals[child] += 1
            tree.total[node] += 1
            n = int(tree.visits[node, action]) + 1
            tree.visits[node, action] = n
            reward_sum = float(tree.reward_sum[node, action]) + reward
            tree.reward_sum[node, action] = reward_sum
            mean_reward = reward_sum / n
            if deterministic:
                v_next, vb_next, h_next = float(tree.value[child]), float(tree.bellman[child]), float(tree.entropy[child])
            else:
                v_next, vb_next, h_next = self._child_values(tree, node, action)
            if track_bellman:
                tree.q_bellman[node, action] = mean_reward + gamma * vb_next
                q_bellman = tree.q_bellman[node].tolist()
                tree.bellman[node] = bellman_value(q_bellman, tree.visits[node].tolist())
            if backup == "softmax":
                tree.q[node, action] = mean_reward + gamma * v_next
                tree.value[node] = softmax_value(tree.q[node].tolist(), self.tau)
            elif backup == "mean":
                ret = reward + gamma * ret
                q = float(tree.q[node, action])
                # the first return replaces the initial value instead of being averaged with it
                tree.q[node, action] = ret if n == 1 else q + (ret - q) / n
                # the node's value is the mean of all returns through it, not its first evaluation
                tree.value[node] = float(tree.visits[node] @ tree.q[node]) / float(tree.total[node])
            else:
                tree.value[node] = tree.bellman[node]
            if dents:
                tree.entropy_q[node, action] = h_next
                h_q = tree.entropy_q[node].tolist()
                probs = self.tree_policy.probs(q_bellman, h_q, float(tree.total[node]))
                tree.entropy[node] = policy_entropy(probs) + sum(p * h for p, h in zip(probs, h_q))

    # -- recommendations ----------------------------------------------------------------------
    def root_values(self, kind: str | None = None) -> np.ndarray:
        """Root action values used by ``kind`` (default: this search's recommendation); untried actions are -inf."""
        kind = kind or self.recommend
        tree = self._require_tree()
        if kind == "bellman_value" and not self._track_bellman:
            raise ValueError(
                f"this {self.backup}-backup search kept no Bellman values; build it with recommend='bellman_value'"
            )
        visits = tree.visits[0]
        if kind == "most_visited":
            return visits.astype(float)
        q = tree.q_bellman[0] if kind == "bellman_value" or self.backup == "bellman" else tree.q[0]
        return np.where(visits > 0, q, -np.inf)

    def recommended_action(self, kind: str | None = None) -> int:
        """Argmax of :meth:`root_values` (lowest index on ties)."""
        kind = kind or self.recommend
        if kind not in RECOMMENDATIONS:
            raise ValueError(f"recommend must be one of {RECOMMENDATIONS}, got {kind!r}")
        return int(np.argmax(self.root_values(kind)))

    def root_value(self) -> float:
        """The root's value under this search's backup: soft value (MENTS), Bellman value (BTS, DENTS) or the
        mean of the returns of all simulations (UCT)."""
        return float(self._require_tree().value[0])

    def _require_tree(self) -> SearchTree:
        if self.tree is None:
            raise RuntimeError("no search has run yet; call search() first")
        return self.tree


#: the knobs each algorithm reads; make_search refuses the others
KNOBS: dict[str, tuple[str, ...]] = {
    "ments": ("tau", "eps"),
    "bts": ("alpha", "eps"),
    "dents": ("alpha", "beta_0", "eps"),
    "uct": ("c",),
}
#: the value of a knob left out
KNOB_DEFAULTS: dict[str, float] = {"tau": 1.0, "eps": 0.1, "alpha": 1.0, "beta_0": 1.0, "c": math.sqrt(2.0)}


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


def make_search(
    algorithm: str,
    simulator: Simulator,
    *,
    evaluator: Evaluator | None = None,
    tau: float | None = None,
    eps: float | None = None,
    alpha: float | None = None,
    beta_0: float | None = None,
    c: float | None = None,
    recommend: str | None = None,
    gamma: float = 1.0,
    q_init: float = 0.0,
    seed: int = 0,
) -> TreeSearch:
    """The search of ``algorithm`` (one of :data:`ALGORITHMS`) assembled from its parts (table above).

    ``tau`` is MENTS's temperature, ``alpha`` the search temperature of BTS and DENTS, ``beta_0``
    DENTS's initial entropy weight, ``eps`` the E2W exploration parameter of all three and ``c``
    UCT's exploration constant (:data:`KNOBS`; a knob left out takes :data:`KNOB_DEFAULTS`). A knob
    of another algorithm is refused, not ignored. Every value is checked here, before any
    simulation runs.
    """
    knobs = algorithm_knobs(algorithm, dict(tau=tau, eps=eps, alpha=alpha, beta_0=beta_0, c=c))
    if algorithm == "ments":
        policy, backup, default = E2WScore(**knobs), "softmax", "search_value"
    elif algorithm == "bts":
        policy, backup, default = BoltzmannScore(**knobs), "bellman", "search_value"
    elif algorithm == "dents":
        policy, backup, default = DENTSScore(**knobs), "bellman", "search_value"
    else:
        policy, backup, default = UCB1Score(**knobs), "mean", "most_visited"
    return TreeSearch(
        simulator,
        tree_policy=policy,
        backup=backup,
        recommend=recommend or default,
        evaluator=evaluator,
        tau=knobs.get("tau"),
        gamma=gamma,
        q_init=q_init,
        seed=seed,
    )
