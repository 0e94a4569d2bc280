"""session-rec's distance weightings, one definition for the two models that use them.

SR weighs a rule a -> b by the distance d >= 1 (in clicks) from a to b in a training session;
V-SKNN weighs a neighbour's vote by d = 1 + the clicks after the prefix's most recent click of
an item the neighbour holds. session-rec (rn5l/session-rec, ``algorithms/baselines/sr.py`` and
``algorithms/knn/vsknn.py``, the ``*_score`` functions) gives both the same formulas:

    same 1,  div 1/d,  quadratic 1/d^2,  log 1/log10(d + 1.7),
    linear 1 - 0.1 d for d <= 100, else 0 (negative for 10 < d <= 100, as there).

We keep ``linear`` exactly, negative values included, so results compare with session-rec's;
it matters only for distances above 10 (SR's default ``steps`` is 10).
"""

from __future__ import annotations

import numpy as np

__all__ = ["DECAYS", "distance_decay"]

DECAYS = ("same", "div", "linear", "log", "quadratic")


def distance_decay(kind: str, d: np.ndarray | int) -> np.ndarray:
    """float64 weight of each distance `d` (>= 1) under weighting `kind` (one of DECAYS)."""
    d = np.asarray(d, dtype=np.float64)
    if kind == "same":
        return np.ones_like(d)
    if kind == "div":
        return 1.0 / d
    if kind == "quadratic":
        return 1.0 / (d * d)
    if kind == "log":
        return 1.0 / np.log10(d + 1.7)
    if kind == "linear":
        return np.where(d <= 100, 1.0 - 0.1 * d, 0.0)
    raise ValueError(f"unknown weighting {kind!r}: use one of {', '.join(DECAYS)}")
