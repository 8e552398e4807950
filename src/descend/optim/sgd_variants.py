"""Variants of SGD from Optax: sign steps and gradient noise.

- ``sign_sgd`` and ``signum`` step every coordinate by the learning rate, in the
  direction of the sign of the gradient (or of its moving average);
- ``noisy_sgd`` adds annealed Gaussian noise to the gradient, from a PRNG key kept in
  the state (seeded, so a run and a run resumed from a checkpoint draw the same noise).

The optimistic methods are in :mod:`~descend.optim.optimistic`. ``torch.optim`` has
none of them. The hyperparameters are named as in the rest of the
package (``lr``, ``betas``, ``momentum``) and each docstring maps Optax's names; the
update formulas and their order of floating-point operations are Optax's, so
trajectories agree with the Optax aliases to rounding.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend.errors import check_int
from descend.optim._common import (
    check_flags,
    check_unit_interval,
    nonnegative_number,
)
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import (
    add_updates,
    fresh_state,
    optax_average,
    optax_scale_by_rate,
    signed,
    zero_count,
)


class SignSGDState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax


class SignumState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    momentum_buffer: Any  # moving average m of the gradients


class NoisySGDState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    key: jax.Array  # the PRNG key (uint32 key data) of the next step's noise


def descent(params, directions, lr, count):
    """``params - lr_t * directions``, scaled and added as Optax scales and adds."""
    return add_updates(params, optax_scale_by_rate(directions, lr_at(lr, count)))


def sign_sgd(lr: LearningRate = 1e-3, *, maximize: bool = False) -> Optimizer:
    r"""signSGD: a step of the learning rate along the sign of each coordinate of the gradient.

    .. math::

        x_{t+1} = x_t - \eta_t\, \mathrm{sign}(g_t)

    with :math:`g_t = \pm\nabla f(x_t)` and :math:`\mathrm{sign}(0) = 0`.

    Matches ``optax.sign_sgd``. Differences: Optax's ``learning_rate`` has no default
    (``1e-3`` here, as :func:`~descend.optim.sgd`; the step of every coordinate is
    ``lr``, so it is a distance, not a multiple of the gradient); ``maximize`` is an
    addition.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-3``.
    maximize:
        Ascend instead of descend.

    Raises
    ------
    InputError
        If ``lr`` is not a number > 0 or a schedule, or ``maximize`` not a bool.

    References
    ----------
    Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex Problems",
    ICML 2018; ``optax.sign_sgd``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.sign_sgd(lr=0.1)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    0.9
    """
    lr = check_lr(lr)
    check_flags(maximize=maximize)

    def init(params):
        return SignSGDState(zero_count())

    def step(params, grads, state, *, value=None, value_fn=None):
        directions = jax.tree.map(jnp.sign, signed(grads, maximize=maximize))
        return descent(params, directions, lr, state.count), SignSGDState(state.count + 1)

    return Optimizer("sign_sgd", init, step, {"lr": lr, "maximize": maximize})


def signum(lr: LearningRate = 1e-3, *, momentum: float = 0.9, maximize: bool = False) -> Optimizer:
    r"""Signum: signSGD on a moving average of the gradients (sign of momentum).

    .. math::

        m_t = \mu\, m_{t-1} + (1-\mu)\, g_t, \qquad
        x_{t+1} = x_t - \eta_t\, \mathrm{sign}(m_t)

    with :math:`m_0 = 0` and :math:`g_t = \pm\nabla f(x_t)`. The average is not
    bias-corrected: its sign would not change.

    Matches ``optax.signum`` (its ``beta`` is ``momentum`` here, the name of
    :func:`~descend.optim.muon`'s moving-average decay). Differences: Optax's
    ``learning_rate`` has no default (``1e-3`` here, as :func:`sign_sgd`);
    ``maximize`` is an addition; Optax's ``accumulator_dtype`` is not offered (the
    average has the dtype of the params).

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``1e-3``.
    momentum:
        :math:`\mu \in [0, 1)`. Default ``0.9``.
    maximize:
        Ascend instead of descend.

    Raises
    ------
    InputError
        If ``lr`` is not a number > 0 or a schedule, ``momentum`` is outside
        ``[0, 1)``, or ``maximize`` is not a bool.

    References
    ----------
    Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex Problems",
    ICML 2018; Zhao et al., "Deconstructing What Makes a Good Optimizer for Language
    Models", 2024; ``optax.signum``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.signum(lr=0.1)
    >>> round(float(opt.step(1.0, -2.0, opt.init(1.0))[0]), 6)
    1.1
    """
    lr = check_lr(lr)
    momentum = check_unit_interval("momentum", momentum)
    check_flags(maximize=maximize)

    def init(params):
        return fresh_state(SignumState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        buffer = optax_average(state.momentum_buffer, grads, momentum)
        directions = jax.tree.map(jnp.sign, buffer)
        return descent(params, directions, lr, state.count), SignumState(state.count + 1, buffer)

    hyperparams = {"lr": lr, "momentum": momentum, "maximize": maximize}
    return Optimizer("signum", init, step, hyperparams)


def noisy_sgd(
    lr: LearningRate = 1e-3,
    *,
    eta: float = 0.01,
    gamma: float = 0.55,
    seed: int = 0,
    maximize: bool = False,
) -> Optimizer:
    r"""SGD with annealed Gaussian noise added to the gradient.

    .. math::

        \sigma_t^2 = \frac{\eta_0}{t^{\gamma}}, \qquad
        x_{t+1} = x_t - \eta_t \big(g_t + \sigma_t\, \xi_t\big), \quad
        \xi_t \sim \mathcal N(0, I)

    at step :math:`t = 1, 2, \dots`, with :math:`g_t = \pm\nabla f(x_t)`,
    :math:`\eta_0` = ``eta`` (the initial *variance*, not a learning rate) and
    :math:`\eta_t` the learning rate.

    The noise is drawn from a JAX PRNG key kept in the state (``state.key``, raw
    ``uint32`` key data so that checkpoints store it): the key made from ``seed`` by
    ``jax.random.key(seed)``, split at each step into the next key and the key of
    the noise, which is split again into one key per leaf. This is how
    ``optax.add_noise`` draws it, so ``noisy_sgd(lr, seed=s)`` and
    ``optax.noisy_sgd(lr, key=s)`` follow the same trajectory, and a run resumed from
    a checkpoint draws the noise it would have drawn.

    Matches ``optax.noisy_sgd`` (its ``key``, an int or a PRNG key, is ``seed`` here,
    an int). Differences: Optax's ``learning_rate`` has no default (``1e-3`` here, as
    :func:`~descend.optim.sgd`); ``maximize`` is an addition, the gradient being
    negated before the noise is added. Complex params get independent noise on
    their real and imaginary parts (Optax refuses them).

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta_t` (> 0) or a schedule. Default ``1e-3``.
    eta:
        Initial variance :math:`\eta_0 \ge 0` of the noise. Default ``0.01``.
    gamma:
        Decay exponent :math:`\gamma \ge 0` of the variance. Default ``0.55``.
    seed:
        Integer >= 0 from which the PRNG key is made. Default ``0``.
    maximize:
        Ascend instead of descend.

    Raises
    ------
    InputError
        If ``lr`` is not a number > 0 or a schedule, ``eta`` or ``gamma`` is not a
        number >= 0, ``seed`` is not an integer >= 0, or ``maximize`` not a bool.

    References
    ----------
    Neelakantan et al., "Adding Gradient Noise Improves Learning for Very Deep
    Networks", 2015; ``optax.noisy_sgd``.

    Examples
    --------
    >>> import descend as ds
    >>> opt = ds.optim.noisy_sgd(lr=0.1, eta=0.0)
    >>> round(float(opt.step(1.0, 2.0, opt.init(1.0))[0]), 6)
    0.8
    """
    lr = check_lr(lr)
    eta, gamma = nonnegative_number("eta", eta), nonnegative_number("gamma", gamma)
    seed = check_int("seed", seed, minimum=0)
    check_flags(maximize=maximize)

    def init(params):
        return NoisySGDState(zero_count(), jax.random.key_data(jax.random.key(seed)))

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        count_inc = state.count + 1
        standard_deviation = jnp.sqrt(eta / count_inc**gamma)
        key, noise_key = jax.random.split(state.key)
        leaves, structure = jax.tree.flatten(grads)
        leaf_keys = jax.random.split(noise_key, len(leaves))
        noise = jax.tree.unflatten(
            structure,
            [
                jax.random.normal(k, jnp.shape(g), jnp.result_type(g))
                for k, g in zip(leaf_keys, leaves, strict=True)
            ],
        )
        noisy = jax.tree.map(lambda g, n: g + standard_deviation * n, grads, noise)
        return descent(params, noisy, lr, state.count), NoisySGDState(count_inc, key)

    hyperparams = {"lr": lr, "eta": eta, "gamma": gamma, "seed": seed, "maximize": maximize}
    return Optimizer("noisy_sgd", init, step, hyperparams)
