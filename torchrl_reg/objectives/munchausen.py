"""Munchausen-DQN, Soft-DQN, MVI(q) (Munchausen with the Tsallis KL) and (persistent) advantage learning as TorchRL
losses.

References:

* [MRL] Vieillard, Pietquin, Geist. "Munchausen Reinforcement Learning", NeurIPS 2020,
  arXiv:2007.14430: Sec. 2 (the Soft-DQN and M-DQN regression targets, the log-policy clipped
  to ``[l0, 0]``) and Sec. 4 (the action-gap increase; advantage learning as the ``tau -> 0`` limit).
* [AL] Bellemare, Ostrovski, Guez, Thomas, Munos. "Increasing the Action Gap: New Operators for
  Reinforcement Learning", AAAI 2016, arXiv:1512.04860: the advantage-learning operator
  ``T_AL`` and the persistent one ``T_PAL`` (Sec. 3).
* [TKL] Zhu, Chen, Schlegel, White. "General Munchausen Reinforcement Learning with Tsallis Kullback-Leibler
  Divergence", NeurIPS 2023, arXiv:2301.11476: MVI(q) (Sec. 4), the Tsallis policy (Theorems 1 and 2).
"""
from __future__ import annotations

import torch
from torch import nn
from torchrl.modules.tensordict_module.actors import QValueActor
from torchrl.objectives.utils import ValueEstimators

from torchrl_reg import functional as F
from torchrl_reg.objectives.common import RegularizedDQNLossBase
from torchrl_reg.validation import (
    ArgumentChecks,
    check_bool,
    check_bound,
    check_clip_interval_relation,
    check_stable_tau,
    check_unit_interval,
)
from torchrl_reg.value import RegValueEstimators, SoftTD0Estimator

__all__ = ["MunchausenDQNLoss", "TsallisMunchausenDQNLoss", "AdvantageLearningLoss"]


class MunchausenArguments(ArgumentChecks):
    """The checks of the Munchausen term's arguments (alpha, tau, the clip of ``tau ln pi``), shared by
    :class:`MunchausenDQNLoss` and :class:`~torchrl_reg.objectives.iqn.MunchausenIQNLoss`."""

    argument_checks = {
        "alpha": check_unit_interval,
        "tau": check_stable_tau,
        "clip_value_min": check_bound,
        "clip_value_max": check_bound,
    }

    @classmethod
    def check_argument_relations(cls, arguments, prefix):
        check_clip_interval_relation(arguments, prefix)

    @property
    def tau(self) -> float:
        """The entropy temperature (read-only: :meth:`set_tau` changes it, checked as the constructor checks it)."""
        return self._tau

    def set_tau(self, tau: float) -> None:
        """Set the temperature (checked: in [1e-4, 10], :data:`~torchrl_reg.validation.STABLE_TAU`); a soft TD(0)
        estimator built with the loss's temperature follows it, so that the two stay one target."""
        tau = check_stable_tau("tau", tau)
        estimator = getattr(self, "_value_estimator", None)
        if isinstance(estimator, SoftTD0Estimator):
            estimator.tau = tau
        self._tau = tau


class MunchausenDQNLoss(MunchausenArguments, RegularizedDQNLossBase):
    r"""Munchausen-DQN loss ([MRL] Sec. 2, the M-DQN regression target).

    Regresses :math:`q_\theta(s_t, a_t)` on

    .. math::
        r_t + \alpha\,\mathrm{clip}(\tau \ln \pi_{\bar\theta}(a_t|s_t), l_0, u)
        + \gamma \sum_{a'} \pi_{\bar\theta}(a'|s_{t+1})
          \bigl(q_{\bar\theta}(s_{t+1}, a') - \tau \ln \pi_{\bar\theta}(a'|s_{t+1})\bigr),
        \qquad \pi_{\bar\theta} = \mathrm{softmax}(q_{\bar\theta} / \tau)

    Both log-policies come from the **target** network :math:`\bar\theta` (as in the
    official code); the soft bootstrap is computed as ``tau * logsumexp(q / tau)``
    (same value, one op). ``alpha = 0`` is Soft-DQN. With
    :class:`torchrl_reg.data.MultiStep`, the bonus is taken at ``s_t`` only
    and the bootstrap is discounted by ``gamma ** steps_to_next_obs``.

    Args:
        value_network (QValueActor or nn.Module): the Q-value network.

    Keyword Args:
        alpha (float): Munchausen scaling in [0, 1]. Default 0.9 (paper).
        tau (float): entropy temperature in [1e-4, 10] (:data:`~torchrl_reg.validation.STABLE_TAU`: soft values
            stay finite in float32; the recipes accept the same range). Default 0.03 (paper).
        clip_value_min (float): lower clip ``l0`` of ``tau ln pi``. Default -1 (paper).
        clip_value_max (float): upper clip ``u``. Default 0 (paper, official M-IQN); the official
            M-DQN code uses 1, which is inactive since ``tau ln pi <= 0``.
        loss_function (str): ``"smooth_l1"`` (Huber, the official code; default), ``"l2"`` or ``"l1"``.
        delay_value (bool): keep target parameters (update them with ``SoftUpdate``/``HardUpdate``).
            Default ``True``; ``False`` uses the detached online parameters as target.
        action_space (str or TensorSpec): ``"categorical"`` or ``"one-hot"`` (or the spec); inferred
            from a :class:`QValueActor` if omitted.
        reduction (str): ``"none"``, ``"mean"`` (default) or ``"sum"``; the diagnostics follow
            (per sample under ``"none"``).
        use_prioritized_weights (bool or "auto"): weight by ``priority_weight`` when present (default).
        check_finite (bool): refuse NaN/inf in the batch, naming the key and index. Default ``False``.

    gamma is given to the value estimator: ``loss.make_value_estimator(gamma=0.99)`` (TD(0) only,
    see :mod:`torchrl_reg.objectives.common`). The default loss is Huber (``smooth_l1``), as in the
    official code; TorchRL's ``DQNLoss`` defaults to ``l2``.

    Outputs ``loss`` and detached diagnostics: ``munchausen_bonus`` (mean bonus),
    ``clip_fraction`` (fraction of ``tau ln pi(a_t|s_t)`` outside the clip bounds),
    ``entropy`` (entropy of the target policy at ``s_t``), ``action_gap``, ``td_error``, ``q_value``.

    Examples:
        >>> import torch
        >>> from torchrl.data import Categorical
        >>> from torchrl.modules import MLP, QValueActor
        >>> from torchrl.objectives import HardUpdate
        >>> from tensordict import TensorDict
        >>> spec = Categorical(2)
        >>> actor = QValueActor(MLP(in_features=4, out_features=2, num_cells=[32]),
        ...                     in_keys=["observation"], spec=spec)
        >>> loss = MunchausenDQNLoss(actor, alpha=0.9, tau=0.03)
        >>> _ = loss.make_value_estimator(gamma=0.99)
        >>> updater = HardUpdate(loss, value_network_update_interval=100)
        >>> data = TensorDict({
        ...     "observation": torch.randn(8, 4), "action": spec.rand((8,)),
        ...     ("next", "observation"): torch.randn(8, 4),
        ...     ("next", "reward"): torch.randn(8, 1),
        ...     ("next", "done"): torch.zeros(8, 1, dtype=torch.bool),
        ...     ("next", "terminated"): torch.zeros(8, 1, dtype=torch.bool)}, [8])
        >>> sorted(loss(data).keys())
        ['action_gap', 'clip_fraction', 'entropy', 'loss', 'munchausen_bonus', 'q_value', 'td_error']
    """

    out_keys = ["loss", "munchausen_bonus", "clip_fraction", "entropy", "td_error", "q_value", "action_gap"]
    #: ``"softtd0"`` is accepted when its tau is the loss's: it is then the loss's own soft bootstrap.
    SUPPORTED_VALUE_ESTIMATORS = (ValueEstimators.TD0, RegValueEstimators.SoftTD0)

    def make_value_estimator(self, value_type=None, **hyperparams) -> MunchausenDQNLoss:
        """As the base's; a :class:`~torchrl_reg.value.SoftTD0Estimator` must have the loss's ``tau``
        (two temperatures would silently define two targets) and is then the same target as TD(0)."""
        previous = self._value_estimator
        super().make_value_estimator(value_type, **hyperparams)
        estimator = self._value_estimator
        if isinstance(estimator, SoftTD0Estimator) and estimator.tau != self.tau:
            self._value_estimator = previous
            raise ValueError(
                f"the SoftTD0Estimator has tau={estimator.tau} but the loss has tau={self.tau}: the M-DQN bootstrap "
                "is already soft with the loss's tau; pass the same tau (or use TD(0))"
            )
        return self

    def __init__(
        self,
        value_network: QValueActor | nn.Module,
        *,
        alpha: float = 0.9,
        tau: float = 0.03,
        clip_value_min: float = -1.0,
        clip_value_max: float = 0.0,
        **kwargs,
    ) -> None:
        self.alpha, self._tau = alpha, tau
        self.clip_value_min, self.clip_value_max = clip_value_min, clip_value_max
        super().__init__(
            value_network,
            **kwargs,
        )

    def next_value_and_bonus(self, q_target, a_tm1, not_terminal_t):
        batch = a_tm1.shape[0]
        # One stable pass gives tau*ln(pi) at s_t and the soft value tau*logsumexp(q/tau) at s_{t+n}.
        soft_v, log_pi = F.soft_value_and_scaled_log_policy(q_target, self.tau)
        log_pi = log_pi[:batch]
        log_pi_a = log_pi.gather(-1, a_tm1.unsqueeze(-1)).squeeze(-1)
        bonus = F.clipped_munchausen_term(
            log_pi_a, alpha=self.alpha, clip_value_min=self.clip_value_min, clip_value_max=self.clip_value_max
        )
        clipped = (log_pi_a < self.clip_value_min) | (log_pi_a > self.clip_value_max)
        diagnostics = {
            "munchausen_bonus": self._reduce_diagnostic(bonus),
            "clip_fraction": self._reduce_diagnostic(clipped.float()),
            "entropy": self._reduce_diagnostic(-((log_pi / self.tau).exp() * log_pi).sum(-1)) / self.tau,
        }
        return soft_v[batch:], bonus, diagnostics


def check_entropic_index(name: str, value: float) -> float:
    """``value`` as a float if it is an entropic index with a closed-form Tsallis policy
    (:data:`~torchrl_reg.functional.TSALLIS_INDICES`: 1, the Boltzmann policy; 2, sparsemax)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) not in F.TSALLIS_INDICES:
        raise ValueError(
            f"{name} must be one of {list(F.TSALLIS_INDICES)} (the entropic indices whose Tsallis policy has a closed "
            f"form: 1 softmax, 2 sparsemax), got {name}={value!r}"
        )
    return float(value)


class TsallisMunchausenDQNLoss(MunchausenDQNLoss):
    r"""MVI(q): Munchausen-DQN with the Tsallis KL divergence ([TKL] Sec. 4, MVI(q); Theorems 1 and 2 for the
    policy).

    Regresses :math:`q_\theta(s_t, a_t)` on (:func:`~torchrl_reg.functional.tsallis_munchausen_target`)

    .. math::
        r_t + \alpha\,\mathrm{clip}\bigl(q_{\bar\theta}(s_t, a_t) - \tau\psi_q(q_{\bar\theta}(s_t)/\tau), l_0, u\bigr)
        + \gamma \bigl(\langle\pi_{\bar\theta}, q_{\bar\theta}\rangle + \tau S_q(\pi_{\bar\theta})\bigr)(s_{t+1}),
        \qquad \pi_{\bar\theta} = \exp_q\bigl(q_{\bar\theta}/\tau - \psi_q(q_{\bar\theta}/\tau)\bigr)

    the Munchausen term :math:`\tau\ln_q\pi` in the paper's action-gap form and the Tsallis entropy
    :math:`S_q(\pi) = -\langle\pi^q, \ln_q\pi\rangle` in the bootstrap (which equals
    :math:`\tau\psi_q(q_{\bar\theta}(s_{t+1})/\tau)`). ``q = 1`` is :class:`MunchausenDQNLoss`, value for value;
    ``q = 2`` (the paper's Atari setting) acts with the sparsemax policy of the target values, which gives zero
    probability to the actions below its threshold. For ``q != 1`` the scheme is Tsallis-KL-regularized VI up to a
    residual of the q-logarithm's pseudo-additivity, which the paper reports small at ``q = 2``
    (``tests/objectives/test_munchausen.py`` checks the loss against value iteration with that scheme on finite
    MDPs).

    Keyword Args:
        q (float): the entropic index: 1 (M-DQN) or 2 (sparsemax, the default, the paper's). Others have no closed-form
            policy and are refused.
        alpha, tau, clip_value_min, clip_value_max, loss_function, delay_value, action_space, reduction,
            use_prioritized_weights, check_finite: as :class:`MunchausenDQNLoss` (its defaults, M-DQN's).

    Outputs what :class:`MunchausenDQNLoss` outputs, ``entropy`` the Tsallis entropy :math:`S_q` of the target policy
    at ``s_t``, plus ``support``, the mean number of actions the target policy gives a nonzero probability at ``s_t``.
    """

    out_keys = [*MunchausenDQNLoss.out_keys, "support"]
    #: TD(0) only: a SoftTD0Estimator's bootstrap is the Boltzmann policy's, not the Tsallis policy's.
    SUPPORTED_VALUE_ESTIMATORS = (ValueEstimators.TD0,)
    argument_checks = {"q": check_entropic_index}

    def __init__(self, value_network: QValueActor | nn.Module, *, q: float = 2.0, **kwargs) -> None:
        self.q = q
        super().__init__(value_network, **kwargs)

    def next_value_and_bonus(self, q_target, a_tm1, not_terminal_t):
        batch = a_tm1.shape[0]
        if self.q == 1.0:  # M-DQN's target and diagnostics, from the same pass; every action in the support
            next_value, bonus, diagnostics = super().next_value_and_bonus(q_target, a_tm1, not_terminal_t)
            support = torch.full_like(bonus, q_target.shape[-1])
            return next_value, bonus, {**diagnostics, "support": self._reduce_diagnostic(support)}
        value, pi = F.tsallis_value_and_policy(q_target, self.tau, self.q)
        # tau ln_q pi(a|s) in the paper's action-gap form q(s, a) - tau psi_q(q(s) / tau)
        scaled_log_pi_a = q_target[:batch].gather(-1, a_tm1.unsqueeze(-1)).squeeze(-1) - value[:batch]
        bonus = F.clipped_munchausen_term(
            scaled_log_pi_a, alpha=self.alpha, clip_value_min=self.clip_value_min, clip_value_max=self.clip_value_max
        )
        clipped = (scaled_log_pi_a < self.clip_value_min) | (scaled_log_pi_a > self.clip_value_max)
        pi_tm1 = pi[:batch]
        diagnostics = {
            "munchausen_bonus": self._reduce_diagnostic(bonus),
            "clip_fraction": self._reduce_diagnostic(clipped.float()),
            "entropy": self._reduce_diagnostic(F.tsallis_entropy(pi_tm1, self.q)),
            "support": self._reduce_diagnostic((pi_tm1 > 0).sum(-1).to(bonus.dtype)),
        }
        return value[batch:], bonus, diagnostics


class AdvantageLearningLoss(RegularizedDQNLossBase):
    r"""Advantage learning (AL) and persistent advantage learning (PAL) losses.

    AL ([AL]; the :math:`\tau \to 0` limit of M-DQN, [MRL] Sec. 4)
    regresses :math:`q_\theta(s_t, a_t)` on

    .. math:: r_t + \alpha\bigl(q_{\bar\theta}(s_t, a_t) - \max_a q_{\bar\theta}(s_t, a)\bigr)
              + \gamma \max_{a'} q_{\bar\theta}(s_{t+1}, a')

    and PAL (``persistent=True``) on
    :math:`\max\{\mathcal{T}_{AL} q,\; \mathcal{T} q - \alpha(\max_a q_{\bar\theta}(s_{t+1}, a)
    - q_{\bar\theta}(s_{t+1}, a_t))\}`. The correction uses the target network, as in
    Bellemare et al.'s DQN implementation. ``alpha = 0`` is DQN.

    Keyword Args:
        alpha (float): advantage-learning coefficient in [0, 1]. Default 0.9.
        persistent (bool): PAL instead of AL. Default ``False``.
        loss_function, delay_value, action_space, reduction, use_prioritized_weights, check_finite:
            as :class:`MunchausenDQNLoss`.

    The value estimator is TD(0) (``max`` bootstrap) or :class:`~torchrl_reg.value.SoftTD0Estimator`
    (``loss.make_value_estimator("softtd0", gamma=0.99, tau=0.03)``), whose bootstrap is the
    soft value ``tau * logsumexp(q_target(s_{t+n}) / tau)`` instead of the max (the correction term
    is unchanged).

    Outputs ``loss`` and detached diagnostics ``advantage_bonus``, ``action_gap``, ``td_error``, ``q_value``.
    """

    SUPPORTED_VALUE_ESTIMATORS = (ValueEstimators.TD0, RegValueEstimators.SoftTD0)
    out_keys = ["loss", "advantage_bonus", "td_error", "q_value", "action_gap"]

    argument_checks = {"alpha": check_unit_interval, "persistent": check_bool}

    def __init__(
        self,
        value_network: QValueActor | nn.Module,
        *,
        alpha: float = 0.9,
        persistent: bool = False,
        **kwargs,
    ) -> None:
        self.alpha, self.persistent = alpha, persistent
        super().__init__(
            value_network,
            **kwargs,
        )

    def next_value_and_bonus(self, q_target, a_tm1, not_terminal_t):
        batch = a_tm1.shape[0]
        q_tm1_target, q_t_target = q_target[:batch], q_target[batch:]
        if self.persistent:
            bonus = F.persistent_advantage_learning_bonus(
                q_tm1_target, a_tm1, q_t_target, not_terminal_t, alpha=self.alpha
            )
        else:
            bonus = F.advantage_learning_bonus(q_tm1_target, a_tm1, alpha=self.alpha)
        estimator = self.value_estimator
        if isinstance(estimator, SoftTD0Estimator):
            next_value = F.soft_value(q_t_target, estimator.tau)
        else:
            next_value = q_t_target.max(dim=-1).values
        return next_value, bonus, {"advantage_bonus": self._reduce_diagnostic(bonus)}

