"""Plain gradient descent (fixed step or Armijo line search) and SGD with momentum."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend import _tree
from descend.errors import InputError, check_in_range, check_int, check_positive, is_traced
from descend.optim._common import check_decay_mask, with_decay_mask
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import (
    add_updates,
    descent_grads,
    fresh_state,
    nonzero,
    zero_count,
    zeros_if,
)


class GDState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax


class LineSearchState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    step_size: jax.Array  # the last accepted step
    n_evals: jax.Array  # objective evaluations made by the search, for reporting
    previous_params: Any  # the point and gradient of the previous step, for the
    previous_grads: Any  # Barzilai-Borwein estimate of the next step


class SGDState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    momentum_buffer: Any


def gd(
    lr: LearningRate | None = None,
    *,
    maximize: bool = False,
    c1: float = 1e-4,
    shrink: float = 0.5,
    grow: float = 2.0,
    initial_step: float = 1.0,
    max_backtracks: int = 60,
) -> Optimizer:
    r"""Plain gradient descent, the seed's update: step against the derivative.

    .. math:: x_{t+1} = x_t - \eta_t \nabla f(x_t)

    With a number (or schedule) as ``lr`` the step is :math:`\eta_t = ` ``lr``. With
    ``lr=None`` the step is found by a backtracking (Armijo) line search. The first
    trial is the Barzilai–Borwein step :math:`s^\top s / s^\top y` (with
    :math:`s = x_t - x_{t-1}`, :math:`y = \nabla f(x_t) - \nabla f(x_{t-1})`; Barzilai &
    Borwein, 1988) when it is positive, else ``grow`` times the last accepted step; on
    the first iteration it is the step that moves ``x`` by ``initial_step`` in norm (or
    ``initial_step`` when the gradient is shorter than 1). The trial is multiplied by
    ``shrink`` until the sufficient-decrease condition

    .. math:: f(x_t - \eta \nabla f(x_t)) \le f(x_t) - c_1\,\eta\,\lVert\nabla f(x_t)\rVert^2

    holds (Nocedal & Wright, *Numerical Optimization*, Algorithm 3.1). If no step of
    at least ``initial_step * shrink**max_backtracks`` decreases ``f``, the point is
    kept and the loop's "no further decrease" rule ends the run.

    Parameters
    ----------
    lr:
        Step size (> 0) or a schedule ``f(count) -> lr``; ``None`` for the line search.
    maximize:
        Ascend instead of descend.
    c1, shrink, grow, initial_step, max_backtracks:
        Line-search settings (used only when ``lr is None``).

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.gd(lr=0.25)
    >>> float(opt.step(1.0, 4.0, opt.init(1.0))[0])
    0.0
    """
    sign = -1.0 if maximize else 1.0
    if lr is not None:
        lr = check_lr(lr)

        def init(params):
            return fresh_state(GDState, params)

        def step(params, grads, state, *, value=None, value_fn=None):
            updates = _tree.scale(-sign * lr_at(lr, state.count), grads)
            return add_updates(params, updates), GDState(count=state.count + 1)

        return Optimizer("gd", init, step, {"lr": lr, "maximize": maximize})

    check_in_range("c1", c1, 0.0, 1.0)
    check_in_range("shrink", shrink, 0.0, 1.0)
    if c1 == 0.0 or shrink == 0.0:
        raise InputError("c1 and shrink must be > 0 for the line search")
    check_positive("grow", grow)
    check_positive("initial_step", initial_step)
    check_int("max_backtracks", max_backtracks)
    min_step = initial_step * shrink**max_backtracks

    def init_search(params):
        dtype = jnp.result_type(*jax.tree.leaves(params), float)
        return fresh_state(
            LineSearchState,
            params,
            step_size=_tree.full((), initial_step, dtype),
            n_evals=zero_count(),
            previous_params=params,
        )

    def search_step(params, grads, state, *, value=None, value_fn=None):
        if value is None or value_fn is None:
            raise InputError(
                "gd(lr=None) chooses its step by line search and needs the objective: "
                "call step(..., value=f(params), value_fn=f), or give a fixed lr"
            )

        def objective(x):
            return sign * value_fn(x)

        current = sign * value
        slope = _tree.vdot(grads, grads)
        dtype = state.step_size.dtype
        # Near a minimum the predicted decrease c1*eta*|g|^2 falls below the rounding error
        # of f itself, and the plain Armijo test would refuse every step. Allowing a change
        # at the rounding level of f (an approximate Armijo condition, as in Hager & Zhang,
        # 2005) lets the gradient keep shrinking there.
        rounding = 10 * jnp.finfo(dtype).eps * jnp.abs(current)

        def trial(eta):
            return add_updates(params, _tree.scale(-sign * eta, grads))

        def insufficient(eta):
            candidate = objective(trial(eta))
            # Written as "not (sufficient)" so that a NaN or inf trial value counts as a failure.
            return ~(candidate <= current - c1 * eta * slope + rounding)

        def keep_shrinking(carry):
            eta, _, failed = carry
            return failed & (eta >= min_step)

        def shrink_once(carry):
            eta, evals, _ = carry
            eta = eta * shrink
            return eta, evals + 1, insufficient(eta)

        # The first trial moves x by at most initial_step (in norm), as torch's LBFGS does.
        # Later ones start from the Barzilai-Borwein step, which is exact for a quadratic
        # along the last step and lets the step grow back after a cut.
        first_trial = initial_step * jnp.minimum(1.0, 1.0 / jnp.sqrt(slope))
        s_step = _tree.sub(params, state.previous_params)
        y_step = _tree.sub(grads, state.previous_grads)
        curvature = sign * _tree.vdot(s_step, y_step)
        barzilai_borwein = _tree.vdot(s_step, s_step) / jnp.where(curvature > 0, curvature, 1.0)
        later_trial = jnp.where(curvature > 0, barzilai_borwein, state.step_size * grow)
        eta0 = jnp.where(state.count == 0, first_trial, later_trial).astype(dtype)
        eta, evals, failed = jax.lax.while_loop(
            keep_shrinking, shrink_once, (eta0, jnp.ones((), jnp.int32), insufficient(eta0))
        )
        accepted = ~failed
        new_params = _tree.where(accepted, trial(eta), params)
        new_state = LineSearchState(
            count=state.count + 1,
            step_size=jnp.where(accepted, eta, state.step_size),
            n_evals=state.n_evals + evals,
            previous_params=params,
            previous_grads=grads,
        )
        return new_params, new_state

    return Optimizer(
        "gd",
        init_search,
        search_step,
        {
            "lr": None,
            "maximize": maximize,
            "c1": c1,
            "shrink": shrink,
            "grow": grow,
            "initial_step": initial_step,
            "max_backtracks": max_backtracks,
        },
        needs_value_fn=True,
        evaluations=lambda state: state.n_evals,
    )


def sgd(
    lr: LearningRate = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Stochastic gradient descent with momentum, as ``torch.optim.SGD``.

    With :math:`g_t = \pm\nabla f(x_t) + \lambda x_t` (``weight_decay`` :math:`\lambda`
    added to the gradient, coupled L2; the sign is ``-`` with ``maximize``):

    .. math::

        b_1 = g_1, \quad b_t = \mu b_{t-1} + (1 - \tau) g_t \\
        d_t = g_t + \mu b_t \ \text{(nesterov)}, \quad d_t = b_t \ \text{(otherwise)} \\
        x_{t+1} = x_t - \eta_t d_t

    where :math:`\mu` is ``momentum`` and :math:`\tau` is ``dampening``. Dampening is
    skipped on the first step, as in PyTorch. Without momentum this is plain gradient
    descent.

    Differences from ``optax.sgd``: Optax starts its trace at zero (so the first step
    of a dampened momentum is scaled by :math:`1-\tau`), has no dampening parameter and
    adds weight decay only through a separate transform.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-3`` as in PyTorch.
    momentum:
        Momentum factor :math:`\mu \ge 0`.
    dampening:
        Dampening :math:`\tau` for momentum, in ``[0, 1]``.
    weight_decay:
        Coupled L2 penalty :math:`\lambda \ge 0` added to the gradient.
    nesterov:
        Use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"`` (the leaves named ``w``, not the biases of descend's models), a
        pytree of ``True`` / ``False``, or a function (Optax's ``mask``).

    References
    ----------
    Sutskever et al., "On the importance of initialization and momentum in deep
    learning", ICML 2013; ``torch.optim.SGD``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.sgd(lr=0.1, momentum=0.9)
    >>> params, state = opt.step(1.0, 2.0, opt.init(1.0))
    >>> round(float(params), 6)
    0.8
    """
    lr = check_lr(lr)
    check_positive("momentum", momentum, allow_zero=True)
    check_in_range("dampening", dampening, 0.0, 1.0, closed_high=True)
    check_positive("weight_decay", weight_decay, allow_zero=True)
    # A traced momentum or dampening (a sweep, descend.optim.injection) was checked when
    # its configuration was built concretely.
    traced = is_traced(momentum) or is_traced(dampening)
    if nesterov and not traced and (momentum <= 0 or dampening != 0):
        raise InputError(
            "nesterov=True needs momentum > 0 and dampening == 0, "
            f"got momentum={momentum!r}, dampening={dampening!r}"
        )
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        return fresh_state(SGDState, params, momentum_buffer=zeros_if(nonzero(momentum), params))

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = descent_grads(
            params, grads, maximize=maximize, weight_decay=weight_decay, mask=mask
        )
        buffer = state.momentum_buffer
        if nonzero(momentum):
            # Torch starts the buffer at the first gradient itself, undampened.
            first = state.count == 0
            buffer = jax.tree.map(
                lambda b, g: jnp.where(first, g, momentum * b + (1 - dampening) * g),
                buffer,
                grads,
            )
            grads = _tree.axpy(momentum, buffer, grads) if nesterov else buffer
        updates = _tree.scale(-lr_at(lr, state.count), grads)
        return add_updates(params, updates), SGDState(state.count + 1, buffer)

    hyperparams = {
        "lr": lr,
        "momentum": momentum,
        "dampening": dampening,
        "weight_decay": weight_decay,
        "nesterov": nesterov,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("sgd", init, step, hyperparams), mask)


def momentum(
    lr: LearningRate = 1e-2,
    momentum: float = 0.9,
    *,
    nesterov: bool = False,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Gradient descent with (heavy-ball) momentum: :func:`sgd` with ``momentum=0.9``.

    .. math:: b_t = \mu b_{t-1} + g_t, \qquad x_{t+1} = x_t - \eta b_t

    Parameters are those of :func:`sgd`; only the defaults differ
    (``lr=1e-2``, ``momentum=0.9``).

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.momentum(lr=0.1)
    >>> opt.hyperparams["momentum"]
    0.9
    """
    if not is_traced(momentum) and momentum <= 0:
        raise InputError(f"momentum must be > 0 for the momentum optimizer, got {momentum!r}")
    base = sgd(
        lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
        maximize=maximize,
        weight_decay_mask=weight_decay_mask,
    )
    return Optimizer("momentum", base.init, base.step, base.hyperparams)
