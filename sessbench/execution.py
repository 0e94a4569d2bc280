"""One run, from data to record: the protocol, the fit, the evaluation, what the record holds.

Protocols (`RunSpec.protocol`):

* ``validated`` (the default, what careful benchmarks do):
  1. A model that selects something on validation (`selects_on_validation`: the epochs of
     every torch model, BPR-MF's rounds) is fitted on the training sessions minus the latest
     `validation_fraction` of them (the carve), and chooses on the carve.
  2. It is then **refitted** on the whole training set with what it chose
     (`refit_params()`: as many epochs as its best one). The rule keeps the epoch count, not
     the step count, because every schedule here is defined per epoch (SR-GNN's learning rate
     decays every 3 epochs): the refit sees the same learning rate in every epoch, on about
     1/(1 - fraction) times as many batches per epoch. The carve holds the sessions closest to
     the test period, so giving them back is worth more than the extra steps cost.
  3. Test is scored once.
  A model that selects nothing (POP, S-POP, Item-KNN, the rule and neighbour models) is fitted
  on the whole training set directly. The record stores the selection (`selection`: the chosen
  epoch and its validation metric) and `refit: true`. `RunSettings.refit = False`
  (`--no-refit`) keeps every model on the carved training set, sessbench's behaviour before.
  Cost: a selecting model trains twice (the selection run with its patience, then the chosen
  number of epochs again, about 1.1x as long each).
* ``paper``: the official SR-GNN code's reporting: trained on the whole training set, scored
  on test after every epoch, the best test values reported (`paper_best`). Labelled as such.

A model killed mid-training resumes from its last finished epoch: iterative models keep an
end-of-epoch checkpoint per phase (`<checkpoint_dir>/<run id>.<phase>.pt`, outside the runs
directory), removed once the run's record is written.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import traceback
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sessbench.data.registry import LoadedDataset, dataset_stats
from sessbench.data.sessions import Examples, Split, TrainingData
from sessbench.environment import code_state, environment_info
from sessbench.evaluation import EvaluationResult, evaluate_model
from sessbench.faults import failpoint
from sessbench.host_memory import PeakMemory
from sessbench.models import FitContext, SessionRecommender, get_model
from sessbench.oracle import oracle_for
from sessbench.planning import ORACLE, RunSpec
from sessbench.progress import ProgressFactory, null_progress
from sessbench.results import ranks_path, recs_path

log = logging.getLogger("sessbench.runner")

#: `error.reason` of a failed record
REASON_EXCEPTION = "exception"
REASON_OUT_OF_MEMORY = "out_of_memory"
REASON_TIMEOUT = "timeout"
REASON_WORKER_DIED = "worker_died"
REASON_INSUFFICIENT_MEMORY = "insufficient_memory"

#: fit phases, named in checkpoint files and records
PHASE_FIT, PHASE_SELECT, PHASE_REFIT = "fit", "select", "refit"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
        "finished_at": now(),
    }


def worker_info(kind: str) -> dict[str, Any]:
    """Where a run executed (records of a cluster grid say which machine ran what)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "executor": kind}


def model_module(model: str) -> str | None:
    return None if model == ORACLE else get_model(model).source


def base_record(spec: RunSpec, command: str, worker_kind: str) -> dict[str, Any]:
    """The identity part of a record (every record, ok or failed, starts with it)."""
    record = {
        "run_id": spec.run_id,
        "model": spec.model,
        "dataset": spec.dataset.key,
        "dataset_name": spec.dataset.name,
        "seed": spec.seed,
        "protocol": spec.protocol,
        "config_id": spec.config_id,
        "config": {**spec.identity(), "settings": asdict(spec.settings)},
        "default_config": spec.default_config,
        "command": command,
        "started_at": now(),
        "worker": worker_info(worker_kind),
        "code_state": code_state(model_module(spec.model)),
    }
    if spec.dataset.source is not None:
        record["source"] = spec.dataset.source.to_record()
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


def _metrics_entry(result: EvaluationResult) -> dict[str, Any]:
    return {"metrics": result.metrics, "groups": result.groups, "n_examples": result.n_examples}


def checkpoint_path(checkpoint_dir: Path | None, spec: RunSpec, phase: str) -> Path | None:
    return None if checkpoint_dir is None else Path(checkpoint_dir) / f"{spec.run_id}.{phase}.pt"


def remove_checkpoints(checkpoint_dir: Path | None, spec: RunSpec) -> None:
    """Drop a finished run's epoch checkpoints (they only serve a run that has not finished)."""
    for phase in (PHASE_FIT, PHASE_SELECT, PHASE_REFIT):
        path = checkpoint_path(checkpoint_dir, spec, phase)
        if path is not None:
            path.unlink(missing_ok=True)


class _Fitter:
    """Fits models of one run phase by phase, timing the selection evaluations apart."""

    def __init__(self, spec: RunSpec, loaded: LoadedDataset, device: torch.device, progress: ProgressFactory,
                 checkpoint_dir: Path | None) -> None:
        self.spec, self.loaded, self.device = spec, loaded, device
        self.progress, self.checkpoint_dir = progress, checkpoint_dir
        self.selection_s = 0.0
        self.started = time.perf_counter()

    def new_model(self, overrides: dict[str, Any] | None = None) -> SessionRecommender:
        seed_everything(self.spec.seed)
        if self.spec.model == ORACLE:
            return oracle_for(self.loaded)
        return get_model(self.spec.model).create(**{**self.spec.params, **(overrides or {})})

    def budget_left(self) -> float | None:
        budget = self.spec.settings.time_budget_s
        return None if budget is None else budget - (time.perf_counter() - self.started)

    def fit(self, model: SessionRecommender, data: TrainingData, selection: Examples | None, phase: str) -> FitContext:
        spec = self.spec
        n_items = data.n_items

        def evaluate_selection(m: SessionRecommender) -> dict[str, float]:
            t0 = time.perf_counter()
            res = evaluate_model(
                m, selection, n_items=n_items,
                batch_size=spec.settings.eval_batch_size or getattr(m, "eval_batch_size", None),
            )
            self.selection_s += time.perf_counter() - t0
            return {k: v for k, v in res.metrics.items() if k.startswith(("P@", "MRR@", "NDCG@"))}

        ctx = FitContext(
            device=self.device,
            seed=spec.seed,
            logger=logging.getLogger(f"sessbench.model.{spec.model}"),
            progress=self.progress,
            time_budget_s=self.budget_left(),
            evaluate=evaluate_selection if selection is not None and len(selection) else None,
            protocol=spec.protocol,
            checkpoint=checkpoint_path(self.checkpoint_dir, spec, phase),
            # the code state too: epochs trained by other code must not be continued by this code
            checkpoint_key=f"{spec.run_id}/{phase}/code {code_state(model_module(spec.model))['digest']}",
        )
        model.fit(data, ctx)
        return ctx


def execute_run(
    spec: RunSpec,
    loaded: LoadedDataset,
    device: torch.device,
    runs_dir: Path,
    progress: ProgressFactory = null_progress,
    checkpoint_dir: Path | None = None,
) -> dict[str, Any]:
    """Fit and evaluate one run under its protocol; returns the result part of its record.

    Writes the run's rank file (and lists) into `runs_dir`; the caller writes the record.
    """
    full: Split = loaded.split
    test = full.test_examples()
    fitter = _Fitter(spec, loaded, device, progress, checkpoint_dir)
    cls = None if spec.model == ORACLE else get_model(spec.model).cls
    selects = cls is not None and cls.selects_on_validation
    fraction = spec.settings.validation_fraction if spec.protocol == "validated" else 0.0
    refit = spec.protocol == "validated" and spec.settings.refit
    carve = fraction > 0 and (selects or not refit)

    fit_split = full.with_validation(fraction) if carve else full
    entry: dict[str, Any] = {}
    failpoint("runner.before-fit")
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        model = fitter.new_model()
        phase = PHASE_SELECT if carve and refit else PHASE_FIT
        selection_examples = test if spec.protocol == "paper" else fit_split.training_data().valid_examples()
        ctx = fitter.fit(model, fit_split.training_data(), selection_examples, phase)
        epochs = ctx.epoch_log
        select_s = time.perf_counter() - t0
        resumed = _resumed(model, phase, {})
        if carve and refit:
            summary = dict(getattr(model, "fit_summary", None) or {})
            entry["selection"] = _selection(summary, ctx.selection_metric, fit_split)
            overrides = model.refit_params()
            left = fitter.budget_left()
            if left is not None and left <= 0:
                entry["refit"] = False
                entry["refit_skipped"] = "time budget used up by the selection"
                log.warning("run %s: no time left for the refit; scoring the selected model", spec.run_id)
            else:
                model = fitter.new_model(overrides)
                refit_ctx = fitter.fit(model, full.training_data(), None, PHASE_REFIT)
                resumed = _resumed(model, PHASE_REFIT, resumed)
                entry["refit"] = True
                entry["refit_params"] = overrides
                entry["refit_epochs"] = refit_ctx.epoch_log
        elif spec.protocol == "validated" and refit:
            entry["refit"] = True  # nothing to select: fitted on the whole training set directly
        fit_s = time.perf_counter() - t0 - fitter.selection_s
        result = evaluate_model(
            model,
            test,
            n_items=full.n_items,
            batch_size=spec.settings.eval_batch_size or getattr(model, "eval_batch_size", None),
            item_popularity=(full if not carve or refit else fit_split).training_data().item_popularity(),
            progress=progress,
            recs_k=spec.settings.save_recs,
            recs_cap=None if not spec.settings.save_recs else spec.settings.save_recs * spec.settings.recs_cap_factor,
        )
    result.ranks.save(ranks_path(runs_dir, spec.run_id))
    failpoint("runner.after-ranks")
    recs_entry: dict[str, Any] = {}
    if result.recs is not None:
        from sessbench.recs import from_top_lists, save_lists

        lists = from_top_lists(result.recs, test, full, spec.dataset.key)
        summary_lists = save_lists(lists, recs_path(runs_dir, spec.run_id))
        recs_entry = {"recs_file": recs_path(runs_dir, spec.run_id).name, "recs": summary_lists}
        if summary_lists["truncated_rows"]:
            log.warning("run %s: %d of %d saved lists were truncated at %d items (ties at the K-th score)",
                        spec.run_id, summary_lists["truncated_rows"], summary_lists["rows"], summary_lists["cap"])

    record: dict[str, Any] = {
        **_metrics_entry(result),
        "timing": {
            "fit_s": round(fit_s, 4),
            "select_fit_s": round(select_s - fitter.selection_s, 4) if "selection" in entry else None,
            "selection_eval_s": round(fitter.selection_s, 4),
            "predict_s": round(result.predict_s, 4),
            "examples_per_s": round(result.examples_per_s, 1),
        },
        "peak_memory_mb": round(mem.peak_bytes / 2**20, 1),
        "memory_at_start_mb": round(mem.start_bytes / 2**20, 1),
        "epochs": epochs,
        **entry,
        "split_checksum": full.checksum(),
        "ranks_file": ranks_path(runs_dir, spec.run_id).name,
        **recs_entry,
        "dataset_info": {
            **dataset_stats(full),
            "validation_sessions": 0 if fit_split.valid is None else fit_split.valid.n_sessions,
            "meta": full.meta,
        },
    }
    if record["timing"]["select_fit_s"] is None:
        del record["timing"]["select_fit_s"]
    if resumed:
        record["resumed"] = resumed  # phase -> the epoch a killed fit resumed after
    if device.type == "cuda":
        record["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    if getattr(model, "fit_summary", None):
        record["fit_summary"] = model.fit_summary
    if spec.protocol == "paper" and epochs:
        record["paper_best"] = paper_best(epochs)
    if spec.model == ORACLE:
        record["oracle_expected"] = {"P@20": float(oracle_for(loaded).expected_hit_rate(test, k=20))}
    return record


def _resumed(model: SessionRecommender, phase: str, so_far: dict[str, int]) -> dict[str, int]:
    """Which phases resumed from an epoch checkpoint (and after which epoch), for the record."""
    summary = getattr(model, "fit_summary", None) or {}
    if summary.get("resumed_after_epoch") is None:
        return so_far
    return {**so_far, phase: int(summary["resumed_after_epoch"])}


def _selection(summary: dict[str, Any], metric: str, carved: Split) -> dict[str, Any]:
    """What the selection phase chose, for the record."""
    best = summary.get("best") or {}
    return {
        "metric": metric,
        "best_epoch": summary.get("best_epoch"),
        "value": best.get(metric),
        "epochs_run": summary.get("epochs_run"),
        "stopped": summary.get("stopped"),
        "validation_sessions": 0 if carved.valid is None else carved.valid.n_sessions,
    }


def run_one(
    spec: RunSpec,
    loaded: LoadedDataset,
    device: torch.device,
    runs_dir: Path,
    command: str,
    worker_kind: str = "local",
    progress: ProgressFactory = null_progress,
    checkpoint_dir: Path | None = None,
) -> dict[str, Any]:
    """The whole record of one run; any exception of the model becomes a `failed` record."""
    base = base_record(spec, command, worker_kind)
    base["environment"] = environment_info(device)
    try:
        result = execute_run(spec, loaded, device, runs_dir, progress, checkpoint_dir)
        return {**base, **result, "status": "ok", "finished_at": now()}
    except Exception as exc:  # ... a model failure is recorded and the grid goes on
        reason = failure_reason(exc)
        log.error("run %s failed (%s): %s: %s", spec.run_id, reason, type(exc).__name__, exc)
        return failed_record(base, reason, type(exc).__name__, str(exc), traceback.format_exc())


__all__ = [
    "REASON_EXCEPTION", "REASON_INSUFFICIENT_MEMORY", "REASON_OUT_OF_MEMORY", "REASON_TIMEOUT",
    "REASON_WORKER_DIED", "base_record", "execute_run", "failed_record", "failure_reason", "paper_best",
    "remove_checkpoints", "run_one", "seed_everything", "worker_info",
]
