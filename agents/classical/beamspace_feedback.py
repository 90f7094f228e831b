r"""Engineered limited feedback at paper 000's bit budget: a DFT-beamspace codec, then MMSE+GA.

The equal-budget reference for KD-EDN (issue 11): the same users, the same feedback budget
(``bits`` per user and coherence interval; KD-EDN's committed models spend :math:`d\,b =
32 \times 4 = 128`) and the same link, but a model-based codec a practitioner would build (in
the spirit of 3GPP Type-II CSI, TS 38.214 Sec. 5.2.2.2.3: oversampled DFT beams, a wideband
amplitude reference, quantized amplitude/phase per beam). Per user :math:`k` and coherence
interval:

1. the user holds its ESTIMATED channel (the block :math:`\tilde{\mathbf H}_k \in
   \mathbb C^{R\times N}`, ``R = F M`` rows: subcarriers times receive antennas; the same
   estimate KD-EDN's encoder sees), rotates it into the beamspace :math:`\mathbf Y =
   \tilde{\mathbf H}_k\mathbf U_q` (``basis="dft"``: :math:`[\mathbf U_q]_{nm} =
   e^{-j2\pi n(m + q/O)/N}/\sqrt N`, one of ``O`` rotated orthonormal DFT bases;
   ``basis="identity"``: the hybrid envs' effective channels, already beamspace through the
   analog beams) and keeps the cyclic window of ``L`` adjacent beams with the most energy
   (rotation ``q`` and window start sent);
2. it removes the common phase (the sum-rate, eq. (2)/(4), is invariant to
   :math:`\tilde{\mathbf H}_k \to e^{j\varphi}\tilde{\mathbf H}_k`) by rotating the strongest
   kept coefficient onto the positive real axis, and sends that coefficient's position and
   magnitude :math:`g` (the gain, uniform in dB);
3. it quantizes the other :math:`RL - 1` coefficients divided by :math:`g` (magnitude
   :math:`\le 1`) with uniform scalar quantizers: amplitude on the levels
   :math:`s/(2^a - 1)` (0 and 1 included, so an empty beam decodes to 0) and phase on
   :math:`2\pi s/2^p` (``mode="polar"``), or real and imaginary part on the mid-rise levels
   of :func:`beamgym.physics.feedback.quantization_symbols` (``mode="cartesian"``);
4. the bits cross the link (:mod:`beamgym.physics.feedback`): ``link="noiseless"`` delivers
   them intact; ``link="noisy"`` is paper 000's link, ``bits // 4`` uses of the 16-level
   alphabet with the additive real error :math:`\mathcal N(0, \sigma_z^2 = 0.1)`, onto which
   the scheme maps ``symbol_bits`` bits per use (Gray-coded onto evenly spaced levels of the
   alphabet, detected by the nearest level), so it sends ``(bits // 4) * symbol_bits`` bits;
   or, with ``analog=True`` (cartesian, 4 bits per part), only the header goes bit by bit (1 bit
   per use) and each coefficient part, times ``coef_scale`` :math:`\alpha`, is one use carrying
   its 16-level quantizer level itself, which the BS replaces by the conditional mean of the
   sent level given the received value
   (:func:`beamgym.physics.feedback.soft_dequantize`) divided by :math:`\alpha`;
5. the BS decodes :math:`\hat{\mathbf H}_k` and runs paper 000's MMSE+GA(:math:`Q_i`)
   (Sec. III-D1: MMSE on the channel it has, then ``q_infer`` steps of eq. (9)).

Every bit is counted (:attr:`BeamspaceCodec.total_bits`: rotation, window start, reference
position, gain, coefficients) and never exceeds the budget. The codec's free choices (window
``L``, quantizer mode and amplitude/phase split, gain bits, bits per link use, analog
coefficients with their scale and prior) were tuned per
env and link on validation seeds only (``benchmarks/beamspace_feedback_000.py --tune``,
record ``benchmarks/results/beamspace_feedback_tuning.json``;
docs/readings.md#000-beamspace-feedback), stored in :data:`TUNED`.

References:
    [000] Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse
          Large-Scale MIMO Channels".
    [38.214] 3GPP TS 38.214, "Physical layer procedures for data", Sec. 5.2.2.2.3 (Type II
             codebook).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import torch

from agents.base import register_agent
from agents.common import DigitalPrecoderAgent, check_choice, check_hyperparameters
from agents.rules.gradient import DEFAULT_ETA, DEFAULT_ETA_RULE, ETA_RULES, gradient_ascent
from agents.rules.problem import SolverProblem, initial_beamformer, solver_env_ids
from beamgym._validation import check_int, check_positive
from beamgym.physics.feedback import (
    LINKS,
    SIGMA_Z2,
    SYMBOL_BITS,
    dequantize,
    feedback_error,
    noisy_link_bits_bound,
    quantization_symbols,
    soft_dequantize,
)
from beamgym.structures import TensorDataclass

__all__ = [
    "BASES",
    "MODES",
    "TUNED",
    "CODEC_DEFAULTS",
    "BeamspaceCodec",
    "BeamspaceFeedbackAgent",
    "Header",
    "WindowSelection",
    "assemble",
    "decode",
    "decode_header",
    "design_codec",
    "encode",
    "link_transmit",
    "pack",
    "phase_invariant_nmse",
    "rotated_dft",
    "select_window",
]

#: Beamspace bases: oversampled (rotated) DFT, or the channel's own axis (hybrid envs).
BASES: tuple[str, ...] = ("dft", "identity")
#: Coefficient quantizers: amplitude/phase or real/imaginary part.
MODES: tuple[str, ...] = ("polar", "cartesian")
#: Lowest and highest gain :math:`20\log_{10}(g/\sqrt{\rm SNR})` of the gain quantizer, dB
#: (the users and the BS know the SNR, paper 000 Sec. III-D1; the envs' normalized channels
#: scale as :math:`\sqrt{\rm SNR}`). It holds every validation draw of the three envs at
#: 5-20 dB with margin (observed -14 to 27 dB).
GAIN_RANGE_DB: tuple[float, float] = (-20.0, 40.0)

#: Codec choices an entry of :data:`TUNED` may leave out: their values then.
CODEC_DEFAULTS: dict[str, Any] = {
    "oversampling": 4,
    "analog": False,
    "coef_scale": 1.0,
    "prior_var": None,
}

#: Tuned codec choices per (env id, link), from the validation-seed tuning
#: (``benchmarks/beamspace_feedback_000.py --tune``, docs/readings.md#000-beamspace-feedback).
TUNED: dict[tuple[str, str], dict[str, Any]] = {
    ("beamgym/FullyDigitalFDD-v0", "noiseless"): {
        "basis": "dft",
        "window": 12,
        "mode": "polar",
        "amp_share": 0.5,
        "gain_bits": 6,
        "symbol_bits": 1,
    },
    ("beamgym/FullyDigitalFDD-v0", "noisy"): {
        "basis": "dft",
        "window": 9,
        "mode": "cartesian",
        "amp_share": 0.5,
        "gain_bits": 4,
        "symbol_bits": 1,
        "analog": True,
        "coef_scale": 2.5,
        "prior_var": None,
    },
    ("beamgym/FarFieldHybrid-v0", "noiseless"): {
        "basis": "identity",
        "window": 10,
        "mode": "polar",
        "amp_share": 0.5,
        "gain_bits": 6,
        "symbol_bits": 1,
    },
    ("beamgym/FarFieldHybrid-v0", "noisy"): {
        "basis": "identity",
        "window": 4,
        "mode": "polar",
        "amp_share": 0.4,
        "gain_bits": 4,
        "symbol_bits": 1,
    },
    ("beamgym/NearFieldHybrid-v0", "noiseless"): {
        "basis": "identity",
        "window": 12,
        "mode": "polar",
        "amp_share": 0.5,
        "gain_bits": 6,
        "symbol_bits": 1,
    },
    ("beamgym/NearFieldHybrid-v0", "noisy"): {
        "basis": "identity",
        "window": 4,
        "mode": "polar",
        "amp_share": 0.5,
        "gain_bits": 4,
        "symbol_bits": 1,
    },
}


def _clog2(n: int) -> int:
    """Bits of an index into ``n`` choices (0 for one choice)."""
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


@dataclasses.dataclass(frozen=True)
class BeamspaceCodec:
    r"""One user's feedback message layout (every field counted in :attr:`total_bits`).

    Attributes:
        rows: Rows ``R`` of a user's channel block (subcarriers times receive antennas).
        dim: Columns ``N`` (antennas, or RF chains / analog beams of a hybrid env).
        window: Beams ``L`` kept, ``1 <= L <= N``.
        coef_bits: Bits per non-reference coefficient (``>= 2`` when there is one).
        amp_bits: ``mode="polar"``: amplitude bits (phase: ``coef_bits - amp_bits``);
            ``"cartesian"``: ignored (real part ``ceil(coef_bits / 2)``, imaginary part
            ``floor(coef_bits / 2)`` bits).
        mode: ``"polar"`` or ``"cartesian"``.
        basis: ``"dft"`` (rotated orthonormal DFT) or ``"identity"``.
        oversampling: Rotations ``O`` of the DFT basis (``basis="dft"``).
        gain_bits: Bits of the gain :math:`20\log_{10}(g/\sqrt{\rm SNR})`, uniform on
            :data:`GAIN_RANGE_DB`.
        analog: Noisy link only: each coefficient part (``mode="cartesian"``,
            ``coef_bits = 2 * SYMBOL_BITS``) is ONE use of the link carrying its quantizer
            level itself (no bits), dequantized softly at the BS; the header still goes bit by
            bit. ``False``: every field is bits (:func:`link_transmit`).
        coef_scale: Factor :math:`\alpha \ge 1` on the coefficient parts before the
            cartesian quantizer (clipped to :math:`[-1, 1]`, divided out at the BS): it spreads
            the small parts over more of the alphabet (``1``: none).
    """

    rows: int
    dim: int
    window: int
    coef_bits: int
    amp_bits: int
    mode: str = "polar"
    basis: str = "dft"
    oversampling: int = 4
    gain_bits: int = 6
    analog: bool = False
    coef_scale: float = 1.0

    def __post_init__(self) -> None:
        check_int(self.rows, "rows")
        check_int(self.dim, "dim")
        check_int(self.window, "window")
        check_choice(self.mode, "mode", MODES)
        check_choice(self.basis, "basis", BASES)
        check_int(self.oversampling, "oversampling")
        check_int(self.gain_bits, "gain_bits")
        if self.window > self.dim:
            raise ValueError(f"window must be <= dim = {self.dim}, got {self.window}")
        if not (math.isfinite(self.coef_scale) and self.coef_scale >= 1.0):
            raise ValueError(f"coef_scale must be a finite number >= 1, got {self.coef_scale!r}")
        if self.analog and (self.mode != "cartesian" or self.coef_bits != 2 * SYMBOL_BITS):
            raise ValueError(
                f"analog coefficients need mode='cartesian' and coef_bits = {2 * SYMBOL_BITS} "
                f"(one {SYMBOL_BITS}-bit alphabet level per part), got mode={self.mode!r}, "
                f"coef_bits={self.coef_bits}"
            )
        if self.n_coef > 0:
            check_int(self.coef_bits, "coef_bits", minimum=2)
            if self.mode == "polar" and not 1 <= self.amp_bits < self.coef_bits:
                raise ValueError(
                    f"amp_bits must be in [1, coef_bits - 1] = [1, {self.coef_bits - 1}] "
                    f"(polar mode), got {self.amp_bits}"
                )

    @property
    def rotation_bits(self) -> int:
        """Bits of the DFT rotation ``q`` (0 for the identity basis)."""
        return _clog2(self.oversampling) if self.basis == "dft" else 0

    @property
    def start_bits(self) -> int:
        """Bits of the window start (0 when the window holds every beam)."""
        return _clog2(self.dim) if self.window < self.dim else 0

    @property
    def ref_bits(self) -> int:
        """Bits of the strongest (reference) coefficient's position in the window."""
        return _clog2(self.rows * self.window)

    @property
    def n_coef(self) -> int:
        """Quantized coefficients ``R L - 1`` (the reference one is the gain)."""
        return self.rows * self.window - 1

    @property
    def field_bits(self) -> tuple[int, int]:
        """Bits of the two parts of a coefficient: (amplitude, phase) or (real, imaginary)."""
        if self.mode == "polar":
            return self.amp_bits, self.coef_bits - self.amp_bits
        return (self.coef_bits + 1) // 2, self.coef_bits // 2

    @property
    def header_bits(self) -> int:
        """Bits before the coefficients: rotation, window start, reference position, gain."""
        return self.rotation_bits + self.start_bits + self.ref_bits + self.gain_bits

    @property
    def total_bits(self) -> int:
        """Exact message length in bits: header, gain and coefficients."""
        return self.header_bits + self.n_coef * (self.coef_bits if self.n_coef else 0)

    @property
    def analog_symbols(self) -> int:
        """Link uses carrying a coefficient part as a level (``analog``), else 0."""
        return 2 * self.n_coef if self.analog else 0


def design_codec(
    bits: int,
    rows: int,
    dim: int,
    *,
    basis: str = "dft",
    window: int = 12,
    mode: str = "polar",
    amp_share: float = 0.4,
    gain_bits: int = 6,
    oversampling: int = 4,
    max_coef_bits: int = 16,
    analog: bool = False,
    coef_scale: float = 1.0,
) -> BeamspaceCodec:
    """The largest-window codec of at most ``window`` beams whose message fits ``bits``.

    The window shrinks from ``min(window, dim)`` until every coefficient gets at least 2
    bits; the coefficient bits are the budget left after the header and gain, divided evenly
    (the remainder, fewer than ``R L - 1`` bits, is not sent). Polar mode gives
    ``round(amp_share * coef_bits)`` (at least 1, at most ``coef_bits - 1``) to the
    amplitude. ``analog=True`` (noisy link, ``bits`` = link uses at 1 bit each): the window
    shrinks until the header bits plus two uses per coefficient fit ``bits``.

    Args:
        bits: Budget in bits per user.
        rows: Rows ``R`` of a user's block.
        dim: Columns ``N``.
        basis: ``"dft"`` or ``"identity"``.
        window: Largest window ``L``.
        mode: ``"polar"`` or ``"cartesian"``.
        amp_share: Share of a polar coefficient's bits spent on the amplitude, in ``(0, 1)``.
        gain_bits: Bits of the gain.
        oversampling: DFT rotations ``O``.
        max_coef_bits: Cap of the bits per coefficient.
        analog: Coefficients as analog link uses (:class:`BeamspaceCodec`).
        coef_scale: Factor on the cartesian coefficient parts (:class:`BeamspaceCodec`).

    Returns:
        The codec, ``total_bits <= bits`` (analog: ``header_bits + analog_symbols <=
        bits``).

    Raises:
        ValueError: The budget cannot hold even a one-beam message (names the minimum).
    """
    check_int(bits, "bits")
    check_int(window, "window")
    check_int(max_coef_bits, "max_coef_bits", minimum=2)
    if not 0.0 < amp_share < 1.0:
        raise ValueError(f"amp_share must be in (0, 1), got {amp_share!r}")
    smallest = None
    if analog:
        for L in range(min(window, dim), 0, -1):
            codec = BeamspaceCodec(
                rows,
                dim,
                L,
                2 * SYMBOL_BITS,
                1,
                "cartesian",
                basis,
                oversampling,
                gain_bits,
                analog=True,
                coef_scale=coef_scale,
            )
            smallest = codec.header_bits + codec.analog_symbols
            if smallest <= bits:
                return codec
        raise ValueError(
            f"bits = {bits} link uses cannot hold a one-beam analog message ({smallest} uses); "
            "raise bits or lower gain_bits"
        )
    for L in range(min(window, dim), 0, -1):
        base = BeamspaceCodec(
            rows, dim, L, 2, 1, mode, basis, oversampling, gain_bits, coef_scale=coef_scale
        )
        header = base.total_bits - 2 * base.n_coef
        if base.n_coef == 0:
            if header <= bits:
                return base
            smallest = header
            continue
        c = min(max_coef_bits, (bits - header) // base.n_coef)
        if c >= 2:
            a = min(c - 1, max(1, round(amp_share * c)))
            return dataclasses.replace(base, coef_bits=c, amp_bits=a)
        smallest = header + 2 * base.n_coef
    raise ValueError(
        f"bits = {bits} cannot hold a one-beam message of this channel ({smallest} bits at "
        f"{rows} row(s), {gain_bits} gain bits); raise bits or lower gain_bits"
    )


def rotated_dft(
    dim: int, oversampling: int, dtype: torch.dtype = torch.complex64, device: Any = None
) -> torch.Tensor:
    r"""The ``O`` rotated orthonormal DFT bases, complex ``[O, N, N]`` (each unitary).

    :math:`[\mathbf U_q]_{nm} = e^{-j2\pi n(m + q/O)/N}/\sqrt N`, ``q = 0 .. O-1``.
    """
    n = torch.arange(dim, dtype=torch.float64)
    q = torch.arange(oversampling, dtype=torch.float64) / oversampling
    m = n[None, None, :] + q[:, None, None]  # [O, 1, N]
    phase = -2.0 * math.pi * n[None, :, None] * m / dim
    U = torch.polar(torch.full_like(phase, dim**-0.5), phase)
    return U.to(dtype=dtype, device=device)


def _to_bits(values: torch.Tensor, nbits: int) -> torch.Tensor:
    """Long ``[..., n]`` in ``[0, 2^nbits)`` -> ``[..., n * nbits]`` bits, MSB first."""
    if nbits == 0:
        return values.new_zeros((*values.shape[:-1], 0))
    shifts = torch.arange(nbits - 1, -1, -1, device=values.device)
    return ((values[..., None] >> shifts) & 1).reshape(*values.shape[:-1], -1)


def _from_bits(bits: torch.Tensor, nbits: int) -> torch.Tensor:
    """Inverse of :func:`_to_bits`: ``[..., n * nbits]`` -> Long ``[..., n]``."""
    weights = 2 ** torch.arange(nbits - 1, -1, -1, device=bits.device)
    return (bits.reshape(*bits.shape[:-1], -1, nbits) * weights).sum(-1)


def _layout(codec: BeamspaceCodec) -> list[tuple[str, int, int]]:
    """``(field, count, bits each)`` in message order."""
    a, p = codec.field_bits
    return [
        ("rotation", 1, codec.rotation_bits),
        ("start", 1, codec.start_bits),
        ("ref", 1, codec.ref_bits),
        ("gain", 1, codec.gain_bits),
        ("part0", codec.n_coef, a if codec.n_coef else 0),
        ("part1", codec.n_coef, p if codec.n_coef else 0),
    ]


class WindowSelection(NamedTuple):
    """A user's choices of steps 1-2 (module docstring): what the header sends, and the rest."""

    rotation: torch.Tensor
    """Long ``[B, K]`` DFT rotation ``q``."""
    start: torch.Tensor
    """Long ``[B, K]`` window start."""
    ref: torch.Tensor
    """Long ``[B, K]`` position of the strongest (reference) coefficient in the window."""
    gain_symbol: torch.Tensor
    """Long ``[B, K]`` gain quantizer index."""
    coefs: torch.Tensor
    r"""Complex ``[B, K, R L - 1]`` other coefficients :math:`e^{-j\varphi}C/g` (modulus
    :math:`\le 1`), in window order with the reference left out."""


def select_window(
    X: torch.Tensor, codec: BeamspaceCodec, snr_db: torch.Tensor | float = 0.0
) -> WindowSelection:
    r"""Steps 1-2 of the module docstring: beamspace rotation, strongest window, common phase.

    Args:
        X: Complex ``[B, K, R, N]`` estimated channel blocks.
        codec: The message layout.
        snr_db: Scalar or ``[B]`` SNR in dB the gain is measured against.

    Returns:
        The :class:`WindowSelection` (header fields and the unquantized coefficients).
    """
    if not torch.is_complex(X) or X.ndim != 4 or tuple(X.shape[2:]) != (codec.rows, codec.dim):
        raise ValueError(
            f"X must be complex [B, K, {codec.rows}, {codec.dim}], got {tuple(X.shape)}"
        )
    b, k, r, n = X.shape
    L = codec.window
    if codec.basis == "dft":
        U = rotated_dft(n, codec.oversampling, X.dtype, X.device)
        Y = torch.einsum("bkrn,qnm->bkqrm", X, U)  # [B, K, O, R, N]
    else:
        Y = X[:, :, None]
    energy = Y.abs().square().sum(-2)  # [B, K, O, N]
    win = sum(energy.roll(-i, -1) for i in range(L))  # window energy at each start
    flat = win.reshape(b, k, -1).argmax(-1)
    q, s = flat // n, flat % n
    if not codec.start_bits:  # the window holds every beam: start 0, not sent
        s = torch.zeros_like(s)
    cols = (s[..., None] + torch.arange(L, device=X.device)) % n  # [B, K, L]
    Yq = Y[torch.arange(b)[:, None], torch.arange(k)[None, :], q]  # [B, K, R, N]
    C = torch.gather(Yq, -1, cols[:, :, None, :].expand(b, k, r, L)).reshape(b, k, r * L)
    ref = C.abs().argmax(-1)  # [B, K]
    c_ref = torch.gather(C, -1, ref[..., None])[..., 0]
    g = c_ref.abs().clamp_min(torch.finfo(X.real.dtype).tiny)
    lo, hi = GAIN_RANGE_DB
    levels = 2**codec.gain_bits
    g_db = 20.0 * torch.log10(g) - _ref_db(snr_db, b, g)
    s_gain = torch.floor((g_db - lo) / (hi - lo) * levels).clamp(0, levels - 1).long()
    norm = C * (torch.conj(c_ref) / (g * g))[..., None]  # e^{-j phi} C / g
    j = torch.arange(codec.n_coef, device=X.device)
    others = torch.gather(norm, -1, j + (j >= ref[..., None]).long())  # [B, K, RL-1]
    return WindowSelection(q, s, ref, s_gain, others)


def encode(
    X: torch.Tensor, codec: BeamspaceCodec, snr_db: torch.Tensor | float = 0.0
) -> torch.Tensor:
    r"""The users' messages: complex ``[B, K, R, N]`` blocks -> Long ``[B, K, total_bits]`` bits.

    Steps 1-3 of the module docstring: beamspace rotation and strongest window, common phase
    removal (:func:`select_window`), gain and scalar quantization.

    Args:
        X: Complex ``[B, K, R, N]`` estimated channel blocks.
        codec: The message layout.
        snr_db: Scalar or ``[B]`` SNR in dB the gain is measured against.
    """
    sel = select_window(X, codec, snr_db)
    s0 = s1 = None
    if codec.n_coef:
        others = sel.coefs
        a, p = codec.field_bits
        if codec.mode == "polar":
            amp = others.abs().clamp(0.0, 1.0)
            s0 = torch.round(amp * (2**a - 1)).long()
            s1 = torch.round(torch.angle(others) / (2 * math.pi) * 2**p).long() % 2**p
        else:
            s0 = quantization_symbols(others.real * codec.coef_scale, a)
            s1 = quantization_symbols(others.imag * codec.coef_scale, p)
    return pack(sel, codec, s0, s1)


def pack(
    sel: WindowSelection,
    codec: BeamspaceCodec,
    part0: torch.Tensor | None,
    part1: torch.Tensor | None,
) -> torch.Tensor:
    """The message bits Long ``[B, K, total_bits]`` of a selection and its coefficient symbols.

    ``part0`` / ``part1``: Long ``[B, K, R L - 1]`` amplitude and phase (polar) or real and
    imaginary part (cartesian) symbols, ``None`` when the codec has no coefficients.
    """
    fields = {"rotation": sel.rotation, "start": sel.start, "ref": sel.ref}
    fields["gain"] = sel.gain_symbol
    msg = [_to_bits(fields[f][..., None], nb) for f, _, nb in _layout(codec)[:4]]
    if codec.n_coef and part0 is not None and part1 is not None:
        a, p = codec.field_bits
        msg += [_to_bits(part0, a), _to_bits(part1, p)]
    return torch.cat(msg, -1)


class Header(NamedTuple):
    """The decoded header of :func:`decode_header` and the raw coefficient fields."""

    rotation: torch.Tensor
    """Long ``[B, K]`` DFT rotation ``q`` (clipped to its range)."""
    start: torch.Tensor
    """Long ``[B, K]`` window start."""
    ref: torch.Tensor
    """Long ``[B, K]`` reference position."""
    gain: torch.Tensor
    """Real ``[B, K]`` gain :math:`g` (cell centre of the gain quantizer)."""
    part0: torch.Tensor
    """Long ``[B, K, R L - 1]`` amplitude (polar) or real-part (cartesian) symbols."""
    part1: torch.Tensor
    """Long ``[B, K, R L - 1]`` phase (polar) or imaginary-part (cartesian) symbols."""


def decode_header(
    bits: torch.Tensor,
    codec: BeamspaceCodec,
    dtype: torch.dtype,
    snr_db: torch.Tensor | float = 0.0,
) -> Header:
    """The fields of Long ``[B, K, total_bits]`` messages (indices clipped to their range)."""
    if bits.shape[-1] != codec.total_bits:
        raise ValueError(f"bits must have {codec.total_bits} per user, got {bits.shape[-1]}")
    b, k = bits.shape[:2]
    r, n, L = codec.rows, codec.dim, codec.window
    rd = torch.empty((), dtype=dtype).real.dtype
    out: dict[str, torch.Tensor] = {}
    pos = 0
    for f, count, nb in _layout(codec):
        width = count * nb
        if nb == 0:
            out[f] = torch.zeros((b, k, max(count, 1)), dtype=torch.long, device=bits.device)
        else:
            out[f] = _from_bits(bits[..., pos : pos + width], nb)
        pos += width
    q = out["rotation"][..., 0].clamp(0, codec.oversampling - 1)
    s = out["start"][..., 0].clamp(0, n - 1)
    ref = out["ref"][..., 0].clamp(0, r * L - 1)
    lo, hi = GAIN_RANGE_DB
    g_db = lo + (out["gain"][..., 0].to(rd) + 0.5) * (hi - lo) / 2**codec.gain_bits
    g = torch.pow(10.0, (g_db + _ref_db(snr_db, b, g_db)) / 20.0)
    return Header(q, s, ref, g, out["part0"], out["part1"])


def assemble(
    head: Header, codec: BeamspaceCodec, dtype: torch.dtype, vals: torch.Tensor | None
) -> torch.Tensor:
    r"""The reconstruction complex ``[B, K, R, N]`` from the header and the coefficients.

    ``vals``: complex ``[B, K, R L - 1]`` non-reference coefficients relative to the gain
    (``None`` when the codec has none); differentiable in ``vals`` and ``head.gain``.
    """
    b, k = head.ref.shape
    r, n, L = codec.rows, codec.dim, codec.window
    dev = head.ref.device
    g = head.gain
    C = torch.zeros((b, k, r * L), dtype=dtype, device=dev)
    C = C.scatter(-1, head.ref[..., None], g[..., None].to(dtype))
    if codec.n_coef and vals is not None:
        j = torch.arange(codec.n_coef, device=dev)
        idx = j + (j >= head.ref[..., None]).long()
        C = C.scatter(-1, idx, vals.to(dtype) * g[..., None].to(dtype))
    cols = (head.start[..., None] + torch.arange(L, device=dev)) % n
    Y = torch.zeros((b, k, r, n), dtype=dtype, device=dev)
    Y = Y.scatter(-1, cols[:, :, None, :].expand(b, k, r, L), C.reshape(b, k, r, L))
    if codec.basis == "identity":
        return Y
    U = rotated_dft(n, codec.oversampling, dtype, dev)[head.rotation]  # [B, K, N, N]
    return torch.einsum("bkrm,bknm->bkrn", Y, U.conj())


def decode(
    bits: torch.Tensor,
    codec: BeamspaceCodec,
    dtype: torch.dtype,
    snr_db: torch.Tensor | float = 0.0,
    parts: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""The BS's reconstruction: Long ``[B, K, total_bits]`` -> complex ``[B, K, R, N]``.

    Any bit pattern decodes (a corrupted index is clipped to its range), so a noisy link
    never makes the BS fail. ``snr_db`` (scalar or ``[B]``) as given to :func:`encode`.
    ``parts`` (cartesian mode): real ``[B, K, 2, R L - 1]`` estimates of the levels of the
    real and imaginary parts (the soft dequantization of the analog link uses) used instead
    of the dequantized coefficient bits, which are then ignored.
    """
    head = decode_header(bits, codec, dtype, snr_db)
    rd = torch.empty((), dtype=dtype).real.dtype
    vals = None
    if codec.n_coef:
        a, p = codec.field_bits
        if codec.mode == "polar":
            amp = head.part0.to(rd) / (2**a - 1)
            phase = head.part1.to(rd) * (2 * math.pi / 2**p)
            vals = torch.polar(amp, phase)
        else:
            if parts is None:
                re, im = dequantize(head.part0, a, rd), dequantize(head.part1, p, rd)
            else:
                re, im = parts[:, :, 0].to(rd), parts[:, :, 1].to(rd)
            vals = torch.complex(re, im)
            if codec.coef_scale != 1.0:
                vals = vals / codec.coef_scale
    return assemble(head, codec, dtype, vals)


def _ref_db(snr_db: torch.Tensor | float, b: int, like: torch.Tensor) -> torch.Tensor:
    """``snr_db`` as a real ``[B, 1]`` tensor broadcastable against ``[B, K]``."""
    ref = torch.as_tensor(snr_db, dtype=like.dtype, device=like.device).reshape(-1)
    if ref.numel() not in (1, b):
        raise ValueError(f"snr_db must be a scalar or [B] = [{b}], got {tuple(ref.shape)}")
    return ref.expand(b)[:, None]


def _gray(v: torch.Tensor) -> torch.Tensor:
    return v ^ (v >> 1)


def _gray_inverse(g: torch.Tensor, nbits: int) -> torch.Tensor:
    v = g.clone()
    for shift in range(1, nbits):
        v = v ^ (g >> shift)
    return v


def link_transmit(
    bits: torch.Tensor,
    link: str,
    symbol_bits: int = 1,
    generator: torch.Generator | None = None,
    *,
    alphabet_bits: int = SYMBOL_BITS,
    sigma_z2: float = SIGMA_Z2,
) -> torch.Tensor:
    r"""The bits ``[..., n]`` the BS receives over the feedback link.

    ``"noiseless"``: ``bits`` unchanged. ``"noisy"`` (paper 000 Sec. III-D1): groups of
    ``symbol_bits`` bits are Gray-coded onto :math:`2^{\rm symbol\_bits}` evenly spaced levels
    of the :math:`2^{\rm alphabet\_bits}`-level alphabet
    (:func:`beamgym.physics.feedback.symbol_levels`; 1 bit: the two extreme levels),
    received with the real Gaussian error of variance ``sigma_z2``
    (:func:`~beamgym.physics.feedback.feedback_error`) and detected at the nearest of those
    levels. ``n`` must be a multiple of ``symbol_bits``.
    """
    check_choice(link, "link", LINKS)
    if link == "noiseless":
        return bits
    check_int(symbol_bits, "symbol_bits")
    if symbol_bits > alphabet_bits:
        raise ValueError(f"symbol_bits must be <= {alphabet_bits}, got {symbol_bits}")
    n = bits.shape[-1]
    if n % symbol_bits:
        raise ValueError(f"the message length {n} is not a multiple of symbol_bits")
    m = 2**symbol_bits
    top = 2**alphabet_bits - 1
    v = _gray(_from_bits(bits, symbol_bits))  # [..., n / symbol_bits] in [0, m)
    sub = torch.round(torch.arange(m, dtype=torch.float64) * top / (m - 1)).long()  # alphabet idx
    x = dequantize(sub.to(bits.device)[v], alphabet_bits, torch.float64)
    y = feedback_error(x, sigma_z2, generator)
    levels = dequantize(sub, alphabet_bits, torch.float64).to(bits.device)
    v_hat = (y[..., None] - levels).abs().argmin(-1)
    return _to_bits(_gray_inverse(v_hat, symbol_bits), symbol_bits)


def phase_invariant_nmse(H: torch.Tensor, H_hat: torch.Tensor) -> torch.Tensor:
    r"""Per-user phase-invariant NMSE, real ``[B, K]`` (``H``, ``H_hat``: ``[B, K, ...]``).

    :math:`\min_\varphi\|\mathbf H_k - e^{j\varphi}\hat{\mathbf H}_k\|_F^2/
    \|\mathbf H_k\|_F^2` (the rate ignores a user's common phase).
    """
    b, k = H.shape[:2]
    Hf, Gf = H.reshape(b, k, -1), H_hat.reshape(b, k, -1)
    inner = (Gf.conj() * Hf).sum(-1).abs()
    e = Hf.abs().square().sum(-1)
    err = (e + Gf.abs().square().sum(-1) - 2 * inner).clamp_min(0.0)
    return err / e.clamp_min(torch.finfo(e.dtype).tiny)


@register_agent(
    "beamspace_feedback",
    env_ids=solver_env_ids(),
    description="engineered equal-budget feedback (issue 11): DFT-beamspace window, common "
    "phase removed, scalar-quantized coefficients over paper 000's link, then MMSE+GA(Q_i)",
    bits=128,
    link="noisy",
    q_infer=10,
)
class BeamspaceFeedbackAgent(DigitalPrecoderAgent):
    r"""Engineered feedback of the estimated channel at a bit budget, then MMSE+GA (module doc).

    Args:
        env: FullyDigitalFDD-v0 (MISO or MIMO), FarFieldHybrid-v0 (``analog="steering"``) or
            NearFieldHybrid-v0 (env or task).
        bits: Budget per user and coherence interval: on ``link="noiseless"`` the message
            bits; on ``link="noisy"`` the alphabet bits of the link uses, i.e. ``bits // 4``
            uses of the 16-level alphabet, the size of KD-EDN's :math:`d\,b` (default 128).
        link: ``"noisy"`` (paper 000's link, default) or ``"noiseless"``.
        q_infer: :math:`Q_i` GA steps of eq. (9) on :math:`\hat{\mathbf H}` (default 10).
        eta: GA step (normalized rule default of ``mmse_ga``).
        eta_rule: ``"normalized"`` or ``"fixed"``.
        reg_scale: Factor on the noise variance in the MMSE start, i.e. the regularization
            :math:`K\sigma^2 s/P` on :math:`\hat{\mathbf H}` (default 1: paper 000's MMSE,
            Sec. III-B2). An error-aware BS raises it when the reconstruction error exceeds
            the noise; ``benchmarks/kd_edn_plus_000.py`` tunes it per SNR on validation.
        seed: Seed of the link-error generator (same seed and calls -> same numbers).
        window, mode, amp_share, gain_bits, symbol_bits, basis, oversampling, analog,
            coef_scale: Codec choices (:func:`design_codec`, :func:`link_transmit`);
            ``None``: the tuned value of :data:`TUNED` for the env and link (or of
            :data:`CODEC_DEFAULTS`).
        prior_var: Variance of the Gaussian prior on the levels in the BS's soft
            dequantization of analog symbols (``None``: uniform); ``None`` given: the tuned
            value.
    """

    def __init__(
        self,
        env: Any,
        bits: int = 128,
        link: str = "noisy",
        q_infer: int = 10,
        eta: float = DEFAULT_ETA,
        eta_rule: str = DEFAULT_ETA_RULE,
        reg_scale: float = 1.0,
        seed: int = 0,
        window: int | None = None,
        mode: str | None = None,
        amp_share: float | None = None,
        gain_bits: int | None = None,
        symbol_bits: int | None = None,
        basis: str | None = None,
        oversampling: int | None = None,
        analog: bool | None = None,
        coef_scale: float | None = None,
        prior_var: float | None = None,
        **unknown: Any,
    ) -> None:
        codec_keys = ("window", "mode", "amp_share", "gain_bits", "symbol_bits", "basis")
        extra = ("oversampling", "analog", "coef_scale", "prior_var")
        base_keys = ("bits", "link", "q_infer", "eta", "eta_rule", "reg_scale", "seed")
        valid = (*base_keys, *codec_keys, *extra)
        check_hyperparameters(self, unknown, valid)
        check_int(bits, "bits")
        check_choice(link, "link", LINKS)
        check_int(q_infer, "q_infer", minimum=0)
        check_positive(eta, "eta")
        check_choice(eta_rule, "eta_rule", ETA_RULES)
        check_positive(reg_scale, "reg_scale")
        check_int(seed, "seed", minimum=0)
        given = dict(
            window=window,
            mode=mode,
            amp_share=amp_share,
            gain_bits=gain_bits,
            symbol_bits=symbol_bits,
            basis=basis,
            oversampling=oversampling,
            analog=analog,
            coef_scale=coef_scale,
            prior_var=prior_var,
        )
        hp: dict[str, Any] = {"bits": bits, "link": link, "q_infer": q_infer}
        hp.update({k: v for k, v in given.items() if v is not None})
        if eta != DEFAULT_ETA or eta_rule != DEFAULT_ETA_RULE:
            hp.update(eta=float(eta), eta_rule=eta_rule)
        if reg_scale != 1.0:
            hp.update(reg_scale=float(reg_scale))
        super().__init__(env, **hp)
        tuned = {**CODEC_DEFAULTS, **TUNED[(self.task.env_id, link)]}
        choice = {k: tuned[k] if v is None else v for k, v in given.items()}
        check_int(choice["symbol_bits"], "symbol_bits")
        if choice["symbol_bits"] > SYMBOL_BITS:
            raise ValueError(f"symbol_bits must be <= {SYMBOL_BITS}, got {choice['symbol_bits']}")
        self.link = link
        self.budget = bits
        symbol_bits = choice.pop("symbol_bits")
        prior_var = choice.pop("prior_var")
        if choice["analog"] and link != "noisy":
            raise ValueError("analog=True needs link='noisy' (analog symbols of the noisy link)")
        if prior_var is not None and not (math.isfinite(prior_var) and prior_var > 0):
            raise ValueError(f"prior_var must be a finite number > 0 or None, got {prior_var!r}")
        #: variance of the Gaussian prior of the soft dequantization (None: uniform levels)
        self.prior_var = prior_var
        if link == "noisy":
            #: link uses (alphabet symbols) per user and bits carried by each
            self.uses, self.symbol_bits = bits // SYMBOL_BITS, symbol_bits
            if self.uses < 1:
                raise ValueError(f"bits must be >= {SYMBOL_BITS} on the noisy link, got {bits}")
        else:
            self.uses, self.symbol_bits = bits, 1
        payload = self.uses * (1 if choice["analog"] else self.symbol_bits)
        self.q_infer = q_infer
        self.eta = float(eta)
        self.eta_rule = eta_rule
        self.reg_scale = float(reg_scale)
        rows, dim = self._block_shape()
        self.codec = design_codec(payload, rows, dim, **choice)
        self._gen = torch.Generator().manual_seed(seed)
        self._snr_db: torch.Tensor | float = 0.0

    def _block_shape(self) -> tuple[int, int]:
        cfg = self.task.config
        env = self.task.env_id
        if env.endswith("FullyDigitalFDD-v0"):
            return cfg.M, cfg.N
        if env.endswith("FarFieldHybrid-v0"):
            return 1, cfg.N_RF
        return cfg.n_subcarriers, cfg.K

    # ---- the feedback chain -------------------------------------------------------------------
    def feedback(self, H: torch.Tensor, snr_db: torch.Tensor | float) -> torch.Tensor:
        r"""The BS's :math:`\hat{\mathbf H}` of estimated channels ``H`` ``[B, F, K, M, N]``.

        Encodes each user's ``[F M, N]`` block (:func:`encode`), sends the bits over the link
        (:func:`link_transmit`, padded with zeros to whole link uses) and decodes
        (:func:`decode`); same shape and dtype as ``H``.
        """
        b, f, k, m, n = H.shape
        X = H.permute(0, 2, 1, 3, 4).reshape(b, k, f * m, n)
        msg = encode(X, self.codec, snr_db)
        parts = None
        if self.codec.analog:
            head = self.codec.header_bits
            sent = msg[..., :head]
            if self.symbol_bits > 1:
                pad = (-head) % self.symbol_bits
                sent = torch.cat([sent, sent.new_zeros((b, k, pad))], -1)
            rx = link_transmit(sent, "noisy", self.symbol_bits, self._gen)[..., :head]
            nb = SYMBOL_BITS
            s = _from_bits(msg[..., head:], nb).reshape(b, k, 2, self.codec.n_coef)
            y = feedback_error(dequantize(s, nb, torch.float64), SIGMA_Z2, self._gen)
            parts = soft_dequantize(y, nb, SIGMA_Z2, self.prior_var)
            msg = torch.cat([rx, msg[..., head:]], -1)
        elif self.link == "noisy":
            pad = self.uses * self.symbol_bits - msg.shape[-1]
            msg = torch.cat([msg, msg.new_zeros((b, k, pad))], -1)
            msg = link_transmit(msg, "noisy", self.symbol_bits, self._gen)
            msg = msg[..., : self.codec.total_bits]
        X_hat = decode(msg, self.codec, H.dtype, snr_db, parts)
        return X_hat.reshape(b, k, f, m, n).permute(0, 2, 1, 3, 4)

    def _design(self, prob: SolverProblem) -> torch.Tensor:
        H_hat = self.feedback(prob.H, self._snr_db)
        nmse = phase_invariant_nmse(
            prob.H.permute(0, 2, 1, 3, 4), H_hat.permute(0, 2, 1, 3, 4)
        ).mean(-1)
        self.last_info = {"feedback_nmse": nmse}
        est = dataclasses.replace(prob, H=H_hat)
        # paper 000's MMSE on H^ with its regularization scaled by reg_scale (1.0: exact)
        start = dataclasses.replace(est, noise_var=est.noise_var * self.reg_scale)
        W0 = initial_beamformer("mmse", start)[0]
        return gradient_ascent(
            est.H,
            W0,
            est.power,
            self.q_infer,
            self.eta,
            est.noise_var,
            eta_rule=self.eta_rule,
            power_weight=est.Q,
        )

    def feedback_bits(self) -> dict[str, float]:
        """Feedback per user and coherence interval (docs/readings.md#000-feedback-accounting).

        ``symbols_x_bits``: link uses times alphabet bits (noisy: ``(bits // 4) * 4``;
        noiseless: the message, one bit per use); ``entropy_coded`` (noiseless): the exact
        fixed-length message (:attr:`BeamspaceCodec.total_bits`, no source code on top);
        ``noisy_link_upper_bound`` (noisy): ``bits // 4`` times the capacity bound of one use
        (:func:`~beamgym.physics.feedback.noisy_link_bits_bound`); ``payload_bits``: the
        codec's message bits (with ``analog`` coefficients: the header bits, 1 per use);
        ``analog_symbols`` (analog coefficients only): the link uses carrying a coefficient
        part as a level, whose information is bounded by ``noisy_link_upper_bound`` too.
        """
        msg = float(self.codec.total_bits)
        if self.link == "noiseless":
            return {"symbols_x_bits": msg, "entropy_coded": msg, "payload_bits": msg}
        out = {
            "symbols_x_bits": float(self.uses * SYMBOL_BITS),
            "noisy_link_upper_bound": noisy_link_bits_bound(self.uses),
            "payload_bits": msg,
        }
        if self.codec.analog:
            out["payload_bits"] = float(self.codec.header_bits)
            out["analog_symbols"] = float(self.codec.analog_symbols)
        return out

    def solve(self, known: TensorDataclass) -> Any:
        """Beamformers from what the BS knows, through the feedback chain (module docstring)."""
        self._snr_db = known.snr_db  # type: ignore[attr-defined]
        return super().solve(known)

    def solve_trace(self, known: TensorDataclass) -> list[Any]:
        """One element: the final beamformer (the link is drawn once per call)."""
        return [self.solve(known)]
