"""Check sessbench's SR-GNN against the official code (CRIPAC-DIG/SR-GNN), which you clone yourself.

Nothing of the official code ships with sessbench: this script imports `model.py` and `utils.py`
from your clone's `pytorch_code/` folder and compares them with `srgnn.model` on a split in the
official JSON layout (`sessbench data export DATASET --format srgnn-json`, or the
`official-split.json` of the shared data samples). Three commands:

* `equivalence`: both networks with the same weights (the official parameters copied onto ours)
  on real training batches: session vectors, scores, loss and every gradient; then both train
  `--steps` steps from the same weights on the same batches with their own Adam, per-step loss.
* `official`: the official training loop as its `main.py` runs it (best test P@20 / MRR@20
  over epochs), seeded, one thread; `--n-node` is its hard-coded table size (37,484 for
  YOOCHOOSE).
* `side-by-side`: `official` for one seed, with our model started from the official model's
  initial weights and fed the very same shuffled batches; per-epoch loss and test metrics of
  both. Same numbers mean the same training, so any gap between the two implementations' runs
  comes from the random draws (initialisation, shuffling), not from the computation.

    git clone https://github.com/CRIPAC-DIG/SR-GNN /tmp/SR-GNN
    python scripts/srgnn_official_check.py --official-dir /tmp/SR-GNN/pytorch_code \\
        --split ../shared/data/yoochoose-sample/official-split.json --train-key train_yoochoose1_4 \\
        side-by-side --seed 1 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sessbench.data.sessions import Batch  # noqa: E402
from srgnn.model import SRGNN, SRGNNNet  # noqa: E402


def load_official(folder: Path) -> tuple[Any, Any]:
    """The official `model` and `utils` modules from a clone's pytorch_code/ folder."""
    if not (folder / "model.py").is_file() or not (folder / "utils.py").is_file():
        sys.exit(f"error: {folder} has no model.py and utils.py; pass the pytorch_code/ folder of a SR-GNN clone")
    sys.path.insert(0, str(folder))
    import model as official_model  # type: ignore[import-not-found]
    import utils as official_utils  # type: ignore[import-not-found]

    return official_model, official_utils


def official_options(hidden: int = 100) -> argparse.Namespace:
    """The official main.py defaults (yoochoose / diginetica runs)."""
    return argparse.Namespace(
        batchSize=100, hiddenSize=hidden, lr=0.001, lr_dc=0.1, lr_dc_step=3, l2=1e-5, step=1,
        nonhybrid=False, epoch=30, patience=10, validation=False,
    )


def copy_into_ours(official: Any, n_items: int, n_node: int) -> tuple[SRGNN, SRGNNNet]:
    """Our SR-GNN with the official network's weights (our table has no padding row)."""
    hidden = official.hidden_size
    model = SRGNN(item_rows=n_node - 1, hidden_size=hidden, lr_schedule="official_torch2")
    net = SRGNNNet(n_items, hidden_size=hidden, item_rows=n_node - 1)
    gnn = official.gnn
    with torch.no_grad():
        net.item_embedding.copy_(official.embedding.weight[1:])
        net.cell.edge_weight.copy_(torch.cat([gnn.linear_edge_in.weight, gnn.linear_edge_out.weight]))
        net.cell.edge_bias.copy_(torch.cat([gnn.linear_edge_in.bias, gnn.linear_edge_out.bias]))
        net.cell.propagation_bias.copy_(torch.stack([gnn.b_iah, gnn.b_oah]))
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            getattr(net.cell, name).copy_(getattr(gnn, name))
        for name in ("linear_one", "linear_two", "linear_three", "linear_transform"):
            ours, theirs = getattr(net, name), getattr(official, name)
            ours.weight.copy_(theirs.weight)
            if theirs.bias is not None:
                ours.bias.copy_(theirs.bias)
    model.module, model.n_items = net, n_items
    return model, net


def batch_of(data: Any, index: np.ndarray) -> Batch:
    """Our Batch for rows `index` of an official `Data` object (same prefixes, trimmed padding)."""
    lengths = data.mask[index].sum(1)
    width = int(lengths.max())
    return Batch(
        items=torch.from_numpy(np.asarray(data.inputs[index])[:, :width].astype(np.int64)),
        lengths=torch.from_numpy(lengths.astype(np.int64)),
        targets=torch.from_numpy(np.asarray(data.targets[index]).astype(np.int64)),
        example_index=np.asarray(index),
    )


def official_loss(off: Any, official: Any, index: np.ndarray, data: Any) -> torch.Tensor:
    targets, scores = off.forward(official, index, data)
    return official.loss_function(scores, torch.as_tensor(np.asarray(targets)).long() - 1)


def gradient_pairs(official: Any, net: SRGNNNet) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, official gradient mapped to our layout, our gradient) for every parameter."""
    g = official.gnn
    pairs = [
        ("item table", official.embedding.weight.grad[1:], net.item_embedding.grad),
        ("edge weights", torch.cat([g.linear_edge_in.weight.grad, g.linear_edge_out.weight.grad]), net.cell.edge_weight.grad),
        ("edge biases", torch.cat([g.linear_edge_in.bias.grad, g.linear_edge_out.bias.grad]), net.cell.edge_bias.grad),
        ("propagation biases", torch.stack([g.b_iah.grad, g.b_oah.grad]), net.cell.propagation_bias.grad),
    ]
    pairs += [(name, getattr(g, name).grad, getattr(net.cell, name).grad) for name in ("w_ih", "w_hh", "b_ih", "b_hh")]
    for name in ("linear_one", "linear_two", "linear_three", "linear_transform"):
        theirs, ours = getattr(official, name), getattr(net, name)
        pairs.append((f"{name}.weight", theirs.weight.grad, ours.weight.grad))
        if theirs.bias is not None:
            pairs.append((f"{name}.bias", theirs.bias.grad, ours.bias.grad))
    return pairs


def metrics(top: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(hit, reciprocal rank) at 20 from top-20 indices (0-based items) and 0-based targets."""
    match = top == targets[:, None]
    hit = match.any(1)
    rr = torch.where(hit, 1.0 / (match.float().argmax(1) + 1), torch.zeros(()))
    return hit.numpy(), rr.numpy()


def cmd_equivalence(args: argparse.Namespace, off: Any, utils: Any, split: dict[str, Any]) -> None:
    train = utils.Data((split[args.train_key]["sequences"], split[args.train_key]["labels"]), shuffle=False)
    torch.manual_seed(0)
    official = off.SessionGraph(official_options(), args.n_node)
    model, net = copy_into_ours(official, split["n_items"], args.n_node)
    order = np.random.RandomState(0).permutation(train.length)
    for b in range(3):
        index = order[b * 100:(b + 1) * 100]
        official.zero_grad()
        net.zero_grad(set_to_none=True)
        theirs = official_loss(off, official, index, train)
        theirs.backward()
        ours = model.loss(net, batch_of(train, index))
        ours.backward()
        worst = max(((a - o).abs().max() / o.abs().max().clamp_min(1e-30)).item() for _, o, a in gradient_pairs(official, net))
        print(f"batch {b}: loss official {theirs.item():.8f} ours {ours.item():.8f}; largest relative gradient difference {worst:.1e}")
    optimizer = model.make_optimizer(net)
    diffs = []
    for step in range(args.steps):
        index = order[(step * 100) % (train.length - 100):][:100]
        official.optimizer.zero_grad()
        theirs = official_loss(off, official, index, train)
        theirs.backward()
        official.optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ours = model.loss(net, batch_of(train, index))
        ours.backward()
        optimizer.step()
        diffs.append(abs(theirs.item() - ours.item()))
    print(f"{args.steps} training steps from the same weights: largest per-step loss difference {max(diffs):.1e}, "
          f"last losses {theirs.item():.6f} / {ours.item():.6f}")


def cmd_train(args: argparse.Namespace, off: Any, utils: Any, split: dict[str, Any], side_by_side: bool) -> None:
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    train = utils.Data((split[args.train_key]["sequences"], split[args.train_key]["labels"]), shuffle=True)
    test = utils.Data((split["test"]["sequences"], split["test"]["labels"]), shuffle=False)
    official = off.SessionGraph(official_options(), args.n_node)
    if side_by_side:
        model, net = copy_into_ours(official, split["n_items"], args.n_node)
        optimizer = model.make_optimizer(net)
        scheduler = model.make_scheduler(optimizer)
    best = {"official": [0.0, 0.0], "ours": [0.0, 0.0]}
    for epoch in range(args.epochs):
        official.scheduler.step()  # where the official train_test calls it: before the epoch
        lr = official.optimizer.param_groups[0]["lr"]
        official.train()
        losses = {"official": 0.0, "ours": 0.0}
        t0 = time.perf_counter()
        for index in train.generate_batch(100):
            official.optimizer.zero_grad()
            loss = official_loss(off, official, index, train)
            loss.backward()
            official.optimizer.step()
            losses["official"] += loss.item()
            if side_by_side:
                net.train()
                optimizer.zero_grad(set_to_none=True)
                ours = model.loss(net, batch_of(train, index))
                ours.backward()
                optimizer.step()
                losses["ours"] += ours.item()
        if side_by_side:
            scheduler.step()
        official.eval()
        found: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"official": [], "ours": []}
        with torch.no_grad():
            for index in test.generate_batch(100):
                targets, scores = off.forward(official, index, test)
                t = torch.as_tensor(np.asarray(targets)).long() - 1
                found["official"].append(metrics(scores.topk(20)[1], t))
                if side_by_side:
                    net.eval()
                    found["ours"].append(metrics(model.forward_scores(net, batch_of(test, index))[:, 1:].topk(20)[1], t))
        line = f"epoch {epoch:2d} lr {lr:.0e} ({time.perf_counter() - t0:.0f}s)"
        for who in ("official", "ours") if side_by_side else ("official",):
            p20 = 100 * float(np.concatenate([h for h, _ in found[who]]).mean())
            mrr = 100 * float(np.concatenate([r for _, r in found[who]]).mean())
            best[who] = [max(best[who][0], p20), max(best[who][1], mrr)]
            line += f" | {who}: loss sum {losses[who]:.3f} P@20 {p20:.4f} MRR@20 {mrr:.4f}"
        print(line, flush=True)
    for who in ("official", "ours") if side_by_side else ("official",):
        print(f"seed {args.seed} {who}: best P@20 {best[who][0]:.4f}, best MRR@20 {best[who][1]:.4f} over {args.epochs} epochs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-dir", type=Path, required=True, help="pytorch_code/ of a CRIPAC-DIG/SR-GNN clone")
    parser.add_argument("--split", type=Path, required=True, help="a split in the official JSON layout")
    parser.add_argument("--train-key", default="train", help="the training list's key in --split (default 'train')")
    parser.add_argument("--n-node", type=int, default=37484, help="the official embedding rows (37,484 for YOOCHOOSE)")
    sub = parser.add_subparsers(dest="command", required=True)
    eq = sub.add_parser("equivalence", help="same weights: forward, gradients, N training steps")
    eq.add_argument("--steps", type=int, default=100)
    for name in ("official", "side-by-side"):
        p = sub.add_parser(name, help="the official training loop" + (" with ours beside it" if name != "official" else ""))
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--epochs", type=int, default=12, help="default 12: from then on the lr is 1e-7 or less")
    args = parser.parse_args()
    torch.set_num_threads(1)
    off, utils = load_official(args.official_dir)
    split = json.loads(args.split.read_text())
    if args.train_key not in split:
        sys.exit(f"error: {args.split} has no '{args.train_key}'; its keys: {', '.join(split)}")
    if args.command == "equivalence":
        cmd_equivalence(args, off, utils, split)
    else:
        cmd_train(args, off, utils, split, side_by_side=args.command == "side-by-side")


if __name__ == "__main__":
    main()
