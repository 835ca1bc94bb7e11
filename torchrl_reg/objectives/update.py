"""The gradient step shared by every loss: :func:`make_update` and its fused, compiled form
:class:`FusedAdamUpdate`.

The contract between a loss and this update (kept by every loss of :mod:`torchrl_reg.objectives`
and by TorchRL's own losses for the generic path):

* ``loss(batch)`` returns a TensorDict whose ``loss*`` entries (``"loss"`` for the single-term
  losses, as TorchRL's ``DQNLoss``; ``"loss_actor"``, ``"loss_qvalue"``, ``"loss_alpha"`` for
  TorchRL's ``SACLoss``) are summed into the objective the update differentiates, as TorchRL's
  trainers do; every other entry is a detached diagnostic. Loss terms that touch disjoint
  parameters (SAC's actor, critics and temperature) are then stepped by one optimizer as if by
  three. The fused update returns the same entries: ``loss`` and the diagnostics, or, for a loss whose
  ``loss_and_outputs`` lists its terms (``loss_*``, detached) among its outputs (MDACLoss), those outputs
  alone, their sum being what it differentiated.
* A loss that satisfies :class:`~torchrl_reg.objectives.protocols.FusableLoss` (``loss_and_outputs``
  and ``fusable_update = True``; optionally ``fused_params``, ``check_batch``, ``flat_fused_params``)
  gets the fused compiled step, :class:`FusedAdamUpdate`.
* A loss that satisfies :class:`~torchrl_reg.objectives.protocols.InputChecks` (``check_inputs``,
  ``inputs_checked``) can have its transitions checked once, before the replay buffer, by a caller that
  builds the update with ``inputs_checked=True`` (the loops of :mod:`torchrl_reg.loops` do).
"""
from __future__ import annotations

import types
from collections.abc import Callable
from functools import partial

import torch
from tensordict import TensorDict, TensorDictBase
from torch.nn.utils.stateless import _reparametrize_module
from torch.utils._pytree import tree_flatten, tree_unflatten

from torchrl_reg.objectives.graph_update import CudaGraphUpdate
from torchrl_reg.objectives.protocols import FusableLoss, InputChecks, protocol_gaps
from torchrl_reg.validation import check_bool, check_positive

__all__ = ["FusedAdamUpdate", "make_update", "total_loss"]


def total_loss(out: TensorDictBase) -> torch.Tensor:
    """The sum of the ``loss*`` entries of a loss output, the objective that :func:`make_update` differentiates."""
    terms = [out.get(key) for key in out.keys() if isinstance(key, str) and key.startswith("loss")]
    if not terms:
        raise KeyError(f"the loss output has no 'loss*' entry to differentiate; its keys are {list(out.keys())}")
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def make_update(
    loss_module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    max_grad_norm: float | None,
    compile: bool,
    fused: bool | str = "auto",
    inputs_checked: bool = False,
    cuda_graph: bool = False,
) -> Callable[[TensorDictBase], TensorDictBase]:
    """One gradient step on a minibatch (loss, backward of the sum of its ``loss*`` terms, optional
    norm clipping, optimizer step), returning the detached loss outputs; compiled with
    ``torch.compile`` when ``compile``. Any TorchRL loss works (``SACLoss`` included).

    With ``compile`` and a loss that exposes ``loss_and_outputs(tensordict, params)`` (the
    regularized DQN family with ``fusable_update = True``: :class:`~torchrl_reg.objectives.MunchausenDQNLoss`,
    :class:`~torchrl_reg.objectives.AdvantageLearningLoss`, :class:`~torchrl_reg.objectives.MIRLLoss`,
    :class:`~torchrl_reg.objectives.IQNLoss`, :class:`~torchrl_reg.objectives.MunchausenIQNLoss`, and
    :class:`~torchrl_reg.objectives.ImplicitQLoss` over policy and value together) and a plain
    :class:`torch.optim.Adam` over exactly those parameters, the whole step is fused into one compiled graph
    (:class:`FusedAdamUpdate`: gradients by ``torch.func.grad``, Adam on the optimizer's own state);
    ``fused=False`` keeps the generic path, ``fused=True`` raises if fusion is not possible.
    The generic path compiles the loss and the optimizer step around an eager backward.
    With a tiny network most of an eager update is Python overhead, hence both.

    ``max_grad_norm``: clip the global gradient norm to this finite number > 0, or ``None`` for no
    clipping. 0 (which would freeze learning), negative values (which would flip every gradient:
    ascent) and NaN (which would make every parameter NaN) are refused; "no clipping" is ``None``.

    ``inputs_checked=True`` tells the fused update that the caller checks every transition once,
    with ``loss_module.check_inputs``, before it enters the replay buffer (as the training loops
    of :mod:`torchrl_reg.loops` do): each minibatch's actions and values are then not checked
    again (its first minibatch still is, and priority weights always are). The eager generic path
    then runs the loss's ``forward`` inside ``loss_module.inputs_checked()`` (when the loss has it),
    which skips the same checks; the compiled generic path checks every batch.

    The optimizer must hold at least one of the loss's trainable parameters: one built on another module's
    parameters would step them and never move the loss's, so it is refused (``ValueError`` naming both counts).

    ``cuda_graph=True`` (opt-in, CUDA only, with ``compile``) replays the update as a CUDA graph: the fused
    step when the loss has one (:class:`FusedAdamUpdate` with ``cuda_graph=True``), else the compiled generic
    step recorded whole, forward, backward, clipping and optimizer (:class:`~torchrl_reg.objectives.CudaGraphUpdate`:
    TorchRL's ``SACLoss`` and ``DQNLoss`` included; its optimizer needs a ``capturable`` mode, as Adam's). It
    raises if ``compile`` is off, if the parameters are not on a CUDA device, or if the loss declares a host
    synchronisation in its step (``cuda_graph_unsupported``, e.g. VIREL's temperature check).
    """
    check_bool("inputs_checked", inputs_checked)
    if max_grad_norm is not None:
        check_positive("max_grad_norm", max_grad_norm)
    check_bool("cuda_graph", cuda_graph)
    if cuda_graph and not compile:
        raise ValueError(
            f"cuda_graph=True records the compiled update as a CUDA graph: it needs compile=True, got compile={compile!r}"
        )
    if fused not in (True, False, "auto"):
        raise ValueError(f"fused must be True, False or 'auto', got fused={fused!r}")
    _check_optimizer_holds_the_loss(loss_module, optimizer)
    if fused is not False and compile:
        reason = FusedAdamUpdate.unsupported_reason(loss_module, optimizer)
        if reason is None:
            return FusedAdamUpdate(
                loss_module, optimizer, max_grad_norm=max_grad_norm, inputs_checked=inputs_checked, cuda_graph=cuda_graph
            )
        if fused is True:
            raise ValueError(f"fused=True, but the update cannot be fused: {reason}")
    elif fused is True:
        raise ValueError("fused=True needs compile=True (the fused update is a compiled graph)")
    if cuda_graph:  # the generic step recorded whole; refused before the optimizer is touched
        reason = CudaGraphUpdate.unsupported_reason(loss_module, optimizer)
        if reason is not None:
            raise ValueError(f"cuda_graph=True, but {reason} (use cuda_graph=False)")

    # Transitions checked before the buffer are not checked again at each eager update (priority weights are),
    # nor in a recorded CUDA graph (a check reads a value on the host, which a graph cannot record).
    skip_checks = inputs_checked and (not compile or cuda_graph) and isinstance(loss_module, InputChecks)

    def update(batch: TensorDictBase) -> TensorDictBase:
        if skip_checks:
            with loss_module.inputs_checked():
                out = loss_module(batch)
        else:
            out = loss_module(batch)
        total_loss(out).backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(loss_module.parameters(), max_grad_norm)
        optimizer.step()
        out = out.detach()
        # Last, so that torch.compile traces everything above before this graph break; zeroed
        # in place when compiled, so the compiled step sees the same gradient tensors at every call.
        # Eager, set to None: backward then writes each gradient instead of adding it to zeros
        # (the same values, one zero_ and one add_ fewer per parameter: ~2% of a CartPole update).
        optimizer.zero_grad(set_to_none=not compile)
        return out

    if not compile:
        return update
    if "_target_entropy" in vars(loss_module) or "_target_entropy" in loss_module._buffers:
        # TorchRL's SACLoss (and its kin) register their target entropy as a buffer at the first forward call: a
        # graph traced before that change would be recompiled after it (twice for SACLoss: the spec's batch size
        # is filled then too). Taking it now makes the module final before anything is compiled.
        loss_module.target_entropy
    compiled = torch.compile(update)
    return CudaGraphUpdate(compiled, loss_module, optimizer) if cuda_graph else compiled


def _fused_params(loss_module: torch.nn.Module) -> TensorDictBase:
    """What the fused update differentiates: ``loss_module.fused_params`` if the loss defines it
    (e.g. policy and value of :class:`~torchrl_reg.objectives.ImplicitQLoss`), else its online
    value-network parameters."""
    params = getattr(loss_module, "fused_params", None)
    return loss_module.value_network_params if params is None else params


def _tensor_leaves(
    td: TensorDictBase, keys: list[tuple[str, ...]], leaves: list[torch.Tensor], prefix: tuple[str, ...] = ()
) -> tuple[list[tuple[str, ...]], list[torch.Tensor]]:
    """Nested keys and tensors of ``td`` in its iteration order (~2 us; ``values(True, True)`` ~15 us)."""
    for key, value in td.items():
        if isinstance(value, torch.Tensor):
            keys.append((*prefix, key))
            leaves.append(value)
        elif isinstance(value, TensorDictBase):
            _tensor_leaves(value, keys, leaves, (*prefix, key))
    return keys, leaves


class _ModuleLayout:
    """Where each online parameter of a fused update sits in one network of the loss.

    ``names`` pairs the index of a leaf of the fused parameters with its name in ``module``
    (``module.named_parameters()``), found by identity once, outside the compiled region.
    ``uncovered`` names the parameters of ``module`` that are no fused leaf.
    """

    def __init__(self, module: torch.nn.Module, keys: list[tuple[str, ...]], leaves: list[torch.Tensor]):
        self.module = module
        index = {id(leaf): i for i, leaf in enumerate(leaves)}
        self.names: list[tuple[int, str]] = []
        self.uncovered: list[str] = []
        for name, param in module.named_parameters(remove_duplicate=False):
            if id(param) in index:
                self.names.append((index[id(param)], name))
            else:
                self.uncovered.append(name)
        self.keys = keys


class _FlatParams:
    """The fused step's stand-in for the online-parameter TensorDict that ``loss_and_outputs`` takes.

    ``torch.func.grad`` differentiates a flat tuple of tensors (a cheap pytree for Dynamo), and
    the loss binds them to its networks with ``params.to_module(module)`` (as
    :meth:`tensordict.TensorDictBase.to_module`) through ``torch.func``'s own re-parametrization:
    no TensorDict is built, flattened or bound inside the traced region, which halves the trace of
    the fused step (CartPole M-DQN: ~4.5 s -> ~2 s of a ~28 s recipe run). ``params[name]`` is the
    sub-tree under ``name`` (as ``fused_params["policy"]`` of ImplicitQLoss).
    """

    def __init__(self, layouts: tuple[_ModuleLayout, ...], tensors: tuple[torch.Tensor, ...], prefix: tuple[str, ...] = ()):
        self._layouts = layouts
        self._tensors = tensors
        self._prefix = prefix

    def __getitem__(self, name: str) -> _FlatParams:
        return _FlatParams(self._layouts, self._tensors, (*self._prefix, name))

    def to_module(self, module: torch.nn.Module, preserve_module_state: bool = False):
        for layout in self._layouts:
            if layout.module is module:
                break
        else:
            raise RuntimeError(
                f"the fused update binds its parameters only to the networks the loss holds as attributes; "
                f"{type(module).__name__} is not one of them (set flat_fused_params = False on the loss)"
            )
        if layout.uncovered:
            raise RuntimeError(
                f"{type(module).__name__} has parameters {layout.uncovered} that the fused update does not "
                "differentiate (set flat_fused_params = False on the loss)"
            )
        n = len(self._prefix)
        tensors = {name: self._tensors[i] for i, name in layout.names if layout.keys[i][:n] == self._prefix}
        if len(tensors) != len(layout.names):
            raise RuntimeError(
                f"params{''.join(f'[{p!r}]' for p in self._prefix)} does not hold every parameter of {type(module).__name__}"
            )
        return _reparametrize_module(module, tensors)


def _check_optimizer_holds_the_loss(loss_module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Refuse an optimizer that holds none of the loss's trainable parameters (it would never move them)."""
    trainable = {id(p) for p in loss_module.parameters() if p.requires_grad}
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    name = type(loss_module).__name__
    if not trainable:
        raise ValueError(f"{name} has no trainable parameter (requires_grad=True): an update would change nothing")
    if not trainable & held:
        raise ValueError(
            f"the optimizer holds none of the {len(trainable)} trainable parameters of {name} (it holds {len(held)} "
            "others): its steps would never move the loss's networks; build it on the loss's parameters, e.g. "
            "torch.optim.Adam(loss.parameters())"
        )


class FusedAdamUpdate:
    """Loss, gradient, norm clipping and Adam step of a regularized DQN loss in one compiled graph.

    The loss is differentiated with ``torch.func.grad`` with respect to its online parameters
    (``loss_module.loss_and_outputs(batch, params)``), so no autograd graph is recorded at run time
    and ``torch.compile`` fuses forward, backward and the optimizer into a single graph. The Adam
    step (Kingma & Ba 2015, as :class:`torch.optim.Adam` with ``amsgrad=False, weight_decay=0``)
    reads and writes ``optimizer.state``, so ``optimizer.state_dict()`` checkpoints and resumes
    exactly as with ``optimizer.step()``, and learning-rate changes of ``optimizer.param_groups``
    are honoured. Priorities are written in place into the batch, as the loss's ``forward`` does.
    Parameter ``.grad`` fields are not used.

    The step is traced once, at the first call, and then guarded on its tensors only (shapes,
    dtypes, devices: a new batch size recompiles): the loss module's Python configuration (alpha,
    tau, keys, ...) is read at that first call, and later batches must carry the same keys (a
    ``ValueError`` says which differ). Tensors, parameters and buffers (MIRL's beta and prior,
    target parameters, the optimizer state) are read at every call. Dynamo's default guards on
    the TensorDict and module internals cost about as much as the tiny CartPole network's
    forward and backward pass (~0.15 ms of ~0.9 ms per update on these CPUs).

    ``cuda_graph=True`` (CUDA only; a ``ValueError`` names the device otherwise) compiles the same
    step with Inductor's CUDA graphs (``torch.compile``'s ``reduce-overhead`` mode: the kernels of a
    step are launched as one recorded graph, which on a GPU removes the per-kernel launch cost that
    dominates small networks). A CUDA graph replays fixed memory addresses and records only device
    work, so the tensors the step updates in place stay where they are: the Adam ``step`` counters
    live on the parameters' device (as ``torch.optim.Adam(capturable=True)`` keeps them; the group is
    switched to ``capturable``, so that ``optimizer.load_state_dict`` also puts them there), and the
    parameters, Adam moments, counters and hyperparameters are marked static inputs. The batch is
    copied into the graph's input buffers at each call; outputs are cloned out of the graph's memory,
    which the next replay overwrites. The arithmetic is the compiled step's, so a graph update gives
    the compiled update's numbers (checked on a GPU by ``benchmarks/gpu_check.py``).
    """

    def __init__(
        self,
        loss_module: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        max_grad_norm: float | None,
        inputs_checked: bool = False,
        cuda_graph: bool = False,
    ):
        reason = self.unsupported_reason(loss_module, optimizer)
        if reason is not None:
            raise ValueError(f"cannot fuse this update: {reason}")
        check_bool("inputs_checked", inputs_checked)
        check_bool("cuda_graph", cuda_graph)
        if inputs_checked and not isinstance(loss_module, InputChecks):
            raise ValueError(
                f"inputs_checked=True says the caller checks transitions with loss_module.check_inputs, but "
                f"{type(loss_module).__name__} has no check_inputs (use inputs_checked=False)"
            )
        self.inputs_checked = inputs_checked
        self.loss_module = loss_module
        self.optimizer = optimizer
        self.max_grad_norm = None if max_grad_norm is None else check_positive("max_grad_norm", max_grad_norm)
        self.params = _fused_params(loss_module)
        self.keys = list(self.params.keys(True, True))
        self.leaves = [self.params.get(key) for key in self.keys]
        self.cuda_graph = cuda_graph
        if cuda_graph:
            devices = sorted({str(leaf.device) for leaf in self.leaves})
            if any(leaf.device.type != "cuda" for leaf in self.leaves):
                raise ValueError(
                    f"cuda_graph=True records CUDA graphs: the loss's parameters must be on a CUDA device, they are on "
                    f"{', '.join(devices)} (use cuda_graph=False off CUDA)"
                )
            optimizer.param_groups[0]["capturable"] = True
        # Flat parameters (see _FlatParams): a layout for each network the loss holds as an attribute.
        self._layouts: tuple[_ModuleLayout, ...] | None = None
        if getattr(loss_module, "flat_fused_params", False):
            modules = {id(m): m for m in vars(loss_module).values() if isinstance(m, torch.nn.Module)}
            modules.update({id(m): m for m in loss_module.children() if not isinstance(m, TensorDictBase)})
            self._layouts = tuple(_ModuleLayout(m, self.keys, self.leaves) for m in modules.values())
        self.priority_key = loss_module.tensor_keys.priority
        self._priority_path = self.priority_key if isinstance(self.priority_key, tuple) else (self.priority_key,)
        # lr, beta1, beta2, eps as a float64 tensor input of the graph: a Python float would be
        # baked into the compiled graph and a learning-rate schedule would recompile every step.
        self._hyper_values: tuple | None = None
        self._hyper = torch.zeros(4, dtype=torch.float64, device=self.leaves[0].device)
        # tensordict registers TensorDict's pytree constructor lazily, at its first unflatten; the
        # compiled graph guards on that registry's size, so a first unflatten during the first
        # call would force a recompile (~3 s) at the second. One round trip here registers it.
        tree_unflatten(*tree_flatten(TensorDict()))
        self._batch_keys: list[tuple[str, ...]] | None = None
        self._batch_dims = 1
        # Dynamo caches compiled graphs on the code object, and with tensor-only guards a second
        # FusedAdamUpdate (another loss, max_grad_norm, ...) would run the first one's graph: each
        # instance compiles its own copy of the code.
        fn = FusedAdamUpdate._fused_step
        own_code = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
        options = {"guard_filter_fn": partial(torch.compiler.keep_tensor_guards_unsafe, keep_parameters=True)}
        if cuda_graph:
            options["triton.cudagraphs"] = True  # what mode="reduce-overhead" sets (mode and options exclude each other)
        # dynamic=False: a batch's shape is fixed in training, and a dynamic batch size (Dynamo's automatic
        # dynamic shapes, after a recompile) broke IQN's torch.rand((batch, N)) under torch.func.grad on an
        # H200 (benchmarks/results/gpu/gpu_check_cuda.json); specialized, it compiled and ran.
        self._step = torch.compile(types.MethodType(own_code, self), options=options, dynamic=False)

    @staticmethod
    def unsupported_reason(loss_module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> str | None:
        """Why ``(loss_module, optimizer)`` cannot be fused, or ``None`` if it can."""
        gaps = protocol_gaps(loss_module, FusableLoss)
        if gaps:
            return f"{type(loss_module).__name__} {' and '.join(gaps)} (FusableLoss)"
        if type(optimizer) is not torch.optim.Adam:
            return f"the optimizer is {type(optimizer).__name__}, the fused step implements torch.optim.Adam"
        if len(optimizer.param_groups) != 1:
            return f"the optimizer has {len(optimizer.param_groups)} parameter groups, the fused step handles one"
        group = optimizer.param_groups[0]
        # capturable only moves the step counters to the parameters' device (the graph mode sets it).
        for option in ("amsgrad", "maximize", "differentiable"):
            if group.get(option, False):
                return f"Adam option {option}=True is not implemented by the fused step"
        if group.get("weight_decay", 0) != 0 or group.get("decoupled_weight_decay", False):
            return "Adam weight decay is not implemented by the fused step"
        if isinstance(group["lr"], torch.Tensor):
            return "a tensor learning rate is not supported by the fused step"
        trainable = {id(p) for p in loss_module.parameters() if p.requires_grad}
        online = {id(p) for p in _fused_params(loss_module).values(True, True)}
        in_group = {id(p) for p in group["params"]}
        if in_group != trainable or trainable != online:
            return "the optimizer's parameters must be exactly the loss's online parameters (fused_params)"
        return None

    def _state(self) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        # Looked up at every call: optimizer.load_state_dict (resume) replaces these tensors.
        steps, exp_avgs, exp_avg_sqs = [], [], []
        for p in self.leaves:
            state = self.optimizer.state[p]
            if len(state) == 0:  # as torch.optim.Adam initializes it (non-fused)
                if self.cuda_graph:  # capturable: the counter on the parameter's device, float32
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                else:
                    scalar_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
                    state["step"] = torch.tensor(0.0, dtype=scalar_dtype)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            steps.append(state["step"])
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
        if self.cuda_graph:  # updated in place by every replay: fixed addresses of the graph (new after a resume)
            for tensor in (*steps, *exp_avgs, *exp_avg_sqs, self._hyper, *self.leaves):
                if not hasattr(tensor, "_dynamo_static_input_type"):
                    torch._dynamo.mark_static_address(tensor)
        return steps, exp_avgs, exp_avg_sqs

    def _fused_step(self, leaves, steps, exp_avgs, exp_avg_sqs, hyper):
        loss_module = self.loss_module
        lr, beta1, beta2, eps = hyper.unbind(0)
        batch = TensorDict(dict(zip(self._batch_keys, leaves)), batch_size=leaves[0].shape[: self._batch_dims])

        # The differentiated argument: a flat tuple of tensors bound to the networks by _FlatParams, or
        # the TensorDict of parameters itself (a loss with flat_fused_params = False).
        if self._layouts is not None:
            layouts = self._layouts
            primal = tuple(leaf.detach() for leaf in self.leaves)

            def as_params(tensors):
                return _FlatParams(layouts, tensors)
        else:
            primal = self.params.detach()

            def as_params(params):
                return params

        def loss_fn(primal):
            loss, priority, diagnostics = loss_module.loss_and_outputs(batch, as_params(primal))
            return loss, (loss.detach(), priority, diagnostics)

        grads, (loss, priority, diagnostics) = torch.func.grad(loss_fn, has_aux=True)(primal)
        if self._layouts is None:
            grads = [grads.get(key) for key in self.keys]
        with torch.no_grad():
            if self.max_grad_norm is not None:  # as torch.nn.utils.clip_grad_norm_
                total_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
                coef = torch.clamp(self.max_grad_norm / (total_norm + 1e-6), max=1.0)
                grads = [g * coef for g in grads]
            # Adam (torch.optim.Adam's update, bias corrections from the per-parameter step).
            for param, grad, exp_avg, exp_avg_sq, step in zip(self.leaves, grads, exp_avgs, exp_avg_sqs, steps):
                step.add_(1)
                exp_avg.lerp_(grad, (1 - beta1).to(param.dtype))
                exp_avg_sq.mul_(beta2.to(param.dtype)).addcmul_(grad, grad * (1 - beta2).to(param.dtype))
                # Bias corrections in float64, as torch.optim.Adam computes them from step.item()
                # (1 - 0.999 in float32 is off by 1e-5 relative).
                # (step stays on the CPU, as torch.optim.Adam keeps it; the arithmetic runs on the
                # parameter's device.)
                step64 = step.to(device=param.device, dtype=torch.float64)
                step_size = (lr / (1 - beta1**step64)).to(param.dtype)
                bias_correction2_sqrt = (1 - beta2**step64).sqrt().to(param.dtype)
                denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps.to(param.dtype)
                param.sub_(exp_avg / denom * step_size)
        return loss, priority, diagnostics

    def __call__(self, batch: TensorDictBase) -> TensorDictBase:
        check_batch = getattr(self.loss_module, "check_batch", None)
        if check_batch is not None:  # value checks need a sync: eagerly, outside the graph
            first = self._batch_keys is None
            if self.inputs_checked:
                check_batch(batch, layout=first, inputs=first)
            else:
                check_batch(batch, layout=first)
        group = self.optimizer.param_groups[0]
        values = (group["lr"], *group["betas"], group["eps"])
        if values != self._hyper_values:
            self._hyper.copy_(torch.tensor([float(v) for v in values], dtype=torch.float64), non_blocking=False)
            self._hyper_values = values
        keys, leaves = _tensor_leaves(batch, [], [])
        if self._priority_path in keys:  # written by the previous update of a reused batch, never read
            index = keys.index(self._priority_path)
            del keys[index], leaves[index]
        if self._batch_keys is None:
            self._batch_keys, self._batch_dims = keys, batch.batch_dims
        elif keys != self._batch_keys:
            by_key = dict(zip(keys, leaves))
            if len(by_key) != len(self._batch_keys) or any(key not in by_key for key in self._batch_keys):
                raise ValueError(
                    "the fused update was traced for batches with keys "
                    f"{sorted(self._batch_keys)}, got a batch with keys {sorted(keys)}; every batch must "
                    "carry the same keys (build a new update with make_update for another layout)"
                )
            leaves = [by_key[key] for key in self._batch_keys]  # same keys, another insertion order
        if self.cuda_graph:
            torch.compiler.cudagraph_mark_step_begin()  # the previous replay's outputs were cloned out
        loss, priority, diagnostics = self._step(leaves, *self._state(), self._hyper)
        if self.cuda_graph:  # the graph's output memory is overwritten by the next replay
            loss, priority = loss.clone(), priority.clone()
            diagnostics = {key: value.clone() for key, value in diagnostics.items()}
        batch.set(self.priority_key, priority, inplace=True)
        if any(key.startswith("loss") for key in diagnostics):
            # A loss of several terms (MDACLoss) returns them, detached, among its outputs, as its forward does.
            return TensorDict(diagnostics)
        return TensorDict({"loss": loss, **diagnostics})
