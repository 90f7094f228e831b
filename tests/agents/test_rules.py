"""The public update rules of agents.rules: shared steps, gradients, the one normalization."""

from __future__ import annotations

import pytest
import torch

import agents  # noqa: F401  (registers the agents)
from agents.base import make_agent
from agents.rules.gradient import band_gradient, band_sum_rate
from agents.rules.pga import PAPER_LAMBDA, PAPER_MU, pga, pga_iteration
from agents.rules.pga_momentum import (
    ModularProblem,
    pga_momentum_run,
    pga_momentum_step,
    random_unit_modulus_panels,
)
from agents.rules.problem import canonical_channel, problem_from_known, solver_env, solver_env_ids
from agents.unfolded_pga.model import UnfoldedPGA
from agents.upga_m.model import unfolded_layer
from beamgym.datasets import make_instance_set, make_task
from beamgym.physics.metrics import modular_rate_gradient, modular_sum_rate
from beamgym.physics.projections import (
    hybrid_power,
    normalize_power,
    total_power,
    weighted_power,
)

FAR = "beamgym/FarFieldHybrid-v0"
PS = {"analog": "phase-shifter", "precision": "double"}
MOD = "beamgym/ModularUplink-v0"


def _cn(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.complex(
        torch.randn(shape, generator=gen, dtype=torch.float64),
        torch.randn(shape, generator=gen, dtype=torch.float64),
    )


# ---- the one normalization ----------------------------------------------------------------------
def test_normalize_power_hits_the_budget_in_every_form() -> None:
    g = torch.Generator().manual_seed(0)
    W = _cn(g, 4, 6, 3)
    P = torch.tensor([1.0, 2.0, 10.0, 0.5], dtype=torch.float64)
    assert torch.allclose(total_power(normalize_power(W, P)), P, rtol=1e-12)
    A = _cn(g, 4, 6, 6)
    Q = A.mH @ A
    assert torch.allclose(weighted_power(normalize_power(W, P, Q), Q), P, rtol=1e-12)
    Qf = torch.stack([Q, 2.0 * Q], 1)  # [B, F, N, N]: band-averaged power
    assert torch.allclose(weighted_power(normalize_power(W, P, Qf), Qf), P, rtol=1e-12)
    F = _cn(g, 4, 9, 6)
    Wh = normalize_power(W, P, analog=F)
    assert torch.allclose(hybrid_power(F, Wh), P, rtol=1e-12)
    assert torch.allclose(weighted_power(Wh, F.mH @ F), P, rtol=1e-10)  # same sphere
    zero = normalize_power(torch.zeros_like(W), P)
    assert torch.equal(zero, torch.zeros_like(W))
    with pytest.raises(ValueError, match="not both"):
        normalize_power(W, P, Q, analog=F)
    with pytest.raises(ValueError, match="power"):
        normalize_power(W, -1.0)


# ---- paper 000: gradient ascent direction -------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 4, 6), (2, 3, 2, 6), (2, 2, 3, 1, 5)])
def test_ga_direction_is_the_autograd_steepest_ascent(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(1)
    H5 = canonical_channel(_cn(g, *shape))
    b, _, k, m, n = H5.shape
    W = _cn(g, b, n, k * m).requires_grad_(True)
    s2 = torch.full((b,), 0.7, dtype=torch.float64)
    band_sum_rate(H5, W, s2).sum().backward()
    assert torch.allclose(band_gradient(H5, W.detach(), s2), W.grad, rtol=1e-9, atol=1e-11)


def test_env_adapters_are_one_registry() -> None:
    assert solver_env_ids() == (
        "beamgym/FullyDigitalFDD-v0",
        "beamgym/FarFieldHybrid-v0",
        "beamgym/NearFieldHybrid-v0",
    )
    with pytest.raises(ValueError, match="steering"):
        solver_env(make_task(FAR, analog="phase-shifter"))
    with pytest.raises(ValueError, match="not supported"):
        solver_env(make_task(MOD))
    task = make_task(FAR, analog="steering")
    inst = make_instance_set(FAR, 5, 3, analog="steering").instances
    known = task.known(inst)
    prob = problem_from_known(task, known)
    assert prob.H.shape == (5, 1, task.config.K, 1, task.config.N_RF)
    # the agents' designs are accepted by the env's action map as they are
    for name in ("mrt", "wmmse", "mmse_ga"):
        bf = make_agent(name, task).solve(known)
        back, _ = task.action_to_beamformer(task.beamformer_to_action(bf, known), known)
        change = (back.digital - bf.digital).abs().amax() / bf.digital.abs().amax()
        assert float(change) < 1e-5


# ---- paper 003: one PGA implementation ----------------------------------------------------------
def test_one_pga_step_is_the_classical_first_iterate() -> None:
    task = make_task(FAR, **PS)
    known = task.known(make_instance_set(FAR, 8, 5, **PS).instances)
    trace = make_agent("pga", task, I=3).solve_trace(known)
    F, W = pga_iteration(
        known.H_est, trace[0].analog, trace[0].digital, known.power, known.noise_var
    )
    assert torch.allclose(F, trace[1].analog, rtol=0, atol=1e-13)
    assert torch.allclose(W, trace[1].digital, rtol=0, atol=1e-13)
    assert torch.allclose(hybrid_power(F, W), known.power, rtol=1e-12)


def test_unfolded_pga_with_constant_theta_is_the_classical_pga() -> None:
    task = make_task(FAR, **PS)
    known = task.known(make_instance_set(FAR, 8, 6, **PS).instances)
    model = UnfoldedPGA(4, 1, mu_init=PAPER_MU, lam_init=PAPER_LAMBDA, dtype=torch.float64)
    with torch.no_grad():
        out = model(known.H_est, known.power, known.noise_var)[-1]
    ref = pga(known.H_est, known.power, known.noise_var, I=4)[0][-1]
    agent = make_agent("pga", task, I=4).solve(known)
    for bf in (ref, agent):
        assert torch.equal(out.analog, bf.analog)
        assert torch.equal(out.digital, bf.digital)


# ---- paper 004: one modular gradient, one PGA+M step -------------------------------------------
def test_modular_direction_is_twice_theorem_1_and_autograd() -> None:
    task = make_task(MOD, precision="double")
    known = task.known(task.sample(torch.Generator().manual_seed(2), 3))
    model = ModularProblem(task, known)
    W = random_unit_modulus_panels(4, 3, task.panel_shape, dtype=torch.complex128)
    D = model.grad(W)
    wirtinger = modular_rate_gradient(known.H_est, W, task.A, known.snr)
    assert torch.allclose(D, 2.0 * wirtinger, rtol=1e-9, atol=1e-11)
    Wg = W.clone().requires_grad_(True)
    modular_sum_rate(known.H_est, Wg, task.A, known.snr).sum().backward()
    assert torch.allclose(D, Wg.grad, rtol=1e-8, atol=1e-10)
    assert torch.allclose(model.rate(W), modular_sum_rate(known.H_est, W, task.A, known.snr))


def test_upga_m_layer_with_constant_theta_is_the_pga_m_step() -> None:
    task = make_task(MOD, precision="double")
    known = task.known(task.sample(torch.Generator().manual_seed(3), 4))
    model = ModularProblem(task, known)
    W0 = random_unit_modulus_panels(1, 4, task.panel_shape, dtype=torch.complex128)
    mu = torch.tensor([[1.0] * 4, [0.5] * 4], dtype=torch.float64)  # [J, b]
    beta = torch.tensor([[0.9] * 4, [0.495] * 4], dtype=torch.float64)
    trace, _ = pga_momentum_run(model, W0, mu, beta, 0.0, record=True)
    W, prev = trace[0], torch.zeros_like(trace[0])
    for j in range(2):
        alpha = torch.full(task.panel_shape, float(mu[j, 0]), dtype=torch.float64)
        b_ = torch.full(task.panel_shape, float(beta[j, 0]), dtype=torch.float64)
        new = unfolded_layer(W, prev, model.grad(W), alpha, b_, None, model.project)
        step = pga_momentum_step(W, prev, model.grad(W), mu[j, 0], beta[j, 0], None, model.project)
        assert torch.allclose(new, trace[j + 1], rtol=0, atol=1e-12)
        assert torch.allclose(step, trace[j + 1], rtol=0, atol=1e-12)
        prev, W = W, new
    assert make_agent("pga_m", task, J=2, mu=(1.0, 0.5), beta=(0.9, 0.495)).name


def test_readme_grid_is_a_deprecated_alias_of_table1() -> None:
    from agents.classical.modular import GRIDS, README_MUS, TABLE1_MUS

    assert GRIDS["table1"] == GRIDS["readme"] == TABLE1_MUS == README_MUS
