"""Many starts of ``minimize`` in one call: every start's outcome and the distinct minima.

``minimize(f, x0_batch, batched=True)`` (or ``starts=N`` with ``bounds``) runs all
starts in one compiled, vectorized program (:class:`descend.engine.BatchedIterations`);
this module turns what it found into a :class:`MultistartResult`, and groups the
converged starts into the distinct minima they reached (:func:`distinct_minima`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from descend._json import jsonable
from descend._tree import PyTree
from descend.engine import Status

# Two converged starts reached the same minimum when their points differ by at most
# this times (1 + the largest coordinate of the lower one), in the max norm.
SAME_MINIMUM = 1e-3


@dataclass(frozen=True)
class Minimum:
    """One distinct minimum found by a multistart run.

    Attributes
    ----------
    x:
        The point of the start with the lowest value among those that reached it (the
        structure of one start).
    fun:
        The value there.
    count:
        How many starts converged to it.
    starts:
        Their indices (into the result's ``x``, ``fun``, ...), lowest value first.
    """

    x: PyTree
    fun: float
    count: int
    starts: tuple[int, ...]


@dataclass(frozen=True)
class MultistartResult:
    """What ``minimize(..., batched=True)`` (or ``starts=N``) found, start by start.

    Attributes
    ----------
    x:
        Every start's final point, in the structure of one start with a leading axis of
        length ``n_starts`` on every leaf (for an expression: ``{variable: (n_starts,)}``).
    x0:
        The starts, in the same form.
    fun, grad_norm:
        ``(n_starts,)`` float arrays: the value and the (projected, with bounds) gradient
        norm at each final point.
    n_iter, n_fev:
        ``(n_starts,)`` int arrays: the steps each start took, its objective evaluations.
    converged:
        ``(n_starts,)`` bool array: the start's gradient norm reached ``tol``.
    status, reason:
        Each start's stopping rule, as in :class:`~descend.minimization.MinimizeResult`
        (``"converged"``, ``"no_decrease"``, ``"diverged"``, ``"max_iter"``, or the stop of
        the whole run, ``"interrupted"``, for starts still running then), and its sentence.
        A start where ``f`` is not finite reports ``"diverged"`` alone.
    minima:
        The distinct minima the converged starts reached, lowest value first
        (:func:`distinct_minima`).
    optimizer:
        The optimizer used, as text.
    variables:
        The variable names of an expression, else ``None``.
    """

    x: PyTree
    x0: PyTree
    fun: np.ndarray
    grad_norm: np.ndarray
    n_iter: np.ndarray
    n_fev: np.ndarray
    converged: np.ndarray
    status: tuple[str, ...]
    reason: tuple[str, ...] = field(repr=False)
    minima: tuple[Minimum, ...]
    optimizer: str = ""
    variables: tuple[str, ...] | None = None

    @property
    def n_starts(self) -> int:
        return len(self.fun)

    @property
    def success(self) -> np.ndarray:
        """SciPy's name for ``converged``: a boolean per start."""
        return self.converged

    @property
    def message(self) -> tuple[str, ...]:
        """SciPy's name for ``reason``: a sentence per start."""
        return self.reason

    @property
    def nit(self) -> np.ndarray:
        """SciPy's name for ``n_iter``: the iterations of each start."""
        return self.n_iter

    @property
    def nfev(self) -> np.ndarray:
        """SciPy's name for ``n_fev``: the evaluations of each start."""
        return self.n_fev

    @property
    def best(self) -> int:
        """The index of the start with the lowest finite value (-1 when none is finite)."""
        finite = np.isfinite(self.fun)
        return int(np.argmin(np.where(finite, self.fun, np.inf))) if finite.any() else -1

    def __repr__(self) -> str:
        counts = {name: self.status.count(name) for name in dict.fromkeys(self.status)}
        lines = [
            f"  n_starts: {self.n_starts}",
            f"  status: {counts}",
            f"  minima: {len(self.minima)}",
        ]
        for minimum in self.minima[:10]:
            lines.append(f"    f = {minimum.fun:.10g} at {minimum.x} ({minimum.count} starts)")
        return "MultistartResult(\n" + "\n".join(lines) + "\n)"

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return {
            "n_starts": self.n_starts,
            "fun": jsonable(self.fun),
            "status": list(self.status),
            "minima": [
                {"x": jsonable(m.x), "fun": m.fun, "count": m.count, "starts": list(m.starts)}
                for m in self.minima
            ],
            "optimizer": self.optimizer,
        }


def distinct_minima(points: np.ndarray, fun: np.ndarray, converged: np.ndarray) -> list:
    """Group converged starts by the minimum they reached: ``[(indices, ...)]``, lowest first.

    ``points`` is ``(n_starts, n)`` (raveled), ``fun`` and ``converged`` ``(n_starts,)``.
    Starts are taken in order of value; a start joins the first group whose lowest
    point lies within ``SAME_MINIMUM * (1 + max |x|)`` of it (max norm), else it opens
    a group. Starts that did not converge are left out.
    """
    order = [i for i in np.argsort(fun, kind="stable") if converged[i]]
    groups: list[list[int]] = []
    for i in order:
        for group in groups:
            lead = points[group[0]]
            if np.max(np.abs(points[i] - lead)) <= SAME_MINIMUM * (1 + np.max(np.abs(lead))):
                group.append(int(i))
                break
        else:
            groups.append([int(i)])
    return groups


def result(
    outcome,
    x0: PyTree,
    stop: Status,
    optimizer: str,
    reason_of: Callable[[Any, Status, Any], str],
    present: Callable[[PyTree], PyTree],
    variables,
    bests: Sequence[tuple[PyTree, float, float, int] | None] | None = None,
) -> MultistartResult:
    """The :class:`MultistartResult` of a batched run's host ``outcome``.

    ``reason_of(outcome_of_one_start, status, best)`` writes one start's sentence (the
    front door's); ``present`` turns a point (one start, or all along the leading axis)
    into what the user sees (named variables for an expression). ``bests[i]``, where not
    None, is ``(x, f(x), gradient norm, iteration)`` of the best point of start ``i``,
    which that start returns instead of its last (it stopped without decrease).
    """
    statuses = np.asarray(outcome.status)
    n_starts = statuses.shape[0]
    bests = [None] * n_starts if bests is None else list(bests)
    stops, reasons = [], []
    for i in range(n_starts):
        one = jax.tree.map(lambda leaf, i=i: None if leaf is None else leaf[i], outcome)
        status = Status(int(statuses[i]))
        if status == Status.RUNNING:  # the whole run stopped (Ctrl-C) while it ran
            status = stop
        if status == Status.DIVERGED and int(one.n_iter) == 0:
            reasons.append(
                status.message(
                    what="the function is not finite at this start",
                    where="",
                    kept="x is the start",
                    advice="",
                )
            )
        else:
            reasons.append(reason_of(one, status, bests[i]))
        stops.append(status)
    fun = np.array(outcome.value, dtype=float)
    grad_norm = np.array(outcome.grad_norm, dtype=float)
    points = jax.tree.map(np.array, outcome.x)
    for i, best in enumerate(bests):
        if best is not None:
            x, fun[i], grad_norm[i], _ = best
            points = jax.tree.map(lambda all_, one, i=i: _set_row(all_, i, one), points, x)
    converged = np.array([s == Status.CONVERGED for s in stops])
    flat = np.concatenate(
        [np.reshape(leaf, (n_starts, -1)) for leaf in jax.tree.leaves(points)], axis=1
    )
    minima = tuple(
        Minimum(
            x=present(jax.tree.map(lambda leaf, i=group[0]: leaf[i], points)),
            fun=float(fun[group[0]]),
            count=len(group),
            starts=tuple(group),
        )
        for group in distinct_minima(flat, fun, converged)
    )
    return MultistartResult(
        x=present(points),
        x0=present(x0),
        fun=fun,
        grad_norm=grad_norm,
        n_iter=np.asarray(outcome.n_iter, dtype=int),
        n_fev=np.asarray(outcome.n_fev, dtype=int),
        converged=converged,
        status=tuple(s.label for s in stops),
        reason=tuple(reasons),
        minima=minima,
        optimizer=optimizer,
        variables=variables,
    )


def _set_row(rows: np.ndarray, i: int, row: Any) -> np.ndarray:
    rows[i] = row
    return rows
