"""Summaries of run records: one row per (dataset, model, protocol), mean and std over seeds."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from sessbench.report.paper import dataset_base, paper_value

HEADLINE = ("P@20", "MRR@20")


@dataclass
class Row:
    dataset: str
    model: str
    protocol: str
    config_id: str = ""
    label: str = ""  # the model name, with the config id when one model ran with several configs
    seeds: list[int] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)
    failed: int = 0
    stopped: int = 0  # runs the time budget stopped before their training ended
    fit_s: list[float] = field(default_factory=list)
    predict_s: list[float] = field(default_factory=list)

    def mean(self, key: str) -> float | None:
        v = self.values.get(key)
        return sum(v) / len(v) if v else None

    def std(self, key: str) -> float | None:
        v = self.values.get(key)
        if not v:
            return None
        if len(v) == 1:
            return 0.0
        m = sum(v) / len(v)
        return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


#: how a varied hyperparameter reads in a row label: (key, value) -> phrase, or key -> phrase format
READABLE_PARAMS: dict[Any, str] = {
    ("lr_schedule", "official_torch2"): "official code's lr timing",
    ("lr_schedule", "after_epoch"): "paper's lr timing",
    ("backoff", "none"): "no back-off",
    ("backoff", "popularity"): "popularity back-off",
    ("session_factor", "none"): "no session factor",
    ("session_factor", "mean"): "prefix-mean session factor",
    "lr": "lr {value:g}",
    "epochs": "{value} epochs",
    "dropout": "dropout {value:g}",
    "hidden_size": "hidden {value}",
}


def readable_param(key: str, value: Any) -> str:
    """A hyperparameter setting as a reader would say it (`official code's lr timing`, `lr 0.01`)."""
    phrase = READABLE_PARAMS.get((key, value)) if isinstance(value, (str, int, float, bool)) else None
    if phrase:
        return phrase
    template = READABLE_PARAMS.get(key)
    if template and isinstance(value, (int, float)) and not isinstance(value, bool):
        return template.format(value=value)
    return f"{key}={value}"


def config_label(model: str, config_id: str, configs: dict[str, dict[str, Any]]) -> str:
    """How a run group is named when one model ran with several configurations on one dataset.

    `configs` maps each sibling's config_id to its hyperparameters. The label names the
    hyperparameters whose values differ among the siblings (`srgnn (official code's lr timing)`,
    `narm (lr 0.01)`), so a reader sees what was varied; the config_id is the fallback when only
    settings differ.
    """
    if len(configs) < 2:
        return model
    keys = sorted({k for params in configs.values() for k in params})
    varied = [k for k in keys if len({json.dumps(p.get(k), sort_keys=True, default=str) for p in configs.values()}) > 1]
    if not varied:
        return f"{model} (config {config_id})"
    params = configs[config_id]
    return f"{model} ({', '.join(readable_param(k, params.get(k)) for k in varied)})"


def config_labels(params: dict[tuple[Any, str, str], dict[str, Any]]) -> dict[tuple[Any, str, str], str]:
    """`config_label` for every (scope, model, config_id) key: siblings share scope and model."""
    siblings: dict[tuple[Any, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for (scope, model, config_id), values in params.items():
        siblings[(scope, model)][config_id] = values
    return {
        (scope, model, config_id): config_label(model, config_id, siblings[(scope, model)])
        for scope, model, config_id in params
    }


def headline_value(record: dict[str, Any], key: str) -> float | None:
    """The value a table shows: under the paper protocol the per-metric best over epochs."""
    if record.get("protocol") == "paper" and record.get("paper_best", {}).get(key) is not None:
        return float(record["paper_best"][key])
    value = record.get("metrics", {}).get(key)
    return None if value is None else float(value)


def stopped_by_budget(record: dict[str, Any]) -> bool:
    """Whether the time budget cut the run's training short (selection, refit or the fit)."""
    parts = (record.get("fit_summary"), record.get("selection"))
    return any(isinstance(p, dict) and p.get("stopped") == "time_budget" for p in parts) or "refit_skipped" in record


def summarize(records: Iterable[dict[str, Any]]) -> list[Row]:
    """One row per (dataset, model, protocol, config): only runs that differ by seed are averaged."""
    rows: dict[tuple[str, str, str, str], Row] = {}
    params_of: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for rec in records:
        key = (rec["dataset"], rec["model"], rec.get("protocol", "validated"), rec.get("config_id", ""))
        row = rows.setdefault(key, Row(*key, label=rec["model"]))
        params_of.setdefault(key, (rec.get("config") or {}).get("params") or {})
        if rec.get("status") != "ok":
            row.failed += 1
            continue
        row.seeds.append(int(rec.get("seed", 0)))
        row.stopped += stopped_by_budget(rec)
        for metric in rec.get("metrics", {}):
            value = headline_value(rec, metric)
            if value is not None:
                row.values.setdefault(metric, []).append(value)
        timing = rec.get("timing", {})
        row.fit_s.append(float(timing.get("fit_s", 0.0)))
        row.predict_s.append(float(timing.get("predict_s", 0.0)))
    labels = config_labels({((d, p), m, c): params_of[(d, m, p, c)] for d, m, p, c in rows})
    for (dataset, model, protocol, config_id), row in rows.items():
        row.label = labels[((dataset, protocol), model, config_id)]
    return sorted(rows.values(), key=lambda r: (r.dataset, r.protocol, r.model != "oracle", r.label))


def _fmt(mean: float | None, std: float | None, n: int) -> str:
    if mean is None:
        return "-"
    text = f"{100 * mean:.2f}"
    if n > 1 and std is not None:
        text += f" ± {100 * std:.2f}"
    return text


def is_full_dataset(records: list[dict[str, Any]], dataset: str) -> bool:
    """True when a dataset's split has the paper's size (within 5% of Table 1's training prefixes).

    A split prepared from a sample of the raw data has the right name but not the paper's data,
    so a difference to the paper's numbers would mean nothing: tables then omit it.
    """
    from sessbench.data.registry import DATASETS

    definition = DATASETS.get(dataset_base(dataset))
    if definition is None or definition.paper is None:
        return False
    sizes = [r.get("dataset_info", {}).get("train_sequences") for r in records if r["dataset"] == dataset]
    sizes = [s for s in sizes if s]
    paper = definition.paper.train_sequences
    return bool(sizes) and all(abs(s - paper) <= 0.05 * paper for s in sizes)


def comparison_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the comparison table: ours (percent, mean ± std over seeds) beside the paper's.

    The difference to the paper is shown only for splits of the paper's size (see
    `is_full_dataset`); for a split prepared from a sample it reads "sample".
    """
    rows = summarize(records)
    full = {r.dataset: is_full_dataset(records, r.dataset) for r in rows}
    references: dict[tuple[str, str], dict[str, Row]] = defaultdict(dict)
    for r in rows:
        references[(r.dataset, r.protocol)].setdefault(r.model, r)  # first config of oracle / pop
    out = []
    for r in rows:
        dataset_name = dataset_base(r.dataset)
        oracle = references[(r.dataset, r.protocol)].get("oracle")
        pop = references[(r.dataset, r.protocol)].get("pop")
        entry: dict[str, Any] = {
            "dataset": r.dataset,
            "model": r.label,
            "protocol": r.protocol,
            "seeds": len(r.seeds),
            "failed": r.failed,
            "stopped early": r.stopped,
        }
        for metric in HEADLINE:
            entry[metric] = _fmt(r.mean(metric), r.std(metric), len(r.seeds))
            paper = paper_value(r.model, dataset_name, metric)
            entry[f"paper {metric}"] = "-" if paper is None else f"{paper:.2f}"
            mean = r.mean(metric)
            if paper is None or mean is None:
                entry[f"Δ {metric}"] = "-"
            elif not full[r.dataset]:
                entry[f"Δ {metric}"] = "sample"
            else:
                entry[f"Δ {metric}"] = f"{100 * mean - paper:+.2f}"
        o, m = (oracle.mean("P@20") if oracle else None), r.mean("P@20")
        entry["share of oracle P@20"] = "-" if not o or m is None else f"{m / o:.3f}"
        p = pop.mean("P@20") if pop else None
        entry["normalized gain"] = "-" if not o or m is None or p is None or o == p else f"{(m - p) / (o - p):.3f}"
        entry["fit s"] = f"{sum(r.fit_s) / len(r.fit_s):.1f}" if r.fit_s else "-"
        entry["predict s"] = f"{sum(r.predict_s) / len(r.predict_s):.1f}" if r.predict_s else "-"
        out.append(entry)
    return out


def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no runs)\n"
    from sessbench.report.markdown import escape  # names from configs and data: no markup, no line breaks

    cols = columns or list(rows[0])
    lines = ["| " + " | ".join(escape(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(escape(str(row.get(c, ""))) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def text_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A plain aligned table for the terminal."""
    if not rows:
        return "(no runs)\n"
    cols = columns or list(rows[0])
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*cols), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*(str(r.get(c, "")) for c in cols)) for r in rows]
    return "\n".join(lines) + "\n"
