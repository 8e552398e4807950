r"""Schedule-free SGD and AdamW: momentum replaced by interpolation and averaging.

Three sequences: the base steps :math:`z`, their weighted average :math:`x` (the point
to evaluate, predict with and save) and the point :math:`y` between them, where the
gradient is taken and which the training loop holds. As in the ``schedulefree``
package, only :math:`y` (the params) and :math:`z` (the state) are kept; :math:`x` is
computed from them by the optimizer's ``eval_params`` (``optimizer.eval()`` there), and
:math:`y` from :math:`x` by ``train_params`` (``optimizer.train()``), which
:func:`~descend.optim.base.eval_point` and :func:`~descend.optim.base.train_point`
apply. ``minimize``, ``fit``, checkpoints and the estimators report :math:`x`.

The order of floating-point operations is the package's (``SGDScheduleFree``,
``AdamWScheduleFree``): :math:`y` is moved in place by a ``lerp`` and an ``add``, not
recomputed from :math:`x` and :math:`z` as ``optax.contrib.schedule_free`` does.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend import _tree
from descend.errors import InputError, check_int
from descend.optim._common import (
    check_betas,
    check_decay_mask,
    check_flags,
    check_nonnegative,
    with_decay_mask,
)
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import (
    bias_correction,
    cast_like,
    coupled_decay,
    float_dtype,
    lerp,
    nonzero,
    signed,
    square_average,
    step_number,
    zero_count,
)
from descend.optim.leaves import decayed_leaves


class ScheduleFreeSGDState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # the package's group["k"] (shadows tuple.count, as in Optax)
    z: Any  # the base steps
    weight_sum: jax.Array  # the sum of the averaging weights so far
    lr_max: jax.Array  # the largest (warmed-up) learning rate so far


class ScheduleFreeAdamWState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    z: Any
    exp_avg_sq: Any  # the second moment of the gradients
    weight_sum: jax.Array
    lr_max: jax.Array


def _check_common(lr, warmup_steps, r, weight_lr_power, weight_decay, maximize):
    lr = check_lr(lr)
    warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
    check_nonnegative(r=r, weight_lr_power=weight_lr_power, weight_decay=weight_decay)
    check_flags(maximize=maximize)
    return lr, warmup_steps


def _check_interpolation(name: str, value: Any) -> float:
    """:math:`\\beta` of :math:`y = (1-\\beta) z + \\beta x`: in ``(0, 1)`` (x is y and z
    divided by it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name} must be a number in (0, 1), got {value!r}")
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise InputError(f"{name} must be in (0, 1) (0.9 is typical), got {value!r}")
    return float(value)


def _averaging(lr, warmup_steps, r, weight_lr_power):
    """``averaging(count, weight_sum, lr_max) -> (rate, ckp1, weight_sum, lr_max)``.

    The warmed-up rate :math:`\\gamma_t = \\gamma\\min(1, (t+1)/T)`, the largest so far,
    and the averaging weight :math:`c_{t+1} = w_t / \\sum_{i \\le t} w_i` with
    :math:`w_t = (t+1)^r \\gamma_{\\max}^{p}` (0 while the sum is 0, as the package's
    ``ZeroDivisionError`` gives).
    """

    def averaging(count, weight_sum, lr_max):
        t = step_number(count)
        rate = lr_at(lr, count)
        if warmup_steps:
            rate = rate * jnp.where(count < warmup_steps, t / warmup_steps, 1.0)
        lr_max = jnp.maximum(rate, lr_max).astype(lr_max.dtype)
        weight = lr_max**weight_lr_power
        if r:
            weight = t**r * weight
        weight_sum = (weight_sum + weight).astype(lr_max.dtype)
        ckp1 = jnp.where(weight_sum == 0, 0.0, weight / jnp.where(weight_sum == 0, 1, weight_sum))
        return rate, ckp1, weight_sum, lr_max

    return averaging


def _moved(y, z, grads, rate, ckp1, beta):
    """``(y, z)`` after the step along ``grads``: ``y.lerp_(z, ckp1).add_(g, alpha)`` and
    ``z.sub_(g, alpha=rate)``, as the package rounds them."""
    alpha = rate * (beta * (1 - ckp1) - 1)
    new_y = jax.tree.map(lambda p, q, g: lerp(p, q, ckp1) + alpha * g, y, z, grads)
    new_z = jax.tree.map(lambda q, g: q - rate * g, z, grads)
    return cast_like(y, new_y), cast_like(z, new_z)


def _points(beta: float) -> dict[str, Any]:
    """``eval_params`` (``p.lerp_(z, 1 - 1/beta)``: y to x) and ``train_params``
    (``p.lerp_(z, 1 - beta)``: x to y), as the package's ``eval()`` and ``train()``."""

    def eval_params(params, state):
        return cast_like(
            params, jax.tree.map(lambda p, z: lerp(p, z, 1 - 1 / beta), params, state.z)
        )

    def train_params(params, state):
        return cast_like(params, jax.tree.map(lambda p, z: lerp(p, z, 1 - beta), params, state.z))

    return {"eval_params": eval_params, "train_params": train_params}


def _fresh(state_class, params, **moments):
    dtype = float_dtype(params)
    return state_class(
        count=zero_count(),
        z=jax.tree.map(jnp.copy, params),
        **moments,
        weight_sum=_tree.full((), 0, dtype),
        lr_max=_tree.full((), -1.0, dtype),  # the package's starting lr_max
    )


def schedule_free_sgd(
    lr: LearningRate = 1.0,
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    r: float = 0.0,
    weight_lr_power: float = 2.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Schedule-free SGD: SGD steps :math:`z`, evaluated at their running average :math:`x`.

    With :math:`g_t = \pm\nabla f(y_t) + \lambda y_t`, the warmed-up rate
    :math:`\gamma_t = \gamma \min(1, (t+1)/T)` and
    :math:`c_{t+1} = w_t / \sum_{i\le t} w_i`, :math:`w_t = (t+1)^r
    (\max_{i\le t}\gamma_i)^{p}`:

    .. math::

        z_{t+1} = z_t - \gamma_t g_t, \qquad
        x_{t+1} = (1 - c_{t+1})\, x_t + c_{t+1} z_{t+1}, \qquad
        y_{t+1} = (1 - \beta) z_{t+1} + \beta x_{t+1}

    from :math:`x_0 = y_0 = z_0`. The params are :math:`y` (the gradient's point); the
    point to evaluate and save is :math:`x = (y - (1-\beta) z) / \beta`, given by
    :func:`~descend.optim.base.eval_point` (``minimize`` and ``fit`` report it).

    Equals ``schedulefree.SGDScheduleFree`` (its ``lr``, ``momentum`` :math:`\beta`,
    ``weight_decay`` :math:`\lambda`, ``warmup_steps`` :math:`T`, ``r``,
    ``weight_lr_power`` :math:`p`), its ``eval()`` and ``train()`` included, with the
    same order of operations. Additions: ``maximize``, ``weight_decay_mask`` and ``lr``
    as a schedule (times the warmup).

    ``optax.contrib.schedule_free_sgd`` (``learning_rate``, ``b1`` = ``momentum``) is
    the same algorithm without ``r``, and differs with ``warmup_steps``: its SGD step
    reads the warmup schedule one step earlier (:math:`\gamma\, t/T`, so its first step
    leaves :math:`z` in place) than its averaging weights and than the package
    (:math:`\gamma (t+1)/T`); descend follows the package. Optax also recomputes
    :math:`y` from :math:`x` and :math:`z` at each step (equal up to rounding).

    Parameters
    ----------
    lr:
        Learning rate :math:`\gamma` (> 0) or a schedule. Default ``1.0`` (the package's).
    momentum:
        Interpolation :math:`\beta` in ``(0, 1)``. Default ``0.9``.
    weight_decay:
        L2 penalty :math:`\lambda \ge 0`, added to the gradient at :math:`y`.
    warmup_steps:
        Linear warmup of the rate over :math:`T \ge 0` steps. Default 0 (none).
    r:
        Power :math:`r \ge 0` of the polynomial weighting of the average. Default 0.
    weight_lr_power:
        Power :math:`p \ge 0` of the largest rate in the weights. Default 2.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`.

    Raises
    ------
    InputError
        A hyperparameter out of its range.

    References
    ----------
    Defazio et al., "The Road Less Scheduled", NeurIPS 2024;
    ``schedulefree.SGDScheduleFree`` (github.com/facebookresearch/schedule_free).

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.schedule_free_sgd(lr=0.25)
    >>> params, state = 1.0, opt.init(1.0)
    >>> for _ in range(2):  # on f(x) = x ** 2
    ...     params, state = opt.step(params, 2 * params, state)
    >>> round(float(params), 6), round(float(ds.optim.eval_point(opt, params, state)), 6)
    (0.3625, 0.375)
    """
    lr, warmup_steps = _check_common(lr, warmup_steps, r, weight_lr_power, weight_decay, maximize)
    momentum = _check_interpolation("momentum", momentum)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)
    averaging = _averaging(lr, warmup_steps, r, weight_lr_power)

    def init(params):
        return _fresh(ScheduleFreeSGDState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        rate, ckp1, weight_sum, lr_max = averaging(state.count, state.weight_sum, state.lr_max)
        grads = coupled_decay(signed(grads, maximize=maximize), params, weight_decay, mask)
        new_params, z = _moved(params, state.z, grads, rate, ckp1, momentum)
        return new_params, ScheduleFreeSGDState(state.count + 1, z, weight_sum, lr_max)

    hyperparams = {
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "warmup_steps": warmup_steps,
        "r": r,
        "weight_lr_power": weight_lr_power,
        "maximize": maximize,
    }
    optimizer = Optimizer("schedule_free_sgd", init, step, hyperparams, **_points(momentum))
    return with_decay_mask(optimizer, mask)


def schedule_free_adamw(
    lr: LearningRate = 0.0025,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    r: float = 0.0,
    weight_lr_power: float = 2.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Schedule-free AdamW: normalized steps :math:`z`, evaluated at their average :math:`x`.

    As :func:`schedule_free_sgd` with :math:`\beta = \beta_1`, the step direction
    Adam's without momentum, and the weight decay decoupled (added after the
    normalization, at :math:`y`):

    .. math::

        v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2, \qquad
        d_t = \frac{g_t}{\sqrt{v_t / (1-\beta_2^{t+1})} + \epsilon} + \lambda y_t, \\
        z_{t+1} = z_t - \gamma_t d_t, \qquad
        x_{t+1} = (1 - c_{t+1})\, x_t + c_{t+1} z_{t+1}, \qquad
        y_{t+1} = (1 - \beta_1) z_{t+1} + \beta_1 x_{t+1}

    with :math:`g_t = \pm\nabla f(y_t)` and :math:`\gamma_t`, :math:`c_{t+1}` as there.
    The params are :math:`y`; :func:`~descend.optim.base.eval_point` gives :math:`x`.

    Equals ``schedulefree.AdamWScheduleFree`` (same names: ``lr``, ``betas``, ``eps``,
    ``weight_decay``, ``warmup_steps``, ``r``, ``weight_lr_power``), its ``eval()`` and
    ``train()`` included. Additions: ``maximize``, ``weight_decay_mask``, ``lr`` as a
    schedule. :math:`1-\beta_2^{t+1}` is computed as ``-expm1`` (exact in float32 too).

    ``optax.contrib.schedule_free_adamw`` (``learning_rate``, ``b1``, ``b2`` =
    ``betas``) is the same algorithm without ``r``, and differs with ``warmup_steps``
    as :func:`schedule_free_sgd` says (its Adam step reads the warmup one step
    earlier); descend follows the package.

    Parameters
    ----------
    lr:
        Learning rate :math:`\gamma` (> 0) or a schedule. Default ``0.0025``.
    betas:
        :math:`(\beta_1, \beta_2)`: :math:`\beta_1` in ``(0, 1)`` interpolates,
        :math:`\beta_2` in ``[0, 1)`` averages the squared gradients. Default
        ``(0.9, 0.999)``.
    eps:
        :math:`\epsilon \ge 0`, outside the square root. Default ``1e-8``.
    weight_decay:
        Decoupled decay :math:`\lambda \ge 0`, at :math:`y`, times the rate.
    warmup_steps, r, weight_lr_power:
        As in :func:`schedule_free_sgd`.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`.

    Raises
    ------
    InputError
        A hyperparameter out of its range.

    References
    ----------
    Defazio et al., "The Road Less Scheduled", NeurIPS 2024;
    ``schedulefree.AdamWScheduleFree`` (github.com/facebookresearch/schedule_free).

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.schedule_free_adamw(lr=0.1)
    >>> params, state = 1.0, opt.init(1.0)
    >>> for _ in range(2):  # on f(x) = x ** 2
    ...     params, state = opt.step(params, 2 * params, state)
    >>> round(float(params), 6), round(float(ds.optim.eval_point(opt, params, state)), 6)
    (0.847965, 0.852696)
    """
    lr, warmup_steps = _check_common(lr, warmup_steps, r, weight_lr_power, weight_decay, maximize)
    beta1, beta2 = check_betas(betas)
    beta1 = _check_interpolation("betas[0]", beta1)
    check_nonnegative(eps=eps)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)
    averaging = _averaging(lr, warmup_steps, r, weight_lr_power)

    def init(params):
        return _fresh(ScheduleFreeAdamWState, params, exp_avg_sq=_tree.zeros_like(params))

    def step(params, grads, state, *, value=None, value_fn=None):
        rate, ckp1, weight_sum, lr_max = averaging(state.count, state.weight_sum, state.lr_max)
        grads = signed(grads, maximize=maximize)
        exp_avg_sq = square_average(state.exp_avg_sq, grads, beta2)
        correction = bias_correction(beta2, step_number(state.count))
        directions = jax.tree.map(
            lambda g, v: g / (jnp.sqrt(v / correction) + eps), grads, exp_avg_sq
        )
        if nonzero(weight_decay):
            directions = jax.tree.map(
                lambda d, p, decayed: d + weight_decay * p if decayed else d,
                directions,
                params,
                decayed_leaves(mask, params),
            )
        new_params, z = _moved(params, state.z, directions, rate, ckp1, beta1)
        new_state = ScheduleFreeAdamWState(state.count + 1, z, exp_avg_sq, weight_sum, lr_max)
        return new_params, new_state

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "weight_decay": weight_decay,
        "warmup_steps": warmup_steps,
        "r": r,
        "weight_lr_power": weight_lr_power,
        "maximize": maximize,
    }
    optimizer = Optimizer("schedule_free_adamw", init, step, hyperparams, **_points(beta1))
    return with_decay_mask(optimizer, mask)
