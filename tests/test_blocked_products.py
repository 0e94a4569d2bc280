"""The blocked item-table products equal the plain ones, on block boundaries too."""

from __future__ import annotations

import pytest
import torch

import sessbench.blocked_products as blocked


@pytest.mark.parametrize("n", [3, 8, 9, 30])
def test_blocked_products_equal_plain_ones(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    monkeypatch.setattr(blocked, "CPU_ITEM_BLOCK", 4)
    torch.manual_seed(n)
    vectors, table, grad_scores = torch.randn(5, 3), torch.randn(n, 3), torch.randn(5, n)
    wide = torch.full((5, n + 1), float("nan"))
    blocked.scores_into(vectors, table, wide[:, 1:])  # a column slice, as SR-GNN's evaluation output
    torch.testing.assert_close(wide[:, 1:], vectors @ table.T)
    assert torch.isnan(wide[:, 0]).all()
    grad = blocked.table_grad_into(grad_scores, vectors, torch.empty(n, 3))
    torch.testing.assert_close(grad, grad_scores.T @ vectors)
    blocked.table_grad_into(grad_scores, vectors, grad, accumulate=True)
    torch.testing.assert_close(grad, 2 * grad_scores.T @ vectors)


def test_blocks_cover_every_item_once_and_only_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocked, "CPU_ITEM_BLOCK", 4)
    ranges = blocked.item_blocks(10, torch.device("cpu"))
    assert ranges == [(0, 4), (4, 8), (8, 10)]
    assert blocked.item_blocks(10, torch.device("meta")) == [(0, 10)]
