"""U-PGA+M of paper 004 (agents/upga_m): layers, surrogates, projections, training, transfer."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

import beamgym  # noqa: F401  (registers the envs)
from agents import make_agent
from agents.base import Agent, CheckpointError
from agents.pretrained import read_checkpoint
from agents.rules.pga_momentum import pga_momentum, random_unit_modulus_panels, rate_and_gradient
from agents.upga_m import train as cli
from agents.upga_m.model import (
    init_theta,
    layer_weights,
    surrogate_projection,
    transfer_theta,
    unfolded_pga_m,
    upga_m_loss,
)
from agents.upga_m.train import UPGAMTrainConfig, evaluate_theta, save_checkpoint, train_upga_m
from beamgym.datasets import make_task
from beamgym.physics.metrics import modular_sum_rate
from beamgym.physics.projections import quantized_phase_projection, sparse_phase_projection

ENV = "beamgym/ModularUplink-v0"
#: A tiny scenario (M = 8, LP = 8, T = 5) for fast tests.
TINY = {"P": 2, "L": 4, "N": 4, "B": 1, "K": 4}
SCEN4 = {"P": 8, "L": 1, "N": 4, "K": 5}
SCEN3 = {"P": 8, "L": 1, "N": 4, "K": 50}
SCEN5 = {"N": 4, "K": 7}
SCEN6 = {"T": 40, "P": 16, "N": 4, "K": 7, "connectivity_blocks": 8}


def _data(n: int, seed: int = 3, **kw):
    task = make_task(ENV, **kw)
    inst = task.sample(torch.Generator().manual_seed(seed), n)
    return task, inst, task.known(inst)


def _random_theta(task, J: int = 3, seed: int = 0, scale: float = 5.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (J, *task.panel_shape)
    return {
        "alpha": scale * torch.rand(shape, generator=g, dtype=torch.float64),
        "beta": torch.rand(shape, generator=g, dtype=torch.float64),
        "lam": torch.rand(shape, generator=g, dtype=torch.float64),
    }


def _assert_feasible(task, W: torch.Tensor) -> None:
    c = task.config
    assert W.shape[1:] == task.panel_shape  # diagonal blocks only: W is block diagonal
    assert torch.isfinite(torch.view_as_real(W)).all()
    mag = W.abs()
    sparse = c.constraint in ("sparse", "sparse_quantized")
    ok = (mag - 1).abs() < 1e-5
    if sparse:
        ok = ok | (mag == 0)
        if c.s_max is not None:
            assert int((mag > 0).flatten(1).sum(-1).max()) <= c.s_max
    assert bool(ok.all())
    if c.constraint in ("quantized", "sparse_quantized"):
        k = torch.angle(W[mag > 0]) * c.q_levels / (2 * math.pi)
        assert (k - k.round()).abs().max() < 1e-4
    assert not bool(task._changed(W, task.project(W)).any())


# ---- the unfolded layers ----------------------------------------------------------------------
def test_layer_gradient_is_twice_theorem1_and_matches_autograd() -> None:
    """The direction every layer uses equals autograd of the plain eq. (6) (complex128)."""
    task, inst, known = _data(3, precision="double", **TINY)
    W = random_unit_modulus_panels(1, 3, task.panel_shape, dtype=torch.complex128)
    W = W.clone().requires_grad_(True)
    R = modular_sum_rate(known.H_est, W, task.A, known.snr).sum()
    (auto,) = torch.autograd.grad(R, W)
    _, D = rate_and_gradient(task, known, W.detach())
    assert (D - auto).abs().max() / auto.abs().max() < 1e-6


def test_unfolded_theta_gradient_matches_finite_differences() -> None:
    """d loss / d theta through the J layers (double backprop through eq. 9) vs central FD."""
    task, inst, known = _data(2, precision="double", **TINY)
    theta = init_theta(3, task.panel_shape, mu=2.0, beta=0.5, dtype=torch.float64)
    W0 = random_unit_modulus_panels(2, 2, task.panel_shape, dtype=torch.complex128)

    def loss_of(th):
        its, r, _ = unfolded_pga_m(task, known, th, W0, soft=True)
        return upga_m_loss(r, its[-1], task.config.K)[0]

    params = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
    loss = loss_of(params)
    grads = torch.autograd.grad(loss, [params["alpha"], params["beta"]])
    for (key, g), idx in zip(
        zip(("alpha", "beta"), grads, strict=True), [(0, 0, 1, 2), (1, 1, 3, 0)], strict=True
    ):
        eps = 1e-6
        hi = {k: v.clone() for k, v in theta.items()}
        lo = {k: v.clone() for k, v in theta.items()}
        hi[key][idx] += eps
        lo[key][idx] -= eps
        fd = (loss_of(hi) - loss_of(lo)) / (2 * eps)
        assert abs(float(fd) - float(g[idx])) <= 1e-6 * max(1.0, abs(float(fd))) + 1e-8


def test_untrained_model_is_pga_m_and_per_entry_weights_act_per_entry() -> None:
    """Constant theta reproduces Algorithm 1 (pga_m) exactly, from the same start."""
    task, inst, known = _data(4, precision="double")
    theta = init_theta(4, task.panel_shape, mu=20.0, beta=0.495, dtype=torch.float64)
    W0 = random_unit_modulus_panels(0, 4, task.panel_shape, dtype=torch.complex128)
    its, rates, stalled = unfolded_pga_m(task, known, theta, W0)
    ref = pga_momentum(task, known, J=4, mu=20.0, beta=0.495, W0=W0)
    for a, b in zip(its, ref, strict=True):
        assert (a - b).abs().max() < 1e-10
    assert rates.shape == (5, 4) and not stalled.any()
    # changing one entry's step changes that entry's first update only (elementwise weights)
    th2 = {k: v.clone() for k, v in theta.items()}
    th2["alpha"][0, 1, 2, 3] = -5.0
    its2, _, _ = unfolded_pga_m(task, known, th2, W0)
    diff = (its2[1] - its[1]).abs() > 1e-12
    assert diff[:, 1, 2, 3].all() and int(diff.sum()) == 4


def test_layer_weights_and_loss() -> None:
    w = layer_weights(3)
    assert torch.allclose(w, torch.log(torch.tensor([2.0, 3.0, 4.0])))
    assert layer_weights(3, "final").tolist() == [0.0, 0.0, 1.0]
    rates = torch.tensor([[0.0, 0.0], [2.0, 4.0], [4.0, 8.0]])  # [J+1, b], K = 2
    W = torch.ones(2, 1, 2, 2, dtype=torch.complex64) * 0.5
    loss, stats = upga_m_loss(rates, W, 2)
    assert loss.item() == pytest.approx(-(math.log(2) * 1.5 + math.log(3) * 3.0))
    loss2, stats2 = upga_m_loss(rates, W, 2, gamma=0.1, s_max=1.0)
    assert stats2["l1"] == pytest.approx(2.0)
    assert loss2.item() == pytest.approx(loss.item() + 0.1 * 1.0)
    with pytest.raises(ValueError, match="needs s_max"):
        upga_m_loss(rates, W, 2, gamma=0.1)
    with pytest.raises(ValueError, match="weighting"):
        layer_weights(3, "cubic")


# ---- projections ------------------------------------------------------------------------------
def test_surrogates_converge_to_the_hard_projections() -> None:
    g = torch.Generator().manual_seed(0)
    V = torch.complex(torch.randn(4000, generator=g), torch.randn(4000, generator=g))
    step = 2 * math.pi / 16
    frac = torch.remainder(torch.angle(V) / step + 0.5, 1.0)  # 0 / 1 at decision boundaries
    far = ((frac - 0.5).abs() < 0.45) & ((V.abs() - 0.5).abs() > 0.02)
    hard = {
        "unconstrained": V / V.abs(),
        "sparse": sparse_phase_projection(V, 0.5),
        "quantized": quantized_phase_projection(V, 16),
        "sparse_quantized": quantized_phase_projection(V, 16, zeta=0.5),
    }
    for constraint, H in hard.items():
        errs = []
        for s in (10.0, 100.0, 1000.0, 1e4):
            S = surrogate_projection(V, constraint, sharpness_m=s, sharpness_p=s)
            errs.append(float((S - H)[far].abs().max()))
        assert all(b <= a + 1e-6 for a, b in zip(errs, errs[1:], strict=False)), constraint
        assert errs[-1] < 1e-3, (constraint, errs)
    with pytest.raises(ValueError, match="constraint"):
        surrogate_projection(V, "analog")


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"constraint": "quantized"},
        {"constraint": "sparse", "s_max": 24},
        {"constraint": "sparse_quantized", "s_max": 24},
    ],
)
def test_hard_projections_keep_every_layer_feasible(kw) -> None:
    task, inst, known = _data(6, **TINY, **kw)
    theta = _random_theta(task, J=4, scale=30.0)
    theta["alpha"][1] *= -1  # negative steps are allowed (Sec. III-C)
    W0 = random_unit_modulus_panels(5, 6, task.panel_shape)
    its, _, stalled = unfolded_pga_m(task, known, theta, W0)
    assert not stalled.any()
    for W in its:
        _assert_feasible(task, W)


# ---- training ---------------------------------------------------------------------------------
def test_short_training_improves_the_rate_at_J() -> None:
    task = make_task(ENV, **TINY)
    cfg = UPGAMTrainConfig(
        J=4,
        epochs=4,
        n_train=128,
        batch_size=32,
        lr=0.1,
        init="fixed",
        init_mu=0.5,
        init_beta=0.0,
        n_val=64,
        seed=0,
    )
    theta, hist, info = train_upga_m(task, cfg)
    assert len(hist) == 5 and hist[0]["epoch"] == 0
    assert info["best_val_rate"] > hist[0]["val_rate"] + 0.02
    val = task.sample(torch.Generator().manual_seed(cfg.val_seed), cfg.n_val)
    ev = evaluate_theta(task, val, theta, seed=cfg.val_seed)
    assert ev["rate"] == pytest.approx(info["best_val_rate"], abs=1e-6)


def test_sparse_training_uses_lambda_and_respects_s_max() -> None:
    task = make_task(ENV, constraint="sparse", s_max=24, **TINY)
    cfg = UPGAMTrainConfig(
        J=3,
        epochs=2,
        n_train=64,
        batch_size=32,
        init="fixed",
        init_mu=1.0,
        init_beta=0.5,
        init_lam=0.05,
        gamma=0.01,
        sharpness=5.0,
        sharpness_final=20.0,
        n_val=32,
    )
    theta, hist, _ = train_upga_m(task, cfg)
    assert not torch.allclose(theta["lam"], torch.full_like(theta["lam"], 0.05))
    assert all(r["val_active"] <= 24 for r in hist)
    with pytest.raises(ValueError, match="sparse constraint"):
        train_upga_m(make_task(ENV, **TINY), UPGAMTrainConfig(gamma=0.1, n_train=64))


def test_train_config_validation() -> None:
    with pytest.raises(ValueError, match="init"):
        UPGAMTrainConfig(init="random")
    with pytest.raises(ValueError, match="batch_size"):
        UPGAMTrainConfig(n_train=8, batch_size=16)
    with pytest.raises(ValueError, match="lr_decay"):
        UPGAMTrainConfig(lr_decay=0.0)
    with pytest.raises(ValueError, match="weighting"):
        UPGAMTrainConfig(weighting="exp")


# ---- agents, checkpoints and transfer ---------------------------------------------------------
def _checkpoint(tmp_path, name, env_kw, agent="upga_m", J=3, seed=0):
    task = make_task(ENV, **env_kw)
    theta = _random_theta(task, J=J, seed=seed, scale=2.0)
    theta = {k: v.float() for k, v in theta.items()}
    cfg = UPGAMTrainConfig(J=J, n_train=64, batch_size=32)
    info = {"init_mu": 1.0, "init_beta": 0.5, "init_lam": 0.0}
    path = tmp_path / name
    save_checkpoint(path, agent, task, theta, cfg, info)
    return path, theta


def test_transfer_to_K50_and_to_8x_panels_runs_and_stays_feasible(tmp_path) -> None:
    p4, th4 = _checkpoint(tmp_path, "s4", SCEN4)
    task3, inst3, known3 = _data(3, **SCEN3)
    agent = make_agent("upga_m", task3, checkpoint=str(p4))
    W = agent.solve(known3)
    _assert_feasible(task3, W)
    assert W.shape == (3, 8, 4, 1) and agent.num_parameters == 2 * th4["alpha"].numel()
    p5, th5 = _checkpoint(tmp_path, "s5", SCEN5)
    task6, inst6, known6 = _data(2, **SCEN6)
    for mode in ("kron", "mean"):
        a6 = make_agent("upga_m", task6, checkpoint=str(p5), panel_transfer=mode)
        trace = a6.solve_trace(known6)
        assert len(trace) == 4
        for Wj in trace:
            _assert_feasible(task6, Wj)
        assert torch.isfinite(task6.evaluate(trace[-1], inst6)["metric"]).all()
    kron = transfer_theta(th5, 16, "kron")["alpha"]
    assert torch.equal(kron[:, 2:4], th5["alpha"]) and torch.equal(kron[:, 14:], th5["alpha"])
    mean = transfer_theta(th5, 16, "mean")["alpha"]
    assert torch.equal(mean[:, :2], th5["alpha"])
    assert torch.allclose(mean[:, 9], th5["alpha"].mean(1))
    with pytest.raises(ValueError, match="multiples"):
        transfer_theta(th5, 3)
    with pytest.raises(ValueError, match="mode"):
        transfer_theta(th5, 4, "tile")


def test_checkpoint_errors_name_the_train_command(tmp_path) -> None:
    task, _, _ = _data(1, **SCEN3)
    with pytest.raises(CheckpointError, match="python examples/train.py --agent upga_m"):
        make_agent("upga_m", task, checkpoint=str(tmp_path / "missing.pt"))
    p, _ = _checkpoint(tmp_path, "tiny", TINY)
    with pytest.raises(CheckpointError, match="N: checkpoint 4.* vs env 20"):
        make_agent("upga_m", ENV, checkpoint=str(p))
    task5, _, _ = _data(1, T=6, P=3, L=4, N=4, K=7)
    with pytest.raises(CheckpointError, match="not a multiple"):
        make_agent("upga_m", task5, checkpoint=str(p))
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(CheckpointError, match="config.json is missing.*retrain with"):
        make_agent("upga_m", task, checkpoint=str(bad))
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        make_agent("upga_m", task, checkpoint=str(p), steps=3)
    with pytest.raises(ValueError, match="panel_transfer"):
        make_agent("upga_m", task, checkpoint=str(p), panel_transfer="tile")
    with pytest.raises(ValueError, match="ModularUplink"):
        make_agent("upga_m", make_task("beamgym/FullyDigitalFDD-v0"), checkpoint=str(p))


def test_agent_round_trip_and_bad_known(tmp_path) -> None:
    p, th = _checkpoint(tmp_path, "tiny", TINY)
    task, inst, known = _data(2, **TINY)
    agent = make_agent("upga_m", task, checkpoint=str(p))
    assert agent.hparams["J"] == 3
    assert all(torch.equal(agent.state_dict()[k], th[k]) for k in th)
    W, info = agent.solve_with_info(known)
    assert info["feasible"].all() and torch.allclose(W, agent.solve(known))
    with pytest.raises(ValueError, match="ModularUplinkKnown"):
        agent.solve(inst)
    with pytest.raises(ValueError, match="J = 5 does not match"):
        make_agent("upga_m", task, checkpoint=str(p), J=5)
    # base-class save / load round trip (hparams include J) with the committed model's env
    a1 = make_agent("upga_m", ENV)
    a1.save(tmp_path / "agent.pt")
    again = Agent.load(tmp_path / "agent.pt", make_task(ENV))
    assert again.hparams == a1.hparams and again.hparams["J"] == 10
    assert all(torch.equal(again.state_dict()[k], a1.state_dict()[k]) for k in th)


def test_fine_tuning_from_a_checkpoint(tmp_path) -> None:
    p, th = _checkpoint(tmp_path, "tiny", TINY)
    task = make_task(ENV, **TINY)
    cfg = UPGAMTrainConfig(
        J=3,
        epochs=1,
        n_train=32,
        batch_size=16,
        n_val=16,
        init="checkpoint",
        init_checkpoint=str(p),
        weighting="final",
    )
    theta, hist, info = train_upga_m(task, cfg)
    assert info["init_mu"] == 1.0 and hist[0]["val_rate"] > 0
    with pytest.raises(ValueError, match="go together"):
        UPGAMTrainConfig(init="checkpoint")
    with pytest.raises(ValueError, match="training needs"):
        train_upga_m(task, dataclasses.replace(cfg, J=4))


@pytest.mark.parametrize(
    ("name", "variant", "env_kw"),
    [
        ("upga_m", "", {}),
        ("upga_m", "scenario2", {"P": 4, "L": 2, "N": 3, "B": 4, "K": 5}),
        ("upga_m", "scenario4", SCEN4),
        ("upga_m", "scenario5", SCEN5),
        (
            "upga_m_sparse",
            "",
            {"P": 4, "L": 2, "N": 3, "B": 4, "K": 5, "constraint": "sparse", "s_max": 18},
        ),
        ("upga_m_quantized", "", {"constraint": "quantized"}),
    ],
)
def test_committed_models_load_and_improve_on_their_init(name, variant, env_kw) -> None:
    """Each committed model beats the constant PGA+M it was initialized with (same start)."""
    task, inst, known = _data(64, seed=77, **env_kw)
    agent = make_agent(name, task, variant=variant)
    W = agent.solve(known)
    _assert_feasible(task, W)
    rate = task.evaluate(W, inst)["metric"]
    init = agent.train_config
    base = init_theta(
        init["J"],
        task.panel_shape,
        mu=agent_init(agent)["init_mu"],
        beta=agent_init(agent)["init_beta"],
        lam=agent_init(agent)["init_lam"],
    )
    W0 = random_unit_modulus_panels(0, 64, task.panel_shape)
    its, _, _ = unfolded_pga_m(task, known, base, W0)
    base_rate = task.evaluate(its[-1], inst)["metric"]
    assert float((rate - base_rate).mean()) > 0.0


@pytest.mark.parametrize(("variant", "env_kw"), [("scenario4", SCEN3), ("scenario5", SCEN6)])
def test_committed_models_transfer_without_retraining(variant, env_kw) -> None:
    """Scenario 4 -> 3 (K x 10) and 5 -> 6 (P x 8): feasible, far above the random start."""
    task, inst, known = _data(32, seed=78, **env_kw)
    agent = make_agent("upga_m", task, variant=variant)
    trace = agent.solve_trace(known)
    for W in (trace[0], trace[-1]):
        _assert_feasible(task, W)
    r0 = task.evaluate(trace[0], inst)["metric"].mean()
    rJ = task.evaluate(trace[-1], inst)["metric"].mean()
    assert rJ > 1.05 * r0


def agent_init(agent) -> dict[str, float]:
    return read_checkpoint(agent.checkpoint_path).config["init"]


# ---- command line -----------------------------------------------------------------------------
def test_cli_writes_checkpoint_log_and_command(tmp_path) -> None:
    argv = [
        "--agent",
        "upga_m",
        "--P",
        "2",
        "--L",
        "4",
        "--N",
        "4",
        "--B",
        "1",
        "--K",
        "4",
        "--J",
        "2",
        "--epochs",
        "1",
        "--n-train",
        "32",
        "--batch-size",
        "16",
        "--n-val",
        "16",
        "--init",
        "fixed",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    ]
    out = cli.main(argv)
    meta = json.loads((out / "config.json").read_text())
    assert meta["command"].startswith("python examples/train.py --agent upga_m --P 2")
    assert (out / "train_log.csv").read_text().count("\n") == 3
    agent = make_agent("upga_m", make_task(ENV, **TINY), checkpoint=str(out))
    assert agent.hparams["J"] == 2
    with pytest.raises(SystemExit, match="constraint"):
        cli.main(["--agent", "upga_m", "--constraint", "sparse", "--out", str(tmp_path / "x")])
