"""The published official-split layout as an input: the three layouts, the augmentation check,
n_items, bounded unpickling, and Table 1 on the paper's full splits (skipped without ../shared)."""

from __future__ import annotations

import hashlib
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from sessbench.cli import main
from sessbench.data.official_import import check_bounded, read_pickle_file
from sessbench.data.registry import compare_table1, dataset_stats, load_dataset, parse_dataset, resolve_source
from sessbench.errors import ConfigError, DataFormatError
from sessbench.results import iter_records
from test_official_import import official_pairs

TRAIN = [[1, 2, 3, 4], [2, 5], [5, 1, 1, 2], [3, 3, 6]]
TEST = [[1, 2, 5], [6, 3]]


def write_layout(folder: Path, files: tuple[str, ...], train: list[list[int]] = TRAIN, test: list[list[int]] = TEST,
                 augmented: list[list[int]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if "all_train_seq.txt" in files:
        (folder / "all_train_seq.txt").write_bytes(pickle.dumps(train))
    if "train.txt" in files:
        (folder / "train.txt").write_bytes(pickle.dumps(official_pairs(augmented or train)))
    (folder / "test.txt").write_bytes(pickle.dumps(official_pairs(test)))
    return folder


LAYOUTS = [("all_train_seq.txt",), ("train.txt",), ("all_train_seq.txt", "train.txt")]


@pytest.mark.parametrize("files", LAYOUTS, ids=["+".join(f) for f in LAYOUTS])
def test_each_published_layout_loads_the_same_split(tmp_path: Path, files: tuple[str, ...]) -> None:
    folder = write_layout(tmp_path / "yoochoose1_64", files)
    loaded = load_dataset(parse_dataset("yoochoose64"), folder, tmp_path / "cache")
    split = loaded.split
    assert split.train.to_lists() == TRAIN and split.test.to_lists() == TEST
    assert split.n_items == 37_483  # the official code's candidates, by default
    source = split.meta["source"]
    assert source["kind"] == "official-split"
    assert [f["name"] for f in source["files"]] == [f for f in ("all_train_seq.txt", "train.txt", "test.txt") if f in files or f == "test.txt"]
    for f in source["files"]:
        assert f["sha256"] == hashlib.sha256((folder / f["name"]).read_bytes()).hexdigest()


def test_the_conventional_subfolder_is_found_and_n_items_can_be_set(tmp_path: Path) -> None:
    write_layout(tmp_path / "splits" / "diginetica", ("all_train_seq.txt",))
    split = load_dataset(parse_dataset("diginetica:n_items=10"), tmp_path / "splits", tmp_path / "cache").split
    assert split.n_items == 10 and split.test.to_lists() == TEST
    with pytest.raises(Exception, match="smaller than the largest item number"):
        load_dataset(parse_dataset("diginetica:n_items=5"), tmp_path / "splits", tmp_path / "cache")


def test_n_items_is_refused_for_raw_data(tmp_path: Path) -> None:
    (tmp_path / "train-item-views.csv").write_text("session_id;user_id;item_id;timeframe;eventdate\n")
    with pytest.raises(ConfigError, match="n_items applies to an official split only"):
        resolve_source(parse_dataset("diginetica:n_items=10"), tmp_path, tmp_path / "cache")
    with pytest.raises(ConfigError, match="takes no parameters"):
        parse_dataset("yoochoose:n_items=10")


def test_all_three_files_must_agree(tmp_path: Path) -> None:
    other = [[1, 2, 3, 4], [2, 5], [5, 1, 6, 2], [3, 3, 6]]  # one item differs inside the third session
    folder = write_layout(tmp_path / "o", ("all_train_seq.txt", "train.txt"), augmented=other)
    with pytest.raises(DataFormatError, match=r"all_train_seq.txt and train.txt .* disagree from training prefix 4 "):
        load_dataset(parse_dataset("yoochoose64"), folder, tmp_path / "cache")
    short = write_layout(tmp_path / "s", ("all_train_seq.txt", "train.txt"), augmented=TRAIN[:3])
    with pytest.raises(DataFormatError, match="augment to 9 training prefixes, train.txt holds 7"):
        load_dataset(parse_dataset("yoochoose64"), short, tmp_path / "cache")


def test_the_cli_runs_an_official_split_and_records_its_source(tmp_path: Path) -> None:
    folder = write_layout(tmp_path / "yoochoose1_64", ("all_train_seq.txt",))
    runs = tmp_path / "runs"
    assert main(["--quiet", "run", "--models", "pop", "--dataset", "yoochoose64", "--data-dir", str(folder),
                 "--runs-dir", str(runs), "--cache-dir", str(tmp_path / "cache")]) == 0
    (rec,) = iter_records(runs)
    assert rec["source"]["kind"] == "official-split" and rec["source"]["digest"] in rec["run_id"] or rec["config"]["source"]
    assert rec["dataset_info"]["items"] == 37_483


# ---------------------------------------------------------------------------- bounded unpickling
def test_a_pickle_bomb_is_refused_quickly(tmp_path: Path) -> None:
    """A small file that references one list a million times would take minutes to walk."""
    inner = list(range(1000))
    bomb = tmp_path / "test.txt"
    bomb.write_bytes(pickle.dumps(([inner] * 100_000, [1] * 10)))  # ~200 kB on disk, 1e8 elements
    assert bomb.stat().st_size < 1_000_000
    start = time.perf_counter()
    with pytest.raises(DataFormatError, match="pickle bomb"):
        read_pickle_file(bomb)
    assert time.perf_counter() - start < 5


def test_too_deep_and_too_large_pickles_are_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.txt"
    deep.write_bytes(pickle.dumps(([[[1]]], [1])))
    with pytest.raises(DataFormatError, match="nests containers more than 3 deep"):
        read_pickle_file(deep)
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(DataFormatError, match="nests containers"):
        check_bounded(cyclic, deep, max_elements=100)
    big = tmp_path / "big.txt"
    big.write_bytes(pickle.dumps(([[1, 2]], [3])))
    with pytest.raises(DataFormatError, match="more than the 10 an official split"):
        read_pickle_file(big, max_bytes=10)


# ---------------------------------------------------------------------------- the paper's full splits
@pytest.mark.parametrize("dataset, folder", [("yoochoose64", "yoochoose1_64"), ("diginetica", "diginetica")])
def test_table1_of_the_official_splits(shared_data: Path, tmp_path: Path, dataset: str, folder: str) -> None:
    """Every count the paper's Table 1 gives is equal, but the YOOCHOOSE item count the paper copied
    from earlier work (explained), and the average length to its printed two decimals (DIGINETICA:
    5.1251 against a printed 5.12, explained)."""
    start = time.perf_counter()
    loaded = load_dataset(parse_dataset(dataset), shared_data / "official-splits", tmp_path / "cache", force=True)
    assert time.perf_counter() - start < 20
    rows = {r["key"]: r for r in compare_table1(loaded.request.definition, dataset_stats(loaded.split))}
    for key in ("clicks", "train_sequences", "test_sequences"):
        assert rows[key]["equal"] is True, rows[key]
    assert rows["items"]["equal"] is (dataset == "diginetica")
    assert rows["items"]["equal"] or "copied from earlier work" in rows["items"]["note"]
    assert abs(rows["average_length"]["ours"] - rows["average_length"]["paper"]) < 0.006
    assert rows["average_length"]["equal"] or rows["average_length"]["note"]
    sums = dict(line.split()[::-1] for line in (shared_data / "official-splits" / "SHA256SUMS").read_text().splitlines())
    for f in loaded.split.meta["source"]["files"]:
        assert sums[f"{folder}/{f['name']}"] == f["sha256"]


def test_an_official_split_under_another_datasets_name_is_refused(shared_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds the official split of Yoochoose 1/64"):
        load_dataset(parse_dataset("yoochoose4"), shared_data / "official-splits" / "yoochoose1_64", tmp_path / "c")


def test_data_stats_prints_table1_beside_the_papers(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quiet", "data", "stats", "diginetica", "--data-dir", str(shared_data / "official-splits"),
                 "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "official-split" in out and "719,470" in out and "60,858" in out and "43,097" in out
    assert out.count(" yes ") >= 4
    assert np.isclose(float(out.split("average length")[1].split()[0]), 5.13)
