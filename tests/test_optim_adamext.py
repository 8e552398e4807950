"""Adan, AMSGrad, AdamaxW, NAdamW and Yogi (descend.optim.adam_extended) against Optax.

Each trajectory is compared live with its Optax alias over 200 float64 steps to rtol
1e-9, with default hyperparameters and with a set where every flag and option is
changed (``maximize=True`` too), on the four problems of ``optax_oracle``.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from descend.errors import InputError
from optax_oracle import (
    ALL,
    PROBLEMS,
    assert_matches,
    assert_matches_optax,
    assert_reaches_minima,
    assert_second_call_compiles_nothing,
    descend_trajectory,
    optax_trajectory,
)

optax = pytest.importorskip("optax")

NAMES = ("adan", "amsgrad", "adamaxw", "nadamw", "yogi")


def on_matrices(path, leaf):
    """descend's form of a mask that decays only the matrix-shaped leaves."""
    return leaf.ndim >= 2


def optax_on_matrices(params):
    """The same mask in Optax's form."""
    return jax.tree.map(lambda leaf: leaf.ndim >= 2, params)


def decaying(count):
    """A learning-rate schedule, the same function given to both."""
    return 0.02 / (1.0 + 0.01 * count)


def adan_changed(maximize):
    return ds.optim.adan(
        lr=0.02,
        betas=(0.9, 0.8, 0.95),
        eps=1e-6,
        eps_root=1e-10,
        weight_decay=0.1,
        maximize=maximize,
        weight_decay_mask=on_matrices,
    )


def optax_adan_changed():
    return optax.adan(
        0.02,
        b1=0.9,
        b2=0.8,
        b3=0.95,
        eps=1e-6,
        eps_root=1e-10,
        weight_decay=0.1,
        mask=optax_on_matrices,
    )


# Adan with these settings amplifies rounding chaotically on the logistic problem once
# it is near its minimum (gradient norm below ~1e-3, from step ~100): a change of the
# start by one ulp grows to 8e-13 by step 110, 6e-8 by step 120 and 1e-3 by step 180
# (x2 to x3 a step), on the matrix problem to 8e-12 by step 190. Minimizing, ours and
# Optax's agree bit for bit over all 200 steps; maximizing, the gradient of -f differs
# from Optax's negated gradient of f in the last bit (XLA rounds the two programs
# differently), so those two problems are compared over the 100 steps before the growth.
STEPS = {
    "adan-changed-maximize": {"quadratic": 200, "logistic": 100, "rosenbrock": 200, "matrix": 100}
}

# (id, ours, Optax's): each non-default set changes every hyperparameter the alias has.
# The masks decay the matrix problem's leaf and leave the vector problems' alone, so both
# branches of the mask run.
CASES = [
    ("adan-changed", lambda: adan_changed(False), optax_adan_changed),
    ("adan-changed-maximize", lambda: adan_changed(True), optax_adan_changed),
    (
        "adan-schedule-decay-all",
        lambda: ds.optim.adan(lr=decaying, weight_decay=0.05),
        lambda: optax.adan(decaying, weight_decay=0.05),
    ),
    *[
        (
            f"amsgrad-mu{mu}-nu{nu}",
            lambda mu=mu, nu=nu: ds.optim.amsgrad(
                lr=0.02,
                betas=(0.8, 0.99),
                eps=1e-6,
                eps_root=1e-12,
                bias_correction_mu=mu,
                bias_correction_nu=nu,
                maximize=True,
            ),
            lambda mu=mu, nu=nu: optax.amsgrad(
                0.02,
                b1=0.8,
                b2=0.99,
                eps=1e-6,
                eps_root=1e-12,
                bias_correction_mu=mu,
                bias_correction_nu=nu,
            ),
        )
        for mu, nu in [(True, True), (False, True), (True, False), (False, False)]
    ],
    (
        "adamaxw-changed",
        lambda: ds.optim.adamaxw(
            lr=0.02,
            betas=(0.8, 0.99),
            eps=1e-6,
            weight_decay=0.1,
            maximize=True,
            weight_decay_mask=on_matrices,
        ),
        lambda: optax.adamaxw(
            0.02, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1, mask=optax_on_matrices
        ),
    ),
    *[
        (
            f"nadamw-nesterov{nesterov}",
            lambda nesterov=nesterov: ds.optim.nadamw(
                lr=decaying,
                betas=(0.8, 0.99),
                eps=1e-6,
                eps_root=1e-12,
                weight_decay=0.1,
                nesterov=nesterov,
                maximize=True,
                weight_decay_mask=on_matrices,
            ),
            lambda nesterov=nesterov: optax.nadamw(
                decaying,
                b1=0.8,
                b2=0.99,
                eps=1e-6,
                eps_root=1e-12,
                weight_decay=0.1,
                mask=optax_on_matrices,
                nesterov=nesterov,
            ),
        )
        for nesterov in (True, False)
    ],
    (
        "yogi-changed",
        lambda: ds.optim.yogi(lr=0.05, betas=(0.8, 0.99), eps=1e-4, maximize=True),
        lambda: optax.yogi(0.05, b1=0.8, b2=0.99, eps=1e-4),
    ),
]


@pytest.mark.parametrize("name", NAMES)
def test_defaults_match_optax_on_all_problems(name):
    ours = ds.optim.get(name)
    reference = getattr(optax, name)(ours.hyperparams["lr"])
    assert_matches_optax(ours, reference, ALL)


@pytest.mark.parametrize(("case", "ours", "theirs"), CASES, ids=[case[0] for case in CASES])
def test_every_option_matches_optax_on_all_problems(case, ours, theirs):
    ours, theirs = ours(), theirs()
    if case not in STEPS:
        assert_matches_optax(ours, theirs, ALL)
        return
    sign = -1.0 if ours.hyperparams["maximize"] else 1.0
    for name, n_steps in STEPS[case].items():
        expected = optax_trajectory(theirs, PROBLEMS[name], n_steps=n_steps)
        assert_matches(
            ours, lambda p, s, expected=expected: expected, (name,), n_steps=n_steps, sign=sign
        )


# ------------------------------------------------------------------ masks on a pytree

_RNG = np.random.default_rng(5)
_A = _RNG.standard_normal((20, 4))
_B = _RNG.standard_normal((20, 3))
_START = {"w": _RNG.standard_normal((4, 3)), "b": _RNG.standard_normal(3)}


def _affine_loss(params):
    return 0.5 * jnp.sum((jnp.asarray(_A) @ params["w"] + params["b"] - jnp.asarray(_B)) ** 2) / 20


def _run(init, update, n_steps=200):
    """Params after each of ``n_steps`` steps of ``update(params, grads, state)``."""

    def body(carry, _):
        params, state = carry
        params, state = update(params, jax.grad(_affine_loss)(params), state)
        return (params, state), params

    with jax.enable_x64(True):
        start = jax.tree.map(jnp.asarray, _START)
        run = jax.jit(lambda p: jax.lax.scan(body, (p, init(p)), None, length=n_steps)[1])
        return jax.tree.map(np.asarray, run(start))


def _optax_run(transform):
    def update(params, grads, state):
        updates, state = transform.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return _run(transform.init, update)


@pytest.mark.parametrize("name", ["adan", "adamaxw", "nadamw"])
@pytest.mark.parametrize("mask", ["weights", {"w": True, "b": False}], ids=["weights", "tree"])
def test_decay_mask_on_a_pytree_matches_optax_mask(name, mask):
    """Optax's ``mask={"w": True, "b": False}`` is ``weight_decay_mask`` "weights" or the
    same tree; the bias is then stepped as without decay."""
    ours = ds.optim.get(name, lr=0.02, weight_decay=0.5, weight_decay_mask=mask)
    theirs = _optax_run(getattr(optax, name)(0.02, weight_decay=0.5, mask={"w": True, "b": False}))
    path = _run(ours.init, ours.step)
    for key in ("w", "b"):
        np.testing.assert_allclose(path[key], theirs[key], rtol=1e-9, atol=1e-12, err_msg=key)
    decay_all = ds.optim.get(name, lr=0.02, weight_decay=0.5)
    unmasked = _run(decay_all.init, decay_all.step)
    assert np.abs(unmasked["b"] - path["b"]).max() > 1e-3  # the mask changed the bias's path


# ------------------------------------------------------- AMSGrad: Optax's versus torch's


def test_amsgrad_differs_from_adams_amsgrad_on_every_problem():
    """``amsgrad`` (Optax's, equal to it above) and ``adam(amsgrad=True)`` (torch's,
    equal to ``torch.optim.Adam(amsgrad=True)`` in test_optim_reference) take other paths
    with the same hyperparameters."""
    for name in ALL:
        optax_style = descend_trajectory(ds.optim.amsgrad(lr=0.02), PROBLEMS[name])
        torch_style = descend_trajectory(ds.optim.adam(lr=0.02, amsgrad=True), PROBLEMS[name])
        np.testing.assert_allclose(optax_style[0], torch_style[0], rtol=1e-12)  # same first step
        deviation = np.abs(optax_style - torch_style).max() / np.abs(torch_style).max()
        assert deviation > 1e-3, (name, deviation)


def test_amsgrad_keeps_the_maximum_of_debiased_moments_adam_of_raw_ones():
    """After one large gradient then small ones, Optax's maximum keeps the first step's
    debiased moment g_1^2 = 100, torch's is the last raw moment over the current
    correction (the raw moments still grow): 17 times smaller after 20 steps."""
    beta2 = 0.999
    grads = np.array([10.0] + [1.0] * 19)
    optax_style, torch_style = ds.optim.amsgrad(), ds.optim.adam(amsgrad=True)
    with jax.enable_x64(True):
        x = jnp.zeros(())
        ours, theirs = optax_style.init(x), torch_style.init(x)
        for g in grads:
            _, ours = optax_style.step(x, jnp.asarray(g), ours)
            _, theirs = torch_style.step(x, jnp.asarray(g), theirs)
    raw = np.zeros(len(grads))  # v_t from its recurrence
    for t, g in enumerate(grads):
        raw[t] = (raw[t - 1] if t else 0.0) * beta2 + (1 - beta2) * g * g
    corrections = 1 - beta2 ** np.arange(1, len(grads) + 1)
    optax_max = np.max(raw / corrections)  # each moment debiased at its own step
    torch_max = np.max(raw) / corrections[-1]  # the raw maximum, debiased now
    np.testing.assert_allclose(float(ours.max_exp_avg_sq), optax_max, rtol=1e-12)
    torch_kept = float(theirs.max_exp_avg_sq) / corrections[-1]
    np.testing.assert_allclose(torch_kept, torch_max, rtol=1e-12)
    assert optax_max == pytest.approx(100.0)
    assert optax_max > 10 * torch_max


def test_nadamw_without_nesterov_is_adamw_up_to_rounding():
    """``nadamw(nesterov=False)`` is ``optax.adamw``, which is torch's AdamW (``adamw``,
    equal to ``torch.optim.AdamW`` in test_optim_reference) with Optax's rounding."""
    for name in ALL:
        optax_style = ds.optim.nadamw(lr=0.01, weight_decay=0.01, nesterov=False)
        torch_style = ds.optim.adamw(lr=0.01, weight_decay=0.01)
        np.testing.assert_allclose(
            descend_trajectory(optax_style, PROBLEMS[name]),
            descend_trajectory(torch_style, PROBLEMS[name]),
            rtol=1e-9,
            atol=1e-12,
            err_msg=name,
        )


# ------------------------------------------------------------ Optax's alias test and JAX


# Optax's alias_test learning rates.
ALIAS_TEST_LR = {"adan": 1e-1, "amsgrad": 1e-1, "adamaxw": 1e-1, "nadamw": 1e-2, "yogi": 1e-1}


@pytest.mark.parametrize("name", NAMES)
def test_reaches_the_parabola_and_rosenbrock_minima_in_float32(name):
    assert_reaches_minima(ds.optim.get(name, lr=ALIAS_TEST_LR[name]))


@pytest.mark.parametrize("name", NAMES)
def test_second_minimize_with_an_equal_optimizer_compiles_nothing(name):
    assert_second_call_compiles_nothing(lambda: ds.optim.get(name, lr=0.01))


def test_second_minimize_with_an_equal_masked_optimizer_compiles_nothing():
    assert_second_call_compiles_nothing(
        lambda: ds.optim.nadamw(lr=0.01, weight_decay=0.1, weight_decay_mask=on_matrices)
    )


@pytest.mark.parametrize("name", NAMES)
def test_minimize_and_fit_run_by_name(name):
    def f(x):
        return jnp.sum((x - 1.0) ** 2) + 0.1 * jnp.sum(x**4)

    x0 = jnp.array([3.0, -2.0])
    result = ds.minimize(f, x0, optimizer=name, max_iter=300)
    assert np.isfinite(result.fun) and result.fun < float(f(x0))

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]) > 0).astype(np.float64)
    fitted = ds.fit("logistic", X, y, optimizer=name, lr=0.05, epochs=5, verbose=0)
    losses = fitted.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


# ------------------------------------------------------------ names, defaults, errors

# Optax's argument for each of ours, where the names differ.
OPTAX_ARGUMENT = {"weight_decay_mask": "mask"}


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameters_are_optaxs_with_its_defaults(name):
    reference = inspect.signature(getattr(optax, name)).parameters
    ours = dict(inspect.signature(getattr(ds.optim, name)).parameters)
    betas = ours.pop("betas").default
    assert betas == tuple(reference[f"b{i + 1}"].default for i in range(len(betas)))
    del ours["lr"], ours["maximize"]  # learning_rate has no default; maximize is ours
    for key, parameter in ours.items():
        theirs = reference[OPTAX_ARGUMENT.get(key, key)]
        assert parameter.default == theirs.default, (key, parameter.default, theirs.default)
    # Everything Optax offers is here but the dtype of the momentum.
    offered = {OPTAX_ARGUMENT.get(key, key) for key in ours} | {"learning_rate"}
    offered |= {f"b{i + 1}" for i in range(len(betas))}
    assert set(reference) - offered <= {"mu_dtype"}


INVALID = [
    ("adan", {"betas": (0.9, 0.9)}, "betas"),
    ("adan", {"betas": (0.98, 1.0, 0.99)}, "betas[1]"),
    ("adan", {"eps_root": -1e-8}, "eps_root"),
    ("adan", {"weight_decay_mask": "biases"}, "weight_decay_mask"),
    ("amsgrad", {"bias_correction_mu": "yes"}, "bias_correction_mu"),
    ("amsgrad", {"bias_correction_nu": 0}, "bias_correction_nu"),
    ("amsgrad", {"eps_root": -1.0}, "eps_root"),
    ("adamaxw", {"weight_decay": -1e-4}, "weight_decay"),
    ("adamaxw", {"lr": 0.0}, "lr"),
    ("nadamw", {"nesterov": 1}, "nesterov"),
    ("nadamw", {"betas": (0.9, 1.5)}, "betas"),
    ("yogi", {"eps": -1e-3}, "eps"),
    ("yogi", {"maximize": "no"}, "maximize"),
]


@pytest.mark.parametrize(
    ("name", "hyperparams", "param"),
    INVALID,
    ids=[f"{name}-{param}-{i}" for i, (name, _, param) in enumerate(INVALID)],
)
def test_invalid_hyperparameter_raises_input_error_naming_it(name, hyperparams, param):
    with pytest.raises(InputError) as excinfo:
        ds.optim.get(name, **hyperparams)
    message = str(excinfo.value)
    assert param in message
    (value,) = hyperparams.values()
    assert repr(value) in message
