"""Paper 000's fully digital solvers on FullyDigitalFDD-v0: sum-rate, paired gaps, latency.

Issue 3 targets: on FullyDigitalFDD-v0 defaults (N=64, K=16, single cell, L=10, P=1), across
5-20 dB, WMMSE >= MMSE+GA(10) >= MMSE >= MRT in mean sum-rate, each gap with its 95%
confidence interval (paired over the same instances); the same table for the hard
configuration channel="rayleigh", N=K=4, snr_db=10 (P=10 with unit noise), with WMMSE's best
of several random restarts (independent reference, docs/readings.md#000-hard-instances: MRT 4.87,
ZF 5.20, MMSE 8.48, RZF 8.28, WMMSE 9.82 from the MMSE start, perfect CSI); and the latency per
instance of every
solver, batched and single.

Protocol:
* test instances: ``make_instance_set(..., n=--n-test, seed=--test-seed)`` for every
  configuration (CSI error: the paper's absolute sigma_h^2 = 0.1 on the normalized channel,
  and perfect CSI); solvers see ``task.known(instance)`` only; the sum-rate is evaluated on the
  TRUE channel; env precision "single" (the env default);
* the gradient-ascent step is tuned on separate TRAINING instances (``--train-seed``), never on
  the test set: the normalized step eta-bar of the ``mmse_ga`` default (the largest value of
  the grid whose mean training gain over MMSE is positive at every SNR) and, for the "eq. (9)
  as printed" row, one fixed eta per SNR (the grid value with the largest mean gain);
* latency: ``solve`` wall time per instance for the whole batch at once ("batched") and the
  median over ``--n-single`` instances solved one at a time ("single"), after a warm-up, with
  ``--threads`` intra-op threads (default 1: on this 2-core machine one thread is faster for
  these small kernels and immune to oversubscription).

Usage:
    python benchmarks/fdd_solvers.py                 # full run, ~5-10 min on 2 cores
    python benchmarks/fdd_solvers.py --quick         # smoke run (small sets, not reported)

Writes benchmarks/results/fdd_solvers.json (``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import agents  # noqa: F401  (registers the agents)
from agents.base import make_agent
from agents.classical.fully_digital import DEFAULT_ETA, DEFAULT_ETA_RULE
from agents.harness import mean_ci
from beamgym.datasets import make_instance_set, make_task

ENV_ID = "beamgym/FullyDigitalFDD-v0"
FAR_ID = "beamgym/FarFieldHybrid-v0"
NEAR_ID = "beamgym/NearFieldHybrid-v0"
HARD = {"channel": "rayleigh", "N": 4, "K": 4, "snr_db": 10.0}
CSI = {"sigma_h2=0.1": {}, "perfect": {"csi_error": "perfect"}}
NORMALIZED_GRID = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
FIXED_GRID = (1e-5, 2e-5, 3e-5, 5e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 2e-3)


@dataclasses.dataclass
class Args:
    """Command-line arguments."""

    n_test: int = 1000
    """Test instances per configuration."""
    test_seed: int = 2024
    """Seed of every test set."""
    n_train: int = 500
    """Training instances per SNR for tuning the gradient-ascent step."""
    train_seed: int = 7
    """Seed of the training sets (disjoint from the test seed)."""
    snrs: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0)
    """SNRs in dB of the default-configuration table."""
    restarts: tuple[int, ...] = (4, 9)
    """Random restarts of WMMSE (best of 1 + R) on the hard configuration."""
    n_single: int = 20
    """Instances solved one at a time for the single-instance latency."""
    threads: int = 1
    """torch intra-op threads."""
    out: str = "benchmarks/results/fdd_solvers.json"
    """Output JSON."""
    quick: bool = False
    """Smoke run with small sets."""


def parse_args() -> Args:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    d = Args()
    p.add_argument("--n-test", type=int, default=d.n_test)
    p.add_argument("--test-seed", type=int, default=d.test_seed)
    p.add_argument("--n-train", type=int, default=d.n_train)
    p.add_argument("--train-seed", type=int, default=d.train_seed)
    p.add_argument("--snrs", type=float, nargs="+", default=list(d.snrs))
    p.add_argument("--restarts", type=int, nargs="+", default=list(d.restarts))
    p.add_argument("--n-single", type=int, default=d.n_single)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--out", default=d.out)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    args = Args(
        n_test=a.n_test,
        test_seed=a.test_seed,
        n_train=a.n_train,
        train_seed=a.train_seed,
        snrs=tuple(a.snrs),
        restarts=tuple(a.restarts),
        n_single=a.n_single,
        threads=a.threads,
        out=a.out,
        quick=a.quick,
    )
    if args.quick:
        args = dataclasses.replace(args, n_test=100, n_train=100, n_single=3)
    return args


# ---- helpers -------------------------------------------------------------------------------
def rates(task: Any, agent: Any, inst: Any) -> tuple[np.ndarray, float]:
    """Per-instance true-channel sum-rate of ``agent`` on ``inst`` and the batched solve time."""
    known = task.known(inst)
    t0 = time.perf_counter()
    with torch.no_grad():
        bf = agent.solve(known)
    dt = time.perf_counter() - t0
    m = task.evaluate(bf, inst)
    if not bool(m["feasible"].all()):
        raise RuntimeError(f"{agent.name} returned an infeasible beamformer")
    return m["sum_rate"].double().cpu().numpy(), dt


def single_latency(task: Any, agent: Any, inst: Any, n: int) -> float:
    """Median wall time of ``solve`` on one instance (after one warm-up solve)."""
    known = task.known(inst[: max(n, 1)])
    with torch.no_grad():
        agent.solve(known[0:1])
        times = []
        for i in range(n):
            k = known[i : i + 1]
            t0 = time.perf_counter()
            agent.solve(k)
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def summary(x: np.ndarray) -> dict[str, float]:
    m, h = mean_ci(x)
    return {"mean": m, "ci95": h}


# ---- tuning on training seeds ------------------------------------------------------------------
def tune_eta(args: Args) -> dict[str, Any]:
    """Tune the GA step on TRAINING instances (default config, each SNR, paper CSI error)."""
    out: dict[str, Any] = {"train_seed": args.train_seed, "n_train": args.n_train, "snr": {}}
    total = dict.fromkeys(NORMALIZED_GRID, 0.0)
    fixed_best: dict[float, float] = {}
    for snr in args.snrs:
        ds = make_instance_set(ENV_ID, n=args.n_train, seed=args.train_seed, snr_db=snr)
        task = make_task(ENV_ID, snr_db=snr)
        base, _ = rates(task, make_agent("mmse", task), ds.instances)
        row: dict[str, Any] = {"mmse": float(base.mean()), "normalized": {}, "fixed": {}}
        for eta in NORMALIZED_GRID:
            r, _ = rates(task, make_agent("mmse_ga", task, eta=eta), ds.instances)
            gain = float((r - base).mean())
            row["normalized"][str(eta)] = gain
            total[eta] += gain
        best_gain = -np.inf
        for eta in FIXED_GRID:
            r, _ = rates(task, make_agent("mmse_ga", task, eta=eta, eta_rule="fixed"), ds.instances)
            gain = float((r - base).mean())
            row["fixed"][str(eta)] = gain
            if gain > best_gain:
                best_gain, fixed_best[snr] = gain, eta
        out["snr"][str(snr)] = row
    ok = [
        e for e in NORMALIZED_GRID if all(r["normalized"][str(e)] > 0 for r in out["snr"].values())
    ]
    best = max(ok) if ok else min(NORMALIZED_GRID)
    out["normalized_total_gain"] = {str(k): v for k, v in total.items()}
    out["best_normalized_eta"] = best
    out["default_eta"] = DEFAULT_ETA
    out["default_eta_rule"] = DEFAULT_ETA_RULE
    out["best_fixed_eta_per_snr"] = {str(k): v for k, v in fixed_best.items()}
    if best != DEFAULT_ETA:
        print(f"WARNING: tuned eta-bar {best} differs from DEFAULT_ETA {DEFAULT_ETA}")
    return out


# ---- tables ------------------------------------------------------------------------------------
DIFFS = (
    ("wmmse", "mmse_ga"),
    ("mmse_ga", "mmse"),
    ("mmse", "mrt"),
    ("wmmse", "mmse"),
    ("mmse_ga_fixed", "mmse"),
)


def solver_set(task: Any, fixed_eta: float | None, restarts: tuple[int, ...]) -> dict[str, Any]:
    c = task.config
    zf_ok = getattr(c, "K", 1) * getattr(c, "M", 1) <= getattr(c, "N", c.K)
    s = {
        "mrt": make_agent("mrt", task),
        **({"zf": make_agent("zf", task)} if zf_ok else {}),
        "rzf": make_agent("rzf", task),
        "mmse": make_agent("mmse", task),
        "mmse_ga": make_agent("mmse_ga", task),
    }
    if fixed_eta is not None:
        s["mmse_ga_fixed"] = make_agent("mmse_ga", task, eta=fixed_eta, eta_rule="fixed")
    s["wmmse"] = make_agent("wmmse", task)
    for r in restarts:
        s[f"wmmse_best_of_{1 + r}"] = make_agent("wmmse", task, restarts=r)
    if restarts:
        s["wmmse_random_start"] = make_agent("wmmse", task, init="random")
    return s


def run_config(
    args: Args,
    kwargs: dict[str, Any],
    fixed_eta: float | None,
    restarts: tuple[int, ...],
    latency: bool,
    env_id: str = ENV_ID,
) -> dict[str, Any]:
    ds = make_instance_set(env_id, n=args.n_test, seed=args.test_seed, **kwargs)
    task = make_task(env_id, **kwargs)
    res: dict[str, Any] = {"env_id": env_id, "env_kwargs": kwargs, "solvers": {}, "paired": {}}
    per: dict[str, np.ndarray] = {}
    for key, agent in solver_set(task, fixed_eta, restarts).items():
        r, dt = rates(task, agent, ds.instances)
        per[key] = r
        row = {"agent": agent.name, **summary(r), "latency_batched_ms": 1e3 * dt / len(r)}
        if "iterations" in agent.last_info:
            row["iterations_mean"] = float(agent.last_info["iterations"].float().mean())
            row["iterations_max"] = int(agent.last_info["iterations"].max())
            row["converged_fraction"] = float(agent.last_info["converged"].float().mean())
        if latency:
            row["latency_single_ms"] = 1e3 * single_latency(
                task, agent, ds.instances, args.n_single
            )
        res["solvers"][key] = row
    for a, b in DIFFS:
        if a in per and b in per:
            d = per[a] - per[b]
            res["paired"][f"{a} - {b}"] = {**summary(d), "fraction_ge_0": float((d >= 0).mean())}
    return res


def _num(x: float, sign: bool = True) -> str:
    f = "+" if sign else ""
    return f"{x:{f}.4f}" if abs(x) >= 0.01 or x == 0 else f"{x:{f}.1e}"


def fmt_table(res: dict[str, Any]) -> str:
    lines = ["| solver | sum-rate (bit/s/Hz) | 95% CI | batched ms/inst | single ms |"]
    lines.append("|---|---|---|---|---|")
    for row in res["solvers"].values():
        single = row.get("latency_single_ms")
        lines.append(
            f"| {row['agent']} | {row['mean']:.3f} | ±{row['ci95']:.3f} | "
            f"{row['latency_batched_ms']:.3f} | {'' if single is None else f'{single:.2f}'} |"
        )
    for key, d in res["paired"].items():
        lines.append(f"| Δ {key} | {_num(d['mean'])} | ±{_num(d['ci95'], sign=False)} | | |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    out: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "args": dataclasses.asdict(args),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
            "threads": args.threads,
        },
    }
    print("tuning the GA step on training seeds ...", flush=True)
    out["tuning"] = tune_eta(args)
    fixed = {float(k): v for k, v in out["tuning"]["best_fixed_eta_per_snr"].items()}
    out["default"] = {}
    for csi_name, csi_kw in CSI.items():
        for snr in args.snrs:
            kw = {"snr_db": snr, **csi_kw}
            latency = snr == 15.0 and csi_name == "sigma_h2=0.1"
            res = run_config(args, kw, fixed[snr], (), latency)
            out["default"][f"{csi_name}, {snr:g} dB"] = res
            print(f"\n### FullyDigitalFDD-v0 defaults, {snr:g} dB, CSI {csi_name}\n", flush=True)
            print(fmt_table(res), flush=True)
    out["hard"] = {}
    for csi_name, csi_kw in CSI.items():
        kw = {**HARD, **csi_kw}
        res = run_config(args, kw, None, args.restarts, csi_name == "perfect")
        out["hard"][csi_name] = res
        print(f"\n### Hard configuration (Rayleigh, N=K=4, 10 dB), CSI {csi_name}\n")
        print(fmt_table(res), flush=True)
    kw = {"placement": "spatial-division", "snr_db": 5.0, "csi_error": "perfect"}
    res = run_config(args, kw, None, (), False)
    out["spatial_division_5db_perfect"] = res
    print("\n### Spatial division, 5 dB, perfect CSI (reference: MMSE 51.9, WMMSE 53.0)\n")
    print(fmt_table(res), flush=True)
    kw = {"K": 4, "M": 4, "psi": 3.141592653589793 / 4, "snr_db": 10.0}
    res = run_config(args, kw, None, (), False)
    out["mimo_10db"] = res
    print("\n### MIMO K=4, M=4 (paper Fig. 7 setting), 10 dB, CSI sigma_h2=0.1\n")
    print(fmt_table(res), flush=True)
    out["hybrid"] = {}
    for env_id in (FAR_ID, NEAR_ID):
        for csi_name, csi_kw in CSI.items():
            res = run_config(args, {"snr_db": 15.0, **csi_kw}, None, (), False, env_id=env_id)
            out["hybrid"][f"{env_id}, 15 dB, CSI {csi_name}"] = res
            print(f"\n### {env_id} defaults, 15 dB, CSI {csi_name}\n")
            print(fmt_table(res), flush=True)
    out["wall_time_s"] = time.perf_counter() - t_start
    if not args.quick:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1))
        print(f"\nwrote {path} in {out['wall_time_s']:.0f} s")
    else:
        print(f"\nquick run: nothing written ({out['wall_time_s']:.0f} s)")


if __name__ == "__main__":
    main()
