"""Files read and written under a run or sweep directory: regular files only, never through a link, bounded, and a
full disk named.

A run or sweep directory is data that may come from elsewhere (downloaded, copied from a colleague, a shared
disk), and a symlink planted in it would turn a write of ours into a write outside it: ``metrics.json.tmp``
pointing at ``~/.bashrc``, a ``csv/`` folder pointing at another run. So:

* :func:`refuse_symlinks` refuses a directory holding a symlink anywhere below it, naming it
  (:class:`SymlinkRefused`), before anything is written: what a run and a sweep check first;
* every file this package writes there is opened from its directory's descriptor, each folder below the
  directory the caller names opened with ``O_NOFOLLOW`` and the file itself too (:func:`open_file`,
  :func:`atomic_writer`, :func:`write_atomic`), so a symlink that appears later is refused as well;
* an atomic write goes to ``<name>.tmp`` (created exclusively) and is renamed over ``<name>``; if writing
  fails the partial ``.tmp`` is removed, and a full disk or a file-size limit (``ENOSPC``, ``EFBIG``) is
  reported as :class:`DiskFullError`, naming the file, what was written and the free space; several files that go
  together (a report's page, its figures and its companion) are written as one set (:func:`write_atomic_set`): all
  their ``.tmp`` first, renamed only when every one is whole.

Every file is also checked to be what it claims before a byte of it is read or written:

* it is opened from its folder's descriptor with ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO never blocks the open) and
  refused unless ``fstat`` says it is a regular file (:class:`FileRefused`: a FIFO, a device, a socket);
* a file appended to or rewritten in place (a CSV log, ``run.lock``, a task's log) must have one link
  (``st_nlink == 1``): a hard link would carry our bytes into another file, e.g. the original run of a copy made
  with ``cp -al`` or ``rsync --link-dest``;
* a read has a size bound per kind of file (:data:`READ_LIMITS`), named in the refusal, and parsing is bounded
  (:func:`parse_json`, :func:`parse_yaml`: a nesting limit, YAML aliases refused);
* a folder held by :func:`hold_folder` (a run's directory, for as long as the run holds its lock) is opened once:
  every later path below it is opened from that descriptor, so a folder swapped for a link mid-run (or the run
  directory itself moved away and replaced) never receives a byte;
* an error of the system names the file's full path, not the name relative to its folder.

The directory the caller names may itself be reached through a symlink (``runs -> /scratch/runs``): that is
the user's own choice of where to write, not something found inside the data.
"""
from __future__ import annotations

import errno
import io
import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "DiskFullError",
    "FileRefused",
    "MAX_DEPTH",
    "READ_LIMITS",
    "SymlinkRefused",
    "atomic_writer",
    "check_components",
    "descriptor_path",
    "hard_link",
    "hold_folder",
    "held_folder",
    "load_yaml_config",
    "lstat_file",
    "make_dirs",
    "move_aside",
    "open_file",
    "open_read",
    "open_regular_fd",
    "parse_json",
    "parse_yaml",
    "read_bytes",
    "read_json",
    "read_text",
    "refuse_symlinks",
    "release_folder",
    "remove_file",
    "write_atomic",
    "write_atomic_set",
]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


class FileRefused(ValueError):
    """A file of a run or sweep directory that is not read or written: a link, a special file, a hard-linked file
    we would write in place, a file above its size limit, or contents nested too deep."""


#: The most bytes read from one file of each kind; a larger file is refused (:class:`FileRefused`) naming the limit.
READ_LIMITS: dict[str, int] = {
    "metrics": 64 << 20,  # metrics.json: every evaluation and episode of a run
    "config": 4 << 20,  # config.yaml and the other YAML files (a sweep spec, a results spec)
    "sweep": 64 << 20,  # sweep.json: every task, every submission
    "csv": 512 << 20,  # a CSV log: one row per logged step
    "record": 64 << 20,  # a run record, a report's JSON, any other JSON file
    "lock": 64 << 10,  # run.lock: a pid, a host and a time
    "text": 64 << 20,  # any other text file
}

#: The deepest nesting of lists and mappings that :func:`parse_json` and :func:`parse_yaml` accept (our files nest
#: less than ten deep).
MAX_DEPTH = 100


class SymlinkRefused(FileRefused):
    """A symlink inside a run or sweep directory: nothing is written through it."""

    def __init__(self, path: str | Path, root: str | Path | None = None):
        where = f" inside {root}" if root is not None else ""
        super().__init__(
            f"{path} is a symlink{where}: a run or sweep directory is data, and nothing in it may point elsewhere "
            "(a write through it would land outside the directory). Replace the link by the file or folder itself, "
            "or remove it"
        )
        self.path = Path(path)


class DiskFullError(OSError):
    """A write that ran out of space (``ENOSPC``) or hit the file-size limit (``EFBIG``); its partial file is removed."""


def _named(err: OSError, path: Path) -> OSError:
    """``err`` again, naming ``path`` in full (an ``os`` call given a descriptor and a name names only the name)."""
    return OSError(err.errno, err.strerror or os.strerror(err.errno), str(path))


_HARD_LINK_HINT = (
    "a copy made with `cp -al` or `rsync --link-dest` shares its files with the original, and writing here would "
    "change the original too. Make a real copy (`cp -a`, or rsync without --link-dest) and use that"
)


def _check_regular(fd: int, path: Path, *, in_place: bool) -> os.stat_result:
    """``fstat(fd)``, refusing anything but a regular file, and with ``in_place`` one with more than one link."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode) else "a character device" if stat.S_ISCHR(info.st_mode)
                else "a block device" if stat.S_ISBLK(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode)
                else "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file")
        raise FileRefused(
            f"{path} is {kind}, not a regular file: a run or sweep directory holds only regular files, and reading or "
            "writing this one could block or never end. Remove it (or replace it by the file it stands for)"
        )
    if in_place and info.st_nlink != 1:
        raise FileRefused(f"{path} has {info.st_nlink} hard links, and it is written in place: {_HARD_LINK_HINT}")
    return info


# Folders held open by hold_folder: absolute path (as given, and resolved) -> [descriptor, holders].
_HELD: dict[str, list[int]] = {}


def hold_folder(path: str | Path, *, root: str | Path | None = None, create: bool = False) -> int:
    """Open the folder ``path`` once and keep it: every path below it is then opened from that descriptor
    (:func:`open_file`, :func:`atomic_writer`, :func:`read_bytes` ...), whatever later happens to the names on the
    way (a folder swapped for a link, the folder itself moved away); a folder below a held one is opened from that
    one's descriptor. Undone by :func:`release_folder` (counted). Returns the descriptor (the caller does not close
    it). ``root``: ``path`` is a folder below ``root`` (a held run directory), opened from it through no symlink, and
    made first with ``create``."""
    keys = {os.path.abspath(path), os.path.realpath(path)}
    held = next((_HELD[k] for k in keys if k in _HELD), None)
    if held is None and root is not None:
        folder = _Folder(Path(path), Path(root), create)
        keys.add(os.path.abspath(path))
        held = [folder.fd, 0]
    elif held is None and _held_anchor(Path(os.path.abspath(path)).parent) is not None:
        # below a held folder (a sweep's task in the sweep directory its driver holds): opened from that
        # descriptor, no link followed, whatever has become of the names above it
        keys = {os.path.abspath(path)}
        held = [_Folder(Path(os.path.abspath(path)), None, False).fd, 0]
    elif held is None:
        held = [os.open(path, _DIR_FLAGS), 0]
    held[1] += 1
    for key in keys:
        _HELD[key] = held
    return held[0]


def release_folder(path: str | Path) -> None:
    """Undo one :func:`hold_folder` of ``path``; the last one closes its descriptor."""
    keys = [k for k in {os.path.abspath(path), os.path.realpath(path)} if k in _HELD]
    if not keys:
        return
    held = _HELD[keys[0]]
    held[1] -= 1
    if held[1] <= 0:
        for key in [k for k, v in _HELD.items() if v is held]:
            del _HELD[key]
        os.close(held[0])


def descriptor_path(path: str | Path) -> str:
    """A path naming the held folder ``path`` (:func:`hold_folder`) by its descriptor, for a library that opens its
    files by path (TorchRL's memory-mapped storage, a logger's folder): ``/proc/self/fd/<fd>`` reaches the very
    folder that was opened and checked, whatever later happens to the names on the way (a folder swapped for a
    link). ``ValueError`` when ``path`` is not held; ``OSError`` (``ENOTSUP``) where the system has no
    ``/proc/self/fd`` to name a descriptor by, so that the caller refuses rather than writes by name."""
    keys = [k for k in (os.path.abspath(path), os.path.realpath(path)) if k in _HELD]
    if not keys:
        raise ValueError(f"{path} is not a held folder (hold_folder)")
    by_fd = f"/proc/self/fd/{_HELD[keys[0]][0]}"
    try:
        same = os.path.samestat(os.stat(by_fd), os.fstat(_HELD[keys[0]][0]))
    except OSError:
        same = False
    if not same:
        raise OSError(errno.ENOTSUP, f"this system has no /proc/self/fd to reach the folder {path} by its descriptor")
    return by_fd


@contextmanager
def held_folder(path: str | Path) -> Iterator[None]:
    """:func:`hold_folder` for the duration of a block."""
    hold_folder(path)
    try:
        yield
    finally:
        release_folder(path)


def _held_anchor(folder: Path) -> tuple[Path, int] | None:
    """The deepest held folder at or above ``folder`` and its descriptor."""
    if not _HELD:
        return None
    current = Path(os.path.abspath(folder))
    for candidate in (current, *current.parents):
        held = _HELD.get(str(candidate))
        if held is not None:
            return candidate, held[0]
    return None


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def refuse_symlinks(root: str | Path, *, allow_under: tuple[str, ...] = ()) -> None:
    """Raise :class:`SymlinkRefused` naming the first symlink found anywhere below ``root`` (``root`` itself
    may be one). ``allow_under``: top-level folders whose own tool keeps links inside them (``wandb/``: its
    ``latest-run``), allowed when they resolve inside that folder. A file that disappears during the scan
    (another process's temp file) is skipped."""
    root = Path(root)
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            path = Path(entry.path)
            try:
                if entry.is_symlink():
                    top = path.relative_to(root).parts[0]
                    if top in allow_under and path.resolve().is_relative_to((root / top).resolve()):
                        continue
                    raise SymlinkRefused(path, root)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(path)
            except FileNotFoundError:
                continue


def check_components(root: str | Path, path: str | Path) -> None:
    """Raise :class:`SymlinkRefused` when a component of ``path`` below ``root`` (the last one included) is a
    symlink; components that do not exist yet are fine (they will be created as folders)."""
    root, path = Path(root), Path(path)
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            raise SymlinkRefused(current, root)
        if not current.exists():
            return


class _Folder:
    """A folder opened from ``root`` one component at a time, none of them through a symlink."""

    def __init__(self, folder: Path, root: Path | None, create: bool):
        self.path = folder
        root = folder if root is None else root
        anchor = _held_anchor(folder)
        if anchor is not None:  # a held folder: opened from its descriptor, not by its name
            root = anchor[0]
            folder = Path(os.path.abspath(folder))
            self.fd = os.dup(anchor[1])
        else:
            try:
                self.fd = os.open(root, _DIR_FLAGS)
            except OSError as err:
                raise _named(err, root) from None
        self.root = root
        current = root
        try:
            for part in folder.relative_to(root).parts:
                current = current / part
                if create:
                    try:
                        os.mkdir(part, dir_fd=self.fd)
                    except FileExistsError:
                        pass
                    except OSError as err:
                        raise _named(err, current) from None
                try:
                    fd = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=self.fd)
                except OSError as err:
                    if err.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(part, self.fd):
                        raise SymlinkRefused(current, root) from None
                    raise _named(err, current) from None
                os.close(self.fd)
                self.fd = fd
        except BaseException:
            os.close(self.fd)
            raise

    def refuse_link(self, name: str) -> None:
        if _is_link(name, self.fd):
            raise SymlinkRefused(self.path / name, self.root)

    def open(self, name: str, flags: int, mode: int = 0o666) -> int:
        try:
            return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.EEXIST, errno.ENOTDIR) and _is_link(name, self.fd):
                raise SymlinkRefused(self.path / name, self.root) from None
            if err.errno == errno.ENXIO:  # O_WRONLY | O_NONBLOCK on a FIFO without a reader, or a socket
                raise FileRefused(f"{self.path / name} is a FIFO or a socket, not a regular file: a run or sweep "
                                  "directory holds only regular files. Remove it") from None
            raise _named(err, self.path / name) from None

    def open_regular(self, name: str, flags: int, *, in_place: bool, mode: int = 0o666) -> int:
        """:meth:`open` a regular file (``O_NONBLOCK``: a FIFO does not block; checked by ``fstat``), with
        ``in_place`` one of one link; ``O_TRUNC`` is applied after the checks."""
        fd = self.open(name, (flags & ~os.O_TRUNC) | os.O_NONBLOCK, mode)
        try:
            _check_regular(fd, self.path / name, in_place=in_place)
            os.set_blocking(fd, True)
            if flags & os.O_TRUNC:
                os.ftruncate(fd, 0)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def replace(self, src: str, dst: str) -> None:
        try:
            os.replace(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError as err:
            raise _named(err, self.path / dst) from None

    def unlink(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise _named(err, self.path / name) from None

    def close(self) -> None:
        os.close(self.fd)


def _folder(path: Path, root: str | Path | None, create: bool) -> _Folder:
    return _Folder(path.parent, None if root is None else Path(root), create)


def open_file(path: str | Path, mode: str = "w", *, root: str | Path | None = None, create_dirs: bool = False) -> IO[Any]:
    """``open(path, mode)`` (``"w"``, ``"wb"``, ``"a"``, ``"ab"``) that follows no symlink: neither ``path``
    nor a folder between ``root`` (default: ``path``'s folder) and it; ``create_dirs`` makes missing folders.
    The file written in place must be a regular file of one link (:class:`FileRefused` otherwise)."""
    path = Path(path)
    if mode.rstrip("b") not in ("w", "a"):
        raise ValueError(f"open_file writes or appends, got mode={mode!r}")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    folder = _folder(path, root, create_dirs)
    try:
        fd = folder.open_regular(path.name, flags, in_place=True)
    finally:
        folder.close()
    return os.fdopen(fd, mode)


def open_regular_fd(path: str | Path, flags: int = os.O_RDONLY, *, root: str | Path | None = None,
                    in_place: bool = False, mode: int = 0o666) -> int:
    """A descriptor of the regular file ``path`` opened with ``flags`` (``O_CREAT`` allowed, ``O_TRUNC`` applied
    after the checks), following no symlink below ``root`` (default: ``path``'s folder); ``in_place``: the file
    must have one link, as a file written in place must (:class:`FileRefused` otherwise)."""
    path = Path(path)
    folder = _folder(path, root, False)
    try:
        return folder.open_regular(path.name, flags, in_place=in_place, mode=mode)
    finally:
        folder.close()


def open_read(path: str | Path, *, root: str | Path | None = None) -> IO[bytes]:
    """``open(path, "rb")`` of a regular file, following no symlink below ``root`` (default: ``path``'s folder)."""
    return os.fdopen(open_regular_fd(path, os.O_RDONLY, root=root), "rb")


def lstat_file(path: str | Path, *, root: str | Path | None = None) -> os.stat_result | None:
    """``os.lstat(path)`` from its folder's (held) descriptor, ``None`` when there is no such file."""
    path = Path(path)
    try:
        folder = _folder(path, root, False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return os.stat(path.name, dir_fd=folder.fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    finally:
        folder.close()


def remove_file(path: str | Path, *, root: str | Path | None = None) -> None:
    """``os.unlink(path)`` from its folder's (held) descriptor; nothing when there is no such file."""
    path = Path(path)
    folder = _folder(path, root, False)
    try:
        folder.unlink(path.name)
    finally:
        folder.close()


def move_aside(path: str | Path, suffix: str, *, root: str | Path | None = None) -> Path:
    """Rename ``path`` to ``<name><suffix>``, or ``<name><suffix>.1``, ``.2`` ... when that name is taken: an
    earlier file kept aside (a damaged checkpoint's ``.corrupt``) is never replaced. Done from the folder's (held)
    descriptor through no symlink, as a hard link made exclusively and the old name removed (where the filesystem
    has no hard links, a rename to a name checked free); returns the new path."""
    path = Path(path)
    folder = _folder(path, root, False)
    try:
        folder.refuse_link(path.name)
        for n in range(10_000):
            name = f"{path.name}{suffix}" + (f".{n}" if n else "")
            try:
                os.link(path.name, name, src_dir_fd=folder.fd, dst_dir_fd=folder.fd, follow_symlinks=False)
            except FileExistsError:
                continue
            except OSError as err:
                if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise _named(err, path.parent / name) from None
                if _exists(name, folder.fd):  # no hard links here: a rename to a free name
                    continue
                folder.replace(path.name, name)
                return path.parent / name
            folder.unlink(path.name)
            return path.parent / name
        raise FileRefused(f"{path.parent} holds 10000 files named {path.name}{suffix}.N: move them away")
    finally:
        folder.close()


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def make_dirs(path: str | Path, *, root: str | Path) -> None:
    """``mkdir -p path`` below ``root`` through no symlink (:class:`SymlinkRefused` naming one on the way)."""
    _Folder(Path(path), Path(root), True).close()


def _limit(kind: str) -> int:
    if kind not in READ_LIMITS:
        raise ValueError(f"unknown kind of file {kind!r}; known: {sorted(READ_LIMITS)}")
    return READ_LIMITS[kind]


def read_bytes(path: str | Path, kind: str, *, root: str | Path | None = None, in_place: bool = False) -> bytes:
    """The bytes of the regular file ``path`` (opened as :func:`open_read` does), at most ``READ_LIMITS[kind]`` of
    them: a larger file is refused naming the limit. ``in_place``: the file is rewritten in place afterwards, and
    must have one link."""
    path = Path(path)
    limit = _limit(kind)
    fd = open_regular_fd(path, os.O_RDONLY, root=root, in_place=in_place)
    try:
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise FileRefused(f"{path} is larger than {limit / (1 << 20):g} MiB, the limit for a {kind} file: it is not "
                          "one this library wrote. Remove it or move it away")
    return b"".join(chunks)


def read_text(path: str | Path, kind: str, *, root: str | Path | None = None) -> str:
    """:func:`read_bytes` decoded as UTF-8 (``UnicodeDecodeError``, a ``ValueError``, when it is not)."""
    return read_bytes(path, kind, root=root).decode()


def read_json(path: str | Path, kind: str = "record", *, root: str | Path | None = None) -> Any:
    """The JSON value of ``path``: :func:`read_bytes`, then :func:`parse_json` (``ValueError`` naming the file)."""
    data = read_bytes(path, kind, root=root)
    try:
        text = data.decode()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not valid JSON (not UTF-8: {err})") from None
    return parse_json(text, path)


def _too_deep(source: Any, what: str) -> FileRefused:
    return FileRefused(f"{source} is refused: its {what} nest more than {MAX_DEPTH} deep, which no file of this library "
                       "does")


def _depth_ok(value: Any) -> bool:
    """Whether ``value`` (parsed JSON or YAML) nests at most :data:`MAX_DEPTH` lists and mappings (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                return False
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return True


def parse_json(text: str, source: Any = "JSON text") -> Any:
    """``json.loads(text)`` with a nesting limit (:data:`MAX_DEPTH`): a deeper document is refused in one line
    (:class:`FileRefused`), never a ``RecursionError``; invalid JSON is a ``json.JSONDecodeError`` naming ``source``."""
    import json

    try:
        value = json.loads(text)
    except RecursionError:
        raise _too_deep(source, "lists and objects") from None
    except json.JSONDecodeError as err:
        raise json.JSONDecodeError(f"{source} is not valid JSON ({err.msg})", err.doc, err.pos) from None
    if not _depth_ok(value):
        raise _too_deep(source, "lists and objects")
    return value


def check_yaml(text: str, source: Any = "YAML text") -> None:
    """Refuse YAML text that uses an alias (``*name``: a "billion laughs" document grows without bound when its
    aliases are expanded) or nests more than :data:`MAX_DEPTH` deep, in one line (:class:`FileRefused`), before
    anything is built from it. The check walks the parser's events, without recursion."""
    import yaml

    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise FileRefused(f"{source} is refused: it uses a YAML alias (*{event.anchor}), which this library "
                                  "never writes and which can make a small file expand without bound. Write the "
                                  "value out instead of the alias")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _too_deep(source, "lists and mappings")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as err:
        raise ValueError(f"{source} is not valid YAML: {' '.join(str(err).split())}") from None


def parse_yaml(text: str, source: Any = "YAML text") -> Any:
    """``yaml.safe_load(text)`` after :func:`check_yaml` (no alias, a bounded depth)."""
    import yaml

    check_yaml(text, source)
    return yaml.safe_load(text)


def load_yaml_config(path: str | Path, *, root: str | Path | None = None) -> Any:
    """``OmegaConf.load(path)`` of a regular file (:func:`read_text`, kind ``config``) checked by :func:`check_yaml`."""
    from omegaconf import OmegaConf

    text = read_text(path, "config", root=root)
    check_yaml(text, path)
    return OmegaConf.create(text) if text.strip() else OmegaConf.create({})


def _size(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{int(n)} bytes"


def _disk_full(err: OSError, path: Path, written: int, needed: int | None) -> DiskFullError:
    try:
        free = f"{_size(shutil.disk_usage(path.parent).free)} free on that filesystem"
    except OSError:
        free = "free space unknown"
    need = f", about {_size(needed)} in all" if needed else ""
    return DiskFullError(
        err.errno,
        f"{os.strerror(err.errno)}: writing {path} stopped after {_size(written)}{need} ({free}); the partial "
        f"{path.name}.tmp was removed and {path} is unchanged. Free space (or raise the file-size limit) and run again",
    )


class _CountingFile(io.RawIOBase):
    """The write side of a file descriptor that counts what was written and keeps the first ``OSError``
    (``torch.save`` turns an error raised in ``write`` into an unrelated ``RuntimeError``)."""

    def __init__(self, fd: int):
        self.fd, self.written, self.error = fd, 0, None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        try:
            view = memoryview(data).cast("B")
            done = 0
            while done < len(view):
                wrote = os.write(self.fd, view[done:])
                done += wrote
                self.written += wrote
        except OSError as err:
            self.error = self.error or err
            raise
        return done

    def seek(self, offset: int, whence: int = 0) -> int:
        return os.lseek(self.fd, offset, whence)

    def seekable(self) -> bool:
        return True

    def truncate(self, size: int | None = None) -> int:
        size = self.tell() if size is None else size
        os.ftruncate(self.fd, size)
        return size


@contextmanager
def atomic_writer(path: str | Path, *, root: str | Path | None = None, fsync: bool = False,
                  needed: int | None = None, create_dirs: bool = False) -> Iterator[_CountingFile]:
    """A binary file that becomes ``path`` when the block ends without an error (written as ``<name>.tmp``,
    created exclusively, then renamed over ``path``), following no symlink (see :func:`open_file`). A
    failed block removes the ``.tmp`` and leaves ``path`` as it was; running out of space raises
    :class:`DiskFullError` naming ``path`` (``needed``: the size the file needs, said in the message).
    ``fsync``: the data reaches the disk before the rename, and the rename before returning (checkpoints)."""
    path = Path(path)
    folder = _folder(path, root, create_dirs)
    tmp = path.name + ".tmp"
    try:
        folder.refuse_link(path.name)
        folder.refuse_link(tmp)
        folder.unlink(tmp)  # a stale one of a killed writer
        fd = folder.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        file = _CountingFile(fd)
        try:
            yield file
            if fsync:
                os.fsync(fd)
        except BaseException as err:
            os.close(fd)
            folder.unlink(tmp)
            cause = file.error if file.error is not None else err
            # (a DiskFullError of another file of a set, write_atomic_set, stands as it is)
            if isinstance(cause, OSError) and not isinstance(cause, DiskFullError) and cause.errno in _FULL:
                raise _disk_full(cause, path, file.written, needed) from err
            raise
        os.close(fd)
        try:
            folder.replace(tmp, path.name)
        except BaseException:
            folder.unlink(tmp)
            raise
        if fsync:
            os.fsync(folder.fd)
    finally:
        folder.close()


def write_atomic(path: str | Path, data: bytes | str, *, root: str | Path | None = None, fsync: bool = False,
                 create_dirs: bool = False) -> None:
    """Write ``data`` (``str``: UTF-8) to ``path`` with :func:`atomic_writer` (a full disk names its size)."""
    data = data.encode() if isinstance(data, str) else data
    with atomic_writer(path, root=root, fsync=fsync, create_dirs=create_dirs, needed=len(data)) as f:
        f.write(data)


def write_atomic_set(files: Iterable[tuple[str | Path, bytes | str, str | Path | None]], *,
                     create_dirs: bool = False) -> None:
    """Write several files as one set: ``(path, data, root)`` each, every one first written whole to its
    ``<name>.tmp`` (:func:`atomic_writer`), and only when all of them are written renamed over their names, one
    after the other. A failure while writing (a full disk: :class:`DiskFullError` naming the file) removes every
    ``.tmp`` and leaves each earlier file as it was: a report's page never links a figure or a companion of
    another generation."""
    with ExitStack() as stack:
        for path, data, root in files:
            data = data.encode() if isinstance(data, str) else data
            stack.enter_context(atomic_writer(path, root=root, needed=len(data), create_dirs=create_dirs)).write(data)


def hard_link(source: str | Path, target: str | Path) -> None:
    """``target`` (replaced if it exists) as a hard link of ``source``, both in one folder, neither a symlink:
    made as ``<target>.tmp`` then renamed, so ``target`` is always whole. ``OSError`` where there are no hard links."""
    source, target = Path(source), Path(target)
    folder = _Folder(source.parent, None, False)
    tmp = target.name + ".tmp"
    try:
        for name in (source.name, target.name, tmp):
            folder.refuse_link(name)
        folder.unlink(tmp)
        try:
            os.link(source.name, tmp, src_dir_fd=folder.fd, dst_dir_fd=folder.fd, follow_symlinks=False)
        except OSError as err:
            raise _named(err, target.parent / tmp) from None
        folder.replace(tmp, target.name)
    finally:
        folder.close()
