"""Extra negative samples drawn in proportion to popularity^alpha, in bulk, as GRU4Rec does.

Besides the other targets of the mini-batch, every step scores `n_sample` extra items drawn with
probability proportional to `support^sample_alpha` (alpha = 1: popularity sampling, alpha = 0:
uniform over the items seen in training). Drawing per step would interrupt the network for a
tiny random job, so, like the official code, a store of `cache_size // n_sample` steps' worth of
samples is drawn at once (one vectorized inverse-CDF lookup) and handed out row by row; it is
redrawn when used up. Items never clicked in training are never drawn (the official code only
knows training items), and neither is padding (index 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def sampling_weights(popularity: np.ndarray, alpha: float) -> np.ndarray:
    """float64 [n_items + 1]: popularity^alpha on clicked items, 0 on unclicked ones and padding."""
    pop = np.asarray(popularity, dtype=np.float64)
    weights = np.where(pop > 0, np.power(np.maximum(pop, 1.0), alpha), 0.0)
    weights[0] = 0.0
    return weights


class SampleCache:
    """Hands out rows of `n_sample` negatives from a store drawn in bulk with `rng`.

    weights: unnormalized sampling weight per item index (see `sampling_weights`).
    cache_size: how many item ids one refill draws (rounded down to whole rows, at least one row).
    max_rows: never draw more rows than this at once (the steps of one epoch: more would only
              cost time and memory on small data).
    """

    def __init__(
        self,
        weights: np.ndarray,
        n_sample: int,
        cache_size: int,
        rng: np.random.Generator,
        device: torch.device | str = "cpu",
        max_rows: int | None = None,
    ) -> None:
        if n_sample < 0:
            raise ValueError("n_sample must be >= 0")
        total = float(np.sum(weights))
        if n_sample > 0 and total <= 0:
            raise ValueError("no item can be sampled: every sampling weight is zero")
        self.n_sample = int(n_sample)
        self.rows = max(1, int(cache_size) // max(self.n_sample, 1))
        if max_rows is not None:
            self.rows = max(1, min(self.rows, int(max_rows)))
        self.cdf = np.cumsum(np.asarray(weights, dtype=np.float64)) / max(total, 1e-300)
        self.cdf[-1] = 1.0
        self.rng = rng
        self.device = torch.device(device)
        self._store = torch.zeros((0, self.n_sample), dtype=torch.int64)
        self._next = 0
        self.refills = 0
        self._empty = torch.zeros(0, dtype=torch.int64, device=self.device)

    def _refill(self) -> None:
        u = self.rng.random(self.rows * self.n_sample)
        # first index whose cumulative weight exceeds u: item i is drawn with probability w_i / sum
        ids = np.searchsorted(self.cdf, u, side="right")
        np.minimum(ids, len(self.cdf) - 1, out=ids)
        self._store = torch.from_numpy(ids.astype(np.int64).reshape(self.rows, self.n_sample)).to(self.device)
        self._next = 0
        self.refills += 1

    def state(self) -> dict[str, Any]:
        """The undrawn store and position (the rng's own state is saved by its owner)."""
        return {"store": self._store.cpu(), "next": self._next, "refills": self.refills}

    def load_state(self, state: dict[str, Any]) -> None:
        self._store = state["store"].to(self.device)
        self._next = int(state["next"])
        self.refills = int(state["refills"])

    def get(self) -> torch.Tensor:
        """int64 [n_sample]: the next row of negatives (empty when n_sample is 0)."""
        if self.n_sample == 0:
            return self._empty
        if self._next >= len(self._store):
            self._refill()
        row = self._store[self._next]
        self._next += 1
        return row
