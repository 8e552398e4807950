"""Hyperparameters in the state (descend.optim.injection): one vmapped program runs a
sweep's configurations, each stepping exactly as the optimizer built with its values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from descend.errors import DescendTypeError, InputError
from descend.optim import injection

rng = np.random.default_rng(0)
X = rng.normal(size=(24, 3))
Y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=24)
START = {"w": np.full(3, 0.3), "b": np.array(0.1)}
STEPS = 60


def loss(params, X, y):
    return jnp.mean((X @ params["w"] + params["b"] - y) ** 2)


def swept(optimizer, configurations):
    """Every configuration run at once: stacked params and states, one vmapped scan."""
    injected = ds.optim.inject_hyperparams(optimizer, sorted(configurations[0]))
    values = jax.tree.map(lambda *v: jnp.stack([jnp.asarray(x) for x in v]), *configurations)
    stacked = jax.tree.map(lambda a: jnp.stack([jnp.asarray(a)] * len(configurations)), START)
    states = jax.vmap(lambda p, v: injection.init_with(injected, p, v))(stacked, values)

    def body(carry, _):
        params, states = carry
        values, grads = jax.vmap(jax.value_and_grad(loss), in_axes=(0, None, None))(params, X, Y)
        step = jax.vmap(lambda p, g, s, v: injected.step(p, g, s, value=v))
        return step(params, grads, states, values), None

    return jax.jit(lambda c: jax.lax.scan(body, c, None, length=STEPS)[0])((stacked, states))


def alone(optimizer):
    params = jax.tree.map(jnp.asarray, START)
    state = optimizer.init(params)
    step = jax.jit(lambda p, s: optimizer.step(p, jax.grad(loss)(p, X, Y), s, value=loss(p, X, Y)))
    for _ in range(STEPS):
        params, state = step(params, state)
    return params, state


CASES = {
    "sgd momentum": (ds.optim.sgd(lr=0.05, momentum=0.5),
                     [{"lr": 0.01, "momentum": 0.5}, {"lr": 0.05, "momentum": 0.9},
                      {"lr": 0.02, "momentum": 0.1}]),
    "sgd nesterov weight decay": (ds.optim.sgd(lr=0.05, momentum=0.9, nesterov=True),
                                  [{"weight_decay": 0.0}, {"weight_decay": 0.1}]),
    "adam betas": (ds.optim.adam(lr=0.05), [{"lr": 0.01, "betas": (0.9, 0.999)},
                                             {"lr": 0.1, "betas": (0.5, 0.9)}]),
    "adamw": (ds.optim.adamw(), [{"lr": 0.01, "weight_decay": 0.0},
                                 {"lr": 0.03, "weight_decay": 0.5}]),
    "rmsprop": (ds.optim.rmsprop(lr=0.01, momentum=0.5, centered=True),
                [{"alpha": 0.9, "momentum": 0.5}, {"alpha": 0.99, "momentum": 0.8}]),
    "adagrad": (ds.optim.adagrad(), [{"lr": 0.1, "lr_decay": 0.0}, {"lr": 0.5, "lr_decay": 0.01}]),
    "the fit default": (ds.optim.reduce_on_plateau(ds.optim.adam(1e-2), factor=0.2, patience=3),
                        [{"lr": 0.001}, {"lr": 0.3}, {"lr": 3.0}]),
    "schedule-free adamw": (ds.optim.schedule_free_adamw(),
                            [{"lr": 0.01, "weight_decay": 0.0}, {"lr": 0.05, "weight_decay": 0.1}]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_each_configuration_steps_as_the_optimizer_built_with_its_values(case, x64):
    optimizer, configurations = CASES[case]
    built = injection.check_configurations(optimizer, configurations, START)
    (params, states), expected = swept(optimizer, configurations), [alone(b) for b in built]
    # To rounding: a traced beta's bias correction takes jnp.log of it, not math.log.
    for number, (alone_params, alone_state) in enumerate(expected):
        mine = jax.tree.map(lambda a, k=number: a[k], params)
        np.testing.assert_allclose(mine["w"], alone_params["w"], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(mine["b"], alone_params["b"], rtol=1e-10, atol=1e-14)
        state = jax.tree.map(lambda a, k=number: a[k], states.inner)
        for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(alone_state), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
        # The rate it reports is its own configuration's.
        rate = ds.optim.lr_of(
            ds.optim.inject_hyperparams(optimizer, sorted(configurations[0])),
            jax.tree.map(lambda a, k=number: a[k], states),
            STEPS,
        )
        assert float(rate) == pytest.approx(
            float(ds.optim.lr_of(built[number], alone_state, STEPS))
        )


def test_the_configurations_differ_in_their_results(x64):
    # Not a test that cannot fail: with other values the trajectories part.
    optimizer, configurations = CASES["adam betas"]
    params, _ = swept(optimizer, configurations)
    assert not np.allclose(params["w"][0], params["w"][1])


def test_an_injected_optimizer_alone_starts_from_its_own_values(x64):
    optimizer = ds.optim.sgd(lr=0.05, momentum=0.9)
    injected = ds.optim.inject_hyperparams(optimizer, ["lr"])
    state = injected.init(START)
    assert float(state.hyperparams["lr"]) == 0.05
    params = jax.tree.map(jnp.asarray, START)
    grads = jax.grad(loss)(params, X, Y)
    mine, _ = injected.step(params, grads, state)
    theirs, _ = optimizer.step(params, grads, optimizer.init(params))
    np.testing.assert_array_equal(mine["w"], theirs["w"])


def test_rebuild_reaches_through_a_wrapper_and_keeps_its_settings():
    wrapped = ds.optim.reduce_on_plateau(ds.optim.adam(1e-2), factor=0.2, patience=3)
    rebuilt = ds.optim.rebuild(wrapped, lr=0.5, factor=0.5)
    assert rebuilt == ds.optim.reduce_on_plateau(ds.optim.adam(0.5), factor=0.5, patience=3)
    assert ds.optim.rebuild(wrapped) is wrapped


@pytest.mark.parametrize(
    ("optimizer", "configurations", "message"),
    [
        (ds.optim.sgd(lr=0.1), [{"momentum": 0.0}, {"momentum": 0.9}], "state of other shapes"),
        (ds.optim.adam(), [{"amsgrad": True}, {"amsgrad": False}], "cannot vary inside one"),
        (ds.optim.adam(), [{"lr": 0.1}, {"lr": -1.0}], r"configuration 1 \(lr=-1.0\): lr must be"),
        (ds.optim.adam(), [{"lr": 0.1}, {"eps": 1e-3}], "the same hyperparameters"),
        (ds.optim.adam(), [{"lr": ds.optim.schedules.cosine_annealing(0.1, 10)}], "schedules"),
        (ds.optim.adam(), [{"momentum": 0.9}], "momentum"),
        (ds.optim.adam(), [], "at least one configuration"),
    ],
)  # fmt: skip
def test_a_sweep_one_program_cannot_run_is_refused_by_name(optimizer, configurations, message):
    with pytest.raises(InputError, match=message):
        injection.check_configurations(optimizer, configurations, START)


def test_an_optimizer_not_built_by_name_cannot_be_rebuilt():
    with pytest.raises(DescendTypeError, match="not built by name"):
        injection.check_configurations(ds.optim.chain(ds.optim.sgd()), [{"lr": 0.1}], START)


def test_a_traced_hyperparameter_passes_the_checks_and_a_concrete_one_is_still_checked():
    @jax.jit
    def step(lr, params, grads):
        optimizer = ds.optim.adam(lr=lr, betas=(lr, 0.999))
        return optimizer.step(params, grads, optimizer.init(params))[0]

    np.testing.assert_allclose(
        step(0.5, jnp.ones(2), jnp.ones(2)),
        ds.optim.adam(lr=0.5, betas=(0.5, 0.999)).step(jnp.ones(2), jnp.ones(2),
                                                       ds.optim.adam().init(jnp.ones(2)))[0],
        rtol=1e-6,
    )  # fmt: skip
    with pytest.raises(InputError, match="betas"):
        ds.optim.adam(betas=(1.5, 0.999))


def test_a_name_wrapping_another_optimizer_passes_it_the_hyperparameters_it_lacks():
    assert ds.optim.get("sam", lr=0.1) == ds.optim.sam(ds.optim.sgd(lr=0.1))
    assert ds.optim.get("mechanize", lr=0.1, weight_decay=0.5) == ds.optim.mechanize(
        ds.optim.adam(lr=0.1), weight_decay=0.5
    )
    with pytest.raises(InputError, match="unknown hyperparameter of sam 'betas'"):
        ds.optim.get("sam", betas=(0.9, 0.99))  # sam's sgd has none either
    # fit, the CLI and the estimators build by name: sam trains at the rate given.
    X = np.random.default_rng(1).normal(size=(30, 2))
    y = (X[:, 0] > 0) * 1.0
    by_name = ds.fit("logistic", X, y, optimizer="sam", lr=0.2, epochs=2, verbose=0)
    built = ds.fit("logistic", X, y, optimizer=ds.optim.sam(ds.optim.sgd(lr=0.2)), epochs=2,
                   verbose=0)  # fmt: skip
    np.testing.assert_array_equal(by_name.params["w"], built.params["w"])
    from descend.sklearn import GDClassifier

    estimator = GDClassifier(optimizer="sam", learning_rate=0.2, max_epochs=2, tol=None)
    assert estimator._build_optimizer() == ds.optim.get("sam", lr=0.2)
    estimator.fit(X, y)
