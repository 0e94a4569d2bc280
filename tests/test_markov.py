"""Markov: first-order transition counts, the shared back-off policy, scoring, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.markov import MarkovChain
from baselines.popularity import Popularity
from sessbench.data.sessions import SessionSet, TrainingData
from sessbench.data.synthetic import SyntheticConfig, build_synthetic
from sessbench.errors import ConfigError
from sessbench.evaluation import evaluate_model
from sessbench.models import FitContext, get_model

# transitions: 1->2 (x2), 2->3, 1->3, 3->1, 4->4; item 5 only ends a session; item 6 never occurs
# popularity: 1:4, 2:2, 3:2, 4:2, 5:1, 6:0 (max 4, so the back-off is 0.5 * m * pop / 5)
TRAIN = SessionSet.from_lists([[1, 2, 3], [1, 2], [1, 3, 1], [4, 4, 5]])
DATA = TrainingData(TRAIN, None, n_items=6, dataset="toy")


def batch_of(prefixes: list[list[int]]):
    """A batch whose prefixes are exactly `prefixes` (a dummy target is appended to each)."""
    examples = SessionSet.from_lists([p + [1] for p in prefixes]).examples()
    counts = np.array([len(p) for p in prefixes])
    return examples.batch(np.cumsum(counts) - counts)


def fitted(**params) -> MarkovChain:
    model = MarkovChain(**params)
    model.fit(DATA, FitContext())
    return model


def test_counts_first_order_transitions_within_sessions() -> None:
    t = fitted().transitions.toarray()
    assert t[1, 2] == 2 and t[1, 3] == 1 and t[2, 3] == 1 and t[3, 1] == 1
    assert t[4, 4] == 1 and t[4, 5] == 1  # a repeated click is a transition to itself
    assert t[3, 4] == 0 and t[2, 1] == 0  # nothing across sessions, nothing backwards
    assert t[1].sum() == 3 and t.sum() == 7  # clicks minus sessions


def test_score_is_the_transition_count_and_the_rest_ties_at_0() -> None:
    scores = fitted().score(batch_of([[5, 1]]))[0]
    np.testing.assert_array_equal(scores[1:].numpy(), [0, 2, 1, 0, 0, 0])


def test_popularity_backoff_orders_only_the_items_without_a_transition() -> None:
    scores = fitted(backoff="popularity").score(batch_of([[5, 1]]))[0]
    pop = np.array([4, 2, 2, 2, 1, 0]) / 5.0
    # transitions keep their counts; the others get 0.5 * (smallest count, 1) * pop / (max pop + 1)
    np.testing.assert_allclose(scores[1:].numpy(), [0.5 * pop[0], 2, 1, 0.5 * pop[3], 0.5 * pop[4], 0])
    assert torch.argsort(scores[1:], descending=True, stable=True).add(1).tolist() == [2, 3, 1, 4, 5, 6]


def test_popularity_never_overtakes_a_transition() -> None:
    # last item 2: its only successor 3 beats the more popular 1
    scores = fitted(backoff="popularity").score(batch_of([[2]]))[0]
    assert int(scores[1:].argmax()) + 1 == 3
    assert scores[3] == 1 > scores[1] > scores[4] > 0


@pytest.mark.parametrize("last", [5, 6])  # 5 has no successor, 6 was never clicked
def test_unseen_last_item_falls_back_to_popularity(last: int) -> None:
    scores = fitted(backoff="popularity").score(batch_of([[1, last]]))[0]
    pop = torch.tensor([4, 2, 2, 2, 1, 0], dtype=torch.float64) / 5.0
    torch.testing.assert_close(scores[1:], 0.5 * pop)
    without = fitted().score(batch_of([[1, last]]))[0]
    assert torch.all(without[1:] == 0)


def test_scores_shape_dtype_and_padding_column() -> None:
    scores = fitted().score(batch_of([[1, 2, 3], [4], [6, 5]]))
    assert scores.shape == (3, 7) and scores.dtype == torch.float64
    assert torch.all(scores[:, 0] == -torch.inf)
    assert torch.all(torch.isfinite(scores[:, 1:]))


def test_bad_hyperparameters_are_config_errors() -> None:
    for bad in ("pop", None, 1):
        with pytest.raises(ConfigError):
            MarkovChain(backoff=bad)
    for bad in (-1, 1.5, "20", True):
        with pytest.raises(ConfigError, match="pruning"):
            MarkovChain(pruning=bad)


def test_pruning_keeps_the_strongest_transitions() -> None:
    # item 1 has transitions 1->2 (x2) and 1->3 (x1): pruning 1 keeps only 1->2
    t = fitted(pruning=1).transitions.toarray()
    assert t[1, 2] == 2 and t[1, 3] == 0
    assert t[4, 4] == 1 and t[4, 5] == 0  # a tie (1 each) keeps the lower item index
    # session-rec's MarkovModel: pruned, no back-off -> the pruned successor scores 0 like the rest
    scores = fitted(pruning=1).score(batch_of([[1]]))[0]
    assert scores[2] == 2 and torch.all(scores[3:] == 0) and scores[1] == 0


def test_registered_in_the_simple_group() -> None:
    spec = get_model("markov")
    assert "simple" in spec.groups and spec.defaults == {"backoff": "none", "pruning": 0}


def test_beats_pop_on_synthetic() -> None:
    split, _ = build_synthetic(SyntheticConfig(n_items=200, n_sessions=3000))
    data, examples = split.training_data(), split.test_examples()

    def p20(model) -> float:
        model.fit(data, FitContext())
        return evaluate_model(model, examples, n_items=split.n_items).metrics["P@20"]

    assert p20(MarkovChain()) > p20(Popularity()) + 0.05
