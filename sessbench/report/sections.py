"""The report's tables, built from the store as `doc.Table`s (formats render them later).

Table 1 (datasets), Table 2 (P@20 / MRR@20 with the paper's values, the oracle share and the
significance against the reference model), the ablation tables behind the figures, the
short/long table and the cost table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sessbench.report.doc import Cell, Column, Table, code
from sessbench.report.fmt import DASH, integer, number, pct, pct_cell, seconds, signed_points
from sessbench.report.paper import dataset_base, ABLATIONS, PAPER_SHORT, paper_table1, paper_value
from sessbench.report.stats import PairedResult, format_p, holm, paired_randomization_test
from sessbench.report.store import ORACLE, RunGroup, Store, group_sizes, mean_std
from sessbench.report.tables import is_full_dataset

HEADLINE = ("P@20", "MRR@20")
PAPER_MARK = "†"
SIGNIFICANT_MARK = "*"


def protocol_suffix(protocol: str) -> str:
    return "" if protocol == "validated" else f"-{protocol}"


def _label(group: RunGroup) -> Cell:
    """The model's row label, marked when it ran under the paper protocol; CSV: label and protocol."""
    return Cell(group.label, mark=PAPER_MARK if group.protocol == "paper" else "", csv=(group.label, group.protocol))


def mark_best(table: Table, rows: list[int], column: str, groups: list[RunGroup], value_of: Any) -> None:
    """Bold the one best (highest) value of `column` among `rows` (the oracle excluded).

    Compared at full precision, so one cell is bold per column and protocol; on an exact tie the
    first row (the paper's model order) is.
    """
    col = table.column_index(column)
    scored = [(i, value_of(g)) for i, g in zip(rows, groups) if g.model != ORACLE]
    scored = [(i, v) for i, v in scored if v is not None]
    if len(scored) < 2:
        return
    best = max(scored, key=lambda iv: iv[1])[0]  # max keeps the first of equal values
    table.rows[best][col].bold = True


# ---------------------------------------------------------------------------- Table 1


def is_sample(store: Store, dataset: str) -> bool:
    """A paper dataset prepared from a sample of the raw data (not the paper's size)."""
    return paper_table1(dataset) is not None and not is_full_dataset(store.ok_records, dataset)


def dataset_title(store: Store, dataset: str) -> str:
    """A dataset's name in headings and column headers, marked when it is a sample."""
    return f"{dataset} (a sample)" if is_sample(store, dataset) else dataset



TABLE1_ROWS = (
    ("clicks", "clicks", integer),
    ("train_sequences", "training prefixes", integer),
    ("test_sequences", "test prefixes", integer),
    ("items", "items (candidates)", integer),
    ("items_in_training_sessions", "items in training sessions", integer),
    ("average_length", "average length", lambda v: number(v, 2)),
    ("train_sessions", "training sessions", integer),
    ("test_sessions", "test sessions", integer),
)


def table1(store: Store) -> Table:
    """Dataset statistics of every dataset with runs, the paper's Table 1 beside where it has one."""
    columns = [Column("statistic")]
    sources: list[tuple[dict[str, Any], bool]] = []
    for dataset in store.datasets:
        info = store.dataset_info(dataset)
        if info is None:
            continue
        columns.append(Column(dataset_title(store, dataset), "r"))
        sources.append((info, False))
        paper = paper_table1(dataset)
        if paper is not None:
            columns.append(Column(f"{dataset} (paper)", "r"))
            sources.append((paper, True))
    table = Table("table1-datasets", "Table 1: dataset statistics (ours beside the paper's Table 1)", columns)
    for key, label, fmt in TABLE1_ROWS:
        cells = [Cell(label)]
        for values, _ in sources:
            v = values.get(key)
            cells.append(Cell(fmt(v) if v is not None else DASH, csv=("" if v is None else str(v),)))
        table.add(*cells)
    table.note(
        "Prefixes are the SR-GNN augmentation (every prefix of a session is one example); clicks count "
        "training and test sessions after preprocessing; the average length is the paper's: the mean "
        "length of the augmented sequences (prefix and target). The paper's YOOCHOOSE item counts were "
        "copied from earlier work; its official code ranks more items. The paper gives no session "
        "counts (", DASH, ")."
    )
    for dataset in store.datasets:
        paper = paper_table1(dataset)
        info = store.dataset_info(dataset)
        if paper and info and not is_full_dataset(store.ok_records, dataset):
            share = info.get("train_sequences", 0) / paper["train_sequences"]
            table.note(
                code(dataset), f" here is prepared from a sample of the raw data: {integer(info.get('train_sequences'))} "
                f"training prefixes, {100 * share:.2f}% of the paper's {integer(paper['train_sequences'])}."
            )
    return table


# ---------------------------------------------------------------------------- significance


@dataclass
class Comparison:
    """The reference model against one other model on one dataset and protocol."""

    label: str
    result: PairedResult | None = None
    reason: str = ""  # why no test was run
    p_holm: float | None = None
    seeds: int = 0


@dataclass
class Family:
    """All comparisons with the reference on one (dataset, protocol); Holm-corrected together."""

    dataset: str
    protocol: str
    reference: str
    alpha: float
    resamples: int
    reference_group: RunGroup | None = None
    reason: str = ""  # why the family is empty
    comparisons: dict[str, Comparison] = field(default_factory=dict)

    def significant(self, c: Comparison) -> bool:
        return c.p_holm is not None and c.p_holm <= self.alpha


def significance(
    store: Store, dataset: str, protocol: str, reference: str, *, resamples: int, seed: int, alpha: float
) -> Family:
    """Paired randomization tests of the reference against every other model (oracle excluded)."""
    family = Family(dataset, protocol, reference, alpha, resamples)
    ref = store.find(dataset, protocol, reference)
    family.reference_group = ref
    if ref is None:
        family.reason = f"{reference} has no finished run on {dataset} ({protocol} protocol)"
        return family
    ref_rr = ref.mean_reciprocal_ranks(20)
    if ref_rr is None:
        family.reason = f"the rank files of {reference} on {dataset} are missing"
        return family
    examples = ref.examples()
    clusters = None if examples is None else examples["session"]
    for g in store.in_dataset(dataset, protocol):
        if g is ref or g.model == ORACLE:
            continue
        c = Comparison(g.label, seeds=len(g.ranks))
        other = g.mean_reciprocal_ranks(20)
        if other is None:
            c.reason = "rank files missing"
        elif len(other[0]) != len(ref_rr[0]) or not (other[1] == ref_rr[1]).all():
            c.reason = "different test examples"
        else:
            c.result = paired_randomization_test(other[0], ref_rr[0], resamples=resamples, seed=seed, clusters=clusters)
        family.comparisons[g.label] = c
    tested = [c for c in family.comparisons.values() if c.result is not None]
    for c, p in zip(tested, holm([c.result.p_value for c in tested])):  # type: ignore[union-attr]
        c.p_holm = p
    return family


def holm_text(family: Family, c: Comparison) -> str:
    assert c.result is not None and c.p_holm is not None
    floor = 1.0 / (family.resamples + 1)
    at_floor = c.result.p_value <= floor * (1 + 1e-9)
    text = ("≤ " if at_floor and c.p_holm < 1 else "") + format_p(c.p_holm, 10**12)
    return text


def significance_table(family: Family) -> Table:
    suffix = protocol_suffix(family.protocol)
    ref = family.reference
    table = Table(
        f"significance-{_slug(family.dataset)}{suffix}",
        f"Paired significance of {ref} against every other model on {family.dataset}"
        + (f" ({family.protocol} protocol)" if family.protocol != "validated" else "")
        + ": per-example RR@20, seed-averaged",
        [
            Column("model"),
            Column("seeds", "r"),
            Column("examples", "r"),
            Column("sessions", "r"),
            Column("MRR@20", "r", csv=("MRR@20 (%)",)),
            Column(f"MRR@20 − {ref}", "r", csv=(f"MRR@20 - {ref} (points)",)),
            Column("95% CI", "r", csv=("CI low (points)", "CI high (points)")),
            Column("wins / losses", "r", csv=("wins", "losses")),
            Column("p", "r"),
            Column("p (Holm)", "r", csv=("p Holm",)),
            Column(f"significant at {family.alpha:g}", "l"),
        ],
    )
    ref_group = family.reference_group
    ref_rr = ref_group.mean_reciprocal_ranks(20) if ref_group is not None else None
    if ref_group is not None and ref_rr is not None:
        ex = ref_group.examples()
        n_sessions = DASH if ex is None else integer(len(np.unique(ex["session"])))
        table.add(
            Cell(ref_group.label), str(len(ref_group.ranks)), Cell(integer(len(ref_rr[0])), csv=(str(len(ref_rr[0])),)),
            Cell(n_sessions, csv=(n_sessions.replace(",", ""),)),
            Cell(pct(float(ref_rr[0].mean())), csv=(f"{100 * float(ref_rr[0].mean()):.4f}",)),
            Cell("reference", csv=("",)), Cell(DASH, csv=("", "")), Cell(DASH, csv=("", "")), DASH, DASH, DASH,
        )
    for c in family.comparisons.values():
        r = c.result
        if r is None:
            table.add(Cell(c.label), str(c.seeds), DASH, DASH, Cell(DASH, csv=("",)), Cell(c.reason, csv=("",)),
                      Cell(DASH, csv=("", "")), Cell(DASH, csv=("", "")), DASH, DASH, DASH)
            continue
        assert ref_rr is not None
        mrr = float(ref_rr[0].mean()) + r.mean_diff
        table.add(
            Cell(c.label), str(c.seeds), Cell(integer(r.n), csv=(str(r.n),)),
            Cell(integer(r.units) if r.unit == "session" else DASH, csv=(str(r.units) if r.unit == "session" else "",)),
            Cell(pct(mrr), csv=(f"{100 * mrr:.4f}",)),
            Cell(signed_points(r.mean_diff), csv=(f"{100 * r.mean_diff:.4f}",)),
            Cell(f"[{signed_points(r.ci_low)}, {signed_points(r.ci_high)}]",
                 csv=(f"{100 * r.ci_low:.4f}", f"{100 * r.ci_high:.4f}")),
            Cell(f"{r.wins:,} / {r.losses:,}", csv=(str(r.wins), str(r.losses))),
            Cell(format_p(r.p_value, r.resamples), csv=(f"{r.p_value:.6f}",)),
            Cell(holm_text(family, c), csv=(f"{c.p_holm:.6f}",)),
            "yes" if family.significant(c) else "no",
        )
    tested = [c.result for c in family.comparisons.values() if c.result is not None]
    by_session = bool(tested) and tested[0].unit == "session"
    unit = (f"the unit is the test session ({integer(tested[0].units)} sessions holding {integer(tested[0].n)} "
            "prefixes): per-session sums of the differences flip sign together, and the 95% interval is a "
            "session bootstrap of the mean difference" if by_session else
            "the unit is the test prefix (this store has no table of the test sessions, so prefixes of one "
            "session count as independent and p-values are too small); the 95% interval is the normal "
            "approximation")
    table.note(
        "Test: paired randomization (sign-flip) test of the mean per-example difference in expected "
        f"RR@20, {family.resamples:,} resamples, two-sided; {unit}. p-values are adjusted with Holm's method over the "
        f"{_count(len(tested), 'comparison')} of this table. Each model's "
        "per-example RR is averaged over its seeds first. Wins / losses count prefixes where the model's "
        f"RR@20 is higher / lower than {ref}'s."
    )
    if family.protocol == "paper":
        table.note(
            "Under the paper protocol the table's MRR@20 is the best test value over epochs, but the rank "
            "files (and so this test) hold the test ranks of the restored model: the latest epoch with "
            "the best test P@20, whose MRR@20 can be lower."
        )
    return table


# ---------------------------------------------------------------------------- Table 2


def table2(store: Store, dataset: str, families: dict[str, Family], reference: str) -> Table:
    """P@20 and MRR@20 of every model on one dataset (every protocol), mean ± std over seeds."""
    dataset_name = dataset_base(dataset)
    groups = store.in_dataset(dataset, ok_only=False)
    ok = [g for g in groups if g.ok]
    has_paper = any(paper_value(g.model, dataset_name, m) is not None for g in ok for m in HEADLINE)
    full = has_paper and is_full_dataset(store.ok_records, dataset)
    oracle = {p: store.find(dataset, p, ORACLE) for p in store.protocols(dataset)}
    pop = {p: store.find(dataset, p, "pop") for p in store.protocols(dataset)}
    has_oracle = any(o is not None for o in oracle.values())
    has_reference = any(f.reference_group is not None for f in families.values())
    any_failed = any(g.failed for g in groups)

    columns = [Column("model", csv=("model", "protocol")), Column("seeds", "r")]
    for metric in HEADLINE:
        columns.append(Column(metric, "r", csv=(f"{metric} mean (%)", f"{metric} std (%)")))
        if has_paper:
            columns.append(Column(f"paper {metric}", "r"))
        if full:
            columns.append(Column(f"Δ {metric}", "r"))
    if has_oracle:
        columns += [Column("share of oracle P@20", "r"), Column("share of oracle MRR@20", "r"),
                    Column("normalized gain P@20", "r")]
    if has_reference:
        columns += [Column(f"MRR@20 − {reference}", "r", csv=(f"MRR@20 - {reference} (points)",)),
                    Column("p (Holm)", "r", csv=("p Holm",))]
    if any_failed:
        columns.append(Column("failed runs", "r"))
    table = Table(f"table2-{_slug(dataset)}", f"Table 2 on {dataset}: P@20 and MRR@20 in percent, mean ± std over seeds", columns)

    for protocol in store.protocols(dataset):
        first = len(table.rows)
        in_protocol = [g for g in ok if g.protocol == protocol]
        for g in in_protocol:
            cells: list[Cell] = [_label(g), Cell(str(len(g.seeds)))]
            for metric in HEADLINE:
                mean, std = g.stat(metric)
                cells.append(pct_cell(mean, std, len(g.seeds)))
                paper = paper_value(g.model, dataset_name, metric)
                if has_paper:
                    cells.append(Cell(DASH if paper is None else f"{paper:.2f}"))
                if full:
                    cells.append(Cell(DASH if paper is None or mean is None else signed_points(mean - paper / 100)))
            if has_oracle:
                o, p = oracle.get(protocol), pop.get(protocol)
                o_p, o_m = (o.stat("P@20")[0], o.stat("MRR@20")[0]) if o else (None, None)
                m_p, m_m = g.stat("P@20")[0], g.stat("MRR@20")[0]
                p_p = p.stat("P@20")[0] if p else None
                cells.append(Cell(DASH if not o_p or m_p is None else f"{m_p / o_p:.3f}"))
                cells.append(Cell(DASH if not o_m or m_m is None else f"{m_m / o_m:.3f}"))
                gain = None if not o_p or m_p is None or p_p is None or o_p == p_p else (m_p - p_p) / (o_p - p_p)
                cells.append(Cell(DASH if gain is None else f"{gain:.3f}"))
            if has_reference:
                cells += _significance_cells(families.get(protocol), g)
            if any_failed:
                cells.append(Cell(str(len(g.failed))))
            table.add(*cells)
        rows = list(range(first, len(table.rows)))
        for metric in HEADLINE:
            mark_best(table, rows, metric, in_protocol, lambda g, m=metric: g.stat(m)[0])
    for g in groups:  # configurations whose every run failed still show, so nothing vanishes
        if not g.ok:
            cells = [_label(g), Cell("0")] + [Cell(DASH, csv=("",) * len(c.csv_names)) for c in columns[2:-1]]
            cells.append(Cell(str(len(g.failed))))
            table.add(*cells)

    _table2_notes(table, store, dataset, has_paper, full, has_oracle, families, reference)
    return table


def _significance_cells(family: Family | None, g: RunGroup) -> list[Cell]:
    if family is None or family.reference_group is None:
        return [Cell(DASH, csv=("",)), Cell(DASH, csv=("",))]
    if g is family.reference_group:
        return [Cell("reference", csv=("",)), Cell(DASH, csv=("",))]
    c = family.comparisons.get(g.label)
    if c is None or c.result is None:
        return [Cell(DASH if c is None else c.reason, csv=("",)), Cell(DASH, csv=("",))]
    sig = family.significant(c)
    return [
        Cell(signed_points(c.result.mean_diff), csv=(f"{100 * c.result.mean_diff:.4f}",)),
        Cell(holm_text(family, c), mark=SIGNIFICANT_MARK if sig else "", csv=(f"{c.p_holm:.6f}",)),
    ]


def _table2_notes(
    table: Table, store: Store, dataset: str, has_paper: bool, full: bool, has_oracle: bool,
    families: dict[str, Family], reference: str,
) -> None:
    table.note("Bold: the best value of the column among the models of one protocol (the oracle excluded; one per column).")
    if has_paper:
        if full:
            table.note(f"paper: {PAPER_SHORT}, Table 2; Δ: ours minus the paper's, in percentage points.")
        else:
            table.note(
                f"paper: {PAPER_SHORT}, Table 2, for orientation only: this split is prepared from a sample of "
                "the raw data (see Table 1), so no difference to the paper is computed."
            )
    if any(g.protocol == "paper" for g in store.in_dataset(dataset)):
        table.note(
            f"{PAPER_MARK} paper protocol: the best test value over epochs (P@20 and MRR@20 chosen separately), as "
            "the official SR-GNN code reports; the other rows choose epochs on a validation split and touch "
            "test once."
        )
    if has_oracle:
        table.note(
            "oracle: the Bayes-optimal predictor of the generator (the best any model can reach). Share of "
            "oracle: the model's value over the oracle's; normalized gain: (P@20 − POP) / (oracle − POP)."
        )
    for protocol, family in families.items():
        where = "" if protocol == "validated" else f" ({protocol} protocol)"
        if family.reference_group is None:
            table.note(f"No significance tests{where}: {family.reason}.")
        elif family.comparisons:
            table.note(
                f"MRR@20 − {reference}{where}: the model's MRR@20 minus {reference}'s, from seed-averaged per-example "
                f"RR@20; p (Holm): paired randomization test, Holm-corrected; {SIGNIFICANT_MARK} significant at "
                f"{family.alpha:g}. Details in the significance table."
            )


# ---------------------------------------------------------------------------- ablations


def ablation_table(store: Store, kind: str, protocol: str) -> Table | None:
    """The numbers behind an ablation figure: every variant that ran, per dataset."""
    spec = ABLATIONS[kind]
    models: tuple[str, ...] = spec["models"]  # type: ignore[assignment]
    table = Table(
        f"ablation-{kind}{protocol_suffix(protocol)}",
        f"{spec['title']} (ablation): P@20 and MRR@20 in percent, mean ± std over seeds"
        + ("" if protocol == "validated" else f" ({protocol} protocol)"),
        [Column("dataset"), Column("model"), Column("seeds", "r"),
         Column("P@20", "r", csv=("P@20 mean (%)", "P@20 std (%)")),
         Column("MRR@20", "r", csv=("MRR@20 mean (%)", "MRR@20 std (%)"))],
    )
    for dataset in store.datasets:
        groups = [g for m in models for g in store.in_dataset(dataset, protocol) if g.model == m]
        first = len(table.rows)
        for g in groups:
            table.add(Cell(dataset), _label(g), str(len(g.seeds)),
                      pct_cell(*g.stat("P@20"), len(g.seeds)), pct_cell(*g.stat("MRR@20"), len(g.seeds)))
        rows = list(range(first, len(table.rows)))
        for metric in HEADLINE:
            mark_best(table, rows, metric, groups, lambda g, m=metric: g.stat(m)[0])
    if not table.rows:
        return None
    table.note(f"The paper found {spec['finding']}. Bold: the best variant per dataset.")
    return table


# ---------------------------------------------------------------------------- short / long


def short_long_table(store: Store, dataset: str, protocol: str) -> Table | None:
    groups = [g for g in store.in_dataset(dataset, protocol) if any(r.get("groups") for r in g.ok)]
    if not groups:
        return None
    columns = [Column("model"), Column("seeds", "r")]
    for metric in HEADLINE:
        for group in ("short", "long"):
            columns.append(Column(f"{metric} {group}", "r", csv=(f"{metric} {group} mean (%)", f"{metric} {group} std (%)")))
    where = "" if protocol == "validated" else f" ({protocol} protocol)"
    table = Table(
        f"short-long-{_slug(dataset)}{protocol_suffix(protocol)}",
        f"Short (prefix length ≤ 5) and long (> 5) test prefixes on {dataset}{where}: P@20 and MRR@20 in "
        "percent, mean ± std over seeds",
        columns,
    )
    for g in groups:
        cells = [_label(g), Cell(str(len(g.seeds)))]
        for metric in HEADLINE:
            for group in ("short", "long"):
                mean, std = mean_std(g.group_values(group, metric))
                cells.append(pct_cell(mean, std, len(g.seeds)))
        table.add(*cells)
    rows = list(range(len(table.rows)))
    for metric in HEADLINE:
        for group in ("short", "long"):
            mark_best(table, rows, f"{metric} {group}", groups,
                      lambda g, m=metric, s=group: mean_std(g.group_values(s, m))[0])
    n = group_sizes(groups)
    if n:
        total = n[0] + n[1]
        table.note(f"Test prefixes: {n[0]:,} short ({100 * n[0] / total:.1f}%), {n[1]:,} long "
                   f"({100 * n[1] / total:.1f}%). Bold: the best model per column (the oracle excluded).")
    if protocol == "paper":
        table.note(f"{PAPER_MARK} The groups hold the test ranks of the restored model (the latest epoch "
                   "with the best test P@20), not of each metric's best epoch.")
    return table


# ---------------------------------------------------------------------------- cost


def cost_table(store: Store, dataset: str, protocol: str) -> Table | None:
    groups = store.in_dataset(dataset, protocol)
    if not groups:
        return None
    gpu = any(g.numbers(("peak_gpu_memory_mb",)) for g in groups)
    columns = [
        Column("model"), Column("seeds", "r"),
        Column("wall s", "r", csv=("wall s mean", "wall s std")),
        Column("fit s", "r", csv=("fit s mean", "fit s std")),
        Column("train seq/s", "r"),
        Column("predict s", "r", csv=("predict s mean", "predict s std")),
        Column("examples/s", "r"),
        Column("peak RSS MB", "r"),
        Column("RSS growth MB", "r"),
    ]
    if gpu:
        columns.append(Column("peak GPU MB", "r"))
    columns += [Column("device"), Column("threads", "r")]
    where = "" if protocol == "validated" else f" ({protocol} protocol)"
    table = Table(f"cost-{_slug(dataset)}{protocol_suffix(protocol)}", f"Cost on {dataset}{where}: time and memory per run", columns)
    for g in groups:
        n = len(g.seeds)
        fit = mean_std(g.numbers(("timing", "fit_s")))
        pred = mean_std(g.numbers(("timing", "predict_s")))
        eps = mean_std(g.numbers(("timing", "examples_per_s")))[0]
        peak = g.numbers(("peak_memory_mb",))
        start = g.numbers(("memory_at_start_mb",))
        growth = [p - s for p, s in zip(peak, start)] if len(peak) == len(start) else []
        wall = mean_std([_wall_seconds(r) for r in g.ok if _wall_seconds(r) is not None])
        rate = mean_std([v for v in (_train_rate(r) for r in g.ok) if v is not None])[0]
        cells = [
            _label(g), Cell(str(n)),
            Cell(seconds(*wall, n), csv=_num(wall[0], 1) + _num(wall[1] if n > 1 else None, 1)),
            Cell(seconds(*fit, n), csv=_num(fit[0], 4) + _num(fit[1] if n > 1 else None, 4)),
            Cell(integer(rate) if rate else DASH, csv=_num(rate, 1)),
            Cell(seconds(*pred, n), csv=_num(pred[0], 4) + _num(pred[1] if n > 1 else None, 4)),
            Cell(integer(eps), csv=_num(eps, 1)),
            Cell(number(max(peak), 0) if peak else DASH, csv=_num(max(peak) if peak else None, 1)),
            Cell(number(max(growth), 0) if growth else DASH, csv=_num(max(growth) if growth else None, 1)),
        ]
        if gpu:
            gm = g.numbers(("peak_gpu_memory_mb",))
            cells.append(Cell(number(max(gm), 0) if gm else DASH, csv=_num(max(gm) if gm else None, 1)))
        devices = sorted({str((r.get("environment") or {}).get("device_name") or (r.get("environment") or {}).get("device", "?")) for r in g.ok})
        threads = sorted({str((r.get("environment") or {}).get("torch_threads", "?")) for r in g.ok})
        cells += [Cell(", ".join(devices)), Cell(", ".join(threads))]
        table.add(*cells)
    table.note(
        "wall s: the whole run, from its start to its record (data loading, selection, refit, scoring): what a "
        "grid of these runs costs; fit s: training wall time without the per-epoch selection evaluation (both "
        "phases under the validated protocol's refit); train seq/s: training prefixes per second of training, "
        "from the epoch logs (compare it with `sessbench bench train`'s floor for the same shape and device); "
        "predict s: scoring and ranking every test prefix against all items; examples/s: test prefixes per second of predict. "
        "Mean ± std over seeds. Peak RSS: the process's peak resident memory during the run (data "
        "included), its maximum over seeds; RSS growth: peak minus the memory at the run's start. Runs "
        "may have shared the machine with other jobs: compare times within one table with care."
    )
    return table


def _wall_seconds(record: dict[str, Any]) -> float | None:
    """Seconds from a run's start to its end, from the record's timestamps."""
    from datetime import datetime

    try:
        start = datetime.fromisoformat(str(record["started_at"]))
        end = datetime.fromisoformat(str(record["finished_at"]))
    except (KeyError, TypeError, ValueError):
        return None
    seconds = (end - start).total_seconds()
    return seconds if seconds >= 0 else None


def _train_rate(record: dict[str, Any]) -> float | None:
    """Training prefixes per second over every epoch of every phase (None for non-iterative models)."""
    epochs = [e for key in ("epochs", "refit_epochs") for e in record.get(key) or [] if isinstance(e, dict)]
    examples = sum(float(e.get("train_examples") or 0) for e in epochs)
    seconds = sum(float(e.get("train_s") or 0) for e in epochs)
    return examples / seconds if examples > 0 and seconds > 0 else None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _num(value: float | None, digits: int) -> tuple[str]:
    return ("" if value is None else f"{value:.{digits}f}",)


def _slug(text: str) -> str:
    from sessbench.report.doc import slug

    return slug(text)
