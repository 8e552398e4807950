"""Two classic methods from before deep learning: Rprop and averaged SGD.

Both follow ``torch.optim``'s single-tensor code path (``capturable=False``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend import _tree
from descend.errors import InputError, is_traced
from descend.optim._common import (
    check_decay_mask,
    check_flags,
    check_nonnegative,
    check_pair,
    with_decay_mask,
)
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import (
    add_updates,
    descent_grads,
    float_dtype,
    fresh_state,
    signed,
    step_number,
    zero_count,
)


class RpropState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    prev: Any  # the previous gradient, zeroed where its sign flipped
    step_size: Any  # per-coordinate step sizes


class ASGDState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    eta: jax.Array  # the step size of the next update
    mu: jax.Array  # the averaging weight of the next update
    ax: Any  # the averaged iterate: the answer ASGD returns


def rprop(
    lr: float = 1e-2,
    *,
    etas: tuple[float, float] = (0.5, 1.2),
    step_sizes: tuple[float, float] = (1e-6, 50.0),
    maximize: bool = False,
) -> Optimizer:
    r"""Rprop: per-coordinate step sizes that grow while the gradient keeps its sign.

    With :math:`g_t = \pm\nabla f(x_t)`, :math:`s_t = \mathrm{sign}(g_t\, g_{t-1})`
    and per-coordinate step sizes :math:`\Delta` (started at ``lr``):

    .. math::

        \Delta_t = \mathrm{clip}\big(\Delta_{t-1} \cdot
            \{\eta^+ \text{ if } s_t > 0;\ \eta^- \text{ if } s_t < 0;\ 1 \text{ if } s_t = 0\},
            \ \Delta_{\min},\ \Delta_{\max}\big) \\
        g_t \leftarrow 0 \text{ where } s_t < 0, \qquad
        x_{t+1} = x_t - \mathrm{sign}(g_t)\, \Delta_t

    The gradient kept for the next comparison is the zeroed one, so after a sign
    flip the step size is left alone once (as in PyTorch).

    Differences from ``optax.rprop``: Optax names the factors ``eta_minus``,
    ``eta_plus`` and the bounds ``min_step_size``, ``max_step_size``, and does not
    clip the step size where :math:`s_t = 0`. Rprop ignores the gradient's size, so
    it is a full-batch method.

    Parameters
    ----------
    lr:
        Initial step size (> 0). A schedule is not accepted: Rprop sets its own steps.
        Default ``1e-2``.
    etas:
        :math:`(\eta^-, \eta^+)` with :math:`0 < \eta^- < 1 < \eta^+`. Default ``(0.5, 1.2)``.
    step_sizes:
        :math:`(\Delta_{\min}, \Delta_{\max})` with :math:`0 \le \Delta_{\min} \le
        \Delta_{\max}`. Default ``(1e-6, 50)``.
    maximize:
        Ascend instead of descend.

    References
    ----------
    Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation
    Learning: The RPROP Algorithm", ICNN 1993; ``torch.optim.Rprop``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.rprop(lr=0.1)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    0.9
    """
    if callable(lr):
        raise InputError(
            "rprop's lr is the initial step size and must be a number, got a schedule; "
            "Rprop adapts its step sizes itself"
        )
    lr = check_lr(lr)
    eta_minus, eta_plus = check_pair("etas", etas)
    # Traced values (a sweep, descend.optim.injection) were checked when their
    # configuration was built concretely.
    if not any(map(is_traced, (eta_minus, eta_plus))) and not (
        0.0 < eta_minus < 1.0 < eta_plus < float("inf")
    ):
        raise InputError(
            f"etas must be (eta_minus, eta_plus) with 0 < eta_minus < 1 < eta_plus, got {etas!r}"
        )
    step_min, step_max = check_pair("step_sizes", step_sizes)
    if not any(map(is_traced, (step_min, step_max))) and not (
        0.0 <= step_min <= step_max < float("inf")
    ):
        raise InputError(
            f"step_sizes must be (min, max) with 0 <= min <= max, both finite, got {step_sizes!r}"
        )
    check_flags(maximize=maximize)

    def init(params):
        return fresh_state(RpropState, params, step_size=_tree.full_like(params, lr))

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        signs = jax.tree.map(lambda g, prev: jnp.sign(g * prev), grads, state.prev)
        factors = jax.tree.map(
            lambda s: jnp.where(s > 0, eta_plus, jnp.where(s < 0, eta_minus, 1.0)), signs
        )
        step_size = jax.tree.map(
            lambda size, f: jnp.clip(size * f, step_min, step_max), state.step_size, factors
        )
        # After a sign flip the gradient counts as zero: no step, and no comparison next.
        grads = jax.tree.map(lambda g, s: jnp.where(s < 0, jnp.zeros_like(g), g), grads, signs)
        updates = jax.tree.map(lambda g, size: -jnp.sign(g) * size, grads, step_size)
        new_state = RpropState(count=state.count + 1, prev=grads, step_size=step_size)
        return add_updates(params, updates), new_state

    hyperparams = {
        "lr": lr,
        "etas": (eta_minus, eta_plus),
        "step_sizes": (step_min, step_max),
        "maximize": maximize,
    }
    return Optimizer("rprop", init, step, hyperparams)


def asgd(
    lr: LearningRate = 1e-2,
    *,
    lambd: float = 1e-4,
    alpha: float = 0.75,
    t0: float = 1e6,
    weight_decay: float = 0.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Averaged SGD: decaying SGD steps plus a running average of the iterates.

    With :math:`g_t = \pm\nabla f(x_t) + \lambda_2 x_t` (coupled L2 ``weight_decay``
    :math:`\lambda_2`), :math:`\eta_1 = ` ``lr``, :math:`\mu_1 = 1` and :math:`t`
    counting from 1:

    .. math::

        x_{t+1} = (1 - \lambda \eta_t)\, x_t - \eta_t g_t, \qquad
        \bar x_{t+1} = \bar x_t + \mu_t (x_{t+1} - \bar x_t) \\
        \eta_{t+1} = \frac{\mathrm{lr}}{(1 + \lambda\, \mathrm{lr}\, t)^{\alpha}}, \qquad
        \mu_{t+1} = \frac{1}{\max(1,\ t - t_0)}

    so the average :math:`\bar x` copies the iterate until step :math:`t_0` and then
    averages the iterates since. The parameters returned by ``step`` are the SGD
    iterates :math:`x_t`; **the averaged point is** ``state.ax``, kept in the state as
    PyTorch keeps it in ``optimizer.state[p]["ax"]`` (read it at the end of a run:
    it is the estimate ASGD is designed to return). ``state.eta`` and ``state.mu``
    are the step size and averaging weight of the next update.

    With a schedule as ``lr``, :math:`\eta_{t+1}` uses the rate of step :math:`t`, as
    a PyTorch scheduler stepped after each update would. Optax has no ASGD.

    Parameters
    ----------
    lr:
        Learning rate (> 0) or a schedule. Default ``1e-2``.
    lambd:
        Decay term :math:`\lambda \ge 0`. Default ``1e-4``.
    alpha:
        Power :math:`\alpha \ge 0` of the step-size decay. Default ``0.75``.
    t0:
        Step :math:`t_0 \ge 0` at which averaging starts. Default ``1e6``.
    weight_decay:
        Coupled L2 penalty :math:`\lambda_2 \ge 0`.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"`` (the leaves named ``w``, not the biases of descend's models), a
        pytree of ``True`` / ``False``, or a function (Optax's ``mask``).

    References
    ----------
    Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging",
    SIAM J. Control Optim. 1992; Bottou, "Stochastic Gradient Descent Tricks" (2012);
    ``torch.optim.ASGD``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.asgd(lr=0.1, lambd=0.0)
    >>> params, state = opt.step(1.0, 2.0, opt.init(1.0))
    >>> round(float(params), 6), round(float(state.ax), 6)
    (0.8, 0.8)
    """
    lr = check_lr(lr)
    check_nonnegative(lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay)
    check_flags(maximize=maximize)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        dtype = float_dtype(params)
        if callable(lr):
            eta = jnp.asarray(lr_at(lr, zero_count()), dtype)
        else:
            eta = _tree.full((), lr, dtype)
        return fresh_state(
            ASGDState,
            params,
            eta=eta,
            mu=_tree.full((), 1, dtype),
        )

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = descent_grads(
            params, grads, maximize=maximize, weight_decay=weight_decay, mask=mask
        )
        eta, mu = state.eta, state.mu

        def sgd_step(p, g):
            rate = eta.astype(jnp.result_type(p))
            return p * (1 - lambd * rate) + -rate * g

        def average(a, p):
            weight = mu.astype(jnp.result_type(p))
            return jnp.where(weight == 1, p, a + (p - a) * weight)

        new_params = jax.tree.map(sgd_step, params, grads)
        ax = jax.tree.map(average, state.ax, new_params)
        t = step_number(state.count)
        rate = lr_at(lr, state.count)
        new_state = ASGDState(
            count=state.count + 1,
            eta=(rate / (1 + lambd * rate * t) ** alpha).astype(eta.dtype),
            mu=(1 / jnp.maximum(1.0, t - t0)).astype(mu.dtype),
            ax=ax,
        )
        return new_params, new_state

    hyperparams = {
        "lr": lr,
        "lambd": lambd,
        "alpha": alpha,
        "t0": t0,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("asgd", init, step, hyperparams), mask)
