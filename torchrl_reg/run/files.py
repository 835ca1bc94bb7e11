"""Files written under a run or sweep directory, never through a symlink, and a full disk named.

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
  reported as :class:`DiskFullError`, naming the file, what was written and the free space.

The directory the caller names may itself be reached through a symlink (``runs -> /scratch/runs``): that is
the user's own choice of where to write, not something found inside the data.
"""
from __future__ import annotations

import errno
import io
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "DiskFullError",
    "SymlinkRefused",
    "atomic_writer",
    "check_components",
    "hard_link",
    "open_file",
    "refuse_symlinks",
    "write_atomic",
]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


class SymlinkRefused(ValueError):
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
        self.root = root
        self.fd = os.open(root, _DIR_FLAGS)
        try:
            for part in folder.relative_to(root).parts:
                if create:
                    try:
                        os.mkdir(part, dir_fd=self.fd)
                    except FileExistsError:
                        pass
                try:
                    fd = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=self.fd)
                except OSError as err:
                    if err.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(part, self.fd):
                        raise SymlinkRefused(root / Path(*folder.relative_to(root).parts), root) from None
                    raise
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
            raise

    def unlink(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        os.close(self.fd)


def _folder(path: Path, root: str | Path | None, create: bool) -> _Folder:
    return _Folder(path.parent, None if root is None else Path(root), create)


def open_file(path: str | Path, mode: str = "w", *, root: str | Path | None = None, create_dirs: bool = False) -> IO[Any]:
    """``open(path, mode)`` (``"w"``, ``"wb"``, ``"a"``, ``"ab"``) that follows no symlink: neither ``path``
    nor a folder between ``root`` (default: ``path``'s folder) and it; ``create_dirs`` makes missing folders."""
    path = Path(path)
    if mode.rstrip("b") not in ("w", "a"):
        raise ValueError(f"open_file writes or appends, got mode={mode!r}")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    folder = _folder(path, root, create_dirs)
    try:
        fd = folder.open(path.name, flags)
    finally:
        folder.close()
    return os.fdopen(fd, mode)


def _disk_full(err: OSError, path: Path, written: int, needed: int | None) -> DiskFullError:
    try:
        free = f"{shutil.disk_usage(path.parent).free / 1e6:.1f} MB free on that filesystem"
    except OSError:
        free = "free space unknown"
    need = f", about {needed / 1e6:.1f} MB in all" if needed else ""
    return DiskFullError(
        err.errno,
        f"{os.strerror(err.errno)}: writing {path} stopped after {written / 1e6:.1f} MB{need} ({free}); the partial "
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
                done += os.write(self.fd, view[done:])
        except OSError as err:
            self.error = self.error or err
            raise
        self.written += done
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
            if isinstance(cause, OSError) and cause.errno in _FULL:
                raise _disk_full(cause, path, file.written, needed) from err
            raise
        os.close(fd)
        try:
            os.replace(tmp, path.name, src_dir_fd=folder.fd, dst_dir_fd=folder.fd)
        except BaseException:
            folder.unlink(tmp)
            raise
        if fsync:
            os.fsync(folder.fd)
    finally:
        folder.close()


def write_atomic(path: str | Path, data: bytes | str, *, root: str | Path | None = None, fsync: bool = False,
                 create_dirs: bool = False) -> None:
    """Write ``data`` (``str``: UTF-8) to ``path`` with :func:`atomic_writer`."""
    with atomic_writer(path, root=root, fsync=fsync, create_dirs=create_dirs) as f:
        f.write(data.encode() if isinstance(data, str) else data)


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
        os.link(source.name, tmp, src_dir_fd=folder.fd, dst_dir_fd=folder.fd, follow_symlinks=False)
        os.replace(tmp, target.name, src_dir_fd=folder.fd, dst_dir_fd=folder.fd)
    finally:
        folder.close()
