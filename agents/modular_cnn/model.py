r"""The modular-receiver CNN of paper 004 Sec. V-A (after its ref. [27]): the network.

Paper 004 Sec. V-A: "CNN: a CNN based on the architecture of [27] (Dong, Zhang, Li, IEEE
Access 2020), trained to map channel realizations :math:`\{\mathbf H[b]\}` into the phases of
:math:`\mathbf W` that maximize the channel-rate R. This approach is extremely
parameterized." Ref. [27]'s framework feeds the channel matrix, real and imaginary parts as
input planes, through convolutional layers with batch normalization and ReLU, then
fully connected layers whose output is mapped to unit-modulus analog weights, and trains
it without labels on the rate. Our realization (documented choices; the paper prints no
layer sizes):

* input: ``[batch, 2B, M, K]``, the planes :math:`\Re\mathbf H[b], \Im\mathbf H[b]` of the
  receiver's ``H_est`` (CN(0,1) entries need no further scaling);
* features: ``len(channels)`` blocks Conv2d(3x3, padding 1) -> BatchNorm2d -> ReLU, then a 2x2
  max-pool; head: Linear -> BatchNorm1d -> ReLU -> Linear to ``2 P N L`` outputs;
* output: :math:`[\mathbf W]_{p,n,l} = z/|z|`, :math:`z = x_{\rm re} + j x_{\rm im}`
  (a phase without a :math:`2\pi` wrap; eq. 10 applied to the network output), then the env's
  hard projection (eq. 10, or eq. 20 "quantizing the produced phases" for C3);
* loss (:mod:`agents.modular_cnn.train`): :math:`-R(\mathbf W\mathbf A)/K` (eq. 6, per-user
  nats) on ``H_est``; Adam; every step draws a fresh batch from the training generator (an
  unlimited training set; the CNN needs far more data than U-PGA+M's few thousand
  parameters).

The network is tied to the sizes ``(B, M, K)`` and ``(P, N, L)`` of its training env (no
transfer), unlike U-PGA+M.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from beamgym.physics.projections import unit_modulus

__all__ = ["CNN_KEYS", "ENV_ID", "CNNBeamformer"]

ENV_ID = "beamgym/ModularUplink-v0"
#: Env fields the CNN's shapes depend on (a checkpoint must share them with the env).
CNN_KEYS: tuple[str, ...] = ("T", "P", "L", "N", "B", "K", "connectivity_blocks")


class CNNBeamformer(nn.Module):
    """Ref. [27]-style CNN mapping ``H_est`` ``[b, B, M, K]`` to panels ``[b, P, N, L]``.

    Args:
        B, M, K: Bins, antennas and users of the input.
        panel_shape: ``(P, N, L)`` of the output.
        channels: Output channels of the convolutional blocks.
        hidden: Width of the hidden fully connected layer.
    """

    def __init__(
        self,
        B: int,
        M: int,
        K: int,
        panel_shape: tuple[int, int, int],
        channels: tuple[int, ...] = (16, 16),
        hidden: int = 48,
    ) -> None:
        super().__init__()
        self.arch = {
            "B": int(B),
            "M": int(M),
            "K": int(K),
            "panel_shape": [int(s) for s in panel_shape],
            "channels": [int(c) for c in channels],
            "hidden": int(hidden),
        }
        layers: list[nn.Module] = []
        c_in = 2 * B
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        flat = c_in * math.ceil(M / 2) * math.ceil(K / 2)
        self.n_out = 2 * math.prod(panel_shape)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, self.n_out),
        )
        self.panel_shape = tuple(panel_shape)

    def forward(self, H: torch.Tensor) -> torch.Tensor:
        """``[b, B, M, K]`` complex channels -> ``[b, P, N, L]`` complex unit-modulus panels."""
        x = torch.cat([H.real, H.imag], dim=1).float()  # [b, 2B, M, K]
        y = self.head(self.features(x))
        half = self.n_out // 2
        z = torch.complex(y[:, :half], y[:, half:]).reshape(-1, *self.panel_shape)
        return unit_modulus(z)

    @property
    def num_parameters(self) -> int:
        """Number of learned scalars (batch-norm running statistics excluded)."""
        return sum(p.numel() for p in self.parameters())
