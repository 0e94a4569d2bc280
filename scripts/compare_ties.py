"""What the tie policy changes: P@20 / MRR@20 of each model under `backoff=none` and `popularity`.

Run the rule and neighbour models twice, once per policy, into two folders, then compare:

    M=item-knn,markov,ar,sr,sknn,v-sknn,stan
    for p in none popularity; do
      sessbench run --models $M --dataset yoochoose64 --dataset diginetica --data-dir DIR --runs-dir runs-ties/$p \
        $(for m in ${M//,/ }; do echo --set $m.backoff=$p; done)
    done
    python scripts/compare_ties.py runs-ties/none runs-ties/popularity

It prints one Markdown table (a row per model, two columns per dataset) and the largest change.
Runs whose recorded `backoff` is not the folder's policy are refused, so the folders cannot be
swapped by mistake.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sessbench.report.store import Store

POLICIES = ("none", "popularity")


def values(runs_dir: Path, policy: str) -> dict[tuple[str, str], tuple[float, float]]:
    """(dataset, model) -> (P@20, MRR@20) in percent, from the runs of one policy."""
    store = Store.load(runs_dir)
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for g in store.groups:
        params = ((g.ok or g.failed)[0].get("config") or {}).get("params") or {}
        if "backoff" not in params or not g.ok:
            continue
        if params["backoff"] != policy:
            raise SystemExit(f"{runs_dir}: {g.model} on {g.dataset} ran with backoff={params['backoff']}, not {policy}")
        p20, mrr = g.stat("P@20")[0], g.stat("MRR@20")[0]
        if p20 is not None and mrr is not None:
            out[(g.dataset, g.model)] = (100 * p20, 100 * mrr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("none_dir", type=Path, help="runs with backoff=none")
    parser.add_argument("popularity_dir", type=Path, help="runs with backoff=popularity")
    args = parser.parse_args(argv)
    by_policy = {p: values(d, p) for p, d in zip(POLICIES, (args.none_dir, args.popularity_dir))}
    keys = sorted(set(by_policy["none"]) & set(by_policy["popularity"]))
    datasets = list(dict.fromkeys(d for d, _ in keys))
    models = list(dict.fromkeys(m for _, m in keys))
    head = ["model"] + [f"{d} `{p}`" if p == "none" else f"`{p}`" for d in datasets for p in POLICIES]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    biggest = (0.0, 0.0, "", "")
    for m in models:
        cells = [f"`{m}`"]
        for d in datasets:
            for p in POLICIES:
                v = by_policy[p].get((d, m))
                cells.append("–" if v is None else f"{v[0]:.2f} / {v[1]:.2f}")
            if (d, m) in by_policy["none"] and (d, m) in by_policy["popularity"]:
                gain_p = by_policy["popularity"][(d, m)][0] - by_policy["none"][(d, m)][0]
                gain_m = by_policy["popularity"][(d, m)][1] - by_policy["none"][(d, m)][1]
                if abs(gain_p) > abs(biggest[0]):
                    biggest = (gain_p, gain_m, m, d)
        print("| " + " | ".join(cells) + " |")
    if biggest[2]:
        print(f"\nlargest change of P@20: {biggest[2]} on {biggest[3]}, {biggest[0]:+.2f} P@20 ({biggest[1]:+.2f} MRR@20)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
