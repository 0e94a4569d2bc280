"""Names that end up in file names: model names (plugins choose them) and dataset names.

A run's id, and with it its record, rank file and checkpoints, is built from the model's and the
dataset's names. A plugin registered as `../../../escaped` would otherwise write outside the runs
directory, and a newline or a terminal escape in a name garbles logs and tables. So names are
checked where a grid is planned, before anything is written: no empty name, no path separator,
no `..`, no control or invisible formatting character. `safe_part` is the second line of
defence for code that builds a run id from a spec nobody checked.
"""

from __future__ import annotations

import os
import re
import unicodedata

from sessbench.errors import ConfigError

#: Unicode categories refused in names: controls, invisible formatting (bidi overrides), line breaks
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_SEPARATORS = tuple(dict.fromkeys(s for s in ("/", "\\", os.sep, os.altsep) if s))


def control_characters(text: str) -> list[str]:
    """The control / formatting characters in `text`, as escapes (for messages)."""
    return [repr(c)[1:-1] for c in dict.fromkeys(text) if unicodedata.category(c) in _BAD_CATEGORIES]


def name_problem(name: str) -> str | None:
    """Why `name` cannot become part of a file name, or None when it can."""
    if not isinstance(name, str) or not name.strip():
        return "it is empty"
    bad = control_characters(name)
    if bad:
        return f"it contains control characters ({', '.join(bad)})"
    seps = [s for s in _SEPARATORS if s in name]
    if seps:
        return f"it contains a path separator ({' '.join(seps)})"
    if ".." in name:
        return "it contains '..'"
    return None


def check_name(kind: str, name: str, where: str = "") -> str:
    """`name` when it is safe as part of a file name, else a ConfigError saying why and what to do."""
    problem = name_problem(name)
    if problem is not None:
        raise ConfigError(
            f"{kind} name {name!r}{where} cannot be used: {problem}, and run ids and file names are made "
            f"from it. Fix: rename it to letters, digits, '-', '_' and '.' only."
        )
    return name


def check_text(kind: str, text: str) -> str:
    """A value that may hold a path but no control characters (e.g. `clicks:PATH`)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"empty {kind}: give a name, e.g. --dataset synthetic")
    bad = control_characters(text)
    if bad:
        raise ConfigError(
            f"{kind} {text!r} contains control characters ({', '.join(bad)}): they would garble file names, "
            "logs and tables. Fix: remove them (rename the file if its path holds them)."
        )
    return text


def safe_part(name: str) -> str:
    """`name` unchanged when `name_problem` finds nothing, else with every unsafe character replaced
    by '-' (never a separator, never '..'), so no spec can place a file outside its folder."""
    if name_problem(name) is None:
        return name
    cleaned = re.sub(r"[^0-9A-Za-z_.-]", "-", name).replace("..", "-")
    return cleaned.strip() or "unnamed"
