"""Faults of the environment's file system, told as one paragraph: what, where, how to fix.

A full disk, a read-only folder, a permission the user lacks or a file where a folder should be
are not bugs of sessbench and not mistakes in a model: they are the machine's state, the user
can fix them, and a traceback helps nobody. So they become a `StorageError` (a
`SessbenchError`: exit code 2, one paragraph) that names the file, the operating system's
reason and the fix. `check_folder` finds the common ones before any work starts (a `--runs-dir`
that is a file, or read-only); `describe_os_error` words the rest wherever they surface.

Only these error numbers count as the environment's (`ENVIRONMENT_ERRNOS`); any other
`OSError` stays a bug report with its traceback.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from sessbench.errors import SessbenchError

#: error numbers that describe the machine's state, with what the user can do about each
ENVIRONMENT_ERRNOS: dict[int, str] = {
    errno.ENOSPC: "the disk is full: free space on it, or use a folder on another disk",
    errno.EDQUOT: "your disk quota is used up: free space, or use a folder on another disk",
    errno.EROFS: "the file system is mounted read-only: use a folder on a writable disk",
    errno.EACCES: "this user may not access it: fix its permissions (chmod, chown) or use a folder you own",
    errno.EPERM: "this user may not access it: fix its permissions (chmod, chown) or use a folder you own",
    errno.ENOTDIR: "a file stands where a folder is needed: move the file away or choose another path",
    errno.EEXIST: "a file stands where a folder is needed: move the file away or choose another path",
    errno.EISDIR: "a folder stands where a file is needed: pass the file itself",
    errno.EIO: "the disk reported an input/output error: check the disk (dmesg) before going on",
}
#: the errors after which every further write on that disk fails too: a grid stops at once
FULL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class StorageError(SessbenchError):
    """The file system refused a read or write the user can make possible (see the module docstring)."""


def is_environment_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS


def reason_and_fix(exc: OSError) -> tuple[str, str]:
    """The operating system's reason for `exc` and what the user can do about it."""
    return exc.strerror or str(exc), ENVIRONMENT_ERRNOS.get(exc.errno or 0, "check the path and the disk")


def describe_os_error(exc: OSError, doing: str = "cannot access", path: str | os.PathLike[str] | None = None) -> str:
    """`<doing> <file>: <reason>. Fix: <fix>.` for an environment OSError."""
    where = path if path is not None else (exc.filename if exc.filename is not None else "a file")
    reason, fix = reason_and_fix(exc)
    return f"{doing} {where}: {reason}. Fix: {fix}."


def _existing_ancestor(path: Path) -> Path:
    """`path` or its nearest ancestor that exists (what creating `path` would write into)."""
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def probe_writable(folder: Path) -> None:
    """Create and delete a hidden file in `folder`: raises the OSError a real write would get."""
    fd, name = tempfile.mkstemp(prefix=".sessbench-probe-", dir=folder)
    os.close(fd)
    os.unlink(name)


def check_folder(path: str | os.PathLike[str], option: str, writable: bool = True) -> Path:
    """Refuse a folder option that cannot work: a file (or under one), or, when `writable`, a
    folder this process cannot write (read-only disk, permissions, full disk).

    Nothing is created: a folder that does not exist yet is checked through the nearest
    ancestor it would be created in.
    """
    folder = Path(path).expanduser()
    base = _existing_ancestor(folder)
    if not base.is_dir():
        raise StorageError(
            f"{option} {folder}: {base} is a file, not a folder. Fix: pass a folder "
            f"(an existing one, or a new path sessbench can create), or move {base} away."
        )
    if writable:
        try:
            probe_writable(base)
        except OSError as exc:
            reason, fix = reason_and_fix(exc)
            where = "" if base == folder else f" (tried in {base}, where it would be created)"
            raise StorageError(
                f"{option} {folder} cannot be written{where}: {reason}. Fix: {fix}, or pass another {option}."
            ) from None
    return folder
