r"""Analog beamformers of paper 000 Sec. IV: far-field beam steering and near-field TTD+PS.

Conventions (shared with :mod:`beamgym.physics.metrics`): a channel is stored so that
``y_k = H[k] @ W x``; an analog precoder ``W_a`` is ``[..., N, N_RF]`` (column ``r`` feeds RF
chain ``r``) and the effective channel is ``G = H @ W_a`` (paper 000 eq. (19)/(21)/(32)).

Near-field sign conventions (paper 000 Sec. IV-B; the printed equations mix two conventions,
so beamgym fixes one physically consistent reading and tests it):

* carrier phase :math:`e^{j 2\pi f t}`, so a path of length ``r`` contributes
  :math:`e^{-j 2\pi r/\lambda}` (eq. (25) as printed) and a true time delay of ``μ / c``
  contributes :math:`e^{-j 2\pi \mu/\lambda}`;
* array geometry of eq. (35) as printed: antenna ``i`` (0-based) sits at ``p_i = i d`` on the
  array axis and user ``k`` at distance ``r_k`` and angle ``θ_k`` from the first antenna, with
  axis coordinate ``r_k sin θ_k``. The first-order distance of antenna ``q`` of sub-array
  ``s`` is then :math:`r_k^{s,q} \approx r_k^s - (q-1) d \sin\theta_k^s` (eq. (26) prints
  ``+``; the Taylor expansion of eq. (35)'s geometry gives ``-``), so eq. (27) reads
  :math:`(\bar{\mathbf h}_k^s)^T = \sqrt n \alpha_k e^{-j2\pi r_k^s/\lambda}
  \mathbf a_n^T(\theta_k^s)`;
* the TTD factor of eq. (28) is the physical delay :math:`e^{-j 2\pi \mu_k^s/\lambda}`
  (eq. (28) prints ``+``). With these two corrections the optimum of eq. (30) holds exactly as
  printed (:math:`\eta_k^s = -\theta_k^s`, :math:`\mu_k^s = \max_s r_k^s - r_k^s \ge 0`) and
  the normalized gain of eq. (29), :math:`b_k = |\bar{\mathbf h}_k^T \mathbf v_k| /
  (\sqrt N |\alpha_k|)`, equals 1 under the piecewise model (tested).

Wideband (beam split, docs/readings.md#000-wideband): at subcarrier frequency
``f = freq_scale * f_c`` the channel phases and the TTD phases scale with ``freq_scale``
while the phase shifters stay frequency-flat.

References:
    [000] Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse
          Large-Scale MIMO Channels".
"""

from __future__ import annotations

import math

import torch

from beamgym._validation import check_int, check_positive, check_tensor
from beamgym.config import Precision, real_dtype
from beamgym.physics.arrays import ula_response
from beamgym.physics.channels import check_placement, sector_centers

__all__ = [
    "steering_angles",
    "steering_analog",
    "ttd_ps_parameters",
    "ttd_ps_analog",
    "normalized_beam_gain",
]


def steering_angles(
    n_rf: int,
    *,
    placement: str = "single-cell",
    sector: float = math.pi / 2,
    psi: float = math.pi / 16,
    n_users: int = 16,
    n_rx: int = 1,
    precision: Precision = "single",
) -> torch.Tensor:
    r"""Steering angles of the far-field analog precoder, paper 000 Sec. IV-A.

    * single cell (coverage :math:`[-\phi/2, \phi/2]`): :math:`\beta_n = -\frac{\phi}{2} +
      \frac{(n - \frac12)\phi}{N_{RF}}`, :math:`n \in [N_{RF}]`;
    * spatial division (needs :math:`N_{RF} = KM`): :math:`\beta_{(k-1)M+m} = \eta_K(k) -
      \frac{\psi}{2} + \frac{(m - \frac12)\psi}{M}`, :math:`k \in [K]`, :math:`m \in [M]`,
      with :math:`\eta_K(k)` of :func:`beamgym.physics.channels.sector_centers`.

    Angles follow the AOD convention of
    :func:`beamgym.physics.channels.sparse_geometric_channel` (mean AOD = user azimuth), so
    column ``n`` of :func:`steering_analog` points at azimuth :math:`\beta_n`.

    Args:
        n_rf: Number of RF chains :math:`N_{RF}`.
        placement: ``"single-cell"`` or ``"spatial-division"``.
        sector: Sector angle :math:`\phi \in (0, \pi]` in radians (single cell).
        psi: Sector width :math:`\psi \in (0, \pi/K]` in radians (spatial division).
        n_users: Number of users ``K`` (spatial division; also checks ``psi``).
        n_rx: Antennas per user ``M`` (spatial division).
        precision: ``"single"`` (float32) or ``"double"`` (float64).

    Returns:
        Real ``[N_RF]`` angles in radians.
    """
    n_rf = check_int(n_rf, "n_rf")
    n_rx = check_int(n_rx, "n_rx")
    sector, psi = check_placement(placement, n_users, sector=sector, psi=psi)
    if placement == "single-cell":
        n = torch.arange(1, n_rf + 1, dtype=torch.float64)
        beta = -sector / 2 + (n - 0.5) * sector / n_rf
    else:
        if n_rf != n_users * n_rx:
            raise ValueError(
                f"spatial-division steering needs N_RF = K*M = {n_users * n_rx} RF chains "
                f"(paper 000 Sec. IV-A), got n_rf={n_rf}"
            )
        m = torch.arange(1, n_rx + 1, dtype=torch.float64)
        eta = sector_centers(n_users, precision="double")
        beta = (eta.unsqueeze(-1) - psi / 2 + (m - 0.5) * psi / n_rx).reshape(-1)
    return beta.to(real_dtype(precision))


def steering_analog(angles: torch.Tensor, n_tx: int, spacing: float = 0.5) -> torch.Tensor:
    r"""Beam-steering analog precoder, paper 000 eq. (18).

    .. math:: \mathbf W^a(\boldsymbol\beta) = \big[\mathbf a_N(\beta_1, d/\lambda), \dots,
              \mathbf a_N(\beta_{N_{RF}}, d/\lambda)\big]

    with the unit-norm ULA response of eq. (6), so every column has unit norm and
    :math:`\|\mathbf W^a\|_F^2 = N_{RF}` (entries of modulus :math:`1/\sqrt N`). Against the
    channel of :func:`beamgym.physics.channels.sparse_geometric_channel` (rows
    :math:`\propto \mathbf a_N^H(\gamma)`), column ``n`` has gain
    :math:`|\mathbf a_N^H(\gamma)\mathbf a_N(\beta_n)| = 1` when :math:`\gamma = \beta_n`.

    Args:
        angles: Real ``[..., N_RF]`` steering angles in radians (e.g. from
            :func:`steering_angles`); its dtype sets the precision.
        n_tx: Number of BS antennas ``N``.
        spacing: Antenna spacing :math:`d/\lambda` in wavelengths (paper: 1/2).

    Returns:
        Complex ``[..., N, N_RF]`` analog precoder.
    """
    check_tensor(angles, "angles", min_ndim=1, complex_=False)
    return ula_response(angles, check_int(n_tx, "n_tx"), spacing).transpose(-1, -2)


def _check_sub(r_sub: torch.Tensor, theta_sub: torch.Tensor) -> None:
    check_tensor(r_sub, "r_sub", min_ndim=1, complex_=False)
    check_tensor(theta_sub, "theta_sub", min_ndim=1, complex_=False)
    if r_sub.shape != theta_sub.shape:
        raise ValueError(
            f"r_sub {tuple(r_sub.shape)} and theta_sub {tuple(theta_sub.shape)} must have the "
            "same shape [..., K, S]"
        )
    if bool((r_sub <= 0).any()):
        raise ValueError("r_sub (sub-array distances, metres) must be > 0")


def ttd_ps_parameters(
    r_sub: torch.Tensor, theta_sub: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Optimal TTD delays and PS angles, paper 000 eq. (30).

    .. math:: \eta_k^s = -\theta_k^s, \qquad \mu_k^s = \max_{s' \in [S]} r_k^{s'} - r_k^s
              \ \ge 0

    With the sign conventions of this module (TTD factor :math:`e^{-j2\pi\mu/\lambda}`,
    first-order distance :math:`r_k^s - (q-1)d\sin\theta_k^s`) these maximize the normalized
    gain :math:`b_k` of eq. (29) to its maximum 1 under the piecewise-far-field channel: the
    delays equalize the total path length :math:`\mu_k^s + r_k^s = \max_s r_k^s` of every
    sub-array and the phase shifters undo each sub-array's linear phase.

    Args:
        r_sub: Real ``[..., K, S]`` sub-array distances :math:`r_k^s` in metres (eq. (35)).
        theta_sub: Real ``[..., K, S]`` sub-array angles :math:`\theta_k^s` in radians.

    Returns:
        ``(mu, eta)``: real ``[..., K, S]`` delays :math:`\mu_k^s \ge 0` in metres (delay
        times the speed of light) and PS angles :math:`\eta_k^s` in radians.
    """
    _check_sub(r_sub, theta_sub)
    mu = r_sub.amax(-1, keepdim=True) - r_sub
    return mu, -theta_sub


def ttd_ps_analog(
    r_sub: torch.Tensor,
    theta_sub: torch.Tensor,
    *,
    n_sub: int,
    wavelength: float,
    spacing_m: float,
    mu: torch.Tensor | None = None,
    eta: torch.Tensor | None = None,
    freq_scale: float = 1.0,
    time_delay: bool = True,
) -> torch.Tensor:
    r"""TTD + phase-shifter analog precoder, paper 000 eq. (28) and (31).

    .. math:: \mathbf v_k^s = \sqrt{n/N}\; e^{-j\frac{2\pi}{\lambda_f}\mu_k^s}\;
              \mathbf a_n\big(\eta_k^s, d/\lambda\big), \qquad
              \mathbf W^a(\mathbf P) = [\mathbf v_1, \dots, \mathbf v_K]

    with :math:`\mathbf v_k = [(\mathbf v_k^1)^T, \dots, (\mathbf v_k^S)^T]^T` (unit norm),
    :math:`N = Sn`, and by default the optimum of eq. (30) (:func:`ttd_ps_parameters`).
    The TTD sign is the physical delay (module docstring; eq. (28) prints ``+``).

    Wideband: at subcarrier frequency :math:`f = \kappa f_c` (``freq_scale`` :math:`\kappa`)
    the wavelength is :math:`\lambda_f = \lambda/\kappa`. A true time delay follows the
    frequency (:math:`e^{-j2\pi\kappa\mu/\lambda}`) whereas the phase shifters are
    frequency-flat (:math:`\mathbf a_n(\eta, d/\lambda)` at the carrier). With
    ``time_delay=False`` the TTDs are replaced by frequency-flat phase shifters set at the
    carrier (:math:`e^{-j2\pi\mu/\lambda}` at every subcarrier), the beam-split baseline.
    At :math:`\kappa = 1` both coincide.

    Args:
        r_sub: Real ``[..., K, S]`` sub-array distances :math:`r_k^s` in metres.
        theta_sub: Real ``[..., K, S]`` sub-array angles :math:`\theta_k^s` in radians.
        n_sub: Antennas per sub-array ``n`` (paper: 4).
        wavelength: Carrier wavelength :math:`\lambda` in metres (paper: 3e-3).
        spacing_m: Antenna spacing ``d`` in metres (paper: :math:`\lambda/2`).
        mu: Optional real ``[..., K, S]`` delays in metres (default: eq. (30)).
        eta: Optional real ``[..., K, S]`` PS angles in radians (default: eq. (30)).
        freq_scale: :math:`\kappa = f / f_c > 0`.
        time_delay: ``True`` for TTDs (frequency-proportional phase), ``False`` for
            frequency-flat phase shifters in their place.

    Returns:
        Complex ``[..., N, K]`` analog precoder with unit-norm columns (complex dtype
        matching ``r_sub``'s real dtype).
    """
    _check_sub(r_sub, theta_sub)
    n = check_int(n_sub, "n_sub")
    lam = check_positive(wavelength, "wavelength")
    d = check_positive(spacing_m, "spacing_m")
    kappa = check_positive(freq_scale, "freq_scale")
    mu0, eta0 = ttd_ps_parameters(r_sub, theta_sub)
    for name, val in (("mu", mu), ("eta", eta)):
        if val is not None:
            check_tensor(val, name, complex_=False)
            if val.shape != r_sub.shape:
                raise ValueError(
                    f"{name} must have the shape of r_sub {tuple(r_sub.shape)}, got "
                    f"{tuple(val.shape)}"
                )
    mu = mu0 if mu is None else mu.to(r_sub.dtype)
    eta = eta0 if eta is None else eta.to(r_sub.dtype)
    if bool((mu < 0).any()):
        raise ValueError("mu (TTD delays, metres) must be >= 0 (paper 000 eq. (28))")
    s_count = r_sub.shape[-1]
    big_n = s_count * n
    ttd_scale = kappa if time_delay else 1.0
    phase = -2.0 * math.pi * ttd_scale * mu / lam  # [..., K, S]
    ttd = torch.polar(torch.full_like(phase, math.sqrt(n / big_n)), phase)
    v = ttd.unsqueeze(-1) * ula_response(eta, n, d / lam)  # [..., K, S, n]
    v = v.reshape(*v.shape[:-2], big_n)  # [..., K, N]
    return v.transpose(-1, -2)


def normalized_beam_gain(H: torch.Tensor, W_a: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    r"""Normalized beamforming gain of each user's own analog beam, paper 000 eq. (29).

    .. math:: b_k = \frac{|\bar{\mathbf h}_k^T \mathbf v_k|}{\sqrt N\,|\alpha_k|}

    (the printed prefactor :math:`1/\sqrt{N|\alpha_k|}` is garbled; this is the form that
    equals the printed right-hand side). :math:`b_k \le 1` for unit-norm
    :math:`\mathbf v_k` and a channel with entries of modulus :math:`|\alpha_k|`
    (Cauchy-Schwarz), with equality for the eq. (30) beam on the piecewise channel.

    Args:
        H: Complex ``[B, K, N]`` channel, row ``k`` is :math:`\bar{\mathbf h}_k^T`.
        W_a: Complex ``[B, N, K]`` analog precoder, column ``k`` is :math:`\mathbf v_k`.
        alpha: Complex ``[B, K]`` LoS gains :math:`\alpha_k` (nonzero).

    Returns:
        Real ``[B, K]`` gains :math:`b_k`.
    """
    check_tensor(H, "H", ndim=3, complex_=True)
    check_tensor(W_a, "W_a", ndim=3, complex_=True)
    check_tensor(alpha, "alpha", ndim=2, complex_=True)
    b, k, n = H.shape
    if W_a.shape != (b, n, k) or alpha.shape != (b, k):
        raise ValueError(
            f"W_a must be [B, N, K] = [{b}, {n}, {k}] and alpha [B, K] = [{b}, {k}], got "
            f"{tuple(W_a.shape)} and {tuple(alpha.shape)}"
        )
    own = (H * W_a.transpose(-1, -2)).sum(-1)  # h_k^T v_k
    return own.abs() / (math.sqrt(n) * alpha.abs())
