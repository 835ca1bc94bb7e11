"""The generic update recorded once as a CUDA graph and replayed: :class:`CudaGraphUpdate`.

:func:`~torchrl_reg.objectives.make_update`'s generic step (``loss(batch)``, backward of the sum of its
``loss*`` terms, optional norm clipping, optimizer step) serves every TorchRL loss, TorchRL's ``SACLoss``
included. On a GPU most of a small network's step is kernel launches; recording the whole step (forward,
backward, clipping, optimizer) as one CUDA graph and replaying it removes them, which is how LeanRL
(``pytorch-labs/LeanRL``) speeds up CleanRL's SAC: ``torch.compile`` plus a graph of the whole update.
:class:`~torchrl_reg.objectives.FusedAdamUpdate` does the same for the losses that can be written as one
pure function (``FusableLoss``); this class needs nothing from the loss but that its step makes no host
synchronisation (no ``.item()``, no ``bool(tensor)``, no data-dependent shape): :func:`host_syncs` lists
the ones a step makes, on any device, so that a loss's capturability is tested on a CPU too.

The recipe follows PyTorch's whole-network capture (``torch.cuda.graphs``, "Whole-network capture"): the
first ``warmup`` calls run the step eagerly on a side stream (each is a real update on its own batch, so
the run is the eager one from the first call), the next call records the step on the loss's own static
copy of the batch, and every call from then on copies its batch into that copy and replays the graph. The
optimizer is switched to ``capturable`` (its step counters on the device, as CUDA graphs need), and the
graph is recorded again when the optimizer's state tensors are replaced (``optimizer.load_state_dict``
at a resume), since a graph reads fixed addresses.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDictBase
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["CudaGraphUpdate", "host_syncs"]

# Operators that make the host wait for the device: a scalar read (.item(), bool(), float()) or a result
# whose shape depends on the data (boolean-mask indexing, nonzero). None can be recorded in a CUDA graph.
_SYNC_OPS = ("aten::_local_scalar_dense", "aten::is_nonzero", "aten::nonzero", "aten::masked_select",
             "aten::unique", "aten::_unique2", "aten::item")
_MASK_OPS = ("aten::index", "aten::index_put", "aten::index_put_")


class _RecordSyncs(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if name in _MASK_OPS and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] if len(args) > 1 else ())
        ):
            name = f"{name} (boolean mask)"  # a data-dependent shape, computed on the host
        if (name in _SYNC_OPS or name.endswith("(boolean mask)")) and name not in self.found:
            self.found.append(name)
        return func(*args, **(kwargs or {}))


def host_syncs(step: Callable[..., object], *args, **kwargs) -> list[str]:
    """The operators of ``step(*args, **kwargs)`` that synchronise the host with the device (e.g.
    ``aten::_local_scalar_dense`` for ``.item()``), in the order first met; empty when the step can be
    recorded as a CUDA graph as far as its operators go. Runs ``step`` once, on any device."""
    with _RecordSyncs() as mode:
        step(*args, **kwargs)
    return mode.found


def _state_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [value for state in optimizer.state.values() for value in state.values() if isinstance(value, torch.Tensor)]


class CudaGraphUpdate:
    """``step(batch)`` (a :func:`~torchrl_reg.objectives.make_update` step, compiled or eager) replayed as a
    CUDA graph after ``warmup`` eager calls. Returns the step's detached outputs (cloned out of the graph's
    memory, which the next replay overwrites); the loss's priority entry, when the step writes one into the
    batch, is copied back into the caller's batch, so ``replay_buffer.update_tensordict_priority(batch)``
    works as with the eager step. Every batch must carry the keys, shapes and dtypes of the recorded one
    (a ``ValueError`` names the difference)."""

    def __init__(
        self,
        step: Callable[[TensorDictBase], TensorDictBase],
        loss_module: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        warmup: int = 3,
    ):
        reason = self.unsupported_reason(loss_module, optimizer)
        if reason is not None:
            raise ValueError(f"cannot record this update as a CUDA graph: {reason}")
        if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 1:
            raise ValueError(f"warmup must be an int >= 1 (eager calls before the graph is recorded), got {warmup!r}")
        self.step = step
        self.loss_module = loss_module
        self.optimizer = optimizer
        self.warmup = warmup
        for group in optimizer.param_groups:
            group["capturable"] = True
        self.device = next(p.device for p in loss_module.parameters())
        self._stream = torch.cuda.Stream(self.device)
        self._calls = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static: TensorDictBase | None = None
        self._out: TensorDictBase | None = None
        self._state_ids: list[int] = []
        priority = getattr(getattr(loss_module, "tensor_keys", None), "priority", None)
        self._priority = priority

    @staticmethod
    def unsupported_reason(loss_module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> str | None:
        """Why the generic step of ``(loss_module, optimizer)`` cannot be replayed as a CUDA graph, or ``None``."""
        declared = getattr(loss_module, "cuda_graph_unsupported", None)
        if declared:
            return f"{type(loss_module).__name__}: {declared}"
        if "capturable" not in optimizer.defaults:
            return (f"{type(optimizer).__name__} has no capturable mode (its step reads host values); "
                    "torch.optim.Adam and AdamW have one")
        devices = sorted({str(p.device) for p in loss_module.parameters()})
        if not devices or any(not d.startswith("cuda") for d in devices):
            return f"the loss's parameters must be on a CUDA device, they are on {', '.join(devices) or 'no device'}"
        return None

    def _warm(self, batch: TensorDictBase) -> TensorDictBase:
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            out = self.step(batch)
        torch.cuda.current_stream(self.device).wait_stream(self._stream)
        return out

    def _record(self, batch: TensorDictBase) -> None:
        self._static = batch.clone()
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._out = self.step(self._static)
        except RuntimeError as error:  # a host sync inside the step: name it
            raise RuntimeError(
                f"{type(self.loss_module).__name__}'s update cannot be recorded as a CUDA graph ({error}); "
                "torchrl_reg.objectives.graph_update.host_syncs(step, batch) lists the operators that synchronise "
                "the host (use cuda_graph=False)"
            ) from error
        self._graph = graph
        self._state_ids = [id(t) for t in _state_tensors(self.optimizer)]

    def _copy_in(self, batch: TensorDictBase) -> None:
        static = self._static
        theirs = {k for k in batch.keys(True, True) if k != self._priority}
        ours = {k for k in static.keys(True, True) if k != self._priority}
        if theirs != ours:
            raise ValueError(
                f"the CUDA-graph update was recorded for batches with keys {sorted(map(str, ours))}, got "
                f"{sorted(map(str, theirs))}; every batch must carry the same keys"
            )
        for key in theirs:
            source, target = batch.get(key), static.get(key)
            if source.shape != target.shape or source.dtype != target.dtype:
                raise ValueError(
                    f"the CUDA-graph update was recorded for {key!r} of shape {tuple(target.shape)} and dtype "
                    f"{target.dtype}, got {tuple(source.shape)} and {source.dtype}"
                )
            target.copy_(source, non_blocking=True)

    def __call__(self, batch: TensorDictBase) -> TensorDictBase:
        if self._graph is None and self._calls < self.warmup:
            self._calls += 1
            return self._warm(batch)
        if self._graph is not None and [id(t) for t in _state_tensors(self.optimizer)] != self._state_ids:
            self._graph = None  # new optimizer-state tensors (a resume): record again at their addresses
        if self._graph is None:
            self._record(batch)
        else:
            self._copy_in(batch)
        self._graph.replay()
        if self._priority is not None and self._priority in self._static.keys(True, True):
            batch.set(self._priority, self._static.get(self._priority).clone())
        return self._out.clone()
