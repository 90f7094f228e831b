r"""FarFieldHybrid-v0: far-field MISO downlink hybrid beamforming (papers 000 and 003).

Two analog architectures share one environment:

* ``analog="steering"`` (default) -- paper 000 Sec. IV-A: a predetermined analog precoder of
  beam-steering columns, eq. (18), and a learned digital precoder normalized by eq. (24) on
  000's sparse geometric channel with imperfect CSI (as ``FullyDigitalFDD-v0``).
* ``analog="phase-shifter"`` -- paper 003: a free unit-modulus analog precoder ``F`` and a
  digital precoder ``W`` projected by eq. (7) and eq. (9) on the extended Saleh-Valenzuela
  channel of eq. (2)-(3).

References:
    [000] Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse
          Large-Scale MIMO Channels".
    [003] Nguyen et al., "Fast Deep Unfolded Hybrid Beamforming in Multiuser Large MIMO Systems".
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
from beamgym.physics.analog import steering_analog, steering_angles
from beamgym.physics.channels import (
    SV_NORMALIZATIONS,
    check_placement,
    saleh_valenzuela_channel,
    sparse_geometric_channel,
)
from beamgym.physics.csi import CSI_ERROR_MODES, additive_csi_error
from beamgym.physics.metrics import abs2, miso_sinr
from beamgym.physics.projections import full_power_scale, hybrid_initialization, total_power
from beamgym.structures import HybridBeamformer, TensorDataclass

__all__ = [
    "ANALOG_MODES",
    "FarFieldHybridConfig",
    "FarFieldHybridInstance",
    "FarFieldHybridKnown",
    "FarFieldHybridTask",
    "FarFieldHybridEnv",
    "FarFieldHybridVectorEnv",
]

#: Analog architectures of the environment.
ANALOG_MODES: tuple[str, ...] = ("steering", "phase-shifter")

# Paper defaults per analog mode: (paper 000 Sec. IV-C1 / III-D1, paper 003 Sec. IV).
_MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "steering": {
        "N": 64,
        "N_RF": 16,
        "K": 16,
        "n_paths": 10,
        "snr_db": 15.0,
        "csi_error": "absolute",
    },
    "phase-shifter": {
        "N": 32,
        "N_RF": 4,
        "K": 4,
        "n_paths": 10,
        "snr_db": 10.0,
        "csi_error": "perfect",
    },
}
_STEERING_ONLY: dict[str, Any] = {
    "placement": "single-cell",
    "sector": math.pi / 2,
    "psi": math.pi / 16,
    "sigma_aod": 0.1,
}
_PHASE_SHIFTER_ONLY: dict[str, Any] = {"normalization": "paper"}
#: Relative tolerance of the feasibility flag of :meth:`FarFieldHybridTask.evaluate`.
FEASIBILITY_RTOL = 1e-4


@dataclasses.dataclass(frozen=True)
class FarFieldHybridConfig:
    """Parameters of FarFieldHybrid-v0.

    Fields left at ``None`` take the paper default of the chosen ``analog`` mode in
    ``__post_init__`` (paper 000 Sec. IV-C1 for ``"steering"``, paper 003 Sec. IV for
    ``"phase-shifter"``); the resolved value is stored on the (frozen) config. Fields marked
    *steering only* / *phase-shifter only* must stay ``None`` in the other mode.
    ``dataclasses.replace`` keeps resolved values: to switch mode, build a new config.
    """

    analog: str = "steering"
    """Analog architecture: ``"steering"`` (paper 000 eq. (18), fixed beam-steering columns)
    or ``"phase-shifter"`` (paper 003, free unit-modulus ``F``)."""

    N: int | None = None
    """Number of BS antennas ``N`` (ULA, half-wavelength). Default 64 (000) / 32 (003)."""

    N_RF: int | None = None
    """Number of RF chains ``N_RF`` (000) = ``M`` (003), ``K <= N_RF <= N``. Default 16 / 4."""

    K: int | None = None
    """Number of single-antenna users ``K``. Default 16 (000) / 4 (003)."""

    n_paths: int | None = None
    """Propagation paths per user: ``L`` of 000 eq. (5) / ``P`` of 003 eq. (2). Default 10."""

    snr_db: float | tuple[float, ...] | None = None
    """SNR in dB. A number, or a tuple of SNRs drawn uniformly per instance (000's set V).
    Steering: SNR = P/σ² with P = 1 and the channel normalized as H̄/σ (000 Sec. III-D1, with
    σ instead of the printed σ², docs/readings.md#000-snr-sigma). Phase-shifter: σ_n² = 1 and
    P_t = SNR (003 does not specify the split; docs/readings.md#003-snr-split). Default 15 dB (000
    Figs. 3-5) / 10 dB (003 Fig. 2(a))."""

    csi_error: str | None = None
    """CSI error model: ``"absolute"`` (000: ΔG ~ CN(0, sigma_h2) i.i.d. on the normalized
    effective channel), ``"nmse"`` (error power ``nmse_db`` relative to the channel) or
    ``"perfect"`` (as 003 assumes). Default ``"absolute"`` / ``"perfect"``."""

    sigma_h2: float = 0.1
    """Variance σ_h² of the additive CSI error for ``csi_error="absolute"`` (000 Sec. III-D1)."""

    nmse_db: float = -10.0
    """Normalized mean-squared CSI error in dB for ``csi_error="nmse"`` (beamgym option)."""

    placement: str | None = None
    """*Steering only.* User placement of 000 Sec. II-B: ``"single-cell"`` (default) or
    ``"spatial-division"`` (needs ``N_RF = K``)."""

    sector: float | None = None
    """*Steering only.* Single-cell sector angle φ in rad, users in [-φ/2, φ/2]. Default π/2
    (000 Sec. IV-C2)."""

    psi: float | None = None
    """*Steering only.* Spatial-division sector width ψ in rad, 0 < ψ <= π/K. Default π/16
    (000 Sec. IV-C2)."""

    sigma_aod: float | None = None
    """*Steering only.* Standard deviation σ_γ of the path AODs around the user azimuth, in
    rad (000 eq. (7)). Default 0.1."""

    normalization: str | None = None
    """*Phase-shifter only.* Channel scaling of 003 eq. (2): ``"paper"`` (as printed,
    E‖h_k‖² = P paths; default) or ``"scaled"`` (√(N/P), E‖h_k‖² = N)."""

    def __post_init__(self) -> None:
        if self.analog not in ANALOG_MODES:
            raise ValueError(f"analog must be one of {ANALOG_MODES}, got {self.analog!r}")
        for name, value in _MODE_DEFAULTS[self.analog].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        own, other = (
            (_STEERING_ONLY, _PHASE_SHIFTER_ONLY)
            if self.analog == "steering"
            else (_PHASE_SHIFTER_ONLY, _STEERING_ONLY)
        )
        for name, value in own.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        for name in other:
            if getattr(self, name) is not None:
                raise ValueError(
                    f"{name} applies only to analog="
                    f"{'steering' if self.analog == 'phase-shifter' else 'phase-shifter'!r}; "
                    f"leave it unset for analog={self.analog!r}"
                )
        n = check_int(self.N, "N")
        n_rf = check_int(self.N_RF, "N_RF")
        k = check_int(self.K, "K")
        check_int(self.n_paths, "n_paths")
        if not k <= n_rf <= n:
            raise ValueError(
                f"hybrid beamforming needs K <= N_RF <= N (one RF chain per user at least, "
                f"paper 000 Sec. IV-A), got K={k}, N_RF={n_rf}, N={n}; adjust N_RF"
            )
        object.__setattr__(self, "snr_db", check_snr_set(self.snr_db))
        if self.csi_error not in CSI_ERROR_MODES:
            raise ValueError(f"csi_error must be one of {CSI_ERROR_MODES}, got {self.csi_error!r}")
        check_positive(self.sigma_h2, "sigma_h2")
        check_number(self.nmse_db, "nmse_db")
        if self.analog == "steering":
            check_placement(self.placement, k, sector=self.sector, psi=self.psi)
            if self.placement == "spatial-division" and n_rf != k:
                raise ValueError(
                    f"placement='spatial-division' steers N_RF = K*M beams (paper 000 Sec. "
                    f"IV-A), got N_RF={n_rf} and K={k}; set N_RF={k}"
                )
            check_nonnegative(self.sigma_aod, "sigma_aod")
        elif self.normalization not in SV_NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {SV_NORMALIZATIONS}, got {self.normalization!r}"
            )


@dataclasses.dataclass(frozen=True)
class FarFieldHybridInstance(TensorDataclass):
    r"""A batch of FarFieldHybrid-v0 problem instances (batch dimension first).

    Attributes:
        H: ``[B, K, N]`` complex TRUE channel, row ``k`` is :math:`\mathbf h_k^H`. Steering:
            the normalized channel :math:`\bar{\mathbf H}/\sigma` (unit noise, P = 1);
            phase-shifter: 003's channel (unit noise, :math:`P_t` = SNR).
        H_est: Estimated CSI known at the BS. Steering: ``[B, K, N_RF]`` estimated effective
            channel :math:`\tilde{\mathbf G} = \mathbf H \mathbf W^a + \Delta\mathbf G`
            (000 Sec. IV-A). Phase-shifter: ``[B, K, N]`` estimated channel
            :math:`\tilde{\mathbf H}` (equal to ``H`` with ``csi_error="perfect"``).
        snr_db: ``[B]`` real SNR in dB.
        power: ``[B]`` real power budget :math:`P` / :math:`P_t` (linear).
        noise_var: ``[B]`` real noise variance (1 in both modes).
    """

    H: torch.Tensor
    H_est: torch.Tensor
    snr_db: torch.Tensor
    power: torch.Tensor
    noise_var: torch.Tensor


@dataclasses.dataclass(frozen=True)
class FarFieldHybridKnown(TensorDataclass):
    r"""What the BS knows about a batch of FarFieldHybrid-v0 instances (batch dimension first).

    Decoded exactly from the observation by :meth:`FarFieldHybridTask.decode_observation`;
    solvers see only this view, never the true channel. The field names equal those of
    :class:`FarFieldHybridInstance`. In steering mode the predetermined analog precoder
    :math:`\mathbf W^a` of paper 000 eq. (18) is a constant of the configuration
    (``task.analog_precoder``), not a per-instance field.

    Attributes:
        H_est: Estimated CSI. Steering: ``[B, K, N_RF]`` estimated effective channel
            :math:`\tilde{\mathbf G}` (000 Sec. IV-A); phase-shifter: ``[B, K, N]`` estimated
            channel :math:`\tilde{\mathbf H}` (rows :math:`\tilde{\mathbf h}_k^H`, 003).
        snr_db: ``[B]`` real SNR in dB (observed).
        power: ``[B]`` real power budget, from the SNR: :math:`P = 1` (steering, 000
            Sec. III-D1) or :math:`P_t = 10^{\mathrm{SNR}/10}` (phase-shifter, σ_n² = 1).
        noise_var: ``[B]`` real noise variance (1 in both modes, a convention of the env).
    """

    H_est: torch.Tensor
    snr_db: torch.Tensor
    power: torch.Tensor
    noise_var: torch.Tensor


class FarFieldHybridTask(BeamformingTask[FarFieldHybridInstance, FarFieldHybridConfig]):
    r"""Batched physics of FarFieldHybrid-v0 (see :class:`FarFieldHybridEnv`).

    Attributes:
        analog_precoder: Steering mode: the predetermined ``[N, N_RF]`` analog precoder
            :math:`\mathbf W^a(\boldsymbol\beta)` of paper 000 eq. (18); ``None`` in
            phase-shifter mode.
    """

    env_id: ClassVar[str] = "beamgym/FarFieldHybrid-v0"

    instance_cls: ClassVar[type[TensorDataclass]] = FarFieldHybridInstance
    metric_name: ClassVar[str] = "sum_rate"
    metric_sign: ClassVar[int] = 1

    def __init__(self, config: FarFieldHybridConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = config
        self.steering = c.analog == "steering"
        self.analog_precoder: torch.Tensor | None = None
        if self.steering:
            self.analog_precoder = _steering_precoder(c, self.precision).to(self.device)

    # ---- sizes -------------------------------------------------------------------------
    @property
    def num_users(self) -> int:
        """Number of users ``K``."""
        return int(self.config.K)

    @property
    def csi_shape(self) -> tuple[int, int]:
        """Shape ``(K, N_RF)`` (steering) or ``(K, N)`` (phase-shifter) of ``H_est``."""
        c = self.config
        return (c.K, c.N_RF) if self.steering else (c.K, c.N)

    @property
    def obs_dim(self) -> int:
        """Packed estimated CSI plus the SNR in dB."""
        return packed_size(self.csi_shape) + 1

    @property
    def _n_phases(self) -> int:
        return 0 if self.steering else self.config.N * self.config.N_RF

    @property
    def action_dim(self) -> int:
        """Analog phases (phase-shifter only) followed by the packed digital precoder."""
        return self._n_phases + packed_size((self.config.N_RF, self.config.K))

    # ---- instances ---------------------------------------------------------------------
    def sample(self, generator: torch.Generator, batch_size: int) -> FarFieldHybridInstance:
        """Draw channels, then SNRs, then CSI errors, all from ``generator`` (on the CPU)."""
        c = self.config
        b = check_int(batch_size, "batch_size")
        if self.steering:
            H_bar = _sparse_channel(generator, b, c, self.precision)
            snr_db = sample_snr_db(generator, b, c.snr_db).to(self.rdtype)
            # 000: H = H_bar / sigma with SNR = P / sigma^2, P = 1 (docs/readings.md#000-snr-sigma)
            H = H_bar * torch.pow(10.0, snr_db / 20.0).to(self.cdtype)[:, None, None]
            G = H @ self.analog_precoder.cpu()  # effective channel G = H W^a
            H_est = _csi_error(G, generator, c)
            power = torch.ones(b, dtype=self.rdtype)
        else:
            H = saleh_valenzuela_channel(
                generator,
                b,
                n_tx=c.N,
                n_users=c.K,
                n_paths=c.n_paths,
                normalization=c.normalization,
                precision=self.precision,
            )
            snr_db = sample_snr_db(generator, b, c.snr_db).to(self.rdtype)
            H_est = _csi_error(H, generator, c)
            power = torch.pow(10.0, snr_db / 10.0)  # P_t = SNR with sigma_n^2 = 1
        inst = FarFieldHybridInstance(
            H=H,
            H_est=H_est,
            snr_db=snr_db,
            power=power,
            noise_var=torch.ones(b, dtype=self.rdtype),
        )
        return inst.to(self.device)

    def validate_instance(self, instance: Any) -> FarFieldHybridInstance:
        """Check type, batch, finiteness, shapes and dtypes of a user-supplied instance."""
        inst = super().validate_instance(instance)
        c = self.config
        want = {
            "H": (c.K, c.N),
            "H_est": self.csi_shape,
            "snr_db": (),
            "power": (),
            "noise_var": (),
        }
        for name, shape in want.items():
            t = getattr(inst, name)
            dtype = self.cdtype if name.startswith("H") else self.rdtype
            if tuple(t.shape[1:]) != shape or t.dtype != dtype:
                raise ValueError(
                    f"instance.{name} must have shape [B, {', '.join(map(str, shape))}] and "
                    f"dtype {dtype} for this config, got {tuple(t.shape)} {t.dtype}"
                )
        if bool((inst.power <= 0).any()) or bool((inst.noise_var <= 0).any()):
            raise ValueError("instance.power and instance.noise_var must be > 0")
        check_instance_snr_db(inst.snr_db)
        return inst

    # ---- observation and action ---------------------------------------------------------
    def observe(self, instance: FarFieldHybridInstance) -> torch.Tensor:
        """``[pack(H_est), snr_db]`` as a real ``[B, obs_dim]`` tensor."""
        return torch.cat([pack_complex(instance.H_est, 2), instance.snr_db.unsqueeze(-1)], -1)

    def decode_observation(self, observation: torch.Tensor) -> FarFieldHybridKnown:
        """Inverse of :meth:`observe`: the BS-known :class:`FarFieldHybridKnown`.

        ``H_est`` is unpacked from the first ``obs_dim - 1`` entries and ``snr_db`` is the last
        one; the power budget follows from the SNR exactly as :meth:`sample` computes it
        (``P = 1`` steering, ``P_t = 10^(snr_db/10)`` phase-shifter) and the noise variance
        is 1. In double precision ``decode_observation(observe(x))`` reproduces ``x``'s known
        fields bit for bit.

        Args:
            observation: Real ``[B, obs_dim]`` task observation (without the ``horizon > 1``
                extras; slice ``obs[:, :task.obs_dim]`` first).

        Returns:
            The known view on ``self.device`` in ``self.cdtype`` / ``self.rdtype``.
        """
        check_tensor(observation, "observation", ndim=2, complex_=False)
        if observation.shape[1] != self.obs_dim:
            raise ValueError(
                f"observation must have shape [B, obs_dim] = [B, {self.obs_dim}], got "
                f"{tuple(observation.shape)}; slice off the horizon > 1 extras first"
            )
        obs = observation.to(device=self.device, dtype=self.rdtype)
        H_est = unpack_complex(obs[:, :-1], self.csi_shape).to(self.cdtype)
        snr_db = obs[:, -1].clone()
        if self.steering:
            power = torch.ones_like(snr_db)
        else:
            power = torch.pow(10.0, snr_db / 10.0)  # P_t = SNR with sigma_n^2 = 1, as sample()
        return FarFieldHybridKnown(
            H_est=H_est, snr_db=snr_db, power=power, noise_var=torch.ones_like(snr_db)
        )

    def action_to_beamformer(
        self, action: torch.Tensor, instance: FarFieldHybridInstance | FarFieldHybridKnown
    ) -> tuple[HybridBeamformer, torch.Tensor]:
        """Map ``[B, action_dim]`` actions to feasible hybrid beamformers (differentiable).

        Phase-shifter: ``F = exp(j*pi*a[:, :N*N_RF])`` (row-major ``[N, N_RF]``, unit modulus
        by construction, i.e. eq. (7) holds), steering: ``F = W^a``. The digital part
        ``W~ = unpack(a[:, N*N_RF:])`` (``[N_RF, K]``) is scaled by eq. (9) / 000 eq. (24),
        ``W = sqrt(P) W~ / ||F W~||_F``. If ``F W~ = 0`` (e.g. an all-zero digital action),
        ``W~`` is replaced by ``[I_K; 0]`` first, so the map is defined on the whole box.
        ``projected`` is True where the scaling changed ``W~`` by more than 1e-6 (relative).
        Only the known ``power`` of ``instance`` is used, so a :class:`FarFieldHybridKnown`
        may stand in for the instance.
        """
        c = self.config
        b = action.shape[0]
        if self.steering:
            F = self.analog_precoder.expand(b, c.N, c.N_RF)
        else:
            theta = math.pi * action[:, : self._n_phases].reshape(b, c.N, c.N_RF)
            F = torch.complex(torch.cos(theta), torch.sin(theta)).to(self.cdtype)
        W_raw = unpack_complex(action[:, self._n_phases :], (c.N_RF, c.K)).to(self.cdtype)
        zero = total_power(F @ W_raw) <= torch.finfo(self.rdtype).tiny
        fallback = torch.eye(c.N_RF, c.K, dtype=self.cdtype, device=action.device)
        W_raw = torch.where(zero[:, None, None], fallback, W_raw)
        scale = full_power_scale(total_power(F @ W_raw), instance.power)
        W = W_raw * scale.to(self.cdtype)[:, None, None]
        projected = zero | ((scale - 1.0).abs() > 1e-6)
        return HybridBeamformer(analog=F, digital=W), projected

    def beamformer_to_action(
        self, beamformer: HybridBeamformer, instance: FarFieldHybridInstance | FarFieldHybridKnown
    ) -> torch.Tensor:
        """Inverse of :meth:`action_to_beamformer` on the feasible set.

        Phase-shifter: ``a_F = angle(F)/pi`` (in ``(-1, 1]``; a non-unit-modulus ``F`` is
        first projected by eq. (7), so only its phases count), ``a_W = pack(W)/max|pack(W)|``.
        Steering: ``a = pack(W)/max|pack(W)|``; ``F`` must equal the predetermined ``W^a``.
        Round trip: ``action_to_beamformer(beamformer_to_action(F, W)) == (F, W)`` (to
        floating-point rounding) for every unit-modulus ``F`` (steering: ``F = W^a``) and
        every ``W`` with ``||F W||_F^2 = P`` -- exactly the image of the action map. Other
        ``W`` come back rescaled to the power budget; ``W = 0`` maps to the zero action.
        ``instance`` (or its :class:`FarFieldHybridKnown`) only fixes the batch size.
        """
        F, W = self._check_beamformer(beamformer, instance)
        c = self.config
        packed = pack_complex(W, 2)
        peak = packed.abs().amax(-1, keepdim=True)
        a_w = packed / torch.where(peak > 0, peak, torch.ones_like(peak))
        if self.steering:
            if not torch.allclose(F, self.analog_precoder.expand_as(F), rtol=1e-5, atol=1e-6):
                raise ValueError(
                    "with analog='steering' the analog precoder is fixed to task.analog_precoder "
                    "(paper 000 eq. (18)); only the digital part is an action"
                )
            return a_w.clamp(-1.0, 1.0)
        a_f = (torch.angle(F) / math.pi).reshape(F.shape[0], c.N * c.N_RF)
        return torch.cat([a_f, a_w], -1).clamp(-1.0, 1.0)

    def _check_beamformer(
        self, beamformer: Any, instance: FarFieldHybridInstance | FarFieldHybridKnown
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(beamformer, HybridBeamformer):
            raise ValueError(
                f"beamformer must be a beamgym.structures.HybridBeamformer, got "
                f"{type(beamformer).__name__}"
            )
        c = self.config
        F, W = beamformer.analog, beamformer.digital
        check_tensor(F, "beamformer.analog", ndim=3, complex_=True)
        check_tensor(W, "beamformer.digital", ndim=3, complex_=True)
        b = instance.batch_size
        if tuple(F.shape) != (b, c.N, c.N_RF) or tuple(W.shape) != (b, c.N_RF, c.K):
            raise ValueError(
                f"beamformer.analog must have shape [B, N, N_RF] = [{b}, {c.N}, {c.N_RF}] and "
                f"beamformer.digital [B, N_RF, K] = [{b}, {c.N_RF}, {c.K}], got "
                f"{tuple(F.shape)} and {tuple(W.shape)}"
            )
        for part, t in (("analog", F), ("digital", W)):
            if t.dtype != self.cdtype:
                raise ValueError(
                    f"beamformer.{part} must have dtype {self.cdtype} (precision="
                    f"{self.precision!r}), got {t.dtype}"
                )
        return F, W

    # ---- evaluation ------------------------------------------------------------------------
    def evaluate(
        self,
        beamformer: HybridBeamformer,
        instance: FarFieldHybridInstance,
        *,
        check_feasible: bool = True,
    ) -> dict[str, torch.Tensor]:
        r"""Sum-rate (bit/s/Hz) of hybrid beamformers on the TRUE channel (differentiable).

        .. math:: R = \sum_k \log_2\Big(1 + \frac{|\mathbf h_k^H \mathbf F \mathbf w_k|^2}
                  {\sigma^2 + \sum_{i\ne k}|\mathbf h_k^H \mathbf F \mathbf w_i|^2}\Big)

        (paper 000 eq. (22) with :math:`\mathbf g_k^H = \mathbf h_k^H \mathbf W^a`, paper 003
        eq. (4)). The beamformer is evaluated as given (no projection); ``feasible`` flags
        whether it satisfies the paper's constraints, to a relative tolerance of 1e-4:
        steering, paper 000 eq. (23): :math:`\|\mathbf F\mathbf W\|_F^2 \le P` and
        ``F`` the predetermined steering precoder; phase-shifter, paper 003 eq. (5b)-(5c):
        unit-modulus ``F`` and :math:`\|\mathbf F\mathbf W\|_F^2 = P_t` (an equality). An
        infeasible design raises ``ValueError`` naming the violation unless
        ``check_feasible=False``.

        Returns:
            ``reward``/``metric``/``sum_rate`` ``[B]``, ``per_user`` (rates) and ``sinr``
            ``[B, K]``, ``power`` :math:`\|\mathbf F\mathbf W\|_F^2` ``[B]`` and
            ``feasible`` ``[B]`` bool.
        """
        F, W = self._check_beamformer(beamformer, instance)
        FW = F @ W
        # eq. (4) / 000 eq. (22) on the effective precoder F W: SINR once, rates from it
        sinr = miso_sinr(instance.H, FW, instance.noise_var)
        rates = torch.log1p(sinr) / math.log(2.0)
        total = rates.sum(-1)
        power = abs2(FW).sum((-2, -1))
        with torch.no_grad():
            if self.steering:  # 000 eq. (23): an inequality
                ok = power <= instance.power * (1.0 + FEASIBILITY_RTOL)
                dev2 = abs2(F - self.analog_precoder).amax((-2, -1))
                ref2 = abs2(self.analog_precoder).amax()
                ok = ok & (dev2 <= FEASIBILITY_RTOL**2 * ref2)
                constraint = (
                    "||F W||_F^2 <= P with F the steering precoder W^a (paper 000 eq. (18), (23))"
                )
            else:  # 003 eq. (5c): an equality
                ok = (power - instance.power).abs() <= FEASIBILITY_RTOL * instance.power
                ok = ok & ((abs2(F) - 1.0).abs().amax((-2, -1)) <= FEASIBILITY_RTOL)
                constraint = "|F_ij| = 1 and ||F W||_F^2 = P_t (paper 003 eq. (5b)-(5c))"
        if check_feasible:
            raise_if_infeasible(
                ok,
                power,
                instance.power,
                constraint=constraint,
                rtol=FEASIBILITY_RTOL,
                equality=not self.steering,
            )
        return {
            "reward": total,
            "metric": total,
            "sum_rate": total,
            "per_user": rates,
            "sinr": sinr,
            "power": power,
            "feasible": ok,
        }

    # ---- structured helpers for model-based agents ----------------------------------------
    def initial_beamformer(
        self, instance: FarFieldHybridInstance | FarFieldHybridKnown
    ) -> HybridBeamformer:
        """Paper 003's PGA start, eq. (12)-(13) (aligned sign, pinv), from the ESTIMATED CSI.

        Uses only ``H_est`` and ``power``, so an instance or its known view
        (:meth:`decode_observation`) give the same result.

        Phase-shifter mode only; needs ``N_RF = K`` (raises ``ValueError`` otherwise).
        """
        if self.steering:
            raise ValueError(
                "initial_beamformer implements paper 003 eq. (12)-(13) and needs "
                "analog='phase-shifter'"
            )
        F0, W0 = hybrid_initialization(instance.H_est, instance.power, n_rf=self.config.N_RF)
        return HybridBeamformer(analog=F0, digital=W0)


# ---- module helpers ---------------------------------------------------------------------------
def _csi_error(
    H: torch.Tensor, generator: torch.Generator, config: FarFieldHybridConfig
) -> torch.Tensor:
    """Estimated CSI of paper 000's additive Gaussian error model (``H`` if perfect)."""
    return additive_csi_error(
        H, generator, mode=config.csi_error, sigma2=config.sigma_h2, nmse_db=config.nmse_db
    )


def _sparse_channel(
    generator: torch.Generator, batch: int, config: FarFieldHybridConfig, precision: str
) -> torch.Tensor:
    """Paper 000's un-normalized sparse MISO channel ``H_bar`` ``[B, K, N]``."""
    H_bar, _ = sparse_geometric_channel(
        generator,
        batch,
        n_tx=config.N,
        n_users=config.K,
        n_rx=1,
        n_paths=config.n_paths,
        placement=config.placement,
        sector=config.sector,
        psi=config.psi,
        sigma_aod=config.sigma_aod,
        sigma_aoa=config.sigma_aod,
        precision=precision,
    )
    return H_bar


def _steering_precoder(config: FarFieldHybridConfig, precision: str) -> torch.Tensor:
    """Paper 000 eq. (18): ``[N, N_RF]`` beam-steering analog precoder."""
    angles = steering_angles(
        config.N_RF,
        placement=config.placement,
        sector=config.sector,
        psi=config.psi,
        n_users=config.K,
        n_rx=1,
        precision=precision,
    )
    return steering_analog(angles, config.N, spacing=0.5)


class FarFieldHybridEnv(BeamformingEnv):
    r"""Far-field multiuser MISO downlink hybrid beamforming (papers 000 and 003).

    ## Description

    A base station with an ``N``-antenna half-wavelength ULA and ``N_RF`` RF chains serves
    ``K`` single-antenna users with a fully connected hybrid precoder
    :math:`\mathbf F\mathbf W` (:math:`\mathbf F`: ``N x N_RF`` analog, :math:`\mathbf W`:
    ``N_RF x K`` digital). One step designs the precoder for one channel realization from the
    CSI known at the BS; the reward is the sum-rate on the true channel. Two analog
    architectures (``analog=``):

    * ``"steering"`` (default): paper 000 (Zhang, Johnston, Wang), Sec. IV-A. The analog
      precoder is predetermined, eq. (18): beam-steering columns
      :math:`\mathbf a_N(\beta_n)` spread over the sector (single-cell) or the users' sectors
      (spatial-division); the agent designs only the digital precoder on the effective channel
      :math:`\mathbf G = \mathbf H\mathbf W^a`. Channel: 000's sparse geometric model (Sec.
      II-B, L = 10 paths, AOD spread 0.1 rad), normalized :math:`\mathbf H = \bar{\mathbf
      H}/\sigma` with unit noise and P = 1, as ``FullyDigitalFDD-v0``. The defaults (N = 64,
      N_RF = K = 16, single cell with φ = π/2, σ_h² = 0.1) are the far-field setting of
      000 Fig. 8 (Sec. IV-C) at one SNR; sweep ``snr_db`` to trace the figure.
    * ``"phase-shifter"``: paper 003 (Nguyen et al.). Free unit-modulus analog precoder,
      constraint (5b), and digital precoder with :math:`\|\mathbf F\mathbf W\|_F^2 = P_t`,
      (5c). Channel: extended Saleh-Valenzuela, eq. (2)-(3). The defaults (N = 32,
      K = N_RF = 4, P = 10 paths, perfect CSI, 10 dB, σ_n² = 1, P_t = SNR, channel as printed)
      are those of 003 Fig. 2(a) (Sec. IV); Fig. 2(b) sweeps ``snr_db``. Reference means at
      10 dB (fully digital ZF, hybrid ZF, the eq. (12)-(13) start): BENCHMARKS.md, section
      "Reference values of the system models".

    ## Action Space

    A ``Box(-1, 1, (action_dim,), float32)``.

    * Steering: ``action_dim = 2 N_RF K`` (512 by default): the digital precoder
      :math:`\tilde{\mathbf W}` packed as ``[vec(Re), vec(Im)]`` (row-major ``[N_RF, K]``),
      scaled to the budget by 000 eq. (24), :math:`\mathbf W = \sqrt P\,\tilde{\mathbf W}/
      \|\mathbf W^a\tilde{\mathbf W}\|_F`.
    * Phase-shifter: ``action_dim = N N_RF + 2 N_RF K`` (160 by default): first the analog
      phases, :math:`[\mathbf F]_{nm} = e^{j\pi a_{n N_{RF} + m}}` (unit modulus, so eq. (7)
      holds by construction), then the packed digital precoder scaled by 003 eq. (9) with
      the square root (docs/readings.md#003-eq9-sqrt),
      :math:`\mathbf W = \sqrt{P_t}\,\tilde{\mathbf W}/
      \|\mathbf F\tilde{\mathbf W}\|_F`.

    If :math:`\mathbf F\tilde{\mathbf W} = 0`, :math:`\tilde{\mathbf W}` is replaced by
    :math:`[\mathbf I_K; \mathbf 0]`. ``info["projected"]`` tells whether the scaling changed
    :math:`\tilde{\mathbf W}`. ``env.beamformer_to_action`` inverts the map on the feasible
    set (see :meth:`FarFieldHybridTask.beamformer_to_action`).

    ## Observation Space

    A ``Box(obs_dim,)`` of float32 holding only what the BS knows:

    | Num         | Observation                                             | Min   | Max  |
    |-------------|---------------------------------------------------------|-------|------|
    | 0 ... 2KD-1 | estimated CSI ``[K, D]``, packed ``[vec(Re), vec(Im)]`` | -Inf* | Inf* |
    | 2KD         | SNR in dB                                               | -Inf* | Inf* |

    \* The Box bounds are the float32 range (``±3.4e38``) so that the space is finite.

    Steering: ``D = N_RF``, the estimated effective channel :math:`\tilde{\mathbf G} =
    \mathbf H\mathbf W^a + \Delta\mathbf G` (000 Sec. IV-A; obs_dim 513 by default).
    Phase-shifter: ``D = N``, the estimated channel :math:`\tilde{\mathbf H}` (rows
    :math:`\tilde{\mathbf h}_k^H`; obs_dim 257 by default). With ``horizon > 1`` the previous
    action, the per-user rates it achieved and the elapsed fraction of the interval follow.

    ``env.unwrapped.task.decode_observation(obs)`` inverts the task part exactly into a
    :class:`FarFieldHybridKnown` (``H_est``, ``snr_db``, the power budget implied by the SNR
    and the unit noise variance): everything a solver may use. In steering mode the fixed
    analog precoder is ``task.analog_precoder``.

    ## Rewards

    The sum-rate in bit/s/Hz on the TRUE channel, paper 003 eq. (4) / paper 000 eq. (22):

    .. math:: r = \sum_{k=1}^K \log_2\Big(1 + \frac{|\mathbf h_k^H\mathbf F\mathbf w_k|^2}
              {\sigma^2 + \sum_{i\ne k}|\mathbf h_k^H\mathbf F\mathbf w_i|^2}\Big)

    with :math:`\sigma^2 = 1`. ``info`` holds ``sum_rate``, ``per_user`` rates, ``sinr``,
    ``power`` (:math:`\|\mathbf F\mathbf W\|_F^2`), ``feasible`` and ``projected``.

    ## Starting State

    Each reset draws one channel (steering: 000 eq. (5)-(7), users in the sector;
    phase-shifter: 003 eq. (2)-(3), gains CN(0, 1), angles U(0, 2π)), its SNR (fixed, or
    drawn uniformly from the set ``snr_db=(...)``) and the CSI error of ``csi_error``
    (steering default: ΔG ~ CN(0, 0.1) i.i.d. on the normalized effective channel, 000 Sec.
    III-D1; phase-shifter default: perfect CSI).

    ## Episode End

    The episode terminates after ``horizon`` steps (default 1: one coherence interval, one
    beamformer). There is no truncation.

    ## Arguments

    ```python
    >>> import gymnasium as gym
    >>> import beamgym
    >>> env = gym.make("beamgym/FarFieldHybrid-v0", analog="phase-shifter", snr_db=(0.0, 20.0))
    >>> env.observation_space.shape, env.action_space.shape
    ((257,), (160,))
    >>> env = gym.make("beamgym/FarFieldHybrid-v0")  # steering, paper 000 defaults
    >>> env.observation_space.shape, env.action_space.shape
    ((513,), (512,))

    ```

    Defaults are given as steering / phase-shifter ("--": not applicable, leave unset).

    | Parameter       | Type           | Default             | Description                      |
    |-----------------|----------------|---------------------|----------------------------------|
    | `analog`        | **str**        | `"steering"`        | `"steering"` or `"phase-shifter"`|
    | `N`             | **int**        | `64` / `32`         | BS antennas                      |
    | `N_RF`          | **int**        | `16` / `4`          | RF chains, `K <= N_RF <= N`      |
    | `K`             | **int**        | `16` / `4`          | single-antenna users             |
    | `n_paths`       | **int**        | `10` / `10`         | paths per user (L / P)           |
    | `snr_db`        | float, tuple   | `15.0` / `10.0`     | SNR (dB), fixed or a set         |
    | `csi_error`     | **str**        | `"absolute"` / `"perfect"` | or `"nmse"`              |
    | `sigma_h2`      | **float**      | `0.1`               | error variance (`"absolute"`)    |
    | `nmse_db`       | **float**      | `-10.0`             | error NMSE in dB (`"nmse"`)      |
    | `placement`     | **str**        | `"single-cell"`/--  | or `"spatial-division"`          |
    | `sector`        | **float**      | `π/2` / --          | single-cell sector φ (rad)       |
    | `psi`           | **float**      | `π/16` / --         | spatial-division sector ψ (rad)  |
    | `sigma_aod`     | **float**      | `0.1` / --          | AOD spread σ_γ (rad)             |
    | `normalization` | **str**        | -- / `"paper"`      | `"paper"` or `"scaled"` channel  |
    | `horizon`       | **int**        | `1`                 | steps per coherence interval     |
    | `precision`     | **str**        | `"single"`          | `"single"` or `"double"`         |
    | `device`        | **str**        | `"cpu"`             | torch device of the physics      |

    ## Vectorized environment

    ``gym.make_vec("beamgym/FarFieldHybrid-v0", num_envs=n,
    vectorization_mode="vector_entry_point")`` gives :class:`FarFieldHybridVectorEnv`, which
    draws and evaluates all ``n`` instances in one batched call (CPU or CUDA).

    ## Version History

    * v0: Initial version (steering analog of paper 000 Sec. IV-A and phase-shifter analog of
      paper 003).
    """

    task_cls: ClassVar[type[BeamformingTask]] = FarFieldHybridTask
    config_cls: ClassVar[type] = FarFieldHybridConfig


class FarFieldHybridVectorEnv(BeamformingVectorEnv):
    """Native batched FarFieldHybrid-v0: ``num_envs`` instances per batched call.

    Same task, config keywords, spaces and reward as :class:`FarFieldHybridEnv`.
    """

    task_cls: ClassVar[type[BeamformingTask]] = FarFieldHybridTask
    config_cls: ClassVar[type] = FarFieldHybridConfig
