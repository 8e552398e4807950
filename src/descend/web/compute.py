"""The Functions tab's answers, computed by the library: test functions, optimizers,
parsed expressions, grids of values and the optimizer race.

Nothing numerical is written here: values and gradients come from the function itself
under ``jax.vmap`` (a grid is one vectorized call), symbolic derivatives from
:func:`descend.parse`, and every run from :func:`descend.compare` (which runs
:func:`descend.minimize`). What is kept between requests is what makes a second request
fast: the parsed expressions by their text (the same function object, so ``minimize``
reuses its compiled loop) and the programs of grids and gradients by function.

Each function takes the request's JSON object and the :class:`~descend.web.limits.Limits`
and returns a JSON-ready dict, or raises :class:`~descend.web.limits.RequestError`.
"""

from __future__ import annotations

import functools
import math
import re
import shlex
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from descend import functions, optim
from descend.calculus import gradient
from descend.errors import DescendError, ExpressionError, unknown_name
from descend.expr import Expression, parse
from descend.minimization import minimize
from descend.plot.racing import compare
from descend.web.limits import (
    Limits,
    RequestError,
    integer,
    number,
    numbers,
    only_fields,
    text,
)

# Hyperparameters the page cannot set: functions, optimizers, masks (kept at their default).
_FIXED = {
    "optimizer", "adv_optimizer", "clip_value_fn", "adjust_lr_fn", "weight_decay_mask",
    "trust_ratio_mask",
}  # fmt: skip
_CRITERIA = ("auto", "value", "grad_norm")
_KEPT_EXPRESSIONS = 128


# --- what there is -------------------------------------------------------------------


def function_list() -> dict[str, Any]:
    """``GET /api/functions``: every test function with its metadata (2 variables for
    the n-dimensional ones, which take any length from their start)."""
    rows = []
    for name in functions.names():
        f = functions.get(name)
        rows.append(
            {
                "name": name,
                "n_vars": f.dim,
                "n_dimensional": f.n_dimensional,
                "expression": None,
                "formula": f.formula,
                "minimizers": [_floats(m) for m in f.minimizers],
                "minimum": _float(f.minimum),
                "bounds": [[float(low), float(high)] for low, high in f.bounds],
                "start": _floats(f.start),
            }
        )
    return {"functions": rows}


def optimizer_list() -> dict[str, Any]:
    """``GET /api/optimizers``: every algorithm of ``ds.optim.available()`` with its
    hyperparameters, their defaults and the kind of control that sets each."""
    rows = []
    for entry in optim.available():
        settings = [
            {"name": key, "default": _default(value), **_kind(key, value)}
            for key, value in entry["hyperparams"].items()
        ]
        rows.append(
            {
                "name": entry["name"],
                "reference": entry["reference"],
                "summary": entry["summary"],
                "hyperparams": settings,
            }
        )
    return {"optimizers": rows}


def _default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf"  # JSON has no infinity
    if isinstance(value, tuple):
        return [_default(v) for v in value]
    return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)


def _kind(name: str, value: Any) -> dict[str, Any]:
    if name in _FIXED:
        return {"kind": "fixed", "nullable": value is None}
    if isinstance(value, bool):
        return {"kind": "bool", "nullable": False}
    if value is None or isinstance(value, (int, float)):
        return {"kind": "number", "nullable": value is None}
    if isinstance(value, tuple) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        return {"kind": "pair", "nullable": False, "length": len(value)}
    return {"kind": "text", "nullable": False}


# --- expressions and functions ------------------------------------------------------

_expressions: OrderedDict[str, Expression] = OrderedDict()
_expressions_lock = threading.Lock()


def expression(source: str) -> Expression:
    """The parsed expression of ``source``, the same object for the same text (so the
    compiled programs of its function are reused); the most recent 128 are kept."""
    with _expressions_lock:
        found = _expressions.get(source)
        if found is not None:
            _expressions.move_to_end(source)
            return found
    parsed = parse(source)  # outside the lock: parsing may take a while
    with _expressions_lock:
        parsed = _expressions.setdefault(source, parsed)
        _expressions.move_to_end(source)
        while len(_expressions) > _KEPT_EXPRESSIONS:
            _expressions.popitem(last=False)
    return parsed


def parsed(body: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    """``POST /api/parse``: the variables and each symbolic partial derivative."""
    only_fields(body, ("expression",))
    source = text(body, "expression", limit=limits.expression_length)
    try:
        e = expression(source)
        derivatives = e.derivatives
    except ExpressionError as error:
        raise RequestError(str(error), field="expression", column=error.column) from None
    except DescendError as error:
        raise RequestError(str(error), field="expression") from None
    return {
        "expression": e.text.strip(),
        "symbolic": str(e),
        "variables": list(e.variables),
        "derivatives": [derivatives[name] for name in e.variables],
    }


@dataclass(frozen=True)
class Problem:
    """A function to draw or race, as a request names it."""

    kind: str  # "expression" or "function"
    name: str  # the expression's text, or the test function's name
    source: Any = field(repr=False)  # what ds.compare is given: Expression or TestFunction
    fn: Callable[[Any], Any] = field(repr=False)  # the function of one vector
    variables: tuple[str, ...]
    minimizers: list[list[float]]
    minimum: float | None
    bounds: list[list[float]] | None
    start: list[float]


def problem(body: Mapping[str, Any], limits: Limits, dim: int | None = None) -> Problem:
    """The request's ``expression`` or ``function`` (exactly one); ``dim`` picks the
    length of an n-dimensional test function."""
    given = [key for key in ("expression", "function") if body.get(key) not in (None, "")]
    if len(given) != 1:
        raise RequestError(
            "give one of expression (text, e.g. '(x-3)**2 + 10*(y+1)**2') or function (a "
            f"test function's name), got {'both' if given else 'neither'}",
            field="expression",
        )
    if given[0] == "expression":
        source = text(body, "expression", limit=limits.expression_length)
        try:
            e = expression(source)
        except ExpressionError as error:
            raise RequestError(str(error), field="expression", column=error.column) from None
        except DescendError as error:
            raise RequestError(str(error), field="expression") from None
        if not e.variables:
            raise RequestError(
                f"{source!r} has no variable: write a function of x (and y, ...)",
                field="expression",
            )
        if len(e.variables) > limits.variables:
            raise RequestError(
                f"the expression has {len(e.variables)} variables, more than this server "
                f"allows ({limits.variables})",
                field="expression", status=422,
            )  # fmt: skip
        return Problem(
            "expression", e.text.strip(), e, e.vector_function(), tuple(e.variables), [], None,
            None, [0.0] * len(e.variables),
        )  # fmt: skip
    name = body["function"]
    if not isinstance(name, str) or not functions.is_known(name):
        unknown = unknown_name("test function", str(name), functions.names())
        raise RequestError(str(unknown), field="function", status=404)
    if dim is not None and dim > limits.variables:
        raise RequestError(
            f"{dim} variables is more than this server allows ({limits.variables})",
            field="start", status=422,
        )  # fmt: skip
    try:
        f = functions.get(name, dim)
    except DescendError as error:
        raise RequestError(str(error), field="start") from None
    names = ("x", "y") if f.dim == 2 else ("x",) if f.dim == 1 else ()
    return Problem(
        "function", f.name, f, f.fn, names or tuple(f"x{i + 1}" for i in range(f.dim)),
        [_floats(m) for m in f.minimizers], _float(f.minimum),
        [[float(low), float(high)] for low, high in f.bounds], _floats(f.start),
    )  # fmt: skip


# --- grids -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _values_program(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``fn`` on a batch of points, one compiled program per function and shape."""
    return jax.jit(jax.vmap(fn))


@functools.lru_cache(maxsize=256)
def _gradients_program(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The gradient of ``fn`` (JAX autodiff) on a batch of points."""
    return jax.jit(jax.vmap(gradient(fn)))


def _on_points(program: Callable[[Any], Any], points: np.ndarray) -> np.ndarray:
    """``program`` on ``points`` in float64, padded to a power of two of rows so that
    paths of many lengths share a few compiled shapes."""
    rows = points.shape[0]
    padded = 1 << max(rows - 1, 1).bit_length()
    filler = np.broadcast_to(points[-1:], (padded - rows, *points.shape[1:]))
    with jax.enable_x64(True):
        out = program(jnp.asarray(np.concatenate([points, filler]), dtype=jnp.float64))
        return np.asarray(out, dtype=np.float64)[:rows]


def grid(body: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    """``POST /api/grid``: the function's values on an ``n`` (x ``n``) grid over
    ``bounds``, in one vectorized call; for 2 variables, log-spaced contour levels."""
    only_fields(body, ("expression", "function", "bounds", "n"))
    bounds_given = body.get("bounds")
    dim = len(bounds_given) if isinstance(bounds_given, list) and bounds_given else None
    target = problem(body, limits, dim if body.get("function") else None)
    dim = len(target.variables)
    if dim not in (1, 2):
        raise RequestError(
            f"a grid is drawn for functions of 1 or 2 variables; this one has {dim}",
            field="expression" if target.kind == "expression" else "function",
        )
    bounds = _bounds(bounds_given, target, dim)
    n = integer(body, "n", 100, minimum=2, limit=limits.grid_points)
    axes = [np.linspace(low, high, n) for low, high in bounds]
    if dim == 1:
        points = axes[0][:, None]
    else:
        xs, ys = np.meshgrid(axes[0], axes[1])  # rows over y, as Plotly's z
        points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    values = _on_points(_values_program(target.fn), points)
    minimizers = [m for m in target.minimizers if _inside(m, bounds)]
    if dim == 1:
        return {"x": _floats(axes[0]), "z": _floats(values), "minimizers": minimizers}
    z = values.reshape(n, n)
    return {
        "x": _floats(axes[0]),
        "y": _floats(axes[1]),
        "z": [_floats(row) for row in z],
        "levels": _levels(z),
        "minimizers": minimizers,
    }


def _bounds(given: Any, target: Problem, dim: int) -> list[list[float]]:
    if given is None:
        return target.bounds or [[-5.0, 5.0]] * dim
    if not isinstance(given, list) or len(given) != dim:
        raise RequestError(
            f"bounds must be {dim} pairs [low, high], one per variable, got {given!r}",
            field="bounds",
        )
    pairs = [numbers(pair, "bounds", length=2) for pair in given]
    for low, high in pairs:
        if not low < high:
            raise RequestError(f"each bound needs low < high, got [{low}, {high}]", field="bounds")
    return pairs


def _inside(point: list[float], bounds: list[list[float]]) -> bool:
    return all(low <= v <= high for v, (low, high) in zip(point, bounds, strict=True))


def _levels(z: np.ndarray, count: int = 20) -> list[float]:
    """Contour levels spaced evenly in log(f - min f) over the grid's finite values."""
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return []
    low, high = float(finite.min()), float(finite.max())
    if not high > low:
        return [low]
    span = high - low
    return _floats(low + np.geomspace(span * 1e-4, span, count))


# --- the race ---------------------------------------------------------------------------


def race(body: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    """``POST /api/race``: ``ds.compare`` on the request's function, start and
    optimizers, with each run's path, values, gradients and stop reason; and the Python
    call and command line that reproduce it."""
    only_fields(
        body, ("expression", "function", "start", "optimizers", "max_iter", "tol", "criterion")
    )
    start_given = body.get("start")
    dim = len(start_given) if isinstance(start_given, list) and start_given else None
    target = problem(body, limits, dim if body.get("function") else None)
    start = (
        target.start
        if start_given is None
        else numbers(start_given, "start", length=len(target.variables))
    )
    specs = _optimizer_specs(body.get("optimizers"), limits)
    max_iter = integer(body, "max_iter", 1000, minimum=1, limit=limits.max_iter)
    tol = number(body, "tol", 1e-6)
    criterion = body.get("criterion", "auto")
    if criterion not in _CRITERIA:
        raise RequestError(
            f"criterion must be one of {', '.join(_CRITERIA)}, got {criterion!r}", field="criterion"
        )
    if criterion == "value" and target.minimum is None:
        raise RequestError(
            "criterion 'value' needs a known minimum (a test function); use 'grad_norm'",
            field="criterion",
        )
    try:
        result = compare(
            target.source, specs, start, max_iter=max_iter, tol=tol, criterion=criterion
        )
    except DescendError as error:
        raise RequestError(str(error), field="optimizers") from None
    runs = [_run(row, target, spec) for row, spec in zip(result.rows, specs, strict=True)]
    if len(target.variables) == 1:
        for run, spec in zip(runs, specs, strict=True):
            if run["bracket"] is not None:
                run["refine"] = _refined(target, start, spec, max_iter=max_iter, tol=tol)
    arguments = RaceArguments(target, start, specs, max_iter, tol, criterion)
    return {
        "problem": target.name,
        "variables": list(target.variables),
        "criterion": result.criterion,
        "tol": tol,
        "best": result.best,
        "minimum": target.minimum,
        "minimizers": target.minimizers,
        "runs": runs,
        "python": arguments.python(),
        "cli": arguments.command_line(),
    }


def _optimizer_specs(given: Any, limits: Limits) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(given, list) or not given:
        raise RequestError(
            'optimizers must be a non-empty list of {"name": ..., "hyperparams": {...}}, '
            f"got {given!r}",
            field="optimizers",
        )
    if len(given) > limits.optimizers:
        raise RequestError(
            f"{len(given)} optimizers is more than this server allows in one race "
            f"({limits.optimizers}); remove some",
            field="optimizers", status=422,
        )  # fmt: skip
    known = _hyperparameters()
    specs = []
    for i, item in enumerate(given):
        where = f"optimizers.{i}"  # the page's name for the control at fault
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise RequestError(
                f'optimizer {i + 1} must be {{"name": ..., "hyperparams": {{...}}}}, got {item!r}',
                field=where,
            )
        only_fields(
            item, ("name", "hyperparams"), where,
            f' (hyperparameters go inside "hyperparams": {{"name": {item["name"]!r}, '
            '"hyperparams": {"lr": 0.01}})',
        )  # fmt: skip
        name = item["name"]
        if name not in known:
            error = unknown_name("optimizer", name, known)
            raise RequestError(f"{error}; GET /api/optimizers describes each",
                               field=f"{where}.name", status=404)  # fmt: skip
        hyperparams = checked_hyperparameters(name, item.get("hyperparams"), f"{where}.hyperparams")
        specs.append((name, hyperparams))
    return specs


def checked_hyperparameters(optimizer: str, given: Any, where: str) -> dict[str, Any]:
    """The hyperparameters ``given`` (JSON ``{name: value}``) of a known optimizer as
    ``ds.optim.get(optimizer, **values)`` takes them, checked by building it.

    A refused value is a :class:`RequestError` whose field is ``where.<name>``, the
    page's control of that hyperparameter (see :func:`_at_fault`), so that the message
    shows beside the input at fault.
    """
    given = {} if given is None else given
    if not isinstance(given, Mapping):
        raise RequestError(
            f"the hyperparameters of {optimizer} must be an object of name: value, got {given!r}",
            field=where,
        )
    defaults = _hyperparameters()[optimizer]
    values = {
        key: _hyperparameter(optimizer, key, value, defaults, f"{where}.{key}")
        for key, value in given.items()
    }
    try:
        optim.get(optimizer, **values)
    except (DescendError, TypeError, ValueError) as error:
        raise RequestError(
            f"{optimizer}: {error}", field=_at_fault(optimizer, values, str(error), where)
        ) from None
    return values


def _at_fault(optimizer: str, values: dict[str, Any], message: str, where: str) -> str:
    """The field of the hyperparameter a refusal is about: the first value refused on
    its own (the others at their defaults), else the first one the message names (a
    combination, such as nesterov without momentum), else ``where``."""
    for key, value in values.items():
        try:
            optim.get(optimizer, **{key: value})
        except (DescendError, TypeError, ValueError):
            return f"{where}.{key}"
    words = re.findall(r"[A-Za-z_]\w*", message)
    named = next((word for word in words if word in values), None)
    return where if named is None else f"{where}.{named}"


@functools.lru_cache(maxsize=1)
def _hyperparameters() -> dict[str, dict[str, Any]]:
    """``{optimizer: {hyperparameter: default}}`` of ``ds.optim.available()``."""
    return {entry["name"]: entry["hyperparams"] for entry in optim.available()}


def _hyperparameter(optimizer: str, key: str, value: Any, defaults: dict, where: str) -> Any:
    """A hyperparameter from JSON: lists become tuples, ``"inf"`` a float; text only as
    a plain word (so that the command line can carry it)."""
    if key not in defaults:
        error = unknown_name(f"hyperparameter of {optimizer}", key, defaults)
        raise RequestError(str(error), field=where)
    if key in _FIXED:
        raise RequestError(
            f"{key} of {optimizer} cannot be set here (it takes a function or an optimizer); "
            "leave it out",
            field=where,
        )
    if isinstance(value, list):
        return tuple(_hyperparameter(optimizer, key, v, defaults, where) for v in value)
    if isinstance(value, str):
        if value.strip().lower() in ("inf", "infinity", "-inf", "-infinity"):
            return float(value.strip().lower().replace("infinity", "inf"))
        if not value.isidentifier():
            raise RequestError(
                f"{key} of {optimizer} must be a number, true/false or a plain word, got {value!r}",
                field=where,
            )
        return value
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise RequestError(f"{key} of {optimizer} cannot be {value!r}", field=where)


def _refined(
    target: Problem,
    start: list[float],
    spec: tuple[str, dict[str, Any]],
    *,
    max_iter: int,
    tol: float,
) -> list[list[float]] | None:
    """The brackets of ``refine``'s bisection for a run whose derivative changed sign:
    ``ds.minimize(..., refine=True)`` with the race's settings, which stops at the
    first sign change and halves the bracket step by step (``history["bracket"]``)."""
    name, hyperparams = spec
    refined = minimize(
        target.source,
        start,
        optimizer=optim.get(name, **hyperparams),
        refine=True,
        verbose=0,
        max_iter=max_iter,
        tol=tol,
    )
    brackets = getattr(refined, "history", {}).get("bracket")  # one start: a MinimizeResult
    return None if brackets is None else _rows(np.asarray(brackets, dtype=np.float64))


def _run(row: dict[str, Any], target: Problem, spec: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    result = row["result"]
    history = result.history
    values = np.asarray(history["value"], dtype=np.float64)
    path = history.get("x")
    if path is not None:
        path = np.asarray(path, dtype=np.float64).reshape(len(values), -1)
        gradients = _on_points(_gradients_program(target.fn), path)
    x = result.x
    point = [x[name] for name in target.variables] if isinstance(x, Mapping) else _floats(x)
    return {
        "label": row["label"],
        "name": spec[0],
        "hyperparams": {key: _default(value) for key, value in spec[1].items()},
        "path": None if path is None else _rows(path),
        "values": _floats(values),
        "gradients": None if path is None else _rows(gradients),
        "grad_norms": _floats(history["grad_norm"]),
        "nit": result.n_iter,
        "n_iter_to_tol": row["n_iter_to_tol"],
        "n_fev": result.n_fev,
        "fun": _float(result.fun),
        "x": _floats(point),
        "status": result.status,
        "reason": result.reason,
        "converged": bool(result.converged),
        "diverged": bool(row["diverged"]),
        "distance": _float(row["distance"]),
        "seconds": row["time_s"],
        "cold_seconds": row["cold_time_s"],
        "bracket": None if result.bracket is None else [float(v) for v in result.bracket],
        "refine": None,
    }


@dataclass(frozen=True)
class RaceArguments:
    """The race as ``ds.compare`` takes it, written as Python and as a command line."""

    target: Problem
    start: list[float]
    specs: list[tuple[str, dict[str, Any]]]
    max_iter: int
    tol: float
    criterion: str

    def python(self) -> str:
        optimizers = ", ".join(
            repr(name) if not hyperparams else f"({name!r}, {hyperparams!r})"
            for name, hyperparams in self.specs
        )
        extra = "" if self.criterion == "auto" else f", criterion={self.criterion!r}"
        return (
            "import descend as ds\n\n"
            f"race = ds.compare(\n    {self.target.name!r},\n    [{optimizers}],\n"
            f"    x0={self.start!r},\n    max_iter={self.max_iter!r},\n"
            f"    tol={self.tol!r}{extra},\n)\nprint(race.table())\n"
        )

    def command_line(self) -> str:
        if self.target.kind == "expression":
            named = zip(self.target.variables, self.start, strict=True)
            x0 = ",".join(f"{name}={value!r}" for name, value in named)
            x0_option = f"--x0 {shlex.quote(x0)}"
        else:  # values in order; '=' so that a leading '-' is not read as an option
            x0_option = shlex.quote("--x0=" + ",".join(repr(v) for v in self.start))
        optimizers = ",".join(
            name if not hyperparams else f"{name}({_options_text(hyperparams)})"
            for name, hyperparams in self.specs
        )
        words = [
            "descend compare", shlex.quote(self.target.name), x0_option,
            f"--optimizers {shlex.quote(optimizers)}", f"--max-iter {self.max_iter}",
            f"--tol {self.tol!r}",
        ]  # fmt: skip
        if self.criterion != "auto":
            words.append(f"--criterion {self.criterion}")
        return " ".join(words)


def _options_text(hyperparams: dict[str, Any]) -> str:
    """``key=value,...`` as ``descend compare --optimizers`` reads it."""

    def word(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            return "none"
        if isinstance(value, tuple):
            return "(" + ",".join(word(v) for v in value) + ")"
        return repr(value) if isinstance(value, float) else str(value)

    return ",".join(f"{key}={word(value)}" for key, value in hyperparams.items())


# --- JSON numbers ---------------------------------------------------------------------


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _floats(values: Any) -> list[Any]:
    """A flat list of floats, non-finite ones as None (JSON has no NaN)."""
    array = np.asarray(values, dtype=np.float64).ravel()
    if np.isfinite(array).all():
        return array.tolist()
    return [float(v) if math.isfinite(v) else None for v in array.tolist()]


def _rows(array: np.ndarray) -> list[list[Any]]:
    if np.isfinite(array).all():
        return array.tolist()
    return [_floats(row) for row in array]
