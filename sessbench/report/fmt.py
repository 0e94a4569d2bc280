"""Number formatting shared by every table: fixed decimals, so files are byte-stable."""

from __future__ import annotations

from sessbench.report.doc import Cell

DASH = "–"  # an en dash: a value that does not exist (never an empty cell)


def pct(value: float | None, digits: int = 2) -> str:
    """A fraction as percent with fixed decimals; DASH for None."""
    return DASH if value is None else f"{100 * value:.{digits}f}"


def pct_pm(mean: float | None, std: float | None, n: int) -> str:
    """'mean ± std' in percent; the ± part only with more than one seed."""
    if mean is None:
        return DASH
    text = pct(mean)
    if n > 1 and std is not None:
        text += f" ± {pct(std)}"
    return text


def pct_cell(mean: float | None, std: float | None, n: int) -> Cell:
    """A mean ± std cell whose CSV values are the mean and std in percent (4 decimals)."""
    return Cell(
        pct_pm(mean, std, n),
        csv=("" if mean is None else f"{100 * mean:.4f}", "" if std is None or n < 2 else f"{100 * std:.4f}"),
    )


def seconds(mean: float | None, std: float | None = None, n: int = 1) -> str:
    if mean is None:
        return DASH
    digits = 1 if mean >= 10 else (2 if mean >= 0.1 else 3)
    text = f"{mean:.{digits}f}"
    if n > 1 and std is not None:
        text += f" ± {std:.{digits}f}"
    return text


def integer(value: float | int | None) -> str:
    return DASH if value is None else f"{int(round(value)):,}"


def number(value: float | None, digits: int = 2) -> str:
    return DASH if value is None else f"{value:,.{digits}f}"


def signed_points(value: float | None, digits: int = 2) -> str:
    """A difference of fractions in percentage points, with its sign ('−' for minus)."""
    if value is None:
        return DASH
    text = f"{100 * value:+.{digits}f}"
    return text.replace("-", "−")
