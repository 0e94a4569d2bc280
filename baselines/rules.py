"""AR and SR: association rules and sequential rules, the simple baselines of session-rec.

What they are
-------------
Ludewig & Jannach ("Evaluation of session-based recommendation algorithms", UMUAI 2018) and
Ludewig, Mauro, Latifi & Jannach ("Performance comparison of neural and non-neural approaches to
session-based recommendation", RecSys 2019; "Empirical analysis of session-based recommendation
algorithms", UMUAI 2020) show that two rule counts, scored from the *last* item of the prefix,
are hard to beat:

* AR (association rules): rule a -> b counts how often a and b occur in the same training
  session, in either order. Symmetric.
* SR (sequential rules): rule a -> b sums, over training sessions where b is clicked ``d``
  positions after a (1 <= d <= ``steps``), the weight w(d). The default weighting ``div`` is
  w(d) = 1/d, so b right after a counts 1, two clicks later 1/2, and so on.

The score of item j for a prefix is rule(last item, j); items without a rule score 0 (ties,
which the evaluator counts as the expected rank under random tie-breaking). ``backoff`` is the
tie policy shared by every rule and neighbour model (``baselines/ties.py``): ``none`` (default,
as session-rec) leaves them tied, ``popularity`` orders them by training popularity below every
rule (and above SR's negative ``linear`` rules).

Reference and its defaults
--------------------------
The definitions and defaults follow the reference code, rn5l/session-rec,
``algorithms/baselines/ar.py`` (``AssociationRules(pruning=20)``) and
``algorithms/baselines/sr.py`` (``SequentialRules(steps=10, weighting='div', pruning=20,
last_n_days=None, idf_weight=False)``; its docstring says steps=3 / pruning=0, the constructor,
which is what ran, says 10 / 20). Details of that code that change results, and what we do:

* Clicks, not sets: session-rec walks the clicks, so an item clicked twice in a session makes
  its pairs twice. AR counts every pair of click *positions* (s < t) of a session once in each
  direction; SR counts every pair of positions at distance d <= steps. We do the same: with
  click-count matrix X (sessions x items), AR = X^T X - diag(clicks per item).
* Self-rules: a repeated item forms a pair with itself (session-rec adds 2 to rules[a][a] for
  every pair of positions of a in AR, w(d) in SR), so the last item of the prefix *can* be
  recommended again. We keep that (there is no masking of the prefix's items in session-rec).
* Pruning: after counting, each item keeps only its ``pruning`` strongest rules (0 = keep all),
  as session-rec's ``prune`` does with ``Counter.most_common``. session-rec breaks ties by the
  order in which the rules were first seen; we break them towards the lower item index
  (deterministic and independent of session order). session-rec's fractional pruning
  (0 < pruning < 1: drop that share of each item's rules) is not supported.
* session-rec divides each prediction by its maximum; that does not change a ranking, so we
  return the raw rule values. For a last item without rules it returns 0/0 = NaN everywhere;
  we return 0 everywhere (all items tie).
* SR's other weightings are the reference's formulas (``baselines/decays.py``, shared with
  V-SKNN): ``same`` 1, ``linear`` 1 - 0.1 d (0 beyond d = 100, and negative for
  10 < d <= 100 exactly as in session-rec), ``log`` 1 / log10(d + 1.7), ``quadratic`` 1 / d^2.
  ``last_n_days`` and ``idf_weight`` (off by default there) are not implemented.
* Rules come from the training sessions that ``fit`` receives (under the ``validated``
  protocol the validation sessions are held out).

Fitting is vectorized: SR pairs positions t and t + d of the flat click array for each d in
1..steps (a loop over ``steps``, never over sessions); AR multiplies the sparse session x item
matrix by its transpose, one block of items at a time (the same memory bound as Item-KNN), and
prunes each block before the next one. Scoring gathers the last items' rows into a dense
[B, n_items + 1] float32 tensor with column 0 = -inf.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from baselines.decays import DECAYS, distance_decay
from baselines.sparse_rows import SparseRows, row_blocks, top_n_per_row
from baselines.ties import DEFAULT_BACKOFF, Backoff, backoff_param, tie_key
from sessbench.data.sessions import Prefixes, SessionSet, TrainingData
from sessbench.models import FitContext, SessionRecommender, choice_param, int_param, register_model

__all__ = [
    "AssociationRules",
    "SequentialRules",
    "association_rule_matrix",
    "prune_rows",
    "sequential_rule_matrix",
]

AR_DEFAULTS: dict[str, Any] = {"pruning": 20, "backoff": DEFAULT_BACKOFF}
SR_DEFAULTS: dict[str, Any] = {"steps": 10, "weighting": "div", "pruning": 20, "backoff": DEFAULT_BACKOFF}


# ---------------------------------------------------------------------------- rule matrices


def prune_rows(matrix: sp.csr_array, keep: int) -> sp.csr_array:
    """Each row's `keep` largest entries (ties: lower column first); keep=0 keeps all.

    Returns a CSR array of the same shape and dtype, explicit zeros removed.
    """
    m = sp.csr_array(matrix)
    m.eliminate_zeros()
    n_rows = m.shape[0]
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(m.indptr))
    cols, values = m.indices.astype(np.int64), m.data
    if keep > 0:  # equal rules (up to float noise): lower item first
        counts, cols, values = top_n_per_row(rows, cols, values, n_rows, keep, order_by=tie_key(values))
        rows = np.repeat(np.arange(n_rows, dtype=np.int64), counts)
    out = sp.csr_array((values, (rows, cols)), shape=m.shape)
    out.sort_indices()
    return out


def sequential_rule_matrix(
    sessions: SessionSet, n_items: int, *, steps: int, weighting: str = "div"
) -> sp.csr_array:
    """float64 CSR [n_items + 1, n_items + 1]: SR[a, b] = sum of w(d) over click pairs a ... b.

    Every pair of clicks (t, t + d) of the same session with 1 <= d <= steps adds w(d) to
    SR[items[t], items[t + d]]. Repeated clicks make repeated pairs (session-rec counts them).
    """
    items = sessions.items.astype(np.int64)
    session = sessions.session_index_of_clicks()
    shape = (n_items + 1, n_items + 1)
    total = sp.csr_array(shape, dtype=np.float64)
    for d in range(1, steps + 1):
        if d >= len(items):
            break
        same = session[:-d] == session[d:]
        if not same.any():
            break  # no session is longer than d clicks, so none is longer than d + 1
        a, b = items[:-d][same], items[d:][same]
        part = sp.csr_array((np.full(len(a), float(distance_decay(weighting, d))), (a, b)), shape=shape)
        part.sum_duplicates()
        total = total + part
    return sp.csr_array(total)


def _count_matrix(sessions: SessionSet, n_items: int) -> sp.csr_array:
    """int64 CSR [n_sessions, n_items + 1]: clicks of each item in each session."""
    matrix = sp.csr_array(
        (np.ones(sessions.n_clicks, dtype=np.int64),
         (sessions.session_index_of_clicks(), sessions.items.astype(np.int64))),
        shape=(sessions.n_sessions, n_items + 1),
    )
    matrix.sum_duplicates()
    return matrix


def association_rule_matrix(
    sessions: SessionSet, n_items: int, *, pruning: int = 0, max_block_terms: int = 1 << 22
) -> sp.csr_array:
    """float64 CSR [n_items + 1, n_items + 1]: AR[a, b] = pairs of clicks (a, b) within a session.

    With X the session x item click counts: AR = X^T X - diag(clicks per item), i.e. every
    unordered pair of click positions {s, t} (s != t) of a session adds 1 to AR[x_s, x_t] and to
    AR[x_t, x_s] (2 to AR[a, a] when x_s = x_t = a), as session-rec counts. Rows are computed in
    blocks whose product terms stay under `max_block_terms`, each pruned to its top `pruning`.
    """
    x = _count_matrix(sessions, n_items)
    xt = x.T.tocsr()
    clicks = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    # upper bound of each row's non-zeros of X^T X: distinct items of the sessions holding it
    work = xt.astype(bool).astype(np.int64) @ np.diff(x.indptr).astype(np.int64)
    parts: list[sp.csr_array] = []
    for start, end in row_blocks(work, max_block_terms):
        block = sp.csr_array(xt[start:end] @ x, dtype=np.float64)
        own = np.arange(start, end)
        diagonal = sp.csr_array((clicks[own], (own - start, own)), shape=block.shape)
        parts.append(prune_rows(block - diagonal, pruning))  # drops the zeros it leaves
    return sp.csr_array(sp.vstack(parts, format="csr"))


# ---------------------------------------------------------------------------- scoring


class _RuleModel(SessionRecommender):
    """Shared by AR and SR: a pruned rule matrix, scored from the prefix's last item."""

    seed_dependent = False  # nothing random: one run stands for every seed

    #: memory knob of AR's block-wise product (not a hyperparameter; see item_knn)
    max_block_terms: ClassVar[int] = 1 << 22

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.pruning = int_param(self.name, "pruning", self.params["pruning"], 0)
        self.backoff = backoff_param(self.name, self.params["backoff"])
        self.rules: sp.csr_array | None = None
        self._rows: SparseRows | None = None
        self._device = torch.device("cpu")

    def _rule_matrix(self, data: TrainingData) -> sp.csr_array:
        raise NotImplementedError

    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        t0 = time.perf_counter()
        self.rules = self._rule_matrix(data)
        self.n_items = data.n_items
        self._device = torch.device(ctx.device)
        self._rows = SparseRows(self.rules, self._device, torch.float32)
        self._backoff = Backoff(self.backoff, data, self._device)
        ctx.logger.info(
            "%s: %d rules (%.1f per item) in %.2fs", self.name, self.rules.nnz,
            self.rules.nnz / max(1, data.n_items), time.perf_counter() - t0,
        )

    @property
    def device(self) -> torch.device:
        return self._device

    def score(self, batch: Prefixes) -> torch.Tensor:
        """float32 [B, n_items + 1]: the rules of each prefix's last item; column 0 = -inf."""
        if self._rows is None:
            raise RuntimeError(f"model '{self.name}' is not fitted: call fit() first")
        scores = self._backoff.apply(self._rows.dense(batch.last_items))
        scores[:, 0] = -torch.inf
        return scores


@register_model(
    "ar",
    groups=("simple",),
    defaults=AR_DEFAULTS,
    description="Association rules: items co-occurring with the last item in training sessions (session-rec AR)",
)
class AssociationRules(_RuleModel):
    """AR: items ranked by their click-pair co-occurrences with the last item (session-rec).

    Hyperparameters: ``pruning``, the rules kept per item (0 = all); ``backoff`` (baselines/ties.py).
    See the module docstring.
    """

    def __init__(self, **params: Any) -> None:
        super().__init__(**{**AR_DEFAULTS, **params})

    def _rule_matrix(self, data: TrainingData) -> sp.csr_array:
        return association_rule_matrix(
            data.train, data.n_items, pruning=self.pruning, max_block_terms=int(self.max_block_terms)
        )


@register_model(
    "sr",
    groups=("simple",),
    defaults=SR_DEFAULTS,
    description="Sequential rules: items that followed the last item within `steps` clicks, weighted by 1/distance (session-rec SR)",
)
class SequentialRules(_RuleModel):
    """SR: items that followed the last item in training sessions, weighted by distance.

    Hyperparameters: ``steps`` (largest distance counted), ``weighting`` (one of baselines.decays.DECAYS),
    ``pruning`` (rules kept per item, 0 = all), ``backoff`` (baselines/ties.py). See the module docstring.
    """

    def __init__(self, **params: Any) -> None:
        super().__init__(**{**SR_DEFAULTS, **params})
        self.steps = int_param(self.name, "steps", self.params["steps"], 1)
        self.weighting = choice_param(self.name, "weighting", self.params["weighting"], DECAYS)

    def _rule_matrix(self, data: TrainingData) -> sp.csr_array:
        rules = sequential_rule_matrix(data.train, data.n_items, steps=self.steps, weighting=self.weighting)
        return prune_rows(rules, self.pruning)
