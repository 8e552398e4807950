"""What one request may ask of the playground server, and the error it answers otherwise.

Every request is bounded (:class:`Limits`): the length of an expression, the iterations
and optimizers of a race, the points of a grid, the epochs of a training run, the size
of an upload, the wall time of one run and the number of runs at once. A request past
a limit, or with a field of the wrong kind, gets a :class:`RequestError`: HTTP 4xx with
``{"error": sentence, "field": name or None, "column": int or None}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from descend.errors import suggest


@dataclass(frozen=True)
class Limits:
    """The most one request may ask for (every field a positive number).

    Attributes
    ----------
    expression_length:
        Characters of an expression (``/api/parse``, ``/api/grid``, ``/api/race``).
    variables:
        Variables of a function raced (its start point's length).
    max_iter:
        Iterations per optimizer of a race.
    optimizers:
        Optimizers in one race.
    grid_points:
        Points per axis of a grid (a 2-D grid holds the square of it).
    epochs:
        Epochs per update method of a training run.
    upload_bytes:
        Bytes of an uploaded CSV file.
    uploads:
        Uploaded files kept at once (the oldest is dropped first).
    run_seconds:
        Wall time of one race or one training run, in seconds; a race past it is
        answered with an error, a training run is stopped after the epoch in flight.
    concurrent_runs:
        Races and training runs computing at once; one more is refused (409) until one ends.
    body_bytes:
        Bytes of a JSON request body.
    """

    expression_length: int = 500
    variables: int = 20
    max_iter: int = 20_000
    optimizers: int = 8
    grid_points: int = 300
    epochs: int = 500
    upload_bytes: int = 5 * 2**20
    uploads: int = 16
    run_seconds: float = 60.0
    concurrent_runs: int = 2
    body_bytes: int = 64 * 2**10


class RequestError(Exception):
    """A request the server refuses: an HTTP status (4xx) and a sentence naming the
    problem and its fix, the request field at fault and, for an expression, the column."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        status: int = 400,
        column: int | None = None,
    ):
        super().__init__(message)
        self.message, self.field, self.status, self.column = message, field, status, column

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field, "column": self.column}


def busy(limits: Limits) -> RequestError:
    """The answer when every slot for a run is taken."""
    return RequestError(
        f"{limits.concurrent_runs} runs are computing already, as many as this server "
        "allows at once; wait for one to finish (or stop a training run) and try again",
        status=409,
    )


def body_object(body: Any) -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    if not isinstance(body, Mapping):
        raise RequestError(
            f"the request body must be a JSON object, got {type(body).__name__}: send "
            '{"field": value, ...}'
        )
    return dict(body)


def only_fields(
    body: Mapping[str, Any], allowed: tuple[str, ...], where: str = "", hint: str = ""
) -> None:
    """Refuse a field the endpoint does not read: a misspelt one (``"lr"`` beside an
    optimizer's ``"name"`` instead of inside its ``"hyperparams"``, say) would otherwise
    be ignored and the run made with the default, a wrong answer given silently."""
    for key in body:
        if key not in allowed:
            field = f"{where}.{key}" if where else str(key)
            place = f" of {where}" if where else ""
            raise RequestError(
                f"unknown field {key!r}{place}{suggest(str(key), allowed)}; the fields are "
                f"{', '.join(allowed)}{hint}",
                field=field,
            )


def number(body: Mapping[str, Any], name: str, default: float, *, minimum: float = 0.0) -> float:
    """``body[name]`` as a finite float >= ``minimum``."""
    value = body.get(name, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RequestError(f"{name} must be a number, got {value!r}", field=name)
    if value < minimum:
        raise RequestError(f"{name} must be >= {minimum:g}, got {value!r}", field=name)
    return float(value)


def integer(
    body: Mapping[str, Any], name: str, default: int | None, *, minimum: int, limit: int | None
) -> int:
    """``body[name]`` as an int in ``[minimum, limit]``; past the limit, status 422."""
    value = body.get(name, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be an integer, got {value!r}", field=name)
    if value < minimum:
        raise RequestError(f"{name} must be >= {minimum}, got {value}", field=name)
    if limit is not None and value > limit:
        raise RequestError(
            f"{name}={value} is more than this server allows ({limit}); ask for at most {limit}",
            field=name, status=422,
        )  # fmt: skip
    return value


def text(body: Mapping[str, Any], name: str, *, limit: int | None = None) -> str:
    """``body[name]`` as a non-empty string of at most ``limit`` characters (422 past it)."""
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"{name} must be a non-empty string, got {value!r}", field=name)
    if limit is not None and len(value) > limit:
        raise RequestError(
            f"{name} has {len(value)} characters, more than this server allows ({limit}); "
            "shorten it",
            field=name, status=422,
        )  # fmt: skip
    return value


def numbers(value: Any, name: str, *, length: int | None = None) -> list[float]:
    """``value`` as a list of finite floats (of ``length`` entries when given)."""
    if not isinstance(value, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        raise RequestError(f"{name} must be a list of finite numbers, got {value!r}", field=name)
    if length is not None and len(value) != length:
        raise RequestError(
            f"{name} must hold {length} numbers, one per variable, got {len(value)}", field=name
        )
    return [float(v) for v in value]
