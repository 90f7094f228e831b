r"""End-to-end training of KD-EDN+ (:mod:`agents.kd_edn_plus.model`, issue 11 item 3).

Every step draws a fresh batch of the env over the SNR set (one SNR per instance), runs
EXACTLY the inference pipeline (user encoder with the straight-through quantizer, the link
with fresh errors, the channel decoder, error-aware MMSE and the learned GA steps on
:math:`\hat{\mathbf H}`; no oracle steps on the true channel) and minimizes

.. math:: L = -\frac{R(\mathbf H, \mathbf W)}{R(\mathbf H, \mathbf W_T)}
          + \lambda_{\rm kd}\,\frac{d(\mathbf W, \mathbf W_T)}{P}
          + \lambda_{\rm nmse}\,\mathrm{NMSE}(\mathbf H, \hat{\mathbf H})

averaged over the batch: the TRUE-channel sum-rate of the deployed beamformer relative to
the MMSE teacher :math:`\mathbf W_T` (paper 000 Sec. III-B2, perfect CSI of the true
channel), the distillation distance :math:`d = \sum_k \|\mathbf w_k\|^2 + \|\mathbf
w_{T,k}\|^2 - 2|\mathbf w_k^H\mathbf w_{T,k}|` (each user's beam phase is free: the feedback
removes the common phase), and the per-user phase-invariant reconstruction NMSE.

The model starts as ``beamspace_feedback`` (model docstring); every ``val_every`` steps the
sum-rate at each SNR knot is measured on fixed validation instances (seed
:data:`VALIDATION_SEED`, never the test seed, one fixed link draw) and the best state, the
untrained start included, is kept: by the mean over the knots (``selection="mean"``), by
the smallest gain over the start at any knot (``"worst"``: no SNR may lose on validation),
or knot by knot for the per-SNR tables (``"knot"``, with the shared parts frozen).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from agents.cli import add_dataclass_arguments, dataclass_from_args, parse_env_kwargs
from agents.kd_edn.train import KD_EDN_ENVS, training_view
from agents.kd_edn_plus.model import KNOT_TABLES, SNR_KNOTS, KDEDNPlus
from agents.pretrained import Checkpoint, env_config_dict, rebuild_model
from agents.rules.gradient import band_sum_rate
from agents.runs import Panel, Series, progress_bar, run_parser, write_run
from beamgym.datasets import make_instance_set
from beamgym.datasets import make_task as make_env_task
from beamgym.envs.base import BeamformingTask
from beamgym.physics.feedback import LINKS
from beamgym.physics.precoding import mmse_beamformer
from beamgym.physics.projections import normalize_power

__all__ = [
    "LOG_FIELDS",
    "VALIDATION_SEED",
    "KDEDNPlusTrainConfig",
    "build_model",
    "checkpoint_config",
    "main",
    "model_from_checkpoint",
    "SELECTIONS",
    "train_kd_edn_plus",
    "validation_rate",
    "validation_rates",
]

#: Seed of the validation instances (examples/evaluate.py's VALIDATION_SEED; not the test seed).
VALIDATION_SEED = 2_000_003
#: Criteria of the best state (:class:`KDEDNPlusTrainConfig`).
SELECTIONS: tuple[str, ...] = ("mean", "worst", "knot")
_TRAIN_HINT = "python examples/train.py --agent kd_edn_plus --env beamgym/FullyDigitalFDD-v0"


@dataclasses.dataclass(frozen=True)
class KDEDNPlusTrainConfig:
    r"""Configuration of :func:`train_kd_edn_plus`.

    Attributes:
        env_id: ``beamgym/FullyDigitalFDD-v0``, ``beamgym/FarFieldHybrid-v0`` (steering) or
            ``beamgym/NearFieldHybrid-v0``.
        env_kwargs: The env configuration (``snr_db`` excluded), e.g.
            ``{"placement": "spatial-division"}``.
        link: ``"noisy"`` (paper 000's link) or ``"noiseless"``.
        bits: Feedback budget per user (``beamspace_feedback``'s ``bits``, default 128).
        q_infer: GA steps :math:`Q_i` on :math:`\hat{\mathbf H}` (default 10).
        snr_db: Training SNR set in dB (one SNR per instance).
        hidden: Hidden width of the residual channel decoder.
        snr_gains: Per-SNR encoder gains (:class:`~agents.kd_edn_plus.model.KDEDNPlus`).
        steps: Adam steps.
        batch_size: Instances per step.
        lr: Adam learning rate of the scalar tables (gains, dequantizer, regularization, GA
            steps).
        lr_net: Adam learning rate of the residual channel decoder.
        kd_weight: :math:`\lambda_{\rm kd}`, weight of the distillation term.
        nmse_weight: :math:`\lambda_{\rm nmse}`, weight of the reconstruction NMSE.
        n_val: Validation instances per SNR knot.
        val_every: Steps between validations.
        keep_best: Keep the best state on validation, the untrained start included
            (``False``: the last state).
        selection: What "best" means: ``"mean"`` (the mean sum-rate over the SNR knots),
            ``"worst"`` (the smallest gain over the start at any knot, so that no SNR loses
            on validation) or ``"knot"`` (each knot's column of the SNR tables from the state
            best at that knot; needs ``freeze_shared``, so that the knots do not interact).
        freeze_shared: Train only the per-SNR tables (regularization, GA steps, and the
            per-SNR gains with ``snr_gains``); the shared encoder gains, dequantizer and
            residual decoder stay at their start.
        seed: Seed of the data, the link errors and the initial weights.
    """

    env_id: str = "beamgym/FullyDigitalFDD-v0"
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    link: str = "noisy"
    bits: int = 128
    q_infer: int = 10
    snr_db: tuple[float, ...] = SNR_KNOTS
    hidden: int = 64
    snr_gains: bool = False
    steps: int = 150
    batch_size: int = 64
    lr: float = 0.03
    lr_net: float = 1e-3
    kd_weight: float = 0.05
    nmse_weight: float = 0.05
    n_val: int = 64
    val_every: int = 25
    keep_best: bool = True
    selection: str = "mean"
    freeze_shared: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "snr_db", tuple(float(s) for s in self.snr_db))
        for name in ("steps", "q_infer", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        for name in ("bits", "hidden", "batch_size", "n_val", "val_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("lr", "lr_net"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        for name in ("keep_best", "snr_gains", "freeze_shared"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.selection == "knot" and not self.freeze_shared:
            raise ValueError("selection='knot' needs freeze_shared=True (--freeze-shared)")
        for name in ("kd_weight", "nmse_weight"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        if self.link not in LINKS:
            raise ValueError(f"link must be one of {LINKS}, got {self.link!r}")
        if self.env_id not in KD_EDN_ENVS:
            raise ValueError(f"env_id must be one of {KD_EDN_ENVS}, got {self.env_id!r}")
        if not isinstance(self.env_kwargs, dict) or "snr_db" in self.env_kwargs:
            raise ValueError("env_kwargs must be a dict without 'snr_db' (use the snr_db field)")
        if not self.snr_db or not all(math.isfinite(s) for s in self.snr_db):
            raise ValueError(f"snr_db must be finite numbers, got {self.snr_db!r}")

    def make_task(self, snr_db: float | tuple[float, ...] | None = None) -> BeamformingTask:
        """The env's task (CPU) at the training SNR set, or at ``snr_db``."""
        snr = self.snr_db if snr_db is None else snr_db
        return make_env_task(self.env_id, snr_db=snr, **self.env_kwargs)


def build_model(config: KDEDNPlusTrainConfig) -> KDEDNPlus:
    """A fresh model (the ``beamspace_feedback`` start; weights seeded by ``config.seed``)."""
    torch.manual_seed(config.seed)
    return KDEDNPlus(
        config.make_task(),
        config.bits,
        config.link,
        config.q_infer,
        config.hidden,
        snr_gains=config.snr_gains,
    )


def _beam_distance(W: torch.Tensor, T: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    """Per-instance distillation distance with each beam's phase free, divided by ``P``."""
    inner = (W.conj() * T).sum(1).abs()  # [B, S]
    d = W.abs().square().sum(1) + T.abs().square().sum(1) - 2 * inner
    return d.sum(-1) / power


@torch.no_grad()
def validation_rates(
    model: KDEDNPlus, config: KDEDNPlusTrainConfig, sets: dict[float, Any] | None = None
) -> list[float]:
    """Mean true-channel sum-rate at each SNR knot on the validation instances."""
    rates = []
    for s in SNR_KNOTS:
        inst = (sets or {}).get(s)
        if inst is None:
            inst = make_instance_set(
                config.env_id, n=config.n_val, seed=VALIDATION_SEED, snr_db=s, **config.env_kwargs
            ).instances
        task = config.make_task(s)
        view = training_view(task, inst)
        gen = torch.Generator().manual_seed(VALIDATION_SEED)
        W, _ = model(view.est, view.snr_db, gen)
        rates.append(float(band_sum_rate(view.H, W, view.est.noise_var).mean()))
    return rates


def validation_rate(
    model: KDEDNPlus, config: KDEDNPlusTrainConfig, sets: dict[float, Any] | None = None
) -> float:
    """Mean true-channel sum-rate over the SNR knots on the validation instances."""
    rates = validation_rates(model, config, sets)
    return sum(rates) / len(rates)


def train_kd_edn_plus(
    config: KDEDNPlusTrainConfig,
    *,
    model: KDEDNPlus | None = None,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> tuple[KDEDNPlus, list[dict[str, float]]]:
    """Train end to end on the true-channel sum-rate of the deployed pipeline (module doc).

    Args:
        config: Training configuration.
        model: Model to continue training (else :func:`build_model`).
        progress: Called after every step with its record.

    Returns:
        ``(model, history)``: the best-on-validation model (eval mode) and one record per
        step (``step``, ``loss``, ``sum_rate``, ``teacher_rate``, ``nmse_db``, ``val_rate``
        where validated).
    """
    model = build_model(config) if model is None else model
    task = config.make_task()
    gen = torch.Generator().manual_seed(config.seed)
    link_gen = torch.Generator().manual_seed(config.seed + 1)
    sets = {
        s: make_instance_set(
            config.env_id, n=config.n_val, seed=VALIDATION_SEED, snr_db=s, **config.env_kwargs
        ).instances
        for s in SNR_KNOTS
    }
    net = [*model.ch_in.parameters(), *model.ch_out.parameters()]
    ids = {id(p) for p in net}
    tables = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": tables, "lr": config.lr}, {"params": net, "lr": config.lr_net}]
    if config.freeze_shared:
        knot = [getattr(model, n) for n in KNOT_TABLES if hasattr(model, n)]
        for p in model.parameters():
            p.requires_grad_(any(p is q for q in knot))
        groups = [{"params": knot, "lr": config.lr}]
    opt = torch.optim.Adam(groups)
    start = validation_rates(model, config, sets)

    def score(rates: list[float]) -> float:
        if config.selection == "worst":
            return min(r - r0 for r, r0 in zip(rates, start, strict=True))
        return sum(rates) / len(rates)

    best = score(start)
    knot_best = list(start)  # selection="knot": the best rate at each knot and its columns
    knot_cols = {n: getattr(model, n).detach().clone() for n in KNOT_TABLES if hasattr(model, n)}
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history: list[dict[str, float]] = []
    model.train()
    for step in range(config.steps):
        view = training_view(task, task.sample(gen, config.batch_size))
        P, Q, s2 = view.est.power, view.est.Q, view.est.noise_var
        W, H_hat = model(view.est, view.snr_db, link_gen)
        with torch.no_grad():
            teacher = normalize_power(mmse_beamformer(view.H_lin, P, s2), P, Q)
            t_rate = band_sum_rate(view.H, teacher, s2)
        rate = band_sum_rate(view.H, W, s2)
        nmse = model.nmse(view.H, H_hat).mean()
        kd = _beam_distance(W, teacher, P).mean()
        loss = -(rate / t_rate).mean() + config.kd_weight * kd + config.nmse_weight * nmse
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rec = {
            "step": float(step),
            "loss": float(loss.detach()),
            "sum_rate": float(rate.detach().mean()),
            "teacher_rate": float(t_rate.mean()),
            "nmse_db": 10 * math.log10(max(float(nmse.detach()), 1e-30)),
            "val_rate": float("nan"),
        }
        if (step + 1) % config.val_every == 0 or step + 1 == config.steps:
            model.eval()
            rates = validation_rates(model, config, sets)
            model.train()
            rec["val_rate"] = sum(rates) / len(rates)
            for j, r in enumerate(rates):
                if r > knot_best[j]:
                    knot_best[j] = r
                    for n, cols in knot_cols.items():
                        cols[..., j] = getattr(model, n).detach()[..., j]
            if score(rates) > best:
                best = score(rates)
                best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
        history.append(rec)
        if progress is not None:
            progress(rec)
    if config.keep_best and config.selection == "knot":
        with torch.no_grad():
            for n, cols in knot_cols.items():
                getattr(model, n).copy_(cols)
    elif config.keep_best:
        model.load_state_dict(best_state)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return model, history


def checkpoint_config(config: KDEDNPlusTrainConfig, agent: str = "kd_edn_plus") -> dict[str, Any]:
    """The ``config.json`` content of a model trained with ``config``."""
    task = config.make_task()
    return {
        "agent": agent,
        "env_id": config.env_id,
        "env_kwargs": task.env_kwargs,
        "env_config": env_config_dict(task),
        "hparams": {"link": config.link, "bits": config.bits},
        "train_config": dataclasses.asdict(config),
    }


def model_from_checkpoint(ckpt: Checkpoint) -> tuple[KDEDNPlus, KDEDNPlusTrainConfig]:
    """Rebuild the model of a checkpoint read by :func:`agents.pretrained.read_checkpoint`.

    Raises:
        CheckpointError: The weights do not fit the stored configuration.
    """
    return rebuild_model(ckpt, KDEDNPlusTrainConfig, build_model, "KD-EDN+", _TRAIN_HINT)


#: Columns of ``train_log.csv``.
LOG_FIELDS = ("step", "loss", "sum_rate", "teacher_rate", "nmse_db", "val_rate")


def main(argv: Sequence[str]) -> Path:
    """``examples/train.py --agent kd_edn_plus ...``.

    Usage::

        python examples/train.py --agent kd_edn_plus --env beamgym/FullyDigitalFDD-v0 --link noisy
        python examples/train.py --agent kd_edn_plus --env beamgym/FarFieldHybrid-v0 \
            --link noiseless --env-kw placement=spatial-division

    Every field of :class:`KDEDNPlusTrainConfig` is an option. Writes the model folder of
    :func:`agents.runs.write_run` to ``--out`` (default ``runs/kd_edn_plus``).

    Returns:
        The output folder.
    """
    argv = [str(a) for a in argv]
    p = run_parser(("kd_edn_plus",), KD_EDN_ENVS, "Train KD-EDN+ end to end (issue 11).")
    add_dataclass_arguments(
        p.add_argument_group("training (KDEDNPlusTrainConfig)"),
        KDEDNPlusTrainConfig,
        exclude=("env_id", "env_kwargs"),
    )
    ns = p.parse_args(argv)
    try:
        config = dataclass_from_args(
            KDEDNPlusTrainConfig, ns, env_id=ns.env, env_kwargs=parse_env_kwargs(ns.env_kw)
        )
        config.make_task()  # the env checks its configuration
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc
    if ns.threads is not None:
        torch.set_num_threads(ns.threads)
    rows: list[dict[str, Any]] = []
    bar = progress_bar(config.steps, ns.agent, not ns.no_progress)

    def progress(rec: dict[str, float]) -> None:
        rows.append(rec)
        bar(rate=f"{rec['sum_rate']:.2f}", val=f"{rec['val_rate']:.2f}")

    t0 = time.perf_counter()
    model, _ = train_kd_edn_plus(config, progress=progress)
    seconds = time.perf_counter() - t0
    bar.close()  # type: ignore[attr-defined]
    val = [r for r in rows if not math.isnan(r["val_rate"])]
    out = write_run(
        ns.out or Path("runs") / ns.agent,
        state=model.state_dict(),
        config=checkpoint_config(config, ns.agent),
        argv=argv,
        seconds=seconds,
        rows=rows,
        fields=LOG_FIELDS,
        panels=(
            Panel(
                "training batch",
                "step",
                "sum-rate (bit/s/Hz)",
                [
                    Series("KD-EDN+", [r["step"] for r in rows], [r["sum_rate"] for r in rows]),
                    Series(
                        "MMSE teacher", [r["step"] for r in rows], [r["teacher_rate"] for r in rows]
                    ),
                ],
            ),
            Panel(
                "validation",
                "step",
                "mean sum-rate over 5-20 dB",
                [Series("", [r["step"] for r in val], [r["val_rate"] for r in val])],
            ),
        ),
    )
    print(f"trained {ns.agent} in {seconds:.1f} s -> {out}")
    return out
