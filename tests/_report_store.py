"""A realistic fake runs store for the report tests, written with sessbench's own writers.

Records carry every field the runner writes; rank files hold per-example greater/equal counts
drawn so that models differ in quality the way the paper's do (SR-GNN > its variants > POP).
Metrics and groups are computed from those counts, exactly as the evaluator does, so a test
can recompute anything the report shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sessbench.evaluation import RankCounts
from sessbench.results import ranks_path, split_examples_path, split_table_id, write_record

#: model -> typical rank scale (smaller is better); the oracle only on synthetic data
QUALITY = {
    "oracle": 4.0, "pop": 400.0, "s-pop": 60.0, "narm": 12.0, "stamp": 11.5, "srgnn-ngc": 12.5,
    "srgnn-fc": 10.2, "srgnn-l": 11.0, "srgnn-avg": 14.0, "srgnn-att": 10.6, "srgnn": 10.0,
}
N_EXAMPLES = {"synthetic": 1500, "yoochoose4": 1800, "yoochoose64": 2400, "diginetica": 2200}
#: the official splits' sizes (the report treats a split of the paper's size as full scale)
FULL = {"yoochoose64": (369_859, 37_483), "diginetica": (719_470, 43_097)}
EVIL = "<script>alert('x')</script> & | * _"


def _dataset_info(dataset: str) -> dict[str, Any]:
    if dataset in FULL:
        train, items = FULL[dataset]
        return {"clicks": 557248, "train_sequences": train, "test_sequences": N_EXAMPLES[dataset], "items": items,
                "items_in_training_sessions": 17376, "average_length": 6.16, "train_sessions": 116167,
                "test_sessions": N_EXAMPLES[dataset] // 4, "validation_sessions": 11617, "meta": {"dataset": dataset}}
    if dataset == "yoochoose4":  # a sample-sized split of a paper dataset
        return {"clicks": 30753, "train_sequences": 13024, "test_sequences": N_EXAMPLES[dataset], "items": 2808,
                "items_in_training_sessions": 2044, "average_length": 4.0321, "train_sessions": 4224,
                "test_sessions": 600, "validation_sessions": 422, "meta": {"dataset": "yoochoose"}}
    return {"clicks": 66296, "train_sequences": 49018, "test_sequences": N_EXAMPLES[dataset], "items": 500,
            "items_in_training_sessions": 500, "average_length": 5.52, "train_sessions": 10792,
            "test_sessions": 500, "validation_sessions": 1079, "meta": {"dataset": "synthetic"}}


def _lengths(dataset: str) -> np.ndarray:
    rng = np.random.default_rng(len(dataset))
    return (1 + rng.geometric(0.25, N_EXAMPLES[dataset])).astype(np.int32)


def _ranks(model: str, dataset: str, seed: int, lengths: np.ndarray, quality: float | None = None) -> RankCounts:
    """Per-example counts: a shared per-example difficulty (paired data) times the model's scale."""
    n = len(lengths)
    base = np.random.default_rng(7 + len(dataset)).exponential(1.0, n)  # the same for every model
    noise = np.random.default_rng(_seed(model, dataset, seed))
    scale = (quality or QUALITY[model]) * (1.0 + 0.02 * seed if model not in ("pop", "s-pop", "oracle") else 1.0)
    greater = np.floor(base * scale * noise.lognormal(0.0, 0.25, n)).astype(np.int64)
    equal = np.zeros(n, dtype=np.int64)
    if model == "pop":
        equal[::7] = 3  # a few ties, as count-based models produce
    return RankCounts(greater, equal, lengths)


def _seed(model: str, dataset: str, seed: int) -> int:
    return sum(ord(c) * (i + 1) for i, c in enumerate(f"{model}|{dataset}|{seed}")) % 2**32


def write_split_table(runs_dir: Path, dataset: str) -> str:
    """The split's example table (sessions of 4 prefixes, every third target a repeat); its checksum."""
    n = N_EXAMPLES[dataset]
    checksum = f"split-{dataset}"
    path = split_examples_path(runs_dir, split_table_id(dataset, f"src-{dataset}"))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, session=(np.arange(n) // 4).astype(np.int32), repeat=np.arange(n) % 3 == 0,
                        prefix_length=_lengths(dataset), target=np.ones(n, dtype=np.int32))
    return checksum


def write_run(
    runs_dir: Path, model: str, dataset: str, seed: int, *, protocol: str = "validated", status: str = "ok",
    params: dict[str, Any] | None = None, command: str | None = None, config_id: str | None = None,
    code_state: str | None = None, dirty: bool = False, quality: float | None = None,
) -> dict[str, Any]:
    run_id = f"{dataset}__{model}__{protocol}__seed{seed}__{config_id or 'c0'}"
    params = params or {}
    record: dict[str, Any] = {
        "run_id": run_id, "model": model, "dataset": dataset, "dataset_name": dataset, "seed": seed,
        "protocol": protocol, "config_id": config_id or f"cfg-{model}-{protocol}",
        "config": {"model": model, "dataset": dataset, "seed": seed, "protocol": protocol, "params": params,
                   "settings": {"validation_fraction": 0.1, "device": "cpu", "time_budget_s": None, "eval_batch_size": None}},
        "command": command or f"sessbench run --models all --dataset {dataset} --seeds 0,1,2",
        "environment": {"sessbench": "0.1.0", "python": "3.11.7", "platform": "Linux-test", "machine": "x86_64",
                        "packages": {"numpy": "2.0", "torch": "2.13.0+cpu"}, "torch_threads": 1, "device": "cpu",
                        "git": {"commit": "0123456789abcdef0123", "dirty": dirty}},
        "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:01:00+00:00",
        "status": status,
    }
    if code_state is not None:
        record["code_state"] = {"digest": code_state, "modules": []}
        record["run_id"] = run_id = f"{run_id}__{code_state}"
    if dataset in FULL:
        record["source"] = {"kind": "official-split", "digest": f"src-{dataset}", "files": []}
        record["split_checksum"] = write_split_table(runs_dir, dataset)
        record["seed_dependent"] = model not in ("pop", "s-pop")
    if status != "ok":
        record["error"] = {"type": "RuntimeError", "message": "deliberate failure <b>bold</b>", "traceback": "..."}
        write_record(runs_dir, record)
        return record
    lengths = _lengths(dataset)
    ranks = _ranks(model, dataset, seed, lengths, quality)
    ranks.save(ranks_path(runs_dir, run_id))
    short = ranks.short_mask()
    record.update({
        "metrics": ranks.metrics(),
        "groups": {"short": ranks.select(short).metrics(), "long": ranks.select(~short).metrics()},
        "n_examples": {"all": len(ranks), "short": int(short.sum()), "long": int((~short).sum())},
        "timing": {"fit_s": 1.5 * QUALITY[model] ** -0.5 + 0.1 * seed, "selection_eval_s": 0.0,
                   "predict_s": 0.2 + 0.01 * seed, "examples_per_s": 9000.0 - seed},
        "peak_memory_mb": 700.0 + seed, "memory_at_start_mb": 500.0,
        "epochs": [], "ranks_file": ranks_path(runs_dir, run_id).name, "dataset_info": _dataset_info(dataset),
    })
    if protocol == "paper":
        m = record["metrics"]
        record["paper_best"] = {"P@20": m["P@20"] + 0.01, "MRR@20": m["MRR@20"] + 0.005, "epoch_P@20": 3, "epoch_MRR@20": 2}
    write_record(runs_dir, record)
    return record


SEEDS = (0, 1, 2)
MODELS = ("pop", "s-pop", "narm", "stamp", "srgnn-ngc", "srgnn-fc", "srgnn-l", "srgnn-avg", "srgnn-att", "srgnn")


def make_store(runs_dir: Path, *, datasets: tuple[str, ...] = ("synthetic", "yoochoose4"),
               models: tuple[str, ...] = MODELS, extras: bool = True) -> Path:
    """A store like a real grid: every model x dataset x seed, the oracle on synthetic data, and
    (extras) a paper-protocol SR-GNN run, a failed run and a run whose strings need escaping."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    for dataset in datasets:
        if dataset == "synthetic":
            write_run(runs_dir, "oracle", dataset, 0)
        for model in models:
            for seed in SEEDS:
                write_run(runs_dir, model, dataset, seed, params={"hidden": 100} if model.startswith("srgnn") else {})
    if extras:
        write_run(runs_dir, "srgnn", "yoochoose4", 0, protocol="paper")
        write_run(runs_dir, "gru4rec", "yoochoose4", 0, status="failed")
        write_run(runs_dir, "stamp", "synthetic", 0, params={"note": EVIL}, config_id="evil",
                  command=f"sessbench run --set 'stamp.note={EVIL}'")
    return runs_dir
