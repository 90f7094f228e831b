r"""Array response vectors: uniform linear (ULA) and uniform planar (UPA) arrays.

References:
    [000] Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse
          Large-Scale MIMO Channels".
    [002] Schynol, Pesavento, "Hybrid Downlink Beamforming with Outage Constraints under
          Imperfect CSI using Model-Driven Deep Learning".
    [003] Nguyen et al., "Fast Deep Unfolded Hybrid Beamforming in Multiuser Large MIMO Systems".
"""

from __future__ import annotations

import torch

from beamgym._validation import check_int, check_positive, check_tensor
from beamgym.config import Precision, complex_dtype, real_dtype

__all__ = ["ula_response", "upa_response"]


def ula_response(
    theta: torch.Tensor,
    n: int,
    spacing: float = 0.5,
    *,
    normalize: bool = True,
    precision: Precision | None = None,
) -> torch.Tensor:
    r"""Steering vector of an ``n``-element ULA, paper 000 eq. (6) and paper 003 eq. (3).

    .. math::
        \mathbf a_n(\theta, d/\lambda) = \frac{1}{\sqrt n}
        \left[1, e^{j 2\pi \frac{d}{\lambda}\sin\theta}, \dots,
        e^{j 2\pi \frac{d}{\lambda}(n-1)\sin\theta}\right]^T

    With ``spacing = d/λ = 1/2`` this is :math:`e^{j\pi q \sin\theta}/\sqrt n`, the form of
    paper 003 eq. (3).

    Args:
        theta: Angles of any shape ``[...]``, real float, in radians.
        n: Number of antenna elements.
        spacing: Antenna spacing in wavelengths, ``d / λ`` (default half wavelength).
        normalize: Include the ``1/sqrt(n)`` factor (unit-norm vector). ``False`` gives
            unit-modulus entries.
        precision: ``"single"``/``"double"``; default follows ``theta``'s dtype.

    Returns:
        Complex tensor ``[..., n]``.
    """
    check_tensor(theta, "theta", complex_=False)
    n = check_int(n, "n")
    spacing = check_positive(spacing, "spacing")
    rdtype = theta.dtype if precision is None else real_dtype(precision)
    cdtype = torch.complex64 if rdtype == torch.float32 else torch.complex128
    if precision is not None:
        cdtype = complex_dtype(precision)
    theta = theta.to(rdtype)
    q = torch.arange(n, dtype=rdtype, device=theta.device)
    phase = 2.0 * torch.pi * spacing * torch.sin(theta).unsqueeze(-1) * q
    a = torch.polar(torch.ones_like(phase), phase).to(cdtype)
    if normalize:
        a = a / (n**0.5)
    return a


def upa_response(
    theta_x: torch.Tensor,
    theta_y: torch.Tensor,
    n_x: int,
    n_y: int,
    spacing: float = 0.5,
    *,
    normalize: bool = True,
    precision: Precision | None = None,
) -> torch.Tensor:
    r"""Steering vector of an ``n_x × n_y`` UPA as a Kronecker product (paper 002 Sec. V-A-4).

    .. math:: \mathbf a(\theta_x, \theta_y) = \mathbf a_{n_x}(\theta_x) \otimes
              \mathbf a_{n_y}(\theta_y)

    The element index is ``i_x * n_y + i_y`` (x outer, y inner), matching
    :math:`\mathbf R = \mathbf R_x \otimes \mathbf R_y` in paper 002 Sec. V-A-4. ``theta_x``
    and ``theta_y`` are the effective per-axis angles (the direction cosines of the axes are
    ``sin(theta_x)`` and ``sin(theta_y)``).

    Args:
        theta_x: Angles ``[...]`` along the x axis (radians).
        theta_y: Angles ``[...]`` along the y axis (radians), same shape as ``theta_x``.
        n_x: Elements along x.
        n_y: Elements along y.
        spacing: Element spacing in wavelengths on both axes.
        normalize: Unit-norm result (``1/sqrt(n_x n_y)``) if ``True``.
        precision: ``"single"``/``"double"``; default follows the angles' dtype.

    Returns:
        Complex tensor ``[..., n_x * n_y]``.
    """
    check_tensor(theta_y, "theta_y", complex_=False)
    if theta_x.shape != theta_y.shape:
        raise ValueError(
            f"theta_x and theta_y must have the same shape, got {tuple(theta_x.shape)} "
            f"and {tuple(theta_y.shape)}"
        )
    ax = ula_response(theta_x, n_x, spacing, normalize=normalize, precision=precision)
    ay = ula_response(theta_y, n_y, spacing, normalize=normalize, precision=precision)
    return (ax.unsqueeze(-1) * ay.unsqueeze(-2)).reshape(*ax.shape[:-1], n_x * n_y)
