"""ModularUplink-v0 (paper 004): config errors, projections in step, round trip, reward."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import beamgym  # noqa: F401  (registers the envs)
from beamgym.envs.modular_uplink import (
    ModularUplinkConfig,
    ModularUplinkEnv,
    ModularUplinkInstance,
    ModularUplinkTask,
)
from beamgym.packing import pack_complex
from beamgym.physics.metrics import modular_average_user_rate, modular_rate_gradient
from beamgym.physics.modular import connectivity_matrix

ENV_ID = "beamgym/ModularUplink-v0"
SMALL = {"P": 2, "L": 4, "N": 5, "K": 6}  # fast: M = 10, T = 5


def _env(**kw) -> ModularUplinkEnv:
    return gym.make(ENV_ID, **kw).unwrapped


def _task(precision="double", **kw) -> ModularUplinkTask:
    return ModularUplinkTask(ModularUplinkConfig(**kw), precision=precision)


def _feasible(task: ModularUplinkTask, b: int, seed: int = 0) -> torch.Tensor:
    """Random feasible panels of the task's constraint (zeros where sparse)."""
    g = torch.Generator().manual_seed(seed)
    c = task.config
    shape = (b, c.P, c.N, c.L)
    if "quantized" in c.constraint:
        k = torch.randint(0, c.q_levels, shape, generator=g).to(task.rdtype)
        phase = 2 * math.pi * k / c.q_levels
    else:
        phase = torch.rand(shape, generator=g, dtype=task.rdtype) * 2 * math.pi
    W = torch.polar(torch.ones_like(phase), phase)
    if "sparse" in c.constraint:
        off = torch.rand(shape, generator=g) < 0.2
        if c.s_max is not None:  # keep at most s_max active
            flat = (~off).reshape(b, -1)
            csum = flat.cumsum(-1)
            off = (~(flat & (csum <= c.s_max))).reshape(shape)
        W = torch.where(off, torch.zeros_like(W), W)
    return W


# ---- configuration --------------------------------------------------------------------------
def test_defaults_are_scenario1() -> None:
    c = ModularUplinkConfig()
    assert (c.T, c.P, c.L, c.N, c.B, c.K) == (5, 2, 4, 20, 2, 20)
    assert c.snr_db == 0.0 and c.rho_s == 1.0 and c.zeta == 0.5 and c.q_levels == 16
    assert c.constraint == "unconstrained" and c.s_max is None and c.csi_nmse_db is None
    assert c.M == 40 and c.num_phase_shifters == 160
    env = _env()
    assert env.observation_space.shape == (2 * 2 * 40 * 20 + 1,)
    assert env.action_space.shape == (320,)
    assert torch.equal(env.task.A, connectivity_matrix(4, 2, 5))
    hash(c)  # hashable / usable as a key


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"T": 0}, "T must be >= 1"),
        ({"N": 2.5}, "N must be an integer"),
        ({"K": True}, "K must be an integer"),
        ({"q_levels": 1}, "q_levels must be >= 2"),
        ({"connectivity_blocks": 0}, "connectivity_blocks must be >= 1"),
        ({"constraint": "analog"}, "constraint must be one of"),
        ({"snr_db": float("nan")}, "snr_db must be finite"),
        ({"snr_db": "high"}, "snr_db must be a number"),
        ({"snr_db": 500.0}, r"snr_db values must lie in \[-100, 100\] dB"),
        ({"snr_db": ()}, "non-empty tuple"),
        ({"rho_s": 0.0}, "rho_s must be > 0"),
        ({"zeta": 1.0}, "zeta must lie in \\[0, 1\\)"),
        ({"zeta": -0.1}, "zeta must lie in"),
        ({"csi_nmse_db": float("inf")}, "csi_nmse_db must be finite"),
        ({"N": 2, "P": 2}, "cannot support T = 5"),
        ({"L": 1, "P": 2, "N": 20}, "cannot feed T = 5"),
        ({"L": 8, "P": 2}, "L\\*P - T <= T"),
        ({"T": 40, "P": 16, "N": 4, "connectivity_blocks": 3}, "must divide"),
        ({"s_max": 100}, "needs constraint='sparse'"),
        ({"constraint": "quantized", "s_max": 100}, "needs constraint='sparse'"),
        ({"constraint": "sparse", "s_max": 4}, "s_max must lie in \\[T, N\\*L\\*P\\]"),
        ({"constraint": "sparse", "s_max": 161}, "s_max must lie in"),
        ({"constraint": "sparse", "s_max": 0}, "s_max must be >= 1"),
    ],
)
def test_config_errors(kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        ModularUplinkConfig(**kw)
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, **kw)


@pytest.mark.parametrize(
    ("kw", "sizes"),
    [
        ({"P": 4, "L": 2, "N": 3, "B": 4, "K": 5}, (4, 3, 2)),  # Scenario 2 (Rayleigh)
        ({"P": 8, "L": 1, "N": 4, "K": 50}, (8, 4, 1)),  # Scenario 3
        ({"T": 40, "P": 16, "N": 4, "K": 7, "connectivity_blocks": 8}, (16, 4, 4)),  # Sc. 6
    ],
)
def test_paper_scenarios_by_keyword(kw, sizes) -> None:
    env = _env(**kw)
    env.reset(seed=0)
    W = env.action_to_beamformer(env.action_space.sample())
    assert tuple(W.shape[1:]) == sizes
    _, r, *_ = env.step(env.action_space.sample())
    assert np.isfinite(r) and r > 0
    if "connectivity_blocks" in kw:
        base = connectivity_matrix(4, 2, 5)
        assert torch.equal(env.task.A, torch.kron(torch.eye(8), base))


# ---- projections in step -------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        {"constraint": "unconstrained"},
        {"constraint": "sparse"},
        {"constraint": "sparse", "s_max": 30},
        {"constraint": "quantized", "q_levels": 4},
        {"constraint": "sparse_quantized", "q_levels": 8, "s_max": 30},
    ],
)
def test_step_applies_the_constraint_projection(kw) -> None:
    env = _env(**SMALL, **kw)
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
    W = env.action_to_beamformer(a)[0]
    raw = torch.complex(torch.as_tensor(a[:40]), torch.as_tensor(a[40:])).reshape(2, 5, 4)
    mag = W.abs()
    sparse = "sparse" in kw["constraint"]
    assert bool(((mag - 1).abs() < 1e-6).logical_or(mag == 0).all())
    if sparse:
        assert bool((mag[raw.abs() < 0.5] == 0).all())
        if "s_max" in kw:
            assert int((mag > 0).sum()) <= kw["s_max"]
        else:
            assert torch.equal(mag > 0, raw.abs() >= 0.5)
    else:
        assert bool((mag > 0).all())
    if "quantized" in kw["constraint"]:
        q = kw["q_levels"]
        k = torch.angle(W[mag > 0]) * q / (2 * math.pi)
        assert bool(((k - k.round()).abs() < 1e-4).all())
    else:  # active phases are those of the raw action (eq. 10 / 18)
        act = mag > 0
        torch.testing.assert_close(W[act], raw[act] / raw[act].abs())
    _, reward, _, _, info = env.step(a)
    assert info["projected"] is True and bool(info["feasible"])
    assert int(info["active_phase_shifters"]) == int((mag > 0).sum())
    assert float(info["active_fraction"]) == pytest.approx(int((mag > 0).sum()) / 40)
    assert float(info["power"]) == pytest.approx(int((mag > 0).sum()), rel=1e-5)


def test_unprojected_input_is_reported_infeasible() -> None:
    task = _task(**SMALL)
    inst = task.sample(torch.Generator().manual_seed(0), 2)
    W = _feasible(task, 2) * 0.5
    with pytest.raises(ValueError, match="fixed point of the 'unconstrained' projection"):
        task.evaluate(W, inst)
    m = task.evaluate(W, inst, check_feasible=False)
    assert not bool(m["feasible"].any())


# ---- round trip -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        {"constraint": "unconstrained"},
        {"constraint": "sparse"},
        {"constraint": "sparse", "s_max": 25},
        {"constraint": "quantized"},
        {"constraint": "quantized", "q_levels": 3},
        {"constraint": "sparse_quantized", "s_max": 25},
    ],
)
@pytest.mark.parametrize("precision", ["single", "double"])
def test_roundtrip_on_feasible_set(kw, precision) -> None:
    task = _task(precision=precision, **SMALL, **kw)
    inst = task.sample(torch.Generator().manual_seed(2), 4)
    W = _feasible(task, 4, seed=3).to(task.cdtype)
    a = task.beamformer_to_action(W, inst)
    assert a.shape == (4, task.action_dim) and a.dtype == task.rdtype
    assert float(a.abs().max()) <= 1.0
    W2, projected = task.action_to_beamformer(a, inst)
    tol = 1e-6 if precision == "single" else 1e-14
    torch.testing.assert_close(W2, W, atol=tol, rtol=0)
    assert torch.equal(W2 == 0, W == 0)
    assert not bool(projected.any())
    torch.testing.assert_close(task.evaluate(W2, inst)["reward"], task.evaluate(W, inst)["reward"])


def test_zeta0_sparse_maps_zero_to_one_as_eq10() -> None:
    task = _task(**SMALL, constraint="sparse", zeta=0.0)
    inst = task.sample(torch.Generator().manual_seed(0), 1)
    W = _feasible(_task(**SMALL, constraint="sparse"), 1)
    W2, projected = task.action_to_beamformer(task.beamformer_to_action(W, inst), inst)
    assert bool((W2.abs() - 1).abs().max() < 1e-12) and bool(projected.all())


def test_beamformer_to_action_errors() -> None:
    task = _task(**SMALL)
    inst = task.sample(torch.Generator().manual_seed(0), 2)
    W = _feasible(task, 2)
    with pytest.raises(ValueError, match="real and imaginary parts in \\[-1, 1\\]"):
        task.beamformer_to_action(W * 1.5, inst)
    with pytest.raises(ValueError, match="panels tensor \\[batch, P, N, L\\]"):
        task.beamformer_to_action(W[:1], inst)
    with pytest.raises(ValueError, match="complex"):
        task.beamformer_to_action(W.real, inst)
    with pytest.raises(ValueError, match="panels tensor"):
        task.evaluate(W.reshape(2, 1, 10, 4), inst)
    with pytest.raises(ValueError, match="action must have trailing shape"):
        task.action_to_beamformer(torch.zeros(2, 7, dtype=torch.float64), inst)


# ---- reward --------------------------------------------------------------------------------------
def test_reward_is_eq6_per_user_on_the_true_channel() -> None:
    env = _env(**SMALL, csi_nmse_db=0.0, precision="double")  # very noisy CSI: H_est != H
    obs, _ = env.reset(seed=4)
    inst = env.instance
    assert not torch.allclose(inst.H, inst.H_est)
    a = env.action_space.sample()
    W = env.action_to_beamformer(a)
    _, reward, _, _, info = env.step(a)
    true = modular_average_user_rate(inst.H, W, env.task.A, inst.snr).item()
    est = modular_average_user_rate(inst.H_est, W, env.task.A, inst.snr).item()
    assert reward == pytest.approx(true, rel=1e-12) and reward != pytest.approx(est, rel=1e-3)
    assert float(info["metric"]) == reward
    assert float(info["sum_rate_nats"]) == pytest.approx(6 * reward)
    assert float(info["sum_rate_bits"]) == pytest.approx(6 * reward / math.log(2))
    assert float(info["per_user_rate_bits"]) == pytest.approx(reward / math.log(2))
    assert info["per_user"].shape == (6,)
    assert float(info["per_user"].mean()) == pytest.approx(reward)
    assert float(info["fully_digital_per_user_nats"]) >= reward
    # observation: packed H_est then the SNR in dB
    np.testing.assert_allclose(obs[:-1], pack_complex(inst.H_est, 3)[0].numpy(), rtol=1e-6)
    assert obs[-1] == pytest.approx(0.0, abs=1e-6)


def test_reward_gradient_is_theorem1() -> None:
    task = _task(**SMALL, snr_db=5.0)
    inst = task.sample(torch.Generator().manual_seed(5), 3)
    W = _feasible(task, 3).requires_grad_(True)
    task.evaluate(W, inst)["reward"].sum().backward()
    g9 = modular_rate_gradient(inst.H, W.detach(), task.A, inst.snr)
    # reward = eq. (6) / K; steepest ascent = 2 x eq. (9)
    torch.testing.assert_close(W.grad, 2 * g9 / 6, rtol=1e-8, atol=1e-10)


def test_snr_range_and_rho_s() -> None:
    task = _task(**SMALL, snr_db=(-10.0, 0.0, 10.0))
    inst = task.sample(torch.Generator().manual_seed(0), 500)
    db = 10 * torch.log10(inst.snr)
    levels = torch.tensor([-10.0, 0.0, 10.0], dtype=torch.float64)
    assert bool((db[:, None] - levels).abs().min(-1).values.lt(1e-9).all())  # only the set's values
    counts = [int(((db - v).abs() < 1e-9).sum()) for v in levels]
    assert min(counts) > 130  # each of the 3 values drawn about 500/3 times
    obs = task.observe(inst)
    torch.testing.assert_close(obs[:, -1], db)
    fixed = _task(**SMALL, snr_db=3.0, rho_s=2.0).sample(torch.Generator().manual_seed(0), 2)
    torch.testing.assert_close(fixed.snr, torch.full((2,), 2.0 * 10**0.3, dtype=torch.float64))


def test_csi_error_has_the_configured_nmse() -> None:
    task = _task(**SMALL, csi_nmse_db=-10.0)
    inst = task.sample(torch.Generator().manual_seed(0), 200)
    nmse = (inst.H_est - inst.H).abs().square().mean() / inst.H.abs().square().mean()
    assert 10 * math.log10(nmse.item()) == pytest.approx(-10.0, abs=0.2)
    perfect = _task(**SMALL).sample(torch.Generator().manual_seed(0), 2)
    assert torch.equal(perfect.H, perfect.H_est)


def test_vector_env_equals_single_env_for_constrained_modes() -> None:
    kw = {**SMALL, "constraint": "sparse_quantized", "s_max": 30}
    venv = gym.make_vec(ENV_ID, num_envs=4, vectorization_mode="vector_entry_point", **kw)
    venv.reset(seed=9)
    inst = venv.unwrapped.instance
    actions = venv.action_space.sample()
    _, rewards, _, _, infos = venv.step(actions)
    env = _env(**kw)
    for i in range(4):
        env.reset(options={"instance": inst[i]})
        _, r, _, _, info = env.step(actions[i])
        assert r == pytest.approx(rewards[i], rel=1e-5)
        assert int(info["active_phase_shifters"]) == int(infos["active_phase_shifters"][i])
    venv.close()


def test_instance_validation_errors() -> None:
    env = _env(**SMALL)
    inst = env.task.sample(torch.Generator().manual_seed(0), 1)
    bad_shape = ModularUplinkInstance(H=inst.H[:, :, :5], H_est=inst.H_est, snr=inst.snr)
    with pytest.raises(ValueError, match="instance.H must be complex \\[batch, B, M, K\\]"):
        env.reset(options={"instance": bad_shape})
    with pytest.raises(ValueError, match="positive linear SNRs"):
        env.reset(options={"instance": ModularUplinkInstance(inst.H, inst.H_est, -inst.snr)})
    # a double-precision instance is accepted by a single-precision env (cast)
    dbl = _task(**SMALL).sample(torch.Generator().manual_seed(0), 1)
    obs, _ = env.reset(options={"instance": dbl})
    assert obs.dtype == np.float32 and env.instance.H.dtype == torch.complex64


def test_sample_batch_size_error() -> None:
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        _task(**SMALL).sample(torch.Generator().manual_seed(0), 0)


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    cpu = ModularUplinkTask(ModularUplinkConfig(constraint="sparse", s_max=120))
    gpu = ModularUplinkTask(ModularUplinkConfig(constraint="sparse", s_max=120), device="cuda")
    ic = cpu.sample(torch.Generator().manual_seed(0), 8)
    ig = gpu.sample(torch.Generator().manual_seed(0), 8)
    assert ig.H.device.type == "cuda" and torch.equal(ig.H.cpu(), ic.H)
    a = torch.rand(8, cpu.action_dim, generator=torch.Generator().manual_seed(1)) * 2 - 1
    rc = cpu.evaluate(cpu.action_to_beamformer(a, ic)[0], ic)["reward"]
    rg = gpu.evaluate(gpu.action_to_beamformer(a.cuda(), ig)[0], ig)["reward"]
    torch.testing.assert_close(rg.cpu(), rc, rtol=1e-4, atol=1e-5)
