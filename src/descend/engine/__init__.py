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

# Two updates per loop iteration: measured on the CPU, an epoch of 6,250 batch-32 Adam
# updates takes 25 ms instead of 35-48 ms, and one of 200,000 single-sample updates
# 180 ms instead of 220 ms; four per iteration gain no more and compile 0.3 s longer.
SCAN_UNROLL = 2

BATCH_AXIS = "batch"  # the mesh axis that data-parallel training splits batches over


@dataclass(frozen=True)
class EpochConfig:
    """Static shape of one training epoch (hashable: part of the compilation key).

    The ``n_samples`` rows (a permutation of them when ``shuffle``) are cut into batches
    of ``batch_size``; every ``accumulate`` consecutive batches make one update. The
    batches that do not fill a whole group, and the short last batch (unless
    ``drop_last``), make one more update at the end of the epoch. ``weighted`` says
    that the data ends with per-sample weights. ``checked`` guards every update against
    non-finite values (slower; used to replay an epoch that diverged).

    ``mesh`` (a :class:`jax.sharding.Mesh` with a ``"batch"`` axis) makes the epoch
    data-parallel: every batch is split over the devices of that axis, the weights and
    optimizer state are replicated, and XLA adds the all-reduce of the summed loss and
    gradient. Then ``n_samples`` and ``batch_size`` count the rows of all processes
    together, and the data and row order come as :class:`ShardedOrder` describes.
    """

    n_samples: int
    batch_size: int
    accumulate: int = 1
    drop_last: bool = False
    shuffle: bool = True
    weighted: bool = False
    checked: bool = False
    mesh: Any = None

    @property
    def n_full_batches(self) -> int:
        return self.n_samples // self.batch_size

    @property
    def remainder(self) -> int:
        """Rows of the short last batch (0 when dropped)."""
        return 0 if self.drop_last else self.n_samples % self.batch_size

    @property
    def n_groups(self) -> int:
        """Updates made of ``accumulate`` whole batches."""
        return self.n_full_batches // self.accumulate

    @property
    def leftover_batches(self) -> int:
        """Whole batches that go with the short one into the last update."""
        return self.n_full_batches % self.accumulate

    @property
    def n_updates(self) -> int:
        return self.n_groups + int(self.leftover_batches > 0 or self.remainder > 0)


class ShardedOrder(NamedTuple):
    """The rows of a data-parallel epoch (``config.mesh`` set), as global index arrays.

    The data leaves have shape ``(devices along the batch axis, n_local, ...)``: each
    device holds its process's ``n_local`` rows. The last axis of each index array runs
    over the rows of a batch and is split over the batch axis, and the indices a device
    receives point into its own copy, so gathering a batch moves no data between
    devices. ``main`` is ``(n_groups, accumulate, batch_size)``, ``leftover``
    ``(leftover_batches, batch_size)``, ``remainder`` ``(1, padded)``: the short last
    batch padded to split evenly, ``mask`` (same shape, the data's float dtype) being 1
    on its rows and 0 on the padding (None without padding). Absent parts are None.
    """

    main: jax.Array | None
    leftover: jax.Array | None
    remainder: jax.Array | None
    mask: jax.Array | None


class EpochOutcome(NamedTuple):
    params: PyTree
    opt_state: PyTree
    loss_sum: jax.Array  # sum over the epoch of sample weight x loss
    weight_sum: jax.Array  # sum of the sample weights (rows when unweighted)
    metric_sums: jax.Array  # the objective's running metric sums (see BatchObjective)
    grad_norm: jax.Array  # gradient norm of the epoch's last update
    n_finite: jax.Array  # updates applied before the first non-finite one (checked only)
    finite: jax.Array  # the loss and the weights stayed finite


def _sums_and_grads(batch_objective, params, pieces):
    """Summed loss, weight, metrics and gradient over the batches in ``pieces``.

    ``batch_objective(params, *batch) -> (loss sum, (weight sum, metric sums))``. Each
    piece is a tuple of arrays whose first axis runs over batches of one shape; batches
    are taken one at a time (a ``lax.scan``), so only one is live, and their gradients
    of the sums add up: the result equals one batch of all their rows.
    """
    sum_and_grad = jax.value_and_grad(batch_objective, has_aux=True)

    def one(batch):
        (loss, (weight, metrics)), grads = sum_and_grad(params, *batch)
        return loss, weight, metrics, grads

    totals = None
    for piece in pieces:
        if piece[0].shape[0] == 1:
            sums = one(tuple(leaf[0] for leaf in piece))
        else:

            def accumulate(carry, batch):
                return jax.tree.map(jnp.add, carry, one(batch)), None

            first = one(tuple(leaf[0] for leaf in piece))
            rest = tuple(leaf[1:] for leaf in piece)
            sums, _ = jax.lax.scan(accumulate, first, rest)
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    return totals


def _run_epoch(
    batch_objective, optimizer: Optimizer, config: EpochConfig, params, opt_state, data, order
):
    """One epoch: a ``lax.scan`` of updates over the batches, then the tail update.

    ``order`` is this epoch's permutation of the rows (``None`` without shuffling), or a
    :class:`ShardedOrder` with ``config.mesh``. Each step gathers its own batch's rows:
    on the CPU this is faster than gathering the whole permuted dataset once per epoch,
    and it keeps no second copy of the data.
    """
    dtype = jnp.result_type(*jax.tree.leaves(params))

    def update(carry, pieces):
        params, opt_state, totals, _, n_finite, alive = carry
        loss, weight, metrics, grads = _sums_and_grads(batch_objective, params, pieces)
        scale = 1.0 / weight
        value, grads = loss * scale, _tree.scale(scale, grads)

        def value_fn(p):
            sums = _sums_and_grads(batch_objective, p, pieces)
            return sums[0] / sums[1]

        new_params, new_state = optimizer.step(
            params, grads, opt_state, value=value, value_fn=value_fn
        )
        if config.checked:
            ok = alive & is_finite(value, grads, new_params)
            new_params = _tree.where(ok, new_params, params)
            new_state = _tree.where(ok, new_state, opt_state)
            added = jax.tree.map(lambda a: jnp.where(ok, a, 0), (loss, weight, metrics))
            n_finite, alive = n_finite + ok.astype(jnp.int32), ok
        else:
            added = (loss, weight, metrics)
        totals = jax.tree.map(jnp.add, totals, added)
        return (new_params, new_state, totals, _tree.norm(grads).astype(dtype), n_finite, alive)

    sharded = config.mesh is not None
    probe = tuple(
        jax.ShapeDtypeStruct((1, *leaf.shape[1 + sharded :]), leaf.dtype) for leaf in data
    )
    metrics_shape = jax.eval_shape(batch_objective, params, *probe)[1][1]
    zero = jnp.zeros((), dtype)
    totals = (zero, zero, jnp.zeros(metrics_shape.shape, metrics_shape.dtype))
    carry = (params, opt_state, totals, zero, jnp.zeros((), jnp.int32), jnp.asarray(True))
    if sharded:
        carry = _sharded_updates(config, data, order, update, carry)
    else:
        carry = _updates(config, data, order, update, carry)
    params, opt_state, (loss, weight, metrics), grad_norm, n_finite, _ = carry
    if not config.checked:
        n_finite = jnp.asarray(config.n_updates, jnp.int32)
    finite = jnp.isfinite(loss) & _tree.all_finite(params)
    return EpochOutcome(params, opt_state, loss, weight, metrics, grad_norm, n_finite, finite)


def _updates(config: EpochConfig, data, order, update, carry):
    """The epoch's updates on one device: ``update(carry, pieces)`` for each group."""
    n_main = config.n_groups * config.accumulate * config.batch_size
    n_used = config.n_full_batches * config.batch_size + config.remainder

    def rows(start: int, count: int, shape: tuple[int, ...]):
        """Rows ``start .. start+count`` of the epoch's order, as batches of ``shape``."""
        if order is None:
            return tuple(
                leaf[start : start + count].reshape(*shape, *leaf.shape[1:]) for leaf in data
            )
        indices = order[start : start + count].reshape(shape)
        return tuple(leaf[indices] for leaf in data)

    batch = (config.accumulate, config.batch_size)
    if config.n_groups == 1 and order is None:
        # A single update (batch gradient descent): no loop, so that XLA reads the data in
        # place instead of slicing a copy of it out of the scanned operand.
        carry = update(carry, (rows(0, n_main, batch),))
    elif config.n_groups and order is None:
        groups = rows(0, n_main, (config.n_groups, *batch))
        carry, _ = jax.lax.scan(
            lambda c, group: (update(c, (group,)), None), carry, groups, unroll=SCAN_UNROLL
        )
    elif config.n_groups:
        indices = order[:n_main].reshape(config.n_groups, *batch)

        def step(c, group_indices):
            return update(c, (tuple(leaf[group_indices] for leaf in data),)), None

        carry, _ = jax.lax.scan(step, carry, indices, unroll=SCAN_UNROLL)
    tail = []
    if config.leftover_batches:
        count = config.leftover_batches * config.batch_size
        tail.append(rows(n_main, count, (config.leftover_batches, config.batch_size)))
    if config.remainder:
        start = config.n_full_batches * config.batch_size
        tail.append(rows(start, n_used - start, (1, n_used - start)))
    if tail:
        carry = update(carry, tuple(tail))
    return carry


def _sharded_updates(config: EpochConfig, data, order: ShardedOrder, update, carry):
    """The epoch's updates with every batch split over the mesh's batch axis.

    Only the gather is written per device (``shard_map``: each device takes its rows
    from its own copy of the data); the loss, gradient and optimizer step are the
    single-device code on sharded batches and replicated weights, and XLA's partitioner
    adds the all-reduce of the sums. The padding rows of the short last batch get
    weight 0 through ``mask``, so they change no sum.
    """
    gather = functools.partial(_gather_rows, config.mesh, data)
    if order.main is not None:
        carry, _ = jax.lax.scan(lambda c, idx: (update(c, (gather(idx),)), None), carry, order.main)
    tail = []
    if order.leftover is not None:
        tail.append(gather(order.leftover))
    if order.remainder is not None:
        piece = gather(order.remainder)
        if order.mask is not None:
            weights = order.mask if not config.weighted else piece[-1] * order.mask
            piece = (*piece[:2], weights)
        tail.append(piece)
    if tail:
        carry = update(carry, tuple(tail))
    return carry


def _gather_rows(mesh, data, indices) -> tuple:
    """Each device's rows ``indices`` of its own data, sharded like ``indices``."""
    spec = jax.sharding.PartitionSpec(*([None] * (indices.ndim - 1)), BATCH_AXIS)

    def local(data, indices):
        return tuple(leaf[0][indices] for leaf in data)

    in_specs = (jax.sharding.PartitionSpec(BATCH_AXIS), spec)
    return jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=spec)(data, indices)


def epoch_order(seed: int, epoch: int, n_samples: int, *, process: int | None = None) -> np.ndarray:
    """The permutation of the rows for ``epoch``: depends only on ``seed`` and ``epoch``.

    Drawn on the host with NumPy (a few ms for 10^5 rows, where ``jax.random.permutation``
    sorts on the device for ~20x longer), then passed to the compiled epoch:
    ``numpy.random.default_rng([seed, epoch]).permutation(n_samples)``. In multi-process
    training each process permutes its own rows, process ``p`` with
    ``default_rng([seed, epoch, p])``.
    """
    entropy = [seed, epoch] if process is None else [seed, epoch, process]
    return np.random.default_rng(entropy).permutation(n_samples).astype(np.int32)


@functools.lru_cache(maxsize=64)
def compiled_epoch(batch_objective, optimizer: Optimizer, config: EpochConfig):
    """The jitted epoch program for this objective, optimizer and epoch shape.

    Called as ``program(params, opt_state, data, order)`` where ``data`` is a tuple of
    arrays with the samples on the first axis (the last one the per-sample weights when
    ``config.weighted``) and ``order`` the epoch's row order (:func:`epoch_order`), or
    ``None`` when ``config.shuffle`` is false. With ``config.mesh``, ``data`` and
    ``order`` are global arrays laid out as :class:`ShardedOrder` says, and ``params``
    and ``opt_state`` replicated over the mesh.
    """
    options = None
    if jax.default_backend() == "cpu":
        # LLVM's level 1 instead of 2: the epoch compiles 10 % faster (0.32 s instead of
        # 0.35 s for logistic regression with Adam) and runs no slower.
        options = {"xla_backend_optimization_level": 1}
    return jax.jit(
        functools.partial(_run_epoch, batch_objective, optimizer, config), compiler_options=options
    )
