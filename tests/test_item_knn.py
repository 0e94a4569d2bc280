"""Item-KNN: the similarity its definition gives, top-N pruning, block-wise building, memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from baselines.item_knn import ItemKNN, cooccurrence_topn, session_item_matrix
from sessbench.data.sessions import SessionSet, TrainingData
from sessbench.errors import ConfigError
from sessbench.models import FitContext, get_model

# sessions (as sets): S_1 = {0,1,2}, S_2 = {0,1,3}, S_3 = {1,2}, S_4 = {3,4}, S_5 = {4}
TRAIN = SessionSet.from_lists([[1, 2], [1, 2, 3], [1, 3, 1], [2, 4], [4, 5, 4]])
DATA = TrainingData(TRAIN, None, n_items=6, dataset="toy")  # item 6 never occurs


def brute_force_similarity(sessions: list[list[int]], n_items: int, lmbd: float, alpha: float) -> np.ndarray:
    """The definition, item pair by item pair (tests only)."""
    sets = [set(s) for s in sessions]
    support = np.array([sum(i in s for s in sets) for i in range(n_items + 1)], dtype=float)
    sim = np.zeros((n_items + 1, n_items + 1))
    for i in range(1, n_items + 1):
        for j in range(1, n_items + 1):
            both = sum(i in s and j in s for s in sets)
            if i != j and both:
                sim[i, j] = both / ((support[i] + lmbd) ** alpha * (support[j] + lmbd) ** (1 - alpha))
    return sim


def batch_of(prefixes: list[list[int]]):
    """A batch whose prefixes are exactly `prefixes` (a dummy target is appended to each)."""
    examples = SessionSet.from_lists([p + [1] for p in prefixes]).examples()
    counts = np.array([len(p) for p in prefixes])
    return examples.batch(np.cumsum(counts) - counts)  # each session's longest prefix comes first


@pytest.mark.parametrize("lmbd, alpha", [(0.0, 0.5), (20.0, 0.5), (3.0, 0.8), (1.0, 0.0)])
def test_similarity_matches_the_definition(lmbd: float, alpha: float) -> None:
    model = ItemKNN(lmbd=lmbd, alpha=alpha, n_sims=100)
    model.fit(DATA, FitContext())
    expected = brute_force_similarity(TRAIN.to_lists(), 6, lmbd, alpha)
    np.testing.assert_allclose(model.similarity.toarray(), expected, rtol=1e-6)
    assert model.similarity.shape == (7, 7)


def test_recommends_the_co_occurring_item_first() -> None:
    model = ItemKNN(lmbd=0.0)
    model.fit(DATA, FitContext())
    # last item 3: it co-occurs with 1 in two sessions and with 2 in one
    scores = model.score(batch_of([[5, 3]]))[0]
    assert torch.argsort(scores[1:], descending=True)[:2].add(1).tolist() == [1, 2]
    # only the last item counts: an earlier 5 adds nothing (4 is 5's only neighbour)
    assert scores[4] == 0
    # never the item itself, never an item that does not co-occur
    assert scores[3] == 0 and scores[5] == 0 and scores[6] == 0
    # last item 5: its only neighbour is 4
    scores = model.score(batch_of([[1, 5]]))[0]
    assert torch.nonzero(scores).flatten().tolist() == [4]


def test_top_n_pruning_keeps_the_best_and_breaks_ties_by_index() -> None:
    # item 1 co-occurs with 2 (twice), 3 and 4 (once each); 3 and 4 have the same support
    train = SessionSet.from_lists([[1, 2], [1, 2], [1, 3], [1, 4], [3, 5], [4, 5]])
    data = TrainingData(train, None, n_items=5, dataset="toy")
    model = ItemKNN(n_sims=2, lmbd=0.0, alpha=0.5)
    model.fit(data, FitContext())
    row = model.similarity[[1]].toarray()[0]
    assert np.flatnonzero(row).tolist() == [2, 3]  # 2 (best), then 3 before its tie 4
    assert np.all(np.diff(model.similarity.indptr) <= 2)
    full = ItemKNN(n_sims=10, lmbd=0.0, alpha=0.5)
    full.fit(data, FitContext())
    assert full.similarity[[1]].toarray()[0, 4] == pytest.approx(row[3])


def test_blocks_give_the_same_matrix_as_one_product() -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(2, 9, size=400)
    items = rng.integers(1, 61, size=int(lengths.sum())).astype(np.int32)
    x = session_item_matrix(SessionSet.from_lengths(items, lengths), 60)
    one = cooccurrence_topn(x, n_sims=7, lmbd=2.0, alpha=0.6, max_block_terms=10**12)
    many = cooccurrence_topn(x, n_sims=7, lmbd=2.0, alpha=0.6, max_block_terms=1)  # one item per block
    assert (one != many).nnz == 0
    assert np.array_equal(one.indptr, many.indptr)
    dense = (x.T @ x).toarray().astype(float)
    np.fill_diagonal(dense, 0)
    assert one.nnz == int(np.minimum((dense > 0).sum(1), 7).sum())


def test_score_is_the_row_gather_for_a_padded_batch() -> None:
    model = ItemKNN(lmbd=1.0)
    model.fit(DATA, FitContext())
    batch = batch_of([[1, 2, 3], [4], [2, 6]])  # different lengths: padded
    assert batch.items.shape == (3, 3)
    scores = model.score(batch)
    assert scores.shape == (3, 7) and scores.dtype == torch.float32
    dense = model.similarity.toarray()
    for row, last in enumerate([3, 4, 6]):
        np.testing.assert_allclose(scores[row].numpy(), dense[last], rtol=1e-6)
    assert torch.all(scores[2] == 0)  # item 6 never occurred: no neighbours


def test_fit_is_deterministic() -> None:
    a, b = ItemKNN(), ItemKNN()
    a.fit(DATA, FitContext(seed=0))
    b.fit(DATA, FitContext(seed=1))
    assert (a.similarity != b.similarity).nnz == 0


def test_bad_hyperparameters_are_config_errors() -> None:
    for bad in ({"n_sims": 0}, {"n_sims": 2.5}, {"alpha": 1.5}, {"lmbd": -1.0}):
        with pytest.raises(ConfigError):
            ItemKNN(**bad)


def test_registered_in_the_baseline_groups() -> None:
    spec = get_model("item-knn")
    assert {"baselines", "paper"} <= set(spec.groups)
    assert spec.defaults == {"n_sims": 100, "lmbd": 20.0, "alpha": 0.5, "backoff": "none"}


def random_sessions(n_items: int, n_sessions: int, seed: int) -> SessionSet:
    """Sessions of length 2..8 over a heavy-tailed catalogue (so popular items co-occur a lot)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 9, size=n_sessions)
    weights = 1.0 / np.arange(1, n_items + 1) ** 0.8
    items = rng.choice(np.arange(1, n_items + 1), size=int(lengths.sum()), p=weights / weights.sum())
    return SessionSet.from_lengths(items.astype(np.int32), lengths)


def test_200k_items_stay_sparse_and_under_a_memory_bound() -> None:
    n_items = 200_000
    data = TrainingData(random_sessions(n_items, 30_000, seed=0), None, n_items, "big")
    model = ItemKNN(n_sims=50)
    model.max_block_terms = 1 << 18  # several blocks even at this size
    tracemalloc.start()
    try:
        model.fit(data, FitContext())
        batch = batch_of([[1, 2], [5], [n_items]])
        scores = model.score(batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # a dense float32 similarity would need 160 GB; the sparse pipeline stays within 64 MB
    assert peak < 64 * 2**20, f"peak traced memory {peak / 2**20:.1f} MB"
    assert model.similarity.nnz <= 50 * (n_items + 1)
    assert scores.shape == (3, n_items + 1)
    assert float(scores[0].sum()) > 0  # the most popular items do have neighbours
