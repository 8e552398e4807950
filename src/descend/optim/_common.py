"""Checks of hyperparameters shared by the optimizers.

They run once, when an optimizer is built, and raise
:class:`~descend.errors.InputError` naming the parameter, the value given and the
valid range. The numerical pieces the optimizers share are in
:mod:`descend.optim.blocks`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from descend.errors import InputError, check_in_range, check_positive, is_traced
from descend.optim.base import LearningRate, Optimizer, check_lr
from descend.optim.leaves import WEIGHTS, LeafTree, decayed_leaves


def store_checked(instance: Any, /, **checks: Callable[[str, Any], Any]) -> None:
    """Replace each named field of a frozen dataclass by its checked value, in order.

    For schedules and transforms: ``check(name, value)`` raises or returns the value
    to keep (``check_positive`` returns it as a float).
    """
    for name, check in checks.items():
        object.__setattr__(instance, name, check(name, getattr(instance, name)))


nonnegative_number = functools.partial(check_positive, allow_zero=True)


def lr_or_schedule(name: str, value: Any) -> LearningRate:
    """:func:`~descend.optim.base.check_lr` in the form :func:`store_checked` calls."""
    return check_lr(value, name=name)


def check_nonnegative(**values: Any) -> None:
    """Each value a finite number >= 0 (``eps``, ``weight_decay``, ``momentum``, ...)."""
    for name, value in values.items():
        nonnegative_number(name, value)


def check_unit_interval(name: str, value: Any, *, closed_high: bool = False) -> float:
    """A number in ``[0, 1)`` (or ``[0, 1]``): decay rates such as ``alpha`` and ``rho``."""
    return check_in_range(name, value, 0.0, 1.0, closed_high=closed_high)


def check_flags(**values: Any) -> None:
    """Each value ``True`` or ``False`` (not a string, not a number)."""
    for name, value in values.items():
        if not isinstance(value, bool):
            raise InputError(f"{name} must be True or False, got {value!r}")


def check_pair(name: str, value: Any) -> tuple[float, float]:
    """A pair of numbers, returned as a tuple of floats (traced numbers as they are)."""
    try:
        first, second = value
        if is_traced(first) or is_traced(second):
            return first, second
        return float(first), float(second)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a pair of two numbers, got {value!r}") from None


def check_betas(value: Any, *, name: str = "betas") -> tuple[float, float]:
    """A pair ``(beta1, beta2)`` of decay rates, each in ``[0, 1)``."""
    betas = check_pair(name, value)
    for index, beta in enumerate(betas):
        if is_traced(beta):  # checked concretely before (see descend.optim.sweep)
            continue
        if not (math.isfinite(beta) and 0.0 <= beta < 1.0):
            raise InputError(
                f"{name}[{index}] must be in [0.0, 1.0), got {value!r}; "
                "typical values are (0.9, 0.999)"
            )
    return betas


def check_adam_like(
    lr: Any, betas: Any, eps: Any, weight_decay: Any, flags: dict[str, Any]
) -> tuple[LearningRate, tuple[float, float]]:
    """Validate ``lr``, ``betas``, ``eps``, ``weight_decay`` and boolean flags."""
    lr = check_lr(lr)
    betas = check_betas(betas)
    check_nonnegative(eps=eps, weight_decay=weight_decay)
    check_flags(**flags)
    return lr, betas


DecayMask = None | bool | str | LeafTree | Callable


def check_decay_mask(name: str, value: Any) -> DecayMask:
    """A ``weight_decay_mask`` in the form the optimizers keep (and compare) it.

    ``None``, ``True`` / ``False`` and ``"weights"`` as they are; a function as it is
    (it is called with the params when the step is traced); a pytree of booleans as a
    :class:`~descend.optim.leaves.LeafTree`, so that equal masks compare equal. Whether
    a tree fits the params is checked when it meets them, in ``init`` and ``step``.
    """
    if value is None or isinstance(value, (bool, LeafTree)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, str):
        if value != WEIGHTS:
            raise InputError(
                f"{name} must be a pytree of True / False, a function, or {WEIGHTS!r} "
                f"(the leaves named 'w'), got {value!r}"
            )
        return value
    if callable(value):
        return value
    leaves, structure = jax.tree.flatten(value)
    bad = [leaf for leaf in leaves if not isinstance(leaf, (bool, np.bool_))]
    if bad:
        raise InputError(
            f"the leaves of {name} must be True or False (one per leaf of the params, "
            f"or per subtree), got {bad[0]!r} in {value!r}"
        )
    return LeafTree(structure, tuple(bool(leaf) for leaf in leaves))


def with_decay_mask(optimizer: Optimizer, mask: DecayMask) -> Optimizer:
    """``optimizer`` with ``weight_decay_mask`` in its hyperparams and checked by ``init``.

    Its ``step`` already applies the mask (the ``mask`` of the decay pieces of
    :mod:`~descend.optim.blocks`); this adds the mask to the hyperparams (for display,
    saving and comparison) and makes ``init`` refuse a mask that does not fit the
    params before anything is compiled. Without a mask the optimizer is returned as it
    is, its hyperparams ``torch.optim``'s own names.
    """
    if mask is None:
        return optimizer
    init = optimizer.init

    def checked_init(params):
        decayed_leaves(mask, params)
        return init(params)

    return Optimizer(
        optimizer.name,
        checked_init,
        optimizer.step,
        {**optimizer.hyperparams, "weight_decay_mask": mask},
        needs_value_fn=optimizer.needs_value_fn,
        evaluations=optimizer.evaluations,
        complex_params=optimizer.complex_params,
        eval_params=optimizer.eval_params,
        train_params=optimizer.train_params,
        evaluations_with_gradient=optimizer.evaluations_with_gradient,
    )


def inner_points(optimizer: Optimizer, inner_state: Callable[[Any], Any]) -> dict[str, Any]:
    """``eval_params`` and ``train_params`` of a wrapper of ``optimizer`` (chain,
    reduce_on_plateau): the wrapped optimizer's, given its part of the wrapper's state
    (``inner_state(state)``); none when it has none."""
    if optimizer.eval_params is None or optimizer.train_params is None:  # set together
        return {}
    eval_params, train_params = optimizer.eval_params, optimizer.train_params
    return {
        "eval_params": lambda params, state: eval_params(params, inner_state(state)),
        "train_params": lambda params, state: train_params(params, inner_state(state)),
    }
