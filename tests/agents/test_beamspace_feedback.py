"""The engineered equal-budget feedback agent and the shared feedback link (issue 11)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import agents  # noqa: F401  (registers the agents)
from agents.base import make_agent
from agents.classical.beamspace_feedback import (
    decode,
    design_codec,
    encode,
    link_transmit,
    phase_invariant_nmse,
    rotated_dft,
)
from agents.harness import evaluate_agent
from agents.rules.gradient import band_sum_rate, gradient_ascent
from agents.rules.problem import (
    SolverProblem,
    canonical_channel,
    initial_beamformer,
    problem_from_known,
)
from beamgym.datasets import make_instance_set, make_task
from beamgym.physics.feedback import (
    dequantize,
    noisy_link_bits_bound,
    quantization_symbols,
    soft_dequantize,
    symbol_levels,
)

FDD = "beamgym/FullyDigitalFDD-v0"


def _fdd_blocks(n: int = 20, snr: float = 15.0) -> torch.Tensor:
    task = make_task(FDD, snr_db=snr)
    ds = make_instance_set(FDD, n=n, seed=5, snr_db=snr)
    return task.known(ds.instances).H_est[:, :, None, :]  # [B, K, 1, N]


@settings(max_examples=60, deadline=None)
@given(
    bits=st.integers(1, 400),
    rows=st.sampled_from([1, 2, 4]),
    dim=st.sampled_from([4, 16, 64]),
    window=st.integers(1, 20),
    mode=st.sampled_from(["polar", "cartesian"]),
    basis=st.sampled_from(["dft", "identity"]),
)
def test_message_never_exceeds_the_budget(bits, rows, dim, window, mode, basis) -> None:
    try:
        codec = design_codec(bits, rows, dim, window=window, mode=mode, basis=basis)
    except ValueError as exc:
        assert "cannot hold a one-beam message" in str(exc)
        # the smallest message (one beam, one row) is indeed larger than the budget
        smallest = design_codec(10_000, rows, dim, window=1, mode=mode, basis=basis)
        assert rows > 1 or smallest.total_bits > bits
        return
    assert codec.total_bits <= bits
    assert 1 <= codec.window <= min(window, dim)
    X = torch.randn(2, 3, rows, dim, dtype=torch.complex64)
    msg = encode(X, codec, 10.0)
    assert msg.shape == (2, 3, codec.total_bits)
    assert set(msg.unique().tolist()) <= {0, 1}
    assert decode(msg, codec, X.dtype, 10.0).shape == X.shape


def test_reconstruction_improves_with_more_bits() -> None:
    X = _fdd_blocks()
    nmse = []
    for bits in (32, 64, 128, 256):
        codec = design_codec(bits, 1, 64, window=12)
        X_hat = decode(encode(X, codec, 15.0), codec, X.dtype, 15.0)
        nmse.append(float(phase_invariant_nmse(X, X_hat).mean()))
    assert all(a > b for a, b in zip(nmse, nmse[1:], strict=False)), nmse
    assert nmse[2] < 10 ** (-1.2)  # 128 bits: better than -12 dB on these channels


@pytest.mark.parametrize("mode", ["polar", "cartesian"])
def test_one_dft_beam_is_exact_up_to_the_gain_quantizer(mode: str) -> None:
    n, q, m = 64, 3, 17
    U = rotated_dft(n, 4, torch.complex128)
    c = 7.3 * complex(math.cos(1.1), math.sin(1.1))
    X = (c * U[q, :, m].conj()).reshape(1, 1, 1, n)  # X U_q = c e_m
    codec = design_codec(128, 1, n, window=12, mode=mode, gain_bits=8)
    X_hat = decode(encode(X, codec, 0.0), codec, X.dtype, 0.0)
    step_db = 60.0 / 2**8  # GAIN_RANGE_DB spans 60 dB
    Y_hat = X_hat[0, 0, 0] @ U[q]  # back in the beamspace of the beam
    g_hat = float(Y_hat[m].abs())
    assert abs(20 * math.log10(g_hat / abs(c))) <= step_db / 2 + 1e-9
    others = torch.cat([Y_hat[:m], Y_hat[m + 1 :]])
    if mode == "polar":  # zero-amplitude beams decode to exactly 0: only the gain error
        assert float(others.abs().max()) < 1e-9 * abs(c)
    else:  # the mid-rise real/imaginary quantizers: at most half a cell per part
        half = g_hat / 2 ** codec.field_bits[1]
        assert float(others.real.abs().max()) <= half + 1e-9
        assert float(others.imag.abs().max()) <= half + 1e-9


def test_common_phase_removal_leaves_the_rate_unchanged() -> None:
    task = make_task(FDD, snr_db=15.0, precision="double")
    ds = make_instance_set(FDD, n=8, seed=3, snr_db=15.0, precision="double")
    H = task.known(ds.instances).H_est
    angle = torch.rand(H.shape[:2], dtype=torch.float64) * 6.28
    phase = torch.polar(torch.ones_like(angle), angle)[..., None]
    codec = design_codec(128, 1, 64, window=12)
    # the message does not depend on a user's common phase
    same = encode(H[:, :, None], codec, 15.0) == encode((H * phase)[:, :, None], codec, 15.0)
    assert float(same.all(-1).double().mean()) > 0.9
    # MMSE+GA(10) on the phase-free reconstruction and on it with each user's phase restored
    H_hat = decode(encode(H[:, :, None], codec, 15.0), codec, H.dtype, 15.0)[:, :, 0]
    power = torch.ones(H.shape[0], dtype=torch.float64)
    rates = []
    for G in (H_hat, H_hat * phase):
        prob = SolverProblem(H=canonical_channel(G), power=power, noise_var=power)
        W0 = initial_beamformer("mmse", prob)[0]
        W = gradient_ascent(prob.H, W0, power, 10, 0.2, eta_rule="normalized")
        rates.append(band_sum_rate(ds.instances.H, W))
    assert torch.allclose(rates[0], rates[1], rtol=1e-9)


def test_noisy_link_bound_known_case() -> None:
    # b = 4: peak level 15/16; sigma^2 = 0.1 -> 0.5 log2(1 + 0.87890625 / 0.1) per symbol
    per = 0.5 * math.log2(1.0 + (15 / 16) ** 2 / 0.1)
    assert per == pytest.approx(1.6456, abs=1e-4)
    assert noisy_link_bits_bound(32) == pytest.approx(32 * per)
    assert noisy_link_bits_bound(32, 4, 0.0) == 128.0
    assert noisy_link_bits_bound(3, 1, 1e-9) == 3.0  # capped at b bits per symbol
    assert symbol_levels(4)[-1] == 15 / 16
    s = quantization_symbols(symbol_levels(4), 4)
    assert torch.equal(s, torch.arange(16)) and torch.equal(dequantize(s, 4), symbol_levels(4))
    with pytest.raises(ValueError, match="d must be"):
        noisy_link_bits_bound(0)


def test_noisy_link_one_bit_per_use_errs_at_the_gaussian_tail() -> None:
    bits = torch.randint(0, 2, (200, 16, 64), generator=torch.Generator().manual_seed(0))
    got = link_transmit(bits, "noisy", 1, torch.Generator().manual_seed(1))
    p = float((got != bits).double().mean())
    expected = 0.5 * math.erfc((15 / 16) / math.sqrt(2 * 0.1))  # Q(A / sigma)
    assert p == pytest.approx(expected, rel=0.25)
    assert link_transmit(bits, "noiseless") is bits


@pytest.mark.parametrize("link", ["noiseless", "noisy"])
def test_deterministic_for_a_seed_and_accounted(link: str) -> None:
    task = make_task(FDD, snr_db=10.0)
    ds = make_instance_set(FDD, n=6, seed=2, snr_db=10.0)
    known = task.known(ds.instances)
    a = make_agent("beamspace_feedback", task, link=link, seed=4).solve(known)
    b = make_agent("beamspace_feedback", task, link=link, seed=4).solve(known)
    assert torch.equal(a, b)
    fb = make_agent("beamspace_feedback", task, link=link).feedback_bits()
    assert fb["payload_bits"] <= 128
    if link == "noisy":
        assert fb["symbols_x_bits"] == 128
        assert fb["noisy_link_upper_bound"] == pytest.approx(noisy_link_bits_bound(32))
        assert fb["payload_bits"] <= fb["noisy_link_upper_bound"]
    else:
        assert fb["entropy_coded"] == fb["payload_bits"] == fb["symbols_x_bits"]


@pytest.mark.parametrize(
    ("env_id", "kw"),
    [
        (FDD, {"K": 4, "M": 2, "N": 16}),
        ("beamgym/FarFieldHybrid-v0", {}),
        ("beamgym/NearFieldHybrid-v0", {"n_subcarriers": 2}),
    ],
)
def test_harness_scores_it_with_a_feedback_column(env_id: str, kw: dict) -> None:
    task = make_task(env_id, snr_db=10.0, **kw)
    ds = make_instance_set(env_id, n=8, seed=1, snr_db=10.0, **kw)
    agent = make_agent("beamspace_feedback", task, link="noiseless", bits=96)
    res = evaluate_agent(agent, ds, single_instances=1)
    s = res.summary()
    assert s["feedback_bits"]["entropy_coded"] <= 96
    assert math.isfinite(s["metric_mean"]) and s["metric_mean"] > 0
    mmse = evaluate_agent(make_agent("mmse", task), ds, single_instances=0)
    assert "feedback_bits" not in mmse.summary()


def test_bad_hyperparameters_are_named() -> None:
    task = make_task(FDD)
    with pytest.raises(ValueError, match="link must be one of"):
        make_agent("beamspace_feedback", task, link="lossy")
    with pytest.raises(ValueError, match="cannot hold a one-beam message"):
        make_agent("beamspace_feedback", task, bits=8, link="noiseless")
    with pytest.raises(ValueError, match="symbol_bits must be <= 4"):
        make_agent("beamspace_feedback", task, symbol_bits=5)
    with pytest.raises(ValueError, match="no hyperparameter"):
        make_agent("beamspace_feedback", task, windows=3)


@pytest.mark.parametrize("scale", [1.0, 7.5])
def test_reg_scale_is_mmse_on_the_reconstruction_with_scaled_noise(scale: float) -> None:
    task = make_task(FDD, snr_db=15.0, K=4, M=2, N=16)
    ds = make_instance_set(FDD, n=5, seed=3, snr_db=15.0, K=4, M=2, N=16)
    prob = problem_from_known(task, task.known(ds.instances))
    agent = make_agent("beamspace_feedback", task, link="noiseless", q_infer=0, reg_scale=scale)
    assert ("reg_scale" in agent.hparams) == (scale != 1.0)  # the default keeps its name
    W = agent._design(prob)
    # reference: the same (deterministic, noiseless) message, then paper 000's MMSE with the
    # noise variance scaled, at full power
    est = dataclasses.replace(prob, H=agent.feedback(prob.H, 15.0))
    ref = initial_beamformer("mmse", dataclasses.replace(est, noise_var=est.noise_var * scale))
    assert torch.allclose(W, ref[0], rtol=1e-12, atol=1e-12)
    plain = make_agent("beamspace_feedback", task, link="noiseless", q_infer=0)._design(prob)
    assert torch.equal(W, plain) == (scale == 1.0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="reg_scale"):
            make_agent("beamspace_feedback", task, reg_scale=bad)


def test_kd_edn_link_parameter_alias_and_accounting() -> None:
    task = make_task(FDD, snr_db=10.0)
    ds = make_instance_set(FDD, n=4, seed=2, snr_db=10.0)
    known = task.known(ds.instances)
    clean = make_agent("kd_edn", task, link="noiseless")
    with pytest.warns(DeprecationWarning, match="feedback_noise is deprecated"):
        alias = make_agent("kd_edn", task, feedback_noise=False)
    assert alias.link == "noiseless" and not alias.feedback_noise
    assert torch.equal(clean.solve(known), alias.solve(known))
    with pytest.raises(ValueError, match="contradicts link"):
        make_agent("kd_edn", task, link="noiseless", feedback_noise=True)
    noisy = make_agent("kd_edn", task)
    fb = noisy.feedback_bits()
    assert fb == {"symbols_x_bits": 128.0, "noisy_link_upper_bound": noisy_link_bits_bound(32)}
    fb = clean.feedback_bits(known)
    assert fb["symbols_x_bits"] == 128.0
    assert fb["entropy_coded"] == pytest.approx(clean.feedback_cost(known)["coded_bits_per_user"])
    assert evaluate_agent(clean, ds, single_instances=0).summary()["feedback_bits"]["entropy_coded"]


def test_soft_dequantize_is_the_conditional_mean() -> None:
    """Known cases: symmetric at 0, the posterior mean of a 2-level alphabet, tiny noise."""
    # 1-bit alphabet {-1/2, 1/2}, uniform prior: E[l | y] = tanh(y / (2 sigma^2)) / 2
    y = torch.tensor([-0.7, -0.1, 0.0, 0.3, 1.2], dtype=torch.float64)
    got = soft_dequantize(y, 1, 0.2)
    assert torch.allclose(got, 0.5 * torch.tanh(y / 0.4), atol=1e-12)
    # by direct summation for the 16-level alphabet and a Gaussian prior
    levels = symbol_levels(4, torch.float64)
    w = torch.exp(-((0.37 - levels) ** 2) / (2 * 0.1) - levels**2 / (2 * 0.5))
    expected = float((w * levels).sum() / w.sum())
    got = float(soft_dequantize(torch.tensor(0.37, dtype=torch.float64), 4, 0.1, 0.5))
    assert got == pytest.approx(expected, rel=1e-12)
    # vanishing noise: the nearest level; the estimate stays inside the levels' range
    assert float(soft_dequantize(torch.tensor(0.3), 4, 1e-4)) == pytest.approx(0.3125)
    far = soft_dequantize(torch.tensor([-9.0, 9.0]), 4, 0.1)
    assert torch.allclose(far, torch.tensor([-15 / 16, 15 / 16]), atol=1e-4)
    with pytest.raises(ValueError, match="sigma_z2"):
        soft_dequantize(y, 4, 0.0)
    with pytest.raises(ValueError, match="prior_var"):
        soft_dequantize(y, 4, 0.1, -1.0)


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_analog_codec_fits_the_link_uses_and_is_exact_without_error(scale: float) -> None:
    codec = design_codec(32, 1, 64, window=16, gain_bits=4, analog=True, coef_scale=scale)
    # 2 rotation + 6 start + 4 reference + 4 gain bits, then 2 uses per coefficient
    assert codec.window == 9 and codec.header_bits == 16
    assert codec.header_bits + codec.analog_symbols == 32
    X = _fdd_blocks()
    msg = encode(X, codec, 15.0)
    coef = msg[..., codec.header_bits :].reshape(*msg.shape[:2], 2, codec.n_coef, 4)
    symbols = (coef * torch.tensor([8, 4, 2, 1])).sum(-1)  # the alphabet index of each use
    parts = dequantize(symbols, 4)  # what an error-free link would deliver
    same = decode(msg, codec, X.dtype, 15.0, parts)
    assert torch.allclose(same, decode(msg, codec, X.dtype, 15.0), atol=1e-6)
    with pytest.raises(ValueError, match="analog coefficients need"):
        dataclasses.replace(codec, mode="polar")
    with pytest.raises(ValueError, match="coef_scale"):
        dataclasses.replace(codec, coef_scale=0.5)


@pytest.mark.parametrize("analog", [False, True])
def test_noisy_link_uses_exactly_d_symbols(analog: bool) -> None:
    """The link draws one error per use: d = 32 per user, however the codec splits them."""
    task = make_task(FDD, snr_db=10.0)
    known = task.known(make_instance_set(FDD, n=3, seed=2, snr_db=10.0).instances)
    agent = make_agent("beamspace_feedback", task, link="noisy", analog=analog, seed=1)
    fb = agent.feedback_bits()
    used = fb["payload_bits"] / agent.symbol_bits + fb.get("analog_symbols", 0.0)
    assert used == agent.uses == 32 and fb["symbols_x_bits"] == 128
    before = agent._gen.get_state()
    agent.solve(known)
    drawn = torch.Generator().set_state(before)
    n_users = known.H_est.shape[0] * known.H_est.shape[1]
    torch.randn(int(used) * n_users, generator=drawn, dtype=torch.float64)
    assert torch.equal(drawn.get_state(), agent._gen.get_state())
    with pytest.raises(ValueError, match="analog=True needs link='noisy'"):
        make_agent("beamspace_feedback", task, link="noiseless", analog=True)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_link_functions_reject_non_finite_values(bad: float) -> None:
    from beamgym.physics import feedback

    x = torch.tensor([0.1, bad])
    for fn, name in [
        (lambda: feedback.quantization_symbols(x, 4), "z"),
        (lambda: feedback.quantize(x, 4), "z"),
        (lambda: feedback.soft_dequantize(x, 4, 0.1), "y"),
    ]:
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            fn()
