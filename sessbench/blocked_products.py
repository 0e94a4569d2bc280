"""Item-table products run block by block of items on the CPU, for speed.

A full-ranking model's two big training products have a small inner size: the scores
[B, n] = vectors [B, d] @ table.T and the table's gradient [n, d] = grad.T [n, B] @ vectors
[B, d], with B and d around 100 and n in the tens of thousands. For these shapes MKL's single
call on one CPU thread is about 1.4 times slower than the same product done over blocks of
about a thousand items, where a block of the table and of the scores stay in the core's cache
together. `python scripts/bench_blocked_products.py` measures it; on the machines we benchmark
on (100 x 100 x 37,484, one thread) it printed scores 21.2 ms in one call against 14.2 ms in
blocks (1.49 times as fast) and the table's gradient 21.6 against 15.8 ms (1.37 times). The
Python loop is over a few dozen blocks, never over items. The product that reduces over the items (the gradient of
the vectors, grad [B, n] @ table [n, d]) gains nothing from blocking and stays one call.

On other devices every function here is one call: their libraries handle these shapes.
`sessbench bench train` reports the training floor measured both with plain products (the
floor's definition) and with these blocked ones.
"""

from __future__ import annotations

import torch

__all__ = ["CPU_ITEM_BLOCK", "item_blocks", "scores_into", "table_grad_into"]

#: items per block on the CPU: a block of the table (1,024 x 100 floats) and of a batch's scores
#: (100 x 1,024) fit together in a 1 MiB L2 cache; 512 to 2,048 measured about the same
CPU_ITEM_BLOCK = 1024


def item_blocks(n: int, device: torch.device) -> list[tuple[int, int]]:
    """[start, stop) ranges over n items: blocks of `CPU_ITEM_BLOCK` on the CPU, one range elsewhere."""
    if device.type != "cpu" or n <= CPU_ITEM_BLOCK:
        return [(0, n)]
    return [(start, min(start + CPU_ITEM_BLOCK, n)) for start in range(0, n, CPU_ITEM_BLOCK)]


def scores_into(vectors: torch.Tensor, table: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out [B, n] = vectors [B, d] @ table.T ([n, d]); `out` may be a column slice of a wider buffer."""
    for start, stop in item_blocks(table.shape[0], out.device):
        torch.mm(vectors, table[start:stop].t(), out=out[:, start:stop])
    return out


def table_grad_into(
    grad_scores: torch.Tensor, vectors: torch.Tensor, grad: torch.Tensor, accumulate: bool = False
) -> torch.Tensor:
    """grad [n, d] = grad_scores.T ([B, n] transposed) @ vectors [B, d], or += with `accumulate`."""
    for start, stop in item_blocks(grad.shape[0], grad.device):
        block = grad_scores[:, start:stop].t()
        if accumulate:
            grad[start:stop].addmm_(block, vectors)
        else:
            torch.mm(block, vectors, out=grad[start:stop])
    return grad
