"""The sweep's one error type, below every module of the package that raises it."""
from __future__ import annotations

__all__ = ["SweepError"]


class SweepError(ValueError):
    """A sweep that must not be submitted; the message lists every problem found."""
