"""Atomic file writes: a file appears at its path only once it is complete.

Every file sessbench writes that something later trusts (run records, rank counts, cache
entries, exports, checkpoints, reports) goes through `atomic_file`: the data is written to a
temporary file in the same folder, flushed to disk, and renamed over the target. A process
killed at any moment leaves either the old file or the whole new one, never a truncated one
(at most a hidden `.NAME.*.tmp` file, which no reader picks up).

Temp files name their writer (`.NAME.PID-HOST.XXXX.tmp`, HOST a short hash of the host name), so
a later run can delete the leftovers of killed writers without touching the temp file of a
writer that is still alive, on this machine or on another one sharing the folder (Dask workers).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from sessbench.faults import failpoint

TEMP_SUFFIX = ".tmp"
#: a temp file of a writer on another host is removed only when this old (its pid cannot be checked)
REMOTE_TEMP_AGE_S = 3600.0


def host_tag(hostname: str | None = None) -> str:
    """A short, dot-free tag of a host name (temp file names must not contain dots)."""
    return hashlib.sha1((hostname or socket.gethostname()).encode()).hexdigest()[:6]


def _file_mode() -> int:
    """The mode a plain open() would give a new file (mkstemp's is 0600, too strict to share)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file handle whose contents appear at `path` only when the block completes."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.{os.getpid()}-{host_tag()}.", suffix=TEMP_SUFFIX, dir=target.parent
    )
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb", buffering=1 << 20) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        failpoint("atomic.before-rename", str(target))
        failpoint(f"atomic.before-rename{target.suffix}", str(target))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_file(path) as fh:
        fh.write(data)


def json_default(value: Any) -> Any:
    """JSON for the values records and manifests hold in practice (numpy scalars, paths, sets)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n").encode())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete temp files that `atomic_file` left behind in `folder` when its writer was killed.

    Each temp file names its writer (`.NAME.PID-HOST.XXXX.tmp`; older files `.NAME.PID.XXXX.tmp`).
    Files of live processes on this host (a concurrent writer) are kept; files of another host
    are removed only once older than `REMOTE_TEMP_AGE_S`, since their pid means nothing here.
    Returns the files removed.
    """
    removed: list[Path] = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    local = host_tag()
    for path in root.glob(f".*{TEMP_SUFFIX}"):
        parts = path.name[: -len(TEMP_SUFFIX)].rsplit(".", 2)
        if len(parts) != 3:
            continue
        pid, _, tag = parts[1].partition("-")
        if not pid.isdigit():
            continue
        if tag and tag != local:
            try:
                if time.time() - path.stat().st_mtime < REMOTE_TEMP_AGE_S:
                    continue
            except OSError:
                continue
        elif _alive(int(pid)):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
