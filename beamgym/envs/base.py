"""Shared machinery of all beamgym environments.

Each environment is split into

* a :class:`BeamformingTask`: a stateless description of one paper's system model — a seeded
  batched instance sampler, the observation (what the transmitter/receiver knows), the map
  from a normalized ``Box`` action to a feasible beamformer (the paper's projection) and the
  batched, differentiable evaluation against the **true** channel;
* :class:`BeamformingEnv`: the single-instance ``gymnasium.Env`` that wraps a task;
* :class:`BeamformingVectorEnv`: the native batched ``gymnasium.vector.VectorEnv`` that
  evaluates all ``num_envs`` instances in one call of the same task, on CPU or CUDA.

The concrete environment files subclass these three with a config dataclass and docstrings.

Episodes: one episode is one coherence interval. ``reset`` draws an instance; each ``step``
evaluates a proposed beamformer; the episode terminates after ``horizon`` steps (default 1).
With ``horizon > 1`` the observation also carries the previous action, the per-user
feedback (rates or SINRs) it achieved and the fraction of the interval used.

Feasibility: ``evaluate`` (of the task, the env and the native vector env) scores beamformers
as given and returns a ``feasible`` ``[B]`` bool in every env's metrics. It never silently
scores an infeasible design: if any design violates the paper's constraint (power above the
budget ``P`` by more than a relative 1e-4 where the paper's constraint is ``<= P``; the
equality, unit-modulus, codebook or projection constraints where the paper has those), it
raises a ``ValueError`` naming the excess, unless the caller passes ``check_feasible=False``
(then the metrics of the design as given come back with ``feasible`` False; learned optimizers
that differentiate through intermediate designs use this). ``step`` maps actions through the
action map first, so its beamformers are feasible by construction.

Seeding: the single env seeds one generator per ``reset(seed=s)``; the native vector env with
an int seed draws all ``num_envs`` instances in one batched call from one generator (fast),
so its sub-env ``i`` is NOT the single env seeded ``s + i``. ``reset(seed=[s_0, ..., s_{n-1}])``
(one seed per sub-env, Gymnasium's convention) gives every sub-env its own generator: sub-env
``i`` then equals the single env reset with ``seed=s_i`` (and so ``gym.make_vec(...,
vectorization_mode="sync")`` reset with ``seed=s`` matches ``seed=[s, s+1, ...]``), at the cost
of drawing the instances one by one (3-40x slower for large ``num_envs``).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, Generic, TypeVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from beamgym._validation import check_int, check_number
from beamgym.config import Precision, complex_dtype, real_dtype, resolve_device
from beamgym.structures import TensorDataclass

__all__ = [
    "BeamformingTask",
    "BeamformingEnv",
    "BeamformingVectorEnv",
    "REQUIRED_METRICS",
    "OBS_LIMIT",
    "make_generator",
    "check_snr_set",
    "check_instance_snr_db",
    "sample_snr_db",
    "raise_if_infeasible",
    "render_bars",
    "RENDER_FPS",
]

#: Keys every :meth:`BeamformingTask.evaluate` returns (each a tensor with batch dim first).
#: ``reward`` [B]: the step reward; ``metric`` [B]: the env's headline metric (sum-rate in
#: bit/s/Hz, or power); ``per_user`` [B, K]: per-user rate or SINR fed back when
#: ``horizon > 1``; ``power`` [B]: transmit power of the evaluated beamformer; ``feasible`` [B]
#: bool: whether it satisfies the paper's constraints (see the module docstring).
REQUIRED_METRICS: tuple[str, ...] = ("reward", "metric", "per_user", "power", "feasible")

#: Bound of the observation ``Box`` of every env (the largest finite float32).
OBS_LIMIT = float(np.finfo(np.float32).max)

#: Frames per second advertised in ``metadata["render_fps"]`` (one frame per step).
RENDER_FPS = 4

#: The supported vector autoreset modes (Gymnasium's three), by name.
_AUTORESET_MODES = {m.value: m for m in AutoresetMode}

InstanceT = TypeVar("InstanceT", bound=TensorDataclass)
ConfigT = TypeVar("ConfigT")


def make_generator(np_random: np.random.Generator) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from a numpy generator (explicit randomness only).

    Instances are always drawn on the CPU, then moved to the task's device, so the same seed
    gives bit-identical instances whatever the device.
    """
    seed = int(np_random.integers(0, 2**63 - 1))
    return torch.Generator(device="cpu").manual_seed(seed)


class BeamformingTask(abc.ABC, Generic[InstanceT, ConfigT]):
    """Stateless, batched physics of one environment.

    Subclasses implement the abstract members. Every tensor they take or return has the batch
    dimension first. :meth:`evaluate` must be differentiable with respect to the beamformer so
    learned optimizers can backpropagate through it.

    Args:
        config: The environment's frozen config dataclass.
        device: Device of instances and computations.
        precision: ``"single"`` (complex64) or ``"double"`` (complex128).
    """

    #: Registered id of the environment this task belongs to (``"beamgym/...-v0"``).
    env_id: ClassVar[str]
    #: Class of the instances this task samples.
    instance_cls: ClassVar[type[TensorDataclass]]
    #: Name of the headline metric (``"sum_rate"``, ``"power"``, ...), used by the harness.
    metric_name: ClassVar[str] = "sum_rate"
    #: ``+1`` if a larger headline metric is better, ``-1`` if smaller is better.
    metric_sign: ClassVar[int] = 1

    def __init__(
        self,
        config: ConfigT,
        *,
        device: str | torch.device = "cpu",
        precision: Precision = "single",
    ) -> None:
        self.config = config
        self.device = resolve_device(device)
        self.precision = precision
        self.cdtype = complex_dtype(precision)
        self.rdtype = real_dtype(precision)

    @property
    def env_kwargs(self) -> dict[str, Any]:
        """The configuration keywords that differ from the defaults (builtins, tuples as lists).

        ``gym.make(task.env_id, **task.env_kwargs)`` (plus ``device`` / ``precision``) rebuilds an
        env of this configuration.
        """
        config_cls = type(self.config)
        out: dict[str, Any] = {}
        # Some defaults depend on other keywords (FarFieldHybrid's SNR on ``analog``): add the
        # fields a rebuild from the keywords so far gets wrong until the rebuild is exact.
        for _ in range(len(dataclasses.fields(self.config)) + 1):
            rebuilt = config_cls(**out)
            missing = {
                f.name: getattr(self.config, f.name)
                for f in dataclasses.fields(self.config)
                if getattr(self.config, f.name) != getattr(rebuilt, f.name)
            }
            if not missing:
                break
            out.update(missing)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    # ---- sizes -------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def num_users(self) -> int:
        """Number of users ``K`` (length of ``per_user``)."""

    @property
    @abc.abstractmethod
    def obs_dim(self) -> int:
        """Length of the task part of the observation."""

    @property
    @abc.abstractmethod
    def action_dim(self) -> int:
        """Length of the normalized action vector."""

    # ---- instances ---------------------------------------------------------------------
    @abc.abstractmethod
    def sample(self, generator: torch.Generator, batch_size: int) -> InstanceT:
        """Draw ``batch_size`` instances (true CSI, estimated CSI, SNR, targets, ...).

        All randomness comes from ``generator`` (a CPU generator); the result lives on
        ``self.device`` in ``self.cdtype``/``self.rdtype``.
        """

    def validate_instance(self, instance: Any) -> InstanceT:
        """Check a user-supplied instance (type, shapes, finiteness) and move it to the device."""
        if not isinstance(instance, self.instance_cls):
            raise ValueError(
                f"instance must be a {self.instance_cls.__name__}, got {type(instance).__name__}"
            )
        for f in dataclasses.fields(instance):
            value = getattr(instance, f.name)
            if not isinstance(value, torch.Tensor):
                raise ValueError(
                    f"instance.{f.name} must be a torch.Tensor, got {type(value).__name__}; "
                    "convert with torch.as_tensor(...)"
                )
        instance.check_batch()
        for name, t in instance._tensor_items():
            if (t.is_floating_point() or t.is_complex()) and not bool(
                torch.isfinite(torch.view_as_real(t) if t.is_complex() else t).all()
            ):
                raise ValueError(f"instance.{name} contains NaN or inf")
        return instance.to(self.device)  # type: ignore[return-value]

    # ---- observation and action ---------------------------------------------------------
    @abc.abstractmethod
    def observe(self, instance: InstanceT) -> torch.Tensor:
        """Real ``[B, obs_dim]`` observation: only what the transmitter/receiver knows."""

    def decode_observation(self, observation: torch.Tensor) -> TensorDataclass:
        """Inverse of :meth:`observe`: the transmitter/receiver-known quantities.

        Args:
            observation: Real ``[B, obs_dim]`` task observation (no horizon extras).

        Returns:
            The env's ``Known`` dataclass (estimated CSI, SNR, targets, side information),
            batch first, on ``self.device`` in ``self.rdtype``/``self.cdtype``. Solvers take this
            view, never the true channel; ``action_to_beamformer`` and
            ``beamformer_to_action`` accept it in place of an instance.
        """
        raise NotImplementedError(f"{type(self).__name__} does not decode observations yet")

    def known(self, instance: InstanceT) -> TensorDataclass:
        """What the transmitter/receiver knows about ``instance``: ``decode(observe(x))``."""
        return self.decode_observation(self.observe(instance))

    def observation_bounds(self) -> tuple[float, float]:
        """``(low, high)`` of the task observation.

        Default: the finite float32 range. CSI is unbounded (Gaussian), but a finite ``Box``
        keeps Gymnasium's and stable-baselines3's checkers quiet and samples well-defined.
        """
        return -OBS_LIMIT, OBS_LIMIT

    @abc.abstractmethod
    def action_to_beamformer(
        self, action: torch.Tensor, instance: InstanceT
    ) -> tuple[Any, torch.Tensor]:
        """Map a real ``[B, action_dim]`` action in ``[-1, 1]`` to a feasible beamformer.

        Returns:
            ``(beamformer, projected)`` where ``projected`` is a ``[B]`` bool tensor telling
            whether the paper's projection changed the raw beamformer.
        """

    @abc.abstractmethod
    def beamformer_to_action(self, beamformer: Any, instance: InstanceT) -> torch.Tensor:
        """Inverse of :meth:`action_to_beamformer` on the feasible set: ``[B, action_dim]``."""

    # ---- evaluation ------------------------------------------------------------------------
    @abc.abstractmethod
    def evaluate(
        self, beamformer: Any, instance: InstanceT, *, check_feasible: bool = True
    ) -> dict[str, torch.Tensor]:
        """Evaluate a batch of beamformers against the TRUE channels.

        Differentiable in ``beamformer``. Returns at least :data:`REQUIRED_METRICS` and a
        ``feasible`` ``[B]`` bool. With ``check_feasible=True`` (default) an infeasible design
        raises ``ValueError`` naming the violation (:func:`raise_if_infeasible`); with
        ``False`` the design is scored as given (internal / differentiable use).
        """


class BeamformingEnv(gym.Env[np.ndarray, np.ndarray]):
    """Single-instance Gymnasium env wrapping a :class:`BeamformingTask`.

    Subclasses set :attr:`task_cls` and :attr:`config_cls`; constructor keywords other than
    ``horizon``, ``device``, ``precision`` and ``render_mode`` are fields of the config.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS}
    task_cls: ClassVar[type[BeamformingTask]]
    config_cls: ClassVar[type]

    def __init__(
        self,
        *,
        horizon: int = 1,
        device: str | torch.device = "cpu",
        precision: Precision = "single",
        render_mode: str | None = None,
        **config_kwargs: Any,
    ) -> None:
        self.render_mode = _check_render_mode(render_mode)
        self.config = _make_config(self.config_cls, config_kwargs)
        self.task = self.task_cls(self.config, device=device, precision=precision)
        self.horizon = check_int(horizon, "horizon")
        self.observation_space, self.action_space = _spaces(self.task, self.horizon)
        self.instance: TensorDataclass | None = None
        self._t = 0
        self._prev_action = np.zeros(self.task.action_dim, dtype=np.float32)
        self._feedback = np.zeros(self.task.num_users, dtype=np.float32)

    # ---- Gymnasium API ---------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a coherence interval: draw an instance, or use ``options["instance"]``."""
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"instance"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; supported: ['instance']")
        if "instance" in options:
            inst = self.task.validate_instance(options["instance"])
            if inst.batch_size != 1:
                raise ValueError(
                    f"options['instance'] must hold exactly one instance, got a batch of "
                    f"{inst.batch_size}; pass instances[i] for one of them"
                )
        else:
            inst = self.task.sample(make_generator(self.np_random), 1)
        self.instance = inst
        self._t = 0
        self._prev_action = np.zeros(self.task.action_dim, dtype=np.float32)
        self._feedback = np.zeros(self.task.num_users, dtype=np.float32)
        return self._get_obs(), self._get_info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Evaluate the beamformer that ``action`` maps to against the true channel."""
        if self.instance is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self._t >= self.horizon:
            raise gym.error.ResetNeeded(
                f"the episode ended after horizon={self.horizon} steps; call reset()"
            )
        a = check_action(action, self.task.action_dim, batch=None)
        act = torch.as_tensor(a, device=self.task.device).to(self.task.rdtype).unsqueeze(0)
        reward, terms = self._get_reward(act)
        self._t += 1
        self._prev_action = a.astype(np.float32)
        self._feedback = np.array(terms["per_user"], dtype=np.float32)
        terminated = self._t >= self.horizon
        info = self._get_info()
        info.update(terms)
        return self._get_obs(), reward, terminated, False, info

    # ---- helpers ----------------------------------------------------------------------------
    def _get_reward(self, action: torch.Tensor) -> tuple[float, dict[str, Any]]:
        assert self.instance is not None
        with torch.no_grad():
            bf, projected = self.task.action_to_beamformer(action, self.instance)
            # the action map is the paper's projection: its output is feasible by construction
            m = self.task.evaluate(bf, self.instance, check_feasible=False)
        terms = {k: _to_numpy(v[0]) for k, v in m.items()}
        terms["projected"] = bool(projected[0])
        return float(terms["reward"]), terms

    def _get_obs(self) -> np.ndarray:
        assert self.instance is not None
        obs = self.task.observe(self.instance)[0].detach().cpu().numpy().astype(np.float32)
        if self.horizon > 1:
            obs = np.concatenate(
                [obs, self._prev_action, self._feedback, [self._t / self.horizon]]
            ).astype(np.float32)
        return obs

    def _get_info(self) -> dict[str, Any]:
        return {"step": self._t}

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """``render_mode="rgb_array"``: a small uint8 ``[H, W, 3]`` bar chart of the last step.

        One bar per user: the ``per_user`` feedback of the last step (rates, or SINRs in dB for
        OutageHybrid), zero before the first step (:func:`render_bars`). ``None`` without a
        render mode.
        """
        if self.render_mode is None:
            return None
        return render_bars(self._feedback)

    # ---- structured access for model-based agents -----------------------------------------
    def _instance_or_current(self, instance: TensorDataclass | None) -> TensorDataclass:
        if instance is not None:
            return self.task.validate_instance(instance)
        if self.instance is None:
            raise ValueError("no instance: call reset() first or pass instance=...")
        return self.instance

    def evaluate(
        self,
        beamformer: Any,
        instance: TensorDataclass | None = None,
        *,
        check_feasible: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Batched, differentiable evaluation of beamformers (default: the current instance).

        Raises ``ValueError`` if any design is infeasible, unless ``check_feasible=False``
        (see :meth:`BeamformingTask.evaluate`); the metrics carry a ``feasible`` ``[B]`` bool.
        """
        return self.task.evaluate(
            beamformer, self._instance_or_current(instance), check_feasible=check_feasible
        )

    def action_to_beamformer(self, action: Any, instance: TensorDataclass | None = None) -> Any:
        """Map a (batch of) normalized action(s) to the structured, feasible beamformer."""
        inst = self._instance_or_current(instance)
        a = check_action(action, self.task.action_dim, batch="optional")
        act = torch.as_tensor(a, device=self.task.device).to(self.task.rdtype)
        if act.ndim == 1:
            act = act.unsqueeze(0)
        return self.task.action_to_beamformer(act, inst)[0]

    def beamformer_to_action(
        self, beamformer: Any, instance: TensorDataclass | None = None
    ) -> np.ndarray:
        """Map a batch of structured beamformers to normalized actions ``[B, action_dim]``."""
        inst = self._instance_or_current(instance)
        a = self.task.beamformer_to_action(beamformer, inst)
        return a.detach().cpu().numpy().astype(np.float32)


class BeamformingVectorEnv(gym.vector.VectorEnv):
    """Native batched vector env: ``num_envs`` instances evaluated in one batched call.

    All sub-environments start and end their coherence intervals together (they share the
    horizon). ``autoreset_mode`` (Gymnasium's three modes):

    * ``"SameStep"`` (default, :attr:`AutoresetMode.SAME_STEP`): the sub-envs are reset in the
      step they end; the returned observation is the next interval's and
      ``info["final_obs"]`` / ``info["final_info"]`` hold the last ones.
    * ``"NextStep"`` (Gymnasium's default, needed by e.g.
      ``gymnasium.wrappers.vector.NormalizeObservation``): the step that ends an interval
      returns its last observation; the following ``step`` ignores its actions, draws the
      next instances and returns their observation with reward 0 and no termination.
    * ``"Disabled"``: no autoreset; call ``reset()`` (or ``reset(options={"reset_mask":
      mask})`` with an all-True mask) after the interval ends.

    Seeding: an int seed draws all instances from one generator in one batched call; a list
    of ``num_envs`` seeds (or ``None`` entries) gives each sub-env its own generator, so that
    sub-env ``i`` equals the single env reset with ``seed=seeds[i]`` (see the module
    docstring). The generators then persist over autoresets and ``reset(seed=None)``.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        "render_fps": RENDER_FPS,
        "autoreset_mode": AutoresetMode.SAME_STEP,
    }
    task_cls: ClassVar[type[BeamformingTask]]
    config_cls: ClassVar[type]

    def __init__(
        self,
        num_envs: int = 1,
        *,
        horizon: int = 1,
        device: str | torch.device = "cpu",
        precision: Precision = "single",
        render_mode: str | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.SAME_STEP,
        **config_kwargs: Any,
    ) -> None:
        self.render_mode = _check_render_mode(render_mode)
        self.autoreset_mode = _check_autoreset_mode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.num_envs = check_int(num_envs, "num_envs")
        self.config = _make_config(self.config_cls, config_kwargs)
        self.task = self.task_cls(self.config, device=device, precision=precision)
        self.horizon = check_int(horizon, "horizon")
        self.single_observation_space, self.single_action_space = _spaces(self.task, self.horizon)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._np_random, _ = seeding.np_random(None)
        #: One generator per sub-env after ``reset(seed=[...])``; ``None``: one shared generator.
        self._sub_np_randoms: list[np.random.Generator] | None = None
        self.instance: TensorDataclass | None = None
        self._t = 0
        self._needs_reset = False
        self._prev_action = np.zeros((self.num_envs, self.task.action_dim), dtype=np.float32)
        self._feedback = np.zeros((self.num_envs, self.task.num_users), dtype=np.float32)

    def reset(
        self,
        *,
        seed: int | list[int | None] | tuple[int | None, ...] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw ``num_envs`` instances (or use ``options["instance"]`` with that batch size).

        Args:
            seed: ``None`` (continue the generator(s)), an int (one generator, batched
                sampling) or a list of ``num_envs`` ints / ``None`` (one generator per sub-env:
                sub-env ``i`` equals the single env reset with ``seed=seed[i]``).
            options: ``{"instance": inst}`` with ``num_envs`` instances and/or
                ``{"reset_mask": mask}`` (a ``[num_envs]`` bool array; all sub-envs share the
                coherence interval, so it must be all True).
        """
        self._seed(seed)
        options = dict(options or {})
        unknown = set(options) - {"instance", "reset_mask"}
        if unknown:
            raise ValueError(
                f"unknown reset options {sorted(unknown)}; supported: ['instance', 'reset_mask']"
            )
        if "reset_mask" in options:
            mask = options.pop("reset_mask")
            if (
                not isinstance(mask, np.ndarray)
                or mask.dtype != np.bool_
                or mask.shape != (self.num_envs,)
            ):
                raise ValueError(
                    f"options['reset_mask'] must be a numpy bool array of shape "
                    f"({self.num_envs},), got {mask!r}"
                )
            if not bool(mask.all()):
                raise ValueError(
                    "options['reset_mask'] must be all True: the sub-envs of a beamgym vector "
                    "env share one coherence interval and are reset together"
                )
        if "instance" in options:
            inst = self.task.validate_instance(options["instance"])
            if inst.batch_size != self.num_envs:
                raise ValueError(
                    f"options['instance'] must hold num_envs={self.num_envs} instances, "
                    f"got {inst.batch_size}"
                )
        else:
            inst = self._sample()
        self._start(inst)
        return self._get_obs(), {}

    def _seed(self, seed: Any) -> None:
        if seed is None:
            return
        if isinstance(seed, list | tuple):
            if len(seed) != self.num_envs:
                raise ValueError(
                    f"seed must be an int or a list of num_envs={self.num_envs} seeds (one per "
                    f"sub-env), got a list of {len(seed)}"
                )
            for i, s in enumerate(seed):
                if s is not None:
                    check_int(s, f"seed[{i}]", minimum=0)
            self._sub_np_randoms = [
                seeding.np_random(None if s is None else int(s))[0] for s in seed
            ]
            return
        self._np_random, _ = seeding.np_random(check_int(seed, "seed", minimum=0))
        self._sub_np_randoms = None

    def _sample(self) -> TensorDataclass:
        if self._sub_np_randoms is None:
            return self.task.sample(make_generator(self._np_random), self.num_envs)
        parts = [self.task.sample(make_generator(g), 1) for g in self._sub_np_randoms]
        return parts[0].cat(parts) if len(parts) > 1 else parts[0]

    def _start(self, inst: TensorDataclass) -> None:
        self.instance = inst
        self._t = 0
        self._needs_reset = False
        self._prev_action[:] = 0.0
        self._feedback[:] = 0.0

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Evaluate all ``num_envs`` beamformers in one batched call."""
        if self.instance is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        a = check_action(actions, self.task.action_dim, batch=self.num_envs)
        if self._needs_reset:
            if self.autoreset_mode == AutoresetMode.DISABLED:
                raise gym.error.ResetNeeded(
                    f"the coherence interval ended after horizon={self.horizon} steps and "
                    "autoreset_mode='Disabled'; call reset()"
                )
            # NEXT_STEP: this step only starts the next interval (the actions are ignored)
            self._start(self._sample())
            zeros = np.zeros(self.num_envs, dtype=bool)
            return self._get_obs(), np.zeros(self.num_envs), zeros, zeros.copy(), {}
        act = torch.as_tensor(a, device=self.task.device).to(self.task.rdtype)
        with torch.no_grad():
            bf, projected = self.task.action_to_beamformer(act, self.instance)
            # the action map is the paper's projection: its output is feasible by construction
            m = self.task.evaluate(bf, self.instance, check_feasible=False)
        infos: dict[str, Any] = {k: _to_numpy(v) for k, v in m.items()}
        infos["projected"] = projected.detach().cpu().numpy()
        rewards = infos["reward"].astype(np.float64)
        self._t += 1
        self._prev_action = a.astype(np.float32)
        self._feedback = np.array(infos["per_user"], dtype=np.float32)
        done = self._t >= self.horizon
        terminated = np.full(self.num_envs, done, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        infos["step"] = np.full(self.num_envs, self._t)
        infos = _with_masks(infos, self.num_envs)
        if done and self.autoreset_mode == AutoresetMode.SAME_STEP:
            final_obs = self._get_obs()
            self._start(self._sample())
            infos["final_obs"] = final_obs
            infos["_final_obs"] = np.ones(self.num_envs, dtype=bool)
            infos["final_info"] = {
                k: v for k, v in infos.items() if not k.startswith(("final", "_final"))
            }
            infos["_final_info"] = np.ones(self.num_envs, dtype=bool)
        elif done:
            self._needs_reset = True
        return self._get_obs(), rewards, terminated, truncated, infos

    def _get_obs(self) -> np.ndarray:
        assert self.instance is not None
        obs = self.task.observe(self.instance).detach().cpu().numpy().astype(np.float32)
        if self.horizon > 1:
            frac = np.full((self.num_envs, 1), self._t / self.horizon, dtype=np.float32)
            obs = np.concatenate([obs, self._prev_action, self._feedback, frac], axis=1)
        return obs.astype(np.float32)

    def render(self) -> tuple[np.ndarray, ...] | None:  # type: ignore[override]
        """``render_mode="rgb_array"``: one :func:`render_bars` frame per sub-env."""
        if self.render_mode is None:
            return None
        return tuple(render_bars(f) for f in self._feedback)

    def evaluate(
        self,
        beamformer: Any,
        instance: TensorDataclass | None = None,
        *,
        check_feasible: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Batched, differentiable evaluation (default: the current ``num_envs`` instances).

        Raises ``ValueError`` if any design is infeasible, unless ``check_feasible=False``
        (see :meth:`BeamformingTask.evaluate`).
        """
        if instance is None:
            if self.instance is None:
                raise ValueError("no instance: call reset() first or pass instance=...")
            instance = self.instance
        else:
            instance = self.task.validate_instance(instance)
        return self.task.evaluate(beamformer, instance, check_feasible=check_feasible)


# ---- module helpers ---------------------------------------------------------------------------
def check_snr_set(snr_db: Any) -> float | tuple[float, ...]:
    """Validate an SNR in dB: a number, or a non-empty tuple/list of numbers.

    Every beamgym env reads ``snr_db`` this way: a number is a fixed SNR; a tuple is a
    discrete set sampled uniformly per instance (paper 000's training set V, Sec. III-D2), so
    ``snr_db=(5.0, 10.0, 15.0, 20.0)`` trains across the paper's SNR range.

    Returns:
        A float or a tuple of floats (lists become tuples so the config stays hashable).
    """
    if isinstance(snr_db, list | tuple):
        if len(snr_db) == 0:
            raise ValueError("snr_db must be a number or a non-empty tuple of SNRs in dB")
        vals = tuple(check_number(v, "snr_db") for v in snr_db)
        bad = [v for v in vals if abs(v) > 100.0]
    else:
        vals = check_number(snr_db, "snr_db")
        bad = [vals] if abs(vals) > 100.0 else []
    if bad:
        raise ValueError(f"snr_db values must lie in [-100, 100] dB, got {bad}")
    return vals


def check_instance_snr_db(snr_db: torch.Tensor, name: str = "instance.snr_db") -> None:
    """Apply :func:`check_snr_set`'s rule (finite, within [-100, 100] dB) to instance SNRs."""
    bad = snr_db.abs() > 100.0
    if bool(bad.any()):
        raise ValueError(
            f"{name} values must lie in [-100, 100] dB (the rule of the snr_db keyword), got "
            f"{float(snr_db[bad].flatten()[0])!r} at {int(bad.sum())} position(s)"
        )


def raise_if_infeasible(
    feasible: torch.Tensor,
    power: torch.Tensor,
    budget: torch.Tensor | float,
    *,
    constraint: str,
    rtol: float,
    equality: bool = False,
) -> None:
    """Raise ``ValueError`` naming the violation if any ``feasible`` entry is False.

    Args:
        feasible: Bool ``[B]`` flags of the metrics.
        power: Real ``[B]`` power of each design (the quantity the budget limits).
        budget: Real ``[B]`` (or scalar) power budget.
        constraint: The paper's constraint in words, e.g. ``"||W||_F^2 <= P (paper 000 eq.
            (8))"``, quoted when a design violates a non-power part of it.
        rtol: Relative power tolerance of the flag.
        equality: The power constraint is an equality (``= P``) rather than ``<= P``.
    """
    if bool(feasible.all()):
        return
    bad = torch.nonzero(~feasible.detach()).flatten()
    i = int(bad[0])
    p = float(power.detach().reshape(-1)[i])
    caps = torch.as_tensor(budget).detach().reshape(-1)
    cap = float(caps[i if caps.numel() > 1 else 0])
    if p > cap * (1.0 + rtol):
        what = (
            f"its power {p:.6g} exceeds the budget {cap:.6g} by {p - cap:.4g} "
            f"({100.0 * (p / cap - 1.0):.3g}% over, tolerance {rtol:g} relative)"
        )
    elif equality and p < cap * (1.0 - rtol):
        what = f"its power {p:.6g} is below the budget {cap:.6g} the constraint requires"
    else:
        what = "it violates the constraint"
    raise ValueError(
        f"beamformer: {len(bad)} of {feasible.numel()} designs are infeasible (design {i}: "
        f"{what}; constraint: {constraint}). Map it to the feasible set with "
        "task.action_to_beamformer(task.beamformer_to_action(bf, instance), instance), or "
        "pass check_feasible=False to score it as given (flagged feasible=False)"
    )


def render_bars(values: np.ndarray, *, height: int = 64) -> np.ndarray:
    """A uint8 ``[height, W, 3]`` bar chart of ``values`` (numpy only, no plotting library).

    One blue bar per value, scaled by the largest magnitude, on a white background with a grey
    zero line (at the bottom, or in the middle when a value is negative). Non-finite values
    are drawn as 0.

    Args:
        values: Real ``[K]`` values (e.g. per-user rates).
        height: Image height in pixels (>= 8).

    Returns:
        The picture, ``W = max(32, 2 + K * (bar + 2))`` with bars of 8 pixels (1 for K > 64).
    """
    v = np.nan_to_num(
        np.asarray(values, dtype=np.float64).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0
    )
    bar = 8 if v.size <= 64 else 1
    width = max(32, 2 + v.size * (bar + 2))
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    scale = float(np.abs(v).max()) if v.size else 0.0
    signed = bool((v < 0).any())
    zero = height // 2 if signed else height - 1
    span = (height // 2 - 1) if signed else height - 2
    img[zero, :] = (160, 160, 160)
    if scale > 0:
        for k, x in enumerate(v):
            n = int(round(abs(x) / scale * span))
            left = 2 + k * (bar + 2)
            rows = slice(zero - n, zero) if x >= 0 else slice(zero + 1, zero + 1 + n)
            img[rows, left : left + bar] = (31, 119, 180)
    return img


def _check_render_mode(render_mode: Any) -> str | None:
    if render_mode not in (None, "rgb_array"):
        raise ValueError(
            f"render_mode must be None or 'rgb_array' (a bar chart of the per-user feedback), "
            f"got {render_mode!r}"
        )
    return render_mode


def _check_autoreset_mode(mode: Any) -> AutoresetMode:
    if isinstance(mode, AutoresetMode):
        return mode
    if isinstance(mode, str) and mode in _AUTORESET_MODES:
        return _AUTORESET_MODES[mode]
    raise ValueError(
        f"autoreset_mode must be a gymnasium.vector.AutoresetMode or one of "
        f"{sorted(_AUTORESET_MODES)}, got {mode!r}"
    )


def sample_snr_db(
    generator: torch.Generator, batch: int, snr_db: float | tuple[float, ...]
) -> torch.Tensor:
    """``[B]`` float64 SNRs in dB: constant, or drawn uniformly from the discrete set V.

    A tuple with more than one value consumes one ``torch.randint`` draw of shape ``[B]``
    (paper 000 Sec. III-D2: "σ² is drawn uniformly from V", one SNR per sample for all
    users); a number or a one-element tuple draws nothing.
    """
    if isinstance(snr_db, tuple):
        if len(snr_db) == 1:
            return torch.full((batch,), snr_db[0], dtype=torch.float64)
        idx = torch.randint(len(snr_db), (batch,), generator=generator)
        return torch.tensor(snr_db, dtype=torch.float64)[idx]
    return torch.full((batch,), float(snr_db), dtype=torch.float64)


def _make_config(config_cls: type, kwargs: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ValueError(
            f"unknown keyword(s) {unknown} for {config_cls.__name__}; valid: {sorted(names)}"
        )
    return config_cls(**kwargs)


def _spaces(task: BeamformingTask, horizon: int) -> tuple[spaces.Box, spaces.Box]:
    low, high = task.observation_bounds()
    obs_dim = task.obs_dim
    if horizon > 1:
        obs_dim += task.action_dim + task.num_users + 1
        low, high = -OBS_LIMIT, OBS_LIMIT
    obs_space = spaces.Box(low=low, high=high, shape=(obs_dim,), dtype=np.float32)
    act_space = spaces.Box(low=-1.0, high=1.0, shape=(task.action_dim,), dtype=np.float32)
    return obs_space, act_space


def check_action(action: Any, dim: int, batch: int | str | None) -> np.ndarray:
    """Validate an action: float dtype, shape ``[dim]`` / ``[batch, dim]``, finite, in [-1, 1].

    Args:
        action: Array-like or tensor.
        dim: Action length.
        batch: ``None`` for a single action, an int for a fixed batch, ``"optional"`` for either.

    Returns:
        The action as a float64 numpy array.
    """
    if isinstance(action, torch.Tensor):
        action = action.detach().cpu().numpy()
    arr = np.asarray(action)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"action must be a floating-point array (float32), got dtype {arr.dtype}")
    if batch is None:
        want: tuple[int, ...] | str = (dim,)
        ok = arr.shape == (dim,)
    elif batch == "optional":
        want = f"({dim},) or (B, {dim})"
        ok = arr.shape == (dim,) or (arr.ndim == 2 and arr.shape[1] == dim)
    else:
        want = (int(batch), dim)
        ok = arr.shape == want
    if not ok:
        raise ValueError(f"action must have shape {want}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("action contains NaN or inf")
    if np.any(np.abs(arr) > 1.0 + 1e-6):
        raise ValueError(
            f"action must lie in the action space [-1, 1] (max |a| = {np.abs(arr).max():.3g}); "
            "clip it or use beamformer_to_action(...)"
        )
    return np.clip(arr.astype(np.float64), -1.0, 1.0)


def _to_numpy(v: torch.Tensor) -> np.ndarray:
    # a copy: info must not share memory with the frozen instance (horizon > 1)
    return np.array(v.detach().cpu().numpy(), copy=True)


def _with_masks(infos: dict[str, Any], n: int) -> dict[str, Any]:
    out = dict(infos)
    for k in list(infos):
        out[f"_{k}"] = np.ones(n, dtype=bool)
    return out
