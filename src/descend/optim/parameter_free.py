"""Optimizers that set their own step size: COCOB, DoG and DoWG (as ``optax.contrib``).

DoG and DoWG couple all the leaves of the params: they measure the distance from the
starting point and the gradient norm over the whole pytree, so a pytree of params is
one problem, not one problem per leaf. Hyperparameters are named as in the rest of
the package (``lr``, ``weight_decay_mask``) and each name that differs from Optax's is
mapped in the docstring. The D-Adaptation family (D-Adapt AdamW, Prodigy) is in
:mod:`~descend.optim.d_adaptation`, Mechanic (a tuner of another optimizer's step) in
:mod:`~descend.optim.mechanic`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend import _tree
from descend.errors import check_positive, invalid
from descend.optim._common import (
    check_decay_mask,
    check_flags,
    check_nonnegative,
    with_decay_mask,
)
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import (
    add_updates,
    coupled_decay,
    float_dtype,
    optax_scale_by_rate,
    signed,
    squared_norm,
    zero_count,
)


class COCOBState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    init_particles: Any  # x_0
    cumulative_gradients: Any  # -sum of the gradients
    scale: Any  # L: the largest |g| seen, per coordinate
    subgradients: Any  # G: the sum of |g|
    reward: Any  # R: the coin-betting wealth won


def cocob(
    lr: LearningRate = 1.0,
    *,
    alpha: float = 100.0,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""COCOB-Backprop: per-coordinate coin betting, no learning rate to tune.

    With :math:`c_t = \eta_t (g_t + \lambda x_t)`, per coordinate:

    .. math::

        L_t = \max(L_{t-1}, |c_t|), \quad G_t = G_{t-1} + |c_t|, \quad
        R_t = \max\big(R_{t-1} - c_t (x_t - x_0), 0\big), \quad
        \theta_t = \theta_{t-1} - c_t \\
        x_{t+1} = x_0 + \frac{\theta_t\, (L_t + R_t)}{L_t \max(G_t + L_t, \alpha L_t)}

    with :math:`L_0 = \epsilon`, :math:`G_0 = R_0 = \theta_0 = 0`. The learning rate
    only rescales the gradients (1 leaves them alone; a schedule can anneal them).

    Matches ``optax.contrib.cocob`` (its ``learning_rate``, ``mask`` are ``lr``,
    ``weight_decay_mask`` here; the state's fields keep Optax's names). Differences:
    ``maximize`` is an addition.

    Parameters
    ----------
    lr:
        Factor on the gradients (> 0) or a schedule. Default ``1.0``.
    alpha:
        The bet's cap :math:`\alpha > 0`. Default ``100``.
    eps:
        The first :math:`L` (> 0). Default ``1e-8``.
    weight_decay:
        Coupled L2 decay :math:`\lambda \ge 0`. Default ``0``.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"`` (the leaves named ``w``), a pytree of ``True`` / ``False``, or a
        function (Optax's ``mask``).

    References
    ----------
    Orabona and Tommasi, "Training Deep Networks without Learning Rates Through Coin
    Betting", NeurIPS 2017 (Algorithm 2); ``optax.contrib.cocob``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.cocob()
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    0.99
    """
    lr = check_lr(lr)
    alpha = check_positive("alpha", alpha)
    eps = check_positive("eps", eps)
    check_nonnegative(weight_decay=weight_decay)
    check_flags(maximize=maximize)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        zeros = _tree.zeros_like(params)
        return COCOBState(zero_count(), params, zeros, _tree.full_like(params, eps), zeros, zeros)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = coupled_decay(signed(grads, maximize=maximize), params, weight_decay, mask)
        rate = lr_at(lr, state.count)
        bets = jax.tree.map(lambda g: rate * g, grads)
        scale = jax.tree.map(lambda big, c: jnp.maximum(big, jnp.abs(c)), state.scale, bets)
        subgradients = jax.tree.map(lambda total, c: total + jnp.abs(c), state.subgradients, bets)
        reward = jax.tree.map(
            lambda won, c, p, p0: jnp.maximum(won - c * (p - p0), 0),
            state.reward, bets, params, state.init_particles,
        )  # fmt: skip
        cumulative = jax.tree.map(lambda total, c: total - c, state.cumulative_gradients, bets)

        def update(p, p0, theta, big, total, won):
            # Optax's update is the new point minus p, added back to p by apply_updates.
            return -p + (p0 + theta / (big * jnp.maximum(total + big, alpha * big)) * (big + won))

        updates = jax.tree.map(
            update, params, state.init_particles, cumulative, scale, subgradients, reward
        )
        new_state = COCOBState(
            state.count + 1, state.init_particles, cumulative, scale, subgradients, reward
        )
        return add_updates(params, updates), new_state

    hyperparams = {
        "lr": lr,
        "alpha": alpha,
        "eps": eps,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("cocob", init, step, hyperparams), mask)


class DoGState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    init_params: Any  # x_0
    max_dist: jax.Array  # the largest ||x_t - x_0|| so far (or r_eps)
    sum_sq_norm_grads: jax.Array  # sum of ||g_t||^2


_INIT_STEPS = ("heuristic", "distance", "learning_rate")


def _check_init_step(value: Any) -> tuple[str, float]:
    try:
        kind, size = value
    except (TypeError, ValueError):
        kind, size = None, None
    if kind not in _INIT_STEPS or isinstance(size, bool):
        raise invalid(
            "init_step",
            f"a pair (kind, value) with kind one of {', '.join(map(repr, _INIT_STEPS))}",
            value,
            "; for example ('heuristic', 1e-6)",
        )
    return kind, check_positive("init_step's value", size)


def dog(
    lr: LearningRate = 1.0,
    *,
    init_step: tuple[str, float] = ("heuristic", 1e-6),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""DoG (Distance over Gradients): SGD whose step is the distance travelled over the gradients.

    .. math::

        \bar r_t = \max\big(r_\epsilon, \max_{k \le t} \|x_k - x_0\|\big), \qquad
        G_t = \sum_{k \le t} \|g_k\|^2 \\
        x_{t+1} = x_t - \eta_t\, \frac{\bar r_t}{\sqrt{G_t + \epsilon}}\, g_t

    with :math:`g_t = \pm\nabla f(x_t) + \lambda x_t` and norms over all leaves
    together. ``init_step`` sets the first step: ``("heuristic", a)`` takes
    :math:`r_\epsilon = a (1 + \|x_0\|)` (the paper suggests ``a = 1e-6``, ``1e-4``
    with batch normalization), ``("distance", r)`` takes :math:`r_\epsilon = r`, and
    ``("learning_rate", s)`` takes :math:`r_\epsilon = 0` and the first step size
    :math:`s` in place of :math:`\bar r_0 / \sqrt{G_0 + \epsilon}`.

    Matches ``optax.contrib.dog`` (``learning_rate``, ``mask`` are ``lr``,
    ``weight_decay_mask`` here). Differences: ``weight_decay`` is ``0`` where Optax's
    ``None`` means no decay (the same); the scalars are kept in the widest float dtype
    of the params (Optax: the narrowest); ``maximize`` is an addition. ``init`` must be
    given the real starting params (they are :math:`x_0`).

    Parameters
    ----------
    lr:
        Factor on the step (> 0) or a schedule. Default ``1.0``.
    init_step:
        ``(kind, value)``, kind ``"heuristic"``, ``"distance"`` or
        ``"learning_rate"``, value > 0. Default ``("heuristic", 1e-6)``.
    eps:
        :math:`\epsilon > 0` added to :math:`G_t`. Default ``1e-8``.
    weight_decay:
        Coupled L2 decay :math:`\lambda \ge 0`. Default ``0``.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"`` (the leaves named ``w``), a pytree of ``True`` / ``False``, or a
        function (Optax's ``mask``).

    References
    ----------
    Ivgi, Hinder and Carmon, "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step
    Size Schedule", ICML 2023; ``optax.contrib.dog``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.dog(init_step=("learning_rate", 0.1))
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    0.8
    """
    lr = check_lr(lr)
    kind, size = _check_init_step(init_step)
    eps = check_positive("eps", eps)
    check_nonnegative(weight_decay=weight_decay)
    check_flags(maximize=maximize)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        dtype = float_dtype(params)
        r_eps: jax.Array | float
        if kind == "heuristic":
            r_eps = size * (1 + jnp.sqrt(squared_norm(params)))
        else:
            r_eps = size if kind == "distance" else 0.0
        zero = _tree.full((), 0, dtype)
        return DoGState(zero_count(), params, _tree.full((), r_eps, dtype), zero)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = coupled_decay(signed(grads, maximize=maximize), params, weight_decay, mask)
        distance = jnp.sqrt(squared_norm(jax.tree.map(jnp.subtract, state.init_params, params)))
        max_dist = jnp.maximum(state.max_dist, distance)
        sum_sq = state.sum_sq_norm_grads + squared_norm(grads)
        step_size = max_dist / jnp.sqrt(sum_sq + eps)
        if kind == "learning_rate":
            step_size = jnp.where(state.count == 0, size, step_size)
        directions = jax.tree.map(lambda g: step_size * g, grads)
        updates = optax_scale_by_rate(directions, lr_at(lr, state.count))
        new_state = DoGState(state.count + 1, state.init_params, max_dist, sum_sq)
        return add_updates(params, updates), new_state

    hyperparams = {
        "lr": lr,
        "init_step": (kind, size),
        "eps": eps,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("dog", init, step, hyperparams), mask)


class DoWGState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    init_params: Any  # x_0
    estim_sq_dist: jax.Array  # the largest ||x_t - x_0||^2 so far
    weighted_sq_norm_grads: jax.Array  # sum of r_k^2 ||g_k||^2


def dowg(
    lr: LearningRate = 1.0,
    *,
    init_estim_sq_dist: float | None = None,
    eps: float = 1e-4,
    weight_decay: float = 0.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""DoWG (Distance over Weighted Gradients): DoG with gradients weighted by the distance.

    .. math::

        \bar r_t^2 = \max\big(\bar r_{t-1}^2, \|x_t - x_0\|^2\big), \qquad
        v_t = v_{t-1} + \bar r_t^2 \|g_t\|^2 \\
        x_{t+1} = x_t - \eta_t\, \frac{\bar r_t^2}{\sqrt{v_t} + \epsilon}\, g_t

    with :math:`g_t = \pm\nabla f(x_t) + \lambda x_t`, norms over all leaves together,
    :math:`v_0 = 0` and :math:`\bar r_0^2` = ``init_estim_sq_dist`` (``eps`` when
    ``None``).

    Matches ``optax.contrib.dowg`` (``learning_rate``, ``mask`` are ``lr``,
    ``weight_decay_mask`` here). Differences: ``weight_decay`` is ``0`` where Optax's
    ``None`` means no decay (the same); the scalars are kept in the widest float dtype
    of the params (Optax: the narrowest); ``maximize`` is an addition.

    Parameters
    ----------
    lr:
        Factor on the step (> 0) or a schedule. Default ``1.0``.
    init_estim_sq_dist:
        First guess (> 0) of the squared distance to the solution, or ``None`` for
        ``eps``. Default ``None``.
    eps:
        :math:`\epsilon > 0` in the denominator. Default ``1e-4``.
    weight_decay:
        Coupled L2 decay :math:`\lambda \ge 0`. Default ``0``.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"`` (the leaves named ``w``), a pytree of ``True`` / ``False``, or a
        function (Optax's ``mask``).

    References
    ----------
    Khaled, Mishchenko and Jin, "DoWG Unleashed: An Efficient Universal Parameter-Free
    Gradient Descent Method", NeurIPS 2023; ``optax.contrib.dowg``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.dowg(init_estim_sq_dist=1.0)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    5e-05
    """
    lr = check_lr(lr)
    if init_estim_sq_dist is not None:
        init_estim_sq_dist = check_positive("init_estim_sq_dist", init_estim_sq_dist)
    eps = check_positive("eps", eps)
    check_nonnegative(weight_decay=weight_decay)
    check_flags(maximize=maximize)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)
    first_sq_dist = eps if init_estim_sq_dist is None else init_estim_sq_dist

    def init(params):
        dtype = float_dtype(params)
        return DoWGState(
            zero_count(), params, _tree.full((), first_sq_dist, dtype), _tree.full((), 0, dtype)
        )

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = coupled_decay(signed(grads, maximize=maximize), params, weight_decay, mask)
        sq_dist = squared_norm(jax.tree.map(jnp.subtract, state.init_params, params))
        estim_sq_dist = jnp.maximum(state.estim_sq_dist, sq_dist)
        weighted = estim_sq_dist * squared_norm(grads) + state.weighted_sq_norm_grads
        step_size = estim_sq_dist / (jnp.sqrt(weighted) + eps)
        directions = jax.tree.map(lambda g: step_size * g, grads)
        updates = optax_scale_by_rate(directions, lr_at(lr, state.count))
        new_state = DoWGState(state.count + 1, state.init_params, estim_sq_dist, weighted)
        return add_updates(params, updates), new_state

    hyperparams = {
        "lr": lr,
        "init_estim_sq_dist": init_estim_sq_dist,
        "eps": eps,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("dowg", init, step, hyperparams), mask)
