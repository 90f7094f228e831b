"""Tests of the shared foundation: precision switch, validation, packing, structures, arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from beamgym import config
from beamgym._validation import (
    check_finite,
    check_int,
    check_positive,
    check_probability,
    check_tensor,
)
from beamgym.packing import pack_complex, packed_size, unpack_complex
from beamgym.physics.arrays import ula_response, upa_response
from beamgym.structures import HybridBeamformer


def test_precision_switch() -> None:
    assert config.complex_dtype("single") == torch.complex64
    assert config.complex_dtype("double") == torch.complex128
    assert config.real_dtype("double") == torch.float64
    with pytest.raises(ValueError, match="precision"):
        config.complex_dtype("half")  # type: ignore[arg-type]


def test_resolve_device_rejects_missing_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        config.resolve_device("cuda")


def test_check_tensor_errors() -> None:
    x = torch.zeros(2, 3, dtype=torch.complex64)
    with pytest.raises(ValueError, match="torch.Tensor"):
        check_tensor(np.zeros(3), "x")
    with pytest.raises(ValueError, match="2 dimensions"):
        check_tensor(torch.zeros(3), "x", ndim=2)
    with pytest.raises(ValueError, match="at least 3"):
        check_tensor(x, "x", min_ndim=3)
    with pytest.raises(ValueError, match="trailing shape"):
        check_tensor(x, "x", shape=(4,))
    with pytest.raises(ValueError, match="complex"):
        check_tensor(torch.zeros(3), "x", complex_=True)
    with pytest.raises(ValueError, match="real floating"):
        check_tensor(x, "x", complex_=False)
    bad = x.clone()
    bad[0, 1] = complex(float("nan"), 0.0)
    with pytest.raises(ValueError, match="non-finite"):
        check_tensor(bad, "x")
    with pytest.raises(ValueError, match="non-finite"):
        check_finite(torch.tensor([1.0, math.inf]), "y")
    assert check_tensor(x, "x", shape=(None, 3), complex_=True) is x


def test_scalar_checks() -> None:
    assert check_positive(2, "p") == 2.0
    for bad in (0, -1, math.nan, math.inf, "a"):
        with pytest.raises(ValueError):
            check_positive(bad, "p")
    with pytest.raises(ValueError, match="integer"):
        check_int(2.5, "n")
    with pytest.raises(ValueError, match=">= 1"):
        check_int(0, "n")
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        check_probability(1.0, "p")


@settings(max_examples=20, deadline=None)
@given(b=st.integers(1, 3), r=st.integers(1, 4), c=st.integers(1, 4))
def test_pack_roundtrip(b: int, r: int, c: int) -> None:
    x = torch.randn(b, r, c, dtype=torch.complex128)
    v = pack_complex(x, 2)
    assert v.shape == (b, packed_size((r, c)))
    assert v.dtype == torch.float64
    assert torch.equal(unpack_complex(v, (r, c)), x)


def test_unpack_wrong_length() -> None:
    with pytest.raises(ValueError, match="2\\*prod"):
        unpack_complex(torch.zeros(2, 7), (2, 2))


def test_ula_matches_formula_and_norm() -> None:
    theta = torch.tensor([0.3, -1.1], dtype=torch.float64)
    a = ula_response(theta, 8)
    q = torch.arange(8, dtype=torch.float64)
    ref = torch.exp(1j * math.pi * q * torch.sin(theta)[:, None]) / math.sqrt(8)
    torch.testing.assert_close(a, ref)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(2, dtype=torch.float64))
    assert ula_response(theta.float(), 4).dtype == torch.complex64
    assert ula_response(theta.float(), 4, precision="double").dtype == torch.complex128


def test_upa_is_kronecker() -> None:
    tx, ty = torch.tensor(0.4, dtype=torch.float64), torch.tensor(-0.2, dtype=torch.float64)
    u = upa_response(tx, ty, 4, 3)
    ref = torch.kron(ula_response(tx, 4), ula_response(ty, 3))
    torch.testing.assert_close(u, ref)
    with pytest.raises(ValueError, match="same shape"):
        upa_response(torch.zeros(2), torch.zeros(3), 2, 2)


def test_structures_index_cat_roundtrip() -> None:
    bf = HybridBeamformer(
        torch.randn(4, 6, 2, dtype=torch.complex64), torch.randn(4, 2, 3, dtype=torch.complex64)
    )
    assert bf.batch_size == 4 and len(bf) == 4
    one = bf[2]
    assert one.batch_size == 1
    assert torch.equal(HybridBeamformer.cat([bf[:2], bf[2:]]).analog, bf.analog)
    assert bf.full().shape == (4, 6, 3)
    back = HybridBeamformer.from_dict(bf.to_dict())
    assert torch.equal(back.digital, bf.digital)
    with pytest.raises(IndexError):
        bf[4]
    broken = HybridBeamformer(
        torch.zeros(3, 6, 2, dtype=torch.complex64), torch.zeros(4, 2, 3, dtype=torch.complex64)
    )
    with pytest.raises(ValueError, match="leading batch size"):
        broken.check_batch()
