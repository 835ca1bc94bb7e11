"""Tree policies of the algorithm table's rows as score modules in the style of ``torchrl.modules.mcts``.

Each policy is one object with a scalar and a row form, which the two search loops call (the parts
table is :mod:`~torchrl_reg.planning.algorithms`; tests check that the forms give the same numbers):

* ``select(node, u)`` (and ``probs(node)``) is :class:`~torchrl_reg.planning.search.TreeSearch`'s hot path: one
  node, plain Python floats. numpy's per-call overhead on a 4-action row is about seven times the
  work itself, and a search spends most of its time here.
* ``select_rows(node, u)`` (and ``probs_rows(node)``) draw for a batch of nodes in
  tensors, :class:`~torchrl_reg.planning.batched.BatchedTreeSearch`'s hot path, with the constants
  that depend on a node's visit count gathered from ``count_table``.

``node`` is a :class:`~torchrl_reg.planning.records.NodeStats`, one record with named fields in both forms (``q``,
``total``, ``visits``, ``entropy_q``, ``counts``; :mod:`~torchrl_reg.planning.records` documents their shapes): a
policy reads the fields it names in ``reads`` besides ``q`` and ``total``, and the engines fill only those.
* ``forward(node)`` takes a TensorDict of per-action statistics (any batch shape, actions last)
  and writes the policy's ``score`` entry, like TorchRL's ``PUCTScore`` / ``UCBScore``, for use
  with ``torchrl.modules.mcts``. For the Boltzmann policies (E2W, BTS, DENTS) the score is the
  sampling distribution itself; for UCB1 it is the index whose argmax is played.

References:

* [MENTS] Xiao, Huang, Mei, Schuurmans, Muller. Maximum Entropy Monte-Carlo Planning. NeurIPS 2019.
  Section 3 (E2W on the stochastic softmax bandit) and Section 4 (MENTS).
* [DENTS] Painter, Baioumy, Hawes, Lacerda. Monte Carlo Tree Search with Boltzmann Exploration.
  NeurIPS 2023, arXiv:2404.07732. Section 4 (BTS and DENTS).
* [UCT] Kocsis, Szepesvari. Bandit based Monte-Carlo Planning. ECML 2006 (UCB1 of Auer,
  Cesa-Bianchi, Fischer 2002 at every node).
* [TENTS] Dam, D'Eramo, Peters, Pajarinen. Convex Regularization in Monte-Carlo Tree Search. ICML 2021,
  arXiv:2007.00391, Sec. 3-4: E3W, the E2W mixture over the gradient of the regularizer's conjugate, which for the
  Tsallis entropy is sparsemax (Martins and Astudillo, ICML 2016).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tensordict import NestedKey, TensorDictBase
from torchrl.modules.mcts.scores import MCTSScore

from torchrl_reg.planning.records import NodeStats
from torchrl_reg.planning.knobs import check_knob

__all__ = [
    "exploration_weight",
    "mixture_weights",
    "sample_rows",
    "mixed_boltzmann_probs",
    "E2WScore",
    "BoltzmannScore",
    "DENTSScore",
    "UCB1Score",
    "TsallisScore",
    "TreePolicy",
    "sparsemax",
    "sparsemax_rows",
    "sparsemax_threshold",
]


def exploration_weight(eps: float, num_actions: int, n_total: float) -> float:
    """E2W's uniform weight ``lambda_s = eps |A| / log(sum_a N(s, a) + 1)``, clipped to 1 ([MENTS] Sec. 3-4).

    With no visits the log is 0 and the weight is 1: the first action is uniform.
    """
    log_n = math.log(n_total + 1.0)
    if eps == 0.0:
        return 0.0
    if log_n <= 0.0:
        return 1.0
    return min(1.0, eps * num_actions / log_n)


def mixture_weights(n_total: torch.Tensor, num_actions: int, eps: float) -> torch.Tensor:
    """``(1 - lambda_s, lambda_s / |A|)`` ``[..., 2]`` for node visit counts ``n_total``, lambda as in E2W.

    Evaluated once on ``0 .. n`` this is a lookup table: the batched search gathers one row per
    node instead of recomputing the logarithm at every node of every level.
    """
    k = num_actions
    log_n = torch.log1p(n_total)
    lam = torch.where(log_n > 0, (eps * k / log_n.clamp_min(1e-300)).clamp(max=1.0), torch.ones_like(log_n))
    if eps == 0.0:
        lam = torch.zeros_like(log_n)
    return torch.stack((1.0 - lam, lam / k), -1)


def _mix(values: torch.Tensor, temperature: float, weights: torch.Tensor) -> torch.Tensor:
    """``weights[..., 0] softmax(values / temperature) + weights[..., 1]`` (``weights`` from :func:`mixture_weights`)."""
    return weights[..., 0:1] * torch.softmax(values / temperature, dim=-1) + weights[..., 1:2]


def mixed_boltzmann_probs(values: torch.Tensor, n_total: torch.Tensor, temperature: float, eps: float) -> torch.Tensor:
    """``(1 - lambda) softmax(values / temperature) + lambda / |A|`` over the last dim, lambda as in E2W.

    The common form of the E2W ([MENTS] Sec. 3) and Boltzmann ([DENTS] Sec. 4) search policies.
    ``n_total`` (the node's visit count) broadcasts against ``values[..., 0]``.
    """
    n_total = torch.as_tensor(n_total, dtype=values.dtype).expand(values.shape[:-1])
    return _mix(values, temperature, mixture_weights(n_total, values.shape[-1], eps))


def sample_rows(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draws, one per row of ``probs`` ``[R, A]``, from uniforms ``u`` ``[R]`` in [0, 1).

    The first action whose cumulative probability exceeds ``u`` (the single-tree draw's rule, so a
    batched search at ``B = 1`` fed the same uniforms picks the same actions).
    """
    k = probs.shape[-1]
    return (probs.cumsum(-1) <= u.unsqueeze(-1)).sum(-1).clamp_max(k - 1)


def sparsemax_threshold(z: Sequence[float]) -> float:
    """The threshold ``theta`` of :func:`sparsemax`: with ``z`` sorted descending, the support is the largest ``k`` with
    ``1 + k z_(k) > sum_{j <= k} z_(j)`` and ``theta = (sum_{j <= k} z_(j) - 1) / k``."""
    ordered = sorted(z, reverse=True)
    acc, k, cum = 0.0, 1, ordered[0]  # the top value is always in the support (also where 1 + z == z in floats)
    for i, zi in enumerate(ordered, 1):
        acc += zi
        if 1.0 + i * zi > acc:
            k, cum = i, acc
    return (cum - 1.0) / k


def sparsemax(z: Sequence[float]) -> list[float]:
    """``sparsemax(z) = argmin_{p in simplex} ||p - z||^2 = max(z - theta, 0)`` (Martins and Astudillo, ICML 2016), the
    threshold from :func:`sparsemax_threshold`."""
    theta = sparsemax_threshold(z)
    return [max(zi - theta, 0.0) for zi in z]


def sparsemax_rows(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sparsemax` over the last dim of ``z`` ``[..., A]``, and its threshold ``theta`` ``[...]``."""
    ordered = z.sort(dim=-1, descending=True).values
    cum = ordered.cumsum(-1)
    ks = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype, device=z.device)
    support = 1.0 + ks * ordered > cum
    # the support is a prefix of the sorted values: its size is the count; at least the top value (also where
    # 1 + z == z in floats, and in the scratch rows of finished paths, whatever they hold)
    k = support.sum(-1, keepdim=True).clamp_min(1)
    theta = (cum.gather(-1, k - 1) - 1.0) / k.to(z.dtype)
    return (z - theta).clamp_min(0.0), theta.squeeze(-1)


def _sample_mixed_boltzmann(values: Sequence[float], n_total: float, temperature: float, eps: float, u: float) -> int:
    """Inverse-CDF draw from :func:`mixed_boltzmann_probs` for one node (``u`` uniform in [0, 1))."""
    k = len(values)
    lam = exploration_weight(eps, k, n_total)
    top = max(values)
    weights = [math.exp((v - top) / temperature) for v in values]
    scale = (1.0 - lam) / sum(weights)
    floor = lam / k
    acc = 0.0
    for a, w in enumerate(weights):
        acc += w * scale + floor
        if u < acc:
            return a
    return k - 1


def _mixed_boltzmann_row(values: Sequence[float], n_total: float, temperature: float, eps: float) -> list[float]:
    k = len(values)
    lam = exploration_weight(eps, k, n_total)
    top = max(values)
    weights = [math.exp((v - top) / temperature) for v in values]
    scale = (1.0 - lam) / sum(weights)
    return [w * scale + lam / k for w in weights]


class TreePolicy(MCTSScore):
    """The base of the tree policies (the scores): keys shared by them, per-action ``q_value`` and ``visits``, the
    node's ``total_visits``; a knob's value is checked by the knob table (:mod:`~torchrl_reg.planning.knobs`).

    ``reads`` names the per-action edge statistics of :class:`~torchrl_reg.planning.records.NodeStats`, besides the
    searched values ``q`` and the visit count ``total``, that ``select`` and ``select_rows`` read (``"visits"``,
    ``"entropy_q"``); the engines fill only those (the others are ``None``)."""

    reads: tuple[str, ...] = ()

    def __init__(self, *, q_value_key: NestedKey, visits_key: NestedKey, total_visits_key: NestedKey, score_key: NestedKey):
        super().__init__()
        self.q_value_key = q_value_key
        self.visits_key = visits_key
        self.total_visits_key = total_visits_key
        self.score_key = score_key
        self.in_keys = [q_value_key, visits_key, total_visits_key]
        self.out_keys = [score_key]


class E2WScore(TreePolicy):
    """Empirical exponential weight (E2W), the tree policy of MENTS ([MENTS] Sec. 3-4).

    ``pi(a|s) = (1 - lambda_s) softmax(Q_sft(s, .) / tau)(a) + lambda_s / |A|`` with
    ``lambda_s = eps |A| / log(sum_a N(s, a) + 1)`` clipped to 1. The score is this distribution;
    the search samples from it. Unexpanded actions carry their initial value in ``q_value``
    (0, or the log prior of a network).

    Args:
        tau: the softmax temperature of the maximum-entropy objective (> 0).
        eps: the exploration parameter epsilon (>= 0). The weight carries the paper's factor
            ``|A|``; thts++ (Painter et al.'s C++ reference for MENTS, BTS and DENTS) uses
            ``eps / log(N(s) + 1)`` without it, so thts++'s ``eps`` is ours times ``|A|`` (its
            default 0.5 is ``eps = 0.5 / |A|`` here). The same holds for BTS and DENTS below.
    """

    def __init__(
        self,
        *,
        tau: float,
        eps: float,
        q_value_key: NestedKey = "q_value",
        visits_key: NestedKey = "visits",
        total_visits_key: NestedKey = "total_visits",
        score_key: NestedKey = "score",
    ):
        super().__init__(q_value_key=q_value_key, visits_key=visits_key, total_visits_key=total_visits_key, score_key=score_key)
        self.tau = check_knob("tau", tau)
        self.eps = check_knob("eps", eps)

    def forward(self, node: TensorDictBase) -> TensorDictBase:
        q = node.get(self.q_value_key)
        node.set(self.score_key, mixed_boltzmann_probs(q, node.get(self.total_visits_key), self.tau, self.eps))
        return node

    def probs(self, node: NodeStats) -> list[float]:
        """The distribution at one node (``node.q``, ``node.total``)."""
        return _mixed_boltzmann_row(node.q, node.total, self.tau, self.eps)

    def select(self, node: NodeStats, u: float) -> int:
        """One action at one node, drawn with the uniform ``u`` in [0, 1)."""
        return _sample_mixed_boltzmann(node.q, node.total, self.tau, self.eps, u)

    def count_table(self, num_actions: int, max_total: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """What the policy computes from a node's visit count, for counts ``0 .. max_total``: ``[max_total + 1, 2]``.

        The batched search gathers row ``N(s)`` of it per node and passes it as ``counts``.
        """
        return mixture_weights(torch.arange(max_total + 1, dtype=dtype, device=device), num_actions, self.eps)

    def probs_rows(self, node: NodeStats) -> torch.Tensor:
        """The distribution ``[R, A]`` for a batch of nodes (``node.q`` ``[R, A]``, ``node.total`` ``[R]``).

        ``node.counts``: rows ``node.total`` of :meth:`count_table`, to skip recomputing them.
        """
        if node.counts is None:
            return mixed_boltzmann_probs(node.q, node.total, self.tau, self.eps)
        return _mix(node.q, self.tau, node.counts)

    def select_rows(self, node: NodeStats, u: torch.Tensor) -> torch.Tensor:
        """One action per node of a batch (the batched search's hot path), drawn with uniforms ``u`` ``[R]``."""
        return sample_rows(self.probs_rows(node), u)


class BoltzmannScore(E2WScore):
    """Boltzmann Tree Search (BTS) policy ([DENTS] Sec. 4): the E2W mixture over *Bellman* values.

    The formula is E2W's with the search temperature ``alpha`` in place of ``tau``; what differs from
    MENTS is the backup the values come from (Bellman max, not softmax), so the temperature only
    steers exploration and never biases the recommended action.
    """

    def __init__(self, *, alpha: float, eps: float, **keys: NestedKey):
        super().__init__(tau=check_knob("alpha", alpha), eps=eps, **keys)
        self.alpha = self.tau


class DENTSScore(TreePolicy):
    """Decaying ENtropy Tree Search (DENTS) policy ([DENTS] Sec. 4).

    Boltzmann mixture (as in :class:`BoltzmannScore`) over ``Q(s, a) + beta(N(s)) H_Q(s, a)``:
    Bellman values plus a decaying weight ``beta(m) = beta_0 / sqrt(1 + m)`` on the entropy of the
    subtree under ``(s, a)``. As ``N(s)`` grows the bonus vanishes and the search values become
    the Bellman values the recommendation uses.

    Args:
        alpha: search temperature (> 0). beta_0: initial entropy weight (>= 0). eps: as in E2W.
    """

    reads = ("entropy_q",)

    def __init__(
        self,
        *,
        alpha: float,
        beta_0: float,
        eps: float,
        q_value_key: NestedKey = "q_value",
        entropy_key: NestedKey = "entropy",
        visits_key: NestedKey = "visits",
        total_visits_key: NestedKey = "total_visits",
        score_key: NestedKey = "score",
    ):
        super().__init__(q_value_key=q_value_key, visits_key=visits_key, total_visits_key=total_visits_key, score_key=score_key)
        self.alpha = check_knob("alpha", alpha)
        self.beta_0 = check_knob("beta_0", beta_0)
        self.eps = check_knob("eps", eps)
        self.entropy_key = entropy_key
        self.in_keys = self.in_keys + [entropy_key]

    def beta(self, n_total: float) -> float:
        """The decayed entropy weight ``beta_0 / sqrt(1 + N(s))``."""
        return self.beta_0 / math.sqrt(1.0 + n_total)

    def forward(self, node: TensorDictBase) -> TensorDictBase:
        q = node.get(self.q_value_key)
        n_total = torch.as_tensor(node.get(self.total_visits_key), dtype=q.dtype)
        beta = (self.beta_0 / torch.sqrt(1.0 + n_total)).expand(q.shape[:-1]).unsqueeze(-1)
        values = q + beta * node.get(self.entropy_key)
        node.set(self.score_key, mixed_boltzmann_probs(values, n_total, self.alpha, self.eps))
        return node

    def _values(self, q: Sequence[float], h: Sequence[float], n_total: float) -> list[float]:
        beta = self.beta(n_total)
        return [qa + beta * ha for qa, ha in zip(q, h)]

    def probs(self, node: NodeStats) -> list[float]:
        """The distribution at one node (``node.q``, ``node.entropy_q``, ``node.total``)."""
        q, n_total, _, h, _ = node  # the record's fields, unpacked at once (the hot path)
        return _mixed_boltzmann_row(self._values(q, h, n_total), n_total, self.alpha, self.eps)

    def select(self, node: NodeStats, u: float) -> int:
        """One action at one node, drawn with the uniform ``u`` in [0, 1)."""
        q, n_total, _, h, _ = node
        return _sample_mixed_boltzmann(self._values(q, h, n_total), n_total, self.alpha, self.eps, u)

    def count_table(self, num_actions: int, max_total: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``(1 - lambda, lambda / |A|, beta)`` for visit counts ``0 .. max_total``: ``[max_total + 1, 3]``."""
        return self._counts(torch.arange(max_total + 1, dtype=dtype, device=device), num_actions)

    def _counts(self, n_total: torch.Tensor, num_actions: int) -> torch.Tensor:
        beta = self.beta_0 / torch.sqrt(1.0 + n_total)
        return torch.cat((mixture_weights(n_total, num_actions, self.eps), beta.unsqueeze(-1)), -1)

    def probs_rows(self, node: NodeStats) -> torch.Tensor:
        """The distribution over ``q + beta(N(s)) h`` for a batch of nodes (``node.q``, ``node.entropy_q`` ``[R, A]``,
        ``node.total`` ``[R]``).

        ``node.counts``: rows ``node.total`` of :meth:`count_table`, to skip recomputing them.
        """
        q, counts = node.q, node.counts
        if counts is None:
            counts = self._counts(node.total.to(q.dtype), q.shape[-1])
        return _mix(q + counts[..., 2:3] * node.entropy_q, self.alpha, counts[..., :2])

    def select_rows(self, node: NodeStats, u: torch.Tensor) -> torch.Tensor:
        """One action per node of a batch, drawn with uniforms ``u`` ``[R]``."""
        return sample_rows(self.probs_rows(node), u)


class UCB1Score(TreePolicy):
    """UCB1 index of UCT ([UCT]): ``Q(s, a) + c sqrt(log N(s) / N(s, a))``, ``+inf`` for unvisited actions.

    Unlike TorchRL's ``UCBScore`` (``c sqrt(N) / (1 + n)``) this is the index of Kocsis and
    Szepesvari's UCT. The search plays the argmax, drawing uniformly among unvisited actions.
    """

    reads = ("visits",)

    def __init__(
        self,
        *,
        c: float,
        q_value_key: NestedKey = "q_value",
        visits_key: NestedKey = "visits",
        total_visits_key: NestedKey = "total_visits",
        score_key: NestedKey = "score",
    ):
        super().__init__(q_value_key=q_value_key, visits_key=visits_key, total_visits_key=total_visits_key, score_key=score_key)
        self.c = check_knob("c", c)

    def forward(self, node: TensorDictBase) -> TensorDictBase:
        q = node.get(self.q_value_key)
        n = node.get(self.visits_key).to(q.dtype)
        n_total = torch.as_tensor(node.get(self.total_visits_key), dtype=q.dtype).expand(q.shape[:-1]).unsqueeze(-1)
        bonus = self.c * torch.sqrt(torch.log(n_total.clamp_min(1.0)) / n)
        score = torch.where(n > 0, q + bonus, torch.full_like(q, math.inf))
        node.set(self.score_key, score)
        return node

    def select(self, node: NodeStats, u: float) -> int:
        """The argmax of the index at one node (``node.q``, ``node.visits``, ``node.total``), or a uniform draw
        (``u`` in [0, 1)) among its unvisited actions."""
        q, n_total, n, _, _ = node  # the record's fields, unpacked at once (the hot path)
        if 0 in n:  # a scan in C before the list of unvisited actions (the hot path)
            unvisited = [a for a, na in enumerate(n) if na == 0]
            return unvisited[int(u * len(unvisited))]
        log_n = math.log(n_total) if n_total > 1 else 0.0
        c = self.c
        best, best_score = 0, -math.inf
        for a, (qa, na) in enumerate(zip(q, n)):
            score = qa + c * math.sqrt(log_n / na)
            if score > best_score:
                best, best_score = a, score
        return best

    def count_table(self, num_actions: int, max_total: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``log N(s)`` (0 for ``N(s) <= 1``) for visit counts ``0 .. max_total``: ``[max_total + 1, 1]``."""
        return self._counts(torch.arange(max_total + 1, dtype=dtype, device=device))

    @staticmethod
    def _counts(n_total: torch.Tensor) -> torch.Tensor:
        return torch.where(n_total > 1, torch.log(n_total.clamp_min(1.0)), torch.zeros_like(n_total)).unsqueeze(-1)

    def select_rows(self, node: NodeStats, u: torch.Tensor) -> torch.Tensor:
        """:meth:`select` for a batch of nodes: a uniform draw (``u`` ``[R]``) among unvisited actions, else the argmax.

        ``node.counts``: rows ``node.total`` of :meth:`count_table`, to skip recomputing them.
        """
        q, n, counts = node.q, node.visits, node.counts
        unvisited = n == 0
        count = unvisited.sum(-1)
        # the floor(u * count)-th unvisited action: the first whose running count of unvisited ones exceeds it
        pick = (u * count).long().unsqueeze(-1)
        first_unvisited = (unvisited & (unvisited.cumsum(-1) > pick)).to(torch.int8).argmax(-1)
        log_n = self._counts(node.total.to(q.dtype)) if counts is None else counts
        index = q + self.c * torch.sqrt(log_n / n.to(q.dtype).clamp_min(1.0))
        # torch.argmax returns the first maximal index, the tie rule of :meth:`select`
        return torch.where(count > 0, first_unvisited, index.argmax(-1))


class TsallisScore(E2WScore):
    """E3W with the Tsallis entropy, the tree policy of TENTS ([TENTS] Sec. 3-4): the E2W mixture over sparsemax instead
    of softmax, ``pi(a|s) = (1 - lambda_s) sparsemax(Q(s, .) / tau)(a) + lambda_s / |A|`` with ``lambda_s`` as in E2W
    (:func:`exploration_weight`), searched on the values :class:`~torchrl_reg.planning.backups.TsallisBackup` backs up.
    Sparsemax gives actions far below the best none of the greedy share: they are tried through ``lambda_s`` alone.

    Args:
        tau: the temperature of the Tsallis-regularized objective (> 0), the backup's.
        eps: the exploration parameter epsilon (>= 0), as in :class:`E2WScore`.

    E2W's parts (its arguments, the mixture weights of :meth:`count_table`, :meth:`select_rows`) with sparsemax in the
    distribution's place; the algorithm table tells the two apart by their exact classes.
    """

    def _mixture(self, values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return weights[..., 0:1] * sparsemax_rows(values / self.tau)[0] + weights[..., 1:2]

    def forward(self, node: TensorDictBase) -> TensorDictBase:
        q = node.get(self.q_value_key)
        n_total = torch.as_tensor(node.get(self.total_visits_key), dtype=q.dtype).expand(q.shape[:-1])
        node.set(self.score_key, self._mixture(q, mixture_weights(n_total, q.shape[-1], self.eps)))
        return node

    def probs(self, node: NodeStats) -> list[float]:
        """The distribution at one node (``node.q``, ``node.total``)."""
        q, k = node.q, len(node.q)
        lam = exploration_weight(self.eps, k, node.total)
        return [(1.0 - lam) * p + lam / k for p in sparsemax([qa / self.tau for qa in q])]

    def select(self, node: NodeStats, u: float) -> int:
        """One action at one node, drawn with the uniform ``u`` in [0, 1) (inverse CDF, as :func:`sample_rows`)."""
        acc = 0.0
        probs = self.probs(node)
        for a, p in enumerate(probs):
            acc += p
            if u < acc:
                return a
        return len(probs) - 1

    def probs_rows(self, node: NodeStats) -> torch.Tensor:
        """The distribution ``[R, A]`` for a batch of nodes (``node.q`` ``[R, A]``, ``node.total`` ``[R]``; ``node.counts``:
        rows of :meth:`count_table`)."""
        counts = node.counts
        if counts is None:
            counts = mixture_weights(node.total.to(node.q.dtype), node.q.shape[-1], self.eps)
        return self._mixture(node.q, counts)

