"""Command line of U-PGA+M (paper 004 Algorithm 2) and CNN training, behind ``examples/train.py``.

Usage:
    python examples/train.py --agent upga_m --env beamgym/ModularUplink-v0
    python examples/train.py --agent upga_m --P 8 --L 1 --N 4 --K 5 --out runs/scenario4
    python examples/train.py --agent upga_m_sparse --P 4 --L 2 --N 3 --B 4 --K 5 \
        --constraint sparse --s-max 18
    python examples/train.py --agent upga_m_quantized --constraint quantized
    python examples/train.py --agent cnn_004

``--agent``: ``upga_m``, ``upga_m_sparse``, ``upga_m_quantized`` (the same trainer, Algorithm 2;
the variants differ by the env's ``--constraint``, which must fit the agent) or ``cnn_004``
(the CNN baseline of Sec. V-A). The env keywords (``--T --P --L --N --B --K --snr-db
--constraint --zeta --s-max --q-levels --connectivity-blocks``) default to the agent's
committed scenario. Writes to ``--out`` (default ``runs/<agent>``): ``checkpoint.pt``,
``config.json`` (the exact command, the training seconds, the training and env
configuration), ``train_log.csv`` (one row per epoch: loss, train rate, validation rate with
the hard projections, active phase shifters) and ``train_curve.png``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import shlex
import time
from pathlib import Path
from typing import Any

import torch

from agents.pretrained import env_config_dict
from agents.upga_m.model import ENV_ID

try:
    from tqdm import tqdm
except ImportError:  # tqdm is in the "viz" extra
    tqdm = None

#: Agent -> (allowed constraints, default env keywords).
AGENTS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "upga_m": (("unconstrained",), {}),
    "upga_m_sparse": (
        ("sparse", "sparse_quantized"),
        {"P": 4, "L": 2, "N": 3, "B": 4, "K": 5, "constraint": "sparse", "s_max": 18},
    ),
    "upga_m_quantized": (("quantized",), {"constraint": "quantized"}),
    "cnn_004": (("unconstrained", "quantized"), {}),
}
#: Per-agent training defaults that differ from the dataclass defaults.
TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "upga_m_sparse": {"gamma": 0.01, "lr": 0.02, "sharpness": 5.0, "sharpness_final": 20.0},
    "upga_m_quantized": {"sharpness": 5.0, "sharpness_final": 100.0},
}
LOG_FIELDS = (
    "epoch",
    "loss",
    "train_rate",
    "val_rate",
    "val_active",
    "sharpness",
    "lr",
    "seconds",
)
_ENV_INTS = ("T", "P", "L", "N", "B", "K", "q_levels", "connectivity_blocks")


def _parser(agent: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", default="upga_m", choices=sorted(AGENTS))
    p.add_argument("--env", default=ENV_ID)
    p.add_argument("--out", default=None, help="output folder (default runs/<agent>)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--precision", default="single", choices=("single", "double"))
    env = p.add_argument_group("env (ModularUplink-v0 keywords; default: the agent's scenario)")
    for name in _ENV_INTS:
        env.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    env.add_argument("--snr-db", type=float, nargs="+", default=None)
    env.add_argument("--constraint", default=None)
    env.add_argument("--zeta", type=float, default=None)
    env.add_argument("--s-max", type=int, default=None)
    train = p.add_argument_group("training")
    if agent == "cnn_004":
        from agents.upga_m.cnn import CNNTrainConfig

        cls: Any = CNNTrainConfig
    else:
        from agents.upga_m.train import UPGAMTrainConfig

        cls = UPGAMTrainConfig
    d = cls()
    for f in dataclasses.fields(cls):
        v = TRAIN_DEFAULTS.get(agent, {}).get(f.name, getattr(d, f.name))
        flag = f"--{f.name.replace('_', '-')}"
        if isinstance(v, bool):
            train.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=v)
        elif isinstance(v, int):
            train.add_argument(flag, type=int, default=v)
        elif isinstance(v, float):
            train.add_argument(flag, type=float, default=v)
        elif isinstance(v, tuple):
            train.add_argument(flag, type=int, nargs="+", default=list(v))
        else:
            train.add_argument(flag, default=v)
    p.set_defaults(_train_cls=cls)
    return p


def _agent_of(argv: list[str]) -> str:
    for i, a in enumerate(argv):
        if a == "--agent" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--agent="):
            return a.split("=", 1)[1]
    return "upga_m"


def _env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    allowed, kw = AGENTS[args.agent]
    kw = dict(kw)
    for name in (*_ENV_INTS, "constraint", "zeta", "s_max"):
        v = getattr(args, name)
        if v is not None:
            kw[name] = v
    if args.snr_db is not None:
        kw["snr_db"] = args.snr_db[0] if len(args.snr_db) == 1 else tuple(args.snr_db)
    constraint = kw.get("constraint", "unconstrained")
    if constraint not in allowed:
        raise SystemExit(
            f"error: --agent {args.agent} is for constraint(s) {allowed}, got --constraint "
            f"{constraint} (use upga_m / upga_m_sparse / upga_m_quantized to match)"
        )
    return kw


def _plot(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ep = [r["epoch"] for r in rows]
    ax[0].plot(ep[1:], [r["loss"] for r in rows[1:]])
    ax[0].set(xlabel="epoch", ylabel="training loss", title=title)
    ax[1].plot(ep[1:], [r["train_rate"] for r in rows[1:]], label="train (surrogate)")
    ax[1].plot(ep, [r["val_rate"] for r in rows], label="validation (hard projection)")
    ax[1].set(xlabel="epoch", ylabel="rate at J (per-user nats)")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str]) -> Path:
    """Run the training of ``argv`` (``examples/train.py`` arguments); returns the output folder."""
    import beamgym  # noqa: F401  (registers the envs)
    from beamgym.datasets import make_task

    argv = list(argv)
    agent = _agent_of(argv)
    if agent not in AGENTS:
        raise SystemExit(f"error: --agent must be one of {sorted(AGENTS)}, got {agent!r}")
    args = _parser(agent).parse_args(argv)
    if args.env != ENV_ID:
        raise SystemExit(f"error: {args.agent} trains on {ENV_ID} only, got {args.env!r}")
    torch.set_num_threads(1)
    cls = args._train_cls
    try:
        kw = _env_kwargs(args)
        task = make_task(ENV_ID, precision=args.precision, **kw)
        config = cls(
            **{
                f.name: (
                    tuple(getattr(args, f.name))
                    if isinstance(getattr(args, f.name), list)
                    else getattr(args, f.name)
                )
                for f in dataclasses.fields(cls)
            }
        )
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc
    out = Path(args.out or f"runs/{args.agent}")
    out.mkdir(parents=True, exist_ok=True)
    bar = None if (args.no_progress or tqdm is None) else tqdm(total=config.epochs, desc=agent)

    def progress(row: dict[str, Any]) -> None:
        if bar is not None and row["epoch"] > 0:
            bar.update(1)
            bar.set_postfix({"val": f"{row['val_rate']:.4f}"})

    t0 = time.perf_counter()
    if args.agent == "cnn_004":
        from agents.upga_m.cnn import save_cnn_checkpoint, train_cnn

        net, history, info = train_cnn(task, config, progress=progress)
        seconds = time.perf_counter() - t0
        save_cnn_checkpoint(out / "checkpoint.pt", task, net, config, history, info)
    else:
        from agents.upga_m.train import save_checkpoint, train_upga_m

        theta, history, info = train_upga_m(task, config, progress=progress)
        seconds = time.perf_counter() - t0
        save_checkpoint(out / "checkpoint.pt", args.agent, task, theta, config, history, info)
    if bar is not None:
        bar.close()
    meta = {
        "agent": args.agent,
        "env": args.env,
        "env_kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()},
        "env_config": env_config_dict(task),
        "command": "python examples/train.py " + shlex.join(argv),
        "train_seconds": seconds,
        "train_config": dataclasses.asdict(config),
        "result": {k: v for k, v in info.items() if k != "grid_table"},
        "torch_threads": torch.get_num_threads(),
    }
    (out / "config.json").write_text(json.dumps(meta, indent=2, default=str))
    with open(out / "train_log.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=LOG_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in history:
            w.writerow({k: r.get(k, "") for k in LOG_FIELDS})
    _plot(history, out / "train_curve.png", f"{args.agent} ({ENV_ID})")
    print(f"trained {args.agent} in {seconds:.1f} s -> {out}")
    return out
