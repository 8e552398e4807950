r"""Layer-wise trust ratios, as Optax has them: LAMB, LARS and Fromage.

Each scales the step of each leaf of the params (a layer's weights, its bias) by a
trust ratio :math:`\lVert x \rVert / \lVert u \rVert`, so that a step changes every
layer by about the same fraction of its size whatever the scale of its gradient.
"Layer" is a leaf of the pytree, as in Optax: norms are never taken over the whole tree.

``torch.optim`` has none of them. The formulas and their order of floating-point
operations are Optax's (``optax.lamb``, ``optax.lars``, ``optax.fromage``), so
trajectories agree with Optax's to rounding; the hyperparameters take the names of the
rest of the package (``lr``, ``betas``). NovoGrad, which normalizes by a norm per leaf
too, is in :mod:`~descend.optim.low_memory`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend.errors import check_positive
from descend.optim._common import (
    check_betas,
    check_decay_mask,
    check_flags,
    check_nonnegative,
    with_decay_mask,
)
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import (
    add_updates,
    coupled_decay,
    fresh_state,
    optax_average,
    optax_debias,
    optax_scale_by_rate,
    signed,
)
from descend.optim.leaves import decayed_leaves


class LambState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any  # first moment m
    exp_avg_sq: Any  # second moment v


class LarsState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    momentum_buffer: Any  # Optax's trace of the scaled updates


class FromageState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax


# ------------------------------------------------------------------------ trust ratio


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

    hyperparams: dict[str, Any] = {
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
