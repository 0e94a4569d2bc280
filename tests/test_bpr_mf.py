"""BPR-MF (implicit): rankings on hand-built sessions, the prefix-mean scoring, selection, memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from baselines.bpr_mf import BPRMF, prefix_mean
from sessbench.data.sessions import SessionSet, TrainingData
from sessbench.errors import ConfigError
from sessbench.models import FitContext, get_model

pytest.importorskip("implicit")

# two groups of items that never share a session: {1, 2, 3} and {4, 5, 6}; 7 is never clicked
GROUP_A = [[1, 2], [2, 3], [1, 3], [1, 2, 3], [3, 1]]
GROUP_B = [[4, 5], [5, 6], [4, 6], [4, 5, 6], [6, 4]]
TRAIN = SessionSet.from_lists((GROUP_A + GROUP_B) * 30)
DATA = TrainingData(TRAIN, None, n_items=7, dataset="toy")
SMALL = {"factors": 8, "iterations": 60, "learning_rate": 0.05, "regularization": 0.001}


def batch_of(prefixes: list[list[int]]):
    """A batch whose prefixes are exactly `prefixes` (a dummy target is appended to each)."""
    examples = SessionSet.from_lists([p + [1] for p in prefixes]).examples()
    counts = np.array([len(p) for p in prefixes])
    return examples.batch(np.cumsum(counts) - counts)


def ranking(scores: torch.Tensor) -> list[int]:
    return torch.argsort(scores[1:], descending=True).add(1).tolist()


def test_prefix_ranks_its_own_group_first() -> None:
    model = BPRMF(**SMALL)
    model.fit(DATA, FitContext(seed=0))
    scores = model.score(batch_of([[1], [5, 6]]))
    assert scores.shape == (2, 8)
    assert set(ranking(scores[0])[:3]) == {1, 2, 3}
    assert set(ranking(scores[1])[:3]) == {4, 5, 6}
    # an item never seen in training keeps implicit's zero factors and bias: score exactly 0
    assert torch.all(scores[:, 7] == 0)


def test_score_is_the_mean_of_prefix_factors_dotted_with_items_plus_bias() -> None:
    model = BPRMF(**SMALL)
    model.fit(DATA, FitContext(seed=0))
    assert model.item_factors.shape == (8, 8) and model.item_bias.shape == (8,)
    batch = batch_of([[1, 2, 2], [5]])  # the second row is padded
    scores = model.score(batch)
    f, b = model.item_factors, model.item_bias
    expected0 = (f[1] + 2 * f[2]) / 3 @ f.T + b  # repeated clicks count each time
    expected1 = f[5] @ f.T + b
    torch.testing.assert_close(scores[0], expected0)
    torch.testing.assert_close(scores[1], expected1)


def test_prefix_mean_ignores_padding() -> None:
    table = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    table[0] = 100.0  # padding row must never count
    out = prefix_mean(table, torch.tensor([[1, 3, 0, 0], [2, 0, 0, 0]]))
    torch.testing.assert_close(out, torch.stack([(table[1] + table[3]) / 2, table[2]]))


def test_same_seed_same_factors_other_seed_other_factors() -> None:
    runs = []
    for seed in (0, 0, 1):
        model = BPRMF(**SMALL)
        model.fit(DATA, FitContext(seed=seed))
        runs.append(model.item_factors.clone())
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_selection_rounds_keep_the_best_factors_and_stop_on_patience() -> None:
    calls: list[torch.Tensor] = []
    script = iter([0.3, 0.5, 0.4, 0.45, 0.2, 0.9])  # best after round 2, then 3 rounds worse

    def evaluate(model: BPRMF) -> dict[str, float]:
        calls.append(model.item_factors.clone())
        return {"P@20": next(script), "MRR@20": 0.0}

    model = BPRMF(**{**SMALL, "iterations": 60, "eval_every": 10, "patience": 3})
    ctx = FitContext(seed=0, evaluate=evaluate)
    model.fit(DATA, ctx)
    assert len(calls) == 5  # stopped before the 6th round
    assert [e["epochs_done"] for e in ctx.epoch_log] == [10, 20, 30, 40, 50]
    assert torch.equal(model.item_factors, calls[1])  # the factors of the best round
    assert model.fit_summary["best_epoch"] == 19 and model.fit_summary["stopped"] == "patience"


def test_without_selection_trains_all_iterations() -> None:
    model = BPRMF(**{**SMALL, "iterations": 25, "eval_every": 10})
    ctx = FitContext(seed=0)
    model.fit(DATA, ctx)
    assert [e["epochs_done"] for e in ctx.epoch_log] == [10, 20, 25]


def test_bad_hyperparameters_are_config_errors() -> None:
    for bad in ({"factors": 0}, {"learning_rate": 0.0}, {"regularization": -1.0},
                {"iterations": 2.5}, {"verify_negative_samples": "yes"}):
        with pytest.raises(ConfigError):
            BPRMF(**bad)


def test_registered_in_the_baseline_groups() -> None:
    assert {"baselines", "paper"} <= set(get_model("bpr-mf").groups)


def test_200k_items_stay_under_a_memory_bound() -> None:
    n_items = 200_000
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 9, size=20_000)
    items = rng.integers(1, n_items + 1, size=int(lengths.sum())).astype(np.int32)
    data = TrainingData(SessionSet.from_lengths(items, lengths), None, n_items, "big")
    model = BPRMF(factors=8, iterations=1)
    tracemalloc.start()
    try:
        model.fit(data, FitContext())
        scores = model.score(batch_of([[1, 2], [n_items]]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # factors: (n_items + 1) x 9 float32 (7 MB) for items and as much again for the sessions;
    # a dense n_items^2 structure would need 160 GB
    assert peak < 48 * 2**20, f"peak traced memory {peak / 2**20:.1f} MB"
    assert model.item_factors.shape == (n_items + 1, 8)
    assert scores.shape == (2, n_items + 1)
