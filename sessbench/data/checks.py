"""Checks of a prepared split that a user should hear about: test sessions that repeat training
sessions (the same item sequence, or the same session id).

A test session whose item sequence equals a training session's is not an error (short sessions
of popular items recur), but many of them, or long ones, mean that the test set leaks into
training: a split made by another tool that overlaps, or a log that lists sessions twice.
Sequences are compared exactly, without a loop over sessions: each session gets a 128-bit
polynomial hash (two 64-bit hashes, with its length), candidate pairs are those with equal keys,
and every candidate is then compared item by item.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sessbench.data.sessions import SessionSet, Split

_BASES = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))
#: examples named in a warning
_SHOW = 3


def _powers(base: np.uint64, n: int) -> np.ndarray:
    """base**0 .. base**(n-1) modulo 2**64."""
    out = np.ones(max(n, 1), dtype=np.uint64)
    step, filled = base, 1
    while filled < n:  # doubling: log2(n) vectorized steps
        take = min(filled, n - filled)
        with np.errstate(over="ignore"):
            out[filled : filled + take] = out[:take] * step
            step = step * step
        filled += take
    return out[:n]


def session_keys(sessions: SessionSet) -> pd.DataFrame:
    """Per session: length and two 64-bit polynomial hashes of its item sequence."""
    lengths = sessions.lengths
    position = np.arange(sessions.n_clicks, dtype=np.int64) - np.repeat(sessions.offsets[:-1], lengths)
    items = sessions.items.astype(np.uint64) + np.uint64(1)
    keys = {"length": lengths}
    nonempty = lengths > 0
    for k, base in enumerate(_BASES):
        with np.errstate(over="ignore"):
            terms = items * _powers(base, int(lengths.max(initial=0)))[position]
        hashes = np.zeros(sessions.n_sessions, dtype=np.uint64)
        if nonempty.any():
            with np.errstate(over="ignore"):
                hashes[nonempty] = np.add.reduceat(terms, sessions.offsets[:-1][nonempty])
        keys[f"h{k}"] = hashes
    return pd.DataFrame(keys)


def repeated_sessions(train: SessionSet, test: SessionSet) -> np.ndarray:
    """For each test session, the index of a training session with the same item sequence (-1: none)."""
    out = np.full(test.n_sessions, -1, dtype=np.int64)
    if not train.n_sessions or not test.n_sessions:
        return out
    left = session_keys(test).reset_index(names="test")
    right = session_keys(train).reset_index(names="train").drop_duplicates(["length", "h0", "h1"])
    pairs = left.merge(right, on=["length", "h0", "h1"])
    if not len(pairs):
        return out
    a, b = pairs["test"].to_numpy(), pairs["train"].to_numpy()
    size = test.lengths[a]
    within = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)
    differs = test.items[np.repeat(test.offsets[a], size) + within] != train.items[np.repeat(train.offsets[b], size) + within]
    same = np.bincount(np.repeat(np.arange(len(a)), size), weights=differs, minlength=len(a)) == 0
    out[a[same]] = b[same]
    return out


def split_warnings(split: Split, parts: tuple[str, ...] = ("test",)) -> list[str]:
    """Warnings about `parts` (test, valid) that repeat training sessions: by item sequence,
    and (for splits given by another tool) by session id."""
    out = []
    for part in parts:
        other: SessionSet | None = getattr(split, part)
        if other is None or not other.n_sessions:
            continue
        match = repeated_sessions(split.train, other)
        repeated = np.flatnonzero(match >= 0)
        if len(repeated):
            longer = int((other.lengths[repeated] > 2).sum())
            shown = ", ".join(
                f"{_label(split, other, t)} = training session {_label(split, split.train, int(match[t]))} "
                f"({int(other.lengths[t])} clicks)" for t in repeated[np.argsort(-other.lengths[repeated], kind="stable")][:_SHOW]
            )
            out.append(
                f"{len(repeated):,} of {other.n_sessions:,} {part} sessions ({100 * len(repeated) / other.n_sessions:.1f}%) "
                f"repeat a training session's item sequence exactly ({longer:,} of them longer than 2 clicks), e.g. "
                f"{shown}. Short repeats are common; many long ones suggest the {part} part overlaps training"
            )
        shared = np.intersect1d(split.train.session_ids, other.session_ids)
        if len(shared) and split.meta.get("session_ids_given"):
            out.append(
                f"{len(shared):,} {part} session ids also name training sessions, e.g. "
                f"{', '.join(map(str, shared[:_SHOW].tolist()))}: the same session in both parts leaks it into training"
            )
    return out


def _label(split: Split, sessions: SessionSet, index: int) -> str:
    return str(split.raw_session_ids(sessions.session_ids[index : index + 1])[0])
