r"""Training of the modular-receiver CNN (paper 004 Sec. V-A) on ModularUplink-v0.

The network (:class:`~agents.modular_cnn.model.CNNBeamformer`) is trained without labels on
the sum-rate of its output: the loss is :math:`-R(\mathbf W\mathbf A)/K` (paper 004 eq. 6,
per-user nats) on the receiver's ``H_est``, maximized with Adam. Every step draws a fresh
mini-batch from the training generator (an unlimited training set; the CNN needs far more data
than U-PGA+M's few thousand parameters); after every epoch the network runs with the env's
hard projection on ``n_val`` validation channels (seed ``val_seed``, never the test seed) and
the best epoch is kept.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from agents.cli import add_dataclass_arguments, dataclass_from_args, parse_env_kwargs
from agents.modular_cnn.model import ENV_ID, CNNBeamformer
from agents.pretrained import env_config_dict, write_checkpoint
from agents.rules.pga_momentum import ModularProblem
from agents.runs import loss_and_rate_panels, progress_bar, run_parser, write_run
from beamgym._validation import check_int, check_positive
from beamgym.envs.modular_uplink import ModularUplinkKnown, ModularUplinkTask

__all__ = [
    "CONSTRAINTS",
    "LOG_FIELDS",
    "CNNTrainConfig",
    "checkpoint_config",
    "main",
    "save_checkpoint",
    "train_cnn",
]

#: Env constraints the CNN trains for (its output is hard-projected; C2's sparsity has no
#: training signal in the rate loss).
CONSTRAINTS: tuple[str, ...] = ("unconstrained", "quantized")
#: Columns of ``train_log.csv``.
LOG_FIELDS = ("epoch", "loss", "train_rate", "val_rate", "val_active", "lr", "seconds")


@dataclasses.dataclass(frozen=True)
class CNNTrainConfig:
    """Configuration of :func:`train_cnn`."""

    epochs: int = 30
    """Epochs (each ``steps_per_epoch`` Adam steps on fresh batches)."""
    steps_per_epoch: int = 64
    """Mini-batches per epoch."""
    batch_size: int = 128
    """Channels per mini-batch."""
    lr: float = 1e-3
    """Adam learning rate."""
    lr_decay: float = 0.95
    """Per-epoch learning-rate decay."""
    channels: tuple[int, ...] = (16, 16)
    """Output channels of the convolutional blocks."""
    hidden: int = 48
    """Hidden fully connected width."""
    n_val: int = 256
    """Validation channels (model selection)."""
    val_seed: int = 2_000_003
    """Seed of the validation channels (never the test seed)."""
    seed: int = 0
    """Seed of the training generator and of the network initialization."""

    def __post_init__(self) -> None:
        for name in ("epochs", "steps_per_epoch", "batch_size", "hidden", "n_val"):
            check_int(getattr(self, name), name)
        for c in self.channels:
            check_int(c, "channels")
        if len(self.channels) == 0:
            raise ValueError("channels must list at least one convolutional block")
        check_positive(self.lr, "lr")
        check_int(self.seed, "seed", minimum=0)
        check_int(self.val_seed, "val_seed", minimum=0)
        if not 0.0 < self.lr_decay <= 1.0:
            raise ValueError(f"lr_decay must lie in (0, 1], got {self.lr_decay}")


def _rate(task: ModularUplinkTask, known: ModularUplinkKnown, W: torch.Tensor) -> torch.Tensor:
    return ModularProblem(task, known).rate(W.to(task.cdtype)) / task.config.K


def train_cnn(
    task: ModularUplinkTask,
    config: CNNTrainConfig,
    *,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[CNNBeamformer, list[dict[str, Any]], dict[str, Any]]:
    """Train the CNN without labels on eq. (6) (per-user nats) of its output.

    Args:
        task: ModularUplink-v0 task (fixes the sizes, the SNR set and the channel law).
        config: Training configuration.
        progress: Optional callback receiving each epoch's log row.

    Returns:
        ``(net, history, info)``: the best-validation network (eval mode, CPU), one log row per
        epoch (epoch 0: untrained) and ``info`` (parameter count, best epoch).
    """
    cfg = config
    c = task.config
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # nn initialization (library code never reads it elsewhere)
    net = CNNBeamformer(c.B, c.M, c.K, task.panel_shape, cfg.channels, cfg.hidden)
    net = net.to(task.device)
    val = task.sample(torch.Generator(device="cpu").manual_seed(cfg.val_seed), cfg.n_val)
    vk = task.known(val)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)

    def validate() -> float:
        net.eval()
        with torch.no_grad():
            W = task.project(net(vk.H_est).to(task.cdtype))
            r = float(task.evaluate(W, val)["metric"].mean())
        net.train()
        return r

    best_rate = validate()
    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    best_epoch = 0
    history = [
        {
            "epoch": 0,
            "loss": float("nan"),
            "train_rate": float("nan"),
            "val_rate": best_rate,
            "val_active": float(c.num_phase_shifters),
            "lr": cfg.lr,
            "seconds": 0.0,
        }
    ]
    if progress is not None:
        progress(history[-1])
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        rates = []
        for _ in range(cfg.steps_per_epoch):
            inst = task.sample(gen, cfg.batch_size)
            known = task.known(inst)
            rate = _rate(task, known, net(known.H_est)).mean()
            opt.zero_grad(set_to_none=True)
            (-rate).backward()
            opt.step()
            rates.append(float(rate.detach()))
        sched.step()
        v = validate()
        if v > best_rate:
            best_rate, best_epoch = v, epoch
            best_state = {k: t.detach().clone() for k, t in net.state_dict().items()}
        row = {
            "epoch": epoch,
            "loss": -sum(rates) / len(rates),
            "train_rate": sum(rates) / len(rates),
            "val_rate": v,
            "val_active": float(c.num_phase_shifters),
            "lr": opt.param_groups[0]["lr"],
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        if progress is not None:
            progress(row)
    net.load_state_dict(best_state)
    net.eval()
    info = {
        "num_parameters": net.num_parameters,
        "best_epoch": best_epoch,
        "best_val_rate": best_rate,
    }
    return net.cpu(), history, info


def checkpoint_config(
    task: ModularUplinkTask,
    net: CNNBeamformer,
    config: CNNTrainConfig,
    info: dict[str, Any],
) -> dict[str, Any]:
    """The ``config.json`` content of a CNN model (``model``: the architecture)."""
    return {
        "agent": "modular_cnn",
        "env_id": ENV_ID,
        "env_kwargs": task.env_kwargs,
        "env_config": env_config_dict(task),
        "hparams": {},
        "train_config": dataclasses.asdict(config),
        "model": net.arch,
        "num_parameters": int(info["num_parameters"]),
    }


def save_checkpoint(
    path: str | Path,
    task: ModularUplinkTask,
    net: CNNBeamformer,
    config: CNNTrainConfig,
    info: dict[str, Any],
) -> Path:
    """Write a CNN model folder (weights-only ``checkpoint.pt`` + ``config.json``)."""
    return write_checkpoint(path, net.state_dict(), checkpoint_config(task, net, config, info))


# ---- command line (examples/train.py --agent modular_cnn ...) ---------------------------------
def main(argv: Sequence[str]) -> Path:
    r"""``examples/train.py --agent modular_cnn ...``: train the CNN and write a model folder.

    Usage::

        python examples/train.py --agent modular_cnn --env beamgym/ModularUplink-v0
        python examples/train.py --agent modular_cnn --env-kw constraint=quantized --epochs 5

    The env is ModularUplink-v0 with the ``--env-kw key=value`` keywords (default: Scenario 1,
    the committed model's); its constraint must be one of :data:`CONSTRAINTS`. Every field of
    :class:`CNNTrainConfig` is an option. Writes the model folder of
    :func:`agents.runs.write_run` to ``--out`` (default ``runs/modular_cnn``);
    ``train_log.csv`` has one row per epoch (loss, train rate, validation rate with the hard
    projection).

    Returns:
        The output folder.
    """
    import beamgym  # noqa: F401  (registers the envs)
    from beamgym.datasets import make_task

    argv = [str(a) for a in argv]
    p = run_parser(
        ("modular_cnn",), (ENV_ID,), "Train the modular-receiver CNN (paper 004 Sec. V-A)."
    )
    p.add_argument("--precision", default="single", choices=("single", "double"))
    add_dataclass_arguments(p.add_argument_group("training (CNNTrainConfig)"), CNNTrainConfig)
    ns = p.parse_args(argv)
    torch.set_num_threads(ns.threads or 1)
    try:
        kw = parse_env_kwargs(ns.env_kw)
        constraint = kw.get("constraint", "unconstrained")
        if constraint not in CONSTRAINTS:
            raise ValueError(
                f"the CNN trains for constraint in {CONSTRAINTS}, got constraint={constraint!r} "
                "(use upga_m_sparse for sparse phase shifters)"
            )
        task = make_task(ENV_ID, precision=ns.precision, **kw)
        config = dataclass_from_args(CNNTrainConfig, ns)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc
    bar = progress_bar(config.epochs, ns.agent, not ns.no_progress)

    def progress(row: dict[str, Any]) -> None:
        if row["epoch"] > 0:
            bar(val=f"{row['val_rate']:.4f}")

    t0 = time.perf_counter()
    net, history, info = train_cnn(task, config, progress=progress)
    seconds = time.perf_counter() - t0
    bar.close()  # type: ignore[attr-defined]
    meta = checkpoint_config(task, net, config, info)
    meta["result"] = dict(info)
    out = write_run(
        ns.out or Path("runs") / ns.agent,
        state=net.state_dict(),
        config=meta,
        argv=argv,
        seconds=seconds,
        rows=history,
        fields=LOG_FIELDS,
        panels=loss_and_rate_panels(
            f"{ns.agent} ({ENV_ID})", history, "rate (per-user nats)", "train"
        ),
    )
    print(f"trained {ns.agent} in {seconds:.1f} s -> {out}")
    return out
