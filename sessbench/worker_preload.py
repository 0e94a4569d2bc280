"""Imported once by the server that local run processes fork from (see `sessbench.executors`).

Everything imported here (sessbench, torch, the model plugins) is shared by every run process,
which then starts in milliseconds instead of paying the imports per run. `sessbench.cli` is left
out on purpose: under `python -m sessbench.cli` each run process re-executes its main module, and
runpy warns when that module was imported before.
"""

from sessbench import executors as _executors  # noqa: F401
from sessbench.models import load_plugins

load_plugins()
