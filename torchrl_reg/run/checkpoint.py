"""Atomic checkpoints that let a run continue exactly where it stopped, and that cannot run code.

A checkpoint is one ``torch.save`` file (``<run_dir>/checkpoint.pt``) holding only tensors,
numbers, strings and lists/tuples/dicts of them (:func:`save_checkpoint` refuses anything else),
loaded with ``torch.load(weights_only=True)``. States without a tensor form of their own are
converted to such plain data first, never pickled: the env state
(:func:`~torchrl_reg.envs.state.get_env_state`: RNGs, grids, ALE's own serialization as a
uint8 tensor) and the replay sampler's state (a prioritized sampler's C++ segment trees as their
leaf values). :func:`load_checkpoint` refuses a file holding anything else, ``bytes`` included,
so a crafted checkpoint is refused instead of executed.

Each file starts with a header: :data:`MAGIC` and the SHA-256 of the ``torch.save`` bytes that
follow it, written in the same atomic write as the checkpoint. :func:`load_checkpoint` verifies
it before unpickling anything, so a corrupted file (random bytes, a single flipped bit, a
truncated or zeroed block) is reported as corruption, never as a crafted file, and never loads
as a slightly different state. Files written before checksums existed (a bare ``torch.save`` zip)
still load, unverified, with a warning saying that they are trusted as they are, but only where nothing
says the directory holds checkpoints of this format: beside a file that is not such a zip (one with the
header, or one too damaged to tell), or fallen back to from a missing checkpoint, such a file is refused.

Before anything is inflated, the zip's central directory is read and every record's declared size checked:
``torch.save`` stores its records uncompressed, so a compressed record, or records declaring more bytes than the
file holds, or more than the caller's bound (``max_bytes``: what the run's config implies,
:meth:`~torchrl_reg.run.contract.Run.resume`), are refused: a small file cannot make the load allocate gigabytes.
Once loaded, before the state is returned, so are tensors that declare more than their records hold (a crafted shape
over a stride of 0, whose first copy would allocate it), tensors that are not dense, and tensors declaring more than
``max_bytes`` together (views of one storage each counted).

The checkpoint it replaces is kept as ``checkpoint.prev.pt``: a checkpoint of the caller's own run
that cannot be read (truncated, corrupted on disk) is reported by name and the previous one is used
instead, with a message saying so (:func:`load_checkpoint`); a checkpoint that names another config
(:data:`CONFIG_DIGEST_KEY`) is refused. Another run's checkpoint is read with :func:`read_checkpoint`,
which renames, writes and falls back to nothing.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
import random
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict
from torchrl.collectors import Collector
from torchrl.data import ReplayBuffer

from torchrl_reg.envs.state import get_env_state, set_env_state
from torchrl_reg.plain_state import check_plain, plain_leaves
from torchrl_reg.run.files import FileRefused, SymlinkRefused, atomic_writer, hard_link, lstat_file, move_aside, open_read
from torchrl_reg.validation import check_finite_tensors

__all__ = [
    "CHECKPOINT_NAME",
    "PREVIOUS_CHECKPOINT_NAME",
    "CONFIG_DIGEST_KEY",
    "CheckpointError",
    "ConfigMismatchError",
    "UntrustedCheckpointError",
    "has_checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint",
    "replay_buffer_state",
    "load_replay_buffer_state",
    "rng_state",
    "set_rng_state",
    "collector_state",
    "load_collector_state",
]

#: The checkpoint's file name in a run directory (the previous one is kept as ``checkpoint.prev.pt``).
CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_CHECKPOINT_NAME = "checkpoint.prev.pt"
#: First bytes of a checkpoint file; the SHA-256 digest (32 bytes) of the rest of the file follows.
MAGIC = b"TRLRCKP1"
_HEADER_SIZE = len(MAGIC) + hashlib.sha256().digest_size
# What a bare ``torch.save`` file (a zip archive) starts with: a checkpoint written before checksums.
_ZIP_MAGIC = b"PK\x03\x04"
#: The checkpoint entry naming its run's config (:func:`~torchrl_reg.run.rundir.config_digest`).
CONFIG_DIGEST_KEY = "config_digest"

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, unreadable (truncated, corrupt) or untrusted."""


class UntrustedCheckpointError(CheckpointError):
    """A checkpoint holding something other than plain data: refused, never loaded or fallen back from."""


class ConfigMismatchError(CheckpointError):
    """A valid checkpoint of another config (another run's, copied in): refused, never fallen back from."""


def _previous(path: Path) -> Path:
    return path.with_name(PREVIOUS_CHECKPOINT_NAME) if path.name == CHECKPOINT_NAME else path.with_name(path.name + ".prev")


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint to resume from (``checkpoint.pt`` or the previous one)."""
    return (Path(run_dir) / CHECKPOINT_NAME).exists() or (Path(run_dir) / PREVIOUS_CHECKPOINT_NAME).exists()


class _HashingWriter:
    """A write-only file object that hashes what it passes on (``torch.save`` only calls ``write`` and ``flush``)."""

    def __init__(self, file: Any):
        self.file = file
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


def _tensor_bytes(state: Any) -> int:
    """The bytes of every tensor in ``state``: about what its file needs (the rest is a small index)."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(_tensor_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_tensor_bytes(v) for v in state)
    return 0


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a crash mid-write leaves the previous checkpoint intact.

    ``state`` must be plain data (``TypeError`` names the first entry that is not). The file holds
    :data:`MAGIC`, the SHA-256 of the ``torch.save`` bytes, then those bytes (hashed as they are
    written, so nothing is read back). The data is synced to disk before the rename makes it the
    checkpoint, and the directory after it, so that a machine that loses power (a preempted node)
    cannot keep a renamed empty file. The checkpoint it replaces becomes ``checkpoint.prev.pt`` (a
    hard link, so ``path`` always exists). No symlink is followed (:mod:`torchrl_reg.run.files`); a full
    disk raises :class:`~torchrl_reg.run.files.DiskFullError` naming the file and the space it needs, and
    removes the partial ``checkpoint.pt.tmp``.
    """
    check_plain(state, "checkpoint")
    path = Path(path)
    with atomic_writer(path, fsync=True, needed=_HEADER_SIZE + _tensor_bytes(state)) as f:
        f.write(bytes(_HEADER_SIZE))  # the header's place; its digest is known once the payload is written
        writer = _HashingWriter(f)
        torch.save(state, writer)
        f.seek(0)
        f.write(MAGIC + writer.sha256.digest())
        if lstat_file(path) is not None:
            try:
                hard_link(path, _previous(path))
            except SymlinkRefused:
                raise
            except OSError:  # a filesystem without hard links: keep no previous checkpoint rather than copy GBs
                pass


def _has_header(path: Path) -> bool:
    """Whether ``path`` starts with :data:`MAGIC` (a checkpoint that carries its checksum)."""
    try:
        with open_read(path) as f:
            return f.read(len(MAGIC)) == MAGIC
    except FileRefused:
        raise
    except (OSError, ValueError):
        return False


def _is_bare_zip(path: Path) -> bool:
    """Whether ``path`` starts as a bare ``torch.save`` zip does (a checkpoint written before checksums)."""
    try:
        # a regular file only: a FIFO in its place is refused (FileRefused), never waited on
        with open_read(path) as f:
            return f.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    except FileRefused:
        raise
    except OSError:
        return False


def _verified_payload(path: Path, sibling: Path | None, *, fallback: bool = False) -> Any:
    """``path`` opened at its ``torch.save`` payload, after checking the header's SHA-256 against it.

    Raises :class:`CheckpointError` (corrupt) for a file whose digest does not match or that is
    neither a checkpoint nor a pre-checksum ``torch.save`` zip. A file without the header (written before
    checkpoints had one) is refused when ``sibling`` (the other checkpoint of its directory) is not such a zip
    too (it has the header, or is too damaged to tell whether it had one), and as the ``fallback`` from a
    missing checkpoint: nothing this version writes lacks the header, and a damaged or substituted file without
    one cannot be told from a good one. Otherwise (a directory whose checkpoints all predate checksums) it loads
    unverified, with a warning that says it is trusted as it is.
    """
    f = open_read(path)  # a regular file, no link followed: a FIFO or a device is refused, not waited on
    try:
        header = f.read(_HEADER_SIZE)
        if header.startswith(_ZIP_MAGIC):
            if fallback and (sibling is None or not sibling.exists()):
                raise CheckpointError(
                    f"checkpoint {path} is refused as a fallback: it carries no checksum (written before checkpoints "
                    "had one) and no checkpoint beside it shows that its directory predates checksums; a damaged or "
                    "substituted file cannot be told from a good one, and nothing unverified is fallen back to"
                )
            if sibling is not None and sibling.exists() and not _is_bare_zip(sibling):
                what = "does" if _has_header(sibling) else "is damaged (it may have had one)"
                raise CheckpointError(
                    f"checkpoint {path} is refused: it carries no checksum while {sibling} beside it {what}, and every "
                    "checkpoint this version writes has one (a damaged or substituted file cannot be told from a good one)"
                )
            logger.warning(
                "checkpoint %s carries no checksum (written before checkpoints had one): trusting it unverified, as it "
                "is; a corruption in it would go unnoticed", path,
            )
            f.seek(0)
            return f
        if len(header) < _HEADER_SIZE or not header.startswith(MAGIC):
            raise CheckpointError(
                f"checkpoint {path} is corrupt: it does not start with a torchrl_reg checkpoint header "
                f"({len(header)} bytes read where {_HEADER_SIZE} are expected, first bytes {header[:8]!r})"
            )
        digest = hashlib.sha256()
        while chunk := f.read(1 << 20):
            digest.update(chunk)
        stored = header[len(MAGIC):]
        if digest.digest() != stored:
            raise CheckpointError(
                f"checkpoint {path} is corrupt: its content does not match the checksum written with it "
                f"(sha256 {stored.hex()[:16]}... stored, {digest.hexdigest()[:16]}... read)"
            )
        f.seek(_HEADER_SIZE)
        return f
    except BaseException:
        f.close()
        raise


def _check_records(f: Any, path: Path, max_bytes: int | None) -> None:
    """Refuse the ``torch.save`` zip at ``f``'s position before anything in it is inflated: every record's size as
    the zip's central directory declares it must be stored uncompressed (as ``torch.save`` writes every record),
    inside the file, and all of them together within ``max_bytes`` (when given). ``f`` is left where it was."""
    start = f.tell()
    file_size = os.fstat(f.fileno()).st_size
    try:
        records = zipfile.ZipFile(f).infolist()  # the central directory only
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as err:
        raise CheckpointError(f"checkpoint {path} is unreadable (corrupt): its zip directory cannot be read ({err})") from None
    finally:
        f.seek(start)
    total = 0
    for record in records:
        if record.compress_type != zipfile.ZIP_STORED or record.file_size != record.compress_size:
            raise UntrustedCheckpointError(
                f"refusing checkpoint {path}: its record {record.filename!r} is compressed ({record.compress_size} bytes "
                f"declaring {record.file_size} once inflated); torch.save stores every record as it is, so only a "
                "crafted file has one, and inflating it could exhaust memory"
            )
        if record.header_offset + record.file_size > file_size:
            raise CheckpointError(
                f"checkpoint {path} is corrupt: its record {record.filename!r} declares {record.file_size} bytes at "
                f"offset {record.header_offset}, past the end of the {file_size}-byte file"
            )
        total += record.file_size
    if total > file_size:
        raise CheckpointError(f"checkpoint {path} is corrupt: its records declare {total} bytes, more than the "
                              f"{file_size}-byte file holds")
    if max_bytes is not None and total > max_bytes:
        raise UntrustedCheckpointError(
            f"refusing checkpoint {path}: its records declare {total} bytes, more than the {max_bytes} bytes a checkpoint "
            "of this run's config can hold (its networks, optimizer and replay buffer capacity, with a margin); it is "
            "not this run's checkpoint"
        )


def _load(
    path: Path, map_location: str | torch.device, sibling: Path | None = None, *, max_bytes: int | None = None,
    fallback: bool = False,
) -> dict[str, Any]:
    try:
        with _verified_payload(path, sibling, fallback=fallback) as f:
            _check_records(f, path, max_bytes)
            state = torch.load(f, map_location=map_location, weights_only=True)
    except (CheckpointError, FileRefused):  # FileRefused: a FIFO, a device, a link in its place, named as it is
        raise
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():
            raise UntrustedCheckpointError(
                f"refusing checkpoint {path}: it holds objects other than tensors and plain containers, which "
                f"only a crafted or foreign file does, and loading it could run code "
                f"({str(err).splitlines()[0] if str(err) else type(err).__name__})"
            ) from None
        raise CheckpointError(f"checkpoint {path} is unreadable (corrupt): {err}") from err
    except Exception as err:  # noqa: BLE001 - a damaged zip or pickle raises any of many types (IndexError too)
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupt): {type(err).__name__}: {err}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a checkpoint dict")
    try:
        check_plain(state, "checkpoint")
    except TypeError as err:
        raise UntrustedCheckpointError(
            f"refusing checkpoint {path}: {err}. Checkpoints written by torchrl_reg never hold bytes (older "
            "versions pickled the env and sampler states into bytes, which can run code when unpickled); "
            "start the run again in a new directory"
        ) from None
    _check_tensor_sizes(state, path, max_bytes)
    return state


def _check_tensor_sizes(state: dict[str, Any], path: Path, max_bytes: int | None) -> None:
    """Refuse, before any of them is used, tensors that declare more bytes than the file holds for them: a dense
    tensor's ``numel * element_size`` within its storage (the record whose size :func:`_check_records` bounded),
    which every tensor ``torch.save`` writes satisfies, and all of them together within ``max_bytes`` (when given).
    ``torch.load`` rebuilds a tensor from its shape and strides over its storage without copying, so a crafted
    shape with a stride of 0 (elements repeated, as ``expand`` makes them) declares gigabytes over a 4-byte record:
    nothing is allocated at the load, but the first ``isfinite``, ``clone`` or ``copy_`` of it would."""
    total = 0
    for where, tensor in plain_leaves(state, "checkpoint"):
        if not isinstance(tensor, torch.Tensor):
            continue
        if tensor.layout != torch.strided or tensor.is_nested:
            raise UntrustedCheckpointError(
                f"refusing checkpoint {path}: its entry {where} is a {tensor.layout} tensor; checkpoints written by "
                "torchrl_reg hold dense tensors only"
            )
        declared = tensor.numel() * tensor.element_size()
        held = tensor.untyped_storage().nbytes() - tensor.storage_offset() * tensor.element_size()
        if declared > held:
            raise UntrustedCheckpointError(
                f"refusing checkpoint {path}: its entry {where} declares {declared} bytes (shape {list(tensor.shape)}, "
                f"strides {list(tensor.stride())}, {tensor.dtype}) over the {held} bytes its storage holds; torch.save "
                "writes every tensor within its storage, so only a crafted file repeats elements (a stride of 0), "
                "and reading it whole could exhaust memory"
            )
        total += declared
    if max_bytes is not None and total > max_bytes:
        raise UntrustedCheckpointError(
            f"refusing checkpoint {path}: its tensors declare {total} bytes together (views of one storage counted "
            f"each time), more than the {max_bytes} bytes a checkpoint of this run's config can hold; it is not this "
            "run's checkpoint"
        )


def _check_config_digest(path: Path, state: dict[str, Any], config_digest: str | None) -> dict[str, Any]:
    if config_digest is None:
        return state
    stored = state.get(CONFIG_DIGEST_KEY)
    if stored is None:
        logger.warning("checkpoint %s names no config (written before checkpoints did): it is trusted to be this "
                       "run's", path)
    elif stored != config_digest:
        raise ConfigMismatchError(
            f"checkpoint {path} is refused: it was written by a run of another config (config digest {stored[:16]}... "
            f"stored in it, {config_digest[:16]}... for this run directory's config), e.g. a checkpoint copied from "
            "another seed's run; resuming it would continue that run under this one's name. Put back this run's own "
            "checkpoint, or start over in a new run directory"
        )
    return state


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", *, config_digest: str | None = None,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """Load the checkpoint of the caller's own run directory, written by :func:`save_checkpoint`
    (``weights_only=True``, plain data only); the caller holds the directory's lock.

    A checkpoint holding anything else is refused (:class:`UntrustedCheckpointError`). One that fails
    its checksum or cannot be read (or is missing) while the previous one exists falls back to
    ``checkpoint.prev.pt``, with a warning naming both files; the unreadable file is renamed
    ``<name>.corrupt`` (``.corrupt.1``, ... beside an earlier one, never over it) so that the next checkpoint does
    not rotate it into the previous one's place.
    Both unusable: :class:`CheckpointError` naming both. ``config_digest`` (the run's
    :func:`~torchrl_reg.run.rundir.config_digest`): a checkpoint that names another config is refused
    (:class:`ConfigMismatchError`). ``max_bytes``: the most bytes the file's records may declare together (what
    the run's config implies); more, or a compressed record, is refused before anything is inflated
    (:class:`UntrustedCheckpointError`). A previous checkpoint without a checksum is fallen back to only from a
    damaged one without a checksum either (a directory older than checksums). A checkpoint of a run the caller
    does not own is read with :func:`read_checkpoint`, which changes nothing.
    """
    path = Path(path)
    previous = _previous(path)
    try:
        if not path.exists() and previous.exists():
            raise CheckpointError(f"checkpoint {path} is missing (the run stopped while replacing it)")
        return _check_config_digest(path, _load(path, map_location, previous, max_bytes=max_bytes), config_digest)
    except UntrustedCheckpointError:
        raise
    except ConfigMismatchError:
        raise
    except CheckpointError as err:
        if not previous.exists():
            raise CheckpointError(f"{err}; there is no previous checkpoint {previous.name} to fall back to") from err
        try:
            state = _load(previous, map_location, path, max_bytes=max_bytes, fallback=True)
        except CheckpointError as previous_err:
            raise CheckpointError(
                f"{err}; the previous checkpoint is unusable too: {previous_err}. The run cannot resume: restore "
                f"either file from a copy, or start over in a new run directory"
            ) from err
        state = _check_config_digest(previous, state, config_digest)
        if lstat_file(path) is not None:  # beside any earlier .corrupt, never over it
            move_aside(path, ".corrupt")
        logger.warning(
            "%s; resuming from the previous checkpoint %s (frame %s) instead", err, previous, state.get("frames", "?")
        )
        return state


def read_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", *, max_bytes: int | None = None
) -> dict[str, Any]:
    """Read a checkpoint of a run the caller does not own (another run's network, a shared directory, a
    run that may be training now): as :func:`load_checkpoint` checks it (its records within the file and
    ``max_bytes``), but nothing is renamed or written, and nothing is fallen back to. A damaged file raises
    :class:`CheckpointError` naming it (and the previous checkpoint beside it, which the caller may name
    instead, an explicit choice)."""
    path = Path(path)
    sibling = _previous(path) if path.name == CHECKPOINT_NAME else path.with_name(CHECKPOINT_NAME)
    if path.name == PREVIOUS_CHECKPOINT_NAME:
        logger.warning("reading the previous checkpoint %s, as named", path)
    try:
        return _load(path, map_location, sibling if sibling.exists() and sibling != path else None, max_bytes=max_bytes)
    except UntrustedCheckpointError:
        raise
    except CheckpointError as err:
        hint = (f"; its run directory holds the previous checkpoint {_previous(path)}: name that file to use it"
                if path.name == CHECKPOINT_NAME and _previous(path).exists() else "")
        raise CheckpointError(f"{err} (read only: nothing was changed in {path.parent}){hint}") from err


try:  # TorchRL's C++ extension (prioritized replay's segment trees); built for one torch version, as TorchRL treats it
    import torchrl._torchrl as _segment_trees
except ImportError as _err:  # e.g. another torch than the wheel's: everything but prioritized replay still works
    _segment_trees, _TREES_ERROR = None, _err
_TREES = {name: getattr(_segment_trees, name) for name in dir(_segment_trees) if "SegmentTree" in name} if _segment_trees else {}


def _plain_sampler_state(state: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in state.items():
        if type(value).__name__ in _TREES and isinstance(value, _TREES[type(value).__name__]):
            out[key] = {"segment_tree": type(value).__name__, "leaves": value[torch.arange(value.size)]}
        else:
            out[key] = value
    return out


def _sampler_state_from_plain(state: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in state.items():
        if isinstance(value, dict) and set(value) == {"segment_tree", "leaves"}:
            if _segment_trees is None:
                raise CheckpointError(f"the replay sampler state holds a {value['segment_tree']} but TorchRL's C++ "
                                      f"extension did not load ({_TREES_ERROR}): reinstall torchrl for this torch")
            if value["segment_tree"] not in _TREES:
                raise CheckpointError(f"unknown segment tree {value['segment_tree']!r} in the replay sampler state")
            leaves = value["leaves"]
            tree = _TREES[value["segment_tree"]](len(leaves))
            tree[torch.arange(len(leaves))] = leaves
            out[key] = tree
        else:
            out[key] = value
    return out


def _is_tensor_storage_state(state: Any) -> bool:
    """A TorchRL ``TensorStorage`` state: ``{"_storage": tensor or flat dict of tensors, "initialized", "_len"}``."""
    return isinstance(state, dict) and {"_storage", "initialized", "_len"} <= set(state)


def _map_storage_states(state: Any, fn) -> Any:
    """``state`` with ``fn`` applied to every tensor-storage state inside it (the buffer's storage, or the
    row and frame storages of :class:`~torchrl_reg.data.FrameStackStorage`)."""
    if _is_tensor_storage_state(state):
        return fn(state)
    if isinstance(state, dict):
        return {key: _map_storage_states(value, fn) for key, value in state.items()}
    return state


def _filled_part(state: dict[str, Any]) -> dict[str, Any]:
    """Only the first ``_len`` rows of a storage (its filled part: a TensorStorage writes rows ``0, 1, ...``
    until full, then overwrites in a ring), with the capacity to rebuild the rest; cloned, so that
    ``torch.save`` does not write the whole underlying storage of a view."""
    storage, length = state["_storage"], state["_len"]
    tensors = storage.values() if isinstance(storage, dict) else [storage]
    capacity = next(iter(tensors)).shape[0] if len(tensors) else 0
    if not state["initialized"] or length >= capacity:
        return state
    return {**state, "_storage": _map_rows(storage, lambda v: v[:length].clone()), "_capacity": capacity}


def _map_rows(storage: torch.Tensor | dict[str, torch.Tensor], fn) -> torch.Tensor | dict[str, torch.Tensor]:
    """``fn`` on a storage tensor, or on each tensor of a TensorDict state dict, keeping the dict's
    ``_metadata`` (the capacity batch size the storage is rebuilt with)."""
    if not isinstance(storage, dict):
        return fn(storage)
    out = OrderedDict((key, fn(value)) for key, value in storage.items())
    if hasattr(storage, "_metadata"):
        out._metadata = storage._metadata
    return out


def _full_capacity(state: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`_filled_part`: the rows past ``_len`` (never sampled) back as zeros."""
    if "_capacity" not in state:
        return state
    state = dict(state)
    capacity = state.pop("_capacity")

    def pad(value: torch.Tensor) -> torch.Tensor:
        full = torch.zeros((capacity, *value.shape[1:]), dtype=value.dtype, device=value.device)
        full[: len(value)] = value
        return full

    state["_storage"] = _map_rows(state["_storage"], pad)
    return state


def replay_buffer_state(buffer: ReplayBuffer) -> dict[str, Any]:
    """``buffer.state_dict()`` with only the filled part of its storage, and the sampler's C++ segment
    trees (a prioritized sampler) as their leaf values.

    A storage holds its whole capacity (a 1M-transition preset buffer after 1,500 frames: 39.5 MB for
    MultiGoal SQL); only its first ``_len`` rows are ever sampled, so only they are saved, with the
    capacity (:func:`load_replay_buffer_state` restores the same storage). A segment tree is a function
    of its leaves (each inner node combines its two children), so its leaves are its whole state.
    """
    state = _map_storage_states(dict(buffer.state_dict()), _filled_part)
    state["_sampler"] = _plain_sampler_state(state["_sampler"])
    return state


def _check_storage_state(state: dict[str, Any]) -> dict[str, Any]:
    """A storage state as :func:`_filled_part` makes it, checked (``ValueError`` naming the entry): its length within
    its capacity and every floating value in its rows finite (the collected rewards and observations that the
    loop refuses unless finite)."""
    storage, length = state["_storage"], state["_len"]
    if state["initialized"] is False and length == 0:  # nothing stored yet
        return state
    tensors = dict(storage) if isinstance(storage, dict) else {"rows": storage}
    if not all(isinstance(value, torch.Tensor) and value.dim() > 0 for value in tensors.values()):
        raise ValueError("replay_buffer: a storage's rows must be tensors (one row per transition)")
    counts = {value.shape[0] for value in tensors.values()}
    rows = counts.pop() if len(counts) == 1 else None
    capacity = state.get("_capacity", rows)
    if (rows is None or isinstance(length, bool) or not isinstance(length, int) or not isinstance(capacity, int)
            or not 0 <= length <= rows <= capacity):
        raise ValueError(f"replay_buffer: a storage holds {rows if rows is not None else 'unequal counts of'} rows of "
                         f"capacity {capacity!r} and says {length!r} are filled; a length is an integer in [0, rows]")
    for key, value in tensors.items():
        check_finite_tensors(f"replay_buffer.{key}", value[:length])
    return state


def _check_sampler_state(state: dict[str, Any]) -> None:
    """A prioritized sampler's plain state checked: its segment trees' leaves and its largest priority finite and
    >= 0, as the priorities it is given must be."""
    for key, value in state.items():
        if isinstance(value, dict) and set(value) == {"segment_tree", "leaves"}:
            check_finite_tensors(f"replay_buffer._sampler.{key}", value["leaves"])
            if isinstance(value["leaves"], torch.Tensor) and bool((value["leaves"] < 0).any()):
                raise ValueError(f"replay_buffer._sampler.{key} holds a negative priority")
    check_finite_tensors("replay_buffer._sampler", {k: v for k, v in state.items() if k not in ("_sum_tree", "_min_tree")})


def load_replay_buffer_state(buffer: ReplayBuffer, state: dict[str, Any]) -> None:
    """Inverse of :func:`replay_buffer_state`, after checking its values (``ValueError`` naming the entry: a filled
    length within the capacity, finite rows, finite non-negative priorities)."""
    _map_storage_states(state, _check_storage_state)
    _check_sampler_state(state.get("_sampler", {}))
    state = _map_storage_states(dict(state), _full_capacity)
    state["_sampler"] = _sampler_state_from_plain(state["_sampler"])
    buffer.load_state_dict(state)


def rng_state() -> dict[str, Any]:
    """The global RNG states: python, numpy, torch CPU and every CUDA device."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states saved by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def collector_state(collector: Collector) -> dict[str, Any]:
    """Frame counters, the carried observation and the env state of a single-process ``Collector``.

    TorchRL's ``Collector.state_dict`` deliberately leaves out the running env (it is not
    serializable in general) and starts new trajectories on load; the carrier (the tensordict the
    collector keeps between steps: current observation, done flags) and the gymnasium envs are
    saved here so that the continuation is the same trajectory.
    """
    sd = collector.state_dict()
    return {
        "frames": int(sd["frames"]),
        "iter": int(sd["iter"]),
        "carrier": collector._carrier.to_dict(),
        "env": get_env_state(collector.env),
    }


def load_collector_state(collector: Collector, state: dict[str, Any]) -> None:
    """Inverse of :func:`collector_state`, on a collector built the same way, after checking its values
    (``ValueError`` naming the entry: counters integers >= 0, the carried observation finite)."""
    for key in ("frames", "iter"):
        if isinstance(state[key], bool) or not isinstance(state[key], int) or state[key] < 0:
            raise ValueError(f"collector.{key} must be an integer >= 0, got {state[key]!r}")
    check_finite_tensors("collector.carrier", state["carrier"], collector._carrier.to_dict())
    collector._frames = state["frames"]
    collector._iter = state["iter"]
    carrier = TensorDict(state["carrier"], batch_size=collector._carrier.batch_size)
    collector._carrier.update(carrier)
    set_env_state(collector.env, state["env"])
