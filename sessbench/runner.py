"""The plan of runs and their execution.

A run is one (model, dataset, seed, protocol, hyperparameters) combination. `plan_runs` turns
the command line and configs into `RunSpec`s with stable ids; `Runner` executes them one at a
time in this process, writing one record per run (see `sessbench.results`). Finished records
are never rewritten by `--resume`, and a failing model becomes a `failed` record while the grid
goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shlex
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from sessbench.atomic import remove_stale_temp_files
from sessbench.data.registry import DatasetRequest, LoadedDataset, dataset_stats, load_dataset
from sessbench.data.sessions import Examples, Split
from sessbench.environment import environment_info
from sessbench.evaluation import EvaluationResult, evaluate_model
from sessbench.models import FitContext, SessionRecommender, get_model
from sessbench.progress import ProgressFactory, null_progress
from sessbench.results import is_finished, ranks_path, write_record
from sessbench.training import resolve_device

ORACLE = "oracle"
#: on synthetic data the normalized gain needs POP; it is added as a reference when not asked for
REFERENCE_MODEL = "pop"
log = logging.getLogger("sessbench.runner")


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class RunSettings:
    """Settings shared by every run of a grid.

    `validation_fraction` and `time_budget_s` change what a run computes, so they are part of
    its identity; `device` and `eval_batch_size` only change how it is computed, so a run
    finished on another device (or batch size) counts as finished for `--resume` and reports.
    """

    validation_fraction: float = 0.1
    device: str = "auto"
    time_budget_s: float | None = None
    eval_batch_size: int | None = None

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


# ---------------------------------------------------------------------------- runner


@dataclass
class Runner:
    runs_dir: Path
    data_dir: Path | None = None
    cache_dir: Path | None = None
    force_prepare: bool = False
    resume: bool = False
    progress: ProgressFactory = null_progress
    command: str = field(default_factory=lambda: shlex.join(["sessbench", *sys.argv[1:]]))
    _datasets: dict[str, LoadedDataset] = field(default_factory=dict)

    def dataset(self, request: DatasetRequest) -> LoadedDataset:
        if request.key not in self._datasets:
            log.info("preparing dataset %s", request.key)
            self._datasets[request.key] = load_dataset(
                request, self.data_dir, self.cache_dir, self.force_prepare, logger=log, progress=self.progress
            )
        return self._datasets[request.key]

    def run(self, plan: Iterable[RunSpec], on_record: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """Execute every run of `plan`; returns the records written (skipped runs excluded)."""
        for path in remove_stale_temp_files(self.runs_dir):
            log.info("removed %s, left by a killed run", path.name)
        records = []
        for spec in plan:
            if self.resume and is_finished(self.runs_dir, spec.run_id):
                log.info("skip %s (finished; --resume)", spec.run_id)
                continue
            record = self.run_one(spec)
            write_record(self.runs_dir, record)
            records.append(record)
            if on_record is not None:
                on_record(record)
        return records

    def run_one(self, spec: RunSpec) -> dict[str, Any]:
        """Fit and evaluate one run; any exception of the model becomes a `failed` record."""
        started = _now()
        base: dict[str, Any] = {
            "run_id": spec.run_id,
            "model": spec.model,
            "dataset": spec.dataset.key,
            "dataset_name": spec.dataset.name,
            "seed": spec.seed,
            "protocol": spec.protocol,
            "config_id": spec.config_id,
            "config": {**spec.identity(), "settings": asdict(spec.settings)},
            "command": self.command,
            "started_at": started,
        }
        # user errors (bad data dir, unknown device) stop the grid with their message ...
        device = resolve_device(spec.settings.device)
        base["environment"] = environment_info(device)
        loaded = self.dataset(spec.dataset)
        try:
            result = self._execute(spec, loaded, device)
            return {**base, **result, "status": "ok", "finished_at": _now()}
        except Exception as exc:  # ... a model failure is recorded and the grid goes on
            log.error("run %s failed: %s: %s", spec.run_id, type(exc).__name__, exc)
            return {
                **base,
                "status": "failed",
                "error": {
                    "type": type(exc).__name__,
                    "message": str(exc),
                    "traceback": traceback.format_exc(),
                },
                "finished_at": _now(),
            }

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
            )
        result.ranks.save(ranks_path(self.runs_dir, spec.run_id))

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
