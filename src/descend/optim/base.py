"""The optimizer interface: a pure ``init`` / ``step`` pair over any pytree.

An optimizer is a value, not an object with hidden state::

    opt = descend.optim.gd(lr=0.1)
    state = opt.init(params)
    params, state = opt.step(params, grads, state)

``step`` also accepts two keyword arguments that the engine always passes and most
algorithms ignore: ``value`` (the objective at ``params``) and ``value_fn`` (the
objective as a function of params, for line searches). Both functions are pure and
trace under ``jax.jit``; the state is a pytree, so it jits, saves and shards like params.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from descend.errors import DescendTypeError, check_positive

PyTree = Any
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
    """A gradient-descent algorithm as two pure functions.

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
    """

    name: str
    init: Callable[[PyTree], State]
    step: StepFn
    hyperparams: Mapping[str, Any] = field(default_factory=dict)
    needs_value_fn: bool = False
    evaluations: Callable[[State], jax.Array] | None = None

    def _key(self) -> tuple:
        # Two optimizers built by the same factory with equal hyperparameters behave
        # identically; comparing code objects (not closures) lets compiled loops be
        # reused across calls instead of recompiled.
        return (
            self.name,
            getattr(self.init, "__code__", self.init),
            getattr(self.step, "__code__", self.step),
            tuple(sorted(self.hyperparams.items())),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Optimizer):
            return NotImplemented
        try:
            return self._key() == other._key()
        except TypeError:
            return self is other

    def __hash__(self) -> int:
        try:
            return hash(self._key())
        except TypeError:
            return id(self)

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.hyperparams.items())
        return f"{self.name}({args})"


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
