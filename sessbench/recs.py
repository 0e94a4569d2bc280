"""Recommendation lists anyone can evaluate: save a run's top-K lists, export them, and score
list files from any framework with sessbench's own metrics.

A list file has one row per test prefix in session-rec's layout: SessionId (the raw session
id), Position (0 = the prediction after the first click, i.e. prefix length - 1),
Recommendations (raw item ids, best first) and Scores (optional; one per item). `recs export`
adds a fifth column, Tied, only when some lists were truncated (see below).

Ties. A run's metrics count, per prefix, the items scoring above the target (`greater`) and
tying with it (`equal`), and P@K / MRR@K are expectations under random tie-breaking (see
sessbench.evaluation). So that saved lists re-evaluate to exactly the run's metrics at every
K <= the saved K, a saved list holds every item scoring >= the K-th score (it is longer than K
when items tie at the cut-off), up to a cap (default 10 x K). A row whose tie group is larger
is stored truncated (the lowest item indices of the group) and its Tied value says how many
items score >= its K-th score. A list is evaluated as:
  target listed with score s: greater = listed items scoring > s, equal = other listed items
    scoring == s, or, in a truncated row where s is the tie score, Tied - greater - 1 (exact);
  target not listed: a miss at every evaluated K, except in a truncated row whose Tied equals
    the dataset's item count: then every item ties at or above the K-th score, so the target
    is in the tie group (exact; the usual case: models that leave most items at score 0).
The one inexact case left is a truncated row whose tie group is not the whole catalogue and
whose target ties at the cut-off but was cut: it counts as a miss where the run counted a
chance of at most K / Tied; the number of truncated rows is printed. Without a Scores column the list order is the ranking
(no ties). The counts go through `RankCounts`, so the arithmetic is the evaluator's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sessbench.atomic import atomic_file
from sessbench.data.sessions import Examples, Split
from sessbench.errors import DataFormatError, SessbenchError
from sessbench.evaluation import KS, RankCounts, TopLists

COLUMNS = ("SessionId", "Position", "Recommendations", "Scores")
REQUIRED = COLUMNS[:3]
#: unmatched rows shown by `format_evaluation`
SHOW_UNMATCHED = 5


@dataclass(eq=False)
class RecLists:
    """Ragged recommendation lists, one row per (session, position), in CSR form.

    session_ids: [R] raw session ids (int64; strings when read from a file that holds
                 something else), positions: int64 [R] (-1 where unreadable),
    offsets:     int64 [R + 1]; row r lists items[offsets[r]:offsets[r+1]] best first,
    items:       [E] raw item ids (the dataset's id type), scores: float [E] or None,
    n_tied:      int64 [R] items tied at or above the K-th score (saved lists; -1 unknown):
                 a row is truncated when n_tied > its length.
    k, cap:      the K and the cap a run saved with (None for other frameworks' files).
    dataset, fingerprint: the run's dataset and `split_fingerprint` of its split (saved lists
                 only), so that lists are never scored against another split.
    """

    session_ids: np.ndarray
    positions: np.ndarray
    offsets: np.ndarray
    items: np.ndarray
    scores: np.ndarray | None
    n_tied: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    k: int | None = None
    cap: int | None = None
    dataset: str | None = None
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        if len(self.n_tied) != len(self.positions):
            self.n_tied = np.full(len(self.positions), -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def truncated(self) -> np.ndarray:
        return self.n_tied > self.lengths


# ---------------------------------------------------------------------------- runs' lists


def split_fingerprint(split: Split) -> str:
    """A short hash of the split's test sessions (items, lengths, session ids)."""
    digest = hashlib.sha256()
    for arr in (split.test.offsets, split.test.items, split.test.session_ids):
        digest.update(np.ascontiguousarray(arr).view(np.uint8))
    return digest.hexdigest()[:16]


def from_top_lists(top: TopLists, examples: Examples, split: Split, dataset: str | None = None) -> RecLists:
    """The evaluator's lists of `examples` (the split's test prefixes), keyed by raw session id
    and position, items as raw ids."""
    return RecLists(
        session_ids=split.raw_session_ids(examples.sessions.session_ids[examples.session_index]),
        positions=examples.cut - 1,
        offsets=top.offsets,
        items=np.asarray(split.item_ids)[top.items],
        scores=top.scores,
        n_tied=top.n_tied,
        k=top.k,
        cap=top.cap,
        dataset=dataset or split.name,
        fingerprint=split_fingerprint(split),
    )


def save_lists(lists: RecLists, path: str | PathLike[str]) -> dict[str, Any]:
    """Write a compressed .npz atomically; returns the summary a run record keeps."""
    with atomic_file(path) as fh:
        np.savez_compressed(
            fh, session_id=lists.session_ids, position=lists.positions, offsets=lists.offsets,
            items=lists.items, scores=lists.scores, n_tied=lists.n_tied,
            k=np.int64(lists.k or 0), cap=np.int64(lists.cap or 0),
            dataset=np.str_(lists.dataset or ""), fingerprint=np.str_(lists.fingerprint or ""),
        )
    return {
        "k": lists.k, "cap": lists.cap, "rows": len(lists), "entries": int(lists.offsets[-1]),
        "truncated_rows": int(lists.truncated.sum()),
    }


def load_lists(path: str | PathLike[str]) -> RecLists:
    """Read what `save_lists` wrote (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as d:
            return RecLists(
                d["session_id"], d["position"], d["offsets"], d["items"], d["scores"], d["n_tied"],
                int(d["k"]) or None, int(d["cap"]) or None, str(d["dataset"]) or None, str(d["fingerprint"]) or None,
            )
    except (KeyError, ValueError, OSError) as exc:
        raise DataFormatError(path, f"not a sessbench list file ({exc})", "Pass a .recs.npz written by 'sessbench run --save-recs K'.") from None


def find_run_lists(run: str, runs_dir: Path) -> tuple[dict[str, Any], Path]:
    """The record and list file of RUN (a run id or a record path)."""
    from sessbench.results import read_record, record_path

    path = Path(run)
    if not (path.suffix == ".json" and path.is_file()):
        path = record_path(runs_dir, run.removesuffix(".json"))
    record = read_record(path) if path.is_file() else None
    if record is None:
        raise SessbenchError(
            f"no run record '{run}' (looked for {path}). Pass a run id from 'ls {runs_dir}' "
            "(the file name without .json) or a record path, and --runs-dir if the runs are elsewhere."
        )
    if record.get("status") != "ok":
        reason = (record.get("error") or {}).get("message", "no error recorded")
        raise SessbenchError(
            f"run {record['run_id']} failed ({reason}), so it saved no recommendation lists. Fix the cause "
            "(its record holds the traceback) and rerun it with --save-recs."
        )
    if not record.get("recs_file"):
        raise SessbenchError(
            f"run {record['run_id']} saved no recommendation lists ({path} has no recs_file). "
            "Rerun it with 'sessbench run ... --save-recs 20' (add --runs-dir to write elsewhere)."
        )
    lists_path = path.parent / record["recs_file"]
    if not lists_path.is_file():
        raise SessbenchError(f"run {record['run_id']} names {lists_path}, which is missing: rerun it with --save-recs.")
    return record, lists_path


# ---------------------------------------------------------------------------- files


def _join_rows(tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """One comma-joined string per row, without a Python loop per row."""
    out = np.full(len(lengths), "", dtype=object)
    if len(tokens):
        ends = np.cumsum(lengths)[lengths > 0] - 1
        sep = np.full(len(tokens), ",", dtype=object)
        sep[ends] = "\n"
        joined = "".join((pd.Series(tokens, dtype=object) + sep).tolist())
        out[lengths > 0] = joined.split("\n")[:-1]
    return out


def to_frame(lists: RecLists) -> pd.DataFrame:
    """session-rec's layout: SessionId, Position, Recommendations, Scores (lists as text)."""
    lengths = lists.lengths
    frame = pd.DataFrame({
        "SessionId": lists.session_ids,
        "Position": lists.positions,
        "Recommendations": _join_rows(lists.items.astype(str), lengths),
    })
    if lists.scores is not None:  # shortest round-trip text for the stored precision
        frame["Scores"] = _join_rows(lists.scores.astype(str), lengths)
    if lists.truncated.any():  # an extra column only when needed, so `evaluate` can flag them
        frame["Tied"] = lists.n_tied
    return frame


def to_table(lists: RecLists) -> pa.Table:
    """The same columns for Parquet, with Recommendations and Scores as list columns."""
    offsets = pa.array(lists.offsets.astype(np.int32) if lists.offsets[-1] < 2**31 else lists.offsets)
    list_type = pa.ListArray if offsets.type == pa.int32() else pa.LargeListArray
    columns = {
        "SessionId": pa.array(lists.session_ids),
        "Position": pa.array(lists.positions),
        "Recommendations": list_type.from_arrays(offsets, pa.array(lists.items)),
    }
    if lists.scores is not None:
        columns["Scores"] = list_type.from_arrays(offsets, pa.array(lists.scores))
    if lists.truncated.any():
        columns["Tied"] = pa.array(lists.n_tied)
    return pa.table(columns)


def export_lists(lists: RecLists, out: Path) -> Path:
    """CSV (semicolon-separated, lists as comma-joined text) or Parquet (list columns) when
    `out` ends in .parquet; written atomically."""
    out = Path(out)
    if out.is_dir():
        raise SessbenchError(f"--out {out} is a folder: give a file name ending in .csv or .parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as fh:
        if out.suffix == ".parquet":
            pq.write_table(to_table(lists), fh)
        else:
            to_frame(lists).to_csv(fh, sep=";", index=False)
    return out


def _flatten(column: pd.Series | pa.ChunkedArray, path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, lengths) of a list column: Parquet list values, or comma-joined text."""
    if isinstance(column, pa.ChunkedArray):
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy().astype(np.int64)
            tokens = pc.list_flatten(column).to_numpy(zero_copy_only=False)
            return tokens, lengths
        column = column.to_pandas()
    text = column.fillna("").astype(str).str.replace(" ", "", regex=False)
    lengths = np.where(text == "", 0, text.str.count(",") + 1).astype(np.int64)
    joined = ",".join(text[text != ""].tolist())
    tokens = np.array(joined.split(",") if joined else [], dtype=object)
    if np.any(tokens == ""):
        raise DataFormatError(path, f"column {name} has an empty entry (',,' or a trailing comma)", "Write each list as comma-separated values.")
    return tokens, lengths


def read_lists(path: str | PathLike[str], item_dtype: np.dtype) -> RecLists:
    """A list file in session-rec's layout (CSV with ';', or .parquet), or a saved .recs.npz.

    Item ids are converted to the dataset's id type (`item_dtype`) so they match its raw ids.
    """
    path = Path(path)
    if not path.is_file():
        raise SessbenchError(f"list file {path} does not exist: pass the path of a CSV, .parquet or .recs.npz file")
    if path.name.endswith(".npz"):
        return load_lists(path)
    lists: dict[str, pd.Series | pa.ChunkedArray] = {}
    try:
        if path.suffix == ".parquet":  # list columns stay Arrow arrays (flattened without a row loop)
            table = pq.read_table(path)
            names = table.column_names
            lists = {c: table.column(c) for c in ("Recommendations", "Scores") if c in names}
            frame = table.select([c for c in names if c not in lists]).to_pandas()
        else:
            frame = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)
            names = list(frame.columns)
            lists = {c: frame[c] for c in ("Recommendations", "Scores") if c in names}
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise DataFormatError(path, f"cannot be read ({type(exc).__name__}: {exc})", "Write it as semicolon-separated CSV or Parquet.") from None
    missing = [c for c in REQUIRED if c not in names]
    if missing and len(names) == 1 and "," in str(names[0]) and path.suffix != ".parquet":
        raise DataFormatError(
            path, f"the header is one column '{names[0]}': the file looks comma-separated",
            f"session-rec's layout separates columns with ';' ({';'.join(COLUMNS)}) and items with ','.",
        )
    if missing:
        raise DataFormatError(
            path, f"missing column(s) {', '.join(missing)} (found: {', '.join(map(str, names)) or 'none'})",
            f"Use session-rec's layout: {';'.join(COLUMNS)} (Scores optional), semicolon-separated, with a header.",
        )
    items, lengths = _flatten(lists["Recommendations"], path, "Recommendations")
    try:
        items = items.astype(item_dtype)
    except (ValueError, TypeError):
        bad = int(np.flatnonzero(pd.to_numeric(pd.Series(items), errors="coerce").isna())[0])
        row = int(np.searchsorted(np.cumsum(lengths), bad, side="right"))
        raise DataFormatError(
            path, f"row {row + 1} (SessionId {frame['SessionId'].iloc[row]}) recommends {items[bad]!r}, not a "
            f"{np.dtype(item_dtype)} id like the dataset's items", "Write raw item ids, as in the dataset's click file.",
        ) from None
    scores = None
    if "Scores" in lists:
        tokens, score_lengths = _flatten(lists["Scores"], path, "Scores")
        if not np.array_equal(score_lengths, lengths):
            row = int(np.nonzero(score_lengths != lengths)[0][0])
            raise DataFormatError(path, f"row {row + 1} has {score_lengths[row]} scores for {lengths[row]} items", "Give one score per recommended item.")
        try:
            scores = tokens.astype(np.float64)
        except ValueError:
            raise DataFormatError(path, "column Scores holds values that are not numbers", "Write scores as decimal numbers.") from None
        if np.isnan(scores).any():
            raise DataFormatError(path, "column Scores holds NaN", "NaN cannot be ranked: write -inf for items a model cannot score.")
    positions = pd.to_numeric(frame["Position"], errors="coerce")
    positions = positions.where(positions.notna() & (positions % 1 == 0), -1).to_numpy().astype(np.int64)
    offsets = np.zeros(len(frame) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    n_tied = np.full(len(frame), -1, dtype=np.int64)
    if "Tied" in frame.columns:  # written by `recs export` when a tie group passed the cap
        n_tied = pd.to_numeric(frame["Tied"], errors="coerce").fillna(-1).to_numpy().astype(np.int64)
    session_ids = frame["SessionId"].astype(str).str.strip().to_numpy(dtype=object)
    return RecLists(session_ids, positions, offsets, items, scores, n_tied)


# ---------------------------------------------------------------------------- evaluation


@dataclass(eq=False)
class ListEvaluation:
    """Metrics of a list file on a split's test prefixes, and how the rows matched them."""

    metrics: dict[str, float]
    groups: dict[str, dict[str, float]]
    n_examples: dict[str, int]
    ks: tuple[int, ...]
    rows: int
    matched_rows: int
    missing_prefixes: int
    duplicate_rows: int
    unmatched: np.ndarray  # row numbers (0-based) that match no test prefix
    unmatched_keys: list[tuple[str, int]]
    truncated_rows: int
    uncertain_rows: int
    short_rows: int
    ranks: RankCounts

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics, "groups": self.groups, "n_examples": self.n_examples, "ks": list(self.ks),
            "rows": self.rows, "matched_rows": self.matched_rows, "missing_prefixes": self.missing_prefixes,
            "duplicate_rows": self.duplicate_rows, "unmatched_rows": len(self.unmatched),
            "unmatched_first": [list(k) for k in self.unmatched_keys], "truncated_rows": self.truncated_rows,
            "uncertain_rows": self.uncertain_rows, "short_rows": self.short_rows,
        }


def _item_index(raw: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """Item index (1..n_items) of each raw id; -1 for ids the dataset does not have."""
    known = np.asarray(item_ids)[1:]
    order = np.argsort(known, kind="stable")
    pos = np.searchsorted(known[order], raw).clip(max=max(len(known) - 1, 0))
    if not len(known):
        return np.full(len(raw), -1, dtype=np.int64)
    found = known[order][pos] == raw
    return np.where(found, order[pos] + 1, -1).astype(np.int64)


def list_rank_counts(
    lists: RecLists, item_index: np.ndarray, row_target: np.ndarray, k_max: int, n_items: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(greater, equal, found) per row for each row's target item index (-1: none).

    `item_index`: the listed items as item indices (-1 for ids the dataset lacks).
    greater/equal count listed items above / tied with the target; a target that is not
    listed gets greater = max(row length, k_max), a miss at every cut-off <= k_max. Truncated
    rows (n_tied > length) use n_tied: a target listed at the tie score ties with all n_tied
    items not above it, and when every one of the `n_items` items ties at or above the K-th
    score (n_tied == n_items) an unlisted target is in the tie group too.
    """
    lengths = lists.lengths
    n_rows = len(lengths)
    entry_row = np.repeat(np.arange(n_rows), lengths)
    if lists.scores is None:  # the order is the ranking: scores descending, no ties
        scores = -(np.arange(len(entry_row)) - lists.offsets[:-1][entry_row]).astype(np.float64)
    else:
        scores = np.asarray(lists.scores)
    hit = item_index == row_target[entry_row]
    hit_entries = np.nonzero(hit)[0]
    rows_hit, first = np.unique(entry_row[hit_entries], return_index=True)
    target_score = np.full(n_rows, np.nan, dtype=scores.dtype)
    target_score[rows_hit] = scores[hit_entries[first]]
    ts = target_score[entry_row]
    greater = np.bincount(entry_row, weights=scores > ts, minlength=n_rows).astype(np.int64)
    equal = np.bincount(entry_row, weights=scores == ts, minlength=n_rows).astype(np.int64) - 1
    found = np.zeros(n_rows, dtype=bool)
    found[rows_hit] = True
    equal[~found] = 0
    greater[~found] = np.maximum(lengths, k_max)[~found]
    cut = lists.truncated & (lengths > 0)
    if cut.any():  # the tie score is a truncated row's lowest listed score
        lowest = np.full(n_rows, np.inf)
        lowest[lengths > 0] = np.minimum.reduceat(scores, lists.offsets[:-1][lengths > 0])
        listed_tie = cut & found & (target_score == lowest)
        equal[listed_tie] = lists.n_tied[listed_tie] - greater[listed_tie] - 1
        unlisted_tie = cut & ~found & (row_target > 0) & (n_items is not None) & (lists.n_tied == n_items)
        above = np.bincount(entry_row, weights=scores > lowest[entry_row], minlength=n_rows).astype(np.int64)
        greater[unlisted_tie] = above[unlisted_tie]
        equal[unlisted_tie] = lists.n_tied[unlisted_tie] - above[unlisted_tie] - 1
    return greater, equal, found


def _row_keys(lists: RecLists, split: Split) -> pd.Series:
    """Each row's "session:position" key in the form the split's test keys take.

    Integer session ids compare as numbers (a file's "007" is session 7); text ids as text.
    Rows whose id cannot be an id of this split get a key that matches nothing.
    """
    raw = pd.Series(np.asarray(lists.session_ids, dtype=object))
    if split.session_labels is None:
        numbers = pd.to_numeric(raw, errors="coerce")
        whole = numbers.notna() & (numbers % 1 == 0)
        ids = pd.Series(np.where(whole, numbers.fillna(0).astype(np.int64).astype(str), "?" + raw.astype(str)))
    else:
        ids = raw.astype(str).str.strip()
    return ids + ":" + pd.Series(lists.positions.astype(str))


def evaluate_lists(lists: RecLists, split: Split, ks: Sequence[int] | None = None) -> ListEvaluation:
    """Our metrics for `lists` on the split's test prefixes, matched by (SessionId, Position).

    Prefixes without a row count as misses. Default cut-offs: the K values in KS up to the
    lists' K (saved lists) or their longest row (other files). A K above a saved list's K is an
    error; rows shorter than K (other files) are evaluated as given and counted.
    """
    if lists.fingerprint and lists.fingerprint != split_fingerprint(split):
        raise SessbenchError(
            f"the lists were saved on dataset '{lists.dataset}', whose test sessions differ from those of "
            f"'{split.name}' as prepared here: pass --dataset {lists.dataset} (with the --data-dir and "
            "--dataset-param of that run)."
        )
    examples = split.test_examples()
    n = len(examples)
    raw_ids = split.raw_session_ids(split.test.session_ids[examples.session_index])
    ex_keys = pd.Index(pd.Series(raw_ids.astype(str)) + ":" + pd.Series((examples.cut - 1).astype(str)))
    if not ex_keys.is_unique:
        raise SessbenchError(f"dataset {split.name}: test sessions repeat raw session ids, so rows cannot be matched by (SessionId, Position).")
    idx = ex_keys.get_indexer(_row_keys(lists, split))
    matched = np.nonzero(idx >= 0)[0]
    ex_row = np.full(n, -1, dtype=np.int64)
    ex_row[idx[matched][::-1]] = matched[::-1]  # the first row of a repeated key wins
    used = ex_row >= 0
    if not used.any():
        raise SessbenchError(
            f"no row of the list file matches a test prefix of {split.name} (first row: SessionId "
            f"{lists.session_ids[0] if len(lists) else '-'}, Position {lists.positions[0] if len(lists) else '-'}; "
            f"first test prefix: SessionId {raw_ids[0]}, Position {int(examples.cut[0]) - 1}). Rows need the raw "
            "session id and Position = prefix length - 1 of the same split: check --dataset and its parameters."
        )
    lengths = lists.lengths[ex_row[used]]
    limit = lists.k or int(lengths.max())
    if ks is None:
        ks = tuple(k for k in KS if k <= limit)
        if not ks:
            raise SessbenchError(f"the longest matched list holds {limit} items, fewer than K={min(KS)}: pass --ks, e.g. --ks {max(limit, 1)}.")
    ks = tuple(sorted(int(k) for k in ks))
    if lists.k and max(ks) > lists.k:
        raise SessbenchError(
            f"K={max(ks)} is above the K={lists.k} the lists were saved with: their P@{max(ks)} would count only "
            f"the top {lists.k}. Pass --ks up to {lists.k}, or rerun with --save-recs {max(ks)}."
        )
    # rows shorter than K (other frameworks' files): evaluated as given; a row holding the whole
    # catalogue is complete at any K
    short_rows = int(((lengths < max(ks)) & (lengths < split.n_items)).sum())
    row_target = np.full(len(lists), -1, dtype=np.int64)
    row_target[ex_row[used]] = examples.targets[used]
    item_index = _item_index(np.asarray(lists.items), split.item_ids)
    g_row, e_row, found = list_rank_counts(lists, item_index, row_target, max(ks), split.n_items)
    greater = np.where(used, g_row[ex_row], max(ks))
    equal = np.where(used, e_row[ex_row], 0)
    ranks = RankCounts(greater, equal, examples.prefix_lengths)
    short = ranks.short_mask()
    unmatched = np.nonzero(idx < 0)[0]
    # the one inexact case: truncated, the tie group smaller than the catalogue, target unlisted
    uncertain = lists.truncated & ~found & (lists.n_tied != split.n_items) & (row_target > 0)
    return ListEvaluation(
        metrics=ranks.metrics(ks),
        groups={"short": ranks.select(short).metrics(ks), "long": ranks.select(~short).metrics(ks)},
        n_examples={"all": n, "short": int(short.sum()), "long": int((~short).sum())},
        ks=ks,
        rows=len(lists),
        matched_rows=int(used.sum()),
        missing_prefixes=int(n - used.sum()),
        duplicate_rows=int(len(matched) - used.sum()),
        unmatched=unmatched,
        unmatched_keys=[(str(lists.session_ids[r]), int(lists.positions[r])) for r in unmatched[:SHOW_UNMATCHED]],
        truncated_rows=int(lists.truncated[ex_row[used]].sum()),
        uncertain_rows=int(uncertain[ex_row[used]].sum()),
        short_rows=short_rows,
        ranks=ranks,
    )


def format_evaluation(ev: ListEvaluation, source: str) -> str:
    """The text `sessbench evaluate` prints."""
    lines = [f"{source}: {ev.rows:,} rows, {ev.matched_rows:,} matched of {ev.n_examples['all']:,} test prefixes"]
    if ev.missing_prefixes:
        lines.append(f"  {ev.missing_prefixes:,} test prefixes have no row: counted as misses")
    if len(ev.unmatched):
        first = ", ".join(f"(SessionId {s}, Position {p})" for s, p in ev.unmatched_keys)
        lines.append(f"  {len(ev.unmatched):,} rows match no test prefix and were ignored, first: {first}")
    if ev.duplicate_rows:
        lines.append(f"  {ev.duplicate_rows:,} rows repeat a (SessionId, Position) already seen: the first was used")
    if ev.short_rows:
        lines.append(f"  {ev.short_rows:,} matched rows hold fewer than K={max(ev.ks)} items: evaluated as given "
                     "(a target beyond a row's end is a miss)")
    if ev.uncertain_rows:
        lines.append(f"  {ev.uncertain_rows:,} matched rows were truncated inside a tie group smaller than the catalogue "
                     "and do not list their target: counted as misses, where the target may have tied at the cut-off")
    header = ["group", "prefixes"] + [f"{m}@{k}" for k in ev.ks for m in ("P", "MRR")]
    rows = [header]
    for group, metrics in (("all", ev.metrics), ("short", ev.groups["short"]), ("long", ev.groups["long"])):
        rows.append([group, f"{ev.n_examples[group]:,}"] + [f"{100 * metrics[f'{m}@{k}']:.2f}" if metrics else "-" for k in ev.ks for m in ("P", "MRR")])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines.append("")
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    lines.append("(percent; expected values under random tie-breaking, as in run records)")
    return "\n".join(lines)
