"""Readers for raw click logs: YOOCHOOSE, DIGINETICA, and a generic CSV/TSV/Parquet log.

Every reader returns a pandas DataFrame in FILE ORDER with four int64 columns:

- `session`: the raw session id (factorize codes for a generic log with non-integer ids),
- `item`:    the raw item id (likewise),
- `seq`:     the key that orders clicks within a session (ties keep file order): the row number
             for YOOCHOOSE (the official code keeps its clicks in file order), `timeframe` for
             DIGINETICA, the click time at full resolution for a generic log,
- `time`:    UTC epoch seconds as the official SR-GNN code uses them for the session date
             (YOOCHOOSE: the timestamp truncated to the second; DIGINETICA: `eventdate` 00:00).

Everything is UTC; nothing depends on the machine's time zone.

Reading is one multithreaded pyarrow pass with explicit column types (YOOCHOOSE and DIGINETICA
stream batch by batch into preallocated numpy columns, so Arrow never holds the whole table).
Only when that pass fails, or finds empty values, is the file streamed again as text
(single-threaded, every line counted, the rows already accepted not re-checked) to name the
first bad line: a malformed file always gives a `DataFormatError` with the file, the 1-based line
and a fix, never a traceback from inside pyarrow or a silently wrong table.
Generic logs with non-integer ids keep their raw labels in `frame.attrs["session_labels"]` /
`frame.attrs["item_labels"]` (label of code k at index k; None when the ids are integers).

A generic log is also checked for session ids that are probably reused (`click_log_warnings`):
an id whose rows sit in separate places of a file not ordered by time, or whose clicks span
more than a day. Such rows are still merged into one session (the SR-GNN rule); the warnings,
counted with a few examples, are logged and kept in `frame.attrs["warnings"]`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from sessbench.errors import DataFormatError, MissingDataError
from sessbench.progress import ProgressFactory, open_bar

YOOCHOOSE_FILE = "yoochoose-clicks.dat"
YOOCHOOSE_LABEL = "YOOCHOOSE (RecSys Challenge 2015)"
YOOCHOOSE_URL = "https://recsys.acm.org/recsys15/challenge/"
YOOCHOOSE_COLUMNS = ("session_id", "timestamp", "item_id", "category")

DIGINETICA_FILE = "train-item-views.csv"
DIGINETICA_LABEL = "DIGINETICA (CIKM Cup 2016)"
DIGINETICA_URL = "https://competitions.codalab.org/competitions/11161"
DIGINETICA_COLUMNS = ("session_id", "user_id", "item_id", "timeframe", "eventdate")
_DIGINETICA_NEEDED = ("session_id", "item_id", "timeframe", "eventdate")

OUTPUT_COLUMNS = ("session", "item", "seq", "time")

_MAGIC = (
    (b"\x1f\x8b", "a gzip archive", "Decompress it first (gunzip FILE)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive", "Extract it first (7z x FILE)"),
    (b"PK\x03\x04", "a zip archive", "Extract it first (unzip FILE)"),
    (b"BZh", "a bzip2 archive", "Decompress it first (bunzip2 FILE)"),
    (b"\xfd7zXZ\x00", "an xz archive", "Decompress it first (unxz FILE)"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive", "Decompress it first (unzstd FILE)"),
    (b"PAR1", "a Parquet file", "Read Parquet with read_click_log and a .parquet file name"),
    (b"\xff\xfe", "UTF-16 text", "Convert it to UTF-8"),
    (b"\xfe\xff", "UTF-16 text", "Convert it to UTF-8"),
)
_SNIFF_BYTES = 1 << 20
_BLOCK_SIZE = 16 << 20
_STREAM_BLOCK_SIZE = 4 << 20  # measured: 4 MiB blocks read fastest with the least memory
_SCAN_BYTES = 64 << 20  # chunk size of the blank-line scan (error path only)
_MISSING_TOKENS = ["", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "#N/A", "-NaN", "-nan"]
_INT_RE = r"^-?[0-9]{1,18}$"
_ISO_SECOND_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:?\d\d)?$"
_NUMBER_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_MAX_EPOCH_S = 1e11  # year 5138: larger "seconds" are almost surely milliseconds
#: a session whose clicks span more than this probably reuses its id (`click_log_warnings`)
SESSION_SPAN_WARN_S = 86_400
#: examples named in a warning
_SHOW = 3

log = logging.getLogger("sessbench.data")


# ---------------------------------------------------------------------------- locating files
def find_raw_file(data_dir: str | Path, filename: str, dataset_label: str, url: str) -> Path:
    """The path of a raw dataset file, or a MissingDataError that says how to get it."""
    folder = Path(data_dir).expanduser()
    path = folder / filename
    if path.is_file():
        return path
    raise MissingDataError(
        f"{dataset_label} raw file '{filename}' not found in {folder.resolve()}. "
        f"Download the dataset from {url} (it cannot be redistributed), extract it and put "
        f"'{filename}' into {folder.resolve()}, or point the data directory elsewhere."
    )


def _require_file(path: Path, dataset: tuple[str, str] | None = None) -> None:
    """MissingDataError for a path that is not a file; with (label, url) it says where to get it."""
    if path.is_file():
        return
    if dataset is not None:
        find_raw_file(path.parent, path.name, *dataset)
    raise MissingDataError(f"file '{path.name}' not found in {path.parent.resolve()} (looked for {path}).")


# ---------------------------------------------------------------------------- sniffing
def _sniff(path: Path, dataset: tuple[str, str] | None = None) -> str:
    """The first line as text, after rejecting missing, empty, compressed and binary files."""
    _require_file(path, dataset)
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if not head.strip():
        raise DataFormatError(path, "the file is empty", "Check that the download or export completed")
    for magic, what, fix in _MAGIC:
        if head.startswith(magic):
            raise DataFormatError(path, f"this is {what}, not a text click log", fix.replace("FILE", path.name))
    if b"\x00" in head:
        raise DataFormatError(path, "this is a binary file, not a text click log", "Pass the CSV/text file itself")
    first = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace").lstrip("\ufeff")
    if not first.strip():
        raise DataFormatError(
            path, "the first line is empty", "Remove the blank line(s) at the start of the file", line=1
        )
    return first


def _is_int_text(text: str) -> bool:
    return re.fullmatch(r"\s*-?[0-9]+\s*", text) is not None


def _other_delimiter(line: str, expected: str) -> str | None:
    """A delimiter other than `expected` that splits `line`, if any (for wrong-delimiter errors)."""
    counts = {d: line.count(d) for d in (",", ";", "\t", "|") if d != expected}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else None


def _delimiter_name(sep: str) -> str:
    return {"\t": "tab", ",": "','", ";": "';'", "|": "'|'"}.get(sep, repr(sep))


# ---------------------------------------------------------------------------- layout + reads
@dataclass
class _Layout:
    """How to read a delimited file: delimiter, column names and whether line 1 is a header."""

    path: Path
    sep: str
    names: list[str]
    header: bool
    fields: int = field(init=False)

    def __post_init__(self) -> None:
        self.fields = len(self.names)

    def read_options(self, threads: bool) -> pacsv.ReadOptions:
        return pacsv.ReadOptions(
            column_names=self.names, skip_rows=int(self.header), use_threads=threads, block_size=_BLOCK_SIZE
        )

    def parse_options(self, **extra: object) -> pacsv.ParseOptions:
        return pacsv.ParseOptions(delimiter=self.sep, quote_char='"', **extra)


Converter = Callable[[pa.Array], np.ndarray]


def _capacity(path: Path) -> int:
    """An over-estimate of the row count (from the first MiB); untouched pages cost no memory."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    per_row = max(1.0, len(head) / max(1, head.count(b"\n")))
    return int(size / per_row * 1.5) + 1024


def _stream_read(
    layout: _Layout,
    types: dict[str, pa.DataType],
    convert: dict[str, Converter],
    progress: ProgressFactory | None = None,
) -> tuple[dict[str, np.ndarray] | None, int]:
    """Typed multithreaded read, batch by batch, into preallocated int64 numpy columns.

    Only one block of Arrow memory is alive at a time, so the peak is the numpy output plus a few
    blocks (a whole-table read would hold the Arrow table and its numpy copy together).
    Returns (columns, rows read). Columns are None when pyarrow rejects the file or a batch has
    empty values; the rows read before that are known to be clean (the diagnosis skips them).
    `progress(total=..., desc=...)` gives a bar that advances in rows (total estimated).
    """
    read_options = layout.read_options(True)
    read_options.block_size = _STREAM_BLOCK_SIZE
    options = pacsv.ConvertOptions(column_types=types, include_columns=list(convert))
    capacity = _capacity(layout.path)
    out = {name: np.empty(capacity, dtype=np.int64) for name in convert}
    with open_bar(progress, int(capacity / 1.5), f"read {layout.path.name}") as bar:
        return _stream_batches(layout, read_options, options, convert, capacity, out, bar)


def _stream_batches(
    layout: _Layout,
    read_options: pacsv.ReadOptions,
    options: pacsv.ConvertOptions,
    convert: dict[str, Converter],
    capacity: int,
    out: dict[str, np.ndarray],
    bar: Any,
) -> tuple[dict[str, np.ndarray] | None, int]:
    rows = 0
    try:
        reader = pacsv.open_csv(
            layout.path, read_options=read_options, parse_options=layout.parse_options(), convert_options=options
        )
        for batch in reader:
            if any(column.null_count for column in batch.columns):
                return None, rows
            size = batch.num_rows
            if rows + size > capacity:
                capacity = int((rows + size) * 1.5)
                out = {name: np.resize(values, capacity) for name, values in out.items()}
            for name, fn in convert.items():
                out[name][rows : rows + size] = fn(batch.column(name))
            rows += size
            bar.update(size)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, UnicodeDecodeError):
        return None, rows
    return {name: values[:rows] for name, values in out.items()}, rows


def _int_values(values: pa.Array) -> np.ndarray:
    return values.to_numpy()


def _timestamp_floor_seconds(values: pa.Array) -> np.ndarray:
    """Timestamp (ms) -> epoch seconds with the milliseconds dropped, like the official [:19]."""
    return np.floor_divide(values.cast(pa.int64()).to_numpy(), _TICKS_PER_SECOND[values.type.unit])


def _date_seconds(values: pa.Array) -> np.ndarray:
    return values.cast(pa.int32()).to_numpy().astype(np.int64) * 86_400


def _fast_read(layout: _Layout, types: dict[str, pa.DataType | None]) -> pa.Table | None:
    """The multithreaded typed read; None when pyarrow rejects the file (diagnose it then)."""
    column_types = {name: t for name, t in types.items() if t is not None}
    convert = pacsv.ConvertOptions(column_types=column_types, include_columns=list(types))
    try:
        return pacsv.read_csv(
            layout.path,
            read_options=layout.read_options(True),
            parse_options=layout.parse_options(),
            convert_options=convert,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, UnicodeDecodeError):
        return None


def _skip_map(index: int, skipped: np.ndarray, base: int) -> int:
    """The `index`-th (0-based) position from `base` on that is not in the sorted `skipped`."""
    shifted = skipped - base - np.arange(len(skipped), dtype=np.int64)
    return base + index + int(np.searchsorted(shifted, index, side="right"))


def _blank_lines(path: Path) -> np.ndarray:
    """Physical (1-based) numbers of empty lines, which pyarrow skips without counting them."""
    found: list[np.ndarray] = []
    lines_before = 0
    line_start = 0  # absolute offset where the current line starts
    offset = 0
    previous = b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(_SCAN_BYTES):
            data = np.frombuffer(chunk, dtype=np.uint8)
            ends = np.flatnonzero(data == 10).astype(np.int64) + offset
            starts = np.concatenate(([line_start], ends[:-1] + 1))
            width = ends - starts
            before = np.where(ends - 1 >= offset, data[np.maximum(ends - 1 - offset, 0)], previous[0])
            blank = (width == 0) | ((width == 1) & (before == 13))
            found.append(np.flatnonzero(blank) + lines_before + 1)
            lines_before += len(ends)
            if len(ends):
                line_start = int(ends[-1]) + 1
            offset += len(chunk)
            previous = chunk[-1:]
    return np.concatenate(found) if found else np.zeros(0, np.int64)


@dataclass
class _TextTable:
    """Every row of a file as text, plus what is needed to turn a row index into a line number.

    pyarrow numbers rows among non-empty lines; `line_of` maps back to physical lines.
    """

    table: pa.Table
    first_row_line: int  # non-empty-line number of the first data row (2 under a header)
    invalid: np.ndarray  # sorted non-empty-line numbers of rows with the wrong field count
    blank: np.ndarray  # sorted physical numbers of empty lines

    def line_of(self, row: int) -> int:
        return _skip_map(_skip_map(row, self.invalid, self.first_row_line) - 1, self.blank, 1)


def _text_options(layout: _Layout, columns: Sequence[str], on_invalid: Callable[[pacsv.InvalidRow], str]) -> dict:
    """pyarrow options reading `columns` as plain strings, single-threaded (rows get numbers)."""
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in columns}, include_columns=list(columns), strings_can_be_null=False
    )
    read = layout.read_options(False)
    read.block_size = _STREAM_BLOCK_SIZE
    return {
        "read_options": read,
        "parse_options": layout.parse_options(invalid_row_handler=on_invalid),
        "convert_options": convert,
    }


def _unreadable(layout: _Layout, exc: BaseException) -> DataFormatError:
    return DataFormatError(
        layout.path, f"cannot be read as text ({_first_line(exc)})", "Check the file's encoding (UTF-8) and format"
    )


def _text_read(layout: _Layout, columns: Sequence[str]) -> _TextTable:
    """The whole file as strings (generic logs whose ids or times need a second look)."""
    invalid: list[int] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(int(row.number or 0))
        return "skip"

    try:
        table = pacsv.read_csv(layout.path, **_text_options(layout, columns, on_invalid))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _unreadable(layout, exc) from None
    return _TextTable(table, int(layout.header) + 1, np.array(invalid, dtype=np.int64), _blank_lines(layout.path))


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# ---------------------------------------------------------------------------- vectorized checks
Check = Callable[[pa.Array], np.ndarray]


def _np_mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


def _missing(values: pa.ChunkedArray) -> np.ndarray:
    trimmed = pc.utf8_trim_whitespace(values)
    return _np_mask(pc.fill_null(pc.is_in(trimmed, value_set=pa.array(_MISSING_TOKENS)), True))


def _not_matching(pattern: str) -> Check:
    def check(values: pa.ChunkedArray) -> np.ndarray:
        return ~_np_mask(pc.fill_null(pc.match_substring_regex(values, pattern), False))

    return check


def _bad_calendar(text: pa.Array, fmt: str) -> np.ndarray:
    """Rows whose text (starting YYYY-MM-DD) is not a valid `fmt` time.

    strptime rolls 2016-02-30 over to March 1st, so the parsed day must equal the written day
    (compared as numbers: formatting back with strftime costs ~5 us a row).
    """
    parsed = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
    usable = pc.and_(pc.is_valid(parsed), pc.match_substring_regex(text, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"))
    written = pc.cast(pc.if_else(usable, pc.utf8_slice_codeunits(text, 8, 10), "0"), pa.int64())
    same = pc.and_(usable, pc.equal(pc.day(parsed), written))
    return ~_np_mask(pc.fill_null(same, False))


def _bad_iso_second(values: pa.ChunkedArray) -> np.ndarray:
    head = pc.utf8_slice_codeunits(values, 0, 19)
    return _bad_calendar(head, "%Y-%m-%dT%H:%M:%S") | _not_matching(_ISO_SECOND_RE)(values)


def _bad_date(values: pa.ChunkedArray) -> np.ndarray:
    return _bad_calendar(values, "%Y-%m-%d")


def _bad_iso_any(values: pa.ChunkedArray) -> np.ndarray:
    parsed = pd.to_datetime(
        pd.Series(values.to_numpy(zero_copy_only=False)), utc=True, format="ISO8601", errors="coerce"
    )
    return parsed.isna().to_numpy()


_INT_CHECK = (_not_matching(_INT_RE), "is not an integer id")
_NUMBER_CHECK = (_not_matching(_NUMBER_RE), "is not a number (epoch seconds)")


def _first_problem(
    table: pa.Table | pa.RecordBatch, checks: dict[str, list[tuple[Check, str]]]
) -> tuple[int, str] | None:
    """(row, problem) of the first row that fails a check, found without a per-row loop."""
    if table.num_rows == 0:
        return None
    best: tuple[int, str] | None = None
    for name, tests in checks.items():
        values = table.column(name)
        missing = _missing(values)
        found = [(missing, "is empty or missing")]
        found += [(test(values) & ~missing, problem) for test, problem in tests]
        for mask, problem in found:
            hits = np.flatnonzero(mask)
            if len(hits) and (best is None or hits[0] < best[0]):
                best = (int(hits[0]), f"the {name} value {values[int(hits[0])].as_py()!r} {problem}")
    return best


@dataclass
class _Invalid:
    """A row with the wrong number of fields, as pyarrow reports it (line among non-empty lines)."""

    line: int
    text: str
    fields: int


def _diagnose(
    layout: _Layout, checks: dict[str, list[tuple[Check, str]]], fix: str, clean_rows: int = 0
) -> DataFormatError | None:
    """The first bad line of a file, or None: streamed as text, batch by batch, stopping early.

    Memory stays at a few blocks however large the file; each batch is checked vectorized, except
    the first `clean_rows` rows, which the typed read already accepted.
    """
    invalid: list[_Invalid] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(_Invalid(int(row.number or 0), row.text, int(row.actual_columns)))
        return "skip"

    first_row_line = int(layout.header) + 1
    found: tuple[int, str] | None = None  # (non-empty line, problem)
    rows_before = 0
    try:
        for batch in pacsv.open_csv(layout.path, **_text_options(layout, list(checks), on_invalid)):
            numbers = np.array([bad.line for bad in invalid], dtype=np.int64)
            skip = min(max(clean_rows - rows_before, 0), batch.num_rows)
            problem = _first_problem(batch.slice(skip), checks) if skip < batch.num_rows else None
            if problem is not None:
                found = (_skip_map(rows_before + skip + problem[0], numbers, first_row_line), problem[1])
                break
            rows_before += batch.num_rows
            if invalid and batch.num_rows and _skip_map(rows_before - 1, numbers, first_row_line) > invalid[0].line:
                break  # rows past the first malformed one are clean: that one is the first problem
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _unreadable(layout, exc) from None
    if invalid and (found is None or invalid[0].line < found[0]):
        bad = invalid[0]
        other = _other_delimiter(bad.text, layout.sep)
        hint = f" (it looks {_delimiter_name(other)}-separated)" if other and bad.fields == 1 else ""
        separated = f"separated by {_delimiter_name(layout.sep)}"
        problem = f"expected {layout.fields} fields {separated}, found {bad.fields}{hint}: {bad.text[:80]!r}"
        found = (bad.line, problem)
    if found is None:
        return None
    line = _skip_map(found[0] - 1, _blank_lines(layout.path), 1)
    return DataFormatError(layout.path, found[1], fix, line=line)


def _failure(layout: _Layout, checks: dict[str, list[tuple[Check, str]]], fix: str, clean_rows: int) -> DataFormatError:
    """The error for a file the fast read rejected: its first bad line, or pyarrow's complaint."""
    found = _diagnose(layout, checks, fix, clean_rows)
    return found or DataFormatError(layout.path, "pyarrow could not parse the file", fix)


# ---------------------------------------------------------------------------- column conversion
def _has_nulls(table: pa.Table) -> bool:
    return any(table.column(i).null_count for i in range(table.num_columns))


def _frame(session: np.ndarray, item: np.ndarray, seq: np.ndarray, time: np.ndarray) -> pd.DataFrame:
    """The reader output without copying the arrays (one block per column)."""
    return pd.DataFrame({"session": session, "item": item, "seq": seq, "time": time}, copy=False)


_TICKS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _timestamp_ticks(column: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """A null-free timestamp/date column as int64 UTC ticks and the ticks per second."""
    if pa.types.is_date(column.type):
        days = column.cast(pa.date32()).cast(pa.int32()).to_numpy().astype(np.int64)
        return days * 86_400, 1
    return column.cast(pa.int64()).to_numpy(), _TICKS_PER_SECOND[column.type.unit]


# ---------------------------------------------------------------------------- YOOCHOOSE
_YC_FIX = (
    "A YOOCHOOSE yoochoose-clicks.dat has comma-separated rows session_id,timestamp,item_id,category "
    "(timestamps like 2014-04-07T10:51:09.277Z), optionally under that header line"
)


def _yoochoose_layout(path: Path) -> _Layout:
    first = _sniff(path, (YOOCHOOSE_LABEL, YOOCHOOSE_URL))
    fields = [f.strip() for f in first.split(",")]
    if len(fields) != 4:
        other = _other_delimiter(first, ",")
        if other is not None and len(fields) == 1:
            problem = (
                f"the file is {_delimiter_name(other)}-separated, not comma-separated "
                f"(is this DIGINETICA's train-item-views.csv?): {first[:80]!r}"
            )
        else:
            problem = f"expected 4 comma-separated fields, found {len(fields)}: {first[:80]!r}"
        raise DataFormatError(path, problem, _YC_FIX, line=1)
    header = not _is_int_text(fields[0])
    if header and tuple(f.lower() for f in fields) != YOOCHOOSE_COLUMNS:
        raise DataFormatError(
            path,
            f"the first line is neither a click row nor the header {','.join(YOOCHOOSE_COLUMNS)}: {first[:80]!r}",
            _YC_FIX,
            line=1,
        )
    return _Layout(path, ",", list(YOOCHOOSE_COLUMNS), header)


def read_yoochoose_clicks(path: str | Path, progress: ProgressFactory | None = None) -> pd.DataFrame:
    """Read `yoochoose-clicks.dat` (with or without a header line) in file order.

    `seq` is the row number and `time` the timestamp truncated to the second (UTC).
    """
    layout = _yoochoose_layout(Path(path))
    types = {"session_id": pa.int64(), "timestamp": pa.timestamp("ms", tz="UTC"), "item_id": pa.int64()}
    convert = {"session_id": _int_values, "item_id": _int_values, "timestamp": _timestamp_floor_seconds}
    columns, clean_rows = _stream_read(layout, types, convert, progress)
    if columns is None:
        checks = {
            "session_id": [_INT_CHECK],
            "timestamp": [(_bad_iso_second, "is not a timestamp like 2014-04-07T10:51:09.277Z")],
            "item_id": [_INT_CHECK],
        }
        raise _failure(layout, checks, _YC_FIX, clean_rows)
    rows = len(columns["session_id"])
    if rows == 0:
        raise DataFormatError(layout.path, "the file has a header but no click rows", _YC_FIX)
    return _frame(columns["session_id"], columns["item_id"], np.arange(rows, dtype=np.int64), columns["timestamp"])


# ---------------------------------------------------------------------------- DIGINETICA
_DG_FIX = (
    "A DIGINETICA train-item-views.csv is ';'-separated with the header "
    "session_id;user_id;item_id;timeframe;eventdate (eventdate like 2016-05-09)"
)


def _diginetica_layout(path: Path) -> _Layout:
    first = _sniff(path, (DIGINETICA_LABEL, DIGINETICA_URL))
    names = [f.strip() for f in first.split(";")]
    if len(names) == 1:
        other = _other_delimiter(first, ";")
        what = f"{_delimiter_name(other)}-separated, not ';'-separated" if other else "not ';'-separated"
        hint = " (is this YOOCHOOSE's yoochoose-clicks.dat?)" if other == "," else ""
        raise DataFormatError(path, f"the file is {what}{hint}: {first[:80]!r}", _DG_FIX, line=1)
    missing = [c for c in _DIGINETICA_NEEDED if c not in names]
    if missing:
        looks_like_data = _is_int_text(names[0])
        problem = (
            "the first line is a data row, but the file must start with the header line"
            if looks_like_data
            else f"the header lacks column(s) {', '.join(missing)} (found {', '.join(names)})"
        )
        raise DataFormatError(path, problem, _DG_FIX, line=1)
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DataFormatError(path, f"the header repeats column(s) {', '.join(duplicated)}", _DG_FIX, line=1)
    return _Layout(path, ";", names, True)


def read_diginetica_views(path: str | Path, progress: ProgressFactory | None = None) -> pd.DataFrame:
    """Read `train-item-views.csv` in file order; `seq` is `timeframe`, `time` is `eventdate` 00:00 UTC."""
    layout = _diginetica_layout(Path(path))
    types = {"session_id": pa.int64(), "item_id": pa.int64(), "timeframe": pa.int64(), "eventdate": pa.date32()}
    convert = {"session_id": _int_values, "item_id": _int_values, "timeframe": _int_values, "eventdate": _date_seconds}
    columns, clean_rows = _stream_read(layout, types, convert, progress)
    if columns is None:
        checks = {
            "session_id": [_INT_CHECK],
            "item_id": [_INT_CHECK],
            "timeframe": [(_not_matching(_INT_RE), "is not an integer")],
            "eventdate": [(_bad_date, "is not a date like 2016-05-09")],
        }
        raise _failure(layout, checks, _DG_FIX, clean_rows)
    if len(columns["session_id"]) == 0:
        raise DataFormatError(layout.path, "the file has a header but no click rows", _DG_FIX)
    return _frame(columns["session_id"], columns["item_id"], columns["timeframe"], columns["eventdate"])


# ---------------------------------------------------------------------------- generic click log
_TIME_FORMATS = ("auto", "epoch", "iso")


def _generic_fix(session_col: str, item_col: str, time_col: str | None) -> str:
    times = "" if time_col is None else f" and times in '{time_col}' as epoch seconds or ISO 8601 text"
    return (
        f"A click log needs a header line naming its columns, with integer or text ids in "
        f"'{session_col}' and '{item_col}'{times}"
    )


def _guess_sep(path: Path, first: str) -> str:
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    counts = {d: first.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _check_columns(path: Path, names: Sequence[str], wanted: Sequence[str], fix: str, line: int | None) -> None:
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataFormatError(
            path,
            f"column(s) {', '.join(repr(c) for c in missing)} not found (columns: {', '.join(map(str, names))})",
            fix,
            line=line,
        )


class _NonIntegerIds(Exception):
    def __init__(self, row: int, value: float) -> None:
        super().__init__(row, value)
        self.row, self.value = row, value


def _encode_ids(values: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None]:
    """Integer ids as int64, or factorize codes plus the labels (code k -> labels[k])."""
    if pa.types.is_integer(values.type):
        return np.ascontiguousarray(values.to_numpy(), dtype=np.int64), None
    if pa.types.is_floating(values.type):
        numbers = np.asarray(values.to_numpy(), dtype=np.float64)
        whole = np.isfinite(numbers) & (numbers == np.round(numbers))
        if whole.all():
            return numbers.astype(np.int64), None
        raise _NonIntegerIds(int(np.flatnonzero(~whole)[0]), float(numbers[~whole][0]))
    text = values.cast(pa.string()) if not pa.types.is_string(values.type) else values
    try:
        as_int = pc.cast(text, pa.int64())
        return np.ascontiguousarray(as_int.to_numpy(), dtype=np.int64), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    codes, labels = pd.factorize(np.asarray(text.to_numpy(zero_copy_only=False), dtype=object))
    return codes.astype(np.int64), np.asarray(labels, dtype=str)


def _generic_times(
    path: Path, values: pa.ChunkedArray, time_format: str, row_line: Callable[[int], int], fix: str
) -> tuple[np.ndarray, np.ndarray]:
    """(time in whole seconds, ordering key at full resolution) from a time column."""
    kind = values.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if time_format == "epoch":
            raise DataFormatError(
                path, "the time column holds dates, not epoch seconds", "Use time_format='iso' or 'auto'"
            )
        ticks, per_second = _timestamp_ticks(values)
        return np.floor_divide(ticks, per_second), np.asarray(ticks, dtype=np.int64)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        if time_format == "iso":
            raise DataFormatError(
                path, "the time column holds numbers, not ISO 8601 text", "Use time_format='epoch' or 'auto'"
            )
        numbers = np.asarray(values.to_numpy(), dtype=np.float64 if pa.types.is_floating(kind) else np.int64)
        bad = ~np.isfinite(numbers) if numbers.dtype.kind == "f" else np.zeros(len(numbers), bool)
        bad |= np.abs(numbers) > _MAX_EPOCH_S
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataFormatError(
                path,
                f"time {numbers[row].item()!r} is not epoch seconds (too large or not finite; milliseconds?)",
                "Give times as epoch seconds (divide milliseconds by 1000)",
                line=row_line(row),
            )
        if numbers.dtype.kind == "f":
            return np.floor(numbers).astype(np.int64), np.round(numbers * 1e6).astype(np.int64)
        return numbers, numbers.copy()
    first = values[0].as_py()
    if time_format == "epoch" or (time_format == "auto" and re.fullmatch(_NUMBER_RE, first.strip())):
        bad = _not_matching(_NUMBER_RE)(pc.utf8_trim_whitespace(values))  # auto: row 1 looks numeric
        if not bad.any():
            numbers = pc.cast(pc.utf8_trim_whitespace(values), pa.float64())
            return _generic_times(path, numbers, "epoch", row_line, fix)
        row = int(np.flatnonzero(bad)[0])
        problem = f"time {values[row].as_py()!r} is not a number (epoch seconds"
        problem += ", like the first row)" if time_format == "auto" else ")"
        raise DataFormatError(path, problem, fix, line=row_line(row))
    text = pd.Series(np.asarray(values.to_numpy(zero_copy_only=False), dtype=object))
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(path, f"time {text.iloc[row]!r} is not an ISO 8601 timestamp", fix, line=row_line(row))
    fine = parsed.dt.as_unit("ns").astype("int64").to_numpy()
    return np.floor_divide(fine, 1_000_000_000), fine


def _assemble_generic(
    path: Path, table: pa.Table, cols: tuple[str, str, str | None], time_format: str, row_line: Callable[[int], int], fix: str
) -> pd.DataFrame:
    session_col, item_col, time_col = cols
    for name in (c for c in cols if c is not None):
        column = table.column(name)
        if column.null_count:
            row = int(np.flatnonzero(_np_mask(pc.is_null(column)))[0])
            raise DataFormatError(path, f"the {name} value is empty or missing", fix, line=row_line(row))
    if table.num_rows == 0:
        raise DataFormatError(path, "the file has no click rows", fix)
    try:
        session, session_labels = _encode_ids(table.column(session_col))
        item, item_labels = _encode_ids(table.column(item_col))
    except _NonIntegerIds as bad:
        raise DataFormatError(
            path, f"id {bad.value!r} is a fraction", "Use integer or text ids", line=row_line(bad.row)
        ) from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise DataFormatError(
            path, f"an id column has an unsupported type ({_first_line(exc)})", "Use integer or text ids"
        ) from None
    if time_col is None:  # no times: clicks keep file order
        seq, time = np.arange(len(session), dtype=np.int64), np.zeros(len(session), dtype=np.int64)
    else:
        time, seq = _generic_times(path, table.column(time_col), time_format, row_line, fix)
    frame = _frame(session, item, seq, time)
    frame.attrs["session_labels"] = session_labels
    frame.attrs["item_labels"] = item_labels
    frame.attrs["warnings"] = click_log_warnings(frame, path, row_line, has_time=time_col is not None)
    return frame


def _read_parquet_log(path: Path, cols: tuple[str, str, str | None], time_format: str, fix: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    _require_file(path)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFormatError(
            path, f"not a readable Parquet file ({_first_line(exc)})", "Pass a valid .parquet file"
        ) from None
    wanted = [c for c in dict.fromkeys(cols) if c is not None]
    _check_columns(path, schema.names, wanted, fix, None)
    table = pq.read_table(path, columns=wanted)
    return _assemble_generic(
        path, table, cols, time_format, lambda row: row + 1, fix + " (Parquet: 'line' is the 1-based row)"
    )


def _csv_time_type(time_format: str) -> pa.DataType | None:
    return {"epoch": pa.float64(), "iso": pa.string(), "auto": None}[time_format]


def read_click_log(
    path: str | Path,
    session_col: str,
    item_col: str,
    time_col: str | None,
    time_format: str = "auto",
    sep: str | None = None,
    warn: bool = True,
) -> pd.DataFrame:
    """Read a generic click log (CSV/TSV with a header line, or Parquet by extension) in file order.

    `time` is whole UTC epoch seconds and `seq` the time at full resolution (ns for ISO text, us for
    fractional epoch seconds); without a time column (`time_col` None) `time` is 0 and `seq` the
    row number. Non-integer ids become factorize codes; their labels are in
    `frame.attrs["session_labels"]` and `frame.attrs["item_labels"]`. Warnings about reused
    session ids are in `frame.attrs["warnings"]`, and logged unless `warn` is False (callers that
    report them themselves).
    """
    frame = _read_click_log(Path(path), session_col, item_col, time_col, time_format, sep)
    if warn:
        for message in frame.attrs["warnings"]:
            log.warning("%s", message)
    return frame


def _read_click_log(
    path: Path, session_col: str, item_col: str, time_col: str | None, time_format: str, sep: str | None
) -> pd.DataFrame:
    if time_format not in _TIME_FORMATS:
        raise ValueError(f"time_format must be one of {_TIME_FORMATS}, got {time_format!r}")
    cols = (session_col, item_col, time_col)
    fix = _generic_fix(*cols)
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet_log(path, cols, time_format, fix)
    first = _sniff(path)
    delimiter = sep or _guess_sep(path, first)
    names = [n.strip().strip('"') for n in first.split(delimiter)]
    wanted = [c for c in dict.fromkeys(cols) if c is not None]
    _check_columns(path, names, wanted, fix + f" (read with delimiter {_delimiter_name(delimiter)})", 1)
    layout = _Layout(path, delimiter, names, True)
    types: dict[str, pa.DataType | None] = {session_col: None, item_col: None}
    if time_col is not None:
        types[time_col] = _csv_time_type(time_format)
    table = _fast_read(layout, {c: types[c] for c in wanted})
    if table is not None and not _has_nulls(table):
        blank = _blank_lines(path)
        return _assemble_generic(path, table, cols, time_format, lambda row: _skip_map(row + 1, blank, 1), fix)
    # slow path with every line counted; ids may legitimately be text, so they are only checked
    # for emptiness, and times for their declared format
    checks: dict[str, list[tuple[Check, str]]] = {c: [] for c in wanted}
    if time_col is not None:
        checks[time_col] = {
            "epoch": [_NUMBER_CHECK],
            "iso": [(_bad_iso_any, "is not an ISO 8601 timestamp")],
            "auto": [],
        }[time_format]
    error = _diagnose(layout, checks, fix)
    if error is not None:
        raise error
    text = _text_read(layout, wanted)
    return _assemble_generic(path, text.table, cols, time_format, text.line_of, fix)


# ---------------------------------------------------------------------------- session-id checks
def _session_label(frame: pd.DataFrame, code: int) -> str:
    labels = frame.attrs.get("session_labels")
    return str(labels[code]) if labels is not None else str(code)


def click_log_warnings(
    frame: pd.DataFrame, path: Path, row_line: Callable[[int], int], has_time: bool = True
) -> list[str]:
    """Warnings about session ids a click log probably reuses (vectorized; a few examples each).

    * Rows of one id in separate places of the file (other sessions' rows between them), when
      the file is not ordered by time: a log grouped by session that names two sessions alike.
      (In a log ordered by time, sessions interleave by nature; the span check covers it.)
    * Clicks of one id spanning more than `SESSION_SPAN_WARN_S` (one day): the same id reused
      on another day.
    """
    session = frame["session"].to_numpy()
    if len(session) < 2:
        return []
    out = []
    time_ordered = has_time and bool(np.all(np.diff(frame["seq"].to_numpy()) >= 0))
    if not time_ordered:
        starts = np.concatenate(([0], np.flatnonzero(session[1:] != session[:-1]) + 1))
        again = pd.Series(session[starts]).duplicated().to_numpy()
        if again.any():
            ids = session[starts][again]
            n = len(np.unique(ids))
            shown = []
            for run in np.flatnonzero(again)[:_SHOW].tolist():
                code = int(session[starts[run]])
                first = int(np.argmax(session == code))
                shown.append(f"{_session_label(frame, code)} at lines {row_line(first)} and {row_line(int(starts[run]))}")
            out.append(
                f"{path.name}: {n:,} session ids occur in separate places of the file (rows of other sessions between "
                f"them), e.g. {'; '.join(shown)}. Their rows are merged into one session each; if they are "
                "different sessions, give them distinct ids"
            )
    if has_time:
        times = pd.DataFrame({"s": session, "t": frame["time"].to_numpy()}).groupby("s", sort=False)["t"]
        span = times.max() - times.min()
        long = span[span > SESSION_SPAN_WARN_S]
        if len(long):
            shown = [f"{_session_label(frame, int(code))} ({seconds / 86_400:.1f} days)" for code, seconds in long.iloc[:_SHOW].items()]
            out.append(
                f"{path.name}: {len(long):,} sessions span more than a day of clicks, e.g. {', '.join(shown)}: their ids are "
                "probably reused on other days, and each is merged into one session; give them distinct ids"
            )
    return out
