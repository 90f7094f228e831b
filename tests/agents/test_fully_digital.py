"""Fully digital solvers of paper 000 and the 000 hybrid baselines (agents/classical/fully_digital).

Also the observation decoders of FullyDigitalFDD-v0 and NearFieldHybrid-v0.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents  # noqa: F401  (registers the agents)
from agents.base import Agent, CheckpointError, make_agent
from agents.rules.gradient import band_sum_rate, gradient_ascent
from agents.rules.problem import problem_from_known
from agents.rules.wmmse import wmmse
from beamgym.datasets import make_task
from beamgym.physics.precoding import mmse_beamformer, mrt_beamformer, rzf_beamformer, zf_beamformer
from beamgym.physics.projections import normalize_power, weighted_power
from beamgym.structures import HybridBeamformer

FDD = "beamgym/FullyDigitalFDD-v0"
FAR = "beamgym/FarFieldHybrid-v0"
NEAR = "beamgym/NearFieldHybrid-v0"
AGENTS = ("mrt", "zf", "rzf", "mmse", "ga", "mmse_ga", "wmmse")
#: Keep the WMMSE runs of the smoke tests short.
FAST = {"wmmse": {"max_iter": 30}}
#: Small configurations of the three supported envs (fast, still exercising every path).
SMALL = {
    "fdd": (FDD, {"N": 16, "K": 4, "snr_db": 10.0}),
    "fdd_mimo": (FDD, {"N": 16, "K": 2, "M": 2, "snr_db": 10.0, "psi": 0.5}),
    "far": (FAR, {"N": 16, "N_RF": 4, "K": 4, "snr_db": 10.0}),
    "near": (NEAR, {"K": 4, "S": 4, "n": 4, "snr_db": 10.0}),
    "near_wide": (NEAR, {"K": 4, "S": 4, "n": 4, "snr_db": 10.0, "n_subcarriers": 3}),
}


@pytest.fixture(autouse=True)
def _one_thread():
    """The iterative solvers run many small kernels: one intra-op thread is faster (and immune
    to oversubscription when the machine is busy)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _setup(key: str, n: int = 16, precision: str = "double", **extra):
    env_id, kw = SMALL[key]
    task = make_task(env_id, precision=precision, **{**kw, **extra})
    inst = task.sample(_gen(7), n)
    return task, inst, task.known(inst)


# ---- decode_observation ----------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"K": 4, "M": 4}, {"channel": "rayleigh", "N": 4, "K": 4}])
@pytest.mark.parametrize("precision", ["double", "single"])
def test_fdd_decode_reproduces_known_fields(kw: dict, precision: str) -> None:
    task = make_task(FDD, precision=precision, snr_db=(5.0, 20.0), **kw)
    inst = task.sample(_gen(1), 5)
    known = task.decode_observation(task.observe(inst))
    for name in ("H_est", "snr_db", "csi_nmse_db", "power"):
        got, want = getattr(known, name), getattr(inst, name)
        assert got.dtype == want.dtype and torch.equal(got, want), name
    # the action maps accept the known view
    W = make_agent("mmse", task).solve(known)
    a = task.beamformer_to_action(W, known)
    torch.testing.assert_close(task.action_to_beamformer(a, known)[0], W)


@pytest.mark.parametrize("kw", [{}, {"n_subcarriers": 3}, {"channel_model": "exact", "S": 32}])
@pytest.mark.parametrize("precision", ["double", "single"])
def test_near_field_decode_rebuilds_the_analog_exactly(kw: dict, precision: str) -> None:
    task = make_task(NEAR, precision=precision, **kw)
    inst = task.sample(_gen(2), 4)
    obs = task.observe(inst)
    assert obs.shape == (4, task.obs_dim)
    known = task.decode_observation(obs)
    for name in ("G_est", "snr_db", "csi_nmse_db", "power", "r", "theta", "analog", "gram"):
        got, want = getattr(known, name), getattr(inst, name)
        assert got.dtype == want.dtype and torch.equal(got, want), name
    bf = make_agent("mmse", task).solve(known)
    assert task.evaluate(bf, inst)["feasible"].all()  # the analog check of evaluate passes


def test_decode_rejects_bad_observations() -> None:
    fdd, near = make_task(FDD, N=8, K=2), make_task(NEAR, K=4, S=4)
    for task in (fdd, near):
        obs = task.observe(task.sample(_gen(0), 2))
        with pytest.raises(ValueError, match="obs_dim"):
            task.decode_observation(obs[:, :-1])
        with pytest.raises(ValueError, match="real"):
            task.decode_observation(obs.to(torch.complex64))
        with pytest.raises(ValueError, match="NaN|non-finite"):
            task.decode_observation(torch.full_like(obs, float("nan")))
    obs = near.observe(near.sample(_gen(0), 2))
    obs[:, -8] = -1.0  # a user distance
    with pytest.raises(ValueError, match="distances"):
        near.decode_observation(obs)


def test_instances_must_carry_the_configured_power() -> None:
    for env_id, kw in ((FDD, {"N": 8, "K": 2}), (NEAR, {"K": 4, "S": 4})):
        task = make_task(env_id, **kw)
        inst = task.sample(_gen(0), 2)
        with pytest.raises(ValueError, match="power budget P"):
            task.validate_instance(dataclasses.replace(inst, power=2.0 * inst.power))


# ---- predict from env.reset(), feasibility ----------------------------------------------------
@pytest.mark.parametrize("key", ["fdd", "far", "near"])
@pytest.mark.parametrize("name", AGENTS)
def test_predict_from_reset_gives_a_valid_action(key: str, name: str) -> None:
    env_id, kw = SMALL[key]
    env = gym.make(env_id, **kw)
    obs, _ = env.reset(seed=3)
    action, state = make_agent(name, env, **FAST.get(name, {})).predict(obs)
    assert state is None
    assert action.shape == env.action_space.shape and action.dtype == np.float32
    assert env.action_space.contains(action)
    _, reward, terminated, _, info = env.step(action)
    assert terminated and info["feasible"] and np.isfinite(reward) and reward > 0


@pytest.mark.parametrize("precision", ["single", "double"])
@pytest.mark.parametrize("key", list(SMALL))
def test_every_solver_is_feasible_and_full_power(key: str, precision: str) -> None:
    task, inst, known = _setup(key, precision=precision)
    for name in AGENTS:
        agent = make_agent(name, task, **FAST.get(name, {}))
        bf = agent.solve(known)
        W = bf.digital if isinstance(bf, HybridBeamformer) else bf
        assert W.dtype == task.cdtype, name
        m = task.evaluate(bf, inst)
        assert bool(m["feasible"].all()), name
        torch.testing.assert_close(m["power"], inst.power, rtol=1e-4, atol=0.0)
        assert bool(torch.isfinite(m["sum_rate"]).all()) and bool((m["sum_rate"] > 0).all())


def test_solvers_reject_the_true_instance_and_other_envs() -> None:
    task, inst, _ = _setup("fdd")
    with pytest.raises(ValueError, match="what the BS knows"):
        make_agent("mmse", task).solve(inst)
    ps = make_task(FAR, analog="phase-shifter", N=8, K=2, N_RF=2)
    for name in AGENTS:
        with pytest.raises(ValueError, match="steering"):
            make_agent(name, ps)
        with pytest.raises(ValueError, match="does not support"):
            make_agent(name, "beamgym/ModularUplink-v0")


@pytest.mark.parametrize(
    ("name", "hp", "match"),
    [
        ("mmse_ga", {"eta": 0.0}, "eta"),
        ("mmse_ga", {"steps": -1}, "steps"),
        ("mmse_ga", {"eta_rule": "adam"}, "eta_rule"),
        ("ga", {"init": "svd"}, "init"),
        ("ga", {"seed": -1}, "seed"),
        ("wmmse", {"tol": 0.0}, "tol"),
        ("wmmse", {"max_iter": 0}, "max_iter"),
        ("wmmse", {"restarts": -1}, "restarts"),
        ("wmmse", {"init": "zf"}, "init"),
        ("mrt", {"eta": 1.0}, "no hyperparameter"),
        ("wmmse", {"eta": 1.0}, "no hyperparameter"),
    ],
)
def test_bad_hyperparameters_raise(name: str, hp: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_agent(name, make_task(FDD, N=8, K=2), **hp)


def test_zf_needs_enough_antennas() -> None:
    task = make_task(FDD, N=4, K=3, M=2, psi=0.5)
    with pytest.raises(ValueError, match="streams"):
        make_agent("zf", task)
    with pytest.raises(ValueError, match="init='zf'"):
        make_agent("ga", task, init="zf")


# ---- known values and orderings ---------------------------------------------------------------
@pytest.mark.parametrize("M", [1, 2])
def test_zf_nulls_interference_with_perfect_csi(M: int) -> None:
    task = make_task(FDD, precision="double", csi_error="perfect", N=16, K=4, M=M, psi=0.5)
    inst = task.sample(_gen(4), 8)
    W = make_agent("zf", task).solve(task.known(inst))
    Hs = inst.H.reshape(8, -1, 16)
    E = Hs @ W  # [B, KM, KM]: c I
    c = torch.diagonal(E, dim1=-2, dim2=-1)
    torch.testing.assert_close(E, torch.diag_embed(c), atol=1e-10, rtol=0)
    assert bool((c.real > 0).all()) and c.imag.abs().max() < 1e-10
    if M == 1:
        assert task.evaluate(W, inst)["sinr"].min() > 0.1  # interference-free, finite SINR


def test_zf_flags_rank_deficient_channels_without_nan() -> None:
    H = torch.randn(3, 3, 4, dtype=torch.complex128)
    H[1, 2] = H[1, 0]  # two identical users in instance 1
    W, bad = zf_beamformer(H, 1.0)
    assert bad.tolist() == [False, True, False]
    assert bool(torch.isfinite(torch.view_as_real(W)).all())
    torch.testing.assert_close(weighted_power(W), torch.ones(3, dtype=torch.float64))


def test_mmse_agent_equals_the_teacher() -> None:
    task, _, known = _setup("fdd_mimo")
    torch.testing.assert_close(make_agent("mmse", task).solve(known), task.mmse_beamformer(known))
    torch.testing.assert_close(
        make_agent("mmse", task).solve(known), mmse_beamformer(known.H_est, known.power)
    )
    task, inst, known = _setup("near_wide")
    got, want = make_agent("mmse", task).solve(known), task.mmse_beamformer(known)
    torch.testing.assert_close(got.digital, want.digital)
    assert got.analog is known.analog


def test_hard_rayleigh_case_matches_the_reference_values() -> None:
    """Independent reference, 000 hard cases: MRT 4.87, ZF 5.20, MMSE 8.48, RZF 8.28, WMMSE 9.82."""
    kw = {"channel": "rayleigh", "N": 4, "K": 4, "snr_db": 10.0, "csi_error": "perfect"}
    task = make_task(FDD, precision="double", **kw)
    inst = task.sample(_gen(20240), 500)
    known = task.known(inst)
    rate = {
        n: task.evaluate(make_agent(n, task).solve(known), inst)["sum_rate"].mean().item()
        for n in ("mrt", "zf", "rzf", "mmse", "mmse_ga", "wmmse")
    }
    ref = {"mrt": 4.87, "zf": 5.20, "rzf": 8.28, "mmse": 8.48, "wmmse": 9.82}
    for name, value in ref.items():
        assert rate[name] == pytest.approx(value, abs=0.25), name  # 500 channels: CI ~ 0.1-0.2
    assert rate["wmmse"] > rate["mmse_ga"] + 0.3 > rate["mmse"] + 0.3 > rate["rzf"] + 0.1
    assert rate["rzf"] > rate["zf"] + 2.0 and rate["zf"] > rate["mrt"]


def test_mrt_and_rzf_limits() -> None:
    """RZF tends to MRT at low SNR (large regularization) and to ZF at high SNR."""
    H = torch.randn(4, 3, 6, dtype=torch.complex128)
    mrt, (zf, _) = mrt_beamformer(H, 1.0), zf_beamformer(H, 1.0)
    torch.testing.assert_close(rzf_beamformer(H, 1.0, noise_var=1e8), mrt, atol=1e-6, rtol=0)
    torch.testing.assert_close(rzf_beamformer(H, 1.0, noise_var=1e-10), zf, atol=1e-6, rtol=0)


# ---- WMMSE --------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["fdd", "fdd_mimo", "far", "near_wide"])
def test_wmmse_is_monotone_and_beats_its_mmse_start(key: str) -> None:
    task, _, known = _setup(key, n=12)
    prob = problem_from_known(task, known)
    W0 = make_agent("mmse", task)._design(prob)
    res = wmmse(prob.H, W0, prob.power, prob.noise_var, tol=1e-9, max_iter=60, power_weight=prob.Q)
    steps = res.history.diff(dim=0)
    assert steps.min() >= -1e-9 * res.history.abs().max()  # monotone WMMSE objective
    assert (steps.sum(0) > 1e-6).all()  # and it moves every instance
    start = band_sum_rate(prob.H, W0, prob.noise_var)
    assert bool((res.rate >= start - 1e-9).all())
    torch.testing.assert_close(res.rate, band_sum_rate(prob.H, res.W, prob.noise_var))
    torch.testing.assert_close(weighted_power(res.W, prob.Q), prob.power)


def test_wmmse_stopping_rule_restarts_and_batch_independence() -> None:
    task, inst, known = _setup("fdd", n=10)
    prob = problem_from_known(task, known)
    a = make_agent("wmmse", task, tol=1e-6, max_iter=400)
    W = a.solve(known)
    assert a.last_info["converged"].all() and (a.last_info["iterations"] >= 1).all()
    solo = make_agent("wmmse", task, tol=1e-6, max_iter=400).solve(known[3:4])
    torch.testing.assert_close(solo, W[3:4])  # converged instances are frozen
    capped = make_agent("wmmse", task, tol=1e-12, max_iter=2)
    capped.solve(known)
    assert not capped.last_info["converged"].any()
    assert (capped.last_info["iterations"] == 2).all()
    one = make_agent("wmmse", task, tol=1e-6, max_iter=100).solve(known)
    best = make_agent("wmmse", task, tol=1e-6, max_iter=100, restarts=3)
    Wb = best.solve(known)
    r1, r4 = band_sum_rate(prob.H, one), band_sum_rate(prob.H, Wb)
    assert bool((r4 >= r1 - 1e-9).all())  # best of the starts on the estimated channel
    assert set(best.last_info["start"].tolist()) <= {0, 1, 2, 3}
    rnd = make_agent("wmmse", task, init="random", tol=1e-6, max_iter=20, seed=5)
    torch.testing.assert_close(rnd.solve(known), rnd.solve(known))  # seeded, per call


def test_wmmse_rejects_bad_input() -> None:
    H = torch.randn(2, 3, 4, dtype=torch.complex128)
    with pytest.raises(ValueError, match="W0"):
        wmmse(H, torch.randn(2, 3, 4, dtype=torch.complex128), 1.0)
    with pytest.raises(ValueError, match="tol"):
        wmmse(H, torch.randn(2, 4, 3, dtype=torch.complex128), 1.0, tol=-1.0)
    with pytest.raises(ValueError, match="power"):
        wmmse(H, torch.randn(2, 4, 3, dtype=torch.complex128), -1.0)


# ---- gradient ascent ------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["fdd", "fdd_mimo", "far", "near_wide"])
def test_gradient_ascent_raises_the_rate_on_the_channel_it_uses(key: str) -> None:
    task, _, known = _setup(key)
    prob = problem_from_known(task, known)
    W0 = make_agent("mrt", task)._design(prob)
    W, trace = gradient_ascent(
        prob.H,
        W0,
        prob.power,
        5,
        0.05,
        prob.noise_var,
        eta_rule="normalized",
        power_weight=prob.Q,
        return_trace=True,
    )
    rates = torch.stack([band_sum_rate(prob.H, Wq, prob.noise_var) for Wq in trace])
    assert len(trace) == 6 and torch.equal(trace[-1], W)
    assert bool((rates.diff(dim=0) > 0).all())  # every step, every instance
    torch.testing.assert_close(weighted_power(W, prob.Q), prob.power)


def test_gradient_ascent_rules_and_zero_steps() -> None:
    task, _, known = _setup("fdd")
    prob = problem_from_known(task, known)
    W0 = 3.0 * make_agent("mmse", task)._design(prob)
    torch.testing.assert_close(
        gradient_ascent(prob.H, W0, prob.power, 0, 1.0), normalize_power(W0, prob.power)
    )
    energy = prob.H.abs().square().sum((1, 2, 3, 4)) / 4
    a = gradient_ascent(prob.H, W0, prob.power, 3, 0.1, eta_rule="normalized")
    # the normalized rule is the fixed rule with eta = 0.1 / energy, instance by instance
    for i in range(2):
        b = gradient_ascent(prob.H[i : i + 1], W0[i : i + 1], 1.0, 3, 0.1 / energy[i].item())
        torch.testing.assert_close(a[i : i + 1], b)
    with pytest.raises(ValueError, match="eta"):
        gradient_ascent(prob.H, W0, 1.0, 3, -0.1)
    with pytest.raises(ValueError, match="W0"):
        gradient_ascent(prob.H, W0[:, :-1], 1.0, 3, 0.1)


def test_solve_trace_ends_at_solve() -> None:
    task, inst, known = _setup("near")
    for name, length in (("mmse", 1), ("mmse_ga", 11), ("ga", 11)):
        agent = make_agent(name, task)
        trace = agent.solve_trace(known)
        assert len(trace) == length
        torch.testing.assert_close(trace[-1].digital, agent.solve(known).digital)
    agent = make_agent("wmmse", task, tol=1e-4, max_iter=300)
    trace = agent.solve_trace(known)
    last = int(agent.last_info["iterations"].max())
    assert len(trace) == 301 and last < 300  # fixed length; frozen after convergence
    final = agent.solve(known).digital
    torch.testing.assert_close(trace[last].digital, final)
    torch.testing.assert_close(trace[-1].digital, final)
    rates = torch.stack([task.evaluate(bf, inst)["sum_rate"] for bf in trace])
    assert rates[-1].mean() > rates[0].mean()


# ---- persistence ---------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path) -> None:
    task, _, known = _setup("fdd")
    agent = make_agent("wmmse", task, restarts=2, tol=1e-6, max_iter=30, seed=3)
    agent.save(tmp_path / "wmmse.pt")
    loaded = Agent.load(tmp_path / "wmmse.pt", task)
    assert type(loaded) is type(agent) and loaded.name == agent.name
    torch.testing.assert_close(loaded.solve(known), agent.solve(known))
    other = make_task(FDD, precision="double", N=16, K=4, snr_db=20.0)
    with pytest.raises(CheckpointError, match="snr_db"):
        Agent.load(tmp_path / "wmmse.pt", other)
    ga = make_agent("mmse_ga", task, eta=0.1)
    ga.save(tmp_path / "ga.pt")
    assert (
        type(ga).load(tmp_path / "ga.pt", task).name
        == "mmse_ga(eta=0.1,eta_rule=normalized,steps=10)"
    )


@pytest.mark.gpu
@pytest.mark.parametrize("key", ["fdd", "far", "near_wide"])
def test_cuda_matches_cpu(key: str) -> None:
    env_id, kw = SMALL[key]
    cpu = make_task(env_id, precision="double", **kw)
    gpu = make_task(env_id, precision="double", device="cuda", **kw)
    inst = cpu.sample(_gen(9), 6)
    for name in AGENTS:
        a = make_agent(name, cpu, **FAST.get(name, {})).solve(cpu.known(inst))
        b = make_agent(name, gpu, **FAST.get(name, {})).solve(gpu.known(inst.to("cuda")))
        a = a.digital if isinstance(a, HybridBeamformer) else a
        b = b.digital if isinstance(b, HybridBeamformer) else b
        torch.testing.assert_close(b.cpu(), a, rtol=1e-6, atol=1e-8)
