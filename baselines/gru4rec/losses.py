"""GRU4Rec's sampled losses and the final activations that go with them.

Every loss reads a score matrix `O` of shape [B, B + S]: row i is slot i of the mini-batch,
column j < B is the target of slot j (so the diagonal holds each row's own target) and the last
S columns are the step's extra negatives. As in the official code, the other slots' targets are
negatives even when one equals the row's target, and the per-row losses are summed; the caller
divides by the nominal batch size.

* cross-entropy: softmax over the row with the logQ correction: column j's score is lowered by
  `logq * log Q(j)`, Q being how the column was drawn (its popularity for in-batch targets, which
  the data draws in proportion to popularity; popularity^alpha for extra samples).
* bpr-max: -log(sum_j s_j sigmoid(o_i - o_j)) + bpreg * sum_j s_j o_j^2, with s the softmax of
  the negatives' scores (Hidasi & Karatzoglou, CIKM 2018).
* top1-max: sum_j s_j (sigmoid(o_j - o_i) + sigmoid(o_j^2)).

Final activations are applied to the scores before BPR-max and TOP1-max (`linear`, `tanh`,
`elu-<alpha>`, `leaky-<slope>`); cross-entropy uses the softmax itself.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from sessbench.errors import ConfigError

LOSSES = ("cross-entropy", "bpr-max", "top1-max")
#: the final activation each loss uses when `final_act` is "auto" (PyTorch GRU4Rec's defaults)
AUTO_FINAL_ACT = {"cross-entropy": "softmax", "bpr-max": "elu-0.5", "top1-max": "linear"}
#: the official code adds this to probabilities before taking a log
LOG_EPS = 1e-24


def final_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The element-wise final activation `name` for the ranking losses."""
    if name == "linear":
        return lambda x: x
    if name == "tanh":
        return torch.tanh
    for prefix, make in (
        ("elu-", lambda a: (lambda x: F.elu(x, alpha=a))),
        ("leaky-", lambda a: (lambda x: F.leaky_relu(x, negative_slope=a))),
    ):
        if name.startswith(prefix):
            try:
                value = float(name[len(prefix):])
            except ValueError:
                break
            return make(value)
    raise ConfigError(
        f"gru4rec: unknown final_act '{name}'; use linear, tanh, elu-<alpha> or leaky-<slope> "
        "with bpr-max/top1-max (softmax goes with cross-entropy)."
    )


def check_final_act(loss: str, final_act: str) -> str:
    """Resolve "auto" and refuse activations that do not match the loss."""
    if loss not in LOSSES:
        raise ConfigError(f"gru4rec: unknown loss '{loss}'; choose one of {', '.join(LOSSES)}.")
    act = AUTO_FINAL_ACT[loss] if final_act == "auto" else final_act
    if loss == "cross-entropy" and act != "softmax":
        raise ConfigError(
            f"gru4rec: cross-entropy is a loss over a softmax; final_act must be softmax (or auto), "
            f"got '{final_act}'."
        )
    if loss != "cross-entropy":
        if act == "softmax":
            raise ConfigError(
                f"gru4rec: {loss} works on raw scores (linear, tanh, elu-<alpha>); softmax goes with "
                "cross-entropy."
            )
        final_activation(act)  # validates the name
    return act


def _diag_mask(scores: torch.Tensor) -> torch.Tensor:
    """bool [B, B + S]: True at (i, i), each row's own target."""
    b, n = scores.shape
    return torch.eye(b, n, dtype=torch.bool, device=scores.device)


def cross_entropy(scores: torch.Tensor, log_q: torch.Tensor | None = None, logq: float = 0.0) -> torch.Tensor:
    """float [B]: -log softmax(O - logq * log Q)_ii per row (log_q: [B + S] log sampling weights)."""
    if log_q is not None and logq > 0:
        scores = scores - logq * log_q.unsqueeze(0)
    log_p = torch.log_softmax(scores, dim=1)
    return -log_p.diagonal()


def _negative_softmax(scores: torch.Tensor, diag: torch.Tensor) -> torch.Tensor:
    """Softmax of each row over its negatives (the diagonal gets weight 0)."""
    return torch.softmax(scores.masked_fill(diag, float("-inf")), dim=1)


def bpr_max(scores: torch.Tensor, bpreg: float) -> torch.Tensor:
    """float [B]: the BPR-max loss of each row, with score regularization `bpreg`."""
    diag = _diag_mask(scores)
    weights = _negative_softmax(scores, diag)
    target = scores.diagonal().unsqueeze(1)
    ranking = torch.sum(torch.sigmoid(target - scores) * weights, dim=1)
    return -torch.log(ranking + LOG_EPS) + bpreg * torch.sum(scores.pow(2) * weights, dim=1)


def top1_max(scores: torch.Tensor) -> torch.Tensor:
    """float [B]: the TOP1-max loss of each row."""
    diag = _diag_mask(scores)
    weights = _negative_softmax(scores, diag)
    target = scores.diagonal().unsqueeze(1)
    return torch.sum(weights * (torch.sigmoid(scores - target) + torch.sigmoid(scores.pow(2))), dim=1)
