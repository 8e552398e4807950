"""L-BFGS with an optional strong-Wolfe line search, as ``torch.optim.LBFGS``.

One call of ``step`` is one L-BFGS iteration: a direction from the two-loop recursion
over the stored curvature pairs, then a step along it (fixed, or found by the
strong-Wolfe line search). The history lives in fixed-size arrays in the state and the
line search is a ``lax.while_loop``, so the whole step compiles to one XLA program.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from descend import _tree
from descend.errors import InputError, check_in_range, check_int, check_positive
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import zero_count

_CURVATURE_MIN = 1e-10  # a pair (s, y) is stored only when y.s exceeds this, as in torch


class LBFGSState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # calls of step (shadows tuple.count, as in Optax)
    n_iter: jax.Array  # L-BFGS iterations made (steps at a point not yet optimal)
    n_evals: jax.Array  # objective evaluations made by the line search
    direction: jax.Array  # the last search direction d (flat)
    step_size: jax.Array  # the last step length t, so that s = t d
    prev_grad: jax.Array  # the gradient at the start of the last iteration (flat)
    s_history: jax.Array  # (history_size, n) steps s_k, a ring buffer
    y_history: jax.Array  # (history_size, n) gradient changes y_k
    rho: jax.Array  # (history_size,) 1 / (y_k . s_k)
    n_pairs: jax.Array  # how many pairs are stored (<= history_size)
    head: jax.Array  # ring index the next pair is written to
    h_diag: jax.Array  # initial inverse-Hessian scale gamma = s.y / y.y


def fresh_state(params: Any, history_size: int, *, step_size: float) -> LBFGSState:
    """An L-BFGS state before its first step: no pairs, ``step_size`` as given (torch's
    L-BFGS starts from 0, the bounded one from 1)."""
    # The size and dtype of ravel_pytree(params), read without compiling the concatenation.
    leaves = jax.tree.leaves(params)
    dtype = jnp.result_type(*leaves, float) if leaves else jnp.result_type(float)
    n = sum(int(np.size(leaf)) for leaf in leaves)

    def zeros(shape: tuple[int, ...]) -> jax.Array:
        return _tree.full(shape, 0, dtype)

    return LBFGSState(
        count=zero_count(),
        n_iter=zero_count(),
        n_evals=zero_count(),
        direction=zeros((n,)),
        step_size=_tree.full((), step_size, dtype),
        prev_grad=zeros((n,)),
        s_history=zeros((history_size, n)),
        y_history=zeros((history_size, n)),
        rho=zeros((history_size,)),
        n_pairs=zero_count(),
        head=zero_count(),
        h_diag=_tree.full((), 1, dtype),
    )


def lbfgs(
    lr: LearningRate = 1.0,
    *,
    history_size: int = 100,
    tolerance_grad: float | None = None,
    tolerance_change: float | None = None,
    line_search_fn: str | None = "strong_wolfe",
    c1: float = 1e-4,
    c2: float = 0.9,
    max_ls: int = 25,
) -> Optimizer:
    r"""Limited-memory BFGS, one iteration per step, as ``torch.optim.LBFGS``.

    With gradient :math:`g_k` at :math:`x_k` and the last :math:`m` (``history_size``)
    pairs :math:`s_i = x_{i+1} - x_i`, :math:`y_i = g_{i+1} - g_i` (a pair is kept only
    when :math:`y_i^\top s_i > 10^{-10}`), the direction is

    .. math::

        d_k = -H_k g_k, \qquad H_k^0 = \gamma_k I, \quad
        \gamma_k = \frac{s_{k-1}^\top y_{k-1}}{y_{k-1}^\top y_{k-1}}

    computed by the two-loop recursion (Nocedal & Wright, *Numerical Optimization*,
    Algorithm 7.4), and :math:`x_{k+1} = x_k + t_k d_k`. The first iteration uses
    :math:`d_0 = -g_0` and the trial step :math:`t = \min(1, 1/\lVert g_0\rVert_1)\,\eta`;
    later ones start from :math:`t = \eta` (``lr``). With
    ``line_search_fn="strong_wolfe"``, :math:`t_k` is refined until

    .. math::

        f(x_k + t d_k) \le f(x_k) + c_1 t\, g_k^\top d_k, \qquad
        |\nabla f(x_k + t d_k)^\top d_k| \le c_2 |g_k^\top d_k|

    by bracketing and cubic-interpolation zoom (Nocedal & Wright, Algorithms 3.5 and
    3.6; the same steps, safeguards and tolerances as torch's ``_strong_wolfe``).
    With ``line_search_fn=None`` the step is :math:`t` itself (no extra evaluation).

    A step does nothing when :math:`\max_i |g_{k,i}|` is at most ``tolerance_grad``,
    and keeps the point (but updates the history) when :math:`g_k^\top d_k > -`
    ``tolerance_change``, as in torch.

    Mapping to ``torch.optim.LBFGS``: torch runs up to ``max_iter`` iterations inside
    one ``.step(closure)``; here the loop (``minimize``'s ``max_iter``) owns the
    iteration count and each ``step`` is one iteration, so a run equals torch's
    ``LBFGS(max_iter=1, max_eval=max_ls + 1)`` stepped once per iteration (torch
    counts its evaluation at the current point in ``max_eval``; here the loop makes
    that evaluation). Torch's "lack of progress" exits (step or change in value below
    ``tolerance_change``) are the loop's stopping rules here.

    Differences from torch: the default ``line_search_fn`` is ``"strong_wolfe"`` (torch:
    ``None``, a fixed step, which with ``lr=1`` overshoots on most problems); ``c1``,
    ``c2`` and ``max_ls`` are exposed; ``lr`` may be a schedule. The objective is needed
    at trial points, so the step must be given ``value`` and ``value_fn`` (the engine
    passes both); the line search calls ``jax.value_and_grad(value_fn)``. Params may be
    any pytree; they are flattened into one vector inside the step.

    Parameters
    ----------
    lr:
        Step length scale :math:`\eta > 0` (the line search's first trial), or a schedule.
        Default 1.
    history_size:
        Number of curvature pairs kept, :math:`m \ge 1`. Default 100. Memory is
        ``2 * history_size * n_params`` numbers.
    tolerance_grad:
        Skip the step when the largest gradient entry is at most this (>= 0). Default
        None: torch's 1e-7 when you call ``step`` yourself; inside :func:`descend.minimize`,
        0, so that ``minimize``'s ``tol`` alone decides when to stop (give a number to
        use it there too; a stop it causes is then named in the result's reason).
    tolerance_change:
        Directional-derivative threshold and the line search's bracket-width tolerance
        (>= 0). Default None: torch's 1e-9 when you call ``step``, 0 inside ``minimize``.
    line_search_fn:
        ``"strong_wolfe"`` (default) or ``None``.
    c1, c2:
        Wolfe constants, :math:`0 < c_1 < c_2 < 1`. Defaults 1e-4 and 0.9.
    max_ls:
        Most objective evaluations the line search makes per step (>= 1). Default 25.

    References
    ----------
    Liu & Nocedal, "On the limited memory BFGS method for large scale optimization",
    Math. Programming 45, 1989; Nocedal & Wright, *Numerical Optimization*, 2nd ed.,
    2006; ``torch.optim.LBFGS``; ``scipy.optimize.minimize(method="L-BFGS-B")``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from descend.optim.lbfgs import lbfgs
    >>> f = lambda x: jnp.sum((x - 3.0) ** 2)
    >>> opt = lbfgs()
    >>> x, state = jnp.zeros(2), opt.init(jnp.zeros(2))
    >>> for _ in range(3):
    ...     x, state = opt.step(x, 2 * (x - 3.0), state, value=f(x), value_fn=f)
    >>> [round(float(v), 6) for v in x]
    [3.0, 3.0]
    """
    lr = check_lr(lr)
    history_size = check_int("history_size", history_size)
    # None keeps the hyperparameter unset (minimize sets 0); the step uses torch's value.
    given = {"tolerance_grad": tolerance_grad, "tolerance_change": tolerance_change}
    tolerance_grad = 1e-7 if tolerance_grad is None else tolerance_grad
    tolerance_change = 1e-9 if tolerance_change is None else tolerance_change
    tolerance_grad = check_positive("tolerance_grad", tolerance_grad, allow_zero=True)
    tolerance_change = check_positive("tolerance_change", tolerance_change, allow_zero=True)
    if line_search_fn not in (None, "strong_wolfe"):
        raise InputError(f"line_search_fn must be 'strong_wolfe' or None, got {line_search_fn!r}")
    check_in_range("c1", c1, 0.0, 1.0)
    check_in_range("c2", c2, 0.0, 1.0)
    if not 0.0 < c1 < c2:
        raise InputError(f"the Wolfe constants need 0 < c1 < c2 < 1, got c1={c1!r}, c2={c2!r}")
    max_ls = check_int("max_ls", max_ls)
    searching = line_search_fn == "strong_wolfe"

    def init(params):
        return fresh_state(params, history_size, step_size=0.0)

    def step(params, grads, state, *, value=None, value_fn=None):
        if searching and (value is None or value_fn is None):
            raise InputError(
                "lbfgs(line_search_fn='strong_wolfe') needs the objective: call "
                "step(..., value=f(params), value_fn=f), or use line_search_fn=None"
            )
        x, unravel = ravel_pytree(params)
        dtype = state.direction.dtype
        x = x.astype(dtype)
        g = ravel_pytree(grads)[0].astype(dtype)

        # At a point already optimal torch returns before touching its state; here the
        # history is left alone and the small fields are selected below.
        optimal = jnp.max(jnp.abs(g)) <= tolerance_grad
        memory = _remember(state, g, skip=optimal)
        direction = _two_loop(memory, g)
        first = state.n_iter == 0
        rate = jnp.asarray(lr_at(lr, state.count), dtype)
        t0 = jnp.where(first, jnp.minimum(1.0, 1.0 / jnp.sum(jnp.abs(g))) * rate, rate)
        slope = jnp.dot(g, direction)
        # Written as "not (ascent)" so that a NaN slope still tries a step, as torch does.
        descending = ~(slope > -tolerance_change)

        if searching:

            def objective(t):
                value, grad = jax.value_and_grad(lambda flat: value_fn(unravel(flat)))(
                    x + t * direction
                )
                return jnp.asarray(value, dtype), jnp.dot(ravel_pytree(grad)[0], direction)

            def search():
                return _strong_wolfe(
                    objective,
                    direction,
                    t0,
                    jnp.asarray(value, dtype),
                    slope,
                    c1=c1,
                    c2=c2,
                    tolerance_change=tolerance_change,
                    max_ls=max_ls,
                )

            t, evals = jax.lax.cond(
                descending & ~optimal, search, lambda: (t0, jnp.zeros((), jnp.int32))
            )
        else:
            t, evals = t0, jnp.zeros((), jnp.int32)

        moves = descending & ~optimal
        new_state = memory._replace(
            count=state.count + 1,
            n_iter=jnp.where(optimal, state.n_iter, state.n_iter + 1),
            n_evals=jnp.where(optimal, state.n_evals, state.n_evals + evals),
            direction=jnp.where(optimal, state.direction, direction),
            step_size=jnp.where(optimal, state.step_size, jnp.where(descending, t, t0)),
            prev_grad=jnp.where(optimal, state.prev_grad, g),
        )
        return unravel(jnp.where(moves, x + t * direction, x)), new_state

    hyperparams = {
        "lr": lr,
        "history_size": history_size,
        "tolerance_grad": given["tolerance_grad"],
        "tolerance_change": given["tolerance_change"],
        "line_search_fn": line_search_fn,
        "c1": c1,
        "c2": c2,
        "max_ls": max_ls,
    }
    return Optimizer(
        "lbfgs",
        init,
        step,
        hyperparams,
        needs_value_fn=searching,
        evaluations=lambda state: state.n_evals,
        # the strong-Wolfe search evaluates the value and the gradient at each trial
        evaluations_with_gradient=searching,
    )


def _remember(state: LBFGSState, grad: jax.Array, *, skip: jax.Array) -> LBFGSState:
    """Store the pair from the last iteration when its curvature ``y.s`` is positive."""
    y = grad - state.prev_grad
    s = state.direction * state.step_size  # zero before the first iteration: never stored
    ys = jnp.dot(y, s)
    accept = (ys > _CURVATURE_MIN) & ~skip
    head = state.head
    size = state.rho.shape[0]
    return state._replace(
        s_history=state.s_history.at[head].set(jnp.where(accept, s, state.s_history[head])),
        y_history=state.y_history.at[head].set(jnp.where(accept, y, state.y_history[head])),
        rho=state.rho.at[head].set(jnp.where(accept, 1.0 / ys, state.rho[head])),
        n_pairs=jnp.where(accept, jnp.minimum(state.n_pairs + 1, size), state.n_pairs),
        head=jnp.where(accept, (head + 1) % size, head),
        h_diag=jnp.where(accept, ys / jnp.dot(y, y), state.h_diag),
    )


def _two_loop(memory: LBFGSState, grad: jax.Array) -> jax.Array:
    """``-H grad`` by the two-loop recursion over the stored pairs (newest first, then oldest)."""
    size = memory.rho.shape[0]

    def newest_first(k, carry):
        q, alphas = carry
        i = (memory.head - 1 - k) % size
        alpha = jnp.dot(memory.s_history[i], q) * memory.rho[i]
        return q - alpha * memory.y_history[i], alphas.at[i].set(alpha)

    q, alphas = jax.lax.fori_loop(
        0, memory.n_pairs, newest_first, (-grad, jnp.zeros_like(memory.rho))
    )

    def oldest_first(k, r):
        i = (memory.head - memory.n_pairs + k) % size
        beta = jnp.dot(memory.y_history[i], r) * memory.rho[i]
        return r + (alphas[i] - beta) * memory.s_history[i]

    return jax.lax.fori_loop(0, memory.n_pairs, oldest_first, q * memory.h_diag)


def _cubic_minimizer(x1, f1, g1, x2, f2, g2, low, high):
    """Minimizer of the cubic through two points with values and slopes, kept in [low, high].

    When the cubic has no real minimizer the midpoint of the bounds is returned
    (torch's ``_cubic_interpolate``; Nocedal & Wright, eq. 3.59).
    """
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    d2 = jnp.sqrt(jnp.maximum(d2_square, 0.0))
    from_x2 = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    from_x1 = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    minimizer = jnp.where(x1 <= x2, from_x2, from_x1)
    clamped = jnp.minimum(jnp.maximum(minimizer, low), high)
    return jnp.where(d2_square >= 0, clamped, (low + high) / 2.0)


class _Search(NamedTuple):
    trial: jax.Array  # the step length evaluated next
    t: jax.Array  # the last point of the bracketing phase (t = 0 before the first trial)
    f: jax.Array
    gtd: jax.Array
    ends_t: jax.Array  # (2,) bracket ends during the zoom
    ends_f: jax.Array
    ends_gtd: jax.Array
    low: jax.Array  # index of the end with the lower value
    insufficient: jax.Array  # the last zoom trial was too close to an end
    zooming: jax.Array
    finished: jax.Array
    evals: jax.Array


def _strong_wolfe(objective, direction, t, f, gtd, *, c1, c2, tolerance_change, max_ls):
    """Step length satisfying the strong Wolfe conditions, and the evaluations used.

    ``objective(t) -> (f(x + t d), grad f(x + t d) . d)``. The same trial points as
    torch's ``_strong_wolfe``: bracketing with cubic extrapolation bounded to
    ``[t + 0.01 (t - t_prev), 10 t]``, then a zoom by cubic interpolation with the
    10 % safeguard. Both phases run in one ``lax.while_loop`` with one evaluation per
    iteration, so the objective is traced (and compiled) once.
    """
    d_norm = jnp.max(jnp.abs(direction))
    zero = jnp.zeros((), t.dtype)

    def ranked(ends_f):
        return jnp.where(ends_f[0] <= ends_f[1], 0, 1)

    def zoom_trial(ends_t, ends_f, ends_gtd, insufficient):
        t_max, t_min = jnp.max(ends_t), jnp.min(ends_t)
        t_new = _cubic_minimizer(
            ends_t[0], ends_f[0], ends_gtd[0], ends_t[1], ends_f[1], ends_gtd[1], t_min, t_max
        )
        # Safeguard: a trial within 10 % of an end twice in a row (or outside the
        # bracket) is moved to 10 % inside, so that the bracket keeps shrinking.
        margin = 0.1 * (t_max - t_min)
        near_end = jnp.minimum(t_max - t_new, t_new - t_min) < margin
        at_end = insufficient | (t_new >= t_max) | (t_new <= t_min)
        moved = jnp.where(
            jnp.abs(t_new - t_max) < jnp.abs(t_new - t_min), t_max - margin, t_min + margin
        )
        return jnp.where(near_end & at_end, moved, t_new), near_end & ~at_end

    def body(s: _Search) -> _Search:
        f_new, gtd_new = objective(s.trial)
        evals = s.evals + 1
        ls_iter = evals - 1  # torch's count: evaluations after the first
        new = (s.trial, f_new, gtd_new)
        too_high_vs_start = f_new > f + c1 * s.trial * gtd
        curvature_ok = jnp.abs(gtd_new) <= -c2 * gtd

        # Bracketing: the previous point is (s.t, s.f, s.gtd).
        in_budget = ls_iter < max_ls
        too_high = too_high_vs_start | ((ls_iter > 1) & (f_new >= s.f))
        satisfied = in_budget & ~too_high & curvature_ok
        bracketed = in_budget & ~satisfied & (too_high | (gtd_new >= 0))
        searching = in_budget & ~satisfied & ~bracketed
        extrapolated = _cubic_minimizer(
            s.t, s.f, s.gtd, s.trial, f_new, gtd_new,
            s.trial + 0.01 * (s.trial - s.t), s.trial * 10,
        )  # fmt: skip
        # Out of evaluations: torch falls back to the bracket [0, t] and skips the zoom.
        first = tuple(
            jnp.where(in_budget, jnp.where(satisfied, a_new, a_prev), a_start)
            for a_new, a_prev, a_start in zip(new, (s.t, s.f, s.gtd), (zero, f, gtd), strict=True)
        )
        bracket_ends = tuple(jnp.stack([a, b]) for a, b in zip(first, new, strict=True))

        # Zoom: place the new point in the bracket.
        high = 1 - s.low
        zoom_high = too_high_vs_start | (f_new >= s.ends_f[s.low])
        wrong_side = gtd_new * (s.ends_t[high] - s.ends_t[s.low]) >= 0
        ends = (s.ends_t, s.ends_f, s.ends_gtd)
        # Not too high: the new point becomes the low end; the old low end becomes the
        # high end when the slope there points away from it.
        shifted = tuple(
            jnp.where(wrong_side & ~curvature_ok, a.at[high].set(a[s.low]), a) for a in ends
        )
        as_low = tuple(a.at[s.low].set(v) for a, v in zip(shifted, new, strict=True))
        # Too high: the new point replaces the high end and the ends are re-ranked.
        as_high = tuple(a.at[high].set(v) for a, v in zip(ends, new, strict=True))
        zoom_ends = tuple(jnp.where(zoom_high, a, b) for a, b in zip(as_high, as_low, strict=True))
        zoom_low = jnp.where(zoom_high, ranked(zoom_ends[1]), s.low)

        # Three arrays again (mypy counts a tuple built from a generator as any length).
        ends = tuple(  # type: ignore[assignment]
            jnp.where(s.zooming, a, b) for a, b in zip(zoom_ends, bracket_ends, strict=True)
        )
        low = jnp.where(s.zooming, zoom_low, ranked(ends[1]))
        zoom_active = jnp.where(s.zooming, zoom_high | ~curvature_ok, bracketed)
        wide = ~(jnp.abs(ends[0][1] - ends[0][0]) * d_norm < tolerance_change)
        keep_zooming = zoom_active & in_budget & wide
        trial, insufficient = zoom_trial(*ends, s.zooming & s.insufficient)
        keep_bracketing = ~s.zooming & searching
        return _Search(
            trial=jnp.where(keep_bracketing, extrapolated, trial),
            t=s.trial,
            f=f_new,
            gtd=gtd_new,
            ends_t=ends[0],
            ends_f=ends[1],
            ends_gtd=ends[2],
            low=low,
            insufficient=insufficient,
            zooming=keep_zooming,
            finished=~keep_bracketing & ~keep_zooming,
            evals=evals,
        )

    pair = jnp.zeros(2, t.dtype)
    start = _Search(
        trial=t, t=zero, f=f, gtd=gtd, ends_t=pair, ends_f=pair, ends_gtd=pair,
        low=jnp.zeros((), jnp.int32), insufficient=jnp.array(False),
        zooming=jnp.array(False), finished=jnp.array(False), evals=jnp.zeros((), jnp.int32),
    )  # fmt: skip
    end = jax.lax.while_loop(lambda s: ~s.finished, body, start)
    return end.ends_t[end.low], end.evals
