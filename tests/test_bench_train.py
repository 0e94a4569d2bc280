"""`sessbench bench train`: generated data of a shape, throughput against the floors, the CLI."""

from __future__ import annotations

import json
from typing import Any, Iterator

import numpy as np
import pytest
import torch

from sessbench.bench.train import SHAPES, BenchShape, format_train_report, run_train_benchmark, shape_data
from sessbench.cli import main
from sessbench.data.sessions import Batch, TrainingData
from sessbench.models import ModelSpec
from sessbench.training import TRAINING_DEFAULTS, TorchSessionModel

TINY = BenchShape(n_items=120, n_train_prefixes=900, n_test_prefixes=300, max_length=20)


@pytest.fixture(autouse=True)
def restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_shape_data_has_the_exact_size_and_is_deterministic() -> None:
    data, test = shape_data(TINY, seed=3)
    assert len(data.train_examples()) == 900 and len(test) == 300
    assert data.n_items == 120
    assert data.train.items.min() >= 1 and data.train.items.max() <= 120
    assert data.train.lengths.min() >= 2 and data.train.lengths.max() <= 20
    again, _ = shape_data(TINY, seed=3)
    assert np.array_equal(again.train.items, data.train.items)
    other, _ = shape_data(TINY, seed=4)
    assert not np.array_equal(other.train.items[:100], data.train.items[:100])


def test_yoochoose64_shape_is_the_paper_shape() -> None:
    shape = SHAPES["yoochoose64"]
    assert (shape.n_items, shape.n_train_prefixes) == (37_483, 369_859)


def test_torch_model_reports_throughputs_floors_and_ratios() -> None:
    r = run_train_benchmark("srgnn", TINY, batches=2, threads=1, params={"hidden_size": 16}, warmup=1)
    for key in ("train_seq_per_s", "eval_seq_per_s", "peak_memory_mb", "floor_train_seq_per_s", "floor_eval_seq_per_s"):
        assert r[key] > 0, key
    assert r["train_floor_ratio"] == pytest.approx(r["train_seq_per_s"] / r["floor_train_seq_per_s"], rel=1e-2, abs=1e-3)
    assert r["eval_floor_ratio"] == pytest.approx(r["eval_seq_per_s"] / r["floor_eval_seq_per_s"], rel=1e-2, abs=1e-3)
    assert r["floor_train_blocked_seq_per_s"] > 0
    assert r["train_blocked_floor_ratio"] == pytest.approx(
        r["train_seq_per_s"] / r["floor_train_blocked_seq_per_s"], rel=1e-2, abs=1e-3
    )
    assert "blocked floor" in format_train_report(r)
    assert r["dim"] == 16 and r["batch_size"] == 100 and r["threads"] == 1
    assert np.isfinite(r["train_loss"])


def test_non_torch_model_reports_fit_and_prediction() -> None:
    r = run_train_benchmark("pop", TINY, batches=2, threads=1, warmup=1)
    assert r["fit_s"] >= 0 and r["predict_seq_per_s"] > 0 and r["floor_eval_seq_per_s"] > 0
    assert "train_seq_per_s" not in r and r["dim"] == 100


class _CountingBatches(TorchSessionModel):
    """A torch model with its own batches (as GRU4Rec's session-parallel ones): they must be used."""

    name = "test-own-batches"
    seen: list[int] = []

    def build(self, data: TrainingData) -> torch.nn.Module:
        return torch.nn.Embedding(data.n_items + 1, 8)

    def forward_scores(self, module: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return module(batch.last_items) @ module.weight.T

    def train_batches(self, data: TrainingData, epoch: int, rng: np.random.Generator) -> Iterator[Any]:
        for batch in data.train_examples().iter_batches(7, shuffle=True, rng=rng):
            self.seen.append(len(batch))
            yield batch


def test_a_model_with_its_own_train_batches_uses_them() -> None:
    _CountingBatches.seen = []
    spec = ModelSpec("test-own-batches", _CountingBatches, (), dict(TRAINING_DEFAULTS), "", __name__)
    r = run_train_benchmark(spec, TINY, batches=3, threads=1, warmup=1)
    assert _CountingBatches.seen[:4] == [7, 7, 7, 7]
    assert r["train_seq_per_s"] > 0 and r["dim"] == 8


def test_cli_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main([
        "--quiet", "bench", "train", "--model", "srgnn", "--shape", "tiny", "--n-items", "80",
        "--n-prefixes", "500", "--batches", "2", "--set", "hidden_size=8", "--json",
    ])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "srgnn" and out["n_items"] == 80 and out["n_train_prefixes"] == 500
    assert out["shape"].startswith("tiny+") and out["dim"] == 8


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--shape", "huge"], "unknown shape"),
        (["--batches", "0"], "--batches"),
        (["--threads", "0"], "--threads"),
        (["--n-items", "0"], "--n-items"),
        (["--set", "hidden_size"], "KEY=VALUE"),
    ],
)
def test_cli_user_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quiet", "bench", "train", "--model", "srgnn", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quiet", "bench", "train", "--model", "srgnnn", "--shape", "tiny"]) == 2
    assert "srgnn" in capsys.readouterr().err


def test_cli_takes_hyperparameters_from_the_config_file(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """--params-of reads configs/models/<model>.yaml for that dataset; --set still wins."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "srgnn.yaml").write_text("datasets:\n  yoochoose64:\n    hidden_size: 8\n    step: 2\n")
    base = ["--quiet", "bench", "train", "--model", "srgnn", "--shape", "tiny", "--n-items", "80",
            "--n-prefixes", "500", "--batches", "1", "--json", "--config-dir", str(tmp_path)]
    assert main([*base, "--params-of", "yoochoose64"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == {"hidden_size": 8, "step": 2} and out["dim"] == 8
    assert main([*base, "--params-of", "yoochoose64", "--set", "hidden_size=6"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == {"hidden_size": 6, "step": 2} and out["dim"] == 6
    assert main([*base, "--set", "hidden_size=6"]) == 0  # tiny is no dataset: defaults and --set only
    assert json.loads(capsys.readouterr().out)["params"] == {"hidden_size": 6}


def test_cli_unknown_params_of_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quiet", "bench", "train", "--model", "srgnn", "--shape", "tiny", "--params-of", "yoochose64"]) == 2
    assert "--params-of" in capsys.readouterr().err


def test_floor_width_follows_a_model_that_scores_with_two_tables() -> None:
    """FPMC's scoring product has two item tables, so its evaluation floor is twice as wide."""
    r = run_train_benchmark("fpmc", TINY, batches=1, threads=1, params={"factors": 8}, warmup=1)
    assert r["dim"] == 16
    r = run_train_benchmark("fpmc", TINY, batches=1, threads=1, params={"factors": 8, "session_factor": "none"}, warmup=1)
    assert r["dim"] == 8
