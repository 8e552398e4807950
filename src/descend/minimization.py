"""``minimize``: the seed's loop on a function, from a start point to a stated stop.

The front door of the engine for functions: it checks its arguments once, runs the
engine's iterations (:mod:`descend.engine.iterate`) in the engine's block loop
(:func:`descend.engine.run`), and turns what they found into a :class:`MinimizeResult`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from descend import _html, _tree, engine, multistart, optim, rules, sweeps
from descend._json import jsonable
from descend._tree import PyTree
from descend.calculus import HOST_ERRORS, HostObjective, as_point, is_tracer_error
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
from descend.optim import injection, pairs
from descend.optim.base import Optimizer, maximizes
from descend.optim.bounded import Box, bounds_size, box_of, projected
from descend.sweeps import Sweep

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
    "batched": Flag(),
    "starts": Optional(Integer(1)),
    "seed": Integer(0),
}

# SciPy's options that mean what a descend argument means (options={"maxiter": 100}).
SCIPY_OPTIONS = {"maxiter": "max_iter", "gtol": "tol"}
# ... and those that do not, with what to use instead.
_NOT_ONE_TO_ONE = {
    "ftol": "SciPy's ftol stops on a small relative decrease of one step; descend stops "
    "when the value has not improved by ftol (relative) for patience steps: pass ftol= "
    "and patience= to minimize",
    "maxfun": "descend budgets steps, not evaluations: pass max_iter=",
    "maxcor": "pass optimizer=descend.optim.lbfgs(history_size=...)",
    "eps": "the finite-difference step is chosen as SciPy chooses it (jac='2-point')",
    "disp": "pass verbose= (0 silent, 1 progress bar, 2 a line per block)",
    "maxls": "pass optimizer=descend.optim.lbfgs(max_ls=...)",
}

# SciPy's integer status codes, by descend's status (see MinimizeResult.status).
STATUS_CODES = {
    "converged": 0,
    "max_iter": 1,
    "no_decrease": 2,
    "sign_change": 2,
    "diverged": 3,
    "interrupted": 4,
    "callback": 99,
    "running": -1,
}


class StatusName(str):
    """A status name that also answers SciPy's integer code.

    ``result.status == "converged"`` and ``result.status == 0`` are both true for a
    converged run; ``int(result.status)`` is the code (:data:`STATUS_CODES`: 0
    converged, 1 max_iter, 2 no_decrease or an unconverged sign_change, 3 diverged,
    4 interrupted, 99 callback, as SciPy's 99 for a callback's ``StopIteration``).
    """

    code: int

    def __new__(cls, label: str, code: int | None = None) -> StatusName:
        name = super().__new__(cls, label)
        name.code = STATUS_CODES.get(label, 2) if code is None else code
        return name

    def __int__(self) -> int:
        return self.code

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int) and not isinstance(other, bool):
            return self.code == other
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = str.__hash__


@dataclass(frozen=True)
class MinimizeResult:
    r"""What :func:`minimize` found, and why it stopped.

    Attributes
    ----------
    x:
        The final point, in the structure of ``x0`` (NumPy arrays); for an interrupted
        run, or one stopped with no further decrease, the best point found (the last
        point of an optimizer evaluated elsewhere than it steps, schedule-free's).
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
        ``"interrupted"``; it also equals SciPy's integer code (a :class:`StatusName`:
        ``result.status == 0`` for a converged run, ``int(result.status)``).
    reason:
        The stopping rule as a sentence, with its numbers.
    history:
        ``{"value": (n_iter+1,), "grad_norm": (n_iter+1,), "x": (n_iter+1, ...)}``: one
        entry per iterate, ``x0`` first (``"x"`` absent when the path was not kept).
        After ``refine``'s bisection, also ``"bracket"``, ``(n_bisections, 2)``: the
        sign-change bracket ``(left, right)`` before the first bisection step and after
        each of the others, each half the one before.
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
    active_mask:
        With ``bounds``: which bound holds each number of ``x`` (raveled in the order of
        ``jax.flatten_util.ravel_pytree``, int8 array): -1 the lower, 1 the upper, 0
        neither (SciPy's ``least_squares`` name). ``None`` without bounds.
    n_jev:
        Number of gradient evaluations (the line searches of ``gd()`` and of the bounded
        L-BFGS evaluate values only).

    Notes
    -----
    SciPy's names answer too: ``success`` (``converged``), ``message`` (``reason``),
    ``nit`` (``n_iter``), ``nfev`` (``n_fev``), ``njev`` (``n_jev``), ``jac``
    (``grad``), and ``status`` compares equal to SciPy's integer code.
    With ``bounds``, ``grad_norm`` is the norm of the projected gradient
    :math:`x - P(x - \nabla f(x))`, the measure of convergence in a box.
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
    active_mask: np.ndarray | None = field(default=None, repr=False)
    n_jev: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.status, StatusName):
            object.__setattr__(self, "status", StatusName(self.status))

    @property
    def success(self) -> bool:
        """SciPy's name for ``converged``."""
        return self.converged

    @property
    def message(self) -> str:
        """SciPy's name for ``reason``."""
        return self.reason

    @property
    def nit(self) -> int:
        """SciPy's name for ``n_iter``."""
        return self.n_iter

    @property
    def nfev(self) -> int:
        """SciPy's name for ``n_fev``."""
        return self.n_fev

    @property
    def njev(self) -> int:
        """SciPy's name for ``n_jev``."""
        return self.n_jev

    @property
    def jac(self) -> PyTree:
        """SciPy's name for ``grad``."""
        return self.grad

    def __repr__(self) -> str:
        """One line: the status, the value, the point (long arrays summarized), the
        counts; ``reason`` and the rest are attributes (and the notebook's table)."""
        return (
            f"MinimizeResult(status={str(self.status)!r}, fun={self.fun:.10g}, "
            f"x={_html.point(self.x, limit=100)}, n_iter={self.n_iter}, n_fev={self.n_fev})"
        )

    def _repr_html_(self) -> str:
        """A table of the key numbers and the value per iteration (Jupyter's display)."""
        rows = [
            ("status", f"{self.status} ({int(self.status)})"),
            ("reason", self.reason),
            ("x", _html.point(self.x, limit=160)),
            ("fun", _html.number(self.fun, 10)),
            ("grad_norm", _html.number(self.grad_norm, 3)),
            ("n_iter", str(self.n_iter)),
            ("n_fev", str(self.n_fev)),
        ]
        if self.bracket is not None:
            rows.append(("bracket", ", ".join(_html.number(v, 8) for v in self.bracket)))
        if self.n_overshoots:
            rows.append(("n_overshoots", str(self.n_overshoots)))
        rows += [("hint", hint) for hint in self.hints]
        if self.optimizer:
            rows.append(("optimizer", self.optimizer))
        values = self.history.get("value")
        curve = "" if values is None else _html.curves({"value": values}, title="f per iteration")
        return _html.block(_html.table(rows, caption="MinimizeResult"), curve)

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
            **(
                {}
                if self.active_mask is None
                else {"active_mask": [int(v) for v in self.active_mask]}
            ),
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
    lr: float | Sequence[float] | None = None,
    bounds: Any = None,
    jac: Callable[..., Any] | bool | str | None = None,
    tol: float = 1e-6,
    max_iter: int = 10_000,
    patience: int = 1000,
    ftol: float = 0.0,
    refine: bool = False,
    dtype: str = "float64",
    keep_path: bool | None = None,
    callback: Callable[..., Any] | None = None,
    verbose: int = 1,
    options: Mapping[str, Any] | None = None,
    batched: bool = False,
    starts: int | None = None,
    seed: int = 0,
    param_grid: Mapping[str, Sequence[Any]] | None = None,
) -> MinimizeResult | multistart.MultistartResult | Sweep[MinimizeResult]:
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
    lr:
        The learning rate (> 0): the optimizer is built with it (``optimizer`` names the
        algorithm, or is left out for ``gd``; a built one has its rate replaced). A list
        of rates is a sweep: every rate (with ``param_grid``, every configuration) runs
        from ``x0`` at once, in one compiled program (``jax.vmap`` over the
        configurations, their values kept in the optimizer state:
        :func:`~descend.optim.inject_hyperparams`), and the result is a
        :class:`~descend.Sweep` of one :class:`MinimizeResult` per configuration, each
        equal to ``minimize`` alone with the optimizer built with its values (the same
        iterates, ``n_iter``, ``status`` and ``reason``, to float rounding). Each stops
        on its own rule; one that diverges is frozen and reported alone while the others
        go on. A sweep of other values with the same shapes compiles nothing again.
    bounds:
        Box bounds ``low <= x <= high``, in SciPy's forms: a ``scipy.optimize.Bounds``
        (``lb``, ``ub`` broadcast to the number of variables); for an array ``x0``, a
        sequence of ``(low, high)`` pairs, one per number, ``None`` for no bound on that
        side; for an expression, also ``{variable: (low, high)}``; for a pytree ``x0``
        (several leaves), a pair ``(lows, highs)`` of pytrees of its structure (a number
        per leaf broadcasts, ``None`` means unbounded). First-order optimizers take
        projected gradient steps, ``lbfgs`` becomes a projected L-BFGS with an active
        set (:mod:`descend.optim.bounded`); convergence is measured by the projected
        gradient, and the result's ``active_mask`` says which bounds hold. An ``x0``
        outside the box is projected onto it, with a warning. Real ``x0`` only.
    jac:
        For an ``f`` that JAX cannot trace (NumPy or SciPy code), as in SciPy: a function
        returning the gradient (in the structure of ``x``, or raveled), ``True`` when
        ``f`` returns ``(value, gradient)``, or ``"2-point"`` / ``"3-point"`` for finite
        differences (approximate, with a warning; the steps are SciPy's, see
        :func:`descend.calculus.finite_difference`). ``f`` then runs on the host, called
        from the compiled loop (``jax.pure_callback``) with NumPy arrays, with every
        stopping rule, reason and history. An exception raised there is raised again
        after the run as a ``FunctionError`` naming the point. ``None`` (default) or
        ``False``: JAX autodiff.
    tol:
        Stop when the Euclidean norm of the gradient is at most ``tol`` (>= 0).
    max_iter:
        The budget of optimizer steps (>= 1).
    patience, ftol:
        Stop ("no further decrease") when the best value has not improved by more than
        ``ftol * |best|`` for ``patience`` steps (``patience >= 1``, ``ftol >= 0``; the
        rule of :func:`descend.rules.improved`), or when a step after the first leaves
        the point unchanged (a first step may only gather statistics, as ADOPT's does).
        The run then returns its best point where that is below its last (the reason
        says so): a method with momentum climbs out of a valley and back for hundreds
        of steps before it goes lower, hence the long default ``patience``.
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
        0 silent; 1 (default) progress on stderr for runs longer than a second: a bar on
        a terminal or in a Jupyter notebook, elsewhere (a log, a pipe) a line every
        tenth of ``max_iter`` or 10 s for runs longer than 10 s; 2 one line per block
        of iterations on stdout.
    options:
        SciPy's ``options`` where they map one to one: ``{"maxiter": ..., "gtol": ...}``
        (``max_iter``, ``tol``). Others raise :class:`InputError` naming what to use.
    batched:
        ``x0`` holds many starts along a leading axis of every leaf (for an expression,
        an array ``(n_starts, n_variables)`` or ``{variable: (n_starts,)}``). All run in
        one compiled, vectorized program; each stops on its own rule (finished starts
        stay frozen), and a start where ``f`` is not finite reports ``"diverged"``
        alone. Returns a :class:`~descend.multistart.MultistartResult`, with the
        distinct minima found. No ``callback``.
    starts:
        Draw this many starts (>= 1) uniformly from the box of ``bounds`` (all finite)
        with NumPy's generator seeded by ``seed`` (>= 0), and run them as ``batched``;
        ``x0``, if given, is the first of them (and gives the structure of the points),
        the other ``starts - 1`` are drawn. Not with ``batched``; ``seed`` only with
        ``starts``.
    param_grid:
        Lists of values of the optimizer's other hyperparameters that keep the shapes
        of its state (``{"momentum": [0.5, 0.9], "betas": [(0.9, 0.999), (0.5, 0.9)]}``):
        a sweep, as a list of ``lr``. The lists combine as scikit-learn's
        ``ParameterGrid`` (every combination; names sorted, the last varying fastest),
        as ``fit``'s do. Not with ``batched``, ``starts`` or ``callback``.

    Returns
    -------
    MinimizeResult; MultistartResult with ``batched`` or ``starts``; a
    :class:`~descend.Sweep` of MinimizeResult with a list of ``lr`` or ``param_grid``
    (``sweep[i]``, ``sweep.configurations[i]``, ``sweep.best``, ``sweep.rows``,
    ``sweep.table()``)

    An optimizer evaluated elsewhere than it steps (``schedule_free_sgd``,
    ``schedule_free_adamw``: the gradient at :math:`y`, the average :math:`x` to use)
    reports :math:`x` (:func:`~descend.optim.eval_point`): ``x``, ``fun``, ``grad``,
    ``grad_norm``, the callback's point. The stopping rules watch :math:`y`, whose value
    and gradient every step computes (a second gradient per step would double the
    cost), except convergence: ``tol`` must hold at :math:`x` too, whose gradient is
    evaluated only once it holds at :math:`y`. ``history`` is :math:`y`'s; an
    interrupted run returns the last :math:`x`, not the best point of that history.

    Raises
    ------
    InputError
        An argument out of its range (the message names it, its valid range and what
        was given), an empty ``x0``, or an expression that does not parse.
    DescendTypeError
        A complex ``x0`` with an optimizer that cannot step complex numbers (adafactor,
        muon).
    FunctionError
        ``f`` does not return one real number, or is not finite at ``x0``, or is not JAX
        code (the message names ``jac=``).

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
    settings = _settings(locals())
    many = settings["batched"] or settings["starts"] is not None
    if settings["starts"] is not None and settings["batched"]:
        raise InputError(
            "starts=N draws the starts from the bounds and batched=True takes them from x0; "
            "give one of the two"
        )
    if settings["starts"] is None and settings["seed"] != 0:
        raise InputError(
            "seed= is the seed of the starts that starts=N draws; without starts=N nothing "
            "is drawn: give starts=N too, or leave seed out"
        )
    x0_given = x0 is not None
    if callback is not None and not callable(callback):
        raise DescendTypeError(
            f"callback must be a function (of the point x, or of intermediate_result), got "
            f"{type(callback).__name__}"
        )
    if callback is not None and many:
        raise InputError(
            "callback is not available with many starts (batched=True or starts=N); run "
            "one start at a time to watch it, or read each start's history afterwards"
        )
    configurations = _configurations(lr, param_grid, optimizer)
    if configurations is not None and (many or callback is not None):
        raise InputError(
            "a sweep (lists of hyperparameters) runs from one start without a callback; "
            "run one rate at a time to watch it, or sweep each start in its own call"
        )
    objective, x0, variables = _resolve_objective(f, x0, many, bounds)
    if jac is not None:
        objective = _host_objective(objective, jac)
    optimizer = _resolve_optimizer(optimizer)
    if lr is not None and np.ndim(lr) == 0:  # one rate: the optimizer built with it
        optimizer = optim.rebuild(optimizer, lr=lr)
    _warn_past_horizon(optimizer, settings["max_iter"])
    dtype = settings["dtype"]
    context = jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()
    with context:
        x0 = _as_float(x0, dtype)
        if settings["batched"]:
            _check_batch(x0)
        elif x0 is not None:
            _check_finite_start(x0)
        one = jax.tree.map(lambda leaf: leaf[0], x0) if settings["batched"] else x0
        if bounds is not None and pairs.has_complex(one):
            raise InputError("bounds are for real numbers; x0 has complex numbers")
        box = box_of(bounds, one, variables)
        if settings["starts"] is not None:
            # A given x0 is the first start; the others are drawn.
            drawn = settings["starts"] - x0_given
            x0 = _draw_starts(box, one, drawn, settings["seed"]) if drawn else None
            if x0_given:
                first = jax.tree.map(lambda leaf: jnp.asarray(leaf)[None], one)
                x0 = (
                    first
                    if x0 is None
                    else jax.tree.map(
                        lambda a, b: jnp.concatenate([a, b.astype(a.dtype)]), first, x0
                    )
                )
        if isinstance(objective, HostObjective) and pairs.has_complex(one):
            raise InputError(
                "jac= runs f on the host with real NumPy arrays; x0 has complex numbers: "
                "write f with jax.numpy (JAX differentiates it), or pass the real and "
                "imaginary parts as separate real numbers"
            )
        if isinstance(objective, HostObjective):
            objective = objective.with_box(box).checked(
                one if not settings["starts"] else _first(x0)
            )
        complex_like = pairs.Layout.of(x0).like() if pairs.has_complex(x0) else None
        if complex_like is not None and many:
            raise InputError("many starts at once are for real numbers; x0 has complex numbers")
        if complex_like is not None:
            objective, x0 = _on_real_pairs(objective, x0, optimizer)
        n_params = _tree.size(one if many else x0)  # x0: complex numbers as real pairs
        if n_params == 0:
            raise InputError("x0 has no numbers to optimize")
        if settings["refine"] and (n_params != 1 or box is not None):
            counted = (
                " numbers"
                if complex_like is None
                else " real numbers (a complex number counts two)"
            )
            raise InputError(
                f"refine=True bisects a sign change of the derivative, for functions of one "
                f"variable without bounds; x0 has {n_params}{counted}"
                + ("" if box is None else " and bounds are given")
            )
        described = repr(optimizer)
        if box is not None:
            x0 = _inside(box, x0, many)
            if configurations is None:  # a sweep projects each configuration's steps
                optimizer = projected(optimizer, box)
        keep_path = settings["keep_path"]
        if many:
            keep_path = False
        elif keep_path is None:
            runs = 1 if configurations is None else len(configurations)
            keep_path = runs * n_params * (settings["max_iter"] + 1) <= _PATH_BUDGET
        config = IterateConfig(
            settings["tol"], settings["max_iter"], settings["patience"], settings["ftol"],
            settings["refine"], keep_path, box=box, keep_history=not many,
        )  # fmt: skip
        # A bar after a second; in a log, only runs longer than a line's interval.
        progress = engine.Progress(
            settings["verbose"], unit="iteration", total=config.max_iter, delay=1.0,
            line_delay=engine.progress.LINE_SECONDS,
        )  # fmt: skip
        if configurations is not None:
            return _sweep(
                objective, x0, optimizer, configurations, config, settings, variables,
                complex_like,
            )  # fmt: skip
        iterations: engine.BatchedIterations | engine.Iterations
        if many:
            iterations = engine.BatchedIterations(
                objective, x0, optimizer, config, watched=_watched(settings["verbose"])
            )
            stop = _run(iterations, (), progress)
            outcome = iterations.outcome()
            return multistart.result(
                outcome,
                _tree.to_host(x0),
                stop,
                described,
                lambda one, status, best: _reason(
                    status, one, config, float(one.grad_norm), optimizer, best
                ),
                lambda x: _named_many(x, variables),
                variables,
                _best_points(objective, outcome, stop, optimizer, config.box),
            )
        iterations = engine.Iterations(
            objective, x0, optimizer, config, per_block=None if callback is None else 1,
            watched=_watched(settings["verbose"]),
        )  # fmt: skip
        callbacks: tuple[Callable, ...] = ()
        if callback is not None:
            callbacks = (_scipy_callback(callback, iterations, optimizer, variables, complex_like),)
        stop = _run(iterations, callbacks, progress)
        outcome = iterations.outcome()
        # The best point so far comes from the recorded path, which holds the training
        # points: an optimizer evaluated elsewhere (schedule-free) returns its last
        # evaluation point instead.
        best = _best_point(objective, outcome) if _keeps_best(outcome, stop, optimizer) else None
    result = _result(outcome, stop, config, optimizer, variables, best, complex_like)
    if described != result.optimizer:
        result = dataclasses.replace(result, optimizer=described)
    _warn_if_started_stationary([result], config.tol, bounded=config.box is not None)
    return result


def _configurations(lr: Any, param_grid: Any, optimizer: Any) -> list[dict[str, Any]] | None:
    """The configurations of a sweep (``[{"lr": 0.01}, ...]``: the list ``lr`` and
    ``param_grid`` combined as scikit-learn's ``ParameterGrid``), or None for one run.
    The values are checked when each configuration is built
    (:func:`~descend.optim.injection.check_configurations`)."""
    if isinstance(lr, (str, bytes, Mapping)) or callable(lr):
        raise DescendTypeError(
            f"lr must be a number or a list of numbers, got {type(lr).__name__}; a schedule "
            "goes inside the optimizer: optimizer=ds.optim.sgd(lr=schedule)"
        )
    lists = {} if param_grid is None else sweeps.grid_lists(param_grid, optimizer)
    if "lr" in lists and lr is not None:
        raise InputError("lr is given twice: as lr= and in param_grid; give it once")
    if lr is not None and np.ndim(lr) != 0:
        lists["lr"] = list(np.ravel(np.asarray(lr, dtype=object)))
        if not lists["lr"]:
            raise sweeps.no_values("lr")
    return sweeps.grid(lists) if lists else None


def _sweep(
    objective, x0, optimizer: Optimizer, configurations, config: IterateConfig, settings,
    variables, complex_like,
) -> Sweep[MinimizeResult]:  # fmt: skip
    """Every configuration from ``x0`` in one compiled program: a :class:`Sweep` of
    their results, each that of ``minimize`` alone with the optimizer built with its
    values (:func:`descend.optim.injection.check_configurations`)."""
    box = config.box
    if box is not None and optimizer.name == "lbfgs":
        raise InputError(
            "with bounds, lbfgs runs as a projected L-BFGS whose only setting is "
            "history_size, so its rate cannot be swept; sweep a first-order optimizer, or "
            "run lbfgs once"
        )
    names = list(configurations[0])
    built = injection.check_configurations(optimizer, configurations, x0)
    # Injected into the first configuration's optimizer, so that what the algorithm is
    # (its evaluation count, evaluation point) is that of the configurations: gd() with
    # a swept lr is gd with a fixed step, not its line search.
    optimizer = built[0]
    injected = optim.inject_hyperparams(optimizer, names)
    stepped = injected if box is None else projected(injected, box)
    # The injected optimizer steps with the values in its state: every sweep of these
    # names over this algorithm shares one compiled program, whatever the values.
    key = (injection.program_key(optimizer, names), box is not None)
    n_runs = len(configurations)
    values = {name: jnp.stack([jnp.asarray(c[name]) for c in configurations]) for name in names}
    states = jax.vmap(lambda v: injection.init_with(injected, x0, v))(values)
    starts = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (n_runs, *leaf.shape)), x0)
    progress = engine.Progress(
        settings["verbose"], unit="iteration", total=config.max_iter, delay=1.0,
        line_delay=engine.progress.LINE_SECONDS,
    )  # fmt: skip
    iterations = engine.BatchedIterations(
        objective, starts, engine.Keyed(key, stepped), config,
        watched=_watched(settings["verbose"]), opt_state0=states, rows="configurations",
    )  # fmt: skip
    stop = _run(iterations, (), progress)
    outcome = iterations.outcome()
    results = []
    for number, alone in enumerate(built):
        one = jax.tree.map(lambda leaf, k=number: leaf[k], outcome)
        status = Status(int(one.status))
        if status == Status.RUNNING:  # the whole sweep stopped (Ctrl-C) while it ran
            status = stop
        best = _best_point(objective, one) if _keeps_best(one, status, alone) else None
        results.append(_result(one, status, config, alone, variables, best, complex_like))
    _warn_if_started_stationary(results, config.tol, bounded=config.box is not None)
    return Sweep(tuple(results), tuple(dict(c) for c in configurations))


def _settings(arguments: dict[str, Any]) -> dict[str, Any]:
    """minimize's settings, checked once, with SciPy's ``options`` mapped onto them."""
    given = {name: arguments[name] for name in CONSTRAINTS}
    options = arguments["options"]
    if options is not None:
        if not isinstance(options, Mapping):
            raise DescendTypeError(
                f"options must be a dict such as {{'maxiter': 100}}, got {type(options).__name__}"
            )
        defaults = {"max_iter": 10_000, "tol": 1e-6}
        for key, value in options.items():
            if key in SCIPY_OPTIONS:
                name = SCIPY_OPTIONS[key]
                if given[name] != defaults[name]:
                    raise InputError(
                        f"options={{{key!r}: ...}} and {name}= say the same thing; give one"
                    )
                given[name] = value
            elif key in _NOT_ONE_TO_ONE:
                raise InputError(
                    f"options={{{key!r}: ...}} has no one-to-one counterpart in descend: "
                    f"{_NOT_ONE_TO_ONE[key]}"
                )
            else:
                raise InputError(
                    f"unknown option {key!r}; options accepts {sorted(SCIPY_OPTIONS)} "
                    "(SciPy's names of max_iter and tol)"
                )
    return check_all(CONSTRAINTS, given)


def _run(iterations, callbacks, progress) -> Status:
    """The engine's block loop, with a function JAX cannot trace reported as such, and
    an exception raised by a function run on the host (``jac=``) raised again."""
    HOST_ERRORS.clear()
    try:
        stop = engine.run(iterations, callbacks=callbacks, progress=progress)
    except FunctionError as error:
        if is_tracer_error(error.__cause__):
            raise FunctionError(
                "f is not JAX code (it turned a traced array into a NumPy array, a float or "
                "a bool), so JAX cannot differentiate it: pass jac= (a function returning "
                "the gradient, jac=True when f returns (value, gradient), or jac='2-point' "
                "for finite differences) to run it on the host, or write it with jax.numpy"
            ) from error
        raise
    if HOST_ERRORS:
        host_error, point = HOST_ERRORS[0]
        HOST_ERRORS.clear()
        message = (str(host_error).strip().splitlines() or [""])[0]
        raise FunctionError(
            f"f (or jac) raised {type(host_error).__name__} at x = {point!r}: {message}"
        ) from host_error
    return stop


def _host_objective(objective, jac) -> HostObjective | Callable:
    if isinstance(objective, HostObjective) or jac is False:  # False: SciPy's "no gradient"
        return objective
    if not (callable(jac) or jac is True or jac in ("2-point", "3-point")):
        raise InputError(
            f"jac must be a function returning the gradient, True (f returns (value, "
            f"gradient)), '2-point' or '3-point', got {jac!r}"
        )
    if jac in ("2-point", "3-point"):
        warn(
            f"jac={jac!r}: the gradient is approximated by finite differences (about "
            f"{'8' if jac == '2-point' else '10'} correct digits at best), so tol below "
            "about 1e-6 times the gradient's scale may not be reachable"
        )
    return HostObjective(objective, jac)


def _check_batch(x0: PyTree) -> None:
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree.leaves(x0)}
    if None in sizes or len(sizes) != 1 or 0 in sizes:
        shapes = jax.tree.map(np.shape, x0)
        raise InputError(
            "batched=True takes the starts along a leading axis of every leaf of x0, of "
            f"one length >= 1 (e.g. an array of shape (n_starts, n)); got shapes {shapes}"
        )


def _check_finite_start(x0: PyTree) -> None:
    """A single start holding NaN or infinity is refused, naming where (many starts may
    hold one: that start alone reports "diverged")."""
    flat = np.concatenate(
        [np.ravel(np.asarray(leaf)) for leaf in jax.tree.leaves(x0)] or [np.zeros(0)]
    )
    bad = np.flatnonzero(~np.isfinite(flat))
    if bad.size:
        raise InputError(
            f"x0 holds {flat[bad[0]]} at index {int(bad[0])} (of its numbers in order); "
            "start from finite numbers"
        )


def _first(x0: PyTree) -> PyTree:
    return jax.tree.map(lambda leaf: leaf[0], x0)


def _draw_starts(box: Box | None, one: PyTree, n_starts: int, seed: int) -> PyTree:
    """``n_starts`` starts drawn uniformly from the box, in the structure of ``one``."""
    if box is None:
        raise InputError(
            "starts=N draws the starts from the box of bounds=; give bounds, or pass the "
            "starts themselves as x0 with batched=True"
        )
    flat, unravel = ravel_pytree(one)
    points = jnp.asarray(box.sample(n_starts, seed), flat.dtype)
    return jax.vmap(unravel)(points)


def _inside(box: Box, x0: PyTree, many: bool) -> PyTree:
    """``x0`` projected onto the box, with a warning when that moved it."""
    project = jax.vmap(box.project) if many else box.project
    inside = project(x0)
    moved = any(
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(x0), jax.tree.leaves(inside), strict=True)
    )
    if moved:
        warn(
            f"x0 lies outside the bounds; {'the starts outside were' if many else 'it was'} "
            "projected onto the box (each number clipped to its bounds)"
        )
    return inside


def _named_many(x: PyTree, variables) -> PyTree:
    """Points of an expression as ``{variable: values}`` (last axis); others as they are."""
    if variables is None:
        return x
    x = np.asarray(x)
    if x.ndim == 1:  # one point
        return _named(x, variables)
    return {name: x[..., k] for k, name in enumerate(variables)}


def _resolve_objective(f, x0, many: bool = False, bounds=None):
    """``(objective of one pytree, x0 as that pytree, variable names or None)``.

    With ``many`` starts, ``x0`` keeps its leading axis of starts.
    """
    from descend import functions

    if isinstance(f, str):
        functions.check_objective_text(f)
        if functions.is_known(f):
            if x0 is not None:
                dim = int(np.shape(x0)[-1]) if many and np.ndim(x0) else int(np.size(x0))
            elif bounds is not None and isinstance(bounds, (list, tuple)):
                dim = len(bounds)
            else:
                dim = None
            f = functions.get(f, dim)
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
        if many and x0 is not None:
            return _expression_starts(f, x0)
        return _expression_objective(f, x0)
    if not callable(f):
        raise DescendTypeError(
            f"f must be a function, an expression or a test-function name, got {type(f).__name__}"
        )
    if x0 is None and many and bounds is not None:
        return f, np.zeros(bounds_size(bounds)), None  # the starts are drawn from the box
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


def _expression_starts(expression: Expression, x0):
    """An expression's many starts: ``(n_starts, n_variables)`` from an array or a dict."""
    names = expression.variables
    if isinstance(x0, Mapping):
        missing = sorted(set(names) - set(x0))
        if missing:
            raise InputError(f"x0 has no starts for the variables {missing}")
        values = np.stack([np.asarray(x0[name], dtype=float) for name in names], axis=-1)
    else:
        values = np.asarray(x0, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(names):
        raise InputError(
            f"many starts of {expression.text!r} are an array (n_starts, {len(names)}) in "
            f"the order {list(names)}, or {{variable: (n_starts,)}}; got shape {values.shape}"
        )
    return expression.vector_function(), values, names


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
        carry = iterations.evaluated()  # the point a user evaluates (schedule-free's x)
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


def _keeps_best(outcome, stop: Status, optimizer: Optimizer) -> bool:
    """Whether a run returns its best point rather than its last: when interrupted, and
    when it stopped because the value no longer decreased and its last value is above
    the best it reached (a momentum method climbing out of a valley, say). Not for an
    optimizer evaluated elsewhere than it steps (schedule-free): the recorded values are
    those of its training points, so it returns its last evaluation point."""
    if optimizer.eval_params is not None:
        return False
    if stop == Status.INTERRUPTED:
        return True
    return stop == Status.NO_DECREASE and float(outcome.best) < float(outcome.value)


def _best_points(objective, outcome, stop: Status, optimizer: Optimizer, box) -> list:
    """For each start of a batched run, ``(x, f(x), gradient norm, iteration)`` of its
    best point where it returns that point (:func:`_keeps_best`), else None. The best
    points come from the recorded paths or the loop's copies; their values and
    gradients are evaluated in one vectorized call."""
    n_starts = np.asarray(outcome.status).shape[0]
    best_at = np.asarray(outcome.best_at)
    keeps = []
    for i in range(n_starts):
        one = jax.tree.map(lambda leaf, i=i: None if leaf is None else leaf[i], outcome)
        status = Status(int(one.status))
        keeps.append(_keeps_best(one, stop if status == Status.RUNNING else status, optimizer))
    if not any(keeps):
        return [None] * n_starts
    if outcome.history_x is not None:
        points = jax.tree.map(
            lambda h: np.asarray(h)[np.arange(n_starts), best_at], outcome.history_x
        )
    else:
        points = outcome.best_x
    values, grads = jax.jit(jax.vmap(engine.iterate.value_and_grad(objective)))(points)
    values, grads = np.asarray(values, dtype=float), _tree.to_host(grads)
    flat_g = np.concatenate([np.reshape(g, (n_starts, -1)) for g in jax.tree.leaves(grads)], axis=1)
    if box is not None:  # the projected gradient, as the loop measures it with bounds
        flat_x = np.concatenate(
            [np.reshape(leaf, (n_starts, -1)) for leaf in jax.tree.leaves(points)], axis=1
        )
        flat_g = flat_x - np.clip(flat_x - flat_g, box.lower, box.upper)
    norms = np.sqrt(np.sum(np.abs(flat_g) ** 2, axis=1))
    return [
        (jax.tree.map(lambda leaf, i=i: np.asarray(leaf)[i], points), float(values[i]),
         float(norms[i]), int(best_at[i])) if keep else None
        for i, keep in enumerate(keeps)
    ]  # fmt: skip


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
    if best is not None:  # interrupted or no decrease: the best point, not the last one
        x, value, grads, _ = best
    box = config.box
    flat_x = None
    if box is None:
        grad_norm = float(np.sqrt(sum(np.vdot(g, g).real for g in jax.tree.leaves(grads))))
    else:
        flat_x = np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(x)])
        flat_g = np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(grads)])
        step = flat_x - np.clip(flat_x - flat_g, box.lower, box.upper)
        grad_norm = float(np.sqrt(np.dot(step, step)))
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
    if int(outcome.n_bisections) > 0:
        history["bracket"] = np.asarray(outcome.bisection_brackets[: int(outcome.n_bisections)])
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
        active_mask=None if box is None or flat_x is None else box.active(flat_x),
        n_jev=_gradient_evaluations(outcome, optimizer),
    )


def _gradient_evaluations(outcome, optimizer: Optimizer) -> int:
    """Evaluations that computed the gradient: all but the value-only line-search trials."""
    if optimizer.evaluations_with_gradient:
        return int(outcome.n_fev)
    return int(outcome.n_iter) + 1 + int(outcome.n_bisections)


def _reason(stop: Status, outcome, config: IterateConfig, grad_norm: float, optimizer, best) -> str:
    lr = optimizer.hyperparams.get("lr")
    # A line search (lr=None) chooses its own steps: no learning rate to lower.
    advice = "" if lr is None else status.smaller_lr(lr)
    n_iter = int(outcome.n_iter)
    if stop == Status.CONVERGED:
        return stop.message(grad_norm=grad_norm, tol=config.tol)
    if stop == Status.NO_DECREASE:
        start, now = float(outcome.start_value), float(outcome.value)
        if now > start:
            why = (
                f"the value grew from {start:.6g} at x0 to {now:.6g}, the steps are "
                f"diverging{advice}"
            )
        elif int(outcome.since_best) >= config.patience:
            why = status.plateau(
                "value", rtol=config.ftol, atol=0.0, patience=config.patience,
                unit="iteration", best=float(outcome.best),
                best_at=int(outcome.best_at),
            ) + ("" if best is None else "; returning that best point")  # fmt: skip
            best = None
        else:
            why = _stall(optimizer, n_iter, grad_norm, config.tol)
        if best is not None:
            why += f"; returning the best point (iteration {best[3]}, f = {best[1]:.6g})"
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
            start = float(outcome.start_value)
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
    if stop == Status.INTERRUPTED and best is None:
        return stop.message(unit="iteration", done=n_iter, kept="returning the last point")
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


STATIONARY_START = "the start is already a stationary point"  # the warning's first words


def _warn_if_started_stationary(
    results: Sequence[MinimizeResult], tol: float, *, bounded: bool, runs: str = "configuration"
) -> None:
    """Warn when every run converged at its start (a gradient below ``tol`` there): no
    step was taken, so the runs say nothing of the optimizer, and a sweep's (or a race's:
    ``runs="optimizer"``) tie."""
    if not all(result.n_iter == 0 and result.status == "converged" for result in results):
        return
    ties = f"; every {runs} ties" if len(results) > 1 else ""
    # Where the start is small enough to write, the advice is a start: 1 away in every
    # coordinate (within bounds the user chooses it).
    elsewhere = "" if bounded else _one_away(results[0].x)
    warn(
        f"{STATIONARY_START} (gradient norm "
        f"{max(result.grad_norm for result in results):.3g} <= tol={tol:g}), so no "
        f"step was taken{ties}; start elsewhere, e.g. "
        + (f"x0={elsewhere}" if elsewhere else "x0=... with each coordinate moved by 1")
    )


def _one_away(x: Any) -> str:
    """``x + 1`` written as ``x0`` is (``2``, ``[1, 3]``, ``{'x': 1, 'y': 1}``), or "" for
    a point too large, nested or complex to write in a sentence."""
    if isinstance(x, Mapping):
        values = list(x.values())
        if len(values) > 6 or not all(np.ndim(v) == 0 and np.isrealobj(v) for v in values):
            return ""
        return "{" + ", ".join(f"{name!r}: {float(v) + 1:g}" for name, v in x.items()) + "}"
    if not isinstance(x, (np.ndarray, jax.Array, np.generic, int, float)):
        return ""  # a pytree of several arrays
    point = np.asarray(x)
    if not np.isrealobj(point) or point.ndim > 1 or point.size > 6:
        return ""
    if point.ndim == 0:
        return f"{float(point) + 1:g}"
    return "[" + ", ".join(f"{float(v) + 1:g}" for v in point) + "]"


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
