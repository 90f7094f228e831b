r"""Training of KD-EDN, paper 000 Algorithm 1 (Sec. III-B, III-C, IV-A, IV-B).

Envs: FullyDigitalFDD-v0 (Sec. III), FarFieldHybrid-v0 with steering analog beams (Sec. IV-A,
the networks see the effective channel :math:`\mathbf G = \mathbf H\mathbf W^a(\beta)`,
eq. (18)-(24)) and NearFieldHybrid-v0 (Sec. IV-B, :math:`\mathbf G = \mathbf H\mathbf
W^a(\mathbf P)` with the per-sample eq. (24) normalization); :func:`training_view`.

Stage 1 (Algorithm 1 lines 3-9): per epoch, the KD weight :math:`\alpha` is updated
(:func:`agents.kd_edn.model.alpha_schedule`), a batch of :math:`N_b` instances
:math:`(\mathbf H, \Delta\mathbf H, \Delta\mathbf z)` is drawn over the SNR set
:math:`\mathcal V`, the MMSE teacher is computed on the TRUE channel (Sec. III-B2), the encoder
:math:`\phi` takes :math:`N_{\rm en}` steps (eq. (13a), decoder fixed) and then the beamformer
decoder :math:`\theta` takes :math:`N_{\rm de}` steps (eq. (13b), encoder fixed), all on that
batch, with the KD loss eq. (14)-(16) of :math:`\mathbf W_{Q_t}` after :math:`Q_t` steps of
eq. (11) on the true channel (backpropagated through).

Stage 2 (lines 10-13): the channel decoder :math:`\psi` is trained with eq. (17) given the
trained (frozen) encoder.

Choices (docs/readings.md#000-kd-edn-training; the paper leaves them open):

* optimizer: Adam, one per sub-network, learning rate ``lr`` = 1e-3 (the paper prints SGD
  steps with :math:`\eta = 10^{-4}`, eq. (13); with 1e-4 the sum-rate still crawled after
  300 epochs here, and the CPU budget of a committed model is minutes, not days);
* length: 300 stage-1 epochs (alpha raised by 0.01 per epoch, Sec. III-D1, so the last 200
  epochs are unsupervised) and 3000 stage-2 epochs (one step each, cheap);
* latent size ``d`` = 32 (the paper does not print d; "d << 2MN" = 128; d = 16 did worse in
  a trial on validation seeds, BENCHMARKS.md, section "Paper 000: KD-EDN");
* :math:`\Delta\mathbf z` is drawn once per epoch (it is part of the epoch's batch,
  Sec. III-B1) and is a real Gaussian (see :mod:`agents.kd_edn.model`);
* SNR: every instance draws one SNR from :math:`\mathcal V` for all its users (Sec. III-D1:
  all users have the same noise variance), as FullyDigitalFDD-v0 does with a tuple
  ``snr_db``;
* step size of eq. (11): the ``"normalized"`` rule of
  :func:`agents.classical.fully_digital.gradient_ascent` with :math:`\bar\eta` = ``eta``
  (stable across SNRs; the paper prints no value).

Two options beyond the paper (off by default, so the default recipe is unchanged):

* ``val_every`` > 0 logs a validation curve during stage 1 on a fixed set drawn from
  ``val_seed`` (its own generator, so the training draws are the same with or without it):
  the true-channel sum-rate of the deployed :math:`\mathbf W_0` (noisy link, no GA steps) and
  of :math:`\mathbf W_{Q_t}` after the :math:`Q_t` steps training takes;
* ``ga_channel="reconstructed"`` is the ablation of eq. (11)'s oracle: the :math:`Q_t`
  training steps run on the channel decoder's :math:`\hat{\mathbf H}` (what inference
  has, eq. (9)) instead of the true channel. :math:`\hat{\mathbf H}` is then needed during
  stage 1, so the channel decoder takes one eq. (17) step per epoch on the epoch's batch
  (encoder fixed), and :math:`\hat{\mathbf H}` enters the steps as data (no gradient to
  :math:`\psi` or through :math:`\hat{\mathbf z}`); stage 2 then runs as usual.
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
from agents.kd_edn.model import (
    CHANNEL_LOSSES,
    KDEDN,
    EDNConfig,
    alpha_schedule,
    channel_decoder_loss,
    kd_loss,
    quantize,
    semi_amortized_steps,
    user_errors,
)
from agents.pretrained import (
    Checkpoint,
    CheckpointError,
    env_config_dict,
    read_checkpoint,
    rebuild_model,
    write_checkpoint,
)
from agents.rules.gradient import DEFAULT_ETA, band_sum_rate
from agents.rules.problem import SolverProblem, problem_from_known
from agents.runs import Panel, Series, progress_bar, run_parser, write_run
from beamgym.datasets import make_task as make_env_task
from beamgym.envs.base import BeamformingTask
from beamgym.physics.precoding import mmse_beamformer
from beamgym.physics.projections import normalize_power

__all__ = [
    "ALPHA_MODES",
    "GA_CHANNELS",
    "KD_EDN_ENVS",
    "TrainingView",
    "training_view",
    "KDEDNTrainConfig",
    "LOG_FIELDS",
    "TRAIN_VARIANTS",
    "checkpoint_config",
    "main",
    "model_from_checkpoint",
    "plateau_gain",
    "make_task",
    "train_kd_edn",
    "evaluate_sum_rate",
    "save_checkpoint",
    "load_checkpoint",
]

#: ``"kd"`` (alpha 0 -> 1, KD-EDN), ``"unsupervised"`` (alpha = 1), ``"supervised"``
#: (alpha = 0): the paper's KD-EDN and its two training baselines (Sec. III-D1).
ALPHA_MODES: tuple[str, ...] = ("kd", "unsupervised", "supervised")
_TRAIN_HINT = "python examples/train.py --agent kd_edn --env beamgym/FullyDigitalFDD-v0"
#: Channels the Q_t training steps of eq. (11) may run on (KDEDNTrainConfig.ga_channel).
GA_CHANNELS: tuple[str, ...] = ("true", "reconstructed")

#: The envs KD-EDN serves (paper 000 Sec. III, IV-A with steering beams, IV-B).
KD_EDN_ENVS: tuple[str, ...] = (
    "beamgym/FullyDigitalFDD-v0",
    "beamgym/FarFieldHybrid-v0",
    "beamgym/NearFieldHybrid-v0",
)


@dataclasses.dataclass(frozen=True)
class KDEDNTrainConfig:
    r"""Configuration of :func:`train_kd_edn` (defaults: paper 000 Sec. III-D1 MISO).

    Attributes:
        env_id: The env the model serves: ``beamgym/FullyDigitalFDD-v0`` (Sec. III),
            ``beamgym/FarFieldHybrid-v0`` with ``analog="steering"`` (Sec. IV-A) or
            ``beamgym/NearFieldHybrid-v0`` (Sec. IV-B).
        env_kwargs: The env configuration (builtins; ``snr_db`` excluded), e.g.
            ``{"placement": "spatial-division"}``; the env defaults are the paper's.
        snr_db: SNR set :math:`\mathcal V` in dB (paper: 5-20 dB).
        d, bits, sigma_z2, enc_hidden, dec_hidden, ch_hidden, dropout, input_norm, basis, decoder:
            network /
            feedback (:class:`agents.kd_edn.model.EDNConfig`); ``basis=None``: ``"dft"`` for
            the fully digital env, ``"identity"`` for the hybrid ones (their effective
            channels are already beamspace).
        epochs: Stage-1 epochs.
        ch_epochs: Stage-2 (channel decoder) epochs.
        ch_loss: Channel-decoder loss, ``"phase-invariant"`` (default) or ``"mse"`` (eq. (17)
            as printed): :func:`agents.kd_edn.model.user_errors`. The logged ``nmse_db`` is
            measured with the same error.
        batch_size: :math:`N_b` (paper: 128).
        n_en, n_de: Encoder / decoder steps per epoch (paper: 2 / 8).
        lr: Adam learning rate (paper's SGD :math:`\eta = 10^{-4}`; module docstring).
        alpha_mode: One of :data:`ALPHA_MODES`.
        alpha_every: Epochs per 0.01 increase of :math:`\alpha` (``"kd"``).
        q_train: :math:`Q_t` gradient steps of eq. (11) in training (paper: 5).
        eta: Normalized step :math:`\bar\eta` of eq. (9)/(11).
        seed: Seed of parameters and data.
        precision: ``"single"`` or ``"double"``.
        ga_channel: Channel of the :math:`Q_t` training steps: ``"true"`` (eq. (11), the
            paper) or ``"reconstructed"`` (:math:`\hat{\mathbf H}`, the ablation of the
            oracle; module docstring).
        val_every: Stage-1 epochs between validation points (0: no validation curve).
        val_n: Instances of the validation set.
        val_seed: Seed of the validation set (instances and feedback error).
    """

    env_id: str = "beamgym/FullyDigitalFDD-v0"
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    snr_db: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0)
    d: int = 32
    bits: int = 4
    sigma_z2: float = 0.1
    enc_hidden: tuple[int, ...] = (256,)
    dec_hidden: tuple[int, ...] = (256, 256)
    ch_hidden: tuple[int, ...] = (256,)
    dropout: float = 0.2
    input_norm: str = "snr"
    basis: str | None = None
    decoder: str = "equivariant"
    ch_loss: str = "phase-invariant"
    epochs: int = 300
    ch_epochs: int = 3000
    batch_size: int = 128
    n_en: int = 2
    n_de: int = 8
    lr: float = 1e-3
    alpha_mode: str = "kd"
    alpha_every: int = 1
    q_train: int = 5
    eta: float = DEFAULT_ETA
    seed: int = 0
    precision: str = "single"
    ga_channel: str = "true"
    val_every: int = 0
    val_n: int = 1000
    val_seed: int = 2_000_003  # agents.harness.VALIDATION_SEED

    def __post_init__(self) -> None:
        object.__setattr__(self, "snr_db", tuple(float(s) for s in self.snr_db))
        for name in ("enc_hidden", "dec_hidden", "ch_hidden"):
            object.__setattr__(self, name, tuple(int(w) for w in getattr(self, name)))
        for name in (
            "epochs",
            "ch_epochs",
            "n_en",
            "n_de",
            "q_train",
            "seed",
            "val_every",
            "val_seed",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        for name in ("batch_size", "alpha_every", "val_n"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("lr", "eta"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if self.ga_channel not in GA_CHANNELS:
            raise ValueError(f"ga_channel must be one of {GA_CHANNELS}, got {self.ga_channel!r}")
        if self.ch_loss not in CHANNEL_LOSSES:
            raise ValueError(f"ch_loss must be one of {CHANNEL_LOSSES}, got {self.ch_loss!r}")
        if self.alpha_mode not in ALPHA_MODES:
            raise ValueError(f"alpha_mode must be one of {ALPHA_MODES}, got {self.alpha_mode!r}")
        if self.precision not in ("single", "double"):
            raise ValueError(f"precision must be 'single' or 'double', got {self.precision!r}")
        if self.env_id not in KD_EDN_ENVS:
            raise ValueError(f"env_id must be one of {KD_EDN_ENVS}, got {self.env_id!r}")
        if not isinstance(self.env_kwargs, dict) or "snr_db" in self.env_kwargs:
            raise ValueError("env_kwargs must be a dict without 'snr_db' (use the snr_db field)")
        self.edn_config()  # validates the system and the network part

    def make_task(self, snr_db: float | tuple[float, ...] | None = None) -> BeamformingTask:
        """The env's task (CPU) at the training SNR set, or at ``snr_db``."""
        snr = self.snr_db if snr_db is None else snr_db
        return make_env_task(self.env_id, snr_db=snr, precision=self.precision, **self.env_kwargs)

    def dims(self) -> tuple[int, int, int]:
        """``(N, K, M)`` of the (effective) channel the networks see (Sec. III / IV)."""
        task = self.make_task()
        prob = problem_from_known(task, task.known(task.sample(torch.Generator(), 1)))
        _, _, k, m, n = prob.H.shape
        return n, k, m

    def edn_config(self) -> EDNConfig:
        """The network sizes (``N`` = antennas, RF chains (far field) or users (near field))."""
        N, K, M = self.dims()
        return EDNConfig(
            N=N,
            K=K,
            M=M,
            d=self.d,
            bits=self.bits,
            sigma_z2=self.sigma_z2,
            enc_hidden=self.enc_hidden,
            dec_hidden=self.dec_hidden,
            ch_hidden=self.ch_hidden,
            dropout=self.dropout,
            input_norm=self.input_norm,
            basis=self.basis or ("dft" if self.env_id == KD_EDN_ENVS[0] else "identity"),
            decoder=self.decoder,
        )

    def alpha(self, epoch: int) -> float:
        """KD weight of epoch ``epoch`` (0-based), eq. (14)."""
        if self.alpha_mode == "unsupervised":
            return 1.0
        if self.alpha_mode == "supervised":
            return 0.0
        return alpha_schedule(epoch, self.alpha_every)


def make_task(
    config: KDEDNTrainConfig, snr_db: float | tuple[float, ...] | None = None
) -> BeamformingTask:
    """The task of a training configuration (CPU), at its SNR set or at ``snr_db``."""
    return config.make_task(snr_db)


@dataclasses.dataclass(frozen=True)
class TrainingView:
    r"""One batch as KD-EDN training sees it (paper 000 Sec. III-B1 / IV-A / IV-B).

    Attributes:
        est: The BS-side problem from the ESTIMATED channel (what the users encode):
            :func:`agents.classical.fully_digital.problem_from_known`.
        H: TRUE (effective) channel ``[B, F, K, M, N]`` of the rate (eq. (11), (15)):
            FDD :math:`\mathbf H`; far field :math:`\mathbf G = \mathbf H\mathbf W^a(\beta)`;
            near field :math:`\mathbf G = \mathbf H\mathbf W^a(\mathbf P)`.
        snr_db: ``[B]`` SNR in dB.
    """

    est: SolverProblem
    H: torch.Tensor
    snr_db: torch.Tensor

    @property
    def H_est(self) -> torch.Tensor:
        """Estimated channel in the encoder's layout, ``[B, K, N]`` / ``[B, K, M, N]``."""
        return self.est.linear_channel

    @property
    def H_lin(self) -> torch.Tensor:
        """True channel in the encoder's layout (carrier), ``[B, K, N]`` / ``[B, K, M, N]``."""
        H = self.H[:, 0]
        return H[:, :, 0] if H.shape[2] == 1 else H


def training_view(task: BeamformingTask, inst: Any) -> TrainingView:
    """The :class:`TrainingView` of a batch of instances of a KD-EDN env."""
    est = problem_from_known(task, task.known(inst))
    if hasattr(inst, "G"):  # near field: true effective channels per subcarrier
        H = inst.G.unsqueeze(-2)
    elif est.Q is not None:  # far field, steering: G = H W^a(beta), eq. (18)
        F = task.analog_precoder.to(inst.H.device)  # type: ignore[attr-defined]
        H = (inst.H @ F)[:, None, :, None, :]
    else:
        H = inst.H[:, None, :, None, :] if inst.H.ndim == 3 else inst.H[:, None]
    return TrainingView(est=est, H=H, snr_db=inst.snr_db)


def _build(config: KDEDNTrainConfig) -> KDEDN:
    torch.manual_seed(config.seed)
    model = KDEDN(config.edn_config())
    return model.double() if config.precision == "double" else model


def train_kd_edn(
    config: KDEDNTrainConfig,
    *,
    model: KDEDN | None = None,
    progress: Callable[[str, dict[str, float]], None] | None = None,
) -> tuple[KDEDN, dict[str, list[dict[str, float]]]]:
    r"""Algorithm 1 of paper 000 (training stage): stage 1 (eq. (13)-(16)), stage 2 (eq. (17)).

    Args:
        config: Training configuration.
        model: Model to continue training (else a fresh one seeded by ``config.seed``).
        progress: Called after every epoch as ``progress(stage, record)`` with stage
            ``"edn"`` or ``"channel"`` (e.g. to drive a progress bar / CSV log).

    Returns:
        ``(model, history)``: the trained model (eval mode) and per-epoch records,
        ``history["edn"]`` (``epoch``, ``alpha``, ``loss``, ``sum_rate`` of
        :math:`\mathbf W_{Q_t}` on the epoch's batch before its updates, ``supervised``) and
        ``history["channel"]`` (``epoch``, ``loss``, ``nmse_db``), and with ``val_every`` > 0
        ``history["val"]`` (``epoch``, ``val_sum_rate`` of the deployed :math:`\mathbf W_0`,
        ``val_ga_rate`` of :math:`\mathbf W_{Q_t}` after the training steps; true-channel
        rates on the fixed validation set, evaluated before the epoch's updates and once after
        the last epoch).
    """
    if model is None:
        model = _build(config)
    if model.cfg != config.edn_config():
        raise ValueError("model's EDNConfig does not match the training configuration")
    task = make_task(config)
    gen = torch.Generator().manual_seed(config.seed)
    rdtype = model.rdtype
    K, d = model.cfg.K, model.cfg.d
    opt_en = torch.optim.Adam(model.encoder.parameters(), lr=config.lr)
    opt_de = torch.optim.Adam(model.bf_decoder.parameters(), lr=config.lr)
    opt_ch = torch.optim.Adam(model.ch_decoder.parameters(), lr=config.lr)
    sz = math.sqrt(config.sigma_z2)
    history: dict[str, list[dict[str, float]]] = {"edn": [], "channel": []}
    reconstructed = config.ga_channel == "reconstructed"

    def draw(b: int, generator: torch.Generator = gen) -> tuple[TrainingView, torch.Tensor]:
        view = training_view(task, task.sample(generator, b))
        dz = sz * torch.randn((b, K, d), generator=generator, dtype=rdtype)
        return view, dz

    def ga_channel(v: TrainingView, z_hat: torch.Tensor) -> torch.Tensor:
        """The channel of the Q_t steps: true (eq. (11)) or H_hat as data (the ablation)."""
        if not reconstructed:
            return v.H
        return model.reconstruct_channel(z_hat.detach(), v.snr_db).detach().to(v.H.dtype)

    if config.val_every > 0:
        history["val"] = []
        val_view, val_dz = draw(config.val_n, torch.Generator().manual_seed(config.val_seed))

    def validate(epoch: int) -> None:
        """One point of the stage-1 validation curve (eval mode, no gradients)."""
        was = [m.training for m in (model.encoder, model.bf_decoder, model.ch_decoder)]
        model.eval()
        with torch.no_grad():
            v, P, Q = val_view, val_view.est.power, val_view.est.Q
            z_hat = quantize(model.encode(v.H_est, v.snr_db), config.bits) + val_dz
            W0 = model.initial_beamformer(z_hat, P, Q).to(v.H.dtype)
            Wq = semi_amortized_steps(
                ga_channel(v, z_hat), W0, P, config.q_train, config.eta, power_weight=Q
            )
            rec = {
                "epoch": float(epoch),
                "val_sum_rate": float(band_sum_rate(v.H, W0).mean()),
                "val_ga_rate": float(band_sum_rate(v.H, Wq).mean()),
            }
        for m, w in zip((model.encoder, model.bf_decoder, model.ch_decoder), was, strict=True):
            m.train(w)
        history["val"].append(rec)
        if progress is not None:
            progress("val", rec)

    # ---- stage 1: encoder + beamformer decoder (Algorithm 1 lines 3-9) ----
    model.train()
    model.ch_decoder.eval()
    for epoch in range(config.epochs):
        if config.val_every > 0 and epoch % config.val_every == 0:
            validate(epoch)
        alpha = config.alpha(epoch)
        v, dz = draw(config.batch_size)
        P, Q = v.est.power, v.est.Q
        if reconstructed:  # H_hat is needed now: one eq. (17) step of psi, encoder fixed
            with torch.no_grad():
                z_ch = quantize(model.encode(v.H_est, v.snr_db), config.bits) + dz
            model.ch_decoder.train()
            ch_loss = channel_decoder_loss(
                v.H_lin, model.reconstruct_channel(z_ch, v.snr_db).to(v.H.dtype), config.ch_loss
            )
            opt_ch.zero_grad(set_to_none=True)
            ch_loss.backward()
            opt_ch.step()
            model.ch_decoder.eval()
        teacher = (
            normalize_power(mmse_beamformer(v.H_lin, P), P, Q) if alpha < 1.0 else None
        )  # Sec. III-B2 on the TRUE (effective) channel, eq. (24) power for hybrid

        def loss_fn(
            v: TrainingView = v, dz: torch.Tensor = dz, alpha: float = alpha, teacher: Any = teacher
        ) -> tuple[torch.Tensor, dict[str, float]]:
            P, Q = v.est.power, v.est.Q
            z_hat = quantize(model.encode(v.H_est, v.snr_db), config.bits) + dz
            W0 = model.initial_beamformer(z_hat, P, Q).to(v.H.dtype)
            W = semi_amortized_steps(
                ga_channel(v, z_hat), W0, P, config.q_train, config.eta, power_weight=Q
            )
            return kd_loss(v.H, W, alpha, P, teacher)

        first: dict[str, float] | None = None
        for opt, n_steps in ((opt_en, config.n_en), (opt_de, config.n_de)):
            for _ in range(n_steps):
                opt_en.zero_grad(set_to_none=True)
                opt_de.zero_grad(set_to_none=True)
                loss, stats = loss_fn()
                loss.backward()
                opt.step()  # eq. (13a) / (13b): only this sub-network moves
                if first is None:
                    first = {"loss": float(loss.detach()), **stats}
        rec = {"epoch": float(epoch), "alpha": alpha, **(first or {})}
        history["edn"].append(rec)
        if progress is not None:
            progress("edn", rec)

    if config.val_every > 0 and config.epochs > 0:
        validate(config.epochs)

    # ---- stage 2: channel decoder given the trained encoder (lines 10-13), eq. (17) ----
    model.eval()
    model.ch_decoder.train()
    for epoch in range(config.ch_epochs):
        v, dz = draw(config.batch_size)
        with torch.no_grad():
            z_hat = quantize(model.encode(v.H_est, v.snr_db), config.bits) + dz
        H_hat = model.reconstruct_channel(z_hat, v.snr_db).to(v.H.dtype)
        loss = channel_decoder_loss(v.H_lin, H_hat, config.ch_loss)
        opt_ch.zero_grad(set_to_none=True)
        loss.backward()
        opt_ch.step()
        with torch.no_grad():
            err = user_errors(v.H_lin, H_hat, config.ch_loss).sum()
            nmse = err / v.H_lin.abs().square().sum()
        rec = {
            "epoch": float(epoch),
            "loss": float(loss.detach()),
            "nmse_db": 10 * math.log10(nmse),
        }
        history["channel"].append(rec)
        if progress is not None:
            progress("channel", rec)
    model.eval()
    return model, history


@torch.no_grad()
def evaluate_sum_rate(
    model: KDEDN,
    config: KDEDNTrainConfig,
    *,
    n: int = 512,
    seed: int = 12345,
    snr_db: float | tuple[float, ...] | None = None,
    q_infer: int = 0,
    eta: float | None = None,
    noise: bool = True,
) -> dict[str, float]:
    """Mean TRUE-channel sum-rate of the inference stage (Algorithm 1 lines 15-23).

    The instances (and the feedback error) come from ``seed`` only, so two models are
    compared on the same test set. Also reports the MMSE baseline on the estimated channel
    (Sec. III-D1, perfect feedback, no GA steps).

    Returns:
        ``{"sum_rate", "mmse_sum_rate", "bits_per_user"}``.
    """
    task = make_task(config, snr_db)
    gen = torch.Generator().manual_seed(seed)
    v = training_view(task, task.sample(gen, n))
    P, Q = v.est.power, v.est.Q
    W, info = model.infer(
        v.H_est,
        P,
        q_infer,
        config.eta if eta is None else eta,
        snr_db=v.snr_db,
        power_weight=Q,
        generator=gen,
        noise=noise,
    )
    mmse = normalize_power(mmse_beamformer(v.H_est, P), P, Q)
    out = {
        "sum_rate": float(band_sum_rate(v.H, W).mean()),
        "mmse_sum_rate": float(band_sum_rate(v.H, mmse).mean()),
    }
    if "feedback" in info:
        out["bits_per_user"] = info["feedback"]["bits_per_user"]
    return out


def checkpoint_config(config: KDEDNTrainConfig, agent: str = "kd_edn") -> dict[str, Any]:
    """The ``config.json`` content of a model trained with ``config`` (:mod:`agents.pretrained`)."""
    task = config.make_task()
    return {
        "agent": agent,
        "env_id": config.env_id,
        "env_kwargs": task.env_kwargs,
        "env_config": env_config_dict(task),
        "hparams": {},
        "train_config": dataclasses.asdict(config),
    }


def save_checkpoint(
    path: str | Path, model: KDEDN, config: KDEDNTrainConfig, agent: str = "kd_edn"
) -> Path:
    """Write a model folder (weights-only ``checkpoint.pt`` + ``config.json``) to ``path``.

    Returns:
        The ``checkpoint.pt`` path.
    """
    return write_checkpoint(path, model.state_dict(), checkpoint_config(config, agent))


def model_from_checkpoint(ckpt: Checkpoint) -> tuple[KDEDN, KDEDNTrainConfig]:
    """Rebuild the KD-EDN of a checkpoint read by :func:`agents.pretrained.read_checkpoint`.

    Raises:
        CheckpointError: The weights do not fit the stored configuration.
    """
    return rebuild_model(ckpt, KDEDNTrainConfig, _build, "KD-EDN", _TRAIN_HINT)


def load_checkpoint(path: str | Path) -> tuple[KDEDN, KDEDNTrainConfig, dict[str, Any]]:
    """Load a model folder written by :func:`save_checkpoint`: ``(model, config, config_json)``.

    Raises:
        CheckpointError: Missing, unreadable or unsafe file, or parameters that do not fit
            the configuration; the message names the file.
    """
    path = Path(path)
    if not (path.is_file() or (path / "checkpoint.pt").is_file()):
        raise CheckpointError(f"no KD-EDN checkpoint at {path}; train one with: {_TRAIN_HINT}")
    ckpt = read_checkpoint(path)
    model, config = model_from_checkpoint(ckpt)
    return model, config, ckpt.config


def plateau_gain(values: Sequence[float], epochs: Sequence[float], tail: float = 0.2) -> float:
    """Relative gain of a validation curve over its last ``tail`` fraction of epochs.

    ``(v_end - v_start) / |v_start|`` where ``v_end`` is the last point and ``v_start`` the
    point at (or just before) epoch ``(1 - tail) * last_epoch``; the issue's plateau test is
    this gain below 1%.

    Raises:
        ValueError: Fewer than two points, mismatched lengths, or ``tail`` outside (0, 1).
    """
    if len(values) != len(epochs) or len(values) < 2:
        raise ValueError("plateau_gain needs >= 2 points with one epoch each")
    if not 0.0 < tail < 1.0:
        raise ValueError(f"tail must be in (0, 1), got {tail}")
    cut = (1.0 - tail) * epochs[-1]
    start = max(i for i, e in enumerate(epochs) if e <= cut)
    return (values[-1] - values[start]) / abs(values[start])


# ---- command line (examples/train.py --agent kd_edn ...) -------------------------------------
#: Training variants: agent name -> overrides of the training configuration.
TRAIN_VARIANTS: dict[str, dict[str, Any]] = {
    "kd_edn": {"alpha_mode": "kd"},
    "edn_unsupervised": {"alpha_mode": "unsupervised"},
    "edn_supervised": {"alpha_mode": "supervised"},
    "kd_edn_q0": {"alpha_mode": "kd", "q_train": 0},
}
#: Columns of ``train_log.csv``.
LOG_FIELDS = (
    "stage",
    "epoch",
    "alpha",
    "loss",
    "sum_rate",
    "supervised",
    "nmse_db",
    "val_sum_rate",
    "val_ga_rate",
)


def main(argv: Sequence[str]) -> Path:
    """``examples/train.py --agent kd_edn|edn_unsupervised|edn_supervised|kd_edn_q0 ...``.

    Usage::

        python examples/train.py --agent kd_edn --env beamgym/FullyDigitalFDD-v0
        python examples/train.py --agent edn_unsupervised --env-kw placement=spatial-division
        python examples/train.py --agent kd_edn --env beamgym/NearFieldHybrid-v0
        python examples/train.py --agent kd_edn --env-kw N=8 K=2 L=2 --epochs 40 --out runs/tiny

    ``--agent``: ``kd_edn`` (alpha 0 -> 1), ``edn_unsupervised`` (alpha = 1),
    ``edn_supervised`` (alpha = 0), ``kd_edn_q0`` (Q_t = 0); ``--env-kw`` sets the env
    configuration; every field of :class:`KDEDNTrainConfig` is an option. Writes the model
    folder of :func:`agents.runs.write_run` to ``--out`` (default ``runs/<agent>``);
    ``train_log.csv`` has one row per epoch: stage, epoch, alpha, loss, sum-rate of W_Qt on
    the epoch's batch, supervised loss, channel-decoder NMSE in dB.

    Returns:
        The output folder.
    """
    argv = [str(a) for a in argv]
    p = run_parser(tuple(TRAIN_VARIANTS), KD_EDN_ENVS, "Train KD-EDN (paper 000 Algorithm 1).")
    add_dataclass_arguments(
        p.add_argument_group("training (KDEDNTrainConfig)"),
        KDEDNTrainConfig,
        exclude=("env_id", "env_kwargs", "alpha_mode"),
    )
    ns = p.parse_args(argv)
    try:
        config = dataclass_from_args(
            KDEDNTrainConfig,
            ns,
            env_id=ns.env,
            env_kwargs=parse_env_kwargs(ns.env_kw),
            **TRAIN_VARIANTS[ns.agent],
        )
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc
    if ns.threads is not None:
        torch.set_num_threads(ns.threads)
    rows: list[dict[str, Any]] = []
    bar = progress_bar(config.epochs + config.ch_epochs, ns.agent, not ns.no_progress)

    def progress(stage: str, rec: dict[str, float]) -> None:
        rows.append({"stage": stage, **rec})
        if stage == "val":
            return
        key = "sum_rate" if stage == "edn" else "nmse_db"
        bar(**{stage: f"{rec.get(key, float('nan')):.3f}"})

    t0 = time.perf_counter()
    model, _ = train_kd_edn(config, progress=progress)
    seconds = time.perf_counter() - t0
    bar.close()  # type: ignore[attr-defined]
    edn = [r for r in rows if r["stage"] == "edn"]
    ch = [r for r in rows if r["stage"] == "channel"]
    val = [r for r in rows if r["stage"] == "val"]
    panels = [
        Panel(
            "encoder/decoder",
            "epoch",
            "sum-rate of W_Qt (bit/s/Hz)",
            [Series("", [r["epoch"] for r in edn], [r["sum_rate"] for r in edn])],
        ),
        Panel(
            "channel decoder, eq. (17)",
            "epoch",
            "NMSE (dB)",
            [Series("", [r["epoch"] for r in ch], [r["nmse_db"] for r in ch])],
        ),
    ]
    if val:
        epochs = [r["epoch"] for r in val]
        panels.append(
            Panel(
                "validation (true channel)",
                "epoch",
                "sum-rate (bit/s/Hz)",
                [
                    Series("W_0 (deployed, Q_i = 0)", epochs, [r["val_sum_rate"] for r in val]),
                    Series("W_Qt (training steps)", epochs, [r["val_ga_rate"] for r in val]),
                ],
            )
        )
        gain = plateau_gain([r["val_sum_rate"] for r in val], epochs)
        print(f"validation W_0 gain over the last 20% of epochs: {100 * gain:+.2f}%")
    out = write_run(
        ns.out or Path("runs") / ns.agent,
        state=model.state_dict(),
        config=checkpoint_config(config, ns.agent),
        argv=argv,
        seconds=seconds,
        rows=rows,
        fields=LOG_FIELDS,
        panels=tuple(panels),
    )
    print(f"trained {ns.agent} in {seconds:.1f} s -> {out}")
    return out
