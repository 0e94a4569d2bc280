"""Torch threads per run: each torch model's training and evaluation speed at 1 and 2 threads.

    python scripts/bench_threads.py [--batches 20] [--models srgnn,narm,stamp,gru4rec,fpmc] [--out results/bench/threads.json]

Each figure comes from `sessbench bench train --model M --threads T --batches N --json` at the
YOOCHOOSE 1/64 shape (one fresh process per measurement, the two thread counts back to back).
Run it on an idle machine: `sessbench run` gives each run cores/jobs threads and, on 2 cores,
runs 2 jobs of 1 thread (`sessbench.executors.choose_parallelism`); this shows what a run would
gain from a second thread instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

TORCH_MODELS = ("srgnn", "narm", "stamp", "gru4rec", "fpmc")


def measure(model: str, threads: int, batches: int) -> dict:
    cmd = [sys.executable, "-m", "sessbench.cli", "--quiet", "bench", "train", "--model", model,
           "--threads", str(threads), "--batches", str(batches), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20, help="timed batches per measurement (default 20)")
    parser.add_argument("--models", default=",".join(TORCH_MODELS), help="comma-separated torch models")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'model':<8} {'threads':>7} {'train seq/s':>12} {'eval seq/s':>11} {'train x':>8} {'eval x':>7}", flush=True)
    for model in args.models.split(","):
        one = measure(model, 1, args.batches)
        two = measure(model, 2, args.batches)
        for t, r in ((1, one), (2, two)):
            gain_t = r["train_seq_per_s"] / one["train_seq_per_s"]
            gain_e = r["eval_seq_per_s"] / one["eval_seq_per_s"]
            print(f"{model:<8} {t:>7} {r['train_seq_per_s']:>12,.0f} {r['eval_seq_per_s']:>11,.0f} {gain_t:>8.2f} {gain_e:>7.2f}",
                  flush=True)
            rows.append({"model": model, "threads": t, "train_seq_per_s": r["train_seq_per_s"],
                         "eval_seq_per_s": r["eval_seq_per_s"], "batches": args.batches})
        if args.out:  # after each model, so that a run cut short keeps what it measured
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"cores": os.cpu_count(), "rows": rows}, indent=2) + "\n")
    print(f"cores: {os.cpu_count()}; x: speed relative to 1 thread. Two 1-thread runs side by side do twice the work "
          "of one run, so a grid with at least as many runs left as cores finishes sooner with 1 thread per run "
          "wherever x < 2.")
    if args.out:
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
