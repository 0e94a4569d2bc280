"""The synthetic generator, its exact oracle and the calibration of the default dataset."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch

from sessbench.calibration import (
    format_calibration,
    synthetic_calibration,
)
from sessbench.data.sessions import SessionSet, Split
from sessbench.data.synthetic import (
    DAY_S,
    SyntheticConfig,
    SyntheticGenerator,
    _distinct_draws,
    revisit_rate,
)
from sessbench.errors import ConfigError
from sessbench.models import FitContext
from sessbench.oracle import OracleRecommender
from sessbench.oracle import synthetic_with_oracle as build_synthetic

TINY = SyntheticConfig(
    n_items=6,
    n_sessions=400,
    n_intents=3,
    min_intents_per_item=1,
    max_intents_per_item=2,
    successors=2,
    local_weight=0.6,
    switch_prob=0.3,
    repeat_prob=0.2,
    mean_length=4.0,
    max_length=8,
    seed=5,
)


# ---------------------------------------------------------------------------- brute force


def _kernels(gen: SyntheticGenerator) -> np.ndarray:
    """T[z, x, y] = T_z(x, y), written straight from the module docstring's definition."""
    c, n = gen.config, gen.n_items
    local = gen.local.toarray().reshape(gen.n_intents, n + 1, n + 1)
    broad = gen.intent_weights.toarray()[:, None, :]
    member = gen.membership[:, :, None]
    return np.where(member, c.local_weight * local + (1 - c.local_weight) * broad, broad)


def _joint(gen: SyntheticGenerator, kernels: np.ndarray, seq: list[int]) -> float:
    """P(x_1..x_n) by summing over every intent path (exponential; tiny configs only)."""
    c, k = gen.config, gen.n_intents
    w = gen.intent_weights.toarray()
    switch = (1 - c.switch_prob) * np.eye(k) + c.switch_prob * gen.intent_prior[None, :]
    total = 0.0
    for path in itertools.product(range(k), repeat=len(seq)):
        p = gen.intent_prior[path[0]] * w[path[0], seq[0]]
        for t in range(1, len(seq)):
            hist = seq[:t].count(seq[t]) / t
            trans = kernels[path[t], seq[t - 1], seq[t]]
            p *= switch[path[t - 1], path[t]] * (c.repeat_prob * hist + (1 - c.repeat_prob) * trans)
        total += p
    return total


def _brute_predictive(gen: SyntheticGenerator, prefix: list[int]) -> np.ndarray:
    kernels = _kernels(gen)
    joint = np.array([0.0] + [_joint(gen, kernels, prefix + [y]) for y in range(1, gen.n_items + 1)])
    return joint / joint.sum()


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tiny() -> SyntheticGenerator:
    return SyntheticGenerator(TINY)


@pytest.fixture(scope="module")
def default_split() -> tuple[Split, OracleRecommender]:
    return build_synthetic(SyntheticConfig())


@pytest.fixture(scope="module")
def calibration() -> dict:
    return synthetic_calibration()


# ---------------------------------------------------------------------------- config


def test_from_string_parses_and_keeps_defaults() -> None:
    cfg = SyntheticConfig.from_string(" n_items=500, n_sessions=2e3 ,seed=3,repeat_prob=0.2")
    assert (cfg.n_items, cfg.n_sessions, cfg.seed, cfg.repeat_prob) == (500, 2000, 3, 0.2)
    assert cfg.n_intents == SyntheticConfig().n_intents
    assert SyntheticConfig.from_string("") == SyntheticConfig()
    assert SyntheticConfig.from_string(cfg.to_string()) == cfg
    assert cfg.to_dict()["n_items"] == 500


def test_from_string_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as err:
        SyntheticConfig.from_string("n_itemz=5")
    assert "n_itemz" in str(err.value) and "n_items" in str(err.value) and "seed" in str(err.value)


@pytest.mark.parametrize(
    "text",
    ["n_items=abc", "n_items=2.5", "repeat_prob=x", "n_items", "=3", "seed=1,seed=2", "repeat_prob=1.5",
     "n_items=1", "test_days=20", "min_intents_per_item=5,max_intents_per_item=2", "switch_prob=nan",
     "popularity_exponent=inf"],
)
def test_from_string_bad_values(text: str) -> None:
    with pytest.raises(ConfigError):
        SyntheticConfig.from_string(text)


# ---------------------------------------------------------------------------- sampling


def test_determinism_by_seed() -> None:
    cfg = SyntheticConfig(n_items=200, n_sessions=500, seed=11)
    a, b = SyntheticGenerator(cfg).sample_split(), SyntheticGenerator(cfg).sample_split()
    for part in ("train", "test"):
        assert getattr(a, part).checksum() == getattr(b, part).checksum()
    c = SyntheticGenerator(SyntheticConfig(n_items=200, n_sessions=500, seed=12)).sample_split()
    assert c.train.checksum() != a.train.checksum()


def test_split_shapes_lengths_and_time_split(default_split: tuple[Split, OracleRecommender]) -> None:
    split, _ = default_split
    cfg = SyntheticConfig()
    assert split.name == "synthetic" and split.n_items == cfg.n_items
    assert np.array_equal(split.item_ids, np.arange(cfg.n_items + 1))
    assert split.meta["dataset"] == "synthetic" and split.meta["generator"] == cfg.to_dict()
    assert split.train.n_sessions + split.test.n_sessions <= cfg.n_sessions
    for part in (split.train, split.test):
        assert part.items.min() >= 1 and part.items.max() <= cfg.n_items
        assert part.lengths.min() >= 2 and part.lengths.max() <= cfg.max_length
        assert np.all(np.diff(part.timestamps) >= 0)
    split_time = split.meta["split_time"]
    assert split.train.timestamps.max() < split_time < split.test.timestamps.min()
    assert split_time == split.test.timestamps.max() - cfg.test_days * DAY_S
    assert split.train.timestamps.min() >= cfg.start_time
    assert split.test.timestamps.max() < cfg.start_time + cfg.days * DAY_S
    lengths = np.concatenate([split.train.lengths, split.test.lengths])
    assert 5.0 < lengths.mean() < 6.0 and lengths.max() >= 20  # long tail
    assert 30_000 <= len(split.train.examples()) <= 50_000
    assert 3_000 <= len(split.test_examples()) <= 6_000
    assert 0.10 <= revisit_rate(split.train) <= 0.25


def test_sampler_matches_definition() -> None:
    """Empirical frequencies of (x_1, x_2, x_3) agree with the exact probabilities of the model.

    Lengths are independent of content, so sessions of length >= 3 sample P(x_1, x_2, x_3).
    """
    gen = SyntheticGenerator(dataclasses.replace(TINY, n_sessions=60_000))
    kernels = _kernels(gen)
    items, lengths, _ = gen.sample_sessions()
    starts = (np.cumsum(lengths) - lengths)[lengths >= 3]
    n = gen.n_items + 1
    counts = np.bincount((items[starts] * n + items[starts + 1]) * n + items[starts + 2], minlength=n**3)
    exact = np.zeros(n**3)
    for a, b, c in itertools.product(range(1, n), repeat=3):
        exact[(a * n + b) * n + c] = _joint(gen, kernels, [a, b, c])
    assert exact.sum() == pytest.approx(1.0)
    expected = exact * len(starts)
    assert np.all(counts[exact == 0] == 0)
    z = (counts - expected)[exact > 0] / np.sqrt(expected[exact > 0])
    assert np.abs(z).max() < 5.0


def test_distinct_draws_is_successive_sampling() -> None:
    """Successors are d distinct other entries with the without-replacement probabilities."""
    rng = np.random.default_rng(0)
    w = np.array([0.4, 0.3, 0.2, 0.1])
    picks = np.stack([_distinct_draws(w, 2, rng)[0] for _ in range(4000)])  # entry 0's successors
    assert np.all(picks != 0) and np.all(picks[:, 0] != picks[:, 1])
    rest = w[1:] / w[1:].sum()
    for a, b in itertools.combinations(range(1, 4), 2):
        pa, pb = rest[a - 1], rest[b - 1]
        exact = pa * pb / (1 - pa) + pb * pa / (1 - pb)
        freq = np.mean((np.sort(picks, axis=1) == [a, b]).all(axis=1))
        assert abs(freq - exact) < 4 * math.sqrt(exact * (1 - exact) / len(picks))
    # weights so skewed that the streams stay short: the Gumbel fallback still gives distinct picks
    skewed = np.array([1.0, 1e-9, 1e-9, 1e-9])
    picks = np.stack([_distinct_draws(skewed, 2, rng)[1] for _ in range(400)])
    assert np.all(picks != 1) and np.all(picks[:, 0] != picks[:, 1])
    assert np.all((picks == 0).any(axis=1))  # the dominant entry is (almost surely) always picked


# ---------------------------------------------------------------------------- oracle


def test_predictive_is_exact_on_tiny_config(tiny: SyntheticGenerator) -> None:
    gen = tiny
    sessions = SessionSet.from_lists([[1, 1, 2, 5], [3, 4, 6, 1, 2], [2, 2, 2], [6, 1]])
    examples = sessions.examples()
    probs = gen.predictive(examples.batch(slice(None)))
    assert probs.shape == (len(examples), gen.n_items + 1)
    for row, (s, cut) in enumerate(zip(examples.session_index, examples.cut, strict=True)):
        prefix = sessions.session(int(s))[: int(cut)].tolist()
        np.testing.assert_allclose(probs[row].numpy(), _brute_predictive(gen, prefix), rtol=1e-9, atol=1e-12)


def test_predictive_rows_are_distributions(default_split: tuple[Split, OracleRecommender]) -> None:
    split, oracle = default_split
    batch = split.test_examples().batch(slice(0, 3000))
    probs = oracle.score(batch)
    assert probs.dtype == torch.float64
    assert torch.all(probs >= 0) and torch.all(probs[:, 0] == 0)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(batch), dtype=torch.float64))
    assert torch.all(probs.gather(1, batch.targets[:, None]) > 0)  # every observed target is possible


def test_oracle_interface() -> None:
    _, oracle = build_synthetic(TINY)
    assert oracle.name == "oracle"
    oracle.fit(None, FitContext())  # type: ignore[arg-type]  # no-op


# ---------------------------------------------------------------------------- first order


# ---------------------------------------------------------------------------- calibration


def test_default_calibration(calibration: dict) -> None:
    models = calibration["models"]
    oracle = models["oracle"]["P@20"]
    assert models["s-pop"]["P@20"] > models["pop"]["P@20"] + 0.05
    assert models["first-order"]["normalized_gain"] <= 0.7
    assert models["pop"]["share_of_oracle"] < 0.5
    assert all(oracle >= m["P@20"] for m in models.values())
    assert all(models["oracle"]["MRR@20"] >= m["MRR@20"] for m in models.values())
    assert "oracle" in format_calibration(calibration)


def test_calibration_is_measured_on_the_validation_carve(calibration: dict) -> None:
    """The defaults are tuned on these figures, so they must not come from the test split."""
    split, _ = build_synthetic()
    carved = split.with_validation(0.1)
    d = calibration["dataset"]
    assert calibration["evaluated_on"] == "validation"
    assert d["valid_prefixes"] == len(carved.valid.examples()) != d["test_prefixes"]
    assert d["train_sessions"] == carved.train.n_sessions
    assert "figures on the validation carve" in format_calibration(calibration)


def test_oracle_expected_hit_rate_matches_measured(calibration: dict) -> None:
    """The predictive is exact: its own top-20 mass predicts the measured P@20 within 3 SE.

    Each hit minus its predicted mass is a martingale difference, so the SE needs no
    correction for the correlation of prefixes of one session.
    """
    measured = calibration["models"]["oracle"]["P@20"]
    expected, se = calibration["oracle_expected_P@20"], calibration["oracle_expected_se"]
    assert 0 < se < 0.02
    assert abs(measured - expected) <= 3 * se


def test_expected_hit_rate_method(default_split: tuple[Split, OracleRecommender]) -> None:
    split, oracle = default_split
    ex = split.test_examples().subset(slice(0, 500))
    value = oracle.expected_hit_rate(ex, k=20)
    assert value == pytest.approx(float(np.mean(oracle.top_k_mass(ex, 20, batch_size=77))))
    assert 0.0 < value < 1.0 and not math.isnan(value)
