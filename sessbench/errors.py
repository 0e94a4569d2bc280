"""User-facing errors.

Every error a user can cause (a bad file, a bad option, a missing dataset) is raised as a
`SessbenchError`: the CLI prints its message as one paragraph and exits with code 2, without a
traceback (`--debug` shows it). The message says what is wrong, where (file, line, key) and how
to fix it.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable


class SessbenchError(Exception):
    """An error caused by input the user can fix."""

    exit_code = 2


class DataFormatError(SessbenchError):
    """A raw data file that cannot be read as the format it claims to be."""

    def __init__(self, path: str | Path, problem: str, fix: str, line: int | None = None) -> None:
        where = f"{path}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {problem}. {fix}")
        self.path = str(path)
        self.line = line


class MissingDataError(SessbenchError):
    """A raw dataset file that is not where it should be."""


class ConfigError(SessbenchError):
    """A configuration file or option with an invalid key or value."""


class UnknownNameError(SessbenchError):
    """An unknown model, group or dataset name (with a did-you-mean)."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = "") -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        msg = f"unknown {kind} '{name}'."
        if close:
            msg += " Did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        msg += f" Known {kind}s: {', '.join(known)}."
        if hint:
            msg += " " + hint
        super().__init__(msg)
