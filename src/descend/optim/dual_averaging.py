"""Dual averaging: MADGRAD, as ``optax.contrib.madgrad``.

A dual-averaging method steps from the starting point :math:`x_0` by a weighted sum of
all gradients so far, rather than from the current point by the latest one; MADGRAD
scales that sum by the cube root of a weighted sum of squared gradients and averages
the iterates for momentum. ``torch.optim`` has no MADGRAD; the names follow the rest of
the package (``lr``) and the order of operations is Optax's, so trajectories agree
with ``optax.contrib.madgrad`` to rounding.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend.optim._common import (
    check_decay_mask,
    check_flags,
    check_nonnegative,
    check_unit_interval,
    with_decay_mask,
)
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import add_updates, descent_grads, fresh_state


class MadgradState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    grad_sum_sq: Any  # sum of lambda_k g_k^2
    s: Any  # sum of lambda_k g_k
    x0: Any  # the starting point of the dual averaging


def madgrad(
    lr: LearningRate = 1e-2,
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    eps: float = 1e-6,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""MADGRAD: dual averaging with a cube-root AdaGrad scale and momentum by averaging.

    With :math:`g_k = \pm\nabla f(x_k) + \lambda x_k`, steps :math:`k = 0, 1, \dots`,
    :math:`s_{-1} = \nu_{-1} = 0` and :math:`x_0` the starting point:

    .. math::

        \lambda_k = (\eta_k + \epsilon)\sqrt{k+1}, \qquad
        \nu_k = \nu_{k-1} + \lambda_k g_k^2, \qquad
        s_k = s_{k-1} + \lambda_k g_k \\
        z_{k+1} = x_0 - \frac{s_k}{\nu_k^{1/3} + \epsilon}, \qquad
        x_{k+1} = (1-c)\, z_{k+1} + c\, x_k

    with :math:`c` = ``momentum``. The step is applied as Optax applies it,
    :math:`x_k + (x_{k+1} - x_k)`. The state keeps :math:`x_0`, so the params'
    memory is doubled.

    Matches ``optax.contrib.madgrad`` (whose names it keeps). Differences: Optax's
    ``learning_rate`` has no default (``1e-2`` here, the paper's and its reference
    implementation's); ``maximize`` and ``weight_decay_mask`` are additions (with a
    mask it is Optax's ``chain(add_decayed_weights(weight_decay, mask),
    scale_by_madgrad(...))``, as every ``weight_decay`` here takes a mask). As in
    Optax, :math:`\sqrt{k+1}` is taken of the int32 step count, a float32, so with a
    number as ``lr`` the whole weight :math:`\lambda_k` is rounded to float32 even
    for float64 params (a relative 6e-8 at most; a schedule's float64 rate keeps it in
    float64), and ``eps`` is added to the learning rate as well as to the denominator.
    Facebook's ``madgrad.MADGRAD`` has a ``decouple_decay`` flag that
    Optax lacks (not offered).

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-2``.
    momentum:
        :math:`c \in [0, 1)`. Default ``0.9``.
    weight_decay:
        :math:`\lambda \ge 0`, L2 decay added to the gradient. Default ``0``.
    eps:
        :math:`\epsilon \ge 0`. Default ``1e-6``.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"``, a pytree of ``True`` / ``False``, or a function.

    Raises
    ------
    InputError
        If a hyperparameter is out of range.

    References
    ----------
    Defazio and Jelassi, "Adaptivity without Compromise: A Momentumized, Adaptive, Dual
    Averaged Gradient Method for Stochastic Optimization", JMLR 2022
    (arXiv:2101.11075); ``optax.contrib.madgrad``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.madgrad(lr=0.1, eps=0.0)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 4)
    0.9729
    """
    lr = check_lr(lr)
    momentum = check_unit_interval("momentum", momentum)
    check_nonnegative(weight_decay=weight_decay, eps=eps)
    check_flags(maximize=maximize)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        return fresh_state(MadgradState, params, x0=jax.tree.map(jnp.asarray, params))

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = descent_grads(
            params, grads, maximize=maximize, weight_decay=weight_decay, mask=mask
        )
        # Optax's order: eps on the rate, then sqrt of the int32 count (a float32).
        weight = (lr_at(lr, state.count) + eps) * jnp.sqrt(state.count + 1)
        grad_sum_sq = jax.tree.map(
            lambda total, g: total + (weight * g**2).astype(g.dtype), state.grad_sum_sq, grads
        )
        s = jax.tree.map(lambda total, g: total + (weight * g).astype(g.dtype), state.s, grads)

        def update(x, x0, s_, nu):
            z = x0 - s_ / (jnp.cbrt(nu) + eps)
            return (1 - momentum) * z + momentum * x - x

        updates = jax.tree.map(update, params, state.x0, s, grad_sum_sq)
        new_state = MadgradState(state.count + 1, grad_sum_sq, s, state.x0)
        return add_updates(params, updates), new_state

    hyperparams = {
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "eps": eps,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("madgrad", init, step, hyperparams), mask)
