"""Paired significance of one model against the others, on per-example reciprocal ranks.

The test: Fisher's paired randomization (sign-flip permutation) test on the per-example
difference of expected RR@20, with Holm's step-down correction over the comparisons of one
dataset. Why this test:

- The statistic is the mean per-example difference, i.e. exactly the difference in MRR@20 the
  tables report; the test is about the number readers compare.
- It assumes no distribution. Per-example RR differences are far from normal (a spike at 0
  where both models miss the top 20, masses at +-1, +-1/2, ...). Under H0 the two models'
  RRs on an example are exchangeable, so each difference's sign is a fair coin; the p-value
  is the share of sign assignments whose |mean| reaches the observed one.
- The Wilcoxon signed-rank and sign tests answer other questions (a median / the share of
  wins) and discard the many zero differences; studies of IR significance testing
  (Smucker, Allan and Carterette, CIKM 2007; Urbano et al., SIGIR 2019) recommend the
  randomization (or t) test over them for mean-of-per-query metrics.
- The unit is the test **session**, not the prefix. The prefixes of one session share their
  input (every prefix of a session is evaluated, so a session of n clicks gives n-1 strongly
  correlated examples), so treating prefixes as independent makes p-values too small. The
  differences are summed per session and the signs of whole sessions are flipped (a clustered
  sign-flip test; exchangeability is assumed between sessions, not prefixes). Confidence
  intervals come from a session bootstrap (whole sessions drawn with replacement, the mean
  difference as the ratio of summed differences to summed prefixes). Without the session of
  each example (a store without its split tables) the prefix is the unit, and tables say so.
- Seeds: each model's per-example RR is first averaged over its seeds (seed noise is shown
  separately as the ± in the tables). The test is therefore conditional on the trained models:
  it says whether the seed-averaged models differ on this test set, not whether a new training
  run would.
- Holm (1979) controls the family-wise error rate at alpha over all comparisons of a dataset
  with no independence assumption, and is uniformly more powerful than Bonferroni.

Resampling uses a fixed seed, so the report is reproducible byte for byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
#: bootstrap resamples for confidence intervals
BOOTSTRAP_RESAMPLES = 2_000
#: resamples drawn at once (bounds memory at CHUNK x n_examples / 8 bytes of signs)
CHUNK = 256


@dataclass(frozen=True)
class PairedResult:
    n: int  # examples compared
    mean_diff: float  # mean(a - b), a fraction (MRR points / 100)
    ci_low: float  # 95% normal-approximation interval of the mean difference
    ci_high: float
    p_value: float  # two-sided randomization p-value
    resamples: int
    wins: int  # examples where a's RR is higher
    losses: int
    units: int = 0  # independent units resampled: sessions (or examples without clusters)
    unit: str = "example"


def cluster_sums(values: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum of `values`, number of examples) per cluster, clusters numbered 0.. in any order."""
    _, index = np.unique(np.asarray(clusters), return_inverse=True)
    return np.bincount(index, weights=values), np.bincount(index).astype(np.float64)


def bootstrap_mean_ci(
    values: np.ndarray, clusters: np.ndarray | None = None, *, resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0, level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(values), drawing whole clusters (sessions) with
    replacement when `clusters` is given (the mean is then sum over drawn clusters / their
    examples), single examples otherwise."""
    values = np.asarray(values, dtype=np.float64)
    if clusters is None:
        sums, sizes = values, np.ones_like(values)
    else:
        sums, sizes = cluster_sums(values, clusters)
    rng = np.random.default_rng(seed)
    c = len(sums)
    means = np.empty(resamples)
    for start in range(0, resamples, CHUNK):
        rows = min(CHUNK, resamples - start)
        pick = rng.integers(0, c, size=(rows, c))
        means[start : start + rows] = sums[pick].sum(axis=1) / sizes[pick].sum(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_randomization_test(
    a: np.ndarray, b: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
    clusters: np.ndarray | None = None,
) -> PairedResult:
    """Two-sided paired sign-flip test of mean(a - b) = 0, by session when `clusters` is given.

    p = (1 + #{resamples with |sum(s * d)| >= |sum(d)|}) / (1 + resamples), the standard
    Monte-Carlo estimate that never reports 0. With `clusters` (the test session of each
    example), d is the per-session sum of the differences and whole sessions flip sign; the
    interval is a session bootstrap. Without, d is per example and the interval the normal
    approximation. Units with d = 0 are dropped before resampling: their sign cannot change the
    statistic. Signs are drawn as random bits (8 per byte) and summed through per-byte tables.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples need equal 1-d shapes, got {a.shape} and {b.shape}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    n = len(a)
    if n == 0:
        raise ValueError("no examples to compare")
    if clusters is not None and len(clusters) != n:
        raise ValueError(f"clusters must name one session per example ({n}), got {len(clusters)}")
    diff = a - b
    mean = float(diff.mean())
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    if clusters is None:
        sd = float(diff.std(ddof=1)) if n > 1 else 0.0
        half = 1.959963984540054 * sd / math.sqrt(n)
        low, high = mean - half, mean + half
        units, unit, d = n, "example", diff[diff != 0.0]
    else:
        sums, _ = cluster_sums(diff, clusters)
        low, high = bootstrap_mean_ci(diff, clusters, seed=seed)
        units, unit, d = len(sums), "session", sums[sums != 0.0]
    if d.size == 0:
        return PairedResult(n, 0.0, 0.0, 0.0, 1.0, resamples, wins, losses, units, unit)
    total = float(d.sum())
    observed = abs(total)
    # a resampled sum equal to the observed one up to rounding counts as reaching it
    tolerance = 1e-9 * max(1.0, float(np.abs(d).sum()))
    # Signs come as random bytes, one bit per example. Instead of unpacking the bits, every
    # group of 8 examples gets a 256-entry table of its partial sums sum(bit * d) for each byte
    # value, so one resample costs n/8 table look-ups instead of n multiply-adds.
    n_bytes = (d.size + 7) // 8
    padded = np.zeros(n_bytes * 8, dtype=np.float64)
    padded[: d.size] = d
    bit_of = (np.arange(256)[:, None] >> np.arange(7, -1, -1)[None, :]) & 1  # [256, 8], MSB first
    tables = padded.reshape(n_bytes, 8) @ bit_of.T.astype(np.float64)  # [n_bytes, 256]
    position = np.arange(n_bytes)
    rng = np.random.default_rng(seed)
    reached = 0
    for start in range(0, resamples, CHUNK):
        rows = min(CHUNK, resamples - start)
        signs = rng.integers(0, 256, size=(rows, n_bytes), dtype=np.uint8)
        # sign +1 for bit 1, -1 for bit 0: sum(s * d) = 2 * sum(bits * d) - sum(d)
        stats = 2.0 * tables[position, signs].sum(axis=1) - total
        reached += int(np.count_nonzero(np.abs(stats) >= observed - tolerance))
    p = (reached + 1) / (resamples + 1)
    return PairedResult(n, mean, low, high, float(p), resamples, wins, losses, units, unit)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    Sorted ascending, p_(i) is multiplied by (m - i) (i from 0), made monotone by a running
    maximum and capped at 1. Reject H_i at level alpha iff adjusted p_i <= alpha.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: (p_values[i], i))
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def format_p(p: float, resamples: int) -> str:
    """A p-value for a table: '< 1/(B+1)' at the resolution floor, else 2 significant digits."""
    floor = 1.0 / (resamples + 1)
    if p <= floor * (1 + 1e-9):
        return f"< {_sig(floor * 1.0000001)}"
    return _sig(p)


def _sig(p: float) -> str:
    if p >= 0.1:
        return f"{p:.2f}"
    if p >= 0.001:
        return f"{p:.3f}" if p < 0.01 else f"{p:.2f}"
    return f"{p:.1e}"
