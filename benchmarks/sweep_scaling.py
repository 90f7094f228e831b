"""Wall time of one sweep spec: serial, Ray with 1 and 2 local workers, a simulated 2-node cluster.

Runs the same small spec (classical solvers on the hard FullyDigitalFDD-v0 setting, several
SNRs) four ways into fresh tables and checks that every table is identical to the serial one
apart from the measured columns (:data:`agents.sweep.MEASURED_COLUMNS`):

* ``local``: ``backend="local"``, serial in this process, no Ray;
* ``ray-1``, ``ray-2``: a local Ray instance with 1 / 2 worker CPUs;
* ``cluster-2x1``: ``ray.cluster_utils.Cluster`` with a head node and a second node of one CPU
  each (two raylets on this machine, as two machines of a cluster would be joined).

Ray's wall time includes starting Ray and its worker processes (each imports torch and the
agents), reported separately as ``init_seconds`` (``ray.init`` / cluster start) and
``sweep_seconds`` (``run_sweep``, worker start-up included).

Usage:
    python benchmarks/sweep_scaling.py [--episodes 200] [--out PATH.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

import agents  # noqa: F401
from agents.sweep import comparable, expand, run_sweep, spec_from_dict

AGENTS = ["mmse", "zf", "rzf", "mrt", "wmmse", "mmse_ga", "ga", "random"]


def make_spec(episodes: int) -> dict:
    return {
        "episodes": episodes,
        "envs": [
            {
                "id": "beamgym/FullyDigitalFDD-v0",
                "agents": AGENTS,
                "kwargs": {"channel": ["rayleigh"], "N": [4], "K": [4]},
                "snr_db": [0.0, 5.0, 10.0, 15.0, 20.0],
            }
        ],
    }


def run(name: str, spec, folder: Path) -> tuple[dict, object]:
    import ray

    out = folder / f"{name}.parquet"
    t0 = time.perf_counter()
    cluster = None
    if name == "local":
        init = 0.0
        df = run_sweep(spec, out, backend="local", progress=False)
    else:
        if name.startswith("cluster"):
            from ray.cluster_utils import Cluster

            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
            cluster.add_node(num_cpus=1)
            ray.init(address=cluster.address, log_to_driver=False)
        else:
            ray.init(num_cpus=int(name.split("-")[1]), include_dashboard=False, log_to_driver=False)
        init = time.perf_counter() - t0
        try:
            t1 = time.perf_counter()
            df = run_sweep(spec, out, backend="ray", progress=False)
            nodes = len({r["worker"] + str(r["attempt_pid"]) for r in df.to_dict("records")})
        finally:
            ray.shutdown()
            if cluster is not None:
                cluster.shutdown()
        return (
            {
                "config": name,
                "init_seconds": init,
                "sweep_seconds": time.perf_counter() - t1,
                "wall_seconds": time.perf_counter() - t0,
                "worker_processes": nodes,
            },
            df,
        )
    return (
        {
            "config": name,
            "init_seconds": init,
            "sweep_seconds": time.perf_counter() - t0,
            "wall_seconds": time.perf_counter() - t0,
            "worker_processes": 1,
        },
        df,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--configs", nargs="+", default=["local", "ray-1", "ray-2", "cluster-2x1"])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/sweep_scaling.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    spec = spec_from_dict(make_spec(args.episodes))
    cells, _ = expand(spec)
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            row, df = run(name, spec, Path(tmp))
            table = comparable(df)
            if reference is None:
                reference = table
            row["identical_to_first"] = bool(table.equals(reference))
            row["cells"] = len(df)
            row["cell_seconds_sum"] = float(df["cell_wall_s"].sum())
            rows.append(row)
            print(
                f"{name:12s} init {row['init_seconds']:6.1f} s  sweep {row['sweep_seconds']:6.1f} s"
                f"  wall {row['wall_seconds']:6.1f} s  cells {row['cells']}  "
                f"identical {row['identical_to_first']}"
            )
    result = {
        "command": (
            f"python benchmarks/sweep_scaling.py --episodes {args.episodes} "
            f"--configs {' '.join(args.configs)}"
        ),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "load_average_at_end": os.getloadavg(),
        },
        "spec": make_spec(args.episodes),
        "cells": len(cells),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
