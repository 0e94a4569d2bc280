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
"""

from __future__ import annotations

import io
import itertools
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from sessbench.data.cache import CacheCorruptError, load_split, save_split, source_fingerprint
from sessbench.data.sessions import SessionSet, Split
from sessbench.errors import DataFormatError, MissingDataError, SessbenchError

TRAIN_FILE = "train.txt"
TEST_FILE = "test.txt"
ENTRY_PREFIX = "official-"
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
    except Exception as exc:  # noqa: BLE001 - any malformed pickle is a data error
        raise DataFormatError(
            path, f"not a readable pickle ({type(exc).__name__}: {str(exc)[:200]})", _FIX
        ) from None


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
    """Items and session lengths from one official pickle, read with the restricted unpickler."""
    if not path.is_file():
        raise MissingDataError(f"{path.name} not found in {path.parent}. {_FIX}.")
    data = path.read_bytes()
    if not data:
        raise DataFormatError(path, "the file is empty", _FIX)
    sequences, labels = _check_pairs(safe_load_pickle(data, path), path)
    return sessions_from_prefixes(sequences, labels, path)


def import_official(directory: Path, name: str, n_items: int | None = None) -> Split:
    """The Split the official train.txt / test.txt in `directory` describe.

    n_items: the candidate items 1..n_items (the official code hard-codes n_node - 1: 43,097 for
    DIGINETICA, 37,483 for both YOOCHOOSE cuts); default the largest item number in the files.
    """
    directory = Path(directory)
    train_items, train_lengths = read_official_file(directory / TRAIN_FILE)
    test_items, test_lengths = read_official_file(directory / TEST_FILE)
    largest = int(max(train_items.max(), test_items.max()))
    if n_items is None:
        n_items = largest
    elif n_items < largest:
        raise SessbenchError(
            f"--n-items {n_items} is smaller than the largest item number {largest:,} in {directory}: "
            "pass at least that many (or leave --n-items out)."
        )
    n_train = len(train_lengths)
    train = SessionSet.from_lengths(train_items.astype(np.int32), train_lengths, np.arange(n_train))
    test = SessionSet.from_lengths(
        test_items.astype(np.int32), test_lengths, np.arange(n_train, n_train + len(test_lengths)),
        np.arange(n_train + 1, n_train + len(test_lengths) + 1),
    )
    meta = {
        "dataset": f"official:{name}",
        "preprocessing": "imported from the official SR-GNN train.txt/test.txt",
        "source_files": [TRAIN_FILE, TEST_FILE],
        "timestamps": "file order (the pickles hold no times)",
    }
    return Split(
        name=name, train=train, test=test, n_items=int(n_items),
        item_ids=np.arange(n_items + 1, dtype=np.int64), valid=None, meta=meta,
    )


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
    sources = source_fingerprint([Path(directory) / TRAIN_FILE, Path(directory) / TEST_FILE])
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
