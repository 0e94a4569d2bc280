"""The preprocessing benchmark: the synthetic raw file's format, and a small end-to-end run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sessbench.bench.preprocess import format_report, main, run_preprocess_benchmark
from sessbench.bench.synthetic_raw import generate_yoochoose_raw, iso_ms_strings
from sessbench.data.readers import read_yoochoose_clicks


def test_iso_strings_match_numpy() -> None:
    ms = np.array([1396310400000, 1396310400001, 1412121599999, 1399999999123, 0], dtype=np.int64)
    expected = [s + "Z" for s in np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms")]
    assert iso_ms_strings(ms).to_pylist() == expected


def test_generated_file_has_the_real_format(tmp_path: Path) -> None:
    path = generate_yoochoose_raw(tmp_path / "yoochoose-clicks.dat", 5_000, seed=3)
    lines = path.read_text().splitlines()
    assert len(lines) == 5_000
    session, stamp, item, category = lines[0].split(",")
    assert session.isdigit() and item.isdigit() and category == "0"
    assert len(stamp) == 24 and stamp[10] == "T" and stamp.endswith("Z") and stamp[19] == "."
    frame = read_yoochoose_clicks(path)
    runs = np.flatnonzero(np.diff(frame["session"].to_numpy())) + 1
    assert len(runs) + 1 == frame["session"].nunique()  # sessions are contiguous
    assert np.all(np.diff(frame["session"].to_numpy()) >= 0)
    lengths = np.diff(np.concatenate(([0], runs, [len(frame)])))
    assert 2.5 < lengths.mean() < 5.0
    first, last = pd.Timestamp("2014-04-01", tz="UTC").timestamp(), pd.Timestamp("2014-10-01", tz="UTC").timestamp()
    assert frame["time"].min() >= first and frame["time"].max() < last
    again = generate_yoochoose_raw(tmp_path / "again.dat", 5_000, seed=3)
    assert again.read_bytes() == path.read_bytes()


def test_small_benchmark_run(tmp_path: Path) -> None:
    result = run_preprocess_benchmark(rows=20_000, workdir=tmp_path, seed=0)
    for key in (
        "rows",
        "wall_s",
        "rows_per_s",
        "peak_memory_mb",
        "read_s",
        "preprocess_s",
        "n_sessions_train",
        "n_train_prefixes",
        "n_train_prefixes_1_64",
        "n_test_prefixes",
        "n_items",
        "threads",
        "cpu_count",
    ):
        assert key in result, key
    assert result["rows"] == 20_000
    assert 0 < result["read_s"] and 0 < result["preprocess_s"]
    assert abs(result["wall_s"] - result["read_s"] - result["preprocess_s"]) < 1e-3
    assert 50 < result["peak_memory_mb"] < 4096
    assert 0 < result["n_items"] <= 52_700
    assert result["n_train_prefixes"] // 64 == result["n_train_prefixes_1_64"] > 0
    assert result["n_sessions_train"] > 0 and result["n_test_prefixes"] > 0
    assert result["meets_target"] is True
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone
    text = format_report(result)
    assert "20,000" in text and "peak memory" in text


def test_main_prints_json(tmp_path: Path, capsys) -> None:
    assert main(["--rows", "3000", "--json", "--workdir", str(tmp_path)]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == 3000
