"""An optimizer race: several optimizers on one function, from one start, side by side.

>>> import descend as ds
>>> race = ds.compare("(x-3)**2 + 10*(y+1)**2", ["gd", ("momentum", {"lr": 0.01})])
>>> race.best
'gd'
>>> [row["label"] for row in race.rows]
['gd', 'momentum(lr=0.01)']
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from descend import _html, optim
from descend._json import jsonable
from descend.errors import (
    DescendTypeError,
    DescendWarning,
    InputError,
    check_int,
    check_positive,
)
from descend.expr import Expression
from descend.optim import injection
from descend.optim.base import Optimizer
from descend.plot.target import Target, resolve

OptimizerSpec = Optimizer | str | tuple[str, Mapping[str, Any]]

_CRITERIA = ("auto", "value", "grad_norm")

# (row key, table heading, format); a key absent from every row is left out of the table,
# so races of another kind (per-epoch training runs) can bring their own columns.
_COLUMNS = (
    ("label", "optimizer", str),
    ("n_iter_to_tol", "iters to tol", lambda v: "-" if v is None else str(v)),
    ("n_iter", "iters", str),
    ("fun", "final value", lambda v: f"{v:.6g}"),
    ("distance", "distance to minimizer", lambda v: "-" if v is None else f"{v:.3g}"),
    ("time_s", "time (s)", lambda v: f"{v:.3g}"),
    ("cold_time_s", "first run (s)", lambda v: f"{v:.3g}"),
    ("diverged", "diverged", lambda v: "yes" if v else "no"),
    ("status", "status", str),
)


@dataclass(frozen=True)
class CompareResult:
    """The outcome of a race: one row per optimizer.

    Attributes
    ----------
    problem:
        The function's name or expression text.
    kind:
        ``"minimize"`` (each row's ``result`` is a :class:`~descend.MinimizeResult`).
        Training races will use ``"fit"``; every result has a ``history`` dict.
    rows:
        One dict per optimizer, in the order given: ``label``, ``optimizer`` (its repr),
        ``n_iter_to_tol`` (first iteration meeting the tolerance, ``None`` if never),
        ``n_iter``, ``n_fev``, ``fun`` (final value), ``distance`` (to the nearest known
        minimizer, ``None`` when none is known), ``time_s`` (wall time of a warm run, so
        without compilation), ``cold_time_s`` (the first run, compilation included),
        ``sweep_size`` (how many rows ran as one program and share those times),
        ``diverged``, ``converged``, ``status``, ``reason`` and ``result``.
    tol, criterion:
        The tolerance and what it was applied to: ``"value"`` (``f(x_k) - f* <= tol``)
        or ``"grad_norm"`` (``||grad f(x_k)|| <= tol``).
    target:
        The function raced on (for plotting), or ``None``.
    x0:
        The start point as given (``None``: the test function's suggested start).
    """

    problem: str
    kind: str
    rows: list[dict[str, Any]]
    tol: float
    criterion: str
    target: Target | None = field(default=None, repr=False)
    x0: Any = None

    @property
    def results(self) -> dict[str, Any]:
        """``{label: result}``, the full result of each run (with its history)."""
        return {row["label"]: row["result"] for row in self.rows}

    @property
    def histories(self) -> dict[str, dict[str, np.ndarray]]:
        """``{label: history}``: per-iteration (or per-epoch) arrays of each run."""
        return {row["label"]: row["result"].history for row in self.rows}

    @property
    def best(self) -> str | None:
        """The label that met the tolerance in the fewest iterations (ties: lower final
        value), or ``None`` when none did."""
        reached = [row for row in self.rows if row["n_iter_to_tol"] is not None]
        if not reached:
            return None
        return min(reached, key=lambda row: (row["n_iter_to_tol"], row["fun"]))["label"]

    def to_dict(self, *, history: bool = False) -> dict[str, Any]:
        """A JSON-ready dict with the same numbers as :attr:`rows` (non-finite numbers
        become ``None``); ``history=True`` adds each run's history as lists."""
        rows = []
        for row in self.rows:
            entry = {key: jsonable(value) for key, value in row.items() if key != "result"}
            if history:
                entry["history"] = {
                    key: jsonable(np.asarray(value)) for key, value in row["result"].history.items()
                }
            rows.append(entry)
        target = self.target
        return {
            "problem": self.problem,
            "kind": self.kind,
            "tol": self.tol,
            "criterion": self.criterion,
            "x0": jsonable(self.x0),
            "minimum": None if target is None else jsonable(target.minimum),
            "minimizers": [] if target is None else [jsonable(m) for m in target.minimizers],
            "best": self.best,
            "rows": rows,
        }

    def cells(self) -> tuple[list[str], list[list[str]]]:
        """The table as ``(headings, rows of text)``, for printing."""
        columns = [c for c in _COLUMNS if any(c[0] in row for row in self.rows)]
        body = [
            [fmt(row[key]) if key in row else "" for key, _, fmt in columns] for row in self.rows
        ]
        return [heading for _, heading, _ in columns], body

    def table(self) -> str:
        """The race as a plain-text table, best first marked with ``*``."""
        headings, body = self.cells()
        best = self.best
        body = [
            [("* " if row["label"] == best else "  ") + cells[0], *cells[1:]]
            for row, cells in zip(self.rows, body, strict=True)
        ]
        headings = ["  " + headings[0], *headings[1:]]
        widths = [max(len(text) for text in column) for column in zip(headings, *body, strict=True)]
        lines = [
            "  ".join(text.ljust(w) for text, w in zip(line, widths, strict=True)).rstrip()
            for line in [headings, ["-" * w for w in widths], *body]
        ]
        criterion = "f - f*" if self.criterion == "value" else "gradient norm"
        lines.insert(0, f"{self.problem}: {criterion} <= {self.tol:g}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        labels = [row["label"] for row in self.rows]
        shown = ", ".join(labels[:6]) + (f", and {len(labels) - 6} more" if len(labels) > 6 else "")
        return (
            f"CompareResult(problem={self.problem!r}, optimizers=[{shown}], best={self.best!r}, "
            f"{self.criterion} <= {self.tol:g})"
        )

    def _repr_html_(self) -> str:
        """The table of :meth:`table` with a colour per optimizer, and each run's
        distance to the minimum (or its value) per iteration (Jupyter's display)."""
        headings, body = self.cells()
        best = self.best
        for row, cells in zip(self.rows, body, strict=True):
            cells[0] = ("* " if row["label"] == best else "") + cells[0]
        colours = [_html.COLOURS[i % len(_html.COLOURS)] for i in range(len(self.rows))]
        criterion = "f - f*" if self.criterion == "value" else "gradient norm"
        table = _html.grid(
            headings, body, caption=f"{self.problem}: {criterion} <= {self.tol:g} (* best)",
            marks=[_html.swatch(colour) for colour in colours],
        )  # fmt: skip
        minimum = None if self.target is None else self.target.minimum
        known = self.criterion == "value" and minimum is not None
        curves = {
            row["label"]: _html.above_minimum(
                row["result"].history["value"], minimum if known else None
            )
            for row in self.rows
            if "value" in row["result"].history
        }
        title = "f - f* per iteration" if known else "f per iteration"
        return _html.block(table, _html.curves(curves, title=title, width=320, height=110))


def compare(
    f: Any,
    optimizers: Sequence[OptimizerSpec] = ("gd", "momentum", "adam"),
    x0: Any = None,
    *,
    lr: float | Sequence[float | None] | None = None,
    max_iter: int = 10_000,
    tol: float = 1e-6,
    criterion: str = "auto",
    dtype: str = "float64",
) -> CompareResult:
    r"""Race ``optimizers`` on ``f`` from ``x0`` with :func:`descend.minimize`.

    Every optimizer runs twice with the same arguments: the first (cold) run includes
    JAX's compilation, the second (warm) run gives ``time_s``. A run meets the tolerance
    at the first iteration :math:`k` with

    .. math::

        f(x_k) - f^* \le \mathrm{tol} \quad (\text{criterion } \texttt{"value"}), \qquad
        \lVert \nabla f(x_k) \rVert_2 \le \mathrm{tol} \quad (\texttt{"grad\_norm"}),

    ``"auto"`` meaning ``"value"`` when the minimum :math:`f^*` is known (a test
    function) and ``"grad_norm"`` otherwise.

    The same algorithm with the same settings at several rates (``lr=[...]`` for one
    optimizer, or the rows of a list) runs as one sweep: one compiled program, every
    rate at once (:func:`descend.minimize` with a list of ``lr``), each row equal to
    its run alone; those rows share the sweep's ``time_s`` and ``cold_time_s`` (the
    program's, all rates together) and give its size as ``sweep_size`` (1 for a row
    run alone). Each run stops by ``minimize``'s own rules
    (gradient norm below ``tol``, no decrease, divergence, ``max_iter``). A run counts as
    diverged when it stopped as ``"diverged"`` or ended above its start value.

    Parameters
    ----------
    f:
        A test-function name, an expression as text, a ``TestFunction``, an
        ``Expression``, or a function of one array (then ``x0`` is required).
    optimizers:
        Each an :class:`~descend.optim.Optimizer`, a name (its defaults are used) or a
        ``(name, {hyperparameter: value})`` pair. Repeated names get distinct labels.
    x0:
        The start, as for :func:`descend.minimize` (default: the test function's start).
    lr:
        A learning rate for every optimizer given by name, or one per optimizer
        (``None`` entries keep the default), or, for one optimizer, a list of rates to
        race it at (a row each). Must be > 0.
    max_iter, tol, dtype:
        As for :func:`descend.minimize`; ``max_iter >= 1``, ``tol >= 0``.
    criterion:
        ``"auto"`` (default), ``"value"`` or ``"grad_norm"``: what ``tol`` is applied to
        when counting iterations to tolerance.

    Returns
    -------
    CompareResult

    References
    ----------
    The race of optimizers on the Rosenbrock function follows the illustrations of
    Ruder, "An overview of gradient descent optimization algorithms", arXiv:1609.04747.
    """
    from descend.minimization import (
        STATIONARY_START,
        _expression_objective,
        _warn_if_started_stationary,
        minimize,
    )

    if isinstance(optimizers, (str, Optimizer)) or not isinstance(optimizers, Sequence):
        raise DescendTypeError(
            f"optimizers must be a list, e.g. ['gd', 'adam'], got {type(optimizers).__name__}"
        )
    if not optimizers:
        raise InputError("optimizers is empty: give at least one, e.g. ['gd', 'adam']")
    max_iter = check_int("max_iter", max_iter, minimum=1)
    tol = check_positive("tol", tol, allow_zero=True)
    if criterion not in _CRITERIA:
        raise InputError(
            f"criterion must be one of {', '.join(map(repr, _CRITERIA))}, got {criterion!r}"
        )
    dim = None if x0 is None or isinstance(x0, Mapping) else int(np.size(x0))
    target = resolve(f, dim)
    if criterion == "auto":
        criterion = "value" if target.minimum is not None else "grad_norm"
    if criterion == "value" and target.minimum is None:
        raise InputError(
            f"criterion='value' needs the known minimum of a test function; {target.name!r} "
            "has none (use criterion='grad_norm')"
        )
    listed = lr is not None and not isinstance(lr, (int, float, np.number))
    if len(optimizers) == 1 and listed and np.size(np.asarray(lr, dtype=object)) > 1:
        optimizers = list(optimizers) * int(np.size(np.asarray(lr, dtype=object)))
    built = _build_optimizers(optimizers, _lr_per_optimizer(lr, len(optimizers)))

    objective, start_point = target.source, x0
    if isinstance(objective, Expression):
        # One function object for every run, so the compiled loop is reused and the warm
        # run is timed without compilation (each vector_function() call is a new object).
        start_point = _expression_objective(objective, x0)[1]
        objective = target.fn

    def run(optimizer, rates=None):
        return minimize(
            objective, start_point, optimizer=optimizer, lr=rates, tol=tol,
            max_iter=max_iter, dtype=dtype, verbose=0,  # the race prints its own table
        )  # fmt: skip

    rows: list[dict[str, Any] | None] = [None] * len(built)
    finished: list[Any] = []  # every result, for the one warning of a stationary start
    with warnings.catch_warnings():
        # Said once for the race below, with the start as the caller wrote it.
        warnings.filterwarnings("ignore", STATIONARY_START, DescendWarning)
        for group in _sweeps(built):
            optimizer = built[group[0]][1]
            rates = [built[k][1].hyperparams["lr"] for k in group] if len(group) > 1 else None
            start = time.perf_counter()
            try:
                results = run(optimizer, rates)
            except (InputError, DescendTypeError):
                if rates is None:
                    raise
                # Rates one program cannot run together (check_configurations refused
                # them): each runs alone, and says why if it fails there too.
                groups = [[k] for k in group]
            else:
                cold = time.perf_counter() - start
                start = time.perf_counter()
                run(optimizer, rates)
                warm = time.perf_counter() - start
                for k, result in zip(group, results if rates else [results], strict=True):
                    result = _with_variables(result, target.variables)
                    finished.append(result)
                    label = built[k][0]
                    row = _row(label, built[k][1], result, target, tol, criterion, warm, cold)
                    rows[k] = {**row, "sweep_size": len(group)}
                continue
            for (k,) in groups:
                label, optimizer = built[k]
                start = time.perf_counter()
                result = _with_variables(run(optimizer), target.variables)
                cold = time.perf_counter() - start
                finished.append(result)
                start = time.perf_counter()
                run(optimizer)
                warm = time.perf_counter() - start
                row = _row(label, optimizer, result, target, tol, criterion, warm, cold)
                rows[k] = {**row, "sweep_size": 1}
    _warn_if_started_stationary(finished, tol, bounded=False, runs="optimizer")
    done = [row for row in rows if row is not None]
    return CompareResult(target.name, "minimize", done, tol, criterion, target, x0)


def _sweeps(built: list[tuple[str, Optimizer]]) -> list[list[int]]:
    """The race's optimizers grouped into sweeps: the same algorithm with the same
    settings at several numeric rates (positions into ``built``, in order of first
    appearance); every other optimizer a group of its own."""
    groups: dict[Any, list[int]] = {}
    for position, (_, optimizer) in enumerate(built):
        rate = optimizer.hyperparams.get("lr")
        numeric = isinstance(rate, (int, float)) and not isinstance(rate, bool)
        key: Any = ("alone", position)
        if numeric and (optimizer.name in optim.names() or optimizer.name in optim.WRAPPERS):
            key = injection.program_key(optimizer, ["lr"])
        groups.setdefault(key, []).append(position)
    return list(groups.values())


def _with_variables(result, variables):
    """Name the entries of ``x`` and ``grad`` by variable, as minimize does for expressions."""
    if variables is None:
        return result
    named = {
        key: {
            name: float(v)
            for name, v in zip(variables, np.ravel(getattr(result, key)), strict=True)
        }
        for key in ("x", "grad")
    }
    return dataclasses.replace(result, **named, variables=tuple(variables))


def _lr_per_optimizer(lr, count: int) -> list[float | None]:
    if lr is None or np.ndim(lr) == 0:
        rates = [lr] * count
    else:
        rates = list(lr)
        if len(rates) != count:
            raise InputError(
                f"lr has {len(rates)} values for {count} optimizers: give one for all, or one each"
            )
    return [None if rate is None else check_positive("lr", rate) for rate in rates]


def _build_optimizers(specs, rates) -> list[tuple[str, Optimizer]]:
    built: list[tuple[str, Optimizer]]
    seen: dict[str, int]
    built, seen = [], {}
    for spec, rate in zip(specs, rates, strict=True):
        if isinstance(spec, Optimizer):
            if rate is not None:
                raise InputError(
                    f"lr is given for {spec!r}, which is already built; give lr with a name, "
                    "e.g. ('adam', {'lr': 0.01})"
                )
            # An optimizer without a factory (from_optax) may carry its own label.
            given = spec.hyperparams.get("label")
            label = given if isinstance(given, str) else _label(spec.name, _non_default(spec))
            optimizer = spec
        else:
            if isinstance(spec, str):
                name, hyperparams = spec, {}
            elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
                name, hyperparams = spec[0], dict(spec[1])
            else:
                raise DescendTypeError(
                    "each optimizer must be an Optimizer, a name or a (name, {hyperparameters}) "
                    f"pair, got {spec!r}"
                )
            if rate is not None:
                if "lr" in hyperparams:
                    raise InputError(
                        f"lr is given twice for {name!r}: by lr= and in its hyperparameters"
                    )
                hyperparams["lr"] = rate
            optimizer, label = optim.get(name, **hyperparams), _label(name, hyperparams)
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label} #{seen[label]}"
        built.append((label, optimizer))
    return built


def _non_default(optimizer: Optimizer) -> dict[str, Any]:
    """The hyperparameters of a built optimizer that differ from its factory's defaults."""
    defaults = {row["name"]: row["hyperparams"] for row in optim.available()}.get(optimizer.name)
    if defaults is None:
        return {}
    missing = object()
    return {
        key: value
        for key, value in optimizer.hyperparams.items()
        if not _same(defaults.get(key, missing), value)
    }


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays or schedules compare in other ways
        return a is b


def _label(name: str, hyperparams: Mapping[str, Any]) -> str:
    if not hyperparams:
        return name
    return f"{name}(" + ", ".join(f"{key}={value!r}" for key, value in hyperparams.items()) + ")"


def _row(label, optimizer, result, target: Target, tol, criterion, warm, cold) -> dict[str, Any]:
    history = result.history
    if criterion == "value":
        measure = np.asarray(history["value"], dtype=float) - target.minimum
    else:
        measure = np.asarray(history["grad_norm"], dtype=float)
    met = np.flatnonzero(np.isfinite(measure) & (measure <= tol))
    start_value = float(np.asarray(history["value"])[0])
    diverged = (
        result.status == "diverged" or not math.isfinite(result.fun) or result.fun > start_value
    )
    return {
        "label": label,
        "optimizer": result.optimizer or repr(optimizer),
        "n_iter_to_tol": int(met[0]) if met.size else None,
        "n_iter": result.n_iter,
        "n_fev": result.n_fev,
        "fun": result.fun,
        "distance": _distance(result.x, target.minimizers),
        "time_s": warm,
        "cold_time_s": cold,
        "diverged": bool(diverged),
        "converged": result.converged,
        "status": result.status,
        "reason": result.reason,
        "result": result,
    }


def _distance(x, minimizers) -> float | None:
    if not minimizers:
        return None
    point = np.asarray(list(x.values()) if isinstance(x, Mapping) else x, dtype=float).ravel()
    return float(min(np.linalg.norm(point - np.ravel(m)) for m in minimizers))
