r"""The unfolded PGA network of paper 003 (Sec. III-B, Fig. 1, Algorithm 1) and its loss.

Paper 003 (Nguyen et al., *Fast Deep Unfolded Hybrid Beamforming in Multiuser Large MIMO
Systems*) unrolls ``I`` iterations of its projected gradient ascent (PGA) into ``I`` layers.
Layer ``i + 1`` maps :math:`(\mathbf F_{(i)}, \mathbf W_{(i)})` to
:math:`(\mathbf F_{(i+1)}, \mathbf W_{(i+1)})` by ``J`` analog steps and one digital step,

.. math::
    \mathbf F_{(i,j+1)} = \mathcal P_{\rm uc}\big(\mathbf F_{(i,j)} + \mu_{(i,j)}
        \nabla_{\mathbf F} R(\mathbf F_{(i,j)}, \mathbf W_{(i)})\big)\ \ (j = 0..J-1,
        \text{ eq. (6), (7)}),\qquad \mathbf F_{(i+1)} = \mathbf F_{(i,J)}

.. math::
    \mathbf W_{(i+1)} = \sqrt{P_t}\,\frac{\tilde{\mathbf W}}{\|\mathbf F_{(i+1)}
        \tilde{\mathbf W}\|_F},\quad \tilde{\mathbf W} = \mathbf W_{(i)} + \lambda_{(i)}
        \nabla_{\mathbf W} R(\mathbf F_{(i+1)}, \mathbf W_{(i)})\ \ \text{(eq. (8), (9))}

with the closed-form gradients of Theorem 1 (eq. (10)-(11), as printed) and the start of eq.
(12)-(13). The only trainable parameters are the step sizes :math:`\boldsymbol\mu \in
\mathbb R^{I\times J}` and :math:`\boldsymbol\lambda \in \mathbb R^{I}`, initialized at the
paper's fixed steps :math:`\mu = 0.01`, :math:`\lambda = 10^{-4}` (Sec. IV). The layer is the
library's :func:`agents.classical.pga_hybrid.pga` / :func:`~agents.classical.pga_hybrid.
pga_iteration` (pure and differentiable in the step sizes), so the unfolded model and the
conventional PGA share one implementation: with untrained steps the model IS the paper's PGA.

Loss, eq. (14): the sum-rate (bit/s/Hz) of the output :math:`(\mathbf F_{(I)}, \mathbf
W_{(I)})`; minimized as its negative batch mean. The paper trains on the output only;
``loss="layer-sum"`` (sum of the rates of all layer outputs, a common deep-unfolding variant)
is offered as an option and documented as such.

Step-size parametrizations (the paper trains the steps directly):

* ``"linear"`` (paper): the parameters are :math:`\mu, \lambda` themselves;
* ``"log"``: the parameters are :math:`\log\mu, \log\lambda` (steps stay positive and Adam's
  update is relative, which suits steps spanning orders of magnitude).

Step convention (module docstring of :mod:`agents.classical.pga_hybrid`): the steps multiply
eq. (10)-(11) as printed, i.e. the Wirtinger derivative of the rate in nats; a step ``mu``
equals a step ``mu ln(2)/2`` on the steepest-ascent direction of the rate in bits.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from agents.rules.pga import PAPER_LAMBDA, PAPER_MU, pga
from beamgym.physics.metrics import hybrid_sum_rate
from beamgym.structures import HybridBeamformer

__all__ = [
    "LOSSES",
    "PARAMETRIZATIONS",
    "UnfoldedPGA",
    "unfolded_pga_loss",
]

#: Step-size parametrizations of :class:`UnfoldedPGA`.
PARAMETRIZATIONS: tuple[str, ...] = ("linear", "log")
#: Training losses of :func:`unfolded_pga_loss`.
LOSSES: tuple[str, ...] = ("output", "layer-sum")


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_positive(value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


class UnfoldedPGA(nn.Module):
    r"""Paper 003's unfolded PGA: ``I`` layers of ``J`` analog steps and one digital step.

    Args:
        I: Number of layers (outer PGA iterations), ``I >= 1``.
        J: Inner analog steps per layer, ``J >= 1``.
        mu_init: Initial analog step :math:`\mu_{(i,j)}` (paper Sec. IV: 0.01).
        lam_init: Initial digital step :math:`\lambda_{(i)}` (paper Sec. IV: 1e-4).
        parametrization: ``"linear"`` (paper: train the steps) or ``"log"`` (train their
            logarithms).
        dtype: Real dtype of the parameters (``torch.float64`` for complex128 channels).

    Attributes:
        raw_mu: ``[I, J]`` trainable analog steps (or their logs).
        raw_lam: ``[I]`` trainable digital steps (or their logs).

    Raises:
        ValueError: for bad sizes, non-positive initial steps or an unknown parametrization.
    """

    def __init__(
        self,
        I: int = 10,  # noqa: E741  (the paper's symbol)
        J: int = 5,
        *,
        mu_init: float = PAPER_MU,
        lam_init: float = PAPER_LAMBDA,
        parametrization: str = "linear",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.I = _check_int(I, "I", 1)
        self.J = _check_int(J, "J", 1)
        mu_init = _check_positive(mu_init, "mu_init")
        lam_init = _check_positive(lam_init, "lam_init")
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(
                f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}"
            )
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.parametrization = parametrization
        f = math.log if parametrization == "log" else float
        self.raw_mu = nn.Parameter(torch.full((I, J), f(mu_init), dtype=dtype))
        self.raw_lam = nn.Parameter(torch.full((I,), f(lam_init), dtype=dtype))

    def extra_repr(self) -> str:
        """Sizes and parametrization for ``repr``."""
        return f"I={self.I}, J={self.J}, parametrization={self.parametrization!r}"

    def steps(self) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The step sizes :math:`(\boldsymbol\mu, \boldsymbol\lambda)`: ``[I, J]`` and ``[I]``."""
        if self.parametrization == "log":
            return self.raw_mu.exp(), self.raw_lam.exp()
        return self.raw_mu, self.raw_lam

    def forward(
        self,
        H: torch.Tensor,
        power: torch.Tensor | float,
        noise_var: torch.Tensor | float = 1.0,
        *,
        layers: int | None = None,
    ) -> list[HybridBeamformer]:
        r"""Run the unfolded network (paper 003 Algorithm 1 with the learned steps).

        Args:
            H: ``[B, K, N]`` complex channel known at the BS (rows :math:`\mathbf h_k^H`),
                ``N >= K``; the number of RF chains is ``M = K`` (eq. (12)).
            power: Power budget :math:`P_t` (linear), a number or a ``[B]`` tensor.
            noise_var: Noise variance :math:`\sigma_n^2`: scalar, ``[B]`` or ``[B, K]``.
            layers: Run only the first ``layers`` layers (default all ``I``).

        Returns:
            All layer outputs ``[(F_(0), W_(0)), ..., (F_(I), W_(I))]`` as
            :class:`~beamgym.structures.HybridBeamformer` (``I + 1`` entries; entry 0 is the
            start of eq. (12)-(13)); differentiable in the step sizes.
        """
        n = self.I if layers is None else _check_int(layers, "layers", 0)
        if n > self.I:
            raise ValueError(f"layers must be <= I={self.I}, got {n}")
        rdtype = H.real.dtype if H.is_complex() else H.dtype
        mu, lam = self.steps()
        mu, lam = mu.to(rdtype), lam.to(rdtype)
        its, _ = pga(
            H,
            power,
            noise_var,
            mu=[mu[i] for i in range(n)],
            lam=[lam[i] for i in range(n)],
            I=n,
            J=self.J,
            trace=True,
        )
        return its


def unfolded_pga_loss(
    outputs: list[HybridBeamformer],
    H: torch.Tensor,
    noise_var: torch.Tensor | float = 1.0,
    *,
    loss: str = "output",
) -> torch.Tensor:
    r"""Training loss of paper 003 eq. (14): the negative mean sum-rate of the output.

    .. math:: \mathcal L(\boldsymbol\mu, \boldsymbol\lambda) = -\frac1B\sum_{b}
              R\big(\mathbf F_{(I)}^{[b]}, \mathbf W_{(I)}^{[b]}\big)\qquad\text{(eq. (14),
              negated for minimization)}

    with :math:`R` the sum-rate eq. (4) in bit/s/Hz. ``loss="layer-sum"`` instead sums the
    rates of all layer outputs :math:`i = 1..I` (not the paper's loss; an option).

    Args:
        outputs: The layer outputs of :meth:`UnfoldedPGA.forward` (``I + 1`` entries).
        H: ``[B, K, N]`` complex channel the rate is computed on.
        noise_var: Noise variance :math:`\sigma_n^2`: scalar, ``[B]`` or ``[B, K]``.
        loss: ``"output"`` (paper eq. (14)) or ``"layer-sum"``.

    Returns:
        Scalar loss (bit/s/Hz, negated).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if len(outputs) < 2:
        raise ValueError("the loss needs the start and at least one layer output")
    used = outputs[-1:] if loss == "output" else outputs[1:]
    total = sum(hybrid_sum_rate(H, bf.analog, bf.digital, noise_var).mean() for bf in used)
    return -total
