#!/usr/bin/env python3
"""Fill the generated regions of README.md and docs/ from the run store and the committed benchmarks.

Every number in README.md and docs/ that a run or a benchmark produced sits in a marked region:

    <!-- sessbench:NAME -->
    (generated text)
    <!-- /sessbench:NAME -->

and comes from one of two committed sources:

* the published run store `results/runs/` (read with the report's own code: `Store`,
  `table2_full`, `srgnn_check`, `full_grid_table`, `render_table`), and
* benchmark outputs under `results/bench/`, each the `--json` output of a sessbench command
  (`bench train`, `bench synthetic`, `data stats`), the timing of a grid (`sessbench run`), or
  the medians `scripts/bench_blocked_products.py` prints.

The store also holds each split's audit (`results/runs/splits/<id>.audit.json`, written by
`sessbench publish`), which the `audit` region shows.

Usage:

    python scripts/update_docs.py            # rewrite every region
    python scripts/update_docs.py --check    # exit 1 and name every region that differs
    python scripts/update_docs.py --list     # the regions and where their numbers come from

    # rerun the benchmarks behind the docs (then rewrite the regions):
    python scripts/update_docs.py --measure train:srgnn synthetic blocked-products default-run smoke
    python scripts/update_docs.py --measure data-stats:yoochoose64 --data-dir DIR
    python scripts/update_docs.py --measure all --data-dir DIR --note "idle 2-core machine"

A file under `results/bench/` is either a command's raw `--json` output or what `--measure`
writes: `{"command", "commit", "date", "cores", "note", "output"}` with the raw output under
`output`. A region whose benchmark file is missing says how to make it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STORE_DIR = Path("results/runs")
BENCH_DIR = Path("results/bench")

#: `<!-- sessbench:NAME -->` ... `<!-- /sessbench:NAME -->`; NAME has no spaces (arguments after colons)
REGION = re.compile(
    r"(?P<open><!-- sessbench:(?P<name>[^\s>]+) -->\n)(?P<body>.*?)(?P<close><!-- /sessbench:(?P=name) -->)",
    re.S,
)
OPEN = re.compile(r"<!-- (/?)sessbench:([^\s>]+) -->")
#: a fenced code block (``` or ~~~ at the start of a line, to the closing fence): markers in it are examples
FENCE = re.compile(r"^(?P<fence>```+|~~~+)[^\n]*\n.*?^(?P=fence)[ \t]*$", re.S | re.M)

#: the models `bench train` is run for (the paper's Table 2 models that train or fit, and the simple ones)
TRAIN_MODELS = ("srgnn", "gru4rec", "narm", "stamp", "fpmc", "bpr-mf", "item-knn",
                "markov", "ar", "sr", "sknn", "v-sknn", "stan")
#: the full datasets whose Table 1 the docs show (`data stats`, needs --data-dir)
STATS_DATASETS = ("yoochoose64", "diginetica")


# ---------------------------------------------------------------------------- sources


class Sources:
    """The committed store and benchmark files, loaded once per invocation."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @cached_property
    def store(self) -> Any:
        from sessbench.report.store import Store

        return Store.load(self.root / STORE_DIR)

    def bench(self, name: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(raw command output, metadata) of `results/bench/NAME.json`, or None when absent."""
        path = self.root / BENCH_DIR / f"{name}.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "output" in data and "command" in data:
            return data["output"], {k: v for k, v in data.items() if k != "output"}
        return data, {}


def _missing(name: str, how: str) -> str:
    return f"*Not measured yet: `{BENCH_DIR}/{name}.json` is missing. Make it with `{how}`.*\n"


def _measured_line(meta: dict[str, Any], name: str) -> str:
    """Where a benchmark file came from, in one line."""
    parts = []
    if meta.get("command"):
        parts.append(f"`{meta['command']}`")
    when = []
    if meta.get("date"):
        when.append(str(meta["date"]))
    if meta.get("commit"):
        when.append(f"commit {str(meta['commit'])[:10]}{' (uncommitted changes)' if meta.get('dirty') else ''}")
    if meta.get("cores"):
        when.append(f"{meta['cores']} cores")
    text = "Measured with " + (parts[0] if parts else "the command in the file")
    if when:
        text += " (" + ", ".join(when) + ")"
    text += f"; source: `{BENCH_DIR}/{name}.json`."
    if meta.get("note"):
        text += f" {str(meta['note']).rstrip('.')}."
    return text


def _int(value: Any) -> str:
    return "–" if value is None else f"{int(round(float(value))):,}"


def _num(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{float(value):,.{digits}f}"


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.2f}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


# ---------------------------------------------------------------------------- generators: the store


def gen_headline(src: Sources, protocol: str = "validated", metric: str = "P@20") -> str:
    """Table 2 at the paper's scale, one metric and protocol, from the store."""
    from sessbench.report.headline import table2_full
    from sessbench.report.markdown import render_table

    result = table2_full(src.store, protocol, metric)
    if result is None:
        return (f"*No full-scale run under the `{protocol}` protocol in `{STORE_DIR}` yet; "
                "`scripts/table2_cpu.sh` runs the full-scale grid.*\n")
    return render_table(result[0], with_caption=False)


def gen_srgnn_check(src: Sources) -> str:
    """The SR-GNN check (paper protocol against the paper's values), one bullet per dataset."""
    from sessbench.report.headline import srgnn_check
    from sessbench.report.doc import spans
    from sessbench.report.markdown import render_spans

    return "".join(f"- {render_spans(spans(line))}\n" for line in srgnn_check(src.store))


def gen_coverage(src: Sources) -> str:
    """The full-scale grid: runs done and still missing, per model and protocol."""
    from sessbench.report.headline import FULL_SCALE, full_scale_view
    from sessbench.report.markdown import render_table
    from sessbench.report.provenance import full_grid_table

    views = {base: full_scale_view(src.store, base) for base in FULL_SCALE}
    table, missing = full_grid_table(src.store, views)
    head = (f"{missing} run(s) of the full-scale grid are still missing.\n\n" if missing
            else "The full-scale grid is complete.\n\n")
    return head + render_table(table, with_caption=False)


def gen_store_summary(src: Sources) -> str:
    """What the committed store holds: records, models, datasets, sources, commits."""
    store = src.store
    records = store.records + store.unverified
    if not records:
        return f"`{STORE_DIR}` holds no run records yet.\n"
    ok = sum(1 for r in records if r.get("status") == "ok")
    datasets = sorted({str(r.get("dataset_key") or r.get("dataset")) for r in records})
    kinds = sorted({str((r.get("source") or {}).get("kind", "unrecorded")) for r in records})
    commits = sorted({str(((r.get("environment") or {}).get("git") or {}).get("commit") or "none")[:10]
                      for r in store.records})
    models = {str(r.get("model")) for r in records}
    lines = [
        f"`{STORE_DIR}` holds {_count(len(records), 'run record')} ({ok} ok) of {_count(len(models), 'model')} on "
        f"{', '.join(f'`{d}`' for d in datasets)} (source: {', '.join(kinds)}).",
        f"The tables show runs from clean trees at {_count(len(commits), 'commit')}: "
        f"{', '.join(f'`{c}`' for c in commits)}.",
    ]
    if store.unverified:
        lines.append(f"{_count(len(store.unverified), 'run')} from dirty trees are set apart.")
    if store.superseded:
        lines.append(f"{_count(len(store.superseded), 'configuration')} also ran under another code state "
                     "(listed in the report, never averaged).")
    return " ".join(lines) + "\n"


def gen_audit(src: Sources) -> str:
    """Each full-size split's audit as `sessbench publish` stored it (`results/runs/splits/<id>.audit.json`)."""
    from sessbench.report.audits import dataset_audit
    from sessbench.report.headline import LABELS

    rows, ratios, notes, references = [], [], set(), set()
    for dataset in src.store.datasets:
        audit = dataset_audit(src.store, dataset)
        if audit is None:
            continue
        checks = {c.get("check"): c for c in audit["checks"] if isinstance(c, dict)}
        size, repeat, shared = checks["test-size"], checks["repeat-share"], checks["shared-sequences"]
        references.add(str(size["reference"]))
        p, m = size["P@20"], size["MRR@20"]
        ratios += [p["half_width_sessions"] / p["half_width_iid"], m["half_width_sessions"] / m["half_width_iid"]]
        twins = f"{100 * shared['share']:.1f}%"
        short = (shared.get("by_length") or {}).get("2")
        if short:
            twins += f" ({_int(short)} of them 2 clicks long)"
        failed = ", ".join(map(str, audit.get("failed") or [])) or "none"
        rows.append(
            f"| {LABELS.get(dataset, dataset)} | {_int(size['test_sessions'])} / {_int(size['test_prefixes'])} | "
            f"{_pct(p['level'])} ± {_pct(p['half_width_sessions'])} / ± {_pct(p['half_width_iid'])} | "
            f"{_pct(m['level'])} ± {_pct(m['half_width_sessions'])} / ± {_pct(m['half_width_iid'])} | "
            f"{100 * repeat['share']:.1f}% | {twins} | {failed} |\n"
        )
        notes.update(str(n) for n in audit.get("notes") or [])
    if not rows:
        return (f"*No split audit in `{STORE_DIR}/splits/` yet: `sessbench publish RUNS --data-dir DIR` writes one "
                "beside each split's example table.*\n")
    text = (
        "| split | test sessions / prefixes | P@20 ± 95% (clustered / i.i.d.) | MRR@20 ± 95% (clustered / i.i.d.) "
        "| repeat share | test sessions with a twin in training | failed checks |\n"
        "|---|---:|---:|---:|---:|---:|---|\n" + "".join(rows)
    )
    text += (f"\nReference model: {', '.join(f'`{r}`' for r in sorted(references))}. Treating prefixes as independent "
             f"understates the half-widths by a factor of {min(ratios):.1f} to {max(ratios):.1f}.")
    for note in sorted(notes):
        text += f" {note[:1].upper()}{note[1:]}."
    return text + f"\n\n<sub>Source: `{STORE_DIR}/splits/*.audit.json`, written by `sessbench publish`.</sub>\n"


# ---------------------------------------------------------------------------- generators: benchmarks


def _train_row(model: str, out: dict[str, Any]) -> list[str]:
    prefixes = out.get("n_train_prefixes")
    if "train_seq_per_s" in out:
        train = (f"{_int(out['train_seq_per_s'])} ({_int(out.get('floor_train_seq_per_s'))}, "
                 f"{_num(out.get('train_floor_ratio'))})")
        epoch = _duration(prefixes / out["train_seq_per_s"]) if prefixes and out["train_seq_per_s"] else "–"
    else:
        train = f"fit {_num(out.get('fit_s'), 2)} s"
        epoch = "–"
    speed = out.get("eval_seq_per_s", out.get("predict_seq_per_s"))
    evaluation = f"{_int(speed)} ({_int(out.get('floor_eval_seq_per_s'))}, {_num(out.get('eval_floor_ratio'))})"
    return [f"`{model}`", train, epoch, evaluation, f"{_int(out.get('peak_memory_mb'))} MB"]


def gen_bench_train(src: Sources, models: str = "", shape: str = "yoochoose64") -> str:
    """`bench train` at a shape for some models: seq/s against the floors, epoch time, memory."""
    names = [m for m in models.split(",") if m] if models else list(TRAIN_MODELS)
    rows, missing, metas = [], [], []
    for model in names:
        found = src.bench(f"train-{model}-{shape}")
        if found is None:
            missing.append(model)
            continue
        out, meta = found
        rows.append(_train_row(model, out))
        metas.append((model, out, meta))
    text = ""
    if rows:
        text += ("| model | train seq/s (floor, ratio) | one epoch | eval seq/s (floor, ratio) | peak memory |\n"
                 "|---|---:|---:|---:|---:|\n")
        text += "".join("| " + " | ".join(r) + " |\n" for r in rows)
        first = metas[0][1]
        batches = sorted({str(o.get("batches")) for _, o, _ in metas})
        threads = sorted({str(o.get("threads")) for _, o, _ in metas})
        devices = sorted({str(o.get("device")) for _, o, _ in metas})
        notes = sorted({str(m.get("note")).rstrip(".") for _, _, m in metas if m.get("note")})
        dates = sorted({str(m.get("date")) for _, _, m in metas if m.get("date")})
        commits = sorted({str(m.get("commit"))[:10] + (" (uncommitted changes)" if m.get("dirty") else "")
                          for _, _, m in metas if m.get("commit")})
        text += (
            f"\n<sub>`sessbench bench train --model M --shape {shape} --threads {'/'.join(threads)} "
            f"--batches {'/'.join(batches)} --json` on {'/'.join(devices)} ({_int(first.get('n_train_prefixes'))} "
            f"generated training prefixes, {_int(first.get('n_items'))} items, each model with its `{shape}` "
            "hyperparameters); one epoch = training prefixes / train seq/s. Models without a training loop show "
            f"their fit time. Sources: `{BENCH_DIR}/train-MODEL-{shape}.json`"
            + (f", measured {', '.join(dates)}" if dates else "")
            + (f" at commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}" if commits else "") + "."
            + (" " + ". ".join(notes) + "." if notes else "") + "</sub>\n"
        )
    if missing:
        text += ("\n" if rows else "") + (
            f"*Not measured yet: {', '.join(f'`{m}`' for m in missing)} (make `{BENCH_DIR}/train-MODEL-{shape}.json` "
            f"with `python scripts/update_docs.py --measure train:MODEL`).*\n"
        )
    return text


def gen_bench_synthetic(src: Sources) -> str:
    """The synthetic default's calibration figures (`bench synthetic`), on the validation carve."""
    found = src.bench("synthetic")
    if found is None:
        return _missing("synthetic", "python scripts/update_docs.py --measure synthetic")
    out, meta = found
    d = out["dataset"]
    text = (
        f"The default: {_int(d['n_items'])} items, {_int(d['generator']['n_sessions'])} sessions "
        f"({_int(d['clicks'])} clicks, mean session length {_num(d['avg_length'])}; {100 * d['revisit_rate']:.1f}% of "
        "the non-first training clicks revisit an item of the session). "
    )
    if out.get("evaluated_on") == "validation":
        share = 100 * float(out.get("validation_fraction", 0.1))
        text += (
            f"The figures are measured on the validation carve, never on test: the predictors are fitted on the "
            f"training sessions before the last {share:.0f}% ({_int(d['train_prefixes'])} prefixes) and scored on "
            f"that last {share:.0f}% ({_int(d['valid_prefixes'])} prefixes). The test split, untouched, has "
            f"{_int(d['test_prefixes'])} prefixes.\n\n"
        )
    else:
        text += (f"Measured on test: {_int(d['train_prefixes'])} training and {_int(d['test_prefixes'])} test "
                 "prefixes.\n\n")
    text += "| predictor | P@20 | MRR@20 | share of oracle | normalized gain |\n|---|---:|---:|---:|---:|\n"
    labels = {"oracle": "oracle (Bayes predictive)", "pop": "POP", "s-pop": "S-POP",
              "first-order": "first-order: the last item's observed successors, then popularity "
                             "(`markov` with `backoff=popularity`)"}
    for key, m in out["models"].items():
        text += (f"| {labels.get(key, key)} | {_pct(m['P@20'])} | {_pct(m['MRR@20'])} | "
                 f"{_num(m['share_of_oracle'], 3)} | {_num(m['normalized_gain'], 3)} |\n")
    text += (f"\nThe oracle's expected P@20 (the predictive mass of its own top 20): "
             f"{_pct(out['oracle_expected_P@20'])} (standard error {_pct(out['oracle_expected_se'])}).\n\n"
             f"<sub>{_measured_line(meta or {'command': 'sessbench bench synthetic --json'}, 'synthetic')}</sub>\n")
    return text


def gen_blocked_products(src: Sources) -> str:
    """`scripts/bench_blocked_products.py`: the item-table products in one call, in blocks, in bf16."""
    found = src.bench("blocked-products")
    if found is None:
        return _missing("blocked-products", "python scripts/update_docs.py --measure blocked-products")
    out, meta = found
    ms = out["ms"]
    text = f"{out['shape']}, median milliseconds:\n\n| product | one call (fp32) | blocked (fp32) | bf16 with its casts |\n"
    text += "|---|---:|---:|---:|\n"
    rows = (("scores", "scores, one call", "scores, blocked", "scores, bf16"),
            ("table gradient", "table gradient, one call", "table gradient, blocked", "table gradient, bf16"),
            ("vectors' gradient", "vectors' gradient (one call)", None, "vectors' gradient, bf16"),
            ("table cast to bf16 (once a step)", None, None, "table to bf16 (once a step)"))
    for label, one, blk, bf in rows:
        cells = [_num(ms[k]) if k is not None and k in ms else "–" for k in (one, blk, bf)]
        text += f"| {label} | " + " | ".join(cells) + " |\n"
    r = out["ratios"]
    text += (f"\nBlocked against one call: {_num(r['scores'])}x (scores), {_num(r['table gradient'])}x (table gradient). "
             f"One training step's three products: {_num(r['fp32_step_ms'])} ms in fp32 (blocked), "
             f"{_num(r['bf16_step_ms'])} ms in bf16 with its casts, so bf16 is {_num(r['bf16'])}x as fast.\n\n"
             f"<sub>{_measured_line(meta, 'blocked-products')}</sub>\n")
    return text


def gen_table1(src: Sources, dataset: str) -> str:
    """Our Table 1 beside the paper's for an official split (`data stats --json`)."""
    name = f"data-stats-{dataset}"
    found = src.bench(name)
    if found is None:
        return _missing(name, f"python scripts/update_docs.py --measure data-stats:{dataset} --data-dir DIR")
    out, meta = found
    text = "| statistic | sessbench | paper (Table 1) | equal | why not |\n|---|---:|---:|---|---|\n"
    for row in out["table1"]:
        digits = row["key"] == "average_length"
        ours = _num(row["ours"], 2) if digits else _int(row["ours"])
        paper = "–" if row["paper"] is None else (_num(row["paper"], 2) if digits else _int(row["paper"]))
        if digits and row["ours"] is not None:
            ours += f" ({float(row['ours']):.4f})"
        equal = {True: "yes", False: "no", None: "–"}[row["equal"]]
        text += f"| {row['statistic']} | {ours} | {paper} | {equal} | {row['note'] or ''} |\n"
    ours = out["ours"]
    extra = [("items in training sessions", _int(ours.get("items_in_training_sessions"))),
             ("training sessions", _int(ours.get("train_sessions"))),
             ("test sessions", _int(ours.get("test_sessions"))),
             ("clicks per session", _num(ours.get("average_session_length")))]
    text += "".join(f"| {k} | {v} | – | – | |\n" for k, v in extra)
    files = ", ".join(f"`{f['name']}`" for f in (out.get("source") or {}).get("files", []))
    loading = out.get("loading") or {}
    text += (f"\nRead from {files or 'the official split'} (source `{(out.get('source') or {}).get('kind')}`, "
             f"digest `{(out.get('source') or {}).get('digest')}`) in {_num(loading.get('seconds'))} s with a peak "
             f"memory of {_int(loading.get('peak_memory_mb'))} MB (no cache: the published files parsed and "
             f"checked).\n\n<sub>{_measured_line(meta, name)}</sub>\n")
    return text


def gen_data_load(src: Sources) -> str:
    """Load time and peak memory of each official split from its published files (`data stats`)."""
    rows, missing, metas = [], [], []
    for dataset in STATS_DATASETS:
        found = src.bench(f"data-stats-{dataset}")
        if found is None:
            missing.append(dataset)
            continue
        out, meta = found
        loading, ours = out.get("loading") or {}, out.get("ours") or {}
        rows.append(f"| `{dataset}` | {_int(ours.get('train_sequences'))} | {_int(ours.get('test_sequences'))} | "
                    f"{_num(loading.get('seconds'))} s | {_int(loading.get('peak_memory_mb'))} MB |\n")
        metas.append((dataset, meta))
    text = ""
    if rows:
        text = ("| dataset | training prefixes | test prefixes | load time | peak memory |\n"
                "|---|---:|---:|---:|---:|\n" + "".join(rows))
        first_dataset, first = metas[0]
        line = _measured_line(first, f"data-stats-{first_dataset}")
        for d, _ in metas[1:]:
            line = line.replace(f"`{BENCH_DIR}/data-stats-{first_dataset}.json`",
                                f"`{BENCH_DIR}/data-stats-{first_dataset}.json`, `{BENCH_DIR}/data-stats-{d}.json`")
        line = line.replace(f"data stats {first_dataset}", "data stats DATASET")
        text += f"\nFrom the published files, with an empty cache (parsed and checked). <sub>{line}</sub>\n"
    if missing:
        text += ("\n" if rows else "") + _missing(f"data-stats-{missing[0]}", "python scripts/update_docs.py --measure "
                                                 f"data-stats:{missing[0]} --data-dir DIR")
    return text


def _run_sentence(src: Sources, name: str, what: str, how: str) -> str:
    found = src.bench(name)
    if found is None:
        return _missing(name, how)
    out, meta = found
    ok = sum(1 for r in out["runs"] if r.get("status") == "ok")
    slowest = max(out["runs"], key=lambda r: (r.get("fit_s") or 0) + (r.get("predict_s") or 0), default=None)
    text = (f"{what} took **{_duration(out['wall_s'])}** of wall time for {_count(len(out['runs']), 'run')} "
            f"({ok} ok) on {out['cores']} cores, {out['jobs']} at a time with {_count(out['threads'], 'torch thread')} "
            "each, the synthetic data generated first")
    if slowest is not None and len(out["runs"]) > 3:
        text += (f"; the slowest run was `{slowest['model']}` (fit {_num(slowest.get('fit_s'), 1)} s, "
                 f"predict {_num(slowest.get('predict_s'), 1)} s)")
    return text + f".\n\n<sub>{_measured_line(meta, name)}</sub>\n"


def gen_default_run(src: Sources) -> str:
    return _run_sentence(src, "default-run", "The default run (`sessbench run`: the paper's Table 2 models and "
                         "the simple models on the synthetic data, seed 0)", "python scripts/update_docs.py --measure default-run")


def gen_smoke_run(src: Sources) -> str:
    return _run_sentence(src, "smoke-run", "The smoke grid (`sessbench run --config configs/grids/smoke.yaml`)",
                         "python scripts/update_docs.py --measure smoke")


GENERATORS: dict[str, tuple[Callable[..., str], str]] = {
    "headline": (gen_headline, "results/runs: table2_full(store, PROTOCOL, METRIC); headline:PROTOCOL:METRIC"),
    "srgnn-check": (gen_srgnn_check, "results/runs: srgnn_check(store)"),
    "coverage": (gen_coverage, "results/runs: full_grid_table(store)"),
    "store-summary": (gen_store_summary, "results/runs: the records' datasets, sources, commits, code states"),
    "bench-train": (gen_bench_train, "results/bench/train-MODEL-SHAPE.json; bench-train:MODEL,MODEL[:SHAPE]"),
    "bench-synthetic": (gen_bench_synthetic, "results/bench/synthetic.json (sessbench bench synthetic --json)"),
    "blocked-products": (gen_blocked_products, "results/bench/blocked-products.json (scripts/bench_blocked_products.py)"),
    "audit": (gen_audit, "results/runs/splits/*.audit.json (sessbench audit, stored by sessbench publish)"),
    "table1": (gen_table1, "results/bench/data-stats-DATASET.json (sessbench data stats DATASET --json); table1:DATASET"),
    "data-load": (gen_data_load, "results/bench/data-stats-DATASET.json: the load time and peak memory"),
    "default-run": (gen_default_run, "results/bench/default-run.json (the timed `sessbench run`)"),
    "smoke-run": (gen_smoke_run, "results/bench/smoke-run.json (the timed smoke grid)"),
}


# ---------------------------------------------------------------------------- regions


def doc_files(root: Path) -> list[Path]:
    files = [root / "README.md"] if (root / "README.md").is_file() else []
    docs = root / "docs"
    if docs.is_dir():
        files += sorted(docs.rglob("*.md"))
    return files


class RegionError(Exception):
    pass


def render_region(name: str, src: Sources) -> str:
    key, *args = name.split(":")
    if key not in GENERATORS:
        raise RegionError(f"unknown region '{name}' (known: {', '.join(GENERATORS)})")
    text = GENERATORS[key][0](src, *args)
    return "\n" + text.rstrip("\n") + "\n\n"


def split_fences(text: str) -> list[tuple[bool, str]]:
    """The text in pieces: (True, prose) where regions count, (False, code) for fenced code blocks."""
    pieces: list[tuple[bool, str]] = []
    last = 0
    for m in FENCE.finditer(text):
        pieces.append((True, text[last:m.start()]))
        pieces.append((False, m.group(0)))
        last = m.end()
    pieces.append((True, text[last:]))
    return pieces


def prose(text: str) -> str:
    """The text outside fenced code blocks (code blocks replaced by blank lines)."""
    return "".join(t if outside else "\n" for outside, t in split_fences(text))


def check_markers(path: Path, text: str) -> None:
    """Every opening marker has its closing one, in order, and regions do not nest."""
    stack: list[str] = []
    for m in OPEN.finditer(prose(text)):
        closing, name = m.group(1) == "/", m.group(2)
        if not closing:
            if stack:
                raise RegionError(f"{path}: region '{name}' opens inside region '{stack[-1]}'")
            stack.append(name)
        elif not stack or stack[-1] != name:
            raise RegionError(f"{path}: closing marker of '{name}' without its opening marker")
        else:
            stack.pop()
    if stack:
        raise RegionError(f"{path}: region '{stack[-1]}' is never closed (<!-- /sessbench:{stack[-1]} -->)")


def update_text(path: Path, text: str, src: Sources, cache: dict[str, str]) -> tuple[str, list[str]]:
    """The text with every region regenerated, and the names of the regions that changed."""
    check_markers(path, text)
    changed: list[str] = []

    def fill(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in cache:
            cache[name] = render_region(name, src)
        if m.group("body") != cache[name]:
            changed.append(name)
        return m.group("open") + cache[name] + m.group("close")

    new = "".join(REGION.sub(fill, t) if outside else t for outside, t in split_fences(text))
    return new, changed


def regions(root: Path) -> list[tuple[Path, str]]:
    return [(p, m.group("name")) for p in doc_files(root) for m in REGION.finditer(prose(p.read_text()))]


def run_update(root: Path, check: bool) -> int:
    src = Sources(root)
    cache: dict[str, str] = {}
    stale: list[str] = []
    for path in doc_files(root):
        text = path.read_text()
        new, changed = update_text(path, text, src, cache)
        rel = path.relative_to(root)
        for name in changed:
            stale.append(f"{rel}: region '{name}' differs from its source ({GENERATORS[name.split(':')[0]][1]})")
        if changed and not check:
            path.write_text(new)
            print(f"updated {rel}: {', '.join(changed)}")
    if check:
        if stale:
            print("\n".join(stale))
            print(f"{len(stale)} region(s) out of date: run python scripts/update_docs.py", file=sys.stderr)
            return 1
        print(f"all {len(regions(root))} regions up to date")
    elif not stale:
        print("all regions up to date")
    return 0


# ---------------------------------------------------------------------------- measuring


#: the folders whose code a benchmark measures: a change there makes the numbers "uncommitted"
MEASURED_CODE = ("sessbench", "baselines", "srgnn", "configs", "pyproject.toml")


def _git(root: Path) -> dict[str, Any]:
    """The commit, and whether the measured code differs from it (docs and scripts do not count)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", *MEASURED_CODE],
                                cwd=root, capture_output=True, text=True, check=True)
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def _sessbench(args: list[str], root: Path) -> list[str]:
    return [sys.executable, "-c", "import sys; from sessbench.cli import main; sys.exit(main(sys.argv[1:]))", *args]


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("SESSBENCH_JOBS", None)  # measure the defaults
    return env


def _save(root: Path, name: str, command: str, output: Any, note: str | None) -> Path:
    path = root / BENCH_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"command": command, **_git(root), "date": _dt.date.today().isoformat(), "cores": os.cpu_count(),
            "note": note or None, "output": output}
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    print(f"wrote {path.relative_to(root)}")
    return path


def measure_json(root: Path, name: str, shown: str, args: list[str], note: str | None) -> None:
    print(f"running: {shown}", flush=True)
    proc = subprocess.run(_sessbench(args, root), cwd=root, env=_env(root), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{shown} failed (exit code {proc.returncode})")
    _save(root, name, shown, json.loads(proc.stdout), note)


def measure_grid(root: Path, name: str, shown: str, extra: list[str], note: str | None) -> None:
    """Time a `sessbench run` from a fresh cache and runs folder (the data are generated too)."""
    from sessbench.results import iter_records

    with tempfile.TemporaryDirectory(prefix="sessbench-measure-") as tmp:
        runs, cache = Path(tmp) / "runs", Path(tmp) / "cache"
        args = ["run", *extra, "--runs-dir", str(runs), "--cache-dir", str(cache), "--quiet",
                "--checkpoint-dir", str(Path(tmp) / "checkpoints")]
        print(f"running: {shown}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(_sessbench(args, root), cwd=root, env=_env(root), capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode not in (0, 1):
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"{shown} failed (exit code {proc.returncode})")
        records = list(iter_records(runs))
    m = re.search(r"(\d+) at a time, (\d+) torch thread", proc.stderr + proc.stdout)
    threads = {(r.get("environment") or {}).get("torch_threads") for r in records}
    out = {
        "wall_s": round(wall, 1),
        "cores": os.cpu_count(),
        "jobs": int(m.group(1)) if m else None,
        "threads": int(m.group(2)) if m else (threads.pop() if len(threads) == 1 else None),
        "runs": sorted(
            ({"model": r.get("model"), "seed": r.get("seed"), "status": r.get("status"),
              "fit_s": (r.get("timing") or {}).get("fit_s"), "predict_s": (r.get("timing") or {}).get("predict_s"),
              "P@20": (r.get("metrics") or {}).get("P@20")} for r in records),
            key=lambda r: (str(r["model"]), int(r["seed"] or 0)),
        ),
    }
    _save(root, name, shown, out, note)


def measure_blocked_products(root: Path, note: str | None) -> None:
    """Run scripts/bench_blocked_products.py (its defaults) and keep its medians and ratios as JSON."""
    shown = "python scripts/bench_blocked_products.py"
    print(f"running: {shown}", flush=True)
    proc = subprocess.run([sys.executable, str(root / "scripts" / "bench_blocked_products.py")], cwd=root,
                          env=_env(root), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{shown} failed (exit code {proc.returncode})")
    lines = proc.stdout.splitlines()
    ms = {m.group(1).strip(): float(m.group(2)) for m in (re.match(r"^  (.+?)\s+([0-9.]+) ms$", x) for x in lines) if m}
    ratios = {m.group(1): float(m.group(2))
              for m in (re.match(r"^  (scores|table gradient): blocked is ([0-9.]+) times", x) for x in lines) if m}
    step = next((re.search(r"fp32 \(blocked\) ([0-9.]+) ms, bf16 with its casts ([0-9.]+) ms: bf16 is ([0-9.]+) times", x)
                 for x in lines if "one step's three products" in x), None)
    if step is None or len(ratios) != 2:
        raise SystemExit(f"{shown}: unexpected output:\n{proc.stdout}")
    ratios.update(fp32_step_ms=float(step.group(1)), bf16_step_ms=float(step.group(2)), bf16=float(step.group(3)))
    shape = lines[0].split(";")[0]
    _save(root, "blocked-products", shown, {"shape": shape, "header": lines[0], "ms": ms, "ratios": ratios,
                                            "stdout": proc.stdout}, note)


def measure(root: Path, names: list[str], batches: int, data_dir: str | None, note: str | None) -> None:
    todo: list[str] = []
    for name in names:
        if name == "all":
            todo += ["synthetic", "blocked-products", "smoke", "default-run", *(f"train:{m}" for m in TRAIN_MODELS)]
            todo += [f"data-stats:{d}" for d in STATS_DATASETS] if data_dir else []
        else:
            todo.append(name)
    for name in todo:
        key, _, arg = name.partition(":")
        if key == "train":
            args = ["bench", "train", "--model", arg, "--shape", "yoochoose64", "--threads", "1",
                    "--batches", str(batches), "--json"]
            measure_json(root, f"train-{arg}-yoochoose64", "sessbench " + " ".join(args), args, note)
        elif key == "synthetic":
            args = ["bench", "synthetic", "--json"]
            measure_json(root, "synthetic", "sessbench " + " ".join(args), args, note)
        elif key == "data-stats":
            if not data_dir:
                raise SystemExit("--measure data-stats:DATASET needs --data-dir (the folder of the official splits)")
            with tempfile.TemporaryDirectory(prefix="sessbench-stats-") as tmp:
                args = ["data", "stats", arg, "--data-dir", data_dir, "--cache-dir", tmp, "--json"]
                shown = f"sessbench data stats {arg} --data-dir DIR --cache-dir EMPTY_DIR --json"
                measure_json(root, f"data-stats-{arg}", shown, args, note)
        elif key == "blocked-products":
            measure_blocked_products(root, note)
        elif key == "default-run":
            measure_grid(root, "default-run", "sessbench run", [], note)
        elif key == "smoke":
            measure_grid(root, "smoke-run", "sessbench run --config configs/grids/smoke.yaml",
                         ["--config", "configs/grids/smoke.yaml"], note)
        else:
            raise SystemExit(f"unknown benchmark '{name}': train:MODEL, synthetic, blocked-products, "
                             "data-stats:DATASET, default-run, smoke or all")


# ---------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 and name every region that differs")
    parser.add_argument("--list", action="store_true", help="list the regions and their sources")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs="+", metavar="BENCH",
                        help="rerun benchmarks into results/bench/: train:MODEL, synthetic, blocked-products, "
                             "data-stats:DATASET, default-run, smoke, all")
    parser.add_argument("--batches", type=int, default=50, help="--measure train: timed batches (default 50)")
    parser.add_argument("--data-dir", help="--measure data-stats: the folder of the official splits")
    parser.add_argument("--note", help="--measure: a note stored with the numbers (e.g. how busy the machine was)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.measure:
            measure(root, args.measure, args.batches, args.data_dir, args.note)
            return 0
        if args.list:
            for path, name in regions(root):
                print(f"{path.relative_to(root)}: {name}  <-  {GENERATORS.get(name.split(':')[0], ('', '?'))[1]}")
            return 0
        return run_update(root, args.check)
    except RegionError as exc:
        print(f"update_docs: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
