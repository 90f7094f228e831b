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
    "sample_snr_db",
]

#: Keys every :meth:`BeamformingTask.evaluate` returns (each a tensor with batch dim first).
#: ``reward`` [B]: the step reward; ``metric`` [B]: the env's headline metric (sum-rate in
#: bit/s/Hz, or power); ``per_user`` [B, K]: per-user rate or SINR fed back when
#: ``horizon > 1``; ``power`` [B]: transmit power of the evaluated beamformer.
REQUIRED_METRICS: tuple[str, ...] = ("reward", "metric", "per_user", "power")

#: Bound of the observation ``Box`` of every env (the largest finite float32).
OBS_LIMIT = float(np.finfo(np.float32).max)

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
        default = type(self.config)()
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self.config):
            value = getattr(self.config, f.name)
            if value != getattr(default, f.name):
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

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
    def evaluate(self, beamformer: Any, instance: InstanceT) -> dict[str, torch.Tensor]:
        """Evaluate a batch of (feasible) beamformers against the TRUE channels.

        Differentiable in ``beamformer``. Returns at least :data:`REQUIRED_METRICS`.
        """


class BeamformingEnv(gym.Env[np.ndarray, np.ndarray]):
    """Single-instance Gymnasium env wrapping a :class:`BeamformingTask`.

    Subclasses set :attr:`task_cls` and :attr:`config_cls`; constructor keywords other than
    ``horizon``, ``device``, ``precision`` and ``render_mode`` are fields of the config.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}
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
        if render_mode is not None:
            raise ValueError(f"beamgym envs do not render; got render_mode={render_mode!r}")
        self.render_mode = None
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
        self._feedback = terms["per_user"].astype(np.float32)
        terminated = self._t >= self.horizon
        info = self._get_info()
        info.update(terms)
        return self._get_obs(), reward, terminated, False, info

    # ---- helpers ----------------------------------------------------------------------------
    def _get_reward(self, action: torch.Tensor) -> tuple[float, dict[str, Any]]:
        assert self.instance is not None
        with torch.no_grad():
            bf, projected = self.task.action_to_beamformer(action, self.instance)
            m = self.task.evaluate(bf, self.instance)
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

    # ---- structured access for model-based agents -----------------------------------------
    def _instance_or_current(self, instance: TensorDataclass | None) -> TensorDataclass:
        if instance is not None:
            return self.task.validate_instance(instance)
        if self.instance is None:
            raise ValueError("no instance: call reset() first or pass instance=...")
        return self.instance

    def evaluate(
        self, beamformer: Any, instance: TensorDataclass | None = None
    ) -> dict[str, torch.Tensor]:
        """Batched, differentiable evaluation of beamformers (default: the current instance)."""
        return self.task.evaluate(beamformer, self._instance_or_current(instance))

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
    horizon), and are reset in the same step they end (``AutoresetMode.SAME_STEP``): the
    returned observation is the next interval's, and ``info["final_obs"]`` /
    ``info["final_info"]`` hold the last ones.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": [],
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
        **config_kwargs: Any,
    ) -> None:
        if render_mode is not None:
            raise ValueError(f"beamgym envs do not render; got render_mode={render_mode!r}")
        self.render_mode = None
        self.num_envs = check_int(num_envs, "num_envs")
        self.config = _make_config(self.config_cls, config_kwargs)
        self.task = self.task_cls(self.config, device=device, precision=precision)
        self.horizon = check_int(horizon, "horizon")
        self.single_observation_space, self.single_action_space = _spaces(self.task, self.horizon)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._np_random, _ = seeding.np_random(None)
        self.instance: TensorDataclass | None = None
        self._t = 0
        self._prev_action = np.zeros((self.num_envs, self.task.action_dim), dtype=np.float32)
        self._feedback = np.zeros((self.num_envs, self.task.num_users), dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw ``num_envs`` instances (or use ``options["instance"]`` with that batch size)."""
        if seed is not None:
            if isinstance(seed, list | tuple):
                raise ValueError(
                    "beamgym vector envs draw all instances from one generator: pass an int seed"
                )
            self._np_random, _ = seeding.np_random(int(seed))
        options = options or {}
        unknown = set(options) - {"instance"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; supported: ['instance']")
        if "instance" in options:
            inst = self.task.validate_instance(options["instance"])
            if inst.batch_size != self.num_envs:
                raise ValueError(
                    f"options['instance'] must hold num_envs={self.num_envs} instances, "
                    f"got {inst.batch_size}"
                )
        else:
            inst = self.task.sample(make_generator(self._np_random), self.num_envs)
        self._start(inst)
        return self._get_obs(), {}

    def _start(self, inst: TensorDataclass) -> None:
        self.instance = inst
        self._t = 0
        self._prev_action[:] = 0.0
        self._feedback[:] = 0.0

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Evaluate all ``num_envs`` beamformers in one batched call."""
        if self.instance is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        a = check_action(actions, self.task.action_dim, batch=self.num_envs)
        act = torch.as_tensor(a, device=self.task.device).to(self.task.rdtype)
        with torch.no_grad():
            bf, projected = self.task.action_to_beamformer(act, self.instance)
            m = self.task.evaluate(bf, self.instance)
        infos: dict[str, Any] = {k: _to_numpy(v) for k, v in m.items()}
        infos["projected"] = projected.detach().cpu().numpy()
        rewards = infos["reward"].astype(np.float64)
        self._t += 1
        self._prev_action = a.astype(np.float32)
        self._feedback = infos["per_user"].astype(np.float32)
        done = self._t >= self.horizon
        terminated = np.full(self.num_envs, done, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        infos["step"] = np.full(self.num_envs, self._t)
        infos = _with_masks(infos, self.num_envs)
        if done:
            final_obs = self._get_obs()
            self._start(self.task.sample(make_generator(self._np_random), self.num_envs))
            infos["final_obs"] = final_obs
            infos["_final_obs"] = np.ones(self.num_envs, dtype=bool)
            infos["final_info"] = {
                k: v for k, v in infos.items() if not k.startswith(("final", "_final"))
            }
            infos["_final_info"] = np.ones(self.num_envs, dtype=bool)
        return self._get_obs(), rewards, terminated, truncated, infos

    def _get_obs(self) -> np.ndarray:
        assert self.instance is not None
        obs = self.task.observe(self.instance).detach().cpu().numpy().astype(np.float32)
        if self.horizon > 1:
            frac = np.full((self.num_envs, 1), self._t / self.horizon, dtype=np.float32)
            obs = np.concatenate([obs, self._prev_action, self._feedback, frac], axis=1)
        return obs.astype(np.float32)

    def evaluate(
        self, beamformer: Any, instance: TensorDataclass | None = None
    ) -> dict[str, torch.Tensor]:
        """Batched, differentiable evaluation (default: the current ``num_envs`` instances)."""
        if instance is None:
            if self.instance is None:
                raise ValueError("no instance: call reset() first or pass instance=...")
            instance = self.instance
        else:
            instance = self.task.validate_instance(instance)
        return self.task.evaluate(beamformer, instance)


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
    return v.detach().cpu().numpy()


def _with_masks(infos: dict[str, Any], n: int) -> dict[str, Any]:
    out = dict(infos)
    for k in list(infos):
        out[f"_{k}"] = np.ones(n, dtype=bool)
    return out
