"""Input checks shared by the physics functions, envs and agents.

Every check raises :class:`ValueError` with a message that names the argument, what was
expected and what was found, so bad input never turns into a silent wrong number or a crash
deep inside a linear-algebra routine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "check_tensor",
    "check_number",
    "check_finite",
    "check_positive",
    "check_nonnegative",
    "check_int",
    "check_probability",
    "check_same_batch",
]


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` if ``x`` holds NaN or inf (cheap on the happy path)."""
    if x.is_complex():
        real = torch.view_as_real(x.resolve_conj()) if x.is_conj() else torch.view_as_real(x)
    elif x.is_floating_point():
        real = x
    else:
        return x
    # Fast path: a sum of finite numbers is finite (barring float overflow, which the exact
    # element-wise check below then clears); one reduction instead of three passes.
    if real.numel() == 0 or bool(torch.isfinite(real.sum())):
        return x
    if not bool(torch.isfinite(real).all()):
        bad = ~torch.isfinite(real)
        n_nan = int(torch.isnan(real).sum())
        raise ValueError(
            f"{name} contains non-finite values ({int(bad.sum())} non-finite real components "
            f"of {real.numel()}, {n_nan} NaN); check how it was computed"
        )
    return x


def check_tensor(
    x: Any,
    name: str,
    *,
    ndim: int | None = None,
    min_ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
    complex_: bool | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """Validate a tensor argument.

    Args:
        x: The value to check. Must already be a :class:`torch.Tensor`.
        name: Argument name used in error messages.
        ndim: Exact number of dimensions, if given.
        min_ndim: Minimum number of dimensions (batch dimensions may precede), if given.
        shape: Expected trailing shape; ``None`` entries are wildcards.
        complex_: ``True`` requires a complex dtype, ``False`` a real floating dtype.
        finite: Reject NaN/inf.

    Returns:
        ``x`` unchanged.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor, got {type(x).__name__}; "
            "convert with torch.as_tensor(...)"
        )
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions (batch first), "
            f"got shape {tuple(x.shape)}"
        )
    if shape is not None:
        if x.ndim < len(shape):
            raise ValueError(
                f"{name} must have trailing shape {_fmt(shape)}, got shape {tuple(x.shape)}"
            )
        tail = x.shape[x.ndim - len(shape) :]
        for want, got in zip(shape, tail, strict=True):
            if want is not None and want != got:
                raise ValueError(
                    f"{name} must have trailing shape {_fmt(shape)}, got shape {tuple(x.shape)}"
                )
    if complex_ is True and not x.is_complex():
        raise ValueError(f"{name} must be complex (complex64 or complex128), got dtype {x.dtype}")
    if complex_ is False and not x.is_floating_point():
        raise ValueError(f"{name} must be a real floating tensor, got dtype {x.dtype}")
    if finite:
        check_finite(x, name)
    return x


def _fmt(shape: Sequence[int | None]) -> str:
    return "[..., " + ", ".join("*" if s is None else str(s) for s in shape) + "]"


def check_same_batch(*pairs: tuple[torch.Tensor, str], batch_dims: int = 1) -> None:
    """Raise if the leading ``batch_dims`` dimensions of the given tensors differ."""
    ref_t, ref_n = pairs[0]
    for t, n in pairs[1:]:
        if t.shape[:batch_dims] != ref_t.shape[:batch_dims]:
            raise ValueError(
                f"{n} has batch shape {tuple(t.shape[:batch_dims])} but {ref_n} has "
                f"{tuple(ref_t.shape[:batch_dims])}; they must match"
            )


def check_number(value: Any, name: str) -> float:
    """Return ``float(value)``, raising unless it is a finite real number (not a bool)."""
    return _as_float(value, name)


def _as_float(value: Any, name: str) -> float:
    if isinstance(value, torch.Tensor | np.ndarray):
        raise ValueError(f"{name} must be a Python number, got an array")
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number, got {value!r}") from err
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def check_positive(value: Any, name: str) -> float:
    """Return ``float(value)``, raising unless it is finite and > 0."""
    v = _as_float(value, name)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v


def check_nonnegative(value: Any, name: str) -> float:
    """Return ``float(value)``, raising unless it is finite and >= 0."""
    v = _as_float(value, name)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def check_probability(value: Any, name: str, *, open_: bool = True) -> float:
    """Return ``float(value)``, raising unless it lies in (0, 1) (or [0, 1] if not ``open_``)."""
    v = _as_float(value, name)
    if (open_ and not 0 < v < 1) or (not open_ and not 0 <= v <= 1):
        interval = "(0, 1)" if open_ else "[0, 1]"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return v


def check_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as int, raising unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)
