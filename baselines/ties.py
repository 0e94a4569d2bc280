"""Ties that floating-point noise would otherwise break.

Two quantities that are equal in exact arithmetic (a similarity of 29/25 / 25 summed in two
orders, a rule weight of 1 + 1/3 + 1 against 1/3 + 2) can differ in their last bit, and then a
"ties go to the more recent session" or "ties go to the lower item" rule is decided by rounding
noise instead. `tie_key` rounds to 40 of float64's 53 mantissa bits (about 12 significant
digits) for ordering only; the values themselves stay exact.
"""

from __future__ import annotations

import numpy as np

__all__ = ["tie_key"]

_BITS = 40


def tie_key(values: np.ndarray) -> np.ndarray:
    """float64 `values` rounded to 40 significant bits, for sorting and selecting with ties."""
    mantissa, exponent = np.frexp(np.asarray(values, dtype=np.float64))
    return np.ldexp(np.round(mantissa * 2.0**_BITS) / 2.0**_BITS, exponent)
