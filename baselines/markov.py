"""Markov: first-order transition counts from the last item, popularity as the back-off.

What it is
----------
The simplest sequential baseline: the next item is predicted from the last clicked item alone,
by how often each item directly followed it in the training sessions (a first-order Markov
chain, unnormalized: dividing a row by its sum does not change its ranking). It is SR
(baselines/rules.py) with steps = 1 and (by default) no pruning, plus a popularity back-off.

Scoring rule (exact)
--------------------
With T[a, b] = number of times b was clicked immediately after a in a training session, and
pop[b] = training clicks of b:

    backoff = "popularity":  score(b | last = a) = T[a, b] + pop[b] / (max(pop) + 1)
    backoff = "none":        score(b | last = a) = T[a, b]

The popularity term is < 1, and T is a whole count, so popularity never overtakes a transition:
it only orders items with the same count (in particular all the items that never followed a,
which fills the list) and ranks everything by popularity when a has no transitions at all
(an item seen only at session ends, or never in training). This is S-POP's tie-break rule
(baselines/popularity.py). With backoff "none" those items tie at 0.

Choices
-------
* Clicks, not sets: a transition that occurs twice in a session counts twice, and a repeated
  click (a, a) is a transition a -> a, so the last item can be recommended again (as session-rec
  counts its rules; see baselines/rules.py).
* Pruning (``pruning`` > 0) keeps each item's strongest transitions, as session-rec's
  MarkovModel does (it keeps 20 and has no back-off: ``backoff="none", pruning=20`` is that
  model). Our default keeps all (0): with the back-off, pruning can only replace a weaker
  transition by popularity.
* Scores are float64: in float32 a count above ~2^24 / (max(pop) + 1) would swallow the
  popularity fraction, and the tie-break must stay exact. Column 0 (padding) is -inf.
* Counts come from the training sessions that ``fit`` receives. Fitting is vectorized (one
  pass pairing click t with click t + 1 of the flat click array).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from baselines.rules import prune_rows, sequential_rule_matrix
from baselines.sparse_rows import SparseRows
from sessbench.data.sessions import Prefixes, TrainingData
from sessbench.models import FitContext, SessionRecommender, choice_param, int_param, register_model

__all__ = ["BACKOFFS", "MarkovChain"]

BACKOFFS = ("popularity", "none")
DEFAULTS: dict[str, Any] = {"backoff": "popularity", "pruning": 0}


@register_model(
    "markov",
    groups=("simple",),
    defaults=DEFAULTS,
    description="First-order transitions from the last item, training popularity as the back-off",
)
class MarkovChain(SessionRecommender):
    """Markov: items that directly followed the last item, ties and gaps filled by popularity.

    Hyperparameters: ``backoff`` ("popularity" or "none") and ``pruning`` (transitions kept per
    item, 0 = all). See the module docstring for the exact scoring rule.
    """

    seed_dependent = False  # nothing random: one run stands for every seed

    def __init__(self, **params: Any) -> None:
        super().__init__(**{**DEFAULTS, **params})
        self.backoff = choice_param("markov", "backoff", self.params["backoff"], BACKOFFS)
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
        base = np.zeros(data.n_items + 1, dtype=np.float64)
        if self.backoff == "popularity":
            pop = data.item_popularity().astype(np.float64)
            pop[0] = 0.0
            base = pop / (pop.max() + 1.0)
        self._base = torch.from_numpy(base).to(self._device)
        ctx.logger.info(
            "markov: %d transitions (%.1f per item) in %.2fs", self.transitions.nnz,
            self.transitions.nnz / max(1, data.n_items), time.perf_counter() - t0,
        )

    @property
    def device(self) -> torch.device:
        return self._device

    def score(self, batch: Prefixes) -> torch.Tensor:
        """float64 [B, n_items + 1]: transitions from each last item + the back-off; column 0 = -inf."""
        if self._rows is None:
            raise RuntimeError("model 'markov' is not fitted: call fit() first")
        scores = self._rows.dense(batch.last_items, base=self._base)
        scores[:, 0] = -torch.inf
        return scores
