"""Seeded, batched channel samplers of the four papers (batch dimension first).

Every sampler takes an explicit ``torch.Generator`` (CPU) and draws all randomness from it, so
the same seed gives the same channels bit for bit.

References:
    [000] Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse
          Large-Scale MIMO Channels".
    [002] Schynol, Pesavento, "Hybrid Downlink Beamforming with Outage Constraints under
          Imperfect CSI using Model-Driven Deep Learning".
    [003] Nguyen et al., "Fast Deep Unfolded Hybrid Beamforming in Multiuser Large MIMO Systems".
    [004] Levy, Shlezinger, "Rapid and Power-Aware Learned Optimization for Modular Receive
          Beamforming".
"""

from __future__ import annotations

import dataclasses
import math

import torch

from beamgym._validation import check_int, check_nonnegative, check_positive, check_tensor
from beamgym.config import Precision, complex_dtype, real_dtype
from beamgym.physics.arrays import ula_response
from beamgym.structures import TensorDataclass

__all__: list[str] = []


# ---- paper 000: sparse mmWave geometric channel --------------------------------------------------

#: User placements of paper 000 Sec. II-B (Fig. 1).
PLACEMENTS: tuple[str, ...] = ("single-cell", "spatial-division")


def _check_generator_000(generator: object) -> torch.Generator:
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError(
            "generator must be a CPU torch.Generator (sample on the CPU, then move); pass "
            "torch.Generator().manual_seed(seed)"
        )
    return generator


def check_placement(
    placement: str, n_users: int, *, sector: float = math.pi / 2, psi: float = math.pi / 16
) -> tuple[float, float]:
    r"""Validate a user placement of paper 000 Sec. II-B and return ``(sector, psi)``.

    * ``"single-cell"``: sector angle :math:`\phi \in (0, \pi]`;
    * ``"spatial-division"``: per-user sector width :math:`\psi \in (0, \pi/K]` (the users'
      sectors :math:`[\eta_K(k) \mp \psi/2]` must not overlap).

    Args:
        placement: ``"single-cell"`` or ``"spatial-division"``.
        n_users: Number of users ``K``.
        sector: Sector angle :math:`\phi` in radians (single cell).
        psi: Per-user sector width :math:`\psi` in radians (spatial division).

    Returns:
        ``(sector, psi)`` as floats.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    n_users = check_int(n_users, "n_users")
    sector = check_positive(sector, "sector")
    psi = check_positive(psi, "psi")
    if placement == "single-cell" and sector > math.pi + 1e-12:
        raise ValueError(f"sector (phi) must lie in (0, pi] radians, got {sector!r}")
    if placement == "spatial-division" and psi > math.pi / n_users + 1e-12:
        raise ValueError(
            f"psi must lie in (0, pi/K] = (0, {math.pi / n_users:.6g}] for K={n_users} "
            f"spatial-division users (paper 000 Sec. II-B), got {psi!r}; reduce psi or K"
        )
    return sector, psi


def sector_centers(n_users: int, *, precision: Precision = "single") -> torch.Tensor:
    r"""Centre angles of the spatial-division sectors, paper 000 Sec. II-B.

    .. math:: \eta_K(k) = -\frac{\pi}{2} + \frac{(k - \frac12)\pi}{K}, \qquad k \in [K]

    Args:
        n_users: Number of users ``K``.
        precision: ``"single"`` or ``"double"``.

    Returns:
        Real ``[K]`` tensor of angles in radians.
    """
    k = torch.arange(1, check_int(n_users, "n_users") + 1, dtype=torch.float64)
    return (-math.pi / 2 + (k - 0.5) * math.pi / n_users).to(real_dtype(precision))


def user_azimuths(
    generator: torch.Generator,
    batch: int,
    n_users: int,
    *,
    placement: str = "single-cell",
    sector: float = math.pi / 2,
    psi: float = math.pi / 16,
    precision: Precision = "single",
) -> torch.Tensor:
    r"""Random user azimuths :math:`\zeta_k`, paper 000 Sec. II-B (Fig. 1).

    * single cell: :math:`\zeta_k \sim \mathcal U[-\phi/2, \phi/2]` i.i.d.;
    * spatial division: :math:`\zeta_k \sim \mathcal U[\eta_K(k) - \psi/2,\ \eta_K(k) +
      \psi/2]` with :math:`\eta_K(k)` from :func:`sector_centers`, so user ``k`` always lies
      in sector ``k`` (users are ordered by angle).

    One ``torch.rand`` draw of shape ``[B, K]`` (float64, on the CPU) is consumed.

    Args:
        generator: CPU ``torch.Generator``, the only source of randomness.
        batch: Number of realizations ``B``.
        n_users: Number of users ``K``.
        placement: ``"single-cell"`` or ``"spatial-division"``.
        sector: Sector angle :math:`\phi \in (0, \pi]`, radians (single cell; paper:
            :math:`\pi/2`).
        psi: Sector width :math:`\psi \in (0, \pi/K]`, radians (spatial division; paper:
            :math:`\pi/16` for MISO, :math:`\pi/4` for MIMO).
        precision: ``"single"`` (float32) or ``"double"`` (float64).

    Returns:
        Real ``[B, K]`` azimuths in radians, on the CPU.
    """
    _check_generator_000(generator)
    batch = check_int(batch, "batch")
    sector, psi = check_placement(placement, n_users, sector=sector, psi=psi)
    u = torch.rand((batch, n_users), generator=generator, dtype=torch.float64)
    if placement == "single-cell":
        zeta = (u - 0.5) * sector
    else:
        zeta = sector_centers(n_users, precision="double") + (u - 0.5) * psi
    return zeta.to(real_dtype(precision))


def sparse_geometric_channel(
    generator: torch.Generator,
    batch: int,
    *,
    n_tx: int = 64,
    n_users: int = 16,
    n_rx: int = 1,
    n_paths: int = 10,
    placement: str = "single-cell",
    sector: float = math.pi / 2,
    psi: float = math.pi / 16,
    sigma_aod: float = 0.1,
    sigma_aoa: float = 0.1,
    precision: Precision = "single",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Sparse mmWave geometric channel, paper 000 eq. (5)-(7), Sec. II-B.

    .. math::
        \bar{\mathbf H}_k = \sqrt{\frac{MN}{L}} \sum_{\ell=1}^{L} \alpha_{k,\ell}\,
        \mathbf a_M(\beta_{k,\ell}, \tfrac12)\, \mathbf a_N^H(\gamma_{k,\ell}, \tfrac12),
        \qquad \alpha_{k,\ell} \sim \mathcal{CN}(0, 1),

    .. math::
        \gamma_{k,\ell} \sim \mathcal N(\zeta_k, \sigma_{\gamma}^2), \qquad
        \beta_{k,\ell} \sim \mathcal N(\pi + \zeta_k, \sigma_{\beta}^2)

    with :math:`\mathbf a_n` the unit-norm half-wavelength ULA response of eq. (6)
    (:func:`beamgym.physics.arrays.ula_response`) and user azimuths :math:`\zeta_k` from
    :func:`user_azimuths` (mean AOD :math:`\bar\gamma_k = \zeta_k`, mean AOA
    :math:`\bar\beta_k = \pi + \zeta_k`). The constant :math:`\sqrt{MN/L}` gives
    :math:`\mathbb E\|\bar{\mathbf H}_k\|_F^2 = MN` (docs/readings.md#000-channel-power).
    For ``M = 1`` the receive response is the scalar 1 and row ``k`` of the result is
    :math:`(\bar{\mathbf h}_k)^T = \sqrt{N/L}\sum_\ell \alpha_{k,\ell}\mathbf a_N^H
    (\gamma_{k,\ell})`, so that :math:`y_k = \bar{\mathbf H}[k]\,\mathbf W \mathbf x +
    n_k` (the convention of :mod:`beamgym.physics.metrics`).

    The channel is **not** normalized by the noise; paper 000's normalized channel is
    :math:`\mathbf H_k = \bar{\mathbf H}_k / \sigma` (docs/readings.md#000-snr-sigma:
    :math:`\sigma`, not :math:`\sigma^2`). Randomness (all float64 on the CPU, then cast, so
    both precisions see the same channel to rounding): azimuths ``[B, K]``, gains
    ``[B, K, L, 2]``, AOD perturbations ``[B, K, L]``, AOA perturbations ``[B, K, L]`` (the
    last only if ``M > 1``).

    Args:
        generator: CPU ``torch.Generator``, the only source of randomness.
        batch: Number of realizations ``B``.
        n_tx: BS antennas ``N`` (paper: 64).
        n_users: Users ``K`` (paper: 16 MISO, 4 MIMO).
        n_rx: Antennas per user ``M`` (paper: 1 MISO, 4 MIMO).
        n_paths: Scattering paths ``L`` (paper: 10).
        placement: ``"single-cell"`` or ``"spatial-division"`` (:func:`user_azimuths`).
        sector: Single-cell sector angle :math:`\phi`, radians (paper: :math:`\pi/2`).
        psi: Spatial-division sector width :math:`\psi \le \pi/K`, radians.
        sigma_aod: AOD standard deviation :math:`\sigma_{\gamma}` in radians (paper: 0.1).
        sigma_aoa: AOA standard deviation :math:`\sigma_{\beta}` in radians (paper: 0.1).
        precision: ``"single"`` (complex64) or ``"double"`` (complex128).

    Returns:
        ``(H_bar, azimuth)``: complex ``[B, K, N]`` (``M = 1``) or ``[B, K, M, N]`` channel
        (dimensionless, unit average gain per antenna pair) and the real ``[B, K]`` user
        azimuths :math:`\zeta_k` in radians, both on the CPU.
    """
    _check_generator_000(generator)
    batch = check_int(batch, "batch")
    n_tx = check_int(n_tx, "n_tx")
    n_rx = check_int(n_rx, "n_rx")
    n_paths = check_int(n_paths, "n_paths")
    s_aod = check_nonnegative(sigma_aod, "sigma_aod")
    s_aoa = check_nonnegative(sigma_aoa, "sigma_aoa")
    zeta = user_azimuths(
        generator,
        batch,
        n_users,
        placement=placement,
        sector=sector,
        psi=psi,
        precision="double",
    )
    shape = (batch, n_users, n_paths)
    g = torch.randn((*shape, 2), generator=generator, dtype=torch.float64) * math.sqrt(0.5)
    alpha = torch.view_as_complex(g)
    d_aod = torch.randn(shape, generator=generator, dtype=torch.float64)
    gamma = zeta.unsqueeze(-1) + s_aod * d_aod
    scale = math.sqrt(n_rx * n_tx / n_paths)
    step = -math.pi * torch.sin(gamma)  # a_N^H(gamma): entries e^{-j pi n sin(gamma)}/sqrt(N)
    if n_rx == 1:
        H = _path_sum_000(alpha, step, n_tx) / math.sqrt(n_tx)
    else:
        beta = (math.pi + zeta).unsqueeze(-1) + s_aoa * torch.randn(
            shape, generator=generator, dtype=torch.float64
        )
        a_rx = ula_response(beta, n_rx)  # [B, K, L, M]
        a_tx = ula_response(gamma, n_tx).conj()  # [B, K, L, N]
        H = torch.einsum("bkl,bklm,bkln->bkmn", alpha, a_rx, a_tx)
    H = H * scale
    return H.to(complex_dtype(precision)), zeta.to(real_dtype(precision))


def _path_sum_000(alpha: torch.Tensor, step: torch.Tensor, n: int) -> torch.Tensor:
    r"""``out[..., q] = sum_l alpha[..., l] exp(j step[..., l] q)`` for ``q = 0..n-1``.

    Evaluated as a batch of small matrix products with
    :math:`q = n_{lo} m + r`, :math:`e^{j s q} = (e^{j s n_{lo}})^m e^{j s r}`, which needs
    :math:`n_{lo} + n/n_{lo}` instead of ``n`` complex exponentials per path (exact to
    ~1e-13 in float64) and no ``[..., L, n]`` intermediate.
    """
    n_lo = math.ceil(math.sqrt(n))
    n_hi = math.ceil(n / n_lo)
    ar_lo = torch.arange(n_lo, dtype=step.dtype)
    ar_hi = torch.arange(n_hi, dtype=step.dtype) * n_lo
    lo = torch.polar(
        torch.ones_like(step).unsqueeze(-1).expand(*step.shape, n_lo), step.unsqueeze(-1) * ar_lo
    )
    hi = torch.polar(
        torch.ones_like(step).unsqueeze(-1).expand(*step.shape, n_hi), step.unsqueeze(-1) * ar_hi
    )
    out = (alpha.unsqueeze(-1) * hi).transpose(-1, -2) @ lo  # [..., n_hi, n_lo]
    return out.reshape(*out.shape[:-2], n_hi * n_lo)[..., :n]


def rayleigh_channel(
    generator: torch.Generator,
    batch: int,
    *,
    n_tx: int,
    n_users: int,
    n_rx: int = 1,
    precision: Precision = "single",
) -> torch.Tensor:
    r"""i.i.d. Rayleigh downlink channel (docs/readings.md#000-hard-instances).

    .. math:: [\bar{\mathbf H}_k]_{m,n} \overset{\text{i.i.d.}}{\sim} \mathcal{CN}(0, 1),
              \qquad \mathbb E\|\bar{\mathbf H}_k\|_F^2 = MN

    Same layout and normalization as :func:`sparse_geometric_channel`, so it can replace
    the sparse channel in paper 000's system model (the hard configuration there is
    ``N = K = 4``, ``P = 10``, unit noise, i.e. SNR = 10 dB). Drawn in float64 on the CPU
    as one ``[B, K, (M,) N, 2]`` normal draw, then cast.

    Args:
        generator: CPU ``torch.Generator``, the only source of randomness.
        batch: Number of realizations ``B``.
        n_tx: BS antennas ``N``.
        n_users: Users ``K``.
        n_rx: Antennas per user ``M``.
        precision: ``"single"`` (complex64) or ``"double"`` (complex128).

    Returns:
        Complex ``[B, K, N]`` (``M = 1``) or ``[B, K, M, N]`` channel on the CPU.
    """
    _check_generator_000(generator)
    batch = check_int(batch, "batch")
    n_tx = check_int(n_tx, "n_tx")
    n_users = check_int(n_users, "n_users")
    n_rx = check_int(n_rx, "n_rx")
    shape = (batch, n_users, n_tx) if n_rx == 1 else (batch, n_users, n_rx, n_tx)
    z = torch.randn((*shape, 2), generator=generator, dtype=torch.float64) * math.sqrt(0.5)
    return torch.view_as_complex(z).to(complex_dtype(precision))


__all__ += [
    "PLACEMENTS",
    "check_placement",
    "sector_centers",
    "user_azimuths",
    "sparse_geometric_channel",
    "rayleigh_channel",
]

# ---- paper 000: near-field channel ---------------------------------------------------------------
#
# Sign conventions: see the module docstring of beamgym.physics.analog (carrier e^{j2pi f t},
# path phase e^{-j2pi r/lambda} as eq. (25), geometry of eq. (35) as printed, first-order
# distance r^s - (q-1) d sin(theta^s), i.e. eq. (26) with the sign that eq. (35) implies).


#: Near-field channel models: the piecewise-far-field model of eq. (27) or the exact
#: spherical-wave channel of eq. (25) with per-antenna distances from eq. (35)'s geometry.
NEAR_FIELD_MODELS: tuple[str, ...] = ("piecewise", "exact")


@dataclasses.dataclass(frozen=True)
class NearFieldUsers(TensorDataclass):
    r"""Users of the near-field model, paper 000 Sec. IV-B (batch dimension first).

    Attributes:
        alpha: Complex ``[B, K]`` LoS gains :math:`\alpha_k \sim \mathcal{CN}(0, 1)`.
        r: Real ``[B, K]`` distances :math:`r_k` from the first BS antenna, metres.
        theta: Real ``[B, K]`` angles :math:`\theta_k`, radians.
        r_sub: Real ``[B, K, S]`` sub-array distances :math:`r_k^s` (eq. (35)), metres.
        theta_sub: Real ``[B, K, S]`` sub-array angles :math:`\theta_k^s`, radians.
    """

    alpha: torch.Tensor
    r: torch.Tensor
    theta: torch.Tensor
    r_sub: torch.Tensor
    theta_sub: torch.Tensor


def subarray_positions(
    r: torch.Tensor, theta: torch.Tensor, *, n_subarrays: int, n_sub: int, spacing_m: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Distance and angle of every user from every sub-array, paper 000 eq. (35).

    .. math:: r_k^s = \sqrt{r_k^2 + ((s-1)nd)^2 - 2(s-1)nd\, r_k \sin\theta_k}, \qquad
              \sin\theta_k^s = \frac{r_k \sin\theta_k - (s-1)nd}{r_k^s}

    i.e. the first antenna of sub-array ``s`` sits at ``(s-1) n d`` on the array axis and the
    user at axis coordinate :math:`r_k\sin\theta_k`, distance :math:`r_k\cos\theta_k` from
    the axis. :math:`\theta_k^s \in [-\pi/2, \pi/2]` (``asin``, clamped to rounding).

    Args:
        r: Real ``[..., K]`` distances :math:`r_k > 0` in metres.
        theta: Real ``[..., K]`` angles :math:`\theta_k` in radians.
        n_subarrays: Number of sub-arrays ``S``.
        n_sub: Antennas per sub-array ``n``.
        spacing_m: Antenna spacing ``d`` in metres.

    Returns:
        ``(r_sub, theta_sub)``: real ``[..., K, S]`` tensors (metres, radians).
    """
    check_tensor(r, "r", min_ndim=1, complex_=False)
    check_tensor(theta, "theta", min_ndim=1, complex_=False)
    if r.shape != theta.shape:
        raise ValueError(f"r {tuple(r.shape)} and theta {tuple(theta.shape)} must match")
    if bool((r <= 0).any()):
        raise ValueError("r (user distances, metres) must be > 0")
    s_count = check_int(n_subarrays, "n_subarrays")
    n = check_int(n_sub, "n_sub")
    d = check_positive(spacing_m, "spacing_m")
    p = torch.arange(s_count, dtype=r.dtype, device=r.device) * (n * d)  # [S]
    rr, st = r.unsqueeze(-1), torch.sin(theta).unsqueeze(-1)
    r_sub = torch.sqrt(rr.square() + p.square() - 2.0 * p * rr * st)
    sin_sub = ((rr * st - p) / r_sub).clamp(-1.0, 1.0)
    return r_sub, torch.asin(sin_sub)


def user_distances(
    generator: torch.Generator,
    batch: int,
    n_users: int,
    *,
    r_center: float = 3.0,
    r_var: float = 1.0,
    r_min: float = 0.5,
    precision: Precision = "single",
) -> torch.Tensor:
    r"""User distances, normal and truncated below, paper 000 Sec. IV-C1.

    :math:`r_k \sim \mathcal N(r_c, \sigma_r^2)` truncated at :math:`r_{\min}`.

    The paper's :math:`\mathcal N(3\,\mathrm m, 1\,\mathrm m^2)` is negative with
    probability ~0.1% (docs/readings.md#000-near-field-distance). beamgym draws from the normal
    distribution **conditioned on** :math:`r_k \ge r_{\min}` (equivalent to resampling until
    :math:`r_k \ge r_{\min}`), exactly, by the inverse CDF in one draw:

    .. math:: r_k = r_c + \sigma_r\, \Phi^{-1}\big(a + u_k (1 - a)\big), \quad
              a = \Phi\big((r_{\min} - r_c)/\sigma_r\big), \quad u_k \sim \mathcal U(0, 1)

    Default :math:`r_{\min} = 0.5` m: about 5 apertures (``N d`` = 96 mm) and 20 sub-array
    Rayleigh distances (:math:`n^2\lambda/2` = 24 mm), so the piecewise-far-field model of
    eq. (27) stays accurate (tested); 0.6% of the paper's draws fall below it.

    Args:
        generator: CPU ``torch.Generator`` (one float64 ``[B, K]`` uniform draw).
        batch: Number of realizations ``B``.
        n_users: Users ``K``.
        r_center: Mean :math:`r_c` in metres (paper: 3).
        r_var: Variance :math:`\sigma_r^2` in m² (paper: 1).
        r_min: Truncation distance :math:`r_{\min} \ge 0` in metres; must leave
            probability mass above it.
        precision: ``"single"`` or ``"double"``.

    Returns:
        Real ``[B, K]`` distances in metres (on the CPU), all ``>= r_min``.
    """
    _check_generator_000(generator)
    batch = check_int(batch, "batch")
    n_users = check_int(n_users, "n_users")
    rc = check_positive(r_center, "r_center")
    sd = math.sqrt(check_positive(r_var, "r_var"))
    rm = check_nonnegative(r_min, "r_min")
    if (rm - rc) / sd > 8.0:
        raise ValueError(
            f"r_min={rm} m lies more than 8 standard deviations above r_center={rc} m; "
            "lower r_min or raise r_center"
        )
    a = torch.special.ndtr(torch.tensor((rm - rc) / sd, dtype=torch.float64))
    u = torch.rand((batch, n_users), generator=generator, dtype=torch.float64)
    q = (a + u * (1.0 - a)).clamp(1e-300, 1.0 - 1e-16)
    r = (rc + sd * torch.special.ndtri(q)).clamp_min(rm)
    return r.to(real_dtype(precision))


def _check_alpha_000(alpha: torch.Tensor, like: torch.Tensor, name: str) -> None:
    check_tensor(alpha, "alpha", min_ndim=1, complex_=True)
    if alpha.shape != like.shape[: alpha.ndim] or alpha.ndim != like.ndim - 1:
        raise ValueError(
            f"alpha must have shape {tuple(like.shape[:-1])} to match {name} "
            f"{tuple(like.shape)}, got {tuple(alpha.shape)}"
        )


def near_field_piecewise_channel(
    alpha: torch.Tensor,
    r_sub: torch.Tensor,
    theta_sub: torch.Tensor,
    *,
    n_sub: int,
    wavelength: float,
    spacing_m: float,
    freq_scale: float = 1.0,
) -> torch.Tensor:
    r"""Piecewise-far-field near-field channel, paper 000 eq. (27).

    .. math:: (\bar{\mathbf h}_k^s)^T = \sqrt n\,\alpha_k\,
              e^{-j\frac{2\pi}{\lambda_f} r_k^s}\, \mathbf a_n^T(\theta_k^s, d/\lambda_f),
              \qquad \bar{\mathbf h}_k^T = [(\bar{\mathbf h}_k^1)^T, \dots,
              (\bar{\mathbf h}_k^S)^T]

    i.e. entry ``q`` of sub-array ``s`` is :math:`\alpha_k e^{-j2\pi(r_k^s - (q-1)d
    \sin\theta_k^s)/\lambda_f}`: eq. (25) with the first-order distance (the sign of
    eq. (26) corrected to match eq. (35), see :mod:`beamgym.physics.analog`). At subcarrier
    ``f = freq_scale * f_c`` the wavelength is :math:`\lambda_f = \lambda/\kappa`
    (beam split: both the distance and the angle phases scale with frequency).
    :math:`\|\bar{\mathbf h}_k\|^2 = N|\alpha_k|^2`, so :math:`\mathbb E = N` as in the
    far-field model.

    Args:
        alpha: Complex ``[..., K]`` LoS gains :math:`\alpha_k`.
        r_sub: Real ``[..., K, S]`` sub-array distances (metres), eq. (35).
        theta_sub: Real ``[..., K, S]`` sub-array angles (radians), eq. (35).
        n_sub: Antennas per sub-array ``n``.
        wavelength: Carrier wavelength :math:`\lambda` in metres.
        spacing_m: Antenna spacing ``d`` in metres.
        freq_scale: :math:`\kappa = f/f_c > 0`.

    Returns:
        Complex ``[..., K, N]`` channel (``N = S n``), row ``k`` is
        :math:`\bar{\mathbf h}_k^T` (``y_k = H[k] @ W x``), dtype of ``alpha``.
    """
    check_tensor(r_sub, "r_sub", min_ndim=2, complex_=False)
    check_tensor(theta_sub, "theta_sub", min_ndim=2, complex_=False)
    if r_sub.shape != theta_sub.shape:
        raise ValueError(
            f"r_sub {tuple(r_sub.shape)} and theta_sub {tuple(theta_sub.shape)} must match"
        )
    _check_alpha_000(alpha, r_sub, "r_sub")
    n = check_int(n_sub, "n_sub")
    lam = check_positive(wavelength, "wavelength") / check_positive(freq_scale, "freq_scale")
    d = check_positive(spacing_m, "spacing_m")
    rdtype = alpha.real.dtype
    q = torch.arange(n, dtype=rdtype, device=r_sub.device)
    dist = r_sub.to(rdtype).unsqueeze(-1) - q * d * torch.sin(theta_sub.to(rdtype)).unsqueeze(-1)
    phase = (-2.0 * math.pi / lam) * dist  # [..., K, S, n]
    e = torch.polar(torch.ones_like(phase), phase).reshape(*r_sub.shape[:-1], -1)
    return alpha.unsqueeze(-1) * e


def near_field_exact_channel(
    alpha: torch.Tensor,
    r: torch.Tensor,
    theta: torch.Tensor,
    *,
    n_tx: int,
    wavelength: float,
    spacing_m: float,
    freq_scale: float = 1.0,
) -> torch.Tensor:
    r"""Exact spherical-wave LoS channel, paper 000 eq. (25) with exact distances.

    .. math:: [\bar{\mathbf h}_k^T]_i = \alpha_k e^{-j\frac{2\pi}{\lambda_f} r_k^{(i)}},
              \qquad r_k^{(i)} = \sqrt{r_k^2 + (i d)^2 - 2 i d\, r_k \sin\theta_k},
              \quad i = 0, \dots, N-1

    (antenna ``i`` at ``i d`` on the array axis, the geometry of eq. (35)). Used to check the
    first-order model of :func:`near_field_piecewise_channel` (they agree for users far
    beyond the sub-array aperture; tested) and as an optional "true" channel of
    NearFieldHybrid-v0. The distances are computed in float64 (a phase of
    :math:`2\pi r/\lambda \approx 6000` rad needs it) and then cast.

    Args:
        alpha: Complex ``[..., K]`` LoS gains.
        r: Real ``[..., K]`` distances from the first antenna, metres.
        theta: Real ``[..., K]`` angles, radians.
        n_tx: Number of antennas ``N``.
        wavelength: Carrier wavelength :math:`\lambda` in metres.
        spacing_m: Antenna spacing ``d`` in metres.
        freq_scale: :math:`\kappa = f/f_c > 0`.

    Returns:
        Complex ``[..., K, N]`` channel in ``alpha``'s dtype.
    """
    check_tensor(r, "r", min_ndim=1, complex_=False)
    check_tensor(theta, "theta", min_ndim=1, complex_=False)
    if r.shape != theta.shape:
        raise ValueError(f"r {tuple(r.shape)} and theta {tuple(theta.shape)} must match")
    check_tensor(alpha, "alpha", min_ndim=1, complex_=True)
    if alpha.shape != r.shape:
        raise ValueError(
            f"alpha must have the shape of r {tuple(r.shape)}, got {tuple(alpha.shape)}"
        )
    if bool((r <= 0).any()):
        raise ValueError("r (user distances, metres) must be > 0")
    n = check_int(n_tx, "n_tx")
    lam = check_positive(wavelength, "wavelength") / check_positive(freq_scale, "freq_scale")
    d = check_positive(spacing_m, "spacing_m")
    p = torch.arange(n, dtype=torch.float64, device=r.device) * d
    rr = r.to(torch.float64).unsqueeze(-1)
    st = torch.sin(theta.to(torch.float64)).unsqueeze(-1)
    dist = torch.sqrt(rr.square() + p.square() - 2.0 * p * rr * st)
    phase = torch.remainder((-2.0 * math.pi / lam) * dist, 2.0 * math.pi)
    e = torch.polar(torch.ones_like(phase), phase).to(alpha.dtype)
    return alpha.unsqueeze(-1) * e


def near_field_users(
    generator: torch.Generator,
    batch: int,
    *,
    n_users: int = 16,
    n_subarrays: int = 16,
    n_sub: int = 4,
    spacing_m: float = 1.5e-3,
    r_center: float = 3.0,
    r_var: float = 1.0,
    r_min: float = 0.5,
    placement: str = "single-cell",
    sector: float = math.pi / 2,
    psi: float = math.pi / 16,
    precision: Precision = "single",
) -> NearFieldUsers:
    r"""Random near-field users of paper 000 Sec. IV-C1: positions and LoS gains.

    Draws, in this order (float64 on the CPU, then cast): the angles :math:`\theta_k` as
    in the far-field case (:func:`user_azimuths`), the distances :math:`r_k`
    (:func:`user_distances`, truncated at ``r_min``) and the LoS gains
    :math:`\alpha_k \sim \mathcal{CN}(0, 1)` (one ``[B, K, 2]`` normal draw); then the
    sub-array positions of eq. (35) (:func:`subarray_positions`).

    Args:
        generator: CPU ``torch.Generator``, the only source of randomness.
        batch: Number of realizations ``B``.
        n_users: Users ``K`` (paper: 16).
        n_subarrays: Sub-arrays ``S`` (paper: 16).
        n_sub: Antennas per sub-array ``n`` (paper: 4).
        spacing_m: Antenna spacing ``d`` in metres (paper: :math:`\lambda/2` = 1.5e-3).
        r_center: Mean distance :math:`r_c` in metres (paper: 3).
        r_var: Distance variance :math:`\sigma_r^2` in m² (paper: 1).
        r_min: Truncation distance in metres (:func:`user_distances`).
        placement: ``"single-cell"`` or ``"spatial-division"`` (angles :math:`\theta_k`).
        sector: Single-cell sector :math:`\phi` in radians (paper: :math:`\pi/2`).
        psi: Spatial-division sector width :math:`\psi` in radians.
        precision: ``"single"`` or ``"double"``.

    Returns:
        :class:`NearFieldUsers` on the CPU.
    """
    _check_generator_000(generator)
    d = check_positive(spacing_m, "spacing_m")
    theta = user_azimuths(
        generator, batch, n_users, placement=placement, sector=sector, psi=psi, precision="double"
    )
    r = user_distances(
        generator, batch, n_users, r_center=r_center, r_var=r_var, r_min=r_min, precision="double"
    )
    g = torch.randn((batch, n_users, 2), generator=generator, dtype=torch.float64)
    alpha = torch.view_as_complex(g * math.sqrt(0.5))
    r_sub, theta_sub = subarray_positions(
        r, theta, n_subarrays=n_subarrays, n_sub=n_sub, spacing_m=d
    )
    rd, cd = real_dtype(precision), complex_dtype(precision)
    return NearFieldUsers(
        alpha=alpha.to(cd),
        r=r.to(rd),
        theta=theta.to(rd),
        r_sub=r_sub.to(rd),
        theta_sub=theta_sub.to(rd),
    )


def near_field_channel(
    generator: torch.Generator,
    batch: int,
    *,
    n_users: int = 16,
    n_subarrays: int = 16,
    n_sub: int = 4,
    wavelength: float = 3e-3,
    spacing_m: float | None = None,
    r_center: float = 3.0,
    r_var: float = 1.0,
    r_min: float = 0.5,
    placement: str = "single-cell",
    sector: float = math.pi / 2,
    psi: float = math.pi / 16,
    model: str = "piecewise",
    precision: Precision = "single",
) -> tuple[torch.Tensor, NearFieldUsers]:
    r"""Near-field LoS MISO channel of paper 000 Sec. IV-B/IV-C1, eq. (25)-(27), (35).

    Draws the users with :func:`near_field_users` (angles, truncated distances, gains; in
    float64) and computes the channel at the carrier: the piecewise model of eq. (27)
    (paper) or the exact spherical-wave channel (``model="exact"``). Paper defaults:
    ``N = S n = 64``, :math:`\lambda` = 3 mm, ``d`` = :math:`\lambda/2`, :math:`r_c` = 3 m,
    :math:`\sigma_r^2` = 1 m² (Rayleigh distance :math:`N^2\lambda/2` = 6.144 m). Use
    :func:`near_field_piecewise_channel` / :func:`near_field_exact_channel` with the
    returned users for other subcarriers.

    Args:
        generator: CPU ``torch.Generator``, the only source of randomness.
        batch: Number of realizations ``B``.
        n_users: Users ``K`` (paper: 16).
        n_subarrays: Sub-arrays ``S`` (paper: 16).
        n_sub: Antennas per sub-array ``n`` (paper: 4).
        wavelength: Carrier wavelength :math:`\lambda` in metres (paper: 3e-3).
        spacing_m: Antenna spacing ``d`` in metres (default :math:`\lambda/2`).
        r_center: Mean distance :math:`r_c` in metres.
        r_var: Distance variance :math:`\sigma_r^2` in m².
        r_min: Truncation distance in metres (:func:`user_distances`).
        placement: ``"single-cell"`` or ``"spatial-division"`` (angles :math:`\theta_k`).
        sector: Single-cell sector :math:`\phi` in radians.
        psi: Spatial-division sector width :math:`\psi` in radians.
        model: ``"piecewise"`` (eq. (27)) or ``"exact"`` (eq. (25)).
        precision: ``"single"`` or ``"double"``.

    Returns:
        ``(H_bar, users)``: complex ``[B, K, N]`` un-normalized channel (row ``k`` is
        :math:`\bar{\mathbf h}_k^T`, :math:`\mathbb E\|\bar{\mathbf h}_k\|^2 = N`) and the
        :class:`NearFieldUsers` (gains and positions), on the CPU.
    """
    if model not in NEAR_FIELD_MODELS:
        raise ValueError(f"model must be one of {NEAR_FIELD_MODELS}, got {model!r}")
    lam = check_positive(wavelength, "wavelength")
    d = lam / 2 if spacing_m is None else check_positive(spacing_m, "spacing_m")
    users = near_field_users(
        generator,
        batch,
        n_users=n_users,
        n_subarrays=n_subarrays,
        n_sub=n_sub,
        spacing_m=d,
        r_center=r_center,
        r_var=r_var,
        r_min=r_min,
        placement=placement,
        sector=sector,
        psi=psi,
        precision="double",
    )
    if model == "piecewise":
        H = near_field_piecewise_channel(
            users.alpha, users.r_sub, users.theta_sub, n_sub=n_sub, wavelength=lam, spacing_m=d
        )
    else:
        H = near_field_exact_channel(
            users.alpha, users.r, users.theta, n_tx=n_subarrays * n_sub, wavelength=lam, spacing_m=d
        )
    rd, cd = real_dtype(precision), complex_dtype(precision)
    users = NearFieldUsers(
        alpha=users.alpha.to(cd),
        r=users.r.to(rd),
        theta=users.theta.to(rd),
        r_sub=users.r_sub.to(rd),
        theta_sub=users.theta_sub.to(rd),
    )
    return H.to(cd), users


__all__ += [
    "NEAR_FIELD_MODELS",
    "NearFieldUsers",
    "subarray_positions",
    "user_distances",
    "near_field_piecewise_channel",
    "near_field_exact_channel",
    "near_field_users",
    "near_field_channel",
]

# ---- paper 003: extended Saleh-Valenzuela channel ------------------------------------------------

#: Channel normalizations of :func:`saleh_valenzuela_channel`.
SV_NORMALIZATIONS: tuple[str, ...] = ("paper", "scaled")


def saleh_valenzuela_channel(
    generator: torch.Generator,
    batch: int,
    *,
    n_tx: int,
    n_users: int,
    n_paths: int = 10,
    normalization: str = "paper",
    precision: Precision = "single",
) -> torch.Tensor:
    r"""Extended Saleh-Valenzuela MISO downlink channel, paper 003 eq. (2)-(3).

    .. math::
        \mathbf h_k = c \sum_{p=1}^{P} \alpha_{pk}\, \mathbf a(\phi_{pk}),\qquad
        \mathbf a(\phi) = \tfrac{1}{\sqrt N}\big[1, e^{j\pi\sin\phi}, \dots,
        e^{j\pi(N-1)\sin\phi}\big]^T,

    with :math:`\alpha_{pk} \sim \mathcal{CN}(0, 1)` and :math:`\phi_{pk} \sim
    \mathcal U(0, 2\pi)` i.i.d. (paper 003 Sec. IV). The paper does not say how the channel is
    scaled (docs/readings.md#003-channel-normalization), so two scalings are offered:

    * ``"paper"``: :math:`c = 1`, eq. (2)-(3) as printed, so
      :math:`\mathbb E\|\mathbf h_k\|^2 = P` (the number of paths);
    * ``"scaled"``: :math:`c = \sqrt{N/P}` as in the cited models (paper 003 refs. [6], [7]),
      so :math:`\mathbb E\|\mathbf h_k\|^2 = N`.

    The noise power is left to the caller (beamgym uses :math:`\sigma_n^2 = 1` and
    :math:`P_t = \mathrm{SNR}`). All randomness is drawn on the CPU from ``generator``
    (first the gains, then the angles).

    Args:
        generator: CPU ``torch.Generator``, the only source of randomness.
        batch: Number of channel realizations ``B``.
        n_tx: Number of BS antennas ``N``.
        n_users: Number of single-antenna users ``K``.
        n_paths: Number of propagation paths ``P`` per user (paper: 10).
        normalization: ``"paper"`` or ``"scaled"`` (see above).
        precision: ``"single"`` (complex64) or ``"double"`` (complex128).

    Returns:
        Complex ``[B, K, N]`` tensor on the CPU whose row ``k`` is :math:`\mathbf h_k^H`, i.e.
        paper 003's :math:`\mathbf H = [\mathbf h_1, \dots, \mathbf h_K]^H` (the convention of
        :mod:`beamgym.physics.metrics`).
    """
    if not isinstance(generator, torch.Generator):
        raise ValueError(
            f"generator must be a torch.Generator, got {type(generator).__name__}; "
            "pass torch.Generator().manual_seed(seed)"
        )
    batch = check_int(batch, "batch")
    n_tx = check_int(n_tx, "n_tx")
    n_users = check_int(n_users, "n_users")
    n_paths = check_int(n_paths, "n_paths")
    if normalization not in SV_NORMALIZATIONS:
        raise ValueError(
            f"normalization must be one of {SV_NORMALIZATIONS} (E||h||^2 = P paths or N), "
            f"got {normalization!r}"
        )
    rdtype, cdtype = real_dtype(precision), complex_dtype(precision)
    shape = (batch, n_users, n_paths)
    gain = torch.complex(
        torch.randn(shape, generator=generator, dtype=rdtype),
        torch.randn(shape, generator=generator, dtype=rdtype),
    ) * math.sqrt(0.5)
    phi = torch.rand(shape, generator=generator, dtype=rdtype) * (2.0 * math.pi)
    a = ula_response(phi, n_tx, 0.5, normalize=True).to(cdtype)  # [B, K, P, N]
    h = (gain.unsqueeze(-1) * a).sum(-2)  # [B, K, N]: h_k
    if normalization == "scaled":
        h = h * math.sqrt(n_tx / n_paths)
    return h.conj().resolve_conj()  # materialized: no lazy conjugate view


__all__ += ["saleh_valenzuela_channel", "SV_NORMALIZATIONS"]

# ---- paper 004: i.i.d. Rayleigh multi-band uplink channel ----------------------------------------
__all__ += ["rayleigh_uplink_channel"]


def rayleigh_uplink_channel(
    generator: torch.Generator,
    batch_size: int,
    num_bands: int,
    num_antennas: int,
    num_users: int,
    *,
    precision: Precision = "single",
    device: str | torch.device | None = None,
) -> torch.Tensor:
    r"""i.i.d. Rayleigh multi-band uplink channels, paper 004 eq. (1) and Sec. V-A.

    .. math:: \mathbf y[b] = \mathbf H[b]\,\mathbf s[b] + \mathbf w[b],\qquad
              [\mathbf H[b]]_{m,k} \overset{\text{i.i.d.}}{\sim} \mathcal{CN}(0, 1),
              \quad b = 1, \dots, B

    Entries are independent across antennas, users and frequency bins
    (docs/readings.md#004-setup: unit variance, so ``E|h|^2 = 1`` and the SNR is
    ``rho_s / sigma_w^2``). They are drawn on the
    CPU in float64 from ``generator`` and then cast, so one seed gives the same channels (to
    rounding) in both precisions and on every device.

    Args:
        generator: CPU ``torch.Generator``, the only source of randomness.
        batch_size: Number of independent instances.
        num_bands: Number of frequency bins ``B``.
        num_antennas: Receive antennas ``M = P N``.
        num_users: Single-antenna users ``K``.
        precision: ``"single"`` (complex64) or ``"double"`` (complex128).
        device: Device of the result (default CPU).

    Returns:
        ``[batch_size, B, M, K]`` complex channel ``H[b]`` (column ``k`` is user ``k``'s
        channel), dimensionless (unit average power gain).
    """
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError("generator must be a CPU torch.Generator (sample on CPU, then move)")
    batch_size = check_int(batch_size, "batch_size")
    num_bands = check_int(num_bands, "num_bands")
    num_antennas = check_int(num_antennas, "num_antennas")
    num_users = check_int(num_users, "num_users")
    shape = (batch_size, num_bands, num_antennas, num_users, 2)
    z = torch.randn(shape, generator=generator, dtype=torch.float64) * math.sqrt(0.5)
    h = torch.view_as_complex(z).to(complex_dtype(precision))
    return h.to("cpu" if device is None else device)


# ---- paper 002: spatially correlated UPA channel -------------------------------------------------
#
# Paper 002 (Sec. V-A-4, Table 1): per-user covariance R_i = R_{x,i} (x) R_{y,i} of a
# half-wavelength UPA, each axis following the simplified spatial-correlation model of its
# ref. [78] (Forenza, Love, Heath 2007), and h_i ~ CN(0, R_i). Channel convention of paper
# 002: h[..., i, :] is the paper's h_i, the received signal is y_i = h_i^H x (eq. (1)), and
# R_i = E[h_i h_i^H] (eq. (3)); the metrics-module convention "row k is h_k^H" is h.conj().

__all__ += [
    "laplacian_covariance_ula",
    "upa_covariance",
    "hermitian_sqrt",
    "sample_correlated_channel",
    "sample_upa_angles",
]

_SPECTRA_002 = ("laplacian", "gaussian")


def laplacian_covariance_ula(
    phi: torch.Tensor,
    sigma_as: float | torch.Tensor,
    n: int,
    *,
    spectrum: str = "laplacian",
    precision: Precision | None = None,
) -> torch.Tensor:
    r"""Spatial covariance of a half-wavelength ULA, paper 002 Sec. V-A-4 (its ref. [78]).

    Laplacian power-angle spectrum of spread :math:`\sigma_{as}` around :math:`\varphi`
    (closed form of [78], docs/readings.md#002-covariance):

    .. math:: [\mathbf R]_{m,n} = \frac{e^{j\pi(m-n)\sin\varphi}}
              {1 + \tfrac12\left(\pi (m-n)\, \sigma_{as} \cos\varphi\right)^2}

    Gaussian spectrum (``spectrum="gaussian"``, an option only: it gives lower powers than
    the paper's Table 2, see BENCHMARKS.md, section "Paper 002 Table 2"):

    .. math:: [\mathbf R]_{m,n} = e^{j\pi(m-n)\sin\varphi}\,
              e^{-\frac12\left(\pi (m-n)\, \sigma_{as} \cos\varphi\right)^2}

    Both are Hermitian Toeplitz with unit diagonal (:math:`\mathrm{Tr}\,\mathbf R = n`) and
    positive semidefinite (the real factors are samples of positive-definite functions, the
    Fourier transforms of a Laplacian resp. Gaussian density). The phase convention matches
    :func:`beamgym.physics.arrays.ula_response`: for :math:`\sigma_{as} = 0`,
    :math:`\mathbf R = n\, \mathbf a(\varphi) \mathbf a(\varphi)^H`.

    Args:
        phi: Real ``[...]`` mean angles of departure :math:`\varphi`, radians.
        sigma_as: Angular spread :math:`\sigma_{as} \ge 0` in radians: a float or a real
            tensor broadcastable to ``phi``.
        n: Number of antenna elements.
        spectrum: ``"laplacian"`` (default, the paper's model) or ``"gaussian"``.
        precision: ``"single"``/``"double"``; default follows ``phi``'s dtype.

    Returns:
        Complex ``[..., n, n]`` covariance matrices.
    """
    check_tensor(phi, "phi", complex_=False)
    n = check_int(n, "n")
    if spectrum not in _SPECTRA_002:
        raise ValueError(f"spectrum must be one of {_SPECTRA_002}, got {spectrum!r}")
    rdtype = phi.dtype if precision is None else real_dtype(precision)
    cdtype = torch.complex64 if rdtype == torch.float32 else torch.complex128
    phi = phi.to(rdtype)
    if isinstance(sigma_as, torch.Tensor):
        check_tensor(sigma_as, "sigma_as", complex_=False)
        sig = sigma_as.to(device=phi.device, dtype=rdtype)
    else:
        sig = torch.tensor(float(sigma_as), dtype=rdtype, device=phi.device)
        check_tensor(sig, "sigma_as")
    if bool((sig < 0).any()):
        raise ValueError("sigma_as must be >= 0 (radians)")
    try:
        phi, sig = torch.broadcast_tensors(phi, sig)
    except RuntimeError as err:
        raise ValueError(
            f"sigma_as of shape {tuple(sig.shape)} does not broadcast to phi {tuple(phi.shape)}"
        ) from err
    idx = torch.arange(n, dtype=rdtype, device=phi.device)
    d = idx.unsqueeze(-1) - idx  # [n, n]: m - n
    s = phi.sin()[..., None, None]
    x = math.pi * d * (sig * phi.cos())[..., None, None]
    if spectrum == "laplacian":
        amp = 1.0 / (1.0 + 0.5 * x.square())
    else:
        amp = torch.exp(-0.5 * x.square())
    return torch.polar(amp, math.pi * d * s).to(cdtype)


def upa_covariance(
    phi_x: torch.Tensor,
    phi_y: torch.Tensor,
    sigma_as: float | torch.Tensor,
    n_x: int,
    n_y: int,
    *,
    spectrum: str = "laplacian",
    precision: Precision | None = None,
) -> torch.Tensor:
    r"""UPA covariance :math:`\mathbf R = \mathbf R_x \otimes \mathbf R_y`, paper 002 Sec. V-A-4.

    Each axis follows :func:`laplacian_covariance_ula` with its own direction
    (:math:`\varphi_x`, :math:`\varphi_y`) and the common spread :math:`\sigma_{as}`.
    :math:`\mathrm{Tr}\,\mathbf R = n_x n_y = M`; the element index is ``i_x * n_y + i_y``
    (as :func:`beamgym.physics.arrays.upa_response`).

    Args:
        phi_x: Real ``[...]`` x-axis directions :math:`\varphi_x`, radians.
        phi_y: Real ``[...]`` y-axis directions :math:`\varphi_y`, radians (same shape).
        sigma_as: Angular spread :math:`\sigma_{as}` in radians (float or broadcastable
            tensor); paper 002 Table 1: :math:`10^\circ` (:math:`5^\circ` in Sec. V-E).
        n_x: Elements along x (:math:`M_x`).
        n_y: Elements along y (:math:`M_y`).
        spectrum: ``"laplacian"`` (paper) or ``"gaussian"``.
        precision: ``"single"``/``"double"``; default follows the angles' dtype.

    Returns:
        Complex ``[..., M, M]`` covariances with ``M = n_x n_y``.
    """
    check_tensor(phi_x, "phi_x", complex_=False)
    check_tensor(phi_y, "phi_y", complex_=False)
    if phi_x.shape != phi_y.shape:
        raise ValueError(
            f"phi_x and phi_y must have the same shape, got {tuple(phi_x.shape)} and "
            f"{tuple(phi_y.shape)}"
        )
    rx = laplacian_covariance_ula(phi_x, sigma_as, n_x, spectrum=spectrum, precision=precision)
    ry = laplacian_covariance_ula(phi_y, sigma_as, n_y, spectrum=spectrum, precision=precision)
    m = rx.shape[-1] * ry.shape[-1]
    return (rx[..., :, None, :, None] * ry[..., None, :, None, :]).reshape(*rx.shape[:-2], m, m)


def hermitian_sqrt(R: torch.Tensor) -> torch.Tensor:
    r"""Hermitian PSD square root, robust to rank deficiency (for paper 002 Sec. V-A-4).

    .. math:: \mathbf R^{1/2} = \mathbf V \boldsymbol\Lambda_+^{1/2} \mathbf V^H

    Uses an eigendecomposition with eigenvalues clamped at zero (not a Cholesky factor, which
    fails on the singular covariances of small angular spreads). The input is symmetrized
    first, :math:`(\mathbf R + \mathbf R^H)/2`, and eigenvalues below the rounding level
    :math:`M \epsilon \lambda_{\max}` are set to zero (so a rank-deficient covariance gives
    exactly rank-deficient channels instead of :math:`\sqrt{\epsilon}`-size leakage).

    Args:
        R: Complex ``[..., M, M]`` Hermitian PSD matrices.

    Returns:
        Complex ``[..., M, M]`` Hermitian PSD matrices ``S`` with ``S @ S = R`` (up to the
        clamped negative rounding-level eigenvalues).
    """
    check_tensor(R, "R", min_ndim=2, complex_=True)
    if R.shape[-1] != R.shape[-2]:
        raise ValueError(f"R must be square [..., M, M], got {tuple(R.shape)}")
    lam, vec = torch.linalg.eigh(0.5 * (R + R.mH))
    # eigenvalues below the rounding level M * eps * lambda_max are zero (not sqrt(noise))
    tol = R.shape[-1] * torch.finfo(lam.dtype).eps * lam[..., -1:].abs()
    root = torch.where(lam > tol, lam, torch.zeros_like(lam)).sqrt().to(R.dtype)
    return (vec * root.unsqueeze(-2)) @ vec.mH


def sample_correlated_channel(
    R: torch.Tensor,
    generator: torch.Generator,
    n_samples: int | None = None,
) -> torch.Tensor:
    r"""Correlated Rayleigh channels h ~ CN(0, R), paper 002 Sec. V-A-4.

    .. math:: \mathbf h = \mathbf R^{1/2} \mathbf n,\qquad \mathbf n \sim
              \mathcal{CN}(\mathbf 0, \mathbf I)

    with the Hermitian square root of :func:`hermitian_sqrt`. The normal draws are made on the
    CPU from ``generator`` (bit-identical across devices) and then moved to ``R``'s device.

    Args:
        R: Complex ``[..., M, M]`` Hermitian PSD covariances.
        generator: CPU ``torch.Generator``, the only source of randomness.
        n_samples: If given, draw ``S = n_samples`` independent channels per covariance.

    Returns:
        Complex ``[..., M]`` (or ``[..., S, M]``) channels in ``R``'s dtype.
    """
    check_tensor(R, "R", min_ndim=2, complex_=True)
    m = R.shape[-1]
    if R.shape[-2] != m:
        raise ValueError(f"R must be square [..., M, M], got {tuple(R.shape)}")
    batch = tuple(R.shape[:-2])
    extra = () if n_samples is None else (check_int(n_samples, "n_samples"),)
    rdtype = R.real.dtype
    z = torch.randn((*batch, *extra, m, 2), generator=generator, dtype=rdtype)
    n = torch.view_as_complex(z.contiguous()).to(R.device) / math.sqrt(2.0)
    root = hermitian_sqrt(R)
    if n_samples is None:
        return (root @ n.unsqueeze(-1)).squeeze(-1)
    return n @ root.mT  # [..., S, M]: rows are (R^{1/2} n_s)^T


def sample_upa_angles(
    generator: torch.Generator,
    shape: tuple[int, ...],
    phi_x_range_deg: tuple[float, float] = (-60.0, 60.0),
    phi_y_range_deg: tuple[float, float] = (-60.0, 30.0),
    *,
    precision: Precision = "single",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Uniform user directions :math:`(\varphi_x, \varphi_y)`, paper 002 Table 1.

    :math:`\varphi_x \sim \mathcal U[-60^\circ, 60^\circ]` and :math:`\varphi_y \sim
    \mathcal U[-60^\circ, 30^\circ]` (independent, per user), the per-axis directions that
    enter :func:`upa_covariance`.

    Args:
        generator: CPU ``torch.Generator``.
        shape: Output shape, e.g. ``(B, I)``.
        phi_x_range_deg: ``(low, high)`` of :math:`\varphi_x` in degrees.
        phi_y_range_deg: ``(low, high)`` of :math:`\varphi_y` in degrees.
        precision: ``"single"`` or ``"double"``.

    Returns:
        ``(phi_x, phi_y)``: real CPU tensors of ``shape``, in radians.
    """
    rdtype = real_dtype(precision)
    out = []
    for rng, name in ((phi_x_range_deg, "phi_x_range_deg"), (phi_y_range_deg, "phi_y_range_deg")):
        lo, hi = (float(v) for v in rng)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"{name} must be a finite (low, high) with low <= high, got {rng}")
        u = torch.rand(shape, generator=generator, dtype=torch.float64)
        out.append(torch.deg2rad(lo + (hi - lo) * u).to(rdtype))
    return out[0], out[1]
