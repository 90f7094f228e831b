r"""U-PGA+M of paper 004 as registered agents: ``upga_m``, ``upga_m_sparse``, ``upga_m_quantized``.

Each agent loads a trained :math:`\boldsymbol\theta` (committed model under
``agents/pretrained/<agent>/ModularUplink-v0[-variant]/`` or ``checkpoint=``) and runs the
unfolded PGA+M of :mod:`agents.upga_m.model` with the env's hard projection; the trainer is
:mod:`agents.upga_m.train` (``examples/train.py --agent upga_m ...``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from agents.base import Agent, CheckpointError, register_agent
from agents.cli import train_command
from agents.pretrained import (
    PRETRAINED_DIR,
    check_env_config,
    env_config_dict,
    pretrained_dir,
    read_checkpoint,
    read_config,
    resolve_checkpoint,
)
from agents.rules.pga_momentum import (
    ModularProblem,
    check_modular_task,
    random_unit_modulus_panels,
)
from agents.upga_m.model import (
    ENV_ID,
    MODEL_KEYS,
    PANEL_TRANSFERS,
    check_theta,
    transfer_theta,
    unfolded_pga_m,
)
from agents.upga_m.train import env_options
from beamgym._validation import check_int
from beamgym.envs.modular_uplink import ModularUplinkKnown, ModularUplinkTask
from beamgym.physics.projections import count_active_phase_shifters

__all__ = ["UPGAMAgent", "UPGAMQuantizedAgent", "UPGAMSparseAgent", "committed_command"]


def committed_variants(agent: str) -> list[str]:
    """The variants of ``agent`` with a committed model (``""``: the default scenario)."""
    root = pretrained_dir(agent, ENV_ID).parent
    base = pretrained_dir(agent, ENV_ID).name
    if not root.is_dir():
        return []
    names = [f.name for f in root.iterdir() if (f / "checkpoint.pt").is_file()]
    return sorted(n[len(base) + 1 :] if n != base else "" for n in names if n.startswith(base))


def committed_command(agent: str, variant: str = "") -> str:
    """The command that (re)trains the committed model ``agent`` / ``variant`` into its folder.

    The env keywords are those stored with the committed model (none when it is missing: the
    trainer's defaults are the agent's scenario), written as the trainer's options.
    """
    out = pretrained_dir(agent, ENV_ID, variant)
    try:
        kw = read_config(out).get("env_kwargs", {})
    except CheckpointError:
        kw = {}
    rel = out.relative_to(PRETRAINED_DIR.parents[1])
    return train_command(agent, ENV_ID, **env_options(kw), out=rel)


# ---- agents -----------------------------------------------------------------------------------
_DESC = (
    "U-PGA+M, paper 004 Sec. III-B: PGA+M (Alg. 1) unfolded into J layers with learned "
    "per-entry steps and momenta (eq. 11), log(1+j) loss, Alg. 2; committed model"
)


@register_agent(
    "upga_m",
    env_ids=(ENV_ID,),
    description=_DESC + " (Scenario 1; variant=scenario4 / scenario5 for the transfers)",
    trainer="agents.upga_m.train:main",
    checkpoint=None,
    variant="",
    panel_transfer="kron",
    seed=0,
)
class UPGAMAgent(Agent):
    r"""U-PGA+M (paper 004 Sec. III-B, IV-D): the unfolded PGA+M with learned hyperparameters.

    Loads a trained :math:`\boldsymbol\theta` (eq. 11 / 21) and runs :func:`unfolded_pga_m`
    with the hard projection of the env's constraint from the random unit-modulus start of
    the classical solvers (``seed``). Trained models live under
    ``agents/pretrained/<agent>/ModularUplink-v0[-variant]/`` (``examples/train.py``).

    Transfer without retraining (Sec. III-B3): the env may have another ``K``, ``B``, ``T`` or
    SNR than the training env; its ``P`` may be any multiple ``c P0`` of the trained ``P0``
    (``panel_transfer``: ``"kron"`` or ``"mean"``, :func:`transfer_theta`). ``N``, ``L``, the
    constraint, ``Q`` and ``zeta`` must match (else :class:`~agents.base.CheckpointError`).

    Args:
        env: A ModularUplink-v0 env or task.
        checkpoint: Path of a checkpoint (file or folder); ``None`` loads the committed model of
            ``variant``.
        variant: Committed model: ``""`` (the agent's default scenario), ``"scenario2"``
            (Scenario 2's sizes on Rayleigh channels), ``"scenario4"`` (trained on Scenario 4,
            for Scenario 3) or ``"scenario5"`` (trained on Scenario 5, for Scenario 6); only
            for ``upga_m``.
        panel_transfer: ``"kron"`` (default) or ``"mean"``, used when the env has more panels.
        seed: Seed of the random start :math:`\mathbf W_0` (default 0, as the classical agents).
        J: Optional check of the number of layers (fixed by the checkpoint; set in
            :attr:`hparams` after loading so that :meth:`save` / :meth:`load` round-trip).
    """

    learnable = True

    def __init__(self, env: Any, **hparams: Any) -> None:
        hp = {"checkpoint": None, "variant": "", "panel_transfer": "kron", "seed": 0, **hparams}
        unknown = set(hp) - {"checkpoint", "variant", "panel_transfer", "seed", "J"}
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)} for {self._name()}")
        task = check_modular_task(env, self._name())
        if hp["panel_transfer"] not in PANEL_TRANSFERS:
            raise ValueError(
                f"panel_transfer must be one of {PANEL_TRANSFERS}, got {hp['panel_transfer']!r}"
            )
        variant = hp["variant"] or ""
        if not isinstance(variant, str):
            raise ValueError(f"variant must be a string, got {type(variant).__name__} {variant!r}")
        if hp["checkpoint"] is None:
            committed = committed_variants(self._name())
            if variant not in committed:
                raise ValueError(
                    f"variant {variant!r} has no committed model for {self._name()}; committed "
                    f"variants: {committed} (or pass checkpoint=PATH)"
                )
        hp["seed"] = check_int(hp["seed"], "seed", minimum=0)
        ckpt = hp.pop("checkpoint")
        want_J = hp.pop("J", None)
        super().__init__(task, **{k: v for k, v in hp.items() if v != ""})
        self.task: ModularUplinkTask = task
        self.variant = variant
        self.checkpoint_path: Path | None = None
        self.train_config: dict[str, Any] = {}
        self.model_config: dict[str, Any] = {}
        self.trained_env_config: dict[str, Any] = env_config_dict(task)
        self._theta0: dict[str, torch.Tensor] | None = None
        self.theta: dict[str, torch.Tensor] | None = None
        self._load(ckpt)
        if want_J is not None and check_int(want_J, "J") != self.hparams["J"]:
            raise ValueError(
                f"J = {want_J} does not match the model's {self.hparams['J']} layers; J is fixed "
                "by the checkpoint (train one with --J)"
            )

    @classmethod
    def _name(cls) -> str:
        return cls.registry_name or cls.__name__

    # ---- checkpoints ---------------------------------------------------------------------------
    def _load(self, checkpoint: str | Path | None) -> None:
        name = self._name()
        # a fitting model for this env; the committed model's own command when it is missing
        fit = train_command(name, ENV_ID, **env_options(self.task.env_kwargs))
        cmd = committed_command(name, self.variant) if checkpoint is None else fit
        path = resolve_checkpoint(checkpoint, name, ENV_ID, cmd, self.variant)
        try:
            ckpt = read_checkpoint(path)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; retrain with: {cmd}") from exc
        if ckpt.config.get("agent") != name and checkpoint is None:
            raise CheckpointError(
                f"{path} holds agent {ckpt.config.get('agent')!r}, not {name!r}: {cmd}"
            )
        saved = ckpt.config.get("env_config", {})
        check_env_config(saved, self.task, MODEL_KEYS, path, fit)
        self.checkpoint_path = path
        self.model_config = dict(ckpt.config)
        self.train_config = dict(ckpt.config.get("train_config", {}))
        self.trained_env_config = dict(saved)
        self.load_state_dict(ckpt.state, path=path, command=fit)

    def learn(self, **overrides: Any) -> UPGAMAgent:
        r"""Retrain :math:`\boldsymbol\theta` from scratch with the stored recipe; returns ``self``.

        Runs Algorithm 2 (:func:`agents.upga_m.train.train_upga_m`, fresh :math:`\boldsymbol
        \theta` from the recipe's ``init``) on the env configuration the model was trained
        for, with the model's :class:`~agents.upga_m.train.UPGAMTrainConfig`, fields
        replaced by keyword arguments (e.g. ``epochs=2, n_train=64``: the training budget);
        with none it reproduces the recipe. The new :math:`\boldsymbol\theta` is transferred
        to the agent's env as at loading (Sec. III-B3).
        """
        from agents.upga_m.train import UPGAMTrainConfig, checkpoint_config, train_upga_m
        from beamgym.datasets import make_task

        recipe = {k: tuple(v) if isinstance(v, list) else v for k, v in self.train_config.items()}
        config = UPGAMTrainConfig(**{**recipe, **overrides})
        kw = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in self.model_config.get("env_kwargs", {}).items()
        }
        task = make_task(ENV_ID, precision=self.task.precision, **kw)
        theta, _, info = train_upga_m(task, config)
        state = {k: v.detach().cpu().float() for k, v in theta.items()}
        self.model_config = {
            **checkpoint_config(self._name(), task, config, info),
            "command": f"{type(self).__name__}.learn(**{overrides!r}) from the recipe of: "
            f"{self.model_config.get('command')}",
        }
        self.train_config = dict(self.model_config["train_config"])
        self.trained_env_config = dict(self.model_config["env_config"])
        self.load_state_dict(state)
        return self

    def checkpoint_config(self) -> dict[str, Any]:
        """The model's configuration (its training env, recipe and command) and the hparams."""
        hp = {k: v for k, v in self.hparams.items() if k not in ("checkpoint", "J")}
        return {**self.model_config, "agent": self._name(), "hparams": hp}

    def load_state_dict(
        self, state: dict[str, torch.Tensor], *, path: Any = None, command: str | None = None
    ) -> None:
        r"""Restore :math:`\boldsymbol\theta` (scaled to the env's ``P`` if needed)."""
        cmd = command or train_command(self._name(), ENV_ID, **env_options(self.task.env_kwargs))
        try:
            _, p0, _, _ = check_theta(dict(state))
        except ValueError as exc:
            raise CheckpointError(f"{path or 'state'}: {exc}; retrain with: {cmd}") from exc
        P = self.task.config.P
        if P % p0:
            raise CheckpointError(
                f"{path or 'state'} was trained for P = {p0} panels; the env has P = {P}, "
                f"not a multiple (Sec. III-B3 scales P by an integer c); train a model: {cmd}"
            )
        self._theta0 = {k: v.detach().clone().cpu() for k, v in state.items()}
        th = transfer_theta(self._theta0, P, self.hparams["panel_transfer"])
        self.theta = {
            k: v.to(device=self.task.device, dtype=self.task.rdtype) for k, v in th.items()
        }
        self.hparams["J"] = int(self.theta["alpha"].shape[0])

    def state_dict(self) -> dict[str, torch.Tensor]:
        r"""The learned :math:`\boldsymbol\theta` as trained (before any panel transfer)."""
        assert self._theta0 is not None
        return {k: v.clone() for k, v in self._theta0.items()}

    @property
    def num_parameters(self) -> int:
        """Learned scalars used under this env's constraint (eq. 11: 2JPNL; eq. 21: 3JPNL)."""
        assert self._theta0 is not None
        n = self._theta0["alpha"].numel()
        sparse = self.task.config.constraint in ("sparse", "sparse_quantized")
        return (3 if sparse else 2) * n

    # ---- solving -------------------------------------------------------------------------------
    def _w0(self, batch: int) -> torch.Tensor:
        t = self.task
        return random_unit_modulus_panels(
            self.hparams["seed"], batch, t.panel_shape, dtype=t.cdtype, device=t.device
        )

    def _run(self, known: ModularUplinkKnown) -> tuple[list[torch.Tensor], torch.Tensor]:
        assert self.theta is not None
        if not isinstance(known, ModularUplinkKnown):
            raise ValueError(
                f"{self._name()} takes task.known(instance) (a ModularUplinkKnown), got "
                f"{type(known).__name__}; never pass the true instance"
            )
        with torch.no_grad():
            W0 = self._w0(known.H_est.shape[0])
            iterates, _, stalled = unfolded_pga_m(
                self.task, known, self.theta, W0, need_rates=False
            )
        return iterates, stalled

    def solve(self, known: ModularUplinkKnown) -> torch.Tensor:
        """Feasible ``[batch, P, N, L]`` panels (hard projections) after ``J`` layers."""
        return self._run(known)[0][-1]

    def solve_trace(self, known: ModularUplinkKnown) -> list[torch.Tensor]:
        """Layer outputs ``[W_0, W_1, ..., W_J]`` (all feasible)."""
        return self._run(known)[0]

    def solve_with_info(
        self, known: ModularUplinkKnown
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """:meth:`solve` plus per-channel diagnostics, as the classical solvers report.

        Returns:
            ``(W, info)``: ``info`` holds ``rate_known`` (eq. 6 / K on ``H_est``),
            ``active_phase_shifters``, ``feasible`` and ``stalled`` (``[batch]`` each).
        """
        iterates, stalled = self._run(known)
        W = iterates[-1]
        with torch.no_grad():
            rate = ModularProblem(self.task, known).rate(W) / self.task.config.K
            fixed = ~self.task._changed(W, self.task.project(W))
            fin = torch.isfinite(torch.view_as_real(W)).flatten(1).all(-1)
            info = {
                "rate_known": rate,
                "active_phase_shifters": count_active_phase_shifters(W),
                "feasible": fixed & fin & ~stalled & torch.isfinite(rate),
                "stalled": stalled,
            }
        return W, info


@register_agent(
    "upga_m_sparse",
    env_ids=(ENV_ID,),
    description=(
        "Power-aware U-PGA+M, paper 004 Sec. IV-D: sparse phase shifters, per-entry lambda_j "
        "(eq. 21), surrogate eq. 22 + l1 target eq. 25 in training, hard eq. 18 with "
        "S_max = 0.75 NLP; Scenario 2 sizes on Rayleigh channels (QuaDRiGa unavailable)"
    ),
    env_kwargs={
        ENV_ID: {"P": 4, "L": 2, "N": 3, "B": 4, "K": 5, "constraint": "sparse", "s_max": 18}
    },
    trainer="agents.upga_m.train:main",
    checkpoint=None,
    variant="",
    panel_transfer="kron",
    seed=0,
)
class UPGAMSparseAgent(UPGAMAgent):
    """U-PGA+M for sparse phase shifters (paper 004 Sec. IV-A, IV-D, Figs. 11-12).

    Same arguments as :class:`UPGAMAgent`; the committed model is trained on Scenario 2's
    sizes (``P=4, L=2, N=3, B=4, K=5``) with ``constraint="sparse", s_max=18``
    (:math:`0.75 NLP`) on i.i.d. Rayleigh channels (the paper's QuaDRiGa data is unavailable).
    """


@register_agent(
    "upga_m_quantized",
    env_ids=(ENV_ID,),
    description=(
        "Power-aware U-PGA+M, paper 004 Sec. IV-D: 4-bit phase shifters (Q=16), surrogate "
        "eq. 23 in training, hard eq. 20 at inference; Scenario 1 (Figs. 13-14)"
    ),
    env_kwargs={ENV_ID: {"constraint": "quantized"}},
    trainer="agents.upga_m.train:main",
    checkpoint=None,
    variant="",
    panel_transfer="kron",
    seed=0,
)
class UPGAMQuantizedAgent(UPGAMAgent):
    """U-PGA+M for ``Q``-level quantized phase shifters (paper 004 Sec. IV-B, IV-D, Figs. 13-14).

    Same arguments as :class:`UPGAMAgent`; the committed model is trained on Scenario 1 with
    ``constraint="quantized"`` (``Q = 16``).
    """
