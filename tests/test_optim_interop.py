"""Optax interop both ways: ``opt.as_optax()`` in a hand-written Optax loop against
descend's own trajectory, and ``from_optax(tx)`` in descend's loops (minimize, fit,
compare, checkpoints, resume) against the plain Optax loop."""

from __future__ import annotations

import builtins

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from descend.errors import CheckpointError, DescendTypeError, InputError

optax = pytest.importorskip("optax")

from optax_oracle import (  # noqa: E402
    ALL,
    PROBLEMS,
    SMOOTH,
    assert_matches_optax,
    assert_second_call_compiles_nothing,
    descend_trajectory,
    optax_trajectory,
)


def _objective_args(params, value, objective):
    """What a line search needs in an Optax loop, as ``optax.lbfgs`` takes it."""
    return {"value": value, "grad": None, "value_fn": objective}


# ------------------------------------------------------------------ descend -> Optax

# Each with the problems it converges on. Measured: the Optax loop's params differ
# from descend's by at most 7e-14 relative over 200 steps (sgd with Nesterov momentum
# on the matrix problem); adam, lbfgs, rprop and the schedule agree bit for bit. The
# only difference is params + (new - params), which rounds back to new exactly when
# new is within a factor 2 of params (test_updates_add_back_exactly_within_a_factor_2).
AS_OPTAX = {
    "adam": (lambda: ds.optim.adam(lr=0.1), ALL),
    "sgd_nesterov": (
        lambda: ds.optim.sgd(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.01),
        SMOOTH,  # lr=0.01 with momentum overshoots Rosenbrock's valley
    ),
    "lbfgs": (lambda: ds.optim.lbfgs(), ALL),
    "adam_cosine": (
        lambda: ds.optim.adam(lr=ds.optim.schedules.cosine_annealing(0.1, 150)),
        ALL,
    ),
    "lion": (lambda: ds.optim.lion(lr=0.01), ALL),
}
AS_OPTAX_RTOL = 1e-12


@pytest.mark.parametrize("name", list(AS_OPTAX))
def test_as_optax_in_an_optax_loop_follows_descends_trajectory(name):
    build, problems = AS_OPTAX[name]
    opt = build()
    for problem_name in problems:
        problem = PROBLEMS[problem_name]
        ours = descend_trajectory(opt, problem)
        theirs = optax_trajectory(opt.as_optax(), problem, extra_args=_objective_args)
        assert np.all(np.isfinite(ours)), problem_name
        np.testing.assert_allclose(theirs, ours, rtol=AS_OPTAX_RTOL, atol=0, err_msg=problem_name)
        assert np.abs(ours[-1] - problem.x0).max() > 1e-6, problem_name


def test_as_optax_in_a_hand_written_training_loop():
    """A user's loop: jitted update, Python for-loop, ``optax.apply_updates``; float32."""
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.standard_normal((64, 3)), jnp.float32)
    y = jnp.asarray(X @ jnp.array([1.0, -2.0, 0.5]) > 0, jnp.float32)

    def loss(params):
        z = X @ params["w"] + params["b"]
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z)

    start = {"w": jnp.full(3, 0.5, jnp.float32), "b": jnp.zeros((), jnp.float32)}
    opt = ds.optim.adam(lr=0.05, weight_decay=0.01, amsgrad=True)
    tx = opt.as_optax()

    @jax.jit
    def train_step(params, opt_state):
        grads = jax.grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    params, opt_state = start, tx.init(start)
    ours, state = start, opt.init(start)
    for _ in range(100):
        params, opt_state = train_step(params, opt_state)
        ours, state = opt.step(ours, jax.grad(loss)(ours), state)
        for leaf, expected in zip(jax.tree.leaves(params), jax.tree.leaves(ours), strict=True):
            assert leaf.dtype == jnp.float32
            np.testing.assert_allclose(leaf, expected, rtol=1e-6, atol=1e-7)
    assert float(loss(params)) < 0.9 * float(loss(start))


def test_as_optax_composes_with_optax_chain():
    """Optax's transforms before it: the clipped gradients are what descend steps on."""
    problem = PROBLEMS["quadratic"]
    opt = ds.optim.sgd(lr=0.01, momentum=0.9)
    clipped = optax.chain(optax.clip_by_global_norm(1.0), opt.as_optax())

    def reference(x, grads, state):
        grads, _ = optax.clip_by_global_norm(1.0).update(grads, optax.EmptyState())
        return opt.step(x, grads, state)

    with jax.enable_x64(True):
        x = jnp.asarray(problem.x0)
        params, opt_state, ours, state = x, clipped.init(x), x, opt.init(x)
        for _ in range(50):
            updates, opt_state = clipped.update(jax.grad(problem.fn)(params), opt_state, params)
            params = optax.apply_updates(params, updates)
            ours, state = reference(ours, jax.grad(problem.fn)(ours), state)
        np.testing.assert_allclose(params, ours, rtol=AS_OPTAX_RTOL, atol=0)


def test_updates_add_back_exactly_within_a_factor_2():
    """Sterbenz: new - p is exact when p/2 <= new <= 2p, so p + (new - p) == new. Past
    that the sum is rounded once, by at most half an ulp of the step."""
    rng = np.random.default_rng(0)
    p = rng.uniform(1e-3, 1e3, 100_000).astype(np.float32) * rng.choice([-1, 1], 100_000)
    new = (p * rng.uniform(0.5, 2.0, p.size)).astype(np.float32)
    tx = ds.optim.gd(lr=1.0).as_optax()  # new = p - grads
    updates, _ = tx.update(jnp.asarray(p - new), tx.init(jnp.asarray(p)), jnp.asarray(p))
    stepped = np.asarray(optax.apply_updates(jnp.asarray(p), updates))
    gd = ds.optim.gd(lr=1.0)
    direct = np.asarray(gd.step(jnp.asarray(p), jnp.asarray(p - new), gd.init(jnp.asarray(p)))[0])
    assert np.array_equal(stepped, direct)

    p, new = np.float32(1.0), np.float32(1e-10)  # a parameter falling to near 0
    step = np.float32(new - p)
    assert p + step != new  # no float32 update can give 1e-10 when added to 1.0
    assert abs(float(p + step) - float(new)) <= np.spacing(np.abs(step)) / 2


def test_as_optax_asks_for_params_and_for_the_objective_of_a_line_search():
    tx = ds.optim.adam().as_optax()
    params = jnp.ones(2)
    with pytest.raises(InputError, match=r"needs the params: call update\(grads, state, params\)"):
        tx.update(params, tx.init(params))
    tx = ds.optim.lbfgs().as_optax()
    with pytest.raises(InputError, match="value=f\\(params\\), value_fn=f"):
        tx.update(params, tx.init(params), params)
    no_search = ds.optim.lbfgs(line_search_fn=None).as_optax()
    updates, _ = no_search.update(params, no_search.init(params), params)
    assert updates.shape == (2,)


def test_as_optax_state_is_descends_and_lbfgs_matches_optaxs_calling_convention():
    """The arguments of optax.lbfgs's own loop (value, grad, value_fn) work as they are."""
    problem = PROBLEMS["rosenbrock"]
    opt = ds.optim.lbfgs()
    tx = opt.as_optax()
    with jax.enable_x64(True):
        x = jnp.asarray(problem.x0)
        state = tx.init(x)
        assert type(state) is type(opt.init(x))
        for _ in range(40):
            value, grad = jax.value_and_grad(problem.fn)(x)
            updates, state = tx.update(grad, state, x, value=value, grad=grad, value_fn=problem.fn)
            x = optax.apply_updates(x, updates)
        x = np.asarray(x)
    np.testing.assert_allclose(x, descend_trajectory(opt, problem, n_steps=40)[-1], rtol=1e-12)
    assert np.abs(x - 1.0).max() < 1e-3  # from (-1.2, 1): near the minimum


# ------------------------------------------------------------------ Optax -> descend

FROM_OPTAX = {
    "adam": (lambda: optax.adam(0.1), ALL),
    "chain_clip_sgd_nesterov": (
        lambda: optax.chain(
            optax.clip_by_global_norm(1.0),
            optax.add_decayed_weights(1e-3),
            optax.sgd(optax.exponential_decay(0.01, 50, 0.5), momentum=0.9, nesterov=True),
        ),
        SMOOTH,  # sgd with momentum at this rate leaves Rosenbrock's valley
    ),
    "inject_hyperparams_adamw": (
        lambda: optax.inject_hyperparams(optax.adamw)(learning_rate=0.05, weight_decay=0.1),
        ALL,
    ),
    "lbfgs": (lambda: optax.lbfgs(), ALL),
    "polyak_sgd": (lambda: optax.polyak_sgd(max_learning_rate=0.1), SMOOTH),
}


@pytest.mark.parametrize("name", list(FROM_OPTAX))
def test_from_optax_steps_are_the_plain_optax_loop_bit_for_bit(name):
    build, problems = FROM_OPTAX[name]
    tx = build()
    extra = None
    if isinstance(tx, optax.GradientTransformationExtraArgs):

        def extra(params, value, objective):
            return {"value": value, "grad": jax.grad(objective)(params), "value_fn": objective}

    assert_matches_optax(ds.optim.from_optax(tx), tx, problems, extra_args=extra, rtol=0, atol=0)


def test_from_optax_reaches_the_minimum_in_minimize_and_compiles_once():
    tx = optax.adam(0.1)
    result = ds.minimize(
        lambda x: jnp.sum((x - 3.0) ** 2), jnp.zeros(3), optimizer=ds.optim.from_optax(tx)
    )
    assert result.converged
    np.testing.assert_allclose(result.x, 3.0, atol=1e-5)
    lbfgs = ds.minimize("rosenbrock", optimizer=ds.optim.from_optax(optax.lbfgs()), tol=1e-8)
    assert lbfgs.converged and lbfgs.n_iter < 60
    assert_second_call_compiles_nothing(lambda: ds.optim.from_optax(optax.adam(0.01)))


def test_from_optax_equality_repr_and_errors():
    tx = optax.adam(0.1)
    same = ds.optim.from_optax(tx), ds.optim.from_optax(tx)
    assert same[0] == same[1] and hash(same[0]) == hash(same[1])
    assert ds.optim.from_optax(optax.adam(0.1)) == same[0]  # built alike: equal
    assert ds.optim.from_optax(optax.adam(0.2)) != same[0]
    assert ds.optim.from_optax(tx, label="a") != same[0]
    assert repr(same[0]) == "from_optax()"
    assert repr(ds.optim.from_optax(tx, label="optax.adam")) == "from_optax(label='optax.adam')"
    with pytest.raises(DescendTypeError, match=r"call it first, e\.g\. from_optax\(adam\("):
        ds.optim.from_optax(optax.adam)
    with pytest.raises(DescendTypeError, match="label must be a string"):
        ds.optim.from_optax(tx, label=3)


def test_compare_shows_the_label():
    race = ds.compare(
        "rosenbrock",
        [ds.optim.from_optax(optax.adam(0.01), label="optax.adam"), ("adam", {"lr": 0.01})],
        max_iter=300,
    )
    rows = {row["label"]: row for row in race.rows}
    assert set(rows) == {"optax.adam", "adam(lr=0.01)"}
    # Optax's adam and torch's coincide here (eps outside the root, no eps_root).
    np.testing.assert_allclose(rows["optax.adam"]["fun"], rows["adam(lr=0.01)"]["fun"], rtol=1e-9)


def _linear_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    return X, X @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.1 * rng.standard_normal(40)


# Batch gradient descent on the problem as given: one epoch is one step on the mean
# squared error, so a plain Optax loop reproduces it.
PLAIN = {"batch_size": None, "standardize": False, "l2": 0.0, "patience": None, "verbose": 0}


def _plain_optax_loop(tx, X, y, steps, *, change_lr_after=None, new_lr=None):
    model, mse = ds.models.linear(), ds.losses.get("mse")
    X, y = jnp.asarray(X), jnp.asarray(y)

    def loss(params):
        return mse(model.apply(params, X), y)

    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    state = tx.init(params)
    for index in range(steps):
        if index == change_lr_after:
            state.hyperparams["learning_rate"] = jnp.asarray(new_lr)
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    return params


def test_fit_with_from_optax_is_the_plain_optax_loop(x64):
    X, y = _linear_data()
    tx = optax.chain(optax.clip_by_global_norm(5.0), optax.adam(0.1))
    result = ds.fit(
        "linear", X, y, optimizer=ds.optim.from_optax(tx), epochs=30, dtype="float64", **PLAIN
    )
    expected = _plain_optax_loop(tx, X, y, 30)
    for name in ("w", "b"):
        np.testing.assert_allclose(result.params[name], expected[name], rtol=1e-12)
    assert result.history["loss"][-1] < 0.2 * result.history["loss"][0]


def test_fit_checkpoint_and_resume_equal_an_uninterrupted_fit(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((96, 4))
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.5 * rng.standard_normal(96) > 0).astype(int)
    tx = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.inject_hyperparams(optax.adam)(learning_rate=optax.linear_schedule(0.1, 0.01, 20)),
    )
    opt = ds.optim.from_optax(tx)
    options = {"batch_size": 16, "verbose": 0, "patience": None, "seed": 3}
    whole = ds.fit("logistic", X, y, optimizer=opt, epochs=6, **options)
    half = ds.fit("logistic", X, y, optimizer=opt, epochs=3, **options)
    path = tmp_path / "half.ckpt"
    ds.save(path, half)

    loaded = ds.load(path, optimizer=ds.optim.from_optax(tx))
    assert jax.tree.structure(loaded.opt_state) == jax.tree.structure(half.opt_state)
    for a, b in zip(
        jax.tree.leaves(loaded.opt_state), jax.tree.leaves(half.opt_state), strict=True
    ):
        assert np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(a, b)

    resumed = ds.fit("logistic", X, y, optimizer=opt, epochs=6, resume=path, **options)
    for name in ("w", "b"):
        assert np.array_equal(resumed.params[name], whole.params[name])
    np.testing.assert_array_equal(resumed.history["loss"], whole.history["loss"])
    # fit's lr is the rate inject_hyperparams keeps in the state: that of the epoch's
    # last update (6 a epoch), schedule(6 e - 1) after epoch e.
    schedule = optax.linear_schedule(0.1, 0.01, 20)
    rates = [float(schedule(6 * epoch - 1)) for epoch in range(1, 7)]
    np.testing.assert_allclose(whole.history["lr"], rates, rtol=1e-6)

    unrebuilt = ds.load(path)  # predicts without the transformation, not trains on
    np.testing.assert_array_equal(unrebuilt.predict_proba(X), half.predict_proba(X))
    with pytest.raises(CheckpointError, match=r"from_optax\(\)\) cannot be rebuilt .* Optax"):
        ds.fit("logistic", X, y, epochs=6, resume=unrebuilt, **options)
    with pytest.raises(CheckpointError, match="cannot be rebuilt"):
        ds.fit("logistic", X, y, epochs=6, resume=path, **options)
    other = ds.optim.from_optax(optax.sgd(0.1, momentum=0.9))
    with pytest.raises(CheckpointError, match="does not fit from_optax"):
        ds.load(path, optimizer=other)


def test_inject_hyperparams_learning_rate_is_seen_and_changed_between_runs(x64):
    X, y = _linear_data()
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.5)
    opt = ds.optim.from_optax(tx)
    first = ds.fit("linear", X, y, optimizer=opt, epochs=10, dtype="float64", **PLAIN)
    assert first.opt_state.hyperparams["learning_rate"] == 0.1
    np.testing.assert_array_equal(first.history["lr"], 0.1)
    first.opt_state.hyperparams["learning_rate"] = np.float64(0.02)  # as in an Optax loop
    second = ds.fit(
        "linear", X, y, optimizer=opt, epochs=20, resume=first, dtype="float64", **PLAIN
    )
    np.testing.assert_array_equal(second.history["lr"][10:], 0.02)
    expected = _plain_optax_loop(tx, X, y, 20, change_lr_after=10, new_lr=0.02)
    for name in ("w", "b"):
        np.testing.assert_allclose(second.params[name], expected[name], rtol=1e-12)


def test_without_optax_both_directions_say_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_optax(name, *args, **kwargs):
        if name == "optax" or name.startswith("optax."):
            raise ImportError("No module named 'optax'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optax)
    with pytest.raises(ImportError, match="pip install optax"):
        ds.optim.adam().as_optax()
    with pytest.raises(ImportError, match="pip install optax"):
        ds.optim.from_optax(object())
