"""Exports to srgnn-json, RecBole and session-rec: exact content, round trips, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import sessbench
from sessbench.data import export
from sessbench.data.export import EXPORT_FORMATS, export_split
from sessbench.data.sessions import SessionSet, Split
from sessbench.errors import ConfigError, UnknownNameError


def make_split() -> Split:
    train = SessionSet.from_lists(
        [[1, 2, 3], [2, 4], [5], [10, 11, 12, 10]],
        timestamps=[1396310400, 1396310500, 1396310600, 1396310700],
        session_ids=[11, 12, 13, 11000000000],
    )
    test = SessionSet.from_lists([[1, 5], [4, 2, 3]], timestamps=[1396400000, 1396400100], session_ids=[21, 22])
    return Split("toy", train, test, 12, np.arange(13, dtype=np.int64) + 1000)


EXPECTED_JSON = {
    "source": f"sessbench {sessbench.__version__} srgnn-json export of dataset toy",
    "n_items": 12,
    "train": {
        "sequences": [[1, 2], [1], [2], [10, 11, 12], [10, 11], [10]],
        "labels": [3, 2, 4, 10, 12, 11],
    },
    "test": {"sequences": [[1], [4, 2], [4]], "labels": [5, 3, 2]},
}


def examples_as_lists(sessions: SessionSet) -> tuple[list[list[int]], list[int]]:
    ex = sessions.examples()
    seqs = sessions.to_lists()
    prefixes = [seqs[s][:c] for s, c in zip(ex.session_index.tolist(), ex.cut.tolist())]
    return prefixes, ex.targets.tolist()


# ---------------------------------------------------------------------------- srgnn-json
def test_srgnn_json_is_exactly_the_official_schema(tmp_path: Path) -> None:
    (path,) = export_split(make_split(), "srgnn-json", tmp_path / "toy.json")
    assert path == tmp_path / "toy.json"
    assert path.read_bytes() == json.dumps(EXPECTED_JSON, separators=(",", ":")).encode()


def test_srgnn_json_into_existing_folder_and_with_validation(tmp_path: Path) -> None:
    split = make_split().with_validation(0.25)
    (path,) = export_split(split, "srgnn-json", tmp_path)
    assert path == tmp_path / "toy.json"
    data = json.loads(path.read_text())
    assert list(data) == ["source", "n_items", "train", "valid", "test"]
    assert data["valid"] == {"sequences": [[10, 11, 12], [10, 11], [10]], "labels": [10, 12, 11]}
    assert data["train"]["labels"] == [3, 2, 4]


def test_srgnn_json_of_empty_parts(tmp_path: Path) -> None:
    split = Split("empty", SessionSet.from_lists([[3]]), SessionSet.empty(), 3, np.arange(4))
    (path,) = export_split(split, "srgnn-json", tmp_path / "e.json")
    data = json.loads(path.read_text())
    assert data["train"] == data["test"] == {"sequences": [], "labels": []}


def split_from_official(part: dict) -> SessionSet:
    """Sessions back from an official prefix list: a session's longest prefix comes first."""
    seqs, labels = part["sequences"], part["labels"]
    return SessionSet.from_lists(
        [seqs[e] + [labels[e]] for e in range(len(seqs)) if e == 0 or len(seqs[e - 1]) == 1]
    )


@pytest.mark.parametrize(
    "folder, train_key",
    [
        ("diginetica-sample", "train"),
        ("yoochoose-sample", "train_yoochoose1_64"),
        ("yoochoose-sample", "train_yoochoose1_4"),
    ],
)
def test_srgnn_json_reproduces_official_lists(shared_data: Path, tmp_path: Path, folder: str, train_key: str) -> None:
    official = json.loads((shared_data / folder / "official-split.json").read_text())
    n = official["n_items"]
    split = Split(
        folder,
        split_from_official(official[train_key]),
        split_from_official(official["test"]),
        n,
        np.arange(n + 1),
    )
    (path,) = export_split(split, "srgnn-json", tmp_path / "x.json")
    ours = json.loads(path.read_text())
    assert ours["n_items"] == n
    assert ours["train"] == official[train_key]
    assert ours["test"] == official["test"]
    compact = json.dumps(official[train_key], separators=(",", ":")).encode()
    assert compact in path.read_bytes()  # byte-for-byte the official layout


# ---------------------------------------------------------------------------- recbole
def read_inter(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def test_recbole_files_round_trip(tmp_path: Path) -> None:
    split = make_split()
    files = export_split(split, "recbole", tmp_path / "toy")
    assert [f.name for f in files] == ["toy.train.inter", "toy.valid.inter", "toy.test.inter", "toy.item", "toy.yaml"]
    # every candidate item is listed, so RecBole ranks the same candidate set as sessbench
    assert (tmp_path / "toy" / "toy.item").read_text().splitlines() == ["item_id:token"] + [
        str(i) for i in range(1, split.n_items + 1)
    ]
    for part, sessions in (("train", split.train), ("test", split.test)):
        path = tmp_path / "toy" / f"toy.{part}.inter"
        assert path.read_text().splitlines()[0] == "session_id:token\titem_id_list:token_seq\titem_id:token"
        frame = read_inter(path)
        prefixes, labels = examples_as_lists(sessions)
        assert len(frame) == len(sessions.examples())
        assert [list(map(int, s.split(" "))) for s in frame["item_id_list:token_seq"]] == prefixes
        assert frame["item_id:token"].astype(int).tolist() == labels
        ex = sessions.examples()
        assert frame["session_id:token"].astype(np.int64).tolist() == sessions.session_ids[ex.session_index].tolist()
    # no validation part: RecBole still needs three files; the valid file repeats the test file
    assert (tmp_path / "toy" / "toy.valid.inter").read_bytes() == (tmp_path / "toy" / "toy.test.inter").read_bytes()
    config = yaml.safe_load((tmp_path / "toy" / "toy.yaml").read_text())
    assert config["benchmark_filename"] == ["train", "valid", "test"]
    assert config["load_col"] == {"inter": ["session_id", "item_id_list", "item_id"], "item": ["item_id"]}
    assert config["alias_of_item_id"] == ["item_id_list"]
    assert config["USER_ID_FIELD"] == "session_id" and config["ITEM_ID_FIELD"] == "item_id"
    assert config["field_separator"] == "\t" and config["seq_separator"] == " "
    assert config["MAX_ITEM_LIST_LENGTH"] == 3 and config["dataset"] == "toy"
    assert "copy of the test" in (tmp_path / "toy" / "toy.yaml").read_text()


def test_recbole_with_validation(tmp_path: Path) -> None:
    split = make_split().with_validation(0.25)
    export_split(split, "recbole", tmp_path / "toy")
    prefixes, labels = examples_as_lists(split.valid)
    frame = read_inter(tmp_path / "toy" / "toy.valid.inter")
    assert frame["item_id:token"].astype(int).tolist() == labels == [10, 12, 11]
    assert len(read_inter(tmp_path / "toy" / "toy.train.inter")) == 3
    assert "copy of the test" not in (tmp_path / "toy" / "toy.yaml").read_text()


# ---------------------------------------------------------------------------- session-rec
def read_clicks(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"SessionId": np.int64, "ItemId": np.int64, "Time": np.int64})


def sessions_of(frame: pd.DataFrame) -> tuple[list[int], list[list[int]]]:
    """Sessions as session-rec sees them: grouped by SessionId, clicks ordered by Time."""
    frame = frame.sort_values(["SessionId", "Time"], kind="stable")
    grouped = frame.groupby("SessionId", sort=False)["ItemId"].apply(list)
    return grouped.index.tolist(), grouped.tolist()


def test_session_rec_files_round_trip(tmp_path: Path) -> None:
    split = make_split()
    files = export_split(split, "session-rec", tmp_path / "sr")
    assert [f.name for f in files] == ["toy_train_full.txt", "toy_test.txt"]
    for path, sessions in zip(files, (split.train, split.test)):
        assert path.read_text().splitlines()[0] == "SessionId\tItemId\tTime"
        frame = read_clicks(path)
        assert len(frame) == sessions.n_clicks
        ids, seqs = sessions_of(frame)
        order = np.argsort(sessions.session_ids, kind="stable")
        assert ids == sessions.session_ids[order].tolist()
        assert seqs == [sessions.to_lists()[i] for i in order]
        # Time: the session's timestamp plus the click's position
        first = frame.groupby("SessionId", sort=False)["Time"].min()
        assert first.loc[sessions.session_ids].tolist() == sessions.timestamps.tolist()
    assert read_clicks(files[0])["SessionId"].max() == 11000000000  # raw ids, not renumbered


def test_session_rec_with_validation(tmp_path: Path) -> None:
    split = make_split().with_validation(0.25)
    files = export_split(split, "session-rec", tmp_path / "sr")
    assert [f.name for f in files] == ["toy_train_full.txt", "toy_test.txt", "toy_train_tr.txt", "toy_train_valid.txt"]
    full = read_clicks(files[0])
    assert len(full) == make_split().train.n_clicks  # train_full = training + validation sessions
    assert sessions_of(read_clicks(files[3]))[1] == split.valid.to_lists()
    assert sessions_of(read_clicks(files[2]))[1] == split.train.to_lists()


# ---------------------------------------------------------------------------- all formats
def random_split(seed: int, n_sessions: int = 300, n_items: int = 50) -> Split:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 12, n_sessions)
    items = rng.integers(1, n_items + 1, int(lengths.sum()))
    ids = rng.choice(10**12, n_sessions, replace=False)
    sessions = SessionSet.from_lengths(items, lengths, np.sort(rng.integers(1.3e9, 1.5e9, n_sessions)), ids)
    train, test = sessions.subset(slice(0, 250)), sessions.subset(slice(250, None))
    return Split("rnd", train, test, n_items, np.arange(n_items + 1))


def export_bytes(split: Split, fmt: str, out: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in export_split(split, fmt, out)}


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_exports_are_deterministic_and_independent_of_chunking(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    split = random_split(0)
    out = "rnd.json" if fmt == "srgnn-json" else "rnd"
    first = export_bytes(split, fmt, tmp_path / "a" / out)
    assert first == export_bytes(split, fmt, tmp_path / "b" / out)
    monkeypatch.setattr(export, "_CHUNK", 3)  # many small chunks: boundaries inside sessions
    assert first == export_bytes(split, fmt, tmp_path / "c" / out)
    assert not [p for p in (tmp_path / "a").rglob(".*")]  # no temp files left


def test_recbole_and_json_agree_with_the_examples_on_random_data(tmp_path: Path) -> None:
    split = random_split(1)
    (path,) = export_split(split, "srgnn-json", tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert (data["train"]["sequences"], data["train"]["labels"]) == examples_as_lists(split.train)
    export_split(split, "recbole", tmp_path / "rb")
    frame = read_inter(tmp_path / "rb" / "rnd" / "rnd.test.inter")  # RecBole's <data_path>/<name>/ layout
    prefixes, labels = examples_as_lists(split.test)
    assert [list(map(int, s.split(" "))) for s in frame["item_id_list:token_seq"]] == prefixes


def test_item_numbers_beyond_the_lookup_table(tmp_path: Path) -> None:
    """Large item numbers take the generic text path; the output must not change shape."""
    big = 400_000
    train = SessionSet.from_lists([[big, 7, 131_072], [131_071, big - 1]], session_ids=[5, 6])
    test = SessionSet.from_lists([[7, big]], session_ids=[9])
    split = Split("big", train, test, big, np.arange(big + 1))
    (path,) = export_split(split, "srgnn-json", tmp_path / "b.json")
    data = json.loads(path.read_text())
    assert data["train"]["sequences"] == [[big, 7], [big], [131_071]]
    assert data["train"]["labels"] == [131_072, 7, big - 1]
    export_split(split, "recbole", tmp_path / "rb")
    assert (tmp_path / "rb" / "big" / "big.train.inter").read_text().splitlines()[1:] == [
        f"5\t{big} 7\t131072",
        f"5\t{big}\t7",
        f"6\t131071\t{big - 1}",
    ]


def test_render_matches_python_formatting() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate(
        [rng.integers(-(10**15), 10**15, 500), rng.integers(0, 200_000, 500), [0, -1, 9, 10, 2**63 - 1, -(2**62)]]
    )
    seps = rng.integers(0, len(export._SEPARATORS), len(values))
    expected = b"".join(str(v).encode() + export._SEPARATORS[s] for v, s in zip(values.tolist(), seps.tolist()))
    assert export._render(values, seps) == expected
    small = rng.integers(0, 1000, 300)
    assert export._render(small, np.zeros(300, int)) == ("".join(f"{v}," for v in small.tolist())).encode()


def test_bad_format_and_bad_out(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="recbole"):
        export_split(make_split(), "rebcole", tmp_path / "x")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError):
        export_split(make_split(), "session-rec", tmp_path / "file")


def test_two_click_logs_never_overwrite_each_others_exports(tmp_path: Path) -> None:
    from sessbench.cli import main

    rng = np.random.default_rng(1)
    out = tmp_path / "out"
    for folder in ("a", "b"):  # the same file name in two folders, different content
        rows = ["session_id,item_id,timestamp"]
        for s in range(200):
            rows += [f"{s},{int(rng.integers(1, 20))},{1_704_067_200 + s * 4_000 + t}" for t in range(3)]
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "log.csv").write_text("\n".join(rows) + "\n")
        for fmt in ("srgnn-json", "session-rec", "recbole", "item-map"):
            target = out if fmt != "srgnn-json" else out / "json"
            target.mkdir(parents=True, exist_ok=True)
            assert main(["--quiet", "data", "export", f"clicks:{tmp_path / folder / 'log.csv'}", "--cache-dir",
                         str(tmp_path / "cache"), "--format", fmt, "--out", str(target)]) == 0
    jsons = sorted(p.name for p in (out / "json").iterdir())
    assert len(jsons) == 2 and all(n.startswith("clicks-log-") for n in jsons)
    assert len(list(out.glob("clicks-log-*_test.txt"))) == 2
    assert len([p for p in out.iterdir() if p.is_dir() and p.name.startswith("clicks-log-")]) == 2  # recbole folders
    assert len(list(out.glob("clicks-log-*_items.tsv"))) == 2


def test_item_map_export(tmp_path: Path) -> None:
    (path,) = export_split(make_split(), "item-map", tmp_path)
    assert path.name == "toy_items.tsv"
    frame = pd.read_csv(path, sep="\t")
    assert list(frame.columns) == ["item", "raw_id"]
    assert frame["item"].tolist() == list(range(1, 13)) and frame["raw_id"].tolist() == list(range(1001, 1013))
    (named,) = export_split(make_split(), "item-map", tmp_path, name="other")
    assert named.name == "other_items.tsv"
