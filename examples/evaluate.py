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

import csv
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning threads
# distort the latencies we report. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import agents  # noqa: E402
import beamgym  # noqa: E402
from agents.base import (  # noqa: E402
    CheckpointError,
    canonical_agent_name,
    make_agent,
    registered_agents,
)
from agents.cli import (  # noqa: E402
    check_output_folder,
    dataclass_from_args,
    dataclass_parser,
    name_flags,
    parse_agent_entry,
    parse_env_kwargs,
)
from agents.harness import (  # noqa: E402
    TEST_SEED,
    VALIDATION_SEED,
    AgentResult,
    evaluate_agent,
)
from beamgym.datasets import make_instance_set, make_task  # noqa: E402

try:
    from tqdm import tqdm
except ImportError:  # tqdm is in the "viz" extra

    def tqdm(x, **_):  # type: ignore[no-redef]
        return x


#: The demo that runs with no arguments: classical solvers on FullyDigitalFDD-v0.
DEMO_AGENT, DEMO_COMPARE = "mmse", ("mrt", "zf", "mmse_ga", "wmmse", "random")
#: Main agents with a default comparison: ``--agent NAME`` alone scores NAME beside these
#: agents at these SNRs (the paper's figure), e.g. ``python examples/evaluate.py --agent kd_edn``.
#: Entries are ``name`` or ``name:key=value,...`` (agent keywords).
PRESETS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "kd_edn": (
        (
            # the paper's noisy link, at KD-EDN's budget
            "beamspace_feedback",
            "edn_unsupervised",
            "edn_supervised",
            "kd_edn_q0",
            # a noiseless link, 128 bits per user
            "kd_edn:link=noiseless",
            "beamspace_feedback:link=noiseless",
            # perfect feedback of the estimated channel
            "mmse_ga",
            "mmse",
            "mrt",
        ),
        (5.0, 10.0, 15.0, 20.0),
    ),
}


@dataclasses.dataclass(frozen=True)
class Args:
    """Arguments of the evaluation (CleanRL style: this dataclass is the parser)."""

    agent: str | None = None
    """Main agent (registry name, see --list); none: the demo, mmse beside classical solvers."""
    agent_kw: tuple[str, ...] = ()
    """Keywords of the main agent as key=value pairs (Python literals), e.g. link=noiseless."""
    compare: tuple[str, ...] | None = None
    """Further agents scored on the same env and instances (default: the agent's preset); each
    NAME or NAME:key=value,key=value."""
    env: str | None = None
    """Env id; default: the main agent's first supported env."""
    env_kw: tuple[str, ...] = ()
    """Env configuration as key=value pairs (Python literals), e.g. analog=phase-shifter."""
    snr_db: tuple[float, ...] = ()
    """SNRs in dB; one test set per value (envs with an snr_db keyword)."""
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
    list: bool = False
    """List the registered agents and exit."""

    def __post_init__(self) -> None:
        specs = registered_agents()
        for flag, entry in [
            ("--agent", self.agent),
            *(("--compare", c) for c in self.compare or ()),
        ]:
            if entry is not None:
                parse_agent_entry(entry, flag)
        try:
            parse_env_kwargs(self.agent_kw)
        except ValueError:
            raise ValueError(
                f"agent_kw expects key=value pairs, got {list(self.agent_kw)}"
            ) from None
        for n in (self.agent, *(self.compare or ())):
            n = None if n is None else parse_agent_entry(n)[0]
            if n is not None and _canonical(n) not in specs:
                raise ValueError(
                    f"agent and compare take registered names (see --list), got {n!r}; "
                    f"registered: {sorted(specs)}"
                )
        if self.env is not None and self.env not in beamgym.ENV_IDS:
            raise ValueError(f"env must be one of {list(beamgym.ENV_IDS)}, got {self.env!r}")
        if self.agent is not None:
            env_id = self.env or specs[_canonical(_name(self.agent))].env_ids[0]
            for n in map(_name, (self.agent, *(self.compare or ()))):
                if env_id not in specs[_canonical(n)].env_ids:
                    raise ValueError(
                        f"{n!r} (agent/compare) does not support {env_id}; it supports "
                        f"{list(specs[_canonical(n)].env_ids)}: choose env or other agents "
                        "(see --list)"
                    )
        try:
            parse_env_kwargs(self.env_kw)
        except ValueError as exc:  # the message names --env-kw
            raise ValueError(str(exc)) from exc
        for name in ("episodes", "batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in self.snr_db):
            raise ValueError(f"snr_db must be finite numbers, got {self.snr_db!r}")
        if self.out is not None:
            check_output_folder(self.out, "out")

    def resolved(self) -> Args:
        """The arguments with the demo and the presets filled in (``agent`` never ``None``)."""
        specs = registered_agents()
        if self.agent is None:
            agent = DEMO_AGENT
            compare = (
                self.compare
                if self.compare is not None
                else tuple(a for a in DEMO_COMPARE if a in specs)
            )
        else:
            agent = _canonical(self.agent)
            compare = tuple(_canonical_entry(c) for c in self.compare or ())
        snr_db = self.snr_db
        preset = PRESETS.get(agent)
        if preset is not None and not self.env_kw:
            env_id = self.env or specs[agent].env_ids[0] if agent in specs else None
            if self.compare is None:
                compare = tuple(
                    a for a in preset[0] if _name(a) in specs and env_id in specs[_name(a)].env_ids
                )
            snr_db = snr_db or preset[1]
        return dataclasses.replace(self, agent=agent, compare=compare, snr_db=snr_db)


def _name(entry: str) -> str:
    """The agent name of a ``name[:key=value,...]`` entry."""
    return parse_agent_entry(entry)[0]


def _canonical_entry(entry: str) -> str:
    """``entry`` with its agent name made canonical (keywords kept)."""
    name, sep, rest = entry.partition(":")
    return _canonical(name) + sep + rest


def _canonical(name: str) -> str:
    """The registry name of ``name`` (a deprecated alias warns); unknown names stay for run()."""
    try:
        return canonical_agent_name(name)
    except ValueError:
        return name


def parse_args(argv: list[str] | None = None) -> tuple[Args, bool]:
    """Parse the command line into :class:`Args` (resolved) and whether ``--list`` was given.

    Every check runs here, before any work: a bad value ends the program with the usage and
    one ``error:`` line naming its flag (exit status 2), including env configurations that
    ``--env`` / ``--env-kw`` / ``--snr-db`` make but the env rejects.
    """
    parser = dataclass_parser(Args)
    ns = parser.parse_args(argv)
    args = dataclass_from_args(Args, ns, parser=parser)
    resolved = args.resolved()
    if args.list:
        return resolved, True
    env_id, settings = env_settings(resolved)
    for k, kw in enumerate(settings):
        try:
            task = make_task(env_id, **kw)
        except (ValueError, TypeError) as exc:
            names = ("snr_db",) if args.snr_db else ()
            message = name_flags(str(exc), names, env_kw=parse_env_kwargs(args.env_kw))
            if "--" not in message:
                message = f"--env / --env-kw: {message}"
            parser.error(f"{env_id} with {kw}: {message}")
        if k == 0:  # agents check their env configuration when built (cheap)
            for name, akw in agent_entries(resolved):
                try:
                    make_agent(name, task, **akw)
                except (ValueError, TypeError) as exc:
                    flag = "--agent/--agent-kw" if name == resolved.agent else "--compare"
                    parser.error(f"{flag} {name} {akw or ''} on {env_id} with {kw}: {exc}")
    return resolved, False


def env_settings(args: Args) -> tuple[str, list[dict]]:
    """``(env id, one env configuration per test set)`` of resolved arguments."""
    specs = registered_agents()
    assert args.agent is not None, "env_settings(args.resolved())"
    env_id = args.env or specs[args.agent].env_ids[0]
    base_kw = specs[args.agent].default_env_kwargs(env_id) if not args.env_kw else {}
    base_kw.update(parse_env_kwargs(args.env_kw))
    return env_id, [{**base_kw, "snr_db": s} for s in args.snr_db] or [base_kw]


def print_registry() -> None:
    for name, spec in sorted(registered_agents().items()):
        envs = ", ".join(e.removeprefix("beamgym/") for e in spec.env_ids)
        print(f"{name:16s} {spec.description}\n{'':16s} envs: {envs}")


def agent_entries(args: Args) -> list[tuple[str, dict]]:
    """``(name, keywords)`` of the main agent (with ``--agent-kw``) and each compared one."""
    assert args.agent is not None, "agent_entries(args.resolved())"
    main = (args.agent, parse_env_kwargs(args.agent_kw))
    others = [parse_agent_entry(c, "--compare") for c in args.compare or ()]
    return [main, *[o for o in others if o != main]]


def run(args: Args) -> list[AgentResult]:
    specs = registered_agents()
    assert args.agent is not None, "run(args.resolved())"
    entries = agent_entries(args)
    env_id, settings = env_settings(args)  # Args checked the names and the pairs
    results = []
    for kw in settings:
        ds = make_instance_set(env_id, n=args.episodes, seed=args.seed, **kw)
        task = make_task(env_id, **kw)
        for name, akw in tqdm(entries, desc=f"{env_id} {kw}", leave=False):
            agent = make_agent(name, task, **akw)
            n_val = specs[name].validation_size
            if n_val > 0:  # calibrate on held-out instances, never on the test set
                agent.learn(make_instance_set(env_id, n=n_val, seed=VALIDATION_SEED, **kw))
            results.append(evaluate_agent(agent, ds, batch_size=args.batch, trace=args.trace))
    return results


def print_table(results: list[AgentResult]) -> None:
    if not results:
        return
    name = results[0].metric_name
    hdr = f"{'env':20s} {'setting':18s} {'agent':52s} {name + ' (95% CI)':>24s}"
    extra = [k for k in ("outage_fraction", "active_fraction") if k in results[0].extras]
    bits = any(r.feedback_bits is not None for r in results)
    hdr += "".join(f" {k:>18s}" for k in extra)
    hdr += f" {'bits/user':>22s}" if bits else ""
    hdr += f" {'batched us':>11s} {'single us':>10s}"
    print("\n" + hdr)
    for r in results:
        s = r.summary()
        setting = ",".join(f"{k}={v}" for k, v in r.env_kwargs.items()) or "default"
        line = (
            f"{r.env_id.removeprefix('beamgym/'):20s} {setting[:18]:18s} {r.agent[:52]:52s} "
            f"{s['metric_mean']:13.4f} ± {_ci(s['metric_ci95']):<8s}"
        )
        line += "".join(f" {s[k + '_mean']:18.4f}" for k in extra)
        line += f" {_bits(r.feedback_bits):>22s}" if bits else ""
        line += f" {s['latency_batched_us']:11.1f} {s['latency_single_us']:10.1f}"
        print(line)
    for r in results:
        if r.trace is not None:
            pts = ", ".join(f"{t:.3f}" for t in r.trace[:: max(1, len(r.trace) // 10)])
            print(f"trace {r.agent}: {pts}")


def _bits(fb: dict[str, float] | None) -> str:
    """Feedback bits per user: symbols x bits, then entropy-coded (noiseless) or the link's
    upper bound (noisy); ``-`` for perfect feedback (docs/readings.md#000-feedback-accounting).
    """
    if fb is None:
        return "-"
    text = f"{fb['symbols_x_bits']:.0f}"
    if fb.get("entropy_coded") is not None:
        text += f" (coded {fb['entropy_coded']:.1f})"
    elif fb.get("noisy_link_upper_bound") is not None:
        text += f" (<= {fb['noisy_link_upper_bound']:.1f})"
    return text


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
    try:
        results = run(args)
    except CheckpointError as exc:  # e.g. an RL agent with no trained model for this env
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print_table(results)
    out = args.out or Path("runs") / f"evaluate-{time.strftime('%Y%m%d-%H%M%S')}"
    write_outputs(results, out)
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
