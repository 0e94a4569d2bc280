"""Per-run claim files: several `sessbench run` processes can share one runs directory.

Records are written atomically, so two processes never leave a half-written record; claims
make them also not run the same run twice at once. Before a run starts, the coordinating
process (the `sessbench run` that plans the grid, whatever executor runs the work) claims it
with a hidden file `RUNS_DIR/.<run id>.claim` naming its host, pid and a per-process token, and
removes the file when the run's record is written. A process that finds a run claimed by
another one skips it for now and comes back to it at the end of its grid.

A claim of a process that died (SIGKILL, power loss) must not block the run forever. It counts
as stale, and is taken over at once, when:
* its holder ran on this host and that pid is gone (or a zombie);
* its holder ran on this host and that pid now belongs to another program: a claim records its
  holder's start time and the machine's boot id (Linux), and a live process with the same pid
  but another start time is an unrelated program that reused the pid (a claim without them, of
  an older sessbench, falls back to the command line: a pid running neither Python nor
  sessbench cannot be a holder);
* the file is garbled (not a claim): claims are written whole (temp file + rename), so no live
  writer leaves one half-written;
* the file was not refreshed for `stale_after_s` seconds: holders touch their claims every
  `heartbeat_s` seconds, so this catches holders on other hosts (a shared runs directory on a
  cluster).
A claim file that cannot be read at all (permissions) is reported at once with its path and
the fix, and waited on until it ages out.
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


#: key of what `read_claim` returns for a claim file it could not use: "garbled" or "unreadable"
PROBLEM = "_problem"


def read_claim(path: Path) -> dict[str, Any] | None:
    """The claim's content; None when there is no claim.

    A file that is not a claim gives {PROBLEM: "garbled", "detail": ...}; one that cannot be read
    (permissions, I/O) gives {PROBLEM: "unreadable", "detail": ...}.
    """
    try:
        data = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        return {PROBLEM: "unreadable", "detail": exc.strerror or str(exc)}
    except ValueError as exc:
        return {PROBLEM: "garbled", "detail": f"not JSON: {exc}"}
    if not isinstance(data, dict):
        return {PROBLEM: "garbled", "detail": f"a JSON {type(data).__name__}, not an object"}
    if not isinstance(data.get("pid"), int) or isinstance(data.get("pid"), bool) or not isinstance(data.get("host"), str) \
            or not isinstance(data.get("token"), str):
        return {PROBLEM: "garbled", "detail": "pid, host or token missing or of the wrong type"}
    return data


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (state first), or None without /proc or that process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host and is not a zombie."""
    if pid <= 0 or not _alive(pid):
        return False
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc (macOS) or it vanished meanwhile: trust kill(pid, 0)
    return fields[:1] != ["Z"]


def process_start(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (Linux; None elsewhere)."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields is not None else None  # field 22 of stat: starttime
    except (IndexError, ValueError):
        return None


def boot_id() -> str | None:
    """This boot of the machine (a pid and start time mean something within one boot only)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _command_line(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "no claim"
    if PROBLEM in info:
        return f"a {info[PROBLEM]} claim file ({info.get('detail')})"
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
        self._reported: set[str] = set()
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

    def stale_reason(self, info: dict[str, Any] | None, path: Path) -> str | None:
        """Why a claim no longer holds its run (see the module docstring), or None while it does."""
        if info is None:
            return "gone"
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return "gone"
        if age > self.stale_after_s:
            return f"not refreshed for {age:.0f} s"
        problem = info.get(PROBLEM)
        if problem == "garbled":
            return f"the file is garbled ({info.get('detail')}), so no live process holds it"
        if problem is not None:
            return None  # unreadable: reported by the caller, aged out rather than guessed
        if info.get("host") != self.host:
            return None
        pid = int(info["pid"])
        if not pid_alive(pid):
            return f"pid {pid} is no longer running"
        return _pid_reused(pid, info)

    def is_stale(self, info: dict[str, Any] | None, path: Path) -> bool:
        return self.stale_reason(info, path) is not None

    def acquire(self, run_id: str) -> bool:
        """Claim `run_id`; False when another live process holds it (or its claim file cannot be
        read: said at once, with the fix)."""
        path = claim_path(self.runs_dir, run_id)
        with self._locked():
            info = read_claim(path)
            if info is not None:
                if info.get("token") == self.token:
                    return True
                reason = self.stale_reason(info, path)
                if reason is None:
                    if info.get(PROBLEM) == "unreadable":
                        self._report_unreadable(run_id, path, info)
                    return False
                log.warning("taking over the claim on %s left by %s: %s", run_id, describe(info), reason)
            atomic_write_json(path, self._content(run_id))
        with self._guard:
            self._held.add(run_id)
        return True

    def _content(self, run_id: str) -> dict[str, Any]:
        """What a claim says: who holds it, and (Linux) when that process started in which boot,
        so a pid reused by another program is told apart from its holder."""
        out: dict[str, Any] = {
            "run_id": run_id, "host": self.host, "pid": self.pid, "token": self.token, "claimed_at": time.time(),
        }
        started, boot = process_start(self.pid), boot_id()
        if started is not None and boot is not None:
            out["process_start"], out["boot_id"] = started, boot
        return out

    def _report_unreadable(self, run_id: str, path: Path, info: dict[str, Any]) -> None:
        if run_id in self._reported:
            return
        self._reported.add(run_id)
        log.warning(
            "%s: the claim file %s cannot be read (%s), so sessbench cannot tell whether another process runs it; "
            "it waits until the file is %.0f s old. Fix: give this user read access to it, or delete it if no other "
            "sessbench run uses %s", run_id, path, info.get("detail"), self.stale_after_s, self.runs_dir,
        )

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
        """Remove stale claims of any run (killed processes, reused pids, garbled files); returns
        their run ids."""
        removed = []
        with self._locked():
            for path in self.runs_dir.glob(f".*{CLAIM_SUFFIX}"):
                info = read_claim(path)
                if info is None or info.get("token") == self.token:
                    continue
                reason = self.stale_reason(info, path)
                if reason is not None:
                    log.info("removing the claim file %s of %s: %s", path.name, describe(info), reason)
                    path.unlink(missing_ok=True)
                    removed.append(path.name[1 : -len(CLAIM_SUFFIX)])
        return removed

    def holder(self, run_id: str) -> dict[str, Any] | None:
        return read_claim(claim_path(self.runs_dir, run_id))

    @property
    def held(self) -> set[str]:
        with self._guard:
            return set(self._held)


def _pid_reused(pid: int, info: dict[str, Any]) -> str | None:
    """Why live process `pid` is not the claim's holder, or None when it may be."""
    claimed_start, claimed_boot = info.get("process_start"), info.get("boot_id")
    if claimed_start is not None and claimed_boot is not None:
        boot, start = boot_id(), process_start(pid)
        if boot is not None and boot != claimed_boot:
            return "the machine rebooted since it was written"
        if start is not None and start != claimed_start:
            return f"pid {pid} now belongs to another program (it started at another time than the claim's holder)"
        return None
    command = _command_line(pid)  # a claim of an older sessbench: judge by the command line
    if command and "python" not in command.lower() and "sessbench" not in command.lower():
        return f"pid {pid} now runs another program ({command.strip()[:60]})"
    return None
