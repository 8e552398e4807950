"""The optimizer interface: a pure ``init`` / ``step`` pair over any pytree.

An optimizer is a value, not an object with hidden state::

    opt = descend.optim.gd(lr=0.1)
    state = opt.init(params)
    params, state = opt.step(params, grads, state)

``step`` also accepts two keyword arguments that the engine always passes and most
algorithms ignore: ``value`` (the objective at ``params``) and ``value_fn`` (the
objective as a function of params, for line searches). Both functions are pure and
trace under ``jax.jit``; the state is a pytree, so it jits, saves and shards like params.

Complex parameters are stepped as pairs of reals, as ``torch.optim`` steps them (see
:mod:`descend.optim.pairs`): every ``Optimizer`` wraps the ``init`` and ``step`` it is
built with, which then see only real arrays.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from descend._tree import PyTree
from descend.errors import DescendTypeError, InputError, check_positive
from descend.optim import pairs

State = Any


class StepFn(Protocol):
    def __call__(
        self,
        params: PyTree,
        grads: PyTree,
        state: State,
        *,
        value: jax.Array | None = None,
        value_fn: Callable[[PyTree], jax.Array] | None = None,
    ) -> tuple[PyTree, State]: ...


@dataclass(frozen=True, eq=False)
class Optimizer:
    r"""A gradient-descent algorithm as two pure functions.

    Attributes
    ----------
    name:
        The algorithm's name (``"gd"``, ``"adam"``, ...).
    init:
        ``init(params) -> state``.
    step:
        ``step(params, grads, state, *, value=None, value_fn=None) -> (params, state)``.
    hyperparams:
        The hyperparameters it was built with, for display, saving and comparison.
    needs_value_fn:
        True when ``step`` must be given ``value`` and ``value_fn`` (line searches).
    evaluations:
        Optional ``evaluations(state) -> int``: how many objective evaluations the
        algorithm made inside its steps (line-search trials), for result reporting.
    complex_params:
        ``"pairs"`` (default): a complex leaf :math:`x + iy` is stepped as the real
        pair :math:`(x, y)` with the gradient :math:`(\partial f/\partial x,
        \partial f/\partial y)`, as ``torch.optim`` steps it (``view_as_real``); the
        gradient passed to ``step`` is JAX's (the conjugate of torch's ``.grad``) and
        the state of a complex leaf is that of its pairs. ``"refuse"``: ``init`` and
        ``step`` raise :class:`~descend.errors.DescendTypeError` naming the complex
        leaves, for algorithms without a pairs form (Adafactor, Muon). Either way
        ``init`` and ``step`` are wrapped once, when the optimizer is built (see
        :mod:`descend.optim.pairs`); with real params they call the functions given.
        Integer and boolean leaves are refused either way
        (:class:`~descend.errors.DescendTypeError` naming them), as ``torch`` refuses
        them as parameters.

    Two optimizers are equal (and hash alike) when their name, hyperparameters,
    ``needs_value_fn`` and functions agree, functions comparing by their code and
    the values they capture. Equal optimizers share compiled loops, so
    ``adam(lr=0.1)`` built twice compiles once, while optimizers whose functions
    capture different values never share one.
    """

    name: str
    init: Callable[[PyTree], State]
    step: StepFn
    hyperparams: Mapping[str, Any] = field(default_factory=dict)
    needs_value_fn: bool = False
    evaluations: Callable[[State], jax.Array] | None = None
    complex_params: str = "pairs"

    def __post_init__(self):
        if self.complex_params == "pairs":
            init, step = pairs.as_real_pairs(self.init, self.step, name=self._described())
        elif self.complex_params == "refuse":
            init, step = pairs.refusing_complex(self.init, self.step, name=self._described())
        else:
            raise InputError(
                f"complex_params must be 'pairs' or 'refuse', got {self.complex_params!r}"
            )
        object.__setattr__(self, "init", init)
        object.__setattr__(self, "step", step)

    def _described(self) -> str:
        """The name, with the optimizer it wraps (chain, reduce_on_plateau) if any."""
        inner = self.hyperparams.get("optimizer")
        if isinstance(inner, Optimizer):
            return f"{inner._described()} (the optimizer inside {self.name})"
        return self.name

    def _key(self, visiting: frozenset[int] = frozenset()) -> tuple:
        # Compiled loops are cached on the optimizer, so two optimizers may compare
        # equal only when they compute the same thing: same functions (code, and the
        # values they captured) and same hyperparameters. Two optimizers built by the
        # same factory with equal arguments then share one compiled program.
        visiting = visiting | {id(self)}
        return (
            self.name,
            _value_key(self.init, visiting),
            _value_key(self.step, visiting),
            tuple(sorted((key, _value_key(v, visiting)) for key, v in self.hyperparams.items())),
            self.needs_value_fn,
            _value_key(self.evaluations, visiting),
        )

    @functools.cached_property
    def _identity(self) -> tuple[tuple, int]:
        # Computed once: compiled loops look the optimizer up at every call and epoch.
        key = self._key()
        return key, hash(key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Optimizer):
            return NotImplemented
        return self is other or self._identity[0] == other._identity[0]

    def __hash__(self) -> int:
        return self._identity[1]

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.hyperparams.items())
        return f"{self.name}({args})"


class _Identity:
    """Compares equal only to a wrapper of the same object (kept alive by the wrapper)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


def _value_key(value: Any, visiting: frozenset[int]) -> Hashable:
    """A hashable stand-in for ``value`` that is equal only for values that act alike.

    Functions compare by code, captured values and defaults (recursively), hashable
    values by type and value, anything else (arrays, lists, ...) by identity. A
    function or optimizer met again inside itself stands for itself by identity,
    which ends the recursion.
    """
    if id(value) in visiting:
        return _Identity(value)
    if isinstance(value, Optimizer):
        return value._key(visiting)
    if inspect.ismethod(value):
        # A bound method acts on its instance: the instance is part of what it computes.
        return (
            "method",
            _value_key(value.__func__, visiting),
            _value_key(value.__self__, visiting),
        )
    if inspect.isfunction(value):
        return _function_key(value, visiting | {id(value)})
    if isinstance(value, tuple):
        return (type(value), tuple(_value_key(item, visiting) for item in value))
    try:
        hash(value)
    except TypeError:
        return _Identity(value)
    # The type keeps 1, 1.0 and True apart: they trace to different dtypes.
    return (type(value), value)


_UNBOUND = object()


def _function_key(function: Callable, visiting: frozenset[int]) -> tuple:
    cells = function.__closure__ or ()
    captured = []
    for cell in cells:
        try:
            contents = cell.cell_contents
        except ValueError:  # a cell not yet bound (a function defined after its user)
            contents = _UNBOUND
        captured.append(_value_key(contents, visiting))
    kwdefaults = sorted((function.__kwdefaults__ or {}).items())
    return (
        function.__code__,
        tuple(captured),
        _value_key(function.__defaults__ or (), visiting),
        tuple((name, _value_key(default, visiting)) for name, default in kwdefaults),
    )


Schedule = Callable[[jax.Array], jax.Array]
LearningRate = float | Schedule


def check_lr(lr: Any, *, name: str = "lr") -> LearningRate:
    """Validate a learning rate: a finite number > 0, or a schedule ``f(count) -> lr``."""
    if callable(lr):
        return lr
    if isinstance(lr, bool):
        raise DescendTypeError(f"{name} must be a number or a schedule, got {lr!r}")
    return check_positive(name, lr)


def lr_at(lr: LearningRate, count: jax.Array) -> jax.Array:
    """The learning rate for update number ``count`` (0-based)."""
    return lr(count) if callable(lr) else jnp.asarray(lr)


def apply_updates(params: PyTree, updates: PyTree) -> PyTree:
    """``params + updates`` leaf by leaf, keeping each leaf's dtype."""
    return jax.tree.map(lambda p, u: (p + u).astype(jnp.result_type(p)), params, updates)
