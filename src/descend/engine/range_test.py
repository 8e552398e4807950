"""The learning-rate range test's block: ``num_iter`` updates as one compiled program.

The updates are :func:`descend.engine.epoch`'s own (the same loss, gradient, penalty,
denominators and optimizer step), over whole batches of the passes' row orders, one
after the other across the passes. After each update a ``watch`` rule (hashable, so
part of the compilation key) sees its mean loss, returns the value to record beside it
(the learning-rate finder's smoothed loss) and whether to go on; once it says stop, the
remaining updates are skipped (a ``lax.cond``), so a test that diverges early costs
only the updates it made. The host side (the rate schedule, the orders, the result) is
:mod:`descend.training.range_test`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from descend.engine.epoch import EpochConfig, _compiler_options, _update_function
from descend.optim.base import Optimizer


class Watch(Protocol):
    """A rule that sees every update's mean loss: ``init(dtype) -> state`` and
    ``__call__(state, loss) -> (state, recorded value, go on)``. Hashable."""

    def init(self, dtype: Any) -> Any: ...

    def __call__(self, state: Any, loss: jax.Array) -> tuple[Any, jax.Array, jax.Array]: ...


class RangeOutcome(NamedTuple):
    """What :func:`compiled_range_test`'s program returns: each update's mean loss and
    the watch's value after it (``num_iter`` entries, NaN past ``count``), ``count``,
    the updates made, and ``stopped``, whether the watch stopped the test (at the last
    update made)."""

    losses: jax.Array
    watched: jax.Array
    # A field named like tuple.count, which it shadows (on purpose: the name reads best).
    count: jax.Array  # type: ignore[assignment]
    stopped: jax.Array


def _run_range_test(
    batch_objective, optimizer: Optimizer, config: EpochConfig, num_iter: int, watch: Watch,
    params, opt_state, data, orders, mean_weight,
):  # fmt: skip
    """``num_iter`` updates of ``config.group_rows`` rows each (whole groups only).

    ``config`` is the shape of one pass over the data (``config.n_groups`` updates);
    update ``i`` takes group ``i % n_groups`` of pass ``i // n_groups``: the rows
    ``orders[pass]`` lists there, or, with ``orders`` None (no shuffling), the rows in
    their own order. ``orders`` has one row order per pass, ``(passes, n_samples)``.
    """
    dtype = jnp.result_type(*jax.tree.leaves(params))
    update = _update_function(batch_objective, optimizer, config, mean_weight, dtype)
    per_pass, rows = config.n_groups, config.group_rows
    shape = (config.accumulate, config.batch_size)

    def group(index):
        start = (index % per_pass) * rows
        if orders is None:
            return tuple(
                jax.lax.dynamic_slice_in_dim(leaf, start, rows).reshape(*shape, *leaf.shape[1:])
                for leaf in data
            )
        order = jax.lax.dynamic_index_in_dim(orders, index // per_pass, keepdims=False)
        indices = jax.lax.dynamic_slice_in_dim(order, start, rows).reshape(shape)
        return tuple(leaf[indices] for leaf in data)

    nan = jnp.asarray(jnp.nan, dtype)

    def step(carry, index):
        state, seen, going, count = carry

        def run(_):
            new_state, loss = update(state, (group(index),), rows, record=True)
            new_seen, value, go_on = watch(seen, loss)
            return (new_state, new_seen, go_on, count + 1), (loss.astype(dtype), value)

        def skip(_):
            return (state, seen, jnp.asarray(False), count), (nan, nan)

        return jax.lax.cond(going, run, skip, None)

    zero = jnp.zeros((), dtype)
    probe = tuple(jax.ShapeDtypeStruct((1, *leaf.shape[1:]), leaf.dtype) for leaf in data)
    metrics_shape = jax.eval_shape(batch_objective, params, *probe)[1][1]
    totals = (zero, zero, jnp.zeros(metrics_shape.shape, metrics_shape.dtype))
    state = (params, opt_state, totals, zero, jnp.zeros((), jnp.int32), jnp.asarray(True))
    start = (state, watch.init(dtype), jnp.asarray(True), jnp.zeros((), jnp.int32))
    (_, _, going, count), (losses, watched) = jax.lax.scan(step, start, jnp.arange(num_iter))
    return RangeOutcome(losses, watched, count, ~going)


@functools.lru_cache(maxsize=16)
def compiled_range_test(
    batch_objective: Callable[..., Any], optimizer: Optimizer, config: EpochConfig,
    num_iter: int, watch: Watch,
) -> Callable[..., RangeOutcome]:  # fmt: skip
    """The jitted range-test program (see :func:`_run_range_test`).

    Called as ``program(params, opt_state, data, orders, mean_weight)``: ``data`` and
    ``mean_weight`` as :func:`~descend.engine.compiled_epoch` takes them, ``orders`` the
    passes' row orders (``(passes, n_samples)`` int32) or None without shuffling. The
    optimizer's learning rate is its schedule of the update count, as in ``fit``. Data
    in memory on one device only (no ``config.mesh``).
    """
    return jax.jit(
        functools.partial(_run_range_test, batch_objective, optimizer, config, num_iter, watch),
        compiler_options=_compiler_options(),
    )
