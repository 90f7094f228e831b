r"""ModularUplink-v0: rate-maximizing modular hybrid receive beamforming (paper 004).

Levy, Shlezinger, "Rapid and Power-Aware Learned Optimization for Modular Receive
Beamforming", Sec. II (system model), III-A and IV-A/B (projections), V-A (setup). The agent
sets the phase shifters of ``P`` receive panels; the reward is the uplink sum-rate eq. (6)
per user in nats (Table I's unit).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import torch

from beamgym._validation import check_int, check_number, check_positive, check_tensor
from beamgym.envs.base import (
    BeamformingEnv,
    BeamformingTask,
    BeamformingVectorEnv,
    check_instance_snr_db,
    check_snr_set,
    raise_if_infeasible,
    sample_snr_db,
)
from beamgym.packing import pack_complex, unpack_complex
from beamgym.physics.channels import rayleigh_uplink_channel
from beamgym.physics.metrics import (
    fully_digital_uplink_rate,
    modular_sic_user_rates,
    modular_sum_rate,
)
from beamgym.physics.modular import connectivity_matrix
from beamgym.physics.projections import (
    count_active_phase_shifters,
    quantized_phase_projection,
    sparse_phase_projection,
    unit_modulus_projection,
)
from beamgym.structures import TensorDataclass

__all__ = [
    "CONSTRAINTS",
    "ModularUplinkConfig",
    "ModularUplinkInstance",
    "ModularUplinkKnown",
    "ModularUplinkTask",
    "ModularUplinkEnv",
    "ModularUplinkVectorEnv",
]

#: Phase-shifter feasible sets: C1 (eq. 2), C2 (eq. 3), C3 (eq. 4), and C2 and C3 together.
CONSTRAINTS: tuple[str, ...] = ("unconstrained", "sparse", "quantized", "sparse_quantized")

_LN2 = math.log(2.0)


def _db(value: Any, name: str) -> float:
    v = check_number(value, name)
    if abs(v) > 100.0:
        raise ValueError(f"{name} must lie in [-100, 100] dB, got {value!r}")
    return v


@dataclasses.dataclass(frozen=True)
class ModularUplinkConfig:
    """Configuration of ModularUplink-v0; defaults are paper 004's Scenario 1 at 0 dB.

    Every field is a paper parameter (symbol in brackets) or a documented beamgym option.
    """

    T: int = 5
    """Number of CPU inputs [T] (columns of the connectivity A). Paper: 5 (Scenarios 1-5)."""
    P: int = 2
    """Number of receive panels (modules) [P]. Scenario 1: 2."""
    L: int = 4
    """Output ports per panel [L] (columns of each panel W_p). Scenario 1: 4."""
    N: int = 20
    """Antennas per panel [N]; the array has M = P N antennas. Scenario 1: 20."""
    B: int = 2
    """Number of frequency bins [B] (W and A are frequency invariant). Scenario 1: 2."""
    K: int = 20
    """Number of single-antenna users [K]. Scenario 1: 20."""
    snr_db: float | tuple[float, ...] = 0.0
    """SNR in dB, SNR = 1/sigma_w^2 [paper Sec. V-A]. Paper: 0 dB (Table I), -10..10 (Fig. 7).
    A tuple is a set of SNRs drawn uniformly per instance (as in every beamgym env), e.g. for
    training across the SNR sweeps of Figs. 7-8."""
    rho_s: float = 1.0
    """Symbol power per user [rho_s] (linear). Paper: 1; the rate depends on rho_s/sigma_w^2."""
    constraint: str = "unconstrained"
    """Phase-shifter set: ``"unconstrained"`` (C1, eq. 2, projection eq. 10), ``"sparse"``
    (C2, eq. 3, projection eq. 18), ``"quantized"`` (C3, eq. 4, projection eq. 20) or
    ``"sparse_quantized"`` (C2 and C3 together, Sec. II-B)."""
    zeta: float = 0.5
    """Deactivation threshold [zeta] of eq. (18), in [0, 1) (dimensionless magnitude).
    Paper: 0.5. Used by the sparse constraints only; 0 makes eq. (18) equal eq. (10)."""
    s_max: int | None = None
    """Maximum number of active phase shifters [S_max] of eq. (15), or ``None`` for no limit.
    Paper Sec. V-C1: 0.75 N L P (see :func:`beamgym.physics.projections.paper_s_max`)."""
    q_levels: int = 16
    """Number of quantized phase levels [Q] of eq. (4)/(20). Paper: 16 (4-bit shifters)."""
    connectivity_blocks: int = 1
    """Kronecker copies c of the connectivity pattern, A = I_c kron A(L, P/c, T/c). Paper
    Scenario 6 (T = 40, P = 16): 8; all other scenarios: 1."""
    csi_nmse_db: float | None = None
    """Receiver CSI error (beamgym option; the paper assumes perfect CSI, ``None``): the
    observed channel is H + E with E i.i.d. CN(0, 10^(csi_nmse_db/10)), i.e. this NMSE in
    dB relative to the unit-variance channel entries."""

    def __post_init__(self) -> None:
        for name in ("T", "P", "L", "N", "B", "K"):
            check_int(getattr(self, name), name)
        check_int(self.q_levels, "q_levels", minimum=2)
        check_int(self.connectivity_blocks, "connectivity_blocks")
        if self.constraint not in CONSTRAINTS:
            raise ValueError(f"constraint must be one of {CONSTRAINTS}, got {self.constraint!r}")
        object.__setattr__(self, "snr_db", check_snr_set(self.snr_db))
        object.__setattr__(self, "rho_s", check_positive(self.rho_s, "rho_s"))
        zeta = check_number(self.zeta, "zeta")
        if not 0.0 <= zeta < 1.0:
            raise ValueError(
                f"zeta must lie in [0, 1), got {self.zeta!r}; zeta >= 1 would switch off "
                "unit-modulus phase shifters (paper: 0.5)"
            )
        object.__setattr__(self, "zeta", zeta)
        if self.csi_nmse_db is not None:
            object.__setattr__(self, "csi_nmse_db", _db(self.csi_nmse_db, "csi_nmse_db"))
        if self.N * self.P < self.T:
            raise ValueError(
                f"M = N*P = {self.N * self.P} antennas cannot support T = {self.T} CPU inputs "
                "(G = W A must have full column rank T <= M); increase N or P, or lower T"
            )
        # the connectivity rule raises a ValueError explaining how to fix unsupported sizes
        connectivity_matrix(self.L, self.P, self.T, blocks=self.connectivity_blocks)
        if self.s_max is not None:
            check_int(self.s_max, "s_max")
            if self.constraint not in ("sparse", "sparse_quantized"):
                raise ValueError(
                    f"s_max limits active phase shifters and needs constraint='sparse' or "
                    f"'sparse_quantized' (got constraint={self.constraint!r}, where all "
                    f"N*L*P = {self.num_phase_shifters} shifters are active); drop s_max"
                )
            if not self.T <= self.s_max <= self.num_phase_shifters:
                raise ValueError(
                    f"s_max must lie in [T, N*L*P] = [{self.T}, {self.num_phase_shifters}], "
                    f"got {self.s_max}; fewer than T active shifters make G = W A rank "
                    f"deficient (paper: 0.75*N*L*P = {int(0.75 * self.num_phase_shifters)})"
                )

    @property
    def M(self) -> int:
        """Total number of receive antennas, M = P N."""
        return self.P * self.N

    @property
    def num_phase_shifters(self) -> int:
        """Number of phase shifters N L P (entries of the panels)."""
        return self.N * self.L * self.P


@dataclasses.dataclass(frozen=True)
class ModularUplinkInstance(TensorDataclass):
    r"""One batch of ModularUplink-v0 problem instances.

    Attributes:
        H: ``[batch, B, M, K]`` complex true channels :math:`\mathbf H[b]` (paper 004 eq. 1),
            i.i.d. CN(0, 1) entries.
        H_est: ``[batch, B, M, K]`` complex channels known at the receiver (equal to ``H``
            with perfect CSI, the paper's setting).
        snr: ``[batch]`` real linear :math:`\rho_s/\sigma_w^2`.
    """

    H: torch.Tensor
    H_est: torch.Tensor
    snr: torch.Tensor


@dataclasses.dataclass(frozen=True)
class ModularUplinkKnown(TensorDataclass):
    r"""What the receiver knows about a batch of ModularUplink-v0 instances.

    Decoded exactly from the observation (:meth:`ModularUplinkTask.decode_observation`); the
    attribute names are those of :class:`ModularUplinkInstance`'s known fields. Solvers (paper
    004's PGA+M, line search, MO) work from this view only, never from the true ``H``. The
    connectivity ``A`` and the constraint are fixed by the configuration (``task.A``,
    ``task.config``), not per-instance knowledge.

    Attributes:
        H_est: ``[batch, B, M, K]`` complex channels known at the receiver (the true ``H``
            with perfect CSI, the paper's setting).
        snr: ``[batch]`` real linear :math:`\rho_s/\sigma_w^2`.
    """

    H_est: torch.Tensor
    snr: torch.Tensor


class ModularUplinkTask(BeamformingTask[ModularUplinkInstance, ModularUplinkConfig]):
    """Batched physics of ModularUplink-v0 (paper 004): sampler, projections, eq. (6).

    The beamformer is the panels tensor ``[batch, P, N, L]`` (the diagonal blocks of the
    block-diagonal ``W`` of eq. (5)); ``self.A`` is the ``[L P, T]`` connectivity.
    """

    env_id: ClassVar[str] = "beamgym/ModularUplink-v0"

    instance_cls: ClassVar[type[TensorDataclass]] = ModularUplinkInstance
    metric_name: ClassVar[str] = "per_user_rate_nats"
    metric_sign: ClassVar[int] = 1

    def __init__(self, config: ModularUplinkConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        c = config
        self.A = connectivity_matrix(
            c.L, c.P, c.T, blocks=c.connectivity_blocks, dtype=self.rdtype, device=self.device
        )
        self.panel_shape = (c.P, c.N, c.L)
        self._tol = 1e-5 if self.rdtype == torch.float32 else 1e-10

    # ---- sizes ---------------------------------------------------------------------------
    @property
    def num_users(self) -> int:
        """Number of users ``K``."""
        return self.config.K

    @property
    def obs_dim(self) -> int:
        """``2 B M K`` packed channel entries plus the SNR in dB."""
        c = self.config
        return 2 * c.B * c.M * c.K + 1

    @property
    def action_dim(self) -> int:
        """``2 P N L``: real and imaginary parts of every panel entry."""
        return 2 * self.config.num_phase_shifters

    # ---- instances ---------------------------------------------------------------------------
    def sample(self, generator: torch.Generator, batch_size: int) -> ModularUplinkInstance:
        """Draw i.i.d. Rayleigh channels (then SNRs and CSI errors if configured)."""
        c = self.config
        n = check_int(batch_size, "batch_size")
        H = rayleigh_uplink_channel(generator, n, c.B, c.M, c.K, precision=self.precision)
        snr_db = sample_snr_db(generator, n, c.snr_db)
        snr = c.rho_s * torch.pow(10.0, snr_db / 10.0)
        if c.csi_nmse_db is None:
            H_est = H.clone()
        else:
            E = rayleigh_uplink_channel(generator, n, c.B, c.M, c.K, precision=self.precision)
            H_est = H + math.sqrt(10.0 ** (c.csi_nmse_db / 10.0)) * E
        return ModularUplinkInstance(
            H=H.to(self.device),
            H_est=H_est.to(self.device),
            snr=snr.to(dtype=self.rdtype, device=self.device),
        )

    def validate_instance(self, instance: Any) -> ModularUplinkInstance:
        """Check type, shapes and values of a user-supplied instance."""
        inst = super().validate_instance(instance)
        c = self.config
        want = (c.B, c.M, c.K)
        for name in ("H", "H_est"):
            t = getattr(inst, name)
            if t.ndim != 4 or tuple(t.shape[1:]) != want or not t.is_complex():
                raise ValueError(
                    f"instance.{name} must be complex [batch, B, M, K] = [*, {c.B}, {c.M}, "
                    f"{c.K}], got {tuple(t.shape)} {t.dtype}"
                )
        if inst.snr.ndim != 1 or bool((inst.snr <= 0).any()):
            raise ValueError("instance.snr must be a [batch] tensor of positive linear SNRs")
        check_instance_snr_db(
            10.0 * torch.log10(inst.snr.double() / c.rho_s),
            "instance.snr (as 10 log10(snr / rho_s) in dB)",
        )
        return dataclasses.replace(
            inst,
            H=inst.H.to(self.cdtype),
            H_est=inst.H_est.to(self.cdtype),
            snr=inst.snr.to(self.rdtype),
        )

    # ---- observation and action ----------------------------------------------------------------
    def observe(self, instance: ModularUplinkInstance) -> torch.Tensor:
        """``[batch, 2 B M K + 1]``: packed ``H_est`` (eq. 1 layout) and the SNR in dB."""
        packed = pack_complex(instance.H_est, 3)
        snr_db = 10.0 * torch.log10(instance.snr)
        return torch.cat([packed, snr_db.unsqueeze(-1)], dim=-1).to(self.rdtype)

    def decode_observation(self, observation: torch.Tensor) -> ModularUplinkKnown:
        """Inverse of :meth:`observe`: the receiver's ``H_est`` and linear SNR.

        Args:
            observation: Real ``[batch, 2 B M K + 1]`` task observation (no horizon extras).

        Returns:
            :class:`ModularUplinkKnown` on ``self.device``: ``H_est`` is unpacked exactly;
            ``snr = 10^(snr_db / 10)`` inverts the observed dB value (exact up to the
            rounding of ``log10``/``pow`` in the observation's precision).
        """
        c = self.config
        check_tensor(observation, "observation", ndim=2, shape=(self.obs_dim,), complex_=False)
        obs = observation.to(device=self.device, dtype=self.rdtype)
        n = 2 * c.B * c.M * c.K
        H_est = unpack_complex(obs[:, :n], (c.B, c.M, c.K))
        snr = torch.pow(10.0, obs[:, n] / 10.0)
        return ModularUplinkKnown(H_est=H_est, snr=snr)

    def project(self, W: torch.Tensor) -> torch.Tensor:
        """The configured constraint's projection (eq. 10, 18 or 20) of panels ``W``."""
        c = self.config
        if c.constraint == "unconstrained":
            return unit_modulus_projection(W)
        if c.constraint == "sparse":
            return sparse_phase_projection(W, c.zeta, c.s_max)
        if c.constraint == "quantized":
            return quantized_phase_projection(W, c.q_levels)
        return quantized_phase_projection(W, c.q_levels, zeta=c.zeta, s_max=c.s_max)

    def _changed(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        return (after.detach() - before.detach()).abs().reshape(before.shape[0], -1).amax(
            -1
        ) > self._tol

    def action_to_beamformer(
        self, action: torch.Tensor, instance: ModularUplinkInstance | ModularUplinkKnown
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unpack ``[batch, 2PNL]`` into panels and apply the constraint's projection.

        ``instance`` may be the receiver's :class:`ModularUplinkKnown` view (the map uses no
        channel information at all).

        Returns:
            ``(W, projected)``: ``[batch, P, N, L]`` complex feasible panels and a ``[batch]``
            bool telling whether the projection moved any entry by more than 1e-5 (single)
            or 1e-10 (double).
        """
        check_tensor(action, "action", ndim=2, shape=(self.action_dim,), complex_=False)
        raw = unpack_complex(action.to(self.rdtype), self.panel_shape)
        W = self.project(raw)
        return W, self._changed(raw, W)

    def _check_panels(self, W: Any, batch: int) -> torch.Tensor:
        c = self.config
        check_tensor(W, "beamformer", ndim=4, complex_=True)
        if tuple(W.shape) != (batch, c.P, c.N, c.L):
            raise ValueError(
                f"beamformer must be the panels tensor [batch, P, N, L] = "
                f"[{batch}, {c.P}, {c.N}, {c.L}], got {tuple(W.shape)}"
            )
        return W.to(device=self.device, dtype=self.cdtype)

    def beamformer_to_action(
        self, beamformer: torch.Tensor, instance: ModularUplinkInstance | ModularUplinkKnown
    ) -> torch.Tensor:
        """Pack panels into ``[batch, 2PNL]`` actions (real parts, then imaginary parts).

        ``instance`` may be the receiver's :class:`ModularUplinkKnown` view (only its batch
        size is used).

        Exact inverse of :meth:`action_to_beamformer` for every feasible ``W`` of the
        configured set: entries of modulus 1 (or 0 for the sparse sets with ``zeta > 0``)
        have real and imaginary parts in ``[-1, 1]`` and are fixed points of the projection.
        With ``constraint="sparse"`` and ``zeta = 0``, eq. (18) equals eq. (10) and a zero
        entry maps to 1, so only unit-modulus panels round-trip.

        Raises:
            ValueError: If an entry's real or imaginary part lies outside ``[-1, 1]``.
        """
        W = self._check_panels(beamformer, instance.batch_size)
        a = pack_complex(W, 3)
        worst = float(a.detach().abs().max()) if a.numel() else 0.0
        if worst > 1.0 + 1e-6:
            raise ValueError(
                f"beamformer entries must have real and imaginary parts in [-1, 1] "
                f"(phase shifters have modulus <= 1), got max {worst:.4g}; project it "
                "with task.project(W) first"
            )
        return a.clamp(-1.0, 1.0).to(self.rdtype)

    # ---- evaluation ----------------------------------------------------------------------------
    def evaluate(
        self,
        beamformer: torch.Tensor,
        instance: ModularUplinkInstance,
        *,
        check_feasible: bool = True,
    ) -> dict[str, torch.Tensor]:
        r"""Eq. (6) on the TRUE channel ``instance.H``; differentiable in the panels.

        Returns:
            ``reward`` = ``metric`` ``[batch]``: eq. (6) / K in nats (Table I's unit);
            ``per_user`` ``[batch, K]``: MMSE-SIC per-user rates in nats (they sum to eq.
            (6)); ``power`` ``[batch]``: :math:`\|\mathbf W\|_F^2` (the number of active
            phase shifters for feasible panels); ``sum_rate_nats``, ``sum_rate_bits``,
            ``per_user_rate_bits`` ``[batch]``; ``fully_digital_per_user_nats`` ``[batch]``
            (the eq. (6) upper bound with G = I_M, divided by K); ``active_phase_shifters``
            ``[batch]`` (int64 ℓ0 count) and ``active_fraction`` (count / N L P);
            ``feasible`` ``[batch]`` bool (``W`` is a fixed point of the projection).

        An infeasible ``W`` (not a fixed point of the constraint's projection, eq. (10), (18)
        or (20)) raises ``ValueError`` unless ``check_feasible=False``.
        """
        W = self._check_panels(beamformer, instance.batch_size)
        H, snr, k = instance.H, instance.snr, self.config.K
        sum_nats = modular_sum_rate(H, W, self.A, snr)
        per_user = modular_sic_user_rates(H, W, self.A, snr)
        avg = sum_nats / k
        with torch.no_grad():
            active = count_active_phase_shifters(W)
            feasible = ~self._changed(W, self.project(W))
            bound = fully_digital_uplink_rate(H, snr) / k
        power = W.abs().square().reshape(W.shape[0], -1).sum(-1)
        if check_feasible:
            raise_if_infeasible(
                feasible,
                power,
                float(self.config.num_phase_shifters),
                constraint=(
                    f"W must be a fixed point of the {self.config.constraint!r} projection "
                    "(paper 004 eq. (2)-(4), projections eq. (10), (18), (20))"
                ),
                rtol=0.0,
            )
        return {
            "reward": avg,
            "metric": avg,
            "per_user": per_user,
            "power": power,
            "sum_rate_nats": sum_nats,
            "sum_rate_bits": sum_nats / _LN2,
            "per_user_rate_bits": avg / _LN2,
            "fully_digital_per_user_nats": bound,
            "active_phase_shifters": active,
            "active_fraction": active.to(self.rdtype) / self.config.num_phase_shifters,
            "feasible": feasible,
        }


class ModularUplinkEnv(BeamformingEnv):
    r"""Paper 004 modular uplink receive beamforming, one channel realization per episode.

    ## Description

    Uplink modular hybrid receive beamforming from Levy and Shlezinger, "Rapid and
    Power-Aware Learned Optimization for Modular Receive Beamforming" (paper 004), Sec. II
    (system model, eq. 1-7), Sec. III-A and IV-A/B (projections eq. 10, 18, 20) and Sec. V-A
    (setup). ``K`` single-antenna users transmit over ``B`` frequency bins to ``M = P N``
    antennas split into ``P`` panels. Panel ``p`` combines its ``N`` antennas into ``L``
    outputs with phase shifters ``W_p`` (``N × L``, frequency invariant); a fixed binary
    connectivity ``A`` (``LP × T``) routes the panel outputs to ``T`` CPU inputs, so the CPU
    sees ``z[b] = A^H W^H y[b]`` with ``W = blkdiag(W_1, ..., W_P)`` (eq. 5). Each episode
    is one channel realization; the agent chooses the phase shifters.

    The defaults reproduce **Scenario 1** at SNR = 0 dB (Fig. 5 and Table I's "Scenario 1"
    column; with ``constraint="quantized"`` Figs. 13-14; sweep ``snr_db`` for Fig. 7).
    The paper's Table I reports 0.88 (PGA+M, 10 iterations) and 0.98 (500 iterations)
    per-user nats; the values measured on this env are in BENCHMARKS.md, section "Paper 004,
    Table I, Scenario 1". The other scenarios of Sec. V are reachable by keywords:

    | Scenario | T  | P  | L  | N  | B | K  | keywords / notes                                  |
    |----------|----|----|----|----|---|----|---------------------------------------------------|
    | 1        | 5  | 2  | 4  | 20 | 2 | 20 | defaults (Figs. 5, 7, 13, 14; Table I)            |
    | 2        | 5  | 4  | 2  | 3  | 4 | 5  | `P=4, L=2, N=3, B=4, K=5` (Figs. 6, 8, 11, 12)    |
    | 3        | 5  | 8  | 1* | 4  | 2 | 50 | `P=8, L=1, N=4, K=50` (Fig. 9; Table I)           |
    | 4        | 5  | 8  | 1* | 4  | 2 | 5  | `P=8, L=1, N=4, K=5` (training set of Scenario 3) |
    | 5        | 5  | 2  | 4* | 4  | 2 | 7  | `N=4, K=7` (training set of Scenario 6)           |
    | 6        | 40 | 16 | 4* | 4  | 2 | 7  | `T=40, P=16, N=4, K=7, connectivity_blocks=8`     |

    Scenario 2 uses QuaDRiGa channels in the paper; they are **not available** here, so its
    keywords give i.i.d. Rayleigh channels of the same size (numbers will differ from Figs.
    6, 8, 11, 12). Its sparse experiments (Figs. 11-12) use ``constraint="sparse",
    s_max=18`` (``0.75 N L P``). (*) ``L`` is not printed for Scenarios 3-6; we infer the
    value giving ``L P = 8`` ports per 5 CPU inputs, as in Scenarios 1-2. Scenario 6 is
    eight Kronecker copies of Scenario 5 (``A = I_8 ⊗ A_5``).

    The connectivity follows docs/readings.md#004-connectivity: ``A = [I_T; [I_r 1]]`` with
    ``r = LP - T`` (for
    ``LP = 8, T = 5`` the last rows are ``[1 0 0 1 1], [0 1 0 1 1], [0 0 1 1 1]``), see
    `beamgym.physics.modular.connectivity_matrix`; sizes where the rule is undefined raise
    a ``ValueError``.

    ## Action Space

    A `Box(-1, 1, (2 P N L,), float32)` (320 for Scenario 1): the real parts, then the
    imaginary parts, of the panel entries ``W[p, n, l]`` in row-major order
    (`beamgym.packing.pack_complex`). Inside `step` the complex panels are mapped to the
    feasible set by the paper's projection of the chosen ``constraint``:

    - ``"unconstrained"`` (C1, eq. 2): eq. (10), ``w / |w|`` (a zero entry maps to 1);
    - ``"sparse"`` (C2, eq. 3): eq. (18), ``w / |w|`` if ``|w| >= zeta`` else 0, and with
      ``s_max`` only the ``s_max`` largest magnitudes stay active (hard ℓ0 budget of eq. 15;
      with ``zeta = 0.5`` this is the exact Euclidean projection);
    - ``"quantized"`` (C3, eq. 4): eq. (20), phase rounded to the nearest multiple of
      ``2π/Q``;
    - ``"sparse_quantized"``: the sparse mask of eq. (18) with quantized active phases.

    ``info["projected"]`` tells whether the projection moved any entry.
    `beamformer_to_action(W)` packs feasible panels back into actions; every feasible ``W``
    (moduli 0 or 1) round-trips exactly (except zero entries with ``zeta = 0``, where eq.
    (18) reduces to eq. (10)).

    ## Observation Space

    A `Box(-3.4e38, 3.4e38, (2 B M K + 1,), float32)` (the float32 range; 3201 for Scenario 1):
    what the receiver knows.

    | Index                   | Observation                                          | Min  | Max |
    |-------------------------|------------------------------------------------------|------|-----|
    | 0 … BMK-1               | Re of the estimated channel ``H_est[b, m, k]``       | -Inf | Inf |
    | BMK … 2BMK-1            | Im of the estimated channel ``H_est[b, m, k]``       | -Inf | Inf |
    | 2BMK                    | SNR ``10 log10(rho_s / sigma_w^2)`` in dB            | -Inf | Inf |

    With the default perfect CSI, ``H_est = H``. The connectivity ``A`` and the constraint
    are fixed by the configuration and not observed. With ``horizon > 1`` the previous action,
    the per-user rates it achieved and the elapsed fraction of the interval are appended.
    `task.decode_observation(obs)` (or `task.known(instance)`) inverts the task part into a
    `ModularUplinkKnown` (``H_est``, linear ``snr``): the receiver's view that solvers use.

    ## Rewards

    The reward is paper 004's sum-rate eq. (6) divided by the number of users, in **nats**
    (the unit of Table I and Figs. 5-14, whose axes say bits; docs/readings.md#004-nats):

    $$ r = \frac{1}{K}\,\frac{1}{B}\sum_{b=1}^{B}\log\Big|\mathbf I_M +
       \frac{\rho_s}{\sigma_w^2}\,\mathbf G(\mathbf G^H\mathbf G)^{-1}\mathbf G^H
       \mathbf H[b]\mathbf H^H[b]\Big|, \qquad \mathbf G = \mathbf W\mathbf A \quad (6)$$

    evaluated on the true channel. For rank-deficient ``G`` the projector onto range(G) is
    used. ``info`` also holds ``sum_rate_nats``, ``sum_rate_bits``, ``per_user_rate_bits``
    (``r / ln 2``), ``per_user`` (MMSE-SIC per-user rates in nats, summing to eq. 6),
    ``fully_digital_per_user_nats`` (the upper bound with ``G = I_M``), ``power``
    (``||W||_F^2``), ``active_phase_shifters`` (ℓ0 count), ``active_fraction`` (count /
    ``N L P``) and ``feasible``.

    ## Starting State

    Each reset draws ``H[b]`` with i.i.d. ``CN(0, 1)`` entries (Sec. V-A) and, if
    ``snr_db`` is a tuple, an SNR drawn uniformly from that set; with ``csi_nmse_db`` the
    observation holds ``H + E``, ``E ~ CN(0, 10^(csi_nmse_db/10))``.

    ## Episode End

    The episode terminates after ``horizon`` steps (default 1: one coherence interval, one
    beamformer). There is no truncation.

    ## Arguments

    ```python
    >>> import gymnasium as gym
    >>> import beamgym
    >>> env = gym.make("beamgym/ModularUplink-v0", constraint="sparse", s_max=120)
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape
    (3201,)

    ```

    | Parameter             | Type        | Default           | Description                      |
    |-----------------------|-------------|-------------------|----------------------------------|
    | `T`                   | int         | `5`               | CPU inputs (columns of ``A``)    |
    | `P`                   | int         | `2`               | panels                           |
    | `L`                   | int         | `4`               | outputs per panel                |
    | `N`                   | int         | `20`              | antennas per panel (M = P N)     |
    | `B`                   | int         | `2`               | frequency bins                   |
    | `K`                   | int         | `20`              | single-antenna users             |
    | `snr_db`              | float, tuple| `0.0`             | SNR ``1/sigma_w^2`` in dB (a     |
    |                       |             |                   | tuple: set drawn per instance)   |
    | `rho_s`               | float       | `1.0`             | symbol power (linear)            |
    | `constraint`          | str         | `"unconstrained"` | C1/C2/C3 set (see above)         |
    | `zeta`                | float       | `0.5`             | eq. (18) threshold in ``[0, 1)`` |
    | `s_max`               | int, None   | `None`            | max active shifters (0.75 N L P) |
    | `q_levels`            | int         | `16`              | phase levels ``Q`` (4-bit)       |
    | `connectivity_blocks` | int         | `1`               | copies of ``A`` (Scenario 6: 8)  |
    | `csi_nmse_db`         | float, None | `None`            | CSI NMSE dB (None: perfect)      |
    | `horizon`             | int         | `1`               | steps per interval               |
    | `device`              | str         | `"cpu"`           | torch device of the physics      |
    | `precision`           | str         | `"single"`        | `"single"` or `"double"`         |

    ## Vectorized environment

    `gym.make_vec("beamgym/ModularUplink-v0", num_envs=n, vectorization_mode="vector_entry_point")`
    returns `ModularUplinkVectorEnv`, which samples and evaluates all ``n`` instances in one
    batched torch call (CPU or CUDA).

    ```python
    >>> envs = gym.make_vec("beamgym/ModularUplink-v0", num_envs=4,
    ...                     vectorization_mode="vector_entry_point")
    >>> envs.reset(seed=0)[0].shape
    (4, 3201)

    ```

    ## Version History

    * v0: Initial version (paper 004, Scenario 1 defaults; C1/C2/C3 projections).
    """

    task_cls: ClassVar[type[BeamformingTask]] = ModularUplinkTask
    config_cls: ClassVar[type] = ModularUplinkConfig


class ModularUplinkVectorEnv(BeamformingVectorEnv):
    """Native batched vector env of ModularUplink-v0 (see :class:`ModularUplinkEnv`).

    Samples and evaluates all ``num_envs`` instances of paper 004's modular uplink in one
    batched call; keywords are those of :class:`ModularUplinkEnv`.
    """

    task_cls: ClassVar[type[BeamformingTask]] = ModularUplinkTask
    config_cls: ClassVar[type] = ModularUplinkConfig
