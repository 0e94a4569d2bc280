"""`sessbench data import-official`: the restricted unpickler, session reconstruction, official:NAME."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from sessbench.cli import main
from sessbench.data.official_import import (
    RestrictedUnpickler,
    import_official,
    load_imported,
    safe_load_pickle,
    sessions_from_prefixes,
)
from sessbench.data.registry import load_dataset, parse_dataset
from sessbench.data.sessions import SessionSet
from sessbench.errors import DataFormatError, SessbenchError
from sessbench.results import iter_records


def official_pairs(sessions: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """What the official preprocess.py writes for these sessions (longest prefix first)."""
    examples = SessionSet.from_lists(sessions).examples()
    seqs, labels = [], []
    for k in range(len(examples)):
        batch = examples.batch(np.array([k]))
        seqs.append(batch.items[0, : int(batch.lengths[0])].tolist())
        labels.append(int(examples.targets[k]))
    return seqs, labels


def write_official(folder: Path, train: list[list[int]], test: list[list[int]], protocol: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, sessions in (("train.txt", train), ("test.txt", test)):
        (folder / name).write_bytes(pickle.dumps(official_pairs(sessions), protocol=protocol))
    return folder


TRAIN = [[1, 2, 3, 4], [2, 5], [5, 1, 1, 2], [3, 3, 6]]
TEST = [[1, 2, 5], [6, 3]]


def test_pairs_match_the_official_order() -> None:
    seqs, labels = official_pairs([[1, 2, 3, 4]])
    assert seqs == [[1, 2, 3], [1, 2], [1]] and labels == [4, 3, 2]


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_sessions_are_reconstructed_exactly(tmp_path: Path, protocol: int) -> None:
    split = import_official(write_official(tmp_path / "o", TRAIN, TEST, protocol), "toy")
    assert split.train.to_lists() == TRAIN and split.test.to_lists() == TEST
    assert split.n_items == 6
    # the evaluation prefixes are exactly the file's pairs
    assert official_pairs(split.test.to_lists()) == official_pairs(TEST)


def test_a_cut_that_starts_inside_a_session(tmp_path: Path) -> None:
    """YOOCHOOSE 1/64 keeps the last pairs of the list, so the first session is partial."""
    seqs, labels = official_pairs(TRAIN)
    items, lengths = sessions_from_prefixes(seqs[2:], np.array(labels[2:]), tmp_path / "train.txt")
    assert lengths.tolist() == [2, 2, 4, 3]  # [1, 2] is what is left of [1, 2, 3, 4]
    assert items[:2].tolist() == [1, 2]


def test_n_items_option(tmp_path: Path) -> None:
    folder = write_official(tmp_path / "o", TRAIN, TEST)
    assert import_official(folder, "toy", n_items=10).n_items == 10
    with pytest.raises(SessbenchError, match="smaller than the largest item number 6"):
        import_official(folder, "toy", n_items=3)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Evaluates:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').write('x')",))


class Plain:
    """An ordinary class instance (BUILD of a global): still a global, still refused."""

    def __init__(self) -> None:
        self.value = [1, 2]


@pytest.mark.parametrize(
    "payload, words",
    [
        (lambda m: ([[1], [2]], [2, _Exploit(m)]), ["posix.system", "would run code", "nothing in it was executed"]),
        (lambda m: _Evaluates(m), ["builtins.eval"]),
        (lambda m: ([[1]], [Plain()]), ["Plain"]),
        (lambda m: ([[1]], np.array([2])), ["numpy"]),
    ],
    ids=["os.system", "eval", "a class instance", "a numpy array"],
)
def test_malicious_pickles_are_rejected_and_never_executed(tmp_path: Path, payload, words: list[str]) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "o"
    folder.mkdir()
    (folder / "train.txt").write_bytes(pickle.dumps(payload(marker)))
    (folder / "test.txt").write_bytes(pickle.dumps(official_pairs(TEST)))
    with pytest.raises(DataFormatError) as caught:
        import_official(folder, "evil")
    message = str(caught.value)
    assert "train.txt" in message
    for word in words:
        assert word in message, message
    assert not marker.exists()


def test_the_exploit_is_real(tmp_path: Path) -> None:
    """The same payload through the plain pickle module does run code: the rejection matters."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_Exploit(marker)))
    assert marker.exists()


@pytest.mark.parametrize(
    "obj, words",
    [
        ({"train": [[1]]}, ["expected a pair"]),
        (([[1], [2]], [2]), ["2 sequences but 1 labels"]),
        (([[1, "a"]], [2]), ["only integers"]),
        (([[1.5]], [2]), ["float"]),
        (([[1]], [True]), ["bool"]),
        (([[]], [2]), ["sequence 0 is empty"]),
        (([[1, 2], [3]], [3, 2]), ["does not continue"]),
        (([[0]], [1]), ["1 or more"]),
        (([[1, 2], [1], [4, 4]], [3, 2, 5]), ["its length-1 prefix"]),
        (([], []), ["no sequences"]),
    ],
)
def test_well_formed_but_wrong_data(tmp_path: Path, obj, words: list[str]) -> None:
    path = tmp_path / "train.txt"
    path.write_bytes(pickle.dumps(obj))
    (tmp_path / "test.txt").write_bytes(pickle.dumps(official_pairs(TEST)))
    with pytest.raises(DataFormatError) as caught:
        import_official(tmp_path, "bad")
    for word in words:
        assert word in str(caught.value)


def test_truncated_and_foreign_files(tmp_path: Path) -> None:
    data = pickle.dumps(official_pairs(TRAIN))
    for name, content, word in (
        ("truncated", data[: len(data) // 2], "not a readable pickle"),
        ("text", b"1,2,3\n4,5\n", "not a readable pickle"),
        ("empty", b"", "empty"),
    ):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "train.txt").write_bytes(content)
        (folder / "test.txt").write_bytes(pickle.dumps(official_pairs(TEST)))
        with pytest.raises(DataFormatError, match=word):
            import_official(folder, "x")
    with pytest.raises(SessbenchError, match="test.txt not found"):
        (tmp_path / "only").mkdir()
        (tmp_path / "only" / "train.txt").write_bytes(data)
        import_official(tmp_path / "only", "x")


def test_unpickler_refuses_globals_directly() -> None:
    import io

    with pytest.raises(pickle.UnpicklingError):
        RestrictedUnpickler(io.BytesIO(pickle.dumps(len))).load()
    assert safe_load_pickle(pickle.dumps(([[1, 2]], (3,))), "x") == ([[1, 2]], (3,))


def test_import_command_then_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_official(tmp_path / "mydata", TRAIN * 5, TEST * 3)
    cache = tmp_path / "cache"
    assert main(["data", "import-official", str(folder), "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "official:mydata" in out and "20 training sessions" in out
    split = load_imported("mydata", cache)  # checksummed cache entry
    assert split.train.to_lists() == TRAIN * 5
    runs = tmp_path / "runs"
    assert main(["--quiet", "run", "--models", "pop,s-pop", "--dataset", "official:mydata", "--cache-dir", str(cache),
                 "--runs-dir", str(runs)]) == 0
    records = list(iter_records(runs))
    assert {r["dataset"] for r in records} == {"official:mydata"} and all(r["status"] == "ok" for r in records)


@pytest.mark.parametrize(
    "dataset, key, folder",
    [
        ("yoochoose64", "train_yoochoose1_64", "yoochoose-sample"),
        ("yoochoose4", "train_yoochoose1_4", "yoochoose-sample"),
        ("diginetica", "train", "diginetica-sample"),
    ],
)
def test_official_files_give_our_prepared_split(shared_data: Path, tmp_path: Path, dataset: str, key: str, folder: str) -> None:
    """The official preprocessing's output (the parity file), imported, equals our preparation."""
    sample = shared_data / folder
    official = json.loads((sample / "official-split.json").read_text())
    files = tmp_path / dataset
    files.mkdir()
    (files / "train.txt").write_bytes(pickle.dumps((official[key]["sequences"], official[key]["labels"])))
    (files / "test.txt").write_bytes(pickle.dumps((official["test"]["sequences"], official["test"]["labels"])))
    imported = import_official(files, dataset, n_items=official["n_items"])
    ours = load_dataset(parse_dataset(dataset), sample, tmp_path / "cache").split
    assert imported.train.to_lists() == ours.train.to_lists()
    assert imported.test.to_lists() == ours.test.to_lists()
    assert imported.n_items == ours.n_items


def test_import_command_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data", "import-official", "--help"])
    assert exc.value.code == 0 and "restricted unpickler" in capsys.readouterr().out
