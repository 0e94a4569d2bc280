"""The grid: claims, resume, executors and progress over the runs of a plan.

Planning (specs and run ids) lives in `sessbench.planning`, one run (data -> fit -> evaluate ->
record) in `sessbench.execution`, and its files (datasets, records, checkpoints) in
`sessbench.worker`; this module drives many runs. Finished records are never
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
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from sessbench.atomic import remove_stale_temp_files
from sessbench.claims import DEFAULT_STALE_AFTER_S, Claims, describe
from sessbench.execution import (  # noqa: F401 - re-exported: the names this module always offered
    REASON_EXCEPTION,
    REASON_INSUFFICIENT_MEMORY,
    REASON_OUT_OF_MEMORY,
    REASON_TIMEOUT,
    REASON_WORKER_DIED,
    failed_record,
    failure_reason,
    paper_best,
    seed_everything,
    worker_info,
)
from sessbench.executors import InProcessExecutor
from sessbench.faults import failpoint
from sessbench.host_memory import PeakMemory  # noqa: F401 - re-exported
from sessbench.planning import (  # noqa: F401 - re-exported
    ORACLE,
    REFERENCE_MODEL,
    RunSettings,
    RunSpec,
    longest_first,
    plan_runs,
    seed_dependent,
)
from sessbench.results import (
    SPLITS_FOLDER,
    is_finished,
    ranks_path,
    read_record,
    record_path,
    recs_path,
)
from sessbench.worker import CHECKPOINTS_FOLDER, Worker  # noqa: F401 - re-exported

#: seconds between checks on runs that another process holds
CLAIM_POLL_S = 0.5
log = logging.getLogger("sessbench.runner")


@dataclass
class Runner(Worker):
    """Executes a plan (see the module docstring): a `Worker` that also drives a grid.

    executor: where runs execute (`sessbench.executors`); None runs them in this process.
    resume: skip runs that have a finished record.
    claim_stale_after_s: a claim not refreshed for this long counts as abandoned.
    """

    resume: bool = False
    executor: Any = None
    claim_stale_after_s: float = DEFAULT_STALE_AFTER_S
    #: each planned run's record file (inode, mtime, size) when this grid started; None when absent
    _stamps: dict[str, tuple[int, int, int] | None] = field(default_factory=dict, repr=False)
    #: runs skipped because another process wrote their record during this grid
    done_elsewhere: list[str] = field(default_factory=list, repr=False)

    # ------------------------------------------------------------------ the grid
    def run(self, plan: Iterable[RunSpec], on_record: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """Execute every run of `plan`; returns the records written (skipped runs excluded)."""
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
        if executor.capacity != 1:  # several at a time: the long trainings first (one at a time keeps the plan's order)
            todo = longest_first(todo)
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
