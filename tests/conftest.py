"""Shared fixtures: deterministic seeding and the gpu marker."""

from __future__ import annotations

import os
import random

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no busy-waiting threads on 2 cores

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

os.environ.setdefault("SB3_LOGDIR", os.path.join(os.path.dirname(__file__), ".sb3_logs"))
# One intra-op thread: the tests' tensors are small, and on a shared 2-core machine a second
# (spinning) thread made iterative solvers up to 30x slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """Every test starts from the same global seeds (library code never uses them)."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
