"""The metrics training reports, written once: R² for regression, accuracy for classifiers;
and the full reports of ``FitResult.evaluate``.

Each of the first works on NumPy values (``xp=numpy``, the default) and on JAX values
inside compiled code (``xp=jax.numpy``), so the history's running metrics, the
validation scores and ``FitResult.score`` agree by construction.
:func:`classification_report` and :func:`regression_report` call scikit-learn's metric
functions when it is installed, and compute the same definitions in NumPy otherwise.

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


# ------------------------------------------------------------ evaluate: the full reports

# The averaging of precision, recall and F1 (scikit-learn's ``average``): the positive
# class alone for two classes, the unweighted mean over the labels for more.
AVERAGE = {"binary": "binary", "multiclass": "macro"}


def _sklearn_metrics() -> Any:
    """``sklearn.metrics`` when scikit-learn is installed, else None (the NumPy path)."""
    try:
        import sklearn.exceptions
        import sklearn.metrics
    except ImportError:
        return None
    return sklearn.metrics


def classification_report(y: Any, predicted: Any, proba: Any, classes: Any) -> dict[str, Any]:
    r"""Accuracy, precision, recall, F1, ROC AUC, log-loss and the confusion matrix.

    Computed by scikit-learn's functions when it is installed, else in NumPy with the
    same definitions (the tests hold one to the other):

    - ``accuracy``: the share of ``predicted`` equal to ``y`` (``accuracy_score``).
    - ``precision``, ``recall``, ``f1``: with two classes, of the positive class
      ``classes[1]`` (``average="binary"``); with more, the unweighted mean over the
      labels found in ``y`` or ``predicted`` (``average="macro"``). A ratio whose
      denominator is 0 (no row predicted or labelled positive) counts 0
      (``zero_division=0``).
    - ``roc_auc``: of ``proba[:, 1]`` for two classes; for more, one class against the
      rest, averaged over ``classes`` (``multi_class="ovr"``, ``average="macro"``).
      NaN when ``y`` lacks a class (with one class only it is not defined).
    - ``log_loss``: :math:`-\frac1n \sum_i \log p_{i, y_i}`, each probability clipped
      to :math:`[\epsilon, 1 - \epsilon]` with :math:`\epsilon` the machine epsilon of
      ``proba``'s dtype, as ``log_loss`` clips.
    - ``confusion_matrix``: ``[i, j]`` counts the rows of class ``classes[i]``
      predicted ``classes[j]`` (``confusion_matrix(labels=classes)``), int64.

    Parameters
    ----------
    y, predicted:
        Labels, shape ``(n,)``, ``n >= 1``, each one of ``classes``.
    proba:
        Class probabilities, shape ``(n, len(classes))``, rows summing to 1, in
        ``classes`` order; kept in their floating dtype.
    classes:
        The model's labels, at least two.

    Returns
    -------
    dict
        The numbers above (floats; the matrix a NumPy array), ``task`` (``"binary"`` or
        ``"multiclass"``), ``average`` (``"binary"`` or ``"macro"``), ``labels`` (the
        matrix's order), ``n_samples`` and ``computed_by`` (``"scikit-learn"`` or
        ``"numpy"``).
    """
    classes = np.asarray(classes)
    y, predicted = np.asarray(y), np.asarray(predicted)
    proba = np.asarray(proba)
    if not np.issubdtype(proba.dtype, np.floating):
        proba = proba.astype(np.float64)
    task = "binary" if len(classes) == 2 else "multiclass"
    sklearn_metrics = _sklearn_metrics()
    if sklearn_metrics is None:
        scores = _classification_by_numpy(y, predicted, proba, classes)
    else:
        scores = _classification_by_sklearn(sklearn_metrics, y, predicted, proba, classes)
    return {
        "task": task,
        "n_samples": len(y),
        **scores,
        "average": AVERAGE[task],
        "labels": classes.tolist(),
        "computed_by": "numpy" if sklearn_metrics is None else "scikit-learn",
    }


def _classification_by_sklearn(m: Any, y, predicted, proba, classes) -> dict[str, Any]:
    import warnings

    from sklearn.exceptions import UndefinedMetricWarning

    if len(classes) == 2:
        ratios = dict(average="binary", pos_label=classes[1], labels=classes)
    else:
        ratios = dict(average="macro")
    # log_loss and the multiclass roc_auc_score take the labels sorted, and the columns
    # of proba in that order (a pandas categorical's classes may be in another).
    order = np.argsort(classes, kind="stable")
    labels, proba_sorted = classes[order], proba[:, order]
    ratios["zero_division"] = 0.0
    with warnings.catch_warnings():
        # What is undefined comes out as NaN (ROC AUC) or 0 (zero_division), as NumPy's.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        try:
            if len(classes) == 2:
                roc_auc = m.roc_auc_score(y == classes[1], proba[:, 1])
            else:
                roc_auc = m.roc_auc_score(
                    y, proba_sorted, multi_class="ovr", average="macro", labels=labels
                )
        except ValueError:  # scikit-learn < 1.8: one class in y is an error, not NaN
            roc_auc = np.nan
        return {
            "accuracy": float(m.accuracy_score(y, predicted)),
            "precision": float(m.precision_score(y, predicted, **ratios)),
            "recall": float(m.recall_score(y, predicted, **ratios)),
            "f1": float(m.f1_score(y, predicted, **ratios)),
            "roc_auc": float(roc_auc),
            "log_loss": float(m.log_loss(y, proba_sorted, labels=labels)),
            "confusion_matrix": m.confusion_matrix(y, predicted, labels=classes).astype(np.int64),
        }


def _classification_by_numpy(y, predicted, proba, classes) -> dict[str, Any]:
    y_codes, predicted_codes = _codes(y, classes), _codes(predicted, classes)
    k = len(classes)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (y_codes, predicted_codes), 1)
    # Two classes: the positive one; more: those found in y or the predictions, as
    # scikit-learn's macro average takes them.
    labels = [1] if k == 2 else np.union1d(y_codes, predicted_codes)
    true_positive = matrix[labels, labels].astype(np.float64)
    predicted_positive = matrix[:, labels].sum(axis=0)
    actual_positive = matrix[labels, :].sum(axis=1)
    precision = _ratio(true_positive, predicted_positive)
    recall = _ratio(true_positive, actual_positive)
    f1 = _ratio(2 * true_positive, predicted_positive + actual_positive)
    if k == 2:
        roc_auc = _binary_roc_auc(y_codes == 1, proba[:, 1])
    else:
        roc_auc = float(np.mean([_binary_roc_auc(y_codes == j, proba[:, j]) for j in range(k)]))
    eps = np.finfo(proba.dtype).eps
    clipped = np.clip(proba, eps, 1 - eps)
    log_loss = -np.mean(np.log(clipped[np.arange(len(y_codes)), y_codes]))
    return {
        "accuracy": float(np.mean(y_codes == predicted_codes)),
        "precision": float(np.mean(precision)),
        "recall": float(np.mean(recall)),
        "f1": float(np.mean(f1)),
        "roc_auc": float(roc_auc),
        "log_loss": float(log_loss),
        "confusion_matrix": matrix,
    }


def _codes(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Each label's index in ``classes`` (which need not be sorted)."""
    order = np.argsort(classes, kind="stable")
    return order[np.searchsorted(classes[order], labels)]


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, 0 where the denominator is 0 (``zero_division=0``)."""
    safe = np.where(denominator > 0, denominator, 1)
    return np.where(denominator > 0, numerator / safe, 0.0)


def _binary_roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """The area under the ROC curve: the chance that a positive row scores above a
    negative one, ties counting half (the Mann-Whitney U over both counts); NaN
    without both kinds of rows."""
    n_positive = int(positive.sum())
    n_negative = len(positive) - n_positive
    if n_positive == 0 or n_negative == 0:
        return np.nan
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)
    ranks = ((last - counts + 1 + last) / 2)[inverse]  # tied scores share their mean rank
    u = ranks[positive].sum() - n_positive * (n_positive + 1) / 2
    return float(u / (n_positive * n_negative))


def regression_report(y: Any, predicted: Any) -> dict[str, Any]:
    """R², mean absolute error and root mean squared error of ``predicted``.

    Each per output, then averaged over the outputs (scikit-learn's
    ``multioutput="uniform_average"``), by ``r2_score``, ``mean_absolute_error`` and
    ``root_mean_squared_error`` when scikit-learn is installed, else in NumPy. R² is
    NaN for fewer than two rows, as scikit-learn's; a constant target scores 1 when
    predicted exactly, else 0. MAE and RMSE are in the targets' units.

    Parameters
    ----------
    y, predicted:
        Floats of shape ``(n,)`` or ``(n, outputs)``, the same number of values.

    Returns
    -------
    dict
        ``task`` (``"regression"``), ``n_samples``, ``r2``, ``mae``, ``rmse``,
        ``computed_by``.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    y = np.reshape(np.asarray(y, dtype=np.float64), predicted.shape)
    m = _sklearn_metrics()
    if m is None:
        errors = y - predicted
        r2_value = float(r2(y, predicted)) if len(y) >= 2 else np.nan
        scores = {
            "r2": r2_value,
            "mae": float(np.mean(np.mean(np.abs(errors), axis=0))),
            "rmse": float(np.mean(np.sqrt(np.mean(errors**2, axis=0)))),
        }
    else:
        import warnings

        from sklearn.exceptions import UndefinedMetricWarning

        with warnings.catch_warnings():  # R² of one row: NaN, as NumPy's
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            scores = {
                "r2": float(m.r2_score(y, predicted)),
                "mae": float(m.mean_absolute_error(y, predicted)),
                "rmse": float(m.root_mean_squared_error(y, predicted)),
            }
    return {
        "task": "regression",
        "n_samples": len(y),
        **scores,
        "computed_by": "numpy" if m is None else "scikit-learn",
    }
