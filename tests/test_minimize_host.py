"""minimize with functions JAX cannot trace (jac=), and SciPy's conventions."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from scipy.optimize._numdiff import approx_derivative

import descend as ds
from descend.calculus import finite_difference
from descend.errors import DescendWarning, FunctionError, InputError

TARGET = np.array([0.0, 1.0, 2.0])


def numpy_f(x):
    """NumPy code: JAX cannot trace it (np.sin of a tracer, float())."""
    return float(np.sum((x - TARGET) ** 2) + np.sin(x[0]) + 0.1 * np.sum(x**4))


def numpy_grad(x):
    grad = 2 * (x - TARGET) + 0.4 * x**3
    grad[0] += np.cos(x[0])
    return grad


def test_a_numpy_function_is_refused_in_one_sentence_naming_jac():
    with pytest.raises(FunctionError) as error:
        ds.minimize(numpy_f, np.zeros(3))
    message = str(error.value)
    assert "jac=" in message and "\n" not in message
    assert "'2-point'" in message


@pytest.mark.parametrize("form", ["callable", "value_and_grad"])
def test_jac_gives_scipys_minimizer(form):
    if form == "callable":
        result = ds.minimize(numpy_f, np.zeros(3), jac=numpy_grad, tol=1e-9, optimizer="lbfgs")
    else:
        result = ds.minimize(
            lambda x: (numpy_f(x), numpy_grad(x)),
            np.zeros(3),
            jac=True,
            tol=1e-9,
            optimizer="lbfgs",
        )
    reference = scipy.optimize.minimize(
        numpy_f, np.zeros(3), jac=numpy_grad, method="BFGS", tol=1e-12
    )
    assert result.converged, result.reason
    np.testing.assert_allclose(result.x, reference.x, atol=1e-8)
    assert result.fun == pytest.approx(reference.fun, rel=1e-12)
    np.testing.assert_allclose(result.grad, numpy_grad(result.x), rtol=1e-12)
    assert result.history["value"].shape == (result.n_iter + 1,)
    assert result.history["value"][0] == numpy_f(np.zeros(3))


@pytest.mark.parametrize("optimizer", ["gd", "lbfgs"])
def test_a_host_function_takes_the_steps_of_its_jax_twin(optimizer):
    """Full float64 through the callbacks: the path is that of the same function in JAX."""

    def jax_f(x):
        return jnp.sum((x - TARGET) ** 2) + jnp.sin(x[0]) + 0.1 * jnp.sum(x**4)

    twin = ds.minimize(jax_f, np.zeros(3), optimizer=optimizer, tol=1e-9)
    host = ds.minimize(numpy_f, np.zeros(3), jac=numpy_grad, optimizer=optimizer, tol=1e-9)
    assert host.converged and twin.converged
    assert abs(host.n_iter - twin.n_iter) <= 1
    # All but the last steps, where rounding of f (1e-16) moves the line search's choice.
    n = min(host.n_iter, twin.n_iter) - 1
    np.testing.assert_allclose(host.history["x"][:n], twin.history["x"][:n], rtol=1e-12, atol=1e-14)


def test_stopping_rules_apply_to_host_functions():
    result = ds.minimize(numpy_f, np.zeros(3), jac=numpy_grad, max_iter=3)
    assert result.status == "max_iter" and result.n_iter == 3
    stopped = ds.minimize(numpy_f, np.zeros(3), jac=numpy_grad, callback=lambda x: True)
    assert stopped.status == "callback" and stopped.n_iter == 1


@pytest.mark.parametrize("method", ["2-point", "3-point"])
@pytest.mark.parametrize(
    ("x", "lower", "upper"),
    [
        (np.array([0.3, -2.0, 0.0]), None, None),
        (np.array([1e6, -1e-7, 5.0]), None, None),
        # near and at the bounds: steps flipped, shortened or made one-sided
        (np.array([0.3, -2.0, 1e-9]), np.array([0.3, -3.0, 0.0]), np.array([1.0, -2.0, 1e-8])),
        (np.array([1.0, 0.0, 0.5]), np.array([0.0, -1e-9, 0.0]), np.array([1.0, 1e-9, 1.0])),
    ],
)
def test_finite_differences_are_scipys(method, x, lower, upper):
    bounds = {} if lower is None else {"bounds": (lower, upper)}
    expected = approx_derivative(numpy_f, x, method=method, **bounds)
    ours = finite_difference(numpy_f, x, numpy_f(x), method, lower, upper)
    np.testing.assert_allclose(ours, expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("method", ["2-point", "3-point"])
def test_finite_difference_minimization_matches_scipy_lbfgsb(method):
    bounds = [(0.5, 1.0), (None, 0.5), (None, None)]
    with pytest.warns(DescendWarning, match="finite differences"):
        result = ds.minimize(numpy_f, [0.7, 0.0, 0.0], jac=method, bounds=bounds, optimizer="lbfgs")
    reference = scipy.optimize.minimize(
        numpy_f, [0.7, 0.0, 0.0], jac=method, bounds=bounds, method="L-BFGS-B",
        options={"gtol": 1e-10, "ftol": 0.0},
    )  # fmt: skip
    assert result.converged, result.reason
    np.testing.assert_allclose(result.x, reference.x, atol=1e-6)
    np.testing.assert_array_equal(result.active_mask, [-1, 1, 0])


def test_host_function_with_many_starts():
    starts = np.array([[0.0, 0.0, 0.0], [3.0, -2.0, 1.0], [-1.0, 4.0, 0.5]])
    result = ds.minimize(numpy_f, starts, jac=numpy_grad, batched=True)
    for i, start in enumerate(starts):
        alone = ds.minimize(numpy_f, start, jac=numpy_grad)
        np.testing.assert_allclose(result.x[i], alone.x, rtol=1e-12)
        assert result.n_iter[i] == alone.n_iter
        assert result.status[i] == alone.status == "converged"


@pytest.mark.parametrize(
    ("jac", "words"),
    [("central", "'2-point' or '3-point'"), (lambda x: np.zeros(2), "one number per variable")],
)
def test_bad_jac_is_refused(jac, words):
    with pytest.raises((InputError, FunctionError), match=words):
        ds.minimize(numpy_f, np.zeros(3), jac=jac)


# ------------------------------------------------------------------ SciPy's conventions


def test_result_answers_scipys_names():
    result = ds.minimize("rosenbrock", optimizer="lbfgs")
    assert result.success is result.converged is True
    assert result.message == result.reason
    assert (result.nit, result.nfev, result.njev) == (result.n_iter, result.n_fev, result.n_fev)
    assert result.jac is result.grad
    assert result.status == "converged" and result.status == 0 and int(result.status) == 0
    gd = ds.minimize("rosenbrock")  # gd's line search evaluates values only
    assert gd.njev == gd.n_iter + 1 < gd.nfev
    capped = ds.minimize("rosenbrock", max_iter=5)
    assert capped.status == "max_iter" and capped.status == 1 and not capped.success


def test_callback_stop_iteration_as_in_scipy():
    def stop_at_third():
        seen = []

        def callback(intermediate_result):
            seen.append(intermediate_result.fun)
            if len(seen) == 3:
                raise StopIteration

        return callback

    reference = scipy.optimize.minimize(scipy.optimize.rosen, [-1.2, 1.0], callback=stop_at_third())
    result = ds.minimize("rosenbrock", [-1.2, 1.0], callback=stop_at_third())
    assert result.nit == reference.nit == 3
    assert int(result.status) == reference.status == 99
    assert not result.success and not reference.success


def test_options_map_one_to_one():
    via_options = ds.minimize("rosenbrock", options={"maxiter": 7, "gtol": 1e-3})
    direct = ds.minimize("rosenbrock", max_iter=7, tol=1e-3)
    assert (via_options.n_iter, via_options.status) == (direct.n_iter, direct.status)
    np.testing.assert_array_equal(via_options.x, direct.x)
    with pytest.raises(InputError, match="history_size"):
        ds.minimize("rosenbrock", options={"maxcor": 5})
    with pytest.raises(InputError, match="unknown option 'maxiters'"):
        ds.minimize("rosenbrock", options={"maxiters": 5})
    with pytest.raises(InputError, match="say the same thing"):
        ds.minimize("rosenbrock", max_iter=5, options={"maxiter": 5})


def test_scipys_call_runs_unchanged_on_a_jax_function():
    """scipy.optimize.minimize(fun, x0, bounds=..., options=...) becomes ds.minimize alike."""

    def fun(x):
        return jnp.sum((x - 2.0) ** 2)

    bounds = [(0, 1), (0, 3)]
    options = {"maxiter": 100, "gtol": 1e-8}
    ours = ds.minimize(fun, [0.5, 0.5], bounds=bounds, options=options)
    reference = scipy.optimize.minimize(
        lambda x: float(np.sum((x - 2.0) ** 2)), [0.5, 0.5], method="L-BFGS-B", bounds=bounds,
        options=options,
    )  # fmt: skip
    assert ours.success and reference.success
    np.testing.assert_allclose(ours.x, reference.x, atol=1e-6)


def test_an_exception_in_a_host_function_is_raised_with_the_point():
    def f(x):
        if x[0] > 0.5:
            raise ZeroDivisionError("division by zero")
        return float(np.sum((x - 1.0) ** 2))

    with pytest.raises(FunctionError, match=r"raised ZeroDivisionError at x = array\(\[") as info:
        ds.minimize(f, np.zeros(3), jac=lambda x: 2 * (x - 1.0), verbose=0)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    # The next run is not blamed for it.
    result = ds.minimize(
        lambda x: float(np.sum((x - 1.0) ** 2)), np.zeros(3), jac=lambda x: 2 * (x - 1.0),
        verbose=0,
    )  # fmt: skip
    np.testing.assert_allclose(result.x, np.ones(3), atol=1e-6)


def test_jac_false_is_scipys_no_gradient_given_so_jax_differentiates():
    f = lambda x: jnp.sum((x - 2.0) ** 2)  # noqa: E731
    np.testing.assert_array_equal(
        ds.minimize(f, np.zeros(2), jac=False, verbose=0).x,
        ds.minimize(f, np.zeros(2), verbose=0).x,
    )
