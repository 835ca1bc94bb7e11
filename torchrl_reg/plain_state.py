"""Python objects' state as plain data that ``torch.load(weights_only=True)`` checks, and back.

A checkpoint must never hold pickled bytes: unpickling them runs whatever code they name, so a
crafted ``checkpoint.pt`` would run code when its run directory is resumed. States that have no
tensor form of their own (a gymnasium env's attributes, numpy generators, MinAtar's game objects)
are encoded here as tensors, numbers, strings and tagged tuples, and decoded without ever
constructing a class named by the data: numpy generators only from a fixed list, objects only by
restoring attributes into the object the resumed run already built (:func:`restore_attributes`).
"""
from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["Unencodable", "encode", "decode", "object_state", "restore_attributes", "check_plain", "plain_leaves",
           "is_minatar_object"]

_PRIMITIVES = (type(None), bool, int, float, str)
# numpy dtypes whose bytes are plain numbers (no object pointers): bool, ints, floats, complex.
_ARRAY_KINDS = "biufc"
_BIT_GENERATORS = {name: getattr(np.random, name) for name in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")}


class Unencodable(TypeError):
    """A value that has no plain-data form here (a space, a renderer, a C++ simulator handle)."""


def _array_bytes(array: np.ndarray) -> tuple[str, tuple[int, ...], torch.Tensor]:
    if array.dtype.kind not in _ARRAY_KINDS:
        raise Unencodable(f"numpy array of dtype {array.dtype}")
    data = np.ascontiguousarray(array)
    raw = torch.frombuffer(bytearray(data.tobytes()), dtype=torch.uint8) if data.nbytes else torch.zeros(0, dtype=torch.uint8)
    return data.dtype.str, tuple(data.shape), raw


def _array_from_bytes(dtype: str, shape: Iterable[int], raw: torch.Tensor) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind not in _ARRAY_KINDS:
        raise ValueError(f"refusing a numpy array of dtype {dtype!r}: only numbers are restored")
    return np.frombuffer(raw.numpy().tobytes(), dtype=dt).reshape(tuple(shape)).copy()


def encode(value: Any) -> Any:
    """``value`` as plain data; raises :class:`Unencodable` for anything else.

    Python scalars and strings stay as they are; containers, numpy arrays and scalars (their exact
    dtype kept: a ``np.float64`` and a Python float do not promote alike) and numpy generators
    become tuples tagged with what they were.
    """
    kind = type(value)
    if kind in _PRIMITIVES:
        return value
    if isinstance(value, torch.Tensor):
        return ("tensor", value.detach().clone())
    if isinstance(value, np.ndarray):
        return ("ndarray", *_array_bytes(value))
    if isinstance(value, np.generic):
        return ("npscalar", *_array_bytes(np.asarray(value))[::2])
    if kind is list:
        return ("list", [encode(v) for v in value])
    if kind is tuple:
        return ("tuple", [encode(v) for v in value])
    if kind in (dict, OrderedDict):
        return ("dict", [[encode(k), encode(v)] for k, v in value.items()])
    if kind is deque:
        return ("deque", value.maxlen, [encode(v) for v in value])
    if isinstance(value, np.random.Generator):
        return ("Generator", encode(value.bit_generator.state))
    if isinstance(value, np.random.RandomState):
        return ("RandomState", encode(value.get_state()))
    raise Unencodable(type(value).__qualname__)


def decode(value: Any) -> Any:
    """Inverse of :func:`encode`; raises ``ValueError`` on anything :func:`encode` does not write."""
    if type(value) in _PRIMITIVES:
        return value
    if not (isinstance(value, tuple) and value and isinstance(value[0], str)):
        raise ValueError(f"not an encoded value: {type(value).__name__}")
    tag, args = value[0], value[1:]
    if tag == "tensor":
        return args[0].clone()
    if tag == "ndarray":
        return _array_from_bytes(*args)
    if tag == "npscalar":
        return _array_from_bytes(args[0], (), args[1])[()]
    if tag == "list":
        return [decode(v) for v in args[0]]
    if tag == "tuple":
        return tuple(decode(v) for v in args[0])
    if tag == "dict":
        return {decode(k): decode(v) for k, v in args[0]}
    if tag == "deque":
        return deque((decode(v) for v in args[1]), maxlen=args[0])
    if tag == "Generator":
        state = decode(args[0])
        name = state.get("bit_generator") if isinstance(state, dict) else None
        if name not in _BIT_GENERATORS:
            raise ValueError(f"unknown numpy bit generator {name!r}; known: {sorted(_BIT_GENERATORS)}")
        bit_generator = _BIT_GENERATORS[name]()
        bit_generator.state = state
        return np.random.Generator(bit_generator)
    if tag == "RandomState":
        random_state = np.random.RandomState()
        random_state.set_state(decode(args[0]))
        return random_state
    raise ValueError(f"unknown encoded type {tag!r}")


def is_minatar_object(value: Any) -> bool:
    """Whether ``value`` is one of MinAtar's objects (its env, its game): plain Python objects that
    :func:`object_state` saves attribute by attribute (``descend=is_minatar_object``)."""
    return type(value).__module__.split(".")[0] == "minatar"


def object_state(
    obj: Any, *, skip: Iterable[str] = (), descend: Callable[[Any], bool] = lambda value: False
) -> dict[str, Any]:
    """The attributes of ``obj`` that have a plain form, encoded (by name, ``skip`` left out).

    Attributes without one (spaces, specs, renderers, simulator handles) are left out; an
    attribute for which ``descend(value)`` is true is itself saved attribute by attribute (e.g. a
    MinAtar game object), tagged ``"object"``.
    """
    skipped = set(skip)
    state: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if name in skipped:
            continue
        try:
            state[name] = encode(value)
        except Unencodable:
            if descend(value):
                state[name] = ("object", object_state(value, descend=descend))
    return state


def restore_attributes(obj: Any, state: Mapping[str, Any], where: str = "object") -> None:
    """Set the attributes saved by :func:`object_state` on ``obj``, an object built the same way.

    Only attributes ``obj`` already has are set (a saved name it lacks means the checkpoint is of
    another kind of object, and ``ValueError`` names it); nested objects and numpy generators are
    restored in place, so that a generator two objects share (MinAtar's game and its environment
    draw from one ``RandomState``) stays shared.
    """
    for name, value in state.items():
        if not isinstance(name, str) or not hasattr(obj, name):
            raise ValueError(
                f"{where} ({type(obj).__name__}) has no attribute {name!r} to restore: the checkpoint was written by a "
                "differently built environment"
            )
        current = getattr(obj, name)
        if isinstance(value, tuple) and value and value[0] == "object":
            restore_attributes(current, value[1], f"{where}.{name}")
            continue
        restored = decode(value)
        if isinstance(current, np.random.Generator) and isinstance(restored, np.random.Generator):
            current.bit_generator.state = restored.bit_generator.state
        elif isinstance(current, np.random.RandomState) and isinstance(restored, np.random.RandomState):
            current.set_state(restored.get_state())
        else:
            setattr(obj, name, restored)


_PLAIN_LEAVES = (torch.Tensor, torch.Size, torch.dtype, torch.device, *_PRIMITIVES)


def plain_leaves(value: Any, where: str = "state") -> Iterator[tuple[str, Any]]:
    """``(where, leaf)`` for every leaf of ``value`` (``where`` its path, as ``state['key'][0]``); raise ``TypeError``
    naming the first entry that is not a tensor, a Python scalar, a string or a list/tuple/dict of them (``bytes``
    included: they only ever hold pickles)."""
    if isinstance(value, _PLAIN_LEAVES) and not isinstance(value, np.generic):
        yield where, value
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from plain_leaves(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) not in _PRIMITIVES:
                raise TypeError(f"{where} has a key of type {type(key).__name__}: only plain keys are accepted")
            yield from plain_leaves(item, f"{where}[{key!r}]")
        return
    raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__qualname__}: only tensors, numbers, strings "
                    "and lists/tuples/dicts of them are accepted")


def check_plain(value: Any, where: str = "state") -> None:
    """Raise ``TypeError`` naming the first entry of ``value`` that is not plain data (:func:`plain_leaves`)."""
    deque(plain_leaves(value, where), maxlen=0)
