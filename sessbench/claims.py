"""Per-run claim files: several `sessbench run` processes can share one runs directory.

Records are written atomically, so two processes never leave a half-written record; claims
make them also not run the same run twice at once. Before a run starts, the coordinating
process (the `sessbench run` that plans the grid, whatever executor runs the work) claims it
with a hidden file `RUNS_DIR/.<run id>.claim` naming its host, pid and a per-process token, and
removes the file when the run's record is written. A process that finds a run claimed by
another one skips it for now and comes back to it at the end of its grid.

A claim of a process that died (SIGKILL, power loss) must not block the run forever. It counts
as stale, and is taken over, when:
* its holder ran on this host and that pid is gone (or a zombie), or
* the file was not refreshed for `stale_after_s` seconds: holders touch their claims every
  `heartbeat_s` seconds, so this catches holders on other hosts (a shared runs directory on a
  cluster) and pids reused by unrelated processes.
Checking and taking over happen under an exclusive `flock` on `RUNS_DIR/.claims.lock`, held for
milliseconds, so two processes cannot both take over one stale claim. The kernel releases that
lock when its holder dies, so the lock itself can never go stale. (Without `fcntl`, on Windows,
claims still work; only two simultaneous takeovers of one stale claim could race.)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from sessbench.atomic import _alive, atomic_write_json

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

CLAIM_SUFFIX = ".claim"
LOCK_NAME = ".claims.lock"
DEFAULT_STALE_AFTER_S = 600.0
DEFAULT_HEARTBEAT_S = 60.0

log = logging.getLogger("sessbench.claims")


def claim_path(runs_dir: Path, run_id: str) -> Path:
    return Path(runs_dir) / f".{run_id}{CLAIM_SUFFIX}"


def read_claim(path: Path) -> dict[str, Any] | None:
    """The claim's content; None when there is no claim, {} when it is unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host and is not a zombie."""
    if pid <= 0 or not _alive(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS) or it vanished meanwhile: trust kill(pid, 0)
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "an unreadable claim"
    return f"pid {info.get('pid')} on {info.get('host')}"


class Claims:
    """The claims one coordinating process holds in one runs directory (a context manager)."""

    def __init__(
        self,
        runs_dir: Path,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
    ) -> None:
        self.runs_dir = Path(runs_dir)
        self.stale_after_s = stale_after_s
        self.heartbeat_s = heartbeat_s
        self.token = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._held: set[str] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Claims":
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._heartbeat, name="sessbench-claims", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the heartbeat and release every claim still held (runs not finished stay unclaimed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._guard:
            held = list(self._held)
        for run_id in held:
            self.release(run_id)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._guard:
                held = list(self._held)
            for run_id in held:
                with contextlib.suppress(OSError):
                    os.utime(claim_path(self.runs_dir, run_id))

    # ------------------------------------------------------------------ claims
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover - Windows
            yield
            return
        fd = os.open(self.runs_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def is_stale(self, info: dict[str, Any] | None, path: Path) -> bool:
        if info is None:
            return True
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return True
        if age > self.stale_after_s:
            return True
        if not info:
            return False  # unreadable but fresh: let it age out rather than guess
        if info.get("host") == self.host:
            return not pid_alive(int(info.get("pid", -1)))
        return False

    def acquire(self, run_id: str) -> bool:
        """Claim `run_id`; False when another live process holds it."""
        path = claim_path(self.runs_dir, run_id)
        with self._locked():
            info = read_claim(path)
            if info is not None:
                if info.get("token") == self.token:
                    return True
                if not self.is_stale(info, path):
                    return False
                log.warning("taking over the claim on %s left by %s (no longer running)", run_id, describe(info))
            atomic_write_json(
                path,
                {
                    "run_id": run_id,
                    "host": self.host,
                    "pid": self.pid,
                    "token": self.token,
                    "claimed_at": time.time(),
                },
            )
        with self._guard:
            self._held.add(run_id)
        return True

    def release(self, run_id: str) -> None:
        """Remove our claim on `run_id` (a claim taken over by someone else is left alone)."""
        path = claim_path(self.runs_dir, run_id)
        with self._guard:
            self._held.discard(run_id)
        with self._locked():
            info = read_claim(path)
            if info is not None and info.get("token") == self.token:
                path.unlink(missing_ok=True)

    def sweep(self) -> list[str]:
        """Remove stale claims of any run (killed processes); returns their run ids."""
        removed = []
        with self._locked():
            for path in self.runs_dir.glob(f".*{CLAIM_SUFFIX}"):
                info = read_claim(path)
                if info is not None and info.get("token") != self.token and self.is_stale(info, path):
                    path.unlink(missing_ok=True)
                    removed.append(path.name[1 : -len(CLAIM_SUFFIX)])
        return removed

    def holder(self, run_id: str) -> dict[str, Any] | None:
        return read_claim(claim_path(self.runs_dir, run_id))

    @property
    def held(self) -> set[str]:
        with self._guard:
            return set(self._held)
