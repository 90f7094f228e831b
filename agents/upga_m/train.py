r"""Training of U-PGA+M, paper 004 Algorithm 2 (Sec. III-B2) and Sec. IV-D3, on ModularUplink-v0.

Algorithm 2: :math:`\boldsymbol\theta` starts as fixed hyperparameters (``init="grid"``: the
constant :math:`(\mu, \beta)` that :func:`~agents.classical.modular.grid_search_pga_m` picks for
the same ``J`` on the training channels, i.e. the fair PGA+M baseline; ``init="fixed"``:
``init_mu``, ``init_beta``); then for ``epochs`` epochs the training set
:math:`\mathcal D` (``n_train`` channels drawn once from the ``seed`` generator) is randomly
divided into mini-batches and :math:`\boldsymbol\theta` takes one optimizer step per batch on
the loss of Sec. III-B2 / eq. (25) (:func:`~agents.upga_m.model.upga_m_loss`) through the
surrogate projections (:func:`~agents.upga_m.model.surrogate_projection`).

Choices (documented; the paper gives no values in the text):

* optimizer: Adam (Algorithm 2 prints plain SGD, :math:`\theta \leftarrow \theta - \eta\nabla`;
  Adam is the usual realization) with per-group learning rates ``lr * |mu_0|`` for the steps,
  ``lr`` for the momenta and ``lr * lam_lr_scale`` for the ℓ1 weights (the three live on
  different scales), decayed by ``lr_decay`` per epoch;
* random starts: every training sample draws a fresh random unit-modulus :math:`\mathbf W_0`
  per epoch from the training generator (inference uses the classical solvers' seeded start);
* sharpness: :math:`s_m, s_p` anneal geometrically from ``sharpness`` to ``sharpness_final``
  over the epochs (the surrogate tightens towards the hard projection, Fig. 4);
* model selection: after every epoch the model runs with the **hard** projections on
  ``n_val`` validation channels (seed ``val_seed``, never the test seed); the best epoch is
  kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from agents.classical.modular import DEFAULT_BETAS, WIDE_MUS, grid_search_pga_m
from agents.cli import add_dataclass_arguments, dataclass_from_args
from agents.pretrained import env_config_dict, read_checkpoint, write_checkpoint
from agents.rules.pga_momentum import random_unit_modulus_panels
from agents.runs import loss_and_rate_panels, progress_bar, run_parser, write_run
from agents.upga_m.model import (
    ENV_ID,
    WEIGHTINGS,
    init_theta,
    unfolded_pga_m,
    upga_m_loss,
)
from beamgym._validation import check_int, check_nonnegative, check_number, check_positive
from beamgym.envs.modular_uplink import ModularUplinkInstance, ModularUplinkTask

__all__ = [
    "INITS",
    "UPGAMTrainConfig",
    "checkpoint_config",
    "env_options",
    "evaluate_theta",
    "main",
    "save_checkpoint",
    "train_upga_m",
]

#: How theta is initialized: grid-searched constant PGA+M for J, given constants, or the
#: parameters of an earlier U-PGA+M checkpoint (fine-tuning).
INITS: tuple[str, ...] = ("grid", "fixed", "checkpoint")
#: Default validation seed (examples/evaluate.py VALIDATION_SEED).
VALIDATION_SEED = 2_000_003


@dataclasses.dataclass(frozen=True)
class UPGAMTrainConfig:
    """Configuration of :func:`train_upga_m` (Algorithm 2)."""

    J: int = 10
    """Number of unfolded layers J (paper: 10)."""
    epochs: int = 30
    """Epochs i_max of Algorithm 2."""
    n_train: int = 2048
    """Size |D| of the training set (channels, drawn once)."""
    batch_size: int = 64
    """Mini-batch size |D_q|."""
    lr: float = 0.05
    """Relative Adam learning rate (see the module docstring)."""
    lr_decay: float = 0.95
    """Per-epoch multiplicative decay of the learning rate."""
    lam_lr_scale: float = 0.1
    """Learning rate of the l1 weights lambda_j relative to ``lr``."""
    init: str = "grid"
    """``"grid"``: grid-searched constant PGA+M for J; ``"fixed"``: init_mu, init_beta."""
    init_mu: float = 20.0
    """Initial step (``init="fixed"``) on 2 x eq. (9)."""
    init_beta: float = 0.495
    """Initial momentum (``init="fixed"``)."""
    init_lam: float = 0.0
    """Initial per-entry l1 weight lambda_j (sparse constraints)."""
    init_checkpoint: str = ""
    """U-PGA+M checkpoint whose theta starts the training (``init="checkpoint"``)."""
    grid_channels: int = 128
    """Training channels the initial grid search uses (the first ones of D)."""
    weighting: str = "log"
    """Layer weighting of the loss: ``"log"`` (Sec. III-B2, default) or ``"final"`` (eq. 12)."""
    gamma: float = 0.0
    """Weight gamma of eq. (25)'s l1 target term (sparse constraints)."""
    sharpness: float = 10.0
    """Initial surrogate sharpness s_m = s_p of eq. (22)-(23)."""
    sharpness_final: float = 10.0
    """Final sharpness (geometric annealing over the epochs)."""
    n_val: int = 256
    """Validation channels (model selection with hard projections)."""
    val_seed: int = VALIDATION_SEED
    """Seed of the validation channels and starts (never the test seed)."""
    seed: int = 0
    """Seed of the training generator (channels, batches, random starts)."""

    def __post_init__(self) -> None:
        for name in ("J", "epochs", "n_train", "batch_size", "grid_channels", "n_val"):
            check_int(getattr(self, name), name)
        check_int(self.seed, "seed", minimum=0)
        check_int(self.val_seed, "val_seed", minimum=0)
        for name in ("lr", "lam_lr_scale", "sharpness", "sharpness_final"):
            check_positive(getattr(self, name), name)
        check_nonnegative(self.gamma, "gamma")
        check_nonnegative(self.init_lam, "init_lam")
        check_number(self.init_mu, "init_mu")
        check_number(self.init_beta, "init_beta")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ValueError(f"lr_decay must lie in (0, 1], got {self.lr_decay}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if (self.init == "checkpoint") != bool(self.init_checkpoint):
            raise ValueError(
                "init='checkpoint' and init_checkpoint=PATH go together (fine-tuning a model)"
            )
        if self.batch_size > self.n_train:
            raise ValueError(
                f"batch_size = {self.batch_size} exceeds n_train = {self.n_train}; lower it"
            )


def _sharpness(cfg: UPGAMTrainConfig, epoch: int) -> float:
    if cfg.epochs == 1:
        return cfg.sharpness_final
    t = epoch / (cfg.epochs - 1)
    return math.exp((1 - t) * math.log(cfg.sharpness) + t * math.log(cfg.sharpness_final))


def evaluate_theta(
    task: ModularUplinkTask,
    instances: ModularUplinkInstance,
    theta: dict[str, torch.Tensor],
    *,
    seed: int = 0,
    chunk: int = 512,
) -> dict[str, Any]:
    """Hard-projection rates of ``theta`` on ``instances`` (true channel), per layer.

    Returns:
        ``{"rate_per_layer": [J + 1 floats], "rate": float, "active": float}``: mean
        per-user nats of every layer output and of ``W_J``, and the mean active count.
    """
    n = instances.batch_size
    W0 = random_unit_modulus_panels(
        seed, n, task.panel_shape, dtype=task.cdtype, device=task.device
    )
    per_layer, active = [], []
    with torch.no_grad():
        for lo in range(0, n, chunk):
            inst = instances[lo : lo + chunk]
            its, _, _ = unfolded_pga_m(task, task.known(inst), theta, W0[lo : lo + chunk])
            per_layer.append(torch.stack([task.evaluate(W, inst)["metric"] for W in its]))
            active.append(task.evaluate(its[-1], inst)["active_phase_shifters"].double())
    curve = torch.cat(per_layer, dim=1).double().mean(1).tolist()
    return {"rate_per_layer": curve, "rate": curve[-1], "active": float(torch.cat(active).mean())}


def train_upga_m(
    task: ModularUplinkTask,
    config: UPGAMTrainConfig,
    *,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]], dict[str, Any]]:
    """Algorithm 2: learn theta of eq. (11) / (21) on the task's channel distribution.

    Args:
        task: ModularUplink-v0 task (fixes sizes, constraint, SNR set, precision).
        config: Training configuration.
        progress: Optional callback receiving each epoch's log row.

    Returns:
        ``(theta, history, info)``: the best-validation parameters (CPU tensors), one log row
        per epoch (``epoch, loss, train_rate, val_rate, val_active, sharpness, lr``; epoch 0 is
        the initialization) and ``info`` (initial constants, grid table, best epoch).
    """
    if not isinstance(task, ModularUplinkTask):
        raise ValueError(f"U-PGA+M trains on {ENV_ID}, got {type(task).__name__}")
    cfg = config
    c = task.config
    sparse = c.constraint in ("sparse", "sparse_quantized")
    if cfg.gamma > 0 and not sparse:
        raise ValueError(
            f"gamma > 0 (eq. 25's l1 target) needs a sparse constraint, the env has "
            f"constraint={c.constraint!r}; use gamma=0"
        )
    s_max = float(c.s_max if c.s_max is not None else c.num_phase_shifters)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    train = task.sample(gen, cfg.n_train)
    val = task.sample(torch.Generator(device="cpu").manual_seed(cfg.val_seed), cfg.n_val)
    info: dict[str, Any] = {}
    if cfg.init == "grid":
        mu0, beta0, table = grid_search_pga_m(
            task,
            train[: min(cfg.grid_channels, cfg.n_train)],
            cfg.J,
            WIDE_MUS,
            DEFAULT_BETAS,
            seed=cfg.seed,
        )
        info["grid_table"] = table
    elif cfg.init == "checkpoint":
        ckpt = read_checkpoint(cfg.init_checkpoint)
        start = {k: v.to(device=task.device, dtype=task.rdtype) for k, v in ckpt.state.items()}
        if tuple(start["alpha"].shape) != (cfg.J, *task.panel_shape):
            raise ValueError(
                f"init_checkpoint holds theta of shape {tuple(start['alpha'].shape)}, training "
                f"needs {(cfg.J, *task.panel_shape)}"
            )
        mu0, beta0 = (float(ckpt.config["init"][k]) for k in ("init_mu", "init_beta"))
    else:
        mu0, beta0 = cfg.init_mu, cfg.init_beta
    info.update(init_mu=mu0, init_beta=beta0, init_lam=cfg.init_lam)
    theta = init_theta(
        cfg.J,
        task.panel_shape,
        mu=mu0,
        beta=beta0,
        lam=cfg.init_lam,
        dtype=task.rdtype,
        device=task.device,
    )
    if cfg.init == "checkpoint":
        theta = start
    params = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
    groups = [
        {"params": [params["alpha"]], "lr": cfg.lr * max(abs(mu0), 1e-2)},
        {"params": [params["beta"]], "lr": cfg.lr},
    ]
    if sparse:
        groups.append({"params": [params["lam"]], "lr": cfg.lr * cfg.lam_lr_scale})
    opt = torch.optim.Adam(groups)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)

    def snapshot() -> dict[str, torch.Tensor]:
        return {k: v.detach().clone().cpu() for k, v in params.items()}

    ev = evaluate_theta(task, val, snapshot(), seed=cfg.val_seed)
    best, best_rate, best_epoch = snapshot(), ev["rate"], 0
    history = [
        {
            "epoch": 0,
            "loss": float("nan"),
            "train_rate": float("nan"),
            "val_rate": ev["rate"],
            "val_active": ev["active"],
            "sharpness": _sharpness(cfg, 0),
            "lr": cfg.lr,
            "seconds": 0.0,
        }
    ]
    if progress is not None:
        progress(history[-1])
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        s = _sharpness(cfg, epoch - 1)
        perm = torch.randperm(cfg.n_train, generator=gen)
        W0_all = random_unit_modulus_panels(
            int(torch.randint(0, 2**31 - 1, (1,), generator=gen)),
            cfg.n_train,
            task.panel_shape,
            dtype=task.cdtype,
            device=task.device,
        )
        losses, rates = [], []
        n_batches = cfg.n_train // cfg.batch_size
        for q in range(n_batches):
            idx = perm[q * cfg.batch_size : (q + 1) * cfg.batch_size].to(task.device)
            inst = train[idx]
            its, r, _ = unfolded_pga_m(
                task,
                task.known(inst),
                params,
                W0_all[idx],
                soft=True,
                sharpness_m=s,
                sharpness_p=s,
            )
            loss, stats = upga_m_loss(
                r, its[-1], c.K, gamma=cfg.gamma, s_max=s_max, weighting=cfg.weighting
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            rates.append(stats["rate_J"])
        sched.step()
        ev = evaluate_theta(task, val, snapshot(), seed=cfg.val_seed)
        if ev["rate"] > best_rate:
            best, best_rate, best_epoch = snapshot(), ev["rate"], epoch
        row = {
            "epoch": epoch,
            "loss": sum(losses) / len(losses),
            "train_rate": sum(rates) / len(rates),
            "val_rate": ev["rate"],
            "val_active": ev["active"],
            "sharpness": s,
            "lr": opt.param_groups[1]["lr"],
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        if progress is not None:
            progress(row)
    info.update(best_epoch=best_epoch, best_val_rate=best_rate)
    return best, history, info


def checkpoint_config(
    agent: str,
    task: ModularUplinkTask,
    config: Any,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` content of a U-PGA+M model (:mod:`agents.pretrained`)."""
    out: dict[str, Any] = {
        "agent": agent,
        "env_id": ENV_ID,
        "env_kwargs": task.env_kwargs,
        "env_config": env_config_dict(task),
        "hparams": {},
        "train_config": dataclasses.asdict(config),
    }
    if info is not None:
        out["init"] = {k: float(info[k]) for k in ("init_mu", "init_beta", "init_lam")}
        out["best_epoch"] = int(info.get("best_epoch", 0))
    return out


def save_checkpoint(
    path: str | Path,
    agent: str,
    task: ModularUplinkTask,
    theta: dict[str, torch.Tensor],
    config: UPGAMTrainConfig,
    info: dict[str, Any],
) -> Path:
    """Write a model folder (weights-only float32 theta + ``config.json``); returns the ``.pt``."""
    state = {k: v.detach().cpu().float() for k, v in theta.items()}
    return write_checkpoint(path, state, checkpoint_config(agent, task, config, info))


# ---- command line (examples/train.py --agent upga_m|upga_m_sparse|upga_m_quantized) ----------
#: Agent -> (allowed constraints, default env keywords).
AGENTS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "upga_m": (("unconstrained",), {}),
    "upga_m_sparse": (
        ("sparse", "sparse_quantized"),
        {"P": 4, "L": 2, "N": 3, "B": 4, "K": 5, "constraint": "sparse", "s_max": 18},
    ),
    "upga_m_quantized": (("quantized",), {"constraint": "quantized"}),
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
#: The env keywords this trainer takes as options (``--P 8 --snr-db 0 10 ...``).
ENV_OPTIONS: tuple[str, ...] = (*_ENV_INTS, "snr_db", "constraint", "zeta", "s_max")


def env_options(env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Env keywords as this trainer's options, for :func:`agents.cli.train_command`.

    The trainer takes the ModularUplink-v0 keywords as options (``--P 8``), not as
    ``--env-kw``; keywords it has no option for (``rho_s``, ``csi_nmse_db``) are left out.
    """
    return {k: v for k, v in env_kwargs.items() if k in ENV_OPTIONS}


def _parser(agent: str) -> argparse.ArgumentParser:
    p = run_parser(
        (agent, *sorted(a for a in AGENTS if a != agent)),
        (ENV_ID,),
        "Train U-PGA+M (paper 004 Algorithm 2).",
        env_kw=False,
    )
    p.add_argument("--precision", default="single", choices=("single", "double"))
    env = p.add_argument_group("env (ModularUplink-v0 keywords; default: the agent's scenario)")
    for name in _ENV_INTS:
        env.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    env.add_argument("--snr-db", type=float, nargs="+", default=None)
    env.add_argument("--constraint", default=None)
    env.add_argument("--zeta", type=float, default=None)
    env.add_argument("--s-max", type=int, default=None)
    add_dataclass_arguments(
        p.add_argument_group("training (UPGAMTrainConfig)"),
        UPGAMTrainConfig,
        defaults={**dataclasses.asdict(UPGAMTrainConfig()), **TRAIN_DEFAULTS.get(agent, {})},
    )
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


def main(argv: Sequence[str]) -> Path:
    r"""``examples/train.py --agent upga_m|upga_m_sparse|upga_m_quantized ...``.

    Usage::

        python examples/train.py --agent upga_m --env beamgym/ModularUplink-v0
        python examples/train.py --agent upga_m --P 8 --L 1 --N 4 --K 5 --out runs/scenario4
        python examples/train.py --agent upga_m_sparse --P 4 --L 2 --N 3 --B 4 --K 5 \\
            --constraint sparse --s-max 18
        python examples/train.py --agent upga_m_quantized --constraint quantized

    ``upga_m``, ``upga_m_sparse`` and ``upga_m_quantized`` share Algorithm 2 (the variants
    differ by the env's ``--constraint``, which must fit the agent). The env keywords
    (``--T --P --L --N --B --K --snr-db --constraint --zeta --s-max --q-levels
    --connectivity-blocks``, :func:`env_options`) default to the agent's committed scenario;
    every field of :class:`UPGAMTrainConfig` is an option. Writes the model folder of
    :func:`agents.runs.write_run` to ``--out`` (default ``runs/<agent>``); ``train_log.csv``
    has one row per epoch (loss, train rate, validation rate with the hard projections,
    active phase shifters).

    Returns:
        The output folder.
    """
    import beamgym  # noqa: F401  (registers the envs)
    from beamgym.datasets import make_task

    argv = [str(a) for a in argv]
    agent = _agent_of(argv)
    if agent not in AGENTS:
        raise SystemExit(f"error: --agent must be one of {sorted(AGENTS)}, got {agent!r}")
    ns = _parser(agent).parse_args(argv)
    torch.set_num_threads(ns.threads or 1)
    try:
        kw = _env_kwargs(ns)
        task = make_task(ENV_ID, precision=ns.precision, **kw)
        config = dataclass_from_args(UPGAMTrainConfig, ns)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc
    bar = progress_bar(config.epochs, agent, not ns.no_progress)

    def progress(row: dict[str, Any]) -> None:
        if row["epoch"] > 0:
            bar(val=f"{row['val_rate']:.4f}")

    t0 = time.perf_counter()
    theta, history, info = train_upga_m(task, config, progress=progress)
    state = {k: v.detach().cpu().float() for k, v in theta.items()}
    meta = checkpoint_config(ns.agent, task, config, info)
    seconds = time.perf_counter() - t0
    bar.close()  # type: ignore[attr-defined]
    meta["result"] = {k: v for k, v in info.items() if k != "grid_table"}
    out = write_run(
        ns.out or Path("runs") / ns.agent,
        state=state,
        config=meta,
        argv=argv,
        seconds=seconds,
        rows=history,
        fields=LOG_FIELDS,
        panels=loss_and_rate_panels(
            f"{ns.agent} ({ENV_ID})", history, "rate at J (per-user nats)", "train (surrogate)"
        ),
    )
    print(f"trained {ns.agent} in {seconds:.1f} s -> {out}")
    return out
