"""Paper 002 Table 2: G-HBF-perf and G-HBF-marg, allocated power and empirical outage.

Setting (paper 002 Sec. V-B, Table 1; OutageHybrid-v0 defaults with ``constraint_groups=True``):
4x4 UPA, 3 users, M_rf = 5, 2D-DFT codebook, P_max = 20 dB, gamma_i uniform in dB over
[5, 15] dB, P_out = 0.1, noisy MMSE CSI (eq. 56) with the four pilot-power constraint groups of
Table 2: P_pil = 10 dB, 17 dB, 24 dB (all users) and P_pil uniform in dB over [10, 24] dB, each
instance in one group with probability 1/4.

* G-HBF-perf: agent ``ghbf_perf`` (greedy with L_rf = 2 M_rf) given the TRUE channels of the
  test instances (an oracle view: ``known.h_est := h``, as the paper's perfect-CSI benchmark).
* G-HBF-marg: agent ``ghbf_marg`` on the MMSE estimates; one SINR margin per constraint group,
  bisected by ``learn`` on a validation set (seeds distinct from the test set) until the
  per-user outage on the TRUE channel reaches P_out. Repeated for ``--folds`` validation sets
  (the paper's 5-fold mean +- std); all folds are scored on the same test set.
* G-HBF-naive (context, not in the paper): ``ghbf_perf`` on the estimates without a margin.

Per method and group: mean weighted power ||p||_1 (= w^T p, Psi_0 = I) and empirical outage
(users in outage / users, in %) on the test set, with the 95% confidence interval of the mean
over instances; for G-HBF-marg also the std over folds and the learned margins. Latency per
instance of ``solve`` batched (batches of ``--batch``) and single (median of ``--single``
one-instance calls; batched: best of ``--repeats`` solves of one batch), both on this machine
with ``--threads`` torch threads (the machine is shared: timings vary), plus the same
greedy with every trial solved by ``beamgym.physics.power.virtual_uplink_fixed_point``
(``screening="physics"``) for comparison.

Usage (about 3 minutes on the 2-core CPU machine):
    python benchmarks/table2_002.py --n-test 20000 --n-val 5000 --folds 5 --threads 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import agents  # noqa: F401  (registers the agents)
from agents.base import make_agent
from agents.harness import mean_ci
from beamgym.datasets import make_instance_set, make_task

ENV = "beamgym/OutageHybrid-v0"
ENV_KWARGS = {"constraint_groups": True}
GROUPS = ("P_pil=10dB", "P_pil=17dB", "P_pil=24dB", "P_pil~U[10,24]dB")

#: Paper 002 Table 2 (mean +- std over 5 folds): (power, outage %) per group.
PAPER = {
    "G-HBF-perf": {
        "P_pil~U[10,24]dB": ((6.61, 0.10), (0.00, 0.00)),
        "P_pil=10dB": ((6.62, 0.17), (0.00, 0.00)),
        "P_pil=17dB": ((6.62, 0.11), (0.00, 0.00)),
        "P_pil=24dB": ((6.70, 0.04), (0.00, 0.00)),
    },
    "G-HBF-marg": {
        "P_pil~U[10,24]dB": ((8.86, 0.17), (10.03, 0.01)),
        "P_pil=10dB": ((15.44, 0.40), (10.00, 0.00)),
        "P_pil=17dB": ((8.41, 0.17), (10.01, 0.04)),
        "P_pil=24dB": ((7.27, 0.05), (10.03, 0.02)),
    },
}
#: Independent reference implementation of the 002 model (docs/readings.md#002), power only.
REFERENCE = {
    "G-HBF-perf": {"P_pil~U[10,24]dB": 6.6},
    "G-HBF-marg": {
        "P_pil~U[10,24]dB": 9.02,
        "P_pil=10dB": 15.66,
        "P_pil=17dB": 8.41,
        "P_pil=24dB": 7.23,
    },
}


@dataclasses.dataclass
class Args:
    """Command-line arguments."""

    n_test: int = 20000
    """Test instances (shared by all methods and folds), about n_test/4 per group."""
    n_val: int = 5000
    """Validation instances per fold (the paper's |D_val| = 5000)."""
    folds: int = 5
    """Validation folds for G-HBF-marg (the paper reports mean +- std over 5 folds)."""
    test_seed: int = 2_000_002
    """Seed of the test set."""
    val_seed: int = 1_000_002
    """Seed of fold 0's validation set (fold k uses val_seed + k)."""
    batch: int = 4096
    """Instances per solve call."""
    single: int = 50
    """One-instance solve calls timed for the single-instance latency (median)."""
    repeats: int = 3
    """Timed solves of one ``--batch`` batch for the batched latency (best of)."""
    physics_n: int = 500
    """Instances timed with screening='physics' (0 to skip)."""
    threads: int = 2
    """torch threads."""
    out: str = "benchmarks/results/table2_002.json"
    """Output JSON."""


def _parse() -> Args:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in dataclasses.fields(Args):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    return Args(**vars(p.parse_args()))


def _score(task, agent, x, known, batch: int) -> dict[str, Any]:
    """Per-instance power, outage fraction, feasibility flags and batched solve time."""
    power, frac, feas, scaled, secs = [], [], [], [], 0.0
    with torch.no_grad():
        for s in range(0, x.batch_size, batch):
            xb, kb = x[s : s + batch], known[s : s + batch]
            t0 = time.perf_counter()
            bf = agent.solve(kb)
            secs += time.perf_counter() - t0
            m = task.evaluate(bf, xb)
            power.append(m["power"].double())
            frac.append(m["outage_fraction"].double())
            feas.append(agent.last_info["feasible"])
            scaled.append(agent.last_info["pmax_scaled"])
    return {
        "power": torch.cat(power).cpu().numpy(),
        "outage": torch.cat(frac).cpu().numpy(),
        "feasible": torch.cat(feas).cpu().numpy(),
        "pmax_scaled": torch.cat(scaled).cpu().numpy(),
        "batched_s_per_instance": secs / x.batch_size,
    }


def _table(score: dict[str, Any], group: np.ndarray) -> dict[str, Any]:
    rows = {}
    for g, name in [*enumerate(GROUPS), (None, "all")]:
        sel = np.ones_like(group, dtype=bool) if g is None else group == g
        pw, pw_ci = mean_ci(score["power"][sel])
        out, out_ci = mean_ci(100.0 * score["outage"][sel])
        rows[name] = {
            "n": int(sel.sum()),
            "power": pw,
            "power_ci95": pw_ci,
            "outage_pct": out,
            "outage_pct_ci95": out_ci,
            "infeasible_pct": 100.0 * float((~score["feasible"][sel]).mean()),
            "pmax_scaled_pct": 100.0 * float(score["pmax_scaled"][sel].mean()),
        }
    return rows


def _latency(agent, known, batch: int, repeats: int, single: int) -> dict[str, float]:
    """Per-instance solve time: batched (best of ``repeats`` over one batch), single (median)."""
    kb = known[:batch]
    best = float("inf")
    times = []
    with torch.no_grad():
        agent.solve(kb[:8])  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            agent.solve(kb)
            best = min(best, time.perf_counter() - t0)
        for i in range(single + 1):  # the first call warms up
            k = known[i % known.batch_size]
            t0 = time.perf_counter()
            agent.solve(k)
            times.append(time.perf_counter() - t0)
    return {
        "batch": kb.batch_size,
        "batched_us": 1e6 * best / kb.batch_size,
        "single_us": 1e6 * float(np.median(times[1:])),
    }


def main() -> None:
    args = _parse()
    if args.folds < 1 or args.n_test < 1 or args.n_val < 1 or args.batch < 1:
        raise ValueError("--folds, --n-test, --n-val and --batch must be >= 1")
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    task = make_task(ENV, **ENV_KWARGS)
    test = make_instance_set(ENV, n=args.n_test, seed=args.test_seed, **ENV_KWARGS)
    x = test.instances
    group = x.group.cpu().numpy()
    known = task.known(x)
    oracle = dataclasses.replace(known, h_est=x.h.to(known.h_est.dtype))  # perfect CSI
    results: dict[str, Any] = {}
    latency: dict[str, Any] = {}

    perf = make_agent("ghbf_perf", task)
    s = _score(task, perf, x, oracle, args.batch)
    results["G-HBF-perf"] = {"agent": perf.name, "csi": "true channel (oracle)"}
    results["G-HBF-perf"]["groups"] = _table(s, group)
    print(f"G-HBF-perf done ({time.perf_counter() - t_start:.0f} s)", flush=True)

    naive = make_agent("ghbf_perf", task)
    s = _score(task, naive, x, known, args.batch)
    results["G-HBF-naive"] = {"agent": naive.name, "csi": "MMSE estimate, no margin"}
    results["G-HBF-naive"]["groups"] = _table(s, group)

    folds = []
    for k in range(args.folds):
        val = make_instance_set(ENV, n=args.n_val, seed=args.val_seed + k, **ENV_KWARGS)
        marg = make_agent("ghbf_marg", task)
        t0 = time.perf_counter()
        marg.learn(val)
        learn_s = time.perf_counter() - t0
        s = _score(task, marg, x, known, args.batch)
        folds.append(
            {
                "val_seed": args.val_seed + k,
                "margins_db": marg.margins_db.tolist(),
                "learn_report": marg.learn_report,
                "learn_s": learn_s,
                "groups": _table(s, group),
            }
        )
        if k == 0:
            fold0 = marg
        print(
            f"fold {k}: margins {[round(m, 3) for m in marg.margins_db.tolist()]} dB "
            f"({learn_s:.0f} s learn, {time.perf_counter() - t_start:.0f} s total)",
            flush=True,
        )
    summary = {}
    for name in (*GROUPS, "all"):
        pw = [f["groups"][name]["power"] for f in folds]
        out = [f["groups"][name]["outage_pct"] for f in folds]
        summary[name] = {
            "power_mean_over_folds": statistics.fmean(pw),
            "power_std_over_folds": statistics.stdev(pw) if len(pw) > 1 else 0.0,
            "power_ci95_fold0": folds[0]["groups"][name]["power_ci95"],
            "outage_pct_mean_over_folds": statistics.fmean(out),
            "outage_pct_std_over_folds": statistics.stdev(out) if len(out) > 1 else 0.0,
            "outage_pct_ci95_fold0": folds[0]["groups"][name]["outage_pct_ci95"],
        }
    results["G-HBF-marg"] = {
        "agent": make_agent("ghbf_marg", task).name,
        "csi": "MMSE estimate, margins per group bisected on validation data",
        "summary": summary,
        "folds": folds,
    }

    r = args.repeats
    latency["G-HBF-perf"] = _latency(perf, oracle, args.batch, r, args.single)
    latency["G-HBF-marg"] = _latency(fold0, known, args.batch, r, args.single)
    if args.physics_n > 0:
        slow = make_agent("ghbf_perf", task, screening="physics")
        n = min(args.physics_n, args.n_test)
        latency["G-HBF-perf screening=physics"] = _latency(slow, oracle, n, 1, args.single // 5)
        s_slow = _score(task, slow, x[:n], oracle[:n], args.batch)
        s_fast = _score(task, perf, x[:n], oracle[:n], args.batch)
        same = bool(np.allclose(s_slow["power"], s_fast["power"], rtol=1e-5))
        latency["G-HBF-perf screening=physics"]["same_power_as_gram"] = same

    cmd = (
        f"python benchmarks/table2_002.py --n-test {args.n_test} --n-val {args.n_val} "
        f"--folds {args.folds} --threads {args.threads}"
    )
    report = {
        "command": cmd,
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": args.threads,
        },
        "env_id": ENV,
        "env_kwargs": ENV_KWARGS,
        "args": dataclasses.asdict(args),
        "groups": list(GROUPS),
        "paper_table2": PAPER,
        "reference_readme_002": REFERENCE,
        "results": results,
        "latency_per_instance": latency,
        "wall_s": time.perf_counter() - t_start,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    _print(report)


def _print(report: dict[str, Any]) -> None:
    res = report["results"]
    print(f"\n{'method':<12} {'group':<18} {'power':>16} {'outage %':>16}")
    for name in ("G-HBF-perf", "G-HBF-naive"):
        for g, r in res[name]["groups"].items():
            print(
                f"{name:<12} {g:<18} {r['power']:8.3f} ±{r['power_ci95']:6.3f} "
                f"{r['outage_pct']:8.2f} ±{r['outage_pct_ci95']:5.2f}"
            )
    for g, r in res["G-HBF-marg"]["summary"].items():
        print(
            f"{'G-HBF-marg':<12} {g:<18} {r['power_mean_over_folds']:8.3f} "
            f"±{r['power_std_over_folds']:6.3f} {r['outage_pct_mean_over_folds']:8.2f} "
            f"±{r['outage_pct_std_over_folds']:5.2f}  (± = std over folds)"
        )
    for k, v in report["latency_per_instance"].items():
        print(f"latency {k}: {v}")
    print(f"wall time {report['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
