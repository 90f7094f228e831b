"""A table of bad inputs driven through every env, native vector env and ``load_instance_set``.

Each probe asserts the error type (``ValueError``, or Gymnasium's ``ResetNeeded`` for calls out
of order) AND that the message names the argument at fault. The tables cover the constructor
keywords, ``reset(options={"instance": ...})`` (every instance field cropped, made non-finite,
made real, replaced by a numpy array, and the env-specific value rules), ``step`` actions,
``evaluate`` beamformers (type, shape, dtype, finiteness and feasibility), the vector envs'
seeds, options and batched actions, and damaged instance-set files. Hypothesis draws actions
of random shapes, dtypes and values, SNRs out of range and power excesses.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import beamgym
from beamgym.datasets import load_instance_set, make_instance_set, make_task, save_instance_set
from beamgym.structures import HybridBeamformer

ENV_IDS = list(beamgym.ENV_IDS)
FDD, FAR, NEAR, MOD, OUT = ENV_IDS
#: Small configurations (fast); OutageHybrid keeps its defaults (its sizes are small).
SMALL: dict[str, dict[str, Any]] = {
    FDD: {"channel": "rayleigh", "N": 4, "K": 4, "snr_db": 10.0},
    FAR: {"N": 8, "N_RF": 2, "K": 2},
    NEAR: {"K": 2, "S": 4, "n": 2},
    MOD: {"P": 2, "N": 3, "L": 2, "T": 3, "B": 1, "K": 3},
    OUT: {},
}
HYPOTHESIS = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

_ENVS: dict[str, Any] = {}


def _env(env_id: str):
    """One reset single env per id (module cache: the probes do not change its state)."""
    if env_id not in _ENVS:
        env = gym.make(env_id, **SMALL[env_id]).unwrapped
        env.reset(seed=0)
        _ENVS[env_id] = env
    return _ENVS[env_id]


def _names(message: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", message) is not None


#: Probes tried and probes that raised the expected error naming the argument.
PROBES = {"tried": 0, "clear": 0}


@pytest.fixture(autouse=True, scope="module")
def _report_count():
    yield
    print(f"\nenv bad-input probes: {PROBES['tried']} tried, {PROBES['clear']} clear")


def _expect(fn, name: str, error: type[Exception] = ValueError) -> None:
    PROBES["tried"] += 1
    with pytest.raises(error) as info:
        fn()
    assert _names(str(info.value), name), f"{name!r} not named in: {info.value}"
    PROBES["clear"] += 1


# ---- constructor keywords --------------------------------------------------------------------
COMMON_KWARGS = [
    ({"device": "tpu"}, "device"),
    ({"device": "cuda:notanumber"}, "device"),
    ({"device": 3.5}, "device"),
    ({"precision": "half"}, "precision"),
    ({"horizon": 0}, "horizon"),
    ({"horizon": 1.5}, "horizon"),
    ({"render_mode": "ansi"}, "render_mode"),
    ({"no_such_field": 1}, "no_such_field"),
]
ENV_KWARGS = {
    FDD: [
        ({"N": 0}, "N"),
        ({"K": 1.5}, "K"),
        ({"M": True}, "M"),
        ({"snr_db": 1e6}, "snr_db"),
        ({"snr_db": ()}, "snr_db"),
        ({"snr_db": (5.0, float("nan"))}, "snr_db"),
        ({"P": -1.0}, "P"),
        ({"channel": "los"}, "channel"),
        ({"csi_error": "huge"}, "csi_error"),
        ({"sigma_h2": -0.1}, "sigma_h2"),
        ({"sigma_aod": float("inf")}, "sigma_aod"),
        ({"placement": "everywhere"}, "placement"),
    ],
    FAR: [
        ({"K": 200}, "N_RF"),
        ({"N_RF": 100}, "N_RF"),
        ({"snr_db": 1e4}, "snr_db"),
        ({"analog": "lens"}, "analog"),
        ({"normalization": "paper"}, "normalization"),
        ({"analog": "phase-shifter", "placement": "single-cell"}, "placement"),
        ({"sigma_h2": 0.0}, "sigma_h2"),
        ({"n_paths": 0}, "n_paths"),
    ],
    NEAR: [
        ({"K": 200}, "K"),
        ({"K": 9, "S": 4, "n": 2}, "K"),
        ({"S": 0}, "S"),
        ({"n_subcarriers": 0}, "n_subcarriers"),
        ({"wavelength": -1.0}, "wavelength"),
        ({"bandwidth": 1e20}, "bandwidth"),
        ({"snr_db": 1e4}, "snr_db"),
        ({"r_min": 0.0}, "r_min"),
        ({"analog": "lens"}, "analog"),
        ({"channel_model": "ray-tracing"}, "channel_model"),
    ],
    MOD: [
        ({"T": 100}, "T"),
        ({"q_levels": 1}, "q_levels"),
        ({"zeta": 1.0}, "zeta"),
        ({"s_max": 5}, "s_max"),
        ({"snr_db": 500.0}, "snr_db"),
        ({"csi_nmse_db": 200.0}, "csi_nmse_db"),
        ({"constraint": "magic"}, "constraint"),
        ({"rho_s": 0.0}, "rho_s"),
    ],
    OUT: [
        ({"num_rf": 17}, "num_rf"),
        ({"num_users": 6}, "num_users"),
        ({"p_max_db": 500.0}, "p_max_db"),
        ({"p_out": 1.0}, "p_out"),
        ({"gamma_db_range": (10.0, 5.0)}, "gamma_db_range"),
        ({"csi": "oracle"}, "csi"),
        ({"n_fb_range": (0, 4)}, "n_fb_range"),
        ({"outage_penalty": -1.0}, "outage_penalty"),
        ({"reject_infeasible": 1}, "reject_infeasible"),
        ({"removal_rule": "oracle"}, "removal_rule"),
    ],
}
CONSTRUCTOR_CASES = [
    pytest.param(env_id, kw, name, id=f"{env_id.split('/')[1]}-{'-'.join(kw)}")
    for env_id in ENV_IDS
    for kw, name in COMMON_KWARGS + ENV_KWARGS[env_id]
]


@pytest.mark.parametrize(("env_id", "kwargs", "name"), CONSTRUCTOR_CASES)
def test_constructor_rejects(env_id: str, kwargs: dict, name: str) -> None:
    kw = {**SMALL[env_id], **kwargs}
    _expect(lambda: gym.make(env_id, **kw), name)


@pytest.mark.parametrize(("env_id", "kwargs", "name"), CONSTRUCTOR_CASES)
def test_vector_constructor_rejects(env_id: str, kwargs: dict, name: str) -> None:
    kw = {**SMALL[env_id], **kwargs}
    _expect(
        lambda: gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **kw),
        name,
    )


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"num_envs": 0}, "num_envs"), ({"autoreset_mode": "Sometimes"}, "autoreset_mode")],
)
def test_vector_only_keywords(env_id: str, kwargs: dict, name: str) -> None:
    cls = type(gym.make_vec(env_id, num_envs=1, vectorization_mode="vector_entry_point"))
    _expect(lambda: cls(**{"num_envs": 2, **SMALL[env_id], **kwargs}), name)


@HYPOTHESIS
@given(
    snr=st.one_of(
        st.floats(min_value=100.001, max_value=1e300),
        st.floats(max_value=-100.001, min_value=-1e300),
        st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    ),
    env_id=st.sampled_from(ENV_IDS[:4]),
)
def test_constructor_snr_out_of_range(snr: float, env_id: str) -> None:
    _expect(lambda: gym.make(env_id, **{**SMALL[env_id], "snr_db": snr}), "snr_db")


# ---- reset(options={"instance": ...}) ---------------------------------------------------------
def _instance(env_id: str, n: int = 1):
    return _env(env_id).task.sample(torch.Generator().manual_seed(0), n)


def _field_cases() -> list:
    cases = []
    for env_id in ENV_IDS:
        for f in dataclasses.fields(_env(env_id).task.instance_cls):
            for kind in ("shape", "nan", "real", "numpy"):
                cases.append(pytest.param(env_id, f.name, kind, id=f"{env_id[8:]}-{f.name}-{kind}"))
    return cases


def _damage(t: torch.Tensor, kind: str) -> Any:
    if kind == "shape":  # a cropped last axis, or an extra one for [B] fields
        return t[..., :-1] if t.ndim >= 2 else t.unsqueeze(-1)
    if kind == "nan":
        if not (t.is_floating_point() or t.is_complex()):
            return None
        out = t.clone(memory_format=torch.contiguous_format)
        out.view(-1)[0] = float("nan")
        return out
    if kind == "real":
        return t.real.clone() if t.is_complex() else None
    return t.numpy()


@pytest.mark.parametrize(("env_id", "field", "kind"), _field_cases())
def test_reset_rejects_damaged_instance_fields(env_id: str, field: str, kind: str) -> None:
    env = _env(env_id)
    inst = _instance(env_id)
    bad = _damage(getattr(inst, field), kind)
    if bad is None:
        pytest.skip(f"{kind} does not apply to {field}")
    broken = dataclasses.replace(inst, **{field: bad})
    _expect(lambda: env.reset(options={"instance": broken}), f"instance.{field}")


def _scaled(inst, **scales: float):
    return dataclasses.replace(inst, **{k: getattr(inst, k) * v for k, v in scales.items()})


def _set(inst, **values: float):
    return dataclasses.replace(
        inst, **{k: torch.full_like(getattr(inst, k), v) for k, v in values.items()}
    )


def _other_size(env_id: str, **kw):
    task = make_task(env_id, **{**SMALL[env_id], **kw})
    return task.sample(torch.Generator().manual_seed(0), 1)


VALUE_CASES = [
    (FDD, lambda i: _set(i, snr_db=1e6), "instance.snr_db"),
    (FDD, lambda i: _set(i, snr_db=-1e4), "instance.snr_db"),
    (FDD, lambda i: _set(i, power=2.0), "instance.power"),
    (FDD, lambda i: _set(i, power=-1.0), "instance.power"),
    (FDD, lambda i: _other_size(FDD, N=8), "instance.H"),
    (FAR, lambda i: _set(i, snr_db=1e4), "instance.snr_db"),
    (FAR, lambda i: _set(i, noise_var=0.0), "instance.noise_var"),
    (FAR, lambda i: _other_size(FAR, K=1), "instance.H"),
    (NEAR, lambda i: _set(i, snr_db=1e4), "instance.snr_db"),
    (NEAR, lambda i: _set(i, power=3.0), "instance.power"),
    (NEAR, lambda i: _other_size(NEAR, S=2), "instance.H"),
    (MOD, lambda i: _set(i, snr=-1.0), "instance.snr"),
    (MOD, lambda i: _set(i, snr=1e20), "instance.snr"),
    (MOD, lambda i: _other_size(MOD, K=2), "instance.H"),
    (OUT, lambda i: _scaled(i, gamma=-1.0), "instance.gamma"),
    (OUT, lambda i: _set(i, xi=0.0), "instance.xi"),
    (OUT, lambda i: _set(i, group=5), "instance.group"),
    (OUT, lambda i: _set(i, phi_x=3.0), "instance.phi_x"),
    (OUT, lambda i: dataclasses.replace(i, R=i.R + 1j * i.R.real), "instance.R"),
    (OUT, lambda i: _other_size(OUT, n_x=2, n_y=4, num_rf=4), "instance.h"),
    (OUT, lambda i: dataclasses.replace(i, h_est=i.h_est[..., :-1]), "instance.h_est"),
]


@pytest.mark.parametrize(
    ("env_id", "make_bad", "name"),
    [pytest.param(*c, id=f"{c[0][8:]}-{c[2]}-{k}") for k, c in enumerate(VALUE_CASES)],
)
def test_reset_rejects_instance_values(env_id: str, make_bad, name: str) -> None:
    env = _env(env_id)
    bad = make_bad(_instance(env_id))
    _expect(lambda: env.reset(options={"instance": bad}), name)
    envs = gym.make_vec(
        env_id, num_envs=1, vectorization_mode="vector_entry_point", **SMALL[env_id]
    )
    _expect(lambda: envs.reset(options={"instance": bad}), name)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_rejects_wrong_instance_objects_and_options(env_id: str) -> None:
    env = _env(env_id)
    _expect(lambda: env.reset(options={"instance": {"H": 1}}), "instance")
    _expect(lambda: env.reset(options={"instance": _instance(env_id, 2)}), "options['instance']")
    _expect(lambda: env.reset(options={"instnace": None}), "reset options")
    other = FDD if env_id != FDD else MOD
    _expect(lambda: env.reset(options={"instance": _instance(other)}), "instance")


# ---- step actions -----------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize(
    "kind", ["long", "short", "batched", "nan", "inf", "range", "int", "str", "complex"]
)
def test_step_rejects_bad_actions(env_id: str, kind: str) -> None:
    env = gym.make(env_id, **SMALL[env_id]).unwrapped
    env.reset(seed=0)
    dim = env.action_space.shape[0]
    a = np.zeros(dim, dtype=np.float32)
    bad = {
        "long": np.zeros(dim + 1, np.float32),
        "short": a[:-1],
        "batched": a[None].repeat(2, 0),
        "nan": np.where(np.arange(dim) == 0, np.nan, a).astype(np.float32),
        "inf": np.full(dim, np.inf, np.float32),
        "range": np.full(dim, 2.0, np.float32),
        "int": np.zeros(dim, np.int64),
        "str": "beam",
        "complex": a.astype(np.complex64),
    }[kind]
    _expect(lambda: env.step(bad), "action")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_out_of_order(env_id: str) -> None:
    env = gym.make(env_id, **SMALL[env_id]).unwrapped
    a = np.zeros(env.action_space.shape[0], np.float32)
    _expect(lambda: env.step(a), "reset()", gym.error.ResetNeeded)
    env.reset(seed=0)
    env.step(a)
    _expect(lambda: env.step(a), "reset()", gym.error.ResetNeeded)


@HYPOTHESIS
@given(data=st.data(), env_id=st.sampled_from(ENV_IDS))
def test_step_rejects_random_bad_actions(data, env_id: str) -> None:
    env = _env(env_id)
    env.reset(seed=0)
    dim = env.action_space.shape[0]
    shape = data.draw(
        hnp.array_shapes(min_dims=1, max_dims=2, max_side=dim + 2).filter(lambda s: s != (dim,)),
        label="shape",
    )
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.int32, np.bool_]), label="dtype")
    arr = data.draw(hnp.arrays(dtype, shape), label="action")
    _expect(lambda: env.step(arr), "action")


@HYPOTHESIS
@given(
    env_id=st.sampled_from(ENV_IDS),
    index=st.integers(0, 10_000),
    value=st.one_of(
        st.floats(min_value=1.001, max_value=1e30),
        st.floats(max_value=-1.001, min_value=-1e30),
        st.sampled_from([float("nan"), float("inf")]),
    ),
)
def test_step_rejects_one_bad_entry(env_id: str, index: int, value: float) -> None:
    env = _env(env_id)
    env.reset(seed=0)
    a = np.zeros(env.action_space.shape[0], np.float32)
    a[index % a.size] = value
    _expect(lambda: env.step(a), "action")


# ---- evaluate beamformers ---------------------------------------------------------------------
def _beamformer(env_id: str):
    env = _env(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)
    return env, env.action_to_beamformer(env.action_space.sample())


def _damaged_tensor(t: torch.Tensor, kind: str) -> Any:
    return {
        "numpy": lambda: t.numpy(),
        "shape": lambda: t[..., :-1],
        "batch": lambda: torch.cat([t, t]),
        "dtype": lambda: t.to(torch.complex128),
        "real": lambda: t.real.clone(),
        "nan": lambda: torch.full_like(t, complex("nan+0j")),
    }[kind]()


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("kind", ["numpy", "shape", "batch", "dtype", "real", "nan"])
def test_evaluate_rejects_bad_beamformers(env_id: str, kind: str) -> None:
    env, bf = _beamformer(env_id)
    if isinstance(bf, HybridBeamformer):
        for part in ("analog", "digital"):
            bad = dataclasses.replace(bf, **{part: _damaged_tensor(getattr(bf, part), kind)})
            name = f"beamformer.{part}"
            if kind == "batch" and env_id != OUT:
                name = "beamformer"  # the batch mismatch is stated for the pair
            _expect(lambda bad=bad: env.evaluate(bad), name)
    else:
        if env_id == MOD and kind == "dtype":
            pytest.skip("ModularUplink casts the panels to its precision (complex128 is valid)")
        _expect(lambda: env.evaluate(_damaged_tensor(bf, kind)), "beamformer")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_evaluate_rejects_wrong_types_and_infeasible_designs(env_id: str) -> None:
    env, bf = _beamformer(env_id)
    _expect(lambda: env.evaluate([1, 2, 3]), "beamformer")
    loud = (
        dataclasses.replace(bf, digital=100 * bf.digital)
        if isinstance(bf, HybridBeamformer)
        else 100 * bf
    )
    if env_id == NEAR:  # the analog part is fixed; only the digital part carries power
        loud = HybridBeamformer(analog=bf.analog, digital=100 * bf.digital)
    _expect(lambda: env.evaluate(loud), "beamformer:")
    assert not bool(env.evaluate(loud, check_feasible=False)["feasible"].any())
    assert bool(env.evaluate(bf)["feasible"].all())
    envs = gym.make_vec(
        env_id, num_envs=1, vectorization_mode="vector_entry_point", **SMALL[env_id]
    )
    envs.reset(seed=0)
    _expect(lambda: envs.unwrapped.evaluate(loud, env.instance), "beamformer:")


@HYPOTHESIS
@given(scale=st.floats(min_value=1.001, max_value=1e6), env_id=st.sampled_from([FDD, FAR, NEAR]))
def test_evaluate_names_any_power_excess(scale: float, env_id: str) -> None:
    env, bf = _beamformer(env_id)
    s = scale**0.5
    loud = HybridBeamformer(bf.analog, bf.digital * s) if env_id != FDD else bf * s
    with pytest.raises(ValueError, match=r"^beamformer: .*exceeds the budget"):
        env.evaluate(loud)


# ---- native vector envs -------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_env_rejects_bad_calls(env_id: str) -> None:
    envs = gym.make_vec(
        env_id, num_envs=2, vectorization_mode="vector_entry_point", **SMALL[env_id]
    )
    dim = envs.single_action_space.shape[0]
    _expect(lambda: envs.step(np.zeros((2, dim), np.float32)), "reset()", gym.error.ResetNeeded)
    _expect(lambda: envs.reset(seed=[1, 2, 3]), "seed")
    _expect(lambda: envs.reset(seed="0"), "seed")
    _expect(lambda: envs.reset(seed=-1), "seed")
    _expect(lambda: envs.reset(seed=[0, 1.5]), "seed[1]")
    _expect(lambda: envs.reset(options={"instance": _instance(env_id, 3)}), "options['instance']")
    _expect(lambda: envs.reset(options={"reset_mask": [True, True]}), "options['reset_mask']")
    _expect(
        lambda: envs.reset(options={"reset_mask": np.array([True, False])}),
        "options['reset_mask']",
    )
    _expect(lambda: envs.reset(options={"seed": 1}), "reset options")
    envs.reset(seed=0)
    _expect(lambda: envs.step(np.zeros((3, dim), np.float32)), "action")
    _expect(lambda: envs.step(np.zeros(dim, np.float32)), "action")
    _expect(lambda: envs.step(np.full((2, dim), 1.5, np.float32)), "action")
    _expect(lambda: envs.step(np.full((2, dim), np.nan, np.float32)), "action")


# ---- instance-set files -------------------------------------------------------------------------
class _RunsCode:
    """A pickle payload that would create a file if it were ever unpickled unsafely."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize(
    "kind", ["truncated", "random", "code-torch", "code-pickle", "missing", "foreign", "empty"]
)
def test_load_instance_set_rejects_damaged_files(tmp_path, kind: str) -> None:
    good = tmp_path / "good.pt"
    save_instance_set(good, make_instance_set(FDD, 2, 0, **SMALL[FDD]))
    path = tmp_path / f"{kind}.pt"
    marker = tmp_path / "code-ran"
    if kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "code-torch":
        torch.save({"format_version": 1, "x": _RunsCode(str(marker))}, path)
    elif kind == "code-pickle":
        path.write_bytes(pickle.dumps(_RunsCode(str(marker))))
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(ValueError) as info:
        load_instance_set(path)
    assert str(path) in str(info.value), info.value
    assert not marker.exists() and not os.path.exists(str(marker))
    assert len(load_instance_set(good)) == 2  # the intact file still loads
