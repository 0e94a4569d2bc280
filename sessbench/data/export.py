"""Export a prepared split to the input formats of other frameworks.

So that results from other code bases are comparable with sessbench's, every format carries
exactly the split's sessions and the split's item numbering (1..n_items, the official SR-GNN
renumbering for the SR-GNN datasets), not the raw item ids; the raw ids stay in
`Split.item_ids`. All outputs are deterministic (same split, same bytes) and written
atomically (a temp file renamed into place).

Formats:

* ``srgnn-json``: one JSON file in the schema of the ``official-split.json`` parity files:
  ``{"source", "n_items", "train": {"sequences", "labels"}, "test": {...}}`` with every
  (prefix -> next item) pair in the official augmented order (`SessionSet.examples`), written
  compactly (no spaces, no trailing newline). A "valid" part is added when the split has one.
* ``recbole``: a folder with RecBole atomic files for its pre-split session benchmark setting,
  ``NAME.train.inter``, ``NAME.valid.inter``, ``NAME.test.inter`` (one row per prefix:
  ``session_id:token  item_id_list:token_seq  item_id:token``, the list space-separated in
  click order) and ``NAME.yaml`` with the RecBole config they need. RecBole's
  `data_preparation` unpacks exactly three parts, so a valid file is always written: the split's
  validation sessions, or, when the split has none, a copy of the test file (the yaml says so;
  carve validation before exporting for honest model selection).
* ``session-rec``: a folder with ``NAME_train_full.txt`` and ``NAME_test.txt`` (plus
  ``NAME_train_tr.txt`` / ``NAME_train_valid.txt`` when the split has validation, session-rec's
  names for that case), tab-separated ``SessionId  ItemId  Time``, one row per click.
  SessionId is the raw session id. session-rec orders clicks by Time and sessions by their
  time, so Time = the session's timestamp (int seconds) + the click's position in the session:
  integers that keep the click order; the session's clicks span len-1 seconds after its stored
  timestamp.

* ``item-map``: ``NAME_items.tsv``, the split's item numbering: ``item`` (1..n_items, what the
  other formats write) and ``raw_id`` (the dataset's id), one row per item.

NAME is `split.name`, or the `name` given to `export_split`: the command line gives click logs
and ready-made splits a name made of the file's (folder's) name and their source's digest
(`sessbench.data.registry.export_name`), so two of them exported into one folder never
overwrite each other's files.
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from pathlib import Path
from typing import IO

import numpy as np

from sessbench.atomic import atomic_file
from sessbench.data.sessions import Examples, SessionSet, Split
from sessbench.errors import ConfigError, UnknownNameError

__all__ = ["EXPORT_FORMATS", "export_split"]

EXPORT_FORMATS = ("srgnn-json", "recbole", "session-rec", "item-map")

# examples (or clicks) converted to text per step: bounds memory on the largest datasets
_CHUNK = 1 << 18


def export_split(split: Split, fmt: str, out: Path, name: str | None = None) -> list[Path]:
    """Write `split` in format `fmt` at `out`; returns the files written, in a fixed order.

    For srgnn-json `out` is the JSON file (an existing directory gets NAME.json inside); for
    the folder formats `out` is the folder, created if needed. RecBole finds a dataset at
    <data_path>/<NAME>/<NAME>.*, so its files go to `out/NAME/` unless `out` is named NAME.
    NAME is `name`, else `split.name`.
    """
    out = Path(out)
    if name is not None:
        split = replace(split, name=name)
    if fmt == "item-map":
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out} is a file; the item-map export writes a folder. Give a folder path for --out.")
        out.mkdir(parents=True, exist_ok=True)
        return [_write_item_map(split, out / f"{split.name}_items.tsv")]
    if fmt == "srgnn-json":
        path = out / f"{split.name}.json" if out.is_dir() else out
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_srgnn_json(split, path)
        return [path]
    if fmt in ("recbole", "session-rec"):
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out} is a file; the {fmt} export writes a folder. Give a folder path for --out.")
        if fmt == "recbole" and out.name != split.name:
            out = out / split.name
        out.mkdir(parents=True, exist_ok=True)
        return _write_recbole(split, out) if fmt == "recbole" else _write_session_rec(split, out)
    raise UnknownNameError("export format", fmt, EXPORT_FORMATS)


def _version() -> str:
    import sessbench

    return str(sessbench.__version__)


# ---------------------------------------------------------------------------- integer text
# Writing every prefix as text is the costly part of an export (yoochoose 1/4 has ~6 M prefixes),
# so text is produced by numpy, without a Python loop per click or prefix: an export is a
# stream of integer tokens, each followed by one of a few separators.
_COMMA, _TAB, _SPACE, _NEWLINE, _NEXT_LIST, _CLOSE_LIST, _NOTHING = range(7)
_SEPARATORS = (b",", b"\t", b" ", b"\n", b"],[", b"]", b"")
_SEP_LEN = np.array([len(s) for s in _SEPARATORS], dtype=np.int64)
_SEP_BYTES = np.array([list(s.ljust(3, b"\0")) for s in _SEPARATORS], dtype=np.uint8)  # [code, 3]
_SEP_KEEP = np.arange(3)[None, :] < _SEP_LEN[:, None]  # which of those bytes are real


_LUT_LIMIT = 1 << 17  # item numbers below this are rendered by table lookup (all SR-GNN datasets)
_LUT_WIDTH = 6  # digits of _LUT_LIMIT - 1
_N_SEPS = len(_SEPARATORS)


def _divide_digits(magnitude: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-aligned ASCII digits (rows of `width`) of non-negative integers, and their counts."""
    n_digits = np.ones(len(magnitude), dtype=np.int64)
    power = 10
    while power <= 10**18 and np.any(magnitude >= power):
        n_digits += magnitude >= power
        power *= 10
    rest = magnitude.astype(np.int32 if width < 10 else np.int64)
    rows = np.empty((len(magnitude), width), dtype=np.uint8)
    for col in range(width - 1, -1, -1):
        quotient = rest // 10
        rows[:, col] = rest - quotient * 10 + 48
        rest = quotient
    return rows, n_digits


@functools.lru_cache(maxsize=4)
def _token_table(width: int = _LUT_WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """Rendered text of every (value < _LUT_LIMIT, separator) pair as fixed-width rows.

    Row value * _N_SEPS + code: digits right-aligned in `width` columns, then the separator's
    bytes (uint8); and a mask of the bytes that are text. ~8 MB each at the default width.
    """
    digits, n_digits = _divide_digits(np.arange(_LUT_LIMIT, dtype=np.int64), width)
    rows = np.empty((_LUT_LIMIT, _N_SEPS, width + 3), dtype=np.uint8)
    rows[:, :, :width] = digits[:, None, :]
    rows[:, :, width:] = _SEP_BYTES[None, :, :]
    keep = np.empty(rows.shape, dtype=bool)
    keep[:, :, :width] = (np.arange(width)[None, :] >= width - n_digits[:, None])[:, None, :]
    keep[:, :, width:] = _SEP_KEEP[None, :, :]
    return rows.reshape(-1, width + 3), keep.reshape(-1, width + 3)


def _int_rows(values: np.ndarray, sep: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-width text rows (right-aligned digits, then separator `sep`) and their masks."""
    values = np.asarray(values, dtype=np.int64)
    if len(values) == 0 or ((values >= 0) & (values < _LUT_LIMIT)).all():
        table_rows, table_keep = _token_table()
        index = values * _N_SEPS + sep
        return np.take(table_rows, index, axis=0), np.take(table_keep, index, axis=0)
    digits, text_len, width = _signed_digits(values)
    rows = np.empty((len(values), width + 3), dtype=np.uint8)
    keep = np.empty((len(values), width + 3), dtype=bool)
    rows[:, :width] = digits
    rows[:, width:] = _SEP_BYTES[sep]
    keep[:, :width] = np.arange(width)[None, :] >= (width - text_len)[:, None]
    keep[:, width:] = _SEP_KEEP[sep]
    return rows, keep


def _signed_digits(values: np.ndarray, min_width: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Right-aligned ASCII digits of integers, '-' included: (digits [n, width], text length [n], width)."""
    negative = values < 0
    magnitude = np.abs(values)
    width = max(min_width, len(str(int(magnitude.max()))) + int(negative.any()))
    digits, n_digits = _divide_digits(magnitude, width)
    text_len = n_digits + negative
    if negative.any():
        where = np.flatnonzero(negative)
        digits[where, width - text_len[where]] = ord("-")
    return digits, text_len, width


def _render_columns(*columns: tuple[np.ndarray, np.ndarray]) -> bytes:
    """Text of rows made of fixed columns (each from `_int_rows`), row after row."""
    widths = [rows.shape[1] for rows, _ in columns]
    n = len(columns[0][0])
    rows = np.empty((n, sum(widths)), dtype=np.uint8)
    keep = np.empty((n, sum(widths)), dtype=bool)
    at = 0
    for (col_rows, col_keep), w in zip(columns, widths):
        rows[:, at : at + w] = col_rows
        keep[:, at : at + w] = col_keep
        at += w
    return rows[keep].tobytes()


def _render(values: np.ndarray, seps: np.ndarray) -> bytes:
    """Decimal text of each integer followed by its separator (`_SEPARATORS[seps[i]]`).

    Each token is a fixed-width row (right-aligned digits, then the separator bytes) with a
    mask of its real bytes; gathering the rows and compacting them by the mask, in row-major
    order, yields the text. Small values (item numbers) take their row from a table; other
    values (session ids, timestamps) get rows by repeated division, appended to that table.
    """
    values = np.asarray(values, dtype=np.int64)
    seps = np.asarray(seps, dtype=np.int64)
    if len(values) == 0:
        return b""
    index = values * _N_SEPS + seps
    small = (values >= 0) & (values < _LUT_LIMIT)
    if small.all():
        table_rows, table_keep = _token_table()
    else:
        large = np.flatnonzero(~small)
        digits, text_len, width = _signed_digits(values[large], min_width=_LUT_WIDTH)
        big_rows = np.empty((len(large), width + 3), dtype=np.uint8)
        big_keep = np.empty((len(large), width + 3), dtype=bool)
        big_rows[:, :width] = digits
        big_rows[:, width:] = np.take(_SEP_BYTES, seps[large], axis=0)
        big_keep[:, :width] = np.arange(width)[None, :] >= (width - text_len)[:, None]
        big_keep[:, width:] = np.take(_SEP_KEEP, seps[large], axis=0)
        lut_rows, lut_keep = _token_table(width)
        table_rows = np.concatenate([lut_rows, big_rows])
        table_keep = np.concatenate([lut_keep, big_keep])
        index[large] = len(lut_rows) + np.arange(len(large))
    return np.take(table_rows, index, axis=0)[np.take(table_keep, index, axis=0)].tobytes()


def _chunk_bounds(sizes: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive ranges whose summed `sizes` stay near 8 * _CHUNK (bounds working memory)."""
    budget = _CHUNK * 8
    n = len(sizes)
    if n == 0:
        return []
    cum = np.cumsum(sizes)
    cuts = np.searchsorted(cum, np.arange(budget, int(cum[-1]), budget), side="right")
    edges = np.unique(np.r_[0, np.clip(cuts, 1, n), n])
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _prefix_items(examples: Examples, e0: int, e1: int) -> tuple[np.ndarray, np.ndarray]:
    """The items of prefixes e0..e1-1, concatenated, and each prefix's length."""
    sessions = examples.sessions
    cut = examples.cut[e0:e1]
    first = np.cumsum(cut) - cut
    src = np.repeat(sessions.offsets[examples.session_index[e0:e1]] - first, cut) + np.arange(int(cut.sum()))
    return sessions.items[src].astype(np.int64), cut


# ---------------------------------------------------------------------------- srgnn-json
def _write_json_part(f: IO[bytes], examples: Examples) -> None:
    """Write {"sequences":[[..],..],"labels":[..]} exactly as json.dumps(separators=(",", ":"))."""
    n = len(examples)
    f.write(b'{"sequences":[' + (b"[" if n else b""))
    for e0, e1 in _chunk_bounds(examples.cut):
        items, cut = _prefix_items(examples, e0, e1)
        seps = np.full(len(items), _COMMA)
        seps[np.cumsum(cut) - 1] = _NEXT_LIST
        if e1 == n:
            seps[-1] = _CLOSE_LIST
        f.write(_render(items, seps))
    f.write(b'],"labels":[')
    targets = examples.targets
    for e0 in range(0, n, _CHUNK):
        chunk = targets[e0 : e0 + _CHUNK]
        seps = np.full(len(chunk), _COMMA)
        if e0 + len(chunk) == n:
            seps[-1] = _NOTHING
        f.write(_render(chunk, seps))
    f.write(b"]}")


def _write_srgnn_json(split: Split, path: Path) -> None:
    source = f"sessbench {_version()} srgnn-json export of dataset {split.name}"
    parts = [("train", split.train)] + ([("valid", split.valid)] if split.valid is not None else [])
    parts.append(("test", split.test))
    with atomic_file(path) as f:
        f.write(f'{{"source":{json.dumps(source)},"n_items":{int(split.n_items)}'.encode("ascii"))
        for key, sessions in parts:
            f.write(f',"{key}":'.encode("ascii"))
            _write_json_part(f, sessions.examples())
        f.write(b"}")


# ---------------------------------------------------------------------------- recbole
RECBOLE_HEADER = "session_id:token\titem_id_list:token_seq\titem_id:token\n"


def _session_id_table(sessions: SessionSet) -> tuple[np.ndarray, np.ndarray] | None:
    """The item-token table extended by one row per session ("<session id>TAB").

    Row len(item table) + s renders session s's id, so a recbole row becomes a single table
    gather. None when item numbers exceed the table (then rows are rendered generically).
    """
    if sessions.n_clicks and int(sessions.items.max()) >= _LUT_LIMIT:
        return None
    sid_rows, sid_keep = _int_rows(sessions.session_ids, _TAB)
    width = max(_LUT_WIDTH, sid_rows.shape[1] - 3)
    lut_rows, lut_keep = _token_table(width)
    pad = width + 3 - sid_rows.shape[1]
    rows = np.zeros((len(lut_rows) + len(sid_rows), width + 3), dtype=np.uint8)
    keep = np.zeros(rows.shape, dtype=bool)
    rows[: len(lut_rows)], keep[: len(lut_rows)] = lut_rows, lut_keep
    rows[len(lut_rows) :, pad:], keep[len(lut_rows) :, pad:] = sid_rows, sid_keep
    return rows, keep


def _write_recbole_inter(path: Path, sessions: SessionSet) -> None:
    """One row per prefix: session id, TAB, prefix items (space-separated), TAB, target."""
    examples = sessions.examples()
    targets = examples.targets
    table = _session_id_table(sessions)
    n_item_rows = _LUT_LIMIT * _N_SEPS
    with atomic_file(path) as f:
        f.write(RECBOLE_HEADER.encode("ascii"))
        for e0, e1 in _chunk_bounds(examples.cut + 2):
            items, cut = _prefix_items(examples, e0, e1)
            row_start = np.cumsum(cut + 2) - (cut + 2)
            tokens = np.empty(len(items) + 2 * len(cut), dtype=np.int64)
            is_item = np.ones(len(tokens), dtype=bool)
            is_item[row_start] = False
            is_item[row_start + cut + 1] = False
            tokens[row_start] = sessions.session_ids[examples.session_index[e0:e1]]
            tokens[row_start + cut + 1] = targets[e0:e1]
            tokens[is_item] = items
            seps = np.full(len(tokens), _SPACE)
            seps[row_start] = _TAB
            seps[row_start + cut] = _TAB
            seps[row_start + cut + 1] = _NEWLINE
            if table is None:
                f.write(_render(tokens, seps))
                continue
            index = tokens * _N_SEPS + seps
            index[row_start] = n_item_rows + examples.session_index[e0:e1]
            f.write(np.take(table[0], index, axis=0)[np.take(table[1], index, axis=0)].tobytes())


def _recbole_yaml(split: Split, valid_note: str, max_len: int) -> str:
    name = split.name
    return f"""\
# RecBole configuration for the sessbench {_version()} export of "{name}".
# RecBole reads <data_path>/<dataset>/<dataset>.<part>.inter, so this folder is named {name};
# pass its parent folder as data_path, e.g.
#   run_recbole(model="SRGNN", dataset="{name}", config_file_list=["{name}.yaml"],
#               config_dict={{"data_path": "<parent folder>"}})
# Each row is one (prefix -> next item) example in the SR-GNN order; session_id is the raw
# session id. Item tokens are the split's item numbers 1..{int(split.n_items)} (as in the
# srgnn-json export), not raw item ids, so that results compare with sessbench's.
# Recall@20 with one target per row is SR-GNN's P@20; MRR@20 is SR-GNN's MRR@20.
# {name}.item lists every candidate item (1..{int(split.n_items)}), so RecBole ranks the same
# candidate set as sessbench, including items that occur in no training session.
# {valid_note}
dataset: {name}
USER_ID_FIELD: session_id
ITEM_ID_FIELD: item_id
LIST_SUFFIX: _list
ITEM_LIST_LENGTH_FIELD: item_length
# the longest prefix in these files: SR-GNN does not truncate sessions
MAX_ITEM_LIST_LENGTH: {max_len}
field_separator: "\\t"
seq_separator: " "
load_col:
  inter: [session_id, item_id_list, item_id]
  item: [item_id]
alias_of_item_id: [item_id_list]
benchmark_filename: [train, valid, test]
train_neg_sample_args: ~
eval_args:
  order: TO  # RecBole's sequential datasets require it; the files keep their own order
  mode: full
metrics: [Recall, MRR]
topk: [20]
valid_metric: MRR@20
"""


def _max_prefix(*parts: SessionSet) -> int:
    return max([1] + [int(p.lengths.max()) - 1 for p in parts if p.n_sessions])


def _write_recbole(split: Split, out: Path) -> list[Path]:
    name = split.name
    train, test = out / f"{name}.train.inter", out / f"{name}.test.inter"
    valid, config = out / f"{name}.valid.inter", out / f"{name}.yaml"
    _write_recbole_inter(train, split.train)
    _write_recbole_inter(test, split.test)
    if split.valid is not None:
        _write_recbole_inter(valid, split.valid)
        note = f"{name}.valid.inter holds the split's validation sessions (carved from the end of training)."
        parts = (split.train, split.valid, split.test)
    else:
        _write_recbole_inter(valid, split.test)
        note = (
            f"WARNING: this split has no validation part, so {name}.valid.inter is a copy of the test "
            "file (RecBole needs three parts); model selection on it sees the test set."
        )
        parts = (split.train, split.test)
    items = out / f"{name}.item"
    with atomic_file(items) as f:
        f.write(b"item_id:token\n")
        f.write("".join(f"{i}\n" for i in range(1, int(split.n_items) + 1)).encode("ascii"))
    with atomic_file(config) as f:
        f.write(_recbole_yaml(split, note, _max_prefix(*parts)).encode("utf-8"))
    return [train, valid, test, items, config]


# ---------------------------------------------------------------------------- session-rec
SESSION_REC_HEADER = "SessionId\tItemId\tTime\n"


def _write_session_rec_file(path: Path, *parts: SessionSet) -> None:
    """One row per click: raw session id, item number, session time + position in session."""
    with atomic_file(path) as f:
        f.write(SESSION_REC_HEADER.encode("ascii"))
        for sessions in parts:
            if sessions.n_clicks == 0:
                continue
            sid_rows, sid_keep = _int_rows(sessions.session_ids, _TAB)  # once per session
            sess_of_click = sessions.session_index_of_clicks()
            position = np.arange(sessions.n_clicks, dtype=np.int64) - sessions.offsets[sess_of_click]
            for c0 in range(0, sessions.n_clicks, _CHUNK * 4):
                sess = sess_of_click[c0 : c0 + _CHUNK * 4]
                text = _render_columns(
                    (np.take(sid_rows, sess, axis=0), np.take(sid_keep, sess, axis=0)),
                    _int_rows(sessions.items[c0 : c0 + _CHUNK * 4], _TAB),
                    _int_rows(sessions.timestamps[sess] + position[c0 : c0 + _CHUNK * 4], _NEWLINE),
                )
                f.write(text)


def _write_session_rec(split: Split, out: Path) -> list[Path]:
    name = split.name
    full, test = out / f"{name}_train_full.txt", out / f"{name}_test.txt"
    parts = (split.train,) if split.valid is None else (split.train, split.valid)
    _write_session_rec_file(full, *parts)
    _write_session_rec_file(test, split.test)
    written = [full, test]
    if split.valid is not None:
        tr, va = out / f"{name}_train_tr.txt", out / f"{name}_train_valid.txt"
        _write_session_rec_file(tr, split.train)
        _write_session_rec_file(va, split.valid)
        written += [tr, va]
    return written


# ---------------------------------------------------------------------------- item-map
def _write_item_map(split: Split, path: Path) -> Path:
    """item (1..n_items) and raw_id, tab-separated: how the exports number the dataset's items."""
    import pandas as pd

    raw = np.asarray(split.item_ids)[1 : int(split.n_items) + 1]
    frame = pd.DataFrame({"item": np.arange(1, int(split.n_items) + 1), "raw_id": raw})
    with atomic_file(path) as f:
        f.write(frame.to_csv(sep="\t", index=False, lineterminator="\n").encode("utf-8"))
    return path
