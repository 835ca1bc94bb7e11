"""Finite MDPs for exact dynamic programming, and the generators used by the tests and benchmarks.

An MDP is ``(P, r, gamma)`` with ``P[s, a, s'] = P(s'|s, a)`` and ``r[s, a]`` the expected
reward of taking ``a`` in ``s``, stored in float64 so that the theorems of the papers can be
checked to numerical precision. Notation follows the IQ paper
(Vieillard et al., "Implicitly Regularized RL with Implicit Q-Values", AISTATS 2022, arXiv:2108.07041, Section 3): ``(P V)(s, a) = sum_s' P(s'|s, a) V(s')``.

Generators:

* :func:`garnet`: seeded random Garnet MDPs (each ``(s, a)`` reaches ``branching`` random
  states with random probabilities), the test bed of "Leverage the average" and of the
  Munchausen paper's tabular experiments.
* :func:`mirl_grid_world`: the grid world of MIRL's tabular experiment
  (Grau-Moya, Leibfried, Vrancx, ICLR 2019, grid world: reaching the goal gives 9,
  every other step -1, restart at a random location).
* :func:`deceptive_chain`: a chain whose immediate reward lures the agent away from a larger
  delayed one.
"""
from __future__ import annotations

import math

import torch

__all__ = ["FiniteMDP", "garnet", "mirl_grid_world", "deceptive_chain", "GRID_ACTIONS"]

# Tolerance on the row sums of the transition kernel: float64 round-off of a normalized row of a
# few hundred entries is ~1e-15, user-built kernels from float32 data are ~1e-7 off.
_ROW_SUM_ATOL = 1e-6


class FiniteMDP:
    """A finite discounted MDP ``(P, r, gamma)``, validated and stored in float64.

    Args:
        transitions: ``P[s, a, s'] = P(s'|s, a)``, shape ``[S, A, S]``; every entry >= 0 and
            every row ``P[s, a, :]`` sums to 1. Rows are renormalized after the check so that
            float32 input does not leak round-off into the float64 algorithms.
        rewards: ``r[s, a]``, shape ``[S, A]``, finite.
        gamma: discount factor in ``[0, 1)``.
        initial_distribution: distribution of the first state, shape ``[S]`` (default uniform).
            Used by the discounted state visitation (MIRL's optimal prior) and by returns.

    Raises:
        ValueError: naming the bad value and the accepted range, for wrong shapes, negative or
            unnormalized probabilities, non-finite rewards or ``gamma`` outside ``[0, 1)``.
    """

    def __init__(
        self,
        transitions: torch.Tensor,
        rewards: torch.Tensor,
        gamma: float,
        initial_distribution: torch.Tensor | None = None,
    ) -> None:
        transitions = torch.as_tensor(transitions, dtype=torch.float64)
        rewards = torch.as_tensor(rewards, dtype=torch.float64)
        if transitions.ndim != 3 or transitions.shape[0] != transitions.shape[2]:
            raise ValueError(
                f"transitions must have shape [S, A, S] (P[s, a, s'] = P(s'|s, a)), got {tuple(transitions.shape)}"
            )
        num_states, num_actions, _ = transitions.shape
        if num_states < 1 or num_actions < 1:
            raise ValueError(f"an MDP needs at least one state and one action, got shape {tuple(transitions.shape)}")
        if rewards.shape != (num_states, num_actions):
            raise ValueError(
                f"rewards must have shape [S, A] = {(num_states, num_actions)} to match transitions, "
                f"got {tuple(rewards.shape)}"
            )
        if not torch.isfinite(transitions).all():
            raise ValueError("transitions must be finite probabilities in [0, 1], got NaN or inf entries")
        if (transitions < 0).any():
            s, a, s_next = (transitions < 0).nonzero()[0].tolist()
            raise ValueError(
                f"transition probabilities must be >= 0, got P[{s}, {a}, {s_next}] = {transitions[s, a, s_next].item()}"
            )
        row_sums = transitions.sum(-1)
        if ((row_sums - 1).abs() > _ROW_SUM_ATOL).any():
            s, a = ((row_sums - 1).abs() > _ROW_SUM_ATOL).nonzero()[0].tolist()
            raise ValueError(
                f"every row P[s, a, :] must sum to 1 (tolerance {_ROW_SUM_ATOL}), "
                f"got sum(P[{s}, {a}, :]) = {row_sums[s, a].item()}"
            )
        if not torch.isfinite(rewards).all():
            raise ValueError("rewards must be finite, got NaN or inf entries")
        gamma = float(gamma)
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got gamma={gamma}")
        if initial_distribution is None:
            initial_distribution = torch.full((num_states,), 1.0 / num_states, dtype=torch.float64)
        initial_distribution = torch.as_tensor(initial_distribution, dtype=torch.float64)
        if initial_distribution.shape != (num_states,):
            raise ValueError(
                f"initial_distribution must have shape [S] = [{num_states}], got {tuple(initial_distribution.shape)}"
            )
        if (initial_distribution < 0).any() or abs(initial_distribution.sum().item() - 1) > _ROW_SUM_ATOL:
            raise ValueError(
                f"initial_distribution must be a probability vector (entries >= 0 summing to 1), "
                f"got min {initial_distribution.min().item()} and sum {initial_distribution.sum().item()}"
            )
        self.transitions = transitions / row_sums.unsqueeze(-1)
        self.rewards = rewards
        self.gamma = gamma
        self.initial_distribution = initial_distribution / initial_distribution.sum()

    @property
    def num_states(self) -> int:
        return self.transitions.shape[0]

    @property
    def num_actions(self) -> int:
        return self.transitions.shape[1]

    @property
    def r_max(self) -> float:
        """``max |r(s, a)|``, the reward bound of the error-propagation theorems."""
        return self.rewards.abs().max().item()

    def expected_next(self, v: torch.Tensor) -> torch.Tensor:
        """``(P v)(s, a) = sum_s' P(s'|s, a) v(s')`` for ``v`` of shape ``[..., S]`` -> ``[..., S, A]``."""
        return torch.einsum("ijk,...k->...ij", self.transitions, v.to(torch.float64))

    def policy_transitions(self, policy: torch.Tensor) -> torch.Tensor:
        """State-to-state kernel ``P_pi[s, s'] = sum_a pi(a|s) P(s'|s, a)`` of a policy ``[S, A]``."""
        return torch.einsum("ij,ijk->ik", policy, self.transitions)

    def __repr__(self) -> str:
        return f"FiniteMDP(num_states={self.num_states}, num_actions={self.num_actions}, gamma={self.gamma})"


def _check_int(name: str, value: int, minimum: int) -> int:
    if int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {name}={value}")
    return int(value)


def garnet(
    num_states: int,
    num_actions: int,
    branching: int,
    *,
    gamma: float = 0.9,
    seed: int = 0,
    reward_range: tuple[float, float] = (-1.0, 1.0),
) -> FiniteMDP:
    """A random Garnet MDP, reproducible from ``seed``.

    Each ``(s, a)`` leads to ``branching`` distinct states drawn uniformly without replacement,
    with probabilities given by the gaps between ``branching - 1`` sorted uniform cut points of
    ``[0, 1]`` (a uniform draw on the simplex). Rewards are drawn uniformly in ``reward_range``
    for every ``(s, a)``.
    """
    num_states = _check_int("num_states", num_states, 1)
    num_actions = _check_int("num_actions", num_actions, 1)
    branching = _check_int("branching", branching, 1)
    if branching > num_states:
        raise ValueError(f"branching must be in [1, num_states={num_states}], got branching={branching}")
    low, high = (float(x) for x in reward_range)
    if not low <= high:
        raise ValueError(f"reward_range must be (low, high) with low <= high, got {reward_range}")
    generator = torch.Generator().manual_seed(seed)
    next_states = torch.rand(num_states, num_actions, num_states, generator=generator).argsort(-1)[..., :branching]
    cuts = torch.rand(num_states, num_actions, branching - 1, generator=generator, dtype=torch.float64).sort(-1).values
    edges = torch.cat(
        [torch.zeros(num_states, num_actions, 1, dtype=torch.float64), cuts, torch.ones(num_states, num_actions, 1, dtype=torch.float64)],
        dim=-1,
    )
    transitions = torch.zeros(num_states, num_actions, num_states, dtype=torch.float64)
    transitions.scatter_(-1, next_states, edges.diff(dim=-1))
    rewards = low + (high - low) * torch.rand(num_states, num_actions, generator=generator, dtype=torch.float64)
    return FiniteMDP(transitions, rewards, gamma)


# (row, column) displacement of each grid action, in the order of the action indices.
GRID_ACTIONS = {"up": (-1, 0), "right": (0, 1), "down": (1, 0), "left": (0, -1), "stay": (0, 0)}


def mirl_grid_world(
    size: int = 8,
    *,
    goal: tuple[int, int] | None = None,
    gamma: float = 0.99,
    goal_reward: float = 9.0,
    step_reward: float = -1.0,
    include_stay: bool = True,
) -> FiniteMDP:
    """The grid world of MIRL's tabular experiment (Grau-Moya, Leibfried, Vrancx, ICLR 2019: reaching the goal gives 9, every other
    step -1, restarted in a random location).

    A ``size x size`` grid; the actions move one cell (``up, right, down, left`` and, with
    ``include_stay``, ``stay``; see :data:`GRID_ACTIONS`), a move into a wall leaves the agent in
    place. A move that enters the goal cell earns ``goal_reward`` and restarts the agent in a
    uniformly random non-goal cell; every other step earns ``step_reward``. The goal cell is
    therefore never occupied and is not a state: the ``size**2 - 1`` states are the other cells in
    row-major order (the goal skipped). The default goal is the bottom-right corner. ``stay`` is
    never useful, which is the situation the learned prior of MIRL is meant to exploit.
    """
    size = _check_int("size", size, 2)
    goal = (size - 1, size - 1) if goal is None else tuple(goal)
    if len(goal) != 2 or not all(0 <= g < size for g in goal):
        raise ValueError(f"goal must be a (row, column) cell with entries in [0, {size - 1}], got goal={goal}")
    cells = [(i, j) for i in range(size) for j in range(size) if (i, j) != goal]
    index = {cell: k for k, cell in enumerate(cells)}
    moves = [GRID_ACTIONS[name] for name in ("up", "right", "down", "left")]
    if include_stay:
        moves.append(GRID_ACTIONS["stay"])
    num_states, num_actions = len(cells), len(moves)
    restart = torch.full((num_states,), 1.0 / num_states, dtype=torch.float64)
    transitions = torch.zeros(num_states, num_actions, num_states, dtype=torch.float64)
    rewards = torch.full((num_states, num_actions), float(step_reward), dtype=torch.float64)
    for (i, j), s in index.items():
        for a, (di, dj) in enumerate(moves):
            target = (min(max(i + di, 0), size - 1), min(max(j + dj, 0), size - 1))
            if target == goal:
                rewards[s, a] = goal_reward
                transitions[s, a] = restart
            else:
                transitions[s, a, index[target]] = 1.0
    return FiniteMDP(transitions, rewards, gamma, initial_distribution=restart)


def deceptive_chain(
    num_states: int = 10,
    *,
    gamma: float = 0.9,
    lure_reward: float = 0.1,
    goal_reward: float = 1.0,
    slip: float = 0.0,
) -> FiniteMDP:
    """A chain whose immediate reward is deceptive.

    States ``0 .. N-1``, start in state 0. Action 0 ("quit") earns ``lure_reward`` at once and
    returns to state 0; action 1 ("advance") earns nothing and moves one step right (with
    probability ``slip`` it fails and returns to state 0); at the last state "advance" earns
    ``goal_reward`` and stays there. A greedy or short-sighted learner keeps taking the lure; the
    optimal policy advances whenever ``gamma ** (N - 1) * goal_reward`` (discounted, slip aside)
    beats ``lure_reward``. Strong entropy regularization also favours the lure, which makes the
    chain a test of how a method trades regularization against delayed reward.
    """
    num_states = _check_int("num_states", num_states, 2)
    if not 0.0 <= slip < 1.0:
        raise ValueError(f"slip must be in [0, 1), got slip={slip}")
    if not (math.isfinite(lure_reward) and math.isfinite(goal_reward)):
        raise ValueError(f"rewards must be finite, got lure_reward={lure_reward}, goal_reward={goal_reward}")
    transitions = torch.zeros(num_states, 2, num_states, dtype=torch.float64)
    rewards = torch.zeros(num_states, 2, dtype=torch.float64)
    transitions[:, 0, 0] = 1.0
    rewards[:, 0] = lure_reward
    for s in range(num_states):
        transitions[s, 1, min(s + 1, num_states - 1)] += 1.0 - slip
        transitions[s, 1, 0] += slip
    rewards[-1, 1] = goal_reward
    initial = torch.zeros(num_states, dtype=torch.float64)
    initial[0] = 1.0
    return FiniteMDP(transitions, rewards, gamma, initial_distribution=initial)
