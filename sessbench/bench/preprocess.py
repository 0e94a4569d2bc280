"""The preprocessing benchmark: read + SR-GNN-prepare a YOOCHOOSE-sized raw file.

The real `yoochoose-clicks.dat` (33,003,944 rows) cannot be shipped, so a synthetic file of the
same format and shape is generated first (not timed). It is then prepared in a fresh child
process, so that the reported peak memory (the child's ru_maxrss) is that of reading and
preparing alone, not of whatever the calling process already holds. The child does what the
`yoochoose64` dataset does: read, prepare the full training list, cut the last 1/64.

Target on a 2-core machine: under 60 s and under 4 GB for read + prepare (the official script
would take about 5 minutes and 10 GB at this size).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from sessbench.bench.synthetic_raw import generate_yoochoose_raw

FULL_ROWS = 33_003_944
TARGET_WALL_S = 60.0
TARGET_PEAK_MB = 4096.0
_RESULT_MARK = "SESSBENCH_RESULT "


def _peak_rss_mb() -> float:
    """This process's peak resident memory in MiB.

    Linux: VmHWM, the high-water mark of this address space. ru_maxrss is not used there because
    it survives fork + exec: a child would report the parent's size at fork time (here, the
    parent that just generated the file) instead of its own.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # not on Windows

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _prefix_count(lengths: Any) -> int:
    """Number of (prefix -> next item) examples of sessions with these lengths, without building them."""
    import numpy as np

    return int(np.maximum(np.asarray(lengths) - 1, 0).sum())


def _child(path: str) -> dict[str, Any]:
    """Read and prepare `path` as the yoochoose64 dataset would; runs in the fresh child process."""
    import numpy as np
    import pyarrow as pa

    from sessbench.data.readers import read_yoochoose_clicks
    from sessbench.data.srgnn_preprocess import DAY_SECONDS, cut_training_fraction, prepare_srgnn

    baseline_mb = _peak_rss_mb()
    start = time.perf_counter()
    clicks = read_yoochoose_clicks(path)
    read_done = time.perf_counter()
    full = prepare_srgnn(clicks, name="yoochoose", split_seconds=DAY_SECONDS)
    del clicks
    cut = cut_training_fraction(full, 64)
    done = time.perf_counter()
    return {
        "read_s": read_done - start,
        "preprocess_s": done - read_done,
        "wall_s": done - start,
        "peak_memory_mb": _peak_rss_mb(),
        "baseline_memory_mb": baseline_mb,
        "n_items": int(full.n_items),
        "n_sessions_train": int(full.train.n_sessions),
        "n_train_prefixes": _prefix_count(full.train.lengths),
        "n_train_prefixes_1_64": _prefix_count(cut.train.lengths),
        "n_sessions_test": int(full.test.n_sessions),
        "n_test_prefixes": _prefix_count(full.test.lengths),
        "threads": int(pa.cpu_count()),
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
    }


def _run_child(path: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "sessbench.bench.preprocess", "--child", str(path)]
    root = str(Path(__file__).resolve().parents[2])  # so the child imports this same sessbench
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith(_RESULT_MARK)]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip()[-2000:]
        raise RuntimeError(f"the benchmark child process failed (exit {done.returncode}):\n{tail}")
    return json.loads(lines[-1][len(_RESULT_MARK) :])


def run_preprocess_benchmark(rows: int = FULL_ROWS, workdir: str | Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Generate a `rows`-row YOOCHOOSE-format file (untimed), read + prepare it in a child process.

    Returns timings (s), the child's peak memory (MiB), the prepared split's sizes, the thread and
    CPU counts, and whether the 60 s / 4 GB target was met. The temporary file is removed.
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    folder = Path(tempfile.mkdtemp(prefix="sessbench-bench-", dir=workdir))
    try:
        path = folder / "yoochoose-clicks.dat"
        started = time.perf_counter()
        generate_yoochoose_raw(path, rows, seed=seed)
        generate_s = time.perf_counter() - started
        file_mb = path.stat().st_size / (1024 * 1024)
        child = _run_child(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result: dict[str, Any] = {"benchmark": "preprocess", "dataset_format": "yoochoose", "rows": rows, "seed": seed}
    result.update(child)
    result["rows_per_s"] = rows / child["wall_s"] if child["wall_s"] > 0 else float("inf")
    result["file_mb"] = file_mb
    result["generate_s"] = generate_s
    result["cpu_count"] = os.cpu_count()
    result["python"] = platform.python_version()
    result["meets_target"] = child["wall_s"] < TARGET_WALL_S and child["peak_memory_mb"] < TARGET_PEAK_MB
    return result


def format_report(result: dict[str, Any]) -> str:
    """A short human-readable summary of `run_preprocess_benchmark`'s result."""
    target = "met" if result.get("meets_target") else "NOT met"
    return "\n".join(
        [
            f"Preprocessing benchmark: {result['rows']:,} YOOCHOOSE-format rows "
            f"({result['file_mb']:.0f} MiB, synthetic, seed {result['seed']})",
            f"  read        {result['read_s']:7.2f} s",
            f"  prepare     {result['preprocess_s']:7.2f} s   (SR-GNN rules, full list + 1/64 cut)",
            f"  total       {result['wall_s']:7.2f} s   {result['rows_per_s']:,.0f} rows/s",
            f"  peak memory {result['peak_memory_mb']:7.0f} MiB "
            f"(child process; {result['baseline_memory_mb']:.0f} MiB after imports)",
            f"  threads     {result['threads']} pyarrow / {result['cpu_count']} CPUs",
            f"  result      {result['n_items']:,} items; {result['n_sessions_train']:,} training sessions, "
            f"{result['n_train_prefixes']:,} training prefixes ({result['n_train_prefixes_1_64']:,} in 1/64), "
            f"{result['n_test_prefixes']:,} test prefixes",
            f"  target      < {TARGET_WALL_S:.0f} s and < {TARGET_PEAK_MB / 1024:.0f} GiB: {target}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m sessbench.bench.preprocess [--rows N] [--json]` (the CLI's `bench preprocess`)."""
    parser = argparse.ArgumentParser(prog="sessbench bench preprocess", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=FULL_ROWS, help="rows of the synthetic file (default: the real file's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="where to write the temporary file (default: system temp)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(_RESULT_MARK + json.dumps(_child(args.child)), flush=True)
        return 0
    result = run_preprocess_benchmark(args.rows, workdir=args.workdir, seed=args.seed)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
