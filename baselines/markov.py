"""Markov: first-order transition counts from the last item.

What it is
----------
The simplest sequential baseline: the next item is predicted from the last clicked item alone,
by how often each item directly followed it in the training sessions (a first-order Markov
chain, unnormalized: dividing a row by its sum does not change its ranking). It is SR
(baselines/rules.py) with steps = 1 and (by default) no pruning.

Scoring rule (exact)
--------------------
With T[a, b] = number of times b was clicked immediately after a in a training session:

    score(b | last = a) = T[a, b]

Items that never followed a score 0 and tie. ``backoff`` is the tie policy shared by every rule
and neighbour model (``baselines/ties.py``): ``none`` (the default, as session-rec's
MarkovModel) leaves them tied, which the evaluator scores as the expected rank under random
tie-breaking; ``popularity`` orders them by training popularity below every transition, so
popularity fills the list, and ranks everything by popularity when a has no transitions at all
(an item seen only at session ends, or never in training). Transitions with equal counts stay
tied under both. (Before the shared policy, this model alone backed off by default and added
pop(b) / (max pop + 1) to every score, which also broke ties among equal counts.)

Choices
-------
* Clicks, not sets: a transition that occurs twice in a session counts twice, and a repeated
  click (a, a) is a transition a -> a, so the last item can be recommended again (as session-rec
  counts its rules; see baselines/rules.py).
* Pruning (``pruning`` > 0) keeps each item's strongest transitions, as session-rec's
  MarkovModel does (it keeps 20: ``pruning=20`` is that model). Our default keeps all (0).
* Scores are float64 (counts stay exact at any size). Column 0 (padding) is -inf.
* Counts come from the training sessions that ``fit`` receives. Fitting is vectorized (one
  pass pairing click t with click t + 1 of the flat click array).
"""

from __future__ import annotations

import time
from typing import Any

import scipy.sparse as sp
import torch

from baselines.rules import prune_rows, sequential_rule_matrix
from baselines.sparse_rows import SparseRows
from baselines.ties import BACKOFFS, DEFAULT_BACKOFF, Backoff, backoff_param
from sessbench.data.sessions import Prefixes, TrainingData
from sessbench.models import FitContext, SessionRecommender, int_param, register_model

__all__ = ["BACKOFFS", "MarkovChain"]

DEFAULTS: dict[str, Any] = {"backoff": DEFAULT_BACKOFF, "pruning": 0}


@register_model(
    "markov",
    groups=("simple",),
    defaults=DEFAULTS,
    description="First-order transitions from the last item (Markov chain)",
)
class MarkovChain(SessionRecommender):
    """Markov: items that directly followed the last item, by their transition counts.

    Hyperparameters: ``backoff`` ("none" or "popularity", baselines/ties.py) and ``pruning``
    (transitions kept per item, 0 = all). See the module docstring for the exact scoring rule.
    """

    seed_dependent = False  # nothing random: one run stands for every seed

    def __init__(self, **params: Any) -> None:
        super().__init__(**{**DEFAULTS, **params})
        self.backoff = backoff_param("markov", self.params["backoff"])
        self.pruning = int_param("markov", "pruning", self.params["pruning"], 0)
        self.transitions: sp.csr_array | None = None
        self._rows: SparseRows | None = None
        self._device = torch.device("cpu")

    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        t0 = time.perf_counter()
        counts = sequential_rule_matrix(data.train, data.n_items, steps=1, weighting="same")
        self.transitions = prune_rows(counts, self.pruning)
        self.n_items = data.n_items
        self._device = torch.device(ctx.device)
        self._rows = SparseRows(self.transitions, self._device, torch.float64)
        self._backoff = Backoff(self.backoff, data, self._device)
        ctx.logger.info(
            "markov: %d transitions (%.1f per item) in %.2fs", self.transitions.nnz,
            self.transitions.nnz / max(1, data.n_items), time.perf_counter() - t0,
        )

    @property
    def device(self) -> torch.device:
        return self._device

    def score(self, batch: Prefixes) -> torch.Tensor:
        """float64 [B, n_items + 1]: transitions from each last item, the back-off; column 0 = -inf."""
        if self._rows is None:
            raise RuntimeError("model 'markov' is not fitted: call fit() first")
        scores = self._backoff.apply(self._rows.dense(batch.last_items))
        scores[:, 0] = -torch.inf
        return scores
