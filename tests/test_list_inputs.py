"""List files from other tools: item numberings, partial files, rows checked against the split,
and inputs `evaluate` refuses because it cannot read them exactly (issues 16 and 20)."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sessbench.cli import main
from sessbench.data.sessions import SessionSet, Split
from sessbench.errors import DataFormatError, SessbenchError
from sessbench.recs import RecLists, evaluate_lists, format_evaluation, load_lists, read_lists, save_lists

INT64 = np.dtype(np.int64)


def _split() -> Split:
    """Test prefixes: (500, 1) [70, 80] -> 90, (500, 0) [70] -> 80, (600, 0) [90] -> 70."""
    train = SessionSet.from_lists([[1, 2, 3], [2, 3]], session_ids=[1, 2])
    test = SessionSet.from_lists([[1, 2, 3], [3, 1]], session_ids=[500, 600])
    return Split(name="tiny", train=train, test=test, n_items=3, item_ids=np.array([0, 70, 80, 90]))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------- numbering


def test_a_perfect_list_in_the_exports_numbering_needs_ids_exported(tmp_path: Path) -> None:
    path = _write(tmp_path / "l.csv", "SessionId;Position;Recommendations\n500;1;3\n500;0;2\n600;0;1\n")
    as_raw = evaluate_lists(read_lists(path, INT64), _split(), ks=(1,))
    assert as_raw.metrics["P@1"] == 0.0
    assert as_raw.unknown_entries == 3 and as_raw.unknown_rows == 3 and as_raw.unknown_first == ["3", "2", "1"]
    assert as_raw.other_ids == {"ids": "exported", "metric": "P@1", "value": 1.0, "as_read": 0.0}
    text = format_evaluation(as_raw, "l.csv")
    assert "warning: 3 listed items in 3 matched rows are not in the catalogue" in text
    assert "rerun with --ids exported" in text
    exported = evaluate_lists(read_lists(path, INT64), _split(), ks=(1,), ids="exported")
    assert exported.metrics["P@1"] == 1.0 and exported.unknown_entries == 0 and exported.other_ids is None
    assert "warning" not in format_evaluation(exported, "l.csv")


def test_raw_ids_read_as_exported_numbers_are_flagged(tmp_path: Path) -> None:
    path = _write(tmp_path / "l.csv", "SessionId;Position;Recommendations\n500;1;90\n500;0;80\n600;0;70\n")
    ev = evaluate_lists(read_lists(path, INT64), _split(), ks=(1,), ids="exported")
    assert ev.metrics["P@1"] == 0.0 and ev.unknown_entries == 3
    assert ev.other_ids is not None and ev.other_ids["ids"] == "original" and ev.other_ids["value"] == 1.0


def test_export_round_trip_of_a_click_log_with_text_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the export numbers items 1..n and writes text session ids as codes: --ids exported reads both
    rng = np.random.default_rng(0)
    rows = ["session_id,item_id,timestamp"]
    for s in range(300):
        for t in range(int(rng.integers(2, 6))):
            rows.append(f"s{s:04d},it{int(rng.integers(1, 30))},{1_704_067_200 + s * 5_000 + t}")
    log = _write(tmp_path / "log.csv", "\n".join(rows) + "\n")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    common = ["--dataset", f"clicks:{log}", *cache]
    assert main(["--quiet", "data", "export", f"clicks:{log}", *cache, "--format", "session-rec", "--out",
                 str(tmp_path / "out"), "--validation-fraction", "0"]) == 0
    (test_file,) = (tmp_path / "out").glob("*_test.txt")
    test = pd.read_csv(test_file, sep="\t")
    position = test.groupby("SessionId").cumcount()
    nxt = test.groupby("SessionId")["ItemId"].shift(-1)
    perfect = pd.DataFrame({"SessionId": test["SessionId"], "Position": position, "Recommendations": nxt})
    perfect = perfect[nxt.notna()].astype({"Recommendations": int})
    perfect.to_csv(tmp_path / "perfect.csv", sep=";", index=False)
    capsys.readouterr()
    argv = ["--quiet", "evaluate", "--recs", str(tmp_path / "perfect.csv"), *common, "--ks", "1", "--json"]
    assert main([*argv, "--ids", "exported"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["metrics"]["P@1"] == 1.0 and got["missing_prefixes"] == 0 and got["ids"] == "exported"
    assert main(argv) == 2  # as raw ids, the code session ids match no text session id
    assert "--ids exported" in capsys.readouterr().err


# ---------------------------------------------------------------------------- partial files


def test_only_listed_scores_the_prefixes_the_file_covers(tmp_path: Path) -> None:
    path = _write(tmp_path / "l.csv", "SessionId;Position;Recommendations\n500;1;90\n")
    whole = evaluate_lists(read_lists(path, INT64), _split(), ks=(1,))
    assert whole.metrics["P@1"] == pytest.approx(1 / 3) and whole.missing_prefixes == 2
    assert "--only-listed scores only the listed ones" in format_evaluation(whole, "l.csv")
    listed = evaluate_lists(read_lists(path, INT64), _split(), ks=(1,), only_listed="prefixes")
    assert listed.metrics["P@1"] == 1.0 and listed.n_examples["all"] == 1 and listed.missing_prefixes == 0
    assert listed.scored_sessions == 1 and listed.test_sessions == 2
    text = format_evaluation(listed, "l.csv")
    assert "--only-listed: scored the listed prefixes: 1 of 3 test prefixes (1 of 2 test sessions)" in text
    sessions = evaluate_lists(read_lists(path, INT64), _split(), ks=(1,), only_listed="sessions")
    assert sessions.n_examples["all"] == 2 and sessions.missing_prefixes == 1 and sessions.metrics["P@1"] == 0.5


def test_only_listed_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sessbench.data.registry import load_dataset, parse_dataset

    dataset, cache = "synthetic:n_sessions=200,n_items=50", tmp_path / "cache"
    split = load_dataset(parse_dataset(dataset), cache_dir=cache).split
    session = int(split.test.session_ids[0])
    path = _write(tmp_path / "l.csv", f"SessionId;Position;Recommendations\n{session};0;1,2,3,4,5\n")
    argv = ["--quiet", "evaluate", "--recs", str(path), "--dataset", dataset, "--cache-dir", str(cache), "--json"]
    assert main([*argv, "--only-listed"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["only_listed"] == "prefixes" and got["n_examples"]["all"] == 1 and got["test_prefixes"] == len(split.test_examples())
    assert main([*argv, "--only-listed", "sessions"]) == 0
    assert json.loads(capsys.readouterr().out)["n_examples"]["all"] == int(split.test.lengths[0]) - 1
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--only-listed", "everything"])
    assert exit_info.value.code == 2 and "invalid choice: 'everything'" in capsys.readouterr().err


# ---------------------------------------------------------------------------- rows checked


def test_rows_are_checked_against_the_split(tmp_path: Path) -> None:
    path = _write(tmp_path / "l.csv", "SessionId;Position;Recommendations;Prefix;LastItem;Target\n"
                  "500;1;90;70 80;80;90\n"          # all agree (Prefix space-separated)
                  "500;0;80;[70];70;90\n"           # wrong target
                  "600;0;70;80;80;70\n")            # wrong prefix and last item
    ev = evaluate_lists(read_lists(path, INT64), _split(), ks=(1,))
    checks = {c.column: c for c in ev.checks}
    assert {k: (c.checked, c.mismatched) for k, c in checks.items()} == {"LastItem": (3, 1), "Target": (3, 1), "Prefix": (3, 1)}
    assert checks["Target"].first == [{"SessionId": "500", "Position": 0, "file": "90", "split": "80"}]
    assert checks["Prefix"].first == [{"SessionId": "600", "Position": 0, "file": "80", "split": "90"}]
    text = format_evaluation(ev, "l.csv")
    assert "warning: 1 of 3 checked rows give another target than the split's (Target column), first: " \
           "(SessionId 500, Position 0): file 90, split 80" in text
    assert "another prefix" in text and "another last item" in text and "not comparable" in text


def test_a_prefix_of_another_length_and_empty_check_values(tmp_path: Path) -> None:
    path = _write(tmp_path / "l.csv", "SessionId;Position;Recommendations;Prefix;Target\n"
                  "500;1;90;70;\n"      # one item where the split's prefix has two; no target given
                  "500;0;80;;80\n")     # no prefix given; right target
    ev = evaluate_lists(read_lists(path, INT64), _split(), ks=(1,))
    checks = {c.column: (c.checked, c.mismatched) for c in ev.checks}
    assert checks == {"Target": (1, 0), "Prefix": (1, 1)}


def test_checks_in_the_exports_numbering(tmp_path: Path) -> None:
    path = tmp_path / "l.parquet"
    pd.DataFrame({"SessionId": [500, 600], "Position": [1, 0], "Recommendations": [[3], [1]],
                  "Prefix": [[1, 2], [3]], "Target": [3, 2]}).to_parquet(path)
    ev = evaluate_lists(read_lists(path, INT64), _split(), ks=(1,), ids="exported")
    checks = {c.column: c for c in ev.checks}
    assert checks["Prefix"].mismatched == 0 and checks["Target"].mismatched == 1
    assert checks["Target"].first[0]["split"] == "1"  # shown in the file's numbering


# ---------------------------------------------------------------------------- refused inputs


@pytest.mark.parametrize("value, problem", [
    ("80.0", "is not an integer id"), ("8e1", "is not an integer id"), ("99999999999999999999", "is not an integer id"),
    ("\uff18\uff10", "is not an integer id"), ("80;", "empty entry"),
])
def test_odd_csv_item_values_are_errors(value: str, problem: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "l.csv", f"SessionId;Position;Recommendations\n500;0;70\n500;1;{value.replace(';', ',')}\n")
    with pytest.raises(DataFormatError, match=problem) as info:
        read_lists(path, INT64)
    assert "row 2" in str(info.value)


@pytest.mark.parametrize("column, problem", [
    (pa.array([[90.0], [80.5]], pa.list_(pa.float64())), "floating-point ids are not read"),
    (pa.array([[90], [80, None]], pa.list_(pa.int64())), "row 2 has a null inside its Recommendations list"),
    (pa.array([[90], None], pa.list_(pa.int64())), "row 2 has a null Recommendations"),
    (pa.array([[True], [False]], pa.list_(pa.bool_())), "type bool"),
    (pa.array([["90"], ["8x"]], pa.list_(pa.string())), "'8x' is not an integer id"),
])
def test_parquet_values_that_are_not_exact_ids_are_errors(column: pa.Array, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "l.parquet"
    pq.write_table(pa.table({"SessionId": [500, 500], "Position": [1, 0], "Recommendations": column}), path)
    with pytest.raises(DataFormatError, match=problem):
        read_lists(path, INT64)


def test_text_ids_are_not_cut_to_the_datasets_width(tmp_path: Path) -> None:
    split = Split(name="t", train=_split().train, test=_split().test, n_items=3, item_ids=np.array(["", "a", "ab", "abc"]))
    path = _write(tmp_path / "l.csv", "SessionId;Position;Recommendations\n500;1;abcd\n500;0;ab\n600;0;a\n")
    lists = read_lists(path, split.item_ids.dtype)
    assert lists.items.tolist() == ["abcd", "ab", "a"]
    ev = evaluate_lists(lists, split, ks=(1,))
    assert ev.metrics["P@1"] == pytest.approx(2 / 3) and ev.unknown_first == ["abcd"]


@pytest.mark.parametrize("content", [b"\x00\x01\x02garbage\xff\xfe", b"SessionId;Position\n\"unterminated", b""])
def test_a_corrupt_list_file_is_an_error_not_a_traceback(content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("l.csv", "l.parquet"):
        path = tmp_path / name
        path.write_bytes(content)
        assert main(["evaluate", "--recs", str(path), "--dataset", "synthetic:n_sessions=200,n_items=50",
                     "--cache-dir", str(tmp_path / "cache")]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and str(path) in err


def _saved(tmp_path: Path) -> Path:
    lists = RecLists(np.array([500, 600]), np.array([1, 0]), np.array([0, 2, 3]), np.array([90, 80, 70]),
                     np.array([0.5, 0.1, 1.0]), np.array([2, 1]), 2, 20, "tiny", "f" * 16)
    path = tmp_path / "x.recs.npz"
    save_lists(lists, path)
    return path


def _replace_member(path: Path, name: str, data: bytes) -> None:
    """Rewrite one member of an .npz (deflated), keeping the others."""
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    members[name] = data
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, content in members.items():
            zf.writestr(member, content)


def _npy(header: dict, payload: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + payload


def test_a_corrupt_npz_is_refused_before_any_allocation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _saved(tmp_path)
    assert load_lists(path).items.tolist() == [90, 80, 70]
    # a 1e9-row header (8 GB) over 24 bytes of data
    _replace_member(path, "items.npy", _npy({"descr": "<i8", "fortran_order": False, "shape": (10**9,)}, b"\0" * 24))
    assert path.stat().st_size < 5000
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load reached"))
    tracemalloc.start()
    with pytest.raises(DataFormatError, match=r"declares shape \(1000000000,\) of int64"):
        load_lists(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * 2**20


@pytest.mark.parametrize("member, header, payload, problem", [
    ("items.npy", {"descr": "|O", "fortran_order": False, "shape": (3,)}, b"\0" * 24, "object"),
    ("scores.npy", {"descr": "<U100000", "fortran_order": False, "shape": (3,)}, b"\0" * 12, "declares shape"),
    ("offsets.npy", {"descr": "<i8", "fortran_order": False, "shape": (2,)}, b"\0" * 16, "offsets has 2 values, expected 3"),
    ("position.npy", {"descr": "<i8", "fortran_order": False, "shape": (2, 1)}, b"\0" * 16, "position is int64 of shape"),
])
def test_npz_headers_must_be_what_runs_write(member: str, header: dict, payload: bytes, problem: str, tmp_path: Path) -> None:
    path = _saved(tmp_path)
    _replace_member(path, member, _npy(header, payload))
    with pytest.raises(DataFormatError, match=problem):
        load_lists(path)


def test_npz_offsets_and_zip_damage_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _saved(tmp_path)
    buf = io.BytesIO()
    np.save(buf, np.array([0, 5, 3], dtype=np.int64))
    _replace_member(path, "offsets.npy", buf.getvalue())
    with pytest.raises(DataFormatError, match="row offsets"):
        load_lists(path)
    path.write_bytes(_saved(tmp_path).read_bytes()[:200])  # truncated
    assert main(["evaluate", "--recs", str(path), "--dataset", "synthetic", "--cache-dir", str(tmp_path / "c")]) == 2
    assert "not a sessbench list file" in capsys.readouterr().err


def test_saved_lists_refuse_ids_exported(tmp_path: Path) -> None:
    lists = load_lists(_saved(tmp_path))
    with pytest.raises(SessbenchError, match="drop --ids exported"):
        evaluate_lists(lists, _split(), ids="exported")


def test_partial_real_lists_score_as_the_listed_prefixes(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the first 1,000 rows of SR's lists on the YOOCHOOSE sample: scored alone with --only-listed
    data_dir = shared_data / "yoochoose-sample"
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    common = ["--dataset", "yoochoose", "--data-dir", str(data_dir), "--cache-dir", str(cache)]
    assert main(["--quiet", "run", "--models", "sr", *common, "--runs-dir", str(runs), "--save-recs", "20",
                 "--no-memory-check"]) == 0
    (record,) = runs.glob("*.json")
    out = tmp_path / "sr.csv"
    assert main(["recs", "export", str(record), "--out", str(out)]) == 0
    pd.read_csv(out, sep=";", dtype=str).iloc[:1000].to_csv(tmp_path / "part.csv", sep=";", index=False)
    capsys.readouterr()
    argv = ["--quiet", "evaluate", "--recs", str(tmp_path / "part.csv"), *common, "--ks", "20", "--json"]
    assert main(argv) == 0
    whole = json.loads(capsys.readouterr().out)
    assert main([*argv, "--only-listed"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert whole["n_examples"]["all"] == 10_102 and listed["n_examples"]["all"] == 1_000
    assert listed["metrics"]["P@20"] > 0.5 and whole["metrics"]["P@20"] < 0.1
    assert listed["metrics"]["P@20"] * 1_000 == pytest.approx(whole["metrics"]["P@20"] * 10_102)


def test_targets_of_text_ids_are_checked(tmp_path: Path) -> None:
    split = Split(name="t", train=_split().train, test=_split().test, n_items=3, item_ids=np.array(["", "a", "b", "c"]))
    path = _write(tmp_path / "l.csv", "SessionId;Position;Recommendations;Target\n500;1;c;c\n500;0;b;\n600;0;a;b\n")
    ev = evaluate_lists(read_lists(path, split.item_ids.dtype), split, ks=(1,))
    (check,) = ev.checks
    assert (check.checked, check.mismatched) == (2, 1) and check.first[0]["split"] == "a"
