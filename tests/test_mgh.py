"""The Moré–Garbow–Hillstrom problems: formulas checked against the paper's numbers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from scipy.optimize._numdiff import approx_derivative

import descend as ds
from descend.errors import InputError

PROBLEMS = {problem.name: problem for problem in ds.mgh.problems()}


def _numpy(problem):
    compiled = jax.jit(jax.value_and_grad(problem))

    def fun(x):
        with jax.enable_x64(True):
            value, grad = compiled(jnp.asarray(x, dtype=jnp.float64))
        return float(value), np.asarray(grad)

    return fun


def test_the_eighteen_problems_of_the_paper():
    numbers = [p.number for p in PROBLEMS.values()]
    assert numbers == sorted(numbers) and len(numbers) == 18
    for problem in PROBLEMS.values():
        assert len(problem.start) == problem.n
        with jax.enable_x64(True):
            assert problem.residuals(jnp.asarray(problem.start)).shape == (problem.m,)


@pytest.mark.parametrize("name", PROBLEMS)
def test_gradient_matches_finite_differences_at_the_start(name):
    problem = PROBLEMS[name]
    fun = _numpy(problem)
    start = np.asarray(problem.start)
    expected = approx_derivative(lambda x: fun(x)[0], start, method="3-point")
    # Central differences carry about 1e-10 of f's scale (1e12 for brown_badly_scaled).
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(fun(start)[1], expected, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("name", [n for n, p in PROBLEMS.items() if p.minimizer is not None])
def test_the_papers_minimizer_gives_its_minimum(name):
    problem = PROBLEMS[name]
    value = _numpy(problem)(np.asarray(problem.minimizer, dtype=float))[0]
    assert value == pytest.approx(problem.minimum, abs=1e-7)


@pytest.mark.parametrize("name", PROBLEMS)
def test_scipy_reaches_a_value_the_paper_reports(name):
    """SciPy's BFGS or L-BFGS-B, from the paper's start, ends at one of its reported values."""
    problem = PROBLEMS[name]
    reported = np.array([problem.minimum, *problem.local_minima])
    gaps = []
    for method in ("BFGS", "L-BFGS-B"):
        end = scipy.optimize.minimize(
            _numpy(problem), np.asarray(problem.start), jac=True, method=method,
            options={"gtol": 1e-10, "maxiter": 20_000},
        )  # fmt: skip
        gaps.append(np.min(np.abs(end.fun - reported) / np.maximum(1.0, np.abs(reported))))
    assert min(gaps) <= 1e-6, gaps


def test_unknown_problem_names_the_closest():
    with pytest.raises(InputError, match="wood"):
        ds.mgh.get("woods")
