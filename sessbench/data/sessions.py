"""Core data types: sessions in CSR form, prefix examples, padded batches and splits.

Every stage of sessbench passes these around. Memory is O(clicks): a `SessionSet` stores the
clicks of all sessions in one flat array, and an `Examples` object describes the
(prefix -> next item) pairs of the SR-GNN protocol as (session, cut) index pairs instead of
materialising every prefix (which would cost O(sum of prefix lengths)).

Item indices run 1..n_items; 0 is padding and is never a valid item.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Iterator, Sequence, TypeVar

import numpy as np
import torch


def _as_array(values: Any, dtype: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=dtype))


@dataclass(frozen=True, eq=False)
class SessionSet:
    """Sessions as CSR arrays.

    offsets:     int64 [n_sessions + 1]; session s is items[offsets[s]:offsets[s+1]].
    items:       int32 [n_clicks]; item indices 1..n_items, in click order.
    timestamps:  int64 [n_sessions]; the session's time (UTC epoch seconds) that the time split
                 uses (for the SR-GNN datasets: the date of the session's last row).
    session_ids: int64 [n_sessions]; the raw session ids, kept for exports and recommendation
                 lists. Synthetic data numbers its sessions 1..n.
    """

    offsets: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    session_ids: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "offsets", _as_array(self.offsets, np.int64))
        object.__setattr__(self, "items", _as_array(self.items, np.int32))
        object.__setattr__(self, "timestamps", _as_array(self.timestamps, np.int64))
        object.__setattr__(self, "session_ids", _as_array(self.session_ids, np.int64))
        n = len(self.offsets) - 1
        if n < 0 or self.offsets[0] != 0 or self.offsets[-1] != len(self.items):
            raise ValueError("SessionSet offsets must start at 0 and end at len(items)")
        if np.any(np.diff(self.offsets) < 0):
            raise ValueError("SessionSet offsets must be non-decreasing")
        if len(self.timestamps) != n or len(self.session_ids) != n:
            raise ValueError("SessionSet needs one timestamp and one session id per session")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_lists(
        cls,
        sequences: Sequence[Sequence[int]],
        timestamps: Sequence[int] | None = None,
        session_ids: Sequence[int] | None = None,
    ) -> "SessionSet":
        """Build from Python lists (tests, small imports). Not for hot paths."""
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        items = (
            np.concatenate([np.asarray(s, dtype=np.int32) for s in sequences])
            if len(sequences)
            else np.zeros(0, np.int32)
        )
        return cls.from_lengths(items, lengths, timestamps, session_ids)

    @classmethod
    def from_lengths(
        cls,
        items: np.ndarray,
        lengths: np.ndarray,
        timestamps: Sequence[int] | np.ndarray | None = None,
        session_ids: Sequence[int] | np.ndarray | None = None,
    ) -> "SessionSet":
        lengths = np.asarray(lengths, dtype=np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        n = len(lengths)
        ts = np.zeros(n, np.int64) if timestamps is None else timestamps
        ids = np.arange(1, n + 1, dtype=np.int64) if session_ids is None else session_ids
        return cls(offsets=offsets, items=items, timestamps=ts, session_ids=ids)

    @classmethod
    def empty(cls) -> "SessionSet":
        return cls.from_lengths(np.zeros(0, np.int32), np.zeros(0, np.int64))

    # ------------------------------------------------------------------ views
    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_clicks(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return self.n_sessions

    def session(self, s: int) -> np.ndarray:
        return self.items[self.offsets[s] : self.offsets[s + 1]]

    def to_lists(self) -> list[list[int]]:
        """Python lists, one per session (tests and exports of small data only)."""
        return [chunk.tolist() for chunk in np.split(self.items, self.offsets[1:-1])] if self.n_sessions else []

    def session_index_of_clicks(self) -> np.ndarray:
        """int64 [n_clicks]: the session each click belongs to."""
        return np.repeat(np.arange(self.n_sessions, dtype=np.int64), self.lengths)

    def subset(self, index: np.ndarray | slice) -> "SessionSet":
        """The sessions at `index` (in that order), gathered without a Python loop."""
        sel = np.arange(self.n_sessions, dtype=np.int64)[index]
        lengths = self.lengths[sel]
        starts = self.offsets[:-1][sel]
        total = int(lengths.sum())
        # position of each gathered click inside its source array
        rel = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        src = np.repeat(starts, lengths) + rel
        return SessionSet.from_lengths(
            self.items[src], lengths, self.timestamps[sel], self.session_ids[sel]
        )

    def item_counts(self, n_items: int) -> np.ndarray:
        """int64 [n_items + 1]: how often each item is clicked in these sessions."""
        return np.bincount(self.items, minlength=n_items + 1).astype(np.int64)

    def examples(self) -> "Examples":
        return Examples.all_prefixes(self)

    def checksum(self) -> str:
        """A content hash (for manifests and result records)."""
        import hashlib

        h = hashlib.sha256()
        for arr in (self.offsets, self.items, self.timestamps, self.session_ids):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]


_Padded = TypeVar("_Padded", bound="_PaddedItems")


class _PaddedItems:
    """What every padded batch of prefixes offers (`items` [B, L] and `lengths` [B])."""

    items: torch.Tensor
    lengths: torch.Tensor

    def __len__(self) -> int:
        return int(self.items.shape[0])

    @property
    def mask(self) -> torch.Tensor:
        """bool [B, L]: True on real clicks."""
        return self.items > 0

    @property
    def last_items(self) -> torch.Tensor:
        """int64 [B]: the last click of each prefix."""
        return self.items.gather(1, (self.lengths - 1).unsqueeze(1)).squeeze(1)

    def to(self: _Padded, device: torch.device | str) -> _Padded:
        """The same batch with every tensor field on `device` (numpy fields stay on the host)."""
        if self.items.device == torch.device(device):
            return self
        moved = {f.name: getattr(self, f.name).to(device, non_blocking=True)
                 for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **moved)


@dataclass(frozen=True)
class Prefixes(_PaddedItems):
    """A padded batch of input prefixes: what a model's `score` receives, and nothing more.

    items:   int64 [B, L], left-aligned prefixes, 0-padded on the right; L = longest prefix.
    lengths: int64 [B], prefix lengths (>= 1).
    example_index: int64 numpy [B], positions of these examples in their `Examples`.

    The type has no targets, so a model cannot read the labels it is scored on: the evaluator
    hands `score` a `Prefixes`, never a `Batch` (a structural guarantee, not a convention).
    """

    items: torch.Tensor
    lengths: torch.Tensor
    example_index: np.ndarray



@dataclass(frozen=True)
class Batch(_PaddedItems):
    """A padded batch of prefixes with their targets: for training only.

    items, lengths: as in `Prefixes`.
    targets: int64 [B], the next item of each prefix (the label). Training losses read it;
             scoring never sees it (`prefixes()` drops it, and the evaluator scores that).
    example_index: int64 numpy [B], positions of these examples in their `Examples`.
    """

    items: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    example_index: np.ndarray

    def prefixes(self) -> Prefixes:
        """The same batch without its targets: what `score` may see."""
        return Prefixes(items=self.items, lengths=self.lengths, example_index=self.example_index)



@dataclass(frozen=True, eq=False)
class Examples:
    """(prefix -> next item) pairs as index pairs into a SessionSet.

    Example e is the prefix sessions.session(session_index[e])[:cut[e]] with target
    sessions.session(session_index[e])[cut[e]]. Nothing is copied until `batch` gathers.
    """

    sessions: SessionSet
    session_index: np.ndarray
    cut: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "session_index", _as_array(self.session_index, np.int64))
        object.__setattr__(self, "cut", _as_array(self.cut, np.int64))

    @classmethod
    def all_prefixes(cls, sessions: SessionSet) -> "Examples":
        """Every prefix of every session, in the official SR-GNN order.

        For s = [i1..in]: ([i1..i(n-1)] -> in), ..., ([i1] -> i2), longest prefix first,
        sessions in their stored order.
        """
        counts = np.maximum(sessions.lengths - 1, 0)
        total = int(counts.sum())
        session_index = np.repeat(np.arange(sessions.n_sessions, dtype=np.int64), counts)
        group_start = np.repeat(np.cumsum(counts) - counts, counts)
        cut = np.repeat(counts, counts) - (np.arange(total, dtype=np.int64) - group_start)
        return cls(sessions, session_index, cut)

    def __len__(self) -> int:
        return len(self.cut)

    @property
    def prefix_lengths(self) -> np.ndarray:
        return self.cut

    @property
    def targets(self) -> np.ndarray:
        return self.sessions.items[self.sessions.offsets[self.session_index] + self.cut].astype(np.int64)

    @property
    def last_items(self) -> np.ndarray:
        return self.sessions.items[self.sessions.offsets[self.session_index] + self.cut - 1].astype(np.int64)

    def subset(self, index: np.ndarray | slice) -> "Examples":
        return Examples(self.sessions, self.session_index[index], self.cut[index])

    def batch(self, index: np.ndarray | slice) -> Batch:
        """Gather examples into a padded batch with one vectorized gather."""
        positions = np.arange(len(self), dtype=np.int64)[index]
        cut = self.cut[positions]
        starts = self.sessions.offsets[self.session_index[positions]]
        width = int(cut.max()) if len(cut) else 1
        col = np.arange(width, dtype=np.int64)
        valid = col[None, :] < cut[:, None]
        src = np.where(valid, starts[:, None] + col[None, :], 0)
        items = np.where(valid, self.sessions.items[src], 0).astype(np.int64)
        targets = self.sessions.items[starts + cut].astype(np.int64)
        return Batch(
            items=torch.from_numpy(items),
            lengths=torch.from_numpy(cut.copy()),
            targets=torch.from_numpy(targets),
            example_index=positions,
        )

    def iter_batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        rng: np.random.Generator | None = None,
    ) -> Iterator[Batch]:
        """Batches in stored order, or shuffled with `rng` (required when shuffling)."""
        order = np.arange(len(self), dtype=np.int64)
        if shuffle:
            if rng is None:
                raise ValueError("iter_batches(shuffle=True) needs an rng for determinism")
            order = rng.permutation(len(self))
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start : start + batch_size])

    def n_batches(self, batch_size: int) -> int:
        return (len(self) + batch_size - 1) // batch_size


@dataclass(frozen=True, eq=False)
class TrainingData:
    """What a model may see while fitting: training (and validation) sessions, never test."""

    train: SessionSet
    valid: SessionSet | None
    n_items: int
    dataset: str
    item_ids: np.ndarray | None = None

    def train_examples(self) -> Examples:
        return self.train.examples()

    def valid_examples(self) -> Examples | None:
        return None if self.valid is None else self.valid.examples()

    def item_popularity(self) -> np.ndarray:
        """int64 [n_items + 1]: clicks per item in the training sessions (index 0 is 0)."""
        return self.train.item_counts(self.n_items)


@dataclass(frozen=True, eq=False)
class Split:
    """A prepared dataset: training list, optional validation part, test sessions.

    train:    training sessions in the order the preprocessing defines (for the SR-GNN datasets,
              the official training list, so `train.examples()` equals the official augmented
              list; for the 1/4 and 1/64 cuts the first session is truncated so that the cut
              falls exactly where the official one does).
    valid:    sessions carved from the end of `train` for model selection (see
              `with_validation`), or None.
    test:     test sessions; `test.examples()` are the evaluation prefixes.
    n_items:  the candidate items are 1..n_items.
    item_ids: raw id of each item index (item_ids[0] is a placeholder for padding); int64, or
              a unicode array for click logs with string ids.
    session_labels: for click logs with text session ids, the raw id of each session code
              (sessions' `session_ids` then hold codes); None when session ids are integers.
    meta:     how it was made: dataset name, parameters, source checksum, sessbench version.
    """

    name: str
    train: SessionSet
    test: SessionSet
    n_items: int
    item_ids: np.ndarray
    valid: SessionSet | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    session_labels: np.ndarray | None = None

    def raw_session_ids(self, session_ids: np.ndarray) -> np.ndarray:
        """The raw ids of sessions given by their `session_ids` (labels for text ids)."""
        return session_ids if self.session_labels is None else self.session_labels[session_ids]

    def with_validation(self, fraction: float) -> "Split":
        """Carve the last `fraction` of training sessions (they are in time order) as validation.

        Returns a new Split whose `train` no longer holds those sessions. fraction=0 gives
        valid=None. The official training list stays available in the unsplit object. A split
        made elsewhere with its own validation part (`split:DIR`; stored after the training
        sessions, `meta["given_validation_sessions"]`) uses that part instead of a carve.
        """
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
        given = int(self.meta.get("given_validation_sessions") or 0)
        if given and fraction > 0 and self.valid is None:
            n_fit = self.train.n_sessions - given
            return replace(
                self,
                train=self.train.subset(slice(0, n_fit)),
                valid=self.train.subset(slice(n_fit, None)),
                meta={**self.meta, "validation": "given"},
            )
        if fraction == 0.0 or self.train.n_sessions < 2:
            return replace(self, valid=None)
        n_valid = max(1, int(round(self.train.n_sessions * fraction)))
        n_fit = self.train.n_sessions - n_valid
        return replace(
            self,
            train=self.train.subset(slice(0, n_fit)),
            valid=self.train.subset(slice(n_fit, None)),
            meta={**self.meta, "validation_fraction": fraction},
        )

    def training_data(self) -> TrainingData:
        return TrainingData(self.train, self.valid, self.n_items, self.name, self.item_ids)

    def checksum(self) -> str:
        """A content hash of what a run sees (training and test sessions, candidate count): two
        runs with equal checksums were computed from the same data, however it was prepared.
        Computed once per split (it is immutable): every run on it records it."""
        import hashlib

        if "_checksum" not in self.__dict__:
            parts = [self.train.checksum(), self.test.checksum(), str(self.n_items)]
            if self.valid is not None:
                parts.append(self.valid.checksum())
            self.__dict__["_checksum"] = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
        return self.__dict__["_checksum"]

    def test_examples(self) -> Examples:
        return self.test.examples()
