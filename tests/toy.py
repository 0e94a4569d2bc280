"""Toy data shared by the model tests: sessions whose next item is always the successor."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sessbench.data.sessions import SessionSet, TrainingData


def successor_data(n_items: int = 30, n_sessions: int = 300, seed: int = 0, shuffled_times: bool = False) -> TrainingData:
    """Sessions [s, s+1, ..., s+k]: every item is followed by its successor.

    `shuffled_times` stores the sessions out of time order (random timestamps), for models that
    must sort them (GRU4Rec's time-ordered session-parallel batches).
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 7, size=n_sessions)
    starts = rng.integers(1, n_items - lengths + 2)
    sessions = [list(range(s, s + n)) for s, n in zip(starts, lengths)]
    timestamps = rng.permutation(n_sessions) if shuffled_times else None
    return TrainingData(SessionSet.from_lists(sessions, timestamps=timestamps), None, n_items, "successor")


def p_at_1(model: Any, data: TrainingData, min_length: int = 1) -> float:
    """Share of training prefixes (at least `min_length` long) whose top-scored item is the target."""
    examples = data.train_examples()
    batch = examples.batch(np.flatnonzero(examples.prefix_lengths >= min_length))
    scores = model.score(batch).clone()
    scores[:, 0] = -torch.inf
    return float((scores.argmax(1).cpu() == batch.targets).float().mean())


def assert_padding_and_batch_company_do_not_matter(net: torch.nn.Module, n_items: int = 20) -> None:
    """A prefix scores the same alone, in a batch, and with extra padding (net(items, lengths))."""
    items = torch.tensor([[3, 4, 5, 0, 0], [7, 8, 9, 10, 11], [2, 0, 0, 0, 0]])
    lengths = torch.tensor([3, 5, 1])
    with torch.no_grad():
        scores = net(items, lengths)
        assert scores.shape == (3, n_items + 1)
        for i in range(3):
            n = int(lengths[i])
            alone = net(items[i : i + 1, :n], lengths[i : i + 1])
            torch.testing.assert_close(scores[i : i + 1], alone)
            wider = torch.cat([items[i : i + 1, :n], torch.zeros(1, 4, dtype=torch.long)], 1)
            torch.testing.assert_close(net(wider, lengths[i : i + 1]), alone)
