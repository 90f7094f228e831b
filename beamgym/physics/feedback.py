r"""The limited feedback link of paper 000: symbol alphabet, uniform quantizer and link error.

Paper 000 (Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse
Large-Scale MIMO Channels") feeds back, per user and coherence interval, ``d`` real symbols,
each the output of a ``b``-bit uniform quantizer on :math:`[-1, 1]` (Sec. III-A), received
with an additive error (Sec. III-D1, eq. (10)):

.. math:: \hat z = Q(z) + \Delta z, \qquad Q(z) = -1 + (s + \tfrac12)\Delta, \quad
          \Delta = 2/2^b, \quad s \in \{0, \dots, 2^b - 1\}.

This module is the ONE place of that link model, used by KD-EDN
(:mod:`agents.kd_edn.model`) and by the engineered ``beamspace_feedback`` scheme
(:mod:`agents.classical.beamspace_feedback`):

* the alphabet :func:`symbol_levels` and the quantizer :func:`quantization_symbols` /
  :func:`dequantize` / :func:`quantize` (straight-through, for training);
* the link error :func:`feedback_error`, :math:`\Delta z \sim \mathcal N(0, \sigma_z^2)` real
  i.i.d. per symbol, :math:`\sigma_z^2 = 0.1` (:data:`SIGMA_Z2`, Sec. III-D1). The paper
  writes :math:`\mathcal{CN}(0, \sigma_z^2)` on a REAL latent; we take the real Gaussian with
  the paper's total variance (docs/readings.md#000-feedback-error);
* the links :data:`LINKS`: ``"noisy"`` (the paper's link: the alphabet plus the error) and
  ``"noiseless"`` (the symbols, hence the bits, arrive intact);
* :func:`soft_dequantize`: the BS's conditional-mean (MMSE) estimate of a sent level from
  the received value;
* :func:`noisy_link_bits_bound`: an upper bound on the bits ``d`` uses of the noisy link can
  carry (docs/readings.md#000-feedback-accounting).
"""

from __future__ import annotations

import math

import torch

from beamgym._validation import check_int, check_tensor

__all__ = [
    "LINKS",
    "SIGMA_Z2",
    "SYMBOL_BITS",
    "dequantize",
    "feedback_error",
    "noisy_link_bits_bound",
    "quantization_symbols",
    "quantize",
    "soft_dequantize",
    "symbol_levels",
]

#: Feedback links: ``"noisy"`` (paper 000 Sec. III-D1: the alphabet plus the Gaussian error)
#: and ``"noiseless"`` (bits arrive intact).
LINKS: tuple[str, ...] = ("noisy", "noiseless")
#: Feedback error variance :math:`\sigma_z^2` of paper 000 Sec. III-D1.
SIGMA_Z2 = 0.1
#: Bits ``b`` per latent symbol of paper 000's committed models (Sec. III-A; the alphabet
#: of the noisy link has :math:`2^b = 16` levels).
SYMBOL_BITS = 4


def _check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
        raise ValueError(f"bits must be an integer >= 1, got {bits!r}")
    return bits


def symbol_levels(
    bits: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    r"""The :math:`2^b` reconstruction levels :math:`-1 + (s + \tfrac12)\Delta` of the quantizer.

    Args:
        bits: Bits ``b`` per symbol (``>= 1``).
        dtype: Real dtype of the result.
        device: Device of the result.

    Returns:
        Real ``[2^b]`` levels in :math:`(-1, 1)`, increasing; the peak :math:`|x| = 1 -
        2^{-b}`.
    """
    levels = 2 ** _check_bits(bits)
    s = torch.arange(levels, dtype=dtype, device=device)
    return -1.0 + (s + 0.5) * (2.0 / levels)


def quantization_symbols(z: torch.Tensor, bits: int) -> torch.Tensor:
    r"""Indices :math:`s \in \{0, \dots, 2^b - 1\}` of the uniform quantizer on :math:`[-1, 1]`.

    :math:`2^b` cells of width :math:`\Delta = 2/2^b`, reconstruction at the cell centres
    (mid-rise); ``z`` outside ``[-1, 1]`` is clipped.

    Args:
        z: Real tensor of any shape.
        bits: Bits ``b`` per symbol.

    Returns:
        Long tensor of the shape of ``z``.

    Raises:
        ValueError: ``z`` is not a real tensor or holds NaN/inf (a NaN has no cell).
    """
    levels = 2 ** _check_bits(bits)
    check_tensor(z, "z", complex_=False)
    s = torch.floor((z.detach().clamp(-1.0, 1.0) + 1.0) * (levels / 2.0))
    return s.clamp(0, levels - 1).to(torch.long)


def dequantize(
    symbols: torch.Tensor, bits: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    r"""Levels :math:`-1 + (s + \tfrac12)\Delta` of the symbols ``s`` (Long, any shape)."""
    levels = 2 ** _check_bits(bits)
    return -1.0 + (symbols.to(dtype) + 0.5) * (2.0 / levels)


def quantize(z: torch.Tensor, bits: int) -> torch.Tensor:
    r"""Uniform quantization of the latent (paper 000 Sec. III-A), straight-through gradient.

    :math:`Q(z) = -1 + (s + \tfrac12)\Delta` with :math:`s` from :func:`quantization_symbols`;
    the backward pass is the identity (straight-through estimator), so training sees the
    quantized values and still updates the encoder. ``bits == 0`` returns ``z`` unchanged.
    """
    if bits == 0:
        return z
    q = dequantize(quantization_symbols(z, bits), bits, z.dtype)
    return z + (q - z).detach()


def feedback_error(
    z: torch.Tensor, sigma_z2: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Received symbols :math:`\hat{\mathbf z} = \mathbf z + \Delta\mathbf z`, paper 000 eq. (10).

    :math:`\Delta z \sim \mathcal N(0, \sigma_z^2)` i.i.d. REAL (the paper's
    :math:`\mathcal{CN}` on a real latent, module docstring). Drawn on the CPU from
    ``generator`` in the dtype of ``z`` (so the same generator state gives the same numbers
    on every device).

    Args:
        z: Real (dequantized) symbols, any shape.
        sigma_z2: Error variance :math:`\sigma_z^2 \ge 0` (``0`` returns ``z`` itself).
        generator: CPU generator of the error.

    Returns:
        Real tensor of the shape, dtype and device of ``z``.
    """
    if sigma_z2 == 0:
        return z
    noise = torch.randn(z.shape, generator=generator, dtype=z.dtype, device="cpu")
    return z + math.sqrt(sigma_z2) * noise.to(z.device)


def soft_dequantize(
    y: torch.Tensor,
    bits: int,
    sigma_z2: float = 0.1,
    prior_var: float | None = None,
) -> torch.Tensor:
    r"""Conditional mean of the sent level given the received value (MMSE dequantization).

    The sender puts one of the :math:`2^b` levels :math:`\ell_s` of :func:`symbol_levels` on
    the link, the receiver gets :math:`y = \ell_s + \Delta z`, :math:`\Delta z \sim
    \mathcal N(0, \sigma_z^2)` (eq. (10)); with the prior :math:`p_s` on the levels the
    minimum mean squared error estimate is

    .. math:: \mathbb E[\ell \mid y] = \frac{\sum_s \ell_s\, p_s\, e^{-(y - \ell_s)^2 /
              2\sigma_z^2}}{\sum_s p_s\, e^{-(y - \ell_s)^2 / 2\sigma_z^2}},

    :math:`p_s` uniform (``prior_var=None``) or :math:`p_s \propto e^{-\ell_s^2 / 2 v}`
    (``prior_var=v``: levels near 0 more likely, the shrinkage of small sent values).

    Args:
        y: Real received values, any shape.
        bits: Bits ``b`` of the alphabet.
        sigma_z2: Error variance :math:`\sigma_z^2 > 0`.
        prior_var: Variance ``v > 0`` of the Gaussian prior on the levels, or ``None``.

    Returns:
        Real tensor of the shape, dtype and device of ``y``, in the levels' range.
    """
    _check_bits(bits)
    check_tensor(y, "y", complex_=False)
    if not (math.isfinite(sigma_z2) and sigma_z2 > 0):
        raise ValueError(f"sigma_z2 must be a finite number > 0, got {sigma_z2!r}")
    if prior_var is not None and not (math.isfinite(prior_var) and prior_var > 0):
        raise ValueError(f"prior_var must be a finite number > 0 or None, got {prior_var!r}")
    levels = symbol_levels(bits, y.dtype, y.device)
    logw = -(y[..., None] - levels).square() / (2.0 * sigma_z2)
    if prior_var is not None:
        logw = logw - levels.square() / (2.0 * prior_var)
    return (torch.softmax(logw, -1) * levels).sum(-1)


def noisy_link_bits_bound(d: int, bits: int = SYMBOL_BITS, sigma_z2: float = SIGMA_Z2) -> float:
    r"""Upper bound on the bits ``d`` uses of the noisy link can carry (per user).

    One use is the channel :math:`Y = X + Z`, :math:`X` on the :math:`2^b` levels of
    :func:`symbol_levels` (peak :math:`A = 1 - 2^{-b}`), :math:`Z \sim \mathcal N(0,
    \sigma_z^2)`. Its capacity :math:`C = \max_{p_X} I(X; Y)` obeys

    .. math:: C \le \min\Big(b,\ \tfrac12\log_2\big(1 + A^2/\sigma_z^2\big)\Big):

    :math:`I(X;Y) \le H(X) \le b`, and :math:`I(X;Y) = h(Y) - h(Z) \le \tfrac12\log_2(2\pi e
    (\mathrm{Var}X + \sigma_z^2)) - \tfrac12\log_2(2\pi e\sigma_z^2)` (the Gaussian maximizes
    differential entropy for a given variance) with :math:`\mathrm{Var}X \le
    \mathbb E X^2 \le A^2`. ``d`` independent uses carry at most ``d`` times that (the
    capacity of a memoryless channel is additive). At :math:`b = 4`,
    :math:`\sigma_z^2 = 0.1`: :math:`\tfrac12\log_2(1 + 0.8789/0.1) = 1.6456` bits per symbol.

    Args:
        d: Symbols per user (``>= 1``).
        bits: Bits ``b`` per symbol of the alphabet.
        sigma_z2: Error variance (``0``: the bound is ``d * b``).

    Returns:
        The bound in bits per user.
    """
    check_int(d, "d")
    _check_bits(bits)
    if not (math.isfinite(sigma_z2) and sigma_z2 >= 0):
        raise ValueError(f"sigma_z2 must be a finite number >= 0, got {sigma_z2!r}")
    if sigma_z2 == 0:
        return float(d * bits)
    peak = 1.0 - 2.0**-bits
    return d * min(float(bits), 0.5 * math.log2(1.0 + peak**2 / sigma_z2))
