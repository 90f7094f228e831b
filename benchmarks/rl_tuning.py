"""Hyperparameter search of the PPO baseline on validation seeds (optuna TPE), issue 12.

Each trial trains PPO in ``OptimalStructureAction`` on FullyDigitalFDD-v0 ``channel="rayleigh",
N=4, K=4, snr_db=10`` (issue 12's hard setting) for ``--steps`` env steps with
:func:`agents.rl.train.train_rl`, and its objective is the deterministic policy's mean sum rate
on the validation instances (seed :data:`agents.rl.train.VALIDATION_SEED`, ``--n-val``
instances; never the harness's test seed). The first two trials are enqueued: the recipe of the
first committed model (constant learning rate 3e-4, ``log_std_init=-1.5``) without and with
the start-baseline reward (:class:`agents.rl.wrappers.StartBaselineReward`), so the record
also holds that ablation at equal steps; the others are drawn by optuna's TPE sampler (seeded).

Needs optuna (``pip install -e ".[tune]"``). Writes every trial (parameters, validation sum
rate, seconds) and the best parameters to ``--out`` as JSON.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/rl_tuning.py [--trials 6] [--steps 100000]
        [--out benchmarks/results/rl_tuning_fdd_hard.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import torch

from agents.rl.train import VALIDATION_SEED, RLTrainConfig, train_rl

ENV_ID = "beamgym/FullyDigitalFDD-v0"
ENV_KWARGS = {"channel": "rayleigh", "N": 4, "K": 4, "snr_db": 10}
#: The recipe of the first committed PPO model (examples/train.py defaults, log_std_init -1.5).
FIRST_RECIPE = {
    "learning_rate": 3e-4,
    "log_std_init": -1.5,
    "n_epochs": 10,
    "batch_size": 256,
    "final_lr_fraction": 1.0,
    "net_arch": "64x64",
}


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    """The search space (a trial's PPO and reward options)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 2e-3, log=True),
        "log_std_init": trial.suggest_float("log_std_init", -2.5, -0.5),
        "n_epochs": trial.suggest_categorical("n_epochs", [5, 10, 20]),
        "batch_size": trial.suggest_categorical("batch_size", [256, 512, 1024]),
        "final_lr_fraction": trial.suggest_categorical("final_lr_fraction", [1.0, 0.1]),
        "net_arch": trial.suggest_categorical("net_arch", ["64x64", "128x128"]),
        "reward_baseline": trial.suggest_categorical("reward_baseline", [True, False]),
    }


def recipe(params: dict[str, Any], steps: int, n_val: int) -> RLTrainConfig:
    """The :class:`RLTrainConfig` of a trial's parameters."""
    p = dict(params)
    p["net_arch"] = tuple(int(w) for w in str(p["net_arch"]).split("x"))
    return RLTrainConfig(wrapper="optimal-structure", total_steps=steps, n_val=n_val, seed=1, **p)


def main(argv: list[str] | None = None) -> None:
    """Run the study and write the record."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=6, help="number of trials (2 enqueued)")
    p.add_argument("--steps", type=int, default=100_000, help="env steps per trial")
    p.add_argument("--n-val", type=int, default=500, help="validation instances per trial")
    p.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/rl_tuning_fdd_hard.json"))
    args = p.parse_args(argv)
    if args.trials < 2:
        p.error(f"--trials must be >= 2 (two trials are enqueued), got {args.trials}")
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed)
    )
    study.enqueue_trial({**FIRST_RECIPE, "reward_baseline": False})
    study.enqueue_trial({**FIRST_RECIPE, "reward_baseline": True})
    records: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial)
        config = recipe(params, args.steps, args.n_val)
        t0 = time.perf_counter()
        _, _, info = train_rl("ppo", ENV_ID, ENV_KWARGS, config)
        value = float(info["val_metric_final"])
        records.append(
            {
                "trial": trial.number,
                "params": params,
                "val_sum_rate": value,
                "val_sum_rate_start": float(info["val_metric_start"]),
                "seconds": time.perf_counter() - t0,
            }
        )
        print(f"trial {trial.number}: {value:.4f} {params}", flush=True)
        return value

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=args.trials)
    out = {
        "command": "python benchmarks/rl_tuning.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "env_id": ENV_ID,
        "env_kwargs": ENV_KWARGS,
        "objective": f"validation mean sum rate (bit/s/Hz), seed {VALIDATION_SEED}, "
        f"{args.n_val} instances, deterministic policy after {args.steps} env steps",
        "sampler": f"optuna {optuna.__version__} TPESampler(seed={args.seed})",
        "machine": platform.processor() or platform.machine(),
        "seconds": time.perf_counter() - t0,
        "best_trial": study.best_trial.number,
        "best_value": study.best_value,
        "best_params": study.best_params,
        "trials": records,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"best {study.best_value:.4f} {study.best_params} -> {args.out}")


if __name__ == "__main__":
    main()
