"""CSI degradation models: what the transmitter/receiver actually knows.

References:
    [000] Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse
          Large-Scale MIMO Channels".
    [002] Schynol, Pesavento, "Hybrid Downlink Beamforming with Outage Constraints under
          Imperfect CSI using Model-Driven Deep Learning".
    [003] Nguyen et al., "Fast Deep Unfolded Hybrid Beamforming in Multiuser Large MIMO Systems".
    [004] Levy, Shlezinger, "Rapid and Power-Aware Learned Optimization for Modular Receive
          Beamforming".
"""

from __future__ import annotations

import math

import torch

from beamgym._validation import check_int, check_nonnegative, check_positive, check_tensor

__all__: list[str] = []


# ---- paper 000: additive Gaussian estimation error -----------------------------------------------

#: CSI error models of :func:`additive_csi_error`.
CSI_ERROR_MODES: tuple[str, ...] = ("absolute", "nmse", "perfect")


def additive_csi_error(
    H: torch.Tensor,
    generator: torch.Generator,
    *,
    mode: str = "absolute",
    sigma2: float = 0.1,
    nmse_db: float = -10.0,
) -> torch.Tensor:
    r"""Estimated channel with additive Gaussian error, paper 000 Sec. II-C / III-D1.

    Returns the **estimate** :math:`\tilde{\mathbf H} = \mathbf H + \Delta\mathbf H`
    (not the error). Three error models:

    * ``"absolute"`` (paper 000 Sec. III-D1, the default): :math:`[\Delta\mathbf H]_{ij}
      \overset{\text{i.i.d.}}{\sim} \mathcal{CN}(0, \sigma_h^2)` with :math:`\sigma_h^2 =`
      ``sigma2`` (paper: 0.1), added to the **normalized** channel :math:`\mathbf H =
      \bar{\mathbf H}/\sigma`. Its entries have variance :math:`\approx \mathrm{SNR}/P`, so
      the error is tiny: NMSE :math:`\approx \sigma_h^2 P/\mathrm{SNR}` (-15 dB at 5 dB SNR,
      -30 dB at 20 dB; docs/readings.md#000-csi-error-scale).
    * ``"nmse"``: an error specified relative to the channel, modelling pilot-based
      estimation whose quality does not improve with the data SNR (same section):

      .. math:: [\Delta\mathbf H_k]_{ij} \sim \mathcal{CN}\Big(0,\ 10^{\mathrm{NMSE}/10}
                \frac{\|\mathbf H_k\|_F^2}{MN}\Big)

      per user ``k`` (``H[:, k]``) and instance, so that
      :math:`\|\Delta\mathbf H_k\|_F^2 / \|\mathbf H_k\|_F^2 \approx 10^{\mathrm{NMSE}/10}`.
      The scale uses the realized channel norm (not its mean), which makes the NMSE exact in
      expectation for every realization.
    * ``"perfect"``: :math:`\tilde{\mathbf H} = \mathbf H` (a copy; no randomness drawn).

    Randomness: one float64 ``torch.randn`` draw of shape ``[*H.shape, 2]`` on the CPU
    (then cast and moved to ``H``'s device), so the error is identical on every device and,
    up to rounding, in both precisions. The error does not depend on ``H``'s values in
    ``"absolute"`` mode and is not differentiated through in ``"nmse"`` mode (its scale uses
    ``H.detach()``).

    Args:
        H: Complex ``[B, K, N]`` or ``[B, K, M, N]`` normalized channel (any device), or
            an effective channel ``[B, K, N_RF]`` (Sec. IV: :math:`\Delta\mathbf G`).
        generator: CPU ``torch.Generator``, the only source of randomness.
        mode: ``"absolute"``, ``"nmse"`` or ``"perfect"``.
        sigma2: Error variance :math:`\sigma_h^2 \ge 0` per complex entry (``"absolute"``).
        nmse_db: Relative error :math:`10\log_{10}(\mathbb E\|\Delta\mathbf H_k\|^2 /
            \|\mathbf H_k\|^2)` in dB (``"nmse"``), finite.

    Returns:
        Complex tensor of ``H``'s shape, dtype and device: the estimate
        :math:`\tilde{\mathbf H}`.
    """
    check_tensor(H, "H", min_ndim=3, complex_=True)
    if H.ndim > 4:
        raise ValueError(f"H must be [B, K, N] or [B, K, M, N], got shape {tuple(H.shape)}")
    if mode not in CSI_ERROR_MODES:
        raise ValueError(f"mode must be one of {CSI_ERROR_MODES}, got {mode!r}")
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError("generator must be a CPU torch.Generator (sample on CPU, then move)")
    if mode == "perfect":
        return H.clone()
    if mode == "absolute":
        var = torch.tensor(check_nonnegative(sigma2, "sigma2"), dtype=torch.float64)
    else:
        nmse = float(nmse_db)
        if not math.isfinite(nmse):
            raise ValueError(f"nmse_db must be finite (dB), got {nmse_db!r}; use mode='perfect'")
        per_user = H.detach().abs().square().flatten(2).mean(-1)  # [B, K]
        var = (10.0 ** (nmse / 10.0)) * per_user.to("cpu", torch.float64)
        var = var.reshape(*var.shape, *([1] * (H.ndim - 2)))
    z = torch.randn((*H.shape, 2), generator=generator, dtype=torch.float64)
    err = torch.view_as_complex(z) * torch.sqrt(var / 2.0)
    return H + err.to(device=H.device, dtype=H.dtype)


def csi_nmse(H: torch.Tensor, H_est: torch.Tensor) -> torch.Tensor:
    r"""Realized per-instance NMSE of a channel estimate, paper 000 Sec. II-C (linear).

    .. math:: \mathrm{NMSE} = \|\tilde{\mathbf H} - \mathbf H\|_F^2 / \|\mathbf H\|_F^2

    Args:
        H: Complex ``[B, ...]`` true channel.
        H_est: Complex ``[B, ...]`` estimate of the same shape.

    Returns:
        Real ``[B]`` NMSE (linear; ``10 log10`` for dB).
    """
    check_tensor(H, "H", min_ndim=2, complex_=True)
    check_tensor(H_est, "H_est", min_ndim=2, complex_=True)
    if H.shape != H_est.shape:
        raise ValueError(
            f"H {tuple(H.shape)} and H_est {tuple(H_est.shape)} must have the same shape"
        )
    num = (H_est - H).abs().square().flatten(1).sum(-1)
    return num / H.abs().square().flatten(1).sum(-1)


__all__ += ["CSI_ERROR_MODES", "additive_csi_error", "csi_nmse"]

# ---- paper 002: MMSE pilot estimate, DFT Type-II feedback, sample covariance ---------------------
#
# Channel convention of paper 002: h[..., i, :] is the paper's h_i (received y_i = h_i^H x),
# covariances R_i = E[h_i h_i^H]; see the paper 002 section of channels.py.

__all__ += [
    "mmse_pilot_estimate",
    "mmse_error_covariance",
    "dft_type2_feedback",
    "sample_covariance",
]


def _pilot_tensor_002(pilot_power: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Pilot power as a real tensor broadcastable to ``like.shape[:-1]``, checked > 0."""
    rdtype = like.real.dtype
    xi = torch.as_tensor(pilot_power, dtype=rdtype, device=like.device)
    if not bool(torch.isfinite(xi).all()) or bool((xi <= 0).any()):
        raise ValueError("pilot_power must be finite and > 0 (linear scale, not dB)")
    try:
        torch.broadcast_shapes(xi.shape, like.shape[:-1])
    except RuntimeError as err:
        raise ValueError(
            f"pilot_power of shape {tuple(xi.shape)} does not broadcast to the channel batch "
            f"shape {tuple(like.shape[:-1])}"
        ) from err
    return xi


def _check_h_r_002(h: torch.Tensor, R: torch.Tensor) -> tuple[int, bool]:
    """Return ``(M, snapshots)``; ``snapshots``: one R per group of ``h.shape[-2]`` channels."""
    check_tensor(h, "h", min_ndim=1, complex_=True)
    check_tensor(R, "R", min_ndim=2, complex_=True)
    m = h.shape[-1]
    if h.dtype != R.dtype:
        raise ValueError(f"h and R must share a dtype, got {h.dtype} and {R.dtype}")
    if R.shape[-2:] == (m, m):
        if R.shape[:-2] == h.shape[:-1]:
            return m, False
        if h.ndim >= 2 and R.shape[:-2] == h.shape[:-2]:
            return m, True
    raise ValueError(
        f"R must have shape {(*h.shape[:-1], m, m)} (one covariance per channel) or "
        f"{(*h.shape[:-2], m, m)} (one per group of snapshots) to match h {tuple(h.shape)}, "
        f"got {tuple(R.shape)}"
    )


def mmse_pilot_estimate(
    h: torch.Tensor,
    R: torch.Tensor,
    pilot_power: float | torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    r"""Noisy MMSE channel estimate from one pilot, paper 002 eq. (56) (its ref. [12]).

    .. math:: \hat{\mathbf h}_i = \mathbf R_i \left(\mathbf R_i + P_{\mathrm{pil},i}^{-1}
              \mathbf I\right)^{-1} \left(\mathbf h_i + P_{\mathrm{pil},i}^{-1/2}
              \mathbf n_i\right),\qquad \mathbf n_i \sim \mathcal{CN}(\mathbf 0, \mathbf I)

    As in the paper, the estimator uses the TRUE covariance :math:`\mathbf R_i`. The
    estimation error :math:`\mathbf h_i - \hat{\mathbf h}_i` has covariance
    :func:`mmse_error_covariance`, which shrinks to zero as the pilot power grows. The noise
    is drawn on the CPU from ``generator`` and moved to ``h``'s device.

    Args:
        h: Complex ``[..., M]`` true channels :math:`\mathbf h_i`, or ``[..., S, M]``
            snapshots sharing one covariance (Sec. V-E).
        R: Complex ``[..., M, M]`` true covariances :math:`\mathbf R_i` (Hermitian PSD), one
            per channel, or one per group of ``S`` snapshots (batch shape ``h.shape[:-2]``;
            the estimator matrix is then computed once per covariance).
        pilot_power: :math:`P_{\mathrm{pil},i} = \xi_i > 0`, LINEAR (not dB), relative to unit
            noise: a float or a real tensor broadcastable to ``R.shape[:-2]``.
        generator: CPU ``torch.Generator``.

    Returns:
        Complex ``[..., M]`` estimates :math:`\hat{\mathbf h}_i`.
    """
    m, snapshots = _check_h_r_002(h, R)
    xi = _pilot_tensor_002(pilot_power, R[..., 0])
    z = torch.randn((*h.shape, 2), generator=generator, dtype=h.real.dtype)
    n = torch.view_as_complex(z.contiguous()).to(h.device) / math.sqrt(2.0)
    scale = xi.rsqrt()[..., None, None] if snapshots else xi.rsqrt()[..., None]
    y = h + n * scale.to(h.real.dtype)
    eye = torch.eye(m, dtype=R.dtype, device=R.device)
    reg = R + (1.0 / xi)[..., None, None].to(R.dtype) * eye
    # R (R + s I)^{-1} = (R + s I)^{-1} R since both are functions of the same Hermitian R
    if snapshots:
        W = torch.linalg.solve(reg, R)  # one estimator per covariance
        return torch.einsum("...mn,...sn->...sm", W, y)
    return torch.linalg.solve(reg, (R @ y.unsqueeze(-1))).squeeze(-1)


def mmse_error_covariance(R: torch.Tensor, pilot_power: float | torch.Tensor) -> torch.Tensor:
    r"""Error covariance of the estimate of eq. (56), paper 002 (standard MMSE result).

    .. math:: \mathbb E\big[(\mathbf h - \hat{\mathbf h})(\mathbf h - \hat{\mathbf h})^H\big]
              = \mathbf R - \mathbf R \left(\mathbf R + P_{\mathrm{pil}}^{-1}\mathbf I
              \right)^{-1} \mathbf R

    Its trace decreases monotonically in :math:`P_{\mathrm{pil}}` (eigenvalues
    :math:`\lambda/(1 + P_{\mathrm{pil}}\lambda)` for each eigenvalue :math:`\lambda` of
    :math:`\mathbf R`).

    Args:
        R: Complex ``[..., M, M]`` covariances.
        pilot_power: Linear pilot power, float or tensor broadcastable to ``R.shape[:-2]``.

    Returns:
        Complex ``[..., M, M]`` Hermitian PSD error covariances.
    """
    check_tensor(R, "R", min_ndim=2, complex_=True)
    m = R.shape[-1]
    if R.shape[-2] != m:
        raise ValueError(f"R must be square [..., M, M], got {tuple(R.shape)}")
    xi = _pilot_tensor_002(pilot_power, R[..., 0])
    eye = torch.eye(m, dtype=R.dtype, device=R.device)
    reg = R + (1.0 / xi)[..., None, None].to(R.dtype) * eye
    err = R - R @ torch.linalg.solve(reg, R)
    return 0.5 * (err + err.mH)


def dft_type2_feedback(
    h: torch.Tensor,
    n_x: int,
    n_y: int,
    n_fb: int | torch.Tensor,
    *,
    oversampling: tuple[int, int] = (2, 2),
    amp_step_db: float | None = 3.0,
    amp_levels: int = 8,
    phase_levels: int | None = 8,
    criterion: str = "energy",
) -> torch.Tensor:
    r"""DFT-codebook feedback quantization modelled on 3GPP Type II, paper 002 Sec. V-A-4.

    Narrowband, single polarization. Steps, per user:

    1. Transform :math:`\mathbf h` with each of the 4 orthogonal subsets :math:`\mathbf F_s`
       (unitary ``M x M``) of the ``2 x 2``-oversampled 2D-DFT
       (:func:`beamgym.physics.codebooks.oversampled_dft_subsets_2d`):
       :math:`\mathbf c_s = \mathbf F_s^H \mathbf h`.
    2. Keep the top :math:`N_{fb}` coefficients (largest magnitude) of each subset.
    3. Choose ONE subset. The paper says the subset "that minimizes
       :math:`\|\hat{\mathbf h}_i\|_2`", which would pick the subset capturing the LEAST
       energy (the worst fit); we read it as a typo (docs/readings.md#002-feedback-subset)
       and use the physically consistent criterion: ``criterion="energy"`` (default) maximizes
       the captured energy
       :math:`\sum_{k \in \mathrm{top}} |[\mathbf c_s]_k|^2`, which (``F_s`` unitary) equals
       minimizing the unquantized reconstruction error :math:`\|\mathbf h - \mathbf F_s
       \mathbf c_{s,\mathrm{top}}\|_2`; ``criterion="error"`` minimizes the error after
       quantization, :math:`\|\mathbf h - \hat{\mathbf h}\|_2`.
    4. Quantize relative to the strongest coefficient :math:`c_0`, as Type II does: the
       amplitude ratio :math:`|c_k|/|c_0|` to 3 dB power steps (levels :math:`0, -3, \dots,
       -3(L_a - 2)` dB plus zero: ``amp_levels = L_a = 8`` gives 3GPP's 3-bit set
       :math:`\{1, \sqrt{1/2}, \dots, \sqrt{1/64}, 0\}`; a ratio is rounded to the nearest
       level in dB, and below :math:`-3(L_a - 1.5)` dB it becomes 0) and the phase difference
       :math:`\angle c_k - \angle c_0` to 8-PSK. The reference :math:`c_0` itself (amplitude
       and phase) is fed back exactly: the paper does not say how the channel gain is
       conveyed, and Type II reports it separately (wideband amplitude / CQI).
    5. :math:`\hat{\mathbf h} = \mathbf F_s[:, \mathrm{top}]\, \hat{\mathbf c}`.

    With ``n_fb = M`` and quantization disabled (``amp_step_db=None``,
    ``phase_levels=None``) the feedback is exact.

    Args:
        h: Complex ``[..., M]`` channels with ``M = n_x n_y`` (element index
            ``i_x * n_y + i_y``).
        n_x: Elements along x.
        n_y: Elements along y.
        n_fb: Number of fed-back coefficients :math:`N_{fb} = \xi_i`, ``1 <= n_fb <= M``: an
            int or an integer tensor broadcastable to ``h.shape[:-1]`` (per-user values).
        oversampling: ``(O_x, O_y)``, paper: ``(2, 2)`` (4 subsets).
        amp_step_db: Amplitude step in dB (power), or ``None`` for no amplitude quantization.
        amp_levels: Number of amplitude levels including zero (``>= 2``).
        phase_levels: PSK order of the phase quantizer, or ``None`` for none.
        criterion: ``"energy"`` or ``"error"`` (see step 3).

    Returns:
        Complex ``[..., M]`` fed-back channels :math:`\hat{\mathbf h}`.
    """
    from beamgym.physics.codebooks import oversampled_dft_subsets_2d

    check_tensor(h, "h", min_ndim=1, complex_=True)
    n_x, n_y = check_int(n_x, "n_x"), check_int(n_y, "n_y")
    m = n_x * n_y
    if h.shape[-1] != m:
        raise ValueError(f"h must have last dimension n_x * n_y = {m}, got {h.shape[-1]}")
    if criterion not in ("energy", "error"):
        raise ValueError(f"criterion must be 'energy' or 'error', got {criterion!r}")
    amp_levels = check_int(amp_levels, "amp_levels", minimum=2)
    if amp_step_db is not None:
        amp_step_db = check_positive(amp_step_db, "amp_step_db")
    if phase_levels is not None:
        phase_levels = check_int(phase_levels, "phase_levels", minimum=2)
    batch = h.shape[:-1]
    if isinstance(n_fb, torch.Tensor):
        if n_fb.is_floating_point() or n_fb.is_complex():
            raise ValueError(f"n_fb must be an integer tensor, got dtype {n_fb.dtype}")
        try:
            nfb = torch.broadcast_to(n_fb.to(device=h.device, dtype=torch.int64), batch)
        except RuntimeError as err:
            raise ValueError(
                f"n_fb of shape {tuple(n_fb.shape)} does not broadcast to {tuple(batch)}"
            ) from err
    else:
        nfb = torch.full(batch, check_int(n_fb, "n_fb"), dtype=torch.int64, device=h.device)
    if nfb.numel() and (int(nfb.min()) < 1 or int(nfb.max()) > m):
        raise ValueError(
            f"n_fb must lie in [1, M={m}], got range [{int(nfb.min())}, {int(nfb.max())}]"
        )
    k_max = int(nfb.max()) if nfb.numel() else 1
    precision = "double" if h.dtype == torch.complex128 else "single"
    F = oversampled_dft_subsets_2d(n_x, n_y, oversampling, precision=precision, device=h.device)
    c = torch.einsum("smk,...m->...sk", F.conj(), h)  # [..., S, M] coefficients per subset
    mag = c.abs()
    top_mag, top_idx = torch.topk(mag, k_max, dim=-1)  # sorted, descending
    keep = torch.arange(k_max, device=h.device) < nfb[..., None, None]  # [..., 1->S, k_max]
    top_c = torch.gather(c, -1, top_idx) * keep
    top_c_q = _quantize_type2_002(top_c, amp_step_db, amp_levels, phase_levels) * keep
    full = torch.zeros_like(c).scatter(-1, top_idx, top_c_q)  # quantized, zeros elsewhere
    recon = torch.einsum("smk,...sk->...sm", F, full)  # [..., S, M] reconstructions
    if criterion == "energy":
        score = -(top_mag.square() * keep).sum(-1)  # maximize captured energy
    else:
        score = (h.unsqueeze(-2) - recon).abs().square().sum(-1)  # quantized error
    best = score.argmin(-1)  # [...]
    return torch.gather(recon, -2, best[..., None, None].expand(*batch, 1, m)).squeeze(-2)


def _quantize_type2_002(
    c: torch.Tensor, amp_step_db: float | None, amp_levels: int, phase_levels: int | None
) -> torch.Tensor:
    """Quantize coefficients sorted by decreasing magnitude relative to ``c[..., 0]``."""
    ref = c[..., :1]
    ref_mag = ref.abs()
    tiny = torch.finfo(ref_mag.dtype).tiny
    ratio = c.abs() / ref_mag.clamp_min(tiny)
    if amp_step_db is not None:
        db = -20.0 * torch.log10(ratio.clamp_min(tiny))
        level = torch.round(db / amp_step_db)
        ratio = torch.where(
            level <= amp_levels - 2,
            10.0 ** (-amp_step_db * level / 20.0),
            torch.zeros_like(ratio),
        )
    dphi = torch.angle(c) - torch.angle(ref)
    if phase_levels is not None:
        step = 2.0 * math.pi / phase_levels
        dphi = step * torch.round(dphi / step)
    out = torch.polar(ratio * ref_mag, torch.angle(ref) + dphi)
    return torch.where(ref_mag > 0, out, torch.zeros_like(out))


def sample_covariance(snapshots: torch.Tensor, *, demean: bool = False) -> torch.Tensor:
    r"""Sample covariance of ``S`` channel snapshots, paper 002 Sec. V-E.

    .. math:: \hat{\mathbf R} = \frac1S \sum_{s=1}^S \hat{\mathbf h}_s \hat{\mathbf h}_s^H

    The paper computes :math:`\hat{\mathbf R}_i` "as the covariance estimate" of 32
    (estimated) snapshots without saying whether the mean is removed. The channels are
    zero-mean, so the default is the zero-mean estimator above (unbiased, converges to
    :math:`\mathbf R` at rate :math:`1/\sqrt S`); ``demean=True`` subtracts the sample mean
    and divides by ``S - 1`` instead.

    Args:
        snapshots: Complex ``[..., S, M]`` channel snapshots (rows are :math:`\mathbf h_s`).
        demean: Subtract the sample mean (needs ``S >= 2``).

    Returns:
        Complex ``[..., M, M]`` Hermitian PSD sample covariances.
    """
    check_tensor(snapshots, "snapshots", min_ndim=2, complex_=True)
    s = snapshots.shape[-2]
    if s < 1 or (demean and s < 2):
        raise ValueError(f"need at least {2 if demean else 1} snapshots, got S={s}")
    x = snapshots
    denom = s
    if demean:
        x = x - x.mean(-2, keepdim=True)
        denom = s - 1
    return (x.mT @ x.conj()) / denom
