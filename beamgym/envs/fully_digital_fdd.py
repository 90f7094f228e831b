r"""FullyDigitalFDD-v0: fully digital FDD downlink beamforming with imperfect CSI (paper 000).

Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse Large-Scale
MIMO Channels", Sec. II (system model, sparse channel), III-A3 (normalization layer),
III-B2 (MMSE teacher) and III-D1 (simulation setup). The BS designs ``W = [W_1, ..., W_K]``
under ``||W||_F^2 <= P`` from the estimated channel; the reward is the sum-rate eq. (2)/(4) on
the true channel.

SNR convention (docs/readings.md#000-snr-sigma): SNR = P/σ² and the normalized channel is
``H = H_bar / σ`` (the paper prints ``σ²``, which only doubles the SNR in dB), evaluated with
unit noise.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import torch

from beamgym._validation import (
    check_int,
    check_nonnegative,
    check_number,
    check_positive,
    check_tensor,
)
from beamgym.envs.base import (
    BeamformingEnv,
    BeamformingTask,
    BeamformingVectorEnv,
    check_instance_snr_db,
    check_snr_set,
    raise_if_infeasible,
    sample_snr_db,
)
from beamgym.packing import pack_complex, packed_size, unpack_complex
from beamgym.physics.channels import check_placement, rayleigh_channel, sparse_geometric_channel
from beamgym.physics.csi import CSI_ERROR_MODES, additive_csi_error
from beamgym.physics.metrics import mimo_rates, miso_sinr, mmse_beamformer
from beamgym.physics.projections import normalize_total_power, total_power
from beamgym.structures import TensorDataclass

__all__ = [
    "CHANNELS",
    "FEASIBILITY_RTOL",
    "CSI_NMSE_FLOOR_DB",
    "FullyDigitalFDDConfig",
    "FullyDigitalFDDInstance",
    "FullyDigitalFDDKnown",
    "FullyDigitalFDDTask",
    "FullyDigitalFDDEnv",
    "FullyDigitalFDDVectorEnv",
]

#: Channel models: paper 000's sparse geometric channel or i.i.d. Rayleigh (hard instances).
CHANNELS: tuple[str, ...] = ("sparse", "rayleigh")
#: Relative power tolerance of the ``feasible`` flag of :meth:`FullyDigitalFDDTask.evaluate`.
FEASIBILITY_RTOL = 1e-4
#: The CSI-quality observation (expected NMSE in dB) is clipped below at this value
#: (perfect CSI would be -inf).
CSI_NMSE_FLOOR_DB = -100.0


def expected_csi_nmse_db(
    snr_db: torch.Tensor, *, mode: str, power: float, sigma_h2: float, nmse_db: float
) -> torch.Tensor:
    r"""Expected NMSE (dB) of the estimated normalized channel, the CSI-quality side info.

    * ``"absolute"``: the normalized channel has per-entry power
      :math:`\mathbb E|[\mathbf H_k]_{ij}|^2 = \mathrm{SNR}/P` (:math:`\mathbb E\|\bar
      {\mathbf H}_k\|_F^2 = MN`), so :math:`\mathrm{NMSE} = \sigma_h^2 P/\mathrm{SNR}`;
    * ``"nmse"``: ``nmse_db``;
    * ``"perfect"``: :data:`CSI_NMSE_FLOOR_DB`.

    Every value is clipped below at :data:`CSI_NMSE_FLOOR_DB`.

    Args:
        snr_db: Real ``[B]`` SNRs in dB.
        mode: CSI error mode (:data:`beamgym.physics.csi.CSI_ERROR_MODES`).
        power: Power budget :math:`P` (linear).
        sigma_h2: Error variance :math:`\sigma_h^2` (``"absolute"``).
        nmse_db: Relative error in dB (``"nmse"``).

    Returns:
        Real ``[B]`` expected NMSE in dB.
    """
    if mode == "absolute":
        tiny = 10.0 ** (CSI_NMSE_FLOOR_DB / 10.0)
        out = 10.0 * torch.log10(
            torch.as_tensor(max(sigma_h2, tiny) * power) / torch.pow(10.0, snr_db / 10.0)
        )
    elif mode == "nmse":
        out = torch.full_like(snr_db, float(nmse_db))
    else:
        out = torch.full_like(snr_db, CSI_NMSE_FLOOR_DB)
    return out.clamp_min(CSI_NMSE_FLOOR_DB)


@dataclasses.dataclass(frozen=True)
class FullyDigitalFDDConfig:
    """Parameters of FullyDigitalFDD-v0; defaults are paper 000's MISO setup (Sec. III-D1).

    The hard configuration (docs/readings.md#000-hard-instances) is ``channel="rayleigh", N=4, K=4,
    snr_db=10.0`` (i.i.d. Rayleigh, P = 10 with unit noise, i.e. SNR = 10 dB).
    """

    N: int = 64
    """Number of BS antennas [N] (half-wavelength ULA). Paper: 64."""
    K: int = 16
    """Number of users [K]. Paper: 16 (MISO), 4 (MIMO)."""
    M: int = 1
    """Antennas per user [M]; ``M > 1`` is the MIMO system, rate eq. (2). Paper: 1 / 4."""
    L: int = 10
    """Scattering paths per user [L] of eq. (5) (sparse channel). Paper: 10."""
    channel: str = "sparse"
    """Channel model: ``"sparse"`` (paper 000 eq. (5)-(7)) or ``"rayleigh"`` (i.i.d.
    CN(0, 1) entries, same normalization E||H_k||_F^2 = MN; docs/readings.md#000-hard-instances)."""
    placement: str = "single-cell"
    """User placement of Sec. II-B (sparse channel): ``"single-cell"`` or
    ``"spatial-division"``."""
    phi: float = math.pi / 2
    """Single-cell sector angle [phi] in radians, users in [-phi/2, phi/2]. Paper: pi/2."""
    psi: float = math.pi / 16
    """Spatial-division sector width [psi] in radians, 0 < psi <= pi/K. Paper: pi/16 (MISO),
    pi/4 (MIMO)."""
    sigma_aod: float = 0.1
    """AOD standard deviation [sigma_gamma] of eq. (7), radians. Paper: 0.1."""
    sigma_aoa: float = 0.1
    """AOA standard deviation [sigma_beta] of eq. (7), radians (MIMO only). Paper: 0.1."""
    P: float = 1.0
    """Transmit power budget [P] of eq. (8), linear (||W||_F^2 <= P). Paper: 1."""
    snr_db: float | tuple[float, ...] = 15.0
    """SNR = P/sigma^2 in dB [SNR]: a number, or a tuple of values from which each instance
    draws one uniformly (the paper's training set V, e.g. (5, 10, 15, 20)). Paper: 15 dB
    (Figs. 3-5), 5-20 dB (Figs. 6-7)."""
    csi_error: str = "absolute"
    """CSI error model: ``"absolute"`` (paper: Delta H ~ CN(0, sigma_h2) i.i.d. on the
    normalized channel), ``"nmse"`` (error ``nmse_db`` relative to each user's channel) or
    ``"perfect"``."""
    sigma_h2: float = 0.1
    """CSI error variance [sigma_h^2] per complex entry (``"absolute"``). Paper: 0.1."""
    nmse_db: float = -10.0
    """CSI error NMSE in dB (``"nmse"``; docs/readings.md#000-csi-error-scale)."""

    def __post_init__(self) -> None:
        for name in ("N", "K", "M", "L"):
            check_int(getattr(self, name), name)
        if self.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS}, got {self.channel!r}")
        if self.channel == "sparse":
            check_placement(self.placement, self.K, sector=self.phi, psi=self.psi)
        elif self.placement not in ("single-cell", "spatial-division"):
            raise ValueError(f"unknown placement {self.placement!r}")
        check_nonnegative(self.sigma_aod, "sigma_aod")
        check_nonnegative(self.sigma_aoa, "sigma_aoa")
        check_positive(self.P, "P")
        object.__setattr__(self, "snr_db", check_snr_set(self.snr_db))
        if self.csi_error not in CSI_ERROR_MODES:
            raise ValueError(f"csi_error must be one of {CSI_ERROR_MODES}, got {self.csi_error!r}")
        check_nonnegative(self.sigma_h2, "sigma_h2")
        check_number(self.nmse_db, "nmse_db")
        if self.N * self.K * self.M > 1_000_000:
            raise ValueError(
                f"N*K*M = {self.N * self.K * self.M} complex beamformer entries is too large "
                "for a Box action; reduce N, K or M"
            )

    @property
    def channel_shape(self) -> tuple[int, ...]:
        """Per-instance channel shape: ``(K, N)`` for MISO, ``(K, M, N)`` for MIMO."""
        return (self.K, self.N) if self.M == 1 else (self.K, self.M, self.N)


@dataclasses.dataclass(frozen=True)
class FullyDigitalFDDInstance(TensorDataclass):
    r"""A batch of FullyDigitalFDD-v0 instances (batch dimension first).

    Attributes:
        H: Complex ``[B, K, N]`` (MISO) or ``[B, K, M, N]`` (MIMO) TRUE normalized channel
            :math:`\mathbf H_k = \bar{\mathbf H}_k/\sigma` (row/block ``k`` multiplies the
            transmit signal; unit noise).
        H_est: Estimated normalized channel :math:`\tilde{\mathbf H}` fed back to the BS,
            same shape (equal to ``H`` with ``csi_error="perfect"``).
        snr_db: Real ``[B]`` SNR = P/σ² in dB.
        csi_nmse_db: Real ``[B]`` expected NMSE of ``H_est`` in dB (CSI-quality side info).
        power: Real ``[B]`` power budget :math:`P` (linear).
        azimuth: Real ``[B, K]`` user azimuths :math:`\zeta_k` in radians (zeros for the
            Rayleigh channel, which has no geometry).
    """

    H: torch.Tensor
    H_est: torch.Tensor
    snr_db: torch.Tensor
    csi_nmse_db: torch.Tensor
    power: torch.Tensor
    azimuth: torch.Tensor


@dataclasses.dataclass(frozen=True)
class FullyDigitalFDDKnown(TensorDataclass):
    r"""What the BS knows about a batch of FullyDigitalFDD-v0 instances (batch first).

    :meth:`FullyDigitalFDDTask.decode_observation` builds it from the observation; solvers
    take it instead of the instance (never the true channel), and
    :meth:`~FullyDigitalFDDTask.action_to_beamformer` /
    :meth:`~FullyDigitalFDDTask.beamformer_to_action` accept it in place of an instance.
    Field names are the instance's.

    Attributes:
        H_est: Estimated normalized channel :math:`\tilde{\mathbf H}`, complex ``[B, K, N]``
            (MISO) or ``[B, K, M, N]`` (MIMO), fed back to the BS.
        snr_db: Real ``[B]`` SNR = P/σ² in dB.
        csi_nmse_db: Real ``[B]`` expected NMSE of ``H_est`` in dB (CSI-quality side info).
        power: Real ``[B]`` power budget :math:`P` (linear). Not part of the observation: it
            is the configuration constant ``P`` (every instance of a configuration has
            ``power == P``; :meth:`FullyDigitalFDDTask.validate_instance` enforces it).
    """

    H_est: torch.Tensor
    snr_db: torch.Tensor
    csi_nmse_db: torch.Tensor
    power: torch.Tensor


class FullyDigitalFDDTask(BeamformingTask[FullyDigitalFDDInstance, FullyDigitalFDDConfig]):
    """Batched physics of FullyDigitalFDD-v0 (see :class:`FullyDigitalFDDEnv`)."""

    env_id: ClassVar[str] = "beamgym/FullyDigitalFDD-v0"

    instance_cls: ClassVar[type[TensorDataclass]] = FullyDigitalFDDInstance
    metric_name: ClassVar[str] = "sum_rate"
    metric_sign: ClassVar[int] = 1

    # ---- sizes -------------------------------------------------------------------------
    @property
    def num_users(self) -> int:
        """Number of users ``K``."""
        return int(self.config.K)

    @property
    def beamformer_shape(self) -> tuple[int, int]:
        """``(N, K*M)``: shape of one beamformer."""
        return (self.config.N, self.config.K * self.config.M)

    @property
    def obs_dim(self) -> int:
        """Packed estimated channel, SNR in dB and expected CSI NMSE in dB."""
        return packed_size(self.config.channel_shape) + 2

    @property
    def action_dim(self) -> int:
        """Packed beamformer, ``2 N K M``."""
        return packed_size(self.beamformer_shape)

    # ---- instances ---------------------------------------------------------------------
    def sample(self, generator: torch.Generator, batch_size: int) -> FullyDigitalFDDInstance:
        """Draw channels, then SNRs, then CSI errors, all from ``generator`` (CPU, float64).

        The channel is drawn in double precision and cast at the end, so both precisions
        see the same instances up to rounding.
        """
        c = self.config
        b = check_int(batch_size, "batch_size")
        if c.channel == "sparse":
            H_bar, az = sparse_geometric_channel(
                generator,
                b,
                n_tx=c.N,
                n_users=c.K,
                n_rx=c.M,
                n_paths=c.L,
                placement=c.placement,
                sector=c.phi,
                psi=c.psi,
                sigma_aod=c.sigma_aod,
                sigma_aoa=c.sigma_aoa,
                precision="double",
            )
        else:
            H_bar = rayleigh_channel(
                generator, b, n_tx=c.N, n_users=c.K, n_rx=c.M, precision="double"
            )
            az = torch.zeros(b, c.K, dtype=torch.float64)
        snr_db = sample_snr_db(generator, b, c.snr_db)
        # SNR = P / sigma^2 and H = H_bar / sigma  (docs/readings.md#000-snr-sigma)
        gain = torch.sqrt(torch.pow(10.0, snr_db / 10.0) / c.P)
        H = H_bar * gain.reshape(b, *([1] * (H_bar.ndim - 1)))
        H_est = additive_csi_error(
            H, generator, mode=c.csi_error, sigma2=c.sigma_h2, nmse_db=c.nmse_db
        )
        nmse = expected_csi_nmse_db(
            snr_db, mode=c.csi_error, power=c.P, sigma_h2=c.sigma_h2, nmse_db=c.nmse_db
        )
        inst = FullyDigitalFDDInstance(
            H=H.to(self.cdtype),
            H_est=H_est.to(self.cdtype),
            snr_db=snr_db.to(self.rdtype),
            csi_nmse_db=nmse.to(self.rdtype),
            power=torch.full((b,), float(c.P), dtype=self.rdtype),
            azimuth=az.to(self.rdtype),
        )
        return inst.to(self.device)

    def validate_instance(self, instance: Any) -> FullyDigitalFDDInstance:
        """Check type, batch, finiteness, shapes and dtypes of a user-supplied instance."""
        inst = super().validate_instance(instance)
        c = self.config
        want = {
            "H": (c.channel_shape, self.cdtype),
            "H_est": (c.channel_shape, self.cdtype),
            "snr_db": ((), self.rdtype),
            "csi_nmse_db": ((), self.rdtype),
            "power": ((), self.rdtype),
            "azimuth": ((c.K,), self.rdtype),
        }
        for name, (shape, dtype) in want.items():
            t = getattr(inst, name)
            if tuple(t.shape[1:]) != shape or t.dtype != dtype:
                raise ValueError(
                    f"instance.{name} must have shape [B, {', '.join(map(str, shape))}] and "
                    f"dtype {dtype} for this config, got {tuple(t.shape)} {t.dtype}"
                )
        check_instance_snr_db(inst.snr_db)
        if bool((inst.power <= 0).any()):
            raise ValueError("instance.power (P, linear) must be > 0")
        if bool((inst.power != float(c.P)).any()):
            raise ValueError(
                f"instance.power must equal the configuration's power budget P = {c.P} (the BS "
                "knows P from the configuration, not from the observation); make the env with "
                "P=... to use another budget"
            )
        return inst

    # ---- observation and action ---------------------------------------------------------
    def observe(self, instance: FullyDigitalFDDInstance) -> torch.Tensor:
        """``[pack(H_est), snr_db, csi_nmse_db]`` as a real ``[B, obs_dim]`` tensor."""
        n_trailing = len(self.config.channel_shape)
        return torch.cat(
            [
                pack_complex(instance.H_est, n_trailing),
                instance.snr_db.unsqueeze(-1),
                instance.csi_nmse_db.unsqueeze(-1),
            ],
            -1,
        )

    def decode_observation(self, observation: torch.Tensor) -> FullyDigitalFDDKnown:
        """Inverse of :meth:`observe`: the BS-known :class:`FullyDigitalFDDKnown`.

        ``H_est``, ``snr_db`` and ``csi_nmse_db`` are read back exactly (the packing is a
        reordering of real and imaginary parts); ``power`` is the configuration's ``P``.

        Args:
            observation: Real ``[B, obs_dim]`` task observation (without the ``horizon > 1``
                extras; slice ``obs[:, :task.obs_dim]``), any float dtype; it is cast to
                ``self.rdtype`` on ``self.device``.

        Returns:
            :class:`FullyDigitalFDDKnown` in ``self.cdtype`` / ``self.rdtype``.
        """
        check_tensor(observation, "observation", ndim=2, complex_=False)
        if observation.shape[1] != self.obs_dim:
            raise ValueError(
                f"observation must have shape [B, obs_dim] = [B, {self.obs_dim}] for this "
                f"config, got {tuple(observation.shape)}; drop the horizon extras with "
                "obs[:, :task.obs_dim]"
            )
        obs = observation.to(device=self.device, dtype=self.rdtype)
        n = packed_size(self.config.channel_shape)
        return FullyDigitalFDDKnown(
            H_est=unpack_complex(obs[:, :n], self.config.channel_shape).to(self.cdtype),
            snr_db=obs[:, n].clone(),
            csi_nmse_db=obs[:, n + 1].clone(),
            power=torch.full(
                (obs.shape[0],), float(self.config.P), dtype=self.rdtype, device=self.device
            ),
        )

    def action_to_beamformer(
        self, action: torch.Tensor, instance: FullyDigitalFDDInstance | FullyDigitalFDDKnown
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Map ``[B, 2NKM]`` actions to full-power beamformers, paper 000 Sec. III-A3.

        :math:`\tilde{\mathbf W} = \mathrm{unpack}(a)` (row-major ``[N, K*M]``), then the
        normalization layer :math:`\mathbf W = \sqrt P\,\tilde{\mathbf W}/\|\tilde{\mathbf
        W}\|_F` (:func:`beamgym.physics.projections.normalize_total_power`). A zero action
        gives the zero beamformer (no NaN). ``projected`` is True where the normalization
        changed :math:`\tilde{\mathbf W}` (power off by more than 1e-6 relative, or zero).
        Uses only ``instance.power``, so a :class:`FullyDigitalFDDKnown` works as well.
        """
        W_raw = unpack_complex(action, self.beamformer_shape).to(self.cdtype)
        W = normalize_total_power(W_raw, instance.power)
        with torch.no_grad():
            raw = total_power(W_raw)
            projected = (raw == 0) | ((raw - instance.power).abs() > 1e-6 * instance.power)
        return W, projected

    def _check_beamformer(
        self, W: Any, instance: FullyDigitalFDDInstance | FullyDigitalFDDKnown
    ) -> torch.Tensor:
        check_tensor(W, "beamformer", ndim=3, complex_=True)
        shape = (instance.batch_size, *self.beamformer_shape)
        if tuple(W.shape) != shape:
            raise ValueError(
                f"beamformer must have shape [B, N, K*M] = {list(shape)}, got {tuple(W.shape)}"
            )
        if W.dtype != self.cdtype:
            raise ValueError(
                f"beamformer must have dtype {self.cdtype} (precision={self.precision!r}), "
                f"got {W.dtype}"
            )
        return W

    def beamformer_to_action(
        self, beamformer: torch.Tensor, instance: FullyDigitalFDDInstance | FullyDigitalFDDKnown
    ) -> torch.Tensor:
        """Inverse of :meth:`action_to_beamformer`: ``pack(W) / max|pack(W)|``.

        Round trip: ``action_to_beamformer(beamformer_to_action(W)) == W`` (to rounding) for
        every ``W`` with ``||W||_F^2 = P``, the image of the normalization layer. Other
        nonzero ``W`` come back rescaled to full power (``W sqrt(P)/||W||_F``); ``W = 0``
        maps to the zero action. ``instance`` may be a :class:`FullyDigitalFDDKnown` (only its
        batch size is used).
        """
        W = self._check_beamformer(beamformer, instance)
        packed = pack_complex(W, 2)
        peak = packed.abs().amax(-1, keepdim=True)
        return (packed / torch.where(peak > 0, peak, torch.ones_like(peak))).clamp(-1.0, 1.0)

    # ---- evaluation ------------------------------------------------------------------------
    def evaluate(
        self,
        beamformer: torch.Tensor,
        instance: FullyDigitalFDDInstance,
        *,
        check_feasible: bool = True,
    ) -> dict[str, torch.Tensor]:
        r"""Sum-rate (bit/s/Hz) on the TRUE normalized channel, eq. (4) (MISO) / (2) (MIMO).

        .. math:: R = \sum_{k=1}^K \log_2\Big|\mathbf I_M + \boldsymbol\Sigma_k^{-1}
                  \mathbf H_k\mathbf W_k\mathbf W_k^H\mathbf H_k^H\Big|, \quad
                  \boldsymbol\Sigma_k = \mathbf I_M + \mathbf H_k\Big(\sum_{i\ne k}
                  \mathbf W_i\mathbf W_i^H\Big)\mathbf H_k^H

        Differentiable in ``beamformer``; evaluated as given (no projection): ``feasible``
        flags :math:`\|\mathbf W\|_F^2 \le P(1 + 10^{-4})` (eq. (8)). An infeasible design
        raises ``ValueError`` naming the power excess unless ``check_feasible=False``.

        Returns:
            ``reward``/``metric``/``sum_rate`` ``[B]``, ``per_user`` rates ``[B, K]``,
            ``sinr`` ``[B, K]`` (MISO only), ``power`` :math:`\|\mathbf W\|_F^2` ``[B]``,
            ``feasible`` ``[B]`` bool and ``snr_db`` ``[B]``.
        """
        W = self._check_beamformer(beamformer, instance)
        out: dict[str, torch.Tensor] = {}
        if self.config.M == 1:
            sinr = miso_sinr(instance.H, W)
            rates = torch.log1p(sinr) / math.log(2.0)  # eq. (4), bit/s/Hz
            out["sinr"] = sinr
        else:
            rates = mimo_rates(instance.H, W)
        total = rates.sum(-1)
        power = total_power(W)
        with torch.no_grad():
            feasible = power <= instance.power * (1.0 + FEASIBILITY_RTOL)
        if check_feasible:
            raise_if_infeasible(
                feasible,
                power,
                instance.power,
                constraint="||W||_F^2 <= P (paper 000 eq. (8))",
                rtol=FEASIBILITY_RTOL,
            )
        out.update(
            reward=total,
            metric=total,
            sum_rate=total,
            per_user=rates,
            power=power,
            feasible=feasible,
            snr_db=instance.snr_db.clone(),
        )
        return out

    # ---- structured helpers for model-based agents ----------------------------------------
    def mmse_beamformer(
        self, instance: FullyDigitalFDDInstance | FullyDigitalFDDKnown
    ) -> torch.Tensor:
        """Paper 000's MMSE beamformer (Sec. III-B2) on the ESTIMATED channel, full power."""
        return mmse_beamformer(instance.H_est, instance.power)


class FullyDigitalFDDEnv(BeamformingEnv):
    r"""Fully digital multiuser downlink beamforming in FDD with imperfect CSI (paper 000).

    ## Description

    Paper 000 (Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over
    Sparse Large-Scale MIMO Channels"), Sec. II-III. A base station with an ``N``-antenna
    half-wavelength ULA serves ``K`` users with ``M`` antennas each. In FDD the users
    estimate their downlink channels and feed them back; the BS designs the beamformer
    :math:`\mathbf W = [\mathbf W_1, \dots, \mathbf W_K] \in \mathbb C^{N \times KM}` under
    :math:`\|\mathbf W\|_F^2 \le P` (eq. (8)) from the estimate :math:`\tilde{\mathbf H}`, and
    the reward is the sum-rate on the true channel. The channel is the sparse mmWave
    geometric model of Sec. II-B, eq. (5)-(7) (``L`` paths, Gaussian angular spread around
    each user's azimuth; single-cell or spatial-division placement, Fig. 1), or, with
    ``channel="rayleigh"``, i.i.d. Rayleigh (docs/readings.md#000-hard-instances). Channels
    are normalized as :math:`\mathbf H_k = \bar{\mathbf H}_k/\sigma` with SNR = P/σ² (the
    paper prints σ²; docs/readings.md#000-snr-sigma), so the rate is evaluated with unit noise.
    The CSI error is
    paper 000's additive :math:`\Delta\mathbf H \sim \mathcal{CN}(0, \sigma_h^2)` on the
    normalized channel (Sec. III-D1), or optionally an error at a fixed NMSE. The feedback
    compression of the paper (KD-EDN) is the agent's business: the env feeds back the full
    estimate.

    The defaults (N = 64, K = 16, M = 1, L = 10, single cell φ = π/2, σ_γ = σ_β = 0.1,
    P = 1, σ_h² = 0.1, 15 dB) are the MISO setting of Figs. 3-5 (Sec. III-D2); sweeping
    ``snr_db`` over 5-20 dB traces Fig. 6, ``placement="spatial-division"`` gives the (b)
    panels, and ``K=4, M=4`` (``psi=π/4``) Fig. 7 (MIMO). Hard configuration
    (docs/readings.md#000-hard-instances): ``channel="rayleigh", N=4, K=4, snr_db=10.0``.
    Measured reference rates of both (MMSE, WMMSE, MRT, ZF) are in BENCHMARKS.md, sections
    "Reference values of the system models" and "Paper 000: fully digital solvers".

    ## Action Space

    A ``Box(-1, 1, (2NKM,), float32)`` (2048 by default): the beamformer
    :math:`\tilde{\mathbf W}` packed as ``[vec(Re), vec(Im)]`` (row-major ``[N, K*M]``,
    :mod:`beamgym.packing`). It is mapped to the power sphere by the paper's normalization
    layer (Sec. III-A3), :math:`\mathbf W = \sqrt P\,\tilde{\mathbf W}/\|\tilde{\mathbf W}
    \|_F`; full power is optimal for the sum-rate because a common scaling :math:`c > 1`
    raises every SINR. The zero action gives the zero beamformer (``projected`` True).
    ``env.beamformer_to_action(W)`` = ``pack(W)/max|pack(W)|`` inverts the map exactly for
    every :math:`\|\mathbf W\|_F^2 = P`.

    ## Observation Space

    A ``Box(2KMN + 2,)`` of float32 (2050 by default) holding only what the BS knows:

    | Num          | Observation                                                 | Min   | Max  |
    |--------------|-------------------------------------------------------------|-------|------|
    | 0 ... 2KMN-1 | estimated channel ``[K, (M,) N]``, packed                   | -Inf* | Inf* |
    | 2KMN         | SNR in dB                                                   | -Inf* | Inf* |
    | 2KMN + 1     | expected CSI NMSE, dB (σ_h² P/SNR, nmse_db; -100: perfect) | -Inf* | Inf* |

    \* The Box bounds are the float32 range (``±3.4e38``) so that the space is finite. The
    packed channel entries have variance ≈ SNR/P. With ``horizon > 1`` the previous action,
    the per-user rates it achieved and the elapsed fraction of the interval follow.
    ``env.unwrapped.task.decode_observation(obs)`` returns the BS-known fields as a
    :class:`FullyDigitalFDDKnown` (``H_est``, ``snr_db``, ``csi_nmse_db`` and the budget
    ``power`` = ``P``), the input of the model-based agents.

    ## Rewards

    The sum-rate in bit/s/Hz on the TRUE normalized channel, eq. (4) (MISO) and eq. (2)
    (MIMO):

    .. math:: r = \sum_{k=1}^{K} \log_2\Big(1 + \frac{|\mathbf h_k^H\mathbf w_k|^2}
              {1 + \sum_{i\ne k}|\mathbf h_k^H\mathbf w_i|^2}\Big), \qquad
              r_{\rm MIMO} = \sum_{k=1}^{K}\log_2\big|\mathbf I_M + \boldsymbol\Sigma_k^{-1}
              \mathbf H_k\mathbf W_k\mathbf W_k^H\mathbf H_k^H\big|

    ``info`` holds ``sum_rate``, ``per_user`` rates, ``sinr`` (MISO), ``power``
    (:math:`\|\mathbf W\|_F^2`), ``feasible``, ``snr_db`` and ``projected``.

    ## Starting State

    Each reset draws, in this order, the channel (user azimuths, path gains, AODs, AOAs),
    the SNR (fixed, or uniform over the set ``snr_db``) and the CSI error. Instances can also
    be given with ``reset(options={"instance": inst})``.

    ## Episode End

    The episode terminates after ``horizon`` steps (default 1: one coherence interval, one
    beamformer). There is no truncation.

    ## Arguments

    ```python
    >>> import gymnasium as gym
    >>> import beamgym
    >>> env = gym.make("beamgym/FullyDigitalFDD-v0")
    >>> env.observation_space.shape, env.action_space.shape
    ((2050,), (2048,))
    >>> env = gym.make("beamgym/FullyDigitalFDD-v0", K=4, M=4, snr_db=(5.0, 10.0, 15.0, 20.0))
    >>> env.observation_space.shape, env.action_space.shape
    ((2050,), (2048,))
    >>> env = gym.make("beamgym/FullyDigitalFDD-v0", channel="rayleigh", N=4, K=4, snr_db=10.0)
    >>> env.observation_space.shape, env.action_space.shape
    ((34,), (32,))

    ```

    | Parameter     | Type             | Default         | Description                            |
    |---------------|------------------|-----------------|----------------------------------------|
    | `N`           | **int**          | `64`            | BS antennas                            |
    | `K`           | **int**          | `16`            | users                                  |
    | `M`           | **int**          | `1`             | antennas per user (MIMO if > 1)        |
    | `L`           | **int**          | `10`            | paths per user (sparse channel)        |
    | `channel`     | **str**          | `"sparse"`      | `"sparse"` or `"rayleigh"`             |
    | `placement`   | **str**          | `"single-cell"` | or `"spatial-division"`                |
    | `phi`         | **float**        | `π/2`           | single-cell sector φ (rad)             |
    | `psi`         | **float**        | `π/16`          | spatial-division sector ψ ≤ π/K (rad)  |
    | `sigma_aod`   | **float**        | `0.1`           | AOD spread σ_γ (rad)                   |
    | `sigma_aoa`   | **float**        | `0.1`           | AOA spread σ_β (rad), MIMO             |
    | `P`           | **float**        | `1.0`           | power budget (linear)                  |
    | `snr_db`      | **float, tuple** | `15.0`          | SNR = P/σ² (dB), or a set V            |
    | `csi_error`   | **str**          | `"absolute"`    | or `"nmse"`, `"perfect"`               |
    | `sigma_h2`    | **float**        | `0.1`           | CSI error variance (`"absolute"`)      |
    | `nmse_db`     | **float**        | `-10.0`         | CSI error NMSE, dB (`"nmse"`)          |
    | `horizon`     | **int**          | `1`             | steps per coherence interval           |
    | `precision`   | **str**          | `"single"`      | or `"double"`                          |
    | `device`      | **str**          | `"cpu"`         | torch device of the physics            |

    ## Vectorized environment

    ``gym.make_vec("beamgym/FullyDigitalFDD-v0", num_envs=n,
    vectorization_mode="vector_entry_point")`` gives :class:`FullyDigitalFDDVectorEnv`, which
    draws and evaluates all ``n`` instances in one batched call (CPU or CUDA).

    ## Version History

    * v0: Initial version (paper 000 Sec. II-III; sparse and Rayleigh channels, absolute /
      NMSE / perfect CSI).
    """

    task_cls: ClassVar[type[BeamformingTask]] = FullyDigitalFDDTask
    config_cls: ClassVar[type] = FullyDigitalFDDConfig


class FullyDigitalFDDVectorEnv(BeamformingVectorEnv):
    """Native batched FullyDigitalFDD-v0: ``num_envs`` instances per batched call.

    Same task, config keywords, spaces and reward as :class:`FullyDigitalFDDEnv`.
    """

    task_cls: ClassVar[type[BeamformingTask]] = FullyDigitalFDDTask
    config_cls: ClassVar[type] = FullyDigitalFDDConfig
