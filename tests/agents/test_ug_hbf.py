"""U-G-HBF-GCN of paper 002 (agents/ug_hbf): gradients, selection, shapes, training pieces."""

from __future__ import annotations

import math

import pytest
import torch

from agents.ug_hbf.model import (
    GCN,
    UGHBFModelConfig,
    _final_design,
    compact_uplink_fixed_point,
    gcn_features,
    shift_operator,
    straight_through_softmin,
    trial_uplink_power,
    true_sinr,
    ug_hbf_forward,
    virtual_coefficients,
)
from agents.ug_hbf.reference import (
    compact_uplink_fixed_point_reference,
    final_design_reference,
    trial_uplink_power_reference,
    ug_hbf_forward_reference,
)
from agents.ug_hbf.train import (
    UGHBFTrainConfig,
    adaptive_clip_,
    anneal_beta,
    outage_surrogate,
    train_ug_hbf,
)
from beamgym.datasets import make_task
from beamgym.physics.power import implicit_virtual_uplink, virtual_uplink_fixed_point

ENV = "beamgym/OutageHybrid-v0"


def _problem(seed: int = 3, n: int = 3, users: int = 3, r: int = 5):
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(n, users, r, dtype=torch.complex128, generator=gen)
    base = torch.tensor([0.5, 0.01, 0.5, 0.01], dtype=torch.float64)
    scale = torch.tensor([1.0, 0.05, 1.0, 0.05], dtype=torch.float64)
    c = base + scale * torch.rand(n, users, 4, dtype=torch.float64, generator=gen)
    gamma = torch.full((n, users), 2.0, dtype=torch.float64)
    return g, c, gamma


def _psi5(g: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The virtual covariances of eq. (27) as the physics' [n, I, I, R, R] tensor."""
    r, users = g.shape[-1], g.shape[1]
    eye = torch.eye(r, dtype=g.dtype)
    outer = g.unsqueeze(-1) * g.conj().unsqueeze(-2)
    cc = c.to(g.dtype)
    sig = cc[..., 0, None, None] * outer + cc[..., 1, None, None] * eye
    itf = cc[..., 2, None, None] * outer + cc[..., 3, None, None] * eye
    diag = torch.eye(users, dtype=torch.bool)[None, :, :, None, None]
    return torch.where(diag, sig.unsqueeze(2), itf.unsqueeze(2))


def test_subspace_fixed_point_equals_the_full_virtual_uplink() -> None:
    """docs/readings.md#002-ug-hbf-subspace: problem (31) solved in the span of the channels."""
    g, c, gamma = _problem()
    total = trial_uplink_power(g, c, gamma, tol=1e-11)
    ref = virtual_uplink_fixed_point(_psi5(g, c), gamma, tol=1e-12)
    assert bool(ref.feasible.all())
    torch.testing.assert_close(total, ref.q.sum(-1), rtol=1e-6, atol=0)


def test_trial_power_gradient_matches_finite_differences_float64() -> None:
    g, c, gamma = _problem(seed=5, n=1, users=2, r=3)
    gr, gi = g.real.clone().requires_grad_(), g.imag.clone().requires_grad_()
    cr = c.clone().requires_grad_()

    def f(a: torch.Tensor, b: torch.Tensor, cc: torch.Tensor) -> torch.Tensor:
        return trial_uplink_power(torch.complex(a, b), cc, gamma, tol=1e-11)

    # the fixed point is solved to 1e-11: finite differences with eps = 1e-5
    assert torch.autograd.gradcheck(f, (gr, gi, cr), eps=1e-5, atol=2e-5, rtol=1e-3)


def test_trial_power_gradient_is_theorem_iv2_contracted_with_ones() -> None:
    """The envelope gradient equals the q-rows of eq. (49) (implicit Function) summed."""
    g, c, gamma = _problem(seed=7, n=2)
    c1 = c.clone().requires_grad_()
    trial_uplink_power(g, c1, gamma, tol=1e-11).sum().backward()
    c2 = c.clone().requires_grad_()
    q, _, ok = implicit_virtual_uplink(_psi5(g, c2), gamma)
    assert bool(ok.all())
    q.sum().backward()
    torch.testing.assert_close(c1.grad, c2.grad, rtol=1e-5, atol=1e-7)


def test_final_design_implicit_gradient_passes_gradcheck_float64() -> None:
    """Problem (31) differentiated by Thm. IV.2 (not unrolled), eqs. (32)/(34), vs differences."""
    g, c, gamma = _problem(seed=11, n=1, users=2, r=3)
    gr, gi = g.real.clone().requires_grad_(), g.imag.clone().requires_grad_()
    cr = c.clone().requires_grad_()

    def f(a: torch.Tensor, b: torch.Tensor, cc: torch.Tensor) -> torch.Tensor:
        h = torch.complex(a, b)
        digital, power, ok, _ = _final_design(h, cc, gamma, 1e4)
        # the power and the achieved (phase-invariant) gains |g_i^H d_j|^2
        return power.sum() + (h.conj() @ digital).abs().square().sum()

    assert torch.autograd.gradcheck(f, (gr, gi, cr), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_final_design_meets_the_virtual_targets_exactly() -> None:
    g, c, gamma = _problem(seed=13, n=4)
    digital, power, ok, scaled = _final_design(g, c, gamma, 1e6)
    assert bool(ok.all()) and not bool(scaled.any())
    # SINR of eq. (25) with the virtual covariances equals gamma (eq. 32)
    psi = _psi5(g, c)
    gains = torch.einsum(
        "brj,bijrs,bsj->bij", digital.conj(), psi, digital
    ).real  # d_j^H Psi_ij d_j
    sig = torch.diagonal(gains, dim1=-2, dim2=-1)
    sinr = sig / (gains.sum(-1) - sig + 1.0)
    torch.testing.assert_close(sinr, gamma, rtol=1e-7, atol=0)
    total = trial_uplink_power(g, c, gamma, tol=1e-11)
    torch.testing.assert_close(power, total, rtol=1e-6, atol=0)  # duality: w^T p = 1^T q


def test_straight_through_softmin_forward_is_the_hard_choice_with_a_gradient() -> None:
    """Eq. (36) deterministic straight-through: forward = argmin (eq. 19), backward = softmin."""
    cb = torch.linalg.qr(torch.randn(4, 4, dtype=torch.complex128))[0]
    powers = torch.tensor([[3.0, 1.0, math.inf, 2.0], [1.0, 1.0, 5.0, 0.5]], dtype=torch.float64)
    powers.requires_grad_()
    a, idx = straight_through_softmin(powers, cb, 5.0, torch.tensor([0, 0]))
    assert idx.tolist() == [1, 3]
    assert torch.equal(a.detach(), cb.mT[idx])
    a.real.sum().backward()
    assert powers.grad is not None and bool(powers.grad[:, [0, 1, 3]].abs().sum() > 0)
    assert powers.grad[0, 2] == 0  # an excluded codeword gets no gradient
    # ties keep the incumbent; all infeasible keeps the incumbent
    _, idx = straight_through_softmin(
        torch.tensor([[1.0, 1.0], [math.inf, math.inf]], dtype=torch.float64),
        cb[:2, :2],
        5.0,
        torch.tensor([1, 1]),
    )
    assert idx.tolist() == [1, 1]


def test_gcn_is_permutation_equivariant_and_positive_within_its_bounds() -> None:
    torch.manual_seed(0)
    net = GCN(4, 8, 3, 1, 8.0).eval()
    x = torch.randn(5, 3, 4)
    h = torch.randn(5, 3, 16, dtype=torch.complex64)
    S = shift_operator(h)
    assert torch.all(torch.diagonal(S, dim1=-2, dim2=-1) == 0) and bool((S <= 1 + 1e-6).all())
    perm = torch.tensor([2, 0, 1])
    z = net(x, S)
    zp = net(x[:, perm], S[:, perm][:, :, perm])
    torch.testing.assert_close(zp, z[:, perm])
    assert bool((z > math.exp(-8.0)).all()) and bool((z < math.exp(8.0)).all())
    # docs/readings.md#002-ug-hbf-eq27: the untrained net starts near z = (0.67, e^-4, 1, e^-4)
    with torch.no_grad():
        start = GCN(4, 32, 3, 1, 8.0).eval()(x, S).median(0).values.median(0).values
    want = torch.tensor([-0.4, -4.0, 0.0, -4.0])  # log z
    assert float((start.log() - want).abs().max()) < 0.5


def test_unrolled_model_on_the_env_is_feasible_and_never_worse_than_its_start() -> None:
    task = make_task(ENV, constraint_groups=True)
    inst = task.sample(torch.Generator().manual_seed(1), 6)
    torch.manual_seed(0)
    net = GCN(4, 8, 3, 1, 8.0).eval()
    cfg = UGHBFModelConfig(width=8)
    with torch.no_grad():
        out = ug_hbf_forward(task, task.known(inst), net, cfg)
        none = ug_hbf_forward(
            task, task.known(inst), net, UGHBFModelConfig(width=8, greedy_steps=0)
        )
    assert out.analog.shape == (6, 16, 5) and out.digital.shape == (6, 5, 3)
    assert bool(out.feasible.all())
    # distinct codewords (eq. 6) and eq. (34)
    assert all(len(set(r)) == 5 for r in out.indices.tolist())
    assert bool((out.power <= task.config.p_max * (1 + 1e-9)).all())
    assert torch.equal(out.power, none.power)  # greedy_steps=0 means L_rf = M_rf (Table 1)


def test_bad_inputs_raise_value_errors_naming_the_argument() -> None:
    g, c, gamma = _problem()
    with pytest.raises(ValueError, match="c must be"):
        trial_uplink_power(g, c[:, :, :3], gamma)
    with pytest.raises(ValueError, match="g needs M_rf >= I"):
        trial_uplink_power(g[:, :, :2], c, gamma)
    with pytest.raises(ValueError, match="g"):
        trial_uplink_power(g.real, c, gamma)
    with pytest.raises(ValueError, match="arch"):
        UGHBFModelConfig(arch="mlp")
    with pytest.raises(ValueError, match="degree"):
        UGHBFModelConfig(arch="fcn", degree=1)
    with pytest.raises(ValueError, match="constraint"):
        UGHBFTrainConfig(constraint="penalty")
    with pytest.raises(ValueError, match="batch_size"):
        UGHBFTrainConfig(batch_size=10, n_train=5)
    with pytest.raises(ValueError, match="powers"):
        straight_through_softmin(
            torch.tensor([[math.nan, 1.0]]),
            torch.eye(2, dtype=torch.complex128),
            5.0,
            torch.tensor([0]),
        )
    task = make_task(ENV, constraint_groups=True)
    inst = task.sample(torch.Generator().manual_seed(0), 2)
    with pytest.raises(ValueError, match="num_rf"):
        ug_hbf_forward(
            task, task.known(inst), GCN(4, 8, 3, 1, 8.0), UGHBFModelConfig(fully_digital=True)
        )


def test_annealed_constraint_eq52_eq53_and_quantile_eq54() -> None:
    """docs/readings.md#002-ug-hbf-training: eq. (53) bounds and eq. (52)/(54) values."""
    cfg = UGHBFTrainConfig()
    ratio = torch.linspace(-0.5, 1.0, 100, dtype=torch.float64).reshape(50, 2)
    # the 0.1-quantile is negative (outage above nominal): beta moves towards 1 / -Q
    qv = float(torch.quantile(ratio.flatten(), 0.1))
    assert qv < 0
    b = anneal_beta(1.0, ratio, 0.1, cfg)
    assert b == pytest.approx(0.99 + 0.01 / -qv)
    # oversatisfied: beta converges to the bound beta_c-bar = 50
    b = 1.0
    for _ in range(3000):
        b = anneal_beta(b, ratio.abs() + 1.0, 0.1, cfg)
    assert b == pytest.approx(50.0, rel=1e-6)
    g = outage_surrogate(ratio, torch.ones_like(ratio), ratio + 1, 0.1, kind="anneal", beta_c=1e6)
    frac_ok = float((ratio > 0).double().mean())  # logistic ~ step at large beta
    assert float(g) == pytest.approx(0.9 - frac_ok, abs=1e-2)
    gq = outage_surrogate(ratio, torch.ones_like(ratio), ratio + 1, 0.1, kind="quantile")
    assert float(gq) == pytest.approx(float(torch.quantile(-ratio.flatten(), 0.9)))


def test_adaptive_clipping_caps_the_inf_norm_at_the_history_quantile() -> None:
    cfg = UGHBFTrainConfig(clip_warmup=3)
    p = torch.nn.Parameter(torch.zeros(3))
    hist = [1.0, 2.0, 3.0, 4.0]
    p.grad = torch.tensor([10.0, -20.0, 5.0])
    norm = adaptive_clip_([p], hist, cfg)
    assert norm == 20.0 and hist[-1] == 20.0
    cap = float(torch.quantile(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64), 0.9))
    assert float(p.grad.abs().max()) == pytest.approx(cap)


def test_a_few_training_steps_change_the_weights_and_log_eq55() -> None:
    task = make_task(ENV, constraint_groups=True)
    cfg = UGHBFTrainConfig(
        steps=2, batch_size=8, n_train=8, n_val=8, val_interval=1, lr=0.01, lambda_init=10.0
    )
    state, hist, info = train_ug_hbf(task, UGHBFModelConfig(width=8), cfg)
    assert info["steps"] == 2 and len(hist) == 3
    # docs/readings.md#002-ug-hbf-training: duals start at lambda_init, move by eq. (51)
    assert all(hist[0][f"lambda_g{d}"] == 10.0 for d in range(4))
    assert any(hist[-1][f"lambda_g{d}"] != 10.0 for d in range(4))
    assert all(math.isfinite(r["j_cm"]) for r in hist)
    assert all(v.dtype == torch.float32 for v in state.values())
    assert not any(k.endswith("num_batches_tracked") for k in state)


def test_compact_fixed_point_flags_infeasible_targets() -> None:
    g, c, _ = _problem(seed=2, n=2)
    gamma = torch.full((2, 3), 1e9, dtype=torch.float64)
    Q, U = torch.linalg.qr(g.mT)
    _, _, ok = compact_uplink_fixed_point(U, c, gamma, max_iter=50)
    assert not bool(ok.any())
    assert bool(torch.isinf(trial_uplink_power(g, c, gamma)).all())


def test_fully_digital_dft_analog_equals_the_identity() -> None:
    """docs/readings.md#002-ug-hbf-fully-digital: A = unitary DFT codebook acts as A = I."""
    task = make_task(ENV, num_rf=16)
    cb = task.codebook.to(torch.complex128)
    g, c, gamma = _problem(seed=17, n=3, r=16)  # g: fully digital channels h_i (A = I)
    d_id, p_id, ok_id, _ = _final_design(g, c, gamma, 1e4)
    d_cb, p_cb, ok_cb, _ = _final_design(g @ cb.conj(), c, gamma, 1e4)
    assert bool(ok_id.all()) and bool(ok_cb.all())
    torch.testing.assert_close(p_cb, p_id, rtol=1e-8, atol=0)
    x_cb = cb @ d_cb  # transmit precoders A @ digital
    gains = lambda x: (g.conj() @ x).abs().square()  # noqa: E731
    torch.testing.assert_close(gains(x_cb), gains(d_id), rtol=1e-7, atol=1e-9)


# ---- the optimized path equals the reference implementation (agents/ug_hbf/reference.py) -------
@pytest.mark.parametrize("tol, bounded", [(1e-6, False), (1e-6, True), (1e-12, False)])
def test_fast_compact_fixed_point_has_the_reference_iterates(tol: float, bounded: bool) -> None:
    """Masked working set, real form and N x = y for b^T N b: same flags, same q to round-off."""
    g, c, _ = _problem(seed=19, n=70)  # > _COMPACT_MIN rows: the working set is compacted
    gen = torch.Generator().manual_seed(19)
    gamma = 10 ** (1.5 * torch.rand(70, 3, dtype=torch.float64, generator=gen))
    gamma[:3] = 1e9  # infeasible rows
    bound = 50.0 * torch.rand(70, dtype=torch.float64, generator=gen) if bounded else None
    _, U = torch.linalg.qr(g.mT)
    q0, b0, ok0 = compact_uplink_fixed_point_reference(U, c, gamma, tol=tol, bound=bound)
    q1, b1, ok1 = compact_uplink_fixed_point(U, c, gamma, tol=tol, bound=bound)
    assert torch.equal(ok0, ok1) and bool(ok0.any()) and not bool(ok0.all())
    torch.testing.assert_close(q1[ok0], q0[ok0], rtol=1e-9, atol=0)
    torch.testing.assert_close(b1[ok0], b0[ok0], rtol=0, atol=1e-9)
    v0 = trial_uplink_power_reference(g, c, gamma, bound, tol=tol)
    v1 = trial_uplink_power(g, c, gamma, bound, tol=tol)  # no grad: the value path
    assert torch.equal(torch.isinf(v0), torch.isinf(v1))
    torch.testing.assert_close(v1[ok0], v0[ok0], rtol=1e-9, atol=0)


def test_inference_final_design_equals_the_implicit_path() -> None:
    """exact_uplink_fixed_point + eq. (32)/(34) without Thm. IV.2 = the implicit forward."""
    g, c, gamma = _problem(seed=23, n=40)
    gamma = gamma * 10 ** (torch.rand(40, 3, dtype=torch.float64) * 2.0)
    gamma[:2] = 1e6  # infeasible
    ref = final_design_reference(g, c, gamma, 30.0)  # some designs scaled by eq. (34)
    out = _final_design(g, c, gamma, 30.0)
    for a, b in zip(ref[2:], out[2:], strict=True):  # feasible, pmax_scaled
        assert torch.equal(a, b)
    assert bool(ref[2].any()) and not bool(ref[2].all()) and bool(ref[3].any())
    torch.testing.assert_close(out[1], ref[1], rtol=1e-9, atol=0)  # power
    torch.testing.assert_close(out[0], ref[0], rtol=1e-9, atol=1e-12)  # digital, same phase


@pytest.mark.parametrize("num_rf, fully_digital", [(5, False), (16, True)])
def test_fast_model_selects_and_powers_like_the_reference(num_rf: int, fully_digital: bool) -> None:
    """Same selections, flags and powers (rtol 1e-9, float64) at inference; same gradients."""
    task = make_task(ENV, constraint_groups=True, num_rf=num_rf)
    inst = task.sample(torch.Generator().manual_seed(29), 48)
    known = task.known(inst)
    torch.manual_seed(0)
    net = GCN(4, 8, 3, 1, 8.0).eval()
    cfg = UGHBFModelConfig(width=8, fully_digital=fully_digital)
    with torch.no_grad():
        ref = ug_hbf_forward_reference(task, known, net, cfg)
        out = ug_hbf_forward(task, known, net, cfg)
    assert torch.equal(ref.indices, out.indices) and torch.equal(ref.analog, out.analog)
    assert torch.equal(ref.feasible, out.feasible) and torch.equal(ref.pmax_scaled, out.pmax_scaled)
    torch.testing.assert_close(out.power, ref.power, rtol=1e-9, atol=0)
    torch.testing.assert_close(out.digital, ref.digital, rtol=1e-9, atol=1e-12)
    # training mode (straight-through softmin, implicit gradients): same loss and gradients
    grads = []
    for fwd in (ug_hbf_forward_reference, ug_hbf_forward):
        net.zero_grad()
        o = fwd(task, known[:16], net, cfg)
        sinr = true_sinr(inst.h[:16].to(torch.complex128), o.analog, o.digital)
        (o.power.mean() + torch.sigmoid(sinr / inst.gamma[:16].double() - 1).mean()).backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-8)


def test_selection_gradient_off_keeps_the_values_and_differentiates_the_final_design_only() -> None:
    """docs/readings.md#002-ug-hbf-selection-gradient: same forward, gradient of Thm. IV.2 only."""
    task = make_task(ENV, constraint_groups=True)
    inst = task.sample(torch.Generator().manual_seed(31), 12)
    known = task.known(inst)
    torch.manual_seed(0)
    net = GCN(4, 8, 3, 1, 8.0).eval()
    cfg = UGHBFModelConfig(width=8)
    h = inst.h.to(torch.complex128)

    def loss_of(o):
        sinr = true_sinr(h, o.analog, o.digital)
        return o.power.mean() + torch.sigmoid(sinr / inst.gamma.double() - 1).mean()

    grads, outs = [], []
    for sel in (True, False):
        net.zero_grad()
        o = ug_hbf_forward(task, known, net, cfg, selection_gradient=sel)
        loss_of(o).backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
        outs.append(o)
    a, b = outs
    assert torch.equal(a.indices, b.indices) and torch.equal(a.analog.detach(), b.analog)
    torch.testing.assert_close(a.power.detach(), b.power.detach(), rtol=1e-12, atol=0)
    assert not b.analog.requires_grad  # the beams are constants
    assert float((grads[0] - grads[1]).abs().max()) > 1e-6 * float(grads[0].abs().max())
    # the same gradient as the final design (eqs. 31-34, Thm. IV.2) on the fixed beams
    net.zero_grad()
    p_dtype = next(net.parameters()).dtype
    feats = gcn_features(known, task.config.p_max, with_xi=True).to(p_dtype)
    z = net(feats, shift_operator(known.h_est).to(p_dtype))
    c = virtual_coefficients(z.to(torch.float64), known.h_est.to(torch.complex128))
    g = known.h_est.to(torch.complex128) @ b.analog.conj()
    digital, power, _, _ = _final_design(g, c, known.gamma.double(), task.config.p_max)
    sinr = true_sinr(h, b.analog, digital)
    (power.mean() + torch.sigmoid(sinr / inst.gamma.double() - 1).mean()).backward()
    direct = torch.cat([p.grad.flatten() for p in net.parameters()])
    torch.testing.assert_close(grads[1], direct, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="selection_gradient"):
        UGHBFTrainConfig(selection_gradient="no")  # type: ignore[arg-type]


def test_warm_start_restores_weights_and_duals_and_records_the_parent(tmp_path) -> None:
    import json

    from agents.pretrained import CheckpointError
    from agents.ug_hbf.train import main

    tiny = ["--env-kw", "constraint_groups=true", "--batch-size", "8", "--n-train", "8"]
    tiny += ["--n-val", "16", "--val-interval", "1", "--lr", "0.01", "--lambda-init", "10"]
    tiny += ["--no-progress", "--threads", "1"]
    first = main(["--agent", "ug_hbf_gcn", "--steps", "3", *tiny, "--out", str(tmp_path / "a")])
    parent = json.loads((first / "config.json").read_text())
    second = main(
        ["--agent", "ug_hbf_gcn", "--steps", "1", *tiny, "--init-from", str(first)]
        + ["--out", str(tmp_path / "b")]
    )
    child = json.loads((second / "config.json").read_text())
    log_a = (first / "train_log.csv").read_text().splitlines()
    log_b = (second / "train_log.csv").read_text().splitlines()
    head = log_a[0].split(",")
    rows_a = [dict(zip(head, r.split(","), strict=True)) for r in log_a[1:]]
    row_b0 = dict(zip(head, log_b[1].split(","), strict=True))
    best = next(r for r in rows_a if int(r["step"]) == parent["result"]["best_step"])
    # the parent's best weights (batchnorm statistics included) give the same validation row
    assert float(row_b0["val_power"]) == pytest.approx(float(best["val_power"]), rel=1e-6)
    assert float(row_b0["val_outage"]) == float(best["val_outage"])
    # the duals of eq. (51) continue from the parent's final ones, not from lambda_init
    for d in range(4):
        assert float(row_b0[f"lambda_g{d}"]) == pytest.approx(parent["result"]["final_lambda"][d])
    assert child["train_config"]["init_from"] == str(first)
    assert child["parent"]["command"] == parent["command"]
    assert child["parent"]["result"] == parent["result"]
    # another architecture, a missing folder and a non-string are refused, naming the problem
    fcn = main(["--agent", "ug_hbf_fcn", "--steps", "1", *tiny, "--out", str(tmp_path / "c")])
    task = make_task(ENV, constraint_groups=True)
    cfg = UGHBFTrainConfig(steps=1, batch_size=8, n_train=8, n_val=8, init_from=str(fcn))
    with pytest.raises(CheckpointError, match="architecture differs"):
        train_ug_hbf(task, UGHBFModelConfig(), cfg)
    cfg = UGHBFTrainConfig(steps=1, batch_size=8, n_train=8, n_val=8, init_from="/nonexistent")
    with pytest.raises(CheckpointError, match="nonexistent"):
        train_ug_hbf(task, UGHBFModelConfig(), cfg)
    with pytest.raises(ValueError, match="init_from"):
        UGHBFTrainConfig(init_from=3)  # type: ignore[arg-type]
    # a folder of another env, or without per-group duals, is refused too
    import shutil

    for name, edit, message in (
        ("env", lambda c: c["env_config"].update(num_users=2), "another environment"),
        ("duals", lambda c: c["result"].pop("final_lambda"), "final_lambda"),
    ):
        bad = tmp_path / name
        shutil.copytree(first, bad)
        cfg_bad = json.loads((bad / "config.json").read_text())
        edit(cfg_bad)
        (bad / "config.json").write_text(json.dumps(cfg_bad))
        cfg = UGHBFTrainConfig(steps=1, batch_size=8, n_train=8, n_val=8, init_from=str(bad))
        with pytest.raises(CheckpointError, match=message):
            train_ug_hbf(task, UGHBFModelConfig(), cfg)
