r"""Loss functions: pure JAX functions of arrays, with ``torch.nn.functional``'s semantics.

Every loss has the form ``loss(predictions, targets, *, reduction="mean", weights=None, ...)``
and computes a per-element loss :math:`\ell` that is then reduced:

* ``reduction="none"``: the elementwise losses :math:`w \ell` (same shape as ``predictions``;
  one value per sample for :func:`cross_entropy` and :func:`nll`).
* ``reduction="sum"``: :math:`\sum w \ell`.
* ``reduction="mean"``: :math:`\sum w \ell / \sum w`, the weighted mean over all elements.
  Without weights this is the plain mean over all elements, as in PyTorch: for predictions of
  shape ``(n, k)`` it averages over the ``n * k`` values.

``weights`` are **per-sample** weights of shape ``(n,)`` for predictions with ``n`` rows; a
sample's weight applies to every element of its row. This differs from PyTorch, whose
``weight`` argument is per class (:func:`cross_entropy`, :func:`nll`; here that is
``class_weights``) or elementwise without renormalising the mean (:func:`binary_cross_entropy`).
All-zero weights give ``nan`` for ``reduction="mean"``.

Shapes are never broadcast silently: ``predictions`` and ``targets`` must have the same
shape, except for class-index targets of :func:`cross_entropy` and :func:`nll`. The result
has the floating dtype of ``predictions``. Unknown reduction names, mismatched shapes and bad
settings raise :class:`descend.errors.InputError` when the function is called (or traced).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from descend.errors import (
    DescendTypeError,
    InputError,
    check_in_range,
    check_positive,
    unknown_name,
)

Array = jax.Array
REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------- validation and reduction
def _check_reduction(reduction: str, valid: tuple[str, ...] = REDUCTIONS) -> None:
    if not isinstance(reduction, str) or reduction not in valid:
        choices = ", ".join(repr(name) for name in valid)
        raise InputError(f"reduction must be one of {choices}, got {reduction!r}")


def _as_float(predictions) -> Array:
    predictions = jnp.asarray(predictions)
    if not jnp.issubdtype(predictions.dtype, jnp.floating):
        predictions = predictions.astype(jnp.result_type(float))
    return predictions


def _pair(name: str, predictions, targets) -> tuple[Array, Array]:
    """Predictions as a float array and targets of the same shape and dtype."""
    predictions, targets = _as_float(predictions), jnp.asarray(targets)
    if predictions.shape != targets.shape:
        raise InputError(
            f"{name}: predictions have shape {predictions.shape} but targets have shape "
            f"{targets.shape}; they must be equal (no silent broadcasting). Reshape one of "
            "them, e.g. y.reshape(-1) for a column of targets"
        )
    return predictions, targets.astype(predictions.dtype)


def _check_weights(weights, loss_shape: tuple[int, ...], dtype) -> Array | None:
    if weights is None:
        return None
    weights = jnp.asarray(weights)
    if len(loss_shape) == 0 or weights.shape != loss_shape[:1]:
        expected = f"({loss_shape[0]},)" if loss_shape else "(n,) with predictions of n rows"
        raise InputError(
            f"weights must be one weight per sample, of shape {expected}, got shape "
            f"{weights.shape} for predictions of shape {loss_shape}"
        )
    return weights.astype(dtype)


def _reduce(loss: Array, reduction: str, weights, mass: Array | None = None) -> Array:
    """Reduce elementwise ``loss``; the mean divides by the total of ``weights * mass``."""
    weights = _check_weights(weights, loss.shape, loss.dtype)
    if weights is not None:
        weights = weights.reshape(weights.shape + (1,) * (loss.ndim - 1))
        loss = loss * weights
    if reduction == "none":
        return loss
    if reduction == "sum":
        return jnp.sum(loss)
    if weights is None and mass is None:
        return jnp.mean(loss)
    total = jnp.ones_like(loss) if mass is None else mass
    if weights is not None:
        total = total * weights
    return jnp.sum(loss) / jnp.sum(jnp.broadcast_to(total, loss.shape))


def _logits_and_labels(name: str, scores, targets) -> tuple[Array, Array, bool]:
    """Scores ``(n, C)`` and either class indices ``(n,)`` or class probabilities ``(n, C)``."""
    scores, targets = _as_float(scores), jnp.asarray(targets)
    if scores.ndim != 2:
        raise InputError(
            f"{name}: predictions must be scores of shape (n_samples, n_classes), got shape "
            f"{scores.shape}"
        )
    if targets.shape == scores.shape:
        return scores, targets.astype(scores.dtype), True
    if targets.shape != scores.shape[:1]:
        raise InputError(
            f"{name}: predictions have shape {scores.shape}, so targets must be class indices "
            f"of shape {scores.shape[:1]} or class probabilities of shape {scores.shape}; got "
            f"shape {targets.shape}"
        )
    if not jnp.issubdtype(targets.dtype, jnp.integer):
        raise InputError(
            f"{name}: class-index targets must be integers, got dtype {targets.dtype}; "
            "convert them with y.astype(int)"
        )
    if not isinstance(targets, jax.core.Tracer) and targets.size:
        low, high = int(np.min(targets)), int(np.max(targets))
        if low < 0 or high >= scores.shape[1]:
            raise InputError(
                f"{name}: class-index targets must be in [0, {scores.shape[1] - 1}] for "
                f"{scores.shape[1]} classes, got values from {low} to {high}"
            )
    return scores, targets, False


def _class_weights(class_weights, n_classes: int, dtype) -> Array | None:
    if class_weights is None:
        return None
    class_weights = jnp.asarray(class_weights, dtype)
    if class_weights.shape != (n_classes,):
        raise InputError(
            f"class_weights must have one weight per class, shape ({n_classes},), got shape "
            f"{class_weights.shape}"
        )
    return class_weights


def _signed(targets: Array) -> Array:
    # Targets > 0 are the positive class, so {0, 1} and {-1, +1} labels both work.
    return jnp.where(targets > 0, 1.0, -1.0).astype(targets.dtype)


# ---------------------------------------------------------------- regression
def mse(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    reduction: str = "mean",
    weights: ArrayLike | None = None,
) -> Array:
    r"""Mean squared error, :math:`\ell = (p - t)^2`; as ``torch.nn.functional.mse_loss``.

    See the module docstring for ``reduction`` (``"mean"``, ``"sum"``, ``"none"``) and
    ``weights`` (per sample, shape ``(n,)``).

    >>> from descend import losses
    >>> float(losses.mse([1.0, 2.0], [1.0, 4.0]))
    2.0
    """
    _check_reduction(reduction)
    predictions, targets = _pair("mse", predictions, targets)
    return _reduce(jnp.square(predictions - targets), reduction, weights)


def mae(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    reduction: str = "mean",
    weights: ArrayLike | None = None,
) -> Array:
    r"""Mean absolute error, :math:`\ell = |p - t|`; as ``torch.nn.functional.l1_loss``.

    >>> from descend import losses
    >>> float(losses.mae([1.0, 2.0], [1.0, 4.0]))
    1.0
    """
    _check_reduction(reduction)
    predictions, targets = _pair("mae", predictions, targets)
    return _reduce(jnp.abs(predictions - targets), reduction, weights)


l1 = mae


def huber(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    reduction: str = "mean",
    weights: ArrayLike | None = None,
    delta: float = 1.0,
) -> Array:
    r"""Huber loss; as ``torch.nn.functional.huber_loss``.

    With :math:`d = p - t`: :math:`\ell = d^2/2` if :math:`|d| < \delta`, else
    :math:`\delta(|d| - \delta/2)`. ``delta`` > 0, default 1 (Huber, 1964).

    >>> from descend import losses
    >>> float(losses.huber([0.0, 0.0], [0.5, 3.0], reduction="sum"))
    2.625
    """
    _check_reduction(reduction)
    delta = check_positive("delta", delta)
    predictions, targets = _pair("huber", predictions, targets)
    gap = jnp.abs(predictions - targets)
    loss = jnp.where(gap < delta, 0.5 * gap**2, delta * (gap - 0.5 * delta))
    return _reduce(loss, reduction, weights)


def smooth_l1(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    reduction: str = "mean",
    weights: ArrayLike | None = None,
    beta: float = 1.0,
) -> Array:
    r"""Smooth L1 loss; as ``torch.nn.functional.smooth_l1_loss``.

    With :math:`d = p - t`: :math:`\ell = d^2/(2\beta)` if :math:`|d| < \beta`, else
    :math:`|d| - \beta/2`. ``beta`` >= 0, default 1; ``beta=0`` is :func:`mae`. Equals
    ``huber(delta=beta) / beta`` (Girshick, "Fast R-CNN", 2015).

    >>> from descend import losses
    >>> float(losses.smooth_l1([0.0, 0.0], [0.5, 3.0], reduction="sum"))
    2.625
    """
    _check_reduction(reduction)
    beta = check_positive("beta", beta, allow_zero=True)
    predictions, targets = _pair("smooth_l1", predictions, targets)
    gap = jnp.abs(predictions - targets)
    if beta == 0.0:
        return _reduce(gap, reduction, weights)
    loss = jnp.where(gap < beta, 0.5 * gap**2 / beta, gap - 0.5 * beta)
    return _reduce(loss, reduction, weights)


def log_cosh(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    reduction: str = "mean",
    weights: ArrayLike | None = None,
) -> Array:
    r"""Log-cosh loss, :math:`\ell = \log\cosh(p - t)` (no PyTorch equivalent).

    Computed as :math:`\operatorname{logaddexp}(d, -d) - \log 2`, which stays finite where
    ``cosh`` overflows (:math:`|d| > 710` in float64). Like :math:`d^2/2` near 0 and
    :math:`|d| - \log 2` far from it.

    >>> from descend import losses
    >>> float(losses.log_cosh([0.0], [0.0]))
    0.0
    """
    _check_reduction(reduction)
    predictions, targets = _pair("log_cosh", predictions, targets)
    gap = predictions - targets
    return _reduce(jnp.logaddexp(gap, -gap) - math.log(2.0), reduction, weights)


def poisson_nll(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    reduction: str = "mean",
    weights: ArrayLike | None = None,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
) -> Array:
    r"""Poisson negative log-likelihood; as ``torch.nn.functional.poisson_nll_loss``.

    :math:`\ell = e^{p} - t p` with ``log_input=True`` (predictions are log-rates), else
    :math:`\ell = p - t \log(p + \epsilon)`. With ``full=True`` Stirling's term
    :math:`t\log t - t + \tfrac12\log(2\pi t)` is added where :math:`t > 1`.

    >>> from descend import losses
    >>> float(losses.poisson_nll([0.0], [2.0]))
    1.0
    """
    _check_reduction(reduction)
    eps = check_positive("eps", eps, allow_zero=True)
    predictions, targets = _pair("poisson_nll", predictions, targets)
    if log_input:
        loss = jnp.exp(predictions) - targets * predictions
    else:
        loss = predictions - targets * jnp.log(predictions + eps)
    if full:
        safe = jnp.where(targets > 1, targets, 1.0)
        stirling = safe * jnp.log(safe) - safe + 0.5 * jnp.log(2 * math.pi * safe)
        loss = loss + jnp.where(targets > 1, stirling, 0.0)
    return _reduce(loss, reduction, weights)


# ---------------------------------------------------------------- binary classification
def binary_cross_entropy(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    reduction: str = "mean",
    weights: ArrayLike | None = None,
) -> Array:
    r"""Binary cross-entropy from probabilities; as ``torch.nn.functional.binary_cross_entropy``.

    :math:`\ell = -[t \log p + (1 - t)\log(1 - p)]` with each logarithm clamped at
    :math:`-100` as in PyTorch, so ``p = 0`` or ``1`` gives a finite loss, and with
    PyTorch's gradient :math:`(p - t) / \max(p(1-p), 10^{-12})`. ``predictions`` must lie
    in [0, 1] (not checked); prefer :func:`binary_cross_entropy_with_logits`,
    which is exact for any logit.

    >>> from descend import losses
    >>> round(float(losses.binary_cross_entropy([0.5], [1.0])), 6)
    0.693147
    """
    _check_reduction(reduction)
    predictions, targets = _pair("binary_cross_entropy", predictions, targets)
    return _reduce(_bce_elementwise(predictions, targets), reduction, weights)


def _clamped_logs(p: Array) -> tuple[Array, Array]:
    return jnp.maximum(jnp.log(p), -100.0), jnp.maximum(jnp.log1p(-p), -100.0)


# PyTorch's bound is the float32 constant 1e-12f, which is 9.99999996e-13 as a float64.
_TORCH_BCE_EPSILON = float(np.float32(1e-12))


@jax.custom_jvp
def _bce_elementwise(p: Array, t: Array) -> Array:
    log_p, log_not_p = _clamped_logs(p)
    return -(t * log_p + (1 - t) * log_not_p)


@_bce_elementwise.defjvp
def _bce_elementwise_jvp(primals, tangents):
    # PyTorch's derivative, (p - t) / max(p (1 - p), 1e-12): finite where a sigmoid has
    # saturated to exactly 0 or 1, where differentiating the clamped logs would give nan.
    (p, t), (dp, dt) = primals, tangents
    log_p, log_not_p = _clamped_logs(p)
    value = -(t * log_p + (1 - t) * log_not_p)
    slope = (p - t) / jnp.maximum(p * (1 - p), _TORCH_BCE_EPSILON)
    return value, slope * dp + (log_not_p - log_p) * dt


def binary_cross_entropy_with_logits(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    reduction: str = "mean",
    weights: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
) -> Array:
    r"""Binary cross-entropy from logits; as ``F.binary_cross_entropy_with_logits`` in torch.

    With :math:`\operatorname{softplus}(x) = \log(1 + e^x)` evaluated stably:
    :math:`\ell = w_+\, t \operatorname{softplus}(-p) + (1 - t)\operatorname{softplus}(p)`,
    finite for logits of any size. ``pos_weight`` :math:`w_+` (default 1) multiplies the
    positive term and broadcasts against the last axis, as in PyTorch.

    >>> from descend import losses
    >>> float(losses.binary_cross_entropy_with_logits([1e4], [0.0]))
    10000.0
    """
    _check_reduction(reduction)
    predictions, targets = _pair("binary_cross_entropy_with_logits", predictions, targets)
    pos_weight = jnp.asarray(1.0 if pos_weight is None else pos_weight, predictions.dtype)
    return _reduce(_bce_logits_elementwise(predictions, targets, pos_weight), reduction, weights)


@jax.custom_jvp
def _bce_logits_elementwise(z: Array, t: Array, pos_weight: Array) -> Array:
    return pos_weight * t * jax.nn.softplus(-z) + (1 - t) * jax.nn.softplus(z)


@_bce_logits_elementwise.defjvp
def _bce_logits_elementwise_jvp(primals, tangents):
    # PyTorch's derivative, (w t + 1 - t) sigmoid(z) - w t: one sigmoid, where
    # differentiating the two softplus terms gives two (sigmoid(-z) and sigmoid(z)).
    (z, t, pos_weight), (dz, dt, dpos_weight) = primals, tangents
    value = _bce_logits_elementwise(z, t, pos_weight)
    weighted = pos_weight * t
    slope = (weighted + 1 - t) * jax.nn.sigmoid(z) - weighted
    target_slope = pos_weight * jax.nn.softplus(-z) - jax.nn.softplus(z)
    return value, slope * dz + target_slope * dt + t * jax.nn.softplus(-z) * dpos_weight


def hinge(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    reduction: str = "mean",
    weights: ArrayLike | None = None,
) -> Array:
    r"""Hinge loss of a linear SVM, :math:`\ell = \max(0, 1 - y f)` (no PyTorch equivalent).

    ``predictions`` are raw scores :math:`f`. Targets greater than 0 are the positive class
    (:math:`y = +1`), the others negative (:math:`y = -1`), so labels in ``{0, 1}`` and in
    ``{-1, +1}`` both work. As scikit-learn's ``hinge_loss`` for binary labels.

    >>> from descend import losses
    >>> float(losses.hinge([0.5, -2.0], [1, 0], reduction="sum"))
    0.5
    """
    _check_reduction(reduction)
    predictions, targets = _pair("hinge", predictions, targets)
    return _reduce(jax.nn.relu(1 - _signed(targets) * predictions), reduction, weights)


def squared_hinge(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    reduction: str = "mean",
    weights: ArrayLike | None = None,
) -> Array:
    r"""Squared hinge loss, :math:`\ell = \max(0, 1 - y f)^2`; labels as in :func:`hinge`.

    >>> from descend import losses
    >>> float(losses.squared_hinge([0.5, -2.0], [1, -1]))
    0.125
    """
    _check_reduction(reduction)
    predictions, targets = _pair("squared_hinge", predictions, targets)
    margin = jax.nn.relu(1 - _signed(targets) * predictions)
    return _reduce(jnp.square(margin), reduction, weights)


# ---------------------------------------------------------------- multiclass
def cross_entropy(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    reduction: str = "mean",
    weights: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
    label_smoothing: float = 0.0,
) -> Array:
    r"""Softmax cross-entropy from logits; as ``torch.nn.functional.cross_entropy``.

    ``predictions`` are logits of shape ``(n, C)``; :math:`q = \operatorname{log\_softmax}(p)`.
    Targets are either class indices (integers, shape ``(n,)``) or class probabilities /
    one-hot rows (shape ``(n, C)``). With class weights :math:`c` (default 1) and label
    smoothing :math:`\varepsilon \in [0, 1]`:

    * indices: :math:`\ell_i = -(1-\varepsilon)\, c_{y_i} q_{i y_i}
      - \tfrac{\varepsilon}{C}\sum_j c_j q_{ij}`; ``"mean"`` divides by
      :math:`\sum_i s_i c_{y_i}` (PyTorch's weighted mean; :math:`s` = ``weights``).
    * probabilities: :math:`\ell_i = -\sum_j c_j \tilde t_{ij} q_{ij}` with
      :math:`\tilde t = (1-\varepsilon) t + \varepsilon / C`; ``"mean"`` divides by
      :math:`\sum_i s_i` (by ``n`` without weights), as PyTorch does.

    ``reduction="none"`` returns one loss per sample, shape ``(n,)``. Class indices
    outside ``[0, C)`` raise ``InputError`` when the targets are concrete.

    >>> from descend import losses
    >>> round(float(losses.cross_entropy([[0.0, 0.0, 0.0, 0.0]] * 2, [0, 3])), 6)
    1.386294
    """
    _check_reduction(reduction)
    smoothing = check_in_range("label_smoothing", label_smoothing, 0.0, 1.0, closed_high=True)
    logits, targets, soft = _logits_and_labels("cross_entropy", predictions, targets)
    n_classes = logits.shape[1]
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    class_weights = _class_weights(class_weights, n_classes, logits.dtype)
    weighted = log_probs if class_weights is None else log_probs * class_weights
    if soft:
        if smoothing:
            targets = (1 - smoothing) * targets + smoothing / n_classes
        return _reduce(-jnp.sum(targets * weighted, axis=-1), reduction, weights)
    picked = -jnp.take_along_axis(weighted, targets[:, None], axis=1)[:, 0]
    loss = picked
    if smoothing:
        loss = (1 - smoothing) * picked - smoothing / n_classes * jnp.sum(weighted, axis=-1)
    mass = None if class_weights is None else class_weights[targets]
    return _reduce(loss, reduction, weights, mass)


def nll(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    reduction: str = "mean",
    weights: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
) -> Array:
    r"""Negative log-likelihood of log-probabilities; as ``torch.nn.functional.nll_loss``.

    ``predictions`` are log-probabilities :math:`q` of shape ``(n, C)`` (e.g. from
    ``jax.nn.log_softmax``), targets integer class indices of shape ``(n,)``:
    :math:`\ell_i = -c_{y_i} q_{i y_i}`; ``"mean"`` divides by :math:`\sum_i s_i c_{y_i}`
    as in PyTorch (:math:`c` = ``class_weights``, :math:`s` = ``weights``, default 1).

    >>> from descend import losses
    >>> float(losses.nll([[-1.0, -2.0]], [1]))
    2.0
    """
    _check_reduction(reduction)
    log_probs, targets, soft = _logits_and_labels("nll", predictions, targets)
    if soft:
        raise InputError(
            f"nll: targets must be integer class indices of shape {log_probs.shape[:1]}, got "
            f"shape {targets.shape}; for probability targets use cross_entropy"
        )
    class_weights = _class_weights(class_weights, log_probs.shape[1], log_probs.dtype)
    loss = -jnp.take_along_axis(log_probs, targets[:, None], axis=1)[:, 0]
    mass = None
    if class_weights is not None:
        mass = class_weights[targets]
        loss = loss * mass
    return _reduce(loss, reduction, weights, mass)


def kl_div(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    reduction: str = "mean",
    weights: ArrayLike | None = None,
    log_target: bool = False,
) -> Array:
    r"""Kullback-Leibler divergence :math:`KL(t \,\|\, \cdot)`; as ``torch.nn.functional.kl_div``.

    As in PyTorch, ``predictions`` are **log**-probabilities :math:`q` and targets are
    probabilities: :math:`\ell = t(\log t - q)`, taken as :math:`-tq` where :math:`t = 0`.
    With ``log_target=True`` targets are log-probabilities too:
    :math:`\ell = e^{t}(t - q)`. ``reduction`` also accepts ``"batchmean"``, the sum over
    each sample's elements averaged over samples (weighted by ``weights``), which is the
    true KL divergence per sample; ``"mean"`` averages over all elements, as PyTorch.

    >>> import jax.numpy as jnp
    >>> from descend import losses
    >>> t = jnp.array([[0.5, 0.5]])
    >>> float(losses.kl_div(jnp.log(t), t, reduction="batchmean"))
    0.0
    """
    _check_reduction(reduction, (*REDUCTIONS, "batchmean"))
    predictions, targets = _pair("kl_div", predictions, targets)
    if log_target:
        loss = jnp.exp(targets) * (targets - predictions)
    else:
        loss = jax.scipy.special.xlogy(targets, targets) - targets * predictions
    if reduction != "batchmean":
        return _reduce(loss, reduction, weights)
    if loss.ndim == 0:
        raise InputError("kl_div: reduction='batchmean' needs predictions with a batch axis")
    per_sample = jnp.sum(loss.reshape(loss.shape[0], -1), axis=1)
    return _reduce(per_sample, "mean", weights)


# ---------------------------------------------------------------- registry
_REGISTRY: dict[str, Callable[..., Array]] = {
    "mse": mse,
    "mae": mae,
    "l1": l1,
    "huber": huber,
    "smooth_l1": smooth_l1,
    "log_cosh": log_cosh,
    "bce": binary_cross_entropy,
    "bce_with_logits": binary_cross_entropy_with_logits,
    "cross_entropy": cross_entropy,
    "nll": nll,
    "hinge": hinge,
    "squared_hinge": squared_hinge,
    "kl_div": kl_div,
    "poisson_nll": poisson_nll,
}


def names() -> tuple[str, ...]:
    """The loss names :func:`get` accepts, sorted.

    >>> from descend import losses
    >>> "cross_entropy" in losses.names()
    True
    """
    return tuple(sorted(_REGISTRY))


def get(name: str | Callable[..., Array]) -> Callable[..., Array]:
    """The loss function called ``name`` (see :func:`names`); a callable is returned as is.

    Raises ``InputError`` for an unknown name, suggesting the closest valid one.

    >>> from descend import losses
    >>> losses.get("bce_with_logits") is losses.binary_cross_entropy_with_logits
    True
    """
    if callable(name):
        return name
    if not isinstance(name, str):
        raise DescendTypeError(f"a loss must be a name or a function, got {name!r}")
    if name not in _REGISTRY:
        raise unknown_name("loss", name, _REGISTRY)
    return _REGISTRY[name]
