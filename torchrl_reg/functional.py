"""Pure tensor functions of regularized RL, one equation each.

Naming follows rlax: ``q_tm1`` are action values at the state where the action
``a_tm1`` was taken, ``r_t`` the reward that followed, ``discount_t`` the
bootstrap factor (``gamma ** n`` times ``1 - terminated``) and ``q_t`` the action
values at the next state. The action dimension is always the last one.

References (papers in ``shared/papers``):

* [MRL] Vieillard, Pietquin, Geist. Munchausen Reinforcement Learning (slides,
  ``munchausen-rl-slides.txt``). The M-DQN regression target is on the slide
  "Case study: DQN"; the advantage-learning limit on "Increasing the action gap".
* [MaxEnt] Maximum-entropy RL slides (``maximum-entropy-rl-slides.txt``): soft
  value ``V(s) = tau * log sum_a exp(Q(s, a) / tau)``.
* [AL] Bellemare et al. 2016, Increasing the Action Gap: advantage learning and
  persistent advantage learning.

Every function is written in the numerically stable form (max subtracted before
``exp``) so that it stays finite in float32 for ``tau`` from 1e-4 to 10 and
q-values of magnitude 1e4.
"""
from __future__ import annotations

import torch

__all__ = [
    "check_tau",
    "boltzmann_policy",
    "soft_value_and_scaled_log_policy",
    "scaled_log_policy",
    "soft_value",
    "clipped_munchausen_term",
    "munchausen_bonus",
    "soft_q_target",
    "munchausen_target",
    "advantage_learning_bonus",
    "persistent_advantage_learning_bonus",
    "advantage_learning_target",
    "persistent_advantage_learning_target",
    "action_gap",
    "policy_entropy",
]


def check_tau(tau: float) -> float:
    """Return ``tau`` as a float, raising if it is not a finite positive number."""
    tau = float(tau)
    if not tau > 0 or tau == float("inf"):
        raise ValueError(f"tau must be a finite number > 0, got tau={tau}")
    return tau


def _gather(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``x[..., a]`` for integer action indices ``a`` with the shape of ``x[..., 0]``."""
    return x.gather(-1, a.long().unsqueeze(-1)).squeeze(-1)


def soft_value_and_scaled_log_policy(q: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Soft value and scaled log-policy of the Boltzmann policy, in one stable pass.

    .. math:: V(s) = \max_b q(s,b) + \tau \ln \sum_b \exp\frac{q(s,b) - \max_c q(s,c)}{\tau}
    .. math:: \tau \ln \pi(a|s) = q(s,a) - \max_b q(s,b)
              - \tau \ln \sum_b \exp\frac{q(s,b) - \max_c q(s,c)}{\tau}

    so that :math:`\tau \ln \pi = q - V` ([MRL], slide "Increasing the action gap";
    [MaxEnt], soft Q-iteration). Subtracting the max first keeps both finite; the
    log-policy is formed from ``q - max q`` (exact) rather than ``q - V`` (which would
    lose the small differences of large q-values in float32).
    """
    tau = check_tau(tau)
    q_max = q.max(dim=-1, keepdim=True).values
    advantage = q - q_max
    soft_part = tau * torch.logsumexp(advantage / tau, dim=-1, keepdim=True)
    return (q_max + soft_part).squeeze(-1), advantage - soft_part


def scaled_log_policy(q: torch.Tensor, tau: float) -> torch.Tensor:
    r"""Scaled log-policy ``tau * ln softmax(q / tau)`` in the stable form of
    :func:`soft_value_and_scaled_log_policy` ([MRL], "Increasing the action gap")."""
    return soft_value_and_scaled_log_policy(q, tau)[1]


def boltzmann_policy(q: torch.Tensor, tau: float) -> torch.Tensor:
    r"""Boltzmann (softmax) policy ``pi = softmax(q / tau)``, the greedy step of
    entropy-regularized policy iteration ([MRL], slide "Case study: DQN")."""
    tau = check_tau(tau)
    return torch.softmax((q - q.max(dim=-1, keepdim=True).values) / tau, dim=-1)


def soft_value(q: torch.Tensor, tau: float) -> torch.Tensor:
    r"""Soft value ``V(s) = tau * ln sum_a exp(q(s, a) / tau)`` ([MaxEnt], soft Q-iteration).

    Equals ``sum_a pi(a|s) (q(s, a) - tau ln pi(a|s))`` with ``pi = softmax(q / tau)``,
    the bootstrap of the Soft-DQN and M-DQN targets ([MRL], "Case study: DQN"),
    at the cost of one logsumexp.
    """
    return soft_value_and_scaled_log_policy(q, tau)[0]


def clipped_munchausen_term(
    scaled_log_pi_a: torch.Tensor, *, alpha: float, clip_value_min: float = -1.0, clip_value_max: float = 0.0
) -> torch.Tensor:
    """``alpha * clip(tau ln pi(a|s), l0, u)`` from the scaled log-policy of the taken action ([MRL])."""
    return alpha * scaled_log_pi_a.clamp(clip_value_min, clip_value_max)


def munchausen_bonus(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    *,
    alpha: float,
    tau: float,
    clip_value_min: float = -1.0,
    clip_value_max: float = 0.0,
) -> torch.Tensor:
    r"""Munchausen reward bonus ``alpha * clip(tau ln pi(a_tm1|s_tm1), l0, u)``.

    ``q_tm1`` must come from the **target** network ([MRL], "Case study: DQN":
    both log-policies use :math:`\bar\theta`). The paper clips to ``[l0, 0]`` with
    ``l0 = -1``; the official M-DQN code clips to ``[l0, 1]`` (the upper bound is
    inactive since ``tau ln pi <= 0``).
    """
    log_pi_a = _gather(scaled_log_policy(q_tm1, tau), a_tm1)
    return clipped_munchausen_term(log_pi_a, alpha=alpha, clip_value_min=clip_value_min, clip_value_max=clip_value_max)


def soft_q_target(
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t: torch.Tensor,
    *,
    tau: float,
) -> torch.Tensor:
    r"""Soft-DQN target ``r_t + discount_t * tau * logsumexp(q_t / tau)`` ([MRL], "Case study: DQN", S-DQN)."""
    return r_t + discount_t * soft_value(q_t, tau)


def munchausen_target(
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    q_t: torch.Tensor,
    *,
    alpha: float,
    tau: float,
    clip_value_min: float = -1.0,
    clip_value_max: float = 0.0,
) -> torch.Tensor:
    r"""M-DQN regression target ([MRL], slide "Case study: DQN"):

    .. math:: r_t + \alpha\,\mathrm{clip}(\tau \ln\pi_{\bar\theta}(a_t|s_t), l_0, u)
              + \gamma \sum_{a'} \pi_{\bar\theta}(a'|s_{t+1})
                (q_{\bar\theta}(s_{t+1}, a') - \tau \ln \pi_{\bar\theta}(a'|s_{t+1}))

    with ``pi = softmax(q / tau)``. ``q_tm1`` and ``q_t`` are both target-network
    values. ``alpha = 0`` gives the Soft-DQN target.
    """
    bonus = munchausen_bonus(
        q_tm1, a_tm1, alpha=alpha, tau=tau, clip_value_min=clip_value_min, clip_value_max=clip_value_max
    )
    return r_t + bonus + discount_t * soft_value(q_t, tau)


def advantage_learning_bonus(q_tm1: torch.Tensor, a_tm1: torch.Tensor, *, alpha: float) -> torch.Tensor:
    r"""Advantage-learning correction ``alpha * (q(s_t, a_t) - max_a q(s_t, a))`` ([AL]; always <= 0).

    It is the tau -> 0 limit of the Munchausen bonus ``alpha * tau ln pi(a_t|s_t)``
    ([MRL], slide "Increasing the action gap").
    """
    return alpha * (_gather(q_tm1, a_tm1) - q_tm1.max(dim=-1).values)


def persistent_advantage_learning_bonus(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    q_t: torch.Tensor,
    not_terminal_t: torch.Tensor,
    *,
    alpha: float,
) -> torch.Tensor:
    r"""Persistent advantage-learning correction ([AL], :math:`\mathcal{T}_{PAL}`):

    .. math:: \max\{\alpha (q(s_t, a_t) - \max_a q(s_t, a)),\;
              -\alpha (\max_a q(s_{t+1}, a) - q(s_{t+1}, a_t))\}

    added to the Bellman target :math:`r_t + \gamma \max_{a'} q(s_{t+1}, a')`, so that
    the target is :math:`\max(\mathcal{T}_{AL} q, \mathcal{T} q - \alpha(V(s_{t+1}) - q(s_{t+1}, a_t)))`.
    After a terminal step the next state is absorbing (all its values equal), so the
    persistent term is 0 there: ``not_terminal_t`` masks it.
    """
    al = advantage_learning_bonus(q_tm1, a_tm1, alpha=alpha)
    persistent = -alpha * (q_t.max(dim=-1).values - _gather(q_t, a_tm1))
    return torch.maximum(al, persistent * not_terminal_t.to(q_t.dtype))


def advantage_learning_target(
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    q_t: torch.Tensor,
    *,
    alpha: float,
) -> torch.Tensor:
    r"""Advantage-learning target ([AL]; the tau -> 0 limit of M-DQN, [MRL]):

    .. math:: r_t + \alpha (q(s_t, a_t) - \max_a q(s_t, a)) + \gamma \max_{a'} q(s_{t+1}, a')
    """
    return r_t + advantage_learning_bonus(q_tm1, a_tm1, alpha=alpha) + discount_t * q_t.max(dim=-1).values


def persistent_advantage_learning_target(
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    q_t: torch.Tensor,
    *,
    alpha: float,
) -> torch.Tensor:
    r"""Persistent advantage-learning target ([AL]): the Bellman target
    :math:`r_t + \gamma \max_{a'} q(s_{t+1}, a')` plus
    :func:`persistent_advantage_learning_bonus`; a zero ``discount_t`` marks a terminal step."""
    bonus = persistent_advantage_learning_bonus(q_tm1, a_tm1, q_t, discount_t != 0, alpha=alpha)
    return r_t + bonus + discount_t * q_t.max(dim=-1).values


def action_gap(q: torch.Tensor) -> torch.Tensor:
    """Gap between the best and the second-best action value ([AL], [MRL] "Increasing the action gap")."""
    if q.shape[-1] < 2:
        return torch.zeros_like(q[..., 0])
    top2 = q.topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


def policy_entropy(q: torch.Tensor, tau: float) -> torch.Tensor:
    """Entropy of ``softmax(q / tau)`` in nats, from the stable log-policy."""
    log_pi = scaled_log_policy(q, tau) / check_tau(tau)
    return -(log_pi.exp() * log_pi).sum(-1)
