"""Calibration of the synthetic default: how far simple predictors get towards the oracle.

The synthetic dataset is only a useful benchmark if the history of a session matters: a model
that looks only at the last click must stay well below the oracle, POP must be far from it, and
S-POP must profit from revisits. `synthetic_calibration` measures exactly that on a generated
split with POP, S-POP, a first-order transition predictor (the registered `markov`, with its
popularity back-off) and the oracle, and reports each one's share of the oracle's P@20 and its
normalized gain (P@20 - POP) / (oracle - POP). Every predictor is a registered model, taken
through the registry.

The figures come from the validation carve (`Split.with_validation(VALIDATION_FRACTION)`: the
predictors are fitted on the training sessions before it and scored on its prefixes), never from
the test split: the defaults are tuned on these figures, so computing them on test would tune
the dataset to its own test set. The oracle needs no fit, and its predictive is exact on any
prefix the generator drew, validation ones included.
"""

from __future__ import annotations

import math
from typing import Any

from sessbench.data.sessions import TrainingData
from sessbench.data.synthetic import SyntheticConfig, revisit_rate
from sessbench.evaluation import evaluate_model
from sessbench.models import FitContext, SessionRecommender

#: share of training sessions carved for validation, the figures' evaluation set (the runner's default)
VALIDATION_FRACTION = 0.1


def _fitted(model: SessionRecommender, data: TrainingData) -> SessionRecommender:
    model.fit(data, FitContext())
    return model


def synthetic_calibration(config: SyntheticConfig | None = None) -> dict[str, Any]:
    """Evaluate POP, S-POP, first-order and the oracle on a synthetic split's validation carve.

    Returns ``{"models": {name: {"P@20", "MRR@20", "share_of_oracle", "normalized_gain"}},
    "oracle_expected_P@20": ..., "oracle_expected_se": ..., "evaluated_on": "validation",
    "dataset": {...}}``. The test split is never scored.
    """
    from sessbench.models import get_model
    from sessbench.oracle import synthetic_with_oracle

    full, oracle = synthetic_with_oracle(config)
    split = full.with_validation(VALIDATION_FRACTION)
    assert split.valid is not None
    data = split.training_data()
    examples = split.valid.examples()
    models: dict[str, SessionRecommender] = {
        "oracle": oracle,
        "pop": _fitted(get_model("pop").create(), data),
        "s-pop": _fitted(get_model("s-pop").create(), data),
        # the last click's observed successors, popularity for the rest: a first-order predictor
        "first-order": _fitted(get_model("markov").create(backoff="popularity", pruning=0), data),
    }
    raw = {
        name: evaluate_model(model, examples, n_items=split.n_items, ks=(20,)).metrics
        for name, model in models.items()
    }
    best, base = raw["oracle"]["P@20"], raw["pop"]["P@20"]
    table = {
        name: {
            "P@20": m["P@20"],
            "MRR@20": m["MRR@20"],
            "share_of_oracle": m["P@20"] / best if best > 0 else math.nan,
            "normalized_gain": (m["P@20"] - base) / (best - base) if best > base else math.nan,
        }
        for name, m in raw.items()
    }
    mass = oracle.top_k_mass(examples, 20)
    all_sessions = [full.train, full.test]
    clicks = sum(s.n_clicks for s in all_sessions)
    sessions = sum(s.n_sessions for s in all_sessions)
    return {
        "models": table,
        "oracle_expected_P@20": float(mass.mean()),
        "oracle_expected_se": float(math.sqrt(float((mass * (1 - mass)).sum())) / len(mass)),
        "evaluated_on": "validation",
        "validation_fraction": VALIDATION_FRACTION,
        "dataset": {
            "n_items": split.n_items,
            "train_sessions": split.train.n_sessions,
            "valid_sessions": split.valid.n_sessions,
            "test_sessions": full.test.n_sessions,
            "train_prefixes": len(split.train.examples()),
            "valid_prefixes": len(examples),
            "test_prefixes": len(full.test_examples()),
            "clicks": clicks,
            "avg_length": clicks / sessions if sessions else 0.0,
            "revisit_rate": revisit_rate(full.train),
            "generator": full.meta.get("generator", {}),
        },
    }


def format_calibration(result: dict[str, Any]) -> str:
    """A plain-text table of `synthetic_calibration`'s result."""
    d = result["dataset"]
    lines = [
        (
            f"synthetic: {d['n_items']} items, {d['train_sessions']} train / {d['valid_sessions']} validation / "
            f"{d['test_sessions']} test sessions, {d['train_prefixes']} train / {d['valid_prefixes']} validation / "
            f"{d['test_prefixes']} test prefixes, {d['clicks']} clicks, avg length {d['avg_length']:.2f}, "
            f"revisit rate {d['revisit_rate']:.1%}"
        ),
        (
            f"figures on the validation carve (the last {result['validation_fraction']:.0%} of training sessions; "
            "the predictors are fitted on the sessions before it); the test split is not scored"
        ),
        "",
        f"{'model':<12} {'P@20':>7} {'MRR@20':>7} {'share':>7} {'gain':>7}",
    ]
    for name, m in result["models"].items():
        lines.append(
            f"{name:<12} {100 * m['P@20']:7.2f} {100 * m['MRR@20']:7.2f} "
            f"{m['share_of_oracle']:7.3f} {m['normalized_gain']:7.3f}"
        )
    lines += [
        "",
        "share = P@20 / oracle P@20;  gain = (P@20 - POP) / (oracle - POP)",
        (
            f"oracle expected P@20 (predictive mass of its top 20): "
            f"{100 * result['oracle_expected_P@20']:.2f} +/- {100 * result['oracle_expected_se']:.2f}"
        ),
    ]
    return "\n".join(lines)
