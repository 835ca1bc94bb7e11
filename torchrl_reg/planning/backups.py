"""Value backups of the tree searches, each an object with a scalar and a row form.

As the tree policies have ``select`` (one node, plain floats: the single-tree search's hot path) and
``select_rows`` (a batch of nodes as tensors), a backup has ``update`` (one edge of one path in a
:class:`~torchrl_reg.planning.tree.SearchTree`) and ``update_rows`` (one level of the B paths of a
:class:`~torchrl_reg.planning.batched.BatchedTree`): functions of an :class:`~torchrl_reg.planning.records.EdgeStats`
(the fields and shapes: :mod:`~torchrl_reg.planning.records`) that return a
:class:`~torchrl_reg.planning.records.BackupResult`, the same numbers in both forms (tested draw for draw), which the
search loops write.
``values`` names the edge statistic the tree policy and the recommendation read (``"q"`` or ``"q_bellman"``).

References:

* [MENTS] Xiao, Huang, Mei, Schuurmans, Muller. Maximum Entropy Monte-Carlo Planning. NeurIPS 2019,
  Section 4: softmax backup ``V_sft(s) = F_tau(Q_sft(s, .)) = tau log sum_a exp(Q_sft(s, a) / tau)``
  and ``Q_sft(s, a) = r(s, a) + V_sft(s')``.
* [DENTS] Painter, Baioumy, Hawes, Lacerda. Monte Carlo Tree Search with Boltzmann Exploration.
  NeurIPS 2023, arXiv:2404.07732, Section 4: Bellman (max) backups for BTS and DENTS, and DENTS's
  entropy backup ``H_V(s) = H(pi(.|s)) + sum_a pi(a|s) H_Q(s, a)``.
* [UCT] Kocsis, Szepesvari. Bandit based Monte-Carlo Planning. ECML 2006.
* [TENTS] Dam, D'Eramo, Peters, Pajarinen. Convex Regularization in Monte-Carlo Tree Search. ICML 2021,
  arXiv:2007.00391, Sec. 3-4: the regularized backup ``V_Omega(s) = Omega*(Q_Omega(s, .))``, the convex conjugate of
  the regularizer at the node's action values; for the Tsallis entropy ``Omega(pi) = tau / 2 (||pi||^2 - 1)`` it is
  ``tau spmax(Q / tau)`` (TENTS).

With stochastic transitions an edge is a chance node: each visit draws an outcome, and the edge's children (one
per next state drawn) are averaged by their arrival counts, :func:`chance_mean` (one edge) and
:func:`chance_mean_rows` (a batch of edges): ``Q(s, a) = mean reward + sum_s' N(s') / N(s, a) V(s')``, the
sample estimate of ``E_s'[V(s')]``, and alike for the Bellman value and DENTS's entropy (the search loops, which
own the outcome lists, pass the averaged values in). The mean backup needs no such rule: its mean of returns is
already weighted by arrivals. The decision nodes back up with the algorithm's backup, as in the chance nodes of
thts++ (Painter et al.'s implementation of MENTS, BTS and DENTS) and Stochastic MuZero (Antonoglou et al.,
Planning in Stochastic Environments with a Learned Model, ICLR 2022). The Bellman values ``Q_B`` and
``V_B = max_a Q_B`` over tried actions are kept by the search loops themselves whenever the backup or
the recommendation reads them (:attr:`Backup.on_bellman`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from torchrl_reg.planning.records import BackupResult, EdgeStats, NodeStats, make_record, replaced
from torchrl_reg.planning.scores import sparsemax_rows, sparsemax_threshold
from torchrl_reg.planning.knobs import check_knob

_dot = np.dot

__all__ = [
    "Backup", "SoftmaxBackup", "BellmanBackup", "MeanBackup", "PowerMeanBackup", "TsallisBackup", "tsallis_value", "softmax_value", "bellman_value", "policy_entropy", "chance_mean",
    "chance_mean_rows",
]


def softmax_value(q: Sequence[float], tau: float) -> float:
    """``tau log sum_a exp(q_a / tau)``, max-shifted so it stays finite for any ``q / tau`` ([MENTS] Sec. 4)."""
    top = max(q)
    return top + tau * math.log(sum([math.exp((qa - top) / tau) for qa in q]))  # a list: faster than a generator


def bellman_value(q: Sequence[float], n: Sequence[float]) -> float | None:
    """``max_a Q(s, a)`` over the actions tried at least once, ``None`` if none was ([DENTS] Sec. 4).

    Untried actions are left out: their initial value is a guess, not an estimate, and letting it
    win the max would make the Bellman value depend on an arbitrary constant.
    """
    best = None
    for qa, na in zip(q, n):
        if na > 0 and (best is None or qa > best):
            best = qa
    return best


def chance_mean(values: np.ndarray, arrivals: np.ndarray) -> float:
    """A chance edge's next-state statistic: its outcomes' ``values`` averaged by their ``arrivals`` (module docstring)."""
    return float((arrivals / arrivals.sum()) @ values)


def chance_mean_rows(values: torch.Tensor, arrivals: torch.Tensor) -> torch.Tensor:
    """:func:`chance_mean` of a batch of edges: ``values`` and ``arrivals`` ``[R, M]`` over ``M`` outcome slots (an empty
    slot has 0 arrivals and its value, whatever it holds, is left out; an edge with none, the scratch edge of a finished
    path, gets 0)."""
    weights = arrivals.to(values.dtype)
    return torch.where(arrivals > 0, weights * values, 0.0).sum(-1) / weights.sum(-1).clamp_min(1.0)


def policy_entropy(probs: Sequence[float]) -> float:
    """Shannon entropy ``-sum_a pi(a) log pi(a)`` (nats) of a distribution over actions."""
    return -sum([p * math.log(p) for p in probs if p > 0.0])


class Backup:
    """What both search loops call: a function of a documented record that returns values (the engines do every write).

    ``values``: the edge statistic searched on and recommended from; ``entropy``: whether DENTS's entropy is backed up;
    ``on_bellman``: the backup's values are the Bellman ones.

    ``update(edge) -> BackupResult`` backs up one edge of a :class:`~torchrl_reg.planning.tree.SearchTree` after its
    ``n``-th visit from an :class:`~torchrl_reg.planning.records.EdgeStats` of plain numbers and the node's rows;
    ``update_rows(edge, tree_policy) -> BackupResult`` does the same for one level of the batched search's paths from
    an ``EdgeStats`` of tensors ``[R]`` and ``[R, A]`` (:mod:`~torchrl_reg.planning.records` documents the fields and
    shapes). The scalar ``update`` also takes ``tree_policy`` (DENTS's entropy reads the policy's distribution).
    :class:`~torchrl_reg.planning.records.BackupResult` names what changes: the edge's new ``q``, the node's new
    ``value``, the return passed up (``ret``), DENTS's ``entropy_q`` and ``entropy``; the engine writes them.
    ``reads`` and ``reads_rows`` name the optional ``EdgeStats`` fields each form reads, which the engines fill
    (the others are ``None``). ``final_values(tree)`` gives a batched tree's node values ``[B, N]`` when its search
    ends where the row form leaves them to the end (``None``: they are up to date).
    """

    values = "q"
    entropy = False
    #: the optional :class:`~torchrl_reg.planning.records.EdgeStats` fields ``update`` reads
    reads: tuple[str, ...] = ()

    @property
    def reads_rows(self) -> tuple[str, ...]:
        """The optional :class:`~torchrl_reg.planning.records.EdgeStats` fields ``update_rows`` reads (default:
        :attr:`reads`)."""
        return self.reads

    @property
    def on_bellman(self) -> bool:
        return self.values == "q_bellman"

    @property
    def reads_return(self) -> bool:
        """Whether ``update_rows`` reads the return below each edge (``"ret"``), which the batched search starts at the
        evaluation of the node each path ended in."""
        return "ret" in self.reads_rows

    def search_values(self, tree: Any) -> Any:
        """The edge statistic ``values`` of ``tree`` (either engine's)."""
        return getattr(tree, self.values)

    def update(self, edge: EdgeStats, tree_policy: Any = None) -> BackupResult:
        raise NotImplementedError(f"{type(self).__name__} has no update")

    def update_rows(self, edge: EdgeStats, tree_policy: Any = None) -> BackupResult:
        raise NotImplementedError(f"{type(self).__name__} has no update_rows")

    def final_values(self, tree: Any) -> torch.Tensor | None:
        """Nothing left by default: the node values are kept up to date (the descent reads them)."""
        return None

    #: whether :meth:`exact_values` reads a policy (a mean under it)
    exact_reads_policy = False

    def exact_values(self, q: np.ndarray, policy: np.ndarray | None = None) -> np.ndarray:
        """The decision-node values ``V`` of exact action values ``q`` ``[..., A]`` under this backup (``policy``
        ``[..., A]``: the distribution a mean is taken under, where :attr:`exact_reads_policy`); the rule
        :mod:`~torchrl_reg.planning.exact` computes the test problems' exact values with."""
        raise NotImplementedError(f"{type(self).__name__} has no exact value")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SoftmaxBackup(Backup):
    """MENTS's backup ([MENTS] Sec. 4): ``Q_sft(s, a) = mean r + gamma V_sft(s')``, ``V_sft(s) = tau logsumexp(Q_sft(s, .) / tau)``.

    The log-sum-exp runs over every action, untried ones at their initial value (as in the paper).
    """

    reads = ("v_next", "q")

    def __init__(self, *, tau: float):
        self.tau = check_knob("tau", tau)

    def __repr__(self) -> str:
        return f"SoftmaxBackup(tau={self.tau})"

    def exact_values(self, q: np.ndarray, policy: np.ndarray | None = None) -> np.ndarray:
        """``tau log sum_a exp(q_a / tau)``, max-shifted."""
        top = q.max(axis=-1)
        return top + self.tau * np.log(np.exp((q - top[..., None]) / self.tau).sum(axis=-1))

    def update(self, edge: EdgeStats, tree_policy: Any = None) -> BackupResult:
        q = edge.mean_reward + edge.gamma * edge.v_next
        row = edge.q.tolist()
        row[edge.action] = q  # the node's row after the update
        return make_record(BackupResult, (q, softmax_value(row, self.tau), None, None, None))  # (q, value, ret, entropy_q, entropy)

    def update_rows(self, edge: EdgeStats, tree_policy: Any = None) -> BackupResult:
        q = torch.add(edge.mean_reward, edge.v_next, alpha=edge.gamma)
        rows = replaced(edge.q, edge.action, q)
        return BackupResult(q=q, value=self.tau * torch.logsumexp(rows / self.tau, dim=-1))


class BellmanBackup(Backup):
    """The Bellman (max) backup of BTS and DENTS ([DENTS] Sec. 4); ``entropy=True`` adds DENTS's entropy backup.

    The Bellman values are the node values. DENTS's entropy backup: ``H_Q(s, a) = H_V(s')`` and
    ``H_V(s) = H(pi(.|s)) + sum_a pi(a|s) H_Q(s, a)`` with ``pi`` the tree policy's distribution at
    ``s`` after the update.
    """

    values = "q_bellman"

    def __init__(self, *, entropy: bool = False):
        self.entropy = bool(entropy)

    @property
    def reads_rows(self) -> tuple[str, ...]:
        """DENTS's entropy reads the next state's entropy and the node's ``H_Q`` and ``Q_B`` rows and visit count."""
        return ("h_next", "entropy_q", "q_bellman", "total") if self.entropy else ()

    @property
    def reads(self) -> tuple[str, ...]:
        """As :attr:`reads_rows`, and the node's Bellman value (the scalar form keeps the node value up to date)."""
        return ("bellman",) + self.reads_rows

    def __repr__(self) -> str:
        return f"BellmanBackup(entropy={self.entropy})"

    def exact_values(self, q: np.ndarray, policy: np.ndarray | None = None) -> np.ndarray:
        """``max_a q_a``."""
        return q.max(axis=-1)

    def update(self, edge: EdgeStats, tree_policy: Any = None) -> BackupResult:
        if not self.entropy:
            return make_record(BackupResult, (None, edge.bellman, None, None, None))  # the value: the Bellman value
        h_next = edge.h_next
        h_q = edge.entropy_q.tolist()
        h_q[edge.action] = h_next  # the node's H_Q row after the update
        probs = tree_policy.probs(make_record(NodeStats, (edge.q_bellman, float(edge.total), None, h_q, None)))
        entropy = policy_entropy(probs) + sum([p * h for p, h in zip(probs, h_q)])
        return make_record(BackupResult, (None, edge.bellman, None, h_next, entropy))  # (q, value, ret, entropy_q, entropy)

    def update_rows(self, edge: EdgeStats, tree_policy: Any = None) -> BackupResult:
        if not self.entropy:
            return BackupResult()
        h_q = replaced(edge.entropy_q, edge.action, edge.h_next)
        probs = tree_policy.probs_rows(NodeStats(q=edge.q_bellman, total=edge.total, entropy_q=h_q, counts=edge.counts))
        plogp = torch.where(probs > 0, probs * torch.log(probs), 0.0)
        return BackupResult(entropy_q=edge.h_next, entropy=(probs * h_q - plogp).sum(-1))

    def final_values(self, tree: Any) -> torch.Tensor:
        return tree.bellman


class MeanBackup(Backup):
    """UCT's backup ([UCT]): ``Q(s, a)`` is the mean of the returns that went through ``(s, a)``.

    The first return replaces the initial value instead of being averaged with it. A node's value
    is the mean of all returns through it, ``sum_a N(s, a) Q(s, a) / N(s)`` (the batched search computes
    it when the search ends, :meth:`final_values`: its descent does not read it).
    """

    reads = ("ret", "q_edge", "q", "visits", "total")
    reads_rows = ("ret", "q_edge")
    exact_reads_policy = True

    def exact_values(self, q: np.ndarray, policy: np.ndarray | None = None) -> np.ndarray:
        """``sum_a policy_a q_a``, the mean under ``policy`` (the search's visit shares)."""
        return (policy * q).sum(-1)

    def update(self, edge: EdgeStats, tree_policy: Any = None) -> BackupResult:
        ret = edge.reward + edge.gamma * edge.ret
        n = edge.n
        old = edge.q_edge
        q = ret if n == 1 else old + (ret - old) / n
        row = replaced(edge.q, edge.action, q)  # the node's row after the update
        # np.dot: the same product as ``@`` (one C routine for a vector pair), without the ufunc's cast set-up
        return make_record(BackupResult, (q, float(_dot(edge.visits, row)) / float(edge.total), ret, None, None))  # (q, value, ret, ...)

    def update_rows(self, edge: EdgeStats, tree_policy: Any = None) -> BackupResult:
        ret = torch.where(edge.active, torch.add(edge.reward, edge.ret, alpha=edge.gamma), edge.ret)
        old = edge.q_edge
        return BackupResult(q=torch.where(edge.n == 1, ret, old + (ret - old) / edge.n.to(old.dtype)), ret=ret)

    def final_values(self, tree: Any) -> torch.Tensor:
        total = tree.total.to(tree.q.dtype)
        mean = (tree.visits.to(tree.q.dtype) * tree.q).sum(-1) / total.clamp_min(1.0)
        return torch.where(tree.total > 0, mean, tree.value)


class PowerMeanBackup(Backup):
    """Power-UCT's backup (Dam, Klink, D'Eramo, Peters, Pajarinen, Generalized Mean Estimation in Monte-Carlo Tree
    Search, IJCAI 2020, arXiv:1911.00384): ``Q(s, a) = mean r + gamma V(s')`` and the power mean of the tried actions'
    values under their visit shares, ``V(s) = (sum_a N(s, a) / N(s) Q(s, a)^p)^(1/p)`` (``p = 1``: their visit-weighted
    mean; ``p -> inf``: their max). The power mean is of values >= 0 (returns in [0, R], as in the paper): a negative
    ``Q`` counts as 0 in it. Searched with :class:`~torchrl_reg.planning.scores.UCB1Score` on ``Q``.
    """

    reads = ("v_next", "q", "visits")
    exact_reads_policy = True

    def __init__(self, *, p: float):
        self.p = check_knob("p", p)

    def __repr__(self) -> str:
        return f"PowerMeanBackup(p={self.p})"

    def update(self, edge: EdgeStats, tree_policy: Any = None) -> BackupResult:
        q = edge.mean_reward + edge.gamma * edge.v_next
        shares = edge.visits / edge.visits.sum()
        return BackupResult(q=q, value=float(self.exact_values(replaced(edge.q, edge.action, q), shares)))

    def update_rows(self, edge: EdgeStats, tree_policy: Any = None) -> BackupResult:
        q = torch.add(edge.mean_reward, edge.v_next, alpha=edge.gamma)
        rows = replaced(edge.q, edge.action, q)  # the node's Q rows with the edge's new value
        visits = edge.visits.to(rows.dtype)
        # clamped: the scratch node of a finished path has no visits
        return BackupResult(q=q, value=self.exact_values(rows, visits / visits.sum(-1, keepdim=True).clamp_min(1.0)))

    def exact_values(self, q, policy=None):
        """``(sum_a policy_a max(q_a, 0)^p)^(1/p)`` (numpy arrays or tensors), the power mean under ``policy``."""
        if isinstance(q, torch.Tensor):
            return (policy * q.clamp_min(0.0) ** self.p).sum(-1) ** (1.0 / self.p)
        return (policy * np.maximum(q, 0.0) ** self.p).sum(-1) ** (1.0 / self.p)


class TsallisBackup(Backup):
    """TENTS's backup ([TENTS] Sec. 4): ``Q(s, a) = mean r + gamma V(s')`` and the Tsallis-entropy regularized value
    ``V(s) = max_{pi in simplex} <pi, Q(s, .)> + tau / 2 (1 - ||pi||^2) = tau spmax(Q(s, .) / tau)``,
    ``spmax(z) = 1/2 sum_{a in K} (z_a^2 - theta^2) + 1/2`` over the support ``K`` of ``sparsemax(z) = max(z - theta, 0)``
    (its maximizer). Like MENTS's softmax backup it runs over every action, untried ones at their initial value; unlike
    it, an action below the support's threshold adds nothing to the value (``V`` lies in ``[max Q, max Q + tau / 2]``).
    """

    reads = ("v_next", "q")

    def __init__(self, *, tau: float):
        self.tau = check_knob("tau", tau)

    def __repr__(self) -> str:
        return f"TsallisBackup(tau={self.tau})"

    def exact_values(self, q, policy=None):
        """``tau spmax(q / tau)`` over the last axis (numpy arrays or tensors)."""
        rows = torch.as_tensor(q, dtype=torch.float64) if not isinstance(q, torch.Tensor) else q
        z = rows / self.tau
        p, theta = sparsemax_rows(z)
        value = self.tau * (0.5 * torch.where(p > 0, z * z - theta.unsqueeze(-1) ** 2, 0.0).sum(-1) + 0.5)
        return value if isinstance(q, torch.Tensor) else value.numpy()

    def update(self, edge: EdgeStats, tree_policy: Any = None) -> BackupResult:
        q = edge.mean_reward + edge.gamma * edge.v_next
        row = edge.q.tolist()
        row[edge.action] = q  # the node's row after the update
        return make_record(BackupResult, (q, tsallis_value(row, self.tau), None, None, None))  # (q, value, ret, entropy_q, entropy)

    def update_rows(self, edge: EdgeStats, tree_policy: Any = None) -> BackupResult:
        q = torch.add(edge.mean_reward, edge.v_next, alpha=edge.gamma)
        return BackupResult(q=q, value=self.exact_values(replaced(edge.q, edge.action, q)))


def tsallis_value(q: Sequence[float], tau: float) -> float:
    """``tau spmax(q / tau)`` of one node's action values, plain floats ([TENTS] Sec. 4; :class:`TsallisBackup`)."""
    z = [qa / tau for qa in q]
    theta = sparsemax_threshold(z)
    return tau * (0.5 * sum([za * za - theta * theta for za in z if za > theta]) + 0.5)
