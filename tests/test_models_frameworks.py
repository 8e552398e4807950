"""Flax (NNX and Linen) and Equinox models trained by ``ds.fit`` through
``ds.models.custom``, with exactly the code the README shows; each skipped when its
package is not installed."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds


def _data():
    """A smooth nonlinear regression in 3 features (no standardization needed)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 3)).astype(np.float32)
    y = (np.sin(X[:, 0]) + X[:, 1] * X[:, 2]).astype(np.float32)
    return X, y


OPTIONS = {"epochs": 40, "batch_size": 32, "standardize": False, "patience": None, "verbose": 0}


def _trained(result):
    loss = np.asarray(result.history["loss"])
    assert np.all(np.isfinite(loss))
    assert loss[-1] < 0.3 * loss[0], loss[[0, -1]]


def test_fit_trains_a_flax_nnx_module(tmp_path):
    nnx = pytest.importorskip("flax.nnx")
    X, y = _data()

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(3, 32, rngs=rngs)
            self.out = nnx.Linear(32, 1, rngs=rngs)

        def __call__(self, x):
            return self.out(nnx.tanh(self.hidden(x)))[:, 0]

    net = MLP(nnx.Rngs(0))
    # As in the README:
    graphdef, params, rest = nnx.split(net, nnx.Param, ...)
    model = ds.models.custom(lambda p, X: nnx.merge(graphdef, p, rest)(X), params)
    result = ds.fit(model, X, y, **OPTIONS)
    nnx.update(net, result.params)  # the trained weights, back in the module

    _trained(result)
    np.testing.assert_array_equal(result.predict(X), np.asarray(net(jnp.asarray(X))))
    # A checkpoint holds the weights in the State's own structure.
    ds.save(tmp_path / "nnx.ckpt", result)
    loaded = ds.load(tmp_path / "nnx.ckpt", model=model)
    assert type(loaded.params) is type(params)
    np.testing.assert_array_equal(loaded.predict(X), result.predict(X))


def test_fit_trains_a_flax_linen_module():
    linen = pytest.importorskip("flax.linen")
    X, y = _data()

    class MLP(linen.Module):
        @linen.compact
        def __call__(self, x):
            return linen.Dense(1)(linen.tanh(linen.Dense(32)(x)))[:, 0]

    net = MLP()
    # As in the README:
    variables = net.init(jax.random.key(0), X[:1])
    result = ds.fit(ds.models.custom(net.apply, variables), X, y, **OPTIONS)

    _trained(result)
    np.testing.assert_array_equal(result.predict(X), np.asarray(net.apply(result.params, X)))


def test_fit_trains_an_equinox_module(tmp_path):
    eqx = pytest.importorskip("equinox")
    X, y = _data()
    net = eqx.nn.MLP(3, "scalar", 32, 1, activation=jnp.tanh, key=jax.random.key(0))
    # As in the README:
    params, static = eqx.partition(net, eqx.is_inexact_array)
    model = ds.models.custom(lambda p, X: jax.vmap(eqx.combine(p, static))(X), params)
    result = ds.fit(model, X, y, **OPTIONS)
    net = eqx.combine(result.params, static)  # the trained module

    _trained(result)
    np.testing.assert_array_equal(result.predict(X), np.asarray(jax.vmap(net)(X)))
    ds.save(tmp_path / "eqx.ckpt", result)
    loaded = ds.load(tmp_path / "eqx.ckpt", model=model)
    assert isinstance(loaded.params, eqx.nn.MLP)
    np.testing.assert_array_equal(loaded.predict(X), result.predict(X))


def test_fit_trains_a_flax_model_with_an_optax_optimizer():
    """The two halves together: a Flax module and an Optax optimizer, as Flax users run."""
    linen = pytest.importorskip("flax.linen")
    optax = pytest.importorskip("optax")
    X, y = _data()
    net = linen.Dense(1)
    variables = net.init(jax.random.key(0), X[:1])
    model = ds.models.custom(lambda v, X: net.apply(v, X)[:, 0], variables)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2))
    result = ds.fit(model, X, y, optimizer=ds.optim.from_optax(tx), **OPTIONS)
    assert result.history["loss"][-1] < result.history["loss"][0]
