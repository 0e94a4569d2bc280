"""The machine's memory: what is free now (cgroup limit, host, CUDA device) and a run's peak.

Apart from `sessbench.memory` (which estimates what a run needs from the model layer) so that
the data layer can check a synthetic dataset's size against free memory without importing models.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import torch


def gib(n: float) -> str:
    return f"{n / 2**30:,.2f} GiB" if n >= 2**28 else f"{n / 2**20:,.1f} MiB"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_free() -> int | None:
    """Memory left under this process's cgroup limit (containers, Slurm jobs), if limited."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        limit = _read_int(limit_file)
        usage = _read_int(usage_file)
        if limit is not None and usage is not None and limit < 2**60:
            return max(0, limit - usage)
    return None


def _host_free() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_bytes(device: torch.device) -> int | None:
    """Free memory of `device` now (None when it cannot be told)."""
    if device.type == "cuda":
        try:
            free, _total = torch.cuda.mem_get_info(device)
            return int(free)
        except (RuntimeError, AssertionError):
            return None
    if device.type != "cpu":
        return None
    candidates = [v for v in (_host_free(), _cgroup_free()) if v is not None]
    return min(candidates) if candidates else None


class PeakMemory:
    """Samples this process's resident memory in a background thread (Linux /proc; else ru_maxrss)."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._page = 4096
        try:
            self._page = os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            pass

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * self._page
        except OSError:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._rss())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        self.start_bytes = self._rss()
        self.peak_bytes = self.start_bytes
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._rss())
