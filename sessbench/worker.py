"""Where one run executes with its files: data in, record out (every executor calls this).

A `Worker` knows the folders (runs, data, cache, checkpoints), loads and keeps datasets, checks
memory and folders before a grid, and executes one run: `execute(spec)` fits and evaluates it
(`sessbench.execution.run_one`), writes its record, its rank file and its split's example table,
and removes its epoch checkpoints. It knows nothing of grids: claims, resume and executors are
`sessbench.runner`'s, and executors depend on this module, never on the runner, so the modules
import one way: planning <- execution <- worker <- executors <- runner.
"""

from __future__ import annotations

import logging
import re
import shlex
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from sessbench.data.registry import (
    DatasetRequest, LoadedDataset, dataset_stats, load_dataset, resolve_source, size_warning,
)
from sessbench.execution import base_record, remove_checkpoints, run_one
from sessbench.faults import failpoint
from sessbench.models import get_model
from sessbench.planning import ORACLE, RunSpec, seed_dependent
from sessbench.progress import ProgressFactory, null_progress
from sessbench.results import save_split_examples, split_table_id, write_record
from sessbench.storage import FULL_DISK_ERRNOS, StorageError, check_folder, is_environment_error, reason_and_fix
from sessbench.environment import resolve_device

CHECKPOINTS_FOLDER = "checkpoints"
log = logging.getLogger("sessbench.runner")


@dataclass
class Worker:
    """Executes single runs into a runs directory (see the module docstring).

    check_memory: estimate each run's memory before training and refuse runs that cannot fit.
    worker_kind: written to each record's `worker.executor`.
    keep_datasets: keep loaded datasets in memory for the next run (False in one-run workers).
    checkpoint_dir: where epoch checkpoints of unfinished runs live (default <cache dir>/checkpoints).
    """

    runs_dir: Path
    data_dir: Path | None = None
    cache_dir: Path | None = None
    force_prepare: bool = False
    progress: ProgressFactory = null_progress
    command: str = field(default_factory=lambda: shlex.join(["sessbench", *sys.argv[1:]]))
    check_memory: bool = True
    worker_kind: str = "local"
    keep_datasets: bool = True
    checkpoint_dir: Path | None = None
    _datasets: dict[str, LoadedDataset] = field(default_factory=dict, repr=False)
    _tables_saved: set[tuple[str, str]] = field(default_factory=set, repr=False)  # split tables this worker wrote or checked

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
        table_id = split_table_id(loaded.request.key, source.digest)
        if (table_id, loaded.split.checksum()) in self._tables_saved:
            return  # once per split and process, not once per run
        try:
            save_split_examples(self.runs_dir, loaded.split, table_id)
            self._tables_saved.add((table_id, loaded.split.checksum()))
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
