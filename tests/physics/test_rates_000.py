"""Paper 000 rates, closed-form gradients, power constraints and the MMSE beamformer."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from beamgym.physics.metrics import (
    effective_channel,
    mimo_rates,
    miso_rates,
    mmse_beamformer,
    sum_rate,
    sum_rate_gradient,
    zf_equal_power_precoder,
)
from beamgym.physics.projections import (
    clip_hybrid_power,
    hybrid_power,
    normalize_hybrid_power,
    normalize_total_power,
    power_violation,
    project_total_power,
    total_power,
)

C128 = torch.complex128


def crandn(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.view_as_complex(torch.randn(*shape, 2, generator=g, dtype=torch.float64))


# ---- closed-form gradient vs autograd (complex128) -------------------------------------------
@pytest.mark.parametrize("shape", [(3, 4, 8), (2, 3, 2, 6), (2, 2, 3, 5)])
def test_sum_rate_gradient_matches_autograd(shape: tuple[int, ...]) -> None:
    H = crandn(*shape, seed=1)
    k = shape[1] * (shape[2] if len(shape) == 4 else 1)
    W = crandn(shape[0], shape[-1], k, seed=2).requires_grad_(True)
    noise = torch.rand(shape[0], shape[1], dtype=torch.float64) + 0.3  # per-user sigma_k^2
    sum_rate(H, W, noise).sum().backward()
    ascent = sum_rate_gradient(H, W.detach(), noise)
    wirt = sum_rate_gradient(H, W.detach(), noise, form="wirtinger")
    rel = (ascent - W.grad).norm() / W.grad.norm()
    assert rel.item() < 1e-6
    # factor convention: autograd's W.grad = dR/dRe + j dR/dIm = 2 x Wirtinger dR/dconj(W)
    torch.testing.assert_close(ascent, 2 * wirt)


def test_sum_rate_gradient_is_a_finite_difference_ascent_direction() -> None:
    H, W = crandn(1, 3, 6, seed=3), crandn(1, 6, 3, seed=4)
    g = sum_rate_gradient(H, W)
    eps = 1e-6
    d = crandn(1, 6, 3, seed=5)
    fd = (sum_rate(H, W + eps * d) - sum_rate(H, W - eps * d)) / (2 * eps)
    # directional derivative = Re <grad, d> with the ascent (= autograd) convention
    assert fd.item() == pytest.approx((g.conj() * d).sum().real.item(), rel=1e-6)


def test_miso_gradient_is_the_mimo_formula_with_one_antenna() -> None:
    H, W = crandn(2, 3, 7, seed=6), crandn(2, 7, 3, seed=7)
    torch.testing.assert_close(
        sum_rate_gradient(H, W), sum_rate_gradient(H.unsqueeze(2), W), rtol=1e-10, atol=1e-12
    )
    torch.testing.assert_close(miso_rates(H, W), mimo_rates(H.unsqueeze(2), W))


def test_sum_rate_gradient_errors() -> None:
    H, W = crandn(2, 3, 7), crandn(2, 7, 3)
    with pytest.raises(ValueError, match="form"):
        sum_rate_gradient(H, W, form="paper")
    with pytest.raises(ValueError, match="shape"):
        sum_rate_gradient(H, W[:, :, :2])
    with pytest.raises(ValueError, match="K\\*M"):
        sum_rate_gradient(H.unsqueeze(2).expand(2, 3, 2, 7), W)
    with pytest.raises(ValueError, match="dtype"):
        sum_rate_gradient(H.unsqueeze(2), W.to(torch.complex64))
    with pytest.raises(ValueError, match="non-finite"):
        sum_rate_gradient(H * float("nan"), W)


# ---- known values ------------------------------------------------------------------------------
def test_single_user_mrt_rate() -> None:
    """K = 1, w = sqrt(P) h/||h||: R = log2(1 + P ||h||^2 / sigma^2)."""
    h = crandn(4, 1, 16, seed=8)
    P, s2 = 2.5, 0.7
    w = normalize_total_power(h.mH, P)
    r = sum_rate(h, w, s2)
    torch.testing.assert_close(r, torch.log2(1 + P * h.abs().square().sum((-1, -2)) / s2))


def test_zero_forcing_with_perfect_csi_nulls_interference() -> None:
    H = crandn(3, 4, 16, seed=9)
    W = zf_equal_power_precoder(H, 1.0)
    G = H @ W
    off = G[:, ~torch.eye(4, dtype=torch.bool)]
    assert off.abs().max().item() < 1e-12
    # rate = sum log2(1 + |g_kk|^2): pure per-user SNR
    torch.testing.assert_close(
        sum_rate(H, W), torch.log2(1 + torch.diagonal(G, dim1=-2, dim2=-1).abs().square()).sum(-1)
    )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4))
def test_rates_invariant_to_a_per_user_phase_rotation(seed: int, k: int) -> None:
    H, W = crandn(2, k, 5, seed=seed), crandn(2, 5, k, seed=seed + 1)
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(2, 1, k, generator=g, dtype=torch.float64) * 2 * math.pi
    Wr = W * torch.polar(torch.ones_like(phase), phase)
    torch.testing.assert_close(miso_rates(H, Wr), miso_rates(H, W))
    # MIMO: right-multiplying W_k by a unitary (here a phase) leaves R_k unchanged too
    Hm, Wm = crandn(2, k, 2, 5, seed=seed + 2), crandn(2, 5, 2 * k, seed=seed + 3)
    Wmr = Wm * torch.polar(torch.ones_like(phase), phase).repeat_interleave(2, -1)
    torch.testing.assert_close(mimo_rates(Hm, Wmr), mimo_rates(Hm, Wm))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 5))
def test_permuting_users_permutes_rates(seed: int, k: int) -> None:
    H, W = crandn(1, k, 6, seed=seed), crandn(1, 6, k, seed=seed + 1)
    perm = torch.randperm(k, generator=torch.Generator().manual_seed(seed))
    r = miso_rates(H, W)
    torch.testing.assert_close(miso_rates(H[:, perm], W[:, :, perm]), r[:, perm])
    Hm, Wm = crandn(1, k, 2, 6, seed=seed + 2), crandn(1, 6, 2 * k, seed=seed + 3)
    cols = (2 * perm.unsqueeze(-1) + torch.arange(2)).reshape(-1)
    torch.testing.assert_close(mimo_rates(Hm[:, perm], Wm[:, :, cols]), mimo_rates(Hm, Wm)[:, perm])


# ---- power constraints (eq. (8), (23)-(24), Sec. III-A3) ------------------------------------
def test_normalization_layer_reaches_the_budget_and_handles_zero() -> None:
    W = crandn(3, 8, 4, seed=10)
    W[1] = 0
    P = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    out = normalize_total_power(W.requires_grad_(True), P)
    pw = total_power(out)
    assert pw[0].item() == pytest.approx(1.0) and pw[2].item() == pytest.approx(3.0)
    assert pw[1].item() == 0.0 and torch.isfinite(out).all()
    sum_rate(crandn(3, 4, 8, seed=11), out).sum().backward()
    assert torch.isfinite(W.grad).all()


def test_full_power_is_optimal_along_a_ray() -> None:
    """Each SINR grows with a common scaling, so the sum-rate increases up to the budget."""
    H, W = crandn(2, 4, 8, seed=12), crandn(2, 8, 4, seed=13)
    rates = [sum_rate(H, normalize_total_power(W, p)) for p in (0.5, 1.0, 2.0, 4.0)]
    assert all((b > a).all() for a, b in zip(rates, rates[1:], strict=False))


def test_ball_projection() -> None:
    W = crandn(4, 6, 3, seed=14)
    W[0] *= 1e-3  # feasible already
    out = project_total_power(W, 1.0)
    assert (total_power(out) <= 1.0 + 1e-12).all()
    torch.testing.assert_close(out[0], W[0])  # unchanged when feasible
    torch.testing.assert_close(project_total_power(out, 1.0), out)  # idempotent
    # infeasible points (power ~18 here) land exactly on the sphere
    assert total_power(out)[1:].sub(1.0).abs().max().item() < 1e-12


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), c=st.floats(0.0, 1.0), P=st.floats(0.1, 10.0))
def test_scaling_down_never_raises_the_violation(seed: int, c: float, P: float) -> None:
    W = crandn(2, 5, 3, seed=seed) * (1 + seed % 3)
    v = power_violation(W, P)
    assert (power_violation(c * W, P) <= v + 1e-12).all()
    assert (power_violation(project_total_power(W, P), P) <= 1e-9 * P).all()
    assert (v >= 0).all()


def test_hybrid_normalization_eq_24() -> None:
    Wa = crandn(3, 16, 4, seed=15) / 4
    WD = crandn(3, 4, 4, seed=16)
    out = normalize_hybrid_power(Wa, WD, 2.0)
    torch.testing.assert_close(hybrid_power(Wa, out), torch.full((3,), 2.0, dtype=torch.float64))
    # shared analog [N, N_RF] broadcasts
    out2 = normalize_hybrid_power(Wa[0], WD, 2.0)
    torch.testing.assert_close(
        total_power(Wa[0] @ out2), torch.full((3,), 2.0, dtype=torch.float64)
    )
    # clip keeps feasible precoders and scales infeasible ones to the budget
    small = WD * 1e-3
    torch.testing.assert_close(clip_hybrid_power(Wa, small, 2.0), small)
    torch.testing.assert_close(
        hybrid_power(Wa, clip_hybrid_power(Wa, WD * 50, 2.0)),
        torch.full((3,), 2.0, dtype=torch.float64),
    )
    zero = normalize_hybrid_power(Wa, torch.zeros_like(WD), 2.0)
    assert torch.equal(zero, torch.zeros_like(WD))


def test_power_errors() -> None:
    W = crandn(2, 4, 3)
    with pytest.raises(ValueError, match="P"):
        normalize_total_power(W, -1.0)
    with pytest.raises(ValueError, match="P"):
        project_total_power(W, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="> 0"):
        power_violation(W, torch.tensor([1.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="complex"):
        total_power(W.real)
    with pytest.raises(ValueError, match="RF chains"):
        hybrid_power(crandn(2, 4, 3), crandn(2, 2, 3))
    with pytest.raises(ValueError, match="W_a"):
        hybrid_power(crandn(3, 4, 3), crandn(2, 3, 3))
    with pytest.raises(ValueError, match="dtype"):
        normalize_hybrid_power(crandn(4, 3).to(torch.complex64), crandn(2, 3, 3), 1.0)


# ---- effective channel and the MMSE teacher --------------------------------------------------
def test_effective_channel_eq_19_21() -> None:
    H, Wa, WD = crandn(2, 3, 8, seed=17), crandn(2, 8, 4, seed=18), crandn(2, 4, 3, seed=19)
    G = effective_channel(H, Wa)
    assert G.shape == (2, 3, 4)
    torch.testing.assert_close(sum_rate(G, WD), sum_rate(H, Wa @ WD))
    Hm = crandn(2, 3, 2, 8, seed=20)
    Gm = effective_channel(Hm, Wa)
    assert Gm.shape == (2, 3, 2, 4)
    torch.testing.assert_close(Gm, Hm @ Wa[:, None])
    Wd2 = crandn(2, 4, 6, seed=21)
    torch.testing.assert_close(sum_rate(Gm, Wd2), sum_rate(Hm, Wa @ Wd2))
    torch.testing.assert_close(effective_channel(H, Wa[0]), H @ Wa[0])
    with pytest.raises(ValueError, match="W_a"):
        effective_channel(H, crandn(2, 7, 4))
    with pytest.raises(ValueError, match="dtype"):
        effective_channel(H, Wa.to(torch.complex64))
    with pytest.raises(ValueError, match="B, K, N"):
        effective_channel(crandn(1, 2, 3, 4, 8), Wa)


def test_mmse_beamformer_power_and_limits() -> None:
    H = crandn(3, 4, 12, seed=22)
    W = mmse_beamformer(H, 2.0)
    assert W.shape == (3, 12, 4)
    # equal power P/K per user
    torch.testing.assert_close(
        W.abs().square().sum(-2), torch.full((3, 4), 0.5, dtype=torch.float64)
    )

    # P -> 0: MRT directions; P -> inf: zero forcing directions
    def unit(X: torch.Tensor) -> torch.Tensor:
        return X / X.norm(dim=-2, keepdim=True)

    mrt = unit(H.mH)
    zf = unit(torch.linalg.pinv(H))
    lo, hi = unit(mmse_beamformer(H, 1e-9)), unit(mmse_beamformer(H, 1e9))
    assert (lo.conj() * mrt).sum(-2).abs().min().item() > 1 - 1e-6
    assert (hi.conj() * zf).sum(-2).abs().min().item() > 1 - 1e-6
    Wm = mmse_beamformer(crandn(2, 2, 3, 12, seed=23), 1.0)
    assert Wm.shape == (2, 12, 6)
    torch.testing.assert_close(total_power(Wm), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="P"):
        mmse_beamformer(H, 0.0)
    with pytest.raises(ValueError, match="B, K, N"):
        mmse_beamformer(crandn(1, 2, 3, 4, 8), 1.0)
