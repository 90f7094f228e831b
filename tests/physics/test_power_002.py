"""Paper 002 metrics (eqs. 2-4, 10, 17) and power allocation (eqs. 16-23, 34, Theorem IV.2)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from beamgym.physics import power as P
from beamgym.physics.channels import sample_correlated_channel, sample_upa_angles, upa_covariance
from beamgym.physics.codebooks import (
    codeword_scores_eq35,
    dft_codebook_2d,
    select_codewords,
    topk_codeword_indices,
)
from beamgym.physics.metrics import (
    coupling_gains,
    empirical_outage,
    hybrid_downlink_sinr,
    outage_flags,
    power_weights,
    psi_from_channels,
    psi_matrices,
    virtual_uplink_sinr,
    weighted_sum_power,
)

D64 = torch.float64
C128 = torch.complex128


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _system(b: int = 64, seed: int = 0, users: int = 3, m_rf: int = 5):
    """Perfect-CSI paper-002 instances (Table 1) with the eq. (35) analog initialization."""
    g = _gen(seed)
    px, py = sample_upa_angles(g, (b, users), precision="double")
    R = upa_covariance(px, py, math.radians(10.0), 4, 4)
    h = sample_correlated_channel(R, g)
    gam_db = 5 + 10 * torch.rand(b, users, generator=g, dtype=D64)
    gamma = 10 ** (gam_db / 10)
    cb = dft_codebook_2d(4, 4, precision="double")
    r_inst = h.unsqueeze(-1) * h.conj().unsqueeze(-2)
    A = select_codewords(cb, topk_codeword_indices(codeword_scores_eq35(cb, r_inst), m_rf))
    return h, R, A, gamma


# ---- metrics -------------------------------------------------------------------------------------
def test_downlink_sinr_matches_received_signal_model() -> None:
    """eq. (2) equals the SINR read off eq. (1): |h_i^H A b_j|^2 p_j, unit noise."""
    h, _, A, _ = _system(8)
    dig = torch.randn(8, 5, 3, dtype=C128, generator=_gen(1))
    dig = dig / dig.norm(dim=-2, keepdim=True)
    p = torch.rand(8, 3, dtype=D64, generator=_gen(2)) * 5
    sinr = hybrid_downlink_sinr(psi_from_channels(h, A), dig, p)
    amp = h.conj() @ A @ dig  # [B, I(rx), I(beam)]: h_i^H A b_j
    rx = amp.abs().square() * p.unsqueeze(-2)
    want = torch.diagonal(rx, dim1=-2, dim2=-1) / (
        rx.sum(-1) - torch.diagonal(rx, dim1=-2, dim2=-1) + 1
    )
    torch.testing.assert_close(sinr, want)
    # power=None: columns carry sqrt(p)
    torch.testing.assert_close(
        hybrid_downlink_sinr(psi_from_channels(h, A), dig * p.sqrt().unsqueeze(-2)), want
    )
    # noise variance scales the denominator
    s2 = hybrid_downlink_sinr(psi_from_channels(h, A), dig, p, noise_var=2.0)
    assert (s2 < sinr).all()


def test_psi_from_channels_equals_covariance_form() -> None:
    h, R, A, _ = _system(4)
    inst = psi_from_channels(h, A)
    torch.testing.assert_close(inst, psi_matrices(h.unsqueeze(-1) * h.conj().unsqueeze(-2), A))
    stat = psi_matrices(R, A)
    torch.testing.assert_close(stat, stat.mH)
    assert torch.linalg.eigvalsh(stat).min() > -1e-10


def test_weighted_power_and_codebook_normalization() -> None:
    """eq. (4): Psi0 = I and Psi0 = A^H A agree for distinct unit-norm DFT codewords."""
    _, _, A, _ = _system(6)
    dig = torch.randn(6, 5, 3, dtype=C128, generator=_gen(3))
    p = torch.rand(6, 3, dtype=D64, generator=_gen(4))
    w_i = weighted_sum_power(dig, p)
    w_rf = weighted_sum_power(dig, p, A.mH @ A)
    torch.testing.assert_close(w_i, w_rf)
    torch.testing.assert_close(w_i, (dig.abs().square().sum(-2) * p).sum(-1))
    torch.testing.assert_close(power_weights(dig, torch.eye(5, dtype=C128)), power_weights(dig))
    # unit-modulus codewords with Psi0 = I would report M = 16 times less RF power
    torch.testing.assert_close(
        ((A * 4) @ dig).abs().square().sum((-2, -1)) / 16, power_weights(dig).sum(-1)
    )


def test_virtual_uplink_sinr_definition() -> None:
    torch.manual_seed(0)
    Psi = torch.randn(2, 3, 4, 4, dtype=C128)
    Psi = Psi @ Psi.mH
    dig = torch.randn(2, 4, 3, dtype=C128)
    q = torch.rand(2, 3, dtype=D64)
    s = virtual_uplink_sinr(Psi, dig, q)
    for b in range(2):
        for i in range(3):
            bi = dig[b, :, i]
            num = q[b, i] * (bi.conj() @ Psi[b, i] @ bi).real
            den = sum(q[b, j] * (bi.conj() @ Psi[b, j] @ bi).real for j in range(3) if j != i)
            den = den + (bi.conj() @ bi).real
            assert abs(s[b, i].item() - (num / den).item()) < 1e-12
    # scale invariance in b_i
    torch.testing.assert_close(virtual_uplink_sinr(Psi, dig * 3.7, q), s)


@settings(max_examples=20, deadline=None)
@given(perm=st.permutations(list(range(4))), seed=st.integers(0, 10_000))
def test_permuting_users_permutes_sinrs(perm: list[int], seed: int) -> None:
    g = _gen(seed)
    X = torch.randn(2, 4, 5, 5, dtype=C128, generator=g)
    Psi = X @ X.mH
    dig = torch.randn(2, 5, 4, dtype=C128, generator=g)
    p = torch.rand(2, 4, dtype=D64, generator=g)
    idx = torch.tensor(perm)
    s = hybrid_downlink_sinr(Psi, dig, p)
    sp = hybrid_downlink_sinr(Psi[:, idx], dig[:, :, idx], p[:, idx])
    torch.testing.assert_close(sp, s[:, idx])
    u = virtual_uplink_sinr(Psi, dig, p)
    torch.testing.assert_close(
        virtual_uplink_sinr(Psi[:, idx], dig[:, :, idx], p[:, idx]), u[:, idx]
    )
    # and the downlink power allocation of eq. (22) is permuted the same way
    gam = torch.full((2, 4), 0.2, dtype=D64)
    pd = P.downlink_powers(Psi, dig, gam).power
    torch.testing.assert_close(
        P.downlink_powers(Psi[:, idx], dig[:, :, idx], gam).power, pd[:, idx]
    )


def test_outage_flags_and_empirical_outage() -> None:
    sinr = torch.tensor([[1.0, 2.0, 0.9999999], [0.5, 3.0, 4.0]], dtype=D64)
    gam = torch.tensor([[1.0, 2.5, 1.0], [0.4, 3.0, 5.0]], dtype=D64)
    f = outage_flags(sinr, gam)
    assert f.tolist() == [[False, True, True], [False, False, True]]
    f_tol = outage_flags(sinr, gam, rtol=1e-6)
    assert f_tol.tolist() == [[False, True, False], [False, False, True]]
    assert empirical_outage(f).item() == pytest.approx(3 / 6)
    assert empirical_outage(f, torch.tensor([True, False])).item() == pytest.approx(2 / 3)
    assert math.isnan(empirical_outage(f, torch.zeros(2, dtype=torch.bool)).item())
    with pytest.raises(ValueError, match="same shape"):
        outage_flags(sinr, gam[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        outage_flags(torch.full_like(sinr, float("nan")), gam)
    with pytest.raises(ValueError, match="rtol"):
        outage_flags(sinr, gam, rtol=1.0)
    with pytest.raises(ValueError, match="bool"):
        empirical_outage(f.float())
    with pytest.raises(ValueError, match="mask must be a bool"):
        empirical_outage(f, torch.ones(2))
    with pytest.raises(ValueError, match=r"\[B\] or \[B, I\]"):
        empirical_outage(f, torch.ones(3, dtype=torch.bool))


def test_metric_bad_input() -> None:
    Psi = torch.zeros(2, 3, 4, 4, dtype=C128)
    dig = torch.zeros(2, 4, 3, dtype=C128)
    with pytest.raises(ValueError, match="digital must be"):
        hybrid_downlink_sinr(Psi, dig[:, :3])
    with pytest.raises(ValueError, match="share a dtype"):
        hybrid_downlink_sinr(Psi, dig.to(torch.complex64))
    with pytest.raises(ValueError, match=">= 0"):
        hybrid_downlink_sinr(Psi, dig, -torch.ones(2, 3, dtype=D64))
    with pytest.raises(ValueError, match=r"power must be \[B, I\]"):
        hybrid_downlink_sinr(Psi, dig, torch.ones(2, 2, dtype=D64))
    with pytest.raises(ValueError, match="Psi must be"):
        coupling_gains(torch.zeros(2, 3, 4, 5, dtype=C128), dig)
    with pytest.raises(ValueError, match="analog must be"):
        psi_matrices(torch.zeros(2, 3, 4, 4, dtype=C128), torch.zeros(2, 5, 2, dtype=C128))
    with pytest.raises(ValueError, match="analog must be"):
        psi_from_channels(torch.zeros(2, 3, 4, dtype=C128), torch.zeros(1, 4, 2, dtype=C128))
    with pytest.raises(ValueError, match="share a dtype"):
        psi_from_channels(
            torch.zeros(2, 3, 4, dtype=C128), torch.zeros(2, 4, 2, dtype=torch.complex64)
        )
    with pytest.raises(ValueError, match="Psi0 must be"):
        power_weights(dig, torch.eye(4, dtype=C128).expand(3, 4, 4))
    with pytest.raises(ValueError, match="share a dtype"):
        psi_matrices(
            torch.zeros(2, 3, 4, 4, dtype=C128), torch.zeros(2, 4, 2, dtype=torch.complex64)
        )
    with pytest.raises(ValueError, match=r"power must be \[B, I\]"):
        weighted_sum_power(dig, torch.ones(2, 2, dtype=D64))


# ---- eq. (22): exactness, duality ---------------------------------------------------------------
def test_eq22_meets_every_target_exactly_with_perfect_csi() -> None:
    """Known value (issue): virtual-uplink fixed point + eq. (22), SINR / gamma = 1 to 1e-10."""
    h, _, A, gamma = _system(256)
    psi = psi_from_channels(h, A)
    sol = P.solve_digital_beamforming(psi, gamma)
    assert sol.feasible.float().mean() > 0.99
    f = sol.feasible
    sinr = hybrid_downlink_sinr(psi, sol.digital, sol.power)
    assert (sinr / gamma - 1)[f].abs().max() < 1e-10
    assert (outage_flags(sinr, gamma, rtol=1e-9)[f]).sum() == 0
    # uplink-downlink duality: w^T p = 1^T q, and the uplink SINRs meet the targets too
    torch.testing.assert_close(sol.power.sum(-1)[f], sol.q.sum(-1)[f], rtol=1e-10, atol=0)
    up = virtual_uplink_sinr(psi, sol.digital, sol.q)
    assert (up / gamma - 1)[f].abs().max() < 1e-8
    # unit-norm digital precoders (set B of eq. 7)
    torch.testing.assert_close(sol.digital.norm(dim=-2), torch.ones(256, 3, dtype=D64))


def test_fixed_point_rank_one_path_equals_general_path_and_5d() -> None:
    h, _, A, gamma = _system(32, seed=1)
    g_eff = h @ A.conj()
    psi = psi_from_channels(h, A)
    a = P.virtual_uplink_fixed_point(g_eff, gamma)
    b = P.virtual_uplink_fixed_point(psi, gamma)
    c = P.virtual_uplink_fixed_point(psi.unsqueeze(2).expand(-1, -1, 3, -1, -1), gamma)
    torch.testing.assert_close(a.q, b.q, rtol=1e-9, atol=0)
    torch.testing.assert_close(c.q, b.q, rtol=1e-9, atol=0)
    overlap = (a.digital.conj() * b.digital).sum(-2).abs()  # same beams up to a phase
    torch.testing.assert_close(overlap, torch.ones_like(overlap))
    assert a.iterations.max() <= 40 and a.converged.all()
    sol = P.solve_digital_beamforming(g_eff, gamma)
    torch.testing.assert_close(sol.q, a.q)


def test_fixed_point_in_single_precision() -> None:
    """complex64 converges (tolerance raised to the rounding level) and meets targets to 1e-4."""
    h, _, A, gamma = _system(64, seed=6)
    psi = psi_from_channels(h, A).to(torch.complex64)
    sol = P.solve_digital_beamforming(psi, gamma.float())
    ref = P.solve_digital_beamforming(psi_from_channels(h, A), gamma)
    assert (sol.feasible == ref.feasible).all() and sol.feasible.float().mean() > 0.95
    f = sol.feasible
    sinr = hybrid_downlink_sinr(psi, sol.digital, sol.power)
    assert (sinr / gamma.float() - 1)[f].abs().max() < 1e-4
    torch.testing.assert_close(sol.q[f].double(), ref.q[f], rtol=1e-4, atol=0)


def test_fixed_point_iterates_rise_monotonically() -> None:
    h, _, A, gamma = _system(16, seed=2)
    g_eff = h @ A.conj()
    prev = torch.zeros(16, 3, dtype=D64)
    for it in range(1, 8):
        q = P.virtual_uplink_fixed_point(g_eff, gamma, max_iter=it).q
        assert (q >= prev - 1e-12).all()
        prev = q


def test_general_psi0_matches_whitened_problem() -> None:
    """A PD noise covariance Psi0 equals whitening the channels by Psi0^{-1/2}."""
    torch.manual_seed(3)
    X = torch.randn(4, 3, 5, 5, dtype=C128)
    Psi = X @ X.mH
    L = torch.randn(5, 5, dtype=C128)
    psi0 = L @ L.mH + 5 * torch.eye(5)
    gam = torch.full((4, 3), 2.0, dtype=D64)
    a = P.virtual_uplink_fixed_point(Psi, gam, psi0)
    w = torch.linalg.inv(torch.linalg.cholesky(psi0))
    b = P.virtual_uplink_fixed_point(w @ Psi @ w.mH, gam)
    torch.testing.assert_close(a.q, b.q, rtol=1e-8, atol=0)
    up = virtual_uplink_sinr(Psi, a.digital, a.q, psi0)
    torch.testing.assert_close(up, gam, rtol=1e-8, atol=0)


# ---- infeasibility -----------------------------------------------------------------------------
def test_infeasible_targets_are_flagged_not_crashed() -> None:
    h, _, A, gamma = _system(8, seed=4)
    psi = psi_from_channels(h, A)
    # (a) a user without channel, (b) two identical users with targets above 0 dB, (c) huge targets
    psi_a = psi.clone()
    psi_a[0, 1] = 0
    psi_b = psi.clone()
    psi_b[1, 2] = psi_b[1, 0]
    gam = gamma.clone()
    gam[1] = 2.0
    gam[2] = 1e7
    for Psi_bad in (psi_a, psi_b):
        sol = P.solve_digital_beamforming(Psi_bad, gam, max_iter=300)
        assert sol.feasible.dtype == torch.bool
    sol = P.solve_digital_beamforming(psi_a, gam, max_iter=300)
    assert not sol.feasible[0]
    sol = P.solve_digital_beamforming(psi_b, gam, max_iter=300)
    assert not sol.feasible[1]
    up = P.virtual_uplink_fixed_point(psi_b, gam, max_iter=300)
    assert not up.feasible[1] and not up.converged[1] and torch.isfinite(up.q).all()
    assert up.feasible[3:].all()  # the other instances are untouched
    up2 = P.virtual_uplink_fixed_point(psi, gam, max_iter=300, q_max=1e3)
    assert not up2.feasible[2]


def test_downlink_powers_flag_negative_and_singular() -> None:
    torch.manual_seed(5)
    X = torch.randn(3, 2, 3, 3, dtype=C128)
    Psi = X @ X.mH
    dig = torch.randn(3, 3, 2, dtype=C128)
    gam = torch.tensor([[0.1, 0.1], [1e4, 1e4], [1.0, 1.0]], dtype=D64)
    dig[2, :, 1] = dig[2, :, 0]
    Psi[2, 1] = Psi[2, 0]
    Psi[2] = Psi[2, :1].expand(2, 3, 3) * 0  # zero gains: singular coupling matrix
    out = P.downlink_powers(Psi, dig, gam)
    assert out.feasible.tolist() == [True, False, False]
    assert (
        (out.power[0] > 0).all() and (out.power[1] <= 0).any() and torch.isnan(out.power[2]).all()
    )
    c = P.coupling_matrix(Psi, dig, gam)
    torch.testing.assert_close((c[0] @ out.power[0]), torch.ones(2, dtype=D64))


def test_power_bad_input() -> None:
    Psi = torch.eye(3, dtype=C128).expand(2, 2, 3, 3)
    with pytest.raises(ValueError, match="> 0"):
        P.virtual_uplink_fixed_point(Psi, torch.zeros(2, 2, dtype=D64))
    with pytest.raises(ValueError, match=r"gamma must be \[B, I\]"):
        P.virtual_uplink_fixed_point(Psi, torch.ones(2, 3, dtype=D64))
    with pytest.raises(ValueError, match="Psi must be"):
        P.downlink_powers(
            torch.zeros(2, 2, 3, 4, dtype=C128),
            torch.zeros(2, 3, 2, dtype=C128),
            torch.ones(2, 2, dtype=D64),
        )
    with pytest.raises(ValueError, match="positive definite"):
        P.virtual_uplink_fixed_point(Psi, torch.ones(2, 2, dtype=D64), -torch.eye(3, dtype=C128))
    with pytest.raises(ValueError, match="positive definite"):
        P.virtual_uplink_fixed_point(
            Psi[..., 0], torch.ones(2, 2, dtype=D64), -torch.eye(3, dtype=C128)
        )
    with pytest.raises(ValueError, match="Psi0 must be"):
        P.virtual_uplink_fixed_point(
            Psi, torch.ones(2, 2, dtype=D64), torch.eye(3, dtype=C128).expand(3, 3, 3)
        )
    with pytest.raises(ValueError, match="tol"):
        P.virtual_uplink_fixed_point(Psi, torch.ones(2, 2, dtype=D64), tol=0.0)
    with pytest.raises(ValueError, match="non-finite"):
        P.virtual_uplink_fixed_point(Psi * float("nan"), torch.ones(2, 2, dtype=D64))


# ---- eq. (34) ------------------------------------------------------------------------------------
def test_scale_to_pmax_eq34() -> None:
    p = torch.tensor([[10.0, 20.0, 30.0], [1.0, -2.0, 3.0], [50.0, 30.0, 0.0]], dtype=D64)
    out, scaled = P.scale_to_pmax(p, 40.0)
    torch.testing.assert_close(out[0], p[0] * 40.0 / 60.0)
    torch.testing.assert_close(out[1], torch.tensor([1.0, 0.0, 3.0], dtype=D64))
    torch.testing.assert_close(out[2], p[2] * 0.5)
    assert scaled.tolist() == [True, True, True]
    again, scaled2 = P.scale_to_pmax(out, 40.0)  # idempotent on the feasible set
    torch.testing.assert_close(again, out)
    assert not scaled2.any()
    w = torch.tensor([[2.0, 1.0, 1.0]], dtype=D64).expand(3, 3)
    out_w, _ = P.scale_to_pmax(p, 40.0, w)
    assert ((w * out_w).sum(-1) <= 40.0 + 1e-12).all()
    with pytest.raises(ValueError, match="p_max"):
        P.scale_to_pmax(p, 0.0)
    with pytest.raises(ValueError, match="p_max must be a scalar"):
        P.scale_to_pmax(p, torch.ones(2, dtype=D64))
    with pytest.raises(ValueError, match="weights must be >= 0"):
        P.scale_to_pmax(p, 1.0, -w)
    with pytest.raises(ValueError, match="shape of power"):
        P.scale_to_pmax(p, 1.0, w[:2])


# ---- Theorem IV.2: implicit gradient of the uplink solution --------------------------------------
def _virtual_psi(b: int, i: int, r: int, seed: int) -> torch.Tensor:
    g = _gen(seed)
    X = torch.randn(b, i, i, r, r, dtype=C128, generator=g)
    psi = X @ X.mH / r + 0.1 * torch.eye(r, dtype=C128)
    return psi * (0.3 + 2.7 * torch.eye(i, dtype=D64)[None, :, :, None, None])  # strong signal


def _unrolled(psi5: torch.Tensor, gam: torch.Tensor, n_iter: int = 300) -> torch.Tensor:
    """Plain autograd reference: unrolled fixed point, phase-fixed beams, real layout of (49)."""
    b, i, r = psi5.shape[0], psi5.shape[1], psi5.shape[-1]
    q = torch.zeros(b, i, dtype=D64)
    n0 = torch.eye(r, dtype=C128).expand(b, r, r)
    for _ in range(n_iter):
        lam, _ = P._uplink_eig(psi5, q, n0)
        q = gam / lam
    _, vec = P._uplink_eig(psi5, q, n0)
    bn = P.phase_normalize(vec.mT)
    return torch.cat([P._realify_vec(bn.mT).reshape(b, -1), q], -1)


def test_hermitian_parametrization_eq37() -> None:
    X = torch.randn(2, 4, 4, dtype=C128, generator=_gen(1))
    H = X + X.mH
    psi = P.hermitian_to_real(H)
    assert psi.shape == (2, 16)
    torch.testing.assert_close(P.real_to_hermitian(psi, 4), H)
    torch.testing.assert_close(psi[:, :4], torch.diagonal(H, dim1=-2, dim2=-1).real)
    E = P.hermitian_basis(3)
    assert E.shape == (9, 3, 3)
    torch.testing.assert_close(E, E.mH)
    with pytest.raises(ValueError, match="r\\*r"):
        P.real_to_hermitian(psi[:, :5], 4)


def test_theorem_iv2_jacobian_matches_autograd() -> None:
    """eq. (49) with Appendix A (typos corrected) vs autograd through the unrolled solver."""
    b, i, r = 2, 3, 4
    psi5 = _virtual_psi(b, i, r, seed=0)
    gam = torch.full((b, i), 2.0, dtype=D64)
    up = P.virtual_uplink_fixed_point(psi5, gam, tol=1e-14, max_iter=2000)
    assert up.feasible.all()
    down = P.downlink_powers(psi5, up.digital, gam)
    jac, ok = P.uplink_solution_jacobian(psi5, gam, up.q, up.digital, down.power)
    assert ok.all() and jac.shape == (b, 2 * i * r, i * i * r * r)

    flat = P.hermitian_to_real(psi5).reshape(-1)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return _unrolled(P.real_to_hermitian(x.reshape(b, i, i, r * r), r), gam)

    ref = torch.autograd.functional.jacobian(fn, flat).reshape(b, 2 * i * r, b, -1)
    ref = torch.stack([ref[k, :, k] for k in range(b)])
    assert ((jac - ref).norm() / ref.norm()).item() < 1e-6
    # the output of f_UL itself: the forward solution agrees with the reference
    torch.testing.assert_close(
        torch.cat([P._realify_vec(P.phase_normalize(up.digital).mT).reshape(b, -1), up.q], -1),
        fn(flat).detach(),
        rtol=1e-9,
        atol=1e-10,
    )


def test_theorem_iv2_normalization_jacobian_eq76() -> None:
    """Eq. (76) needs ||x||^3 (printed ||x||^{3/2}): check D(x/||x||) against autograd."""
    x = torch.randn(7, dtype=D64, generator=_gen(2)) * 3.0
    ref = torch.autograd.functional.jacobian(lambda v: v / v.norm(), x)
    n = x.norm()
    good = (n**2 * torch.eye(7, dtype=D64) - torch.outer(x, x)) / n**3
    printed = (n**2 * torch.eye(7, dtype=D64) - torch.outer(x, x)) / n**1.5
    torch.testing.assert_close(good, ref)
    assert not torch.allclose(printed, ref)


def test_implicit_virtual_uplink_autograd_function() -> None:
    b, i, r = 2, 3, 4
    base = torch.randn(b, i, i, r, r, dtype=C128, generator=_gen(7))
    scale = 0.3 + 2.7 * torch.eye(i, dtype=D64)[None, :, :, None, None]
    gam = torch.full((b, i), 2.0, dtype=D64)
    wq = torch.randn(b, i, dtype=D64, generator=_gen(8))
    wb = torch.randn(b, r, i, dtype=C128, generator=_gen(9))

    def build(x: torch.Tensor) -> torch.Tensor:
        return (x @ x.mH / r + 0.1 * torch.eye(r, dtype=C128)) * scale

    # the paper's pipeline (Fig. 2): F_Ul (implicit gradient), then eq. (32) by plain autograd
    x1 = base.clone().requires_grad_(True)
    psi1 = build(x1)
    q, dig, feas = P.implicit_virtual_uplink(psi1, gam)
    assert feas.all()
    p1 = P.downlink_powers(psi1, dig, gam).power
    ((wq * q).sum() + (wb.conj() * dig).real.sum() + p1.sum()).backward()
    x2 = base.clone().requires_grad_(True)
    psi2 = build(x2)
    out = _unrolled(psi2, gam)
    nb = 2 * r - 1
    bre = out[:, : i * nb].reshape(b, i, nb)
    im = torch.cat([bre[..., r:], torch.zeros(b, i, 1, dtype=D64)], -1)
    dig2 = torch.complex(bre[..., :r], im).mT
    p2 = P.downlink_powers(psi2, dig2, gam).power
    ((wq * out[:, i * nb :]).sum() + (wb.conj() * dig2).real.sum() + p2.sum()).backward()
    assert ((x1.grad - x2.grad).norm() / x2.grad.norm()).item() < 1e-6
    torch.testing.assert_close(dig, dig2.detach(), rtol=1e-9, atol=1e-10)
    with pytest.raises(ValueError, match="5-D|\\[B, I, I"):
        P.implicit_virtual_uplink(build(base)[:, 0], gam)


def test_theorem_iv2_invalid_instances_get_zero_gradient() -> None:
    b, i, r = 2, 2, 3
    psi5 = _virtual_psi(b, i, r, seed=3)
    gam = torch.tensor([[1.0, 1.0], [1e6, 1e6]], dtype=D64)
    up = P.virtual_uplink_fixed_point(psi5, gam, max_iter=200)
    down = P.downlink_powers(psi5, up.digital, gam)
    jac, ok = P.uplink_solution_jacobian(psi5, gam, up.q, up.digital, down.power.nan_to_num(-1.0))
    assert ok.tolist() == [True, False]
    assert jac[1].abs().max() == 0
    with pytest.raises(ValueError, match="5-D"):
        P.uplink_solution_jacobian(psi5[:, :, 0], gam, up.q, up.digital, down.power)
    with pytest.raises(ValueError, match="digital must be"):
        P.uplink_solution_jacobian(psi5, gam, up.q, up.digital[:, :2], down.power)
    with pytest.raises(ValueError, match="q must be"):
        P.uplink_solution_jacobian(psi5, gam, up.q[:, :1], up.digital, down.power)
