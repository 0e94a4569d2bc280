"""The `sessbench` command line. Thin: it parses options and calls the library.

User errors (`SessbenchError`) print one paragraph and exit with code 2; `--debug` shows the
traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from sessbench import __version__
from sessbench.errors import SessbenchError

log = logging.getLogger("sessbench")

EPILOG_RUN = """examples:
  sessbench run                                   all models on the built-in synthetic dataset
  sessbench run --models pop,s-pop --dataset diginetica --data-dir ~/data/diginetica
  sessbench run --models baselines --dataset yoochoose64 --data-dir ~/data/yoochoose --seeds 0,1,2
  sessbench run --dataset synthetic:n_items=2000,n_sessions=20000
  sessbench run --config configs/grids/paper.yaml --data-dir ~/data --resume
  sessbench run --models all --jobs 4 --threads 2 --timeout 7200 --resume   4 runs at a time, each at most 2 h
  sessbench run --config configs/grids/paper.yaml --executor dask --scheduler tcp://HOST:8786 --resume
"""


def _progress_factory(enabled: bool) -> Callable[..., Any]:
    """Progress bars on a terminal only: a log file or a pipe gets the log lines, not bar redraws."""
    from tqdm.auto import tqdm

    enabled = enabled and sys.stderr.isatty()

    def progress(total: int | None = None, desc: str = "") -> Any:
        return tqdm(total=total, desc=desc, leave=False, disable=not enabled, file=sys.stderr, dynamic_ncols=True)

    return progress


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="folder holding the raw dataset file (may be read-only)")
    p.add_argument(
        "--cache-dir", type=Path,
        help="where prepared splits are cached (default: $SESSBENCH_CACHE, else the user cache dir)",
    )
    p.add_argument(
        "--dataset-param", action="append", default=[], metavar="KEY=VALUE",
        help="a dataset parameter, e.g. for clicks:PATH session_col=sid (repeatable)",
    )


def _int_list(text: str, option: str, example: str, minimum: int | None = None, maximum: int | None = None) -> list[int]:
    """A comma list of integers (within [`minimum`, `maximum`]) given to `option`, or a SessbenchError."""
    if maximum is not None:
        kind = f"integers from {minimum} to {maximum}"
    else:
        kind = "integers" if minimum is None else f"integers >= {minimum}"
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SessbenchError(f"{option} '{text}': expected a comma list of {kind}, e.g. {option} {example}") from None
    if not values:
        raise SessbenchError(f"{option} is empty: give a comma list of {kind}, e.g. {option} {example}")
    if (minimum is not None and min(values) < minimum) or (maximum is not None and max(values) > maximum):
        raise SessbenchError(f"{option} '{text}': expected a comma list of {kind}, e.g. {option} {example}")
    return values


#: bounds of `run` options whose huge values would overflow or exhaust the machine
def _dataset_params(values: list[str]) -> dict[str, Any]:
    import yaml

    from sessbench.config import load_yaml_text

    out: dict[str, Any] = {}
    for text in values:
        key, eq, value = text.partition("=")
        if not eq:
            raise SessbenchError(f"--dataset-param '{text}': expected KEY=VALUE")
        try:
            out[key.strip()] = load_yaml_text(value, f"--dataset-param '{text}'")[0]
        except yaml.YAMLError as exc:
            raise SessbenchError(f"--dataset-param '{text}': the value is not valid YAML ({getattr(exc, 'problem', None) or exc}); "
                                 "quote it, e.g. --dataset-param sep=';'") from None
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessbench",
        description="Benchmark session-based recommenders on the SR-GNN datasets, splits and metrics.",
    )
    parser.add_argument("--version", action="version", version=f"sessbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars, warnings only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # run -------------------------------------------------------------------------------
    p = sub.add_parser(
        "run", help="fit and evaluate models, one record per run",
        description="Fit and evaluate models on a dataset; each run writes one JSON record to --runs-dir.",
        epilog=EPILOG_RUN, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--models", help="comma list of models and groups (default: paper,simple: the paper's Table 2 models "
                   "and the simple models; 'all' adds the five SR-GNN variants); see 'sessbench models'")
    p.add_argument(
        "--dataset", action="append", dest="datasets",
        help="dataset name (repeatable; default synthetic): yoochoose64, yoochoose4, yoochoose, diginetica, "
        "synthetic[:k=v,...], clicks:PATH, split:DIR (a ready-made split, loaded as given), official:NAME",
    )
    p.add_argument("--seeds", help="comma list of seeds (default 0)")
    p.add_argument("--protocol", choices=["validated", "paper"],
                   help="validated (default): epochs chosen on a validation carve, then refitted on the whole training "
                   "set; paper: the official code's best test score over epochs")
    p.add_argument("--no-refit", action="store_true",
                   help="validated protocol without the refit: every model stays fitted on the training set minus the "
                   "validation carve (sessbench's behaviour before the refit)")
    p.add_argument("--validation-fraction", type=float, help="share of training sessions carved for validation (default 0.1)")
    p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads per run (default: the cores divided among the runs "
                   "that run at once, so a grid never oversubscribes them)")
    p.add_argument("--time-budget", type=float, dest="time_budget_s", help="seconds of training per run before stopping early")
    p.add_argument("--eval-batch-size", type=int, help="prefixes scored at once (default: fits 256 MB of scores)")
    p.add_argument("--config", type=Path, help="experiment YAML (see configs/grids/)")
    p.add_argument("--config-dir", type=Path, help="folder with models/<name>.yaml hyperparameters (default: configs/)")
    p.add_argument("--set", action="append", default=[], metavar="MODEL.KEY=VALUE", help="override a hyperparameter (repeatable)")
    p.add_argument("--runs-dir", type=Path, help="where run records go (default runs/)")
    p.add_argument("--resume", action="store_true", help="skip runs that already have a finished record (with --save-recs K: and saved K-lists; others run again)")
    p.add_argument("--force", action="store_true", help="rebuild the prepared dataset even if cached (as in the data commands)")
    p.add_argument("--force-prepare", action="store_true", help=argparse.SUPPRESS)  # the old spelling of --force
    p.add_argument("--executor", choices=["local", "dask"], default="local",
                   help="local (default: this machine) or dask (a Dask distributed cluster; pip install 'sessbench[dask]')")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler address, e.g. tcp://HOST:8786 (with --executor dask; default: a local cluster of --jobs workers)")
    p.add_argument("--jobs", type=int, help="runs at a time, each in its own process (default: one per core on a CPU, "
                   "one on a GPU; $SESSBENCH_JOBS sets the default; 1 runs them one by one in this process)")
    p.add_argument("--timeout", type=float, dest="timeout_s", metavar="SECONDS",
                   help="stop a run after this many seconds and record it as failed (runs each run in its own process)")
    p.add_argument("--no-memory-check", action="store_true", help="skip the memory estimate made before training")
    p.add_argument("--plan", action="store_true",
                   help="print every run with its estimated time (measured with a short benchmark on the data and "
                   "device) and the total, then stop without running anything")
    p.add_argument("--checkpoint-dir", type=Path,
                   help="where unfinished runs keep their end-of-epoch checkpoints, so a killed run resumes from its "
                   "last epoch (default: <cache dir>/checkpoints; removed when the run finishes)")
    p.add_argument("--save-recs", type=int, metavar="K",
                   help="also save every test prefix's top-K items and scores (<run_id>.recs.npz; items tied at "
                   "the K-th score are kept too, so the lists re-evaluate exactly); see 'sessbench recs export'")
    p.add_argument("--recs-cap", type=int, default=10, metavar="FACTOR",
                   help="with --save-recs: a list holds at most FACTOR x K items; larger tie groups are truncated "
                   "and counted in the record (default 10)")
    _add_data_options(p)
    p.set_defaults(func=cmd_run)

    # recs ------------------------------------------------------------------------------
    p = sub.add_parser("recs", help="export saved recommendation lists", description="Recommendation lists saved by 'sessbench run --save-recs K'.")
    rsub = p.add_subparsers(dest="recs_command", metavar="ACTION")
    q = rsub.add_parser(
        "export", help="write a run's lists as CSV (session-rec layout) or Parquet",
        description="Write a run's saved lists in session-rec's layout SessionId;Position;Recommendations;Scores "
        "(raw session and item ids; Position 0 = after the first click; lists comma-separated), as CSV, or "
        "Parquet when --out ends in .parquet.",
    )
    q.add_argument("run", help="a run id (a record's file name without .json) or a record path")
    q.add_argument("--out", required=True, type=Path, help="output file (.csv, or .parquet)")
    q.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where the run records are (default runs/)")
    q.set_defaults(func=cmd_recs_export)
    p.set_defaults(func=lambda args, parser=p: _help(parser))

    # evaluate --------------------------------------------------------------------------
    p = sub.add_parser(
        "evaluate", help="score a recommendation-list file from any framework with our metrics",
        description="Compute P@K and MRR@K (tie-aware, as in run records) of a list file in session-rec's layout "
        "SessionId;Position;Recommendations[;Scores] (CSV with ';', .parquet, or a saved .recs.npz) on a "
        "dataset's test prefixes, matched by session id and Position (prefix length - 1). Prefixes "
        "without a row count as misses (see --only-listed). Optional columns Prefix, LastItem and Target "
        "(what a row was computed for) are checked against the split, and mismatches shown.",
    )
    p.add_argument("--recs", required=True, type=Path, help="the list file")
    p.add_argument("--dataset", required=True, help="the dataset the lists were made on, e.g. diginetica or synthetic")
    p.add_argument("--ids", choices=["original", "exported"], default="original",
                   help="item (and session) numbering of the file: original = the dataset's raw ids (default; what "
                   "'recs export' writes), exported = the numbering 'sessbench data export' writes (items 1..n)")
    p.add_argument("--only-listed", nargs="?", const="prefixes", choices=["prefixes", "sessions"],
                   help="score only the test prefixes the file has rows for (or, with 'sessions', every prefix of "
                   "the sessions it has rows for) instead of counting the others as misses")
    p.add_argument("--ks", help="comma list of cut-offs (default: 5, 10, 20 as far as the shortest list allows)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--force", action="store_true", help="rebuild the prepared split even if cached")
    _add_data_options(p)
    p.set_defaults(func=cmd_evaluate)

    # report ----------------------------------------------------------------------------
    p = sub.add_parser(
        "report", help="write the report (tables, figures, HTML) from the runs directory",
        description="Write the report from run records: README.md, index.html, tables (CSV, LaTeX, Markdown) "
        "and figures (PNG, SVG). Never reruns models; the same records give byte-identical files.",
    )
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="run records to read (default runs/)")
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder (default results/)")
    p.add_argument("--reference", default="srgnn", help="model every other model is tested against (default srgnn)")
    p.add_argument("--resamples", type=int, default=10_000, help="randomization-test resamples (default 10000)")
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate of the Holm correction (default 0.05)")
    p.set_defaults(func=cmd_report)

    # publish ---------------------------------------------------------------------------
    p = sub.add_parser(
        "publish", help="copy clean runs into the committed store (results/runs)",
        description="Copy the records of a runs directory that a clean, committed tree made (with their rank files "
        "and each split's example table) into the published store; records of dirty trees are refused and named. "
        "Recommendation lists and checkpoints are never copied.",
    )
    p.add_argument("runs_dir", type=Path, help="the runs directory a grid wrote to")
    p.add_argument("--to", type=Path, default=Path("results/runs"), help="the published store (default results/runs)")
    p.add_argument("--data-dir", type=Path, help="where the datasets are, to rebuild a split's example table if missing")
    p.add_argument("--cache-dir", type=Path, help="prepared-data cache (default: $SESSBENCH_CACHE, else the user cache dir)")
    p.set_defaults(func=cmd_publish)

    # models ----------------------------------------------------------------------------
    p = sub.add_parser("models", help="list registered models and groups", description="List registered models, their groups and descriptions.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_models)

    # data ------------------------------------------------------------------------------
    p = sub.add_parser("data", help="list, prepare, describe and export datasets", description="Dataset preparation and inspection.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    q = dsub.add_parser("list", help="list the datasets sessbench knows", description="List dataset names, raw files and sources.")
    q.set_defaults(func=cmd_data_list)
    for name, helptext, func in (
        ("prepare", "prepare a dataset (or load it from the cache)", cmd_data_prepare),
        ("stats", "print our Table 1 figures beside the paper's", cmd_data_stats),
    ):
        q = dsub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        q.add_argument("dataset", help="dataset name, e.g. diginetica or synthetic")
        _add_data_options(q)
        q.add_argument("--force", action="store_true", help="rebuild even if cached")
        if name == "stats":
            q.add_argument("--json", action="store_true", help="machine-readable output")
        q.set_defaults(func=func)
    q = dsub.add_parser(
        "export", help="write a prepared split for other frameworks",
        description="Export a prepared split: srgnn-json (the official preprocessing's schema), recbole (atomic "
        ".inter files), session-rec (TSV) or item-map (the item numbering 1..n they use, beside the raw ids). "
        "Files are named after the dataset (click logs and ready-made splits: after their file or folder and "
        "their data's digest, so exports of several never overwrite each other).",
    )
    q.add_argument("dataset")
    q.add_argument("--format", required=True, choices=["srgnn-json", "recbole", "session-rec", "item-map"])
    q.add_argument(
        "--validation-fraction", type=float, default=0.1,
        help="recbole / session-rec: share of training sessions written as the validation part "
        "(default 0.1; a ready-made split with its own validation part writes that one; 0: none; srgnn-json "
        "always writes the whole training list)",
    )
    q.add_argument("--out", required=True, type=Path, help="output file (srgnn-json) or folder")
    q.add_argument("--force", action="store_true", help="rebuild the prepared split even if cached")
    _add_data_options(q)
    q.set_defaults(func=cmd_data_export)
    q = dsub.add_parser(
        "import-official", help="import the official SR-GNN train.txt/test.txt pickles (safely) as official:NAME",
        description="Read train.txt and test.txt written by the official SR-GNN datasets/preprocess.py with a "
        "restricted unpickler (lists, tuples and integers only; anything that could run code is rejected) and "
        "store them as a prepared dataset: run on it with --dataset official:NAME.",
    )
    q.add_argument("dir", type=Path, help="folder holding train.txt and test.txt")
    q.add_argument("--name", help="dataset name (default: the folder's name), used as --dataset official:NAME")
    q.add_argument("--n-items", type=int, help="candidate items 1..N (default: the largest item number; the "
                   "official code uses 43097 for DIGINETICA and 37483 for the YOOCHOOSE cuts)")
    q.add_argument("--cache-dir", type=Path, help="where prepared splits are cached (default: $SESSBENCH_CACHE, else the user cache dir)")
    q.set_defaults(func=cmd_data_import_official)
    p.set_defaults(func=lambda args, parser=p: _help(parser))

    # audit -----------------------------------------------------------------------------
    p = sub.add_parser(
        "audit", help="the checks a reviewer asks of a dataset: leaks, time order, test size, repeats",
        description="Check a prepared split: test size and the 95% half-widths it allows (at a reference model's "
        "level, clustered by session), the repeat share of the targets, test items unseen in training, sessions "
        "in both training and test (by id and by item sequence), time order (test after training, validation "
        "after the rest), duplicates, and the conformance kit's batch-company check on the reference model. "
        "Exits with 1 when a check fails.",
    )
    p.add_argument("dataset", help="dataset name, e.g. yoochoose64, diginetica or synthetic")
    p.add_argument("--model", default="s-pop", help="reference model for the half-widths and the batch-company check "
                   "(default s-pop: seconds on any dataset)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_data_options(p)
    p.set_defaults(func=cmd_audit)

    # bench -----------------------------------------------------------------------------
    p = sub.add_parser("bench", help="benchmarks of sessbench itself", description="Speed and memory benchmarks anyone can rerun.")
    bsub = p.add_subparsers(dest="bench_command", metavar="BENCH")
    q = bsub.add_parser("preprocess", help="prepare a generated raw YOOCHOOSE-format file and time it", description="Generate a raw file in the YOOCHOOSE format (default: the real 33,003,944 rows), prepare it as yoochoose64 would, print rows/s, wall seconds and peak memory.")
    q.add_argument("--rows", type=int, default=33_003_944)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--workdir", type=Path, help="where the temporary raw file goes (default: a temp dir)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_bench_preprocess)
    q = bsub.add_parser("synthetic", help="the synthetic default's figures: oracle, POP, S-POP, first-order", description="Calibration figures of the synthetic dataset: oracle, POP, S-POP and a first-order transition predictor.")
    q.add_argument("--dataset", default="synthetic", help="synthetic[:k=v,...] (default: the built-in default)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_bench_synthetic)
    q = bsub.add_parser(
        "train", help="training and evaluation speed of a model against the floor of its dense work",
        description="Train and evaluate N batches of a model on generated data of a given shape (default: "
        "YOOCHOOSE 1/64, 369,859 training prefixes, 37,483 items) and print sequences/s, peak memory and the "
        "floors (item-table product, its backward and optimizer step; scoring product and ranking) measured "
        "in the same process with the same shapes and threads; torch models also get a blocked training floor "
        "(the same work with the item-table products in cache-sized blocks, sessbench.blocked_products).",
    )
    q.add_argument("--model", required=True, help="a registered model, e.g. srgnn")
    q.add_argument("--shape", default="yoochoose64", help="yoochoose64 (default) or tiny")
    q.add_argument("--n-items", type=int, help="override the shape's item count")
    q.add_argument("--n-prefixes", type=int, help="override the shape's training prefix count")
    q.add_argument("--batches", type=int, default=50, help="timed training and evaluation batches (default 50)")
    q.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    q.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    q.add_argument("--eval-batch-size", type=int, help="prefixes per evaluation batch (default: the model's)")
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a hyperparameter of the model (repeatable)")
    q.add_argument(
        "--params-of", metavar="DATASET",
        help="take the model's hyperparameters for this dataset from --config-dir's models/<model>.yaml "
        "(default: the shape's dataset, yoochoose64 for --shape yoochoose64; 'none': the registered "
        "defaults only); --set overrides them",
    )
    q.add_argument("--config-dir", type=Path, help="folder with models/<name>.yaml (default: configs/)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--profile", action="store_true", help="also profile the training steps (torch.profiler) and print the top operators")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_bench_train)
    p.set_defaults(func=lambda args, parser=p: _help(parser))
    _global_options_everywhere(parser)
    return parser


def _global_options_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept --quiet and --debug after the command too (`sessbench run ... --quiet`), not only
    before it; given in either place they mean the same."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and debug logs")
                sub.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                                 help="no progress bars, warnings only")
                _global_options_everywhere(sub)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


# ---------------------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    from sessbench import api
    from sessbench.report.tables import text_table

    if args.force_prepare:
        print("sessbench: --force-prepare is now spelled --force (as in the data commands); it still works", file=sys.stderr)
    from sessbench.config import MAX_SEED

    grid = api.prepare_grid(
        args.models, args.datasets,
        _int_list(args.seeds, "--seeds", "0,1,2", minimum=0, maximum=MAX_SEED) if args.seeds is not None else None,
        args.protocol, config=args.config, config_dir=args.config_dir, set=args.set,
        dataset_params=_dataset_params(args.dataset_param) or None, validation_fraction=args.validation_fraction,
        device=args.device, time_budget_s=args.time_budget_s, eval_batch_size=args.eval_batch_size,
        save_recs=args.save_recs, recs_cap=args.recs_cap, refit=not args.no_refit, runs_dir=args.runs_dir,
        data_dir=args.data_dir, cache_dir=args.cache_dir, resume=args.resume, force=args.force or args.force_prepare,
        executor=args.executor, jobs=args.jobs, threads=args.threads, timeout_s=args.timeout_s,
        scheduler=args.scheduler, check_memory=not args.no_memory_check, checkpoint_dir=args.checkpoint_dir,
        progress=_progress_factory(not args.quiet), invocation=shlex.join(["sessbench", *args.argv]),
        check_folders=not args.plan,
    )
    plan, runs_dir = grid.plan, grid.runner.runs_dir
    if args.models is None and args.config is None:
        from sessbench.config import DEFAULT_MODELS

        print(f"sessbench: no --models given: running '{DEFAULT_MODELS}' (the paper's Table 2 models and the simple "
              "models); --models all adds the five SR-GNN variants", file=sys.stderr)
    for key, request in {s.dataset.identity_key: s.dataset for s in plan}.items():
        print(f"sessbench: {request.key}: {request.source.describe() if request.source else key}", file=sys.stderr)
    if args.plan:
        from sessbench.estimate import format_plan

        rows = grid.estimates()
        if len(rows) < len(plan):
            print(f"sessbench: {len(plan) - len(rows)} of {len(plan)} runs are finished (--resume skips them)", file=sys.stderr)
        print(format_plan(rows, jobs=grid.jobs or 1), end="")
        return 0
    print(f"sessbench: {len(plan)} runs ({', '.join(grid.models)} on {', '.join(r.key for r in grid.datasets)}, "
          f"seeds {grid.seeds}, protocol {grid.protocol}) -> {runs_dir}/; {grid.jobs or 1} at a time, {grid.threads} "
          f"torch thread(s) each", file=sys.stderr)

    done = [0]

    def report(rec: dict[str, Any]) -> None:
        done[0] += 1
        if rec["status"] == "ok":
            m = rec["metrics"]
            msg = f"P@20 {100 * m['P@20']:.2f}  MRR@20 {100 * m['MRR@20']:.2f}  fit {rec['timing']['fit_s']:.1f}s"
        else:
            reason = rec["error"].get("reason", "exception")
            msg = f"FAILED ({reason}): {rec['error']['type']}: {rec['error']['message']}"
        print(f"  [{done[0]}/{len(plan)}] {rec['model']:<14} {rec['dataset']:<18} seed {rec['seed']}: {msg}", file=sys.stderr)

    records = grid.execute(on_record=report)
    print()
    rows, cols = summary_table(records)
    print(text_table(rows, cols), end="")
    stopped = sum(int(r.get("stopped early", 0)) for r in rows)
    if stopped:
        print(f"\n{stopped} run(s) were stopped early by the time budget ('stopped early'): their models trained for "
              "less than asked, so their numbers understate them.", file=sys.stderr)
    failed = sum(r["status"] != "ok" for r in records)
    if failed:
        print(f"\n{failed} run(s) failed; their records in {runs_dir}/ hold the tracebacks.", file=sys.stderr)
    return 1 if failed else 0


def summary_table(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The end-of-run summary: per dataset and protocol, best P@20 first; columns that hold nothing
    for these runs (the oracle's share on real data, failures when none failed) are left out.
    Values are percent, as everywhere sessbench prints metrics."""
    from sessbench.report.tables import comparison_rows

    rows = comparison_rows(records)

    def p20(row: dict[str, Any]) -> float:
        try:
            return float(str(row["P@20"]).split()[0])
        except ValueError:
            return float("-inf")

    rows.sort(key=lambda r: (r["dataset"], r["protocol"] != "validated", r["protocol"], -p20(r)))
    cols = ["dataset", "model", "protocol", "seeds", "P@20", "MRR@20", "share of oracle P@20", "normalized gain",
            "fit s", "failed", "stopped early"]
    empty = {"-", "", "0", 0, None}
    keep = [c for c in cols if c in ("dataset", "model", "P@20", "MRR@20") or any(r.get(c) not in empty for r in rows)]
    if len({r["protocol"] for r in rows}) > 1 and "protocol" not in keep:
        keep.insert(2, "protocol")
    return rows, keep


def cmd_recs_export(args: argparse.Namespace) -> int:
    from sessbench.recs import export_lists, find_run_lists, load_lists

    record, path = find_run_lists(args.run, args.runs_dir)
    lists = load_lists(path)
    out = export_lists(lists, args.out)
    truncated = int(lists.truncated.sum())
    print(f"{out}: {len(lists):,} lists (K={lists.k}, up to {lists.cap} items with ties) of run {record['run_id']}")
    if truncated:
        print(f"  {truncated:,} lists were truncated at {lists.cap} items (more items tied at the K-th score)", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from sessbench.recs import evaluate_lists, format_evaluation, read_lists

    ks = None if args.ks is None else _int_list(args.ks, "--ks", "5,10,20", minimum=1)
    if not args.recs.is_file():
        raise SessbenchError(f"--recs {args.recs} does not exist: pass a list file (CSV, .parquet or .recs.npz)")
    split = _load(args).split
    lists = read_lists(args.recs, np.dtype(np.int64) if args.ids == "exported" else split.item_ids.dtype)
    ev = evaluate_lists(lists, split, ks, ids=args.ids, only_listed=args.only_listed)
    if args.json:
        print(json.dumps({"file": str(args.recs), "dataset": args.dataset, **ev.to_dict()}, indent=2))
    else:
        print(format_evaluation(ev, str(args.recs)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sessbench.report import write_report

    if not args.runs_dir.is_dir():
        raise SessbenchError(f"runs directory {args.runs_dir} does not exist: run 'sessbench run' first or pass --runs-dir")
    if args.out.exists() and not args.out.is_dir():
        raise SessbenchError(f"--out {args.out} is a file: pass a folder for the report")
    if args.resamples < 1:
        raise SessbenchError(f"--resamples must be a positive number of resamples, got {args.resamples}")
    if not 0 < args.alpha < 1:
        raise SessbenchError(f"--alpha must be in (0, 1), got {args.alpha}")
    report_args = ["--runs-dir", str(args.runs_dir), "--out", str(args.out)]
    for flag, value, default in (("--reference", args.reference, "srgnn"), ("--resamples", args.resamples, 10_000), ("--alpha", args.alpha, 0.05)):
        if value != default:
            report_args += [flag, str(value)]
    command = shlex.join(["sessbench", "report", *report_args])
    written = write_report(args.runs_dir, args.out, reference=args.reference, resamples=args.resamples, alpha=args.alpha, command=command)
    print(f"{len(written)} files written to {args.out}/ (tables/, figures/); open:")
    for path in written:
        if path.name in ("README.md", "index.html"):
            print(f"  {path}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from sessbench.publish import publish_runs

    summary = publish_runs(args.runs_dir, args.to, args.data_dir, args.cache_dir)
    for line in summary.lines(args.to):
        print(line)
    return 1 if summary.refused else 0


def cmd_models(args: argparse.Namespace) -> int:
    from sessbench.models import load_plugins, model_groups, registered_models

    errors = load_plugins()
    models = registered_models()
    if args.json:
        print(json.dumps({
            "models": {n: {"groups": list(s.groups), "description": s.description, "defaults": s.defaults, "source": s.source} for n, s in models.items()},
            "groups": model_groups(),
            "plugin_errors": errors,
        }, indent=2, default=str))
        return 0
    width = max((len(n) for n in models), default=5)
    print("Models:")
    for name, spec in models.items():
        print(f"  {name:<{width}}  {spec.description}  [{', '.join(spec.groups)}]")
    print("\nGroups:")
    for group, names in sorted(model_groups().items()):
        print(f"  {group:<{width}}  {', '.join(names)}")
    for name, err in errors.items():
        print(f"\nplugin '{name}' failed to import: {err}", file=sys.stderr)
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
    from sessbench.data.registry import DATASETS

    for d in DATASETS.values():
        raw = f"raw file {d.raw_file} ({d.url})" if d.raw_file else ""
        print(f"  {d.name:<12} {d.description}{'; ' + raw if raw else ''}")
    return 0


def _load(args: argparse.Namespace, force: bool = False):
    from sessbench.data.cache import default_cache_dir
    from sessbench.data.registry import load_dataset, parse_dataset
    from sessbench.storage import check_folder

    request = parse_dataset(args.dataset, _dataset_params(args.dataset_param) or None)
    # a read-only cache still serves (a split it cannot store is prepared again next time); a file does not
    check_folder(default_cache_dir(args.cache_dir), "--cache-dir", writable=False)
    return load_dataset(
        request, args.data_dir, args.cache_dir, force=force or getattr(args, "force", False), logger=log,
        progress=_progress_factory(not args.quiet),
    )


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from sessbench.data.registry import dataset_stats

    loaded = _load(args)
    s = dataset_stats(loaded.split)
    print(f"{loaded.request.key}: {s['train_sessions']:,} training sessions ({s['train_sequences']:,} prefixes), "
          f"{s['test_sessions']:,} test sessions ({s['test_sequences']:,} prefixes), {s['items']:,} items")
    return 0


def cmd_data_stats(args: argparse.Namespace) -> int:
    import time

    from sessbench.data.registry import compare_table1, dataset_stats, size_warning
    from sessbench.host_memory import PeakMemory

    with PeakMemory() as mem:
        t0 = time.perf_counter()
        loaded = _load(args)
        load_s = time.perf_counter() - t0
    ours = dataset_stats(loaded.split)
    definition = loaded.request.definition
    source = loaded.request.source
    table = compare_table1(definition, ours)
    warning = size_warning(definition, ours, None if source is None else source.kind)
    loading = {"seconds": round(load_s, 2), "peak_memory_mb": round(mem.peak_bytes / 2**20, 1),
               "from_cache": getattr(loaded, "from_cache", None)}
    if args.json:
        print(json.dumps({
            "dataset": loaded.request.key, "source": None if source is None else source.to_record(),
            "ours": ours, "paper": None if definition.paper is None else {k: r["paper"] for k, r in ((r["key"], r) for r in table)},
            "table1": table, "warning": warning, "loading": loading,
        }, indent=2))
        return 0
    from sessbench.report.tables import text_table

    fmt = {"average_length": lambda v: f"{v:.2f}"}
    rows = []
    for r in table:
        show = fmt.get(r["key"], lambda v: f"{int(v):,}")
        rows.append({
            "statistic": r["statistic"], "sessbench": show(r["ours"]),
            "paper (Table 1)": "-" if r["paper"] is None else show(r["paper"]),
            "equal": {True: "yes", False: "no", None: "-"}[r["equal"]], "why not": r["note"],
        })
    for key, label in (("items_in_training_sessions", "items in training sessions"), ("average_session_length", "clicks per session"),
                       ("train_sessions", "training sessions"), ("test_sessions", "test sessions")):
        value = ours[key]
        rows.append({"statistic": label, "sessbench": f"{value:.2f}" if isinstance(value, float) else f"{value:,}",
                     "paper (Table 1)": "-", "equal": "-", "why not": ""})
    if not any(r["why not"] for r in rows):
        for r in rows:
            del r["why not"]
    print(f"{loaded.request.key} ({definition.label}), {source.describe() if source else ''}")
    print(text_table(rows), end="")
    print(f"loaded in {load_s:.2f} s, peak memory {mem.peak_bytes / 2**20:,.0f} MB")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_data_export(args: argparse.Namespace) -> int:
    from sessbench.data.export import export_split
    from sessbench.data.ready_split import GIVEN_VALIDATION, given_validation
    from sessbench.data.registry import export_name

    loaded = _load(args)
    split = loaded.split
    if args.format in ("recbole", "session-rec") and args.validation_fraction > 0:
        if split.meta.get(GIVEN_VALIDATION):  # a ready-made split brings its own validation part
            split = given_validation(split)
            log.info("writing the split's own validation part (%d sessions), not a --validation-fraction carve",
                     split.valid.n_sessions if split.valid is not None else 0)
        else:
            split = split.with_validation(args.validation_fraction)
    for path in export_split(split, args.format, args.out, export_name(loaded.request)):
        print(path)
    return 0


def cmd_data_import_official(args: argparse.Namespace) -> int:
    from sessbench.data.cache import default_cache_dir
    from sessbench.data.official_import import check_name, import_official, save_imported
    from sessbench.data.registry import dataset_stats

    if not args.dir.is_dir():
        raise SessbenchError(f"{args.dir} is not a folder: pass the folder holding the official train.txt and test.txt")
    name = check_name(args.name or args.dir.resolve().name)
    if args.n_items is not None and args.n_items < 1:
        raise SessbenchError(f"--n-items must be a positive number of items, got {args.n_items}")
    split = import_official(args.dir, name, args.n_items)
    target = save_imported(split, args.dir, default_cache_dir(args.cache_dir))
    s = dataset_stats(split)
    print(f"official:{name}: {s['train_sessions']:,} training sessions ({s['train_sequences']:,} prefixes), "
          f"{s['test_sessions']:,} test sessions ({s['test_sequences']:,} prefixes), {s['items']:,} items -> {target}")
    print(f"run on it with: sessbench run --dataset official:{name}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from sessbench.audit import audit_split, format_audit
    from sessbench.models import get_model

    get_model(args.model)  # an unknown name fails before the data is prepared
    loaded = _load(args)
    report = audit_split(loaded.split, name=loaded.request.key, reference=args.model)
    print(json.dumps(report.to_dict(), indent=2, default=float) if args.json else format_audit(report))
    return 1 if report.failed else 0


def cmd_bench_preprocess(args: argparse.Namespace) -> int:
    from sessbench.bench.preprocess import format_report, run_preprocess_benchmark

    if args.rows < 1000:
        raise SessbenchError(f"--rows must be at least 1000 (the generated file needs a training and a test period), got {args.rows}")
    if args.workdir is not None and not args.workdir.is_dir():
        raise SessbenchError(f"--workdir {args.workdir} is not an existing folder")
    result = run_preprocess_benchmark(rows=args.rows, workdir=args.workdir, seed=args.seed)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


def cmd_bench_synthetic(args: argparse.Namespace) -> int:
    from sessbench.calibration import format_calibration, synthetic_calibration
    from sessbench.data.registry import parse_dataset
    from sessbench.data.synthetic import SyntheticConfig

    request = parse_dataset(args.dataset)
    if request.definition.kind != "synthetic":
        raise SessbenchError("sessbench bench synthetic takes a synthetic dataset, e.g. synthetic:n_items=2000")
    config = SyntheticConfig.from_string(",".join(f"{k}={v}" for k, v in request.params.items()))
    result = synthetic_calibration(config)
    print(json.dumps(result, indent=2, default=float) if args.json else format_calibration(result))
    return 0


def cmd_bench_train(args: argparse.Namespace) -> int:
    from sessbench.bench.train import format_train_report, run_train_benchmark
    from sessbench.config import parse_set_options

    for text in args.set:
        if "=" not in text or not text.partition("=")[0].strip():
            raise SessbenchError(f"--set '{text}': expected KEY=VALUE, e.g. --set hidden_size=64")
    cli_params = parse_set_options([f"{args.model}.{text}" for text in args.set]).get(args.model, {})
    params = bench_params(args.model, args.shape, args.params_of, args.config_dir, cli_params)
    for name in ("n_items", "n_prefixes", "eval_batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SessbenchError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    result = run_train_benchmark(
        args.model, args.shape, batches=args.batches, threads=args.threads, device=args.device,
        seed=args.seed, params=params, eval_batch_size=args.eval_batch_size,
        n_items=args.n_items, n_prefixes=args.n_prefixes, profile=args.profile,
    )
    print(json.dumps(result, indent=2) if args.json else format_train_report(result))
    return 0


def bench_params(
    model: str, shape: str, params_of: str | None, config_dir: Path | None, cli_params: dict[str, Any]
) -> dict[str, Any]:
    """The hyperparameters `bench train` uses: the config file's layer for a dataset, then --set.

    By default the layer of the dataset the shape imitates (yoochoose64), so the benchmark times
    the model as `sessbench run` would train it there; only the values that differ from the
    registered defaults are passed on (the benchmark records them).
    """
    from sessbench.config import ParamResolver, default_config_dir
    from sessbench.data.registry import DATASETS
    from sessbench.models import get_model

    dataset = params_of if params_of is not None else (shape if shape in DATASETS else "none")
    if dataset == "none":
        return dict(cli_params)
    if dataset not in DATASETS:
        raise SessbenchError(
            f"--params-of '{dataset}': unknown dataset; choose one of {', '.join(DATASETS)} or 'none'."
        )
    spec = get_model(model)
    resolver = ParamResolver(config_dir=config_dir or default_config_dir(), cli_params={model: cli_params})
    resolved = resolver.resolve(spec, dataset)
    return {k: v for k, v in resolved.items() if k in cli_params or spec.defaults.get(k) != v}


# ---------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # what the user typed, recorded with every run (sys.argv is another program's under pytest)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else (logging.WARNING if args.quiet else logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except SessbenchError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"sessbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        from sessbench.storage import describe_os_error, is_environment_error

        if not is_environment_error(exc):
            raise  # not the machine's state: a bug, with its traceback
        if args.debug:
            traceback.print_exc()
        after = " Finished runs are kept: once fixed, rerun with --resume." if args.command == "run" else ""
        print(f"sessbench: error: {describe_os_error(exc)}{after}", file=sys.stderr)
        return SessbenchError.exit_code
    except KeyboardInterrupt:
        print("sessbench: interrupted; finished runs are kept (rerun with --resume)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`sessbench data list | head`): nothing to report
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
