r"""KD-EDN+ as a beamgym agent: learned feedback at ``beamspace_feedback``'s budget, then MMSE+GA.

The users encode their estimated channels (:mod:`agents.kd_edn_plus.model`), the message
crosses the link (``link="noisy"``: paper 000's link, default; ``"noiseless"``), the BS
decodes :math:`\hat{\mathbf H}` and runs the error-aware MMSE and the learned GA steps on it.
The bits per user are exactly ``beamspace_feedback``'s at the same ``bits`` and ``link``
(:meth:`KDEDNPlusAgent.feedback_bits`).

The models are the committed ones (``agents/pretrained/kd_edn_plus/<env>[-key-value...]-link-
<link>/``, made by ``examples/train.py --agent kd_edn_plus``; :mod:`agents.pretrained`): the
one trained for the env's configuration (the SNR excepted: one model serves 5-20 dB), the
link and the budget, unless ``checkpoint=`` names another folder.
"""

from __future__ import annotations

import dataclasses
from os import PathLike
from pathlib import Path
from typing import Any

import torch

from agents.base import CheckpointError, register_agent
from agents.cli import train_command
from agents.common import DigitalPrecoderAgent, check_choice, check_hyperparameters
from agents.kd_edn.agent import committed_folder
from agents.kd_edn.train import KD_EDN_ENVS
from agents.kd_edn_plus.train import (
    checkpoint_config,
    model_from_checkpoint,
    train_kd_edn_plus,
)
from agents.pretrained import (
    CHECKPOINT_FILE,
    PRETRAINED_DIR,
    check_env_config,
    env_config_dict,
    env_name,
    load_module_state,
    module_state,
    read_checkpoint,
    read_config,
    resolve_checkpoint,
)
from agents.rules.problem import SolverProblem
from beamgym._validation import check_int
from beamgym.physics.feedback import LINKS
from beamgym.structures import TensorDataclass

__all__ = ["KDEDNPlusAgent", "find_model"]

NAME = "kd_edn_plus"


def find_model(task: Any, link: str, bits: int) -> Path | None:
    """The committed ``checkpoint.pt`` for the env configuration of ``task``, ``link``, ``bits``.

    Looks at ``agents/pretrained/kd_edn_plus/<env-name>*/`` in name order and returns the first
    whose ``config.json`` has the env id, the env configuration (``snr_db`` excepted), the
    link and the budget; ``None`` if there is none.
    """
    root = PRETRAINED_DIR / NAME
    if not root.is_dir():
        return None
    base = env_name(task.env_id)
    want = env_config_dict(task)
    keys = [k for k in want if k != "snr_db"]
    for folder in sorted(root.iterdir()):
        if not (folder.name.startswith(base + "-") and (folder / CHECKPOINT_FILE).is_file()):
            continue
        try:
            cfg = read_config(folder)
        except CheckpointError:  # unreadable: the explicit load reports it
            continue
        train = cfg.get("train_config", {})
        saved = cfg.get("env_config", {})
        same_env = all(_norm(saved.get(k)) == _norm(want.get(k)) for k in keys)
        if (
            cfg.get("env_id") == task.env_id
            and same_env
            and train.get("link") == link
            and train.get("bits") == bits
        ):
            return folder / CHECKPOINT_FILE
    return None


def _norm(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_norm(x) for x in v]
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    return v


@register_agent(
    NAME,
    env_ids=KD_EDN_ENVS,
    trainer="agents.kd_edn_plus.train:main",
    description="KD-EDN+ (issue 11): learned refinement of beamspace_feedback at its bits "
    "(STE encoder gains, learned dequantizer and residual decoder, error-aware MMSE, learned "
    "GA steps), trained end to end on the deployed pipeline (committed models)",
)
class KDEDNPlusAgent(DigitalPrecoderAgent):
    r"""A trained KD-EDN+ model as an agent (module docstring).

    Args:
        env: FullyDigitalFDD-v0 (MISO or MIMO), FarFieldHybrid-v0 (``analog="steering"``) or
            NearFieldHybrid-v0 (env or task).
        checkpoint: Model folder or file (``examples/train.py`` output); ``None``: the
            committed model of this env configuration, link and budget.
        link: ``"noisy"`` (paper 000's link) or ``"noiseless"``; ``None``: the checkpoint's
            link, or ``"noisy"`` for the committed models.
        bits: Budget per user, as ``beamspace_feedback``'s; ``None``: the checkpoint's, or
            128 for the committed models.
        seed: Seed of the link-error generator (same seed and calls -> same numbers).

    Raises:
        CheckpointError: No committed model / unreadable file / a model trained for another
            env configuration, link or budget; the message names the training command.
    """

    learnable = True

    def __init__(
        self,
        env: Any,
        checkpoint: str | None = None,
        link: str | None = None,
        bits: int | None = None,
        seed: int = 0,
        **unknown: Any,
    ) -> None:
        check_hyperparameters(self, unknown, ("checkpoint", "link", "bits", "seed"))
        if link is not None:
            check_choice(link, "link", LINKS)
        if bits is not None:
            check_int(bits, "bits")
        check_int(seed, "seed", minimum=0)
        super().__init__(env)
        if checkpoint is not None and not isinstance(checkpoint, str | PathLike):
            raise ValueError(
                f"checkpoint must be None (the committed model) or a path to a model folder or "
                f"file, got {type(checkpoint).__name__} {checkpoint!r}"
            )
        if checkpoint is not None:  # an explicit model: link and budget default to its own
            saved = read_config(checkpoint).get("train_config", {})
            link = saved.get("link", "noisy") if link is None else link
            bits = saved.get("bits", 128) if bits is None else bits
        link = "noisy" if link is None else link
        bits = 128 if bits is None else bits
        self.hparams = {"link": link, "bits": bits}
        if checkpoint is not None:
            self.hparams["checkpoint"] = str(checkpoint)
        env_id = self.task.env_id
        changed = {k: v for k, v in self.task.env_kwargs.items() if k != "snr_db"}
        options: dict[str, Any] = {"link": link}
        if bits != 128:
            options["bits"] = bits
        out = committed_folder(NAME, env_id, {**changed, "link": link})
        cmd = train_command(NAME, env_id, changed, **options, out=out)
        if checkpoint is None:
            checkpoint = find_model(self.task, link, bits)  # type: ignore[assignment]
        path = resolve_checkpoint(checkpoint, NAME, env_id, cmd)
        try:
            ckpt = read_checkpoint(path)
            self.model, self.train_config = model_from_checkpoint(ckpt)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc} (for this env: {cmd})") from exc
        cfg = self.train_config
        if cfg.env_id != env_id:
            raise CheckpointError(
                f"{path} was trained for {cfg.env_id}, not {env_id}; train one with: {cmd}"
            )
        if (cfg.link, cfg.bits) != (link, bits):
            raise CheckpointError(
                f"{path} was trained for link={cfg.link!r}, bits={cfg.bits}, not link={link!r}, "
                f"bits={bits}; train one with: {cmd}"
            )
        saved_env = env_config_dict(cfg.make_task())
        keys = tuple(k for k in saved_env if k != "snr_db")
        check_env_config(saved_env, self.task, keys, path, cmd)
        self.checkpoint_path = Path(path)
        self.model_config: dict[str, Any] = dict(ckpt.config)
        self.link = link
        self.budget = bits
        self._gen = torch.Generator().manual_seed(seed)
        self._snr_db: torch.Tensor | float = 0.0

    # ---- learning and persistence ----------------------------------------------------------------
    def learn(self, **overrides: Any) -> KDEDNPlusAgent:
        """Retrain from the ``beamspace_feedback`` start with the stored recipe; returns ``self``.

        Runs :func:`~agents.kd_edn_plus.train.train_kd_edn_plus` with the model's
        :class:`~agents.kd_edn_plus.train.KDEDNPlusTrainConfig`, fields replaced by
        ``overrides`` (e.g. ``steps=300``). The env configuration, link and budget must still
        fit the agent.
        """
        config = dataclasses.replace(self.train_config, **overrides)
        saved = env_config_dict(config.make_task())
        check_env_config(
            saved, self.task, tuple(k for k in saved if k != "snr_db"), Path("learn"), "-"
        )
        if (config.link, config.bits) != (self.link, self.budget):
            raise ValueError("learn() cannot change link or bits; make another agent")
        self.model, _ = train_kd_edn_plus(config)
        self.train_config = config
        self.model_config = {
            **checkpoint_config(config, NAME),
            "command": f"{type(self).__name__}.learn(**{overrides!r}) from the recipe of: "
            f"{self.model_config.get('command')}",
        }
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The learned tensors (encoder gains, dequantizer, decoder, MMSE and GA tables)."""
        return module_state(self.model)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict` (the same architecture); raises CheckpointError otherwise."""
        load_module_state(self.model, state, self.name)

    def checkpoint_config(self) -> dict[str, Any]:
        """The model's configuration (its training env, recipe and command) and the hparams."""
        hp = {k: v for k, v in self.hparams.items() if k != "checkpoint"}
        return {**self.model_config, "agent": NAME, "hparams": hp}

    # ---- inference ----------------------------------------------------------------------------
    def _design(self, prob: SolverProblem) -> torch.Tensor:
        snr = torch.as_tensor(self._snr_db, dtype=prob.power.dtype).reshape(-1)
        W, H_hat = self.model(prob, snr.expand(prob.power.shape[0]), self._gen)
        self.last_info = {"feedback_nmse": self.model.nmse(prob.H, H_hat).mean(-1)}
        return W

    def solve(self, known: TensorDataclass) -> Any:
        """Beamformers from what the BS knows, through the learned feedback chain."""
        self._snr_db = known.snr_db  # type: ignore[attr-defined]
        return super().solve(known)

    def solve_trace(self, known: TensorDataclass) -> list[Any]:
        """One element: the final beamformer (the link is drawn once per call)."""
        return [self.solve(known)]

    def feedback_bits(self) -> dict[str, float]:
        """Feedback per user: exactly ``beamspace_feedback``'s at the same ``bits`` and ``link``.

        (:meth:`agents.classical.beamspace_feedback.BeamspaceFeedbackAgent.feedback_bits`: the
        learned gains change which symbols are sent, never how many.)
        """
        return self.model.front.feedback_bits()
