"""MoMo and MoMo-Adam: momentum with a Polyak-type step from the loss value (as Optax).

Like :func:`~descend.optim.polyak.polyak_sgd` they read the objective's value at the
params (the ``value`` the engine passes to every ``step``; the current batch's mean loss
in ``ds.fit``), need no extra evaluation (``needs_value_fn`` is False), and a ``step``
called without ``value`` raises :class:`~descend.errors.InputError`. Formulas and their
order of floating-point operations are Optax's (``optax.contrib.momo``,
``optax.contrib.momo_adam``), so trajectories agree to rounding; hyperparameters carry
the package's names (``lr``, ``betas``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend import _tree
from descend.optim._common import (
    check_betas,
    check_flags,
    check_nonnegative,
    check_unit_interval,
)
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import add_updates, float_dtype, fresh_state, signed
from descend.optim.polyak import (
    TINY,
    descent_value,
    finite_number,
    inner_product,
    squared_norm,
)


class MomoState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any  # momentum d of the gradients
    barf: jax.Array  # moving average of the loss values
    gamma: jax.Array  # moving average of <g, x>
    lower_bound: jax.Array  # the (estimated) lower bound of the loss


class MomoAdamState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any
    exp_avg_sq: Any  # Adam's second moment
    barf: jax.Array
    gamma: jax.Array
    lower_bound: jax.Array


def _check_momo(lr, weight_decay, lower_bound, adapt_lower_bound, maximize):
    lr = check_lr(lr)
    check_nonnegative(weight_decay=weight_decay)
    check_flags(adapt_lower_bound=adapt_lower_bound, maximize=maximize)
    return lr, finite_number("lower_bound", lower_bound)


def _momo_state(state_class, params, lower_bound):
    dtype = float_dtype(params)
    return fresh_state(
        state_class, params, barf=_tree.full((), 0, dtype), gamma=_tree.full((), 0, dtype),
        lower_bound=_tree.full((), lower_bound, dtype),
    )  # fmt: skip


def momo(
    lr: LearningRate = 1.0,
    *,
    beta: float = 0.9,
    lower_bound: float = 0.0,
    weight_decay: float = 0.0,
    adapt_lower_bound: bool = False,
    maximize: bool = False,
) -> Optimizer:
    r"""MoMo: SGD with momentum whose step is capped by a Polyak-type model of the loss.

    With :math:`g_t = \pm\nabla f(x_t)`, :math:`f_t = \pm f(x_t)`, :math:`\beta_t = 0`
    at the first step and :math:`\beta` after, :math:`\alpha_t` = ``lr`` and
    :math:`\lambda` = ``weight_decay``:

    .. math::

        d_t = \beta_t d_{t-1} + (1-\beta_t) g_t, \quad
        \bar f_t = \beta_t \bar f_{t-1} + (1-\beta_t) f_t, \quad
        \gamma_t = \beta_t \gamma_{t-1} + (1-\beta_t) \langle g_t, x_t\rangle \\
        \tau_t = \min\left\{\alpha_t, \frac{\big((1+\alpha_t\lambda)(\bar f_t - h_t
            - \gamma_t) + \langle d_t, x_t\rangle\big)_+}{\lVert d_t\rVert^2}\right\},
        \qquad
        x_{t+1} = x_t - \frac{\alpha_t\lambda}{1+\alpha_t\lambda} x_t - \tau_t d_t

    with :math:`h_t` = ``lower_bound`` (or, with ``adapt_lower_bound``, an estimate
    updated from it at each step, never below ``lower_bound``), and :math:`\tau_t = 0`
    where :math:`\lVert d_t\rVert^2` is below the float64 epsilon. It reads the loss
    value, which ``ds.minimize`` and ``ds.fit`` pass; by hand, ``step(...,
    value=f(params))``.

    Matches ``optax.contrib.momo`` (its ``learning_rate`` is ``lr``), with its defaults.
    ``maximize`` is an addition: it descends :math:`-f`, whose lower bound is then
    ``lower_bound``.

    Parameters
    ----------
    lr:
        :math:`\alpha > 0`, the largest step, or a schedule. Default ``1.0`` (Optax's;
        MoMo is meant to take a large one).
    beta:
        Momentum :math:`\beta \in [0, 1)`. Default ``0.9``.
    lower_bound:
        :math:`h`, a lower bound of the loss (0 for most losses). Default ``0.0``.
    weight_decay:
        :math:`\lambda \ge 0`. Default ``0.0``.
    adapt_lower_bound:
        Estimate the lower bound on the fly, starting from ``lower_bound``.
    maximize:
        Ascend instead of descend.

    Raises
    ------
    InputError
        A hyperparameter out of range; at ``step``, a missing ``value``.

    References
    ----------
    Schaipp, Ohana, Eickenberg, Defazio and Gower, "MoMo: Momentum Models for
    Adaptive Learning Rates", ICML 2024; ``optax.contrib.momo``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.momo()
    >>> x = 2.0  # f(x) = x**2: the model reaches 0 in one step
    >>> float(opt.step(x, 4.0, opt.init(x), value=4.0)[0])
    1.0
    """
    lr, lower_bound = _check_momo(lr, weight_decay, lower_bound, adapt_lower_bound, maximize)
    beta = check_unit_interval("beta", beta)

    def init(params):
        return _momo_state(MomoState, params, lower_bound)

    def step(params, grads, state, *, value=None, value_fn=None):
        value = descent_value(value, maximize=maximize, name="momo")
        grads = signed(grads, maximize=maximize)
        count = state.count
        bt = jnp.where(count == 0, 0.0, beta)
        barf = bt * state.barf + (1 - bt) * jnp.asarray(value, dtype=state.barf.dtype)
        exp_avg = jax.tree.map(lambda d, g: bt * d + (1 - bt) * g, state.exp_avg, grads)
        gamma = bt * state.gamma + (1 - bt) * inner_product(grads, params)
        exp_avg_norm = squared_norm(exp_avg)
        iprod = inner_product(exp_avg, params)
        alpha = lr_at(lr, count)
        decay = 1 + alpha * weight_decay
        this_lb = state.lower_bound
        if adapt_lower_bound:
            cap = decay * (barf - gamma) + iprod
            this_lb = jnp.where(
                cap < decay * state.lower_bound,
                jnp.maximum(cap / (2 * decay), lower_bound),
                state.lower_bound,
            )
        t1 = jnp.maximum(decay * (barf - this_lb - gamma) + iprod, 0.0) / exp_avg_norm
        t1 = jnp.where(exp_avg_norm <= TINY, 0.0, t1)
        tau = jnp.minimum(alpha, t1)
        updates = jax.tree.map(
            lambda d, p: -(alpha * weight_decay) / (1 + alpha * weight_decay) * p - tau * d,
            exp_avg,
            params,
        )
        new_lb = state.lower_bound
        if adapt_lower_bound:
            new_lb = jnp.maximum((barf + iprod - gamma) - (1 / 2) * tau * exp_avg_norm, lower_bound)
        new_state = MomoState(count + 1, exp_avg, barf, gamma, new_lb)
        return add_updates(params, updates), new_state

    hyperparams = {
        "lr": lr,
        "beta": beta,
        "lower_bound": lower_bound,
        "weight_decay": weight_decay,
        "adapt_lower_bound": adapt_lower_bound,
        "maximize": maximize,
    }
    return Optimizer("momo", init, step, hyperparams)


def momo_adam(
    lr: LearningRate = 1e-2,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    lower_bound: float = 0.0,
    weight_decay: float = 0.0,
    adapt_lower_bound: bool = False,
    maximize: bool = False,
) -> Optimizer:
    r"""MoMo-Adam: Adam(W) whose step is capped by a Polyak-type model of the loss.

    With :math:`g_t, f_t, \alpha_t, \lambda, h_t` as in :func:`momo`,
    :math:`c_1 = 1-\beta_1^t`, :math:`c_2 = 1-\beta_2^t`:

    .. math::

        d_t = \beta_1 d_{t-1} + (1-\beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad
        D_t = \epsilon + \sqrt{v_t / c_2} \\
        \bar f_t = \beta_1 \bar f_{t-1} + (1-\beta_1) f_t, \quad
        \gamma_t = \beta_1 \gamma_{t-1} + (1-\beta_1) \langle g_t, x_t\rangle \\
        \tau_t = \min\left\{\frac{\alpha_t}{c_1}, \frac{\big((1+\alpha_t\lambda)
            (\bar f_t - c_1 h_t - \gamma_t) + \langle d_t, x_t\rangle\big)_+}
            {\langle d_t, d_t / D_t\rangle}\right\}, \qquad
        x_{t+1} = x_t - \frac{\alpha_t\lambda}{1+\alpha_t\lambda} x_t - \tau_t\,\frac{d_t}{D_t}

    It reads the loss value, which ``ds.minimize`` and ``ds.fit`` pass; by hand,
    ``step(..., value=f(params))``.

    Matches ``optax.contrib.momo_adam`` (its ``learning_rate`` is ``lr``, ``b1``,
    ``b2`` are ``betas``), with its defaults. ``maximize`` is an addition: it descends
    :math:`-f`, whose lower bound is then ``lower_bound``.

    Parameters
    ----------
    lr:
        :math:`\alpha > 0`, or a schedule. Default ``1e-2`` (Optax's).
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.9, 0.999)``.
    eps:
        :math:`\epsilon \ge 0`, outside the root. Default ``1e-8``.
    lower_bound:
        :math:`h`, a lower bound of the loss. Default ``0.0``.
    weight_decay:
        :math:`\lambda \ge 0`, decoupled as in AdamW. Default ``0.0``.
    adapt_lower_bound:
        Estimate the lower bound on the fly, starting from ``lower_bound``.
    maximize:
        Ascend instead of descend.

    Raises
    ------
    InputError
        A hyperparameter out of range; at ``step``, a missing ``value``.

    References
    ----------
    Schaipp et al., "MoMo: Momentum Models for Adaptive Learning Rates", ICML 2024;
    ``optax.contrib.momo_adam``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.momo_adam(lr=0.1)
    >>> x = 2.0  # tau is capped at lr / (1 - beta1) = 1, and d / D = 0.4 / 4
    >>> round(float(opt.step(x, 4.0, opt.init(x), value=4.0)[0]), 4)
    1.9
    """
    lr, lower_bound = _check_momo(lr, weight_decay, lower_bound, adapt_lower_bound, maximize)
    beta1, beta2 = check_betas(betas)
    check_nonnegative(eps=eps)

    def init(params):
        return _momo_state(MomoAdamState, params, lower_bound)

    def step(params, grads, state, *, value=None, value_fn=None):
        value = descent_value(value, maximize=maximize, name="momo_adam")
        grads = signed(grads, maximize=maximize)
        count = state.count
        count_inc = count + 1
        barf = beta1 * state.barf + (1 - beta1) * jnp.asarray(value, dtype=state.barf.dtype)
        exp_avg = jax.tree.map(lambda d, g: beta1 * d + (1 - beta1) * g, state.exp_avg, grads)
        exp_avg_sq = jax.tree.map(
            lambda v, g: beta2 * v + (1 - beta2) * g * g, state.exp_avg_sq, grads
        )
        bc2 = jnp.asarray(1 - beta2**count_inc, dtype=barf.dtype)
        precond = jax.tree.map(lambda v: eps + jnp.sqrt(v / bc2), exp_avg_sq)
        weighted = jax.tree.map(lambda d, pre: d / pre, exp_avg, precond)
        exp_avg_norm = inner_product(exp_avg, weighted)
        gamma = beta1 * state.gamma + (1 - beta1) * inner_product(grads, params)
        iprod = inner_product(exp_avg, params)
        alpha = lr_at(lr, count)
        bc1 = jnp.asarray(1 - beta1**count_inc, dtype=barf.dtype)
        decay = 1 + alpha * weight_decay
        this_lb = state.lower_bound
        if adapt_lower_bound:
            cap = decay * (barf - gamma) + iprod
            this_lb = jnp.where(
                cap < decay * bc1 * state.lower_bound,
                jnp.maximum(cap / (2 * bc1 * decay), lower_bound),
                state.lower_bound,
            )
        t1 = jnp.maximum(decay * (barf - bc1 * this_lb - gamma) + iprod, 0.0) / exp_avg_norm
        t1 = jnp.where(exp_avg_norm <= TINY, 0.0, t1)
        tau = jnp.minimum(alpha / bc1, t1)
        updates = jax.tree.map(
            lambda d, pre, p: (
                -(alpha * weight_decay) / (1 + alpha * weight_decay) * p - tau * d / pre
            ),
            exp_avg,
            precond,
            params,
        )
        new_lb = state.lower_bound
        if adapt_lower_bound:
            new_lb = ((barf + iprod - gamma) - (1 / 2) * tau * exp_avg_norm) / bc1
            new_lb = jnp.maximum(new_lb, lower_bound)
        new_state = MomoAdamState(count_inc, exp_avg, exp_avg_sq, barf, gamma, new_lb)
        return add_updates(params, updates), new_state

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "lower_bound": lower_bound,
        "weight_decay": weight_decay,
        "adapt_lower_bound": adapt_lower_bound,
        "maximize": maximize,
    }
    return Optimizer("momo_adam", init, step, hyperparams)
