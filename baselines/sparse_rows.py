"""CSR helpers shared by the models that score from item-to-item or session rows.

- `row_blocks`: consecutive row ranges whose work stays under a budget, so that a block-wise
  sparse product (Item-KNN's and AR's co-occurrences, the kNN models' overlaps) has a bounded
  peak memory whatever the catalogue or batch size.
- `SparseRows`: a CSR matrix held as torch tensors on the fit device, whose rows (one per
  prefix's last item) are gathered into a dense [B, n_cols] score matrix in one scatter.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["SparseRows", "row_blocks", "top_n_per_row"]


def row_blocks(work: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive row ranges whose summed `work` stays within `budget` (>= 1 row each)."""
    bounds = [0]
    cum = np.cumsum(work, dtype=np.int64)
    while bounds[-1] < len(work):
        start = bounds[-1]
        base = cum[start - 1] if start > 0 else 0
        end = int(np.searchsorted(cum, base + budget, side="right"))
        bounds.append(max(end, start + 1))
    return list(zip(bounds[:-1], bounds[1:]))


def top_n_per_row(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int, n: int,
    order_by: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the `n` largest values (ties: lower column first), best first.

    `order_by` (default: `values`) is what is ranked, e.g. `baselines.ties.tie_key(values)`.
    Returns (counts per row [n_rows], columns, values), the kept entries grouped by row.
    """
    order = np.lexsort((cols, -(values if order_by is None else order_by), rows))
    rows, cols, values = rows[order], cols[order], values[order]
    per_row = np.bincount(rows, minlength=n_rows)
    row_start = np.cumsum(per_row) - per_row
    rank = np.arange(len(rows), dtype=np.int64) - row_start[rows]
    keep = rank < n
    return np.minimum(per_row, n), cols[keep], values[keep]


class SparseRows:
    """A CSR matrix held as torch tensors on a device; `dense(rows)` gathers rows densely."""

    def __init__(self, matrix: sp.csr_array, device: torch.device, dtype: torch.dtype) -> None:
        self.n_cols = matrix.shape[1]
        self.device = device
        self.dtype = dtype
        self.indptr = torch.from_numpy(matrix.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(matrix.indices.astype(np.int64)).to(device)
        self.values = torch.from_numpy(np.asarray(matrix.data, dtype=np.float64)).to(device, dtype)

    def dense(self, rows: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """[len(rows), n_cols]: the rows, added to `base` (a [n_cols] row, default zeros)."""
        rows = rows.to(self.device)
        starts = self.indptr[rows]
        counts = self.indptr[rows + 1] - starts
        out_row = torch.repeat_interleave(torch.arange(len(rows), device=self.device), counts)
        first = torch.cumsum(counts, 0) - counts  # position of each row's first entry
        pos = torch.arange(int(counts.sum()), device=self.device) - torch.repeat_interleave(first, counts)
        pos += torch.repeat_interleave(starts, counts)
        if base is None:
            out = torch.zeros(len(rows), self.n_cols, dtype=self.dtype, device=self.device)
        else:
            out = base.to(self.device, self.dtype).unsqueeze(0).repeat(len(rows), 1)
        out.index_put_((out_row, self.indices[pos]), self.values[pos], accumulate=True)
        return out
