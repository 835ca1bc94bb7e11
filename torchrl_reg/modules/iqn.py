"""Implicit quantile network (IQN) and its state torsos.

References:

* [IQN] Dabney, Ostrovski, Silver, Munos. Implicit Quantile Networks for
  Distributional Reinforcement Learning, ICML 2018 (arXiv:1806.06923), Sec. 3:
  ``Z_tau(x, a) ~ f(psi(x) * phi(tau))_a`` with the cosine embedding
  ``phi_j(tau) = ReLU(sum_i cos(pi i tau) w_ij + b_j)`` and the policy
  ``argmax_a 1/K sum_k Z_{tau_k}(x, a)`` over ``K`` sampled fractions.
* [MRL] "Munchausen Reinforcement Learning", NeurIPS 2020, arXiv:2007.14430, Sec. 2 (M-IQN uses the same
  network; its softmax policy is taken over the mean of the ``K`` quantiles).
* Revisiting Rainbow (Obando-Ceron & Castro, ICML 2021, arXiv:2011.14826): the MinAtar
  network, the ``Conv(16, 3x3)`` torso (:class:`~torchrl_reg.modules.torsos.MinAtarTorso`)
  followed directly by the quantile embedding product and a linear layer to the actions.

Fractions are drawn uniformly in ``[0, 1)``. A draw is either one set per
transition (``[*batch, n]``, as in [IQN] and Dopamine's TensorFlow agents) or one set
for the whole batch (``[n]``, as in Dopamine's JAX agents used by Revisiting
Rainbow): both shapes are accepted wherever fractions are.

The cosine frequencies are ``pi * i`` for ``i = 1..embedding_dim`` as in Dopamine
(the paper's ``i = 0`` term is a constant, which the bias already provides).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from torchrl_reg.modules.torsos import MinAtarTorso, NatureCNNTorso
from torchrl_reg.validation import check_count

__all__ = [
    "CosineQuantileEmbedding",
    "MinAtarTorso",
    "NatureCNNTorso",
    "ImplicitQuantileNetwork",
    "make_iqn_network",
    "sample_fractions",
]


def sample_fractions(
    batch_shape: Sequence[int] | torch.Size,
    num_fractions: int,
    *,
    independent: bool = True,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Quantile fractions ``tau ~ U[0, 1)``: ``[*batch_shape, n]`` if ``independent`` else ``[n]``."""
    check_count("num_fractions", num_fractions)
    shape = (*batch_shape, num_fractions) if independent else (num_fractions,)
    return torch.rand(shape, device=device, generator=generator)


class CosineQuantileEmbedding(nn.Module):
    r"""Cosine embedding of quantile fractions ([IQN], Sec. 3):

    .. math:: \phi_j(\tau) = \mathrm{ReLU}\Big(\sum_{i=1}^{n} \cos(\pi i \tau)\, w_{ij} + b_j\Big)

    Maps fractions of any shape ``[...]`` to ``[..., out_features]``.
    """

    def __init__(self, out_features: int, embedding_dim: int = 64) -> None:
        super().__init__()
        self.embedding_dim = check_count("embedding_dim", embedding_dim)
        self.linear = nn.Linear(embedding_dim, check_count("out_features", out_features))

    def forward(self, fractions: torch.Tensor) -> torch.Tensor:
        # The frequencies are rebuilt on the fly rather than kept as a buffer so that
        # the module's TensorDict parameters (and target copies) hold weights only.
        # Computed in the layer's dtype (a float64 network gets float64 cosines of float32 fractions).
        fractions = fractions.to(self.linear.weight.dtype)
        i = torch.arange(1, self.embedding_dim + 1, device=fractions.device, dtype=fractions.dtype)
        return torch.relu(self.linear(torch.cos(fractions.unsqueeze(-1) * (math.pi * i))))


class ImplicitQuantileNetwork(nn.Module):
    r"""Implicit quantile network ([IQN], Sec. 3): ``Z_tau(s, .) = f(psi(s) * phi(tau))``.

    Args:
        torso: the state network ``psi``; maps observations ``[*batch, *obs_shape]`` to
            features ``[*batch, feature_dim]`` (:class:`NatureCNNTorso`, :class:`MinAtarTorso`,
            a :class:`torchrl.modules.MLP` with ``activate_last_layer=True``, ...).
        num_actions: number of discrete actions.

    Keyword Args:
        feature_dim: width of the torso's output; read from ``torso.out_features`` when omitted.
        embedding_dim: number of cosines in the fraction embedding (64 in [IQN]).
        hidden_sizes: hidden layers of ``f`` after the Hadamard product ((512,) on Atari;
            () for Revisiting Rainbow's MinAtar network).
        num_policy_quantiles: ``K``, the number of fractions averaged by :meth:`forward`
            to give action values (32 in [IQN]).

    Calling the module returns action values ``Q(s, a) = 1/K sum_k Z_{tau_k}(s, a)`` with
    freshly sampled fractions, so it plugs into :class:`torchrl.modules.QValueActor` (greedy
    action from the mean) and TorchRL collectors. The losses call :meth:`features` and
    :meth:`quantiles_from_features` to evaluate chosen fraction sets without repeating the torso.

    Examples:
        >>> from torchrl.data import Categorical
        >>> from torchrl.modules import QValueActor
        >>> net = ImplicitQuantileNetwork.minatar(in_channels=4, num_actions=6)
        >>> actor = QValueActor(net, in_keys=["observation"], spec=Categorical(6))
    """

    def __init__(
        self,
        torso: nn.Module,
        num_actions: int,
        *,
        feature_dim: int | None = None,
        embedding_dim: int = 64,
        hidden_sizes: Sequence[int] = (512,),
        num_policy_quantiles: int = 32,
    ) -> None:
        super().__init__()
        if feature_dim is None:
            feature_dim = getattr(torso, "out_features", None)
            if not isinstance(feature_dim, int):
                raise ValueError(
                    "feature_dim was not given and the torso has no integer `out_features` attribute; "
                    f"pass feature_dim= (the width of the torso's output) for torso {type(torso).__name__}"
                )
        self.torso = torso
        self.feature_dim = check_count("feature_dim", feature_dim)
        self.num_actions = check_count("num_actions", num_actions)
        self.num_policy_quantiles = check_count("num_policy_quantiles", num_policy_quantiles)
        self.embedding = CosineQuantileEmbedding(feature_dim, embedding_dim)
        layers: list[nn.Module] = []
        width = feature_dim
        for h in hidden_sizes:
            layers += [nn.Linear(width, check_count("hidden size", h)), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_actions))
        self.head = nn.Sequential(*layers)
        self._affine_head = not hidden_sizes

    @classmethod
    def nature(
        cls,
        num_actions: int,
        *,
        frame_stack: int = 4,
        frame_size: tuple[int, int] = (84, 84),
        embedding_dim: int = 64,
        num_policy_quantiles: int = 32,
    ) -> ImplicitQuantileNetwork:
        """The Atari network of [IQN] and M-IQN: Nature CNN, embedding 64, one 512 hidden layer."""
        return cls(
            NatureCNNTorso(frame_stack, frame_size),
            num_actions,
            embedding_dim=embedding_dim,
            hidden_sizes=(512,),
            num_policy_quantiles=num_policy_quantiles,
        )

    @classmethod
    def minatar(
        cls,
        in_channels: int,
        num_actions: int,
        *,
        embedding_dim: int = 64,
        num_policy_quantiles: int = 32,
    ) -> ImplicitQuantileNetwork:
        """Revisiting Rainbow's MinAtar IQN: ``Conv(16, 3x3)`` torso, embedding 64, no hidden layer."""
        return cls(
            MinAtarTorso(in_channels),
            num_actions,
            embedding_dim=embedding_dim,
            hidden_sizes=(),
            num_policy_quantiles=num_policy_quantiles,
        )

    @classmethod
    def mlp(
        cls,
        in_features: int,
        num_actions: int,
        *,
        num_cells: Sequence[int] = (128, 128),
        embedding_dim: int = 64,
        hidden_sizes: Sequence[int] = (),
        num_policy_quantiles: int = 32,
    ) -> ImplicitQuantileNetwork:
        """An MLP torso for vector observations (CartPole and other classic-control tasks)."""
        from torchrl.modules import MLP

        num_cells = [check_count("num_cells", c) for c in num_cells]
        if not num_cells:
            raise ValueError("num_cells must name at least one layer, got num_cells=()")
        torso = MLP(
            in_features=check_count("in_features", in_features),
            out_features=num_cells[-1],
            num_cells=num_cells[:-1],
            activation_class=nn.ReLU,  # TorchRL's MLP defaults to Tanh; IQN's torso is ReLU (Dabney et al. 2018)
            activate_last_layer=True,
        )
        return cls(
            torso,
            num_actions,
            feature_dim=num_cells[-1],
            embedding_dim=embedding_dim,
            hidden_sizes=hidden_sizes,
            num_policy_quantiles=num_policy_quantiles,
        )

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """State features ``psi(s)``: ``[*batch, feature_dim]``."""
        return self.torso(obs)

    def quantiles_from_features(self, features: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
        """Quantile values ``Z_tau(s, a)`` for fractions ``[*batch, n]`` or ``[n]``: ``[*batch, n, num_actions]``."""
        embedded = self.embedding(fractions)
        if self._affine_head:
            # With no hidden layer f is affine: (psi * phi) W^T + b = phi (diag(psi) W^T) + b. The
            # [*batch, n, feature_dim] product (and its gradient) is never formed: for MinAtar
            # (1600 features, 6 actions) this is the bulk of an update's memory traffic.
            linear = self.head[-1]
            return torch.matmul(embedded, features.unsqueeze(-1) * linear.weight.t()) + linear.bias
        return self.head(features.unsqueeze(-2) * embedded)

    def quantile_values(self, obs: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
        """Quantile values at the given fractions, from observations: ``[*batch, n, num_actions]``."""
        return self.quantiles_from_features(self.features(obs), fractions)

    def action_values_from_features(
        self, features: torch.Tensor, fractions: torch.Tensor
    ) -> torch.Tensor:
        """``Q(s, a) = 1/K sum_k Z_{tau_k}(s, a)`` for the given ``K`` fractions: ``[*batch, num_actions]``."""
        if self._affine_head:
            # With no hidden layer f is affine, so the mean over fractions moves inside it:
            # 1/K sum_k f(psi * phi_k) = f(psi * 1/K sum_k phi_k), one head row per state.
            return self.head(features * self.embedding(fractions).mean(-2))
        return self.quantiles_from_features(features, fractions).mean(-2)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Action values from ``num_policy_quantiles`` freshly sampled fractions per state."""
        features = self.features(obs)
        fractions = sample_fractions(features.shape[:-1], self.num_policy_quantiles, device=features.device)
        return self.action_values_from_features(features, fractions)


def make_iqn_network(
    kind: str,
    obs_shape: Sequence[int],
    num_actions: int,
    *,
    hidden: Sequence[int] = (128, 128),
    embedding_dim: int = 64,
    num_policy_quantiles: int = 32,
) -> ImplicitQuantileNetwork:
    """The IQN named ``kind`` on the torso of the same name as the Q-networks
    (:func:`~torchrl_reg.modules.q_networks.make_q_network`): ``nature_cnn`` ([IQN]'s Atari network,
    512 hidden units), ``minatar_conv`` (Revisiting Rainbow's, no hidden layer) or ``mlp`` (``hidden``
    is the torso)."""
    obs_shape = tuple(obs_shape)
    kw = dict(embedding_dim=embedding_dim, num_policy_quantiles=num_policy_quantiles)
    if kind == "mlp":
        if len(obs_shape) != 1:
            raise ValueError(f"network.kind='mlp' needs a flat observation, got observation shape {obs_shape}")
        return ImplicitQuantileNetwork.mlp(obs_shape[0], num_actions, num_cells=tuple(hidden), **kw)
    if kind not in ("minatar_conv", "nature_cnn"):
        raise ValueError(f"network.kind must be one of ['mlp', 'minatar_conv', 'nature_cnn'], got network.kind={kind!r}")
    if len(obs_shape) != 3:
        raise ValueError(f"network.kind={kind!r} needs (C, H, W) observations, got observation shape {obs_shape}")
    if kind == "nature_cnn":
        return ImplicitQuantileNetwork.nature(num_actions, frame_stack=obs_shape[0], frame_size=obs_shape[1:], **kw)
    return ImplicitQuantileNetwork(MinAtarTorso(*obs_shape), num_actions, hidden_sizes=(), **kw)
