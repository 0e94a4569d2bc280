"""How POP's score depends on how popularity is counted, on an official split.

The SR-GNN paper does not say how its POP row counted popularity. This prints POP's P@20 and
MRR@20 on the official split's test prefixes for several countings over the training list, so the
report's reason for a POP difference can be checked:

    python scripts/pop_counting.py --data-dir ../shared/data/official-splits [--dataset yoochoose64]

Scores are the evaluator's exact tie-aware metrics (expected rank under random tie-breaking).
"""

from __future__ import annotations

import argparse

import numpy as np

from sessbench.data.registry import load_dataset, parse_dataset
from sessbench.evaluation import metrics_from_counts


def pop_metrics(counts: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """P@20 and MRR@20 (percent) of ranking every item by `counts`, for these targets."""
    scores = counts.astype(np.float64)
    ranked = np.sort(scores[1:])
    target = scores[targets]
    above = len(ranked) - np.searchsorted(ranked, target, side="right")
    tied = np.searchsorted(ranked, target, side="right") - np.searchsorted(ranked, target, side="left") - 1
    m = metrics_from_counts(above, tied, (20,))
    return 100 * m["P@20"], 100 * m["MRR@20"]


def countings(split) -> dict[str, np.ndarray]:
    n = split.n_items + 1
    train = split.train
    examples = train.examples()
    session = train.session_index_of_clicks()
    cut = train.offsets[-(train.n_sessions // 10) - 1]
    return {
        "clicks in the training sessions (sessbench's POP)": np.bincount(train.items, minlength=n),
        "prediction targets of the training prefixes": np.bincount(examples.targets, minlength=n),
        "training sessions holding the item": np.bincount(np.unique(session * n + train.items) % n, minlength=n),
        "clicks in the oldest 90% of training sessions": np.bincount(train.items[:cut], minlength=n),
        "clicks in the latest 10% of training sessions": np.bincount(train.items[cut:], minlength=n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder of the official splits (or one split)")
    parser.add_argument("--dataset", action="append", help="yoochoose64 and/or diginetica (default both)")
    args = parser.parse_args()
    for name in args.dataset or ["yoochoose64", "diginetica"]:
        split = load_dataset(parse_dataset(name), args.data_dir).split
        targets = split.test_examples().targets
        print(f"{name}: POP on {len(targets):,} test prefixes")
        for label, counts in countings(split).items():
            p20, mrr = pop_metrics(counts, targets)
            print(f"  {label:<52} P@20 {p20:6.2f}  MRR@20 {mrr:5.2f}")


if __name__ == "__main__":
    main()
