"""Validators of the library and of the recipes' configs: each returns the checked value or raises
``ValueError`` naming the argument (a config key: ``loss.tau``), the bad value and what is accepted.

One home for them so that the losses, estimators, planners, functions and config checks refuse the
same inputs with the same words; the checks on tensors of a batch live with the losses
(:meth:`torchrl_reg.objectives.common.RegularizedLossBase.check_batch`), the config schemas and
their family checks with :mod:`torchrl_reg.configs.checks`.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import torch

__all__ = [
    "MEMORY_BYTES_VARIABLE",
    "STABLE_TAU",
    "ArgumentChecks",
    "UnreadValue",
    "available_memory",
    "format_bytes",
    "check_beta",
    "check_bound",
    "check_bool",
    "check_choice",
    "check_clip_interval_relation",
    "check_count",
    "check_critic_count",
    "check_device",
    "check_finite_tensors",
    "check_gamma",
    "check_interval",
    "check_keywords",
    "check_memory",
    "check_multiple",
    "check_nonnegative",
    "check_numbers",
    "check_optimizer_state",
    "check_ordered",
    "check_positive",
    "check_prior",
    "check_range",
    "check_rate",
    "check_read",
    "check_stable_tau",
    "check_tau",
    "check_unit_interval",
    "check_unread",
    "check_virel_c",
    "check_virel_p",
    "closest",
    "misspelling_of",
    "constructor_arguments",
    "name_refusal",
    "refusals_named",
    "select_device",
    "declared",
    "optional",
    "override_value",
    "unread_keys",
]

class UnreadValue(ValueError):
    """A value set for a key that the chosen setting does not read (``planner.tau=0.1`` with
    ``planner.algorithm=dents``). ``settings`` maps each such key to the value that leaves it unset, as a command-line
    override writes it (``{"planner.tau": "null"}``): a recipe's command line names the file that set the key and
    that override when the value came from a preset, not from the command line."""

    def __init__(self, message: str, settings: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.settings = dict(settings)


def override_value(value: Any) -> str:
    """``value`` as a command-line override writes it (``None`` -> ``null``, ``True`` -> ``true``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class ArgumentChecks:
    """Mixin of a class that owns the ranges of its constructor arguments: one check per value, in its owner.

    ``argument_checks`` maps an argument's name to its check ``(name, value) -> checked value`` (the
    validators below, with their bounds bound by ``functools.partial``); :meth:`check_argument_relations`
    holds the rules between arguments. A subclass's ``__init__`` receives its arguments checked: the values that
    its signature binds (defaults included) of the arguments ``argument_checks`` names go through
    :meth:`check_arguments` before its body runs, and the body reads them as they came back (a check may convert,
    e.g. an int to a float), with no copy of the signature to keep. A recipe checks its config group with the same
    call (``prefix="loss."``, so that an error names the config key) before anything is built or written. Every
    name in ``argument_checks`` must be an argument of the class's constructor (or of the one its ``**kwargs``
    reach, :func:`constructor_arguments`): a renamed argument fails when the class is defined, never skips its
    check. Functions of :mod:`torchrl_reg.functional` trust their callers.
    """

    argument_checks: ClassVar[Mapping[str, Callable[[str, Any], Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__init__ is object.__init__:  # a mixin of checks (MunchausenArguments, a recipe's SACArguments)
            return
        accepted = constructor_arguments(cls)
        unknown = [key for key in cls.argument_checks if key not in accepted]
        if unknown:
            raise TypeError(
                f"{cls.__qualname__}.argument_checks names {unknown}, not arguments of its constructor "
                f"(accepted: {sorted(accepted)}): rename the checks with the arguments"
            )
        if "__init__" in vars(cls) or "argument_checks" in vars(cls):  # its own constructor, or its own checks
            init = cls.__init__  # a base's (checked by the base's checks after these) when it has none of its own
            signature = inspect.signature(init)
            own = [key for key in cls.argument_checks if key in signature.parameters]
            if own:
                cls.__init__ = _checking(cls, init, signature, own)  # type: ignore[method-assign]
            elif "__init__" in vars(cls):
                cls.__init__ = _keywords_checked(cls, init)  # type: ignore[method-assign]

    @classmethod
    def check_arguments(
        cls, arguments: Mapping[str, Any], *, prefix: str = "", names: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``arguments`` (any subset of the constructor's) checked, each value as its check returns it; an error
        names ``prefix`` + the argument, or + ``names[argument]`` (a config that keys it under another name)."""
        names = names or {}
        checked = dict(arguments)
        for key, check in cls.argument_checks.items():
            if key in checked:
                checked[key] = check(prefix + names.get(key, key), checked[key])
        cls.check_argument_relations(checked, prefix)
        return checked

    @classmethod
    def check_argument_relations(cls, arguments: Mapping[str, Any], prefix: str) -> None:
        """Raise ``ValueError`` if values of ``arguments`` (checked one by one) break a rule between them; a rule
        whose arguments are not all in ``arguments`` is not checked. None by default."""


def constructor_arguments(cls: type) -> dict[str, inspect.Parameter]:
    """The named arguments ``cls(...)`` accepts, by name: its ``__init__``'s parameters and, while a constructor
    passes ``**kwargs`` on, those of the next ``__init__`` up the method resolution order (a subclass's first)."""
    parameters: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        own = list(inspect.signature(init).parameters.values())[1:]  # after self
        for p in own:
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                parameters.setdefault(p.name, p)
        if not any(p.kind is p.VAR_KEYWORD for p in own):
            break
    return parameters


def name_refusal(error: BaseException, name: str) -> BaseException:
    """``error`` (a ``ValueError`` or ``TypeError`` raised while ``name``, a class, is built) with its message led by
    ``name`` (``"MunchausenDQNLoss: tau must be ..."``) unless it names it already: the validators name the argument,
    and a script that builds several objects must learn which one refused. The exception keeps its type and
    traceback; an outer constructor of the same object leaves it as it is."""
    message = error.args[0] if error.args and isinstance(error.args[0], str) else None
    if isinstance(error, (ValueError, TypeError)) and not isinstance(error, KeyError) and message is not None:
        if not getattr(error, "names_class", False) and name not in message:
            error.args = (f"{name}: {message}", *error.args[1:])
        try:
            error.names_class = True  # type: ignore[attr-defined]
        except AttributeError:  # an exception type with __slots__
            pass
    return error


def refusals_named(init: Callable[..., None]) -> Callable[..., None]:
    """``init`` (a constructor) whose ``ValueError`` s and ``TypeError`` s name the class being built
    (:func:`name_refusal`): every refusal of an argument check, of the shared validators called in a constructor's
    body too, says which object refused."""

    @functools.wraps(init)
    def named_init(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except (ValueError, TypeError) as err:
            raise name_refusal(err, type(self).__name__)

    named_init.__kwdefaults__ = init.__kwdefaults__
    return named_init


def _checking(owner: type, init: Callable[..., None], signature: inspect.Signature, keys: list[str]) -> Callable[..., None]:
    """``init`` (the constructor of ``owner``) with the bound values of ``keys`` checked by ``owner``'s checks first."""

    @refusals_named
    @functools.wraps(init)
    def checked_init(self: Any, *args: Any, **kwargs: Any) -> None:
        check_keywords(type(self), owner, kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        bound.arguments.update(owner.check_arguments({key: bound.arguments[key] for key in keys}))
        init(*bound.args, **bound.kwargs)

    # Read by introspection as the constructor's own (checked_init has no keyword-only parameter for them to fill).
    checked_init.__kwdefaults__ = init.__kwdefaults__
    return checked_init


def _keywords_checked(owner: type, init: Callable[..., None]) -> Callable[..., None]:
    """``init`` (the constructor of ``owner``) refusing a keyword it does not take with :func:`check_keywords`."""

    @refusals_named
    @functools.wraps(init)
    def keyword_checked_init(self: Any, *args: Any, **kwargs: Any) -> None:
        check_keywords(type(self), owner, kwargs)
        init(self, *args, **kwargs)

    keyword_checked_init.__kwdefaults__ = init.__kwdefaults__
    return keyword_checked_init


def check_keywords(cls: type, owner: type, kwargs: Mapping[str, Any]) -> None:
    """Refuse a keyword argument that the constructor of ``owner`` does not take (:func:`constructor_arguments`) with
    a ``TypeError`` naming ``cls`` (the class being built), the keyword and the closest accepted one (``betta`` ->
    ``beta``), where Python's own error names neither the class nor what was meant."""
    accepted = constructor_arguments(owner)
    unknown = [key for key in kwargs if key not in accepted]
    if not unknown:
        return
    known = sorted({*accepted, *constructor_arguments(cls)})
    key = unknown[0]
    match = misspelling_of(key, known)
    hint = f"did you mean {match!r}? " if match else ""
    if "gamma" not in known and difflib.get_close_matches(key, ["gamma"], n=1, cutoff=0.6):
        # TorchRL's losses keep the discount in their value estimator, not in the constructor.
        hint = "gamma is not a constructor argument: set it with loss.make_value_estimator(gamma=...); "
    raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {key!r}: {hint}it accepts {known}")


#: Entropy temperatures for which :mod:`torchrl_reg.functional`'s soft values stay finite in float32.
STABLE_TAU = (1e-4, 10.0)


def check_positive(name: str, value: float) -> float:
    """Return ``value`` as a float, raising unless it is a finite number > 0."""
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be a finite number > 0, got {name}={value}")
    return value


def check_nonnegative(name: str, value: float) -> float:
    """Return ``value`` as a float, raising unless it is a finite number >= 0."""
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {name}={value}")
    return value


def check_tau(tau: float) -> float:
    """Return the temperature ``tau`` as a float, raising if it is not a finite positive number."""
    return check_positive("tau", tau)


def check_stable_tau(name: str, tau: float) -> float:
    """Return the entropy temperature ``tau`` as a float if it lies in :data:`STABLE_TAU`, the range
    in which soft values stay finite in float32 (``tau=1e-30`` divides Q by 1e-30; ``tau=1e9`` is a
    uniform policy in all but name); the recipes' configs accept the same range."""
    return check_range(name, tau, *STABLE_TAU)


def check_read(name: str, value: Any, default: Any, setting: str) -> None:
    """Refuse ``value`` of an argument that ``setting`` (the chosen mode, e.g. ``"proposal='uniform'"``)
    never reads, unless it is the argument's default: a value set there would be ignored silently.
    The library-side twin of the configs' ``read_only_if``."""
    if value != default:
        raise ValueError(f"{name}={value!r} is not used with {setting}: leave it at its default {default!r} or change {setting}")


def check_beta(beta: float) -> float:
    """Return the inverse temperature ``beta`` as a float, raising if it is not finite and > 0."""
    return check_positive("beta", beta)


def check_range(
    name: str,
    value: float,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``value`` as a float, raising unless it is a finite number in the given interval."""
    lo_b, hi_b = ("[" if low_inclusive else "("), ("]" if high_inclusive else ")")
    interval = f"{lo_b}{low}, {high}{hi_b}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in {interval}, got {name}={value!r}") from None
    ok = math.isfinite(v)
    ok = ok and (v >= low if low_inclusive else v > low)
    ok = ok and (v <= high if high_inclusive else v < high)
    if not ok:
        raise ValueError(f"{name} must be a finite number in {interval}, got {name}={value!r}")
    return v


def check_bound(name: str, value: float) -> float:
    """Return ``value`` as a float if it is a number, infinities included (a clip bound: ``-inf`` clips nothing
    below); NaN and non-numbers are refused."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number (+-inf: no clip on that side), got {name}={value!r}") from None
    if math.isnan(v):
        raise ValueError(f"{name} must be a number (+-inf: no clip on that side), got {name}={value!r}")
    return v


def check_ordered(low_name: str, low: float, high_name: str, high: float) -> None:
    """Raise ``ValueError`` unless ``low <= high`` (e.g. a clip interval's bounds)."""
    if not low <= high:
        raise ValueError(f"{low_name} must be <= {high_name}, got {low_name}={low}, {high_name}={high}")


def check_interval(low_name: str, low: float, high_name: str, high: float) -> None:
    """Raise ``ValueError`` unless ``low`` and ``high`` are finite numbers with ``low <= high`` (a clip interval)."""
    check_range(low_name, low)
    check_range(high_name, high)
    check_ordered(low_name, low, high_name, high)


def optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """``check`` for an argument whose ``None`` means "off" (no clip, no target entropy): ``None`` passes."""

    def check_or_none(name: str, value: Any) -> Any:
        return None if value is None else check(name, value)

    return check_or_none


def check_clip_interval_relation(arguments: Mapping[str, Any], prefix: str, *, optional: bool = False) -> None:
    """The rule between ``clip_value_min`` and ``clip_value_max`` of an :class:`ArgumentChecks` class: ordered,
    and with ``optional`` both set or both ``None`` (no clip)."""
    if "clip_value_min" not in arguments or "clip_value_max" not in arguments:
        return
    low, high = arguments["clip_value_min"], arguments["clip_value_max"]
    low_name, high_name = prefix + "clip_value_min", prefix + "clip_value_max"
    if optional and (low is None) != (high is None):
        raise ValueError(f"set both {low_name} and {high_name} or neither (no clip), got {low_name}={low}, {high_name}={high}")
    if low is not None and high is not None:
        check_ordered(low_name, low, high_name, high)


def check_multiple(name: str, value: int, of_name: str, of: int) -> None:
    """Raise ``ValueError`` unless ``value`` is a multiple of ``of``."""
    if value % of:
        raise ValueError(f"{name} must be a multiple of {of_name}={of}, got {name}={value}")


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
        raise ValueError(f"{name} must be one of {list(choices)}, got {name}={value!r}")
    return value


def _edit_distance(a: str, b: str) -> int:
    """The optimal-string-alignment distance of ``a`` and ``b``: insertions, deletions, substitutions and swaps of
    two neighbouring characters, each 1 (``tua`` -> ``tau`` is 1)."""
    previous, current = None, list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        before, previous, current = previous, current, [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y))
            if before is not None and i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                current[j] = min(current[j], before[j - 2] + 1)
    return current[-1]


def misspelling_of(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate of which ``word`` is a misspelling (one typo, two in a word of more than 5 characters: a letter
    doubled, dropped, changed or two swapped), the nearest first; ``None`` when none is that near. A did-you-mean
    proposes the knob that was meant, never a different one that shares a prefix (``delay_actor`` is not a
    misspelling of ``delay_qvalue``)."""
    limit = 1 if len(word) <= 5 else 2
    best: tuple[int, str] | None = None
    for candidate in candidates:
        distance = _edit_distance(word, candidate)
        if distance <= limit and (best is None or distance < best[0]):
            best = (distance, candidate)
    return None if best is None else best[1]


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate of which ``name`` is a misspelling (:func:`misspelling_of`; a misspelled key:
    ``planner.simulation`` -> ``planner.simulations``): among the keys beside it (same dotted prefix) by its last
    part, else among all by the whole; ``None`` when none is that near."""
    candidates = list(candidates)
    prefix, _, leaf = name.rpartition(".")
    siblings = {c.rpartition(".")[2]: c for c in candidates if c.rpartition(".")[0] == prefix}
    if siblings:
        found = misspelling_of(leaf, siblings)
        return None if found is None else siblings[found]
    return misspelling_of(name, candidates)


def check_count(name: str, value: int, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer (Python's or numpy's) >= ``minimum``; a bool,
    a float (even ``2.0``) and a string are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")
    return int(value)


def check_numbers(
    name: str, values: Any, low: float = -math.inf, high: float = math.inf, *, integer: bool = False,
    length: int | None = None,
) -> list[Any]:
    """Return ``values`` (a list or tuple of numbers, or a 1-D tensor: a run's returns, lengths or counts read back
    from a checkpoint) as a list, raising ``ValueError`` naming the first entry (``name[i]``) that is not a finite
    number in ``[low, high]`` (an integer, with ``integer``: a bool and a float are refused), or the count when it
    is not ``length``."""
    if isinstance(values, torch.Tensor):
        if values.dim() != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {list(values.shape)}")
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"{name} must be a list of numbers, got a {type(values).__name__}")
    if length is not None and len(values) != length:
        raise ValueError(f"{name} must hold {length} values (one each), got {len(values)}")
    kind = "an integer" if integer else "a finite number"
    for i, value in enumerate(values):
        ok = not isinstance(value, bool) and isinstance(value, numbers.Integral if integer else numbers.Real)
        ok = ok and (integer or math.isfinite(value)) and low <= value <= high
        if not ok:
            raise ValueError(f"{name}[{i}] must be {kind} in [{low}, {high}], got {value!r}")
    return list(values)


def check_finite_tensors(name: str, state: Any, like: Any = None) -> None:
    """Raise ``ValueError`` naming the first entry of ``state`` (nested dicts, lists and tuples of tensors and
    numbers: a module's or optimizer's state dict read back from a checkpoint) that holds a NaN or an infinity,
    where ``like`` (the same structure, e.g. the state of a freshly built module) is finite or has no such entry:
    a value that is not finite in a fresh object (a bound of ``-inf``) may stay so."""
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() or state.is_complex():
            fresh_finite = not (isinstance(like, torch.Tensor) and (like.is_floating_point() or like.is_complex())
                                and not bool(torch.isfinite(like).all()))
            if fresh_finite and not bool(torch.isfinite(state).all()):
                bad = state[~torch.isfinite(state)].flatten()[0].item()
                raise ValueError(f"{name} holds {bad} (shape {list(state.shape)}), where a fresh one is finite")
        return
    if isinstance(state, float):
        if not math.isfinite(state) and not (isinstance(like, float) and not math.isfinite(like)):
            raise ValueError(f"{name} is {state}, where a fresh one is finite")
        return
    if isinstance(state, Mapping):
        for key, value in state.items():
            check_finite_tensors(f"{name}.{key}", value, like.get(key) if isinstance(like, Mapping) else None)
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            same = isinstance(like, (list, tuple)) and len(like) == len(state)
            check_finite_tensors(f"{name}[{i}]", value, like[i] if same else None)


#: The optimizer state entries that average squared gradients (Adam, AdamW, RMSprop, Adagrad): never negative.
_SQUARED_MOMENTS = ("exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum")


def check_optimizer_state(name: str, state: Any, steps: int) -> None:
    """Raise ``ValueError`` naming the entry of ``state`` (an optimizer's ``state_dict()`` read back from a checkpoint of
    a run that made ``steps`` optimizer steps) that no such run writes: a second moment below 0 (an average of squared
    gradients; Adam divides by its square root, and a negative one trains to NaN or garbage), or a step count that is
    not a whole number in ``[0, steps]``. Finiteness is :func:`check_finite_tensors`'."""
    per_parameter = state.get("state", {}) if isinstance(state, Mapping) else {}
    for index, entry in per_parameter.items():
        if not isinstance(entry, Mapping):
            continue
        for key in _SQUARED_MOMENTS:
            moment = entry.get(key)
            if isinstance(moment, torch.Tensor) and moment.is_floating_point() and bool((moment < 0).any()):
                at = [int(i) for i in (moment < 0).nonzero()[0]] if moment.dim() else []
                raise ValueError(
                    f"{name}.state[{index}].{key} holds {float(moment[tuple(at)])} at index {at}: a second moment is an "
                    "average of squared gradients, >= 0 (no run writes a negative one)"
                )
        step = entry.get("step")
        if step is None:
            continue
        value = float(step) if isinstance(step, (torch.Tensor, numbers.Real)) and not isinstance(step, bool) else math.nan
        if not (math.isfinite(value) and value == int(value) and 0 <= value <= steps):
            raise ValueError(
                f"{name}.state[{index}].step is {step!r}: the optimizer's step count must be a whole number in [0, {steps}], "
                f"the run's {steps} updates"
            )


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


# --- VIREL: the temperature eps = c/p ||TQ - Q||_p^p ----------------------------------------------


def check_critic_count(name: str, value: int) -> int:
    """Return the number of critics (``num_qvalue_nets``) if it is 1 or 2 (2: the min of two, as in SAC)."""
    if isinstance(value, bool) or value not in (1, 2):
        raise ValueError(f"{name} must be 1 or 2, got {name}={value!r}")
    return int(value)


def check_virel_c(name: str, c: float) -> float:
    """Return the VIREL scale ``c`` of ``eps = c/p ||TQ - Q||_p^p`` if it is a finite number > 0."""
    c = float(c)
    if not (c > 0 and c != float("inf")):
        raise ValueError(f"{name} must be a finite number > 0 (eps = c/p ||TQ - Q||_p^p), got {name}={c}")
    return c


def check_virel_p(name: str, p: int) -> int:
    """Return the norm ``p`` of ``eps = c/p ||TQ - Q||_p^p`` if it is 1 or 2 (the values VIREL uses)."""
    if isinstance(p, bool) or p not in (1, 2):
        raise ValueError(f"{name} must be 1 or 2 (eps = c/p ||TQ - Q||_p^p), got {name}={p!r}")
    return int(p)


# --- config groups: values for keys the chosen method does not read -------------------------------

#: How a config dataclass declares which of its keys are read only under some setting: key ->
#: ``(deciding key, the values of it under which the key is read)`` or ``(deciding key, predicate)``,
#: the latter a ``Callable[[Any], bool]`` of the deciding key's value.
ReadOnlyIf = Mapping[str, tuple]


def declared(schema: type, attribute: str) -> dict[str, Any]:
    """The mapping class attribute ``attribute`` of ``schema`` merged over its bases (a subclass's
    entries come last and may replace a base's): ``read_only_if``, ``choices``."""
    merged: dict[str, Any] = {}
    for cls in reversed(schema.__mro__):
        merged.update(vars(cls).get(attribute, {}))
    return merged


def unread_keys(schema: type, node: Any) -> dict[str, str]:
    """The keys of ``node`` (a config group of dataclass ``schema``) that its settings leave unread,
    each with the setting that does (``{"alpha": "loss.name='dqn'"}``).

    ``schema`` and its bases declare them in a class attribute ``read_only_if`` (:data:`ReadOnlyIf`),
    e.g. ``{"alpha": ("name", ("m_dqn", "al")), "polyak": ("target_update", ("polyak",))}``; the
    declarations of the bases come first, a subclass may replace one.
    """
    unread = {}
    for key, (decider, when) in declared(schema, "read_only_if").items():
        setting = node[decider]
        is_read = when(setting) if callable(when) else setting in when
        if not is_read:
            unread[key] = f"{decider}={setting!r}"
    return unread


def check_unread(group: str, node: Any, schema: type) -> None:
    """Raise ``ValueError`` if a key of ``node`` that its settings leave unread (:func:`unread_keys`)
    differs from its default in ``schema``.

    A value given for a key the chosen method ignores (``loss=dqn loss.alpha=0.5``) would silently
    change nothing: it is refused, naming the setting that ignores it and the keys it reads.
    """
    unread = unread_keys(schema, node)
    defaults = schema()
    read = sorted(f.name for f in dataclasses.fields(schema) if f.name not in unread and f.name != "name")
    for key, by in unread.items():
        value, default = node[key], getattr(defaults, key)
        same = value == default or (
            isinstance(value, float) and isinstance(default, float) and math.isnan(value) and math.isnan(default)
        )
        if not same:
            decider, when = declared(schema, "read_only_if")[key]
            readers = "" if callable(when) else f" ({group}.{decider}={when[0]!r} reads it)" if len(when) == 1 else (
                f" ({group}.{decider} in {list(when)} reads it)")
            raise UnreadValue(
                f"{group}.{key}={value!r} is not used by {group}.{by} (it reads {read}); "
                f"leave {group}.{key} at its default {default!r} or choose a method that uses it{readers}",
                {f"{group}.{key}": override_value(default)},
            )


def check_device(name: str) -> str:
    """``name`` when it is ``"auto"`` or a device string torch parses (``cpu``, ``cuda``, ``cuda:1``, ...), whether
    or not this machine has that device: a sweep is made where its tasks' GPUs may not be (:func:`select_device`
    picks the device when the run starts)."""
    if name == "auto":
        return name
    try:
        torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got device={name!r}") from err
    return name


def select_device(name: str = "auto") -> torch.device:
    """``"auto"`` gives ``cuda`` when available and ``cpu`` otherwise; any torch device string is accepted."""
    if check_device(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was requested but CUDA is not available; use device=cpu or device=auto")
    return device


#: Environment variable giving the bytes of memory the bounds assume (:func:`available_memory`): set it to the memory
#: of the machine that will run the command when another machine checks it (a sweep planned on a login node for
#: larger compute nodes), or to test the bounds.
MEMORY_BYTES_VARIABLE = "TORCHRL_REG_MEMORY_BYTES"


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """What this process's cgroup (v2) still lets it take: ``memory.max`` less ``memory.current``; ``None`` unlimited."""
    try:
        with open("/proc/self/cgroup", encoding="ascii") as f:
            path = next((line.strip().split(":", 2)[2] for line in f if line.startswith("0::")), None)
        if path is None:
            return None
        folder = os.path.join("/sys/fs/cgroup", path.lstrip("/"))
        with open(os.path.join(folder, "memory.max"), encoding="ascii") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(folder, "memory.current"), encoding="ascii") as f:
            return max(int(limit) - int(f.read().strip()), 0)
    except (OSError, ValueError, StopIteration, IndexError):
        return None


def available_memory() -> int | None:
    """The bytes of memory a command started now can take on this machine: :data:`MEMORY_BYTES_VARIABLE` when set
    (an integer number of bytes), else the smaller of the kernel's ``MemAvailable`` (``/proc/meminfo``; elsewhere
    ``os.sysconf``'s available pages) and what this process's cgroup still allows; ``None`` when nothing tells."""
    given = os.environ.get(MEMORY_BYTES_VARIABLE)
    if given is not None:
        try:
            value = int(given)
        except ValueError:
            raise ValueError(f"{MEMORY_BYTES_VARIABLE} must be a number of bytes (an integer), got {given!r}") from None
        if value < 0:
            raise ValueError(f"{MEMORY_BYTES_VARIABLE} must be a number of bytes >= 0, got {value}")
        return value
    known = [b for b in (_meminfo_available(), _cgroup_available()) if b is not None]
    return min(known) if known else None


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units: ``512 B``, ``3.2 KiB`` ... ``1.5 TiB`` (and on)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


def check_memory(key: str, value: Any, needed: int, what: str, *, available: int | None = None,
                 where: str = "memory") -> None:
    """Raise ``ValueError`` when ``needed`` bytes (an estimate of what ``key=value`` makes the command allocate,
    described by ``what``) exceed ``available`` (default :func:`available_memory`; ``None``: unknown, nothing
    refused): one line naming the key, the estimate and what the machine has, before any work."""
    if available is None:
        available = available_memory()
    if available is None or needed <= available:
        return
    raise ValueError(
        f"{key}={value!r} needs about {format_bytes(needed)} of {where} ({what}), more than the {format_bytes(available)} "
        f"this machine has available; lower {key}, or set {MEMORY_BYTES_VARIABLE} to the bytes of the machine that "
        "will run it"
    )
