r"""Training of the RL baselines (PPO, SAC, TD3 of stable-baselines3) and their command line.

``examples/train.py --agent ppo|sac|td3`` with ``--env``, ``--env-kw``, ``--wrapper``,
``--total-steps`` and ``--seed`` (:func:`main`) trains the SB3 algorithm on the native batched
vector env of the env id seen through the action wrapper (default per env:
:data:`agents.rl.model.DEFAULT_WRAPPER`), logs the
learning curve (env steps, wall seconds, mean reward and metric of the training steps;
TensorBoard with ``--tensorboard DIR``), scores the deterministic policy on a validation set
(seed :data:`VALIDATION_SEED`, never the harness's test seed) before and after training, and
writes the model folder of :func:`agents.runs.write_run`: SB3's ``policy.state_dict()`` to
``checkpoint.pt`` and the algorithm, wrapper and hyperparameters to ``config.json``
(:mod:`agents.rl.model`).

Each env step is one channel instance (``horizon=1``): the reward is the env's metric of the
beamformer the wrapped action gives (e.g. the sum rate in bit/s/Hz on the true channel). With
``--reward-baseline`` the training reward is that reward minus the reward of the wrapper's
``a = 0`` design on the same instance (MMSE for the optimal-structure and residual wrappers;
:class:`agents.rl.wrappers.StartBaselineReward`): an action-independent control variate that
leaves the optimal policy unchanged and removes the spread of the reward across channel
instances, which otherwise swamps the effect of the action on this one-step problem. The
learning curve always logs the env's own metric.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from agents.cli import (
    add_dataclass_arguments,
    dataclass_from_args,
    name_flags,
    parse_env_kwargs,
)
from agents.harness import evaluate_agent
from agents.pretrained import env_config_dict
from agents.rl.model import (
    ALGORITHMS,
    DEFAULT_WRAPPER,
    ENV_IDS,
    RLModelConfig,
    make_action_map,
    make_algorithm,
    make_vec_env,
    policy_state,
)
from agents.runs import Panel, Series, progress_bar, run_parser, write_run
from beamgym.datasets import make_instance_set, make_task
from beamgym.envs.base import BeamformingTask
from beamgym.wrappers import MappedPolicy

__all__ = [
    "LOG_FIELDS",
    "TEST_SEED",
    "VALIDATION_SEED",
    "RLTrainConfig",
    "checkpoint_config",
    "main",
    "train_rl",
]

#: The harness's test seed (``examples/evaluate.py``): never trained or validated on.
TEST_SEED = 1_000_003
#: Seed of the validation instances (as every trainer and the harness's calibration use).
VALIDATION_SEED = 2_000_003
#: Columns of ``train_log.csv``.
LOG_FIELDS = ("steps", "seconds", "mean_reward", "mean_metric")


@dataclasses.dataclass(frozen=True)
class RLTrainConfig:
    """Training recipe of an RL baseline (every field is an ``examples/train.py`` option)."""

    wrapper: str = ""
    """Action wrapper: raw, residual, optimal-structure, phase, margin, pga-residual (empty: env
    default)."""
    residual_scale: float = 0.5
    """Correction size s of the residual wrapper (dimensionless)."""
    decades: float = 2.0
    """Range d of the optimal-structure wrapper's exponential maps (decades)."""
    max_margin_db: float = 6.0
    """Largest per-user margin of the margin wrapper (dB)."""
    phase_scale: float = 0.05
    """Largest phase turn of the pga-residual wrapper, as a fraction s of pi (0 < s <= 1)."""
    pga_iters: int = 10
    """PGA+M iterations J of the pga-residual wrapper's start."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy and value/critic MLPs."""
    total_steps: int = 200_000
    """Env steps (channel instances) of training."""
    num_envs: int = 256
    """Sub-envs stepped in one batched physics call."""
    learning_rate: float = 3e-4
    """Adam learning rate."""
    batch_size: int = 256
    """Minibatch size."""
    n_steps: int = 8
    """PPO: steps per sub-env per rollout (rollout = n_steps * num_envs)."""
    n_epochs: int = 10
    """PPO: optimization epochs per rollout."""
    log_std_init: float = 0.0
    """PPO/SAC: initial log standard deviation of the Gaussian policy (TD3: unused)."""
    final_lr_fraction: float = 1.0
    """Learning rate at the end as a fraction of ``learning_rate`` (linear decay; 1: constant)."""
    reward_baseline: bool = False
    """Train on the reward minus the reward of the wrapper's ``a = 0`` design on the same
    instance (:class:`agents.rl.wrappers.StartBaselineReward`; the optimal policy is unchanged)."""
    learning_starts: int = 1000
    """SAC/TD3: env steps of random actions before the first update."""
    buffer_size: int = 100_000
    """SAC/TD3: replay buffer size in transitions (memory ~ 8 * obs_dim * buffer_size bytes)."""
    gradient_steps: int = 1
    """SAC/TD3: gradient steps per batched env step (of ``num_envs`` transitions)."""
    seed: int = 1
    """Seed of the training envs and of the model (not the test or validation seed)."""
    log_every: int = 2048
    """Env steps per row of train_log.csv."""
    n_val: int = 500
    """Validation instances scored before and after training."""
    val_seed: int = VALIDATION_SEED
    """Seed of the validation instances."""
    tensorboard: str = ""
    """TensorBoard log folder (empty: none; needs the tensorboard package)."""

    def __post_init__(self) -> None:
        for name in (
            "total_steps",
            "num_envs",
            "batch_size",
            "n_steps",
            "n_epochs",
            "buffer_size",
            "gradient_steps",
            "log_every",
            "n_val",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        for name in ("learning_starts", "seed", "val_seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        if not math.isfinite(self.log_std_init):
            raise ValueError(f"log_std_init must be finite, got {self.log_std_init!r}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr):
            raise ValueError(f"learning_rate must be a finite number > 0, got {lr!r}")
        if lr <= 0:
            raise ValueError(f"learning_rate must be > 0, got {lr!r}")
        frac = self.final_lr_fraction
        if not (isinstance(frac, int | float) and not isinstance(frac, bool) and 0 < frac <= 1):
            raise ValueError(f"final_lr_fraction must be in (0, 1], got {frac!r}")
        if self.wrapper:  # the other wrapper fields are checked by RLModelConfig
            self.model_config("ppo")
        if TEST_SEED in (self.seed, self.val_seed):
            raise ValueError(f"seed {TEST_SEED} is the harness's test seed: never train on it")
        if self.seed == self.val_seed:
            raise ValueError("the training seed must differ from the validation seed (val_seed)")
        object.__setattr__(self, "net_arch", tuple(self.net_arch))

    def model_config(self, algo: str, env_id: str | None = None) -> RLModelConfig:
        """The :class:`RLModelConfig` of ``algo`` on ``env_id`` (the wrapper's default there)."""
        wrapper = self.wrapper or DEFAULT_WRAPPER.get(str(env_id), "raw")
        return RLModelConfig(
            algo=algo,
            wrapper=wrapper,
            residual_scale=self.residual_scale,
            decades=self.decades,
            max_margin_db=self.max_margin_db,
            net_arch=tuple(self.net_arch),
            phase_scale=self.phase_scale,
            pga_iters=self.pga_iters,
        )

    def algo_kwargs(self, algo: str) -> dict[str, Any]:
        """SB3 constructor arguments of ``algo`` from this recipe."""
        lr: Any = self.learning_rate
        if self.final_lr_fraction < 1:
            lr = _LinearSchedule(self.learning_rate, self.final_lr_fraction)
        kw: dict[str, Any] = {"learning_rate": lr, "batch_size": self.batch_size}
        if algo == "ppo":
            kw.update(n_steps=self.n_steps, n_epochs=self.n_epochs)
        else:
            kw.update(
                learning_starts=min(self.learning_starts, self.total_steps // 2),
                buffer_size=self.buffer_size,
                gradient_steps=self.gradient_steps,
            )
        if self.tensorboard:
            kw["tensorboard_log"] = self.tensorboard
        if algo != "td3":
            kw["init_kwargs"] = {"log_std_init": self.log_std_init}
        return kw

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON builtins."""
        return {**dataclasses.asdict(self), "net_arch": list(self.net_arch)}


@dataclasses.dataclass(frozen=True)
class _LinearSchedule:
    """SB3 learning-rate schedule: ``lr`` at the start, ``lr * final_fraction`` at the end."""

    lr: float
    final_fraction: float

    def __call__(self, progress_remaining: float) -> float:
        return self.lr * (self.final_fraction + (1 - self.final_fraction) * progress_remaining)


class _CurveCallback(BaseCallback):
    """Logs (env steps, seconds, mean reward, mean metric) every ``log_every`` env steps."""

    def __init__(self, log_every: int, on_row: Callable[[dict[str, float]], None]) -> None:
        super().__init__()
        self.log_every = log_every
        self.on_row = on_row
        self.t0 = time.perf_counter()
        self.last = 0
        self._reward = self._metric = 0.0
        self._count = 0

    def _on_step(self) -> bool:
        rewards = np.asarray(self.locals["rewards"], dtype=np.float64)
        self._reward += float(rewards.sum())
        self._metric += float(sum(float(i.get("metric", np.nan)) for i in self.locals["infos"]))
        self._count += rewards.size
        if self.num_timesteps - self.last >= self.log_every:
            self._emit()
        return True

    def _on_training_end(self) -> None:
        if self._count:
            self._emit()

    def _emit(self) -> None:
        row = {
            "steps": int(self.num_timesteps),
            "seconds": time.perf_counter() - self.t0,
            "mean_reward": self._reward / self._count,
            "mean_metric": self._metric / self._count,
        }
        self.logger.record("train/mean_reward", row["mean_reward"])
        self.logger.record("train/mean_metric", row["mean_metric"])
        self.last = self.num_timesteps
        self._reward = self._metric = 0.0
        self._count = 0
        self.on_row(row)


def _validation_metric(policy: Any, model: RLModelConfig, task: BeamformingTask, val: Any) -> float:
    """Mean metric of the deterministic policy on ``val`` (the harness's predict path)."""
    mapped = MappedPolicy(policy, make_action_map(task, model), name=model.algo)
    return float(np.mean(evaluate_agent(mapped, val, single_instances=0).metric))


def train_rl(
    algo: str,
    env_id: str,
    env_kwargs: dict[str, Any],
    config: RLTrainConfig,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> tuple[dict[str, torch.Tensor], RLModelConfig, dict[str, Any]]:
    """Train ``algo`` on ``env_id`` (configured by ``env_kwargs``) with the recipe ``config``.

    Args:
        algo: ``"ppo"``, ``"sac"`` or ``"td3"``.
        env_id: A supported env id (:data:`agents.rl.model.ENV_IDS`).
        env_kwargs: The env configuration.
        config: The training recipe.
        progress: Called with every log row (``steps``, ``seconds``, ``mean_reward``,
            ``mean_metric``).

    Returns:
        ``(state, model_config, info)``: SB3's policy weights (:func:`policy_state`), the
        model configuration that rebuilds the policy, and ``{"rows": [...], "seconds",
        "num_timesteps", "val_metric_start", "val_metric_final"}``.

    Raises:
        ValueError: Unknown ``algo`` or env, or a wrapper that does not apply to the env.
    """
    if algo not in ALGORITHMS:
        raise ValueError(f"algo must be one of {sorted(ALGORITHMS)}, got {algo!r}")
    if env_id not in ENV_IDS:
        raise ValueError(f"env_id must be one of {ENV_IDS}, got {env_id!r}")
    model = config.model_config(algo, env_id)
    task = make_task(env_id, **env_kwargs)
    make_action_map(task, model)  # the wrapper applies to the env (clear error if not)
    val = make_instance_set(env_id, n=config.n_val, seed=config.val_seed, **env_kwargs)
    env = make_vec_env(
        env_id,
        env_kwargs,
        model,
        config.num_envs,
        config.seed,
        reward_baseline=config.reward_baseline,
    )
    sb3 = make_algorithm(model, env, seed=config.seed, **config.algo_kwargs(algo))
    sb3.policy.set_training_mode(False)
    val_start = _validation_metric(sb3.policy, model, task, val)
    rows: list[dict[str, float]] = []

    def on_row(row: dict[str, float]) -> None:
        rows.append(row)
        if progress is not None:
            progress(row)

    t0 = time.perf_counter()
    sb3.learn(total_timesteps=config.total_steps, callback=_CurveCallback(config.log_every, on_row))
    seconds = time.perf_counter() - t0
    env.close()
    state = policy_state(sb3.policy)
    sb3.policy.set_training_mode(False)
    info = {
        "rows": rows,
        "seconds": seconds,
        "num_timesteps": int(sb3.num_timesteps),
        "val_metric_start": val_start,
        "val_metric_final": _validation_metric(sb3.policy, model, task, val),
    }
    return state, model, info


def checkpoint_config(
    algo: str,
    task: BeamformingTask,
    model: RLModelConfig,
    config: RLTrainConfig,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` content of a model (:mod:`agents.pretrained`), without the command."""
    out: dict[str, Any] = {
        "agent": algo,
        "env_id": task.env_id,
        "env_kwargs": task.env_kwargs,
        "env_config": env_config_dict(task),
        "hparams": {},
        "model": model.to_json(),
        "train_config": config.to_json(),
    }
    if info:
        out.update(
            num_timesteps=info["num_timesteps"],
            val_metric_start=info["val_metric_start"],
            val_metric_final=info["val_metric_final"],
            metric_name=task.metric_name,
        )
    return out


def main(argv: Sequence[str]) -> Path:
    r"""``examples/train.py --agent ppo|sac|td3 ...``: train and write a model folder.

    Usage::

        python examples/train.py --agent ppo --env beamgym/FullyDigitalFDD-v0 \
            --env-kw channel=rayleigh N=4 K=4 snr_db=10 --total-steps 200000 --seed 1
        python examples/train.py --agent sac --env beamgym/FarFieldHybrid-v0 --wrapper residual

    Every field of :class:`RLTrainConfig` is an option. Writes the model folder of
    :func:`agents.runs.write_run` to ``--out`` (default ``runs/<agent>``): ``checkpoint.pt``
    (the SB3 policy's weights), ``config.json`` (algorithm, wrapper, recipe, validation
    metric before/after, the exact command), ``train_log.csv`` (one row per ``--log-every``
    env steps) and ``train_curve.png``.

    Returns:
        The output folder.
    """
    argv = [str(a) for a in argv]
    p = run_parser(
        tuple(ALGORITHMS),
        ENV_IDS,
        "Train an SB3 RL baseline (PPO, SAC, TD3) in an action wrapper on batched envs.",
    )
    add_dataclass_arguments(p.add_argument_group("training (RLTrainConfig)"), RLTrainConfig)
    ns = p.parse_args(argv)
    config = dataclass_from_args(RLTrainConfig, ns, parser=p)
    try:
        env_kwargs = parse_env_kwargs(ns.env_kw)
        task = make_task(ns.env, **env_kwargs)
        make_action_map(task, config.model_config(ns.agent, ns.env))
    except (ValueError, TypeError) as exc:
        p.error(name_flags(str(exc), ["wrapper"], env_kw=_env_kw_keys(ns.env_kw)))
    if config.tensorboard:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            p.error("--tensorboard needs the tensorboard package (pip install tensorboard)")
    torch.set_num_threads(max(1, ns.threads or 1))
    bar = progress_bar(config.total_steps, ns.agent, not ns.no_progress)
    done = [0]

    def progress(row: dict[str, float]) -> None:
        bar(int(row["steps"]) - done[0], reward=f"{row['mean_reward']:.3f}")
        done[0] = int(row["steps"])

    state, model, info = train_rl(ns.agent, ns.env, env_kwargs, config, progress=progress)
    bar.close()  # type: ignore[attr-defined]
    rows = info["rows"]
    steps = [r["steps"] for r in rows]
    out = write_run(
        ns.out or Path("runs") / ns.agent,
        state=state,
        config=checkpoint_config(ns.agent, task, model, config, info),
        argv=argv,
        seconds=info["seconds"],
        rows=rows,
        fields=LOG_FIELDS,
        panels=(
            Panel(
                f"{ns.agent} + {model.wrapper}",
                "env steps",
                "mean reward of the training steps",
                [Series("train", steps, [r["mean_reward"] for r in rows])],
            ),
            Panel(
                "wall clock",
                "seconds",
                "mean reward of the training steps",
                [Series("train", [r["seconds"] for r in rows], [r["mean_reward"] for r in rows])],
            ),
        ),
    )
    print(
        f"trained {ns.agent}+{model.wrapper} for {info['num_timesteps']} steps in "
        f"{info['seconds']:.1f} s: validation metric {info['val_metric_start']:.4f} -> "
        f"{info['val_metric_final']:.4f} -> {out}"
    )
    return out


def _env_kw_keys(pairs: Sequence[str]) -> list[str]:
    """The keys of ``--env-kw`` pairs (for error messages; malformed pairs are skipped)."""
    return [str(p).partition("=")[0] for p in pairs if "=" in str(p)]
