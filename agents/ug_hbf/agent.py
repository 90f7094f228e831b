r"""U-G-HBF-GCN of paper 002 as registered agents: ``ug_hbf_gcn``, ``ug_hbf_fcn``, ``ufdbf_gcn``.

Each agent loads a trained GCN (committed model under
``agents/pretrained/<agent>/OutageHybrid-v0/`` or ``checkpoint=``) and runs the unrolled model
of :mod:`agents.ug_hbf.model` (paper 002 Sec. IV-A, Fig. 2) on the known CSI; the trainer is
:mod:`agents.ug_hbf.train` (``examples/train.py --agent ug_hbf_gcn ...``).

* ``ug_hbf_gcn``: U-G-HBF-GCN (GCN of eq. 28, :math:`(L_{gcn}, F_{gcn}, F) = (3, 1, 32)`);
* ``ug_hbf_fcn``: U-G-HBF-FCN (degree 0, width 64: per-user fully connected nets, Sec. V-A-3);
* ``ufdbf_gcn``: U-FDBF-GCN (fully digital, :math:`\mathbf A = \mathbf I` effectively). The
  env offers it as ``num_rf = M``: the analog precoder is then the whole unitary 2D-DFT
  codebook, so ``A @ digital`` is any precoder; the agent needs that configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from agents.base import Agent, CheckpointError, register_agent
from agents.cli import train_command
from agents.pretrained import (
    check_env_config,
    env_config_dict,
    read_checkpoint,
    resolve_checkpoint,
)
from agents.ug_hbf.model import (
    ARCH_KEYS,
    ENV_ID,
    GCN,
    MODEL_KEYS,
    UGHBFModelConfig,
    ug_hbf_forward,
)
from agents.ug_hbf.train import AGENTS
from beamgym.envs.outage_hybrid import OutageHybridKnown, OutageHybridTask
from beamgym.physics.codebooks import select_codewords
from beamgym.structures import HybridBeamformer

__all__ = ["UFDBFGCNAgent", "UGHBFAgent", "UGHBFFCNAgent"]


def _check_task(env: Any, name: str) -> OutageHybridTask:
    from agents.base import task_of

    task = task_of(env)
    if not isinstance(task, OutageHybridTask):
        raise ValueError(f"{name} solves {ENV_ID}, got {type(task).__name__}")
    return task


@register_agent(
    "ug_hbf_gcn",
    env_ids=(ENV_ID,),
    description=(
        "U-G-HBF-GCN, paper 002 Sec. IV: greedy hybrid BF (eqs. 19-21) unrolled over L_rf = "
        "M_rf selections on GCN virtual covariances (eqs. 27-30), straight-through softmin "
        "(eq. 36), implicit gradient (Thm. IV.2); committed model"
    ),
    env_kwargs={ENV_ID: {"constraint_groups": True}},
    trainer="agents.ug_hbf.train:main",
    checkpoint=None,
)
class UGHBFAgent(Agent):
    r"""U-G-HBF-GCN (paper 002 Sec. IV-A): the unrolled greedy with a learned error model.

    Loads a trained GCN and runs :func:`~agents.ug_hbf.model.ug_hbf_forward` on
    ``known`` (eq. 35 start, :math:`L_{rf} = M_{rf}` greedy selections on the virtual
    covariances of eq. 27, problem (31), eqs. 32 and 34). After each :meth:`solve`,
    ``last_info`` holds per-instance ``feasible``, ``pmax_scaled``, ``power`` and the GCN
    coefficients ``z`` (``[B, I, 4]``).

    Args:
        env: An OutageHybrid-v0 env or task of the model's configuration (``MODEL_KEYS``).
        checkpoint: Path of a checkpoint (file or folder); ``None`` loads the committed model.
    """

    learnable = True

    def __init__(self, env: Any, checkpoint: str | Path | None = None, **hparams: Any) -> None:
        if hparams:
            raise ValueError(
                f"unknown hyperparameter(s) {sorted(hparams)} for {self._name()}; the model is "
                "fixed by its checkpoint (checkpoint=PATH)"
            )
        task = _check_task(env, self._name())
        super().__init__(task)
        self.task: OutageHybridTask = task
        self.net: GCN | None = None
        self.model = AGENTS[self._name()][0]
        self.model_config: dict[str, Any] = {}
        self.checkpoint_path: Path | None = None
        self.last_info: dict[str, torch.Tensor] = {}
        self._load(checkpoint)

    @classmethod
    def _name(cls) -> str:
        return cls.registry_name or cls.__name__

    def _fit_command(self) -> str:
        return train_command(self._name(), ENV_ID, self.task.env_kwargs)

    def _load(self, checkpoint: str | Path | None) -> None:
        name = self._name()
        cmd = self._fit_command()
        path = resolve_checkpoint(checkpoint, name, ENV_ID, cmd)
        try:
            ckpt = read_checkpoint(path)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; retrain with: {cmd}") from exc
        if ckpt.config.get("agent") != name:
            raise CheckpointError(
                f"{path} holds agent {ckpt.config.get('agent')!r}, not {name!r}: {cmd}"
            )
        check_env_config(ckpt.config.get("env_config", {}), self.task, MODEL_KEYS, path, cmd)
        arch = ckpt.config.get("model_config", {})
        try:
            self.model = UGHBFModelConfig(**{k: arch[k] for k in ARCH_KEYS if k in arch})
        except ValueError as exc:
            raise CheckpointError(f"{path}: bad model_config ({exc}); retrain with: {cmd}") from exc
        if self.model.fully_digital and self.task.config.num_rf != self.task.config.M:
            raise ValueError(
                f"{name} is fully digital and needs the env with num_rf = M = "
                f"{self.task.config.M}, got num_rf = {self.task.config.num_rf}"
            )
        self.model_config = dict(ckpt.config)
        self.checkpoint_path = path
        self.load_state_dict(ckpt.state, path=path, in_features=int(arch.get("in_features", 4)))

    def load_state_dict(
        self, state: dict[str, torch.Tensor], *, path: Any = None, in_features: int | None = None
    ) -> None:
        """Restore the GCN weights of eq. (28) (float32, batchnorm statistics included)."""
        f_in = in_features or (3 if self.task.config.csi == "perfect" else 4)
        m = self.model
        net = GCN(f_in, m.width, m.layers, m.degree, m.coef_bound)
        try:
            missing, unexpected = net.load_state_dict(dict(state), strict=False)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{path or 'state'}: weights do not fit the model ({exc}); retrain with: "
                f"{self._fit_command()}"
            ) from exc
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise CheckpointError(
                f"{path or 'state'}: missing {missing} / unexpected {unexpected} weights; "
                f"retrain with: {self._fit_command()}"
            )
        net.eval()
        self.net = net

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The GCN weights of eq. (28) (float32; batchnorm statistics, no step counter)."""
        assert self.net is not None
        return {
            k: v.detach().clone()
            for k, v in self.net.state_dict().items()
            if not k.endswith("num_batches_tracked")
        }

    def checkpoint_config(self) -> dict[str, Any]:
        """The model's configuration (training env, eqs. 27-30 architecture, recipe, command)."""
        return {**self.model_config, "agent": self._name(), "hparams": {}}

    def learn(self, **overrides: Any) -> UGHBFAgent:
        """Retrain by Algorithm 1 (eqs. 50-55) with the stored recipe; ``overrides`` set fields."""
        from agents.ug_hbf.train import UGHBFTrainConfig, train_ug_hbf
        from agents.ug_hbf.train import checkpoint_config as make_config
        from beamgym.datasets import make_task

        recipe = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in self.model_config.get("train_config", {}).items()
        }
        config = UGHBFTrainConfig(**{**recipe, **overrides})
        kw = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in self.model_config.get("env_kwargs", {}).items()
        }
        task = make_task(ENV_ID, **kw)
        state, _, info = train_ug_hbf(task, self.model, config)
        self.model_config = {
            **make_config(self._name(), task, self.model, config, info),
            "command": f"{type(self).__name__}.learn(**{overrides!r}) from the recipe of: "
            f"{self.model_config.get('command')}",
        }
        self.load_state_dict(state)
        return self

    # ---- solving -------------------------------------------------------------------------------
    def solve(self, known: OutageHybridKnown) -> HybridBeamformer:
        """Hybrid beamformers ``(analog [B, M, M_rf], digital [B, M_rf, I])``, eqs. (19)-(34)."""
        assert self.net is not None
        t = self.task
        with torch.no_grad():
            out = ug_hbf_forward(t, known, self.net, self.model)
        self.last_info = {
            "feasible": out.feasible,
            "pmax_scaled": out.pmax_scaled,
            "power": out.power,
            "z": out.z.detach(),
        }
        analog = select_codewords(t.codebook, out.indices.to(t.device))
        return HybridBeamformer(analog=analog, digital=out.digital.to(t.cdtype))

    @property
    def trained_env_config(self) -> dict[str, Any]:
        """The env configuration (Table 1 data parameters) of the model's training run."""
        return dict(self.model_config.get("env_config", env_config_dict(self.task)))


@register_agent(
    "ug_hbf_fcn",
    env_ids=(ENV_ID,),
    description=(
        "U-G-HBF-FCN, paper 002 Sec. V-A-3: U-G-HBF with per-user fully connected nets (GCN of "
        "degree 0, width 64); committed model"
    ),
    env_kwargs={ENV_ID: {"constraint_groups": True}},
    trainer="agents.ug_hbf.train:main",
    checkpoint=None,
)
class UGHBFFCNAgent(UGHBFAgent):
    """U-G-HBF-FCN (paper 002 Sec. V-A-3): same model with a degree-0 GCN (no user graph)."""


@register_agent(
    "ufdbf_gcn",
    env_ids=(ENV_ID,),
    description=(
        "U-FDBF-GCN, paper 002 Sec. V-A-3: fully digital U-G-HBF-GCN (A = unitary DFT matrix, "
        "env num_rf = M), GCN virtual covariances, implicit gradient; committed model"
    ),
    env_kwargs={ENV_ID: {"constraint_groups": True, "num_rf": 16}},
    trainer="agents.ug_hbf.train:main",
    checkpoint=None,
)
class UFDBFGCNAgent(UGHBFAgent):
    """U-FDBF-GCN (paper 002 Sec. V-A-3): the fully digital model; needs ``num_rf = M``."""
