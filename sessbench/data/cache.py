"""On-disk cache of prepared splits.

Preparing a split from a 1.4 GB click log takes minutes, so the result is kept in a cache
directory (never beside the raw files, whose folder may be read-only). Each cache entry is one
directory named by `cache_key`:

    <cache_dir>/<key>/split.npz      the arrays (np.savez, loadable with allow_pickle=False)
    <cache_dir>/<key>/manifest.json  what was cached and how to verify it (written last)

Why it is safe to trust an entry:
* Entries are written into a temporary directory inside the cache dir, fsynced, and renamed
  into place in one step; the manifest is the last file written. A process killed while
  preparing leaves only a `.tmp-*` directory, which is never read (and swept after a day).
* `load_split` re-hashes every array against the manifest, so a truncated or corrupted file
  raises `CacheCorruptError`; `load_or_build` then logs a warning and rebuilds.
* An entry is stale (rebuilt) when the sessbench version, the cache format, the dataset
  parameters or a source file differ. Source files are compared by size and mtime first; the
  sha256 (stored at build time) is only recomputed when those differ, so a merely touched file
  costs one hash and no rebuild.

`Split.valid` is never cached: callers carve validation after loading (`Split.with_validation`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sessbench.atomic import json_default
from sessbench.faults import failpoint
from sessbench.data.sessions import SessionSet, Split
from sessbench.data.sources import sha256_file
from sessbench.errors import MissingDataError, SessbenchError

__all__ = [
    "CACHE_FORMAT",
    "CacheCorruptError",
    "cache_key",
    "default_cache_dir",
    "load_or_build",
    "load_split",
    "save_split",
    "source_fingerprint",
]

CACHE_FORMAT = 1  # bump when the on-disk layout changes: older entries then count as stale
ENV_VAR = "SESSBENCH_CACHE"
SPLIT_FILE = "split.npz"
MANIFEST_FILE = "manifest.json"
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"
_LEFTOVER_AGE_S = 24 * 3600  # a temp dir this old belongs to a killed writer
_SESSION_FIELDS = ("offsets", "items", "timestamps", "session_ids")

_log = logging.getLogger(__name__)


class CacheCorruptError(SessbenchError):
    """A cache entry whose files do not match its manifest (truncated, edited, half-written)."""


# ---------------------------------------------------------------------------- small helpers
def _version() -> str:
    # read at call time so that a version bump (or a test patching it) invalidates entries
    import sessbench

    return str(sessbench.__version__)


def _json_default(obj: Any) -> Any:
    """JSON for parameters and meta: the shared conversions, and text for anything else."""
    try:
        return json_default(obj)
    except TypeError:
        return str(obj)


def _canonical(obj: Any) -> str:
    """A stable text form, so that equal parameters compare and hash equal."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_roundtrip(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_json_default))


def _fsync_dir(path: Path) -> None:
    """Persist a directory's entries (renames); a no-op where the OS cannot open directories."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, default=_json_default)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def _array_sha256(arr: np.ndarray) -> str:
    """Hash of dtype, shape and bytes: a reinterpretation of the same bytes also mismatches."""
    arr = np.ascontiguousarray(arr)
    h = hashlib.sha256(f"{arr.dtype.str}|{arr.shape}|".encode())
    h.update(arr.reshape(-1).view(np.uint8))
    return h.hexdigest()


def _normalize_item_ids(item_ids: np.ndarray) -> np.ndarray:
    """item_ids as int64 or a fixed-width string array, both storable without pickle."""
    arr = np.asarray(item_ids)
    if arr.dtype.kind in "iu":
        return np.ascontiguousarray(arr, dtype=np.int64)
    if arr.dtype.kind in "US":
        return np.ascontiguousarray(arr)
    if arr.dtype.kind == "O":
        return np.ascontiguousarray(arr.astype(str))
    raise ValueError(f"item_ids must hold integers or strings, got dtype {arr.dtype}")


def _n_examples(lengths: np.ndarray) -> int:
    return int(np.maximum(lengths - 1, 0).sum())


# ---------------------------------------------------------------------------- public helpers
def default_cache_dir(cli_value: str | Path | None = None) -> Path:
    """The cache directory: --cache-dir, else $SESSBENCH_CACHE, else the user cache dir."""
    if cli_value not in (None, ""):
        return Path(cli_value).expanduser()
    env = os.environ.get(ENV_VAR, "")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("sessbench"))


def source_fingerprint(paths: list[Path]) -> list[dict]:
    """Per source file: name, size, mtime_ns and sha256 (streamed; raw files can be 1.4 GB)."""
    return _fingerprint([Path(p) for p in paths], stored=None, memo={})


def _fingerprint(paths: list[Path], stored: list[dict] | None, memo: dict) -> list[dict]:
    """Like `source_fingerprint`, but reuses a stored sha256 when size and mtime are unchanged
    and a hash computed earlier in the same call (`memo`), so each file is read at most once."""
    out = []
    for i, path in enumerate(paths):
        st = path.stat()
        old = stored[i] if stored is not None and i < len(stored) else None
        if (
            old is not None
            and old.get("name") == path.name
            and old.get("size") == st.st_size
            and old.get("mtime_ns") == st.st_mtime_ns
            and old.get("sha256")
        ):
            digest = old["sha256"]
        else:
            memo_key = (str(path), st.st_size, st.st_mtime_ns)
            if memo_key not in memo:
                memo[memo_key] = sha256_file(path)
            digest = memo[memo_key]
        out.append({"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest})
    return out


def cache_key(dataset: str, params: dict) -> str:
    """A readable, filesystem-safe entry name plus a short hash of (dataset, params).

    The sessbench version and source files are deliberately not part of the key: a change in
    them replaces the entry instead of piling up new ones.
    """
    slug = re.sub(r"[^a-z0-9._]+", "-", dataset.lower()).strip("-.") or "dataset"
    digest = hashlib.sha256(_canonical({"dataset": dataset, "params": params}).encode()).hexdigest()
    return f"{slug}-{digest[:8]}"


# ---------------------------------------------------------------------------- save / load
def _split_arrays(split: Split) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for part in ("train", "test"):
        sessions: SessionSet = getattr(split, part)
        for f in _SESSION_FIELDS:
            arrays[f"{part}_{f}"] = np.ascontiguousarray(getattr(sessions, f))
    arrays["item_ids"] = _normalize_item_ids(split.item_ids)
    if split.session_labels is not None:  # text session ids of a click log
        arrays["session_labels"] = np.asarray(split.session_labels, dtype=str)
    return arrays


def _counts(split: Split) -> dict[str, int]:
    counts = {"n_items": int(split.n_items)}
    for part in ("train", "test"):
        s: SessionSet = getattr(split, part)
        counts[f"{part}_sessions"] = int(s.n_sessions)
        counts[f"{part}_clicks"] = int(s.n_clicks)
        counts[f"{part}_examples"] = _n_examples(s.lengths)
    return counts


def _read_manifest(directory: Path) -> dict | None:
    """The manifest, or None when there is none or it cannot be parsed."""
    try:
        with open(directory / MANIFEST_FILE, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


_ABSENT = "<absent>"
_NO_MANIFEST = "<no manifest>"


def _identity(directory: Path) -> str:
    """Which entry currently sits at `directory`, to tell a concurrent writer's entry apart."""
    if not directory.exists():
        return _ABSENT
    manifest = _read_manifest(directory)
    if manifest is None:
        return _NO_MANIFEST
    return str(manifest.get("build_id", _NO_MANIFEST))


def save_split(split: Split, directory: Path, manifest: dict) -> None:
    """Write `split` as a cache entry at `directory`, atomically, replacing what is there.

    `manifest` holds the caller's fields (dataset, params, sources); the sessbench version,
    creation time, array checksums, counts and the split's meta are added here.
    """
    _save_split(split, Path(directory), manifest, replace_identity=None)


def _save_split(split: Split, directory: Path, manifest: dict, replace_identity: str | None) -> bool:
    """Write the entry; returns False when a concurrent writer's entry was kept instead.

    replace_identity: None replaces whatever is at `directory`; otherwise only the entry seen
    before building (that identity) is replaced, and an entry that appeared meanwhile is kept.
    """
    if split.valid is not None:
        raise ValueError("cache the un-carved split: Split.valid must be None (carve after loading)")
    directory.parent.mkdir(parents=True, exist_ok=True)
    arrays = _split_arrays(split)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{directory.name}-", dir=directory.parent))
    try:
        with open(tmp / SPLIT_FILE, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        failpoint("cache.before-manifest")
        full = {
            **manifest,
            "format": CACHE_FORMAT,
            "sessbench_version": _version(),
            "build_id": uuid.uuid4().hex,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "name": split.name,
            "n_items": int(split.n_items),
            "counts": _counts(split),
            "arrays": {
                k: {"sha256": _array_sha256(v), "dtype": v.dtype.str, "shape": list(v.shape)}
                for k, v in arrays.items()
            },
            "meta": _json_roundtrip(split.meta),
        }
        _write_json(tmp / MANIFEST_FILE, full)  # last: its presence marks a complete entry
        _fsync_dir(tmp)
        failpoint("cache.before-publish")
        return _publish(tmp, directory, replace_identity)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: Path, directory: Path, replace_identity: str | None) -> bool:
    """Rename the finished temp dir into place (one atomic step where nothing is there yet)."""
    try:
        os.rename(tmp, directory)
        _fsync_dir(directory.parent)
        return True
    except OSError:
        pass  # something is at `directory`
    if replace_identity is not None and _identity(directory) != replace_identity:
        return False  # a concurrent writer won the race: keep theirs
    trash = directory.parent / f"{_TRASH_PREFIX}{directory.name}-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(directory, trash)
    except FileNotFoundError:
        pass
    try:
        os.rename(tmp, directory)
        published = True
    except OSError:
        published = False  # lost a second race; theirs is as good as ours
    _fsync_dir(directory.parent)
    shutil.rmtree(trash, ignore_errors=True)
    return published


def load_split(directory: Path) -> Split:
    """Load a cache entry, verifying every array against the manifest's checksums.

    Raises CacheCorruptError when the manifest is missing or unreadable, or an array is
    missing, truncated or altered. The returned split has valid=None.
    """
    directory = Path(directory)
    manifest = _read_manifest(directory)
    if manifest is None:
        raise CacheCorruptError(
            f"{directory}: no readable {MANIFEST_FILE} (an incomplete or damaged cache entry). "
            "Delete the directory or rerun with --force to rebuild it."
        )
    if manifest.get("format") != CACHE_FORMAT:
        raise CacheCorruptError(
            f"{directory}: cache format {manifest.get('format')!r} is not {CACHE_FORMAT}. "
            "Rerun with --force to rebuild it."
        )
    expected: dict = manifest.get("arrays") or {}
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(directory / SPLIT_FILE, allow_pickle=False) as npz:
            if set(npz.files) != set(expected):
                raise CacheCorruptError(
                    f"{directory / SPLIT_FILE}: holds arrays {sorted(npz.files)}, manifest lists "
                    f"{sorted(expected)}. Rerun with --force to rebuild it."
                )
            for name in npz.files:
                arrays[name] = npz[name]
    except CacheCorruptError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise CacheCorruptError(
            f"{directory / SPLIT_FILE}: cannot be read ({type(exc).__name__}: {exc}); the file is "
            "truncated or damaged. Rerun with --force to rebuild it."
        ) from exc
    for name, arr in arrays.items():
        if _array_sha256(arr) != expected[name].get("sha256"):
            raise CacheCorruptError(
                f"{directory / SPLIT_FILE}: array '{name}' does not match its checksum in "
                f"{MANIFEST_FILE}. Rerun with --force to rebuild it."
            )
    try:
        parts = {
            part: SessionSet(**{f: arrays[f"{part}_{f}"] for f in _SESSION_FIELDS}) for part in ("train", "test")
        }
        split = Split(
            name=str(manifest["name"]),
            train=parts["train"],
            test=parts["test"],
            n_items=int(manifest["n_items"]),
            item_ids=arrays["item_ids"],
            valid=None,
            meta=manifest.get("meta") or {},
            session_labels=arrays.get("session_labels"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CacheCorruptError(f"{directory}: inconsistent cache entry ({exc}). Rerun with --force.") from exc
    if _counts(split) != manifest.get("counts"):
        raise CacheCorruptError(f"{directory}: counts differ from {MANIFEST_FILE}. Rerun with --force.")
    return split


# ---------------------------------------------------------------------------- load or build
def _stale_reason(
    manifest: dict, dataset: str, params: dict, sources: list[Path], memo: dict
) -> tuple[str | None, list[dict] | None]:
    """Why the entry must be rebuilt (None if fresh), and the refreshed source fingerprints."""
    if manifest.get("format") != CACHE_FORMAT:
        return f"cache format {manifest.get('format')!r} is not {CACHE_FORMAT}", None
    if manifest.get("sessbench_version") != _version():
        return f"built by sessbench {manifest.get('sessbench_version')}, this is {_version()}", None
    if manifest.get("dataset") != dataset or _canonical(manifest.get("params")) != _canonical(params):
        return "dataset parameters changed", None
    stored = manifest.get("sources")
    if not isinstance(stored, list) or [s.get("name") for s in stored] != [p.name for p in sources]:
        return "the list of source files changed", None
    refreshed = []
    for path, old in zip(sources, stored):
        st = path.stat()
        if st.st_size != old.get("size"):
            return f"source {path} changed size", None
        if st.st_mtime_ns == old.get("mtime_ns"):
            refreshed.append(old)
            continue
        memo_key = (str(path), st.st_size, st.st_mtime_ns)
        if memo_key not in memo:
            memo[memo_key] = sha256_file(path)
        if memo[memo_key] != old.get("sha256"):
            return f"source {path} changed content", None
        refreshed.append({**old, "mtime_ns": st.st_mtime_ns})  # touched, same bytes
    return None, refreshed


def _refresh_manifest(directory: Path, manifest: dict, sources: list[dict], logger: logging.Logger) -> None:
    """Record new mtimes of touched-but-identical sources, so they are not hashed every run."""
    tmp = directory / f"{MANIFEST_FILE}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        _write_json(tmp, {**manifest, "sources": sources})
        os.replace(tmp, directory / MANIFEST_FILE)
    except OSError as exc:  # best effort: a read-only cache still works, just hashes again
        logger.debug("could not refresh %s: %s", directory / MANIFEST_FILE, exc)
        tmp.unlink(missing_ok=True)


def _sweep_leftovers(cache_dir: Path) -> None:
    """Remove temp dirs of writers killed long ago and trash of interrupted replacements."""
    now = time.time()
    try:
        entries = list(cache_dir.iterdir())
    except OSError:
        return
    for entry in entries:
        try:
            if entry.name.startswith(_TRASH_PREFIX) or (
                entry.name.startswith(_TMP_PREFIX) and now - entry.stat().st_mtime > _LEFTOVER_AGE_S
            ):
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


def load_or_build(
    dataset: str,
    params: dict,
    sources: list[Path],
    build: Callable[[], Split],
    cache_dir: Path,
    force: bool = False,
    logger: logging.Logger | None = None,
    checksums: dict[str, str] | None = None,
) -> Split:
    """The cached split for (dataset, params) when it is fresh and intact, else `build()` it.

    checksums: sha256 of source files already computed by the caller (path -> hex), so a
    large raw file is not hashed twice.

    A fresh build is stored atomically for next time. The split returned is the same whether it
    was built or loaded: meta is JSON-normalised and stamped (unless the builder set them) with
    dataset, params, source checksums and sessbench version. Missing source files raise
    MissingDataError, since a cache cannot be checked against files that are gone.
    """
    logger = logger or _log
    sources = [Path(p) for p in sources]
    cache_dir = Path(cache_dir)
    missing = [p for p in sources if not p.is_file()]
    if missing:
        raise MissingDataError(
            f"source file {missing[0]} of dataset '{dataset}' not found. Put the raw file there "
            "(sessbench needs it to prepare the split and to check a cached one)."
        )
    key = cache_key(dataset, params)
    directory = cache_dir / key
    memo: dict = {}
    for path in sources:
        if checksums and str(path) in checksums:
            st = path.stat()
            memo[(str(path), st.st_size, st.st_mtime_ns)] = checksums[str(path)]
    seen = _identity(directory)
    manifest = _read_manifest(directory) if seen not in (_ABSENT, _NO_MANIFEST) else None

    if force:
        logger.info("rebuilding %s (forced)", key)
    elif seen == _NO_MANIFEST:
        logger.warning("ignoring incomplete cache entry %s (no readable manifest); rebuilding", directory)
    elif manifest is not None:
        reason, refreshed = _stale_reason(manifest, dataset, params, sources, memo)
        if reason is None:
            try:
                split = load_split(directory)
            except CacheCorruptError as exc:
                logger.warning("corrupt cache entry, rebuilding: %s", exc)
            else:
                if refreshed != manifest.get("sources"):
                    _refresh_manifest(directory, manifest, refreshed or [], logger)
                logger.info("using cached %s from %s", dataset, directory)
                return split
        else:
            logger.info("cache entry %s is stale (%s); rebuilding", key, reason)

    stored = manifest.get("sources") if manifest is not None else None
    fingerprints = _fingerprint(sources, stored if isinstance(stored, list) else None, memo)
    split = build()
    if split.valid is not None:
        raise ValueError(f"the builder of '{dataset}' must return the un-carved split (valid=None)")
    meta = dict(split.meta)
    meta.setdefault("dataset", dataset)
    meta.setdefault("params", params)
    meta.setdefault("sources", [{"name": f["name"], "size": f["size"], "sha256": f["sha256"]} for f in fingerprints])
    meta.setdefault("sessbench_version", _version())
    split = replace(split, item_ids=_normalize_item_ids(split.item_ids), meta=_json_roundtrip(meta))

    after = [(p.stat().st_size, p.stat().st_mtime_ns) for p in sources]
    if after != [(f["size"], f["mtime_ns"]) for f in fingerprints]:
        logger.warning("a source file of %s changed while it was prepared; not caching this split", dataset)
        return split
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _sweep_leftovers(cache_dir)
        written = _save_split(
            split,
            directory,
            {"dataset": dataset, "params": _json_roundtrip(params), "sources": fingerprints},
            replace_identity=None if force else seen,
        )
    except OSError as exc:
        logger.warning("could not write the cache entry %s (%s); continuing without cache", directory, exc)
        return split
    if written:
        logger.info("cached %s at %s", dataset, directory)
    else:
        logger.info("another process cached %s at %s meanwhile; keeping that entry", dataset, directory)
    return split
