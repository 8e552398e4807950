"""D-Adaptation: Adam whose learning rate is an estimate of the distance to the solution.

``dadapt_adamw`` (as ``optax.contrib.dadapt_adamw``) and ``prodigy`` (as the authors'
``prodigyopt.Prodigy`` for PyTorch, and, with ``use_bias_correction=True``, as
``optax.contrib.prodigy``) grow an estimate :math:`d` of the distance from the start
to the solution out of inner products of the gradients with the path taken, over all
the leaves of the params together. Hyperparameters are named as in ``prodigyopt``
(``d0``, ``d_coef``: Optax's ``estim_lr0``, ``estim_lr_coef``), the state's fields
too (``d``, ``d_numerator``, ``s``, ``p0``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from descend import _tree
from descend.errors import check_int, check_positive, invalid, is_traced
from descend.optim._common import (
    check_betas,
    check_decay_mask,
    check_flags,
    check_nonnegative,
    with_decay_mask,
)
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import (
    abs_sum,
    add_updates,
    coupled_decay,
    float_dtype,
    fresh_state,
    inner_product,
    signed,
    tree_total,
)
from descend.optim.leaves import decayed_leaves


class DAdaptAdamWState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any  # first moment of d_t-scaled gradients
    exp_avg_sq: Any  # second moment of the gradients
    s: Any  # discounted sum of d_t-scaled gradients
    d: jax.Array  # the distance estimate
    d_numerator: jax.Array  # discounted sum of its numerator


def dadapt_adamw(
    lr: LearningRate = 1.0,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    d0: float = 1e-6,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> Optimizer:
    r"""D-Adapt AdamW: AdamW whose learning rate is a growing estimate of the distance to go.

    With :math:`\gamma_t = d_t \eta_t \sqrt{1-\beta_2^t} / (1-\beta_1^t)`,
    :math:`\sqrt{\beta_2}` written :math:`b` and :math:`d_0` = ``d0``:

    .. math::

        n_t = b\, n_{t-1} + (1-b)\,\gamma_t \Big\langle g_t,
              \frac{s_{t-1}}{\sqrt{v_{t-1}} + \epsilon} \Big\rangle, \quad
        m_t = \beta_1 m_{t-1} + (1-\beta_1)\gamma_t g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        s_t = b\, s_{t-1} + (1-b)\gamma_t g_t, \qquad
        d_{t+1} = \max\Big(d_t, \frac{n_t}{(1-b)\|s_t\|_1}\Big), \qquad
        x_{t+1} = x_t - \gamma_t \lambda x_t - \frac{m_t}{\sqrt{v_t} + \epsilon}

    with :math:`g_t = \pm\nabla f(x_t)`, the inner product and the norm over all leaves
    together. ``lr`` is a factor on the estimated rate (1, or a schedule from 1 down).

    Matches ``optax.contrib.dadapt_adamw`` (its ``learning_rate``, ``estim_lr0`` are
    ``lr``, ``d0`` here, the names of the authors' ``dadaptation`` package; its state's
    ``grad_sum``, ``estim_lr``, ``numerator_weighted`` are ``s``, ``d``,
    ``d_numerator``). Differences: while every gradient so far has been zero,
    :math:`\|s_t\|_1 = 0` and :math:`d` is kept (Optax divides by zero and the run
    becomes NaN); the scalars are kept in the widest float dtype of the params (Optax:
    the narrowest); ``maximize`` is an addition. The authors' ``DAdaptAdam`` (PyTorch)
    differs in its defaults and details and is not the reference here.

    Parameters
    ----------
    lr:
        Factor on the estimated rate (> 0) or a schedule. Default ``1.0``.
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.9, 0.999)``.
    eps:
        :math:`\epsilon \ge 0`, outside the root. Default ``1e-8``.
    d0:
        The first (under-)estimate :math:`d_0 > 0`. Default ``1e-6``.
    weight_decay:
        Decoupled decay :math:`\lambda \ge 0`, times :math:`\gamma_t`. Default ``0``.
    maximize:
        Ascend instead of descend.

    References
    ----------
    Defazio and Mishchenko, "Learning-Rate-Free Learning by D-Adaptation", ICML 2023;
    ``optax.contrib.dadapt_adamw``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.dadapt_adamw()
    >>> x, state = 1.0, opt.init(1.0)
    >>> for _ in range(100):
    ...     x, state = opt.step(x, 2 * x, state)
    >>> float(state.d) > 0.01
    True
    """
    lr = check_lr(lr)
    beta1, beta2 = check_betas(betas)
    check_nonnegative(eps=eps, weight_decay=weight_decay)
    d0 = check_positive("d0", d0)
    check_flags(maximize=maximize)
    sqrt_beta2 = beta2**0.5

    def init(params):
        dtype = float_dtype(params)
        return fresh_state(
            DAdaptAdamWState, params, d=_tree.full((), d0, dtype),
            d_numerator=_tree.full((), 0, dtype),
        )  # fmt: skip

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        t = state.count + 1
        correction = ((1 - beta2**t) ** 0.5) / (1 - beta1**t)
        dlr = (state.d * lr_at(lr, state.count) * correction).astype(state.d.dtype)
        weighted = jax.tree.map(lambda s, v: s / (jnp.sqrt(v) + eps), state.s, state.exp_avg_sq)
        numerator_term = inner_product(grads, weighted)
        exp_avg = jax.tree.map(lambda m, g: beta1 * m + (1 - beta1) * dlr * g, state.exp_avg, grads)
        exp_avg_sq = jax.tree.map(
            lambda v, g: beta2 * v + (1 - beta2) * g * g, state.exp_avg_sq, grads
        )
        s = jax.tree.map(lambda s, g: sqrt_beta2 * s + (1 - sqrt_beta2) * dlr * g, state.s, grads)
        d_numerator = sqrt_beta2 * state.d_numerator + (1 - sqrt_beta2) * dlr * numerator_term
        s_norm = abs_sum(s)
        estimate = d_numerator / ((1 - sqrt_beta2) * s_norm)
        d = jnp.where(s_norm > 0, jnp.maximum(state.d, estimate), state.d)
        updates = jax.tree.map(
            lambda m, v, p: -weight_decay * dlr * p - m / (jnp.sqrt(v) + eps),
            exp_avg, exp_avg_sq, params,
        )  # fmt: skip
        new_state = DAdaptAdamWState(t, exp_avg, exp_avg_sq, s, d, d_numerator)
        return add_updates(params, updates), new_state

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "d0": d0,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return Optimizer("dadapt_adamw", init, step, hyperparams)


class ProdigyState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any  # first moment of d_t-scaled gradients
    exp_avg_sq: Any  # second moment of d_t-scaled gradients
    s: Any  # discounted sum of scaled gradients (every slice_p-th entry, flattened)
    p0: Any  # the starting params (every slice_p-th entry, flattened)
    d: jax.Array  # the distance estimate
    d_max: jax.Array  # the largest estimate so far
    d_numerator: jax.Array  # discounted sum of the estimate's numerator


def _check_growth_rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 1:
        raise invalid("growth_rate", "a number >= 1 (float('inf') for no limit)", value)
    return float(value)


def prodigy(
    lr: LearningRate = 1.0,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    beta3: float | None = None,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decouple: bool = True,
    use_bias_correction: bool = False,
    safeguard_warmup: bool = False,
    d0: float = 1e-6,
    d_coef: float = 1.0,
    growth_rate: float = math.inf,
    slice_p: int = 1,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Prodigy: Adam whose learning rate is a quickly growing estimate of the distance to go.

    With :math:`\beta_3` = ``beta3`` (:math:`\sqrt{\beta_2}` when ``None``),
    :math:`c_t = \sqrt{1-\beta_2^t}/(1-\beta_1^t)` (1 unless
    ``use_bias_correction``), :math:`\gamma_t = d_t \eta_t c_t` and
    :math:`g_t = \pm\nabla f(x_t)` (plus :math:`\lambda x_t` when not ``decouple``):

    .. math::

        r_t = \beta_3 r_{t-1} + \frac{d_t}{d_0}\gamma_t \langle g_t, x_0 - x_t\rangle,
        \quad
        s_t = \beta_3 s_{t-1} + \frac{d_t}{d_0}\gamma_t g_t, \quad
        \hat d_t = \kappa \frac{r_t}{\|s_t\|_1} \\
        m_t = \beta_1 m_{t-1} + (1-\beta_1) d_t g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) d_t^2 g_t^2, \quad
        d_{t+1} = \min\big(\max(d_t, \hat d_t), \rho\, d_t\big) \\
        x_{t+1} = x_t - \gamma_t \lambda x_t
                  - \gamma_t \frac{m_t}{\sqrt{v_t} + d_{t+1}\epsilon}

    with :math:`\kappa` = ``d_coef``, :math:`\rho` = ``growth_rate`` (the first
    estimate above :math:`d_0` is taken whole), the decay term only when ``decouple``,
    and the inner product and norm over all leaves together. With :math:`\beta_1 = 0`
    the step is :math:`\gamma_t d_{t+1} g_t / (\sqrt{v_t} + d_{t+1}\epsilon)` (the new
    :math:`d`, as ``prodigyopt`` takes it). ``safeguard_warmup``
    drops :math:`\eta_t c_t` from :math:`s_t` (for warmup schedules starting near 0).
    ``slice_p = p`` estimates :math:`d` from every p-th entry of each (flattened) leaf.
    ``lr`` is a factor on the estimated rate (1, or a schedule from 1 down).

    Defaults and formulas are those of ``prodigyopt.Prodigy``, the authors' PyTorch
    implementation, which the paper's users run and descend follows for algorithms
    with a PyTorch reference: no bias correction, decoupled decay, unlimited growth.
    ``optax.contrib.prodigy`` is this optimizer with ``use_bias_correction=True`` (its
    ``learning_rate``, ``estim_lr0``, ``estim_lr_coef`` are ``lr``, ``d0``,
    ``d_coef``): Optax always corrects the bias, decays only decoupled, has no
    ``growth_rate``, ``slice_p`` or mask, and computes :math:`\hat d_t` before the
    growth limit exactly as here with :math:`\rho = \infty`. Differences from both:
    while every gradient so far has been zero (:math:`\|s_t\|_1 = 0`) the step is
    skipped as in ``prodigyopt`` (Optax divides by zero and the run becomes NaN); the
    scalars are kept in the widest float dtype of the params (``prodigyopt`` keeps
    Python floats, Optax the narrowest dtype); ``prodigyopt``'s ``fsdp_in_use`` has no
    counterpart; ``maximize`` is an addition; ``weight_decay_mask`` is what
    ``prodigyopt`` does with a parameter group of ``weight_decay=0``.

    Parameters
    ----------
    lr:
        Factor on the estimated rate (> 0) or a schedule. Default ``1.0``.
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.9, 0.999)``.
    beta3:
        :math:`\beta_3` in ``[0, 1)``, or ``None`` for :math:`\sqrt{\beta_2}`.
    eps:
        :math:`\epsilon > 0`, times :math:`d`, outside the root. Default ``1e-8``.
    weight_decay:
        Decay :math:`\lambda \ge 0`. Default ``0``.
    decouple:
        Decay the weights directly (AdamW), else through the gradient. Default True.
    use_bias_correction:
        Adam's bias correction :math:`c_t`. Default False (Optax: always on).
    safeguard_warmup:
        Leave :math:`\eta_t c_t` out of :math:`s_t`. Default False.
    d0:
        The first (under-)estimate :math:`d_0 > 0`. Default ``1e-6``.
    d_coef:
        :math:`\kappa > 0`, the factor on the estimate. Default ``1.0``.
    growth_rate:
        :math:`\rho \ge 1`, the most :math:`d` may grow in one step. Default ``inf``.
    slice_p:
        Estimate from every ``slice_p``-th entry (>= 1). Default ``1`` (all).
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"`` (the leaves named ``w``), a pytree of ``True`` / ``False``, or a
        function.

    References
    ----------
    Mishchenko and Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free
    Learner", ICML 2024; ``prodigyopt.Prodigy``; ``optax.contrib.prodigy``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.prodigy()
    >>> x, state = 1.0, opt.init(1.0)
    >>> for _ in range(100):
    ...     x, state = opt.step(x, 2 * x, state)
    >>> float(state.d) > 0.01
    True
    """
    lr = check_lr(lr)
    beta1, beta2 = check_betas(betas)
    if beta3 is not None:
        beta3 = check_betas((beta3, 0.0), name="beta3")[0]
    eps = check_positive("eps", eps)
    check_nonnegative(weight_decay=weight_decay)
    flags = {
        "decouple": decouple,
        "use_bias_correction": use_bias_correction,
        "safeguard_warmup": safeguard_warmup,
        "maximize": maximize,
    }
    check_flags(**flags)
    d0 = check_positive("d0", d0)
    d_coef = check_positive("d_coef", d_coef)
    growth_rate = _check_growth_rate(growth_rate)
    slice_p = check_int("slice_p", slice_p)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)
    beta3_ = math.sqrt(beta2) if beta3 is None else beta3

    def sliced(leaf):
        return jnp.ravel(leaf)[::slice_p]

    def starting_slice(leaf):  # sliced(leaf), made in NumPy outside jit
        if is_traced(leaf) or not isinstance(leaf, (jax.Array, np.ndarray)):
            return sliced(leaf)
        return jax.device_put(np.ravel(np.asarray(leaf))[::slice_p].copy())

    def init(params):
        dtype = float_dtype(params)
        p0 = jax.tree.map(starting_slice, params)
        return fresh_state(
            ProdigyState, params, s=_tree.zeros_like(p0), p0=p0, d=_tree.full((), d0, dtype),
            d_max=_tree.full((), d0, dtype), d_numerator=_tree.full((), 0, dtype),
        )  # fmt: skip

    def step(params, grads, state, *, value=None, value_fn=None):
        d = state.d
        t = state.count + 1
        correction = ((1 - beta2**t) ** 0.5) / (1 - beta1**t) if use_bias_correction else 1
        dlr = (d * lr_at(lr, state.count) * correction).astype(d.dtype)
        grads = signed(grads, maximize=maximize)
        if not decouple:
            grads = coupled_decay(grads, params, weight_decay, mask)
        # As prodigyopt: each leaf's term (d / d0) dlr <g, x0 - x>, summed over leaves.
        delta_numerator = tree_total(
            jax.tree.map(
                lambda g, p0, p: (d / d0) * dlr * jnp.vdot(sliced(g), p0 - sliced(p)),
                grads, state.p0, params,
            )
        )  # fmt: skip
        exp_avg = jax.tree.map(lambda m, g: m * beta1 + d * (1 - beta1) * g, state.exp_avg, grads)
        exp_avg_sq = jax.tree.map(
            lambda v, g: v * beta2 + d * d * (1 - beta2) * g * g, state.exp_avg_sq, grads
        )
        s_rate = (d / d0) * (d if safeguard_warmup else dlr)
        s = jax.tree.map(lambda s, g: s * beta3_ + s_rate * sliced(g), state.s, grads)
        d_denom = abs_sum(s)
        d_numerator = state.d_numerator * beta3_ + delta_numerator
        d_hat = d_coef * d_numerator / d_denom
        grown = jnp.where(d == d0, jnp.maximum(d, d_hat), d)
        d_max = jnp.maximum(state.d_max, d_hat)
        new_d = jnp.minimum(d_max, grown * growth_rate)

        def update(p, m, v, g):
            denom = jnp.sqrt(v) + new_d * eps
            if beta1 > 0:
                return -dlr * m / denom
            # Without momentum prodigyopt scales g by the new d, as it does the eps.
            return -dlr * new_d * g / denom

        start = params
        if decouple and weight_decay != 0:
            # As prodigyopt's p.add_(p, alpha=-decay * dlr), not AdamW's p.mul_(1 - ...).
            start = jax.tree.map(
                lambda p, decayed: p + (-weight_decay * dlr) * p if decayed else p,
                params, decayed_leaves(mask, params),
            )  # fmt: skip
        moved = add_updates(
            params, jax.tree.map(update, params, exp_avg, exp_avg_sq, grads), start=start
        )
        # prodigyopt steps only once some gradient was nonzero (d_denom > 0).
        stepped = d_denom > 0
        new_params = jax.tree.map(lambda q, p: jnp.where(stepped, q, p), moved, params)
        new_state = ProdigyState(
            state.count + stepped.astype(state.count.dtype),
            exp_avg,
            exp_avg_sq,
            s,
            state.p0,
            jnp.where(stepped, new_d, d),
            jnp.where(stepped, d_max, state.d_max),
            jnp.where(stepped, d_numerator, state.d_numerator),
        )
        return new_params, new_state

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "beta3": beta3,
        "eps": eps,
        "weight_decay": weight_decay,
        **flags,
        "d0": d0,
        "d_coef": d_coef,
        "growth_rate": growth_rate,
        "slice_p": slice_p,
    }
    return with_decay_mask(Optimizer("prodigy", init, step, hyperparams), mask)
