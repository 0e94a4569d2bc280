"""GRU4Rec: session-parallel schedule, hidden-state resets, sampling, losses, optimizer, learning."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from baselines.gru4rec import GRU4Rec
from baselines.gru4rec.batching import session_parallel_schedule, step_batch
from baselines.gru4rec.losses import bpr_max, cross_entropy, top1_max
from baselines.gru4rec.network import GRU4RecNet
from baselines.gru4rec.optim import AdagradMomentum
from baselines.gru4rec.sampling import SampleCache, sampling_weights
from sessbench.data.sessions import Batch, Prefixes, SessionSet, TrainingData
from sessbench.errors import ConfigError
from sessbench.models import FitContext, get_model
from toy import p_at_1, successor_data


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def hand_built() -> SessionSet:
    """Five sessions; stored out of time order so the schedule must sort them."""
    return SessionSet.from_lists(
        [[6, 7, 8, 9], [1, 2, 3], [4, 5], [9], [1, 3], [2, 2, 2, 2, 2]],
        timestamps=[30, 10, 20, 25, 40, 50],
    )


# ---------------------------------------------------------------------------- schedule


def test_schedule_plays_sessions_in_time_order_with_resets_and_drops() -> None:
    sessions = hand_built()
    # flat click positions: s0 [6,7,8,9] 0-3, s1 [1,2,3] 4-6, s2 [4,5] 7-8, s3 [9] 9,
    # s4 [1,3] 10-11, s5 [2,2,2,2,2] 12-16; time order s1, s2, s3 (1 click: skipped), s0, s4, s5
    sch = session_parallel_schedule(sessions, batch_size=2)
    steps = [tuple(a.tolist() for a in sch.step(t)) for t in range(sch.n_steps)]
    assert steps == [
        ([4, 7], [True, True], [0, 1]),  # s1 and s2 start
        ([5, 0], [False, True], [0, 1]),  # s2 had one pair: slot 1 takes s0
        ([10, 1], [True, False], [0, 1]),  # s1 done: slot 0 takes s4
        ([12, 2], [True, False], [0, 1]),  # s4 done: slot 0 takes s5 (the last session)
        ([13], [False], [0]),  # s0 done, nothing left: slot 1 is dropped
        ([14], [False], [0]),
        ([15], [False], [0]),
    ]
    assert sch.n_pairs == sum(max(n - 1, 0) for n in sessions.lengths)
    # every training pair is played exactly once
    assert sorted(sch.position.tolist()) == sorted(
        p for s in range(sessions.n_sessions) for p in range(sessions.offsets[s], sessions.offsets[s + 1] - 1)
    )


def test_schedule_drops_the_right_slot_and_can_stop_below_two() -> None:
    sessions = SessionSet.from_lists([[1, 2, 3, 4], [5, 6], [7, 8, 9]], timestamps=[0, 1, 2])
    sch = session_parallel_schedule(sessions, batch_size=2)
    # step 1: slot 1 (s1) ends, slot 0 continues; s2 fills slot 1; later slot 0 ends and is dropped
    keeps = [sch.step(t)[2].tolist() for t in range(sch.n_steps)]
    positions = [sch.step(t)[0].tolist() for t in range(sch.n_steps)]
    assert positions == [[0, 4], [1, 6], [2, 7]]
    sch2 = session_parallel_schedule(SessionSet.from_lists([[1, 2, 3, 4, 5], [6, 7]], timestamps=[0, 1]), 2)
    assert [sch2.step(t)[0].tolist() for t in range(sch2.n_steps)] == [[0, 5], [1], [2], [3]]
    assert [sch2.step(t)[2].tolist() for t in range(sch2.n_steps)] == [[0, 1], [0], [0], [0]]
    short = session_parallel_schedule(SessionSet.from_lists([[1, 2, 3, 4, 5], [6, 7]], timestamps=[0, 1]), 2, stop_below=2)
    assert short.n_steps == 1
    assert keeps[0] == [0, 1]


def test_step_batch_marks_only_shrinking_steps_with_keep() -> None:
    sessions = SessionSet.from_lists([[1, 2, 3, 4, 5], [6, 7, 8]], timestamps=[0, 1])
    sch = session_parallel_schedule(sessions, 2)
    empty = torch.zeros(0, dtype=torch.int64)
    batches = [step_batch(sessions, sch, t, empty) for t in range(sch.n_steps)]
    assert [b.inputs.tolist() for b in batches] == [[1, 6], [2, 7], [3], [4]]
    assert [b.targets.tolist() for b in batches] == [[2, 7], [3, 8], [4], [5]]
    assert [b.keep is None for b in batches] == [True, True, False, True]
    assert batches[2].keep.tolist() == [0]


# ---------------------------------------------------------------------------- hidden state


def replay(model: GRU4Rec, data: TrainingData, module: GRU4RecNet) -> list[tuple[Any, list[torch.Tensor], list[torch.Tensor]]]:
    """Run one epoch of steps through the model's loss path; record (batch, state before, state after)."""
    out = []
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for batch in model.train_batches(data, 0, rng):
            before = model.carried_hidden(batch)
            model.output_scores(module, batch)
            out.append((batch, before, list(model._hidden)))
    return out


@pytest.mark.parametrize("embedding,layers", [("shared", [8]), ("separate", [6, 5]), ("none", [7])])
def test_hidden_state_is_reset_exactly_at_session_boundaries(embedding: str, layers: list[int]) -> None:
    """Each slot's training state equals the prediction-time state of its prefix run from zero.

    If a reset were missing or misplaced, the state would carry the previous session and differ;
    if slots were mis-ordered after a drop, they would get another slot's state.
    """
    data = successor_data(n_items=12, n_sessions=9, seed=3, shuffled_times=True)
    model = GRU4Rec(layers=layers, embedding=embedding, embedding_size=4, batch_size=3, n_sample=2, epochs=1)
    torch.manual_seed(0)
    module = model.build(data)
    module.eval()
    steps = replay(model, data, module)
    sch = model.schedule(data)
    sessions = data.train
    session_of_click = sessions.session_index_of_clicks()
    saw_reset_with_state = False
    for t, (batch, before, after) in enumerate(steps):
        position = sch.step(t)[0]
        s = session_of_click[position]
        starts = sessions.offsets[s]
        cut = position - starts + 1  # the prefix seen so far by each slot, including this click
        width = int(cut.max())
        col = np.arange(width)
        items = np.where(col[None] < cut[:, None], sessions.items[np.minimum(starts[:, None] + col[None], len(sessions.items) - 1)], 0)
        expected = module.encode_prefixes(torch.from_numpy(items.astype(np.int64)), torch.from_numpy(cut))
        torch.testing.assert_close(after[-1], expected, rtol=1e-5, atol=1e-6)
        reset = batch.reset.numpy()
        assert np.array_equal(reset, cut == 1)  # reset flags exactly where a session starts
        for h in before:
            assert torch.all(h[torch.from_numpy(reset)] == 0)
        if t > 0 and reset.any():
            previous = steps[t - 1][2][-1]
            carried = previous if batch.keep is None else previous[batch.keep]
            saw_reset_with_state |= bool(carried[torch.from_numpy(reset)].abs().sum() > 0)
    assert saw_reset_with_state  # the zeroing above was not vacuous


def test_each_epoch_starts_from_zero_state() -> None:
    data = successor_data(n_items=12, n_sessions=9, seed=3, shuffled_times=True)
    model = GRU4Rec(layers=[5], batch_size=3, n_sample=2)
    module = model.build(data)
    replay(model, data, module)
    assert model._hidden is not None
    first = next(iter(model.train_batches(data, 1, np.random.default_rng(0))))
    assert all(torch.all(h == 0) for h in model.carried_hidden(first))


def test_prefix_encoder_ignores_padding_and_batch_company() -> None:
    torch.manual_seed(0)
    net = GRU4RecNet(20, [6, 4], embedding="separate", embedding_size=5)
    items = torch.tensor([[3, 4, 5, 0, 0], [7, 8, 9, 10, 11], [2, 0, 0, 0, 0]])
    lengths = torch.tensor([3, 5, 1])
    together = net.encode_prefixes(items, lengths)
    for i in range(3):
        alone = net.encode_prefixes(items[i : i + 1, : int(lengths[i])], lengths[i : i + 1])
        torch.testing.assert_close(together[i : i + 1], alone)
    # a naive per-step loop with masking gives the same states
    h = [torch.zeros(3, 6), torch.zeros(3, 4)]
    for t in range(5):
        new = net.step(items[:, t], h, dropout=False)
        live = (t < lengths).unsqueeze(1)
        h = [torch.where(live, n, o) for n, o in zip(new, h)]
    torch.testing.assert_close(together, h[-1])


def test_scores_have_one_column_per_item_plus_padding() -> None:
    data = successor_data(shuffled_times=True)
    model = GRU4Rec(layers=[8], n_sample=4, epochs=1, batch_size=8)
    model.fit(data, FitContext(seed=0))
    batch = data.train_examples().batch(np.arange(10))
    scores = model.score(batch)
    assert scores.shape == (10, data.n_items + 1)
    assert torch.isfinite(scores).all()


# ---------------------------------------------------------------------------- sampling


def test_samples_follow_popularity_to_the_alpha_and_skip_unseen_items() -> None:
    popularity = np.array([0, 100, 25, 0, 4, 1])
    weights = sampling_weights(popularity, 0.5)
    np.testing.assert_allclose(weights, [0, 10, 5, 0, 2, 1])
    cache = SampleCache(weights, n_sample=50, cache_size=200_000, rng=np.random.default_rng(1))
    draws = torch.cat([cache.get() for _ in range(4000)]).numpy()
    assert cache.refills == 1  # 4000 rows drawn in one bulk refill
    counts = np.bincount(draws, minlength=6)
    assert counts[0] == 0 and counts[3] == 0
    np.testing.assert_allclose(counts / counts.sum(), weights / weights.sum(), atol=0.005)
    uniform = sampling_weights(popularity, 0.0)
    np.testing.assert_allclose(uniform, [0, 1, 1, 0, 1, 1])


def test_sample_cache_refills_and_is_deterministic_by_seed() -> None:
    weights = sampling_weights(np.arange(10), 1.0)
    a = SampleCache(weights, 3, cache_size=7, rng=np.random.default_rng(5))  # 2 rows per refill
    b = SampleCache(weights, 3, cache_size=7, rng=np.random.default_rng(5))
    rows_a = [a.get().tolist() for _ in range(5)]
    assert rows_a == [b.get().tolist() for _ in range(5)]
    assert a.refills == 3
    c = SampleCache(weights, 3, cache_size=7, rng=np.random.default_rng(6))
    assert rows_a != [c.get().tolist() for _ in range(5)]
    assert SampleCache(weights, 0, 10, np.random.default_rng(0)).get().numel() == 0


# ---------------------------------------------------------------------------- losses


def _softmax(values: list[float]) -> list[float]:
    m = max(values)
    e = [math.exp(v - m) for v in values]
    return [x / sum(e) for x in e]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def naive_losses(o: list[list[float]], log_q: list[float], logq: float, bpreg: float) -> dict[str, list[float]]:
    """The three losses written out element by element from their definitions."""
    out: dict[str, list[float]] = {"xe": [], "bpr": [], "top1": []}
    for i, row in enumerate(o):
        corrected = [v - logq * q for v, q in zip(row, log_q)]
        out["xe"].append(-math.log(_softmax(corrected)[i]))
        neg = [j for j in range(len(row)) if j != i]
        s = _softmax([row[j] for j in neg])
        out["bpr"].append(
            -math.log(sum(sj * _sigmoid(row[i] - row[j]) for sj, j in zip(s, neg)) + 1e-24)
            + bpreg * sum(sj * row[j] ** 2 for sj, j in zip(s, neg))
        )
        out["top1"].append(sum(sj * (_sigmoid(row[j] - row[i]) + _sigmoid(row[j] ** 2)) for sj, j in zip(s, neg)))
    return out


def test_sampled_losses_equal_a_naive_reference() -> None:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 5, generator=g, dtype=torch.float64)  # 3 slots + 2 extra samples
    log_q = torch.log(torch.tensor([5.0, 2.0, 9.0, 3.0, 1.0], dtype=torch.float64))
    ref = naive_losses(scores.tolist(), log_q.tolist(), logq=0.7, bpreg=0.9)
    torch.testing.assert_close(cross_entropy(scores, log_q, 0.7), torch.tensor(ref["xe"], dtype=torch.float64))
    torch.testing.assert_close(bpr_max(scores, 0.9), torch.tensor(ref["bpr"], dtype=torch.float64))
    torch.testing.assert_close(top1_max(scores), torch.tensor(ref["top1"], dtype=torch.float64))
    no_q = naive_losses(scores.tolist(), [0.0] * 5, logq=0.0, bpreg=0.0)
    torch.testing.assert_close(cross_entropy(scores), torch.tensor(no_q["xe"], dtype=torch.float64))


def test_model_loss_uses_in_batch_targets_samples_and_logq() -> None:
    """The model's step loss equals the naive formula on the columns it should have used."""
    data = successor_data(n_items=12, n_sessions=9, seed=3, shuffled_times=True)
    for loss, extra in [("cross-entropy", {"logq": 1.0}), ("bpr-max", {"final_act": "linear", "bpreg": 0.5}), ("top1-max", {})]:
        model = GRU4Rec(layers=[5], batch_size=3, n_sample=2, sample_alpha=0.5, loss=loss, **extra)
        module = model.build(data)
        batch = next(iter(model.train_batches(data, 0, np.random.default_rng(0))))
        with torch.no_grad():
            value = model.loss(module, batch)
        model._hidden = None
        out = module.step(batch.inputs, model.carried_hidden(batch), dropout=False)[-1]
        columns = torch.cat([batch.targets, batch.samples])
        o = (out @ module.output_weights[columns].T + module.output_bias[columns]).double().tolist()
        pop = data.item_popularity()
        log_q = [math.log(pop[c]) for c in batch.targets.tolist()] + [0.5 * math.log(pop[c]) for c in batch.samples.tolist()]
        ref = naive_losses(o, log_q, logq=1.0, bpreg=0.5)
        key = {"cross-entropy": "xe", "bpr-max": "bpr", "top1-max": "top1"}[loss]
        assert value.item() == pytest.approx(sum(ref[key]) / 3, rel=1e-4)


# ---------------------------------------------------------------------------- optimizer


@pytest.mark.parametrize("momentum,nesterov", [(0.0, True), (0.5, True), (0.5, False)])
def test_sparse_and_dense_adagrad_updates_agree(momentum: float, nesterov: bool) -> None:
    torch.manual_seed(0)
    dense_w = torch.nn.Parameter(torch.randn(6, 3))
    sparse_emb = torch.nn.Embedding(6, 3, sparse=True)
    with torch.no_grad():
        sparse_emb.weight.copy_(dense_w)
    opt_d = AdagradMomentum([dense_w], lr=0.1, momentum=momentum, nesterov=nesterov)
    opt_s = AdagradMomentum(sparse_emb.parameters(), lr=0.1, momentum=momentum, nesterov=nesterov)
    rows = torch.tensor([1, 4, 1, 2])  # a repeated row: gradients must be summed first
    for _ in range(3):
        for opt, lookup in ((opt_d, lambda r: dense_w[r]), (opt_s, sparse_emb)):
            opt.zero_grad()
            (lookup(rows) ** 2).sum().backward()
        opt_d.step()
        opt_s.step()
        if momentum == 0:  # untouched rows move only through momentum
            torch.testing.assert_close(dense_w.detach(), sparse_emb.weight.detach())
    if momentum > 0:
        touched = torch.tensor([1, 2, 4])
        torch.testing.assert_close(dense_w.detach()[touched], sparse_emb.weight.detach()[touched])


def test_adagrad_momentum_formula_on_a_scalar() -> None:
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = AdagradMomentum([w], lr=0.5, momentum=0.3, nesterov=True, eps=1e-6)
    acc, v, expected = 0.0, 0.0, 1.0
    for _ in range(3):
        opt.zero_grad()
        (w**2).sum().backward()
        g = 2 * expected
        acc += g * g
        step = g / math.sqrt(acc + 1e-6)
        v = 0.3 * v - 0.5 * step
        expected += 0.3 * v - 0.5 * step
        opt.step()
        assert w.item() == pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------------------- learning and determinism


@pytest.mark.parametrize(
    "params",
    [
        {"loss": "cross-entropy", "logq": 1.0},
        {"loss": "bpr-max", "bpreg": 0.5, "embedding": "separate", "momentum": 0.3},
        {"loss": "top1-max", "embedding": "none"},
    ],
)
def test_learns_a_deterministic_sequence_to_near_perfect_p1(params: dict[str, Any]) -> None:
    data = successor_data(shuffled_times=True)
    model = GRU4Rec(layers=[32], batch_size=16, n_sample=8, epochs=6, lr=0.1, **params)
    model.fit(data, FitContext(seed=0))
    assert p_at_1(model, data) >= 0.95


def test_learns_a_pattern_that_needs_the_history() -> None:
    """Sessions step by +1 or by +2 from a random start: the last click alone cannot tell which."""
    rng = np.random.default_rng(0)
    sessions = []
    for _ in range(400):
        k = int(rng.integers(1, 3))
        n = int(rng.integers(3, 6))
        s = int(rng.integers(1, 40 - k * (n - 1) + 1))
        sessions.append([s + k * j for j in range(n)])
    data = TrainingData(SessionSet.from_lists(sessions, timestamps=np.arange(400)), None, 40, "steps")
    model = GRU4Rec(layers=[48], batch_size=16, n_sample=16, epochs=10, lr=0.1, logq=1.0)
    model.fit(data, FitContext(seed=0))
    assert p_at_1(model, data, min_length=2) >= 0.9


def test_same_seed_same_model_other_seed_other_model() -> None:
    data = successor_data(n_sessions=60, shuffled_times=True)
    states = []
    for seed in (4, 4, 5):
        model = GRU4Rec(layers=[8], batch_size=8, n_sample=4, epochs=2, dropout_hidden=0.2, dropout_embed=0.1)
        model.fit(data, FitContext(seed=seed))
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


# ---------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "bad",
    [
        {"loss": "bpr"},
        {"loss": "cross-entropy", "final_act": "elu-1"},
        {"loss": "bpr-max", "final_act": "softmax"},
        {"loss": "bpr-max", "final_act": "cubic"},
        {"embedding": "onehot"},
        {"layers": []},
        {"layers": [0]},
        {"l2": 1e-5},
        {"optimizer": "adam"},
        {"grad_clip": 5.0},
        {"dropout_hidden": 1.0},
        {"momentum": 1.0},
        {"nesterov": "yes"},
        {"n_sample": -1},
    ],
)
def test_bad_hyperparameters_are_config_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        GRU4Rec(**bad)


def test_registered_with_groups_and_training_defaults() -> None:
    spec = get_model("gru4rec")
    assert {"baselines", "paper"} <= set(spec.groups)
    assert spec.defaults["optimizer"] == "adagrad" and spec.defaults["l2"] == 0.0
    assert "patience" in spec.defaults and "eval_batch_size" in spec.defaults


def test_every_prefix_batch_type_is_accepted_by_score() -> None:
    data = successor_data(n_sessions=40, shuffled_times=True)
    model = GRU4Rec(layers=[8], batch_size=8, n_sample=4, epochs=1)
    model.fit(data, FitContext(seed=0))
    batch = Batch(
        items=torch.tensor([[1, 2, 3], [5, 0, 0]]),
        lengths=torch.tensor([3, 1]),
        targets=torch.tensor([4, 6]),
        example_index=np.arange(2),
    )
    single = model.score(Prefixes(batch.items[1:, :1], batch.lengths[1:], np.arange(1)))
    torch.testing.assert_close(model.score(batch)[1:], single)
