"""Raw-file readers: correct tables for good files, a DataFormatError naming file and line for bad ones."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sessbench.data.readers import (
    DIGINETICA_URL,
    YOOCHOOSE_URL,
    find_raw_file,
    read_click_log,
    read_diginetica_views,
    read_yoochoose_clicks,
)
from sessbench.errors import DataFormatError, MissingDataError

YC_ROWS = (
    "1,2014-04-07T10:51:09.277Z,214536502,0\n"
    "1,2014-04-07T10:52:10.999Z,214536503,S\n"
    "2,2014-04-07T23:59:59.999Z,214536504,1234\n"
)
YC_HEADER = "session_id,timestamp,item_id,category\n"
DG_HEADER = "session_id;user_id;item_id;timeframe;eventdate\n"
DG_ROWS = "1;NA;81766;526309;2016-05-09\n1;NA;31331;1031018;2016-05-09\n2;7;32118;243569;2016-05-10\n"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def expect_error(reader, path: Path, line: int | None, *words: str, **kwargs) -> DataFormatError:
    with pytest.raises(DataFormatError) as caught:
        reader(path, **kwargs)
    error = caught.value
    message = str(error)
    assert path.name in message
    assert error.line == line, message
    if line is not None:
        assert f"line {line}:" in message
    for word in words:
        assert word in message, message
    return error


# ---------------------------------------------------------------------------- YOOCHOOSE
def test_yoochoose_columns_order_and_utc_seconds(tmp_path: Path) -> None:
    frame = read_yoochoose_clicks(write(tmp_path, "yoochoose-clicks.dat", YC_ROWS))
    assert list(frame.columns) == ["session", "item", "seq", "time"]
    assert all(dtype == np.int64 for dtype in frame.dtypes)
    assert frame["session"].tolist() == [1, 1, 2]
    assert frame["item"].tolist() == [214536502, 214536503, 214536504]
    assert frame["seq"].tolist() == [0, 1, 2]
    # milliseconds dropped (truncated, never rounded up), UTC
    expected = pd.to_datetime(["2014-04-07T10:51:09Z", "2014-04-07T10:52:10Z", "2014-04-07T23:59:59Z"], utc=True)
    assert frame["time"].tolist() == (expected.as_unit("s").astype("int64")).tolist()


@pytest.mark.parametrize("prefix", [YC_HEADER, "\ufeff" + YC_HEADER, "\ufeff"])
def test_yoochoose_header_and_bom_variants(tmp_path: Path, prefix: str) -> None:
    plain = read_yoochoose_clicks(write(tmp_path, "a.dat", YC_ROWS))
    other = read_yoochoose_clicks(write(tmp_path, "b.dat", prefix + YC_ROWS))
    pd.testing.assert_frame_equal(plain, other)


def test_yoochoose_crlf_and_blank_lines(tmp_path: Path) -> None:
    plain = read_yoochoose_clicks(write(tmp_path, "a.dat", YC_ROWS))
    crlf = read_yoochoose_clicks(write(tmp_path, "b.dat", YC_ROWS.replace("\n", "\r\n")))
    pd.testing.assert_frame_equal(plain, crlf)


@pytest.mark.parametrize(
    "name, text, line, words",
    [
        ("semicolon.dat", DG_HEADER + DG_ROWS, 1, ["';'-separated"]),
        ("fields.dat", "1,2014-04-07T10:51:09.277Z,5\n", 1, ["4 comma-separated fields, found 3"]),
        ("header.dat", "sid,ts,item,cat\n" + YC_ROWS, 1, ["header"]),
        ("timestamp.dat", YC_ROWS + "3,2014-04-07 xx,5,0\n", 4, ["timestamp", "'2014-04-07 xx'"]),
        ("month.dat", YC_ROWS + "3,2014-13-07T10:51:09.277Z,5,0\n", 4, ["timestamp"]),
        ("day.dat", YC_ROWS + "3,2014-02-30T10:51:09.277Z,5,0\n", 4, ["timestamp"]),
        ("item.dat", YC_ROWS + "3,2014-04-07T10:51:09.277Z,abc,0\n", 4, ["item_id", "'abc'", "integer"]),
        ("session.dat", YC_ROWS + "3.5,2014-04-07T10:51:09.277Z,5,0\n", 4, ["session_id", "'3.5'"]),
        ("empty_field.dat", YC_ROWS + "3,2014-04-07T10:51:09.277Z,,0\n", 4, ["item_id", "empty"]),
        ("na.dat", YC_ROWS + "NA,2014-04-07T10:51:09.277Z,4,0\n", 4, ["session_id", "missing"]),
        ("short_row.dat", YC_ROWS + "3,2014-04-07T10:51:09.277Z,4\n", 4, ["expected 4 fields", "found 3"]),
        ("long_row.dat", YC_ROWS + "3,2014-04-07T10:51:09.277Z,4,0,9\n", 4, ["found 5"]),
        ("with_header.dat", YC_HEADER + YC_ROWS + "3,2014-04-07T10:51:09.277Z,x,0\n", 5, ["'x'"]),
        ("blank_lines.dat", YC_ROWS + "\n\n" + YC_ROWS + "3,2014-04-07T10:51:09.277Z,x,0\n", 9, ["'x'"]),
        ("crlf.dat", (YC_ROWS + "\n" + "3,2014-04-07T10:51:09.277Z,x,0\n").replace("\n", "\r\n"), 5, ["'x'"]),
        ("first_of_two.dat", YC_ROWS + "3,2014-04-07T10:51:09.277Z,4\n" + "4,bad,5,0\n", 4, ["found 3"]),
        ("value_first.dat", YC_ROWS + "4,bad,5,0\n" + "3,2014-04-07T10:51:09.277Z,4\n", 4, ["'bad'"]),
        ("header_only.dat", YC_HEADER, None, ["no click rows"]),
        ("empty.dat", "", None, ["empty"]),
        ("blank.dat", "\n\n", None, ["empty"]),
        ("leading_blank.dat", "\n" + YC_ROWS, 1, ["first line is empty"]),
    ],
)
def test_yoochoose_malformed(tmp_path: Path, name: str, text: str, line: int | None, words: list[str]) -> None:
    expect_error(read_yoochoose_clicks, write(tmp_path, name, text), line, *words)


@pytest.fixture(scope="module")
def many_rows() -> list[str]:
    return [f"{1 + k // 3},2014-04-07T10:51:09.277Z,{1000 + k % 97},0\n" for k in range(300_000)]


@pytest.mark.parametrize(
    "changes, line, word",
    [
        ({250_000: "x,2014-04-07T10:51:09.277Z,5,0\n"}, 250_001, "'x'"),
        ({250_000: "3,2014-04-07T10:51:09.277Z\n"}, 250_001, "found 2"),
        ({200_000: "3,2014-04-07T10:51:09.277Z,,0\n", 250_000: "3,4\n"}, 200_001, "empty"),
        ({200_000: "3,4\n", 200_001: "3,2014-04-07T10:51:09.277Z,,0\n"}, 200_001, "found 2"),
        ({5: "3,4\n", 290_000: "3,2014-04-07T10:51:09.277Z,,0\n"}, 6, "found 2"),
        ({299_999: "3,2014-04-07T10:51:09.277Z,4,0,0\n"}, 300_000, "found 5"),
    ],
)
def test_yoochoose_bad_row_deep_in_a_large_file(
    tmp_path: Path, many_rows: list[str], changes: dict, line: int, word: str
) -> None:
    """The first bad line is found in files of many read blocks (several Arrow batches)."""
    rows = list(many_rows)
    for index, text in changes.items():
        rows[index] = text
    rows.insert(100, "\n")  # a blank line early on shifts every later line by one
    shifted = line + (line > 100)
    expect_error(read_yoochoose_clicks, write(tmp_path, "big.dat", "".join(rows)), shifted, word)


@pytest.mark.parametrize(
    "name, data, words",
    [
        ("clicks.dat.gz", gzip.compress(YC_ROWS.encode(), mtime=0), ["gzip", "gunzip clicks.dat.gz"]),
        ("clicks.7z", b"7z\xbc\xaf\x27\x1c\x00\x04rest", ["7z archive"]),
        ("clicks.zip", b"PK\x03\x04rest", ["zip archive"]),
        ("clicks.bin", b"\x01\x02\x00\x00binary", ["binary file"]),
        ("clicks.parquet.dat", b"PAR1....", ["Parquet"]),
        ("utf16.dat", YC_ROWS.encode("utf-16"), ["UTF-16"]),
    ],
    ids=["gzip", "7z", "zip", "binary", "parquet", "utf16"],  # stable ids (pytest-xdist compares them)
)
def test_not_a_text_file(tmp_path: Path, name: str, data: bytes, words: list[str]) -> None:
    path = write(tmp_path, name, data)
    expect_error(read_yoochoose_clicks, path, None, *words)
    expect_error(read_diginetica_views, path, None, *words)


def test_missing_files_say_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError) as caught:
        read_yoochoose_clicks(tmp_path / "yoochoose-clicks.dat")
    message = str(caught.value)
    assert "yoochoose-clicks.dat" in message and str(tmp_path.resolve()) in message and YOOCHOOSE_URL in message
    with pytest.raises(MissingDataError) as caught:
        read_diginetica_views(tmp_path / "train-item-views.csv")
    assert DIGINETICA_URL in str(caught.value) and "train-item-views.csv" in str(caught.value)
    with pytest.raises(MissingDataError, match="log.csv"):
        read_click_log(tmp_path / "log.csv", "s", "i", "t")


def test_find_raw_file(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError) as caught:
        find_raw_file(tmp_path, "yoochoose-clicks.dat", "YOOCHOOSE (RecSys Challenge 2015)", YOOCHOOSE_URL)
    message = str(caught.value)
    for word in ("yoochoose-clicks.dat", str(tmp_path.resolve()), YOOCHOOSE_URL, "RecSys Challenge 2015", "put"):
        assert word in message
    path = write(tmp_path, "yoochoose-clicks.dat", YC_ROWS)
    assert find_raw_file(tmp_path, "yoochoose-clicks.dat", "YOOCHOOSE", YOOCHOOSE_URL) == path


# ---------------------------------------------------------------------------- DIGINETICA
def test_diginetica_columns(tmp_path: Path) -> None:
    frame = read_diginetica_views(write(tmp_path, "train-item-views.csv", DG_HEADER + DG_ROWS))
    assert frame["session"].tolist() == [1, 1, 2]
    assert frame["item"].tolist() == [81766, 31331, 32118]
    assert frame["seq"].tolist() == [526309, 1031018, 243569]
    day = int(pd.Timestamp("2016-05-09", tz="UTC").timestamp())
    assert frame["time"].tolist() == [day, day, day + 86400]


def test_diginetica_reordered_header(tmp_path: Path) -> None:
    text = "item_id;session_id;eventdate;timeframe;user_id\n81766;1;2016-05-09;526309;NA\n"
    frame = read_diginetica_views(write(tmp_path, "v.csv", text))
    assert frame.iloc[0].tolist() == [1, 81766, 526309, int(pd.Timestamp("2016-05-09", tz="UTC").timestamp())]


@pytest.mark.parametrize(
    "name, text, line, words",
    [
        ("comma.csv", (DG_HEADER + DG_ROWS).replace(";", ","), 1, ["','-separated", "yoochoose"]),
        ("yoochoose.csv", YC_ROWS, 1, ["','-separated"]),
        ("no_header.csv", DG_ROWS, 1, ["header"]),
        ("no_timeframe.csv", "session_id;user_id;item_id;eventdate\n1;NA;2;2016-05-09\n", 1, ["timeframe"]),
        ("date.csv", DG_HEADER + DG_ROWS + "3;NA;5;7;2016-02-30\n", 5, ["eventdate", "'2016-02-30'"]),
        ("date_text.csv", DG_HEADER + DG_ROWS + "3;NA;5;7;yesterday\n", 5, ["eventdate"]),
        ("timeframe.csv", DG_HEADER + DG_ROWS + "3;NA;5;7.5;2016-02-03\n", 5, ["timeframe", "'7.5'"]),
        ("item.csv", DG_HEADER + "3;NA;x5;7;2016-02-03\n", 2, ["item_id", "'x5'"]),
        ("empty_item.csv", DG_HEADER + DG_ROWS + "3;NA;;7;2016-02-03\n", 5, ["item_id", "empty"]),
        ("fields.csv", DG_HEADER + DG_ROWS + "3;NA;5;7;2016-02-03;x\n", 5, ["expected 5 fields", "found 6"]),
        ("header_only.csv", DG_HEADER, None, ["no click rows"]),
    ],
)
def test_diginetica_malformed(tmp_path: Path, name: str, text: str, line: int | None, words: list[str]) -> None:
    expect_error(read_diginetica_views, write(tmp_path, name, text), line, *words)


# ---------------------------------------------------------------------------- generic click log
def test_click_log_text_ids_and_iso_times(tmp_path: Path) -> None:
    text = "sid,iid,ts\na,x,2014-04-07T10:51:09.5Z\na,y,2014-04-07T10:51:10Z\nb,x,2014-04-07T12:51:10+02:00\n"
    frame = read_click_log(write(tmp_path, "log.csv", text), "sid", "iid", "ts")
    assert frame["session"].tolist() == [0, 0, 1]
    assert frame["item"].tolist() == [0, 1, 0]
    assert frame.attrs["session_labels"].tolist() == ["a", "b"]
    assert frame.attrs["item_labels"].tolist() == ["x", "y"]
    base = int(pd.Timestamp("2014-04-07T10:51:09Z").timestamp())
    assert frame["time"].tolist() == [base, base + 1, base + 1]
    assert frame["seq"].iloc[0] < frame["seq"].iloc[1]  # sub-second order kept in seq


def test_click_log_epoch_tsv_and_parquet(tmp_path: Path) -> None:
    tsv = read_click_log(
        write(tmp_path, "log.tsv", "s\ti\tt\n1\t10\t1396867869.25\n1\t11\t1396867870\n"), "s", "i", "t"
    )
    assert tsv["time"].tolist() == [1396867869, 1396867870]
    assert tsv.attrs["item_labels"] is None
    path = tmp_path / "log.parquet"
    pd.DataFrame({"s": [5, 5], "i": [7, 8], "t": [1396867869, 1396867900]}).to_parquet(path)
    frame = read_click_log(path, "s", "i", "t")
    assert frame["session"].tolist() == [5, 5] and frame["time"].tolist() == [1396867869, 1396867900]


def test_click_log_explicit_separator(tmp_path: Path) -> None:
    frame = read_click_log(write(tmp_path, "log.txt", "s|i|t\n1|2|3\n1|4|5\n"), "s", "i", "t", sep="|")
    assert frame["item"].tolist() == [2, 4]


@pytest.mark.parametrize(
    "text, kwargs, line, words",
    [
        ("sid,iid,ts\n1,10,1396867869\n\n1,11,oops\n", {}, 4, ["'oops'"]),
        ("sid,iid,ts\n1,10,1396867869000\n", {}, 2, ["milliseconds"]),
        ("sid,iid,ts\n1,,1396867869\n", {}, 2, ["iid", "empty"]),
        ("sid,iid,ts\n1,2,2014-04-07T10:51:09Z\n1,3,2014-99-07\n", {}, 3, ["2014-99-07"]),
        ("sid,iid,ts\n1,2,2014-04-07T10:51:09Z\n", {"time_format": "epoch"}, 2, ["not a number"]),
        ("sid,iid,ts\n1,2,1396867869\n", {"time_format": "iso"}, 2, ["ISO 8601"]),
        ("sid,iid,time\n1,2,3\n", {}, 1, ["'ts' not found", "sid, iid, time"]),
        ("sid,iid,ts\n1,2,3\n1,2\n", {}, 3, ["found 2"]),
    ],
)
def test_click_log_malformed(tmp_path: Path, text: str, kwargs: dict, line: int | None, words: list[str]) -> None:
    expect_error(
        read_click_log,
        write(tmp_path, "log.csv", text),
        line,
        *words,
        session_col="sid",
        item_col="iid",
        time_col="ts",
        **kwargs,
    )


def test_click_log_parquet_errors(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pd.DataFrame({"s": [1.0, None], "i": [7, 8], "t": [1, 2]}).to_parquet(path)
    expect_error(read_click_log, path, 2, "empty", session_col="s", item_col="i", time_col="t")
    expect_error(read_click_log, path, None, "'x' not found", session_col="x", item_col="i", time_col="t")
    bad = write(tmp_path, "bad.parquet", b"not parquet at all")
    expect_error(read_click_log, bad, None, "Parquet", session_col="s", item_col="i", time_col="t")


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
def test_blank_line_scan_across_chunk_boundaries(tmp_path: Path, monkeypatch, chunk: int) -> None:
    from sessbench.data import readers

    rng = np.random.default_rng(chunk)
    pieces = rng.choice(["1,2", "", "\r", "ab", "x\r"], size=200)
    text = "\n".join(pieces) + "\n"
    path = write(tmp_path, "scan.txt", text)
    expected = [k + 1 for k, line in enumerate(text.split("\n")[:-1]) if line in ("", "\r")]
    monkeypatch.setattr(readers, "_SCAN_BYTES", chunk)
    assert readers._blank_lines(path).tolist() == expected


# ---------------------------------------------------------------------------- session-id checks
def test_click_log_without_a_time_column_keeps_file_order(tmp_path: Path) -> None:
    frame = read_click_log(write(tmp_path, "log.csv", "s,i\n7,3\n7,1\n8,2\n"), "s", "i", None)
    assert frame["seq"].tolist() == [0, 1, 2] and frame["time"].tolist() == [0, 0, 0]
    assert frame["item"].tolist() == [3, 1, 2] and frame.attrs["warnings"] == []


def test_a_session_id_in_separate_places_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # grouped by session (times go back at each new session), and session 1 comes back later
    text = "s,i,t\n1,5,100\n1,6,101\n2,5,50\n2,7,51\n1,8,300\n3,5,10\n"
    with caplog.at_level("WARNING", logger="sessbench.data"):
        frame = read_click_log(write(tmp_path, "log.csv", text), "s", "i", "t")
    (warning,) = frame.attrs["warnings"]
    assert "1 session ids occur in separate places" in warning and "1 at lines 2 and 6" in warning
    assert warning in caplog.text
    quiet = read_click_log(tmp_path / "log.csv", "s", "i", "t", warn=False)
    assert quiet.attrs["warnings"] == [warning]


def test_sessions_interleaved_in_time_order_are_not_reported(tmp_path: Path) -> None:
    text = "s,i,t\na,5,100\nb,6,101\na,5,102\nb,7,103\n"
    assert read_click_log(write(tmp_path, "log.csv", text), "s", "i", "t").attrs["warnings"] == []


def test_a_session_spanning_days_is_reported(tmp_path: Path) -> None:
    day = 86_400
    text = f"s,i,t\nu1,5,{10 * day}\nu2,6,{10 * day + 5}\nu1,5,{13 * day}\nu3,6,{13 * day + 1}\n"
    (warning,) = read_click_log(write(tmp_path, "log.csv", text), "s", "i", "t").attrs["warnings"]
    assert "1 sessions span more than a day" in warning and "u1 (3.0 days)" in warning


def test_click_log_dataset_warnings_are_logged_on_every_load(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from sessbench.data.registry import load_dataset, parse_dataset

    rows = ["session_id,item_id,timestamp"]
    start = 1_704_067_200
    for s in range(200):  # sessions of 3 clicks over 10 days; session 7 reuses its id 5 days later
        rows += [f"{s},{(s + k) % 12},{start + s * 4_000 + k}" for k in range(3)]
    rows += [f"7,{k},{start + 5 * 86_400 + k}" for k in (1, 2)]
    path = write(tmp_path, "log.csv", "\n".join(rows) + "\n")
    request = parse_dataset(f"clicks:{path}")
    for _ in range(2):  # built, then from the cache
        caplog.clear()
        with caplog.at_level("WARNING"):
            split = load_dataset(request, cache_dir=tmp_path / "cache").split
        assert "log.csv: 1 sessions span more than a day of clicks, e.g. 7 (4.7 days)" in caplog.text
        assert "log.csv: 1 session ids occur in separate places of the file" in caplog.text  # appended rows
        assert "22 of 22 test sessions (100.0%) repeat a training session's item sequence exactly" in caplog.text
        assert len(split.meta["warnings"]) == 3


def test_repeated_sessions_compare_whole_sequences() -> None:
    from sessbench.data.checks import repeated_sessions
    from sessbench.data.sessions import SessionSet

    train = SessionSet.from_lists([[1, 2], [2, 1], [3, 3, 3], [7]])
    test = SessionSet.from_lists([[2, 1], [1, 2, 3], [3, 3, 3], [3, 3], [7], [1]])
    assert repeated_sessions(train, test).tolist() == [1, -1, 2, -1, 3, -1]
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 6, size=3000)
    big = SessionSet.from_lengths(rng.integers(1, 4, size=int(lengths.sum())).astype(np.int32), lengths)
    match = repeated_sessions(big, big)
    assert (match >= 0).all()
    chosen = np.flatnonzero(match >= 0)
    assert all(big.session(int(a)).tolist() == big.session(int(b)).tolist() for a, b in zip(chosen[:500], match[chosen[:500]]))
