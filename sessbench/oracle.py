"""The oracle: the Bayes-optimal predictor of synthetic data, a pseudo-model outside the data layer.

The synthetic generator (`sessbench.data.synthetic`) knows the exact next-item distribution of
every prefix it draws; the oracle scores with it, so its P@K is the best any model can reach.
The planner adds it as the pseudo-model `oracle` on synthetic data; it is fed by the generator
that drew the split (`LoadedDataset.generator`), so the data package imports nothing from the
model layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sessbench.data.sessions import Examples, Prefixes, Split, TrainingData
from sessbench.data.synthetic import (
    SyntheticConfig,
    SyntheticGenerator,
    build_synthetic,
)
from sessbench.errors import SessbenchError
from sessbench.models import FitContext, SessionRecommender


class OracleRecommender(SessionRecommender):
    """The Bayes-optimal predictor of synthetic data: scores are the exact next-item probabilities.

    Not registered: the runner adds it as the pseudo-model ``oracle`` on synthetic data.
    """

    seed_dependent = False  # nothing random: one run stands for every seed

    name = "oracle"

    def __init__(self, generator: SyntheticGenerator) -> None:
        super().__init__()
        self.generator = generator

    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        """Nothing to learn: the oracle knows the generator."""

    def score(self, batch: Prefixes) -> torch.Tensor:
        return self.generator.predictive(batch)

    def expected_hit_rate(self, examples: Examples, k: int = 20, batch_size: int = 2048) -> float:
        """Mean predictive mass of the oracle's own top-k items: its expected P@k.

        Equals the measured P@k in expectation (ties at the cut-off carry equal mass, so the
        random tie-breaking of the evaluator does not change it).
        """
        return float(np.mean(self.top_k_mass(examples, k, batch_size))) if len(examples) else 0.0

    def top_k_mass(self, examples: Examples, k: int = 20, batch_size: int = 2048) -> np.ndarray:
        """float64 [n]: per-example predictive mass of the top-k items (for standard errors)."""
        out = np.empty(len(examples), dtype=np.float64)
        for batch in examples.iter_batches(batch_size):
            probs = self.score(batch)[:, 1:]
            out[batch.example_index] = torch.topk(probs, min(k, probs.shape[1]), dim=1).values.sum(1).numpy()
        return out


def oracle_for(loaded: Any) -> OracleRecommender:
    """The oracle of a loaded synthetic dataset (an error for data without a generator)."""
    generator = getattr(loaded, "generator", None)
    if generator is None:
        raise SessbenchError(
            f"the oracle exists for synthetic data only, not for '{loaded.request.key}': drop it from --models"
        )
    return OracleRecommender(generator)


def synthetic_with_oracle(config: SyntheticConfig | None = None) -> tuple[Split, OracleRecommender]:
    """A synthetic split and its oracle (tests, calibration)."""
    split, generator = build_synthetic(config)
    return split, OracleRecommender(generator)
