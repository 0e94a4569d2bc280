"""Ties: one policy for the items a rule or neighbour model leaves unscored, and float noise.

The back-off (``backoff``, one hyperparameter with one default for Item-KNN, AR, SR, Markov,
SKNN, V-SKNN and STAN)
------------------------------------------------------------------------------------------
These models score only the items their rules or neighbours reach (the last item's 20 to 100
neighbours or rules, the items of the k nearest sessions); every other item scores exactly 0,
so most of the catalogue ties. The evaluator counts ties exactly: a target inside the tie group
gets the expected rank under uniformly random tie-breaking (``sessbench/evaluation.py``), so a
tie neither flatters nor punishes a model, and no tie-break is needed to be fair. Two policies:

* ``backoff: none`` (the default): unscored items stay at 0 and tie. This is what the reference
  implementations do (session-rec's ItemKNN, AR, SR, MarkovModel, ContextKNN, VMContextKNN,
  STAN, and the GRU4Rec authors' Item-KNN all leave them at 0), so our figures are those models'.
* ``backoff: popularity``: the unscored items are ordered by training popularity, below every
  scored item and above every negative one (SR's ``linear`` weighting can give negative rules):
  an unscored item i gets ``0.5 * m * pop(i) / (max pop + 1)``, m the row's smallest positive
  score (1 when there is none), so an item never clicked in training stays at 0. Scored items
  keep their scores exactly: ties among them stay ties. The model becomes a hybrid (its rules,
  then POP), which helps exactly where it reaches fewer than 20 items.

`backoff_param` validates the value, `Backoff` holds the fitted popularity row and applies it.

Float noise (`tie_key`)
-----------------------
Two quantities that are equal in exact arithmetic (a similarity of 29/25 / 25 summed in two
orders, a rule weight of 1 + 1/3 + 1 against 1/3 + 2) can differ in their last bit, and then a
"ties go to the more recent session" or "ties go to the lower item" rule is decided by rounding
noise instead. `tie_key` rounds to 40 of float64's 53 mantissa bits (about 12 significant
digits) for ordering only; the values themselves stay exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sessbench.data.sessions import TrainingData
from sessbench.models import choice_param

__all__ = ["BACKOFFS", "DEFAULT_BACKOFF", "Backoff", "backoff_param", "tie_key"]

BACKOFFS = ("none", "popularity")
DEFAULT_BACKOFF = "none"

_BITS = 40


def tie_key(values: np.ndarray) -> np.ndarray:
    """float64 `values` rounded to 40 significant bits, for sorting and selecting with ties."""
    mantissa, exponent = np.frexp(np.asarray(values, dtype=np.float64))
    return np.ldexp(np.round(mantissa * 2.0**_BITS) / 2.0**_BITS, exponent)


def backoff_param(model: str, value: Any) -> str:
    """The `backoff` hyperparameter of `model`: one of BACKOFFS, or a ConfigError."""
    return choice_param(model, "backoff", value, BACKOFFS)


class Backoff:
    """The fitted back-off of one model: `apply(scores)` fills the unscored items (see the module doc)."""

    def __init__(self, kind: str, data: TrainingData, device: torch.device | str = "cpu") -> None:
        self.kind = kind
        self.fill: torch.Tensor | None = None
        if kind == "popularity":
            pop = data.item_popularity().astype(np.float64)
            pop[0] = 0.0
            self.fill = torch.from_numpy(0.5 * pop[1:] / (pop.max() + 1.0)).to(device)

    def apply(self, scores: torch.Tensor) -> torch.Tensor:
        """`scores` [B, n_items + 1] with its unscored real items (exactly 0) filled, in place."""
        if self.fill is None:
            return scores
        real = scores[:, 1:]
        positive = torch.where(real > 0, real, torch.full_like(real, torch.inf)).amin(dim=1, keepdim=True)
        scale = torch.where(torch.isinf(positive), torch.ones_like(positive), positive)
        fill = scale * self.fill.to(real.device, real.dtype).unsqueeze(0)
        real.copy_(torch.where(real == 0, fill, real))
        return scores
