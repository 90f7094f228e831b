"""Tests of the KD-EDN library (paper 000 Sec. III): networks, feedback, GA, losses, training."""

from __future__ import annotations

import json
import math

import pytest
import torch

from agents.base import CheckpointError
from agents.kd_edn.model import (
    KDEDN,
    EDNConfig,
    alpha_schedule,
    channel_decoder_loss,
    channel_to_real,
    feedback_bits,
    feedback_error,
    huffman_code,
    huffman_decode,
    huffman_encode,
    kd_loss,
    quantization_symbols,
    quantize,
    real_to_channel,
    semi_amortized_steps,
)
from agents.kd_edn.train import (
    KDEDNTrainConfig,
    _build,
    evaluate_sum_rate,
    load_checkpoint,
    plateau_gain,
    save_checkpoint,
    train_kd_edn,
    training_view,
)
from agents.rules.gradient import band_sum_rate
from beamgym.physics.metrics import mmse_beamformer
from beamgym.physics.projections import normalize_power, weighted_power

TINY = dict(
    env_kwargs={"N": 8, "K": 2, "L": 2},
    d=4,
    bits=3,
    enc_hidden=(32,),
    dec_hidden=(64,),
    ch_hidden=(32,),
    epochs=60,
    ch_epochs=30,
    batch_size=64,
    lr=3e-3,
    alpha_every=1,
    snr_db=(10.0,),
)


def _cn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


# ---- configuration -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [{"d": 0}, {"bits": -1}, {"bits": 17}, {"sigma_z2": -0.1}, {"dropout": 1.0}, {"K": 1.5}],
)
def test_edn_config_rejects_bad_values(kw: dict) -> None:
    with pytest.raises(ValueError):
        EDNConfig(**{"N": 8, "K": 2, **kw})


@pytest.mark.parametrize(
    "kw",
    [
        {"alpha_mode": "x"},
        {"batch_size": 0},
        {"lr": 0.0},
        {"precision": "half"},
        {"epochs": -1},
        {"val_every": -1},
        {"val_n": 0},
        {"val_seed": 1.5},
    ],
)
def test_train_config_rejects_bad_values(kw: dict) -> None:
    with pytest.raises(ValueError):
        KDEDNTrainConfig(**{**TINY, **kw})


# ---- vectorization -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 2, 8), (3, 2, 4, 8)])
def test_channel_vectorization_round_trip(shape: tuple[int, ...]) -> None:
    H = _cn(*shape)
    h = channel_to_real(H)
    m = 1 if len(shape) == 3 else shape[2]
    assert h.shape == (3, 2, 2 * m * 8)
    assert torch.equal(h[..., : m * 8], H.real.reshape(3, 2, -1))  # [vec Re, vec Im]
    assert torch.equal(real_to_channel(h, m, 8), H)
    with pytest.raises(ValueError):
        real_to_channel(h[..., :-1], m, 8)
    with pytest.raises(ValueError):
        channel_to_real(H.real)


# ---- feedback ------------------------------------------------------------------------------------
def test_quantizer_grid_error_and_straight_through() -> None:
    bits = 3
    z = torch.linspace(-1.0, 1.0, 1001, dtype=torch.float64, requires_grad=True)
    q = quantize(z, bits)
    step = 2.0 / 2**bits
    centres = -1.0 + (torch.arange(2**bits, dtype=torch.float64) + 0.5) * step
    assert torch.isclose(q.detach()[:, None], centres[None]).any(1).all()
    assert float((q - z).detach().abs().max()) <= step / 2 + 1e-12
    q.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))  # straight-through
    s = quantization_symbols(z, bits)
    assert int(s.min()) == 0 and int(s.max()) == 2**bits - 1
    assert quantize(z, 0) is z


def test_feedback_bits_measures_entropy() -> None:
    bits = 2
    uniform = torch.arange(4).repeat(25).reshape(10, 2, 5)
    fb = feedback_bits(uniform, bits)
    assert fb["entropy_bits_per_symbol"] == pytest.approx(2.0)
    assert fb["bits_per_user"] == pytest.approx(10.0)
    assert fb["fixed_bits_per_user"] == 10.0
    const = torch.zeros(10, 2, 5, dtype=torch.long)
    assert feedback_bits(const, bits)["bits_per_user"] == pytest.approx(0.0)
    half = torch.tensor([0, 1] * 50).reshape(10, 2, 5)
    assert feedback_bits(half, bits)["entropy_bits_per_symbol"] == pytest.approx(1.0)


def test_feedback_error_is_real_gaussian_with_paper_variance() -> None:
    z = torch.zeros(200, 4, 50, dtype=torch.float64)
    a = feedback_error(z, 0.1, torch.Generator().manual_seed(1))
    b = feedback_error(z, 0.1, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not a.is_complex()
    assert float(a.var()) == pytest.approx(0.1, rel=0.03)
    assert feedback_error(z, 0.0) is z


# ---- networks ------------------------------------------------------------------------------------
@pytest.mark.parametrize("M", [1, 2])
def test_networks_shapes_ranges_and_power(M: int) -> None:
    torch.manual_seed(0)
    cfg = EDNConfig(N=8, K=3, M=M, d=5, bits=2, enc_hidden=(16,), dec_hidden=(32,))
    model = KDEDN(cfg).double().eval()
    H = _cn(6, 3, 8) if M == 1 else _cn(6, 3, M, 8)
    z = model.encode(H * 10, 20.0)
    assert z.shape == (6, 3, 5) and float(z.detach().abs().max()) <= 1.0
    # input_norm="snr": the encoder sees H / sqrt(SNR), so (10 H, 20 dB) == (H, 0 dB)
    torch.testing.assert_close(z, model.encode(H, 0.0))
    with pytest.raises(ValueError, match="snr_db"):
        model.encode(H)
    z_hat = model.feedback(z, torch.Generator().manual_seed(0))
    P = torch.full((6,), 2.0, dtype=torch.float64)
    W0 = model.initial_beamformer(z_hat, P)
    assert W0.shape == (6, 8, 3 * M)
    torch.testing.assert_close(weighted_power(W0), P)  # normalization layer, Sec. III-A3
    A = _cn(6, 8, 8, seed=3)
    Q = A.mH @ A  # hybrid weight (W^a)^H W^a, eq. (24)
    torch.testing.assert_close(weighted_power(model.initial_beamformer(z_hat, P, Q), Q), P)
    H_hat = model.reconstruct_channel(z_hat, 20.0)
    assert H_hat.shape == H.shape and H_hat.is_complex()
    torch.testing.assert_close(H_hat, 10 * model.reconstruct_channel(z_hat, 0.0))
    with pytest.raises(ValueError):
        model.encode(_cn(6, 4, 8))


def test_dropout_only_in_training_mode() -> None:
    torch.manual_seed(0)
    model = KDEDN(EDNConfig(N=8, K=2, d=4, dec_hidden=(64,)))
    z = torch.rand(4, 2, 4) * 2 - 1
    model.train()
    assert not torch.equal(model.initial_beamformer(z, 1.0), model.initial_beamformer(z, 1.0))
    model.eval()
    assert torch.equal(model.initial_beamformer(z, 1.0), model.initial_beamformer(z, 1.0))


# ---- semi-amortized steps ------------------------------------------------------------------------
def test_semi_amortized_gradient_matches_finite_differences() -> None:
    """Gradient through Q_t = 3 steps of eq. (11) (autograd) vs central finite differences."""
    H = 2.0 * _cn(2, 2, 4, seed=1)
    W0 = _cn(2, 4, 2, seed=2)

    def f(W: torch.Tensor) -> torch.Tensor:
        return band_sum_rate(H, semi_amortized_steps(H, W, 1.0, 3, 0.2)).sum()

    Wr = W0.clone().requires_grad_(True)
    f(Wr).backward()
    grad = Wr.grad  # = dL/dRe + i dL/dIm (PyTorch convention for real L)
    eps = 1e-6
    fd = torch.zeros_like(W0)
    for idx in torch.cartesian_prod(*(torch.arange(s) for s in W0.shape)):
        i = tuple(idx.tolist())
        for unit in (1.0, 1j):
            E = torch.zeros_like(W0)
            E[i] = unit * eps
            d = (f(W0 + E) - f(W0 - E)) / (2 * eps)
            fd[i] += d if unit == 1.0 else 1j * d
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-7)
    assert torch.autograd.gradcheck(f, (W0.clone().requires_grad_(True),))


def test_semi_amortized_steps_raise_rate_and_q0_is_normalization() -> None:
    H = 3.0 * _cn(16, 3, 6, seed=4)
    W0 = _cn(16, 6, 3, seed=5)
    W_0 = semi_amortized_steps(H, W0, 1.0, 0, 0.2)
    torch.testing.assert_close(W_0, normalize_power(W0, 1.0))
    W_5 = semi_amortized_steps(H, W0, 1.0, 5, 0.2)
    assert float(band_sum_rate(H, W_5).mean()) > float(band_sum_rate(H, W_0).mean()) + 0.1


# ---- losses --------------------------------------------------------------------------------------
def test_kd_loss_terms() -> None:
    H = 3.0 * _cn(5, 2, 6, seed=6)
    W = normalize_power(_cn(5, 6, 2, seed=7), 1.0)
    teacher = mmse_beamformer(H, 1.0)
    rate = band_sum_rate(H, W).mean()
    lu, _ = kd_loss(H, W, 1.0, 1.0)
    torch.testing.assert_close(lu, -rate)  # eq. (15)
    ls, st = kd_loss(H, W, 0.0, 1.0)
    torch.testing.assert_close(ls, (teacher - W).abs().square().sum((1, 2)).mean())  # eq. (16)
    la, _ = kd_loss(H, W, 0.3, 1.0)
    torch.testing.assert_close(la, 0.3 * lu + 0.7 * ls)  # eq. (14)
    assert float(kd_loss(H, teacher, 0.0, 1.0)[0]) == pytest.approx(0.0, abs=1e-20)
    with pytest.raises(ValueError):
        kd_loss(H, W, 1.5, 1.0)


def test_alpha_schedule_and_modes() -> None:
    assert [alpha_schedule(e, 1) for e in (0, 1, 50, 100, 500)] == [0.0, 0.01, 0.5, 1.0, 1.0]
    assert alpha_schedule(25, 10) == pytest.approx(0.02)
    cfg = KDEDNTrainConfig(**TINY)
    assert cfg.alpha(3) == pytest.approx(0.03)
    assert KDEDNTrainConfig(**{**TINY, "alpha_mode": "unsupervised"}).alpha(0) == 1.0
    assert KDEDNTrainConfig(**{**TINY, "alpha_mode": "supervised"}).alpha(900) == 0.0


def test_channel_decoder_loss_value() -> None:
    H = torch.zeros(2, 2, 3, dtype=torch.complex128)
    H_hat = torch.full((2, 2, 3), 1 + 1j, dtype=torch.complex128)
    assert float(channel_decoder_loss(H, H_hat)) == pytest.approx(12.0)  # 6 entries * |1+j|^2


# ---- training (Algorithm 1) ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained() -> tuple[KDEDN, KDEDNTrainConfig, dict]:
    cfg = KDEDNTrainConfig(**TINY)
    model, history = train_kd_edn(cfg)
    return model, cfg, history


def test_training_improves_sum_rate_on_fixed_seed(trained: tuple) -> None:
    model, cfg, history = trained
    before = evaluate_sum_rate(_build(cfg), cfg, n=256, seed=777)
    after = evaluate_sum_rate(model, cfg, n=256, seed=777)
    # untrained 1.65, trained 3.98 bit/s/Hz at N=8, K=2, 10 dB (Q_i = 0: the network alone)
    assert after["sum_rate"] > before["sum_rate"] + 1.5
    assert len(history["edn"]) == cfg.epochs and len(history["channel"]) == cfg.ch_epochs
    assert history["edn"][-1]["alpha"] == pytest.approx(0.59)
    nmse = [r["nmse_db"] for r in history["channel"]]
    assert min(nmse[-5:]) < nmse[0]
    assert 0 < after["bits_per_user"] <= cfg.d * cfg.bits


def test_checkpoint_round_trip_is_exact(trained: tuple, tmp_path) -> None:
    model, cfg, history = trained
    path = save_checkpoint(tmp_path / "m", model, cfg)
    model2, cfg2, meta = load_checkpoint(path)
    assert cfg2 == cfg and meta["train_config"]["d"] == cfg.d and meta["agent"] == "kd_edn"
    s1, s2 = model.state_dict(), model2.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    H = _cn(4, 2, 8, seed=9, dtype=torch.complex64) * 3
    W1, _ = model.infer(H, 1.0, 3, 0.2, snr_db=10.0, generator=torch.Generator().manual_seed(0))
    W2, _ = model2.infer(H, 1.0, 3, 0.2, snr_db=10.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(W1, W2)


def test_missing_or_foreign_checkpoint_raises(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="examples/train.py --agent kd_edn"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad" / "checkpoint.pt"
    bad.parent.mkdir()
    torch.save({"format": "other"}, bad)
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_checkpoint(bad)


def test_double_precision_mimo_training_step() -> None:
    cfg = KDEDNTrainConfig(
        **{
            **TINY,
            "env_kwargs": {"N": 8, "K": 2, "M": 2, "L": 2},
            "epochs": 2,
            "ch_epochs": 2,
            "precision": "double",
        }
    )
    model, history = train_kd_edn(cfg)
    assert model.rdtype == torch.float64
    assert all(math.isfinite(r["loss"]) for r in history["edn"] + history["channel"])
    out = evaluate_sum_rate(model, cfg, n=16, q_infer=2)
    assert math.isfinite(out["sum_rate"]) and out["sum_rate"] > 0


def test_validation_curve_leaves_training_unchanged_and_is_reproducible() -> None:
    """The validation set has its own generator: the trained weights are bit-identical."""
    base = {**TINY, "epochs": 6, "ch_epochs": 2}
    plain, hist0 = train_kd_edn(KDEDNTrainConfig(**base))
    cfg = KDEDNTrainConfig(**base, val_every=2, val_n=32)
    logged, hist1 = train_kd_edn(cfg)
    for k, v in plain.state_dict().items():
        assert torch.equal(v, logged.state_dict()[k]), k
    assert "val" not in hist0
    assert [r["epoch"] for r in hist1["val"]] == [0.0, 2.0, 4.0, 6.0]
    again, hist2 = train_kd_edn(cfg)
    assert hist1["val"] == hist2["val"]
    # the last point is the final model's deployed W_0 on the validation set
    last = hist1["val"][-1]
    assert math.isfinite(last["val_sum_rate"]) and last["val_ga_rate"] > last["val_sum_rate"]


def test_reconstructed_ga_channel_trains_the_channel_decoder_in_stage_one() -> None:
    base = {**TINY, "epochs": 8, "ch_epochs": 0}
    oracle, _ = train_kd_edn(KDEDNTrainConfig(**base))
    ablation, _ = train_kd_edn(KDEDNTrainConfig(**base, ga_channel="reconstructed"))
    fresh = _build(KDEDNTrainConfig(**base)).state_dict()
    ch = [k for k in fresh if k.startswith("ch_decoder") and fresh[k].is_floating_point()]
    # with the oracle (and ch_epochs = 0) psi never moves; the ablation trains it in stage 1
    assert all(torch.equal(oracle.state_dict()[k], fresh[k]) for k in ch)
    assert not all(torch.equal(ablation.state_dict()[k], fresh[k]) for k in ch)
    # the Q_t steps see H_hat, so the encoder/decoder updates differ from the oracle run
    enc = "encoder.net.0.weight"
    assert not torch.equal(oracle.state_dict()[enc], ablation.state_dict()[enc])
    with pytest.raises(ValueError, match="ga_channel"):
        KDEDNTrainConfig(**base, ga_channel="estimated")


def test_plateau_gain() -> None:
    assert plateau_gain([1.0, 2.0, 2.0, 2.02], [0, 10, 80, 100]) == pytest.approx(0.01)
    # the tail starts at the last point at or before 80% of the last epoch
    assert plateau_gain([1.0, 2.0, 4.0], [0, 50, 100]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        plateau_gain([1.0], [0])
    with pytest.raises(ValueError):
        plateau_gain([1.0, 2.0], [0, 1], tail=1.0)


# ---- examples/train.py ---------------------------------------------------------------------------
def _train_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "train.py"
    spec = importlib.util.spec_from_file_location("kd_edn_train_script", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_train_script_writes_checkpoint_config_and_log(tmp_path) -> None:
    import csv
    import json

    script = _train_script()
    argv = [
        "--agent", "kd_edn_q0", "--env-kw", "N=8", "K=2", "L=2", "--d", "4",
        "--epochs", "3", "--ch-epochs", "2", "--batch-size", "16", "--snr-db", "5", "15",
        "--enc-hidden", "16", "--dec-hidden", "32", "--ch-hidden", "16",
        "--val-every", "2", "--val-n", "8",
        "--no-progress", "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    out = script.main(argv)
    model, cfg, _ = load_checkpoint(out / "checkpoint.pt")
    assert cfg.q_train == 0 and cfg.alpha_mode == "kd" and cfg.snr_db == (5.0, 15.0)
    assert cfg.dec_hidden == (32,)
    meta = json.loads((out / "config.json").read_text())
    assert meta["command"].startswith("python examples/train.py --agent kd_edn_q0")
    rows = list(csv.DictReader(open(out / "train_log.csv")))
    stages = ["val", "edn", "edn", "val", "edn", "val", "channel", "channel"]
    assert [r["stage"] for r in rows] == stages
    assert cfg.val_every == 2 and float(rows[-3]["epoch"]) == 3.0
    assert math.isfinite(float(rows[-3]["val_sum_rate"]))
    assert math.isfinite(float(rows[1]["sum_rate"])) and math.isfinite(float(rows[-1]["nmse_db"]))
    with pytest.raises(SystemExit):  # argparse: invalid choice of --env
        script.main(["--env", "beamgym/ModularUplink-v0", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="key=value"):
        script.main(["--env-kw", "N8", "--out", str(tmp_path / "z")])
    with pytest.raises(SystemExit):
        script.main(["--batch-size", "0", "--no-progress", "--out", str(tmp_path / "y")])


def test_mismatched_checkpoint_raises(trained: tuple, tmp_path) -> None:
    model, cfg, _ = trained
    path = save_checkpoint(tmp_path / "m", model, cfg)
    meta = json.loads((path.parent / "config.json").read_text())
    meta["train_config"]["d"] = cfg.d + 1  # parameters no longer fit the configuration
    (path.parent / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(path)


# ---- hybrid beamforming (Sec. IV) ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("env_id", "env_kwargs", "dims"),
    [
        ("beamgym/FarFieldHybrid-v0", {"N": 16, "K": 2, "N_RF": 2, "n_paths": 2}, (2, 2, 1)),
        ("beamgym/NearFieldHybrid-v0", {"K": 2, "S": 4, "n": 4}, (2, 2, 1)),
    ],
)
def test_hybrid_training_uses_effective_channels_and_eq24_power(
    env_id: str, env_kwargs: dict, dims: tuple
) -> None:
    cfg = KDEDNTrainConfig(
        **{**TINY, "env_id": env_id, "env_kwargs": env_kwargs, "epochs": 3, "ch_epochs": 3}
    )
    assert cfg.dims() == dims  # N = RF chains (far) / users (near), Sec. IV
    model, history = train_kd_edn(cfg)
    assert all(math.isfinite(r["loss"]) for r in history["edn"] + history["channel"])
    task = cfg.make_task(10.0)
    view = training_view(task, task.sample(torch.Generator().manual_seed(0), 8))
    P, Q = view.est.power, view.est.Q
    assert Q is not None  # hybrid: power weight (W^a)^H W^a
    W, _ = model.infer(view.H_est, P, 2, 0.2, snr_db=view.snr_db, power_weight=Q)
    torch.testing.assert_close(weighted_power(W, Q), P)  # eq. (24): ||W^a W^D||_F^2 = P
    out = evaluate_sum_rate(model, cfg, n=16, q_infer=2)
    assert math.isfinite(out["sum_rate"]) and out["sum_rate"] > 0


def test_train_config_rejects_bad_env() -> None:
    with pytest.raises(ValueError, match="env_id"):
        KDEDNTrainConfig(**{**TINY, "env_id": "beamgym/ModularUplink-v0"})
    with pytest.raises(ValueError, match="snr_db"):
        KDEDNTrainConfig(**{**TINY, "env_kwargs": {"snr_db": 10.0}})
    with pytest.raises(ValueError, match="phase-shifter"):
        KDEDNTrainConfig(
            **{
                **TINY,
                "env_id": "beamgym/FarFieldHybrid-v0",
                "env_kwargs": {"analog": "phase-shifter"},
            }
        )


# ---- the agents (committed models) ---------------------------------------------------------------
def test_agent_loads_checkpoint_and_checks_the_env(trained: tuple, tmp_path) -> None:
    from agents.base import make_agent
    from beamgym.datasets import make_instance_set, make_task

    model, cfg, history = trained
    path = save_checkpoint(tmp_path / "m", model, cfg)
    env_kw = {**cfg.env_kwargs, "snr_db": 10.0}
    task = make_task(cfg.env_id, **env_kw)
    agent = make_agent("kd_edn", task, checkpoint=str(path), q_infer=3)
    ds = make_instance_set(cfg.env_id, n=32, seed=3, **env_kw)
    known = task.known(ds.instances)
    W = agent.solve(known)
    torch.testing.assert_close(weighted_power(W), known.power)  # full power, Sec. III-A3
    # same seed -> same feedback errors -> same beamformers; feedback error on vs off differs
    again = make_agent("kd_edn", task, checkpoint=str(path), q_infer=3).solve(known)
    assert torch.equal(W, again)
    clean = make_agent("kd_edn", task, checkpoint=str(path), q_infer=3, link="noiseless")
    assert not torch.equal(W, clean.solve(known))
    trace = agent.solve_trace(known)
    assert len(trace) == 4  # W_0 and the Q_i = 3 steps of eq. (9)
    fb = agent.feedback_cost(known)
    assert 0 < fb["bits_per_user"] <= fb["fixed_bits_per_user"] == cfg.d * cfg.bits
    assert fb["coded_bits_per_user"] >= fb["bits_per_user"] - cfg.d  # a real code, near H
    # another SNR is fine (one model serves the SNR set); another system is not
    make_agent("kd_edn", make_task(cfg.env_id, **{**env_kw, "snr_db": 20.0}), checkpoint=str(path))
    with pytest.raises(CheckpointError, match="K: checkpoint 2 vs env 3"):
        make_agent("kd_edn", make_task(cfg.env_id, **{**env_kw, "K": 3}), checkpoint=str(path))
    with pytest.raises(CheckpointError, match="examples/train.py --agent kd_edn"):
        make_agent("kd_edn", task, checkpoint=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="q_infer"):
        make_agent("kd_edn", task, checkpoint=str(path), q_infer=-1)
    with pytest.raises(ValueError, match="no hyperparameter"):
        make_agent("kd_edn", task, checkpoint=str(path), steps=3)


def test_agent_without_committed_model_names_the_train_command() -> None:
    from agents.base import make_agent
    from beamgym.datasets import make_task

    task = make_task("beamgym/FullyDigitalFDD-v0", N=8, K=3)
    with pytest.raises(CheckpointError, match=r"train.py --agent kd_edn .*--env-kw .*N=8"):
        make_agent("kd_edn", task)


@pytest.mark.parametrize(
    "env_id",
    ["beamgym/FullyDigitalFDD-v0", "beamgym/FarFieldHybrid-v0", "beamgym/NearFieldHybrid-v0"],
)
def test_committed_model_is_trained_and_serves_its_snr_set(env_id: str) -> None:
    from agents.base import make_agent
    from agents.harness import evaluate_agent
    from beamgym.datasets import make_instance_set, make_task

    # validation seed of examples/evaluate.py (never the test seed)
    ds = make_instance_set(env_id, n=64, seed=2_000_003, snr_db=15.0)
    task = make_task(env_id, snr_db=15.0)
    agent = make_agent("kd_edn", task)
    assert agent.checkpoint_path.parent.name == env_id.split("/")[1]
    trained = evaluate_agent(agent, ds, batch_size=64, single_instances=1).metric.mean()
    untrained = make_agent("kd_edn", task)
    untrained.model.load_state_dict(_build(untrained.train_config).state_dict())
    fresh = evaluate_agent(untrained, ds, batch_size=64, single_instances=1).metric.mean()
    # measured: FDD 29.8 vs 1.5, far field 26.8 vs 1.5, near field 49.3 vs 1.4 bit/s/Hz
    assert trained > 2 * fresh + 5


# ---- the lossless source code --------------------------------------------------------------------
def test_huffman_code_is_prefix_free_round_trips_and_is_near_the_entropy() -> None:
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([0.4, 0.2, 0.15, 0.1, 0.05, 0.05, 0.03, 0.02])
    train = torch.multinomial(p, 20000, replacement=True, generator=g)
    code = huffman_code(torch.bincount(train, minlength=8))
    words = list(code.values())
    assert all(not b.startswith(a) for a in words for b in words if a != b)  # prefix-free
    # Kraft equality for a full binary tree
    assert sum(2.0 ** -len(w) for w in words) == pytest.approx(1.0)
    test = torch.multinomial(p, 4 * 16, replacement=True, generator=g).reshape(4, 1, 16)
    for user in test.reshape(4, 16).tolist():
        assert huffman_decode(huffman_encode(user, code), code) == user
    fb = feedback_bits(test.repeat(1, 2, 1), 3, code)
    h = float(-(p * p.log2()).sum())
    # expected code length within [H, H + 1) bits/symbol; this batch's lengths near 16 * that
    assert 16 * h - 8 < fb["coded_bits_per_user"] < 16 * (h + 1) + 8
    assert fb["coded_bits_per_user"] < fb["fixed_bits_per_user"] == 48
    with pytest.raises(ValueError, match="inside a codeword"):
        huffman_decode(huffman_encode([7], code)[:-1], code)
    with pytest.raises(ValueError, match="counts"):
        huffman_code(torch.tensor([3.0]))
