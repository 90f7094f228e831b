"""Pins for the documented readings of docs/readings.md that no other test checks.

Each test names the section of ``docs/readings.md`` it pins and checks the property that makes
beamgym's reading the consistent one (and, where cheap, that the literal text does not have
it).
"""

from __future__ import annotations

import math

import torch

from agents.kd_edn.model import KDEDN, EDNConfig, user_errors
from agents.kd_edn.train import KDEDNTrainConfig
from agents.upga_m.model import l1_direction
from beamgym.envs.far_field_hybrid import FarFieldHybridConfig, FarFieldHybridTask
from beamgym.physics.analog import normalized_beam_gain, ttd_ps_analog, ttd_ps_parameters
from beamgym.physics.arrays import ula_response
from beamgym.physics.channels import near_field_channel, near_field_exact_channel

LAM, D, N_SUB = 3e-3, 1.5e-3, 4


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- paper 000, near field ---------------------------------------------------------------------
def _mirror_subarray_phase(H: torch.Tensor, n_sub: int) -> torch.Tensor:
    """Flip the sign of the linear phase inside every sub-array (the literal "+" of eq. (26))."""
    b, k, n = H.shape
    blocks = H.reshape(b, k, n // n_sub, n_sub)
    first = blocks[..., :1]
    return (first * (blocks / first).conj()).reshape(b, k, n)


def test_000_eq26_sign_matches_the_geometry_of_eq35_and_the_printed_sign_does_not() -> None:
    """docs/readings.md#000-eq26-sign: r^s - (q-1) d sin(theta^s), not "+"."""
    H, u = near_field_channel(_gen(0), 64, precision="double")
    He = near_field_exact_channel(u.alpha, u.r, u.theta, n_tx=64, wavelength=LAM, spacing_m=D)

    def nmse_db(X: torch.Tensor) -> float:
        return 10 * math.log10(float((X - He).abs().square().sum() / He.abs().square().sum()))

    assert nmse_db(H) < -30.0  # the corrected first-order model fits the exact channel
    assert nmse_db(_mirror_subarray_phase(H, N_SUB)) > -3.0  # the printed sign does not


def test_000_eq28_physical_delay_sign_gives_unit_gain_and_the_printed_sign_does_not() -> None:
    """docs/readings.md#000-eq28-sign: TTD factor e^{-j 2 pi mu / lambda}, not e^{+j...}."""
    H, u = near_field_channel(_gen(1), 64, precision="double")
    Wa = ttd_ps_analog(u.r_sub, u.theta_sub, n_sub=N_SUB, wavelength=LAM, spacing_m=D)
    b = normalized_beam_gain(H, Wa, u.alpha)
    torch.testing.assert_close(b, torch.ones_like(b), rtol=1e-10, atol=1e-10)
    # the printed "+" delay: multiply sub-array s of beam k by e^{+j 4 pi mu_k^s / lambda}
    mu, _ = ttd_ps_parameters(u.r_sub, u.theta_sub)  # [B, K, S]
    flip = torch.polar(torch.ones_like(mu), 4 * math.pi * mu / LAM)
    flip = flip.repeat_interleave(N_SUB, dim=-1).transpose(-1, -2)  # [B, N, K]
    literal = normalized_beam_gain(H, Wa * flip, u.alpha)
    assert literal.mean().item() < 0.5


# ---- paper 000, KD-EDN -------------------------------------------------------------------------
def _model(**kw: object) -> KDEDN:
    torch.manual_seed(0)
    cfg = EDNConfig(N=8, K=3, d=4, enc_hidden=(16,), dec_hidden=(16,), ch_hidden=(16,), **kw)
    return KDEDN(cfg).double().eval()


def _cn(*shape: int, seed: int = 0) -> torch.Tensor:
    g = _gen(seed)
    return torch.complex(
        torch.randn(shape, generator=g, dtype=torch.float64),
        torch.randn(shape, generator=g, dtype=torch.float64),
    )


def test_000_input_norm_makes_the_encoder_input_independent_of_the_snr() -> None:
    """docs/readings.md#000-kd-edn-input-norm: the encoder sees H_tilde / sqrt(SNR)."""
    scaled, literal = _model(input_norm="snr"), _model(input_norm="none")
    literal.load_state_dict(scaled.state_dict())
    H = _cn(5, 3, 8)
    for snr_db in (5.0, 20.0):
        amp = 10 ** (snr_db / 20)
        torch.testing.assert_close(scaled.encode(amp * H, snr_db), literal.encode(H))
    # the literal input grows with the SNR, so the latent changes with it
    assert not torch.allclose(literal.encode(10.0 * H), literal.encode(H))


def test_000_dft_basis_makes_a_single_path_channel_one_sparse_at_the_input_layer() -> None:
    """docs/readings.md#000-kd-edn-basis: a fixed unitary beamspace, not a new network."""
    seen: list[torch.Tensor] = []
    model = _model(basis="dft")
    model.encoder.net[0].register_forward_hook(lambda m, i, o: seen.append(i[0]))
    # a path at a DFT grid angle: sin(theta) = 2 * 3 / 8
    h = ula_response(torch.tensor(math.asin(0.75), dtype=torch.float64), 8).conj()
    H = h.expand(1, 3, 8).clone()
    model.encode(H, 0.0)
    x = seen[-1].reshape(3, 2, 8)
    mag = x.square().sum(1).sqrt()  # |beamspace coefficient| per user and beam
    assert int((mag > 1e-9).sum(-1).max()) == 1  # one beam per user
    torch.testing.assert_close(mag.square().sum(-1), torch.ones(3, dtype=torch.float64))
    identity = _model(basis="identity")
    identity.encoder.net[0].register_forward_hook(lambda m, i, o: seen.append(i[0]))
    identity.encode(H, 0.0)
    assert int((seen[-1].reshape(3, 2, 8).square().sum(1) > 1e-18).sum(-1).min()) == 8


def test_000_equivariant_decoder_permutes_columns_with_the_users() -> None:
    """docs/readings.md#000-kd-edn-decoder: user k's latent drives column k, tied weights."""
    model = _model(decoder="equivariant")
    z = torch.rand(2, 3, 4, generator=_gen(3), dtype=torch.float64) * 2 - 1
    perm = torch.tensor([2, 0, 1])
    W = model.initial_beamformer(z, 1.0)
    Wp = model.initial_beamformer(z[:, perm], 1.0)
    torch.testing.assert_close(Wp, W[:, :, perm])
    dense = _model(decoder="dense")
    Wd, Wdp = dense.initial_beamformer(z, 1.0), dense.initial_beamformer(z[:, perm], 1.0)
    assert not torch.allclose(Wdp, Wd[:, :, perm])


def test_000_channel_loss_ignores_each_users_common_phase() -> None:
    """docs/readings.md#000-kd-edn-channel-loss: eq. (17) up to a per-user common phase."""
    H, H_hat = _cn(4, 3, 8, seed=4), _cn(4, 3, 8, seed=5)
    phase = torch.polar(
        torch.ones(4, 3, 1, dtype=torch.float64),
        torch.rand(4, 3, 1, generator=_gen(8), dtype=torch.float64) * 6.0,
    )
    torch.testing.assert_close(
        user_errors(H, H_hat * phase, "phase-invariant"), user_errors(H, H_hat, "phase-invariant")
    )
    # it is the minimum of the printed error over the phase, so never above it ...
    assert (user_errors(H, H_hat, "phase-invariant") <= user_errors(H, H_hat, "mse") + 1e-12).all()
    # ... and the printed error sees the phase: a rotated perfect estimate is not error-free
    assert user_errors(H, H * phase, "phase-invariant").abs().max() < 1e-9
    assert user_errors(H, H * phase, "mse").min() > 1e-3


def test_000_training_defaults_are_the_documented_choices() -> None:
    """docs/readings.md#000-kd-edn-training: Adam 1e-3, d = 32, Q_t = 5 on the true channel."""
    cfg = KDEDNTrainConfig()
    assert (cfg.lr, cfg.d, cfg.q_train, cfg.sigma_z2) == (1e-3, 32, 5, 0.1)
    assert (cfg.input_norm, cfg.decoder, cfg.ch_loss) == ("snr", "equivariant", "phase-invariant")
    assert cfg.snr_db == (5.0, 10.0, 15.0, 20.0)
    assert (cfg.enc_hidden, cfg.dec_hidden, cfg.ch_hidden) == ((256,), (256, 256), (256,))
    assert (cfg.ga_channel, cfg.val_every) == ("true", 0)  # eq. (11) as printed, no extras


# ---- paper 003 ---------------------------------------------------------------------------------
def test_003_snr_split_puts_the_snr_into_the_power_budget_with_unit_noise() -> None:
    """docs/readings.md#003-snr-split: sigma_n^2 = 1 and P_t = SNR (000: P = 1, H / sigma)."""
    ps = FarFieldHybridTask(FarFieldHybridConfig(analog="phase-shifter", snr_db=10.0))
    inst = ps.sample(_gen(6), 8)
    torch.testing.assert_close(inst.power, torch.full_like(inst.power, 10.0))
    torch.testing.assert_close(inst.noise_var, torch.ones_like(inst.noise_var))
    st = FarFieldHybridTask(FarFieldHybridConfig(analog="steering", snr_db=10.0))
    inst = st.sample(_gen(6), 8)
    torch.testing.assert_close(inst.power, torch.ones_like(inst.power))
    torch.testing.assert_close(inst.noise_var, torch.ones_like(inst.noise_var))


# ---- paper 004 ---------------------------------------------------------------------------------
def test_004_l1_direction_is_the_steepest_ascent_of_the_l1_norm() -> None:
    """docs/readings.md#004-l1-convention: same factor-2 convention as the rate gradient."""
    W = _cn(2, 3, 4, seed=7).requires_grad_(True)
    W.abs().sum().backward()
    torch.testing.assert_close(l1_direction(W.detach()), W.grad)  # autograd: steepest ascent
    wirtinger = W.detach() / (2 * W.detach().abs())  # d||W||_1 / d conj(W)
    torch.testing.assert_close(l1_direction(W.detach()), 2 * wirtinger)
    zero = torch.zeros(3, dtype=torch.complex128)
    assert torch.equal(l1_direction(zero), zero)  # subgradient 0 at a deactivated entry
