"""MIRL: soft Q-learning with a learned action prior and an adaptive inverse temperature.

Paper: [MIRL] Grau-Moya, Leibfried, Vrancx, "Soft Q-Learning with Mutual-Information
Regularization", ICLR 2019 (OpenReview HyEtjoCqFX): Sec. 3.2 (the loss, Eq. (13), the prior
and beta updates) and Algorithm 1. The baselines of the paper, SQL and SQL_m, are
configurations of the same loss (:data:`VARIANTS`).
"""
from __future__ import annotations

import warnings
from functools import partial
from typing import Literal

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import unravel_key
from torch import nn
from torchrl.data.tensor_specs import TensorSpec
from torchrl.modules.tensordict_module.actors import QValueActor

from torchrl_reg import functional as F
from torchrl_reg.modules.mirl import ActionPrior
from torchrl_reg.objectives.common import RegularizedDQNLossBase, _num_actions, at_second_batch
from torchrl_reg.validation import check_choice, check_nonnegative, check_ordered, check_positive, check_rate

__all__ = ["MIRLLoss", "VARIANTS"]

BETA_SCHEDULES = ("adaptive", "fixed", "linear")

#: The paper's methods as configurations of :class:`MIRLLoss` ([MIRL] Sec. 4, grid world and Atari):
#: MIRL learns the prior and uses it in the backup, the policy and the exploration; SQL keeps a
#: fixed uniform prior (soft Q-learning; with it :class:`~torchrl_reg.modules.mirl.PriorEGreedyModule`
#: is plain epsilon-greedy); SQL_m is SQL whose exploration samples the learned action marginal
#: (the prior is learned but left out of the backup).
VARIANTS: dict[str, dict] = {
    "mirl": {"learn_prior": True, "prior_in_backup": True, "beta_schedule": "adaptive"},
    "sql": {"learn_prior": False, "prior_in_backup": True, "beta_schedule": "fixed"},
    "sql_m": {"learn_prior": True, "prior_in_backup": False, "beta_schedule": "fixed"},
}


class MIRLLoss(RegularizedDQNLossBase):
    r"""MIRL loss ([MIRL] Eq. (13), Sec. 3.2).

    Regresses :math:`q_\theta(s_t, a_t)` on

    .. math::
        (T^\rho_{soft} q_{\bar\theta})(s_t, a_t, s_{t+1})
        = r_t + \gamma \frac{1}{\beta} \ln \sum_{a'} \rho(a') \exp\bigl(\beta\, q_{\bar\theta}(s_{t+1}, a')\bigr)

    with the squared error of Eq. (13) by default. The prior :math:`\rho` and the inverse
    temperature :math:`\beta` live in :attr:`prior` (an :class:`~torchrl_reg.modules.mirl.ActionPrior`,
    buffers saved in ``state_dict``), which the behaviour policy
    :class:`~torchrl_reg.modules.mirl.PriorEGreedyModule` shares. Two methods, called by the
    training loop, run the rest of Algorithm 1:

    * :meth:`update_prior` (line 5) on every collected batch:
      :math:`\rho \leftarrow (1-\alpha_\rho)\rho + \alpha_\rho \pi(\cdot|s_i)` for every collected
      state, over all actions, with :math:`\pi \propto \rho \exp(\beta q_\theta)`;
    * :meth:`update_beta` (line 8) after each optimizer step:
      :math:`\beta \leftarrow (1-\alpha_\beta)\beta + \alpha_\beta / L` (``"adaptive"``), or
      :math:`\beta_n = \beta_0 + c\, n` (``"linear"``, the tabular setting's :math:`\beta_i = c\, i`),
      or constant (``"fixed"``); always clamped to ``[beta_min, beta_max]``.

    With a uniform, fixed prior the target is the Soft-DQN target with ``tau = 1 / beta``
    minus ``gamma^n (1 - terminated) ln|A| / beta`` (the KL to the uniform prior is the negative
    entropy plus ``ln|A|``; see :func:`~torchrl_reg.functional.prior_soft_value`).

    Args:
        value_network (QValueActor or nn.Module): the Q-value network.

    Keyword Args:
        beta (float): initial inverse temperature ``beta_0`` > 0. Default 1.0.
        beta_schedule (str): ``"adaptive"`` (default, the paper's deep rule), ``"fixed"`` or ``"linear"``.
        beta_lr (float): ``alpha_beta`` in (0, 1] of the adaptive rule. Default 1e-3.
        beta_slope (float): ``c`` >= 0 of the linear schedule (per :meth:`update_beta` call). Default 0.
        beta_min, beta_max (float): bounds of beta, ``0 < beta_min <= beta_max < inf``. Default 1e-2, 1e4.
        learn_prior (bool): update the prior in :meth:`update_prior`. ``False`` keeps it fixed (SQL).
        prior_lr (float): ``alpha_rho`` in (0, 1]. Default 1e-4.
        prior_in_backup (bool): use the prior in the backup and in ``pi`` (default); ``False`` uses
            it for exploration only (SQL_m).
        prior (Tensor, optional): initial prior, a distribution over actions (default uniform).
        num_actions (int, optional): number of actions, if the action spec does not give it.
        loss_function (str): ``"l2"`` (Eq. (13), default), ``"smooth_l1"`` or ``"l1"``.
        delay_value (bool): keep target parameters (updated by ``SoftUpdate``/``HardUpdate``). Default ``True``.
        action_space (str or TensorSpec): ``"categorical"`` or ``"one-hot"`` (or the spec); inferred
            from a :class:`QValueActor` if omitted.
        reduction (str): ``"none"``, ``"mean"`` (default) or ``"sum"``; the diagnostics follow
            (per sample under ``"none"``).
        use_prioritized_weights (bool or "auto"): weight by ``priority_weight`` when present (default).
        check_finite (bool): refuse NaN/inf in the batch, naming the key and index. Default ``False``.

    Without :meth:`update_prior` and :meth:`update_beta` the loss is SQL with a fixed prior and a
    fixed beta: it warns once if they were never called by its second batch. A training loop
    calls them as in the example below (three lines).

    gamma is given to the value estimator: ``loss.make_value_estimator(gamma=0.99)``; n-step
    returns come from :class:`torchrl_reg.data.MultiStep` (``gamma ** steps_to_next_obs``); ``terminated``
    cuts the bootstrap, ``truncated`` does not.

    Outputs ``loss`` and detached diagnostics: ``beta``, ``prior_entropy`` (entropy of rho),
    ``policy_entropy`` and ``kl_to_prior`` (mean over the batch's next states of the entropy of
    ``pi`` and of ``KL(pi || rho)``, the mutual-information term while rho is the action
    marginal), ``td_error`` (mean squared TD error, the ``L`` of Eq. (13)), ``q_value``, ``action_gap``.

    Defaults of ``beta``, ``beta_lr``, ``prior_lr`` and the beta bounds are ours: the paper does not
    give values.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictSequential
        >>> from torchrl.data import Categorical
        >>> from torchrl.modules import MLP, QValueActor
        >>> from torchrl_reg.modules.mirl import PriorEGreedyModule
        >>> spec = Categorical(3)
        >>> actor = QValueActor(MLP(in_features=4, out_features=3, num_cells=[32]),
        ...                     in_keys=["observation"], spec=spec)
        >>> loss = MIRLLoss(actor, beta=1.0, prior_lr=1e-3, beta_lr=1e-3)
        >>> _ = loss.make_value_estimator(gamma=0.99)
        >>> policy = TensorDictSequential(actor, PriorEGreedyModule(spec, prior=loss.prior))
        >>> data = TensorDict({
        ...     "observation": torch.randn(8, 4), "action": spec.rand((8,)),
        ...     ("next", "observation"): torch.randn(8, 4),
        ...     ("next", "reward"): torch.randn(8, 1),
        ...     ("next", "done"): torch.zeros(8, 1, dtype=torch.bool),
        ...     ("next", "terminated"): torch.zeros(8, 1, dtype=torch.bool)}, [8])
        >>> _ = loss.update_prior(data)   # on each collected batch
        >>> out = loss(data)              # on each replay batch
        >>> out["loss"].backward()
        >>> _ = loss.update_beta(out)     # after each optimizer step
        >>> sorted(out.keys())
        ['action_gap', 'beta', 'kl_to_prior', 'loss', 'policy_entropy', 'prior_entropy', 'q_value', 'td_error']
    """

    prior: ActionPrior
    num_beta_updates: torch.Tensor
    out_keys = [
        "loss", "beta", "prior_entropy", "policy_entropy", "kl_to_prior", "td_error", "q_value", "action_gap",
    ]

    argument_checks = {
        "beta": check_positive,
        "beta_schedule": partial(check_choice, choices=BETA_SCHEDULES),
        "beta_lr": check_rate,
        "beta_slope": check_nonnegative,
        "beta_min": check_positive,
        "beta_max": check_positive,
        "prior_lr": check_rate,
    }

    @classmethod
    def check_argument_relations(cls, arguments, prefix):
        if "beta_min" in arguments and "beta_max" in arguments:
            low, high = arguments["beta_min"], arguments["beta_max"]
            check_ordered(prefix + "beta_min", low, prefix + "beta_max", high)
            if "beta" in arguments and not low <= arguments["beta"] <= high:
                raise ValueError(f"{prefix}beta must lie in [{prefix}beta_min, {prefix}beta_max] = [{low}, {high}], "
                                 f"got {prefix}beta={arguments['beta']}")

    def __init__(
        self,
        value_network: QValueActor | nn.Module,
        *,
        beta: float = 1.0,
        beta_schedule: Literal["adaptive", "fixed", "linear"] = "adaptive",
        beta_lr: float = 1e-3,
        beta_slope: float = 0.0,
        beta_min: float = 1e-2,
        beta_max: float = 1e4,
        learn_prior: bool = True,
        prior_lr: float = 1e-4,
        prior_in_backup: bool = True,
        prior: torch.Tensor | None = None,
        num_actions: int | None = None,
        loss_function: str = "l2",
        action_space: str | TensorSpec | None = None,
        **kwargs,
    ) -> None:
        spec_actions = _num_actions(action_space, value_network)
        if num_actions is not None and spec_actions is not None and num_actions != spec_actions:
            raise ValueError(
                f"num_actions={num_actions} does not match the {spec_actions} actions of the action spec"
            )
        if num_actions is None:
            num_actions = spec_actions
        if num_actions is None:
            raise ValueError(
                "MIRLLoss needs the number of actions for the prior: pass num_actions=..., a Categorical/OneHot "
                "action_space, or a QValueActor built with such a spec"
            )
        super().__init__(
            value_network,
            loss_function=loss_function,
            action_space=action_space,
            **kwargs,
        )
        self.num_actions = num_actions
        self.beta_schedule = beta_schedule
        self.beta_lr = beta_lr
        self.beta_slope = beta_slope
        self.beta_init = beta
        self.beta_min, self.beta_max = beta_min, beta_max
        self.learn_prior = bool(learn_prior)
        self.prior_lr = prior_lr
        self.prior = ActionPrior(num_actions, beta=beta, rho=prior, prior_in_backup=prior_in_backup)
        self.register_buffer("num_beta_updates", torch.zeros((), dtype=torch.long))
        # Python counters (no device sync) behind the warning of check_batch.
        self._prior_update_calls = self._beta_update_calls = self._checked_batches = 0

    @classmethod
    def from_variant(
        cls, variant: Literal["mirl", "sql", "sql_m"], value_network: QValueActor | nn.Module, **kwargs
    ) -> MIRLLoss:
        """Build one of the paper's methods (:data:`VARIANTS`); ``kwargs`` override its settings."""
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got variant={variant!r}")
        return cls(value_network, **{**VARIANTS[variant], **kwargs})

    # -- Algorithm 1, line 5: the prior update -------------------------------------------------
    @torch.no_grad()
    def update_prior(self, tensordict: TensorDictBase) -> torch.Tensor:
        """Update the prior with every state of a collected batch (Algorithm 1, line 5).

        Uses the batch's ``action_value`` (written by the acting :class:`QValueActor`: the q-values
        of the online network when the state was collected) or, if absent, evaluates the online
        network on the batch's observations. ``pi(.|s_i)`` of all N states is computed with the prior
        at the start of the batch and the updates are applied in time order (the last batch dimension
        is time, as in TorchRL collectors' ``[num_envs, T]`` batches); this differs from recomputing
        ``pi`` after each state by ``O((N * prior_lr) ** 2)``. Returns the new prior (unchanged when
        ``learn_prior=False``).
        """
        self._prior_update_calls += 1
        if not self.learn_prior:
            return self.prior.rho
        q = tensordict.get(self.tensor_keys.action_value, None)
        if q is None:
            inputs = tensordict.select(*self._q_network.in_keys).clone(False)
            with self.value_network_params.to_module(self.value_network, preserve_module_state=False):
                q = self._q_network(inputs).get(self.tensor_keys.action_value)
        if q.ndim > 2:
            # Collector batches are [..., time]: take the states in time order.
            q = q.movedim(-2, 0)
        pi = self.prior.policy(q.reshape(-1, q.shape[-1]))
        self.prior.rho.copy_(F.prior_update(self.prior.rho, pi, self.prior_lr))
        return self.prior.rho

    # -- Algorithm 1, line 8: the beta update --------------------------------------------------
    @torch.no_grad()
    def update_beta(self, loss: TensorDictBase | torch.Tensor | float) -> float:
        """Advance beta by one step of its schedule and return it (Algorithm 1, line 8).

        ``loss`` is the output of :meth:`forward` (its ``td_error``, the mean squared TD error
        ``L(theta_i, rho_{i+1})`` of Eq. (13), drives the adaptive rule whatever ``loss_function``,
        ``reduction`` or priority weights) or a loss value. Only the adaptive schedule reads it.
        """
        self._beta_update_calls += 1
        self.num_beta_updates += 1
        if self.beta_schedule == "fixed":
            return float(self.prior.beta)
        if self.beta_schedule == "linear":
            beta = self.beta_init + self.beta_slope * int(self.num_beta_updates)
        else:
            if isinstance(loss, TensorDictBase):
                loss = loss.get("td_error")
            value = float(torch.as_tensor(loss).detach().float().mean())
            beta = F.adaptive_beta_update(float(self.prior.beta), value, self.beta_lr)
        beta = min(max(beta, self.beta_min), self.beta_max)
        self.prior.set_beta(beta)
        return beta

    def check_batch(self, tensordict: TensorDictBase, *, layout: bool = True, inputs: bool = True) -> None:
        """As the base's, and warn once, at the second batch, if :meth:`update_prior` (with
        ``learn_prior``) or :meth:`update_beta` (with a non-fixed schedule) was never called."""
        super().check_batch(tensordict, layout=layout, inputs=inputs)
        if not at_second_batch(self, "_checked_batches"):
            return
        missing = []
        if self.learn_prior and self._prior_update_calls == 0:
            missing.append("update_prior(collected_batch) (Algorithm 1, line 5)")
        if self.beta_schedule != "fixed" and self._beta_update_calls == 0:
            missing.append("update_beta(loss_output) (Algorithm 1, line 8)")
        if missing:
            warnings.warn(
                f"MIRLLoss: {' and '.join(missing)} never called: the prior and beta stay at their initial "
                "values, which is SQL with a fixed prior and beta, not MIRL. Call them in the training loop "
                "(see the MIRLLoss docstring).",
                UserWarning,
                stacklevel=3,
            )

    # -- target -------------------------------------------------------------------------------
    def _target_action_values(self, tensordict: TensorDictBase) -> torch.Tensor:
        """Target-network action values at ``s_{t+n}`` only: the MIRL target has no term at ``s_t``."""
        inputs = TensorDict(
            {key: tensordict.get(unravel_key(("next", key))) for key in self._q_network.in_keys},
            batch_size=tensordict.batch_size,
        )
        with self.target_value_network_params.to_module(self.value_network, preserve_module_state=False):
            return self._q_network(inputs).get(self.tensor_keys.action_value)

    def next_value_and_bonus(self, q_target, a_tm1, not_terminal_t):
        # q_target holds s_{t+n} only (see _target_action_values).
        if q_target.shape[-1] != self.num_actions:
            raise ValueError(
                f"the value network gives {q_target.shape[-1]} action values, but the prior has "
                f"num_actions={self.num_actions}"
            )
        log_pi = self.prior.log_policy(q_target)
        pi = log_pi.exp()
        per_sample = self.reduction == "none"
        diagnostics = {
            "beta": self.prior.beta.detach().clone().expand(a_tm1.shape) if per_sample else self.prior.beta.detach().clone(),
            "prior_entropy": self.prior.entropy().expand(a_tm1.shape) if per_sample else self.prior.entropy(),
            "policy_entropy": self._reduce_diagnostic(
                -(torch.where(pi > 0, pi * log_pi, torch.zeros_like(pi))).sum(-1)
            ),
            "kl_to_prior": self._reduce_diagnostic(self.prior.kl(q_target)),
        }
        return self.prior.soft_value(q_target), torch.zeros_like(a_tm1, dtype=q_target.dtype), diagnostics
