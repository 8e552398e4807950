"""Optimizers with less state than Adam, as Optax has them: NovoGrad and SM3.

NovoGrad keeps its second moment as one number per leaf of the params (the running
squared norm of the leaf's gradient); SM3 keeps, for an ``n x m`` leaf, ``n + m``
accumulators instead of Adagrad's ``n m``.

``torch.optim`` has neither. The formulas and their order of floating-point operations
are Optax's (``optax.novograd``, ``optax.sm3``), so trajectories agree with Optax's to
rounding; the hyperparameters take the names of the rest of the package (``lr``,
``betas``).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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
    fresh_state,
    map_leaves,
    optax_scale_by_rate,
    signed,
)
from descend.optim.leaves import decayed_leaves


class NovoGradState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    momentum_buffer: Any  # m, in the shape of the params
    exp_avg_sq: Any  # v: per leaf one scalar, the average of its squared gradient norm


class SM3State(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    accumulators: Any  # per leaf a tuple: one vector per axis (the whole leaf if ndim < 2)
    exp_avg: Any  # the moving average of the preconditioned gradient


def _zeros(shape: tuple, dtype: Any) -> jax.Array:
    """Zeros made in NumPy: creating a state compiles no small program."""
    return jax.device_put(np.zeros(shape, dtype))


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
