"""What a minimization target is, whatever form it was given in.

``compare`` and ``plot`` both accept a test-function name, an expression as text, a
:class:`~descend.functions.TestFunction`, an :class:`~descend.Expression` or a plain
callable. :func:`resolve` turns any of them into one :class:`Target`: the function of
one vector, its name, and what is known about its minima.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from descend.errors import DescendTypeError
from descend.expr import Expression, parse


@dataclass(frozen=True)
class Target:
    """A function to minimize or draw, with what is known about it.

    Attributes
    ----------
    name:
        Its name (test function), its text (expression) or its ``__name__``.
    source:
        What :func:`descend.minimize` should be given (test function, expression or callable).
    fn:
        The function of one vector (entries in ``variables`` order for an expression).
    dim:
        Number of variables when known, else ``None`` (a plain callable).
    minimizers, minimum:
        The known global minimizers (flat vectors) and minimum value; ``[]`` and
        ``None`` when unknown.
    bounds:
        A plotting range, one ``(low, high)`` per variable, or ``None``.
    variables:
        The variable names of an expression, else ``None``.
    """

    name: str
    source: Any = field(repr=False)
    fn: Callable[[Any], Any] = field(repr=False)
    dim: int | None = None
    minimizers: list[np.ndarray] = field(default_factory=list, repr=False)
    minimum: float | None = None
    bounds: tuple[tuple[float, float], ...] | None = None
    variables: tuple[str, ...] | None = None

    def axis_labels(self) -> list[str]:
        """Names for the plot axes: the expression's variables, else ``x`` and ``y``."""
        if self.variables:
            return list(self.variables)
        return ["x"] if self.dim == 1 else ["x", "y"]


def resolve(f: Any, dim: int | None = None) -> Target:
    """Any accepted form of a function as a :class:`Target`.

    ``dim``, the number of variables when known (e.g. the length of the start point),
    picks the metadata of an n-dimensional test function, given by name or as a
    :class:`~descend.functions.TestFunction` (``with_dim``); a test function of a fixed
    number of variables refuses another ``dim`` with an :class:`~descend.errors.InputError`.
    """
    from descend import functions

    if isinstance(f, Target):
        return f
    if isinstance(f, str):
        f = functions.get(f, dim) if functions.is_known(f) else parse(f)
    if isinstance(f, functions.TestFunction):
        f = f if dim is None else f.with_dim(dim)
        return Target(
            name=f.name,
            source=f,
            fn=f.fn,
            dim=f.dim,
            minimizers=[np.ravel(m) for m in f.minimizers],
            minimum=float(f.minimum),
            bounds=tuple((float(low), float(high)) for low, high in f.bounds),
        )
    if isinstance(f, Expression):
        return Target(
            name=f.text.strip(),
            source=f,
            fn=f.vector_function(),
            dim=len(f.variables),
            variables=tuple(f.variables),
        )
    if callable(f):
        name = getattr(f, "__name__", "f")
        return Target(name="f" if name.startswith("<") else name, source=f, fn=f)
    raise DescendTypeError(
        f"f must be a test-function name, an expression, a TestFunction or a function of "
        f"one vector, got {type(f).__name__}"
    )
