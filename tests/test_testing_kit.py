"""The conformance kit: every registered model passes it, and each planted leak fails it."""

from __future__ import annotations

import time
from importlib.metadata import entry_points

import leaky_toys as toys
import pytest

from sessbench.models import ENTRY_POINT_GROUP, registered_models
from sessbench.testing import (
    CHECKS,
    ConformanceError,
    KitOptions,
    check_recommender,
    kit_split,
)
from sessbench.training import TorchSessionModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: every torch model: one epoch, few large batches; then what else keeps each model at seconds
TORCH_SMALL = {"epochs": 1, "batch_size": 256}
OVERRIDES: dict[str, dict] = {
    "gru4rec": {"batch_size": 32, "layers": [16], "n_sample": 16, "sample_cache_size": 1000},
    "narm": {"embedding_size": 8, "hidden_size": 8},
    "stamp": {"embedding_size": 8},
    "fpmc": {"factors": 8},
    "bpr-mf": {"factors": 8, "iterations": 2, "eval_every": 1},
    **{name: {"hidden_size": 8} for name in ("srgnn", "srgnn-att", "srgnn-avg", "srgnn-fc", "srgnn-l", "srgnn-ngc")},
}


def plugin_models() -> list[str]:
    """Every model registered through the `sessbench.models` entry points (the built-ins and any
    installed plugin), not the test-only models other test modules register (some crash on purpose)."""
    packages = {ep.value.split(":")[0].split(".")[0] for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(name for name, spec in registered_models().items() if spec.source.split(".")[0] in packages)


def small_params(name: str) -> dict:
    spec = registered_models()[name]
    base = TORCH_SMALL if issubclass(spec.cls, TorchSessionModel) else {}
    return {**base, **OVERRIDES.get(name, {})}


def test_the_built_in_models_are_all_checked() -> None:
    assert len(plugin_models()) >= 20 and {"srgnn", "gru4rec", "pop", "stan", "bpr-mf"} <= set(plugin_models())


@pytest.mark.parametrize("name", plugin_models())
def test_every_registered_model_passes_the_kit(name: str) -> None:
    start = time.perf_counter()
    report = check_recommender(name, **small_params(name))
    assert set(report.passed) | set(report.skipped) == set(CHECKS)
    assert set(report.passed) >= {"fit-data", "output", "padding", "batch-company", "determinism", "fit-isolation"}
    if issubclass(registered_models()[name].cls, TorchSessionModel):
        assert "save-load" in report.passed
    assert time.perf_counter() - start < 30, f"{name}: the kit took {time.perf_counter() - start:.1f}s"


def test_a_sound_toy_passes_and_the_report_says_what_ran() -> None:
    report = check_recommender(toys.SoundToy)
    assert report.passed == [c for c in CHECKS if c != "save-load"]
    assert report.skipped == {"save-load": "the model has no save/load"}
    assert "SoundToy: 6 checks passed" in str(report)
    assert check_recommender(toys.FaithfulSave).passed[-1] == "save-load"


def test_column_0_may_hold_anything() -> None:
    """The evaluator never ranks column 0, so NaN there is allowed (the padding check's definition)."""
    report = check_recommender(toys.Column0Anything)
    assert "padding" in report.passed and "output" in report.passed


@pytest.mark.parametrize(
    ("toy", "check", "words"),
    [
        (toys.BatchPeeker, "batch-company", "alone and at position"),
        (toys.LearnsWhileScoring, "batch-company", "scored again"),
        (toys.Unseeded, "determinism", "FitContext(seed=0)"),
        (toys.SeedFreeLiar, "determinism", "seed_dependent = False"),
        (toys.WrongShape, "output", "expected [64, 61]"),
        (toys.NaNScores, "output", "NaN or +inf"),
        (toys.IntegerScores, "output", "floating dtype"),
        (toys.MutatesPrefixes, "output", "modified the prefixes"),
        (toys.PaddingAsItem, "padding", "more padding columns"),
        (toys.MutatesTrainingData, "fit-data", "in place"),
        (toys.ReadsTestFromTheStack, "fit-isolation", "another test set"),
        (toys.ForgetfulSave, "save-load", "fresh instance"),
    ],
)
def test_each_planted_model_leak_fails_its_check(toy: type, check: str, words: str) -> None:
    with pytest.raises(ConformanceError) as caught:
        check_recommender(toy)
    assert isinstance(caught.value, AssertionError)
    assert caught.value.check == check
    assert f"check '{check}' failed for model '{toy.__name__}'" in str(caught.value)
    assert words in str(caught.value)


@pytest.mark.parametrize("new_id", [False, True])
def test_a_test_session_copied_into_training_fails_fit_data(new_id: bool) -> None:
    leaky = toys.copy_test_session_into_training(kit_split(KitOptions()), which=5, new_id=new_id)
    with pytest.raises(ConformanceError, match="reaches the test set") as caught:
        check_recommender(toys.SoundToy, kit=KitOptions(split=leaky))
    assert caught.value.check == "fit-data"
    # a copy keeps its time (later than the first test session); unless renumbered, its id too
    assert "1 of its sessions are later than the first test session" in str(caught.value)
    assert ("test session id(s) occur in it" in str(caught.value)) != new_id


def test_skipped_checks_are_reported_and_unknown_ones_refused() -> None:
    report = check_recommender(toys.BatchPeeker, kit=KitOptions(skip=("batch-company",)))
    assert "batch-company" not in report.passed
    assert report.skipped["batch-company"] == "skipped by the caller"
    with pytest.raises(ValueError, match="unknown checks"):
        check_recommender(toys.SoundToy, kit=KitOptions(skip=("batch-compnay",)))


def test_the_kit_leaves_the_global_generators_alone() -> None:
    import numpy as np
    import torch

    np.random.seed(7)
    torch.manual_seed(7)
    expected = (np.random.random(), float(torch.rand(1)))
    np.random.seed(7)
    torch.manual_seed(7)
    check_recommender(toys.SoundToy)
    assert (np.random.random(), float(torch.rand(1))) == expected
