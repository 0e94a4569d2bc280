"""Where runs execute: in this process, in a local process pool, or on a Dask cluster.

Runs are independent, so spreading them is a scheduling problem an existing engine already
solves; sessbench adds only what benchmark runs need on top:

* `InProcessExecutor` (the default, `--executor local`): one run after the other in this
  process, as sessbench always did. A model that raises is recorded as failed; a run that
  segfaults or is killed takes the grid with it (rerun with `--resume`).
* `ProcessPoolExecutor` (`--jobs N`, also chosen by `--timeout`): up to N runs at a time, each
  in its own child process forked from a preloaded server (milliseconds per run, no torch
  import). A child that exceeds `--timeout` is killed and recorded as `failed` (reason
  `timeout`); a child that dies (segfault, the kernel's out-of-memory killer) is retried once,
  then recorded (`worker_died`); the grid goes on. Children exit when their parent dies, so a
  killed grid leaves no orphan still writing into the runs directory.
* `DaskExecutor` (`sessbench.dask_executor`, built on this module; `--executor dask [--scheduler tcp://HOST:8786]`): each run is one task on a
  Dask distributed cluster (which reaches Slurm, PBS, ... through dask-jobqueue); without
  `--scheduler` a local cluster of `--jobs` workers is started. Runs of torch models ask for
  one `GPU` worker resource when they are meant for a GPU, so two never share a card. Workers
  write the same atomic records into the shared runs directory; the client shows progress,
  holds the runs' claims and retries a task once when Dask reports its worker died
  (`KilledWorker`: a lost node). Each task runs its run in a child process of the worker as
  above (timeouts, one retry of a crashed run), so a crashing model never takes a worker, and
  the other tasks queued on it, down with it.

Every executor returns, per submitted run, a `concurrent.futures.Future` whose result is the
run's record (already written). `Runner.run` drives them (claims, resume, callbacks); executors
see only the `Worker` part of it (`sessbench.worker`), never the grid.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from sessbench.errors import ConfigError, SessbenchError
from sessbench.models import get_model, registered_models
from sessbench.results import read_record, record_path, write_record
from sessbench.execution import (
    REASON_EXCEPTION,
    REASON_INSUFFICIENT_MEMORY,
    REASON_TIMEOUT,
    REASON_WORKER_DIED,
    failed_record,
)
from sessbench.planning import ORACLE, RunSpec
from sessbench.worker import Worker

log = logging.getLogger("sessbench.executors")

#: how often a run whose process died is started again before it is recorded as failed
MAX_ATTEMPTS = 2


# ---------------------------------------------------------------------------- the task


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs to execute one run and write its record (picklable)."""

    spec: RunSpec
    runs_dir: str
    data_dir: str | None
    cache_dir: str | None
    command: str
    worker_kind: str
    threads: int | None = None
    timeout_s: float | None = None
    check_memory: bool = False
    modules: tuple[str, ...] = ()
    sys_path: tuple[str, ...] = ()
    attempt: int = 1
    isolated: bool = False
    #: SESSBENCH_* variables of the coordinator (local run processes fork from a server started
    #: earlier, whose environment may be older); None leaves the worker's environment alone
    env: dict[str, str] | None = None


def _plugin_modules(specs: list[RunSpec]) -> tuple[str, ...]:
    """Modules that registered the plan's models, for workers to import (plugins outside entry points)."""
    modules = []
    for spec in specs:
        if spec.model == ORACLE:
            continue
        source = get_model(spec.model).source
        if source and source != "__main__":
            modules.append(source)
    return tuple(dict.fromkeys(modules))


def make_task(runner: Worker, spec: RunSpec, kind: str, **extra: Any) -> RunTask:
    return RunTask(
        spec=spec,
        runs_dir=str(runner.runs_dir),
        data_dir=None if runner.data_dir is None else str(runner.data_dir),
        cache_dir=None if runner.cache_dir is None else str(runner.cache_dir),
        command=runner.command,
        worker_kind=kind,
        modules=_plugin_modules([spec]),
        sys_path=tuple(sys.path),
        **extra,
    )


def _task_runner(task: RunTask, keep_datasets: bool = False) -> Worker:
    return Worker(
        runs_dir=Path(task.runs_dir),
        data_dir=None if task.data_dir is None else Path(task.data_dir),
        cache_dir=None if task.cache_dir is None else Path(task.cache_dir),
        command=task.command,
        worker_kind=task.worker_kind,
        keep_datasets=keep_datasets,
        check_memory=task.check_memory,
    )


def sessbench_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("SESSBENCH_")}


def _apply_env(task: RunTask) -> None:
    if task.env is None:
        return
    for key in [k for k in os.environ if k.startswith("SESSBENCH_") and k not in task.env]:
        del os.environ[key]
    os.environ.update(task.env)


def _import_modules(task: RunTask) -> None:
    for entry in task.sys_path:
        if entry not in sys.path and (entry == "" or os.path.isdir(entry)):
            sys.path.append(entry)
    for module in task.modules:
        importlib.import_module(module)


#: one Worker per worker process and runs directory, so a worker reuses its loaded dataset
_WORKER_RUNNERS: dict[tuple[str | None, ...], Worker] = {}
_WORKER_LOCK = threading.Lock()


def _reused_runner(task: RunTask) -> Worker:
    key = (task.runs_dir, task.data_dir, task.cache_dir)
    with _WORKER_LOCK:
        runner = _WORKER_RUNNERS.get(key)
        if runner is None:
            runner = _WORKER_RUNNERS[key] = _task_runner(task, keep_datasets=True)
        runner.command, runner.worker_kind, runner.check_memory = task.command, task.worker_kind, task.check_memory
        if task.spec.dataset.identity_key not in runner._datasets:
            runner._datasets.clear()  # plans are dataset-major: keep only the current dataset
        return runner


def run_task_here(task: RunTask, reuse: bool = False) -> dict[str, Any]:
    """Execute `task` in this process and write its record; returns the record.

    A model failure becomes a failed record; a user error (missing data on this worker)
    raises `SessbenchError`.
    """
    _apply_env(task)
    _import_modules(task)
    if task.threads:
        torch.set_num_threads(task.threads)
    runner = _reused_runner(task) if reuse else _task_runner(task, keep_datasets=True)
    spec = task.spec
    extra = {"attempts": task.attempt} if task.isolated or task.attempt > 1 else {}
    if spec.model != ORACLE and spec.model not in registered_models():
        message = (
            f"model '{spec.model}' is not registered in this worker process (host {runner.base_record(spec)['worker']['host']}): "
            "install the package that provides it on every worker"
        )
        record = failed_record({**runner.base_record(spec), **extra}, REASON_EXCEPTION, "UnknownModel", message)
        write_record(runner.runs_dir, record)
        return record
    if task.check_memory:
        loaded = runner.dataset(spec.dataset)
        try:
            runner.check_run_memory([spec], loaded.split.n_items)
        except SessbenchError as exc:
            record = failed_record({**runner.base_record(spec), **extra}, REASON_INSUFFICIENT_MEMORY, "InsufficientMemory", str(exc))
            write_record(runner.runs_dir, record)
            return record
    return runner.execute(spec, extra)


# ---------------------------------------------------------------------------- isolated runs


#: modules the run-process server imports once (effective before it starts)
PRELOAD = ["sessbench.worker_preload"]


def _context() -> multiprocessing.context.BaseContext:
    """forkserver where available: each run forks from a server that has already imported
    sessbench and torch (milliseconds, no inherited threads); spawn elsewhere."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD))
        return ctx
    return multiprocessing.get_context("spawn")


_DAEMON_LOCK = threading.Lock()


@contextlib.contextmanager
def _children_allowed() -> Any:
    """Let a daemonic process (a Dask worker) start run processes.

    multiprocessing forbids daemonic processes to have children, because a daemon is killed
    without cleaning up after itself and its children would live on as orphans. Run processes
    watch their parent and exit the moment it dies, so that concern does not apply to them.
    """
    with _DAEMON_LOCK:  # several worker threads may start run processes at once
        config = multiprocessing.current_process()._config  # noqa: SLF001 - see docstring
        daemon = config.get("daemon")
        config["daemon"] = False
        try:
            yield
        finally:
            if daemon is not None:
                config["daemon"] = daemon


def _exit_with_parent() -> None:
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(70)

    threading.Thread(target=watch, name="sessbench-parent-watch", daemon=True).start()


def _child_main(task: RunTask, conn: Any) -> None:
    """Entry point of a run process: run the task, send the record (or the error) back."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpgid(0, 0)  # its own process group, so a timeout kills everything it started
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _exit_with_parent()
    try:
        message: tuple[str, Any] = ("record", run_task_here(task))
    except SessbenchError as exc:
        message = ("user-error", str(exc))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        message = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    try:
        conn.send(message)
    finally:
        conn.close()


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "unknown"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (what the kernel's out-of-memory killer sends)" if -exitcode == getattr(signal, "SIGKILL", 9) else ""
        return f"killed by {name}{hint}"
    return f"exit code {exitcode}"


class Children:
    """The live run processes of one executor, so they can be killed on Ctrl-C or shutdown."""

    def __init__(self) -> None:
        self._procs: set[Any] = set()
        self._lock = threading.Lock()
        self.closed = False

    def add(self, proc: Any) -> None:
        with self._lock:
            self._procs.add(proc)

    def discard(self, proc: Any) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill_all(self) -> None:
        with self._lock:
            self.closed = True
            procs = list(self._procs)
        for proc in procs:
            _kill(proc)


def _kill(proc: Any) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.kill()
    proc.join()


@dataclass
class _Outcome:
    kind: str  # "record" | "user-error" | "error" | "timeout" | "died"
    value: Any = None


def _run_child(task: RunTask, children: Children | None) -> _Outcome:
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(task, sender), name=f"sessbench-{task.spec.model}", daemon=False)
    with _children_allowed():
        proc.start()
    sender.close()
    if children is not None:
        children.add(proc)
    try:
        deadline = None if task.timeout_s is None else time.monotonic() + task.timeout_s
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = multiprocessing.connection.wait([receiver, proc.sentinel], timeout=left)
            if receiver in ready or receiver.poll():
                try:
                    kind, value = receiver.recv()
                except (EOFError, OSError):
                    proc.join()
                    return _Outcome("died", proc.exitcode)
                proc.join()
                return _Outcome(kind, value)
            if proc.sentinel in ready:
                proc.join()
                return _Outcome("died", proc.exitcode)
            if deadline is not None and time.monotonic() >= deadline:
                _kill(proc)
                return _Outcome("timeout")
    finally:
        receiver.close()
        if children is not None:
            children.discard(proc)
        if proc.is_alive():
            _kill(proc)


def _written_since(task: RunTask, since: float) -> dict[str, Any] | None:
    """The record a process wrote before dying (it may die right after writing it)."""
    path = record_path(Path(task.runs_dir), task.spec.run_id)
    try:
        if path.stat().st_mtime < since:
            return None
    except FileNotFoundError:
        return None
    return read_record(path)


def supervise(task: RunTask, children: Children | None = None) -> dict[str, Any]:
    """Execute `task` in a child process: timeouts and deaths become failed records.

    A child that dies is started once more (`MAX_ATTEMPTS`); a timeout is final (the run
    would only time out again).
    """
    runner = _task_runner(task)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        attempt_task = replace(task, attempt=attempt, isolated=True)
        started = time.time()
        if children is not None and children.closed:
            raise KeyboardInterrupt
        outcome = _run_child(attempt_task, children)
        if outcome.kind == "record":
            return outcome.value
        if outcome.kind == "user-error":
            raise SessbenchError(outcome.value)
        base = {**runner.base_record(task.spec), "attempts": attempt}
        if outcome.kind == "error":  # outside the model (the model's own errors are records)
            record = failed_record(base, REASON_EXCEPTION, "WorkerError", outcome.value.splitlines()[0], outcome.value)
            write_record(runner.runs_dir, record)
            return record
        if outcome.kind == "timeout":
            message = f"the run exceeded --timeout {task.timeout_s:g} s and was stopped"
            log.error("run %s: %s", task.spec.run_id, message)
            record = failed_record(base, REASON_TIMEOUT, "Timeout", message)
            write_record(runner.runs_dir, record)
            return record
        written = _written_since(attempt_task, started - 1)
        if written is not None:  # it died right after writing its record: the record stands
            return written
        if children is not None and children.closed:
            raise KeyboardInterrupt
        how = _signal_name(outcome.value)
        if attempt < MAX_ATTEMPTS:
            log.warning("run %s: its process died (%s); retrying once", task.spec.run_id, how)
            continue
        message = f"the process running it died {MAX_ATTEMPTS} times ({how})"
        log.error("run %s: %s", task.spec.run_id, message)
        record = failed_record(base, REASON_WORKER_DIED, "WorkerDied", message)
        write_record(runner.runs_dir, record)
        return record
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------------------- executors


class Executor:
    """Base: `start`, `prepare` (data and memory checks before any run), `submit`, `close`."""

    name = "local"
    #: most runs in flight at once (None: no limit, the engine queues them)
    capacity: int | None = 1

    def start(self, runner: Worker, specs: list[RunSpec]) -> None:
        pass

    def prepare(self, runner: Worker, specs: list[RunSpec]) -> None:
        runner.prepare(specs, keep=False)

    def submit(self, runner: Worker, spec: RunSpec) -> Future:
        raise NotImplementedError

    def close(self) -> None:
        pass


class InProcessExecutor(Executor):
    """One run after the other in this process (the default)."""

    name = "local"
    capacity = 1

    def prepare(self, runner: Worker, specs: list[RunSpec]) -> None:
        runner.prepare(specs, keep=True)

    def submit(self, runner: Worker, spec: RunSpec) -> Future:
        future: Future = Future()
        try:
            future.set_result(runner.execute(spec))
        except BaseException as exc:  # noqa: BLE001 - re-raised by the driver through result()
            future.set_exception(exc)
        return future


def default_threads(jobs: int) -> int:
    """Torch threads per run when N runs share the machine: the cores divided among them."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


#: environment variable that sets the default --jobs (e.g. 1 to keep every run in this process)
JOBS_ENV = "SESSBENCH_JOBS"


def choose_parallelism(
    n_runs: int, on_gpu: bool, jobs: int | None = None, threads: int | None = None, cores: int | None = None,
) -> tuple[int, int]:
    """(runs at a time, torch threads per run) so that a grid never oversubscribes the cores.

    Torch's default (a thread per core in every run) makes two runs on two cores spin-wait on each
    other: measured 5-20x slower than one thread per run. So by default a CPU grid runs one run
    per core, each with cores // jobs threads (on 2 cores: 2 runs at a time, 1 thread each); a GPU
    grid runs one run at a time (runs would share the card). `--jobs` / `--threads` (or
    $SESSBENCH_JOBS) override either; given one, the other follows from it.
    """
    cores = cores or os.cpu_count() or 1
    if jobs is None:
        env = os.environ.get(JOBS_ENV, "").strip()
        if env:
            try:
                jobs = int(env)
                if jobs < 1:
                    raise ValueError
            except ValueError:
                raise ConfigError(f"${JOBS_ENV}={env!r}: expected a positive number of runs at a time") from None
    if jobs is None:
        jobs = 1 if on_gpu else max(1, min(n_runs, cores // (threads or 1)))
    if threads is None:
        threads = max(1, cores // jobs)
    return jobs, threads


class ProcessPoolExecutor(Executor):
    """Up to `jobs` runs at a time, each in its own child process (see the module docstring)."""

    name = "process-pool"

    def __init__(self, jobs: int = 1, timeout_s: float | None = None, threads: int | None = None) -> None:
        if jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, got {jobs}")
        if timeout_s is not None and timeout_s <= 0:
            raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout_s}")
        self.jobs = jobs
        self.capacity = jobs
        self.timeout_s = timeout_s
        self.threads = threads or default_threads(jobs)
        self._pool: ThreadPoolExecutor | None = None
        self._children = Children()

    def start(self, runner: Worker, specs: list[RunSpec]) -> None:
        self._children = Children()
        self._pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="sessbench-run")

    def submit(self, runner: Worker, spec: RunSpec) -> Future:
        assert self._pool is not None, "start() first"
        task = make_task(runner, spec, self.name, threads=self.threads, timeout_s=self.timeout_s, env=sessbench_env())
        return self._pool.submit(supervise, task, self._children)

    def close(self) -> None:
        self._children.kill_all()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
