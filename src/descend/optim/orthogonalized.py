"""Muon as Optax writes it: Newton–Schulz orthogonalised momentum for matrices, Adam for the rest.

:func:`~descend.optim.muon` is ``torch.optim.Muon``; :func:`muon_optax` here is
``optax.contrib.muon``. The two are the same idea with different defaults and details
(each docstring lists them), so each is kept equal to its own reference.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from descend import _tree
from descend.errors import InputError, check_int
from descend.optim._common import (
    check_betas,
    check_decay_mask,
    check_flags,
    check_unit_interval,
    nonnegative_number,
    with_decay_mask,
)
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import (
    add_updates,
    coupled_decay,
    decayed_leaves,
    map_leaves,
    optax_average,
    optax_debias,
    optax_nesterov_debias,
    optax_scale_by_rate,
    signed,
    zero_count,
)


class MuonOptaxState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    exp_avg: Any  # per leaf: the momentum of a matrix, Adam's first moment otherwise
    exp_avg_sq: Any  # per leaf: None for a matrix, Adam's second moment otherwise


_STANDARD = (3.4445, -4.7750, 2.0315)
# Optax's presets; "dion" gives one triple per iteration (Ahn et al., 2025).
NS_PRESETS = {
    "standard": _STANDARD,
    "dion": (
        (4.0848, -6.8946, 2.9270),
        (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037),
        (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012),
    ),
}
PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")
# The floor of the AOL and Schatten rescalings: Optax's default there, not ``eps``.
_RESCALING_FLOOR = 1e-8


def _ns_iteration(x, a, coeffs):
    # f(X) = c0 X + (c1 A + c2 A A) X with A = X X^T, grouped as Optax groups it.
    b = coeffs[1] * a + coeffs[2] * a @ a
    return coeffs[0] * x + b @ x


def _first_ns_iteration(x, coeffs, preconditioning):
    """The first iteration, with the AOL or Schatten-4 rescaling where chosen."""
    a = x @ x.T
    if preconditioning == "aol":
        rescaling = jnp.clip(jnp.abs(a).sum(axis=-1), min=_RESCALING_FLOOR)
        s = jnp.expand_dims(jax.lax.rsqrt(rescaling), -1)
        x, a = x * s, a * s * s.transpose(-1, -2)
    elif preconditioning == "schatten":
        rescaling = jnp.clip(jnp.linalg.norm(a, ord="fro", axis=(-2, -1)), min=_RESCALING_FLOOR)
        s = jnp.expand_dims(jax.lax.rsqrt(rescaling), (0, -1))
        x, a = x * s, a * s**2
    return _ns_iteration(x, a, coeffs)


def orthogonalize(
    x: jax.Array, coefficients: Any, ns_steps: int, preconditioning: str, eps: float
) -> jax.Array:
    """Optax's Newton–Schulz approximation of the polar factor of the matrix ``x``.

    ``coefficients`` is one triple ``(a, b, c)`` for every one of ``ns_steps``
    iterations, or one triple per iteration.
    """

    def iterate(i, x, coeffs):
        if preconditioning in ("aol", "schatten"):
            return jax.lax.cond(
                i == 0,
                lambda x: _first_ns_iteration(x, coeffs, preconditioning),
                lambda x: _ns_iteration(x, x @ x.T, coeffs),
                x,
            )
        return _ns_iteration(x, x @ x.T, coeffs)

    def single(x):
        transposed = x.shape[0] > x.shape[1]
        if transposed:
            x = x.T
        if preconditioning == "frobenius":
            x = x / (jnp.linalg.norm(x, ord="fro") + eps)
        elif preconditioning == "spectral":
            x = x / (jnp.linalg.norm(x, ord=2) + eps)
        steps = jnp.asarray(coefficients).astype(x.dtype)
        # The loops are Optax's (unrolled for one triple, a scan over per-iteration
        # triples): XLA fuses the products with what follows differently inside and
        # outside a loop, and a last-bit difference grows along a trajectory.
        if steps.ndim == 1:
            x = jax.lax.fori_loop(0, ns_steps, lambda i, x: iterate(i, x, steps), x, unroll=True)
        else:

            def body(carry, coeffs):
                i, x = carry
                return (i + 1, iterate(i, x, coeffs)), None

            (_, x), _ = jax.lax.scan(body, (jnp.asarray(0, jnp.int32), x), steps)
        return x.T if transposed else x

    # Optax maps over a batch of one matrix: kept, so that XLA rounds alike.
    return jax.vmap(single)(x[None])[0]


def muon_optax(
    lr: LearningRate = 0.02,
    *,
    ns_coefficients: Any = _STANDARD,
    ns_steps: int = 5,
    momentum: float = 0.95,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    consistent_rms: float | None = None,
    adam_lr: LearningRate | None = None,
    adam_betas: tuple[float, float] = (0.9, 0.999),
    adam_eps_root: float = 0.0,
    adam_weight_decay: float = 0.0,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Muon as ``optax.contrib.muon``: orthogonalised momentum for matrices, Adam for the rest.

    For each 2-D leaf :math:`W \in \mathbb R^{m\times n}` (read as :math:`x W`: ``m``
    inputs, ``n`` outputs) with gradient :math:`g_t = \pm\nabla f`, at step
    :math:`t = 1, 2, \dots`:

    .. math::

        M_t = \mu M_{t-1} + (1-\mu) g_t, \qquad
        \hat M_t = \frac{\mu M_t}{1-\mu^{t+1}} + \frac{(1-\mu) g_t}{1-\mu^t}
        \ \text{(nesterov)}, \ \ \frac{M_t}{1-\mu^t} \ \text{(otherwise)} \\
        X_0 = \hat M_t / (\lVert \hat M_t \rVert_F + \varepsilon), \qquad
        X_{k+1} = a_k X_k + (b_k A_k + c_k A_k^2) X_k, \ A_k = X_k X_k^\top
        \quad (k < K) \\
        W_{t+1} = W_t - \eta_t \big(s(m, n)\, X_K + \lambda W_t\big)

    (on the transpose when :math:`m > n`), with :math:`s = \sqrt{\max(1, n/m)}`, or
    :math:`s = \rho \sqrt{\max(m, n)}` with ``consistent_rms`` :math:`\rho`. With
    ``adaptive=True``, :math:`X_K` is first multiplied by
    :math:`\langle \hat M_t, X_K\rangle`. Every leaf that is not 2-D (vectors,
    scalars, 3-D and more) is stepped by Optax's AdamW with ``adam_betas``, ``eps``,
    ``adam_eps_root``, ``adam_weight_decay``, the same ``nesterov`` (so NAdam by
    default) and the learning rate ``adam_lr`` (``lr`` when ``None``).

    Matches ``optax.contrib.muon``. Names: ``ns_coeffs`` is ``ns_coefficients``,
    ``beta`` is ``momentum``, ``adam_b1``/``adam_b2`` are ``adam_betas``,
    ``adam_learning_rate`` is ``adam_lr``. Differences: Optax's ``learning_rate`` has
    no default (``0.02`` here, the default of Jordan's reference implementation);
    ``maximize`` is an addition; Optax's ``mu_dtype`` is not offered, nor its
    ``muon_weight_dimension_numbers`` (here the matrices are exactly the 2-D leaves);
    as in Optax, ``weight_decay_mask`` chooses among the matrices and
    ``adam_weight_decay`` decays every other leaf.

    How it differs from :func:`~descend.optim.muon` (``torch.optim.Muon``):

    - defaults: ``lr`` 0.02 (torch 1e-3), ``weight_decay`` 0 (torch 0.1), ``eps``
      1e-8 (torch 1e-7); the momentum 0.95, nesterov and the five iterations agree;
    - the momentum is bias-corrected here (as Adam's), not in torch;
    - Newton–Schulz: the same default coefficients ``(3.4445, -4.7750, 2.0315)``, but
      here in the dtype of the params (torch and :func:`~descend.optim.muon`:
      bfloat16), dividing by :math:`\lVert\cdot\rVert_F + \varepsilon` (torch:
      :math:`\max(\lVert\cdot\rVert_F, \varepsilon)`), with the presets
      ``"standard"`` and ``"dion"``, a triple per iteration, and other
      ``preconditioning`` (``"spectral"``, ``"aol"``, ``"schatten"``);
    - scaling: both use :math:`\sqrt{\max(1, \text{fan-out}/\text{fan-in})}`, but
      torch reads a weight as ``(out, in)`` (``torch.nn.Linear``), scaling by
      :math:`\sqrt{\max(1, m/n)}`, and Optax as ``(in, out)``, scaling by
      :math:`\sqrt{\max(1, n/m)}`: a ``(4, 3)`` weight is scaled by 1.155 in torch
      and by 1 here; ``consistent_rms=0.2`` is torch's ``"match_rms_adamw"``;
    - weight decay: both multiply it by the learning rate, torch shrinking the
      weights before the step, Optax adding :math:`\lambda W` to the update;
    - leaves that are not matrices: refused by torch (give them another optimizer
      with :func:`~descend.optim.partition`), stepped by AdamW here.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta` (> 0) or a schedule. Default ``0.02``.
    ns_coefficients:
        :math:`(a, b, c)` for every iteration, a sequence of at most ``ns_steps``
        triples (one per iteration: their number is the number of iterations), or a
        preset: ``"standard"`` (the default triple) or ``"dion"`` (five triples).
        Default ``(3.4445, -4.7750, 2.0315)``.
    ns_steps:
        Newton–Schulz iterations :math:`K \ge 1` for a single triple. Default 5.
    momentum:
        :math:`\mu \in [0, 1)`. Default ``0.95``.
    eps:
        :math:`\varepsilon \ge 0`, added to the norm, and Adam's ``eps``. Default
        ``1e-8``.
    weight_decay:
        :math:`\lambda \ge 0` for the matrices. Default ``0.0``.
    nesterov:
        Nesterov momentum, in Muon and in Adam. Default ``True``.
    adaptive:
        Scale the orthogonalised update by its inner product with the momentum.
    preconditioning:
        The normalisation before the iterations: ``"frobenius"`` (default),
        ``"spectral"``, ``"aol"`` or ``"schatten"`` (the last two rescale in the first
        iteration instead).
    consistent_rms:
        ``None`` (width scaling) or :math:`\rho > 0`, e.g. 0.2 to match AdamW's RMS.
    adam_lr:
        The learning rate (> 0, or a schedule) of the leaves that are not matrices,
        or ``None`` for ``lr``.
    adam_betas:
        Adam's :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``. Default ``(0.9, 0.999)``.
    adam_eps_root:
        Adam's :math:`\bar\epsilon \ge 0`, inside the square root. Default ``0.0``.
    adam_weight_decay:
        Adam's decoupled weight decay :math:`\ge 0`. Default ``0.0``.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The matrices to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"``, a pytree of ``True`` / ``False``, or a function (Optax's
        ``weight_decay_mask``).

    Raises
    ------
    InputError
        If a hyperparameter is outside the range given above, ``ns_coefficients``
        is neither a triple, a sequence of at most ``ns_steps`` triples nor a preset,
        or ``preconditioning`` is not one of the four.

    References
    ----------
    Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024;
    Liu et al., "Muon is Scalable for LLM Training", arXiv:2502.16982;
    Bernstein & Newhouse, "Old Optimizer, New Norm: An Anthology", arXiv:2409.20325;
    ``optax.contrib.muon``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import descend as ds
    >>> opt = ds.optim.muon_optax(lr=0.02)
    >>> params = {"w": jnp.zeros((4, 4)), "b": jnp.zeros(4)}
    >>> params, state = opt.step(params, {"w": jnp.eye(4), "b": jnp.ones(4)}, opt.init(params))
    >>> [round(float(v), 4) for v in (params["w"][0, 0], params["b"][0])]
    [-0.0153, -0.0295]
    """
    lr = check_lr(lr)
    coefficients = _check_coefficients(ns_coefficients, check_int("ns_steps", ns_steps))
    momentum = check_unit_interval("momentum", momentum)
    eps = nonnegative_number("eps", eps)
    weight_decay = nonnegative_number("weight_decay", weight_decay)
    check_flags(nesterov=nesterov, adaptive=adaptive, maximize=maximize)
    if preconditioning not in PRECONDITIONINGS:
        raise InputError(
            f"preconditioning must be one of {', '.join(map(repr, PRECONDITIONINGS))}, "
            f"got {preconditioning!r}"
        )
    if consistent_rms is not None:
        consistent_rms = check_lr(consistent_rms, name="consistent_rms")
        if callable(consistent_rms):
            raise InputError(f"consistent_rms must be None or a number > 0, got {consistent_rms!r}")
    if adam_lr is not None:
        adam_lr = check_lr(adam_lr, name="adam_lr")
    beta1, beta2 = check_betas(adam_betas, name="adam_betas")
    adam_eps_root = nonnegative_number("adam_eps_root", adam_eps_root)
    adam_weight_decay = nonnegative_number("adam_weight_decay", adam_weight_decay)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)
    other_lr = lr if adam_lr is None else adam_lr

    def nesterov_average(average, grads, decay, t):
        if not nesterov:
            return optax_debias(average, decay, t)
        return optax_nesterov_debias(average, grads, decay, t)

    def matrix_update(p, g, decayed, average, t, count):
        average = optax_average(average, g, momentum)
        corrected = nesterov_average(average, g, momentum, t)
        update = orthogonalize(corrected, coefficients, ns_steps, preconditioning, eps)
        if adaptive:
            update = jnp.sum(corrected * update) * update
        fan_in, fan_out = p.shape
        if consistent_rms is None:
            update = jnp.sqrt(jnp.maximum(1, fan_out / fan_in)) * update
        else:
            update = jnp.sqrt(jnp.maximum(fan_in, fan_out)) * consistent_rms * update
        update = coupled_decay(update, p, weight_decay, decayed)
        return optax_scale_by_rate(update, lr_at(lr, count)), average, None

    def adam_update(p, g, average, average_sq, t, count):
        average = optax_average(average, g, beta1)
        average_sq = (1 - beta2) * g**2 + beta2 * average_sq
        corrected = nesterov_average(average, g, beta1, t)
        corrected_sq = optax_debias(average_sq, beta2, t)
        update = corrected / (jnp.sqrt(corrected_sq + adam_eps_root) + eps)
        update = coupled_decay(update, p, adam_weight_decay)
        return optax_scale_by_rate(update, lr_at(other_lr, count)), average, average_sq

    def init(params):
        params = jax.tree.map(jnp.asarray, params)
        return MuonOptaxState(
            count=zero_count(),
            exp_avg=_tree.zeros_like(params),
            exp_avg_sq=jax.tree.map(lambda p: None if p.ndim == 2 else _tree.zeros_like(p), params),
        )

    def step(params, grads, state, *, value=None, value_fn=None):
        grads = signed(grads, maximize=maximize)
        t = state.count + 1

        def update_leaf(p, g, decayed, average, average_sq):
            p, g = jnp.asarray(p), jnp.asarray(g)
            if p.ndim == 2:
                return matrix_update(p, g, decayed, average, t, state.count)
            return adam_update(p, g, average, average_sq, t, state.count)

        updates, averages, averages_sq = map_leaves(
            update_leaf,
            params,
            grads,
            decayed_leaves(mask, params),
            state.exp_avg,
            state.exp_avg_sq,
            outputs=3,
        )
        return add_updates(params, updates), MuonOptaxState(t, averages, averages_sq)

    hyperparams = {
        "lr": lr,
        "ns_coefficients": coefficients,
        "ns_steps": ns_steps,
        "momentum": momentum,
        "eps": eps,
        "weight_decay": weight_decay,
        "nesterov": nesterov,
        "adaptive": adaptive,
        "preconditioning": preconditioning,
        "consistent_rms": consistent_rms,
        "adam_lr": adam_lr,
        "adam_betas": (beta1, beta2),
        "adam_eps_root": adam_eps_root,
        "adam_weight_decay": adam_weight_decay,
        "maximize": maximize,
    }
    # Optax refuses complex matrices in Muon, and the (..., 2) pairs of a complex
    # matrix would be a 3-D leaf, stepped by Adam instead: refused, as by muon.
    optimizer = Optimizer("muon_optax", init, step, hyperparams, complex_params="refuse")
    return with_decay_mask(optimizer, mask)


def _check_coefficients(value: Any, ns_steps: int) -> tuple:
    """One triple of floats, or a tuple of at most ``ns_steps`` triples (a preset's name
    is replaced by its coefficients)."""
    if isinstance(value, str):
        if value not in NS_PRESETS:
            raise InputError(
                f"ns_coefficients must be a triple (a, b, c), a sequence of triples or one "
                f"of the presets {', '.join(map(repr, NS_PRESETS))}, got {value!r}"
            )
        value = NS_PRESETS[value]
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    shape = () if array is None else array.shape
    if array is None or not (len(shape) in (1, 2) and shape[-1] == 3 and math.prod(shape)):
        raise InputError(
            f"ns_coefficients must be a triple (a, b, c) or a sequence of triples, got {value!r}"
        )
    if len(shape) == 1:
        return tuple(array.tolist())
    if len(array) > ns_steps:
        raise InputError(
            f"ns_coefficients gives {len(array)} triples, more than ns_steps={ns_steps} "
            "iterations: give at most ns_steps triples, or raise ns_steps"
        )
    return tuple(tuple(row) for row in array.tolist())
