"""Grid search for the simple baselines on a dataset's validation split (test never touched).

The per-dataset values in configs/models/{markov,ar,sr,sknn,v-sknn,stan}.yaml for the real
datasets are session-rec's published tuned values; for datasets it never tuned (the built-in
synthetic dataset), this script chooses them, by validation P@20 (ties: MRR@20), exactly as
`sessbench run --protocol validated` carves validation from the end of the training sessions.

    python scripts/tune_simple.py                                 # synthetic, all six models
    python scripts/tune_simple.py --models stan --dataset yoochoose --data-dir ../shared/data/yoochoose-sample

Prints every setting's validation P@20 / MRR@20 and, per model, the best one as a YAML line.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

from sessbench.data.registry import load_dataset, parse_dataset
from sessbench.evaluation import evaluate_model
from sessbench.models import FitContext, get_model

#: the grids: session-rec's defaults and tuned values, and a step either side
GRIDS: dict[str, dict[str, list[Any]]] = {
    "markov": {"pruning": [0, 20]},  # backoff is one declared policy for every rule model, not tuned per model
    "ar": {"pruning": [0, 10, 20, 50]},
    "sr": {"steps": [2, 5, 8, 10, 20], "weighting": ["div", "quadratic", "same"], "pruning": [0, 20]},
    "sknn": {"k": [50, 100, 200, 500], "sample_size": [500, 1000, 10000], "similarity": ["cosine", "jaccard"]},
    "v-sknn": {
        "k": [50, 100, 200, 500], "sample_size": [500, 1000, 5000],
        "weighting": ["div", "quadratic"], "weighting_score": ["div", "quadratic"],
    },
    "stan": {
        "k": [100, 500, 1000], "sample_size": [1000, 5000],
        "lambda_spw": [0.5, 1.02, 2.05], "lambda_snh": [5.0, 20.0, None], "lambda_inh": [0.5, 2.05, 4.1],
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(GRIDS), help=f"comma list among {', '.join(GRIDS)}")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    args = parser.parse_args()

    split = load_dataset(parse_dataset(args.dataset), args.data_dir, args.cache_dir).split
    split = split.with_validation(args.validation_fraction)
    data = split.training_data()
    examples = data.valid_examples()
    print(f"{args.dataset}: {split.train.n_sessions:,} training sessions, {len(examples):,} validation prefixes")
    for name in args.models.split(","):
        grid = GRIDS[name]
        results = []
        t0 = time.perf_counter()
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values))
            model = get_model(name).create(**params)
            model.fit(data, FitContext(seed=0))
            metrics = evaluate_model(model, examples, n_items=split.n_items).metrics
            results.append((metrics["P@20"], metrics["MRR@20"], params))
            print(f"  {name:7s} {params}: P@20 {100 * metrics['P@20']:.2f}  MRR@20 {100 * metrics['MRR@20']:.2f}")
        p20, mrr20, best = max(results, key=lambda r: (r[0], r[1]))
        flow = ", ".join(f"{k}: {'null' if v is None else v}" for k, v in best.items())
        print(f"best {name} ({len(results)} settings, {time.perf_counter() - t0:.0f} s): "
              f"validation P@20 {100 * p20:.2f}, MRR@20 {100 * mrr20:.2f}\n  {args.dataset}: {{{flow}}}")


if __name__ == "__main__":
    main()
