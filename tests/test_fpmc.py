"""FPMC: transitions and session factors on hand-built sessions, S-BPR sampling, determinism, memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.fpmc import FPMC, FPMCNet
from sessbench.data.sessions import SessionSet, TrainingData
from sessbench.errors import ConfigError
from sessbench.models import FitContext, get_model

@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: with several intra-op threads on a busy machine, thread wake-ups dominate."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FAST = {"factors": 16, "epochs": 10, "batch_size": 64, "lr": 0.05, "n_neg": 4, "reg": 0.0, "init_std": 0.1}


def batch_of(prefixes: list[list[int]]):
    """A batch whose prefixes are exactly `prefixes` (a dummy target is appended to each)."""
    examples = SessionSet.from_lists([p + [1] for p in prefixes]).examples()
    counts = np.array([len(p) for p in prefixes])
    return examples.batch(np.cumsum(counts) - counts)


def top(scores: torch.Tensor, k: int = 1) -> list[int]:
    return torch.argsort(scores[1:], descending=True)[:k].add(1).tolist()


def fitted(train: list[list[int]], n_items: int, seed: int = 0, **params) -> FPMC:
    model = FPMC(**{**FAST, **params})
    model.fit(TrainingData(SessionSet.from_lists(train), None, n_items, "toy"), FitContext(seed=seed))
    return model


def test_transition_from_the_last_item() -> None:
    # a deterministic cycle 1 -> 2 -> 3 -> 4 -> 1 ...: the next item is a function of the last one
    cycle = [1, 2, 3, 4]
    train = [[cycle[(s + t) % 4] for t in range(5)] for s in range(4)] * 10
    model = fitted(train, n_items=6, session_factor="none")
    scores = model.score(batch_of([[1], [4, 1, 2], [2, 3], [3, 4]]))
    assert [top(row)[0] for row in scores] == [2, 3, 4, 1]


def test_session_factor_carries_what_came_before_the_last_item() -> None:
    # item 9 is clicked in two contexts: after an "A" item (1, 2, 3) the next is 4; after a "B"
    # item (5, 6, 7) it is 8. A first-order chain cannot tell them apart; the session factor can.
    train = [[a, 9, 4] for a in (1, 2, 3)] * 20 + [[b, 9, 8] for b in (5, 6, 7)] * 20
    with_session = fitted(train, n_items=9)
    scores = with_session.score(batch_of([[2, 9], [6, 9]]))
    assert top(scores[0]) == [4] and top(scores[1]) == [8]
    without = fitted(train, n_items=9, session_factor="none")
    scores = without.score(batch_of([[2, 9], [6, 9]]))
    assert torch.equal(scores[0], scores[1])  # only the last item counts


def test_scores_equal_the_definition() -> None:
    model = fitted([[1, 2, 3], [3, 1]], n_items=4, epochs=1)
    net: FPMCNet = model.module
    batch = batch_of([[1, 2, 2], [3]])
    scores = model.score(batch)
    a, iu, il, li = (t.weight.detach() for t in (net.session_in, net.item_user, net.item_last, net.last_item))
    session0 = (a[1] + 2 * a[2]) / 3
    torch.testing.assert_close(scores[0], session0 @ iu.T + li[2] @ il.T)
    torch.testing.assert_close(scores[1], a[3] @ iu.T + li[3] @ il.T)
    # the training path (candidate_scores) agrees with the full scores
    cand = torch.tensor([[1, 4, 2], [2, 3, 1]])
    with torch.no_grad():
        part, _ = net.candidate_scores(batch, cand)
    torch.testing.assert_close(part, scores.gather(1, cand))


def test_negatives_are_uniform_over_the_other_items() -> None:
    model = FPMC(**{**FAST, "n_neg": 2000})
    model.n_items = 5
    drawn: list[torch.Tensor] = []

    class Spy(torch.nn.Module):
        def candidate_scores(self, batch, candidates):
            drawn.append(candidates)
            return torch.zeros(candidates.shape), torch.zeros(len(candidates))

    batch = batch_of([[1, 2], [4]])  # targets are the dummy 1
    batch = type(batch)(batch.items, batch.lengths, torch.tensor([2, 5]), batch.example_index)
    torch.manual_seed(0)
    model.loss(Spy(), batch)
    cand = drawn[0]
    assert torch.equal(cand[:, 0], torch.tensor([2, 5]))
    for row, target in enumerate([2, 5]):
        counts = torch.bincount(cand[row, 1:], minlength=6)
        assert counts[0] == 0 and counts[target] == 0
        others = [i for i in range(1, 6) if i != target]
        assert counts[others].min() > 400  # 2000 draws over 4 items: about 500 each


def test_same_seed_same_model_other_seed_other_model() -> None:
    train = [[1, 2, 3], [2, 3, 4], [4, 1], [3, 4, 1, 2]] * 5
    a = fitted(train, 5, seed=0, epochs=3)
    b = fitted(train, 5, seed=0, epochs=3)
    c = fitted(train, 5, seed=1, epochs=3)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])
    assert not torch.equal(a.state_dict()["last_item.weight"], c.state_dict()["last_item.weight"])


def test_padding_row_stays_zero_and_gradients_are_sparse() -> None:
    model = fitted([[1, 2, 3], [3, 1]], n_items=4, epochs=2)
    for name, weight in model.state_dict().items():
        assert torch.all(weight[0] == 0), name
    batch = batch_of([[1, 2], [3]])
    batch = type(batch)(batch.items, batch.lengths, torch.tensor([3, 1]), batch.example_index)
    model.module.zero_grad()
    model.loss(model.module, batch).backward()
    assert all(p.grad.is_sparse for p in model.module.parameters())


def test_bad_settings_are_config_errors() -> None:
    for bad in ({"optimizer": "adamw"}, {"l2": 1e-5}, {"session_factor": "max"}, {"n_neg": 0},
                {"grad_clip": 1.0}, {"init_std": 0.0}):
        with pytest.raises(ConfigError):
            FPMC(**bad)


def test_optimizer_refuses_a_dense_module() -> None:
    # the sparse optimizers would only fail at their first step on dense gradients
    with pytest.raises(TypeError):
        FPMC().make_optimizer(torch.nn.Linear(3, 3))


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adagrad"])
def test_each_optimizer_trains(optimizer: str) -> None:
    cycle = [[1, 2, 3, 1, 2, 3]] * 20
    model = fitted(cycle, 4, optimizer=optimizer, lr=0.05 if optimizer == "adam" else 0.5, epochs=15)
    scores = model.score(batch_of([[1], [2]]))
    assert [top(row)[0] for row in scores] == [2, 3]


def test_registered_with_training_defaults() -> None:
    spec = get_model("fpmc")
    assert {"baselines", "paper"} <= set(spec.groups)
    assert {"epochs", "lr", "batch_size", "factors", "n_neg", "reg", "session_factor"} <= set(spec.defaults)


def test_200k_items_keep_only_linear_structures() -> None:
    n_items, d = 200_000, 8
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 6, size=300)
    items = rng.integers(1, n_items + 1, size=int(lengths.sum())).astype(np.int32)
    data = TrainingData(SessionSet.from_lengths(items, lengths), None, n_items, "big")
    model = FPMC(factors=d, epochs=1, batch_size=256, n_neg=4)
    model.fit(data, FitContext())
    # four (n_items + 1) x d tables and nothing else (a dense item x item transition would be
    # n_items^2 = 4e10 entries)
    assert sum(p.numel() for p in model.module.parameters()) == 4 * (n_items + 1) * d
    # a training step touches only the rows of its batch
    batch = data.train_examples().batch(np.arange(64))
    model.module.zero_grad()
    model.loss(model.module, batch).backward()
    for p in model.module.parameters():
        assert p.grad.is_sparse and p.grad.coalesce().indices().shape[1] <= 64 * 10
    scores = model.score(batch_of([[1, 2], [n_items]]))
    assert scores.shape == (2, n_items + 1)
