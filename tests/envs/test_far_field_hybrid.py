"""FarFieldHybrid-v0: both analog modes (paper 000 steering, paper 003 phase shifters)."""

from __future__ import annotations

import math
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch

import beamgym  # noqa: F401  (registers the environments)
from beamgym.envs.far_field_hybrid import (
    FarFieldHybridConfig,
    FarFieldHybridEnv,
    FarFieldHybridInstance,
    FarFieldHybridTask,
)
from beamgym.packing import pack_complex
from beamgym.physics.metrics import hybrid_sum_rate
from beamgym.physics.projections import normalize_digital, unit_modulus
from beamgym.structures import HybridBeamformer

ENV_ID = "beamgym/FarFieldHybrid-v0"
PS = {"analog": "phase-shifter"}


def _task(precision: str = "double", **kw) -> FarFieldHybridTask:
    return FarFieldHybridTask(FarFieldHybridConfig(**kw), precision=precision)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- config --------------------------------------------------------------------------------------
def test_mode_dependent_defaults() -> None:
    s = FarFieldHybridConfig()
    assert (s.analog, s.N, s.N_RF, s.K, s.n_paths, s.snr_db) == ("steering", 64, 16, 16, 10, 15.0)
    assert s.csi_error == "absolute" and s.sigma_h2 == 0.1
    assert (s.placement, s.sector, s.psi, s.sigma_aod) == (
        "single-cell",
        math.pi / 2,
        math.pi / 16,
        0.1,
    )
    assert s.normalization is None
    p = FarFieldHybridConfig(**PS)
    assert (p.N, p.N_RF, p.K, p.n_paths, p.snr_db, p.csi_error) == (32, 4, 4, 10, 10.0, "perfect")
    assert p.normalization == "paper" and p.placement is None and p.sector is None
    # explicit values win over the mode defaults; a list SNR range becomes a hashable tuple
    c = FarFieldHybridConfig(analog="phase-shifter", N=16, snr_db=[0, 20], normalization="scaled")
    assert c.N == 16 and c.K == 4 and c.snr_db == (0.0, 20.0) and c.normalization == "scaled"
    assert hash(c) == hash(pickle.loads(pickle.dumps(c)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"analog": "digital"}, "analog must be one of"),
        ({"analog": "phase-shifter", "N_RF": 3}, "K <= N_RF <= N"),
        ({"N": 8, "N_RF": 16}, "K <= N_RF <= N"),
        ({"analog": "phase-shifter", "placement": "single-cell"}, "placement applies only"),
        ({"analog": "phase-shifter", "sector": 1.0}, "sector applies only"),
        ({"normalization": "paper"}, "normalization applies only"),
        ({"N": 0}, "N must be >= 1"),
        ({"K": 2.5}, "K must be an integer"),
        ({"n_paths": 0}, "n_paths"),
        ({"snr_db": ()}, "non-empty tuple"),
        ({"snr_db": (0.0, float("inf"))}, "snr_db must be finite"),
        ({"snr_db": float("nan")}, "snr_db must be finite"),
        ({"snr_db": "loud"}, "snr_db must be a number"),
        ({"snr_db": True}, "snr_db must be a number"),
        ({"csi_error": "gaussian"}, "csi_error must be one of"),
        ({"sigma_h2": 0.0}, "sigma_h2 must be > 0"),
        ({"nmse_db": float("inf")}, "nmse_db must be finite"),
        ({"nmse_db": None}, "nmse_db must be a number"),
        ({"placement": "cell-free"}, "placement must be one of"),
        ({"sector": 4.0}, r"sector \(phi\) must lie in \(0, pi\]"),
        ({"sector": -1.0}, "sector must be > 0"),
        ({"placement": "spatial-division", "psi": 0.5}, r"psi must lie in \(0, pi/K\]"),
        ({"placement": "spatial-division", "N_RF": 32}, "set N_RF=16"),
        ({"sigma_aod": -0.1}, "sigma_aod must be >= 0"),
        ({"analog": "phase-shifter", "normalization": "unit"}, "normalization must be one of"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FarFieldHybridConfig(**kwargs)


def test_gym_make_passes_config_keywords() -> None:
    env = gym.make(ENV_ID, analog="phase-shifter", N=16, N_RF=6, K=3).unwrapped
    assert env.config.N == 16 and env.task.action_dim == 16 * 6 + 2 * 6 * 3
    assert env.observation_space.shape == (2 * 3 * 16 + 1,)
    with pytest.raises(ValueError, match="K <= N_RF"):
        gym.make(ENV_ID, analog="phase-shifter", N_RF=2)


# ---- phase-shifter mode (paper 003) --------------------------------------------------------------
def test_phase_shifter_sample_and_observation() -> None:
    t = _task(**PS, snr_db=(0.0, 20.0))
    inst = t.sample(_gen(0), 64)
    assert isinstance(inst, FarFieldHybridInstance)
    assert inst.H.shape == (64, 4, 32) and inst.H.dtype == torch.complex128
    assert torch.equal(inst.H_est, inst.H)  # 003 assumes perfect CSI by default
    assert bool(((inst.snr_db >= 0) & (inst.snr_db <= 20)).all()) and float(inst.snr_db.std()) > 3
    torch.testing.assert_close(inst.power, 10 ** (inst.snr_db / 10))  # P_t = SNR, sigma^2 = 1
    assert torch.equal(inst.noise_var, torch.ones(64, dtype=torch.float64))
    obs = t.observe(inst)
    assert obs.shape == (64, t.obs_dim) == (64, 257)
    assert torch.equal(obs[:, :-1], pack_complex(inst.H_est, 2)) and torch.equal(
        obs[:, -1], inst.snr_db
    )
    # the SV channel with the requested normalization: E||h||^2 = P (paper) or N (scaled)
    for norm, expected in (("paper", 10.0), ("scaled", 32.0)):
        H = _task(**PS, normalization=norm).sample(_gen(1), 1000).H
        e = H.abs().square().sum(-1).flatten()
        assert abs(float(e.mean()) - expected) < 4 * float(e.std()) / math.sqrt(e.numel())


def _random_feasible(t: FarFieldHybridTask, inst: FarFieldHybridInstance, seed: int):
    c = t.config
    b = inst.batch_size
    g = _gen(seed)
    F = unit_modulus(torch.randn(b, c.N, c.N_RF, generator=g, dtype=t.cdtype))
    W = normalize_digital(F, torch.randn(b, c.N_RF, c.K, generator=g, dtype=t.cdtype), inst.power)
    return HybridBeamformer(analog=F, digital=W)


def test_phase_shifter_round_trip_on_feasible_set() -> None:
    t = _task(**PS, snr_db=(0.0, 20.0))
    inst = t.sample(_gen(2), 16)
    bf = _random_feasible(t, inst, 3)
    a = t.beamformer_to_action(bf, inst)
    assert a.shape == (16, t.action_dim) and float(a.abs().max()) <= 1.0
    bf2, projected = t.action_to_beamformer(a, inst)
    torch.testing.assert_close(bf2.analog, bf.analog, rtol=0, atol=1e-12)
    torch.testing.assert_close(bf2.digital, bf.digital, rtol=0, atol=1e-12)
    assert bool(projected.all())  # the box-scaled digital action is rescaled by eq. (9)
    # the paper's PGA start (eq. 12-13) is feasible and round-trips too
    init = t.initial_beamformer(inst)
    bf3, _ = t.action_to_beamformer(t.beamformer_to_action(init, inst), inst)
    torch.testing.assert_close(bf3.digital, init.digital, rtol=0, atol=1e-12)
    # outside the feasible set: F is projected by eq. (7), W rescaled to the budget
    off = HybridBeamformer(analog=2.5 * bf.analog, digital=3.0 * bf.digital)
    bf4, _ = t.action_to_beamformer(t.beamformer_to_action(off, inst), inst)
    torch.testing.assert_close(bf4.analog, bf.analog, rtol=0, atol=1e-12)
    torch.testing.assert_close(bf4.digital, bf.digital, rtol=0, atol=1e-12)


def test_action_map_is_feasible_and_handles_degenerate_digital() -> None:
    t = _task(**PS, snr_db=(0.0, 20.0))
    inst = t.sample(_gen(4), 5)
    a = torch.rand(5, t.action_dim, generator=_gen(5), dtype=torch.float64) * 2 - 1
    a[0, t.config.N * t.config.N_RF :] = 0.0  # all-zero digital action
    # row 1: two identical analog columns and W~ = e_1 - e_2 in one stream -> F W~ = 0
    a[1, : t.config.N * t.config.N_RF] = 0.3
    a[1, t.config.N * t.config.N_RF :] = 0.0
    w = a[1, t.config.N * t.config.N_RF :].view(-1)
    w[0], w[t.config.K] = 1.0, -1.0  # Re W~[0, 0] = 1, Re W~[1, 0] = -1
    bf, projected = t.action_to_beamformer(a, inst)
    m = t.evaluate(bf, inst)
    assert bool(m["feasible"].all()) and bool(projected[:2].all())
    torch.testing.assert_close(m["power"], inst.power)
    torch.testing.assert_close(bf.analog.abs(), torch.ones_like(bf.analog.real))
    fallback = torch.eye(4, 4, dtype=torch.complex128)
    for i in (0, 1):
        d = bf.digital[i]
        torch.testing.assert_close(d / d[0, 0], fallback)  # [I_K; 0] direction
    # the first analog phase follows e^{j pi a}
    torch.testing.assert_close(torch.angle(bf.analog[2, 0, 0]), math.pi * a[2, 0])


def test_reward_is_sum_rate_on_true_channel_not_estimate() -> None:
    env = gym.make(
        ENV_ID, analog="phase-shifter", csi_error="nmse", nmse_db=-5.0, precision="double"
    ).unwrapped
    env.reset(seed=6)
    inst = env.instance
    assert not torch.equal(inst.H_est, inst.H)
    action = env.action_space.sample()
    _, reward, _, _, info = env.step(action)
    bf = env.action_to_beamformer(action)
    true = float(hybrid_sum_rate(inst.H, bf.analog, bf.digital, 1.0)[0])
    est = float(hybrid_sum_rate(inst.H_est, bf.analog, bf.digital, 1.0)[0])
    assert reward == pytest.approx(true, rel=1e-12) and reward != pytest.approx(est, rel=1e-6)
    assert info["sum_rate"] == pytest.approx(reward) and info["per_user"].sum() == pytest.approx(
        reward
    )
    assert info["power"] == pytest.approx(float(inst.power[0])) and bool(info["feasible"])
    sinr = info["sinr"]
    np.testing.assert_allclose(np.log2(1 + sinr), info["per_user"], rtol=1e-10)


def test_evaluate_flags_infeasible_and_validates() -> None:
    t = _task(**PS)
    inst = t.sample(_gen(7), 3)
    bf = _random_feasible(t, inst, 8)
    assert bool(t.evaluate(bf, inst)["feasible"].all())
    loud = HybridBeamformer(analog=bf.analog, digital=2 * bf.digital)
    with pytest.raises(ValueError, match=r"power .* exceeds the budget .* by .*% over"):
        t.evaluate(loud, inst)
    m = t.evaluate(loud, inst, check_feasible=False)
    assert not bool(m["feasible"].any())
    assert bool((m["reward"] > t.evaluate(bf, inst)["reward"]).all())  # power is not free
    # 003 eq. (5c) is an equality: half power is infeasible too
    quiet = HybridBeamformer(analog=bf.analog, digital=bf.digital * 0.5**0.5)
    with pytest.raises(ValueError, match="below the budget"):
        t.evaluate(quiet, inst)
    not_unit = HybridBeamformer(analog=bf.analog * 1.1, digital=bf.digital / 1.1)
    with pytest.raises(ValueError, match=r"\|F_ij\| = 1"):
        t.evaluate(not_unit, inst)
    assert not bool(t.evaluate(not_unit, inst, check_feasible=False)["feasible"].any())
    with pytest.raises(ValueError, match="beamformer.analog must be a torch.Tensor, got ndarray"):
        t.evaluate(HybridBeamformer(analog=bf.analog.numpy(), digital=bf.digital), inst)
    with pytest.raises(ValueError, match="HybridBeamformer"):
        t.evaluate(bf.full(), inst)
    with pytest.raises(ValueError, match=r"beamformer.analog must have shape"):
        t.evaluate(HybridBeamformer(analog=bf.analog[:, :-1], digital=bf.digital), inst)
    with pytest.raises(ValueError, match="dtype"):
        t.evaluate(HybridBeamformer(analog=bf.analog.to(torch.complex64), digital=bf.digital), inst)


def test_initial_beamformer_needs_n_rf_equal_k_and_phase_shifters() -> None:
    t = _task(**PS, N_RF=6)
    inst = t.sample(_gen(9), 2)
    with pytest.raises(ValueError, match="N_RF = K"):
        t.initial_beamformer(inst)
    with pytest.raises(ValueError, match="batch_size"):
        t.sample(_gen(9), 0)


def test_validate_instance_checks_shapes() -> None:
    env = gym.make(ENV_ID, **PS).unwrapped
    inst = env.task.sample(_gen(10), 1)
    bad = FarFieldHybridInstance(
        H=inst.H[:, :, :-1],
        H_est=inst.H_est,
        snr_db=inst.snr_db,
        power=inst.power,
        noise_var=inst.noise_var,
    )
    with pytest.raises(ValueError, match=r"instance.H must have shape \[B, 4, 32\]"):
        env.reset(options={"instance": bad})
    neg = FarFieldHybridInstance(
        H=inst.H, H_est=inst.H_est, snr_db=inst.snr_db, power=-inst.power, noise_var=inst.noise_var
    )
    with pytest.raises(ValueError, match="must be > 0"):
        env.reset(options={"instance": neg})


def test_phase_shifter_known_value_through_env() -> None:
    # reference (003): the eq. (12)-(13) start averages about 15.2 bit/s/Hz at 10 dB
    t = _task(**PS)
    inst = t.sample(_gen(2024), 1000)
    r = t.evaluate(t.initial_beamformer(inst), inst)["reward"]
    se = float(r.std()) / math.sqrt(1000)
    assert abs(float(r.mean()) - 15.2) < 3 * math.sqrt(se**2 + float(r.std()) ** 2 / 500)


def test_gradient_flows_from_reward_to_action() -> None:
    t = _task(**PS)
    inst = t.sample(_gen(11), 2)
    a = (
        torch.rand(2, t.action_dim, generator=_gen(12), dtype=torch.float64) * 2 - 1
    ).requires_grad_(True)
    bf, _ = t.action_to_beamformer(a, inst)
    t.evaluate(bf, inst)["reward"].sum().backward()
    g = a.grad
    n_ph = t.config.N * t.config.N_RF
    assert torch.isfinite(g).all() and g[:, :n_ph].abs().sum() > 0 and g[:, n_ph:].abs().sum() > 0


@pytest.mark.parametrize("kwargs", [PS, {}], ids=["phase-shifter", "steering"])
def test_vector_env_equals_single_env(kwargs: dict) -> None:
    n = 4
    venv = gym.make_vec(
        ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", snr_db=(0.0, 20.0), **kwargs
    )
    venv.reset(seed=13)
    inst = venv.unwrapped.instance
    actions = venv.action_space.sample()
    _, rewards, *_, infos = venv.step(actions)
    env = FarFieldHybridEnv(snr_db=(0.0, 20.0), **kwargs)
    for i in range(n):
        env.reset(options={"instance": inst[i]})
        _, r, *_, info = env.step(actions[i])
        assert r == pytest.approx(float(rewards[i]), rel=1e-5)
        np.testing.assert_allclose(info["per_user"], infos["per_user"][i], rtol=1e-5, atol=1e-6)
    venv.close()


# ---- steering mode (paper 000 Sec. IV-A) ---------------------------------------------------------
def test_steering_analog_is_paper_000_eq18() -> None:
    from beamgym.physics.analog import steering_analog, steering_angles

    for placement, n_rf in (("single-cell", 16), ("spatial-division", 16)):
        t = _task(placement=placement, N_RF=n_rf)
        angles = steering_angles(
            n_rf,
            placement=placement,
            sector=math.pi / 2,
            psi=math.pi / 16,
            n_users=16,
            n_rx=1,
            precision="double",
        )
        torch.testing.assert_close(t.analog_precoder, steering_analog(angles, 64, spacing=0.5))
        assert t.analog_precoder.shape == (64, n_rf)
    t = _task()
    # single cell, phi = pi/2: beta_n = -pi/4 + (n - 1/2) pi/(2 N_RF) (000 Sec. IV-A),
    # and a_N carries 1/sqrt(N)
    beta = -math.pi / 4 + (torch.arange(16, dtype=torch.float64) + 0.5) * (math.pi / 2) / 16
    q = torch.arange(64, dtype=torch.float64)[:, None]
    expected = torch.exp(1j * math.pi * q * torch.sin(beta)) / 8
    torch.testing.assert_close(t.analog_precoder, expected)


def test_steering_sample_normalization_and_csi_error() -> None:
    from beamgym.physics.channels import sparse_geometric_channel

    t = _task(snr_db=(5.0, 25.0))
    inst = t.sample(_gen(14), 400)
    H_bar, _ = sparse_geometric_channel(
        _gen(14),
        400,
        n_tx=64,
        n_users=16,
        n_rx=1,
        n_paths=10,
        placement="single-cell",
        sector=math.pi / 2,
        psi=math.pi / 16,
        sigma_aod=0.1,
        sigma_aoa=0.1,
        precision="double",
    )
    # 000: H = H_bar / sigma with SNR = P / sigma^2, P = 1 (docs/readings.md#000-snr-sigma)
    torch.testing.assert_close(
        inst.H, H_bar * (10 ** (inst.snr_db / 20)).to(H_bar.dtype)[:, None, None]
    )
    torch.testing.assert_close(inst.power, torch.ones(400, dtype=torch.float64))
    G = inst.H @ t.analog_precoder
    err = inst.H_est - G  # 000: Delta G ~ CN(0, 0.1) i.i.d. on the normalized effective channel
    assert inst.H_est.shape == (400, 16, 16)
    var = float(err.abs().square().mean())
    assert abs(var - 0.1) < 4 * 0.1 / math.sqrt(err.numel())
    obs = t.observe(inst)
    assert obs.shape == (400, 513) and torch.equal(obs[:, :-1], pack_complex(inst.H_est, 2))
    perfect = _task(csi_error="perfect").sample(_gen(15), 3)
    torch.testing.assert_close(perfect.H_est, perfect.H @ t.analog_precoder)


def test_steering_round_trip_reward_and_fixed_analog() -> None:
    env = gym.make(ENV_ID, precision="double").unwrapped
    env.reset(seed=16)
    t, inst = env.task, env.instance
    g = _gen(17)
    Wd = torch.randn(1, 16, 16, generator=g, dtype=torch.complex128)
    F = t.analog_precoder.expand(1, 64, 16)
    Wd = normalize_digital(F, Wd, 1.0)  # 000 eq. (24), P = 1
    bf = HybridBeamformer(analog=F, digital=Wd)
    a = t.beamformer_to_action(bf, inst)
    assert a.shape == (1, 512)
    bf2, _ = t.action_to_beamformer(a, inst)
    torch.testing.assert_close(bf2.digital, Wd, rtol=0, atol=1e-12)
    _, reward, _, _, info = env.step(a[0].numpy().astype(np.float32))
    bf3 = env.action_to_beamformer(a[0].numpy().astype(np.float32))
    assert reward == pytest.approx(
        float(hybrid_sum_rate(inst.H, bf3.analog, bf3.digital, 1.0)[0]), rel=1e-12
    )
    assert info["power"] == pytest.approx(1.0) and bool(info["feasible"])
    with pytest.raises(ValueError, match="analog precoder is fixed"):
        t.beamformer_to_action(HybridBeamformer(analog=unit_modulus(F), digital=Wd), inst)
    other = HybridBeamformer(analog=F * 1j, digital=Wd)
    with pytest.raises(ValueError, match="steering precoder"):
        t.evaluate(other, inst)
    assert not bool(t.evaluate(other, inst, check_feasible=False)["feasible"].any())
    # 000 eq. (23) is an inequality: half power is feasible, 1.01 P is not
    half = HybridBeamformer(analog=F, digital=Wd * 0.5**0.5)
    assert bool(t.evaluate(half, inst)["feasible"].all())
    with pytest.raises(ValueError, match="exceeds the budget"):
        env.evaluate(HybridBeamformer(analog=F, digital=Wd * 1.01**0.5))
    with pytest.raises(ValueError, match="needs analog='phase-shifter'"):
        t.initial_beamformer(inst)


def test_steering_defaults_pass_env_checkers() -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for kwargs in ({}, PS, {"placement": "spatial-division"}):
        env = gym.make(ENV_ID, **kwargs).unwrapped
        check_env(env, skip_render_check=True)
        sb3_check_env(env)
