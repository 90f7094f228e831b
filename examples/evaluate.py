"""Score simple baselines on beamgym environments over fixed, seeded test sets.

This is the demo behind ``make demo``. It builds each environment's seeded test set
(``beamgym.datasets.make_instance_set``), runs every selected agent on the very same instances
through the native batched vector env, and prints the mean and 95% confidence interval of the
env's headline metric and reward.

The full harness (classical solvers, learned agents, latency, plots) replaces this demo in
issue 3; the agents here are the random-feasible agent and the closed-form baselines that follow
directly from each env's observation.

Usage:
    python examples/evaluate.py                       # every env, every demo agent
    python examples/evaluate.py --env beamgym/FullyDigitalFDD-v0 --episodes 500
    python examples/evaluate.py --list
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import beamgym
from beamgym.datasets import make_instance_set
from beamgym.envs.base import BeamformingTask
from beamgym.envs.far_field_hybrid import FarFieldHybridTask
from beamgym.physics.metrics import mmse_beamformer
from beamgym.structures import HybridBeamformer, TensorDataclass

try:
    from tqdm import tqdm
except ImportError:  # tqdm is in the "viz" extra

    def tqdm(x, **_):  # type: ignore[no-redef]
        return x


#: An agent maps (task, batch of instances, numpy generator) to a batch of actions.
Policy = Callable[[BeamformingTask, TensorDataclass, np.random.Generator], torch.Tensor]


def random_policy(task: BeamformingTask, inst: TensorDataclass, rng: np.random.Generator):
    """Uniform random action: a random feasible beamformer after the env's projection."""
    return torch.as_tensor(rng.uniform(-1.0, 1.0, (inst.batch_size, task.action_dim)))


def mmse_policy(task: BeamformingTask, inst: TensorDataclass, rng: np.random.Generator):
    """Paper 000's MMSE beamformer (Sec. III-B2) on the ESTIMATED (effective) channel.

    FullyDigitalFDD / NearFieldHybrid: the task's ``mmse_beamformer``. FarFieldHybrid with
    steering analog beams: MMSE digital precoder on the estimated effective channel; with
    ``analog="phase-shifter"``: paper 003's closed-form start, eq. (12)-(13).
    """
    if isinstance(task, FarFieldHybridTask):
        if task.steering:
            digital = mmse_beamformer(inst.H_est, inst.power)
            analog = task.analog_precoder.expand(inst.batch_size, -1, -1)
            bf = HybridBeamformer(analog=analog, digital=digital)
        else:
            bf = task.initial_beamformer(inst)
    else:
        bf = task.mmse_beamformer(inst)
    return task.beamformer_to_action(bf, inst)


AGENTS: dict[str, tuple[Policy, tuple[str, ...]]] = {
    "random": (random_policy, beamgym.ENV_IDS),
    "mmse": (
        mmse_policy,
        ("beamgym/FullyDigitalFDD-v0", "beamgym/FarFieldHybrid-v0", "beamgym/NearFieldHybrid-v0"),
    ),
}


@dataclass
class Row:
    env_id: str
    agent: str
    metric_name: str
    metric_mean: float
    metric_ci95: float
    reward_mean: float
    reward_ci95: float
    episodes: int
    seconds: float


def _mean_ci(x: np.ndarray) -> tuple[float, float]:
    return float(x.mean()), float(1.96 * x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0


def evaluate(env_id: str, agent: str, episodes: int, seed: int, batch: int) -> Row:
    policy, supported = AGENTS[agent]
    if env_id not in supported:
        raise SystemExit(f"agent {agent!r} does not support {env_id}; see --list")
    ds = make_instance_set(env_id, n=episodes, seed=seed)
    rng = np.random.default_rng(seed + 1)
    metrics, rewards = [], []
    t0 = time.perf_counter()
    for part in tqdm(ds.batches(batch), desc=f"{agent} on {env_id}", leave=False):
        venv = gym.make_vec(
            env_id, num_envs=part.batch_size, vectorization_mode="vector_entry_point"
        )
        venv.reset(options={"instance": part})
        task = venv.unwrapped.task
        actions = policy(task, part, rng).clamp(-1, 1).numpy().astype(np.float32)
        _, reward, _, _, info = venv.step(actions)
        rewards.append(reward)
        metrics.append(info["metric"])
        venv.close()
    seconds = time.perf_counter() - t0
    m, r = np.concatenate(metrics), np.concatenate(rewards)
    return Row(env_id, agent, task.metric_name, *_mean_ci(m), *_mean_ci(r), len(m), seconds)


def main() -> None:
    p = argparse.ArgumentParser(description="Score demo agents on beamgym envs.")
    p.add_argument("--agent", nargs="+", default=list(AGENTS), help="agent name(s)")
    p.add_argument("--env", nargs="+", default=list(beamgym.ENV_IDS), help="env id(s)")
    p.add_argument("--episodes", type=int, default=200, help="test instances per env")
    p.add_argument("--seed", type=int, default=2024, help="seed of the fixed test set")
    p.add_argument("--batch", type=int, default=512, help="instances per batched call")
    p.add_argument("--out", type=Path, default=None, help="write results.json here")
    p.add_argument("--list", action="store_true", help="list agents and their envs")
    args = p.parse_args()
    if args.list:
        for name, (_, envs) in AGENTS.items():
            print(f"{name:12s} {', '.join(envs)}")
        return
    rows = []
    for env_id in args.env:
        for agent in args.agent:
            if env_id in AGENTS[agent][1]:
                rows.append(evaluate(env_id, agent, args.episodes, args.seed, args.batch))
    print(f"\n{'env':30s} {'agent':12s} {'metric':>20s} {'mean ± 95% CI':>22s} {'reward':>18s}")
    for r in rows:
        print(
            f"{r.env_id.removeprefix('beamgym/'):30s} {r.agent:12s} {r.metric_name:>20s} "
            f"{r.metric_mean:12.4f} ± {r.metric_ci95:<8.4f} "
            f"{r.reward_mean:10.4f} ± {r.reward_ci95:.4f}"
        )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps([r.__dict__ for r in rows], indent=2))
        print(f"wrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
