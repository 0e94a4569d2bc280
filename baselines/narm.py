"""NARM: Neural Attentive session-based Recommendation Model (Li et al., CIKM 2017).

A GRU encodes the prefix. The *global* encoder is its last hidden state h_t (the sequential
behaviour); the *local* encoder attends over all hidden states with the last one as the query,
alpha_tj = v^T sigmoid(A1 h_t + A2 h_j), normalized by a softmax over the prefix's real
positions (the main purpose). The session is c = [h_t; sum_j alpha_tj h_j], and a bilinear
decoder scores item i as emb_i^T B c, with the *input* item embeddings as the output table.
Trained with full softmax cross-entropy over all items.

Paper settings (the defaults): embedding 50, hidden 100, Adam lr 0.001, mini-batch 512, dropout
0.25 between the embedding and the GRU and 0.5 between the encoder and the decoder. The
official code (lijingsdu/sessionRec_NARM) trains at most 30 epochs without a learning-rate
schedule; we do the same, with the shared loop's validation-based early stopping.

What sessbench adapts: the attention is normalized with a masked softmax as in the official
code (the paper leaves the normalization out) and uses the logistic sigmoid of the paper (the
code uses Theano's hard_sigmoid); parameters start from torch's default initialisation (the
paper does not give one); padded prefixes are packed so the GRU never runs over padding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from sessbench.data.sessions import Prefixes, TrainingData
from sessbench.models import register_model
from sessbench.training import TRAINING_DEFAULTS, TorchSessionModel

NARM_DEFAULTS: dict[str, Any] = {
    **TRAINING_DEFAULTS,
    "epochs": 30,
    "batch_size": 512,
    "lr": 0.001,
    "lr_decay_step": 0,
    "embedding_size": 50,
    "hidden_size": 100,
    "dropout_embed": 0.25,
    "dropout_context": 0.5,
}


class NARMNet(nn.Module):
    """Embedding -> GRU -> global + attentive local encoders -> bilinear decoder."""

    def __init__(self, n_items: int, embedding_size: int, hidden_size: int, dropout_embed: float, dropout_context: float) -> None:
        super().__init__()
        self.emb = nn.Embedding(n_items + 1, embedding_size, padding_idx=0)
        self.emb_dropout = nn.Dropout(dropout_embed)
        self.gru = nn.GRU(embedding_size, hidden_size, batch_first=True)
        self.a1 = nn.Linear(hidden_size, hidden_size, bias=False)  # query: the last hidden state
        self.a2 = nn.Linear(hidden_size, hidden_size, bias=False)  # keys: every hidden state
        self.v = nn.Linear(hidden_size, 1, bias=False)
        self.context_dropout = nn.Dropout(dropout_context)
        self.bilinear = nn.Linear(2 * hidden_size, embedding_size, bias=False)

    def session(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """float [B, embedding_size]: B c, the session in item-embedding space."""
        width = items.shape[1]
        x = self.emb_dropout(self.emb(items))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, last = self.gru(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=width)  # [B, L, H]
        h_t = last[-1]  # [B, H], the state after each prefix's last click
        energy = self.v(torch.sigmoid(self.a2(states) + self.a1(h_t).unsqueeze(1))).squeeze(2)
        energy = energy.masked_fill(items == 0, float("-inf"))
        alpha = torch.softmax(energy, dim=1)
        local = torch.bmm(alpha.unsqueeze(1), states).squeeze(1)
        context = self.context_dropout(torch.cat([h_t, local], dim=1))
        return self.bilinear(context)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.session(items, lengths) @ self.emb.weight.T


@register_model(
    "narm",
    groups=("baselines", "paper"),
    defaults=NARM_DEFAULTS,
    description="NARM (Li et al. 2017): GRU with global and attentive local encoders, bilinear decoder",
)
class NARM(TorchSessionModel):
    """NARM with the paper's settings, trained by the shared loop with full cross-entropy."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**{**NARM_DEFAULTS, **params})
        self.embedding_size = self._int("embedding_size", minimum=1)
        self.hidden_size = self._int("hidden_size", minimum=1)
        self.dropout_embed = self._float("dropout_embed", minimum=0.0)
        self.dropout_context = self._float("dropout_context", minimum=0.0)
        for key in ("dropout_embed", "dropout_context"):
            if getattr(self, key) >= 1.0:
                raise self._bad(key, "must be < 1")

    def build(self, data: TrainingData) -> torch.nn.Module:
        return NARMNet(data.n_items, self.embedding_size, self.hidden_size, self.dropout_embed, self.dropout_context)

    def forward_scores(self, module: torch.nn.Module, batch: Prefixes) -> torch.Tensor:
        return module(batch.items, batch.lengths)
