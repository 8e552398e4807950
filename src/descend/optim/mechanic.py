"""Mechanic: a tuner of another optimizer's step size (as ``optax.contrib.mechanize``).

It couples all the leaves of the params: its bet is an inner product of the whole
gradient with the whole path from the start, so a pytree of params is one problem.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend import _tree
from descend.errors import DescendTypeError, InputError, check_int, check_positive
from descend.optim._common import check_flags, check_nonnegative
from descend.optim.adam import adam
from descend.optim.base import Optimizer, maximizes
from descend.optim.blocks import (
    add_updates,
    float_dtype,
    inner_product,
    signed,
    squared_norm,
    zero_count,
)


class MechanicState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    inner: Any  # the state of the optimizer whose steps are scaled
    init_params: Any  # x_0, taken at the first step
    rewards: jax.Array  # r: one per beta
    max_products: jax.Array  # m: the discounted largest |h|
    sum_sq_products: jax.Array  # v: the discounted sum of h^2
    scales: jax.Array  # s: the scale each beta bets; their sum scales the steps


def mechanize(
    optimizer: Optimizer | None = None,
    *,
    weight_decay: float = 1e-2,
    eps: float = 1e-8,
    s_init: float = 1e-6,
    num_betas: int = 6,
    maximize: bool = False,
) -> Optimizer:
    r"""Mechanic: learns the scale of another optimizer's steps (a learning-rate tuner).

    With :math:`u_t` the step the wrapped optimizer takes from :math:`x_t`,
    :math:`S_t = \sum_i s_{t,i}` and :math:`\Delta_t = (x_0 - x_t)/(S_t + \epsilon)`:

    .. math::

        \tilde g_t = g_t + \lambda S_t \frac{\|g_t\|}{\|x_t\| + \epsilon} x_t, \qquad
        h_t = \langle \tilde g_t, \Delta_t \rangle \\
        m_{t+1} = \max(\beta m_t, |h_t| + \epsilon), \quad
        v_{t+1} = \beta^2 v_t + h_t^2, \quad
        r_{t+1} = \beta r_t + \mathrm{clip}(h_t, \pm m_t)\, s_t \\
        s_{t+1} = \frac{s_0 m_{t+1} / n + \max(r_{t+1}, 0)}{\sqrt{v_{t+1}} + \epsilon},
        \qquad x_{t+1} = x_0 - S_{t+1} (\Delta_t - u_t)

    for each of the :math:`n` = ``num_betas`` values :math:`\beta_i = 1 - 10^{-i}`,
    with :math:`s_0` = ``s_init``, norms and products over all leaves together, and
    :math:`x_0` the params of the first step. The weight decay :math:`\lambda` enters
    only Mechanic's own bet, not the gradient given to the wrapped optimizer.

    Matches ``optax.contrib.mechanize`` (its ``base_optimizer`` is ``optimizer``;
    Optax's state fields ``r``, ``m``, ``v``, ``s``, ``x0``, ``base_optimizer_state``
    are ``rewards``, ``max_products``, ``sum_sq_products``, ``scales``,
    ``init_params``, ``inner`` here) with the wrapped optimizer equal to Optax's.
    Differences: the wrapped optimizer is a descend optimizer, whose step is recovered
    as the difference of the params it returns (rounded where Optax takes its update
    as it is); Optax has no default (``adam(lr=1.0)`` here, its docstring's example:
    a base rate of 1, whose scale Mechanic learns); ``maximize`` is an addition and
    belongs here, not to the wrapped optimizer (the wrapped one gets the negated
    gradient).

    Parameters
    ----------
    optimizer:
        The optimizer whose steps are scaled, or ``None`` for ``adam(lr=1.0)``.
    weight_decay:
        Mechanic's decay :math:`\lambda \ge 0`. Default ``1e-2``.
    eps:
        :math:`\epsilon > 0`. Default ``1e-8``.
    s_init:
        The first scale :math:`s_0 > 0`, shared by the betas. Default ``1e-6``.
    num_betas:
        How many betas (>= 1). Default ``6``.
    maximize:
        Ascend instead of descend.

    Raises
    ------
    DescendTypeError
        If ``optimizer`` is not an optimizer.
    InputError
        For a value out of range, or a wrapped optimizer with ``maximize=True``.

    References
    ----------
    Cutkosky, Defazio and Mehta, "Mechanic: A Learning Rate Tuner", NeurIPS 2023;
    ``optax.contrib.mechanize``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.mechanize(ds.optim.sgd(lr=1.0))
    >>> x, state = 1.0, opt.init(1.0)
    >>> for _ in range(50):
    ...     x, state = opt.step(x, 2 * x, state)
    >>> abs(float(x)) < 0.1
    True
    """
    if optimizer is None:
        optimizer = adam(lr=1.0)
    if not isinstance(optimizer, Optimizer):
        raise DescendTypeError(
            f"mechanize wraps an optimizer (for example sgd(lr=1.0)), got {optimizer!r}"
        )
    if maximizes(optimizer):
        raise InputError(
            f"the optimizer inside mechanize must descend, got {optimizer!r}; pass "
            "maximize=True to mechanize instead, which negates the gradient both see"
        )
    check_nonnegative(weight_decay=weight_decay)
    eps = check_positive("eps", eps)
    s_init = check_positive("s_init", s_init)
    num_betas = check_int("num_betas", num_betas)
    check_flags(maximize=maximize)

    def init(params):
        dtype = float_dtype(params)

        def zeros():
            return _tree.full((num_betas,), 0, dtype)

        return MechanicState(
            zero_count(), optimizer.init(params), params, zeros(), zeros(), zeros(),
            _tree.full((num_betas,), s_init, dtype),
        )  # fmt: skip

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        stepped, inner = optimizer.step(params, grads, state.inner, value=value, value_fn=value_fn)
        inner_updates = jax.tree.map(jnp.subtract, stepped, params)
        # Restarted at the first step: params may have been replaced since init.
        x0 = jax.tree.map(lambda p, q: jnp.where(state.count == 0, p, q), params, state.init_params)
        total = jnp.sum(state.scales)
        grad_norm = jnp.sqrt(squared_norm(grads))
        param_norm = jnp.sqrt(squared_norm(params))
        decayed = jax.tree.map(
            lambda g, p: g + weight_decay * total * grad_norm / (param_norm + eps) * p,
            grads, params,
        )  # fmt: skip
        delta_prev = jax.tree.map(lambda p, p0: (p0 - p) / (total + eps), params, x0)
        delta = jax.tree.map(jnp.subtract, delta_prev, inner_updates)
        product = inner_product(decayed, delta_prev)
        clipped = jax.lax.clamp(-state.max_products, jnp.ones_like(state.max_products) * product,
                                state.max_products)  # fmt: skip
        betas = jnp.array([1.0 - 0.1**i for i in range(1, num_betas + 1)], state.scales.dtype)
        max_products = jnp.maximum(betas * state.max_products, jnp.abs(product) + eps)
        sum_sq_products = betas**2 * state.sum_sq_products + product**2
        rewards = betas * state.rewards + clipped * state.scales
        wealth = (s_init / num_betas) * max_products + jnp.maximum(0.0, rewards)
        scales = wealth / (jnp.sqrt(sum_sq_products) + eps)
        new_params = jax.tree.map(lambda p0, d: p0 - jnp.sum(scales) * d, x0, delta)
        # As Optax: the difference to the params, added back (not the new params as they are).
        updates = jax.tree.map(jnp.subtract, new_params, params)
        new_state = MechanicState(
            state.count + 1, inner, x0, rewards, max_products, sum_sq_products, scales
        )
        return add_updates(params, updates), new_state

    hyperparams = {
        "optimizer": optimizer,
        "weight_decay": weight_decay,
        "eps": eps,
        "s_init": s_init,
        "num_betas": num_betas,
        "maximize": maximize,
    }
    inner_evaluations = optimizer.evaluations
    return Optimizer(
        "mechanize",
        init,
        step,
        hyperparams,
        needs_value_fn=optimizer.needs_value_fn,
        evaluations=None
        if inner_evaluations is None
        else (lambda state: inner_evaluations(state.inner)),
        complex_params="refuse" if optimizer.complex_params == "refuse" else "pairs",
    )
