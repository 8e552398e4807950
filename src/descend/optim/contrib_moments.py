"""Moment methods of ``optax.contrib``: ADOPT, AdEMAMix and its simplified form.

``torch.optim`` has none of them. The hyperparameter names follow the rest of the
package (``lr``, ``betas``) rather than Optax's (``learning_rate``, ``b1``, ``b2``,
``b3``), while the update formulas and their order of operations are Optax's, so
trajectories agree with ``optax.contrib.adopt``, ``ademamix`` and
``simplified_ademamix`` to rounding. Where Optax takes a schedule for a hyperparameter
other than the learning rate (ADOPT's clip value, AdEMAMix's ``alpha`` and
:math:`\\beta_3`), so does descend: any function of the 0-based step count, such as
the schedules of :mod:`descend.optim.schedules`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend.errors import DescendTypeError, InputError
from descend.optim._common import (
    check_betas,
    check_decay_mask,
    check_flags,
    check_nonnegative,
    check_unit_interval,
    nonnegative_number,
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

Scalar = float | Callable[[jax.Array], jax.Array]


class AdoptState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any  # momentum of the normalized gradients
    exp_avg_sq: Any  # second moment, one gradient behind the normalization


class AdEMAMixState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg_fast: Any  # m1, decay beta1, bias-corrected
    exp_avg_slow: Any  # m2, decay beta3, not bias-corrected
    exp_avg_sq: Any  # nu, decay beta2


class SimplifiedAdEMAMixState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any  # m = beta1 m + g: a discounted sum, not an average
    exp_avg_sq: Any


def _quarter_power(count: jax.Array) -> jax.Array:
    """ADOPT's default clip value: Optax's ``lambda x: x**0.25`` of the int32 count."""
    return count**0.25


def _value_at(value: Scalar, count: jax.Array) -> Any:
    """A hyperparameter at step ``count``: a schedule called, a number as it is."""
    return value(count) if callable(value) else value


def _number_or_schedule(name: str, value: Any, check: Callable[[str, Any], float]) -> Scalar:
    if callable(value):
        return value
    if isinstance(value, bool):
        raise DescendTypeError(f"{name} must be a number or a schedule, got {value!r}")
    return check(name, value)


def _check_three_betas(value: Any) -> tuple[float, float, Scalar]:
    """``(beta1, beta2, beta3)``, each in ``[0, 1)``; ``beta3`` may be a schedule."""
    try:
        beta1, beta2, beta3 = value
        beta3 = beta3 if callable(beta3) else check_unit_interval("betas[2]", beta3)
        return check_unit_interval("betas[0]", beta1), check_unit_interval("betas[1]", beta2), beta3
    except (TypeError, ValueError):  # InputError is a ValueError
        raise InputError(
            f"betas must be three decay rates in [0.0, 1.0) (the third may be a schedule), "
            f"got {value!r}; typical values are (0.9, 0.999, 0.9999)"
        ) from None


def adopt(
    lr: LearningRate = 1e-3,
    *,
    betas: tuple[float, float] = (0.9, 0.9999),
    eps: float = 1e-6,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], jax.Array] | None = None,
    maximize: bool = False,
) -> Optimizer:
    r"""ADOPT: Adam that normalizes the gradient by the second moment of the step before.

    With :math:`g_t = \pm\nabla f(x_t)` and steps counted from :math:`t = 0`:

    .. math::

        v_t = \begin{cases} g_0^2 & t = 0 \\
                            \beta_2 v_{t-1} + (1-\beta_2) g_t^2 & t > 0 \end{cases}, \qquad
        u_t = \mathrm{clip}\!\left(\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)},
                                   -c(t), c(t)\right) \\
        m_t = \begin{cases} 0 & t = 0 \\
                            \beta_1 m_{t-1} + (1-\beta_1) u_t & t > 0 \end{cases}, \qquad
        x_{t+1} = x_t - \eta_t\, m_t

    with :math:`m_{-1} = v_{-1} = 0` and :math:`c(t)` = ``clip_value_fn(t)``, by default
    :math:`t^{1/4}` (0 at the first step). The normalization uses :math:`v_{t-1}`,
    which does not depend on :math:`g_t`; the first step only fills :math:`v` and
    leaves :math:`x` where it is.
    ``use_clipping=False`` drops the clip; ``nesterov=True`` steps along
    :math:`\beta_1 m_t + (1-\beta_1) u_t` instead of :math:`m_t` (for :math:`t > 0`).

    Matches ``optax.contrib.adopt`` (its ``b1``, ``b2`` are ``betas`` here; ``nesterov``,
    ``use_clipping`` and ``clip_value_fn`` keep their names). Differences: Optax's
    ``learning_rate`` has no default (``1e-3`` here, the paper's and its reference
    implementation's); ``maximize`` is an addition; ``mu_dtype`` is not offered;
    ``clip_value_fn=None`` stands for Optax's default ``lambda x: x**0.25`` (so that the
    default can be saved in a checkpoint); the clip value is cast to each leaf's dtype
    (float32 params stay float32 with x64 on).
    PyTorch has no ADOPT.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-3``.
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.9, 0.9999)``.
    eps:
        :math:`\epsilon \ge 0`, the least denominator. Default ``1e-6``.
    nesterov:
        Use Nesterov momentum. Default False.
    use_clipping:
        Clip the normalized gradient to :math:`[-c(t), c(t)]`. Default True.
    clip_value_fn:
        :math:`c`, a function of the 0-based int32 step count (a schedule), called
        under ``jit``, or None for :math:`t^{1/4}`. Default None.
    maximize:
        Ascend instead of descend.

    Raises
    ------
    InputError
        If ``lr``, ``betas`` or ``eps`` is out of range, or a flag is not a bool.
    DescendTypeError
        If ``clip_value_fn`` is neither None nor callable.

    References
    ----------
    Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any :math:`\beta_2` with
    the Optimal Rate", NeurIPS 2024; ``optax.contrib.adopt``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.adopt(lr=0.1)
    >>> x, state = opt.step(1.0, 2.0, opt.init(1.0))  # the first step only fills v
    >>> round(float(opt.step(x, 2.0, state)[0]), 6)
    0.99
    """
    lr = check_lr(lr)
    beta1, beta2 = check_betas(betas)
    check_nonnegative(eps=eps)
    check_flags(nesterov=nesterov, use_clipping=use_clipping, maximize=maximize)
    if clip_value_fn is not None and not callable(clip_value_fn):
        raise DescendTypeError(
            "clip_value_fn must be a function of the step count (a schedule) or None "
            f"(for count ** 0.25), got {clip_value_fn!r}"
        )
    clip_at = _quarter_power if clip_value_fn is None else clip_value_fn

    def init(params):
        return fresh_state(AdoptState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        started = state.count > 0
        exp_avg_sq = optax_average(
            state.exp_avg_sq, jax.tree.map(jnp.square, grads), jnp.where(started, beta2, 0)
        )
        directions = jax.tree.map(
            lambda g, v: g / jnp.maximum(jnp.sqrt(v), eps), grads, state.exp_avg_sq
        )
        if use_clipping:
            clip = jnp.asarray(clip_at(state.count))
            directions = jax.tree.map(
                lambda u: jnp.clip(u, -clip.astype(u.dtype), clip.astype(u.dtype)), directions
            )
        decay = jnp.where(started, beta1, 1)
        exp_avg = optax_average(state.exp_avg, directions, decay)
        # Nesterov: one more momentum update with the same normalized gradient.
        directions = optax_average(exp_avg, directions, decay) if nesterov else exp_avg
        updates = optax_scale_by_rate(directions, lr_at(lr, state.count))
        return add_updates(params, updates), AdoptState(state.count + 1, exp_avg, exp_avg_sq)

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "nesterov": nesterov,
        "use_clipping": use_clipping,
        "clip_value_fn": clip_value_fn,
        "maximize": maximize,
    }
    return Optimizer("adopt", init, step, hyperparams)


def ademamix(
    lr: LearningRate = 1e-3,
    *,
    betas: tuple[float, float, Scalar] = (0.9, 0.999, 0.9999),
    alpha: Scalar = 5.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""AdEMAMix: Adam whose momentum mixes a fast and a slow moving average.

    With :math:`g_t = \pm\nabla f(x_t)`, :math:`t = 1, 2, \dots` and zero initial moments:

    .. math::

        m^{(1)}_t = \beta_1 m^{(1)}_{t-1} + (1-\beta_1) g_t, \qquad
        m^{(2)}_t = \beta_3 m^{(2)}_{t-1} + (1-\beta_3) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        x_{t+1} = x_t - \eta_t \left(
            \frac{m^{(1)}_t / (1-\beta_1^t) + \alpha\, m^{(2)}_t}
                 {\sqrt{v_t / (1-\beta_2^t) + \bar\epsilon} + \epsilon}
            + \lambda x_t \right)

    The slow average :math:`m^{(2)}` is not bias-corrected, so it fills slowly. The
    decay :math:`\lambda x_t` (on the leaves ``weight_decay_mask`` selects) is added to
    the step and scaled by the learning rate, as in AdamW. ``alpha`` and
    :math:`\beta_3` may be schedules of the step count (the paper warms both up).

    Matches ``optax.contrib.ademamix`` (its ``b1``, ``b2``, ``b3`` are ``betas`` here;
    ``mask`` is ``weight_decay_mask``). Differences: Optax's ``learning_rate`` has no
    default (``1e-3`` here, the reference implementation's); ``maximize`` is an
    addition; ``mu_dtype`` is not offered; Optax's second counter ``count_m2``, always
    equal to ``count``, is not kept. PyTorch has no AdEMAMix.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-3``.
    betas:
        :math:`(\beta_1, \beta_2, \beta_3)`, each in ``[0, 1)``; :math:`\beta_3` may be
        a schedule. Default ``(0.9, 0.999, 0.9999)``.
    alpha:
        Weight :math:`\alpha \ge 0` of the slow average, or a schedule. Default ``5.0``.
    eps:
        :math:`\epsilon \ge 0`, outside the square root. Default ``1e-8``.
    eps_root:
        :math:`\bar\epsilon \ge 0`, inside the square root. Default ``0``.
    weight_decay:
        :math:`\lambda \ge 0`, multiplied by the learning rate. Default ``0``.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"`` (the leaves named ``w``, not the biases of descend's models), a
        pytree of ``True`` / ``False``, or a function (Optax's ``mask``).

    Raises
    ------
    InputError
        If a hyperparameter is out of range or ``betas`` is not three rates.

    References
    ----------
    Pagliardini, Ablin and Grangier, "The AdEMAMix Optimizer: Better, Faster, Older",
    ICLR 2025; ``optax.contrib.ademamix``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.ademamix(lr=0.1)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    0.899951
    """
    lr = check_lr(lr)
    beta1, beta2, beta3 = _check_three_betas(betas)
    alpha = _number_or_schedule("alpha", alpha, nonnegative_number)
    check_nonnegative(eps=eps, eps_root=eps_root, weight_decay=weight_decay)
    check_flags(maximize=maximize)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        return fresh_state(AdEMAMixState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        mix = _value_at(alpha, state.count)
        fast = optax_average(state.exp_avg_fast, grads, beta1)
        slow = optax_average(state.exp_avg_slow, grads, _value_at(beta3, state.count))
        exp_avg_sq = optax_average(state.exp_avg_sq, jax.tree.map(jnp.square, grads), beta2)
        t = state.count + 1
        directions = jax.tree.map(
            lambda m1, m2, v: (m1 + mix * m2) / (jnp.sqrt(v + eps_root) + eps),
            optax_debias(fast, beta1, t),
            slow,
            optax_debias(exp_avg_sq, beta2, t),
        )
        directions = coupled_decay(directions, params, weight_decay, mask)
        updates = optax_scale_by_rate(directions, lr_at(lr, state.count))
        new_state = AdEMAMixState(t, fast, slow, exp_avg_sq)
        return add_updates(params, updates), new_state

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2, beta3),
        "alpha": alpha,
        "eps": eps,
        "eps_root": eps_root,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("ademamix", init, step, hyperparams), mask)


def simplified_ademamix(
    lr: LearningRate = 1e-4,
    *,
    betas: tuple[float, float] = (0.99, 0.95),
    alpha: Scalar = 0.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Simplified AdEMAMix: one momentum, a discounted sum, plus ``alpha`` times the gradient.

    With :math:`g_t = \pm\nabla f(x_t)`, :math:`t = 1, 2, \dots` and zero initial state:

    .. math::

        m_t = \beta_1 m_{t-1} + g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        x_{t+1} = x_t - \eta_t \left(
            \frac{m_t + \alpha\, g_t}{\sqrt{v_t / (1-\beta_2^t) + \bar\epsilon} + \epsilon}
            + \lambda x_t \right)

    :math:`m_t` is a sum (about :math:`1/(1-\beta_1)` gradients), not an average, so
    ``lr`` is coupled to :math:`\beta_1`: :math:`\beta_1` = 0.99 calls for a rate about
    100 times smaller than Adam's. With :math:`\alpha = 0` it is Adam with a rescaled
    rate and no correction of the first moment. ``alpha`` may be a schedule of the
    step count. :math:`v_t` is Optax's ``g^2 + beta2 (v - g^2)``.

    Matches ``optax.contrib.simplified_ademamix`` (its ``b1``, ``b2`` are ``betas`` here;
    ``mask`` is ``weight_decay_mask``). Differences: Optax's ``learning_rate`` has no
    default (``1e-4`` here, as the reference implementation's README uses);
    ``maximize`` is an addition. The reference implementation's warm-up of
    :math:`\beta_1` (``min_beta1``, ``beta1_warmup``) is not in Optax and not here.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-4``.
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.99, 0.95)``.
    alpha:
        Weight :math:`\alpha \ge 0` of the current gradient, or a schedule. Default ``0``.
    eps:
        :math:`\epsilon \ge 0`, outside the square root. Default ``1e-8``.
    eps_root:
        :math:`\bar\epsilon \ge 0`, inside the square root. Default ``0``.
    weight_decay:
        :math:`\lambda \ge 0`, multiplied by the learning rate. Default ``0``.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"``, a pytree of ``True`` / ``False``, or a function (Optax's ``mask``).

    Raises
    ------
    InputError
        If a hyperparameter is out of range.

    References
    ----------
    Morwani et al., "Connections between Schedule-Free Optimizers, AdEMAMix, and
    Accelerated SGD Variants", 2025 (arXiv:2502.02431);
    ``optax.contrib.simplified_ademamix``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.simplified_ademamix(lr=0.1)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    0.9
    """
    lr = check_lr(lr)
    beta1, beta2 = check_betas(betas)
    alpha = _number_or_schedule("alpha", alpha, nonnegative_number)
    check_nonnegative(eps=eps, eps_root=eps_root, weight_decay=weight_decay)
    check_flags(maximize=maximize)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        return fresh_state(SimplifiedAdEMAMixState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        mix = jnp.asarray(_value_at(alpha, state.count))
        exp_avg = jax.tree.map(lambda m, g: g + beta1 * m, state.exp_avg, grads)
        # Optax's lerp(beta2, g*g, v): g*g + beta2 * (v - g*g).
        exp_avg_sq = jax.tree.map(lambda v, g: g * g + beta2 * (v - g * g), state.exp_avg_sq, grads)
        t = state.count + 1
        directions = jax.tree.map(
            lambda m, g, v: (m + mix * g) / (jnp.sqrt(v + eps_root) + eps),
            exp_avg,
            grads,
            optax_debias(exp_avg_sq, beta2, t),
        )
        directions = coupled_decay(directions, params, weight_decay, mask)
        updates = optax_scale_by_rate(directions, lr_at(lr, state.count))
        return add_updates(params, updates), SimplifiedAdEMAMixState(t, exp_avg, exp_avg_sq)

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "alpha": alpha,
        "eps": eps,
        "eps_root": eps_root,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    return with_decay_mask(Optimizer("simplified_ademamix", init, step, hyperparams), mask)
