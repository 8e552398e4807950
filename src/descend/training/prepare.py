"""The data side of :func:`descend.fit`: arrays, labels, weights, validation, scaling."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from descend import models
from descend.data.arrays import as_columns, distinct_weights, standardized_targets
from descend.engine import EpochConfig
from descend.errors import DataError, InputError
from descend.training.spec import FitSpec


@dataclass
class Prepared:
    """Training data ready for the loop (``weights`` is None without sample weights;
    ``weights_val`` holds the sample weights of the rows held out by ``validation_split``)."""

    X: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    classes: np.ndarray | None
    standardizer: Any
    encoding: Any
    n_outputs: int
    stream: Any = None  # rows read chunk by chunk (a training.streams.StreamPlan; X, y None)
    weights_val: np.ndarray | None = None
    target_standardizer: Any = None  # a regression's targets standardized (y, y_val are)

    @property
    def n_samples(self) -> int:
        return len(self.X) if self.stream is None else self.stream.n_samples

    @property
    def n_features(self) -> int:
        return self.X.shape[1] if self.stream is None else self.stream.n_features


def prepare(spec: FitSpec, X: Any, y: Any, sample_weight: Any, validation: Any) -> Prepared:
    """Arrays in memory ready for training, from whatever ``fit`` was given as data.

    Tables are loaded and encoded, labels coded as the (resumed) classes, rows with
    missing values handled by ``spec.nan_policy``, a validation split held out, and
    the features standardized (not here for several devices, whose standardization
    covers the rows of all processes: see :meth:`descend.distributed.Placement.prepare`).
    """
    from descend import data

    model, dtype, nan_policy = spec.model, spec.dtype, spec.nan_policy
    target, features, previous = spec.target, spec.features, spec.resumed
    standardize = spec.standardize and spec.placement is None
    encoding = None
    table = isinstance(X, str) or hasattr(X, "__fspath__") or (y is None and hasattr(X, "columns"))
    if table:
        X = data.load(X, target=target, features=features, nan_policy=nan_policy, dtype=dtype)
    elif target is not None or features is not None:
        raise InputError(
            "target= and features= name columns of a file or a DataFrame; with arrays, "
            "pass the features as X and the targets as y"
        )
    if isinstance(X, data.Dataset):
        if y is not None:
            raise InputError("give y only with arrays; a Dataset carries its own target")
        encoding = X.encoding
        labels = None if X.classes is None else np.asarray(X.classes)
        X, y = X.X, X.y if labels is None else labels[np.asarray(X.y, dtype=int)]
    elif y is None:
        raise InputError("y is required with array data: fit(model, X, y)")
    task = None if model.task == "regression" else model.task
    X = data.feature_matrix(X)
    weights = _sample_weights(sample_weight, len(X), dtype)
    if nan_policy == "drop" and weights is not None:
        # A last column of row numbers tells which rows survive, and so which weights.
        tagged = np.c_[X.astype(np.float64), np.arange(len(X), dtype=np.float64)]
        arrays = data.as_arrays(tagged, y, task=task, nan_policy=nan_policy, dtype="float64")
        weights = weights[arrays.X[:, -1].astype(np.int64)]
        y = arrays.y if task is not None else arrays.y.astype(dtype)
        arrays = data.ArrayData(arrays.X[:, :-1].astype(dtype), y, arrays.classes)
    else:
        arrays = data.as_arrays(X, y, task=task, nan_policy=nan_policy, dtype=dtype)
    X, y, classes = arrays.X, arrays.y, arrays.classes
    if previous is not None:
        check_same_features(previous, encoding, X.shape[1])
    if previous is not None and previous.classes is not None:
        assert arrays.classes is not None  # a classifier's labels (previous.classes is set)
        classes, y = previous.classes, codes(arrays.classes[arrays.y], previous.classes, "y")
    X_val = y_val = weights_val = None
    if validation is not None and spec.validation_split is not None:
        raise InputError("give validation=(X_val, y_val) or validation_split, not both")
    if spec.validation_split is not None:
        rows = np.arange(len(X))
        train_rows, val_rows, _, _ = data.train_validation_split(
            rows, rows, spec.validation_split, spec.seed
        )
        X, X_val, y, y_val = X[train_rows], X[val_rows], y[train_rows], y[val_rows]
        if weights is not None:  # the held-out rows keep theirs: val_loss is weighted too
            weights, weights_val = weights[train_rows], weights[val_rows]
    elif validation is not None:
        X_val, y_val = validation_arrays(validation, model, classes, X.shape[1], dtype, nan_policy)
    standardizer = previous.standardizer if previous is not None else None
    scaling_weights = distinct_weights(weights)
    if standardize and standardizer is None:
        standardizer = data.Standardizer.fit(X, sample_weight=scaling_weights)
    if standardizer is not None:
        X = np.asarray(standardizer.transform(X), dtype=dtype)
        if X_val is not None:
            X_val = np.asarray(standardizer.transform(X_val), dtype=dtype)
    if model.task == "binary":
        y = y.astype(dtype)
        y_val = None if y_val is None else y_val.astype(dtype)
    n_outputs = _n_outputs(model, y, classes)
    prepared = Prepared(
        X, y, weights, X_val, y_val, classes, standardizer, encoding, n_outputs,
        weights_val=weights_val,
    )  # fmt: skip
    if model.task != "regression":
        return prepared
    if spec.start is not None:  # a continued run keeps the targets' scale it trained on
        scaler = spec.start.target_standardizer
    else:
        scaler = None
        if standardize:
            scaler = data.Standardizer.fit(as_columns(y), sample_weight=scaling_weights)
    return scale_targets(prepared, scaler)


def epoch_config(
    spec: FitSpec, prepared: Prepared, placement: Any, seen: tuple[float, int] | None
) -> EpochConfig:
    """The shape of an epoch over ``prepared``'s rows (those of every process), with
    ``spec``'s batches; ``seen`` the weights of rows trained on before (see
    :func:`settle_weights`)."""
    n_train = prepared.n_samples * (1 if placement is None else placement.n_processes)
    batch_size = spec.batch_size_for(n_train)
    return EpochConfig(
        n_samples=n_train,
        batch_size=batch_size,
        accumulate=spec.accumulate,
        drop_last=spec.drop_last,
        # The order of the rows cannot change a full-batch gradient: no need to shuffle.
        shuffle=spec.shuffle and batch_size < n_train,
        weighted=prepared.weights is not None,
        # Rows that follow others trained on before: even an update over all of them
        # divides by its rows times the mean weight of all, not by its own weight sum.
        chunk=seen is not None and seen[1] > 0,
        mesh=None if placement is None else placement.mesh,
    )


def check_same_features(previous: Any, encoding: Any, n_features: int) -> None:
    """Raise InputError unless the data of a run continued from a checkpoint
    (``previous``, a FitResult) have the feature columns it was trained on.

    With both encodings (tables), the source columns and the categories of each one-hot
    column must be the same, in order: the same count of columns in another order or
    with other categories would train each weight on another column's values.
    """
    fix = (
        "read the data as the run that saved it did (the same target, features, "
        "categorical columns and weight column)"
    )
    before = previous.encoding
    same = before is None or encoding is None or _layout(before) == _layout(encoding)
    if not same:
        raise InputError(
            f"the checkpoint was trained on the columns {_columns(before)}; these data "
            f"give {_columns(encoding)}; {fix}"
        )
    scaler = previous.standardizer
    trained_on = None if scaler is None else len(np.atleast_1d(scaler.mean))
    if trained_on is not None and trained_on != n_features:
        raise InputError(
            f"the checkpoint was trained on {trained_on} feature columns; these data have "
            f"{n_features}; {fix}"
        )


def _layout(encoding: Any) -> tuple:
    return encoding.columns, dict(encoding.categories)


def _columns(encoding: Any) -> str:
    """``x1, x2, city (a, b, c)``: the source columns, each one-hot one with its categories."""
    return ", ".join(
        f"{name} ({', '.join(encoding.categories[name])})" if name in encoding.categories else name
        for name in encoding.columns
    )


def scale_targets(prepared: Prepared, scaler: Any) -> Prepared:
    """``prepared`` with its regression targets (training and validation) standardized.

    ``y`` keeps its shape and dtype; ``scaler`` None returns ``prepared`` as it is.
    """
    if scaler is None:
        return prepared
    return replace(
        prepared,
        # A stream's y is None (its rows are read chunk by chunk), and stays None.
        y=standardized_targets(scaler, prepared.y),  # type: ignore[arg-type]
        y_val=standardized_targets(scaler, prepared.y_val),
        target_standardizer=scaler,
    )


def settle_weights(
    prepared: Prepared, placement: Any, seen: tuple[float, int] | None = None
) -> tuple[Prepared, np.ndarray | None]:
    r"""The sample weights as training and validation use them, and the training mean.

    Over the rows of every process (``placement.agree``) and the rows trained on before
    (``seen``: the ``(sum, count)`` of their weights, ``FitState.weights_seen``; rows
    without weights then weigh 1). Weights that are all equal to the mean weight nothing:
    every update, the loss history and the metrics are the same without them, so they
    are dropped, and training is the unweighted program itself (kept, a weight
    :math:`c` would enter as :math:`c\ell / (b c)`, rounded otherwise than
    :math:`\ell / b`); the same for the held-out rows' weights (``weights_val``). The
    mean training weight :math:`\bar w = \sum_i w_i / n` (None without weights; summed
    in float64, returned in the weights' dtype) scales every update: see
    :func:`descend.engine.epoch._denominator`.
    """
    if prepared.weights_val is not None:
        equal, total, _ = _weights_summary(prepared.weights_val, placement)
        if not total > 0:
            raise DataError(
                "every row held out for validation has sample_weight 0, so the validation "
                "loss is undefined; use another seed or validation_split, or pass "
                "validation=(X_val, y_val)"
            )
        if equal:
            prepared = replace(prepared, weights_val=None)
    weights = prepared.weights
    if prepared.stream is not None:  # streams take no sample weights
        return prepared, None
    if weights is None and seen is not None:
        weights = np.ones(len(prepared.X), prepared.X.dtype)
        prepared = replace(prepared, weights=weights)
    if weights is None:
        return prepared, None
    equal, total, count = _weights_summary(weights, placement)
    if seen is not None and seen[1] > 0:
        earlier_total, earlier_count = float(seen[0]), int(seen[1])
        # All equal, and equal to the earlier rows' mean (to 1e-12: a constant weight
        # summed over the earlier calls rounds).
        equal = equal and abs(earlier_total / earlier_count - total / count) <= 1e-12 * (
            total / count
        )
        total, count = total + earlier_total, count + earlier_count
    if equal:
        return replace(prepared, weights=None), None
    return prepared, np.asarray(total / count, dtype=weights.dtype)


def _weights_summary(weights: np.ndarray, placement: Any) -> tuple[bool, float, int]:
    """Whether the weights of every process are all one value, their sum and count."""
    summary = [np.sum(weights, dtype=np.float64), len(weights), weights.min(), weights.max()]
    table = np.asarray([summary]) if placement is None else placement.agree(summary)
    equal = bool(table[:, 2].min() == table[:, 3].max())
    return equal, float(table[:, 0].sum()), int(table[:, 1].sum())


def codes(labels: np.ndarray, classes: np.ndarray, name: str) -> np.ndarray:
    """Class codes of ``labels`` in the (training) ``classes``; unknown labels are an error."""
    lookup = {label: code for code, label in enumerate(np.asarray(classes).tolist())}
    unknown = [label for label in np.asarray(labels).tolist() if label not in lookup]
    if unknown:
        raise DataError(
            f"{name} has labels not seen in training: {sorted(set(map(repr, unknown)))[:5]} "
            f"(training classes: {np.asarray(classes).tolist()})"
        )
    return np.asarray([lookup[label] for label in np.asarray(labels).tolist()], dtype=np.int32)


def validation_arrays(
    validation: Any, model: models.Model, classes: np.ndarray | None, n_features: int,
    dtype: Any, nan_policy: str,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``validation=(X_val, y_val)`` as arrays: labels coded as the training ``classes``."""
    from descend import data

    try:
        X_val, y_val = validation
    except (TypeError, ValueError):
        raise InputError("validation must be a pair (X_val, y_val)") from None
    if model.task != "regression":
        # Labels become the training codes first, so that rows dropped for NaN features
        # are dropped from the labels too.
        assert classes is not None  # a classifier's classes are known before validation
        y_val = codes(np.asarray(y_val).reshape(-1), classes, "validation y")
    arrays = data.as_arrays(X_val, y_val, nan_policy=nan_policy, dtype=dtype)
    if arrays.X.shape[1] != n_features:
        raise DataError(
            f"validation X has {arrays.X.shape[1]} features but the training X has {n_features}"
        )
    if model.task == "regression":
        return arrays.X, arrays.y
    return arrays.X, arrays.y.astype(np.int32)


def _sample_weights(sample_weight, n: int, dtype) -> np.ndarray | None:
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=float)
    if weights.shape != (n,):
        raise DataError(
            f"sample_weight must have shape ({n},), one per sample, got {weights.shape}"
        )
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not np.any(weights > 0):
        raise DataError("sample_weight must be finite and >= 0, with at least one > 0")
    return weights.astype(dtype)


def _n_outputs(model: models.Model, y: np.ndarray, classes) -> int:
    if model.task == "multiclass":
        return len(classes)
    if model.task == "binary":
        return 1
    return 1 if y.ndim == 1 else y.shape[1]
