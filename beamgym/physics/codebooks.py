r"""Analog beam codebooks: (oversampled) 2D-DFT codebooks and codeword selection.

Paper 002 restricts every analog beamformer (a column of :math:`\mathbf A`) to a discrete
codebook :math:`\mathcal A_{\mathrm{rf}} = \{\check{\mathbf a}_1, \dots, \check{\mathbf a}_A\}`
(Sec. II-A), chosen as a 2D-DFT codebook without oversampling, so :math:`A = M` (Sec. V-A-5).
The DFT Type-II feedback model of Sec. V-A-4 uses the same construction with ``2 x 2``
oversampling, split into its 4 orthogonal subsets.

Element ordering: the antenna index is ``i_x * n_y + i_y`` (x outer, y inner), the same as
:func:`beamgym.physics.arrays.upa_response` and :math:`\mathbf R = \mathbf R_x \otimes \mathbf
R_y` in :func:`beamgym.physics.channels.upa_covariance`; a 2D codeword is
:math:`\mathbf f_x \otimes \mathbf f_y`.

Normalization (docs/readings.md#002-codebook-normalization): codewords have unit norm
(:math:`\|\check{\mathbf a}\|_2 = 1`, so :math:`\mathbf A^H \mathbf A = \mathbf I` for distinct
codewords) together
with :math:`\Psi_0 = \mathbf I` in eq. (4). Unit-modulus codewords with :math:`\Psi_0 =
\mathbf I` give a weighted power 16x too low for ``M = 16``.

References:
    [002] Schynol, Pesavento, "Hybrid Downlink Beamforming with Outage Constraints under
          Imperfect CSI using Model-Driven Deep Learning".
"""

from __future__ import annotations

import math

import torch

from beamgym._validation import check_int, check_tensor
from beamgym.config import Precision, complex_dtype

__all__ = [
    "dft_codebook",
    "dft_codebook_2d",
    "oversampled_dft_subsets_2d",
    "select_codewords",
    "topk_codeword_indices",
    "match_codewords",
    "codeword_scores_eq35",
]


def dft_codebook(
    n: int,
    oversampling: int = 1,
    *,
    precision: Precision = "single",
    device: str | torch.device | None = None,
) -> torch.Tensor:
    r"""Unit-norm (oversampled) DFT codebook of an ``n``-element half-wavelength ULA.

    .. math:: [\mathbf F]_{m,k} = \frac{1}{\sqrt n} e^{j 2\pi m k / (O n)},\qquad
              m = 0..n-1,\; k = 0..On-1

    Column ``k`` is the ULA steering vector towards the spatial frequency ``k / (O n)`` (paper
    002 Sec. V-A-4/5). Without oversampling (``O = 1``) the matrix is unitary.

    Args:
        n: Number of antenna elements.
        oversampling: Oversampling factor ``O`` (number of codewords ``O n``).
        precision: ``"single"`` (complex64) or ``"double"`` (complex128).
        device: Device of the result (default CPU).

    Returns:
        Complex ``[n, O n]`` matrix whose columns are the unit-norm codewords.
    """
    n = check_int(n, "n")
    oversampling = check_int(oversampling, "oversampling")
    cdtype = complex_dtype(precision)
    m = torch.arange(n, dtype=torch.float64)
    k = torch.arange(oversampling * n, dtype=torch.float64)
    phase = 2.0 * math.pi * torch.outer(m, k) / (oversampling * n)
    f = torch.polar(torch.full_like(phase, 1.0 / math.sqrt(n)), phase)
    return f.to(device=device, dtype=cdtype)


def dft_codebook_2d(
    n_x: int,
    n_y: int,
    oversampling: tuple[int, int] = (1, 1),
    *,
    precision: Precision = "single",
    device: str | torch.device | None = None,
) -> torch.Tensor:
    r"""Unit-norm 2D-DFT codebook of an ``n_x x n_y`` UPA, paper 002 Sec. V-A-5.

    .. math:: \check{\mathbf a}_{k_x O_y n_y + k_y} = \mathbf f_{x,k_x} \otimes \mathbf f_{y,k_y}

    with :math:`\mathbf f_{x,k}` the columns of :func:`dft_codebook`. Without oversampling this
    is the paper's transmit codebook with :math:`A = M = n_x n_y` columns and
    :math:`\mathbf A^H \mathbf A = \mathbf I`.

    Args:
        n_x: Elements along x (:math:`M_x`).
        n_y: Elements along y (:math:`M_y`).
        oversampling: ``(O_x, O_y)`` oversampling factors.
        precision: ``"single"`` or ``"double"``.
        device: Device of the result (default CPU).

    Returns:
        Complex ``[n_x n_y, O_x n_x O_y n_y]`` codebook, unit-norm columns.
    """
    ox, oy = _pair(oversampling, "oversampling")
    fx = dft_codebook(n_x, ox, precision=precision, device=device)
    fy = dft_codebook(n_y, oy, precision=precision, device=device)
    return torch.kron(fx, fy)


def oversampled_dft_subsets_2d(
    n_x: int,
    n_y: int,
    oversampling: tuple[int, int] = (2, 2),
    *,
    precision: Precision = "single",
    device: str | torch.device | None = None,
) -> torch.Tensor:
    r"""The ``O_x O_y`` orthogonal subsets of an oversampled 2D-DFT codebook (Sec. V-A-4).

    Subset :math:`(q_x, q_y)` collects the codewords with spatial frequencies
    :math:`(O_x m_x + q_x)/(O_x n_x)` and :math:`(O_y m_y + q_y)/(O_y n_y)`,
    :math:`m_x = 0..n_x-1`, :math:`m_y = 0..n_y-1`; each subset is a unitary
    ``M x M`` basis (a phase-ramped DFT basis), as in the 3GPP Type-II codebook's orthogonal
    beam groups.

    Args:
        n_x: Elements along x.
        n_y: Elements along y.
        oversampling: ``(O_x, O_y)``; paper 002 uses ``(2, 2)``, i.e. 4 subsets.
        precision: ``"single"`` or ``"double"``.
        device: Device of the result (default CPU).

    Returns:
        Complex ``[O_x O_y, M, M]``; ``[s]`` is the unitary basis of subset
        ``s = q_x O_y + q_y``, columns ordered ``m_x n_y + m_y``.
    """
    ox, oy = _pair(oversampling, "oversampling")
    fx = dft_codebook(n_x, ox, precision=precision, device=device)
    fy = dft_codebook(n_y, oy, precision=precision, device=device)
    subsets = [torch.kron(fx[:, qx::ox], fy[:, qy::oy]) for qx in range(ox) for qy in range(oy)]
    return torch.stack(subsets, 0)


def select_codewords(codebook: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    r"""Analog precoder from codeword indices, paper 002 eq. (6).

    .. math:: \mathbf A = [\check{\mathbf a}_{i_1} \cdots \check{\mathbf a}_{i_{M_{rf}}}]

    Args:
        codebook: Complex ``[M, A]`` codebook (columns are codewords) or a batch ``[B, M, A]``.
        indices: Integer ``[B, M_rf]`` codeword indices in ``[0, A)``.

    Returns:
        Complex ``[B, M, M_rf]`` analog precoder (column ``r`` is codeword ``indices[:, r]``).
    """
    check_tensor(codebook, "codebook", complex_=True)
    if codebook.ndim not in (2, 3):
        raise ValueError(f"codebook must be [M, A] or [B, M, A], got {tuple(codebook.shape)}")
    check_tensor(indices, "indices", ndim=2, finite=False)
    if indices.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"indices must be an integer tensor, got dtype {indices.dtype}")
    a = codebook.shape[-1]
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= a):
        raise ValueError(
            f"codeword indices must lie in [0, {a}), got range "
            f"[{int(indices.min())}, {int(indices.max())}]"
        )
    idx = indices.to(device=codebook.device, dtype=torch.int64)
    if codebook.ndim == 2:
        return codebook[:, idx].permute(1, 0, 2)
    if codebook.shape[0] != idx.shape[0]:
        raise ValueError(
            f"batched codebook has batch {codebook.shape[0]} but indices {idx.shape[0]}"
        )
    m = codebook.shape[1]
    return torch.gather(codebook, 2, idx.unsqueeze(1).expand(-1, m, -1))


def topk_codeword_indices(scores: torch.Tensor, m_rf: int) -> torch.Tensor:
    r"""Codebook-selection projection: the ``M_rf`` codewords with the largest scores.

    Maps a real score per codeword (e.g. a normalized action) to a feasible analog selection:
    ``M_rf`` *distinct* codewords, hence :math:`\mathrm{rank}\,\mathbf A = M_{rf}` for a DFT
    codebook (the set :math:`\mathcal A` of paper 002 eq. (6)). The selected indices are
    ordered by decreasing score, so column ``r`` of :math:`\mathbf A` is the ``r``-th best
    codeword; ties are broken towards the lower codeword index.

    Args:
        scores: Real ``[B, A]`` scores.
        m_rf: Number of RF chains :math:`M_{rf} \le A`.

    Returns:
        ``[B, M_rf]`` int64 indices, ordered by decreasing score.
    """
    check_tensor(scores, "scores", ndim=2, complex_=False)
    m_rf = check_int(m_rf, "m_rf")
    a = scores.shape[-1]
    if m_rf > a:
        raise ValueError(f"m_rf={m_rf} exceeds the codebook size A={a}; use m_rf <= A")
    # stable descending sort: equal scores keep ascending codeword order
    order = torch.sort(scores.detach(), dim=-1, descending=True, stable=True).indices
    return order[:, :m_rf]


def match_codewords(
    analog: torch.Tensor, codebook: torch.Tensor, *, atol: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Identify the codewords of an analog precoder (inverse of :func:`select_codewords`).

    Column ``r`` of :math:`\mathbf A` matches codeword ``a`` if
    :math:`|\check{\mathbf a}_a^H [\mathbf A]_{:,r}| \ge 1 - \mathrm{atol}` (unit-norm
    codewords; a common phase :math:`e^{j\theta}` is allowed and returned, since it can be
    absorbed by the digital precoder).

    Args:
        analog: Complex ``[B, M, M_rf]`` analog precoder.
        codebook: Complex ``[M, A]`` unit-norm codebook.
        atol: Tolerance on the normalized correlation.

    Returns:
        ``(indices, phases, valid)``: int64 ``[B, M_rf]`` best-matching codeword per column,
        complex ``[B, M_rf]`` unit-modulus phases :math:`\check{\mathbf a}^H \mathbf a_r /
        |\cdot|` (so ``analog[:, :, r] = phases[:, r] * codebook[:, indices[:, r]]``) and bool
        ``[B]`` telling whether every column is a codeword and all are distinct (eq. (6)).
    """
    check_tensor(analog, "analog", ndim=3, complex_=True)
    check_tensor(codebook, "codebook", ndim=2, complex_=True)
    if analog.shape[1] != codebook.shape[0]:
        raise ValueError(
            f"analog has {analog.shape[1]} antennas but the codebook {codebook.shape[0]}"
        )
    with torch.no_grad():
        corr = codebook.to(analog.dtype).mH @ analog  # [B, A, M_rf]
        mag = corr.abs()
        best, idx = mag.max(dim=1)
        ph = torch.gather(corr, 1, idx.unsqueeze(1)).squeeze(1)
        ph = ph / best.clamp_min(torch.finfo(best.dtype).tiny)
        norms = torch.linalg.vector_norm(analog, dim=1)
        ok = ((best >= 1.0 - atol) & ((norms - 1.0).abs() <= atol)).all(-1)
        srt = torch.sort(idx, dim=-1).values
        distinct = (srt[:, 1:] != srt[:, :-1]).all(-1)
    return idx, ph, ok & distinct


def codeword_scores_eq35(codebook: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    r"""Codeword scores of the initialization heuristic, paper 002 eq. (35).

    .. math:: s_a = \sum_{i=1}^I \frac{\check{\mathbf a}_a^H \mathbf R_i \check{\mathbf a}_a}
              {\mathrm{Tr}(\mathbf R_i)}

    The ``M_rf`` codewords with the largest scores (:func:`topk_codeword_indices`) form
    :math:`\mathbf A^{(0)}` ("the beams that maximize the SNR w.r.t. the sum of normalized
    channels"). Use ``R = h h^H`` (instantaneous) or the (estimated) covariance.

    Args:
        codebook: Complex ``[M, A]`` codebook.
        R: Complex ``[B, I, M, M]`` (estimated) channel covariances, Hermitian PSD.

    Returns:
        Real ``[B, A]`` scores (non-negative); users with zero trace contribute 0.
    """
    check_tensor(codebook, "codebook", ndim=2, complex_=True)
    check_tensor(R, "R", ndim=4, complex_=True)
    m = codebook.shape[0]
    if R.shape[-1] != m or R.shape[-2] != m:
        raise ValueError(f"R must be [B, I, {m}, {m}] to match the codebook, got {tuple(R.shape)}")
    c = codebook.to(R.dtype)
    quad = torch.einsum("ma,bimn,na->bia", c.conj(), R, c).real  # a^H R_i a
    tr = torch.diagonal(R, dim1=-2, dim2=-1).real.sum(-1, keepdim=True)
    safe = torch.where(tr > 0, tr, torch.ones_like(tr))
    return torch.where(tr > 0, quad / safe, torch.zeros_like(quad)).sum(1)


def _pair(value: tuple[int, int], name: str) -> tuple[int, int]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (O_x, O_y), got {value!r}")
    return check_int(value[0], f"{name}[0]"), check_int(value[1], f"{name}[1]")
