r"""Networks, feedback model, semi-amortized steps and losses of KD-EDN (paper 000 Sec. III).

Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse Large-Scale
MIMO Channels" (paper 000):

* encoder :math:`\mathcal G_\phi` shared by all users (Sec. III-A1): FC layers with LeakyReLU,
  final Tanh, latent :math:`\mathbf z_k \in [-1, 1]^d`;
* feedback (Sec. III-A, eq. (8)): uniform quantization with ``bits`` per latent element
  (straight-through estimator in training), a lossless source code (a Huffman code designed
  on training-distribution symbols, :func:`huffman_code`; its actual bits and the empirical
  entropy are measured), and the feedback error
  :math:`\hat{\mathbf z}_k = Q(\mathbf z_k) + \Delta\mathbf z_k`;
* beamformer decoder :math:`\mathcal F_\theta` (Sec. III-A3): FC + LeakyReLU + dropout 0.2 and
  the normalization layer :math:`\mathbf w = \sqrt P\,\tilde{\mathbf w}/\|\tilde{\mathbf w}\|_2`
  (eq. (24) for hybrid through a power weight :math:`\mathbf Q = (\mathbf W^a)^H\mathbf W^a`);
* channel decoder :math:`\mathcal J_\psi` (Sec. III-A2): FC + batch norm, per user;
* semi-amortized steps eq. (9) (inference, reconstructed channel) / eq. (11) (training, true
  channel): :func:`agents.classical.fully_digital.gradient_ascent`, differentiable, so the
  gradient of eq. (12) is obtained by automatic differentiation through the closed-form
  steps (equivalent to the appendix chain rule eq. (36)-(42); tested by finite differences);
* losses eq. (14)-(16) (KD with the MMSE teacher of Sec. III-B2 on the TRUE channel) and
  eq. (17) (channel decoder).

Vectorization. The real input of user ``k`` is :math:`[\mathrm{vec}(\Re\tilde{\mathbf H}_k),
\mathrm{vec}(\Im\tilde{\mathbf H}_k)] \in \mathbb R^{2MN}` (Sec. III-A1); ``vec`` here is the
row-major flattening of the ``M x N`` block (any fixed bijection is equivalent for a fully
connected layer). The decoder output :math:`\mathbf w \in \mathbb R^{2NKM}` is
:math:`[\mathrm{vec}(\Re\mathbf W), \mathrm{vec}(\Im\mathbf W)]` of the ``N x KM`` beamformer.

Readings that differ from the literal text (each in :class:`EDNConfig` / :func:`user_errors`,
docs/readings.md#000-kd-edn-input-norm and the following sections, tested, measured in
BENCHMARKS.md): the encoder sees :math:`\tilde{\mathbf H}_k/\sqrt{\rm
SNR}` (``input_norm``); the antenna axis of the networks' inputs/outputs is the unitary DFT
beamspace (``basis``, a fixed re-parametrization of the first/last linear layer); the beamformer
decoder's linear layers are tied to the user-permutation-equivariant form (``decoder``); the
channel-decoder error of eq. (17) is taken up to each user's common phase (``ch_loss``). With
the literal choices the networks did not learn at the paper's size on a CPU budget.

Feedback link. The quantizer, its symbol alphabet and the feedback error are the shared link
model of :mod:`beamgym.physics.feedback` (re-exported here), used by every feedback agent.
The paper writes :math:`[\Delta\mathbf z]_{ij} \sim \mathcal{CN}(0,
\sigma_z^2)` (Sec. III-D1) although the latent is REAL (:math:`\mathbf z_k \in \mathbb R^d`,
Sec. III-A). We use the physically consistent reading (docs/readings.md#000-feedback-error): a real
Gaussian :math:`\Delta z \sim \mathcal N(0, \sigma_z^2)` with the paper's total variance
:math:`\sigma_z^2` (the real part of a :math:`\mathcal{CN}(0, \sigma_z^2)` draw would only have
:math:`\sigma_z^2/2`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from agents.rules.gradient import band_sum_rate, gradient_ascent
from beamgym.physics.feedback import feedback_error, quantization_symbols, quantize
from beamgym.physics.precoding import mmse_beamformer
from beamgym.physics.projections import normalize_power

__all__ = [
    "EDNConfig",
    "Encoder",
    "BeamformerDecoder",
    "ChannelDecoder",
    "KDEDN",
    "channel_to_real",
    "real_to_channel",
    "quantize",
    "quantization_symbols",
    "feedback_bits",
    "huffman_code",
    "huffman_decode",
    "huffman_encode",
    "feedback_error",
    "semi_amortized_steps",
    "kd_loss",
    "channel_decoder_loss",
    "user_errors",
    "CHANNEL_LOSSES",
    "alpha_schedule",
]


#: Beamformer-decoder layer structures (see EDNConfig).
DECODERS: tuple[str, ...] = ("equivariant", "dense")
#: Antenna-axis bases of the networks' inputs/outputs (see EDNConfig).
BASES: tuple[str, ...] = ("dft", "identity")
#: Input scalings of the encoder / output scalings of the channel decoder (see EDNConfig).
INPUT_NORMS: tuple[str, ...] = ("snr", "none")


def _check_pos_int(v: Any, name: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return v


@dataclasses.dataclass(frozen=True)
class EDNConfig:
    r"""Sizes of the three sub-networks of KD-EDN (paper 000 Sec. III-A, Fig. 2).

    Attributes:
        N: Transmit antennas (fully digital) or RF chains (hybrid, eq. (19)-(24)).
        K: Users.
        M: Receive antennas per user.
        d: Latent dimension per user (:math:`d \ll 2MN`).
        bits: Quantization bits per latent element (``0``: no quantization).
        sigma_z2: Feedback error variance :math:`\sigma_z^2` (Sec. III-D1: 0.1).
        enc_hidden: Hidden widths of the encoder.
        dec_hidden: Hidden widths of the beamformer decoder.
        ch_hidden: Hidden widths of the channel decoder.
        dropout: Dropout rate of the beamformer decoder (paper: 0.2).
        negative_slope: LeakyReLU slope.
        input_norm: ``"snr"`` (default): the encoder sees :math:`\sigma\tilde{\mathbf H}_k`,
            the estimated channel before the noise normalization of Sec. II-A (unit-scale
            entries at every SNR; user ``k`` knows its own :math:`\sigma_k`), and the channel
            decoder outputs that scale, multiplied by :math:`1/\sigma` at the BS (which knows
            the users' noise variances, Sec. III-D1). ``"none"``: the paper's literal input,
            :math:`\tilde{\mathbf H}_k` itself, whose entries grow as :math:`\sqrt{\rm SNR}`
            (up to 10 at 20 dB), which saturates the Tanh latent; with it the networks did not
            learn at the paper's size (BENCHMARKS.md).
        basis: Antenna-axis basis of the networks' channel inputs/outputs and of the
            beamformer decoder's output: ``"dft"`` (default for fully digital arrays) or
            ``"identity"`` (the paper's literal antenna domain). With ``"dft"`` the encoder
            sees the beamspace channel :math:`\tilde{\mathbf H}_k\mathbf U` (``U`` the
            unitary DFT matrix), the channel decoder outputs :math:`\hat{\mathbf H}_k\mathbf U`
            and the beamformer decoder :math:`\mathbf U^H\tilde{\mathbf W}`. ``U`` is unitary
            and fixed, so it only re-parametrizes the first/last linear layers: the function
            class is exactly the paper's FC networks, and powers and rates are unchanged. It
            makes the sparse channels of Sec. II-B sparse at the layer boundary (a user's
            paths are a few adjacent DFT beams), which is far easier to learn than the
            antenna-domain oscillations :math:`e^{j\pi n\sin\theta}` (BENCHMARKS.md). Hybrid
            effective channels are already beamspace (steering / TTD+PS beams): use
            ``"identity"`` there.
        decoder: Beamformer-decoder layers: ``"equivariant"`` (default) or ``"dense"``. Both
            are "several linear layers with LeakyReLU" from :math:`\hat{\mathbf z} =
            [\hat{\mathbf z}_1, \dots, \hat{\mathbf z}_K]` to :math:`\mathbf w \in
            \mathbb R^{2NKM}` (Sec. III-A3). ``"dense"`` leaves every weight free (the
            literal reading). ``"equivariant"`` ties the weights of each linear layer to the
            user-permutation-equivariant form :math:`\mathbf y_k = \mathbf A\mathbf x_k +
            \mathbf B\,\frac1K\sum_j\mathbf x_j + \mathbf c` (Zaheer et al., Deep Sets,
            2017): still one linear map of the concatenated latents, so the same
            architecture, but user ``k``'s latent drives beamformer column(s) ``k`` with
            shared weights, as the encoder and channel decoder already share theirs across
            users. At the paper's size (K = 16, N = 64) the dense network did not learn even when
            fed the uncompressed channel, the equivariant one did (BENCHMARKS.md, section
            "Paper 000: KD-EDN").
    """

    N: int
    K: int
    M: int = 1
    d: int = 16
    bits: int = 4
    sigma_z2: float = 0.1
    enc_hidden: tuple[int, ...] = (256,)
    dec_hidden: tuple[int, ...] = (256, 256)
    ch_hidden: tuple[int, ...] = (256,)
    dropout: float = 0.2
    negative_slope: float = 0.01
    input_norm: str = "snr"
    basis: str = "dft"
    decoder: str = "equivariant"

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.basis not in BASES:
            raise ValueError(f"basis must be one of {BASES}, got {self.basis!r}")
        if self.input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {INPUT_NORMS}, got {self.input_norm!r}")
        for name in ("N", "K", "M", "d"):
            _check_pos_int(getattr(self, name), name)
        _check_pos_int(self.bits, "bits", minimum=0)
        if self.bits > 16:
            raise ValueError(f"bits must be <= 16, got {self.bits}")
        if not (math.isfinite(self.sigma_z2) and self.sigma_z2 >= 0):
            raise ValueError(f"sigma_z2 must be a finite number >= 0, got {self.sigma_z2!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("enc_hidden", "dec_hidden", "ch_hidden"):
            widths = tuple(getattr(self, name))
            for w in widths:
                _check_pos_int(w, name)
            object.__setattr__(self, name, widths)

    @property
    def channel_dim(self) -> int:
        """Real length :math:`2MN` of one user's channel vector."""
        return 2 * self.M * self.N

    @property
    def beamformer_dim(self) -> int:
        """Real length :math:`2NKM` of the decoder output."""
        return 2 * self.N * self.K * self.M


def _mlp(
    sizes: list[int],
    slope: float,
    *,
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> list[nn.Module]:
    """Linear layers with LeakyReLU (and dropout / batch norm) between adjacent ones."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(sizes[i + 1]))
            layers.append(nn.LeakyReLU(slope))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return layers


def channel_to_real(H: torch.Tensor) -> torch.Tensor:
    r"""Per-user real vectors :math:`[\mathrm{vec}\,\Re\mathbf H_k, \mathrm{vec}\,\Im\mathbf H_k]`.

    Args:
        H: Complex ``[B, K, N]`` (MISO) or ``[B, K, M, N]`` channel.

    Returns:
        Real ``[B, K, 2MN]``.
    """
    if not torch.is_complex(H) or H.ndim not in (3, 4):
        raise ValueError(f"H must be complex [B, K, N] or [B, K, M, N], got {tuple(H.shape)}")
    Hf = H.reshape(H.shape[0], H.shape[1], -1)
    return torch.cat([Hf.real, Hf.imag], -1)


def real_to_channel(h: torch.Tensor, M: int, N: int) -> torch.Tensor:
    """Inverse of :func:`channel_to_real`: ``[B, K, 2MN]`` -> ``[B, K, N]`` or ``[B, K, M, N]``."""
    mn = M * N
    if h.shape[-1] != 2 * mn:
        raise ValueError(f"last dimension must be 2MN = {2 * mn}, got {h.shape[-1]}")
    Hc = torch.complex(h[..., :mn], h[..., mn:])
    return Hc if M == 1 else Hc.reshape(*h.shape[:-1], M, N)


class Encoder(nn.Module):
    r"""Shared encoder :math:`\mathcal G_\phi` (paper 000 Sec. III-A1).

    FC layers with LeakyReLU in between and a final Tanh, so :math:`\mathbf z_k \in [-1,1]^d`.
    Applied to every user independently (shared weights).
    """

    def __init__(self, cfg: EDNConfig) -> None:
        super().__init__()
        sizes = [cfg.channel_dim, *cfg.enc_hidden, cfg.d]
        self.net = nn.Sequential(*_mlp(sizes, cfg.negative_slope), nn.Tanh())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``[..., 2MN]`` real -> ``[..., d]`` latent in ``[-1, 1]``."""
        return self.net(h)


class EquivariantLinear(nn.Module):
    r"""User-permutation-equivariant linear layer (see :class:`EDNConfig`, ``decoder``).

    :math:`\mathbf y_k = \mathbf A\mathbf x_k + \mathbf B\frac1K\sum_j\mathbf x_j +
    \mathbf c` on ``[B, K, F_in]`` -> ``[B, K, F_out]``: a linear map of the concatenated
    per-user inputs with tied weights.
    """

    def __init__(self, f_in: int, f_out: int) -> None:
        super().__init__()
        self.own = nn.Linear(f_in, f_out)
        self.pooled = nn.Linear(f_in, f_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, K, F_in]`` -> ``[B, K, F_out]``."""
        return self.own(x) + self.pooled(x.mean(1, keepdim=True))


class BeamformerDecoder(nn.Module):
    r"""Beamformer decoder :math:`\mathcal F_\theta` (paper 000 Sec. III-A3, eq. (24)).

    Input the stacked recovered latents :math:`\hat{\mathbf z} = [\hat{\mathbf z}_1, \dots,
    \hat{\mathbf z}_K] \in \mathbb R^{Kd}`; FC + LeakyReLU + dropout; output reshaped into
    :math:`\tilde{\mathbf W} \in \mathbb C^{N \times KM}` and normalized,
    :math:`\mathbf W_0 = \sqrt P\,\tilde{\mathbf W}/\sqrt{\mathrm{tr}(\tilde{\mathbf W}^H
    \mathbf Q\tilde{\mathbf W})}` (:math:`\mathbf Q = \mathbf I`: Sec. III-A3; hybrid
    :math:`\mathbf Q = (\mathbf W^a)^H\mathbf W^a`: eq. (24)).
    """

    def __init__(self, cfg: EDNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.decoder == "dense":
            sizes = [cfg.K * cfg.d, *cfg.dec_hidden, cfg.beamformer_dim]
            self.net = nn.Sequential(*_mlp(sizes, cfg.negative_slope, dropout=cfg.dropout))
        else:
            sizes = [cfg.d, *cfg.dec_hidden, 2 * cfg.N * cfg.M]
            layers: list[nn.Module] = []
            for i in range(len(sizes) - 1):
                layers.append(EquivariantLinear(sizes[i], sizes[i + 1]))
                if i < len(sizes) - 2:
                    layers.append(nn.LeakyReLU(cfg.negative_slope))
                    if cfg.dropout > 0:
                        layers.append(nn.Dropout(cfg.dropout))
            self.net = nn.Sequential(*layers)

    def forward(
        self,
        z_hat: torch.Tensor,
        power: torch.Tensor | float,
        power_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""``[B, K, d]`` latents -> complex ``[B, N, KM]`` full-power :math:`\mathbf W_0`."""
        c = self.cfg
        b = z_hat.shape[0]
        if c.decoder == "dense":
            w = self.net(z_hat.reshape(b, -1))
            nkm = c.N * c.K * c.M
            W = torch.complex(w[:, :nkm], w[:, nkm:]).reshape(-1, c.N, c.K * c.M)
        else:  # user k's output [2NM] -> columns k*M .. k*M + M - 1
            w = self.net(z_hat)  # [B, K, 2NM]
            nm = c.N * c.M
            Wk = torch.complex(w[..., :nm], w[..., nm:]).reshape(b, c.K, c.N, c.M)
            W = Wk.permute(0, 2, 1, 3).reshape(b, c.N, c.K * c.M)
        if c.basis == "dft":  # beamspace output: W = U W_b (EDNConfig.basis)
            W = torch.fft.fft(W, dim=-2, norm="ortho")
        return normalize_power(W, power, power_weight)


class ChannelDecoder(nn.Module):
    r"""Channel decoder :math:`\mathcal J_\psi` (paper 000 Sec. III-A2), shared by the users.

    FC layers with batch normalization and LeakyReLU in between;
    :math:`\hat{\mathbf z}_k \mapsto \hat{\mathbf h}_k \in \mathbb R^{2MN}`.
    """

    def __init__(self, cfg: EDNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        sizes = [cfg.d, *cfg.ch_hidden, cfg.channel_dim]
        self.net = nn.Sequential(*_mlp(sizes, cfg.negative_slope, batch_norm=True))

    def forward(self, z_hat: torch.Tensor) -> torch.Tensor:
        """``[B, K, d]`` -> complex ``[B, K, N]`` / ``[B, K, M, N]`` reconstructed channel."""
        b, k, d = z_hat.shape
        h = self.net(z_hat.reshape(b * k, d)).reshape(b, k, -1)
        H = real_to_channel(h, self.cfg.M, self.cfg.N)
        if self.cfg.basis == "dft":  # beamspace output: H = H_b U^H (EDNConfig.basis)
            H = torch.fft.ifft(H, dim=-1, norm="ortho")
        return H


# ---- feedback ------------------------------------------------------------------------------------
def huffman_code(counts: torch.Tensor) -> dict[int, str]:
    r"""A Huffman prefix code for the quantizer symbols (the lossless source code, Sec. III-A).

    Built from symbol ``counts`` of TRAINING-distribution latents (add-one smoothed, so every
    symbol has a codeword); ties are broken by symbol index, so the code is deterministic.
    The expected length :math:`\bar\ell` satisfies :math:`\hat H \le \bar\ell < \hat H + 1`
    bits per symbol.

    Args:
        counts: ``[2^b]`` symbol counts.

    Returns:
        ``{symbol: codeword}`` with codewords as strings of ``"0"``/``"1"``.
    """
    import heapq

    c = counts.detach().to(torch.float64).cpu() + 1.0
    if c.ndim != 1 or c.numel() < 2:
        raise ValueError(f"counts must be a 1-D tensor of >= 2 symbols, got {tuple(counts.shape)}")
    heap: list[tuple[float, int, list[int]]] = [(float(w), i, [i]) for i, w in enumerate(c)]
    heapq.heapify(heap)
    code = {i: "" for i in range(c.numel())}
    while len(heap) > 1:
        w0, t0, s0 = heapq.heappop(heap)
        w1, t1, s1 = heapq.heappop(heap)
        for i in s0:
            code[i] = "0" + code[i]
        for i in s1:
            code[i] = "1" + code[i]
        heapq.heappush(heap, (w0 + w1, min(t0, t1), s0 + s1))
    return code


def huffman_encode(symbols: list[int], code: dict[int, str]) -> str:
    """The bit string of one user's feedback (its ``d`` symbols) under ``code``."""
    return "".join(code[int(s)] for s in symbols)


def huffman_decode(bitstring: str, code: dict[int, str]) -> list[int]:
    """Inverse of :func:`huffman_encode` (prefix code: decoding is unique).

    Raises:
        ValueError: The bit string does not end on a codeword boundary.
    """
    inverse = {v: k for k, v in code.items()}
    out: list[int] = []
    word = ""
    for bit in bitstring:
        word += bit
        if word in inverse:
            out.append(inverse[word])
            word = ""
    if word:
        raise ValueError(f"bit string ends inside a codeword ({word!r})")
    return out


def feedback_bits(
    symbols: torch.Tensor, bits: int, code: dict[int, str] | None = None
) -> dict[str, float]:
    r"""Measured feedback cost per user of the lossless source code (paper 000 Sec. III-A).

    The empirical entropy :math:`\hat H = -\sum_s \hat p_s \log_2 \hat p_s` of the quantized
    symbols pooled over the batch, users and latent elements: an ideal entropy coder needs
    :math:`d\hat H` bits per user (a lower bound for any real coder), against :math:`d\,b`
    bits of fixed-length coding.

    Args:
        symbols: Long ``[B, K, d]`` quantizer indices.
        bits: Bits per element of the quantizer.

        code: A prefix code (:func:`huffman_code`, designed on training data): adds the
            bits that code actually spends, ``coded_bits_per_user`` (mean over the users of the
            batch, each user's ``d`` codewords concatenated).

    Returns:
        ``{"entropy_bits_per_symbol", "bits_per_user", "fixed_bits_per_user"}`` (and
        ``"coded_bits_per_user"`` with ``code``).
    """
    d = symbols.shape[-1]
    counts = torch.bincount(symbols.flatten(), minlength=2**bits).to(torch.float64)
    p = counts[counts > 0] / counts.sum()
    h = float(-(p * torch.log2(p)).sum())
    out = {
        "entropy_bits_per_symbol": h,
        "bits_per_user": d * h,
        "fixed_bits_per_user": float(d * bits),
    }
    if code is not None:
        lengths = torch.tensor([len(code[i]) for i in range(2**bits)], dtype=torch.float64)
        per_user = lengths[symbols.cpu()].sum(-1)
        out["coded_bits_per_user"] = float(per_user.mean())
    return out


# ---- semi-amortized steps ------------------------------------------------------------------------
def semi_amortized_steps(
    H: torch.Tensor,
    W0: torch.Tensor,
    power: torch.Tensor | float,
    steps: int,
    eta: float,
    *,
    eta_rule: str = "normalized",
    power_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""``steps`` gradient-ascent steps, eq. (11) (true channel, training) / eq. (9) (inference).

    .. math:: \mathbf W_q = \Pi\big(\mathbf W_{q-1} + \eta\,\nabla_{\mathbf W}
              R_{\rm sum}(\mathbf H, \mathbf W_{q-1})\big), \quad q \in [Q]

    Exactly :func:`agents.classical.fully_digital.gradient_ascent` (closed-form gradient,
    projection onto the power sphere, ``eta_rule`` as there); every operation is a torch
    operation, so autograd differentiates through the ``Q`` steps, which is the chain rule of
    eq. (12) / appendix eq. (36)-(42). ``steps = 0`` returns the (normalized) ``W0``.
    """
    return gradient_ascent(H, W0, power, steps, eta, eta_rule=eta_rule, power_weight=power_weight)  # type: ignore[return-value]


# ---- losses --------------------------------------------------------------------------------------
def alpha_schedule(epoch: int, every: int, step: float = 0.01) -> float:
    r"""KD weight :math:`\alpha` of eq. (14) (Algorithm 1 line 4).

    From 0, raised by ``step`` (paper: 0.01) every ``every`` epochs, capped at 1.
    """
    _check_pos_int(every, "every")
    return min(1.0, step * (epoch // every))


def kd_loss(
    H: torch.Tensor,
    W: torch.Tensor,
    alpha: float,
    power: torch.Tensor | float,
    teacher: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    r"""KD loss eq. (14): :math:`L_\alpha = \alpha L^u + (1-\alpha)L^s`.

    :math:`L^u = -\mathbb E\,R_{\rm sum}(\mathbf H, \mathbf W_{Q_t})` (eq. (15)) and
    :math:`L^s = \mathbb E\|\tilde{\mathbf W} - \mathbf W_{Q_t}\|_F^2` (eq. (16)) with the
    teacher :math:`\tilde{\mathbf W}` the MMSE beamformer of Sec. III-B2 on the TRUE channel
    :math:`\mathbf H` (:func:`beamgym.physics.metrics.mmse_beamformer`, unit noise). Means over
    the batch.

    Args:
        H: TRUE channel, complex ``[B, K, N]`` / ``[B, K, M, N]``.
        W: Beamformer :math:`\mathbf W_{Q_t}`, complex ``[B, N, KM]``.
        alpha: Weight in ``[0, 1]``.
        power: Budget :math:`P`.
        teacher: Precomputed teacher (else computed here when ``alpha < 1``).

    Returns:
        ``(loss, {"sum_rate", "supervised"})`` (the scalars detached).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    rate = band_sum_rate(H, W).mean()
    loss = -alpha * rate
    sup = torch.zeros((), dtype=rate.dtype, device=rate.device)
    if alpha < 1.0:
        if teacher is None:
            teacher = mmse_beamformer(H, power)
        sup = (teacher.detach() - W).abs().square().sum((1, 2)).mean()
        loss = loss + (1.0 - alpha) * sup
    return loss, {"sum_rate": float(rate.detach()), "supervised": float(sup.detach())}


#: Channel-decoder losses: eq. (17) as printed, or with each user's common phase aligned.
CHANNEL_LOSSES: tuple[str, ...] = ("phase-invariant", "mse")


def user_errors(
    H: torch.Tensor, H_hat: torch.Tensor, mode: str = "phase-invariant"
) -> torch.Tensor:
    r"""Per-user squared reconstruction errors ``[B, K]`` (eq. (17) terms).

    ``"mse"``: :math:`\|\mathbf H_k - \hat{\mathbf H}_k\|_F^2` (eq. (17) as printed).
    ``"phase-invariant"``: :math:`\min_\varphi\|\mathbf H_k - e^{j\varphi}
    \hat{\mathbf H}_k\|_F^2 = \|\mathbf H_k\|_F^2 + \|\hat{\mathbf H}_k\|_F^2 -
    2|\langle\hat{\mathbf H}_k, \mathbf H_k\rangle|`. The sum-rate eq. (2)/(4) does not
    change when a user's channel is multiplied by a common phase :math:`e^{j\varphi}`, so a
    latent trained for the rate (eq. (13)) need not carry that phase; the MSE-optimal decoder
    of eq. (17) then averages the unknown phase out and shrinks :math:`\hat{\mathbf H}_k`
    towards 0 (and the Q_i steps on it lower the rate; BENCHMARKS.md, section "Paper 000:
    KD-EDN"). The
    phase-aligned error asks the decoder for exactly what the BS can use.
    """
    if mode not in CHANNEL_LOSSES:
        raise ValueError(f"mode must be one of {CHANNEL_LOSSES}, got {mode!r}")
    b, k = H.shape[:2]
    Hf, Gf = H.reshape(b, k, -1), H_hat.reshape(b, k, -1)
    if mode == "mse":
        return (Hf - Gf).abs().square().sum(-1)
    inner = (Gf.conj() * Hf).sum(-1)
    err = Hf.abs().square().sum(-1) + Gf.abs().square().sum(-1) - 2 * inner.abs()
    return err.clamp_min(0.0)


def channel_decoder_loss(
    H: torch.Tensor, H_hat: torch.Tensor, mode: str = "phase-invariant"
) -> torch.Tensor:
    r"""Channel-decoder loss eq. (17): :math:`\sum_k \mathbb E\,e_k` (batch mean).

    :math:`e_k` from :func:`user_errors` (``mode="mse"``: eq. (17) as printed,
    :math:`\|\mathbf H_k - \hat{\mathbf H}_k\|_F^2`; default ``"phase-invariant"``).
    """
    return user_errors(H, H_hat, mode).sum(-1).mean()


# ---- the whole network ---------------------------------------------------------------------------
class KDEDN(nn.Module):
    r"""KD-EDN: encoder, feedback, beamformer decoder and channel decoder (paper 000 Fig. 2).

    Args:
        cfg: Network sizes and feedback model.
    """

    def __init__(self, cfg: EDNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.bf_decoder = BeamformerDecoder(cfg)
        self.ch_decoder = ChannelDecoder(cfg)

    @property
    def rdtype(self) -> torch.dtype:
        """Real dtype of the parameters."""
        return next(self.parameters()).dtype

    def _check_channel(self, H: torch.Tensor) -> None:
        c = self.cfg
        want = (c.K, c.N) if c.M == 1 else (c.K, c.M, c.N)
        if not torch.is_complex(H) or tuple(H.shape[1:]) != want:
            raise ValueError(f"H must be complex [B, {', '.join(map(str, want))}], got {H.shape}")

    def input_scale(self, snr_db: torch.Tensor | float | None, like: torch.Tensor) -> torch.Tensor:
        r"""Per-instance factor :math:`1/\sqrt{\rm SNR}` of ``input_norm="snr"`` (else 1).

        Broadcastable against ``like`` (``[B, K, ...]``), real dtype of ``like``.
        """
        rd = like.real.dtype
        if self.cfg.input_norm == "none":
            return torch.ones((), dtype=rd, device=like.device)
        if snr_db is None:
            raise ValueError('input_norm="snr" needs the per-instance snr_db')
        snr = torch.as_tensor(snr_db, dtype=rd, device=like.device).reshape(-1)
        if snr.numel() == 1:
            snr = snr.expand(like.shape[0])
        if snr.shape[0] != like.shape[0] or not torch.isfinite(snr).all():
            raise ValueError(f"snr_db must be finite with {like.shape[0]} entries, got {snr.shape}")
        return torch.pow(10.0, -snr / 20.0).reshape(-1, *([1] * (like.ndim - 1)))

    def encode(
        self, H_est: torch.Tensor, snr_db: torch.Tensor | float | None = None
    ) -> torch.Tensor:
        r"""Latents :math:`\mathbf z_k = \mathcal G_\phi(\tilde{\mathbf H}_k)`, ``[B, K, d]``.

        With ``input_norm="snr"`` the input is :math:`\tilde{\mathbf H}_k/\sqrt{\rm SNR}`
        (:class:`EDNConfig`).
        """
        self._check_channel(H_est)
        x = H_est * self.input_scale(snr_db, H_est)
        if self.cfg.basis == "dft":  # beamspace input H U (EDNConfig.basis)
            x = torch.fft.fft(x, dim=-1, norm="ortho")
        return self.encoder(channel_to_real(x).to(self.rdtype))

    def feedback(
        self, z: torch.Tensor, generator: torch.Generator | None = None, *, noise: bool = True
    ) -> torch.Tensor:
        r"""Fed-back latent :math:`\hat{\mathbf z} = Q(\mathbf z) + \Delta\mathbf z`."""
        zq = quantize(z, self.cfg.bits)
        return feedback_error(zq, self.cfg.sigma_z2, generator) if noise else zq

    def initial_beamformer(
        self,
        z_hat: torch.Tensor,
        power: torch.Tensor | float,
        power_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r""":math:`\mathbf W_0 = \mathcal F_\theta(\hat{\mathbf z})` (normalized, eq. (24))."""
        return self.bf_decoder(z_hat, power, power_weight)

    def reconstruct_channel(
        self, z_hat: torch.Tensor, snr_db: torch.Tensor | float | None = None
    ) -> torch.Tensor:
        r""":math:`\hat{\mathbf H}_k = \mathcal J_\psi(\hat{\mathbf z}_k)` (Algorithm 1 line 21).

        With ``input_norm="snr"`` the network output is multiplied by :math:`\sqrt{\rm SNR}`.
        """
        H = self.ch_decoder(z_hat)
        if self.cfg.input_norm == "none":
            return H
        return H / self.input_scale(snr_db, H)

    @torch.no_grad()
    def infer(
        self,
        H_est: torch.Tensor,
        power: torch.Tensor | float,
        steps: int,
        eta: float,
        *,
        snr_db: torch.Tensor | float | None = None,
        eta_rule: str = "normalized",
        power_weight: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        noise: bool = True,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        r"""Inference stage of Algorithm 1 (lines 16-23), eval mode.

        :math:`\mathbf z_k = \mathcal G_\phi(\tilde{\mathbf H}_k)`, quantized and fed back
        (:math:`\hat{\mathbf z}_k`), :math:`\mathbf W_0 = \mathcal F_\theta(\hat{\mathbf z})`,
        :math:`\hat{\mathbf H}_k = \mathcal J_\psi(\hat{\mathbf z}_k)` and ``steps`` = :math:`Q_i`
        steps of eq. (9) on :math:`\hat{\mathbf H}`.

        Returns:
            ``(W, info)`` with ``W`` complex ``[B, N, KM]`` in the dtype of ``H_est`` and
            ``info`` holding ``H_hat`` and the measured ``feedback`` cost.
        """
        was = self.training
        self.eval()
        try:
            z = self.encode(H_est, snr_db)
            z_hat = self.feedback(z, generator, noise=noise)
            W0 = self.initial_beamformer(z_hat, power, power_weight).to(H_est.dtype)
            H_hat = self.reconstruct_channel(z_hat, snr_db).to(H_est.dtype)
            W = semi_amortized_steps(
                H_hat, W0, power, steps, eta, eta_rule=eta_rule, power_weight=power_weight
            )
            info: dict[str, Any] = {"H_hat": H_hat}
            if self.cfg.bits > 0:
                info["feedback"] = feedback_bits(
                    quantization_symbols(z, self.cfg.bits), self.cfg.bits
                )
            return W, info
        finally:
            self.train(was)
