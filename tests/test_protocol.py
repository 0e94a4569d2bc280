"""The validated protocol with refit, seed-free models, epoch checkpoints and the time budget."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from faultkit import SMALL, comparable, run_cli
from sessbench.cli import main
from sessbench.faults import ENV_VAR
from sessbench.models import FitContext
from sessbench.results import iter_records
from test_training import LastItemModel, Scripted, fast, p_at, same_state, successor_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def records(runs: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["model"], r["protocol"]): r for r in iter_records(runs)}


# ---------------------------------------------------------------------------- refit
def test_refit_params_repeat_the_selected_epoch() -> None:
    model = LastItemModel(**fast(epochs=5, patience=2))
    model.fit(successor_data(), FitContext(seed=0, evaluate=Scripted([0.2, 0.5, 0.4, 0.3, 0.1])))
    assert model.fit_summary["best_epoch"] == 1
    assert model.refit_params() == {"epochs": 2}


def test_validated_refits_selecting_models_and_fits_the_others_on_everything(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    base = ["--quiet", "run", "--dataset", SMALL, "--runs-dir", str(runs)]
    assert main([*base, "--models", "fpmc,pop", "--set", "fpmc.epochs=4", "--set", "fpmc.patience=2"]) == 0
    assert main([*base, "--models", "pop", "--protocol", "paper"]) == 0
    assert main([*base, "--models", "pop", "--no-refit"]) == 0
    recs = list(iter_records(runs))
    fpmc = next(r for r in recs if r["model"] == "fpmc")
    sel = fpmc["selection"]
    assert fpmc["refit"] is True and sel["metric"] == "P@20" and sel["validation_sessions"] > 0
    assert fpmc["refit_params"] == {"epochs": sel["best_epoch"] + 1}
    assert len(fpmc["refit_epochs"]) == sel["best_epoch"] + 1  # the chosen epochs, on everything
    assert all("P@20" not in e for e in fpmc["refit_epochs"])  # the refit never evaluates anything
    assert len(fpmc["epochs"]) == sel["epochs_run"]  # the selection's log
    assert fpmc["refit_epochs"][0]["train_examples"] > fpmc["epochs"][0]["train_examples"]
    assert fpmc["dataset_info"]["validation_sessions"] == sel["validation_sessions"]
    pops = {(r["protocol"], r["config"]["settings"].get("refit", True)): r for r in recs if r["model"] == "pop"}
    refit, paper, no_refit = pops[("validated", True)], pops[("paper", True)], pops[("validated", False)]
    # POP selects nothing: under refit it counts the whole training set, exactly as under paper
    assert refit["refit"] is True and "selection" not in refit and refit["dataset_info"]["validation_sessions"] == 0
    assert refit["metrics"] == paper["metrics"]
    # --no-refit keeps the old behaviour: the carve is held out of every model
    assert "refit" not in no_refit and no_refit["dataset_info"]["validation_sessions"] > 0
    assert no_refit["metrics"] != refit["metrics"]


def test_seed_free_models_run_once_and_seeded_ones_per_seed(tmp_path: Path) -> None:
    assert main(["--quiet", "run", "--models", "pop,sr,fpmc", "--dataset", SMALL, "--seeds", "3,4",
                 "--set", "fpmc.epochs=1", "--runs-dir", str(tmp_path)]) == 0
    seen = sorted((r["model"], r["seed"]) for r in iter_records(tmp_path))
    assert seen == [("fpmc", 3), ("fpmc", 4), ("oracle", 3), ("pop", 3), ("sr", 3)]


# ---------------------------------------------------------------------------- epoch checkpoints
class Interrupted(Exception):
    pass


class StopAt:
    """A real (small) selection evaluation that raises at its `stop`-th call, as a kill would
    interrupt a fit after the earlier epochs' checkpoints were written."""

    def __init__(self, data: Any, stop: int | None) -> None:
        self.data, self.stop, self.calls = data, stop, 0

    def __call__(self, model: Any) -> dict[str, float]:
        if self.stop is not None and self.calls == self.stop:
            raise Interrupted
        self.calls += 1
        return p_at(model, self.data)


def _fit(model_factory: Any, data: Any, checkpoint: Path, stop: int | None, key: str = "run/select") -> tuple[Any, FitContext]:
    model = model_factory()
    ctx = FitContext(seed=7, evaluate=StopAt(data, stop), checkpoint=checkpoint, checkpoint_key=key)
    model.fit(data, ctx)
    return model, ctx


@pytest.mark.parametrize("model_name", ["last-item", "gru4rec", "srgnn", "fpmc"])
def test_a_fit_resumed_from_its_epoch_checkpoint_equals_an_uninterrupted_one(tmp_path: Path, model_name: str) -> None:
    from baselines.fpmc import FPMC
    from baselines.gru4rec import GRU4Rec
    from srgnn.model import SRGNN

    factories = {
        "last-item": lambda: LastItemModel(**fast(epochs=5, patience=None)),
        "gru4rec": lambda: GRU4Rec(layers=[8], batch_size=8, n_sample=4, sample_cache_size=40, epochs=5, dropout_hidden=0.3),
        "srgnn": lambda: SRGNN(hidden_size=8, batch_size=16, epochs=5, dropout=0.2, lr_decay_step=2),
        "fpmc": lambda: FPMC(factors=8, batch_size=16, epochs=5, n_neg=2),
    }
    data = successor_data(n_sessions=120)
    whole, whole_ctx = _fit(factories[model_name], data, tmp_path / "whole.pt", None)
    ckpt = tmp_path / "killed.pt"
    with pytest.raises(Interrupted):
        _fit(factories[model_name], data, ckpt, stop=3)  # dies evaluating epoch 3
    assert ckpt.is_file()
    resumed, ctx = _fit(factories[model_name], data, ckpt, None)
    assert resumed.fit_summary["resumed_after_epoch"] == 2
    assert same_state(resumed.state_dict(), whole.state_dict())
    drop = lambda log: [{k: v for k, v in e.items() if not k.endswith("_s")} for e in log]  # noqa: E731
    assert drop(ctx.epoch_log) == drop(whole_ctx.epoch_log)
    assert {k: v for k, v in resumed.fit_summary.items() if k not in ("fit_s", "resumed_after_epoch")} == \
        {k: v for k, v in whole.fit_summary.items() if k != "fit_s"}


def test_a_checkpoint_of_another_run_or_setting_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = successor_data(n_sessions=60)
    ckpt = tmp_path / "c.pt"
    with pytest.raises(Interrupted):
        _fit(lambda: LastItemModel(**fast(epochs=4, patience=None)), data, ckpt, stop=2)
    with caplog.at_level("WARNING", logger="sessbench.model"):
        other, _ = _fit(lambda: LastItemModel(**fast(epochs=4, patience=None, lr=0.01)), data, ckpt, None)
    assert "resumed_after_epoch" not in other.fit_summary
    assert any("ignoring the checkpoint" in r.getMessage() for r in caplog.records)
    ckpt.write_bytes(b"not a checkpoint")
    again, _ = _fit(lambda: LastItemModel(**fast(epochs=4, patience=None)), data, ckpt, None)
    assert "resumed_after_epoch" not in again.fit_summary


def test_a_run_killed_mid_training_resumes_from_its_last_epoch(tmp_path: Path) -> None:
    """SIGKILL after the second epoch's checkpoint; --resume finishes the run from there, and
    its record equals an uninterrupted run's (timings aside); the checkpoints are gone after."""
    argv = ["--quiet", "run", "--models", "fpmc", "--dataset", SMALL, "--set", "fpmc.epochs=4",
            "--set", "fpmc.patience=null"]
    full, killed, ckpts = tmp_path / "full", tmp_path / "killed", tmp_path / "ckpts"
    assert main([*argv, "--runs-dir", str(full), "--checkpoint-dir", str(tmp_path / "other")]) == 0
    died = run_cli([*argv, "--runs-dir", str(killed), "--checkpoint-dir", str(ckpts)], tmp_path / "k.log",
                   env={ENV_VAR: "training.after-checkpoint=2"})
    assert died == -signal.SIGKILL
    assert "fpmc" not in {r["model"] for r in iter_records(killed)} and len(list(ckpts.glob("*.pt"))) == 1
    assert run_cli([*argv, "--runs-dir", str(killed), "--checkpoint-dir", str(ckpts), "--resume"], tmp_path / "r.log") == 0
    (rec,) = [r for r in iter_records(killed) if r["model"] == "fpmc"]
    assert rec["resumed"] == {"select": 1}  # the select phase had finished epochs 0 and 1
    assert comparable(killed) == comparable(full)
    assert not list(ckpts.glob("*.pt"))


# ---------------------------------------------------------------------------- time budget
class SlowLastItem(LastItemModel):
    sync_every = 2  # check the clock every two batches

    def train_step(self, module: Any, optimizer: Any, batch: Any) -> torch.Tensor:
        import time

        time.sleep(0.01)
        return super().train_step(module, optimizer, batch)


def test_the_time_budget_is_checked_inside_an_epoch() -> None:
    data = successor_data(n_sessions=400)  # about 40 batches of 32: 0.4 s an epoch at 10 ms a batch
    model = SlowLastItem(**fast(epochs=3, batch_size=32))
    ctx = FitContext(seed=0, evaluate=lambda m: {"P@20": 0.5}, time_budget_s=0.1)
    model.fit(data, ctx)
    assert len(ctx.epoch_log) == 1 and ctx.epoch_log[0]["partial"] is True
    assert ctx.epoch_log[0]["train_examples"] < len(data.train_examples())
    assert model.fit_summary["stopped"] == "time_budget"
    assert np.isfinite(ctx.epoch_log[0]["loss"])
