"""Complex <-> real packing of channels and beamformers.

This is the one place where complex beamformers and channels become real float vectors
(observations, actions, network inputs) and back.

Convention (paper 000 Sec. III-A1): a complex array ``X`` with trailing shape ``S`` becomes
``[vec(Re X), vec(Im X)]`` of length ``2 * prod(S)``. ``vec`` here flattens in row-major
(C) order, not the column-major order of the paper's ``vec``; the two differ only by a fixed
permutation, which no learned map or agent can tell apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from beamgym._validation import check_tensor

__all__ = ["pack_complex", "unpack_complex", "packed_size"]


def packed_size(shape: Sequence[int]) -> int:
    """Length of the real vector that packs a complex array of trailing shape ``shape``."""
    return 2 * math.prod(shape)


def pack_complex(x: torch.Tensor, n_trailing: int) -> torch.Tensor:
    """Pack the last ``n_trailing`` dims of a complex tensor into a real vector.

    Args:
        x: Complex tensor of shape ``[*batch, *S]`` with ``len(S) == n_trailing``.
        n_trailing: Number of trailing (non-batch) dimensions to pack.

    Returns:
        Real tensor ``[*batch, 2 * prod(S)]`` holding ``[vec(Re x), vec(Im x)]``.
    """
    check_tensor(x, "x", min_ndim=n_trailing, complex_=True, finite=False)
    batch = x.shape[: x.ndim - n_trailing]
    flat = x.reshape(*batch, -1)
    return torch.cat([flat.real, flat.imag], dim=-1)


def unpack_complex(v: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`pack_complex`.

    Args:
        v: Real tensor ``[*batch, 2 * prod(shape)]``.
        shape: Trailing complex shape ``S`` to restore.

    Returns:
        Complex tensor ``[*batch, *shape]`` (complex64 for float32 input, complex128 for float64).
    """
    check_tensor(v, "v", min_ndim=1, complex_=False, finite=False)
    n = math.prod(shape)
    if v.shape[-1] != 2 * n:
        raise ValueError(
            f"packed vector must have last dimension 2*prod({tuple(shape)}) = {2 * n}, "
            f"got {v.shape[-1]}"
        )
    z = torch.complex(v[..., :n], v[..., n:])
    return z.reshape(*v.shape[:-1], *shape)
