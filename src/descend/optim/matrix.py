"""Optimizers that use the matrix shape of weights: Adafactor and Muon."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend import _tree
from descend.errors import InputError, check_in_range, check_int, check_positive
from descend.optim._common import check_decay_mask, with_decay_mask
from descend.optim.base import LearningRate, Optimizer, check_lr, lr_at
from descend.optim.blocks import (
    decayed_leaves,
    decoupled_decay,
    fresh_state,
    lerp,
    map_leaves,
    signed,
)


class AdafactorState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    row_var: Any  # per leaf: (..., m, 1) row means of g^2 for >= 2-D leaves, else None
    col_var: Any  # per leaf: (..., 1, n) column means of g^2 for >= 2-D leaves, else None
    variance: Any  # per leaf: g^2 average for 0-D and 1-D leaves, else None


class MuonState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    momentum_buffer: Any


def _rms(x: jax.Array) -> jax.Array:
    return jnp.linalg.norm(x.ravel()) / math.sqrt(max(x.size, 1))


def _mean_square(x: jax.Array, axis: int) -> jax.Array:
    # As the square of a norm, the way PyTorch forms it, so that the two agree to the
    # last bit more often (Adafactor's normalised steps amplify rounding differences).
    return jnp.square(jnp.linalg.norm(x, axis=axis, keepdims=True)) / x.shape[axis]


def adafactor(
    lr: LearningRate = 1e-2,
    beta2_decay: float = -0.8,
    eps: tuple[float | None, float] = (None, 1e-3),
    d: float = 1.0,
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Adafactor: Adam-like steps with factored second moments, as ``torch.optim.Adafactor``.

    At step :math:`t = 1, 2, \dots` with gradient :math:`G_t` (negated with ``maximize``):

    .. math::

        \hat\beta_{2,t} = 1 - t^{\tau}, \quad \rho_t = \min(\eta, 1/\sqrt t), \quad
        \alpha_t = \max(\epsilon_2, \mathrm{RMS}(\theta_{t-1}))\,\rho_t \\
        \theta \leftarrow \theta_{t-1}(1 - \eta\lambda) \\
        \text{matrices (last two axes } m \times n\text{):}\;
        R_t = \hat\beta_{2,t} R_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{j}(G_t^2), \;
        C_t = \hat\beta_{2,t} C_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{i}(G_t^2), \;
        \hat V_t = \frac{R_t C_t}{\max(\mathrm{mean}_i R_t, \epsilon_1)} \\
        \text{vectors and scalars:}\;
        \hat V_t = \hat\beta_{2,t} \hat V_{t-1} + (1-\hat\beta_{2,t}) G_t^2 \\
        U_t = G_t / \sqrt{\max(\hat V_t, \epsilon_1^2)}, \quad
        \theta_t = \theta - \frac{\alpha_t}{\max(1, \mathrm{RMS}(U_t)/d)}\, U_t

    where :math:`\tau` is ``beta2_decay``, :math:`\eta` the learning rate and
    :math:`\lambda` ``weight_decay`` (decoupled). Only :math:`m + n` numbers per matrix
    are stored instead of :math:`mn`.

    Differences from the paper (kept from PyTorch): ``lr`` caps the relative step
    :math:`\rho_t` (the paper uses 0.01) and scales the decoupled weight decay;
    :math:`\epsilon_1` is applied to the variance estimate rather than added to
    :math:`G^2`; means replace sums. Differences from ``optax.adafactor``: Optax uses
    the paper's :math:`\epsilon_1` placement, a decay rate ``0.8`` with a
    different parametrisation, momentum and a minimum size for factoring; its
    numbers differ from these.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta > 0` or a schedule. Default ``1e-2``.
    beta2_decay:
        :math:`\tau \le 0`. Default ``-0.8``.
    eps:
        :math:`(\epsilon_1, \epsilon_2)`; :math:`\epsilon_1` ``None`` means the machine
        epsilon of each leaf's dtype. Both >= 0. Default ``(None, 1e-3)``.
    d:
        Update clipping threshold, >= 1. Default 1.
    weight_decay:
        Decoupled weight decay :math:`\lambda \ge 0`. Default 0.
    maximize:
        Ascend instead of descend.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"`` (the leaves named ``w``, not the biases of descend's models), a
        pytree of ``True`` / ``False``, or a function (Optax's ``mask``).

    References
    ----------
    Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory
    Cost", ICML 2018; ``torch.optim.Adafactor``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from descend.optim.matrix import adafactor
    >>> opt = adafactor(lr=0.01)
    >>> w = jnp.ones((3, 2))
    >>> w, state = opt.step(w, jnp.ones((3, 2)), opt.init(w))
    >>> round(float(w[0, 0]), 6)
    0.99
    """
    lr = check_lr(lr)
    if not isinstance(beta2_decay, (int, float)) or not beta2_decay <= 0:
        raise InputError(f"beta2_decay must be a number <= 0, got {beta2_decay!r}")
    try:
        eps1, eps2 = eps
    except (TypeError, ValueError):
        raise InputError(f"eps must be a pair (eps1 or None, eps2), got {eps!r}") from None
    if eps1 is not None:
        eps1 = check_positive("eps[0]", eps1, allow_zero=True)
    eps2 = check_positive("eps[1]", eps2, allow_zero=True)
    if not isinstance(d, (int, float)) or not d >= 1:
        raise InputError(f"d (the clipping threshold) must be a number >= 1, got {d!r}")
    weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def init(params):
        def row(p):
            return _tree.full((*p.shape[:-1], 1), 0, p.dtype) if p.ndim > 1 else None

        def col(p):
            return _tree.full((*p.shape[:-2], 1, p.shape[-1]), 0, p.dtype) if p.ndim > 1 else None

        def vector(p):
            return None if p.ndim > 1 else _tree.zeros_like(p)

        params = jax.tree.map(jnp.asarray, params)
        return fresh_state(
            AdafactorState,
            params,
            row_var=jax.tree.map(row, params),
            col_var=jax.tree.map(col, params),
            variance=jax.tree.map(vector, params),
        )

    def step(params, grads, state, *, value=None, value_fn=None):
        rate = lr_at(lr, state.count)
        t = (state.count + 1).astype(jnp.result_type(float))
        beta2_weight = t**beta2_decay  # 1 - beta2_t, the weight of the new g^2
        rho = jnp.minimum(rate, 1.0 / jnp.sqrt(t))

        def update_leaf(p, g, decayed, row_var, col_var, variance):
            p, g = jnp.asarray(p), jnp.asarray(g)
            dtype = p.dtype
            floor = jnp.finfo(dtype).eps if eps1 is None else eps1
            weight = beta2_weight.astype(dtype)
            alpha = jnp.maximum(eps2, _rms(p)) * rho
            p = decoupled_decay(p, rate, weight_decay, decayed)
            if g.ndim > 1:
                row_var = lerp(row_var, _mean_square(g, axis=-1), weight)
                col_var = lerp(col_var, _mean_square(g, axis=-2), weight)
                row_scale = jnp.maximum(jnp.mean(row_var, axis=-2, keepdims=True), floor)
                estimate = (row_var @ col_var) / row_scale
            else:
                variance = lerp(variance, g * g, weight)
                estimate = variance
            # floor**2 because the square root is taken after clamping.
            update = jax.lax.rsqrt(jnp.maximum(estimate, floor * floor)) * g
            denom = jnp.maximum(1.0, jnp.linalg.norm(update.ravel()) / (math.sqrt(update.size) * d))
            new_p = (p - (alpha / denom) * update).astype(dtype)
            return new_p, row_var, col_var, variance

        grads = signed(grads, maximize=maximize)
        new_params, *moments = map_leaves(
            update_leaf,
            params,
            grads,
            decayed_leaves(mask, params),
            state.row_var,
            state.col_var,
            state.variance,
            outputs=4,
        )
        return new_params, AdafactorState(state.count + 1, *moments)

    hyperparams = {
        "lr": lr,
        "beta2_decay": beta2_decay,
        "eps": (eps1, eps2),
        "d": d,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    # torch.optim.Adafactor refuses complex params: the factored second moment of the
    # (..., 2) pairs would mix real and imaginary parts, a form with no reference.
    optimizer = Optimizer("adafactor", init, step, hyperparams, complex_params="refuse")
    return with_decay_mask(optimizer, mask)


_NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
_NS_DTYPES = {"bfloat16": jnp.bfloat16, "float32": jnp.float32}
_ADJUST_LR = (None, "original", "match_rms_adamw")


def muon(
    lr: LearningRate = 1e-3,
    weight_decay: float = 0.1,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_coefficients: tuple[float, float, float] = _NS_COEFFICIENTS,
    eps: float = 1e-7,
    ns_steps: int = 5,
    adjust_lr_fn: str | None = None,
    *,
    ns_dtype: str = "bfloat16",
    weight_decay_mask: Any = None,
) -> Optimizer:
    r"""Muon: momentum orthogonalised by Newton–Schulz, for 2-D weights, as ``torch.optim.Muon``.

    For each weight matrix :math:`\theta \in \mathbb R^{A\times B}` with gradient
    :math:`g_t`:

    .. math::

        B_t = \mu B_{t-1} + (1-\mu) g_t, \qquad
        \tilde B_t = (1-\mu) g_t + \mu B_t \ \text{(nesterov)}, \ \ \tilde B_t = B_t
        \ \text{(otherwise)} \\
        X_0 = \tilde B_t / \max(\lVert \tilde B_t\rVert_F, \varepsilon), \qquad
        X_{k+1} = a X_k + (b\, X_k X_k^\top + c\, (X_k X_k^\top)^2) X_k
        \quad (k < K) \\
        \theta_t = \theta_{t-1}(1 - \eta\lambda) - \eta\, s(A, B)\, X_K

    (the iteration runs on the transpose when :math:`A > B`), with
    :math:`(a, b, c)` = ``ns_coefficients``, :math:`K` = ``ns_steps`` and the shape
    factor :math:`s = \sqrt{\max(1, A/B)}` (``adjust_lr_fn=None`` or ``"original"``)
    or :math:`0.2\sqrt{\max(A, B)}` (``"match_rms_adamw"``). :math:`X_K` approximates
    the orthogonal polar factor :math:`UV^\top` of :math:`\tilde B_t = U S V^\top`
    (with singular values spread in about [0.5, 1.5] rather than exactly 1).

    The momentum is an exponential average (``torch.lerp``), as in PyTorch's code
    (its docstring writes :math:`B_t = \mu B_{t-1} + g_t`).

    Muon is for the 2-D weight matrices of hidden layers. Every leaf of the params
    must be 2-D: biases, gains and embeddings should be optimized by another
    optimizer (for example ``adamw``) on a separate part of the params; ``init``
    names the leaves that are not 2-D.

    Newton–Schulz runs in ``ns_dtype``: ``"bfloat16"`` (default, as PyTorch: fast on
    accelerators, about 3 significant digits) or ``"float32"`` (slower on
    accelerators, closer to the exact polynomial). The result is cast back to each
    leaf's dtype. Rounding differs from PyTorch's fused ``addmm`` in bfloat16, so
    steps agree with ``torch.optim.Muon`` to bfloat16 precision, not bit for bit.

    Optax's flavour is :func:`~descend.optim.muon_optax` (``optax.contrib.muon``).
    It differs in its defaults (``lr`` 0.02, ``weight_decay`` 0, ``eps`` 1e-8); it
    bias-corrects the momentum; it runs Newton–Schulz (the same default coefficients,
    or a triple per iteration, or other normalisations) in the params' dtype rather
    than bfloat16, dividing by :math:`\lVert\cdot\rVert_F + \varepsilon`; it reads a
    weight as ``(in, out)``, scaling by :math:`\sqrt{\max(1, B/A)}` where this one
    (``(out, in)``, as ``torch.nn.Linear``) scales by :math:`\sqrt{\max(1, A/B)}`;
    it adds :math:`\lambda\theta` to the update instead of shrinking
    :math:`\theta` first; and it steps the leaves that are not 2-D with AdamW,
    where this one refuses them.

    Parameters
    ----------
    lr:
        Learning rate :math:`\eta > 0` or a schedule. Default ``1e-3``.
    weight_decay:
        Decoupled weight decay :math:`\lambda \ge 0` (multiplied by the unadjusted
        ``lr``). Default 0.1.
    momentum:
        :math:`\mu \in [0, 1)`. Default 0.95.
    nesterov:
        Nesterov-style look-ahead. Default True.
    ns_coefficients:
        :math:`(a, b, c)`. Default ``(3.4445, -4.7750, 2.0315)``.
    eps:
        Floor :math:`\varepsilon > 0` of the Frobenius norm. Default ``1e-7``.
    ns_steps:
        Newton–Schulz iterations :math:`K`, 1 to 99. Default 5.
    adjust_lr_fn:
        ``None`` / ``"original"`` or ``"match_rms_adamw"``.
    ns_dtype:
        ``"bfloat16"`` (default) or ``"float32"``.
    weight_decay_mask:
        The leaves to decay, as in :func:`~descend.optim.adam.adam`: ``None`` (all),
        ``"weights"`` (the leaves named ``w``, not the biases of descend's models), a
        pytree of ``True`` / ``False``, or a function (Optax's ``mask``).

    References
    ----------
    Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024;
    Liu et al., "Muon is Scalable for LLM Training", arXiv:2502.16982;
    ``torch.optim.Muon``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from descend.optim.matrix import muon
    >>> opt = muon(lr=0.02, ns_dtype="float32")
    >>> w = jnp.zeros((4, 4))
    >>> w, state = opt.step(w, jnp.eye(4), opt.init(w))
    >>> w.shape
    (4, 4)
    """
    lr = check_lr(lr)
    weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
    momentum = check_in_range("momentum", momentum, 0.0, 1.0)
    try:
        a, b, c = (float(v) for v in ns_coefficients)
    except (TypeError, ValueError):
        raise InputError(
            f"ns_coefficients must be three numbers (a, b, c), got {ns_coefficients!r}"
        ) from None
    eps = check_positive("eps", eps)
    ns_steps = check_int("ns_steps", ns_steps)
    if ns_steps >= 100:
        raise InputError(f"ns_steps must be an integer in [1, 99], got {ns_steps!r}")
    if adjust_lr_fn not in _ADJUST_LR:
        raise InputError(
            f"adjust_lr_fn must be None, 'original' or 'match_rms_adamw', got {adjust_lr_fn!r}"
        )
    if ns_dtype not in _NS_DTYPES:
        raise InputError(f"ns_dtype must be 'bfloat16' or 'float32', got {ns_dtype!r}")
    work_dtype = _NS_DTYPES[ns_dtype]
    mask = check_decay_mask("weight_decay_mask", weight_decay_mask)

    def orthogonalize(update):
        # Each product and its affine combination are formed in float32 and rounded to
        # ns_dtype once, as a fused bfloat16 addmm (float32 accumulation) does in PyTorch.
        def matmul(left, right):
            return jnp.matmul(left, right, preferred_element_type=jnp.float32)

        def rounded(value):
            # Round in float32 first: compiled, XLA may drop a float32 -> bfloat16 ->
            # float32 round trip, which would keep float32 precision where torch rounds.
            value = value.astype(jnp.float32)
            if work_dtype == jnp.bfloat16:
                value = jax.lax.reduce_precision(value, exponent_bits=8, mantissa_bits=7)
            return value.astype(work_dtype)

        x = rounded(update)
        tall = update.shape[0] > update.shape[1]
        if tall:
            x = x.T
        norm = rounded(jnp.linalg.norm(x.astype(jnp.float32)))
        x = rounded(x.astype(jnp.float32) / jnp.maximum(norm, jnp.asarray(eps, work_dtype)))
        for _ in range(ns_steps):
            gram = rounded(matmul(x, x.T))
            poly = rounded(b * gram.astype(jnp.float32) + c * matmul(gram, gram))
            x = rounded(a * x.astype(jnp.float32) + matmul(poly, x))
        return x.T if tall else x

    def shape_factor(shape):
        rows, cols = shape
        if adjust_lr_fn == "match_rms_adamw":
            return 0.2 * math.sqrt(max(rows, cols))
        return math.sqrt(max(1.0, rows / cols))

    def init(params):
        _check_matrices(params)
        return fresh_state(MuonState, params)

    def step(params, grads, state, *, value=None, value_fn=None):
        _check_matrices(params)
        rate = lr_at(lr, state.count)

        def update_leaf(p, g, decayed, buffer):
            p, g = jnp.asarray(p), jnp.asarray(g)
            buffer = lerp(buffer, g, 1 - momentum)
            direction = lerp(g, buffer, momentum) if nesterov else buffer
            ortho = orthogonalize(direction).astype(p.dtype)
            start = decoupled_decay(p, rate, weight_decay, decayed)
            new_p = start - rate * shape_factor(p.shape) * ortho
            return new_p.astype(p.dtype), buffer

        new_params, buffers = map_leaves(
            update_leaf,
            params,
            grads,
            decayed_leaves(mask, params),
            state.momentum_buffer,
            outputs=2,
        )
        return new_params, MuonState(count=state.count + 1, momentum_buffer=buffers)

    hyperparams = {
        "lr": lr,
        "weight_decay": weight_decay,
        "momentum": momentum,
        "nesterov": nesterov,
        "ns_coefficients": (a, b, c),
        "eps": eps,
        "ns_steps": ns_steps,
        "adjust_lr_fn": adjust_lr_fn,
        "ns_dtype": ns_dtype,
    }
    # torch.optim.Muon refuses complex params: the polar factor of a complex matrix is
    # not that of its pairs.
    optimizer = Optimizer("muon", init, step, hyperparams, complex_params="refuse")
    return with_decay_mask(optimizer, mask)


def _check_matrices(params: Any) -> None:
    """Raise, naming each leaf by its pytree path, unless every leaf is a 2-D array."""
    wrong = [
        f"{jax.tree_util.keystr(path) or '<root>'} (shape {tuple(jnp.shape(leaf))})"
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
        if jnp.ndim(leaf) != 2
    ]
    if wrong:
        raise InputError(
            "muon only optimizes 2-D weight matrices, but these params are not 2-D: "
            + ", ".join(wrong)
            + ". Optimize them with another optimizer (for example adamw) on a "
            "separate part of the params, and give muon only the weight matrices"
        )
