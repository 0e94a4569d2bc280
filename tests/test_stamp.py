"""STAMP: shapes, padding masks, the paper's initialisation, learning a toy pattern, determinism."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from baselines.stamp import STAMP, STAMPNet
from sessbench.errors import ConfigError
from sessbench.models import FitContext, get_model
from toy import assert_padding_and_batch_company_do_not_matter, p_at_1, successor_data


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_paper_settings_are_the_defaults() -> None:
    spec = get_model("stamp")
    d = spec.defaults
    assert (d["embedding_size"], d["lr"], d["batch_size"]) == (100, 0.005, 512)
    assert (d["init_std"], d["embedding_init_std"], d["optimizer"]) == (0.05, 0.002, "adam")
    assert {"baselines", "paper"} <= set(spec.groups)


def test_initialisation_follows_the_paper() -> None:
    torch.manual_seed(0)
    net = STAMPNet(2000, 100, 0.05, 0.002)
    assert net.emb.weight[1:].std().item() == pytest.approx(0.002, rel=0.05)
    assert torch.all(net.emb.weight[0] == 0)
    assert net.w1.weight.std().item() == pytest.approx(0.05, rel=0.05)
    assert torch.all(net.mlp_s.bias == 0) and torch.all(net.w3.bias == 0)


def test_scores_shape_and_padding_and_batch_company_do_not_matter() -> None:
    torch.manual_seed(0)
    assert_padding_and_batch_company_do_not_matter(STAMPNet(20, 6, 0.5, 0.5).eval())


def test_session_uses_the_last_click_and_the_mean() -> None:
    """Same last click, different history -> different scores; same multiset -> mean is order-free."""
    torch.manual_seed(0)
    net = STAMPNet(20, 6, 0.5, 0.5).eval()
    with torch.no_grad():
        a = net(torch.tensor([[1, 2, 5]]), torch.tensor([3]))
        b = net(torch.tensor([[3, 4, 5]]), torch.tensor([3]))
        c = net(torch.tensor([[2, 1, 5]]), torch.tensor([3]))
    assert not torch.allclose(a, b)
    torch.testing.assert_close(a, c)  # attention and mean are permutation-invariant over history


def test_learns_a_deterministic_sequence_to_near_perfect_p1() -> None:
    data = successor_data()
    model = STAMP(embedding_size=32, batch_size=32, epochs=8, lr=0.01)
    model.fit(data, FitContext(seed=0))
    assert p_at_1(model, data) >= 0.95


def test_same_seed_same_model_other_seed_other_model() -> None:
    data = successor_data(n_sessions=60)
    states = []
    for seed in (2, 2, 3):
        model = STAMP(embedding_size=8, batch_size=16, epochs=2)
        model.fit(data, FitContext(seed=seed))
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


@pytest.mark.parametrize("bad", [{"embedding_size": 0}, {"init_std": 0.0}, {"embedding_init_std": -1.0}])
def test_bad_hyperparameters_are_config_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        STAMP(**bad)
