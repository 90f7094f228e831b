r"""KD-EDN and its ablations as beamgym agents (paper 000 Sec. III-D, IV-C).

Each agent runs the inference stage of Algorithm 1 (lines 15-23) with a trained model: the
users encode their estimated (effective) channels, the latents are quantized and fed back with
the feedback error :math:`\Delta\mathbf z`, the BS decodes the initial beamformer
:math:`\mathbf W_0 = \mathcal F_\theta(\hat{\mathbf z})` and the channels
:math:`\hat{\mathbf H}_k = \mathcal J_\psi(\hat{\mathbf z}_k)`, and takes :math:`Q_i` gradient
steps of eq. (9) on :math:`\hat{\mathbf H}` (hybrid: on the effective channel with the
eq. (24) power weight).

The models are the committed ones (``agents/pretrained/<agent>/<env>[-variant]/``, made by
``examples/train.py``; :mod:`agents.pretrained`): the one trained for the env's configuration
(e.g. ``FullyDigitalFDD-v0-spatial-division/`` for ``placement="spatial-division"``), unless
``checkpoint=`` names another file.
A model fits an env when it was trained for the same env configuration, the SNR excepted (one
model serves the SNR set it was trained over, Sec. III-C).

The paper's MMSE+GA(Q_i) baseline with perfect feedback of the estimated channel is the
``mmse_ga`` agent of :mod:`agents.classical.fully_digital`.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import torch

from agents.base import CheckpointError, register_agent
from agents.cli import train_command
from agents.common import DigitalPrecoderAgent, check_choice, check_hyperparameters
from agents.kd_edn.model import feedback_bits, huffman_code, quantization_symbols
from agents.kd_edn.train import (
    KD_EDN_ENVS,
    checkpoint_config,
    model_from_checkpoint,
    train_kd_edn,
)
from agents.pretrained import (
    PRETRAINED_DIR,
    check_env_config,
    env_config_dict,
    find_committed,
    load_module_state,
    module_state,
    pretrained_dir,
    read_checkpoint,
    resolve_checkpoint,
)
from agents.rules.gradient import ETA_RULES, gradient_ascent
from agents.rules.problem import SolverProblem, problem_from_known
from beamgym._validation import check_int, check_positive
from beamgym.physics.feedback import LINKS, noisy_link_bits_bound
from beamgym.structures import TensorDataclass

__all__ = ["KDEDNAgent", "VARIANTS", "committed_folder"]

#: Agent name -> (paper name, default Q_i, envs with a committed model).
VARIANTS: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "kd_edn": ("KD-EDN (Q_t=5, Q_i=10)", 10, KD_EDN_ENVS),
    "edn_unsupervised": ("'Unsupervised' (alpha = 1, Q_t=5, Q_i=10)", 10, KD_EDN_ENVS),
    "edn_supervised": ("'Supervised' (alpha = 0, Q_t=5, Q_i=10)", 10, KD_EDN_ENVS[:1]),
    "kd_edn_q0": ("'KD-EDN, Q=0' (Q_t = Q_i = 0)", 0, KD_EDN_ENVS),
}


def committed_folder(agent: str, env_id: str, env_kwargs: dict[str, Any] | None = None) -> Path:
    """The committed-model folder of ``agent`` for an env configuration, relative to the repo.

    ``agents/pretrained/<agent>/<env>[-key-value...]`` (the keywords sorted): the folder the
    agent searches (:func:`~agents.pretrained.find_committed`), so a model trained into it is
    found.
    """
    variant = "-".join(f"{k}-{v}" for k, v in sorted((env_kwargs or {}).items()))
    return pretrained_dir(agent, env_id, variant).relative_to(PRETRAINED_DIR.parents[1])


class KDEDNAgent(DigitalPrecoderAgent):
    r"""A trained KD-EDN model as an agent (paper 000 Algorithm 1, inference stage).

    Args:
        env: FullyDigitalFDD-v0, FarFieldHybrid-v0 (``analog="steering"``) or
            NearFieldHybrid-v0 (env or task).
        checkpoint: Model file (``examples/train.py`` output); ``None``: the committed model
            of this agent and env.
        q_infer: :math:`Q_i` steps of eq. (9) on the reconstructed channel (paper: 10; the
            ``kd_edn_q0`` ablation: 0).
        eta: Step :math:`\bar\eta` of eq. (9); ``None``: the model's training value.
        eta_rule: ``"normalized"`` (training's rule) or ``"fixed"``.
        link: The feedback link (:data:`beamgym.physics.feedback.LINKS`): ``"noisy"``
            (default, the paper's Sec. III-D1 link: the quantized latent plus the feedback
            error :math:`\Delta\mathbf z \sim \mathcal N(0, \sigma_z^2)`) or
            ``"noiseless"`` (error-free link, quantization only).
        feedback_noise: Deprecated alias of ``link`` (``True``: ``"noisy"``, ``False``:
            ``"noiseless"``).
        seed: Seed of the feedback-error generator (same seed and call sequence -> same
            numbers).

    Raises:
        CheckpointError: No committed model / unreadable file / a model trained for another
            env configuration; the message names the training command.
    """

    learnable = True

    def __init__(
        self,
        env: Any,
        checkpoint: str | None = None,
        q_infer: int | None = None,
        eta: float | None = None,
        eta_rule: str = "normalized",
        link: str = "noisy",
        feedback_noise: bool | None = None,
        seed: int = 0,
        **unknown: Any,
    ) -> None:
        valid = ("checkpoint", "q_infer", "eta", "eta_rule", "link", "feedback_noise", "seed")
        check_hyperparameters(self, unknown, valid)
        name = type(self).registry_name or "kd_edn"
        q_default = VARIANTS.get(name, ("", 10, ()))[1]
        q_infer = q_default if q_infer is None else q_infer
        check_int(q_infer, "q_infer", minimum=0)
        if eta is not None:
            check_positive(eta, "eta")
        check_choice(eta_rule, "eta_rule", ETA_RULES)
        check_int(seed, "seed", minimum=0)
        check_choice(link, "link", LINKS)
        if feedback_noise is not None:
            if not isinstance(feedback_noise, bool):
                raise ValueError(f"feedback_noise must be True or False, got {feedback_noise!r}")
            warnings.warn(
                "feedback_noise is deprecated: pass link='noisy' (feedback_noise=True) or "
                "link='noiseless' (feedback_noise=False)",
                DeprecationWarning,
                stacklevel=2,
            )
            alias = "noisy" if feedback_noise else "noiseless"
            if link != "noisy" and link != alias:
                raise ValueError(
                    f"feedback_noise={feedback_noise} contradicts link={link!r}; pass link only"
                )
            link = alias
        hp: dict[str, Any] = {"q_infer": q_infer}
        if link != "noisy":
            hp["link"] = link
        if checkpoint is not None:
            hp["checkpoint"] = str(checkpoint)
        super().__init__(env, **hp)
        env_id = self.task.env_id
        changed = {k: v for k, v in self.task.env_kwargs.items() if k != "snr_db"}
        cmd = train_command(name, env_id, changed, out=committed_folder(name, env_id, changed))
        if checkpoint is None:  # the committed model that fits this env configuration
            checkpoint = find_committed(name, env_id, self.task)
        path = resolve_checkpoint(checkpoint, name, env_id, cmd)
        try:
            ckpt = read_checkpoint(path)
            self.model, self.train_config = model_from_checkpoint(ckpt)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc} (for this env: {cmd})") from exc
        if self.train_config.env_id != env_id:
            raise CheckpointError(
                f"{path} was trained for {self.train_config.env_id}, not {env_id}; train one "
                f"with: {cmd}"
            )
        saved = env_config_dict(self.train_config.make_task())
        keys = tuple(k for k in saved if k != "snr_db")
        check_env_config(saved, self.task, keys, path, cmd)
        self.model = self.model.to(self.task.device)
        self.checkpoint_path = Path(path)
        self.model_config: dict[str, Any] = dict(ckpt.config)
        self.q_infer = q_infer
        self.eta = self.train_config.eta if eta is None else float(eta)
        self.eta_rule = eta_rule
        self.link = link
        self._gen = torch.Generator().manual_seed(seed)
        self._code: dict[int, str] | None = None  # designed on first use (feedback_cost)

    # ---- learning and persistence ----------------------------------------------------------------
    def learn(self, **overrides: Any) -> KDEDNAgent:
        """Retrain the model from scratch with its stored recipe and return ``self``.

        Runs :func:`~agents.kd_edn.train.train_kd_edn` (Algorithm 1, fresh weights seeded by
        ``seed``) with the model's :class:`KDEDNTrainConfig`, fields replaced by ``overrides``
        (e.g. ``epochs=40, ch_epochs=100``: the training budget). With no overrides it
        reproduces the model's recipe. The env configuration of the recipe must still fit
        the agent's env.
        """
        config = dataclasses.replace(self.train_config, **overrides)
        saved = env_config_dict(config.make_task())
        check_env_config(
            saved, self.task, tuple(k for k in saved if k != "snr_db"), Path("learn"), "-"
        )
        model, _ = train_kd_edn(config)
        self.model = model.to(self.task.device)
        self.train_config = config
        self.model_config = {
            **checkpoint_config(config, self.registry_name),
            "command": f"{type(self).__name__}.learn(**{overrides!r}) from the recipe of: "
            f"{self.model_config.get('command')}",
        }
        self._code = None
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The network's tensors (encoder, beamformer decoder, channel decoder)."""
        return module_state(self.model)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict` (the same architecture); raises CheckpointError otherwise."""
        load_module_state(self.model, state, self.name)
        self._code = None

    def checkpoint_config(self) -> dict[str, Any]:
        """The model's configuration (its training env, recipe and command) and the hparams."""
        hp = {k: v for k, v in self.hparams.items() if k != "checkpoint"}
        return {**self.model_config, "agent": self.registry_name, "hparams": hp}

    @property
    def code(self) -> dict[int, str]:
        """The Huffman code of the latent symbols (designed once, on first use)."""
        if self._code is None:
            self._code = self._design_code()
        return self._code

    def _design_code(self, n: int = 256) -> dict[int, str]:
        """Huffman code of the latent symbols on TRAINING-distribution channels.

        ``n`` instances of the model's training configuration (its SNR set) drawn with the
        generator seed ``train_config.seed + 1``: never the test set.
        """
        task = self.train_config.make_task()
        gen = torch.Generator().manual_seed(self.train_config.seed + 1)
        known = task.known(task.sample(gen, n))
        prob = problem_from_known(task, known)
        with torch.no_grad():
            z = self.model.encode(prob.linear_channel, known.snr_db)  # type: ignore[attr-defined]
        b = self.model.cfg.bits
        return huffman_code(torch.bincount(quantization_symbols(z, b).flatten(), minlength=2**b))

    # ---- inference, Algorithm 1 lines 16-23 ------------------------------------------------------
    def _run(self, prob: SolverProblem, known: TensorDataclass, trace: bool) -> list[torch.Tensor]:
        m = self.model
        H_est = prob.linear_channel
        snr_db = known.snr_db  # type: ignore[attr-defined]
        with torch.no_grad():
            z = m.encode(H_est, snr_db)  # line 17: z_k = G_phi(H~_k) at each user
            z_hat = m.feedback(z, self._gen, noise=self.link == "noisy")  # lines 18-20
            W0 = m.initial_beamformer(z_hat, prob.power, prob.Q).to(H_est.dtype)  # line 21
            H_hat = m.reconstruct_channel(z_hat, snr_db).to(H_est.dtype)  # line 21
            out = gradient_ascent(  # line 22: Q_i steps of eq. (9) on H^
                H_hat,
                W0,
                prob.power,
                self.q_infer,
                self.eta,
                eta_rule=self.eta_rule,
                power_weight=prob.Q,
                return_trace=trace,
            )
        if m.cfg.bits > 0:
            self.last_info = {"symbols": quantization_symbols(z, m.cfg.bits)}
        return list(out[1]) if trace else [out]  # type: ignore[index]

    def feedback_cost(self, known: TensorDataclass) -> dict[str, float]:
        """Measured feedback bits per user of a batch (:func:`agents.kd_edn.model.feedback_bits`).

        Empirical entropy of the batch's symbols, fixed-length bits, and the bits the agent's
        Huffman code (designed on training data, :meth:`_design_code`) actually spends.

        Raises:
            ValueError: The model has no quantizer (``bits = 0``).
        """
        if self.model.cfg.bits == 0:
            raise ValueError("this model feeds back unquantized latents (bits = 0)")
        prob = problem_from_known(self.task, known)
        with torch.no_grad():
            z = self.model.encode(prob.linear_channel, known.snr_db)  # type: ignore[attr-defined]
        b = self.model.cfg.bits
        return feedback_bits(quantization_symbols(z, b), b, self.code)

    @property
    def feedback_noise(self) -> bool:
        """Deprecated: ``link == "noisy"``."""
        return self.link == "noisy"

    def feedback_bits(self, known: TensorDataclass | None = None) -> dict[str, float]:
        r"""Feedback per user and coherence interval, in the three accountings of issue 11.

        * ``symbols_x_bits``: :math:`d\,b`, the fixed-length size of the quantized latent;
        * ``entropy_coded`` (``link="noiseless"`` only, where a source code applies): the
          bits the agent's Huffman code (designed on training data, :meth:`_design_code`)
          spends, measured on ``known`` or, without it, on the code's own design set;
        * ``noisy_link_upper_bound`` (``link="noisy"`` only): what ``d`` uses of the noisy
          link can carry at most,
          :func:`beamgym.physics.feedback.noisy_link_bits_bound` (``d`` times the capacity
          bound of one symbol, docs/readings.md#000-feedback-accounting).

        A model without a quantizer (``bits = 0``) feeds back ``d`` unquantized reals: only
        ``noisy_link_upper_bound`` is finite then (``symbols_x_bits`` is ``inf``).

        Args:
            known: Optional batch the Huffman bits are measured on.

        Returns:
            ``{"symbols_x_bits", "entropy_coded" | "noisy_link_upper_bound"}`` in bits per user.
        """
        cfg = self.model.cfg
        out: dict[str, float] = {
            "symbols_x_bits": float(cfg.d * cfg.bits) if cfg.bits > 0 else float("inf")
        }
        if self.link == "noisy":
            b = cfg.bits if cfg.bits > 0 else 16
            out["noisy_link_upper_bound"] = noisy_link_bits_bound(cfg.d, b, cfg.sigma_z2)
        elif cfg.bits > 0:
            if known is None:
                task = self.train_config.make_task()
                gen = torch.Generator().manual_seed(self.train_config.seed + 1)
                known = task.known(task.sample(gen, 256))
                prob = problem_from_known(task, known)
            else:
                prob = problem_from_known(self.task, known)
            with torch.no_grad():
                z = self.model.encode(prob.linear_channel, known.snr_db)  # type: ignore[attr-defined]
            cost = feedback_bits(quantization_symbols(z, cfg.bits), cfg.bits, self.code)
            out["entropy_coded"] = cost["coded_bits_per_user"]
        return out

    def solve(self, known: TensorDataclass) -> Any:
        r"""Beamformers :math:`\mathbf W_{Q_i}` of a batch (the env's structured beamformer)."""
        prob = problem_from_known(self.task, known)
        return self.beamformer(known, self._run(prob, known, trace=False)[0])

    def solve_trace(self, known: TensorDataclass) -> list[Any]:
        """``[W_0, W_1, ..., W_{Q_i}]``: the decoder's output and every step of eq. (9)."""
        prob = problem_from_known(self.task, known)
        return [self.beamformer(known, W) for W in self._run(prob, known, trace=True)]


def _register(name: str) -> None:
    paper_name, q_i, envs = VARIANTS[name]
    register_agent(
        name,
        env_ids=envs,
        trainer="agents.kd_edn.train:main",
        description=f"paper 000 {paper_name}: trained encoder-decoder, Algorithm 1 "
        "(committed model; examples/train.py trains one)",
    )(type(f"KDEDNAgent_{name}", (KDEDNAgent,), {"__doc__": KDEDNAgent.__doc__}))


for _name in VARIANTS:
    _register(_name)
