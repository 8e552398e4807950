"""Test functions: their minimizers are stationary points with the stated minimum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import descend as ds
from descend.errors import DescendTypeError, InputError

NAMES = ds.functions.names()
N_DIMENSIONAL = ["sphere", "rosenbrock", "styblinski_tang", "rastrigin"]
TWO_VARIABLES = sorted(set(NAMES) - set(N_DIMENSIONAL))


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


# The entries themselves: each is the function, called and minimized as it is.


def reference_value(name: str, x: np.ndarray) -> float:
    """The n-dimensional formulas in NumPy, independent of the JAX code under test."""
    if name == "rosenbrock":
        return float(scipy.optimize.rosen(x))
    if name == "sphere":
        return float(np.sum(x**2))
    if name == "styblinski_tang":
        return float(0.5 * np.sum(x**4 - 16 * x**2 + 5 * x))
    return float(10 * x.size + np.sum(x**2 - 10 * np.cos(2 * np.pi * x)))


@pytest.mark.parametrize("name", NAMES)
def test_each_entry_is_a_test_function_and_what_get_returns(name):
    entry = getattr(ds.functions, name)
    assert isinstance(entry, ds.functions.TestFunction)
    assert entry is ds.functions.get(name) and entry.name == name == entry.__name__
    assert entry.dim == 2 and len(entry.start) == 2 and len(entry.bounds) == 2
    assert entry.formula and entry.reference
    assert entry.n_dimensional == (name in N_DIMENSIONAL)


@pytest.mark.parametrize("name", NAMES)
def test_each_entry_called_on_its_minimizers_gives_its_minimum(name, x64):
    entry = getattr(ds.functions, name)
    for point in entry.minimizers:
        assert point.dtype == np.float64 and point.shape == (2,)
        x = jnp.asarray(point)
        for value in (entry(point), entry(list(point)), jax.jit(entry)(x), entry.fn(x)):
            assert float(value) == pytest.approx(entry.minimum, abs=1e-12)
        np.testing.assert_allclose(jax.grad(entry)(x), 0.0, atol=1e-9)
        np.testing.assert_allclose(ds.gradient(entry)(x), 0.0, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_minimize_on_the_entry_reaches_the_minimizer_scipy_bfgs_finds(name):
    entry = getattr(ds.functions, name)
    result = ds.minimize(entry, entry.start, tol=1e-8, max_iter=50_000)
    with jax.enable_x64(True):

        def value_and_grad(x):
            value, grad = jax.value_and_grad(entry)(jnp.asarray(x))
            return float(value), np.asarray(grad)

        scipy_x = scipy.optimize.minimize(value_and_grad, entry.start, jac=True, method="BFGS").x
    ours = [np.max(np.abs(result.x - m)) for m in entry.minimizers]
    theirs = [np.max(np.abs(scipy_x - m)) for m in entry.minimizers]
    if name == "ackley":  # a cone at its minimizer: no small gradient, a stop at the tip
        assert result.status == "no_decrease", result.reason
    else:
        assert result.converged, result.reason
    assert min(ours) < 1e-5 and np.argmin(ours) == np.argmin(theirs) and min(theirs) < 1e-4


def test_a_scipy_user_passes_rosenbrock_as_scipy_rosen():
    x0 = jnp.array([-1.2, 1.0])
    ours = ds.minimize(ds.functions.rosenbrock, x0, tol=1e-8)
    reference = scipy.optimize.minimize(
        scipy.optimize.rosen, np.asarray(x0), jac=scipy.optimize.rosen_der, method="BFGS"
    )
    assert ours.converged, ours.reason
    np.testing.assert_allclose(ours.x, reference.x, atol=1e-4)
    np.testing.assert_allclose(ours.x, [1.0, 1.0], atol=1e-6)
    assert float(ds.functions.rosenbrock(jnp.array([1.0, 1.0]))) == 0.0


@pytest.mark.parametrize(
    ("name", "length"),
    [
        (name, n)
        for name in N_DIMENSIONAL
        for n in (1, 2, 3, 7, 20)
        if (name, n) != ("rosenbrock", 1)
    ],
)
def test_n_dimensional_entries_take_any_length(name, length, x64):
    entry = getattr(ds.functions, name)
    x = np.random.default_rng(length).uniform(-2.0, 2.0, size=length)
    assert float(entry(x)) == pytest.approx(reference_value(name, x), rel=1e-12)
    assert float(jax.jit(entry)(x)) == pytest.approx(reference_value(name, x), rel=1e-12)
    gradient = np.asarray(ds.gradient(entry)(x))
    step = 1e-6 * np.eye(length)
    numeric = [(reference_value(name, x + e) - reference_value(name, x - e)) / 2e-6 for e in step]
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", N_DIMENSIONAL)
def test_minimize_follows_the_length_of_the_start(name):
    entry = getattr(ds.functions, name)
    sized = entry.with_dim(6)
    result = ds.minimize(entry, np.asarray(sized.start), optimizer="lbfgs", tol=1e-10)
    assert result.x.shape == (6,)
    np.testing.assert_allclose(result.x, sized.minimizers[0], atol=1e-5)
    assert result.fun == pytest.approx(sized.minimum, abs=1e-8)


def test_rosenbrock_in_ten_dimensions_from_a_start_point_alone():
    result = ds.minimize(ds.functions.rosenbrock, np.full(10, -1.0), tol=1e-8, max_iter=50_000)
    assert result.converged, result.reason
    np.testing.assert_allclose(result.x, np.ones(10), atol=1e-5)


@pytest.mark.parametrize("name", TWO_VARIABLES)
@pytest.mark.parametrize(
    ("point", "got"),
    [
        (np.ones(1), "got length 1"),
        (np.ones(3), "got length 3"),
        (np.float64(1.0), "got a scalar"),
        (np.ones((2, 2)), r"got an array of shape \(2, 2\)"),
    ],
)
def test_two_variable_entries_refuse_other_lengths(name, point, got):
    entry = getattr(ds.functions, name)
    message = rf"{name} is a function of 2 variables: it takes one vector of length 2, {got}"
    calls = [
        lambda: entry(point),
        lambda: jax.jit(entry)(point),
        lambda: jax.grad(entry)(jnp.asarray(point, dtype=float)),
        lambda: ds.gradient(entry)(point),
        lambda: ds.minimize(entry, point),
    ]
    for call in calls:
        with pytest.raises(InputError, match=message):
            call()


@pytest.mark.parametrize(
    ("name", "point", "message"),
    [
        ("rosenbrock", np.ones(1), r"rosenbrock takes one vector of length >= 2, got length 1"),
        ("sphere", np.float64(3.0), r"sphere takes one vector of length >= 1, got a scalar"),
        ("rastrigin", np.ones((2, 2)), r"rastrigin .* got an array of shape \(2, 2\)"),
        ("styblinski_tang", np.ones(0), r"styblinski_tang .* length >= 1, got length 0"),
    ],
)
def test_n_dimensional_entries_refuse_lengths_they_are_not_defined_for(name, point, message):
    entry = getattr(ds.functions, name)
    for call in (
        lambda: entry(point),
        lambda: jax.jit(entry)(point),
        lambda: ds.gradient(entry)(point),
    ):
        with pytest.raises(InputError, match=message):
            call()


@pytest.mark.parametrize("name", N_DIMENSIONAL)
def test_with_dim_gives_the_metadata_of_that_dimension(name, x64):
    entry = getattr(ds.functions, name)
    sized = entry.with_dim(10)
    assert sized.name == name and sized.dim == 10 and sized.fn is entry.fn
    assert len(sized.start) == 10 and len(sized.bounds) == 10
    assert sized.minimizers[0].shape == (10,) and sized.minimizers[0].dtype == np.float64
    assert float(sized(sized.minimizers[0])) == pytest.approx(sized.minimum, abs=1e-11)
    assert sized.minimum == pytest.approx(reference_value(name, sized.minimizers[0]), abs=1e-11)
    assert sized is entry.with_dim(10) is ds.functions.get(name, 10)  # polished once
    assert entry.with_dim(2) is entry and sized.with_dim(2) is entry


def test_styblinski_tang_minimum_grows_with_the_dimension():
    one = ds.functions.styblinski_tang.with_dim(1).minimum
    assert one == pytest.approx(-39.16616570377142, rel=1e-12)
    assert ds.functions.styblinski_tang.with_dim(7).minimum == pytest.approx(7 * one, rel=1e-12)


@pytest.mark.parametrize(
    ("name", "dim", "message"),
    [
        ("rosenbrock", 1, r"rosenbrock is defined for dim >= 2 \(an integer\), got dim=1"),
        ("sphere", 0, r"sphere is defined for dim >= 1"),
        ("rastrigin", 2.5, r"rastrigin is defined for dim >= 1 \(an integer\), got dim=2.5"),
        ("styblinski_tang", True, r"got dim=True"),
        ("booth", 3, r"booth is a function of 2 variables, got dim=3; only the n-dimensional"),
        ("himmelblau", 1, r"himmelblau is a function of 2 variables, got dim=1"),
    ],
)
def test_with_dim_refuses_dimensions_a_function_does_not_have(name, dim, message):
    with pytest.raises(InputError, match=message):
        getattr(ds.functions, name).with_dim(dim)
    with pytest.raises(InputError, match=message.split(",")[0]):
        ds.functions.get(name, dim)


def test_two_variable_with_dim_2_is_the_function_itself():
    assert ds.functions.booth.with_dim(2) is ds.functions.booth
    assert ds.functions.get("booth", 2) is ds.functions.booth


def test_get_refuses_what_is_not_a_name():
    with pytest.raises(DescendTypeError, match="name of a test function"):
        ds.functions.get(jnp.ones(2))
    assert not ds.functions.is_known(jnp.ones(2)) and ds.functions.is_known("booth")
