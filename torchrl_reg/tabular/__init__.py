"""Exact dynamic programming on finite MDPs (float64): the oracle for the theory and the deep losses.

* :mod:`~torchrl_reg.tabular.mdp` -- :class:`FiniteMDP` and the Garnet / MIRL grid world /
  deceptive chain generators;
* :mod:`~torchrl_reg.tabular.algorithms` -- VI, soft VI, MD-VI, M-VI, IQ-DP, (persistent)
  advantage learning, exact and with injected errors; regularized policy evaluation and optimum;
* :mod:`~torchrl_reg.tabular.mirl` -- MIRL's soft backup with a learned prior, prior update,
  beta schedule and the alternating scheme;
* :mod:`~torchrl_reg.tabular.theory` -- the action-gap constant and the error-propagation bounds;
* :mod:`~torchrl_reg.tabular.mdac` -- MDAC's bounded advantage learning and its hard-limit fixed point;
* :mod:`~torchrl_reg.tabular.virel` -- VIREL: policy evaluation of the Boltzmann policy whose
  temperature is the current Bellman error.
"""
from __future__ import annotations

from torchrl_reg.tabular.algorithms import (
    DPResult,
    RegularizedOptimum,
    advantage_learning,
    bellman_optimality_operator,
    greedy_policy,
    implicit_q_dp,
    mirror_descent_vi,
    munchausen_vi,
    regularized_optimum,
    regularized_policy_evaluation,
    soft_bellman_operator,
    soft_value_iteration,
    value_iteration,
)
from torchrl_reg.tabular.mdac import bounded_advantage_learning, bounded_advantage_learning_limit
from torchrl_reg.tabular.mdp import FiniteMDP, deceptive_chain, garnet, mirl_grid_world
from torchrl_reg.tabular.mirl import (
    MIRLResult,
    action_marginal,
    discounted_state_visitation,
    linear_beta_schedule,
    mirl_policy,
    mirl_prior_update,
    mirl_soft_backup,
    mirl_value_iteration,
    optimal_prior,
    prior_soft_value,
    stationary_state_distribution,
)
from torchrl_reg.tabular.virel import VIRELResult, boltzmann_bellman_operator, virel_iteration, virel_temperature
from torchrl_reg.tabular.theory import (
    approximate_vi_bound,
    entropy_kl_mdvi_bound,
    kl_only_mdvi_bound,
    munchausen_action_gap_ratio,
    munchausen_vi_limit,
)

__all__ = [
    "bounded_advantage_learning",
    "bounded_advantage_learning_limit",
    "FiniteMDP",
    "garnet",
    "mirl_grid_world",
    "deceptive_chain",
    "DPResult",
    "RegularizedOptimum",
    "greedy_policy",
    "bellman_optimality_operator",
    "soft_bellman_operator",
    "regularized_policy_evaluation",
    "regularized_optimum",
    "value_iteration",
    "soft_value_iteration",
    "mirror_descent_vi",
    "munchausen_vi",
    "implicit_q_dp",
    "advantage_learning",
    "MIRLResult",
    "prior_soft_value",
    "mirl_policy",
    "mirl_soft_backup",
    "action_marginal",
    "discounted_state_visitation",
    "stationary_state_distribution",
    "optimal_prior",
    "mirl_prior_update",
    "linear_beta_schedule",
    "mirl_value_iteration",
    "munchausen_action_gap_ratio",
    "munchausen_vi_limit",
    "approximate_vi_bound",
    "kl_only_mdvi_bound",
    "entropy_kl_mdvi_bound",
    "VIRELResult",
    "boltzmann_bellman_operator",
    "virel_temperature",
    "virel_iteration",
]
