"""Time the item-table products in one call, in blocks of items (sessbench.blocked_products) and in bf16.

The two products whose output or input is a [B, n] score matrix, at the YOOCHOOSE 1/64 training
shape by default (B = 100, d = 100, n = 37,484), on one thread:

    python scripts/bench_blocked_products.py [--batch 100] [--dim 100] [--items 37484]
        [--block 1024] [--rounds 6] [--threads 1]

Each variant runs `--reps` times per round, rounds interleave the variants (so a machine that
slows down mid-run slows all of them), and the median round is printed. Run it on an idle machine.

The bf16 variants answer whether `--precision bf16` could speed training up on this CPU: each
takes fp32 operands and gives an fp32 result, as a training step needs (the softmax and Adam's
master weights stay fp32), so the casts are counted: the table cast once per step, the [B, n]
operands cast each product. The last lines compare the three products of one training step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

import sessbench.blocked_products as blocked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--items", type=int, default=37_484)
    parser.add_argument("--block", type=int, default=blocked.CPU_ITEM_BLOCK)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    blocked.CPU_ITEM_BLOCK = args.block
    g = torch.Generator().manual_seed(0)
    table = torch.rand(args.items, args.dim, generator=g) * 0.2 - 0.1
    vectors = torch.randn(args.batch, args.dim, generator=g)
    grad_scores = torch.softmax(torch.randn(args.batch, args.items, generator=g), 1)
    scores, grad = torch.empty(args.batch, args.items), torch.empty(args.items, args.dim)
    table_bf16 = table.bfloat16()

    variants: dict[str, Callable[[], object]] = {
        "scores, one call": lambda: torch.mm(vectors, table.t(), out=scores),
        "scores, blocked": lambda: blocked.scores_into(vectors, table, scores),
        "table gradient, one call": lambda: torch.mm(grad_scores.t(), vectors, out=grad),
        "table gradient, blocked": lambda: blocked.table_grad_into(grad_scores, vectors, grad),
        "vectors' gradient (one call)": lambda: torch.mm(grad_scores, table),
        "table to bf16 (once a step)": lambda: table_bf16.copy_(table),
        "scores, bf16": lambda: scores.copy_(torch.mm(vectors.bfloat16(), table_bf16.t())),
        "table gradient, bf16": lambda: grad.copy_(torch.mm(grad_scores.bfloat16().t(), vectors.bfloat16())),
        "vectors' gradient, bf16": lambda: torch.mm(grad_scores.bfloat16(), table_bf16).float(),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():
        fn()
    for _ in range(args.rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            for _ in range(args.reps):
                fn()
            times[name].append(1000 * (time.perf_counter() - start) / args.reps)
    print(
        f"[{args.batch} x {args.dim}] x [{args.dim} x {args.items}], blocks of {args.block} items, "
        f"{torch.get_num_threads()} thread(s); median of {args.rounds} rounds of {args.reps}"
    )
    for name, values in times.items():
        print(f"  {name:30s} {statistics.median(values):8.2f} ms")
    med = {name: statistics.median(values) for name, values in times.items()}
    for what in ("scores", "table gradient"):
        one, blk = med[f"{what}, one call"], med[f"{what}, blocked"]
        print(f"  {what}: blocked is {one / blk:.2f} times as fast as one call")
    fp32 = med["scores, blocked"] + med["table gradient, blocked"] + med["vectors' gradient (one call)"]
    bf16 = (med["table to bf16 (once a step)"] + med["scores, bf16"] + med["table gradient, bf16"]
            + med["vectors' gradient, bf16"])
    print(f"  one step's three products: fp32 (blocked) {fp32:.2f} ms, bf16 with its casts {bf16:.2f} ms: "
          f"bf16 is {fp32 / bf16:.2f} times as fast")


if __name__ == "__main__":
    main()
