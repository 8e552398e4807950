r"""Optax's relatives of Adam that ``torch.optim`` lacks: Adan, AMSGrad, AdamaxW, NAdamW, Yogi.

Each equals its Optax alias (``optax.adan``, ``optax.amsgrad``, ``optax.adamaxw``,
``optax.nadamw``, ``optax.yogi``) step for step, with Optax's order of floating-point
operations; the hyperparameters take the names of the rest of the package (``lr``,
``betas``, ``weight_decay_mask``) rather than Optax's (``learning_rate``, ``b1``,
``b2``, ``mask``). Two differ from algorithms of the same name in ``torch.optim``,
which :mod:`descend.optim.adam` follows: :func:`amsgrad` is not ``adam(amsgrad=True)``
and :func:`nadamw` is not ``nadam(decoupled_weight_decay=True)`` (each docstring says
how).

In the three with weight decay (Adan, AdamaxW, NAdamW), Optax's decay :math:`\lambda x`
is added to the update before it is scaled by the learning rate,
:math:`x \leftarrow x - \eta_t(u_t + \lambda x)`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend import _tree
from descend.errors import invalid
from descend.optim._common import (
    check_adam_like,
    check_decay_mask,
    check_flags,
    check_nonnegative,
    with_decay_mask,
)
from descend.optim.adam import AdamaxState
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import (
    add_updates,
    coupled_decay,
    fresh_state,
    infinity_moment,
    optax_average,
    optax_debias,
    optax_nesterov_debias,
    optax_root_ratio,
    optax_scale_by_rate,
    running_max,
    signed,
    zero_count,
)


class MomentsState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any  # first moment m
    exp_avg_sq: Any  # second moment v


class AMSGradState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any
    exp_avg_sq: Any
    # Running maximum of the bias-corrected v_t / (1 - beta2^t) (of the raw v_t with
    # bias_correction_nu=False): Optax's nu_max, not torch's max_exp_avg_sq.
    max_exp_avg_sq: Any


class AdanState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any  # m: average of the gradients
    exp_avg_diff: Any  # v: average of the differences of successive gradients
    exp_avg_sq: Any  # n: average of the squared look-ahead gradient
    prev_grad: Any  # the previous gradient


def _squares(tree):
    return jax.tree.map(lambda g: g**2, tree)


def _decayed_step(params, directions, state_count, lr, weight_decay, mask):
    """``x - lr * (u + weight_decay * x)`` as Optax's ``add_decayed_weights`` (masked)
    followed by ``scale_by_learning_rate``."""
    directions = coupled_decay(directions, params, weight_decay, mask)
    return add_updates(params, optax_scale_by_rate(directions, lr_at(lr, state_count)))


def _check_three_betas(value: Any) -> tuple[float, float, float]:
    hint = "; typical values are (0.98, 0.92, 0.99)"
    try:
        betas = tuple(float(beta) for beta in value)
    except (TypeError, ValueError):
        raise invalid("betas", "three numbers (beta1, beta2, beta3)", value, hint) from None
    if len(betas) != 3:
        raise invalid("betas", "three numbers (beta1, beta2, beta3)", value, hint)
    for index, beta in enumerate(betas):
        if not (math.isfinite(beta) and 0.0 <= beta < 1.0):
            raise invalid(f"betas[{index}]", "in [0.0, 1.0)", value, hint)
    return betas


def adan(
    lr: LearningRate = 1e-3,
    *,
    betas: tuple[float, float, float] = (0.98, 0.92, 0.99),
    eps: float = 1e-8,
    eps_root: float = 1e-8,
    weight_decay: float = 0.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Adan: adaptive Nesterov momentum from averages of gradients and their differences.

    With :math:`g_t = \pm\nabla f(x_t)`, :math:`\Delta_t = g_t - g_{t-1}`
    (:math:`\Delta_1 = 0`), all averages starting at 0 and each debiased by
    :math:`\hat a_t = a_t / (1 - \beta^t)` with its own :math:`\beta`:

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) \Delta_t \\
        n_t = \beta_3 n_{t-1} + (1-\beta_3) \big(g_t + (1-\beta_2)\Delta_t\big)^2 \\
        x_{t+1} = x_t - \eta_t \left(
            \frac{\hat m_t + (1-\beta_2)\hat v_t}{\sqrt{\hat n_t + \bar\epsilon} + \epsilon}
            + \lambda x_t \right)

    Matches ``optax.adan`` (its ``b1``, ``b2``, ``b3`` are ``betas`` here, its ``mask``
    is ``weight_decay_mask``). The betas are the decays of the averages, as in Optax and
    the authors' code; the paper writes the complements (its :math:`\beta_1 = 0.02` is
    ``betas[0] = 0.98``). Differences: Optax's ``learning_rate`` has no default
    (``1e-3`` here, the default of the authors' PyTorch ``Adan``); ``maximize`` is an
    addition; ``weight_decay`` is a number (Optax also takes a schedule). The decay is
    Optax's: added to the update and scaled by :math:`\eta_t`, not the paper's
    proximal step :math:`x_{t+1} = (x_t - \eta_t u_t) / (1 + \lambda\eta_t)` that
    Optax's docstring shows and the authors' code takes by default (``no_prox=False``);
    their code has no :math:`\bar\epsilon` and offers gradient clipping.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-3``.
    betas:
        :math:`(\beta_1, \beta_2, \beta_3)`, each in ``[0, 1)``. Default
        ``(0.98, 0.92, 0.99)``.
    eps:
        :math:`\epsilon \ge 0`, outside the square root. Default ``1e-8``.
    eps_root:
        :math:`\bar\epsilon \ge 0`, inside the square root. Default ``1e-8``.
    weight_decay:
        :math:`\lambda \ge 0`, multiplied by the learning rate. Default ``0``.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"``, a pytree of ``True`` / ``False``, or a function (Optax's
        ``mask``).

    Raises
    ------
    InputError
        If a hyperparameter is outside its range or not of its kind (the message names
        it), or ``weight_decay_mask`` does not fit the params (``init``).

    References
    ----------
    Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep
    Models", IEEE TPAMI 2024 (arXiv:2208.06677); ``optax.adan``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.adan(lr=0.1)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    0.9
    """
    lr = check_lr(lr)
    beta1, beta2, beta3 = _check_three_betas(betas)
    check_nonnegative(eps=eps, eps_root=eps_root, weight_decay=weight_decay)
    check_flags(maximize=maximize)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        return fresh_state(AdanState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        first = state.count == 0
        diff = jax.tree.map(
            lambda g, prev: jnp.where(first, jnp.zeros_like(g), g - prev), grads, state.prev_grad
        )
        exp_avg = optax_average(state.exp_avg, grads, beta1)
        exp_avg_diff = optax_average(state.exp_avg_diff, diff, beta2)
        look_ahead = jax.tree.map(lambda g, d: g + (1 - beta2) * d, grads, diff)
        exp_avg_sq = optax_average(state.exp_avg_sq, _squares(look_ahead), beta3)
        t = state.count + 1
        numerators = jax.tree.map(
            lambda m, v: m + (1 - beta2) * v,
            optax_debias(exp_avg, beta1, t),
            optax_debias(exp_avg_diff, beta2, t),
        )
        directions = optax_root_ratio(numerators, optax_debias(exp_avg_sq, beta3, t), eps, eps_root)
        new_params = _decayed_step(params, directions, state.count, lr, weight_decay, mask)
        return new_params, AdanState(t, exp_avg, exp_avg_diff, exp_avg_sq, grads)

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2, beta3),
        "eps": eps,
        "eps_root": eps_root,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("adan", init, step, hyperparams), mask)


def amsgrad(
    lr: LearningRate = 1e-3,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    eps_root: float = 0.0,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    maximize: bool = False,
) -> Optimizer:
    r"""AMSGrad as Optax has it: Adam dividing by the largest *debiased* second moment so far.

    With :math:`m_t, v_t` Adam's moments of :math:`g_t = \pm\nabla f(x_t)`,
    :math:`\hat m_t = m_t / (1-\beta_1^t)` and :math:`\hat v_t = v_t / (1-\beta_2^t)`:

    .. math::

        \tilde v_t = \max(\tilde v_{t-1}, \hat v_t), \qquad
        x_{t+1} = x_t - \eta_t \frac{\hat m_t}{\sqrt{\tilde v_t + \bar\epsilon} + \epsilon}

    with :math:`\tilde v_0 = 0`. ``bias_correction_mu=False`` uses :math:`m_t` for
    :math:`\hat m_t`, ``bias_correction_nu=False`` takes the maximum of the raw
    :math:`v_t`; both ``False`` is the paper's algorithm.

    Matches ``optax.amsgrad`` (``b1``, ``b2`` are ``betas`` here). It is not
    :func:`~descend.optim.adam.adam` with ``amsgrad=True``, which is
    ``torch.optim.Adam``'s. Torch keeps the maximum of the *raw* moments and debiases
    it with the current step's correction, dividing by
    :math:`\sqrt{\max_{s \le t} v_s} / \sqrt{1-\beta_2^t} + \epsilon`; Optax debiases
    each moment with its own step's correction before the maximum, dividing by
    :math:`\sqrt{\max_{s \le t} v_s / (1-\beta_2^s) + \bar\epsilon} + \epsilon`.
    Since :math:`1-\beta_2^s \le 1-\beta_2^t`, Optax's maximum is never smaller than
    torch's on the same gradients, and it keeps early moments that torch's forgets:
    after a large first gradient :math:`g_1` it holds :math:`\hat v_1 = g_1^2` until a
    debiased moment exceeds it, while torch's raw :math:`v_1 = (1-\beta_2) g_1^2` is
    soon overtaken; Optax's steps are then the smaller. The two trajectories agree at
    the first step and part at the second; no setting of the two flags gives torch's.
    ``state.max_exp_avg_sq`` holds Optax's maximum (of debiased moments, with the
    default flags), not torch's.

    Other differences: Optax's ``learning_rate`` has no default (``1e-3`` here, as
    Adam's); ``maximize`` is an addition; Optax's ``mu_dtype`` is not offered. There
    is no weight decay, as in Optax.

    Parameters
    ----------
    lr, eps, eps_root, maximize:
        As in :func:`adan`. Defaults ``1e-3``, ``1e-8``, ``0`` and ``False``.
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.9, 0.999)``.
    bias_correction_mu, bias_correction_nu:
        Debias the first moment; debias the second before the maximum. Default ``True``.

    Raises
    ------
    InputError
        If a hyperparameter is outside its range or not of its kind (the message names it).

    References
    ----------
    Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", ICLR 2018;
    ``optax.amsgrad``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.amsgrad(lr=0.1)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 4)
    0.9
    """
    flags = {
        "bias_correction_mu": bias_correction_mu,
        "bias_correction_nu": bias_correction_nu,
        "maximize": maximize,
    }
    lr, (beta1, beta2) = check_adam_like(lr, betas, eps, 0.0, flags)
    check_nonnegative(eps_root=eps_root)

    def init(params):
        return fresh_state(AMSGradState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        exp_avg = optax_average(state.exp_avg, grads, beta1)
        exp_avg_sq = optax_average(state.exp_avg_sq, _squares(grads), beta2)
        t = state.count + 1
        avg_hat = optax_debias(exp_avg, beta1, t) if bias_correction_mu else exp_avg
        sq_hat = optax_debias(exp_avg_sq, beta2, t) if bias_correction_nu else exp_avg_sq
        max_exp_avg_sq = running_max(state.max_exp_avg_sq, sq_hat)
        directions = optax_root_ratio(avg_hat, max_exp_avg_sq, eps, eps_root)
        updates = optax_scale_by_rate(directions, lr_at(lr, state.count))
        new_state = AMSGradState(t, exp_avg, exp_avg_sq, max_exp_avg_sq)
        return add_updates(params, updates), new_state

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "eps_root": eps_root,
        "bias_correction_mu": bias_correction_mu,
        "bias_correction_nu": bias_correction_nu,
        "maximize": maximize,
    }
    return Optimizer("amsgrad", init, step, hyperparams)


def adamaxw(
    lr: LearningRate = 2e-3,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""AdamaxW: Adamax with decoupled weight decay, as Optax has it.

    With :math:`g_t = \pm\nabla f(x_t)` (the decay never enters the moments):

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        u_t = \max(\beta_2 u_{t-1},\ |g_t| + \epsilon) \\
        x_{t+1} = x_t - \eta_t \left(\frac{m_t / (1-\beta_1^t)}{u_t} + \lambda x_t\right)

    Matches ``optax.adamaxw`` (``b1``, ``b2`` are ``betas`` here; its ``mask`` is
    ``weight_decay_mask``). :func:`~descend.optim.adam.adamax` (``torch.optim.Adamax``)
    has the same :math:`u_t` but a coupled ``weight_decay`` that enters the moments; its
    first moment is rounded as torch's ``lerp``. Differences from Optax: its
    ``learning_rate`` has no default (``2e-3`` here, the paper's and torch's Adamax
    default); ``maximize`` is an addition; ``weight_decay`` is a number (Optax also
    takes a schedule). Optax's ``adamaxw`` has no ``nesterov`` flag.

    Parameters
    ----------
    lr, betas, maximize:
        As in :func:`amsgrad`. ``lr`` defaults to ``2e-3``.
    eps:
        :math:`\epsilon \ge 0`, inside the maximum. Default ``1e-8``.
    weight_decay, weight_decay_mask:
        As in :func:`adan`. ``weight_decay`` defaults to ``1e-4``, as in Optax.

    Raises
    ------
    InputError
        As in :func:`adan`.

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, section 7;
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019;
    ``optax.adamaxw``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.adamaxw(lr=0.1, weight_decay=0.5)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    0.85
    """
    lr, (beta1, beta2) = check_adam_like(lr, betas, eps, weight_decay, {"maximize": maximize})
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        return fresh_state(AdamaxState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        exp_avg = optax_average(state.exp_avg, grads, beta1)
        exp_inf = infinity_moment(state.exp_inf, grads, beta2, eps)
        directions = jax.tree.map(
            jnp.divide, optax_debias(exp_avg, beta1, state.count + 1), exp_inf
        )
        new_params = _decayed_step(params, directions, state.count, lr, weight_decay, mask)
        return new_params, AdamaxState(state.count + 1, exp_avg, exp_inf)

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("adamaxw", init, step, hyperparams), mask)


def nadamw(
    lr: LearningRate = 1e-3,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 1e-4,
    nesterov: bool = True,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""NAdamW as Optax has it: AdamW with a Nesterov look-ahead of the debiased momentum.

    With Adam's :math:`m_t, v_t` of :math:`g_t = \pm\nabla f(x_t)` (the decay never
    enters them) and :math:`\hat v_t = v_t / (1-\beta_2^t)`:

    .. math::

        \hat m_t = \frac{\beta_1 m_t}{1-\beta_1^{t+1}} + \frac{(1-\beta_1) g_t}{1-\beta_1^t},
        \qquad
        x_{t+1} = x_t - \eta_t \left(\frac{\hat m_t}{\sqrt{\hat v_t + \bar\epsilon} + \epsilon}
            + \lambda x_t\right)

    ``nesterov=False`` replaces :math:`\hat m_t` by :math:`m_t / (1-\beta_1^t)`: that is
    ``optax.adamw``.

    Matches ``optax.nadamw`` (``b1``, ``b2`` are ``betas`` here; its ``mask`` is
    ``weight_decay_mask``; ``nesterov`` is the keyword ``optax.nadamw`` passes on to
    ``optax.adamw``). It is not :func:`~descend.optim.adam.nadam` with
    ``decoupled_weight_decay=True`` (``torch.optim.NAdam``'s NAdamW): torch's momentum
    coefficient follows Dozat's warm-up schedule :math:`\mu_t` (``momentum_decay``),
    its decay shrinks the weights first, :math:`x_t \leftarrow (1-\eta_t\lambda)x_t`,
    and its default ``weight_decay`` is 0. With ``nesterov=False`` (and ``eps_root=0``)
    it equals :func:`~descend.optim.adam.adamw` (torch's) in exact arithmetic, with
    Optax's rounding and defaults (``weight_decay=1e-4``, not ``1e-2``). Other differences
    from Optax: its ``learning_rate`` has no default (``1e-3`` here, as Adam's);
    ``maximize`` is an addition; ``weight_decay`` is a number (Optax also takes a
    schedule); ``mu_dtype`` is not offered.

    Parameters
    ----------
    lr, betas, eps, eps_root, maximize:
        As in :func:`amsgrad`, with its defaults.
    weight_decay, weight_decay_mask:
        As in :func:`adan`. ``weight_decay`` defaults to ``1e-4``, as in Optax.
    nesterov:
        Use the Nesterov look-ahead. Default ``True``.

    Raises
    ------
    InputError
        As in :func:`adan`.

    References
    ----------
    Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop;
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019;
    ``optax.nadamw``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.nadamw(lr=0.1, weight_decay=0.0)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 4)
    0.8526
    >>> opt = ds.optim.nadamw(lr=0.1, weight_decay=0.0, nesterov=False)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 4)
    0.9
    """
    flags = {"nesterov": nesterov, "maximize": maximize}
    lr, (beta1, beta2) = check_adam_like(lr, betas, eps, weight_decay, flags)
    check_nonnegative(eps_root=eps_root)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        return fresh_state(MomentsState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        exp_avg = optax_average(state.exp_avg, grads, beta1)
        exp_avg_sq = optax_average(state.exp_avg_sq, _squares(grads), beta2)
        t = state.count + 1
        if nesterov:
            avg_hat = optax_nesterov_debias(exp_avg, grads, beta1, t)
        else:
            avg_hat = optax_debias(exp_avg, beta1, t)
        directions = optax_root_ratio(avg_hat, optax_debias(exp_avg_sq, beta2, t), eps, eps_root)
        new_params = _decayed_step(params, directions, state.count, lr, weight_decay, mask)
        return new_params, MomentsState(t, exp_avg, exp_avg_sq)

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "eps_root": eps_root,
        "weight_decay": weight_decay,
        "nesterov": nesterov,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("nadamw", init, step, hyperparams), mask)


# Optax's yogi alias starts both moments here (scale_by_yogi's initial_accumulator_value).
YOGI_INITIAL_ACCUMULATOR = 1e-6


def yogi(
    lr: LearningRate = 1e-2,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-3,
    maximize: bool = False,
) -> Optimizer:
    r"""Yogi: Adam whose second moment moves additively, towards :math:`g_t^2`, by its sign.

    With :math:`g_t = \pm\nabla f(x_t)` and :math:`m_0 = v_0 = 10^{-6}`:

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        v_t = v_{t-1} - (1-\beta_2)\,\mathrm{sign}(v_{t-1} - g_t^2)\, g_t^2 \\
        x_{t+1} = x_t - \eta_t \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}

    Adam's :math:`v_t - v_{t-1} = (1-\beta_2)(g_t^2 - v_{t-1})` is proportional to the
    gap; Yogi's step is :math:`(1-\beta_2) g_t^2` whatever the gap, so the effective
    learning rate cannot grow quickly when gradients shrink.

    Matches ``optax.yogi`` (``b1``, ``b2`` are ``betas`` here), including its start of
    both moments at :math:`10^{-6}` (``scale_by_yogi``'s ``initial_accumulator_value``,
    which the alias fixes) and its bias corrections. Differences: Optax's
    ``learning_rate`` has no default (``1e-2`` here, that of TensorFlow Addons' ``Yogi``,
    ten times Adam's); ``maximize`` is an addition. PyTorch has no Yogi.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-2``.
    betas, maximize:
        As in :func:`amsgrad`.
    eps:
        :math:`\epsilon \ge 0`, outside the square root. Default ``1e-3`` (larger than
        Adam's, as in the paper and Optax).

    Raises
    ------
    InputError
        As in :func:`amsgrad`.

    References
    ----------
    Zaheer et al., "Adaptive Methods for Nonconvex Optimization", NeurIPS 2018;
    ``optax.yogi``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.yogi(lr=0.1)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 4)
    0.9001
    """
    lr, (beta1, beta2) = check_adam_like(lr, betas, eps, 0.0, {"maximize": maximize})

    def init(params):
        start = _tree.full_like(params, YOGI_INITIAL_ACCUMULATOR)
        return MomentsState(zero_count(), start, start)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        exp_avg = optax_average(state.exp_avg, grads, beta1)
        exp_avg_sq = jax.tree.map(
            lambda g2, v: v - (1 - beta2) * jnp.sign(v - g2) * g2, _squares(grads), state.exp_avg_sq
        )
        t = state.count + 1
        directions = optax_root_ratio(
            optax_debias(exp_avg, beta1, t), optax_debias(exp_avg_sq, beta2, t), eps
        )
        updates = optax_scale_by_rate(directions, lr_at(lr, state.count))
        return add_updates(params, updates), MomentsState(t, exp_avg, exp_avg_sq)

    hyperparams = {"lr": lr, "betas": (beta1, beta2), "eps": eps, "maximize": maximize}
    return Optimizer("yogi", init, step, hyperparams)
