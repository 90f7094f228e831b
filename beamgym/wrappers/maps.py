r"""Action maps: pure, batched maps from a structured RL action to the env's raw action.

Each map turns a batch of actions ``[B, dim]`` in ``[-1, 1]`` plus the batch of observations
``[B, obs_dim (+ horizon extras)]`` the agent acted on into the env's raw action ``[B,
task.action_dim]``. A map reads the observation only (decoded with
:meth:`~beamgym.envs.base.BeamformingTask.decode_observation`), never the true instance, so a
wrapped env reveals nothing the BS does not know. The single-env wrappers
(:mod:`beamgym.wrappers.action`), the vector wrappers (:mod:`beamgym.wrappers.vector`) and
:class:`MappedPolicy` (harness scoring of a policy trained on a wrapped env) share these maps.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from beamgym.envs.base import BeamformingTask
from beamgym.packing import unpack_complex

__all__ = [
    "ActionMap",
    "MappedPolicy",
    "OptimalStructureMap",
    "PhaseMap",
    "RawMap",
    "ResidualMap",
]


def _env_name(task: BeamformingTask) -> str:
    return task.env_id


class ActionMap:
    """Base class: a batched map ``(action, observation) -> raw env action``.

    Attributes:
        task: The env's stateless :class:`~beamgym.envs.base.BeamformingTask`.
        dim: Size of the structured action.
    """

    #: Name used in error messages and result tables.
    name: str = "raw"

    def __init__(self, task: BeamformingTask) -> None:
        """Bind the map to ``task`` (``env.unwrapped.task``)."""
        if not isinstance(task, BeamformingTask):
            raise ValueError(
                f"task must be a beamgym BeamformingTask (env.unwrapped.task), got "
                f"{type(task).__name__}"
            )
        self.task = task
        self.dim = int(task.action_dim)

    @property
    def action_space(self) -> spaces.Box:
        """Float32 ``Box(-1, 1, (dim,))`` of one structured action."""
        return spaces.Box(-1.0, 1.0, (self.dim,), dtype=np.float32)

    def known(self, observation: Any) -> Any:
        """Decode the BS-known view from ``[B, >= obs_dim]`` observations (extras dropped)."""
        obs = torch.as_tensor(np.asarray(observation, dtype=np.float32))
        if obs.ndim != 2 or obs.shape[1] < self.task.obs_dim:
            raise ValueError(
                f"observation must be a [B, obs_dim(+extras)] array with obs_dim="
                f"{self.task.obs_dim}, got shape {tuple(obs.shape)}"
            )
        return self.task.decode_observation(obs[:, : self.task.obs_dim])

    def _check_action(self, action: Any) -> torch.Tensor:
        a = np.asarray(action, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != self.dim:
            raise ValueError(
                f"action must be a [B, {self.dim}] array for the {self.name} map, got shape "
                f"{a.shape}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError("action must be finite")
        return torch.as_tensor(np.clip(a, -1.0, 1.0)).to(self.task.device, self.task.rdtype)

    def beamformer(self, action: Any, observation: Any) -> Any:
        """The structured beamformer of ``action`` (before the env's own action map)."""
        known = self.known(observation)
        return self.task.action_to_beamformer(self._check_action(action), known)[0]

    def to_raw(self, action: Any, observation: Any) -> np.ndarray:
        """Float32 ``[B, task.action_dim]`` raw env actions of ``action`` given ``observation``."""
        known = self.known(observation)
        with torch.no_grad():
            raw = self.task.beamformer_to_action(self.beamformer(action, observation), known)
        return raw.detach().cpu().numpy().astype(np.float32)


class RawMap(ActionMap):
    """Identity: the env's own action (packed beamformer / scores and powers / panels)."""

    name = "raw"

    def to_raw(self, action: Any, observation: Any) -> np.ndarray:
        """The action itself, clipped to ``[-1, 1]`` (the env clips the same way)."""
        return self._check_action(action).cpu().numpy().astype(np.float32)


def _fully_digital(task: BeamformingTask, who: str) -> None:
    if task.env_id != "beamgym/FullyDigitalFDD-v0":
        raise ValueError(
            f"{who} supports beamgym/FullyDigitalFDD-v0, got {_env_name(task)}; use RawAction "
            "for the other envs (PhaseAction for ModularUplink)"
        )


class ResidualMap(ActionMap):
    r"""A learned correction on the MMSE start, computed on the ESTIMATED channel.

    .. math:: \mathbf W = \mathbf W_0(\tilde{\mathbf H}) + s\sqrt{\frac{P}{NKM}}\,
              \mathrm{unpack}(a), \qquad a \in [-1, 1]^{2NKM}

    with :math:`\mathbf W_0` paper 000's MMSE beamformer (Sec. III-B2,
    :func:`beamgym.physics.precoding.mmse_beamformer`, full power) and :math:`s` = ``scale``;
    the env then normalizes :math:`\mathbf W` to full power. ``a = 0`` gives the MMSE
    beamformer exactly (to rounding); ``scale = 1`` lets a corner of the action box move every
    entry by the RMS entry size of a full-power beamformer.

    Args:
        task: The FullyDigitalFDD-v0 task.
        scale: Correction size :math:`s > 0` (dimensionless).
    """

    name = "residual"

    def __init__(self, task: BeamformingTask, scale: float = 0.5) -> None:
        """Bind to ``task``; see the class docstring."""
        super().__init__(task)
        _fully_digital(task, "ResidualAction")
        if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        self.scale = float(scale)

    def start(self, observation: Any) -> torch.Tensor:
        r"""The MMSE start :math:`\mathbf W_0` ``[B, N, K*M]`` from the observation only."""
        return self.task.mmse_beamformer(self.known(observation))

    def beamformer(self, action: Any, observation: Any) -> torch.Tensor:
        """``W0 + scale * sqrt(P / (N K M)) * unpack(action)``, complex ``[B, N, K*M]``."""
        known = self.known(observation)
        a = self._check_action(action)
        W0 = self.task.mmse_beamformer(known)
        n_entries = W0.shape[-1] * W0.shape[-2]
        step = self.scale * torch.sqrt(known.power / n_entries)
        delta = unpack_complex(a, self.task.beamformer_shape).to(W0.dtype)
        return W0 + step.to(W0.dtype)[:, None, None] * delta


class OptimalStructureMap(ActionMap):
    r"""The optimal sum-rate beamforming structure with ``2K`` parameters (MISO).

    Björnson, Bengtsson, Ottersten, IEEE SP Magazine 2014 (optimal structure of multiuser
    MISO transmit beamforming), on the ESTIMATED channel :math:`\tilde{\mathbf h}_k` (rows of
    ``H_est``, unit noise):

    .. math:: \mathbf w_k = \sqrt{p_k}\,\frac{\big(\mathbf I_N + \sum_i \lambda_i
              \tilde{\mathbf h}_i^H\tilde{\mathbf h}_i\big)^{-1}\tilde{\mathbf h}_k^H}
              {\big\|\big(\mathbf I_N + \sum_i \lambda_i \tilde{\mathbf h}_i^H
              \tilde{\mathbf h}_i\big)^{-1}\tilde{\mathbf h}_k^H\big\|}

    The action :math:`a = (a^\lambda, a^p) \in [-1, 1]^{2K}` maps to

    .. math:: \lambda_i = \frac PK\,10^{d\,a^\lambda_i}, \qquad
              p_k = P\,\frac{10^{d\,a^p_k}}{\sum_j 10^{d\,a^p_j}}

    with :math:`d` = ``decades``: each :math:`\lambda_i` spans :math:`d` decades either side of
    :math:`P/K`, the powers always sum to the budget :math:`P`, and ``a = 0`` gives
    :math:`\lambda_i = p_k = P/K`, i.e. paper 000's MMSE beamformer exactly (to rounding).

    Args:
        task: The FullyDigitalFDD-v0 task with ``M = 1``.
        decades: Range :math:`d > 0` of the exponential maps, in decades.

    Raises:
        ValueError: For another env or ``M > 1`` (the structure is for single-antenna users).
    """

    name = "optimal-structure"

    def __init__(self, task: BeamformingTask, decades: float = 2.0) -> None:
        """Bind to ``task``; see the class docstring."""
        super().__init__(task)
        _fully_digital(task, "OptimalStructureAction")
        if int(task.config.M) != 1:
            raise ValueError(
                f"OptimalStructureAction needs single-antenna users (M=1, the MISO structure "
                f"of Björnson et al. 2014), got M={task.config.M}; use ResidualAction for MIMO"
            )
        if not (isinstance(decades, int | float) and math.isfinite(decades) and decades > 0):
            raise ValueError(f"decades must be a positive finite number, got {decades!r}")
        self.decades = float(decades)
        self.dim = 2 * task.num_users

    def parameters(self, action: Any, power: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lambda, p)``, real ``[B, K]`` each, of ``[B, 2K]`` actions and ``[B]`` budgets."""
        a = self._check_action(action)
        k = self.task.num_users
        P = power[:, None].to(a.dtype)
        lam = P / k * torch.pow(10.0, self.decades * a[:, :k])
        p = P * torch.softmax(self.decades * math.log(10.0) * a[:, k:], dim=-1)
        return lam, p

    def beamformer(self, action: Any, observation: Any) -> torch.Tensor:
        r"""The structured beamformer, complex ``[B, N, K]`` with :math:`\|W\|_F^2 = P`."""
        known = self.known(observation)
        H = known.H_est  # [B, K, N]
        lam, p = self.parameters(action, known.power)
        n = H.shape[-1]
        A = torch.eye(n, dtype=H.dtype, device=H.device) + H.mH @ (lam.to(H.dtype)[..., None] * H)
        X = torch.cholesky_solve(H.mH, torch.linalg.cholesky(0.5 * (A + A.mH)))  # [B, N, K]
        norms = X.abs().square().sum(-2).sqrt()
        return X * (p.sqrt() / norms).to(H.dtype)[:, None, :]


class PhaseMap(ActionMap):
    r"""ModularUplink-v0: the phase-shifter phases directly, :math:`w = e^{j\pi a}`.

    The env's raw action is the packed complex panels (real parts, then imaginary parts,
    ``2PNL`` numbers) projected onto the configured constraint set, so two raw numbers carry
    one unit-modulus entry. This map takes one number per phase shifter, ``a in [-1, 1]^{PNL}``,
    and builds unit-modulus panels :math:`\mathbf W = e^{j\pi a}` (every phase in
    :math:`[-\pi, \pi]`), which the env's projection keeps unchanged for
    ``constraint="unit-modulus"`` (and quantizes / sparsifies for the other constraint sets).
    It reads no observation at all.
    """

    name = "phase"

    def __init__(self, task: BeamformingTask) -> None:
        """Bind to the ModularUplink-v0 ``task``."""
        super().__init__(task)
        if task.env_id != "beamgym/ModularUplink-v0":
            raise ValueError(
                f"PhaseAction supports beamgym/ModularUplink-v0, got {_env_name(task)}"
            )
        self.dim = int(np.prod(task.panel_shape))

    def beamformer(self, action: Any, observation: Any) -> torch.Tensor:
        """Unit-modulus panels, complex ``[B, P, N, L]``."""
        a = self._check_action(action)
        W = torch.polar(torch.ones_like(a), math.pi * a).reshape(a.shape[0], *self.task.panel_shape)
        return W.to(self.task.cdtype)


class MappedPolicy:
    """A policy trained on a wrapped env, seen as a raw-action policy (for the harness).

    ``predict(obs)`` calls the model, then maps its structured actions to the env's raw
    actions with ``action_map`` and the same observations, so
    ``agents.harness.evaluate_agent(MappedPolicy(model, action_map), instance_set)`` scores
    it like any other policy.

    Args:
        model: Anything with SB3's ``predict(obs, state, episode_start, deterministic)``.
        action_map: The map of the wrapper the model was trained in.
        name: Name in result tables; default ``"<model class>+<map name>"``.
    """

    def __init__(self, model: Any, action_map: ActionMap, name: str | None = None) -> None:
        """See the class docstring."""
        if not callable(getattr(model, "predict", None)):
            raise ValueError(f"model must have a predict method, got {type(model).__name__}")
        if not isinstance(action_map, ActionMap):
            raise ValueError(
                f"action_map must be a beamgym.wrappers ActionMap, got {type(action_map).__name__}"
            )
        self.model = model
        self.action_map = action_map
        self.name = name or f"{type(model).__name__}+{action_map.name}"
        task = action_map.task
        self.observation_space = spaces.Box(-np.inf, np.inf, (task.obs_dim,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (task.action_dim,), dtype=np.float32)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Raw ``[B, task.action_dim]`` actions for ``[B, obs_dim]`` observations."""
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        if single:
            obs = obs[None]
        action, state = self.model.predict(
            obs, state=state, episode_start=episode_start, deterministic=deterministic
        )
        raw = self.action_map.to_raw(np.asarray(action).reshape(obs.shape[0], -1), obs)
        return (raw[0] if single else raw), state
