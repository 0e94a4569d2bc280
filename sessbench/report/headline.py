"""The headline: the paper's Table 2 at full scale, ours beside the paper's, with intervals.

For YOOCHOOSE 1/64 and DIGINETICA, when the store holds runs on a split of the paper's size (the
official splits), every model of the paper's Table 2 gets: the paper's value, our mean ± std over
seeds, the difference and its 95% confidence interval. The interval is a session bootstrap of the
seed-averaged per-example values (test-set sampling; whole test sessions are drawn, since the
prefixes of one session share their input); the ± is the seed spread. A model whose interval
excludes the paper's value gets a one-line reason (`paper.KNOWN_DIFFERENCES`), or says that it
has none. SR-GNN under the `paper` protocol is checked against the paper within
`SRGNN_CHECK_TOLERANCE`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sessbench.report.doc import Cell, Column, Inline, Table, code, strong
from sessbench.report.fmt import DASH, pct_cell, signed_points
from sessbench.report.paper import (
    PAPER_SHORT,
    SRGNN_CHECK_TOLERANCE,
    SRGNN_THIRD_PARTY,
    TABLE2,
    dataset_base,
    known_difference,
    paper_value,
)
from sessbench.report.stats import bootstrap_mean_ci
from sessbench.report.store import RunGroup, Store, model_sort_key
from sessbench.report.tables import is_full_dataset

#: the paper's datasets that have official splits here, in its column order
FULL_SCALE = ("yoochoose64", "diginetica")
LABELS = {"yoochoose64": "YOOCHOOSE 1/64", "diginetica": "DIGINETICA"}
PROTOCOL_TITLES = {
    "validated": "validated: epochs chosen on a validation carve, refitted on the whole training set, test scored once",
    "paper": "paper: the official code's best test value over epochs",
}


def full_scale_view(store: Store, base: str) -> str | None:
    """The report column of a paper dataset at the paper's size (the official split first)."""
    views = [d for d in store.datasets if dataset_base(d) == base and is_full_dataset(store.ok_records, d)]
    official = [d for d in views if any(
        (r.get("source") or {}).get("kind") == "official-split" for r in store.ok_records if r.get("dataset") == d
    )]
    chosen = official or views
    return chosen[0] if chosen else None


@dataclass(frozen=True)
class Estimate:
    mean: float  # the table's value (fraction)
    std: float | None
    n_seeds: int
    low: float | None  # 95% CI of the mean (fraction)
    high: float | None
    unit: str  # what the bootstrap resampled


def estimate(group: RunGroup, metric: str, seed: int = 0) -> Estimate | None:
    """Our value of `metric` ("P@20" / "MRR@20") with its session-bootstrap interval.

    Under the paper protocol the table's value is the best over epochs while the rank file holds
    the restored model's ranks: the interval's width comes from the rank file and is centred on
    the table's value.
    """
    mean, std = group.stat(metric)
    if mean is None:
        return None
    kind = "hit" if metric.startswith("P@") else "rr"
    per_example = group.mean_per_example(kind, 20)
    if per_example is None:
        return Estimate(mean, std, len(group.seeds), None, None, "")
    values = per_example[0]
    examples = group.examples()
    clusters = None if examples is None else examples["session"]
    low, high = bootstrap_mean_ci(values, clusters, seed=seed)
    shift = mean - float(values.mean())
    unit = "session" if clusters is not None else "prefix"
    return Estimate(mean, std, len(group.seeds), low + shift, high + shift, unit)


def _models(store: Store, views: dict[str, str | None], protocol: str) -> list[str]:
    present = {g.model for v in views.values() if v for g in store.in_dataset(v, protocol)}
    paper = [m for m in TABLE2 if m in present or protocol == "validated" or m == "srgnn"]
    extra = sorted((m for m in present if m not in TABLE2 and m != "oracle"), key=model_sort_key)
    return paper + extra


def table2_full(store: Store, protocol: str, metric: str) -> tuple[Table, list[str]] | None:
    """One metric of Table 2 on both full datasets side by side; None without full-scale runs.

    Returns the table and the reasons given for differences (numbered in the table's notes).
    """
    views = {base: full_scale_view(store, base) for base in FULL_SCALE}
    if not any(views.values()) or not any(store.in_dataset(v, protocol) for v in views.values() if v):
        return None
    columns = [Column("model")]
    for base in FULL_SCALE:
        label = LABELS[base]
        columns += [
            Column(f"{label} paper", "r"),
            Column(f"{label} ours", "r", csv=(f"{label} ours mean (%)", f"{label} ours std (%)")),
            Column(f"{label} seeds", "r"),
            Column(f"{label} Δ [95% CI]", "r", csv=(f"{label} diff (points)", f"{label} CI low", f"{label} CI high")),
        ]
    columns.append(Column("why it differs"))
    table = Table(
        f"table2-full-{metric.replace('@', '')}{'' if protocol == 'validated' else '-' + protocol}",
        f"Table 2, {metric} (%), at the paper's scale: {PROTOCOL_TITLES.get(protocol, protocol)}",
        columns,
    )
    reasons: list[str] = []
    units: set[str] = set()  # what the bootstraps resampled (sessions where the split's example table is stored)
    for model in _models(store, views, protocol):
        cells: list[Cell] = [Cell(model if model in TABLE2 else f"{model} (not in the paper)")]
        why: list[str] = []
        for base in FULL_SCALE:
            view = views[base]
            group = store.find(view, protocol, model) if view else None
            paper = paper_value(model, base, metric)
            cells.append(Cell(DASH if paper is None else f"{paper:.2f}"))
            est = estimate(group, metric) if group is not None else None
            if est is None:
                cells += [Cell("not run" if view else "no full-scale run", csv=("", "")), Cell("0"),
                          Cell(DASH, csv=("", "", ""))]
                continue
            cells.append(pct_cell(est.mean, est.std, est.n_seeds))
            cells.append(Cell(str(est.n_seeds) + ("" if group.seed_dependent else " (seed-free)")))
            if paper is None:
                cells.append(Cell(DASH, csv=("", "", "")))
                continue
            diff = est.mean - paper / 100
            if est.low is None:
                cells.append(Cell(signed_points(diff), csv=(f"{100 * diff:.4f}", "", "")))
                continue
            units.add(est.unit)
            lo, hi = est.low - paper / 100, est.high - paper / 100
            cells.append(Cell(f"{signed_points(diff)} [{signed_points(lo)}, {signed_points(hi)}]",
                              csv=(f"{100 * diff:.4f}", f"{100 * lo:.4f}", f"{100 * hi:.4f}")))
            if lo > 0 or hi < 0:
                reason = known_difference(model, base)
                if reason is None:
                    reason = "no known reason (open question)" if not model.startswith("srgnn") else \
                        "see the SR-GNN check below"
                if reason not in reasons:
                    reasons.append(reason)
                why.append(f"{LABELS[base]}: [{reasons.index(reason) + 1}]")
        cells.append(Cell("; ".join(why) if why else DASH))
        table.add(*cells)
        for base in FULL_SCALE:
            configs = store.configs_of(views[base], protocol, model) if views[base] else []
            if len(configs) > 1:
                table.note(f"{model} on {LABELS[base]} ran in {len(configs)} configurations; shown: {configs[0].label} "
                           "(its default configuration when it ran, else the one with the most seeds).")
    table.note(
        f"paper: {PAPER_SHORT}, Table 2. ours: mean ± std over seeds (seed-free models run once). Δ: ours minus "
        f"the paper's, in points; [95% CI]: a bootstrap over {_resampled(units)} of the seed-averaged per-prefix "
        "values (the test set's sampling error; the ± is the seed spread)."
    )
    if protocol == "paper":
        table.note(
            "paper protocol: the best test value over epochs, as the official code reports; the interval's width "
            "comes from the restored (best-P@20) model's ranks."
        )
    for i, reason in enumerate(reasons, 1):
        table.note(f"[{i}] {reason}.")
    return table, reasons


def srgnn_check(store: Store) -> list[list[Inline]]:
    """One line per full dataset: SR-GNN under the paper protocol against the paper's values."""
    lines: list[list[Inline]] = []
    tol_p, tol_m = SRGNN_CHECK_TOLERANCE
    for base in FULL_SCALE:
        view = full_scale_view(store, base)
        paper = (paper_value("srgnn", base, "P@20"), paper_value("srgnn", base, "MRR@20"))
        group = store.find(view, "paper", "srgnn") if view else None
        head: list[Inline] = [strong(LABELS[base]), ": "]
        if group is None:
            lines.append(head + ["no SR-GNN run under the paper protocol yet: ",
                                 code(f"sessbench run --models srgnn --dataset {base} --protocol paper --seeds 0,1,2"), "."])
            continue
        p20, mrr = group.stat("P@20")[0], group.stat("MRR@20")[0]
        assert p20 is not None and mrr is not None and paper[0] is not None and paper[1] is not None
        d_p, d_m = 100 * p20 - paper[0], 100 * mrr - paper[1]
        ok = abs(d_p) <= tol_p and abs(d_m) <= tol_m
        seeds = len(group.seeds)
        verdict = ("within" if ok else "outside") + f" ±{tol_p:g} P@20 / ±{tol_m:g} MRR@20"
        line: list[Inline] = head + [
            f"mean of {seeds} seed{'s' if seeds != 1 else ''} {100 * p20:.2f} / {100 * mrr:.2f} against the paper's "
            f"{paper[0]:.2f} / {paper[1]:.2f} (Δ {d_p:+.2f} / {d_m:+.2f}): ", strong(verdict),
        ]
        if seeds < 3:
            line.append(f" (the check asks for 3 seeds; {3 - seeds} still to run)")
        third = SRGNN_THIRD_PARTY.get(base)
        if third:
            line.append(f"; a third-party reproduction reached {third[0]:.2f} / {third[1]:.2f}")
        line.append(".")
        lines.append(line)
    return lines


def _resampled(units: set[str]) -> str:
    """What the intervals of a table resampled, in words (prefixes only where no example table says
    which prefixes share a session: those intervals are too narrow, and the note says so)."""
    if units == {"prefix"}:
        return ("test prefixes, each as if independent (this store lacks the splits' example tables, so sessions "
                "are unknown: the intervals are too narrow)")
    if units == {"session", "prefix"}:
        return "whole test sessions (over prefixes, too narrow, where a split's example table is missing)"
    return "whole test sessions"
