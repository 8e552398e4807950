"""Test functions: their minimizers are stationary points with the stated minimum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import descend as ds
from descend.errors import InputError

NAMES = ds.functions.names()


def test_the_documented_set_is_present():
    expected = {
        "sphere",
        "booth",
        "matyas",
        "beale",
        "rosenbrock",
        "himmelblau",
        "three_hump_camel",
        "styblinski_tang",
        "rastrigin",
    }
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_minimizers_have_zero_gradient_and_the_stated_minimum(name, x64):
    function = ds.functions.get(name)
    assert function.minimizers
    for point in function.minimizers:
        assert float(function(point)) == pytest.approx(function.minimum, abs=1e-12)
        gradient = np.asarray(jax.grad(function.fn)(jnp.asarray(point)))
        np.testing.assert_allclose(gradient, 0.0, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_scipy_from_the_start_finds_a_listed_minimizer(name, x64):
    """The listed minimizers are where an independent optimizer ends up."""
    function = ds.functions.get(name)

    def value_and_grad(x):
        value, grad = jax.value_and_grad(function.fn)(jnp.asarray(x))
        return float(value), np.asarray(grad)

    found = scipy.optimize.minimize(value_and_grad, function.start, jac=True, method="BFGS").x
    distances = [np.max(np.abs(found - m)) for m in function.minimizers]
    assert min(distances) < 1e-4


def test_himmelblau_has_four_minima():
    minimizers = ds.functions.get("himmelblau").minimizers
    assert len(minimizers) == 4
    assert len({tuple(np.round(m, 3)) for m in minimizers}) == 4


@pytest.mark.parametrize("name", ["sphere", "rosenbrock", "styblinski_tang", "rastrigin"])
def test_n_dimensional_functions_take_dim(name, x64):
    function = ds.functions.get(name, dim=5)
    assert function.dim == 5 and len(function.start) == 5
    assert function.minimizers[0].shape == (5,)
    assert float(function(function.minimizers[0])) == pytest.approx(function.minimum, abs=1e-12)


def test_two_variable_function_refuses_other_dims():
    with pytest.raises(InputError, match="2 variables"):
        ds.functions.get("booth", dim=3)


def test_unknown_name_suggests_closest():
    with pytest.raises(InputError, match="did you mean 'rosenbrock'"):
        ds.functions.get("rosenbrok")
