"""Fail points: named places where a test can make this process die with SIGKILL.

Claims like "a grid killed at any moment resumes to the same records" are only worth something
if they are tested at the awkward moments: between writing a run's rank counts and its record,
after a temp file is complete but before it is renamed, while a cache entry is half written.
Timers cannot hit those windows reliably, so the code marks them with `failpoint(name)`, and a
test sets

    SESSBENCH_FAILPOINTS="record.before-rename=2,runner.after-ranks=1"

to have the process kill itself (SIGKILL: no cleanup, no `finally`, exactly like the kernel's
out-of-memory killer or a pulled plug) the N-th time it reaches that point. Unset, a fail point
costs one dictionary lookup.

`NAME=N:ERRNO` (e.g. `atomic.before-rename.json=3:ENOSPC`) raises `OSError(ERRNO)` there instead,
as the operating system would: a full disk or a read-only folder at the awkward moment, which a
test cannot otherwise produce on demand (and, running as root, cannot produce with chmod).

Points: `runner.before-fit`, `runner.after-ranks`, `runner.after-record` (record written, claim
not yet released), `runner.after-collect` (the coordinator got a record, claim not released); `atomic.before-rename` (any atomic write: temp file complete, not renamed)
and `atomic.before-rename.json` / `.npz` (records / rank counts only); `cache.before-manifest`
(split arrays written, manifest not), `cache.before-publish` (entry complete in its temp dir);
`training.after-checkpoint` (an epoch's checkpoint written, the next epoch not started).
"""

from __future__ import annotations

import errno
import os
import signal

ENV_VAR = "SESSBENCH_FAILPOINTS"

#: name -> (the hit that fires, errno to raise or None to SIGKILL)
_parsed: tuple[str, dict[str, tuple[int, int | None]]] = ("", {})
_hits: dict[str, int] = {}


def _targets() -> dict[str, tuple[int, int | None]]:
    global _parsed
    text = os.environ.get(ENV_VAR, "")
    if text != _parsed[0]:
        targets: dict[str, tuple[int, int | None]] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, spec = part.partition("=")
            count, _, code = spec.partition(":")
            targets[name.strip()] = (int(count) if count.strip() else 1, getattr(errno, code.strip()) if code.strip() else None)
        _parsed = (text, targets)
        _hits.clear()
    return _parsed[1]


def failpoint(name: str, path: str | None = None) -> None:
    """Kill this process with SIGKILL (or raise the armed OSError about `path`) if `name` is
    armed and reached for the armed time."""
    targets = _targets()
    if not targets or name not in targets:
        return
    _hits[name] = _hits.get(name, 0) + 1
    count, code = targets[name]
    if _hits[name] != count:
        return
    if code is not None:
        raise OSError(code, os.strerror(code), path)
    kill = getattr(signal, "SIGKILL", None)
    if kill is None:  # pragma: no cover - Windows has no SIGKILL
        os._exit(137)
    os.kill(os.getpid(), kill)
