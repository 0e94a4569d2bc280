"""The report's figures (matplotlib, no pyplot state): ablation and short/long bar charts.

Every figure is written as PNG and SVG with fixed metadata (no dates, no version strings) and a
fixed SVG hash salt, so regenerating the report gives byte-identical files. Figures use the
object API (`Figure` + Agg canvas), so no global backend is switched and nothing leaks between
figures.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from sessbench.atomic import atomic_write_bytes
from sessbench.report.paper import ABLATIONS
from sessbench.report.store import RunGroup, Store, group_sizes, mean_std

#: Okabe-Ito colours (distinguishable with common colour-vision deficiencies)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
SHORT_COLOR, LONG_COLOR = "#0072B2", "#E69F00"
DPI = 150
RC = {
    "svg.hashsalt": "sessbench-report",
    "svg.fonttype": "none",  # text stays text: smaller files, searchable in the HTML
    "text.parse_math": False,  # a '$' in a model or dataset name is text, not TeX math
    "text.usetex": False,
    "font.family": "DejaVu Sans",  # shipped with matplotlib: the same glyphs everywhere
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.alpha": 0.35,
    "legend.frameon": False,
}
PNG_METADATA = {"Software": "sessbench report"}
SVG_METADATA = {"Date": None, "Creator": "sessbench report"}
METRICS = (("P@20", "P@20 (%)"), ("MRR@20", "MRR@20 (%)"))


@dataclass
class Series:
    """One bar colour of a grouped chart: a label and a (mean, std, n) per category, in percent."""

    label: str
    color: str
    values: list[tuple[float, float, int] | None]


def save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write `<stem>.png` and `<stem>.svg` under `out_dir` atomically; returns the paths."""
    paths = []
    for ext, meta in (("png", PNG_METADATA), ("svg", SVG_METADATA)):
        buf = io.BytesIO()
        with matplotlib.rc_context(RC):
            fig.savefig(buf, format=ext, dpi=DPI, metadata=meta)
        path = Path(out_dir) / f"{stem}.{ext}"
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths


def grouped_bars(ax, categories: list[str], series: list[Series], ylabel: str, *, value_labels: bool, rotate: bool) -> None:
    """Bars per category, one per series, with ± std error bars where a series has > 1 seed.

    One `bar` and one `errorbar` call per series (not per bar): drawing cost grows with the
    number of artists, and a report has many bars.
    """
    n_series = max(1, len(series))
    width = 0.8 / n_series
    top = 0.0
    for s_index, s in enumerate(series):
        shown = [(c, v) for c, v in enumerate(s.values) if v is not None]
        if not shown:
            continue
        xs = [c - 0.4 + width * (s_index + 0.5) for c, _ in shown]
        means = [v[0] for _, v in shown]
        ax.bar(xs, means, width * 0.92, color=s.color, label=s.label)
        spread = [(x, v[0], v[1]) for x, (_, v) in zip(xs, shown) if v[2] > 1]
        if spread:
            ax.errorbar([x for x, _, _ in spread], [m for _, m, _ in spread], yerr=[e for _, _, e in spread],
                        fmt="none", ecolor="#333333", elinewidth=1, capsize=2.5)
        top = max(top, *(v[0] + (v[1] if v[2] > 1 else 0.0) for _, v in shown))
        if value_labels:
            dark = s.color in ("#0072B2", "#D55E00", "#009E73", "#000000", "#CC79A7")
            for x, mean in zip(xs, means):
                if mean > 0:
                    ax.text(x, mean / 2, f"{mean:.2f}", rotation=90, ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
    ax.set_xticks(range(len(categories)))
    if any(" (" in c for c in categories):  # configuration labels: one hyperparameter per line
        categories = [c.replace(" (", "\n(").replace(", ", "\n") for c in categories]
        rotate = False
    if rotate:
        ax.set_xticklabels(categories, rotation=35, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticklabels(categories)
    ax.set_xlim(-0.6, len(categories) - 0.4)
    ax.set_ylim(0, max(1.0, top * 1.08))
    ax.set_ylabel(ylabel)


def _point(values: list[float]) -> tuple[float, float, int] | None:
    mean, std = mean_std(values)
    return None if mean is None else (100 * mean, 100 * (std or 0.0), len(values))


def ablation_figure(store: Store, kind: str, protocol: str, out_dir: Path, stem: str) -> tuple[list[Path], dict[str, list[str]]] | None:
    """The paper-style ablation chart: datasets as groups, one bar per variant, P@20 and MRR@20.

    Returns the written paths and, per dataset shown, the variants that have no run there; None
    when no dataset has at least two of the variants (nothing to compare).
    """
    spec = ABLATIONS[kind]
    models: tuple[str, ...] = spec["models"]  # type: ignore[assignment]
    datasets, missing = [], {}
    for dataset in store.datasets:
        present = [m for m in models if store.find(dataset, protocol, m) is not None]
        if len(present) >= 2:
            datasets.append(dataset)
            missing[dataset] = [m for m in models if m not in present]
    if not datasets:
        return None
    with matplotlib.rc_context(RC):
        width = max(6.4, 1.6 + 1.1 * len(datasets) * max(1, len(models)) * 0.5)
        fig = Figure(figsize=(width, 3.6), layout="constrained")
        axes = fig.subplots(1, 2)
        for ax, (metric, ylabel) in zip(axes, METRICS):
            series = []
            for i, m in enumerate(models):
                values = []
                for dataset in datasets:
                    g = store.find(dataset, protocol, m)
                    values.append(_point(g.values(metric)) if g else None)
                if any(v is not None for v in values):
                    series.append(Series(m, PALETTE[i % len(PALETTE)], values))
            grouped_bars(ax, datasets, series, ylabel, value_labels=True, rotate=len(datasets) > 3)
            ax.set_title(metric)
            ax.set_xlabel("dataset")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels))
        where = "" if protocol == "validated" else f", {protocol} protocol"
        fig.suptitle(f"{spec['title']}{where}", fontsize=10)
        paths = save(fig, out_dir, stem)
    return paths, missing


def short_long_figure(store: Store, dataset: str, protocol: str, out_dir: Path, stem: str) -> list[Path] | None:
    """Short (<= 5) vs long (> 5) prefixes, every model that ran: P@20 above, MRR@20 below."""
    groups: list[RunGroup] = [
        g for g in store.in_dataset(dataset, protocol) if any(r.get("groups") for r in g.ok)
    ]
    if not groups:
        return None
    n = group_sizes(groups)
    names = ("short (≤ 5)", "long (> 5)") if n is None else (f"short (≤ 5): {n[0]:,} prefixes", f"long (> 5): {n[1]:,} prefixes")

    def series(metric: str) -> list[Series]:
        return [
            Series(names[0], SHORT_COLOR, [_point(g.group_values("short", metric)) for g in groups]),
            Series(names[1], LONG_COLOR, [_point(g.group_values("long", metric)) for g in groups]),
        ]

    return two_panel_bars([g.label for g in groups], series, f"Short and long test prefixes on {dataset}", protocol, out_dir, stem)


def two_panel_bars(
    labels: list[str], series: Callable[[str], list[Series]], title: str, protocol: str, out_dir: Path, stem: str
) -> list[Path]:
    """One bar group per model in two panels, P@20 above and MRR@20 below, one legend under both:
    the layout of every figure that splits the test prefixes in two (short/long, repeat/explore)."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(max(6.4, 1.4 + 0.55 * len(labels)), 6.0), layout="constrained")
        axes = fig.subplots(2, 1, sharex=True)
        for ax, (metric, ylabel) in zip(axes, METRICS):
            grouped_bars(ax, labels, series(metric), ylabel, value_labels=False, rotate=True)
            ax.set_title(metric, loc="left")
        axes[0].tick_params(labelbottom=False)
        axes[1].set_xlabel("model")
        handles, legend_labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, legend_labels, loc="outside lower center", ncol=2)
        where = "" if protocol == "validated" else f", {protocol} protocol"
        fig.suptitle(f"{title}{where}", fontsize=10)
        return save(fig, out_dir, stem)
