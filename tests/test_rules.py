"""AR and SR: the rule counts their definitions (session-rec's) give, pruning, scoring, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from baselines.popularity import Popularity
from baselines.rules import (
    AssociationRules,
    SequentialRules,
    association_rule_matrix,
    prune_rows,
    sequential_rule_matrix,
)
from sessbench.data.sessions import SessionSet, TrainingData
from sessbench.data.synthetic import SyntheticConfig, build_synthetic
from sessbench.errors import ConfigError
from sessbench.evaluation import evaluate_model
from sessbench.models import FitContext, get_model


def batch_of(prefixes: list[list[int]]):
    """A batch whose prefixes are exactly `prefixes` (a dummy target is appended to each)."""
    examples = SessionSet.from_lists([p + [1] for p in prefixes]).examples()
    counts = np.array([len(p) for p in prefixes])
    return examples.batch(np.cumsum(counts) - counts)  # each session's longest prefix comes first


#: session-rec's SequentialRules weightings, written out here so the reference is independent
SESSION_REC_WEIGHTS = {
    "same": lambda d: 1.0,
    "div": lambda d: 1.0 / d,
    "linear": lambda d: 1 - 0.1 * d if d <= 100 else 0,
    "log": lambda d: 1 / math.log10(d + 1.7),
    "quadratic": lambda d: 1 / (d * d),
}


def session_rec_sr(sessions: list[list[int]], n_items: int, steps: int, weighting: str) -> np.ndarray:
    """session-rec's SequentialRules.fit, click by click (tests only)."""
    rules = np.zeros((n_items + 1, n_items + 1))
    for s in sessions:
        for t, b in enumerate(s):
            for d in range(1, min(steps, t) + 1):
                rules[s[t - d], b] += SESSION_REC_WEIGHTS[weighting](d)
    return rules


def session_rec_ar(sessions: list[list[int]], n_items: int) -> np.ndarray:
    """session-rec's AssociationRules.fit, click by click (tests only)."""
    rules = np.zeros((n_items + 1, n_items + 1))
    for s in sessions:
        for t, b in enumerate(s):
            for a in s[:t]:
                rules[a, b] += 1
                rules[b, a] += 1
    return rules


def random_sessions(n_items: int, n_sessions: int, seed: int) -> SessionSet:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 15, size=n_sessions)
    items = rng.integers(1, n_items + 1, size=int(lengths.sum())).astype(np.int32)
    return SessionSet.from_lengths(items, lengths)


# ---------------------------------------------------------------------------- SR


def test_sr_weights_by_inverse_distance_and_stops_at_steps() -> None:
    # 1 -> 2 at distance 1, 1 -> 3 at distance 2, 1 -> 4 at distance 3
    train = SessionSet.from_lists([[1, 2, 3, 4]])
    rules = sequential_rule_matrix(train, 4, steps=2, weighting="div").toarray()
    assert rules[1, 2] == 1.0 and rules[1, 3] == 0.5
    assert rules[1, 4] == 0.0  # beyond steps
    assert rules[2, 1] == 0.0  # order matters
    assert rules[2, 3] == 1.0 and rules[2, 4] == 0.5 and rules[3, 4] == 1.0


def test_sr_never_pairs_clicks_of_different_sessions() -> None:
    train = SessionSet.from_lists([[1, 2], [3, 4]])
    rules = sequential_rule_matrix(train, 4, steps=10, weighting="div").toarray()
    assert rules[2, 3] == 0 and rules[1, 3] == 0 and rules.sum() == 2.0


@pytest.mark.parametrize(
    "steps, weighting", [(10, "div"), (3, "same"), (5, "linear"), (13, "linear"), (4, "log"), (2, "quadratic")]
)
def test_sr_matches_session_rec_click_by_click(steps: int, weighting: str) -> None:
    train = random_sessions(12, 60, seed=1)  # repeated items included
    expected = session_rec_sr(train.to_lists(), 12, steps, weighting)
    got = sequential_rule_matrix(train, 12, steps=steps, weighting=weighting).toarray()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_sr_counts_repeated_clicks_and_self_rules() -> None:
    train = SessionSet.from_lists([[1, 1, 2]])
    rules = sequential_rule_matrix(train, 2, steps=10, weighting="div").toarray()
    assert rules[1, 1] == 1.0  # the repeat is a rule 1 -> 1
    assert rules[1, 2] == 1.5  # from both clicks of 1: 1/1 + 1/2


# ---------------------------------------------------------------------------- AR


def test_ar_is_symmetric_and_counts_every_pair_of_clicks() -> None:
    train = SessionSet.from_lists([[1, 2, 3], [3, 1], [1, 2, 1]])
    rules = association_rule_matrix(train, 4).toarray()
    np.testing.assert_array_equal(rules, rules.T)
    assert rules[1, 3] == 2  # sessions 1 and 2, in either order
    assert rules[2, 3] == 1
    assert rules[1, 2] == 3  # once in session 1, twice in session 3 (1 is clicked twice)
    assert rules[1, 1] == 2  # session-rec adds the (1, 1) pair in both directions
    assert rules[4].sum() == 0  # never clicked


def test_ar_matches_session_rec_and_blocks_do_not_matter() -> None:
    train = random_sessions(15, 80, seed=2)
    expected = session_rec_ar(train.to_lists(), 15)
    one = association_rule_matrix(train, 15, max_block_terms=10**12)
    many = association_rule_matrix(train, 15, max_block_terms=1)  # one item per block
    np.testing.assert_array_equal(one.toarray(), expected)
    np.testing.assert_array_equal(many.toarray(), expected)
    pruned_one = association_rule_matrix(train, 15, pruning=3, max_block_terms=10**12)
    pruned_many = association_rule_matrix(train, 15, pruning=3, max_block_terms=1)
    np.testing.assert_array_equal(pruned_one.toarray(), pruned_many.toarray())


# ---------------------------------------------------------------------------- pruning, scoring


def test_pruning_keeps_the_strongest_rules_ties_to_the_lower_item() -> None:
    dense = np.array([[0, 0, 0, 0], [0, 1, 3, 1], [0, 2, 0, 0], [0, 0, 0, 0]], dtype=float)
    pruned = prune_rows(sp.csr_array(dense), 2).toarray()
    assert np.flatnonzero(pruned[1]).tolist() == [1, 2]  # 3 first, then 1 and 1 tie: item 1 wins
    assert pruned[2, 1] == 2
    full = prune_rows(sp.csr_array(dense), 0).toarray()
    np.testing.assert_array_equal(full, dense)


def test_models_prune_to_pruning_rules_per_item() -> None:
    train = random_sessions(30, 200, seed=3)
    data = TrainingData(train, None, 30, "toy")
    for cls in (AssociationRules, SequentialRules):
        model = cls(pruning=4)
        model.fit(data, FitContext())
        assert np.diff(model.rules.indptr).max() == 4
        unpruned = cls(pruning=0)
        unpruned.fit(data, FitContext())
        assert unpruned.rules.nnz > model.rules.nnz


@pytest.mark.parametrize("cls", [AssociationRules, SequentialRules])
def test_score_gathers_the_last_items_rows(cls) -> None:
    train = SessionSet.from_lists([[1, 2, 3], [2, 3, 4], [3, 1], [5, 5]])
    model = cls(pruning=0)
    model.fit(TrainingData(train, None, 6, "toy"), FitContext())
    batch = batch_of([[4, 1, 2], [3], [6, 6]])  # padded; item 6 never trained
    scores = model.score(batch)
    assert scores.shape == (3, 7) and scores.dtype == torch.float32
    assert torch.all(scores[:, 0] == -torch.inf)
    dense = model.rules.toarray()
    for row, last in enumerate([2, 3, 6]):
        np.testing.assert_allclose(scores[row, 1:].numpy(), dense[last, 1:], rtol=1e-6)
    assert torch.all(scores[2, 1:] == 0)  # no rules: every item ties


def test_sr_recommends_what_followed_the_last_item() -> None:
    train = SessionSet.from_lists([[1, 2, 3], [1, 2, 4], [1, 4], [3, 1]])
    model = SequentialRules()
    model.fit(TrainingData(train, None, 4, "toy"), FitContext())
    scores = model.score(batch_of([[3, 1]]))[0]
    # from 1: 2 twice at distance 1 (2.0), 4 at 1 and 2 (1.5), 3 at distance 2 (0.5)
    assert torch.argsort(scores[1:], descending=True)[:3].add(1).tolist() == [2, 4, 3]
    assert scores[1] == 0


def test_bad_hyperparameters_are_config_errors() -> None:
    for bad in ({"pruning": -1}, {"pruning": 2.5}, {"pruning": True}):
        with pytest.raises(ConfigError):
            AssociationRules(**bad)
        with pytest.raises(ConfigError):
            SequentialRules(**bad)
    for bad in ({"steps": 0}, {"steps": 1.5}, {"weighting": "cubic"}):
        with pytest.raises(ConfigError):
            SequentialRules(**bad)


def test_registered_in_the_simple_group_with_session_rec_defaults() -> None:
    assert "simple" in get_model("ar").groups and "simple" in get_model("sr").groups
    assert get_model("ar").defaults == {"pruning": 20, "backoff": "none"}
    assert get_model("sr").defaults == {"steps": 10, "weighting": "div", "pruning": 20, "backoff": "none"}


def test_beat_pop_on_synthetic() -> None:
    split, _ = build_synthetic(SyntheticConfig(n_items=200, n_sessions=3000))
    data, examples = split.training_data(), split.test_examples()

    def p20(model) -> float:
        model.fit(data, FitContext())
        return evaluate_model(model, examples, n_items=split.n_items).metrics["P@20"]

    pop = p20(Popularity())
    assert p20(AssociationRules()) > pop + 0.05
    assert p20(SequentialRules()) > pop + 0.05


def test_pruning_ties_ignore_rounding_noise() -> None:
    # 1 + 1/3 + 1 and 1/3 + 2 are equal, but not in float64: the lower item must still win
    a, b = 1 + 1 / 3 + 1, 1 / 3 + 2
    assert a != b
    high, low = max(a, b), min(a, b)  # the noisily larger rule sits on the higher item
    m = sp.csr_array((np.array([high, low]), (np.array([1, 1]), np.array([5, 3]))), shape=(2, 6))
    kept = prune_rows(m, 1).toarray()
    assert kept[1, 3] == low and kept[1, 5] == 0
