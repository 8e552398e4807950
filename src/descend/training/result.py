"""The result of :func:`descend.fit`: trained weights, history, and predictions."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from descend import _html, metrics, models
from descend._json import jsonable
from descend._tree import PyTree
from descend.data.arrays import Standardizer, float_targets
from descend.data.encoding import Encoding
from descend.errors import DataError
from descend.optim.base import Optimizer


def leaf_dtype(dtype: np.dtype, training_dtype: str) -> np.dtype:
    """The dtype a params leaf trains in: floating ones ``training_dtype``, complex ones
    the complex dtype of that precision (complex128 for float64), others their own."""
    if np.issubdtype(dtype, np.floating):
        return np.dtype(training_dtype)
    if np.issubdtype(dtype, np.complexfloating):
        return np.result_type(np.dtype(training_dtype), np.complex64)
    return np.dtype(dtype)


@dataclass(frozen=True)
class BestEpoch:
    """Early stopping's record of a run: what decides when it stops and what it restores.

    Attributes
    ----------
    loss:
        The lowest watched loss so far (validation loss with validation data, else the
        epoch's training loss), improved on by more than ``min_delta``.
    epoch:
        The epoch (from 1) that reached it.
    waited:
        Epochs since then without such an improvement (early stopping stops at
        ``patience``).
    params, opt_state:
        The weights and optimizer state after ``epoch`` (what ``restore_best``
        restores), or None when they are the run's own current ones.
    """

    loss: float
    epoch: int
    waited: int
    params: PyTree | None = field(default=None, repr=False)
    opt_state: PyTree | None = field(default=None, repr=False)


@dataclass(frozen=True)
class FitState:
    """Where a training run stands: what ``fit(..., init=state)`` continues from.

    Attributes
    ----------
    params, opt_state:
        The weights and the optimizer state (pytrees of arrays).
    n_epochs, n_updates:
        Epochs and optimizer steps already taken (>= 0): the next epoch is number
        ``n_epochs`` (counted from 0), so its shuffled order continues the run's.
    history:
        The per-epoch history so far (``{name: array}``), continued by the run.
    best:
        Early stopping's record (:class:`BestEpoch`), so that a continued run stops and
        restores where the uninterrupted one would; None starts the count afresh.
        The rest of what decides a run's future is here too: the shuffled order and the
        validation split follow from the seed and ``n_epochs``, schedules from
        ``n_updates``, plateau rules from ``opt_state``, the divergence guard from
        ``history``.
    weights_seen:
        ``(sum, count)`` of the sample weights of rows trained on before, in earlier
        calls on other rows (``partial_fit``'s earlier batches; a row without weights
        counts 1): the mean weight that scales every update (see ``fit``'s
        ``sample_weight``) is then that of those rows and this call's together, so that a
        call's weights count against the earlier ones, not only against each other.
        None (the default, and ``result.state``'s): this call's rows only.
    target_standardizer:
        The standardization of the regression targets the params were trained on
        (``fit``'s ``standardize``), which a continued run keeps; None: the targets as
        given. A continued run never changes it.
    l2:
        The strength of the L2 penalty the run trained with (``fit``'s ``l2``,
        resolved), which a continued run keeps unless ``fit`` is given ``l2``; None: the
        continued run's own ``l2`` (``"auto"`` by default).
    """

    params: PyTree
    opt_state: PyTree
    n_epochs: int = 0
    n_updates: int = 0
    history: Mapping[str, np.ndarray | list[float]] = field(default_factory=dict, repr=False)
    best: BestEpoch | None = field(default=None, repr=False)
    weights_seen: tuple[float, int] | None = None
    target_standardizer: Standardizer | None = None
    l2: float | None = None


@dataclass(frozen=True)
class FitResult:
    """What :func:`descend.fit` trained, and why it stopped.

    Attributes
    ----------
    model, params, opt_state, optimizer:
        The model, its trained weights (NumPy arrays), and the optimizer with its state.
    loss:
        The loss name, or the user's function (None when loaded from a file, which
        cannot hold a function).
    history:
        Per-epoch NumPy arrays: ``epoch``, ``loss`` (mean training loss over the
        epoch's batches, each row's before its update), ``val_loss`` and
        ``val_accuracy`` / ``val_r2`` with validation data (else ``accuracy`` / ``r2``
        on the training data), all weighted with sample weights (the validation scores
        with ``validation_split``'s held-out rows'), ``grad_norm`` (of the epoch's last
        update), ``lr`` (the rate of the next update) and ``time`` (seconds).
    n_updates, n_epochs:
        Optimizer steps and epochs taken in total (resumed ones included).
    status, reason:
        Why training stopped: ``max_epochs``, ``converged`` (tol), ``early_stopping``,
        ``diverged``, ``callback`` or ``interrupted``, and the same as a sentence.
    classes:
        The class labels of a classifier (``predict`` returns these), else None.
    standardizer, encoding:
        The feature standardization and the table encoding (for CSV data) applied by
        ``predict``.
    target_standardizer:
        A regression's target standardization (``fit(standardize=True)``): the model
        was trained on :math:`(y - \text{mean}) / \text{scale}` per output, so
        ``params`` and the history's losses are in those units, while ``predict``,
        ``decision_function`` and ``score`` are in the targets' own units. None
        otherwise.
    dtype, seed:
        The training dtype and seed (a resumed run reuses them).
    l2:
        The strength of the L2 penalty trained with (``fit``'s ``l2``
        resolved: ``"auto"`` is :math:`1/n`); a resumed run keeps it unless given
        ``l2``. 0 for none (and for checkpoints of descend 0.1.0, which had none).
    best_epoch:
        The epoch whose weights early stopping restored (``restore_best``), else None.
    best:
        Early stopping's record (:class:`BestEpoch`), saved with the model so that a
        resumed run continues the count; None before the first epoch.
    """

    model: models.Model
    params: PyTree
    opt_state: PyTree
    optimizer: Optimizer
    loss: str | Callable | None
    history: dict[str, np.ndarray] = field(repr=False)
    n_updates: int
    n_epochs: int
    status: str
    reason: str
    classes: np.ndarray | None = None
    standardizer: Standardizer | None = None
    encoding: Encoding | None = field(default=None, repr=False)
    dtype: str = "float32"
    seed: int = 0
    best_epoch: int | None = None
    best: BestEpoch | None = field(default=None, repr=False)
    target_standardizer: Standardizer | None = None
    l2: float = 0.0

    def _context(self):
        return jax.enable_x64(True) if self.dtype == "float64" else contextlib.nullcontext()

    def features(self, X: Any) -> jax.Array:
        """``X`` as the model sees it: table encoding and standardization applied."""
        from descend import data
        from descend.data.tables import Table

        if isinstance(X, data.Dataset):
            X = X.X
        elif self.encoding is not None and (
            isinstance(X, (str, Table)) or hasattr(X, "__fspath__") or hasattr(X, "columns")
        ):
            X = self.encoding.features(X, dtype=self.dtype)
        elif isinstance(X, (str, Table)) or hasattr(X, "__fspath__") or hasattr(X, "columns"):
            X = _numeric_columns(X)  # a model trained on arrays: the table's columns in order
        X = data.as_arrays(X, np.zeros(len(X)), dtype=self.dtype).X
        n_features = _n_features(self.params) if self.model.name in _AFFINE_INPUT else None
        if n_features is not None and X.shape[1] != n_features:
            raise DataError(f"X has {X.shape[1]} features; the model was trained on {n_features}")
        if self.standardizer is not None:
            X = self.standardizer.transform(X)
        return jnp.asarray(X, dtype=self.dtype)

    def decision_function(self, X: Any) -> np.ndarray:
        """The model's raw outputs (values in the targets' units, logits) for ``X``."""
        with self._context():
            outputs = np.asarray(self.model.apply(self.params, self.features(X)))
        return self._in_target_units(outputs)

    def predict(self, X: Any) -> np.ndarray:
        """Values for regression, class labels (from ``classes``) for classifiers."""
        with self._context():
            predictions = np.asarray(models.predict(self.model, self.params, self.features(X)))
        if self.classes is None:
            return self._in_target_units(predictions)
        return np.asarray(self.classes)[predictions]

    def _in_target_units(self, values: np.ndarray) -> np.ndarray:
        """Regression outputs back in the targets' units (``target_standardizer``)."""
        scaler = self.target_standardizer
        if scaler is None or self.model.task != "regression":
            return values
        return np.asarray(scaler.inverse_transform(values), dtype=values.dtype)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per class in ``classes`` order."""
        with self._context():
            return np.asarray(models.predict_proba(self.model, self.params, self.features(X)))

    def score(self, X: Any, y: Any = None) -> float:
        """R² for regression (averaged over outputs), accuracy for classifiers.

        ``X, y`` as for ``fit``; ``y`` may be omitted when ``X`` is a
        :class:`~descend.data.Dataset` (its labels are used). A classifier's ``y`` holds
        labels, as ``predict`` returns them; labels it was not trained on are a
        :class:`~descend.errors.DataError`, never a silent 0.
        """
        y, predictions = self._targets_and_predictions(X, y, "score")
        if self.model.task == "regression":
            return float(metrics.r2(y, predictions))
        return float(metrics.accuracy(y, predictions))

    def evaluate(self, X: Any, y: Any = None) -> dict[str, Any]:
        """The model's metrics on ``(X, y)``, by scikit-learn's functions when installed.

        A classifier: ``accuracy``, ``precision``, ``recall``, ``f1`` (of the class
        ``classes[1]`` for two classes, ``average="binary"``; else the mean over the
        labels, ``average="macro"``), ``roc_auc`` (one class against the rest for more
        than two, macro-averaged; NaN when ``y`` lacks a class), ``log_loss`` and
        ``confusion_matrix`` (rows the true ``labels``, columns the predicted ones); see
        :func:`descend.metrics.classification_report`. A regression: ``r2``, ``mae``
        and ``rmse`` in the targets' units, averaged over the outputs
        (:func:`descend.metrics.regression_report`). Both also give ``task``,
        ``n_samples`` and ``computed_by`` (``"scikit-learn"``, or ``"numpy"`` without
        it: the same definitions).

        ``X, y`` as for :meth:`score`: ``y`` holds labels as ``predict`` returns them
        (or is left out for a :class:`~descend.data.Dataset`); labels the model was not
        trained on, or a number of rows or features other than the model's, are a
        :class:`~descend.errors.DataError`.

        >>> import numpy as np, descend as ds
        >>> X = np.arange(20.0).reshape(10, 2); y = X.sum(axis=1)
        >>> result = ds.fit("linear", X, y, batch_size=None, epochs=200, verbose=0)
        >>> report = result.evaluate(X, y)
        >>> sorted(report), report["r2"] > 0.99
        (['computed_by', 'mae', 'n_samples', 'r2', 'rmse', 'task'], True)
        """
        y, predictions = self._targets_and_predictions(X, y, "evaluate")
        if self.model.task == "regression":
            return metrics.regression_report(y, predictions)
        proba = self.predict_proba(X)
        return metrics.classification_report(y, predictions, proba, self.classes)

    def _targets_and_predictions(self, X: Any, y: Any, method: str) -> tuple[Any, np.ndarray]:
        """``y`` checked (floats for a regression, known labels for a classifier) and the
        model's predictions for ``X``."""
        from descend.data import Dataset

        if y is None:
            if not isinstance(X, Dataset):
                raise DataError(f"{method}(X, y) needs the targets y (or a Dataset as X)")
            y = X.y if X.classes is None else np.asarray(X.classes)[np.asarray(X.y, dtype=int)]
        predictions = self.predict(X)
        y = np.asarray(y)
        if len(y) != len(predictions):
            raise DataError(f"X has {len(predictions)} samples but y has {len(y)}")
        if self.model.task == "regression":
            return float_targets(y), predictions
        unknown = ~np.isin(y, np.asarray(self.classes))
        if unknown.any() and _continuous(y):
            shown = ", ".join(f"{value:.4g}" for value in y[unknown][:3])
            raise DataError(
                f"the targets are continuous ({shown}, ...) but the model is a classifier "
                f"(its classes: {np.asarray(self.classes).tolist()[:10]}): score it on class "
                "labels, or score a regression model on these targets"
            )
        if unknown.any():
            shown = np.unique(y[unknown]).tolist()[:5]
            raise DataError(
                f"y has labels the model was not trained on: {shown} (its classes: "
                f"{np.asarray(self.classes).tolist()[:10]}); pass labels as predict returns "
                f"them (a Dataset's y holds class codes: {method}(dataset) uses its labels)"
            )
        return y, predictions

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    @property
    def state(self) -> FitState:
        """Where this run stands, for ``fit(..., init=result.state)``."""
        return FitState(
            self.params, self.opt_state, self.n_epochs, self.n_updates, self.history, self.best,
            target_standardizer=self.target_standardizer, l2=self.l2,
        )  # fmt: skip

    def metrics(self) -> dict[str, float]:
        """The history's numbers for the weights this result holds: the last epoch's, or
        with restored weights (``best_epoch``) that epoch's. ``lr`` is left out for an
        optimizer without a learning rate (``polyak_sgd``, ``cocob``, ...: NaN in the
        history)."""
        epochs = list(np.asarray(self.history.get("epoch", [])).tolist())
        row = len(epochs) - 1
        if self.best_epoch is not None and self.best_epoch in epochs:
            row = epochs.index(self.best_epoch)
        numbers = {
            key: float(values[row])
            for key, values in self.history.items()
            if len(values) > row >= 0 and key not in ("epoch", "time")
        }
        if math.isnan(numbers.get("lr", 0.0)):
            del numbers["lr"]
        return numbers

    def to_dict(self, *, history: bool = False) -> dict[str, Any]:
        """The run as JSON-ready values: what it trained, how far, why it stopped, and the
        metrics of the weights it holds (:meth:`metrics`: the restored epoch's, with
        early stopping's ``restore_best``, as ``metrics_epoch`` says; ``history=True``
        adds the per-epoch lists)."""
        epochs = self.history.get("epoch", np.empty(0))
        summary = {
            "model": repr(self.model),
            "optimizer": repr(self.optimizer),
            "epochs": self.n_epochs,
            "updates": self.n_updates,
            "status": self.status,
            "reason": self.reason,
            "metrics": {key: jsonable(value) for key, value in self.metrics().items()},
            "metrics_epoch": self.best_epoch
            if self.best_epoch is not None
            else (int(epochs[-1]) if len(epochs) else None),
        }
        if history:
            summary["history"] = jsonable(self.history)
        return summary

    def __repr__(self) -> str:
        """The run in one line: the optimizer by what differs from its defaults, the
        metrics of the weights held (the restored epoch's after early stopping) and the
        status (``reason`` says it as a sentence)."""
        from descend import optim

        shown = "".join(
            f", {key}={value:.4g}" for key, value in self.metrics().items() if key != "lr"
        )
        restored = "" if self.best_epoch is None else f", restored epoch {self.best_epoch}"
        return (
            f"FitResult(model={self.model!r}, optimizer={optim.brief(self.optimizer)}, "
            f"epochs={self.n_epochs}, updates={self.n_updates}{restored}{shown}, "
            f"status={self.status!r})"
        )

    def _repr_html_(self) -> str:
        """A table of the key numbers and the loss per epoch (Jupyter's display)."""
        from descend import optim

        held = "last epoch" if self.best_epoch is None else f"epoch {self.best_epoch}, restored"
        rows = [
            ("model", repr(self.model)),
            ("optimizer", optim.brief(self.optimizer)),
            ("epochs", str(self.n_epochs)),
            ("updates", str(self.n_updates)),
            ("status", self.status),
            ("reason", self.reason),
        ]
        rows += [
            (f"{key} ({held})", _html.number(value, 4)) for key, value in self.metrics().items()
        ]
        losses: dict[str, np.ndarray]
        losses = {key: self.history[key] for key in ("loss", "val_loss") if key in self.history}
        scores: dict[str, np.ndarray] = {
            key: self.history[key]
            for key in ("accuracy", "val_accuracy", "r2", "val_r2")
            if key in self.history
        }
        return _html.block(
            _html.table(rows, caption="FitResult"),
            _html.curves(losses, title="loss per epoch", first=1),
            _html.curves(scores, log=False, title="score per epoch", first=1),
        )


# Models whose first weight matrix has one row per input feature.
_AFFINE_INPUT = ("linear", "logistic", "softmax", "mlp")


def _numeric_columns(source: Any) -> np.ndarray:
    """Every column of a CSV / Parquet path, table or DataFrame, in order, as the
    features of a model trained on arrays (which knows no column names)."""
    from descend.data.tables import Table, read_table

    table = source if isinstance(source, Table) else read_table(source)
    text = [name for name in table.names if table.kinds[name] != "numeric"]
    if text:
        raise DataError(
            f"{table.origin} has text in column {text[0]!r}, but this model was trained on "
            "arrays of numbers (it has no encoding of text columns): give the features as "
            "numbers, in the order they were trained in"
        )
    return np.column_stack([table.columns[name] for name in table.names])


def _n_features(params: PyTree) -> int | None:
    if isinstance(params, dict) and "w" in params:
        return int(np.shape(params["w"])[0])
    if isinstance(params, list) and params and isinstance(params[0], dict):
        return int(np.shape(params[0]["w"])[0])
    return None


def _continuous(y: np.ndarray) -> bool:
    """Whether ``y`` holds real numbers with fractions (a regression's targets), not labels."""
    if not np.issubdtype(y.dtype, np.floating):
        return False
    finite = y[np.isfinite(y)]
    return bool(finite.size) and not np.array_equal(finite, np.round(finite))
