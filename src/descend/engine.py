"""The loop: value, gradient, optimizer step, and the rules that stop it.

Everything descend runs is this loop. :func:`iterate` runs it on a deterministic
objective, fully compiled (one ``lax.while_loop`` under ``jit``, one host sync per
run); the training loop (:mod:`descend.training`) runs the same update on batches,
an epoch per compiled program. Both share :func:`update`, the stopping statuses and
their wording, and the divergence rule (stop, keep the last finite point).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from descend import _tree
from descend.calculus import check_scalar_output
from descend.optim.base import Optimizer

PyTree = Any


class Status(enum.IntEnum):
    """Why a loop stopped (``RUNNING`` while it has not)."""

    RUNNING = 0
    CONVERGED = 1
    NO_DECREASE = 2
    SIGN_CHANGE = 3
    DIVERGED = 4
    MAX_ITER = 5
    MAX_EPOCHS = 6
    EARLY_STOPPING = 7
    INTERRUPTED = 8
    CALLBACK = 9


def update(
    objective: Callable[..., jax.Array],
    optimizer: Optimizer,
    params: PyTree,
    opt_state: PyTree,
    *batch: Any,
) -> tuple[PyTree, PyTree, jax.Array, PyTree]:
    """One step of the seed's loop: value and gradient at ``params``, then the optimizer step.

    ``objective(params, *batch)`` is the loss. Returns ``(new_params, new_state, value,
    grads)`` where ``value`` and ``grads`` are taken at the old ``params``.
    """
    value, grads = value_and_grad(objective)(params, *batch)
    new_params, new_state = optimizer.step(
        params, grads, opt_state, value=value, value_fn=lambda p: objective(p, *batch)
    )
    return new_params, new_state, value, grads


def value_and_grad(objective: Callable[..., jax.Array]) -> Callable[..., tuple]:
    """``jax.value_and_grad``, checking (at trace time) that the objective is a real scalar."""

    def checked(params, *batch):
        value = objective(params, *batch)
        check_scalar_output(value, what="the objective")
        return value

    return jax.value_and_grad(checked)


def is_finite(value: jax.Array, *trees: PyTree) -> jax.Array:
    """The divergence test: the value and every element of the trees are finite."""
    return jnp.isfinite(value) & _tree.all_finite(trees)


@dataclass(frozen=True)
class IterateConfig:
    """Static settings of :func:`iterate` (hashable: part of the compilation key)."""

    tol: float
    max_iter: int
    patience: int
    ftol: float
    refine: bool
    keep_path: bool


class IterateCarry(NamedTuple):
    n_iter: jax.Array
    x: PyTree
    value: jax.Array
    grads: PyTree
    opt_state: PyTree
    status: jax.Array
    best: jax.Array
    since_best: jax.Array
    has_bracket: jax.Array
    bracket: jax.Array  # (left, right) with f' < 0 at left and f' > 0 at right
    n_overshoots: jax.Array
    failure: jax.Array  # what was non-finite when the run diverged (see FAILURES)
    history_value: jax.Array
    history_grad_norm: jax.Array
    history_x: PyTree


# Codes of IterateCarry.failure: which part of a step was not finite.
FAILURES = {1: "the point", 2: "the value", 3: "the gradient"}


class IterateOutcome(NamedTuple):
    """Everything :func:`iterate` found, as device arrays (the caller converts)."""

    carry: IterateCarry
    n_bisections: jax.Array
    n_evaluations: jax.Array


def _flat_scalar(tree: PyTree) -> jax.Array:
    return jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)])[0]


def _set_flat_scalar(tree: PyTree, value: jax.Array) -> PyTree:
    return jax.tree.map(lambda leaf: jnp.full_like(leaf, value), tree)


def _run_iterate(objective, optimizer: Optimizer, config: IterateConfig, x0, opt_state0):
    value_grad = value_and_grad(objective)
    one_dimensional = _tree.size(x0) == 1
    n_slots = config.max_iter + 1
    value0, grads0 = value_grad(x0)
    dtype = jnp.result_type(value0)
    grad_norm0 = _tree.norm(grads0)

    history_x = None
    if config.keep_path:
        history_x = jax.tree.map(
            lambda leaf: jnp.zeros((n_slots, *jnp.shape(leaf)), leaf.dtype).at[0].set(leaf), x0
        )
    finite0 = is_finite(value0, grads0, x0)
    status0 = jnp.where(
        ~finite0,
        Status.DIVERGED,
        jnp.where(grad_norm0 <= config.tol, Status.CONVERGED, Status.RUNNING),
    )
    status0 = jnp.where(
        (status0 == Status.RUNNING) & (config.max_iter == 0), Status.MAX_ITER, status0
    )
    carry0 = IterateCarry(
        n_iter=jnp.zeros((), jnp.int32),
        x=x0,
        value=value0,
        grads=grads0,
        opt_state=opt_state0,
        status=status0.astype(jnp.int32),
        best=value0,
        since_best=jnp.zeros((), jnp.int32),
        has_bracket=jnp.zeros((), bool),
        bracket=jnp.zeros((2,), dtype),
        n_overshoots=jnp.zeros((), jnp.int32),
        failure=jnp.zeros((), jnp.int32),
        history_value=jnp.full((n_slots,), jnp.nan, dtype).at[0].set(value0),
        history_grad_norm=jnp.full((n_slots,), jnp.nan, dtype).at[0].set(grad_norm0),
        history_x=history_x,
    )

    def running(carry: IterateCarry):
        return carry.status == Status.RUNNING

    def body(carry: IterateCarry) -> IterateCarry:
        x_new, state_new = optimizer.step(
            carry.x, carry.grads, carry.opt_state, value=carry.value, value_fn=objective
        )
        value_new, grads_new = value_grad(x_new)
        finite = is_finite(value_new, grads_new, x_new)
        failure = jnp.select(
            [~_tree.all_finite(x_new), ~jnp.isfinite(value_new), ~_tree.all_finite(grads_new)],
            [1, 2, 3],
            0,
        ).astype(jnp.int32)
        n_iter = carry.n_iter + 1
        grad_norm = _tree.norm(grads_new)
        step = _tree.sub(x_new, carry.x)
        moved = _tree.vdot(step, step) > 0
        overshoot = _tree.vdot(grads_new, step) > 0
        improved = value_new < carry.best - config.ftol * jnp.abs(carry.best)
        since_best = jnp.where(improved, 0, carry.since_best + 1)

        sign_change = jnp.asarray(False)
        bracket = carry.bracket
        if one_dimensional:
            g_old, g_new = _flat_scalar(carry.grads), _flat_scalar(grads_new)
            x_old, x_now = _flat_scalar(carry.x), _flat_scalar(x_new)
            sign_change = finite & (g_old * g_new < 0)
            # Going from the point with f' < 0 to the one with f' > 0, f' crosses zero upward:
            # a local minimum lies between them.
            left = jnp.where(g_old < 0, x_old, x_now)
            right = jnp.where(g_old < 0, x_now, x_old)
            bracket = jnp.where(sign_change, jnp.stack([left, right]), carry.bracket)

        status = jnp.select(
            [
                ~finite,
                grad_norm <= config.tol,
                sign_change & config.refine,
                ~moved | (since_best >= config.patience),
                n_iter >= config.max_iter,
            ],
            [
                Status.DIVERGED,
                Status.CONVERGED,
                Status.SIGN_CHANGE,
                Status.NO_DECREASE,
                Status.MAX_ITER,
            ],
            Status.RUNNING,
        ).astype(jnp.int32)

        def keep(new, old):
            return _tree.where(finite, new, old)

        history_x = carry.history_x
        if config.keep_path:
            history_x = jax.tree.map(
                lambda h, leaf: h.at[n_iter].set(jnp.where(finite, leaf, h[n_iter])),
                history_x,
                x_new,
            )
        return IterateCarry(
            n_iter=jnp.where(finite, n_iter, carry.n_iter),
            x=keep(x_new, carry.x),
            value=keep(value_new, carry.value),
            grads=keep(grads_new, carry.grads),
            opt_state=keep(state_new, carry.opt_state),
            status=status,
            best=jnp.where(finite, jnp.minimum(carry.best, value_new), carry.best),
            since_best=since_best,
            has_bracket=carry.has_bracket | sign_change,
            bracket=bracket,
            n_overshoots=carry.n_overshoots + (finite & overshoot).astype(jnp.int32),
            failure=failure,
            history_value=carry.history_value.at[n_iter].set(jnp.where(finite, value_new, jnp.nan)),
            history_grad_norm=carry.history_grad_norm.at[n_iter].set(
                jnp.where(finite, grad_norm, jnp.nan)
            ),
            history_x=history_x,
        )

    carry = jax.lax.while_loop(running, body, carry0)
    n_bisections = jnp.zeros((), jnp.int32)
    if one_dimensional and config.refine:
        carry, n_bisections = jax.lax.cond(
            carry.status == Status.SIGN_CHANGE,
            lambda c: _bisect(value_grad, c, config.tol),
            lambda c: (c, jnp.zeros((), jnp.int32)),
            carry,
        )
    extra = optimizer.evaluations(carry.opt_state) if optimizer.evaluations else 0
    n_evaluations = carry.n_iter + 1 + n_bisections + extra
    return IterateOutcome(carry, n_bisections, jnp.asarray(n_evaluations, jnp.int32))


def _bisect(value_grad, carry: IterateCarry, tol: float, max_steps: int = 200):
    """Narrow the sign-change bracket by bisection on the derivative."""

    def evaluate(point):
        x = _set_flat_scalar(carry.x, point)
        value, grads = value_grad(x)
        return x, value, grads, _flat_scalar(grads)

    def not_done(state):
        left, right, _, _, _, derivative, steps = state
        width_ok = right - left > 4 * jnp.finfo(left.dtype).eps * jnp.maximum(1.0, jnp.abs(left))
        return (jnp.abs(derivative) > tol) & width_ok & (steps < max_steps)

    def halve(state):
        left, right, *_, steps = state
        middle = 0.5 * (left + right)
        x, value, grads, derivative = evaluate(middle)
        left = jnp.where(derivative < 0, middle, left)
        right = jnp.where(derivative < 0, right, middle)
        return left, right, x, value, grads, derivative, steps + 1

    left, right = carry.bracket[0], carry.bracket[1]
    x, value, grads, derivative = evaluate(0.5 * (left + right))
    state = (left, right, x, value, grads, derivative, jnp.ones((), jnp.int32))
    left, right, x, value, grads, _, steps = jax.lax.while_loop(not_done, halve, state)
    refined = carry._replace(x=x, value=value, grads=grads, bracket=jnp.stack([left, right]))
    return refined, steps


@functools.lru_cache(maxsize=64)
def _compiled_iterate(objective, optimizer: Optimizer, config: IterateConfig):
    return jax.jit(functools.partial(_run_iterate, objective, optimizer, config))


def iterate(
    objective: Callable[[PyTree], jax.Array],
    x0: PyTree,
    optimizer: Optimizer,
    config: IterateConfig,
) -> IterateOutcome:
    """Run the loop on ``objective`` from ``x0`` until a stopping rule holds.

    The rules, checked after every step in this order: the value, gradient or point
    is not finite (diverged; the last finite point is kept); the gradient norm is at
    most ``tol`` (converged); for one variable with ``refine``, the derivative changed
    sign (then bisection); the point stopped moving or the best value has not improved
    by more than ``ftol`` (relative) in ``patience`` steps (no further decrease);
    ``max_iter`` steps were taken.

    Compiled once per (objective, optimizer, config, shapes, dtypes).
    """
    runner = _compiled_iterate(objective, optimizer, config)
    return runner(x0, optimizer.init(x0))


def to_host(tree: PyTree) -> PyTree:
    """Device arrays to NumPy, leaf by leaf."""
    return jax.tree.map(np.asarray, tree)


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class EpochConfig:
    """Static shape of one training epoch (hashable: part of the compilation key).

    ``n_updates`` optimizer steps, each on ``accumulate`` batches of ``batch_size`` rows
    taken from a permutation of the ``n_samples`` rows; only the first ``n_used`` of them
    count (fewer than ``n_samples`` when the short last batch is dropped), the rest is
    padding with weight 0.
    """

    n_samples: int
    n_used: int
    batch_size: int
    accumulate: int
    n_updates: int
    shuffle: bool


class EpochOutcome(NamedTuple):
    params: PyTree
    opt_state: PyTree
    values: jax.Array  # loss of each update's batch group, (n_updates,)
    weights: jax.Array  # total sample weight of each group, (n_updates,)
    grad_norms: jax.Array  # gradient norm of each update, (n_updates,)
    n_finite: jax.Array  # updates applied before the first non-finite one


def _group_value_and_grad(batch_objective, params, group):
    """Mean loss and gradient over a group of ``accumulate`` batches.

    ``batch_objective(params, *batch) -> (weighted loss sum, weight sum)``. The gradients
    of the sums are accumulated batch by batch (a ``lax.scan``, so only one batch is live
    at a time), then divided by the total weight: the result equals one batch of all
    the group's rows.
    """
    sum_and_grad = jax.value_and_grad(batch_objective, has_aux=True)

    def accumulate(carry, batch):
        loss_total, weight_total, grad_total = carry
        (loss_sum, weight_sum), grads = sum_and_grad(params, *batch)
        return (
            loss_total + loss_sum,
            weight_total + weight_sum,
            _tree.add(grad_total, grads),
        ), None

    n_batches = jax.tree.leaves(group)[0].shape[0]
    if n_batches == 1:
        (loss_sum, weight_sum), grad_sum = sum_and_grad(params, *(leaf[0] for leaf in group))
    else:
        zero = jnp.zeros((), jnp.result_type(*jax.tree.leaves(params)))
        init = (zero, zero, _tree.zeros_like(params))
        (loss_sum, weight_sum, grad_sum), _ = jax.lax.scan(accumulate, init, group)
    weight_sum = jnp.maximum(weight_sum, jnp.finfo(jnp.result_type(weight_sum)).tiny)
    return loss_sum / weight_sum, _tree.scale(1.0 / weight_sum, grad_sum), weight_sum


def _run_epoch(
    batch_objective, optimizer: Optimizer, config: EpochConfig, params, opt_state, data, key
):
    """One epoch: one permutation of the rows, then a ``lax.scan`` of updates over it."""
    rows_per_epoch = config.n_updates * config.accumulate * config.batch_size
    order = jnp.arange(config.n_samples, dtype=jnp.int32)
    if config.shuffle:
        order = jax.random.permutation(key, order)
    position = jnp.arange(rows_per_epoch)
    # Rows past the end repeat the first ones with weight 0, so every batch has one shape
    # and one compiled step serves the whole epoch.
    rows = order[position % config.n_samples]
    real = (position < config.n_used).astype(jnp.result_type(*jax.tree.leaves(params)))
    shape = (config.n_updates, config.accumulate, config.batch_size)
    # One gather per epoch (not one per step): the scan then reads contiguous slices.
    *inputs, weights = data
    batches = [leaf[rows].reshape(*shape, *leaf.shape[1:]) for leaf in inputs]
    batch_weights = (weights[rows] * real).reshape(shape)

    def step(carry, group):
        params, opt_state, n_finite, alive = carry
        value, grads, weight = _group_value_and_grad(batch_objective, params, group)

        def value_fn(p):
            return _group_value_and_grad(batch_objective, p, group)[0]

        new_params, new_state = optimizer.step(
            params, grads, opt_state, value=value, value_fn=value_fn
        )
        ok = alive & is_finite(value, grads, new_params)
        params = _tree.where(ok, new_params, params)
        opt_state = _tree.where(ok, new_state, opt_state)
        carry = (params, opt_state, n_finite + ok.astype(jnp.int32), ok)
        return carry, (value, weight, _tree.norm(grads))

    init = (params, opt_state, jnp.zeros((), jnp.int32), jnp.asarray(True))
    (params, opt_state, n_finite, _), (values, group_weights, grad_norms) = jax.lax.scan(
        step, init, (*batches, batch_weights)
    )
    return EpochOutcome(params, opt_state, values, group_weights, grad_norms, n_finite)


@functools.lru_cache(maxsize=64)
def compiled_epoch(batch_objective, optimizer: Optimizer, config: EpochConfig):
    """The jitted epoch program for this objective, optimizer and epoch shape.

    Called as ``program(params, opt_state, data, key)`` where ``data`` is a tuple of
    arrays with the samples on the first axis, the last one the per-sample weights.
    """
    return jax.jit(functools.partial(_run_epoch, batch_objective, optimizer, config))
