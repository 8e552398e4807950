"""Checks and small pieces shared by the adaptive optimizers (Adagrad, Adam, Rprop, ...).

The checks validate hyperparameters once, when an optimizer is built, and raise
:class:`~descend.errors.InputError` naming the parameter, the value given and the
valid range. The numerical helpers are written so that the arithmetic follows the
order of operations of ``torch.optim``'s single-tensor code paths, which is what
lets the reference tests compare trajectories to ~1e-12.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from descend import _tree
from descend.errors import InputError, check_in_range, check_positive
from descend.optim.base import check_lr

PyTree = Any


def check_nonnegative(name: str, value: Any) -> float:
    """A finite number >= 0 (``eps``, ``weight_decay``, ``momentum``, ...)."""
    return check_positive(name, value, allow_zero=True)


def check_unit_interval(name: str, value: Any, *, closed_high: bool = False) -> float:
    """A number in ``[0, 1)`` (or ``[0, 1]``): decay rates such as ``alpha`` and ``rho``."""
    return check_in_range(name, value, 0.0, 1.0, closed_high=closed_high)


def check_flag(name: str, value: Any) -> bool:
    """``True`` or ``False`` (not a string, not a number)."""
    if not isinstance(value, bool):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return value


def check_pair(name: str, value: Any) -> tuple[float, float]:
    """A pair of numbers, returned as a tuple of floats."""
    try:
        first, second = value
        return float(first), float(second)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a pair of two numbers, got {value!r}") from None


def check_betas(value: Any, *, name: str = "betas") -> tuple[float, float]:
    """A pair ``(beta1, beta2)`` of decay rates, each in ``[0, 1)``."""
    betas = check_pair(name, value)
    for index, beta in enumerate(betas):
        if not (math.isfinite(beta) and 0.0 <= beta < 1.0):
            raise InputError(
                f"{name}[{index}] must be in [0.0, 1.0), got {value!r}; "
                "typical values are (0.9, 0.999)"
            )
    return betas


def descent_grads(params: PyTree, grads: PyTree, *, maximize: bool, weight_decay: float) -> PyTree:
    """The gradient the update follows: negated to maximize, plus coupled L2 decay.

    As in ``torch.optim``: ``g = -grad`` when maximizing, then ``g + weight_decay * p``.
    """
    if maximize:
        grads = _tree.scale(-1.0, grads)
    if weight_decay != 0:
        grads = jax.tree.map(lambda g, p: g + weight_decay * p, grads, params)
    return grads


def lerp(start: jax.Array, end: jax.Array, weight: float) -> jax.Array:
    """``start + weight * (end - start)``, rounded as ``torch.lerp`` rounds it.

    PyTorch switches to ``end - (end - start) * (1 - weight)`` for weights >= 0.5,
    which is more accurate there; the moving averages use it with ``1 - beta``.
    """
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


def step_number(count: jax.Array) -> jax.Array:
    """The 1-based step as a weakly typed float scalar.

    Weak typing keeps scalar arithmetic (``beta ** t``, bias corrections) at the
    widest enabled float precision without promoting float32 params to float64.
    """
    return (count + 1) * 1.0


def bias_correction(beta: float, t: jax.Array) -> jax.Array:
    """``1 - beta ** t``, accurate to the last bit even in float32.

    PyTorch computes it in Python (double precision) whatever the params' dtype.
    Written as ``-expm1(t log beta)`` it keeps that accuracy when JAX works in
    float32, where ``1 - 0.999 ** 1`` would lose five significant digits.
    """
    if beta == 0:
        return jnp.ones_like(t)
    return -jnp.expm1(t * math.log(beta))


def float_dtype(params: PyTree) -> jnp.dtype:
    """The floating dtype shared by the params (for scalar state kept per tree)."""
    return jnp.result_type(*jax.tree.leaves(params), jnp.float32)


def zero_count() -> jax.Array:
    """An int32 zero for a step counter (made in NumPy: nothing to compile on first use)."""
    return jax.device_put(np.zeros((), np.int32))


def cast_like(params: PyTree, new_params: PyTree) -> PyTree:
    """``new_params`` with each leaf cast back to the dtype of the matching leaf of ``params``."""
    return jax.tree.map(lambda p, q: q.astype(jnp.result_type(p)), params, new_params)


def decay_weights(params, grads, rate, *, weight_decay: float, decoupled: bool):
    """Weight decay the torch way: ``p *= 1 - lr * wd`` (decoupled) or ``g += wd * p``."""
    if weight_decay == 0:
        return params, grads
    if decoupled:
        return _tree.scale(1 - rate * weight_decay, params), grads
    return params, jax.tree.map(lambda g, p: g + weight_decay * p, grads, params)


def check_adam_like(lr, betas, eps, weight_decay, flags: dict[str, Any]):
    """Validate ``lr``, ``betas``, ``eps``, ``weight_decay`` and boolean flags."""
    lr = check_lr(lr)
    betas = check_betas(betas)
    check_nonnegative("eps", eps)
    check_nonnegative("weight_decay", weight_decay)
    for name, value in flags.items():
        check_flag(name, value)
    return lr, betas
