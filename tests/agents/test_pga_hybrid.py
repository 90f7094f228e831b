"""Paper 003 agents (PGA, hybrid ZF), the fully digital ZF bound and FarFieldHybrid's decode."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents  # noqa: F401  (registers the agents)
from agents.base import Agent, make_agent
from agents.classical import random_agent  # noqa: F401  (registered even if tests/agents shadows)
from agents.classical.pga_hybrid import fully_digital_zf_reference, tune_pga_steps
from agents.rules.pga import PAPER_LAMBDA, PAPER_MU, pga, pga_iteration
from beamgym.datasets import make_instance_set, make_task
from beamgym.envs.far_field_hybrid import FarFieldHybridKnown
from beamgym.physics.metrics import hybrid_rate_gradients, hybrid_sum_rate
from beamgym.physics.projections import hybrid_initialization, normalize_digital, unit_modulus
from beamgym.structures import HybridBeamformer

ENV_ID = "beamgym/FarFieldHybrid-v0"
PS = {"analog": "phase-shifter"}
LN2 = math.log(2.0)


def _set(n: int, seed: int, precision: str = "double", **kw):
    task = make_task(ENV_ID, precision=precision, **{**PS, **kw})
    inst = make_instance_set(ENV_ID, n, seed, precision=precision, **{**PS, **kw}).instances
    return task, inst


def _assert_feasible(bf: HybridBeamformer, power: torch.Tensor, rtol: float) -> None:
    F, W = bf.analog, bf.digital
    torch.testing.assert_close(F.abs(), torch.ones_like(F.abs()), rtol=rtol, atol=rtol)
    p = (F @ W).abs().square().sum((-2, -1))
    torch.testing.assert_close(p, power, rtol=rtol, atol=0.0)


# ---- decode_observation (both analog modes) ------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, PS, {**PS, "snr_db": (0.0, 7.5, 20.0), "csi_error": "nmse"}])
@pytest.mark.parametrize("precision", ["double", "single"])
def test_decode_reproduces_known_fields_exactly(kw: dict, precision: str) -> None:
    task = make_task(ENV_ID, precision=precision, **kw)
    inst = make_instance_set(ENV_ID, 9, 3, precision=precision, **kw).instances
    known = task.decode_observation(task.observe(inst))
    assert isinstance(known, FarFieldHybridKnown)
    for name in ("H_est", "snr_db", "power", "noise_var"):
        got, want = getattr(known, name), getattr(inst, name)
        assert got.dtype == want.dtype and torch.equal(got, want), name
    if kw.get("csi_error") == "nmse":  # the decode never leaks the true channel
        assert not torch.equal(known.H_est, inst.H)


def test_known_stands_in_for_the_instance_in_the_action_maps() -> None:
    task, inst = _set(5, 4)
    known = task.known(inst)
    a = torch.rand(5, task.action_dim, dtype=torch.float64) * 2 - 1
    bf_i, proj_i = task.action_to_beamformer(a, inst)
    bf_k, proj_k = task.action_to_beamformer(a, known)
    assert torch.equal(bf_i.digital, bf_k.digital) and torch.equal(proj_i, proj_k)
    torch.testing.assert_close(
        task.beamformer_to_action(bf_k, known), task.beamformer_to_action(bf_i, inst)
    )
    torch.testing.assert_close(
        task.initial_beamformer(known).digital, hybrid_initialization(inst.H_est, inst.power)[1]
    )


def test_decode_rejects_bad_observations() -> None:
    task = make_task(ENV_ID, **PS)
    with pytest.raises(ValueError, match="obs_dim"):
        task.decode_observation(torch.zeros(2, task.obs_dim + 3))
    with pytest.raises(ValueError, match="dimensions"):
        task.decode_observation(torch.zeros(task.obs_dim))
    with pytest.raises(ValueError, match="non-finite"):
        task.decode_observation(torch.full((1, task.obs_dim), math.nan))


@pytest.mark.parametrize(("agent", "kw"), [("pga", PS), ("hybrid_zf", PS), ("random", {})])
def test_predict_from_reset_gives_a_valid_action(agent: str, kw: dict) -> None:
    env = gym.make(ENV_ID, **kw)
    obs, _ = env.reset(seed=11)
    ag = make_agent(agent, env)
    action, state = ag.predict(obs)
    assert state is None and action.shape == env.action_space.shape
    assert env.action_space.contains(action)
    _, reward, terminated, _, info = env.step(action)
    assert terminated and info["feasible"] and np.isfinite(reward)
    if agent == "pga":  # the action reproduces the agent's beamformer (no projection needed)
        task = env.unwrapped.task
        inst = env.unwrapped.instance
        r = task.evaluate(ag.solve(task.known(inst)), inst)["sum_rate"]
        assert reward == pytest.approx(float(r[0]), rel=1e-4)


def test_predict_on_a_vector_env_batch() -> None:
    envs = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", **PS)
    obs, _ = envs.reset(seed=2)
    actions, _ = make_agent("pga", envs, I=3).predict(obs)
    _, rewards, _, _, info = envs.step(actions)
    assert actions.shape == (3, envs.single_action_space.shape[0]) and info["feasible"].all()
    assert np.all(rewards > 5.0)


# ---- PGA: Algorithm 1 ----------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["double", "single"])
@pytest.mark.parametrize("J", [1, 3])
def test_pga_iterates_are_feasible(precision: str, J: int) -> None:
    task, inst = _set(16, 5, precision, snr_db=(0.0, 20.0))
    trace = make_agent("pga", task, I=6, J=J, mu=0.3, lam=1e-3).solve_trace(task.known(inst))
    assert len(trace) == 7
    rtol = 1e-10 if precision == "double" else 2e-5
    for bf in trace:
        assert bf.analog.dtype == task.cdtype
        _assert_feasible(bf, inst.power, rtol)
        assert task.evaluate(bf, inst)["feasible"].all()


def test_trace_starts_at_eq_12_13_and_ends_at_solve() -> None:
    task, inst = _set(8, 6)
    known = task.known(inst)
    agent = make_agent("pga", task, I=4)
    trace = agent.solve_trace(known)
    start = task.initial_beamformer(inst)
    torch.testing.assert_close(trace[0].analog, start.analog)
    torch.testing.assert_close(trace[0].digital, start.digital)
    last = agent.solve(known)
    assert torch.equal(trace[-1].digital, last.digital)
    assert torch.equal(make_agent("pga", task, I=0).solve(known).digital, trace[0].digital)


def _reference_iteration(H, F, W, P, mu, lam, J):
    """Algorithm 1 lines 3-10 spelled out with the physics library's checked functions."""
    for _ in range(J):
        gF, _ = hybrid_rate_gradients(H, F, W, 1.0, form="paper")
        F = unit_modulus(F + mu * gF)
    _, gW = hybrid_rate_gradients(H, F, W, 1.0, form="paper")
    return F, normalize_digital(F, W + lam * gW, P)


@pytest.mark.parametrize("J", [1, 4])
def test_iteration_equals_theorem1_with_the_library_gradients(J: int) -> None:
    _, inst = _set(6, 7, snr_db=(0.0, 10.0, 20.0))
    H, P = inst.H_est, inst.power
    F, W = hybrid_initialization(H, P)
    for mu, lam in [(PAPER_MU, PAPER_LAMBDA), (0.7, 5e-3)]:
        got = pga_iteration(H, F, W, P, 1.0, mu=mu, lam=lam, J=J)
        want = _reference_iteration(H, F, W, P, mu, lam, J)
        torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got[1], want[1], rtol=1e-12, atol=1e-12)


def test_small_tuned_step_increases_the_rate_monotonically_with_perfect_csi() -> None:
    task, inst = _set(64, 8)
    trace = make_agent("pga", task, I=30, mu=0.1, lam=1e-3).solve_trace(task.known(inst))
    rates = torch.stack([hybrid_sum_rate(inst.H, b.analog, b.digital) for b in trace])
    steps = rates.diff(dim=0)  # [I, B]: every instance, every iteration
    assert bool((steps > 0).all()), float(steps.min())
    assert float(rates[-1].mean() - rates[0].mean()) > 0.8  # clearly more than paper steps


def test_paper_steps_reproduce_the_readme_trajectory() -> None:
    # independent reference (003): start 15.15, paper steps (J=1, 30 iterations) 15.74 at 10 dB,
    # N=32, K=M=4, 10 paths, E||h||^2 = 10 (reference over 500 channels; 300 here).
    n = 300
    task, inst = _set(n, 2024)
    known = task.known(inst)
    start = task.evaluate(make_agent("pga", task, I=0).solve(known), inst)["sum_rate"]
    end = task.evaluate(make_agent("pga", task).solve(known), inst)["sum_rate"]
    se = float(start.std()) * math.sqrt(1 / n + 1 / 500)
    assert abs(float(start.mean()) - 15.15) < 3 * se, float(start.mean())
    gain = float((end - start).mean())  # paired: far less Monte-Carlo noise than the level
    assert 0.52 < gain < 0.66, gain  # reference: 15.74 - 15.15 = 0.59
    # the same steps on the steepest-ascent direction ((2/ln 2) x eq. (10)-(11)) move further,
    # so the reference trajectory pins the steps to eq. (10)-(11) as printed
    k = 2.0 / LN2
    asc = make_agent("pga", task, mu=PAPER_MU * k, lam=PAPER_LAMBDA * k).solve(known)
    gain_asc = float((task.evaluate(asc, inst)["sum_rate"] - start).mean())
    assert gain_asc > gain + 0.15, (gain, gain_asc)


def test_j_inner_steps_and_per_iteration_steps() -> None:
    task, inst = _set(16, 9)
    known = task.known(inst)
    r = {
        J: float(task.evaluate(make_agent("pga", task, J=J).solve(known), inst)["sum_rate"].mean())
        for J in (1, 5)
    }
    assert r[5] > r[1] + 0.05  # more analog steps at the paper's small mu help (Fig. 2(a))
    const = make_agent("pga", task, I=5, mu=0.2, lam=2e-3).solve(known)
    tup = make_agent("pga", task, I=5, mu=(0.2,) * 5, lam=[2e-3] * 5).solve(known)
    assert torch.equal(const.digital, tup.digital)
    varying = make_agent("pga", task, I=5, mu=(0.2, 0.2, 0.0, 0.0, 0.0), lam=0.0).solve(known)
    two = make_agent("pga", task, I=2, mu=0.2, lam=0.0).solve(known)
    torch.testing.assert_close(varying.analog, two.analog)  # mu = lam = 0 leaves the state


def test_pga_iteration_is_differentiable_in_the_step_sizes() -> None:
    _, inst = _set(4, 10)
    H, P = inst.H_est, inst.power
    F0, W0 = hybrid_initialization(H, P)

    def objective(mu: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        F, W = F0, W0
        for _ in range(3):
            F, W = pga_iteration(H, F, W, P, mu=mu, lam=lam, J=2)
        return hybrid_sum_rate(H, F, W).mean()

    mu = torch.tensor([0.3, 0.1], dtype=torch.float64, requires_grad=True)  # mu_(i,j), J = 2
    lam = torch.tensor(2e-3, dtype=torch.float64, requires_grad=True)
    objective(mu, lam).backward()
    eps = 1e-6
    for i in range(2):
        d = torch.zeros(2, dtype=torch.float64)
        d[i] = eps
        with torch.no_grad():
            fd = (objective(mu + d, lam) - objective(mu - d, lam)) / (2 * eps)
        assert float(mu.grad[i]) == pytest.approx(float(fd), rel=1e-4, abs=1e-7)
    with torch.no_grad():
        fd = (objective(mu, lam + eps) - objective(mu, lam - eps)) / (2 * eps)
    assert float(lam.grad) == pytest.approx(float(fd), rel=1e-4)


@pytest.mark.parametrize("precision", ["double", "single"])
def test_degenerate_estimates_are_flagged_not_a_crash(precision: str) -> None:
    task, inst = _set(4, 11, precision)
    H = inst.H_est.clone()
    H[1] = 0.0  # all-zero estimate: eq. (13) undefined
    H[3, 1] = H[3, 0]  # two users with one channel: ZF undefined (PGA is fine)
    known = dataclasses.replace(task.known(inst), H_est=H)
    rtol = 1e-10 if precision == "double" else 2e-5
    for name, flags in (
        ("pga", [False, True, False, False]),
        ("hybrid_zf", [False, True, False, True]),
    ):
        agent = make_agent(name, task)
        bf = agent.solve(known)
        _assert_feasible(bf, inst.power, rtol)
        assert agent.last_info["degenerate"].tolist() == flags, name
        assert bool(torch.isfinite(task.evaluate(bf, inst)["sum_rate"]).all())


# ---- hybrid ZF and the fully digital ZF bound ----------------------------------------------------
def test_hybrid_zf_nulls_interference_and_matches_the_reference() -> None:
    n = 300
    task, inst = _set(n, 2024)
    agent = make_agent("hybrid_zf", task)
    bf = agent.solve(task.known(inst))
    _assert_feasible(bf, inst.power, 1e-10)
    G = inst.H @ bf.analog @ bf.digital
    off = G - torch.diag_embed(torch.diagonal(G, dim1=-2, dim2=-1))
    assert float(off.abs().max()) < 1e-8 * float(G.abs().max())
    rate = task.evaluate(bf, inst)["sum_rate"]
    se = float(rate.std()) * math.sqrt(1 / n + 1 / 500)  # ours and the reference's 500 channels
    assert abs(float(rate.mean()) - 16.12) < 3 * se, float(rate.mean())
    fd = fully_digital_zf_reference(inst)
    se = float(fd["sum_rate"].std()) * math.sqrt(1 / n + 1 / 500)
    assert abs(float(fd["sum_rate"].mean()) - 17.50) < 3 * se, float(fd["sum_rate"].mean())
    assert fd["feasible"].all()
    torch.testing.assert_close(fd["power"], inst.power)
    pga_rate = task.evaluate(make_agent("pga", task).solve(task.known(inst)), inst)["sum_rate"]
    assert float(fd["sum_rate"].mean()) > float(rate.mean()) > float(pga_rate.mean())


def test_fully_digital_reference_designs_from_the_estimate_and_flags_rank_deficiency() -> None:
    _, inst = _set(4, 12, csi_error="nmse", nmse_db=-5.0)
    perfect = fully_digital_zf_reference(inst, known=None)
    oracle = dataclasses.replace(inst, H_est=inst.H)
    best = fully_digital_zf_reference(inst, known=oracle)
    assert float(best["sum_rate"].mean()) > float(perfect["sum_rate"].mean())
    H = inst.H_est.clone()
    H[2, 1] = H[2, 0]  # two identical users: ZF does not exist
    bad = fully_digital_zf_reference(dataclasses.replace(inst, H_est=H))
    assert bad["feasible"].tolist() == [True, True, False, True]
    assert math.isnan(float(bad["sum_rate"][2])) and bool(
        torch.isfinite(bad["sum_rate"][[0, 1, 3]]).all()
    )
    steering = make_instance_set(ENV_ID, 2, 0).instances
    with pytest.raises(ValueError, match="phase-shifter"):
        fully_digital_zf_reference(steering)


# ---- hyperparameters, envs, persistence ----------------------------------------------------------
def test_defaults_and_name_encode_the_paper_setting() -> None:
    agent = make_agent("pga", make_task(ENV_ID, **PS))
    assert agent.hparams == {"mu": 0.01, "lam": 1e-4, "I": 30, "J": 1}
    assert agent.name == "pga(I=30,J=1,lam=0.0001,mu=0.01)"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"mu": -0.1}, "mu step sizes"),
        ({"lam": math.inf}, "lam step sizes"),
        ({"mu": "0.1"}, "mu step sizes"),
        ({"I": 2, "mu": (0.1, 0.2, 0.3)}, "tuple of I=2"),
        ({"I": True}, "I must be an int"),
        ({"I": -1}, "I must be an int"),
        ({"J": 0}, "J must be an int"),
    ],
)
def test_bad_hyperparameters_raise(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_agent("pga", make_task(ENV_ID, **PS), **kw)


def test_wrong_env_mode_or_rf_chains_raise() -> None:
    with pytest.raises(ValueError, match="phase-shifter"):
        make_agent("pga", make_task(ENV_ID))  # steering mode (paper 000)
    with pytest.raises(ValueError, match="N_RF = K"):
        make_agent("pga", make_task(ENV_ID, N_RF=5, **PS))
    with pytest.raises(ValueError, match="N_RF = K"):
        make_agent("hybrid_zf", make_task(ENV_ID, N_RF=6, **PS))
    with pytest.raises(ValueError, match="does not support"):
        make_agent("pga", "beamgym/FullyDigitalFDD-v0")
    task, inst = _set(2, 0)
    agent = make_agent("pga", task)
    with pytest.raises(ValueError, match="FarFieldHybridKnown"):
        agent.solve(inst.H_est)
    single = make_task(ENV_ID, precision="single", **PS)
    with pytest.raises(ValueError, match="dtype"):
        make_agent("pga", single).solve(task.known(inst))  # complex128 known, complex64 task
    with pytest.raises(ValueError, match="N >= K"):
        pga(torch.zeros(1, 4, 3, dtype=torch.complex128), 1.0)
    with pytest.raises(ValueError, match="power"):
        pga(inst.H, -1.0)


def test_save_load_round_trip(tmp_path) -> None:
    task = make_task(ENV_ID, **PS)
    agent = make_agent("pga", task, mu=(0.1, 0.2), lam=1e-3, I=2, J=3)
    agent.save(tmp_path / "pga.pt")
    back = Agent.load(tmp_path / "pga.pt", task)
    assert back.name == agent.name and back.hparams == agent.hparams


def test_tune_pga_steps_picks_the_best_grid_point() -> None:
    task, train = _set(64, 13)
    res = tune_pga_steps(task, train, I=5, mus=(0.01, 0.3), lams=(1e-4, 3e-3))
    assert len(res.table) == 4 and res.table[(res.mu, res.lam)] == res.mean_rate
    assert res.mean_rate == max(res.table.values())
    assert res.mean_rate > res.table[(0.01, 1e-4)] + 0.1  # beats the paper's steps at I = 5
    with pytest.raises(ValueError, match="non-empty"):
        tune_pga_steps(task, train, I=5, mus=())
