"""Paper 003 Fig. 2: PGA hybrid beamforming vs iterations and SNR, references, and latency.

Setting: ``FarFieldHybrid-v0`` with ``analog="phase-shifter"`` at the paper 003 defaults (N=32,
K=M=4, 10 paths, channel as printed so E||h||^2 = 10, perfect CSI, sigma_n^2 = 1, P_t = SNR),
double precision, 500 fixed test channels (seed 3003). Step sizes are tuned only on separate
training channels (seed 1003).

* Fig. 2(a), 10 dB: sum-rate vs iteration of the conventional PGA (paper 003 Algorithm 1,
  fixed steps mu = 0.01, lambda = 1e-4, I = 30) with J = 1 and J = 5 inner analog steps, and of
  PGA with constant steps grid-tuned for I = 10 on the training channels (the fair baseline of
  a 10-layer unfolded model); plus a long run (2000 iterations, small constant steps
  mu = 0.3, lambda = 2e-3) as the practical ceiling from this start.
* Fig. 2(b): sum-rate vs SNR (0..20 dB) of the eq. (12)-(13) start, PGA(30) with the paper's
  steps (J = 1, 5), hybrid ZF and the fully digital ZF bound (equal power per user).
* Latency of PGA(30, J = 1) and hybrid ZF per channel: batched over the 500 test channels
  (median and minimum of ``--repeats`` runs, divided by 500) and one channel at a time (median
  and minimum over ``--n-single`` channels), in single and double precision, with 1 and 2
  torch threads. The 1-minute load average is recorded with each row: other processes on the
  machine inflate the medians (the minima are the least disturbed).

The script sets ``OMP_WAIT_POLICY=PASSIVE`` (unless already set) before importing torch: on this
shared 2-core machine, busy-waiting OpenMP threads made 2-thread runs up to 50x slower whenever
another process was running.

Usage:
    python benchmarks/pga_003.py [--out benchmarks/results/pga_003.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

import agents  # noqa: E402, F401  (registers the agents)
from agents.base import make_agent  # noqa: E402
from agents.classical.pga_hybrid import (  # noqa: E402
    PAPER_LAMBDA,
    PAPER_MU,
    fully_digital_zf_reference,
    pga,
    pga_iteration,
    tune_pga_steps,
)
from beamgym.datasets import make_instance_set, make_task  # noqa: E402
from beamgym.physics.metrics import hybrid_sum_rate  # noqa: E402
from beamgym.structures import HybridBeamformer  # noqa: E402

ENV = "beamgym/FarFieldHybrid-v0"
KW = {"analog": "phase-shifter"}
#: Independent reference implementation (003), 500 channels, 10 dB.
README = {
    "start": 15.15,
    "pga30_paper_J1": 15.74,
    "tuned_I10_J1": 16.30,
    "tuned_I10_J5": 16.45,
    "hybrid_zf": 16.12,
    "fully_digital_zf": 17.50,
    "pga_long_2000": 16.75,
    "latency_batched_us": 73.0,
    "latency_single_ms": 1.06,
}
MU_GRID = (0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0)
LAM_GRID = (1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2)


def _stat(x: torch.Tensor) -> dict:
    x = x.double()
    return {
        "mean": float(x.mean()),
        "ci95": float(1.96 * x.std() / math.sqrt(x.numel())),
        "n": int(x.numel()),
    }


def _curve(task, agent, inst) -> list[float]:
    """Mean sum-rate of every iterate of ``agent`` on the true channels."""
    trace = agent.solve_trace(task.known(inst))
    return [float(task.evaluate(b, inst)["sum_rate"].mean()) for b in trace]


def _rate(task, agent, inst) -> torch.Tensor:
    return task.evaluate(agent.solve(task.known(inst)), inst)["sum_rate"]


def fig2a(args, task, test, train) -> dict:
    out: dict = {"snr_db": 10.0, "curves": {}, "final": {}, "tuning": {}}
    for J in (1, 5):
        a = make_agent("pga", task, I=30, J=J)
        out["curves"][f"pga_paper_J{J}"] = _curve(task, a, test)
        out["final"][f"pga_paper_J{J}"] = _stat(_rate(task, a, test))
        t0 = time.perf_counter()
        res = tune_pga_steps(task, train, I=args.tune_iters, J=J, mus=MU_GRID, lams=LAM_GRID)
        tuned = make_agent("pga", task, mu=res.mu, lam=res.lam, I=args.tune_iters, J=J)
        out["tuning"][f"J{J}"] = {
            "I": args.tune_iters,
            "mu": res.mu,
            "lam": res.lam,
            "train_mean": res.mean_rate,
            "seconds": time.perf_counter() - t0,
            "grid_mu": list(MU_GRID),
            "grid_lam": list(LAM_GRID),
        }
        out["curves"][f"pga_tuned_I{args.tune_iters}_J{J}"] = _curve(task, tuned, test)
        out["final"][f"pga_tuned_I{args.tune_iters}_J{J}"] = _stat(_rate(task, tuned, test))
    start = make_agent("pga", task, I=0)
    out["final"]["start_eq12_13"] = _stat(_rate(task, start, test))
    out["final"][f"pga_long_{args.long_iters}"] = long_run(task, test, args.long_iters)
    out["final"]["hybrid_zf"] = _stat(_rate(task, make_agent("hybrid_zf", task), test))
    out["final"]["fully_digital_zf"] = _stat(fully_digital_zf_reference(test)["sum_rate"])
    return out


def long_run(task, inst, iters: int, mu: float = 0.3, lam: float = 2e-3) -> dict:
    """PGA with small constant steps for ``iters`` iterations: the practical ceiling.

    Steps through :func:`pga_iteration` and records the rate after every iteration to count
    decreases (the independent reference is a monotone PGA after 2000 iterations).
    """
    known = task.known(inst)
    (bf,), _ = pga(known.H_est, known.power, known.noise_var, I=0)
    F, W = bf.analog, bf.digital
    prev = hybrid_sum_rate(inst.H, F, W)
    decreases = 0
    with torch.no_grad():
        for _ in range(iters):
            F, W = pga_iteration(known.H_est, F, W, known.power, mu=mu, lam=lam)
            rate = hybrid_sum_rate(inst.H, F, W)
            decreases += int((rate < prev - 1e-9 * prev.abs()).sum())
            prev = rate
    final = task.evaluate(HybridBeamformer(analog=F, digital=W), inst)
    return {
        **_stat(final["sum_rate"]),
        "mu": mu,
        "lam": lam,
        "iterations": iters,
        "fraction_of_steps_decreasing": decreases / (iters * len(inst)),
        "all_feasible": bool(final["feasible"].all()),
    }


def fig2b(args, seeds_test: int) -> dict:
    rows = []
    for snr in args.snrs:
        task = make_task(ENV, precision="double", snr_db=snr, **KW)
        inst = make_instance_set(
            ENV, args.n_test, seeds_test, precision="double", snr_db=snr, **KW
        ).instances
        fd = fully_digital_zf_reference(inst)
        row = {
            "snr_db": snr,
            "start_eq12_13": _stat(_rate(task, make_agent("pga", task, I=0), inst)),
            "pga_paper_J1": _stat(_rate(task, make_agent("pga", task, J=1), inst)),
            "pga_paper_J5": _stat(_rate(task, make_agent("pga", task, J=5), inst)),
            "hybrid_zf": _stat(_rate(task, make_agent("hybrid_zf", task), inst)),
            "fully_digital_zf": _stat(fd["sum_rate"]),
            "fully_digital_zf_infeasible": int((~fd["feasible"]).sum()),
        }
        rows.append(row)
        print(
            f"  {snr:5.1f} dB  start {row['start_eq12_13']['mean']:6.2f}  "
            f"PGA(30,J=1) {row['pga_paper_J1']['mean']:6.2f}  "
            f"PGA(30,J=5) {row['pga_paper_J5']['mean']:6.2f}  "
            f"hybrid ZF {row['hybrid_zf']['mean']:6.2f}  "
            f"FD ZF {row['fully_digital_zf']['mean']:6.2f}"
        )
    return {"rows": rows}


def latency(args) -> list[dict]:
    rows = []
    for precision in ("single", "double"):
        task = make_task(ENV, precision=precision, **KW)
        inst = make_instance_set(ENV, args.n_test, args.test_seed, precision=precision, **KW)
        known = task.known(inst.instances)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for name, hp in (("pga", {"I": 30, "J": 1}), ("hybrid_zf", {})):
                agent = make_agent(name, task, **hp)
                agent.solve(known)  # warm-up
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    agent.solve(known)
                    times.append(time.perf_counter() - t0)
                batched = statistics.median(times) / len(inst)
                batched_min = min(times) / len(inst)
                singles = [known[i] for i in range(args.n_single)]
                agent.solve(singles[0])
                times = []
                for k in singles:
                    t0 = time.perf_counter()
                    agent.solve(k)
                    times.append(time.perf_counter() - t0)
                single = statistics.median(times)
                single_min = min(times)
                rows.append(
                    {
                        "agent": agent.name,
                        "precision": precision,
                        "threads": threads,
                        "batched_us_per_channel": batched * 1e6,
                        "batched_us_per_channel_min": batched_min * 1e6,
                        "batch": len(inst),
                        "single_ms_per_channel": single * 1e3,
                        "single_ms_per_channel_min": single_min * 1e3,
                        "load_average": os.getloadavg()[0],
                        "single_channels": args.n_single,
                    }
                )
                print(
                    f"  {agent.name:34s} {precision:6s} threads={threads}  batched "
                    f"{batched * 1e6:8.1f} us/channel  single {single * 1e3:7.3f} ms"
                )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--test-seed", type=int, default=3003)
    p.add_argument("--train-seed", type=int, default=1003)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--n-train", type=int, default=500)
    p.add_argument("--snrs", type=float, nargs="+", default=[0.0, 5.0, 10.0, 15.0, 20.0])
    p.add_argument("--tune-iters", type=int, default=10)
    p.add_argument("--long-iters", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--n-single", type=int, default=100)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/pga_003.json"))
    args = p.parse_args()
    if args.test_seed == args.train_seed:
        raise ValueError("--test-seed and --train-seed must differ (tune on training data only)")
    t_start = time.perf_counter()
    torch.set_num_threads(1)
    task = make_task(ENV, precision="double", **KW)
    test = make_instance_set(ENV, args.n_test, args.test_seed, precision="double", **KW)
    train = make_instance_set(ENV, args.n_train, args.train_seed, precision="double", **KW)
    print("Fig. 2(a), 10 dB")
    a = fig2a(args, task, test.instances, train.instances)
    for k, v in a["final"].items():
        print(f"  {k:28s} {v['mean']:7.3f} ± {v['ci95']:.3f}")
    for k, v in a["tuning"].items():
        print(f"  tuned {k}: mu={v['mu']:g} lam={v['lam']:g} (train {v['train_mean']:.3f})")
    print("Fig. 2(b)")
    b = fig2b(args, args.test_seed)
    print("Latency")
    lat = latency(args)
    cmd = (
        f"python benchmarks/pga_003.py --test-seed {args.test_seed} --train-seed "
        f"{args.train_seed} --n-test {args.n_test} --n-train {args.n_train} --snrs "
        + " ".join(f"{s:g}" for s in args.snrs)
        + f" --tune-iters {args.tune_iters} --long-iters {args.long_iters}"
    )
    out = {
        "command": cmd,
        "setting": (
            "FarFieldHybrid-v0 analog='phase-shifter' (paper 003 defaults: N=32, K=M=4, 10 paths, "
            "normalization='paper' so E||h||^2=10, perfect CSI, sigma_n^2=1, P_t=SNR), "
            "precision='double' for rates; rates in bit/s/Hz on the true channel"
        ),
        "step_convention": (
            "mu, lambda multiply eq. (10)-(11) as printed (hybrid_rate_gradients form='paper')"
        ),
        "paper_steps": {"mu": PAPER_MU, "lam": PAPER_LAMBDA},
        "readme_reference": README,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "load_average_at_start": os.getloadavg(),
        },
        "fig2a": a,
        "fig2b": b,
        "latency": lat,
        "seconds": time.perf_counter() - t_start,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out} in {out['seconds']:.0f} s")


if __name__ == "__main__":
    main()
