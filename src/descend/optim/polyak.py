"""Polyak's step size, from the loss value (as Optax), and the helpers MoMo shares.

Polyak's SGD (and MoMo, :mod:`descend.optim.momentum_models`) reads the objective's value at the
params (the ``value`` the engine passes to every ``step``) and takes the step that a
model of the loss says reaches its lower bound, capped by a learning rate. It needs no
extra evaluation of the objective (``needs_value_fn`` is False), but a ``step`` called
without ``value`` raises :class:`~descend.errors.InputError`. In ``ds.fit`` the value
is the current batch's mean loss (plus the penalty): the stochastic Polyak step of the
papers.

Formulas and their order of floating-point operations are Optax's
(``optax.polyak_sgd``), so trajectories agree to rounding.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend.errors import InputError, is_traced
from descend.optim._common import check_flags, check_nonnegative
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import (
    add_updates,
    fresh_state,
    optax_scale_by_rate,
    signed,
)

_VARIANTS = ("sps", "sps+")

# Optax guards its divisions with the float64 machine epsilon, whatever the dtype.
TINY = float(jnp.finfo(float).eps)


class PolyakSGDState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax


def squared_norm(tree: Any) -> jax.Array:
    """The sum of squares of all leaves, summed leaf by leaf as ``optax.tree.norm``."""
    return jnp.asarray(sum((jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree)), start=0))


def inner_product(a: Any, b: Any) -> jax.Array:
    """The inner product of two pytrees, as ``optax.tree.vdot`` computes it."""
    products = jax.tree.map(
        lambda x, y: jnp.tensordot(x, y, jnp.ndim(x), precision=jax.lax.Precision.HIGHEST), a, b
    )
    return jnp.asarray(sum(jax.tree.leaves(products), start=0))


def descent_value(value: Any, *, maximize: bool, name: str) -> jax.Array:
    """The loss value to descend (negated to maximize), refusing a missing one."""
    if value is None:
        raise InputError(
            f"{name} steps with the objective's value at the params: call "
            "step(params, grads, state, value=f(params)) (ds.minimize and ds.fit pass it)"
        )
    return -value if maximize else value


def polyak_sgd(
    max_lr: float = 1.0,
    *,
    scaling: LearningRate = 1.0,
    f_min: float = 0.0,
    eps: float = 0.0,
    variant: str = "sps",
    maximize: bool = False,
) -> Optimizer:
    r"""SGD with Polyak's step size: the step that would reach ``f_min`` on a linear model.

    With :math:`u_t = s_t\, g_t` (:math:`g_t = \pm\nabla f(x_t)`, :math:`s_t` =
    ``scaling``, a number or a schedule):

    .. math::

        \gamma_t = \min\left\{\frac{f(x_t) - f^\star}{\lVert u_t\rVert^2 + \epsilon},
                              \gamma_{\max}\right\}, \qquad
        x_{t+1} = x_t - \gamma_t\, u_t

    and :math:`\gamma_t = 0` where :math:`\lVert u_t\rVert^2 + \epsilon` is below the
    float64 machine epsilon. ``variant="sps+"`` replaces :math:`f(x_t) - f^\star` by
    its positive part. With ``scaling=1`` (the default) this is Polyak's step
    :math:`\min\{(f - f^\star)/\lVert g\rVert^2, \gamma_{\max}\}`. The step reads the
    objective's value, which ``ds.minimize`` and ``ds.fit`` pass (the current batch's
    mean loss in ``fit``); called by hand it needs ``step(..., value=f(params))``.

    Matches ``optax.polyak_sgd``: its ``max_learning_rate`` is ``max_lr`` here; the
    other names are Optax's. As in Optax (whose docstring writes
    :math:`s \min\{\cdot\}`), the norm is that of the scaled gradient, so a
    ``scaling`` other than 1 divides the uncapped step by :math:`s`. ``maximize`` is an
    addition: it descends :math:`-f`, whose minimum is then ``f_min``. Optax's
    learning-rate name is not used because ``max_lr`` is a cap, not the step.

    Parameters
    ----------
    max_lr:
        :math:`\gamma_{\max} > 0`, the largest step. Default ``1.0`` as in Optax.
    scaling:
        :math:`s > 0`, a number or a schedule of the step count. Default ``1.0``.
    f_min:
        :math:`f^\star`, a lower bound (guess) of the objective. Default ``0.0``;
        a wrong guess can stall or diverge.
    eps:
        :math:`\epsilon \ge 0` added to the squared norm. Default ``0.0``.
    variant:
        ``"sps"`` (Loizou et al.) or ``"sps+"`` (Garrigos et al.). Default ``"sps"``.
    maximize:
        Ascend instead of descend.

    Raises
    ------
    InputError
        A hyperparameter out of range; at ``step``, a missing ``value``.

    References
    ----------
    Loizou et al., "Stochastic Polyak Step-size for SGD: An Adaptive Learning Rate for
    Fast Convergence", AISTATS 2021; Garrigos et al., "Function Value Learning:
    Adaptive Learning Rates Based on the Polyak Stepsize and Function Splitting in
    ERM", 2023; ``optax.polyak_sgd``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.polyak_sgd()
    >>> x = 2.0  # f(x) = x**2, f(2) = 4, f'(2) = 4: the step is 4 / 16
    >>> float(opt.step(x, 4.0, opt.init(x), value=4.0)[0])
    1.0
    """
    max_lr = check_lr(max_lr, name="max_lr")
    if callable(max_lr):
        raise InputError("max_lr must be a number > 0 (a cap, not a schedule); use scaling=")
    scaling = check_lr(scaling, name="scaling")
    check_nonnegative(eps=eps)
    f_min = finite_number("f_min", f_min)
    if variant not in _VARIANTS:
        raise InputError(f"variant must be 'sps' or 'sps+', got {variant!r}")
    check_flags(maximize=maximize)

    def init(params):
        return fresh_state(PolyakSGDState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        value = descent_value(value, maximize=maximize, name="polyak_sgd")
        updates = optax_scale_by_rate(signed(grads, maximize=maximize), lr_at(scaling, state.count))
        norm = squared_norm(updates)
        gap = jnp.array(value - f_min).astype(norm.dtype)
        if variant == "sps+":
            gap = jnp.maximum(gap, 0.0)
        size = jnp.where(
            norm + eps <= TINY, jnp.array(0.0), jnp.minimum(gap / (norm + eps), max_lr)
        )
        updates = jax.tree.map(lambda u: size * u, updates)
        return add_updates(params, updates), PolyakSGDState(state.count + 1)

    hyperparams = {
        "max_lr": max_lr,
        "scaling": scaling,
        "f_min": f_min,
        "eps": eps,
        "variant": variant,
        "maximize": maximize,
    }
    return Optimizer("polyak_sgd", init, step, hyperparams)


def finite_number(name: str, value: Any) -> float:
    if is_traced(value):  # a sweep's value, checked when its configuration was built
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    # math, not jnp: under a trace jnp.isfinite of a number is a traced bool.
    if isinstance(value, bool) or not math.isfinite(number):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return number
