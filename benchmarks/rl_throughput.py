"""RL rollout throughput: SB3 DummyVecEnv / SubprocVecEnv vs beamgym's BatchedVecEnv.

Steps per second (sub-env steps, i.e. ``num_envs`` per ``VecEnv.step``) of uniformly random
actions on ``beamgym/FullyDigitalFDD-v0`` at its defaults (N=64, K=16, sparse channel), for
``num_envs`` in {1, 8, 64, 512, 4096}. ``DummyVecEnv`` loops over single envs (run up to 64
sub-envs); SB3's ``SubprocVecEnv`` runs one process per sub-env, so on the 2-core machine it
is run with 1 and 2 sub-envs only; ``BatchedVecEnv`` (:mod:`beamgym.sb3`) steps the native
vector env in one batched call. Each cell is the best of ``--repeats`` timed runs of at
least ``--seconds`` seconds (after a warm-up step); the actions are drawn before timing.
Target (issue 12): BatchedVecEnv's best >= 10x SubprocVecEnv's best. The same table is also
measured on the small RL configuration of issue 12 (``channel="rayleigh", N=4, K=4,
snr_db=10``), where the per-step Python overhead, not the physics, dominates.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/rl_throughput.py [--seconds 1.5] [--repeats 2]
        [--out benchmarks/results/rl_throughput.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import beamgym
from beamgym.sb3 import BatchedVecEnv

ENV_ID = "beamgym/FullyDigitalFDD-v0"
#: Env configurations measured: the env defaults and issue 12's small RL setting.
CONFIGS: dict[str, dict] = {
    "defaults": {},
    "rl-small": {"channel": "rayleigh", "N": 4, "K": 4, "snr_db": 10.0},
}
#: ``num_envs`` measured per VecEnv (SubprocVecEnv: one process per sub-env, 2 cores here).
SIZES = {
    "DummyVecEnv": (1, 8, 64),
    "SubprocVecEnv": (1, 2),
    "BatchedVecEnv": (1, 8, 64, 512, 4096),
}


def _make_single(env_kwargs: dict) -> gym.Env:
    import beamgym  # noqa: F401  (registers the ids in a SubprocVecEnv worker)

    return gym.make(ENV_ID, **env_kwargs)


def make_vec(kind: str, n: int, env_kwargs: dict):
    """The ``kind`` VecEnv with ``n`` sub-envs, seeded from 0."""
    fns = [functools.partial(_make_single, env_kwargs)] * n
    if kind == "DummyVecEnv":
        venv = DummyVecEnv(fns)
    elif kind == "SubprocVecEnv":
        venv = SubprocVecEnv(fns, start_method="fork")
    else:
        venv = BatchedVecEnv(ENV_ID, n, **env_kwargs)
    venv.seed(0)
    return venv


def bench(kind: str, n: int, env_kwargs: dict, seconds: float, repeats: int) -> dict:
    venv = make_vec(kind, n, env_kwargs)
    venv.reset()
    rng = np.random.default_rng(0)
    actions = [
        rng.uniform(-1, 1, (n, venv.action_space.shape[0])).astype(np.float32) for _ in range(4)
    ]
    venv.step(actions[0])  # warm-up
    best = 0.0
    for _ in range(repeats):
        steps, t0 = 0, time.perf_counter()
        while True:
            venv.step(actions[steps % 4])
            steps += 1
            dt = time.perf_counter() - t0
            if dt >= seconds:
                break
        best = max(best, steps * n / dt)
    venv.close()
    return {"vec_env": kind, "num_envs": n, "steps_per_s": best}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=1.5, help="minimum seconds per timed run")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per cell (best kept)")
    p.add_argument("--out", default="benchmarks/results/rl_throughput.json")
    args = p.parse_args()
    results = {}
    for config, env_kwargs in CONFIGS.items():
        rows = []
        for kind, sizes in SIZES.items():
            for n in sizes:
                row = bench(kind, n, env_kwargs, args.seconds, args.repeats)
                rows.append(row)
                print(
                    f"{config:9s} {kind:14s} num_envs={n:5d} {row['steps_per_s']:10.0f} steps/s",
                    flush=True,
                )
        best = {k: max(r["steps_per_s"] for r in rows if r["vec_env"] == k) for k in SIZES}
        ratio = best["BatchedVecEnv"] / best["SubprocVecEnv"]
        print(f"{config}: best BatchedVecEnv / best SubprocVecEnv = {ratio:.1f}x (target >= 10x)")
        results[config] = {
            "env_kwargs": env_kwargs,
            "rows": rows,
            "best_steps_per_s": best,
            "batched_over_subproc": ratio,
            "target_met": ratio >= 10.0,
        }
    out = {
        "env_id": ENV_ID,
        "seconds": args.seconds,
        "repeats": args.repeats,
        "configs": results,
        "beamgym": beamgym.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
