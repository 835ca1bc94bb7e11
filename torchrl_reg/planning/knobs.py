"""The knobs of the tree searches, each declared once with its default and range (:data:`KNOB_TABLE`); which
algorithms read a knob is the algorithm table's (:data:`~torchrl_reg.planning.algorithms.KNOBS`), never named here.

The parts' constructors (:mod:`~torchrl_reg.planning.scores`, :mod:`~torchrl_reg.planning.backups`), the parts table
(:mod:`~torchrl_reg.planning.algorithms`), :func:`~torchrl_reg.planning.factory.make_search` and the planning recipe's
``planner.<knob>`` keys all check a knob's value by its :class:`Knob` here, and nowhere else.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from torchrl_reg.validation import check_range

__all__ = ["KNOB_DEFAULTS", "KNOB_TABLE", "Knob", "check_knob"]


@dataclass(frozen=True)
class Knob:
    """One knob of the algorithms: its default and its range (``> low``, or ``>= low`` where ``low_inclusive``)."""

    #: the value of the knob left out
    default: float
    #: what it is, for the docs and the config's comments
    doc: str
    #: the lowest value accepted
    low: float = 0.0
    #: whether ``low`` itself is accepted
    low_inclusive: bool = True

    def check(self, name: str, value: float) -> float:
        """``value`` as a float if it is a number in the knob's range, else a ``ValueError`` naming ``name``."""
        if isinstance(value, bool):
            raise ValueError(f"{name} must be a finite number, got {name}={value!r}")
        return check_range(name, value, self.low, low_inclusive=self.low_inclusive)


#: Every knob of the algorithms, its default and range, declared once: :func:`~torchrl_reg.planning.factory.make_search`
#: takes them as arguments, the parts check them here and the planning recipe's config checks them here.
KNOB_TABLE: dict[str, Knob] = {
    "tau": Knob(1.0, "the temperature of the regularized backup and of its tree policy", low_inclusive=False),
    "eps": Knob(0.1, "the E2W / E3W exploration: the uniform share eps |A| / log(N(s) + 1), clipped to 1"),
    "alpha": Knob(1.0, "the search temperature of the Boltzmann tree policy", low_inclusive=False),
    "beta_0": Knob(1.0, "the initial weight of the entropy bonus"),
    "c": Knob(math.sqrt(2.0), "the exploration constant of UCB1"),
    "p": Knob(2.0, "the power of the backup's power mean (1: the mean, larger: nearer the max)", low=1.0),
}

#: the value of a knob left out
KNOB_DEFAULTS: dict[str, float] = {name: knob.default for name, knob in KNOB_TABLE.items()}


def check_knob(name: str, value: float, *, prefix: str = "") -> float:
    """``value`` of knob ``name`` (one of :data:`KNOB_TABLE`) as a float if it is in the knob's range; ``prefix`` names
    it in the error (``"planner."`` for a recipe's config)."""
    return KNOB_TABLE[name].check(prefix + name, value)
