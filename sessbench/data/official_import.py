"""Import the official SR-GNN `train.txt` / `test.txt` pickles, safely, as a dataset.

Users who already ran the official `datasets/preprocess.py` have its output: `train.txt` and
`test.txt`, each a pickle of `(sequences, labels)`, every (prefix -> next item) pair of the
augmented training list or test set. Unpickling runs whatever code a pickle names, so a pickle
from a download, a colleague or a shared drive must never go through `pickle.load`. These files
are read with `RestrictedUnpickler`, which refuses every global reference (the only way a pickle
can call code: `os.system`, `builtins.eval`, any class), and the result is then checked to be
made of lists, tuples and integers only. Anything else raises `DataFormatError` naming the
file and what it tried to load; nothing in it is executed.

The pairs are turned back into sessions: the official augmentation writes each session
[i1..in] as ([i1..in-1] -> in), ..., ([i1] -> i2), longest first, so a run of prefixes whose
lengths fall by one down to 1 is one session (the YOOCHOOSE 1/64 and 1/4 cuts start inside a
session; its remaining prefixes make the same, shorter, session). Sessions keep file order,
which is the official time order, so `--validation-fraction` carves the latest ones as usual.

`sessbench data import-official DIR --name NAME` stores the result as a checksummed entry of
the prepared-data cache (`official-NAME`), and `--dataset official:NAME` runs on it.

The published layout of the SR-GNN family of repositories is read directly too (`--dataset
yoochoose64 --data-dir DIR` where DIR holds it, see `find_official_split`): `all_train_seq.txt`
(the training sessions themselves, a pickle of a list of item lists) with `test.txt`, or
`train.txt` with `test.txt`, or all three, in which case the official augmentation of the
sessions must equal `train.txt` exactly (`check_augmentation`).

Every pickle is bounded before anything walks it: files above `MAX_PICKLE_BYTES` are refused
unread, nesting deeper than the layout needs is refused, and a walk that meets more elements
than the file's bytes could hold without shared references (a "pickle bomb", where a small file
references one big list many times) stops at that budget with an error.
"""

from __future__ import annotations

import io
import itertools
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sessbench.data.cache import CacheCorruptError, _read_manifest, load_split, save_split, source_fingerprint
from sessbench.data.sessions import SessionSet, Split
from sessbench.errors import DataFormatError, MissingDataError, SessbenchError

if TYPE_CHECKING:
    from sessbench.data.sources import DataSource

TRAIN_FILE = "train.txt"
TEST_FILE = "test.txt"
SESSIONS_FILE = "all_train_seq.txt"
ENTRY_PREFIX = "official-"
#: the largest pickle read (the official YOOCHOOSE 1/4 train.txt is a few hundred MB)
MAX_PICKLE_BYTES = 4 * 1024**3
#: containers above the integers: (sequences, labels) -> sequences -> one sequence
MAX_PICKLE_DEPTH = 3
_FIX = (
    "Pass the folder holding train.txt and test.txt as written by the official SR-GNN "
    "datasets/preprocess.py (pickles of (sequences, labels) made of lists and integers)"
)


class ForbiddenPickleError(pickle.UnpicklingError):
    """A pickle that refers to a global (a function or class): it could run code when loaded."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that admits no globals at all, so loading can never call code.

    Lists, tuples, integers (and the other plain values pickle encodes without globals) are
    built by opcodes alone; every reference to a callable, class or extension goes through
    `find_class`, which refuses it. `persistent_load` is refused likewise.
    """

    def find_class(self, module: str, name: str) -> Any:
        raise ForbiddenPickleError(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise ForbiddenPickleError(f"persistent id {pid!r}")


def safe_load_pickle(data: bytes, path: str | Path) -> Any:
    """Unpickle `data` with `RestrictedUnpickler`; errors name `path`."""
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except ForbiddenPickleError as exc:
        raise DataFormatError(
            path,
            f"the pickle refers to '{exc}', which would run code when loaded; only lists, tuples and "
            "integers are accepted, so it was rejected and nothing in it was executed",
            "Use the train.txt/test.txt the official preprocessing wrote, from a source you trust",
        ) from None
    except RecursionError:
        raise DataFormatError(path, "the pickle is nested too deeply", _FIX) from None
    except MemoryError:
        raise DataFormatError(path, "the pickle asks for more memory than this machine has", _FIX) from None
    except Exception as exc:  # noqa: BLE001 - any malformed pickle is a data error
        raise DataFormatError(
            path, f"not a readable pickle ({type(exc).__name__}: {str(exc)[:200]})", _FIX
        ) from None


def read_pickle_file(path: Path, max_bytes: int = MAX_PICKLE_BYTES) -> Any:
    """A pickle file read with the restricted unpickler, refused unread when above `max_bytes`."""
    if not path.is_file():
        raise MissingDataError(f"{path.name} not found in {path.parent}. {_FIX}.")
    size = path.stat().st_size
    if size > max_bytes:
        raise DataFormatError(
            path, f"the file has {size:,} bytes, more than the {max_bytes:,} an official split's pickle "
            "can need", _FIX,
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(path, f"cannot be read ({exc.strerror or exc})", "Check the file's permissions") from None
    if not data:
        raise DataFormatError(path, "the file is empty", _FIX)
    obj = safe_load_pickle(data, path)
    check_bounded(obj, path, max_elements=2 * len(data) + 16)
    return obj


def check_bounded(obj: Any, path: Path, max_elements: int, max_depth: int = MAX_PICKLE_DEPTH) -> None:
    """Walk `obj` (iteratively) and refuse it when it nests deeper than `max_depth` containers or
    holds more than `max_elements` elements in all.

    A pickle without shared references needs at least one byte per element, so a legitimate
    file never exceeds twice its size; a file that does references the same containers over and
    over (a pickle bomb), and walking it would take minutes or more.
    """
    count = 0
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, (list, tuple)):
            continue
        if depth >= max_depth:
            raise DataFormatError(
                path, f"the pickle nests containers more than {max_depth} deep; an official split is "
                "(sequences, labels) of integer lists", _FIX,
            )
        count += len(node)
        if count > max_elements:
            raise DataFormatError(
                path, f"the pickle expands to more than {max_elements:,} elements, more than its size "
                "allows without repeated references (a pickle bomb?); it was not read further", _FIX,
            )
        if depth + 1 < max_depth:
            stack.extend((child, depth + 1) for child in node if isinstance(child, (list, tuple)))
        elif any(isinstance(child, (list, tuple)) for child in node):
            raise DataFormatError(
                path, f"the pickle nests containers more than {max_depth} deep; an official split is "
                "(sequences, labels) of integer lists", _FIX,
            )


def _check_pairs(obj: Any, path: Path) -> tuple[list[Any], np.ndarray]:
    """(sequences, labels) from the unpickled object, checked to be lists/tuples of integers."""
    if not isinstance(obj, (list, tuple)) or len(obj) != 2:
        raise DataFormatError(
            path, f"expected a pair (sequences, labels), found {type(obj).__name__}"
            + (f" of length {len(obj)}" if isinstance(obj, (list, tuple)) else ""), _FIX,
        )
    sequences, labels = obj
    for what, value in (("sequences", sequences), ("labels", labels)):
        if not isinstance(value, (list, tuple)):
            raise DataFormatError(path, f"{what} is a {type(value).__name__}, not a list", _FIX)
    if len(sequences) != len(labels):
        raise DataFormatError(
            path, f"{len(sequences):,} sequences but {len(labels):,} labels (one label per sequence)", _FIX
        )
    if not sequences:
        raise DataFormatError(path, "the file holds no sequences", _FIX)
    outer = set(map(type, sequences))
    if not outer <= {list, tuple}:
        bad = next(i for i, s in enumerate(sequences) if type(s) not in (list, tuple))
        raise DataFormatError(
            path, f"sequence {bad} is a {type(sequences[bad]).__name__}; only lists of integers are accepted", _FIX
        )
    for what, values in (("an item in the sequences", itertools.chain.from_iterable(sequences)), ("a label", labels)):
        kinds = set(map(type, values))
        if not kinds <= {int}:
            names = ", ".join(sorted(k.__name__ for k in kinds - {int}))
            raise DataFormatError(path, f"{what} is a {names}; only integers are accepted", _FIX)
    return list(sequences), np.asarray(labels, dtype=np.int64)


def sessions_from_prefixes(sequences: list[Any], labels: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(items, session lengths) of the sessions whose official augmentation gives these pairs."""
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    if (lengths < 1).any():
        k = int(np.flatnonzero(lengths < 1)[0])
        raise DataFormatError(path, f"sequence {k} is empty (every prefix holds at least one item)", _FIX)
    flat = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum()))
    if (flat < 1).any() or (labels < 1).any():
        raise DataFormatError(path, "item numbers must be 1 or more (0 is padding)", _FIX)
    starts = np.cumsum(lengths) - lengths
    n = len(lengths)
    first = np.ones(n, dtype=bool)
    first[1:] = lengths[:-1] == 1  # a session's prefixes fall by one down to length 1
    follows = ~first
    broken = follows & (lengths != np.roll(lengths, 1) - 1)
    # the pair after ([i1..im] -> x) is ([i1..im-1] -> im): its label is the previous prefix's last item
    broken |= follows & (labels != np.roll(flat[starts + lengths - 1], 1))
    pairs = np.flatnonzero(follows & ~broken)
    if len(pairs):  # ... and its items are the previous prefix's first m-1 items
        sizes = lengths[pairs]
        offsets = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        mismatch = flat[np.repeat(starts[pairs], sizes) + offsets] != flat[np.repeat(starts[pairs - 1], sizes) + offsets]
        bad_pairs = np.zeros(len(pairs), dtype=bool)
        np.logical_or.at(bad_pairs, np.repeat(np.arange(len(pairs)), sizes), mismatch)
        broken[pairs[bad_pairs]] = True
    if broken.any():
        k = int(np.flatnonzero(broken)[0])
        raise DataFormatError(
            path,
            f"sequence {k} does not continue sequence {k - 1} the way the official augmentation writes a "
            "session (each prefix one item shorter, its label the item dropped, down to length 1)",
            _FIX,
        )
    if lengths[-1] != 1:
        raise DataFormatError(
            path,
            f"the last sequence ({n - 1}) has length {int(lengths[-1])}, but the official augmentation ends "
            "every session with its length-1 prefix",
            _FIX,
        )
    heads = np.flatnonzero(first)
    session_lengths = lengths[heads] + 1
    ends = np.cumsum(session_lengths)
    items = np.empty(int(ends[-1]), dtype=np.int64)
    offsets = np.arange(int(lengths[heads].sum())) - np.repeat(np.cumsum(lengths[heads]) - lengths[heads], lengths[heads])
    items[np.repeat(ends - session_lengths, lengths[heads]) + offsets] = flat[np.repeat(starts[heads], lengths[heads]) + offsets]
    items[ends - 1] = labels[heads]
    return items, session_lengths


def read_official_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Items and session lengths from one official pickle of (prefix, label) pairs."""
    sequences, labels = _check_pairs(read_pickle_file(path), path)
    return sessions_from_prefixes(sequences, labels, path)


def read_pairs_file(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat prefix items, prefix lengths, labels) of an official pickle of pairs, in file order."""
    sequences, labels = _check_pairs(read_pickle_file(path), path)
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    flat = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum()))
    return flat, lengths, labels


def read_sessions_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Items and lengths of `all_train_seq.txt`: a pickle of the list of training sessions."""
    fix = "all_train_seq.txt must be a pickle of a list of sessions, each a list of item numbers"
    obj = read_pickle_file(path)
    if not isinstance(obj, (list, tuple)) or not obj:
        raise DataFormatError(path, f"expected a non-empty list of sessions, found {type(obj).__name__}", fix)
    bad = next((i for i, s in enumerate(obj) if type(s) not in (list, tuple)), None)
    if bad is not None:
        raise DataFormatError(path, f"session {bad} is a {type(obj[bad]).__name__}, not a list of items", fix)
    kinds = set(map(type, itertools.chain.from_iterable(obj)))
    if not kinds <= {int}:
        names = ", ".join(sorted(k.__name__ for k in kinds - {int}))
        raise DataFormatError(path, f"an item is a {names}; only integers are accepted", fix)
    lengths = np.fromiter(map(len, obj), dtype=np.int64, count=len(obj))
    items = np.fromiter(itertools.chain.from_iterable(obj), dtype=np.int64, count=int(lengths.sum()))
    if (lengths < 1).any():
        raise DataFormatError(path, f"session {int(np.flatnonzero(lengths < 1)[0])} is empty", fix)
    if (items < 1).any():
        raise DataFormatError(path, "item numbers must be 1 or more (0 is padding)", fix)
    return items, lengths


def check_augmentation(items: np.ndarray, lengths: np.ndarray, train_path: Path, sessions_path: Path) -> None:
    """Fail unless the official augmentation of these sessions is `train_path`, pair for pair.

    Session [i1..in] gives ([i1..in-1] -> in), ..., ([i1] -> i2), sessions in order. Compared as
    arrays: the prefix lengths, the labels, and every prefix's items.
    """
    flat, prefix_lengths, labels = read_pairs_file(train_path)
    sessions = SessionSet.from_lengths(items.astype(np.int32), lengths)
    examples = sessions.examples()
    expected_lengths = examples.prefix_lengths
    where = f"{sessions_path.name} and {train_path.name} in {train_path.parent}"
    fix = (f"Use the {train_path.name} that the official preprocessing wrote with this {sessions_path.name}, "
           f"or remove {train_path.name} so the sessions alone define the training list")
    if len(expected_lengths) != len(prefix_lengths):
        raise DataFormatError(
            train_path, f"{where} disagree: the sessions augment to {len(expected_lengths):,} training prefixes, "
            f"{train_path.name} holds {len(prefix_lengths):,}", fix,
        )
    bad = (expected_lengths != prefix_lengths) | (examples.targets != labels)
    if not bad.any() or bad.argmax() > 0:  # items of the prefixes before the first other difference
        upto = int(bad.argmax()) if bad.any() else len(bad)
        lengths_upto = expected_lengths[:upto]
        n = int(lengths_upto.sum())
        starts = sessions.offsets[examples.session_index[:upto]]
        rel = np.arange(n) - np.repeat(np.cumsum(lengths_upto) - lengths_upto, lengths_upto)
        differs = sessions.items[np.repeat(starts, lengths_upto) + rel] != flat[:n]
        if differs.any():
            bad[int(np.searchsorted(np.cumsum(lengths_upto), np.flatnonzero(differs)[0], side="right"))] = True
    first = np.flatnonzero(bad)
    if len(first):
        k = int(first[0])
        raise DataFormatError(
            train_path, f"{where} disagree from training prefix {k:,} on (prefix length {int(prefix_lengths[k])} "
            f"-> {int(labels[k])} in {train_path.name}, {int(expected_lengths[k])} -> {int(examples.targets[k])} "
            f"from the sessions)", fix,
        )


@dataclass(frozen=True)
class OfficialSplitFiles:
    """The files of one official split in a folder (see `find_official_split`)."""

    folder: Path
    sessions: Path | None  # all_train_seq.txt
    train: Path | None  # train.txt
    test: Path

    @property
    def files(self) -> list[Path]:
        return [p for p in (self.sessions, self.train, self.test) if p is not None]

    @property
    def layout(self) -> str:
        return " + ".join(p.name for p in self.files)


def official_split_in(folder: Path) -> OfficialSplitFiles | None:
    """The official split a folder holds: test.txt with all_train_seq.txt and/or train.txt."""
    folder = Path(folder)
    present = {name: folder / name for name in (SESSIONS_FILE, TRAIN_FILE, TEST_FILE) if (folder / name).is_file()}
    if TEST_FILE not in present or not (SESSIONS_FILE in present or TRAIN_FILE in present):
        return None
    return OfficialSplitFiles(folder, present.get(SESSIONS_FILE), present.get(TRAIN_FILE), present[TEST_FILE])


def load_official_split(files: OfficialSplitFiles, name: str, n_items: int | None, meta: dict[str, Any]) -> Split:
    """The Split an official split's files describe (sessions from all_train_seq.txt when there,
    checked against train.txt when both are)."""
    if files.sessions is not None:
        train_items, train_lengths = read_sessions_file(files.sessions)
        if files.train is not None:
            check_augmentation(train_items, train_lengths, files.train, files.sessions)
    else:
        assert files.train is not None
        train_items, train_lengths = read_official_file(files.train)
    test_items, test_lengths = read_official_file(files.test)
    return _split_from_sessions(name, train_items, train_lengths, test_items, test_lengths, n_items, files.folder, meta)


def _split_from_sessions(
    name: str, train_items: np.ndarray, train_lengths: np.ndarray, test_items: np.ndarray,
    test_lengths: np.ndarray, n_items: int | None, folder: Path, meta: dict[str, Any],
) -> Split:
    largest = int(max(train_items.max(), test_items.max()))
    if n_items is None:
        n_items = largest
    elif n_items < largest:
        raise SessbenchError(
            f"n_items {n_items:,} is smaller than the largest item number {largest:,} in {folder}: pass at "
            "least that many (--dataset-param n_items=N, or --n-items N for import-official)."
        )
    n_train = len(train_lengths)
    train = SessionSet.from_lengths(train_items.astype(np.int32), train_lengths, np.arange(n_train))
    test = SessionSet.from_lengths(
        test_items.astype(np.int32), test_lengths, np.arange(n_train, n_train + len(test_lengths)),
        np.arange(n_train + 1, n_train + len(test_lengths) + 1),
    )
    return Split(
        name=name, train=train, test=test, n_items=int(n_items),
        item_ids=np.arange(n_items + 1, dtype=np.int64), valid=None,
        meta={"timestamps": "file order (the pickles hold no times)", **meta},
    )


def import_official(directory: Path, name: str, n_items: int | None = None) -> Split:
    """The Split the official files in `directory` describe (train.txt or all_train_seq.txt, and test.txt).

    n_items: the candidate items 1..n_items (the official code hard-codes n_node - 1: 43,097 for
    DIGINETICA, 37,483 for both YOOCHOOSE cuts); default the largest item number in the files.
    """
    directory = Path(directory)
    files = official_split_in(directory)
    if files is None:
        if not (directory / TEST_FILE).is_file():
            raise MissingDataError(f"{TEST_FILE} not found in {directory}. {_FIX}.")
        raise MissingDataError(f"{TRAIN_FILE} (or {SESSIONS_FILE}) not found in {directory}. {_FIX}.")
    meta = {
        "dataset": f"official:{name}",
        "preprocessing": f"imported from the official SR-GNN {files.layout}",
        "source_files": [p.name for p in files.files],
    }
    return load_official_split(files, name, n_items, meta)


def entry_dir(cache_dir: Path, name: str) -> Path:
    return Path(cache_dir) / f"{ENTRY_PREFIX}{name}"


def check_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise SessbenchError(
            f"--name '{name}': use letters, digits, '-', '_' and '.' only (it names the dataset: official:NAME)."
        )
    return name


def save_imported(split: Split, directory: Path, cache_dir: Path) -> Path:
    """Store an imported split as a checksummed cache entry; returns its folder."""
    target = entry_dir(cache_dir, check_name(split.name))
    files = official_split_in(Path(directory))
    sources = source_fingerprint(files.files if files is not None else [Path(directory) / TRAIN_FILE, Path(directory) / TEST_FILE])
    save_split(split, target, {"dataset": f"official:{split.name}", "params": {}, "sources": sources})
    return target


def load_imported(name: str, cache_dir: Path) -> Split:
    """The split `import-official --name NAME` stored (checksums verified)."""
    target = entry_dir(cache_dir, check_name(name))
    if not target.is_dir():
        raise MissingDataError(
            f"no imported dataset '{name}' in {cache_dir}: run 'sessbench data import-official DIR --name {name}' "
            "first (with the same --cache-dir / $SESSBENCH_CACHE)."
        )
    try:
        return load_split(target)
    except CacheCorruptError as exc:
        raise SessbenchError(f"{exc} (rerun 'sessbench data import-official DIR --name {name}' to rebuild it)") from None


def imported_source(name: str, cache_dir: Path) -> "DataSource":
    """The source of an imported split: the checksums of the files it was imported from."""
    from sessbench.data.sources import KIND_IMPORTED, DataSource, SourceFile

    target = entry_dir(cache_dir, check_name(name))
    manifest = _read_manifest(target) if target.is_dir() else None
    if manifest is None:
        load_imported(name, cache_dir)  # raises the missing / corrupt entry's message
        manifest = _read_manifest(target) or {}
    files = tuple(
        SourceFile(str(f.get("name")), int(f.get("size", 0)), str(f.get("sha256")))
        for f in manifest.get("sources") or [] if isinstance(f, dict)
    )
    return DataSource(KIND_IMPORTED, files, {"n_items": int(manifest.get("n_items", 0))}, str(target))
