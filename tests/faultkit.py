"""Test-only models and helpers for the fault, executor and safe-input tests.

The models are registered here (an importable module, not a test file) because run processes
and Dask workers import the module that registered a model before running it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sessbench import executors
from sessbench.models import SessionRecommender, register_model
from sessbench.results import comparable_record, iter_records
from sessbench.training import TorchSessionModel

SMALL = "synthetic:n_sessions=600,n_items=80"
#: a second small dataset: POP and S-POP run once per dataset (they do not depend on the seed), so
#: grids that need several cheap runs use two datasets instead of two seeds
SMALL2 = "synthetic:n_sessions=600,n_items=80,seed=1"
# CLI processes forked in tests print summary tables: import the report code once in the server
if "sessbench.report" not in executors.PRELOAD:
    executors.PRELOAD.append("sessbench.report")


class _Pop(SessionRecommender):
    def fit(self, data, ctx):
        self.counts = torch.from_numpy(data.item_popularity()).float()

    def score(self, batch):
        return self.counts.unsqueeze(0).expand(len(batch), -1)


@register_model("test-sleepy", groups=("test-only",), defaults={"seconds": 0.3})
class Sleepy(_Pop):
    """POP that takes `seconds` to fit (timeouts, concurrency)."""

    def fit(self, data, ctx):
        time.sleep(float(self.params["seconds"]))
        super().fit(data, ctx)


@register_model("test-oom", groups=("test-only",))
class OutOfMemory(_Pop):
    """Asks for 4 EiB in fit: numpy raises MemoryError without touching memory."""

    def fit(self, data, ctx):
        np.ones(2**62, dtype=np.uint8)


@register_model("test-crash", groups=("test-only",))
class Crash(_Pop):
    """Kills its own process in fit, as the kernel's out-of-memory killer would."""

    def fit(self, data, ctx):
        os.kill(os.getpid(), signal.SIGKILL)


@register_model("test-crash-once", groups=("test-only",), defaults={"marker": ""})
class CrashOnce(_Pop):
    """Dies the first time (creating `marker`), fits normally when retried."""

    def fit(self, data, ctx):
        marker = Path(self.params["marker"])
        if not marker.exists():
            marker.write_text("died once")
            os.kill(os.getpid(), signal.SIGKILL)
        super().fit(data, ctx)


@register_model("test-raises", groups=("test-only",))
class Raises(_Pop):
    def fit(self, data, ctx):
        raise ValueError("deliberate failure")


@register_model("test-huge", groups=("test-only",))
class Huge(_Pop):
    """Declares it needs 8 EiB: the memory check must refuse it before training."""

    fitted: list = []

    @classmethod
    def estimate_memory(cls, n_items: int, params: dict) -> int:
        return 8 * 2**60

    def fit(self, data, ctx):  # pragma: no cover - must never run
        Huge.fitted.append(1)
        raise AssertionError("trained although it cannot fit")


class _Table(torch.nn.Module):
    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(n + 1, dim)


@register_model("test-embedding", groups=("test-only",), defaults={"embedding_dim": 8, "epochs": 1})
class Embedding(TorchSessionModel):
    """A tiny torch model whose item table size is set by `embedding_dim` (generic estimate)."""

    def build(self, data):
        return _Table(data.n_items, int(self.params["embedding_dim"]))

    def forward_scores(self, module, batch):
        last = module.emb(batch.last_items)
        return last @ module.emb.weight.T


# ---------------------------------------------------------------------------- helpers
def _cli_child(argv: list[str], env: dict[str, str], log_path: str) -> None:
    """A forked `sessbench` process: main(argv) with `env`, stderr to `log_path`."""
    os.environ.update(env)
    with open(log_path, "w") as log, contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
        from sessbench.cli import main

        code = main(argv)
        log.flush()
    os._exit(code)


def cli_process(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> Any:
    """Start `sessbench ARGV` in a process forked from a preloaded server (no torch import cost)."""
    from sessbench.executors import _context

    ctx = _context()
    proc = ctx.Process(target=_cli_child, args=(argv, dict(env or {}), str(log_path)))
    proc.start()
    return proc


def run_cli(argv: list[str], log_path: Path, env: dict[str, str] | None = None, timeout: float = 300) -> int:
    proc = cli_process(argv, log_path, env)
    proc.join(timeout)
    if proc.is_alive():  # pragma: no cover - a hang is a failure
        proc.kill()
        proc.join()
        raise AssertionError(f"sessbench {' '.join(argv)} hung; log:\n{Path(log_path).read_text()}")
    return proc.exitcode


def comparable(runs_dir: Path) -> dict[str, dict]:
    """Records by run id without the fields that differ between identical runs (timing, pids)."""
    return {r["run_id"]: comparable_record(r) for r in iter_records(runs_dir)}


def ranks(runs_dir: Path) -> dict[str, tuple]:
    out = {}
    for path in sorted(Path(runs_dir).glob("*.ranks.npz")):
        with np.load(path, allow_pickle=False) as npz:
            out[path.name] = tuple(npz[k].tobytes() for k in sorted(npz.files))
    return out


def all_files(runs_dir: Path) -> list[str]:
    return sorted(p.name for p in Path(runs_dir).iterdir())

