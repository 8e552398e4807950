"""``minimize``: the seed's loop on a function, from a start point to a stated stop.

The front door of the engine for functions: it checks its arguments once, runs the
engine's iterations (:mod:`descend.engine.iterate`) in the engine's block loop
(:func:`descend.engine.run`), and turns what they found into a :class:`MinimizeResult`.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from descend import _tree, engine, optim, rules
from descend._json import jsonable
from descend._tree import PyTree
from descend.calculus import as_point
from descend.engine import FAILURES, IterateConfig, Status, status
from descend.engine.iterate import GREW
from descend.errors import (
    DescendTypeError,
    Flag,
    FunctionError,
    InputError,
    Integer,
    Number,
    OneOf,
    Optional,
    check_all,
    warn,
)
from descend.expr import Expression, parse
from descend.optim import pairs
from descend.optim.base import Optimizer, maximizes

# Keep the path of iterates when it costs at most this many numbers.
_PATH_BUDGET = 10_000_000

# What each argument of minimize accepts (checked once, at the front door).
CONSTRAINTS = {
    "tol": Number(0.0),
    "max_iter": Integer(1),
    "patience": Integer(1),
    "ftol": Number(0.0),
    "refine": Flag(),
    "dtype": OneOf("float64", "float32"),
    "keep_path": Optional(Flag()),
    "verbose": OneOf(0, 1, 2),
}


@dataclass(frozen=True)
class MinimizeResult:
    r"""What :func:`minimize` found, and why it stopped.

    Attributes
    ----------
    x:
        The final point, in the structure of ``x0`` (NumPy arrays); for an interrupted
        run, the best point found.
    fun, grad, grad_norm:
        The value, the gradient (structure of ``x``) and its Euclidean norm at ``x``.
        For a complex ``x`` the gradient is JAX's (what :func:`descend.gradient`
        gives: :math:`\partial f/\partial x - i\,\partial f/\partial y`) and the norm
        that of the real and imaginary parts.
    n_iter:
        Number of optimizer steps taken.
    n_fev:
        Number of objective evaluations (gradient evaluations included).
    converged:
        True when the gradient norm reached ``tol`` (or the sign-change bisection did).
    status:
        Short name of the stopping rule: ``"converged"``, ``"no_decrease"``,
        ``"sign_change"``, ``"diverged"``, ``"max_iter"``, ``"callback"`` or
        ``"interrupted"``.
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
    variables:
        The variable names of an expression, else ``None``.
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

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (the CLI's ``--json``; history left out).

        A complex number is written as the pair ``[real, imaginary]``.
        """
        return {
            "x": jsonable(_complex_as_pairs(self.x)),
            "fun": jsonable(self.fun),
            "grad": jsonable(_complex_as_pairs(self.grad)),
            "grad_norm": jsonable(self.grad_norm),
            "n_iter": self.n_iter,
            "n_fev": self.n_fev,
            "converged": self.converged,
            "status": self.status,
            "reason": self.reason,
            "bracket": None if self.bracket is None else list(self.bracket),
            "n_overshoots": self.n_overshoots,
            "hints": list(self.hints),
            "optimizer": self.optimizer,
        }


def _complex_as_pairs(tree: PyTree) -> PyTree:
    """Each complex leaf as a NumPy array of ``[real, imaginary]`` pairs (for JSON)."""

    def split(leaf):
        return np.stack([np.real(leaf), np.imag(leaf)], axis=-1) if np.iscomplexobj(leaf) else leaf

    return jax.tree.map(split, tree)


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
    callback: Callable[..., Any] | None = None,
    verbose: int = 1,
) -> MinimizeResult:
    r"""Minimize ``f`` by gradient descent, starting from ``x0``.

    The seed's loop: take a point, compute the gradient, step against it with the
    optimizer, repeat until a stopping rule holds (see ``reason`` in the result). The
    iterations run compiled, in blocks (see :mod:`descend.engine.iterate`); the
    gradient is exact (JAX autodiff).

    Parameters
    ----------
    f:
        A function of one argument (float, array or pytree) returning a real scalar;
        or text: the name of a built-in test function (``"rosenbrock"``) or an
        expression (``"(x-3)**2 + 10*(y+1)**2"``, see :func:`descend.parse`).
    x0:
        Start point: a float, an array or a pytree, of real or complex numbers (a
        complex number is optimized as the pair of its real and imaginary parts, as
        ``torch.optim`` does; ``f`` must still return a real number). For an expression, a dict
        ``{variable: value}``, a sequence in variable order, or a float for one
        variable. May be omitted for a test function (its suggested start is used).
    optimizer:
        An :class:`~descend.optim.Optimizer` or a name. Default: plain gradient
        descent with an Armijo backtracking line search (``optim.gd()``), which
        converges on smooth functions without a learning rate to tune.
    tol:
        Stop when the Euclidean norm of the gradient is at most ``tol`` (>= 0).
    max_iter:
        The budget of optimizer steps (>= 1).
    patience, ftol:
        Stop ("no further decrease") when the best value has not improved by more than
        ``ftol * |best|`` for ``patience`` steps (``patience >= 1``, ``ftol >= 0``; the
        rule of :func:`descend.rules.improved`), or when a step leaves the point
        unchanged.
    refine:
        For a function of one variable: when the derivative changes sign between two
        iterates, stop and narrow that bracket by bisection on the derivative.
    dtype:
        ``"float64"`` (default, as SciPy) or ``"float32"``. float64 is used inside this
        call only; JAX's global setting is not changed.
    keep_path:
        Record every iterate in ``history["x"]``. Default: when it takes at most ten
        million numbers.
    callback:
        Called after every iteration, as SciPy's ``minimize`` calls it: with the
        intermediate :class:`MinimizeResult` when its one parameter is named
        ``intermediate_result`` (``x``, ``fun``, ``grad``, ``grad_norm``, ``n_iter``),
        else with the current point ``x``. Returning ``True`` or raising
        ``StopIteration`` stops the run (status ``"callback"``).
    verbose:
        0 silent; 1 (default) a progress bar on stderr, when it is a terminal, for runs
        longer than a second; 2 one line per block of iterations.

    Returns
    -------
    MinimizeResult

    Raises
    ------
    InputError
        An argument out of its range (the message names it, its valid range and what
        was given), an empty ``x0``, or an expression that does not parse.
    DescendTypeError
        A complex ``x0`` with an optimizer that cannot step complex numbers (adafactor,
        muon).
    FunctionError
        ``f`` does not return one real number, or is not finite at ``x0``.

    Ctrl-C stops the run after the block in flight and returns the best point found so
    far (status ``"interrupted"``).

    Examples
    --------
    >>> import descend as ds
    >>> result = ds.minimize(lambda x: (x - 3.0) ** 2, x0=0.0)
    >>> round(float(result.x), 6), result.converged
    (3.0, True)
    >>> result = ds.minimize("(x-3)**2 + 10*(y+1)**2", {"x": 0, "y": 0})
    >>> {name: round(value, 4) for name, value in result.x.items()}
    {'x': 3.0, 'y': -1.0}
    >>> ds.minimize(lambda x: (x - 3.0) ** 2, 0.0, callback=lambda x: True).status
    'callback'
    """
    objective, x0, variables = _resolve_objective(f, x0)
    optimizer = _resolve_optimizer(optimizer)
    settings = check_all(
        CONSTRAINTS,
        dict(tol=tol, max_iter=max_iter, patience=patience, ftol=ftol, refine=refine,
             dtype=dtype, keep_path=keep_path, verbose=verbose),
    )  # fmt: skip
    if callback is not None and not callable(callback):
        raise DescendTypeError(
            f"callback must be a function (of the point x, or of intermediate_result), got "
            f"{type(callback).__name__}"
        )
    _warn_past_horizon(optimizer, settings["max_iter"])
    dtype = settings["dtype"]
    context = jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()
    with context:
        x0 = _as_float(x0, dtype)
        complex_like = pairs.Layout.of(x0).like() if pairs.has_complex(x0) else None
        if complex_like is not None:
            objective, x0 = _on_real_pairs(objective, x0, optimizer)
        n_params = _tree.size(x0)
        if n_params == 0:
            raise InputError("x0 has no numbers to optimize")
        if settings["refine"] and n_params != 1:
            counted = (
                " numbers"
                if complex_like is None
                else " real numbers (a complex number counts two)"
            )
            raise InputError(
                f"refine=True bisects a sign change of the derivative, for functions of one "
                f"variable; x0 has {n_params}{counted}"
            )
        keep_path = settings["keep_path"]
        if keep_path is None:
            keep_path = n_params * (settings["max_iter"] + 1) <= _PATH_BUDGET
        config = IterateConfig(
            settings["tol"], settings["max_iter"], settings["patience"], settings["ftol"],
            settings["refine"], keep_path,
        )  # fmt: skip
        iterations = engine.Iterations(
            objective, x0, optimizer, config, per_block=None if callback is None else 1,
            watched=_watched(settings["verbose"]),
        )  # fmt: skip
        callbacks = ()
        if callback is not None:
            callbacks = (_scipy_callback(callback, iterations, optimizer, variables, complex_like),)
        progress = engine.Progress(
            settings["verbose"], unit="iteration", total=config.max_iter, delay=1.0
        )
        stop = engine.run(iterations, callbacks=callbacks, progress=progress)
        outcome = iterations.outcome()
        best = _best_point(objective, outcome) if stop == Status.INTERRUPTED else None
    return _result(outcome, stop, config, optimizer, variables, best, complex_like)


def _resolve_objective(f, x0):
    """``(objective of one pytree, x0 as that pytree, variable names or None)``."""
    from descend import functions

    if isinstance(f, str):
        functions.check_objective_text(f)
        if functions.is_known(f):
            f = functions.get(f, None if x0 is None else int(np.size(x0)))
        else:
            f = parse(f)
    if isinstance(f, functions.TestFunction):
        if isinstance(x0, Mapping):
            raise InputError(
                f"{f.name} is a function of one vector; give x0 as a sequence or an array "
                f"of {f.dim if not f.n_dimensional else 'n'} numbers, not a dict"
            )
        start = f.start if x0 is None else x0
        if np.iscomplexobj(start):
            raise InputError(
                f"{f.name} is a function of real numbers; x0 must be real, got {start!r}"
            )
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
        optimizer = optim.get(optimizer)
    if not isinstance(optimizer, Optimizer):
        raise DescendTypeError(
            f"optimizer must be an Optimizer (e.g. descend.optim.gd(lr=0.1)) or a name, "
            f"got {type(optimizer).__name__}"
        )
    if maximizes(optimizer):
        raise InputError(
            f"minimize minimizes f, and {optimizer!r} ascends it (maximize=True); to find a "
            "maximum, minimize -f, e.g. minimize(lambda x: -f(x), x0)"
        )
    return optim.left_to_tol(optimizer)  # left unset, they are 0: tol alone decides


def _warn_past_horizon(optimizer: Optimizer, max_iter: int) -> None:
    """Warn when ``max_iter`` steps can go past the learning-rate schedule's horizon."""
    past = optim.schedules.past_horizon(optimizer, max_iter)
    if past is not None:
        warn(
            f"minimize makes up to max_iter={max_iter} steps, more than the learning-rate "
            f"schedule covers: {past}, or pass a smaller max_iter"
        )


_COMPLEX_OF = {"float64": "complex128", "float32": "complex64"}


def _as_float(x0, dtype):
    """x0 in ``dtype``; complex leaves in the complex dtype of the same precision."""
    x0 = as_point(x0)  # a list of numbers is a vector, as in SciPy

    def convert(leaf):
        array = np.asarray(leaf)
        if array.dtype.kind == "c":
            return jnp.asarray(array, dtype=_COMPLEX_OF[dtype])
        if array.dtype.kind not in "biuf":
            raise InputError(f"x0 must be made of real or complex numbers, got dtype {array.dtype}")
        return jnp.asarray(array, dtype=dtype)

    return jax.tree.map(convert, x0)


@dataclass(frozen=True)
class _OnRealPairs:
    """``objective`` of a complex point, as a function of its real pairs.

    Equal (and hashing alike) for the same objective and layout, so that repeated
    runs share their compiled programs.
    """

    objective: Callable[[PyTree], Any]
    layout: pairs.Layout

    def __call__(self, point: PyTree) -> Any:
        return self.objective(self.layout.from_pairs(point))


def _on_real_pairs(objective, x0: PyTree, optimizer: Optimizer):
    r"""``(objective of the real pairs, the pairs of x0)`` for a complex ``x0``.

    The engine then iterates over real numbers only, as ``torch.optim`` steps a
    complex parameter (:mod:`descend.optim.pairs`): the gradient is
    :math:`(\partial f/\partial x, \partial f/\partial y)`, its norm
    :math:`\big(\sum (\partial f/\partial x)^2 + (\partial f/\partial y)^2\big)^{1/2}`,
    and the directional derivatives and stopping rules are those of the real problem.
    """
    if optimizer.complex_params == "refuse":
        raise pairs.refusal(optimizer._described(), x0)
    return _OnRealPairs(objective, pairs.Layout.of(x0)), pairs.to_pairs(x0)


def _watched(verbose: int) -> bool:
    """Whether someone may watch the run: a terminal, a notebook, or verbose=2."""
    return verbose == 2 or sys.stderr.isatty() or sys.stdin.isatty() or "ipykernel" in sys.modules


def _scipy_callback(callback, iterations, optimizer: Optimizer, variables, complex_like=None):
    """The user's callback as the engine calls it: with no arguments, after a block.

    As in ``scipy.optimize.minimize``: a callback whose one parameter is named
    ``intermediate_result`` receives a :class:`MinimizeResult` of the current iterate;
    any other receives the current point ``x``.
    """
    try:
        parameters = list(inspect.signature(callback).parameters)
    except (TypeError, ValueError):  # builtins without a signature
        parameters = []
    wants_result = parameters == ["intermediate_result"]

    def call():
        carry = iterations.carry
        x, value, grads, grad_norm, n_fev = _tree.to_host(
            (carry.x, carry.value, carry.grads, carry.grad_norm, carry.n_fev)
        )
        if complex_like is not None:
            x = pairs.from_pairs_on_host(complex_like, x)
            grads = pairs.from_pairs_on_host(complex_like, grads, gradient=True)
        x, grads = _named(x, variables), _named(grads, variables)
        if not wants_result:
            return callback(x)
        return callback(
            MinimizeResult(
                x=x,
                fun=float(value),
                grad=grads,
                grad_norm=float(grad_norm),
                n_iter=iterations.done(),
                n_fev=int(n_fev),
                converged=False,
                status="running",
                reason="running",
                history={},
                optimizer=repr(optimizer),
                variables=variables,
            )
        )

    return call


def _named(x: PyTree, variables) -> PyTree:
    """An expression's point as ``{variable: value}``; other points as they are."""
    if variables is None:
        return x
    return {name: float(value) for name, value in zip(variables, np.ravel(x), strict=True)}


def _best_point(objective, outcome) -> tuple[PyTree, float, PyTree, int]:
    """``(x, f(x), gradient, iteration)`` of the lowest value of the run so far.

    The point comes from the recorded path, or from the loop's own copy of the best
    point when the path is not kept; the gradient is evaluated once more there.
    """
    n_iter = int(outcome.n_iter)
    at = int(np.nanargmin(outcome.history_value[: n_iter + 1]))
    if outcome.history_x is not None:
        x = jax.tree.map(lambda h: h[at], outcome.history_x)
    else:
        x = outcome.best_x
    value, grads = jax.jit(engine.iterate.value_and_grad(objective))(x)
    return x, float(value), _tree.to_host(grads), at


def _result(
    outcome,
    stop: Status,
    config: IterateConfig,
    optimizer: Optimizer,
    variables,
    best=None,
    complex_like=None,
) -> MinimizeResult:
    n_iter = int(outcome.n_iter)
    grads_finite = all(np.all(np.isfinite(g)) for g in jax.tree.leaves(outcome.grads))
    if n_iter == 0 and not (np.isfinite(outcome.value) and grads_finite):
        raise FunctionError(
            f"the function is not finite at x0 (value {float(outcome.value)}, gradient "
            f"{'finite' if grads_finite else 'not finite'}); start from a point where it is defined"
        )
    x, value, grads = outcome.x, outcome.value, outcome.grads
    if best is not None:  # interrupted: the best point so far, not the last one
        x, value, grads, _ = best
    grad_norm = float(np.sqrt(sum(np.vdot(g, g).real for g in jax.tree.leaves(grads))))
    if complex_like is not None:
        x = pairs.from_pairs_on_host(complex_like, x)
        grads = pairs.from_pairs_on_host(complex_like, grads, gradient=True)
    history = {
        "value": outcome.history_value[: n_iter + 1],
        "grad_norm": outcome.history_grad_norm[: n_iter + 1],
    }
    if outcome.history_x is not None:
        path = jax.tree.map(lambda h: h[: n_iter + 1], outcome.history_x)
        history["x"] = (
            path if complex_like is None else pairs.from_pairs_on_host(complex_like, path)
        )
    bracket = None
    if bool(outcome.has_bracket) or stop == Status.SIGN_CHANGE:
        bracket = (float(outcome.bracket[0]), float(outcome.bracket[1]))
    converged = stop == Status.CONVERGED or (stop == Status.SIGN_CHANGE and grad_norm <= config.tol)
    return MinimizeResult(
        x=_named(x, variables),
        fun=float(value),
        grad=_named(grads, variables),
        grad_norm=grad_norm,
        n_iter=n_iter,
        n_fev=int(outcome.n_fev),
        converged=bool(converged),
        status=stop.label,
        reason=_reason(stop, outcome, config, grad_norm, optimizer, best),
        history=history,
        bracket=bracket,
        n_overshoots=int(outcome.n_overshoots),
        hints=_hints(stop, n_iter, int(outcome.n_overshoots), optimizer),
        optimizer=repr(optimizer),
        variables=variables,
    )


def _reason(stop: Status, outcome, config: IterateConfig, grad_norm: float, optimizer, best) -> str:
    lr = optimizer.hyperparams.get("lr")
    # A line search (lr=None) chooses its own steps: no learning rate to lower.
    advice = "" if lr is None else status.smaller_lr(lr)
    n_iter = int(outcome.n_iter)
    if stop == Status.CONVERGED:
        return stop.message(grad_norm=grad_norm, tol=config.tol)
    if stop == Status.NO_DECREASE:
        start, now = float(outcome.history_value[0]), float(outcome.value)
        if now > start:
            why = (
                f"the value grew from {start:.6g} at x0 to {now:.6g}, the steps are "
                f"diverging{advice}"
            )
        elif int(outcome.since_best) >= config.patience:
            why = status.plateau(
                "value", rtol=config.ftol, atol=0.0, patience=config.patience,
                unit="iteration", best=float(outcome.best),
                best_at=int(np.nanargmin(outcome.history_value[: n_iter + 1])),
            )  # fmt: skip
        else:
            why = _stall(optimizer, n_iter, grad_norm, config.tol)
        return stop.message(why=why)
    if stop == Status.SIGN_CHANGE:
        left, right = (float(v) for v in outcome.bracket)
        return stop.message(
            n_bisections=int(outcome.n_bisections), left=left, right=right, grad_norm=grad_norm
        )
    if stop == Status.DIVERGED:
        if int(outcome.failure) == 3:
            return stop.message(
                what="the gradient is not finite at the next point although the value is "
                "(the function may not be differentiable there, e.g. sqrt or log at 0)",
                where="", kept="returning the last point with a finite gradient", advice="",
            )  # fmt: skip
        if int(outcome.failure) == GREW:
            start = float(outcome.history_value[0])
            return stop.message(
                what=f"the value grew from {start:.6g} at x0 to {float(outcome.value):.6g}, "
                f"more than {rules.GROWTH:g} times its scale (the steps are too large)",
                where="", advice=advice, kept="returning the last point",
            )  # fmt: skip
        what = FAILURES.get(int(outcome.failure), "the value or gradient")
        return stop.message(
            what=f"{what} became non-finite", where="", kept="returning the last finite point",
            advice=advice,
        )  # fmt: skip
    if stop == Status.MAX_ITER:
        return stop.message(max_iter=config.max_iter, grad_norm=grad_norm)
    if stop == Status.INTERRUPTED:
        kept = f"returning the best point so far (iteration {best[3]}, f = {best[1]:.6g})"
        return stop.message(unit="iteration", done=n_iter, kept=kept)
    return stop.message(unit="iteration", done=n_iter)


def _stall(optimizer: Optimizer, n_iter: int, grad_norm: float, tol: float) -> str:
    """Why a step left x unchanged: the rule that stopped the optimizer, with its numbers."""
    short = f"gradient norm {grad_norm:.3g} has not reached tol={tol:g}"
    own = {key: optimizer.hyperparams.get(key) for key in optim.OWN_TOLERANCES}
    own = {key: value for key, value in own.items() if value}
    if own:
        settings = ", ".join(f"{key}={value:g}" for key, value in own.items())
        return (
            f"{optimizer.name} made no step at iteration {n_iter}: its own {settings} (as "
            f"torch's) ended it, and the {short}; leave them unset or 0 to let tol decide"
        )
    if optimizer.hyperparams.get("lr", 0) is None:  # gd's line search
        return (
            f"the line search found no step that lowers f at iteration {n_iter} (the change "
            f"is below f's rounding error), and the {short}"
        )
    return (
        f"the step no longer changes x at iteration {n_iter} (the update is below the "
        f"precision of x), and the {short}"
    )


def _hints(stop: Status, n_iter: int, n_overshoots: int, optimizer: Optimizer) -> tuple[str, ...]:
    hints = []
    fixed_step = optimizer.hyperparams.get("lr", None) is not None
    if fixed_step and n_iter and n_overshoots > n_iter // 2:
        hints.append(
            f"the directional derivative changed sign after {n_overshoots} of {n_iter} steps: "
            "the step overshoots the minimum along its direction; a smaller lr may converge faster"
        )
    if stop == Status.MAX_ITER:
        hints.append("increase max_iter, or try another optimizer (e.g. lbfgs)")
    own_tolerances = {
        key: optimizer.hyperparams[key]
        for key in optim.OWN_TOLERANCES
        if optimizer.hyperparams.get(key)
    }
    if stop == Status.NO_DECREASE and own_tolerances:
        settings = ", ".join(f"{key}={value:g}" for key, value in own_tolerances.items())
        hints.append(
            f"{optimizer.name} stops stepping at its own tolerances ({settings}, as in torch); "
            f"set them to 0 to let tol decide"
        )
    return tuple(hints)
