"""The grid: claims, resume, executors and progress over the runs of a plan.

Planning (specs and run ids) lives in `sessbench.planning`, and one run (data -> fit -> evaluate ->
record) in `sessbench.execution`; this module drives many runs. Finished records are never
rewritten by `--resume`, and a failing model becomes a `failed` record (with the reason:
exception, out of memory, timeout, worker died) while the grid goes on.

Where runs execute is the executor's business (`sessbench.executors`): in this process (the
default), in a local process pool (`--jobs N`, needed for `--timeout`), or on a Dask cluster.
Whatever the executor, `Runner.run`:
1. resolves each dataset's source (by content, `sessbench.data.sources`) so run ids cover it,
   and says which records of the same runs were made from other data (they are not reused);
2. removes temp files that killed writers left in the runs directory;
3. prepares every dataset of the plan and checks that each run fits the device's memory, so bad
   input stops the grid before any training (`SessbenchError`, exit code 2);
4. claims each run (`sessbench.claims`) before it starts, so two `sessbench run` processes on
   one runs directory neither corrupt each other nor run one run twice at once, and comes back
   at the end to runs that another process held. A run whose record another process wrote
   during this grid is not run again, with or without `--resume` (the record's file is compared
   with what was there when the grid started, not by clocks).

A folder that cannot be written (`--runs-dir`, the cache, the checkpoints) stops the grid before
anything runs, and a full or read-only disk met during the grid stops it at once
(`sessbench.storage.StorageError`, exit code 2): the records already written are complete, the
run that met it is not recorded, and `--resume` later runs what is left.
"""

from __future__ import annotations

import logging
import re
import shlex
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable


from sessbench.atomic import remove_stale_temp_files
from sessbench.claims import DEFAULT_STALE_AFTER_S, Claims, describe
from sessbench.data.registry import DatasetRequest, LoadedDataset, dataset_stats, load_dataset, resolve_source, size_warning
from sessbench.execution import (  # noqa: F401 - re-exported: the names this module always offered
    REASON_EXCEPTION,
    REASON_INSUFFICIENT_MEMORY,
    REASON_OUT_OF_MEMORY,
    REASON_TIMEOUT,
    REASON_WORKER_DIED,
    base_record,
    failed_record,
    failure_reason,
    paper_best,
    remove_checkpoints,
    run_one,
    seed_everything,
    worker_info,
)
from sessbench.faults import failpoint
from sessbench.memory import PeakMemory  # noqa: F401 - re-exported
from sessbench.models import get_model
from sessbench.planning import ORACLE, REFERENCE_MODEL, RunSettings, RunSpec, plan_runs, seed_dependent  # noqa: F401 - re-exported
from sessbench.progress import ProgressFactory, null_progress
from sessbench.results import (
    SPLITS_FOLDER, is_finished, ranks_path, read_record, record_path, recs_path, save_split_examples, split_table_id,
    write_record,
)
from sessbench.storage import FULL_DISK_ERRNOS, StorageError, check_folder, is_environment_error, reason_and_fix
from sessbench.training import resolve_device

#: seconds between checks on runs that another process holds
CLAIM_POLL_S = 0.5
CHECKPOINTS_FOLDER = "checkpoints"
log = logging.getLogger("sessbench.runner")


@dataclass
class Runner:
    """Executes a plan (see the module docstring).

    executor: where runs execute (`sessbench.executors`); None runs them in this process.
    check_memory: estimate each run's memory before training and refuse runs that cannot fit.
    claim_stale_after_s: a claim not refreshed for this long counts as abandoned.
    worker_kind: written to each record's `worker.executor`.
    keep_datasets: keep loaded datasets in memory for the next run (False in one-run workers).
    """

    runs_dir: Path
    data_dir: Path | None = None
    cache_dir: Path | None = None
    force_prepare: bool = False
    resume: bool = False
    progress: ProgressFactory = null_progress
    command: str = field(default_factory=lambda: shlex.join(["sessbench", *sys.argv[1:]]))
    executor: Any = None
    check_memory: bool = True
    claim_stale_after_s: float = DEFAULT_STALE_AFTER_S
    worker_kind: str = "local"
    keep_datasets: bool = True
    #: where epoch checkpoints of unfinished runs live (default: <cache dir>/checkpoints)
    checkpoint_dir: Path | None = None
    _datasets: dict[str, LoadedDataset] = field(default_factory=dict)
    #: each planned run's record file (inode, mtime, size) when this grid started; None when absent
    _stamps: dict[str, tuple[int, int, int] | None] = field(default_factory=dict, repr=False)
    #: runs skipped because another process wrote their record during this grid
    done_elsewhere: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.checkpoint_dir is None:
            from sessbench.data.cache import default_cache_dir

            self.checkpoint_dir = default_cache_dir(self.cache_dir) / CHECKPOINTS_FOLDER

    def dataset(self, request: DatasetRequest) -> LoadedDataset:
        request = resolve_source(request, self.data_dir, self.cache_dir)
        if request.identity_key in self._datasets:
            return self._datasets[request.identity_key]
        log.info("preparing dataset %s (%s)", request.key, request.source.describe() if request.source else "")
        loaded = load_dataset(
            request, self.data_dir, self.cache_dir, self.force_prepare, logger=log, progress=self.progress
        )
        if self.keep_datasets:
            self._datasets[request.identity_key] = loaded
        return loaded

    def resolve(self, plan: Iterable[RunSpec]) -> list[RunSpec]:
        """The plan with every dataset's source resolved (run ids then cover the data's content)."""
        resolved: dict[str, DatasetRequest] = {}
        out = []
        for spec in plan:
            key = repr(spec.dataset)
            if key not in resolved:
                resolved[key] = resolve_source(spec.dataset, self.data_dir, self.cache_dir)
            out.append(spec if spec.dataset.source is not None else replace(spec, dataset=resolved[key]))
        return out

    # ------------------------------------------------------------------ the grid
    def run(self, plan: Iterable[RunSpec], on_record: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """Execute every run of `plan`; returns the records written (skipped runs excluded)."""
        from sessbench.executors import InProcessExecutor

        plan = self.resolve(plan)
        self.runs_dir = Path(self.runs_dir)
        self.check_folders()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        for folder in (self.runs_dir, self.runs_dir / SPLITS_FOLDER):
            for path in remove_stale_temp_files(folder) if folder.is_dir() else []:
                log.info("removed %s, left by a killed run", path.name)
        for run_id in Claims(self.runs_dir, stale_after_s=self.claim_stale_after_s).sweep():
            log.info("removed the claim on %s, left by a killed process", run_id)
        todo = []
        for spec in plan:
            if self.resume and self._finished(spec):
                log.info("skip %s (finished; --resume)", spec.run_id)
            else:
                if self.resume:
                    self._say_other_data(spec)
                todo.append(spec)
        if not todo:
            return []
        self._stamps = {spec.run_id: _stamp(record_path(self.runs_dir, spec.run_id)) for spec in todo}
        self.done_elsewhere = []
        executor = self.executor if self.executor is not None else InProcessExecutor()
        executor.start(self, todo)
        try:
            executor.prepare(self, todo)
            with Claims(self.runs_dir, stale_after_s=self.claim_stale_after_s) as claims:
                try:
                    records = self._drive(todo, executor, claims, on_record)
                finally:
                    executor.close()  # stop run processes before their claims are released
        finally:
            executor.close()
        if self.done_elsewhere:
            log.warning(
                "%d of %d run(s) were run by another sessbench process on %s during this grid; their records are "
                "kept and they were not run again", len(self.done_elsewhere), len(todo), self.runs_dir,
            )
        return records

    def check_folders(self) -> None:
        """Refuse, before any work, folders the grid must write and cannot: the runs directory,
        the cache and the checkpoints (a file in the way, a read-only disk, permissions)."""
        from sessbench.data.cache import default_cache_dir

        check_folder(self.runs_dir, "--runs-dir")
        check_folder(default_cache_dir(self.cache_dir), "--cache-dir")
        if self.checkpoint_dir is not None:
            check_folder(self.checkpoint_dir, "--checkpoint-dir")

    def prepare(self, plan: list[RunSpec], keep: bool = True) -> None:
        """Prepare each dataset of `plan` (or load it from the cache) and check memory, before any run.

        keep=False drops each split after its check (the runs load it themselves elsewhere).
        """
        for device in dict.fromkeys(spec.settings.device for spec in plan):
            resolve_device(device)  # a device this machine lacks is an error before any preparation
        by_dataset: dict[str, list[RunSpec]] = {}
        for spec in plan:
            by_dataset.setdefault(spec.dataset.identity_key, []).append(spec)
        for specs in by_dataset.values():
            request = specs[0].dataset
            loaded = self.dataset(request) if keep else load_dataset(
                request, self.data_dir, self.cache_dir, self.force_prepare, logger=log, progress=self.progress
            )
            self.save_split_examples(loaded)
            warning = size_warning(request.definition, dataset_stats(loaded.split),
                                   None if loaded.request.source is None else loaded.request.source.kind)
            if warning:
                log.warning(warning)
            if self.check_memory:
                self.check_run_memory(specs, loaded.split.n_items)

    def check_run_memory(self, specs: list[RunSpec], n_items: int) -> None:
        from sessbench.memory import check_memory, estimate_run_memory

        estimates = []
        for spec in specs:
            cls = None if spec.model == ORACLE else get_model(spec.model).cls
            estimates.append(estimate_run_memory(
                spec.model, cls, spec.params, n_items, spec.dataset.key,
                resolve_device(spec.settings.device), spec.settings.eval_batch_size,
            ))
        check_memory(estimates)

    def _drive(
        self,
        specs: list[RunSpec],
        executor: Any,
        claims: Claims,
        on_record: Callable[[dict[str, Any]], None] | None,
    ) -> list[dict[str, Any]]:
        """Claim, submit and collect runs; come back to runs held by other processes at the end."""
        records: list[dict[str, Any]] = []
        pending: deque[RunSpec] = deque(specs)
        waiting: list[RunSpec] = []  # claimed by another live process
        waited: set[str] = set()
        in_flight: dict[Future, RunSpec] = {}
        capacity = executor.capacity
        while pending or in_flight or waiting:
            while pending and (capacity is None or len(in_flight) < capacity):
                spec = pending.popleft()
                if not claims.acquire(spec.run_id):
                    if spec.run_id not in waited:
                        log.info("%s is being run by %s; coming back to it later", spec.run_id,
                                 describe(claims.holder(spec.run_id)))
                        waited.add(spec.run_id)
                    waiting.append(spec)
                    continue
                if self._done_elsewhere(spec):
                    claims.release(spec.run_id)
                    continue
                in_flight[executor.submit(self, spec)] = spec
            if in_flight:
                done, _ = wait_futures(list(in_flight), timeout=CLAIM_POLL_S if waiting else None,
                                       return_when=FIRST_COMPLETED)
                for future in done:
                    spec = in_flight.pop(future)
                    try:
                        record = future.result()
                    except BaseException:
                        claims.release(spec.run_id)
                        raise
                    failpoint("runner.after-collect")
                    claims.release(spec.run_id)
                    records.append(record)
                    if on_record is not None:
                        on_record(record)
            elif waiting:
                time.sleep(CLAIM_POLL_S)
            pending.extend(waiting)
            waiting.clear()
        return records

    def _finished(self, spec: RunSpec) -> bool:
        """Finished: an ok record whose rank file reads back (a missing or corrupt one is said and
        the run starts again, so `--resume` repairs it), with the lists `--save-recs K` asks for:
        a run finished without them (or with another K) runs again, so `--resume --save-recs K`
        completes a grid's lists."""
        if not is_finished(self.runs_dir, spec.run_id):
            return False
        record = read_record(record_path(self.runs_dir, spec.run_id)) or {}
        problem = _ranks_problem(self.runs_dir, spec.run_id, record)
        if problem is not None:
            log.warning("%s: its rank file %s; the run starts again to repair it", spec.run_id, problem)
            return False
        k = spec.settings.save_recs
        if not k:
            return True
        saved = record.get("recs") or {}
        return isinstance(saved, dict) and saved.get("k") == k and recs_path(self.runs_dir, spec.run_id).is_file()

    def _say_other_data(self, spec: RunSpec) -> None:
        """Name the finished records of this run made from other data: --resume reruns it."""
        if spec.dataset.source is None:
            return
        for path in sorted(self.runs_dir.glob(f"{spec.run_id_stem}__*.json")):
            if path.name == record_path(self.runs_dir, spec.run_id).name:
                continue
            rec = read_record(path)
            if rec is None or rec.get("status") != "ok":
                continue
            other = (rec.get("source") or {}).get("digest")
            if other != spec.dataset.source.digest and (rec.get("config") or {}).get("params") == spec.params:
                log.warning(
                    "%s was made from other data (%s; now %s): not reused, the run starts again",
                    path.name, (rec.get("source") or {}).get("kind", "an unrecorded source") + (f" {other}" if other else ""),
                    spec.dataset.source.describe(),
                )

    def _done_elsewhere(self, spec: RunSpec) -> bool:
        """After claiming: did another process write this run's record since this grid started?

        Then its record stands, whatever it says, with or without --resume: two grids on one
        runs directory run each run once. A record that was there before the grid started is
        not "elsewhere" (without --resume the run starts again, as asked).
        """
        path = record_path(self.runs_dir, spec.run_id)
        if spec.run_id not in self._stamps or _stamp(path) == self._stamps[spec.run_id] or read_record(path) is None:
            return False
        log.info("skip %s (run by another process during this grid)", spec.run_id)
        self.done_elsewhere.append(spec.run_id)
        return True

    def execute(self, spec: RunSpec, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one spec and write its record (what every executor does, wherever it runs).

        `extra` keys (e.g. `attempts`) are added to the record. The run's epoch checkpoints go
        once the record is written.
        """
        record = self.run_one(spec)
        record["seed_dependent"] = seed_dependent(spec.model)
        if extra:
            record.update(extra)
        fault = _full_disk_failure(record)
        if fault is not None:  # the disk is full or read-only: every later run would fail alike
            raise StorageError(self._storage_stop(spec, *fault))
        try:
            write_record(self.runs_dir, record)
        except OSError as exc:
            if not is_environment_error(exc):
                raise
            raise StorageError(self._storage_stop(spec, *reason_and_fix(exc), f"{exc.filename or self.runs_dir}")) from None
        failpoint("runner.after-record")
        if record.get("status") == "ok":
            try:
                remove_checkpoints(self.checkpoint_dir, spec)
            except OSError as exc:  # leftover checkpoints cost space, not results
                log.warning("%s: could not remove its epoch checkpoints (%s)", spec.run_id, exc)
        return record

    def save_split_examples(self, loaded: LoadedDataset) -> None:
        """The report's per-example table of a split (sessions, repeat targets), written once."""
        source = loaded.request.source
        if source is None:
            return
        try:
            save_split_examples(self.runs_dir, loaded.split, split_table_id(loaded.request.key, source.digest))
        except OSError as exc:
            log.warning("could not write the test example table of %s: %s", loaded.request.key, exc)

    def _storage_stop(self, spec: RunSpec, reason: str, fix: str, where: str) -> str:
        """The paragraph for a grid stopped by the disk: what happened, what is kept, what to do."""
        kept = sum(1 for p in self.runs_dir.glob("*.json") if not p.name.startswith("."))
        return (
            f"run {spec.run_id} could not be saved: {reason} ({where}). The grid stopped here; the {kept} "
            f"record(s) in {self.runs_dir} are complete and kept, and this run was not recorded. Fix: {fix}; "
            "then rerun the same command with --resume to run what is left."
        )

    def base_record(self, spec: RunSpec) -> dict[str, Any]:
        """The identity part of a record (every record, ok or failed, starts with it)."""
        return base_record(spec, self.command, self.worker_kind)

    def run_one(self, spec: RunSpec) -> dict[str, Any]:
        """Fit and evaluate one run; any exception of the model becomes a `failed` record."""
        # user errors (bad data dir, unknown device) stop the grid with their message ...
        device = resolve_device(spec.settings.device)
        loaded = self.dataset(spec.dataset)
        if spec.dataset.source is None:
            spec = replace(spec, dataset=loaded.request)
        self.save_split_examples(loaded)
        return run_one(spec, loaded, device, self.runs_dir, self.command, self.worker_kind, self.progress,
                       self.checkpoint_dir)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What identifies one version of a file: a record is replaced by rename, so a new inode."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _ranks_problem(runs_dir: Path, run_id: str, record: dict[str, Any]) -> str | None:
    """Why a finished record's rank file cannot serve reports (missing, unreadable), or None."""
    import zipfile

    import numpy as np

    name = record.get("ranks_file")
    path = runs_dir / name if isinstance(name, str) and name and "/" not in name else ranks_path(runs_dir, run_id)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {"greater", "equal"} - set(npz.files)
            if missing:
                return f"{path.name} lacks {', '.join(sorted(missing))}"
            for key in npz.files:
                npz[key]  # reads and CRC-checks every array
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        return f"{path.name} is unreadable ({type(exc).__name__}: {exc})"
    return None


_ERRNO_MESSAGE = re.compile(r"^\[Errno (\d+)\] ([^:]*)(?:: (.*))?")


def _full_disk_failure(record: dict[str, Any]) -> tuple[str, str, str] | None:
    """(reason, fix, where) when a failed record failed because the disk is full or read-only.

    The run's exception was turned into the record by `execution.run_one`; an OSError keeps its
    error number in its message ("[Errno 28] No space left on device: 'PATH'")."""
    if record.get("status") != "failed":
        return None
    error = record.get("error") or {}
    match = _ERRNO_MESSAGE.match(str(error.get("message", "")))
    if not match or not str(error.get("type", "")).endswith("Error") or int(match.group(1)) not in FULL_DISK_ERRNOS:
        return None
    reason, fix = reason_and_fix(OSError(int(match.group(1)), match.group(2)))
    return reason, fix, (match.group(3) or "a file of the run").strip("'")
