"""Full-ranking evaluation: P@K (hit rate), MRR@K and NDCG@K with exact tie handling.

Every example is ranked against all candidate items 1..n_items (column 0 is padding and is
never a candidate). Instead of ranks, the evaluator keeps two counts per example: how many
candidates score strictly higher than the target (`greater`) and how many *other* candidates
score exactly the same (`equal`). Under uniformly random tie-breaking the target's rank is
`greater + 1 + U` with U uniform on {0..equal}, and every metric below is the exact expected
value under that distribution. Models that produce many equal scores (POP, S-POP, Item-KNN) are
therefore neither flattered nor punished by whatever order a sort happens to pick.

The per-example counts are kept (`RankCounts`) so reports can run paired significance tests
and split results by prefix length (the paper's short/long analysis) without rescoring.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from os import PathLike
from typing import Any, Callable, Sequence

import numpy as np
import torch

from sessbench.atomic import atomic_file
from sessbench.data.sessions import Examples, Prefixes
from sessbench.errors import SessbenchError
from sessbench.models import SessionRecommender
from sessbench.progress import ProgressFactory, open_bar

KS: tuple[int, ...] = (5, 10, 20)
#: short group: prefix length <= SHORT_MAX_LENGTH; long group: longer prefixes
SHORT_MAX_LENGTH = 5

#: the auto batch size keeps one batch of float32 scores under this many bytes
SCORE_BYTES_BUDGET = 256 * 1024**2
MAX_AUTO_BATCH = 4096


# ---------------------------------------------------------------------------- expected metrics


def _weight(kind: str, ranks: np.ndarray) -> np.ndarray:
    """The per-rank gain w(r) of a metric (float64), for integer ranks r >= 1."""
    r = ranks.astype(np.float64)
    if kind == "hit":
        return np.ones_like(r)
    if kind == "rr":
        return 1.0 / r
    if kind == "ndcg":
        return 1.0 / np.log2(r + 1.0)
    raise ValueError(f"unknown metric kind {kind!r}")


def _cumulative(kind: str, upto: int) -> np.ndarray:
    """C[r] = w(1) + ... + w(r), C[0] = 0; float64 [upto + 1]."""
    table = np.zeros(upto + 1, dtype=np.float64)
    if upto > 0:
        np.cumsum(_weight(kind, np.arange(1, upto + 1)), out=table[1:])
    return table


def _expected(kind: str, greater: np.ndarray, equal: np.ndarray, k: int | None) -> np.ndarray:
    """E[w(rank) * (rank <= k)] per example, rank uniform on greater+1 .. greater+equal+1.

    Computed as (C[min(g+e+1, k)] - C[min(g, k)]) / (e+1) with the cumulative table C, so the
    cost is O(n + k) whatever the number of ties. Examples without ties take w(g+1) directly,
    which keeps them exact (no cancellation in the table difference).
    """
    g = np.asarray(greater, dtype=np.int64)
    e = np.asarray(equal, dtype=np.int64)
    if g.shape != e.shape:
        raise ValueError(f"greater and equal must have the same shape, got {g.shape} and {e.shape}")
    if g.size == 0:
        return np.zeros(g.shape, dtype=np.float64)
    if g.min() < 0 or e.min() < 0:
        raise ValueError("greater and equal counts must be non-negative")
    lo = g
    hi = g + e + 1
    if k is not None:
        if k < 1:
            raise ValueError(f"cut-off k must be >= 1, got {k}")
        lo = np.minimum(lo, k)
        hi = np.minimum(hi, k)
    table = _cumulative(kind, int(hi.max()))
    spread = (table[hi] - table[lo]) / (e + 1).astype(np.float64)
    direct = _weight(kind, g + 1)
    if k is not None:
        direct = np.where(g < k, direct, 0.0)
    return np.where(e == 0, direct, spread)


def metrics_from_counts(
    greater: np.ndarray | Sequence[int],
    equal: np.ndarray | Sequence[int],
    ks: Sequence[int] = KS,
) -> dict[str, float]:
    """Mean expected P@K (hit rate), MRR@K and NDCG@K over the examples, as fractions.

    Keys come in the order P@K, MRR@K, NDCG@K for each K in `ks`. No examples gives `{}`
    (a mean over nothing is not a number a report should print).
    """
    g = np.asarray(greater, dtype=np.int64)
    e = np.asarray(equal, dtype=np.int64)
    if g.size == 0:
        return {}
    out: dict[str, float] = {}
    for k in ks:
        out[f"P@{k}"] = float(np.mean(_expected("hit", g, e, k)))
        out[f"MRR@{k}"] = float(np.mean(_expected("rr", g, e, k)))
        out[f"NDCG@{k}"] = float(np.mean(_expected("ndcg", g, e, k)))
    return out


# ---------------------------------------------------------------------------- per-example counts


@dataclass(eq=False)
class RankCounts:
    """Per-example tie-aware rank information, kept for paired significance tests.

    greater:       int32 [n], candidate items scoring strictly higher than the target.
    equal:         int32 [n], OTHER candidate items scoring exactly the same as the target.
    prefix_length: int32 [n], the length of each example's input prefix.
    """

    greater: np.ndarray
    equal: np.ndarray
    prefix_length: np.ndarray

    def __post_init__(self) -> None:
        self.greater = np.ascontiguousarray(np.asarray(self.greater, dtype=np.int32))
        self.equal = np.ascontiguousarray(np.asarray(self.equal, dtype=np.int32))
        self.prefix_length = np.ascontiguousarray(np.asarray(self.prefix_length, dtype=np.int32))
        n = len(self.greater)
        if self.greater.ndim != 1 or len(self.equal) != n or len(self.prefix_length) != n:
            raise ValueError("RankCounts needs three 1-d arrays of the same length")

    def __len__(self) -> int:
        return len(self.greater)

    # -- persistence
    def save(self, path: str | PathLike[str]) -> None:
        """Write a compressed .npz at exactly `path` (no suffix is added).

        Parent folders are created, and the file appears atomically (written beside it, then
        renamed) so an interrupted run never leaves a truncated file that looks finished.
        """
        with atomic_file(path) as fh:
            np.savez_compressed(fh, greater=self.greater, equal=self.equal, prefix_length=self.prefix_length)

    @classmethod
    def load(cls, path: str | PathLike[str]) -> "RankCounts":
        """Read what `save` wrote (no pickles are ever loaded)."""
        with np.load(path, allow_pickle=False) as data:
            return cls(data["greater"], data["equal"], data["prefix_length"])

    # -- views
    def select(self, mask: np.ndarray) -> "RankCounts":
        """The examples where `mask` is True (or at the given indices), in order."""
        return RankCounts(self.greater[mask], self.equal[mask], self.prefix_length[mask])

    def short_mask(self) -> np.ndarray:
        return self.prefix_length <= SHORT_MAX_LENGTH

    # -- expected per-example metrics (float64 [n])
    def reciprocal_rank(self, k: int | None = None) -> np.ndarray:
        """Expected reciprocal rank per example; 0 beyond rank k when k is given."""
        return _expected("rr", self.greater, self.equal, k)

    def hit(self, k: int) -> np.ndarray:
        """Probability that the target is in the top k (P@k per example)."""
        return _expected("hit", self.greater, self.equal, k)

    def ndcg(self, k: int | None = None) -> np.ndarray:
        """Expected NDCG (single relevant item: 1/log2(rank+1)); 0 beyond rank k when given."""
        return _expected("ndcg", self.greater, self.equal, k)

    def metrics(self, ks: Sequence[int] = KS) -> dict[str, float]:
        return metrics_from_counts(self.greater, self.equal, ks)


def _work_buffer(buffer: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """A float [B, n_items] scratch tensor for 0/1 masks, reused across batches.

    Writing comparison results into a preallocated float tensor and summing it is several
    times faster on CPU than materialising a fresh bool mask and summing it as integers (the
    fresh allocation's page faults and the integer reduction dominate). Sums of 0/1 values are
    exact in float32 below 2**24 items; float64 is used beyond that, and for float64 scores
    (comparing float64 into a float32 output takes a slow casting path).
    """
    rows, cols = like.shape
    wide = like.dtype == torch.float64 or cols >= 2**24
    dtype = torch.float64 if wide else torch.float32
    if (
        buffer is None
        or buffer.device != like.device
        or buffer.dtype != dtype
        or buffer.shape[0] < rows
        or buffer.shape[1] != cols
    ):
        return torch.empty(rows, cols, dtype=dtype, device=like.device)
    return buffer[:rows]


def rank_counts(
    scores: torch.Tensor, targets: torch.Tensor, *, buffer: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(greater, equal) int64 [B] for one batch of scores [B, n_items + 1] and targets [B].

    Column 0 (padding) is never a candidate, whatever its score. Targets must be in
    1..n_items. NaN is not checked here (the evaluator checks it once per batch).
    `buffer`: optional scratch from `_work_buffer` (the evaluator reuses one across batches).
    """
    if scores.dim() != 2 or targets.dim() != 1 or scores.shape[0] != targets.shape[0]:
        raise ValueError(
            f"rank_counts needs scores [B, n_items+1] and targets [B], got "
            f"{tuple(scores.shape)} and {tuple(targets.shape)}"
        )
    targets = targets.to(device=scores.device, dtype=torch.int64)
    if targets.numel() and (int(targets.min()) < 1 or int(targets.max()) >= scores.shape[1]):
        raise ValueError(f"targets must be item indices in 1..{scores.shape[1] - 1}")
    target_score = scores.gather(1, targets.unsqueeze(1))
    candidates = scores[:, 1:]
    work = _work_buffer(buffer, candidates)
    greater = torch.gt(candidates, target_score, out=work).sum(dim=1).long()
    at_least = torch.ge(candidates, target_score, out=work).sum(dim=1).long()
    return greater, at_least - greater - 1  # the target equals itself


def _top_items(scores: torch.Tensor, k: int, *, buffer: torch.Tensor | None = None) -> torch.Tensor:
    """int64 [B, k]: the k best candidate items of each row, as a set sorted by item index.

    Ties at the cut-off go to the lowest item indices, so the set does not depend on the
    batch size, the device or torch.topk's internal order.
    """
    candidates = scores[:, 1:]
    values, index = torch.topk(candidates, k, dim=1)
    kth = values[:, -1:]
    work = _work_buffer(buffer, candidates)
    straddle = torch.ge(candidates, kth, out=work).sum(dim=1) > k
    if bool(straddle.any()):
        # topk's first n_above entries are the items strictly above the cut-off; the other
        # slots go to the lowest-index items tied with it: weight tied item j by (N - j) and
        # take the largest weights.
        n_cols = candidates.shape[1]
        n_above = (values > kth).sum(dim=1, keepdim=True)
        weights = torch.arange(n_cols, 0, -1, dtype=work.dtype, device=work.device)
        tied = torch.eq(candidates, kth, out=work).mul_(weights)
        lowest_tied = torch.topk(tied, k, dim=1).indices
        slot = torch.arange(k, device=index.device).unsqueeze(0)
        fill = lowest_tied.gather(1, (slot - n_above).clamp_(min=0))
        fixed = torch.where(slot < n_above, index, fill)
        index = torch.where(straddle.unsqueeze(1), fixed, index)
    return torch.sort(index, dim=1).values + 1


def _tied_top_lists(
    scores: torch.Tensor, k: int, cap: int, *, buffer: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k lists that keep every item tied with the k-th score, so they evaluate exactly.

    Returns (items int64 [B, W] with 0 after each row's end, values [B, W], length int64 [B],
    n_tied int64 [B]): each row lists the items scoring >= its k-th best score, by score
    descending then item index ascending, at most `cap` of them; n_tied is how many items score
    >= the k-th score (a row is truncated when n_tied > cap, keeping the lowest item indices of
    the tie group, so the lists do not depend on batch size or device).
    """
    candidates = scores[:, 1:]
    n_cols = candidates.shape[1]
    k = min(k, n_cols)
    cap = max(min(cap, n_cols), k)
    values, index = torch.topk(candidates, k, dim=1)
    kth = values[:, -1:]
    work = _work_buffer(buffer, candidates)
    n_tied = torch.ge(candidates, kth, out=work).sum(dim=1).long()
    length = n_tied.clamp(max=cap)
    straddle = n_tied > k
    if bool(straddle.any()):
        rows = torch.nonzero(straddle).squeeze(1)
        n_above = (values[rows] > kth[rows]).sum(dim=1, keepdim=True)
        # lowest-index items of each tie group: weight tied item j by (N - j), take the largest
        weights = torch.arange(n_cols, 0, -1, dtype=work.dtype, device=work.device)
        tied = torch.eq(candidates[rows], kth[rows], out=work[: len(rows)]).mul_(weights)
        width = int(length.max())
        lowest_tied = torch.topk(tied, width, dim=1).indices
        slot = torch.arange(width, device=index.device).unsqueeze(0)
        above = index[rows].gather(1, slot.clamp(max=k - 1).expand(len(rows), -1))
        fill = lowest_tied.gather(1, (slot - n_above).clamp_(min=0))
        wide = torch.nn.functional.pad(index, (0, width - k))
        wide[rows] = torch.where(slot < n_above, above, fill)
        index = wide
    width = index.shape[1]
    valid = torch.arange(width, device=index.device).unsqueeze(0) < length.unsqueeze(1)
    items = torch.where(valid, index + 1, torch.zeros_like(index))
    # order: score descending, then item index ascending (two stable sorts); padding goes last
    order = torch.sort(torch.where(valid, items, torch.full_like(items, n_cols + 1)), dim=1, stable=True).indices
    items = items.gather(1, order)
    vals = scores.gather(1, items)
    if not vals.is_floating_point():
        vals = vals.double()
    keyed = torch.where(items > 0, vals, torch.full_like(vals, -math.inf))
    order = torch.sort(keyed, dim=1, descending=True, stable=True).indices
    items = items.gather(1, order)
    return items, vals.gather(1, order), length, n_tied


@dataclass(eq=False)
class TopLists:
    """Tie-complete top-k lists of every example (see `_tied_top_lists`), in example order.

    Ragged in CSR form: example e lists items[offsets[e]:offsets[e+1]] (item indices 1..n_items)
    with their scores. Scores keep the model's precision (float32, or float64 for float64
    scores) so that ties and order re-evaluate exactly. n_tied[e] > cap marks a truncated row.
    """

    k: int
    cap: int
    offsets: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    n_tied: np.ndarray

    @property
    def truncated(self) -> np.ndarray:
        return self.n_tied > np.diff(self.offsets)


class _TopListCollector:
    """Gathers `_tied_top_lists` batch by batch, in example order (the evaluator's batches are
    never shuffled): memory is the lists themselves (about N x k)."""

    def __init__(self, k: int, cap: int) -> None:
        self.k, self.cap = k, cap
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, scores: torch.Tensor, buffer: torch.Tensor | None) -> None:
        items, vals, length, n_tied = _tied_top_lists(scores, self.k, self.cap, buffer=buffer)
        wide = scores.dtype == torch.float64 or not scores.is_floating_point()
        vals = vals.to(torch.float64 if wide else torch.float32)
        valid = items > 0
        self.parts.append((length.cpu().numpy(), n_tied.cpu().numpy(),
                           items[valid].to(torch.int32).cpu().numpy(), vals[valid].cpu().numpy()))

    def result(self) -> TopLists:
        length, n_tied, items, vals = (np.concatenate(column) for column in zip(*self.parts))
        offsets = np.zeros(len(length) + 1, dtype=np.int64)
        np.cumsum(length, out=offsets[1:])
        return TopLists(self.k, self.cap, offsets, items, vals, n_tied)


# ---------------------------------------------------------------------------- evaluation


@dataclass(eq=False)
class EvaluationResult:
    """What one evaluation produced.

    metrics:    all examples: P@K, MRR@K, NDCG@K for K in ks, plus coverage@C and
                popularity@C (the latter only when item popularity was given); fractions.
    groups:     {"short": {...}, "long": {...}} with the P/MRR/NDCG keys; `{}` for an empty group.
    n_examples: {"all": n, "short": n_short, "long": n_long}.
    ranks:      the per-example counts (for significance tests and regrouping).
    predict_s:  wall seconds spent scoring and ranking (batch gathering excluded).
    recs:       tie-complete top-k lists when `recs_k` was given (sessbench.recs saves them).
    """

    metrics: dict[str, float]
    groups: dict[str, dict[str, float]]
    n_examples: dict[str, int]
    ranks: RankCounts
    predict_s: float
    examples_per_s: float
    recs: TopLists | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (the per-example ranks are left out; save them separately)."""
        return {
            "metrics": dict(self.metrics),
            "groups": {g: dict(m) for g, m in self.groups.items()},
            "n_examples": dict(self.n_examples),
            "predict_s": self.predict_s,
            "examples_per_s": self.examples_per_s,
        }


def auto_batch_size(n_items: int, budget_bytes: int = SCORE_BYTES_BUDGET) -> int:
    """Largest batch whose float32 score matrix fits the budget, within [1, MAX_AUTO_BATCH]."""
    return int(min(MAX_AUTO_BATCH, max(1, budget_bytes // ((n_items + 1) * 4))))


def evaluate_model(
    model: SessionRecommender,
    examples: Examples,
    *,
    n_items: int,
    ks: Sequence[int] = KS,
    batch_size: int | None = None,
    item_popularity: np.ndarray | None = None,
    progress: ProgressFactory | None = None,
    coverage_k: int = 20,
    recs_k: int | None = None,
    recs_cap: int | None = None,
) -> EvaluationResult:
    """Evaluate a model on `examples` by full ranking (see `evaluate_scores_fn`).

    Scoring runs inside `model.eval_mode()` and `torch.no_grad()`, on `model.device`.
    """
    name = getattr(model, "name", "") or type(model).__name__
    with model.eval_mode():
        return evaluate_scores_fn(
            model.score,
            examples,
            n_items=n_items,
            ks=ks,
            batch_size=batch_size,
            item_popularity=item_popularity,
            progress=progress,
            coverage_k=coverage_k,
            device=model.device,
            name=name,
            recs_k=recs_k,
            recs_cap=recs_cap,
        )


def evaluate_scores_fn(
    score_fn: Callable[[Prefixes], torch.Tensor],
    examples: Examples,
    *,
    n_items: int,
    ks: Sequence[int] = KS,
    batch_size: int | None = None,
    item_popularity: np.ndarray | None = None,
    progress: ProgressFactory | None = None,
    coverage_k: int = 20,
    device: torch.device | str = "cpu",
    name: str = "score_fn",
    recs_k: int | None = None,
    recs_cap: int | None = None,
) -> EvaluationResult:
    """Evaluate a scoring function `batch -> float [B, n_items + 1]` by full ranking.

    Batches are taken in stored order (never shuffled) so results are reproducible, and only
    B x (n_items + 1) scores (plus one float scratch of the same size) are alive at a time.
    `name` identifies the model in errors. `recs_k` also keeps each example's top-`recs_k`
    list, completed with the items tied at the cut-off up to `recs_cap` items (default
    10 x recs_k), from the same scores (`EvaluationResult.recs`).
    """
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive cut-offs, got {ks}")
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    if coverage_k < 1:
        raise ValueError(f"coverage_k must be >= 1, got {coverage_k}")
    if recs_k is not None and recs_k < 1:
        raise ValueError(f"recs_k must be >= 1, got {recs_k}")
    n = len(examples)
    if n == 0:
        raise SessbenchError(
            f"cannot evaluate model '{name}': there are no examples (every session has fewer "
            "than 2 clicks?). Check the split the evaluation was run on."
        )
    targets = examples.targets
    if int(targets.min()) < 1 or int(targets.max()) > n_items:
        raise SessbenchError(
            f"evaluation targets must be item indices in 1..{n_items}, found "
            f"{int(targets.min())}..{int(targets.max())}; the examples do not belong to a "
            f"dataset with n_items={n_items}."
        )
    pop_norm: torch.Tensor | None = None
    if item_popularity is not None:
        pop = np.asarray(item_popularity, dtype=np.float64)
        if pop.shape != (n_items + 1,):
            raise ValueError(f"item_popularity must have shape ({n_items + 1},), got {pop.shape}")
        pop_max = pop[1:].max()
        pop_norm = torch.from_numpy(pop / pop_max if pop_max > 0 else np.zeros_like(pop))

    bs = auto_batch_size(n_items) if batch_size is None else int(batch_size)
    if bs < 1:
        raise ValueError(f"batch_size must be >= 1, got {bs}")
    device = torch.device(device)
    k_top = min(coverage_k, n_items)

    greater = np.empty(n, dtype=np.int32)
    equal = np.empty(n, dtype=np.int32)
    covered = torch.zeros(n_items + 1, dtype=torch.bool)
    popularity = np.empty(n, dtype=np.float64)
    predict_s = 0.0
    work: torch.Tensor | None = None
    collector = None
    if recs_k is not None:
        cap = 10 * recs_k if recs_cap is None else int(recs_cap)
        if cap < recs_k:
            raise ValueError(f"recs_cap must be >= recs_k ({recs_k}), got {cap}")
        collector = _TopListCollector(recs_k, cap)

    with open_bar(progress, examples.n_batches(bs), "evaluate") as bar, torch.no_grad():
        for b, batch in enumerate(examples.iter_batches(bs)):
            rows = batch.example_index
            start = time.perf_counter()
            scores = score_fn(batch.prefixes().to(device))  # the targets stay here
            scores = _check_scores(scores, len(batch), n_items, name, b, rows)
            work = _work_buffer(work, scores[:, 1:])  # allocated once (re-sliced for the last batch)
            g, e = rank_counts(scores, batch.targets.to(scores.device), buffer=work)
            top = _top_items(scores, k_top, buffer=work)
            g_np = g.cpu().numpy()
            e_np = e.cpu().numpy()
            top_cpu = top.cpu()
            predict_s += time.perf_counter() - start  # saving lists (below) is not prediction
            if collector is not None:
                collector.add(scores, work)

            greater[rows] = g_np
            equal[rows] = e_np
            covered[top_cpu.flatten()] = True
            if pop_norm is not None:
                popularity[rows] = pop_norm[top_cpu].mean(dim=1).numpy()
            bar.update(1)

    ranks = RankCounts(greater, equal, examples.prefix_lengths)
    metrics = metrics_from_counts(greater, equal, ks)
    metrics[f"coverage@{coverage_k}"] = float(covered[1:].sum()) / n_items
    if pop_norm is not None:
        metrics[f"popularity@{coverage_k}"] = float(np.mean(popularity))
    short = ranks.short_mask()
    groups = {
        "short": ranks.select(short).metrics(ks),
        "long": ranks.select(~short).metrics(ks),
    }
    n_short = int(short.sum())
    return EvaluationResult(
        metrics=metrics,
        groups=groups,
        n_examples={"all": n, "short": n_short, "long": n - n_short},
        ranks=ranks,
        predict_s=predict_s,
        examples_per_s=n / predict_s if predict_s > 0 else math.inf,
        recs=None if collector is None else collector.result(),
    )


def _check_scores(
    scores: Any, batch_len: int, n_items: int, name: str, batch_no: int, rows: np.ndarray
) -> torch.Tensor:
    """Reject scores that cannot be ranked, naming the model and the batch."""
    if isinstance(scores, np.ndarray):
        scores = torch.from_numpy(scores)
    if not isinstance(scores, torch.Tensor):
        raise SessbenchError(
            f"model '{name}' returned {type(scores).__name__} from score(); expected a "
            f"torch.Tensor of shape [B, n_items + 1]."
        )
    where = f"evaluation batch {batch_no} (examples {int(rows[0])}..{int(rows[-1])})"
    expected = (batch_len, n_items + 1)
    if tuple(scores.shape) != expected:
        raise SessbenchError(
            f"model '{name}' returned scores of shape {tuple(scores.shape)} for {where}; "
            f"expected {list(expected)} (column 0 for padding, then one per item)."
        )
    if scores.is_complex() or scores.dtype == torch.bool:
        raise SessbenchError(f"model '{name}' returned {scores.dtype} scores for {where}; expected real numbers.")
    if scores.is_floating_point():
        # max propagates NaN, and a row reduction is much cheaper than a [B, n_items] mask
        nan_rows = torch.isnan(scores[:, 1:].amax(dim=1))
        if bool(nan_rows.any()):
            first = int(rows[int(torch.nonzero(nan_rows)[0, 0])])
            raise SessbenchError(
                f"model '{name}' returned NaN scores for {int(nan_rows.sum())} of {batch_len} "
                f"examples in {where}, first at example {first}. NaN cannot be ranked: check "
                "the model for numerical problems, or give items it cannot score -inf."
            )
    return scores
