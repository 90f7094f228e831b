r"""Training of KD-EDN, paper 000 Algorithm 1 (Sec. III-B, III-C), on FullyDigitalFDD-v0.

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

Choices (documented, the paper leaves them open):

* optimizer: Adam with learning rate ``lr`` (the paper prints SGD steps with
  :math:`\eta = 10^{-4}`, eq. (13); Adam with the same rate is the common reading for these
  networks), one optimizer per sub-network;
* :math:`\Delta\mathbf z` is drawn once per epoch (it is part of the epoch's batch,
  Sec. III-B1) and is a real Gaussian (see :mod:`agents.kd_edn.model`);
* SNR: every instance draws one SNR from :math:`\mathcal V` for all its users (Sec. III-D1:
  all users have the same noise variance), as FullyDigitalFDD-v0 does with a tuple
  ``snr_db``;
* step size of eq. (11): the ``"normalized"`` rule of
  :func:`agents.classical.fully_digital.gradient_ascent` with :math:`\bar\eta` = ``eta``
  (stable across SNRs; the paper prints no value).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from agents.base import CheckpointError
from agents.classical.fully_digital import DEFAULT_ETA, band_sum_rate
from agents.kd_edn.model import (
    KDEDN,
    EDNConfig,
    alpha_schedule,
    channel_decoder_loss,
    kd_loss,
    quantize,
    semi_amortized_steps,
)
from beamgym.envs.fully_digital_fdd import FullyDigitalFDDConfig, FullyDigitalFDDTask
from beamgym.physics.metrics import mmse_beamformer

__all__ = [
    "ALPHA_MODES",
    "CHECKPOINT_FORMAT",
    "KDEDNTrainConfig",
    "make_task",
    "train_kd_edn",
    "evaluate_sum_rate",
    "save_checkpoint",
    "load_checkpoint",
]

#: ``"kd"`` (alpha 0 -> 1, KD-EDN), ``"unsupervised"`` (alpha = 1), ``"supervised"``
#: (alpha = 0): the paper's KD-EDN and its two training baselines (Sec. III-D1).
ALPHA_MODES: tuple[str, ...] = ("kd", "unsupervised", "supervised")
#: Format tag stored in every checkpoint.
CHECKPOINT_FORMAT = "beamgym-kd_edn/1"
_TRAIN_HINT = "python examples/train.py --agent kd_edn --env beamgym/FullyDigitalFDD-v0"


@dataclasses.dataclass(frozen=True)
class KDEDNTrainConfig:
    r"""Configuration of :func:`train_kd_edn` (defaults: paper 000 Sec. III-D1 MISO).

    Attributes:
        N, K, M, L, placement: FullyDigitalFDD-v0 system (antennas, users, user antennas,
            paths, user placement).
        snr_db: SNR set :math:`\mathcal V` in dB (paper: 5-20 dB).
        sigma_h2: CSI error variance (paper: 0.1, ``csi_error="absolute"``).
        d, bits, sigma_z2, enc_hidden, dec_hidden, ch_hidden, dropout: network /
            feedback (:class:`agents.kd_edn.model.EDNConfig`).
        epochs: Stage-1 epochs.
        ch_epochs: Stage-2 (channel decoder) epochs.
        batch_size: :math:`N_b` (paper: 128).
        n_en, n_de: Encoder / decoder steps per epoch (paper: 2 / 8).
        lr: Adam learning rate (paper's :math:`\eta = 10^{-4}`).
        alpha_mode: One of :data:`ALPHA_MODES`.
        alpha_every: Epochs per 0.01 increase of :math:`\alpha` (``"kd"``).
        q_train: :math:`Q_t` gradient steps of eq. (11) in training (paper: 5).
        eta: Normalized step :math:`\bar\eta` of eq. (9)/(11).
        seed: Seed of parameters and data.
        precision: ``"single"`` or ``"double"``.
    """

    N: int = 64
    K: int = 16
    M: int = 1
    L: int = 10
    placement: str = "single-cell"
    snr_db: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0)
    sigma_h2: float = 0.1
    d: int = 16
    bits: int = 4
    sigma_z2: float = 0.1
    enc_hidden: tuple[int, ...] = (256,)
    dec_hidden: tuple[int, ...] = (512, 512)
    ch_hidden: tuple[int, ...] = (256,)
    dropout: float = 0.2
    epochs: int = 1000
    ch_epochs: int = 500
    batch_size: int = 128
    n_en: int = 2
    n_de: int = 8
    lr: float = 1e-4
    alpha_mode: str = "kd"
    alpha_every: int = 10
    q_train: int = 5
    eta: float = DEFAULT_ETA
    seed: int = 0
    precision: str = "single"

    def __post_init__(self) -> None:
        object.__setattr__(self, "snr_db", tuple(float(s) for s in self.snr_db))
        for name in ("enc_hidden", "dec_hidden", "ch_hidden"):
            object.__setattr__(self, name, tuple(int(w) for w in getattr(self, name)))
        for name in ("epochs", "ch_epochs", "n_en", "n_de", "q_train", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        for name in ("batch_size", "alpha_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("lr", "eta"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if self.alpha_mode not in ALPHA_MODES:
            raise ValueError(f"alpha_mode must be one of {ALPHA_MODES}, got {self.alpha_mode!r}")
        if self.precision not in ("single", "double"):
            raise ValueError(f"precision must be 'single' or 'double', got {self.precision!r}")
        self.edn_config()  # validates the network part
        self.env_config()  # validates the system part

    def edn_config(self) -> EDNConfig:
        """The network sizes."""
        return EDNConfig(
            N=self.N,
            K=self.K,
            M=self.M,
            d=self.d,
            bits=self.bits,
            sigma_z2=self.sigma_z2,
            enc_hidden=self.enc_hidden,
            dec_hidden=self.dec_hidden,
            ch_hidden=self.ch_hidden,
            dropout=self.dropout,
        )

    def env_config(self, snr_db: float | tuple[float, ...] | None = None) -> FullyDigitalFDDConfig:
        """The FullyDigitalFDD-v0 configuration (training SNR set unless ``snr_db``)."""
        kw: dict[str, Any] = {}
        if self.placement == "spatial-division":
            kw["psi"] = math.pi / 16 if self.M == 1 else math.pi / 4
        return FullyDigitalFDDConfig(
            N=self.N,
            K=self.K,
            M=self.M,
            L=self.L,
            placement=self.placement,
            snr_db=self.snr_db if snr_db is None else snr_db,
            sigma_h2=self.sigma_h2,
            **kw,
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
) -> FullyDigitalFDDTask:
    """The FullyDigitalFDD-v0 task of a training configuration (CPU)."""
    return FullyDigitalFDDTask(config.env_config(snr_db), precision=config.precision)  # type: ignore[arg-type]


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
        ``history["channel"]`` (``epoch``, ``loss``, ``nmse_db``).
    """
    if model is None:
        model = _build(config)
    if model.cfg != config.edn_config():
        raise ValueError("model's EDNConfig does not match the training configuration")
    task = make_task(config)
    gen = torch.Generator().manual_seed(config.seed)
    rdtype = model.rdtype
    opt_en = torch.optim.Adam(model.encoder.parameters(), lr=config.lr)
    opt_de = torch.optim.Adam(model.bf_decoder.parameters(), lr=config.lr)
    opt_ch = torch.optim.Adam(model.ch_decoder.parameters(), lr=config.lr)
    sz = math.sqrt(config.sigma_z2)
    history: dict[str, list[dict[str, float]]] = {"edn": [], "channel": []}

    def draw(b: int) -> tuple[Any, torch.Tensor]:
        inst = task.sample(gen, b)
        dz = sz * torch.randn((b, config.K, config.d), generator=gen, dtype=rdtype)
        return inst, dz

    # ---- stage 1: encoder + beamformer decoder (Algorithm 1 lines 3-9) ----
    model.train()
    model.ch_decoder.eval()
    for epoch in range(config.epochs):
        alpha = config.alpha(epoch)
        inst, dz = draw(config.batch_size)
        teacher = mmse_beamformer(inst.H, inst.power) if alpha < 1.0 else None

        def loss_fn(
            inst: Any = inst, dz: torch.Tensor = dz, alpha: float = alpha, teacher: Any = teacher
        ) -> tuple[torch.Tensor, dict[str, float]]:
            z_hat = quantize(model.encode(inst.H_est), config.bits) + dz
            W0 = model.initial_beamformer(z_hat, inst.power).to(inst.H.dtype)
            W = semi_amortized_steps(inst.H, W0, inst.power, config.q_train, config.eta)
            return kd_loss(inst.H, W, alpha, inst.power, teacher)

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

    # ---- stage 2: channel decoder given the trained encoder (lines 10-13), eq. (17) ----
    model.eval()
    model.ch_decoder.train()
    for epoch in range(config.ch_epochs):
        inst, dz = draw(config.batch_size)
        with torch.no_grad():
            z_hat = quantize(model.encode(inst.H_est), config.bits) + dz
        H_hat = model.reconstruct_channel(z_hat).to(inst.H.dtype)
        loss = channel_decoder_loss(inst.H, H_hat)
        opt_ch.zero_grad(set_to_none=True)
        loss.backward()
        opt_ch.step()
        with torch.no_grad():
            nmse = (inst.H - H_hat).abs().square().sum() / inst.H.abs().square().sum()
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
    inst = task.sample(gen, n)
    W, info = model.infer(
        inst.H_est,
        inst.power,
        q_infer,
        config.eta if eta is None else eta,
        generator=gen,
        noise=noise,
    )
    mmse = mmse_beamformer(inst.H_est, inst.power)
    out = {
        "sum_rate": float(band_sum_rate(inst.H, W).mean()),
        "mmse_sum_rate": float(band_sum_rate(inst.H, mmse).mean()),
    }
    if "feedback" in info:
        out["bits_per_user"] = info["feedback"]["bits_per_user"]
    return out


def save_checkpoint(
    path: str | Path,
    model: KDEDN,
    config: KDEDNTrainConfig,
    history: dict[str, list[dict[str, float]]] | None = None,
) -> Path:
    """Write the parameters, the training configuration and the history to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "train_config": dataclasses.asdict(config),
            "state_dict": model.state_dict(),
            "history": history or {},
        },
        path,
    )
    return path


def load_checkpoint(
    path: str | Path,
) -> tuple[KDEDN, KDEDNTrainConfig, dict[str, list[dict[str, float]]]]:
    """Load a checkpoint written by :func:`save_checkpoint` (model in eval mode).

    Raises:
        CheckpointError: Missing file, wrong format or parameters that do not fit the
            configuration; the message names the train command.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no KD-EDN checkpoint at {path}; train one with: {_TRAIN_HINT}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt / foreign file
        raise CheckpointError(f"cannot read {path} ({exc}); retrain with: {_TRAIN_HINT}") from exc
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a {CHECKPOINT_FORMAT} checkpoint; retrain with: {_TRAIN_HINT}"
        )
    try:
        config = KDEDNTrainConfig(**blob["train_config"])
        model = _build(config)
        model.load_state_dict(blob["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(
            f"{path} does not fit KD-EDN ({exc}); retrain with: {_TRAIN_HINT}"
        ) from exc
    model.eval()
    return model, config, blob.get("history", {})
