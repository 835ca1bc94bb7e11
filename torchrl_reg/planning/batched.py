"""Batched Monte-Carlo tree search: B independent trees in preallocated tensors, searched in lockstep.

The layout follows DeepMind's mctx (``mctx/_src/tree.py``, ``search.py``): a tree is a set of
arrays with a leading batch dimension, and one loop of simulate, expand, evaluate and back up runs
over all B trees with tensor operations. Python loops run over simulations and depth levels only,
never over trees or nodes; the tensors' device is the search's device. Unlike mctx the backup is
passed in as well as the tree policy, so the soft (MENTS), Bellman (BTS), Bellman + entropy (DENTS)
and mean (UCT) searches are one loop:

============  ======================  ===================================  =================
algorithm     policy                  backup                               recommendation
============  ======================  ===================================  =================
``ments``     :class:`E2WScore`       :class:`SoftmaxBackup` (``tau``)     ``search_value``
``bts``       :class:`BoltzmannScore` :class:`BellmanBackup`               ``search_value``
``dents``     :class:`DENTSScore`     :class:`BellmanBackup` (entropy)     ``search_value``
``uct``       :class:`UCB1Score`      :class:`MeanBackup`                  ``most_visited``
============  ======================  ===================================  =================

Transitions must be deterministic given the state (the simulator is a pure function of tensors,
:mod:`~torchrl_reg.planning.tensor_simulators`); rewards may be noisy: an edge's reward is the mean
of the rewards observed on it, as in :class:`~torchrl_reg.planning.search.TreeSearch`, which at
``B = 1`` this search reproduces draw for draw when both read the same uniforms.

References:

* [MENTS] Xiao, Huang, Mei, Schuurmans, Muller. Maximum Entropy Monte-Carlo Planning. NeurIPS 2019, Sec. 4.
* [DENTS] Painter, Baioumy, Hawes, Lacerda. Monte Carlo Tree Search with Boltzmann Exploration.
  NeurIPS 2023, arXiv:2404.07732, Sec. 4.
* [UCT] Kocsis, Szepesvari. Bandit based Monte-Carlo Planning. ECML 2006.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

from torchrl_reg.planning.evaluators import TensorRandomRollout
from torchrl_reg.planning.scores import BoltzmannScore, DENTSScore, E2WScore, UCB1Score
from torchrl_reg.planning.search import RECOMMENDATIONS, algorithm_knobs
from torchrl_reg.planning.tensor_simulators import TensorSimulator
from torchrl_reg.validation import check_count, check_positive

__all__ = ["BatchedTree", "SoftmaxBackup", "BellmanBackup", "MeanBackup", "BatchedTreeSearch", "TensorEvaluator", "make_batched_search"]

Policy = E2WScore | DENTSScore | UCB1Score
# (simulator, states [B, *S], gamma) -> (values [B], initial action values [B, A] or None)
TensorEvaluator = Callable[[TensorSimulator, torch.Tensor, float], "tuple[torch.Tensor, torch.Tensor | None]"]


@dataclass
class BatchedTree:
    """The statistics of B trees with ``N`` node slots over ``A`` actions.

    Node ``0`` is each tree's root; tree ``b`` holds nodes ``0 .. size[b] - 1`` in the order they
    were added (the numbering of :class:`~torchrl_reg.planning.tree.SearchTree`). Slots from
    ``size[b]`` on are free; the last slot ``N - 1`` is a scratch node that trees which have
    already stopped write to, so updates need no masks. A search of ``n`` simulations adds at most
    one node per simulation: ``N = n + 2``.

    Node tensors ``[B, N]``: ``value`` (the backup's value: soft, Bellman, or mean return; a new
    node's evaluation), ``bellman`` (``max`` of ``q_bellman`` over tried actions), ``entropy``
    (DENTS's subtree entropy ``H_V``, 0 for the other backups), ``leaf_value`` (the evaluation when
    the node was added, 0 for terminal nodes), ``total`` (``sum_a N(s, a)``, int64), ``terminal``
    (bool). ``size`` ``[B]`` (int64).

    Edge tensors ``[B, N, A]``: ``visits`` (``N(s, a)``, int64), ``reward_sum`` (rewards observed on
    the edge), ``q`` (the softmax or mean backup's action value), ``q_bellman`` (mean reward +
    ``gamma`` ``bellman(child)``), ``entropy_q`` (``H_Q(s, a)``), ``child`` (node id, -1 until
    expanded, int64). Untried actions hold their initial value in ``q`` and ``q_bellman``.
    """

    value: torch.Tensor
    bellman: torch.Tensor
    entropy: torch.Tensor
    leaf_value: torch.Tensor
    total: torch.Tensor
    terminal: torch.Tensor
    size: torch.Tensor
    visits: torch.Tensor
    reward_sum: torch.Tensor
    q: torch.Tensor
    q_bellman: torch.Tensor
    entropy_q: torch.Tensor
    child: torch.Tensor

    @classmethod
    def empty(cls, batch_size: int, slots: int, num_actions: int, *, dtype: torch.dtype, device: torch.device) -> BatchedTree:
        node = (batch_size, slots)
        edge = (batch_size, slots, num_actions)
        zeros = dict(dtype=dtype, device=device)
        return cls(
            value=torch.zeros(node, **zeros),
            bellman=torch.zeros(node, **zeros),
            entropy=torch.zeros(node, **zeros),
            leaf_value=torch.zeros(node, **zeros),
            total=torch.zeros(node, dtype=torch.long, device=device),
            terminal=torch.zeros(node, dtype=torch.bool, device=device),
            size=torch.zeros(batch_size, dtype=torch.long, device=device),
            visits=torch.zeros(edge, dtype=torch.long, device=device),
            reward_sum=torch.zeros(edge, **zeros),
            q=torch.zeros(edge, **zeros),
            q_bellman=torch.zeros(edge, **zeros),
            entropy_q=torch.zeros(edge, **zeros),
            child=torch.full(edge, -1, dtype=torch.long, device=device),
        )

    def tree(self, b: int) -> dict[str, torch.Tensor]:
        """Tree ``b``'s statistics over its own nodes (``[size, ...]``): to inspect or compare one search."""
        n = int(self.size[b])
        return {f.name: getattr(self, f.name)[b, :n] for f in fields(self) if f.name != "size"}


class SoftmaxBackup:
    """MENTS's backup ([MENTS] Sec. 4): ``Q_sft(s, a) = mean r + gamma V_sft(s')``, ``V_sft(s) = tau logsumexp(Q_sft(s, .) / tau)``.

    The log-sum-exp runs over every action, untried ones at their initial value (as in the paper).
    """

    entropy = False

    def __init__(self, *, tau: float):
        self.tau = check_positive("tau", tau)

    def search_values(self, tree: BatchedTree) -> torch.Tensor:
        return tree.q

    def update(self, tree: BatchedTree, at: tuple, step: _Step, policy: Policy) -> None:
        rows, node, action = at
        tree.q[at] = step.mean_reward + step.gamma * tree.value[rows, step.child]
        tree.value[rows, node] = self.tau * torch.logsumexp(tree.q[rows, node] / self.tau, dim=-1)


class BellmanBackup:
    """The Bellman (max) backup of BTS and DENTS ([DENTS] Sec. 4); ``entropy=True`` adds DENTS's entropy backup.

    The Bellman values themselves are kept by the search for every backup (a recommendation may
    read them); this backup makes them the node values. DENTS's entropy backup:
    ``H_Q(s, a) = H_V(s')`` and ``H_V(s) = H(pi(.|s)) + sum_a pi(a|s) H_Q(s, a)`` with ``pi`` the
    tree policy's distribution at ``s`` after the update.
    """

    def __init__(self, *, entropy: bool = False):
        self.entropy = bool(entropy)

    def search_values(self, tree: BatchedTree) -> torch.Tensor:
        return tree.q_bellman

    def update(self, tree: BatchedTree, at: tuple, step: _Step, policy: Policy) -> None:
        rows, node, _ = at
        tree.value[rows, node] = tree.bellman[rows, node]
        if self.entropy:
            tree.entropy_q[at] = tree.entropy[rows, step.child]
            h_q = tree.entropy_q[rows, node]
            probs = policy.probs_rows(tree.q_bellman[rows, node], h_q, tree.total[rows, node])
            plogp = torch.where(probs > 0, probs * torch.log(probs), 0.0)
            tree.entropy[rows, node] = (probs * h_q - plogp).sum(-1)


class MeanBackup:
    """UCT's backup ([UCT]): ``Q(s, a)`` is the mean of the returns that went through ``(s, a)``.

    The first return replaces the initial value instead of being averaged with it. A node's value
    is the mean of all returns through it, ``sum_a N(s, a) Q(s, a) / N(s)``.
    """

    entropy = False

    def search_values(self, tree: BatchedTree) -> torch.Tensor:
        return tree.q

    def update(self, tree: BatchedTree, at: tuple, step: _Step, policy: Policy) -> None:
        rows, node, _ = at
        q = tree.q[at]
        n = step.visits.to(q.dtype)
        tree.q[at] = torch.where(step.visits == 1, step.ret, q + (step.ret - q) / n)
        tree.value[rows, node] = (tree.visits[rows, node].to(q.dtype) * tree.q[rows, node]).sum(-1) / step.total.to(q.dtype)


@dataclass
class _Step:
    """What a backup reads at one level of the backed-up paths (each ``[B]``)."""

    child: torch.Tensor
    visits: torch.Tensor
    total: torch.Tensor
    mean_reward: torch.Tensor
    ret: torch.Tensor
    gamma: float


Backup = SoftmaxBackup | BellmanBackup | MeanBackup


def _uniforms(seed: int, dtype: torch.dtype, device: torch.device) -> Callable[[int], torch.Tensor]:
    gen = torch.Generator(device=device).manual_seed(seed)
    return lambda n: torch.rand(n, generator=gen, dtype=dtype, device=device)


class BatchedTreeSearch:
    """One search over B trees at once (see the module's table for the four algorithms).

    Args:
        simulator: a :class:`~torchrl_reg.planning.tensor_simulators.TensorSimulator`.
        policy: the tree policy, one of the score modules (its ``select_rows`` is called once per
            depth level for all B trees).
        backup: :class:`SoftmaxBackup`, :class:`BellmanBackup` or :class:`MeanBackup`.
        evaluator: leaf evaluation ``(simulator, states, gamma) -> (values, q_init or None)``, one
            call per simulation for all new leaves; default a random rollout.
        recommend: ``"search_value"`` (argmax of the backup's values over tried root actions),
            ``"bellman_value"`` or ``"most_visited"``.
        gamma: discount inside the tree (and of the evaluator's rollouts).
        q_init: the initial value of untried actions when the evaluator gives none.
        seed: seeds the tree policy's uniforms (``uniform`` replaces them: ``n -> [n]`` in [0, 1)).
    """

    def __init__(
        self,
        simulator: TensorSimulator,
        *,
        policy: Policy,
        backup: Backup,
        evaluator: TensorEvaluator | None = None,
        recommend: str = "search_value",
        gamma: float = 1.0,
        q_init: float = 0.0,
        seed: int = 0,
        uniform: Callable[[int], torch.Tensor] | None = None,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ):
        if not isinstance(simulator, TensorSimulator):
            raise TypeError(f"simulator must be a TensorSimulator (num_actions, root, step), got {type(simulator).__name__}")
        if not isinstance(policy, (E2WScore, DENTSScore, UCB1Score)):
            raise TypeError(f"policy must be E2WScore, BoltzmannScore, DENTSScore or UCB1Score, got {type(policy).__name__}")
        if not isinstance(backup, (SoftmaxBackup, BellmanBackup, MeanBackup)):
            raise TypeError(f"backup must be SoftmaxBackup, BellmanBackup or MeanBackup, got {type(backup).__name__}")
        if recommend not in RECOMMENDATIONS:
            raise ValueError(f"recommend must be one of {RECOMMENDATIONS}, got recommend={recommend!r}")
        if not (isinstance(gamma, (int, float)) and 0.0 <= gamma <= 1.0):
            raise ValueError(f"gamma must be a number in [0, 1], got gamma={gamma!r}")
        if not math.isfinite(q_init):
            raise ValueError(f"q_init must be finite, got q_init={q_init}")
        check_parts(policy, backup)
        self.simulator = simulator
        self.policy = policy
        self.backup = backup
        self.device = torch.device(device)
        self.dtype = dtype
        self.evaluator = evaluator if evaluator is not None else TensorRandomRollout(seed=seed)
        self.recommend = recommend
        self.gamma = float(gamma)
        self.q_init = float(q_init)
        self.uniform = uniform if uniform is not None else _uniforms(seed, dtype, self.device)
        self.tree: BatchedTree | None = None

    def search(self, root: torch.Tensor, num_simulations: int) -> torch.Tensor:
        """Run ``num_simulations`` simulations in each of the B trees rooted at ``root`` ``[B, *S]``; the recommended actions ``[B]``."""
        num_simulations = check_count("num_simulations", num_simulations)
        batch = root.shape[0]
        tree = BatchedTree.empty(batch, num_simulations + 2, self.simulator.num_actions, dtype=self.dtype, device=self.device)
        self.tree = tree
        rows = torch.arange(batch, device=self.device)
        everyone = torch.ones(batch, dtype=torch.bool, device=self.device)
        self._add_nodes(tree, rows, root, everyone, ~everyone)
        for _ in range(num_simulations):
            self._simulate(tree, rows, root)
        return self.recommended_action()

    def _add_nodes(self, tree: BatchedTree, rows: torch.Tensor, state: torch.Tensor, added: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """Write new nodes at slot ``size`` of the trees in ``added`` (the others' free slot gets overwritten later)."""
        evaluate = added & ~done
        value = torch.zeros(rows.shape, dtype=self.dtype, device=self.device)
        q_init: torch.Tensor | float = self.q_init
        if bool(evaluate.any()):
            value, given = self.evaluator(self.simulator, state, self.gamma)
            _check_finite("the leaf evaluation", value, evaluate)
            value = torch.where(evaluate, value.to(self.dtype), 0.0)
            if given is not None:
                _check_finite("the evaluator's initial action values", given, evaluate.unsqueeze(-1))
                q_init = torch.where(evaluate.unsqueeze(-1), given.to(self.dtype), self.q_init)
        slot = tree.size.clone()
        for stat in (tree.value, tree.bellman, tree.leaf_value):
            stat[rows, slot] = value
        tree.terminal[rows, slot] = done
        tree.q[rows, slot] = q_init if isinstance(q_init, torch.Tensor) else torch.full_like(tree.q[rows, slot], q_init)
        tree.q_bellman[rows, slot] = tree.q[rows, slot]
        tree.size += added
        return slot

    def _simulate(self, tree: BatchedTree, rows: torch.Tensor, root: torch.Tensor) -> None:
        sim, policy, gamma = self.simulator, self.policy, self.gamma
        batch = rows.shape[0]
        scratch = tree.value.shape[1] - 1
        values = self.backup.search_values(tree)
        node = torch.zeros(batch, dtype=torch.long, device=self.device)
        state = root
        active = torch.ones(batch, dtype=torch.bool, device=self.device)
        expand = torch.zeros_like(active)
        leaf_done = torch.zeros_like(active)
        nonfinite = torch.zeros_like(active)
        leaf_state = root
        # the edge each tree leaves its tree by (the scratch node for a tree that ends in a terminal node it has)
        leaf_node = torch.full_like(node, scratch)
        leaf_action = torch.zeros_like(node)
        end = torch.zeros_like(node)  # the node each path ends in
        path: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        # descend: one tree-policy draw and one model step per level for all trees still inside their tree
        while True:
            action = policy.select_rows(
                values[rows, node], tree.visits[rows, node], tree.entropy_q[rows, node], tree.total[rows, node], self.uniform(batch)
            )
            state_next, reward, done = sim.step(state, action)
            nonfinite |= active & ~torch.isfinite(reward)
            path.append((node, action, reward, active))
            child = tree.child[rows, node, action]
            new = active & (child < 0)
            expand |= new
            leaf_done = torch.where(new, done, leaf_done)
            leaf_node = torch.where(new, node, leaf_node)
            leaf_action = torch.where(new, action, leaf_action)
            leaf_state = torch.where(_rows_like(new, state_next), state_next, leaf_state)
            known = child.clamp_min(0)
            stop = active & (new | tree.terminal[rows, known])
            end = torch.where(stop, known, end)
            active = active & ~stop
            if not bool(active.any()):
                break
            node = torch.where(active, child, scratch)
            state = state_next
        if bool(nonfinite.any()):
            bad = nonfinite.nonzero()[0, 0].item()
            raise ValueError(f"the simulator returned a non-finite reward in tree {bad}; a tree search needs finite rewards")
        slot = self._add_nodes(tree, rows, leaf_state, expand, leaf_done)
        tree.child[rows, leaf_node, leaf_action] = torch.where(expand, slot, -1)
        self._backup(tree, rows, path, torch.where(expand, slot, end))

    def _backup(self, tree: BatchedTree, rows: torch.Tensor, path: list, end: torch.Tensor) -> None:
        gamma, backup, policy = self.gamma, self.backup, self.policy
        # the return the mean backup averages starts at the evaluation of the node each path ended in
        ret = tree.leaf_value[rows, end]
        for node, action, reward, active in reversed(path):
            at = (rows, node, action)
            child = tree.child[at].clamp_min(0)
            ret = torch.where(active, reward + gamma * ret, ret)
            total = tree.total[rows, node] + 1
            tree.total[rows, node] = total
            visits = tree.visits[at] + 1
            tree.visits[at] = visits
            reward_sum = tree.reward_sum[at] + reward
            tree.reward_sum[at] = reward_sum
            mean_reward = reward_sum / visits.to(reward_sum.dtype)
            tree.q_bellman[at] = mean_reward + gamma * tree.bellman[rows, child]
            tried = tree.visits[rows, node] > 0
            tree.bellman[rows, node] = torch.where(tried, tree.q_bellman[rows, node], -math.inf).amax(-1)
            backup.update(tree, at, _Step(child, visits, total, mean_reward, ret, gamma), policy)

    # -- recommendations ----------------------------------------------------------------------
    def root_values(self, kind: str | None = None) -> torch.Tensor:
        """Root action values ``[B, A]`` used by ``kind`` (default: this search's recommendation); untried actions are -inf."""
        kind = kind or self.recommend
        if kind not in RECOMMENDATIONS:
            raise ValueError(f"recommend must be one of {RECOMMENDATIONS}, got {kind!r}")
        tree = self._require_tree()
        visits = tree.visits[:, 0]
        if kind == "most_visited":
            return visits.to(self.dtype)
        q = tree.q_bellman[:, 0] if kind == "bellman_value" else self.backup.search_values(tree)[:, 0]
        return torch.where(visits > 0, q, -math.inf)

    def recommended_action(self, kind: str | None = None) -> torch.Tensor:
        """Argmax of :meth:`root_values` per tree (lowest index on ties), ``[B]``."""
        return self.root_values(kind).argmax(-1)

    def root_value(self) -> torch.Tensor:
        """Each root's value under this search's backup (soft value for MENTS, mean return for UCT), ``[B]``."""
        return self._require_tree().value[:, 0]

    def _require_tree(self) -> BatchedTree:
        if self.tree is None:
            raise RuntimeError("no search has run yet; call search() first")
        return self.tree


def _rows_like(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``mask`` ``[B]`` shaped to broadcast against ``like`` ``[B, *S]``."""
    return mask.reshape(mask.shape + (1,) * (like.dim() - 1))


def _check_finite(what: str, values: torch.Tensor, where: torch.Tensor) -> None:
    bad = where & ~torch.isfinite(values)
    if bool(bad.any()):
        index = bad.nonzero()[0].tolist()
        raise ValueError(f"{what} is not finite at {index}: {values[tuple(index)].item()}; a tree search needs finite values")


def check_parts(policy: Policy, backup: Backup) -> None:
    """Refuse a policy and a backup that disagree: one temperature for MENTS, DENTS's entropy backed up, UCB1 on means."""
    if isinstance(policy, DENTSScore) != (isinstance(backup, BellmanBackup) and backup.entropy):
        raise ValueError(
            f"DENTSScore searches on Bellman values plus the entropy that BellmanBackup(entropy=True) backs up; "
            f"got {type(policy).__name__} with {type(backup).__name__}(entropy={backup.entropy})"
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


def make_batched_search(
    algorithm: str,
    simulator: TensorSimulator,
    *,
    evaluator: TensorEvaluator | None = None,
    tau: float | None = None,
    eps: float | None = None,
    alpha: float | None = None,
    beta_0: float | None = None,
    c: float | None = None,
    recommend: str | None = None,
    gamma: float = 1.0,
    q_init: float = 0.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> BatchedTreeSearch:
    """The batched search of ``algorithm`` from its parts (the module's table), with the knobs of
    :func:`~torchrl_reg.planning.search.make_search` (a knob of another algorithm is refused)."""
    knobs = algorithm_knobs(algorithm, dict(tau=tau, eps=eps, alpha=alpha, beta_0=beta_0, c=c))
    parts = {
        "ments": lambda: (E2WScore(**knobs), SoftmaxBackup(tau=knobs["tau"]), "search_value"),
        "bts": lambda: (BoltzmannScore(**knobs), BellmanBackup(), "search_value"),
        "dents": lambda: (DENTSScore(**knobs), BellmanBackup(entropy=True), "search_value"),
        "uct": lambda: (UCB1Score(**knobs), MeanBackup(), "most_visited"),
    }
    policy, backup, default = parts[algorithm]()
    return BatchedTreeSearch(
        simulator, policy=policy, backup=backup, evaluator=evaluator, recommend=recommend or default,
        gamma=gamma, q_init=q_init, seed=seed, device=device,
    )
