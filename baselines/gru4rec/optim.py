"""Adagrad with momentum, for dense and sparse (row-indexed) gradients: GRU4Rec's optimizer.

torch's Adagrad has no momentum, and a dense update of a 37k x 480 item table every step would
cost more than the whole network, so the item tables use sparse gradients and only the rows a
step touched are updated (their accumulator, their velocity, their weights), as in the official
code. For each parameter (or touched row):

    acc += g^2
    step = g / sqrt(acc + eps)
    v    = momentum * v - lr * step
    w   += momentum * v - lr * step     (nesterov=True: Nesterov's momentum, look-ahead form)
    w   += v                            (nesterov=False: classical momentum, what the official
                                         code's update does although its docs call it Nesterov)

With momentum 0 both are plain Adagrad: w -= lr * g / sqrt(acc + eps). No weight decay: GRU4Rec
regularizes with dropout only.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch


class AdagradMomentum(torch.optim.Optimizer):
    """Adagrad with (Nesterov) momentum that also takes sparse gradients."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.05,
        momentum: float = 0.0,
        nesterov: bool = True,
        eps: float = 1e-6,
    ) -> None:
        if lr <= 0.0:
            raise ValueError(f"invalid learning rate: {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"invalid momentum: {momentum}")
        if eps <= 0.0:
            raise ValueError(f"invalid epsilon: {eps}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov, "eps": eps})

    def _state(self, p: torch.Tensor, momentum: float) -> dict[str, torch.Tensor]:
        state = self.state[p]
        if not state:
            state["acc"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if momentum > 0:
                state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, nesterov, eps = group["lr"], group["momentum"], group["nesterov"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._state(p, momentum)
                if p.grad.is_sparse:
                    self._sparse_step(p, p.grad, state, lr, momentum, nesterov, eps)
                else:
                    self._dense_step(p, p.grad, state, lr, momentum, nesterov, eps)
        return loss

    @staticmethod
    def _dense_step(
        p: torch.Tensor, g: torch.Tensor, state: dict[str, torch.Tensor],
        lr: float, momentum: float, nesterov: bool, eps: float,
    ) -> None:
        acc = state["acc"]
        acc.addcmul_(g, g)
        step = g / acc.add(eps).sqrt_()
        if momentum > 0:
            v = state["velocity"]
            v.mul_(momentum).add_(step, alpha=-lr)
            if nesterov:
                p.add_(v, alpha=momentum).add_(step, alpha=-lr)
            else:
                p.add_(v)
        else:
            p.add_(step, alpha=-lr)

    @staticmethod
    def _sparse_step(
        p: torch.Tensor, g: torch.Tensor, state: dict[str, torch.Tensor],
        lr: float, momentum: float, nesterov: bool, eps: float,
    ) -> None:
        # a row can appear several times in one step (input and output use, repeated samples):
        # the update is non-linear, so the row's gradients are summed first
        g = g.coalesce()
        rows = g.indices()[0]
        values = g.values()
        acc = state["acc"]
        acc_rows = acc.index_select(0, rows).addcmul_(values, values)
        acc.index_copy_(0, rows, acc_rows)
        step = values / acc_rows.add_(eps).sqrt_()
        if momentum > 0:
            v = state["velocity"]
            v_rows = v.index_select(0, rows).mul_(momentum).add_(step, alpha=-lr)
            v.index_copy_(0, rows, v_rows)
            delta = v_rows.mul(momentum).add_(step, alpha=-lr) if nesterov else v_rows
            p.index_add_(0, rows, delta)
        else:
            p.index_add_(0, rows, step, alpha=-lr)
