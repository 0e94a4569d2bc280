"""What a grid will cost before it runs: `sessbench run ... --plan`.

Each distinct (model, dataset, hyperparameters, protocol) of the plan is measured once, on the
real prepared data and device, with a short benchmark:

* a torch model builds its network (a zero-epoch fit), then times `batches` training steps of
  its own loop pieces (`train_batches`, `train_step`) and `batches` evaluation batches (`score`
  plus the rank counting), after a few untimed warm-up batches; an epoch costs its training
  prefixes over the measured sequences per second;
* any other model is fitted on a tenth of the training sessions (the time scaled by ten) and
  scores `batches` evaluation batches.

The estimate of a run is then what its protocol does: `paper` trains up to `epochs` epochs on
the whole training set and scores test after each; `validated` trains up to `epochs` epochs on
the carve with a validation pass after each, then (refit) the chosen number of epochs again on
the whole training set, bounded here by `epochs`. Early stopping usually ends runs sooner, so
the figures are upper bounds for iterative models ("up to").
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import torch

from sessbench.data.registry import LoadedDataset
from sessbench.data.sessions import Examples, Split
from sessbench.evaluation import auto_batch_size, rank_counts
from sessbench.models import FitContext, SessionRecommender, get_model
from sessbench.oracle import oracle_for
from sessbench.planning import ORACLE, RunSpec
from sessbench.training import TorchSessionModel, resolve_device

log = logging.getLogger("sessbench.estimate")

WARMUP = 2


@dataclass(frozen=True)
class Estimate:
    """The measured rates of one (model, dataset, params) and a run's estimated seconds."""

    train_seq_per_s: float | None  # torch models
    eval_seq_per_s: float
    fit_s: float | None  # other models: the whole fit
    seconds: float
    upper_bound: bool
    epochs: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "train_seq_per_s": None if self.train_seq_per_s is None else round(self.train_seq_per_s, 1),
            "eval_seq_per_s": round(self.eval_seq_per_s, 1),
            "fit_s": None if self.fit_s is None else round(self.fit_s, 2),
            "seconds": round(self.seconds, 1),
            "upper_bound": self.upper_bound,
            "epochs": self.epochs,
        }


def _eval_rate(model: SessionRecommender, examples: Examples, n_items: int, batches: int, device: torch.device) -> float:
    bs = int(getattr(model, "eval_batch_size", None) or auto_batch_size(n_items))
    chosen = list(islice(examples.iter_batches(bs), WARMUP + batches))
    work: list[torch.Tensor | None] = [None]

    def one(batch: Any) -> int:
        scores = model.score(batch.prefixes().to(device))
        if work[0] is None or work[0].shape[0] < len(batch):
            work[0] = torch.empty(len(batch), n_items, device=scores.device)
        rank_counts(scores, batch.targets.to(scores.device), buffer=work[0][: len(batch)])
        return len(batch)

    with model.eval_mode(), torch.no_grad():
        for batch in chosen[:WARMUP]:
            one(batch)
        timed = chosen[WARMUP:] or chosen
        t0 = time.perf_counter()
        count = sum(one(b) for b in timed)
        seconds = time.perf_counter() - t0
    return count / max(seconds, 1e-9) if count else float("inf")  # nothing to score: no time


def _train_rate(model: TorchSessionModel, data: Any, batches: int, device: torch.device, seed: int) -> float:
    module = model.module
    assert module is not None
    module.train()
    optimizer = model.make_optimizer(module)
    chosen = list(islice(model.train_batches(data, 0, np.random.default_rng([seed, 1])), WARMUP + batches))
    for batch in chosen[:WARMUP]:
        model.train_step(module, optimizer, batch.to(device))
    timed = chosen[WARMUP:] or chosen  # an epoch shorter than the warm-up: time its batches again
    t0 = time.perf_counter()
    count = 0
    for batch in timed:
        model.train_step(module, optimizer, batch.to(device))
        count += len(batch)
    seconds = time.perf_counter() - t0
    return count / max(seconds, 1e-9) if count else float("inf")  # no batch at all: no training time


def measure(spec: RunSpec, loaded: LoadedDataset, batches: int = 10) -> Estimate:
    """Measure one run's rates on its data and device, and estimate its seconds."""
    device = resolve_device(spec.settings.device)
    full: Split = loaded.split
    n_items = full.n_items
    test = full.test_examples()
    n_test = len(test)
    validated = spec.protocol == "validated"
    fraction = spec.settings.validation_fraction if validated else 0.0
    if spec.model == ORACLE:
        model = oracle_for(loaded)
        rate = _eval_rate(model, test, n_items, batches, device)
        return Estimate(None, rate, 0.0, n_test / rate, False, None)
    cls = get_model(spec.model).cls
    selects = cls.selects_on_validation
    carve = fraction > 0 and (selects or not spec.settings.refit)
    fit_split = full.with_validation(fraction) if carve else full
    n_valid = 0 if fit_split.valid is None else len(fit_split.valid.examples())
    torch.manual_seed(spec.seed)
    if issubclass(cls, TorchSessionModel):
        model = get_model(spec.model).create(**{**spec.params, "epochs": 0})
        model.fit(fit_split.training_data(), FitContext(device=device, seed=spec.seed))
        train_rate = _train_rate(model, fit_split.training_data(), batches, device, spec.seed)
        eval_rate = _eval_rate(model, test, n_items, batches, device)
        epochs = get_model(spec.model).create(**spec.params).epochs  # what the run may train
        n_fit = len(fit_split.training_data().train_examples())
        n_full = len(full.training_data().train_examples())
        if spec.protocol == "paper":
            seconds = epochs * (n_full / train_rate + n_test / eval_rate)
        else:
            seconds = epochs * (n_fit / train_rate + n_valid / eval_rate) + n_test / eval_rate
            if carve and spec.settings.refit:
                seconds += epochs * n_full / train_rate
        return Estimate(train_rate, eval_rate, None, seconds, True, epochs)
    sample = full.train.subset(slice(0, max(1, full.train.n_sessions // 10)))
    model = get_model(spec.model).create(**spec.params)
    data = Split(full.name, sample, full.test, n_items, full.item_ids).training_data()
    t0 = time.perf_counter()
    model.fit(data, FitContext(device=device, seed=spec.seed))
    fit_s = 10 * (time.perf_counter() - t0)
    eval_rate = _eval_rate(model, test, n_items, batches, device)
    phases = 2 if (selects and carve and spec.settings.refit) else 1
    seconds = phases * fit_s + (n_valid / eval_rate if selects and carve else 0.0) + n_test / eval_rate
    return Estimate(None, eval_rate, fit_s, seconds, selects, None)


def estimate_plan(plan: list[RunSpec], runner: Any, batches: int = 10) -> list[tuple[RunSpec, Estimate]]:
    """An estimate per run of `plan` (runs that differ only by seed are measured once)."""
    memo: dict[str, Estimate] = {}
    out = []
    for spec in plan:
        key = spec.config_id + spec.model
        if key not in memo:
            loaded = runner.dataset(spec.dataset)
            log.info("measuring %s on %s", spec.model, spec.dataset.key)
            memo[key] = measure(spec, loaded, batches)
        out.append((spec, memo[key]))
    return out


def format_plan(rows: list[tuple[RunSpec, Estimate]], jobs: int = 1) -> str:
    """The plan as a table with every run's estimate, and the totals."""
    from sessbench.report.tables import text_table

    table = []
    total = 0.0
    for spec, est in rows:
        total += est.seconds
        table.append({
            "dataset": spec.dataset.key, "model": spec.model, "protocol": spec.protocol, "seed": spec.seed,
            "train seq/s": "-" if est.train_seq_per_s is None else f"{est.train_seq_per_s:,.0f}",
            "eval seq/s": f"{est.eval_seq_per_s:,.0f}",
            "epochs": "-" if est.epochs is None else str(est.epochs),
            "estimate": ("up to " if est.upper_bound else "") + _duration(est.seconds),
        })
    lines = text_table(table)
    lines += f"\n{len(rows)} runs, {_duration(total)} of compute in all"
    if jobs > 1:
        lines += f" (about {_duration(total / jobs)} with --jobs {jobs})"
    return lines + "; iterative models usually stop sooner (early stopping), so theirs are upper bounds.\n"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
