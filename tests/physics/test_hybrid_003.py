"""Paper 003 physics: hybrid sum-rate, Theorem 1 gradients, projections, initialization."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from beamgym.physics.channels import saleh_valenzuela_channel
from beamgym.physics.metrics import (
    fully_digital_zf_sum_rate,
    hybrid_rate_gradients,
    hybrid_rates,
    hybrid_sum_rate,
    miso_rates,
    zf_equal_power_precoder,
)
from beamgym.physics.projections import (
    aligned_analog_precoder,
    hybrid_initialization,
    hybrid_zero_forcing,
    normalize_digital,
    unit_modulus,
)

LN2 = math.log(2.0)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _crandn(*shape: int, seed: int, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    g = _gen(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def _problem(seed: int, b: int = 3, k: int = 4, n: int = 12, m: int = 5):
    H = _crandn(b, k, n, seed=seed)
    F = unit_modulus(_crandn(b, n, m, seed=seed + 1))
    W = _crandn(b, m, k, seed=seed + 2)
    return H, F, W


# ---- sum-rate, eq. (4) ------------------------------------------------------------------------
def test_hybrid_rate_is_miso_rate_of_effective_precoder() -> None:
    H, F, W = _problem(0)
    torch.testing.assert_close(hybrid_rates(H, F, W, 0.5), miso_rates(H, F @ W, 0.5))
    torch.testing.assert_close(hybrid_sum_rate(H, F, W, 0.5), miso_rates(H, F @ W, 0.5).sum(-1))


def test_hybrid_rate_known_value_single_user() -> None:
    # K = 1, no interference: R = log2(1 + |h^H F w|^2 / sigma^2) in bits.
    h = torch.tensor([[[1.0 + 1.0j, 2.0 + 0.0j]]], dtype=torch.complex128)  # h^H
    F = torch.tensor([[[1.0 + 0.0j], [1.0j]]], dtype=torch.complex128)
    w = torch.tensor([[[0.5 + 0.0j]]], dtype=torch.complex128)
    g = (h @ F @ w)[0, 0, 0]
    expected = math.log2(1.0 + abs(complex(g)) ** 2 / 2.0)
    assert float(hybrid_sum_rate(h, F, w, 2.0)) == pytest.approx(expected, rel=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_rate_invariances(seed: int) -> None:
    # (i) F W is all that matters: F -> F A, W -> A^-1 W leaves R unchanged;
    # (ii) per-user phases of the streams do not change R.
    H, F, W = _problem(seed)
    r = hybrid_sum_rate(H, F, W)
    A = _crandn(3, 5, 5, seed=seed + 7) + 3 * torch.eye(5, dtype=torch.complex128)
    torch.testing.assert_close(hybrid_sum_rate(H, F @ A, torch.linalg.solve(A, W)), r)
    phases = torch.exp(1j * torch.rand(3, 1, 4, generator=_gen(seed), dtype=torch.float64))
    torch.testing.assert_close(hybrid_sum_rate(H, F, W * phases), r)


def test_rate_input_errors() -> None:
    H, F, W = _problem(1)
    with pytest.raises(ValueError, match="F .analog precoder. must have shape"):
        hybrid_sum_rate(H, F[:, :-1], W)
    with pytest.raises(ValueError, match="W .digital precoder. must have shape"):
        hybrid_sum_rate(H, F, W[:, :, :-1])
    with pytest.raises(ValueError, match="share a complex dtype"):
        hybrid_sum_rate(H, F.to(torch.complex64), W)
    with pytest.raises(ValueError, match="complex"):
        hybrid_sum_rate(H.real, F, W)
    bad = W.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        hybrid_sum_rate(H, F, bad)


# ---- Theorem 1, eq. (10)-(11) -----------------------------------------------------------------
def _theorem1_literal(H, F, W, s2):
    """Eq. (10)-(11) term by term with the N x N matrices (one batch entry)."""
    k = H.shape[0]
    gF = torch.zeros_like(F)
    gW = torch.zeros_like(W)
    V = W @ W.mH
    for i in range(k):
        h = H[i].conj().unsqueeze(-1)  # h_k, [N, 1]
        Ht = h @ h.mH
        Hb = F.mH @ Ht @ F
        Wk = W.clone()
        Wk[:, i] = 0
        Vk = Wk @ Wk.mH
        gF = gF + Ht @ F @ V / (torch.trace(F @ V @ F.mH @ Ht) + s2)
        gF = gF - Ht @ F @ Vk / (torch.trace(F @ Vk @ F.mH @ Ht) + s2)
        gW = gW + Hb @ W / (torch.trace(W @ W.mH @ Hb) + s2)
        gW = gW - Hb @ Wk / (torch.trace(Wk @ Wk.mH @ Hb) + s2)
    return gF, gW


def test_paper_form_matches_eq_10_11_term_by_term() -> None:
    H, F, W = _problem(2)
    gF, gW = hybrid_rate_gradients(H, F, W, 0.7, form="paper")
    for b in range(H.shape[0]):
        lF, lW = _theorem1_literal(H[b], F[b], W[b], 0.7)
        torch.testing.assert_close(gF[b], lF, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gW[b], lW, rtol=1e-12, atol=1e-12)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


@pytest.mark.parametrize("noise", ["scalar", "batch", "per_user"])
def test_gradients_match_autograd(noise: str) -> None:
    H, F, W = _problem(3)
    s2 = {
        "scalar": 0.3,
        "batch": torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64),
        "per_user": torch.rand(3, 4, generator=_gen(9), dtype=torch.float64) + 0.1,
    }[noise]
    Fl, Wl = F.clone().requires_grad_(True), W.clone().requires_grad_(True)
    hybrid_sum_rate(H, Fl, Wl, s2).sum().backward()
    aF, aW = hybrid_rate_gradients(H, F, W, s2, form="ascent")
    assert _rel(aF, Fl.grad) < 1e-6 and _rel(aW, Wl.grad) < 1e-6
    # the paper's expressions are the nat-based Wirtinger derivative: x 2/ln2 = ascent
    pF, pW = hybrid_rate_gradients(H, F, W, s2, form="paper")
    assert _rel(pF * (2 / LN2), Fl.grad) < 1e-6 and _rel(pW * (2 / LN2), Wl.grad) < 1e-6


def test_ascent_direction_matches_finite_differences() -> None:
    H, F, W = _problem(4, b=1)
    aF, aW = hybrid_rate_gradients(H, F, W, 1.0, form="ascent")
    dF = _crandn(*F.shape, seed=40)
    dW = _crandn(*W.shape, seed=41)
    eps = 1e-6
    for X, g, d, which in ((F, aF, dF, "F"), (W, aW, dW, "W")):
        plus = (X + eps * d, W) if which == "F" else (F, X + eps * d)
        minus = (X - eps * d, W) if which == "F" else (F, X - eps * d)
        fd = (hybrid_sum_rate(H, *plus) - hybrid_sum_rate(H, *minus)) / (2 * eps)
        # directional derivative of a real function: Re<grad, d> with grad = dR/dRe + j dR/dIm
        directional = (g.conj() * d).sum().real
        assert float(fd[0]) == pytest.approx(float(directional), rel=1e-7)


def test_gradient_form_error() -> None:
    H, F, W = _problem(5)
    with pytest.raises(ValueError, match="form"):
        hybrid_rate_gradients(H, F, W, form="wirtinger")


# ---- projections, eq. (7) and (9) -------------------------------------------------------------
def test_unit_modulus_keeps_phase_and_defines_zero() -> None:
    F = _crandn(2, 6, 3, seed=6)
    F[0, 0, 0] = 0
    P = unit_modulus(F)
    torch.testing.assert_close(P.abs(), torch.ones(2, 6, 3, dtype=torch.float64))
    nz = F != 0
    torch.testing.assert_close(torch.angle(P[nz]), torch.angle(F[nz]))
    assert P[0, 0, 0] == 1  # documented value at 0: phase 0
    torch.testing.assert_close(unit_modulus(P), P)  # idempotent
    Fl = F.clone().requires_grad_(True)
    unit_modulus(Fl).real.sum().backward()
    assert torch.isfinite(torch.view_as_real(Fl.grad)).all() and Fl.grad[0, 0, 0] == 0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3))
def test_projections_are_scale_invariant(seed: int, scale: float) -> None:
    F = _crandn(2, 6, 3, seed=seed)
    torch.testing.assert_close(unit_modulus(scale * F), unit_modulus(F))
    Fu = unit_modulus(F)
    W = _crandn(2, 3, 2, seed=seed + 1)
    torch.testing.assert_close(normalize_digital(Fu, scale * W, 4.0), normalize_digital(Fu, W, 4.0))


def test_normalize_digital_meets_power_budget() -> None:
    H, F, W = _problem(7)
    p = torch.tensor([1.0, 10.0, 0.1], dtype=torch.float64)
    Wn = normalize_digital(F, W, p)
    power = torch.linalg.matrix_norm(F @ Wn).square()
    torch.testing.assert_close(power, p)  # sqrt(P_t), docs/readings.md#003-eq9-sqrt
    Wn = normalize_digital(F, W, 10.0)
    torch.testing.assert_close(
        torch.linalg.matrix_norm(F @ Wn).square(), torch.full((3,), 10.0, dtype=torch.float64)
    )
    # W direction is kept
    torch.testing.assert_close(Wn / Wn[:, :1, :1], W / W[:, :1, :1])


def test_projection_errors() -> None:
    H, F, W = _problem(8)
    with pytest.raises(ValueError, match="F @ W is zero"):
        normalize_digital(F, torch.zeros_like(W), 1.0)
    with pytest.raises(ValueError, match="must match"):
        normalize_digital(F, W[:, :-1], 1.0)
    with pytest.raises(ValueError, match="power"):
        normalize_digital(F, W, -1.0)
    with pytest.raises(ValueError, match="power"):
        normalize_digital(F, W, torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="complex"):
        unit_modulus(F.real)


# ---- initialization, eq. (12)-(13) -------------------------------------------------------------
def test_aligned_analog_precoder_gives_array_gain() -> None:
    H = _crandn(4, 3, 10, seed=10)
    F0 = aligned_analog_precoder(H)
    assert F0.shape == (4, 10, 3)
    torch.testing.assert_close(F0.abs(), torch.ones(4, 10, 3, dtype=torch.float64))
    gain = torch.diagonal(H @ F0, dim1=-2, dim2=-1)  # h_m^H f_m
    torch.testing.assert_close(gain, H.abs().sum(-1).to(gain.dtype))  # real, = sum_n |h_mn|
    # the literal sign of eq. (12) is the conjugate and loses the array gain
    literal = torch.diagonal(H @ F0.conj(), dim1=-2, dim2=-1).abs()
    assert bool((literal < gain.real).all())
    with pytest.raises(ValueError, match="complex"):
        aligned_analog_precoder(H.abs())


def test_initialization_shapes_power_and_errors() -> None:
    H = _crandn(3, 4, 16, seed=11)
    F0, W0 = hybrid_initialization(H, 10.0, n_rf=4)
    assert F0.shape == (3, 16, 4) and W0.shape == (3, 4, 4)
    torch.testing.assert_close(F0.abs(), torch.ones(3, 16, 4, dtype=torch.float64))
    torch.testing.assert_close(
        torch.linalg.matrix_norm(F0 @ W0).square(), torch.full((3,), 10.0, dtype=torch.float64)
    )
    # W0 is the pinv reading: F0 W0 is the least-squares fit of the ZF precoder pinv(H)
    X = torch.linalg.lstsq(F0, torch.linalg.pinv(H)).solution
    X = X * (math.sqrt(10.0) / torch.linalg.matrix_norm(F0 @ X))[:, None, None]
    torch.testing.assert_close(W0, X, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="N_RF = K"):
        hybrid_initialization(H, 10.0, n_rf=5)
    with pytest.raises(ValueError, match="N >= K"):
        hybrid_initialization(_crandn(2, 4, 3, seed=0), 1.0)


def test_zero_forcing_helpers() -> None:
    H = _crandn(3, 4, 16, seed=12)
    F = unit_modulus(_crandn(3, 16, 6, seed=13))
    for allocation in ("equal", "total"):
        W = hybrid_zero_forcing(H, F, 5.0, allocation=allocation)
        eff = H @ F @ W
        off = eff - torch.diag_embed(torch.diagonal(eff, dim1=-2, dim2=-1))
        assert float(off.abs().max()) < 1e-10
        torch.testing.assert_close(
            torch.linalg.matrix_norm(F @ W).square(), torch.full((3,), 5.0, dtype=torch.float64)
        )
    We = hybrid_zero_forcing(H, F, 5.0, allocation="equal")
    torch.testing.assert_close(
        torch.linalg.vector_norm(F @ We, dim=-2),
        torch.full((3, 4), math.sqrt(5 / 4), dtype=torch.float64),
    )
    Wd = zf_equal_power_precoder(H, 5.0)
    eff = H @ Wd
    assert (
        float((eff - torch.diag_embed(torch.diagonal(eff, dim1=-2, dim2=-1))).abs().max()) < 1e-10
    )
    torch.testing.assert_close(
        torch.linalg.vector_norm(Wd, dim=-2),
        torch.full((3, 4), math.sqrt(5 / 4), dtype=torch.float64),
    )
    with pytest.raises(ValueError, match="allocation"):
        hybrid_zero_forcing(H, F, 1.0, allocation="waterfill")
    with pytest.raises(ValueError, match="M >= K"):
        hybrid_zero_forcing(H, F[:, :, :3], 1.0)
    with pytest.raises(ValueError, match="shape"):
        hybrid_zero_forcing(H, F[:, :-1], 1.0)
    with pytest.raises(ValueError, match="N >= K"):
        zf_equal_power_precoder(_crandn(2, 4, 3, seed=0), 1.0)


# ---- known values (independent reference, 003: N=32, K=M=4, 10 paths, 10 dB, E||h||^2 = 10) --
N_CH = 2000
N_REF = 500  # the reference means are over 500 channels


@pytest.fixture(scope="module")
def sv_channels() -> torch.Tensor:
    return saleh_valenzuela_channel(
        _gen(2024), N_CH, n_tx=32, n_users=4, n_paths=10, normalization="paper", precision="double"
    )


def _close_to_reference(rates: torch.Tensor, reference: float) -> bool:
    # Tolerance: 3 standard errors of the difference of two Monte-Carlo means (ours over N_CH
    # channels, the reference's over 500 channels, both with the per-channel spread seen here).
    std = float(rates.std())
    tol = 3.0 * math.sqrt(std**2 / N_CH + std**2 / N_REF)
    return abs(float(rates.mean()) - reference) < tol


def test_known_values_at_10db(sv_channels: torch.Tensor) -> None:
    H, p = sv_channels, 10.0  # sigma^2 = 1, P_t = SNR = 10 dB
    fd = fully_digital_zf_sum_rate(H, p)
    assert _close_to_reference(fd, 17.50), float(fd.mean())
    F0, W0 = hybrid_initialization(H, p, n_rf=4)
    start = hybrid_sum_rate(H, F0, W0)
    assert _close_to_reference(start, 15.2), float(start.mean())  # reference: PGA start 15.15-15.2
    hzf = hybrid_sum_rate(H, F0, hybrid_zero_forcing(H, F0, p, allocation="equal"))
    assert _close_to_reference(hzf, 16.12), float(hzf.mean())
    # the eq. (9) scaling of (H F0)^-1 (equal received SNR) is clearly below the reference
    hzf_total = hybrid_sum_rate(H, F0, hybrid_zero_forcing(H, F0, p, allocation="total"))
    assert float(hzf.mean()) - float(hzf_total.mean()) > 0.2
    assert float(fd.mean()) > float(hzf.mean()) > float(start.mean())


def test_literal_eq12_sign_and_transpose_reading_are_much_worse(sv_channels: torch.Tensor) -> None:
    H, p = sv_channels, 10.0
    F0, W0 = hybrid_initialization(H, p, n_rf=4)
    aligned = hybrid_sum_rate(H, F0, W0)
    # literal eq. (12): e^{-j theta_nm} of [h_1 ... h_K] is the conjugate of the aligned F0
    F_lit = F0.conj()
    W_lit = normalize_digital(F_lit, torch.linalg.pinv(F_lit) @ torch.linalg.pinv(H), p)
    literal = hybrid_sum_rate(H, F_lit, W_lit)
    assert _close_to_reference(literal, 3.9), float(literal.mean())
    assert float(aligned.mean()) - float(literal.mean()) > 10.0
    # reading the dagger of eq. (13) as the conjugate transpose gives a much worse start
    W_ct = normalize_digital(F0, F0.mH @ H.mH, p)
    assert float(aligned.mean()) - float(hybrid_sum_rate(H, F0, W_ct).mean()) > 5.0
