"""The exceptions descend raises, and the helpers that word them.

Every error a user can cause is one of these. Each is a subclass of ``ValueError``
or ``TypeError`` (so ``except ValueError`` keeps working) and its message names the
problem, the value that was given and what to do instead. The command line turns
them into one line on stderr and exit status 2.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any


class DescendError(Exception):
    """Base class of every error raised on purpose by descend."""


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


def suggest(name: str, valid: Iterable[str]) -> str:
    """A ``"; did you mean 'x'?"`` fragment for a misspelt name, or ``""``."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> InputError:
    """The error for an unknown optimizer / loss / model / dataset name."""
    valid = sorted(valid)
    plural = f"{kind}es" if kind.endswith("s") else f"{kind}s"
    return InputError(
        f"unknown {kind} {name!r}{suggest(name, valid)} (valid {plural}: {', '.join(valid)})"
    )


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, or raise if it is not a finite number > 0 (or >= 0)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    bound_ok = number >= 0 if allow_zero else number > 0
    if not math.isfinite(number) or not bound_ok:
        relation = ">= 0" if allow_zero else "> 0"
        raise InputError(f"{name} must be a finite number {relation}, got {value!r}")
    return number


def check_in_range(name: str, value: Any, low: float, high: float, *, closed_high: bool = False):
    """Return ``value`` as a float, or raise if it is outside ``[low, high)`` (``[low, high]``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    inside = low <= number <= high if closed_high else low <= number < high
    if not math.isfinite(number) or not inside:
        bracket = "]" if closed_high else ")"
        raise InputError(f"{name} must be in [{low}, {high}{bracket}, got {value!r}")
    return number


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or (
        not isinstance(value, (int,)) and not (hasattr(value, "__index__"))
    ):
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    number = int(value)
    if number < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return number
