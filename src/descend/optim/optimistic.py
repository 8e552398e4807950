"""Optimistic methods from Optax: the step extrapolated from the previous one.

``optimistic_gradient_descent`` and ``optimistic_adam`` step along
:math:`(\alpha + \beta) r_t - \beta r_{t-1}`, where :math:`r_t` is the gradient (or
Adam's direction): an approximation of the extragradient method with one gradient per
step, which converges in the last iterate on min-max games where plain descent-ascent
cycles. ``torch.optim`` has neither. The hyperparameters are named as in the rest of
the package (``lr``, ``betas``) and each docstring maps Optax's names; the update
formulas and their order of floating-point operations are Optax's, so trajectories
agree with the Optax aliases to rounding.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend.optim._common import check_betas, check_flags, check_nonnegative, nonnegative_number
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import (
    add_updates,
    fresh_state,
    optax_average,
    optax_debias,
    optax_nesterov_debias,
    signed,
)
from descend.optim.sgd_variants import descent


class OptimisticState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    previous_gradient: Any  # g_{t-1}


class OptimisticAdamState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any  # first moment m
    exp_avg_sq: Any  # second moment v
    previous_direction: Any  # r_{t-1}, Adam's direction at the previous step


def _optimistic(directions, previous, count, alpha, beta):
    """``(alpha + beta) r_t - beta r_{t-1}``, with ``r_0 = r_1``, as Optax forms it."""
    first = count == 0

    def combine(r, prev):
        prev = jnp.where(first, r, prev)
        return (alpha + beta) * r - beta * prev

    return jax.tree.map(combine, directions, previous)


def optimistic_gradient_descent(
    lr: LearningRate = 1e-3,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    maximize: bool = False,
) -> Optimizer:
    r"""Optimistic gradient descent: a step along the gradient extrapolated from the last one.

    .. math::

        x_{t+1} = x_t - \eta_t \big((\alpha + \beta) g_t - \beta g_{t-1}\big)

    with :math:`g_0 = g_1` (the first step is :math:`\alpha g_1`) and
    :math:`g_t = \pm\nabla f(x_t)`. With :math:`\alpha = \beta = 1` it is
    :math:`2 g_t - g_{t-1}`, an approximation of the extragradient method that needs
    one gradient per step; it converges in the last iterate on bilinear min-max
    games, where gradient descent-ascent cycles.

    Matches ``optax.optimistic_gradient_descent``. Differences: Optax's
    ``learning_rate`` has no default (``1e-3`` here, as :func:`~descend.optim.sgd`);
    ``maximize`` is an addition. Optax types ``alpha`` and ``beta`` as schedules but
    uses them as numbers; here they are numbers.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-3``.
    alpha:
        :math:`\alpha \ge 0`, the weight of the current gradient. Default ``1.0``.
    beta:
        :math:`\beta \ge 0`, the weight of the extrapolation (negative momentum).
        Default ``1.0``.
    maximize:
        Ascend instead of descend.

    Raises
    ------
    InputError
        If ``lr`` is not a number > 0 or a schedule, ``alpha`` or ``beta`` not a
        number >= 0, or ``maximize`` not a bool.

    References
    ----------
    Mokhtari et al., "A Unified Analysis of Extra-gradient and Optimistic Gradient
    Methods for Saddle Point Problems: Proximal Point Approach", AISTATS 2020;
    ``optax.optimistic_gradient_descent``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.optimistic_gradient_descent(lr=0.1)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    0.8
    """
    lr = check_lr(lr)
    alpha, beta = nonnegative_number("alpha", alpha), nonnegative_number("beta", beta)
    check_flags(maximize=maximize)

    def init(params):
        return fresh_state(OptimisticState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        directions = _optimistic(grads, state.previous_gradient, state.count, alpha, beta)
        new_params = descent(params, directions, lr, state.count)
        return new_params, OptimisticState(state.count + 1, grads)

    hyperparams = {"lr": lr, "alpha": alpha, "beta": beta, "maximize": maximize}
    return Optimizer("optimistic_gradient_descent", init, step, hyperparams)


def optimistic_adam(
    lr: LearningRate = 1e-3,
    *,
    optimism: float | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    eps_root: float = 0.0,
    nesterov: bool = True,
    maximize: bool = False,
) -> Optimizer:
    r"""Optimistic Adam: Adam's direction extrapolated from the previous one, for min-max games.

    With :math:`m_t, v_t` Optax's Adam moments of :math:`g_t = \pm\nabla f(x_t)`:

    .. math::

        \hat m_t = \frac{m_t}{1-\beta_1^t}, \qquad
        \hat v_t = \frac{v_t}{1-\beta_2^t}, \qquad
        r_t = \frac{\hat m_t}{\sqrt{\hat v_t + \bar\epsilon} + \epsilon} \\
        x_{t+1} = x_t - \big((\eta_t + o_t)\, r_t - o_t\, r_{t-1}\big)

    with :math:`r_0 = r_1`, :math:`o` = ``optimism`` (the learning rate when
    ``None``, as in the paper) and, with ``nesterov=True`` (Optax's default),
    :math:`\hat m_t = \beta_1 m_t / (1-\beta_1^{t+1}) + (1-\beta_1) g_t / (1-\beta_1^t)`.

    Matches ``optax.optimistic_adam`` (``b1``, ``b2`` are ``betas`` here), which is
    ``optax.optimistic_adam_v2(1.0, alpha=lr, beta=optimism)``. Differences: Optax's
    ``learning_rate`` has no default (``1e-3`` here, as :func:`~descend.optim.adam`);
    ``optax.optimistic_adam`` refuses a schedule, which here sets both
    :math:`\eta_t` and, when ``optimism`` is ``None``, :math:`o_t`; ``maximize`` is
    an addition; Optax's ``mu_dtype`` is not offered. Nesterov momentum is on by
    default, as in Optax, unlike :func:`~descend.optim.adam`.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-3``.
    optimism:
        :math:`o \ge 0`, the weight of the extrapolation, or ``None`` for the
        learning rate. Default ``None``.
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.9, 0.999)``.
    eps:
        :math:`\epsilon \ge 0`, outside the square root. Default ``1e-8``.
    eps_root:
        :math:`\bar\epsilon \ge 0`, inside the square root. Default ``0.0``.
    nesterov:
        Nesterov momentum in the first moment. Default ``True``.
    maximize:
        Ascend instead of descend.

    Raises
    ------
    InputError
        If ``lr`` is not a number > 0 or a schedule, ``optimism``, ``eps`` or
        ``eps_root`` not a number >= 0 (or ``None`` for ``optimism``), a beta is
        outside ``[0, 1)``, or a flag is not a bool.

    References
    ----------
    Daskalakis et al., "Training GANs with Optimism", ICLR 2018;
    ``optax.optimistic_adam``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.optimistic_adam(lr=0.1, nesterov=False)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 4)
    0.9
    """
    lr = check_lr(lr)
    beta1, beta2 = check_betas(betas)
    check_nonnegative(eps=eps, eps_root=eps_root)
    if optimism is not None:
        optimism = nonnegative_number("optimism", optimism)
    check_flags(nesterov=nesterov, maximize=maximize)

    def init(params):
        return fresh_state(OptimisticAdamState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        exp_avg = optax_average(state.exp_avg, grads, beta1)
        exp_avg_sq = jax.tree.map(
            lambda v, g: (1 - beta2) * g**2 + beta2 * v, state.exp_avg_sq, grads
        )
        t = state.count + 1
        if nesterov:
            avg_hat = optax_nesterov_debias(exp_avg, grads, beta1, t)
        else:
            avg_hat = optax_debias(exp_avg, beta1, t)
        sq_hat = optax_debias(exp_avg_sq, beta2, t)
        directions = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), avg_hat, sq_hat)
        # Optax's optimistic step takes the learning rate as alpha (a number added in
        # Python) and flips the sign last, with a scale of -1.
        rate = lr if not callable(lr) else lr_at(lr, state.count)
        extrapolation = rate if optimism is None else optimism
        updates = _optimistic(
            directions, state.previous_direction, state.count, rate, extrapolation
        )
        new_params = add_updates(params, jax.tree.map(lambda u: -1.0 * u, updates))
        new_state = OptimisticAdamState(t, exp_avg, exp_avg_sq, directions)
        return new_params, new_state

    hyperparams = {
        "lr": lr,
        "optimism": optimism,
        "betas": (beta1, beta2),
        "eps": eps,
        "eps_root": eps_root,
        "nesterov": nesterov,
        "maximize": maximize,
    }
    return Optimizer("optimistic_adam", init, step, hyperparams)
