"""Datasets by name: how each is read, prepared and cached, and the paper's Table 1 figures.

Names a user can pass to `--dataset`:
  yoochoose64, yoochoose4, yoochoose   YOOCHOOSE (RecSys Challenge 2015) `yoochoose-clicks.dat`
  diginetica                           DIGINETICA (CIKM Cup 2016) `train-item-views.csv`
  synthetic[:key=value,...]            the built-in generator with a known Bayes-optimal limit
  clicks:PATH                          any click log (CSV/TSV/Parquet); columns and the test
                                       period via `--dataset-param` / `dataset_params`
  official:NAME                        the official SR-GNN train.txt/test.txt, imported with
                                       `sessbench data import-official DIR --name NAME`
  split:DIR                            a split another tool made, loaded as given: DIR holds
                                       train.*, optional valid.*, test.*, as one session per
                                       line (items separated by spaces or commas), click rows
                                       with a header (session, item[, time]), or the official
                                       pickles; no re-split, no filtering unless asked; items
                                       numbered 1..n (raw ids in `Split.item_ids`); see
                                       `sessbench.data.ready_split` (parameters via
                                       `--dataset-param`: format, session_col, item_col,
                                       time_col, sep, n_items, drop_unseen_items,
                                       min_session_length)

yoochoose64, yoochoose4 and diginetica read the official preprocessing's output directly when
`--data-dir` holds it (`all_train_seq.txt` and/or `train.txt`, with `test.txt`; in DIR itself or in
the folder the SR-GNN family of repositories names it, e.g. DIR/yoochoose1_64), and prepare the raw
click file otherwise. `resolve_source` decides which, by content (`sessbench.data.sources`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sessbench.data.readers import DIGINETICA_FILE, DIGINETICA_URL, YOOCHOOSE_FILE, YOOCHOOSE_URL
from sessbench.data.sessions import Split
from sessbench.data.sources import KIND_OFFICIAL, KIND_RAW, KIND_READY, DataSource
from sessbench.data.srgnn_preprocess import DAY_SECONDS
from sessbench.errors import ConfigError, SessbenchError, UnknownNameError

if TYPE_CHECKING:
    from sessbench.data.official_import import OfficialSplitFiles


@dataclass(frozen=True)
class PaperStats:
    """Table 1 of the SR-GNN paper, as printed (training/test counts are augmented prefixes)."""

    clicks: int
    train_sequences: int
    test_sequences: int
    items: int
    average_length: float
    #: why a figure of ours legitimately differs from the printed one (by Table 1 key)
    notes: dict[str, str] = field(default_factory=dict)

#: the paper copied YOOCHOOSE's item counts from earlier work (REFERENCE.md); the official code ranks more
_YOOCHOOSE_ITEMS_NOTE = (
    "the paper's item counts for YOOCHOOSE were copied from earlier work; the official code ranks all "
    "37,483 items it numbers (a hard-coded 37,484-row table), of which fewer occur in the cut's training sessions"
)


@dataclass(frozen=True)
class DatasetDef:
    name: str
    description: str
    kind: str  # "yoochoose" | "diginetica" | "synthetic" | "clicks" | "official" | "split"
    label: str  # as the paper names it
    raw_file: str | None = None
    url: str | None = None
    split_days: int | None = None
    fraction: int | None = None
    paper: PaperStats | None = None
    #: folder name of its official split in the SR-GNN family's `datasets/` layout
    official_folder: str | None = None
    #: the candidate items the official code ranks (its hard-coded n_node - 1)
    official_n_items: int | None = None


DATASETS: dict[str, DatasetDef] = {
    d.name: d
    for d in [
        DatasetDef(
            "yoochoose64", "YOOCHOOSE, last 1/64 of the SR-GNN training prefixes", "yoochoose",
            "Yoochoose 1/64", YOOCHOOSE_FILE, YOOCHOOSE_URL, 1, 64,
            PaperStats(557_248, 369_859, 55_898, 16_766, 6.16, {"items": _YOOCHOOSE_ITEMS_NOTE}), "yoochoose1_64", 37_483,
        ),
        DatasetDef(
            "yoochoose4", "YOOCHOOSE, last 1/4 of the SR-GNN training prefixes", "yoochoose",
            "Yoochoose 1/4", YOOCHOOSE_FILE, YOOCHOOSE_URL, 1, 4,
            PaperStats(8_326_407, 5_917_745, 55_898, 29_618, 5.71, {"items": _YOOCHOOSE_ITEMS_NOTE}), "yoochoose1_4", 37_483,
        ),
        DatasetDef(
            "yoochoose", "YOOCHOOSE, the whole SR-GNN training list (no cut)", "yoochoose",
            "Yoochoose", YOOCHOOSE_FILE, YOOCHOOSE_URL, 1, None, None,
        ),
        DatasetDef(
            "diginetica", "DIGINETICA, SR-GNN preprocessing (7-day test period)", "diginetica",
            "Diginetica", DIGINETICA_FILE, DIGINETICA_URL, 7, None,
            PaperStats(982_961, 719_470, 60_858, 43_097, 5.12,
                       {"average_length": "5.1251 rounds to 5.13; the paper prints 5.12 (every count equal)"}),
            "diginetica", 43_097,
        ),
        DatasetDef(
            "synthetic", "Built-in generator of intent-driven sessions with a known optimum",
            "synthetic", "Synthetic",
        ),
        DatasetDef(
            "clicks", "Any click log: clicks:PATH (CSV, TSV or Parquet)", "clicks", "Click log",
        ),
        DatasetDef(
            "official", "official:NAME, imported with 'sessbench data import-official DIR --name NAME'",
            "official", "Official SR-GNN split",
        ),
        DatasetDef(
            "split", "split:DIR, a split another tool made, loaded as given: train.*, optional valid.*, test.* "
            "(one session per line, click rows session,item[,time] with a header, or the official pickles); "
            "items numbered 1..n, no re-split or filtering unless asked", "split", "Ready-made split",
        ),
    ]
}

#: parameters the generic click-log reader takes (with defaults)
CLICKS_PARAMS: dict[str, Any] = {
    "session_col": "session_id",
    "item_col": "item_id",
    "time_col": "timestamp",
    "time_format": "auto",
    "sep": None,
    "test_days": 1,
    "min_item_support": 5,
}


@dataclass(frozen=True)
class DatasetRequest:
    """A parsed `--dataset` value: the definition plus its parameters, and once resolved
    (`resolve_source`) the source it is computed from."""

    definition: DatasetDef
    params: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # clicks:PATH, official:NAME, split:DIR
    source: DataSource | None = None

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def identity_key(self) -> str:
        """The key plus the source's digest: two sources of one name never share a prepared split."""
        return self.key if self.source is None else f"{self.key}@{self.source.digest}"

    @property
    def key(self) -> str:
        """Canonical string used in run ids and records (parameters sorted)."""
        base = self.name if self.path is None else f"{self.definition.kind}:{self.path}"
        if self.params:
            base += ":" + ",".join(f"{k}={self.params[k]}" for k in sorted(self.params))
        return base


def parse_dataset(text: str, extra_params: dict[str, Any] | None = None) -> DatasetRequest:
    """Parse `NAME`, `synthetic:k=v,...` or `clicks:PATH` (parameters from `extra_params`)."""
    from sessbench.names import check_text

    extra = dict(extra_params or {})
    name, _, rest = check_text("dataset", text).partition(":")
    if name not in DATASETS:
        raise UnknownNameError(
            "dataset", name, DATASETS, "Run 'sessbench data list' to see them; use clicks:PATH for your own log."
        )
    definition = DATASETS[name]
    if definition.kind == "official":
        from sessbench.data.official_import import check_name

        if not rest or extra:
            raise ConfigError(
                "an imported official split is named official:NAME (the --name given to "
                "'sessbench data import-official') and takes no parameters"
            )
        return DatasetRequest(definition, path=check_name(rest))
    if definition.kind == "clicks":
        if not rest:
            raise ConfigError("the clicks dataset needs a path: --dataset clicks:PATH/TO/clicks.csv")
        return DatasetRequest(definition, _check_clicks_params(extra), path=rest)
    if definition.kind == "split":
        from sessbench.data.ready_split import check_params

        if not rest:
            raise ConfigError("a ready-made split needs its folder: --dataset split:DIR (DIR holds train.*, test.*)")
        return DatasetRequest(definition, check_params(extra), path=rest)
    if definition.kind == "synthetic":
        from sessbench.data.synthetic import SyntheticConfig

        params = dict(extra)
        if rest:
            params.update(_parse_kv(rest, text))
        config = SyntheticConfig.from_string(",".join(f"{k}={v}" for k, v in params.items()))
        config.check_memory()  # before any work: a size that cannot fit stops the grid here
        defaults = SyntheticConfig().to_dict()
        changed = {k: v for k, v in config.to_dict().items() if defaults.get(k) != v}
        return DatasetRequest(definition, changed)
    params = dict(extra)
    if rest:
        params.update(_parse_kv(rest, text))
    unknown = set(params) - {"n_items"}
    if unknown or (params and definition.official_n_items is None):
        raise ConfigError(
            f"dataset '{name}' is defined by the SR-GNN preprocessing and takes no parameters "
            f"(got '{rest or extra}'){'' if definition.official_n_items is None else ' except n_items for an official split'}; "
            "use clicks:PATH to prepare a log with other settings"
        )
    if "n_items" in params:
        try:
            params["n_items"] = int(params["n_items"])
            if params["n_items"] < 1:
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"n_items must be a positive integer, got {params['n_items']!r}") from None
    return DatasetRequest(definition, params)


def _check_clicks_params(params: dict[str, Any]) -> dict[str, Any]:
    """Validate click-log parameters up front (names, types, ranges)."""
    unknown = set(params) - set(CLICKS_PARAMS)
    if unknown:
        raise ConfigError(f"unknown click-log parameter(s) {sorted(unknown)}; valid: {sorted(CLICKS_PARAMS)}")
    out = dict(params)
    for key in ("session_col", "item_col", "time_col"):
        if key in out and not isinstance(out[key], str):
            out[key] = str(out[key])
    if out.get("time_format", "auto") not in ("auto", "epoch", "iso"):
        raise ConfigError(f"time_format must be auto, epoch or iso, got '{out['time_format']}'")
    try:
        if "test_days" in out:
            out["test_days"] = float(out["test_days"])
            if out["test_days"] <= 0:
                raise ValueError
        if "min_item_support" in out:
            out["min_item_support"] = int(out["min_item_support"])
            if out["min_item_support"] < 1:
                raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(
            "test_days must be a positive number of days and min_item_support a positive integer "
            f"(got test_days={params.get('test_days')!r}, min_item_support={params.get('min_item_support')!r})"
        ) from None
    if out.get("sep") is not None and (not isinstance(out["sep"], str) or len(out["sep"]) != 1):
        raise ConfigError(f"sep must be one character, e.g. sep=';' (got {out['sep']!r})")
    return out


def _parse_kv(text: str, whole: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        if not eq:
            raise ConfigError(f"'{whole}': expected key=value pairs after ':', got '{part}'")
        out[key.strip()] = value.strip()
    return out


@dataclass
class LoadedDataset:
    request: DatasetRequest
    split: Split  # un-carved (the official training list)
    generator: Any = None  # the SyntheticGenerator that drew synthetic data (the oracle reads it)

    @property
    def name(self) -> str:
        return self.request.name


def find_official_split(request: DatasetRequest, data_dir: Path | None) -> OfficialSplitFiles | None:
    """The official split `data_dir` holds for this dataset: in DIR itself, or in the folder the
    SR-GNN family names it (DIR/yoochoose1_64, DIR/diginetica); None when there is none."""
    from sessbench.data.official_import import official_split_in

    d = request.definition
    if d.official_folder is None or data_dir is None:
        return None
    folder = Path(data_dir).expanduser()
    for candidate in (folder, folder / d.official_folder):
        found = official_split_in(candidate) if candidate.is_dir() else None
        if found is not None:
            return found
    return None


def resolve_source(request: DatasetRequest, data_dir: Path | None, cache_dir: Path | None = None) -> DatasetRequest:
    """The request with its `source` set: which files (by checksum) or parameters it is computed
    from. Raises the same clear errors as preparing it when a file is missing."""
    from sessbench.data.cache import default_cache_dir
    from sessbench.data.sources import KIND_SYNTHETIC, file_source

    if request.source is not None:
        return request
    d = request.definition
    cache = default_cache_dir(cache_dir)
    if d.kind == "synthetic":
        from sessbench.data.synthetic import SyntheticConfig

        config = SyntheticConfig.from_string(",".join(f"{k}={v}" for k, v in request.params.items()))
        return replace(request, source=DataSource(KIND_SYNTHETIC, params=config.to_dict()))
    if d.kind == "official":
        from sessbench.data.official_import import imported_source

        return replace(request, source=imported_source(str(request.path), cache))
    if d.kind == "split":
        from sessbench.data.ready_split import READY_PARAMS

        params = {**READY_PARAMS, **request.params}
        return replace(request, source=file_source(KIND_READY, raw_sources(request, data_dir), params, cache))
    official = find_official_split(request, data_dir)
    if official is not None:
        params = {"n_items": request.params.get("n_items", d.official_n_items)}
        return replace(request, source=file_source(KIND_OFFICIAL, official.files, params, cache))
    if "n_items" in request.params:
        raise ConfigError(
            f"n_items applies to an official split only, and {data_dir} holds none for '{d.name}' "
            "(all_train_seq.txt or train.txt, with test.txt): drop n_items to prepare the raw file"
        )
    params = {**CLICKS_PARAMS, **request.params} if d.kind == "clicks" else {}
    return replace(request, source=file_source(KIND_RAW, raw_sources(request, data_dir), params, cache))


def raw_sources(request: DatasetRequest, data_dir: Path | None) -> list[Path]:
    """The raw files a dataset is read from (checked to exist, with a helpful error)."""
    from sessbench.data.readers import find_raw_file

    d = request.definition
    if d.kind == "split":
        from sessbench.data.ready_split import part_files, source_files

        return source_files(part_files(split_folder(request, data_dir)))
    if d.kind == "clicks":
        path = Path(request.path or "")
        if not path.is_absolute() and data_dir is not None and not path.exists():
            path = Path(data_dir) / path
        if not path.is_file():
            raise SessbenchError(f"click log not found: {path}. Pass an existing file as --dataset clicks:PATH.")
        return [path]
    if d.raw_file is None:
        return []
    if data_dir is None:
        raise SessbenchError(
            f"dataset '{d.name}' needs the raw file {d.raw_file}: pass --data-dir DIR (the folder that "
            f"holds {d.raw_file}). The data is published at {d.url}."
        )
    # DIR/<file>, else one folder down (DIR/yoochoose/<file>), so one --data-dir serves a grid
    folder = Path(data_dir).expanduser()
    nested = sorted(folder.glob(f"*/{d.raw_file}")) if folder.is_dir() else []
    if not (folder / d.raw_file).is_file() and len(nested) == 1:
        return [nested[0]]
    return [find_raw_file(folder, d.raw_file, d.label, d.url)]


def export_name(request: DatasetRequest) -> str:
    """The NAME an export's files take: the dataset's name, made unique where the name alone
    does not say which data it is (clicks:PATH and split:DIR: the file's or folder's name and
    the source digest; synthetic with parameters: the digest), so that two of them exported into
    one folder never overwrite each other's files."""
    import re

    d = request.definition
    digest = request.source.digest[:8] if request.source is not None else "nosource"
    if d.kind in ("clicks", "split"):
        path = Path(request.path or d.kind)
        stem = path.name if d.kind == "split" else path.stem
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or d.kind
        return f"{d.kind}-{slug}-{digest}"
    if d.kind == "synthetic" and request.params:
        return f"synthetic-{digest}"
    return d.name if d.kind != "official" else str(request.path)


def split_folder(request: DatasetRequest, data_dir: Path | None) -> Path:
    """The folder of `split:DIR` (a relative DIR that does not exist is looked up in data_dir)."""
    path = Path(request.path or "").expanduser()
    if not path.is_absolute() and data_dir is not None and not path.exists():
        path = Path(data_dir).expanduser() / path
    return path


def _build_srgnn(request: DatasetRequest, sources: list[Path], progress: Any = None, log: Any = None) -> Split:
    """Read the raw file and run the SR-GNN preprocessing (the YOOCHOOSE cuts come later)."""
    from sessbench.data import readers
    from sessbench.data.srgnn_preprocess import prepare_srgnn

    d = request.definition
    p = {**CLICKS_PARAMS, **request.params}
    if d.kind == "yoochoose":
        clicks = readers.read_yoochoose_clicks(sources[0], progress=progress)
    elif d.kind == "diginetica":
        clicks = readers.read_diginetica_views(sources[0], progress=progress)
    else:  # clicks
        clicks = readers.read_click_log(
            sources[0], p["session_col"], p["item_col"], p["time_col"], time_format=p["time_format"], sep=p["sep"],
            warn=False,
        )
    split_days = float(p["test_days"]) if d.kind == "clicks" else d.split_days
    if log is not None:
        log.info("SR-GNN preprocessing of %s clicks from %s", f"{len(clicks):,}", sources[0].name)
    split = prepare_srgnn(
        clicks,
        name="yoochoose" if d.kind == "yoochoose" else d.name,
        split_seconds=int(split_days * DAY_SECONDS),
        min_item_support=int(p["min_item_support"]) if d.kind == "clicks" else 5,
        meta={"source_files": [s.name for s in sources]},
        progress=progress,
    )
    if d.kind != "clicks":
        return split
    from sessbench.data.checks import split_warnings

    warnings = list(clicks.attrs.get("warnings") or []) + split_warnings(split)
    return replace(split, meta={**split.meta, WARNINGS_KEY: warnings}) if warnings else split


#: Split.meta key of the warnings found while preparing a split (logged on every load)
WARNINGS_KEY = "warnings"


def log_split_warnings(split: Split, log: logging.Logger, key: str) -> None:
    """Log the warnings a split's preparation found, each time it is loaded (cached or not)."""
    for message in split.meta.get(WARNINGS_KEY) or []:
        log.warning("%s: %s", key, message)


def preparation_code_version() -> str:
    """A hash of the code that turns raw files into splits: a cached split made by other code is stale."""
    import hashlib

    from sessbench.data import readers, sessions, srgnn_preprocess

    h = hashlib.sha256()
    for module in (readers, srgnn_preprocess, sessions):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:12]


def _module_version(*modules: Any) -> str:
    """A hash of further modules a kind of dataset is prepared with (its cache entries only)."""
    import hashlib

    h = hashlib.sha256()
    for module in modules:
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:12]


def load_dataset(
    request: DatasetRequest,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    force: bool = False,
    logger: logging.Logger | None = None,
    progress: Any = None,
) -> LoadedDataset:
    """Prepare (or load from the cache) the split a request names, from the source it resolves to.

    `progress(total=..., desc=...)` gives a progress bar for reading the raw file. The split's
    meta holds the source (`meta["source"]`: kind, files and checksums, digest).
    """
    log = logger or logging.getLogger("sessbench.data")
    request = resolve_source(request, data_dir, cache_dir)
    source = request.source
    assert source is not None
    d = request.definition
    if d.kind == "synthetic":
        from sessbench.data.synthetic import SyntheticConfig, build_synthetic

        config = SyntheticConfig.from_string(",".join(f"{k}={v}" for k, v in request.params.items()))
        split, generator = build_synthetic(config)
        return LoadedDataset(request, replace(split, meta={**split.meta, "source": source.to_record()}), generator)

    from sessbench.data.cache import default_cache_dir, load_or_build

    cache = default_cache_dir(cache_dir)
    if d.kind == "official":
        from sessbench.data.official_import import load_imported

        split = load_imported(str(request.path), cache)
        return LoadedDataset(request, replace(split, meta={**split.meta, "source": source.to_record()}))

    extra: dict[str, Any] = {}
    if source.kind == KIND_OFFICIAL:
        official = find_official_split(request, data_dir)
        assert official is not None
        n_items = int(source.params["n_items"])
        build = lambda: _build_official(request, official, n_items)  # noqa: E731
        files, base = official.files, request
    elif source.kind == KIND_READY:
        from sessbench.data import checks, ready_split

        files, base = raw_sources(request, data_dir), request
        folder, params = split_folder(request, data_dir), dict(source.params)
        build = lambda: ready_split.build_ready_split(folder, d.name, params)  # noqa: E731
        extra = {"modules": _module_version(ready_split, checks)}
    else:
        files = raw_sources(request, data_dir)
        # The three YOOCHOOSE datasets share one prepared training list; the 1/4 and 1/64 cuts
        # are taken from it on load (a cheap slice), so the 33M-row file is prepared once.
        base = replace(request, definition=DATASETS["yoochoose"]) if d.kind == "yoochoose" else request
        build = lambda: _build_srgnn(base, files, progress, log)  # noqa: E731
        if d.kind == "clicks":
            from sessbench.data import checks

            extra = {"modules": _module_version(checks)}
    params = {
        "dataset": base.key,
        "source": source.digest,
        "code": preparation_code_version(),
        **({"split_days": base.definition.split_days} if source.kind == KIND_RAW else {}),
        **extra,
        **base.params,
    }
    split = load_or_build(
        f"{base.key}-{source.kind}".replace("/", "_").replace(":", "_"),
        params,
        files,
        build,
        cache,
        force=force,
        logger=log,
        checksums={str(p): f.sha256 for p, f in zip(files, source.files)},
    )
    if d.fraction is not None and source.kind == KIND_RAW:
        from sessbench.data.srgnn_preprocess import cut_training_fraction

        split = cut_training_fraction(split, d.fraction)
    if source.kind == KIND_OFFICIAL:
        _check_official_counts(request, split, official.folder)
    log_split_warnings(split, log, request.key)
    if source.kind == KIND_READY:
        from sessbench.data.ready_split import describe

        log.info("%s: %s", request.key, describe(split))
    split = replace(split, name=d.name, meta={**split.meta, "source": source.to_record()})
    return LoadedDataset(request, split)


def _build_official(request: DatasetRequest, files: OfficialSplitFiles, n_items: int) -> Split:
    from sessbench.data.official_import import load_official_split

    meta = {
        "dataset": request.key,
        "preprocessing": f"the official SR-GNN preprocessing's output ({files.layout})",
        "source_files": [p.name for p in files.files],
    }
    return load_official_split(files, request.name, n_items, meta)


def _check_official_counts(request: DatasetRequest, split: Split, folder: Path) -> None:
    """Refuse an official split whose counts are exactly another paper dataset's Table 1 (the
    1/64 folder given as yoochoose4, say); other counts are allowed (samples, reruns)."""
    ours = (int(np.maximum(split.train.lengths - 1, 0).sum()), int(np.maximum(split.test.lengths - 1, 0).sum()))
    for other in DATASETS.values():
        p = other.paper
        if p is None or other.name == request.name:
            continue
        own = request.definition.paper
        if ours == (p.train_sequences, p.test_sequences) and (own is None or ours != (own.train_sequences, own.test_sequences)):
            raise ConfigError(
                f"{folder} holds the official split of {other.label} ({ours[0]:,} training and {ours[1]:,} test "
                f"prefixes, as the paper's Table 1 gives for it), not of {request.definition.label}: "
                f"run it as --dataset {other.name}, or point --data-dir at the {request.definition.official_folder} split"
            )


def dataset_stats(split: Split) -> dict[str, Any]:
    """Our Table 1 figures for a prepared split (training list before any validation carve).

    clicks: clicks in the training and test sessions after preprocessing.
    average_length: the paper's "average length", the mean length of the augmented sequences
    (every training and test prefix with its target, i.e. prefix length + 1): on the official
    splits it gives the paper's 6.16 (YOOCHOOSE 1/64) and 5.13 (DIGINETICA; the paper prints
    5.12). average_session_length: clicks per session, the other common reading.
    """
    sessions = [split.train, split.test] + ([split.valid] if split.valid is not None else [])
    clicks = sum(s.n_clicks for s in sessions)
    n_sessions = sum(s.n_sessions for s in sessions)
    lengths = np.concatenate([s.lengths for s in sessions])
    n_prefixes = np.maximum(lengths - 1, 0)
    # a session of length n gives prefixes of lengths n-1 .. 1, i.e. sequences of lengths n .. 2
    sequence_clicks = float((n_prefixes * (lengths + 2) / 2).sum())
    train_prefixes = int(np.maximum(split.train.lengths - 1, 0).sum())
    if split.valid is not None:
        train_prefixes += int(np.maximum(split.valid.lengths - 1, 0).sum())
    return {
        "clicks": int(clicks),
        "train_sequences": train_prefixes,
        "test_sequences": int(np.maximum(split.test.lengths - 1, 0).sum()),
        "items": int(split.n_items),
        "items_in_training_sessions": int(np.count_nonzero(np.bincount(split.train.items, minlength=split.n_items + 1)[1:])),
        "average_length": sequence_clicks / int(n_prefixes.sum()) if n_prefixes.sum() else 0.0,
        "average_session_length": float(clicks / n_sessions) if n_sessions else 0.0,
        "train_sessions": int(split.train.n_sessions + (split.valid.n_sessions if split.valid is not None else 0)),
        "test_sessions": int(split.test.n_sessions),
    }


#: the Table 1 statistics, in the paper's order, with their labels
TABLE1_KEYS = (
    ("clicks", "clicks"),
    ("train_sequences", "training sequences"),
    ("test_sequences", "test sequences"),
    ("items", "items (candidates)"),
    ("average_length", "average length"),
)


def compare_table1(definition: DatasetDef, stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Our Table 1 figures beside the paper's: per statistic, both values, whether they are
    equal (counts exactly, the average to its two printed decimals) and the reason when not."""
    paper = definition.paper
    rows = []
    for key, label in TABLE1_KEYS:
        ours = stats[key]
        printed = getattr(paper, key, None) if paper is not None else None
        if printed is None:
            equal = None
        elif key == "average_length":
            equal = abs(ours - printed) <= 0.005 + 1e-9
        else:
            equal = int(ours) == int(printed)
        note = (paper.notes.get(key, "") if paper is not None and equal is False else "")
        rows.append({"key": key, "statistic": label, "ours": ours, "paper": printed, "equal": equal, "note": note})
    return rows


def size_warning(definition: DatasetDef, stats: dict[str, Any], source_kind: str | None) -> str | None:
    """One line when a split cannot support accuracy figures that mean what the paper's mean:
    prepared from a sample of a paper dataset, or fewer training than test prefixes."""
    paper = definition.paper
    train, test = stats["train_sequences"], stats["test_sequences"]
    if paper is not None and train < 0.95 * paper.train_sequences:
        return (f"{definition.name} here is a sample ({train:,} training prefixes where the paper's "
                f"{definition.label} has {paper.train_sequences:,}{'; ' + source_kind if source_kind else ''}): "
                "its numbers are not comparable to the paper's")
    if train < test:
        return (f"{definition.name} has fewer training prefixes than test prefixes ({train:,} vs {test:,}): "
                "models are barely trained, so its numbers say little")
    return None
