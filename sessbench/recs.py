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

Item numbering (`ids`). A list file names items by the dataset's raw ids ("original", what
`recs export` writes), or by the numbering `sessbench data export` writes ("exported": the
split's item indices 1..n_items in every format, and session ids as the export writes them, the
codes of a click log's text session ids). Listed items the catalogue lacks are counted and shown,
and when the other numbering would score clearly better, `format_evaluation` says so.

Checks. A file may carry what its rows were computed from: `Prefix` (the input items, comma- or
space-separated), `LastItem` (the prefix's last click, session-rec's `for_item`) and `Target`
(the next item). Every matched row is checked against the split's prefix; mismatches are
counted and the first ones shown, since a row made on other data scores meaninglessly.
`only_listed` scores only the test prefixes (or sessions) the file has rows for.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable, Sequence
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
#: optional columns checked against the split: the prefix, its last item, the target
CHECK_COLUMNS = ("Prefix", "LastItem", "Target")
#: item numberings a list file may use (see the module docstring)
IDS = ("original", "exported")
#: what `only_listed` scores: the listed prefixes, or every prefix of the listed sessions
ONLY_LISTED = ("prefixes", "sessions")
#: unmatched rows (and unknown items, mismatched rows) shown by `format_evaluation`
SHOW_UNMATCHED = 5
#: a whole-number id in text (at most 18 digits, so it fits int64 exactly)
_INT_TOKEN = r"[+-]?[0-9]{1,18}"


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
    prefix:      (offsets [R + 1], items) of a `Prefix` column, or None; rows without one
                 have `prefix_given` False.
    given:       "LastItem" / "Target" -> (ids [R], present [R]) for those columns.
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
    prefix: tuple[np.ndarray, np.ndarray] | None = None
    prefix_given: np.ndarray | None = None
    given: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

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


#: what a .recs.npz holds: array -> (allowed dtype kinds, dimensions); see `save_lists`
_NPZ_LAYOUT: dict[str, tuple[str, int]] = {
    "session_id": ("iuU", 1), "position": ("iu", 1), "offsets": ("iu", 1), "items": ("iuU", 1),
    "scores": ("f", 1), "n_tied": ("iu", 1), "k": ("iu", 0), "cap": ("iu", 0), "dataset": ("U", 0),
    "fingerprint": ("U", 0),
}
#: deflate expands data at most about 1032-fold: a zip member that claims more is corrupt
_MAX_DEFLATE_RATIO = 1100
_NPZ_FIX = "Pass a .recs.npz written by 'sessbench run --save-recs K', or rerun that run with --save-recs to rewrite it."
_NPZ_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _npz_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, file_size: int) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data bytes) of one .npy member, read from its header alone.

    The member's sizes are checked first (compressed within the file, uncompressed within what
    deflate can produce), and the data bytes the header declares must equal what the member
    holds, so a corrupt header can never make np.load allocate more than the file can fill.
    """
    stored = info.compress_type == zipfile.ZIP_STORED
    if info.compress_size > file_size or (stored and info.file_size != info.compress_size) or (
        info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 4096
    ):
        raise ValueError(f"member {info.filename} claims {info.file_size:,} bytes from {info.compress_size:,} compressed")
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        reader = _NPZ_HEADER_READERS.get(version)
        if reader is None:
            raise ValueError(f"member {info.filename} has .npy format version {version}")
        shape, _, dtype = reader(fh)
        header = fh.tell()
    data = int(np.prod(np.array(shape, dtype=object))) * dtype.itemsize if shape else dtype.itemsize
    if header + data != info.file_size:
        raise ValueError(
            f"array {info.filename} declares shape {shape} of {dtype} ({data:,} bytes) but holds {info.file_size - header:,} bytes"
        )
    return tuple(shape), dtype, data


def check_npz_layout(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shapes and dtypes of a .recs.npz's arrays, from the zip directory and the .npy headers
    only (nothing is allocated): every array `save_lists` writes, with its dtype kind and
    dimensions, and row counts that agree. Raises ValueError saying what is wrong."""
    file_size = path.stat().st_size
    with zipfile.ZipFile(path) as zf:
        members = {info.filename.removesuffix(".npy"): info for info in zf.infolist()}
        missing = [name for name in _NPZ_LAYOUT if name not in members]
        if missing:
            raise ValueError(f"arrays {', '.join(missing)} are missing")
        layout = {}
        for name, (kinds, ndim) in _NPZ_LAYOUT.items():
            shape, dtype, _ = _npz_header(zf, members[name], file_size)
            if dtype.kind not in kinds or len(shape) != ndim or dtype.hasobject:
                raise ValueError(f"array {name} is {dtype} of shape {shape}, not a {ndim}-d array of kind {kinds}")
            layout[name] = (shape, dtype)
    rows, entries = layout["position"][0][0], layout["items"][0][0]
    expected = {"session_id": rows, "n_tied": rows, "offsets": rows + 1, "scores": entries}
    for name, length in expected.items():
        if layout[name][0][0] != length:
            raise ValueError(f"array {name} has {layout[name][0][0]:,} values, expected {length:,} (from position and items)")
    return layout


def load_lists(path: str | PathLike[str]) -> RecLists:
    """Read what `save_lists` wrote (no pickles), after `check_npz_layout` vetted the file."""
    path = Path(path)
    try:
        check_npz_layout(path)
        with np.load(path, allow_pickle=False) as d:
            lists = RecLists(
                d["session_id"], d["position"].astype(np.int64), d["offsets"].astype(np.int64), d["items"], d["scores"],
                d["n_tied"].astype(np.int64), int(d["k"]) or None, int(d["cap"]) or None, str(d["dataset"]) or None,
                str(d["fingerprint"]) or None,
            )
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise DataFormatError(path, f"not a sessbench list file ({exc})", _NPZ_FIX) from None
    offsets = lists.offsets
    if offsets[0] != 0 or offsets[-1] != len(lists.items) or np.any(np.diff(offsets) < 0):
        raise DataFormatError(path, "not a sessbench list file (its row offsets are not 0 .. the item count, non-decreasing)", _NPZ_FIX)
    return lists


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


Where = Callable[[int], str]


def _row_of(lengths: np.ndarray) -> Callable[[int], int]:
    """Token index -> 0-based row of a ragged column with these row lengths."""
    ends = np.cumsum(lengths)
    return lambda token: int(np.searchsorted(ends, token, side="right"))


def _first_null_row(column: pa.ChunkedArray) -> int:
    return int(np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))[0])


def _flatten(column: pd.Series | pa.ChunkedArray, path: Path, name: str, numbers: bool) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, lengths) of a list column: Parquet list values, or text lists.

    Text lists are comma- or space-separated, optionally in brackets ("[1, 2]"); CSV's empty
    value is an empty list. Nulls (a null list, or a null inside one) and value types that
    cannot hold ids exactly (floats; `numbers` allows them, for Scores) are errors, never
    values cast silently.
    """
    if isinstance(column, pa.ChunkedArray):
        if column.null_count:
            row = _first_null_row(column)
            raise DataFormatError(path, f"row {row + 1} has a null {name}", f"Write an empty list for a row without {name.lower()}, never null.")
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
            values = pc.list_flatten(column)
            if values.null_count:
                row = _row_of(lengths)(_first_null_row(values))
                raise DataFormatError(path, f"row {row + 1} has a null inside its {name} list", "Every listed value must be present: drop the null entries.")
            _check_value_type(values.type, path, name, numbers)
            return values.to_numpy(zero_copy_only=False), lengths
        _check_value_type(column.type, path, name, numbers)
        column = column.to_pandas()
    text = column.astype(str).str.strip().str.replace(r"^\[|\]$", "", regex=True)
    text = text.str.replace(r"\s*,\s*|\s+", ",", regex=True)
    lengths = np.where(text == "", 0, text.str.count(",") + 1).astype(np.int64)
    joined = ",".join(text[text != ""].tolist())
    tokens = np.array(joined.split(",") if joined else [], dtype=object)
    if np.any(tokens == ""):
        row = _row_of(lengths)(int(np.flatnonzero(tokens == "")[0]))
        raise DataFormatError(path, f"row {row + 1}: column {name} has an empty entry (',,' or a trailing comma)", "Write each list as comma-separated values.")
    return tokens, lengths


def _check_value_type(kind: pa.DataType, path: Path, name: str, numbers: bool) -> None:
    """Refuse Arrow types whose values are not ids (or, with `numbers`, scores) exactly."""
    if pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return
    if numbers and pa.types.is_floating(kind):
        return
    if pa.types.is_floating(kind):
        raise DataFormatError(
            path, f"column {name} holds {kind} values: floating-point ids are not read, since a fraction "
            "would be truncated silently", "Store item ids as integers (or text), e.g. a list<int64> column.",
        )
    raise DataFormatError(path, f"column {name} has type {kind}, which cannot hold {'scores' if numbers else 'item ids'}",
                          "Store lists as list<int64> (or list<string>) columns, or as comma-separated text.")


def _parse_ids(tokens: np.ndarray, item_dtype: np.dtype, path: Path, column: str, where: Where) -> np.ndarray:
    """Tokens (text or integers) as ids of the dataset's kind, exactly, or an error naming the
    first token that is not one (with `where(token)`: its row and session)."""
    if np.dtype(item_dtype).kind not in "iu":  # text ids: compare as text, never cut to a width
        if tokens.dtype.kind == "f":
            raise DataFormatError(path, f"column {column} holds floating-point values", "Write item ids as text or integers.")
        return tokens.astype(str)
    if tokens.dtype.kind in "iu":
        if tokens.dtype.kind == "u" and len(tokens) and tokens.max() > np.iinfo(np.int64).max:
            raise DataFormatError(path, f"column {column} holds ids beyond int64", "Write the dataset's item ids.")
        return tokens.astype(np.int64)
    text = pd.Series(tokens, dtype=object).astype(str).str.strip()
    bad = ~text.str.fullmatch(_INT_TOKEN).to_numpy(dtype=bool)
    if bad.any():
        token = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            path, f"{where(token)}: {column} value {text.iloc[token]!r} is not an integer id like the dataset's items",
            "Write whole-number item ids (no decimals, exponents or other characters), as in the dataset's click file.",
        )
    return text.to_numpy().astype(np.int64)


def _read_table(path: Path) -> tuple[pd.DataFrame, dict[str, pd.Series | pa.ChunkedArray], list[str]]:
    """(plain columns, list columns, all names) of a CSV (';') or Parquet list file."""
    ragged = ("Recommendations", "Scores", "Prefix")
    try:
        if path.suffix == ".parquet":  # list columns stay Arrow arrays (flattened without a row loop)
            table = pq.read_table(path)
            names = table.column_names
            lists = {c: table.column(c) for c in ragged if c in names}
            frame = table.select([c for c in names if c not in lists]).to_pandas()
        else:
            frame = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)
            names = list(frame.columns)
            lists = {c: frame[c] for c in ragged if c in names}
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise DataFormatError(path, f"cannot be read ({type(exc).__name__}: {exc})", "Write it as semicolon-separated CSV or Parquet.") from None
    if len(set(names)) != len(names):
        raise DataFormatError(path, f"the header repeats a column ({', '.join(map(str, names))})", "Name each column once.")
    return frame, lists, [str(n) for n in names]


def _check_header(path: Path, names: list[str]) -> None:
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


def _read_scores(column: pd.Series | pa.ChunkedArray, lengths: np.ndarray, path: Path) -> np.ndarray:
    tokens, score_lengths = _flatten(column, path, "Scores", numbers=True)
    if not np.array_equal(score_lengths, lengths):
        row = int(np.nonzero(score_lengths != lengths)[0][0])
        raise DataFormatError(path, f"row {row + 1} has {score_lengths[row]} scores for {lengths[row]} items", "Give one score per recommended item.")
    try:
        scores = tokens.astype(np.float64)
    except (ValueError, TypeError, OverflowError):
        raise DataFormatError(path, "column Scores holds values that are not numbers", "Write scores as decimal numbers.") from None
    if np.isnan(scores).any():
        raise DataFormatError(path, "column Scores holds NaN", "NaN cannot be ranked: write -inf for items a model cannot score.")
    return scores


def _given_ids(column: pd.Series, item_dtype: np.dtype, path: Path, name: str, where: Where) -> tuple[np.ndarray, np.ndarray]:
    """(ids, present) of a one-item-per-row check column (LastItem, Target); empty = not given."""
    values = column.astype(object)
    present = (values.notna() & (values.astype(str).str.strip() != "")).to_numpy(dtype=bool)
    if column.dtype.kind == "f":
        whole = column.dropna() % 1 == 0
        if not whole.all():
            row = int(np.flatnonzero(~whole.to_numpy())[0])
            raise DataFormatError(path, f"column {name} holds the fraction {column.dropna().iloc[row]!r}", "Write whole-number item ids.")
        values = column.astype("Int64").astype(object)
    tokens = values[present].astype(str).to_numpy(dtype=object)
    rows = np.flatnonzero(present)
    ids = _parse_ids(tokens, item_dtype, path, name, lambda t: where(int(rows[t])))
    if ids.dtype.kind in "iu":
        out = np.zeros(len(column), dtype=ids.dtype)
        out[present] = ids
        return out, present
    text = np.full(len(column), "", dtype=object)
    text[present] = ids
    return text.astype(str), present


def read_lists(path: str | PathLike[str], item_dtype: np.dtype) -> RecLists:
    """A list file in session-rec's layout (CSV with ';', or .parquet), or a saved .recs.npz.

    Item ids are read exactly as ids of the dataset's kind (`item_dtype`: integers, or text),
    so they match its raw ids (or, read as int64, the export's numbering); anything else is a
    `DataFormatError` naming the row. Optional `Prefix`, `LastItem` and `Target` columns are
    read for `evaluate_lists` to check the rows against the split.
    """
    path = Path(path)
    if not path.is_file():
        raise SessbenchError(f"list file {path} does not exist: pass the path of a CSV, .parquet or .recs.npz file")
    if path.name.endswith(".npz"):
        return load_lists(path)
    frame, ragged, names = _read_table(path)
    _check_header(path, names)
    session_ids = frame["SessionId"].astype(str).str.strip().to_numpy(dtype=object)

    def where(row: int) -> str:
        return f"row {row + 1} (SessionId {session_ids[row]})"

    items, lengths = _flatten(ragged["Recommendations"], path, "Recommendations", numbers=False)
    row_of = _row_of(lengths)
    items = _parse_ids(items, item_dtype, path, "Recommendations", lambda t: where(row_of(t)))
    scores = _read_scores(ragged["Scores"], lengths, path) if "Scores" in ragged else None
    positions = pd.to_numeric(frame["Position"], errors="coerce")
    positions = positions.where(positions.notna() & (positions % 1 == 0), -1).to_numpy().astype(np.int64)
    offsets = np.zeros(len(frame) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    n_tied = np.full(len(frame), -1, dtype=np.int64)
    if "Tied" in frame.columns:  # written by `recs export` when a tie group passed the cap
        n_tied = pd.to_numeric(frame["Tied"], errors="coerce").fillna(-1).to_numpy().astype(np.int64)
    lists = RecLists(session_ids, positions, offsets, items, scores, n_tied)
    if "Prefix" in ragged:
        tokens, prefix_lengths = _flatten(ragged["Prefix"], path, "Prefix", numbers=False)
        prefix_row = _row_of(prefix_lengths)
        tokens = _parse_ids(tokens, item_dtype, path, "Prefix", lambda t: where(prefix_row(t)))
        prefix_offsets = np.zeros(len(frame) + 1, dtype=np.int64)
        np.cumsum(prefix_lengths, out=prefix_offsets[1:])
        lists.prefix, lists.prefix_given = (prefix_offsets, tokens), prefix_lengths > 0
    for name in ("LastItem", "Target"):
        if name in frame.columns:
            lists.given[name] = _given_ids(frame[name], item_dtype, path, name, where)
    return lists


# ---------------------------------------------------------------------------- evaluation


@dataclass(eq=False)
class RowCheck:
    """How the matched rows' own `column` (Prefix, LastItem, Target) compares with the split's."""

    column: str
    checked: int
    mismatched: int
    #: the first mismatches: SessionId, Position, the file's value, the split's (file's numbering)
    first: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "checked": self.checked, "mismatched": self.mismatched, "first": self.first}


@dataclass(eq=False)
class ListEvaluation:
    """Metrics of a list file on a split's test prefixes, and how the rows matched them.

    n_examples counts the scored prefixes: all test prefixes, or with `only_listed` those the
    file covers (`test_prefixes` and `test_sessions` are the split's totals).
    """

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
    ids: str = "original"
    only_listed: str | None = None
    test_prefixes: int = 0
    test_sessions: int = 0
    scored_sessions: int = 0
    unknown_entries: int = 0
    unknown_rows: int = 0
    unknown_first: list[str] = field(default_factory=list)
    checks: list[RowCheck] = field(default_factory=list)
    #: the main metric under the other item numbering, when that scores clearly better
    other_ids: dict[str, Any] | None = None

    @property
    def mismatched_rows(self) -> int:
        return sum(c.mismatched for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics, "groups": self.groups, "n_examples": self.n_examples, "ks": list(self.ks),
            "ids": self.ids, "only_listed": self.only_listed, "test_prefixes": self.test_prefixes,
            "test_sessions": self.test_sessions, "scored_sessions": self.scored_sessions,
            "rows": self.rows, "matched_rows": self.matched_rows, "missing_prefixes": self.missing_prefixes,
            "duplicate_rows": self.duplicate_rows, "unmatched_rows": len(self.unmatched),
            "unmatched_first": [list(k) for k in self.unmatched_keys], "truncated_rows": self.truncated_rows,
            "uncertain_rows": self.uncertain_rows, "short_rows": self.short_rows,
            "unknown_items": {"entries": self.unknown_entries, "rows": self.unknown_rows, "first": self.unknown_first},
            "checks": [c.to_dict() for c in self.checks], "other_ids": self.other_ids,
        }


def _item_index(raw: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """Item index (1..n_items) of each raw id; -1 for ids the dataset does not have."""
    known = np.asarray(item_ids)[1:]
    if not len(known):
        return np.full(len(raw), -1, dtype=np.int64)
    order = np.argsort(known, kind="stable")
    pos = np.searchsorted(known[order], raw).clip(max=len(known) - 1)
    found = known[order][pos] == raw
    return np.where(found, order[pos] + 1, -1).astype(np.int64)


def _item_numbers(items: np.ndarray, split: Split, ids: str) -> np.ndarray:
    """Item index (1..n_items; -1: not in the catalogue) of listed ids in numbering `ids`."""
    items = np.asarray(items)
    if ids == "original":
        return _item_index(items, split.item_ids)
    if items.dtype.kind not in "iu":
        items = pd.to_numeric(pd.Series(items, dtype=object), errors="coerce").fillna(-1).to_numpy().astype(np.int64)
    return np.where((items >= 1) & (items <= split.n_items), items, -1).astype(np.int64)


def _other_numbering(items: np.ndarray, split: Split, ids: str) -> np.ndarray:
    """The item index each listed id would have in the other numbering (-1: none)."""
    items = np.asarray(items)
    if ids == "exported":
        kind = np.asarray(split.item_ids).dtype.kind
        return _item_index(items if kind in "iu" else items.astype(str), split.item_ids)
    return _item_numbers(items, split, "exported")


def _as_listed(index: np.ndarray, split: Split, ids: str) -> np.ndarray:
    """Item indices written in the file's numbering (for messages)."""
    return np.asarray(split.item_ids)[index] if ids == "original" else np.asarray(index)


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


def _row_keys(lists: RecLists, text_ids: bool) -> pd.Series:
    """Each row's "session:position" key in the form the split's test keys take.

    Integer session ids compare as numbers (a file's "007" is session 7); text ids as text.
    Rows whose id cannot be an id of this split get a key that matches nothing.
    """
    raw = pd.Series(np.asarray(lists.session_ids, dtype=object))
    if not text_ids:
        numbers = pd.to_numeric(raw, errors="coerce")
        whole = numbers.notna() & (numbers % 1 == 0)
        ids = pd.Series(np.where(whole, numbers.fillna(0).astype(np.int64).astype(str), "?" + raw.astype(str)))
    else:
        ids = raw.astype(str).str.strip()
    return ids + ":" + pd.Series(lists.positions.astype(str))


def _test_session_ids(split: Split, examples: Examples, ids: str) -> np.ndarray:
    """Each test prefix's session id as a list file names it: raw, or as the export writes it."""
    codes = split.test.session_ids[examples.session_index]
    return codes if ids == "exported" else split.raw_session_ids(codes)


def _match(lists: RecLists, split: Split, examples: Examples, ids: str) -> tuple[np.ndarray, np.ndarray]:
    """(idx: the test prefix each row matches, -1 for none; ex_row: the row used for each
    test prefix, -1 for none; the first of repeated rows wins)."""
    raw_ids = _test_session_ids(split, examples, ids)
    ex_keys = pd.Index(pd.Series(raw_ids.astype(str)) + ":" + pd.Series((examples.cut - 1).astype(str)))
    if not ex_keys.is_unique:
        raise SessbenchError(f"dataset {split.name}: test sessions repeat raw session ids, so rows cannot be matched by (SessionId, Position).")
    idx = ex_keys.get_indexer(_row_keys(lists, text_ids=split.session_labels is not None and ids == "original"))
    matched = np.nonzero(idx >= 0)[0]
    ex_row = np.full(len(examples), -1, dtype=np.int64)
    ex_row[idx[matched][::-1]] = matched[::-1]
    if not (ex_row >= 0).any():
        hint = (" The file may use the export's numbering: pass --ids exported." if ids == "original" and split.session_labels is not None
                else "")
        raise SessbenchError(
            f"no row of the list file matches a test prefix of {split.name} (first row: SessionId "
            f"{lists.session_ids[0] if len(lists) else '-'}, Position {lists.positions[0] if len(lists) else '-'}; "
            f"first test prefix: SessionId {raw_ids[0] if len(raw_ids) else '-'}, Position "
            f"{int(examples.cut[0]) - 1 if len(examples) else '-'}). Rows need the session id and Position = prefix "
            f"length - 1 of the same split: check --dataset and its parameters.{hint}"
        )
    return idx, ex_row


def _check_rows(lists: RecLists, split: Split, examples: Examples, idx: np.ndarray, ids: str) -> list[RowCheck]:
    """Compare the matched rows' Prefix / LastItem / Target (where the file has them) with the
    split's prefix, its last item and its target."""
    checks = []

    def shown(index: int) -> str:
        return str(_as_listed(np.array([index]), split, ids)[0]) if index > 0 else "?"

    for column, truth in (("LastItem", examples.last_items), ("Target", examples.targets)):
        if column not in lists.given:
            continue
        values, present = lists.given[column]
        rows = np.flatnonzero(present & (idx >= 0))
        file_index = _item_numbers(values[rows], split, ids)
        expected = truth[idx[rows]]
        bad = file_index != expected
        picked = np.flatnonzero(bad)[:SHOW_UNMATCHED]
        first = [
            {"SessionId": str(lists.session_ids[r]), "Position": int(lists.positions[r]), "file": str(values[r]),
             "split": shown(int(expected[k]))} for k, r in zip(picked.tolist(), rows[picked].tolist())
        ]
        checks.append(RowCheck(column, len(rows), int(bad.sum()), first))
    if lists.prefix is not None and lists.prefix_given is not None:
        checks.append(_check_prefixes(lists, split, examples, idx, ids))
    return checks


def _check_prefixes(lists: RecLists, split: Split, examples: Examples, idx: np.ndarray, ids: str) -> RowCheck:
    """Rows whose Prefix differs from the split's prefix (length or any item), vectorized."""
    assert lists.prefix is not None and lists.prefix_given is not None
    offsets, tokens = lists.prefix
    rows = np.flatnonzero(lists.prefix_given & (idx >= 0))
    ex = idx[rows]
    lengths = np.diff(offsets)[rows]
    bad = lengths != examples.cut[ex]
    same = np.flatnonzero(~bad)
    size = lengths[same]
    within = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)
    file_items = _item_numbers(tokens[np.repeat(offsets[rows[same]], size) + within], split, ids)
    test = split.test
    split_items = test.items[np.repeat(test.offsets[examples.session_index[ex[same]]], size) + within]
    differs = np.bincount(np.repeat(np.arange(len(same)), size), weights=file_items != split_items, minlength=len(same))
    bad[same] = differs > 0
    first = []
    for k in np.flatnonzero(bad)[:SHOW_UNMATCHED].tolist():  # a few rows, for the message
        r, e = int(rows[k]), int(ex[k])
        start = int(test.offsets[examples.session_index[e]])
        truth = _as_listed(test.items[start : start + int(examples.cut[e])].astype(np.int64), split, ids)
        first.append({"SessionId": str(lists.session_ids[r]), "Position": int(lists.positions[r]),
                      "file": ",".join(map(str, tokens[offsets[r] : offsets[r + 1]].tolist())),
                      "split": ",".join(map(str, truth.tolist()))})
    return RowCheck("Prefix", len(rows), int(bad.sum()), first)


def _scope(examples: Examples, used: np.ndarray, only_listed: str | None) -> np.ndarray:
    """The test prefixes scored: all, the listed ones, or every prefix of a listed session."""
    if only_listed is None:
        return np.ones(len(examples), dtype=bool)
    if only_listed == "prefixes":
        return used.copy()
    listed = np.zeros(examples.sessions.n_sessions, dtype=bool)
    listed[examples.session_index[used]] = True
    return listed[examples.session_index]


def _check_options(lists: RecLists, split: Split, ids: str, only_listed: str | None) -> None:
    if ids not in IDS:
        raise SessbenchError(f"--ids '{ids}': choose {' or '.join(IDS)}")
    if only_listed is not None and only_listed not in ONLY_LISTED:
        raise SessbenchError(f"--only-listed '{only_listed}': choose {' or '.join(ONLY_LISTED)}")
    if lists.fingerprint and ids != "original":
        raise SessbenchError("a saved .recs.npz holds raw item and session ids: drop --ids exported (or pass --ids original)")
    if lists.fingerprint and lists.fingerprint != split_fingerprint(split):
        raise SessbenchError(
            f"the lists were saved on dataset '{lists.dataset}', whose test sessions differ from those of "
            f"'{split.name}' as prepared here: pass --dataset {lists.dataset} (with the --data-dir and "
            "--dataset-param of that run)."
        )


def evaluate_lists(
    lists: RecLists, split: Split, ks: Sequence[int] | None = None, ids: str = "original", only_listed: str | None = None,
) -> ListEvaluation:
    """Our metrics for `lists` on the split's test prefixes, matched by (SessionId, Position).

    ids: "original" (raw ids) or "exported" (the numbering `sessbench data export` writes).
    only_listed: None scores every test prefix, a prefix without a row counting as a miss;
    "prefixes" scores only the prefixes with a row; "sessions" every prefix of a session that
    has a row. Default cut-offs: the K values in KS up to the lists' K (saved lists) or their
    longest row (other files). A K above a saved list's K is an error; rows shorter than K
    (other files) are evaluated as given and counted.
    """
    _check_options(lists, split, ids, only_listed)
    examples = split.test_examples()
    n = len(examples)
    idx, ex_row = _match(lists, split, examples, ids)
    used = ex_row >= 0
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
    item_index = _item_numbers(lists.items, split, ids)
    scope = _scope(examples, used, only_listed)

    def counts(index: np.ndarray) -> tuple[RankCounts, np.ndarray]:
        """The scored prefixes' rank counts, and which rows list their target."""
        g_row, e_row, found = list_rank_counts(lists, index, row_target, max(ks), split.n_items)
        greater = np.where(used, g_row[ex_row], max(ks))
        equal = np.where(used, e_row[ex_row], 0)
        return RankCounts(greater[scope], equal[scope], examples.prefix_lengths[scope]), found

    ranks, found = counts(item_index)
    short = ranks.short_mask()
    unmatched = np.nonzero(idx < 0)[0]
    # the one inexact case: truncated, the tie group smaller than the catalogue, target unlisted
    uncertain = lists.truncated & ~found & (lists.n_tied != split.n_items) & (row_target > 0)
    in_scope_rows = ex_row[used & scope]
    ev = ListEvaluation(
        metrics=ranks.metrics(ks),
        groups={"short": ranks.select(short).metrics(ks), "long": ranks.select(~short).metrics(ks)},
        n_examples={"all": int(scope.sum()), "short": int(short.sum()), "long": int((~short).sum())},
        ks=ks,
        rows=len(lists),
        matched_rows=int(used.sum()),
        missing_prefixes=int((scope & ~used).sum()),
        duplicate_rows=int((idx >= 0).sum() - used.sum()),
        unmatched=unmatched,
        unmatched_keys=[(str(lists.session_ids[r]), int(lists.positions[r])) for r in unmatched[:SHOW_UNMATCHED]],
        truncated_rows=int(lists.truncated[in_scope_rows].sum()),
        uncertain_rows=int(uncertain[in_scope_rows].sum()),
        short_rows=short_rows,
        ranks=ranks,
        ids=ids,
        only_listed=only_listed,
        test_prefixes=n,
        test_sessions=int(split.test.n_sessions),
        scored_sessions=len(np.unique(examples.session_index[scope])),
        checks=_check_rows(lists, split, examples, idx, ids),
    )
    _note_unknown_items(ev, lists, item_index, ex_row[used])
    if len(lists.items) and not lists.fingerprint:
        _note_other_numbering(ev, lists, split, ids, lambda index: counts(index)[0])
    return ev


def _note_unknown_items(ev: ListEvaluation, lists: RecLists, item_index: np.ndarray, rows: np.ndarray) -> None:
    """Count listed items (of matched rows) that the catalogue lacks, with a few examples."""
    row_used = np.zeros(len(lists), dtype=bool)
    row_used[rows] = True
    entry_row = np.repeat(np.arange(len(lists)), lists.lengths)
    unknown = (item_index < 0) & row_used[entry_row]
    ev.unknown_entries = int(unknown.sum())
    ev.unknown_rows = len(np.unique(entry_row[unknown]))
    ev.unknown_first = [str(v) for v in pd.unique(np.asarray(lists.items)[unknown])[:SHOW_UNMATCHED]]


def _note_other_numbering(ev: ListEvaluation, lists: RecLists, split: Split, ids: str, counts: Callable[[np.ndarray], RankCounts]) -> None:
    """Record the main metric under the other item numbering when it is clearly higher: the
    sign of a file written in the export's numbering and read as raw ids (or the reverse)."""
    other = _other_numbering(lists.items, split, ids)
    if not (other > 0).any():
        return
    key = f"P@{max(ev.ks)}"
    value = counts(other).metrics((max(ev.ks),)).get(key, 0.0)
    as_read = ev.metrics.get(key, 0.0)
    if value > max(2 * as_read, as_read + 0.05):
        ev.other_ids = {"ids": IDS[1 - IDS.index(ids)], "metric": key, "value": value, "as_read": as_read}


def format_evaluation(ev: ListEvaluation, source: str) -> str:
    """The text `sessbench evaluate` prints; problems first, as 'warning:' lines."""
    lines = [f"{source}: {ev.rows:,} rows, {ev.matched_rows:,} matched of {ev.test_prefixes:,} test prefixes"
             + (" (items and sessions in the export's numbering)" if ev.ids == "exported" else "")]
    if ev.only_listed is not None:
        what = "the listed prefixes" if ev.only_listed == "prefixes" else "every prefix of the listed sessions"
        lines.append(f"  --only-listed: scored {what}: {ev.n_examples['all']:,} of {ev.test_prefixes:,} test prefixes "
                     f"({ev.scored_sessions:,} of {ev.test_sessions:,} test sessions)")
    if ev.missing_prefixes:
        hint = "" if ev.only_listed is not None else "; --only-listed scores only the listed ones"
        lines.append(f"  {ev.missing_prefixes:,} test prefixes have no row: counted as misses{hint}")
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
    lines += _warnings(ev)
    header = ["group", "prefixes"] + [f"{m}@{k}" for k in ev.ks for m in ("P", "MRR")]
    rows = [header]
    for group, metrics in (("all", ev.metrics), ("short", ev.groups["short"]), ("long", ev.groups["long"])):
        rows.append([group, f"{ev.n_examples[group]:,}"] + [f"{100 * metrics[f'{m}@{k}']:.2f}" if metrics else "-" for k in ev.ks for m in ("P", "MRR")])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines.append("")
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    lines.append("(percent; expected values under random tie-breaking, as in run records)")
    return "\n".join(lines)


def _warnings(ev: ListEvaluation) -> list[str]:
    """'warning:' lines for unknown items, the other numbering and rows that contradict the split."""
    out = []
    numbering = "raw item ids" if ev.ids == "original" else "the export's item numbers 1..n"
    if ev.unknown_entries:
        out.append(f"warning: {ev.unknown_entries:,} listed items in {ev.unknown_rows:,} matched rows are not in the "
                   f"catalogue (read as {numbering}), e.g. {', '.join(ev.unknown_first)}: they can never be the target")
    if ev.other_ids is not None:
        o = ev.other_ids
        written = "the export's item numbers" if o["ids"] == "exported" else "raw item ids"
        out.append(f"warning: read with --ids {o['ids']} these lists score {o['metric']} {100 * o['value']:.2f} "
                   f"(as read: {100 * o['as_read']:.2f}): they look written in {written}; rerun with --ids {o['ids']}")
    for check in ev.checks:
        if not check.mismatched:
            continue
        what = {"Prefix": "prefix", "LastItem": "last item", "Target": "target"}[check.column]
        first = "; ".join(f"(SessionId {m['SessionId']}, Position {m['Position']}): file {m['file']}, split {m['split']}"
                          for m in check.first)
        out.append(f"warning: {check.mismatched:,} of {check.checked:,} checked rows give another {what} than the "
                   f"split's ({check.column} column), first: {first}. The file was made on other data or another "
                   "preprocessing: its metrics here are not comparable")
    return out
