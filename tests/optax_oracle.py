"""descend's optimizers against Optax (or another reference), run live: shared by tests.

- :func:`assert_matches` runs one of our optimizers and its reference side by side for
  200 steps in float64 on each of four problems (a quadratic of condition number 100,
  a logistic regression, Rosenbrock, and a matrix-shaped least-squares problem) and
  asserts the whole trajectory agrees to rtol 1e-9.
- :func:`assert_reaches_minima` is Optax's own test of its aliases: from its starting
  points, the parabola and Rosenbrock minima are reached in float32.
- :func:`assert_second_call_compiles_nothing`: ``ds.minimize`` with an equal optimizer
  built again, on the same shapes, compiles no program.

Each run is one ``lax.scan`` over the steps (one compilation per run). Problems run one
at a time, not as leaves of one pytree: many of these algorithms couple the leaves
(global norms, distances from the start, the loss value), so a pytree of problems would
be a different problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import descend as ds

N_STEPS = 200
RTOL = 1e-9
ATOL = 1e-12


@dataclass(frozen=True)
class Problem:
    name: str
    x0: np.ndarray
    fn: Callable[[jax.Array], jax.Array]


def _quadratic() -> Problem:
    """0.5 x'Ax - b'x with A of condition number 100 in 6 dimensions."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a = q @ np.diag(np.logspace(0.0, 2.0, 6)) @ q.T
    b = rng.standard_normal(6)
    return Problem(
        "quadratic",
        rng.standard_normal(6),
        lambda x: 0.5 * x @ (jnp.asarray(a) @ x) - jnp.asarray(b) @ x,
    )


def _logistic() -> Problem:
    """Mean logistic loss of a linear model on 50 random samples with 5 features."""
    rng = np.random.default_rng(1)
    features = rng.standard_normal((50, 5))
    labels = (rng.random(50) < 0.5).astype(np.float64)

    def fn(w):
        z = jnp.asarray(features) @ w
        return jnp.mean(jnp.logaddexp(0.0, z) - jnp.asarray(labels) * z)

    return Problem("logistic", 0.5 * rng.standard_normal(5), fn)


def _rosenbrock() -> Problem:
    return Problem(
        "rosenbrock",
        np.array([-1.2, 1.0]),
        lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2,
    )


def _matrix() -> Problem:
    """0.5 ||A W - B||^2 / n for a 4 x 3 matrix W (A: 20 x 4, of condition number ~10)."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((20, 4)) @ np.diag([1.0, 2.0, 5.0, 10.0])
    b = rng.standard_normal((20, 3))
    return Problem(
        "matrix",
        rng.standard_normal((4, 3)),
        lambda w: 0.5 * jnp.sum((jnp.asarray(a) @ w - jnp.asarray(b)) ** 2) / 20.0,
    )


PROBLEMS = {p.name: p for p in (_quadratic(), _logistic(), _rosenbrock(), _matrix())}
ALL = tuple(PROBLEMS)
SMOOTH = ("quadratic", "logistic", "matrix")  # for steps too large for Rosenbrock's valley


def descend_trajectory(
    opt: ds.optim.Optimizer, problem: Problem, *, n_steps: int = N_STEPS, sign: float = 1.0
) -> np.ndarray:
    """The params after each of ``n_steps`` steps (steps x ...), float64.

    ``step`` gets ``value`` and ``value_fn`` as the engine gives them: the objective at
    the current params, and the objective itself.
    """

    def objective(x):
        return sign * problem.fn(x)

    value_and_grad = jax.value_and_grad(objective)

    def body(carry, _):
        x, state = carry
        value, grads = value_and_grad(x)
        x, state = opt.step(x, grads, state, value=value, value_fn=objective)
        return (x, state), x

    with jax.enable_x64(True):
        x0 = jnp.asarray(problem.x0)
        run = jax.jit(lambda x: jax.lax.scan(body, (x, opt.init(x)), None, length=n_steps)[1])
        return np.asarray(run(x0))


def optax_trajectory(
    transform: Any,
    problem: Problem,
    *,
    n_steps: int = N_STEPS,
    sign: float = 1.0,
    extra_args: Callable[[jax.Array, jax.Array, Callable], dict] | None = None,
) -> np.ndarray:
    """The params after each step of an Optax transformation, float64.

    ``extra_args(params, value, objective)`` gives the keyword arguments its
    ``update`` needs beyond ``(grads, state, params)`` (``value=`` for Polyak's step,
    ``obj_fn=`` for Sophia), or None for none.
    """
    import optax

    def objective(x):
        return sign * problem.fn(x)

    value_and_grad = jax.value_and_grad(objective)

    def body(carry, _):
        x, state = carry
        value, grads = value_and_grad(x)
        extra = {} if extra_args is None else extra_args(x, value, objective)
        updates, state = transform.update(grads, state, x, **extra)
        x = optax.apply_updates(x, updates)
        return (x, state), x

    with jax.enable_x64(True):
        x0 = jnp.asarray(problem.x0)
        run = jax.jit(lambda x: jax.lax.scan(body, (x, transform.init(x)), None, length=n_steps)[1])
        return np.asarray(run(x0))


def assert_matches(
    opt: ds.optim.Optimizer,
    reference: Callable[[Problem, float], np.ndarray],
    problems: tuple[str, ...] = ALL,
    *,
    n_steps: int = N_STEPS,
    rtol: float = RTOL,
    atol: float = ATOL,
    sign: float = 1.0,
) -> None:
    """Our trajectory equals ``reference(problem, sign)`` (steps x ...) on each problem.

    ``sign`` -1 ascends -f, for ``maximize=True`` cases (maximizing a bounded-below
    problem diverges); the reference then gets -1 too and is expected to descend
    ``sign * f`` negated as it is written (Optax has no ``maximize``).
    """
    for name in problems:
        problem = PROBLEMS[name]
        ours = descend_trajectory(opt, problem, n_steps=n_steps, sign=sign)
        theirs = reference(problem, sign)
        assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
        assert np.all(np.isfinite(ours)), name
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=name)
        assert np.abs(ours[-1] - problem.x0).max() > 1e-6, name  # the run really moved


def assert_matches_optax(
    opt: ds.optim.Optimizer,
    transform: Any,
    problems: tuple[str, ...] = ALL,
    *,
    extra_args: Callable | None = None,
    **tolerances: Any,
) -> None:
    """:func:`assert_matches` with an Optax transformation as the reference.

    With ``maximize=True`` among ``opt``'s hyperparameters, ours ascends ``-f`` and
    Optax (which has no ``maximize``) descends ``f``: the same path.
    """
    maximize = bool(opt.hyperparams.get("maximize", False))
    ours_sign = -1.0 if maximize else 1.0
    for name in problems:
        problem = PROBLEMS[name]
        theirs = optax_trajectory(transform, problem, extra_args=extra_args)
        assert_matches(
            opt, lambda p, s, theirs=theirs: theirs, (name,), sign=ours_sign, **tolerances
        )


# ---------------------------------------------------------------- Optax's own alias test


def _parabola(x):
    return jnp.sum((x - jnp.array([1.0, -1.0, 1.0])) ** 2)


def _rosenbrock32(x):
    return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


MINIMA = {
    "parabola": (_parabola, np.array([-1.0, 10.0, 1.0]), np.array([1.0, -1.0, 1.0])),
    "rosenbrock": (_rosenbrock32, np.array([0.0, 0.0]), np.array([1.0, 1.0])),
}


def assert_reaches_minima(
    opt: ds.optim.Optimizer,
    problems: tuple[str, ...] = ("parabola", "rosenbrock"),
    *,
    n_steps: int = 10_000,
    tol: float = 3e-2,
) -> None:
    """Optax's ``alias_test``: from its starts, float32 params reach the minimizer to
    ``tol`` (absolute and relative, as ``chex.assert_trees_all_close`` there)."""
    for name in problems:
        fn, x0, minimizer = MINIMA[name]
        value_and_grad = jax.value_and_grad(fn)

        def body(carry, _, fn=fn, value_and_grad=value_and_grad):
            x, state = carry
            value, grads = value_and_grad(x)
            return opt.step(x, grads, state, value=value, value_fn=fn), None

        x = jnp.asarray(x0, jnp.float32)
        final, _ = jax.jit(lambda x: jax.lax.scan(body, (x, opt.init(x)), None, n_steps))(x)
        assert final[0].dtype == jnp.float32, name
        np.testing.assert_allclose(
            np.asarray(final[0]), minimizer, rtol=tol, atol=tol, err_msg=name
        )


# ------------------------------------------------------------------- no second compilation

_COMPILATIONS = [0]


def _count(event: str, *args: Any, **kwargs: Any) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILATIONS[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count)


def compilations(run: Callable[[], Any]) -> int:
    """How many XLA programs ``run()`` compiled."""
    before = _COMPILATIONS[0]
    run()
    return _COMPILATIONS[0] - before


def _quartic(x):
    return jnp.sum((x - 1.0) ** 2) + 0.1 * jnp.sum(x**4)


def assert_second_call_compiles_nothing(build: Callable[[], ds.optim.Optimizer]) -> None:
    """``ds.minimize`` twice on the same shapes, each time with ``build()`` (an equal
    optimizer built anew): the second call compiles nothing."""

    def run():
        ds.minimize(_quartic, jnp.array([[2.0, -1.0], [0.5, 3.0]]), optimizer=build(), max_iter=20)

    assert compilations(run) > 0
    assert compilations(run) == 0
