"""The item table's two uses in a training step, written to touch the big tensors rarely.

SR-GNN uses its item embedding table twice: the graph looks up the vectors of each prefix's
nodes, and the scores are session vectors times the whole table. At the YOOCHOOSE 1/64 shape
(37,483 x 100, batch 100) each pass over the table or over the [B, n_items] scores costs
milliseconds on a CPU, and each *fresh* 15 MB tensor costs as much again in page faults on the
virtual machines we measured (about 2.3 us per 4 KiB page). So the training path:

* computes the cross-entropy on one [B, n_items] buffer that persists across steps: the scores
  are written into it and turned into softmax probabilities in place (on the CPU, whose kernel
  finishes reading a row before writing it); the loss is -log p(target) (exact, with a
  fallback for a probability that underflows), and the backward only subtracts the one-hot
  entries, folding the 1/B scale into the small [B, d] operands of the two gradient products.
  `F.cross_entropy(vectors @ table.T, targets)` would allocate and walk that matrix five
  times per step (logits, log-softmax, the zero-filled one-hot gradient of the NLL, the
  log-softmax gradient, and a table gradient autograd then copies);
* on the CPU, runs the scoring product and the table's gradient block by block of items
  (`sessbench.blocked_products`), so each block of scores and of the table stays in the
  core's cache: MKL's single call is about 1.4 times slower for these shapes;
* writes the item table's gradient straight into `table.grad`, into a buffer that persists
  across steps (so `zero_grad(set_to_none=True)` costs no page faults the next step): the
  scoring product's part with the blocked products, then the graph lookup's rows added in
  place. Two autograd gradients for one table would be summed out of place (one more copy).

Values and gradients are those of plain autograd up to float rounding (tests check them). The
consequence of the last point: after `loss.backward()` the table's gradient is in `table.grad`
as usual (added to what is there, as autograd does), but `torch.autograd.grad(loss, table)`
would not see it. The SR-GNN model uses these functions only in `loss`, which the training
loop backpropagates with `backward()`; scoring and `forward_scores` use plain operations. A
second loss computed before the first one's backward gets a fresh buffer, so interleaved
losses stay correct.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from sessbench.blocked_products import scores_into, table_grad_into

__all__ = ["TableScratch", "lookup", "scores_cross_entropy"]


def _target_nll(
    probs: torch.Tensor, vectors: torch.Tensor, table: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Per-row -log p(target) from softmax probabilities [B, n], exact also where p underflows.

    -log p_t = lse - x_t is exact as long as p_t is a normal float. Where it is not (a target
    scored ~87 below the row's best item), lse is recovered from the row's most probable item
    j instead: lse = x_j - log p_j, with the two scores x recomputed as dot products. On the
    CPU that path runs only when needed; elsewhere always (it is cheap there, and checking
    would wait for the device).
    """
    rows = torch.arange(len(targets), device=targets.device)
    p_target = probs[rows, targets]
    nll = -torch.log(p_target)
    tiny = torch.finfo(probs.dtype).tiny
    underflow = p_target < tiny
    if probs.device.type != "cpu" or bool(underflow.any()):
        p_best, best = probs.max(1)
        x_best = (vectors * table[best]).sum(1)
        x_target = (vectors * table[targets]).sum(1)
        nll = torch.where(underflow, x_best - torch.log(p_best) - x_target, nll)
    return nll


class TableScratch:
    """Memory reused across training steps for one item table: the score buffer and the gradient.

    Not part of the model's state: it is rebuilt whenever shapes, dtype or device change.
    """

    def __init__(self) -> None:
        self._scores: torch.Tensor | None = None
        self._scores_busy = False
        self._grad: torch.Tensor | None = None

    def take_scores(self, rows: int, cols: int, like: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """A [rows, cols] buffer and whether it is the shared one (to be given back)."""
        buf = self._scores
        if self._scores_busy:  # a previous loss still waits for its backward
            return torch.empty(rows, cols, dtype=like.dtype, device=like.device), False
        if buf is None or buf.shape[0] < rows or buf.shape[1] != cols or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._scores = torch.empty(max(rows, 1), cols, dtype=like.dtype, device=like.device)
        self._scores_busy = True
        return buf[:rows], True

    def give_back_scores(self) -> None:
        self._scores_busy = False

    def grad_buffer(self, table: torch.Tensor) -> torch.Tensor:
        """A tensor shaped like `table` for its gradient (reused when it is not `table.grad` already)."""
        buf = self._grad
        if buf is None or buf.shape != table.shape or buf.dtype != table.dtype or buf.device != table.device:
            buf = self._grad = torch.empty_like(table)
        return buf


class _CrossEntropyIntoGrad(torch.autograd.Function):
    """Mean cross-entropy of vectors @ table.T; the table's gradient goes into `table.grad`."""

    @staticmethod
    def forward(
        ctx: Any, anchor: torch.Tensor, vectors: torch.Tensor, targets: torch.Tensor,
        holder: tuple[torch.Tensor, TableScratch],
    ) -> torch.Tensor:
        table, scratch = holder
        weight = table.detach()
        scores, shared = scratch.take_scores(len(vectors), weight.shape[0], vectors)
        scores_into(vectors, weight, scores)
        if scores.device.type == "cpu":
            probs = torch.ops.aten._softmax.out(scores, 1, False, out=scores)  # in place, row by row
        else:
            probs = torch.softmax(scores, 1)
        loss = _target_nll(probs, vectors, weight, targets).mean()
        ctx.save_for_backward(vectors, targets)
        ctx.holder, ctx.probs, ctx.shared = holder, probs, shared
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[None, torch.Tensor | None, None, None]:
        vectors, targets = ctx.saved_tensors
        table, scratch = ctx.holder
        grad = ctx.probs  # d loss / d scores = (softmax - one-hot) * grad_loss / B
        rows = torch.arange(len(targets), device=targets.device)
        grad.index_put_((rows, targets), torch.tensor(-1.0, dtype=grad.dtype, device=grad.device), accumulate=True)
        scale = grad_loss / len(targets)  # applied to the [B, d] operands, never to [B, n]
        weight = table.detach()
        grad_vectors = torch.mm(grad, weight).mul_(scale) if ctx.needs_input_grad[1] else None
        if table.requires_grad:
            scaled = vectors * scale
            if table.grad is None:
                table.grad = scratch.grad_buffer(table)
                table_grad_into(grad, scaled, table.grad, accumulate=False)
            else:
                table_grad_into(grad, scaled, table.grad, accumulate=True)
        if ctx.shared:
            scratch.give_back_scores()
        ctx.holder = ctx.probs = None
        return None, grad_vectors, None, None


def scores_cross_entropy(
    vectors: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, scratch: TableScratch | None = None
) -> torch.Tensor:
    """Mean cross-entropy of the scores `vectors @ table.T` ([B, d] x [n, d]) for 0-based `targets` [B].

    Equals `F.cross_entropy(vectors @ table.T, targets)` in value and gradients. With `scratch`
    (training), the buffers persist and the table's gradient goes into `table.grad` (module doc);
    without it (or without gradients), it is that plain expression.
    """
    if vectors.dim() != 2 or table.dim() != 2 or targets.dim() != 1 or len(vectors) != len(targets):
        raise ValueError(
            f"scores_cross_entropy needs vectors [B, d], table [n, d] and targets [B], got "
            f"{tuple(vectors.shape)}, {tuple(table.shape)} and {tuple(targets.shape)}"
        )
    if scratch is not None and torch.is_grad_enabled() and (table.requires_grad or vectors.requires_grad):
        anchor = torch.zeros((), device=vectors.device, requires_grad=True)  # keeps it in the graph
        return _CrossEntropyIntoGrad.apply(anchor, vectors, targets.long(), (table, scratch))
    return F.cross_entropy(F.linear(vectors, table), targets)


class _LookupIntoGrad(torch.autograd.Function):
    """Rows of a table; backward adds their gradient into `table.grad` (see the module doc)."""

    @staticmethod
    def forward(ctx: Any, anchor: torch.Tensor, index: torch.Tensor, holder: tuple[torch.Tensor]) -> torch.Tensor:
        (table,) = holder
        ctx.holder = holder
        ctx.save_for_backward(index)
        return F.embedding(index, table.detach())

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_rows: torch.Tensor) -> tuple[None, None, None]:
        (index,) = ctx.saved_tensors
        (table,) = ctx.holder
        ctx.holder = None
        flat_index = index.reshape(-1)
        flat_grad = grad_rows.reshape(-1, grad_rows.shape[-1]).to(table.dtype)
        if table.grad is None:
            table.grad = torch.zeros_like(table).index_add_(0, flat_index, flat_grad)
        else:
            table.grad.index_add_(0, flat_index, flat_grad)
        return None, None, None


def lookup(table: torch.Tensor, index: torch.Tensor, into_grad: bool = False) -> torch.Tensor:
    """`table[index]`; with `into_grad` its gradient is added into `table.grad` (module doc).

    With `into_grad`, call it after nothing else has put a gradient for `table` into autograd
    (the scoring loss writes into `.grad` too), so the rows are added to the whole gradient.
    """
    if not (into_grad and table.requires_grad and torch.is_grad_enabled()):
        return F.embedding(index, table)
    anchor = torch.zeros((), device=table.device, requires_grad=True)  # puts the lookup in the graph
    return _LookupIntoGrad.apply(anchor, index, (table,))
