"""Per-coordinate adaptive step sizes from running sums of squared gradients.

Adagrad, RMSprop and Adadelta, each with ``torch.optim``'s names, defaults and
update order (single-tensor code path, ``capturable=False``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend import _tree
from descend.optim._common import (
    check_decay_mask,
    check_flags,
    check_nonnegative,
    check_unit_interval,
    with_decay_mask,
)
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import (
    add_updates,
    descent_grads,
    fresh_state,
    lerp_average,
    nonzero,
    root_plus_eps,
    scaled_ratio,
    square_average,
    step_number,
    zeros_if,
)


class AdagradState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    sum: Any  # running sum of squared gradients, started at initial_accumulator_value


class RMSpropState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    square_avg: Any
    grad_avg: Any  # None unless centered
    momentum_buffer: Any  # None unless momentum > 0


class AdadeltaState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    square_avg: Any
    acc_delta: Any


def adagrad(
    lr: LearningRate = 1e-2,
    *,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Adagrad: steps scaled by the root of the sum of all past squared gradients.

    With :math:`g_t = \pm\nabla f(x_t) + \lambda x_t` (coupled L2 ``weight_decay``
    :math:`\lambda`; minus when maximizing) and :math:`t` counting from 1:

    .. math::

        \tilde\eta_t = \frac{\eta_t}{1 + (t - 1)\,\delta}, \qquad
        s_t = s_{t-1} + g_t^2, \qquad
        x_{t+1} = x_t - \tilde\eta_t \frac{g_t}{\sqrt{s_t} + \epsilon}

    where :math:`\delta` is ``lr_decay`` and :math:`s_0` is ``initial_accumulator_value``.
    ``eps`` is added outside the square root, as in PyTorch.

    Differences from ``optax.adagrad``: Optax defaults to
    ``initial_accumulator_value=0.1`` and ``eps=1e-7``, puts ``eps`` inside the
    square root, and has no ``lr_decay`` or ``weight_decay``.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule ``f(count) -> lr``. Default ``1e-2``.
    lr_decay:
        :math:`\delta \ge 0`, the learning rate decays as :math:`1 / (1 + (t-1)\delta)`.
    weight_decay:
        Coupled L2 penalty :math:`\lambda \ge 0` added to the gradient.
    initial_accumulator_value:
        Starting value :math:`s_0 \ge 0` of the sum of squares.
    eps:
        :math:`\epsilon \ge 0` added to the denominator. Default ``1e-10``.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"`` (the leaves named ``w``, not the biases of descend's models), a
        pytree of ``True`` / ``False``, or a function (Optax's ``mask``).

    References
    ----------
    Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 2011; ``torch.optim.Adagrad``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.adagrad(lr=0.5)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    0.5
    """
    lr = check_lr(lr)
    check_nonnegative(
        lr_decay=lr_decay,
        weight_decay=weight_decay,
        initial_accumulator_value=initial_accumulator_value,
        eps=eps,
    )
    check_flags(maximize=maximize)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        return fresh_state(
            AdagradState, params, sum=_tree.full_like(params, initial_accumulator_value)
        )

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = descent_grads(
            params, grads, maximize=maximize, weight_decay=weight_decay, mask=mask
        )
        t = step_number(state.count)
        clr = lr_at(lr, state.count) / (1 + (t - 1) * lr_decay)
        sums = jax.tree.map(lambda s, g: s + g * g, state.sum, grads)
        new_params = add_updates(params, scaled_ratio(-clr, grads, root_plus_eps(sums, eps)))
        return new_params, AdagradState(count=state.count + 1, sum=sums)

    hyperparams = {
        "lr": lr,
        "lr_decay": lr_decay,
        "weight_decay": weight_decay,
        "initial_accumulator_value": initial_accumulator_value,
        "eps": eps,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("adagrad", init, step, hyperparams), mask)


def rmsprop(
    lr: LearningRate = 1e-2,
    *,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""RMSprop: steps scaled by a running root-mean-square of the gradient.

    With :math:`g_t = \pm\nabla f(x_t) + \lambda x_t` (coupled L2 ``weight_decay``):

    .. math::

        v_t = \alpha v_{t-1} + (1 - \alpha) g_t^2, \qquad
        \bar g_t = \alpha \bar g_{t-1} + (1 - \alpha) g_t \ \text{(centered)} \\
        d_t = \sqrt{v_t - \bar g_t^2} + \epsilon \ \text{(centered)}, \quad
        d_t = \sqrt{v_t} + \epsilon \ \text{(otherwise)} \\
        b_t = \mu b_{t-1} + g_t / d_t, \quad x_{t+1} = x_t - \eta_t b_t
        \ \text{(momentum } \mu > 0\text{)}, \quad
        x_{t+1} = x_t - \eta_t g_t / d_t \ \text{(otherwise)}

    with :math:`v_0 = \bar g_0 = b_0 = 0`; ``eps`` is outside the square root.

    Differences from ``optax.rmsprop``: Optax's decay is called ``decay`` (default
    0.9, against ``alpha=0.99`` here), puts ``eps`` inside the square root by default
    (``eps_in_sqrt=True``), adds momentum as a separate trace of the scaled update
    and has no weight decay.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-2``.
    alpha:
        Smoothing constant :math:`\alpha \in [0, 1]`. Default ``0.99``.
    eps:
        :math:`\epsilon \ge 0` added to the denominator. Default ``1e-8``.
    weight_decay:
        Coupled L2 penalty :math:`\lambda \ge 0`.
    momentum:
        Momentum factor :math:`\mu \ge 0`.
    centered:
        Divide by an estimate of the gradient's standard deviation instead of its
        root mean square.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"`` (the leaves named ``w``, not the biases of descend's models), a
        pytree of ``True`` / ``False``, or a function (Optax's ``mask``).

    References
    ----------
    Hinton, Srivastava & Swersky, *Neural Networks for Machine Learning*, lecture 6e
    (2012); Graves, "Generating Sequences With Recurrent Neural Networks" (2013) for
    the centered variant; ``torch.optim.RMSprop``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.rmsprop(lr=0.01)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 4)
    0.9
    """
    lr = check_lr(lr)
    # PyTorch only asks alpha >= 0; beyond 1 the average of squares can turn negative.
    check_unit_interval("alpha", alpha, closed_high=True)
    check_nonnegative(eps=eps, weight_decay=weight_decay, momentum=momentum)
    check_flags(centered=centered, maximize=maximize)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        return fresh_state(
            RMSpropState,
            params,
            grad_avg=zeros_if(centered, params),
            momentum_buffer=zeros_if(nonzero(momentum), params),
        )

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = descent_grads(
            params, grads, maximize=maximize, weight_decay=weight_decay, mask=mask
        )
        square_avg = square_average(state.square_avg, grads, alpha)
        grad_avg, variance = state.grad_avg, square_avg
        if centered:
            grad_avg = lerp_average(grad_avg, grads, alpha)
            variance = jax.tree.map(lambda v, a: v + -1 * a * a, square_avg, grad_avg)
        denom = root_plus_eps(variance, eps)
        rate = lr_at(lr, state.count)
        buffer = state.momentum_buffer
        if nonzero(momentum):
            buffer = jax.tree.map(lambda b, g, d: b * momentum + g / d, buffer, grads, denom)
            updates = _tree.scale(-rate, buffer)
        else:
            updates = scaled_ratio(-rate, grads, denom)
        new_state = RMSpropState(state.count + 1, square_avg, grad_avg, buffer)
        return add_updates(params, updates), new_state

    hyperparams = {
        "lr": lr,
        "alpha": alpha,
        "eps": eps,
        "weight_decay": weight_decay,
        "momentum": momentum,
        "centered": centered,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("rmsprop", init, step, hyperparams), mask)


def adadelta(
    lr: LearningRate = 1.0,
    *,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Adadelta: steps whose units match the parameters', from two running averages.

    With :math:`g_t = \pm\nabla f(x_t) + \lambda x_t` (coupled L2 ``weight_decay``):

    .. math::

        v_t = \rho v_{t-1} + (1 - \rho) g_t^2, \qquad
        \Delta_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t \\
        u_t = \rho u_{t-1} + (1 - \rho) \Delta_t^2, \qquad
        x_{t+1} = x_t - \eta_t \Delta_t

    with :math:`v_0 = u_0 = 0`. Here ``eps`` is inside both square roots (it is what
    makes the first steps nonzero).

    Differences from ``optax.adadelta``: none in the update (Optax also adds the
    weight decay to the gradient, and its ``weight_decay_mask`` is this one); Optax's
    default ``learning_rate=None`` means no scaling, like ``lr=1.0`` here.

    Parameters
    ----------
    lr:
        Coefficient :math:`\eta` (> 0) scaling :math:`\Delta_t`, or a schedule. Default ``1.0``.
    rho:
        Decay rate :math:`\rho \in [0, 1]` of both running averages. Default ``0.9``.
    eps:
        :math:`\epsilon \ge 0` inside the square roots. Default ``1e-6``.
    weight_decay:
        Coupled L2 penalty :math:`\lambda \ge 0`.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"`` (the leaves named ``w``, not the biases of descend's models), a
        pytree of ``True`` / ``False``, or a function (Optax's ``mask``).

    References
    ----------
    Zeiler, "ADADELTA: An Adaptive Learning Rate Method" (2012);
    ``torch.optim.Adadelta``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.adadelta()
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    0.996838
    """
    lr = check_lr(lr)
    check_unit_interval("rho", rho, closed_high=True)
    check_nonnegative(eps=eps, weight_decay=weight_decay)
    check_flags(maximize=maximize)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        return fresh_state(AdadeltaState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = descent_grads(
            params, grads, maximize=maximize, weight_decay=weight_decay, mask=mask
        )
        square_avg = square_average(state.square_avg, grads, rho)
        deltas = jax.tree.map(
            lambda u, v, g: jnp.sqrt(u + eps) / jnp.sqrt(v + eps) * g,
            state.acc_delta,
            square_avg,
            grads,
        )
        acc_delta = square_average(state.acc_delta, deltas, rho)
        updates = _tree.scale(-lr_at(lr, state.count), deltas)
        return add_updates(params, updates), AdadeltaState(state.count + 1, square_avg, acc_delta)

    hyperparams = {
        "lr": lr,
        "rho": rho,
        "eps": eps,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("adadelta", init, step, hyperparams), mask)
