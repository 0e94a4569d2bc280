"""POP and S-POP on hand-built sessions: the rankings their definitions imply."""

from __future__ import annotations

import numpy as np
import torch

from baselines.popularity import Popularity, SessionPopularity
from sessbench.data.sessions import SessionSet, TrainingData
from sessbench.evaluation import rank_counts
from sessbench.models import FitContext

# item clicks in training: 1 x5, 2 x3, 3 x2, 4 x1, 5 x0
TRAIN = SessionSet.from_lists([[1, 1, 2], [1, 2, 3], [1, 1, 2, 3, 4]])
DATA = TrainingData(TRAIN, None, n_items=5, dataset="toy")


def test_pop_ranks_by_training_clicks() -> None:
    model = Popularity()
    model.fit(DATA, FitContext())
    batch = SessionSet.from_lists([[4, 5, 3]]).examples().batch(np.array([0]))  # prefix [4, 5] -> 3
    scores = model.score(batch)
    assert scores.shape == (1, 6)
    assert torch.argsort(scores[0, 1:], descending=True).add(1).tolist() == [1, 2, 3, 4, 5]
    # the same list whatever the prefix
    other = SessionSet.from_lists([[2, 1]]).examples().batch(np.array([0]))
    assert torch.equal(model.score(other), scores)


def test_spop_ranks_prefix_counts_then_popularity() -> None:
    model = SessionPopularity()
    model.fit(DATA, FitContext())
    # prefix [4, 5, 4, 3] (target 2): 4 clicked twice, then 3 (popularity 2) and 5 (popularity 0)
    batch = SessionSet.from_lists([[4, 5, 4, 3, 2]]).examples().batch(np.array([0]))
    scores = model.score(batch)[0]
    ranking = torch.argsort(scores[1:], descending=True).add(1).tolist()
    assert ranking == [4, 3, 5, 1, 2]
    # padding never adds to an item: a shorter prefix padded with zeros in the same batch
    both = SessionSet.from_lists([[4, 5, 4, 3, 2], [2, 1]]).examples()
    b = both.batch(np.arange(len(both)))
    assert b.items[-1].tolist().count(0) > 0
    assert torch.equal(model.score(b)[0], scores)
    # the target (2) has four items above it and no ties
    g, e = rank_counts(scores.unsqueeze(0), torch.tensor([2]))
    assert (int(g), int(e)) == (4, 0)


def test_spop_ties_within_prefix_broken_by_popularity() -> None:
    model = SessionPopularity()
    model.fit(DATA, FitContext())
    batch = SessionSet.from_lists([[3, 1, 5]]).examples().batch(np.array([0]))  # prefix [3, 1]
    ranking = torch.argsort(model.score(batch)[0, 1:], descending=True).add(1).tolist()
    assert ranking[:2] == [1, 3]  # both clicked once: the more popular first
