"""NARM: shapes, padding masks, the attention, learning a toy pattern, determinism."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from baselines.narm import NARM, NARMNet
from sessbench.errors import ConfigError
from sessbench.models import FitContext, get_model
from toy import assert_padding_and_batch_company_do_not_matter, p_at_1, successor_data


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_paper_settings_are_the_defaults() -> None:
    spec = get_model("narm")
    d = spec.defaults
    assert (d["embedding_size"], d["hidden_size"], d["lr"], d["batch_size"]) == (50, 100, 0.001, 512)
    assert (d["dropout_embed"], d["dropout_context"], d["optimizer"]) == (0.25, 0.5, "adam")
    assert {"baselines", "paper"} <= set(spec.groups)


def test_scores_shape_and_padding_and_batch_company_do_not_matter() -> None:
    torch.manual_seed(0)
    assert_padding_and_batch_company_do_not_matter(NARMNet(20, 6, 8, 0.25, 0.5).eval())


def test_attention_weights_only_real_positions_and_uses_the_last_state() -> None:
    """Changing an earlier click changes the local encoder; padding gets zero attention."""
    torch.manual_seed(1)
    net = NARMNet(20, 6, 8, 0.0, 0.0).eval()
    captured: dict[str, torch.Tensor] = {}
    original = torch.softmax

    def spy(x: torch.Tensor, dim: int) -> torch.Tensor:
        out = original(x, dim=dim)
        captured["alpha"] = out
        return out

    items = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0]])
    torch.softmax = spy  # type: ignore[assignment]
    try:
        with torch.no_grad():
            net.session(items, torch.tensor([3, 2]))
    finally:
        torch.softmax = original  # type: ignore[assignment]
    alpha = captured["alpha"]
    assert torch.all(alpha[items == 0] == 0)
    torch.testing.assert_close(alpha.sum(1), torch.ones(2))


def test_learns_a_deterministic_sequence_to_near_perfect_p1() -> None:
    data = successor_data()
    model = NARM(embedding_size=16, hidden_size=32, batch_size=32, epochs=8, lr=0.01)
    model.fit(data, FitContext(seed=0))
    assert p_at_1(model, data) >= 0.95


def test_same_seed_same_model_other_seed_other_model() -> None:
    data = successor_data(n_sessions=60)
    states = []
    for seed in (2, 2, 3):
        model = NARM(embedding_size=8, hidden_size=8, batch_size=16, epochs=2)
        model.fit(data, FitContext(seed=seed))
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


@pytest.mark.parametrize("bad", [{"hidden_size": 0}, {"dropout_embed": 1.0}, {"dropout_context": -0.1}])
def test_bad_hyperparameters_are_config_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        NARM(**bad)
