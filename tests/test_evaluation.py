"""Tests for sessbench.evaluation: hand-computed metrics, exact ties, grouping, batching."""

from __future__ import annotations

import itertools
import math
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import pytest
import torch

from sessbench.data.sessions import Batch, Examples, SessionSet, TrainingData
from sessbench.errors import SessbenchError
from sessbench.evaluation import (
    KS,
    EvaluationResult,
    RankCounts,
    auto_batch_size,
    evaluate_model,
    evaluate_scores_fn,
    metrics_from_counts,
    rank_counts,
)
from sessbench.models import FitContext, SessionRecommender


class TableModel(SessionRecommender):
    """Looks each example's scores up in a fixed table (row = example index)."""

    name = "table"

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table
        self.entered = 0

    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        pass

    def score(self, batch: Batch) -> torch.Tensor:
        assert not torch.is_grad_enabled()
        assert self.entered == 1, "scoring must run inside eval_mode()"
        return self.table[torch.from_numpy(batch.example_index)]

    @contextmanager
    def eval_mode(self) -> Iterator[None]:
        self.entered += 1
        try:
            yield
        finally:
            self.entered -= 1


def single_example(target: int, prefix: list[int] | None = None) -> Examples:
    prefix = prefix or [1]
    return SessionSet.from_lists([[*prefix, target]]).examples()


def evaluate_table(table: Any, examples: Examples, n_items: int, **kw: Any) -> EvaluationResult:
    return evaluate_model(TableModel(torch.as_tensor(table)), examples, n_items=n_items, **kw)


# ---------------------------------------------------------------------------- hand-computed


def test_single_example_rank_three() -> None:
    # n_items = 6; target 4 has the third best score
    scores = [[0.0, 0.1, 0.9, 0.2, 0.5, 0.8, 0.3]]
    res = evaluate_table(scores, single_example(target=4), n_items=6)
    m = res.metrics
    assert m["P@5"] == 1.0 and m["P@10"] == 1.0 and m["P@20"] == 1.0
    assert m["MRR@5"] == pytest.approx(1 / 3)
    assert m["NDCG@5"] == pytest.approx(1 / math.log2(4))
    assert res.ranks.greater.tolist() == [2] and res.ranks.equal.tolist() == [0]
    assert res.ranks.reciprocal_rank().tolist() == [1 / 3]
    assert list(m)[:9] == ["P@5", "MRR@5", "NDCG@5", "P@10", "MRR@10", "NDCG@10", "P@20", "MRR@20", "NDCG@20"]


def test_target_outside_top_k() -> None:
    n_items = 30
    scores = torch.arange(n_items + 1, dtype=torch.float32).flip(0).unsqueeze(0)  # item 1 best
    res = evaluate_table(scores, single_example(target=12), n_items=n_items)  # rank 12
    m = res.metrics
    assert m["P@5"] == 0.0 and m["MRR@5"] == 0.0 and m["NDCG@5"] == 0.0
    assert m["P@10"] == 0.0
    assert m["P@20"] == 1.0
    assert m["MRR@20"] == pytest.approx(1 / 12)
    assert m["NDCG@20"] == pytest.approx(1 / math.log2(13))
    assert res.ranks.reciprocal_rank(10).tolist() == [0.0]
    assert res.ranks.reciprocal_rank().tolist() == [1 / 12]


def test_all_items_tied() -> None:
    n_items = 10
    res = evaluate_table(torch.zeros(1, n_items + 1), single_example(target=3), n_items=n_items)
    m = res.metrics
    assert m["P@5"] == 0.5
    assert m["MRR@5"] == pytest.approx(sum(1 / r for r in range(1, 6)) / 10)
    assert m["NDCG@5"] == pytest.approx(sum(1 / math.log2(r + 1) for r in range(1, 6)) / 10)
    assert m["P@10"] == 1.0 and m["P@20"] == 1.0
    assert m["MRR@20"] == pytest.approx(sum(1 / r for r in range(1, 11)) / 10)
    assert res.ranks.greater.tolist() == [0] and res.ranks.equal.tolist() == [9]


def test_padding_column_ignored() -> None:
    # column 0 scores highest and equals the target: it must neither outrank nor tie
    scores = [[9.0, 1.0, 9.0, 0.5]]
    res = evaluate_table(scores, single_example(target=2), n_items=3)
    assert res.ranks.greater.tolist() == [0] and res.ranks.equal.tolist() == [0]
    assert res.metrics["MRR@5"] == 1.0
    scores = [[100.0, 1.0, 5.0, 0.5]]
    res = evaluate_table(scores, single_example(target=1), n_items=3)
    assert res.ranks.greater.tolist() == [1]
    assert res.metrics["MRR@5"] == 0.5


def test_rank_counts_direct() -> None:
    scores = torch.tensor(
        [
            [5.0, 3.0, 3.0, 1.0, 3.0, -torch.inf],
            [0.0, 2.0, 1.0, 4.0, 4.0, 3.0],
            [7.0, -torch.inf, 1.0, -torch.inf, 0.0, -torch.inf],
        ],
        dtype=torch.float64,
    )
    greater, equal = rank_counts(scores, torch.tensor([2, 5, 5]))
    assert greater.tolist() == [0, 2, 2]
    assert equal.tolist() == [2, 0, 2]  # row 2: -inf ties with items 1 and 3, never with column 0
    with pytest.raises(ValueError):
        rank_counts(scores, torch.tensor([0, 1, 1]))


def test_hit_is_closed_form() -> None:
    g = np.array([0, 3, 4, 10, 2])
    e = np.array([9, 0, 3, 1, 7])
    rc = RankCounts(g, e, np.ones(5))
    expected = np.clip(5 - g, 0, e + 1) / (e + 1)
    np.testing.assert_array_equal(rc.hit(5), expected)


# ---------------------------------------------------------------------------- brute force


def brute_force(scores: np.ndarray, target: int, k: int | None) -> tuple[float, float, float]:
    """Expected (hit, rr, ndcg) by enumerating every ordering of the tied items."""
    cand = scores[1:]
    t = scores[target]
    greater = int((cand > t).sum())
    tied = [i for i in range(1, len(scores)) if scores[i] == t]
    totals = [0.0, 0.0, 0.0]
    perms = list(itertools.permutations(tied))
    for perm in perms:
        rank = greater + perm.index(target) + 1
        if k is None or rank <= k:
            totals[0] += 1.0
            totals[1] += 1.0 / rank
            totals[2] += 1.0 / math.log2(rank + 1)
    return tuple(x / len(perms) for x in totals)  # type: ignore[return-value]


def test_brute_force_tie_permutations() -> None:
    rng = np.random.default_rng(7)
    n_items = 8
    n = 60
    scores = rng.integers(0, 4, size=(n, n_items + 1)).astype(np.float32)
    scores[:, 0] = rng.integers(0, 4, size=n)  # padding column sometimes ties: must not count
    targets = rng.integers(1, n_items + 1, size=n)
    g, e = rank_counts(torch.from_numpy(scores), torch.from_numpy(targets))
    rc = RankCounts(g.numpy(), e.numpy(), np.ones(n))
    for k in (1, 2, 3, 5, None):
        want = np.array([brute_force(scores[i], int(targets[i]), k) for i in range(n)])
        if k is not None:
            np.testing.assert_allclose(rc.hit(k), want[:, 0], rtol=1e-12)
        np.testing.assert_allclose(rc.reciprocal_rank(k), want[:, 1], rtol=1e-12)
        np.testing.assert_allclose(rc.ndcg(k), want[:, 2], rtol=1e-12)
    metrics = metrics_from_counts(g.numpy(), e.numpy(), ks=(2, 5))
    want5 = np.array([brute_force(scores[i], int(targets[i]), 5) for i in range(n)]).mean(axis=0)
    assert metrics["P@5"] == pytest.approx(want5[0])
    assert metrics["MRR@5"] == pytest.approx(want5[1])
    assert metrics["NDCG@5"] == pytest.approx(want5[2])
    assert set(metrics) == {"P@2", "MRR@2", "NDCG@2", "P@5", "MRR@5", "NDCG@5"}


def test_metrics_from_counts_empty() -> None:
    assert metrics_from_counts(np.zeros(0), np.zeros(0)) == {}


# ---------------------------------------------------------------------------- evaluation


def random_setup(n_items: int = 25, seed: int = 0) -> tuple[Examples, torch.Tensor]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 12, size=30)
    sessions = SessionSet.from_lists([rng.integers(1, n_items + 1, size=int(n)).tolist() for n in lengths])
    examples = sessions.examples()
    # coarse integer scores so that ties (including at the top-20 cut) are common
    table = torch.from_numpy(rng.integers(0, 5, size=(len(examples), n_items + 1)).astype(np.float32))
    return examples, table


def test_groups_short_and_long() -> None:
    examples, table = random_setup()
    res = evaluate_table(table, examples, n_items=25)
    lengths = examples.prefix_lengths
    short = lengths <= 5
    assert res.n_examples == {"all": len(examples), "short": int(short.sum()), "long": int((~short).sum())}
    assert 0 < res.n_examples["short"] < len(examples)
    g, e = res.ranks.greater, res.ranks.equal
    assert res.groups["short"] == metrics_from_counts(g[short], e[short])
    assert res.groups["long"] == metrics_from_counts(g[~short], e[~short])
    np.testing.assert_array_equal(res.ranks.prefix_length, lengths)
    for key in ("P@20", "MRR@20", "NDCG@20"):
        weighted = (
            res.groups["short"][key] * res.n_examples["short"] + res.groups["long"][key] * res.n_examples["long"]
        ) / len(examples)
        assert res.metrics[key] == pytest.approx(weighted)


def test_empty_group_is_empty_dict() -> None:
    examples = SessionSet.from_lists([[1, 2, 3], [2, 3]]).examples()  # prefixes of length <= 2
    res = evaluate_table(torch.rand(len(examples), 4), examples, n_items=3)
    assert res.groups["long"] == {} and res.n_examples["long"] == 0
    assert set(res.groups["short"]) == {f"{m}@{k}" for m in ("P", "MRR", "NDCG") for k in KS}


def test_rank_counts_save_load(tmp_path: Any) -> None:
    rc = RankCounts(np.array([0, 5, 2]), np.array([1, 0, 7]), np.array([1, 6, 3]))
    path = tmp_path / "ranks.npz"
    rc.save(path)
    back = RankCounts.load(path)
    for a in ("greater", "equal", "prefix_length"):
        np.testing.assert_array_equal(getattr(back, a), getattr(rc, a))
        assert getattr(back, a).dtype == np.int32
    other = tmp_path / "new" / "ranks.bin"  # parents created; exactly this path, no suffix added
    rc.save(other)
    assert sorted(p.name for p in other.parent.iterdir()) == ["ranks.bin"]
    np.testing.assert_array_equal(RankCounts.load(other).equal, rc.equal)


def test_batch_size_independence() -> None:
    examples, table = random_setup()
    pop = np.arange(26, dtype=np.int64) % 7
    results = [
        evaluate_table(table, examples, n_items=25, batch_size=bs, item_popularity=pop)
        for bs in (1, 7, None)
    ]
    for other in results[1:]:
        assert other.metrics == results[0].metrics
        assert other.groups == results[0].groups
        np.testing.assert_array_equal(other.ranks.greater, results[0].ranks.greater)
        np.testing.assert_array_equal(other.ranks.equal, results[0].ranks.equal)


def test_score_dtypes_agree() -> None:
    examples, table = random_setup(seed=3)
    a = evaluate_table(table, examples, n_items=25)
    b = evaluate_table(table.double(), examples, n_items=25)
    assert a.metrics == b.metrics


def test_nan_raises_naming_model_and_batch() -> None:
    examples, table = random_setup()
    table = table.clone()
    table[9, 4] = torch.nan
    with pytest.raises(SessbenchError, match=r"'table'.*NaN.*batch 2 .*example 9"):
        evaluate_table(table, examples, n_items=25, batch_size=4)
    table[9, 4] = 0.0
    table[9, 0] = torch.nan  # padding column is ignored
    evaluate_table(table, examples, n_items=25, batch_size=4)


def test_wrong_shape_raises() -> None:
    examples, table = random_setup()
    with pytest.raises(SessbenchError, match="shape"):
        evaluate_table(table[:, :-1], examples, n_items=25)


def test_empty_examples_raise() -> None:
    examples = SessionSet.from_lists([[1]]).examples()
    with pytest.raises(SessbenchError, match="no examples"):
        evaluate_table(torch.zeros(0, 4), examples, n_items=3)


def test_coverage_and_popularity() -> None:
    # 3 examples, n_items = 25, coverage_k = 2
    examples = SessionSet.from_lists([[1, 2], [3, 4], [5, 6]]).examples()
    table = torch.full((3, 26), -torch.inf)
    table[:, 0] = 100.0  # never recommended
    table[0, [1, 2]] = 1.0
    table[1, [2, 3]] = 1.0
    table[2, 7] = 1.0  # then a tie at the cut among items 4, 9, 11: lowest index wins
    table[2, [4, 9, 11]] = 0.5
    pop = np.zeros(26)
    pop[1:] = np.arange(1, 26)  # max 25
    res = evaluate_table(table, examples, n_items=25, coverage_k=2, item_popularity=pop)
    assert res.metrics["coverage@2"] == pytest.approx(5 / 25)  # items 1, 2, 3, 4, 7
    want = np.mean([(1 + 2) / 2, (2 + 3) / 2, (7 + 4) / 2]) / 25
    assert res.metrics["popularity@2"] == pytest.approx(want)
    # default cut-off names and the key is omitted without popularity
    res = evaluate_table(table, examples, n_items=25)
    assert "coverage@20" in res.metrics and "popularity@20" not in res.metrics
    # -inf items fill the remaining slots, lowest item index first: only items 1..20 get used
    assert res.metrics["coverage@20"] == pytest.approx(20 / 25)


def test_evaluate_scores_fn_and_progress() -> None:
    examples, table = random_setup()
    calls: dict[str, Any] = {"updates": 0}

    class Bar:
        def __enter__(self) -> "Bar":
            return self

        def __exit__(self, *exc: Any) -> None:
            calls["closed"] = True

        def update(self, n: int = 1) -> None:
            calls["updates"] += n

    def progress(total: int, desc: str) -> Bar:
        calls["total"], calls["desc"] = total, desc
        return Bar()

    res = evaluate_scores_fn(
        lambda b: table[torch.from_numpy(b.example_index)],
        examples,
        n_items=25,
        batch_size=8,
        progress=progress,
    )
    n_batches = examples.n_batches(8)
    assert calls == {"updates": n_batches, "total": n_batches, "desc": "evaluate", "closed": True}
    assert res.metrics == evaluate_table(table, examples, n_items=25).metrics
    assert res.predict_s > 0 and res.examples_per_s > 0


def test_auto_batch_size_bounds() -> None:
    assert auto_batch_size(10) == 4096
    assert auto_batch_size(43097) * 43098 * 4 <= 256 * 1024**2
    assert auto_batch_size(10**9) == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64])
def test_top_items_match_stable_sort(dtype: torch.dtype) -> None:
    from sessbench.evaluation import _top_items

    rng = np.random.default_rng(11)
    scores = torch.from_numpy(rng.integers(0, 4, size=(40, 31))).to(dtype)
    for k in (1, 5, 20, 30):
        got = _top_items(scores, k)
        order = torch.sort(-scores[:, 1:].double(), dim=1, stable=True).indices[:, :k] + 1
        assert torch.equal(got, torch.sort(order, dim=1).values)


def test_rank_counts_ignores_sign_of_zero_and_infinities() -> None:
    inf = torch.inf
    scores = torch.tensor([[0.0, -0.0, 0.0, inf, inf, -inf]])
    g, e = rank_counts(scores, torch.tensor([4]))
    assert (g.item(), e.item()) == (0, 1)
    g, e = rank_counts(scores, torch.tensor([1]))
    assert (g.item(), e.item()) == (2, 1)  # -0.0 == 0.0
