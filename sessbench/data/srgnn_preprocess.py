"""The SR-GNN preprocessing (official `datasets/preprocess.py`), exact and vectorized.

Input: a clicks table from `sessbench.data.readers` (columns session, item, seq, time in file
order). Output: a `Split` whose `train.examples()` / `test.examples()` equal the official
augmented lists prefix by prefix and label by label. The rules, in the official order:

1. a session's date is the `time` of its LAST ROW IN FILE ORDER; its clicks are ordered by
   `seq` with a stable sort (ties keep file order);
2. drop sessions shorter than 2; count items over all remaining sessions (test period too);
   drop items seen fewer than 5 times; drop sessions left shorter than 2;
3. split = max session date - split_seconds; train: date < split, test: date > split (a
   session exactly at the split date is in neither);
4. training sessions stable-sorted by date, ties in order of first appearance in the file;
   items numbered 1.. in order of first appearance walking them click by click;
5. test sessions sorted the same way, unknown items dropped, sessions left < 2 dropped;
6. optional YOOCHOOSE cut: the last len(augmented) // fraction training prefixes.

All times are UTC epoch seconds (the official script uses the local time zone; sessbench does
not). Memory stays O(clicks): no per-session Python objects, no Python loop per click or session.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from sessbench.data.sessions import SessionSet, Split
from sessbench.errors import ConfigError, SessbenchError
from sessbench.progress import ProgressFactory, open_bar

DAY_SECONDS = 86_400
REQUIRED_COLUMNS = ("session", "item", "seq", "time")


@dataclass
class _Grouped:
    """Clicks grouped by session (sessions numbered in order of first appearance in the file)."""

    items: np.ndarray  # int32 item codes in grouped order (within a session: by seq, stable)
    starts: np.ndarray  # int64 [n_sessions]: first position of each session in `items`
    lengths: np.ndarray  # int64 [n_sessions]
    dates: np.ndarray  # int64 [n_sessions]: time of the session's last row in file order
    session_ids: np.ndarray  # int64 [n_sessions]: raw ids
    item_ids: np.ndarray  # raw id of each item code


# ---------------------------------------------------------------------------- grouping
_CHUNK = 1 << 22  # rows per chunk where a numpy/pandas call would widen a whole column to int64


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int32 codes in order of first appearance, int64 uniques).

    Like pd.factorize, but its int64 codes are produced chunk by chunk into an int32 array
    (saves ~400 MB at YOOCHOOSE size); pandas also hashes int32 keys faster than int64 ones,
    and real ids fit in int32.
    """
    info = np.iinfo(np.int32)
    if len(values) and info.min <= values.min() and values.max() <= info.max:
        values = values.astype(np.int32)
    uniques = pd.unique(values)
    index = pd.Index(uniques)
    codes = np.empty(len(values), dtype=np.int32)
    for lo in range(0, len(values), _CHUNK):
        codes[lo : lo + _CHUNK] = index.get_indexer(values[lo : lo + _CHUNK])
    return codes, np.asarray(uniques, dtype=np.int64)


def _counts(codes: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """np.bincount(codes[mask], minlength=size), chunked (bincount widens its input to int64)."""
    total = np.zeros(size, dtype=np.int64)
    for lo in range(0, len(codes), _CHUNK):
        total += np.bincount(codes[lo : lo + _CHUNK][mask[lo : lo + _CHUNK]], minlength=size)
    return total


def _session_codes(run_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Session code of each run of rows, and the raw id of each code (first-appearance order)."""
    if len(run_ids) < 2 or np.all(run_ids[1:] > run_ids[:-1]):  # sorted file: runs are sessions
        return np.arange(len(run_ids), dtype=np.int32), run_ids
    return _factorize(run_ids)


def _runs(session: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start positions and lengths of runs of equal consecutive session ids."""
    change = np.flatnonzero(session[1:] != session[:-1]) + 1
    starts = np.concatenate(([0], change)).astype(np.int64)
    lengths = np.diff(np.append(starts, len(session)))
    return starts, lengths


def _within_session_sorted(seq: np.ndarray, session_starts: np.ndarray) -> bool:
    """Whether `seq` is non-decreasing inside every session (clicks already grouped)."""
    if len(seq) < 2:
        return True
    drops = seq[1:] < seq[:-1]
    drops[session_starts[1:] - 1] = False  # a session boundary may go down
    return not drops.any()


def _group_order(codes: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Row order grouping sessions by code, clicks by seq, ties in file order (stable)."""
    by_code = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.diff(codes[by_code], prepend=-1))
    if _within_session_sorted(seq[by_code], starts):
        return by_code
    by_seq = np.argsort(seq, kind="stable")
    return by_seq[np.argsort(codes[by_seq], kind="stable")]


def _group(clicks: pd.DataFrame) -> _Grouped:
    """Group the clicks by session without a per-session loop (fast path: contiguous sessions)."""
    session = clicks["session"].to_numpy(dtype=np.int64)
    seq = clicks["seq"].to_numpy(dtype=np.int64)
    time = clicks["time"].to_numpy(dtype=np.int64)
    item_codes, item_ids = _factorize(clicks["item"].to_numpy(dtype=np.int64))
    run_starts, run_lengths = _runs(session)
    run_codes, session_ids = _session_codes(session[run_starts])
    n_sessions = len(session_ids)
    if n_sessions == len(run_starts):  # every session is one contiguous run, in code order
        starts, lengths = run_starts, run_lengths
        last_row = starts + lengths - 1
        if not _within_session_sorted(seq, starts):
            order = _group_order(np.repeat(np.arange(n_sessions), lengths), seq)
            item_codes = item_codes[order]
    else:  # sessions split into several runs: sort rows into groups
        codes = np.repeat(run_codes, run_lengths)
        order = _group_order(codes, seq)
        lengths = np.bincount(codes, minlength=n_sessions).astype(np.int64)
        starts = np.cumsum(lengths) - lengths
        last_row = np.maximum.reduceat(order, starts)
        item_codes = item_codes[order]
    return _Grouped(item_codes, starts, lengths, time[last_row], session_ids.astype(np.int64), item_ids)


# ---------------------------------------------------------------------------- CSR helpers
_GATHER_CHUNK = 1 << 20  # sessions per chunk: bounds the int64 index temporaries to a few MB


def _gather(items: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate items[starts[k] : starts[k] + lengths[k]] for all k.

    Vectorized per chunk of sessions (not per session), so the index arrays stay small even for
    30M clicks.
    """
    ends = np.cumsum(lengths)
    out = np.empty(int(ends[-1]) if len(ends) else 0, dtype=items.dtype)
    for lo in range(0, len(lengths), _GATHER_CHUNK):
        hi = min(lo + _GATHER_CHUNK, len(lengths))
        part = lengths[lo:hi]
        first = int(ends[lo] - lengths[lo])
        size = int(ends[hi - 1]) - first
        index = np.arange(size, dtype=np.int64)
        index += np.repeat(starts[lo:hi] - (ends[lo:hi] - part - first), part)
        out[first : first + size] = items[index]
    return out


def _segment_sums(mask: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per-segment count of True in `mask` (segments of the given lengths, back to back)."""
    if len(mask) == 0:
        return np.zeros(len(lengths), dtype=np.int64)
    wide = np.int32 if len(mask) < np.iinfo(np.int32).max else np.int64
    csum = np.cumsum(mask, dtype=wide)
    ends = np.cumsum(lengths)
    before = np.where(ends > lengths, csum[np.maximum(ends - lengths - 1, 0)], 0)
    at_end = np.where(ends > 0, csum[np.maximum(ends - 1, 0)], 0)
    return (at_end - before).astype(np.int64)


def _by_date(sessions: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """Sessions (ascending codes = first-appearance order) stable-sorted by date."""
    return sessions[np.argsort(dates[sessions], kind="stable")]


# ---------------------------------------------------------------------------- public API
def _check_parameters(split_seconds: int, fraction: int | None, min_item_support: int, min_session_length: int) -> None:
    if split_seconds < 0:
        raise ConfigError(f"split_seconds must be >= 0, got {split_seconds}")
    if min_session_length < 2:
        raise ConfigError(f"min_session_length must be >= 2 (a prefix needs a next item), got {min_session_length}")
    if min_item_support < 1:
        raise ConfigError(f"min_item_support must be >= 1, got {min_item_support}")
    if fraction is not None and fraction < 1:
        raise ConfigError(f"fraction must be a positive integer (4 or 64 for YOOCHOOSE), got {fraction}")


def _check_clicks(clicks: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in clicks.columns]
    if missing:
        raise SessbenchError(
            f"clicks table lacks column(s) {', '.join(missing)}; a reader from sessbench.data.readers makes one"
        )
    if len(clicks) == 0:
        raise SessbenchError("the clicks table is empty: nothing to preprocess")
    not_int = [c for c in REQUIRED_COLUMNS if not pd.api.types.is_integer_dtype(clicks[c].dtype)]
    if not_int:
        raise SessbenchError(
            f"clicks column(s) {', '.join(not_int)} must be integers (no missing values); "
            "a reader from sessbench.data.readers makes such a table"
        )


def prepare_srgnn(
    clicks: pd.DataFrame,
    *,
    name: str,
    split_seconds: int,
    fraction: int | None = None,
    min_item_support: int = 5,
    min_session_length: int = 2,
    meta: dict[str, Any] | None = None,
    progress: ProgressFactory | None = None,
) -> Split:
    """The official SR-GNN preprocessing of a clicks table (see the module docstring).

    progress: optional `progress(total=..., desc=...)` bar factory; advances once per stage.

    split_seconds: 86400 for YOOCHOOSE, 7 * 86400 for DIGINETICA.
    fraction: keep the last 1/fraction of the augmented training list (YOOCHOOSE 1/4, 1/64);
    n_items and test stay those of the full list.
    """
    _check_parameters(split_seconds, fraction, min_item_support, min_session_length)
    _check_clicks(clicks)
    with open_bar(progress, 4, f"preprocess {name}") as bar:
        return _prepare(clicks, name, split_seconds, fraction, min_item_support, min_session_length, meta, bar)


def _prepare(
    clicks: pd.DataFrame,
    name: str,
    split_seconds: int,
    fraction: int | None,
    min_item_support: int,
    min_session_length: int,
    meta: dict[str, Any] | None,
    bar: Any,
) -> Split:
    step = bar.update
    g = _group(clicks)
    step(1)

    # drop short sessions, count items over what is left, drop rare items, drop short again
    long_enough = g.lengths >= min_session_length
    if not long_enough.any():
        files = ", ".join((meta or {}).get("source_files") or []) or f"dataset '{name}'"
        raise SessbenchError(
            f"{files}: no session has {min_session_length}+ clicks (all {len(g.lengths):,} sessions have "
            f"{'a single click each' if int(g.lengths.max()) == 1 else f'fewer than {min_session_length}'}), and a "
            f"session needs {min_session_length}+ clicks to give a prefix and a next item. Fix: check that the session "
            "column holds session ids (a per-click or per-user-day id gives one click per session)"
        )
    in_long = np.repeat(long_enough, g.lengths)
    support = _counts(g.items, in_long, len(g.item_ids))
    keep = in_long & (support >= min_item_support)[g.items]
    del in_long
    kept_lengths = _segment_sums(keep, g.lengths)
    kept_items = g.items[keep]
    del keep
    g.items = kept_items[:0]  # release the unfiltered clicks (the largest array) early
    kept_starts = np.cumsum(kept_lengths) - kept_lengths
    valid = kept_lengths >= min_session_length
    if not valid.any():
        raise SessbenchError(
            f"no session of dataset '{name}' keeps {min_session_length}+ clicks on items seen "
            f"{min_item_support}+ times: the data is too small or too sparse for this preprocessing. "
            "Fix: use more data, or for a click log lower --dataset-param min_item_support"
        )

    step(1)

    # time split
    max_date = int(g.dates[valid].max())
    split_date = max_date - split_seconds
    train_sessions = _by_date(np.flatnonzero(valid & (g.dates < split_date)), g.dates)
    test_sessions = _by_date(np.flatnonzero(valid & (g.dates > split_date)), g.dates)
    if len(train_sessions) == 0:
        raise SessbenchError(
            f"dataset '{name}' has no training session before the split date (max date - {split_seconds} s): "
            "the data spans too short a time for this split"
        )

    step(1)

    # number items in order of first appearance in the sorted training sessions
    train_lengths = kept_lengths[train_sessions]
    train_codes = _gather(kept_items, kept_starts[train_sessions], train_lengths)
    first_seen = pd.unique(train_codes)
    n_items = len(first_seen)
    number_of_code = np.zeros(len(g.item_ids), dtype=np.int32)
    number_of_code[first_seen] = np.arange(1, n_items + 1, dtype=np.int32)
    train_items = number_of_code[train_codes]
    del train_codes
    train = SessionSet.from_lengths(train_items, train_lengths, g.dates[train_sessions], g.session_ids[train_sessions])

    test = _test_sessions(g, kept_items, kept_starts, kept_lengths, test_sessions, number_of_code, min_session_length)
    item_ids = _item_labels(clicks, g.item_ids[first_seen])
    step(1)
    info = {
        "dataset": name,
        "preprocessing": "srgnn",
        "split_seconds": int(split_seconds),
        "fraction": None,
        "min_item_support": int(min_item_support),
        "min_session_length": int(min_session_length),
        "time_zone": "UTC",
        "max_session_date": max_date,
        "split_date": int(split_date),
        "n_clicks_raw": int(len(clicks)),
        "n_sessions_raw": int(len(g.session_ids)),
        "n_train_prefixes_full": int(np.maximum(train.lengths - 1, 0).sum()),
        **(meta or {}),
    }
    labels = clicks.attrs.get("session_labels") if hasattr(clicks, "attrs") else None
    split = Split(
        name=name, train=train, test=test, n_items=n_items, item_ids=item_ids, valid=None, meta=info,
        session_labels=None if labels is None else np.asarray(labels, dtype=str),
    )
    return split if fraction is None else cut_training_fraction(split, fraction)


def _test_sessions(
    g: _Grouped,
    kept_items: np.ndarray,
    kept_starts: np.ndarray,
    kept_lengths: np.ndarray,
    sessions: np.ndarray,
    number_of_code: np.ndarray,
    min_session_length: int,
) -> SessionSet:
    """Test sessions with items unknown to training dropped, then sessions left short dropped."""
    lengths = kept_lengths[sessions]
    numbered = number_of_code[_gather(kept_items, kept_starts[sessions], lengths)]
    known = numbered > 0
    new_lengths = _segment_sums(known, lengths)
    keep_session = new_lengths >= min_session_length
    keep_click = known & np.repeat(keep_session, lengths)
    chosen = sessions[keep_session]
    return SessionSet.from_lengths(
        numbered[keep_click], new_lengths[keep_session], g.dates[chosen], g.session_ids[chosen]
    )


def _item_labels(clicks: pd.DataFrame, raw_ids: np.ndarray) -> np.ndarray:
    """item_ids of the Split: raw id of item i at index i (0: padding placeholder)."""
    labels = clicks.attrs.get("item_labels") if hasattr(clicks, "attrs") else None
    if labels is not None:  # a generic log with text ids: the `item` column holds codes
        text = np.asarray(labels, dtype=str)[raw_ids]
        return np.concatenate((np.array([""], dtype=text.dtype), text))
    return np.concatenate(([0], raw_ids)).astype(np.int64)


def cut_training_fraction(split: Split, fraction: int) -> Split:
    """The last len(augmented) // fraction training prefixes (official YOOCHOOSE 1/4, 1/64).

    Prefixes are listed longest first, so the kept prefixes of the session the cut falls in are
    exactly the prefixes of that session truncated; it is stored truncated, and
    `train.examples()` equals the official cut list. n_items and test are unchanged.
    """
    if fraction < 1:
        raise ConfigError(f"fraction must be a positive integer, got {fraction}")
    lengths = split.train.lengths
    counts = np.maximum(lengths - 1, 0)
    total = int(counts.sum())
    keep = total // fraction
    if keep == 0:
        raise SessbenchError(
            f"the 1/{fraction} cut of dataset '{split.name}' is empty: its training list has only "
            f"{total} prefixes (fewer than {fraction}). Use more data or a smaller fraction"
        )
    first = total - keep  # index of the first kept prefix in the augmented list
    ends = np.cumsum(counts)
    s = int(np.searchsorted(ends, first, side="right"))
    skipped = first - int(ends[s] - counts[s])  # longest prefixes of session s that are cut off
    tail = split.train.subset(slice(s, None))
    if skipped:
        tail_lengths = tail.lengths.copy()
        tail_lengths[0] -= skipped
        items = np.delete(tail.items, np.arange(tail_lengths[0], tail_lengths[0] + skipped))
        tail = SessionSet.from_lengths(items, tail_lengths, tail.timestamps, tail.session_ids)
    meta = {**split.meta, "fraction": int(fraction), "n_train_prefixes": keep}
    return replace(split, train=tail, meta=meta)
