"""The shared torch training loop: learning, determinism, selection rules, schedule, checkpoints."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import pytest
import torch

from sessbench.data.sessions import Batch, SessionSet, TrainingData
from sessbench.errors import ConfigError, SessbenchError
from sessbench.models import FitContext
from sessbench.evaluation import auto_batch_size
from sessbench.training import (
    TRAINING_DEFAULTS,
    TorchSessionModel,
    resolve_device,
)

N_ITEMS = 20


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class LastItemNet(torch.nn.Module):
    """Scores = embedding of the last item dotted with a separate output item table."""

    def __init__(self, n_items: int, dim: int) -> None:
        super().__init__()
        self.inp = torch.nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.out = torch.nn.Embedding(n_items + 1, dim)
        self.dropout = torch.nn.Dropout(0.1)


class LastItemModel(TorchSessionModel):
    """A tiny test model: enough to learn 'item i is followed by item i + 1'."""

    name = "test-last-item"

    def build(self, data: TrainingData) -> torch.nn.Module:
        return LastItemNet(data.n_items, int(self.params.get("dim", 16)))

    def forward_scores(self, module: torch.nn.Module, batch: Batch) -> torch.Tensor:
        h = module.dropout(module.inp(batch.last_items))
        return h @ module.out.weight.T


def successor_data(n_sessions: int = 200, seed: int = 0) -> TrainingData:
    """Sessions [s, s+1, ..., s+k]: every item is followed by its successor."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 6, size=n_sessions)
    starts = rng.integers(1, N_ITEMS - lengths + 2)
    sessions = [list(range(s, s + n)) for s, n in zip(starts, lengths)]
    assert max(max(s) for s in sessions) <= N_ITEMS
    return TrainingData(SessionSet.from_lists(sessions), None, N_ITEMS, "successor")


def accuracy(model: TorchSessionModel, data: TrainingData) -> float:
    examples = data.train_examples()
    batch = examples.batch(slice(None))
    scores = model.score(batch).clone()
    scores[:, 0] = -torch.inf
    return float((scores.argmax(1).cpu() == batch.targets).float().mean())


def p_at(model: TorchSessionModel, data: TrainingData, k: int = 3) -> dict[str, float]:
    """A small real evaluator: hit rate and MRR at k over the training prefixes."""
    batch = data.train_examples().batch(slice(None))
    scores = model.score(batch).clone()
    scores[:, 0] = -torch.inf
    target = scores.gather(1, batch.targets[:, None].to(scores.device))
    rank = (scores > target).sum(1) + 1
    hit = rank <= k
    return {"P@20": float(hit.float().mean()), "MRR@20": float((hit / rank).mean())}


def fast(**overrides: Any) -> dict[str, Any]:
    return {"epochs": 4, "batch_size": 32, "lr": 0.05, "lr_decay_step": 0, "dim": 16, **overrides}


class Scripted:
    """A fake ctx.evaluate: returns a scripted metric sequence and snapshots the state each call."""

    def __init__(self, p20: list[float], mrr: list[float] | None = None) -> None:
        self.p20, self.mrr = p20, mrr
        self.states: list[dict[str, torch.Tensor]] = []

    def __call__(self, model: TorchSessionModel) -> dict[str, float]:
        e = len(self.states)
        self.states.append({k: v.clone() for k, v in model.state_dict().items()})
        out = {"P@20": self.p20[e]}
        if self.mrr is not None:
            out["MRR@20"] = self.mrr[e]
        return out


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------- learning


def test_learns_successor_pattern() -> None:
    data = successor_data()
    model = LastItemModel(**fast(epochs=6))
    ctx = FitContext(seed=1)
    model.fit(data, ctx)
    assert accuracy(model, data) >= 0.97
    losses = [e["loss"] for e in ctx.epoch_log]
    assert len(losses) == 6 and losses[-1] < losses[0] / 3
    assert all(e["train_examples"] == len(data.train_examples()) for e in ctx.epoch_log)
    assert model.fit_summary["stopped"] == "completed"
    assert model.eval_batch_size == auto_batch_size(N_ITEMS)


def test_defaults_and_params_are_recorded() -> None:
    model = LastItemModel(dim=8)
    assert model.params == {**TRAINING_DEFAULTS, "dim": 8}
    assert (model.epochs, model.batch_size, model.lr, model.lr_decay_step, model.patience) == (30, 100, 1e-3, 3, 10)


@pytest.mark.parametrize(
    "bad", [{"epochs": -1}, {"batch_size": 0}, {"lr": 0}, {"optimizer": "rmsprop"}, {"patience": 0}, {"lr": "x"}]
)
def test_bad_hyperparameters_are_config_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        LastItemModel(**bad)


def test_string_hyperparameters_from_the_command_line_are_parsed() -> None:
    model = LastItemModel(epochs="5", lr="0.01", grad_clip="1.5", patience=None)
    assert (model.epochs, model.lr, model.grad_clip, model.patience) == (5, 0.01, 1.5, None)


def test_fit_cannot_be_overridden() -> None:
    with pytest.raises(TypeError, match="shared"):

        class Rogue(LastItemModel):  # noqa: F841
            def fit(self, data: TrainingData, ctx: FitContext) -> None:
                pass


# ---------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_parameters_and_metrics() -> None:
    data = successor_data()
    runs = []
    for seed in (7, 7, 8):
        model = LastItemModel(**fast(epochs=3))
        ctx = FitContext(seed=seed, evaluate=lambda m: p_at(m, data))
        model.fit(data, ctx)
        metrics = [{k: v for k, v in e.items() if not k.endswith("_s")} for e in ctx.epoch_log]
        runs.append((model.state_dict(), metrics))
    assert same_state(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert not same_state(runs[0][0], runs[2][0])


def test_fit_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    LastItemModel(**fast(epochs=1)).fit(successor_data(), FitContext(seed=0))
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------------------- selection


def test_validated_early_stopping_restores_the_best_epoch() -> None:
    data = successor_data()
    #          0    1    2    3    4     5 (tie: not better)  6 ...
    script = Scripted([0.1, 0.3, 0.5, 0.4, 0.45, 0.5, 0.9, 0.9, 0.9, 0.9])
    model = LastItemModel(**fast(epochs=10, patience=3, lr=0.01))
    ctx = FitContext(seed=0, evaluate=script)
    model.fit(data, ctx)
    best, patience = 2, 3
    assert len(ctx.epoch_log) == best + patience + 1
    assert [e["P@20"] for e in ctx.epoch_log] == script.p20[: best + patience + 1]
    assert same_state(model.state_dict(), script.states[best])
    assert not same_state(model.state_dict(), script.states[-1])
    assert model.fit_summary == {
        **model.fit_summary,
        "best_epoch": 2,
        "best": {"P@20": 0.5},
        "stopped": "patience",
        "epochs_run": 6,
    }


def test_validated_selection_metric_is_configurable_and_checked() -> None:
    data = successor_data()
    script = Scripted([0.5, 0.1, 0.1], mrr=[0.1, 0.3, 0.2])
    model = LastItemModel(**fast(epochs=3, patience=5))
    model.fit(data, FitContext(seed=0, evaluate=script, selection_metric="MRR@20"))
    assert same_state(model.state_dict(), script.states[1])
    with pytest.raises(ConfigError, match="NDCG@20"):
        LastItemModel(**fast(epochs=1)).fit(
            data, FitContext(seed=0, evaluate=Scripted([0.1]), selection_metric="NDCG@20")
        )


def test_paper_protocol_follows_the_official_stopping_rule() -> None:
    """Ties count as improvements, P@20 and MRR@20 separately, bad epochs are never reset."""
    data = successor_data()
    p20 = [0.1, 0.2, 0.2, 0.1, 0.3, 0.1, 0.1, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1]
    mrr = [.05, .04, .03, .06, .02, .01, .01, .01, .01, .01, .01, .01, .01]
    # improved: e0 both, e1 P, e2 P tie, e3 MRR, e4 P, e5 no (1), e6 no (2), e7 P tie, e8 no (3)
    script = Scripted(p20, mrr)
    model = LastItemModel(**fast(epochs=13, patience=3, lr=0.01))
    ctx = FitContext(seed=0, evaluate=script, protocol="paper")
    model.fit(data, ctx)
    assert len(ctx.epoch_log) == 9  # a counter reset on improvement would run to epoch 10
    assert model.fit_summary["best_epochs"] == {"P@20": 7, "MRR@20": 3}
    assert model.fit_summary["best"] == {"P@20": 0.3, "MRR@20": 0.06}
    assert same_state(model.state_dict(), script.states[7])  # latest best-P@20 epoch


def test_without_evaluate_all_epochs_run_and_the_last_state_is_kept() -> None:
    data = successor_data()
    model = LastItemModel(**fast(epochs=3, patience=1))
    ctx = FitContext(seed=0)
    model.fit(data, ctx)
    assert len(ctx.epoch_log) == 3 and "P@20" not in ctx.epoch_log[0]
    assert model.fit_summary["best_epoch"] is None


def test_time_budget_stops_after_an_epoch(caplog: pytest.LogCaptureFixture) -> None:
    data = successor_data()
    script = Scripted([0.5, 0.1, 0.1, 0.1])
    model = LastItemModel(**fast(epochs=4))
    ctx = FitContext(seed=0, evaluate=script, time_budget_s=1e-9)
    with caplog.at_level(logging.INFO, logger="sessbench.model"):
        model.fit(data, ctx)
    assert len(ctx.epoch_log) == 1
    assert model.fit_summary["stopped"] == "time_budget"
    assert same_state(model.state_dict(), script.states[0])
    assert any("time budget" in r.getMessage() for r in caplog.records)


def test_unknown_protocol_is_rejected() -> None:
    with pytest.raises(ConfigError, match="protocol"):
        LastItemModel(**fast()).fit(successor_data(), FitContext(protocol="best-of-test"))


# ---------------------------------------------------------------------------- schedule and loop


def test_learning_rate_decays_after_every_step_epochs() -> None:
    data = successor_data(50)
    ctx = FitContext(seed=0)
    LastItemModel(**fast(epochs=7, lr=0.01, lr_decay_step=3, lr_decay_rate=0.1)).fit(data, ctx)
    lrs = [e["lr"] for e in ctx.epoch_log]
    assert lrs == pytest.approx([1e-2] * 3 + [1e-3] * 3 + [1e-4])
    ctx = FitContext(seed=0)
    LastItemModel(**fast(epochs=4, lr=0.01, lr_decay_step=0)).fit(data, ctx)
    assert [e["lr"] for e in ctx.epoch_log] == [0.01] * 4


class RecordingBar:
    def __init__(self, total: int | None, desc: str) -> None:
        self.total, self.desc, self.n, self.postfix = total, desc, 0, None

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        self.postfix = kwargs

    def close(self) -> None:
        pass


def test_progress_bar_gets_total_desc_and_running_loss() -> None:
    data = successor_data()
    bars: list[RecordingBar] = []

    @contextmanager
    def progress(total: int | None = None, desc: str = "") -> Iterator[RecordingBar]:
        bars.append(RecordingBar(total, desc))
        yield bars[-1]

    model = LastItemModel(**fast(epochs=2))
    model.fit(data, FitContext(seed=0, progress=progress))
    n_batches = data.train_examples().n_batches(32)
    assert [(b.total, b.n, b.desc) for b in bars] == [
        (n_batches, n_batches, "test-last-item epoch 0"),
        (n_batches, n_batches, "test-last-item epoch 1"),
    ]
    assert set(bars[0].postfix) == {"loss"}


class FixedOrderModel(LastItemModel):
    """Overrides batching, as session-parallel models do: stored order, batches of 7."""

    name = "test-fixed-order"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.epochs_seen: list[int] = []
        self.batch_sizes: list[int] = []

    def train_batches(self, data: TrainingData, epoch: int, rng: np.random.Generator) -> Iterator[Batch]:
        self.epochs_seen.append(epoch)
        for batch in data.train_examples().iter_batches(7, shuffle=False):
            self.batch_sizes.append(len(batch))
            yield batch

    def n_train_batches(self, data: TrainingData) -> int | None:
        return None


def test_a_model_can_override_train_batches() -> None:
    data = successor_data()
    model = FixedOrderModel(**fast(epochs=5))
    ctx = FitContext(seed=0)
    model.fit(data, ctx)
    n = len(data.train_examples())
    assert model.epochs_seen == [0, 1, 2, 3, 4]
    assert sum(model.batch_sizes) == 5 * n and max(model.batch_sizes) == 7
    assert accuracy(model, data) >= 0.9


class ExplodingModel(LastItemModel):
    name = "test-exploding"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.calls = 0

    def loss(self, module: torch.nn.Module, batch: Any) -> torch.Tensor:
        value = super().loss(module, batch)
        self.calls += 1
        return value * torch.nan if self.calls == 4 else value


def test_non_finite_loss_names_epoch_and_batch() -> None:
    model = ExplodingModel(**fast(epochs=2))
    with pytest.raises(FloatingPointError, match=r"epoch 0, batch 3\b"):
        model.fit(successor_data(), FitContext(seed=0))


def test_empty_training_data_is_a_clear_error() -> None:
    data = TrainingData(SessionSet.from_lists([[1], [2]]), None, N_ITEMS, "tiny")
    with pytest.raises(SessbenchError, match="no training"):
        LastItemModel(**fast()).fit(data, FitContext(seed=0))


def test_eval_mode_restores_training_flag_and_disables_grad() -> None:
    data = successor_data(30)
    model = LastItemModel(**fast(epochs=1))
    model.fit(data, FitContext(seed=0))
    model.module.train()
    scores = model.score(data.train_examples().batch(slice(0, 4)))
    assert scores.shape == (4, N_ITEMS + 1) and not scores.requires_grad
    assert model.module.training
    with model.eval_mode():
        assert not model.module.training and not torch.is_grad_enabled()
    assert model.module.training


def test_score_before_fit_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="fit"):
        LastItemModel().score(successor_data(5).train_examples().batch(slice(0, 1)))


# ---------------------------------------------------------------------------- checkpoints


def test_save_load_round_trip(tmp_path: Any) -> None:
    data = successor_data()
    model = LastItemModel(**fast(epochs=2))
    model.fit(data, FitContext(seed=3))
    path = tmp_path / "ckpt" / "model.pt"
    model.save(path)
    raw = torch.load(path, weights_only=True)
    assert raw["model"] == "test-last-item" and raw["n_items"] == N_ITEMS
    assert list(tmp_path.joinpath("ckpt").iterdir()) == [path]  # no temp file left behind

    fresh = LastItemModel(**fast(epochs=2))
    fresh.load(path, data)
    assert same_state(fresh.state_dict(), model.state_dict())
    batch = data.train_examples().batch(slice(0, 10))
    assert torch.equal(fresh.score(batch), model.score(batch))
    assert fresh.eval_batch_size == model.eval_batch_size

    with pytest.raises(SessbenchError, match="items"):
        LastItemModel(**fast()).load(path, TrainingData(data.train, None, N_ITEMS + 1, "other"))
    with pytest.raises(SessbenchError, match="training data"):
        LastItemModel(**fast()).load(path)
    with pytest.raises(SessbenchError, match="test-last-item"):
        FixedOrderModel(**fast()).load(path, data)


# ---------------------------------------------------------------------------- devices


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_scores_and_checkpoints_on_cuda(tmp_path: Any) -> None:
    data = successor_data()
    model = LastItemModel(**fast(epochs=5))
    ctx = FitContext(device=resolve_device("auto"), seed=0, evaluate=lambda m: p_at(m, data))
    model.fit(data, ctx)
    assert model.device.type == "cuda" and next(model.module.parameters()).is_cuda
    batch = data.train_examples().batch(slice(0, 5))  # a CPU batch is moved by score()
    assert model.score(batch).is_cuda
    assert accuracy(model, data) >= 0.9
    model.save(tmp_path / "m.pt")
    on_cpu = LastItemModel(**fast())
    on_cpu.load(tmp_path / "m.pt", data, device="cpu")
    assert torch.allclose(on_cpu.score(batch), model.score(batch).cpu(), atol=1e-5)


# ---------------------------------------------------------------------------- helpers


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(SessbenchError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(SessbenchError, match="unknown device"):
        resolve_device("gpu-please")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device() == torch.device("cuda")
    # an index the machine lacks (what the GPU check found unexplained): says how to fix it
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(SessbenchError, match=r"(?s)cuda:0\.\.cuda:0.*--device cuda:0"):
        resolve_device("cuda:7")


