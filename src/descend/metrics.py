"""The metrics training reports, written once: R² for regression, accuracy for classifiers.

Each works on NumPy values (``xp=numpy``, the default) and on JAX values inside compiled
code (``xp=jax.numpy``), so the history's running metrics, the validation scores and
``FitResult.score`` agree by construction.

>>> import numpy as np
>>> y = np.array([1.0, 2.0, 3.0]); predictions = np.array([1.0, 2.0, 4.0])
>>> round(float(r2(y, predictions)), 4)  # as sklearn.metrics.r2_score
0.5
>>> float(accuracy(np.array([0, 1, 1]), np.array([0, 1, 0])))
0.6666666666666666
"""

from __future__ import annotations

from typing import Any

import numpy as np

METRIC_OF_TASK = {"regression": "r2", "binary": "accuracy", "multiclass": "accuracy"}


def task_metric(task: str) -> str:
    """The metric reported for a model's task: ``"r2"`` for regression, else ``"accuracy"``."""
    return METRIC_OF_TASK[task]


def r2_from_sums(residual: Any, total: Any, xp: Any = np) -> Any:
    r"""R² from per-output sums of squares, averaged over the outputs.

    :math:`1 - SS_\text{res} / SS_\text{tot}` per output, then the mean (scikit-learn's
    ``multioutput="uniform_average"``); an output with a constant target
    (:math:`SS_\text{tot} = 0`) scores 1 when predicted exactly and 0 otherwise, as
    ``sklearn.metrics.r2_score`` does.

    Parameters
    ----------
    residual, total:
        Arrays of shape ``(n_outputs,)`` (or scalars): the sums of squared residuals
        and the total sums of squares around the mean.
    xp:
        ``numpy`` or ``jax.numpy``.
    """
    residual, total = xp.asarray(residual), xp.asarray(total)
    safe = xp.where(total > 0, total, 1)
    scores = xp.where(total > 0, 1 - residual / safe, (residual == 0) * 1.0)
    return xp.mean(scores)


def r2(y: Any, predictions: Any, xp: Any = np, sample_weight: Any = None) -> Any:
    r"""R² of ``predictions`` against targets ``y`` (same number of rows; 1-D or 2-D).

    With ``sample_weight`` :math:`w` (shape ``(n,)``, :math:`\ge 0`, not all 0), the
    sums of squares are weighted and taken around the weighted mean, as
    ``sklearn.metrics.r2_score(..., sample_weight=w)``.
    """
    predictions = xp.asarray(predictions)
    targets = xp.reshape(xp.asarray(y), predictions.shape)
    if sample_weight is None:
        residual = xp.sum((targets - predictions) ** 2, axis=0)
        total = xp.sum((targets - xp.mean(targets, axis=0)) ** 2, axis=0)
        return r2_from_sums(residual, total, xp)
    w = xp.reshape(xp.asarray(sample_weight), (-1,) + (1,) * (predictions.ndim - 1))
    mean = xp.sum(w * targets, axis=0) / xp.sum(w)
    residual = xp.sum(w * (targets - predictions) ** 2, axis=0)
    total = xp.sum(w * (targets - mean) ** 2, axis=0)
    return r2_from_sums(residual, total, xp)


def accuracy(y: Any, labels: Any, xp: Any = np, sample_weight: Any = None) -> Any:
    """The share of ``labels`` equal to the true labels ``y``.

    With ``sample_weight`` (shape ``(n,)``, >= 0, not all 0), the weight of the correct
    rows over the weight of all, as ``sklearn.metrics.accuracy_score``.
    """
    labels = xp.asarray(labels)
    correct = labels == xp.asarray(y).astype(labels.dtype)
    if sample_weight is None:
        return xp.mean(correct)
    w = xp.asarray(sample_weight)
    return xp.sum(w * correct) / xp.sum(w)


def running(metric: str, sums: Any, weight_sum: float, total_squares: Any) -> float:
    """An epoch's training metric from the sums its batches gathered (as Keras reports it).

    Accuracy: weighted correct predictions over the weight of the rows; R²: from the
    summed squared residuals per output and the targets' total sum of squares
    (:func:`descend.data.moments.total_squares`).
    """
    if metric == "accuracy":
        return float(sums / weight_sum)
    residual = np.reshape(np.asarray(sums, dtype=np.float64), -1)
    return float(r2_from_sums(residual, total_squares))
