"""Imported once by the server that local run processes fork from (see `sessbench.executors`).

Everything imported here (sessbench, torch, the model plugins) is shared by every run process,
which then starts in milliseconds instead of paying the imports per run.
"""

from sessbench import cli as _cli  # noqa: F401  (the command line, for processes that run it)
from sessbench import executors as _executors  # noqa: F401
from sessbench.models import load_plugins

load_plugins()
