"""Derivatives and gradients: the seed's numbers and central finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from descend.errors import DescendTypeError, FunctionError, InputError


def central_difference(f, x, h=1e-6):
    """Numerical gradient of f at the float64 vector x, one coordinate at a time."""
    x = np.asarray(x, dtype=np.float64)
    grad = np.empty_like(x)
    for i in range(x.size):
        step = np.zeros_like(x)
        step[i] = h
        grad[i] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


def test_seed_derivative_of_5x_squared_at_1_is_10():
    assert float(ds.derivative(lambda x: 5 * x**2)(1.0)) == 10.0


def test_seed_gradient_of_three_variable_function_at_ones():
    grads = ds.gradient(lambda x, z, m: 2 * x**2 + 6 * z**2 + 7 * m**3)(1.0, 1.0, 1.0)
    assert isinstance(grads, tuple)
    assert [float(g) for g in grads] == [4.0, 12.0, 21.0]


def test_derivative_accepts_integers():
    assert float(ds.derivative(lambda x: x**3)(2)) == 12.0


def test_gradient_of_vector_function_is_vector():
    grads = ds.gradient(lambda v: jnp.sum(v**2))(jnp.array([1.0, -2.0, 3.0]))
    np.testing.assert_array_equal(np.asarray(grads), [2.0, -4.0, 6.0])


def test_gradient_of_pytree_function_has_same_structure():
    params = {"w": jnp.ones((2, 3)), "b": jnp.array(0.5)}
    grads = ds.gradient(lambda p: jnp.sum(p["w"] ** 2) + p["b"] ** 3)(params)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    np.testing.assert_allclose(grads["w"], 2 * np.ones((2, 3)))
    np.testing.assert_allclose(grads["b"], 3 * 0.5**2)


FUNCTIONS = {
    "polynomial": lambda x: jnp.sum(x**4 - 3 * x**2 + x),
    "trigonometric": lambda x: jnp.sin(x[0]) * jnp.cos(x[1]) + jnp.exp(0.3 * x[2]),
    "rosenbrock": lambda x: jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2),
    "log_sum_exp": lambda x: jnp.log(jnp.sum(jnp.exp(x))),
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_gradient_matches_central_finite_differences_at_random_points(name, x64):
    f = FUNCTIONS[name]
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.uniform(-1.5, 1.5, size=3)
        exact = np.asarray(ds.gradient(f)(jnp.asarray(x)))
        numeric = central_difference(lambda v: float(f(jnp.asarray(v))), x)
        np.testing.assert_allclose(exact, numeric, rtol=1e-6, atol=1e-6)


def test_second_derivative_matches_finite_differences(x64):
    f = lambda x: jnp.sin(x) * x**2  # noqa: E731
    second = ds.derivative(f, order=2)
    first = ds.derivative(f)
    for x in (-1.3, 0.2, 2.1):
        numeric = (float(first(x + 1e-6)) - float(first(x - 1e-6))) / 2e-6
        assert float(second(x)) == pytest.approx(numeric, rel=1e-6)


def test_value_and_grad_returns_both():
    value, grad = ds.value_and_grad(lambda x: x**3)(2.0)
    assert (float(value), float(grad)) == (8.0, 12.0)


def test_hessian_matches_finite_differences_of_gradient(x64):
    f = FUNCTIONS["rosenbrock"]
    x = np.array([0.3, -0.7, 1.1])
    exact = np.asarray(ds.hessian(f)(jnp.asarray(x)))
    numeric = np.stack(
        [
            central_difference(lambda v, i=i: float(ds.gradient(f)(jnp.asarray(v))[i]), x)
            for i in range(3)
        ]
    )
    np.testing.assert_allclose(exact, numeric, rtol=1e-5, atol=1e-5)


def test_non_scalar_output_is_refused_with_its_shape():
    with pytest.raises(FunctionError, match=r"single real scalar, got shape \(3,\)"):
        ds.gradient(lambda v: v**2)(jnp.ones(3))


@pytest.mark.parametrize(
    ("f", "got"),
    [
        (lambda v: lambda x: x, "got a function of type function; it makes functions"),
        (lambda v: ds.functions.rosenbrock, "got a function of type TestFunction"),
        (lambda v: (v[0], v[1]), "got a tuple of 2 items"),
        (lambda v: None, "got None"),
    ],
)
def test_output_that_is_not_a_number_is_refused_by_name(f, got):
    with pytest.raises(FunctionError, match=f"single real scalar, {got}"):
        ds.gradient(f)(jnp.ones(2))
    with pytest.raises(FunctionError, match=f"single real scalar, {got}"):
        ds.hessian(f)(jnp.ones(2))


def test_gradient_of_functions_get_says_to_pass_the_function():
    with pytest.raises(DescendTypeError, match="name of a test function"):
        ds.gradient(ds.functions.get)(jnp.ones(2))


def test_gradient_of_a_test_function_entry():
    g = ds.gradient(ds.functions.rosenbrock)(jnp.array([-1.2, 1.0]))
    np.testing.assert_allclose(g, [-215.6, -88.0], rtol=1e-5)


def test_complex_output_is_refused():
    with pytest.raises(FunctionError, match="complex"):
        ds.gradient(lambda x: x * (1 + 1j))(1.0)


def test_derivative_of_vector_argument_points_to_gradient():
    with pytest.raises(InputError, match="use gradient"):
        ds.derivative(lambda v: jnp.sum(v))(jnp.ones(2))


@pytest.mark.parametrize("order", [0, -1, 1.5, True])
def test_derivative_order_must_be_positive_integer(order):
    with pytest.raises(InputError, match="order"):
        ds.derivative(lambda x: x, order=order)


def test_a_list_point_is_a_vector_and_errors_inside_f_are_named():
    gradient = ds.gradient(lambda v: jnp.sum(v**2))([1.0, 2.0])
    np.testing.assert_allclose(gradient, [2.0, 4.0])
    with pytest.raises(ds.errors.FunctionError, match="the function raised ZeroDivisionError"):
        ds.gradient(lambda v: v / 0 if isinstance(v, float) else 1 / 0)(1.0)
