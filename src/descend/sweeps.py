"""A sweep: one run per configuration of hyperparameters, trained or minimized at once.

``ds.fit(..., lr=[1e-3, 1e-2, 1e-1])`` (and ``minimize`` / ``compare`` over rates) runs
every configuration in one compiled program and returns a :class:`Sweep`: a sequence
of the runs' results (a :class:`~descend.FitResult` or
:class:`~descend.MinimizeResult` each), the swept values of each, a table sorted by
the score that decides which is best, and the best run itself.

The score is chosen by the results' type, as their own runs judge progress: for
``fit``, the validation loss (the training loss without validation data) of the
weights the run holds (:meth:`FitResult.metrics`, the restored epoch's after early
stopping), lower is better; for ``minimize``, the final value ``fun``. A run that
diverged ranks after every run that did not, whatever its last finite score.

>>> import descend as ds
>>> rates = [{"lr": 0.01}, {"lr": 0.1}]
>>> runs = [ds.minimize("booth", optimizer=ds.optim.sgd(**c), max_iter=50) for c in rates]
>>> sweep = ds.Sweep(tuple(runs), tuple(rates))
>>> len(sweep), sweep.ranked_by, sweep.best_configuration
(2, 'fun', {'lr': 0.1})
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

import numpy as np

from descend import _html
from descend._json import jsonable, shortest
from descend.errors import DescendTypeError, InputError

R = TypeVar("R")

# Scores where higher is better; every other (losses, values) ranks lower first.
HIGHER_IS_BETTER = frozenset({"accuracy", "val_accuracy", "r2", "val_r2"})
# Hyperparameters drawn on a log axis (rates and strengths that span decades).
LOG_SCALED = frozenset({"lr", "weight_decay", "l2", "eps", "lr_decay"})


def numbers(result: Any) -> dict[str, float]:
    """The numbers a run is judged by, by its type: a fit's :meth:`metrics` (the
    held weights' epoch), a minimization's final ``fun`` and gradient norm."""
    if callable(getattr(result, "metrics", None)):  # the rate of the next update: left out
        return {key: value for key, value in result.metrics().items() if key != "lr"}
    if hasattr(result, "fun"):
        return {"fun": float(result.fun), "grad_norm": float(result.grad_norm)}
    raise InputError(f"a sweep holds results of fit or minimize, got {type(result).__name__}")


def curves(result: Any) -> dict[str, np.ndarray]:
    """The loss curves of a run: a fit's ``loss`` (and ``val_loss``) per epoch, a
    minimization's ``value`` per iterate."""
    history = getattr(result, "history", None) or {}
    keys = ("loss", "val_loss") if "loss" in history else ("value",)
    return {key: np.asarray(history[key], dtype=float) for key in keys if key in history}


def default_score(results: Sequence[Any]) -> str:
    """The score a sweep of ``results`` is ranked by: ``val_loss`` when every run has
    validation scores, else ``loss`` (fits), or ``fun`` (minimizations)."""
    first = numbers(results[0]) if results else {}
    for key in ("val_loss", "loss", "fun"):
        if key in first and all(key in numbers(result) for result in results):
            return key
    return next(iter(first), "loss")


def label(configuration: Mapping[str, Any]) -> str:
    """``lr=0.01, betas=(0.9, 0.999)``: a configuration in words."""
    return ", ".join(f"{name}={_value(value)}" for name, value in configuration.items())


def _value(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_value(part) for part in value) + ")"
    return _html.number(value, 4) if isinstance(value, (float, np.floating)) else str(value)


@dataclass(frozen=True)
class Sweep(Sequence[R], Generic[R]):
    """The runs of a sweep, one result per configuration, in the order of the grid.

    A sequence: ``sweep[i]`` is configuration ``i``'s result (a
    :class:`~descend.FitResult` for ``fit``, a :class:`~descend.MinimizeResult` for
    ``minimize``), equal to that run alone; ``len(sweep)`` counts them.

    Attributes
    ----------
    results:
        One result per configuration.
    configurations:
        The swept values of each configuration (``{"lr": 0.01, "momentum": 0.9}``),
        as scikit-learn's ``ParameterGrid`` lists them: the last name varies fastest.
    ranked_by:
        What ranks them (:func:`default_score`): ``val_loss``, ``loss`` or ``fun``;
        lower is better, except for accuracy and R².

    ``best`` is the best-ranked run (``best_configuration`` its values), and
    ``predict``, ``predict_proba``, ``score`` and ``evaluate`` use it.
    """

    results: tuple[R, ...]
    configurations: tuple[dict[str, Any], ...]
    ranked_by: str = ""

    def __post_init__(self) -> None:
        if len(self.results) != len(self.configurations) or not self.results:
            raise InputError(
                f"a sweep needs one result per configuration (at least one), got "
                f"{len(self.results)} results and {len(self.configurations)} configurations"
            )
        if not self.ranked_by:
            object.__setattr__(self, "ranked_by", default_score(self.results))

    # ------------------------------------------------------------ a sequence

    def __len__(self) -> int:
        return len(self.results)

    @overload
    def __getitem__(self, index: int) -> R: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[R]: ...

    def __getitem__(self, index):
        return self.results[index]

    def __iter__(self) -> Iterator[R]:
        return iter(self.results)

    # ------------------------------------------------------------ ranking

    @property
    def names(self) -> list[str]:
        """The swept hyperparameters, in the order of the configurations."""
        return list(self.configurations[0])

    def values(self, by: str | None = None) -> np.ndarray:
        """Each configuration's number ``by`` (default :attr:`ranked_by`), NaN where a
        run has none (it stopped before its first epoch)."""
        key = by or self.ranked_by
        return np.asarray([numbers(result).get(key, math.nan) for result in self.results])

    def ranking(self, by: str | None = None) -> list[int]:
        """The configurations' indices, best first: by score (lower first, higher for
        accuracy and R²), runs that diverged or have no finite score last, ties in the
        grid's order."""
        key = by or self.ranked_by
        scores = self.values(key)
        sign = -1.0 if key in HIGHER_IS_BETTER else 1.0

        def rank(index: int) -> tuple[bool, float, int]:
            value = scores[index]
            failed = getattr(self.results[index], "status", "") == "diverged"
            failed = failed or not math.isfinite(value)
            return failed, sign * value if math.isfinite(value) else math.inf, index

        return sorted(range(len(self)), key=rank)

    @property
    def best_index(self) -> int:
        return self.ranking()[0]

    @property
    def best(self) -> R:
        """The best-ranked run (see :meth:`ranking`)."""
        return self.results[self.best_index]

    @property
    def best_configuration(self) -> dict[str, Any]:
        return dict(self.configurations[self.best_index])

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One dict per configuration, best first (:meth:`ranking`): ``rank`` (from 1),
        the swept values, the run's numbers (:func:`numbers`, each the shortest float
        that reads back as the number the run stored: float32's ``0.98``, not
        ``0.9800000190734863``), ``epochs`` or ``n_iter``, and ``status``;
        ``pandas.DataFrame(sweep.rows)`` shows them as a frame. As
        :attr:`descend.CompareResult.rows`; :meth:`table` is their text."""
        return self._rows(None)

    def _rows(self, by: str | None) -> list[dict[str, Any]]:
        rows = []
        for rank, index in enumerate(self.ranking(by), start=1):
            result = self.results[index]
            stored = _stored_dtype(result)
            row: dict[str, Any] = {"rank": rank, **self.configurations[index]}
            row.update(
                (key, shortest(value, stored))
                for key, value in numbers(result).items()
                if key not in row and key != "time"
            )
            for count in ("n_epochs", "n_iter"):
                if hasattr(result, count):
                    row["epochs" if count == "n_epochs" else "n_iter"] = getattr(result, count)
            row["status"] = str(getattr(result, "status", ""))
            rows.append(row)
        return rows

    def table(self, by: str | None = None) -> str:
        """:attr:`rows` as aligned text, best first (ranked ``by`` another number when
        given): what ``print(sweep)`` shows, as ``CompareResult.table()`` is a race's."""
        rows = self._rows(by)
        headings = list(dict.fromkeys(key for row in rows for key in row))
        cells = [[_cell(row.get(key, "")) for key in headings] for row in rows]
        widths = [max(len(h), *(len(c[n]) for c in cells)) for n, h in enumerate(headings)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(headings, widths, strict=True))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
        return "\n".join(line.rstrip() for line in lines)

    def __str__(self) -> str:
        """The table as aligned text, best first."""
        return self.table()

    def __repr__(self) -> str:
        best = self.best
        value = numbers(best).get(self.ranked_by, math.nan)
        failed = sum(getattr(result, "status", "") == "diverged" for result in self.results)
        diverged = f", {failed} diverged" if failed else ""
        return (
            f"Sweep({len(self)} configurations of {', '.join(self.names)}, best "
            f"{label(self.best_configuration)}: {self.ranked_by}={value:.4g}{diverged})"
        )

    def _repr_html_(self) -> str:
        """The table (best first) and every run's loss curve (Jupyter's display)."""
        rows = self.rows
        headings = list(dict.fromkeys(key for row in rows for key in row))
        order = self.ranking()
        marks = [_html.swatch(_html.COLOURS[index % len(_html.COLOURS)]) for index in order]
        body = [[_cell(row.get(key, "")) for key in headings] for row in rows]
        caption = f"Sweep of {', '.join(self.names)}, ranked by {self.ranked_by}"
        key = next(iter(curves(self.results[0])), "loss")
        series: dict[str, Any] = {
            label(configuration): curves(result).get(key, [])
            for result, configuration in zip(self.results, self.configurations, strict=True)
        }
        return _html.block(
            _html.grid(headings, body, caption=caption, marks=marks),
            _html.curves(series, title=f"{key} of each configuration", first=1),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the score, the best configuration and the table."""
        return {
            "ranked_by": self.ranked_by,
            "best": jsonable(self.best_configuration),
            "table": jsonable(self.rows),
        }

    # ------------------------------------------------------------ the best run's model

    def predict(self, X: Any) -> Any:
        """The best run's ``predict``."""
        return self.best.predict(X)  # type: ignore[attr-defined]

    def predict_proba(self, X: Any) -> Any:
        """The best run's ``predict_proba`` (classifiers)."""
        return self.best.predict_proba(X)  # type: ignore[attr-defined]

    def score(self, X: Any, y: Any = None) -> float:
        """The best run's ``score``: R² or accuracy on ``(X, y)``."""
        return self.best.score(X, y)  # type: ignore[attr-defined]

    def evaluate(self, X: Any, y: Any = None) -> dict[str, Any]:
        """The best run's ``evaluate``: its metrics on ``(X, y)``."""
        return self.best.evaluate(X, y)  # type: ignore[attr-defined]


def grid_lists(param_grid: Any, optimizer: Any = None) -> dict[str, list[Any]]:
    """``param_grid`` checked: a dict of hyperparameter names to lists of values (an
    empty list refused with an example from ``optimizer``'s defaults, :func:`no_values`).

    Raises
    ------
    DescendTypeError
        ``param_grid`` is not a dict.
    InputError
        A value that is not a list (a tuple or array counts as one), or an empty list.
    """
    if not isinstance(param_grid, Mapping):
        raise DescendTypeError(
            "param_grid must be a dict of hyperparameter names to lists of values, e.g. "
            f"param_grid={{'momentum': [0.5, 0.9]}}, got {type(param_grid).__name__}"
        )
    lists = {}
    for name, values in param_grid.items():
        if not isinstance(values, (list, tuple, np.ndarray)):
            raise InputError(
                f"param_grid[{name!r}] must be a list of values, e.g. [0.5, 0.9], got {values!r}"
            )
        if not len(values):
            raise no_values(str(name), optimizer, in_grid=True)
        lists[str(name)] = list(values)
    return lists


# Values that show what a swept name takes, where an optimizer's default would not (sgd's
# momentum of 0 keeps no momentum buffer: 0 cannot be swept beside 0.9) or there is none.
EXAMPLES: dict[str, list[Any]] = {
    "lr": [0.01, 0.1],
    "seed": [0, 1],
    "l2": [0.0, 0.01],
    "momentum": [0.5, 0.9],
    "betas": [(0.9, 0.999), (0.5, 0.9)],
}


def no_values(name: str, optimizer: Any = None, *, in_grid: bool = False) -> InputError:
    """The error for an empty list of values to sweep ``name`` over (``lr=[]``, or
    ``param_grid[name]`` with ``in_grid``), with values that fit it as the example:
    :data:`EXAMPLES`, else the default of ``optimizer`` (a name or an optimizer)."""
    values = EXAMPLES.get(name) or _default_of(name, optimizer)
    if in_grid:
        example = f", e.g. {{{name!r}: {values!r}}}" if values else ""
        return InputError(f"param_grid[{name!r}] is empty; give at least one value{example}")
    example = f", e.g. {name}={values!r}" if values else ""
    return InputError(f"{name}=[] sweeps no value; give at least one{example}")


def _default_of(name: str, optimizer: Any) -> list[Any] | None:
    """``[default]`` of hyperparameter ``name`` of ``optimizer``'s algorithm, or None."""
    from descend.optim.registry import get, hyperparameter

    if optimizer is None:
        return None
    try:
        default = hyperparameter(get(getattr(optimizer, "name", optimizer)), name)
    except (InputError, TypeError):  # not a name (a custom optimizer), or no such setting
        return None
    if isinstance(default, bool) or not isinstance(default, (int, float, tuple)):
        return None
    return [default]


def grid(lists: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``lists`` (name to values), as
    ``sklearn.model_selection.ParameterGrid`` lists them: names sorted, the last varying
    fastest.

    A value given twice in one list would run the same configuration twice and rank it
    against itself: :class:`~descend.errors.InputError` names it.

    >>> grid({"momentum": [0.5, 0.9], "lr": [0.1, 0.2]})
    [{'lr': 0.1, 'momentum': 0.5}, {'lr': 0.1, 'momentum': 0.9}, {'lr': 0.2, 'momentum': 0.5}, {'lr': 0.2, 'momentum': 0.9}]
    """  # noqa: E501
    names = sorted(lists)
    for name in names:
        _check_distinct(name, lists[name])
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(lists[name] for name in names))
    ]


def _check_distinct(name: str, values: Sequence[Any]) -> None:
    for later, value in enumerate(values):
        if any(_same(value, earlier) for earlier in values[:later]):
            raise InputError(
                f"{name} must be a list of distinct values: {value} is in it more than once "
                f"({', '.join(str(v) for v in values)}); each value runs once, so remove "
                "the repeat"
            )


def _same(a: Any, b: Any) -> bool:
    """Whether two swept values are equal (numbers, tuples, arrays; 1 and 1.0 are)."""
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return a is b


def _stored_dtype(result: Any) -> np.dtype | None:
    """The floating dtype a run kept its numbers in: a fit's ``dtype``, a minimization's
    history of values (None when it kept none)."""
    dtype = getattr(result, "dtype", None)
    if dtype is None and "value" in (getattr(result, "history", None) or {}):
        dtype = np.asarray(result.history["value"]).dtype
    return None if dtype is None else np.dtype(dtype)


def _cell(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return _value(value)
    return _html.number(value, 4)


__all__ = [
    "HIGHER_IS_BETTER",
    "LOG_SCALED",
    "Sweep",
    "curves",
    "default_score",
    "grid",
    "grid_lists",
    "label",
    "no_values",
    "numbers",
]
