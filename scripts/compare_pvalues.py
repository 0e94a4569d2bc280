"""Per-prefix against per-session significance on a store: how much the unit changes the p-values.

Prefixes of one test session share their input, so a test that treats each prefix as independent
overstates the evidence. This prints, for every model against the reference on each dataset, the
MRR@20 difference with the p-value and 95% interval of the paired sign-flip test by prefix and by
session (the report's test), so the two can be compared:

    python scripts/compare_pvalues.py RUNS_DIR [--reference srgnn] [--resamples 10000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sessbench.report.stats import format_p, paired_randomization_test
from sessbench.report.store import ORACLE, Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--reference", default="srgnn")
    parser.add_argument("--resamples", type=int, default=10_000)
    args = parser.parse_args()
    store = Store.load(args.runs_dir)
    for dataset in store.datasets:
        ref = store.find(dataset, "validated", args.reference)
        ref_rr = None if ref is None else ref.mean_reciprocal_ranks(20)
        examples = None if ref is None else ref.examples()
        if ref_rr is None or examples is None:
            continue
        sessions = examples["session"]
        print(f"{dataset}: {len(ref_rr[0]):,} prefixes in {len(set(sessions.tolist())):,} sessions; "
              f"each model against {args.reference} (MRR@20 difference, points)")
        print(f"  {'model':<12} {'diff':>7}  {'p by prefix':>12} {'95% CI by prefix':>18}  {'p by session':>12} {'95% CI by session':>18}")
        for g in store.in_dataset(dataset, "validated"):
            other = g.mean_reciprocal_ranks(20)
            if g is ref or g.model == ORACLE or other is None or len(other[0]) != len(ref_rr[0]):
                continue
            a = paired_randomization_test(other[0], ref_rr[0], resamples=args.resamples, seed=0)
            b = paired_randomization_test(other[0], ref_rr[0], resamples=args.resamples, seed=0, clusters=sessions)
            ci = lambda r: f"[{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]"  # noqa: E731
            print(f"  {g.label:<12} {100 * a.mean_diff:+7.2f}  {format_p(a.p_value, args.resamples):>12} {ci(a):>18}  "
                  f"{format_p(b.p_value, args.resamples):>12} {ci(b):>18}")


if __name__ == "__main__":
    main()
