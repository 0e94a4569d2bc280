"""The one training loop that every torch model shares.

A torch model subclasses `TorchSessionModel` and defines only its network (`build`), its scores
(`forward_scores`) and, when it differs from full cross-entropy, its loss. Seeding, batching,
the optimizer and learning-rate schedule, per-epoch evaluation, early stopping, the time budget,
the epoch log and checkpoints live here once, so that every model is trained and selected under
exactly the same rules and a comparison between models measures the models, not their loops.

Model selection follows `FitContext.protocol`:

* ``validated``: after each epoch the model is scored on the validation split; the best state by
  `FitContext.selection_metric` is kept (earliest epoch on ties) and training stops after
  `patience` consecutive epochs without a strict improvement. The best state is restored.
* ``paper``: the official SR-GNN code's rule, reproduced as written (pytorch_code/main.py): after
  each epoch the model is scored on the *test* split; P@20 and MRR@20 are tracked separately,
  each counting as improved when it is ``>=`` its best so far; an epoch in which neither improved
  adds one to a counter that is never reset, and training stops when that counter reaches
  `patience`. The state of the (latest) best-P@20 epoch is restored; the runner reports the
  per-metric bests from `FitContext.epoch_log`.

The learning rate is stepped once *after* each epoch, so with the defaults (decay x0.1 every 3
epochs) epochs 0-2 run at `lr`, 3-5 at `lr`/10, and so on: the schedule the official code had
under the PyTorch 0.4 it was written for. (Its `scheduler.step()` at the start of each epoch
decays one epoch earlier under PyTorch >= 1.1.)
"""

from __future__ import annotations

import json
import logging
import math
import time
from abc import abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator, Protocol, final

import numpy as np
import torch
import torch.nn.functional as F

from sessbench.atomic import atomic_file
from sessbench.environment import resolve_device  # noqa: F401 - where callers always found it
from sessbench.faults import failpoint
from sessbench.data.sessions import Prefixes, TrainingData
from sessbench.errors import ConfigError, SessbenchError
from sessbench.evaluation import auto_batch_size
from sessbench.models import FitContext, SessionRecommender

__all__ = [
    "TRAINING_DEFAULTS",
    "TorchSessionModel",
    "TrainBatch",
    "resolve_device",
]

#: hyperparameters every torch model accepts (subclasses add their own through **params)
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 100,
    "lr": 1e-3,
    "l2": 0.0,
    "lr_decay_step": 3,
    "lr_decay_rate": 0.1,
    "patience": 10,
    "eval_batch_size": None,
    "grad_clip": None,
    "optimizer": "adam",
}

OPTIMIZERS = ("adam", "adamw", "sgd", "adagrad")
PROTOCOLS = ("validated", "paper")
#: the second metric the `paper` protocol tracks next to the selection metric (official code)
PAPER_SECOND_METRIC = "MRR@20"

# Independent random streams derived from FitContext.seed.
_INIT_STREAM = 0  # torch: parameter initialisation, dropout, anything using the global generator
_SHUFFLE_STREAM = 1  # numpy: order of training batches

CHECKPOINT_FORMAT = 1
#: format of the end-of-epoch checkpoints a killed fit resumes from
RESUME_FORMAT = 1


class TrainBatch(Protocol):
    """What `train_batches` yields: a `Batch`, or a model's own type with the same two methods."""

    def to(self, device: torch.device | str) -> "TrainBatch": ...  # pragma: no cover
    def __len__(self) -> int: ...  # pragma: no cover


# ---------------------------------------------------------------------------- helpers


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A snapshot of a state dict on the CPU that later optimizer steps cannot modify."""
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


@contextmanager
def _forked_rng(device: torch.device) -> Iterator[None]:
    """Fork the global torch RNG(s) used on `device`, so `fit` leaves the caller's state alone."""
    if device.type == "cpu":
        with torch.random.fork_rng(devices=[]):
            yield
        return
    mod = torch.get_device_module(device.type)
    index = device.index if device.index is not None else mod.current_device()
    with torch.random.fork_rng(devices=[index], device_type=device.type):
        yield


@dataclass
class _LoopState:
    """What the training loop carries from epoch to epoch (and an epoch checkpoint keeps)."""

    best: dict[str, float]
    best_epochs: dict[str, int] = field(default_factory=dict)
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    stopped: str = "completed"
    epoch: int = -1  # the last finished epoch
    elapsed_s: float = 0.0  # training seconds before this process took over

    def to_payload(self) -> dict[str, Any]:
        return {
            "best": json.dumps(self.best), "best_epochs": json.dumps(self.best_epochs),
            "best_state": self.best_state, "bad_epochs": self.bad_epochs, "epoch": self.epoch,
            "elapsed_s": self.elapsed_s,
        }

    def load_payload(self, payload: dict[str, Any]) -> None:
        self.best = {k: float(v) for k, v in json.loads(payload["best"]).items()}
        self.best_epochs = {k: int(v) for k, v in json.loads(payload["best_epochs"]).items()}
        self.best_state = payload["best_state"]
        self.bad_epochs = int(payload["bad_epochs"])
        self.epoch = int(payload["epoch"])
        self.elapsed_s = float(payload["elapsed_s"])


# ---------------------------------------------------------------------------- base class


class TorchSessionModel(SessionRecommender):
    """Base class for torch models: subclasses define the network and the loss; the loop is here.

    Subclasses implement `build` and `forward_scores`, and may override `loss`, `make_optimizer`,
    `make_scheduler`, `train_batches` / `n_train_batches` (e.g. session-parallel GRU4Rec
    batches). `fit` is the shared loop and cannot be overridden.

    Common hyperparameters (constructor kwargs; see TRAINING_DEFAULTS):
      epochs, batch_size, lr, l2 (Adam weight_decay, coupled L2 as in the official SR-GNN code),
      lr_decay_step / lr_decay_rate (StepLR after each epoch; step 0 = constant lr),
      patience (None = never stop early), eval_batch_size (None = auto from n_items),
      grad_clip (max gradient norm, None = off), optimizer ("adam", "adamw", "sgd", "adagrad").
    """

    #: how many batches between host syncs (running loss on the progress bar, finiteness
    #: check, time budget)
    sync_every: ClassVar[int] = 50
    selects_on_validation: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "fit" in cls.__dict__:
            raise TypeError(
                f"{cls.__qualname__} overrides TorchSessionModel.fit; the training loop is shared "
                "by every torch model. Override build/forward_scores/loss/train_batches instead."
            )

    def __init__(self, **params: Any) -> None:
        super().__init__(**{**TRAINING_DEFAULTS, **params})
        p = self.params
        self.epochs = self._int("epochs", minimum=0)
        self.batch_size = self._int("batch_size", minimum=1)
        self.lr = self._float("lr", minimum=0.0, strict=True)
        self.l2 = self._float("l2", minimum=0.0)
        self.lr_decay_step = self._int("lr_decay_step", minimum=0)
        self.lr_decay_rate = self._float("lr_decay_rate", minimum=0.0, strict=True)
        self.patience: int | None = None if p["patience"] is None else self._int("patience", minimum=1)
        self.eval_batch_size: int | None = (
            None if p["eval_batch_size"] is None else self._int("eval_batch_size", minimum=1)
        )
        self.grad_clip: float | None = (
            None if p["grad_clip"] is None else self._float("grad_clip", minimum=0.0, strict=True)
        )
        self.optimizer_name = str(p["optimizer"]).lower()
        if self.optimizer_name not in OPTIMIZERS:
            raise ConfigError(
                f"model '{self.label}': unknown optimizer "
                f"'{p['optimizer']}'; choose one of {', '.join(OPTIMIZERS)}."
            )
        self.module: torch.nn.Module | None = None
        self.n_items: int | None = None
        self._device = torch.device("cpu")
        #: how the last `fit` ended: epochs_run, best_epoch, best / best_epochs per tracked
        #: metric, stopped ("completed", "patience", "time_budget"), fit_s
        self.fit_summary: dict[str, Any] = {}

    @property
    def label(self) -> str:
        """The registered name, or the class name for an unregistered model (messages, logs)."""
        return self.name or type(self).__name__

    # ------------------------------------------------------------------ hyperparameter parsing
    def _bad(self, key: str, why: str) -> ConfigError:
        return ConfigError(
            f"model '{self.label}': hyperparameter {key}={self.params[key]!r} "
            f"{why}."
        )

    def _int(self, key: str, minimum: int) -> int:
        value = self.params[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, str)):
            raise self._bad(key, "must be an integer")
        try:
            number = float(value)
        except ValueError:
            raise self._bad(key, "must be an integer") from None
        if not number.is_integer():
            raise self._bad(key, "must be an integer")
        if number < minimum:
            raise self._bad(key, f"must be >= {minimum}")
        return int(number)

    def _float(self, key: str, minimum: float, strict: bool = False) -> float:
        value = self.params[key]
        if isinstance(value, bool):
            raise self._bad(key, "must be a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self._bad(key, "must be a number") from None
        if not math.isfinite(number) or number < minimum or (strict and number == minimum):
            raise self._bad(key, f"must be {'>' if strict else '>='} {minimum:g}")
        return number

    def refit_params(self) -> dict[str, Any]:
        """Train as many epochs as the selected one, without a selection split.

        The refit sees the same learning-rate schedule epoch by epoch (it is defined per epoch),
        on about 1/(1 - validation fraction) times as many batches per epoch.
        """
        best = self.fit_summary.get("best_epoch")
        return {} if best is None else {"epochs": int(best) + 1}

    # ------------------------------------------------------------------ resumable extra state
    def resume_state(self) -> dict[str, Any]:
        """State outside the network, optimizer and RNGs that an epoch checkpoint must keep
        (tensors, numbers, strings, lists and dicts of them); override with `load_resume_state`."""
        return {}

    def load_resume_state(self, state: dict[str, Any]) -> None:
        """Restore what `resume_state` returned, after `build` and before training resumes."""

    # ------------------------------------------------------------------ what subclasses define
    @abstractmethod
    def build(self, data: TrainingData) -> torch.nn.Module:
        """The network for `data.n_items` items (rows 0..n_items; 0 is padding).

        Called inside the seeded RNG scope, so default torch initialisation is reproducible.
        """

    @abstractmethod
    def forward_scores(self, module: torch.nn.Module, batch: Prefixes) -> torch.Tensor:
        """float [B, n_items + 1] logits (column 0, padding, is ignored by loss and evaluation)."""

    def loss(self, module: torch.nn.Module, batch: Any) -> torch.Tensor:
        """Mean cross-entropy over all real items (the padding column is left out of the softmax)."""
        logits = self.forward_scores(module, batch)
        return F.cross_entropy(logits[:, 1:], batch.targets - 1)

    def make_optimizer(self, module: torch.nn.Module) -> torch.optim.Optimizer:
        params = [p for p in module.parameters() if p.requires_grad]
        if self.optimizer_name == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.l2)
        if self.optimizer_name == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.l2)
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(params, lr=self.lr, weight_decay=self.l2)
        return torch.optim.Adagrad(params, lr=self.lr, weight_decay=self.l2)

    def make_scheduler(self, optimizer: torch.optim.Optimizer) -> Any | None:
        """StepLR stepped once after every epoch, or None when lr_decay_step is 0."""
        if self.lr_decay_step == 0:
            return None
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=self.lr_decay_step, gamma=self.lr_decay_rate
        )

    def train_batches(
        self, data: TrainingData, epoch: int, rng: np.random.Generator
    ) -> Iterator[TrainBatch]:
        """One epoch of training batches: all training prefixes, reshuffled every epoch."""
        return data.train_examples().iter_batches(self.batch_size, shuffle=True, rng=rng)

    def n_train_batches(self, data: TrainingData) -> int | None:
        """Batches per epoch for the progress bar (None when unknown)."""
        return data.train_examples().n_batches(self.batch_size)

    # ------------------------------------------------------------------ the loop
    @final
    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        """Train with the shared loop; see the module docstring for the selection rules."""
        if ctx.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol '{ctx.protocol}'; choose one of {', '.join(PROTOCOLS)}.")
        device = torch.device(ctx.device)
        with _forked_rng(device):
            self._fit(data, ctx, device)

    def _fit(self, data: TrainingData, ctx: FitContext, device: torch.device) -> None:
        log = ctx.logger
        start = time.perf_counter()
        torch.manual_seed(ctx.torch_generator(_INIT_STREAM).initial_seed())
        rng = ctx.rng(_SHUFFLE_STREAM)

        self._device = device
        self.n_items = data.n_items
        if self.eval_batch_size is None:
            self.eval_batch_size = auto_batch_size(data.n_items)
        module = self.build(data).to(device)
        self.module = module
        optimizer = self.make_optimizer(module)
        scheduler = self.make_scheduler(optimizer)
        n_batches = self.n_train_batches(data)
        n_params = sum(p.numel() for p in module.parameters())

        tracked: tuple[str, ...] = ()
        if ctx.evaluate is not None:
            tracked = (ctx.selection_metric,)
            if ctx.protocol == "paper" and PAPER_SECOND_METRIC != ctx.selection_metric:
                tracked += (PAPER_SECOND_METRIC,)
        loop = _LoopState(best={m: -math.inf for m in tracked})
        resumed = self._resume(ctx, module, optimizer, scheduler, rng, loop)
        elapsed_before = loop.elapsed_s
        log.info(
            "%s: training on %s, %d parameters, %s batches/epoch, up to %d epochs (protocol %s)%s",
            self.label, device, n_params, "?" if n_batches is None else n_batches, self.epochs,
            ctx.protocol, f"; resumed after epoch {loop.epoch}" if resumed else "",
        )
        deadline = None if ctx.time_budget_s is None else start + ctx.time_budget_s - elapsed_before

        for epoch in range(loop.epoch + 1, self.epochs):
            module.train()
            lr = float(optimizer.param_groups[0]["lr"])
            t0 = time.perf_counter()
            mean_loss, n_examples, cut_short = self._train_epoch(
                data, ctx, module, optimizer, epoch, rng, n_batches, deadline
            )
            train_s = time.perf_counter() - t0
            if scheduler is not None:
                scheduler.step()

            entry: dict[str, Any] = {
                "epoch": epoch, "loss": mean_loss, "train_s": train_s, "lr": lr,
                "train_examples": n_examples,
            }
            if cut_short:
                entry["partial"] = True  # the time budget ran out inside this epoch
            improved_text = ""
            if ctx.evaluate is not None:
                t1 = time.perf_counter()
                metrics = dict(ctx.evaluate(self))
                entry["eval_s"] = time.perf_counter() - t1
                entry.update(metrics)
                if self._select(ctx.protocol, tracked, self._tracked_values(metrics, tracked), epoch, module, loop):
                    improved_text = " *"
            ctx.epoch_log.append(entry)
            loop.epoch = epoch
            shown = "".join(f", {m} {100 * entry[m]:.2f}%" for m in tracked)  # percent, as every table
            log.info(
                "%s epoch %d: loss %.4f, lr %.3g, %.1fs%s%s",
                self.label, epoch, mean_loss, lr, train_s, shown, improved_text,
            )

            if self.patience is not None and tracked and loop.bad_epochs >= self.patience:
                loop.stopped = "patience"
                log.info(
                    "%s: early stop after epoch %d (%d epochs without improvement)",
                    self.label, epoch, loop.bad_epochs,
                )
                break
            if deadline is not None and (cut_short or time.perf_counter() > deadline) and epoch + 1 < self.epochs:
                loop.stopped = "time_budget"
                log.warning(
                    "%s: time budget of %.0fs used up %s epoch %d (%.0fs); stopping",
                    self.label, ctx.time_budget_s, "inside" if cut_short else "after", epoch,
                    elapsed_before + time.perf_counter() - start,
                )
                break
            if ctx.checkpoint is not None and epoch + 1 < self.epochs:
                loop.elapsed_s = elapsed_before + time.perf_counter() - start
                self._save_checkpoint(ctx, module, optimizer, scheduler, rng, loop)
                failpoint("training.after-checkpoint")

        best_epoch = loop.best_epochs.get(tracked[0]) if tracked else None
        if loop.best_state is not None:
            module.load_state_dict(loop.best_state)
            log.info("%s: restored the state of epoch %d (best %s)", self.label, best_epoch, tracked[0])
        module.eval()
        self.fit_summary = {
            "epochs_run": loop.epoch + 1,
            "best_epoch": best_epoch,
            "best": {m: loop.best[m] for m in loop.best_epochs},
            "best_epochs": dict(loop.best_epochs),
            "stopped": loop.stopped,
            "fit_s": elapsed_before + time.perf_counter() - start,
        }
        if resumed:
            self.fit_summary["resumed_after_epoch"] = resumed

    def _select(
        self,
        protocol: str,
        tracked: tuple[str, ...],
        values: dict[str, float],
        epoch: int,
        module: torch.nn.Module,
        loop: "_LoopState",
    ) -> bool:
        """Update the best state by the protocol's rule; True when this epoch improved."""
        if protocol == "validated":
            metric = tracked[0]
            if values[metric] > loop.best[metric]:
                loop.best[metric], loop.best_epochs[metric] = values[metric], epoch
                loop.best_state = _cpu_copy(module.state_dict())
                loop.bad_epochs = 0
                return True
            loop.bad_epochs += 1
            return False
        # paper: the official rule, ties count, the counter is never reset
        any_improved = False
        for metric in tracked:
            if values[metric] >= loop.best[metric]:
                loop.best[metric], loop.best_epochs[metric] = values[metric], epoch
                any_improved = True
                if metric == tracked[0]:
                    loop.best_state = _cpu_copy(module.state_dict())
        if not any_improved:
            loop.bad_epochs += 1
        return any_improved

    # ------------------------------------------------------------------ epoch checkpoints
    def _checkpoint_identity(self, ctx: FitContext) -> str:
        """What a checkpoint must match to be resumed: run/phase key, model, hyperparameters."""
        return json.dumps(
            {"key": ctx.checkpoint_key, "model": self.label, "params": self.params, "protocol": ctx.protocol},
            sort_keys=True, default=repr,
        )

    def _save_checkpoint(
        self, ctx: FitContext, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
        scheduler: Any, rng: np.random.Generator, loop: "_LoopState",
    ) -> None:
        """The state after `loop.epoch`, written atomically (a kill mid-write keeps the previous one).

        Only tensors, numbers, strings and containers of them: `torch.load(weights_only=True)`
        reads it back, so a checkpoint can never run code.
        """
        assert ctx.checkpoint is not None
        payload = {
            "format": RESUME_FORMAT,
            "identity": self._checkpoint_identity(ctx),
            "module": _cpu_copy(module.state_dict()),
            "optimizer": optimizer.state_dict(),
            "scheduler": None if scheduler is None else scheduler.state_dict(),
            "numpy_rng": json.dumps(rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self._device) if self._device.type == "cuda" else None,
            "loop": loop.to_payload(),
            "epoch_log": json.dumps(ctx.epoch_log),
            "model_state": self.resume_state(),
        }
        try:
            Path(ctx.checkpoint).parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(ctx.checkpoint) as fh:
                torch.save(payload, fh)
        except OSError as exc:  # a checkpoint is a convenience: training goes on without one
            ctx.logger.warning("%s: could not write the checkpoint %s (%s)", self.label, ctx.checkpoint, exc)

    def _resume(
        self, ctx: FitContext, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
        scheduler: Any, rng: np.random.Generator, loop: "_LoopState",
    ) -> int | None:
        """Load the run's epoch checkpoint when there is one for exactly this fit; returns the
        epoch it resumes after (None when it starts from scratch)."""
        path = ctx.checkpoint
        if path is None or not Path(path).is_file():
            return None
        try:
            ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
            if not isinstance(ckpt, dict) or ckpt.get("format") != RESUME_FORMAT:
                raise ValueError("not an epoch checkpoint of this sessbench version")
            if ckpt.get("identity") != self._checkpoint_identity(ctx):
                raise ValueError("it belongs to another run or other hyperparameters")
            module.load_state_dict(ckpt["module"])
            optimizer.load_state_dict(ckpt["optimizer"])
            if scheduler is not None and ckpt["scheduler"] is not None:
                scheduler.load_state_dict(ckpt["scheduler"])
            rng.bit_generator.state = json.loads(ckpt["numpy_rng"])
            torch.set_rng_state(ckpt["torch_rng"])
            if self._device.type == "cuda" and ckpt.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(ckpt["cuda_rng"], self._device)
            loop.load_payload(ckpt["loop"])
            ctx.epoch_log[:] = json.loads(ckpt["epoch_log"])
            self.load_resume_state(ckpt.get("model_state") or {})
        except Exception as exc:  # noqa: BLE001 - any unusable checkpoint means: start over
            ctx.logger.warning("%s: ignoring the checkpoint %s (%s); training from the start", self.label, path, exc)
            return None
        return loop.epoch

    def _tracked_values(self, metrics: dict[str, Any], tracked: tuple[str, ...]) -> dict[str, float]:
        missing = [m for m in tracked if m not in metrics]
        if missing:
            raise ConfigError(
                f"selection metric {', '.join(missing)} is not among the evaluated metrics "
                f"({', '.join(sorted(metrics)) or 'none'}); choose one of those."
            )
        return {m: float(metrics[m]) for m in tracked}

    def _train_epoch(
        self,
        data: TrainingData,
        ctx: FitContext,
        module: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        epoch: int,
        rng: np.random.Generator,
        n_batches: int | None,
        deadline: float | None = None,
    ) -> tuple[float, int, bool]:
        """One pass over the training batches; returns (mean batch loss, examples seen, cut short).

        Losses stay on the device and are read back every `sync_every` batches, so the loop
        never waits for the accelerator after each step. At those syncs the time budget is
        checked too: past `deadline` (a `time.perf_counter()` value) the epoch ends early.
        """
        device = self._device
        window: list[torch.Tensor] = []
        total, count, n_examples = 0.0, 0, 0
        batch_no = -1
        cut_short = False
        with ctx.progress(total=n_batches, desc=f"{self.label} epoch {epoch}") as bar:
            for batch_no, batch in enumerate(self.train_batches(data, epoch, rng)):
                batch = batch.to(device)
                window.append(self.train_step(module, optimizer, batch))
                n_examples += len(batch)
                bar.update(1)
                if len(window) >= self.sync_every:
                    total, count = self._flush(window, total, count, epoch, batch_no)
                    bar.set_postfix(loss=f"{total / count:.4f}")
                    if deadline is not None and time.perf_counter() > deadline:
                        cut_short = True
                        break
            if window:
                total, count = self._flush(window, total, count, epoch, batch_no)
                bar.set_postfix(loss=f"{total / count:.4f}")
        if count == 0:
            raise SessbenchError(
                f"model '{self.label}' got no training batches in epoch {epoch}: dataset "
                f"'{data.dataset}' has no training prefixes (it needs sessions of length >= 2)."
            )
        return total / count, n_examples, cut_short

    def train_step(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Any) -> torch.Tensor:
        """One optimizer step on a batch already on the device; returns the detached loss.

        The loop and `sessbench bench train` both call this, so the benchmark times exactly
        what training does.
        """
        optimizer.zero_grad(set_to_none=True)
        loss = self.loss(module, batch)
        loss.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)
        optimizer.step()
        return loss.detach()

    def _flush(
        self, window: list[torch.Tensor], total: float, count: int, epoch: int, last_batch: int
    ) -> tuple[float, int]:
        """Read the pending losses back, fail on the first non-finite one, add them up."""
        values = torch.stack(window).double().cpu().numpy()
        finite = np.isfinite(values)
        if not finite.all():
            first = int(np.argmin(finite))
            batch_no = last_batch - len(values) + 1 + first
            raise FloatingPointError(
                f"model '{self.label}': non-finite training loss ({values[first]}) at epoch {epoch}, "
                f"batch {batch_no}. Try a lower lr, grad_clip, or check the model's scores."
            )
        window.clear()
        return total + float(values.sum()), count + len(values)

    # ------------------------------------------------------------------ scoring
    @property
    def device(self) -> torch.device:
        return self._device

    def _require_module(self) -> torch.nn.Module:
        if self.module is None:
            raise RuntimeError(f"model '{self.label}' has no network yet: call fit() or load() first")
        return self.module

    @contextmanager
    def eval_mode(self) -> Iterator[None]:
        """no_grad + module.eval(); the previous train/eval mode is restored on exit."""
        module = self._require_module()
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            module.train(was_training)

    def score(self, batch: Prefixes) -> torch.Tensor:
        """Scores of every item for each prefix of `batch`, computed on the model's device."""
        with self.eval_mode():
            return self.forward_scores(self._require_module(), batch.to(self._device))

    # ------------------------------------------------------------------ state and checkpoints
    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._require_module().state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._require_module().load_state_dict(state)

    def save(self, path: str | Path) -> None:
        """Write the network's weights plus what identifies them (atomic: temp file + rename).

        Only tensors, strings and numbers are stored, so `torch.load(weights_only=True)` reads it.
        """
        module = self._require_module()
        payload = {
            "format": CHECKPOINT_FORMAT,
            "model": self.name,
            "params": json.dumps(self.params, sort_keys=True, default=repr),
            "n_items": int(self.n_items or 0),
            "state_dict": _cpu_copy(module.state_dict()),
        }
        with atomic_file(path) as fh:
            torch.save(payload, fh)

    def load(
        self,
        path: str | Path,
        data: TrainingData | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Load weights written by `save` (with `weights_only=True`).

        A model that was never fitted needs `data` (the same item catalogue) to build its network.
        """
        try:
            ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise SessbenchError(f"{path}: checkpoint file not found.") from None
        if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
            raise SessbenchError(f"{path}: not a sessbench checkpoint (format {CHECKPOINT_FORMAT}).")
        if ckpt["model"] != self.name:
            raise SessbenchError(
                f"{path}: checkpoint of model '{ckpt['model']}', cannot load it into '{self.label}'."
            )
        if data is not None and data.n_items != ckpt["n_items"]:
            raise SessbenchError(
                f"{path}: checkpoint has {ckpt['n_items']} items but dataset '{data.dataset}' has "
                f"{data.n_items}; load it with the data it was trained on."
            )
        if device is not None:
            self._device = torch.device(device)
        if self.module is None:
            if data is None:
                raise SessbenchError(
                    f"{path}: model '{self.label}' has no network yet; pass the training data so "
                    "load() can build it."
                )
            self.n_items = data.n_items
            self.module = self.build(data)
        if self.eval_batch_size is None and ckpt["n_items"]:
            self.eval_batch_size = auto_batch_size(int(ckpt["n_items"]))
        self.module.load_state_dict(ckpt["state_dict"])
        self.module.to(self._device)
        self.module.eval()
        logging.getLogger("sessbench.model").debug("%s: loaded %s", self.label, path)
