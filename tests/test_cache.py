"""The split cache: round trips, staleness, corruption, interrupted writes, cache location."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest

import sessbench
from sessbench.data import cache
from sessbench.data.cache import (
    CacheCorruptError,
    cache_key,
    default_cache_dir,
    load_or_build,
    load_split,
    save_split,
    source_fingerprint,
)
from sessbench.data.sessions import SessionSet, Split
from sessbench.errors import MissingDataError, SessbenchError

LOG = logging.getLogger("test_cache")


def make_split(string_ids: bool = False, name: str = "toy") -> Split:
    train = SessionSet.from_lists(
        [[1, 2, 3], [2, 4], [5, 1, 1, 2], [3]], timestamps=[10, 20, 30, 40], session_ids=[101, 102, 103, 104]
    )
    test = SessionSet.from_lists([[1, 5], [4, 2, 3]], timestamps=[50, 60], session_ids=[201, 202])
    if string_ids:
        item_ids = np.array(["", "a", "bb", "ccc", "d-4", "é5"])
    else:
        item_ids = np.array([0, 9001, 9002, 9003, 9004, 9005], dtype=np.int64)
    return Split(name, train, test, 5, item_ids, meta={"note": "hand-built", "k": np.int64(3)})


class Builder:
    """A build() that counts its calls."""

    def __init__(self, split: Split) -> None:
        self.split = split
        self.calls = 0

    def __call__(self) -> Split:
        self.calls += 1
        return self.split


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    path = raw / "clicks.dat"
    path.write_bytes(b"1,2014-04-01T10:00:00.000Z,214536502,0\n" * 100)
    return path


def assert_same_split(a: Split, b: Split) -> None:
    assert a.name == b.name and a.n_items == b.n_items
    for part in ("train", "test"):
        x, y = getattr(a, part), getattr(b, part)
        for field in ("offsets", "items", "timestamps", "session_ids"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field))
            assert getattr(x, field).dtype == getattr(y, field).dtype
    np.testing.assert_array_equal(a.item_ids, b.item_ids)
    assert a.item_ids.dtype == b.item_ids.dtype
    assert a.valid is None and b.valid is None


def entry(cache_dir: Path, params: dict | None = None) -> Path:
    return cache_dir / cache_key("toy", params if params is not None else {"a": 1})


# ---------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("string_ids", [False, True])
def test_round_trip(tmp_path: Path, source: Path, string_ids: bool) -> None:
    split = make_split(string_ids)
    build = Builder(split)
    built = load_or_build("toy", {"a": 1}, [source], build, tmp_path / "cache", logger=LOG)
    loaded = load_or_build("toy", {"a": 1}, [source], build, tmp_path / "cache", logger=LOG)
    assert build.calls == 1
    assert_same_split(built, split)
    assert_same_split(loaded, split)
    assert loaded.item_ids.dtype.kind == ("U" if string_ids else "i")
    # the caller sees the same split whether it was built or loaded
    assert built.meta == loaded.meta
    assert loaded.meta["note"] == "hand-built" and loaded.meta["k"] == 3
    assert loaded.meta["dataset"] == "toy" and loaded.meta["params"] == {"a": 1}
    assert loaded.meta["sessbench_version"] == sessbench.__version__
    assert loaded.meta["sources"][0]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()


def test_entry_layout_is_pickle_free_npz_plus_manifest(tmp_path: Path, source: Path) -> None:
    load_or_build("toy", {"a": 1}, [source], Builder(make_split(True)), tmp_path / "c", logger=LOG)
    directory = entry(tmp_path / "c")
    assert sorted(p.name for p in directory.iterdir()) == ["manifest.json", "split.npz"]
    with np.load(directory / "split.npz", allow_pickle=False) as npz:
        assert npz["item_ids"].dtype.kind == "U"
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["sessbench_version"] == sessbench.__version__
    assert manifest["dataset"] == "toy" and manifest["params"] == {"a": 1}
    assert manifest["sources"][0].keys() >= {"name", "size", "mtime_ns", "sha256"}
    assert manifest["counts"]["train_examples"] == 2 + 1 + 3 + 0
    assert set(manifest["arrays"]) == {
        f"{p}_{f}" for p in ("train", "test") for f in ("offsets", "items", "timestamps", "session_ids")
    } | {"item_ids"}
    assert "created_at" in manifest


def test_save_and_load_split_directly(tmp_path: Path) -> None:
    split = make_split()
    save_split(split, tmp_path / "entry", {"dataset": "toy"})
    assert_same_split(load_split(tmp_path / "entry"), split)
    save_split(split, tmp_path / "entry", {"dataset": "toy"})  # replaces an existing entry
    assert_same_split(load_split(tmp_path / "entry"), split)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_object_item_ids_are_stored_as_strings(tmp_path: Path, source: Path) -> None:
    split = make_split(True)
    split = Split(split.name, split.train, split.test, split.n_items, split.item_ids.astype(object))
    built = load_or_build("toy", {"a": 1}, [source], Builder(split), tmp_path / "c", logger=LOG)
    loaded = load_split(entry(tmp_path / "c"))
    assert built.item_ids.dtype.kind == loaded.item_ids.dtype.kind == "U"
    np.testing.assert_array_equal(loaded.item_ids, make_split(True).item_ids)


def test_valid_is_never_cached(tmp_path: Path) -> None:
    carved = make_split().with_validation(0.5)
    with pytest.raises(ValueError, match="un-carved"):
        save_split(carved, tmp_path / "entry", {})


# ---------------------------------------------------------------------------- staleness
def test_param_change_builds_a_new_entry(tmp_path: Path, source: Path) -> None:
    build = Builder(make_split())
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    load_or_build("toy", {"a": 2}, [source], build, tmp_path / "c", logger=LOG)
    assert build.calls == 2
    assert entry(tmp_path / "c", {"a": 1}).is_dir() and entry(tmp_path / "c", {"a": 2}).is_dir()


def test_params_in_manifest_differing_from_key_count_as_stale(tmp_path: Path, source: Path) -> None:
    build = Builder(make_split())
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    path = entry(tmp_path / "c") / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["params"] = {"a": 99}
    path.write_text(json.dumps(manifest))
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    assert build.calls == 2
    assert json.loads(path.read_text())["params"] == {"a": 1}


def test_version_change_is_stale(tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = Builder(make_split())
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    monkeypatch.setattr(sessbench, "__version__", "99.0.0")
    split = load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    assert build.calls == 2
    assert split.meta["sessbench_version"] == "99.0.0"
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    assert build.calls == 2


def test_source_content_change_is_stale(tmp_path: Path, source: Path) -> None:
    build = Builder(make_split())
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    data = bytearray(source.read_bytes())
    data[5] ^= 1  # same size, different bytes
    stat = source.stat()
    source.write_bytes(bytes(data))
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    assert build.calls == 2


def test_source_size_change_is_stale(tmp_path: Path, source: Path) -> None:
    build = Builder(make_split())
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    with open(source, "ab") as f:
        f.write(b"2,2014-04-01T10:00:00.000Z,214536503,0\n")
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    assert build.calls == 2


def test_touched_source_is_hashed_once_not_rebuilt(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[Path] = []
    real = cache.sha256_file
    monkeypatch.setattr(cache, "sha256_file", lambda p: hashed.append(p) or real(p))
    build = Builder(make_split())
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    assert len(hashed) == 1  # first build hashes
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    assert len(hashed) == 1  # unchanged size + mtime: no hashing
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 7_000_000_000))
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    assert build.calls == 1 and len(hashed) == 2  # same bytes: hashed, not rebuilt
    manifest = json.loads((entry(tmp_path / "c") / "manifest.json").read_text())
    assert manifest["sources"][0]["mtime_ns"] == source.stat().st_mtime_ns
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    assert len(hashed) == 2  # the new mtime was recorded


def test_changed_list_of_sources_is_stale(tmp_path: Path, source: Path) -> None:
    other = source.with_name("buys.dat")
    other.write_bytes(b"x\n")
    build = Builder(make_split())
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    load_or_build("toy", {"a": 1}, [source, other], build, tmp_path / "c", logger=LOG)
    assert build.calls == 2


def test_force_rebuilds(tmp_path: Path, source: Path) -> None:
    build = Builder(make_split())
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    first = json.loads((entry(tmp_path / "c") / "manifest.json").read_text())["build_id"]
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", force=True, logger=LOG)
    assert build.calls == 2
    assert json.loads((entry(tmp_path / "c") / "manifest.json").read_text())["build_id"] != first


def test_missing_source_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match="not found"):
        load_or_build("toy", {}, [tmp_path / "nope.dat"], Builder(make_split()), tmp_path / "c", logger=LOG)


# ---------------------------------------------------------------------------- corruption
def corrupt_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", [corrupt_middle, truncate], ids=["flipped-byte", "truncated"])
def test_damaged_npz_is_detected_and_rebuilt(
    tmp_path: Path, source: Path, damage, caplog: pytest.LogCaptureFixture
) -> None:
    split = make_split()
    build = Builder(split)
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    npz = entry(tmp_path / "c") / "split.npz"
    damage(npz)
    with pytest.raises(CacheCorruptError):
        load_split(entry(tmp_path / "c"))
    assert issubclass(CacheCorruptError, SessbenchError)
    with caplog.at_level(logging.WARNING, logger="test_cache"):
        again = load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    assert build.calls == 2
    assert any("corrupt" in r.message for r in caplog.records if r.levelno == logging.WARNING)
    assert_same_split(again, split)
    assert_same_split(load_split(entry(tmp_path / "c")), split)  # the entry was repaired


def test_checksum_mismatch_in_manifest_is_detected(tmp_path: Path) -> None:
    save_split(make_split(), tmp_path / "e", {})
    path = tmp_path / "e" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["arrays"]["train_items"]["sha256"] = "0" * 64
    path.write_text(json.dumps(manifest))
    with pytest.raises(CacheCorruptError, match="train_items"):
        load_split(tmp_path / "e")


def test_unreadable_manifest_is_rebuilt(tmp_path: Path, source: Path) -> None:
    build = Builder(make_split())
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    (entry(tmp_path / "c") / "manifest.json").write_text('{"format": 1, "arra')
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    assert build.calls == 2
    load_split(entry(tmp_path / "c"))


# ---------------------------------------------------------------------------- interrupted writes
def test_entry_without_manifest_is_ignored_and_replaced(tmp_path: Path, source: Path) -> None:
    directory = entry(tmp_path / "c")
    directory.mkdir(parents=True)
    np.savez(directory / "split.npz", junk=np.arange(3))  # as if the manifest never got written
    with pytest.raises(CacheCorruptError):
        load_split(directory)
    build = Builder(make_split())
    split = load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    assert build.calls == 1
    assert_same_split(load_split(directory), split)


def test_killed_writer_leaves_nothing_trusted(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die(path: Path, obj: object) -> None:
        raise KeyboardInterrupt  # killed right before the manifest is written

    monkeypatch.setattr(cache, "_write_json", die)
    with pytest.raises(KeyboardInterrupt):
        load_or_build("toy", {"a": 1}, [source], Builder(make_split()), tmp_path / "c", logger=LOG)
    assert not entry(tmp_path / "c").exists()
    monkeypatch.undo()
    # a hard kill leaves its temp dir behind: it is never read, and a fresh build proceeds
    leftover = tmp_path / "c" / f".tmp-{entry(tmp_path / 'c').name}-dead"
    leftover.mkdir()
    np.savez(leftover / "split.npz", junk=np.arange(3))
    build = Builder(make_split())
    load_or_build("toy", {"a": 1}, [source], build, tmp_path / "c", logger=LOG)
    assert build.calls == 1
    assert leftover.exists()  # young: might belong to a live writer
    old = time.time() - 2 * 24 * 3600
    os.utime(leftover, (old, old))
    load_or_build("toy", {"a": 2}, [source], build, tmp_path / "c", logger=LOG)
    assert not leftover.exists()  # swept once clearly abandoned


def test_concurrent_writer_that_won_is_kept(tmp_path: Path, source: Path) -> None:
    cache_dir = tmp_path / "c"
    theirs = make_split()

    def build_while_another_process_publishes() -> Split:
        fields = {"dataset": "toy", "params": {"a": 1}, "sources": source_fingerprint([source])}
        save_split(theirs, entry(cache_dir), fields)
        return make_split()

    load_or_build("toy", {"a": 1}, [source], build_while_another_process_publishes, cache_dir, logger=LOG)
    manifest = json.loads((entry(cache_dir) / "manifest.json").read_text())
    assert manifest["meta"] == {"note": "hand-built", "k": 3}  # theirs (ours would carry dataset etc.)
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".")]


def test_unwritable_cache_still_returns_the_split(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> bool:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "_save_split", fail)
    split = load_or_build("toy", {"a": 1}, [source], Builder(make_split()), tmp_path / "c", logger=LOG)
    assert_same_split(split, make_split())


# ---------------------------------------------------------------------------- keys and location
def test_cache_key_is_readable_stable_and_param_sensitive() -> None:
    key = cache_key("YooChoose 1/64", {"b": 2, "a": [1, 2]})
    assert key.startswith("yoochoose-1-64-") and len(key.rsplit("-", 1)[1]) == 8
    assert key == cache_key("YooChoose 1/64", {"a": (1, 2), "b": 2})
    assert key != cache_key("YooChoose 1/64", {"a": [1, 2], "b": 3})
    assert cache_key("yoochoose64", {}) != cache_key("diginetica", {})


def test_source_fingerprint(source: Path) -> None:
    (fp,) = source_fingerprint([source])
    stat = source.stat()
    assert fp == {
        "name": "clicks.dat",
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
    }


def test_default_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSBENCH_CACHE", str(tmp_path / "from-env"))
    assert default_cache_dir() == tmp_path / "from-env"
    assert default_cache_dir(tmp_path / "cli") == tmp_path / "cli"
    assert default_cache_dir(str(tmp_path / "cli")) == tmp_path / "cli"
    monkeypatch.delenv("SESSBENCH_CACHE")
    import platformdirs

    assert default_cache_dir() == Path(platformdirs.user_cache_dir("sessbench"))


def test_env_cache_dir_is_used_by_callers(tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSBENCH_CACHE", str(tmp_path / "env-cache"))
    load_or_build("toy", {"a": 1}, [source], Builder(make_split()), default_cache_dir(), logger=LOG)
    assert (entry(tmp_path / "env-cache") / "manifest.json").is_file()
    assert not any(p.name != "clicks.dat" for p in source.parent.iterdir())  # nothing beside raw files
