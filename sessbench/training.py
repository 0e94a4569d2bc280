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
from pathlib import Path
from typing import Any, ClassVar, Iterator, Protocol, final

import numpy as np
import torch
import torch.nn.functional as F

from sessbench.atomic import atomic_file
from sessbench.data.sessions import Batch, TrainingData
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


class TrainBatch(Protocol):
    """What `train_batches` yields: a `Batch`, or a model's own type with the same two methods."""

    def to(self, device: torch.device | str) -> "TrainBatch": ...  # pragma: no cover
    def __len__(self) -> int: ...  # pragma: no cover


# ---------------------------------------------------------------------------- helpers


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device for a `--device` value: "auto" picks cuda when present, else cpu.

    Asking for an accelerator the machine lacks is a user error (SessbenchError), not a silent
    fallback: a run that was meant for the GPU must not quietly take 50x longer on the CPU.
    """
    text = str(name).strip().lower()
    if text in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"unknown device '{name}': use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from exc
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device '{name}' was requested but no CUDA GPU is available to torch "
                f"{torch.__version__} (CUDA build: {torch.version.cuda or 'none'}). "
                "Use --device auto or --device cpu, or install a CUDA build of torch."
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device '{name}' does not exist: this machine has {count} CUDA device(s) "
                f"(cuda:0..cuda:{count - 1}). Use --device cuda:0 (or another index in that "
                "range), --device auto or --device cpu."
            )
        return device
    module = getattr(torch, device.type, None)
    available = getattr(module, "is_available", None)
    if available is None or not available():
        raise ConfigError(f"device '{name}' is not available here: use 'auto', 'cpu' or 'cuda'.")
    return device


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

    #: how many batches between host syncs (running loss on the progress bar, finiteness check)
    sync_every: ClassVar[int] = 50

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

    # ------------------------------------------------------------------ what subclasses define
    @abstractmethod
    def build(self, data: TrainingData) -> torch.nn.Module:
        """The network for `data.n_items` items (rows 0..n_items; 0 is padding).

        Called inside the seeded RNG scope, so default torch initialisation is reproducible.
        """

    @abstractmethod
    def forward_scores(self, module: torch.nn.Module, batch: Batch) -> torch.Tensor:
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
        log.info(
            "%s: training on %s, %d parameters, %s batches/epoch, up to %d epochs (protocol %s)",
            self.label, device, n_params, "?" if n_batches is None else n_batches, self.epochs,
            ctx.protocol,
        )

        tracked: tuple[str, ...] = ()
        if ctx.evaluate is not None:
            tracked = (ctx.selection_metric,)
            if ctx.protocol == "paper" and PAPER_SECOND_METRIC != ctx.selection_metric:
                tracked += (PAPER_SECOND_METRIC,)
        best: dict[str, float] = {m: -math.inf for m in tracked}
        best_epochs: dict[str, int] = {}
        best_state: dict[str, torch.Tensor] | None = None
        bad_epochs = 0
        stopped = "completed"
        epoch = -1

        for epoch in range(self.epochs):
            module.train()
            lr = float(optimizer.param_groups[0]["lr"])
            t0 = time.perf_counter()
            mean_loss, n_examples = self._train_epoch(data, ctx, module, optimizer, epoch, rng, n_batches)
            train_s = time.perf_counter() - t0
            if scheduler is not None:
                scheduler.step()

            entry: dict[str, Any] = {
                "epoch": epoch, "loss": mean_loss, "train_s": train_s, "lr": lr,
                "train_examples": n_examples,
            }
            improved_text = ""
            if ctx.evaluate is not None:
                t1 = time.perf_counter()
                metrics = dict(ctx.evaluate(self))
                entry["eval_s"] = time.perf_counter() - t1
                entry.update(metrics)
                values = self._tracked_values(metrics, tracked)
                if ctx.protocol == "validated":
                    metric = tracked[0]
                    if values[metric] > best[metric]:
                        best[metric], best_epochs[metric] = values[metric], epoch
                        best_state = _cpu_copy(module.state_dict())
                        bad_epochs = 0
                        improved_text = " *"
                    else:
                        bad_epochs += 1
                else:  # paper: the official rule, ties count, the counter is never reset
                    any_improved = False
                    for metric in tracked:
                        if values[metric] >= best[metric]:
                            best[metric], best_epochs[metric] = values[metric], epoch
                            any_improved = True
                            if metric == tracked[0]:
                                best_state = _cpu_copy(module.state_dict())
                    if any_improved:
                        improved_text = " *"
                    else:
                        bad_epochs += 1
            ctx.epoch_log.append(entry)
            shown = "".join(f", {m} {entry[m]:.4f}" for m in tracked)
            log.info(
                "%s epoch %d: loss %.4f, lr %.3g, %.1fs%s%s",
                self.label, epoch, mean_loss, lr, train_s, shown, improved_text,
            )

            if self.patience is not None and tracked and bad_epochs >= self.patience:
                stopped = "patience"
                log.info(
                    "%s: early stop after epoch %d (%d epochs without improvement)",
                    self.label, epoch, bad_epochs,
                )
                break
            elapsed = time.perf_counter() - start
            if ctx.time_budget_s is not None and elapsed > ctx.time_budget_s and epoch + 1 < self.epochs:
                stopped = "time_budget"
                log.warning(
                    "%s: time budget of %.0fs used up after epoch %d (%.0fs); stopping",
                    self.label, ctx.time_budget_s, epoch, elapsed,
                )
                break

        best_epoch = best_epochs.get(tracked[0]) if tracked else None
        if best_state is not None:
            module.load_state_dict(best_state)
            log.info("%s: restored the state of epoch %d (best %s)", self.label, best_epoch, tracked[0])
        module.eval()
        self.fit_summary = {
            "epochs_run": epoch + 1,
            "best_epoch": best_epoch,
            "best": {m: best[m] for m in best_epochs},
            "best_epochs": dict(best_epochs),
            "stopped": stopped,
            "fit_s": time.perf_counter() - start,
        }

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
    ) -> tuple[float, int]:
        """One pass over the training batches; returns (mean batch loss, examples seen).

        Losses stay on the device and are read back every `sync_every` batches, so the loop
        never waits for the accelerator after each step.
        """
        device = self._device
        window: list[torch.Tensor] = []
        total, count, n_examples = 0.0, 0, 0
        batch_no = -1
        with ctx.progress(total=n_batches, desc=f"{self.label} epoch {epoch}") as bar:
            for batch_no, batch in enumerate(self.train_batches(data, epoch, rng)):
                batch = batch.to(device)
                window.append(self.train_step(module, optimizer, batch))
                n_examples += len(batch)
                bar.update(1)
                if len(window) >= self.sync_every:
                    total, count = self._flush(window, total, count, epoch, batch_no)
                    bar.set_postfix(loss=f"{total / count:.4f}")
            if window:
                total, count = self._flush(window, total, count, epoch, batch_no)
                bar.set_postfix(loss=f"{total / count:.4f}")
        if count == 0:
            raise SessbenchError(
                f"model '{self.label}' got no training batches in epoch {epoch}: dataset "
                f"'{data.dataset}' has no training prefixes (it needs sessions of length >= 2)."
            )
        return total / count, n_examples

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

    def score(self, batch: Batch) -> torch.Tensor:
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
