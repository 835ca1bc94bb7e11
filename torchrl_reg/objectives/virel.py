r"""VIREL as TorchRL losses: a Boltzmann policy whose temperature is the Bellman error.

Paper: [VIREL] Fellows, Mahajan, Rudner, Whiteson, "VIREL: A Variational Inference Framework for
Reinforcement Learning", NeurIPS 2019, arXiv 1811.01132. Section 3: the Boltzmann policy
:math:`\pi_\omega(a|s) \propto \exp(\hat Q_\omega(s,a)/\epsilon_\omega)` and its temperature, the Bellman
error :math:`\epsilon_\omega = \frac cp \|\mathcal T_\omega \hat Q_\omega - \hat Q_\omega\|_p^p`; Section 4:
the objective :math:`\mathcal L(\omega,\theta) = \mathbb E_{s\sim d}[\mathbb E_{a\sim\pi_\theta}[\hat Q_\omega(s,a)/
\epsilon_\omega] + \mathcal H(\pi_\theta(\cdot|s))]` and variational EM (E-step
:math:`\theta \mathrel{+}= \alpha_{actor}\,\epsilon_{\omega}\nabla_\theta\mathcal L`, M-step
:math:`\omega \mathrel{+}= \alpha_{critic}\,\epsilon_\omega^2\nabla_\omega\mathcal L`). The official code
(AnujMahajanOxf/VIREL, ``beta.py``) is the ``"practical"`` variant of :class:`VIRELLoss`.

* :class:`VIRELLoss` -- continuous actions: a tanh-Gaussian actor (reparametrized) and a critic.
* :class:`DiscreteVIRELLoss` -- discrete actions: :math:`\pi_\omega = \mathrm{softmax}(Q/\epsilon_\omega)`
  exactly, no actor; the critic evaluates that policy. Composes with the DQN family's loop.

Temperature estimators (``temperature_estimator``), each computed without gradient:

* ``"replay"`` -- on a separate replay batch (the official code: 4096 transitions before every
  update), which the training loop passes to :meth:`update_temperature`;
* ``"batch"`` -- on the training batch, inside :meth:`forward`;
* ``"ema"`` -- an exponential moving average (rate ``temperature_ema``) of the training-batch values.

A NaN or infinite Bellman error raises in :meth:`update_temperature`, before any parameter moves.

``torch.vmap``: :class:`DiscreteVIRELLoss` with ``"replay"`` vmaps over batches (the temperature is only read
there); an estimate under vmap (``"batch"``/``"ema"`` in ``forward``, or :meth:`~DiscreteVIRELLoss.update_temperature`)
is refused with a ``ValueError``, since one buffer cannot hold the vmapped batches' different estimates.
:class:`VIRELLoss` does not vmap, as TorchRL's ``SACLoss`` does not: vmap cannot give its in-place
reparametrized action samples (``TanhNormal.rsample``) different randomness per batch.
"""
from __future__ import annotations

import warnings
from functools import partial

import torch
from tensordict import TensorDict, TensorDictBase, TensorDictParams
from tensordict.nn import ProbabilisticTensorDictSequential, TensorDictModule, dispatch
from tensordict.utils import NestedKey
from torch import nn
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules.distributions.utils import rsample_and_log_prob
from torchrl.modules.tensordict_module.actors import QValueActor
from torchrl.objectives.utils import _vmap_func, distance_loss

from torchrl_reg import functional as F
from torchrl_reg.objectives.common import ActorCriticKeys, ActorCriticLossBase, RegularizedDQNLossBase, at_second_batch
from torchrl_reg.validation import (
    check_choice,
    check_critic_count,
    check_nonnegative,
    check_rate,
    check_read,
    check_virel_c,
    check_virel_p,
)

__all__ = ["VIRELLoss", "DiscreteVIRELLoss", "TEMPERATURE_ESTIMATORS", "VARIANTS"]

VARIANTS = ("practical", "em")
_LOSS_FUNCTIONS = ("l2", "l1", "smooth_l1")

TEMPERATURE_ESTIMATORS = ("replay", "batch", "ema")
#: ``temperature_ema``'s default, the only value accepted with an estimator other than ``"ema"``.
DEFAULT_TEMPERATURE_EMA = 0.01


_NO_GRAPH = (
    "forward checks every batch on the host (check_batch) and the 'batch'/'ema' temperature is checked finite "
    "on the host (checked_temperature): a CUDA graph cannot record a host read"
)


def checked_temperature(estimate: torch.Tensor) -> torch.Tensor:
    """Refuse a NaN/infinite temperature (from NaN Bellman errors) before it reaches a policy or a checkpoint."""
    if not bool(torch.isfinite(estimate)):
        raise ValueError(
            f"the VIREL temperature is {estimate.item()} (NaN or infinite Bellman errors on the temperature "
            "batch): the critic or the data diverged; stopping before any update or checkpoint"
        )
    return estimate


class _BellmanTemperature:
    """The :attr:`temperature` buffer of both VIREL losses, its store, and the warning of a ``"replay"``
    estimator that nothing drives."""

    temperature_estimator: str
    temperature_ema: float
    c: float
    p: int

    argument_checks = {
        "c": check_virel_c,
        "p": check_virel_p,
        "temperature_estimator": partial(check_choice, choices=TEMPERATURE_ESTIMATORS),
        "temperature_ema": check_rate,
        "initial_temperature": check_nonnegative,
    }

    @classmethod
    def check_argument_relations(cls, arguments, prefix):
        estimator = arguments.get("temperature_estimator")
        if "temperature_ema" in arguments and estimator is not None and estimator != "ema":
            check_read(f"{prefix}temperature_ema", arguments["temperature_ema"], DEFAULT_TEMPERATURE_EMA,
                       f"{prefix}temperature_estimator={estimator!r}")

    def _init_temperature(self, initial_temperature: float) -> None:
        self.register_buffer("temperature", torch.tensor(initial_temperature))
        # Python state (no device sync) behind the warning of _count_forward; both stop changing after the second
        # batch (at_second_batch says why).
        self._temperature_driven = False
        self._forward_calls = 0

    def keep_temperature(self) -> None:
        """Keep the current temperature for this update: for a training loop that drives the ``"replay"``
        estimator but has no full temperature batch yet (the official code keeps ``initial_temperature``
        until its replay holds 4096 transitions). Counts as driving it (no warning, see :meth:`forward`)."""
        self._temperature_driven = True

    @torch.no_grad()
    def _store_temperature(self, errors: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        """Store :math:`\\frac cp\\,\\mathrm{mean}|\\delta|^p` of ``errors [N, *batch]`` (``"ema"``: average it in)."""
        if torch._C._functorch.is_batchedtensor(errors):
            raise ValueError(
                f"{type(self).__name__} cannot estimate its temperature under torch.vmap (temperature_estimator="
                f"{self.temperature_estimator!r}, or update_temperature): the estimate goes into one temperature "
                "buffer that every later batch reads, and each vmapped batch would make its own. Under vmap, use "
                "temperature_estimator='replay' and call update_temperature(replay_batch) outside the vmapped function"
            )
        self._temperature_driven = True
        if weights is not None:
            weights = weights.reshape(errors.shape[1:]).expand_as(errors)
        estimate = checked_temperature(F.bellman_error_temperature(errors, c=self.c, p=self.p, weights=weights))
        if self.temperature_estimator == "ema":
            estimate = (1 - self.temperature_ema) * self.temperature + self.temperature_ema * estimate
        self.temperature.copy_(estimate)
        return self.temperature.detach().clone()

    def _count_forward(self) -> None:
        """Warn once, at the second batch, if the ``"replay"`` temperature was never driven, as MIRLLoss does."""
        if at_second_batch(self, "_forward_calls") and self.temperature_estimator == "replay" and not self._temperature_driven:
            warnings.warn(
                f"{type(self).__name__}: temperature_estimator='replay' but update_temperature(replay_batch) was "
                f"never called: the temperature stays at {float(self.temperature)}, a fixed-temperature policy, not "
                "VIREL. Call it before each update with a separate replay batch (the official code: 4096 "
                "transitions), keep_temperature() while the replay is shorter, or use temperature_estimator="
                "'batch' or 'ema'.",
                UserWarning,
                stacklevel=4,
            )


class DiscreteVIRELLoss(_BellmanTemperature, RegularizedDQNLossBase):
    r"""VIREL for discrete actions: the critic evaluates :math:`\pi_\omega = \mathrm{softmax}(Q/\epsilon_\omega)`.

    With a discrete action set the Boltzmann policy of [VIREL] Section 3 is computed exactly, so
    there is no variational actor (the E-step is exact) and the M-step is policy evaluation of
    :math:`\pi_\omega`: :math:`q_\omega(s_t, a_t)` is regressed on

    .. math:: y_t = r_t + \gamma^n (1 - \mathrm{terminated}) \sum_{a'} \pi_{\bar\omega}(a'|s_{t+n})\,
              q_{\bar\omega}(s_{t+n}, a'), \qquad
              \pi_{\bar\omega} = \mathrm{softmax}(q_{\bar\omega}/\epsilon)

    (target network :math:`\bar\omega`, no entropy term), with the temperature
    :math:`\epsilon = \frac cp\, \mathrm{mean}|y - q_\omega(s_t,a_t)|^p` held in the buffer
    :attr:`temperature` and estimated without gradient (module docstring: ``"replay"``, ``"batch"``
    or ``"ema"``). The estimate uses the current temperature in :math:`y` (the definition is implicit:
    :math:`\mathcal T_\omega` uses :math:`\pi_\omega`), exactly as :func:`torchrl_reg.tabular.virel_iteration`
    does, which it reproduces when fitted on a full batch (``tests/tabular/test_virel_bridge.py``).
    Act with :class:`~torchrl_reg.modules.exploration.BoltzmannExploration` reading
    ``loss.temperature``: the Boltzmann policy is the only exploration.

    Keyword Args:
        c (float): temperature scale ``c > 0``. Default 1.0.
        p (int): 1 or 2. Default 2.
        temperature_estimator (str): ``"replay"`` (default), ``"batch"`` or ``"ema"``.
        temperature_ema (float): EMA rate in (0, 1] for ``"ema"`` (other estimators accept only the default). Default 0.01.
        initial_temperature (float): the temperature until the first estimate. Default 1.0 (the
            official code's value before its replay holds a full temperature batch).
        loss_function, delay_value, action_space, reduction, use_prioritized_weights, check_finite: as
            :class:`~torchrl_reg.objectives.MunchausenDQNLoss` (``loss_function`` defaults to ``"l2"``).

    Outputs ``loss`` and detached ``temperature``, ``entropy`` (of :math:`\pi_{\bar\omega}(\cdot|s_{t+n})`),
    ``action_gap``, ``td_error``, ``q_value``.
    """

    #: The temperature buffer changes inside :meth:`forward` (``"batch"``/``"ema"``): not one pure graph.
    fusable_update = False
    #: Why ``make_update(..., cuda_graph=True)`` refuses it (a CUDA graph records no host read).
    cuda_graph_unsupported = _NO_GRAPH
    out_keys = ["loss", "temperature", "entropy", "td_error", "q_value", "action_gap"]

    def __init__(
        self,
        value_network: QValueActor | nn.Module,
        *,
        c: float = 1.0,
        p: int = 2,
        temperature_estimator: str = "replay",
        temperature_ema: float = DEFAULT_TEMPERATURE_EMA,
        initial_temperature: float = 1.0,
        loss_function: str = "l2",
        **kwargs,
    ) -> None:
        self.c, self.p, self.temperature_estimator, self.temperature_ema = c, p, temperature_estimator, temperature_ema
        super().__init__(
            value_network,
            loss_function=loss_function,
            **kwargs,
        )
        self._init_temperature(initial_temperature)

    def next_value_and_bonus(self, q_target, a_tm1, not_terminal_t):
        q_next = q_target[a_tm1.shape[0]:]
        pi = F.boltzmann_policy_at_temperature(q_next, self.temperature)
        entropy = self._reduce_diagnostic(-torch.special.xlogy(pi, pi).sum(-1))
        value = (pi * q_next).sum(-1)
        temperature = self.temperature.detach().clone()
        if self.reduction == "none":
            temperature = temperature.expand(value.shape)
        return value, torch.zeros_like(value), {"temperature": temperature, "entropy": entropy}

    @torch.no_grad()
    def bellman_errors(self, tensordict: TensorDictBase) -> torch.Tensor:
        """``y - q(s_t, a_t)`` per transition, ``y`` the evaluation target at the current temperature.
        The batch is checked as :meth:`forward` checks it (integer flags read as ``flag != 0``)."""
        self.check_batch(tensordict)
        return self._bellman_errors(self._bool_flags(tensordict))

    def _bellman_errors(self, tensordict: TensorDictBase) -> torch.Tensor:
        if not tensordict.batch_dims:  # one transition: a batch of one (see loss_and_outputs)
            return self._bellman_errors(tensordict.unsqueeze(0)).squeeze(0)
        keys = self.tensor_keys
        td = tensordict.clone(False)
        with self.value_network_params.to_module(self.value_network, preserve_module_state=False):
            self._q_network(td)
        q_tm1 = td.get(keys.action_value)
        a_tm1 = self._action_index(tensordict.get(keys.action), q_tm1)
        pred = q_tm1.gather(-1, a_tm1.unsqueeze(-1)).squeeze(-1)
        next_value = F.boltzmann_expected_value(self._target_action_values(tensordict)[pred.shape[0]:], self.temperature)
        reward = tensordict.get(("next", keys.reward))
        target = self.value_estimator.value_estimate(td, next_value=next_value.view_as(reward)).view(pred.shape)
        return target - pred

    @torch.no_grad()
    def update_temperature(self, tensordict: TensorDictBase) -> torch.Tensor:
        """Estimate :math:`\\epsilon = \\frac cp \\mathrm{mean}|y - q|^p` on ``tensordict`` and store it
        (``"ema"``: average it in). Importance weights (``priority_weight``) weigh the mean when present
        and allowed. The batch is checked as :meth:`forward` checks it (flags, actions in the action space,
        with ``check_finite`` NaN/inf inputs). Raises on NaN/infinite Bellman errors. Returns the new
        temperature."""
        self.check_batch(tensordict)
        return self._update_temperature(self._bool_flags(tensordict))

    def _update_temperature(self, tensordict: TensorDictBase) -> torch.Tensor:
        errors = self._bellman_errors(tensordict).reshape(1, -1)
        return self._store_temperature(errors, self._weights(tensordict, errors.shape[1:]))

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        """The evaluation loss of :math:`\\pi_\\omega`; ``"batch"``/``"ema"`` first update the temperature on
        the training batch (checked once for both). Priorities (squared TD errors) are written in place, as
        DQNLoss does. With ``"replay"``, warns once, at the second batch, if neither
        :meth:`update_temperature` nor :meth:`keep_temperature` was called."""
        self.check_batch(tensordict)
        self._count_forward()
        if self.temperature_estimator != "replay":
            with torch.no_grad():
                self._update_temperature(self._bool_flags(tensordict))
        return self._forward_checked(tensordict)


class VIRELLoss(_BellmanTemperature, ActorCriticLossBase):
    r"""VIREL for continuous actions: a tanh-Gaussian actor :math:`\pi_\theta` and critics :math:`Q_{\omega_i}`.

    Both variants share the actor loss, the E-step of [VIREL] Section 4,
    :math:`\theta \mathrel{+}= \alpha_{actor}\,\epsilon_\omega \nabla_\theta \mathcal L(\omega, \theta)`: with
    :math:`\epsilon` fixed and :math:`\mathcal H(\pi_\theta) = -\mathbb E[\ln\pi_\theta]`, the reparametrized
    :math:`\epsilon \nabla_\theta \mathcal L = -\nabla_\theta \mathbb E_{s,\,\xi}[\epsilon \ln\pi_\theta(\tilde a|s)
    - Q_\omega(s, \tilde a)]`, :math:`\tilde a = \tanh(\mu_\theta(s) + \sigma_\theta(s)\xi)`, so

    .. math:: \text{loss\_actor} = \mathrm{mean}_s\big[\epsilon\,\ln\pi_\theta(\tilde a|s) - \min_i Q_{\omega_i}(s,\tilde a)\big]

    (critics detached; the min over critics when there are two, as in SAC). :math:`\epsilon` is the
    :attr:`temperature` buffer, estimated without gradient (module docstring) as
    :math:`\frac cp\,\mathrm{mean}_{i,t}|y_t - Q_{\omega_i}(s_t,a_t)|^p`. The target, in both variants, is

    .. math:: y_t = r_t + \gamma^n (1 - \mathrm{terminated}) \min_i Q_{\bar\omega_i}(s_{t+n}, a'),
              \qquad a' \sim \pi_\theta(\cdot|s_{t+n})

    with target parameters :math:`\bar\omega` and no entropy term (the min only with two critics):
    :math:`\mathcal T_\omega` of [VIREL] Section 3 with the variational policy standing in for the
    intractable :math:`\pi_\omega`, as in the official code.

    ``variant="practical"`` (the official code's ``beta.py``): the critics do TD policy evaluation,
    ``loss_qvalue`` :math:`= \sum_i \mathrm{mean}_t\, \ell(Q_{\omega_i}(s_t,a_t), y_t)` with ``loss_function``
    :math:`\ell`.

    ``variant="em"``: the M-step as written,
    :math:`\omega \mathrel{+}= \alpha_{critic}\,\epsilon_\omega^2\nabla_\omega\mathcal L(\omega,\theta)`, for each
    critic separately. With :math:`\bar Q_\omega = \mathrm{mean}_s Q_\omega(s, a)`, :math:`a\sim\pi_\theta(\cdot|s)`
    (the entropy does not depend on :math:`\omega`) and :math:`\epsilon_\omega = \frac cp \mathrm{mean}_t|\delta_t|^p`,
    :math:`\delta_t = y_t - Q_\omega(s_t, a_t)` on the training batch, the quotient rule gives

    .. math::
        \epsilon_\omega^2 \nabla_\omega \mathcal L
          = \epsilon_\omega^2 \nabla_\omega \frac{\bar Q_\omega}{\epsilon_\omega}
          = \epsilon_\omega\, \nabla_\omega \bar Q_\omega - \bar Q_\omega\, \nabla_\omega \epsilon_\omega,
        \qquad
        \nabla_\omega \epsilon_\omega = -c\, \mathrm{mean}_t\big[|\delta_t|^{p-1}\mathrm{sign}(\delta_t)\,
          \nabla_\omega Q_\omega(s_t, a_t)\big]

    (:math:`y_t` uses the target parameters :math:`\bar\omega`, held fixed: the semi-gradient of TD). The
    loss whose gradient is :math:`-\epsilon_\omega^2\nabla_\omega\mathcal L` is
    ``loss_qvalue`` :math:`= \sum_i \big[\mathrm{sg}(\bar Q_{\omega_i})\,\epsilon_{\omega_i}
    - \mathrm{sg}(\epsilon_{\omega_i})\,\bar Q_{\omega_i}\big]` (``sg``: stop-gradient), checked against
    autograd of :math:`\mathcal L` in ``tests/objectives/test_virel.py``. Its value is not
    meaningful, only its gradient. Note the sign of the second term: it lowers the Bellman error in
    proportion to :math:`\bar Q_\omega`, and raises it when :math:`\bar Q_\omega < 0` (e.g. on Pendulum,
    whose rewards are negative); the first term raises Q at the actor's actions. The variant needs
    ``reduction="mean"`` (its loss is a product of batch means). Nothing but the second term ties
    :math:`Q_\omega` to its target, and once :math:`\epsilon_\omega` is large the first term's push dominates:
    at the official MuJoCo settings (100k steps, RESULTS.md, "VIREL on HalfCheetah-v5 and Hopper-v5") Q and
    :math:`\epsilon_\omega` ran away in 2 of 6 runs (HalfCheetah mean Q 1.2e6, :math:`\epsilon_\omega` 4.5e8) where
    ``"practical"`` kept :math:`\epsilon_\omega` below 0.08: use ``"em"`` to study the E/M updates as [VIREL] writes them, ``"practical"``
    to learn.

    Args:
        actor_network: a :class:`~torchrl.modules.ProbabilisticActor` with a reparametrizable
            distribution, e.g. :func:`torchrl_reg.modules.policies.tanh_normal_policy`.
        qvalue_network: ``Q(s, a)`` writing ``"state_action_value"``, e.g.
            :func:`torchrl_reg.modules.critics.state_action_value_network`.

    Keyword Args:
        variant (str): ``"practical"`` (default) or ``"em"``.
        num_qvalue_nets (int): 1 or 2 critics (two: the min in the target and the actor). Default 2.
        c (float), p (int): the temperature :math:`\frac cp\,\mathrm{mean}|\delta|^p`. The official code's
            ``beta_scale * MSE`` is ``p = 2``, ``c = 2 * beta_scale``. Defaults 1.0 and 2.
        temperature_estimator (str), temperature_ema (float), initial_temperature (float): as
            :class:`DiscreteVIRELLoss` (``"em"`` uses the estimate in the actor loss; its M-step always
            differentiates the training-batch error).
        loss_function (str): ``"l2"`` (default), ``"l1"`` or ``"smooth_l1"`` (``"practical"`` only).
        delay_qvalue (bool): target critics (update with ``SoftUpdate``). Default ``True``.
        reduction (str): ``"mean"`` (default), ``"sum"`` or ``"none"`` (``"practical"`` only).
        use_prioritized_weights: as TorchRL's losses.

    gamma is given to the value estimator: ``loss.make_value_estimator(gamma=0.99)``.

    Outputs ``loss_actor``, ``loss_qvalue`` and the detached ``temperature``, ``entropy``
    (:math:`-\ln\pi_\theta(\tilde a|s)`, one sample), ``log_prob``, ``q_value``, ``td_error``
    (:math:`\mathrm{mean}_i\delta^2`, also written in place under the priority key, shape ``[..., 1]``),
    and ``objective``, :math:`\mathcal L(\omega,\theta)` per state at the E-step temperature:
    :math:`Q_{\omega_1}(s,\tilde a)/\epsilon - \ln\pi_\theta(\tilde a|s)` (first critic, one-sample entropy).
    """

    _AcceptedKeys = ActorCriticKeys
    default_keys = ActorCriticKeys
    tensor_keys: ActorCriticKeys
    out_keys = ["loss_actor", "loss_qvalue", "temperature", "entropy", "log_prob", "q_value", "td_error", "objective"]
    _network_names = ("actor_network", "qvalue_network")
    network_outputs = {"qvalue_network": "state_action_value"}
    actor_argument = "actor_network"
    critic_argument = "qvalue_network"
    actor_sample = "rsample"
    actor_use = (
        "differentiates its actor loss, eps ln pi(a~|s) - min_i Q_i(s, a~), through a reparametrized sample a~ (and "
        "its critics' target samples a' from the actor)"
    )
    #: The temperature buffer changes inside :meth:`forward` (``"batch"``/``"ema"``): not one pure graph.
    fusable_update = False
    #: Why ``make_update(..., cuda_graph=True)`` refuses it (a CUDA graph records no host read).
    cuda_graph_unsupported = _NO_GRAPH

    actor_network: ProbabilisticTensorDictSequential
    qvalue_network: TensorDictModule
    actor_network_params: TensorDictParams
    qvalue_network_params: TensorDictParams
    target_actor_network_params: TensorDictParams
    target_qvalue_network_params: TensorDictParams

    argument_checks = {
        **_BellmanTemperature.argument_checks,
        "variant": partial(check_choice, choices=VARIANTS),
        "num_qvalue_nets": check_critic_count,
        "loss_function": partial(check_choice, choices=_LOSS_FUNCTIONS),
    }

    def __init__(
        self,
        actor_network: ProbabilisticTensorDictSequential,
        qvalue_network: TensorDictModule,
        *,
        variant: str = "practical",
        num_qvalue_nets: int = 2,
        c: float = 1.0,
        p: int = 2,
        temperature_estimator: str = "replay",
        temperature_ema: float = DEFAULT_TEMPERATURE_EMA,
        initial_temperature: float = 1.0,
        loss_function: str = "l2",
        delay_qvalue: bool = True,
        reduction: str | None = None,
        **kwargs,
    ) -> None:
        if variant == "em" and reduction not in (None, "mean"):
            raise ValueError(f"variant='em' needs reduction='mean' (its M-step is a product of batch means), got {reduction!r}")
        super().__init__(reduction=reduction, **kwargs)
        self.c, self.p, self.temperature_estimator, self.temperature_ema = c, p, temperature_estimator, temperature_ema
        self.variant = variant
        self.num_qvalue_nets = int(num_qvalue_nets)
        self.loss_function = loss_function
        self.delay_qvalue = delay_qvalue
        self.convert_to_functional(actor_network, "actor_network", create_target_params=False)
        self.convert_to_functional(
            qvalue_network, "qvalue_network", self.num_qvalue_nets, create_target_params=delay_qvalue,
            compare_against=list(actor_network.parameters()),
        )
        self._vmap_qvalue = _vmap_func(self.qvalue_network, (None, 0), randomness="different")
        self._init_temperature(initial_temperature)

    # -- keys, checks, parameters (the rest of the plumbing is RegularizedLossBase's) ---------
    def _in_key_list(self) -> list[NestedKey]:
        keys = self.tensor_keys
        obs_keys = [*self.actor_network.in_keys, *[k for k in self.qvalue_network.in_keys if k != keys.action]]
        return [keys.action, *obs_keys, *[("next", k) for k in (keys.reward, keys.done, keys.terminated, *obs_keys)]]

    def _loss_params(self) -> TensorDictBase:
        return TensorDict({"actor": self.actor_network_params, "qvalue": self.qvalue_network_params}, batch_size=[])

    # -- pieces -------------------------------------------------------------------------------
    def _critics(self, tensordict: TensorDictBase, action: torch.Tensor, params: TensorDictBase) -> torch.Tensor:
        """``Q_i(s, action)`` for every critic: ``[num_qvalue_nets, *batch]``."""
        td = tensordict.select(*[k for k in self.qvalue_network.in_keys if k != self.tensor_keys.action], strict=False)
        td.set(self.tensor_keys.action, action)
        return self._vmap_qvalue(td, params).get(self.tensor_keys.state_action_value).squeeze(-1)

    def _sample_action(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparametrized ``a ~ pi_theta(.|s)`` and its log-probability."""
        with set_exploration_type(ExplorationType.RANDOM), self.actor_network_params.to_module(
            self.actor_network, preserve_module_state=False
        ):
            dist = self.actor_network.get_dist(tensordict.select(*self.actor_network.in_keys, strict=False))
            return rsample_and_log_prob(dist)

    @torch.no_grad()
    def _target(self, tensordict: TensorDictBase) -> torch.Tensor:
        r""":math:`y = r + \gamma^n (1 - terminated) \min_i Q_{\bar\omega_i}(s', a')`, :math:`a' \sim \pi_\theta(\cdot|s')`."""
        next_td = tensordict.get("next")
        next_action, _ = self._sample_action(next_td)
        next_value = self._critics(next_td, next_action, self.target_qvalue_network_params).min(0).values
        return self.value_estimator.value_estimate(tensordict, next_value=next_value.unsqueeze(-1)).squeeze(-1)

    @torch.no_grad()
    def update_temperature(self, tensordict: TensorDictBase) -> torch.Tensor:
        r"""Estimate :math:`\epsilon = \frac cp\,\mathrm{mean}_{i,t}|y_t - Q_{\omega_i}(s_t,a_t)|^p` on ``tensordict``
        and store it (``"ema"``: average it in). The batch is checked as :meth:`forward` checks it (flags,
        actions inside the action box, with ``check_finite`` NaN/inf inputs). Raises on NaN/infinite
        Bellman errors."""
        self.check_batch(tensordict)
        tensordict = self._bool_flags(tensordict)
        errors = self._target(tensordict) - self._critics(
            tensordict, tensordict.get(self.tensor_keys.action), self.qvalue_network_params
        )
        return self._store_temperature(errors, self._weights(tensordict, errors.shape[1:]))

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Actor (E-step) and critic (TD evaluation or the M-step) losses on a batch of transitions.

        ``"batch"``/``"ema"`` estimate the temperature from this batch's own Bellman errors (the target
        and critics the critic loss uses, so no extra forward pass) before the actor loss reads it.
        The batch is checked first (:meth:`~torchrl_reg.objectives.common.RegularizedLossBase.check_batch`).
        With ``"replay"``, warns once, at the second batch, if neither :meth:`update_temperature` nor
        :meth:`keep_temperature` was called."""
        self.check_batch(tensordict)
        self._count_forward()
        tensordict_in, tensordict = tensordict, self._bool_flags(tensordict)
        weights = self._weights(tensordict, tensordict.batch_size)
        target = self._target(tensordict)
        q_taken = self._critics(tensordict, tensordict.get(self.tensor_keys.action), self.qvalue_network_params)
        delta = target - q_taken
        if self.temperature_estimator != "replay":
            self._store_temperature(delta.detach(), weights)
        temperature = self.temperature.detach()

        action, log_prob = self._sample_action(tensordict)
        q_actor = self._critics(tensordict, action, self.qvalue_network_params.detach())
        loss_actor = self._reduce_loss(temperature * log_prob - q_actor.min(0).values, tensordict=tensordict, weights=weights)
        td_error = delta.detach().pow(2).mean(0)
        if self.variant == "practical":
            loss_qvalue = distance_loss(q_taken, target.expand_as(q_taken), self.loss_function).sum(0)
            loss_qvalue = self._reduce_loss(loss_qvalue, tensordict=tensordict, weights=weights)
        else:
            # M-step: sum_i [sg(Qbar_i) eps_i - sg(eps_i) Qbar_i], gradient -eps_i^2 grad L_i (class docstring).
            q_policy = self._critics(tensordict, action.detach(), self.qvalue_network_params)
            q_bar = _weighted_mean(q_policy, weights)
            eps = torch.stack([F.bellman_error_temperature(d, c=self.c, p=self.p, weights=weights) for d in delta])
            loss_qvalue = (q_bar.detach() * eps - eps.detach() * q_bar).sum()
        with torch.no_grad():
            diagnostics = {
                "temperature": temperature.clone().expand(log_prob.shape),
                "entropy": -log_prob.detach(),
                "log_prob": log_prob.detach(),
                "q_value": q_taken.detach().mean(0),
                "td_error": td_error,
                # L(w, theta) per state with the temperature of the E-step: Q(s, a~pi)/eps + H (one sample).
                "objective": q_actor.detach()[0] / temperature.clamp_min(torch.finfo(temperature.dtype).tiny) - log_prob.detach(),
            }
            diagnostics = {k: self._reduce_diagnostic(v) for k, v in diagnostics.items()}
        tensordict_in.set(self.tensor_keys.priority, td_error.unsqueeze(-1), inplace=True)
        batch_size = tensordict.batch_size if self.reduction == "none" else []
        td_out = TensorDict({"loss_actor": loss_actor, "loss_qvalue": loss_qvalue, **diagnostics}, batch_size=batch_size)
        self._clear_weakrefs(tensordict_in, td_out, *self._param_names())
        return td_out


def _weighted_mean(x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean over the batch dimensions of ``x [N, *batch]`` (importance-weighted, normalized, when given)."""
    x = x.reshape(x.shape[0], -1)  # [N, batch] (batch 1 for a single transition)
    if weights is None:
        return x.mean(-1)
    w = weights.reshape(-1).to(x.dtype)
    return (x * w).sum(-1) / w.sum()
