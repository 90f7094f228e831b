"""Score beamgym agents on fixed, seeded test sets: quality, confidence intervals and speed.

Every agent runs on the very same instances of its env (``beamgym.datasets.make_instance_set``
with the fixed test seed), through the common harness (``agents.harness.evaluate_agent``): it
sees only what the transmitter/receiver knows, its beamformer goes through the env's action map
(as ``env.step`` would) and is scored on the TRUE channel.

Usage:
    python examples/evaluate.py --list
    python examples/evaluate.py --agent mmse --compare mrt wmmse --snr-db 5 10 15 20
    python examples/evaluate.py --agent pga --env beamgym/FarFieldHybrid-v0 \
        --env-kw analog=phase-shifter --trace
    python examples/evaluate.py --agent ghbf_perf --episodes 500 --out runs/ghbf

With no ``--env`` each agent runs on the first env it supports (its paper's default env); with
``--compare`` all agents run on the main agent's env. Results go to ``--out`` as
``results.json``, ``results.csv`` and PNG plots (metric vs SNR, metric vs iteration, power vs
outage).
"""

from __future__ import annotations

import argparse
import ast
import csv
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

# Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning threads
# distort the latencies we report. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import agents  # noqa: E402
from agents.base import make_agent, registered_agents  # noqa: E402
from agents.harness import AgentResult, evaluate_agent  # noqa: E402
from beamgym.datasets import make_instance_set, make_task  # noqa: E402

try:
    from tqdm import tqdm
except ImportError:  # tqdm is in the "viz" extra

    def tqdm(x, **_):  # type: ignore[no-redef]
        return x


#: Seed of every test set (fixed once; never tuned on).
TEST_SEED = 1_000_003
#: Seed of the validation sets that calibrating agents (``validation_size > 0``) learn on.
VALIDATION_SEED = 2_000_003
#: The demo that runs with no arguments: classical solvers on FullyDigitalFDD-v0.
DEMO_AGENT, DEMO_COMPARE = "mmse", ("mrt", "zf", "mmse_ga", "wmmse", "random")
#: Main agents with a default comparison: ``--agent NAME`` alone scores NAME beside these
#: agents at these SNRs (the paper's figure), e.g. ``python examples/evaluate.py --agent kd_edn``.
PRESETS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "kd_edn": (
        ("edn_unsupervised", "edn_supervised", "kd_edn_q0", "mmse_ga", "mmse", "mrt"),
        (5.0, 10.0, 15.0, 20.0),
    ),
}


@dataclasses.dataclass
class Args:
    """Command-line arguments (CleanRL style: one documented field each)."""

    agent: str = DEMO_AGENT
    """Main agent (registry name, see --list)."""
    compare: tuple[str, ...] = ()
    """Further agents scored on the same env and instances."""
    env: str | None = None
    """Env id; default: the main agent's first supported env."""
    env_kw: tuple[str, ...] = ()
    """Env configuration as key=value pairs (Python literals), e.g. analog=phase-shifter."""
    snr_db: tuple[float, ...] = ()
    """SNRs in dB; one test set per value (envs with an ``snr_db`` keyword)."""
    episodes: int = 200
    """Test instances per test set."""
    batch: int = 512
    """Instances per batched solve."""
    trace: bool = False
    """Also record the metric against iterations for iterative solvers."""
    out: Path | None = None
    """Output folder for results.json, results.csv and plots (default: runs/evaluate-<time>)."""
    seed: int = TEST_SEED
    """Test-set seed (fixed; change only to check robustness)."""


def parse_args(argv: list[str] | None = None) -> tuple[Args, bool]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", default=None, help=f"main agent (default demo: {DEMO_AGENT})")
    p.add_argument("--compare", nargs="*", default=None, help="agents scored beside it")
    p.add_argument("--env", default=None, help="env id (default: the agent's paper env)")
    p.add_argument("--env-kw", nargs="*", default=[], help="env keywords key=value")
    p.add_argument("--snr-db", nargs="*", type=float, default=[], help="SNRs in dB")
    p.add_argument("--episodes", type=int, default=200, help="test instances per set")
    p.add_argument("--batch", type=int, default=512, help="instances per batched solve")
    p.add_argument("--trace", action="store_true", help="metric vs iteration")
    p.add_argument("--out", type=Path, default=None, help="output folder")
    p.add_argument("--seed", type=int, default=TEST_SEED, help="test-set seed")
    p.add_argument("--list", action="store_true", help="list the registered agents")
    ns = p.parse_args(argv)
    if ns.agent is None:
        agent = DEMO_AGENT
        compare = (
            tuple(ns.compare)
            if ns.compare is not None
            else tuple(a for a in DEMO_COMPARE if a in registered_agents())
        )
    else:
        agent, compare = ns.agent, tuple(ns.compare or ())
    snr_db = tuple(ns.snr_db)
    preset = PRESETS.get(agent)
    if preset is not None and not ns.env_kw:
        specs = registered_agents()
        env_id = ns.env or specs[agent].env_ids[0] if agent in specs else None
        if ns.compare is None:
            compare = tuple(a for a in preset[0] if a in specs and env_id in specs[a].env_ids)
        snr_db = snr_db or preset[1]
    args = Args(
        agent=agent,
        compare=compare,
        env=ns.env,
        env_kw=tuple(ns.env_kw),
        snr_db=snr_db,
        episodes=ns.episodes,
        batch=ns.batch,
        trace=ns.trace,
        out=ns.out,
        seed=ns.seed,
    )
    return args, ns.list


def _literal(v: str) -> Any:
    try:
        return ast.literal_eval(v)
    except (ValueError, SyntaxError):
        return v


def _env_kwargs(pairs: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--env-kw expects key=value, got {pair!r}")
        k, v = pair.split("=", 1)
        out[k] = _literal(v)
    return out


def print_registry() -> None:
    for name, spec in sorted(registered_agents().items()):
        envs = ", ".join(e.removeprefix("beamgym/") for e in spec.env_ids)
        print(f"{name:16s} {spec.description}\n{'':16s} envs: {envs}")


def run(args: Args) -> list[AgentResult]:
    specs = registered_agents()
    names = (args.agent, *[c for c in args.compare if c != args.agent])
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise SystemExit(f"unknown agent(s) {unknown}; see --list")
    env_id = args.env or specs[args.agent].env_ids[0]
    for n in names:
        if env_id not in specs[n].env_ids:
            raise SystemExit(f"agent {n!r} does not support {env_id}; see --list")
    base_kw = specs[args.agent].default_env_kwargs(env_id) if not args.env_kw else {}
    base_kw.update(_env_kwargs(args.env_kw))
    settings = [{**base_kw, "snr_db": s} for s in args.snr_db] or [base_kw]
    results = []
    for kw in settings:
        ds = make_instance_set(env_id, n=args.episodes, seed=args.seed, **kw)
        task = make_task(env_id, **kw)
        for name in tqdm(names, desc=f"{env_id} {kw}", leave=False):
            agent = make_agent(name, task)
            n_val = specs[name].validation_size
            if n_val > 0:  # calibrate on held-out instances, never on the test set
                agent.learn(make_instance_set(env_id, n=n_val, seed=VALIDATION_SEED, **kw))
            results.append(evaluate_agent(agent, ds, batch_size=args.batch, trace=args.trace))
    return results


def print_table(results: list[AgentResult]) -> None:
    if not results:
        return
    name = results[0].metric_name
    hdr = f"{'env':20s} {'setting':18s} {'agent':34s} {name + ' (95% CI)':>24s}"
    extra = [k for k in ("outage_fraction", "active_fraction") if k in results[0].extras]
    hdr += "".join(f" {k:>18s}" for k in extra) + f" {'batched us':>11s} {'single us':>10s}"
    print("\n" + hdr)
    for r in results:
        s = r.summary()
        setting = ",".join(f"{k}={v}" for k, v in r.env_kwargs.items()) or "default"
        line = (
            f"{r.env_id.removeprefix('beamgym/'):20s} {setting[:18]:18s} {r.agent[:34]:34s} "
            f"{s['metric_mean']:13.4f} ± {_ci(s['metric_ci95']):<8s}"
        )
        line += "".join(f" {s[k + '_mean']:18.4f}" for k in extra)
        line += f" {s['latency_batched_us']:11.1f} {s['latency_single_us']:10.1f}"
        print(line)
    for r in results:
        if r.trace is not None:
            pts = ", ".join(f"{t:.3f}" for t in r.trace[:: max(1, len(r.trace) // 10)])
            print(f"trace {r.agent}: {pts}")


def _ci(half: float | None) -> str:
    """The CI half-width, ``n/a`` where it is undefined (one instance)."""
    return "n/a" if half is None else f"{half:.4f}"


def write_outputs(results: list[AgentResult], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = [r.summary() for r in results]
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    flat = [{k: v for k, v in row.items() if k != "trace"} for row in rows]
    keys = sorted({k for row in flat for k in row})
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for row in flat:
            w.writerow({k: json.dumps(v) if isinstance(v, dict) else v for k, v in row.items()})
    _plots(results, out)
    print(f"wrote {out / 'results.json'}, {out / 'results.csv'} and plots")


def _plots(results: list[AgentResult], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # viz extra not installed
        return
    ylabel = results[0].metric_name

    def figure(xlabel: str, name: str, draw) -> None:
        fig, ax = plt.subplots(figsize=(6, 4))
        draw(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)

    by_agent: dict[str, list[AgentResult]] = {}
    for r in results:
        by_agent.setdefault(r.agent, []).append(r)
    snr_runs = {a: rs for a, rs in by_agent.items() if all("snr_db" in r.env_kwargs for r in rs)}
    if snr_runs and max(len(rs) for rs in snr_runs.values()) > 1:

        def draw_snr(ax) -> None:
            for a, rs in snr_runs.items():
                s = [r.summary() for r in rs]
                x = [r.env_kwargs["snr_db"] for r in rs]
                y, ci = [v["metric_mean"] for v in s], [v["metric_ci95"] or 0.0 for v in s]
                ax.errorbar(x, y, ci, label=a)

        figure("SNR (dB)", "metric_vs_snr.png", draw_snr)
    traced = [r for r in results if r.trace is not None and len(r.trace) > 1]
    if traced:

        def draw_trace(ax) -> None:
            for r in traced:
                snr = r.env_kwargs.get("snr_db")
                label = r.agent + ("" if snr is None else f" {snr} dB")
                ax.plot(range(len(r.trace)), r.trace, label=label)

        figure("iteration", "metric_vs_iteration.png", draw_trace)
    outage = [r for r in results if "outage_fraction" in r.extras]
    if outage:

        def draw_outage(ax) -> None:
            for r in outage:
                s = r.summary()
                x, y, ci = s["outage_fraction_mean"], s["metric_mean"], s["metric_ci95"] or 0.0
                ax.errorbar(x, y, ci, fmt="o", label=r.agent)

        figure("empirical outage (fraction of users)", "power_vs_outage.png", draw_outage)


def main(argv: list[str] | None = None) -> None:
    args, list_only = parse_args(argv)
    assert agents.base  # the import registers the built-in agents
    if list_only:
        print_registry()
        return
    t0 = time.perf_counter()
    results = run(args)
    print_table(results)
    out = args.out or Path("runs") / f"evaluate-{time.strftime('%Y%m%d-%H%M%S')}"
    write_outputs(results, out)
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
