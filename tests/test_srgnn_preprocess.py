"""The SR-GNN preprocessing: exact parity with the official script, and each of its rules."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sessbench.data.readers import read_click_log, read_diginetica_views, read_yoochoose_clicks
from sessbench.data.sessions import Examples
from sessbench.data.srgnn_preprocess import DAY_SECONDS, cut_training_fraction, prepare_srgnn
from sessbench.errors import ConfigError, SessbenchError

DAY = DAY_SECONDS
T0 = 1_400_000_000  # an arbitrary UTC epoch second


def as_pairs(examples: Examples) -> tuple[list[list[int]], list[int]]:
    """(prefix lists, labels) of every example, in order (small data only)."""
    if len(examples) == 0:
        return [], []
    batch = examples.batch(slice(None))
    items, lengths = batch.items.numpy(), batch.lengths.numpy()
    return [items[k, : lengths[k]].tolist() for k in range(len(lengths))], batch.targets.numpy().tolist()


def assert_matches(examples: Examples, official: dict) -> None:
    sequences, labels = as_pairs(examples)
    assert len(sequences) == len(official["sequences"])
    assert sequences == official["sequences"]
    assert labels == official["labels"]


def clicks(rows: list[tuple[int, int, int, int]]) -> pd.DataFrame:
    """A clicks table from (session, item, seq, time) rows in file order."""
    return pd.DataFrame(rows, columns=["session", "item", "seq", "time"]).astype(np.int64)


# ---------------------------------------------------------------------------- parity with the official output
@pytest.fixture(scope="module")
def yoochoose_official(shared_data: Path) -> dict:
    return json.loads((shared_data / "yoochoose-sample" / "official-split.json").read_text())


@pytest.fixture(scope="module")
def yoochoose_clicks(shared_data: Path) -> pd.DataFrame:
    return read_yoochoose_clicks(shared_data / "yoochoose-sample" / "yoochoose-clicks.dat")


def test_diginetica_sample_matches_official(shared_data: Path) -> None:
    folder = shared_data / "diginetica-sample"
    official = json.loads((folder / "official-split.json").read_text())
    split = prepare_srgnn(
        read_diginetica_views(folder / "train-item-views.csv"), name="diginetica", split_seconds=7 * DAY
    )
    assert split.n_items == official["n_items"] == 309
    assert_matches(split.train.examples(), official["train"])
    assert_matches(split.test.examples(), official["test"])
    assert len(split.item_ids) == split.n_items + 1 and split.item_ids[0] == 0


@pytest.mark.parametrize("fraction, key", [(64, "train_yoochoose1_64"), (4, "train_yoochoose1_4")])
def test_yoochoose_sample_matches_official(
    yoochoose_clicks: pd.DataFrame, yoochoose_official: dict, fraction: int, key: str
) -> None:
    split = prepare_srgnn(yoochoose_clicks, name=f"yoochoose{fraction}", split_seconds=DAY, fraction=fraction)
    assert split.n_items == yoochoose_official["n_items"] == 2808
    assert_matches(split.train.examples(), yoochoose_official[key])
    assert_matches(split.test.examples(), yoochoose_official["test"])
    assert split.meta["fraction"] == fraction and split.meta["preprocessing"] == "srgnn"


def test_yoochoose_full_list_and_cut_from_it(yoochoose_clicks: pd.DataFrame, yoochoose_official: dict) -> None:
    full = prepare_srgnn(yoochoose_clicks, name="yoochoose", split_seconds=DAY)
    assert len(full.train.examples()) == 52_098
    assert_matches(cut_training_fraction(full, 64).train.examples(), yoochoose_official["train_yoochoose1_64"])
    # the cut's last prefixes are the full list's last prefixes
    assert as_pairs(cut_training_fraction(full, 4).train.examples())[1] == as_pairs(full.train.examples())[1][-13_024:]


def test_yoochoose_header_variant_is_identical(
    shared_data: Path, tmp_path: Path, yoochoose_clicks: pd.DataFrame
) -> None:
    raw = (shared_data / "yoochoose-sample" / "yoochoose-clicks.dat").read_bytes()
    copy = tmp_path / "yoochoose-clicks.dat"
    copy.write_bytes(b"session_id,timestamp,item_id,category\n" + raw)
    with_header = read_yoochoose_clicks(copy)
    pd.testing.assert_frame_equal(with_header, yoochoose_clicks)
    a = prepare_srgnn(with_header, name="y", split_seconds=DAY, fraction=64)
    b = prepare_srgnn(yoochoose_clicks, name="y", split_seconds=DAY, fraction=64)
    assert a.train.checksum() == b.train.checksum() and a.test.checksum() == b.test.checksum()


def test_time_zone_does_not_matter(shared_data: Path, yoochoose_clicks: pd.DataFrame) -> None:
    """The official script uses local time; sessbench must give the same output in any TZ."""
    reference = prepare_srgnn(yoochoose_clicks, name="y", split_seconds=DAY)
    digi = shared_data / "diginetica-sample" / "train-item-views.csv"
    digi_reference = prepare_srgnn(read_diginetica_views(digi), name="d", split_seconds=7 * DAY)
    saved = os.environ.get("TZ")
    try:
        for zone in ("Pacific/Kiritimati", "America/St_Johns", "Asia/Kathmandu"):
            os.environ["TZ"] = zone
            time.tzset()
            raw = read_yoochoose_clicks(shared_data / "yoochoose-sample" / "yoochoose-clicks.dat")
            other = prepare_srgnn(raw, name="y", split_seconds=DAY)
            assert other.train.checksum() == reference.train.checksum()
            assert other.test.checksum() == reference.test.checksum()
            digi_other = prepare_srgnn(read_diginetica_views(digi), name="d", split_seconds=7 * DAY)
            assert digi_other.train.checksum() == digi_reference.train.checksum()
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


# ---------------------------------------------------------------------------- plain-Python model of the official rules
def official_model(rows, split_seconds, fraction=None, support=5):
    """The official script's logic, written plainly with dicts (small inputs only)."""
    sequences: dict[int, list[tuple[int, int]]] = {}
    dates: dict[int, int] = {}
    for session, item, seq, t in rows:
        sequences.setdefault(session, []).append((item, seq))
        dates[session] = t  # dict position: first appearance; value: last row in file order
    items = {s: [i for i, _ in sorted(v, key=lambda c: c[1])] for s, v in sequences.items()}
    for s in [s for s in items if len(items[s]) == 1]:
        del items[s], dates[s]
    counts = Counter(i for v in items.values() for i in v)
    for s in list(items):
        kept = [i for i in items[s] if counts[i] >= support]
        if len(kept) < 2:
            del items[s], dates[s]
        else:
            items[s] = kept
    if not dates:
        return None
    split = max(dates.values()) - split_seconds
    train_ids = sorted([s for s in dates if dates[s] < split], key=lambda s: dates[s])
    test_ids = sorted([s for s in dates if dates[s] > split], key=lambda s: dates[s])
    numbers: dict[int, int] = {}
    train = []
    for s in train_ids:
        train.append([numbers.setdefault(i, len(numbers) + 1) for i in items[s]])
    test = [[numbers[i] for i in items[s] if i in numbers] for s in test_ids]
    test = [t for t in test if len(t) >= 2]

    def augment(sessions):
        return [(s[:-k], s[-k]) for s in sessions for k in range(1, len(s))]

    train_pairs, test_pairs = augment(train), augment(test)
    if fraction is not None:
        train_pairs = train_pairs[-(len(train_pairs) // fraction) :] if len(train_pairs) // fraction else "empty"
    return train_pairs, test_pairs, len(numbers), train_ids


def random_rows(rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """Small logs full of the hard cases: split sessions, seq and date ties, rare items."""
    n_sessions = int(rng.integers(5, 40))
    lengths = rng.integers(1, 7, n_sessions)
    ids = rng.permutation(1000)[:n_sessions]
    sessions = np.repeat(ids, lengths)
    if rng.random() < 0.5:  # interleave sessions: non-contiguous runs
        sessions = sessions[rng.permutation(len(sessions))]
    n = len(sessions)
    items = rng.integers(1, int(rng.integers(3, 15)), n)
    seq = rng.integers(0, 4, n)  # many ties within a session
    days = rng.integers(0, 6, n) * DAY + rng.integers(0, 3, n) * (DAY // 2)
    return [(int(s), int(i), int(q), int(T0 + d)) for s, i, q, d in zip(sessions, items, seq, days)]


@pytest.mark.parametrize("seed", range(150))
def test_random_logs_match_the_plain_model(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = random_rows(rng)
    split_seconds = int(rng.choice([0, DAY // 2, DAY, 2 * DAY]))
    fraction = [None, 2, 4, 64][seed % 4]
    support = int(rng.integers(1, 4))
    expected = official_model(rows, split_seconds, fraction, support)
    if expected is None or not expected[3] or expected[0] == "empty":
        with pytest.raises(SessbenchError):
            prepare_srgnn(
                clicks(rows), name="r", split_seconds=split_seconds, fraction=fraction, min_item_support=support
            )
        return
    train_pairs, test_pairs, n_items, train_ids = expected
    split = prepare_srgnn(
        clicks(rows), name="r", split_seconds=split_seconds, fraction=fraction, min_item_support=support
    )
    sequences, labels = as_pairs(split.train.examples())
    assert list(zip(sequences, labels)) == train_pairs
    sequences, labels = as_pairs(split.test.examples())
    assert list(zip(sequences, labels)) == test_pairs
    assert split.n_items == n_items
    if fraction is None:
        assert split.train.session_ids.tolist() == train_ids


# ---------------------------------------------------------------------------- each rule by hand
def test_equal_dates_keep_first_appearance_order() -> None:
    # sessions 9 and 3 share a date; 9 appears first in the file (but has the larger id and
    # its last row comes after 3's last row): 9 must come first
    rows = [
        (9, 1, 0, T0),
        (3, 2, 0, T0),
        (3, 1, 1, T0),
        (9, 2, 1, T0),
        (7, 1, 0, T0 + 5 * DAY),
        (7, 2, 1, T0 + 5 * DAY),
    ]
    split = prepare_srgnn(clicks(rows), name="t", split_seconds=DAY, min_item_support=1)
    assert split.train.session_ids.tolist() == [9, 3]
    assert split.train.to_lists() == [[1, 2], [2, 1]]  # items numbered walking 9 then 3
    assert split.item_ids.tolist() == [0, 1, 2]


def test_session_at_the_split_date_is_in_neither() -> None:
    rows = [
        (1, 1, 0, T0),
        (1, 2, 1, T0),  # train
        (2, 1, 0, T0 + DAY),
        (2, 2, 1, T0 + DAY),  # exactly at split = max - 1 day
        (3, 2, 0, T0 + 2 * DAY),
        (3, 1, 1, T0 + 2 * DAY),  # test (the max date)
    ]
    split = prepare_srgnn(clicks(rows), name="t", split_seconds=DAY, min_item_support=1)
    assert split.train.session_ids.tolist() == [1]
    assert split.test.session_ids.tolist() == [3]
    assert split.meta["split_date"] == T0 + DAY


def test_date_is_last_row_in_file_order_and_clicks_sorted_by_seq() -> None:
    # session 5 is split into two runs; its last row in file order has time T0 (earlier than its
    # first row); seq ties (both 7) keep file order
    rows = [
        (5, 10, 7, T0 + 3 * DAY),
        (6, 11, 0, T0 + 2 * DAY),
        (5, 12, 1, T0 + 3 * DAY),
        (6, 10, 1, T0 + 2 * DAY),
        (5, 13, 7, T0),
        (8, 10, 0, T0 + 9 * DAY),
        (8, 11, 1, T0 + 9 * DAY),
    ]
    split = prepare_srgnn(clicks(rows), name="t", split_seconds=DAY, min_item_support=1)
    assert split.train.session_ids.tolist() == [5, 6]  # 5 dated T0, 6 dated T0 + 2 days
    assert split.train.timestamps.tolist() == [T0, T0 + 2 * DAY]
    raw = split.item_ids[split.train.items].tolist()
    assert raw == [12, 10, 13, 11, 10]  # session 5 by seq: 12 (seq 1), 10 then 13 (seq 7, file order)


def test_item_filter_counts_after_dropping_single_clicks_and_includes_test() -> None:
    rows = []
    session = 0
    for _ in range(2):  # item 1 four times in training sessions
        session += 1
        rows += [(session, 1, 0, T0), (session, 1, 1, T0)]
    rows += [(50, 1, 0, T0)]  # a length-1 session: does not count for item 1
    rows += [(60, 2, 0, T0), (60, 3, 1, T0), (61, 2, 0, T0), (61, 3, 1, T0), (62, 2, 0, T0), (62, 3, 1, T0)]
    # test sessions (late): item 4 twice here and 3 times in training -> support 5 -> kept
    rows += [(70, 4, 0, T0), (70, 4, 1, T0), (71, 4, 0, T0), (71, 2, 1, T0), (71, 3, 2, T0)]
    rows += [(80, 4, 0, T0 + 5 * DAY), (80, 2, 1, T0 + 5 * DAY), (81, 4, 0, T0 + 5 * DAY), (81, 3, 1, T0 + 5 * DAY)]
    split = prepare_srgnn(clicks(rows), name="t", split_seconds=DAY, min_item_support=5)
    raw_train = [split.item_ids[s].tolist() for s in split.train.to_lists()]
    assert 1 not in split.item_ids.tolist()  # 4 counted clicks < 5
    assert set(split.item_ids[1:].tolist()) == {2, 3, 4}
    assert raw_train[:3] == [[2, 3]] * 3 and raw_train[3:] == [[4, 4], [4, 2, 3]]
    assert [split.item_ids[s].tolist() for s in split.test.to_lists()] == [[4, 2], [4, 3]]


def test_test_sessions_drop_unknown_items_and_short_sessions() -> None:
    rows = [
        (1, 1, 0, T0),
        (1, 2, 1, T0),
        (2, 1, 0, T0 + 5 * DAY),
        (2, 3, 1, T0 + 5 * DAY),
        (2, 2, 2, T0 + 5 * DAY),  # 3 unknown -> [1, 2]
        (3, 1, 0, T0 + 5 * DAY),
        (3, 3, 1, T0 + 5 * DAY),  # -> [1]: dropped
        (4, 3, 0, T0 + 5 * DAY),
        (4, 3, 1, T0 + 5 * DAY),  # item 3 only in the test period
    ]
    split = prepare_srgnn(clicks(rows), name="t", split_seconds=DAY // 2, min_item_support=1)
    assert split.n_items == 2
    assert split.test.session_ids.tolist() == [2]
    assert split.test.to_lists() == [[1, 2]]


def test_cut_truncates_the_first_kept_session() -> None:
    # training sessions of lengths 4 and 3 -> 3 + 2 = 5 prefixes; 1/2 keeps the last 2 ... and
    # 1/1 everything; with lengths 5, 3: 4 + 2 = 6, 1/2 keeps 3: one prefix of session A
    rows = [(1, i, k, T0) for k, i in enumerate([1, 2, 3, 4, 5])]
    rows += [(2, i, k, T0 + 1) for k, i in enumerate([3, 1, 2])]
    rows += [(3, 1, 0, T0 + 9 * DAY), (3, 2, 1, T0 + 9 * DAY)]
    full = prepare_srgnn(clicks(rows), name="t", split_seconds=DAY, min_item_support=1)
    pairs = list(zip(*as_pairs(full.train.examples())))
    assert len(pairs) == 6
    half = cut_training_fraction(full, 2)
    assert list(zip(*as_pairs(half.train.examples()))) == pairs[-3:]
    assert half.train.to_lists() == [[1, 2], [3, 1, 2]]  # session 1 truncated to its first 2 clicks
    assert half.train.session_ids.tolist() == [1, 2]
    assert half.n_items == full.n_items == 5 and half.test is full.test
    assert half.meta["fraction"] == 2 and half.meta["n_train_prefixes"] == 3


def test_empty_cut_is_an_error_not_the_whole_list() -> None:
    rows = [(1, 1, 0, T0), (1, 2, 1, T0), (2, 1, 0, T0 + 9 * DAY), (2, 2, 1, T0 + 9 * DAY)]
    with pytest.raises(SessbenchError, match="1/64 cut"):
        prepare_srgnn(clicks(rows), name="t", split_seconds=DAY, fraction=64, min_item_support=1)


def test_nothing_left_and_bad_parameters_are_clear_errors() -> None:
    rows = [(1, 1, 0, T0), (2, 2, 0, T0)]
    with pytest.raises(SessbenchError, match="no session"):
        prepare_srgnn(clicks(rows), name="t", split_seconds=DAY)
    with pytest.raises(SessbenchError, match="empty"):
        prepare_srgnn(clicks([]), name="t", split_seconds=DAY)
    with pytest.raises(ConfigError):
        prepare_srgnn(clicks(rows), name="t", split_seconds=DAY, min_session_length=1)
    with pytest.raises(SessbenchError, match="lacks column"):
        prepare_srgnn(pd.DataFrame({"session": [1]}), name="t", split_seconds=DAY)


def test_meta_and_types() -> None:
    rows = [(1, 10, 0, T0), (1, 20, 1, T0), (2, 10, 0, T0 + 3 * DAY), (2, 20, 1, T0 + 3 * DAY)]
    split = prepare_srgnn(clicks(rows), name="toy", split_seconds=DAY, min_item_support=1, meta={"source": "x"})
    assert split.name == "toy" and split.valid is None
    assert split.meta["dataset"] == "toy" and split.meta["source"] == "x" and split.meta["split_seconds"] == DAY
    assert split.item_ids.dtype == np.int64 and split.item_ids.tolist() == [0, 10, 20]
    assert split.train.items.dtype == np.int32 and split.train.timestamps.tolist() == [T0]


def test_generic_log_with_text_ids(tmp_path: Path) -> None:
    text = "user_session,product,when\n"
    text += "a,shoe,2020-01-01T10:00:00Z\na,sock,2020-01-01T10:01:00Z\n"
    text += "b,sock,2020-01-05T10:00:00Z\nb,shoe,2020-01-05T10:01:00Z\n"
    path = tmp_path / "log.csv"
    path.write_text(text)
    frame = read_click_log(path, "user_session", "product", "when")
    split = prepare_srgnn(frame, name="log", split_seconds=DAY, min_item_support=1)
    assert split.item_ids.tolist() == ["", "shoe", "sock"]
    assert split.train.to_lists() == [[1, 2]] and split.test.to_lists() == [[2, 1]]
    assert split.raw_session_ids(split.test.session_ids).tolist() == ["b"]  # the log's id, not a code


def test_non_integer_columns_are_rejected() -> None:
    frame = pd.DataFrame({"session": [1.0, np.nan], "item": [1, 2], "seq": [0, 1], "time": [T0, T0]})
    with pytest.raises(SessbenchError, match="must be integers"):
        prepare_srgnn(frame, name="t", split_seconds=DAY)
