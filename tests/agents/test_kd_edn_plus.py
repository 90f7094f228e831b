"""KD-EDN+ (agents/kd_edn_plus): the untrained start IS beamspace_feedback, gradients, inputs."""

from __future__ import annotations

import pytest
import torch

import agents  # noqa: F401  (registers the agents)
from agents.base import make_agent
from agents.classical.beamspace_feedback import encode
from agents.kd_edn.train import training_view
from agents.kd_edn_plus.model import (
    SNR_KNOTS,
    KDEDNPlus,
    error_aware_mmse,
    interpolate_knots,
    learned_gradient_ascent,
)
from agents.kd_edn_plus.train import KDEDNPlusTrainConfig, train_kd_edn_plus
from agents.rules.gradient import band_sum_rate, gradient_ascent
from agents.rules.problem import initial_beamformer, problem_from_known
from beamgym.datasets import make_instance_set, make_task

FDD, FAR, NEAR = (
    "beamgym/FullyDigitalFDD-v0",
    "beamgym/FarFieldHybrid-v0",
    "beamgym/NearFieldHybrid-v0",
)
CASES = [
    (FDD, {}, "noisy"),  # analog coefficient uses, learned soft dequantization
    (FDD, {}, "noiseless"),  # polar codec
    (FDD, {"K": 4, "M": 4}, "noisy"),  # MIMO blocks
    (FAR, {}, "noisy"),  # bits over the noisy link
    (NEAR, {}, "noiseless"),
]


def _problem(env_id: str, kw: dict, snr: float = 10.0, n: int = 8):
    task = make_task(env_id, snr_db=snr, **kw)
    known = task.known(make_instance_set(env_id, n=n, seed=5, snr_db=snr, **kw).instances)
    return task, known, problem_from_known(task, known)


@pytest.mark.parametrize(("env_id", "kw", "link"), CASES)
def test_untrained_model_reproduces_beamspace_feedback(env_id, kw, link) -> None:
    task, known, prob = _problem(env_id, kw)
    ref = make_agent("beamspace_feedback", task, link=link, seed=3)
    ref._snr_db = known.snr_db
    with torch.no_grad():
        W_ref = ref._design(prob)
        model = KDEDNPlus(task, 128, link, 10, snr_gains=link == "noiseless")
        W, H_hat = model(prob, known.snr_db, torch.Generator().manual_seed(3))
        # the same message, bit for bit, with the same count
        b, f, k, m, n = prob.H.shape
        X = prob.H.permute(0, 2, 1, 3, 4).reshape(b, k, f * m, n)
        msg = model._encode(X, known.snr_db)[1]
    assert torch.equal(msg, encode(X, ref.codec, known.snr_db))
    assert model.front.feedback_bits() == ref.feedback_bits()
    torch.testing.assert_close(W, W_ref, rtol=1e-4, atol=1e-4 * float(W_ref.abs().max()))
    assert H_hat.shape == prob.H.shape


def test_straight_through_gradient_reaches_the_encoder_and_the_decoder() -> None:
    task = make_task(FDD, snr_db=SNR_KNOTS)
    model = KDEDNPlus(task, 128, "noisy", 2, snr_gains=True)
    view = training_view(task, task.sample(torch.Generator().manual_seed(0), 8))
    W, H_hat = model(view.est, view.snr_db, torch.Generator().manual_seed(1))
    loss = -band_sum_rate(view.H, W).mean() + model.nmse(view.H, H_hat).mean()
    loss.backward()
    names = ("enc_log_gain", "enc_log_gain_snr", "deq_log_temp", "deq_prior", "reg_log_scale")
    for name in (*names, "step_log_scale"):
        grad = getattr(model, name).grad
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert model.ch_out.weight.grad.abs().sum() > 0  # the residual decoder (zero-initialised)


def test_rule_pieces_with_zero_theta_are_the_classical_rules() -> None:
    _, known, prob = _problem(FAR, {})
    p, s2, Q = prob.power, prob.noise_var, prob.Q
    zero = torch.zeros(len(p), dtype=p.dtype)
    W0 = error_aware_mmse(prob.linear_channel, p, s2, zero, Q)
    assert torch.equal(W0, initial_beamformer("mmse", prob)[0])
    steps = torch.full((len(p), 4), 0.2, dtype=p.dtype)
    ours = learned_gradient_ascent(prob.H, W0, p, s2, steps, Q)
    ref = gradient_ascent(prob.H, W0, p, 4, 0.2, s2, eta_rule="normalized", power_weight=Q)
    torch.testing.assert_close(ours, ref)
    # a larger regularization moves MMSE towards MRT (the BS distrusts H^)
    big = error_aware_mmse(prob.linear_channel, p, s2, zero + 20.0, Q)
    assert not torch.allclose(big, W0)


def test_snr_tables_interpolate_linearly_and_clamp() -> None:
    table = torch.tensor([[0.0, 1.0, 3.0, 7.0]])
    got = interpolate_knots(table, torch.tensor([5.0, 7.5, 15.0, 17.5, 0.0, 30.0]))
    assert got.shape == (6, 1)
    assert got[:, 0].tolist() == [0.0, 0.5, 3.0, 5.0, 0.0, 7.0]


def test_training_moves_the_model_and_keeps_the_budget() -> None:
    cfg = KDEDNPlusTrainConfig(
        env_id=NEAR, link="noisy", steps=2, batch_size=4, n_val=2, val_every=1, keep_best=False
    )
    model, hist = train_kd_edn_plus(cfg)
    assert len(hist) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in hist)
    moved = float(
        model.reg_log_scale.detach().abs().sum() + model.step_log_scale.detach().abs().sum()
    )
    assert moved > 0
    assert model.codec == KDEDNPlus(cfg.make_task(), 128, "noisy", 10).codec


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"link": "radio"}, "link"),
        ({"steps": -1}, "steps"),
        ({"bits": 0}, "bits"),
        ({"lr": float("nan")}, "lr"),
        ({"kd_weight": -1.0}, "kd_weight"),
        ({"keep_best": "yes"}, "keep_best"),
        ({"snr_gains": 1}, "snr_gains"),
        ({"selection": "best"}, "selection"),
        ({"env_kwargs": {"snr_db": 5.0}}, "snr_db"),
        ({"env_id": "beamgym/ModularUplink-v0"}, "env_id"),
    ],
)
def test_training_config_rejects_bad_values_by_name(kwargs, name) -> None:
    with pytest.raises(ValueError, match=name):
        KDEDNPlusTrainConfig(**kwargs)


def test_agent_rejects_bad_hyperparameters_by_name() -> None:
    task = make_task(FDD)
    for kwargs, name in [
        ({"link": "radio"}, "link"),
        ({"bits": 0}, "bits"),
        ({"seed": -1}, "seed"),
        ({"checkpoint": 3.5}, "checkpoint"),
        ({"window": 3}, "window"),
    ]:
        with pytest.raises(ValueError, match=name):
            make_agent("kd_edn_plus", task, **kwargs)
