"""Synthetic raw click files in the exact YOOCHOOSE format, for the preprocessing benchmark.

The real `yoochoose-clicks.dat` cannot be redistributed, so the benchmark writes a file with the
same shape instead: about 33M rows, 9.2M contiguous sessions (mean length 3.6, long tail),
52,700 items with Zipf-like popularity, millisecond ISO timestamps between 2014-04-01 and
2014-09-30, category `0`. Everything is generated column-wise with numpy; the timestamp text is
assembled as three little-endian uint64 words per row from small lookup tables (pyarrow's
strftime costs about 5 us a row, which alone would take minutes at full size).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

N_ITEMS = 52_700
START_S = 1_396_310_400  # 2014-04-01T00:00:00Z
END_S = 1_412_121_600  # 2014-10-01T00:00:00Z
MEAN_GAP_MS = 60_000.0
ZIPF_EXPONENT = 0.95
_CHUNK_ROWS = 2_000_000


def _words(texts: list[bytes]) -> np.ndarray:
    """8-byte texts as little-endian uint64 words (NUL bytes are filled in by OR-ing)."""
    return np.frombuffer(b"".join(texts), "<u8")


_HOUR_MINUTE = _words([b"\0\0T%02d:%02d" % (s // 3600, s // 60 % 60) for s in range(0, 86_400, 60)])
_SECOND = _words([b":%02d\0\0\0\0Z" % s for s in range(60)])
_MILLI = _words([b"\0\0\0.%03d\0" % m for m in range(1000)])


def iso_ms_strings(ms: np.ndarray) -> pa.Array:
    """UTC epoch milliseconds -> pyarrow strings like `2014-04-07T10:51:09.277Z` (vectorized)."""
    ms = np.asarray(ms, np.int64)
    n = len(ms)
    secs, milli = np.divmod(ms, 1000)
    days, sod = np.divmod(secs, 86_400)
    d0 = int(days.min()) if n else 0
    span = np.arange(d0, (int(days.max()) if n else 0) + 1).astype("datetime64[D]")
    text = np.datetime_as_string(span, unit="D").astype("S10")  # YYYY-MM-DD per day in range
    year_month = _words([t[:8] for t in text])
    day_of_month = _words([t[8:10] + b"\0" * 6 for t in text])
    day = (days - d0).astype(np.intp)
    out = np.empty((n, 3), "<u8")
    out[:, 0] = year_month[day]
    out[:, 1] = day_of_month[day] | _HOUR_MINUTE[sod // 60]
    out[:, 2] = _SECOND[sod % 60] | _MILLI[milli]
    offsets = np.arange(0, 24 * (n + 1), 24, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out)])


def _session_lengths(rows: int, rng: np.random.Generator) -> np.ndarray:
    """Lengths with the real file's mean (~3.6) and long tail (max 200), summing to `rows`."""
    parts = []
    total = 0
    while total < rows:
        draw = np.clip(np.round(rng.lognormal(0.9, 0.85, (rows - total) // 3 + 16)), 1, 200)
        parts.append(draw.astype(np.int64))
        total += int(parts[-1].sum())
    lengths = np.concatenate(parts)
    ends = np.cumsum(lengths)
    n = int(np.searchsorted(ends, rows)) + 1
    lengths = lengths[:n]
    lengths[-1] -= int(ends[n - 1]) - rows
    return lengths


def _item_ids(rows: int, rng: np.random.Generator) -> np.ndarray:
    """Raw 9-digit item ids with Zipf-like popularity (rank^-0.95, continuous inverse CDF)."""
    catalogue = 214_500_000 + rng.choice(40 * N_ITEMS, N_ITEMS, replace=False)
    b = 1.0 - ZIPF_EXPONENT
    top = (N_ITEMS + 1.0) ** b - 1.0
    ranks = ((rng.random(rows) * top + 1.0) ** (1.0 / b)).astype(np.int64) - 1
    return catalogue[np.clip(ranks, 0, N_ITEMS - 1)]


def _click_times_ms(lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Session starts in time order over Apr-Sep 2014; clicks about a minute apart."""
    rows = int(lengths.sum())
    starts = np.sort(rng.integers(START_S * 1000, (END_S - 7200) * 1000, len(lengths)))
    gaps = rng.exponential(MEAN_GAP_MS, rows).astype(np.int64)
    first = np.cumsum(lengths) - lengths
    gaps[first] = 0
    within = np.cumsum(gaps)
    within -= np.repeat(within[first], lengths)
    return np.minimum(np.repeat(starts, lengths) + within, END_S * 1000 - 1)


def generate_yoochoose_raw(path: str | Path, rows: int, seed: int = 0) -> Path:
    """Write `rows` synthetic clicks to `path` in the headerless `yoochoose-clicks.dat` format."""
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    rng = np.random.default_rng(seed)
    lengths = _session_lengths(rows, rng)
    # increasing ids with gaps, like the real file (ids up to ~11.5M for 9.2M sessions)
    session_ids = np.cumsum(1 + (rng.random(len(lengths)) < 0.25))
    sessions = np.repeat(session_ids, lengths)
    items = _item_ids(rows, rng)
    times = _click_times_ms(lengths, rng)
    del session_ids, lengths
    path = Path(path)
    schema = pa.schema(
        [("session_id", pa.int64()), ("timestamp", pa.string()), ("item_id", pa.int64()), ("category", pa.string())]
    )
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with pacsv.CSVWriter(str(path), schema, write_options=options) as writer:
        for lo in range(0, rows, _CHUNK_ROWS):
            hi = min(rows, lo + _CHUNK_ROWS)
            columns = [
                pa.array(sessions[lo:hi]),
                iso_ms_strings(times[lo:hi]),
                pa.array(items[lo:hi]),
                pa.repeat("0", hi - lo),
            ]
            writer.write_table(pa.table(columns, schema=schema))
    return path
