"""A conformance kit for model authors: `check_recommender(model_cls, **params)`.

Like scikit-learn's ``check_estimator``, it fits a model on a small synthetic split, on the CPU,
and checks the guarantees sessbench's numbers rely on. A plugin author runs it in their tests::

    from sessbench.testing import check_recommender
    report = check_recommender(MyModel, epochs=1, hidden_size=16)   # raises on a violation

A violation raises `ConformanceError` (an `AssertionError`, so pytest shows it as a failed
test) whose message names the check, what differed and how to fix it. Otherwise the returned
`KitReport` lists the checks passed and those skipped (with the reason).

The checks
----------
``fit-data``
    Fit never sees test sessions. The kit hands `fit` what the runner hands it
    (`Split.training_data()`, and the validation carve for models that select on it) and checks
    every call: no session id of the test set, no array that shares memory with a test array, no
    reference to the test sessions, no fit session later than the first test session (a test
    session copied into training keeps its id and its time), and `fit` leaves the data unchanged
    (the runs of a grid share it).
``output``
    ``score`` returns a ``torch.Tensor`` of shape ``[B, n_items + 1]`` with a floating dtype; the
    scores of the real items (columns 1..n_items) are finite or ``-inf`` (the evaluator's way to
    exclude an item; ``NaN`` cannot be ranked and ``+inf`` would tie every such item at the top);
    ``score`` leaves its input unchanged; the evaluator accepts every batch of the test split.
    Column 0 may hold anything, ``NaN`` included (see ``padding``).
``padding``
    "The padding column is never recommended" means, precisely: column 0 is *not a candidate*.
    The evaluator drops it before it ranks, counts ties or builds a list (`rank_counts`,
    `_top_items` and `_tied_top_lists` all slice ``scores[:, 1:]``), so its value never matters
    and a model may put anything there (S-POP's padding clicks land in it; several models write
    ``-inf``). What the model controls, and the kit checks, is that padding never acts as an
    item: (1) a prefix padded with extra zero columns scores the same on the real items as at its
    own width, and (2) the recommendation lists the evaluator builds from the model's scores hold
    items 1..n_items only. The report notes how often column 0 *would* reach the top 20 if it
    were ranked, for information.
``batch-company``
    A prefix scores the same alone, inside batches of other prefixes, in any position, and after
    other batches were scored (within ``rtol``/``atol``: batched matrix products may round
    differently). A model that computes anything across the rows of a batch (means, graphs over
    the batch, normalization) or learns from what it scores fails.
``determinism``
    Two fits with the same ``FitContext(seed=...)`` give bit-identical scores on the CPU. A model
    that declares ``seed_dependent = False`` (a grid runs it once for all seeds) must also give
    identical scores for two different seeds.
``fit-isolation``
    The fitted model depends on its training data and seed only: a second fit, while the caller
    holds another test set, gives identical scores (a model that finds the test sessions through
    the call stack, a global or the garbage collector fails). It shares the determinism fits and
    costs a third fit only when the first two differ.
``save-load``
    Where the model has ``save(path)`` and ``load(path, data=...)`` (every `TorchSessionModel`),
    a fresh instance that loads the saved file scores bit-identically. Skipped otherwise.

Models are fitted as the runner's ``validated`` protocol fits them (`fit_like_runner`): with the
global generators (``random``, numpy's, torch's) seeded as the runner seeds them, and restored
afterwards. Pass small hyperparameters (one epoch, small layers): the data has about 200 test
prefixes over 60 items, so every built-in model passes in a few seconds. Options of the kit
itself go in ``kit=KitOptions(...)`` (another split, skipped checks, tolerances), so they never
collide with a model's hyperparameters.
"""

from __future__ import annotations

import inspect
import logging
import random
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, is_dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from sessbench.data.sessions import Examples, Prefixes, SessionSet, Split, TrainingData
from sessbench.errors import SessbenchError
from sessbench.evaluation import evaluate_model
from sessbench.models import FitContext, SessionRecommender

__all__ = [
    "CHECKS",
    "KIT_DATASET",
    "ConformanceError",
    "KitOptions",
    "KitReport",
    "check_batch_company",
    "check_padding",
    "check_recommender",
    "check_stateless",
    "fit_like_runner",
    "probe_indices",
]

#: the kit's split: small enough that every built-in model fits in about a second
KIT_DATASET = "synthetic:n_items=60,n_sessions=400,n_intents=6,min_intents_per_item=2,max_intents_per_item=3"
CHECKS = ("fit-data", "output", "padding", "batch-company", "determinism", "fit-isolation", "save-load")
#: the validation carve of models that select on it (the runner's default)
VALIDATION_FRACTION = 0.1
TOP_K = 20
#: zero columns added to a prefix by the padding check
EXTRA_PADDING = 7


class ConformanceError(AssertionError):
    """A model broke one of the kit's checks; `check` names it, the message says what and how to fix it."""

    def __init__(self, check: str, model: str, message: str) -> None:
        super().__init__(f"check '{check}' failed for model '{model}': {message}")
        self.check = check
        self.model = model


@dataclass(frozen=True)
class KitOptions:
    """Settings of the kit (not of the model).

    dataset:    the split to check on (a `--dataset` string); `split` overrides it.
    split:      a prepared `Split` to use instead (e.g. a fixture with a planted leak).
    seed:       the fit seed; the determinism checks also use seed + 1.
    skip:       names of checks to skip (reported as skipped by the caller).
    probes:     test prefixes checked one by one (spread over the prefix lengths).
    rtol, atol: tolerance of the batch-company and padding comparisons (atol relative to the
                largest absolute finite score of the row, at least 1).
    batch_size: prefixes per scoring batch.
    """

    dataset: str = KIT_DATASET
    split: Split | None = None
    seed: int = 0
    skip: tuple[str, ...] = ()
    probes: int = 32
    rtol: float = 1e-4
    atol: float = 1e-6
    batch_size: int = 64


@dataclass
class KitReport:
    """What `check_recommender` did: checks passed, skipped (check -> why), notes, seconds."""

    model: str
    passed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __str__(self) -> str:
        lines = [f"{self.model}: {len(self.passed)} checks passed in {self.seconds:.1f}s ({', '.join(self.passed)})"]
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped.items()]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


# ---------------------------------------------------------------------------- fitting as the runner does


@contextmanager
def _seeded_globals(seed: int) -> Iterator[None]:
    """Seed random, numpy's and torch's global generators (as the runner does); restore them after."""
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


@dataclass
class Fitted:
    """A fitted model, the constructor overrides of its last fit, and that fit's data."""

    model: SessionRecommender
    overrides: dict[str, Any]
    data: TrainingData


DataHook = Callable[[TrainingData], Callable[[], None]]


def fit_like_runner(
    create: Callable[[dict[str, Any]], SessionRecommender],
    world: Split,
    seed: int,
    *,
    batch_size: int = 64,
    inspect_data: DataHook | None = None,
) -> Fitted:
    """Fit on the CPU as the `validated` protocol does: a model that selects on validation is
    fitted on the carve (choosing on its validation part), then refitted on the whole training
    set with `refit_params()`; any other model is fitted on the whole training set.

    `create(overrides)` makes a model; `inspect_data(data)` sees every TrainingData before its
    fit and returns a callable that runs after it.
    """
    with _seeded_globals(seed):  # the runner seeds them when it creates a model
        model = create({})
        if not type(model).selects_on_validation:
            data = world.training_data()
            _one_fit(model, data, FitContext(seed=seed, logger=_logger(model)), inspect_data)
            return Fitted(model, {}, data)
        carved = world.with_validation(VALIDATION_FRACTION).training_data()
        valid = carved.valid_examples()
        evaluate = None if valid is None or not len(valid) else _selection_metrics(valid, world.n_items, batch_size)
        _one_fit(model, carved, FitContext(seed=seed, evaluate=evaluate, logger=_logger(model)), inspect_data)
        overrides = dict(model.refit_params())
    with _seeded_globals(seed):
        model = create(overrides)
        data = world.training_data()
        _one_fit(model, data, FitContext(seed=seed, logger=_logger(model)), inspect_data)
    return Fitted(model, overrides, data)


def _selection_metrics(
    examples: Examples, n_items: int, batch_size: int
) -> Callable[[SessionRecommender], dict[str, float]]:
    def evaluate(model: SessionRecommender) -> dict[str, float]:
        metrics = evaluate_model(model, examples, n_items=n_items, batch_size=batch_size).metrics
        return {k: v for k, v in metrics.items() if k.startswith(("P@", "MRR@", "NDCG@"))}

    return evaluate


def _one_fit(model: SessionRecommender, data: TrainingData, ctx: FitContext, inspect_data: DataHook | None) -> None:
    after = inspect_data(data) if inspect_data is not None else None
    model.fit(data, ctx)
    if after is not None:
        after()


def _logger(model: SessionRecommender) -> logging.Logger:
    return logging.getLogger(f"sessbench.testing.{_label(model)}")


def _label(model: Any) -> str:
    cls = model if isinstance(model, type) else type(model)
    return getattr(cls, "name", "") or cls.__name__


# ---------------------------------------------------------------------------- fit-data


def _reachable(root: Any, limit: int = 10_000) -> list[Any]:
    """Objects reachable from `root` through dataclass fields, dicts, lists and tuples."""
    seen: dict[int, Any] = {}
    todo = [root]
    while todo and len(seen) < limit:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen[id(obj)] = obj
        if is_dataclass(obj) and not isinstance(obj, type):
            todo += [getattr(obj, f.name) for f in fields(obj)]
        elif isinstance(obj, dict):
            todo += list(obj.values())
        elif isinstance(obj, (list, tuple)):
            todo += list(obj)
    return list(seen.values())


def _arrays(objects: list[Any]) -> list[np.ndarray]:
    out = [o for o in objects if isinstance(o, np.ndarray)]
    out += [o.numpy() for o in objects if isinstance(o, torch.Tensor) and o.device.type == "cpu"]
    return out


def _session_sets(data: TrainingData) -> list[SessionSet]:
    return [s for s in (data.train, data.valid) if s is not None]


def fit_data_guard(world: Split, model: str) -> DataHook:
    """A hook for `fit_like_runner` that checks each TrainingData against the test set of
    `world` before the fit, and that the fit left it unchanged after."""
    test = world.test
    test_arrays = [a for a in (test.offsets, test.items, test.timestamps, test.session_ids) if a.size]
    first_test = int(test.timestamps.min()) if test.n_sessions else None

    def inspect_data(data: TrainingData) -> Callable[[], None]:
        problems = _leaks(data, world, test_arrays, first_test)
        if problems:
            raise ConformanceError(
                "fit-data", model,
                "the training data handed to fit reaches the test set: " + "; ".join(problems)
                + ". Fit must only see training (and validation) sessions: check how the split was made.",
            )
        before = [s.checksum() for s in _session_sets(data)]

        def after() -> None:
            if [s.checksum() for s in _session_sets(data)] != before:
                raise ConformanceError(
                    "fit-data", model,
                    "fit modified its training data in place (the runs of a grid share it): copy an "
                    "array before changing it.",
                )

        return after

    return inspect_data


def _leaks(data: TrainingData, world: Split, test_arrays: list[np.ndarray], first_test: int | None) -> list[str]:
    """What of the test set the TrainingData reaches (empty when nothing)."""
    problems: list[str] = []
    objects = _reachable(data)
    if any(o is world.test or o is world for o in objects):
        problems.append("it holds a reference to the test sessions")
    if any(np.may_share_memory(a, t) for a in _arrays(objects) for t in test_arrays):
        problems.append("one of its arrays shares memory with a test array")
    sets = _session_sets(data)
    ids = np.concatenate([s.session_ids for s in sets]) if sets else np.zeros(0, np.int64)
    shared = np.isin(world.test.session_ids, ids)
    if shared.any():
        problems.append(
            f"{int(shared.sum())} test session id(s) occur in it (first: {world.test.session_ids[shared][:3].tolist()})"
        )
    times = np.concatenate([s.timestamps for s in sets]) if sets else np.zeros(0, np.int64)
    if first_test is not None and len(times) and int(times.max()) > first_test:
        late = int((times > first_test).sum())
        problems.append(f"{late} of its sessions are later than the first test session")
    return problems


# ---------------------------------------------------------------------------- scoring and comparing


def _score(model: SessionRecommender, prefixes: Prefixes) -> Any:
    with model.eval_mode(), torch.no_grad():
        return model.score(prefixes)


def _score_all(model: SessionRecommender, examples: Examples, batch_size: int) -> torch.Tensor:
    parts = [torch.as_tensor(_score(model, b.prefixes())).detach().cpu() for b in examples.iter_batches(batch_size)]
    return torch.cat(parts)


def _alone(model: SessionRecommender, examples: Examples, probes: np.ndarray) -> torch.Tensor:
    """[P, n_items + 1] float64: each probe scored in a batch of its own."""
    rows = [_as_float(_score(model, examples.batch(np.array([p])).prefixes())) for p in probes]
    return torch.cat(rows)


def _as_float(scores: Any) -> torch.Tensor:
    return torch.as_tensor(scores).detach().cpu().to(torch.float64)


def _first_mismatch(
    expected: torch.Tensor, got: torch.Tensor, rtol: float, atol: float
) -> tuple[int, int, float, float] | None:
    """(row, item, expected, got) of the first real-item score outside the tolerance, or None."""
    a, b = expected[:, 1:], got[:, 1:]
    finite = torch.where(torch.isfinite(a), a.abs(), torch.zeros_like(a))
    scale = finite.amax(dim=1, keepdim=True).clamp(min=1.0)
    close = torch.isclose(b, a, rtol=rtol, atol=0.0) | ((b - a).abs() <= atol * scale) | (a == b)
    if bool(close.all()):
        return None
    row, col = (int(v) for v in torch.nonzero(~close)[0])
    return row, col + 1, float(a[row, col]), float(b[row, col])


def probe_indices(examples: Examples, n: int) -> np.ndarray:
    """Up to `n` example indices spread evenly over the prefix lengths (shortest and longest included)."""
    if len(examples) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(examples.prefix_lengths, kind="stable")
    picks = np.unique(np.linspace(0, len(order) - 1, min(n, len(order))).round().astype(np.int64))
    return order[picks]


def _describe(examples: Examples, e: int) -> str:
    return f"test prefix {e} (length {int(examples.prefix_lengths[e])})"


# ---------------------------------------------------------------------------- the checks


def check_output(model: SessionRecommender, examples: Examples, n_items: int, batch_size: int) -> torch.Tensor:
    """Score every example batch by batch and check type, shape, dtype, values and the input;
    returns the scores [N, n_items + 1] (CPU)."""
    label = _label(model)
    parts = []
    for batch in examples.iter_batches(batch_size):
        prefixes = batch.prefixes()
        items, lengths = prefixes.items.clone(), prefixes.lengths.clone()
        scores = _score(model, prefixes)
        _check_scores(label, scores, len(batch), n_items, examples, batch.example_index)
        if not (torch.equal(prefixes.items, items) and torch.equal(prefixes.lengths, lengths)):
            raise ConformanceError("output", label, "score modified the prefixes it was given: work on a copy.")
        parts.append(scores.detach().cpu())
    return torch.cat(parts)


def _check_scores(label: str, scores: Any, rows: int, n_items: int, examples: Examples, index: np.ndarray) -> None:
    fail = lambda text: ConformanceError("output", label, text)  # noqa: E731
    if not isinstance(scores, torch.Tensor):
        raise fail(f"score returned {type(scores).__name__}; return a torch.Tensor [B, n_items + 1] "
                   "(column 0 for padding, then one column per item).")
    if tuple(scores.shape) != (rows, n_items + 1):
        raise fail(f"score returned shape {tuple(scores.shape)} for a batch of {rows} prefixes over {n_items} "
                   f"items; expected [{rows}, {n_items + 1}] (column 0 for padding, then one column per item).")
    if not scores.is_floating_point():
        raise fail(f"score returned {scores.dtype} scores; return a floating dtype (float32 or float64).")
    real = scores[:, 1:].detach().cpu()
    bad = torch.isnan(real) | (real == torch.inf)
    if bool(bad.any()):
        row, col = (int(v) for v in torch.nonzero(bad)[0])
        raise fail(
            f"score returned {int(bad.any(dim=1).sum())} of {rows} rows with NaN or +inf item scores, first "
            f"{_describe(examples, int(index[row]))}, item {col + 1}: {float(real[row, col])}. Real items need "
            "finite scores (or -inf for an item that must never be recommended)."
        )


def check_lists(model: SessionRecommender, examples: Examples, n_items: int, batch_size: int) -> None:
    """The evaluator accepts the model's scores, and its top-20 lists hold real items only."""
    label = _label(model)
    try:
        result = evaluate_model(model, examples, n_items=n_items, batch_size=batch_size, recs_k=TOP_K)
    except SessbenchError as exc:
        raise ConformanceError("output", label, f"the evaluator rejected the scores: {exc}") from exc
    items = result.recs.items if result.recs is not None else np.zeros(0, np.int32)
    if len(items) and (int(items.min()) < 1 or int(items.max()) > n_items):
        raise ConformanceError(
            "padding", label,
            f"a recommendation list holds item {int(items.min())} (candidates are 1..{n_items}): column 0 must "
            "never become a recommendation.",
        )


def check_padding(
    model: SessionRecommender, examples: Examples, probes: np.ndarray, *, rtol: float = 1e-4, atol: float = 1e-6
) -> None:
    """Each probe scores the same on the real items with `EXTRA_PADDING` more zero columns."""
    alone = _alone(model, examples, probes)
    for row, p in enumerate(probes):
        pre = examples.batch(np.array([p])).prefixes()
        zeros = torch.zeros(1, EXTRA_PADDING, dtype=pre.items.dtype)
        wide = replace(pre, items=torch.cat([pre.items, zeros], dim=1))
        miss = _first_mismatch(alone[row : row + 1], _as_float(_score(model, wide)), rtol, atol)
        if miss is not None:
            _, item, a, b = miss
            raise ConformanceError(
                "padding", _label(model),
                f"{_describe(examples, int(p))} scores differently with {EXTRA_PADDING} more padding columns: item "
                f"{item} {a:.6g} at its own width, {b:.6g} padded. Padding (item 0) must not act as an item: mask "
                "positions at or beyond each prefix's length.",
            )


def check_batch_company(
    model: SessionRecommender,
    examples: Examples,
    probes: np.ndarray,
    *,
    rng: np.random.Generator,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    rounds: int = 3,
    company: int = 48,
) -> None:
    """Each probe scores the same alone, in shuffled batches of other prefixes (any position),
    and alone again after those batches; raises ConformanceError('batch-company') otherwise."""
    alone = _alone(model, examples, probes)
    others = np.setdiff1d(np.arange(len(examples)), probes)
    where = {int(p): row for row, p in enumerate(probes)}
    for _ in range(rounds):
        mates = rng.choice(others, size=min(company, len(others)), replace=False)
        order = rng.permutation(np.concatenate([probes, mates]))
        cut = int(rng.integers(1, len(order))) if len(order) > 1 else len(order)
        for chunk in (order[:cut], order[cut:]):
            if len(chunk):
                _compare_chunk(model, examples, chunk, alone, where, rtol, atol)
    check_stateless(model, examples, probes, alone, rtol=rtol, atol=atol)


def check_stateless(
    model: SessionRecommender, examples: Examples, probes: np.ndarray, alone: torch.Tensor | None = None,
    *, rtol: float = 1e-4, atol: float = 1e-6,
) -> None:
    """Each probe scores the same when scored again (`alone`: its earlier scores, else scored now):
    the 'any position' of batch-company includes later batches. Raises ConformanceError otherwise."""
    if alone is None:
        alone = _alone(model, examples, probes)
    miss = _first_mismatch(alone, _alone(model, examples, probes), rtol, atol)
    if miss is not None:
        row, item, a, b = miss
        raise ConformanceError(
            "batch-company", _label(model),
            f"{_describe(examples, int(probes[row]))} scores differently when scored again after other "
            f"prefixes: item {item} {a:.6g}, then {b:.6g}. Scoring must not change the model (no learning or "
            "caching from what it scores).",
        )


def _compare_chunk(
    model: SessionRecommender, examples: Examples, chunk: np.ndarray, alone: torch.Tensor,
    where: dict[int, int], rtol: float, atol: float,
) -> None:
    scores = _as_float(_score(model, examples.batch(chunk).prefixes()))
    positions = np.array([i for i, e in enumerate(chunk) if int(e) in where], dtype=np.int64)
    rows = np.array([where[int(chunk[i])] for i in positions], dtype=np.int64)
    miss = _first_mismatch(alone[rows], scores[positions], rtol, atol)
    if miss is not None:
        row, item, a, b = miss
        raise ConformanceError(
            "batch-company", _label(model),
            f"{_describe(examples, int(chunk[positions[row]]))} scores differently alone and at position "
            f"{int(positions[row])} of a batch of {len(chunk)}: item {item} {a:.6g} alone, {b:.6g} in the batch "
            f"(rtol {rtol:g}). A prefix's scores must depend on its own input only: compute nothing across the "
            "rows of a batch (means, graphs over the batch, normalization).",
        )


def _other_test(world: Split) -> Split:
    """`world` with another test set of the same shape: items shifted by one, new session ids."""
    test = world.test
    shifted = (test.items.astype(np.int64) % world.n_items + 1).astype(np.int32)
    top = max([int(s.session_ids.max()) for s in (world.train, test) if s.n_sessions] + [0])
    other = SessionSet(test.offsets.copy(), shifted, test.timestamps.copy(), test.session_ids + top + 1)
    return replace(world, test=other)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a[:, 1:], b[:, 1:])


def check_determinism(
    create: Callable[[dict[str, Any]], SessionRecommender],
    world: Split,
    first: torch.Tensor,
    seed: int,
    seed_dependent: bool,
    label: str,
    opts: KitOptions,
) -> None:
    """Fit again (another test set held by the caller; another seed for a seed-free model) and
    compare with `first`; on a difference, fit once more to tell which check failed."""
    examples = world.test_examples()

    def scores_of(w: Split, s: int) -> torch.Tensor:
        fitted = fit_like_runner(create, w, s, batch_size=opts.batch_size)
        return _score_all(fitted.model, examples, opts.batch_size)

    second_seed = seed if seed_dependent else seed + 1
    if _same(first, scores_of(_other_test(world), second_seed)):
        return
    if not _same(first, scores_of(world, seed)):
        raise ConformanceError(
            "determinism", label,
            f"two fits with FitContext(seed={seed}) on the CPU give different scores. Draw every random number "
            "from ctx.rng() / ctx.torch_generator() (or the global generators the runner seeds), never from "
            "fresh entropy, the clock or unordered iteration.",
        )
    if not seed_dependent and not _same(first, scores_of(world, second_seed)):
        raise ConformanceError(
            "determinism", label,
            f"the model declares seed_dependent = False (a grid runs it once for all seeds), but seeds {seed} and "
            f"{second_seed} give different scores: set seed_dependent = True, or draw nothing at random.",
        )
    raise ConformanceError(
        "fit-isolation", label,
        "the fitted model changes when the caller holds another test set (same training data and seed): fit "
        "reads test sessions from outside its TrainingData (the call stack, a global, the garbage collector).",
    )


def check_save_load(
    fitted: Fitted, create: Callable[[dict[str, Any]], SessionRecommender], examples: Examples,
    first: torch.Tensor, seed: int, batch_size: int,
) -> str | None:
    """Save, load into a fresh instance, compare scores; returns why it was skipped (or None)."""
    model = fitted.model
    if not (callable(getattr(model, "save", None)) and callable(getattr(model, "load", None))):
        return "the model has no save/load"
    with tempfile.TemporaryDirectory(prefix="sessbench-kit-") as tmp:
        path = Path(tmp) / "model.pt"
        model.save(path)
        with _seeded_globals(seed + 12345):  # a fresh instance must not rely on the fit's random state
            fresh = create(fitted.overrides)
        if "data" in inspect.signature(fresh.load).parameters:
            fresh.load(path, data=fitted.data)
        else:
            fresh.load(path)
    if not _same(first, _score_all(fresh, examples, batch_size)):
        raise ConformanceError(
            "save-load", _label(model),
            "a fresh instance that loaded the saved file scores differently from the saved model: save "
            "everything scoring depends on (weights, buffers, item tables).",
        )
    return None


def _column0_note(scores: torch.Tensor) -> str | None:
    real = scores[:, 1:].to(torch.float64)
    kth = torch.topk(real, min(TOP_K, real.shape[1]), dim=1).values[:, -1]
    share = float((scores[:, 0].to(torch.float64) > kth).double().mean()) if len(scores) else 0.0
    if share == 0.0:
        return None
    return (f"column 0 would be in the top {TOP_K} of {100 * share:.0f}% of the test prefixes if it were ranked; "
            "harmless, the evaluator never ranks it (see the 'padding' check)")


# ---------------------------------------------------------------------------- entry point


@lru_cache(maxsize=4)
def _generated(dataset: str) -> Split:
    from sessbench.data.registry import load_dataset, parse_dataset

    return load_dataset(parse_dataset(dataset)).split


def kit_split(opts: KitOptions) -> Split:
    """The split to check on: a private copy (a model that writes into its data cannot spoil the
    next check's data)."""
    if opts.split is not None:
        return opts.split
    split = _generated(opts.dataset)
    copy = lambda s: None if s is None else SessionSet(s.offsets.copy(), s.items.copy(), s.timestamps.copy(), s.session_ids.copy())  # noqa: E731
    return replace(split, train=copy(split.train), test=copy(split.test), valid=copy(split.valid))


def _resolve(model_cls: type[SessionRecommender] | str, params: dict[str, Any]) -> tuple[type[SessionRecommender], dict[str, Any]]:
    if isinstance(model_cls, str):
        from sessbench.models import get_model

        spec = get_model(model_cls)
        return spec.cls, {**spec.defaults, **params}
    if not (isinstance(model_cls, type) and issubclass(model_cls, SessionRecommender)):
        raise TypeError(f"check_recommender needs a SessionRecommender subclass or a registered name, got {model_cls!r}")
    return model_cls, params


def check_recommender(
    model_cls: type[SessionRecommender] | str, /, kit: KitOptions | None = None, **params: Any
) -> KitReport:
    """Fit `model_cls(**params)` on a small synthetic split (CPU) and run every check (see the
    module docstring). `model_cls` may also be a registered name (its registered defaults, then
    `params`). Raises `ConformanceError` naming the first failed check; returns a `KitReport`."""
    opts = kit or KitOptions()
    unknown = set(opts.skip) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown checks to skip: {sorted(unknown)}; the checks are {', '.join(CHECKS)}")
    cls, params = _resolve(model_cls, params)
    label = _label(cls)
    report = KitReport(label, skipped={c: "skipped by the caller" for c in opts.skip})
    start = time.perf_counter()
    world = kit_split(opts)
    examples = world.test_examples()

    def create(overrides: dict[str, Any]) -> SessionRecommender:
        return cls(**{**params, **overrides})

    def run(check: str, body: Callable[[], str | None]) -> None:
        if check in opts.skip:
            return
        why = body()
        if why is None:
            report.passed.append(check)
        else:
            report.skipped[check] = why

    guard = None if "fit-data" in opts.skip else fit_data_guard(world, label)
    fitted = fit_like_runner(create, world, opts.seed, batch_size=opts.batch_size, inspect_data=guard)
    run("fit-data", lambda: None)
    model = fitted.model
    first = _score_all(model, examples, opts.batch_size) if "output" in opts.skip else None

    def output() -> None:
        nonlocal first
        first = check_output(model, examples, world.n_items, opts.batch_size)
        check_lists(model, examples, world.n_items, opts.batch_size)

    run("output", output)
    assert first is not None
    probes = probe_indices(examples, opts.probes)
    if "batch-company" not in opts.skip:  # first, or a stateful model would fail 'padding' instead
        check_stateless(model, examples, probes, rtol=opts.rtol, atol=opts.atol)
    run("padding", lambda: check_padding(model, examples, probes, rtol=opts.rtol, atol=opts.atol))
    rng = np.random.default_rng([opts.seed, 2024])
    run("batch-company", lambda: check_batch_company(model, examples, probes, rng=rng, rtol=opts.rtol, atol=opts.atol))
    if not {"determinism", "fit-isolation"} <= set(opts.skip):
        check_determinism(create, world, first, opts.seed, bool(cls.seed_dependent), label, opts)
        run("determinism", lambda: None)
        run("fit-isolation", lambda: None)
    run("save-load", lambda: check_save_load(fitted, create, examples, first, opts.seed, opts.batch_size))
    note = _column0_note(first)
    if note:
        report.notes.append(note)
    report.seconds = time.perf_counter() - start
    return report
