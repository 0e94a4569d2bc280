"""The executor a grid's options ask for (`--executor`, `--jobs`, `--timeout`, `--scheduler`).

Kept apart from `sessbench.executors` (the local executors) and `sessbench.dask_executor` (built
on them), so that choosing one imports both without either importing the other.
"""

from __future__ import annotations

from sessbench.errors import ConfigError, UnknownNameError
from sessbench.executors import Executor, InProcessExecutor, ProcessPoolExecutor

EXECUTORS = ("local", "dask")


def make_executor(
    kind: str = "local",
    jobs: int | None = None,
    timeout_s: float | None = None,
    scheduler: str | None = None,
    threads: int | None = None,
) -> Executor:
    """The executor the `run` options ask for (`--executor`, `--jobs`, `--timeout`, `--scheduler`)."""
    if kind not in EXECUTORS:
        raise UnknownNameError("executor", kind, EXECUTORS)
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    if timeout_s is not None and timeout_s <= 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout_s}")
    if kind == "dask":
        from sessbench.dask_executor import DaskExecutor  # only when asked: dask is an optional extra

        return DaskExecutor(scheduler=scheduler, jobs=jobs, timeout_s=timeout_s, threads=threads)
    if scheduler:
        raise ConfigError("--scheduler needs --executor dask")
    if jobs is None and timeout_s is None:
        return InProcessExecutor()
    return ProcessPoolExecutor(jobs=jobs or 1, timeout_s=timeout_s, threads=threads)
