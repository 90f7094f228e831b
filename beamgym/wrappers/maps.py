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
from beamgym.physics.precoding import mmse_beamformer
from beamgym.physics.projections import hybrid_initialization
from beamgym.structures import HybridBeamformer

__all__ = [
    "ActionMap",
    "MappedPolicy",
    "OptimalStructureMap",
    "PhaseMap",
    "RawMap",
    "ResidualMap",
    "digital_problem",
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


FDD = "beamgym/FullyDigitalFDD-v0"
FAR = "beamgym/FarFieldHybrid-v0"
NEAR = "beamgym/NearFieldHybrid-v0"


def _is_phase_shifter(task: BeamformingTask) -> bool:
    return task.env_id == FAR and not task.steering


def _check_digital_env(task: BeamformingTask, who: str, phase_shifter_ok: bool = False) -> None:
    ok = task.env_id in (FDD, NEAR) or (
        task.env_id == FAR and (phase_shifter_ok or not _is_phase_shifter(task))
    )
    if not ok:
        what = "FarFieldHybrid-v0 with analog='steering'" if task.env_id == FAR else task.env_id
        raise ValueError(
            f"{who} supports FullyDigitalFDD-v0, NearFieldHybrid-v0 and FarFieldHybrid-v0 "
            f"({'both analog modes' if phase_shifter_ok else 'steering'}), got {what}; use "
            "RawAction for the other envs (PhaseAction for ModularUplink)"
        )


def digital_problem(
    task: BeamformingTask, known: Any
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | float]:
    r"""The digital design problem the BS knows: ``(H, analog, noise_var)``.

    FullyDigitalFDD: :math:`\tilde{\mathbf H}` ``[B, K, N]`` (or ``[B, K, M, N]``), no analog
    part. FarFieldHybrid (steering): the estimated effective channel
    :math:`\tilde{\mathbf G}` ``[B, K, N_RF]`` and the fixed eq. (18) precoder. NearFieldHybrid:
    the estimated effective channel of the first subcarrier ``[B, K, K]`` and the eq. (30)
    analog precoder rebuilt from the observed positions. ``noise_var`` is the known noise
    variance (1: the envs normalize the channel to unit noise).
    """
    if task.env_id == FDD:
        return known.H_est, None, 1.0
    if task.env_id == NEAR:
        return known.G_est[:, 0], known.analog, 1.0
    if task.env_id == FAR and not _is_phase_shifter(task):
        H = known.H_est
        F = task.analog_precoder.expand(H.shape[0], *task.analog_precoder.shape[-2:])
        return H, F, known.noise_var
    raise ValueError(f"no digital-only design problem for {task.env_id}")


def _assemble(digital: torch.Tensor, analog: torch.Tensor | None) -> Any:
    return digital if analog is None else HybridBeamformer(analog=analog, digital=digital)


def _rms(W: torch.Tensor) -> torch.Tensor:
    """``[B]`` root-mean-square entry modulus of ``[B, ...]`` complex ``W``."""
    return W.abs().square().flatten(1).mean(-1).sqrt()


class ResidualMap(ActionMap):
    r"""A learned correction on a model-based start, computed on the ESTIMATED channel.

    Fully digital and the digital part of the steering / near-field hybrid envs:

    .. math:: \mathbf W = \mathbf W_0 + s\,\mathrm{rms}(\mathbf W_0)\,\mathrm{unpack}(a),
              \qquad a \in [-1, 1]^{\texttt{action\_dim}}

    with :math:`\mathbf W_0` paper 000's MMSE beamformer (Sec. III-B2,
    :func:`beamgym.physics.precoding.mmse_beamformer`) on the estimated (effective)
    channel, :math:`\mathrm{rms}` its root-mean-square entry (fully digital:
    :math:`\sqrt{P/(NKM)}`) and :math:`s` = ``scale``. FarFieldHybrid with
    ``analog="phase-shifter"``: the start is paper 003's eq. (12)-(13) hybrid initialization
    :math:`(\mathbf F_0, \mathbf W_0)`
    (:func:`beamgym.physics.projections.hybrid_initialization`); the phases move by
    :math:`s\pi a_F` and the digital part as above. The env's own action map then applies its
    normalization (full power, eq. (24) for the hybrids). ``a = 0`` gives the start exactly
    (to rounding); ``scale = 1`` lets a corner of the box move every entry by the RMS entry.

    Args:
        task: A FullyDigitalFDD-v0, FarFieldHybrid-v0 or NearFieldHybrid-v0 task.
        scale: Correction size :math:`s > 0` (dimensionless).
    """

    name = "residual"

    def __init__(self, task: BeamformingTask, scale: float = 0.5) -> None:
        """Bind to ``task``; see the class docstring."""
        super().__init__(task)
        _check_digital_env(task, "ResidualAction", phase_shifter_ok=True)
        if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        self.scale = float(scale)

    def _start(self, known: Any) -> Any:
        if _is_phase_shifter(self.task):
            F0, W0 = hybrid_initialization(known.H_est, known.power, n_rf=self.task.config.N_RF)
            return HybridBeamformer(analog=F0, digital=W0)
        H, analog, noise = digital_problem(self.task, known)
        return _assemble(mmse_beamformer(H, known.power, noise), analog)

    def start(self, observation: Any) -> Any:
        """The start beamformer from the observation only (a ``HybridBeamformer`` for hybrids)."""
        return self._start(self.known(observation))

    def beamformer(self, action: Any, observation: Any) -> Any:
        """The start plus the scaled correction (before the env's normalization)."""
        known = self.known(observation)
        a = self._check_action(action)
        start = self._start(known)
        W0 = start if isinstance(start, torch.Tensor) else start.digital
        n_ph = a.shape[1] - 2 * W0[0].numel()
        delta = unpack_complex(a[:, n_ph:], tuple(W0.shape[1:])).to(W0.dtype)
        W = W0 + (self.scale * _rms(W0)).to(W0.dtype)[:, None, None] * delta
        if isinstance(start, torch.Tensor):
            return W
        F = start.analog
        if n_ph:
            theta = torch.angle(F) + self.scale * math.pi * a[:, :n_ph].reshape(F.shape)
            F = torch.polar(torch.ones_like(theta), theta).to(F.dtype)
        return HybridBeamformer(analog=F, digital=W)


class OptimalStructureMap(ActionMap):
    r"""The optimal sum-rate beamforming structure with ``2K`` parameters (MISO).

    Björnson, Bengtsson, Ottersten, "Optimal multiuser transmit beamforming: a difficult
    problem with a simple solution structure", IEEE SP Magazine 2014: every Pareto-optimal
    MISO beamformer (sum rate included) has the form below for some :math:`\lambda \ge 0`,
    :math:`p \ge 0`. Computed on the ESTIMATED (effective) channel
    :math:`\tilde{\mathbf h}_k` (rows of :func:`digital_problem`'s ``H``, noise
    :math:`\sigma^2`):

    .. math:: \mathbf w_k = \sqrt{p_k}\,\frac{\big(\mathbf I + \sum_i \lambda_i
              \tilde{\mathbf h}_i^H\tilde{\mathbf h}_i\big)^{-1}\tilde{\mathbf h}_k^H}
              {\big\|\big(\mathbf I + \sum_i \lambda_i \tilde{\mathbf h}_i^H
              \tilde{\mathbf h}_i\big)^{-1}\tilde{\mathbf h}_k^H\big\|}

    The action :math:`a = (a^\lambda, a^p) \in [-1, 1]^{2K}` maps to

    .. math:: \lambda_i = \frac{P}{K\sigma^2}\,10^{d\,a^\lambda_i}, \qquad
              p_k = P\,\frac{10^{d\,a^p_k}}{\sum_j 10^{d\,a^p_j}}

    with :math:`d` = ``decades``: each :math:`\lambda_i` spans :math:`d` decades either side of
    :math:`P/(K\sigma^2)`, the powers always sum to the budget :math:`P`, and ``a = 0`` gives
    :math:`\lambda_i = P/(K\sigma^2)`, :math:`p_k = P/K`, i.e. paper 000's MMSE beamformer
    exactly (to rounding). Hybrid envs (steering FarField, NearField): this is the digital
    precoder on the effective channel; ``p`` sets the digital column powers, and the env's
    action map rescales the whole by eq. (24) to the budget.

    Args:
        task: A FullyDigitalFDD-v0 (``M = 1``), steering FarFieldHybrid-v0 or
            NearFieldHybrid-v0 task.
        decades: Range :math:`d > 0` of the exponential maps, in decades.

    Raises:
        ValueError: For another env, the phase-shifter FarField (no digital-only problem) or
            ``M > 1`` (the structure is for single-antenna users).
    """

    name = "optimal-structure"

    def __init__(self, task: BeamformingTask, decades: float = 2.0) -> None:
        """Bind to ``task``; see the class docstring."""
        super().__init__(task)
        _check_digital_env(task, "OptimalStructureAction")
        if task.env_id == FDD and int(task.config.M) != 1:
            raise ValueError(
                f"OptimalStructureAction needs single-antenna users (M=1, the MISO structure "
                f"of Björnson et al. 2014), got M={task.config.M}; use ResidualAction for MIMO"
            )
        if not (isinstance(decades, int | float) and math.isfinite(decades) and decades > 0):
            raise ValueError(f"decades must be a positive finite number, got {decades!r}")
        self.decades = float(decades)
        self.dim = 2 * task.num_users

    def parameters(
        self, action: Any, power: torch.Tensor, noise_var: torch.Tensor | float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lambda, p)``, real ``[B, K]`` each, of ``[B, 2K]`` actions and ``[B]`` budgets."""
        a = self._check_action(action)
        k = self.task.num_users
        P = power[:, None].to(a.dtype)
        s2 = torch.as_tensor(noise_var, dtype=a.dtype, device=a.device).reshape(-1, 1)
        lam = P / (k * s2) * torch.pow(10.0, self.decades * a[:, :k])
        p = P * torch.softmax(self.decades * math.log(10.0) * a[:, k:], dim=-1)
        return lam, p

    def beamformer(self, action: Any, observation: Any) -> Any:
        r"""The structured beamformer (see the class docstring).

        Fully digital: complex ``[B, N, K]`` with :math:`\|W\|_F^2 = P`; hybrid: a
        ``HybridBeamformer`` whose digital part has column powers ``p``.
        """
        known = self.known(observation)
        H, analog, noise = digital_problem(self.task, known)  # H: [B, K, n]
        lam, p = self.parameters(action, known.power, noise)
        n = H.shape[-1]
        A = torch.eye(n, dtype=H.dtype, device=H.device) + H.mH @ (lam.to(H.dtype)[..., None] * H)
        X = torch.cholesky_solve(H.mH, torch.linalg.cholesky(0.5 * (A + A.mH)))  # [B, n, K]
        norms = X.abs().square().sum(-2).sqrt()
        return _assemble(X * (p.sqrt() / norms).to(H.dtype)[:, None, :], analog)


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
