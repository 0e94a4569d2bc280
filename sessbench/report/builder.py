"""`sessbench report`: the whole report, from the runs store only (models are never rerun).

Writes into `--out`:
  README.md          the report in GitHub Markdown, figures inline
  index.html         the same report as one self-contained page (figures embedded)
  tables/NAME.csv    every table as CSV, LaTeX (booktabs) and Markdown
        /NAME.tex
        /NAME.md
  figures/NAME.png   every figure as PNG and SVG
         /NAME.svg
  comparison.md/csv  one flat table of every dataset and model (the `sessbench run` summary)

The report is built once as a list of blocks (`doc`) and rendered by each format. Files the
previous report wrote and this one does not (a dataset that left the store) are removed, using
the list of written files kept in `.sessbench-report`; nothing else in `--out` is touched.
Output is byte-identical for the same store: no dates, fixed number formats, fixed figure
metadata and a fixed seed for the randomization tests.
"""

from __future__ import annotations

import csv
import logging
import io
from pathlib import Path
from typing import Any, Callable, Iterator

from sessbench.atomic import atomic_write_bytes
from sessbench.report import csvout, html, latex, markdown
from sessbench.report.doc import (
    Block, Column, Details, FigureBlock, Heading, Table, TableBlock, bullets, code, link, paragraph, slug, strong,
)
from sessbench.report.figures import ablation_figure, short_long_figure
from sessbench.report.paper import ABLATIONS, PAPER, SHORT_LONG_PAPER_MODELS
from sessbench.report.audits import audit_table, dataset_audit
from sessbench.report.headline import FULL_SCALE, full_scale_view, srgnn_check, table2_full
from sessbench.report.repeats import repeat_explore_figure, repeat_explore_table
from sessbench.report.provenance import (
    commands, configs_table, coverage_items, environment_ids, environments_table, failed_table, full_grid_table,
    registered_model_names, runs_table, superseded_table, unverified_table,
)
from sessbench.report.sections import (
    dataset_title,
    Family, ablation_table, cost_table, protocol_suffix, short_long_table, significance, significance_table, table1,
    table2,
)
from sessbench.report.stats import DEFAULT_RESAMPLES
from sessbench.report.store import Store
from sessbench.report.tables import comparison_rows, markdown_table

SUMMARY_COLUMNS = [
    "dataset", "model", "protocol", "seeds", "P@20", "paper P@20", "Δ P@20", "MRR@20",
    "paper MRR@20", "Δ MRR@20", "share of oracle P@20", "normalized gain", "fit s", "predict s", "failed",
]
MANIFEST = ".sessbench-report"
TABLES, FIGURES = "tables", "figures"
log = logging.getLogger("sessbench.report")
TITLE = "sessbench results"


def _csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


class _Writer:
    """Writes files under `out` and remembers them (for the manifest and the returned list)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.written: list[Path] = []

    def text(self, relative: str, content: str) -> None:
        path = self.out / relative
        atomic_write_bytes(path, content.encode("utf-8"))
        self.written.append(path)

    def add(self, paths: list[Path]) -> None:
        self.written.extend(paths)


def walk_tables(blocks: list[Block]) -> Iterator[TableBlock]:
    for block in blocks:
        if isinstance(block, TableBlock):
            yield block
        elif isinstance(block, Details):
            yield from walk_tables(block.blocks)


def write_report(
    runs_dir: Path,
    out: Path,
    *,
    reference: str = "srgnn",
    resamples: int = DEFAULT_RESAMPLES,
    alpha: float = 0.05,
    seed: int = 0,
    command: str | None = None,
) -> list[Path]:
    """Write the report of every record in `runs_dir` into `out`; returns the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = Store.load(Path(runs_dir))
    writer = _Writer(out)
    command = command or f"sessbench report --runs-dir {runs_dir} --out {out}"
    blocks = build_blocks(store, writer, reference=reference, resamples=resamples, alpha=alpha, seed=seed,
                          command=command, runs_dir=str(runs_dir))

    for block in walk_tables(blocks):
        t = block.table
        writer.text(f"{TABLES}/{t.name}.csv", csvout.render_table(t))
        writer.text(f"{TABLES}/{t.name}.tex", latex.render_table(t))
        writer.text(f"{TABLES}/{t.name}.md", markdown.render_table(t))
    writer.text("README.md", markdown.render(blocks, figures_dir=FIGURES, tables_dir=TABLES))
    writer.text("index.html", html.render(TITLE, blocks, lambda stem: (out / FIGURES / f"{stem}.svg").read_bytes(), TABLES))
    rows = comparison_rows(store.records)
    writer.text("comparison.md", markdown_table(rows, SUMMARY_COLUMNS))
    writer.text("comparison.csv", _csv_text(rows, SUMMARY_COLUMNS))
    _remove_stale(out, writer.written)
    return writer.written


def _remove_stale(out: Path, written: list[Path]) -> None:
    """Delete files the previous report listed and this one did not write; record this one's."""
    manifest = out / MANIFEST
    now = sorted({p.relative_to(out).as_posix() for p in written})
    if manifest.is_file():
        for name in manifest.read_text(encoding="utf-8").splitlines():
            name = name.strip()
            if name and name not in now and ".." not in Path(name).parts and not Path(name).is_absolute():
                (out / name).unlink(missing_ok=True)
    atomic_write_bytes(manifest, ("\n".join(now) + "\n").encode("utf-8"))


# ---------------------------------------------------------------------------- the document


def build_blocks(
    store: Store, writer: _Writer, *, reference: str, resamples: int, alpha: float, seed: int, command: str,
    runs_dir: str,
) -> list[Block]:
    """The report as blocks; figures are written on the way (the HTML embeds them)."""
    blocks: list[Block] = [Heading(1, TITLE)]
    n_ok, n_failed = len(store.ok_records), len(store.failed_records)
    blocks.append(paragraph(
        "Generated by ", code(command), f" from {len(store.records)} run records ({n_ok} ok, {n_failed} failed) "
        "in ", code(runs_dir), ". The report reads only the stored records and their per-example rank files; it "
        "never reruns a model. The same report as one page: ", link("index.html", "index.html"), "; every table "
        "as CSV, LaTeX and Markdown under ", link(f"{TABLES}/", f"{TABLES}/"), ", every figure as PNG and SVG "
        "under ", link(f"{FIGURES}/", f"{FIGURES}/"), ".",
    ))
    if not store.records:
        blocks.append(paragraph("The runs directory holds no run records: run ", code("sessbench run"), " first."))
        return blocks
    blocks.append(paragraph(
        "P@20 is the hit rate (the target is among the top 20; what the SR-GNN paper calls precision) and "
        "MRR@20 the mean reciprocal rank cut at 20, both in percent, over every prefix of every test session "
        "ranked against all items, exact under ties. Cells are mean ± standard deviation over seeds. The "
        f"paper's values: {PAPER}.",
    ))
    if not store.verified:
        blocks.append(paragraph(
            strong("Unverified runs: "), "no run here comes from a clean, committed tree (a dirty checkout or no git "
            "checkout), so no commit holds the code behind these numbers. Commit, rerun, and regenerate before "
            "publishing them.",
        ))
    blocks.append(bullets(
        [link("Table 2 at the paper's scale", "#headline")],
        [link("Coverage: what is and is not here", "#coverage")],
        [link("Table 1: datasets", "#table-1")],
        [link("Table 2: P@20 and MRR@20", "#table-2")],
        [link("Significance tests", "#significance")],
        [link("Ablations", "#ablations")],
        [link("Short and long sessions", "#short-long")],
        [link("Repeat and explore targets", "#repeat-explore")],
        [link("Cost: time and memory", "#cost")],
        [link("Reproducibility", "#reproducibility")],
    ))

    first_section = len(blocks)
    blocks.extend(headline_blocks(store))

    # coverage
    blocks.append(Heading(2, "Coverage: what is and is not here", "coverage"))
    datasets = ", ".join(store.datasets)
    models = ", ".join(sorted({g.model for g in store.groups if g.ok}, key=_model_key)) or "none finished"
    blocks.append(paragraph(f"Datasets with runs: {datasets}. Models with finished runs: {models}."))
    items = coverage_items(store, registered_model_names())
    if items:
        blocks.append(bullets(*items))
    else:
        blocks.append(paragraph("Every registered and every paper model ran on every dataset here."))
    views = {base: full_scale_view(store, base) for base in FULL_SCALE}
    grid, missing = full_grid_table(store, views)
    blocks.append(Heading(3, "The full-scale grid", "coverage-full-grid"))
    blocks.append(paragraph(
        f"{missing} run(s) of the full-scale grid are still missing. " if missing else "The full-scale grid is complete. ",
        "They run with ", code("scripts/table2_cpu.sh DATA_DIR RUNS_DIR"), " (resumable; ",
        code("sessbench run ... --plan"), " prints each run's estimated time first).",
    ))
    blocks.append(TableBlock(grid))
    for table in (unverified_table(store), superseded_table(store)):
        if table is not None:
            blocks.append(TableBlock(table))

    # Table 1
    blocks.append(Heading(2, "Table 1: datasets", "table-1"))
    t1 = table1(store)
    if len(t1.columns) > 1:
        blocks.append(TableBlock(t1))
    else:
        blocks.append(paragraph("No finished run records dataset statistics."))

    audits = [(d, dataset_audit(store, d)) for d in store.datasets]
    if any(a for _, a in audits):
        blocks.append(Heading(3, "Data audits", "audits"))
        blocks.append(paragraph(
            "What ", code("sessbench audit DATASET"), " checks on each split (written into the store by ",
            code("sessbench publish"), "): test size and the 95% half-widths at a reference model's level, the "
            "repeat share, unseen test items, sessions shared with training, time order, duplicates, and the "
            "batch-company check."
        ))
        for dataset, audit in audits:
            if audit is not None:
                blocks.append(TableBlock(audit_table(dataset_title(store, dataset), audit)))

    # significance families, needed by Table 2
    families: dict[str, dict[str, Family]] = {
        d: {p: significance(store, d, p, reference, resamples=resamples, seed=seed, alpha=alpha) for p in store.protocols(d)}
        for d in store.datasets
    }

    blocks.append(Heading(2, "Table 2: P@20 and MRR@20", "table-2"))
    for dataset in store.datasets:
        blocks.append(Heading(3, dataset_title(store, dataset), f"table-2-{slug(dataset)}"))
        blocks.append(TableBlock(table2(store, dataset, families[dataset], reference)))

    # significance
    blocks.append(Heading(2, "Significance tests", "significance"))
    blocks.append(paragraph(
        f"Every model is compared with {reference} on the same test prefixes by a paired randomization "
        f"(sign-flip) test of the mean per-example difference in expected RR@20 ({resamples:,} resamples, "
        "two-sided, fixed seed), and the p-values of one dataset are corrected together with Holm's "
        f"method (family-wise error rate {alpha:g}).",
    ))
    blocks.append(bullets(
        ["Why this test: its statistic is exactly the MRR@20 difference the tables show, and it assumes no "
         "distribution. Per-example RR differences are far from normal (a spike at 0 where both models miss "
         "the top 20, point masses at ±1, ±1/2, ...); under the null hypothesis the two models' RRs on an "
         "example are exchangeable, so every sign of a difference is equally likely."],
        ["Why not Wilcoxon or the sign test: they test a median or the share of wins, not the mean, and drop "
         "the many zero differences; IR studies (Smucker, Allan and Carterette, CIKM 2007; Urbano et al., "
         "SIGIR 2019) recommend the randomization or t-test for means of per-query metrics."],
        ["Seeds: each model's per-example RR is averaged over its seeds before the test; the test example is "
         "the unit of replication. The test therefore asks whether the seed-averaged models differ on this test "
         "set; the seed-to-seed spread is the ± in the tables."],
        ["Holm's step-down correction controls the family-wise error over all comparisons of a dataset without "
         "assuming independence, and is never less powerful than Bonferroni."],
    ))
    for dataset in store.datasets:
        for protocol, family in families[dataset].items():
            where = dataset_title(store, dataset) + ("" if protocol == "validated" else f" ({protocol} protocol)")
            if family.reference_group is None or not family.comparisons:
                reason = family.reason or f"no other model ran on {dataset}"
                blocks.append(paragraph(code(where), f": no tests ({reason})."))
                continue
            blocks.append(Heading(3, where, f"significance-{slug(dataset)}{protocol_suffix(protocol)}"))
            blocks.append(TableBlock(significance_table(family)))

    # ablations
    blocks.append(Heading(2, "Ablations", "ablations"))
    blocks.append(paragraph(
        "The paper's two ablations of SR-GNN, as grouped bar charts (datasets as groups, error bars ± one "
        "standard deviation over seeds, the bar's value written inside it). The paper prints these ablations "
        "only as bar charts, without numbers, so no paper value is drawn beside ours; its finding (the order of "
        "the variants) is quoted above each chart."
    ))
    for kind, spec in ABLATIONS.items():
        blocks.append(Heading(3, str(spec["title"]), f"ablation-{kind}"))
        names = ", ".join(spec["models"])  # type: ignore[arg-type]
        blocks.append(paragraph(f"Models: {names}. The paper found {spec['finding']}."))
        shown = False
        for protocol in _protocols(store):
            stem = f"ablation-{kind}{protocol_suffix(protocol)}"
            result = ablation_figure(store, kind, protocol, writer.out / FIGURES, stem)
            if result is None:
                continue
            paths, missing = result
            writer.add(paths)
            shown = True
            where = "" if protocol == "validated" else f" ({protocol} protocol)"
            blocks.append(FigureBlock(stem, f"{spec['title']}{where}: P@20 and MRR@20 (%) per dataset, ± one std over seeds.",
                                      f"Bar chart: {spec['title']}{where}, P@20 and MRR@20 per dataset"))
            gaps = [f"{d}: {', '.join(m)}" for d, m in missing.items() if m]
            if gaps:
                blocks.append(paragraph("Not run (no bar): " + "; ".join(gaps) + "."))
            table = ablation_table(store, kind, protocol)
            if table is not None:
                blocks.append(TableBlock(table))
        if not shown:
            blocks.append(paragraph(
                f"No figure: no dataset has finished runs of at least two of {names} (the variants this "
                "ablation compares). Run them to fill it, e.g. ",
                code(f"sessbench run --models {','.join(spec['models'])} --seeds 0,1,2 --runs-dir RUNS"), ".",  # type: ignore[arg-type]
            ))

    # short / long
    blocks.append(Heading(2, "Short and long sessions", "short-long"))
    blocks.append(paragraph(
        "P@20 and MRR@20 on test prefixes of length ≤ 5 (short) and > 5 (long), as the paper's analysis "
        f"(which shows {', '.join(SHORT_LONG_PAPER_MODELS)}); here for every model that ran, error bars ± one "
        "standard deviation over seeds."
    ))
    blocks += _split_sections(store, writer, "short-long", "Short and long test prefixes", "short and long prefixes",
                              short_long_table, short_long_figure)

    # repeat / explore
    blocks.append(Heading(2, "Repeat and explore targets", "repeat-explore"))
    blocks.append(paragraph(
        "P@20 and MRR@20 on test targets that repeat an item of their prefix and on targets new to the session. "
        "A model can score well on repeats by re-ranking the prefix alone; the explore columns show which models "
        "find new items."
    ))
    sections = _split_sections(store, writer, "repeat-explore", "Repeat and explore targets", "repeat and explore targets",
                               repeat_explore_table, repeat_explore_figure)
    blocks += sections
    if not sections:
        blocks.append(paragraph("No dataset here has its split's example table (", code("splits/*.npz"),
                                " in the runs directory, written by sessbench run), so targets cannot be split."))

    # cost
    blocks.append(Heading(2, "Cost: time and memory", "cost"))
    for dataset in store.datasets:
        for protocol in store.protocols(dataset):
            table = cost_table(store, dataset, protocol)
            if table is not None:
                blocks.append(Heading(3, dataset_title(store, dataset) + ("" if protocol == "validated" else f" ({protocol} protocol)"),
                                      f"cost-{slug(dataset)}{protocol_suffix(protocol)}"))
                blocks.append(TableBlock(table))

    # reproducibility
    blocks.extend(reproducibility_blocks(store, command))
    # files left out (unreadable records, corrupt rank files): found while building, shown first
    if store.problems:
        skipped: list[Block] = [Heading(2, "Files the report could not use", "skipped-files"), paragraph(
            f"{len(store.problems)} file(s) of the runs directory were left out; every table below is built without them.")]
        table = Table("skipped-files", "Files left out of this report", [Column("file"), Column("problem"), Column("fix")])
        for path, why, fix in dict.fromkeys(store.problems):
            table.add(str(path), why, fix)
            log.warning("report: left out %s: %s. Fix: %s", path, why, fix)
        skipped.append(TableBlock(table))
        blocks[first_section:first_section] = skipped
    return blocks


def _split_sections(
    store: Store, writer: _Writer, key: str, title: str, what: str,
    table_fn: Callable[[Store, str, str], Any], figure_fn: Callable[..., list[Path] | None],
) -> list[Block]:
    """One sub-section per dataset and protocol for an analysis that splits the test prefixes in two
    (short/long, repeat/explore): heading, two-panel figure, table. Empty where no table can be made."""
    blocks: list[Block] = []
    for dataset in store.datasets:
        for protocol in store.protocols(dataset):
            table = table_fn(store, dataset, protocol)
            if table is None:
                continue
            where = dataset_title(store, dataset) + ("" if protocol == "validated" else f" ({protocol} protocol)")
            stem = f"{key}-{slug(dataset)}{protocol_suffix(protocol)}"
            blocks.append(Heading(3, where, stem))
            paths = figure_fn(store, dataset, protocol, writer.out / FIGURES, stem)
            if paths:
                writer.add(paths)
                blocks.append(FigureBlock(stem, f"{title} on {where}: P@20 and MRR@20 (%) per model, ± one std over seeds.",
                                          f"Bar chart: P@20 and MRR@20 of {what} per model on {where}"))
            blocks.append(TableBlock(table))
    return blocks


def headline_blocks(store: Store) -> list[Block]:
    """Table 2 on the paper's full datasets, ours beside the paper's, and the SR-GNN check."""
    blocks: list[Block] = [Heading(2, "Table 2 at the paper's scale", "headline")]
    tables = [(protocol, metric, table2_full(store, protocol, metric))
              for protocol in ("validated", "paper") for metric in ("P@20", "MRR@20")]
    if not any(t for _, _, t in tables):
        blocks.append(paragraph(
            "No run on a split of the paper's size is in this store. The official YOOCHOOSE 1/64 and DIGINETICA "
            "splits run with ", code("sessbench run --models all --dataset yoochoose64 --data-dir DIR"),
            " (DIR holding all_train_seq.txt and test.txt); see the coverage section for the grid.",
        ))
        return blocks
    blocks.append(paragraph(
        "Every model of the paper's Table 2 on the official splits (the paper's Table 1 exactly), under both "
        "protocols: ", strong("validated"), " (sessbench's default: epochs chosen on the latest 10% of the "
        "training sessions, then refitted on all of them; test scored once) and ", strong("paper"),
        " (the official code's reporting: the best test value over epochs). Models not in the paper's table "
        "follow it.",
    ))
    blocks.append(Heading(3, "The SR-GNN check", "srgnn-check"))
    blocks.append(paragraph(
        "Our SR-GNN computes what the official code computes, step for step (see the README's parity section), so "
        "under the paper protocol its mean should be within 1.0 P@20 and 0.5 MRR@20 of the paper's; a larger gap "
        "would mean the data or the evaluation differ, and is explained here, not tuned away."
    ))
    blocks.append(bullets(*srgnn_check(store)))
    for protocol, metric, result in tables:
        if result is None:
            continue
        table, _ = result
        blocks.append(Heading(3, f"{metric}, {protocol} protocol", f"headline-{metric.replace('@', '').lower()}-{protocol}"))
        blocks.append(TableBlock(table))
    return blocks


def reproducibility_blocks(store: Store, command: str) -> list[Block]:
    from sessbench.report.doc import CodeBlock

    cmds = commands(store)
    ids = {c: f"C{i + 1}" for i, c in enumerate(cmds)}
    blocks: list[Block] = [Heading(2, "Reproducibility", "reproducibility")]
    blocks.append(paragraph(
        "The runs were produced by these commands (each run's record names its command; C1, C2, ... in the "
        "runs table below). A seed fixes every result on CPU. Rerunning them with ", code("--resume"),
        " skips finished runs; then this report is regenerated by ", code(command), ".",
    ))
    blocks.append(CodeBlock("\n".join(f"# {ids[c]}\n{c}" for c in cmds) if cmds else "(no command recorded)"))
    env_ids = environment_ids(store)
    blocks.append(TableBlock(environments_table(store, env_ids)))
    blocks.append(Details("Configurations (hyperparameters and settings)", [TableBlock(configs_table(store))]))
    blocks.append(Details(f"Every run ({len(store.records)})", [TableBlock(runs_table(store, ids, env_ids))]))
    failed = failed_table(store)
    if failed is not None:
        blocks.append(Heading(3, "Failed runs", "failed-runs"))
        blocks.append(TableBlock(failed))
    return blocks


def _protocols(store: Store) -> list[str]:
    return sorted({g.protocol for g in store.groups if g.ok}, key=lambda p: (p != "validated", p))


def _model_key(model: str) -> tuple[int, str]:
    from sessbench.report.store import model_sort_key

    return model_sort_key(model)
