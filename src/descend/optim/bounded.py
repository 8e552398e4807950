r"""Box bounds: the projection onto ``low <= x <= high`` and optimizers that respect it.

A :class:`Box` holds one ``(low, high)`` pair per real number of the params (raveled
in the order of :func:`jax.flatten_util.ravel_pytree`; ``-inf`` / ``inf`` for a side
without a bound). :func:`projected` makes any optimizer respect it:

- **first-order optimizers** take projected gradient steps (Bertsekas, *Nonlinear
  Programming*, 2nd ed., sec. 2.3): the components of the gradient that push against an
  active bound are set to zero, the optimizer steps as usual, and the point is projected
  back, :math:`x_{k+1} = P(x_k - \eta\, \tilde g_k)`. A line search (``gd()``) sees the
  objective composed with the projection, so it evaluates ``f`` only inside the box and
  its Armijo test follows the projection arc;
- **L-BFGS** becomes a projected L-BFGS with an active set, in the spirit of L-BFGS-B
  (Byrd, Lu, Nocedal & Zhu, SIAM J. Sci. Comput. 16, 1995): the quasi-Newton direction
  is computed on the free variables only (those not held at a bound by the gradient),
  the step backtracks along the projection arc :math:`t \mapsto P(x + t d)` until
  :math:`f(P(x + t d)) \le f(x) + c_1\, g^\top (P(x + t d) - x)`, and it falls back to
  the projected gradient when the quasi-Newton direction finds no decrease. Unlike
  L-BFGS-B it has no generalized Cauchy point; it converges to the same minimizers
  (tested against SciPy's L-BFGS-B).

:func:`box_of` reads bounds in SciPy's forms into a :class:`Box`.

Convergence is measured by the norm of the projected gradient
:math:`x - P(x - \nabla f(x))` (:meth:`Box.projected_gradient`), zero exactly at the
points that satisfy the first-order (KKT) conditions of the box.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from descend._tree import PyTree
from descend.errors import InputError, warn
from descend.optim.base import Optimizer
from descend.optim.lbfgs import _remember, _two_loop, fresh_state, lbfgs

# L-BFGS's step is tried at t = 1 and halved down to this.
_MIN_STEP = 2.0**-40
_C1 = 1e-4
# lbfgs's own stopping tests: the engine's tol decides inside minimize.
_OWN_TOLERANCES = ("tolerance_grad", "tolerance_change")


@dataclass(frozen=True)
class Box:
    """Lower and upper bounds, one per real number of the params (raveled).

    Hashable and compared by value: part of the key of compiled programs.

    Attributes
    ----------
    lower, upper:
        Tuples of floats of equal length ``n`` (the number of real parameters), with
        ``lower[i] <= upper[i]``; ``-inf`` and ``inf`` mean no bound on that side.
    """

    lower: tuple[float, ...]
    upper: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.lower) != len(self.upper):
            raise InputError(
                f"bounds need as many lower as upper bounds, got {len(self.lower)} and "
                f"{len(self.upper)}"
            )
        for i, (low, high) in enumerate(zip(self.lower, self.upper, strict=True)):
            if math.isnan(low) or math.isnan(high) or low > high:
                raise InputError(
                    f"bounds for variable {i} must satisfy low <= high (None or +-inf for "
                    f"no bound), got ({low}, {high})"
                )

    @property
    def size(self) -> int:
        return len(self.lower)

    def arrays(self, dtype) -> tuple[jax.Array, jax.Array]:
        return jnp.asarray(self.lower, dtype), jnp.asarray(self.upper, dtype)

    def project(self, params: PyTree) -> PyTree:
        """The nearest point of the box: each number clipped to its bounds."""
        flat, unravel = ravel_pytree(params)
        low, high = self.arrays(flat.dtype)
        return unravel(jnp.clip(flat, low, high))

    def free(self, params: PyTree, grads: PyTree) -> PyTree:
        """True for the numbers a descent step may move: not at a bound the gradient pushes on."""
        x, unravel = ravel_pytree(params)
        g = ravel_pytree(grads)[0]
        low, high = self.arrays(x.dtype)
        held = ((x <= low) & (g > 0)) | ((x >= high) & (g < 0))
        return unravel(~held)

    def projected_gradient(self, params: PyTree, grads: PyTree) -> PyTree:
        r""":math:`x - P(x - g)`: the gradient with the part that leaves the box removed."""
        x, unravel = ravel_pytree(params)
        g = ravel_pytree(grads)[0]
        low, high = self.arrays(x.dtype)
        return unravel(x - jnp.clip(x - g, low, high))

    def active(self, x: np.ndarray) -> np.ndarray:
        """Which bound holds each number of the raveled point ``x``, on the host.

        ``-1`` at its lower bound, ``1`` at its upper bound, ``0`` in between (SciPy's
        ``active_mask`` of ``least_squares``); a fixed variable (``low == high``) is -1.
        """
        x = np.asarray(x, dtype=float).ravel()
        low, high = np.asarray(self.lower), np.asarray(self.upper)
        return np.where(x <= low, -1, np.where(x >= high, 1, 0)).astype(np.int8)

    def contains(self, x: np.ndarray) -> bool:
        x = np.asarray(x, dtype=float).ravel()
        return bool(np.all((x >= np.asarray(self.lower)) & (x <= np.asarray(self.upper))))

    def sample(self, n: int, seed: int) -> np.ndarray:
        """``n`` points drawn uniformly from the box (NumPy's PCG64 from ``seed``), ``(n, size)``.

        Every bound must be finite.
        """
        low, high = np.asarray(self.lower), np.asarray(self.upper)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise InputError(
                "starts=N draws the starts from the box, so every bound must be finite; "
                "give finite bounds, or the starts themselves with batched=True"
            )
        return np.random.default_rng(seed).uniform(low, high, size=(n, low.size))


def projected(optimizer: Optimizer, box: Box) -> Optimizer:
    """``optimizer`` made to keep its iterates in ``box`` (see the module documentation).

    ``lbfgs`` becomes the projected L-BFGS with an active set (its ``history_size`` kept;
    its line search replaced by the backtracking along the projection arc). Any other
    optimizer takes projected gradient steps.
    """
    if optimizer.name == "lbfgs":
        history_size = optimizer.hyperparams.get("history_size", 10)
        default = lbfgs(history_size=history_size).hyperparams
        ignored = sorted(
            key
            for key, value in optimizer.hyperparams.items()
            if key not in _OWN_TOLERANCES and default.get(key) != value
        )
        if ignored:
            warn(
                f"with bounds, lbfgs runs as a projected L-BFGS with its own backtracking "
                f"search: history_size is kept, {', '.join(ignored)} not used"
            )
        return projected_lbfgs(box, history_size=history_size)
    inner = optimizer.step

    def step(params, grads, state, *, value=None, value_fn=None):
        free = box.free(params, grads)
        reduced = jax.tree.map(lambda g, keep: jnp.where(keep, g, 0), grads, free)
        inside = None if value_fn is None else (lambda p: value_fn(box.project(p)))
        new_params, new_state = inner(params, reduced, state, value=value, value_fn=inside)
        return box.project(new_params), new_state

    return Optimizer(
        optimizer.name,
        optimizer.init,
        step,
        optimizer.hyperparams,
        needs_value_fn=optimizer.needs_value_fn,
        evaluations=optimizer.evaluations,
        complex_params="refuse",
        eval_params=optimizer.eval_params,
        train_params=optimizer.train_params,
        evaluations_with_gradient=optimizer.evaluations_with_gradient,
    )


def projected_lbfgs(box: Box, *, history_size: int = 10) -> Optimizer:
    """L-BFGS on the free variables with a backtracking search along the projection arc.

    The state is :class:`~descend.optim.lbfgs.LBFGSState` (``direction`` holds the last
    step taken and ``step_size`` is 1, so its memory stores the steps actually made).
    The line search evaluates values only; ``evaluations(state)`` counts its trials.
    """

    def init(params):
        return fresh_state(params, history_size, step_size=1.0)

    def step(params, grads, state, *, value=None, value_fn=None):
        if value is None or value_fn is None:
            raise InputError(
                "the bounded L-BFGS searches along its step and needs the objective: call "
                "step(..., value=f(params), value_fn=f)"
            )
        x, unravel = ravel_pytree(params)
        dtype = state.direction.dtype
        x, g = x.astype(dtype), ravel_pytree(grads)[0].astype(dtype)
        low, high = box.arrays(dtype)
        value = jnp.asarray(value, dtype)
        free = ~(((x <= low) & (g > 0)) | ((x >= high) & (g < 0)))
        # The pair (s, y) keeps the free variables only: the gradient of a variable held
        # at a bound changes with the others without saying anything about the curvature
        # in the free subspace, and would spoil every direction while the pair is kept.
        memory = _remember(state, jnp.where(free, g, state.prev_grad), skip=jnp.asarray(False))
        g_free = jnp.where(free, g, 0)
        newton = jnp.where(free, _two_loop(memory, g_free), 0)
        gradient_step = -g_free
        # The first step moves by at most 1 (as lbfgs and gd start): no curvature known yet.
        scale = jnp.where(state.n_iter == 0, jnp.minimum(1.0, 1.0 / jnp.sum(jnp.abs(g_free))), 1.0)
        rounding = 10 * jnp.finfo(dtype).eps * jnp.abs(value)

        def trial(direction, t):
            return jnp.clip(x + t * direction, low, high)

        def insufficient(direction, t):
            point = trial(direction, t)
            decrease = jnp.dot(g, point - x)
            candidate = value_fn(unravel(point))
            # "not (sufficient)": a NaN trial value counts as a failure.
            return ~((candidate <= value + _C1 * decrease + rounding) & (decrease < 0))

        def search(direction, t0):
            def shrink(carry):
                t, evals, _ = carry
                return t * 0.5, evals + 1, insufficient(direction, t * 0.5)

            start = (t0, jnp.ones((), jnp.int32), insufficient(direction, t0))
            return jax.lax.while_loop(lambda c: c[2] & (c[0] >= _MIN_STEP * t0), shrink, start)

        t, evals, failed = search(newton, scale)
        # When the quasi-Newton direction finds no decrease, the projected gradient does
        # whenever x is not stationary.
        t_g, evals_g, failed_g = jax.lax.cond(
            failed,
            lambda: search(gradient_step, scale),
            lambda: (t, jnp.zeros((), jnp.int32), jnp.asarray(True)),
        )
        use_gradient = failed & ~failed_g
        direction = jnp.where(use_gradient, gradient_step, newton)
        t = jnp.where(use_gradient, t_g, t)
        evals = evals + evals_g
        moved = ~(failed & failed_g)
        new_x = jnp.where(moved, trial(direction, t), x)
        new_state = memory._replace(
            count=state.count + 1,
            n_iter=state.n_iter + 1,
            n_evals=state.n_evals + evals,
            direction=new_x - x,
            step_size=jnp.ones((), dtype),
            prev_grad=g,
        )
        return unravel(new_x), new_state

    return Optimizer(
        "lbfgs",
        init,
        step,
        {"history_size": history_size, "bounds": "projected"},
        needs_value_fn=True,
        evaluations=lambda state: state.n_evals,
        complex_params="refuse",
    )


def box_of(bounds: Any, x0: PyTree, variables: Sequence[str] | None = None) -> Box | None:
    """The :class:`Box` of ``bounds`` given in SciPy's forms, for the point ``x0``.

    ``bounds`` is ``None`` (no box), a ``scipy.optimize.Bounds`` (anything with ``lb`` and
    ``ub``, broadcast to the number of variables), a sequence of ``(low, high)`` pairs
    (one per number of an array ``x0``; ``None`` for no bound on that side), a mapping
    ``{name: (low, high)}`` when the point's numbers have ``variables`` names, or, for a
    pytree ``x0`` of several leaves, a pair ``(lows, highs)`` of pytrees of its structure
    (a number per leaf broadcasts).

    Raises
    ------
    InputError
        A form not among these, a count that does not match ``x0``, a bound that is not
        a number, or ``low > high``.
    """
    if bounds is None:
        return None
    flat, _ = ravel_pytree(x0)
    n = int(flat.size)
    leaves = jax.tree.leaves(x0)
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):  # scipy.optimize.Bounds
        if len(leaves) > 1 and (np.size(bounds.lb) > 1 or np.size(bounds.ub) > 1):
            # Its entries would follow the pytree's leaf order (a dict's sorted keys), which
            # need not be the order the user wrote: refused rather than guessed.
            raise InputError(
                "a scipy.optimize.Bounds with an entry per variable does not say which leaf "
                "of a pytree x0 each entry is for; give bounds=(lows, highs), two pytrees of "
                "x0's structure, or a Bounds of two numbers for every variable"
            )
        try:
            lower = np.broadcast_to(np.asarray(bounds.lb, dtype=float), (n,))
            upper = np.broadcast_to(np.asarray(bounds.ub, dtype=float), (n,))
        except ValueError:
            raise InputError(
                f"bounds.lb and bounds.ub must be numbers or have one entry per variable "
                f"({n}), got shapes {np.shape(bounds.lb)} and {np.shape(bounds.ub)}"
            ) from None
        return Box(tuple(map(float, lower)), tuple(map(float, upper)))
    if isinstance(bounds, Mapping):
        if variables is None:
            raise InputError(
                "bounds as {name: (low, high)} are for expressions; for a function of an "
                "array give one (low, high) pair per number"
            )
        unknown = sorted(set(bounds) - set(variables))
        if unknown:
            raise InputError(
                f"bounds name {unknown}, which are not variables of the expression "
                f"(its variables: {list(variables)})"
            )
        return _from_pairs([bounds.get(name, (None, None)) for name in variables], n)
    if len(leaves) == 1:
        pairs_given = _as_pairs(bounds)
        if pairs_given is None:
            raise InputError(
                f"bounds must be a scipy.optimize.Bounds or a sequence of (low, high) pairs, "
                f"got {type(bounds).__name__}"
            )
        if n == 1 and len(pairs_given) == 2 and not isinstance(pairs_given[0], (list, tuple)):
            pairs_given = [tuple(pairs_given)]
        return _from_pairs(pairs_given, n)
    return _from_trees(bounds, x0)


def _bound(value, infinite: float, where: str) -> float:
    if value is None:
        return infinite
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where} must be a number or None, got {value!r}") from None
    return number


def _as_pairs(bounds: Any) -> list | None:
    """SciPy's sequence forms as a list: pairs, an ``(n, 2)`` array, rows that are arrays,
    or any iterable of pairs (``zip(lows, highs)``); None for anything else."""
    if isinstance(bounds, np.ndarray):
        if bounds.ndim == 2 and bounds.shape[1] == 2:
            return [tuple(row) for row in bounds.tolist()]
        return None
    if isinstance(bounds, (str, bytes, Mapping)) or not isinstance(bounds, Iterable):
        return None
    return [
        tuple(np.asarray(pair).tolist()) if isinstance(pair, np.ndarray) else pair
        for pair in bounds
    ]


def _from_pairs(given: list, n: int) -> Box:
    if len(given) != n:
        hint = (
            "; for an array of lows and one of highs, give scipy.optimize.Bounds(lows, highs)"
            if len(given) == 2
            else ""
        )
        raise InputError(
            f"bounds has {len(given)} (low, high) pairs and x0 has {n} numbers; give one "
            f"pair per number (None for no bound){hint}"
        )
    lower, upper = [], []
    for i, pair in enumerate(given):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise InputError(f"bounds[{i}] must be a (low, high) pair, got {pair!r}")
        lower.append(_bound(pair[0], -np.inf, f"the lower bound of variable {i}"))
        upper.append(_bound(pair[1], np.inf, f"the upper bound of variable {i}"))
    return Box(tuple(lower), tuple(upper))


def _from_trees(bounds, x0: PyTree) -> Box:
    """``(lows, highs)``, each a pytree of ``x0``'s structure (a number broadcasts per leaf)."""
    if not (isinstance(bounds, (list, tuple)) and len(bounds) == 2):
        raise InputError(
            "for a pytree x0, bounds must be a pair (lows, highs) of pytrees of its structure"
        )
    sides = []
    for side, infinite, name in ((bounds[0], -np.inf, "lows"), (bounds[1], np.inf, "highs")):
        try:
            tree = jax.tree.map(
                lambda leaf, b, infinite=infinite: np.broadcast_to(
                    np.asarray(infinite if b is None else b, dtype=float), np.shape(leaf)
                ),
                x0,
                side,
                is_leaf=lambda b: b is None,
            )
        except (ValueError, TypeError) as error:
            raise InputError(
                f"bounds' {name} must have the structure of x0 (a number or an array of "
                f"each leaf's shape per leaf): {_first_line(error)}"
            ) from None
        sides.append(tuple(map(float, ravel_pytree(jax.tree.map(jnp.asarray, tree))[0])))
    return Box(sides[0], sides[1])


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def bounds_size(bounds: Any) -> int:
    """The number of variables that ``bounds`` (without ``x0``) is for."""
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):
        size = max(np.size(bounds.lb), np.size(bounds.ub))
        if np.ndim(bounds.lb) == 0 and np.ndim(bounds.ub) == 0:
            raise InputError(
                "Bounds with a number for lb and ub do not say how many variables f has; "
                "give x0 (one start) too"
            )
        return int(size)
    if isinstance(bounds, (list, tuple)):
        return len(bounds)
    raise InputError("give x0 (one start) to say the structure of the points")
