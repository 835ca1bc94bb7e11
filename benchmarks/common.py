"""What the speed benchmarks share: timing an update step and counting its FLOPs."""
from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["count_flops", "time_steps"]


def time_steps(step: Callable[[], None], n: int) -> float:
    """Seconds per call of ``step``, averaged over ``n`` calls back to back (CUDA work waited for)."""
    start = time.perf_counter()
    for _ in range(n):
        step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / n


def count_flops(step: Callable[[], None]) -> int:
    """FLOPs of one update (matmuls and convolutions, forward and backward), by torch's FLOP formulas.

    (``FlopCounterMode`` itself cannot be used: its module tracker tests TensorDictParams for truth.)
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Counter(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.total += formula(*args, **kwargs, out_val=out)
            return out

    with Counter() as counter:
        step()
    return counter.total
