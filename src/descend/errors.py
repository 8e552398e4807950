"""The exceptions descend raises, and the helpers that word them.

Every error a user can cause is one of these. Each is a subclass of ``ValueError``
or ``TypeError`` (so ``except ValueError`` keeps working) and its message names the
problem, the value that was given and what to do instead. The command line turns
them into one line on stderr and exit status 2.
"""

from __future__ import annotations

import difflib
import math
import os
import sys
import warnings
from collections.abc import Iterable
from types import FrameType
from typing import Any


class DescendError(Exception):
    """Base class of every error raised on purpose by descend.

    ``own_names``: argument names in the message that are the user's words as given
    (hyperparameters of ``--opt-args``), which the command line leaves as they are
    instead of spelling them as its options (``seed`` stays ``seed``, not ``--seed``).
    """

    own_names: tuple[str, ...] = ()


class InputError(DescendError, ValueError):
    """A value given by the user is out of range, of the wrong shape or unknown."""


class ExpressionError(InputError):
    """Text given as a mathematical expression is not in the allowed grammar.

    ``column`` is the 1-based column of the offending part, or ``None``.
    """

    def __init__(self, message: str, column: int | None = None):
        if column is not None:
            message = f"{message} at column {column}"
        super().__init__(message)
        self.column = column


class FunctionError(InputError):
    """A user function does not have the form descend needs (real scalar output)."""


class DataError(InputError):
    """Data (arrays or files) cannot be used as given."""


class CheckpointError(InputError):
    """A checkpoint file is missing, truncated, tampered with or of another format."""


class DescendTypeError(DescendError, TypeError):
    """An argument has a type descend cannot work with."""


class DescendWarning(UserWarning):
    """A setting was adjusted to something usable; the message says what is used."""


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = DescendWarning) -> None:
    """Warn, pointing at the first caller outside descend (whatever the path through it).

    A fixed ``stacklevel`` points into the library when the same check is reached by
    several paths (``load`` called by the user, or by ``fit`` given a path).
    """
    frame: FrameType | None
    frame, level = sys._getframe(1), 2  # 1 would be this function
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def suggest(name: str, valid: Iterable[str]) -> str:
    """A ``"; did you mean 'x'?"`` fragment for a misspelt name, or ``""``."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> InputError:
    """The error for an unknown optimizer / loss / model / dataset name."""
    valid = sorted(valid)
    noun, of, rest = kind.partition(" of ")  # "hyperparameter of adam": pluralize the noun
    plural = (f"{noun}es" if noun.endswith("s") else f"{noun}s") + of + rest
    return InputError(
        f"unknown {kind} {name!r}{suggest(name, valid)} (valid {plural}: {', '.join(valid)})"
    )


def invalid(name: str, requirement: str, value: Any, hint: str = "") -> InputError:
    """The one wording of a bad argument: ``"<name> must be <requirement>, got <value>"``.

    ``hint`` (``"; ..."``) says what to do when the requirement alone does not.
    """
    return InputError(f"{name} must be {requirement}, got {value!r}{hint}")


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, or raise if it is not a finite number > 0 (or >= 0)."""
    return Number(minimum=0.0, strict=not allow_zero).check(name, value)


def check_in_range(
    name: str, value: Any, low: float, high: float, *, closed_high: bool = False
) -> float:
    """Return ``value`` as a float, or raise if it is outside ``[low, high)`` (``[low, high]``)."""
    return Interval(low, high, closed_high=closed_high).check(name, value)


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum``."""
    return Integer(minimum).check(name, value)


# ------------------------------------------------------------ declared constraints
#
# A front door declares what each of its parameters accepts in one table of these
# (as scikit-learn's ``_parameter_constraints``) and checks them with one call of
# :func:`check_all`; every message follows :func:`invalid`.


class Constraint:
    """What a parameter accepts: ``requirement`` in words, ``check`` returns the value."""

    requirement = "valid"

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def convert(self, value: Any) -> Any:
        return value

    def check(self, name: str, value: Any) -> Any:
        """``value`` converted, or :func:`invalid` raised.

        A traced JAX value (inside ``jit`` or ``vmap``) has no value to check yet and is
        returned as it is: an optimizer built under a trace with traced hyperparameters
        (a sweep's, see :mod:`descend.optim.sweep`) has had them checked concretely
        before.
        """
        if is_traced(value):
            return value
        if not self.accepts(value):
            raise invalid(name, self.requirement, value, self.hint(value))
        return self.convert(value)

    def hint(self, value: Any) -> str:
        return ""


def is_traced(value: Any) -> bool:
    """True for a JAX tracer: a value inside ``jit``, ``vmap`` or ``grad`` with no
    concrete value yet (checked by type name, so that this module needs no JAX)."""
    return any(kind.__name__ == "Tracer" for kind in type(value).__mro__)


def _is_number(value: Any) -> bool:
    if isinstance(value, (bool, str)):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


class Integer(Constraint):
    """An integer (not a bool) >= ``minimum``."""

    def __init__(self, minimum: int = 1):
        self.minimum = minimum
        self.requirement = f"an integer >= {minimum}"

    def accepts(self, value: Any) -> bool:
        whole = isinstance(value, int) or hasattr(value, "__index__")
        if not whole or isinstance(value, bool):
            return False
        try:  # a traced JAX value has __index__ but no value yet
            return int(value) >= self.minimum
        except (TypeError, ValueError):
            return False

    def convert(self, value: Any) -> int:
        return int(value)


class Number(Constraint):
    """A finite number > ``minimum`` (``strict``) or >= it."""

    def __init__(self, minimum: float = 0.0, *, strict: bool = False):
        self.minimum, self.strict = minimum, strict
        bound = f"{minimum:g}"
        self.requirement = f"a finite number {'>' if strict else '>='} {bound}"

    def accepts(self, value: Any) -> bool:
        if not _is_number(value):
            return False
        number = float(value)
        return number > self.minimum if self.strict else number >= self.minimum

    def convert(self, value: Any) -> float:
        return float(value)


class Interval(Constraint):
    """A number in ``[low, high)``, or ``[low, high]`` with ``closed_high``, or ``(low, high)``
    with ``open_low``."""

    def __init__(self, low: float, high: float, *, closed_high: bool = False, open_low=False):
        self.low, self.high, self.closed_high, self.open_low = low, high, closed_high, open_low
        self.requirement = (
            f"in {'(' if open_low else '['}{low}, {high}{']' if closed_high else ')'}"
        )

    def accepts(self, value: Any) -> bool:
        if not _is_number(value):
            return False
        number = float(value)
        above = number > self.low if self.open_low else number >= self.low
        below = number <= self.high if self.closed_high else number < self.high
        return above and below

    def convert(self, value: Any) -> float:
        return float(value)


class OneOf(Constraint):
    """One of a few values (compared with ``==``; bools are not numbers here)."""

    def __init__(self, *options: Any):
        self.options = options
        shown = [repr(option) for option in options]
        self.requirement = (
            shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
        )

    def accepts(self, value: Any) -> bool:
        return any(
            value == option and isinstance(value, bool) == isinstance(option, bool)
            for option in self.options
        )

    def hint(self, value: Any) -> str:
        names = [option for option in self.options if isinstance(option, str)]
        return suggest(value, names) if isinstance(value, str) else ""


class Flag(Constraint):
    """``True`` or ``False`` (not a string, not a number)."""

    requirement = "True or False"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)


class Either(Constraint):
    """What any of ``options`` accepts, converted by the first that accepts it."""

    def __init__(self, *options: Constraint):
        self.options = options
        self.requirement = " or ".join(option.requirement for option in options)

    def accepts(self, value: Any) -> bool:
        return any(option.accepts(value) for option in self.options)

    def convert(self, value: Any) -> Any:
        return next(option for option in self.options if option.accepts(value)).convert(value)


class Optional(Constraint):
    """``None``, or what ``inner`` accepts."""

    def __init__(self, inner: Constraint):
        self.inner = inner
        self.requirement = f"None or {inner.requirement}"

    def accepts(self, value: Any) -> bool:
        return value is None or self.inner.accepts(value)

    def convert(self, value: Any) -> Any:
        return None if value is None else self.inner.convert(value)

    def check(self, name: str, value: Any) -> Any:
        # The inner requirement alone reads better: "tol must be a finite number >= 0".
        return None if value is None else self.inner.check(name, value)


def check_all(constraints: dict[str, Constraint], values: dict[str, Any]) -> dict[str, Any]:
    """Every ``values[name]`` checked against ``constraints[name]``, converted.

    Names without a constraint pass unchanged.
    """
    return {
        name: constraints[name].check(name, value) if name in constraints else value
        for name, value in values.items()
    }
