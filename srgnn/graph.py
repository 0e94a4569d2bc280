"""Session graphs of a whole batch, built with tensor operations on the batch's device.

The official SR-GNN code (pytorch_code/utils.py, `Data.get_slice`) builds each session's graph
with a Python loop per session and per click in numpy (nodes = `np.unique` of the prefix, alias
indices, a dense [N, 2N] connection matrix padded to the batch's largest node count), then
converts lists of arrays to tensors; at the YOOCHOOSE 1/64 shape that costs about a third of its
training time. Here the same graphs are computed for the whole batch at once with a sort,
cumulative sums and scatters, with no Python loop over sessions or clicks, and stored *packed*:
the M real nodes of the batch in one list (row by row, items in increasing order within a row,
as `np.unique` orders them). The GNN then runs its dense layers on the M real nodes only, never
on padding nodes, so one long session costs its own nodes, not B times its node count.

Connections are lists of weighted (block, target node, source node) triples: the cell computes
message[block, target] += weight * transformed[block, source]. That is exactly the official
`A[:, :, block] @ transformed` for the official dense matrix, whose non-zero entries are these
triples; `dense_blocks` and `connection_matrix` rebuild the official dense layout [A_in | A_out]
([B, N, k*N], padded to the batch's own largest node count) from them, for tests and inspection.

The official code's session connection matrix ([A_in | A_out], `session_connections`):
adj[u, v] = 1 when the prefix has a transition u -> v (repeated transitions count once,
self-loops are kept); A_in[i, j] = adj[j, i] / in_degree(i) and A_out[i, j] = adj[i, j] /
out_degree(i), where degrees count distinct neighbours; a node without in- (out-) edges has an
all-zero row (the official code divides by 1 there).

The official code also makes the padding item 0 a node of every session shorter than the
dataset's longest one; that node has no edges and is masked out of the readout, so it cannot
change any output, and it does not exist here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "Connections",
    "SessionGraphs",
    "build_session_graphs",
    "concat_connections",
    "connection_matrix",
    "dense_blocks",
    "higher_order_connections",
    "session_connections",
    "weighted_edge_connections",
]


@dataclass(frozen=True)
class SessionGraphs:
    """The graphs of one batch of B prefixes, with the M real nodes of the batch packed.

    node_items:   int64 [M], the item of each node (items 1..n_items).
    node_session: int64 [M], the batch row of each node (non-decreasing).
    n_nodes:      int64 [B], nodes per prefix (distinct items).
    node_start:   int64 [B], packed index of each row's first node.
    alias:        int64 [B, L], packed node of each click position (padding positions point at
                  a node of the same row and must be masked).
    mask:         bool [B, L], True on real clicks.
    lengths:      int64 [B], prefix lengths.
    last:         int64 [B], packed node of each prefix's last click.
    counts:       float [M], occurrences of each node in its prefix.
    edge_src, edge_dst: int64 [E], the distinct transitions src -> dst (packed nodes), sorted.
    """

    node_items: torch.Tensor
    node_session: torch.Tensor
    n_nodes: torch.Tensor
    node_start: torch.Tensor
    alias: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    last: torch.Tensor
    counts: torch.Tensor
    edge_src: torch.Tensor
    edge_dst: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def n_total_nodes(self) -> int:
        """M, the number of real nodes in the batch."""
        return int(self.node_items.shape[0])

    def node_rank(self) -> torch.Tensor:
        """int64 [M]: each node's index within its own prefix (its column in the dense layout)."""
        return torch.arange(self.n_total_nodes, device=self.node_items.device) - self.node_start[self.node_session]


@dataclass(frozen=True)
class Connections:
    """Weighted connections in `n_blocks` blocks: message[block, target] += weight * x[block, source].

    block, target, source: int64 [C] (target and source are packed node indices);
    weight: float [C]. Entries are distinct (block, target, source) triples.
    """

    n_blocks: int
    block: torch.Tensor
    target: torch.Tensor
    source: torch.Tensor
    weight: torch.Tensor

    def gather_index(self) -> torch.Tensor:
        """Row of x.view(M * n_blocks, d) that each connection reads."""
        return self.source * self.n_blocks + self.block

    def scatter_index(self) -> torch.Tensor:
        """Row of the message matrix [M * n_blocks, d] that each connection adds to."""
        return self.target * self.n_blocks + self.block


def build_session_graphs(
    items: torch.Tensor, lengths: torch.Tensor, dtype: torch.dtype = torch.float32
) -> SessionGraphs:
    """Graphs of a batch of left-aligned, 0-padded prefixes `items` [B, L] with `lengths` [B].

    Everything runs on `items.device`; sizes that depend on the data (M nodes, E edges) are
    read by boolean selection, the only host synchronisations.
    """
    if items.dim() != 2 or lengths.dim() != 1 or items.shape[0] != lengths.shape[0]:
        raise ValueError(
            f"build_session_graphs needs items [B, L] and lengths [B], got "
            f"{tuple(items.shape)} and {tuple(lengths.shape)}"
        )
    device = items.device
    b, width = items.shape
    items = items.long()
    lengths = lengths.to(device=device, dtype=torch.long)
    mask = torch.arange(width, device=device).unsqueeze(0) < lengths.unsqueeze(1)

    # Sort each row's items (padding last): equal items form runs, and a run start is a node.
    sentinel = torch.iinfo(torch.long).max
    ordered, order = torch.sort(torch.where(mask, items, sentinel), dim=1)
    starts = ordered != sentinel
    starts[:, 1:] &= ordered[:, 1:] != ordered[:, :-1]
    # packed node id of every sorted position: row-major running count of run starts
    packed_sorted = (torch.cumsum(starts.view(-1), dim=0) - 1).view(b, width)
    alias = torch.empty_like(order).scatter_(1, order, packed_sorted.clamp(min=0))
    node_items = ordered[starts]
    n_nodes = starts.sum(dim=1)
    node_start = torch.cumsum(n_nodes, dim=0) - n_nodes
    node_session = torch.repeat_interleave(torch.arange(b, device=device), n_nodes)
    m = node_items.shape[0]

    counts = torch.zeros(m, dtype=dtype, device=device)
    counts.index_add_(0, alias.reshape(-1), mask.reshape(-1).to(dtype))
    last = alias.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)

    # distinct transitions: packed ids are unique across the batch, so src * M + dst is a key
    valid = mask[:, 1:]
    keys = torch.unique(alias[:, :-1][valid] * m + alias[:, 1:][valid])
    return SessionGraphs(
        node_items=node_items, node_session=node_session, n_nodes=n_nodes, node_start=node_start,
        alias=alias, mask=mask, lengths=lengths, last=last, counts=counts,
        edge_src=torch.div(keys, max(m, 1), rounding_mode="floor"), edge_dst=keys % max(m, 1),
    )


def weighted_edge_connections(graphs: SessionGraphs, w_in: torch.Tensor, w_out: torch.Tensor) -> Connections:
    """Blocks (A_in, A_out) of the distinct edges with the given weights [E].

    For an edge u -> v: A_in[v, u] = w_in (node v reads u), A_out[u, v] = w_out (u reads v).
    """
    src, dst = graphs.edge_src, graphs.edge_dst
    e = src.shape[0]
    zeros = torch.zeros(e, dtype=torch.long, device=src.device)
    return Connections(
        n_blocks=2,
        block=torch.cat([zeros, zeros + 1]),
        target=torch.cat([dst, src]),
        source=torch.cat([src, dst]),
        weight=torch.cat([w_in, w_out]),
    )


def session_connections(graphs: SessionGraphs, dtype: torch.dtype = torch.float32) -> Connections:
    """The official [A_in | A_out]: in-edges / in-degree, out-edges / out-degree."""
    m = graphs.n_total_nodes
    src, dst = graphs.edge_src, graphs.edge_dst
    out_degree = torch.bincount(src, minlength=m).to(dtype)
    in_degree = torch.bincount(dst, minlength=m).to(dtype)
    return weighted_edge_connections(graphs, 1.0 / in_degree[dst], 1.0 / out_degree[src])


def higher_order_connections(graphs: SessionGraphs, block: int, dtype: torch.dtype = torch.float32) -> Connections:
    """One block with weight 1 for every (u, v) with u clicked before v anywhere in the prefix.

    u precedes v somewhere iff u's first position is before v's last position, so the block is
    one comparison of per-node first and last positions over the node pairs of each prefix
    (sum of n_nodes^2 pairs, enumerated without a loop). Node u reads node v (target u,
    source v), the orientation of A_out. An item clicked twice relates to itself.
    """
    device = graphs.alias.device
    b, width = graphs.alias.shape
    m = graphs.n_total_nodes
    pos = torch.arange(width, device=device).expand(b, width)
    flat_alias = graphs.alias.reshape(-1)
    first = torch.full((m,), width, dtype=torch.long, device=device)
    first.scatter_reduce_(0, flat_alias, torch.where(graphs.mask, pos, width).reshape(-1), reduce="amin")
    last = torch.full((m,), -1, dtype=torch.long, device=device)
    last.scatter_reduce_(0, flat_alias, torch.where(graphs.mask, pos, -1).reshape(-1), reduce="amax")
    # all ordered node pairs (i, j) of the same prefix
    per_node = graphs.n_nodes[graphs.node_session]  # partners of each node
    i = torch.repeat_interleave(torch.arange(m, device=device), per_node)
    offset = torch.arange(i.shape[0], device=device) - torch.repeat_interleave(
        torch.cumsum(per_node, dim=0) - per_node, per_node
    )
    j = graphs.node_start[graphs.node_session[i]] + offset
    keep = first[i] < last[j]
    i, j = i[keep], j[keep]
    return Connections(
        n_blocks=block + 1,
        block=torch.full_like(i, block),
        target=i,
        source=j,
        weight=torch.ones(i.shape[0], dtype=dtype, device=device),
    )


def concat_connections(parts: list[Connections]) -> Connections:
    """Blocks of several connection sets in one (block ids are kept; n_blocks is the largest)."""
    return Connections(
        n_blocks=max(p.n_blocks for p in parts),
        block=torch.cat([p.block for p in parts]),
        target=torch.cat([p.target for p in parts]),
        source=torch.cat([p.source for p in parts]),
        weight=torch.cat([p.weight for p in parts]),
    )


def dense_blocks(graphs: SessionGraphs, connections: Connections) -> torch.Tensor:
    """[B, k, N, N]: the connection blocks as dense matrices, N = the batch's largest node count."""
    n = int(graphs.n_nodes.max()) if graphs.batch_size else 0
    rank = graphs.node_rank()
    out = torch.zeros(
        graphs.batch_size, connections.n_blocks, n, n,
        dtype=connections.weight.dtype, device=connections.weight.device,
    )
    rows = graphs.node_session[connections.target]
    out.index_put_(
        (rows, connections.block, rank[connections.target], rank[connections.source]),
        connections.weight, accumulate=True,
    )
    return out


def connection_matrix(graphs: SessionGraphs, connections: Connections) -> torch.Tensor:
    """[B, N, k*N]: the official dense `A` ([A_in | A_out], blocks side by side)."""
    blocks = dense_blocks(graphs, connections)
    b, k, n, _ = blocks.shape
    return blocks.permute(0, 2, 1, 3).reshape(b, n, k * n)
