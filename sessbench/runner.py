"""The plan of runs and their execution.

A run is one (model, dataset, seed, protocol, hyperparameters) combination. `plan_runs` turns
the command line and configs into `RunSpec`s with stable ids; `Runner` executes them, writing
one record per run (see `sessbench.results`). Finished records are never rewritten by
`--resume`, and a failing model becomes a `failed` record (with the reason: exception, out of
memory, timeout, worker died) while the grid goes on.

Where runs execute is the executor's business (`sessbench.executors`): in this process (the
default), in a local process pool (`--jobs N`, needed for `--timeout`), or on a Dask cluster.
Whatever the executor, `Runner.run`:
1. removes temp files that killed writers left in the runs directory;
2. prepares every dataset of the plan and checks that each run fits the device's memory, so bad
   input stops the grid before any training (`SessbenchError`, exit code 2);
3. claims each run (`sessbench.claims`) before it starts, so two `sessbench run` processes on
   one runs directory neither corrupt each other nor run one run twice at once, and comes back
   at the end to runs that another process held.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shlex
import socket
import sys
import threading
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import wait as wait_futures
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from sessbench.atomic import remove_stale_temp_files
from sessbench.claims import DEFAULT_STALE_AFTER_S, Claims, describe
from sessbench.data.registry import DatasetRequest, LoadedDataset, dataset_stats, load_dataset
from sessbench.data.sessions import Examples, Split
from sessbench.environment import environment_info
from sessbench.evaluation import EvaluationResult, evaluate_model
from sessbench.faults import failpoint
from sessbench.models import FitContext, SessionRecommender, get_model
from sessbench.progress import ProgressFactory, null_progress
from sessbench.results import is_finished, ranks_path, read_record, record_path, recs_path, write_record
from sessbench.training import resolve_device

ORACLE = "oracle"
#: on synthetic data the normalized gain needs POP; it is added as a reference when not asked for
REFERENCE_MODEL = "pop"
#: seconds between checks on runs that another process holds
CLAIM_POLL_S = 0.5
log = logging.getLogger("sessbench.runner")

#: `error.reason` of a failed record
REASON_EXCEPTION = "exception"
REASON_OUT_OF_MEMORY = "out_of_memory"
REASON_TIMEOUT = "timeout"
REASON_WORKER_DIED = "worker_died"
REASON_INSUFFICIENT_MEMORY = "insufficient_memory"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class RunSettings:
    """Settings shared by every run of a grid.

    `validation_fraction` and `time_budget_s` change what a run computes, so they are part of
    its identity; `device`, `eval_batch_size` and `save_recs` only change how it is computed
    or what is kept, so a run
    finished on another device (or batch size) counts as finished for `--resume` and reports.
    """

    validation_fraction: float = 0.1
    device: str = "auto"
    time_budget_s: float | None = None
    eval_batch_size: int | None = None
    #: keep each test prefix's top-K list (tie-complete, at most recs_cap_factor x K items)
    save_recs: int | None = None
    recs_cap_factor: int = 10

    def identity(self) -> dict[str, Any]:
        return {"validation_fraction": self.validation_fraction, "time_budget_s": self.time_budget_s}


@dataclass(frozen=True)
class RunSpec:
    model: str
    dataset: DatasetRequest
    seed: int
    protocol: str
    params: dict[str, Any] = field(default_factory=dict)
    settings: RunSettings = field(default_factory=RunSettings)

    def identity(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset.key,
            "seed": self.seed,
            "protocol": self.protocol,
            "params": self.params,
            "settings": self.settings.identity(),
        }

    @property
    def config_id(self) -> str:
        """Hash of everything but the seed: runs that differ only by seed share it (reports average them)."""
        ident = {k: v for k, v in self.identity().items() if k != "seed"}
        return _digest(ident)

    @property
    def run_id(self) -> str:
        digest = _digest(self.identity())
        slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in self.dataset.key)[:60]
        return f"{slug}__{self.model}__{self.protocol}__seed{self.seed}__{digest}"


def plan_runs(
    models: list[str],
    datasets: list[DatasetRequest],
    seeds: list[int],
    protocol: str,
    resolve_params: Callable[[str, str], dict[str, Any]],
    settings: RunSettings,
) -> list[RunSpec]:
    """Every (dataset, model, seed) run, datasets outermost so each dataset is loaded once.

    On synthetic data the `oracle` pseudo-model is added once per dataset (it has no seed), and
    POP once (seed 0) when it is not among the models, since the normalized gain is measured
    from it.
    """
    plan: list[RunSpec] = []
    for ds in datasets:
        if ds.definition.kind == "synthetic":
            plan.append(RunSpec(ORACLE, ds, 0, protocol, {}, settings))
            if REFERENCE_MODEL not in models:
                plan.append(RunSpec(REFERENCE_MODEL, ds, 0, protocol, resolve_params(REFERENCE_MODEL, ds.name), settings))
        for model in models:
            params = resolve_params(model, ds.name)
            for seed in seeds:
                plan.append(RunSpec(model, ds, seed, protocol, params, settings))
    return plan


# ---------------------------------------------------------------------------- helpers


class PeakMemory:
    """Samples this process's resident memory in a background thread (Linux /proc; else ru_maxrss)."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._page = 4096
        try:
            import os

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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _metrics_entry(result: EvaluationResult) -> dict[str, Any]:
    return {"metrics": result.metrics, "groups": result.groups, "n_examples": result.n_examples}


def failure_reason(exc: BaseException) -> str:
    """`out_of_memory` for allocation failures (host or CUDA), else `exception`."""
    if isinstance(exc, MemoryError):
        return REASON_OUT_OF_MEMORY
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return REASON_OUT_OF_MEMORY
    if isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower():
        return REASON_OUT_OF_MEMORY
    return REASON_EXCEPTION


def failed_record(
    base: dict[str, Any], reason: str, error_type: str, message: str, traceback_text: str = ""
) -> dict[str, Any]:
    """A `failed` record: the run's identity plus what went wrong and why."""
    return {
        **base,
        "status": "failed",
        "error": {"type": error_type, "message": message, "traceback": traceback_text, "reason": reason},
        "finished_at": _now(),
    }


def worker_info(kind: str) -> dict[str, Any]:
    """Where a run executed (records of a cluster grid say which machine ran what)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "executor": kind}


# ---------------------------------------------------------------------------- runner


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
    _datasets: dict[str, LoadedDataset] = field(default_factory=dict)

    def dataset(self, request: DatasetRequest) -> LoadedDataset:
        if request.key in self._datasets:
            return self._datasets[request.key]
        log.info("preparing dataset %s", request.key)
        loaded = load_dataset(
            request, self.data_dir, self.cache_dir, self.force_prepare, logger=log, progress=self.progress
        )
        if self.keep_datasets:
            self._datasets[request.key] = loaded
        return loaded

    # ------------------------------------------------------------------ the grid
    def run(self, plan: Iterable[RunSpec], on_record: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """Execute every run of `plan`; returns the records written (skipped runs excluded)."""
        from sessbench.executors import InProcessExecutor

        plan = list(plan)
        self.runs_dir = Path(self.runs_dir)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        for path in remove_stale_temp_files(self.runs_dir):
            log.info("removed %s, left by a killed run", path.name)
        for run_id in Claims(self.runs_dir, stale_after_s=self.claim_stale_after_s).sweep():
            log.info("removed the claim on %s, left by a killed process", run_id)
        todo = []
        for spec in plan:
            if self.resume and self._finished(spec):
                log.info("skip %s (finished; --resume)", spec.run_id)
            else:
                todo.append(spec)
        if not todo:
            return []
        executor = self.executor if self.executor is not None else InProcessExecutor()
        executor.start(self, todo)
        try:
            executor.prepare(self, todo)
            with Claims(self.runs_dir, stale_after_s=self.claim_stale_after_s) as claims:
                try:
                    return self._drive(todo, executor, claims, on_record)
                finally:
                    executor.close()  # stop run processes before their claims are released
        finally:
            executor.close()

    def prepare(self, plan: list[RunSpec], keep: bool = True) -> None:
        """Prepare each dataset of `plan` (or load it from the cache) and check memory, before any run.

        keep=False drops each split after its check (the runs load it themselves elsewhere).
        """
        for device in dict.fromkeys(spec.settings.device for spec in plan):
            resolve_device(device)  # a device this machine lacks is an error before any preparation
        by_dataset: dict[str, list[RunSpec]] = {}
        for spec in plan:
            by_dataset.setdefault(spec.dataset.key, []).append(spec)
        for specs in by_dataset.values():
            request = specs[0].dataset
            loaded = self.dataset(request) if keep else load_dataset(
                request, self.data_dir, self.cache_dir, self.force_prepare, logger=log, progress=self.progress
            )
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
        grid_start = time.time()
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
                if self._done_elsewhere(spec, spec.run_id in waited, grid_start):
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
        """Finished, with the lists `--save-recs K` asks for: a run finished without them (or
        with another K) runs again, so `--resume --save-recs K` completes a grid's lists."""
        if not is_finished(self.runs_dir, spec.run_id):
            return False
        k = spec.settings.save_recs
        if not k:
            return True
        record = read_record(record_path(self.runs_dir, spec.run_id)) or {}
        saved = record.get("recs") or {}
        return saved.get("k") == k and recs_path(self.runs_dir, spec.run_id).is_file()

    def _done_elsewhere(self, spec: RunSpec, waited: bool, grid_start: float) -> bool:
        """After claiming: was the run finished by another process meanwhile?"""
        path = record_path(self.runs_dir, spec.run_id)
        if self.resume and self._finished(spec):
            log.info("skip %s (finished by another process)", spec.run_id)
            return True
        if waited:  # another process held it during this grid: take its fresh record, whatever it says
            try:
                fresh = path.stat().st_mtime >= grid_start - 1
            except FileNotFoundError:
                fresh = False
            if fresh and read_record(path) is not None:
                log.info("skip %s (run by another process during this grid)", spec.run_id)
                return True
        return False

    def execute(self, spec: RunSpec, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one spec and write its record (what every executor does, wherever it runs).

        `extra` keys (e.g. `attempts`) are added to the record.
        """
        record = self.run_one(spec)
        if extra:
            record.update(extra)
        write_record(self.runs_dir, record)
        failpoint("runner.after-record")
        return record

    # ------------------------------------------------------------------ one run
    def base_record(self, spec: RunSpec) -> dict[str, Any]:
        """The identity part of a record (every record, ok or failed, starts with it)."""
        return {
            "run_id": spec.run_id,
            "model": spec.model,
            "dataset": spec.dataset.key,
            "dataset_name": spec.dataset.name,
            "seed": spec.seed,
            "protocol": spec.protocol,
            "config_id": spec.config_id,
            "config": {**spec.identity(), "settings": asdict(spec.settings)},
            "command": self.command,
            "started_at": _now(),
            "worker": worker_info(self.worker_kind),
        }

    def run_one(self, spec: RunSpec) -> dict[str, Any]:
        """Fit and evaluate one run; any exception of the model becomes a `failed` record."""
        base = self.base_record(spec)
        # user errors (bad data dir, unknown device) stop the grid with their message ...
        device = resolve_device(spec.settings.device)
        base["environment"] = environment_info(device)
        loaded = self.dataset(spec.dataset)
        try:
            result = self._execute(spec, loaded, device)
            return {**base, **result, "status": "ok", "finished_at": _now()}
        except Exception as exc:  # ... a model failure is recorded and the grid goes on
            reason = failure_reason(exc)
            log.error("run %s failed (%s): %s: %s", spec.run_id, reason, type(exc).__name__, exc)
            return failed_record(base, reason, type(exc).__name__, str(exc), traceback.format_exc())

    def _execute(self, spec: RunSpec, loaded: LoadedDataset, device: torch.device) -> dict[str, Any]:
        fraction = spec.settings.validation_fraction if spec.protocol == "validated" else 0.0
        split: Split = loaded.split.with_validation(fraction) if fraction > 0 else loaded.split
        data = split.training_data()
        test = split.test_examples()
        popularity = data.item_popularity()
        selection: Examples | None = test if spec.protocol == "paper" else data.valid_examples()

        seed_everything(spec.seed)
        if spec.model == ORACLE:
            model: SessionRecommender = loaded.oracle
        else:
            model = get_model(spec.model).create(**spec.params)

        selection_time = [0.0]

        def evaluate_selection(m: SessionRecommender) -> dict[str, float]:
            t0 = time.perf_counter()
            res = evaluate_model(
                m,
                selection,
                n_items=split.n_items,
                batch_size=spec.settings.eval_batch_size or getattr(m, "eval_batch_size", None),
            )
            selection_time[0] += time.perf_counter() - t0
            return {k: v for k, v in res.metrics.items() if k.startswith(("P@", "MRR@", "NDCG@"))}

        ctx = FitContext(
            device=device,
            seed=spec.seed,
            logger=logging.getLogger(f"sessbench.model.{spec.model}"),
            progress=self.progress,
            time_budget_s=spec.settings.time_budget_s,
            evaluate=evaluate_selection if selection is not None and len(selection) else None,
            protocol=spec.protocol,
        )
        failpoint("runner.before-fit")
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            model.fit(data, ctx)
            fit_s = time.perf_counter() - t0 - selection_time[0]
            result = evaluate_model(
                model,
                test,
                n_items=split.n_items,
                batch_size=spec.settings.eval_batch_size or getattr(model, "eval_batch_size", None),
                item_popularity=popularity,
                progress=self.progress,
                recs_k=spec.settings.save_recs,
                recs_cap=None if not spec.settings.save_recs else spec.settings.save_recs * spec.settings.recs_cap_factor,
            )
        result.ranks.save(ranks_path(self.runs_dir, spec.run_id))
        failpoint("runner.after-ranks")
        recs_entry: dict[str, Any] = {}
        if result.recs is not None:
            from sessbench.recs import from_top_lists, save_lists

            lists = from_top_lists(result.recs, test, split, spec.dataset.key)
            summary = save_lists(lists, recs_path(self.runs_dir, spec.run_id))
            recs_entry = {"recs_file": recs_path(self.runs_dir, spec.run_id).name, "recs": summary}
            if summary["truncated_rows"]:
                log.warning("run %s: %d of %d saved lists were truncated at %d items (ties at the K-th score)",
                            spec.run_id, summary["truncated_rows"], summary["rows"], summary["cap"])

        record: dict[str, Any] = {
            **_metrics_entry(result),
            "timing": {
                "fit_s": round(fit_s, 4),
                "selection_eval_s": round(selection_time[0], 4),
                "predict_s": round(result.predict_s, 4),
                "examples_per_s": round(result.examples_per_s, 1),
            },
            "peak_memory_mb": round(mem.peak_bytes / 2**20, 1),
            "memory_at_start_mb": round(mem.start_bytes / 2**20, 1),
            "epochs": ctx.epoch_log,
            "ranks_file": ranks_path(self.runs_dir, spec.run_id).name,
            **recs_entry,
            "dataset_info": {
                **dataset_stats(loaded.split),
                "validation_sessions": 0 if split.valid is None else split.valid.n_sessions,
                "meta": loaded.split.meta,
            },
        }
        if device.type == "cuda":
            record["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        if getattr(model, "fit_summary", None):
            record["fit_summary"] = model.fit_summary
        if spec.protocol == "paper" and ctx.epoch_log:
            record["paper_best"] = paper_best(ctx.epoch_log)
        if spec.model == ORACLE:
            record["oracle_expected"] = {"P@20": float(loaded.oracle.expected_hit_rate(test, k=20))}
        return record


def paper_best(epoch_log: list[dict[str, Any]]) -> dict[str, Any]:
    """The official SR-GNN reporting: best test P@20 and best test MRR@20 over epochs, separately."""
    out: dict[str, Any] = {}
    for key in ("P@20", "MRR@20"):
        epochs = [e for e in epoch_log if key in e]
        if epochs:
            values = np.array([e[key] for e in epochs], dtype=np.float64)
            best = len(values) - 1 - int(np.argmax(values[::-1]))  # the latest best, as the official code
            out[key] = float(values[best])
            out[f"epoch_{key}"] = int(epochs[best].get("epoch", best))
    return out
