"""Item-KNN: the item-to-item baseline of the GRU4Rec paper, kept sparse from end to end.

What it is
----------
Item-based collaborative filtering (Sarwar, Karypis, Konstan, Riedl, "Item-based collaborative
filtering recommendation algorithms", WWW 2001) in the form Hidasi et al. used as the session
baseline of GRU4Rec ("Session-based recommendations with recurrent neural networks", ICLR 2016,
section 4: "Item-KNN") and that the SR-GNN paper's Table 2 reports: the items most similar to
the *last* clicked item of the prefix are recommended, where two items are similar when they
occur in the same training sessions.

Similarity, with S_i the set of training sessions that contain item i:

    sim(i, j) = |S_i ∩ S_j| / ((|S_i| + lmbd)^alpha * (|S_j| + lmbd)^(1 - alpha)),    sim(i, i) = 0

alpha = 0.5 is the cosine between the items' session vectors; ``lmbd`` shrinks the similarity
of rarely seen items (the paper: "regularization is also included to avoid coincidental high
similarities of rarely visited items"). Only the ``n_sims`` most similar items of each item keep
a score (ties broken towards the lower item index); every other item scores 0.

Adaptations and choices, each deliberate
----------------------------------------
* The regularizer's place: the GRU4Rec authors' baseline code (hidasib/GRU4Rec, baselines.py,
  class ``CoOccurence``/``ItemKNN`` with ``n_sims=100, lmbd=20, alpha=0.5``) and session-rec's
  ``ItemKNN``, which documents it as ``s_ij = sum_s I{i in s and j in s} / (supp_i + λ)^α
  (supp_j + λ)^(1-α)``, add λ to each support *inside* the powers. We follow that reference code
  rather than the ``|S_i|^α |S_j|^(1-α) + λ`` form (λ added once to the product) sometimes
  quoted for it; both shrink rare items, the reference form is what produced the published
  numbers. The defaults are the reference code's.
* Sessions as sets: the paper defines the similarity as the cosine of the items' session vectors
  ("the number of co-occurrences of two items in sessions divided by the square root of the
  product of the numbers of sessions in which the individual items occurred"), so an item
  clicked twice in a session counts once. The reference code counts click pairs instead (an
  item clicked twice contributes twice to its support and to its co-occurrences); on data
  without repeated clicks the two agree.
* Only the last item of the prefix is used, and it never recommends itself (sim(i, i) = 0), as
  in the reference; items outside its neighbour list tie at 0, which the evaluator scores as the
  expected rank under random tie-breaking. ``backoff`` is the tie policy shared by every rule
  and neighbour model (``baselines/ties.py``): ``none`` (default, as the reference) leaves those
  items tied at 0, ``popularity`` orders them by training popularity below the neighbours.
* Co-occurrences come from the training sessions that ``fit`` receives (under the ``validated``
  protocol the validation sessions are held out of them too).

Memory
------
Nothing of size n_items x n_items is ever built. The binary session x item matrix X is sparse;
the co-occurrences X^T X are computed for one block of items at a time, and each block is
pruned to its rows' top ``n_sims`` before the next one starts. A block's size is chosen so that
the number of product terms it can produce (sum over its items of the lengths of the sessions
that contain them, an upper bound of the block's non-zeros) stays under ``max_block_terms``, so
peak memory is O(max_block_terms + n_items * n_sims + clicks) whatever the catalogue size.
The result is a scipy.sparse CSR matrix of (n_items + 1) rows with at most ``n_sims`` entries
each; scoring a batch gathers the rows of its last items into a dense [B, n_items + 1] tensor,
the only dense object, and only for the batch.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from baselines.sparse_rows import SparseRows, row_blocks, top_n_per_row
from baselines.ties import DEFAULT_BACKOFF, Backoff, backoff_param
from sessbench.data.sessions import Prefixes, SessionSet, TrainingData
from sessbench.errors import ConfigError
from sessbench.models import FitContext, SessionRecommender, int_param, register_model

__all__ = ["ItemKNN", "session_item_matrix", "cooccurrence_topn"]

log = logging.getLogger("sessbench.model.item-knn")

DEFAULTS: dict[str, Any] = {"n_sims": 100, "lmbd": 20.0, "alpha": 0.5, "backoff": DEFAULT_BACKOFF}


def session_item_matrix(sessions: SessionSet, n_items: int) -> sp.csr_array:
    """Binary int32 CSR [n_sessions, n_items + 1]: 1 where the session contains the item.

    Column 0 (padding) is always empty. Repeated clicks of an item in a session count once.
    """
    rows = sessions.session_index_of_clicks()
    matrix = sp.csr_array(
        (np.ones(sessions.n_clicks, dtype=np.int32), (rows, sessions.items.astype(np.int64))),
        shape=(sessions.n_sessions, n_items + 1),
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1
    return matrix


def cooccurrence_topn(
    x: sp.csr_array,
    *,
    n_sims: int,
    lmbd: float,
    alpha: float,
    max_block_terms: int,
) -> sp.csr_array:
    """The pruned similarity matrix of a binary session x item matrix `x` (see the module doc).

    float32 CSR [n_cols, n_cols]; row i holds the `n_sims` items most similar to item i, in
    decreasing order of similarity. Computed block by block of rows (see "Memory").
    """
    n_cols = x.shape[1]
    xt = x.T.tocsr()  # items x sessions
    support = np.diff(xt.indptr).astype(np.float64)  # |S_i|
    session_len = np.diff(x.indptr).astype(np.int64)  # distinct items per session
    work = xt @ session_len  # product terms each item's row of X^T X can create
    norm_i = np.power(support + lmbd, alpha)
    norm_j = np.power(support + lmbd, 1.0 - alpha)

    counts_parts: list[np.ndarray] = []
    col_parts: list[np.ndarray] = []
    val_parts: list[np.ndarray] = []
    for start, end in row_blocks(work, max_block_terms):
        block = (xt[start:end] @ x).tocsr()  # co-occurrence counts of items start..end-1
        n_rows = end - start
        rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(block.indptr))
        cols = block.indices.astype(np.int64)
        not_self = cols != rows + start
        rows, cols = rows[not_self], cols[not_self]
        sims = block.data[not_self].astype(np.float64) / (norm_i[rows + start] * norm_j[cols])
        del block
        counts, kept_cols, kept_vals = top_n_per_row(rows, cols, sims, n_rows, n_sims)
        counts_parts.append(counts)
        col_parts.append(kept_cols.astype(np.int32))
        val_parts.append(kept_vals.astype(np.float32))

    indptr = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(np.concatenate(counts_parts), out=indptr[1:])
    indices = np.concatenate(col_parts) if col_parts else np.zeros(0, np.int32)
    data = np.concatenate(val_parts) if val_parts else np.zeros(0, np.float32)
    return sp.csr_array((data, indices, indptr), shape=(n_cols, n_cols))


@register_model(
    "item-knn",
    groups=("baselines", "paper"),
    defaults=DEFAULTS,
    description="Items that co-occur in training sessions with the last clicked item (GRU4Rec's Item-KNN)",
)
class ItemKNN(SessionRecommender):
    """Item-KNN: the last item's most similar items by regularized session co-occurrence.

    Hyperparameters: ``n_sims`` neighbours kept per item, ``lmbd`` support regularizer,
    ``alpha`` asymmetry of the normalization (0.5 = cosine), ``backoff`` for the items outside
    the neighbour list ("none" or "popularity", baselines/ties.py). See the module docstring for the
    definition, the reference it follows and its memory bound.
    """

    seed_dependent = False  # nothing random: one run stands for every seed

    #: upper bound on the product terms of one block of X^T X (memory knob, not a hyperparameter:
    #: about 40 bytes per term at the peak of a block, so the default caps a block near 170 MB)
    max_block_terms: ClassVar[int] = 1 << 22

    def __init__(self, **params: Any) -> None:
        super().__init__(**{**DEFAULTS, **params})
        p = self.params
        self.n_sims = int_param("item-knn", "n_sims", p["n_sims"], 1)
        self.lmbd = float(p["lmbd"])
        self.alpha = float(p["alpha"])
        if not math.isfinite(self.lmbd) or self.lmbd < 0:
            raise ConfigError(f"model 'item-knn': lmbd={p['lmbd']!r} must be a number >= 0.")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"model 'item-knn': alpha={p['alpha']!r} must be in [0, 1].")
        self.backoff = backoff_param("item-knn", p["backoff"])
        self.similarity: sp.csr_array | None = None
        self._device = torch.device("cpu")

    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        t0 = time.perf_counter()
        x = session_item_matrix(data.train, data.n_items)
        self.similarity = cooccurrence_topn(
            x, n_sims=int(self.n_sims), lmbd=self.lmbd, alpha=self.alpha,
            max_block_terms=int(self.max_block_terms),
        )
        self.n_items = data.n_items
        self._device = torch.device(ctx.device)
        sim = self.similarity
        self._rows = SparseRows(sim, self._device, torch.float32)
        self._backoff = Backoff(self.backoff, data, self._device)
        ctx.logger.info(
            "item-knn: %d items, %d neighbour entries (%.1f per item) in %.2fs",
            data.n_items, sim.nnz, sim.nnz / max(1, data.n_items), time.perf_counter() - t0,
        )

    @property
    def device(self) -> torch.device:
        return self._device

    def score(self, batch: Prefixes) -> torch.Tensor:
        """Gather the similarity rows of the batch's last items into a dense [B, n_items + 1]."""
        if self.similarity is None:
            raise RuntimeError("model 'item-knn' is not fitted: call fit() first")
        return self._backoff.apply(self._rows.dense(batch.last_items))
