"""The runs store as the report sees it: records grouped into rows, ranks loaded on demand.

A `RunGroup` is one (dataset, protocol, model, config, code state) combination: only runs that
differ by seed are averaged (the record's `config_id` hashes everything but the seed, the data's
source included), and never runs of different code (`code_state`, see
`sessbench.environment.code_state`) or of different preparations of the data (`split_checksum`:
the same source prepared by other code). When one configuration ran under several such states, the
tables show the state with the most seeds (then the newest) and the others are listed apart
(`Store.superseded`).

Runs from a clean, committed tree are the ones the tables show; runs from a dirty tree or from
no git checkout are set apart (`Store.unverified`) and labelled. Only when a store holds no clean
run at all (a user's own experiments) do its tables show those, with a warning (`Store.verified`
is then False).

A dataset name with runs from several sources (say `yoochoose64` from the official split and from
a raw sample) becomes one column per source: `yoochoose64 [raw yoochoose-clicks.dat 1a2b3c4d]`.
The report never reruns a model; everything comes from the JSON records, their rank files and
the per-split example tables (`sessbench.results.test_example_table`).
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from sessbench.evaluation import RankCounts
from sessbench.report.paper import MODEL_ORDER, PAPER_DATASETS, dataset_base
from sessbench.report.tables import config_labels, headline_value
from sessbench.results import (
    RECORD_FIX, is_clean, load_split_examples, scan_records, split_examples_path, split_table_id,
)

UNRECORDED = "unrecorded"
RANKS_FIX = ("`sessbench run ... --resume` reruns a run whose rank file is missing or corrupt; its tests and "
             "per-example tables leave the run out meanwhile")

#: datasets in the order the paper shows them, then ours
DATASET_ORDER = (*PAPER_DATASETS, "yoochoose", "synthetic")
ORACLE = "oracle"


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1; 0 for one value, None for none)."""
    if not values:
        return None, None
    m = math.fsum(values) / len(values)
    if len(values) == 1:
        return m, 0.0
    return m, math.sqrt(math.fsum((x - m) ** 2 for x in values) / (len(values) - 1))


def code_state_of(record: dict[str, Any]) -> str:
    """The digest of the code a run executed (`unrecorded` for records older than code states)."""
    state = record.get("code_state")
    return str(state.get("digest")) if isinstance(state, dict) and state.get("digest") else UNRECORDED


def split_checksum_of(record: dict[str, Any]) -> str:
    """The checksum of the prepared split a run used ('' for records without one): the same source
    prepared by other preparation code is other data."""
    split = record.get("split_checksum")
    return split if isinstance(split, str) else ""


def _state_of(record: dict[str, Any]) -> tuple[str, str]:
    """What runs must share to be averaged besides their configuration: code state and prepared split."""
    return code_state_of(record), split_checksum_of(record)


def source_digest_of(record: dict[str, Any]) -> str:
    source = record.get("source")
    return str(source.get("digest")) if isinstance(source, dict) and source.get("digest") else UNRECORDED


def source_label(record: dict[str, Any]) -> str:
    """A short name of a record's data source, for column headers."""
    source = record.get("source") if isinstance(record.get("source"), dict) else {}
    kind = str(source.get("kind") or UNRECORDED)
    files = [f for f in source.get("files") or [] if isinstance(f, dict)]
    if kind == "official-split":
        return "official split"
    if files:
        return f"{kind} {files[0].get('name')} {str(files[0].get('sha256', ''))[:8]}"
    return f"{kind} {source_digest_of(record)[:8]}" if kind != UNRECORDED else "unrecorded source"


def dataset_views(records: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(dataset key, source digest) -> the column name: the key, or key [source] when one key has
    runs from several sources (they are never one column)."""
    digests: dict[str, set[str]] = {}
    for r in records:
        digests.setdefault(str(r.get("dataset")), set()).add(source_digest_of(r))
    views = {}
    for r in records:
        key, digest = str(r.get("dataset")), source_digest_of(r)
        views[(key, digest)] = key if len(digests[key]) == 1 else f"{key} [{source_label(r)}]"
    return views


@dataclass
class RunGroup:
    dataset: str
    protocol: str
    model: str
    config_id: str
    code_state: str = UNRECORDED
    split_checksum: str = ""
    label: str = ""
    ok: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    #: the store's per-split example tables (sessions, repeat targets), loaded on demand
    examples_loader: Any = field(default=None, repr=False)
    #: where unusable rank files are reported (the store's `problems`)
    problems: list[Any] = field(default_factory=list, repr=False)

    @property
    def seeds(self) -> list[int]:
        return sorted(int(r.get("seed", 0)) for r in self.ok)

    @property
    def seed_dependent(self) -> bool:
        """Whether the model's result depends on the seed (recorded by the runner; else assumed)."""
        flags = [r.get("seed_dependent") for r in self.ok + self.failed if isinstance(r.get("seed_dependent"), bool)]
        return flags[0] if flags else self.model != ORACLE

    @property
    def default_config(self) -> bool:
        """Whether this group's runs used the model's default configuration (recorded by the runner
        since `default_config` exists; older records count as default)."""
        return all(r.get("default_config", True) is not False for r in self.ok + self.failed)

    @property
    def split_table(self) -> str | None:
        """The name of this group's split example table (from its dataset key and source)."""
        for r in self.ok:
            digest = source_digest_of(r)
            if digest != UNRECORDED:
                return split_table_id(str(r.get("dataset_key", r.get("dataset"))), digest)
        return None

    def examples(self) -> dict[str, np.ndarray] | None:
        """The test example table of this group's split (None when the store has none)."""
        table_id = self.split_table
        if table_id is None or self.examples_loader is None:
            return None
        table = self.examples_loader(table_id)
        if table is None or (self.ranks and len(table["session"]) != len(self.ranks[0][1])):
            return None
        if table.get("split_checksum") is not None and self.split_checksum and self.split_checksum != table["split_checksum"]:
            return None  # the table describes another preparation of this data: its sessions may differ
        return table

    @property
    def finished_last(self) -> str:
        return max((str(r.get("finished_at", "")) for r in self.ok + self.failed), default="")

    def values(self, metric: str) -> list[float]:
        out = [headline_value(r, metric) for r in self.ok]
        return [v for v in out if v is not None]

    def stat(self, metric: str) -> tuple[float | None, float | None]:
        return mean_std(self.values(metric))

    def group_values(self, group: str, metric: str) -> list[float]:
        out = []
        for r in self.ok:
            v = ((r.get("groups") or {}).get(group) or {}).get(metric)
            if v is not None:
                out.append(float(v))
        return out

    def numbers(self, path: tuple[str, ...]) -> list[float]:
        """A numeric field of every ok record, e.g. ("timing", "fit_s") or ("peak_memory_mb",)."""
        out = []
        for r in self.ok:
            v: Any = r
            for key in path:
                v = v.get(key) if isinstance(v, dict) else None
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out.append(float(v))
        return out

    @cached_property
    def ranks(self) -> list[tuple[int, RankCounts]]:
        """(seed, rank counts) of every ok run whose rank file can be read, by seed."""
        out = []
        for r in sorted(self.ok, key=lambda r: int(r.get("seed", 0))):
            path = ranks_file(r)
            if path is None:
                continue
            try:
                out.append((int(r.get("seed", 0)), RankCounts.load(path)))
            except FileNotFoundError:
                self.problems.append((path, "is missing (its record names it)", RANKS_FIX))
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                self.problems.append((path, f"cannot be read ({type(exc).__name__}: {str(exc)[:80]})", RANKS_FIX))
        return out

    def mean_reciprocal_ranks(self, k: int = 20) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-example expected RR@k averaged over seeds, and the prefix lengths; None without ranks.

        Seeds whose examples differ from the first seed's (another test set) are left out.
        """
        return self.mean_per_example("rr", k)

    def mean_per_example(self, kind: str, k: int = 20) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-example expected `kind` ("rr": RR@k, "hit": P@k) averaged over seeds, and the prefix
        lengths; None without ranks."""
        ranks = self.ranks
        if not ranks:
            return None
        lengths = ranks[0][1].prefix_length
        same = [rc for _, rc in ranks if len(rc) == len(lengths) and np.array_equal(rc.prefix_length, lengths)]
        total = np.zeros(len(lengths), dtype=np.float64)
        for rc in same:
            total += rc.reciprocal_rank(k) if kind == "rr" else rc.hit(k)
        return total / len(same), lengths


def ranks_file(record: dict[str, Any]) -> Path | None:
    """Where a record's rank counts lie: beside the record (stores may be nested)."""
    name = record.get("ranks_file")
    where = record.get("_path")
    if not name or not where:
        return None
    return Path(where).parent / Path(str(name)).name


def model_sort_key(model: str) -> tuple[int, str]:
    """Paper order (oracle, POP, ..., SR-GNN variants, SR-GNN); unknown models after, by name."""
    return (MODEL_ORDER.index(model), "") if model in MODEL_ORDER else (len(MODEL_ORDER), model)


def dataset_sort_key(dataset: str) -> tuple[int, str]:
    name = dataset_base(dataset)
    base = DATASET_ORDER.index(name) if name in DATASET_ORDER else len(DATASET_ORDER)
    return (base, dataset)


def group_sizes(groups: list[RunGroup]) -> tuple[int, int] | None:
    """(short, long) test prefix counts, from the first record that stores them (they are the split's)."""
    for g in groups:
        for r in g.ok:
            n = r.get("n_examples") or {}
            if "short" in n and "long" in n:
                return int(n["short"]), int(n["long"])
    return None


@dataclass
class Store:
    """Every record of a runs directory, grouped (see the module docstring)."""

    records: list[dict[str, Any]]
    groups: list[RunGroup]
    #: runs set apart from the tables: from a dirty tree or no git checkout (when clean runs exist)
    unverified: list[dict[str, Any]] = field(default_factory=list)
    #: configurations that also ran under another code state than the one the tables show
    superseded: list[RunGroup] = field(default_factory=list)
    #: False when no run comes from a clean commit (the tables then show unverified runs)
    verified: bool = True
    runs_dir: Path | None = None
    #: files the report could not use: (path, what is wrong, how to fix it); the report goes on
    problems: list[tuple[Path, str, str]] = field(default_factory=list)
    _examples: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, runs_dir: Path) -> "Store":
        """The store of a runs directory; files it cannot use are listed in `problems`."""
        records, problems = scan_records(runs_dir)
        store = cls.from_records(records, runs_dir=Path(runs_dir))
        store.problems.extend((path, why, RECORD_FIX) for path, why in problems)
        return store

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]], runs_dir: Path | None = None) -> "Store":
        records, copies = _without_copies(list(records))
        clean = [r for r in records if is_clean(r)]
        verified = bool(clean) or not records
        shown = clean if clean else records
        unverified = [r for r in records if not is_clean(r)] if clean else []
        views = dataset_views(shown)
        shown = [{**r, "dataset": views[(str(r.get("dataset")), source_digest_of(r))], "dataset_key": r.get("dataset")}
                 for r in shown]
        by_key: dict[tuple[str, str, str, str, str, str], RunGroup] = {}
        for rec in shown:
            key = (str(rec.get("dataset")), str(rec.get("protocol", "validated")), str(rec.get("model")),
                   str(rec.get("config_id", "")), *_state_of(rec))
            group = by_key.setdefault(key, RunGroup(*key, label=key[2]))
            (group.ok if rec.get("status") == "ok" else group.failed).append(rec)
        # one code state per configuration in the tables: the most seeds, then the newest
        by_config: dict[tuple[str, str, str, str], list[RunGroup]] = {}
        for (d, p, m, c, _, _), group in by_key.items():
            by_config.setdefault((d, p, m, c), []).append(group)
        current, superseded = [], []
        for candidates in by_config.values():
            candidates.sort(key=lambda g: (len(g.ok), g.finished_last), reverse=True)
            current.append(candidates[0])
            superseded.extend(candidates[1:])
        labels = config_labels({
            ((g.dataset, g.protocol), g.model, g.config_id): ((g.ok or g.failed)[0].get("config") or {}).get("params") or {}
            for g in current
        })
        for g in current:
            g.label = labels[((g.dataset, g.protocol), g.model, g.config_id)]
        shown_split = {(g.dataset, g.protocol, g.model, g.config_id): g.split_checksum for g in current}
        for g in superseded:
            other_split = shown_split[(g.dataset, g.protocol, g.model, g.config_id)] != g.split_checksum
            g.label = f"{g.model} @ {g.code_state}" + (f", split {g.split_checksum[:8]}" if other_split else "")
        groups = sorted(
            current,
            key=lambda g: (dataset_sort_key(g.dataset), g.protocol != "validated", g.protocol,
                           model_sort_key(g.model), g.label),
        )
        kept = {id(r) for g in groups for r in g.ok + g.failed}
        store = cls([r for r in shown if id(r) in kept], groups, unverified, superseded, verified, runs_dir)
        for g in groups + superseded:
            g.examples_loader = store.split_examples
            g.problems = store.problems
        store.problems.extend(
            (Path(path), f"is a copy of {kept_path} (the same run id and code state); counted once",
             "remove the copy (a store inside another, or an archive unpacked into the runs folder)")
            for path, kept_path in copies
        )
        return store

    def split_examples(self, table_id: str) -> dict[str, np.ndarray] | None:
        """The per-example table of a split (`<runs_dir>/splits/<table_id>.npz`), or None."""
        if table_id not in self._examples:
            path = None if self.runs_dir is None else split_examples_path(self.runs_dir, table_id)
            self._examples[table_id] = None if path is None else load_split_examples(path)
        return self._examples[table_id]

    @property
    def datasets(self) -> list[str]:
        return sorted({g.dataset for g in self.groups}, key=dataset_sort_key)

    def in_dataset(self, dataset: str, protocol: str | None = None, ok_only: bool = True) -> list[RunGroup]:
        return [
            g for g in self.groups
            if g.dataset == dataset and (protocol is None or g.protocol == protocol) and (g.ok or not ok_only)
        ]

    def protocols(self, dataset: str) -> list[str]:
        return sorted({g.protocol for g in self.groups if g.dataset == dataset and g.ok},
                      key=lambda p: (p != "validated", p))

    def configs_of(self, dataset: str, protocol: str, model: str) -> list[RunGroup]:
        """Every configuration of a model with an ok run, the one `find` picks first."""
        groups = [g for g in self.in_dataset(dataset, protocol) if g.model == model]
        return sorted(groups, key=lambda g: (not g.default_config, -len(g.ok), g.label))

    def find(self, dataset: str, protocol: str, model: str) -> RunGroup | None:
        """The group that stands for a model in the headline tables and tests, or None when it has
        no ok run: its default configuration (configs/models, no --set) when it ran in several,
        then the configuration with the most seeds; never the first label in sort order."""
        groups = self.configs_of(dataset, protocol, model)
        return groups[0] if groups else None

    def dataset_info(self, dataset: str) -> dict[str, Any] | None:
        for rec in self.records:
            if rec.get("dataset") == dataset and rec.get("status") == "ok" and rec.get("dataset_info"):
                return rec["dataset_info"]
        return None

    @property
    def ok_records(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") == "ok"]

    @property
    def failed_records(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") != "ok"]


def _without_copies(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """One record per (run id, code state): a copy of a run (the same store twice under one folder)
    must not count as another seed. Returns the records kept and (copy's path, kept record's path)."""
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    copies: list[tuple[str, str]] = []
    out: list[dict[str, Any]] = []
    for rec in records:
        rid = rec.get("run_id")
        key = (rid, _state_of(rec)) if isinstance(rid, str) else None
        if key is not None and key in kept:
            copies.append((str(rec.get("_path", rid)), str(kept[key].get("_path", rid))))
            continue
        if key is not None:
            kept[key] = rec
        out.append(rec)
    return out, copies
