"""Helpers shared by the agent packages: hyperparameter checks and the digital-precoder base."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from agents.base import Agent
from agents.rules.problem import SolverEnv, SolverProblem, problem_from_known, solver_env
from beamgym.structures import TensorDataclass

__all__ = [
    "DigitalPrecoderAgent",
    "check_choice",
    "check_hyperparameters",
    "check_known_hyperparameters",
]


def check_hyperparameters(agent: Any, unknown: dict[str, Any], valid: tuple[str, ...]) -> None:
    """Reject hyperparameters an agent does not have.

    Args:
        agent: The agent (or its class); its ``registry_name`` (or class name) is named.
        unknown: The keyword arguments left over after the agent took its own.
        valid: The agent's hyperparameter names, listed in the message.

    Raises:
        ValueError: if ``unknown`` is not empty.
    """
    if unknown:
        cls = agent if isinstance(agent, type) else type(agent)
        name = getattr(cls, "registry_name", None) or cls.__name__
        raise ValueError(
            f"agent {name!r} has no hyperparameter(s) {sorted(unknown)}; valid: "
            f"{list(valid) or 'none'}"
        )


def check_known_hyperparameters(cls: type, unknown: dict[str, Any]) -> None:
    """:func:`check_hyperparameters` with the valid names read from ``cls.__init__``.

    Args:
        cls: The agent class (its ``__init__`` parameters other than ``self``, ``env`` and the
            catch-all ``unknown`` are the valid names).
        unknown: The leftover keyword arguments.

    Raises:
        ValueError: if ``unknown`` is not empty.
    """
    if unknown:
        params = inspect.signature(cls.__init__).parameters
        valid = [p for p in params if p not in ("self", "env", "unknown")]
        raise ValueError(
            f"unknown hyperparameter(s) {sorted(unknown)} for {cls.__name__}; valid: {valid}"
        )


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``; ValueError naming ``name`` and the choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


class DigitalPrecoderAgent(Agent):
    """Base of the agents that design the (digital) precoder for a predetermined analog part.

    The fully digital solvers of paper 000 (``mrt`` ... ``wmmse``) and KD-EDN share it: the env
    checks and the solver view (:func:`agents.rules.problem.problem_from_known`), and
    :meth:`beamformer`, which turns a designed precoder into the env's beamformer at full power
    (the env's adapter, :class:`agents.rules.problem.SolverEnv`). Subclasses implement
    :meth:`_design` (and optionally :meth:`_design_trace`).

    Attributes:
        solver_env: The env's :class:`~agents.rules.problem.SolverEnv` adapter.
        last_info: Per-instance diagnostics of the last :meth:`solve` (``[B]`` tensors), e.g.
            ``rank_deficient`` (ZF), ``iterations`` / ``converged`` (WMMSE).
    """

    def __init__(self, env: Any, **hparams: Any) -> None:
        super().__init__(env, **hparams)
        self.solver_env: SolverEnv = solver_env(self.task)
        self.last_info: dict[str, torch.Tensor] = {}

    @property
    def streams_and_dim(self) -> tuple[int, int]:
        """``(streams, transmit dimensions)`` of the env: ``(K*M, N)`` or ``(K, N_RF)``."""
        return self.solver_env.dims(self.task)

    def beamformer(self, known: TensorDataclass, W: torch.Tensor) -> Any:
        """The env's beamformer for the digital precoder ``W`` ``[B, N, S]``, at full power."""
        return self.solver_env.beamformer(self.task, known, W)

    def _design(self, prob: SolverProblem) -> torch.Tensor:
        raise NotImplementedError

    def _design_trace(self, prob: SolverProblem) -> list[torch.Tensor]:
        return [self._design(prob)]

    def solve(self, known: TensorDataclass) -> Any:
        """Beamformers from what the BS knows (the env's structured beamformer, full power)."""
        prob = problem_from_known(self.task, known)
        with torch.no_grad():
            W = self._design(prob)
        return self.beamformer(known, W)

    def solve_trace(self, known: TensorDataclass) -> list[Any]:
        """Iterates ``[W_0, ..., W_final]`` (one element for closed-form solvers)."""
        prob = problem_from_known(self.task, known)
        with torch.no_grad():
            Ws = self._design_trace(prob)
        return [self.beamformer(known, W) for W in Ws]
