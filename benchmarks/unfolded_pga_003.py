"""Paper 003 Fig. 2 with the unfolded PGA: rate vs layer/iteration and vs SNR, and latency.

Setting: ``FarFieldHybrid-v0`` with ``analog="phase-shifter"`` at the paper 003 defaults (N=32,
K=M=4, 10 paths, channel as printed so E||h||^2 = 10, perfect CSI, sigma_n^2 = 1, P_t = SNR).
Test channels: ``--n-test`` (default 1000) per SNR from the harness's fixed TEST seed
1_000_003, evaluated in double precision (the steps of the models are cast). Constant step
sizes of the baselines are grid-tuned on ``--n-val`` channels of the VALIDATION seed
2_000_003 (never on the test channels).

* Fig. 2(a), 10 dB: sum-rate vs layer/iteration of the committed unfolded PGA (I=10, J=5,
  improved recipe), the unfolded PGA trained with the paper's recipe, PGA with the paper's
  fixed steps (mu=0.01, lambda=1e-4, I=30, J=1 and J=5), and PGA with constant steps tuned
  for I=10 (J=5 as the unfolded model, and J=1).
* Fig. 2(b): sum-rate vs SNR (0..20 dB) of the committed per-SNR unfolded PGA models, PGA
  (paper steps, 30 it, J=1), PGA tuned for I=10 (J=5), "converged" PGA (``--long-iters``
  iterations, J=1, constant steps picked on the validation channels among the tuned I=10
  steps scaled by 1/3 and 1/10), hybrid ZF and fully digital ZF; mean and 95% CI, and the
  paired difference unfolded - tuned(I=10) with its CI, and the fraction of the tuned ->
  converged gap that the unfolded model closes (target: > 0 at every SNR and >= 0.5).
* Latency per channel of unfolded PGA (I=10, J=5) vs PGA(30, J=1) and tuned PGA(10, J=5):
  batched (median of ``--repeats`` runs over all test channels, divided by their number) and
  single (median over ``--n-single`` channels solved one at a time), single precision, one
  torch thread.

Usage:
    python benchmarks/unfolded_pga_003.py [--out benchmarks/results/unfolded_pga_003.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

import agents  # noqa: E402, F401  (registers the agents)
from agents.base import make_agent  # noqa: E402
from agents.classical.pga_hybrid import fully_digital_zf_reference, tune_pga_steps  # noqa: E402
from agents.unfolded_pga.agent import default_checkpoint  # noqa: E402
from agents.unfolded_pga.train import TEST_SEED, VALIDATION_SEED  # noqa: E402
from beamgym.datasets import make_instance_set, make_task  # noqa: E402

ENV = "beamgym/FarFieldHybrid-v0"
KW = {"analog": "phase-shifter"}
MU_GRID = (0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0)
LAM_GRID = (1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2)
PAPER_VARIANT = Path("agents/pretrained/unfolded_pga/FarFieldHybrid-v0-paper-recipe")
SNRS = (0.0, 5.0, 10.0, 15.0, 20.0)


def _stat(x: torch.Tensor) -> dict:
    x = x.double()
    return {
        "mean": float(x.mean()),
        "ci95": float(1.96 * x.std() / math.sqrt(x.numel())),
        "n": int(x.numel()),
    }


def _rates(task, agent, inst) -> torch.Tensor:
    with torch.no_grad():
        return task.evaluate(agent.solve(task.known(inst)), inst)["sum_rate"]


def _curve(task, agent, inst) -> list[float]:
    with torch.no_grad():
        trace = agent.solve_trace(task.known(inst))
        return [float(task.evaluate(b, inst)["sum_rate"].mean()) for b in trace]


def _tune(task, val, I: int, J: int) -> dict:  # noqa: E741
    t0 = time.perf_counter()
    r = tune_pga_steps(task, val, I=I, J=J, mus=MU_GRID, lams=LAM_GRID)
    return {"mu": r.mu, "lam": r.lam, "val_mean": r.mean_rate, "seconds": time.perf_counter() - t0}


def _sets(snr: float, n_test: int, n_val: int):
    kw = {**KW, "snr_db": snr, "precision": "double"}
    task = make_task(ENV, **kw)
    test = make_instance_set(ENV, n=n_test, seed=TEST_SEED, **kw).instances
    val = make_instance_set(ENV, n=n_val, seed=VALIDATION_SEED, **kw).instances
    return task, test, val


def fig2a(args) -> dict:
    task, test, val = _sets(10.0, args.n_test, args.n_val)
    out: dict = {"snr_db": 10.0, "curves": {}, "final": {}, "tuning": {}}
    unf = make_agent("unfolded_pga", task)
    out["curves"]["unfolded_pga"] = _curve(task, unf, test)
    out["final"]["unfolded_pga"] = _stat(_rates(task, unf, test))
    out["unfolded_config"] = {"I": unf.train_config.I, "J": unf.train_config.J}
    if (PAPER_VARIANT / "checkpoint.pt").is_file():
        up = make_agent("unfolded_pga", task, checkpoint=str(PAPER_VARIANT))
        out["curves"]["unfolded_pga_paper_recipe"] = _curve(task, up, test)
        out["final"]["unfolded_pga_paper_recipe"] = _stat(_rates(task, up, test))
    for J in (1, 5):
        a = make_agent("pga", task, I=30, J=J)
        out["curves"][f"pga_paper_I30_J{J}"] = _curve(task, a, test)
        out["final"][f"pga_paper_I30_J{J}"] = _stat(_rates(task, a, test))
        t = _tune(task, val, 10, J)
        out["tuning"][f"I10_J{J}"] = t
        a = make_agent("pga", task, mu=t["mu"], lam=t["lam"], I=10, J=J)
        out["curves"][f"pga_tuned_I10_J{J}"] = _curve(task, a, test)
        out["final"][f"pga_tuned_I10_J{J}"] = _stat(_rates(task, a, test))
    return out


def _long(task, test, val, tuned_j1: dict, iters: int, n_pick: int) -> dict:
    """Long constant-step PGA (J=1): steps = tuned I=10 steps x c, c picked on validation."""
    best = None
    picks = {}
    for c in (1 / 3, 1 / 10):
        a = make_agent("pga", task, mu=tuned_j1["mu"] * c, lam=tuned_j1["lam"] * c, I=iters)
        r = float(_rates(task, a, val[:n_pick]).mean())
        picks[f"{c:.4f}"] = r
        if best is None or r > best[1]:
            best = (c, r)
    c = best[0]
    a = make_agent("pga", task, mu=tuned_j1["mu"] * c, lam=tuned_j1["lam"] * c, I=iters)
    return {
        "rates": _rates(task, a, test),
        "scale": c,
        "mu": tuned_j1["mu"] * c,
        "lam": tuned_j1["lam"] * c,
        "val_picks": picks,
    }


def fig2b(args) -> dict:
    rows = []
    for snr in SNRS:
        t0 = time.perf_counter()
        task, test, val = _sets(snr, args.n_test, args.n_val)
        row: dict = {"snr_db": snr}
        path, cmd = default_checkpoint(make_task(ENV, **KW, snr_db=snr))
        rates: dict[str, torch.Tensor] = {}
        if path is None:
            row["unfolded_pga_missing"] = cmd
        else:
            rates["unfolded_pga"] = _rates(task, make_agent("unfolded_pga", task), test)
            row["unfolded_checkpoint"] = str(path.relative_to(Path.cwd()))
        rates["pga_paper_I30_J1"] = _rates(task, make_agent("pga", task, I=30), test)
        t5 = _tune(task, val, 10, 5)
        t1 = _tune(task, val, 10, 1)
        row["tuning"] = {"I10_J5": t5, "I10_J1": t1}
        a = make_agent("pga", task, mu=t5["mu"], lam=t5["lam"], I=10, J=5)
        rates["pga_tuned_I10_J5"] = _rates(task, a, test)
        a = make_agent("pga", task, mu=t1["mu"], lam=t1["lam"], I=10, J=1)
        rates["pga_tuned_I10_J1"] = _rates(task, a, test)
        long = _long(task, test, val, t1, args.long_iters, args.n_pick)
        rates[f"pga_long_{args.long_iters}"] = long.pop("rates")
        row["long"] = long
        rates["hybrid_zf"] = _rates(task, make_agent("hybrid_zf", task), test)
        rates["fully_digital_zf"] = fully_digital_zf_reference(test)["sum_rate"]
        row["rates"] = {k: _stat(v) for k, v in rates.items()}
        if "unfolded_pga" in rates:
            d = rates["unfolded_pga"] - rates["pga_tuned_I10_J5"]
            row["unfolded_minus_tuned_I10_J5"] = _stat(d)
            gap = float((rates[f"pga_long_{args.long_iters}"] - rates["pga_tuned_I10_J5"]).mean())
            row["gap_tuned_to_long"] = gap
            row["gap_fraction_closed"] = float(d.mean()) / gap if gap > 0 else None
            row["beats_tuned"] = bool(float(d.mean()) > 0)
            row["closes_half_gap"] = bool(gap > 0 and float(d.mean()) / gap >= 0.5)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        print(f"  SNR {snr:g} dB done in {row['seconds']:.0f} s", file=sys.stderr)
    return {"rows": rows}


def _timeit(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def latency(args, tuned5: dict) -> list[dict]:
    kw = {**KW, "snr_db": 10.0}
    task = make_task(ENV, **kw)
    inst = make_instance_set(ENV, n=args.n_test, seed=TEST_SEED, **kw).instances
    known = task.known(inst)
    agents_ = {
        "unfolded_pga(I=10,J=5)": make_agent("unfolded_pga", task),
        "pga(I=30,J=1)": make_agent("pga", task, I=30),
        "pga_tuned(I=10,J=5)": make_agent(
            "pga", task, mu=tuned5["mu"], lam=tuned5["lam"], I=10, J=5
        ),
    }
    rows = []
    for name, a in agents_.items():
        with torch.no_grad():
            a.solve(known[:8])  # warm-up
            b = _timeit(lambda a=a: a.solve(known), args.repeats)
            singles = []
            for i in range(args.n_single):
                k1 = known[i : i + 1]
                t0 = time.perf_counter()
                a.solve(k1)
                singles.append(time.perf_counter() - t0)
        n = inst.batch_size
        rows.append(
            {
                "agent": name,
                "precision": "single",
                "threads": torch.get_num_threads(),
                "batched_us_median": statistics.median(b) / n * 1e6,
                "batched_us_min": min(b) / n * 1e6,
                "single_ms_median": statistics.median(singles) * 1e3,
                "single_ms_min": min(singles) * 1e3,
                "n_batched": n,
                "n_single": args.n_single,
                "loadavg_1min": os.getloadavg()[0],
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/unfolded_pga_003.json"))
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--n-val", type=int, default=500)
    p.add_argument("--n-pick", type=int, default=100, help="validation channels for the long run")
    p.add_argument("--long-iters", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--n-single", type=int, default=50)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    res: dict = {
        "command": "python benchmarks/unfolded_pga_003.py" + "".join(f" {a}" for a in argv),
        "setting": {
            "env": ENV,
            "env_kwargs": KW,
            "test_seed": TEST_SEED,
            "validation_seed": VALIDATION_SEED,
            "n_test": args.n_test,
            "n_val": args.n_val,
            "precision_eval": "double",
            "mu_grid": list(MU_GRID),
            "lam_grid": list(LAM_GRID),
        },
        "machine": {"platform": platform.platform(), "torch": torch.__version__},
    }
    print("Fig. 2(a) ...", file=sys.stderr)
    res["fig2a"] = fig2a(args)
    print("Fig. 2(b) ...", file=sys.stderr)
    res["fig2b"] = fig2b(args)
    print("latency ...", file=sys.stderr)
    res["latency"] = latency(args, res["fig2a"]["tuning"]["I10_J5"])
    res["seconds"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    _print(res)
    return res


def _print(res: dict) -> None:
    a = res["fig2a"]
    print("Fig. 2(a) 10 dB, layer/iteration curves (test mean):")
    for k, c in a["curves"].items():
        pts = ", ".join(f"{i}:{c[i]:.3f}" for i in (0, 1, 3, 5, 10, 30) if i < len(c))
        print(f"  {k:28s} {pts}")
    print("Fig. 2(b):")
    for r in res["fig2b"]["rows"]:
        s = " ".join(f"{k}={v['mean']:.3f}" for k, v in r["rates"].items())
        print(f"  {r['snr_db']:5.1f} dB {s} closed={r.get('gap_fraction_closed')}")
    for r in res["latency"]:
        print(
            f"  {r['agent']:24s} batched {r['batched_us_median']:.1f} us  "
            f"single {r['single_ms_median']:.2f} ms"
        )
    print(f"total {res['seconds']:.0f} s")


if __name__ == "__main__":
    main()
