"""Argument validators of the library: each returns the checked value or raises ``ValueError``
naming the argument, the bad value and what is accepted.

One home for them so that the losses, estimators and functions refuse the same inputs with the
same words; the checks on tensors of a batch live with the losses
(:meth:`torchrl_reg.objectives.common.RegularizedLossBase.check_batch`).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

__all__ = [
    "check_beta",
    "check_bool",
    "check_choice",
    "check_count",
    "check_gamma",
    "check_prior",
    "check_rate",
    "check_tau",
    "check_unit_interval",
]


def check_tau(tau: float) -> float:
    """Return ``tau`` as a float, raising if it is not a finite positive number."""
    tau = float(tau)
    if not tau > 0 or tau == float("inf"):
        raise ValueError(f"tau must be a finite number > 0, got tau={tau}")
    return tau


def check_beta(beta: float) -> float:
    """Return the inverse temperature ``beta`` as a float, raising if it is not finite and > 0."""
    beta = float(beta)
    if not beta > 0 or beta == float("inf"):
        raise ValueError(f"beta must be a finite number > 0, got beta={beta}")
    return beta


def check_rate(name: str, value: float) -> float:
    """Return an exponential-averaging rate (``alpha_rho``, ``alpha_beta`` of MIRL) if it lies in (0, 1]."""
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must lie in (0, 1], got {name}={value}")
    return value


def check_unit_interval(name: str, value: float, *, closed_right: bool = True) -> float:
    """Return ``value`` as a float if it lies in [0, 1] (or [0, 1) when ``closed_right=False``)."""
    value = float(value)
    ok = 0.0 <= value <= 1.0 if closed_right else 0.0 <= value < 1.0
    if not ok:
        interval = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {name}={value}")
    return value


def check_gamma(gamma: float | torch.Tensor) -> float | torch.Tensor:
    """Return the discount ``gamma`` if it is a number (or a one-element tensor) in [0, 1]; NaN is refused."""
    if isinstance(gamma, bool):
        raise ValueError(f"gamma must be a number in [0, 1], got gamma={gamma!r}")
    if isinstance(gamma, torch.Tensor):
        if gamma.numel() != 1 or not gamma.is_floating_point():
            raise ValueError(f"gamma must be a number in [0, 1], got a tensor of shape {list(gamma.shape)}, {gamma.dtype}")
        value = float(gamma)
    else:
        try:
            value = float(gamma)
        except (TypeError, ValueError):
            raise ValueError(f"gamma must be a number in [0, 1], got gamma={gamma!r}") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"gamma must be a number in [0, 1], got gamma={value}")
    return gamma


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool; strings such as ``'no'`` (truthy in Python) are refused."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {name}={value!r}")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices`` (compared by type and value, so ``1 != True``)."""
    choices = tuple(choices)
    if not any(type(value) is type(choice) and value == choice for choice in choices):
        raise ValueError(f"{name} must be one of {choices}, got {name}={value!r}")
    return value


def check_count(name: str, value: int) -> int:
    """Return ``value`` if it is an integer >= 1 (a bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {name}={value!r}")
    return value


def check_prior(rho: torch.Tensor, num_actions: int | None = None, *, atol: float = 1e-4) -> torch.Tensor:
    """Return ``rho`` if it is a distribution over actions: 1-D, finite, >= 0, summing to 1 (within ``atol``)."""
    rho = torch.as_tensor(rho)
    if rho.ndim != 1 or (num_actions is not None and rho.shape[0] != num_actions):
        expected = f"[{num_actions}]" if num_actions is not None else "[num_actions]"
        raise ValueError(f"the prior rho must be a 1-D tensor of shape {expected}, got shape {list(rho.shape)}")
    if not rho.is_floating_point():
        raise ValueError(f"the prior rho must be a floating-point tensor, got dtype {rho.dtype}")
    total = float(rho.double().sum())
    if not bool(torch.isfinite(rho).all()) or bool((rho < 0).any()) or abs(total - 1.0) > atol:
        raise ValueError(
            "the prior rho must be a probability distribution over actions (finite, >= 0, summing to 1), "
            f"got min={float(rho.min())}, sum={total}"
        )
    return rho
