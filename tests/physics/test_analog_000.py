"""Paper 000 analog precoders: far-field steering eq. (18), near-field TTD+PS eq. (28)-(31)."""

from __future__ import annotations

import math

import pytest
import torch

from beamgym.physics.analog import (
    normalized_beam_gain,
    steering_analog,
    steering_angles,
    ttd_ps_analog,
    ttd_ps_parameters,
)
from beamgym.physics.arrays import ula_response
from beamgym.physics.channels import (
    near_field_channel,
    near_field_exact_channel,
    near_field_piecewise_channel,
    sector_centers,
    sparse_geometric_channel,
)

LAM, D = 3e-3, 1.5e-3


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- far field (Sec. IV-A) -----------------------------------------------------------------
def test_single_cell_steering_angles_spread_evenly() -> None:
    b = steering_angles(16, sector=math.pi / 2, precision="double")
    # beta_n = -phi/2 + (n - 1/2) phi / N_RF
    assert b[0].item() == pytest.approx(-math.pi / 4 + math.pi / 64)
    assert b[-1].item() == pytest.approx(math.pi / 4 - math.pi / 64)
    torch.testing.assert_close(b.diff(), torch.full((15,), math.pi / 32, dtype=torch.float64))
    assert steering_angles(4).dtype == torch.float32


def test_spatial_division_steering_angles_stay_in_each_users_sector() -> None:
    k, m, psi = 4, 2, math.pi / 8
    b = steering_angles(
        k * m, placement="spatial-division", psi=psi, n_users=k, n_rx=m, precision="double"
    )
    eta = sector_centers(k, precision="double").repeat_interleave(m)
    assert ((b - eta).abs() < psi / 2).all()
    # beta_{(k-1)M+m} = eta_K(k) - psi/2 + (m - 1/2) psi / M
    assert b[1].item() == pytest.approx(eta[0].item() - psi / 2 + 1.5 * psi / m)
    with pytest.raises(ValueError, match="N_RF = K\\*M"):
        steering_angles(5, placement="spatial-division", psi=psi, n_users=k, n_rx=m)
    with pytest.raises(ValueError, match="psi"):
        steering_angles(4, placement="spatial-division", psi=1.0, n_users=4)


def test_steering_analog_columns_point_at_their_angles() -> None:
    beta = steering_angles(16, precision="double")
    Wa = steering_analog(beta, 64)
    assert Wa.shape == (64, 16)
    torch.testing.assert_close(Wa.norm(dim=0), torch.ones(16, dtype=torch.float64))
    # a one-path channel (row sqrt(N) alpha a_N^H(zeta), zeta = beta_3) is picked up by column 3
    h = ula_response(beta[3], 64).conj()  # a_N^H(beta_3)
    g = h @ Wa
    assert g.abs().argmax().item() == 3 and g[3].abs().item() == pytest.approx(1.0)
    # and the sampler's single-path channel has exactly that form
    H, z = sparse_geometric_channel(
        gen(1), 1, n_users=1, n_paths=1, sigma_aod=0.0, precision="double"
    )
    col = steering_analog(z[0], 64)  # beam at the user's azimuth
    assert (H[0] @ col).abs().item() == pytest.approx(H[0].norm().item())
    with pytest.raises(ValueError, match="angles"):
        steering_analog(beta.to(torch.complex128), 64)


# ---- near field (Sec. IV-B) ----------------------------------------------------------------
def _users(seed: int = 0, batch: int = 200):
    return near_field_channel(gen(seed), batch, precision="double")


def test_ttd_ps_parameters_eq_30() -> None:
    _, u = _users()
    mu, eta = ttd_ps_parameters(u.r_sub, u.theta_sub)
    torch.testing.assert_close(eta, -u.theta_sub)
    assert (mu >= 0).all()
    torch.testing.assert_close(mu.amin(-1), torch.zeros_like(mu[..., 0]))
    torch.testing.assert_close(mu + u.r_sub, u.r_sub.amax(-1, keepdim=True).expand_as(mu))
    with pytest.raises(ValueError, match="same shape"):
        ttd_ps_parameters(u.r_sub, u.theta_sub[..., :3])
    with pytest.raises(ValueError, match="> 0"):
        ttd_ps_parameters(-u.r_sub, u.theta_sub)


def test_optimal_ttd_ps_beam_has_unit_normalized_gain_on_the_piecewise_channel() -> None:
    """Known value: b_k of eq. (29) equals 1 with eq. (30) under the eq. (27) channel."""
    H, u = _users(1)
    Wa = ttd_ps_analog(u.r_sub, u.theta_sub, n_sub=4, wavelength=LAM, spacing_m=D)
    assert Wa.shape == (200, 64, 16)
    torch.testing.assert_close(Wa.norm(dim=-2), torch.ones(200, 16, dtype=torch.float64))
    # entries of modulus sqrt(n/N)/sqrt(n) = 1/sqrt(N): equal-gain TTD+PS hardware
    torch.testing.assert_close(Wa.abs(), torch.full_like(Wa.abs(), 1 / 8))
    b = normalized_beam_gain(H, Wa, u.alpha)
    torch.testing.assert_close(b, torch.ones_like(b), rtol=1e-10, atol=1e-10)


def test_gain_is_below_one_off_target_and_on_the_exact_channel() -> None:
    H, u = _users(2)
    Wa = ttd_ps_analog(u.r_sub, u.theta_sub, n_sub=4, wavelength=LAM, spacing_m=D)
    # the exact spherical channel: b < 1 (first-order design), but close at r >= 0.5 m
    He = near_field_exact_channel(u.alpha, u.r, u.theta, n_tx=64, wavelength=LAM, spacing_m=D)
    b = normalized_beam_gain(He, Wa, u.alpha)
    assert (b < 1 - 1e-9).all() and (b > 0.99).all()
    # beams aimed at other users: |h_k^T v_j| / (sqrt(N)|alpha_k|) well below 1
    cross = (H @ Wa).abs() / (8 * u.alpha.abs().unsqueeze(-1))
    off = cross[:, ~torch.eye(16, dtype=torch.bool)]
    assert off.mean().item() < 0.3 and (off <= 1 + 1e-9).all()
    # mis-set delays (no TTD compensation) lose most of the gain
    bad = ttd_ps_analog(
        u.r_sub, u.theta_sub, n_sub=4, wavelength=LAM, spacing_m=D, mu=torch.zeros_like(u.r_sub)
    )
    assert normalized_beam_gain(H, bad, u.alpha).mean().item() < 0.5


def test_wideband_ttd_counters_beam_split_but_phase_shifters_do_not() -> None:
    """At f = 1.05 f_c the TTD keeps the sub-arrays coherent; frequency-flat PS do not."""
    _, u = _users(3)
    kw = {"n_sub": 4, "wavelength": LAM, "spacing_m": D}
    for kappa in (0.95, 1.05):
        H = near_field_piecewise_channel(u.alpha, u.r_sub, u.theta_sub, freq_scale=kappa, **kw)
        ttd = ttd_ps_analog(u.r_sub, u.theta_sub, freq_scale=kappa, **kw)
        ps = ttd_ps_analog(u.r_sub, u.theta_sub, freq_scale=kappa, time_delay=False, **kw)
        g_ttd = normalized_beam_gain(H, ttd, u.alpha)
        g_ps = normalized_beam_gain(H, ps, u.alpha)
        assert g_ttd.min().item() > 0.99  # only the small intra-sub-array squint remains
        assert g_ps.mean().item() < 0.8
    # at the carrier both are the same hardware setting
    a = ttd_ps_analog(u.r_sub, u.theta_sub, **kw)
    b = ttd_ps_analog(u.r_sub, u.theta_sub, time_delay=False, **kw)
    torch.testing.assert_close(a, b)


def test_ttd_ps_analog_errors() -> None:
    _, u = _users(4, 2)
    kw = {"n_sub": 4, "wavelength": LAM, "spacing_m": D}
    with pytest.raises(ValueError, match="mu"):
        ttd_ps_analog(u.r_sub, u.theta_sub, mu=-torch.ones_like(u.r_sub), **kw)
    with pytest.raises(ValueError, match="eta"):
        ttd_ps_analog(u.r_sub, u.theta_sub, eta=u.theta_sub[..., :2], **kw)
    with pytest.raises(ValueError, match="freq_scale"):
        ttd_ps_analog(u.r_sub, u.theta_sub, freq_scale=-1.0, **kw)
    with pytest.raises(ValueError, match="wavelength"):
        ttd_ps_analog(u.r_sub, u.theta_sub, n_sub=4, wavelength=0.0, spacing_m=D)
    H = torch.zeros(2, 16, 64, dtype=torch.complex128)
    with pytest.raises(ValueError, match="W_a"):
        normalized_beam_gain(H, torch.zeros(2, 64, 15, dtype=torch.complex128), u.alpha)
