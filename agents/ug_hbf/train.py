r"""Training of U-G-HBF-GCN / -FCN / U-FDBF-GCN, paper 002 Sec. IV-D and Algorithm 1 (App. C).

Primal-dual empirical risk minimization of problem (11) (eqs. 50-51): the Lagrangian

.. math:: J(\mathcal D,\theta,\lambda) = \widehat{\mathbb E}_{\mathcal S\sim\mathcal D}
          (\mathbf w^T\mathbf p_{\mathcal M}(\mathcal S;\theta)) + \sum_{d=1}^{D_c}\lambda_d
          \tilde g(\mathcal D_d,\theta) \quad (50)

with one outage constraint per constraint group :math:`d` of the env (``constraint_groups``;
Table 2's four pilot-power groups), minimized in :math:`\theta` by AdamW steps with adaptive
gradient clipping and maximized in :math:`\lambda \ge 0` by projected dual ascent (eq. 51,
Algorithm 1). The constraint surrogate (``constraint``):

* ``"anneal"`` (default, eqs. 52-53): :math:`\tilde g_{\beta_c} = 1 - P_{out} - \frac1I\sum_i
  \widehat{\mathbb E}\,\tilde u_{\beta_c}(\gamma_i^{-1}\mathrm{SINR}_i - 1)` with the logistic
  :math:`\tilde u_\beta(x) = (1 + e^{-\beta x})^{-1}` and :math:`\beta_c` adapted per group by
  exponential averaging of the inverse negated :math:`P_{out}`-quantile, bounded by
  :math:`\bar\beta_c` (eq. 53);
* ``"quantile"`` (eq. 54): :math:`\tilde g = \widehat{\mathcal Q}(\gamma_i - \mathrm{SINR}_i;
  1 - P_{out})` (dual step 0.002, Table 1).

The SINR is that of eq. (2) on the TRUE channel of the training instance, the model sees only
the known CSI. Convergence metric eq. (55) on validation data every ``val_interval`` steps:
:math:`J_{cm} = \frac1I\widehat{\mathbb E}_{val}(\mathbf w^T\mathbf p) + \sum_d\bar\lambda_d
[\hat g_d]_0^\infty`; the step sizes decay once by :math:`\eta_a` when :math:`J_{cm}` has not
reached a new minimum for ``patience`` steps, training stops after ``patience_stop`` steps
without one, after ``steps`` steps or after ``max_seconds``.

Table 1's values are the defaults; the choices the paper does not print are in
docs/readings.md#002-ug-hbf-training (initial :math:`\beta_c`, the clipping history, model
selection, the validation size used under a CPU budget).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from agents.cli import add_dataclass_arguments, dataclass_from_args, parse_env_kwargs
from agents.pretrained import (
    CheckpointError,
    check_env_config,
    env_config_dict,
    read_checkpoint,
    read_config,
)
from agents.runs import Panel, Series, progress_bar, run_parser, write_run
from agents.ug_hbf.model import (
    ARCH_KEYS,
    ENV_ID,
    GCN,
    MODEL_KEYS,
    UGHBFModelConfig,
    model_summary,
    true_sinr,
    ug_hbf_forward,
)
from beamgym._validation import check_int, check_number, check_positive
from beamgym.envs.outage_hybrid import OutageHybridInstance, OutageHybridTask

__all__ = [
    "AGENTS",
    "CONSTRAINTS",
    "UGHBFTrainConfig",
    "adaptive_clip_",
    "anneal_beta",
    "build_net",
    "checkpoint_config",
    "evaluate_model",
    "main",
    "outage_surrogate",
    "train_ug_hbf",
    "warm_start",
]

#: Differentiable outage constraints: eq. (52)-(53) or eq. (54).
CONSTRAINTS: tuple[str, ...] = ("anneal", "quantile")
#: Default validation seed (distinct from the benchmark's test and validation seeds).
VALIDATION_SEED = 2_000_013

#: Agent -> (model configuration, default env keywords).
AGENTS: dict[str, tuple[UGHBFModelConfig, dict[str, Any]]] = {
    "ug_hbf_gcn": (UGHBFModelConfig(), {"constraint_groups": True}),
    "ug_hbf_fcn": (
        UGHBFModelConfig(arch="fcn", width=64, degree=0),
        {"constraint_groups": True},
    ),
    "ufdbf_gcn": (
        UGHBFModelConfig(fully_digital=True),
        {"constraint_groups": True, "num_rf": 16},
    ),
}


@dataclasses.dataclass(frozen=True)
class UGHBFTrainConfig:
    """Configuration of :func:`train_ug_hbf` (paper 002 Table 1, Algorithm 1)."""

    steps: int = 26000
    """Maximum primal steps tau (the paper converges after (26 +- 9) 10^3, Sec. V-C)."""
    max_seconds: float = 0.0
    """Wall-clock budget in seconds (0: none); training stops at the first step beyond it."""
    batch_size: int = 200
    """Minibatch size |D~|. Table 1: 200."""
    n_train: int = 20000
    """Training instances |D_train| (drawn once). Table 1: 20000."""
    n_val: int = 5000
    """Validation instances |D_val|. Table 1: 5000."""
    val_interval: int = 100
    """Validation interval tau_val (steps). Table 1: 100."""
    lr: float = 5e-4
    """Primal step size eta_p (AdamW). Table 1: 0.0005."""
    dual_lr: float = 0.1
    """Dual step size eta_d. Table 1: 0.1 (0.002 for eq. 54)."""
    lr_decay: float = 0.2
    """Step size decay eta_a (applied once). Table 1: 0.2."""
    adam_beta1: float = 0.9
    """Adam smoothing beta_1. Table 1: 0.9."""
    adam_beta2: float = 0.99
    """Adam smoothing beta_2. Table 1: 0.99."""
    weight_decay: float = 0.1
    """AdamW weight decay. Table 1: 0.1."""
    selection_gradient: bool = True
    """Differentiate the greedy's selections by the softmin of eq. (36) (the paper); ``False``
    treats the selected beams as constants (docs/readings.md#002-ug-hbf-selection-gradient)."""
    constraint: str = "anneal"
    """Outage surrogate: ``"anneal"`` (eqs. 52-53) or ``"quantile"`` (eq. 54)."""
    beta_c_max: float = 50.0
    """Annealing bound beta_c-bar of eq. (53). Table 1: 50."""
    beta_c_rate: float = 0.01
    """Annealing smoothing eta_c of eq. (53). Table 1: 0.01."""
    dual_max: float = 100.0
    """Dual upper bound lambda_d-bar of eq. (55). Table 1: 100."""
    lambda_init: float = 0.0
    """Initial dual variables lambda_d^(0) (Algorithm 1: 0; a warm start for short runs)."""
    patience: int = 5000
    """Steps without a new J_cm minimum before the step sizes decay (tau_pat,1). Table 1."""
    patience_stop: int = 10000
    """Steps without a new J_cm minimum before training stops (tau_pat,2). Table 1."""
    clip_quantile: float = 0.9
    """Adaptive clipping: ||grad||_inf is clipped to this quantile of its history (Sec. V-A-1)."""
    clip_history: int = 1000
    """Length of the gradient-norm history of the clipping (not printed; readings)."""
    clip_warmup: int = 10
    """Steps before clipping starts (not printed; readings)."""
    seed: int = 0
    """Seed of the training data, batches and initialization."""
    val_seed: int = VALIDATION_SEED
    """Seed of the validation data (never the benchmark's test seed)."""
    init_from: str = ""
    """Warm start (not in the paper; ``""``: Algorithm 1's fresh start): a model folder written
    by this trainer for the same architecture and env. Its weights initialize the network and
    its final duals lambda_d and beta_c (``config.json`` ``result``) replace
    ``lambda_init``; AdamW's moments are not stored, so it is not an exact resume
    (docs/readings.md#002-ug-hbf-warm-start)."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "n_train", "n_val", "val_interval"):
            check_int(getattr(self, name), name)
        for name in ("patience", "patience_stop", "clip_history", "clip_warmup"):
            check_int(getattr(self, name), name)
        check_int(self.seed, "seed", minimum=0)
        check_int(self.val_seed, "val_seed", minimum=0)
        for name in ("lr", "dual_lr", "beta_c_max", "beta_c_rate", "dual_max"):
            check_positive(getattr(self, name), name)
        if check_number(self.lambda_init, "lambda_init") < 0:
            raise ValueError(f"lambda_init must be >= 0, got {self.lambda_init}")
        if check_number(self.max_seconds, "max_seconds") < 0:
            raise ValueError(f"max_seconds must be >= 0 (0: no limit), got {self.max_seconds}")
        for name in ("lr_decay", "adam_beta1", "adam_beta2", "clip_quantile", "beta_c_rate"):
            v = check_number(getattr(self, name), name)
            if not 0.0 < v <= 1.0:
                raise ValueError(f"{name} must lie in (0, 1], got {v}")
        if check_number(self.weight_decay, "weight_decay") < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not isinstance(self.selection_gradient, bool):
            raise ValueError(f"selection_gradient must be a bool, got {self.selection_gradient!r}")
        if self.constraint not in CONSTRAINTS:
            raise ValueError(f"constraint must be one of {CONSTRAINTS}, got {self.constraint!r}")
        if not isinstance(self.init_from, str):
            raise ValueError(f"init_from must be a path string, got {self.init_from!r}")
        if self.batch_size > self.n_train:
            raise ValueError(
                f"batch_size = {self.batch_size} exceeds n_train = {self.n_train}; lower it"
            )


# ---- the pieces of Algorithm 1 ------------------------------------------------------------------
def outage_surrogate(
    ratio: torch.Tensor,
    gamma: torch.Tensor,
    sinr: torch.Tensor,
    p_out: float,
    *,
    kind: str,
    beta_c: float = 50.0,
) -> torch.Tensor:
    r"""Differentiable outage constraint of one group, eq. (52) or eq. (54).

    Args:
        ratio: Real ``[n, I]`` :math:`\gamma_i^{-1}\mathrm{SINR}_i - 1` (true channel).
        gamma: Real ``[n, I]`` targets (eq. 54).
        sinr: Real ``[n, I]`` SINR (eq. 54).
        p_out: :math:`P_{out}`.
        kind: ``"anneal"`` (eq. 52 with :math:`\beta_c`) or ``"quantile"`` (eq. 54).
        beta_c: :math:`\beta_c` of eq. (52).

    Returns:
        Real scalar :math:`\tilde g` (positive: constraint violated).
    """
    if ratio.numel() == 0:
        raise ValueError("ratio must hold at least one instance of the group")
    if kind == "anneal":
        return 1.0 - p_out - torch.sigmoid(beta_c * ratio).mean()
    if kind == "quantile":
        return torch.quantile((gamma - sinr).flatten(), 1.0 - p_out)
    raise ValueError(f"kind must be one of {CONSTRAINTS}, got {kind!r}")


def anneal_beta(beta_c: float, ratio: torch.Tensor, p_out: float, cfg: UGHBFTrainConfig) -> float:
    r"""One step of the adaptive annealing parameter, eq. (53).

    .. math:: \beta_c \leftarrow (1-\eta_c)\beta_c + \frac{\eta_c}{\big[-\widehat{\mathcal Q}(
              \gamma_i^{-1}\mathrm{SINR}_i - 1; P_{out})\big]_{\bar\beta_c^{-1}}^\infty}

    Args:
        beta_c: Current :math:`\beta_c`.
        ratio: Real ``[n, I]`` :math:`\gamma_i^{-1}\mathrm{SINR}_i - 1` of the group's batch.
        p_out: :math:`P_{out}`.
        cfg: ``beta_c_rate`` (:math:`\eta_c`) and ``beta_c_max`` (:math:`\bar\beta_c`).

    Returns:
        The new :math:`\beta_c \in (0, \bar\beta_c]`.
    """
    qv = float(torch.quantile(ratio.detach().flatten().double(), p_out))
    inv = max(-qv, 1.0 / cfg.beta_c_max)
    return (1.0 - cfg.beta_c_rate) * beta_c + cfg.beta_c_rate / inv


def adaptive_clip_(
    params: Sequence[torch.nn.Parameter], history: list[float], cfg: UGHBFTrainConfig
) -> float:
    r"""Adaptive gradient clipping of Sec. V-A-1, in place, on :math:`\|\nabla_\theta J\|_\infty`.

    The gradient is scaled so that its :math:`\infty`-norm does not exceed the
    ``clip_quantile`` (0.90) quantile of the last ``clip_history`` norms (after
    ``clip_warmup`` steps); the unclipped norm is appended to ``history``.

    Returns:
        The unclipped :math:`\|\nabla_\theta J\|_\infty`.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    norm = max(float(g.abs().max()) for g in grads)
    if not math.isfinite(norm):
        for g in grads:
            g.zero_()
        return norm
    if len(history) >= cfg.clip_warmup:
        recent = torch.tensor(history[-cfg.clip_history :], dtype=torch.float64)
        cap = float(torch.quantile(recent, cfg.clip_quantile))
        if norm > cap > 0:
            for g in grads:
                g.mul_(cap / norm)
    history.append(norm)
    return norm


def build_net(model: UGHBFModelConfig, in_features: int, seed: int) -> GCN:
    """A freshly initialized GCN of eq. (28) (float32, seeded; Table 1's sizes from ``model``)."""
    torch.manual_seed(seed)
    return GCN(in_features, model.width, model.layers, model.degree, model.coef_bound)


def _in_features(task: OutageHybridTask) -> int:
    return 3 if task.config.csi == "perfect" else 4


def warm_start(
    path: str | Path, task: OutageHybridTask, model: UGHBFModelConfig
) -> tuple[dict[str, torch.Tensor], list[float], list[float | None]]:
    r"""Read a model folder of this trainer for :attr:`UGHBFTrainConfig.init_from`.

    Args:
        path: The model folder (or its ``checkpoint.pt``).
        task: The env the new run trains on; the folder's env must agree on ``MODEL_KEYS``.
        model: The new run's architecture; the folder's must be the same (``ARCH_KEYS``).

    Returns:
        ``(state, lambdas, beta_c)``: the weights, and the final dual variables
        :math:`\lambda_d` of eq. (51) and annealing sharpness :math:`\beta_c` of eq. (53) per
        constraint group.

    Raises:
        CheckpointError: Naming the folder, when it is unreadable, was trained for another env
            or architecture, or has no final duals for each constraint group.
    """
    ckpt = read_checkpoint(path)
    cfg = ckpt.config
    where = f"init_from={str(path)!r}"
    check_env_config(
        cfg.get("env_config", {}), task, MODEL_KEYS, ckpt.path, f"a run without {where}"
    )
    saved = cfg.get("model_config", {})
    mine = model_summary(model, _in_features(task))
    diff = [k for k in (*ARCH_KEYS, "in_features") if saved.get(k) != mine.get(k)]
    if diff:
        raise CheckpointError(
            f"{ckpt.path}: architecture differs from the run's in {diff} "
            f"({ {k: saved.get(k) for k in diff} } vs { {k: mine.get(k) for k in diff} }); "
            f"{where} needs the same model"
        )
    g = task.config.num_groups
    res = cfg.get("result", {})
    lam, beta = res.get("final_lambda"), res.get("final_beta_c")
    if not (isinstance(lam, list) and isinstance(beta, list) and len(lam) == len(beta) == g):
        raise CheckpointError(
            f"{ckpt.path}: config.json has no final_lambda / final_beta_c for the {g} "
            f"constraint groups (result: {sorted(res)}); {where} needs a folder of this trainer"
        )
    lams = [float(v) for v in lam]
    betas = [None if v is None else float(v) for v in beta]
    if not all(math.isfinite(v) and v >= 0 for v in lams):
        raise CheckpointError(f"{ckpt.path}: final_lambda must be finite and >= 0, got {lam}")
    return ckpt.state, lams, betas


@torch.no_grad()
def evaluate_model(
    task: OutageHybridTask,
    instances: OutageHybridInstance,
    net: GCN,
    model: UGHBFModelConfig,
    *,
    chunk: int = 500,
) -> dict[str, Any]:
    """Mean power (eq. 4) and per-user outage (eq. 10, overall and per group) of the model.

    Returns:
        ``{"power", "outage", "group_outage": [G floats], "group_power": [G floats]}`` with
        the outage test of the env (``outage_rtol``) on the TRUE channel.
    """
    was = net.training
    net.eval()
    pw, out, grp = [], [], []
    rtol = task.config.outage_rtol
    for lo in range(0, instances.batch_size, chunk):
        x = instances[lo : lo + chunk]
        o = ug_hbf_forward(task, task.known(x), net, model)
        sinr = true_sinr(x.h.to(torch.complex128), o.analog, o.digital)
        pw.append(o.power)
        out.append((sinr < x.gamma.double() * (1 - rtol)).double().mean(-1))
        grp.append(x.group)
    net.train(was)
    power, outage, group = torch.cat(pw), torch.cat(out), torch.cat(grp)
    g_count = task.config.num_groups
    g_out = [
        float(outage[group == d].mean()) if bool((group == d).any()) else 0.0
        for d in range(g_count)
    ]
    g_pow = [
        float(power[group == d].mean()) if bool((group == d).any()) else 0.0 for d in range(g_count)
    ]
    return {
        "power": float(power.mean()),
        "outage": float(outage.mean()),
        "group_outage": g_out,
        "group_power": g_pow,
    }


def train_ug_hbf(
    task: OutageHybridTask,
    model: UGHBFModelConfig,
    config: UGHBFTrainConfig,
    *,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]], dict[str, Any]]:
    """Algorithm 1 (paper 002 App. C): primal-dual training of the unrolled model.

    Args:
        task: OutageHybrid-v0 task (its ``p_out`` is :math:`P_{out}`, its constraint groups
            the :math:`D_c` constraints).
        model: Architecture.
        config: Training configuration.
        progress: Optional callback receiving each validation row.

    Returns:
        ``(state, history, info)``: the float32 weights with the best :math:`J_{cm}` (eq. 55),
        one row per validation, and ``info`` (best step, steps taken, seconds, steps/s).
    """
    if not isinstance(task, OutageHybridTask):
        raise ValueError(f"U-G-HBF trains on {ENV_ID}, got {type(task).__name__}")
    cfg = config
    c = task.config
    p_out = c.p_out
    g_count = c.num_groups
    gen = torch.Generator().manual_seed(cfg.seed)
    train = task.sample(gen, cfg.n_train)
    val = task.sample(torch.Generator().manual_seed(cfg.val_seed), cfg.n_val)
    known_all = task.known(train)
    net = build_net(model, _in_features(task), cfg.seed)
    lam = [cfg.lambda_init] * g_count
    beta_c: list[float | None] = [None] * g_count
    if cfg.init_from:  # docs/readings.md#002-ug-hbf-warm-start
        state0, lam, beta_c = warm_start(cfg.init_from, task, model)
        missing, unexpected = net.load_state_dict(state0, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise CheckpointError(
                f"init_from={cfg.init_from!r}: missing {missing} / unexpected {unexpected} weights"
            )
    params = list(net.parameters())
    opt = torch.optim.AdamW(
        params, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay
    )
    dual_lr = cfg.dual_lr
    clip_hist: list[float] = []
    history: list[dict[str, Any]] = []
    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    best_jcm, best_step, last_improve, decayed = math.inf, 0, 0, False
    t0 = time.perf_counter()
    train_seconds = 0.0
    step = 0
    run_loss, run_power, run_out, n_run = 0.0, 0.0, 0.0, 0

    def validate() -> bool:
        nonlocal best_jcm, best_step, last_improve, best_state, decayed, dual_lr
        ev = evaluate_model(task, val, net, model)
        jcm = ev["power"] / c.num_users + sum(
            cfg.dual_max * max(0.0, (1.0 - p_out) - (1.0 - o)) for o in ev["group_outage"]
        )
        if jcm < best_jcm:
            best_jcm, best_step, last_improve = jcm, step, step
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif not decayed and step - last_improve >= cfg.patience:
            for grp in opt.param_groups:
                grp["lr"] *= cfg.lr_decay
            dual_lr *= cfg.lr_decay
            decayed = True
        row = {
            "step": step,
            "seconds": time.perf_counter() - t0,
            "loss": run_loss / max(n_run, 1) if n_run else float("nan"),
            "train_power": run_power / max(n_run, 1) if n_run else float("nan"),
            "train_outage": run_out / max(n_run, 1) if n_run else float("nan"),
            "val_power": ev["power"],
            "val_outage": ev["outage"],
            "j_cm": jcm,
            "lr": opt.param_groups[0]["lr"],
            **{f"val_outage_g{d}": ev["group_outage"][d] for d in range(g_count)},
            **{f"val_power_g{d}": ev["group_power"][d] for d in range(g_count)},
            **{f"lambda_g{d}": lam[d] for d in range(g_count)},
            **{
                f"beta_c_g{d}": beta_c[d] if beta_c[d] is not None else float("nan")
                for d in range(g_count)
            },
        }
        history.append(row)
        if progress is not None:
            progress(row)
        return step - last_improve >= cfg.patience_stop

    validate()
    while step < cfg.steps:
        if cfg.max_seconds and time.perf_counter() - t0 > cfg.max_seconds:
            break
        ts = time.perf_counter()
        idx = torch.randint(0, cfg.n_train, (cfg.batch_size,), generator=gen)
        x = train[idx]
        out = ug_hbf_forward(
            task, known_all[idx], net, model, selection_gradient=cfg.selection_gradient
        )
        h = x.h.to(torch.complex128)
        gamma = x.gamma.to(torch.float64)
        sinr = true_sinr(h, out.analog, out.digital)
        ratio = sinr / gamma - 1.0
        loss = out.power.mean()
        g_vals = [0.0] * g_count
        for d in range(g_count):
            sel = x.group == d
            if not bool(sel.any()):
                continue
            if cfg.constraint == "anneal":
                if beta_c[d] is None:  # docs/readings.md#002-ug-hbf-training
                    qv = float(torch.quantile(ratio[sel].detach().flatten(), p_out))
                    beta_c[d] = 1.0 / max(-qv, 1.0 / cfg.beta_c_max)
                g_d = outage_surrogate(
                    ratio[sel], gamma[sel], sinr[sel], p_out, kind="anneal", beta_c=beta_c[d]
                )
            else:
                g_d = outage_surrogate(ratio[sel], gamma[sel], sinr[sel], p_out, kind="quantile")
            loss = loss + lam[d] * g_d
            g_vals[d] = float(g_d.detach())
            if cfg.constraint == "anneal":
                beta_c[d] = anneal_beta(beta_c[d], ratio[sel], p_out, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        adaptive_clip_(params, clip_hist, cfg)
        opt.step()
        for d in range(g_count):  # eq. (51): projected dual ascent
            lam[d] = max(0.0, lam[d] + dual_lr * g_vals[d])
        train_seconds += time.perf_counter() - ts
        step += 1
        run_loss += float(loss.detach())
        run_power += float(out.power.detach().mean())
        run_out += float((sinr.detach() < gamma * (1 - c.outage_rtol)).double().mean())
        n_run += 1
        if step % cfg.val_interval == 0:
            if validate():
                break
            run_loss, run_power, run_out, n_run = 0.0, 0.0, 0.0, 0
    if step % cfg.val_interval != 0:
        validate()
    state = {
        k: v.detach().cpu().float() for k, v in best_state.items() if k.endswith("tracked") is False
    }
    info = {
        "best_step": best_step,
        "best_j_cm": best_jcm,
        "steps": step,
        "train_seconds": train_seconds,
        "steps_per_second": step / train_seconds if train_seconds > 0 else 0.0,
        "final_lambda": lam,
        "final_beta_c": beta_c,
    }
    return state, history, info


def checkpoint_config(
    agent: str,
    task: OutageHybridTask,
    model: UGHBFModelConfig,
    config: UGHBFTrainConfig,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` of a U-G-HBF model: env, architecture (eqs. 27-30), Table 1 recipe."""
    out: dict[str, Any] = {
        "agent": agent,
        "env_id": ENV_ID,
        "env_kwargs": task.env_kwargs,
        "env_config": env_config_dict(task),
        "hparams": {},
        "model_config": model_summary(model, _in_features(task)),
        "train_config": dataclasses.asdict(config),
    }
    if info is not None:
        out["result"] = {k: v for k, v in info.items()}
    if config.init_from:  # the warm start's own recipe, so the chain can be replayed
        parent = read_config(config.init_from)
        out["parent"] = {
            k: parent[k]
            for k in ("command", "train_config", "train_seconds", "result", "trained_at", "parent")
            if k in parent
        }
    return out


# ---- command line (examples/train.py --agent ug_hbf_gcn|ug_hbf_fcn|ufdbf_gcn) -----------------
def _log_fields(g_count: int) -> tuple[str, ...]:
    per = [
        f"{k}_g{d}" for k in ("val_outage", "val_power", "lambda", "beta_c") for d in range(g_count)
    ]
    return (
        "step",
        "seconds",
        "loss",
        "train_power",
        "train_outage",
        "val_power",
        "val_outage",
        "j_cm",
        "lr",
        *per,
    )


def _panels(title: str, history: list[dict[str, Any]], g_count: int) -> tuple[Panel, Panel]:
    st = [r["step"] for r in history]
    return (
        Panel(
            title,
            "step",
            "mean ||p||_1 (validation)",
            [Series("validation", st, [r["val_power"] for r in history])],
        ),
        Panel(
            "outage",
            "step",
            "empirical outage (validation)",
            [Series("all", st, [r["val_outage"] for r in history])]
            + [
                Series(f"group {d}", st, [r[f"val_outage_g{d}"] for r in history])
                for d in range(g_count)
            ],
        ),
    )


def main(argv: Sequence[str]) -> Path:
    r"""``examples/train.py --agent ug_hbf_gcn|ug_hbf_fcn|ufdbf_gcn ...``.

    Usage::

        python examples/train.py --agent ug_hbf_gcn --env beamgym/OutageHybrid-v0 \\
            --env-kw constraint_groups=true --max-seconds 1200
        python examples/train.py --agent ufdbf_gcn --env-kw constraint_groups=true num_rf=16

    The env keywords default to the agent's (``constraint_groups=True``; ``num_rf=16`` for the
    fully digital U-FDBF-GCN); every field of :class:`UGHBFTrainConfig` is an option. Writes the
    model folder of :func:`agents.runs.write_run` to ``--out`` (default ``runs/<agent>``);
    ``train_log.csv`` has one row per validation (eq. 55's :math:`J_{cm}`, power and outage per
    constraint group, dual variables, :math:`\beta_c`).

    Returns:
        The output folder.
    """
    import beamgym  # noqa: F401  (registers the envs)
    from beamgym.datasets import make_task

    argv = [str(a) for a in argv]
    agent = "ug_hbf_gcn"
    for i, a in enumerate(argv):
        if a == "--agent" and i + 1 < len(argv):
            agent = argv[i + 1]
        elif a.startswith("--agent="):
            agent = a.split("=", 1)[1]
    if agent not in AGENTS:
        raise SystemExit(f"error: --agent must be one of {sorted(AGENTS)}, got {agent!r}")
    p = run_parser(
        (agent, *sorted(a for a in AGENTS if a != agent)),
        (ENV_ID,),
        "Train U-G-HBF-GCN / -FCN / U-FDBF-GCN (paper 002 Sec. IV-D, Algorithm 1).",
    )
    add_dataclass_arguments(p.add_argument_group("training (UGHBFTrainConfig)"), UGHBFTrainConfig)
    ns = p.parse_args(argv)
    torch.set_num_threads(ns.threads or 1)
    model, env_kw = AGENTS[ns.agent]
    try:
        kw = {**env_kw, **parse_env_kwargs(ns.env_kw)}
        for k, v in list(kw.items()):
            if isinstance(v, str) and v.lower() in ("true", "false"):
                kw[k] = v.lower() == "true"
        task = make_task(ENV_ID, **kw)
        config = dataclass_from_args(UGHBFTrainConfig, ns)
        if model.fully_digital and task.config.num_rf != task.config.M:
            raise ValueError(
                f"ufdbf_gcn needs num_rf = M = {task.config.M} (the fully digital "
                f"A = DFT matrix), got num_rf = {task.config.num_rf}"
            )
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc
    bar = progress_bar(config.steps, ns.agent, not ns.no_progress)
    last = [0]

    def progress(row: dict[str, Any]) -> None:
        bar(
            row["step"] - last[0],
            power=f"{row['val_power']:.3f}",
            outage=f"{row['val_outage']:.4f}",
        )
        last[0] = row["step"]
        if ns.no_progress:  # one line per validation for logs
            print(
                f"step {row['step']} {row['seconds']:.0f}s val power {row['val_power']:.3f} "
                f"outage {row['val_outage']:.4f} J_cm {row['j_cm']:.3f}",
                flush=True,
            )

    t0 = time.perf_counter()
    state, history, info = train_ug_hbf(task, model, config, progress=progress)
    seconds = time.perf_counter() - t0
    bar.close()  # type: ignore[attr-defined]
    meta = checkpoint_config(ns.agent, task, model, config, info)
    g_count = task.config.num_groups
    out = write_run(
        ns.out or Path("runs") / ns.agent,
        state=state,
        config=meta,
        argv=argv,
        seconds=seconds,
        rows=history,
        fields=_log_fields(g_count),
        panels=_panels(f"{ns.agent} ({ENV_ID})", history, g_count),
    )
    print(
        f"trained {ns.agent}: {info['steps']} steps in {seconds:.1f} s "
        f"({info['steps_per_second']:.2f} steps/s), best J_cm {info['best_j_cm']:.4f} at step "
        f"{info['best_step']} -> {out}"
    )
    return out
