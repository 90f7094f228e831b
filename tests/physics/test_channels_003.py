"""Extended Saleh-Valenzuela channel of paper 003 eq. (2)-(3)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from beamgym.physics.channels import saleh_valenzuela_channel


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    ("precision", "dtype"), [("single", torch.complex64), ("double", torch.complex128)]
)
def test_shape_dtype_device_and_determinism(precision: str, dtype: torch.dtype) -> None:
    H = saleh_valenzuela_channel(_gen(1), 5, n_tx=8, n_users=3, n_paths=4, precision=precision)
    assert H.shape == (5, 3, 8) and H.dtype == dtype and H.device.type == "cpu"
    assert not H.is_conj()  # materialized, so torch.view_as_real works on it
    torch.view_as_real(H)
    H2 = saleh_valenzuela_channel(_gen(1), 5, n_tx=8, n_users=3, n_paths=4, precision=precision)
    assert torch.equal(H, H2)
    H3 = saleh_valenzuela_channel(_gen(2), 5, n_tx=8, n_users=3, n_paths=4, precision=precision)
    assert not torch.equal(H, H3)


def test_does_not_touch_global_rng() -> None:
    state = torch.get_rng_state()
    saleh_valenzuela_channel(_gen(0), 4, n_tx=8, n_users=2)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize(("normalization", "expected"), [("paper", 10.0), ("scaled", 32.0)])
def test_mean_channel_energy(normalization: str, expected: float) -> None:
    # docs/readings.md#003-channel-normalization: E||h||^2 = P paths as printed, = N with the
    # sqrt(N/P) scaling.
    H = saleh_valenzuela_channel(
        _gen(3),
        4000,
        n_tx=32,
        n_users=4,
        n_paths=10,
        normalization=normalization,
        precision="double",
    )
    energy = H.abs().square().sum(-1).flatten()  # ||h_k||^2
    se = float(energy.std()) / math.sqrt(energy.numel())
    assert abs(float(energy.mean()) - expected) < 4 * se


def test_scaled_is_paper_times_sqrt_n_over_p() -> None:
    kw = dict(n_tx=16, n_users=3, n_paths=5, precision="double")
    Hp = saleh_valenzuela_channel(_gen(7), 6, normalization="paper", **kw)
    Hs = saleh_valenzuela_channel(_gen(7), 6, normalization="scaled", **kw)
    torch.testing.assert_close(Hs, Hp * math.sqrt(16 / 5), rtol=1e-12, atol=0)


def test_single_path_is_a_scaled_ula_response() -> None:
    # P = 1: h = alpha a(phi) with a of eq. (3): equal magnitudes |alpha|/sqrt(N) and a
    # constant phase progression e^{j pi sin(phi)} between neighbouring antennas.
    H = saleh_valenzuela_channel(_gen(4), 3000, n_tx=8, n_users=1, n_paths=1, precision="double")
    h = H[:, 0].conj()  # h_k
    mag = h.abs()
    torch.testing.assert_close(mag, mag[:, :1].expand_as(mag), rtol=1e-10, atol=0)
    ratio = h[:, 1:] / h[:, :-1]
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-9, atol=1e-12)
    # alpha ~ CN(0, 1): N |h_n|^2 = |alpha|^2 ~ Exp(1), mean 1 and variance 1
    a2 = 8 * mag[:, 0].square()
    assert abs(float(a2.mean()) - 1.0) < 4 / math.sqrt(3000)
    # phi ~ U(0, 2 pi): sin(phi) has mean 0 and mean square 1/2
    sin_phi = torch.angle(ratio[:, 0]) / math.pi
    assert abs(float(sin_phi.mean())) < 4 * math.sqrt(0.5 / 3000)
    assert abs(float(sin_phi.square().mean()) - 0.5) < 4 * math.sqrt(0.125 / 3000)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), paths=st.integers(1, 6))
def test_rank_is_at_most_number_of_paths(seed: int, paths: int) -> None:
    # Each h_k is a combination of P steering vectors: stacking the K=8 users of a single
    # path count gives a matrix of rank <= K, and a single user's Hankel matrix of the entries
    # (a sum of P exponentials) has rank <= P.
    H = saleh_valenzuela_channel(
        _gen(seed), 1, n_tx=16, n_users=1, n_paths=paths, precision="double"
    )
    h = H[0, 0]
    hankel = torch.stack([h[i : i + 8] for i in range(9)])  # [9, 8]
    s = torch.linalg.svdvals(hankel)
    assert int((s > 1e-9 * s[0]).sum()) <= paths


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="normalization"):
        saleh_valenzuela_channel(_gen(0), 2, n_tx=8, n_users=2, normalization="unit")
    with pytest.raises(ValueError, match="generator"):
        saleh_valenzuela_channel(0, 2, n_tx=8, n_users=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch"):
        saleh_valenzuela_channel(_gen(0), 0, n_tx=8, n_users=2)
    with pytest.raises(ValueError, match="n_paths"):
        saleh_valenzuela_channel(_gen(0), 2, n_tx=8, n_users=2, n_paths=0)
    with pytest.raises(ValueError, match="n_tx"):
        saleh_valenzuela_channel(_gen(0), 2, n_tx=2.5, n_users=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="precision"):
        saleh_valenzuela_channel(_gen(0), 2, n_tx=8, n_users=2, precision="half")  # type: ignore[arg-type]
