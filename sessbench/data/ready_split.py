"""A split another tool made, loaded exactly as given: `--dataset split:DIR`.

DIR holds `train.*`, an optional `valid.*` and `test.*` (one file each; any extension; or
session-rec's names, `NAME_train_full.txt` or `NAME_train_tr.txt` with `NAME_train_valid.txt`, and
`NAME_test.txt`, as `sessbench data export --format session-rec` writes them), all in one of
three forms, told apart by content (or by the `format` parameter):

* ``pickle``: the official SR-GNN preprocessing's output, `train.txt` and/or
  `all_train_seq.txt` with `test.txt` (plus an optional `valid.txt` of the same kind), read with
  the restricted unpickler of `sessbench.data.official_import`;
* ``clicks``: click rows, a CSV/TSV (or Parquet) with a header naming the session and item
  columns and optionally a time column (`SessionId`, `ItemId`, `Time` as session-rec writes
  them, `session_id`, `item_id`, `timestamp`, ...; or name them with `session_col`, `item_col`,
  `time_col`). Sessions keep the order of their first row, clicks the time order (else file
  order); a session's time is its last row's. The click-log checks apply (`read_click_log`);
* ``sessions``: text, one session per line, items separated by spaces or commas (a line may be
  in brackets, "[1, 2, 3]"); blank lines are skipped.

Nothing is re-split, re-ordered or filtered, unless asked: `drop_unseen_items=true` drops
validation and test clicks of items no training session has (as SR-GNN does), and
`min_session_length=N` then drops sessions shorter than N in every part.

Items are numbered 1..n over all parts, raw ids in sorted order, so ids that already are 1..n
keep their numbers (the official pickles always keep theirs; `n_items` widens the catalogue to
the official code's count). `Split.item_ids` holds the raw ids and `meta["item_numbering"]`
says which mapping was used. Session ids: the file's own (click rows), else the session's line
number in its file (sessions as text) or its position in its file, from 1 (pickles); a list file
for `evaluate` names test sessions by them.

A given validation part cannot live in `Split.valid` (the prepared-data cache keeps un-carved
splits): its sessions are stored after the training sessions, and
`meta["given_validation_sessions"]` counts them. `given_validation` carves exactly those.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sessbench.data.sessions import SessionSet, Split
from sessbench.errors import ConfigError, DataFormatError, MissingDataError

log = logging.getLogger("sessbench.data")

PARTS = ("train", "valid", "test")
FORMATS = ("auto", "sessions", "clicks", "pickle")
#: parameters of `split:DIR` (with defaults): see the module docstring
READY_PARAMS: dict[str, Any] = {
    "format": "auto",
    "session_col": None,
    "item_col": None,
    "time_col": None,
    "sep": None,
    "n_items": None,
    "drop_unseen_items": False,
    "min_session_length": 1,
}
#: meta key: validation sessions stored at the end of `train`
GIVEN_VALIDATION = "given_validation_sessions"
#: header names recognised for click rows, lower case, in order of preference
_COLUMN_NAMES = {
    "session_col": ("sessionid", "session_id", "session", "sid", "session id"),
    "item_col": ("itemid", "item_id", "item", "iid", "item id", "product_id", "productid"),
    "time_col": ("time", "timestamp", "ts", "datetime", "date", "eventdate"),
}
_PICKLE_MAGIC = b"\x80"
_INT_TOKEN = r"[+-]?[0-9]{1,18}"
_FIX = ("Put train.*, optionally valid.*, and test.* into the folder: one session per line (items separated by "
        "spaces or commas), click rows with a header (session, item[, time]), or the official SR-GNN pickles")


@dataclass
class Part:
    """One part as read: raw item ids click by click, session lengths, ids and times."""

    name: str
    path: Path
    items: np.ndarray  # raw item ids (int64, or str)
    lengths: np.ndarray  # int64 [n_sessions]
    session_ids: np.ndarray  # raw session ids (int64, or str)
    timestamps: np.ndarray | None  # int64 [n_sessions], None when the file holds no times


# ---------------------------------------------------------------------------- parameters


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Validate `split:DIR` parameters up front (names, types, ranges)."""
    unknown = set(params) - set(READY_PARAMS)
    if unknown:
        raise ConfigError(f"unknown split parameter(s) {sorted(unknown)}; valid: {sorted(READY_PARAMS)}")
    out = dict(params)
    if out.get("format", "auto") not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {out['format']!r}")
    for key in ("session_col", "item_col", "time_col"):
        if out.get(key) is not None:
            out[key] = str(out[key])
    if out.get("sep") is not None and (not isinstance(out["sep"], str) or len(out["sep"]) != 1):
        raise ConfigError(f"sep must be one character, e.g. sep=';' (got {out['sep']!r})")
    for key, low in (("n_items", 1), ("min_session_length", 1)):
        if out.get(key) is not None:
            try:
                out[key] = int(out[key])
                if out[key] < low:
                    raise ValueError
            except (TypeError, ValueError):
                raise ConfigError(f"{key} must be an integer >= {low}, got {params[key]!r}") from None
    if "drop_unseen_items" in out:
        value = out["drop_unseen_items"]
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            value = value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise ConfigError(f"drop_unseen_items must be true or false, got {params['drop_unseen_items']!r}")
        out["drop_unseen_items"] = value
    return out


# ---------------------------------------------------------------------------- files


#: file names of each part, by priority: ours, then session-rec's (`data export --format session-rec`)
_PART_PATTERNS = {
    "valid": (("valid", "valid.*"), ("*_train_valid.*",)),
    "test": (("test", "test.*"), ("*_test.*",)),
    "train": (("train", "train.*"), ("*_train_tr.*",), ("*_train_full.*",)),
}


def _find_part(folder: Path, part: str, with_valid: bool) -> Path | None:
    """The file of `part`: the first name pattern group that matches (one file), else None."""
    for group in _PART_PATTERNS[part]:
        if part == "train" and group == ("*_train_tr.*",) and not with_valid:
            continue  # session-rec's training part without its validation part is *_train_full
        matches = sorted({p for pattern in group for p in folder.glob(pattern) if p.is_file()})
        if len(matches) > 1:
            raise ConfigError(f"{folder} holds several {part} files ({', '.join(p.name for p in matches)}): keep one")
        if matches:
            return matches[0]
    return None


def part_files(folder: Path) -> dict[str, Path]:
    """The part files of a ready split: train.*, optional valid.*, test.* (or session-rec's
    NAME_train_full / NAME_train_tr, NAME_train_valid, NAME_test; the official
    `all_train_seq.txt` may stand in for train). Raises a clear error when they are not there."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingDataError(f"split folder {folder} not found. Pass --dataset split:DIR with an existing folder. {_FIX}.")
    found: dict[str, Path] = {}
    for part in ("valid", "test", "train"):
        path = _find_part(folder, part, "valid" in found)
        if path is not None:
            found[part] = path
    sessions = folder / "all_train_seq.txt"
    if sessions.is_file():
        found["all_train_seq"] = sessions
    missing = [p for p in ("train", "test") if p not in found and not (p == "train" and "all_train_seq" in found)]
    if missing:
        raise MissingDataError(f"{folder} has no {' and no '.join(f'{m}.* file' for m in missing)}. {_FIX}.")
    return found


def source_files(files: dict[str, Path]) -> list[Path]:
    """The files in a fixed order (what the source's checksum covers)."""
    return [files[k] for k in ("all_train_seq", *PARTS) if k in files]


def _is_pickle(path: Path) -> bool:
    """Protocol 2+ pickles start with 0x80; protocols 0 and 1 (text-like) start with a
    container opcode and end with the STOP opcode '.', which no sessions-as-text file does."""
    with open(path, "rb") as fh:
        first = fh.read(1)
        fh.seek(-1, 2)
        last = fh.read(1)
    return first == _PICKLE_MAGIC or (first in (b"(", b"]", b"}") and last == b".")


def _text_header(path: Path, sep: str | None) -> tuple[str, list[str]]:
    """(delimiter, names) of a text file's first line."""
    from sessbench.data.readers import _guess_sep, _sniff

    first = _sniff(path)
    delimiter = sep or _guess_sep(path, first)
    return delimiter, [n.strip().strip('"') for n in first.split(delimiter)]


def _names_click_columns(names: list[str]) -> bool:
    """Whether a header names a session and an item column (click rows, not a session line)."""
    lower = {n.lower() for n in names}
    return all(any(c in lower for c in _COLUMN_NAMES[key]) for key in ("session_col", "item_col"))


def detect_format(files: dict[str, Path], params: dict[str, Any]) -> str:
    """The form of the parts: the `format` parameter, else by content (pickle magic, Parquet,
    a header naming session and item columns, else sessions as text)."""
    chosen = params.get("format") or "auto"
    if chosen != "auto":
        return chosen
    kinds = {}
    for part, path in files.items():
        if path.stat().st_size == 0:
            raise DataFormatError(path, "the file is empty", _FIX)
        if _is_pickle(path):
            kinds[part] = "pickle"
        elif path.suffix.lower() in (".parquet", ".pq"):
            kinds[part] = "clicks"
        else:
            kinds[part] = "clicks" if _names_click_columns(_text_header(path, params.get("sep"))[1]) else "sessions"
    if len(set(kinds.values())) > 1:
        described = ", ".join(f"{files[p].name}: {k}" for p, k in kinds.items())
        raise DataFormatError(
            files["test"].parent, f"the parts are in different forms ({described})",
            "Write every part in one form, or pass --dataset-param format=sessions|clicks|pickle",
        )
    return next(iter(kinds.values()))


# ---------------------------------------------------------------------------- readers


def read_session_lines(path: Path, part: str) -> Part:
    """One session per line, items separated by spaces or commas (vectorized over lines)."""
    try:
        text = path.read_bytes().decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})", "Save the file as UTF-8") from None
    if "\x00" in text:
        raise DataFormatError(path, "this is a binary file, not sessions as text", _FIX)
    lines = pd.Series(text.split("\n"), dtype=object).str.strip()
    lines = lines.str.replace(r"^\[|\]$", "", regex=True).str.replace(r"[\s,;]+", " ", regex=True).str.strip()
    keep = (lines != "").to_numpy()
    if not keep.any():
        raise DataFormatError(path, "the file holds no session", _FIX)
    kept = lines[keep]
    lengths = (kept.str.count(" ") + 1).to_numpy(dtype=np.int64)
    tokens = np.array(" ".join(kept.tolist()).split(" "), dtype=object)
    return Part(part, path, tokens, lengths, np.flatnonzero(keep).astype(np.int64) + 1, None)


def _pick_column(names: list[str], key: str, given: str | None, path: Path, required: bool) -> str | None:
    if given is not None:
        if given.lower() == "none" and key == "time_col":
            return None
        if given not in names:
            raise DataFormatError(path, f"column {given!r} ({key}) not found (columns: {', '.join(names)})",
                                  f"Pass --dataset-param {key}=NAME with one of them")
        return given
    lower = {n.lower(): n for n in names}
    for candidate in _COLUMN_NAMES[key]:
        if candidate in lower:
            return lower[candidate]
    if required:
        raise DataFormatError(path, f"no {key.removesuffix('_col')} column among {', '.join(names)}",
                              f"Pass --dataset-param {key}=NAME")
    return None


def read_click_rows(path: Path, part: str, params: dict[str, Any]) -> tuple[Part, list[str]]:
    """Click rows grouped into sessions (first-appearance order, clicks by time, stable), and
    the click-log warnings."""
    from sessbench.data.readers import read_click_log
    from sessbench.data.srgnn_preprocess import _group

    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        sep = None
    else:
        sep, names = _text_header(path, params.get("sep"))
    cols = [_pick_column(names, key, params.get(key), path, key != "time_col") for key in ("session_col", "item_col", "time_col")]
    clicks = read_click_log(path, cols[0], cols[1], cols[2], sep=sep, warn=False)
    g = _group(clicks)
    item_labels, session_labels = clicks.attrs.get("item_labels"), clicks.attrs.get("session_labels")
    items = g.item_ids[g.items] if item_labels is None else np.asarray(item_labels, dtype=str)[g.item_ids[g.items]]
    order = np.repeat(g.starts, g.lengths) + (np.arange(int(g.lengths.sum())) - np.repeat(np.cumsum(g.lengths) - g.lengths, g.lengths))
    sessions = g.session_ids if session_labels is None else np.asarray(session_labels, dtype=str)[g.session_ids]
    part_data = Part(part, path, items[order], g.lengths, sessions, g.dates if cols[2] is not None else None)
    return part_data, list(clicks.attrs.get("warnings") or [])


def read_pickles(files: dict[str, Path]) -> list[Part]:
    """The official pickles: training sessions (all_train_seq.txt and/or train.txt, checked
    against each other), test (and valid) from their (prefix, label) pairs."""
    from sessbench.data.official_import import (
        OfficialSplitFiles,
        load_official_split,
        official_split_in,
        read_official_file,
    )

    folder = files["test"].parent
    official = official_split_in(folder)
    if official is None or official.test != files["test"] or official.train != files.get("train"):  # other file names
        official = OfficialSplitFiles(folder, files.get("all_train_seq"), files.get("train"), files["test"])
    loaded = load_official_split(official, "split", None, {})
    parts = []
    for name, sessions in (("train", loaded.train), ("test", loaded.test)):
        parts.append(Part(name, files.get(name, files.get("all_train_seq")), sessions.items.astype(np.int64),
                          sessions.lengths, np.arange(1, sessions.n_sessions + 1, dtype=np.int64), None))
    if "valid" in files:
        items, lengths = read_official_file(files["valid"])
        parts.insert(1, Part("valid", files["valid"], items, lengths, np.arange(1, len(lengths) + 1, dtype=np.int64), None))
    return parts


def read_parts(files: dict[str, Path], params: dict[str, Any]) -> tuple[str, list[Part], list[str]]:
    """(form, parts in the order train, [valid], test, warnings of the click-log checks)."""
    form = detect_format(files, params)
    if form == "pickle":
        return form, read_pickles(files), []
    parts, warnings = [], []
    for name in PARTS:
        if name not in files:
            continue
        if form == "clicks":
            part, found = read_click_rows(files[name], name, params)
            parts.append(part)
            warnings += found
        else:
            parts.append(read_session_lines(files[name], name))
    return form, parts, warnings


# ---------------------------------------------------------------------------- assembling


def _common_ids(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Ids of all parts as one kind: int64 when every part's are integers, else text."""
    if all(a.dtype.kind in "iu" for a in arrays):
        return [a.astype(np.int64) for a in arrays]
    text = [a.astype(str) for a in arrays]
    if all(pd.Series(t, dtype=object).str.fullmatch(_INT_TOKEN).all() for t in text):
        return [t.astype(np.int64) for t in text]
    return text


def _drop_clicks(part: Part, keep: np.ndarray) -> Part:
    lengths = np.bincount(np.repeat(np.arange(len(part.lengths)), part.lengths), weights=keep, minlength=len(part.lengths))
    return replace(part, items=part.items[keep], lengths=lengths.astype(np.int64))


def _drop_sessions(part: Part, keep: np.ndarray) -> Part:
    clicks = np.repeat(keep, part.lengths)
    return Part(part.name, part.path, part.items[clicks], part.lengths[keep], part.session_ids[keep],
                None if part.timestamps is None else part.timestamps[keep])


def _filter(parts: list[Part], params: dict[str, Any]) -> tuple[list[Part], dict[str, int]]:
    """The filters asked for, in SR-GNN's order: unseen items out of valid/test, then short sessions."""
    dropped = {"clicks": 0, "sessions": 0}
    if params.get("drop_unseen_items"):
        known = np.unique(parts[0].items)
        for k, part in enumerate(parts[1:], start=1):
            keep = np.isin(part.items, known)
            dropped["clicks"] += int((~keep).sum())
            parts[k] = _drop_clicks(part, keep)
    minimum = int(params.get("min_session_length") or 1)
    for k, part in enumerate(parts):
        keep = part.lengths >= max(minimum, 1)
        dropped["sessions"] += int((~keep).sum())
        parts[k] = _drop_sessions(part, keep)
    return parts, dropped


def _number_items(parts: list[Part], keep_numbers: bool, n_items: int | None) -> tuple[list[np.ndarray], np.ndarray, str]:
    """(item index per click of each part, item_ids, how the numbering was made)."""
    raw = _common_ids([p.items for p in parts])
    if keep_numbers:  # the official pickles: their numbers are the items
        largest = int(max(int(r.max(initial=0)) for r in raw))
        if n_items is not None and n_items < largest:
            raise ConfigError(f"n_items {n_items:,} is smaller than the largest item number {largest:,} in the split")
        n = n_items or largest
        return [r.astype(np.int32) for r in raw], np.arange(n + 1, dtype=np.int64), f"the files' item numbers 1..{n:,} (official pickles)"
    everything = np.concatenate(raw)
    uniques, inverse = np.unique(everything, return_inverse=True)
    if n_items is not None:
        raise ConfigError("n_items applies to the official pickles only: other forms number the items they hold")
    bounds = np.cumsum([0] + [len(r) for r in raw])
    index = [(inverse[bounds[k] : bounds[k + 1]] + 1).astype(np.int32) for k in range(len(raw))]
    placeholder = np.array([0] if uniques.dtype.kind in "iu" else [""], dtype=uniques.dtype)
    item_ids = np.concatenate([placeholder, uniques])
    n = len(uniques)
    if uniques.dtype.kind in "iu" and n and uniques[0] == 1 and uniques[-1] == n:
        how = f"the files' item ids are 1..{n:,}: kept as the item numbers"
    else:
        how = (f"{n:,} raw item ids numbered 1..{n:,} in sorted order ({uniques[0]} -> 1, ..., {uniques[-1]} -> {n}); "
               "Split.item_ids holds the map")
    return index, item_ids, how


def _session_ids(parts: list[Part]) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Session ids as int64 (raw integers), or codes into text labels shared by all parts."""
    ids = _common_ids([p.session_ids for p in parts])
    if ids[0].dtype.kind in "iu":
        return ids, None
    labels, inverse = np.unique(np.concatenate(ids), return_inverse=True)
    bounds = np.cumsum([0] + [len(i) for i in ids])
    return [inverse[bounds[k] : bounds[k + 1]].astype(np.int64) for k in range(len(ids))], labels.astype(str)


def assemble(name: str, form: str, parts: list[Part], params: dict[str, Any], meta: dict[str, Any]) -> Split:
    """The Split of the parts as given (validation, if any, stored after the training sessions)."""
    parts, dropped = _filter(list(parts), params)
    index, item_ids, numbering = _number_items(parts, form == "pickle", params.get("n_items"))
    session_ids, labels = _session_ids(parts)
    offset = 0
    sets = {}
    for part, items, sids in zip(parts, index, session_ids):
        times = part.timestamps
        if times is None:  # no times: file order, one part after the other
            times = np.arange(offset, offset + len(part.lengths), dtype=np.int64)
            offset += len(part.lengths)
        sets[part.name] = SessionSet.from_lengths(items, part.lengths, times, sids)
    train, valid = sets["train"], sets.get("valid")
    if valid is not None:
        train = SessionSet(
            np.concatenate([train.offsets, train.offsets[-1] + valid.offsets[1:]]), np.concatenate([train.items, valid.items]),
            np.concatenate([train.timestamps, valid.timestamps]), np.concatenate([train.session_ids, valid.session_ids]),
        )
    info = {
        "dataset": name, "preprocessing": f"a ready-made split ({form}), loaded as given", "form": form,
        "item_numbering": numbering, GIVEN_VALIDATION: 0 if valid is None else valid.n_sessions,
        "session_ids_given": form == "clicks", "filters": {k: params.get(k, READY_PARAMS[k]) for k in ("drop_unseen_items", "min_session_length")},
        "dropped": dropped, **meta,
    }
    return Split(name=name, train=train, test=sets["test"], n_items=len(item_ids) - 1, item_ids=item_ids, valid=None,
                 meta=info, session_labels=labels)


def build_ready_split(folder: Path, name: str, params: dict[str, Any]) -> Split:
    """Read and assemble the split in `folder`; meta holds the warnings of the checks."""
    from sessbench.data.checks import split_warnings

    files = part_files(folder)
    form, parts, warnings = read_parts(files, params)
    meta = {"source_files": [p.name for p in source_files(files)]}
    split = assemble(name, form, parts, params, meta)
    warnings += split_warnings(split, ("test",))  # against every training session, validation included
    check = given_validation(split)
    if check.valid is not None:
        warnings += split_warnings(check, ("valid",))
    return replace(split, meta={**split.meta, "warnings": warnings}) if warnings else split


def given_validation(split: Split) -> Split:
    """The split with its given validation part as `valid` (the last
    `meta["given_validation_sessions"]` training sessions); unchanged when it has none."""
    n_valid = int(split.meta.get(GIVEN_VALIDATION) or 0)
    if not n_valid or split.valid is not None:
        return split
    n_fit = split.train.n_sessions - n_valid
    return replace(split, train=split.train.subset(slice(0, n_fit)), valid=split.train.subset(slice(n_fit, None)),
                   meta={**split.meta, "validation": "given"})


def describe(split: Split) -> str:
    """One line for the log: parts, sessions and the item numbering."""
    n_valid = int(split.meta.get(GIVEN_VALIDATION) or 0)
    train = split.train.n_sessions - n_valid
    valid = f", {n_valid:,} validation" if n_valid else ""
    return (f"ready-made split ({split.meta.get('form')}): {train:,} training{valid} and {split.test.n_sessions:,} test "
            f"sessions; items: {split.meta.get('item_numbering')}")
