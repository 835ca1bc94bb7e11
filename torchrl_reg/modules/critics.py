"""Value networks of the continuous-control set-ups: SAC's critic and IQ's state value.

Both are fully connected **ReLU** networks, the architecture of SAC (Haarnoja et al. 2018b,
2x256 hidden units) that the IQ paper keeps for its value network ([IQ] Section 5: "Our value
network has the same architecture as the SAC Q-networks except that the input size is only the
state size"). TorchRL's :class:`~torchrl.modules.MLP` defaults to ``Tanh``; these builders name
the activation, so that a critic cannot silently differ from the policies' ReLU torsos.

Reference: [IQ] Vieillard, Pietquin, Geist, "Implicitly Regularized RL with Implicit Q-Values"
(AISTATS 2022, arXiv:2108.07041).
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torchrl.modules import MLP, ValueOperator

from torchrl_reg.validation import check_count

__all__ = ["state_value_network", "state_action_value_network"]


def _check_width(builder: str, name: str, value: int) -> None:
    try:
        check_count(name, value)
    except ValueError as err:
        raise ValueError(f"{builder}: {err} (the number of input features it reads)") from None


def state_value_network(
    observation_dim: int,
    *,
    num_cells: Sequence[int] = (256, 256),
    activation_class: type[nn.Module] = nn.ReLU,
    in_keys: Sequence[str] = ("observation",),
) -> ValueOperator:
    """``V(s)``: an MLP from the observation to one value, written under ``"state_value"`` (IQ's ``V_phi``)."""
    _check_width("state_value_network", "observation_dim", observation_dim)
    net = MLP(in_features=observation_dim, out_features=1, num_cells=list(num_cells), activation_class=activation_class)
    return ValueOperator(net, in_keys=list(in_keys))


def state_action_value_network(
    observation_dim: int,
    action_dim: int,
    *,
    num_cells: Sequence[int] = (256, 256),
    activation_class: type[nn.Module] = nn.ReLU,
    in_keys: Sequence[str] = ("observation", "action"),
) -> ValueOperator:
    """``Q(s, a)``: an MLP from the concatenated observation and action to one value (SAC's critic); both widths are
    integers >= 1 (an MLP of 0 observation features builds, and fails at its first forward)."""
    _check_width("state_action_value_network", "observation_dim", observation_dim)
    _check_width("state_action_value_network", "action_dim", action_dim)
    net = MLP(
        in_features=observation_dim + action_dim,
        out_features=1,
        num_cells=list(num_cells),
        activation_class=activation_class,
    )
    return ValueOperator(net, in_keys=list(in_keys))
