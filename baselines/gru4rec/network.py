"""The GRU4Rec network: item input (three embedding modes), GRU layers, item output layer.

Embedding modes (official names in brackets):
* ``shared`` (constrained embedding): the output item table `Wy` is also the input embedding, so
  the input size is the last layer's size. Usually the best mode.
* ``separate`` (embedding = k): an input table of its own, of size `embedding_size`.
* ``none`` (embedding = 0): the one-hot item feeds the first GRU layer directly; its input weights
  are then a table of 3 x units rows per item, looked up instead of multiplied.

Item tables use sparse gradients (see optim.py). Scores are `h Wy^T + By` with an item bias By;
By is stored as the last column of the output table, so that one lookup (and, in shared mode,
one lookup for inputs and outputs together, as the official code does) gives one sparse gradient
per step instead of three. Adagrad is element-wise, so this changes no update.
Weights are drawn uniformly from +-sqrt(6 / (fan_in + fan_out)) per gate matrix, biases start at
zero. The GRU is the reset-after-matmul form of torch's GRUCell and of the PyTorch GRU4Rec.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EMBEDDING_MODES = ("shared", "separate", "none")


def uniform_glorot_(tensor: torch.Tensor, fan_in: int, fan_out: int) -> torch.Tensor:
    """Fill with U(-s, s), s = sqrt(6 / (fan_in + fan_out)) (GRU4Rec's initialisation)."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return tensor.uniform_(-bound, bound)


def init_gates_(weight: torch.Tensor, fan_in: int, units: int, dim: int = 0) -> None:
    """Initialise a weight holding 3 gate matrices along `dim`, each as its own matrix.

    [3 * units, fan_in] for torch-layout weights (dim 0), [rows, 3 * units] for a lookup table
    (dim 1).
    """
    for chunk in weight.chunk(3, dim=dim):
        uniform_glorot_(chunk, fan_in, units)


class GRU4RecNet(nn.Module):
    """Parameters and the two ways of running them: one session-parallel step, or whole prefixes."""

    def __init__(
        self,
        n_items: int,
        layers: list[int],
        embedding: str = "shared",
        embedding_size: int = 0,
        dropout_embed: float = 0.0,
        dropout_hidden: float = 0.0,
    ) -> None:
        super().__init__()
        if embedding not in EMBEDDING_MODES:
            raise ValueError(f"embedding must be one of {EMBEDDING_MODES}")
        self.n_items = n_items
        self.layers = list(layers)
        self.embedding = embedding
        self.dropout_embed = float(dropout_embed)
        self.dropout_hidden = float(dropout_hidden)
        rows = n_items + 1  # row 0 is padding: never a target, never sampled, masked at prediction
        last = self.layers[-1]
        # output item table: columns 0..last-1 are Wy, the last column is the item bias By
        self.Wy = nn.Embedding(rows, last + 1, sparse=True)

        if embedding == "shared":
            n_input = last
        elif embedding == "separate":
            n_input = embedding_size if embedding_size > 0 else self.layers[0]
            self.E = nn.Embedding(rows, n_input, sparse=True)
        else:
            n_input = n_items
            # the one-hot input's weights of the first layer, one row of 3 gates per item
            self.Wx0 = nn.Embedding(rows, 3 * self.layers[0], sparse=True)
        self.w_ih = nn.ParameterList()
        self.w_hh = nn.ParameterList()
        self.b_ih = nn.ParameterList()
        self.b_hh = nn.ParameterList()
        for i, units in enumerate(self.layers):
            fan_in = n_input if i == 0 else self.layers[i - 1]
            if not (i == 0 and embedding == "none"):
                self.w_ih.append(nn.Parameter(torch.empty(3 * units, fan_in)))
            self.w_hh.append(nn.Parameter(torch.empty(3 * units, units)))
            self.b_ih.append(nn.Parameter(torch.zeros(3 * units)))
            self.b_hh.append(nn.Parameter(torch.zeros(3 * units)))
        self.n_input = n_input
        self.reset_parameters()

    def reset_parameters(self) -> None:
        n = self.n_items
        last = self.layers[-1]
        uniform_glorot_(self.Wy.weight[:, :last], n, last)
        nn.init.zeros_(self.Wy.weight[:, last])
        if self.embedding == "separate":
            uniform_glorot_(self.E.weight, n, self.n_input)
        if self.embedding == "none":
            init_gates_(self.Wx0.weight, n, self.layers[0], dim=1)
        offset = 1 if self.embedding == "none" else 0
        for i, units in enumerate(self.layers):
            fan_in = self.n_input if i == 0 else self.layers[i - 1]
            if i >= offset:
                init_gates_(self.w_ih[i - offset], fan_in, units)
            init_gates_(self.w_hh[i], units, units)
            nn.init.zeros_(self.b_ih[i])
            nn.init.zeros_(self.b_hh[i])
        with torch.no_grad():  # padding row: keeps prediction-time padding inert and visible
            for table in (self.Wy.weight, *self._input_tables()):
                table[0].zero_()

    def _input_tables(self) -> list[torch.Tensor]:
        if self.embedding == "separate":
            return [self.E.weight]
        if self.embedding == "none":
            return [self.Wx0.weight]
        return []

    # ------------------------------------------------------------------ pieces
    def input_gates(self, items: torch.Tensor, dropout: bool, embedded: torch.Tensor | None = None) -> torch.Tensor:
        """float [..., 3 * layers[0]]: the first layer's input contribution W_ih x + b_ih.

        embedded: the items' input vectors when the caller has already looked them up.
        """
        if self.embedding == "none":
            return self.Wx0(items) + self.b_ih[0]
        if embedded is not None:
            x = embedded
        elif self.embedding == "shared":
            x = self.Wy(items)[..., : self.layers[-1]]
        else:
            x = self.E(items)
        if dropout and self.dropout_embed > 0:
            x = F.dropout(x, self.dropout_embed, training=True)
        return F.linear(x, self.w_ih[0], self.b_ih[0])

    def layer_input_gates(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Input contribution of layer i >= 1 from the previous layer's output x."""
        offset = 1 if self.embedding == "none" else 0
        return F.linear(x, self.w_ih[i - offset], self.b_ih[i])

    def cell(self, i: int, gi: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One GRU step of layer i from precomputed input gates gi (r, z, n order, as torch)."""
        gh = F.linear(h, self.w_hh[i], self.b_hh[i])
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return n + z * (h - n)  # (1 - z) * n + z * h

    # ------------------------------------------------------------------ training: one step
    def step(
        self, items: torch.Tensor, hidden: list[torch.Tensor], dropout: bool, embedded: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """New hidden states (one per layer) after feeding `items` [B]; the last is the output.

        With dropout, the dropped-out activations are both the output and the carried state, as
        in the official code.
        """
        new: list[torch.Tensor] = []
        x = None
        for i in range(len(self.layers)):
            gi = self.input_gates(items, dropout, embedded) if i == 0 else self.layer_input_gates(i, x)
            h = self.cell(i, gi, hidden[i])
            if dropout and self.dropout_hidden > 0:
                h = F.dropout(h, self.dropout_hidden, training=True)
            new.append(h)
            x = h
        return new

    def train_step(
        self, items: torch.Tensor, hidden: list[torch.Tensor], columns: torch.Tensor, dropout: bool
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """One session-parallel step: new hidden states and the scores of `columns` [B, C].

        In shared mode the inputs' and the columns' rows come from one lookup of the output table.
        """
        last = self.layers[-1]
        embedded = None
        if self.embedding == "shared":
            rows = self.Wy(torch.cat([items, columns]))
            embedded, out_rows = rows[: len(items), :last], rows[len(items) :]
        else:
            out_rows = self.Wy(columns)
        hidden = self.step(items, hidden, dropout, embedded)
        return hidden, self._score_rows(hidden[-1], out_rows)

    def _score_rows(self, out: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        last = self.layers[-1]
        return torch.addmm(rows[:, last], out, rows[:, :last].T)

    def all_scores(self, out: torch.Tensor) -> torch.Tensor:
        """float [B, n_items + 1]: scores of every item (column 0 is padding)."""
        return self._score_rows(out, self.Wy.weight)

    @property
    def output_weights(self) -> torch.Tensor:
        """[n_items + 1, layers[-1]]: the item vectors of the output layer (Wy)."""
        return self.Wy.weight[:, : self.layers[-1]]

    @property
    def output_bias(self) -> torch.Tensor:
        """[n_items + 1]: the item biases (By)."""
        return self.Wy.weight[:, self.layers[-1]]

    # ------------------------------------------------------------------ prediction: prefixes
    def encode_prefixes(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """float [B, layers[-1]]: the last layer's state after each prefix, run from zero.

        Vectorized over the batch: the batch is sorted by length and step t updates only the
        prefixes longer than t (a packed sequence), so the work is proportional to the clicks,
        not to B x the longest prefix. No dropout.
        """
        b, width = items.shape
        if b == 0:
            return items.new_zeros((0, self.layers[-1]), dtype=self.Wy.weight.dtype)
        order = torch.argsort(lengths, descending=True, stable=True)
        items = items[order]
        counts = np.bincount(lengths.cpu().numpy(), minlength=width + 1)
        # active[t] = number of prefixes with length > t
        active = (b - np.cumsum(counts)[:width]).tolist()
        x = self.input_gates(items, dropout=False)  # [B, L, 3 * units]
        for i in range(len(self.layers)):
            if i > 0:
                x = self.layer_input_gates(i, outputs)  # noqa: F821 - set by the previous layer
            h = x.new_zeros((b, self.layers[i]))
            last_layer = i == len(self.layers) - 1
            outputs = x if last_layer else x.new_zeros((b, width, self.layers[i]))
            for t in range(width):
                n = active[t]
                if n == 0:
                    break
                h_t = self.cell(i, x[:n, t], h[:n])
                h = torch.cat([h_t, h[n:]]) if n < b else h_t
                if not last_layer:
                    outputs[:n, t] = h_t
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(b, device=order.device)
        return h[inverse]
