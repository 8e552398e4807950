"""L-BFGS against torch.optim.LBFGS, one iteration per step."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from descend.errors import InputError
from descend.optim.lbfgs import lbfgs


@pytest.fixture(autouse=True)
def _float64():
    with jax.enable_x64(True):
        yield


# Tolerances tight enough that the runs reach the minimizer to 1e-6 (torch's defaults
# stop about 1e-5 away on Rosenbrock); one configuration so compiled steps are shared.
TIGHT = {"tolerance_grad": 1e-10, "tolerance_change": 1e-14}


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def torch_rosenbrock(x):
    return torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def start(dim):
    return np.tile([-1.2, 1.0], dim // 2)


@functools.cache
def compiled_step(f, **hyperparams):
    """One jitted L-BFGS step on ``f`` per configuration, shared by the tests."""
    opt = lbfgs(**hyperparams)
    value_and_grad = jax.value_and_grad(f)

    @jax.jit
    def one_step(x, state):
        value, grads = value_and_grad(x)
        return opt.step(x, grads, state, value=value, value_fn=f)

    return opt, one_step


def run_ours(f, x0, n_steps, **hyperparams):
    opt, one_step = compiled_step(f, **hyperparams)
    x = jnp.asarray(x0)
    state = opt.init(x)
    path = [np.asarray(x)]
    for _ in range(n_steps):
        x, state = one_step(x, state)
        path.append(np.asarray(x))
    return np.array(path), state


def run_torch_per_iteration(f, x0, n_steps, **hyperparams):
    """torch LBFGS with one iteration per .step(closure), history kept across calls."""
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    max_ls = hyperparams.pop("max_ls", 25)
    opt = torch.optim.LBFGS([x], max_iter=1, max_eval=max_ls + 1, **hyperparams)

    def closure():
        opt.zero_grad()
        loss = f(x)
        loss.backward()
        return loss

    path = [x.detach().numpy().copy()]
    for _ in range(n_steps):
        opt.step(closure)
        path.append(x.detach().numpy().copy())
    return np.array(path), opt.state[x]


def last_moving_step(path):
    moved = np.flatnonzero(np.abs(np.diff(path, axis=0)).max(axis=1) > 0)
    return int(moved[-1]) + 1


@pytest.mark.parametrize(
    ("dim", "history_size", "n_steps"),
    [(2, 100, 30), (10, 100, 25), (10, 3, 25)],
)
def test_lbfgs_trajectory_matches_torch_one_iteration_per_step(dim, history_size, n_steps):
    ours, state = run_ours(rosenbrock, start(dim), n_steps, history_size=history_size, **TIGHT)
    theirs, torch_state = run_torch_per_iteration(
        torch_rosenbrock, start(dim), n_steps, history_size=history_size,
        line_search_fn="strong_wolfe", **TIGHT,
    )  # fmt: skip
    scale = np.maximum(1.0, np.abs(theirs).max(axis=1, keepdims=True))
    np.testing.assert_array_less(np.abs(ours - theirs) / scale, 1e-9)
    # torch also counts the evaluation at the current point, once per .step call.
    assert int(state.n_evals) == torch_state["func_evals"] - n_steps
    assert int(state.n_iter) == torch_state["n_iter"]


def test_lbfgs_without_line_search_matches_torch_fixed_step():
    target = np.linspace(-1.0, 2.0, 5)
    weights = np.linspace(1.0, 3.0, 5)

    def f(x):
        return jnp.sum(weights * (x - target) ** 2) + jnp.sum(x**4) / 10

    def torch_f(x):
        return (
            torch.sum(torch.tensor(weights) * (x - torch.tensor(target)) ** 2)
            + torch.sum(x**4) / 10
        )

    x0 = np.zeros(5)
    ours, state = run_ours(f, x0, 15, lr=0.2, line_search_fn=None)
    theirs, _ = run_torch_per_iteration(torch_f, x0, 15, lr=0.2, line_search_fn=None)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)
    assert int(state.n_evals) == 0


@pytest.mark.parametrize("dim", [2, 10])
def test_lbfgs_reaches_torchs_minimizer_in_as_many_iterations(dim):
    ours, _ = run_ours(rosenbrock, start(dim), 120, history_size=100, **TIGHT)

    x = torch.tensor(start(dim), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([x], max_iter=1000, line_search_fn="strong_wolfe", **TIGHT)

    def closure():
        opt.zero_grad()
        loss = torch_rosenbrock(x)
        loss.backward()
        return loss

    opt.step(closure)
    torch_x = x.detach().numpy()
    np.testing.assert_allclose(ours[-1], torch_x, atol=1e-6)
    np.testing.assert_allclose(ours[-1], np.ones(dim), atol=1e-6)
    assert abs(last_moving_step(ours) - opt.state[x]["n_iter"]) <= max(
        3, opt.state[x]["n_iter"] // 10
    )


def test_lbfgs_flattens_pytree_params_like_one_vector():
    def f_tree(params):
        return rosenbrock(jnp.concatenate([params["head"], params["tail"]]))

    x0 = start(10)
    flat, _ = run_ours(rosenbrock, x0, 12, history_size=100, **TIGHT)
    opt, one_step = compiled_step(f_tree, history_size=100, **TIGHT)
    params = {"head": jnp.asarray(x0[:2]), "tail": jnp.asarray(x0[2:])}
    state = opt.init(params)
    for _ in range(12):
        params, state = one_step(params, state)
    np.testing.assert_allclose(
        np.concatenate([params["head"], params["tail"]]), flat[-1], rtol=1e-12
    )
    assert params["head"].dtype == jnp.float64


def test_lbfgs_keeps_the_point_when_the_gradient_is_below_tolerance():
    x0 = np.array([1.0 + 1e-13, 1.0])
    gradient = jax.grad(rosenbrock)(jnp.asarray(x0))
    assert 0 < np.abs(gradient).max() <= TIGHT["tolerance_grad"]
    path, state = run_ours(rosenbrock, x0, 2, history_size=100, **TIGHT)
    np.testing.assert_array_equal(path[-1], x0)
    assert (int(state.count), int(state.n_iter), int(state.n_evals)) == (2, 0, 0)


def test_lbfgs_step_compiles_once():
    _, one_step = compiled_step(rosenbrock, history_size=100, **TIGHT)
    run_ours(rosenbrock, start(2), 4, history_size=100, **TIGHT)
    compiled = one_step._cache_size()
    run_ours(rosenbrock, start(2) + 0.5, 4, history_size=100, **TIGHT)
    assert one_step._cache_size() == compiled


def test_lbfgs_needs_the_objective_only_with_a_line_search():
    assert lbfgs().needs_value_fn
    assert not lbfgs(line_search_fn=None).needs_value_fn
    opt = lbfgs()
    x = jnp.zeros(2)
    with pytest.raises(InputError, match="value_fn"):
        opt.step(x, jnp.ones(2), opt.init(x))


def test_lbfgs_reports_line_search_evaluations():
    opt, _ = compiled_step(rosenbrock, history_size=100, **TIGHT)
    _, state = run_ours(rosenbrock, start(2), 3, history_size=100, **TIGHT)
    assert opt.evaluations(state) == state.n_evals
    assert int(state.n_evals) >= 3


def test_lbfgs_equal_hyperparameters_compare_equal():
    assert lbfgs(history_size=5) == lbfgs(history_size=5)
    assert hash(lbfgs(history_size=5)) == hash(lbfgs(history_size=5))
    assert lbfgs(history_size=5) != lbfgs(history_size=6)


@pytest.mark.parametrize(
    ("hyperparams", "message"),
    [
        ({"lr": -1.0}, "lr"),
        ({"history_size": 0}, "history_size"),
        ({"line_search_fn": "armijo"}, "line_search_fn"),
        ({"c1": 0.95, "c2": 0.9}, "c1 < c2"),
        ({"max_ls": 0}, "max_ls"),
        ({"tolerance_grad": -1.0}, "tolerance_grad"),
    ],
)
def test_lbfgs_rejects_invalid_hyperparameters(hyperparams, message):
    with pytest.raises(InputError, match=message):
        lbfgs(**hyperparams)
