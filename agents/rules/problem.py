r"""The solvers' view of a beamforming problem and the env adapters (paper 000 envs).

The fully digital solvers of paper 000 (gradient ascent eq. (9), WMMSE, the closed-form
precoders) see a batch of problems as a :class:`SolverProblem`: the ESTIMATED (effective)
channel, the power budget, the noise variance and the power weight :math:`\mathbf Q` of the
hybrid constraint (eq. (23)/(34)). Each supported env registers ONE :class:`SolverEnv`
adapter (:func:`register_solver_env`) that builds this view from what the BS knows and turns a
designed (digital) precoder into the env's beamformer at full power; adding an env to these
solvers means adding one adapter here.

Power weights: fully digital :math:`\mathbf Q = \mathbf I` (``None``); far field (steering
analog, eq. (18)) :math:`\mathbf Q = (\mathbf W^a)^H\mathbf W^a`; near field (TTD+PS, eq.
(30)-(31)) the subcarrier average :math:`\frac1F\sum_f(\mathbf W^a_f)^H\mathbf W^a_f`.

References:
    [000] Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse
          Large-Scale MIMO Channels".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from beamgym._validation import check_tensor
from beamgym.envs.far_field_hybrid import FarFieldHybridKnown, FarFieldHybridTask
from beamgym.envs.fully_digital_fdd import FullyDigitalFDDKnown, FullyDigitalFDDTask
from beamgym.envs.near_field_hybrid import NearFieldHybridKnown, NearFieldHybridTask
from beamgym.physics.metrics import as_noise, as_power
from beamgym.physics.precoding import (
    mmse_beamformer,
    mrt_beamformer,
    rzf_beamformer,
    zf_beamformer,
)
from beamgym.physics.projections import normalize_power
from beamgym.structures import HybridBeamformer, TensorDataclass

__all__ = [
    "INITS",
    "SolverEnv",
    "SolverProblem",
    "canonical_channel",
    "check_power_weight",
    "iterative_start",
    "initial_beamformer",
    "problem_from_known",
    "register_solver_env",
    "solver_env",
    "solver_env_ids",
]

#: Initial beamformers of :func:`initial_beamformer`.
INITS: tuple[str, ...] = ("mmse", "mrt", "zf", "rzf", "random")


# ---- the solver's view of a problem ------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SolverProblem(TensorDataclass):
    r"""A batch of beamforming problems as the solvers see them (what the BS knows).

    Attributes:
        H: Complex ``[B, F, K, M, N]`` estimated (effective) channels, ``F`` subcarriers
            sharing one precoder (``F = M = 1`` for the paper's MISO settings).
        power: Real ``[B]`` power budget :math:`P`.
        noise_var: Real ``[B]`` noise variance (1 for the normalized channels).
        Q: Complex ``[B, N, N]`` power weight :math:`\mathbf Q` (hybrid:
            :math:`(\mathbf W^a)^H\mathbf W^a`), or ``None`` for the identity (fully
            digital).
    """

    H: torch.Tensor
    power: torch.Tensor
    noise_var: torch.Tensor
    Q: torch.Tensor | None = None

    def repeat(self, r: int) -> SolverProblem:
        """The batch repeated ``r`` times (``[r * B, ...]``, copy ``i`` at ``i*B:(i+1)*B``)."""
        return SolverProblem(
            H=self.H.repeat(r, 1, 1, 1, 1),
            power=self.power.repeat(r),
            noise_var=self.noise_var.repeat(r),
            Q=None if self.Q is None else self.Q.repeat(r, 1, 1),
        )

    @property
    def linear_channel(self) -> torch.Tensor:
        """``[B, K, N]`` (MISO) or ``[B, K, M, N]`` channel of the closed-form precoders.

        The first subcarrier (the carrier when ``F = 1``), as the env's MMSE helper uses.
        """
        H = self.H[:, 0]
        return H[:, :, 0] if H.shape[2] == 1 else H


def canonical_channel(H: torch.Tensor) -> torch.Tensor:
    """A solver channel in the canonical ``[B, F, K, M, N]`` layout.

    Args:
        H: Complex ``[B, K, N]`` (MISO), ``[B, K, M, N]`` (MIMO) or ``[B, F, K, M, N]``
            (``F`` subcarriers) channel.

    Returns:
        The same channel as a ``[B, F, K, M, N]`` view.
    """
    check_tensor(H, "H", min_ndim=3, complex_=True)
    if H.ndim == 3:
        return H[:, None, :, None, :]
    if H.ndim == 4:
        return H[:, None]
    if H.ndim == 5:
        return H
    raise ValueError(
        f"H must be [B, K, N] (MISO), [B, K, M, N] (MIMO) or [B, F, K, M, N] (subcarriers), "
        f"got shape {tuple(H.shape)}"
    )


def initial_beamformer(
    init: str, prob: SolverProblem, seed: int = 0, n_random: int = 1
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    r"""Initial beamformer(s) of the iterative solvers, at full power.

    ``"mmse"``: paper 000's MMSE beamformer (Sec. III-B2) on the first subcarrier, then the
    weighted full-power scaling (eq. (24) for hybrid); ``"mrt"`` / ``"zf"`` / ``"rzf"``: the
    closed-form precoders of :mod:`beamgym.physics.precoding`; ``"random"``: i.i.d.
    :math:`\mathcal{CN}` entries from a fresh CPU generator seeded with ``seed`` (float64,
    then cast), ``n_random`` draws stacked along the batch.

    Args:
        init: One of :data:`INITS`.
        prob: The batch of problems.
        seed: Seed of the ``"random"`` start.
        n_random: Number of random starts (``"random"`` only).

    Returns:
        ``(W0, info)``: complex ``[B, N, K*M]`` (``random``: ``[n_random * B, N, K*M]``) and
        ``{"rank_deficient": [B] bool}`` for ``"zf"`` (empty otherwise).
    """
    H, p, s2, Q = prob.linear_channel, prob.power, prob.noise_var, prob.Q
    info: dict[str, torch.Tensor] = {}
    if init == "mmse":
        return normalize_power(mmse_beamformer(H, p, s2), p, Q), info
    if init == "mrt":
        return mrt_beamformer(H, p, power_weight=Q), info
    if init == "zf":
        W, bad = zf_beamformer(H, p, power_weight=Q)
        info["rank_deficient"] = bad
        return W, info
    if init == "rzf":
        return rzf_beamformer(H, p, s2, power_weight=Q), info
    if init == "random":
        b, n = prob.H.shape[0], prob.H.shape[-1]
        s = prob.H.shape[2] * prob.H.shape[3]
        gen = torch.Generator(device="cpu").manual_seed(seed)
        g = torch.randn((n_random * b, n, s, 2), generator=gen, dtype=torch.float64)
        W = torch.view_as_complex(g).to(device=prob.H.device, dtype=prob.H.dtype)
        rep = prob.repeat(n_random)
        return normalize_power(W, rep.power, rep.Q), info
    raise ValueError(f"init must be one of {INITS}, got {init!r}")


def check_power_weight(Q: torch.Tensor | None, b: int, n: int, like: torch.Tensor) -> torch.Tensor:
    r"""The power weight :math:`\mathbf Q` as a ``[B, N, N]`` tensor (identity for ``None``).

    Args:
        Q: ``None`` or complex ``[N, N]`` / ``[B, N, N]`` weight.
        b: Batch size ``B``.
        n: Transmit dimension ``N``.
        like: Tensor whose complex dtype and device the result takes.

    Returns:
        Complex ``[B, N, N]`` tensor.
    """
    if Q is None:
        return torch.eye(n, dtype=like.dtype, device=like.device).expand(b, n, n)
    check_tensor(Q, "power_weight", complex_=True)
    if Q.ndim == 2:
        Q = Q.expand(b, *Q.shape)
    if Q.shape != (b, n, n):
        raise ValueError(
            f"power_weight must be [N, N] or [B, N, N] = [{b}, {n}, {n}], got {tuple(Q.shape)}"
        )
    return Q.to(like.dtype)


class IterativeStart(NamedTuple):
    """The checked inputs of an iterative rule and its full-power starting point."""

    H5: torch.Tensor
    """Complex ``[B, F, K, M, N]`` channel (:func:`canonical_channel`)."""
    power: torch.Tensor
    """Real ``[B]`` budget :math:`P`."""
    noise_var: torch.Tensor
    """Real ``[B]`` noise variance."""
    power_weight: torch.Tensor | None
    r"""``None`` or complex ``[B, N, N]`` weight :math:`\mathbf Q`."""
    W: torch.Tensor
    """Complex ``[B, N, K*M]`` start ``W0`` scaled to full power (:func:`normalize_power`)."""


def iterative_start(
    H: torch.Tensor,
    W0: torch.Tensor,
    power: float | torch.Tensor,
    noise_var: float | torch.Tensor,
    power_weight: torch.Tensor | None,
) -> IterativeStart:
    r"""Check the inputs shared by the iterative rules (GA, WMMSE) and scale ``W0`` to full power.

    Args:
        H: ``[B, K, N]``, ``[B, K, M, N]`` or ``[B, F, K, M, N]`` complex channel.
        W0: Complex ``[B, N, K*M]`` initial beamformer, in ``H``'s dtype.
        power: Budget :math:`P`: a positive number or a real ``[B]`` tensor.
        noise_var: Noise variance: a number or a real ``[B]`` tensor.
        power_weight: ``None`` or the ``[N, N]`` / ``[B, N, N]`` weight :math:`\mathbf Q`.

    Raises:
        ValueError: ``W0`` of another shape or dtype than ``H`` requires (named), or bad
            ``power`` / ``noise_var`` / ``power_weight``.
    """
    H5 = canonical_channel(H)
    b, _, k, m, n = H5.shape
    check_tensor(W0, "W0", ndim=3, complex_=True)
    if W0.shape != (b, n, k * m) or W0.dtype != H5.dtype:
        raise ValueError(
            f"W0 must be [B, N, K*M] = [{b}, {n}, {k * m}] with H's dtype {H5.dtype}, got "
            f"{tuple(W0.shape)} {W0.dtype}"
        )
    p = as_power(power, b, H5)
    s2 = as_noise(noise_var, b, 1, H5)[:, 0]
    Q = None if power_weight is None else check_power_weight(power_weight, b, n, H5)
    return IterativeStart(H5, p, s2, Q, normalize_power(W0, p, Q))


# ---- env adapters: the ONE place that knows the envs ---------------------------------------------
@dataclasses.dataclass(frozen=True)
class SolverEnv:
    """How the paper-000 solvers see one environment (register with :func:`register_solver_env`).

    Attributes:
        env_id: The registered env id.
        known_cls: The class of ``task.known(instance)``.
        problem: ``(task, known) -> SolverProblem``: the estimated (effective) channel, budget,
            noise and power weight.
        beamformer: ``(task, known, W) -> beamformer``: the env's structured beamformer from
            a digital precoder ``W`` ``[B, N, S]``, scaled to full power by
            :func:`~beamgym.physics.projections.normalize_power` in the form the env's action
            map normalizes (so the env accepts it without projection).
        dims: ``task -> (streams, transmit dimensions)``: ``(K*M, N)`` or ``(K, N_RF)``.
        check: ``task -> None``; raises ValueError for an unsupported configuration.
    """

    env_id: str
    known_cls: type
    problem: Callable[[Any, Any], SolverProblem]
    beamformer: Callable[[Any, Any, torch.Tensor], Any]
    dims: Callable[[Any], tuple[int, int]]
    check: Callable[[Any], None] = lambda task: None


_SOLVER_ENVS: dict[type, SolverEnv] = {}


def register_solver_env(task_cls: type, adapter: SolverEnv) -> None:
    """Make the paper-000 solvers support the env whose task class is ``task_cls``.

    Args:
        task_cls: The env's task class.
        adapter: Its :class:`SolverEnv`.
    """
    _SOLVER_ENVS[task_cls] = adapter


def solver_env_ids() -> tuple[str, ...]:
    """The env ids of every registered :class:`SolverEnv`, in registration order."""
    return tuple(a.env_id for a in _SOLVER_ENVS.values())


def solver_env(task: Any) -> SolverEnv:
    """The adapter of ``task``'s env (checked with :attr:`SolverEnv.check`).

    Raises:
        ValueError: if the env is not supported (names the supported ones).
    """
    for cls in type(task).__mro__:
        adapter = _SOLVER_ENVS.get(cls)
        if adapter is not None:
            adapter.check(task)
            return adapter
    raise ValueError(
        f"{type(task).__name__} is not supported by the fully digital solvers; they support "
        f"{solver_env_ids()} (FarFieldHybrid with analog='steering')"
    )


def problem_from_known(task: Any, known: TensorDataclass) -> SolverProblem:
    r"""The solvers' view of a batch: estimated (effective) channel, budget, noise, weight.

    * FullyDigitalFDD: ``H_est`` (MISO or MIMO), :math:`\mathbf Q = \mathbf I`;
    * FarFieldHybrid (steering): ``H_est`` :math:`= \tilde{\mathbf G}` ``[B, K, N_RF]``,
      :math:`\mathbf Q = (\mathbf W^a)^H\mathbf W^a` with ``task.analog_precoder``
      (eq. (18)), noise ``known.noise_var``;
    * NearFieldHybrid: ``G_est`` ``[B, F, K, K]`` (all subcarriers), :math:`\mathbf Q =
      \frac1F\sum_f` ``known.gram[:, f]`` (eq. (24)/(34), band-averaged power).

    Args:
        task: The env's task (:func:`agents.base.task_of`).
        known: ``task.known(instance)`` / ``task.decode_observation(obs)``.

    Returns:
        :class:`SolverProblem`.
    """
    adapter = solver_env(task)
    if not isinstance(known, adapter.known_cls):
        raise ValueError(
            f"solve() takes what the BS knows, a {adapter.known_cls.__name__} "
            f"(task.known(instance) or task.decode_observation(obs)), got "
            f"{type(known).__name__}"
        )
    return adapter.problem(task, known)


def _fdd_problem(task: FullyDigitalFDDTask, known: FullyDigitalFDDKnown) -> SolverProblem:
    return SolverProblem(
        H=canonical_channel(known.H_est), power=known.power, noise_var=torch.ones_like(known.power)
    )


def _far_problem(task: FarFieldHybridTask, known: FarFieldHybridKnown) -> SolverProblem:
    H = canonical_channel(known.H_est)
    F = task.analog_precoder.to(H.device)
    Q = (F.mH @ F).expand(known.batch_size, -1, -1)
    return SolverProblem(H=H, power=known.power, noise_var=known.noise_var, Q=0.5 * (Q + Q.mH))


def _near_problem(task: NearFieldHybridTask, known: NearFieldHybridKnown) -> SolverProblem:
    H = known.G_est.unsqueeze(-2)  # [B, F, K, 1, K]
    Q = known.gram.mean(1)
    noise = torch.ones_like(known.power)
    return SolverProblem(H=H, power=known.power, noise_var=noise, Q=0.5 * (Q + Q.mH))


def _far_beamformer(
    task: FarFieldHybridTask, known: FarFieldHybridKnown, W: torch.Tensor
) -> HybridBeamformer:
    # eq. (24) as the env's action map evaluates it: ||F W||_F from the product
    F = task.analog_precoder.expand(W.shape[0], *task.analog_precoder.shape)
    return HybridBeamformer(analog=F, digital=normalize_power(W, known.power, analog=F))


def _near_beamformer(
    task: NearFieldHybridTask, known: NearFieldHybridKnown, W: torch.Tensor
) -> HybridBeamformer:
    # eq. (24)/(34) as the env's action map evaluates it: per-subcarrier Grams, band average
    return HybridBeamformer(
        analog=known.analog, digital=normalize_power(W, known.power, known.gram)
    )


def _far_check(task: FarFieldHybridTask) -> None:
    if not task.steering:
        raise ValueError(
            "FarFieldHybrid-v0 with analog='phase-shifter' designs the analog precoder "
            "too (paper 003); these solvers need predetermined analog beams: use "
            "analog='steering', or the paper-003 agents (e.g. 'pga')"
        )


register_solver_env(
    FullyDigitalFDDTask,
    SolverEnv(
        env_id="beamgym/FullyDigitalFDD-v0",
        known_cls=FullyDigitalFDDKnown,
        problem=_fdd_problem,
        beamformer=lambda task, known, W: normalize_power(W, known.power),
        dims=lambda task: (task.config.K * task.config.M, task.config.N),
    ),
)
register_solver_env(
    FarFieldHybridTask,
    SolverEnv(
        env_id="beamgym/FarFieldHybrid-v0",
        known_cls=FarFieldHybridKnown,
        problem=_far_problem,
        beamformer=_far_beamformer,
        dims=lambda task: (task.config.K, task.config.N_RF),
        check=_far_check,
    ),
)
register_solver_env(
    NearFieldHybridTask,
    SolverEnv(
        env_id="beamgym/NearFieldHybrid-v0",
        known_cls=NearFieldHybridKnown,
        problem=_near_problem,
        beamformer=_near_beamformer,
        dims=lambda task: (task.config.K, task.config.K),
    ),
)
