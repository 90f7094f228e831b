"""The large-array throughput benchmark (benchmarks/env_throughput.py --large), on CPU and CUDA."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "bench_env_throughput", ROOT / "benchmarks" / "env_throughput.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_large_config_hybrid_has_one_rf_chain_per_user(bench) -> None:
    assert bench.large_config("beamgym/FarFieldHybrid-v0", 256, 64) == {
        "N": 256,
        "K": 64,
        "N_RF": 64,
    }
    assert bench.large_config("beamgym/FullyDigitalFDD-v0", 64, 16) == {"N": 64, "K": 16}


def test_bench_large_row(bench) -> None:
    row = bench.bench_large("beamgym/FullyDigitalFDD-v0", 64, 16, max_batch=16)
    assert row["batch"] <= 16 and row["instances_per_s"] > 0
    assert [s["batch"] for s in row["steps"]][:2] == [8, 16][: len(row["steps"])]
    # the channel alone is K*N complex64 values (8 bytes each) per instance
    assert row["peak_bytes_per_instance"] >= 0
    assert row["stopped"] is None
    # a step limit below any step's time stops the size at its first batch, and says so
    slow = bench.bench_large("beamgym/FullyDigitalFDD-v0", 64, 16, step_limit_s=0.0)
    assert slow["batch"] == 8 and "took" in slow["stopped"]


def test_growth_exponents(bench) -> None:
    rows = [
        {
            "env_id": "e",
            "N": n,
            "K": 4,
            "seconds_per_instance": 1e-6 * n**2,
            "peak_bytes_per_instance": 8.0 * n,
        }
        for n in (64, 256, 1024)
    ]
    (g,) = bench._growth(rows)
    assert g["axis"] == "N" and g["time_exponent"] == pytest.approx(2.0)
    assert g["memory_exponent"] == pytest.approx(1.0)


@pytest.mark.gpu
def test_bench_large_cuda(bench) -> None:
    row = bench.bench_large("beamgym/FarFieldHybrid-v0", 256, 16, device="cuda", max_batch=64)
    assert row["device"].startswith("cuda") and row["instances_per_s"] > 0
    # CUDA memory is exact: at least the K x N complex64 channel of every instance
    assert row["peak_bytes_per_instance"] >= 16 * 256 * 8
    assert torch.cuda.is_available()
