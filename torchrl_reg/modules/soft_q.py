"""The amortized sampler of soft Q-learning and the proposals of its importance-sampled soft value.

* :class:`AmortizedSampler`: the state-conditioned stochastic network ``a = f(s, xi)``,
  ``xi ~ N(0, I)``, of [SQL] Section 3.2, squashed into a Box by ``tanh``; trained by
  :class:`~torchrl_reg.objectives.SVGDPolicyLoss`. :func:`svgd_sampler_actor` wraps it as a TorchRL
  :class:`~torchrl.modules.Actor` that collectors run; under
  ``set_exploration_type(ExplorationType.DETERMINISTIC)`` (or ``MODE``/``MEAN``) it acts with
  ``xi = 0``.
* :func:`uniform_proposal` and :func:`defensive_mixture_proposal`: the distributions ``q`` of the
  soft value ``V(s) = tau ln E_q[exp(Q(s, a)/tau) / q(a)]`` ([SQL] Eq. 10), each returning actions
  with their exact log-density.

Reference: [SQL] Haarnoja, Tang, Abbeel, Levine, "Reinforcement Learning with Deep Energy-Based
Policies", ICML 2017, arXiv:1702.08165.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as nnF
from torchrl.data import TensorSpec
from torchrl.envs.utils import ExplorationType, exploration_type
from torchrl.modules import MLP, Actor

from torchrl_reg.modules.policies import box_bounds
from torchrl_reg.validation import check_count

__all__ = [
    "AmortizedSampler",
    "svgd_sampler_actor",
    "log_abs_det_squash",
    "uniform_proposal",
    "defensive_mixture_proposal",
    "mixture_split",
]

_DETERMINISTIC_TYPES = (ExplorationType.DETERMINISTIC, ExplorationType.MODE, ExplorationType.MEAN)


def _normalized(action: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Box action -> ``[-1, 1]^d``."""
    return 2.0 * (action - low) / (high - low) - 1.0


def log_abs_det_squash(pre_tanh: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    r"""``ln |det da/du|`` of ``a = low + (high - low) (tanh(u) + 1) / 2``, summed over the last dim:

    .. math:: \sum_k \ln\frac{\mathrm{high}_k - \mathrm{low}_k}{2} + \ln(1 - \tanh^2 u_k),
              \qquad \ln(1 - \tanh^2 u) = 2(\ln 2 - u - \mathrm{softplus}(-2u))

    (exact for every ``u``; ``1 - tanh^2`` itself underflows to 0 in float32 beyond ``|u| ~ 9``).
    """
    log_half_width = torch.log((high - low) / 2.0)
    return (log_half_width + 2.0 * (math.log(2.0) - pre_tanh - nnF.softplus(-2.0 * pre_tanh))).sum(-1)


class AmortizedSampler(nn.Module):
    r"""The sampling network of [SQL] Section 3.2: ``a = low + (high - low) (tanh(f(s, xi)) + 1) / 2``.

    ``f`` is an MLP of the concatenated observation and noise ``xi ~ N(0, I_{noise_dim})``
    (``noise_dim`` defaults to the action dimension, as in the reference implementation). The
    sampler defines no density: its particles are moved towards :math:`\exp(Q/\tau)` by Stein
    variational gradient descent.

    ``forward(observation)`` returns one action per observation: a fresh ``xi`` under the
    ``RANDOM`` exploration type (what collectors use), ``xi = 0`` under ``DETERMINISTIC``,
    ``MODE`` or ``MEAN`` (an evaluation policy; not the mode of the sampler's distribution, which has
    no closed form).
    """

    def __init__(
        self,
        observation_dim: int,
        action_spec: TensorSpec,
        *,
        num_cells: Sequence[int] = (128, 128),
        activation_class: type[nn.Module] = nn.ReLU,
        noise_dim: int | None = None,
    ) -> None:
        super().__init__()
        low, high = box_bounds(action_spec, "the amortized SVGD sampler")
        self.register_buffer("low", low.float())
        self.register_buffer("high", high.float())
        self.action_dim = low.shape[0]
        self.noise_dim = self.action_dim if noise_dim is None else int(noise_dim)
        if self.noise_dim < 1:
            raise ValueError(f"noise_dim must be a positive integer, got noise_dim={noise_dim}")
        self.net = MLP(
            in_features=observation_dim + self.noise_dim,
            out_features=self.action_dim,
            num_cells=list(num_cells),
            activation_class=activation_class,
        )

    def pre_tanh(self, observation: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``u = f(s, xi)`` for observations ``[..., obs]`` and noise ``[..., noise_dim]``."""
        observation = observation.expand(*noise.shape[:-1], observation.shape[-1])
        return self.net(torch.cat([observation, noise], -1))

    def squash(self, pre_tanh: torch.Tensor) -> torch.Tensor:
        """``a = low + (high - low) (tanh(u) + 1) / 2``: a point of the open Box."""
        return self.low + (self.high - self.low) * (torch.tanh(pre_tanh) + 1.0) / 2.0

    def unit(self, action: torch.Tensor) -> torch.Tensor:
        """The Box action scaled to ``[-1, 1]^d`` (the inverse of :meth:`squash`'s affine part)."""
        return _normalized(action, self.low, self.high)

    def log_abs_det_jacobian(self, pre_tanh: torch.Tensor) -> torch.Tensor:
        """``ln |det da/du|`` of :meth:`squash` (:func:`log_abs_det_squash`)."""
        return log_abs_det_squash(pre_tanh, self.low, self.high)

    def sample_particles(self, observation: torch.Tensor, num_particles: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``num_particles`` draws per observation: ``(u, a)``, both ``[..., num_particles, d]``."""
        observation = observation.unsqueeze(-2)
        noise = torch.randn(
            *observation.shape[:-2], num_particles, self.noise_dim, dtype=observation.dtype, device=observation.device
        )
        pre_tanh = self.pre_tanh(observation, noise)
        return pre_tanh, self.squash(pre_tanh)

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        shape = (*observation.shape[:-1], self.noise_dim)
        if exploration_type() in _DETERMINISTIC_TYPES:
            noise = torch.zeros(shape, dtype=observation.dtype, device=observation.device)
        else:
            noise = torch.randn(shape, dtype=observation.dtype, device=observation.device)
        return self.squash(self.pre_tanh(observation, noise))


def svgd_sampler_actor(
    observation_dim: int,
    action_spec: TensorSpec,
    *,
    num_cells: Sequence[int] = (128, 128),
    activation_class: type[nn.Module] = nn.ReLU,
    noise_dim: int | None = None,
    in_keys: Sequence[str] = ("observation",),
) -> Actor:
    """An :class:`AmortizedSampler` as a TorchRL :class:`~torchrl.modules.Actor` (``observation`` ->
    ``action``), what collectors run and :class:`~torchrl_reg.objectives.SVGDPolicyLoss` trains.
    The reference uses 2x128 ReLU layers."""
    sampler = AmortizedSampler(
        observation_dim, action_spec, num_cells=num_cells, activation_class=activation_class, noise_dim=noise_dim
    )
    return Actor(sampler, in_keys=list(in_keys), out_keys=["action"], spec=action_spec)


def uniform_proposal(
    low: torch.Tensor, high: torch.Tensor, batch_shape: Sequence[int], num_particles: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_particles`` actions drawn uniformly in the Box per batch entry, ``[*batch_shape, M, d]``,
    and their log-density ``-sum_k ln(high_k - low_k)`` (``-d ln 2`` on ``[-1, 1]^d``), ``[*batch_shape, M]``."""
    num_particles = check_count("num_particles", num_particles, 2)
    shape = (*batch_shape, num_particles, low.shape[-1])
    actions = low + (high - low) * torch.rand(shape, dtype=low.dtype, device=low.device)
    log_q = -torch.log(high - low).sum(-1).expand(shape[:-1])
    return actions, log_q


def mixture_split(uniform_weight: float, num_particles: int) -> int:
    """The number ``round(w M)`` of uniform draws of :func:`defensive_mixture_proposal`, checked: ``w`` in
    ``(0, 1)`` and both components drawn at least once."""
    uniform_weight = float(uniform_weight)
    if not 0.0 < uniform_weight < 1.0:
        raise ValueError(f"uniform_weight must lie in (0, 1), got uniform_weight={uniform_weight}")
    num_uniform = round(uniform_weight * num_particles)
    if not 1 <= num_uniform <= num_particles - 1:
        raise ValueError(
            f"uniform_weight={uniform_weight} with {num_particles} particles draws {num_uniform} uniform actions: "
            "both components need at least one, choose uniform_weight * num_particles in [1, M - 1]"
        )
    return num_uniform


def defensive_mixture_proposal(
    sampler_pre_tanh: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
    num_particles: int,
    *,
    uniform_weight: float = 0.5,
    min_scale: float = 1e-2,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Defensive mixture of the uniform distribution on the Box and a tanh-Gaussian fitted to particles.

    The Gaussian :math:`N(\mu, \mathrm{diag}\,\sigma^2)` is fitted (mean and standard deviation, per
    dimension, no gradient) to the sampler's pre-tanh particles ``sampler_pre_tanh [..., K, d]`` and
    squashed into the Box like the sampler's actions, so it covers where the sampler puts its mass;
    the uniform part keeps every importance weight below :math:`1 / (w\, U(a))` (Hesterberg's defensive
    importance sampling), so a badly fitted Gaussian cannot blow up the variance. The ``M`` actions
    are drawn with a deterministic split, ``n_u = round(w M)`` from the uniform and ``M - n_u`` from
    the tanh-Gaussian, and every action gets the density of the mixture
    :math:`q = \frac{n_u}{M} U + \frac{M - n_u}{M} TG` (the balance heuristic), which keeps
    :math:`\frac1M\sum_j \exp(Q(a_j)/\tau)/q(a_j)` unbiased for :math:`\int\exp(Q/\tau)`.

    Returns actions ``[..., M, d]`` and their exact log-density under ``q``, ``[..., M]``.

    Raises:
        ValueError: for ``M < 2``, ``uniform_weight`` outside ``(0, 1)``, or a split that leaves a
            component without samples.
    """
    num_particles = check_count("num_particles", num_particles, 2)
    num_uniform = mixture_split(uniform_weight, num_particles)
    with torch.no_grad():
        sampler_pre_tanh = sampler_pre_tanh.detach()
        loc = sampler_pre_tanh.mean(-2, keepdim=True)
        scale = sampler_pre_tanh.std(-2, keepdim=True).clamp_min(min_scale)
        batch_shape = sampler_pre_tanh.shape[:-2]
        uniform_actions, log_uniform = uniform_proposal(low, high, batch_shape, num_uniform)
        noise = torch.randn(*batch_shape, num_particles - num_uniform, low.shape[-1], dtype=low.dtype, device=low.device)
        gauss_pre_tanh = loc + scale * noise
        gauss_actions = low + (high - low) * (torch.tanh(gauss_pre_tanh) + 1.0) / 2.0
        # The uniform draws' pre-tanh images; clamped away from +-1, where atanh is infinite (a
        # density of exactly 0 would still be right, but inf - inf is not).
        bound = 1.0 - torch.finfo(low.dtype).eps
        uniform_pre_tanh = torch.atanh(_normalized(uniform_actions, low, high).clamp(-bound, bound))
        pre_tanh = torch.cat([uniform_pre_tanh, gauss_pre_tanh], -2)
        actions = torch.cat([uniform_actions, gauss_actions], -2)
        log_gauss = (
            torch.distributions.Normal(loc, scale).log_prob(pre_tanh).sum(-1) - log_abs_det_squash(pre_tanh, low, high)
        )
        log_uniform = log_uniform[..., :1].expand(log_gauss.shape)
        fraction = num_uniform / num_particles
        log_q = torch.logaddexp(math.log(fraction) + log_uniform, math.log1p(-fraction) + log_gauss)
    return actions, log_q
