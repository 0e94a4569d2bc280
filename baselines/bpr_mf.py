"""BPR-MF: matrix factorization trained with Bayesian Personalized Ranking, via `implicit`.

What it is
----------
Rendle, Freudenthaler, Gantner, Schmidt-Thieme, "BPR: Bayesian Personalized Ranking from
Implicit Feedback", UAI 2009: a matrix factorization x̂(u, i) = <w_u, h_i> + b_i trained by
stochastic gradient ascent on ln σ(x̂(u, i) - x̂(u, j)) - λ||Θ||² over triples of a user u, an
item i the user interacted with and an item j it did not. The factorization is learned by the
`implicit` library's BPR (CPU: Cython/OpenMP; GPU: CUDA), whose item factors carry the item bias
b_i in their last column (its user factors hold a constant 1 there).

Adaptations to the session setting (those of the GRU4Rec paper, Hidasi et al., ICLR 2016,
section 4, which the SR-GNN paper's Table 2 follows)
----------------------------------------------------------------------------------------
* Users are training *sessions*: the matrix factorized is the binary session x item matrix of the
  training sessions that ``fit`` receives (a repeated click counts once, as BPR's implicit
  feedback is binary).
* Test sessions are new, so they have no learned factor. Following the GRU4Rec paper ("we use
  the average of item feature vectors of the items that had occurred in the session so far as
  the user feature vector"), a prefix's vector is the mean of the item factors of its clicks
  (repeated clicks counted each time, as the GRU4Rec authors' baseline code does), and an item's
  score is that vector dotted with the item's factors plus the item's bias. The session factors
  learned during training are discarded.
* Negative items: implicit draws the negative j of a triple from the list of all training
  interactions, i.e. with probability proportional to popularity (and rejects items the session
  contains, ``verify_negative_samples``), where Rendle et al. sample uniformly. We keep
  implicit's sampler; it is part of the library the issue asks us to use.
* Items that never occur in training keep zero factors and zero bias (implicit's choice), so
  they tie at a score of 0.
* Model selection: implicit trains for a fixed number of epochs ("iterations"). So that the
  ``validated`` protocol selects the epoch count as it does for torch models, training runs in
  rounds of ``eval_every`` epochs (implicit continues from the current factors, drawing from one
  seeded generator), the prefix-mean model is scored on the selection split after each round,
  the best round's factors are kept, and training stops after ``patience`` rounds without
  improvement. With no selection split it simply trains ``iterations`` epochs.

Determinism: on the CPU implicit runs with ``num_threads=1`` and a numpy Generator seeded from
the run's seed, so a seed fixes the result; with more threads its lock-free SGD (Hogwild) is
not reproducible. On a CUDA device, when implicit was built with CUDA (``implicit.gpu.HAS_CUDA``),
its GPU model is used; its factors are copied back to torch on that device for scoring.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from baselines.item_knn import session_item_matrix
from sessbench.data.sessions import Prefixes, TrainingData
from sessbench.errors import ConfigError, SessbenchError
from sessbench.models import FitContext, SessionRecommender, int_param, register_model

__all__ = ["BPRMF", "prefix_mean"]

#: numpy stream of FitContext.rng() used for implicit's initialisation and sampling
_RNG_STREAM = 7

DEFAULTS: dict[str, Any] = {
    "factors": 100,
    "learning_rate": 0.01,
    "regularization": 0.01,
    "iterations": 100,
    "eval_every": 10,
    "patience": 3,
    "verify_negative_samples": True,
    "num_threads": 1,
}


def prefix_mean(table: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Mean of `table` rows over the real clicks of each padded prefix: [B, L] -> [B, d].

    Padding (item 0) is masked out, so the result does not depend on the batch's width. Only
    the real clicks are gathered (O(clicks x d), not O(B x L x d): a batch padded to one long
    prefix costs no more than its clicks).
    """
    mask = items > 0
    row = torch.nonzero(mask)[:, 0]
    summed = torch.zeros(items.shape[0], table.shape[1], dtype=table.dtype, device=table.device)
    summed.index_add_(0, row, table[items[mask]])
    return summed / mask.sum(dim=1, keepdim=True).clamp_min(1).to(table.dtype)


@register_model(
    "bpr-mf",
    groups=("baselines", "paper"),
    defaults=DEFAULTS,
    description="BPR matrix factorization (implicit); a session is the mean of its items' factors",
)
class BPRMF(SessionRecommender):
    """BPR-MF on the session x item matrix; a prefix's vector is the mean of its item factors.

    Hyperparameters: ``factors``, ``learning_rate``, ``regularization`` (implicit's BPR),
    ``iterations`` (maximum epochs), ``eval_every`` (epochs per selection round), ``patience``
    (rounds without improvement before stopping; None = never), ``verify_negative_samples``,
    ``num_threads`` (CPU threads of implicit; 1 for reproducible results).
    """

    def __init__(self, **params: Any) -> None:
        super().__init__(**{**DEFAULTS, **params})
        p = self.params
        self.factors = self._int("factors", 1)
        self.iterations = self._int("iterations", 1)
        self.eval_every = self._int("eval_every", 1)
        self.patience = None if p["patience"] is None else self._int("patience", 1)
        self.num_threads = self._int("num_threads", 0)
        self.learning_rate = self._positive("learning_rate")
        self.regularization = float(p["regularization"])
        if not math.isfinite(self.regularization) or self.regularization < 0:
            raise ConfigError(f"model 'bpr-mf': regularization={p['regularization']!r} must be >= 0.")
        if not isinstance(p["verify_negative_samples"], bool):
            raise ConfigError("model 'bpr-mf': verify_negative_samples must be true or false.")
        self.item_factors: torch.Tensor | None = None
        self.item_bias: torch.Tensor | None = None
        self._device = torch.device("cpu")
        self.fit_summary: dict[str, Any] = {}

    selects_on_validation = True

    def _int(self, key: str, minimum: int) -> int:
        return int_param("bpr-mf", key, self.params[key], minimum)

    def refit_params(self) -> dict[str, Any]:
        """Train as many epochs as the selected round had (implicit's epochs over the whole set)."""
        best = self.fit_summary.get("best_epoch")
        return {} if best is None else {"iterations": int(best) + 1}

    def _positive(self, key: str) -> float:
        value = float(self.params[key])
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"model 'bpr-mf': {key}={self.params[key]!r} must be a number > 0.")
        return value

    # ------------------------------------------------------------------ fitting
    def _make_model(self, device: torch.device, rng: np.random.Generator) -> Any:
        """implicit's GPU BPR on a CUDA device when implicit has CUDA, else its CPU BPR."""
        try:
            import implicit.gpu
            from implicit.cpu.bpr import BayesianPersonalizedRanking as CpuBPR
        except ImportError as exc:  # pragma: no cover - implicit is a dependency
            raise SessbenchError(
                "model 'bpr-mf' needs the 'implicit' package: pip install implicit"
            ) from exc
        common = dict(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.eval_every,
            verify_negative_samples=self.params["verify_negative_samples"],
            random_state=rng,
        )
        if device.type == "cuda" and implicit.gpu.HAS_CUDA:
            from implicit.gpu.bpr import BayesianPersonalizedRanking as GpuBPR

            return GpuBPR(**common)
        return CpuBPR(num_threads=self.num_threads, dtype=np.float32, **common)

    def _take_factors(self, model: Any) -> None:
        """Copy implicit's item factors into torch: [n_items + 1, factors] and the bias column."""
        cpu = model.to_cpu() if hasattr(model, "to_cpu") and not _is_cpu_model(model) else model
        items = np.asarray(cpu.item_factors, dtype=np.float32)
        users = np.asarray(cpu.user_factors, dtype=np.float32)
        has_bias = users.shape[1] == items.shape[1] == self.factors + 1 and np.all(users[:, -1] == 1.0)
        factors = items[:, : self.factors] if has_bias else items
        bias = items[:, -1] if has_bias else np.zeros(len(items), np.float32)
        self.item_factors = torch.from_numpy(np.ascontiguousarray(factors)).to(self._device)
        self.item_bias = torch.from_numpy(np.ascontiguousarray(bias)).to(self._device)

    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        start = time.perf_counter()
        self._device = torch.device(ctx.device)
        x = session_item_matrix(data.train, data.n_items).astype(np.float32)
        if x.nnz == 0:
            raise SessbenchError(
                f"model 'bpr-mf': dataset '{data.dataset}' has no training clicks to factorize."
            )
        x = _scipy_csr_matrix(x)
        rng = ctx.rng(_RNG_STREAM)
        model = self._make_model(self._device, rng)
        backend = "gpu" if not _is_cpu_model(model) else f"cpu, {self.num_threads} thread(s)"
        ctx.logger.info(
            "bpr-mf: %d sessions x %d items, %d interactions, implicit %s", x.shape[0],
            data.n_items, x.nnz, backend,
        )

        best = -math.inf
        best_state: tuple[torch.Tensor, torch.Tensor] | None = None
        best_epochs = 0
        bad_rounds = 0
        stopped = "completed"
        done = 0
        while done < self.iterations:
            model.iterations = min(self.eval_every, self.iterations - done)
            t0 = time.perf_counter()
            model.fit(x, show_progress=False)
            done += model.iterations
            self._take_factors(model)
            entry: dict[str, Any] = {"epoch": done - 1, "epochs_done": done, "train_s": time.perf_counter() - t0}
            if ctx.evaluate is not None:
                t1 = time.perf_counter()
                metrics = dict(ctx.evaluate(self))
                entry["eval_s"] = time.perf_counter() - t1
                entry.update(metrics)
                if ctx.selection_metric not in metrics:
                    raise ConfigError(
                        f"selection metric {ctx.selection_metric} is not among the evaluated "
                        f"metrics ({', '.join(sorted(metrics))})."
                    )
                value = float(metrics[ctx.selection_metric])
                if value > best:
                    best, best_epochs, bad_rounds = value, done, 0
                    best_state = (self.item_factors.clone(), self.item_bias.clone())
                else:
                    bad_rounds += 1
                ctx.logger.info(
                    "bpr-mf: %d epochs, %s %.2f%%%s", done, ctx.selection_metric, 100 * value,
                    " *" if bad_rounds == 0 else "",
                )
            ctx.epoch_log.append(entry)
            if self.patience is not None and bad_rounds >= self.patience:
                stopped = "patience"
                break
            if ctx.time_budget_s is not None and time.perf_counter() - start > ctx.time_budget_s:
                stopped = "time_budget"
                break
        if best_state is not None:
            self.item_factors, self.item_bias = best_state
        self.fit_summary = {
            "epochs_run": done,
            "best_epoch": best_epochs - 1 if best_state is not None else None,
            "best": {ctx.selection_metric: best} if best_state is not None else {},
            "stopped": stopped,
            "fit_s": time.perf_counter() - start,
        }

    # ------------------------------------------------------------------ scoring
    @property
    def device(self) -> torch.device:
        return self._device

    def score(self, batch: Prefixes) -> torch.Tensor:
        """Prefix vector (masked mean of its item factors) dotted with every item, plus bias."""
        if self.item_factors is None or self.item_bias is None:
            raise RuntimeError("model 'bpr-mf' is not fitted: call fit() first")
        session = prefix_mean(self.item_factors, batch.items.to(self._device))
        return torch.addmm(self.item_bias.unsqueeze(0), session, self.item_factors.T)


def _is_cpu_model(model: Any) -> bool:
    return type(model).__module__.startswith("implicit.cpu")


def _scipy_csr_matrix(x: Any) -> sp.csr_matrix:
    """implicit 0.7 is written against scipy's csr_matrix (not the newer csr_array)."""
    return sp.csr_matrix(x)
