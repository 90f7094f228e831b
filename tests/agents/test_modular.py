"""Paper 004 solvers (agents/classical/modular.py) and ModularUplink-v0's decode_observation."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents.classical.modular as mod
import beamgym  # noqa: F401  (registers the envs)
from agents import make_agent, registered_agents
from agents.base import Agent
from agents.classical.modular import ManifoldOptimizationAgent, PGAMGridAgent, grid_search_pga_m
from agents.rules.pga_momentum import (
    ModularProblem,
    fully_digital_subspace,
    pga_momentum,
    random_unit_modulus_panels,
    rate_and_gradient,
)
from beamgym.datasets import make_task
from beamgym.envs.modular_uplink import ModularUplinkKnown
from beamgym.physics.metrics import (
    equivalent_channel_rate,
    modular_rate_gradient,
    modular_sum_rate,
)

ENV = "beamgym/ModularUplink-v0"
AGENTS = ("pga_m", "pga_m_grid", "line_search", "mo")
#: Cheap settings of each agent for tests (pga_m_grid: a tiny grid on 8 training channels).
FAST = {
    "pga_m": {},
    "pga_m_grid": {"n_train": 8, "mus": (1.0, 20.0), "betas": (0.0, 0.9)},
    "line_search": {"mus": (0.5, 5.0, 20.0), "betas": (0.0, 0.9)},
    "mo": {},
}
CONSTRAINTS = (
    {},
    {"constraint": "quantized"},
    {"constraint": "sparse", "s_max": 120},
    {"constraint": "sparse_quantized", "s_max": 120},
)


def _data(n: int, seed: int = 11, **kw):
    task = make_task(ENV, **kw)
    inst = task.sample(torch.Generator().manual_seed(seed), n)
    return task, inst, task.known(inst)


def _mean_metric(task, W, inst) -> float:
    return task.evaluate(W, inst)["metric"].mean().item()


# ---- decode_observation ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw", [{}, {"snr_db": (-10.0, 0.0, 7.5)}, {"csi_nmse_db": -10.0, "rho_s": 2.0}]
)
def test_decode_reproduces_known_fields_double(kw) -> None:
    task, inst, known = _data(4, precision="double", **kw)
    assert isinstance(known, ModularUplinkKnown)
    assert torch.equal(known.H_est, inst.H_est)  # exact
    torch.testing.assert_close(known.snr, inst.snr, rtol=1e-14, atol=0.0)
    assert known.H_est.dtype == torch.complex128 and known.snr.dtype == torch.float64
    if "csi_nmse_db" in kw:  # the solver's view is the estimate, not the true channel
        assert not torch.equal(known.H_est, inst.H)


def test_decode_single_precision_and_errors() -> None:
    task, inst, known = _data(3)
    assert known.H_est.dtype == torch.complex64 and known.snr.dtype == torch.float32
    torch.testing.assert_close(known.snr, inst.snr, rtol=1e-6, atol=0.0)
    obs = task.observe(inst)
    with pytest.raises(ValueError, match="observation"):
        task.decode_observation(obs[:, :-1])
    with pytest.raises(ValueError, match="observation"):
        task.decode_observation(obs[0])


def test_action_maps_accept_known() -> None:
    task, inst, known = _data(3, constraint="quantized")
    W = make_agent("pga_m", task).solve(known)
    action = task.beamformer_to_action(W, known)
    W2, projected = task.action_to_beamformer(action, known)
    assert torch.equal(W2, W) and not bool(projected.any())


# ---- the contract: registry, predict, feasibility ---------------------------------------------
def test_registered_with_modular_env() -> None:
    specs = registered_agents()
    for name in AGENTS:
        assert specs[name].env_ids == (ENV,)
        assert "004" in specs[name].description


@pytest.mark.parametrize("name", AGENTS)
def test_predict_from_reset_gives_valid_action(name) -> None:
    env = gym.make(ENV)
    obs, _ = env.reset(seed=3)
    agent = make_agent(name, env, **FAST[name])
    action, state = agent.predict(obs)
    assert state is None
    assert action.shape == env.action_space.shape and action.dtype == np.float32
    assert env.action_space.contains(action)
    _, reward, terminated, _, info = env.step(action)
    assert terminated and not info["projected"] and bool(info["feasible"])
    assert reward > 0.75  # well above the 0.73 random unit-modulus start


def test_predict_batched_vector_env_and_horizon() -> None:
    envs = gym.make_vec(ENV, num_envs=3, vectorization_mode="vector_entry_point")
    obs, _ = envs.reset(seed=0)
    actions, _ = make_agent("mo", envs).predict(obs)
    assert actions.shape == (3, envs.single_action_space.shape[0])
    env = gym.make(ENV, horizon=2)  # observation carries extras beyond obs_dim
    obs, _ = env.reset(seed=1)
    action, _ = make_agent("pga_m", env).predict(obs)
    assert env.action_space.contains(action)


@pytest.mark.parametrize("kw", CONSTRAINTS, ids=lambda k: k.get("constraint", "unconstrained"))
@pytest.mark.parametrize("name", AGENTS)
def test_outputs_feasible_for_every_constraint(name, kw) -> None:
    task, inst, known = _data(6, **kw)
    agent = make_agent(name, task, **FAST[name])
    W, info = agent.solve_with_info(known)
    assert W.shape == (6, 2, 20, 4) and W.dtype == torch.complex64
    m = task.evaluate(W, inst)
    assert bool(m["feasible"].all()) and bool(info["feasible"].all())
    assert not bool(info["stalled"].any())
    mag = W.abs()
    assert bool(((mag - 1).abs() < 1e-5).logical_or(mag == 0).all())
    if "s_max" in kw:
        assert bool((info["active_phase_shifters"] <= kw["s_max"]).all())
        torch.testing.assert_close(info["active_phase_shifters"], m["active_phase_shifters"])
    else:
        assert bool((info["active_phase_shifters"] == 160).all())
    if "quantized" in kw.get("constraint", ""):
        k = torch.angle(W[mag > 0]) / (2 * math.pi / 16)
        assert (k - k.round()).abs().max().item() < 1e-4
    # with perfect CSI the receiver's rate is the env's reward
    torch.testing.assert_close(info["rate_known"], m["metric"], rtol=1e-4, atol=1e-5)


def test_sparse_with_tiny_budget_uses_rank_deficient_fallback() -> None:
    # s_max = T = 5 active shifters: G = W A is often rank deficient; eq. (6) and (9) then use
    # the pseudo-inverse forms; nothing crashes, outputs stay finite and feasible
    task, inst, known = _data(4, constraint="sparse", s_max=5)
    for name in AGENTS:
        W, info = make_agent(name, task, **FAST[name]).solve_with_info(known)
        assert bool(info["feasible"].all()) and bool(torch.isfinite(info["rate_known"]).all())
        assert bool((info["active_phase_shifters"] <= 5).all())


def test_double_precision_and_determinism() -> None:
    task, inst, known = _data(3, precision="double")
    for name in ("pga_m", "line_search", "mo"):
        agent = make_agent(name, task, **FAST[name])
        W1, W2 = agent.solve(known), agent.solve(known)
        assert W1.dtype == torch.complex128 and torch.equal(W1, W2)


# ---- Theorem 1 in the T x T domain --------------------------------------------------------------
def test_fast_gradient_equals_two_times_eq9_and_autograd() -> None:
    task, inst, known = _data(3, precision="double", snr_db=(-5.0, 0.0, 5.0))
    W = random_unit_modulus_panels(4, 3, task.panel_shape, dtype=torch.complex128)
    W[1, 0] = 0.0  # a switched-off panel: rank-deficient G, library fallback
    rate, D = rate_and_gradient(task, known, W)
    torch.testing.assert_close(rate, modular_sum_rate(known.H_est, W, task.A, known.snr))
    g9 = modular_rate_gradient(known.H_est, W, task.A, known.snr)
    rel = (D - 2 * g9).flatten(1).norm(dim=1) / g9.flatten(1).norm(dim=1)
    assert rel.max().item() < 1e-10
    Wl = W[[0, 2]].clone().requires_grad_(True)
    modular_sum_rate(known.H_est[[0, 2]], Wl, task.A, known.snr[[0, 2]]).sum().backward()
    assert ((Wl.grad - D[[0, 2]]).norm() / Wl.grad.norm()).item() < 1e-10


def test_fully_digital_subspace_is_optimal_for_one_bin() -> None:
    # B = 1: the T dominant eigenvectors give sum_{i<=T} log(1 + snr * lambda_i) (eq. 6 optimum)
    task, inst, known = _data(2, precision="double", B=1, K=8)
    U = fully_digital_subspace(known.H_est, 5)
    torch.testing.assert_close(U.mH @ U, torch.eye(5, dtype=U.dtype).expand(2, 5, 5))
    lam = torch.linalg.eigvalsh(known.H_est[:, 0] @ known.H_est[:, 0].mH)[:, -5:]
    want = torch.log1p(known.snr[:, None] * lam).sum(-1)
    got = equivalent_channel_rate(known.H_est, U, known.snr)
    torch.testing.assert_close(got, want)
    R = torch.linalg.qr(torch.randn(2, 40, 5, dtype=U.dtype)).Q
    assert bool((equivalent_channel_rate(known.H_est, R, known.snr) < got).all())


# ---- PGA with momentum ----------------------------------------------------------------------
def test_pga_m_improves_and_trace_matches_solve() -> None:
    task, inst, known = _data(16)
    agent = make_agent("pga_m", task)
    trace = agent.solve_trace(known)
    assert len(trace) == 11
    rates = [_mean_metric(task, W, inst) for W in trace]
    assert rates[-1] > rates[0] + 0.1  # 0.73 -> about 0.89
    assert rates[5] > rates[0]
    assert torch.equal(trace[-1], agent.solve(known))
    start = random_unit_modulus_panels(0, 16, task.panel_shape)
    torch.testing.assert_close(trace[0], start)  # W_0 = the documented random start
    assert torch.equal(pga_momentum(task, known)[-1], trace[-1])


def test_pga_m_reproduces_readme_anchor() -> None:
    # independent reference (docs/readings.md#004-table1-tuning): mu = 1 on 2 x eq. (9),
    # beta = 0.9, J = 10 -> 0.898 per-user nats (300
    # channels); standard error of the mean over 64 channels is about 0.002
    task, inst, known = _data(64, seed=123)
    W = make_agent("pga_m", task, mu=1.0, beta=0.9, J=10).solve(known)
    rate = _mean_metric(task, W, inst)
    assert abs(rate - 0.898) < 0.012, rate


def test_per_iteration_schedules_and_zero_step() -> None:
    task, inst, known = _data(4)
    const = make_agent("pga_m", task, J=3, mu=2.0, beta=0.5).solve(known)
    sched = make_agent("pga_m", task, J=3, mu=(2.0, 2.0, 2.0), beta=[0.5] * 3).solve(known)
    assert torch.equal(const, sched)
    # mu = 0 and beta = 0: the projection keeps the feasible start (up to float rounding)
    W0 = make_agent("pga_m", task, J=1).solve_trace(known)[0]
    stay = make_agent("pga_m", task, J=5, mu=0.0, beta=0.0).solve(known)
    torch.testing.assert_close(stay, W0, rtol=0.0, atol=1e-6)


def test_quantized_pga_m_with_small_steps_is_stuck() -> None:
    # paper 004 Sec. V-C2: PGA+M "struggles to overcome the quantization constraints"; a step
    # smaller than half a quantization level (pi/16) is undone by eq. (20)
    task, inst, known = _data(4, constraint="quantized")
    trace = make_agent("pga_m", task, mu=0.01, beta=0.0).solve_trace(known)
    assert torch.equal(trace[-1], trace[0])
    big = make_agent("pga_m", task, mu=20.0, beta=0.495).solve(known)
    assert _mean_metric(task, big, inst) > _mean_metric(task, trace[0], inst) + 0.1


def test_l1_term_deactivates_phase_shifters() -> None:
    # eq. (17): the l1 pull -lam e^{j angle W} is the same for every entry, so a constant lam
    # deactivates (nearly) all or nothing: the paper's "elusive" lambda (Sec. IV-A)
    task, inst, known = _data(8, constraint="sparse")
    _, plain = make_agent("pga_m", task, beta=0.0).solve_with_info(known)
    W, some = make_agent("pga_m", task, beta=0.0, lam=0.6).solve_with_info(known)
    assert bool((plain["active_phase_shifters"] == 160).all())
    assert some["active_phase_shifters"].float().mean() < 80
    assert bool(some["feasible"].all())
    # mu * lam = 1 cancels unit entries: everything switches off; reported, not a crash/NaN
    W, off = make_agent("pga_m", task, beta=0.0, lam=1.0).solve_with_info(known)
    assert bool((off["active_phase_shifters"] == 0).all()) and bool(off["feasible"].all())
    assert torch.equal(off["rate_known"], torch.zeros(8))
    assert torch.equal(task.evaluate(W, inst)["metric"], torch.zeros(8))


# ---- grid search -------------------------------------------------------------------------------
def test_grid_search_picks_the_best_on_its_set() -> None:
    task, train, _ = _data(12, seed=5)
    mus, betas = (0.2, 1.0, 20.0), (0.0, 0.9)
    mu, beta, table = grid_search_pga_m(task, train, 10, mus, betas, max_rows=30)
    assert len(table) == 6 and [(r["mu"], r["beta"]) for r in table][:2] == [(0.2, 0.0), (0.2, 0.9)]
    best = max(table, key=lambda r: r["rate"])
    assert (mu, beta) == (best["mu"], best["beta"])
    assert mu == 20.0  # at 10 iterations large steps win (as BENCHMARKS.md reports: about mu = 20)
    # every table entry is the plain agent's mean rate on the same set (same random starts)
    for row in table:
        W = make_agent("pga_m", task, mu=row["mu"], beta=row["beta"]).solve(task.known(train))
        assert abs(_mean_metric(task, W, train) - row["rate"]) < 1e-4


def test_grid_agent_name_save_load(tmp_path, monkeypatch) -> None:
    task, inst, known = _data(4)
    agent = make_agent("pga_m_grid", task, **FAST["pga_m_grid"])
    assert isinstance(agent, PGAMGridAgent) and len(agent.grid_table) == 4
    assert f"mu={agent.hparams['mu']:g}" in agent.name and "beta=" in agent.name
    assert "tune_J=10" in agent.name
    path = tmp_path / "grid.pt"
    agent.save(path)

    def no_search(*args, **kwargs):
        raise AssertionError("load must not search again")

    monkeypatch.setattr(mod, "grid_search_pga_m", no_search)
    loaded = Agent.load(path, task)
    assert loaded.name == agent.name
    assert torch.equal(loaded.solve(known), agent.solve(known))


# ---- line search and MO ----------------------------------------------------------------------
def test_line_search_is_monotone_and_beats_fixed_steps() -> None:
    task, inst, known = _data(16)
    agent = make_agent("line_search", task)
    trace = agent.solve_trace(known)
    model = ModularProblem(task, known)
    rates = torch.stack([model.rate(W) for W in trace])  # [J + 1, batch] on H_est
    assert bool((rates[1:] >= rates[:-1] - 1e-4).all())
    final = _mean_metric(task, trace[-1], inst)
    assert final > _mean_metric(task, trace[0], inst) + 0.15
    assert final > _mean_metric(task, make_agent("pga_m", task).solve(known), inst) + 0.03


@pytest.mark.parametrize("fit", ["subspace", "direct"])
def test_mo_decreases_its_surrogate_and_improves_the_rate(fit) -> None:
    task, inst, known = _data(16)
    agent = make_agent("mo", task, fit=fit)
    assert isinstance(agent, ManifoldOptimizationAgent)
    trace = agent.solve_trace(known)
    f = torch.stack([agent.surrogate(known, W) for W in trace])
    assert bool((f[1:] <= f[:-1] + 1e-5).all())
    assert bool((f[-1] < f[0]).all())
    r0, rJ = _mean_metric(task, trace[0], inst), _mean_metric(task, trace[-1], inst)
    assert rJ > r0 + (0.15 if fit == "subspace" else 0.01)


# ---- errors -------------------------------------------------------------------------------------
def test_bad_hyperparameters_and_wrong_env_raise() -> None:
    task, inst, known = _data(2)
    fdd = gym.make("beamgym/FullyDigitalFDD-v0")
    for name in AGENTS:
        with pytest.raises(ValueError, match="does not support|ModularUplink"):
            make_agent(name, fdd)
    with pytest.raises(ValueError, match="ModularUplink"):
        mod.PGAMomentumAgent(fdd)
    bad = [
        ("pga_m", {"J": 0}, "J"),
        ("pga_m", {"J": 2.5}, "J"),
        ("pga_m", {"mu": (1.0, 2.0)}, "mu"),
        ("pga_m", {"mu": float("nan")}, "mu"),
        ("pga_m", {"beta": "x"}, "beta"),
        ("pga_m", {"lam": -1.0}, "lam"),
        ("pga_m", {"lam": 0.1}, "sparse"),
        ("pga_m", {"seed": -1}, "seed"),
        ("pga_m", {"nu": 1.0}, "unknown"),
        ("pga_m_grid", {"mu": 1.0}, "both mu and beta"),
        ("pga_m_grid", {"grid": "huge"}, "grid"),
        ("pga_m_grid", {"mus": ()}, "mus"),
        ("line_search", {"betas": "0.9"}, "betas"),
        ("line_search", {"mus": (-1.0,)}, "mus"),
        ("mo", {"fit": "exact"}, "fit"),
        ("mo", {"steps": (0.0,)}, "steps"),
    ]
    for name, hp, match in bad:
        with pytest.raises(ValueError, match=match):
            make_agent(name, task, **hp)
    with pytest.raises(ValueError, match="known"):
        make_agent("pga_m", task).solve(inst)  # the true instance is refused
    with pytest.raises(ValueError, match="J"):
        grid_search_pga_m(task, inst, 0)
