"""Paper 000 channels and CSI errors: sparse geometric, Rayleigh, near field, additive error."""

from __future__ import annotations

import math

import pytest
import torch

from beamgym.physics.arrays import ula_response
from beamgym.physics.channels import (
    check_placement,
    near_field_channel,
    near_field_exact_channel,
    near_field_piecewise_channel,
    near_field_users,
    rayleigh_channel,
    sector_centers,
    sparse_geometric_channel,
    subarray_positions,
    user_azimuths,
    user_distances,
)
from beamgym.physics.csi import additive_csi_error, csi_nmse


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


LAM, D = 3e-3, 1.5e-3


# ---- user placement (Sec. II-B) -------------------------------------------------------------
def test_single_cell_azimuths_cover_the_sector() -> None:
    z = user_azimuths(gen(), 2000, 16, placement="single-cell", sector=math.pi / 2)
    assert z.shape == (2000, 16) and z.dtype == torch.float32
    assert z.min() >= -math.pi / 4 and z.max() <= math.pi / 4
    # uniform on [-pi/4, pi/4]: mean 0, variance (pi/2)^2/12
    assert abs(z.double().mean().item()) < 0.01
    assert z.double().var().item() == pytest.approx((math.pi / 2) ** 2 / 12, rel=0.03)


def test_spatial_division_users_lie_in_their_sectors() -> None:
    k, psi = 16, math.pi / 16
    z = user_azimuths(gen(1), 500, k, placement="spatial-division", psi=psi, precision="double")
    eta = sector_centers(k, precision="double")
    # eta_K(k) = -pi/2 + (k - 1/2) pi / K
    torch.testing.assert_close(eta[0], torch.tensor(-math.pi / 2 + math.pi / 32, dtype=eta.dtype))
    assert ((z - eta).abs() <= psi / 2 + 1e-12).all()
    # sectors tile [-pi/2, pi/2] when psi = pi/K: users stay ordered by angle
    assert (z.diff(dim=-1) >= 0).all()


def test_placement_errors() -> None:
    with pytest.raises(ValueError, match="placement"):
        user_azimuths(gen(), 2, 4, placement="cluster")
    with pytest.raises(ValueError, match="psi"):
        user_azimuths(gen(), 2, 16, placement="spatial-division", psi=math.pi / 8)
    with pytest.raises(ValueError, match="sector"):
        check_placement("single-cell", 4, sector=4.0)
    with pytest.raises(ValueError, match="sector"):
        check_placement("single-cell", 4, sector=-1.0)
    with pytest.raises(ValueError, match="generator"):
        user_azimuths(None, 2, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch"):
        user_azimuths(gen(), 0, 4)
    with pytest.raises(ValueError, match="n_users"):
        user_azimuths(gen(), 2, 0)
    with pytest.raises(ValueError, match="psi"):
        check_placement("spatial-division", 4, psi=-0.1)


# ---- sparse geometric channel, eq. (5)-(7) ------------------------------------------------------
def test_sparse_channel_power_is_mn() -> None:
    """E||H_bar_k||_F^2 = M N (docs/readings.md#000-channel-power).

    1000 x 16 draws: the std of the mean is ~0.25%.
    """
    H, z = sparse_geometric_channel(gen(2), 1000, precision="double")
    assert H.shape == (1000, 16, 64) and z.shape == (1000, 16)
    assert H.abs().square().sum(-1).mean().item() == pytest.approx(64.0, rel=0.02)
    Hm, _ = sparse_geometric_channel(gen(3), 400, n_users=4, n_rx=4, precision="double")
    assert Hm.shape == (400, 4, 4, 64)
    assert Hm.abs().square().sum((-1, -2)).mean().item() == pytest.approx(256.0, rel=0.03)


def test_sparse_channel_is_sparse_in_angle_around_the_user() -> None:
    """Single path, no angular spread: h_k^T = sqrt(N) alpha a_N^H(zeta_k) exactly."""
    H, z = sparse_geometric_channel(gen(4), 3, n_paths=1, sigma_aod=0.0, precision="double")
    a = ula_response(z, 64)  # [B, K, N]
    # |<h_k, a(zeta_k)>| = ||h_k|| (rank one, aligned with the user's azimuth)
    corr = (H * a).sum(-1).abs() / H.norm(dim=-1)
    torch.testing.assert_close(corr, torch.ones_like(corr))


def test_sparse_channel_matches_a_direct_path_sum() -> None:
    """The fast factorized path sum equals the naive sum over paths of eq. (5)."""
    g = gen(5)
    H, z = sparse_geometric_channel(g, 2, n_tx=13, n_users=3, n_paths=4, precision="double")
    g = gen(5)
    zz = user_azimuths(g, 2, 3, precision="double")
    alpha = torch.view_as_complex(torch.randn((2, 3, 4, 2), generator=g, dtype=torch.float64))
    alpha = alpha * math.sqrt(0.5)
    gamma = zz.unsqueeze(-1) + 0.1 * torch.randn((2, 3, 4), generator=g, dtype=torch.float64)
    ref = math.sqrt(13 / 4) * (alpha.unsqueeze(-1) * ula_response(gamma, 13).conj()).sum(-2)
    torch.testing.assert_close(z, zz)
    torch.testing.assert_close(H, ref, rtol=1e-10, atol=1e-10)


def test_sparse_channel_precisions_agree_and_seed_determines_it() -> None:
    H1, _ = sparse_geometric_channel(gen(6), 4, precision="single")
    H2, _ = sparse_geometric_channel(gen(6), 4, precision="double")
    assert H1.dtype == torch.complex64 and H2.dtype == torch.complex128
    torch.testing.assert_close(H1.to(torch.complex128), H2, rtol=1e-5, atol=1e-5)
    H3, _ = sparse_geometric_channel(gen(7), 4)
    assert not torch.equal(H1, H3)


def test_sparse_channel_errors() -> None:
    with pytest.raises(ValueError, match="sigma_aod"):
        sparse_geometric_channel(gen(), 2, sigma_aod=-0.1)
    with pytest.raises(ValueError, match="n_paths"):
        sparse_geometric_channel(gen(), 2, n_paths=0)
    with pytest.raises(ValueError, match="sigma_aoa"):
        sparse_geometric_channel(gen(), 2, sigma_aoa=float("inf"))
    with pytest.raises(ValueError, match="n_rx"):
        sparse_geometric_channel(gen(), 2, n_rx=0)
    with pytest.raises(ValueError, match="precision"):
        sparse_geometric_channel(gen(), 2, precision="half")  # type: ignore[arg-type]


def test_rayleigh_channel_statistics() -> None:
    H = rayleigh_channel(gen(8), 2000, n_tx=4, n_users=4, precision="double")
    assert H.shape == (2000, 4, 4)
    assert H.abs().square().mean().item() == pytest.approx(1.0, rel=0.03)
    assert abs(H.mean().abs().item()) < 0.02
    assert rayleigh_channel(gen(8), 3, n_tx=5, n_users=2, n_rx=3).shape == (3, 2, 3, 5)
    with pytest.raises(ValueError, match="n_tx"):
        rayleigh_channel(gen(), 2, n_tx=0, n_users=2)


# ---- CSI error (Sec. III-D1 and the NMSE option) ----------------------------------------------
def test_absolute_csi_error_has_the_paper_variance() -> None:
    H = torch.zeros(400, 16, 64, dtype=torch.complex128)
    He = additive_csi_error(H, gen(9), mode="absolute", sigma2=0.1)
    assert He.abs().square().mean().item() == pytest.approx(0.1, rel=0.02)
    # real and imaginary parts each carry half the variance
    assert He.real.var().item() == pytest.approx(0.05, rel=0.03)


def test_nmse_csi_error_is_relative_to_each_user() -> None:
    H, _ = sparse_geometric_channel(gen(10), 300, precision="double")
    H = H * torch.tensor([1.0, 100.0]).repeat(8).to(H.dtype)[None, :, None]  # unequal users
    He = additive_csi_error(H, gen(11), mode="nmse", nmse_db=-10.0)
    per_user = (He - H).abs().square().sum(-1) / H.abs().square().sum(-1)  # [B, K]
    assert 10 * math.log10(per_user.mean().item()) == pytest.approx(-10.0, abs=0.1)
    # both the weak and the strong users see -10 dB
    assert per_user[:, 0].mean().item() == pytest.approx(0.1, rel=0.03)
    assert per_user[:, 1].mean().item() == pytest.approx(0.1, rel=0.03)
    assert 10 * torch.log10(csi_nmse(H, He).mean()).item() == pytest.approx(-10.0, abs=0.1)


def test_perfect_csi_and_mimo_shapes() -> None:
    H = torch.randn(2, 3, 2, 5, dtype=torch.complex64)
    He = additive_csi_error(H, gen(), mode="perfect")
    assert torch.equal(He, H) and He is not H
    He = additive_csi_error(H, gen(), mode="nmse", nmse_db=-20.0)
    assert He.shape == H.shape and He.dtype == H.dtype


def test_csi_error_errors() -> None:
    H = torch.randn(2, 3, 5, dtype=torch.complex64)
    with pytest.raises(ValueError, match="mode"):
        additive_csi_error(H, gen(), mode="gaussian")
    with pytest.raises(ValueError, match="sigma2"):
        additive_csi_error(H, gen(), sigma2=-1.0)
    with pytest.raises(ValueError, match="nmse_db"):
        additive_csi_error(H, gen(), mode="nmse", nmse_db=float("-inf"))
    with pytest.raises(ValueError, match="complex"):
        additive_csi_error(H.real, gen())
    with pytest.raises(ValueError, match="generator"):
        additive_csi_error(H, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="B, K, N"):
        additive_csi_error(torch.zeros(1, 2, 3, 4, 5, dtype=torch.complex64), gen())
    with pytest.raises(ValueError, match="same shape"):
        csi_nmse(H, H[:1])


# ---- near field (Sec. IV-B, eq. (25)-(27), (35)) -----------------------------------------------
def test_subarray_positions_follow_the_geometry_of_eq_35() -> None:
    r = torch.tensor([[3.0, 0.7]], dtype=torch.float64)
    th = torch.tensor([[0.4, -1.0]], dtype=torch.float64)
    rs, ts = subarray_positions(r, th, n_subarrays=16, n_sub=4, spacing_m=D)
    assert rs.shape == (1, 2, 16)
    torch.testing.assert_close(rs[..., 0], r)  # first sub-array starts at the reference antenna
    torch.testing.assert_close(ts[..., 0], th)
    # direct Cartesian check: user at (r cos th, r sin th), sub-array s at (0, s n d)
    y = torch.arange(16, dtype=torch.float64) * 4 * D
    ux, uy = (r * th.cos()).unsqueeze(-1), (r * th.sin()).unsqueeze(-1)
    torch.testing.assert_close(rs, torch.hypot(ux, uy - y))
    torch.testing.assert_close(ts, torch.atan2(uy - y, ux))
    with pytest.raises(ValueError, match="> 0"):
        subarray_positions(-r, th, n_subarrays=2, n_sub=2, spacing_m=D)
    with pytest.raises(ValueError, match="must match"):
        subarray_positions(r, th[:, :1], n_subarrays=2, n_sub=2, spacing_m=D)


def test_user_distances_are_truncated_normal() -> None:
    r = user_distances(gen(12), 20000, 1, r_center=3.0, r_var=1.0, r_min=2.5, precision="double")
    assert r.min() >= 2.5
    # mean of N(3, 1) truncated below at 2.5: 3 + phi(-0.5) / (1 - Phi(-0.5))
    a = -0.5
    phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    Phi = 0.5 * (1 + math.erf(a / math.sqrt(2)))
    assert r.mean().item() == pytest.approx(3.0 + phi / (1 - Phi), abs=0.02)
    with pytest.raises(ValueError, match="r_min"):
        user_distances(gen(), 2, 2, r_center=1.0, r_var=0.01, r_min=5.0)
    with pytest.raises(ValueError, match="r_center"):
        user_distances(gen(), 2, 2, r_center=0.0)
    with pytest.raises(ValueError, match="r_var"):
        user_distances(gen(), 2, 2, r_var=-1.0)
    with pytest.raises(ValueError, match="r_min"):
        user_distances(gen(), 2, 2, r_min=-1.0)


def test_near_field_channel_norm_and_users() -> None:
    H, users = near_field_channel(gen(13), 300, precision="double")
    assert H.shape == (300, 16, 64)
    # |entries| = |alpha_k| exactly, so ||h_k||^2 = N |alpha_k|^2 and E = N
    torch.testing.assert_close(H.abs(), users.alpha.abs().unsqueeze(-1).expand_as(H))
    assert H.abs().square().sum(-1).mean().item() == pytest.approx(64.0, rel=0.05)
    assert users.r.min() >= 0.5 and users.r_sub.shape == (300, 16, 16)
    # same draws as near_field_users
    u2 = near_field_users(gen(13), 300, precision="double")
    torch.testing.assert_close(u2.r, users.r)
    He, _ = near_field_channel(gen(13), 300, model="exact", precision="double")
    assert He.shape == H.shape
    with pytest.raises(ValueError, match="model"):
        near_field_channel(gen(), 2, model="spherical")


def _pair(r: float, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    rr = torch.full((1, 1), r, dtype=torch.float64)
    th = torch.full((1, 1), theta, dtype=torch.float64)
    al = torch.ones(1, 1, dtype=torch.complex128)
    rs, ts = subarray_positions(rr, th, n_subarrays=16, n_sub=4, spacing_m=D)
    hp = near_field_piecewise_channel(al, rs, ts, n_sub=4, wavelength=LAM, spacing_m=D)
    he = near_field_exact_channel(al, rr, th, n_tx=64, wavelength=LAM, spacing_m=D)
    return hp[0, 0], he[0, 0]


def test_piecewise_model_matches_the_exact_channel_far_from_the_subarrays() -> None:
    """First-order model (eq. (26)-(27)) vs exact spherical wave (eq. (25)).

    The error is the second-order term ((q-1) d cos theta)^2 / (2 r): negligible far beyond
    the sub-array aperture (n d = 6 mm), growing as the user approaches.
    """
    corr = []
    for r in (20.0, 3.0, 0.5, 0.1, 0.05, 0.02):
        hp, he = _pair(r, 0.5)
        corr.append((hp.conj() @ he).abs().item() / 64)
    assert corr[0] > 1 - 1e-6 and corr[1] > 1 - 1e-5
    assert all(a > b for a, b in zip(corr, corr[1:], strict=False))  # degrades as r shrinks
    assert corr[-1] < 0.98


def test_near_field_matters_at_the_paper_distances() -> None:
    """At 1 m (inside the 6.1 m Rayleigh distance) a planar wave mismatches the array."""
    _, he = _pair(1.0, 0.5)
    planar = ula_response(torch.tensor(0.5, dtype=torch.float64), 64).conj()  # a_N^*(theta)
    # the near-field row is ~ a_n^T(theta) per sub-array; the planar row a_N^T(theta)
    corr_planar = (planar @ he).abs().item() / math.sqrt(64)
    assert corr_planar < 0.9
    _, he_far = _pair(500.0, 0.5)
    assert (planar @ he_far).abs().item() / math.sqrt(64) > 0.99


def test_near_field_frequency_scaling() -> None:
    """freq_scale = f/f_c is the same as a wavelength lambda / freq_scale."""
    _, users = near_field_channel(gen(14), 2, precision="double")
    a = near_field_piecewise_channel(
        users.alpha,
        users.r_sub,
        users.theta_sub,
        n_sub=4,
        wavelength=LAM,
        spacing_m=D,
        freq_scale=1.05,
    )
    b = near_field_piecewise_channel(
        users.alpha, users.r_sub, users.theta_sub, n_sub=4, wavelength=LAM / 1.05, spacing_m=D
    )
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="freq_scale"):
        near_field_exact_channel(
            users.alpha, users.r, users.theta, n_tx=64, wavelength=LAM, spacing_m=D, freq_scale=0
        )


def test_near_field_channel_errors() -> None:
    _, u = near_field_channel(gen(15), 2, precision="double")
    with pytest.raises(ValueError, match="alpha"):
        near_field_piecewise_channel(
            u.alpha[:, :3], u.r_sub, u.theta_sub, n_sub=4, wavelength=LAM, spacing_m=D
        )
    with pytest.raises(ValueError, match="must match"):
        near_field_piecewise_channel(
            u.alpha, u.r_sub, u.theta_sub[..., :3], n_sub=4, wavelength=LAM, spacing_m=D
        )
    with pytest.raises(ValueError, match="alpha"):
        near_field_exact_channel(u.alpha[:, :3], u.r, u.theta, n_tx=8, wavelength=LAM, spacing_m=D)
    with pytest.raises(ValueError, match="> 0"):
        near_field_exact_channel(u.alpha, -u.r, u.theta, n_tx=8, wavelength=LAM, spacing_m=D)
    with pytest.raises(ValueError, match="must match"):
        near_field_exact_channel(u.alpha, u.r, u.theta[:, :2], n_tx=8, wavelength=LAM, spacing_m=D)
