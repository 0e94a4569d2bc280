"""STAMP: Short-Term Attention/Memory Priority model (Liu et al., KDD 2018).

With x_1..x_t the prefix's item embeddings, x_t the last click (the short-term memory) and
m_s = mean(x_1..x_t) the general interest:

    alpha_i = w_0^T sigmoid(W_1 x_i + W_2 x_t + W_3 m_s + b_a)     attention over the prefix
    m_a     = sum_i alpha_i x_i                                     attentive session memory
    h_s     = tanh(W_s m_a + b_s),  h_t = tanh(W_t x_t + b_t)       the two MLP cells
    z_j     = <h_s, h_t, x_j> = sum_k h_s[k] h_t[k] x_j[k]          trilinear composition

and the next-item distribution is softmax(z) over all items (the item embeddings are both input
and output), trained with cross-entropy.

Paper settings (the defaults): embedding 100; weights drawn from N(0, 0.05^2) and item
embeddings from N(0, 0.002^2), biases zero; Adam with learning rate 0.005 (paper; the official
code's config, uestcnlp/STAMP, uses 0.003); mini-batch 512.

What sessbench adapts, following the official code where the paper is silent or the code
differs in what produced the published numbers: the attention weights are not normalized (as
in the paper and the code); the trilinear scores go to the softmax directly (the paper writes a
sigmoid before the softmax, which would squeeze every logit into (0, 1); the code has none);
padded positions get zero attention; no embedding max-norm (code) and no gradient clipping.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sessbench.data.sessions import Prefixes, TrainingData
from sessbench.models import register_model
from sessbench.training import TRAINING_DEFAULTS, TorchSessionModel

STAMP_DEFAULTS: dict[str, Any] = {
    **TRAINING_DEFAULTS,
    "epochs": 30,
    "batch_size": 512,
    "lr": 0.005,
    "lr_decay_step": 0,
    "embedding_size": 100,
    "init_std": 0.05,
    "embedding_init_std": 0.002,
}


class STAMPNet(nn.Module):
    """Attention with the last click and the prefix mean, two MLP cells, trilinear scores."""

    def __init__(self, n_items: int, dim: int, init_std: float, embedding_init_std: float) -> None:
        super().__init__()
        self.emb = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.w1 = nn.Linear(dim, dim, bias=False)  # applied to each x_i
        self.w2 = nn.Linear(dim, dim, bias=False)  # to the last click x_t
        self.w3 = nn.Linear(dim, dim, bias=True)  # to the mean m_s; its bias is b_a
        self.w0 = nn.Linear(dim, 1, bias=False)
        self.mlp_s = nn.Linear(dim, dim)
        self.mlp_t = nn.Linear(dim, dim)
        with torch.no_grad():
            nn.init.normal_(self.emb.weight, 0.0, embedding_init_std)
            self.emb.weight[0].zero_()
            for layer in (self.w1, self.w2, self.w3, self.w0, self.mlp_s, self.mlp_t):
                nn.init.normal_(layer.weight, 0.0, init_std)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)

    def session(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """float [B, dim]: h_s * h_t, which the trilinear composition dots with every item."""
        mask = (items > 0).unsqueeze(2).to(self.emb.weight.dtype)  # [B, L, 1]
        x = self.emb(items) * mask  # padding rows contribute nothing
        last = x[torch.arange(len(items), device=items.device), lengths - 1]  # x_t
        mean = x.sum(1) / lengths.unsqueeze(1).to(x.dtype)  # m_s
        hidden = torch.sigmoid(self.w1(x) + (self.w2(last) + self.w3(mean)).unsqueeze(1))
        alpha = self.w0(hidden) * mask  # [B, L, 1], zero on padding
        memory = (alpha * x).sum(1)  # m_a
        return torch.tanh(self.mlp_s(memory)) * torch.tanh(self.mlp_t(last))

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.session(items, lengths) @ self.emb.weight.T


@register_model(
    "stamp",
    groups=("baselines", "paper"),
    defaults=STAMP_DEFAULTS,
    description="STAMP (Liu et al. 2018): attention with last click and session mean, trilinear scores",
)
class STAMP(TorchSessionModel):
    """STAMP with the paper's settings, trained by the shared loop with full cross-entropy."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**{**STAMP_DEFAULTS, **params})
        self.embedding_size = self._int("embedding_size", minimum=1)
        self.init_std = self._float("init_std", minimum=0.0, strict=True)
        self.embedding_init_std = self._float("embedding_init_std", minimum=0.0, strict=True)

    def build(self, data: TrainingData) -> torch.nn.Module:
        return STAMPNet(data.n_items, self.embedding_size, self.init_std, self.embedding_init_std)

    def forward_scores(self, module: torch.nn.Module, batch: Prefixes) -> torch.Tensor:
        return module(batch.items, batch.lengths)
