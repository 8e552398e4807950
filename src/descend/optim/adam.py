"""Adam and the algorithms ``torch.optim`` builds on it: AdamW, Adamax and NAdam.

Each follows ``torch.optim``'s single-tensor code path (``capturable=False``,
``differentiable=False``): bias corrections are scalars computed from the 1-based
step :math:`t`, and ``eps`` is added outside the square root.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend import _tree
from descend.optim._common import (
    check_adam_like,
    check_decay_mask,
    check_nonnegative,
    with_decay_mask,
)
from descend.optim.base import LearningRate, Optimizer, lr_at
from descend.optim.blocks import (
    adam_moments,
    add_updates,
    bias_correction,
    decayed_descent,
    descent_grads,
    float_dtype,
    fresh_state,
    infinity_moment,
    lerp_average,
    root_plus_eps,
    running_max,
    scaled_ratio,
    step_number,
    zeros_if,
)


class AdamState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any  # first moment m
    exp_avg_sq: Any  # second moment v
    max_exp_avg_sq: Any  # running maximum of v (AMSGrad), None otherwise


class AdamaxState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any
    exp_inf: Any  # exponentially weighted infinity norm u


class NAdamState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    mu_product: jax.Array  # product of the momentum schedule mu_1 ... mu_t
    exp_avg: Any
    exp_avg_sq: Any


def _adam(name, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled, mask) -> Optimizer:
    flags = {"amsgrad": amsgrad, "maximize": maximize, "decoupled_weight_decay": decoupled}
    lr, (beta1, beta2) = check_adam_like(lr, betas, eps, weight_decay, flags)
    mask = check_decay_mask("weight_decay_mask", mask)

    def init(params):
        return fresh_state(AdamState, params, max_exp_avg_sq=zeros_if(amsgrad, params))

    def step(params, grads, state, *, value=None, value_fn=None):
        t, rate = step_number(state.count), lr_at(lr, state.count)
        start, grads = decayed_descent(
            params,
            grads,
            rate,
            maximize=maximize,
            weight_decay=weight_decay,
            decoupled=decoupled,
            mask=mask,
        )
        exp_avg, exp_avg_sq = adam_moments(state.exp_avg, state.exp_avg_sq, grads, (beta1, beta2))
        # AMSGrad keeps the maximum of the raw second moment, then bias-corrects it.
        max_exp_avg_sq = running_max(state.max_exp_avg_sq, exp_avg_sq) if amsgrad else None
        denom = root_plus_eps(
            max_exp_avg_sq if amsgrad else exp_avg_sq,
            eps,
            divisor=jnp.sqrt(bias_correction(beta2, t)),
        )
        step_size = rate / bias_correction(beta1, t)
        new_params = add_updates(params, scaled_ratio(-step_size, exp_avg, denom), start=start)
        return new_params, AdamState(state.count + 1, exp_avg, exp_avg_sq, max_exp_avg_sq)

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "weight_decay": weight_decay,
        "amsgrad": amsgrad,
        "maximize": maximize,
    }
    if name == "adam":
        hyperparams["decoupled_weight_decay"] = decoupled
    return with_decay_mask(Optimizer(name, init, step, hyperparams), mask)


def adam(
    lr: LearningRate = 1e-3,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Adam: momentum divided by a running root-mean-square, both bias-corrected.

    With :math:`g_t = \pm\nabla f(x_t) + \lambda x_t` (coupled L2 ``weight_decay``
    :math:`\lambda`) and :math:`t` counting from 1:

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        x_{t+1} = x_t - \frac{\eta_t}{1-\beta_1^t}\,
            \frac{m_t}{\sqrt{v_t} / \sqrt{1-\beta_2^t} + \epsilon}

    With ``amsgrad=True``, :math:`v_t` in the denominator is replaced by
    :math:`\hat v_t = \max(\hat v_{t-1}, v_t)`, the maximum of the raw second moment
    (bias-corrected afterwards). With ``decoupled_weight_decay=True`` the decay is
    applied to the parameters, :math:`x_t \leftarrow (1 - \eta_t\lambda) x_t`,
    instead of the gradient: that is :func:`adamw`.

    Differences from ``optax.adam``: Optax has ``eps_root`` (inside the root) and no
    weight decay; ``optax.amsgrad`` takes the maximum of the *bias-corrected*
    second moment.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-3``.
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.9, 0.999)``.
    eps:
        :math:`\epsilon \ge 0`, outside the square root. Default ``1e-8``.
    weight_decay:
        :math:`\lambda \ge 0`.
    amsgrad:
        Use the AMSGrad maximum of the second moment.
    maximize:
        Ascend instead of descend.
    decoupled_weight_decay:
        Decay the weights directly (AdamW) instead of through the gradient.
    weight_decay_mask:
        The leaves to decay: ``None`` (all), ``"weights"`` (the leaves named ``w``: the
        weights of descend's models, not their biases), a pytree of ``True`` / ``False``
        in the params' structure (or a prefix of it), a function ``mask(params)``
        returning one, or a function ``mask(path, leaf) -> bool``. Optax's ``mask``;
        in PyTorch, a parameter group with ``weight_decay=0`` for the others. See
        :mod:`descend.optim`.

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015; Reddi,
    Kale & Kumar, "On the Convergence of Adam and Beyond", ICLR 2018 (AMSGrad);
    ``torch.optim.Adam``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.adam(lr=0.1)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 4)
    0.9
    """
    return _adam(
        "adam",
        lr,
        betas,
        eps,
        weight_decay,
        amsgrad,
        maximize,
        decoupled_weight_decay,
        weight_decay_mask,
    )


def adamw(
    lr: LearningRate = 1e-3,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""AdamW: Adam with weight decay applied to the weights, scaled by the learning rate.

    Each step first shrinks the parameters, :math:`x_t \leftarrow (1 - \eta_t\lambda)
    x_t`, then takes the :func:`adam` step with the plain gradient (the decay never
    enters :math:`m_t` or :math:`v_t`).

    Differences from ``optax.adamw``: Optax's default ``weight_decay`` is ``1e-4``
    (``1e-2`` here, as in PyTorch) and it has ``eps_root`` and ``nesterov``; its
    ``mask`` is ``weight_decay_mask`` here.

    Parameters
    ----------
    lr, betas, eps, amsgrad, maximize:
        As in :func:`adam`.
    weight_decay:
        :math:`\lambda \ge 0`, multiplied by the learning rate. Default ``1e-2``.
    weight_decay_mask:
        The leaves to decay, as in :func:`adam`: ``"weights"`` leaves the biases of
        descend's models undecayed (``torch.optim.AdamW`` with a parameter group of
        ``weight_decay=0`` for them).

    References
    ----------
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019;
    ``torch.optim.AdamW``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.adamw(lr=0.1, weight_decay=0.5)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 4)
    0.85
    >>> opt = ds.optim.adamw(lr=0.1, weight_decay=0.5, weight_decay_mask="weights")
    >>> params = {"w": 1.0, "b": 1.0}
    >>> {k: round(float(v), 4) for k, v in opt.step(params, params, opt.init(params))[0].items()}
    {'b': 0.9, 'w': 0.85}
    """
    return _adam("adamw", lr, betas, eps, weight_decay, amsgrad, maximize, True, weight_decay_mask)


def adamax(
    lr: LearningRate = 2e-3,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Adamax: Adam with the infinity norm in place of the root-mean-square.

    With :math:`g_t = \pm\nabla f(x_t) + \lambda x_t` (coupled L2 ``weight_decay``):

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        u_t = \max(\beta_2 u_{t-1},\ |g_t| + \epsilon) \\
        x_{t+1} = x_t - \frac{\eta_t}{1-\beta_1^t} \frac{m_t}{u_t}

    Differences from ``optax.adamax``: the same formula (``eps`` inside the
    maximum); Optax has no weight decay.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``2e-3``.
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.9, 0.999)``.
    eps:
        :math:`\epsilon \ge 0`. Default ``1e-8``.
    weight_decay:
        Coupled L2 penalty :math:`\lambda \ge 0`.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`adam`.

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, section 7;
    ``torch.optim.Adamax``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.adamax(lr=0.1)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    0.9
    """
    lr, (beta1, beta2) = check_adam_like(lr, betas, eps, weight_decay, {"maximize": maximize})
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        return fresh_state(AdamaxState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = descent_grads(
            params, grads, maximize=maximize, weight_decay=weight_decay, mask=mask
        )
        exp_avg = lerp_average(state.exp_avg, grads, beta1)
        exp_inf = infinity_moment(state.exp_inf, grads, beta2, eps)
        clr = lr_at(lr, state.count) / bias_correction(beta1, step_number(state.count))
        new_params = add_updates(params, scaled_ratio(-clr, exp_avg, exp_inf))
        return new_params, AdamaxState(state.count + 1, exp_avg, exp_inf)

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("adamax", init, step, hyperparams), mask)


def nadam(
    lr: LearningRate = 2e-3,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""NAdam: Adam with Nesterov momentum and Dozat's momentum warm-up schedule.

    With :math:`\psi` = ``momentum_decay`` the momentum coefficient follows

    .. math::

        \mu_t = \beta_1 \left(1 - \tfrac12\, 0.96^{t\psi}\right), \qquad
        \Pi_t = \prod_{i=1}^t \mu_i

    and, with :math:`m_t, v_t` as in :func:`adam` and
    :math:`d_t = \sqrt{v_t / (1-\beta_2^t)} + \epsilon`,

    .. math::

        x_{t+1} = x_t - \eta_t \frac{1-\mu_t}{1-\Pi_t} \frac{g_t}{d_t}
                      - \eta_t \frac{\mu_{t+1}}{1-\Pi_t\,\mu_{t+1}} \frac{m_t}{d_t}

    Weight decay is coupled (added to :math:`g_t`) or, with
    ``decoupled_weight_decay=True``, applied as :math:`x_t \leftarrow (1-\eta_t\lambda)x_t`
    (NAdamW). ``state.mu_product`` holds :math:`\Pi_t`.

    Differences from ``optax.nadam``: Optax's NAdam is Adam with a Nesterov look-ahead
    and a constant momentum, without the :math:`\mu_t` schedule, ``momentum_decay``
    or weight decay; the two trajectories differ.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``2e-3``.
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.9, 0.999)``.
    eps:
        :math:`\epsilon \ge 0`, outside the square root. Default ``1e-8``.
    weight_decay:
        :math:`\lambda \ge 0`.
    momentum_decay:
        :math:`\psi \ge 0`. Default ``4e-3``.
    decoupled_weight_decay:
        Decay the weights directly instead of through the gradient.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`adam`.

    References
    ----------
    Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop;
    ``torch.optim.NAdam``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.nadam(lr=0.1)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 4)
    0.8944
    """
    flags = {"decoupled_weight_decay": decoupled_weight_decay, "maximize": maximize}
    lr, (beta1, beta2) = check_adam_like(lr, betas, eps, weight_decay, flags)
    check_nonnegative(momentum_decay=momentum_decay)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def momentum_coefficient(t):
        # Dozat's warm-up: the momentum grows from beta1 / 2 towards beta1.
        return beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))

    def init(params):
        return fresh_state(NAdamState, params, mu_product=_tree.full((), 1, float_dtype(params)))

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
        bias_correction2 = bias_correction(beta2, t)
        mu, mu_next = momentum_coefficient(t), momentum_coefficient(t + 1)
        mu_product = state.mu_product * mu
        grad_coef = -rate * (1.0 - mu) / (1.0 - mu_product)
        avg_coef = (-rate * mu_next) / (1.0 - mu_product * mu_next)
        exp_avg, exp_avg_sq = adam_moments(state.exp_avg, state.exp_avg_sq, grads, (beta1, beta2))
        denom = jax.tree.map(lambda v: jnp.sqrt(v / bias_correction2) + eps, exp_avg_sq)
        new_params = add_updates(
            params,
            scaled_ratio(grad_coef, grads, denom),
            scaled_ratio(avg_coef, exp_avg, denom),
            start=start,
        )
        return new_params, NAdamState(state.count + 1, mu_product, exp_avg, exp_avg_sq)

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "weight_decay": weight_decay,
        "momentum_decay": momentum_decay,
        "decoupled_weight_decay": decoupled_weight_decay,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("nadam", init, step, hyperparams), mask)
