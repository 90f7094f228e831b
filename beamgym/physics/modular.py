r"""Structure of modular hybrid receivers (paper 004 Sec. II-B): panels and connectivity.

A modular receiver with ``P`` panels of ``N`` antennas and ``L`` output ports each applies the
block-diagonal receive beamformer

.. math:: \mathbf W = \operatorname{blkdiag}\{\mathbf W_1, \dots, \mathbf W_P\}
          \in \mathbb C^{M \times LP},\qquad M = PN,

(paper 004 eq. (5)) followed by the binary panel-to-CPU connectivity
:math:`\mathbf A \in \{0, 1\}^{LP \times T}`; the CPU sees the equivalent channel
:math:`\mathbf G = \mathbf W \mathbf A \in \mathbb C^{M \times T}` (paper 004 Sec. II-C).

beamgym stores ``W`` compactly as its diagonal blocks, the **panels** tensor
``[batch, P, N, L]``: panel ``p`` occupies rows ``p*N:(p+1)*N`` and columns ``p*L:(p+1)*L`` of
``W``, so output port ``l`` of panel ``p`` is row ``p*L + l`` of ``A``.

References:
    [004] Levy, Shlezinger, "Rapid and Power-Aware Learned Optimization for Modular Receive
          Beamforming".
"""

from __future__ import annotations

import torch

from beamgym._validation import check_int, check_tensor

__all__ = [
    "connectivity_matrix",
    "block_diag_panels",
    "panels_from_block_diag",
    "equivalent_channel",
]


def _wax_connectivity(lp: int, t: int, where: str) -> torch.Tensor:
    """The connectivity rule of docs/readings.md#004-connectivity for ``lp`` ports, ``t`` inputs."""
    if lp < t:
        raise ValueError(
            f"connectivity{where}: L*P = {lp} panel outputs cannot feed T = {t} CPU inputs "
            f"(G = W A would have rank <= {lp} < T and eq. (6) is undefined); "
            "use T <= L*P"
        )
    r = lp - t
    if r > t:
        raise ValueError(
            f"connectivity{where}: the WAX rule (first T rows I_T, then [I_r | 1]) is defined "
            f"only for L*P - T <= T, got L*P - T = {r} > T = {t}; use connectivity_blocks=c "
            "to replicate a smaller pattern as I_c kron A(L, P/c, T/c) (paper 004 Scenario 6)"
        )
    a = torch.zeros(lp, t, dtype=torch.float64)
    a[:t] = torch.eye(t, dtype=torch.float64)
    a[t:, :r] = torch.eye(r, dtype=torch.float64)
    a[t:, r:] = 1.0
    return a


def connectivity_matrix(
    L: int,
    P: int,
    T: int,
    *,
    blocks: int = 1,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    r"""Binary panel-to-CPU connectivity :math:`\mathbf A` of paper 004 eq. (5).

    The paper does not print ``A``. Following the authors' experiments (the WAX-decomposition
    example, docs/readings.md#004-connectivity), for ``LP`` panel outputs and ``T`` CPU inputs:

    .. math:: \mathbf A = \begin{bmatrix} \mathbf I_T \\
              [\,\mathbf I_r \;\; \mathbf 1_{r \times (T-r)}\,] \end{bmatrix}
              \in \{0,1\}^{LP \times T}, \qquad r = LP - T,

    i.e. the first ``T`` ports feed one CPU input each and each remaining port ``T + i``
    feeds input ``i`` and the last ``T - r`` inputs. For ``LP = 8, T = 5`` (Scenarios 1-5)
    the last three rows are ``[1 0 0 1 1], [0 1 0 1 1], [0 0 1 1 1]``.

    Generalization (our choice, documented): the rule is used verbatim for any
    ``T <= LP <= 2T`` (``LP = T`` gives ``A = I_T``, the partially connected architecture the
    paper mentions after eq. (5); ``LP = 2T`` gives ``[I_T; I_T]``). It is undefined for
    ``LP < T`` (``G`` could not have full column rank) and for ``LP > 2T``; there, and for
    the scaled-up Scenario 6 (``P = 16, T = 40``), use ``blocks = c``, which replicates the
    rule as the Kronecker product

    .. math:: \mathbf A = \mathbf I_c \otimes \mathbf A(L, P/c, T/c),

    matching the paper's panel scaling ``{I_c ⊗ α_j}`` of Sec. III-B3 (panels ``2i, 2i+1`` of
    Scenario 6 with ``c = 8`` form a copy of Scenario 5). Note that Scenario 6's sizes
    (``LP = 64, T = 40``) also satisfy ``LP <= 2T``, so ``blocks = 1`` silently gives the
    direct rule, a different matrix: pass ``blocks = 8`` to reproduce the paper.

    Args:
        L: Output ports per panel, ``L``.
        P: Number of panels, ``P`` (must be divisible by ``blocks``).
        T: Number of CPU inputs, ``T`` (must be divisible by ``blocks``).
        blocks: Number ``c`` of Kronecker copies of the base pattern (default 1).
        dtype: Real dtype of the result.
        device: Device of the result.

    Returns:
        ``[L*P, T]`` tensor of zeros and ones with full column rank ``T``.

    Raises:
        ValueError: For non-positive sizes, sizes not divisible by ``blocks``, or a block
            where the rule is undefined (``L*P/c < T/c`` or ``L*P/c > 2 T/c``).
    """
    L = check_int(L, "L")
    P = check_int(P, "P")
    T = check_int(T, "T")
    blocks = check_int(blocks, "blocks")
    if P % blocks or T % blocks:
        raise ValueError(
            f"connectivity blocks={blocks} must divide both P={P} and T={T} "
            "(A = I_c kron A(L, P/c, T/c))"
        )
    where = "" if blocks == 1 else f" (each of the {blocks} blocks)"
    base = _wax_connectivity(L * (P // blocks), T // blocks, where)
    a = torch.kron(torch.eye(blocks, dtype=torch.float64), base)
    return a.to(dtype=dtype, device=device)


def _check_panels(panels: torch.Tensor, name: str = "panels") -> tuple[int, int, int]:
    check_tensor(panels, name, min_ndim=3, complex_=True, finite=False)
    p, n, l_ = panels.shape[-3:]
    return int(p), int(n), int(l_)


def block_diag_panels(panels: torch.Tensor) -> torch.Tensor:
    r"""Expand panels to the block-diagonal :math:`\mathbf W` of paper 004 eq. (5).

    .. math:: \mathbf W = \operatorname{blkdiag}\{\mathbf W_1, \dots, \mathbf W_P\}

    Differentiable (built with an einsum against :math:`\mathbf I_P`, no in-place writes).

    Args:
        panels: ``[..., P, N, L]`` complex panel weights :math:`\mathbf W_p`.

    Returns:
        ``[..., P*N, P*L]`` complex block-diagonal matrix, same dtype as ``panels``.
    """
    p, n, l_ = _check_panels(panels)
    eye = torch.eye(p, dtype=panels.dtype, device=panels.device)
    full = torch.einsum("...pnl,pq->...pnql", panels, eye)
    return full.reshape(*panels.shape[:-3], p * n, p * l_)


def panels_from_block_diag(W: torch.Tensor, P: int) -> torch.Tensor:
    r"""Diagonal blocks of an ``M × LP`` matrix: the block-diagonal mask of paper 004 eq. (10).

    Keeps :math:`[\mathbf W]_{i,j}` only where :math:`\lfloor i/N \rfloor = \lfloor j/L
    \rfloor` (the Kronecker delta of eq. (10), with 0-based indices) and returns those entries
    as panels; off-diagonal-block entries are discarded. Use it to restrict a full ``M × LP``
    gradient or update to the feasible block structure.

    Args:
        W: ``[..., M, LP]`` complex matrix with ``M`` and ``LP`` divisible by ``P``.
        P: Number of panels.

    Returns:
        ``[..., P, M/P, LP/P]`` complex panels.
    """
    check_tensor(W, "W", min_ndim=2, complex_=True, finite=False)
    P = check_int(P, "P")
    m, lp = W.shape[-2:]
    if m % P or lp % P:
        raise ValueError(f"W has shape [..., {m}, {lp}]; both M and L*P must be divisible by P={P}")
    n, l_ = m // P, lp // P
    blocks = W.reshape(*W.shape[:-2], P, n, P, l_)
    diag = torch.diagonal(blocks, dim1=-4, dim2=-2)  # [..., N, L, P]
    return diag.movedim(-1, -3)


def equivalent_channel(panels: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    r"""Equivalent combiner :math:`\mathbf G = \mathbf W \mathbf A` (paper 004 Sec. II-C).

    .. math:: [\mathbf G]_{pN + n,\, t} = \sum_{l} [\mathbf W_p]_{n,l}\,
              [\mathbf A]_{pL + l,\, t}

    computed panel by panel without materializing the block-diagonal ``W``.

    Args:
        panels: ``[..., P, N, L]`` complex panel weights.
        A: ``[P*L, T]`` real connectivity matrix (see :func:`connectivity_matrix`).

    Returns:
        ``[..., P*N, T]`` complex ``G`` in the dtype of ``panels``.
    """
    p, n, l_ = _check_panels(panels)
    check_tensor(A, "A", ndim=2, complex_=False)
    if A.shape[0] != p * l_:
        raise ValueError(
            f"A must have P*L = {p * l_} rows to match panels of shape [..., {p}, {n}, {l_}], "
            f"got A of shape {tuple(A.shape)}"
        )
    t = A.shape[1]
    a = A.to(device=panels.device, dtype=panels.real.dtype).reshape(p, l_, t).to(panels.dtype)
    g = torch.einsum("...pnl,plt->...pnt", panels, a)
    return g.reshape(*panels.shape[:-3], p * n, t)
