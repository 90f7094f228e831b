"""The random-feasible agent: a uniform action mapped to the feasible set by the env's projection.

It is the floor every optimizer must beat, and it exercises each env's documented projection.
"""

from __future__ import annotations

from typing import Any

import torch

from agents.base import Agent, register_agent
from beamgym.envs import ENV_IDS
from beamgym.structures import TensorDataclass

__all__ = ["RandomAgent"]


@register_agent(
    "random",
    env_ids=ENV_IDS,
    description="uniform action in [-1, 1] mapped by the env's projection (every env)",
    seed=0,
)
class RandomAgent(Agent):
    """Uniform random actions, mapped to feasible beamformers by ``action_to_beamformer``.

    Args:
        env: The env or task.
        seed: Seed of the agent's own CPU generator; a fresh agent with the same seed draws the
            same actions for the same sequence of batch sizes.
    """

    def __init__(self, env: Any, seed: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        super().__init__(env, seed=seed)
        self._gen = torch.Generator(device="cpu").manual_seed(seed)

    def solve(self, known: TensorDataclass) -> Any:
        """Draw ``[B, action_dim]`` uniform actions and project them (env's documented map)."""
        a = torch.rand(known.batch_size, self.task.action_dim, generator=self._gen) * 2 - 1
        a = a.to(device=self.task.device, dtype=self.task.rdtype)
        return self.task.action_to_beamformer(a, known)[0]
