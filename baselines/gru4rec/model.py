"""GRU4Rec as a sessbench model, plugged into the shared training loop through its hooks.

Follows the official implementation (hidasib/GRU4Rec, Theano, and hidasib/GRU4Rec_PyTorch_Official;
Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018) in every feature that shapes its
accuracy and speed:

* session-parallel mini-batches over the training sessions in time order, hidden state reset
  for a slot that starts a new session, no back-propagation across steps (`train_batches`);
* output sampling: the other targets of the mini-batch plus `n_sample` extra negatives drawn in
  proportion to popularity^`sample_alpha`, drawn in bulk and cached (`sampling.py`);
* losses cross-entropy with logQ correction, BPR-max with `bpreg`, TOP1-max; final activation
  matching the loss (`losses.py`);
* embedding modes shared (constrained) / separate / none; dropout on the embedding and on the
  hidden state; uniform +-sqrt(6/(fan_in+fan_out)) initialisation (`network.py`);
* Adagrad with Nesterov momentum over sparse item-table gradients, no L2 (`optim.py`).

At prediction the hidden state is run over each prefix from zero (`encode_prefixes`), so every
test prefix is scored from its own clicks only, like every other model here.

What sessbench adapts: sessions are ordered by their stored timestamp (for the SR-GNN datasets
the date of the session's last click; the official code uses the first click's time); the
shared loop's validation and early stopping select the epoch (the official code trains a fixed
number of epochs); cross-entropy uses log_softmax instead of log(softmax + 1e-24), which differs
only below probabilities of 1e-20. With `nesterov: false` the momentum update is the official
code's classical one.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch

from sessbench.data.sessions import Prefixes, TrainingData
from sessbench.errors import ConfigError
from sessbench.models import register_model
from sessbench.training import TRAINING_DEFAULTS, TorchSessionModel

from baselines.gru4rec.batching import ParallelBatch, Schedule, session_parallel_schedule, step_batch
from baselines.gru4rec.losses import bpr_max, check_final_act, cross_entropy, final_activation, top1_max
from baselines.gru4rec.network import EMBEDDING_MODES, GRU4RecNet
from baselines.gru4rec.optim import AdagradMomentum
from baselines.gru4rec.sampling import SampleCache, sampling_weights

#: the PyTorch GRU4Rec's class defaults, on top of the shared loop's keys
GRU4REC_DEFAULTS: dict[str, Any] = {
    **TRAINING_DEFAULTS,
    "epochs": 10,
    "batch_size": 64,
    "lr": 0.05,
    "lr_decay_step": 0,  # the official code keeps the learning rate constant
    "optimizer": "adagrad",
    "layers": [100],
    "loss": "cross-entropy",
    "final_act": "auto",
    "embedding": "shared",
    "embedding_size": 0,
    "dropout_embed": 0.0,
    "dropout_hidden": 0.0,
    "momentum": 0.0,
    "nesterov": True,
    "n_sample": 2048,
    "sample_alpha": 0.5,
    "sample_cache_size": 10_000_000,
    "bpreg": 1.0,
    "logq": 0.0,
}


@register_model(
    "gru4rec",
    groups=("baselines", "paper"),
    defaults=GRU4REC_DEFAULTS,
    description="GRU4Rec (Hidasi et al. 2016/2018): session-parallel GRU with sampled losses, as the official code",
)
class GRU4Rec(TorchSessionModel):
    """GRU4Rec with the official algorithm's session-parallel training and sampled losses."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**{**GRU4REC_DEFAULTS, **params})
        p = self.params
        layers = p["layers"]
        if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
            layers = [int(layers)]
        if (
            not isinstance(layers, (list, tuple))
            or not layers
            or any(isinstance(u, bool) or not isinstance(u, (int, np.integer)) or u < 1 for u in layers)
        ):
            raise self._bad("layers", "must be a non-empty list of positive integers, e.g. [100]")
        self.layers = [int(u) for u in layers]
        self.loss_name = str(p["loss"])
        self.final_act = check_final_act(self.loss_name, str(p["final_act"]))
        self.embedding = str(p["embedding"])
        if self.embedding not in EMBEDDING_MODES:
            raise self._bad("embedding", f"must be one of {', '.join(EMBEDDING_MODES)}")
        self.embedding_size = self._int("embedding_size", minimum=0)
        self.dropout_embed = self._float("dropout_embed", minimum=0.0)
        self.dropout_hidden = self._float("dropout_hidden", minimum=0.0)
        for key in ("dropout_embed", "dropout_hidden"):
            if getattr(self, key) >= 1.0:
                raise self._bad(key, "must be < 1")
        self.momentum = self._float("momentum", minimum=0.0)
        if self.momentum >= 1.0:
            raise self._bad("momentum", "must be < 1")
        if not isinstance(p["nesterov"], bool):
            raise self._bad("nesterov", "must be true or false")
        self.nesterov = p["nesterov"]
        self.n_sample = self._int("n_sample", minimum=0)
        self.sample_alpha = self._float("sample_alpha", minimum=0.0)
        self.sample_cache_size = self._int("sample_cache_size", minimum=1)
        self.bpreg = self._float("bpreg", minimum=0.0)
        self.logq = self._float("logq", minimum=0.0)
        if self.optimizer_name != "adagrad":
            raise self._bad("optimizer", "must be adagrad: GRU4Rec trains with Adagrad (+ momentum) on sparse item gradients")
        if self.l2 > 0:
            raise self._bad("l2", "must be 0: GRU4Rec uses no L2 regularization (use the dropouts)")
        if self.grad_clip is not None:
            raise self._bad("grad_clip", "is not supported: GRU4Rec trains without gradient clipping")
        self._activation = None if self.final_act == "softmax" else final_activation(self.final_act)
        self._schedule: Schedule | None = None
        self._sampler: SampleCache | None = None
        self._hidden: list[torch.Tensor] | None = None
        self._log_pop: torch.Tensor | None = None
        self._weights: np.ndarray | None = None
        self._pending_sampler: dict[str, Any] | None = None  # restored from an epoch checkpoint

    # ------------------------------------------------------------------ network and optimizer
    def build(self, data: TrainingData) -> torch.nn.Module:
        popularity = data.item_popularity()
        if popularity[1:].sum() == 0:
            raise ConfigError(f"gru4rec: dataset '{data.dataset}' has no training clicks")
        self._weights = sampling_weights(popularity, self.sample_alpha)
        # log of how each output column is drawn, for the logQ correction (popularity >= 1 there)
        self._log_pop = torch.from_numpy(np.log(np.maximum(popularity, 1)).astype(np.float32))
        self._schedule = None
        self._sampler = None
        self._hidden = None
        return GRU4RecNet(
            data.n_items,
            self.layers,
            embedding=self.embedding,
            embedding_size=self.embedding_size,
            dropout_embed=self.dropout_embed,
            dropout_hidden=self.dropout_hidden,
        )

    def make_optimizer(self, module: torch.nn.Module) -> torch.optim.Optimizer:
        params = [p for p in module.parameters() if p.requires_grad]
        return AdagradMomentum(params, lr=self.lr, momentum=self.momentum, nesterov=self.nesterov)

    # ------------------------------------------------------------------ session-parallel batches
    def schedule(self, data: TrainingData) -> Schedule:
        """The session-parallel schedule of the training sessions (computed once per fit)."""
        if self._schedule is None:
            stop_below = 2 if self.n_sample == 0 else 1
            self._schedule = session_parallel_schedule(data.train, self.batch_size, stop_below=stop_below)
        return self._schedule

    def n_train_batches(self, data: TrainingData) -> int | None:
        return self.schedule(data).n_steps

    def train_batches(self, data: TrainingData, epoch: int, rng: np.random.Generator) -> Iterator[ParallelBatch]:
        """One epoch of session-parallel steps; every epoch starts with all hidden states at zero."""
        schedule = self.schedule(data)
        self._hidden = None
        if self._sampler is None:  # drawn from the loop's seeded stream; lives across epochs
            assert self._weights is not None
            self._sampler = SampleCache(
                self._weights, self.n_sample, self.sample_cache_size, rng, self._device, max_rows=schedule.n_steps
            )
            if self._pending_sampler is not None:
                self._sampler.load_state(self._pending_sampler)
                self._pending_sampler = None
        for t in range(schedule.n_steps):
            yield step_batch(data.train, schedule, t, self._sampler.get())

    def resume_state(self) -> dict[str, Any]:
        """The negative-sample store lives across epochs: a resumed fit must draw the same rows."""
        return {} if self._sampler is None else {"sampler": self._sampler.state()}

    def load_resume_state(self, state: dict[str, Any]) -> None:
        self._pending_sampler = state.get("sampler")

    # ------------------------------------------------------------------ loss
    def carried_hidden(self, batch: ParallelBatch) -> list[torch.Tensor]:
        """The hidden states this step starts from: carried, reordered, and zeroed on resets."""
        b = len(batch)
        device = batch.inputs.device
        if self._hidden is None:
            return [torch.zeros((b, units), device=device) for units in self.layers]
        hidden = self._hidden if batch.keep is None else [h[batch.keep] for h in self._hidden]
        keep_state = (~batch.reset).unsqueeze(1).to(hidden[0].dtype)
        return [h * keep_state for h in hidden]

    def output_scores(self, module: GRU4RecNet, batch: ParallelBatch) -> torch.Tensor:
        """Run one step and score the targets of all slots plus the extra samples: [B, B + S]."""
        columns = torch.cat([batch.targets, batch.samples])
        hidden, scores = module.train_step(batch.inputs, self.carried_hidden(batch), columns, dropout=module.training)
        self._hidden = [h.detach() for h in hidden]
        return scores

    def sampled_loss(self, scores: torch.Tensor, batch: ParallelBatch) -> torch.Tensor:
        """Per-row losses of a [B, B + S] score matrix (see losses.py)."""
        if self.loss_name == "cross-entropy":
            log_q = None
            if self.logq > 0:
                assert self._log_pop is not None
                if self._log_pop.device != scores.device:
                    self._log_pop = self._log_pop.to(scores.device)
                log_q = torch.cat(
                    [self._log_pop[batch.targets], self.sample_alpha * self._log_pop[batch.samples]]
                )
            return cross_entropy(scores, log_q, self.logq)
        assert self._activation is not None
        scores = self._activation(scores)
        if self.loss_name == "bpr-max":
            return bpr_max(scores, self.bpreg)
        return top1_max(scores)

    def loss(self, module: torch.nn.Module, batch: Any) -> torch.Tensor:
        """Sum of the step's per-row losses over the nominal batch size (as the official code)."""
        scores = self.output_scores(module, batch)  # type: ignore[arg-type]
        return self.sampled_loss(scores, batch).sum() / self.batch_size

    # ------------------------------------------------------------------ prediction
    def forward_scores(self, module: torch.nn.Module, batch: Prefixes) -> torch.Tensor:
        """Scores of every item after running the GRU over each prefix from a zero state.

        The final activation is left out: it is monotone, so the ranking is the same, and
        saturating ones (tanh) would only create ties.
        """
        out = module.encode_prefixes(batch.items, batch.lengths)  # type: ignore[operator]
        return module.all_scores(out)  # type: ignore[operator]
