"""Repeat and explore targets: metrics split by whether the target was already in the prefix.

About a quarter of the test targets on these datasets repeat an item the session has already
clicked. A model can score well by merely re-ranking the prefix (S-POP does nothing else), so an
average over all targets hides which models find new items. Every model's P@20 and MRR@20 are
therefore also shown on the repeat targets and on the explore targets (new to the session),
from the rank files and the split's example table (`sessbench.results.test_example_table`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sessbench.report.doc import Cell, Column, Table
from sessbench.report.fmt import DASH, integer, pct_cell
from sessbench.report.store import ORACLE, RunGroup, Store, mean_std

KINDS = (("repeat", True), ("explore", False))


def repeat_mask(store: Store, dataset: str, protocol: str) -> np.ndarray | None:
    """Per test example of a dataset: True when the target repeats an item of its prefix."""
    for g in store.in_dataset(dataset, protocol):
        examples = g.examples()
        if examples is not None:
            return examples["repeat"].astype(bool)
    return None


def repeat_share(store: Store, dataset: str) -> float | None:
    for protocol in store.protocols(dataset):
        mask = repeat_mask(store, dataset, protocol)
        if mask is not None and len(mask):
            return float(mask.mean())
    return None


def split_values(group: RunGroup, mask: np.ndarray, metric: str) -> dict[str, tuple[float | None, float | None, int]]:
    """(mean, std over seeds, seeds) of `metric` on the repeat and on the explore targets."""
    out = {}
    for name, want in KINDS:
        chosen = mask == want
        values = []
        for _, rc in group.ranks:
            if len(rc) != len(mask) or not chosen.any():
                continue
            per = rc.hit(20) if metric == "P@20" else rc.reciprocal_rank(20)
            values.append(float(per[chosen].mean()))
        mean, std = mean_std(values)
        out[name] = (mean, std, len(values))
    return out


def repeat_explore_table(store: Store, dataset: str, protocol: str) -> Table | None:
    """P@20 and MRR@20 of every model on repeat and explore targets; None without the split table."""
    mask = repeat_mask(store, dataset, protocol)
    groups = [g for g in store.in_dataset(dataset, protocol) if g.ranks]
    if mask is None or not groups:
        return None
    n_repeat, n_explore = int(mask.sum()), int((~mask).sum())
    columns = [Column("model")]
    for metric in ("P@20", "MRR@20"):
        for name, _ in KINDS:
            columns.append(Column(f"{metric} {name}", "r", csv=(f"{metric} {name} mean (%)", f"{metric} {name} std (%)")))
    table = Table(
        f"repeat-explore-{_slug(dataset)}{'' if protocol == 'validated' else '-' + protocol}",
        f"Repeat and explore targets on {dataset}" + ("" if protocol == "validated" else f" ({protocol} protocol)")
        + f": {integer(n_repeat)} targets repeat an item of their prefix ({100 * n_repeat / len(mask):.1f}%), "
        f"{integer(n_explore)} are new to the session",
        columns,
    )
    for g in groups:
        cells: list[Cell] = [Cell(g.label)]
        for metric in ("P@20", "MRR@20"):
            values = split_values(g, mask, metric)
            for name, _ in KINDS:
                mean, std, n = values[name]
                cells.append(pct_cell(mean, std, n) if mean is not None else Cell(DASH, csv=("", "")))
        table.add(*cells)
    table.note(
        "repeat: the target occurs in its prefix; explore: it does not. Mean ± std over seeds, each seed's value "
        "the mean over that subset of test prefixes. The oracle is shown where the data are synthetic."
        if any(g.model == ORACLE for g in groups) else
        "repeat: the target occurs in its prefix; explore: it does not. Mean ± std over seeds, each seed's value "
        "the mean over that subset of test prefixes."
    )
    return table


def repeat_explore_figure(store: Store, dataset: str, protocol: str, out_dir: Path, stem: str) -> list[Path] | None:
    """Grouped bars per model: repeat vs explore targets, P@20 above, MRR@20 below."""
    from sessbench.report.figures import LONG_COLOR, SHORT_COLOR, Series, two_panel_bars

    mask = repeat_mask(store, dataset, protocol)
    groups = [g for g in store.in_dataset(dataset, protocol) if g.ranks]
    if mask is None or not groups:
        return None
    labels = [g.label for g in groups]
    names = (f"repeat: {int(mask.sum()):,} targets", f"explore: {int((~mask).sum()):,} targets")

    def series(metric: str) -> list[Series]:
        points = [split_values(g, mask, metric) for g in groups]
        return [
            Series(names[i], color, [None if v[name][0] is None else (100 * v[name][0], 100 * (v[name][1] or 0.0), v[name][2])
                                      for v in points])
            for i, ((name, _), color) in enumerate(zip(KINDS, (SHORT_COLOR, LONG_COLOR)))
        ]

    return two_panel_bars(labels, series, f"Repeat and explore targets on {dataset}", protocol, out_dir, stem)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
