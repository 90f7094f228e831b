"""NearFieldHybrid-v0 (paper 000 Sec. IV-B): config, TTD+PS analog, action map, wideband."""

from __future__ import annotations

import dataclasses
import math
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch

import beamgym  # noqa: F401  (registers the environments)
from beamgym.envs.near_field_hybrid import (
    NearFieldHybridConfig,
    NearFieldHybridTask,
    subcarrier_scales,
)
from beamgym.packing import pack_complex
from beamgym.physics.metrics import miso_rates, mmse_beamformer, sum_rate
from beamgym.physics.projections import hybrid_power
from beamgym.structures import HybridBeamformer

ENV_ID = "beamgym/NearFieldHybrid-v0"


def _task(precision: str = "double", **kw) -> NearFieldHybridTask:
    return NearFieldHybridTask(NearFieldHybridConfig(**kw), precision=precision)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- config --------------------------------------------------------------------------------
def test_paper_defaults() -> None:
    c = NearFieldHybridConfig()
    assert (c.K, c.S, c.n, c.N, c.wavelength, c.spacing) == (16, 16, 4, 64, 3e-3, 0.5)
    assert (c.r_c, c.r_var, c.P, c.snr_db, c.csi_error, c.sigma_h2) == (
        3.0,
        1.0,
        1.0,
        15.0,
        "absolute",
        0.1,
    )
    assert c.spacing_m == pytest.approx(1.5e-3) and c.carrier == pytest.approx(99.93e9, rel=1e-3)
    # Rayleigh distance N^2 lambda / 2 = 6.144 m (paper Sec. IV-C1)
    assert c.N**2 * c.wavelength / 2 == pytest.approx(6.144)
    assert hash(c) == hash(pickle.loads(pickle.dumps(c)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"K": 0}, "K"),
        ({"S": 2.0}, "S"),
        ({"S": 1000, "n": 5}, "too large"),
        ({"wavelength": -1.0}, "wavelength"),
        ({"spacing": 0.0}, "spacing"),
        ({"r_c": 0.0}, "r_c"),
        ({"r_var": -1.0}, "r_var"),
        ({"r_min": 0.0}, "r_min"),
        ({"r_min": 20.0}, "r_min"),
        ({"placement": "spatial-division", "psi": 1.0}, "psi"),
        ({"P": -1.0}, "P"),
        ({"snr_db": []}, "non-empty"),
        ({"csi_error": "x"}, "csi_error"),
        ({"sigma_h2": -0.1}, "sigma_h2"),
        ({"nmse_db": float("inf")}, "nmse_db"),
        ({"channel_model": "planar"}, "channel_model"),
        ({"n_subcarriers": 0}, "n_subcarriers"),
        ({"bandwidth": 2e11}, "carrier"),
        ({"bandwidth": 0.0}, "bandwidth"),
        ({"analog": "dft"}, "analog"),
    ],
)
def test_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NearFieldHybridConfig(**kwargs)


def test_subcarrier_grid() -> None:
    s = subcarrier_scales(1, 10e9, 100e9)
    assert s.tolist() == [1.0]
    s = subcarrier_scales(4, 10e9, 100e9)
    torch.testing.assert_close(s, torch.tensor([0.9625, 0.9875, 1.0125, 1.0375], dtype=s.dtype))


# ---- instances -----------------------------------------------------------------------------
def test_instance_fields_and_analog_eq_30() -> None:
    t = _task(csi_error="perfect")
    inst = t.sample(_gen(0), 50)
    assert inst.H.shape == (50, 16, 64) and inst.analog.shape == (50, 64, 16)
    assert inst.G.shape == (50, 1, 16, 16) and inst.G_est.shape == inst.G.shape
    torch.testing.assert_close(inst.G[:, 0], inst.H @ inst.analog)
    torch.testing.assert_close(inst.gram[:, 0], inst.analog.mH @ inst.analog)
    assert torch.equal(inst.G, inst.G_est)  # perfect CSI
    # b_k = 1 (eq. (29)): |g_kk| = ||h_k|| / sqrt(N) * sqrt(N) ... = sqrt(N) |alpha_k| sqrt(SNR/P)
    torch.testing.assert_close(
        torch.diagonal(inst.G[:, 0], dim1=-2, dim2=-1).abs(), inst.H.norm(dim=-1)
    )
    assert inst.r.min() >= 0.5
    # E||h_k||^2 = N * SNR / P
    assert inst.H.abs().square().sum(-1).mean().item() == pytest.approx(64 * 10**1.5, rel=0.1)


def test_effective_channel_csi_error() -> None:
    t = _task(snr_db=5.0)
    inst = t.sample(_gen(1), 200)
    err = inst.G_est - inst.G
    assert err.abs().square().mean().item() == pytest.approx(0.1, rel=0.05)
    t = _task(csi_error="nmse", nmse_db=-10.0)
    inst = t.sample(_gen(2), 200)
    nmse = (inst.G_est - inst.G).abs().square().sum() / inst.G.abs().square().sum()
    assert 10 * math.log10(nmse.item()) == pytest.approx(-10.0, abs=0.2)


def test_observation_layout_and_precisions() -> None:
    t = _task(precision="single")
    inst = t.sample(_gen(3), 2)
    obs = t.observe(inst)
    assert obs.shape == (2, 546) and obs.dtype == torch.float32
    torch.testing.assert_close(obs[:, :512], pack_complex(inst.G_est, 3))
    torch.testing.assert_close(obs[:, 512], inst.snr_db)
    torch.testing.assert_close(obs[:, 513], inst.csi_nmse_db)
    torch.testing.assert_close(obs[:, 514:530], inst.r)
    torch.testing.assert_close(obs[:, 530:], inst.theta)
    d = _task().sample(_gen(3), 2)
    torch.testing.assert_close(inst.G.to(torch.complex128), d.G, rtol=1e-4, atol=1e-3)


def test_exact_channel_model() -> None:
    t = _task(channel_model="exact", csi_error="perfect")
    inst = t.sample(_gen(4), 50)
    own = torch.diagonal(inst.G[:, 0], dim1=-2, dim2=-1).abs() / inst.H.norm(dim=-1)
    assert (own < 1).all() and (own > 0.99).all()  # first-order design on the exact channel


def test_validate_instance_errors() -> None:
    t = _task()
    inst = t.sample(_gen(5), 2)
    with pytest.raises(ValueError, match="instance.G must have shape"):
        t.validate_instance(dataclasses.replace(inst, G=inst.G[:, :, :3]))
    with pytest.raises(ValueError, match="power"):
        t.validate_instance(dataclasses.replace(inst, power=-inst.power))
    with pytest.raises(ValueError, match="dtype"):
        _task(precision="single").validate_instance(inst)


# ---- action map and evaluation ------------------------------------------------------------
def test_eq_24_normalization_and_round_trip() -> None:
    t = _task(P=2.0)
    inst = t.sample(_gen(6), 3)
    a = torch.rand(3, t.action_dim, generator=_gen(7), dtype=torch.float64) * 2 - 1
    bf, projected = t.action_to_beamformer(a, inst)
    assert isinstance(bf, HybridBeamformer) and projected.all()
    torch.testing.assert_close(hybrid_power(bf.analog, bf.digital), torch.full((3,), 2.0).double())
    bf2, _ = t.action_to_beamformer(t.beamformer_to_action(bf, inst), inst)
    torch.testing.assert_close(bf2.digital, bf.digital)
    m = t.evaluate(bf, inst)
    torch.testing.assert_close(m["power"], torch.full((3,), 2.0, dtype=torch.float64))
    # reward = eq. (33) on the true effective channel = sum-rate of the full precoder
    torch.testing.assert_close(m["reward"], sum_rate(inst.H, bf.full()))
    torch.testing.assert_close(m["per_user"], miso_rates(inst.G[:, 0], bf.digital))


def test_zero_action_and_mmse_baseline() -> None:
    t = _task()
    inst = t.sample(_gen(8), 4)
    a = torch.zeros(4, t.action_dim, dtype=torch.float64, requires_grad=True)
    bf, projected = t.action_to_beamformer(a, inst)
    assert projected.all() and torch.equal(bf.digital, torch.zeros_like(bf.digital))
    t.evaluate(bf, inst)["reward"].sum().backward()
    assert torch.isfinite(a.grad).all()
    mm = t.mmse_beamformer(inst)
    m = t.evaluate(mm, inst)
    assert m["feasible"].all() and m["power"].sub(1.0).abs().max() < 1e-9
    ref = mmse_beamformer(inst.G_est[:, 0], 1.0)
    ref = ref / hybrid_power(inst.analog, ref).sqrt()[:, None, None]
    torch.testing.assert_close(mm.digital, ref)
    # MMSE on the effective channel beats a random digital precoder by far
    rnd = t.action_to_beamformer(torch.rand(4, t.action_dim).double() * 2 - 1, inst)[0]
    assert (m["reward"] > 2 * t.evaluate(rnd, inst)["reward"]).all()
    # and the round trip through the action space keeps its reward
    bf2 = t.action_to_beamformer(t.beamformer_to_action(mm, inst), inst)[0]
    torch.testing.assert_close(t.evaluate(bf2, inst)["reward"], m["reward"])


def test_evaluate_errors() -> None:
    t = _task()
    inst = t.sample(_gen(9), 2)
    bf = t.mmse_beamformer(inst)
    with pytest.raises(ValueError, match="HybridBeamformer"):
        t.evaluate(bf.digital, inst)
    with pytest.raises(ValueError, match="instance.analog"):
        t.evaluate(HybridBeamformer(analog=bf.analog.conj(), digital=bf.digital), inst)
    with pytest.raises(ValueError, match="shape"):
        t.evaluate(HybridBeamformer(analog=bf.analog, digital=bf.digital[:, :3]), inst)
    with pytest.raises(ValueError, match="dtype"):
        t.evaluate(HybridBeamformer(analog=bf.analog, digital=bf.digital.to(torch.complex64)), inst)
    loud = HybridBeamformer(bf.analog, 1.1 * bf.digital)
    assert (~t.evaluate(loud, inst, check_feasible=False)["feasible"]).all()
    with pytest.raises(ValueError, match=r"exceeds the budget .* \(21% over"):
        t.evaluate(loud, inst)
    assert t.evaluate(HybridBeamformer(bf.analog, 0.5 * bf.digital), inst)["feasible"].all()


# ---- wideband (beam split) ---------------------------------------------------------------------
def test_wideband_ttd_beats_phase_shifters_only() -> None:
    """With 8 subcarriers over 10% bandwidth, TTDs keep the focusing gain; PS-only loses it."""
    kw = {"n_subcarriers": 8, "bandwidth": 10e9, "csi_error": "perfect"}
    ttd, ps = _task(analog="ttd", **kw), _task(analog="ps", **kw)
    it, ip = ttd.sample(_gen(10), 40), ps.sample(_gen(10), 40)
    torch.testing.assert_close(it.H, ip.H)  # same users and channel
    torch.testing.assert_close(it.analog, ip.analog)  # same hardware setting at f_c
    gain_t = torch.diagonal(it.G, dim1=-2, dim2=-1).abs().mean().item()
    gain_p = torch.diagonal(ip.G, dim1=-2, dim2=-1).abs().mean().item()
    assert gain_t > 1.15 * gain_p
    rt = ttd.evaluate(ttd.mmse_beamformer(it), it)["reward"].mean().item()
    rp = ps.evaluate(ps.mmse_beamformer(ip), ip)["reward"].mean().item()
    assert rt > rp + 10.0  # 65.6 vs 39.5 bit/s/Hz at this seed
    assert ttd.obs_dim == 2 * 8 * 16 * 16 + 2 + 2 * 16


def test_narrowband_ttd_and_ps_coincide() -> None:
    a = _task(analog="ttd").sample(_gen(11), 3)
    b = _task(analog="ps").sample(_gen(11), 3)
    torch.testing.assert_close(a.G, b.G)


# ---- env wrappers ----------------------------------------------------------------------------
def test_single_and_vector_env_agree_on_the_same_instances() -> None:
    venv = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point")
    obs, _ = venv.reset(seed=4)
    inst = venv.unwrapped.instance
    actions = venv.action_space.sample()
    _, rewards, *_ = venv.step(actions)
    env = gym.make(ENV_ID).unwrapped
    for i in range(3):
        o, _ = env.reset(options={"instance": inst[i]})
        np.testing.assert_array_equal(o, obs[i])
        assert env.step(actions[i])[1] == pytest.approx(rewards[i], rel=1e-5)
    venv.close()


def test_env_step_info() -> None:
    env = gym.make(ENV_ID, n_subcarriers=2).unwrapped
    env.reset(seed=0)
    _, reward, term, _, info = env.step(env.action_space.sample())
    assert term and info["feasible"] and info["power"] == pytest.approx(1.0, rel=1e-5)
    assert reward == pytest.approx(float(info["per_user"].sum()), rel=1e-5)
