"""Paper 002: correlated UPA channel model (Sec. V-A-4) and the 2D-DFT codebook (Sec. V-A-5)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from beamgym.physics.arrays import ula_response, upa_response
from beamgym.physics.channels import (
    hermitian_sqrt,
    laplacian_covariance_ula,
    sample_correlated_channel,
    sample_upa_angles,
    upa_covariance,
)
from beamgym.physics.codebooks import (
    codeword_scores_eq35,
    dft_codebook,
    dft_codebook_2d,
    match_codewords,
    oversampled_dft_subsets_2d,
    select_codewords,
    topk_codeword_indices,
)

D64 = torch.float64
C128 = torch.complex128


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- covariance model ---------------------------------------------------------------------------
def test_laplacian_closed_form_entries() -> None:
    phi, sig, n = 0.3, math.radians(10.0), 5
    R = laplacian_covariance_ula(torch.tensor(phi, dtype=D64), sig, n)
    for m in range(n):
        for k in range(n):
            d = m - k
            want = complex(
                math.cos(math.pi * d * math.sin(phi)), math.sin(math.pi * d * math.sin(phi))
            )
            want /= 1.0 + 0.5 * (math.pi * d * sig * math.cos(phi)) ** 2
            assert abs(complex(R[m, k]) - want) < 1e-14


def test_gaussian_spectrum_option_and_ordering() -> None:
    phi = torch.tensor([0.2], dtype=D64)
    lap = laplacian_covariance_ula(phi, 0.2, 6)
    gau = laplacian_covariance_ula(phi, 0.2, 6, spectrum="gaussian")
    d = 3
    x = math.pi * d * 0.2 * math.cos(0.2)
    assert abs(gau[0, d, 0].abs().item() - math.exp(-0.5 * x * x)) < 1e-14
    # Gaussian tails decay faster than the Laplacian's 1/(1+x^2/2)
    assert gau[0, -1, 0].abs() < lap[0, -1, 0].abs()


@settings(max_examples=20, deadline=None)
@given(
    phx=st.floats(-1.5, 1.5),
    phy=st.floats(-1.5, 1.5),
    sig=st.floats(0.0, 0.6),
    spectrum=st.sampled_from(["laplacian", "gaussian"]),
)
def test_upa_covariance_trace_hermitian_psd(
    phx: float, phy: float, sig: float, spectrum: str
) -> None:
    R = upa_covariance(
        torch.tensor([phx], dtype=D64), torch.tensor([phy], dtype=D64), sig, 4, 3, spectrum=spectrum
    )[0]
    assert R.shape == (12, 12)
    assert abs(torch.diagonal(R).sum().real.item() - 12.0) < 1e-12  # tr R = M
    torch.testing.assert_close(R, R.mH, rtol=0, atol=1e-14)
    assert torch.linalg.eigvalsh(R).min() > -1e-10  # PSD


def test_upa_covariance_is_kron_and_matches_steering_at_zero_spread() -> None:
    px, py = torch.tensor([0.4, -0.7], dtype=D64), torch.tensor([-0.2, 0.5], dtype=D64)
    R = upa_covariance(px, py, 0.15, 4, 3)
    rx = laplacian_covariance_ula(px, 0.15, 4)
    ry = laplacian_covariance_ula(py, 0.15, 3)
    for b in range(2):
        torch.testing.assert_close(R[b], torch.kron(rx[b], ry[b]))
    # sigma_as = 0: rank one, R = M a a^H with the UPA steering vector (same element order)
    R0 = upa_covariance(px, py, 0.0, 4, 3)
    a = upa_response(px, py, 4, 3)
    torch.testing.assert_close(R0, 12.0 * a.unsqueeze(-1) * a.conj().unsqueeze(-2))
    r1 = laplacian_covariance_ula(px, 0.0, 4)
    u = ula_response(px, 4)
    torch.testing.assert_close(r1, 4.0 * u.unsqueeze(-1) * u.conj().unsqueeze(-2))


def test_covariance_precision_and_broadcast_sigma() -> None:
    phi = torch.zeros(2, 3)
    R = laplacian_covariance_ula(phi, torch.tensor([0.1, 0.2, 0.3]), 4)
    assert R.dtype == torch.complex64 and R.shape == (2, 3, 4, 4)
    assert R[0, 0, 0, 1].abs() > R[0, 2, 0, 1].abs()  # larger spread, weaker correlation
    Rd = laplacian_covariance_ula(phi, 0.1, 4, precision="double")
    assert Rd.dtype == C128


def test_covariance_bad_input() -> None:
    phi = torch.zeros(2)
    with pytest.raises(ValueError, match="spectrum"):
        laplacian_covariance_ula(phi, 0.1, 4, spectrum="cauchy")
    with pytest.raises(ValueError, match=">= 0"):
        laplacian_covariance_ula(phi, -0.1, 4)
    with pytest.raises(ValueError, match="broadcast"):
        laplacian_covariance_ula(phi, torch.zeros(3), 4)
    with pytest.raises(ValueError, match="non-finite"):
        laplacian_covariance_ula(torch.tensor([float("nan")]), 0.1, 4)
    with pytest.raises(ValueError, match="non-finite"):
        laplacian_covariance_ula(phi, float("inf"), 4)
    with pytest.raises(ValueError, match="same shape"):
        upa_covariance(torch.zeros(2), torch.zeros(3), 0.1, 2, 2)
    with pytest.raises(ValueError, match="n must be"):
        laplacian_covariance_ula(phi, 0.1, 0)


# ---- sampling ------------------------------------------------------------------------------------
def test_hermitian_sqrt_rank_deficient() -> None:
    a = torch.randn(3, 6, 2, dtype=C128, generator=_gen())
    R = a @ a.mH  # rank 2: Cholesky would fail
    with pytest.raises(RuntimeError):
        torch.linalg.cholesky(R)
    S = hermitian_sqrt(R)
    torch.testing.assert_close(S @ S, R, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(S, S.mH)
    with pytest.raises(ValueError, match="square"):
        hermitian_sqrt(torch.zeros(2, 3, dtype=C128))


def test_sampled_channel_covariance_converges() -> None:
    R = upa_covariance(torch.tensor([0.3], dtype=D64), torch.tensor([-0.4], dtype=D64), 0.17, 4, 4)
    errs = []
    for s in (100, 10000):
        h = sample_correlated_channel(R, _gen(1), n_samples=s)[0]  # [S, M]
        Rhat = h.mT @ h.conj() / s
        errs.append((torch.linalg.matrix_norm(Rhat - R[0]) / torch.linalg.matrix_norm(R[0])).item())
    assert errs[1] < 0.06 and errs[1] < errs[0] / 4  # ~ 1/sqrt(S)
    # single draw per covariance has the right shape and is reproducible
    h1 = sample_correlated_channel(R.expand(5, 16, 16), _gen(3))
    h2 = sample_correlated_channel(R.expand(5, 16, 16), _gen(3))
    assert h1.shape == (5, 16) and torch.equal(h1, h2)


def test_sampled_channel_respects_rank() -> None:
    R0 = upa_covariance(torch.tensor([0.3], dtype=D64), torch.tensor([0.1], dtype=D64), 0.0, 4, 4)
    h = sample_correlated_channel(R0.expand(50, 16, 16), _gen(2))
    a = upa_response(torch.tensor([0.3], dtype=D64), torch.tensor([0.1], dtype=D64), 4, 4)[0]
    # all draws lie on the single steering direction
    resid = h - (h @ a.conj()).unsqueeze(-1) * a
    assert resid.abs().max() < 1e-10


def test_angles_within_table1_ranges() -> None:
    px, py = sample_upa_angles(_gen(), (2000, 3))
    assert px.dtype == torch.float32 and px.shape == (2000, 3)
    assert px.min() >= math.radians(-60) and px.max() <= math.radians(60)
    assert py.min() >= math.radians(-60) and py.max() <= math.radians(30)
    assert abs(py.mean().item() - math.radians(-15)) < 0.03  # uniform, midpoint -15 deg
    with pytest.raises(ValueError, match="low <= high"):
        sample_upa_angles(_gen(), (2,), (10.0, -10.0))


# ---- codebook -----------------------------------------------------------------------------------
def test_dft_codebook_unitary_and_kron() -> None:
    C = dft_codebook_2d(4, 4, precision="double")
    assert C.shape == (16, 16)
    torch.testing.assert_close(C.mH @ C, torch.eye(16, dtype=C128), rtol=0, atol=1e-14)
    torch.testing.assert_close(torch.linalg.vector_norm(C, dim=0), torch.ones(16, dtype=D64))
    fx, fy = dft_codebook(4, precision="double"), dft_codebook(4, precision="double")
    torch.testing.assert_close(C[:, 1 * 4 + 2], torch.kron(fx[:, 1], fy[:, 2]))
    # codeword k along an axis is the ULA steering vector with sin(theta) = 2k/n (mod 2)
    theta = torch.asin(torch.tensor([2 * 1 / 4 - 0.0], dtype=D64))
    torch.testing.assert_close(fx[:, 1], ula_response(theta, 4)[0])


def test_oversampled_subsets_are_orthogonal_bases_covering_the_codebook() -> None:
    F = oversampled_dft_subsets_2d(4, 2, (2, 2), precision="double")
    assert F.shape == (4, 8, 8)
    eye = torch.eye(8, dtype=C128)
    for s in range(4):
        torch.testing.assert_close(F[s].mH @ F[s], eye, rtol=0, atol=1e-13)
    full = dft_codebook_2d(4, 2, (2, 2), precision="double")  # [8, 32]
    union = F.permute(1, 0, 2).reshape(8, 32)
    corr = (full.mH @ union).abs()
    assert torch.allclose(corr.max(0).values, torch.ones(32, dtype=D64))  # same set of columns


def test_selection_topk_and_match_roundtrip() -> None:
    C = dft_codebook_2d(4, 4)
    scores = torch.tensor([[0.1] * 16, list(range(16))], dtype=torch.float32)
    scores[0, 7] = 0.9
    scores[0, 3] = 0.5
    idx = topk_codeword_indices(scores, 3)
    assert idx[0].tolist() == [7, 3, 0]  # decreasing score, ties to the lower index
    assert idx[1].tolist() == [15, 14, 13]
    A = select_codewords(C, idx)
    assert A.shape == (2, 16, 3)
    torch.testing.assert_close(A[0, :, 1], C[:, 3])
    # a phase-rotated codeword is still recognized, with its phase
    rot = torch.polar(torch.ones(2, 3), torch.tensor([[0.3, -1.0, 2.0], [0.0, 0.5, 1.5]]))
    back, ph, ok = match_codewords(A * rot.unsqueeze(1), C)
    assert ok.all() and torch.equal(back, idx)
    torch.testing.assert_close(ph, rot)
    # batched codebook
    Ab = select_codewords(C.expand(2, 16, 16), idx)
    torch.testing.assert_close(Ab, A)


def test_match_rejects_duplicates_and_non_codewords() -> None:
    C = dft_codebook_2d(2, 2)
    A = select_codewords(C, torch.tensor([[0, 0], [1, 2]]))
    _, _, ok = match_codewords(A, C)
    assert ok.tolist() == [False, True]
    B = A.clone()
    B[1, :, 0] = torch.tensor([1.0, 0, 0, 0])  # unit norm but not a codeword
    assert not match_codewords(B, C)[2][1]


def test_eq35_scores_pick_the_beam_of_a_los_user() -> None:
    C = dft_codebook_2d(4, 4, precision="double")
    h = C[:, 5].unsqueeze(0).unsqueeze(0) * 3.0  # one user exactly on codeword 5
    R = h.unsqueeze(-1) * h.conj().unsqueeze(-2)
    s = codeword_scores_eq35(C, R)
    assert s.shape == (1, 16) and s.argmax().item() == 5
    assert abs(s[0, 5].item() - 1.0) < 1e-12  # a^H R a / tr R = 1 for the matching beam
    # zero-trace users contribute nothing
    assert codeword_scores_eq35(C, torch.zeros_like(R)).abs().max() == 0


def test_codebook_bad_input() -> None:
    C = dft_codebook_2d(2, 2)
    with pytest.raises(ValueError, match="exceeds"):
        topk_codeword_indices(torch.zeros(1, 4), 5)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        select_codewords(C, torch.tensor([[0, 4]]))
    with pytest.raises(ValueError, match="integer"):
        select_codewords(C, torch.tensor([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="pair"):
        dft_codebook_2d(2, 2, (2,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="oversampling"):
        dft_codebook(4, 0)
    with pytest.raises(ValueError, match="antennas"):
        match_codewords(torch.zeros(1, 3, 2, dtype=torch.complex64), C)
    with pytest.raises(ValueError, match=r"\[B, I, 4, 4\]"):
        codeword_scores_eq35(C, torch.zeros(1, 2, 3, 3, dtype=torch.complex64))
    with pytest.raises(ValueError, match="batch"):
        select_codewords(C.expand(3, 4, 4), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match=r"\[M, A\] or \[B, M, A\]"):
        select_codewords(C.reshape(1, 1, 4, 4), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="square"):
        sample_correlated_channel(torch.zeros(2, 3, dtype=C128), _gen())
