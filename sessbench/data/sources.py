"""What a dataset is computed from, by content: the identity of runs and cache entries.

A dataset name is not an identity: `yoochoose64` may be prepared from a raw click file (the full
one or a sample, edited or not) or read from an official split, and a relative path means
another file from another folder. A `DataSource` names the kind of source and the sha256 of
every file it reads, plus the preparation parameters, and its `digest` is what run ids and
cache keys include. So `--resume` never reuses a record made from other data, and the cache
keeps one entry per source (switching `--data-dir` back and forth prepares each source once).

Hashing a 1.4 GB raw file takes seconds, so digests are remembered per file (absolute path,
size, mtime, inode) in `fingerprints.json` in the cache folder: a file is hashed again only when
one of those changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("sessbench.data")

#: how a dataset's data reaches sessbench
KIND_RAW = "raw"  # a raw click file, prepared by sessbench
KIND_OFFICIAL = "official-split"  # the official preprocessing's output (all_train_seq.txt / train.txt + test.txt)
KIND_SYNTHETIC = "synthetic"  # generated from parameters
KIND_IMPORTED = "imported"  # an official split imported into the cache (`data import-official`)
KIND_READY = "ready-split"  # a split another tool made, loaded as given (`split:DIR`)

FINGERPRINTS_FILE = ".fingerprints.json"  # hidden: not a cache entry
_HASH_CHUNK = 8 * 1024 * 1024


def canonical_json(obj: Any) -> str:
    """A stable text form: equal values give equal text (and equal hashes)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class SourceFile:
    """One file a dataset is read from."""

    name: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class DataSource:
    """The kind of a dataset's source, its files by content, and its preparation parameters.

    folder: where the files were found (for messages only: not part of the identity, so the
    same files elsewhere are the same source).
    """

    kind: str
    files: tuple[SourceFile, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    folder: str | None = None

    @property
    def digest(self) -> str:
        """12 hex digits of sha256 over kind, file names and contents, and parameters."""
        ident = {"kind": self.kind, "files": [[f.name, f.sha256] for f in self.files], "params": self.params}
        return hashlib.sha256(canonical_json(ident).encode()).hexdigest()[:12]

    def to_record(self) -> dict[str, Any]:
        """What a run record stores under `source`."""
        out: dict[str, Any] = {"kind": self.kind, "digest": self.digest, "files": [f.to_dict() for f in self.files]}
        if self.params:
            out["params"] = self.params
        return out

    def describe(self) -> str:
        """One line for messages: kind, files and the start of their checksums."""
        if not self.files:
            return f"{self.kind} (parameters {self.digest})" if self.params else self.kind
        files = ", ".join(f"{f.name} {f.sha256[:8]}" for f in self.files)
        return f"{self.kind}: {files}"


def sha256_file(path: Path) -> str:
    """The file's sha256, read in 8 MB chunks (raw click files reach 1.4 GB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class FingerprintMemo:
    """sha256 of files, remembered across processes by (path, size, mtime, inode).

    Best effort: a cache folder that cannot be written only means hashing again next time.
    """

    def __init__(self, cache_dir: Path | None) -> None:
        self.path = None if cache_dir is None else Path(cache_dir) / FINGERPRINTS_FILE
        self._entries: dict[str, dict[str, Any]] | None = None
        self._dirty = False

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            self._entries = {}
            if self.path is not None:
                try:
                    data = json.loads(self.path.read_text())
                    if isinstance(data, dict):
                        self._entries = {k: v for k, v in data.items() if isinstance(v, dict)}
                except (OSError, ValueError):
                    pass
        return self._entries

    def sha256(self, path: Path) -> SourceFile:
        """The file's name, size and sha256 (hashed only when it is new or changed)."""
        path = Path(path)
        st = path.stat()
        key = str(path.resolve())
        stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}
        entries = self._load()
        old = entries.get(key)
        if old is not None and all(old.get(k) == v for k, v in stamp.items()) and isinstance(old.get("sha256"), str):
            return SourceFile(path.name, st.st_size, old["sha256"])
        if st.st_size > 64 * 1024**2:
            log.info("computing the checksum of %s (%s MB; done once per file version)", path, f"{st.st_size / 2**20:,.0f}")
        digest = sha256_file(path)
        entries[key] = {**stamp, "sha256": digest}
        self._dirty = True
        return SourceFile(path.name, st.st_size, digest)

    def save(self) -> None:
        if not self._dirty or self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            merged = {}
            try:  # keep what other processes remembered meanwhile
                data = json.loads(self.path.read_text())
                if isinstance(data, dict):
                    merged.update(data)
            except (OSError, ValueError):
                pass
            merged.update(self._entries or {})
            tmp.write_text(json.dumps(merged, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError as exc:
            log.debug("could not remember file checksums in %s: %s", self.path, exc)
            try:
                tmp.unlink()
            except OSError:
                pass


def _hashed(memo: FingerprintMemo, path: Path) -> SourceFile:
    """The file's fingerprint; a file this process cannot read is a StorageError naming it."""
    from sessbench.storage import StorageError, describe_os_error, is_environment_error

    try:
        return memo.sha256(path)
    except OSError as exc:
        if not is_environment_error(exc):
            raise
        raise StorageError(describe_os_error(exc, "cannot read the data file", path)) from None


def file_source(kind: str, paths: list[Path], params: dict[str, Any], cache_dir: Path | None) -> DataSource:
    """A source made of files (raw or official split), hashed through the cache's memo."""
    memo = FingerprintMemo(cache_dir)
    try:
        files = tuple(_hashed(memo, p) for p in paths)
    finally:
        memo.save()
    folder = str(Path(paths[0]).parent) if paths else None
    return DataSource(kind, files, dict(params), folder)
