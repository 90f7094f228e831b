"""Train an SB3 agent (PPO / SAC / TD3) on a beamgym env through BatchedVecEnv, then score it.

CleanRL-style single file: an ``Args`` dataclass (each field documented; it IS the parser,
via ``agents.cli.dataclass_parser``) -> ``make_env`` (native vector env + an action wrapper of
:mod:`beamgym.wrappers` + :class:`beamgym.sb3.BatchedVecEnv`) -> SB3 ``learn`` -> the harness
scores the trained model on a fixed seeded test set beside MMSE (mean ± 95% CI).

Usage:
    python examples/train_rl.py
    python examples/train_rl.py --algo sac --wrapper residual --total-timesteps 20000
    python examples/train_rl.py --wrapper raw --env-kw channel=rayleigh N=4 K=4 snr_db=10
"""

from __future__ import annotations

import dataclasses
import time

import gymnasium as gym
from stable_baselines3 import PPO, SAC, TD3

import agents  # noqa: F401  (registers the agents)
import beamgym  # noqa: F401  (registers the envs)
from agents.base import make_agent, registered_agents
from agents.cli import dataclass_from_args, dataclass_parser, parse_env_kwargs
from agents.harness import evaluate_agent, mean_ci
from agents.rl import VectorMarginAction, VectorPGAResidualAction
from beamgym.datasets import make_instance_set
from beamgym.sb3 import BatchedVecEnv
from beamgym.wrappers import MappedPolicy
from beamgym.wrappers import vector as vw

WRAPPERS = {
    "raw": vw.RawAction,
    "residual": vw.ResidualAction,
    "optimal-structure": vw.OptimalStructureAction,
    "phase": vw.PhaseAction,
    "margin": VectorMarginAction,
    "pga-residual": VectorPGAResidualAction,
}
ALGOS = {"ppo": PPO, "sac": SAC, "td3": TD3}


@dataclasses.dataclass(frozen=True)
class Args:
    """Train an SB3 agent on a beamgym env with batched rollouts and score it."""

    env_id: str = "beamgym/FullyDigitalFDD-v0"
    """Registered beamgym id."""
    env_kw: tuple[str, ...] = ("channel=rayleigh", "N=4", "K=4", "snr_db=10")
    """Env configuration as key=value pairs (Python literals)."""
    wrapper: str = "optimal-structure"
    """Action parameterization: raw, residual, optimal-structure, phase or pga-residual
    (ModularUplink), margin (OutageHybrid)."""
    residual_scale: float = 0.5
    """Correction size s of the residual wrapper (dimensionless)."""
    algo: str = "ppo"
    """SB3 algorithm: ppo, sac or td3."""
    num_envs: int = 256
    """Sub-envs stepped in one batched physics call."""
    total_timesteps: int = 100_000
    """Env steps (instances) of training."""
    learning_rate: float = 3e-4
    """Adam learning rate."""
    n_steps: int = 8
    """PPO: steps per sub-env per rollout (rollout = n_steps * num_envs)."""
    batch_size: int = 256
    """Minibatch size."""
    seed: int = 1
    """Seed of the training envs and the model."""
    test_instances: int = 1000
    """Size of the fixed seeded test set."""
    test_seed: int = 12345
    """Seed of the test set (disjoint from training draws by construction of the seeds)."""
    save: str = ""
    """Path to save the SB3 model zip (empty: do not save)."""

    def __post_init__(self) -> None:
        if self.wrapper not in WRAPPERS:
            raise ValueError(f"wrapper must be one of {sorted(WRAPPERS)}, got {self.wrapper!r}")
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {sorted(ALGOS)}, got {self.algo!r}")
        for name in ("num_envs", "total_timesteps", "n_steps", "batch_size", "test_instances"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0 or not self.residual_scale > 0:
            raise ValueError("learning_rate and residual_scale must be > 0")


def make_env(args: Args) -> BatchedVecEnv:
    """Native vector env -> action wrapper -> SB3 VecEnv, seeded ``seed + i`` per sub-env."""
    venv = gym.make_vec(
        args.env_id,
        num_envs=args.num_envs,
        vectorization_mode="vector_entry_point",
        **parse_env_kwargs(args.env_kw),
    )
    kw = {"scale": args.residual_scale} if args.wrapper == "residual" else {}
    return BatchedVecEnv(WRAPPERS[args.wrapper](venv, **kw), seed=args.seed)


def make_model(args: Args, env: BatchedVecEnv):
    """The SB3 model of ``args.algo`` (MLP policy, CPU)."""
    kw = {"learning_rate": args.learning_rate, "batch_size": args.batch_size, "seed": args.seed}
    if args.algo == "ppo":
        kw["n_steps"] = args.n_steps
    else:
        kw["learning_starts"] = min(1000, args.total_timesteps // 2)
    return ALGOS[args.algo]("MlpPolicy", env, device="cpu", verbose=0, **kw)


if __name__ == "__main__":
    parser = dataclass_parser(Args, prog="train_rl.py")
    args = dataclass_from_args(Args, parser.parse_args(), parser=parser)
    env_kwargs = parse_env_kwargs(args.env_kw)
    run_name = (
        f"{args.env_id.split('/')[-1]}__{args.algo}-{args.wrapper}__{args.seed}__{int(time.time())}"
    )
    print(f"run {run_name}")

    env = make_env(args)
    model = make_model(args, env)
    t0 = time.perf_counter()
    model.learn(total_timesteps=args.total_timesteps)
    train_s = time.perf_counter() - t0
    print(f"trained {model.num_timesteps} steps in {train_s:.1f} s")
    if args.save:
        model.save(args.save)

    # score on the fixed seeded test set, beside the model-based baseline
    test = make_instance_set(args.env_id, args.test_instances, args.test_seed, **env_kwargs)
    single = gym.make(args.env_id, **env_kwargs)
    policy = MappedPolicy(model, env.venv.action_map, name=f"{args.algo}+{args.wrapper}")
    rows = [evaluate_agent(policy, test, single_instances=0)]
    for baseline in ("mmse", "ghbf_perf"):  # the model-based reference of the env
        spec = registered_agents().get(baseline)
        if spec is not None and args.env_id in spec.env_ids:
            agent = make_agent(baseline, single)
            rows.append(evaluate_agent(agent, test, single_instances=0))
    for r in rows:
        mean, half = mean_ci(r.metric)
        print(f"{r.agent:28s} {r.metric_name} = {mean:.3f} ± {half or 0.0:.3f} (95% CI)")
