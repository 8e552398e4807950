"""Layer-wise and memory-lean optimizers, as Optax has them: LAMB, LARS, Fromage,
NovoGrad and SM3.

The first four scale each leaf of the params (a layer's weights, its bias) as a whole:
by a trust ratio :math:`\\lVert x \\rVert / \\lVert u \\rVert` (LAMB, LARS, Fromage) or by
the running norm of the leaf's gradient (NovoGrad). "Layer" is therefore a leaf of the
pytree, as in Optax: norms are never taken over the whole tree. SM3 keeps, for an
``n x m`` leaf, ``n + m`` accumulators instead of ``n m``.

``torch.optim`` has none of them. The formulas and their order of floating-point
operations are Optax's (``optax.lamb``, ``optax.lars``, ``optax.fromage``,
``optax.novograd``, ``optax.sm3``), so trajectories agree with Optax's to rounding; the
hyperparameters take the names of the rest of the package (``lr``, ``betas``).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from descend.errors import check_positive
from descend.optim._common import (
    check_betas,
    check_decay_mask,
    check_flags,
    check_nonnegative,
    check_unit_interval,
    with_decay_mask,
)
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import (
    add_updates,
    coupled_decay,
    fresh_state,
    map_leaves,
    optax_average,
    optax_debias,
    optax_scale_by_rate,
    signed,
)
from descend.optim.leaves import decayed_leaves


class LambState(NamedTuple):
    count: jax.Array
    exp_avg: Any  # first moment m
    exp_avg_sq: Any  # second moment v


class LarsState(NamedTuple):
    count: jax.Array
    momentum_buffer: Any  # Optax's trace of the scaled updates


class FromageState(NamedTuple):
    count: jax.Array


class NovoGradState(NamedTuple):
    count: jax.Array
    momentum_buffer: Any  # m, in the shape of the params
    exp_avg_sq: Any  # v: per leaf one scalar, the average of its squared gradient norm


class SM3State(NamedTuple):
    count: jax.Array
    accumulators: Any  # per leaf a tuple: one vector per axis (the whole leaf if ndim < 2)
    exp_avg: Any  # the moving average of the preconditioned gradient


# ------------------------------------------------------------------------ trust ratio


def _zeros(shape: tuple, dtype: Any) -> jax.Array:
    """Zeros made in NumPy: creating a state compiles no small program."""
    return jax.device_put(np.zeros(shape, dtype))


def _norm_at_least(x: jax.Array, min_norm: float) -> jax.Array:
    """``max(||x||, min_norm)`` as Optax's ``safe_norm`` gives it (the norm of the leaf)."""
    norm = jnp.linalg.norm(x)
    return jnp.where(norm <= min_norm, min_norm, norm)


def trust_scaled(
    update: jax.Array,
    param: jax.Array,
    *,
    min_norm: float = 0.0,
    trust_coefficient: float = 1.0,
    eps: float = 0.0,
) -> jax.Array:
    """``update`` times ``c ||param|| / (||update|| + eps)``, Optax's ``scale_by_trust_ratio``.

    Norms are the leaf's, at least ``min_norm``; where either is zero the update is
    left as it is (a zero param would otherwise never move).
    """
    param_norm = _norm_at_least(param, min_norm)
    update_norm = _norm_at_least(update, min_norm)
    ratio = trust_coefficient * param_norm / (update_norm + eps)
    zero_norm = jnp.logical_or(param_norm == 0.0, update_norm == 0.0)
    return update * jnp.where(zero_norm, jnp.array(1.0, dtype=param.dtype), ratio)


# ------------------------------------------------------------------------------- LAMB


def lamb(
    lr: LearningRate = 1e-3,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""LAMB: Adam's direction plus weight decay, rescaled per leaf by a trust ratio.

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        u_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t) + \bar\epsilon}
              + \epsilon} + \lambda x_t, \qquad
        x_{t+1} = x_t - \eta_t \frac{\lVert x_t \rVert}{\lVert u_t \rVert} u_t

    with :math:`m_0 = v_0 = 0`, :math:`g_t = \pm\nabla f(x_t)`, and the norms taken
    leaf by leaf (the ratio is 1 where either norm is zero).

    Matches ``optax.lamb`` (``b1``, ``b2`` are ``betas``; its ``mask`` is
    ``weight_decay_mask``). Differences: Optax's ``learning_rate`` has no default
    (``1e-3`` here, Optax's own test and NVIDIA apex's ``FusedLAMB`` default);
    ``maximize`` is an addition; ``weight_decay`` is a number (Optax also takes a
    schedule); a mask function is called with the params (Optax calls it with the
    updates, which have the same structure). PyTorch has no LAMB.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-3``.
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.9, 0.999)``.
    eps:
        :math:`\epsilon \ge 0`, outside the square root. Default ``1e-6``.
    eps_root:
        :math:`\bar\epsilon \ge 0`, inside the square root. Default ``0``.
    weight_decay:
        :math:`\lambda \ge 0`, added to the Adam direction before the trust ratio.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay: None (all), ``True`` / ``False``, ``"weights"`` (the leaves
        named ``w``, not the biases of descend's models), a pytree of ``True`` /
        ``False``, or a function (Optax's ``mask``).

    Raises
    ------
    InputError
        For a hyperparameter out of its range.

    References
    ----------
    You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76
    minutes", ICLR 2020; ``optax.lamb``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.lamb(lr=0.1)
    >>> round(float(opt.step(2.0, 3.0, opt.init(2.0))[0]), 6)
    1.8
    """
    lr = check_lr(lr)
    beta1, beta2 = check_betas(betas)
    check_nonnegative(eps=eps, eps_root=eps_root, weight_decay=weight_decay)
    check_flags(maximize=maximize)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        return fresh_state(LambState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        exp_avg = optax_average(state.exp_avg, grads, beta1)
        exp_avg_sq = optax_average(state.exp_avg_sq, jax.tree.map(lambda g: g**2, grads), beta2)
        t = state.count + 1
        directions = jax.tree.map(
            lambda m, v: m / (jnp.sqrt(v + eps_root) + eps),
            optax_debias(exp_avg, beta1, t),
            optax_debias(exp_avg_sq, beta2, t),
        )
        directions = coupled_decay(directions, params, weight_decay, mask)
        directions = jax.tree.map(trust_scaled, directions, params)
        updates = optax_scale_by_rate(directions, lr_at(lr, state.count))
        return add_updates(params, updates), LambState(t, exp_avg, exp_avg_sq)

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "eps_root": eps_root,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("lamb", init, step, hyperparams), mask)


# ------------------------------------------------------------------------------- LARS


def lars(
    lr: LearningRate = 1.0,
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    trust_coefficient: float = 0.001,
    eps: float = 0.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
    trust_ratio_mask: Any = None,
) -> Optimizer:
    r"""LARS: SGD with momentum whose step is rescaled per leaf by a trust ratio.

    .. math::

        u_t = g_t + \lambda x_t, \qquad
        r_t = \frac{c \lVert x_t \rVert}{\lVert u_t \rVert + \epsilon} \\
        b_t = \mu b_{t-1} - \eta_t r_t u_t, \qquad
        x_{t+1} = x_t + b_t \quad\text{or, with Nesterov,}\quad
        x_{t+1} = x_t + \mu b_t - \eta_t r_t u_t

    with :math:`b_0 = 0`, :math:`g_t = \pm\nabla f(x_t)`, :math:`c` =
    ``trust_coefficient``, the norms taken leaf by leaf and :math:`r_t = 1` where
    either is zero or where ``trust_ratio_mask`` leaves the leaf out. The momentum
    accumulates the steps already scaled by the learning rate, as in Optax.

    Matches ``optax.lars``, including its masks ``weight_decay_mask`` and
    ``trust_ratio_mask`` (Optax's default ``True`` for both is ``None`` here: every
    leaf). Differences: Optax's ``learning_rate`` has no default (``1.0`` here, the
    rate of Optax's own test: the trust coefficient ``0.001`` already makes the step
    small); ``maximize`` is an addition; ``weight_decay`` is a number (Optax also
    takes a schedule); a mask function is called with the params (Optax calls it with
    the updates, which have the same structure). PyTorch has no LARS.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1.0``.
    momentum:
        :math:`\mu \ge 0`. Default ``0.9``.
    nesterov:
        Use Nesterov momentum.
    weight_decay:
        :math:`\lambda \ge 0`, added to the gradient before the trust ratio.
    trust_coefficient:
        :math:`c > 0`. Default ``0.001``.
    eps:
        :math:`\epsilon \ge 0`, added to the update's norm. Default ``0``.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay (Optax's ``weight_decay_mask``): None (all), ``True`` /
        ``False``, ``"weights"`` (the leaves named ``w``), a pytree of ``True`` /
        ``False``, or a function.
    trust_ratio_mask:
        The leaves whose step the trust ratio scales, in the same forms (Optax's
        ``trust_ratio_mask``); commonly the weights and not the biases.

    Raises
    ------
    InputError
        For a hyperparameter out of its range.

    References
    ----------
    You, Gitman and Ginsburg, "Large Batch Training of Convolutional Networks",
    2017; ``optax.lars``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.lars(lr=10.0, trust_ratio_mask=False)
    >>> round(float(opt.step(2.0, 0.01, opt.init(2.0))[0]), 6)
    1.9
    """
    lr = check_lr(lr)
    check_nonnegative(momentum=momentum, weight_decay=weight_decay, eps=eps)
    trust_coefficient = check_positive("trust_coefficient", trust_coefficient)
    check_flags(nesterov=nesterov, maximize=maximize)
    decay_mask = check_decay_mask("weight_decay_mask", weight_decay_mask)
    trust_mask = check_decay_mask("trust_ratio_mask", trust_ratio_mask)

    # A nested function, not functools.partial: optimizers compare (and share compiled
    # programs) by the code and captured values of their functions.
    def scaled(update, param):
        return trust_scaled(update, param, trust_coefficient=trust_coefficient, eps=eps)

    def init(params):
        decayed_leaves(trust_mask, params, name="trust_ratio_mask")  # refuses a misfit
        return fresh_state(LarsState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        directions = coupled_decay(grads, params, weight_decay, decay_mask)
        directions = jax.tree.map(
            lambda u, p, trusted: scaled(u, p) if trusted else u,
            directions,
            params,
            decayed_leaves(trust_mask, params, name="trust_ratio_mask"),
        )
        directions = optax_scale_by_rate(directions, lr_at(lr, state.count))
        buffer = jax.tree.map(lambda u, b: u + momentum * b, directions, state.momentum_buffer)
        updates = buffer
        if nesterov:
            updates = jax.tree.map(lambda u, b: u + momentum * b, directions, buffer)
        return add_updates(params, updates), LarsState(state.count + 1, buffer)

    hyperparams = {
        "lr": lr,
        "momentum": momentum,
        "nesterov": nesterov,
        "weight_decay": weight_decay,
        "trust_coefficient": trust_coefficient,
        "eps": eps,
        "maximize": maximize,
    }
    if trust_mask is not None:
        hyperparams["trust_ratio_mask"] = trust_mask
    return with_decay_mask(Optimizer("lars", init, step, hyperparams), decay_mask)


# ---------------------------------------------------------------------------- Fromage


def fromage(
    lr: LearningRate = 0.01,
    *,
    min_norm: float = 1e-6,
    maximize: bool = False,
) -> Optimizer:
    r"""Fromage: a step of relative size :math:`\eta` per leaf, then a shrink that keeps
    the norms of the weights from growing.

    .. math::

        x_{t+1} = \frac{1}{\sqrt{1+\eta_t^2}}
                  \left(x_t - \eta_t \frac{\lVert x_t \rVert}{\lVert g_t \rVert} g_t\right)

    with :math:`g_t = \pm\nabla f(x_t)` and both norms taken leaf by leaf, each at least
    ``min_norm``. Without the shrink, :math:`\lVert x_{t+1} \rVert` would be
    :math:`\sqrt{1+\eta_t^2}\lVert x_t \rVert` for a gradient orthogonal to the weights.

    Matches ``optax.fromage``, which computes the shrink as a weight decay of
    :math:`1/\sqrt{1+\eta_t^2} - 1` added to the scaled step. Differences: Optax's
    ``learning_rate`` has no default (``0.01`` here, the paper's "good initial value
    to try"); ``maximize`` is an addition; complex params are stepped as real pairs
    (Optax refuses them). The reference implementation's ``p_bound`` is not offered,
    as in Optax. PyTorch has no Fromage.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule: the relative size of a step.
        Default ``0.01``.
    min_norm:
        Lower bound (:math:`\ge 0`) of both norms, against division by zero.
        Default ``1e-6``.
    maximize:
        Ascend instead of descend.

    Raises
    ------
    InputError
        For a hyperparameter out of its range.

    References
    ----------
    Bernstein et al., "On the distance between two neural networks and the stability
    of learning", NeurIPS 2020 (github.com/jxbz/fromage); ``optax.fromage``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.fromage(lr=0.75)
    >>> round(float(opt.step(2.0, 3.0, opt.init(2.0))[0]), 6)
    0.4
    """
    lr = check_lr(lr)
    check_nonnegative(min_norm=min_norm)
    check_flags(maximize=maximize)

    def scaled(update, param):
        return trust_scaled(update, param, min_norm=min_norm)

    def init(params):
        return fresh_state(FromageState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        directions = jax.tree.map(scaled, grads, params)
        if callable(lr):
            rate = lr(state.count)
            shrink = 1 / (1 + rate**2) ** 0.5
            updates = jax.tree.map(
                lambda u: jnp.array(-1 * (shrink * rate), dtype=u.dtype) * u, directions
            )
        else:  # in Python, as Optax computes it for a number
            shrink = 1 / (1 + lr**2) ** 0.5
            updates = optax_scale_by_rate(directions, lr * shrink)
        # Optax's add_decayed_weights(shrink - 1): the shrink as a weight decay.
        updates = jax.tree.map(lambda u, p: u + (shrink - 1) * p, updates, params)
        return add_updates(params, updates), FromageState(state.count + 1)

    hyperparams = {"lr": lr, "min_norm": min_norm, "maximize": maximize}
    return Optimizer("fromage", init, step, hyperparams)


# --------------------------------------------------------------------------- NovoGrad


def novograd(
    lr: LearningRate = 1e-3,
    *,
    betas: tuple[float, float] = (0.9, 0.25),
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""NovoGrad: momentum on gradients normalized by a running norm per leaf.

    .. math::

        v_t = \begin{cases} \lVert g_1 \rVert^2 & t = 1 \\
              \beta_2 v_{t-1} + (1-\beta_2) \lVert g_t \rVert^2 & t > 1 \end{cases}
        \qquad
        m_t = \beta_1 m_{t-1} + \frac{g_t}{\sqrt{v_t + \bar\epsilon} + \epsilon}
              + \lambda x_t \\
        x_{t+1} = x_t - \eta_t m_t

    with :math:`m_0 = 0`, :math:`g_t = \pm\nabla f(x_t)`, and :math:`v_t` one number
    per leaf (half the memory of Adam). There is no bias correction.

    Matches ``optax.novograd`` (``b1``, ``b2`` are ``betas``). Differences: Optax's
    ``learning_rate`` has no default (``1e-3`` here, Optax's own test and NVIDIA
    apex's ``FusedNovoGrad`` default); ``maximize`` is an addition. PyTorch has no
    NovoGrad. ``weight_decay_mask`` is an addition (Optax's NovoGrad has no mask): a
    leaf left out is stepped as with ``weight_decay=0``.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-3``.
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.9, 0.25)``.
    eps:
        :math:`\epsilon \ge 0`, outside the square root. Default ``1e-6``.
    eps_root:
        :math:`\bar\epsilon \ge 0`, inside the square root. Default ``0``.
    weight_decay:
        :math:`\lambda \ge 0`, added to the normalized gradient.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay: None (all), ``True`` / ``False``, ``"weights"`` (the leaves
        named ``w``), a pytree of ``True`` / ``False``, or a function.

    Raises
    ------
    InputError
        For a hyperparameter out of its range.

    References
    ----------
    Ginsburg et al., "Stochastic Gradient Methods with Layer-wise Adaptive Moments
    for Training of Deep Networks", 2019; ``optax.novograd``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.novograd(lr=0.1, eps=0.0)
    >>> round(float(opt.step(2.0, 3.0, opt.init(2.0))[0]), 6)
    1.9
    """
    lr = check_lr(lr)
    beta1, beta2 = check_betas(betas)
    check_nonnegative(eps=eps, eps_root=eps_root, weight_decay=weight_decay)
    check_flags(maximize=maximize)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        scalars = jax.tree.map(lambda p: _zeros((), jnp.result_type(p)), params)
        return fresh_state(NovoGradState, params, exp_avg_sq=scalars)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        first = state.count == 0

        def second_moment(g, v):
            norm_sq = jnp.linalg.norm(g) ** 2
            return jnp.where(first, norm_sq.astype(v.dtype), (1 - beta2) * norm_sq + beta2 * v)

        exp_avg_sq = jax.tree.map(second_moment, grads, state.exp_avg_sq)
        # m_0 = 0, so Optax's separate first step (m_1 = the normalized gradient) is
        # this formula exactly: beta1 * 0 + u is u.
        decays = jax.tree.map(
            lambda decayed: weight_decay if decayed else 0.0, decayed_leaves(mask, params)
        )
        buffer = jax.tree.map(
            lambda m, g, v, p, decay: beta1 * m + (g / (jnp.sqrt(v + eps_root) + eps) + decay * p),
            state.momentum_buffer,
            grads,
            exp_avg_sq,
            params,
            decays,
        )
        updates = optax_scale_by_rate(buffer, lr_at(lr, state.count))
        return add_updates(params, updates), NovoGradState(state.count + 1, buffer, exp_avg_sq)

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "eps_root": eps_root,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("novograd", init, step, hyperparams), mask)


# -------------------------------------------------------------------------------- SM3

_SM3_EPS = 1e-8  # Optax's scale_by_sm3 default, which optax.sm3 does not expose


def _expanded(vector: jax.Array, axis: int, ndim: int) -> jax.Array:
    """An axis's accumulators reshaped to broadcast along that axis of the leaf."""
    shape = [1] * ndim
    shape[axis] = vector.shape[0]
    return jnp.reshape(vector, shape)


def _sm3_leaf(grad, accumulators, exp_avg, momentum):
    """One SM3 step on a leaf: its new accumulators and moving average (the direction)."""
    if grad.ndim < 2:
        accum = 1.0 * grad**2 + 1.0 * accumulators[0]
    else:
        cover = [_expanded(a, axis, grad.ndim) for axis, a in enumerate(accumulators)]
        accum = 1.0 * grad**2 + 1.0 * functools.reduce(jnp.minimum, cover)
    inv_sqrt = jnp.where(accum > 0, jax.lax.rsqrt(accum + _SM3_EPS), 0.0)
    exp_avg = (1 - momentum) * (grad * inv_sqrt) + momentum * exp_avg
    if grad.ndim < 2:
        return (accum,), exp_avg
    axes = range(grad.ndim)
    maxima = tuple(jnp.max(accum, axis=tuple(a for a in axes if a != axis)) for axis in axes)
    return maxima, exp_avg


def _sm3_accumulators(param: Any) -> tuple:
    shape, dtype = jnp.shape(param), jnp.result_type(param)
    if len(shape) < 2:
        return (_zeros(shape, dtype),)
    return tuple(_zeros((n,), dtype) for n in shape)


def sm3(
    lr: LearningRate = 1.0,
    *,
    momentum: float = 0.9,
    maximize: bool = False,
) -> Optimizer:
    r"""SM3: Adagrad with one accumulator per row and per column instead of per entry.

    For a leaf with axes :math:`1..k` and accumulators :math:`\mu^{(r)}` (one vector
    per axis, of that axis's length, zero at first):

    .. math::

        \nu_t(i) = \min_r \mu^{(r)}_{t-1}(i_r) + g_t(i)^2, \qquad
        \mu^{(r)}_t(j) = \max_{i:\, i_r = j} \nu_t(i) \\
        m_t = \beta m_{t-1} + (1-\beta) \frac{g_t}{\sqrt{\nu_t + 10^{-8}}}, \qquad
        x_{t+1} = x_t - \eta_t m_t

    (SM3-II with the cover of rows and columns; the fraction is 0 where
    :math:`\nu_t(i) = 0`), :math:`m_0 = 0` and :math:`g_t = \pm\nabla f(x_t)`. A
    vector or a scalar keeps one accumulator per entry: it is Adagrad there.

    Matches ``optax.sm3`` (``momentum`` is its ``momentum``, :math:`\beta` above).
    Differences: Optax's ``learning_rate`` has no default (``1.0`` here, Optax's own
    test and PyTorch-SM3's default) and takes no schedule (one is accepted here);
    scalar params are stepped (Optax fails on them); ``maximize`` is an addition.
    Complex params are refused, as Optax refuses them. PyTorch has no SM3.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1.0``.
    momentum:
        :math:`\beta` in ``[0, 1)``, the decay of the moving average of the steps.
        Default ``0.9``.
    maximize:
        Ascend instead of descend.

    Raises
    ------
    InputError
        For a hyperparameter out of its range.

    References
    ----------
    Anil, Gupta, Koren and Singer, "Memory-Efficient Adaptive Optimization",
    NeurIPS 2019; ``optax.sm3``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.sm3(lr=1.0, momentum=0.0)
    >>> round(float(opt.step(2.0, 3.0, opt.init(2.0))[0]), 6)
    1.0
    """
    lr = check_lr(lr)
    momentum = check_unit_interval("momentum", momentum)
    check_flags(maximize=maximize)

    def init(params):
        return fresh_state(SM3State, params, accumulators=jax.tree.map(_sm3_accumulators, params))

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        accumulators, exp_avg = map_leaves(
            functools.partial(_sm3_leaf, momentum=momentum),
            grads,
            state.accumulators,
            state.exp_avg,
            outputs=2,
        )
        directions = exp_avg
        updates = optax_scale_by_rate(directions, lr_at(lr, state.count))
        return add_updates(params, updates), SM3State(state.count + 1, accumulators, exp_avg)

    hyperparams = {"lr": lr, "momentum": momentum, "maximize": maximize}
    # Optax refuses complex params: the cover of a complex leaf's real pairs would add
    # an axis of two accumulators that the algorithm does not have.
    return Optimizer("sm3", init, step, hyperparams, complex_params="refuse")
