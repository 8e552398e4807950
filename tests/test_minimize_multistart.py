"""minimize(..., batched=True / starts=N): many starts in one program, each on its own rule."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from descend.errors import InputError


def test_himmelblau_from_64_starts_finds_all_four_minima():
    f = ds.functions.himmelblau
    result = ds.minimize(f, bounds=f.bounds, starts=64, seed=0)
    assert len(result.minima) == 4
    assert sum(m.count for m in result.minima) == int(result.converged.sum()) == 64
    found = np.array([m.x for m in result.minima])
    for minimizer in f.minimizers:
        assert np.min(np.max(np.abs(found - minimizer), axis=1)) < 1e-6
    values = [m.fun for m in result.minima]
    assert values == sorted(values)
    assert all(v == pytest.approx(f.minimum, abs=1e-10) for v in values)
    for minimum in result.minima:  # every start of a minimum ended near its point
        ends = result.x[list(minimum.starts)]
        assert np.max(np.abs(ends - minimum.x)) < 1e-3


@pytest.mark.parametrize("optimizer", ["gd", "lbfgs", ds.optim.adam(lr=0.05)])
@pytest.mark.filterwarnings("ignore:the start is already a stationary point")  # (1, 1)
def test_each_start_equals_its_own_run(optimizer):
    """Finished starts are frozen: each start's result is that of minimize from it alone."""
    f = ds.functions.rosenbrock
    starts = np.array([[-1.2, 1.0], [0.9, 0.8], [1.0, 1.0], [2.0, 3.0], [-0.5, 0.3]])
    batch = ds.minimize(f, starts, batched=True, optimizer=optimizer, max_iter=3000)
    for i, start in enumerate(starts):
        alone = ds.minimize(f, start, optimizer=optimizer, max_iter=3000)
        assert batch.status[i] == alone.status
        assert batch.n_iter[i] == alone.n_iter
        assert batch.n_fev[i] == alone.n_fev
        np.testing.assert_allclose(batch.x[i], alone.x, rtol=1e-9, atol=1e-12)
        assert batch.fun[i] == pytest.approx(alone.fun, rel=1e-9, abs=1e-15)
        assert batch.reason[i] == alone.reason
    assert batch.n_iter[2] == 0  # started at the minimum: stopped at once, never moved
    assert len(set(batch.n_iter.tolist())) > 1  # the starts stopped at different steps


def test_a_start_that_diverges_reports_it_alone():
    def f(x):  # not finite right of 10
        return jnp.sum((x - 1.0) ** 2) + jnp.where(x[0] > 10.0, jnp.inf, 0.0)

    starts = np.array([[0.0, 0.0], [20.0, 0.0], [3.0, -2.0], [jnp.nan, 0.0]])
    result = ds.minimize(f, starts, batched=True)
    assert result.status == ("converged", "diverged", "converged", "diverged")
    assert "not finite at this start" in result.reason[1]
    for i in (0, 2):
        np.testing.assert_allclose(result.x[i], ds.minimize(f, starts[i]).x, rtol=1e-12)
    assert len(result.minima) == 1 and result.minima[0].count == 2
    assert result.best in (0, 2)


def test_a_start_whose_steps_blow_up_diverges_alone():
    starts = np.array([[0.5], [30.0]])
    result = ds.minimize(
        lambda x: jnp.sum(x**4), starts, batched=True, optimizer=ds.optim.gd(lr=0.01),
        max_iter=200,
    )  # fmt: skip
    assert result.status[1] == "diverged"
    assert result.status[0] != "diverged"
    alone = ds.minimize(
        lambda x: jnp.sum(x**4), starts[0], optimizer=ds.optim.gd(lr=0.01), max_iter=200
    )
    np.testing.assert_allclose(result.x[0], alone.x, rtol=1e-12)


def test_starts_are_drawn_reproducibly_from_the_box():
    bounds = [(-5.0, 5.0), (0.0, 2.0), (1.0, 1.5)]
    f = lambda x: jnp.sum((x - 1.0) ** 2)  # noqa: E731
    first = ds.minimize(f, bounds=bounds, starts=16, seed=7)
    again = ds.minimize(f, bounds=bounds, starts=16, seed=7)
    other = ds.minimize(f, bounds=bounds, starts=16, seed=8)
    low, high = np.array(bounds).T
    np.testing.assert_array_equal(first.x0, np.random.default_rng(7).uniform(low, high, (16, 3)))
    np.testing.assert_array_equal(first.x0, again.x0)
    np.testing.assert_array_equal(first.x, again.x)
    assert not np.array_equal(first.x0, other.x0)
    assert np.all(first.x0 >= low) and np.all(first.x0 <= high)


def test_expression_and_pytree_starts():
    result = ds.minimize(
        "(x-3)**2 + 10*(y+1)**2", {"x": [0.0, 5.0], "y": [1.0, -4.0]}, batched=True
    )
    np.testing.assert_allclose(result.x["x"], [3.0, 3.0], atol=1e-6)
    np.testing.assert_allclose(result.x["y"], [-1.0, -1.0], atol=1e-6)
    assert result.minima[0].x == pytest.approx({"x": 3.0, "y": -1.0}, abs=1e-6)

    def f(p):
        return jnp.sum((p["w"] - 2.0) ** 2) + p["b"] ** 2

    tree = ds.minimize(f, {"w": np.zeros((3, 2)), "b": np.ones(3)}, batched=True)
    assert tree.x["w"].shape == (3, 2) and tree.x["b"].shape == (3,)
    assert len(tree.minima) == 1 and tree.minima[0].count == 3


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(x0=np.zeros(2), starts=4), "give bounds"),
        (dict(x0=[np.zeros((3, 2)), np.zeros((4, 2))], batched=True), "leading axis"),
        (dict(x0=np.zeros((3, 2)), batched=True, callback=print), "callback"),
        (dict(bounds=[(0, np.inf), (0, 1)], starts=4, x0=np.zeros(2)), "finite"),
        (dict(x0=np.zeros(2), bounds=[(0, 1), (0, 1)], starts=0), "starts"),
    ],
)
def test_bad_multistart_arguments(kwargs, words):
    with pytest.raises(InputError, match=words):
        ds.minimize(lambda x: jnp.sum(x**2), **kwargs)


def test_a_given_x0_is_the_first_of_the_drawn_starts():
    f = ds.functions.himmelblau
    x0 = np.array([-3.5, 3.5])
    many = ds.minimize(f, x0, bounds=f.bounds, starts=5, seed=2, verbose=0)
    alone = ds.minimize(f, x0, verbose=0)
    assert len(many.x) == 5
    np.testing.assert_array_equal(many.x[0], alone.x)
    drawn = ds.minimize(f, bounds=f.bounds, starts=4, seed=2, verbose=0)
    np.testing.assert_array_equal(many.x[1:], drawn.x)  # the same draws follow


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(x0=np.zeros((3, 2)), batched=True, starts=4), "give one of the two"),
        (dict(x0=np.zeros(2), seed=3), "give starts=N too"),
    ],
)
def test_starts_with_batched_or_a_seed_without_starts_are_refused(kwargs, words):
    f = ds.functions.himmelblau
    with pytest.raises(InputError, match=words):
        ds.minimize(f, bounds=f.bounds, verbose=0, **kwargs)


def test_many_starts_answer_scipys_names_per_start():
    f = ds.functions.himmelblau
    result = ds.minimize(f, bounds=f.bounds, starts=6, seed=1, verbose=0)
    np.testing.assert_array_equal(result.success, result.converged)
    np.testing.assert_array_equal(result.nit, result.n_iter)
    np.testing.assert_array_equal(result.nfev, result.n_fev)
    assert result.message == result.reason and len(result.message) == 6
