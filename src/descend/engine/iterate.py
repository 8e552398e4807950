"""``minimize``'s blocks: k iterations of value, gradient and optimizer step per program.

One compiled program (a ``lax.while_loop`` under ``jit``) runs the iterations of a
block and applies the stopping rules on the device after every step; the host loop of
:mod:`descend.engine.loop` sees the run once per block. How many iterations a block
holds:

- a callback must see every iteration: one per block (as SciPy calls its callback);
- someone may watch (a terminal or a notebook: progress, Ctrl-C): the first block holds
  :data:`FIRST_BLOCK` iterations and the next ones grow until a block takes about
  :data:`BLOCK_SECONDS`, so a long run shows progress and answers Ctrl-C within a
  fraction of a second;
- nobody watches (a script without a terminal, a test, a benchmark): the first
  :data:`UNWATCHED_BLOCK` iterations are one program call that also allocates the
  carry — as fast as a hand-written ``while_loop``, most runs end there — and a longer
  run goes on in blocks sized by time.

The number of iterations of a block is an argument of the program, not part of its
shape, so blocks of any size share one compilation per (objective, optimizer,
settings, shapes); the recorded history is donated from block to block, so it is
never copied.

Many rows at once (:class:`BatchedIterations`) run the same step under ``jax.vmap``:
many starts (``minimize(..., batched=True)``), recorded without a per-iteration history
(its buffers would hold ``max_iter + 1`` entries per start), or the configurations of a
sweep (``minimize(..., lr=[...])``: an
:func:`~descend.optim.inject_hyperparams` optimizer, its values in each row's state),
each with its history. Each row keeps its own carry and stops on its own rule.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from descend import _tree, rules
from descend._tree import PyTree
from descend.calculus import call_user, check_scalar_output
from descend.engine.status import Status
from descend.optim.base import Optimizer, eval_point
from descend.optim.bounded import Box

FIRST_BLOCK = 128  # iterations in the first block of a watched run
UNWATCHED_BLOCK = 10_000  # ... and of a run nobody watches (minimize's default max_iter)
BLOCK_SECONDS = 0.25  # what later blocks aim at: the host sees a long run four times a second
MAX_GROWTH = 16  # a block holds at most this many times the iterations of the one before

# Codes of IterateCarry.failure: which part of a step was not finite (1-3), or the value
# grew without bound (4, :func:`descend.rules.grew_without_bound`).
FAILURES = {1: "the point", 2: "the value", 3: "the gradient", 4: "the value"}
GREW = 4


@dataclass(frozen=True)
class IterateConfig:
    """Static settings of the iterations (hashable: part of the compilation key).

    ``ftol`` is the relative tolerance of the improvement rule (:func:`descend.rules.improved`)
    that ``patience`` counts steps of. With a ``box`` the gradient norm of the rules and
    the history is that of the projected gradient
    (:meth:`~descend.optim.bounded.Box.projected_gradient`).
    Without ``keep_history`` the value and gradient norm are not recorded per iteration
    (many starts at once: :class:`BatchedIterations`).
    """

    tol: float
    max_iter: int
    patience: int
    ftol: float
    refine: bool
    keep_path: bool
    box: Box | None = None
    keep_history: bool = True


class IterateCarry(NamedTuple):
    """Everything the loop keeps between iterations and between blocks (on the device)."""

    started: jax.Array  # False until the first block evaluated f at x0
    n_iter: jax.Array
    x: PyTree
    value: jax.Array
    grads: PyTree
    grad_norm: jax.Array
    opt_state: PyTree
    status: jax.Array
    best: jax.Array  # the lowest value so far
    best_at: jax.Array  # ... and the iteration it was reached at
    # f(x0), for the growth rule; its own scalar, since reading the history inside the
    # loop makes XLA copy the whole history at every iteration.
    start_value: jax.Array
    # Where it was, when the path is not kept (else history_x holds it): what an
    # interrupted run returns. None with the path, so the loop does no extra work.
    best_x: PyTree
    since_best: jax.Array  # steps since the best value last improved by the rule
    has_bracket: jax.Array
    bracket: jax.Array  # (left, right) with f' < 0 at left and f' > 0 at right
    n_overshoots: jax.Array
    failure: jax.Array  # what was non-finite when the run diverged (see FAILURES)
    n_bisections: jax.Array
    # The sign-change bracket before refine's bisection and after each of its steps,
    # (BISECTION_STEPS, 2), NaN past n_bisections rows.
    bisection_brackets: jax.Array
    n_fev: jax.Array
    history_value: jax.Array
    history_grad_norm: jax.Array
    history_x: PyTree


BISECTION_STEPS = 200  # the most steps of refine's bisection (each halves the bracket)


def value_and_grad(objective: Callable[..., jax.Array]) -> Callable[..., tuple]:
    """``jax.value_and_grad``, checking (at trace time) that the objective is a real scalar."""

    def checked(params, *batch):
        value = call_user(objective, params, *batch, what="the objective")
        check_scalar_output(value, what="the objective")
        return value

    return jax.value_and_grad(checked)


def _grad_norm(config: IterateConfig, x: PyTree, grads: PyTree) -> jax.Array:
    """The norm the rules watch: of the gradient, or of the projected gradient in a box."""
    if config.box is None:
        return _tree.norm(grads)
    return _tree.norm(config.box.projected_gradient(x, grads))


# --------------------------------------------------------------------------- device side


def _allocate(config: IterateConfig, x0: PyTree, opt_state0: PyTree) -> IterateCarry:
    """The carry before the first block: copies of ``x0`` and the state, empty history.

    Compiled on its own (it holds no objective), so the buffers are new ones that the
    blocks may update in place.
    """
    dtype = jnp.result_type(*jax.tree.leaves(x0))
    n_slots = config.max_iter + 1 if config.keep_history else 1
    zero, nan = jnp.zeros((), jnp.int32), jnp.full((), jnp.nan, dtype)
    history_x = None
    if config.keep_path:
        history_x = jax.tree.map(lambda leaf: jnp.zeros((n_slots, *leaf.shape), leaf.dtype), x0)
    return IterateCarry(
        started=jnp.zeros((), bool),
        n_iter=zero,
        x=jax.tree.map(jnp.copy, x0),
        value=nan,
        grads=_tree.zeros_like(x0),
        grad_norm=nan,
        opt_state=jax.tree.map(jnp.copy, opt_state0),
        status=zero,
        best=nan,
        best_at=zero,
        start_value=nan,
        best_x=None if config.keep_path else jax.tree.map(jnp.copy, x0),
        since_best=zero,
        has_bracket=jnp.zeros((), bool),
        bracket=jnp.zeros((2,), dtype),
        n_overshoots=zero,
        failure=zero,
        n_bisections=zero,
        bisection_brackets=jnp.full((BISECTION_STEPS, 2), jnp.nan, dtype),
        n_fev=zero,
        history_value=jnp.full((n_slots,), jnp.nan, dtype),
        history_grad_norm=jnp.full((n_slots,), jnp.nan, dtype),
        history_x=history_x,
    )


def _start(value_grad, config: IterateConfig, carry: IterateCarry) -> IterateCarry:
    """Evaluate f at x0 and apply the rules that can stop a run before its first step."""
    dtype = carry.value.dtype
    value, grads = value_grad(carry.x)
    value = value.astype(dtype)
    grad_norm = _grad_norm(config, carry.x, grads).astype(dtype)
    finite = rules.is_finite(value, grads, carry.x)
    status = jnp.select(
        [~finite, grad_norm <= config.tol, jnp.asarray(config.max_iter == 0)],
        [Status.DIVERGED, Status.CONVERGED, Status.MAX_ITER],
        Status.RUNNING,
    ).astype(jnp.int32)
    return carry._replace(
        started=jnp.ones((), bool),
        value=value,
        grads=grads,
        grad_norm=grad_norm,
        status=status,
        best=value,
        start_value=value,
    )


def _flat_scalar(tree: PyTree) -> jax.Array:
    return jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)])[0]


def _set_flat_scalar(tree: PyTree, value: jax.Array) -> PyTree:
    return jax.tree.map(lambda leaf: jnp.full_like(leaf, value), tree)


def _step(objective, value_grad, optimizer, config, one_dimensional, carry: IterateCarry):
    """One iteration: the optimizer's step, f and its gradient there, the stopping rules."""
    x_new, state_new = optimizer.step(
        carry.x, carry.grads, carry.opt_state, value=carry.value, value_fn=objective
    )
    value_new, grads_new = value_grad(x_new)
    value_new = value_new.astype(carry.value.dtype)
    finite = rules.is_finite(value_new, grads_new, x_new)
    grew = finite & rules.grew_without_bound(value_new, carry.start_value)
    failure = jnp.select(
        [~_tree.all_finite(x_new), ~jnp.isfinite(value_new), ~_tree.all_finite(grads_new), grew],
        [1, 2, 3, 4],
        0,
    ).astype(jnp.int32)
    n_iter = carry.n_iter + 1
    grad_norm = _grad_norm(config, x_new, grads_new).astype(carry.value.dtype)
    step = _tree.sub(x_new, carry.x)
    # A first step may leave x where it is and still be progress: ADOPT's fills its
    # second moment only, and a learning rate warmed up from 0 starts at 0. From the
    # second step on, a step that does not move x is a stall.
    moved = (_tree.vdot(step, step) > 0) | (n_iter == 1)
    overshoot = _tree.vdot(grads_new, step) > 0
    better = rules.improved(value_new, carry.best, rtol=config.ftol)
    since_best = jnp.where(better, 0, carry.since_best + 1)

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

    converged = grad_norm <= config.tol
    if optimizer.eval_params is not None:
        # The result is the evaluation point x (schedule-free's average), not the point
        # y the gradient is taken at: the run converges when x's gradient is small too,
        # evaluated only when y's is (the rest of the rules watch y, whose value and
        # gradient each step computes anyway).
        converged = jax.lax.cond(
            converged & finite,
            lambda: _evaluated(value_grad, config, optimizer, x_new, state_new)[3] <= config.tol,
            lambda: jnp.asarray(False),
        )
    status = jnp.select(
        [
            ~finite | grew,
            converged,
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

    lowest = finite & (value_new < carry.best)
    history_x, best_x = carry.history_x, carry.best_x
    history_value, history_grad_norm = carry.history_value, carry.history_grad_norm
    if config.keep_history:
        history_value = history_value.at[n_iter].set(jnp.where(finite, value_new, jnp.nan))
        history_grad_norm = history_grad_norm.at[n_iter].set(jnp.where(finite, grad_norm, jnp.nan))
    if config.keep_path:
        history_x = jax.tree.map(
            lambda h, leaf: h.at[n_iter].set(jnp.where(finite, leaf, h[n_iter])),
            history_x,
            x_new,
        )
    else:
        best_x = _tree.where(lowest, x_new, carry.best_x)
    return carry._replace(
        n_iter=jnp.where(finite, n_iter, carry.n_iter),
        x=keep(x_new, carry.x),
        value=keep(value_new, carry.value),
        grads=keep(grads_new, carry.grads),
        grad_norm=jnp.where(finite, grad_norm, carry.grad_norm),
        opt_state=keep(state_new, carry.opt_state),
        status=status,
        best=jnp.where(lowest, value_new, carry.best),
        best_at=jnp.where(lowest, n_iter, carry.best_at),
        best_x=best_x,
        since_best=since_best,
        has_bracket=carry.has_bracket | sign_change,
        bracket=bracket,
        n_overshoots=carry.n_overshoots + (finite & overshoot).astype(jnp.int32),
        failure=failure,
        history_value=history_value,
        history_grad_norm=history_grad_norm,
        history_x=history_x,
    )


def _evaluated(value_grad, config: IterateConfig, optimizer: Optimizer, x: PyTree, opt_state):
    """``(point, value, gradient, gradient norm)`` at the optimizer's evaluation point
    (:func:`~descend.optim.base.eval_point`) of the training point ``x``."""
    point = eval_point(optimizer, x, opt_state)
    value, grads = value_grad(point)
    return point, value, grads, _grad_norm(config, point, grads).astype(value.dtype)


@functools.lru_cache(maxsize=16)
def _evaluation(objective, optimizer, config: IterateConfig, batched: bool):
    """The program of :func:`_evaluated` (mapped over the starts when ``batched``)."""
    optimizer = _unkeyed(optimizer)
    evaluated = functools.partial(_evaluated, value_and_grad(objective), config, optimizer)
    return jax.jit(jax.vmap(evaluated) if batched else evaluated)


def _bisect(
    value_grad, tol: float, carry: IterateCarry, max_steps: int = BISECTION_STEPS
) -> IterateCarry:
    """Narrow the sign-change bracket by bisection on the derivative, recording the
    bracket before the first step and after each (``bisection_brackets``)."""

    def evaluate(point):
        x = _set_flat_scalar(carry.x, point)
        value, grads = value_grad(x)
        return x, value.astype(carry.value.dtype), grads, _flat_scalar(grads)

    def not_done(state):
        left, right, _, _, _, derivative, steps, _ = state
        width_ok = right - left > 4 * jnp.finfo(left.dtype).eps * jnp.maximum(1.0, jnp.abs(left))
        return (jnp.abs(derivative) > tol) & width_ok & (steps < max_steps)

    def halve(state):
        left, right, *_, steps, brackets = state
        middle = 0.5 * (left + right)
        x, value, grads, derivative = evaluate(middle)
        left = jnp.where(derivative < 0, middle, left)
        right = jnp.where(derivative < 0, right, middle)
        brackets = brackets.at[steps].set(jnp.stack([left, right]))
        return left, right, x, value, grads, derivative, steps + 1, brackets

    left, right = carry.bracket[0], carry.bracket[1]
    x, value, grads, derivative = evaluate(0.5 * (left + right))
    brackets = carry.bisection_brackets.at[0].set(carry.bracket)
    state = (left, right, x, value, grads, derivative, jnp.ones((), jnp.int32), brackets)
    left, right, x, value, grads, _, steps, brackets = jax.lax.while_loop(not_done, halve, state)
    return carry._replace(
        x=x,
        value=value,
        grads=grads,
        grad_norm=_tree.norm(grads).astype(carry.value.dtype),
        bracket=jnp.stack([left, right]),
        n_bisections=steps,
        bisection_brackets=brackets,
    )


def _without_history(carry: IterateCarry) -> IterateCarry:
    # None (an empty pytree) for the block that carries no history.
    return carry._replace(history_value=None, history_grad_norm=None, history_x=None)  # type: ignore[arg-type]


def _block(objective, optimizer: Optimizer, config: IterateConfig, carry, stop_at):
    """Iterations until a rule stops the run or ``n_iter`` reaches ``stop_at``.

    The recorded history (``max_iter + 1`` entries) never goes through a ``lax.cond``,
    which would copy it at every block: the conditions act on the rest of the carry and
    the history is updated in place.
    """
    value_grad = value_and_grad(objective)
    one_dimensional = _tree.size(carry.x) == 1
    first = ~carry.started
    head = jax.lax.cond(
        carry.started,
        lambda c: c,
        functools.partial(_start, value_grad, config),
        _without_history(carry),
    )

    def first_entry(history, value):
        return history.at[0].set(jnp.where(first, value, history[0]))

    history_x = carry.history_x
    if config.keep_path:
        history_x = jax.tree.map(first_entry, history_x, head.x)
    carry = head._replace(
        history_value=first_entry(carry.history_value, head.value),
        history_grad_norm=first_entry(carry.history_grad_norm, head.grad_norm),
        history_x=history_x,
    )
    step = functools.partial(_step, objective, value_grad, optimizer, config, one_dimensional)
    carry = jax.lax.while_loop(
        lambda c: (c.status == Status.RUNNING) & (c.n_iter < stop_at), step, carry
    )
    if one_dimensional and config.refine:
        head = jax.lax.cond(
            carry.status == Status.SIGN_CHANGE,
            functools.partial(_bisect, value_grad, config.tol),
            lambda c: c,
            _without_history(carry),
        )
        carry = head._replace(
            history_value=carry.history_value,
            history_grad_norm=carry.history_grad_norm,
            history_x=carry.history_x,
        )
    extra = optimizer.evaluations(carry.opt_state) if optimizer.evaluations else 0
    n_fev = carry.n_iter + 1 + carry.n_bisections + extra
    return carry._replace(n_fev=jnp.asarray(n_fev, jnp.int32))


def _histories(carry: IterateCarry) -> tuple:
    return carry.history_value, carry.history_grad_norm, carry.history_x


def _block_on_parts(objective, optimizer, config, head, histories, stop_at):
    value, grad_norm, x = histories
    carry = head._replace(history_value=value, history_grad_norm=grad_norm, history_x=x)
    carry = _block(objective, optimizer, config, carry, stop_at)
    return _without_history(carry), _histories(carry)


@dataclass(frozen=True)
class _Programs:
    allocate: Callable  # (x0, opt_state0) -> carry
    block: Callable  # (head, histories, stop_at) -> (head, histories), histories donated
    first: Callable  # (x0, opt_state0, stop_at) -> (head, histories): allocate + block


@functools.lru_cache(maxsize=64)
def _programs(objective, optimizer: Optimizer, config: IterateConfig) -> _Programs:
    # Only the history (max_iter + 1 entries) is donated, to be updated in place from block
    # to block: donating the thirty small buffers of the rest costs more than copying them
    # (75 us a call, measured on the CPU).
    block = functools.partial(_block_on_parts, objective, optimizer, config)
    return _jitted(block, functools.partial(_allocate, config))


def _jitted(block, allocate) -> _Programs:
    """The programs of ``block`` and ``allocate``, the history donated to the block."""

    def first(x0, opt_state0, stop_at):
        carry = allocate(x0, opt_state0)
        return block(_without_history(carry), _histories(carry), stop_at)

    return _Programs(
        allocate=jax.jit(allocate),
        block=jax.jit(block, donate_argnums=1),
        first=jax.jit(first),
    )


# --------------------------------------------------------------------------- host side


class Iterations:
    """``minimize``'s side of the engine's block loop (a :class:`~descend.engine.loop.Block`).

    ``per_block`` fixes the iterations of every block (1 when a callback must see each
    one); otherwise blocks are sized by time, after a first block of
    :data:`UNWATCHED_BLOCK` iterations when not ``watched`` (see the module documentation).
    """

    unit = "iteration"

    def __init__(
        self,
        objective: Callable[[PyTree], jax.Array],
        x0: PyTree,
        optimizer: Optimizer,
        config: IterateConfig,
        *,
        per_block: int | None = None,
        watched: bool = True,
    ):
        self.config = config
        self._programs = _programs(objective, optimizer, config)
        self._evaluate = _points(objective, optimizer, config, batched=False)
        self.x0, self.opt_state0 = x0, optimizer.init(x0)
        self.carry: IterateCarry | None = None
        self._host: IterateCarry | None = None  # the carry on the host, once fetched
        self.per_block = per_block
        self.unwatched = per_block is None and not watched
        self.size = per_block or (UNWATCHED_BLOCK if self.unwatched else FIRST_BLOCK)
        self.n_iter, self.value, self.grad_norm = 0, float("nan"), float("nan")

    def advance(self) -> Status:
        stop_at = np.int32(min(self.n_iter + self.size, self.config.max_iter))
        began = time.perf_counter()
        if self.carry is None and self.unwatched:  # one call: allocate and run
            head, histories = self._programs.first(self.x0, self.opt_state0, stop_at)
        else:
            if self.carry is None:
                self.carry = self._programs.allocate(self.x0, self.opt_state0)
            head, histories = self._programs.block(
                _without_history(self.carry), _histories(self.carry), stop_at
            )
        value, grad_norm, x = histories
        self.carry = head._replace(history_value=value, history_grad_norm=grad_norm, history_x=x)
        self._host = None
        before = self.n_iter
        status = self._fetch()
        if self.per_block is None:
            # The next block aims at BLOCK_SECONDS from this one's pace, never shrinking:
            # the first block's time includes compiling.
            pace = (time.perf_counter() - began) / max(self.n_iter - before, 1)
            wanted = int(BLOCK_SECONDS / pace) if pace > 0 else self.size * MAX_GROWTH
            self.size = max(self.size, min(wanted, self.size * MAX_GROWTH))
        return status

    def _fetch(self) -> Status:
        """The block's status and progress numbers (four scalars; ``numpy.asarray`` waits
        for them, 8x faster than ``jax.device_get`` for so few)."""
        carry = self.carry
        assert carry is not None  # set by the first block
        return self._read(
            *map(np.asarray, (carry.status, carry.n_iter, carry.value, carry.grad_norm))
        )

    def _read(self, status, n_iter, value, grad_norm) -> Status:
        self.n_iter, self.value, self.grad_norm = int(n_iter), float(value), float(grad_norm)
        return Status(int(status))

    def done(self) -> int:
        return self.n_iter

    def describe(self) -> str:
        return f"f {self.value:.6g}, gradient norm {self.grad_norm:.3g}"

    def spent(self) -> Status | None:
        return None  # the budget is a rule of the compiled loop (MAX_ITER)

    def intact(self) -> bool:
        return self.carry is not None and not any(
            leaf.is_deleted() for leaf in jax.tree.leaves(self.carry)
        )

    def outcome(self) -> IterateCarry:
        """What the run found, on the host (NumPy values; the optimizer state left out).

        For an optimizer with an evaluation point (:func:`~descend.optim.base.eval_point`)
        ``x``, ``value``, ``grads`` and ``grad_norm`` are those of that point; the
        history is the training point's, where the steps evaluated f.
        """
        if self._host is None:
            self._host = _tree.to_host(self.evaluated()._replace(opt_state=None))
        return self._host

    def evaluated(self) -> IterateCarry:
        """The carry with its point, value and gradient at the evaluation point (the
        carry itself for an optimizer without one, and after a bisection, whose point
        is its own)."""
        carry = self.carry
        assert carry is not None  # set by the first block
        if self._evaluate is None or int(np.max(carry.n_bisections)) > 0:
            return carry
        x, value, grads, grad_norm = self._evaluate(carry.x, carry.opt_state)
        dtype = carry.value.dtype
        return carry._replace(
            x=x, value=value.astype(dtype), grads=grads, grad_norm=grad_norm.astype(dtype)
        )


def _points(objective, optimizer, config: IterateConfig, *, batched: bool):
    """The program that moves a carry's point to the evaluation point, or None."""
    if _unkeyed(optimizer).eval_params is None:
        return None
    return _evaluation(objective, optimizer, config, batched)


# --------------------------------------------------------------------------- many starts


def _rows_where(condition: jax.Array, a: PyTree, b: PyTree) -> PyTree:
    """Row by row ``a if condition else b``: ``condition`` holds one bool per row of
    the leading axis of every leaf."""

    def pick(x, y):
        return jnp.where(jnp.reshape(condition, condition.shape + (1,) * (x.ndim - 1)), x, y)

    return jax.tree.map(pick, a, b)


def _start_unless_started(value_grad, config: IterateConfig, carry: IterateCarry) -> IterateCarry:
    return _tree.where(carry.started, carry, _start(value_grad, config, carry))


def _record(histories: tuple, carry: IterateCarry, at: jax.Array, rows=None) -> tuple:
    """Write each row's point, value and gradient norm in column ``at`` of its history
    (only the ``rows`` where that mask is given, else every row).

    Every row that runs in a block starts it at the same iteration (the first block
    starts them all at 0, and a row still running at the end of a block has reached its
    ``stop_at``) and takes one step per pass of the loop, so the active rows share one
    ``n_iter``: their entries are one column, written in place, not a scatter (which
    XLA's CPU backend runs several times slower). Every other row has a smaller
    ``n_iter`` (it stopped earlier, or its step was not finite and kept its count), so
    what the column gets for it lies past the part of its history a result reads, and
    the loop writes the whole column without reading it.
    """
    value, grad_norm, path = histories

    def write(history, leaf):
        if rows is not None:
            column = jax.lax.dynamic_index_in_dim(history, at, axis=1, keepdims=False)
            leaf = jnp.where(jnp.reshape(rows, rows.shape + (1,) * (leaf.ndim - 1)), leaf, column)
        # The barrier keeps XLA from fusing the column's computation into the update,
        # which makes the update a pass over the whole history (measured 5x slower).
        leaf = jax.lax.optimization_barrier(leaf.astype(history.dtype))
        return jax.lax.dynamic_update_index_in_dim(history, leaf, at, axis=1)

    value, grad_norm = write(value, carry.value), write(grad_norm, carry.grad_norm)
    if path is not None:
        path = jax.tree.map(write, path, carry.x)
    return value, grad_norm, path


def _batched_block(objective, optimizer: Optimizer, config: IterateConfig, carry, stop_at):
    """:func:`_block` over a leading axis of rows (starts, or configurations of a sweep).

    The step is mapped over the rows (``jax.vmap``) inside one ``while_loop`` that runs
    while any row runs; a row whose rule stopped it, or that reached ``stop_at``, keeps
    its carry unchanged, so each row stops on its own rule and finished rows stay
    frozen, as under ``jax.vmap`` of the single run's loop. The history is written here,
    outside the mapped step, at each row's own iteration: mapped, the loop would select
    between the whole old and new history of every row at every iteration.
    """
    value_grad = value_and_grad(objective)
    # The mapped step keeps no history, and tracks the best point (for Ctrl-C).
    inner = dataclasses.replace(config, keep_history=False, keep_path=False)
    heads = _without_history(carry)
    n_rows = heads.n_iter.shape[0]
    one_dimensional = _tree.size(heads.x) == n_rows
    first = ~heads.started
    heads = jax.lax.cond(
        jnp.all(heads.started),
        lambda h: h,
        jax.vmap(functools.partial(_start_unless_started, value_grad, inner)),
        heads,
    )
    histories = _histories(carry)
    if config.keep_history:  # x0's entry, for the rows that started in this block
        histories = _record(histories, heads, jnp.zeros((), jnp.int32), first)
    was_running = heads.status == Status.RUNNING
    step = jax.vmap(
        functools.partial(_step, objective, value_grad, optimizer, inner, one_dimensional)
    )

    def running(heads):
        return (heads.status == Status.RUNNING) & (heads.n_iter < stop_at)

    def body(state):
        heads, histories = state
        active = running(heads)
        heads = _rows_where(active, step(heads), heads)
        if config.keep_history:
            histories = _record(histories, heads, jnp.max(jnp.where(active, heads.n_iter, 0)))
        return heads, histories

    heads, histories = jax.lax.while_loop(
        lambda state: jnp.any(running(state[0])), body, (heads, histories)
    )
    if one_dimensional and config.refine:
        # Only the rows whose sign change stopped them in this block: a row stopped
        # earlier was narrowed then.
        narrow = was_running & (heads.status == Status.SIGN_CHANGE)
        bisect = jax.vmap(functools.partial(_bisect, value_grad, config.tol))
        heads = jax.lax.cond(
            jnp.any(narrow), lambda h: _rows_where(narrow, bisect(h), h), lambda h: h, heads
        )
    extra = jax.vmap(optimizer.evaluations)(heads.opt_state) if optimizer.evaluations else 0
    n_fev = heads.n_iter + 1 + heads.n_bisections + extra
    heads = heads._replace(n_fev=jnp.asarray(n_fev, jnp.int32))
    value, grad_norm, path = histories
    return heads._replace(history_value=value, history_grad_norm=grad_norm, history_x=path)


def _allocate_row(config: IterateConfig, x0: PyTree, opt_state0: PyTree) -> IterateCarry:
    """:func:`_allocate` for one row, with its own copy of the best point (the mapped
    step tracks it, see :func:`_batched_block`)."""
    carry = _allocate(config, x0, opt_state0)
    if carry.best_x is None:
        carry = carry._replace(best_x=jax.tree.map(jnp.copy, x0))
    return carry


def _batched_block_on_parts(objective, optimizer, config, head, histories, stop_at):
    value, grad_norm, x = histories
    carry = head._replace(history_value=value, history_grad_norm=grad_norm, history_x=x)
    carry = _batched_block(objective, optimizer, config, carry, stop_at)
    return _without_history(carry), _histories(carry)


@functools.lru_cache(maxsize=16)
def _batched_programs(objective, optimizer, config: IterateConfig) -> _Programs:
    """:func:`_programs` over a leading axis of rows (:func:`_batched_block`).

    ``optimizer`` may be a :class:`Keyed` optimizer: the programs are then shared by
    every optimizer of the same key.
    """
    optimizer = _unkeyed(optimizer)
    block = functools.partial(_batched_block_on_parts, objective, optimizer, config)
    return _jitted(block, jax.vmap(functools.partial(_allocate_row, config)))


@dataclass(frozen=True, eq=False)
class Keyed:
    """An optimizer that stands, as a key of the compiled programs, for every optimizer
    of the same ``key``: those whose programs compute the same thing.

    An :func:`~descend.optim.inject_hyperparams` optimizer takes the injected values from
    its state, so sweeps of other values share its programs
    (:func:`~descend.optim.injection.program_key`).
    """

    key: Hashable
    optimizer: Optimizer

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Keyed) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


def _unkeyed(optimizer: Optimizer | Keyed) -> Optimizer:
    return optimizer.optimizer if isinstance(optimizer, Keyed) else optimizer


class BatchedIterations(Iterations):
    """Many runs of ``minimize`` in one compiled program (a :class:`~descend.engine.loop.Block`):
    many starts, or the configurations of a sweep.

    ``x0`` holds the rows along a leading axis of every leaf; ``opt_state0`` (default:
    ``optimizer.init`` of each start) their optimizer states, stacked alike (a sweep
    gives each configuration its :func:`~descend.optim.injection.init_with` state).
    ``optimizer`` may be :class:`Keyed`. ``advance`` returns ``RUNNING`` while any row
    runs; once none does, the status of the row with the lowest value (``DIVERGED`` only
    when every row diverged). Each row's own status is in :meth:`outcome`, with its
    history when ``config.keep_history``.
    """

    def __init__(
        self,
        objective: Callable[[PyTree], jax.Array],
        x0: PyTree,
        optimizer: Optimizer | Keyed,
        config: IterateConfig,
        *,
        watched: bool = True,
        opt_state0: PyTree = None,
        rows: str = "starts",
    ):
        self.config = config
        self._programs = _batched_programs(objective, optimizer, config)
        self._evaluate = _points(objective, optimizer, config, batched=True)
        if opt_state0 is None:
            opt_state0 = jax.vmap(_unkeyed(optimizer).init)(x0)
        self.x0, self.opt_state0 = x0, opt_state0
        self.carry = None
        self._host = None
        self.per_block = None
        self.unwatched = not watched
        self.size = UNWATCHED_BLOCK if self.unwatched else FIRST_BLOCK
        self.n_iter, self.value, self.grad_norm = 0, float("nan"), float("nan")
        self.n_running = int(jax.tree.leaves(x0)[0].shape[0])
        self.rows = rows

    def _read(self, status, n_iter, value, grad_norm) -> Status:
        running = status == Status.RUNNING
        self.n_running = int(np.sum(running))
        self.n_iter = int(np.max(n_iter))
        finite = np.isfinite(value)
        at = int(np.argmin(np.where(finite, value, np.inf))) if np.any(finite) else 0
        self.value, self.grad_norm = float(value[at]), float(grad_norm[at])
        if self.n_running:
            return Status.RUNNING
        return Status(int(status[at]))

    def describe(self) -> str:
        return f"best f {self.value:.6g}, {self.n_running} {self.rows} running"
