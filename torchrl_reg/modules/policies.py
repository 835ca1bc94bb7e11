"""Policies for implicit Q-values (IQ, M-IQ): multicategorical, tanh-Gaussian and categorical.

IQ represents the Q-function through a policy, ``Q(s, a) = tau ln pi(a|s) + V(s)``
([IQ] Eq. 1), so the policy class carries all the representation power of the
method ([IQ] Section 4). Three classes are provided, each as a TorchRL
:class:`~torchrl.modules.ProbabilisticActor` that TorchRL collectors can run:

* :func:`multicategorical_policy`: the paper's policy. Each of the ``d``
  dimensions of a Box action space is discretized into ``n`` values spaced
  uniformly *including both bounds*, and
  ``pi(a|s) = prod_j softmax(F^j(s))(a^j)`` ([IQ] Section 4, "Multicategorical
  policies"), with a shared torso and one linear head per dimension.
* :func:`tanh_normal_policy`: a tanh-squashed diagonal Gaussian (the paper's
  Gaussian ablation, [IQ] Section 6; SAC's policy class).
* :func:`categorical_policy`: a plain softmax policy for discrete actions (IQ on
  a discrete action space is a dueling-like soft Q-learning, [IQ] Section 3.3).

The multicategorical and categorical policies take the softmax of the network's outputs ``F``
by default, ``pi = softmax(F)``, as [IQ] Section 4 writes the multicategorical policy. With
``tau=`` they are the *scaled* softmax of [IQ] Section 3.3, ``pi = softmax(F / tau)``, so that
``tau ln pi = F - tau logsumexp(F / tau)`` and ``F`` lives on the scale of the Q-values (the
dueling link). Both are the same function class; the scaled one needs ``1 / tau`` times smaller
network outputs for the same policy and starts closer to uniform. ``tau`` must then be the IQ
loss's temperature: :class:`~torchrl_reg.objectives.ImplicitQLoss` refuses a policy scaled by
another one (:func:`policy_logit_tau`).

Reference: [IQ] Vieillard, Pietquin, Geist, "Implicitly Regularized RL with
Implicit Q-Values" (AISTATS 2022, arXiv:2108.07041).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import distributions as D, nn
from torchrl.data import Categorical as CategoricalSpec, OneHot as OneHotSpec, TensorSpec, Unbounded as UnboundedSpec
from torchrl.modules import MLP, OneHotCategorical, ProbabilisticActor, TanhNormal

from torchrl_reg.validation import check_tau

__all__ = [
    "bin_grid",
    "box_bounds",
    "FactorizedCategorical",
    "ScaledLogits",
    "policy_logit_tau",
    "multicategorical_policy",
    "tanh_normal_policy",
    "categorical_policy",
    "check_scale_lb",
]

#: The floor that TorchRL's ``biased_softplus`` scale mapping adds on its own (its ``min_val``): a std floor below it
#: needs the mapping's own minimum lowered too, or the floor would be 0.01 whatever ``scale_lb`` says.
_SOFTPLUS_MIN = 0.01


def bin_grid(low: torch.Tensor, high: torch.Tensor, num_bins: int) -> torch.Tensor:
    r"""Uniform grid of ``num_bins`` values per dimension, both bounds included.

    Returns a ``[d, num_bins]`` tensor whose row ``j`` is
    :math:`\delta_i = \mathrm{low}_j (1 - t_i) + \mathrm{high}_j t_i`,
    :math:`t_i = i / (n - 1)` ([IQ] Section 4: "We discretize each dimension of the
    space uniformly in n values"). Written as a weighted sum so that the first and
    last values are the bounds bit for bit (``low + (high - low) * 1`` can miss
    ``high`` by one ulp). TorchRL's ``ActionDiscretizer`` grid excludes the bounds
    by default; this one does not.
    """
    _check_num_bins(num_bins)
    t = torch.linspace(0.0, 1.0, num_bins, dtype=low.dtype, device=low.device)
    return low.unsqueeze(-1) * (1.0 - t) + high.unsqueeze(-1) * t


def _check_num_bins(num_bins: int) -> int:
    if isinstance(num_bins, bool) or int(num_bins) != num_bins or num_bins < 2:
        raise ValueError(f"num_bins must be an integer >= 2 (a grid needs both bounds), got num_bins={num_bins}")
    return int(num_bins)


class FactorizedCategorical(D.Distribution):
    r"""Product of ``d`` independent categoricals over a uniform grid of a Box.

    .. math:: \pi(a|s) = \prod_{j=1}^d \mathrm{softmax}(F^j(s))(a^j)

    ([IQ] Section 4). Samples, modes and ``log_prob`` arguments are *actions*
    (points of the Box, shape ``[..., d]``), so an environment and a replay buffer
    see ordinary continuous actions. ``log_prob`` maps an action back to its bin
    indices by rounding to the nearest grid value: exact for grid actions, and the
    nearest bin for an off-grid action (e.g. a uniformly random one).

    Args:
        logits: ``[..., d, n]`` unnormalized log-probabilities, one row per dimension.
        low, high: ``[d]`` finite bounds of the Box, ``low < high``.
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, logits: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> None:
        if logits.ndim < 2:
            raise ValueError(f"logits must have shape [..., d, n], got shape {tuple(logits.shape)}")
        self.logits = torch.log_softmax(logits, dim=-1)
        self.low = torch.as_tensor(low, dtype=logits.dtype, device=logits.device)
        self.high = torch.as_tensor(high, dtype=logits.dtype, device=logits.device)
        if self.low.shape != logits.shape[-2:-1] or self.high.shape != logits.shape[-2:-1]:
            raise ValueError(
                f"low and high must have shape [d]={tuple(logits.shape[-2:-1])}, "
                f"got {tuple(self.low.shape)} and {tuple(self.high.shape)}"
            )
        super().__init__(batch_shape=logits.shape[:-2], event_shape=logits.shape[-2:-1], validate_args=False)

    @property
    def num_bins(self) -> int:
        return self.logits.shape[-1]

    @property
    def bins(self) -> torch.Tensor:
        """The ``[d, n]`` grid of action values (both bounds included)."""
        return bin_grid(self.low, self.high, self.num_bins)

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.exp()

    def index(self, action: torch.Tensor) -> torch.Tensor:
        """Bin indices ``[..., d]`` of the grid values nearest to ``action``."""
        position = (action.to(self.low.dtype) - self.low) / (self.high - self.low) * (self.num_bins - 1)
        return position.round().clamp(0, self.num_bins - 1).long()

    def action(self, index: torch.Tensor) -> torch.Tensor:
        """Grid values ``[..., d]`` of the bin indices ``index``."""
        bins = self.bins
        return bins.expand(*index.shape[:-1], *bins.shape).gather(-1, index.unsqueeze(-1)).squeeze(-1)

    def log_prob_index(self, index: torch.Tensor) -> torch.Tensor:
        """``sum_j log softmax(F^j)(index^j)`` for bin indices ``[..., d]``."""
        shape = torch.broadcast_shapes(index.shape[:-1], self.batch_shape)
        logits = self.logits.expand(*shape, *self.logits.shape[-2:])
        index = index.expand(*shape, index.shape[-1])
        return logits.gather(-1, index.unsqueeze(-1)).squeeze(-1).sum(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.log_prob_index(self.index(value))

    def sample(self, sample_shape: torch.Size | Sequence[int] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            index = D.Categorical(logits=self.logits).sample(torch.Size(sample_shape))
            return self.action(index)

    def entropy(self) -> torch.Tensor:
        """Exact entropy, the sum of the per-dimension entropies (the dimensions are independent)."""
        return self.entropy_per_dimension().sum(-1)

    def entropy_per_dimension(self) -> torch.Tensor:
        """``[..., d]`` entropies of the marginals ``pi^j`` (each at most ``ln n``, uniform over the grid)."""
        return -(self.probs * self.logits).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        """Per-dimension argmax, the joint mode of a factorized distribution."""
        return self.action(self.logits.argmax(-1))

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode

    @property
    def mean(self) -> torch.Tensor:
        return (self.probs * self.bins).sum(-1)


class ScaledLogits(nn.Module):
    r"""Divides the network outputs ``F`` by ``tau``: the logits of the scaled softmax
    :math:`\pi = \mathrm{softmax}(F/\tau)` of [IQ] Section 3.3.

    ``tau`` is a plain float attribute (read by :func:`policy_logit_tau`), not a parameter.
    """

    def __init__(self, tau: float) -> None:
        super().__init__()
        self.tau = check_tau(tau)

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs / self.tau

    def extra_repr(self) -> str:
        return f"tau={self.tau}"


def policy_logit_tau(policy: nn.Module) -> float | None:
    """The ``tau`` of a scaled-softmax policy (its :class:`ScaledLogits` module), ``None`` for a plain one.

    Raises:
        ValueError: if the policy holds several :class:`ScaledLogits` with different temperatures.
    """
    taus = {m.tau for m in policy.modules() if isinstance(m, ScaledLogits)}
    if len(taus) > 1:
        raise ValueError(f"the policy divides its logits by several temperatures {sorted(taus)}; expected one")
    return taus.pop() if taus else None


def _logit_head(net: nn.Module, tau: float | None) -> nn.Module:
    """``net`` followed by the division by ``tau`` of the scaled softmax, or ``net`` itself for ``tau=None``."""
    return net if tau is None else nn.Sequential(net, ScaledLogits(tau))


def box_bounds(action_spec: TensorSpec, user: str = "the multicategorical policy") -> tuple[torch.Tensor, torch.Tensor]:
    """Finite ``(low, high)`` of a 1-d continuous bounded action spec, or a ValueError naming the problem
    and ``user``, the component that needs the bounds."""
    if isinstance(action_spec, UnboundedSpec):
        raise ValueError(f"{user} needs finite action bounds, got an unbounded spec {type(action_spec).__name__}")
    space = getattr(action_spec, "space", None)
    low, high = getattr(space, "low", None), getattr(space, "high", None)
    if low is None or high is None or not torch.as_tensor(low).is_floating_point():
        raise ValueError(
            f"{user} needs a bounded continuous (Box) action spec "
            f"(torchrl.data.Bounded with a float dtype), got {type(action_spec).__name__}; "
            "use categorical_policy for discrete actions"
        )
    low, high = torch.as_tensor(low), torch.as_tensor(high)
    if low.ndim != 1:
        raise ValueError(f"the action spec must be a vector of shape [d], got shape {tuple(low.shape)}")
    # Specs stand for "unbounded" with +-float max, whose width overflows.
    if not torch.isfinite(high - low).all():
        raise ValueError(f"{user} needs finite action bounds, got low={low.tolist()}, high={high.tolist()}")
    if not (low < high).all():
        raise ValueError(f"the action bounds must satisfy low < high, got low={low.tolist()}, high={high.tolist()}")
    return low.clone(), high.clone()


def multicategorical_policy(
    observation_dim: int,
    action_spec: TensorSpec,
    *,
    num_bins: int = 11,
    num_cells: Sequence[int] = (256, 256),
    activation_class: type[nn.Module] = nn.ReLU,
    in_keys: Sequence[str] = ("observation",),
    tau: float | None = None,
) -> ProbabilisticActor:
    """The paper's factorized multicategorical policy as a :class:`~torchrl.modules.ProbabilisticActor`.

    An MLP torso (``num_cells``) followed by one linear layer of ``d * num_bins``
    outputs: its rows, grouped by dimension, are the ``d`` per-dimension heads
    ([IQ] Section 4, "neural networks with a shared core, which only differ in the
    last layer"). The cost is linear in ``d * num_bins``. The actor writes the
    logits under ``"logits"`` and the action (a grid point of the Box) under
    ``"action"``; in ``ExplorationType.DETERMINISTIC`` it takes the
    per-dimension argmax.

    ``tau=None`` (default): ``pi^j = softmax(F^j)`` ([IQ] Section 4). ``tau > 0``: the scaled
    softmax ``pi^j = softmax(F^j / tau)`` ([IQ] Section 3.3) with the IQ loss's ``tau``; the
    ``"logits"`` written are then ``F / tau``.

    Raises:
        ValueError: for a non-Box or unbounded action spec, ``num_bins < 2`` or ``tau <= 0``.
    """
    num_bins = _check_num_bins(num_bins)
    low, high = box_bounds(action_spec)
    action_dim = low.shape[0]
    net = nn.Sequential(
        MLP(
            in_features=observation_dim,
            out_features=action_dim * num_bins,
            num_cells=list(num_cells),
            activation_class=activation_class,
        ),
        nn.Unflatten(-1, (action_dim, num_bins)),
    )
    module = TensorDictModule(_logit_head(net, tau), in_keys=list(in_keys), out_keys=["logits"])
    return ProbabilisticActor(
        module,
        in_keys=["logits"],
        spec=action_spec,
        distribution_class=FactorizedCategorical,
        distribution_kwargs={"low": low, "high": high},
    )


def check_scale_lb(name: str, value: float) -> float:
    """Return the std floor ``value`` of :func:`tanh_normal_policy` as a float if ``0 < value < 1`` (the scale is 1 at
    a zero network output, so a floor of 1 or more would fix it)."""
    value = float(value)
    if not (0.0 < value < 1.0):
        raise ValueError(
            f"{name} must lie in (0, 1) (the floor of the Gaussian's standard deviation, whose value at a zero network "
            f"output is 1; e.g. 0.1, exp(-5) = 0.0067, exp(-20) = 2.1e-9), got {name}={value}"
        )
    return value


def tanh_normal_policy(
    observation_dim: int,
    action_spec: TensorSpec,
    *,
    num_cells: Sequence[int] = (256, 256),
    activation_class: type[nn.Module] = nn.ReLU,
    scale_lb: float = 0.1,
    in_keys: Sequence[str] = ("observation",),
) -> ProbabilisticActor:
    r"""Tanh-squashed diagonal Gaussian policy (SAC's policy class; the Gaussian ablation of [IQ] Section 6).

    ``a = low + (high - low) (tanh(u) + 1) / 2`` with ``u ~ N(mu(s), sigma(s))``;
    TorchRL's :class:`~torchrl.modules.TanhNormal` applies the change of variables,
    :math:`\ln\pi(a|s) = \ln N(u) - \sum_j \ln\frac{(\mathrm{high}_j - \mathrm{low}_j)(1 - \tanh^2 u_j)}{2}`.
    The scale is a biased softplus of the network output (``sigma = 1`` at 0) bounded below by ``scale_lb`` in
    ``(0, 1)``: :math:`\ln\sigma \ge \ln` ``scale_lb``. The default 0.1 (:math:`\ln\sigma \ge -2.3`) is TorchRL's SAC
    example's; other SAC implementations floor :math:`\ln\sigma` at -5 (``scale_lb = exp(-5)``) or -20. The floor
    bounds :math:`\ln\pi`, hence how large an entropy or Munchausen term :math:`\alpha\ln\pi` can get. TorchRL's
    ``biased_softplus`` mapping adds 0.01 of its own, so below 0.01 the mapping's minimum is ``scale_lb`` itself.
    """
    scale_lb = check_scale_lb("scale_lb", scale_lb)
    # Above 0.01 the mapping is TorchRL's default (bit for bit the same policy as before the floor was a setting).
    mapping = "biased_softplus_1.0" if scale_lb >= _SOFTPLUS_MIN else f"biased_softplus_1.0_{scale_lb!r}"
    low, high = box_bounds(action_spec, "the tanh-Gaussian policy")
    net = nn.Sequential(
        MLP(
            in_features=observation_dim,
            out_features=2 * low.shape[0],
            num_cells=list(num_cells),
            activation_class=activation_class,
        ),
        NormalParamExtractor(scale_mapping=mapping, scale_lb=scale_lb),
    )
    module = TensorDictModule(net, in_keys=list(in_keys), out_keys=["loc", "scale"])
    return ProbabilisticActor(
        module,
        in_keys=["loc", "scale"],
        spec=action_spec,
        distribution_class=TanhNormal,
        distribution_kwargs={"low": low, "high": high, "tanh_loc": False},
    )


def categorical_policy(
    observation_dim: int,
    action_spec: TensorSpec,
    *,
    num_cells: Sequence[int] = (256, 256),
    activation_class: type[nn.Module] = nn.ReLU,
    in_keys: Sequence[str] = ("observation",),
    tau: float | None = None,
) -> ProbabilisticActor:
    """Softmax policy over a discrete action space (``OneHot`` or ``Categorical`` spec).

    With this policy the implicit Q-value ``tau ln softmax(F) + V`` is a soft
    dueling architecture ([IQ] Section 3.3). ``tau > 0`` gives that section's scaled softmax
    ``softmax(F / tau)`` (the loss's ``tau``; ``"logits"`` are then ``F / tau``), whose
    ``tau ln pi = F - tau logsumexp(F / tau)`` tends to the dueling ``F - max F`` as ``tau -> 0``.
    """
    if isinstance(action_spec, OneHotSpec):
        distribution_class: type[D.Distribution] = OneHotCategorical
        num_actions = action_spec.shape[-1]
    elif isinstance(action_spec, CategoricalSpec):
        distribution_class = D.Categorical
        num_actions = action_spec.space.n
    else:
        raise ValueError(
            f"categorical_policy needs a OneHot or Categorical action spec, got {type(action_spec).__name__}; "
            "use multicategorical_policy or tanh_normal_policy for Box actions"
        )
    net = MLP(
        in_features=observation_dim,
        out_features=num_actions,
        num_cells=list(num_cells),
        activation_class=activation_class,
    )
    module = TensorDictModule(_logit_head(net, tau), in_keys=list(in_keys), out_keys=["logits"])
    return ProbabilisticActor(module, in_keys=["logits"], spec=action_spec, distribution_class=distribution_class)

