"""Command line of the unfolded-PGA training (paper 003 Sec. III-B), behind ``examples/train.py``.

Usage:
    python examples/train.py --agent unfolded_pga --env beamgym/FarFieldHybrid-v0
    python examples/train.py --agent unfolded_pga --snr-db 20 --init tuned \
        --parametrization log --lr 0.03 --batch-size 25 --epochs 60 --out runs/upga20

Defaults are the paper's recipe (Sec. IV: mu = 0.01, lambda = 1e-4, Adam lr 1e-3 decayed 0.97
per epoch, 500 channels, 20 epochs, loss eq. (14)) at N=32, K=M=4, 10 paths, 10 dB, with I=10
layers and J=5 inner analog steps. Writes to ``--out`` (default ``runs/unfolded_pga``):
``checkpoint.pt`` (load with ``agents.unfolded_pga.train.load_checkpoint`` or the agent's
``checkpoint=``), ``config.json`` (the exact command, the training configuration, the training
time and the validation rates per layer before and after training), ``train_log.csv`` (one row
per epoch: epoch, lr, loss, train rate, validation rate, seconds) and ``train_curve.png``.
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

from agents.unfolded_pga.model import LOSSES, PARAMETRIZATIONS
from agents.unfolded_pga.train import (
    ENV_ID,
    INITS,
    UnfoldedPGATrainConfig,
    save_checkpoint,
    train_unfolded_pga,
)

try:
    from tqdm import tqdm
except ImportError:  # tqdm is in the "viz" extra
    tqdm = None

LOG_FIELDS = ("epoch", "lr", "loss", "train_rate", "val_rate", "seconds")


def _parser() -> argparse.ArgumentParser:
    d = UnfoldedPGATrainConfig()
    p = argparse.ArgumentParser(
        prog="examples/train.py --agent unfolded_pga", description=__doc__.splitlines()[0]
    )
    p.add_argument("--agent", default="unfolded_pga", choices=("unfolded_pga",))
    p.add_argument("--env", default=ENV_ID)
    p.add_argument("--out", default=None, help="output folder (default runs/<agent>)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    for name in ("I", "J", "N", "K", "n_paths", "n_train", "epochs", "batch_size", "n_val"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name))
    for name in ("seed", "val_seed"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name))
    for name in ("lr", "lr_decay", "mu_init", "lam_init"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(d, name))
    p.add_argument("--snr-db", type=float, nargs="+", default=list(d.snr_db))
    p.add_argument("--normalization", default=d.normalization, choices=("paper", "scaled"))
    p.add_argument("--loss", default=d.loss, choices=LOSSES)
    p.add_argument("--parametrization", default=d.parametrization, choices=PARAMETRIZATIONS)
    p.add_argument("--init", default=d.init, choices=INITS)
    p.add_argument("--precision", default=d.precision, choices=("single", "double"))
    return p


def _config(args: argparse.Namespace) -> UnfoldedPGATrainConfig:
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(UnfoldedPGATrainConfig):
        v = getattr(args, f.name)
        kw[f.name] = tuple(v) if isinstance(v, list) else v
    return UnfoldedPGATrainConfig(**kw)


def _plot(rows: list[dict[str, Any]], history: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ep = [r["epoch"] for r in rows]
    ax[0].plot(ep, [r["train_rate"] for r in rows], label="train (minibatch mean)")
    ax[0].plot(ep, [r["val_rate"] for r in rows], label="validation")
    ax[0].set(xlabel="epoch", ylabel="sum-rate of layer I (bit/s/Hz)", title="training, eq. (14)")
    ax[0].legend()
    ax[1].plot(history["val_start"], "o-", label="before training")
    ax[1].plot(history["val_final"], "o-", label="after training")
    ax[1].set(xlabel="layer i", ylabel="validation sum-rate (bit/s/Hz)", title="per layer")
    ax[1].legend()
    for a in ax:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str]) -> Path:
    """Run the training of ``argv`` (``examples/train.py`` arguments); returns the output folder."""
    argv = list(argv)
    args = _parser().parse_args(argv)
    if args.env != ENV_ID:
        raise SystemExit(
            f"error: the unfolded PGA (paper 003) trains on {ENV_ID}, got {args.env!r}"
        )
    try:
        config = _config(args)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc
    torch.set_num_threads(max(1, args.threads))
    out = Path(args.out or f"runs/{args.agent}")
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    bar = None if (args.no_progress or tqdm is None) else tqdm(total=config.epochs, desc=args.agent)

    def progress(row: dict[str, float]) -> None:
        rows.append(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({"val": f"{row['val_rate']:.3f}", "train": f"{row['train_rate']:.3f}"})

    t0 = time.perf_counter()
    model, history = train_unfolded_pga(config, progress=progress)
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    save_checkpoint(out / "checkpoint.pt", model, config, history)
    mu, lam = model.steps()
    meta = {
        "agent": args.agent,
        "env": args.env,
        "env_kwargs": config.env_kwargs(),
        "command": "python examples/train.py " + shlex.join(argv),
        "train_seconds": seconds,
        "torch_threads": torch.get_num_threads(),
        "train_config": {**dataclasses.asdict(config), "snr_db": list(config.snr_db)},
        "init": history["init"],
        "val_rate_per_layer_start": history["val_start"],
        "val_rate_per_layer_final": history["val_final"],
        "mu": mu.detach().tolist(),
        "lam": lam.detach().tolist(),
    }
    (out / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    with open(out / "train_log.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in LOG_FIELDS})
    _plot(rows, history, out / "train_curve.png")
    print(
        f"trained {args.agent} in {seconds:.1f} s: validation rate "
        f"{history['val_start'][-1]:.4f} -> {history['val_final'][-1]:.4f} bit/s/Hz -> {out}"
    )
    return out
