"""SKNN, V-SKNN and STAN: session-based nearest neighbours, vectorized over whole batches.

What they are
-------------
All three compare the current prefix with *training sessions* (not items): the prefix's nearest
training sessions vote for their items. They are the neighbourhood baselines of Jannach &
Ludewig ("When recurrent neural networks meet the neighborhood for session-based
recommendation", RecSys 2017), Ludewig & Jannach ("Evaluation of session-based recommendation
algorithms", UMUAI 2018) and Garg et al. ("Sequence and time aware neighborhood for
session-based recommendations: STAN", SIGIR 2019). The reference implementations are
session-rec's ``algorithms/knn/sknn.py`` (``ContextKNN``), ``vsknn.py`` (``VMContextKNN``) and
``stan.py`` (``STAN``) (github.com/rn5l/session-rec); we follow their definitions and defaults
and note every deviation below. This module is our own vectorized code, not a port.

Shared steps, for a prefix p (items x_1..x_L, x_L the last click) and a training session n
(as the set of its distinct items; |n| its number of distinct items):

1. Candidates: the training sessions that share at least one item with p. If there are more
   than ``sample_size``, only the ``sample_size`` most *recent* ones are kept (session-rec
   ``sampling='recent'``; ``sample_size=0`` keeps all, as in session-rec).
2. Similarity sim(p, n), model-specific (below). Candidates with sim <= 0 are dropped.
3. Neighbours: the ``k`` candidates with the highest similarity (ties: the more recent session).
4. Item scores: sum over the neighbours n that contain item i of sim(p, n) times a
   model-specific weight (1 for SKNN).

``sknn`` (ContextKNN):
    sim = |p ∩ n| / sqrt(|p| * |n|)           (cosine of the binary item vectors; p as a set)
    or ``similarity='jaccard'``: |p ∩ n| / |p ∪ n|.
    score(i) = sum_{n in N(p), i in n} sim(p, n).

``v-sknn`` (VMContextKNN, "vector multiplication"): the prefix is a real vector whose entry for
item x is a position weight w(x) of x's *last* click at position t (1-based) of L clicks:
    weighting='div' (default):  t / L          (linear decay: last click 1, first 1/L)
              'quadratic':      (t / L)^2
              'linear':         max(0, 1 - 0.1 (L - t))
              'log':            1 / log10(L - t + 1.7)
              'same':           1
    sim = sum_{x in p ∩ n} w(x) / |p|         (dot product with n's binary vector; session-rec's
                                               ``vec``, which its calc_similarity always uses)
    score(i) = sum_{n in N(p), i in n} sim(p, n) * g(step(p, n)), where step(p, n) = 1 + the
    number of clicks after the most recent click of p whose item is in n, and
    weighting_score='div' (default): g(s) = 1/s; 'quadratic': 1/s^2; 'linear':
    1 - 0.1 s (0 beyond s = 100); 'log': 1/log10(s + 1.7); 'same': 1 (baselines/decays.py,
    SR's distance weights: session-rec defines both alike).
    With ``idf_weighting`` = c > 0 each vote for item i is multiplied by 1 + c * idf(i),
    idf(i) = log(training sessions / training clicks of i) (session-rec's definition: clicks,
    not sessions, in the denominator; 0 for items never clicked in training). The factor
    depends on the item alone, so it multiplies i's summed score. 0 (default) is off.

``stan`` (STAN): three exponential decays.
    w(x) = exp((t - L) / lambda_spw)            (t: position of x's last click; spw)
    sim = sum_{x in p ∩ n} w(x) / (sqrt(sum_{x in p} w(x)^2) * sqrt(|n|))
          * exp(-(T - time(n)) / lambda_snh)    (snh: neighbour recency; lambda_snh in days)
    score(i) = sum_{n in N(p), i in n} sim(p, n) * exp(-|pos_n(i) - pos_n*| / lambda_inh)
    where pos_n(i) is the 1-based position of the last click of i in n and pos_n* the largest
    such position over the items n shares with p (the most recent shared item in n; inh).
    Any lambda set to null switches its decay off (session-rec's ``None`` does so for spw and
    inh; for snh it would fail there, which scales it by a number of seconds).

Choices and deviations, each deliberate
---------------------------------------
* Time. ``SessionSet.timestamps`` holds one time per training session (for the SR-GNN datasets
  the *date* of its last click, so sessions of one day tie); a ``Batch`` carries no time for
  the prefix. Recency (sampling, ties) orders sessions by (timestamp, stored index): stored
  order is the time order of the preprocessing, so same-day sessions are ordered by it. For
  STAN's snh decay T is the latest training timestamp instead of the prefix's own time. This
  changes nothing in the rankings: exp(-(t_now - time(n))/λ) = exp(-(t_now - T)/λ) *
  exp(-(T - time(n))/λ) and the first factor is the same for every neighbour of a prefix, so the
  top-k and every item ranking are the ones session-rec's definition gives with the true
  t_now >= T. Only the absolute score values differ (by that per-prefix factor).
  Splits imported from the official SR-GNN pickles (``sessbench data import-official``) carry
  no times: their timestamps are the file order, so recency follows that order and the snh
  decay (differences of a few thousand "seconds" over days) is close to 1, i.e. nearly off.
* Cosine. session-rec's ``ContextKNN.cosine(neighbour, prefix)`` computes
  ``li / sqrt(la) * sqrt(lb)`` = |p ∩ n| * sqrt(|p|) / sqrt(|n|) (operator precedence), which
  is the cosine times |p|, a constant per prefix: the same neighbours and rankings. We compute
  the cosine the paper defines, so the scores are the cosine sums. Its
  signature defaults to ``similarity='jaccard'`` and ``sample_size=1000`` while its docstring
  says k=100, sample_size=500; the paper's SKNN is the cosine one, so ``sknn`` defaults to cosine,
  k=100, sample_size=500.
* V-SKNN's ``linear`` position weighting: session-rec gives ``1 - 0.1 (L - t) if t <= 10
  else 0``, which cuts on the wrong index (the first 10 clicks, not the last 10) and goes
  negative; we use max(0, 1 - 0.1 (L - t)). Its ``linear`` vote decay is session-rec's
  exactly (negative for 10 < s <= 100, as SR's distance weight). The defaults (``div``/``div``)
  are unaffected. ``dwelling_time``, ``last_n_days``,
  ``weighting_time``, ``idf_weighting_session``, reminders (``push_reminders``/
  ``add_reminders``) and ``extend`` are session-rec options that are off by default and not
  implemented (``idf_weighting``, which session-rec's tuned DIGINETICA setting uses, is).
* Items of the prefix are not filtered out (session-rec's ``remind=True`` default for V-SKNN and
  STAN; SKNN has no filter). Final ``normalize`` (dividing by the max score) does not change a
  ranking and is skipped. Items that no neighbour contains score 0 (ties, counted as ties by the
  evaluator); column 0 is -inf. ``backoff`` is the tie policy shared by every rule and
  neighbour model (``baselines/ties.py``): ``none`` (default, as session-rec) leaves them tied,
  ``popularity`` orders them by training popularity below every neighbour's item.
* Each training session is a set of items for the similarity; STAN's positions (pos_n) count
  every click, repeats included, as session-rec does.

Vectorization and memory
------------------------
``fit`` builds the binary CSR session x item matrix S (sessions in recency order) and its
transpose, plus, for STAN, the last click position of every (session, item). ``score`` builds the
sparse [B, n_items + 1] prefix matrix P once per batch and computes every overlap as P @ S^T.
For the weighted models P holds ``1 + 1j * w`` so that one complex product yields both the
overlap counts (real part, which define the candidates even where a weight is 0) and the
weighted overlaps (imaginary part). The recency cut keeps the last ``sample_size`` entries of
each row (S^T's columns are in recency order); the top-k is a partition of a padded
[rows, width] matrix (or a lexsort for very uneven rows); SKNN's scores are W @ S for the
sparse neighbour weights W; V-SKNN's and STAN's per-(prefix, neighbour) quantities come from one
expansion of the neighbours' items, looked up in the prefix table with ``searchsorted``. Rows
are processed in chunks whose product terms (sum over a prefix's items of their session counts)
stay under ``max_chunk_terms``. No Python loop runs per prefix or per training session.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from baselines.decays import DECAYS, distance_decay
from baselines.sparse_rows import row_blocks
from baselines.ties import DEFAULT_BACKOFF, Backoff, backoff_param, tie_key
from sessbench.data.sessions import Prefixes, SessionSet, TrainingData
from sessbench.errors import ConfigError
from sessbench.models import FitContext, SessionRecommender, choice_param, int_param, register_model

__all__ = ["SKNN", "STAN", "VSKNN", "SessionIndex", "position_weights"]

DAY_S = 86_400

SKNN_DEFAULTS: dict[str, Any] = {"k": 100, "sample_size": 500, "similarity": "cosine", "backoff": DEFAULT_BACKOFF}
VSKNN_DEFAULTS: dict[str, Any] = {
    "k": 100, "sample_size": 1000, "weighting": "div", "weighting_score": "div", "idf_weighting": 0.0,
    "backoff": DEFAULT_BACKOFF,
}
STAN_DEFAULTS: dict[str, Any] = {
    "k": 100, "sample_size": 5000, "lambda_spw": 1.02, "lambda_snh": 5.0, "lambda_inh": 2.05,
    "backoff": DEFAULT_BACKOFF,
}


# ---------------------------------------------------------------------------- weights


def position_weights(kind: str, pos: np.ndarray, length: np.ndarray) -> np.ndarray:
    """V-SKNN's weight of a prefix click at 1-based position `pos` of `length` clicks."""
    pos = pos.astype(np.float64)
    length = length.astype(np.float64)
    back = length - pos  # clicks after it: 0 for the last click
    if kind == "same":
        return np.ones_like(pos)
    if kind == "div":
        return pos / length
    if kind == "quadratic":
        return (pos / length) ** 2
    if kind == "linear":
        return np.maximum(1.0 - 0.1 * back, 0.0)
    if kind == "log":
        return 1.0 / np.log10(back + 1.7)
    raise ValueError(kind)


# ---------------------------------------------------------------------------- data structures


@dataclass(frozen=True)
class SessionIndex:
    """The training sessions in recency order (index n+1 is at least as recent as n).

    s:        float64 CSR [n_sessions, n_items + 1], 1 where the session contains the item.
    st:       S transposed, CSR [n_items + 1, n_sessions] (item -> sessions, in recency order).
    last_pos: int64 [nnz of s], aligned with s.data: 1-based position of the item's last click
              in the session (repeats counted).
    sizes:    float64 [n_sessions], distinct items per session.
    age_s:    float64 [n_sessions], latest training timestamp minus the session's timestamp.
    """

    s: sp.csr_array
    st: sp.csr_array
    last_pos: np.ndarray
    sizes: np.ndarray
    age_s: np.ndarray

    @classmethod
    def build(cls, sessions: SessionSet, n_items: int) -> SessionIndex:
        order = np.lexsort((np.arange(sessions.n_sessions), sessions.timestamps))
        if not np.array_equal(order, np.arange(sessions.n_sessions)):
            sessions = sessions.subset(order)
        n_cols = n_items + 1
        rows = sessions.session_index_of_clicks()
        pos = np.arange(sessions.n_clicks, dtype=np.int64) - sessions.offsets[rows] + 1
        key = rows * n_cols + sessions.items.astype(np.int64)
        by_key = np.lexsort((pos, key))  # by (session, item), last click last
        key, pos = key[by_key], pos[by_key]
        last = np.ones(len(key), dtype=bool)
        last[:-1] = key[1:] != key[:-1]
        key, pos = key[last], pos[last]
        s_rows = key // n_cols
        indptr = np.zeros(sessions.n_sessions + 1, dtype=np.int64)
        np.cumsum(np.bincount(s_rows, minlength=sessions.n_sessions), out=indptr[1:])
        s = sp.csr_array(
            (np.ones(len(key)), (key % n_cols).astype(np.int32), indptr),
            shape=(sessions.n_sessions, n_cols),
        )
        times = sessions.timestamps.astype(np.float64)
        age = (times.max() - times) if len(times) else times
        return cls(s=s, st=s.T.tocsr(), last_pos=pos, sizes=np.diff(indptr).astype(np.float64), age_s=age)


@dataclass(frozen=True)
class PrefixSets:
    """A chunk of prefixes as sets: entry e is (row[e], item[e]) sorted by (row, item).

    pos:    1-based position of the item's last click in the prefix.
    length: int64 [rows], clicks in each prefix (repeats counted).
    indptr: int64 [rows + 1], entries of each row.
    """

    row: np.ndarray
    item: np.ndarray
    pos: np.ndarray
    length: np.ndarray
    indptr: np.ndarray
    n_cols: int

    @classmethod
    def from_padded(cls, items: np.ndarray, lengths: np.ndarray, n_cols: int) -> PrefixSets:
        n_rows, width = items.shape
        valid = np.arange(width)[None, :] < lengths[:, None]
        row, col = np.nonzero(valid)
        item = items[row, col].astype(np.int64)
        key = row * n_cols + item
        order = np.lexsort((col, key))
        key, col = key[order], col[order]
        last = np.ones(len(key), dtype=bool)
        last[:-1] = key[1:] != key[:-1]
        key, col = key[last], col[last]
        row = key // n_cols
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=n_rows), out=indptr[1:])
        return cls(row, key % n_cols, col + 1, lengths.astype(np.int64), indptr, n_cols)

    @property
    def n_rows(self) -> int:
        return len(self.length)

    @property
    def keys(self) -> np.ndarray:
        return self.row * self.n_cols + self.item

    def rows(self, start: int, end: int) -> PrefixSets:
        a, b = self.indptr[start], self.indptr[end]
        return PrefixSets(
            self.row[a:b] - start, self.item[a:b], self.pos[a:b], self.length[start:end],
            self.indptr[start : end + 1] - a, self.n_cols,
        )

    def matrix(self, values: np.ndarray) -> sp.csr_array:
        return sp.csr_array((values, self.item.astype(np.int32), self.indptr), shape=(self.n_rows, self.n_cols))


@dataclass(frozen=True)
class Candidates:
    """(prefix row, training session) pairs, grouped by row, sessions ascending within a row."""

    row: np.ndarray
    session: np.ndarray
    overlap: np.ndarray  # |p ∩ n|
    weighted: np.ndarray  # sum of the prefix weights over p ∩ n (== overlap when unweighted)


@dataclass(frozen=True)
class Expansion:
    """Every distinct item of every neighbour, with what the prefix knows of it.

    pair:  index of the (row, session) neighbour pair; entries are grouped by pair.
    start: int64 [n_pairs], first entry of each pair (each pair has >= 1 entry).
    item, last_pos: the neighbour's item and the 1-based position of its last click there.
    in_prefix: whether the prefix contains the item; prefix_pos: its position there (or 0).
    """

    pair: np.ndarray
    start: np.ndarray
    item: np.ndarray
    last_pos: np.ndarray
    in_prefix: np.ndarray
    prefix_pos: np.ndarray


def _check_decay(model: str, name: str, value: Any) -> float | None:
    """A positive finite decay constant, or None (decay off)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ConfigError(f"model '{model}': {name}={value!r} must be a number > 0 or null (off).")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"model '{model}': {name}={value!r} must be a number > 0 or null (off).")
    return value


# ---------------------------------------------------------------------------- the shared model


class _SessionKNN(SessionRecommender):
    """The shared pipeline (module docstring, steps 1-4); subclasses define the model parts."""

    seed_dependent = False  # nothing random: one run stands for every seed

    defaults: ClassVar[dict[str, Any]] = {}
    #: bound on the product terms of one chunk of rows (memory knob, not a hyperparameter)
    max_chunk_terms: ClassVar[int] = 1 << 22

    def __init__(self, **params: Any) -> None:
        super().__init__(**{**self.defaults, **params})  # unknown keys: rejected by the config layer
        self.k = int_param(self.name, "k", self.params["k"], 1)
        self.sample_size = int_param(self.name, "sample_size", self.params["sample_size"], 0)
        self.backoff = backoff_param(self.name, self.params["backoff"])
        self.index: SessionIndex | None = None
        self.n_items = 0

    # -- model parts
    def prefix_weights(self, pre: PrefixSets) -> np.ndarray | None:
        """Weight of each prefix entry (None: binary)."""
        return None

    def similarity(self, pre: PrefixSets, cand: Candidates, w: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def item_scores(self, pre: PrefixSets, row: np.ndarray, session: np.ndarray, sim: np.ndarray) -> np.ndarray:
        """Dense float64 [rows, n_items + 1] scores from the neighbours; default: sum of sims."""
        assert self.index is not None
        w = sp.csr_array((sim, (row, session)), shape=(pre.n_rows, self.index.s.shape[0]))
        return (w @ self.index.s).toarray()

    # -- fit / score
    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        t0 = time.perf_counter()
        self.index = SessionIndex.build(data.train, data.n_items)
        self.n_items = data.n_items
        self._backoff = Backoff(self.backoff, data)
        ctx.logger.info(
            "%s: indexed %d training sessions (%d session-item pairs) in %.2fs",
            self.name, self.index.s.shape[0], self.index.s.nnz, time.perf_counter() - t0,
        )

    def score(self, batch: Prefixes) -> torch.Tensor:
        if self.index is None:
            raise RuntimeError(f"model '{self.name}' is not fitted: call fit() first")
        items = batch.items.cpu().numpy()
        lengths = batch.lengths.cpu().numpy()
        pre = PrefixSets.from_padded(items, lengths, self.n_items + 1)
        support = np.diff(self.index.st.indptr)
        work = np.bincount(pre.row, weights=support[pre.item], minlength=pre.n_rows) + 1
        out = np.zeros((pre.n_rows, self.n_items + 1), dtype=np.float32)
        for start, end in row_blocks(work.astype(np.int64), int(self.max_chunk_terms)):
            chunk = pre.rows(start, end)
            row, session, sim = self.neighbours(chunk)
            out[start:end] = self.item_scores(chunk, row, session, sim)
        scores = self._backoff.apply(torch.from_numpy(out))
        scores[:, 0] = -torch.inf
        return scores

    def candidates(self, pre: PrefixSets, w: np.ndarray | None) -> Candidates:
        """Sessions sharing an item with each prefix, cut to the `sample_size` most recent."""
        assert self.index is not None
        values = np.ones(len(pre.item)) if w is None else 1.0 + 1j * w
        overlap = (pre.matrix(values) @ self.index.st).tocsr()
        overlap.sort_indices()
        counts = np.diff(overlap.indptr)
        row = np.repeat(np.arange(pre.n_rows, dtype=np.int64), counts)
        keep = np.ones(len(row), dtype=bool)
        if self.sample_size > 0:
            from_end = overlap.indptr[row + 1] - 1 - np.arange(len(row))
            keep = from_end < self.sample_size
        data = overlap.data[keep]
        real = np.real(data)
        return Candidates(
            row=row[keep], session=overlap.indices[keep].astype(np.int64),
            overlap=real, weighted=real if w is None else np.imag(data),
        )

    def neighbours(self, pre: PrefixSets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, session, similarity) of each prefix's k nearest neighbours."""
        w = self.prefix_weights(pre)
        cand = self.candidates(pre, w)
        sim = self.similarity(pre, cand, w)
        keep = sim > 0
        row, session, sim = cand.row[keep], cand.session[keep], sim[keep]
        sel = top_k_per_row(row, session, tie_key(sim), pre.n_rows, self.k, budget=int(self.max_chunk_terms))
        return row[sel], session[sel], sim[sel]

    def expand(self, pre: PrefixSets, row: np.ndarray, session: np.ndarray) -> Expansion:
        """The items of each neighbour session, looked up in its prefix."""
        assert self.index is not None
        s = self.index.s
        lens = np.diff(s.indptr)[session]
        start = np.cumsum(lens) - lens
        total = int(lens.sum())
        pair = np.repeat(np.arange(len(session), dtype=np.int64), lens)
        src = np.repeat(s.indptr[session], lens) + np.arange(total, dtype=np.int64) - start[pair]
        item = s.indices[src].astype(np.int64)
        keys = pre.keys
        query = row[pair] * pre.n_cols + item
        at = np.minimum(np.searchsorted(keys, query), max(len(keys) - 1, 0))
        found = keys[at] == query if len(keys) else np.zeros(total, dtype=bool)
        return Expansion(
            pair=pair, start=start, item=item, last_pos=self.index.last_pos[src],
            in_prefix=found, prefix_pos=np.where(found, pre.pos[at], 0),
        )

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


def top_k_per_row(
    row: np.ndarray, session: np.ndarray, sim: np.ndarray, n_rows: int, k: int, budget: int
) -> np.ndarray:
    """Indices of each row's `k` largest `sim` (ties: larger session index, i.e. more recent).

    Entries are grouped by row with sessions ascending. Rows with at most k entries keep them
    all; otherwise a partition of a padded [rows, width] matrix (width = the longest row,
    filled most recent first) finds each row's k-th value, or a lexsort does when that matrix
    would exceed `budget` cells.
    """
    counts = np.bincount(row, minlength=n_rows)
    if len(row) == 0 or counts.max() <= k:
        return np.arange(len(row))
    width = int(counts.max())
    if n_rows * width > budget:
        order = np.lexsort((-session, -sim, row))
        first = np.cumsum(counts) - counts
        rank = np.arange(len(row)) - first[row[order]]
        return np.sort(order[rank < k])
    ends = np.cumsum(counts)
    col = ends[row] - 1 - np.arange(len(row))  # 0 = most recent entry of the row
    grid = np.full((n_rows, width), -np.inf)
    grid[row, col] = sim
    kth = -np.partition(-grid, k - 1, axis=1)[:, k - 1]
    above = grid > kth[:, None]
    tied = (grid == kth[:, None]) & (grid > -np.inf)
    need = k - above.sum(1)
    take = above | (tied & (np.cumsum(tied, axis=1) <= need[:, None]))
    r, c = np.nonzero(take)
    return np.sort(ends[r] - 1 - c)


# ---------------------------------------------------------------------------- the three models


@register_model(
    "sknn",
    groups=("simple",),
    defaults=SKNN_DEFAULTS,
    description="Session-based kNN: items of the k most similar recent training sessions (cosine)",
)
class SKNN(_SessionKNN):
    """SKNN: the prefix's k most similar (cosine, binary) recent training sessions vote.

    Hyperparameters: ``k`` neighbours, ``sample_size`` most recent candidate sessions (0 = all),
    ``similarity`` ('cosine' or 'jaccard'), ``backoff`` (baselines/ties.py). See the module docstring.
    """

    defaults = SKNN_DEFAULTS

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.similarity_kind = choice_param(self.name, "similarity", self.params["similarity"], ("cosine", "jaccard"))

    def similarity(self, pre: PrefixSets, cand: Candidates, w: np.ndarray | None) -> np.ndarray:
        assert self.index is not None
        n_prefix = np.diff(pre.indptr).astype(np.float64)[cand.row]
        n_session = self.index.sizes[cand.session]
        if self.similarity_kind == "jaccard":
            return cand.overlap / (n_prefix + n_session - cand.overlap)
        return cand.overlap / np.sqrt(n_prefix * n_session)


@register_model(
    "v-sknn",
    groups=("simple",),
    defaults=VSKNN_DEFAULTS,
    description="Vector-multiplication SKNN: position-weighted prefix, neighbours decayed by recency of the match",
)
class VSKNN(_SessionKNN):
    """V-SKNN: SKNN with a position-weighted prefix vector and a decay on each neighbour's vote.

    Hyperparameters: ``k``, ``sample_size`` (as SKNN), ``weighting`` (prefix position weights)
    and ``weighting_score`` (neighbour decay by how far back the most recent shared click is),
    each one of same, div, linear, log, quadratic, ``idf_weighting`` (>= 0; 0 = off) and
    ``backoff`` (baselines/ties.py). See the module docstring.
    """

    defaults = VSKNN_DEFAULTS

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.weighting = choice_param(self.name, "weighting", self.params["weighting"], DECAYS)
        self.weighting_score = choice_param(self.name, "weighting_score", self.params["weighting_score"], DECAYS)
        c = self.params["idf_weighting"]
        if isinstance(c, bool) or not isinstance(c, (int, float, np.number)) or not math.isfinite(c) or c < 0:
            raise ConfigError(f"model '{self.name}': idf_weighting={c!r} must be a number >= 0 (0 = off).")
        self.idf_weighting = float(c)
        self.item_factor: np.ndarray | None = None

    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        super().fit(data, ctx)
        if self.idf_weighting > 0:
            clicks = np.bincount(data.train.items.astype(np.int64), minlength=data.n_items + 1).astype(np.float64)
            idf = np.zeros_like(clicks)
            seen = clicks > 0
            idf[seen] = np.log(data.train.n_sessions / clicks[seen])
            self.item_factor = 1.0 + self.idf_weighting * idf

    def prefix_weights(self, pre: PrefixSets) -> np.ndarray:
        return position_weights(self.weighting, pre.pos, pre.length[pre.row])

    def similarity(self, pre: PrefixSets, cand: Candidates, w: np.ndarray | None) -> np.ndarray:
        n_prefix = np.diff(pre.indptr).astype(np.float64)[cand.row]
        return cand.weighted / n_prefix

    def item_scores(self, pre: PrefixSets, row: np.ndarray, session: np.ndarray, sim: np.ndarray) -> np.ndarray:
        if len(row) and self.weighting_score != "same":
            ex = self.expand(pre, row, session)
            # clicks after the most recent shared click; a shared item's last click is its nearest
            back = np.where(ex.in_prefix, pre.length[row[ex.pair]] - ex.prefix_pos, np.iinfo(np.int64).max)
            step = np.minimum.reduceat(back, ex.start) + 1
            sim = sim * distance_decay(self.weighting_score, step)
        scores = super().item_scores(pre, row, session, sim)
        if self.item_factor is not None:
            scores *= self.item_factor
        return scores


@register_model(
    "stan",
    groups=("simple",),
    defaults=STAN_DEFAULTS,
    description="STAN: SKNN with decays by prefix position, neighbour recency and item distance in the neighbour",
)
class STAN(_SessionKNN):
    """STAN: sequence- and time-aware neighbourhood (Garg et al., SIGIR 2019).

    Hyperparameters: ``k``, ``sample_size`` (as SKNN), ``lambda_spw`` (prefix position decay,
    in clicks), ``lambda_snh`` (neighbour recency decay, in days), ``lambda_inh`` (decay with an
    item's distance from the most recent shared item in the neighbour, in clicks); null turns a
    decay off; ``backoff`` (baselines/ties.py). See the module docstring (also for the time
    reference T).
    """

    defaults = STAN_DEFAULTS

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.lambda_spw = _check_decay(self.name, "lambda_spw", self.params["lambda_spw"])
        self.lambda_snh = _check_decay(self.name, "lambda_snh", self.params["lambda_snh"])
        self.lambda_inh = _check_decay(self.name, "lambda_inh", self.params["lambda_inh"])

    def prefix_weights(self, pre: PrefixSets) -> np.ndarray:
        if self.lambda_spw is None:
            return np.ones(len(pre.item))
        return np.exp((pre.pos - pre.length[pre.row]).astype(np.float64) / self.lambda_spw)

    def similarity(self, pre: PrefixSets, cand: Candidates, w: np.ndarray | None) -> np.ndarray:
        assert self.index is not None and w is not None
        norm = np.sqrt(np.bincount(pre.row, weights=w * w, minlength=pre.n_rows))
        sim = cand.weighted / (norm[cand.row] * np.sqrt(self.index.sizes[cand.session]))
        if self.lambda_snh is not None:
            sim = sim * np.exp(-self.index.age_s[cand.session] / (self.lambda_snh * DAY_S))
        return sim

    def item_scores(self, pre: PrefixSets, row: np.ndarray, session: np.ndarray, sim: np.ndarray) -> np.ndarray:
        if self.lambda_inh is None or len(row) == 0:
            return super().item_scores(pre, row, session, sim)
        ex = self.expand(pre, row, session)
        anchor = np.maximum.reduceat(np.where(ex.in_prefix, ex.last_pos, 0), ex.start)
        distance = np.abs(ex.last_pos - anchor[ex.pair]).astype(np.float64)
        weight = sim[ex.pair] * np.exp(-distance / self.lambda_inh)
        target = row[ex.pair] * pre.n_cols + ex.item
        flat = np.bincount(target, weights=weight, minlength=pre.n_rows * pre.n_cols)
        return flat.reshape(pre.n_rows, pre.n_cols)
