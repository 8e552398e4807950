"""Steps that evaluate the objective again: Sophia and SAM (as Optax's contrib).

Both need the objective itself, not only its gradient at the params: Sophia
differentiates it twice (a Hessian-vector product for Hutchinson's estimate of the
Hessian diagonal), SAM takes its gradient again at an adversarial point. They take it
as ``value_fn``, which ``ds.minimize`` passes (the function) and ``ds.fit`` passes (the
current batch's mean loss plus the penalty), as for the line searches
(``needs_value_fn``); ``evaluations(state)`` counts the extra evaluations, which
``minimize`` adds to ``n_fev`` and ``n_jev``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend import _tree
from descend.errors import DescendTypeError, InputError, check_int
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
    optax_debias,
    optax_scale_by_rate,
    signed,
    zero_count,
)
from descend.optim.polyak import squared_norm


class SophiaState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any  # momentum m
    hessian_diag: Any  # moving average h of the Hessian-diagonal estimates
    key: jax.Array  # the PRNG key (raw uint32) of the next Hutchinson estimate


class SAMState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    optimizer: Any  # the outer optimizer's state
    adv_optimizer: Any  # the adversarial optimizer's state


def needing_objective(name: str, value_fn: Any, why: str) -> None:
    if value_fn is None:
        raise InputError(
            f"{name} {why}: call step(params, grads, state, value=f(params), value_fn=f) "
            "(ds.minimize and ds.fit pass both)"
        )


def sophia(
    lr: LearningRate = 1e-2,
    *,
    betas: tuple[float, float] = (0.965, 0.99),
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    gamma: float = 0.01,
    clip_threshold: float | None = 1.0,
    update_interval: int = 10,
    seed: int = 0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Sophia-H: a clipped Newton-like step with a Hutchinson estimate of the Hessian diagonal.

    With :math:`g_t = \pm\nabla f(x_t)`, every ``update_interval`` steps (from the
    first) a Rademacher vector :math:`r` (entries :math:`\pm 1`) drawn from the key in
    the state gives :math:`\hat h = r \odot \nabla^2 f(x_t)\, r`, an unbiased estimate
    of the Hessian diagonal; between them :math:`h` is kept:

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        u_t = \mathrm{clip}\left(\frac{m_t / (1-\beta_1^t)}
              {\max(\gamma h_{t-1}, \epsilon)}, \pm c\right) \\
        h_t = \beta_2 h_{t-1} + (1-\beta_2) \hat h \ \ \text{(at the estimate steps)},
        \qquad
        x_{t+1} = x_t - \eta_t (u_t + \lambda x_t)

    The step uses the Hessian average *before* this step's estimate, as Optax's does.

    What it needs: the objective itself, to differentiate twice. The Hessian-vector
    product :math:`\nabla^2 f(x)\,r` is ``jax.jvp`` of ``jax.grad(value_fn)``, so the
    step must be given ``value_fn`` (``needs_value_fn``: ``ds.minimize`` and
    ``ds.fit`` pass it, the latter as the current batch's loss), and ``value_fn`` must
    be twice differentiable by JAX (forward over reverse). Each estimate costs about
    one more gradient evaluation; ``evaluations(state)`` counts them. The PRNG key
    lives in the state (a ``uint32[2]`` array from ``jax.random.PRNGKey(seed)``), so
    a run is reproducible and a checkpoint resumes the same random draws.

    Matches ``optax.contrib.sophia`` with its default Hutchinson estimator (``b1``,
    ``b2`` are ``betas``, ``learning_rate`` is ``lr``; its estimator's
    ``random_seed=jax.random.PRNGKey(seed)``; ``mask`` is ``weight_decay_mask``).
    Differences: Optax's ``learning_rate`` has no default (``1e-2`` here, the rate of
    Optax's own test of Sophia; the paper tunes it per model); another
    ``hessian_diagonal_fn``, ``mu_dtype`` and ``verbose`` are not offered;
    ``maximize`` is an addition (it descends :math:`-f`).

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta > 0`, or a schedule. Default ``1e-2``.
    betas:
        :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.965, 0.99)``.
    eps:
        :math:`\epsilon \ge 0`, the floor of the denominator. Default ``1e-8``.
    weight_decay:
        :math:`\lambda \ge 0`, added to the update (so scaled by the rate).
        Default ``1e-4``.
    gamma:
        :math:`\gamma \ge 0`, the scale of the Hessian diagonal. Default ``0.01``.
    clip_threshold:
        :math:`c > 0`, or ``None`` for no clipping. Default ``1.0``.
    update_interval:
        Steps between Hessian estimates (an int >= 1). Default ``10``.
    seed:
        The seed of the PRNG key (an int >= 0). Default ``0``, as Optax's estimator.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`.

    Raises
    ------
    InputError
        A hyperparameter out of range; at ``step``, a missing ``value_fn``.

    References
    ----------
    Liu, Li, Hall, Liang and Ma, "Sophia: A Scalable Stochastic Second-order Optimizer
    for Language Model Pre-training", ICLR 2024; ``optax.contrib.sophia``.

    Examples
    --------
    >>> import descend as ds
    >>> f = lambda x: (x - 3.0) ** 2
    >>> opt = ds.optim.sophia(lr=0.1)
    >>> x = 0.0  # no Hessian estimate yet: the step is clipped to lr
    >>> round(float(opt.step(x, -6.0, opt.init(x), value=f(x), value_fn=f)[0]), 6)
    0.1
    """
    lr = check_lr(lr)
    beta1, beta2 = check_betas(betas)
    check_nonnegative(eps=eps, weight_decay=weight_decay, gamma=gamma)
    if clip_threshold is not None:
        clip_threshold = check_lr(clip_threshold, name="clip_threshold")
        if callable(clip_threshold):
            raise InputError("clip_threshold must be a number > 0 or None, got a function")
    update_interval = check_int("update_interval", update_interval, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    check_flags(maximize=maximize)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        return SophiaState(
            count=zero_count(),
            exp_avg=_tree.zeros_like(params),
            hessian_diag=_tree.zeros_like(params),
            key=jax.random.PRNGKey(seed),
        )

    def step(params, grads, state, *, value=None, value_fn=None):
        needing_objective("sophia", value_fn, "estimates the Hessian from the objective")
        grads = signed(grads, maximize=maximize)
        objective = (lambda p: -value_fn(p)) if maximize else value_fn
        count_inc = state.count + 1
        exp_avg = jax.tree.map(lambda g, m: (1 - beta1) * g + beta1 * m, grads, state.exp_avg)
        corrected = optax_debias(exp_avg, beta1, count_inc)
        updates = jax.tree.map(
            lambda m, h: m / jnp.maximum(gamma * h, eps), corrected, state.hessian_diag
        )
        if clip_threshold is not None:
            updates = jax.tree.map(lambda u: jnp.clip(u, -clip_threshold, clip_threshold), updates)

        def estimate(key, hessian_diag):
            key, subkey = jax.random.split(key)
            signs = rademacher_like(subkey, params)
            hvp = jax.jvp(jax.grad(objective), (params,), (signs,))[1]
            product = jax.tree.map(lambda h, r: h * r, hvp, signs)
            hessian_diag = jax.tree.map(
                lambda e, h: (1 - beta2) * e + beta2 * h, product, hessian_diag
            )
            return key, hessian_diag

        key, hessian_diag = jax.lax.cond(
            state.count % update_interval == 0,
            estimate,
            lambda key, hessian_diag: (key, hessian_diag),
            state.key,
            state.hessian_diag,
        )
        updates = coupled_decay(updates, params, weight_decay, mask)
        updates = optax_scale_by_rate(updates, lr_at(lr, state.count))
        new_state = SophiaState(count_inc, exp_avg, hessian_diag, key)
        return add_updates(params, updates), new_state

    hyperparams = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "weight_decay": weight_decay,
        "gamma": gamma,
        "clip_threshold": clip_threshold,
        "update_interval": update_interval,
        "seed": seed,
        "maximize": maximize,
    }
    optimizer = Optimizer(
        "sophia",
        init,
        step,
        hyperparams,
        needs_value_fn=True,
        # one Hessian-vector product at steps 0, k, 2k, ...
        evaluations=lambda state: (state.count + update_interval - 1) // update_interval,
        evaluations_with_gradient=True,
    )
    return with_decay_mask(optimizer, mask)


def rademacher_like(key: jax.Array, params: Any) -> Any:
    """Entries +-1 shaped like ``params``, one key split per leaf as ``optax.tree.random_like``.

    Drawn in float32 and cast to the params' dtype, as Optax's Hutchinson estimator draws.
    """
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    dtype = jnp.result_type(*leaves)
    signs = [
        jax.random.rademacher(k, jnp.shape(leaf), dtype=jnp.float32).astype(dtype)
        for k, leaf in zip(keys, leaves, strict=True)
    ]
    return jax.tree.unflatten(treedef, signs)


@dataclass(frozen=True)
class normalize:
    r"""Divide the gradient by its global norm: :math:`g / \lVert g\rVert` (a transform).

    The direction of SAM's adversarial step, as ``optax.contrib.normalize`` (no
    epsilon: a zero gradient gives NaN, as there). Use it in :func:`~descend.optim.chain`:
    ``chain(normalize(), sgd(lr=0.05))`` steps a distance 0.05 along the gradient.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from descend.optim.probes import normalize
    >>> grads, _ = normalize().apply(jnp.array([3.0, 4.0]), (), None)
    >>> grads.tolist()
    [0.6000000238418579, 0.800000011920929]
    """

    def init(self, params: Any) -> tuple:
        return ()

    def apply(self, grads: Any, state: tuple, params: Any, *, value: Any = None):
        norm = jnp.sqrt(squared_norm(grads))
        return jax.tree.map(lambda g: g / norm, grads), state


def _default_sam_parts() -> tuple[Optimizer, Optimizer]:
    from descend.optim.sgd import sgd
    from descend.optim.transforms import chain

    return sgd(lr=0.01), chain(normalize(), sgd(lr=0.1))


def sam(
    optimizer: Optimizer | None = None,
    adv_optimizer: Optimizer | None = None,
    *,
    sync_period: int = 2,
    reset_state: bool = True,
    maximize: bool = False,
) -> Optimizer:
    r"""SAM (sharpness-aware minimization): step with the gradient at a nearby worse point.

    Each step first climbs ``sync_period - 1`` adversarial steps from the params
    :math:`x_t`, each with the gradient at the point it reached, and then steps the
    params with the gradient at the last adversarial point:

    .. math::

        \tilde x_0 = x_t, \qquad
        \tilde x_{i+1} = \mathrm{adv}(\tilde x_i, -\nabla f(\tilde x_i)), \qquad
        x_{t+1} = \mathrm{opt}\big(x_t, \nabla f(\tilde x_{k-1})\big)

    with :math:`k` = ``sync_period``. The defaults are the drop-in SAM of the paper as
    Optax's documentation builds it: ``optimizer=sgd(lr=0.01)`` and
    ``adv_optimizer=chain(normalize(), sgd(lr=0.1))``, i.e.
    :math:`x_{t+1} = x_t - 0.01\,\nabla f\big(x_t + 0.1\,\nabla f(x_t) / \lVert\nabla
    f(x_t)\rVert\big)` (:math:`\rho = 0.1`). Every step evaluates the gradient
    ``sync_period`` times: once by the loop, ``sync_period - 1`` times here through
    ``value_fn``, which the step must be given (``needs_value_fn``: ``ds.minimize`` and
    ``ds.fit`` pass it, ``fit`` as the current batch's loss, the same batch for the
    adversarial gradient as in the paper); ``evaluations(state)`` counts them.

    The adversarial optimizer ascends: it is stepped with the negated gradient (and
    value and objective), so it descends :math:`-f`. Both optimizers are
    ``descend`` optimizers with their own state; the adversarial state is reset to
    ``adv_optimizer.init(x_t)`` after each step with ``reset_state``.

    Matches ``optax.contrib.sam(optimizer, adv_optimizer, sync_period, reset_state,
    opaque_mode=True)``: Optax's opaque mode, which runs the adversarial steps inside
    one ``update`` (calling its ``grad_fn``), as this step does. Optax's default
    (``opaque_mode=False``) instead spreads them over ``sync_period`` calls of
    ``update``, the adversarial ones returning updates to the params that the next call
    undoes; both modes make the same outer steps, but only the opaque one is one step
    of ``descend``'s loop, whose stopping rules and history see the true params only.
    Differences: Optax negates the adversarial optimizer's *update*, here its
    gradient is negated; the two agree for updates odd in the gradient (normalized
    SGD, momentum, Adam) and differ for weight decay, which here still decays the
    adversarial point. Optax has no defaults for the two optimizers;
    ``batch_axis_name`` is not offered (``descend`` averages gradients over devices
    in ``fit``); ``maximize`` is an addition.

    Parameters
    ----------
    optimizer:
        The outer optimizer. Default ``None``: ``sgd(lr=0.01)``.
    adv_optimizer:
        The adversarial optimizer. Default ``None``: ``chain(normalize(), sgd(lr=0.1))``.
        It may not need ``value_fn`` itself (no line search).
    sync_period:
        :math:`k`, gradient evaluations per step (an int >= 1; 1 is plain
        ``optimizer``). Default ``2``.
    reset_state:
        Reset the adversarial optimizer's state after each step. Default ``True``.
    maximize:
        Ascend instead of descend (the optimizers given should then descend).

    Raises
    ------
    InputError
        A hyperparameter out of range; at ``step``, a missing ``value_fn``.
    DescendTypeError
        ``optimizer`` or ``adv_optimizer`` is not an :class:`Optimizer`.

    References
    ----------
    Foret, Kleiner, Mobahi and Neyshabur, "Sharpness-Aware Minimization for Efficiently
    Improving Generalization", ICLR 2021; ``optax.contrib.sam``.

    Examples
    --------
    >>> import descend as ds
    >>> f = lambda x: (x - 3.0) ** 2
    >>> opt = ds.optim.sam()
    >>> x = 0.0  # f'(0) = -6; at the adversarial point -0.1, f' = -6.2
    >>> round(float(opt.step(x, -6.0, opt.init(x), value=f(x), value_fn=f)[0]), 6)
    0.062
    """
    default_optimizer, default_adversary = _default_sam_parts()
    optimizer = default_optimizer if optimizer is None else optimizer
    adv_optimizer = default_adversary if adv_optimizer is None else adv_optimizer
    for name, member in (("optimizer", optimizer), ("adv_optimizer", adv_optimizer)):
        if not isinstance(member, Optimizer):
            raise DescendTypeError(
                f"sam's {name} must be an Optimizer (such as ds.optim.sgd(lr=0.01)), got {member!r}"
            )
    if adv_optimizer.needs_value_fn:
        raise InputError(
            f"sam's adv_optimizer ({adv_optimizer!r}) evaluates the objective itself; "
            "choose one with a fixed step, such as chain(normalize(), sgd(lr=0.1))"
        )
    sync_period = check_int("sync_period", sync_period, minimum=1)
    check_flags(reset_state=reset_state, maximize=maximize)

    def init(params):
        return SAMState(zero_count(), optimizer.init(params), adv_optimizer.init(params))

    def step(params, grads, state, *, value=None, value_fn=None):
        if sync_period > 1:
            needing_objective("sam", value_fn, "takes the gradient at an adversarial point")
        grads = signed(grads, maximize=maximize)
        if maximize and value is not None:
            value = -value
        objective = (lambda p: -value_fn(p)) if maximize and value_fn is not None else value_fn

        def ascent(p):
            return -objective(p)

        point, adv_grads, adv_value, adv_state = params, grads, value, state.adv_optimizer
        for _ in range(sync_period - 1):
            point, adv_state = adv_optimizer.step(
                point,
                jax.tree.map(jnp.negative, adv_grads),
                adv_state,
                value=None if adv_value is None else -adv_value,
                value_fn=ascent,
            )
            adv_value, adv_grads = jax.value_and_grad(objective)(point)
        if reset_state:
            adv_state = adv_optimizer.init(params)
        new_params, opt_state = optimizer.step(
            params, adv_grads, state.optimizer, value=value, value_fn=objective
        )
        return new_params, SAMState(state.count + 1, opt_state, adv_state)

    outer_evaluations = optimizer.evaluations

    def evaluations(state):
        extra = state.count * (sync_period - 1)
        if outer_evaluations is not None:
            extra = extra + outer_evaluations(state.optimizer)
        return extra

    hyperparams = {
        "optimizer": optimizer,
        "adv_optimizer": adv_optimizer,
        "sync_period": sync_period,
        "reset_state": reset_state,
        "maximize": maximize,
    }
    return Optimizer(
        "sam",
        init,
        step,
        hyperparams,
        needs_value_fn=sync_period > 1 or optimizer.needs_value_fn,
        evaluations=evaluations,
        # adversarial gradients; an outer search evaluating values only makes n_jev
        # count only the loop's gradients (the two kinds are not told apart)
        evaluations_with_gradient=outer_evaluations is None or optimizer.evaluations_with_gradient,
    )
