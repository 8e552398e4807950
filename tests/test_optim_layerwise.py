"""LAMB, LARS, Fromage, NovoGrad and SM3 against Optax, run live (tests/optax_oracle.py).

Each trajectory equals Optax's over 200 float64 steps to rtol 1e-9 on the oracle's four
problems, with the defaults and with every option changed; the weight-decay and
trust-ratio masks are compared on a problem whose params are a dict of leaves.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from descend.errors import DescendTypeError, InputError
from optax_oracle import (
    ALL,
    N_STEPS,
    RTOL,
    assert_matches_optax,
    assert_reaches_minima,
    assert_second_call_compiles_nothing,
)

optax = pytest.importorskip("optax")

NAMES = ("lamb", "lars", "fromage", "novograd", "sm3")


def decaying(count):
    """A learning-rate schedule both libraries take: 0.02 shrinking by 1% a step."""
    return 0.02 * 0.99**count


@dataclass(frozen=True)
class Case:
    id: str
    ours: dict[str, Any]
    reference: Any  # () -> an Optax transformation
    problems: tuple[str, ...] = ALL


CASES = [
    Case("lamb-defaults", {"name": "lamb"}, lambda: optax.lamb(1e-3)),
    Case(
        "lamb-every-option",
        {
            "name": "lamb",
            "lr": decaying,
            "betas": (0.8, 0.99),
            "eps": 1e-5,
            "eps_root": 1e-10,
            "weight_decay": 0.05,
            "maximize": True,
        },
        lambda: optax.lamb(decaying, b1=0.8, b2=0.99, eps=1e-5, eps_root=1e-10, weight_decay=0.05),
    ),
    Case("lars-defaults", {"name": "lars"}, lambda: optax.lars(1.0)),
    Case(
        "lars-every-option",
        {
            "name": "lars",
            "lr": 0.5,
            "momentum": 0.8,
            "nesterov": True,
            "weight_decay": 0.01,
            "trust_coefficient": 0.01,
            "eps": 1e-3,
            "maximize": True,
        },
        lambda: optax.lars(
            0.5, weight_decay=0.01, trust_coefficient=0.01, eps=1e-3, momentum=0.8, nesterov=True
        ),
    ),
    Case(
        "lars-schedule-no-momentum",
        {"name": "lars", "lr": lambda count: 5.0 * 0.99**count, "momentum": 0.0},
        lambda: optax.lars(lambda count: 5.0 * 0.99**count, momentum=0.0),
    ),
    Case("fromage-defaults", {"name": "fromage"}, lambda: optax.fromage(0.01)),
    Case(
        "fromage-every-option",
        {"name": "fromage", "lr": decaying, "min_norm": 1e-3, "maximize": True},
        lambda: optax.fromage(decaying, min_norm=1e-3),
    ),
    Case("novograd-defaults", {"name": "novograd"}, lambda: optax.novograd(1e-3)),
    Case(
        "novograd-every-option",
        {
            "name": "novograd",
            "lr": decaying,
            "betas": (0.8, 0.5),
            "eps": 1e-4,
            "eps_root": 1e-8,
            "weight_decay": 0.01,
            "maximize": True,
        },
        lambda: optax.novograd(
            decaying, b1=0.8, b2=0.5, eps=1e-4, eps_root=1e-8, weight_decay=0.01
        ),
    ),
    Case("sm3-defaults", {"name": "sm3"}, lambda: optax.sm3(1.0)),
    Case(
        "sm3-every-option",
        {"name": "sm3", "lr": 0.3, "momentum": 0.5, "maximize": True},
        lambda: optax.sm3(0.3, momentum=0.5),
    ),
    # optax.sm3 takes no schedule; its pieces with Optax's scaling by a schedule do.
    Case(
        "sm3-schedule",
        {"name": "sm3", "lr": decaying},
        lambda: optax.chain(optax.scale_by_sm3(0.9), optax.scale_by_learning_rate(decaying)),
    ),
]


def build(settings: dict[str, Any]) -> ds.optim.Optimizer:
    settings = dict(settings)
    return ds.optim.get(settings.pop("name"), **settings)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_trajectory_matches_optax(case):
    assert_matches_optax(build(case.ours), case.reference(), case.problems)


# ------------------------------------------------------ masks, on a dict of leaves

_rng = np.random.default_rng(3)
_A = _rng.standard_normal((20, 4))
_B = _rng.standard_normal((20, 3))
TREE_X0 = {
    "w": _rng.standard_normal((4, 3)),
    "b": _rng.standard_normal(3),
    "s": np.float64(1.5),
}


def tree_loss(params):
    """Least squares of ``s * (A w) + b``: a weight matrix, a bias and a scalar gain."""
    prediction = params["s"] * (jnp.asarray(_A) @ params["w"]) + params["b"]
    return 0.5 * jnp.mean((prediction - jnp.asarray(_B)) ** 2)


def _run(step, init, n_steps=N_STEPS):
    value_and_grad = jax.value_and_grad(tree_loss)

    def body(carry, _):
        params, state = carry
        value, grads = value_and_grad(params)
        params, state = step(params, grads, state, value)
        return (params, state), jax.flatten_util.ravel_pytree(params)[0]

    with jax.enable_x64(True):
        x0 = jax.tree.map(jnp.asarray, TREE_X0)
        run = jax.jit(lambda x: jax.lax.scan(body, (x, init(x)), None, length=n_steps)[1])
        return np.asarray(run(x0))


def ours_on_tree(opt):
    return _run(lambda p, g, s, value: opt.step(p, g, s, value=value), opt.init)


def optax_on_tree(transform):
    def step(params, grads, state, value):
        updates, state = transform.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return _run(step, transform.init)


def assert_tree_matches(opt, transform):
    ours, theirs = ours_on_tree(opt), optax_on_tree(transform)
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=1e-12)
    return ours


W_ONLY = {"w": True, "b": False, "s": False}
BIAS_AND_GAIN = {"w": False, "b": True, "s": True}

# The same choice of leaves in each form descend takes: Optax's pytree and function of
# the params, and descend's "weights" and function of (path, leaf).
W_ONLY_FORMS = {
    "pytree": W_ONLY,
    "weights": "weights",
    "function-of-params": lambda params: {key: key == "w" for key in params},
    "function-of-path-and-leaf": lambda path, leaf: path == "w",
}


@pytest.mark.parametrize("form", list(W_ONLY_FORMS))
def test_lamb_weight_decay_mask_matches_optax_mask(form):
    opt = ds.optim.lamb(0.01, weight_decay=0.1, weight_decay_mask=W_ONLY_FORMS[form])
    masked = assert_tree_matches(opt, optax.lamb(0.01, weight_decay=0.1, mask=W_ONLY))
    unmasked = ours_on_tree(ds.optim.lamb(0.01, weight_decay=0.1))
    assert np.abs(masked - unmasked).max() > 1e-3  # the mask changed the path


@pytest.mark.parametrize("form", list(W_ONLY_FORMS))
def test_lars_masks_match_optax_masks(form):
    opt = ds.optim.lars(
        5.0,
        weight_decay=0.1,
        weight_decay_mask=W_ONLY_FORMS[form],
        trust_ratio_mask=W_ONLY_FORMS[form],
        nesterov=True,
    )
    reference = optax.lars(
        5.0, weight_decay=0.1, weight_decay_mask=W_ONLY, trust_ratio_mask=W_ONLY, nesterov=True
    )
    masked = assert_tree_matches(opt, reference)
    unmasked = ours_on_tree(ds.optim.lars(5.0, weight_decay=0.1, nesterov=True))
    assert np.abs(masked - unmasked).max() > 1e-3


def test_lars_masks_apart_match_optax():
    """Decay on the weights only, the trust ratio on the bias and gain only."""
    opt = ds.optim.lars(
        0.3,
        weight_decay=0.1,
        weight_decay_mask="weights",
        trust_ratio_mask=BIAS_AND_GAIN,
        maximize=True,
    )
    # maximize=True ascends -f: Optax, without maximize, descends f along the same path.
    ours = _run(lambda p, g, s, value: opt.step(p, jax.tree.map(jnp.negative, g), s), opt.init)
    theirs = optax_on_tree(
        optax.lars(0.3, weight_decay=0.1, weight_decay_mask=W_ONLY, trust_ratio_mask=BIAS_AND_GAIN)
    )
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=1e-12)


def test_novograd_weight_decay_mask_equals_optax_partition():
    """Optax's NovoGrad has no mask; its leaves are independent, so Optax's partition
    into a decayed and an undecayed NovoGrad is the reference."""
    opt = ds.optim.novograd(0.01, weight_decay=0.1, weight_decay_mask=W_ONLY_FORMS["weights"])
    reference = optax.partition(
        {"decayed": optax.novograd(0.01, weight_decay=0.1), "kept": optax.novograd(0.01)},
        {"w": "decayed", "b": "kept", "s": "kept"},
    )
    masked = assert_tree_matches(opt, reference)
    unmasked = ours_on_tree(ds.optim.novograd(0.01, weight_decay=0.1))
    assert np.abs(masked - unmasked).max() > 1e-4


@pytest.mark.parametrize("name", ["lamb", "lars", "fromage", "novograd"])
def test_default_dict_of_leaves_matches_optax(name):
    """Norms and trust ratios are per leaf, as in Optax, never over the whole tree."""
    lr = {"lamb": 0.01, "lars": 5.0, "fromage": 0.01, "novograd": 0.01}[name]
    assert_tree_matches(ds.optim.get(name, lr=lr), getattr(optax, name)(lr))


def test_sm3_scalar_param_is_a_one_entry_vector():
    """Optax's SM3 fails on a scalar; ours steps it as the vector of its one entry."""

    def fn(x):
        return (x - 2.0) ** 2 * (1.0 + 0.1 * x**2)

    with jax.enable_x64(True):
        opt = ds.optim.sm3(0.5)
        x, state = jnp.asarray(0.3), opt.init(jnp.asarray(0.3))
        reference = optax.sm3(0.5)
        v = jnp.asarray([0.3])
        ref_state = reference.init(v)
        for _ in range(50):
            x, state = opt.step(x, jax.grad(fn)(x), state)
            updates, ref_state = reference.update(jax.grad(lambda v: fn(v[0]))(v), ref_state, v)
            v = optax.apply_updates(v, updates)
            np.testing.assert_allclose(float(x), float(v[0]), rtol=RTOL)
    assert abs(float(x) - 0.3) > 0.1


def test_sm3_refuses_complex_params_as_optax_does():
    opt = ds.optim.sm3()
    with pytest.raises(DescendTypeError, match="complex"):
        opt.init(jnp.ones(3, jnp.complex64))


# ----------------------------------------------------------- Optax's own alias test

# The learning rates of Optax's alias_test.py for these aliases.
ALIAS_TEST_LR = {"lamb": 1e-3, "lars": 1.0, "fromage": 5e-3, "novograd": 1e-3, "sm3": 1.0}


@pytest.mark.parametrize("name", NAMES)
def test_reaches_parabola_and_rosenbrock_minima_in_float32(name):
    assert_reaches_minima(ds.optim.get(name, lr=ALIAS_TEST_LR[name]))


@pytest.mark.parametrize("name", NAMES)
def test_second_call_compiles_nothing(name):
    assert_second_call_compiles_nothing(lambda: ds.optim.get(name, lr=ALIAS_TEST_LR[name]))


# ------------------------------------------------------------------- the front doors

FRONT_DOOR_LR = {"lamb": 0.05, "lars": 5.0, "fromage": 0.05, "novograd": 0.05, "sm3": 0.5}


@pytest.mark.parametrize("name", NAMES)
def test_minimize_runs_and_decreases(name):
    def f(x):
        return jnp.sum((x - jnp.array([1.0, -2.0, 0.5])) ** 2)

    x0 = jnp.array([3.0, 1.0, -1.0])
    result = ds.minimize(f, x0, optimizer=ds.optim.get(name, lr=FRONT_DOOR_LR[name]), max_iter=300)
    assert np.all(np.isfinite(np.asarray(result.x)))
    assert float(result.fun) < float(f(x0))


@pytest.mark.parametrize("name", NAMES)
def test_fit_logistic_runs_and_the_loss_goes_down(name):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    y = (X @ np.array([1.5, -2.0, 0.5]) + 0.3 * rng.standard_normal(200) > 0).astype(int)
    result = ds.fit(
        "logistic",
        X,
        y,
        optimizer=name,
        lr=FRONT_DOOR_LR[name],
        epochs=15,
        batch_size=32,
        seed=0,
        verbose=0,
    )
    losses = np.asarray(result.history["loss"])
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]


# ---------------------------------------------------------- names, defaults, checks

# Our hyperparameter -> Optax's, where the names differ.
OPTAX_NAME = {"betas": ("b1", "b2"), "weight_decay_mask": "mask"}


@pytest.mark.parametrize("name", NAMES)
def test_defaults_are_optaxs(name):
    reference = inspect.signature(getattr(optax, name)).parameters
    ours = inspect.signature(getattr(ds.optim, name)).parameters
    for key, parameter in ours.items():
        if key in ("lr", "maximize"):  # Optax's learning_rate has no default; no maximize
            continue
        if name == "novograd" and key == "weight_decay_mask":  # an addition: no mask
            assert parameter.default is None
            continue
        theirs = OPTAX_NAME.get(key, key)
        if name == "lars" and key.endswith("_mask"):
            theirs = key  # Optax's default True (every leaf) is None here
            assert reference[theirs].default is True and parameter.default is None
            continue
        if isinstance(theirs, tuple):
            assert parameter.default == tuple(reference[k].default for k in theirs)
        else:
            assert parameter.default == reference[theirs].default, key


INVALID = [
    ("lamb", {"lr": 0.0}, "lr"),
    ("lamb", {"betas": (0.9, 1.0)}, "betas"),
    ("lamb", {"eps_root": -1.0}, "eps_root"),
    ("lamb", {"weight_decay_mask": "biases"}, "weight_decay_mask"),
    ("lars", {"momentum": -0.1}, "momentum"),
    ("lars", {"trust_coefficient": 0.0}, "trust_coefficient"),
    ("lars", {"nesterov": "yes"}, "nesterov"),
    ("lars", {"trust_ratio_mask": {"w": 1}}, "trust_ratio_mask"),
    ("fromage", {"min_norm": -1e-6}, "min_norm"),
    ("fromage", {"maximize": 1}, "maximize"),
    ("novograd", {"betas": (-0.1, 0.25)}, "betas"),
    ("novograd", {"weight_decay": -0.1}, "weight_decay"),
    ("sm3", {"momentum": 1.0}, "momentum"),
    ("sm3", {"lr": -1.0}, "lr"),
]


@pytest.mark.parametrize(
    ("name", "hyperparams", "param"),
    INVALID,
    ids=[f"{name}-{param}-{i}" for i, (name, _, param) in enumerate(INVALID)],
)
def test_invalid_hyperparameter_raises_input_error_naming_it(name, hyperparams, param):
    with pytest.raises(InputError, match=param):
        ds.optim.get(name, **hyperparams)


def test_trust_ratio_mask_that_does_not_fit_is_refused_by_init_naming_it():
    opt = ds.optim.lars(trust_ratio_mask={"w": True, "c": False})
    with pytest.raises(InputError, match="trust_ratio_mask"):
        opt.init(jax.tree.map(jnp.asarray, TREE_X0))


def test_available_lists_trust_ratio_mask_as_a_leaf_setting():
    (row,) = [row for row in ds.optim.available() if row["name"] == "lars"]
    assert row["leaf_settings"] == {"weight_decay_mask": None, "trust_ratio_mask": None}
    assert "trust_ratio_mask" not in row["hyperparams"]
