"""minimize(..., bounds=...): projected steps and the bounded L-BFGS, SciPy's L-BFGS-B as oracle."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import descend as ds
from descend.cli import main
from descend.errors import DescendWarning, InputError


def _value_and_grad_numpy(f):
    """``f`` (JAX) as SciPy takes it: float64 NumPy value and gradient."""
    compiled = jax.jit(jax.value_and_grad(f))

    def fun(x):
        with jax.enable_x64(True):
            value, grad = compiled(jnp.asarray(x, dtype=jnp.float64))
        return float(value), np.asarray(grad, dtype=float)

    return fun


def _scipy_lbfgsb(f, x0, bounds):
    return scipy.optimize.minimize(
        _value_and_grad_numpy(f), np.asarray(x0, float), jac=True, method="L-BFGS-B",
        bounds=bounds, options={"gtol": 1e-12, "ftol": 0.0, "maxiter": 10_000},
    )  # fmt: skip


def _rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


PROBLEMS = {
    # name: (f, x0, bounds)
    "rosenbrock 2-D, upper bound active": (_rosenbrock, [-1.2, 1.0], [(None, 0.5), (-1.0, 2.0)]),
    "rosenbrock 10-D, mixed bounds": (
        _rosenbrock,
        np.array([0.3] * 8 + [1.0, 1.2]),
        [(-1.0, 0.7), (0.0, 0.8)] * 2 + [(None, None)] * 4 + [(0.9, 1.5), (1.1, None)],
    ),
    "shifted quadratic, lower bounds active": (
        lambda x: jnp.sum((x - jnp.array([-1.0, 2.0, -3.0])) ** 2 * jnp.array([1.0, 10.0, 3.0])),
        [1.0, 1.0, -1.0],
        [(0.0, 5.0), (None, 1.5), (-2.0, 0.0)],
    ),
}


@pytest.mark.parametrize("optimizer", ["lbfgs", "gd"])
@pytest.mark.parametrize("name", PROBLEMS)
def test_bounded_minimizer_matches_scipy_lbfgsb(name, optimizer):
    f, x0, bounds = PROBLEMS[name]
    reference = _scipy_lbfgsb(f, x0, bounds)
    assert reference.success, reference.message
    result = ds.minimize(f, x0, bounds=bounds, optimizer=optimizer, tol=1e-9, max_iter=50_000)
    assert result.converged, result.reason
    np.testing.assert_allclose(result.x, reference.x, atol=1e-6)
    assert result.fun == pytest.approx(reference.fun, rel=1e-9, abs=1e-12)
    low = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
    high = np.array([np.inf if b[1] is None else b[1] for b in bounds])
    assert np.all(result.x >= low) and np.all(result.x <= high)
    expected_active = np.where(reference.x <= low, -1, np.where(reference.x >= high, 1, 0))
    np.testing.assert_array_equal(result.active_mask, expected_active)
    if optimizer == "lbfgs":  # comparable evaluations
        assert result.nfev <= 3 * reference.nfev + 20, (result.nfev, reference.nfev)


def test_every_iterate_stays_in_the_box_for_a_fixed_step_optimizer():
    f, x0, bounds = PROBLEMS["shifted quadratic, lower bounds active"]
    result = ds.minimize(f, x0, bounds=bounds, optimizer=ds.optim.adam(lr=0.05), max_iter=5_000)
    path = result.history["x"]
    low = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
    high = np.array([np.inf if b[1] is None else b[1] for b in bounds])
    assert np.all(path >= low) and np.all(path <= high)
    np.testing.assert_allclose(result.x, _scipy_lbfgsb(f, x0, bounds).x, atol=1e-5)


def test_grad_norm_is_the_projected_gradient_norm():
    f, x0, bounds = PROBLEMS["rosenbrock 2-D, upper bound active"]
    result = ds.minimize(f, x0, bounds=bounds, optimizer="lbfgs")
    low, high = np.array([-np.inf, -1.0]), np.array([0.5, 2.0])
    grad = _value_and_grad_numpy(f)(result.x)[1]
    projected = result.x - np.clip(result.x - grad, low, high)
    assert result.grad_norm == pytest.approx(np.linalg.norm(projected), abs=1e-12)
    np.testing.assert_allclose(result.grad, grad, rtol=1e-12)
    assert np.linalg.norm(grad) > 0.5  # the plain gradient is far from zero at the bound


def test_scipy_bounds_object_and_pytree_bounds():
    def f(p):
        return jnp.sum((p["w"] - 2.0) ** 2) + (p["b"] + 1.0) ** 2

    x0 = {"w": np.zeros(3), "b": np.asarray(0.0)}
    result = ds.minimize(
        f, x0, bounds=({"w": -1.0, "b": -0.5}, {"w": np.array([1.0, 3.0, 1.5]), "b": None})
    )
    np.testing.assert_allclose(result.x["w"], [1.0, 2.0, 1.5], atol=1e-7)
    assert float(result.x["b"]) == pytest.approx(-0.5, abs=1e-9)

    flat = ds.minimize(
        lambda x: jnp.sum((x - 2.0) ** 2), np.zeros(3),
        bounds=scipy.optimize.Bounds([-1.0, -1.0, -1.0], [1.0, 3.0, 1.5]),
    )  # fmt: skip
    np.testing.assert_allclose(flat.x, [1.0, 2.0, 1.5], atol=1e-7)
    np.testing.assert_array_equal(flat.active_mask, [1, 0, 1])


def test_expression_bounds_by_name():
    result = ds.minimize("(x-3)**2 + 10*(y+1)**2", {"x": 0, "y": 0}, bounds={"x": (None, 2)})
    assert result.x == pytest.approx({"x": 2.0, "y": -1.0}, abs=1e-7)
    np.testing.assert_array_equal(result.active_mask, [1, 0])


def test_a_start_outside_the_box_is_projected_with_a_warning():
    with pytest.warns(DescendWarning, match="outside the bounds"):
        result = ds.minimize(lambda x: jnp.sum(x**2), [5.0, -5.0], bounds=[(1.0, 2.0), (-1.0, 1.0)])
    np.testing.assert_array_equal(result.history["x"][0], [2.0, -1.0])
    np.testing.assert_allclose(result.x, [1.0, 0.0], atol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # inside: no warning
        ds.minimize(lambda x: jnp.sum(x**2), [1.5, 0.0], bounds=[(1.0, 2.0), (-1.0, 1.0)])


@pytest.mark.parametrize(
    ("bounds", "words"),
    [
        ([(0.0, 1.0)], "1 \\(low, high\\) pairs and x0 has 2"),
        ([(2.0, 1.0), (0, 1)], "low <= high"),
        ([(0.0, 1.0), (0, "a")], "must be a number or None"),
        ([(0.0, 1.0), 3.0], "must be a \\(low, high\\) pair"),
        ("0:1", "sequence of \\(low, high\\) pairs"),
    ],
)
def test_bad_bounds_are_refused_with_the_fix(bounds, words):
    with pytest.raises(InputError, match=words):
        ds.minimize(lambda x: jnp.sum(x**2), [0.5, 0.5], bounds=bounds)


def test_refine_and_complex_starts_refuse_bounds():
    with pytest.raises(InputError, match="without bounds"):
        ds.minimize(lambda x: x**2, 0.5, bounds=[(0, 1)], refine=True)
    with pytest.raises(InputError, match="real numbers"):
        ds.minimize(lambda z: jnp.abs(z) ** 2, np.array([1 + 1j]), bounds=[(0, 1), (0, 1)])


def test_cli_bounds_parsed_strictly(capsys):
    assert main(["minimize", "(x-3)**2 + 10*(y+1)**2", "--bounds", "x=0:2,y=:3"]) == 0
    out = capsys.readouterr().out
    assert "x = 2" in out and "x at its upper bound" in out
    for bad in ("x=0:__import__('os')", "x=1e400x:2", "z=0:1", "x=0:1,x=0:2", "x=nan:1", ""):
        assert main(["minimize", "(x-3)**2 + 10*(y+1)**2", "--bounds", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
    assert main(["minimize", "rosenbrock", "--x0", "0,0", "--bounds", "0:0.5,-1:2", "--json"]) == 0
    assert '"active_mask": [1, 0]' in capsys.readouterr().out


def test_lbfgs_settings_the_bounded_lbfgs_does_not_use_are_named():
    f, x0, bounds = PROBLEMS["shifted quadratic, lower bounds active"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds.minimize(f, x0, bounds=bounds, optimizer=ds.optim.lbfgs(history_size=5))
    with pytest.warns(DescendWarning, match="history_size is kept, lr, max_ls not used"):
        ds.minimize(f, x0, bounds=bounds, optimizer=ds.optim.lbfgs(lr=0.5, max_ls=5))


@pytest.mark.parametrize(
    "form",
    ["array (n, 2)", "rows as arrays", "zip(lows, highs)"],
)
def test_scipys_other_sequence_forms_of_bounds_are_read_as_pairs(form):
    """An (n, 2) array, a list of its rows and an iterable of pairs are SciPy's too."""
    lows, highs = [-1.0, -1.0], [0.5, 2.0]
    given = {
        "array (n, 2)": np.array([lows, highs]).T,
        "rows as arrays": list(np.array([lows, highs]).T),
        "zip(lows, highs)": zip(lows, highs, strict=True),
    }[form]
    result = ds.minimize(_rosenbrock, np.array([-0.9, 1.0]), bounds=given, verbose=0)
    expected = _scipy_lbfgsb(_rosenbrock, [-0.9, 1.0], list(zip(lows, highs, strict=True)))
    np.testing.assert_allclose(result.x, expected.x, atol=1e-6)


def test_a_bounds_object_with_an_entry_per_variable_is_refused_for_a_dict_x0():
    """Its entries would be matched to the dict's keys in sorted order, not as written."""

    def f(p):
        return (p["a"] - 3.0) ** 2 + (p["b"] + 3.0) ** 2

    with pytest.raises(InputError, match=r"bounds=\(lows, highs\)"):
        ds.minimize(f, {"b": 0.0, "a": 0.0}, bounds=scipy.optimize.Bounds([0, -2], [1, 2]))
    # Two numbers for every variable are unambiguous, as are pytrees of lows and highs.
    same = ds.minimize(f, {"b": 0.0, "a": 0.0}, bounds=scipy.optimize.Bounds(-2.0, 1.0))
    assert (float(same.x["a"]), float(same.x["b"])) == (1.0, -2.0)
    trees = ds.minimize(
        f, {"b": 0.0, "a": 0.0}, bounds=({"b": 0.0, "a": -2.0}, {"b": 1.0, "a": 2.0}), verbose=0
    )
    np.testing.assert_allclose([trees.x["a"], trees.x["b"]], [2.0, 0.0], atol=1e-6)


def test_lows_and_highs_as_two_arrays_for_an_array_x0_point_to_bounds():
    with pytest.raises(InputError, match=r"scipy\.optimize\.Bounds\(lows, highs\)"):
        ds.minimize(_rosenbrock, np.zeros(3), bounds=(np.zeros(3), np.ones(3)))


def test_a_start_holding_nan_is_refused_by_index_before_any_projection():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DescendWarning)  # no "projected" warning first
        with pytest.raises(InputError, match="x0 holds nan at index 1"):
            ds.minimize(_rosenbrock, np.array([0.0, np.nan, 0.0]), bounds=[(0, 1)] * 3)
