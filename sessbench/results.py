"""The result store: one JSON record per run, written atomically, plus the run's rank counts.

A record is the public contract between runs and reports (documented in the README):

    schema_version, run_id, model, dataset, seed, protocol, status ("ok" | "failed"),
    error     (failed) {"type", "message", "traceback", "reason"}; reason "exception",
              "out_of_memory", "timeout", "worker_died" or "insufficient_memory"
    worker    {"host", "pid", "executor"}: where it ran; attempts (process-isolated runs)
    metrics   {"P@5": .., "MRR@20": .., "NDCG@20": .., "coverage@20": .., ...}  fractions in [0, 1]
    groups    {"short": {...}, "long": {...}}   same keys, prefix length <= 5 / > 5
    n_examples {"all", "short", "long"}
    timing    {"fit_s", "predict_s", "examples_per_s"}
    peak_memory_mb, epochs (per-epoch log of iterative models), paper_best (paper protocol),
    selection, refit, refit_params, refit_epochs (validated: what the carve chose, and the refit),
    resumed   {phase: epoch} when a killed fit resumed from its epoch checkpoint,
    source    {"kind", "digest", "files": [{"name", "size", "sha256"}], "params"}: the data, by content,
    split_checksum, code_state {"digest", "modules"}: what the numbers were computed from,
    config (resolved), environment (versions, device, git commit), dataset_info, error (failed),
    ranks_file (per-example rank counts, .npz), started_at, finished_at
    recs_file, recs  (with --save-recs K) the tie-complete top-K lists (.recs.npz, see
              sessbench.recs) and {"k", "cap", "rows", "entries", "truncated_rows"}

The JSON file is written last (temp file + fsync + rename), so its presence marks a finished
run: a grid killed at any moment loses nothing that had finished and leaves no partial record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from sessbench.atomic import atomic_write_json

SCHEMA_VERSION = 1
RECORD_SUFFIX = ".json"
RANKS_SUFFIX = ".ranks.npz"
RECS_SUFFIX = ".recs.npz"


def record_path(runs_dir: Path, run_id: str) -> Path:
    return Path(runs_dir) / f"{run_id}{RECORD_SUFFIX}"


def ranks_path(runs_dir: Path, run_id: str) -> Path:
    return Path(runs_dir) / f"{run_id}{RANKS_SUFFIX}"


def recs_path(runs_dir: Path, run_id: str) -> Path:
    return Path(runs_dir) / f"{run_id}{RECS_SUFFIX}"


def write_record(runs_dir: Path, record: dict[str, Any]) -> Path:
    path = record_path(runs_dir, record["run_id"])
    atomic_write_json(path, {"schema_version": SCHEMA_VERSION, **record})
    return path


def read_record(path: Path) -> dict[str, Any] | None:
    """A record, or None when the file is not a readable sessbench record."""
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or "run_id" not in rec or "status" not in rec:
        return None
    return rec


def iter_records(runs_dir: Path) -> Iterator[dict[str, Any]]:
    """Every record under `runs_dir` (recursively), in a stable order; unreadable ones skipped
    (`scan_records` says which and why)."""
    yield from scan_records(runs_dir)[0]


#: what to do about a record file that cannot be used
RECORD_FIX = ("rerun the run with `sessbench run ... --resume` (it reruns runs without a usable record), "
              "or delete the file")


def record_problem(record: Any) -> str | None:
    """Why a parsed JSON value is not a usable record (wrong or missing fields), or None."""
    if not isinstance(record, dict):
        return f"it holds a JSON {type(record).__name__}, not a record"
    for key, kinds in (("run_id", str), ("model", str), ("dataset", str), ("status", str), ("protocol", str)):
        if key in record and not isinstance(record[key], kinds) or key in ("run_id", "status") and key not in record:
            return f"field '{key}' is {type(record.get(key)).__name__}, not a string"
    if "seed" in record and (isinstance(record["seed"], bool) or not isinstance(record["seed"], int)):
        return f"field 'seed' is {record['seed']!r}, not an integer"
    for key in ("config", "environment", "timing", "groups", "dataset_info", "source", "code_state", "paper_best"):
        if key in record and record[key] is not None and not isinstance(record[key], dict):
            return f"field '{key}' is a {type(record[key]).__name__}, not a mapping"
    if record.get("status") == "ok":
        metrics = record.get("metrics")
        if not isinstance(metrics, dict):
            return "an ok record without a 'metrics' mapping"
        bad = [k for k, v in metrics.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
        if bad:
            return f"metric '{bad[0]}' is {metrics[bad[0]]!r}, not a number"
    return None


def scan_records(runs_dir: Path) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
    """Every usable record under `runs_dir` (recursively, stable order), and every record file
    that could not be used, with why (truncated, not JSON, wrong field types)."""
    root = Path(runs_dir)
    records: list[dict[str, Any]] = []
    problems: list[tuple[Path, str]] = []
    if not root.is_dir():
        return records, problems
    for path in sorted(root.rglob(f"*{RECORD_SUFFIX}")):
        if path.name.startswith(".") or path.name.endswith(".audit.json"):
            continue
        try:
            rec = json.loads(path.read_text())
        except OSError as exc:
            problems.append((path, f"cannot be read ({exc.strerror or exc})"))
            continue
        except ValueError as exc:
            problems.append((path, f"is not valid JSON (truncated or damaged: {str(exc)[:80]})"))
            continue
        why = record_problem(rec)
        if why is not None:
            problems.append((path, why))
            continue
        rec.setdefault("_path", str(path))
        records.append(rec)
    return records, problems


#: fields that differ between two executions of the same run (when, where, how long)
VOLATILE_KEYS = frozenset({
    "timing", "peak_memory_mb", "memory_at_start_mb", "peak_gpu_memory_mb", "started_at", "finished_at",
    "command", "worker", "attempts", "_path", "resumed",
})


def _drop_seconds(value: Any) -> Any:
    """Per-epoch logs and fit summaries without their wall-clock entries (keys ending in `_s`, `seconds`)."""
    if isinstance(value, dict):
        return {k: _drop_seconds(v) for k, v in value.items() if not (k.endswith("_s") or k == "seconds")}
    if isinstance(value, list):
        return [_drop_seconds(v) for v in value]
    return value


def comparable_record(record: dict[str, Any]) -> dict[str, Any]:
    """The record without what legitimately varies between identical runs (timing, host, pid).

    Two executions of one run on the same machine (say an uninterrupted grid and a killed one
    resumed) give equal comparable records; tests and users check resumes with it.
    """
    out = {k: v for k, v in record.items() if k not in VOLATILE_KEYS}
    if isinstance(out.get("environment"), dict):  # versions stay; how many threads ran it does not
        out["environment"] = {k: v for k, v in out["environment"].items() if k not in ("torch_threads",)}
    for key in ("epochs", "refit_epochs", "fit_summary"):
        if key in out:
            out[key] = _drop_seconds(out[key])
    if isinstance(out.get("fit_summary"), dict):  # how the fit got there (resumed or not) is not what it computed
        out["fit_summary"] = {k: v for k, v in out["fit_summary"].items() if k != "resumed_after_epoch"}
    return out


def is_clean(record: dict[str, Any]) -> bool:
    """Made by a clean, committed tree: its commit holds exactly the code that ran."""
    env = record.get("environment")
    git = env.get("git") if isinstance(env, dict) else None
    return isinstance(git, dict) and bool(git.get("commit")) and git.get("dirty") is False


def is_finished(runs_dir: Path, run_id: str) -> bool:
    """True when an `ok` record exists for this run (what `--resume` skips)."""
    rec = read_record(record_path(runs_dir, run_id))
    return rec is not None and rec.get("status") == "ok"


# ---------------------------------------------------------------------------- test examples of a split
#: per dataset source, what the report needs to know about each test example beyond its ranks
SPLITS_FOLDER = "splits"


def split_table_id(dataset_key: str, source_digest: str) -> str:
    """The name of a split's example table: the dataset key and the source digest a record names
    determine its split, so records find their table from their own fields."""
    import hashlib

    return hashlib.sha256(f"{dataset_key}@{source_digest}".encode()).hexdigest()[:16]


def split_examples_path(runs_dir: Path, table_id: str) -> Path:
    return Path(runs_dir) / SPLITS_FOLDER / f"{table_id}.npz"


def split_audit_path(runs_dir: Path, table_id: str) -> Path:
    """Where the store keeps a split's audit (`sessbench audit --json`), beside its example table."""
    return Path(runs_dir) / SPLITS_FOLDER / f"{table_id}.audit.json"


def test_example_table(split: Any) -> dict[str, np.ndarray]:
    """Per test example (in evaluation order): its test session, whether its target repeats an
    item of its prefix, its prefix length and its target.

    Stored once per split beside the records, so the report can resample whole sessions (the
    prefixes of one session share their input) and split metrics into repeat and explore
    targets, from the store alone. Vectorized: the first position of every item within its
    session comes from one sort of (session, item, position).
    """
    test = split.test
    examples = test.examples()
    n = test.n_clicks
    session_of = test.session_index_of_clicks()
    position = np.arange(n, dtype=np.int64) - test.offsets[session_of]
    order = np.lexsort((position, test.items, session_of))
    starts = np.ones(n, dtype=bool)
    starts[1:] = (session_of[order][1:] != session_of[order][:-1]) | (test.items[order][1:] != test.items[order][:-1])
    group_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    first_position = np.empty(n, dtype=np.int64)
    first_position[order] = position[order][group_start]
    target_at = test.offsets[examples.session_index] + examples.cut
    return {
        "session": examples.session_index.astype(np.int32),
        "repeat": first_position[target_at] < examples.cut,
        "prefix_length": examples.cut.astype(np.int32),
        "target": test.items[target_at].astype(np.int32),
    }


def save_split_examples(runs_dir: Path, split: Any, table_id: str) -> Path:
    """Write the split's test example table once (atomically); an existing file is kept."""
    from sessbench.atomic import atomic_file

    path = split_examples_path(runs_dir, table_id)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as fh:
        np.savez_compressed(fh, **test_example_table(split))
    return path


def load_split_examples(path: Path) -> dict[str, np.ndarray] | None:
    """The table `save_split_examples` wrote, or None when it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            out = {k: npz[k] for k in ("session", "repeat", "prefix_length", "target")}
    except (OSError, ValueError, KeyError):
        return None
    n = len(out["session"])
    return out if all(len(v) == n for v in out.values()) else None
