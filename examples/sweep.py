"""Run a sweep: agents × envs × env-keyword grids × SNRs × seeds, one Parquet row per cell.

Each cell is one harness evaluation on the fixed, seeded test set, the very numbers
``examples/evaluate.py`` prints for the same agent and env configuration. Cells run as Ray
tasks (a local Ray instance by default; ``--address`` joins a cluster) or serially with
``--backend local``. Re-running the same command skips the cells already in ``--out``.

Usage:
    python examples/sweep.py --spec sweeps/leaderboard.toml --out sweeps/leaderboard.parquet
    python examples/sweep.py --spec sweeps/leaderboard.toml --address ray://head:10001
    python examples/sweep.py --env beamgym/FullyDigitalFDD-v0 --agent mmse wmmse zf \
        --env-kw channel=rayleigh N=4 N=8 K=4 --snr-db 5 10 --episodes 100 --backend local

With flags instead of a spec, ``--env-kw`` may repeat a key (``N=4 N=8``): each value is one
alternative of the grid. ``--agent all`` scores every agent that supports the env. With
``--spec``, ``--episodes``, ``--seeds`` and ``--batch`` override the spec's values. See
:mod:`agents.sweep` for the spec format.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no spinning threads on a busy machine

import agents  # noqa: E402, F401  (registers the agents)
from agents.cli import (  # noqa: E402
    dataclass_from_args,
    dataclass_parser,
    parse_env_kwargs,
)
from agents.sweep import (  # noqa: E402
    SpecError,
    SweepSpec,
    expand,
    read_spec_file,
    run_sweep,
    spec_from_dict,
)


@dataclasses.dataclass(frozen=True)
class Args:
    """Arguments of a sweep (CleanRL style: this dataclass is the parser)."""

    spec: Path | None = None
    """Sweep spec file (.toml or .yaml); none: one env group from --env/--agent/--env-kw."""
    env: str | None = None
    """Env id of the one group built from flags (without --spec)."""
    agent: tuple[str, ...] = ()
    """Agents of that group: NAME or NAME:key=value,...; 'all' for every agent of the env."""
    env_kw: tuple[str, ...] = ()
    """Env keyword grid as key=value pairs; a repeated key gives alternatives (N=4 N=8)."""
    snr_db: tuple[float, ...] = ()
    """SNRs in dB of that group (envs with an snr_db keyword)."""
    episodes: int | None = None
    """Test instances per cell (default: the spec's, else 200)."""
    seeds: tuple[int, ...] = ()
    """Test-set seeds (default: the spec's, else the fixed TEST_SEED)."""
    batch: int | None = None
    """Instances per batched solve (default: the spec's, else 512)."""
    out: Path = Path("runs/sweep.parquet")
    """Results table (Parquet); cells already in it are skipped."""
    backend: str = "ray"
    """ray (Ray tasks) or local (serial, without Ray)."""
    address: str | None = None
    """Ray cluster address to join (default: start a local Ray instance)."""
    workers: int | None = None
    """Local Ray worker processes (default: every CPU)."""
    max_retries: int = 3
    """Ray retries of a cell whose worker process dies."""
    progress: bool = True
    """Show a progress bar over cells."""
    dry_run: bool = False
    """Check the spec and list the cells, run nothing."""

    def __post_init__(self) -> None:
        if self.backend not in ("ray", "local"):
            raise ValueError(f"backend must be 'ray' or 'local', got {self.backend!r}")
        if self.spec is None and (self.env is None or not self.agent):
            raise ValueError("give --spec FILE, or --env ID and --agent NAME... for one group")
        if self.spec is not None and (self.env or self.agent or self.env_kw or self.snr_db):
            raise ValueError(
                "spec and env/agent/env_kw/snr_db exclusive: put the groups in the spec file"
            )
        for name in ("episodes", "batch", "workers"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backend == "local" and (self.workers not in (None, 1) or self.address):
            raise ValueError("backend local runs serially: drop workers and address")


def spec_of(args: Args) -> SweepSpec:
    """The validated spec of the arguments (the file with overrides, or one group of flags)."""
    if args.spec is not None:
        data: dict[str, Any] = read_spec_file(args.spec)
    else:
        grid: dict[str, list[Any]] = {}
        for pair in args.env_kw:  # one pair at a time: a repeated key adds an alternative
            (key, value), *_ = parse_env_kwargs([pair]).items()
            grid.setdefault(key, []).append(value)
        group: dict[str, Any] = {
            "id": args.env,
            "agents": "all" if args.agent == ("all",) else list(args.agent),
            "kwargs": grid,
        }
        if args.snr_db:
            group["snr_db"] = list(args.snr_db)
        data = {"envs": [group]}
    if args.episodes is not None:
        data["episodes"] = args.episodes
    if args.seeds:
        data["seeds"] = list(args.seeds)
    if args.batch is not None:
        data["batch"] = args.batch
    return spec_from_dict(data)


def flag_names(message: str) -> str:
    """A spec error about the group built from flags, with its fields named as the flags."""
    subs = [
        (r"envs\[0\]\.kwargs\.(\w+)", r"--env-kw \1"),
        (r"envs\[0\]\.kwargs / snr_db", "--env-kw / --snr-db"),
        (r"envs\[0\]\.agents(\[\d+\])?", "--agent"),
        (r"envs\[0\]\.snr_db(\[\d+\])?", "--snr-db"),
        (r"envs\[0\]\.id", "--env"),
        (r"^seeds(\[\d+\])?", "--seeds"),
    ]
    for pattern, flag in subs:
        message = re.sub(pattern, flag, message)
    return message


def main(argv: list[str] | None = None) -> None:
    parser = dataclass_parser(Args)
    args = dataclass_from_args(Args, parser.parse_args(argv), parser=parser)
    try:
        spec = spec_of(args)
        cells, skipped = expand(spec)  # every check, before any cell runs
    except (SpecError, ValueError) as exc:
        parser.error(str(exc) if args.spec is not None else flag_names(str(exc)))
    print(f"{len(cells)} cells to evaluate, {len(skipped)} skipped ({args.out})")
    if args.dry_run:
        for c in cells:
            print(f"{c.group:28s} {c.agent:20s} {dict(c.env_kwargs)} seed={c.seed}")
        return
    t0 = time.perf_counter()
    df = run_sweep(
        spec,
        args.out,
        backend=args.backend,
        address=args.address,
        workers=args.workers,
        max_retries=args.max_retries,
        progress=args.progress,
    )
    counts = df["status"].value_counts().to_dict()
    print(f"wrote {args.out}: {len(df)} rows {counts} in {time.perf_counter() - t0:.1f} s")
    failed = df[df["status"] == "failed"]
    for _, r in failed.iterrows():
        print(
            f"failed: {r['group']} {r['agent']} {r['env_kwargs']}: {r['reason']}", file=sys.stderr
        )
    if len(failed):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
