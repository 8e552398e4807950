"""A run stopped because its value no longer decreased returns its best point, not its
last: one run, the rows of a sweep and the starts of a batched run. The best point is
checked against the run's own recorded path and against the same run alone."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

import descend as ds

# Momentum at this rate climbs out of Rosenbrock's valley after iteration 22 and does
# not come back below that value within 100 iterations; it converges if left to run.
ROSENBROCK_MOMENTUM = {"optimizer": "momentum", "lr": 2e-3}


def test_no_decrease_returns_the_lowest_point_of_the_path_with_its_value_and_gradient():
    result = ds.minimize("rosenbrock", patience=100, verbose=0, **ROSENBROCK_MOMENTUM)
    values = result.history["value"]
    at = int(np.argmin(values))
    assert result.status == "no_decrease"
    assert values[-1] > values[at]  # the last point is worse: the test can tell them apart
    np.testing.assert_array_equal(result.x, result.history["x"][at])
    assert result.fun == pytest.approx(scipy.optimize.rosen(result.x), rel=1e-12)
    gradient = scipy.optimize.rosen_der(result.x)
    np.testing.assert_allclose(result.grad, gradient, rtol=1e-12)
    assert result.grad_norm == pytest.approx(np.linalg.norm(gradient), rel=1e-12)
    assert "returning that best point" in result.reason
    assert f"at iteration {at})" in result.reason


def test_the_default_patience_lets_momentum_come_back_down_and_converge():
    result = ds.minimize("rosenbrock", verbose=0, **ROSENBROCK_MOMENTUM)
    assert result.converged, result.reason
    reference = ds.minimize("rosenbrock", patience=100_000, verbose=0, **ROSENBROCK_MOMENTUM)
    assert result.n_iter == reference.n_iter
    np.testing.assert_array_equal(result.x, reference.x)


def test_a_run_that_only_climbs_returns_its_start():
    # Each step overshoots (x - 1)**2's minimum further (the error times -1.1): the value
    # grows from the start, which stays the best point.
    result = ds.minimize(
        lambda x: (x - 1.0) ** 2, 0.0, optimizer=ds.optim.gd(lr=1.05), patience=5,
        max_iter=1000, verbose=0,
    )  # fmt: skip
    values = result.history["value"]
    assert result.status == "no_decrease", result.reason
    assert values[-1] > values[0]
    assert result.x == 0.0 and result.fun == 1.0 and result.grad == -2.0
    assert "the value grew from 1 at x0" in result.reason
    assert "returning the best point (iteration 0, f = 1)" in result.reason


def test_every_row_of_a_sweep_returns_the_best_point_of_its_run_alone():
    rates = [1e-3, 2e-3, 3e-3]
    sweep = ds.minimize("rosenbrock", optimizer="momentum", lr=rates, patience=100, verbose=0)
    assert "no_decrease" in [r.status for r in sweep]
    for lr, row in zip(rates, sweep, strict=True):
        alone = ds.minimize("rosenbrock", optimizer="momentum", lr=lr, patience=100, verbose=0)
        assert row.status == alone.status and row.n_iter == alone.n_iter
        np.testing.assert_allclose(row.x, alone.x, rtol=1e-12)
        assert row.fun == pytest.approx(alone.fun, rel=1e-12)
        assert row.reason == alone.reason


def test_every_start_of_a_batched_run_returns_the_best_point_of_its_run_alone():
    starts = np.array([[-1.2, 1.0], [0.5, -0.5], [-0.3, 2.0]])
    batched = ds.minimize(
        "rosenbrock", starts, batched=True, patience=100, verbose=0, **ROSENBROCK_MOMENTUM
    )
    assert "no_decrease" in batched.status
    for i, start in enumerate(starts):
        alone = ds.minimize("rosenbrock", start, patience=100, verbose=0, **ROSENBROCK_MOMENTUM)
        assert batched.status[i] == alone.status and batched.nit[i] == alone.n_iter
        np.testing.assert_allclose(batched.x[i], alone.x, rtol=1e-9)
        assert batched.fun[i] == pytest.approx(alone.fun, rel=1e-9)
        assert batched.grad_norm[i] == pytest.approx(alone.grad_norm, rel=1e-6)
        assert batched.reason[i] == alone.reason
        if alone.status == "no_decrease":
            assert alone.fun == pytest.approx(np.min(alone.history["value"]), rel=1e-12)


def test_a_schedule_free_run_keeps_its_evaluation_point():
    # Its recorded values are those of the training points y; it returns the average x,
    # the point the optimizer holds last (descend.optim.eval_point).
    free = ds.minimize("rosenbrock", optimizer="schedule_free_adamw", patience=20, verbose=0)
    assert free.status == "no_decrease" and "returning" not in free.reason
    assert free.fun > np.min(free.history["value"])  # a different point from the best y
    assert free.fun == pytest.approx(scipy.optimize.rosen(free.x), rel=1e-12)
