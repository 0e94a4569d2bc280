"""Will a run fit in memory? An estimate made before training, from the item count.

Full-ranking session recommenders scale with the item universe: every torch model holds an
item embedding table (plus its gradient and two Adam moments), scores every item for each
training prefix of a batch, and the evaluator scores every item for a batch of test prefixes.
A dataset with millions of items can need more memory than the device has, and finding out
after an hour of preprocessing, or as a CUDA out-of-memory error deep inside an epoch, wastes
the user's time. So before the first run on a dataset, the runner estimates each run's peak
and stops with the numbers when it exceeds what the device has free.

The estimate is deliberately simple and on the low side (only the terms that grow with the
item count), so it never refuses a run that would fit. A model that knows better declares a
classmethod `estimate_memory(n_items, params) -> bytes` (the training part; evaluation is
added here). Skip the check with `sessbench run --no-memory-check`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from sessbench.errors import SessbenchError
from sessbench.evaluation import auto_batch_size
from sessbench.host_memory import PeakMemory, available_bytes, gib  # noqa: F401 - re-exported

#: parameter names that hold a model's embedding / hidden size, in the order they are tried
DIM_KEYS = ("embedding_dim", "hidden_size", "hidden", "embedding_size", "emb_size", "dim", "factors", "n_factors")
DEFAULT_DIM = 100
DEFAULT_BATCH = 100
FLOAT = 4


@dataclass
class MemoryEstimate:
    """Bytes a run needs, by part, and what the device has free."""

    model: str
    dataset: str
    n_items: int
    device: str
    parts: dict[str, int] = field(default_factory=dict)
    available: int | None = None
    knobs: list[str] = field(default_factory=list)  # the model's hyperparameters that shrink it

    @property
    def needed(self) -> int:
        return sum(self.parts.values())

    @property
    def fits(self) -> bool:
        return self.available is None or self.needed <= self.available

    def explain(self) -> str:
        parts = ", ".join(f"{name} {gib(size)}" for name, size in self.parts.items() if size)
        return (
            f"model '{self.model}' on dataset '{self.dataset}': the item universe of {self.n_items:,} items "
            f"needs about {gib(self.needed)} ({parts}) but {self.device} has only "
            f"{gib(self.available or 0)} free"
        )


def _dim(params: dict[str, Any]) -> int:
    for key in DIM_KEYS:
        value = params.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value)
    return DEFAULT_DIM


def _positive_int(value: Any, default: int) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1:
        return int(value)
    return default


def estimate_run_memory(
    model: str,
    model_cls: type | None,
    params: dict[str, Any],
    n_items: int,
    dataset: str,
    device: torch.device,
    eval_batch_size: int | None = None,
) -> MemoryEstimate:
    """The estimate for one run (`model_cls` None for the oracle and other built-ins)."""
    est = MemoryEstimate(model, dataset, int(n_items), str(device))
    est.knobs = [k for k in ("batch_size", *DIM_KEYS) if k in params]
    rows = n_items + 1
    hook = getattr(model_cls, "estimate_memory", None) if model_cls is not None else None
    custom = hook(n_items, dict(params)) if callable(hook) else None
    if custom is not None:
        est.parts["training"] = int(custom)
    elif model_cls is not None and _is_torch_model(model_cls):
        dim = _dim(params)
        batch = _positive_int(params.get("batch_size"), DEFAULT_BATCH)
        # weights, gradient and two Adam moments of the item table; logits, their softmax and
        # gradient for a training batch
        est.parts["item table and optimizer state"] = 4 * rows * dim * FLOAT
        est.parts["training scores"] = 3 * batch * rows * FLOAT
    else:
        est.parts["item statistics"] = 4 * rows * 8
    eval_batch = _positive_int(params.get("eval_batch_size"), 0) or eval_batch_size or auto_batch_size(n_items)
    est.parts["evaluation scores"] = 2 * eval_batch * rows * FLOAT  # scores + comparison scratch
    est.available = available_bytes(device)
    return est


def _is_torch_model(cls: type) -> bool:
    from sessbench.training import TorchSessionModel

    return isinstance(cls, type) and issubclass(cls, TorchSessionModel)


def check_memory(estimates: list[MemoryEstimate]) -> None:
    """Raise one clear error naming every run that would not fit."""
    too_big = [e for e in estimates if not e.fits]
    if not too_big:
        return
    first = too_big[0]
    others = f" ({len(too_big) - 1} more run(s) likewise: {', '.join(sorted({e.model for e in too_big[1:]}))})" if len(too_big) > 1 else ""
    knobs = "".join(f"--set {first.model}.{k}=..., " for k in first.knobs)
    raise SessbenchError(
        f"{first.explain()}, so it would run out of memory{others}. Nothing was trained. Fix: "
        f"{'lower ' + knobs if knobs else ''}lower --eval-batch-size, use a device with more memory "
        "(--device), or a dataset with fewer items; --no-memory-check runs it anyway."
    )


