r"""The RL baselines as registered agents: ``ppo``, ``sac`` and ``td3`` (stable-baselines3).

Each agent holds one SB3 policy (:mod:`agents.rl.model`) trained in one action wrapper
(:data:`~agents.rl.model.DEFAULT_WRAPPER` per env) and acts through the same contract as
every other agent:

* :meth:`RLAgent.solve` builds the observation the env gives for the known view
  (``task.observe(known)``, float32, exactly what the harness's predict path feeds), runs the
  policy deterministically and maps its action through the wrapper's map and the env's own
  action map to the feasible beamformer the env applies, so the harness scores it on the same
  instances as the model-based solvers;
* :meth:`RLAgent.predict` returns the RAW env action (the wrapper's map applied), so
  ``env.step(agent.predict(obs)[0])`` works on the unwrapped env;
* :meth:`RLAgent.learn` trains with :func:`agents.rl.train.train_rl` for real.

Models: an agent built with ``checkpoint=None`` loads the committed model
``agents/pretrained/<agent>/<env>-<variant>/`` whose env configuration equals its env's (every
field, the SNR included: the policy saw one SNR). Without one the agent holds a freshly
initialized policy that it refuses to use: ``solve``, ``predict`` and ``save`` raise
:class:`~agents.base.CheckpointError` naming the command that trains a model, until
:meth:`RLAgent.learn` has run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.base import Agent, CheckpointError, register_agent, task_of
from agents.cli import train_command
from agents.pretrained import (
    PRETRAINED_DIR,
    check_env_config,
    env_config_dict,
    find_committed,
    pretrained_dir,
    read_checkpoint,
    resolve_checkpoint,
)
from agents.rl.model import (
    DEFAULT_WRAPPER,
    ENV_IDS,
    RLModelConfig,
    load_policy_state,
    make_action_map,
    make_policy,
    policy_state,
)
from agents.rl.train import RLTrainConfig, checkpoint_config, train_rl
from beamgym.structures import TensorDataclass

__all__ = ["PPOAgent", "RLAgent", "SACAgent", "TD3Agent", "variant_name"]

#: The env configuration of the committed RL model (the small, hard Rayleigh setting).
SMALL_FDD = {"channel": "rayleigh", "N": 4, "K": 4, "snr_db": 10}


def variant_name(env_kwargs: dict[str, Any]) -> str:
    """Folder suffix of a committed model: ``{"N": 4, "K": 4}`` -> ``"K-4-N-4"`` (sorted)."""

    def text(v: Any) -> str:
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v).replace(" ", "")

    return "-".join(f"{k}-{text(v)}" for k, v in sorted(env_kwargs.items()))


class RLAgent(Agent):
    """An SB3 policy in an action wrapper, behind the agent contract (module docstring).

    Args:
        env: An env (or task) of a supported id (:data:`agents.rl.model.ENV_IDS`).
        checkpoint: A model folder or its ``checkpoint.pt``; ``None`` loads the committed
            model of the env configuration (see the module docstring).

    Raises:
        ValueError: An unknown hyperparameter or an unsupported env.
        CheckpointError: An explicit checkpoint that is missing, unreadable, of another agent
            or made for another env configuration; the message names the train command.
    """

    learnable = True
    #: SB3 algorithm (set by the subclasses).
    algo: str = ""

    def __init__(self, env: Any, **hparams: Any) -> None:
        hp = {"checkpoint": None, **hparams}
        unknown = set(hp) - {"checkpoint"}
        if unknown:
            raise ValueError(
                f"unknown hyperparameter(s) {sorted(unknown)} for {self.registry_name}; "
                "the algorithm's settings are training options (examples/train.py --agent "
                f"{self.registry_name} --help)"
            )
        task = task_of(env)
        if task.env_id not in ENV_IDS:
            raise ValueError(f"{self.registry_name} supports {ENV_IDS}, got {task.env_id}")
        super().__init__(task)
        name, env_id = self.registry_name, task.env_id
        keys = tuple(env_config_dict(task))
        wrapper = DEFAULT_WRAPPER[env_id]
        committed_out = pretrained_dir(name, env_id, variant_name(task.env_kwargs))
        self._command = train_command(
            name,
            env_id,
            task.env_kwargs,
            wrapper=wrapper,
            out=committed_out.relative_to(PRETRAINED_DIR.parents[1])
            if hp["checkpoint"] is None
            else None,
        )
        self._missing: CheckpointError | None = None
        if hp["checkpoint"] is None:
            path = find_committed(name, env_id, task, keys=keys)
            if path is None:
                self._missing = CheckpointError(
                    f"no committed {name} model for {env_id} with {task.env_kwargs} "
                    f"(committed ones: {PRETRAINED_DIR / name}); train one with: {self._command}"
                )
                self._set_model(RLModelConfig(algo=self.algo, wrapper=wrapper), None)
                self.model_config: dict[str, Any] = {}
                return
        else:
            path = resolve_checkpoint(hp["checkpoint"], name, env_id, self._command)
        try:
            ckpt = read_checkpoint(path, agent=name)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; train one with: {self._command}") from exc
        check_env_config(ckpt.config.get("env_config", {}), task, keys, path, self._command)
        try:
            model = RLModelConfig.from_json(ckpt.config["model"])
            if model.algo != self.algo:
                raise ValueError(f"it holds a {model.algo} policy, not {self.algo}")
            self._set_model(model, ckpt.state)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"{path} does not fit {name} ({exc}); train one with: {self._command}"
            ) from exc
        self.checkpoint_path: Path = path
        self.model_config = dict(ckpt.config)

    def _set_model(self, model: RLModelConfig, state: dict[str, torch.Tensor] | None) -> None:
        """Build the policy and action map of ``model``; load ``state`` if given."""
        self.model = model
        self.action_map = make_action_map(self.task, model)
        self.policy = make_policy(self.task, model)
        if state is not None:
            load_policy_state(self.policy, state)

    def _require_model(self) -> None:
        if self._missing is not None:
            raise self._missing

    # ---- acting -----------------------------------------------------------------------------
    def _act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic structured actions ``[B, dim]`` of float32 observations ``[B, L]``."""
        self._require_model()
        action, _ = self.policy.predict(obs, deterministic=True)
        return np.asarray(action, dtype=np.float32).reshape(obs.shape[0], -1)

    def solve(self, known: TensorDataclass) -> Any:
        """The env's beamformer of the policy's action on ``task.observe(known)``.

        The wrapper's map gives the raw env action, and the env's own action map turns it into
        the feasible design it would apply (the hybrids' wrappers leave the final eq. (24)
        scaling to the env), so ``solve`` and the predict path score the same design.

        Raises:
            CheckpointError: No trained model (see the module docstring).
        """
        obs = self.task.observe(known).detach().cpu().numpy().astype(np.float32)
        action = self._act(obs)
        raw = torch.as_tensor(self.action_map.to_raw(action, obs), device=self.task.device)
        with torch.no_grad():
            return self.task.action_to_beamformer(raw.to(self.task.rdtype), known)[0]

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Raw env action(s) of observation(s): the policy, then the wrapper's map.

        Args:
            observation: ``[L]`` or ``[B, L]`` (see :meth:`Agent.predict`; the ``horizon > 1``
                extras are ignored).
            state: Returned unchanged.
            episode_start: Ignored.
            deterministic: Ignored (the policy's mean action is always used).

        Raises:
            ValueError: A malformed observation (names ``observation``).
            CheckpointError: No trained model (see the module docstring).
        """
        arr = self._check_observation(observation)
        single = arr.ndim == 1
        obs = np.ascontiguousarray(np.atleast_2d(arr)[:, : self.task.obs_dim], dtype=np.float32)
        raw = self.action_map.to_raw(self._act(obs), obs)
        return (raw[0] if single else raw), state

    # ---- learning and persistence ------------------------------------------------------------
    def learn(self, **overrides: Any) -> RLAgent:
        """Train a fresh policy on the agent's env with the model's recipe and return ``self``.

        The recipe is the loaded model's :class:`~agents.rl.train.RLTrainConfig` (the defaults
        for an agent without a model), fields replaced by keyword arguments, e.g.
        ``learn(total_steps=4096, num_envs=64)``.
        """
        recipe = dict(self.model_config.get("train_config", {}))
        recipe = {k: tuple(v) if isinstance(v, list) else v for k, v in recipe.items()}
        config = RLTrainConfig(**{**recipe, **overrides})
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in self.task.env_kwargs.items()}
        state, model, info = train_rl(self.algo, self.task.env_id, kw, config)
        self._set_model(model, state)
        self._missing = None
        previous = self.model_config.get("command", "the default recipe")
        self.model_config = {
            **checkpoint_config(self.registry_name, self.task, model, config, info),
            "command": f"{type(self).__name__}.learn(**{overrides!r}) from {previous}",
        }
        return self

    def checkpoint_config(self) -> dict[str, Any]:
        """The model's ``config.json`` (env, model, recipe, command)."""
        self._require_model()
        return {**self.model_config, "agent": self.registry_name, "hparams": {}}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """SB3's ``policy.state_dict()``, float32 CPU tensors."""
        return policy_state(self.policy)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load SB3 policy weights (as :meth:`state_dict` gives them)."""
        try:
            load_policy_state(self.policy, state)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{self.registry_name} state does not fit: {exc}; train one with: {self._command}"
            ) from exc

    def save(self, path: str | Path) -> Path:
        """Save the model folder (raises :class:`CheckpointError` without a trained model)."""
        self._require_model()
        return super().save(path)


_DESCRIPTION = (
    "stable-baselines3 {algo} baseline (MlpPolicy) in an action wrapper (default: "
    "optimal-structure on FullyDigitalFDD, residual on the hybrids, pga-residual (a phase "
    "correction on PGA+M(10)) on ModularUplink, "
    "margin on OutageHybrid; a model keeps the wrapper it was trained in); trained with "
    "examples/train.py"
)


@register_agent(
    "ppo",
    env_ids=ENV_IDS,
    description=_DESCRIPTION.format(algo="PPO")
    + "; committed models: every env at its defaults, FullyDigitalFDD rayleigh N=4 K=4 10 dB",
    trainer="agents.rl.train:main",
    checkpoint=None,
)
class PPOAgent(RLAgent):
    """PPO (Schulman et al. 2017) policy of stable-baselines3 (see :class:`RLAgent`)."""

    algo = "ppo"


@register_agent(
    "sac",
    env_ids=ENV_IDS,
    description=_DESCRIPTION.format(algo="SAC"),
    trainer="agents.rl.train:main",
    checkpoint=None,
)
class SACAgent(RLAgent):
    """SAC (Haarnoja et al. 2018) policy of stable-baselines3 (see :class:`RLAgent`)."""

    algo = "sac"


@register_agent(
    "td3",
    env_ids=ENV_IDS,
    description=_DESCRIPTION.format(algo="TD3"),
    trainer="agents.rl.train:main",
    checkpoint=None,
)
class TD3Agent(RLAgent):
    """TD3 (Fujimoto et al. 2018) policy of stable-baselines3 (see :class:`RLAgent`)."""

    algo = "td3"
