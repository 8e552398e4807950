"""Further relatives of Adam: RAdam (as ``torch.optim``), AdaBelief and Lion (as Optax).

``torch.optim`` has no AdaBelief or Lion. For those two the hyperparameter names
follow the rest of the package (``lr``, ``betas``) rather than Optax's
(``learning_rate``, ``b1``, ``b2``), while the update formulas and their order of
operations are Optax's, so trajectories agree with ``optax.adabelief`` and
``optax.lion`` to rounding.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend.optim._common import (
    check_adam_like,
    check_betas,
    check_decay_mask,
    check_flags,
    check_nonnegative,
    with_decay_mask,
)
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import (
    adam_moments,
    add_updates,
    bias_correction,
    coupled_decay,
    decayed_descent,
    fresh_state,
    optax_average,
    optax_debias,
    optax_nesterov_debias,
    optax_scale_by_rate,
    signed,
    step_number,
)


class RAdamState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any
    exp_avg_sq: Any


class LionState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any  # momentum m


class AdaBeliefState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any  # first moment m
    exp_avg_var: Any  # second moment of the prediction error g - m


def radam(
    lr: LearningRate = 1e-3,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""RAdam: Adam whose adaptive step is switched on only once its variance is tractable.

    With :math:`m_t, v_t` as in :func:`adam`, :math:`\hat m_t = m_t / (1-\beta_1^t)`,
    :math:`\rho_\infty = 2/(1-\beta_2) - 1` and
    :math:`\rho_t = \rho_\infty - 2t\beta_2^t / (1-\beta_2^t)`:

    .. math::

        r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}
                         {(\rho_\infty-4)(\rho_\infty-2)\rho_t}}, \qquad
        x_{t+1} = \begin{cases}
            x_t - \eta_t\, \hat m_t\, r_t \dfrac{\sqrt{1-\beta_2^t}}{\sqrt{v_t} + \epsilon}
                & \rho_t > 5 \\
            x_t - \eta_t\, \hat m_t & \text{otherwise}
        \end{cases}

    As in PyTorch, ``eps`` is added to the *uncorrected* :math:`\sqrt{v_t}`. Weight
    decay is coupled, or decoupled (:math:`x_t \leftarrow (1-\eta_t\lambda)x_t`) with
    ``decoupled_weight_decay=True``.

    Differences from ``optax.radam``: Optax adds ``eps`` to the bias-corrected
    :math:`\sqrt{\hat v_t}`, switches at :math:`\rho_t \ge` ``threshold`` (5), has
    ``eps_root`` and ``nesterov`` and no weight decay.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-3``.
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.9, 0.999)``.
    eps:
        :math:`\epsilon \ge 0`. Default ``1e-8``.
    weight_decay:
        :math:`\lambda \ge 0`.
    decoupled_weight_decay:
        Decay the weights directly instead of through the gradient.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"`` (the leaves named ``w``, not the biases of descend's models), a
        pytree of ``True`` / ``False``, or a function (Optax's ``mask``).

    References
    ----------
    Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020;
    ``torch.optim.RAdam``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.radam(lr=0.1)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    0.8
    """
    flags = {"decoupled_weight_decay": decoupled_weight_decay, "maximize": maximize}
    lr, (beta1, beta2) = check_adam_like(lr, betas, eps, weight_decay, flags)
    rho_inf = 2 / (1 - beta2) - 1
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def rectification(t, bias_correction2):
        """Whether the adaptive step is on at step t, and its factor r_t there."""
        rho_t = rho_inf - 2 * t * beta2**t / bias_correction2
        rectified = rho_t > 5.0
        # Only evaluated where rectified; elsewhere the ratio may be negative.
        ratio = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        return rectified, jnp.sqrt(jnp.where(rectified, ratio, 1.0))

    def init(params):
        return fresh_state(RAdamState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        t, rate = step_number(state.count), lr_at(lr, state.count)
        start, grads = decayed_descent(
            params,
            grads,
            rate,
            maximize=maximize,
            weight_decay=weight_decay,
            decoupled=decoupled_weight_decay,
            mask=mask,
        )
        exp_avg, exp_avg_sq = adam_moments(state.exp_avg, state.exp_avg_sq, grads, (beta1, beta2))
        bias_correction1 = bias_correction(beta1, t)
        bias_correction2 = bias_correction(beta2, t)
        rectified, rect = rectification(t, bias_correction2)

        def update(m, v):
            corrected = m / bias_correction1 * rate
            adaptive = jnp.sqrt(bias_correction2) / (jnp.sqrt(v) + eps)
            return -jnp.where(rectified, corrected * adaptive * rect, corrected)

        new_params = add_updates(params, jax.tree.map(update, exp_avg, exp_avg_sq), start=start)
        return new_params, RAdamState(state.count + 1, exp_avg, exp_avg_sq)

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "weight_decay": weight_decay,
        "decoupled_weight_decay": decoupled_weight_decay,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("radam", init, step, hyperparams), mask)


def lion(
    lr: LearningRate = 1e-4,
    *,
    betas: tuple[float, float] = (0.9, 0.99),
    weight_decay: float = 1e-3,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Lion: the sign of an interpolated momentum, plus decoupled weight decay.

    .. math::

        c_t = \mathrm{sign}\big(\beta_1 m_{t-1} + (1-\beta_1) g_t\big), \qquad
        m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t \\
        x_{t+1} = x_t - \eta_t \left(c_t + \lambda x_t\right)

    with :math:`m_0 = 0` and :math:`g_t = \pm\nabla f(x_t)`. Every coordinate moves by
    :math:`\eta_t` (plus the decay), so ``lr`` is usually 3-10 times smaller than
    AdamW's.

    Matches ``optax.lion`` (``b1``, ``b2`` are ``betas`` here; its ``mask`` is
    ``weight_decay_mask``). Differences: Optax's ``learning_rate`` has no default
    (``1e-4`` here); ``maximize`` is an addition; Optax's ``mu_dtype`` is not offered.
    PyTorch has no Lion.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-4``.
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.9, 0.99)``.
    weight_decay:
        Decoupled decay :math:`\lambda \ge 0`, multiplied by the learning rate.
        Default ``1e-3`` as in Optax.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"`` (the leaves named ``w``, not the biases of descend's models), a
        pytree of ``True`` / ``False``, or a function (Optax's ``mask``).

    References
    ----------
    Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023;
    ``optax.lion``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.lion(lr=0.1, weight_decay=0.0)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    0.9
    """
    lr = check_lr(lr)
    beta1, beta2 = check_betas(betas)
    check_nonnegative(weight_decay=weight_decay)
    check_flags(maximize=maximize)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        return fresh_state(LionState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        directions = jax.tree.map(jnp.sign, optax_average(state.exp_avg, grads, beta1))
        exp_avg = optax_average(state.exp_avg, grads, beta2)
        # Optax adds the decay to the sign, so it is scaled by the learning rate too.
        directions = coupled_decay(directions, params, weight_decay, mask)
        updates = optax_scale_by_rate(directions, lr_at(lr, state.count))
        return add_updates(params, updates), LionState(state.count + 1, exp_avg)

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("lion", init, step, hyperparams), mask)


def adabelief(
    lr: LearningRate = 1e-3,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    nesterov: bool = False,
    maximize: bool = False,
) -> Optimizer:
    r"""AdaBelief: Adam with the variance of the gradient around its running mean.

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        s_t = \beta_2 s_{t-1} + (1-\beta_2) (g_t - m_t)^2 + \bar\epsilon \\
        x_{t+1} = x_t - \eta_t \frac{m_t / (1-\beta_1^t)}
                                    {\sqrt{s_t / (1-\beta_2^t)} + \epsilon}

    with :math:`m_0 = s_0 = 0`, :math:`g_t = \pm\nabla f(x_t)`, :math:`\bar\epsilon` =
    ``eps_root`` added to the state itself (so it accumulates) and :math:`\epsilon` =
    ``eps`` outside the square root. With ``nesterov=True`` the corrected momentum is
    :math:`\beta_1 m_t / (1-\beta_1^{t+1}) + (1-\beta_1) g_t / (1-\beta_1^t)`.

    Matches ``optax.adabelief`` (``b1``, ``b2`` are ``betas`` here), including its
    defaults ``eps=1e-16`` and ``eps_root=1e-16`` (the paper uses ``eps=1e-8``,
    ``eps_root=0``). Differences: Optax's ``learning_rate`` has no default (``1e-3``
    here) and ``maximize`` is an addition. PyTorch has no AdaBelief.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-3``.
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.9, 0.999)``.
    eps:
        :math:`\epsilon \ge 0`, outside the square root. Default ``1e-16``.
    eps_root:
        :math:`\bar\epsilon \ge 0`, added to the second moment. Default ``1e-16``.
    nesterov:
        Use Nesterov momentum.
    maximize:
        Ascend instead of descend.

    References
    ----------
    Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in
    Observed Gradients", NeurIPS 2020; ``optax.adabelief``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.adabelief(lr=0.1)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 4)
    0.8889
    """
    lr = check_lr(lr)
    beta1, beta2 = check_betas(betas)
    check_nonnegative(eps=eps, eps_root=eps_root)
    check_flags(nesterov=nesterov, maximize=maximize)

    def init(params):
        return fresh_state(AdaBeliefState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        exp_avg = optax_average(state.exp_avg, grads, beta1)
        surprise = jax.tree.map(lambda g, m: (g - m) ** 2, grads, exp_avg)
        exp_avg_var = jax.tree.map(
            lambda s: s + eps_root, optax_average(state.exp_avg_var, surprise, beta2)
        )
        t = state.count + 1
        if nesterov:
            avg_hat = optax_nesterov_debias(exp_avg, grads, beta1, t)
        else:
            avg_hat = optax_debias(exp_avg, beta1, t)
        var_hat = optax_debias(exp_avg_var, beta2, t)
        directions = jax.tree.map(lambda m, s: m / (jnp.sqrt(s) + eps), avg_hat, var_hat)
        updates = optax_scale_by_rate(directions, lr_at(lr, state.count))
        return add_updates(params, updates), AdaBeliefState(state.count + 1, exp_avg, exp_avg_var)

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "eps_root": eps_root,
        "nesterov": nesterov,
        "maximize": maximize,
    }
    return Optimizer("adabelief", init, step, hyperparams)
