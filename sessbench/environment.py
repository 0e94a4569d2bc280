"""What every result records about where it ran: versions, device, threads, git commit."""

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

_PACKAGES = ("numpy", "scipy", "pandas", "torch", "pyarrow")


@lru_cache(maxsize=1)
def git_commit() -> dict[str, Any]:
    """The commit of the sessbench checkout (None outside a git checkout) and whether it is dirty."""
    root = Path(sessbench.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=10,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


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
