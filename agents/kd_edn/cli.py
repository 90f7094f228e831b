"""Command line of KD-EDN training (paper 000 Algorithm 1), behind ``examples/train.py``.

Usage:
    python examples/train.py --agent kd_edn --env beamgym/FullyDigitalFDD-v0
    python examples/train.py --agent edn_unsupervised --env-kw placement=spatial-division
    python examples/train.py --agent kd_edn --env beamgym/NearFieldHybrid-v0
    python examples/train.py --agent kd_edn --env-kw N=8 K=2 L=2 --epochs 40 --out runs/tiny

``--agent``: ``kd_edn`` (alpha 0 -> 1), ``edn_unsupervised`` (alpha = 1), ``edn_supervised``
(alpha = 0), ``kd_edn_q0`` (Q_t = 0). ``--env``: FullyDigitalFDD-v0, FarFieldHybrid-v0
(steering analog beams, Sec. IV-A) or NearFieldHybrid-v0 (TTD+PS, Sec. IV-B); ``--env-kw``
sets the env configuration. Writes to ``--out``: ``checkpoint.pt`` (load
with ``agents.kd_edn.train.load_checkpoint``), ``config.json`` (the training configuration and
the exact command), ``train_log.csv`` (one row per epoch: stage, epoch, alpha, loss, sum-rate
of W_Qt on the epoch's batch, supervised loss, channel-decoder NMSE in dB) and
``train_curve.png`` when matplotlib is available.
"""

from __future__ import annotations

import argparse
import ast
import csv
import dataclasses
import json
import shlex
import time
from pathlib import Path
from typing import Any

import torch

from agents.kd_edn.train import KD_EDN_ENVS, KDEDNTrainConfig, save_checkpoint, train_kd_edn

try:
    from tqdm import tqdm
except ImportError:  # tqdm is in the "viz" extra
    tqdm = None

#: Training variants: agent name -> overrides of the training configuration.
VARIANTS: dict[str, dict[str, Any]] = {
    "kd_edn": {"alpha_mode": "kd"},
    "edn_unsupervised": {"alpha_mode": "unsupervised"},
    "edn_supervised": {"alpha_mode": "supervised"},
    "kd_edn_q0": {"alpha_mode": "kd", "q_train": 0},
}
SUPPORTED_ENVS = KD_EDN_ENVS
LOG_FIELDS = ("stage", "epoch", "alpha", "loss", "sum_rate", "supervised", "nmse_db")


def _parser() -> argparse.ArgumentParser:
    d = KDEDNTrainConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", default="kd_edn", choices=sorted(VARIANTS))
    p.add_argument("--env", default=SUPPORTED_ENVS[0])
    p.add_argument("--out", default=None, help="output folder (default runs/<agent>)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument(
        "--env-kw",
        nargs="*",
        default=[],
        help="env configuration key=value (Python literals), e.g. placement=spatial-division N=8",
    )
    for name in ("d", "bits", "epochs", "ch_epochs", "batch_size"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name))
    for name in ("n_en", "n_de", "alpha_every", "q_train", "seed"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name))
    for name in ("lr", "eta", "sigma_z2"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(d, name))
    p.add_argument("--input-norm", default=d.input_norm, choices=("snr", "none"))
    p.add_argument("--snr-db", type=float, nargs="+", default=list(d.snr_db))
    for name in ("enc_hidden", "dec_hidden", "ch_hidden"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, nargs="+", default=None)
    p.add_argument("--precision", default=d.precision, choices=("single", "double"))
    return p


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _config(args: argparse.Namespace) -> KDEDNTrainConfig:
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(KDEDNTrainConfig):
        v = getattr(args, f.name, None)
        if v is not None and f.name not in ("alpha_mode", "env_kw", "env_kwargs"):
            kw[f.name] = tuple(v) if isinstance(v, list) else v
    env_kwargs: dict[str, Any] = {}
    for pair in args.env_kw:
        if "=" not in pair:
            raise ValueError(f"--env-kw expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        env_kwargs[key] = _literal(value)
    kw["env_id"] = args.env
    kw["env_kwargs"] = env_kwargs
    kw.update(VARIANTS[args.agent])
    return KDEDNTrainConfig(**kw)


def _plot(rows: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    edn = [r for r in rows if r["stage"] == "edn"]
    ch = [r for r in rows if r["stage"] == "channel"]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot([r["epoch"] for r in edn], [r["sum_rate"] for r in edn])
    ax[0].set(xlabel="epoch", ylabel="sum-rate of W_Qt (bit/s/Hz)", title="encoder/decoder")
    ax[1].plot([r["epoch"] for r in ch], [r["nmse_db"] for r in ch])
    ax[1].set(xlabel="epoch", ylabel="NMSE (dB)", title="channel decoder, eq. (17)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str]) -> Path:
    """Run the training of ``argv`` (``examples/train.py`` arguments); returns the output folder."""
    argv = list(argv)
    args = _parser().parse_args(argv)
    if args.env not in SUPPORTED_ENVS:
        raise SystemExit(f"error: KD-EDN trains for {SUPPORTED_ENVS}, got {args.env!r}")
    try:
        config = _config(args)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out = Path(args.out or f"runs/{args.agent}")
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    total = config.epochs + config.ch_epochs
    bar = None if (args.no_progress or tqdm is None) else tqdm(total=total, desc=args.agent)

    def progress(stage: str, rec: dict[str, float]) -> None:
        rows.append({"stage": stage, **rec})
        if bar is not None:
            bar.update(1)
            key = "sum_rate" if stage == "edn" else "nmse_db"
            bar.set_postfix({stage: f"{rec.get(key, float('nan')):.3f}"})

    t0 = time.perf_counter()
    model, history = train_kd_edn(config, progress=progress)
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    save_checkpoint(out / "checkpoint.pt", model, config, history, agent=args.agent)
    command = "python examples/train.py " + shlex.join(argv)
    meta = {
        "agent": args.agent,
        "env": args.env,
        "command": command,
        "train_seconds": seconds,
        "train_config": dataclasses.asdict(config),
    }
    (out / "config.json").write_text(json.dumps(meta, indent=2))
    with open(out / "train_log.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=LOG_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in LOG_FIELDS})
    _plot(rows, out / "train_curve.png")
    print(f"trained {args.agent} in {seconds:.1f} s -> {out}")
    return out
