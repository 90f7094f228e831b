"""The single precision switch of beamgym (modelled on Sionna's ``phy/config.py``).

Every physics function and environment takes ``precision="single"`` (the default:
``complex64`` / ``float32``) or ``precision="double"`` (``complex128`` / ``float64``).
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["Precision", "complex_dtype", "real_dtype", "resolve_device", "PRECISIONS"]

Precision = Literal["single", "double"]
PRECISIONS: tuple[str, ...] = ("single", "double")

_COMPLEX = {"single": torch.complex64, "double": torch.complex128}
_REAL = {"single": torch.float32, "double": torch.float64}


def _check(precision: str) -> str:
    if precision not in _COMPLEX:
        raise ValueError(
            f"precision must be 'single' (complex64/float32) or 'double' "
            f"(complex128/float64), got {precision!r}"
        )
    return precision


def complex_dtype(precision: Precision = "single") -> torch.dtype:
    """Complex dtype of a precision: ``complex64`` for "single", ``complex128`` for "double"."""
    return _COMPLEX[_check(precision)]


def real_dtype(precision: Precision = "single") -> torch.dtype:
    """Real dtype of a precision: ``float32`` for "single", ``float64`` for "double"."""
    return _REAL[_check(precision)]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn ``None``/str/device into a :class:`torch.device`, checking CUDA availability.

    Raises:
        ValueError: naming ``device`` if it is not ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (or
            CUDA is not available, or ``N`` is not a visible GPU).
    """
    if not isinstance(device, str | torch.device | None):
        raise ValueError(
            f"device must be a str or torch.device such as 'cpu' or 'cuda', got "
            f"{type(device).__name__} {device!r}"
        )
    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r} (not a torch device)"
        ) from err
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(
            f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r} (beamgym runs on CPU "
            "and CUDA only)"
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {str(dev)!r} was requested but CUDA is not available on this machine; "
            "pass device='cpu'"
        )
    return dev
