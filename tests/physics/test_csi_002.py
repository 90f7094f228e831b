"""Paper 002 CSI models: MMSE pilot estimate eq. (56), DFT Type-II feedback, sample covariance."""

from __future__ import annotations

import math

import pytest
import torch

from beamgym.physics.channels import sample_correlated_channel, upa_covariance
from beamgym.physics.codebooks import oversampled_dft_subsets_2d
from beamgym.physics.csi import (
    dft_type2_feedback,
    mmse_error_covariance,
    mmse_pilot_estimate,
    sample_covariance,
)

D64 = torch.float64
C128 = torch.complex128


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _cov(n: int = 1, seed: int = 0) -> torch.Tensor:
    g = _gen(seed)
    px = torch.rand(n, generator=g, dtype=D64) * 2 - 1
    py = torch.rand(n, generator=g, dtype=D64) - 0.5
    return upa_covariance(px, py, math.radians(10.0), 4, 4)


# ---- MMSE pilot estimate, eq. (56) -------------------------------------------------------------
def test_mmse_error_covariance_matches_closed_form() -> None:
    R = _cov()[0]
    s = 20000
    h = sample_correlated_channel(R, _gen(1), n_samples=s)  # [S, M]
    Rs = R.expand(s, 16, 16)
    hh = mmse_pilot_estimate(h, Rs, 10.0, _gen(2))
    e = h - hh
    emp = e.mT @ e.conj() / s
    theo = mmse_error_covariance(R, 10.0)
    assert (torch.linalg.matrix_norm(emp - theo) / torch.linalg.matrix_norm(theo)) < 0.05
    # orthogonality principle: E[e h_hat^H] = 0
    cross = e.mT @ hh.conj() / s
    assert torch.linalg.matrix_norm(cross) < 0.05 * torch.linalg.matrix_norm(R)


def test_mmse_error_shrinks_with_pilot_power() -> None:
    R = _cov(3)
    traces = [
        torch.diagonal(mmse_error_covariance(R, 10 ** (db / 10)), dim1=-2, dim2=-1).real.sum(-1)
        for db in (10.0, 17.0, 24.0, 60.0)
    ]
    for a, b in zip(traces, traces[1:], strict=False):
        assert (b < a).all()
    assert (traces[-1] < 1e-4).all()
    # eigenvalue formula lambda / (1 + xi lambda)
    lam = torch.linalg.eigvalsh(R[0])
    want = (lam / (1 + 10.0 * lam)).sum()
    assert abs(traces[0][0].item() - want.item()) < 1e-10
    # the estimate itself approaches h with growing pilot power
    h = sample_correlated_channel(R, _gen(3))
    err = [(mmse_pilot_estimate(h, R, 10 ** (db / 10), _gen(4)) - h).norm() for db in (10, 40, 80)]
    assert err[0] > err[1] > err[2] and err[2] < 1e-3 * h.norm()


def test_mmse_per_user_pilot_tensor_and_reproducible() -> None:
    R = _cov(4)
    h = sample_correlated_channel(R, _gen(5))
    xi = torch.tensor([10.0, 50.0, 1e6, 1e9], dtype=D64)
    a = mmse_pilot_estimate(h, R, xi, _gen(6))
    b = mmse_pilot_estimate(h, R, xi, _gen(6))
    assert torch.equal(a, b)
    rel = (a - h).norm(dim=-1) / h.norm(dim=-1)
    assert rel[3] < rel[0]


def test_mmse_bad_input() -> None:
    R = _cov(2)
    h = sample_correlated_channel(R, _gen())
    with pytest.raises(ValueError, match="> 0"):
        mmse_pilot_estimate(h, R, 0.0, _gen())
    with pytest.raises(ValueError, match="> 0"):
        mmse_pilot_estimate(h, R, float("nan"), _gen())
    with pytest.raises(ValueError, match="broadcast"):
        mmse_pilot_estimate(h, R, torch.ones(3, dtype=D64), _gen())
    with pytest.raises(ValueError, match="shape"):
        mmse_pilot_estimate(h, R[:1], 10.0, _gen())
    with pytest.raises(ValueError, match="dtype"):
        mmse_pilot_estimate(h.to(torch.complex64), R, 10.0, _gen())
    with pytest.raises(ValueError, match="square"):
        mmse_error_covariance(torch.zeros(2, 3, dtype=C128), 1.0)


# ---- DFT Type-II feedback -----------------------------------------------------------------------
def _channels(n: int = 400, seed: int = 0) -> torch.Tensor:
    return sample_correlated_channel(_cov(n, seed), _gen(seed + 100))


def test_feedback_exact_without_quantization_and_full_nfb() -> None:
    h = _channels(20)
    hh = dft_type2_feedback(h, 4, 4, 16, amp_step_db=None, phase_levels=None)
    torch.testing.assert_close(hh, h, rtol=0, atol=1e-12)


def test_feedback_error_shrinks_with_nfb() -> None:
    h = _channels()
    nmse = []
    for nfb in (1, 2, 4, 6, 8, 16):
        hh = dft_type2_feedback(h, 4, 4, nfb)
        nmse.append(((hh - h).abs().square().sum(-1) / h.abs().square().sum(-1)).mean().item())
    for a, b in zip(nmse, nmse[1:], strict=False):
        assert b < a
    assert nmse[2] < 0.15  # N_fb = 4 captures most energy of a 10-degree-spread channel


def test_feedback_subset_choice_energy_criterion() -> None:
    """The paper's "minimizes ||h_hat||" read as maximal captured energy (documented typo)."""
    h = _channels(200, seed=3)
    nfb = 3
    F = oversampled_dft_subsets_2d(4, 4, (2, 2), precision="double")
    c = torch.einsum("smk,bm->bsk", F.conj(), h)
    top = c.abs().square().topk(nfb, dim=-1).values.sum(-1)  # captured energy per subset
    trunc_err = h.abs().square().sum(-1, keepdim=True) - top  # = ||h - F_s c_top||^2
    hh = dft_type2_feedback(h, 4, 4, nfb, amp_step_db=None, phase_levels=None)
    err = (hh - h).abs().square().sum(-1)
    torch.testing.assert_close(err, trunc_err.min(-1).values, rtol=1e-9, atol=1e-9)
    # the literal reading (smallest ||h_hat||, i.e. least captured energy) is the worst fit
    assert (trunc_err.max(-1).values > err + 1e-9).float().mean() > 0.95
    # "error" criterion: never worse than "energy" after quantization
    e_energy = (dft_type2_feedback(h, 4, 4, nfb) - h).abs().square().sum(-1)
    e_error = (dft_type2_feedback(h, 4, 4, nfb, criterion="error") - h).abs().square().sum(-1)
    assert (e_error <= e_energy + 1e-9).all() and (e_error < e_energy - 1e-9).any()


def test_feedback_quantization_levels() -> None:
    """Amplitudes in 3 dB steps (or 0) and 8-PSK phases, relative to the strongest coefficient."""
    h = _channels(50, seed=5)
    nfb = 6
    hh = dft_type2_feedback(h, 4, 4, nfb)
    F = oversampled_dft_subsets_2d(4, 4, (2, 2), precision="double")
    c = torch.einsum("smk,bm->bsk", F.conj(), hh)  # coefficients of the reconstruction
    # the reconstruction lives in one subset with at most nfb nonzero coefficients
    nz = (c.abs() > 1e-9).sum(-1)
    assert ((nz <= nfb) & (nz >= 1)).any(-1).all()
    s_idx = (nz <= nfb).float().argmax(-1)
    cs = c[torch.arange(50), s_idx]  # [B, M]
    ref = cs.abs().max(-1, keepdim=True)
    ratio_db = 20 * torch.log10(
        cs.abs()[cs.abs() > 1e-9] / ref.values.expand_as(cs)[cs.abs() > 1e-9]
    )
    assert torch.allclose(ratio_db / 3.0, torch.round(ratio_db / 3.0), atol=1e-6)
    assert ratio_db.min() >= -18.0 - 1e-6
    ref_phase = torch.angle(cs.gather(-1, ref.indices))
    dphi = torch.angle(cs) - ref_phase
    k = dphi / (math.pi / 4)
    mask = cs.abs() > 1e-9
    assert torch.allclose(k[mask], torch.round(k[mask]), atol=1e-6)


def test_feedback_per_user_nfb_and_bad_input() -> None:
    h = _channels(3)
    nfb = torch.tensor([1, 4, 16])
    hh = dft_type2_feedback(h, 4, 4, nfb, amp_step_db=None, phase_levels=None)
    torch.testing.assert_close(hh[2], h[2], rtol=0, atol=1e-12)
    single = dft_type2_feedback(h[:1], 4, 4, 1, amp_step_db=None, phase_levels=None)
    torch.testing.assert_close(hh[:1], single)
    with pytest.raises(ValueError, match=r"\[1, M=16\]"):
        dft_type2_feedback(h, 4, 4, 17)
    with pytest.raises(ValueError, match=r"\[1, M=16\]"):
        dft_type2_feedback(h, 4, 4, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="integer tensor"):
        dft_type2_feedback(h, 4, 4, torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="n_x \\* n_y"):
        dft_type2_feedback(h, 2, 4, 2)
    with pytest.raises(ValueError, match="criterion"):
        dft_type2_feedback(h, 4, 4, 2, criterion="norm")
    with pytest.raises(ValueError, match="amp_step_db"):
        dft_type2_feedback(h, 4, 4, 2, amp_step_db=-3.0)
    with pytest.raises(ValueError, match="broadcast"):
        dft_type2_feedback(h, 4, 4, torch.tensor([1, 2]))


# ---- sample covariance (Sec. V-E) ----------------------------------------------------------------
def test_sample_covariance_converges_to_r() -> None:
    R = _cov(2, seed=7)
    errs = []
    for s in (8, 128, 8192):
        snaps = sample_correlated_channel(R, _gen(s), n_samples=s)  # [2, S, M]
        Rh = sample_covariance(snaps)
        torch.testing.assert_close(Rh, Rh.mH)
        assert torch.linalg.eigvalsh(Rh).min() > -1e-10
        errs.append((torch.linalg.matrix_norm(Rh - R) / torch.linalg.matrix_norm(R)).mean().item())
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.05
    # demeaned variant: unbiased (S-1) normalization, exact on a known two-sample example
    x = torch.tensor([[1.0 + 0j, 0.0], [-1.0, 2.0j]], dtype=C128).unsqueeze(0)
    d = x - x.mean(-2, keepdim=True)
    torch.testing.assert_close(sample_covariance(x, demean=True)[0], d[0].mT @ d[0].conj())
    with pytest.raises(ValueError, match="at least 2"):
        sample_covariance(x[:, :1], demean=True)


def test_mmse_snapshot_mode_shares_one_estimator() -> None:
    """h [..., S, M] with R [..., M, M]: same result as repeating R for every snapshot."""
    R = _cov(2, seed=9)
    snaps = sample_correlated_channel(R, _gen(1), n_samples=5)  # [2, 5, M]
    xi = torch.tensor([10.0, 100.0], dtype=D64)
    a = mmse_pilot_estimate(snaps, R, xi, _gen(2))
    b = mmse_pilot_estimate(snaps, R.unsqueeze(1).expand(2, 5, 16, 16), xi.unsqueeze(-1), _gen(2))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="one per group of snapshots"):
        mmse_pilot_estimate(snaps, R[:1], 10.0, _gen())
