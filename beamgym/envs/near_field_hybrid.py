r"""NearFieldHybrid-v0: near-field TTD+PS hybrid beamforming (paper 000 Sec. IV-B).

Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse Large-Scale
MIMO Channels", Sec. IV-B (near-field channel eq. (25)-(27), TTD+PS analog beamformer
eq. (28)-(31), sum-rate eq. (33), normalization eq. (24)) and Sec. IV-C1 (setup, eq. (35)).
The analog precoder is fixed by the users' positions (eq. (30)); the agent designs the
digital precoder on the estimated effective channel.

Sign conventions of the near-field model: see :mod:`beamgym.physics.analog`. Wideband
option (docs/readings.md#000-wideband): the rate is averaged over ``n_subcarriers``
subcarriers; channel and TTD phases follow the frequency, phase shifters do not.
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
from beamgym.envs.fully_digital_fdd import expected_csi_nmse_db
from beamgym.packing import pack_complex, packed_size, unpack_complex
from beamgym.physics.analog import ttd_ps_analog
from beamgym.physics.channels import (
    NEAR_FIELD_MODELS,
    check_placement,
    near_field_exact_channel,
    near_field_piecewise_channel,
    near_field_users,
    subarray_positions,
)
from beamgym.physics.csi import CSI_ERROR_MODES, additive_csi_error
from beamgym.physics.metrics import miso_rates, miso_sinr, mmse_beamformer
from beamgym.physics.projections import full_power_scale, normalize_power, weighted_power
from beamgym.structures import HybridBeamformer, TensorDataclass

__all__ = [
    "ANALOG_TYPES",
    "SPEED_OF_LIGHT",
    "FEASIBILITY_RTOL",
    "subcarrier_scales",
    "NearFieldHybridConfig",
    "NearFieldHybridInstance",
    "NearFieldHybridKnown",
    "NearFieldHybridTask",
    "NearFieldHybridEnv",
    "NearFieldHybridVectorEnv",
]

#: Analog hardware: true time delays + phase shifters (paper) or phase shifters only.
ANALOG_TYPES: tuple[str, ...] = ("ttd", "ps")
#: Speed of light in m/s (carrier frequency f_c = c / wavelength).
SPEED_OF_LIGHT = 299_792_458.0
#: Relative power tolerance of the ``feasible`` flag of :meth:`NearFieldHybridTask.evaluate`.
FEASIBILITY_RTOL = 1e-4


def subcarrier_scales(n_subcarriers: int, bandwidth: float, carrier: float) -> torch.Tensor:
    r"""Frequency ratios :math:`\kappa_m = f_m/f_c` of a centred uniform subcarrier grid.

    .. math:: f_m = f_c + B\Big(\frac{m - \frac12}{F} - \frac12\Big), \qquad m = 1, \dots, F

    (``F = 1`` gives :math:`f_c`, the narrowband case of the paper).

    Args:
        n_subcarriers: Number of subcarriers ``F``.
        bandwidth: Bandwidth ``B`` in Hz.
        carrier: Carrier frequency :math:`f_c` in Hz.

    Returns:
        Real float64 ``[F]`` ratios.
    """
    f = check_int(n_subcarriers, "n_subcarriers")
    m = torch.arange(1, f + 1, dtype=torch.float64)
    return 1.0 + (bandwidth / carrier) * ((m - 0.5) / f - 0.5)


@dataclasses.dataclass(frozen=True)
class NearFieldHybridConfig:
    """Parameters of NearFieldHybrid-v0; defaults are paper 000 Sec. IV-C1 (Fig. 9).

    The number of RF chains equals the number of users (``N_RF = K``, Sec. IV-B) and the BS
    array has ``N = S n`` antennas.
    """

    K: int = 16
    """Number of single-antenna users [K] = RF chains [N_RF]. Paper: 16."""
    S: int = 16
    """Number of sub-arrays [S]. Paper: 16."""
    n: int = 4
    """Antennas per sub-array [n]; N = S n. Paper: 4 (N = 64)."""
    wavelength: float = 3e-3
    """Carrier wavelength [lambda] in metres (f_c = c/lambda = 99.9 GHz). Paper: 3e-3."""
    spacing: float = 0.5
    """Antenna spacing [d/lambda] in wavelengths. Paper: 1/2."""
    r_c: float = 3.0
    """Mean user distance [r_c] in metres. Paper: 3 (Rayleigh distance N^2 lambda/2 =
    6.144 m)."""
    r_var: float = 1.0
    """User distance variance [sigma_r^2] in m^2. Paper: 1."""
    r_min: float = 0.5
    """Minimum user distance in metres: distances are N(r_c, sigma_r^2) conditioned on
    r >= r_min (beamgym choice, docs/readings.md#000-near-field-distance; the paper's normal is
    negative w.p. 0.1%)."""
    placement: str = "single-cell"
    """Angular placement of the users (Sec. II-B, "same manner as in the far-field case"):
    ``"single-cell"`` or ``"spatial-division"``."""
    phi: float = math.pi / 2
    """Single-cell sector angle [phi] in radians. Paper: pi/2."""
    psi: float = math.pi / 16
    """Spatial-division sector width [psi] in radians, <= pi/K. Paper: pi/16."""
    P: float = 1.0
    """Power budget [P] of eq. (34), ||W^a W^D||_F^2 <= P, linear. Paper: 1."""
    snr_db: float | tuple[float, ...] = 15.0
    """SNR = P/sigma^2 in dB, or a tuple (set V) drawn uniformly per instance."""
    csi_error: str = "absolute"
    """Effective-channel CSI error: ``"absolute"`` (Delta G ~ CN(0, sigma_h2) i.i.d., paper
    Sec. IV-B/III-D1), ``"nmse"`` or ``"perfect"``."""
    sigma_h2: float = 0.1
    """CSI error variance [sigma_h^2] per complex entry (``"absolute"``). Paper: 0.1."""
    nmse_db: float = -10.0
    """CSI error NMSE in dB (``"nmse"``; beamgym option)."""
    channel_model: str = "piecewise"
    """True channel: ``"piecewise"`` (eq. (27), the paper's model) or ``"exact"``
    (spherical wave, eq. (25) with exact per-antenna distances; the analog precoder is
    still designed from eq. (30))."""
    n_subcarriers: int = 1
    """Number of subcarriers F (beamgym wideband option); 1 = narrowband (the paper)."""
    bandwidth: float = 10e9
    """Bandwidth B in Hz of the subcarrier grid (used when n_subcarriers > 1); must be below
    the carrier frequency."""
    analog: str = "ttd"
    """Analog hardware: ``"ttd"`` (TTD + PS, eq. (28)) or ``"ps"`` (the TTDs replaced by
    frequency-flat phase shifters; identical when n_subcarriers = 1)."""

    def __post_init__(self) -> None:
        for name in ("K", "S", "n", "n_subcarriers"):
            check_int(getattr(self, name), name)
        if self.N > 4096:
            raise ValueError(f"N = S*n = {self.N} antennas is too large; reduce S or n")
        if self.K > self.N:
            raise ValueError(
                f"hybrid beamforming needs K <= N_RF <= N (here N_RF = K, one RF chain per user, "
                f"paper 000 Sec. IV-B), got K={self.K} and N = S*n = {self.N}; lower K or "
                "raise S or n"
            )
        lam = check_positive(self.wavelength, "wavelength")
        check_positive(self.spacing, "spacing")
        rc = check_positive(self.r_c, "r_c")
        sd = math.sqrt(check_positive(self.r_var, "r_var"))
        rm = check_nonnegative(self.r_min, "r_min")
        if rm <= 0 or (rm - rc) / sd > 8.0:
            raise ValueError(
                f"r_min must be > 0 and at most r_c + 8 sigma_r (metres), got r_min={rm}, "
                f"r_c={rc}, sigma_r={sd:.3g}"
            )
        check_placement(self.placement, self.K, sector=self.phi, psi=self.psi)
        check_positive(self.P, "P")
        object.__setattr__(self, "snr_db", check_snr_set(self.snr_db))
        if self.csi_error not in CSI_ERROR_MODES:
            raise ValueError(f"csi_error must be one of {CSI_ERROR_MODES}, got {self.csi_error!r}")
        check_nonnegative(self.sigma_h2, "sigma_h2")
        check_number(self.nmse_db, "nmse_db")
        if self.channel_model not in NEAR_FIELD_MODELS:
            raise ValueError(
                f"channel_model must be one of {NEAR_FIELD_MODELS}, got {self.channel_model!r}"
            )
        bw = check_positive(self.bandwidth, "bandwidth")
        fc = SPEED_OF_LIGHT / lam
        if bw >= fc:
            raise ValueError(
                f"bandwidth ({bw:.3g} Hz) must be below the carrier frequency c/wavelength = "
                f"{fc:.3g} Hz so that every subcarrier frequency is positive"
            )
        if self.analog not in ANALOG_TYPES:
            raise ValueError(f"analog must be one of {ANALOG_TYPES}, got {self.analog!r}")

    @property
    def N(self) -> int:
        """Number of BS antennas ``N = S n``."""
        return self.S * self.n

    @property
    def spacing_m(self) -> float:
        """Antenna spacing ``d`` in metres."""
        return self.spacing * self.wavelength

    @property
    def carrier(self) -> float:
        r"""Carrier frequency :math:`f_c = c/\lambda` in Hz."""
        return SPEED_OF_LIGHT / self.wavelength


@dataclasses.dataclass(frozen=True)
class NearFieldHybridInstance(TensorDataclass):
    r"""A batch of NearFieldHybrid-v0 instances (batch dimension first, ``F`` subcarriers).

    Attributes:
        H: Complex ``[B, K, N]`` TRUE normalized channel at the carrier,
            :math:`\bar{\mathbf h}_k^T/\sigma` (row ``k``).
        analog: Complex ``[B, N, K]`` analog precoder :math:`\mathbf W^a(\mathbf P)` of
            eq. (30)-(31) at the carrier (unit-norm columns), designed from the positions
            ``r``, ``theta`` as stored (the BS's knowledge, in the task's precision).
        G: Complex ``[B, F, K, K]`` TRUE normalized effective channels
            :math:`\mathbf H_f \mathbf W^a_f` at each subcarrier (``G[:, f, k]`` is
            :math:`\mathbf g_k^T`; TTD phases follow the frequency).
        gram: Complex ``[B, F, K, K]`` analog Gram matrices :math:`(\mathbf W^a_f)^H
            \mathbf W^a_f` (transmit power of a digital precoder, per subcarrier).
        G_est: Complex ``[B, F, K, K]`` estimated effective channels
            :math:`\tilde{\mathbf G} = \mathbf G + \Delta\mathbf G` (what the BS knows).
        snr_db: Real ``[B]`` SNR = P/σ² in dB.
        csi_nmse_db: Real ``[B]`` CSI-quality side info in dB (``σ_h² P/SNR``, ``nmse_db``
            or -100 for perfect CSI).
        power: Real ``[B]`` power budget :math:`P` (linear).
        r: Real ``[B, K]`` user distances in metres.
        theta: Real ``[B, K]`` user angles in radians.
    """

    H: torch.Tensor
    analog: torch.Tensor
    G: torch.Tensor
    gram: torch.Tensor
    G_est: torch.Tensor
    snr_db: torch.Tensor
    csi_nmse_db: torch.Tensor
    power: torch.Tensor
    r: torch.Tensor
    theta: torch.Tensor


@dataclasses.dataclass(frozen=True)
class NearFieldHybridKnown(TensorDataclass):
    r"""What the BS knows about a batch of NearFieldHybrid-v0 instances (batch first).

    Built by :meth:`NearFieldHybridTask.decode_observation`; solvers take it instead of the
    instance, and :meth:`~NearFieldHybridTask.action_to_beamformer` /
    :meth:`~NearFieldHybridTask.beamformer_to_action` accept it in place of an instance.
    Field names are the instance's. The BS knows the users' positions (paper 000 Sec. IV-B:
    it sets the TTD+PS beams from them, eq. (30)), so the observation carries ``(r, θ)`` and
    the analog precoder and its Gram matrices are rebuilt from them with eq. (35), (30),
    (28) and (31) exactly as :meth:`NearFieldHybridTask.sample` builds them.

    Attributes:
        G_est: Complex ``[B, F, K, K]`` estimated effective channels
            :math:`\tilde{\mathbf G} = \mathbf G + \Delta\mathbf G`.
        snr_db: Real ``[B]`` SNR = P/σ² in dB.
        csi_nmse_db: Real ``[B]`` CSI-quality side info in dB.
        power: Real ``[B]`` power budget :math:`P` (linear): the configuration constant
            ``P`` (not observed; :meth:`NearFieldHybridTask.validate_instance` enforces
            ``instance.power == P``).
        r: Real ``[B, K]`` user distances in metres.
        theta: Real ``[B, K]`` user angles in radians.
        analog: Complex ``[B, N, K]`` analog precoder :math:`\mathbf W^a(\mathbf P)` at the
            carrier, rebuilt from ``(r, theta)``.
        gram: Complex ``[B, F, K, K]`` analog Gram matrices :math:`(\mathbf W^a_f)^H
            \mathbf W^a_f` per subcarrier, rebuilt from ``(r, theta)``.
    """

    G_est: torch.Tensor
    snr_db: torch.Tensor
    csi_nmse_db: torch.Tensor
    power: torch.Tensor
    r: torch.Tensor
    theta: torch.Tensor
    analog: torch.Tensor
    gram: torch.Tensor


class NearFieldHybridTask(BeamformingTask[NearFieldHybridInstance, NearFieldHybridConfig]):
    """Batched physics of NearFieldHybrid-v0 (see :class:`NearFieldHybridEnv`)."""

    env_id: ClassVar[str] = "beamgym/NearFieldHybrid-v0"

    instance_cls: ClassVar[type[TensorDataclass]] = NearFieldHybridInstance
    metric_name: ClassVar[str] = "sum_rate"
    metric_sign: ClassVar[int] = 1

    # ---- sizes -------------------------------------------------------------------------
    @property
    def num_users(self) -> int:
        """Number of users ``K``."""
        return int(self.config.K)

    @property
    def obs_dim(self) -> int:
        """Packed estimated effective channels, SNR and CSI quality in dB, user positions."""
        c = self.config
        return packed_size((c.n_subcarriers, c.K, c.K)) + 2 + 2 * c.K

    @property
    def action_dim(self) -> int:
        """Packed digital precoder ``[K, K]`` (N_RF = K)."""
        return packed_size((self.config.K, self.config.K))

    # ---- analog precoder --------------------------------------------------------------
    def _kappas(self) -> list[float]:
        """Subcarrier frequency ratios, then the carrier (1.0) if it is not among them."""
        c = self.config
        kappas = subcarrier_scales(c.n_subcarriers, c.bandwidth, c.carrier).tolist()
        if 1.0 not in kappas:
            kappas.append(1.0)  # the carrier
        return kappas

    def _analog(self, r_sub: torch.Tensor, theta_sub: torch.Tensor, kappa: float) -> torch.Tensor:
        """TTD+PS analog precoder eq. (28)/(30)/(31) at frequency ratio ``kappa``."""
        c = self.config
        return ttd_ps_analog(
            r_sub,
            theta_sub,
            n_sub=c.n,
            wavelength=c.wavelength,
            spacing_m=c.spacing_m,
            freq_scale=kappa,
            time_delay=c.analog == "ttd",
        )

    def analog_from_positions(
        self, r: torch.Tensor, theta: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The BS's analog precoder from the users' positions, paper 000 eq. (35), (30)-(31).

        Sub-array distances and angles from eq. (35)
        (:func:`~beamgym.physics.channels.subarray_positions`), then the optimal TTD+PS
        beams of eq. (30) (:func:`~beamgym.physics.analog.ttd_ps_analog`), computed in double
        precision and cast, exactly as :meth:`sample` does.

        Args:
            r: Real ``[B, K]`` user distances in metres.
            theta: Real ``[B, K]`` user angles in radians.

        Returns:
            ``(analog, gram)``: complex ``[B, N, K]`` precoder at the carrier and ``[B, F, K,
            K]`` Gram matrices :math:`(\mathbf W^a_f)^H\mathbf W^a_f` (``self.cdtype``).
        """
        c = self.config
        bank = self._analog_bank(r, theta)
        kappas = self._kappas()[: c.n_subcarriers]
        gram = torch.stack([bank[x].mH @ bank[x] for x in kappas], 1)
        return bank[1.0].to(self.cdtype), gram.to(self.cdtype)

    def _analog_bank(self, r: torch.Tensor, theta: torch.Tensor) -> dict[float, torch.Tensor]:
        """Complex128 ``[B, N, K]`` analog precoders at every frequency ratio of :meth:`_kappas`.

        Built from the positions *as the BS knows them* (``r``, ``theta`` in the task's
        precision, then promoted to float64), so that :meth:`decode_observation` rebuilds
        exactly the instance's precoder in both precisions.
        """
        c = self.config
        r_sub, theta_sub = subarray_positions(
            r.to(torch.float64),
            theta.to(torch.float64),
            n_subarrays=c.S,
            n_sub=c.n,
            spacing_m=c.spacing_m,
        )
        return {kappa: self._analog(r_sub, theta_sub, kappa) for kappa in self._kappas()}

    # ---- instances ---------------------------------------------------------------------
    def sample(self, generator: torch.Generator, batch_size: int) -> NearFieldHybridInstance:
        """Draw users (angles, distances, gains), then SNRs, then CSI errors (CPU, float64).

        Channels, analog precoders and effective channels are computed in double precision
        and cast at the end.
        """
        c = self.config
        b = check_int(batch_size, "batch_size")
        d = c.spacing_m
        users = near_field_users(
            generator,
            b,
            n_users=c.K,
            n_subarrays=c.S,
            n_sub=c.n,
            spacing_m=d,
            r_center=c.r_c,
            r_var=c.r_var,
            r_min=c.r_min,
            placement=c.placement,
            sector=c.phi,
            psi=c.psi,
            precision="double",
        )
        snr_db = sample_snr_db(generator, b, c.snr_db)
        gain = torch.sqrt(torch.pow(10.0, snr_db / 10.0) / c.P).to(torch.complex128)
        kappas = self._kappas()
        # the BS designs W^a(P) from the positions it knows (the observed r, theta in the
        # task's precision); in double precision these are exactly users.r_sub/theta_sub
        bank = self._analog_bank(users.r.to(self.rdtype), users.theta.to(self.rdtype))
        G_f, gram_f = {}, {}
        for kappa in kappas:
            if c.channel_model == "piecewise":
                H = near_field_piecewise_channel(
                    users.alpha,
                    users.r_sub,
                    users.theta_sub,
                    n_sub=c.n,
                    wavelength=c.wavelength,
                    spacing_m=d,
                    freq_scale=kappa,
                )
            else:
                H = near_field_exact_channel(
                    users.alpha,
                    users.r,
                    users.theta,
                    n_tx=c.N,
                    wavelength=c.wavelength,
                    spacing_m=d,
                    freq_scale=kappa,
                )
            A = bank[kappa]
            H = H * gain[:, None, None]
            if kappa == 1.0:
                H0, A0 = H, A  # the carrier
            G_f[kappa], gram_f[kappa] = H @ A, A.mH @ A
        G = torch.stack([G_f[x] for x in kappas[: c.n_subcarriers]], 1)  # [B, F, K, K]
        gram = torch.stack([gram_f[x] for x in kappas[: c.n_subcarriers]], 1)
        # Delta G per user k over all (subcarrier, RF chain) entries: [B, K, F, K] layout
        G_est = additive_csi_error(
            G.transpose(1, 2).contiguous(),
            generator,
            mode=c.csi_error,
            sigma2=c.sigma_h2,
            nmse_db=c.nmse_db,
        ).transpose(1, 2)
        nmse = expected_csi_nmse_db(
            snr_db, mode=c.csi_error, power=c.P, sigma_h2=c.sigma_h2, nmse_db=c.nmse_db
        )
        cd, rd = self.cdtype, self.rdtype
        inst = NearFieldHybridInstance(
            H=H0.to(cd),
            analog=A0.to(cd),
            G=G.to(cd),
            gram=gram.to(cd),
            G_est=G_est.contiguous().to(cd),
            snr_db=snr_db.to(rd),
            csi_nmse_db=nmse.to(rd),
            power=torch.full((b,), float(c.P), dtype=rd),
            r=users.r.to(rd),
            theta=users.theta.to(rd),
        )
        return inst.to(self.device)

    def validate_instance(self, instance: Any) -> NearFieldHybridInstance:
        """Check type, batch, finiteness, shapes and dtypes of a user-supplied instance."""
        inst = super().validate_instance(instance)
        c = self.config
        f, k, n = c.n_subcarriers, c.K, c.N
        cd, rd = self.cdtype, self.rdtype
        want = {
            "H": ((k, n), cd),
            "analog": ((n, k), cd),
            "G": ((f, k, k), cd),
            "gram": ((f, k, k), cd),
            "G_est": ((f, k, k), cd),
            "snr_db": ((), rd),
            "csi_nmse_db": ((), rd),
            "power": ((), rd),
            "r": ((k,), rd),
            "theta": ((k,), rd),
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
    def observe(self, instance: NearFieldHybridInstance) -> torch.Tensor:
        """``[pack(G_est), snr_db, csi_nmse_db, r, theta]`` as a real ``[B, obs_dim]`` tensor.

        The user positions ``(r, theta)`` are known at the BS (they set the TTD+PS beams,
        eq. (30)); :meth:`decode_observation` rebuilds the analog precoder from them.
        """
        return torch.cat(
            [
                pack_complex(instance.G_est, 3),
                instance.snr_db.unsqueeze(-1),
                instance.csi_nmse_db.unsqueeze(-1),
                instance.r,
                instance.theta,
            ],
            -1,
        )

    def decode_observation(self, observation: torch.Tensor) -> NearFieldHybridKnown:
        """Inverse of :meth:`observe`: the BS-known :class:`NearFieldHybridKnown`.

        ``G_est``, ``snr_db``, ``csi_nmse_db``, ``r`` and ``theta`` are read back exactly;
        ``power`` is the configuration's ``P``; ``analog`` and ``gram`` are rebuilt from the
        positions by :meth:`analog_from_positions`, bit-identical to the instance's (the
        sampler designs the analog precoder from the same rounded positions).

        Args:
            observation: Real ``[B, obs_dim]`` task observation (without the ``horizon > 1``
                extras; slice ``obs[:, :task.obs_dim]``), cast to ``self.rdtype``.

        Returns:
            :class:`NearFieldHybridKnown` on ``self.device``.
        """
        check_tensor(observation, "observation", ndim=2, complex_=False)
        if observation.shape[1] != self.obs_dim:
            raise ValueError(
                f"observation must have shape [B, obs_dim] = [B, {self.obs_dim}] for this "
                f"config, got {tuple(observation.shape)}; drop the horizon extras with "
                "obs[:, :task.obs_dim]"
            )
        c = self.config
        obs = observation.to(device=self.device, dtype=self.rdtype)
        n = packed_size((c.n_subcarriers, c.K, c.K))
        r, theta = obs[:, n + 2 : n + 2 + c.K].clone(), obs[:, n + 2 + c.K :].clone()
        if bool((r <= 0).any()):
            raise ValueError("observation: user distances r (metres) must be > 0")
        analog, gram = self.analog_from_positions(r, theta)
        return NearFieldHybridKnown(
            G_est=unpack_complex(obs[:, :n], (c.n_subcarriers, c.K, c.K)).to(self.cdtype),
            snr_db=obs[:, n].clone(),
            csi_nmse_db=obs[:, n + 1].clone(),
            power=torch.full((obs.shape[0],), float(c.P), dtype=self.rdtype, device=self.device),
            r=r,
            theta=theta,
            analog=analog,
            gram=gram,
        )

    @staticmethod
    def _power(gram: torch.Tensor, W_D: torch.Tensor) -> torch.Tensor:
        r"""Subcarrier-averaged :math:`\|W^a_f W^D\|_F^2 = tr(W^{DH} A_f^H A_f W^D)`.

        :func:`beamgym.physics.projections.weighted_power` with the per-subcarrier Gram
        matrices: evaluated in double precision (differentiable) and cast back, because with
        nearly collinear analog beams the quadratic form cancels heavily, and in float32 two
        evaluations of the same power could then disagree by more than the feasibility
        tolerance.
        """
        return weighted_power(W_D, gram)

    def action_to_beamformer(
        self, action: torch.Tensor, instance: NearFieldHybridInstance | NearFieldHybridKnown
    ) -> tuple[HybridBeamformer, torch.Tensor]:
        r"""Map ``[B, 2K^2]`` actions to full-power hybrid beamformers, paper 000 eq. (24).

        :math:`\tilde{\mathbf W}^D = \mathrm{unpack}(a)` (row-major ``[N_RF, K]``), then

        .. math:: \mathbf W^D = \sqrt P\, \tilde{\mathbf W}^D \Big/ \sqrt{\tfrac1F
                  \textstyle\sum_f \|\mathbf W^a_f \tilde{\mathbf W}^D\|_F^2}

        which is eq. (24) with :math:`\mathbf W^a(\mathbf P)` for ``F = 1`` (with several
        subcarriers the band-averaged transmit power is normalized; beamgym choice). The
        analog part is the instance's eq. (30) precoder. A zero action gives the zero
        digital precoder; ``projected`` is True where the scaling changed
        :math:`\tilde{\mathbf W}^D` (power off by more than 1e-6 relative, or zero). Uses
        only ``analog``, ``gram`` and ``power``, so a :class:`NearFieldHybridKnown` works too.
        """
        c = self.config
        W_raw = unpack_complex(action, (c.K, c.K)).to(self.cdtype)
        pw = self._power(instance.gram, W_raw)
        nz = pw > 0
        W = W_raw * full_power_scale(pw, instance.power).to(self.cdtype)[:, None, None]
        with torch.no_grad():
            projected = ~nz | ((pw - instance.power).abs() > 1e-6 * instance.power)
        return HybridBeamformer(analog=instance.analog, digital=W), projected

    def _check_beamformer(
        self, beamformer: Any, instance: NearFieldHybridInstance | NearFieldHybridKnown
    ) -> torch.Tensor:
        if not isinstance(beamformer, HybridBeamformer):
            raise ValueError(
                "beamformer must be a beamgym.structures.HybridBeamformer, got "
                f"{type(beamformer).__name__}"
            )
        c = self.config
        b = instance.batch_size
        F_, W = beamformer.analog, beamformer.digital
        check_tensor(W, "beamformer.digital", ndim=3, complex_=True)
        check_tensor(F_, "beamformer.analog", ndim=3, complex_=True)
        if tuple(W.shape) != (b, c.K, c.K) or tuple(F_.shape) != (b, c.N, c.K):
            raise ValueError(
                f"beamformer.analog must have shape [B, N, K] = [{b}, {c.N}, {c.K}] and "
                f"beamformer.digital [B, N_RF, K] = [{b}, {c.K}, {c.K}], got "
                f"{tuple(F_.shape)} and {tuple(W.shape)}"
            )
        for part, t in (("analog", F_), ("digital", W)):
            if t.dtype != self.cdtype:
                raise ValueError(
                    f"beamformer.{part} must have dtype {self.cdtype} (precision="
                    f"{self.precision!r}), got {t.dtype}"
                )
        same = F_ is instance.analog or torch.equal(F_, instance.analog)  # cheap common case
        if not same and not torch.allclose(F_, instance.analog, rtol=1e-5, atol=1e-6):
            raise ValueError(
                "beamformer.analog must be the instance's TTD+PS precoder instance.analog "
                "(paper 000 eq. (30)-(31)); only the digital part is designed"
            )
        return W

    def beamformer_to_action(
        self, beamformer: HybridBeamformer, instance: NearFieldHybridInstance | NearFieldHybridKnown
    ) -> torch.Tensor:
        r"""Inverse of :meth:`action_to_beamformer`: ``pack(W_D) / max|pack(W_D)|``.

        Round trip: exact (to rounding) for every digital precoder with band-averaged
        power ``P`` (for ``F = 1``: :math:`\|W^a W^D\|_F^2 = P`), the image of the
        normalization; other nonzero ``W_D`` come back rescaled to full power and
        ``W_D = 0`` maps to the zero action. ``beamformer.analog`` must equal
        ``instance.analog``.
        """
        W = self._check_beamformer(beamformer, instance)
        packed = pack_complex(W, 2)
        peak = packed.abs().amax(-1, keepdim=True)
        return (packed / torch.where(peak > 0, peak, torch.ones_like(peak))).clamp(-1.0, 1.0)

    # ---- evaluation ------------------------------------------------------------------------
    def evaluate(
        self,
        beamformer: HybridBeamformer,
        instance: NearFieldHybridInstance,
        *,
        check_feasible: bool = True,
    ) -> dict[str, torch.Tensor]:
        r"""Sum-rate (bit/s/Hz) on the TRUE effective channel, eq. (33), band-averaged.

        .. math:: R = \frac1F\sum_{f=1}^{F}\sum_{k=1}^{K}\log_2\Big(1 + \frac{|\mathbf
                  g_{k,f}^T\mathbf w_k^D|^2}{1 + \sum_{i\ne k}|\mathbf g_{k,f}^T
                  \mathbf w_i^D|^2}\Big)

        with :math:`\mathbf g_{k,f}^T = \mathbf h_{k,f}^T\mathbf W^a_f` (``F = 1``: eq. (33)
        exactly). Differentiable in the digital precoder; evaluated as given:
        ``feasible`` flags band-averaged power :math:`\le P(1 + 10^{-4})` (eq. (34)); an
        infeasible design raises ``ValueError`` naming the power excess unless
        ``check_feasible=False``.

        Returns:
            ``reward``/``metric``/``sum_rate`` ``[B]``, ``per_user`` band-averaged rates and
            ``sinr`` (at the first subcarrier; the carrier when ``F = 1``) ``[B, K]``,
            ``power`` ``[B]``, ``feasible`` ``[B]`` bool and ``snr_db`` ``[B]``.
        """
        W = self._check_beamformer(beamformer, instance)
        b, f, k, _ = instance.G.shape
        G = instance.G.reshape(b * f, k, k)
        Wf = W.unsqueeze(1).expand(b, f, k, k).reshape(b * f, k, k)
        rates = miso_rates(G, Wf).reshape(b, f, k).mean(1)
        total = rates.sum(-1)
        power = self._power(instance.gram, W)
        with torch.no_grad():
            feasible = power <= instance.power * (1.0 + FEASIBILITY_RTOL)
        if check_feasible:
            raise_if_infeasible(
                feasible,
                power,
                instance.power,
                constraint="||W^a W^D||_F^2 <= P (paper 000 eq. (34))",
                rtol=FEASIBILITY_RTOL,
            )
        return {
            "reward": total,
            "metric": total,
            "sum_rate": total,
            "per_user": rates,
            "sinr": miso_sinr(instance.G[:, 0], W),
            "power": power,
            "feasible": feasible,
            "snr_db": instance.snr_db.clone(),
        }

    # ---- structured helpers for model-based agents ----------------------------------------
    def mmse_beamformer(
        self, instance: NearFieldHybridInstance | NearFieldHybridKnown
    ) -> HybridBeamformer:
        """The paper's "MMSE" digital baseline (Sec. IV-C1) without its gradient steps.

        Paper 000's MMSE beamformer (Sec. III-B2) on the ESTIMATED effective channel of the
        first subcarrier (the carrier when ``F = 1``), scaled to full power by
        :meth:`action_to_beamformer`'s normalization (eq. (24)).
        """
        W0 = mmse_beamformer(instance.G_est[:, 0], instance.power)
        W = normalize_power(W0, instance.power, instance.gram)
        return HybridBeamformer(analog=instance.analog, digital=W)


class NearFieldHybridEnv(BeamformingEnv):
    r"""Near-field multiuser MISO hybrid beamforming with TTD+PS analog precoding (paper 000).

    ## Description

    Paper 000 (Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over
    Sparse Large-Scale MIMO Channels"), Sec. IV-B and IV-C1. A base station with an
    ``N = S n``-antenna half-wavelength ULA split into ``S`` sub-arrays of ``n`` antennas,
    and ``N_RF = K`` RF chains, serves ``K`` single-antenna users inside the Rayleigh
    distance (:math:`N^2\lambda/2` = 6.144 m at the defaults) over line-of-sight near-field
    channels. The channel is the piecewise-far-field model of eq. (27) (each user in the far
    field of every sub-array; sub-array distances and angles from eq. (35)). Each RF chain
    focuses on one user with a true-time-delay + phase-shifter analog beam, eq. (28), set by
    the closed-form optimum eq. (30) from the users' positions (known at the BS); the agent
    designs the digital precoder on the estimated effective channel
    :math:`\tilde{\mathbf G} = \mathbf H\mathbf W^a(\mathbf P) + \Delta\mathbf G`, and the
    reward is the sum-rate eq. (33) on the true effective channel. The defaults (K = 16,
    S = 16, n = 4, λ = 3 mm, d = λ/2, :math:`r_k \sim \mathcal N(3, 1)` m, single cell
    φ = π/2, σ_h² = 0.1, 15 dB) are the near-field setting of Fig. 9 at one SNR; sweep
    ``snr_db`` to trace it, ``placement="spatial-division"`` gives panel (b).

    beamgym choices (see :mod:`beamgym.physics.analog` and docs/readings.md, section 000):
    distances are truncated at ``r_min``; eq. (26) and the TTD sign of eq. (28) are corrected to
    the geometry of
    eq. (35) (with them, eq. (30) gives the maximal gain :math:`b_k = 1` of eq. (29)).
    Options: the exact spherical-wave channel (``channel_model="exact"``) and the wideband
    regime (``n_subcarriers > 1``): the rate is averaged over subcarriers whose channel and
    TTD phases follow the frequency while the phase shifters (and, with ``analog="ps"``, the
    phase shifters replacing the TTDs) stay frequency-flat -- the beam-split effect that
    TTDs counter (docs/readings.md#000-wideband). The digital precoder is shared by all
    subcarriers.

    ## Action Space

    A ``Box(-1, 1, (2K²,), float32)`` (512 by default): the digital precoder
    :math:`\tilde{\mathbf W}^D` packed as ``[vec(Re), vec(Im)]`` (row-major
    ``[N_RF, K]``), scaled to the power budget by eq. (24), :math:`\mathbf W^D = \sqrt P\,
    \tilde{\mathbf W}^D/\|\mathbf W^a(\mathbf P)\tilde{\mathbf W}^D\|_F` (band-averaged
    power with several subcarriers). The zero action gives the zero precoder
    (``projected`` True). ``env.beamformer_to_action`` (``pack(W^D)/max|pack(W^D)|``)
    inverts the map exactly on full-power precoders.

    ## Observation Space

    A ``Box(2FK² + 2K + 2,)`` of float32 (546 by default) holding only what the BS knows:

    | Num                  | Observation                                           | Min   | Max  |
    |----------------------|-------------------------------------------------------|-------|------|
    | 0 ... 2FK²-1         | estimated effective channels ``[F, K, N_RF]``, packed | -Inf* | Inf* |
    | 2FK²                 | SNR in dB                                             | -Inf* | Inf* |
    | 2FK² + 1             | CSI quality, dB (σ_h² P/SNR, nmse_db; -100: perfect)  | -Inf* | Inf* |
    | 2FK²+2 ... 2FK²+K+1  | user distances r_k (m), eq. (35)                      | -Inf* | Inf* |
    | 2FK²+K+2 ... end     | user angles θ_k (rad), eq. (35)                       | -Inf* | Inf* |

    \* The Box bounds are the float32 range (``±3.4e38``) so that the space is finite. The
    user positions are known at the BS, which sets the TTD+PS beams from them (eq. (30));
    ``env.unwrapped.task.decode_observation(obs)`` rebuilds the analog precoder from them and
    returns a :class:`NearFieldHybridKnown` (the input of the model-based agents). With
    ``horizon > 1`` the previous action, the per-user rates it achieved and the elapsed
    fraction of the interval follow.

    ## Rewards

    The sum-rate in bit/s/Hz on the TRUE normalized effective channel, eq. (33) (averaged
    over the ``F`` subcarriers in the wideband option):

    .. math:: r = \frac1F\sum_{f=1}^F\sum_{k=1}^{K} \log_2\Big(1 + \frac{|\mathbf g_{k,f}^H
              \mathbf w_k^D|^2}{1 + \sum_{i\ne k}|\mathbf g_{k,f}^H\mathbf w_i^D|^2}\Big)

    (:math:`\mathbf g^H` as printed: the row of the effective channel that multiplies the
    precoder). ``info`` holds ``sum_rate``, ``per_user`` rates, ``sinr``, ``power``,
    ``feasible``, ``snr_db`` and ``projected``.

    ## Starting State

    Each reset draws, in this order, the user angles (as in the far-field case), the
    distances (normal, truncated at ``r_min``), the LoS gains
    :math:`\alpha_k \sim \mathcal{CN}(0, 1)`, the SNR (fixed or uniform over the set
    ``snr_db``) and the CSI error :math:`\Delta\mathbf G`.

    ## Episode End

    The episode terminates after ``horizon`` steps (default 1: one coherence interval, one
    precoder). There is no truncation.

    ## Arguments

    ```python
    >>> import gymnasium as gym
    >>> import beamgym
    >>> env = gym.make("beamgym/NearFieldHybrid-v0")
    >>> env.observation_space.shape, env.action_space.shape
    ((546,), (512,))
    >>> env = gym.make("beamgym/NearFieldHybrid-v0", n_subcarriers=4, bandwidth=10e9)
    >>> env.observation_space.shape, env.action_space.shape
    ((2082,), (512,))

    ```

    | Parameter       | Type             | Default         | Description                        |
    |-----------------|------------------|-----------------|------------------------------------|
    | `K`             | **int**          | `16`            | users = RF chains                  |
    | `S`             | **int**          | `16`            | sub-arrays                         |
    | `n`             | **int**          | `4`             | antennas per sub-array (N = S n)   |
    | `wavelength`    | **float**        | `3e-3`          | carrier wavelength λ (m)           |
    | `spacing`       | **float**        | `0.5`           | antenna spacing d/λ                |
    | `r_c`           | **float**        | `3.0`           | mean user distance (m)             |
    | `r_var`         | **float**        | `1.0`           | distance variance σ_r² (m²)        |
    | `r_min`         | **float**        | `0.5`           | minimum distance (m)               |
    | `placement`     | **str**          | `"single-cell"` | or `"spatial-division"`            |
    | `phi`           | **float**        | `π/2`           | single-cell sector φ (rad)         |
    | `psi`           | **float**        | `π/16`          | spatial-division sector ψ (rad)    |
    | `P`             | **float**        | `1.0`           | power budget (linear)              |
    | `snr_db`        | **float, tuple** | `15.0`          | SNR = P/σ² (dB), or a set V        |
    | `csi_error`     | **str**          | `"absolute"`    | or `"nmse"`, `"perfect"`           |
    | `sigma_h2`      | **float**        | `0.1`           | CSI error variance (`"absolute"`)  |
    | `nmse_db`       | **float**        | `-10.0`         | CSI error NMSE, dB (`"nmse"`)      |
    | `channel_model` | **str**          | `"piecewise"`   | eq. (27) or `"exact"` (eq. (25))   |
    | `n_subcarriers` | **int**          | `1`             | subcarriers F (1: narrowband)      |
    | `bandwidth`     | **float**        | `10e9`          | bandwidth (Hz), F > 1              |
    | `analog`        | **str**          | `"ttd"`         | `"ttd"` (TTD+PS) or `"ps"` (PS)    |
    | `horizon`       | **int**          | `1`             | steps per coherence interval       |
    | `precision`     | **str**          | `"single"`      | or `"double"`                      |
    | `device`        | **str**          | `"cpu"`         | torch device of the physics        |

    ## Vectorized environment

    ``gym.make_vec("beamgym/NearFieldHybrid-v0", num_envs=n,
    vectorization_mode="vector_entry_point")`` gives :class:`NearFieldHybridVectorEnv`, which
    draws and evaluates all ``n`` instances in one batched call (CPU or CUDA).

    ## Version History

    * v0: Initial version (paper 000 Sec. IV-B; piecewise / exact channel, narrowband and
      wideband TTD+PS or PS-only analog; the observation carries the users' positions, from
      which the BS's analog precoder is rebuilt).
    """

    task_cls: ClassVar[type[BeamformingTask]] = NearFieldHybridTask
    config_cls: ClassVar[type] = NearFieldHybridConfig


class NearFieldHybridVectorEnv(BeamformingVectorEnv):
    """Native batched NearFieldHybrid-v0: ``num_envs`` instances per batched call.

    Same task, config keywords, spaces and reward as :class:`NearFieldHybridEnv`.
    """

    task_cls: ClassVar[type[BeamformingTask]] = NearFieldHybridTask
    config_cls: ClassVar[type] = NearFieldHybridConfig
