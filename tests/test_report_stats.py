"""The significance machinery: the randomization test's p-values and Holm's correction."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sessbench.report.stats import format_p, holm, paired_randomization_test


def _exact_p(d: np.ndarray) -> float:
    """The exact two-sided sign-flip p-value by enumerating all 2^n sign vectors."""
    observed = abs(d.sum())
    hits = sum(abs(np.dot(signs, d)) >= observed - 1e-12 for signs in itertools.product((-1.0, 1.0), repeat=len(d)))
    return hits / 2 ** len(d)


def test_monte_carlo_p_matches_exact_enumeration() -> None:
    rng = np.random.default_rng(3)
    for _ in range(3):
        a = rng.random(12)
        b = a + rng.normal(0.1, 0.3, 12)
        exact = _exact_p(a - b)
        p = paired_randomization_test(a, b, resamples=20_000, seed=1).p_value
        assert abs(p - exact) < 0.012, (p, exact)


def test_identical_models_are_not_different() -> None:
    a = np.random.default_rng(0).random(500)
    r = paired_randomization_test(a, a.copy(), resamples=199)
    assert r.p_value == 1.0 and r.mean_diff == 0.0 and r.wins == r.losses == 0


def test_clear_difference_reaches_the_resolution_floor() -> None:
    rng = np.random.default_rng(1)
    b = rng.random(2000) * 0.3
    a = b + 0.05 + rng.normal(0, 0.02, 2000)
    r = paired_randomization_test(a, b, resamples=999, seed=0)
    assert r.p_value == pytest.approx(1 / 1000)
    assert r.ci_low > 0 and r.mean_diff == pytest.approx(float((a - b).mean()))
    assert format_p(r.p_value, 999) == "< 0.001"


def test_null_hypothesis_rejects_at_the_nominal_rate() -> None:
    """Under H0 (symmetric differences) p is about uniform: ~5% of tests fall below 0.05."""
    rng = np.random.default_rng(11)
    ps = []
    for _ in range(300):
        base = rng.random(80)
        noise = rng.normal(0, 0.1, 80)
        ps.append(paired_randomization_test(base + noise, base - noise, resamples=199, seed=int(rng.integers(1 << 30))).p_value)
    rate = np.mean(np.array(ps) <= 0.05)
    assert 0.02 <= rate <= 0.09, rate


def test_test_is_deterministic_and_symmetric() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.random(300), rng.random(300)
    r1 = paired_randomization_test(a, b, resamples=500, seed=4)
    r2 = paired_randomization_test(a, b, resamples=500, seed=4)
    r3 = paired_randomization_test(b, a, resamples=500, seed=4)
    assert r1 == r2
    assert r3.p_value == r1.p_value and r3.mean_diff == pytest.approx(-r1.mean_diff)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="equal 1-d shapes"):
        paired_randomization_test(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="resamples"):
        paired_randomization_test(np.zeros(3), np.zeros(3), resamples=0)


def test_holm_by_hand() -> None:
    # sorted: 0.01 (x4) = 0.04, 0.03 (x3) = 0.09, 0.04 (x2) = 0.08 -> monotone 0.09, 0.5 (x1)
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 0.8 x 2 caps at 1; monotone after
    assert holm([0.6, 0.001, 0.2]) == pytest.approx([0.6, 0.003, 0.4])
    assert holm([]) == []
    adjusted = holm(list(np.random.default_rng(2).random(20)))
    assert all(0 <= p <= 1 for p in adjusted)
