"""Row 4: minimizing functions to a gradient norm of 1e-6 in float64."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmarks import problems
from benchmarks.harness import (
    Column,
    Comparison,
    Entry,
    RowResult,
    Settings,
    measure,
    optional,
    row,
)

TOL = 1e-6
MEMORY = 10  # L-BFGS history for every tool (SciPy's and Optax's default)


@dataclass(frozen=True)
class Sizes:
    rosenbrock_dims: tuple[int, ...]
    logistic: tuple[int, int]  # (n_samples, n_features)
    max_iter: int
    bfgs_max_dim: int  # dense BFGS costs O(n²) per iteration: skipped above this


SIZES = {
    "tiny": Sizes((), (100, 3), 200, 100),
    "quick": Sizes((2,), (1_000, 20), 2_000, 100),
    "default": Sizes((2, 100, 1_000), (10_000, 100), 10_000, 200),
    "full": Sizes((2, 100, 1_000), (10_000, 100), 10_000, 1_000),
}


@dataclass(frozen=True)
class Problem:
    name: str
    jax_fn: Callable  # float64 JAX objective
    numpy_fn: Callable[[np.ndarray], tuple[float, np.ndarray]]  # value and gradient
    x0: np.ndarray


@row(4, "minimize", "Function minimization: Rosenbrock and logistic regression, float64")
def run(settings: Settings) -> RowResult:
    import jax

    sizes = settings.pick(SIZES)
    tables = []
    with jax.enable_x64(True):
        for problem in _problems(sizes):
            print(f"  {problem.name}")
            tables.append(_compare(problem, sizes, settings))
    return RowResult(
        4, "minimize", "Function minimization", tables=tables,
        description=(
            f"Minimize to a gradient norm (Euclidean) of {TOL:g}, in float64, from the same "
            f"start, with at most {sizes.max_iter:,} iterations. descend as "
            f"`descend.minimize(f, x0, optimizer=lbfgs(history_size={MEMORY}, "
            f"tolerance_grad=0, tolerance_change=0), tol={TOL:g}, max_iter=...)`; "
            "its default optimizer (gradient descent with an Armijo line search) as an extra "
            "line."
        ),
        notes=[
            f"Every L-BFGS keeps {MEMORY} pairs (descend's default, as torch's, is 100). "
            "descend's L-BFGS runs with its own tests (tolerance_grad, tolerance_change) "
            "off, as SciPy's below: with torch's defaults (1e-7, 1e-9) it can stop short "
            "of a gradient norm of 1e-6 (status 'no_decrease').",
            "descend's and torch's L-BFGS use a strong-Wolfe line search, Optax a zoom "
            "line search, SciPy's L-BFGS-B and BFGS their own (Moré–Thuente / Wolfe).",
            "SciPy's L-BFGS-B tests the largest projected-gradient component; so that every "
            "tool stops on the same test, its own tests are switched off (gtol=0, ftol=0) "
            "and a callback stops it when the Euclidean gradient norm reaches tol. BFGS "
            "uses its own test with norm=2.",
            "SciPy receives the gradient either from `jax.jit(jax.value_and_grad(f))` "
            "(float64, converted to NumPy on every call) or written out in NumPy.",
            "evaluations: objective-and-gradient evaluations as each tool counts them "
            "(descend: n_fev; Optax: 1 + line-search steps; SciPy: nfev).",
            "cold includes compilation (descend, Optax, SciPy with the JAX gradient); "
            "warm is the solve alone.",
        ],
    )  # fmt: skip


def _problems(sizes: Sizes) -> list[Problem]:
    found = [
        Problem(
            f"Rosenbrock, {dim} dimensions",
            problems.rosenbrock_jax,
            problems.rosenbrock_numpy,
            problems.rosenbrock_start(dim),
        )
        for dim in sizes.rosenbrock_dims
    ]
    n_samples, n_features = sizes.logistic
    logistic = problems.LogisticObjective(n_samples, n_features)
    found.append(
        Problem(
            f"Logistic regression, {n_samples:,} × {n_features}, mean log-loss + "
            f"{logistic.alpha:g}/2 ‖w‖²",
            logistic.jax_function(),
            logistic.numpy,
            logistic.start(),
        )
    )
    return found


def _compare(problem: Problem, sizes: Sizes, settings: Settings) -> Comparison:
    import descend
    from descend.optim.lbfgs import lbfgs

    table = Comparison(
        problem.name,
        columns=[
            Column("n_iter", "iterations", "{:,}"),
            Column("n_fev", "evaluations", "{:,}"),
            Column("grad_norm", "final ‖∇f‖", "{:.2e}"),
            Column("status", "status"),
        ],
        baseline="descend, L-BFGS",
    )

    def gradient_norm(x) -> float:
        return float(np.linalg.norm(problem.numpy_fn(np.asarray(x, dtype=np.float64))[1]))

    for tool, optimizer in (
        # The optimizer's own stopping tests off (as SciPy's): the loop stops on tol.
        ("descend, L-BFGS", lbfgs(history_size=MEMORY, tolerance_grad=0.0, tolerance_change=0.0)),
        ("descend, gd (Armijo line search)", descend.optim.gd()),
    ):

        def measure_descend(optimizer=optimizer) -> Entry:
            timing, result = measure(
                lambda: descend.minimize(
                    problem.jax_fn, problem.x0, optimizer=optimizer, tol=TOL,
                    max_iter=sizes.max_iter,
                ),
                repeats=settings.repeats,
            )  # fmt: skip
            values = {
                "n_iter": result.n_iter,
                "n_fev": result.n_fev,
                "grad_norm": gradient_norm(result.x),
                "status": result.status,
            }
            return Entry("", timing, values, note=repr(optimizer))

        table.add(settings, tool, measure_descend)

    if optional("optax") is None:
        table.skip("Optax L-BFGS", "optax is not installed")
    else:

        def measure_optax() -> Entry:
            solve = _optax_lbfgs(problem.jax_fn, sizes.max_iter)
            timing, (x, n_iter, n_fev) = measure(
                lambda: solve(problem.x0), repeats=settings.repeats
            )
            norm = gradient_norm(x)
            values = {
                "n_iter": n_iter,
                "n_fev": n_fev,
                "grad_norm": norm,
                "status": "converged" if norm <= TOL else "max_iter",
            }
            return Entry(
                "", timing, values,
                note=f"optax.lbfgs(memory_size={MEMORY}) in a jitted while_loop",
            )  # fmt: skip

        table.add(settings, "Optax L-BFGS", measure_optax)

    scipy_optimize = optional("scipy.optimize")
    dim = problem.x0.size
    for method in ("L-BFGS-B", "BFGS"):
        for gradient in ("JAX", "NumPy"):
            tool = f"SciPy {method}, {gradient} gradient"
            if scipy_optimize is None:
                table.skip(tool, "scipy is not installed")
                continue
            if method == "BFGS" and dim > sizes.bfgs_max_dim:
                table.skip(
                    tool,
                    f"dense BFGS (O(n²) per iteration) skipped above {sizes.bfgs_max_dim} "
                    "dimensions; run with --full",
                )
                continue

            def measure_scipy(method=method, gradient=gradient) -> Entry:
                value_and_grad = (
                    _jax_to_numpy(problem.jax_fn) if gradient == "JAX" else problem.numpy_fn
                )
                timing, result = measure(
                    lambda: _scipy_minimize(
                        scipy_optimize, method, value_and_grad, problem.x0, sizes.max_iter
                    ),
                    repeats=settings.repeats,
                )
                norm = gradient_norm(result.x)
                values = {
                    "n_iter": int(result.nit),
                    "n_fev": int(result.nfev),
                    "grad_norm": norm,
                    "status": "converged" if norm <= TOL else _short(result.message),
                }
                return Entry("", timing, values, note=f"scipy.optimize.minimize({method!r})")

            table.add(settings, tool, measure_scipy)
    return table


def _short(message) -> str:
    return str(message).split(":")[-1].strip()[:60]


def _jax_to_numpy(fn):
    """``x -> (value, gradient)`` as Python float and NumPy array, from a jitted JAX function."""
    import jax

    value_and_grad = jax.jit(jax.value_and_grad(fn))

    def call(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = value_and_grad(x)
        return float(value), np.asarray(grad)

    return call


def _scipy_minimize(scipy_optimize, method: str, value_and_grad, x0: np.ndarray, max_iter: int):
    if method == "BFGS":
        options = {"gtol": TOL, "norm": 2, "maxiter": max_iter}
        return scipy_optimize.minimize(value_and_grad, x0, jac=True, method=method, options=options)
    last = {}

    def fun(x):
        value, grad = value_and_grad(x)
        last["x"], last["grad"] = x.copy(), grad
        return value, grad

    def callback(intermediate_result):
        x = intermediate_result.x
        grad = last["grad"] if np.array_equal(x, last.get("x")) else value_and_grad(x)[1]
        if np.linalg.norm(grad) <= TOL:
            raise StopIteration

    options = {
        "maxcor": MEMORY, "maxiter": max_iter, "maxfun": 20 * max_iter, "gtol": 0.0, "ftol": 0.0,
    }  # fmt: skip
    return scipy_optimize.minimize(
        fun, x0, jac=True, method=method, options=options, callback=callback
    )


def _optax_lbfgs(fn, max_iter: int):
    """``solve(x0) -> (x, n_iter, n_fev)``: Optax's L-BFGS in one jitted while_loop."""
    import jax
    import jax.numpy as jnp
    import optax
    import optax.tree_utils as tree_utils

    optimizer = optax.lbfgs(memory_size=MEMORY)
    value_and_grad = optax.value_and_grad_from_state(fn)

    @jax.jit
    def solve(x0):
        def running(carry):
            _, state, n_iter, _ = carry
            norm = tree_utils.tree_norm(tree_utils.tree_get(state, "grad"))
            return (n_iter == 0) | ((n_iter < max_iter) & (norm > TOL))

        def iteration(carry):
            x, state, n_iter, n_fev = carry
            value, grad = value_and_grad(x, state=state)
            updates, state = optimizer.update(grad, state, x, value=value, grad=grad, value_fn=fn)
            steps = tree_utils.tree_get(state, "num_linesearch_steps")
            n_fev = n_fev + jnp.asarray(steps, n_fev.dtype)
            return optax.apply_updates(x, updates), state, n_iter + 1, n_fev

        start = (x0, optimizer.init(x0), jnp.zeros((), jnp.int32), jnp.ones((), jnp.int32))
        x, _, n_iter, n_fev = jax.lax.while_loop(running, iteration, start)
        return x, n_iter, n_fev

    def call(x0: np.ndarray):
        x, n_iter, n_fev = jax.device_get(solve(jnp.asarray(x0)))
        return np.asarray(x), int(n_iter), int(n_fev)

    return call
