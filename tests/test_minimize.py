"""minimize(): the seed's loop, its stopping rules, and its result."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import descend as ds
from descend.errors import DescendTypeError, FunctionError, InputError


@pytest.mark.parametrize("name", ds.functions.names())
def test_every_test_function_is_minimized_from_its_start(name):
    function = ds.functions.get(name)
    result = ds.minimize(function, tol=1e-8, max_iter=50_000)
    if name == "ackley":  # a cone at its minimizer: the gradient norm never gets small
        assert result.status == "no_decrease", result.reason
    else:
        assert result.converged, result.reason
    distance = min(np.max(np.abs(result.x - m)) for m in function.minimizers)
    assert distance < 1e-5
    assert result.fun == pytest.approx(function.minimum, abs=1e-10)


@pytest.mark.parametrize(
    "optimizer", [ds.optim.gd(lr=1e-3), ds.optim.momentum(lr=1e-3, momentum=0.9)]
)
def test_fixed_step_optimizers_minimize_rosenbrock(optimizer):
    result = ds.minimize("rosenbrock", optimizer=optimizer, tol=1e-6, max_iter=200_000)
    assert result.converged, result.reason
    np.testing.assert_allclose(result.x, [1.0, 1.0], atol=1e-4)


def test_agrees_with_scipy_bfgs_on_a_smooth_problem():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(30, 4))
    b = rng.normal(size=30)

    def f(x):
        return jnp.sum(jnp.log1p(jnp.exp(A @ x - b))) + 0.1 * jnp.sum(x**2)

    ours = ds.minimize(f, np.zeros(4), tol=1e-10)
    with jax.enable_x64(True):

        def fun(x):
            value, grad = jax.value_and_grad(f)(jnp.asarray(x))
            return float(value), np.asarray(grad)

        reference = scipy.optimize.minimize(fun, np.zeros(4), jac=True, method="BFGS", tol=1e-12)
    np.testing.assert_allclose(ours.x, reference.x, rtol=1e-7, atol=1e-9)
    assert ours.fun == pytest.approx(reference.fun, rel=1e-12)


def test_result_fields_and_history():
    result = ds.minimize(lambda x: (x - 3.0) ** 2 + 1.0, 0.0, optimizer=ds.optim.gd(lr=0.1))
    assert result.converged and result.status == "converged"
    assert "below tol" in result.reason
    assert result.x == pytest.approx(3.0, abs=1e-6)
    assert result.fun == pytest.approx(1.0)
    assert result.grad_norm <= 1e-6
    assert result.history["value"].shape == (result.n_iter + 1,)
    assert result.history["x"][0] == 0.0
    assert result.history["x"][-1] == result.x
    assert result.n_fev == result.n_iter + 1
    assert np.all(np.diff(result.history["value"]) <= 0)


def test_pytree_start_gives_pytree_result():
    x0 = {"w": np.zeros(3), "b": 0.0}
    target = np.array([1.0, -2.0, 0.5])

    def f(p):
        return jnp.sum((p["w"] - target) ** 2) + (p["b"] + 4.0) ** 2

    result = ds.minimize(f, x0)
    np.testing.assert_allclose(result.x["w"], target, atol=1e-6)
    assert result.x["b"] == pytest.approx(-4.0, abs=1e-6)
    assert set(result.grad) == {"w", "b"}
    assert result.history["x"]["w"].shape == (result.n_iter + 1, 3)


def test_expression_text_and_dict_start():
    result = ds.minimize("(x-3)**2 + 10*(y+1)**2", {"x": 0, "y": 0})
    assert result.variables == ("x", "y")
    assert result.x["x"] == pytest.approx(3.0, abs=1e-6)
    assert result.x["y"] == pytest.approx(-1.0, abs=1e-6)


def test_float64_reaches_tight_tolerance_without_touching_global_flag():
    before = jax.config.jax_enable_x64
    result = ds.minimize("rosenbrock", tol=1e-10)
    assert result.converged and result.grad_norm <= 1e-10
    assert result.x.dtype == np.float64
    assert jax.config.jax_enable_x64 == before
    assert jnp.ones(1).dtype == jnp.float32


def test_float32_when_asked():
    result = ds.minimize(lambda x: jnp.sum((x - 1.0) ** 2), np.zeros(2), dtype="float32", tol=1e-4)
    assert result.x.dtype == np.float32
    assert result.converged


def test_sign_change_bracket_contains_true_minimizer():
    def f(x):
        return jnp.cosh(x - 0.7) + 0.1 * x**2

    true = scipy.optimize.minimize_scalar(lambda x: float(np.cosh(x - 0.7) + 0.1 * x**2)).x
    # f'' is about 1.2 near the minimum, so lr = 1.5 overshoots on every step.
    result = ds.minimize(f, 3.0, optimizer=ds.optim.gd(lr=1.5), max_iter=200)
    assert result.bracket is not None
    left, right = result.bracket
    assert left < true < right or right < true < left
    assert result.n_overshoots == result.n_iter
    assert any("overshoot" in hint for hint in result.hints)


def test_refine_bisects_the_sign_change_to_the_minimizer():
    def f(x):
        return jnp.cosh(x - 0.7) + 0.1 * x**2

    # The root of the derivative sinh(x - 0.7) + 0.2 x, to machine precision.
    true = scipy.optimize.brentq(lambda x: np.sinh(x - 0.7) + 0.2 * x, -5, 5, xtol=1e-15)
    result = ds.minimize(f, 3.0, optimizer=ds.optim.gd(lr=1.5), refine=True, tol=1e-10)
    assert result.status == "sign_change" and result.converged
    assert "derivative changed sign" in result.reason and "bisection" in result.reason
    assert result.n_iter == 1
    assert result.x == pytest.approx(true, abs=1e-9)
    left, right = result.bracket
    assert left <= true <= right


def test_refine_records_each_bracket_of_its_bisection(x64):
    def f(x):
        return jnp.cosh(x - 0.7) + 0.1 * x**2

    result = ds.minimize(f, 3.0, optimizer=ds.optim.gd(lr=1.5), refine=True, tol=1e-10,
                         verbose=0)  # fmt: skip
    brackets = result.history["bracket"]
    # The same bisection in NumPy, from the bracket where the derivative changed sign.
    left, right = brackets[0]
    expected = [(left, right)]
    for _ in range(len(brackets) - 1):
        middle = 0.5 * (left + right)
        if np.sinh(middle - 0.7) + 0.2 * middle < 0:
            left = middle
        else:
            right = middle
        expected.append((left, right))
    np.testing.assert_array_equal(brackets, expected)
    assert tuple(brackets[-1]) == result.bracket and len(brackets) >= 20
    assert "bracket" not in ds.minimize(f, 3.0, optimizer=ds.optim.gd(lr=0.1), verbose=0).history


def test_refine_is_for_one_variable():
    with pytest.raises(InputError, match="one variable"):
        ds.minimize(lambda x: jnp.sum(x**2), np.ones(2), refine=True)


def test_non_finite_values_stop_with_last_finite_point():
    result = ds.minimize(jnp.sqrt, 1.0, optimizer=ds.optim.gd(lr=10.0))
    assert result.status == "diverged" and not result.converged
    assert "diverged" in result.reason and "smaller learning rate" in result.reason
    assert result.x == 1.0 and np.isfinite(result.fun)


def test_overflow_to_infinity_is_divergence():
    result = ds.minimize(lambda x: x**2, 1.0, optimizer=ds.optim.gd(lr=1e100), max_iter=100)
    assert result.status == "diverged"
    assert np.isfinite(result.x) and np.isfinite(result.fun)
    assert result.history["x"][-1] == result.x


def test_growing_values_are_reported_as_diverging_steps():
    """Values that stay finite but explode are a divergence (once: "no further decrease")."""
    result = ds.minimize(lambda x: x**2, 1.0, optimizer=ds.optim.gd(lr=1.5), patience=10)
    assert result.status == "diverged"
    assert "grew from 1 at x0" in result.reason and "lr=1.5" in result.reason
    assert result.x == result.history["x"][-1]  # the last point, as for non-finite values


def test_budget_reason():
    result = ds.minimize("rosenbrock", optimizer=ds.optim.gd(lr=1e-4), max_iter=50)
    assert result.status == "max_iter" and result.n_iter == 50
    assert "maximum iterations" in result.reason


def test_no_further_decrease_when_step_stops_changing_x():
    # |x| has no useful gradient information at 0 for the line search: it stalls there.
    result = ds.minimize(lambda x: jnp.abs(x) + 1.0, 0.3, tol=0.0)
    assert result.status == "no_decrease"
    assert "no further decrease" in result.reason


def test_second_call_with_same_shapes_does_not_retrace():
    traces = []

    def f(x):
        traces.append(1)
        return jnp.sum((x - 2.0) ** 2)

    optimizer = ds.optim.gd(lr=0.1)
    ds.minimize(f, np.zeros(3), optimizer=optimizer)
    first = len(traces)
    ds.minimize(f, np.ones(3), optimizer=ds.optim.gd(lr=0.1))
    assert len(traces) == first


def test_start_where_function_is_undefined_is_an_error():
    with pytest.raises(FunctionError, match="not finite at x0"):
        ds.minimize(jnp.log, 0.0)


def test_vector_valued_function_is_refused():
    with pytest.raises(FunctionError, match="single real scalar"):
        ds.minimize(lambda x: x**2, np.ones(3))


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"tol": -1.0}, "tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"dtype": "float16"}, "dtype"),
        ({"optimizer": "adamm"}, "unknown optimizer"),
        ({"optimizer": 3}, "optimizer must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, fragment):
    with pytest.raises((InputError, TypeError), match=fragment):
        ds.minimize(lambda x: x**2, 1.0, **kwargs)


def make_bowl(scale=1.0):
    """A factory: it returns the objective rather than a value."""
    return lambda x: scale * jnp.sum(x**2)


@pytest.mark.parametrize(
    ("objective", "got"),
    [
        (make_bowl, "got a function of type function; it makes functions"),
        (lambda x: ds.functions.get("booth"), "got a function of type TestFunction"),
        (lambda x: None, "got None"),
        (lambda x: [x[0], x[1]], "got a list of 2 items"),
        (lambda x: "value", "got an object of type str"),
    ],
)
def test_an_objective_returning_no_number_is_refused_by_name(objective, got):
    with pytest.raises(FunctionError, match=f"must return a single real scalar, {got}"):
        ds.minimize(objective, np.ones(2))


def test_passing_functions_get_as_the_objective_says_to_pass_the_function():
    with pytest.raises(DescendTypeError, match=r"pass the function itself, e.g. ds.minimize\("):
        ds.minimize(ds.functions.get, np.ones(2))


def test_test_functions_are_objectives_as_they_are():
    result = ds.minimize(ds.functions.booth)  # from its start
    np.testing.assert_allclose(result.x, ds.functions.booth.minimizers[0], atol=1e-6)
    result = ds.minimize(ds.functions.sphere, [1.0, -2.0, 3.0])
    assert result.converged and result.x.shape == (3,)
    with pytest.raises(InputError, match=r"booth is a function of 2 variables.*got length 3"):
        ds.minimize(ds.functions.booth, [1.0, -2.0, 3.0])


def test_missing_start_for_plain_function():
    with pytest.raises(InputError, match="x0 is required"):
        ds.minimize(lambda x: x**2)


def test_nan_gradient_where_not_differentiable_is_reported():
    # sqrt(|x|) from 1 with lr=2 lands exactly on 0, where the derivative is infinite.
    result = ds.minimize(lambda x: jnp.sqrt(jnp.abs(x)), 1.0, optimizer=ds.optim.gd(lr=2.0))
    assert result.status == "diverged"
    assert "gradient is not finite" in result.reason and "differentiable" in result.reason
    assert result.x == 1.0 and np.isfinite(result.grad)


def test_a_list_start_is_a_vector_as_in_scipy():
    import scipy.optimize

    def f(v):
        return jnp.sum((v - 1.0) ** 2) + 0.1 * jnp.sum(v**4)

    result = ds.minimize(f, [0.0, 0.0], tol=1e-10)
    reference = scipy.optimize.minimize(
        lambda v: np.sum((v - 1.0) ** 2) + 0.1 * np.sum(v**4), [0.0, 0.0], method="BFGS",
        tol=1e-12,
    )  # fmt: skip
    np.testing.assert_allclose(result.x, reference.x, atol=1e-6)
    assert isinstance(result.x, np.ndarray) and result.x.shape == (2,)
    assert ds.minimize(f, (0.0, 0.0)).x.shape == (2,)  # a tuple too, as ds.compare takes it


@pytest.mark.parametrize(
    ("f", "words"),
    [
        (lambda v: v["a"] + 1.0, "the objective raised TypeError"),
        (lambda v: undefined_here(v), "NameError"),  # noqa: F821
    ],
)
def test_an_error_inside_the_users_function_is_reported_as_its_own(f, words):
    with pytest.raises(FunctionError, match=words) as error:
        ds.minimize(f, [0.0, 0.0])
    assert "when called with an array of shape (2,)" in str(error.value)


def test_lbfgs_by_default_stops_on_tol_not_on_its_own_tolerances():
    """Inside minimize, lbfgs's own tolerances left unset are off: SciPy is the reference."""
    import scipy.optimize

    result = ds.minimize("rosenbrock", optimizer="lbfgs")
    reference = scipy.optimize.minimize(scipy.optimize.rosen, [-1.2, 1.0], method="L-BFGS-B")
    assert result.converged and result.grad_norm <= 1e-6
    np.testing.assert_allclose(result.x, reference.x, atol=1e-5)
    assert ds.optim.lbfgs().hyperparams["tolerance_grad"] is None  # torch's 1e-7 by hand


def test_a_stop_by_the_optimizers_own_tolerance_says_so_with_its_number():
    result = ds.minimize("rosenbrock", optimizer=ds.optim.lbfgs(tolerance_change=1e-9))
    assert result.status == "no_decrease" and not result.converged
    assert "lbfgs made no step" in result.reason and "tolerance_change=1e-09" in result.reason
    assert "has not reached tol=1e-06" in result.reason


@pytest.mark.parametrize("where", ["minimize", "fit", "chained", "a parameter group"])
def test_an_ascending_optimizer_is_refused_with_the_fix(where):
    adam = ds.optim.adam(lr=0.05, maximize=True)
    with pytest.raises(InputError, match="ascends it"):
        if where == "minimize":
            ds.minimize(lambda x: -((x - 1.0) ** 2), 0.0, optimizer=adam)
        elif where == "fit":
            ds.fit("linear", np.ones((4, 1)), np.ones(4), optimizer=adam, epochs=1, verbose=0)
        elif where == "chained":
            chained = ds.optim.chain(ds.optim.clip_by_global_norm(1.0), adam)
            ds.minimize(lambda x: x**2, 1.0, optimizer=chained)
        else:
            groups = ds.optim.partition({"w": ds.optim.sgd(), "b": adam}, {"w": "w", "b": "b"})
            ds.fit("linear", np.ones((4, 1)), np.ones(4), optimizer=groups, epochs=1, verbose=0)
