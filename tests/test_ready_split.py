"""`--dataset split:DIR`: a split another tool made, loaded exactly as given."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sessbench.cli import main
from sessbench.data.ready_split import GIVEN_VALIDATION, given_validation
from sessbench.data.registry import export_name, load_dataset, parse_dataset
from sessbench.data.sessions import SessionSet
from sessbench.errors import ConfigError, DataFormatError, MissingDataError, SessbenchError


def _folder(root: Path, **parts: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in parts.items():
        (root / name.replace("_", ".")).write_text(text)
    return root


def _load(folder: Path, cache: Path, **params):
    return load_dataset(parse_dataset(f"split:{folder}", params or None), cache_dir=cache).split


def test_sessions_as_text_load_as_given(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "s", train_txt="1 2 3\n2,3\n\n[4, 1, 2]\n", valid_txt="3 4\n", test_txt="1 2 5\n2 3\n")
    split = _load(folder, tmp_path / "cache")
    assert split.train.to_lists() == [[1, 2, 3], [2, 3], [4, 1, 2], [3, 4]]  # validation stored last
    assert split.test.to_lists() == [[1, 2, 5], [2, 3]]  # item 5 only in test: kept (no filtering)
    assert split.n_items == 5 and split.item_ids.tolist() == [0, 1, 2, 3, 4, 5]
    assert split.train.session_ids.tolist() == [1, 2, 4, 1] and split.test.session_ids.tolist() == [1, 2]  # line numbers
    assert split.meta[GIVEN_VALIDATION] == 1 and "kept as the item numbers" in split.meta["item_numbering"]
    carved = given_validation(split)
    assert carved.train.to_lists() == [[1, 2, 3], [2, 3], [4, 1, 2]] and carved.valid.to_lists() == [[3, 4]]
    assert given_validation(carved) is carved


def test_raw_ids_are_numbered_in_sorted_order(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "s", train_txt="b a c\nc b\n", test_txt="a b\n")
    split = _load(folder, tmp_path / "cache")
    assert split.item_ids.tolist() == ["", "a", "b", "c"] and split.train.to_lists() == [[2, 1, 3], [3, 2]]
    folder = _folder(tmp_path / "n", train_txt="500 20 7\n20 500\n", test_txt="7 20\n")
    split = _load(folder, tmp_path / "cache")
    assert split.item_ids.tolist() == [0, 7, 20, 500] and split.test.to_lists() == [[1, 2]]
    assert split.meta["item_numbering"].startswith("3 raw item ids numbered 1..3 in sorted order (7 -> 1, ..., 500 -> 3)")


def test_filters_only_when_asked(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "s", train_txt="1 2\n2 3\n", test_txt="1 9 2\n9 3\n4\n")
    split = _load(folder, tmp_path / "cache", drop_unseen_items=True, min_session_length=2)
    assert split.test.to_lists() == [[1, 2]] and split.n_items == 3  # 9 and 4 dropped, then short sessions
    assert split.meta["dropped"] == {"clicks": 3, "sessions": 2}
    assert _load(folder, tmp_path / "cache").test.to_lists() == [[1, 5, 2], [5, 3], [4]]


def test_click_rows_with_text_ids_and_times(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path / "c",
        train_csv="SessionId,ItemId,Time\ns1,x,10\ns1,y,5\ns2,y,20\ns2,z,21\n",  # s1's clicks out of time order
        test_csv="SessionId,ItemId,Time\ns9,x,30\ns9,z,31\ns2,x,40\ns2,y,41\n",  # s2 also a training id
    )
    split = _load(folder, tmp_path / "cache")
    assert split.item_ids.tolist() == ["", "x", "y", "z"]
    assert split.train.to_lists() == [[2, 1], [2, 3]] and split.test.to_lists() == [[1, 3], [1, 2]]
    assert split.session_labels.tolist() == ["s1", "s2", "s9"]
    assert split.raw_session_ids(split.test.session_ids).tolist() == ["s9", "s2"]
    assert split.test.timestamps.tolist() == [31, 41]
    assert any("1 test session ids also name training sessions" in w for w in split.meta["warnings"])


def test_click_rows_without_times_and_named_columns(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "c", train_tsv="user\tproduct\n5\t7\n5\t8\n6\t8\n6\t9\n", test_tsv="user\tproduct\n9\t7\n9\t9\n")
    with pytest.raises(DataFormatError, match="no session column"):
        _load(folder, tmp_path / "cache", format="clicks")
    split = _load(folder, tmp_path / "cache", format="clicks", session_col="user", item_col="product")
    assert split.train.to_lists() == [[1, 2], [2, 3]] and split.test.session_ids.tolist() == [9]
    assert split.item_ids.tolist() == [0, 7, 8, 9]


def _pairs(sessions: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    examples = SessionSet.from_lists(sessions).examples()
    seqs = [s[:c].tolist() for s, c in ((examples.sessions.session(int(i)), int(c)) for i, c in zip(examples.session_index, examples.cut))]
    return seqs, examples.targets.tolist()


@pytest.mark.parametrize("protocol", [0, 4])
def test_official_pickles_keep_their_numbers(tmp_path: Path, protocol: int) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    train, valid, test = [[1, 2, 3], [3, 4]], [[2, 4, 4]], [[4, 1], [2, 3, 1]]
    for name, sessions in (("train.txt", train), ("valid.txt", valid), ("test.txt", test)):
        (folder / name).write_bytes(pickle.dumps(_pairs(sessions), protocol=protocol))
    split = _load(folder, tmp_path / "cache")
    assert split.meta["form"] == "pickle" and split.train.to_lists() == train + valid and split.test.to_lists() == test
    assert split.n_items == 4 and split.meta[GIVEN_VALIDATION] == 1
    assert _load(folder, tmp_path / "cache", n_items=10).n_items == 10
    with pytest.raises(SessbenchError, match="smaller than the largest item number"):
        _load(folder, tmp_path / "cache", n_items=3)


def test_bad_folders_and_parameters_are_clear(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match="not found"):
        _load(tmp_path / "nowhere", tmp_path / "cache")
    with pytest.raises(MissingDataError, match="no test.* file"):
        _load(_folder(tmp_path / "a", train_txt="1 2\n"), tmp_path / "cache")
    with pytest.raises(ConfigError, match="several train files"):
        _load(_folder(tmp_path / "b", train_txt="1 2\n", train_csv="1 2\n", test_txt="1 2\n"), tmp_path / "cache")
    with pytest.raises(DataFormatError, match="different forms"):
        _load(_folder(tmp_path / "c", train_txt="1 2\n", test_csv="SessionId,ItemId\n1,2\n"), tmp_path / "cache")
    with pytest.raises(ConfigError, match="unknown split parameter"):
        parse_dataset("split:x", {"test_days": 1})
    with pytest.raises(ConfigError, match="format must be one of"):
        parse_dataset("split:x", {"format": "json"})
    with pytest.raises(ConfigError, match="needs its folder"):
        parse_dataset("split")


def test_the_command_line_and_evaluate_on_a_ready_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path / "s", train_txt="1 2 3\n2 3\n3 1 2\n", test_txt="1 2 3\n3 1\n")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["data", "list"]) == 0
    assert "split:DIR" in capsys.readouterr().out
    assert main(["--quiet", "data", "prepare", f"split:{folder}", *cache]) == 0
    assert "3 training sessions (5 prefixes), 2 test sessions (3 prefixes), 3 items" in capsys.readouterr().out
    lists = _folder(tmp_path / "l", l_csv="SessionId;Position;Recommendations;Target\n1;0;2;2\n1;1;3;3\n2;0;1;1\n")
    assert main(["--quiet", "evaluate", "--recs", str(lists / "l.csv"), "--dataset", f"split:{folder}", *cache,
                 "--ks", "1", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["metrics"]["P@1"] == 1.0 and got["checks"][0]["mismatched"] == 0
    assert main(["--quiet", "run", "--models", "pop", "--dataset", f"split:{folder}", *cache, "--runs-dir",
                 str(tmp_path / "runs"), "--no-memory-check"]) == 0
    assert export_name(parse_dataset(f"split:{folder}")).startswith("split-s-")


def test_session_rec_export_loads_back_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # sessbench's own session-rec export, given back as a ready-made split: the same split
    dataset, cache = "synthetic:n_sessions=400,n_items=60", tmp_path / "cache"
    original = load_dataset(parse_dataset(dataset), cache_dir=cache).split
    out = tmp_path / "sr"
    assert main(["--quiet", "data", "export", dataset, "--cache-dir", str(cache), "--format", "session-rec",
                 "--out", str(out)]) == 0
    assert len(list(out.glob("*_train_tr.txt"))) == 1 and len(list(out.glob("*_train_valid.txt"))) == 1
    split = _load(out, cache)
    carve = original.with_validation(0.1)
    back = given_validation(split)
    for mine, theirs in ((back.train, carve.train), (back.valid, carve.valid), (split.test, original.test)):
        assert np.array_equal(mine.offsets, theirs.offsets) and np.array_equal(mine.session_ids, theirs.session_ids)
        assert np.array_equal(split.item_ids[mine.items], theirs.items)  # the export's numbers are the raw ids here
    # and exporting the ready split writes its own validation part again, not a new carve
    again = tmp_path / "again"
    assert main(["--quiet", "data", "export", f"split:{out}", "--cache-dir", str(cache), "--format", "session-rec",
                 "--out", str(again)]) == 0
    (valid_file,) = again.glob("*_train_valid.txt")
    (original_valid,) = out.glob("*_train_valid.txt")
    assert pd.read_csv(valid_file, sep="\t")["SessionId"].tolist() == pd.read_csv(original_valid, sep="\t")["SessionId"].tolist()


def test_real_sample_round_trip_through_session_rec(shared_data: Path, tmp_path: Path) -> None:
    data_dir, cache = shared_data / "yoochoose-sample", tmp_path / "cache"
    out = tmp_path / "sr"
    assert main(["--quiet", "data", "export", "yoochoose", "--data-dir", str(data_dir), "--cache-dir", str(cache),
                 "--format", "session-rec", "--out", str(out)]) == 0
    original = load_dataset(parse_dataset("yoochoose"), data_dir, cache).split
    split = _load(out, cache)
    assert split.meta["item_numbering"] == "the files' item ids are 1..2,808: kept as the item numbers"
    for part in ("train", "test"):
        mine, theirs = getattr(split, part), getattr(original, part)
        assert np.array_equal(mine.items, theirs.items) and np.array_equal(mine.offsets, theirs.offsets)
        assert np.array_equal(mine.session_ids, theirs.session_ids)
    assert len(split.test_examples()) == 10_102 and split.meta[GIVEN_VALIDATION] == 1_769
