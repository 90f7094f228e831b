r"""Training of paper 003's unfolded PGA (Sec. III-B1, Sec. IV), checkpoints and their loading.

The paper's recipe (Sec. IV) is the default of :class:`UnfoldedPGATrainConfig`: step sizes
initialized at :math:`\mu = 0.01`, :math:`\lambda = 10^{-4}`, Adam with learning rate
:math:`10^{-3}` decayed by 0.97 per epoch, 500 training channels, 20 epochs, the unsupervised
loss eq. (14) (negative mean sum-rate of the output). The paper does not give the minibatch
size (default 10 here), the number of inner analog steps ``J`` (default 5) or the training SNR
(default 10 dB, the setting of Fig. 2(a) and the env's default).

Improved recipe (an option, chosen on the VALIDATION seed, never on the test seed): with the
paper's learning rate the steps move by at most about 1e-3 per Adam step, so after 20 epochs
they are still about an order of magnitude below the constant steps that a grid search finds
for the same ``I`` (``mu`` about 1, ``lambda`` about 1e-2 at 10 dB). ``init="tuned"`` first
grid-searches constant ``(mu, lambda)`` for this ``I`` and ``J`` on the training channels
(:func:`agents.classical.pga_hybrid.tune_pga_steps`) and starts every layer there, and
``parametrization="log"`` with a larger learning rate lets Adam make relative updates; see
the committed models' ``config.json`` and BENCHMARKS.md for the numbers.

Data: the training channels are ``make_instance_set(env, n_train, seed)`` with the training
seed, reshuffled every epoch by a generator seeded from it; the validation channels use
``val_seed`` (default the harness's ``VALIDATION_SEED`` 2_000_003). The test seed 1_000_003
is rejected for both.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from agents.classical.pga_hybrid import tune_pga_steps
from agents.cli import add_dataclass_arguments, dataclass_from_args, train_command
from agents.pretrained import (
    Checkpoint,
    CheckpointError,
    env_config_dict,
    read_checkpoint,
    write_checkpoint,
)
from agents.rules.pga import PAPER_LAMBDA, PAPER_MU
from agents.runs import Panel, Series, progress_bar, run_parser, write_run
from agents.unfolded_pga.model import LOSSES, PARAMETRIZATIONS, UnfoldedPGA, unfolded_pga_loss
from beamgym.datasets import make_instance_set, make_task
from beamgym.envs.base import BeamformingTask
from beamgym.physics.metrics import hybrid_sum_rate

__all__ = [
    "COMMITTED_RECIPE",
    "ENV_ID",
    "INITS",
    "TEST_SEED",
    "VALIDATION_SEED",
    "UnfoldedPGATrainConfig",
    "checkpoint_config",
    "evaluate_model",
    "load_checkpoint",
    "main",
    "model_from_checkpoint",
    "make_train_task",
    "save_checkpoint",
    "train_unfolded_pga",
]

ENV_ID = "beamgym/FarFieldHybrid-v0"
#: The harness's fixed test seed (examples/evaluate.py): never trained or tuned on.
TEST_SEED = 1_000_003
#: The harness's validation seed (examples/evaluate.py).
VALIDATION_SEED = 2_000_003
#: Step-size initializations: the paper's fixed steps, or constant steps grid-tuned for I.
INITS: tuple[str, ...] = ("paper", "tuned")
#: Trainer options of the committed models' (improved) recipe (``train_command`` options).
COMMITTED_RECIPE: dict[str, Any] = {
    "init": "tuned",
    "parametrization": "log",
    "lr": 0.03,
    "batch_size": 25,
    "epochs": 60,
}
#: Step grids of ``init="tuned"`` (steps multiply eq. (10)-(11) as printed).
TUNE_MU_GRID: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0)
TUNE_LAMBDA_GRID: tuple[float, ...] = (1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2)


def _snr_tuple(v: Any) -> tuple[float, ...]:
    vals = (v,) if isinstance(v, int | float) and not isinstance(v, bool) else tuple(v)
    if not vals or not all(
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in vals
    ):
        raise ValueError(f"snr_db must be a finite number or a non-empty set of them, got {v!r}")
    return tuple(float(x) for x in vals)


@dataclasses.dataclass(frozen=True)
class UnfoldedPGATrainConfig:
    r"""Configuration of :func:`train_unfolded_pga` (defaults: paper 003 Sec. IV).

    Attributes:
        I: Layers (outer PGA iterations); paper Fig. 2: 10.
        J: Inner analog steps per layer (not given in the paper; default 5).
        N: BS antennas (paper: 32).
        K: Users = RF chains ``M`` (paper: 4).
        n_paths: Paths per user ``P`` of eq. (2) (paper: 10).
        normalization: Channel scaling of eq. (2): ``"paper"`` (E||h||^2 = P) or ``"scaled"``.
        snr_db: Training SNR(s) in dB (P_t = SNR, sigma_n^2 = 1). One value, or a set drawn
            uniformly per channel (a model serving all SNRs). Default 10 dB (Fig. 2(a)).
        n_train: Training channels (paper: 500).
        epochs: Passes over the training channels (paper: 20).
        batch_size: Channels per Adam step (not given in the paper; default 10).
        lr: Adam's initial learning rate (paper: 1e-3).
        lr_decay: Learning-rate factor per epoch (paper: 0.97).
        loss: ``"output"`` (paper eq. (14)) or ``"layer-sum"`` (all layer outputs).
        parametrization: ``"linear"`` (paper) or ``"log"`` step sizes.
        init: ``"paper"`` (mu = 0.01, lambda = 1e-4, Sec. IV) or ``"tuned"`` (constant steps
            grid-searched for this I and J on the training channels).
        mu_init: Initial analog step for ``init="paper"``.
        lam_init: Initial digital step for ``init="paper"``.
        seed: Training seed (training channels and shuffling); not the test or validation seed.
        n_val: Validation channels scored every epoch.
        val_seed: Seed of the validation channels.
        precision: ``"single"`` or ``"double"`` training precision.
    """

    I: int = 10  # noqa: E741
    J: int = 5
    N: int = 32
    K: int = 4
    n_paths: int = 10
    normalization: str = "paper"
    snr_db: tuple[float, ...] = (10.0,)
    n_train: int = 500
    epochs: int = 20
    batch_size: int = 10
    lr: float = 1e-3
    lr_decay: float = 0.97
    loss: str = "output"
    parametrization: str = "linear"
    init: str = "paper"
    mu_init: float = PAPER_MU
    lam_init: float = PAPER_LAMBDA
    seed: int = 1
    n_val: int = 500
    val_seed: int = VALIDATION_SEED
    precision: str = "single"

    def __post_init__(self) -> None:
        for name in ("I", "J", "N", "K", "n_paths", "n_train", "epochs", "batch_size", "n_val"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if self.N < self.K:
            raise ValueError(f"paper 003 needs N >= K antennas, got N={self.N} < K={self.K}")
        object.__setattr__(self, "snr_db", _snr_tuple(self.snr_db))
        for name in ("lr", "mu_init", "lam_init"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.parametrization not in PARAMETRIZATIONS:
            raise ValueError(
                f"parametrization must be one of {PARAMETRIZATIONS}, got {self.parametrization!r}"
            )
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.normalization not in ("paper", "scaled"):
            raise ValueError(
                f"normalization must be 'paper' or 'scaled', got {self.normalization!r}"
            )
        if self.precision not in ("single", "double"):
            raise ValueError(f"precision must be 'single' or 'double', got {self.precision!r}")
        for name in ("seed", "val_seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        if TEST_SEED in (self.seed, self.val_seed):
            raise ValueError(f"seed {TEST_SEED} is the harness's test seed: never train on it")
        if self.seed == self.val_seed:
            raise ValueError("the training seed must differ from the validation seed")

    def env_kwargs(self) -> dict[str, Any]:
        """Keywords of the FarFieldHybrid-v0 configuration the model is trained for."""
        snr: float | tuple[float, ...] = (
            self.snr_db[0] if len(self.snr_db) == 1 else tuple(self.snr_db)
        )
        return {
            "analog": "phase-shifter",
            "N": self.N,
            "N_RF": self.K,
            "K": self.K,
            "n_paths": self.n_paths,
            "normalization": self.normalization,
            "csi_error": "perfect",
            "snr_db": snr,
        }


def make_train_task(config: UnfoldedPGATrainConfig) -> BeamformingTask:
    """The FarFieldHybrid-v0 phase-shifter task the configuration trains on."""
    return make_task(ENV_ID, precision=config.precision, **config.env_kwargs())


def evaluate_model(model: UnfoldedPGA, instances: Any) -> list[float]:
    """Mean sum-rate (bit/s/Hz, true channel) of every layer output on ``instances``."""
    with torch.no_grad():
        outs = model(instances.H_est, instances.power, instances.noise_var)
        return [
            float(hybrid_sum_rate(instances.H, bf.analog, bf.digital, instances.noise_var).mean())
            for bf in outs
        ]


def train_unfolded_pga(
    config: UnfoldedPGATrainConfig,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> tuple[UnfoldedPGA, dict[str, Any]]:
    r"""Train the step sizes of :class:`UnfoldedPGA` (paper 003 Sec. III-B1, Sec. IV).

    Each epoch reshuffles the ``n_train`` training channels, takes one Adam step per minibatch
    on the loss eq. (14) (:func:`~agents.unfolded_pga.model.unfolded_pga_loss`), decays the
    learning rate by ``lr_decay`` and scores the model on the validation channels. The rate
    of the loss is computed on the training channels' true channel (perfect CSI here, so
    equal to the estimate); the model itself only sees the estimate.

    Args:
        config: The training configuration.
        progress: Called after every epoch with that epoch's log row.

    Returns:
        ``(model, history)``: the trained model (eval mode) and ``{"epochs": [rows],
        "init": {...}, "val_start": [rates per layer], "val_final": [...]}``; each row has
        ``epoch``, ``lr``, ``loss``, ``train_rate`` (mean over the epoch's minibatches,
        before each step), ``val_rate`` (output layer), ``seconds``.
    """
    task = make_train_task(config)
    kw = config.env_kwargs()
    train = make_instance_set(
        ENV_ID, n=config.n_train, seed=config.seed, precision=config.precision, **kw
    ).instances
    val = make_instance_set(
        ENV_ID, n=config.n_val, seed=config.val_seed, precision=config.precision, **kw
    ).instances
    init: dict[str, Any] = {"mode": config.init}
    mu0, lam0 = config.mu_init, config.lam_init
    if config.init == "tuned":
        t0 = time.perf_counter()
        res = tune_pga_steps(
            task, train, I=config.I, J=config.J, mus=TUNE_MU_GRID, lams=TUNE_LAMBDA_GRID
        )
        mu0, lam0 = res.mu, res.lam
        init.update(
            mu=res.mu, lam=res.lam, train_rate=res.mean_rate, seconds=time.perf_counter() - t0
        )
    else:
        init.update(mu=mu0, lam=lam0)
    model = UnfoldedPGA(
        config.I,
        config.J,
        mu_init=mu0,
        lam_init=lam0,
        parametrization=config.parametrization,
        dtype=task.rdtype,
    )
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=config.lr_decay)
    gen = torch.Generator().manual_seed(config.seed + 7_919)
    val_start = evaluate_model(model, val)
    rows: list[dict[str, float]] = []
    t_start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        perm = torch.randperm(config.n_train, generator=gen)
        losses, rates = [], []
        lr = opt.param_groups[0]["lr"]
        for s in range(0, config.n_train, config.batch_size):
            batch = train[perm[s : s + config.batch_size]]
            outs = model(batch.H_est, batch.power, batch.noise_var)
            loss = unfolded_pga_loss(outs, batch.H, batch.noise_var, loss=config.loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            rates.append(
                float(-loss.detach()) if config.loss == "output" else _output_rate(outs, batch)
            )
        sched.step()
        model.eval()
        row = {
            "epoch": epoch,
            "lr": lr,
            "loss": sum(losses) / len(losses),
            "train_rate": sum(rates) / len(rates),
            "val_rate": evaluate_model(model, val)[-1],
            "seconds": time.perf_counter() - t_start,
        }
        rows.append(row)
        if progress is not None:
            progress(row)
    model.eval()
    history = {
        "epochs": rows,
        "init": init,
        "val_start": val_start,
        "val_final": evaluate_model(model, val),
    }
    return model, history


def _output_rate(outs: list[Any], batch: Any) -> float:
    bf = outs[-1]
    with torch.no_grad():
        return float(hybrid_sum_rate(batch.H, bf.analog, bf.digital, batch.noise_var).mean())


# ---- checkpoints ----------------------------------------------------------------------------
def checkpoint_config(
    config: UnfoldedPGATrainConfig, history: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``config.json`` content of a model trained with ``config`` (:mod:`agents.pretrained`)."""
    task = make_train_task(config)
    out: dict[str, Any] = {
        "agent": "unfolded_pga",
        "env_id": ENV_ID,
        "env_kwargs": task.env_kwargs,
        "env_config": env_config_dict(task),
        "hparams": {},
        "train_config": {**dataclasses.asdict(config), "snr_db": list(config.snr_db)},
    }
    if history:
        out.update(
            init=history.get("init"),
            val_rate_per_layer_start=history.get("val_start"),
            val_rate_per_layer_final=history.get("val_final"),
        )
    return out


def save_checkpoint(
    path: str | Path,
    model: UnfoldedPGA,
    config: UnfoldedPGATrainConfig,
    history: dict[str, Any] | None = None,
) -> Path:
    """Write a model folder (weights-only ``checkpoint.pt`` and ``config.json``)."""
    return write_checkpoint(path, model.state_dict(), checkpoint_config(config, history))


def model_from_checkpoint(ckpt: Checkpoint, command: str) -> UnfoldedPGA:
    """Rebuild the :class:`UnfoldedPGA` of a checkpoint (raises CheckpointError)."""
    try:
        cfg = UnfoldedPGATrainConfig(**ckpt.config["train_config"])
        model = UnfoldedPGA(cfg.I, cfg.J, parametrization=cfg.parametrization)
        model.load_state_dict({k: v.to(torch.float32) for k, v in ckpt.state.items()})
    except (TypeError, ValueError, RuntimeError, KeyError, AttributeError) as exc:
        raise CheckpointError(
            f"{ckpt.path} does not fit the unfolded PGA ({exc}); retrain with: {command}"
        ) from exc
    return model.eval()


def load_checkpoint(
    path: str | Path, command: str | None = None
) -> tuple[UnfoldedPGA, UnfoldedPGATrainConfig, dict[str, Any]]:
    """Load a model folder written by :func:`save_checkpoint`: ``(model, config, config_json)``.

    The parameters come back in float32; use ``model.double()`` for complex128 channels (the
    agent casts the steps to the channel's precision itself).

    Raises:
        CheckpointError: Missing, unreadable or unsafe file, or parameters that do not fit
            the stored configuration; the message names the file and the train command.
    """
    path = Path(path)
    command = command or train_command("unfolded_pga", ENV_ID)
    if not (path.is_file() or (path / "checkpoint.pt").is_file()):
        raise CheckpointError(f"no unfolded-PGA checkpoint at {path}; train one with: {command}")
    try:
        ckpt = read_checkpoint(path, agent="unfolded_pga")
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; retrain with: {command}") from exc
    model = model_from_checkpoint(ckpt, command)
    return model, UnfoldedPGATrainConfig(**ckpt.config["train_config"]), ckpt.config


# ---- command line (examples/train.py --agent unfolded_pga ...) -------------------------------
#: Columns of ``train_log.csv``.
LOG_FIELDS = ("epoch", "lr", "loss", "train_rate", "val_rate", "seconds")


def main(argv: Sequence[str]) -> Path:
    r"""``examples/train.py --agent unfolded_pga ...``: train and write a model folder.

    Usage::

        python examples/train.py --agent unfolded_pga --env beamgym/FarFieldHybrid-v0
        python examples/train.py --agent unfolded_pga --snr-db 20 --init tuned \\
            --parametrization log --lr 0.03 --batch-size 25 --epochs 60 --out runs/upga20

    Defaults are the paper's recipe (Sec. IV: mu = 0.01, lambda = 1e-4, Adam lr 1e-3 decayed
    0.97 per epoch, 500 channels, 20 epochs, loss eq. (14)) at N=32, K=M=4, 10 paths, 10 dB,
    with I=10 layers and J=5 inner analog steps; every field of
    :class:`UnfoldedPGATrainConfig` is an option (the env keywords among them). Writes the
    model folder of :func:`agents.runs.write_run` to ``--out`` (default
    ``runs/unfolded_pga``); ``config.json`` also holds the validation rates per layer before
    and after training and the learned steps; ``train_log.csv`` has one row per epoch.

    Returns:
        The output folder.
    """
    argv = [str(a) for a in argv]
    p = run_parser(
        ("unfolded_pga",),
        (ENV_ID,),
        "Train paper 003's unfolded PGA (Sec. III-B).",
        env_kw=False,
    )
    add_dataclass_arguments(
        p.add_argument_group("training (UnfoldedPGATrainConfig)"), UnfoldedPGATrainConfig
    )
    ns = p.parse_args(argv)
    try:
        config = dataclass_from_args(UnfoldedPGATrainConfig, ns)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc
    torch.set_num_threads(max(1, ns.threads or 1))
    rows: list[dict[str, Any]] = []
    bar = progress_bar(config.epochs, ns.agent, not ns.no_progress)

    def progress(row: dict[str, float]) -> None:
        rows.append(row)
        bar(val=f"{row['val_rate']:.3f}", train=f"{row['train_rate']:.3f}")

    t0 = time.perf_counter()
    model, history = train_unfolded_pga(config, progress=progress)
    seconds = time.perf_counter() - t0
    bar.close()  # type: ignore[attr-defined]
    mu, lam = model.steps()
    ep = [r["epoch"] for r in rows]
    layers = list(range(len(history["val_start"])))
    out = write_run(
        ns.out or Path("runs") / ns.agent,
        state=model.state_dict(),
        config={
            **checkpoint_config(config, history),
            "mu": mu.detach().tolist(),
            "lam": lam.detach().tolist(),
        },
        argv=argv,
        seconds=seconds,
        rows=rows,
        fields=LOG_FIELDS,
        panels=(
            Panel(
                "training, eq. (14)",
                "epoch",
                "sum-rate of layer I (bit/s/Hz)",
                [
                    Series("train (minibatch mean)", ep, [r["train_rate"] for r in rows]),
                    Series("validation", ep, [r["val_rate"] for r in rows]),
                ],
            ),
            Panel(
                "per layer",
                "layer i",
                "validation sum-rate (bit/s/Hz)",
                [
                    Series("before training", layers, history["val_start"]),
                    Series("after training", layers, history["val_final"]),
                ],
            ),
        ),
    )
    print(
        f"trained {ns.agent} in {seconds:.1f} s: validation rate "
        f"{history['val_start'][-1]:.4f} -> {history['val_final'][-1]:.4f} bit/s/Hz -> {out}"
    )
    return out
