"""Frozen dataclasses of batched tensors: problem instances and structured beamformers.

Every tensor field has the batch dimension first. Non-tensor fields (ints, floats, strings)
are per-dataset constants and are carried unchanged by indexing, concatenation and ``to``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar

import torch

__all__ = ["TensorDataclass", "HybridBeamformer"]

T = TypeVar("T", bound="TensorDataclass")


@dataclasses.dataclass(frozen=True)
class TensorDataclass:
    """Base class for frozen dataclasses whose tensor fields share a leading batch dimension."""

    def _tensor_items(self) -> list[tuple[str, torch.Tensor]]:
        return [
            (f.name, getattr(self, f.name))
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        ]

    @property
    def batch_size(self) -> int:
        """Size of the shared leading batch dimension."""
        items = self._tensor_items()
        if not items:
            raise ValueError(f"{type(self).__name__} has no tensor fields")
        return int(items[0][1].shape[0])

    @property
    def device(self) -> torch.device:
        """Device of the tensor fields."""
        return self._tensor_items()[0][1].device

    def check_batch(self) -> None:
        """Raise ``ValueError`` unless all tensor fields share the leading batch size."""
        items = self._tensor_items()
        b = items[0][1].shape[0] if items and items[0][1].ndim else None
        for name, t in items:
            if t.ndim == 0 or t.shape[0] != b:
                raise ValueError(
                    f"{type(self).__name__}.{name} has shape {tuple(t.shape)}; every tensor "
                    f"field must have the same leading batch size ({b})"
                )

    def to(self: T, device: str | torch.device) -> T:
        """Copy with every tensor field moved to ``device``."""
        return dataclasses.replace(self, **{n: t.to(device) for n, t in self._tensor_items()})

    def __getitem__(self: T, index: int | slice | torch.Tensor | Sequence[int]) -> T:
        """Select instances along the batch dimension (an int keeps a batch of one)."""
        if isinstance(index, int):
            b = self.batch_size
            if not -b <= index < b:
                raise IndexError(f"index {index} out of range for batch size {b}")
            index = slice(index, index + 1 if index != -1 else None)
        return dataclasses.replace(self, **{n: t[index] for n, t in self._tensor_items()})

    def __len__(self) -> int:
        return self.batch_size

    @classmethod
    def cat(cls: type[T], items: Sequence[T]) -> T:
        """Concatenate instances along the batch dimension."""
        if not items:
            raise ValueError("cat() needs at least one item")
        first = items[0]
        fields = {
            n: torch.cat([getattr(it, n) for it in items], 0) for n, _ in first._tensor_items()
        }
        return dataclasses.replace(first, **fields)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (tensors moved to CPU), for ``torch.save``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.detach().cpu() if isinstance(v, torch.Tensor) else v
        return out

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Inverse of :meth:`to_dict`."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - set(data)
        if missing:
            raise ValueError(f"{cls.__name__}: missing fields {sorted(missing)}")
        return cls(**{k: data[k] for k in names})


@dataclasses.dataclass(frozen=True)
class HybridBeamformer(TensorDataclass):
    """A hybrid beamformer ``W = W_a W_d`` (paper 000 Sec. IV, paper 003 eq. (1)).

    Attributes:
        analog: ``[B, N, N_RF]`` complex analog precoder ``W_a`` (paper 003's ``F``).
        digital: ``[B, N_RF, K*M]`` complex digital precoder ``W_d`` (paper 003's ``W``).
    """

    analog: torch.Tensor
    digital: torch.Tensor

    def full(self) -> torch.Tensor:
        """The overall ``[B, N, K*M]`` precoder ``W_a W_d``."""
        return self.analog @ self.digital
