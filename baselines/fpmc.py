"""FPMC: factorizing personalized Markov chains, trained with S-BPR, adapted to anonymous sessions.

What it is
----------
Rendle, Freudenthaler, Schmidt-Thieme, "Factorizing Personalized Markov Chains for Next-Basket
Recommendation", WWW 2010. FPMC scores item i for user u after basket B_{t-1} as a matrix
factorization term plus a factorized first-order Markov chain:

    x̂(u, t, i) = <v_u^{U,I}, v_i^{I,U}> + 1/|B_{t-1}| Σ_{l ∈ B_{t-1}} <v_i^{I,L}, v_l^{L,I}>

(the paper's pairwise-interaction form; the user-last-item term drops out of the ranking), and
learns it with S-BPR: stochastic gradient ascent on ln σ(x̂(u, t, i) - x̂(u, t, j)) for a
clicked item i and a sampled item j not in the basket, with L2 regularization of the factors
the sample touches.

Adaptations to session-based recommendation (all of them)
---------------------------------------------------------
* Baskets are single clicks: B_{t-1} is the last item of the prefix, so the Markov term is
  <v_i^{I,L}, v_last^{L,I}>, the factorized transition from the last item.
* The user factor v_u^{U,I} is replaced by a *session factor* computed from the prefix: the mean
  of a learned item table A over the prefix's clicks, v_s = 1/|s| Σ_{l ∈ s} A_l (repeated
  clicks count each time). Why: test sessions are anonymous and new, so a per-user (or
  per-session) free parameter cannot be learned for them. The common alternative in the
  literature (NARM, Li et al. 2017, and the papers that copy its baselines, SR-GNN's Table 2
  among them) drops the user term and keeps only the transition, which makes FPMC a pure
  factorized Markov chain; the mean of learned item factors keeps FPMC's second component (the
  session's general taste, here from all of its clicks) and is the same adaptation the GRU4Rec
  paper uses for BPR-MF, but learned jointly with the transition instead of after the fact.
  ``session_factor: none`` gives the drop-the-user-term variant for comparison.
* Training pairs are the (prefix, next item) examples of the training sessions, shuffled each
  epoch by the shared torch loop (the paper samples (u, t, i) uniformly with replacement); each
  positive gets ``n_neg`` negatives drawn uniformly from the items other than the target (the
  paper draws one; the per-example losses are averaged). The regularization is the paper's:
  ``reg`` times the squared norm of every factor the example uses (the prefix's A rows
  averaged, the last item's L,I row, the positive's and negatives' I,U and I,L rows).
* Optimizer: the paper uses plain SGD. The factor tables are sparse embeddings, so every update
  touches only the rows of the batch: ``optimizer: sgd`` is the paper's rule on mini-batches,
  ``adagrad`` is sparse Adagrad, and the default ``adam`` is torch's SparseAdam (lazy Adam on
  the touched rows), which converges in far fewer epochs; ``adamw`` and a non-zero ``l2``
  (dense weight decay) are refused because they would touch every row at every step.
* Epochs and early stopping are chosen on the validation split by the shared loop
  (sessbench.training), as for every torch model.
* Initialization: the paper draws the factors from N(0, σ²); ``init_std`` is σ.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sessbench.data.sessions import Batch, Prefixes, TrainingData
from sessbench.errors import ConfigError
from sessbench.models import register_model
from sessbench.training import TRAINING_DEFAULTS, TorchSessionModel

__all__ = ["FPMC", "FPMCNet"]

SESSION_FACTORS = ("mean", "none")

#: FPMC's own hyperparameters; the training ones (epochs, lr, ...) come from TRAINING_DEFAULTS
FPMC_DEFAULTS: dict[str, Any] = {
    "factors": 100,
    "n_neg": 1,
    "reg": 1e-5,
    "init_std": 0.01,
    "session_factor": "mean",
}


class FPMCNet(nn.Module):
    """The four factor tables of FPMC for items 1..n_items (row 0 is padding, kept at zero).

    session_in: A, mean-pooled over the prefix into the session factor (replaces v_u^{U,I});
    item_user:  v_i^{I,U}, the candidate's factor against the session factor;
    item_last:  v_i^{I,L}, the candidate's factor against the last item;
    last_item:  v_l^{L,I}, the last item's transition factor.
    """

    def __init__(self, n_items: int, factors: int, init_std: float, session: bool) -> None:
        super().__init__()
        self.session = session
        names = ["item_last", "last_item"] + (["session_in", "item_user"] if session else [])
        for name in names:
            table = nn.Embedding(n_items + 1, factors, padding_idx=0, sparse=True)
            nn.init.normal_(table.weight, std=init_std)
            with torch.no_grad():
                table.weight[0].zero_()
            setattr(self, name, table)

    def session_vector(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(session factor [B, d], mean squared norm of the A rows used [B]) of padded prefixes.

        Only the real clicks are gathered (O(clicks x d) however long the longest prefix is);
        their rows get a sparse gradient.
        """
        mask = items > 0
        row = torch.nonzero(mask)[:, 0]
        rows = self.session_in(items[mask])  # [clicks, d]
        count = mask.sum(dim=1).clamp_min(1).to(rows.dtype)
        vector = torch.zeros(items.shape[0], rows.shape[1], dtype=rows.dtype, device=rows.device)
        vector = vector.index_add(0, row, rows) / count.unsqueeze(1)
        sq = torch.zeros(items.shape[0], dtype=rows.dtype, device=rows.device)
        sq = sq.index_add(0, row, rows.pow(2).sum(1)) / count
        return vector, sq

    def candidate_scores(self, batch: Batch, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores [B, C] of `candidates` [B, C] and the per-example L2 term [B] of the rows used."""
        last = self.last_item(batch.last_items)  # [B, d]
        cand_last = self.item_last(candidates)  # [B, C, d]
        scores = torch.einsum("bd,bcd->bc", last, cand_last)
        sq = last.pow(2).sum(1) + cand_last.pow(2).sum(dim=(1, 2))
        if self.session:
            session, sq_session = self.session_vector(batch.items)
            cand_user = self.item_user(candidates)
            scores = scores + torch.einsum("bd,bcd->bc", session, cand_user)
            sq = sq + sq_session + cand_user.pow(2).sum(dim=(1, 2))
        return scores, sq

    def all_scores(self, batch: Prefixes) -> torch.Tensor:
        """Scores [B, n_items + 1] of every item (evaluation): two dense products."""
        last = self.last_item.weight[batch.last_items]
        scores = last @ self.item_last.weight.T
        if self.session:
            session, _ = self.session_vector(batch.items)
            scores.addmm_(session, self.item_user.weight.T)
        return scores


@register_model(
    "fpmc",
    groups=("baselines", "paper"),
    defaults={**TRAINING_DEFAULTS, "lr_decay_step": 0, **FPMC_DEFAULTS},
    description="Factorized personalized Markov chain (S-BPR); the user factor is the prefix's mean item factor",
)
class FPMC(TorchSessionModel):
    """FPMC with a session factor (mean of learned item factors of the prefix) and S-BPR.

    Hyperparameters (besides the shared training ones): ``factors`` (d), ``n_neg`` negatives per
    positive, ``reg`` (S-BPR's L2 on the factors each example uses), ``init_std`` (σ of the
    normal initialization), ``session_factor`` ("mean", or "none" to drop the user term).
    See the module docstring for every adaptation.
    """

    def __init__(self, **params: Any) -> None:
        super().__init__(**{"lr_decay_step": 0, **FPMC_DEFAULTS, **params})
        self.factors = self._int("factors", minimum=1)
        self.n_neg = self._int("n_neg", minimum=1)
        self.reg = self._float("reg", minimum=0.0)
        self.init_std = self._float("init_std", minimum=0.0, strict=True)
        self.session_factor = str(self.params["session_factor"]).lower()
        if self.session_factor not in SESSION_FACTORS:
            raise ConfigError(
                f"model 'fpmc': session_factor={self.params['session_factor']!r}; choose one of "
                f"{', '.join(SESSION_FACTORS)}."
            )
        if self.optimizer_name == "adamw":
            raise ConfigError(
                "model 'fpmc': optimizer 'adamw' needs dense gradients; FPMC's factor tables are "
                "sparse. Use adam (SparseAdam), adagrad or sgd."
            )
        if self.l2 > 0:
            raise ConfigError(
                "model 'fpmc': l2 (dense weight decay) is not supported; S-BPR regularizes the "
                "factors each example uses: set reg instead."
            )
        if self.grad_clip is not None:
            raise ConfigError("model 'fpmc': grad_clip is not supported with sparse gradients.")

    def build(self, data: TrainingData) -> nn.Module:
        if data.n_items < 2:
            raise ConfigError("model 'fpmc' needs at least two items to draw negatives from.")
        return FPMCNet(data.n_items, self.factors, self.init_std, self.session_factor == "mean")

    @property
    def scoring_width(self) -> int:
        """Width of the dense scoring work (two item tables with a session factor), for `bench train`'s floor."""
        return self.factors * (2 if self.session_factor == "mean" else 1)

    def forward_scores(self, module: nn.Module, batch: Prefixes) -> torch.Tensor:
        return module.all_scores(batch)

    def loss(self, module: nn.Module, batch: Batch) -> torch.Tensor:
        """S-BPR: -ln σ(x̂_pos - x̂_neg) averaged over the negatives, plus reg * ||factors used||²."""
        n_items = int(self.n_items or 0)
        targets = batch.targets
        # uniform over the n_items - 1 items other than the target: draw from 1..n_items-1,
        # then shift the draws at or above the target up by one
        neg = torch.randint(1, n_items, (len(batch), self.n_neg), device=targets.device)
        neg = neg + (neg >= targets.unsqueeze(1)).to(neg.dtype)
        candidates = torch.cat([targets.unsqueeze(1), neg], dim=1)
        scores, sq = module.candidate_scores(batch, candidates)
        ranking = -F.logsigmoid(scores[:, :1] - scores[:, 1:]).mean()
        return ranking + self.reg * sq.mean()

    def make_optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        """SparseAdam / SGD / Adagrad on FPMC's sparse tables; refuses any other module.

        The sparse optimizers fail on dense gradients, so a module that is not an `FPMCNet`
        (e.g. a dense table a benchmark builds) gets an immediate TypeError instead of a
        failure at its first step.
        """
        if not isinstance(module, FPMCNet):
            raise TypeError(
                f"fpmc's optimizer is for its sparse factor tables (FPMCNet), not {type(module).__name__}"
            )
        params = [p for p in module.parameters() if p.requires_grad]
        if self.optimizer_name == "adam":
            return torch.optim.SparseAdam(params, lr=self.lr)
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(params, lr=self.lr)
        return torch.optim.Adagrad(params, lr=self.lr)
