"""SR-GNN (Wu et al., "Session-based Recommendation with Graph Neural Networks", AAAI 2019).

The network computes what the official PyTorch code (CRIPAC-DIG/SR-GNN, pytorch_code/) computes:

1. **Session graph** of each prefix (nodes = distinct items, edges = consecutive clicks) with the
   connection matrix [A_in | A_out], in-edges normalized by in-degree and out-edges by
   out-degree (`srgnn.graph`, built for the whole batch on the training device).
2. **Gated GNN cell**, `step` times (default 1):
   a_in = A_in (h W_ein + b_ein) + b_iah, a_out = A_out (h W_eout + b_eout) + b_oah (the two
   propagation biases), then a GRU update of h with input [a_in; a_out]:
   r = σ(W_ir a + b_ir + W_hr h + b_hr), z = σ(W_iz a + b_iz + W_hz h + b_hz),
   n = tanh(W_in a + b_in + r ⊙ (W_hn h + b_hn)), h' = n + z ⊙ (h - n).
   That is exactly `torch.gru_cell` (same gate order and formula), which runs it as one op.
3. **Session embedding**: local s_l = the last click's node vector; global s_g = Σ over every
   position t of the prefix (repeats included) of α_t v_t with α_t = q^T σ(W1 s_l + b1 + W2 v_t
   + b2) (no softmax, as in the code); hybrid s = W3 [s_g; s_l] + b3.
4. **Scores** s · e_i against the item embedding table (the same table that feeds the graph),
   cross-entropy over all items.

All parameters are initialised uniform(±1/sqrt(hidden_size)) like the official
`reset_parameters`. Training uses the shared loop (`sessbench.training`): Adam with L2 as
`weight_decay` (coupled, as the official code), lr 0.001 decayed ×0.1 every 3 epochs.

Implementation choices that change speed, not results:
* The item table holds items 1..n only (the official embedding has an extra padding row 0 that
  only receives weight decay); scores are one product with it, no slicing copy.
* The global attention is summed per node with occurrence counts instead of per position
  (the same sum; no [B, L, d] gather), and the edge linears of all blocks are one matrix.
* The training loss reuses one score buffer across steps and writes the item table's gradient
  (scoring product plus the graph lookup's rows) into a reused `.grad` (`srgnn.item_table`).
* Adam runs fused (`fused=True`, one kernel for all parameters) where torch supports it:
  the same update rule as the official dense Adam.
* Evaluation writes scores straight into the [B, n_items + 1] output.

Differences from the official code that do change results: none in the computation; the
random streams (initialisation, shuffling) differ, and the learning-rate decay timing follows
the shared loop (see `lr_schedule`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sessbench.data.sessions import Prefixes, TrainingData
from sessbench.errors import ConfigError
from sessbench.models import register_model
from sessbench.training import TRAINING_DEFAULTS, TorchSessionModel

from srgnn.global_graph import GlobalItemGraph
from srgnn.item_table import TableScratch, lookup, scores_cross_entropy
from srgnn.graph import (
    Connections,
    SessionGraphs,
    build_session_graphs,
    concat_connections,
    higher_order_connections,
    session_connections,
    weighted_edge_connections,
)

__all__ = ["CONNECTIONS", "READOUTS", "SRGNN", "SRGNN_DEFAULTS", "GatedGraphCell", "SRGNNNet"]

#: how the session graph's connection matrix is made (see srgnn.variants for the variants)
CONNECTIONS = {"session": 2, "global": 2, "full": 3}  # name -> number of N x N blocks
#: how the session embedding is read out of the node vectors
READOUTS = ("hybrid", "local", "average", "attention")
#: learning-rate decay timing: the shared loop's, or the official code's under torch >= 1.1
LR_SCHEDULES = ("after_epoch", "official_torch2")

SRGNN_DEFAULTS: dict[str, Any] = {
    **TRAINING_DEFAULTS,
    "l2": 1e-5,  # paper and official code
    "hidden_size": 100,
    "step": 1,
    "dropout": 0.0,  # not in the paper or code; an explicit option for small data (see configs)
    "lr_schedule": "after_epoch",
    "item_rows": None,  # None: the dataset's items; see SRGNN's docstring
}


class GatedGraphCell(nn.Module):
    """One propagation step of the gated GNN over `n_blocks` connection blocks.

    Parameters map to the official names: `edge_weight` / `edge_bias` stack linear_edge_in and
    linear_edge_out (and the FC variant's third edge linear); `propagation_bias` stacks b_iah
    and b_oah; `w_ih`, `w_hh`, `b_ih`, `b_hh` are the GRU weights, input size n_blocks * hidden.
    """

    def __init__(self, hidden_size: int, n_blocks: int) -> None:
        super().__init__()
        d, k = hidden_size, n_blocks
        self.hidden_size, self.n_blocks = d, k
        self.edge_weight = nn.Parameter(torch.empty(k * d, d))
        self.edge_bias = nn.Parameter(torch.empty(k * d))
        self.propagation_bias = nn.Parameter(torch.empty(k, d))
        self.w_ih = nn.Parameter(torch.empty(3 * d, k * d))
        self.w_hh = nn.Parameter(torch.empty(3 * d, d))
        self.b_ih = nn.Parameter(torch.empty(3 * d))
        self.b_hh = nn.Parameter(torch.empty(3 * d))

    def forward(self, connections: Connections, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [M, d] (packed nodes) -> the updated hidden [M, d].

        a[block, i] = Σ_j A_block[i, j] (W_e,block h_j + b_e,block) + b_block, the official
        `matmul(A_block, linear_edge_block(h)) + b_iah / b_oah`, summed over the non-zero
        entries of A only; then the GRU update with input [a_in; a_out; ...].
        """
        m, d = hidden.shape
        k = self.n_blocks
        if connections.n_blocks != k:
            raise ValueError(f"the cell has {k} blocks but the connections have {connections.n_blocks}")
        edge = F.linear(hidden, self.edge_weight, self.edge_bias).view(m * k, d)  # row i*k + block
        messages = torch.zeros(m * k, d, dtype=hidden.dtype, device=hidden.device)
        weighted = edge.index_select(0, connections.gather_index()) * connections.weight.unsqueeze(1)
        messages = messages.index_add(0, connections.scatter_index(), weighted)
        inputs = messages.view(m, k * d) + self.propagation_bias.view(1, k * d)
        return torch.gru_cell(inputs, hidden, self.w_ih, self.w_hh, self.b_ih, self.b_hh)


class SRGNNNet(nn.Module):
    """The SR-GNN network: session graphs -> gated GNN -> session embedding.

    `item_embedding` [n_items, d]: row i-1 is item i. The scoring product is done by the model
    class (`SRGNN`), which owns the loss and the output layout.
    """

    def __init__(
        self,
        n_items: int,
        hidden_size: int = 100,
        step: int = 1,
        connection: str = "session",
        readout: str = "hybrid",
        dropout: float = 0.0,
        global_graph: GlobalItemGraph | None = None,
        item_rows: int | None = None,
    ) -> None:
        super().__init__()
        if connection not in CONNECTIONS:
            raise ValueError(f"unknown connection '{connection}'; choose one of {', '.join(CONNECTIONS)}")
        if readout not in READOUTS:
            raise ValueError(f"unknown readout '{readout}'; choose one of {', '.join(READOUTS)}")
        if connection == "global" and global_graph is None:
            raise ValueError("connection 'global' needs the global item graph")
        d = hidden_size
        self.n_items, self.hidden_size, self.step = n_items, d, step
        self.connection, self.readout = connection, readout
        rows = n_items if item_rows is None else item_rows
        if rows < n_items:
            raise ValueError(f"item_rows ({rows}) must be at least the number of items ({n_items})")
        self.item_embedding = nn.Parameter(torch.empty(rows, d))
        self.cell = GatedGraphCell(d, CONNECTIONS[connection])
        if readout in ("hybrid", "attention"):
            self.linear_one = nn.Linear(d, d, bias=True)
            self.linear_two = nn.Linear(d, d, bias=True)
            self.linear_three = nn.Linear(d, 1, bias=False)
        if readout == "hybrid":
            self.linear_transform = nn.Linear(2 * d, d, bias=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.global_graph = global_graph
        self.table_scratch = TableScratch()  # training buffers of the item table (not state)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """uniform(±1/sqrt(d)) for every parameter, as the official `reset_parameters`."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for weight in self.parameters():
                weight.uniform_(-bound, bound)

    # -- graphs
    def graphs(self, items: torch.Tensor, lengths: torch.Tensor) -> SessionGraphs:
        return build_session_graphs(items, lengths, dtype=self.item_embedding.dtype)

    def connections(self, graphs: SessionGraphs) -> Connections:
        """The connection blocks: [A_in | A_out], or a variant's (see srgnn.variants)."""
        dtype = self.item_embedding.dtype
        if self.connection == "global":
            assert self.global_graph is not None
            w_in, w_out = self.global_graph.lookup(
                graphs.node_items[graphs.edge_src], graphs.node_items[graphs.edge_dst]
            )
            return weighted_edge_connections(graphs, w_in.to(dtype), w_out.to(dtype))
        blocks = session_connections(graphs, dtype=dtype)
        if self.connection == "full":
            blocks = concat_connections([blocks, higher_order_connections(graphs, block=2, dtype=dtype)])
        return blocks

    # -- forward
    def node_states(self, graphs: SessionGraphs, lookup_into_grad: bool = False) -> torch.Tensor:
        """[M, d]: the packed node vectors after `step` propagation steps.

        `lookup_into_grad`: the item vectors' gradient goes straight into the table's `.grad`
        (for `backward()`-based training; see srgnn.item_table).
        """
        hidden = lookup(self.item_embedding, graphs.node_items - 1, into_grad=lookup_into_grad)
        if self.dropout is not None:
            hidden = self.dropout(hidden)
        connections = self.connections(graphs)
        for _ in range(self.step):
            hidden = self.cell(connections, hidden)
        return hidden

    def session_vectors(
        self, items: torch.Tensor, lengths: torch.Tensor, lookup_into_grad: bool = False
    ) -> torch.Tensor:
        """[B, d]: the session embedding of each prefix (items [B, L] 0-padded, lengths [B])."""
        graphs = self.graphs(items, lengths)
        hidden = self.node_states(graphs, lookup_into_grad)
        local = hidden.index_select(0, graphs.last)  # [B, d]: s_l
        b, d = local.shape
        if self.readout == "local":
            out = local
        elif self.readout == "average":
            total = hidden.new_zeros(b, d).index_add(0, graphs.node_session, hidden * graphs.counts.unsqueeze(1))
            out = total / graphs.lengths.to(total.dtype).unsqueeze(1)
        else:
            # α for each node, counted once per position it occupies: Σ_t α_t v_t over positions
            q1 = self.linear_one(local).index_select(0, graphs.node_session)  # [M, d]
            q2 = self.linear_two(hidden)  # [M, d]
            alpha = self.linear_three(torch.sigmoid(q1 + q2)).squeeze(1)  # [M]
            weighted = hidden * (alpha * graphs.counts).unsqueeze(1)
            out = hidden.new_zeros(b, d).index_add(0, graphs.node_session, weighted)  # s_g
            if self.readout == "hybrid":
                out = self.linear_transform(torch.cat([out, local], dim=1))
        if self.dropout is not None:
            out = self.dropout(out)
        return out


@register_model(
    "srgnn",
    groups=("paper",),
    defaults=SRGNN_DEFAULTS,
    description="SR-GNN (AAAI 2019): gated GNN on session graphs, attention readout",
)
class SRGNN(TorchSessionModel):
    """SR-GNN: gated GNN over each prefix's session graph, hybrid local + attention readout.

    Hyperparameters (besides the shared training ones): hidden_size (100), step (GNN
    propagation steps, 1), l2 (Adam weight_decay, 1e-5), dropout (0: the paper has none; on
    the node embeddings and on the session embedding), lr_schedule ("after_epoch": decay after
    epochs 3, 6, ... as the paper and the shared loop; "official_torch2": one epoch earlier,
    as the official code's `scheduler.step()` at the start of each epoch does under torch >=
    1.1), item_rows (None: one table row per item of the dataset; a larger number adds rows for
    items that never occur, as the official code's hard-coded 37,484-row table does on any
    YOOCHOOSE data: they take part in the training softmax and the optimizer but are never
    candidates; only for reproducing official runs on samples).
    """

    #: connection matrix and readout; the variants (srgnn.variants) change these two
    connection: str = "session"
    readout: str = "hybrid"

    def __init__(self, **params: Any) -> None:
        super().__init__(**{**SRGNN_DEFAULTS, **params})
        self.hidden_size = self._int("hidden_size", minimum=1)
        self.step = self._int("step", minimum=1)
        self.dropout = self._float("dropout", minimum=0.0)
        if self.dropout >= 1.0:
            raise self._bad("dropout", "must be below 1")
        self.item_rows: int | None = None if self.params["item_rows"] is None else self._int("item_rows", minimum=1)
        self.lr_schedule = str(self.params["lr_schedule"])
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"model '{self.label}': unknown lr_schedule '{self.lr_schedule}'; choose one of "
                f"{', '.join(LR_SCHEDULES)}."
            )

    def build(self, data: TrainingData) -> nn.Module:
        graph = GlobalItemGraph(data.train, data.n_items) if self.connection == "global" else None
        return SRGNNNet(
            data.n_items,
            hidden_size=self.hidden_size,
            step=self.step,
            connection=self.connection,
            readout=self.readout,
            dropout=self.dropout,
            global_graph=graph,
            item_rows=self.item_rows,
        )

    def forward_scores(self, module: nn.Module, batch: Prefixes) -> torch.Tensor:
        """[B, n_items + 1] scores; column 0 (padding) is -inf."""
        vectors = module.session_vectors(batch.items, batch.lengths)
        table = module.item_embedding[: module.n_items]  # rows past n_items (item_rows) are never candidates
        if torch.is_grad_enabled() and (vectors.requires_grad or table.requires_grad):
            return F.pad(vectors @ table.T, (1, 0), value=-math.inf)
        out = torch.empty(len(vectors), table.shape[0] + 1, dtype=vectors.dtype, device=vectors.device)
        torch.mm(vectors, table.T, out=out[:, 1:])
        out[:, 0] = -math.inf
        return out

    def loss(self, module: nn.Module, batch: Any) -> torch.Tensor:
        """Cross-entropy over all items (the official `CrossEntropyLoss(scores, targets - 1)`).

        For `loss.backward()` (the training loop): the item table's gradient is written into its
        `.grad` directly (reusing buffers across steps), so `torch.autograd.grad` would not see
        it (see srgnn.item_table); every other parameter is plain autograd.
        """
        vectors = module.session_vectors(batch.items, batch.lengths, lookup_into_grad=True)
        return scores_cross_entropy(vectors, module.item_embedding, batch.targets - 1, module.table_scratch)

    def make_optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        """Adam (dense, L2 as weight_decay) as the official code; fused into one kernel when torch can."""
        params = [p for p in module.parameters() if p.requires_grad]
        if self.optimizer_name == "adam" and _fused_adam_supported(params):
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.l2, fused=True)
        return super().make_optimizer(module)

    def make_scheduler(self, optimizer: torch.optim.Optimizer) -> Any | None:
        """The shared StepLR, or the official code's timing under torch >= 1.1 (one epoch earlier)."""
        if self.lr_schedule == "after_epoch" or self.lr_decay_step == 0:
            return super().make_scheduler(optimizer)
        step, rate = self.lr_decay_step, self.lr_decay_rate
        # epoch e (0-based) runs at lr * rate ** ((e + 1) // step): decays before epochs 2, 5, 8, ...
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: rate ** ((e + 1) // step))


def _fused_adam_supported(params: list[torch.Tensor]) -> bool:
    """Fused Adam needs floating-point params on one device type that has the fused kernel."""
    if not params:
        return False
    devices = {p.device.type for p in params}
    if len(devices) != 1 or not all(p.is_floating_point() for p in params):
        return False
    device = devices.pop()
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        return device in _get_fused_kernels_supported_devices()
    except ImportError:  # older torch: fused Adam only on cuda
        return device == "cuda"
