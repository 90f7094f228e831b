r"""The CNN benchmark of paper 004 Sec. V-A (after its ref. [27]), agent ``cnn_004``.

Paper 004 Sec. V-A: "CNN: a CNN based on the architecture of [27] (Dong, Zhang, Li, IEEE
Access 2020), trained to map channel realizations :math:`\{\mathbf H[b]\}` into the phases of
:math:`\mathbf W` that maximize the channel-rate R. This approach is extremely
parameterized." Ref. [27]'s framework feeds the channel matrix, real and imaginary parts as
input planes, through convolutional layers with batch normalization and ReLU, then
fully connected layers whose output is mapped to unit-modulus analog weights, and trains
it without labels on the rate. Our realization (documented choices; the paper prints no
layer sizes):

* input: ``[batch, 2B, M, K]``, the planes :math:`\Re\mathbf H[b], \Im\mathbf H[b]` of the
  receiver's ``H_est`` (CN(0,1) entries need no further scaling);
* features: ``len(channels)`` blocks Conv2d(3x3, padding 1) -> BatchNorm2d -> ReLU, then a 2x2
  max-pool; head: Linear -> BatchNorm1d -> ReLU -> Linear to ``2 P N L`` outputs;
* output: :math:`[\mathbf W]_{p,n,l} = z/|z|`, :math:`z = x_{\rm re} + j x_{\rm im}`
  (a phase without a :math:`2\pi` wrap; eq. 10 applied to the network output), then the env's
  hard projection (eq. 10, or eq. 20 "quantizing the produced phases" for C3);
* loss: :math:`-R(\mathbf W\mathbf A)/K` (eq. 6, per-user nats) on ``H_est``; Adam; every step
  draws a fresh batch from the training generator (an unlimited training set; the CNN needs
  far more data than U-PGA+M's few thousand parameters).

The network is tied to the sizes ``(B, M, K)`` and ``(P, N, L)`` of its training env (no
transfer), unlike U-PGA+M.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agents.base import Agent, CheckpointError, register_agent
from agents.pretrained import (
    check_env_config,
    env_config_dict,
    read_checkpoint,
    resolve_checkpoint,
    write_checkpoint,
)
from agents.rules.pga_momentum import ModularProblem, check_modular_task
from agents.upga_m.model import ENV_ID
from beamgym._validation import check_int, check_positive
from beamgym.envs.modular_uplink import ModularUplinkKnown, ModularUplinkTask
from beamgym.physics.projections import unit_modulus

__all__ = [
    "CNN_TRAIN_COMMAND",
    "CNNBeamformer",
    "CNNAgent",
    "CNNTrainConfig",
    "cnn_checkpoint_config",
    "save_cnn_checkpoint",
    "train_cnn",
]

#: The command that made the committed model.
CNN_TRAIN_COMMAND = (
    "python examples/train.py --agent cnn_004 --env beamgym/ModularUplink-v0 "
    "--out agents/pretrained/cnn_004/ModularUplink-v0"
)
#: Env fields the CNN's shapes depend on.
CNN_KEYS: tuple[str, ...] = ("T", "P", "L", "N", "B", "K", "connectivity_blocks")


class CNNBeamformer(nn.Module):
    """Ref. [27]-style CNN mapping ``H_est`` ``[b, B, M, K]`` to panels ``[b, P, N, L]``.

    Args:
        B, M, K: Bins, antennas and users of the input.
        panel_shape: ``(P, N, L)`` of the output.
        channels: Output channels of the convolutional blocks.
        hidden: Width of the hidden fully connected layer.
    """

    def __init__(
        self,
        B: int,
        M: int,
        K: int,
        panel_shape: tuple[int, int, int],
        channels: tuple[int, ...] = (16, 16),
        hidden: int = 48,
    ) -> None:
        super().__init__()
        self.arch = {
            "B": int(B),
            "M": int(M),
            "K": int(K),
            "panel_shape": [int(s) for s in panel_shape],
            "channels": [int(c) for c in channels],
            "hidden": int(hidden),
        }
        layers: list[nn.Module] = []
        c_in = 2 * B
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        flat = c_in * math.ceil(M / 2) * math.ceil(K / 2)
        self.n_out = 2 * math.prod(panel_shape)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, self.n_out),
        )
        self.panel_shape = tuple(panel_shape)

    def forward(self, H: torch.Tensor) -> torch.Tensor:
        """``[b, B, M, K]`` complex channels -> ``[b, P, N, L]`` complex unit-modulus panels."""
        x = torch.cat([H.real, H.imag], dim=1).float()  # [b, 2B, M, K]
        y = self.head(self.features(x))
        half = self.n_out // 2
        z = torch.complex(y[:, :half], y[:, half:]).reshape(-1, *self.panel_shape)
        return unit_modulus(z)

    @property
    def num_parameters(self) -> int:
        """Number of learned scalars (batch-norm running statistics excluded)."""
        return sum(p.numel() for p in self.parameters())


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


def cnn_checkpoint_config(
    task: ModularUplinkTask,
    net: CNNBeamformer,
    config: CNNTrainConfig,
    info: dict[str, Any],
) -> dict[str, Any]:
    """The ``config.json`` content of a CNN model (``model``: the architecture)."""
    return {
        "agent": "cnn_004",
        "env_id": ENV_ID,
        "env_kwargs": task.env_kwargs,
        "env_config": env_config_dict(task),
        "hparams": {},
        "train_config": dataclasses.asdict(config),
        "model": net.arch,
        "num_parameters": int(info["num_parameters"]),
    }


def save_cnn_checkpoint(
    path: str | Path,
    task: ModularUplinkTask,
    net: CNNBeamformer,
    config: CNNTrainConfig,
    info: dict[str, Any],
) -> Path:
    """Write a CNN model folder (weights-only ``checkpoint.pt`` + ``config.json``)."""
    return write_checkpoint(path, net.state_dict(), cnn_checkpoint_config(task, net, config, info))


@register_agent(
    "cnn_004",
    env_ids=(ENV_ID,),
    description=(
        "CNN benchmark of paper 004 Sec. V-A (after ref. [27]): conv + FC network mapping "
        "H to the phases of W, trained on eq. (6); committed model (Scenario 1)"
    ),
    trainer="agents.upga_m.train:main",
    checkpoint=None,
)
class CNNAgent(Agent):
    """The CNN benchmark of paper 004 Sec. V-A (see the module docstring).

    The output goes through the env's hard projection: eq. (10), or eq. (20) for quantized
    phase shifters ("quantizing the produced phases", Sec. V-C2). The network is tied to its
    training sizes: ``T, P, L, N, B, K`` must match the checkpoint's env (the SNR and the
    constraint may differ).

    Args:
        env: A ModularUplink-v0 env or task.
        checkpoint: Checkpoint path; ``None`` loads the committed model.
    """

    learnable = True

    def __init__(self, env: Any, **hparams: Any) -> None:
        hp = {"checkpoint": None, **hparams}
        unknown = set(hp) - {"checkpoint"}
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)} for cnn_004")
        task = check_modular_task(env, "cnn_004")
        super().__init__(task)
        self.task: ModularUplinkTask = task
        path = resolve_checkpoint(hp["checkpoint"], "cnn_004", ENV_ID, CNN_TRAIN_COMMAND)
        try:
            ckpt = read_checkpoint(path, agent="cnn_004")
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; retrain with: {CNN_TRAIN_COMMAND}") from exc
        check_env_config(ckpt.config["env_config"], task, CNN_KEYS, path, CNN_TRAIN_COMMAND)
        self._build(ckpt.config["model"])
        self.load_state_dict(ckpt.state)
        self.net.to(task.device).eval()
        self.checkpoint_path = path
        self.model_config: dict[str, Any] = dict(ckpt.config)

    def _build(self, a: dict[str, Any]) -> None:
        self.net = CNNBeamformer(
            a["B"], a["M"], a["K"], tuple(a["panel_shape"]), tuple(a["channels"]), a["hidden"]
        )

    def learn(self, **overrides: Any) -> CNNAgent:
        """Retrain the network from scratch with the stored recipe and return ``self``.

        Runs :func:`train_cnn` (fresh weights seeded by ``seed``) on the env configuration the
        model was trained for, with the model's :class:`CNNTrainConfig`, fields replaced by
        keyword arguments (e.g. ``epochs=1, steps_per_epoch=4``: the training budget); with
        none it reproduces the recipe.
        """
        from beamgym.datasets import make_task

        recipe = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in self.model_config["train_config"].items()
        }
        config = CNNTrainConfig(**{**recipe, **overrides})
        kw = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in self.model_config.get("env_kwargs", {}).items()
        }
        task = make_task(ENV_ID, precision=self.task.precision, **kw)
        net, _, info = train_cnn(task, config)
        self.net = net.to(self.task.device).eval()
        self.model_config = {
            **cnn_checkpoint_config(task, net, config, info),
            "command": f"CNNAgent.learn(**{overrides!r}) from the recipe of: "
            f"{self.model_config.get('command')}",
        }
        return self

    def checkpoint_config(self) -> dict[str, Any]:
        """The model's configuration (its training env, recipe, architecture and command)."""
        return {**self.model_config, "agent": "cnn_004", "hparams": {}}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The network's tensors (weights and batch-norm statistics)."""
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the network's tensors."""
        try:
            self.net.load_state_dict(state)
        except (RuntimeError, KeyError) as exc:
            raise CheckpointError(f"CNN state does not fit: {exc}; {CNN_TRAIN_COMMAND}") from exc

    @property
    def num_parameters(self) -> int:
        """Number of learned scalars of the network."""
        return self.net.num_parameters

    def solve(self, known: ModularUplinkKnown) -> torch.Tensor:
        """Feasible ``[batch, P, N, L]`` panels: the CNN's output, hard-projected."""
        if not isinstance(known, ModularUplinkKnown):
            raise ValueError(
                f"cnn_004 takes task.known(instance) (a ModularUplinkKnown), got "
                f"{type(known).__name__}"
            )
        with torch.no_grad():
            W = self.net(known.H_est.to(self.task.device))
        return self.task.project(W.to(self.task.cdtype))
