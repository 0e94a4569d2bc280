"""The global item graph of SR-GNN-NGC: transition counts over all training sessions.

Built once per fit from the training sessions (never validation or test) with numpy and
scipy.sparse. For every ordered pair of items (u, v) that follows each other somewhere in the
training sessions, with count c(u, v) (every occurrence counts, self-transitions included):

    out-weight(u, v) = c(u, v) / sum_w c(u, w)   (normalized by the source's out-degree)
    in-weight(u, v)  = c(u, v) / sum_w c(w, v)   (normalized by the target's in-degree)

The pairs are stored as one sorted int64 key array `u * (n_items + 1) + v` with the two weight
arrays beside it, as module buffers, so a batch looks up the weights of all its transitions with
one `torch.searchsorted` on the training device. A pair never seen in training (possible in
validation and test prefixes) has weight 0.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from sessbench.data.sessions import SessionSet

__all__ = ["GlobalItemGraph", "transition_counts"]


def transition_counts(sessions: SessionSet, n_items: int) -> sp.csr_array:
    """float64 CSR [n_items + 1, n_items + 1]: c(u, v), transitions u -> v inside sessions."""
    width = n_items + 1
    items = sessions.items.astype(np.int64)
    if len(items) < 2:
        return sp.csr_array((width, width), dtype=np.float64)
    first = np.zeros(len(items), dtype=bool)
    first[sessions.offsets[:-1][sessions.lengths > 0]] = True
    inside = ~first[1:]  # the pair (t, t+1) stays inside one session
    counts = sp.csr_array(
        (np.ones(int(inside.sum())), (items[:-1][inside], items[1:][inside])), shape=(width, width)
    )
    counts.sum_duplicates()
    counts.sort_indices()
    return counts


class GlobalItemGraph(torch.nn.Module):
    """Normalized global transition weights, looked up per pair of items on the device.

    Buffers: `keys` int64 [E] (sorted), `out_weight` and `in_weight` float [E]. They travel
    with the module (`.to(device)`) and are saved with its state.
    """

    def __init__(self, sessions: SessionSet, n_items: int) -> None:
        super().__init__()
        self.n_items = int(n_items)
        counts = transition_counts(sessions, n_items).tocoo()
        u, v, c = counts.row.astype(np.int64), counts.col.astype(np.int64), counts.data
        out_degree = np.bincount(u, weights=c, minlength=n_items + 1)
        in_degree = np.bincount(v, weights=c, minlength=n_items + 1)
        keys = u * (n_items + 1) + v
        order = np.argsort(keys, kind="stable")
        self.register_buffer("keys", torch.from_numpy(keys[order]))
        self.register_buffer("out_weight", torch.from_numpy((c / out_degree[u])[order]).float())
        self.register_buffer("in_weight", torch.from_numpy((c / in_degree[v])[order]).float())

    def lookup(self, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(in-weight, out-weight) of the pairs u -> v (same shapes as u); 0 for unseen pairs."""
        query = u.long() * (self.n_items + 1) + v.long()
        if self.keys.numel() == 0:
            zero = torch.zeros(query.shape, dtype=self.out_weight.dtype, device=query.device)
            return zero, zero.clone()
        pos = torch.searchsorted(self.keys, query.reshape(-1)).clamp_(max=self.keys.numel() - 1)
        found = (self.keys[pos] == query.reshape(-1)).to(self.out_weight.dtype)
        w_in = (self.in_weight[pos] * found).view(query.shape)
        w_out = (self.out_weight[pos] * found).view(query.shape)
        return w_in, w_out
