"""What every result records about where it ran: versions, device, threads, git commit, code state.

Two questions decide whether runs may be averaged or published:

* **Clean?** `git_commit()` reports the commit and whether the checkout differs from it, untracked
  files in the code folders included (an untracked model module changes what runs as surely as
  an edited one). The report refuses to mix runs from dirty trees into its tables.
* **Same code?** `code_state(model)` hashes the files whose content can change a run's numbers:
  the harness core (`RESULT_CODE`: data preparation, sessions, the protocol, the training loop,
  evaluation, the model interface) and the package of the model's own module. Runs of one model
  from two commits that differ only in the report, the CLI or another model share a code state;
  runs whose code state differs are never averaged (the report groups by it).
"""

from __future__ import annotations

import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

import sessbench
from sessbench.errors import ConfigError

_PACKAGES = ("numpy", "scipy", "pandas", "torch", "pyarrow")

#: folders whose untracked files make a checkout dirty (code that could run)
CODE_DIRS = ("sessbench", "baselines", "srgnn", "configs", "scripts")

#: harness modules whose content can change a run's numbers (data enter by the prepared split's
#: checksum instead, see `sessbench.data.sessions.Split.checksum`)
RESULT_CODE = (
    "sessbench.execution",  # one run: the protocol (carve, select, refit), fit, evaluate
    "sessbench.training",  # the shared training loop
    "sessbench.evaluation",  # metrics
    "sessbench.models",  # the interface and the registry
    "sessbench.blocked_products",  # products the torch models use
    "sessbench.data.sessions",  # examples, batches, the validation carve
)


@lru_cache(maxsize=1)
def git_commit() -> dict[str, Any]:
    """The commit of the sessbench checkout (None outside a git checkout) and whether it is dirty."""
    return git_state(Path(sessbench.__file__).resolve().parents[1])


def git_state(root: Path) -> dict[str, Any]:
    """The commit of the checkout at `root`, and whether it differs from it: changed tracked files,
    and untracked files in the code folders (`CODE_DIRS`); `changed` lists the first of them."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        tracked = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=10,
        )
        untracked = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all", "--", *CODE_DIRS],
            cwd=root, capture_output=True, text=True, timeout=10,
        )
        lines = [line for line in (tracked.stdout + untracked.stdout).splitlines() if line.strip()]
        changed = sorted({line[3:] for line in lines})
        out: dict[str, Any] = {"commit": commit.stdout.strip(), "dirty": bool(changed)}
        if changed:
            out["changed"] = changed[:20]
        return out
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _module_file(name: str) -> Path | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin).resolve() if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def _imports_within(name: str, path: Path, top: str) -> list[str]:
    """Modules of package `top` that module `name` (at `path`) imports, by reading its source."""
    import ast

    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError, ValueError):
        return []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == top]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base.split(".")[0] != top:
                continue
            found.append(base)
            found += [f"{base}.{a.name}" for a in node.names]  # `from pkg import module`
    return [m for m in found if _module_file(m) is not None]


def module_closure(name: str) -> list[tuple[str, Path]]:
    """`name` and every module of its own top-level package it imports, transitively, sorted."""
    top = name.split(".")[0]
    seen: dict[str, Path] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        path = _module_file(current)
        if path is None:
            continue
        seen[current] = path
        todo += _imports_within(current, path, top)
    return sorted(seen.items())


@lru_cache(maxsize=None)
def code_state(model_module: str | None = None) -> dict[str, Any]:
    """A digest of the code that can change a run's numbers, by file content: the harness modules
    of `RESULT_CODE` and the model's module (the one that registered it) with every module of its
    own package that it imports, transitively. Editing another model leaves it unchanged."""
    import hashlib

    files: dict[str, Path] = {}
    for name in RESULT_CODE + ((model_module,) if model_module else ()):
        files.update(module_closure(name) if name == model_module else [(name, _module_file(name))])
    h = hashlib.sha256()
    for name, path in sorted(files.items()):
        if path is not None:
            h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return {"digest": h.hexdigest()[:12], "modules": sorted(files)}


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def environment_info(device: torch.device | str | None = None) -> dict[str, Any]:
    dev = torch.device(device) if device is not None else torch.device("cpu")
    info: dict[str, Any] = {
        "sessbench": sessbench.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": {p: _version(p) for p in _PACKAGES},
        "torch_threads": torch.get_num_threads(),
        "device": str(dev),
        "git": git_commit(),
    }
    if dev.type == "cuda" and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(dev)
    return info


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device for a `--device` value: "auto" picks cuda when present, else cpu.

    Asking for an accelerator the machine lacks is a user error (SessbenchError), not a silent
    fallback: a run that was meant for the GPU must not quietly take 50x longer on the CPU.
    """
    text = str(name).strip().lower()
    if text in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"unknown device '{name}': use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from exc
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device '{name}' was requested but no CUDA GPU is available to torch "
                f"{torch.__version__} (CUDA build: {torch.version.cuda or 'none'}). "
                "Use --device auto or --device cpu, or install a CUDA build of torch."
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device '{name}' does not exist: this machine has {count} CUDA device(s) "
                f"(cuda:0..cuda:{count - 1}). Use --device cuda:0 (or another index in that "
                "range), --device auto or --device cpu."
            )
        return device
    module = getattr(torch, device.type, None)
    available = getattr(module, "is_available", None)
    if available is None or not available():
        raise ConfigError(f"device '{name}' is not available here: use 'auto', 'cpu' or 'cuda'.")
    return device
