"""The one tie policy of the rule and neighbour models (baselines/ties.py): one hyperparameter,
one default, one definition, the same in every model and in its config file."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from baselines.ties import BACKOFFS, DEFAULT_BACKOFF, Backoff
from sessbench.data.sessions import SessionSet, TrainingData
from sessbench.errors import ConfigError
from sessbench.models import FitContext, get_model
from sessbench.testing import KitOptions, kit_split

MODELS = ("item-knn", "markov", "ar", "sr", "sknn", "v-sknn", "stan")
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "models"


@pytest.mark.parametrize("name", MODELS)
def test_one_name_one_default_declared_in_code_and_config(name: str) -> None:
    assert get_model(name).defaults["backoff"] == DEFAULT_BACKOFF == "none"
    assert yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["defaults"]["backoff"] == DEFAULT_BACKOFF
    assert "baselines/ties.py" in importlib.import_module(get_model(name).source).__doc__
    with pytest.raises(ConfigError, match="backoff"):
        get_model(name).create(backoff="pop")


@pytest.fixture(scope="module")
def kit():
    split = kit_split(KitOptions())
    return split.training_data(), split.test_examples().batch(np.arange(64)).prefixes()


@pytest.mark.parametrize("name", MODELS)
def test_popularity_fills_only_the_unscored_items_below_every_scored_one(name: str, kit) -> None:
    data, prefixes = kit
    scores = {}
    for policy in BACKOFFS:
        model = get_model(name).create(backoff=policy)
        model.fit(data, FitContext())
        scores[policy] = model.score(prefixes)[:, 1:].to(torch.float64)
    plain, filled = scores["none"], scores["popularity"]
    scored = plain != 0
    assert (~scored).any(dim=1).all(), "the toy needs unscored items in every row"
    torch.testing.assert_close(filled[scored], plain[scored], rtol=0, atol=0)  # scored items unchanged
    smallest = torch.where(plain > 0, plain, torch.full_like(plain, torch.inf)).amin(dim=1, keepdim=True)
    smallest = torch.where(torch.isinf(smallest), torch.ones_like(smallest), smallest)
    pop = torch.from_numpy(data.item_popularity()[1:].astype(np.float64))
    expected = 0.5 * smallest * pop / (pop.max() + 1)
    torch.testing.assert_close(filled[~scored], expected.expand_as(plain)[~scored].to(filled.dtype), rtol=1e-6, atol=0)
    assert bool((filled[~scored] >= 0).all())
    assert bool((torch.where(scored, torch.full_like(filled, -1.0), filled) < smallest).all())


def test_backoff_keeps_negative_rules_below_and_never_clicked_items_at_0() -> None:
    data = TrainingData(SessionSet.from_lists([[1, 2], [1, 3], [1, 2]]), None, n_items=4, dataset="toy")
    scores = torch.tensor([[-torch.inf, 0.0, -0.5, 0.0, 0.0], [-torch.inf, 2.0, 0.0, 4.0, 0.0]], dtype=torch.float32)
    out = Backoff("popularity", data).apply(scores.clone())
    # pop: 1:3, 2:2, 3:1, 4:0 -> fill 0.5 * m * pop / 4; row 0 has no positive score (m = 1)
    torch.testing.assert_close(out[0, 1:], torch.tensor([0.375, -0.5, 0.125, 0.0]))
    torch.testing.assert_close(out[1, 1:], torch.tensor([2.0, 0.5, 4.0, 0.0]))
    assert out[0, 0] == -torch.inf  # column 0 is left alone
    assert torch.equal(Backoff("none", data).apply(scores.clone()), scores)


@pytest.mark.parametrize("name", MODELS)
def test_the_popularity_backoff_passes_the_conformance_kit(name: str) -> None:
    """The fill is computed row by row, so it keeps batch-company invariance and determinism."""
    from sessbench.testing import check_recommender

    assert "batch-company" in check_recommender(name, backoff="popularity").passed
