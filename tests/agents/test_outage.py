"""Paper 002 greedy hybrid beamforming agents (G-HBF-perf, G-HBF-marg) and the env's decode."""

from __future__ import annotations

import itertools
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents  # noqa: F401  (registers the agents)
from agents.base import Agent, CheckpointError, make_agent
from agents.classical.outage import (
    GreedyHybridAgent,
    GreedyMarginAgent,
    finalize_hybrid_design,
    greedy_hybrid_beamforming,
)
from agents.harness import evaluate_agent
from beamgym.datasets import make_instance_set, make_task
from beamgym.envs.outage_hybrid import OutageHybridKnown
from beamgym.physics.codebooks import dft_codebook_2d, select_codewords
from beamgym.physics.power import solve_digital_beamforming

ENV = "beamgym/OutageHybrid-v0"


def _set(n: int, seed: int, **kw):
    return make_instance_set(ENV, n=n, seed=seed, **kw)


# ---- decode_observation -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"constraint_groups": True},
        {"csi": "dft-feedback", "constraint_groups": True},
        {"csi": "perfect"},
        {"observe_covariance": False},
        {"covariance_snapshots": 4},
    ],
)
def test_decode_reproduces_known_fields(kw):
    kw = {**kw, "precision": "double"}
    task = make_task(ENV, **kw)
    inst = _set(6, 3, **kw).instances
    obs = task.observe(inst)
    assert obs.shape == (6, task.obs_dim) and obs.dtype == torch.float64
    known = task.decode_observation(obs)
    assert isinstance(known, OutageHybridKnown)
    assert torch.equal(known.h_est, inst.h_est)
    if task.config.observe_covariance:
        assert known.R_est.dtype == torch.complex128
        # rebuilt from the upper triangle: exact where R_est is exactly Hermitian
        torch.testing.assert_close(known.R_est, inst.R_est, rtol=0, atol=1e-13)
        torch.testing.assert_close(known.R_est, known.R_est.mH, rtol=0, atol=1e-13)
    else:
        assert known.R_est is None
    torch.testing.assert_close(known.gamma, inst.gamma, rtol=1e-13, atol=0)
    torch.testing.assert_close(known.xi, inst.xi, rtol=1e-13, atol=0)
    assert torch.equal(known.group, inst.group)
    # the view is all the transmitter needs: the known() helper gives the same
    torch.testing.assert_close(task.known(inst).gamma, known.gamma)


def test_group_is_observed_only_with_constraint_groups():
    plain, grouped = make_task(ENV), make_task(ENV, constraint_groups=True)
    assert grouped.obs_dim == plain.obs_dim + 1 == 919
    inst = _set(40, 0, constraint_groups=True).instances
    assert torch.equal(grouped.observe(inst)[:, -1].long(), inst.group)
    assert set(inst.group.tolist()) == {0, 1, 2, 3}


def test_decode_rejects_bad_observation():
    task = make_task(ENV)
    with pytest.raises(ValueError, match="observation"):
        task.decode_observation(torch.zeros(2, task.obs_dim + 1))
    with pytest.raises(ValueError, match="observation"):
        task.decode_observation(torch.zeros(task.obs_dim))


# ---- G-HBF-perf: targets met, power, monotonicity ---------------------------------------------
@pytest.fixture(scope="module")
def perfect_double():
    task = make_task(ENV, csi="perfect", precision="double")
    inst = _set(48, 11, csi="perfect", precision="double").instances
    agent = make_agent("ghbf_perf", task)
    sol = agent.solve_detailed(task.known(inst))
    return task, inst, agent, sol


def test_perfect_csi_meets_every_target_exactly(perfect_double):
    task, inst, _, sol = perfect_double
    assert bool(sol.feasible.all())
    m = task.evaluate(sol.beamformer, inst)
    ratio = m["sinr"] / inst.gamma
    torch.testing.assert_close(ratio, torch.ones_like(ratio), rtol=0, atol=1e-6)
    assert int(m["num_outage"].sum()) == 0
    assert bool((m["power"] <= task.config.p_max).all())
    # uplink-downlink duality: w^T p = 1^T q (Sec. III)
    torch.testing.assert_close(m["power"], sol.design_power, rtol=1e-9, atol=0)
    torch.testing.assert_close(sol.power, sol.design_power, rtol=1e-9, atol=0)
    assert not bool(sol.pmax_scaled.any())


def test_greedy_never_increases_power(perfect_double):
    task, inst, agent, sol = perfect_double
    h = sol.history
    assert h.shape == (48, agent.steps + 1) == (48, 11)
    assert bool((h[:, 1:] <= h[:, :-1]).all())
    assert float(h[:, -1].mean()) < float(h[:, 0].mean()) - 0.05  # the greedy does work
    torch.testing.assert_close(h[:, -1], sol.design_power)
    # the selected codewords are distinct (eq. 6) and the analog matrix is made of them
    srt = sol.indices.sort(-1).values
    assert bool((srt[:, 1:] != srt[:, :-1]).all())
    cb = task.codebook
    torch.testing.assert_close(sol.beamformer.analog, select_codewords(cb, sol.indices))


def test_trace_matches_history(perfect_double):
    task, inst, agent, sol = perfect_double
    trace = agent.solve_trace(task.known(inst[:8]))
    assert len(trace) == agent.steps + 1
    powers = torch.stack([task.evaluate(bf, inst[:8])["power"] for bf in trace], 1)
    torch.testing.assert_close(powers, sol.history[:8], rtol=1e-9, atol=0)
    torch.testing.assert_close(trace[-1].digital, sol.beamformer.digital[:8])


def test_single_user_greedy_is_the_optimal_top_k_selection():
    # I = 1: 1^T q = gamma / ||A^H h||^2, minimized by the M_rf largest |a^H h|^2 = eq. (35)
    gen = torch.Generator().manual_seed(5)
    h = torch.randn(7, 1, 16, dtype=torch.complex128, generator=gen)
    gamma = torch.full((7, 1), 10.0, dtype=torch.float64)
    cb = dft_codebook_2d(4, 4, precision="double")
    sol = greedy_hybrid_beamforming(h, gamma, cb, 5, 1e6)
    gains = (h @ cb.conj()).abs().square()[:, 0]
    want = 10.0 / gains.topk(5, dim=-1).values.sum(-1)
    torch.testing.assert_close(sol.power, want, rtol=1e-10, atol=0)
    assert bool(sol.feasible.all())


def test_greedy_against_brute_force_on_a_small_codebook():
    gen = torch.Generator().manual_seed(2)
    b, n_users, num_rf = 12, 2, 2
    cb = dft_codebook_2d(2, 2, precision="double")  # A = 4 codewords
    h = torch.randn(b, n_users, 4, dtype=torch.complex128, generator=gen)
    gamma = torch.full((b, n_users), 3.0, dtype=torch.float64)
    sol = greedy_hybrid_beamforming(h, gamma, cb, num_rf, 1e6)
    best = torch.full((b,), math.inf, dtype=torch.float64)
    for combo in itertools.combinations(range(4), num_rf):
        idx = torch.tensor(combo).expand(b, -1)
        g = h @ select_codewords(cb, idx).conj()
        d = solve_digital_beamforming(g, gamma)
        best = torch.minimum(best, torch.where(d.feasible, d.q.sum(-1), math.inf))
    assert bool((sol.design_power >= best * (1 - 1e-9)).all())
    # with 2 sweeps over 2 chains every pair is reachable: the greedy finds the optimum here
    assert float((sol.design_power / best - 1).abs().max()) < 0.05


def test_covariance_init_and_single_precision():
    inst = _set(16, 4, csi="perfect").instances  # complex64
    task = make_task(ENV, csi="perfect")
    for init in ("instantaneous", "covariance"):
        agent = make_agent("ghbf_perf", task, init=init)
        bf = agent.solve(task.known(inst))
        assert bf.digital.dtype == torch.complex64 and bf.analog.dtype == torch.complex64
        m = task.evaluate(bf, inst)
        assert int(m["num_outage"].sum()) == 0  # within outage_rtol = 1e-4
        assert bool(agent.last_info["feasible"].all())


# ---- infeasible instances ---------------------------------------------------------------------
def test_absurd_targets_are_flagged_not_raised():
    task = make_task(ENV, precision="double")
    inst = _set(8, 1, precision="double").instances
    known = task.known(inst)
    # (a) 45 dB targets: reachable only far above P_max = 20 dB
    hard = OutageHybridKnown(
        h_est=known.h_est,
        R_est=known.R_est,
        gamma=torch.full_like(known.gamma, 10**4.5),
        xi=known.xi,
        group=known.group,
    )
    agent = make_agent("ghbf_perf", task)
    sol = agent.solve_detailed(hard)
    assert not bool(sol.feasible.any())
    assert bool(torch.isfinite(sol.beamformer.digital).all())
    assert bool((sol.power <= task.config.p_max * (1 + 1e-12)).all())
    # (b) two users with the same channel and targets > 0 dB: the fixed point diverges
    h = known.h_est.clone()
    h[:, 1] = h[:, 0]
    same = OutageHybridKnown(h, None, torch.full_like(known.gamma, 4.0), known.xi, known.group)
    sol = agent.solve_detailed(same)
    assert not bool(sol.feasible.any())
    assert bool(torch.isinf(sol.design_power).all())
    assert bool(torch.isfinite(sol.beamformer.digital).all())
    m = task.evaluate(sol.beamformer, inst)  # a valid design the env can score
    assert bool((m["power"] <= task.config.p_max * (1 + 1e-9)).all())


def test_env_with_unreachable_targets_reports_instead_of_crashing():
    kw = {"reject_infeasible": False, "gamma_db_range": (40.0, 40.0)}
    task = make_task(ENV, **kw)
    inst = _set(4, 0, **kw).instances
    agent = make_agent("ghbf_marg", task)
    bf = agent.solve(task.known(inst))
    assert not bool(agent.last_info["feasible"].any())
    assert bool(agent.last_info["pmax_scaled"].all())
    m = task.evaluate(bf, inst)
    assert bool((m["num_outage"] > 0).all())


# ---- G-HBF-marg: margins, bisection, persistence ----------------------------------------------
def test_unlearned_margin_is_zero_and_margins_raise_power():
    task = make_task(ENV, constraint_groups=True)
    inst = _set(24, 8, constraint_groups=True).instances
    known = task.known(inst)
    marg = make_agent("ghbf_marg", task, rf_sweeps=1)
    perf = make_agent("ghbf_perf", task, rf_sweeps=1)
    assert marg.margins_db.tolist() == [0.0] * 4
    torch.testing.assert_close(marg.solve(known).digital, perf.solve(known).digital)
    marg.margins_db = torch.tensor([0.0, 3.0, 6.0, 9.0], dtype=torch.float64)
    bf = marg.solve(known)
    want = marg.margins_db[inst.group]
    torch.testing.assert_close(marg.last_info["margin_db"], want)
    m0 = task.evaluate(perf.solve(known), inst)
    m1 = task.evaluate(bf, inst)
    up = inst.group > 0
    assert float(m1["power"][up].sum()) > float(m0["power"][up].sum())
    torch.testing.assert_close(m1["power"][~up], m0["power"][~up])


def test_bisection_reaches_the_nominal_outage_on_validation_data():
    p_out = 0.1
    task = make_task(ENV)
    val = _set(160, 77)
    agent = make_agent(
        "ghbf_marg", task, rf_sweeps=1, bisect_low_db=-4.0, bisect_high_db=12.0, bisect_tol_db=0.25
    )
    assert agent.learn(val, p_out=p_out) is agent
    (rep,) = agent.learn_report
    assert rep["reached"] and rep["n"] == 160
    assert rep["outage"] <= p_out < rep["outage_low"]
    assert 0.0 < rep["margin_db"] - rep["low_db"] <= 0.25
    assert rep["margin_db"] > 0.0  # imperfect CSI needs a positive margin

    def outage(margin: float) -> float:
        agent.margins_db = torch.tensor([margin], dtype=torch.float64)
        m = task.evaluate(agent.solve(task.known(val.instances)), val.instances)
        return float(m["outage"].double().mean())

    learned = rep["margin_db"]
    assert outage(learned) == pytest.approx(rep["outage"])
    assert outage(rep["low_db"]) > p_out
    assert outage(learned + 3.0) <= rep["outage"]


def test_margins_save_load_round_trip(tmp_path):
    env = gym.make(ENV, constraint_groups=True)
    agent = make_agent("ghbf_marg", env, rf_sweeps=1)
    agent.margins_db = torch.tensor([5.5, 2.25, 1.0, 3.125], dtype=torch.float64)
    path = tmp_path / "marg.pt"
    agent.save(path)
    back = GreedyMarginAgent.load(path, env)
    assert isinstance(back, GreedyMarginAgent)
    assert torch.equal(back.margins_db, agent.margins_db)
    assert back.name == agent.name and back.rf_sweeps == 1
    back2 = Agent.load(path, env)
    assert torch.equal(back2.margins_db, agent.margins_db)
    with pytest.raises(CheckpointError, match="another environment configuration"):
        GreedyMarginAgent.load(path, gym.make(ENV))
    with pytest.raises(CheckpointError, match="shape"):
        agent.load_state_dict({"margins_db": torch.zeros(3, dtype=torch.float64)})
    with pytest.raises(CheckpointError):
        agent.load_state_dict({"other": torch.zeros(4)})
    with pytest.raises(CheckpointError):
        make_agent("ghbf_perf", env).load_state_dict({"margins_db": torch.zeros(4)})


# ---- Gymnasium use and the harness ------------------------------------------------------------
@pytest.mark.parametrize("name", ["ghbf_perf", "ghbf_marg"])
def test_predict_from_reset_gives_a_valid_action(name):
    env = gym.make(ENV, csi="perfect")
    obs, _ = env.reset(seed=0)
    agent = make_agent(name, env)
    action, state = agent.predict(obs)
    assert state is None
    assert action.shape == env.action_space.shape and action.dtype == np.float32
    assert env.action_space.contains(action)
    _, reward, terminated, _, info = env.step(action)
    assert terminated and info["num_outage"] == 0 and not info["pmax_scaled"]
    assert 0 < info["power"] <= env.unwrapped.config.p_max


def test_predict_batched_from_vector_env_with_groups():
    envs = gym.make_vec(
        ENV, num_envs=3, vectorization_mode="vector_entry_point", constraint_groups=True
    )
    obs, _ = envs.reset(seed=1)
    agent = make_agent("ghbf_marg", envs)
    agent.margins_db = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    actions, _ = agent.predict(obs)
    assert actions.shape == (3, envs.single_action_space.shape[0])
    torch.testing.assert_close(
        agent.last_info["margin_db"], agent.margins_db[envs.instance.group.cpu()]
    )
    envs.step(actions)


def test_harness_end_to_end():
    ds = _set(6, 9, csi="perfect")
    agent = make_agent("ghbf_perf", make_task(ENV, csi="perfect"), rf_sweeps=1)
    res = evaluate_agent(agent, ds, batch_size=4, trace=True, single_instances=2)
    s = res.summary()
    assert s["n"] == 6 and s["num_outage_mean"] == 0.0 and s["projected_fraction"] == 0.0
    assert len(s["trace"]) == agent.steps + 1
    assert all(a >= b - 1e-6 for a, b in zip(s["trace"], s["trace"][1:], strict=False))


# ---- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, match",
    [
        ({"rf_sweeps": -1}, "rf_sweeps"),
        ({"rf_sweeps": 1.5}, "rf_sweeps"),
        ({"init": "random"}, "init"),
        ({"tol": 0.0}, "tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"screening": "fast"}, "screening"),
        ({"bisect_low_db": 5.0, "bisect_high_db": 5.0}, "bisect_low_db"),
        ({"bisect_tol_db": -1.0}, "bisect_tol_db"),
        ({"margin_db": float("nan")}, "margin_db"),
    ],
)
def test_bad_hyperparameters(kw, match):
    task = make_task(ENV)
    name = "ghbf_marg" if any(k.startswith(("bisect", "margin")) for k in kw) else "ghbf_perf"
    with pytest.raises(ValueError, match=match):
        make_agent(name, task, **kw)


def test_wrong_env_and_wrong_input():
    with pytest.raises(ValueError, match="does not support"):
        make_agent("ghbf_perf", "beamgym/FullyDigitalFDD-v0")
    with pytest.raises(ValueError, match="OutageHybrid"):
        GreedyHybridAgent(make_task("beamgym/FullyDigitalFDD-v0"))
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        make_agent("ghbf_perf", ENV, margin_db=1.0)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        make_agent("ghbf_marg", ENV, steps=3)
    with pytest.raises(ValueError, match="observe_covariance"):
        make_agent("ghbf_perf", make_task(ENV, observe_covariance=False), init="covariance")
    agent = make_agent("ghbf_marg", ENV)
    with pytest.raises(ValueError, match="OutageHybridKnown"):
        agent.solve(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="another configuration"):
        agent.learn(_set(4, 0, constraint_groups=True))
    with pytest.raises(ValueError, match="InstanceSet or OutageHybridInstance"):
        agent.learn(make_task(ENV).known(_set(4, 0).instances))
    with pytest.raises(ValueError, match="p_out"):
        agent.learn(_set(4, 0), p_out=1.5)


def test_finalize_reports_singular_designs():
    # a user with zero effective channel: eq. (22) is singular, the design is flagged
    cb = dft_codebook_2d(4, 4, precision="double")
    h = torch.zeros(1, 2, 16, dtype=torch.complex128)
    h[0, 0] = cb[:, 0] * 3.0
    analog = select_codewords(cb, torch.tensor([[0, 1, 2, 3, 4]]))
    bf, power, design, feasible, scaled = finalize_hybrid_design(
        h, torch.tensor([[2.0, 2.0]], dtype=torch.float64), analog, 100.0
    )
    assert not bool(feasible.any()) and bool(torch.isinf(design).all())
    assert bool(torch.isfinite(bf.digital).all()) and float(power[0]) <= 100.0


# ---- the Gram-domain screening is the physics fixed point -------------------------------------
def test_gram_screening_equals_the_physics_fixed_point():
    from agents.classical.outage import gram_uplink_power
    from beamgym.physics.power import virtual_uplink_fixed_point

    gen = torch.Generator().manual_seed(4)
    g = torch.randn(400, 3, 5, dtype=torch.complex128, generator=gen)
    g[:5, 1] = g[:5, 0]  # infeasible rows: identical users with targets > 0 dB
    gamma = 10 ** (0.3 + 1.2 * torch.rand(400, 3, dtype=torch.float64, generator=gen))
    ref = virtual_uplink_fixed_point(g, gamma)
    want = torch.where(ref.feasible, ref.q.sum(-1), math.inf)
    got = gram_uplink_power(g, gamma)
    assert bool(torch.isinf(got[:5]).all()) and bool(ref.feasible[5:].all())
    torch.testing.assert_close(got[5:], want[5:], rtol=1e-9, atol=0)
    # early stop: rows above their bound are inf, the others exact
    bound = want.clone()
    bound[5::2] *= 0.99
    bounded = gram_uplink_power(g, gamma, bound=bound)
    assert bool(torch.isinf(bounded[5::2]).all())
    torch.testing.assert_close(bounded[6::2], want[6::2], rtol=1e-9, atol=0)


def test_screening_choice_does_not_change_the_design():
    task = make_task(ENV, precision="double")
    inst = _set(24, 21, precision="double").instances
    known = task.known(inst)
    fast = make_agent("ghbf_perf", task, screening="gram").solve_detailed(known)
    slow = make_agent("ghbf_perf", task, screening="physics").solve_detailed(known)
    assert torch.equal(fast.indices, slow.indices)
    torch.testing.assert_close(fast.history, slow.history, rtol=1e-9, atol=0)
    torch.testing.assert_close(fast.beamformer.digital, slow.beamformer.digital)


def test_greedy_function_rejects_bad_input():
    cb = dft_codebook_2d(4, 4, precision="double")
    h = torch.randn(2, 3, 16, dtype=torch.complex128)
    gamma = torch.ones(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="shapes"):
        greedy_hybrid_beamforming(h, gamma[:, :2], cb, 5, 100.0)
    with pytest.raises(ValueError, match="gamma"):
        greedy_hybrid_beamforming(h, -gamma, cb, 5, 100.0)
    with pytest.raises(ValueError, match="M_rf"):
        greedy_hybrid_beamforming(h, gamma, cb, 2, 100.0)
    with pytest.raises(ValueError, match="screening"):
        greedy_hybrid_beamforming(h, gamma, cb, 5, 100.0, screening="exact")
    with pytest.raises(ValueError, match="h"):
        greedy_hybrid_beamforming(h.real, gamma, cb, 5, 100.0)
