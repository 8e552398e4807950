"""Optimizers that need the loss value or more of the objective, against Optax.

polyak_sgd, momo and momo_adam read the value at the params; sophia differentiates the
objective twice (Hutchinson's Hessian diagonal, with a PRNG key in its state); sam takes
the gradient again at an adversarial point. Each trajectory is compared with Optax's
over 200 steps in float64 (tests/optax_oracle.py), Optax's update being given what it
needs (``value=``, ``obj_fn=``, ``grad_fn=``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from descend.errors import InputError
from optax_oracle import (
    ALL,
    SMOOTH,
    assert_matches_optax,
    assert_reaches_minima,
    assert_second_call_compiles_nothing,
)

optax = pytest.importorskip("optax")
contrib = optax.contrib


def with_value(params, value, objective):
    return {"value": value}


def with_objective(params, value, objective):
    return {"obj_fn": objective}


def with_grad_fn(params, value, objective):
    return {"grad_fn": lambda p, i: jax.grad(objective)(p)}


def decaying(base):
    return lambda count: base / (1.0 + 0.01 * count)


# ------------------------------------------------------------------ polyak_sgd


def test_polyak_sgd_matches_optax_with_defaults():
    # f_min=0 is below every problem's minimum except the quadratic's (negative): there
    # the step stalls once f < 0, as Optax's does.
    assert_matches_optax(ds.optim.polyak_sgd(), optax.polyak_sgd(), ALL, extra_args=with_value)


def test_polyak_sgd_matches_optax_with_sps_plus_scaling_schedule_and_maximize():
    ours = ds.optim.polyak_sgd(
        max_lr=0.5, scaling=decaying(0.7), f_min=-3.0, eps=1e-3, variant="sps+", maximize=True
    )
    theirs = optax.polyak_sgd(
        max_learning_rate=0.5, scaling=decaying(0.7), f_min=-3.0, eps=1e-3, variant="sps+"
    )
    assert_matches_optax(ours, theirs, ALL, extra_args=with_value)


# ------------------------------------------------------------------------ momo


def test_momo_matches_optax_with_defaults():
    # lr=1 overshoots Rosenbrock's valley into overflow, in Optax too: the smooth ones.
    assert_matches_optax(ds.optim.momo(), contrib.momo(), SMOOTH, extra_args=with_value)


def test_momo_matches_optax_with_every_option():
    ours = ds.optim.momo(
        lr=decaying(0.05),
        beta=0.8,
        lower_bound=-2.0,
        weight_decay=0.01,
        adapt_lower_bound=True,
        maximize=True,
    )
    theirs = contrib.momo(
        learning_rate=decaying(0.05),
        beta=0.8,
        lower_bound=-2.0,
        weight_decay=0.01,
        adapt_lower_bound=True,
    )
    assert_matches_optax(ours, theirs, ALL, extra_args=with_value)


def test_momo_adam_matches_optax_with_defaults():
    assert_matches_optax(ds.optim.momo_adam(), contrib.momo_adam(), ALL, extra_args=with_value)


def test_momo_adam_matches_optax_with_every_option():
    ours = ds.optim.momo_adam(
        lr=decaying(0.05),
        betas=(0.8, 0.99),
        eps=1e-6,
        lower_bound=-2.0,
        weight_decay=0.01,
        adapt_lower_bound=True,
        maximize=True,
    )
    theirs = contrib.momo_adam(
        learning_rate=decaying(0.05),
        b1=0.8,
        b2=0.99,
        eps=1e-6,
        lower_bound=-2.0,
        weight_decay=0.01,
        adapt_lower_bound=True,
    )
    assert_matches_optax(ours, theirs, ALL, extra_args=with_value)


# ---------------------------------------------------------------------- sophia


def test_sophia_matches_optax_with_defaults():
    assert_matches_optax(
        ds.optim.sophia(), contrib.sophia(learning_rate=1e-2), ALL, extra_args=with_objective
    )


def test_sophia_matches_optax_with_every_option_and_the_same_random_signs():
    ours = ds.optim.sophia(
        lr=decaying(0.02),
        betas=(0.9, 0.95),
        eps=0.1,
        weight_decay=0.01,
        gamma=0.05,
        clip_threshold=None,
        update_interval=3,
        seed=7,
        maximize=True,
        weight_decay_mask=lambda params: True,
    )
    theirs = contrib.sophia(
        learning_rate=decaying(0.02),
        b1=0.9,
        b2=0.95,
        eps=0.1,
        weight_decay=0.01,
        gamma=0.05,
        clip_threshold=None,
        update_interval=3,
        hessian_diagonal_fn=contrib.hutchinson_estimator_diag_hessian(jax.random.PRNGKey(7)),
        weight_decay_mask=lambda params: True,
    )
    # Unclipped, the step divides by Rosenbrock's Hessian-diagonal estimates, negative in
    # its valley, and runs off to overflow (in Optax too): the smooth problems.
    assert_matches_optax(ours, theirs, SMOOTH, extra_args=with_objective)


def test_sophia_clips_with_a_smaller_threshold_as_optax():
    ours = ds.optim.sophia(lr=0.05, clip_threshold=0.3, update_interval=1, seed=3)
    theirs = contrib.sophia(
        learning_rate=0.05,
        clip_threshold=0.3,
        update_interval=1,
        hessian_diagonal_fn=contrib.hutchinson_estimator_diag_hessian(jax.random.PRNGKey(3)),
    )
    assert_matches_optax(ours, theirs, ALL, extra_args=with_objective)


# ------------------------------------------------------------------------- sam


def test_sam_matches_optax_opaque_mode_with_defaults():
    theirs = contrib.sam(
        optax.sgd(0.01),
        optax.chain(contrib.normalize(), optax.sgd(0.1)),
        opaque_mode=True,
    )
    # The default outer sgd(lr=0.01) is past the stability limit 2/L of Rosenbrock's
    # valley (curvature ~1000 at the start) and overflows there, as plain SGD does.
    assert_matches_optax(ds.optim.sam(), theirs, SMOOTH, extra_args=with_grad_fn)


def test_sam_matches_optax_opaque_mode_with_stateful_optimizers_kept_state_and_maximize():
    ours = ds.optim.sam(
        ds.optim.adabelief(lr=0.01),
        ds.optim.chain(ds.optim.normalize(), ds.optim.sgd(lr=0.05, momentum=0.9)),
        sync_period=3,
        reset_state=False,
        maximize=True,
    )
    theirs = contrib.sam(
        optax.adabelief(0.01),
        optax.chain(contrib.normalize(), optax.sgd(0.05, momentum=0.9)),
        sync_period=3,
        reset_state=False,
        opaque_mode=True,
    )
    assert_matches_optax(ours, theirs, ALL, extra_args=with_grad_fn)


def test_sam_makes_the_outer_steps_of_optax_default_transparent_mode():
    """Optax's default mode spreads one SAM step over sync_period calls of update."""
    sync_period = 3
    transparent = contrib.sam(
        optax.adabelief(0.01),
        optax.chain(contrib.normalize(), optax.sgd(0.05)),
        sync_period=sync_period,
    )
    ours = ds.optim.sam(
        ds.optim.adabelief(lr=0.01),
        ds.optim.chain(ds.optim.normalize(), ds.optim.sgd(lr=0.05)),
        sync_period=sync_period,
    )
    from optax_oracle import PROBLEMS, descend_trajectory, optax_trajectory

    for name in SMOOTH:
        problem = PROBLEMS[name]
        with jax.enable_x64(True):
            theirs = optax_trajectory(transparent, problem, n_steps=60 * sync_period)
        outer = theirs[sync_period - 1 :: sync_period]
        mine = descend_trajectory(ours, problem, n_steps=60)
        np.testing.assert_allclose(mine, outer, rtol=1e-9, atol=1e-12, err_msg=name)


# -------------------------------------------------------- Optax's own alias test

MINIMA_SETTINGS = {
    "polyak_sgd": {"max_lr": 1.0},
    "momo": {"lr": 0.1},
    "momo_adam": {"lr": 0.1},
    "sophia": {"lr": 1e-2},
}


@pytest.mark.parametrize("name", sorted(MINIMA_SETTINGS))
def test_reaches_the_minima_in_float32(name):
    assert_reaches_minima(ds.optim.get(name, **MINIMA_SETTINGS[name]))


def test_sam_reaches_the_parabola_minimum_in_float32():
    # Optax's own SAM test: sgd(1e-3) outer, normalized sgd(1e-5) adversary, parabola
    # only, 25000 steps.
    opt = ds.optim.sam(
        ds.optim.sgd(lr=1e-3), ds.optim.chain(ds.optim.normalize(), ds.optim.sgd(lr=1e-5))
    )
    assert_reaches_minima(opt, ("parabola",), n_steps=25_000)


NAMES = ["polyak_sgd", "momo", "momo_adam", "sophia", "sam"]


@pytest.mark.parametrize("name", NAMES)
def test_second_call_compiles_nothing(name):
    assert_second_call_compiles_nothing(lambda: ds.optim.get(name))


# ------------------------------------------------------------ the front doors


@pytest.mark.parametrize("name", NAMES)
def test_minimize_runs_and_lowers_the_value(name):
    def f(x):
        return jnp.sum((x - jnp.array([1.0, -2.0])) ** 2) + 0.1 * jnp.sum(x**4)

    x0 = np.array([3.0, 2.0])
    result = ds.minimize(f, x0, optimizer=name, max_iter=200)
    assert np.all(np.isfinite(result.x))
    assert result.fun < float(f(x0))


@pytest.mark.parametrize("name", NAMES)
def test_fit_runs_and_lowers_the_loss(name):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]) > 0).astype(np.float64)
    result = ds.fit("logistic", X, y, optimizer=name, batch_size=16, epochs=5)
    losses = np.asarray(result.history["loss"])
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]


# ------------------------------------------------------------ evaluations, errors


def test_minimize_counts_the_extra_gradient_evaluations_of_sam_and_sophia():
    def f(x):
        return jnp.sum((x - 1.0) ** 2)

    x0 = np.array([3.0, -2.0])
    sam = ds.minimize(f, x0, optimizer=ds.optim.sam(sync_period=3), max_iter=10, tol=0.0)
    assert sam.n_iter == 10
    assert sam.n_fev == 11 + 2 * 10  # the loop's, then two adversarial points a step
    assert sam.n_jev == sam.n_fev
    sophia = ds.minimize(f, x0, optimizer=ds.optim.sophia(update_interval=4), max_iter=10, tol=0.0)
    assert sophia.n_iter == 10
    assert sophia.n_fev == 11 + 3  # Hessian-vector products at steps 0, 4 and 8
    assert sophia.n_jev == sophia.n_fev


@pytest.mark.parametrize("name", ["polyak_sgd", "momo", "momo_adam"])
def test_a_step_without_the_value_says_how_to_pass_it(name):
    opt = ds.optim.get(name)
    with pytest.raises(InputError, match="value=f\\(params\\)"):
        opt.step(jnp.ones(2), jnp.ones(2), opt.init(jnp.ones(2)))


@pytest.mark.parametrize("name", ["sophia", "sam"])
def test_a_step_without_the_objective_says_how_to_pass_it(name):
    opt = ds.optim.get(name)
    assert opt.needs_value_fn
    with pytest.raises(InputError, match="value_fn=f"):
        opt.step(jnp.ones(2), jnp.ones(2), opt.init(jnp.ones(2)), value=jnp.asarray(2.0))


INVALID = [
    ("polyak_sgd", {"max_lr": 0.0}, "max_lr"),
    ("polyak_sgd", {"scaling": -1.0}, "scaling"),
    ("polyak_sgd", {"eps": -1.0}, "eps"),
    ("polyak_sgd", {"variant": "sps++"}, "variant"),
    ("polyak_sgd", {"f_min": float("nan")}, "f_min"),
    ("momo", {"beta": 1.0}, "beta"),
    ("momo", {"lower_bound": float("inf")}, "lower_bound"),
    ("momo", {"adapt_lower_bound": "yes"}, "adapt_lower_bound"),
    ("momo_adam", {"betas": (0.9, 1.5)}, "betas"),
    ("momo_adam", {"weight_decay": -0.1}, "weight_decay"),
    ("sophia", {"gamma": -1.0}, "gamma"),
    ("sophia", {"clip_threshold": 0.0}, "clip_threshold"),
    ("sophia", {"update_interval": 0}, "update_interval"),
    ("sophia", {"seed": -1}, "seed"),
    ("sam", {"sync_period": 0}, "sync_period"),
    ("sam", {"reset_state": 1}, "reset_state"),
]


@pytest.mark.parametrize(
    ("name", "hyperparams", "param"),
    INVALID,
    ids=[f"{name}-{param}-{i}" for i, (name, _, param) in enumerate(INVALID)],
)
def test_invalid_hyperparameter_raises_input_error_naming_it(name, hyperparams, param):
    with pytest.raises(InputError) as excinfo:
        ds.optim.get(name, **hyperparams)
    assert param in str(excinfo.value)


def test_sam_refuses_an_adversary_with_a_line_search_and_non_optimizers():
    with pytest.raises(InputError, match="adv_optimizer"):
        ds.optim.sam(adv_optimizer=ds.optim.lbfgs())
    with pytest.raises(TypeError, match="optimizer must be an Optimizer"):
        ds.optim.sam(optimizer="sgd")


def test_sophia_key_is_reproducible_and_seeded():
    x = jnp.array([1.0, 2.0])
    assert np.array_equal(ds.optim.sophia(seed=5).init(x).key, jax.random.PRNGKey(5))
    assert ds.optim.sophia(seed=5) != ds.optim.sophia(seed=6)


# ------------------------------------------------ the generic properties, with the value


def tree(dtype=jnp.float32):
    rng = np.random.default_rng(0)
    return {
        "weights": jnp.asarray(rng.standard_normal((3, 2)), dtype),
        "bias": jnp.asarray(rng.standard_normal(2), dtype),
    }


def objective(params):
    return sum(jnp.sum(jnp.sin(x) + x**2 + 1.0) for x in jax.tree.leaves(params))


def run(opt, params, n_steps=4, sign=1.0):
    def f(p):
        return sign * objective(p)

    @jax.jit
    def body(params, state):
        value, grads = jax.value_and_grad(f)(params)
        return opt.step(params, grads, state, value=value, value_fn=f)

    state = opt.init(params)
    for _ in range(n_steps):
        params, state = body(params, state)
    return params, state


SETTINGS = {
    "polyak_sgd": {"max_lr": 0.1},
    "momo": {"lr": 0.1, "weight_decay": 0.01, "adapt_lower_bound": True},
    "momo_adam": {"lr": 0.1, "weight_decay": 0.01, "adapt_lower_bound": True},
    "sophia": {"lr": 0.1, "update_interval": 2},
    "sam": {"sync_period": 3},
}


@pytest.mark.parametrize("enable_x64", [False, True], ids=["x32", "x64"])
@pytest.mark.parametrize("name", NAMES)
def test_pytrees_stay_float32_and_move(name, enable_x64):
    params = tree()
    with jax.enable_x64(enable_x64):
        result, state = run(ds.optim.get(name, **SETTINGS[name]), params)
    assert jax.tree.structure(result) == jax.tree.structure(params)
    for key, leaf in params.items():
        assert result[key].dtype == jnp.float32
        assert not np.allclose(result[key], leaf)
    for leaf in jax.tree.leaves(state):
        assert leaf.dtype in (jnp.float32, jnp.int32, jnp.uint32), (name, leaf.dtype)


@pytest.mark.parametrize("name", NAMES)
def test_maximize_of_the_negated_objective_is_the_minimizing_step(name):
    params = tree()
    down, _ = run(ds.optim.get(name, **SETTINGS[name]), params)
    up, _ = run(ds.optim.get(name, **SETTINGS[name], maximize=True), params, sign=-1.0)
    for a, b in zip(jax.tree.leaves(down), jax.tree.leaves(up), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
