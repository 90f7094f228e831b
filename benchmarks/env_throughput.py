"""Throughput of each env's batched ``evaluate`` against a per-instance Python loop.

For every registered env at its default size: draw a fixed instance set, map random actions to
beamformers once, then time (a) one batched ``task.evaluate`` call over the whole batch and (b)
a Python loop that evaluates the same instances one at a time. Reports instances per second of
both and their ratio. Target (issue 2): batched >= 50x the loop for FullyDigitalFDD-v0 at
N=64, K=16 with a batch of 4096.

Usage:
    python benchmarks/env_throughput.py [--batch 4096] [--repeats 5] [--out PATH.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import beamgym
from beamgym.datasets import make_instance_set, make_task


def _best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_env(env_id: str, batch: int, loop_n: int, repeats: int, seed: int) -> dict:
    task = make_task(env_id)
    ds = make_instance_set(env_id, n=batch, seed=seed)
    inst = ds.instances
    rng = np.random.default_rng(seed)
    actions = torch.as_tensor(rng.uniform(-1, 1, (batch, task.action_dim)), dtype=task.rdtype)
    with torch.no_grad():
        bf, _ = task.action_to_beamformer(actions, inst)

        def batched() -> None:
            task.evaluate(bf, inst)

        singles = [(bf[i : i + 1], inst[i : i + 1]) for i in range(loop_n)]

        def loop() -> None:
            for b, x in singles:
                task.evaluate(b, x)

        t_batch = _best_time(batched, repeats)
        t_loop = _best_time(loop, max(1, repeats // 2))
        # consistency: the loop and the batch give the same metric
        ref = task.evaluate(bf[:loop_n], inst[:loop_n])["metric"]
        got = torch.cat([task.evaluate(b, x)["metric"] for b, x in singles])
        max_rel = float(((ref - got).abs() / ref.abs().clamp_min(1e-12)).max())
    batched_ips = batch / t_batch
    loop_ips = loop_n / t_loop
    return {
        "env_id": env_id,
        "batch": batch,
        "loop_instances": loop_n,
        "batched_instances_per_s": batched_ips,
        "loop_instances_per_s": loop_ips,
        "speedup": batched_ips / loop_ips,
        "batched_seconds": t_batch,
        "max_rel_diff_loop_vs_batch": max_rel,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--loop", type=int, default=1024, help="instances in the per-instance loop")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/env_throughput.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for env_id in beamgym.ENV_IDS:
        row = bench_env(env_id, args.batch, min(args.loop, args.batch), args.repeats, args.seed)
        rows.append(row)
        print(
            f"{env_id:32s} batched {row['batched_instances_per_s']:>12,.0f}/s  "
            f"loop {row['loop_instances_per_s']:>10,.0f}/s  speedup {row['speedup']:7.1f}x"
        )
    result = {
        "command": (
            "python benchmarks/env_throughput.py "
            f"--batch {args.batch} --loop {args.loop} --repeats {args.repeats} "
            f"--threads {args.threads}"
        ),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "threads": args.threads,
        },
        "target": "FullyDigitalFDD-v0 batched >= 50x loop at batch 4096",
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
