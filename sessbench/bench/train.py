"""The training benchmark: how fast a model trains and evaluates, against a floor.

`sessbench bench train --model M --shape yoochoose64` generates synthetic sessions of the
YOOCHOOSE 1/64 shape (369,859 training prefixes, 37,483 items; lengths 2 + a negative binomial
of mean 6.16 as Table 1, heavy-tailed item popularity, revisits), then in one process:

* a torch model (a `TorchSessionModel`) trains `batches` batches through its own public
  pieces (`train_batches`, `loss`, `make_optimizer`; the network is built by a zero-epoch
  `fit`, so it is exactly what a run trains) and scores `batches` evaluation batches with
  `score` plus the evaluator's rank counting;
* a model without the torch loop is fitted once (`fit_s`) and scores `batches` batches;
* the **floors** are measured with the same shapes, device and threads: the work no
  full-ranking model trained with a full softmax can avoid. Training floor: session vectors
  [batch, d] times the item table [n_items + 1, d], the backward of that product (gradients of
  the vectors and of the table) and the model's optimizer (`make_optimizer`) updating the table.
  Evaluation floor: the scoring product for an evaluation batch (a fresh [B, n_items + 1]
  output, as `score` returns) and the ranking of the targets (`rank_counts`). d is the width of
  the model's item table (100 for models without one).

Training also reports a diagnostic **blocked floor**: the same training floor with the two
item-table products done block by block of items into reused buffers (`sessbench.blocked_products`),
which is faster than the plain products on CPUs where MKL handles these shapes poorly. A model
that blocks its own products (SR-GNN does) gains against the plain floor; the blocked ratio
shows how much of its ratio is left without that gain.

A ratio of 1 means a model costs no more than its unavoidable dense work, so the ratios mean the
same on any machine; each floor is measured before and after the model and the faster of the two
is kept (the ratios err on the low side). Throughputs count prefixes (sequences) per second.
Timing starts after `warmup` untimed batches; training times include making the batches (the
training loop pays for them too), evaluation times exclude gathering them (as the evaluator's
`predict_s` does).
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable

import numpy as np
import torch

from sessbench.blocked_products import scores_into, table_grad_into
from sessbench.data.sessions import Batch, Examples, SessionSet, TrainingData
from sessbench.errors import ConfigError
from sessbench.evaluation import auto_batch_size, rank_counts
from sessbench.models import FitContext, ModelSpec, SessionRecommender, get_model
from sessbench.training import TorchSessionModel, resolve_device

__all__ = ["SHAPES", "BenchShape", "format_train_report", "run_train_benchmark", "shape_data"]

#: width used for the evaluation floor of models without an item table
DEFAULT_DIM = 100


@dataclass(frozen=True)
class BenchShape:
    """The size of the generated data."""

    n_items: int
    n_train_prefixes: int
    n_test_prefixes: int
    mean_length: float = 6.16  # Table 1, YOOCHOOSE 1/64
    max_length: int = 200
    revisit_prob: float = 0.2
    popularity_exponent: float = 1.0


SHAPES: dict[str, BenchShape] = {
    # YOOCHOOSE 1/64 as the official code trains it: its training prefixes and 37,483 candidates
    "yoochoose64": BenchShape(n_items=37_483, n_train_prefixes=369_859, n_test_prefixes=55_898),
    # for tests and quick checks
    "tiny": BenchShape(n_items=300, n_train_prefixes=3_000, n_test_prefixes=1_000, max_length=30),
}


def _sessions(shape: BenchShape, n_prefixes: int, rng: np.random.Generator) -> SessionSet:
    """Sessions with exactly `n_prefixes` prefixes, drawn vectorized (a loop over positions only).

    Lengths are 2 + NegBin(1, mean - 2) capped at `max_length`; the last session is cut so the
    prefix count is exact. Items follow popularity ∝ rank^-exponent; each later click revisits
    a uniformly chosen earlier position with probability `revisit_prob`.
    """
    extra = shape.mean_length - 2.0
    n_sessions = int(math.ceil(n_prefixes / (shape.mean_length - 1.0) * 1.2)) + 10
    while True:
        lengths = np.minimum(2 + rng.negative_binomial(1, 1.0 / (1.0 + extra), size=n_sessions), shape.max_length)
        if int((lengths - 1).sum()) >= n_prefixes:
            break
        n_sessions *= 2
    cum = np.cumsum(lengths - 1)
    k = int(np.searchsorted(cum, n_prefixes))  # the session in which the count is reached
    lengths = lengths[: k + 1].astype(np.int64)
    lengths[k] = n_prefixes - (int(cum[k - 1]) if k else 0) + 1
    weights = np.arange(1, shape.n_items + 1, dtype=np.float64) ** -shape.popularity_exponent
    cdf = np.cumsum(weights[rng.permutation(shape.n_items)])
    cdf /= cdf[-1]
    width = int(lengths.max())
    grid = np.minimum(np.searchsorted(cdf, rng.random((len(lengths), width)), side="right"), shape.n_items - 1) + 1
    for t in range(1, width):  # revisits, vectorized over the sessions still running at t
        live = np.flatnonzero((lengths > t) & (rng.random(len(lengths)) < shape.revisit_prob))
        grid[live, t] = grid[live, np.floor(rng.random(len(live)) * t).astype(np.int64)]
    mask = np.arange(width)[None, :] < lengths[:, None]
    return SessionSet.from_lengths(grid[mask].astype(np.int32), lengths)


def shape_data(shape: BenchShape, seed: int = 0) -> tuple[TrainingData, Examples]:
    """Training data and evaluation examples of `shape` (deterministic from `seed`)."""
    rng = np.random.default_rng([seed, 7])
    train = _sessions(shape, shape.n_train_prefixes, rng)
    test = _sessions(shape, shape.n_test_prefixes, rng)
    data = TrainingData(train, None, shape.n_items, "bench", np.arange(shape.n_items + 1, dtype=np.int64))
    return data, test.examples()


# ---------------------------------------------------------------------------- timing helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], int], device: torch.device) -> tuple[float, int]:
    """(seconds, sequences) of fn(), which returns how many sequences it processed."""
    _sync(device)
    start = time.perf_counter()
    count = fn()
    _sync(device)
    return time.perf_counter() - start, count


class _Table(torch.nn.Module):
    """The item table alone, for the floor's optimizer."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(table)


def _floor_optimizer(model: SessionRecommender, module: torch.nn.Module) -> torch.optim.Optimizer:
    """The model's optimizer on the table alone; the base class's rule if the model's needs more."""
    if isinstance(model, TorchSessionModel):
        try:
            return model.make_optimizer(module)
        except Exception:  # a model whose optimizer expects its own submodules
            return TorchSessionModel.make_optimizer(model, module)
    return torch.optim.Adam(module.parameters(), lr=1e-3)


def _item_dim(
    module: torch.nn.Module | None, n_items: int, params: dict[str, Any], model: SessionRecommender | None = None
) -> int:
    """Width of the model's scoring product: the model's own `scoring_width` if it declares one
    (e.g. FPMC scores with two item tables), else a 2-d parameter with n_items (+1) rows, else a
    size hyperparameter, else 100."""
    width = getattr(model, "scoring_width", None)
    if isinstance(width, int) and width > 0:
        return width
    if module is not None:
        for p in module.parameters():
            if p.dim() == 2 and p.shape[0] in (n_items, n_items + 1):
                return int(p.shape[1])
    for key in ("hidden_size", "embedding_dim", "embedding_size", "dim", "factors"):
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_DIM


def _train_floor(
    model: SessionRecommender, n_items: int, dim: int, batch_size: int, batches: int, warmup: int,
    device: torch.device, seed: int, blocked: bool = False,
) -> float:
    """Sequences/s of: vectors @ table.T, its backward, the optimizer step on the table.

    Plain torch products through autograd (the floor's definition), or with `blocked` the same
    work as `sessbench.blocked_products` does it, into buffers reused across steps: a
    diagnostic that shows how much of a model's ratio comes from faster products.
    """
    g = torch.Generator(device="cpu").manual_seed(seed)
    bound = 1.0 / math.sqrt(dim)
    table = _Table((torch.rand(n_items + 1, dim, generator=g) * 2 - 1).mul_(bound).to(device))
    optimizer = _floor_optimizer(model, table)
    vectors = torch.randn(batch_size, dim, generator=g).to(device).requires_grad_(True)
    upstream = (torch.randn(batch_size, n_items + 1, generator=g) / batch_size).to(device)
    scores = torch.empty_like(upstream) if blocked else None
    grad_buffer = torch.empty_like(table.weight) if blocked else None

    def plain_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        vectors.grad = None
        (vectors @ table.weight.T).backward(upstream)
        optimizer.step()

    def blocked_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            assert scores is not None and grad_buffer is not None
            weight, inputs = table.weight.detach(), vectors.detach()
            scores_into(inputs, weight, scores)
            vectors.grad = upstream @ weight
            table.weight.grad = table_grad_into(upstream, inputs, grad_buffer)
        optimizer.step()

    step = blocked_step if blocked else plain_step

    def run() -> int:
        for _ in range(batches):
            step()
        return batches * batch_size

    for _ in range(warmup):
        step()
    seconds, count = _timed(run, device)
    return count / seconds


def _eval_floor(
    n_items: int, dim: int, examples: list[Batch], warmup: int, device: torch.device, seed: int
) -> float:
    """Sequences/s of: vectors @ table.T (fresh output) and the targets' rank counts."""
    g = torch.Generator(device="cpu").manual_seed(seed + 1)
    table = torch.randn(n_items + 1, dim, generator=g).to(device)
    inputs = [(torch.randn(len(b), dim, generator=g).to(device), b.targets.to(device)) for b in examples]
    work: list[torch.Tensor | None] = [None]

    def one(vectors: torch.Tensor, targets: torch.Tensor) -> None:
        scores = vectors @ table.T
        if work[0] is None or work[0].shape[0] < len(targets):
            work[0] = torch.empty(len(targets), n_items, device=device)
        rank_counts(scores, targets, buffer=work[0][: len(targets)])

    for vectors, targets in inputs[:warmup]:
        one(vectors, targets)

    def run() -> int:
        for vectors, targets in inputs:
            one(vectors, targets)
        return sum(len(t) for _, t in inputs)

    seconds, count = _timed(run, device)
    return count / seconds


def _model_eval(model: SessionRecommender, n_items: int, examples: list[Batch], warmup: int, device: torch.device) -> float:
    """Sequences/s of `model.score` plus the targets' rank counts, as the evaluator runs them."""
    batches = [b.to(device) for b in examples]
    work: list[torch.Tensor | None] = [None]

    def one(batch: Batch) -> None:
        scores = model.score(batch)
        if work[0] is None or work[0].shape[0] < len(batch):
            work[0] = torch.empty(len(batch), n_items, device=scores.device)
        rank_counts(scores, batch.targets.to(scores.device), buffer=work[0][: len(batch)])

    with model.eval_mode():
        for batch in batches[:warmup]:
            one(batch)

        def run() -> int:
            for batch in batches:
                one(batch)
            return sum(len(b) for b in batches)

        seconds, count = _timed(run, device)
    return count / seconds


def _model_train(
    model: TorchSessionModel, data: TrainingData, batches: int, warmup: int, device: torch.device, seed: int,
    profile: bool = False,
) -> tuple[float, float, list[dict[str, Any]] | None]:
    """(sequences/s, mean loss, profile) of `batches` training steps of the model's own pieces.

    With `profile`, another `batches` steps run under torch.profiler after the timed ones (so the
    profiler's overhead never enters the throughput) and their top operators are returned.
    """
    module = model.module
    assert module is not None
    module.train()
    optimizer = model.make_optimizer(module)
    stream = iter(model.train_batches(data, 0, np.random.default_rng([seed, 1])))
    losses: list[torch.Tensor] = []

    def step(batch: Any) -> int:
        batch = batch.to(device)
        losses.append(model.train_step(module, optimizer, batch))
        return len(batch)

    def run() -> int:
        return sum(step(batch) for batch in islice(stream, batches))

    for batch in islice(stream, warmup):
        step(batch)
    seconds, count = _timed(run, device)
    if count == 0:
        raise ConfigError(f"model '{model.label}' yielded no training batches; raise --n-prefixes")
    rows = _profile(run, device, batches) if profile else None
    return count / seconds, float(torch.stack(losses).mean()), rows


def _profile(run: Callable[[], int], device: torch.device, batches: int, top: int = 15) -> list[dict[str, Any]]:
    """The `top` operators of `run()` by self time, in milliseconds per batch."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        _timed(run, device)
    events = prof.key_averages()
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    total = sum(getattr(e, attr) for e in events) or 1.0
    ranked = sorted(events, key=lambda e: getattr(e, attr), reverse=True)[:top]
    return [
        {
            "op": e.key,
            "self_ms_per_batch": round(getattr(e, attr) / 1000 / batches, 3),
            "share": round(getattr(e, attr) / total, 4),
            "calls_per_batch": round(e.count / batches, 1),
        }
        for e in ranked
    ]


# ---------------------------------------------------------------------------- the benchmark


def run_train_benchmark(
    model_name: str | ModelSpec,
    shape: str | BenchShape = "yoochoose64",
    *,
    batches: int = 50,
    threads: int | None = 1,
    device: str = "auto",
    seed: int = 0,
    params: dict[str, Any] | None = None,
    eval_batch_size: int | None = None,
    warmup: int = 3,
    n_items: int | None = None,
    n_prefixes: int | None = None,
    profile: bool = False,
) -> dict[str, Any]:
    """Train and evaluate `batches` batches of a model on generated data; see the module doc.

    `model_name` is a registered name (or a `ModelSpec`, for models that are not registered).

    Returns a JSON-ready dict with `train_seq_per_s`, `eval_seq_per_s`, `peak_memory_mb`,
    `floor_train_seq_per_s`, `floor_eval_seq_per_s` and the ratios (torch models), or
    `fit_s`, `predict_seq_per_s` and the evaluation floor (other models).
    """
    from sessbench.host_memory import PeakMemory  # the harness's own memory sampler

    if batches < 1:
        raise ConfigError(f"--batches must be at least 1, got {batches}")
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    if isinstance(shape, str):
        if shape not in SHAPES:
            raise ConfigError(f"unknown shape '{shape}'; choose one of {', '.join(SHAPES)}")
        shape_name, bench_shape = shape, SHAPES[shape]
    else:
        shape_name, bench_shape = "custom", shape
    overrides = {}
    if n_items is not None:
        overrides["n_items"] = n_items
    if n_prefixes is not None:
        overrides["n_train_prefixes"] = n_prefixes
    if overrides:
        from dataclasses import replace

        bench_shape = replace(bench_shape, **overrides)
        shape_name += "+" + ",".join(f"{k}={v}" for k, v in overrides.items())
    if bench_shape.n_items < 2 or bench_shape.n_train_prefixes < 1:
        raise ConfigError("the benchmark needs at least 2 items and 1 training prefix")
    dev = resolve_device(device)
    spec = model_name if isinstance(model_name, ModelSpec) else get_model(model_name)
    params = dict(params or {})

    t0 = time.perf_counter()
    data, test = shape_data(bench_shape, seed)
    generate_s = time.perf_counter() - t0
    n = bench_shape.n_items

    result: dict[str, Any] = {
        "benchmark": "train",
        "model": spec.name,
        "shape": shape_name,
        "n_items": n,
        "n_train_prefixes": len(data.train_examples()),
        "batches": batches,
        "warmup_batches": warmup,
        "threads": torch.get_num_threads(),
        "device": str(dev),
        "seed": seed,
        "params": {k: params[k] for k in sorted(params)},  # those that differ from the registered defaults
        "generate_s": round(generate_s, 3),
    }
    torch.manual_seed(seed)
    with PeakMemory() as mem:
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        is_torch = issubclass(spec.cls, TorchSessionModel)
        model = spec.create(**{**params, **({"epochs": 0} if is_torch else {})})
        ctx = FitContext(device=dev, seed=seed)
        t1 = time.perf_counter()
        model.fit(data, ctx)  # torch: builds the network with no epoch; others: the whole fit
        fit_s = time.perf_counter() - t1
        module = getattr(model, "module", None) if is_torch else None
        dim = _item_dim(module, n, model.params, model)
        ebs = eval_batch_size or getattr(model, "eval_batch_size", None) or auto_batch_size(n)
        eval_batches = list(islice(test.iter_batches(int(ebs)), warmup + batches))
        timed_eval, warm_eval = eval_batches[warmup:] or eval_batches, eval_batches[:warmup]
        result.update({"dim": dim, "eval_batch_size": int(ebs), "eval_batches": len(timed_eval)})

        if is_torch:
            assert isinstance(model, TorchSessionModel)
            bs = model.batch_size
            result["batch_size"] = bs
            floor_args = (model, n, dim, bs, batches, warmup, dev, seed)
            floor_a, blocked_a = _train_floor(*floor_args), _train_floor(*floor_args, blocked=True)
            train_rate, loss, rows = _model_train(model, data, batches, warmup, dev, seed, profile)
            floor_b, blocked_b = _train_floor(*floor_args), _train_floor(*floor_args, blocked=True)
            floor_train, floor_blocked = max(floor_a, floor_b), max(blocked_a, blocked_b)
            result.update({
                "train_seq_per_s": round(train_rate, 1),
                "floor_train_seq_per_s": round(floor_train, 1),
                "train_floor_ratio": round(train_rate / floor_train, 3),
                "floor_train_blocked_seq_per_s": round(floor_blocked, 1),
                "train_blocked_floor_ratio": round(train_rate / floor_blocked, 3),
                "train_ms_per_batch": round(1000 * bs / train_rate, 2),
                "floor_train_ms_per_batch": round(1000 * bs / floor_train, 2),
                "train_loss": round(loss, 4),
                "build_s": round(fit_s, 3),
            })
            if rows is not None:
                result["train_profile"] = rows
        else:
            result["fit_s"] = round(fit_s, 3)

        floor_e1 = _eval_floor(n, dim, warm_eval + timed_eval, warmup, dev, seed)
        eval_rate = _model_eval(model, n, warm_eval + timed_eval, warmup, dev)
        floor_e2 = _eval_floor(n, dim, warm_eval + timed_eval, warmup, dev, seed)
        floor_eval = max(floor_e1, floor_e2)
        key = "eval_seq_per_s" if is_torch else "predict_seq_per_s"
        result.update({
            key: round(eval_rate, 1),
            "floor_eval_seq_per_s": round(floor_eval, 1),
            "eval_floor_ratio": round(eval_rate / floor_eval, 3),
        })
        if dev.type == "cuda":
            result["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    result["peak_memory_mb"] = round(mem.peak_bytes / 2**20, 1)
    result["memory_at_start_mb"] = round(mem.start_bytes / 2**20, 1)
    result["torch"] = torch.__version__
    result["python"] = platform.python_version()
    result["cpu_count"] = os.cpu_count()
    return result


def format_train_report(result: dict[str, Any]) -> str:
    """A short human-readable summary of `run_train_benchmark`'s result."""
    r = result
    head = (
        f"Training benchmark: {r['model']} on shape {r['shape']} ({r['n_items']:,} items, "
        f"{r['n_train_prefixes']:,} training prefixes), {r['device']}, {r['threads']} thread(s)"
    )
    lines = [head]
    if r.get("params"):
        lines.append("  hyperparameters: " + ", ".join(f"{k}={v}" for k, v in r["params"].items()))
    if "train_seq_per_s" in r:
        lines.append(
            f"  train  {r['train_seq_per_s']:10,.0f} seq/s   floor {r['floor_train_seq_per_s']:10,.0f} seq/s   "
            f"ratio {r['train_floor_ratio']:.2f}   ({r['batches']} batches of {r['batch_size']}, "
            f"{r['train_ms_per_batch']:.1f} ms vs {r['floor_train_ms_per_batch']:.1f} ms)"
        )
        lines.append(
            f"         blocked floor {r['floor_train_blocked_seq_per_s']:,.0f} seq/s   ratio "
            f"{r['train_blocked_floor_ratio']:.2f}   (the same floor with the item products in cache-sized "
            "blocks, as sessbench.blocked_products)"
        )
        eval_key = "eval_seq_per_s"
    else:
        lines.append(f"  fit    {r['fit_s']:10.2f} s")
        eval_key = "predict_seq_per_s"
    lines.append(
        f"  eval   {r[eval_key]:10,.0f} seq/s   floor {r['floor_eval_seq_per_s']:10,.0f} seq/s   "
        f"ratio {r['eval_floor_ratio']:.2f}   ({r['eval_batches']} batches of {r['eval_batch_size']})"
    )
    lines.append(f"  peak memory {r['peak_memory_mb']:,.0f} MiB (process; {r['memory_at_start_mb']:,.0f} MiB at start)"
                 + (f", GPU {r['peak_gpu_memory_mb']:,.0f} MiB" if "peak_gpu_memory_mb" in r else ""))
    if r.get("train_profile"):
        lines.append("  where training time goes (torch.profiler, self time per batch):")
        for row in r["train_profile"]:
            lines.append(f"    {row['self_ms_per_batch']:8.2f} ms  {100 * row['share']:5.1f}%  {row['op']}")
    lines.append(
        "  floors: the item-table product, its backward and the optimizer step on the table "
        f"(train); the scoring product and target ranking (eval); width d = {r['dim']}"
    )
    return "\n".join(lines)
