"""Atomic file writes: a file appears at its path only once it is complete.

Every file sessbench writes that something later trusts (run records, rank counts, cache
entries, exports, checkpoints, reports) goes through `atomic_file`: the data is written to a
temporary file in the same folder, flushed to disk, and renamed over the target. A process
killed at any moment leaves either the old file or the whole new one, never a truncated one
(at most a hidden `.NAME.*.tmp` file, which no reader picks up).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

TEMP_SUFFIX = ".tmp"


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
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb", buffering=1 << 20) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
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

    Each temp file names its writer's pid (`.NAME.PID.XXXX.tmp`); files of live processes (a
    concurrent writer) are kept. Returns the files removed.
    """
    removed = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for path in root.glob(f".*{TEMP_SUFFIX}"):
        parts = path.name[: -len(TEMP_SUFFIX)].rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit() or _alive(int(parts[1])):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
