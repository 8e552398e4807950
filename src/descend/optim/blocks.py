"""The pieces the optimizers are built from, each written once.

In the spirit of Optax's ``scale_by_*`` transforms, each piece does one thing to a
pytree (orient the gradient, decay the weights, update a moving average, form a
step, apply it) and an algorithm is a few of them in a row. Unlike Optax's
transforms they are plain functions without state of their own: each algorithm
keeps the state layout and field names of ``torch.optim``, which checkpoints store.

Rounding: each piece keeps the order of floating-point operations of the code it
stands for (``torch.optim``'s single-tensor path, or Optax for Lion and AdaBelief),
which is what lets trajectories agree with theirs to ~1e-12. An algebraically equal
rewrite is not equal in floating point: ``a * b / c`` and ``a * (b / c)`` round
differently, and XLA on CPU fuses ``a * b + c`` into one fused multiply-add, so even
the order of the two terms of ``a * b + c * d`` can move the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from descend import _tree
from descend._tree import PyTree
from descend.errors import is_traced
from descend.optim.leaves import decayed_leaves

State = TypeVar("State")


# ------------------------------------------------------------------ step count and state


def zero_count() -> jax.Array:
    """An int32 zero for a step counter (made in NumPy: nothing to compile on first use)."""
    return _tree.full((), 0, np.int32)


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
    if is_traced(beta):  # a sweep's (t >= 1, so that beta = 0 gives 1 here too)
        return -jnp.expm1(t * jnp.log(beta))
    if beta == 0:
        return jnp.ones_like(t)
    return -jnp.expm1(t * math.log(beta))


def float_dtype(params: PyTree) -> jnp.dtype:
    """The floating dtype shared by the params (for scalar state kept per tree)."""
    return jnp.result_type(*jax.tree.leaves(params), jnp.float32)


def nonzero(value: Any) -> bool:
    """``value != 0`` for a number; True for a traced value (a sweep's), which takes the
    general path. A sweep refuses hyperparameter values whose states differ, so that a
    traced value stands only for values on one side of zero (see
    :mod:`descend.optim.sweep`)."""
    return is_traced(value) or value != 0


def zeros_if(condition: bool, params: PyTree) -> PyTree | None:
    """Zeros shaped like ``params``, or ``None`` for state the settings do not use."""
    return _tree.zeros_like(params) if condition else None


def fresh_state(state_class: type[State], params: PyTree, **fields: Any) -> State:
    """The state before the first step: ``count`` zero, every field not given zeros."""
    zeros = {
        name: _tree.zeros_like(params)
        for name in state_class._fields  # type: ignore[attr-defined]  # a NamedTuple class
        if name != "count" and name not in fields
    }
    # State is any NamedTuple class with a count field: a TypeVar cannot say so.
    return state_class(count=zero_count(), **zeros, **fields)  # type: ignore[call-arg]


# ------------------------------------------------------------- direction and weight decay


def signed(grads: PyTree, *, maximize: bool) -> PyTree:
    """The gradient to descend: negated when maximizing."""
    return _tree.scale(-1.0, grads) if maximize else grads


def coupled_decay(grads: PyTree, params: PyTree, weight_decay: float, mask: Any = None) -> PyTree:
    """``g + weight_decay * p``: L2 decay through the gradient (torch's ``weight_decay``).

    Only on the leaves ``mask`` selects (:func:`decayed_leaves`); the others keep ``g``,
    as a torch parameter group with ``weight_decay=0`` does.
    """
    if not nonzero(weight_decay):
        return grads
    return jax.tree.map(
        lambda g, p, decayed: g + weight_decay * p if decayed else g,
        grads,
        params,
        decayed_leaves(mask, params),
    )


def decoupled_decay(
    params: PyTree, rate: jax.Array, weight_decay: float, mask: Any = None
) -> PyTree:
    """``(1 - rate * weight_decay) * p``: decay of the weights themselves (AdamW).

    Only on the leaves ``mask`` selects (:func:`decayed_leaves`); the others are left
    as they are.
    """
    if not nonzero(weight_decay):
        return params
    shrink = 1 - rate * weight_decay
    return jax.tree.map(
        lambda p, decayed: shrink * p if decayed else p, params, decayed_leaves(mask, params)
    )


def descent_grads(
    params: PyTree, grads: PyTree, *, maximize: bool, weight_decay: float, mask: Any = None
) -> PyTree:
    """The gradient the update follows: negated to maximize, then plus coupled L2 decay."""
    return coupled_decay(signed(grads, maximize=maximize), params, weight_decay, mask)


def decayed_descent(
    params: PyTree,
    grads: PyTree,
    rate: jax.Array,
    *,
    maximize: bool,
    weight_decay: float,
    decoupled: bool,
    mask: Any = None,
) -> tuple[PyTree, PyTree]:
    """``(params, grads)`` after maximize and weight decay, coupled or decoupled.

    The decoupled form shrinks the params the step starts from and leaves the
    gradient alone; the coupled form adds the decay to the gradient. ``mask`` chooses
    the leaves decayed (:func:`decayed_leaves`).
    """
    grads = signed(grads, maximize=maximize)
    if decoupled:
        return decoupled_decay(params, rate, weight_decay, mask), grads
    return params, coupled_decay(grads, params, weight_decay, mask)


# ----------------------------------------------------------------------- moving averages


def lerp(start: jax.Array, end: jax.Array, weight: Any) -> jax.Array:
    """``start + weight * (end - start)``, rounded as ``torch.lerp`` rounds it.

    PyTorch switches to ``end - (end - start) * (1 - weight)`` for weights >= 0.5,
    which is more accurate there. A traced ``weight`` (Adafactor's decay changes
    with the step) chooses the formula on the device.
    """
    if isinstance(weight, (int, float)):
        if abs(weight) < 0.5:
            return start + weight * (end - start)
        return end - (end - start) * (1.0 - weight)
    return jnp.where(
        jnp.abs(weight) < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight)
    )


def lerp_average(average: PyTree, values: PyTree, beta: float) -> PyTree:
    """``beta * average + (1 - beta) * values`` as torch's ``average.lerp_(values, 1 - beta)``."""
    return jax.tree.map(lambda a, x: lerp(a, x, 1 - beta), average, values)


def square_average(average: PyTree, values: PyTree, beta: float) -> PyTree:
    """``beta * average + (1 - beta) * values**2`` as torch's ``mul_(beta).addcmul_``."""
    return jax.tree.map(lambda a, x: a * beta + (1 - beta) * x * x, average, values)


def adam_moments(
    exp_avg: PyTree, exp_avg_sq: PyTree, grads: PyTree, betas: tuple[float, float]
) -> tuple[PyTree, PyTree]:
    """Adam's first and second moments after one more gradient (torch's rounding)."""
    beta1, beta2 = betas
    return lerp_average(exp_avg, grads, beta1), square_average(exp_avg_sq, grads, beta2)


def optax_average(average: PyTree, values: PyTree, decay: float | jax.Array) -> PyTree:
    """``(1 - decay) * values + decay * average``, Optax's moment update and its rounding."""
    return jax.tree.map(lambda a, x: (1 - decay) * x + decay * a, average, values)


def optax_debias(moment: PyTree, decay: float, count: jax.Array) -> PyTree:
    """``moment / (1 - decay ** count)`` as Optax corrects it, in each leaf's dtype."""
    correction = 1 - decay**count
    return jax.tree.map(lambda x: x / correction.astype(jnp.result_type(x)), moment)


def optax_nesterov_debias(average: PyTree, grads: PyTree, decay: float, count: jax.Array) -> PyTree:
    """Optax's Nesterov look-ahead of a debiased momentum (``count`` 1-based):
    ``decay * m / (1 - decay**(count+1)) + (1 - decay) * g / (1 - decay**count)``."""
    return jax.tree.map(
        lambda m, g: decay * m + (1 - decay) * g,
        optax_debias(average, decay, count + 1),
        optax_debias(grads, decay, count),
    )


def running_max(maximum: PyTree, values: PyTree) -> PyTree:
    """The elementwise maximum so far (AMSGrad's second moment)."""
    return jax.tree.map(jnp.maximum, maximum, values)


def infinity_moment(exp_inf: PyTree, grads: PyTree, beta: float, eps: float) -> PyTree:
    """``max(beta * u, |g| + eps)``: Adamax's weighted infinity norm (torch and Optax alike)."""
    return jax.tree.map(lambda u, g: jnp.maximum(u * beta, jnp.abs(g) + eps), exp_inf, grads)


# ------------------------------------------------------------- sums over all the leaves


def tree_total(values: PyTree) -> jax.Array:
    """The sum of per-leaf scalars, left to right from 0, as ``optax.tree.sum`` adds them."""
    total = 0
    for value in jax.tree.leaves(values):
        total = total + value
    return jnp.asarray(total)


def squared_norm(tree: PyTree) -> jax.Array:
    """``||x||^2`` over all leaves together, summed as ``optax.tree.norm(squared=True)``."""
    return tree_total(jax.tree.map(lambda x: jnp.sum(jnp.square(x)), tree))


def abs_sum(tree: PyTree) -> jax.Array:
    """``||x||_1`` over all leaves together (the sum of every entry's magnitude)."""
    return tree_total(jax.tree.map(lambda x: jnp.sum(jnp.abs(x)), tree))


def inner_product(a: PyTree, b: PyTree) -> jax.Array:
    """``<a, b>`` over all leaves together (real leaves), in each leaf's dtype."""
    return tree_total(jax.tree.map(lambda x, y: jnp.vdot(x, y), a, b))


# ------------------------------------------------------------------ forming the update


def root_plus_eps(values: PyTree, eps: float, *, divisor: Any = None) -> PyTree:
    """``sqrt(v) + eps``, or ``sqrt(v) / divisor + eps``: eps outside the root, as torch."""
    if divisor is None:
        return jax.tree.map(lambda v: jnp.sqrt(v) + eps, values)
    return jax.tree.map(lambda v: jnp.sqrt(v) / divisor + eps, values)


def optax_root_ratio(
    numerators: PyTree, second_moments: PyTree, eps: float, eps_root: float = 0.0
) -> PyTree:
    """``m / (sqrt(v + eps_root) + eps)``: Optax's adaptive step, eps inside and outside."""
    return jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), numerators, second_moments)


def scaled_ratio(value: Any, numerators: PyTree, denominators: PyTree) -> PyTree:
    """``value * n / d``, grouped as torch's ``addcdiv(n, d, value=value)`` groups it."""
    return jax.tree.map(lambda n, d: value * n / d, numerators, denominators)


def optax_scale_by_rate(updates: PyTree, rate: jax.Array) -> PyTree:
    """``-rate * u`` with the rate cast to each leaf's dtype first, as Optax scales."""
    return jax.tree.map(lambda u: jnp.asarray(-rate, u.dtype) * u, updates)


# -------------------------------------------------------------------- applying the update


def cast_like(params: PyTree, new_params: PyTree) -> PyTree:
    """``new_params`` with each leaf cast back to the dtype of the matching leaf of ``params``."""
    return jax.tree.map(lambda p, q: q.astype(jnp.result_type(p)), params, new_params)


def add_updates(params: PyTree, *updates: PyTree, start: PyTree | None = None) -> PyTree:
    """``((start + u1) + u2) ...``, each leaf cast back to the dtype of ``params``.

    ``start`` is ``params`` unless a decoupled decay shrank them first; the sum is
    cast to the dtype of the params as they came in, whatever the rate's precision.
    """
    total = params if start is None else start
    for update in updates:
        total = jax.tree.map(jnp.add, total, update)
    return cast_like(params, total)


def map_leaves(
    function: Callable[..., tuple], params: PyTree, *others: PyTree, outputs: int
) -> tuple[PyTree, ...]:
    """``jax.tree.map`` for a ``function`` that returns ``outputs`` values per leaf.

    Returns one tree per value. ``others`` may hold ``None`` where ``params`` has a
    leaf: state that only some leaves keep (Adafactor's factored moments).
    """
    leaves, treedef = jax.tree.flatten(params)
    # jaxlib ships no type stubs for PyTreeDef's methods.
    columns = [treedef.flatten_up_to(other) for other in others]  # type: ignore[attr-defined]
    per_leaf = [function(*args) for args in zip(leaves, *columns, strict=True)]
    return tuple(
        jax.tree.unflatten(treedef, [values[i] for values in per_leaf]) for i in range(outputs)
    )
