"""RL baselines (issue 12): the committed RL models beside the classical agents, and their curves.

For each setting below, every agent is scored by the common harness
(:func:`agents.harness.evaluate_agent`) on the same fixed test set (seed
:data:`TEST_SEED` of ``examples/evaluate.py``, ``--n`` instances, fewer where a setting caps
it): the RL agents load their committed models (``agents/pretrained/<agent>/...``; an RL
agent without a model for the setting is left out), the classical agents run with their
registered defaults (an agent that calibrates on held-out instances does so on the validation
seed, as ``examples/evaluate.py`` does). Each row gives the mean and the Student-t 95% CI of
the env's metric (and, for OutageHybrid-v0, the per-user outage probability beside the power,
to hold below ``p_out = 0.1``), the
batched latency per instance, the RL model's training steps and seconds, and for each RL row
the paired difference to every classical agent on the same instances (mean and 95% CI).

The learning curves are read from the ``train_log.csv`` that ``examples/train.py`` wrote next
to each committed model (nothing is retrained): the mean metric of the training steps (the
stochastic training policy on fresh training instances) against env steps and against
wall-clock seconds, with the classical agents' test means as horizontal lines.

Targets (issue 12): FullyDigitalFDD-v0 ``channel="rayleigh", N=4, K=4, snr_db=10``: best RL
>= MMSE (and its ratio to WMMSE); FullyDigitalFDD-v0 defaults (15 dB): best RL >= 95% of
MMSE; ModularUplink-v0 Scenario 1: best RL >= 0.90 per-user nats; the hybrids: reported.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/rl_baselines.py [--n 500] [--only fdd-hard ...]
        [--out benchmarks/results/rl_baselines.json]

Writes the JSON (rows, targets, curves) and a PNG of the curves next to it (same stem).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import agents  # noqa: E402,F401  (registers the agents)
from agents.base import CheckpointError, make_agent, registered_agents  # noqa: E402
from agents.harness import evaluate_agent, mean_ci  # noqa: E402
from beamgym.datasets import make_instance_set, make_task  # noqa: E402

#: The harness's test seed and the validation seed (``examples/evaluate.py``).
TEST_SEED = 1_000_003
VALIDATION_SEED = 2_000_003
#: RL agents looked up for a committed model in every setting.
RL_AGENTS = ("ppo", "sac", "td3")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One row group of the table: an env configuration and its classical opponents."""

    key: str
    """Short name (``--only``)."""
    env_id: str
    """Registered env id."""
    env_kwargs: dict[str, Any]
    """Env configuration (empty: the env defaults)."""
    classical: tuple[str, ...]
    """Registered non-RL agents scored beside the RL agents (``"name"`` or, with
    hyperparameters, ``"name:key=value,..."``, e.g. ``"pga_m:J=20"``)."""
    max_n: int = 500
    """Largest number of test instances (caps ``--n`` where a classical agent is slow)."""
    target: str = ""
    """The issue's target, in words."""


SETTINGS = (
    Setting(
        "fdd-hard",
        "beamgym/FullyDigitalFDD-v0",
        {"channel": "rayleigh", "N": 4, "K": 4, "snr_db": 10},
        ("mrt", "rzf", "mmse", "mmse_ga", "wmmse"),
        target="best RL >= MMSE; ratio to WMMSE reported",
    ),
    Setting(
        "fdd-default",
        "beamgym/FullyDigitalFDD-v0",
        {},
        ("mrt", "zf", "mmse", "mmse_ga", "wmmse"),
        max_n=200,
        target="best RL >= 95% of MMSE",
    ),
    Setting(
        "modular",
        "beamgym/ModularUplink-v0",
        {},
        ("random", "pga_m", "pga_m:J=20"),
        target="best RL >= 0.90 per-user nats (PGA+M(10): 0.888)",
    ),
    Setting(
        "farfield",
        "beamgym/FarFieldHybrid-v0",
        {},
        ("mrt", "zf", "mmse", "mmse_ga", "wmmse"),
        max_n=200,
        target="reported against the classical agents",
    ),
    Setting(
        "nearfield",
        "beamgym/NearFieldHybrid-v0",
        {},
        ("mrt", "zf", "mmse", "mmse_ga", "wmmse"),
        max_n=200,
        target="reported against the classical agents",
    ),
    Setting(
        "outage",
        "beamgym/OutageHybrid-v0",
        {},
        ("random", "ghbf_perf", "ghbf_marg"),
        max_n=300,
        target="reported against the greedy (power and outage)",
    ),
)


def _row(result: Any, agent: Any, seconds: float) -> dict[str, Any]:
    """The JSON row of one harness result (plus the RL model's training record)."""
    s = result.summary()
    row = {
        "agent": s["agent"],
        "metric_name": s["metric_name"],
        "mean": s["metric_mean"],
        "ci95": s["metric_ci95"],
        "n": s["n"],
        "latency_batched_us": s["latency_batched_us"],
        "eval_seconds": seconds,
    }
    if "outage_fraction_mean" in s:  # OutageHybrid-v0: per-user outage probability
        row["outage_mean"], row["outage_ci95"] = (
            s["outage_fraction_mean"],
            s["outage_fraction_ci95"],
        )
    cfg = getattr(agent, "model_config", None)
    if cfg:
        row.update(
            wrapper=cfg["model"]["wrapper"],
            train_steps=cfg.get("num_timesteps"),
            train_seconds=cfg.get("train_seconds"),
            command=cfg.get("command"),
            model=str(agent.checkpoint_path.parent.relative_to(Path.cwd()))
            if agent.checkpoint_path.is_relative_to(Path.cwd())
            else str(agent.checkpoint_path.parent),
        )
    return row


def _curve(agent: Any) -> dict[str, list[float]] | None:
    """``train_log.csv`` next to the agent's committed model (``None`` if absent)."""
    path = Path(agent.checkpoint_path).parent / "train_log.csv"
    if not path.exists():
        return None
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in ("steps", "seconds", "mean_metric")}


def _agent_entry(entry: str) -> tuple[str, dict[str, Any]]:
    """``"pga_m:J=20,beta=0.9"`` -> ``("pga_m", {"J": 20, "beta": 0.9})`` (values as JSON)."""
    name, _, rest = entry.partition(":")
    hparams = {}
    for pair in filter(None, rest.split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"agent entry {entry!r}: expected name:key=value,...")
        hparams[key] = json.loads(value)
    return name, hparams


def run_setting(setting: Setting, n: int, batch: int) -> dict[str, Any]:
    """Score the RL agents with a committed model and the classical agents on the test set."""
    n = min(n, setting.max_n)
    kw = setting.env_kwargs
    task = make_task(setting.env_id, **kw)
    ds = make_instance_set(setting.env_id, n=n, seed=TEST_SEED, **kw)
    specs = registered_agents()
    rows, curves, metrics = [], {}, []
    for entry in (*RL_AGENTS, *setting.classical):
        name, hparams = _agent_entry(entry)
        agent = make_agent(name, task, **hparams)
        if specs[name].validation_size > 0:
            val = make_instance_set(
                setting.env_id, n=specs[name].validation_size, seed=VALIDATION_SEED, **kw
            )
            agent.learn(val)
        t0 = time.perf_counter()
        try:
            result = evaluate_agent(agent, ds, batch_size=batch, single_instances=0)
        except CheckpointError:  # an RL agent without a committed model for this setting
            if name not in RL_AGENTS:
                raise
            continue
        rows.append(_row(result, agent, time.perf_counter() - t0))
        metrics.append(result.metric)
        if name in RL_AGENTS:
            curve = _curve(agent)
            if curve is not None:
                curves[name] = curve
        print(
            f"{setting.key:12s} {rows[-1]['agent']:40s} {rows[-1]['mean']:.4f} "
            f"± {rows[-1]['ci95'] or 0:.4f}",
            flush=True,
        )
    for row, m in zip(rows, metrics, strict=True):  # paired: the same instances
        if "wrapper" in row:
            row["paired_difference"] = {
                other["agent"]: list(mean_ci(m - m_other))
                for other, m_other in zip(rows, metrics, strict=True)
                if "wrapper" not in other
            }
    return {
        "key": setting.key,
        "env_id": setting.env_id,
        "env_kwargs": kw,
        "n": n,
        "target": setting.target,
        "rows": rows,
        "curves": curves,
    }


def targets(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 12's targets: measured numbers and met / missed."""
    out: dict[str, Any] = {}
    by_key = {g["key"]: g for g in groups}

    def best_rl(g: dict[str, Any]) -> dict[str, Any] | None:
        rl = [r for r in g["rows"] if "wrapper" in r]
        return max(rl, key=lambda r: r["mean"]) if rl else None

    def mean_of(g: dict[str, Any], prefix: str) -> float | None:
        hits = [r["mean"] for r in g["rows"] if r["agent"].split("(")[0] == prefix]
        return hits[0] if hits else None

    if "fdd-hard" in by_key and (b := best_rl(by_key["fdd-hard"])):
        mmse, wmmse = mean_of(by_key["fdd-hard"], "mmse"), mean_of(by_key["fdd-hard"], "wmmse")
        out["fdd-hard"] = {
            "best_rl": b["agent"],
            "best_rl_mean": b["mean"],
            "mmse": mmse,
            "ratio_to_wmmse": b["mean"] / wmmse if wmmse else None,
            "paired_difference_to_mmse": b["paired_difference"].get("mmse"),
            "met": mmse is not None and b["mean"] >= mmse,
        }
    if "fdd-default" in by_key and (b := best_rl(by_key["fdd-default"])):
        mmse = mean_of(by_key["fdd-default"], "mmse")
        out["fdd-default"] = {
            "best_rl": b["agent"],
            "best_rl_mean": b["mean"],
            "mmse": mmse,
            "ratio_to_mmse": b["mean"] / mmse if mmse else None,
            "met": mmse is not None and b["mean"] >= 0.95 * mmse,
        }
    if "modular" in by_key and (b := best_rl(by_key["modular"])):
        out["modular"] = {
            "best_rl": b["agent"],
            "best_rl_mean": b["mean"],
            "met": b["mean"] >= 0.90,
        }
    return out


def plot(groups: list[dict[str, Any]], path: Path) -> None:
    """Learning curves: metric vs env steps and vs seconds, classical test means as lines."""
    groups = [g for g in groups if g["curves"]]
    if not groups:
        return
    fig, axes = plt.subplots(len(groups), 2, figsize=(10, 3.2 * len(groups)), squeeze=False)
    for (ax_s, ax_t), g in zip(axes, groups, strict=True):
        metric = g["rows"][0]["metric_name"]
        for name, c in g["curves"].items():
            ax_s.plot(c["steps"], c["mean_metric"], label=f"{name} (training steps)")
            ax_t.plot(c["seconds"], c["mean_metric"], label=f"{name} (training steps)")
        for r in g["rows"]:
            if "wrapper" in r:
                for ax in (ax_s, ax_t):
                    ax.axhline(r["mean"], ls="-.", lw=1, color="k")
                continue
            for ax in (ax_s, ax_t):
                ax.axhline(r["mean"], ls="--", lw=0.8, color="gray")
                ax.annotate(
                    r["agent"].split("(")[0],
                    (1.0, r["mean"]),
                    xycoords=("axes fraction", "data"),
                    fontsize=6,
                    ha="right",
                    va="bottom",
                )
        ax_s.set(title=f"{g['key']} ({g['env_id'].split('/')[1]})", xlabel="env steps")
        ax_s.set_ylabel(metric)
        ax_t.set(title="wall clock (2-core machine)", xlabel="training seconds")
        ax_s.legend(fontsize=7, loc="lower right")
    fig.text(
        0.01, 0.002, "dash-dot: the RL model on the test set; dashed: classical agents", fontsize=7
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Run the settings, write the JSON and the PNG, print the rows."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500, help="test instances per setting (capped)")
    p.add_argument("--batch", type=int, default=100, help="instances per solve call")
    p.add_argument("--only", nargs="*", default=None, help="setting keys to run")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/rl_baselines.json"))
    args = p.parse_args(argv)
    keys = [s.key for s in SETTINGS]
    if args.only and set(args.only) - set(keys):
        p.error(f"--only takes {keys}, got {sorted(set(args.only) - set(keys))}")
    if args.n < 2:
        p.error(f"--n must be >= 2 (a CI needs two instances), got {args.n}")
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    t0 = time.perf_counter()
    groups = [run_setting(s, args.n, args.batch) for s in SETTINGS if s.key in (args.only or keys)]
    out = {
        "command": "python benchmarks/rl_baselines.py"
        + (f" --n {args.n}" if args.n != 500 else "")
        + (f" --only {' '.join(args.only)}" if args.only else ""),
        "test_seed": TEST_SEED,
        "machine": f"{platform.processor() or platform.machine()}, torch threads "
        f"{torch.get_num_threads()}",
        "seconds": time.perf_counter() - t0,
        "targets": targets(groups),
        "groups": groups,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, allow_nan=False) + "\n")
    plot(groups, args.out.with_suffix(".png"))
    print(json.dumps(out["targets"], indent=1))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} in {out['seconds']:.0f} s")


if __name__ == "__main__":
    main()
