"""MIRL's learned action prior and its behaviour policy.

Paper: [MIRL] Grau-Moya, Leibfried, Vrancx, "Soft Q-Learning with Mutual-Information
Regularization", ICLR 2019 (OpenReview HyEtjoCqFX): the optimal policy for a prior ``rho`` is
``pi(a|s) ∝ rho(a) exp(beta Q(s, a))``; the behaviour policy (described with Algorithm 1) takes
``argmax_a pi(a|s)`` and, with probability epsilon, samples an action from ``rho`` instead of the
uniform distribution.

:class:`ActionPrior` holds the state both sides need (``rho`` and ``beta``) as buffers, so a
single instance is shared by :class:`~torchrl_reg.objectives.mirl.MIRLLoss` (which updates it)
and :class:`PriorEGreedyModule` (which acts with it), and is saved in their ``state_dict``.
"""
from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn
from torchrl.data.tensor_specs import TensorSpec
from torchrl.envs.utils import ExplorationType, exploration_type

from torchrl_reg import functional as F
from torchrl_reg.modules.exploration import discrete_action_space
from torchrl_reg.validation import check_beta, check_prior

__all__ = ["ActionPrior", "PriorEGreedyModule"]


class ActionPrior(nn.Module):
    r"""The action prior ``rho`` and inverse temperature ``beta`` of MIRL, as buffers.

    Args:
        num_actions (int): number of discrete actions.

    Keyword Args:
        beta (float): initial inverse temperature (> 0). Default 1.0.
        rho (Tensor, optional): initial prior, a distribution over actions. Default uniform.
        prior_in_backup (bool): whether ``rho`` weights the soft backup and the policy
            ``pi ∝ rho exp(beta q)`` (MIRL, default). ``False`` keeps both uniform and uses ``rho``
            only for exploration, as in the paper's ablation SQL_m (``rho`` then tracks the
            action marginal of the soft Q-learning policy).

    The quantities of the paper, for action values ``q`` of shape ``[..., num_actions]``:
    :meth:`policy` (``pi``), :meth:`log_policy`, :meth:`soft_value`
    (``(1/beta) ln sum_a rho(a) exp(beta q(a))``), :meth:`greedy_action` (``argmax_a pi(a|s)``)
    and :meth:`kl` (``KL(pi(.|s) || rho)``); all read the current buffers.
    """

    rho: torch.Tensor
    beta: torch.Tensor

    def __init__(
        self,
        num_actions: int,
        *,
        beta: float = 1.0,
        rho: torch.Tensor | None = None,
        prior_in_backup: bool = True,
    ) -> None:
        super().__init__()
        num_actions = int(num_actions)
        if num_actions < 1:
            raise ValueError(f"num_actions must be >= 1, got num_actions={num_actions}")
        if rho is None:
            rho = torch.full((num_actions,), 1.0 / num_actions)
        rho = check_prior(rho, num_actions).detach().clone().float()
        self.register_buffer("rho", rho / rho.sum())
        self.register_buffer("beta", torch.tensor(check_beta(beta)))
        self.prior_in_backup = bool(prior_in_backup)

    @property
    def num_actions(self) -> int:
        return self.rho.shape[0]

    def backup_prior(self) -> torch.Tensor:
        """The prior inside the backup and the policy: ``rho``, or uniform when ``prior_in_backup=False``."""
        if self.prior_in_backup:
            return self.rho
        return torch.full_like(self.rho, 1.0 / self.num_actions)

    def set_rho(self, rho: torch.Tensor) -> None:
        """Overwrite the prior in place (checked to be a distribution)."""
        self.rho.copy_(check_prior(rho, self.num_actions))

    def set_beta(self, beta: float) -> None:
        """Overwrite beta in place (checked to be finite and > 0)."""
        self.beta.fill_(check_beta(beta))

    def soft_value(self, q: torch.Tensor) -> torch.Tensor:
        """``(1/beta) ln sum_a rho(a) exp(beta q(s, a))`` (:func:`~torchrl_reg.functional.prior_soft_value`)."""
        return F.prior_soft_value(q, self.backup_prior(), self.beta)

    def policy(self, q: torch.Tensor) -> torch.Tensor:
        """``pi(a|s) ∝ rho(a) exp(beta q(s, a))`` (:func:`~torchrl_reg.functional.prior_boltzmann_policy`)."""
        return F.prior_boltzmann_policy(q, self.backup_prior(), self.beta)

    def log_policy(self, q: torch.Tensor) -> torch.Tensor:
        """``ln pi(a|s)`` (:func:`~torchrl_reg.functional.prior_log_policy`)."""
        return F.prior_log_policy(q, self.backup_prior(), self.beta)

    def kl(self, q: torch.Tensor) -> torch.Tensor:
        """``KL(pi(.|s) || rho)`` (:func:`~torchrl_reg.functional.kl_to_prior`)."""
        return F.kl_to_prior(q, self.backup_prior(), self.beta)

    def greedy_action(self, q: torch.Tensor) -> torch.Tensor:
        """``argmax_a pi(a|s) = argmax_a [ln rho(a) + beta q(s, a)]`` (action indices)."""
        return (torch.log(self.backup_prior().to(q.dtype)) + self.beta.to(q.dtype) * q).argmax(-1)

    def sample(self, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
        """Action indices of the given shape drawn i.i.d. from ``rho`` (the exploration of MIRL)."""
        n = 1
        for size in shape:
            n *= size
        return torch.multinomial(self.rho, max(n, 1), replacement=True)[:n].view(shape)

    def entropy(self) -> torch.Tensor:
        """Entropy of ``rho`` in nats."""
        rho = self.rho
        return -torch.where(rho > 0, rho * torch.log(rho), torch.zeros_like(rho)).sum()

    def extra_repr(self) -> str:
        return f"num_actions={self.num_actions}, beta={float(self.beta):.4g}, prior_in_backup={self.prior_in_backup}"


class PriorEGreedyModule(TensorDictModuleBase):
    r"""MIRL's behaviour policy ([MIRL], Algorithm 1):

    .. math:: a_i = \begin{cases} \arg\max_a \pi_i(a|s_i) & u \ge \epsilon \\
                                   a \sim \rho_i(a) & u < \epsilon \end{cases}
              \qquad \pi_i(a|s) \propto \rho_i(a) \exp(\beta q(s, a))

    Put it after a :class:`~torchrl.modules.QValueActor` (it reads ``action_value`` and
    overwrites ``action`` and ``chosen_action_value``). Under
    ``set_exploration_type(ExplorationType.DETERMINISTIC)`` (evaluation) it is greedy:
    ``argmax_a pi(a|s)``, which is ``argmax_a q(s, a)`` for a uniform prior. With a fixed
    uniform prior the whole module is ordinary epsilon-greedy (the SQL baseline).

    Args:
        spec (TensorSpec or str): the action spec (``Categorical`` or ``OneHot``) or
            ``"categorical"`` / ``"one-hot"``: how actions are encoded.
        eps_init (float): initial epsilon in [0, 1]. Default 1.0.
        eps_end (float): final epsilon in [0, eps_init]. Default 0.01 (DQN's Atari protocol).
        annealing_num_steps (int): frames over which epsilon decays linearly. Default 250_000.

    Keyword Args:
        prior (ActionPrior): the prior shared with :class:`~torchrl_reg.objectives.mirl.MIRLLoss`
            (``loss.prior``).
        action_key, action_value_key, chosen_action_value_key (NestedKey): tensordict keys.

    Call :meth:`step` with the number of collected frames to anneal epsilon.
    """

    def __init__(
        self,
        spec: TensorSpec | str,
        eps_init: float = 1.0,
        eps_end: float = 0.01,
        annealing_num_steps: int = 250_000,
        *,
        prior: ActionPrior,
        action_key: NestedKey = "action",
        action_value_key: NestedKey = "action_value",
        chosen_action_value_key: NestedKey = "chosen_action_value",
    ) -> None:
        eps_init, eps_end = float(eps_init), float(eps_end)
        if not 0.0 <= eps_end <= eps_init <= 1.0:
            raise ValueError(
                f"epsilon must satisfy 0 <= eps_end <= eps_init <= 1, got eps_init={eps_init}, eps_end={eps_end}"
            )
        if int(annealing_num_steps) < 1:
            raise ValueError(f"annealing_num_steps must be >= 1, got annealing_num_steps={annealing_num_steps}")
        if not isinstance(prior, ActionPrior):
            raise TypeError(f"prior must be an ActionPrior (e.g. loss.prior), got {type(prior).__name__}")
        space = discrete_action_space("PriorEGreedyModule", spec, names=True)
        super().__init__()
        self.action_space = space
        self.prior = prior
        self.action_key = action_key
        self.action_value_key = action_value_key
        self.chosen_action_value_key = chosen_action_value_key
        self.in_keys = [action_value_key]
        self.out_keys = [action_key, chosen_action_value_key]
        self.annealing_num_steps = int(annealing_num_steps)
        self.register_buffer("eps_init", torch.tensor(eps_init))
        self.register_buffer("eps_end", torch.tensor(eps_end))
        self.register_buffer("eps", torch.tensor(eps_init))

    def step(self, frames: int = 1) -> None:
        """Decay epsilon linearly by ``frames`` frames (no-op once ``eps_end`` is reached)."""
        decrement = (self.eps_init - self.eps_end) * frames / self.annealing_num_steps
        self.eps.copy_(torch.maximum(self.eps_end, self.eps - decrement))

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        q = tensordict.get(self.action_value_key)
        with torch.no_grad():
            action = self.prior.greedy_action(q)
            if exploration_type() in (ExplorationType.RANDOM, None):
                explore = torch.rand(action.shape, device=q.device) < self.eps
                action = torch.where(explore, self.prior.sample(action.shape).to(action.device), action)
        chosen = q.gather(-1, action.unsqueeze(-1))
        if self.action_space == "one_hot":
            encoded = torch.nn.functional.one_hot(action, q.shape[-1])
            previous = tensordict.get(self.action_key, None)
            encoded = encoded.to(previous.dtype if previous is not None else torch.long)
        else:
            previous = tensordict.get(self.action_key, None)
            encoded = action.view_as(previous) if previous is not None else action
        tensordict.set(self.action_key, encoded)
        tensordict.set(self.chosen_action_value_key, chosen)
        return tensordict
