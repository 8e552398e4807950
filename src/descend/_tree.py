"""Small pytree arithmetic shared by the optimizers and the engine.

Params, gradients and optimizer states are pytrees (a float, an array, or nested
dicts / lists / tuples of arrays). These helpers apply one operation leaf by leaf;
:func:`to_host` is the one conversion of device values to NumPy.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from descend.errors import is_traced

PyTree = Any  # a float, an array, or nested dicts / lists / tuples of them


def to_host(tree: PyTree) -> PyTree:
    """Every leaf as a NumPy array, 0-d ones as NumPy scalars.

    ``numpy.asarray`` leaf by leaf: measured 4x faster than ``jax.device_get`` for the
    few dozen small leaves of a minimize result (24 against 104 us on the CPU).
    """

    def convert(leaf):
        array = np.asarray(leaf)
        return array[()] if array.ndim == 0 else array

    return jax.tree.map(convert, tree)


def add(a: PyTree, b: PyTree) -> PyTree:
    return jax.tree.map(jnp.add, a, b)


def sub(a: PyTree, b: PyTree) -> PyTree:
    return jax.tree.map(jnp.subtract, a, b)


def scale(factor: Any, tree: PyTree) -> PyTree:
    return jax.tree.map(lambda leaf: factor * leaf, tree)


def axpy(alpha: Any, x: PyTree, y: PyTree) -> PyTree:
    """``alpha * x + y`` leaf by leaf."""
    return jax.tree.map(lambda xi, yi: alpha * xi + yi, x, y)


def vdot(a: PyTree, b: PyTree) -> jax.Array:
    """Sum over all leaves of the elementwise product (the inner product of two pytrees)."""
    products = jax.tree.map(lambda x, y: jnp.vdot(x, y).real, a, b)
    return sum(jax.tree.leaves(products), start=jnp.zeros((), jnp.result_type(float)))


def norm(tree: PyTree) -> jax.Array:
    """Euclidean norm of all leaves taken together."""
    return jnp.sqrt(vdot(tree, tree))


def zeros_like(tree: PyTree) -> PyTree:
    """Zeros of each leaf's shape and dtype.

    Outside ``jit`` they are made in NumPy and transferred, so that creating an optimizer
    state compiles no small XLA program (each costs 5-40 ms on a first call).
    """

    def zeros(leaf):
        if _traced(leaf):
            return jnp.zeros_like(leaf)
        return jax.device_put(np.zeros(jnp.shape(leaf), jnp.result_type(leaf)))

    return jax.tree.map(zeros, tree)


def full_like(tree: PyTree, value: Any) -> PyTree:
    """``value`` in each leaf's shape and dtype (made in NumPy outside ``jit``, as
    :func:`zeros_like`)."""

    def filled(leaf):
        if _traced(leaf) or _traced(value):
            return jnp.full_like(leaf, value)
        return full(jnp.shape(leaf), value, jnp.result_type(leaf))

    return jax.tree.map(filled, tree)


def full(shape: tuple[int, ...], value: Any, dtype: Any) -> jax.Array:
    """``jnp.full(shape, value, dtype)``; outside ``jit`` made in NumPy and transferred,
    so that creating an optimizer state compiles no small XLA program. ``dtype`` is
    taken as JAX takes it (float64 is float32 unless 64-bit mode is on)."""
    if _traced(value):
        return jnp.full(shape, value, dtype)
    return jax.device_put(np.full(shape, value, jax.dtypes.canonicalize_dtype(dtype)))


def asarray(value: Any, dtype: Any) -> jax.Array:
    """``jnp.asarray(value, dtype)`` (a number or a sequence of numbers); outside ``jit``
    made in NumPy and transferred, as :func:`full`."""
    if _traced(value):
        return jnp.asarray(value, dtype)
    return jax.device_put(np.asarray(value, jax.dtypes.canonicalize_dtype(dtype)))


def _traced(value: Any) -> bool:
    """Whether any leaf of ``value`` is a tracer (:func:`descend.errors.is_traced`)."""
    return any(is_traced(leaf) for leaf in jax.tree.leaves(value))


def all_finite(tree: PyTree) -> jax.Array:
    """True when every element of every leaf is finite."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def size(tree: PyTree) -> int:
    """Total number of elements over all leaves."""
    return sum(int(jnp.size(leaf)) for leaf in jax.tree.leaves(tree))


def where(condition: jax.Array, a: PyTree, b: PyTree) -> PyTree:
    """Leaf by leaf ``a if condition else b`` for a scalar ``condition``."""
    return jax.tree.map(lambda x, y: jnp.where(condition, x, y), a, b)
