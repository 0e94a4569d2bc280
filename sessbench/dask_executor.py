"""`--executor dask`: each run one task on a Dask distributed cluster.

Dask does the scheduling (and reaches Slurm, PBS, ... through dask-jobqueue); this module adds
what benchmark runs need on top of it, see `sessbench.executors` for the whole picture:
* each dataset is prepared once on the cluster before its runs, so data errors stop the grid
  at the start (exit code 2) and the runs find the split in the shared cache;
* runs of torch models meant for a GPU ask for one `GPU` worker resource;
* each task runs its run in a child process of the worker (`supervise`): timeouts, and one
  retry of a run whose process died, without taking the worker down;
* a task whose worker was lost (`KilledWorker`) is submitted once more, then recorded failed;
* the client (this process) holds the runs' claims and prints each record as it arrives.
Dask is an optional dependency: `pip install "sessbench[dask]"`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sessbench.errors import ConfigError, SessbenchError
from sessbench.executors import (
    MAX_ATTEMPTS,
    Executor,
    RunTask,
    _context,
    _task_runner,
    default_threads,
    make_task,
    run_task_here,
    supervise,
)
from sessbench.models import get_model
from sessbench.results import write_record
from sessbench.execution import REASON_EXCEPTION, REASON_WORKER_DIED, failed_record
from sessbench.planning import ORACLE, RunSpec
from sessbench.worker import Worker

log = logging.getLogger("sessbench.executors")


def _dask_prepare(request: Any, data_dir: str | None, cache_dir: str | None, force: bool) -> dict[str, Any]:
    """On a worker: prepare (cache) a dataset once before its runs; user errors come back as text."""
    from sessbench.data.registry import load_dataset

    try:
        loaded = load_dataset(
            request, None if data_dir is None else Path(data_dir), None if cache_dir is None else Path(cache_dir), force
        )
    except SessbenchError as exc:
        return {"error": str(exc)}
    return {"n_items": int(loaded.split.n_items)}


def _start_run_server() -> bool:
    """On a worker: start the run-process server now (it imports torch and the plugins once),
    so that it is ready when the first run arrives instead of delaying it."""
    ctx = _context()
    if ctx.get_start_method() != "forkserver":
        return False
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return True


def dask_run_task(task: RunTask) -> dict[str, Any]:
    """On a worker: one run, in a child process of the worker unless `isolated` is off."""
    if task.isolated or task.timeout_s is not None:
        return supervise(task)
    try:
        return run_task_here(task, reuse=True)
    except SessbenchError as exc:  # e.g. the raw data is missing on this worker
        runner = _task_runner(task)
        record = failed_record(runner.base_record(task.spec), REASON_EXCEPTION, type(exc).__name__, str(exc))
        write_record(runner.runs_dir, record)
        return record


def _is_torch_model(name: str) -> bool:
    from sessbench.training import TorchSessionModel

    return name != ORACLE and issubclass(get_model(name).cls, TorchSessionModel)


@dataclass
class DaskExecutor(Executor):
    """Each run one task on a Dask distributed cluster (see the module docstring).

    scheduler: address of a running scheduler (tcp://HOST:8786); None starts a local cluster
    with `jobs` single-threaded worker processes. `client` may be given instead (Python API).
    """

    scheduler: str | None = None
    jobs: int | None = None
    timeout_s: float | None = None
    threads: int | None = None
    client: Any = None
    #: run each task's run in a child process of the worker: a crashing model (segfault, OOM
    #: kill) then costs a retry, not the worker and the other tasks queued on it
    isolate: bool = True
    name: str = "dask"
    capacity: int | None = None
    _cluster: Any = None
    _own_client: bool = False
    _gpu_workers: bool = False
    _warm: list = field(default_factory=list)
    _token: str = field(default_factory=lambda: os.urandom(4).hex())

    def start(self, runner: Worker, specs: list[RunSpec]) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise SessbenchError(
                "--executor dask needs Dask distributed, which is not installed: pip install 'sessbench[dask]' "
                "(or pip install 'dask[distributed]')"
            ) from None
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError(f"--timeout must be a positive number of seconds, got {self.timeout_s}")
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines drown the runs' progress
        if self.client is None:
            if self.scheduler:
                try:
                    self.client = Client(self.scheduler)  # connect timeout: distributed.comm.timeouts.connect
                except (OSError, TimeoutError) as exc:
                    raise SessbenchError(
                        f"cannot reach the Dask scheduler at {self.scheduler} ({exc}). Start one "
                        "('dask scheduler' and 'dask worker tcp://HOST:8786'), or check --scheduler."
                    ) from None
            else:
                n = self.jobs or 1
                self._cluster = LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
                )
                self.client = Client(self._cluster)
                self.threads = self.threads or default_threads(n)
            self._own_client = True
        workers = self.client.scheduler_info().get("workers", {})
        self._gpu_workers = any("GPU" in (w.get("resources") or {}) for w in workers.values())
        if self.isolate:  # while the datasets are prepared, every worker starts its run-process server
            self._warm = [
                self.client.submit(_start_run_server, key=f"sessbench-warm-{self._token}-{i}", workers=[address],
                                   allow_other_workers=False, pure=False)
                for i, address in enumerate(workers)
            ]
        log.info("submitting %d runs to the Dask cluster at %s (%d workers)", len(specs),
                 self.client.scheduler.address, len(workers))

    def prepare(self, runner: Worker, specs: list[RunSpec]) -> None:
        """Prepare each dataset once on the cluster; data errors stop the grid here (exit code 2)."""
        requests = {spec.dataset.identity_key: spec.dataset for spec in specs}
        futures = {
            key: self.client.submit(
                _dask_prepare, request, None if runner.data_dir is None else str(runner.data_dir),
                None if runner.cache_dir is None else str(runner.cache_dir), runner.force_prepare,
                key=f"sessbench-prepare-{self._token}-{abs(hash(key))}", pure=False,
            )
            for key, request in requests.items()
        }
        for key, future in futures.items():
            result = future.result()
            if "error" in result:
                raise SessbenchError(result["error"])
            log.info("dataset %s ready on the cluster (%d items)", key, result["n_items"])

    def wants_gpu(self, spec: RunSpec) -> bool:
        device = str(spec.settings.device).lower()
        if device.startswith("cuda"):
            return True
        return device == "auto" and self._gpu_workers and _is_torch_model(spec.model)

    def submit(self, runner: Worker, spec: RunSpec) -> Future:
        task = make_task(
            runner, spec, self.name, threads=self.threads, timeout_s=self.timeout_s,
            check_memory=runner.check_memory, isolated=self.isolate,
        )
        outer: Future = Future()
        self._submit(runner, task, outer, 1)
        return outer

    def _submit(self, runner: Worker, task: RunTask, outer: Future, attempt: int) -> None:
        task = replace(task, attempt=attempt)
        future = self.client.submit(
            dask_run_task, task,
            key=f"sessbench-{task.spec.run_id}-{self._token}-a{attempt}",
            resources={"GPU": 1} if self.wants_gpu(task.spec) else None,
            pure=False,
        )
        future.add_done_callback(lambda f: self._done(runner, task, outer, attempt, f))

    def _done(self, runner: Worker, task: RunTask, outer: Future, attempt: int, future: Any) -> None:
        from distributed import KilledWorker

        try:
            try:
                outer.set_result(future.result())
                return
            except KilledWorker as exc:
                if attempt < MAX_ATTEMPTS:
                    log.warning("run %s: Dask reports its worker died (%s); retrying once", task.spec.run_id, exc)
                    self._submit(runner, task, outer, attempt + 1)
                    return
                reason, kind, message = REASON_WORKER_DIED, "WorkerDied", (
                    f"the Dask worker running it died (attempt {attempt} of {MAX_ATTEMPTS}): {exc}"
                )
            except Exception as exc:  # noqa: BLE001 - cancelled, lost: record it, keep the grid going
                reason, kind, message = REASON_EXCEPTION, type(exc).__name__, f"the Dask task failed: {exc}"
            log.error("run %s: %s", task.spec.run_id, message)
            record = failed_record({**runner.base_record(task.spec), "attempts": attempt}, reason, kind, message)
            try:
                write_record(runner.runs_dir, record)
            except OSError as exc:
                log.warning("could not write the failed record of %s here (%s)", task.spec.run_id, exc)
            outer.set_result(record)
        except BaseException as exc:  # noqa: BLE001 - never leave the driver waiting
            if not outer.done():
                outer.set_exception(exc)

    def close(self) -> None:
        self._warm = []
        if self._own_client and self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
            self.client = None
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()
            self._cluster = None
