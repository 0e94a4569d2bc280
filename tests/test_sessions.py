"""Core data types: CSR sessions, the official prefix order, vectorized batches, validation carve."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sessbench.data.sessions import Examples, SessionSet, Split


def make_sessions() -> SessionSet:
    return SessionSet.from_lists([[1, 2, 3, 4], [5, 6], [7, 8, 9]], timestamps=[10, 20, 30], session_ids=[101, 102, 103])


def test_csr_layout() -> None:
    s = make_sessions()
    assert s.offsets.tolist() == [0, 4, 6, 9]
    assert s.items.dtype == np.int32 and s.offsets.dtype == np.int64
    assert s.lengths.tolist() == [4, 2, 3]
    assert s.to_lists() == [[1, 2, 3, 4], [5, 6], [7, 8, 9]]
    assert s.session_index_of_clicks().tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 2]


def test_invalid_offsets_rejected() -> None:
    with pytest.raises(ValueError):
        SessionSet(offsets=np.array([0, 5]), items=np.array([1, 2]), timestamps=np.array([0]), session_ids=np.array([1]))
    with pytest.raises(ValueError):
        SessionSet(offsets=np.array([0, 2]), items=np.array([1, 2]), timestamps=np.array([0, 1]), session_ids=np.array([1]))


def test_prefixes_follow_official_order() -> None:
    ex = make_sessions().examples()
    pairs = [(ex.sessions.session(s)[:c].tolist(), int(t)) for s, c, t in zip(ex.session_index, ex.cut, ex.targets)]
    assert pairs == [
        ([1, 2, 3], 4), ([1, 2], 3), ([1], 2),
        ([5], 6),
        ([7, 8], 9), ([7], 8),
    ]
    assert ex.last_items.tolist() == [3, 2, 1, 5, 8, 7]


def test_batch_is_padded_and_vectorized() -> None:
    ex = make_sessions().examples()
    b = ex.batch(np.array([0, 3, 4]))
    assert b.items.tolist() == [[1, 2, 3], [5, 0, 0], [7, 8, 0]]
    assert b.lengths.tolist() == [3, 1, 2]
    assert b.targets.tolist() == [4, 6, 9]
    assert b.last_items.tolist() == [3, 5, 8]
    assert b.mask.sum().item() == 6
    assert b.example_index.tolist() == [0, 3, 4]
    assert b.items.dtype == torch.int64


def test_iter_batches_covers_everything_once() -> None:
    ex = make_sessions().examples()
    seen = np.concatenate([b.example_index for b in ex.iter_batches(4, shuffle=True, rng=np.random.default_rng(0))])
    assert sorted(seen.tolist()) == list(range(len(ex)))
    with pytest.raises(ValueError):
        list(ex.iter_batches(2, shuffle=True))


def test_subset_gathers_sessions() -> None:
    s = make_sessions().subset(np.array([2, 0]))
    assert s.to_lists() == [[7, 8, 9], [1, 2, 3, 4]]
    assert s.timestamps.tolist() == [30, 10]
    assert s.session_ids.tolist() == [103, 101]


def test_validation_carved_from_the_end() -> None:
    train = SessionSet.from_lists([[1, 2]] * 8 + [[3, 4]] * 2, timestamps=list(range(10)))
    split = Split("toy", train, SessionSet.from_lists([[1, 3]]), n_items=4, item_ids=np.arange(5))
    carved = split.with_validation(0.2)
    assert carved.train.n_sessions == 8 and carved.valid.n_sessions == 2
    assert carved.valid.to_lists() == [[3, 4], [3, 4]]
    assert carved.valid.timestamps.min() >= carved.train.timestamps.max()
    assert split.valid is None and split.train.n_sessions == 10  # the original is untouched
    data = carved.training_data()
    assert not hasattr(data, "test")
    assert data.item_popularity().tolist() == [0, 8, 8, 0, 0]
    with pytest.raises(ValueError):
        split.with_validation(1.0)


def test_examples_memory_is_index_pairs() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 60, size=2000)
    s = SessionSet.from_lengths(rng.integers(1, 100, size=lengths.sum()).astype(np.int32), lengths)
    ex = Examples.all_prefixes(s)
    assert len(ex) == int((lengths - 1).sum())
    # two int64 per example, independent of prefix lengths
    assert ex.session_index.nbytes + ex.cut.nbytes == 16 * len(ex)


def test_a_split_hashes_its_sessions_once(monkeypatch) -> None:
    """Every run on a split records its checksum: the sessions are hashed once per split."""
    from sessbench.data.synthetic import SyntheticConfig, build_synthetic

    split, _ = build_synthetic(SyntheticConfig(n_items=40, n_sessions=200))
    calls: list[int] = []
    real = SessionSet.checksum
    monkeypatch.setattr(SessionSet, "checksum", lambda self: calls.append(1) or real(self))
    first = split.checksum()
    assert split.checksum() == first and len(calls) == 2  # train and test, hashed by the first call only


def test_a_split_table_of_another_preparation_is_replaced(tmp_path) -> None:
    """The table is kept for the same split and rewritten for another split under the same id."""
    from sessbench.data.synthetic import SyntheticConfig, build_synthetic
    from sessbench.results import load_split_examples, save_split_examples

    a, _ = build_synthetic(SyntheticConfig(n_items=40, n_sessions=200))
    b, _ = build_synthetic(SyntheticConfig(n_items=40, n_sessions=300))
    path = save_split_examples(tmp_path, a, "t")
    assert load_split_examples(path)["split_checksum"] == a.checksum()
    stamp = path.stat().st_mtime_ns
    save_split_examples(tmp_path, a, "t")
    assert path.stat().st_mtime_ns == stamp
    save_split_examples(tmp_path, b, "t")
    table = load_split_examples(path)
    assert table["split_checksum"] == b.checksum() and len(table["session"]) == len(b.test_examples())
