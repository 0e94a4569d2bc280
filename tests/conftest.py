"""Shared fixtures. Tests that need the real data samples skip when ../shared/data is absent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Grids in tests run one by one in the test's process unless a test asks for --jobs: fail points
# count their hits per process, and most tests compare what one process did.
os.environ.setdefault("SESSBENCH_JOBS", "1")
SHARED_DATA = Path(os.environ.get("SESSBENCH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real data samples (../shared/data); skips the test when it is absent."""
    if not (SHARED_DATA / "diginetica-sample").is_dir():
        pytest.skip(f"real data samples not found at {SHARED_DATA} (a user's clone has none)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from threads, and on a busy machine threads spin-wait."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
