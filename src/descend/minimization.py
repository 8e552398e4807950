"""``minimize``: the seed's loop on a function, from a start point to a stated stop."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from descend import _tree, engine, optim
from descend.calculus import to_numpy
from descend.engine import IterateConfig, Status
from descend.errors import DescendTypeError, FunctionError, InputError, check_int, check_positive
from descend.expr import Expression, parse
from descend.optim.base import Optimizer

PyTree = Any

# Keep the path of iterates when it costs at most this many numbers.
_PATH_BUDGET = 10_000_000


@dataclass(frozen=True)
class MinimizeResult:
    """What :func:`minimize` found, and why it stopped.

    Attributes
    ----------
    x:
        The final point, in the structure of ``x0`` (NumPy arrays).
    fun, grad, grad_norm:
        The value, the gradient (structure of ``x``) and its Euclidean norm at ``x``.
    n_iter:
        Number of optimizer steps taken.
    n_fev:
        Number of objective evaluations (gradient evaluations included).
    converged:
        True when the gradient norm reached ``tol`` (or the sign-change bisection did).
    status:
        Short name of the stopping rule: ``"converged"``, ``"no_decrease"``,
        ``"sign_change"``, ``"diverged"`` or ``"max_iter"``.
    reason:
        The stopping rule as a sentence, with its numbers.
    history:
        ``{"value": (n_iter+1,), "grad_norm": (n_iter+1,), "x": (n_iter+1, ...)}``: one
        entry per iterate, ``x0`` first (``"x"`` absent when the path was not kept).
    bracket:
        For a function of one variable, the latest ``(left, right)`` between which the
        derivative changed sign (a minimum lies in between), else ``None``.
    n_overshoots:
        Steps after which the directional derivative along the step turned positive:
        the step went past the minimum along its line.
    hints:
        Advice derived from the run (e.g. the step is too large).
    optimizer:
        The optimizer used, as text.
    """

    x: PyTree
    fun: float
    grad: PyTree
    grad_norm: float
    n_iter: int
    n_fev: int
    converged: bool
    status: str
    reason: str
    history: dict[str, Any] = field(repr=False)
    bracket: tuple[float, float] | None = None
    n_overshoots: int = 0
    hints: tuple[str, ...] = ()
    optimizer: str = ""
    variables: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        lines = [
            f"  x: {self.x}",
            f"  fun: {self.fun:.10g}",
            f"  grad_norm: {self.grad_norm:.3g}",
            f"  n_iter: {self.n_iter}",
            f"  n_fev: {self.n_fev}",
            f"  converged: {self.converged}",
            f"  reason: {self.reason}",
        ]
        if self.bracket is not None:
            lines.append(f"  bracket: {self.bracket}")
        return "MinimizeResult(\n" + "\n".join(lines) + "\n)"


def minimize(
    f: Callable[[PyTree], Any] | str | Expression,
    x0: Any = None,
    *,
    optimizer: Optimizer | str | None = None,
    tol: float = 1e-6,
    max_iter: int = 10_000,
    patience: int = 100,
    ftol: float = 0.0,
    refine: bool = False,
    dtype: str = "float64",
    keep_path: bool | None = None,
) -> MinimizeResult:
    r"""Minimize ``f`` by gradient descent, starting from ``x0``.

    The seed's loop: take a point, compute the gradient, step against it with the
    optimizer, repeat until a stopping rule holds (see ``reason`` in the result). The
    whole loop runs compiled; the gradient is exact (JAX autodiff).

    Parameters
    ----------
    f:
        A function of one argument (float, array or pytree) returning a real scalar;
        or text: the name of a built-in test function (``"rosenbrock"``) or an
        expression (``"(x-3)**2 + 10*(y+1)**2"``, see :func:`descend.parse`).
    x0:
        Start point: a float, an array or a pytree. For an expression, a dict
        ``{variable: value}``, a sequence in variable order, or a float for one
        variable. May be omitted for a test function (its suggested start is used).
    optimizer:
        An :class:`~descend.optim.Optimizer` or a name. Default: plain gradient
        descent with an Armijo backtracking line search (``optim.gd()``), which
        converges on smooth functions without a learning rate to tune.
    tol:
        Stop when the Euclidean norm of the gradient is at most ``tol``.
    max_iter:
        The budget of optimizer steps.
    patience, ftol:
        Stop ("no further decrease") when the best value has not improved by more than
        ``ftol * |best|`` for ``patience`` steps, or when a step leaves the point unchanged.
    refine:
        For a function of one variable: when the derivative changes sign between two
        iterates, stop and narrow that bracket by bisection on the derivative.
    dtype:
        ``"float64"`` (default, as SciPy) or ``"float32"``. float64 is used inside this
        call only; JAX's global setting is not changed.
    keep_path:
        Record every iterate in ``history["x"]``. Default: when it takes at most ten
        million numbers.

    Examples
    --------
    >>> import descend as ds
    >>> result = ds.minimize(lambda x: (x - 3.0) ** 2, x0=0.0)
    >>> round(float(result.x), 6), result.converged
    (3.0, True)
    >>> result = ds.minimize("(x-3)**2 + 10*(y+1)**2", {"x": 0, "y": 0})
    >>> {name: round(value, 4) for name, value in result.x.items()}
    {'x': 3.0, 'y': -1.0}
    """
    objective, x0, variables = _resolve_objective(f, x0)
    optimizer = _resolve_optimizer(optimizer)
    tol = check_positive("tol", tol, allow_zero=True)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    patience = check_int("patience", patience, minimum=1)
    ftol = check_positive("ftol", ftol, allow_zero=True)
    if dtype not in ("float64", "float32"):
        raise InputError(f"dtype must be 'float64' or 'float32', got {dtype!r}")

    context = jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()
    with context:
        x0 = _as_float(x0, dtype)
        n_params = _tree.size(x0)
        if n_params == 0:
            raise InputError("x0 has no numbers to optimize")
        if refine and n_params != 1:
            raise InputError(
                f"refine=True bisects a sign change of the derivative, for functions of one "
                f"variable; x0 has {n_params} numbers"
            )
        if keep_path is None:
            keep_path = n_params * (max_iter + 1) <= _PATH_BUDGET
        config = IterateConfig(tol, max_iter, patience, ftol, bool(refine), bool(keep_path))
        outcome = engine.iterate(objective, x0, optimizer, config)
        outcome = engine.to_host(outcome)
    return _result(outcome, config, optimizer, variables, tol)


def _resolve_objective(f, x0):
    """``(objective of one pytree, x0 as that pytree, variable names or None)``."""
    from descend import functions

    if isinstance(f, str):
        if functions.is_known(f):
            f = functions.get(f, None if x0 is None else int(np.size(x0)))
        else:
            f = parse(f)
    if isinstance(f, functions.TestFunction):
        start = f.start if x0 is None else x0
        return f.fn, np.asarray(start, dtype=float), None
    if isinstance(f, Expression):
        return _expression_objective(f, x0)
    if not callable(f):
        raise DescendTypeError(
            f"f must be a function, an expression or a test-function name, got {type(f).__name__}"
        )
    if x0 is None:
        raise InputError("x0 is required: give the start point, e.g. minimize(f, x0=0.0)")
    return f, x0, None


def _expression_objective(expression: Expression, x0):
    names = expression.variables
    if not names:
        raise InputError(f"{expression.text!r} has no variables to minimize over")
    if x0 is None:
        values = [0.0] * len(names)
    elif isinstance(x0, Mapping):
        values = [expression.bind(**x0)[name] for name in names]
    elif np.ndim(x0) == 0:
        values = list(expression.bind(x0).values())
    else:
        values = list(expression.bind(*np.ravel(x0)).values())
    return expression.vector_function(), np.asarray(values, dtype=float), names


def _resolve_optimizer(optimizer) -> Optimizer:
    if optimizer is None:
        return optim.gd()
    if isinstance(optimizer, str):
        return optim.get(optimizer)
    if isinstance(optimizer, Optimizer):
        return optimizer
    raise DescendTypeError(
        f"optimizer must be an Optimizer (e.g. descend.optim.gd(lr=0.1)) or a name, "
        f"got {type(optimizer).__name__}"
    )


def _as_float(x0, dtype):
    def convert(leaf):
        array = np.asarray(leaf)
        if array.dtype.kind not in "biuf":
            raise InputError(f"x0 must be made of real numbers, got dtype {array.dtype}")
        return jnp.asarray(array, dtype=dtype)

    return jax.tree.map(convert, x0)


_STATUS_NAMES = {
    Status.CONVERGED: "converged",
    Status.NO_DECREASE: "no_decrease",
    Status.SIGN_CHANGE: "sign_change",
    Status.DIVERGED: "diverged",
    Status.MAX_ITER: "max_iter",
}


def _result(outcome, config: IterateConfig, optimizer: Optimizer, variables, tol) -> MinimizeResult:
    carry = outcome.carry
    status = Status(int(carry.status))
    n_iter = int(carry.n_iter)
    grads_finite = all(np.all(np.isfinite(g)) for g in jax.tree.leaves(carry.grads))
    if n_iter == 0 and not (np.isfinite(carry.value) and grads_finite):
        raise FunctionError(
            f"the function is not finite at x0 (value {float(carry.value)}, gradient "
            f"{'finite' if grads_finite else 'not finite'}); start from a point where it is defined"
        )
    grad_norm = float(np.sqrt(sum(np.vdot(g, g) for g in jax.tree.leaves(carry.grads))))
    history = {
        "value": carry.history_value[: n_iter + 1],
        "grad_norm": carry.history_grad_norm[: n_iter + 1],
    }
    if carry.history_x is not None:
        history["x"] = jax.tree.map(lambda h: h[: n_iter + 1], carry.history_x)
    bracket = None
    if bool(carry.has_bracket) or status == Status.SIGN_CHANGE:
        bracket = (float(carry.bracket[0]), float(carry.bracket[1]))
    x = to_numpy(carry.x)
    grad = to_numpy(carry.grads)
    if variables is not None:
        x = {name: float(value) for name, value in zip(variables, np.ravel(x), strict=True)}
        grad = dict(zip(variables, map(float, np.ravel(grad)), strict=True))
    converged = status == Status.CONVERGED or (status == Status.SIGN_CHANGE and grad_norm <= tol)
    reason = _reason(status, carry, config, grad_norm, int(outcome.n_bisections), optimizer)
    hints = _hints(status, n_iter, int(carry.n_overshoots), optimizer)
    return MinimizeResult(
        x=x,
        fun=float(carry.value),
        grad=grad,
        grad_norm=grad_norm,
        n_iter=n_iter,
        n_fev=int(outcome.n_evaluations),
        converged=bool(converged),
        status=_STATUS_NAMES[status],
        reason=reason,
        history=history,
        bracket=bracket,
        n_overshoots=int(carry.n_overshoots),
        hints=hints,
        optimizer=repr(optimizer),
        variables=variables,
    )


def _reason(status, carry, config, grad_norm, n_bisections, optimizer) -> str:
    lr = optimizer.hyperparams.get("lr")
    smaller_lr = f"; try a smaller learning rate than lr={lr!r}" if lr is not None else ""
    if status == Status.CONVERGED:
        return f"gradient norm {grad_norm:.3g} is below tol={config.tol:g}"
    if status == Status.NO_DECREASE:
        start, now = float(carry.history_value[0]), float(carry.value)
        if now > start:
            return (
                f"no further decrease: the value grew from {start:.6g} at x0 to {now:.6g}, "
                f"the steps are diverging{smaller_lr}"
            )
        return (
            f"no further decrease: the value has not improved for {config.patience} steps "
            "or the step no longer changes x"
        )
    if status == Status.SIGN_CHANGE:
        left, right = (float(v) for v in carry.bracket)
        return (
            f"derivative changed sign, so a minimum lies between the last two iterates; "
            f"{n_bisections} bisection steps on the derivative narrowed it to "
            f"[{left:.10g}, {right:.10g}] where |f'| = {grad_norm:.3g}"
        )
    if status == Status.DIVERGED:
        if int(carry.failure) == 3:
            return (
                "diverged: the gradient is not finite at the next point although the value "
                "is (the function may not be differentiable there, e.g. sqrt or log at 0); "
                "returning the last point with a finite gradient"
            )
        what = engine.FAILURES.get(int(carry.failure), "the value or gradient")
        return f"diverged: {what} became non-finite; returning the last finite point{smaller_lr}"
    return f"maximum iterations reached ({config.max_iter}) with gradient norm {grad_norm:.3g}"


def _hints(status, n_iter, n_overshoots, optimizer) -> tuple[str, ...]:
    hints = []
    fixed_step = optimizer.hyperparams.get("lr", None) is not None
    if fixed_step and n_iter and n_overshoots > n_iter // 2:
        hints.append(
            f"the directional derivative changed sign after {n_overshoots} of {n_iter} steps: "
            "the step overshoots the minimum along its direction; a smaller lr may converge faster"
        )
    if status == Status.MAX_ITER:
        hints.append("increase max_iter, or try another optimizer (e.g. lbfgs)")
    own_tolerances = {
        key: optimizer.hyperparams[key]
        for key in ("tolerance_grad", "tolerance_change")
        if optimizer.hyperparams.get(key)
    }
    if status == Status.NO_DECREASE and own_tolerances:
        settings = ", ".join(f"{key}={value:g}" for key, value in own_tolerances.items())
        hints.append(
            f"{optimizer.name} stops stepping at its own tolerances ({settings}, as in torch); "
            f"set them to 0 to let tol decide"
        )
    return tuple(hints)
