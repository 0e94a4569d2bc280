"""The runs store as the report sees it: records grouped into rows, ranks loaded on demand.

A `RunGroup` is one (dataset, protocol, model, config) combination: only runs that differ by
seed are averaged (the record's `config_id` is the hash of everything but the seed). The
report never reruns a model; everything comes from the JSON records and their rank files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from sessbench.evaluation import RankCounts
from sessbench.report.paper import MODEL_ORDER, PAPER_DATASETS
from sessbench.report.tables import config_labels
from sessbench.results import iter_records

#: datasets in the order the paper shows them, then ours
DATASET_ORDER = (*PAPER_DATASETS, "yoochoose", "synthetic")
ORACLE = "oracle"


def headline_value(record: dict[str, Any], key: str) -> float | None:
    """The value a table shows: under the paper protocol the per-metric best over epochs."""
    if record.get("protocol") == "paper" and (record.get("paper_best") or {}).get(key) is not None:
        return float(record["paper_best"][key])
    value = (record.get("metrics") or {}).get(key)
    return None if value is None else float(value)


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1; 0 for one value, None for none)."""
    if not values:
        return None, None
    m = math.fsum(values) / len(values)
    if len(values) == 1:
        return m, 0.0
    return m, math.sqrt(math.fsum((x - m) ** 2 for x in values) / (len(values) - 1))


@dataclass
class RunGroup:
    dataset: str
    protocol: str
    model: str
    config_id: str
    label: str = ""
    ok: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return sorted(int(r.get("seed", 0)) for r in self.ok)

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
            if path is not None and path.is_file():
                try:
                    out.append((int(r.get("seed", 0)), RankCounts.load(path)))
                except (OSError, ValueError, KeyError):
                    continue
        return out

    def mean_reciprocal_ranks(self, k: int = 20) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-example expected RR@k averaged over seeds, and the prefix lengths; None without ranks.

        Seeds whose examples differ from the first seed's (another test set) are left out.
        """
        ranks = self.ranks
        if not ranks:
            return None
        lengths = ranks[0][1].prefix_length
        same = [rc for _, rc in ranks if len(rc) == len(lengths) and np.array_equal(rc.prefix_length, lengths)]
        total = np.zeros(len(lengths), dtype=np.float64)
        for rc in same:
            total += rc.reciprocal_rank(k)
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
    name = dataset.split(":")[0]
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
    """Every record of a runs directory, grouped."""

    records: list[dict[str, Any]]
    groups: list[RunGroup]

    @classmethod
    def load(cls, runs_dir: Path) -> "Store":
        return cls.from_records(list(iter_records(runs_dir)))

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]]) -> "Store":
        records = list(records)
        by_key: dict[tuple[str, str, str, str], RunGroup] = {}
        for rec in records:
            key = (str(rec.get("dataset")), str(rec.get("protocol", "validated")), str(rec.get("model")),
                   str(rec.get("config_id", "")))
            group = by_key.setdefault(key, RunGroup(*key, label=key[2]))
            (group.ok if rec.get("status") == "ok" else group.failed).append(rec)
        labels = config_labels({
            ((d, p), m, c): ((group.ok or group.failed)[0].get("config") or {}).get("params") or {}
            for (d, p, m, c), group in by_key.items()
        })
        for (dataset, protocol, model, config_id), group in by_key.items():
            group.label = labels[((dataset, protocol), model, config_id)]
        groups = sorted(
            by_key.values(),
            key=lambda g: (dataset_sort_key(g.dataset), g.protocol != "validated", g.protocol,
                           model_sort_key(g.model), g.label),
        )
        return cls(records, groups)

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

    def find(self, dataset: str, protocol: str, model: str) -> RunGroup | None:
        """The (first-config) group of a model, or None when it has no ok run."""
        for g in self.in_dataset(dataset, protocol):
            if g.model == model:
                return g
        return None

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
