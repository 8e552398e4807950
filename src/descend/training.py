"""``fit``: the seed's update loop for models, by batch, stochastic or mini-batch descent.

(1) predict with the current weights, (2) compute the loss against the targets,
(3) compute the gradient of the weights from the loss, (4) let the optimizer update the
weights with the gradient and the learning rate. Batch size is the only difference
between batch (all samples), stochastic (one) and mini-batch (n) gradient descent.
Each epoch runs as one compiled program (:func:`descend.engine.compiled_epoch`); the
host sees the loop once per epoch, for history, validation, callbacks and progress.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from descend import engine, losses, models, optim
from descend.engine import EpochConfig, Status
from descend.errors import (
    DataError,
    DescendTypeError,
    InputError,
    check_in_range,
    check_int,
    check_positive,
    unknown_name,
)
from descend.fit_result import FitResult, evaluate, task_metric
from descend.optim.base import Optimizer

PyTree = Any
METHODS = ("batch", "stochastic", "minibatch")


class DescendWarning(UserWarning):
    """A setting was adjusted to something usable; the message says what is used."""


@dataclass(frozen=True)
class BatchObjective:
    """``(params, X, y, w) -> (sum of w * loss, sum of w)`` for one batch.

    Hashable by value (model and loss), so compiled epochs are reused across calls.
    """

    model: models.Model
    loss: Callable[..., jax.Array]
    loss_name: str | None

    def per_sample(self, params, X, y) -> jax.Array:
        predictions = self.model.apply(params, X)
        if self.loss_name is None:
            values = self.loss(predictions, y)
            if jnp.ndim(values) == 0:
                raise InputError(
                    "a custom loss must return one value per sample (shape (n,)), got a "
                    "scalar; return the per-sample losses without averaging them"
                )
        else:
            values = self.loss(predictions, y, reduction="none")
        # One number per sample: the mean over outputs (as torch's "mean" over all
        # elements), except KL divergence, summed over classes (torch's "batchmean").
        trailing = tuple(range(1, jnp.ndim(values)))
        if self.loss_name == "kl_div":
            return jnp.sum(values, axis=trailing)
        return jnp.mean(values, axis=trailing) if trailing else values

    def __call__(self, params, X, y, w):
        values = self.per_sample(params, X, y)
        return jnp.sum(w * values), jnp.sum(w)


def fit(
    model: models.Model | str,
    X: Any,
    y: Any = None,
    *,
    loss: str | Callable[..., jax.Array] | None = None,
    optimizer: Optimizer | str | None = None,
    lr: float | None = None,
    batch_size: int | None = 32,
    method: str | None = None,
    epochs: int = 10,
    accumulate: int = 1,
    drop_last: bool = False,
    shuffle: bool = True,
    seed: int | None = None,
    sample_weight: Any = None,
    validation: tuple[Any, Any] | None = None,
    validation_split: float | None = None,
    standardize: bool = False,
    tol: float | None = None,
    patience: int | None = None,
    min_delta: float = 0.0,
    restore_best: bool = True,
    callbacks: Sequence[Callable[[int, dict], Any]] = (),
    verbose: int = 1,
    dtype: str | None = None,
    resume: Any = None,
    target: str | None = None,
    features: Sequence[str] | None = None,
    nan_policy: str = "raise",
) -> FitResult:
    r"""Train ``model`` on ``(X, y)`` by gradient descent.

    Parameters
    ----------
    model:
        A :class:`descend.models.Model` or a name: ``"linear"``, ``"logistic"``,
        ``"softmax"``, ``"mlp"`` (a regression MLP; use ``models.mlp(task=...)`` for a
        classifier). Sized from the data: features, outputs and classes are inferred.
    X, y:
        Arrays (NumPy, JAX, lists, pandas), or ``X`` a :class:`descend.data.Dataset`
        (``y`` omitted), or ``X`` the path of a CSV / Parquet file or a DataFrame (``y``
        omitted) with ``target`` the name of its target column (default: the last;
        ``features`` optionally choosing the others; text columns are one-hot encoded).
        Classifier labels may be any values; they are encoded as ``classes``.
    loss:
        A loss name (see :func:`descend.losses.names`) or a callable
        ``loss(predictions, targets)`` returning one value per sample. Default: the
        model's (mse for regression, bce_with_logits for logistic, cross_entropy for
        softmax).
    optimizer, lr:
        An optimizer or its name (hyperparameter defaults as in ``torch.optim``), and a
        learning rate for it. Default: ``adam`` with ``lr=1e-3``.
    batch_size, method:
        ``batch_size=None`` (or ``method="batch"``) is batch gradient descent, ``1``
        (``method="stochastic"``) stochastic, ``n`` (``method="minibatch"``)
        mini-batch. The short last batch is used, its loss averaged over its own
        samples, unless ``drop_last=True``. A batch larger than the data is reduced to
        the data, with a warning.
    epochs:
        Passes over the training data. With ``resume``, the total including the epochs
        already trained.
    accumulate:
        Sum the gradients of ``accumulate`` consecutive batches before one update (the
        result equals one batch ``accumulate`` times larger).
    shuffle, seed:
        Shuffle the rows every epoch; the permutation of epoch ``e`` depends only on
        ``seed`` and ``e``, so the same seed gives bit-identical results. Default 0, or
        the checkpoint's seed when resuming.
    sample_weight:
        Per-sample weights: each batch loss is :math:`\sum_i w_i l_i / \sum_i w_i`.
    validation, validation_split:
        Validation data ``(X_val, y_val)``, or the share of the data to hold out for it.
    standardize:
        Standardize features with the training mean and standard deviation, stored with
        the result and applied by ``predict``.
    tol:
        Stop when the gradient norm of an epoch's last update is at most ``tol`` (for
        batch gradient descent: the gradient is near zero).
    patience, min_delta, restore_best:
        Early stopping: stop when the validation loss (the training loss without
        validation data) has not improved by more than ``min_delta`` for ``patience``
        epochs; then, with ``restore_best``, return the best epoch's weights.
    callbacks:
        Functions ``callback(epoch, history)`` called after every epoch; returning
        ``True`` stops training.
    verbose:
        0 silent, 1 a progress bar when stderr is a terminal, 2 one line per epoch.
    dtype:
        ``"float32"`` or ``"float64"`` (inside this call only). Default ``"float32"``,
        or the checkpoint's dtype when resuming.
    resume:
        A checkpoint path (or a :class:`FitResult`) to continue from: weights, optimizer
        state, standardization, classes and epoch count are taken from it, and so are
        the optimizer (``lr`` alone changes its rate), the loss, the seed and the dtype
        unless given. A loss given as a function is not stored in a file: pass it again.
    nan_policy:
        What to do with NaN / infinite values in the data: ``"raise"``, ``"drop"`` or
        ``"impute_mean"``.

    Returns
    -------
    FitResult
        ``params``, ``opt_state``, ``history`` (per-epoch arrays), ``n_updates``,
        ``reason``, and ``predict``, ``predict_proba``, ``score``.

    Examples
    --------
    >>> import numpy as np, descend as ds
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> y = X @ np.array([1.0, -2.0, 0.5]) + 3.0
    >>> result = ds.fit("linear", X, y, optimizer="sgd", lr=0.1, batch_size=None,
    ...                 epochs=500, tol=1e-6, verbose=0)
    >>> np.round(result.params["w"], 3).tolist(), round(float(result.params["b"]), 3)
    ([1.0, -2.0, 0.5], 3.0)
    """
    previous = _resolve_resume(resume, model, optimizer)
    model = _resolve_model(
        model if previous is None else previous.model if model is None else model
    )
    if previous is not None and model.name != "custom" and model != previous.model:
        raise InputError(
            f"the checkpoint holds a {previous.model!r} model, not {model!r}; resume with "
            "the same model (or model=None to take it from the checkpoint)"
        )
    epochs = check_int("epochs", epochs, minimum=1)
    if previous is not None and epochs <= previous.n_epochs:
        raise InputError(
            f"epochs counts the {previous.n_epochs} epochs already trained when resuming, so "
            f"epochs={epochs} leaves none to run; ask for more, e.g. "
            f"epochs={previous.n_epochs + epochs}"
        )
    accumulate = check_int("accumulate", accumulate, minimum=1)
    if seed is None:
        seed = previous.seed if previous is not None else 0
    seed = check_int("seed", seed, minimum=0)
    if verbose not in (0, 1, 2):
        raise InputError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    if patience is not None:
        check_int("patience", patience, minimum=1)
    check_positive("min_delta", min_delta, allow_zero=True)
    if tol is not None:
        check_positive("tol", tol, allow_zero=True)
    if dtype is None:
        dtype = previous.dtype if previous is not None else "float32"
    if dtype not in ("float32", "float64"):
        raise InputError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    loss_fn, loss_name = _resolve_loss(loss, model, previous)
    optimizer = _resolve_optimizer(optimizer, lr, previous)

    context = jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()
    with context:
        prepared = _prepare_data(
            model,
            X,
            y,
            sample_weight,
            validation,
            validation_split,
            standardize,
            seed,
            target,
            features,
            nan_policy,
            dtype,
            previous,
        )
        n_train = len(prepared.X)
        batch_size = _resolve_batch_size(batch_size, method, n_train)
        # batch_size <= n_train here, so drop_last always leaves at least one batch.
        n_batches = n_train // batch_size if drop_last else math.ceil(n_train / batch_size)
        config = EpochConfig(
            n_samples=n_train,
            n_used=n_batches * batch_size if drop_last else n_train,
            batch_size=batch_size,
            accumulate=accumulate,
            n_updates=math.ceil(n_batches / accumulate),
            shuffle=bool(shuffle),
        )
        objective = BatchObjective(model, loss_fn, loss_name)
        run = _Run(
            objective=objective, optimizer=optimizer, config=config, prepared=prepared,
            seed=seed, epochs=epochs, tol=tol, patience=patience, min_delta=min_delta,
            restore_best=restore_best, callbacks=tuple(callbacks), verbose=verbose,
            dtype=dtype, previous=previous,
        )  # fmt: skip
        return run.train()


# ---------------------------------------------------------------- argument resolution


def _resolve_resume(resume, model, optimizer) -> FitResult | None:
    if resume is None or isinstance(resume, FitResult):
        return resume
    from descend.persistence import load

    # The file cannot hold a custom model's function or a schedule's: use the ones given.
    return load(
        resume,
        model=model if isinstance(model, models.Model) else None,
        optimizer=optimizer if isinstance(optimizer, Optimizer) else None,
    )


def _resolve_model(model) -> models.Model:
    if isinstance(model, models.Model):
        return model
    if isinstance(model, str):
        return models.get(model)
    raise DescendTypeError(
        f"model must be a descend model (e.g. descend.models.linear()) or a name, got "
        f"{type(model).__name__}"
    )


def _resolve_loss(loss, model: models.Model, previous: FitResult | None):
    if loss is None and previous is not None:
        if previous.loss is None:
            raise InputError(
                "the checkpoint was trained with a loss function, which cannot be stored; "
                "pass it again to resume: fit(..., loss=your_loss, resume=...)"
            )
        loss = previous.loss
    if loss is None:
        loss = model.default_loss
    if isinstance(loss, str):
        return losses.get(loss), loss
    if callable(loss):
        return loss, None
    raise DescendTypeError(f"loss must be a name or a function, got {type(loss).__name__}")


def _resolve_optimizer(optimizer, lr, previous: FitResult | None) -> Optimizer:
    if optimizer is None and previous is not None:
        if lr is None:
            return previous.optimizer
        # A new rate for the algorithm being resumed (its state fits no other one).
        hyperparams = {**previous.optimizer.hyperparams, "lr": lr}
        try:
            return optim.get(previous.optimizer.name, **hyperparams)
        except (InputError, TypeError):
            raise InputError(
                f"cannot rebuild {previous.optimizer!r} with lr={lr!r}; pass the optimizer "
                "with its new learning rate: fit(..., optimizer=..., resume=...)"
            ) from None
    if optimizer is None:
        optimizer = "adam"
        lr = 1e-3 if lr is None else lr
    if isinstance(optimizer, Optimizer):
        if lr is not None:
            raise InputError(
                "lr is given twice: as lr= and inside the optimizer; build the optimizer "
                "with its lr, or pass the optimizer by name with lr="
            )
        return optimizer
    if isinstance(optimizer, str):
        return optim.get(optimizer) if lr is None else optim.get(optimizer, lr=lr)
    raise DescendTypeError(
        f"optimizer must be an Optimizer or a name, got {type(optimizer).__name__}"
    )


def _resolve_batch_size(batch_size, method, n_train: int) -> int:
    if method is not None:
        if method not in METHODS:
            raise unknown_name("method", str(method), METHODS)
        if method == "batch":
            batch_size = None
        elif method == "stochastic":
            batch_size = 1
        elif batch_size is None:
            raise InputError("method='minibatch' needs a batch_size, e.g. batch_size=32")
    if batch_size is None:
        return n_train
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if batch_size > n_train:
        warnings.warn(
            f"batch_size={batch_size} is larger than the {n_train} training samples; "
            f"using {n_train} (batch gradient descent)",
            DescendWarning,
            stacklevel=3,
        )
        return n_train
    return batch_size


# ---------------------------------------------------------------- data


@dataclass
class Prepared:
    X: np.ndarray
    y: np.ndarray
    weights: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    classes: np.ndarray | None
    standardizer: Any
    encoding: Any
    n_outputs: int


def _prepare_data(
    model,
    X,
    y,
    sample_weight,
    validation,
    validation_split,
    standardize,
    seed,
    target,
    features,
    nan_policy,
    dtype,
    previous,
) -> Prepared:
    from descend import data

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
    if nan_policy == "drop" and sample_weight is not None:
        # A last column of row numbers tells which rows survive, and so which weights.
        tagged = np.c_[X.astype(np.float64), np.arange(len(X), dtype=np.float64)]
        arrays = data.as_arrays(tagged, y, task=task, nan_policy=nan_policy, dtype="float64")
        weights = weights[arrays.X[:, -1].astype(np.int64)]
        y = arrays.y if task is not None else arrays.y.astype(dtype)
        arrays = data.ArrayData(arrays.X[:, :-1].astype(dtype), y, arrays.classes)
    else:
        arrays = data.as_arrays(X, y, task=task, nan_policy=nan_policy, dtype=dtype)
    X, y, classes = arrays.X, arrays.y, arrays.classes
    if previous is not None and previous.classes is not None:
        classes, y = previous.classes, _codes(arrays.classes[arrays.y], previous.classes, "y")
    X_val = y_val = None
    if validation is not None and validation_split is not None:
        raise InputError("give validation=(X_val, y_val) or validation_split, not both")
    if validation_split is not None:
        check_in_range("validation_split", validation_split, 0.0, 1.0)
        rows = np.arange(len(X))
        train_rows, val_rows, _, _ = data.train_validation_split(rows, rows, validation_split, seed)
        X, X_val, y, y_val = X[train_rows], X[val_rows], y[train_rows], y[val_rows]
        weights = weights[train_rows]
    elif validation is not None:
        X_val, y_val = _validation_arrays(validation, model, classes, X.shape[1], dtype, nan_policy)
    standardizer = previous.standardizer if previous is not None else None
    if standardize and standardizer is None:
        standardizer = data.Standardizer.fit(X)
    if standardizer is not None:
        X = np.asarray(standardizer.transform(X), dtype=dtype)
        if X_val is not None:
            X_val = np.asarray(standardizer.transform(X_val), dtype=dtype)
    if model.task == "binary":
        y = y.astype(dtype)
        y_val = None if y_val is None else y_val.astype(dtype)
    n_outputs = _n_outputs(model, y, classes)
    return Prepared(X, y, weights, X_val, y_val, classes, standardizer, encoding, n_outputs)


def _codes(labels: np.ndarray, classes: np.ndarray, name: str) -> np.ndarray:
    """Class codes of ``labels`` in the (training) ``classes``; unknown labels are an error."""
    lookup = {label: code for code, label in enumerate(np.asarray(classes).tolist())}
    unknown = [label for label in np.asarray(labels).tolist() if label not in lookup]
    if unknown:
        raise DataError(
            f"{name} has labels not seen in training: {sorted(set(map(repr, unknown)))[:5]} "
            f"(training classes: {np.asarray(classes).tolist()})"
        )
    return np.asarray([lookup[label] for label in np.asarray(labels).tolist()], dtype=np.int32)


def _validation_arrays(validation, model, classes, n_features, dtype, nan_policy):
    from descend import data

    try:
        X_val, y_val = validation
    except (TypeError, ValueError):
        raise InputError("validation must be a pair (X_val, y_val)") from None
    if model.task != "regression":
        # Labels become the training codes first, so that rows dropped for NaN features
        # are dropped from the labels too.
        y_val = _codes(np.asarray(y_val).reshape(-1), classes, "validation y")
    arrays = data.as_arrays(X_val, y_val, nan_policy=nan_policy, dtype=dtype)
    if arrays.X.shape[1] != n_features:
        raise DataError(
            f"validation X has {arrays.X.shape[1]} features but the training X has {n_features}"
        )
    if model.task == "regression":
        return arrays.X, arrays.y
    return arrays.X, arrays.y.astype(np.int32)


def _sample_weights(sample_weight, n: int, dtype) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n, dtype=dtype)
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


# ---------------------------------------------------------------- the epoch loop


class _Best(NamedTuple):
    """The epoch with the lowest monitored loss so far, and its weights and state."""

    loss: float
    params: PyTree
    opt_state: PyTree
    epoch: int


@dataclass
class _Run:
    objective: BatchObjective
    optimizer: Optimizer
    config: EpochConfig
    prepared: Prepared
    seed: int
    epochs: int
    tol: float | None
    patience: int | None
    min_delta: float
    restore_best: bool
    callbacks: tuple
    verbose: int
    dtype: str
    previous: FitResult | None

    def train(self) -> FitResult:
        prepared, model = self.prepared, self.objective.model
        init_key, shuffle_key = jax.random.split(jax.random.key(self.seed))
        if self.previous is not None:
            params = jax.tree.map(partial(_as_dtype, dtype=self.dtype), self.previous.params)
            opt_state = _restore_state(self.optimizer, params, self.previous.opt_state)
            start, n_updates = self.previous.n_epochs, self.previous.n_updates
            history = {key: list(values) for key, values in self.previous.history.items()}
        else:
            params = model.init(init_key, prepared.X.shape[1], prepared.n_outputs, dtype=self.dtype)
            if model.name == "custom":  # the user's own params, in the training dtype
                params = jax.tree.map(partial(_as_dtype, dtype=self.dtype), params)
            opt_state = self.optimizer.init(params)
            start, n_updates, history = 0, 0, {}
        program = engine.compiled_epoch(self.objective, self.optimizer, self.config)
        # On the device once: every epoch and its scoring read these copies.
        data = (jnp.asarray(prepared.X), jnp.asarray(prepared.y), jnp.asarray(prepared.weights))
        scored = data[:2]
        if prepared.X_val is not None:
            scored = (jnp.asarray(prepared.X_val), jnp.asarray(prepared.y_val))
        prefix = "val_" if prepared.X_val is not None else ""
        status, reason = Status.MAX_EPOCHS, f"completed {self.epochs} epochs"
        best = _Best(math.inf, params, opt_state, start)
        waited = 0
        with _Progress(self.verbose, self.epochs, start, self.config.n_samples) as progress:
            for epoch in range(start, self.epochs):
                began = time.perf_counter()
                try:
                    outcome = program(
                        params, opt_state, data, jax.random.fold_in(shuffle_key, epoch)
                    )
                    # Scoring is dispatched before the fetch, so the host waits once an epoch.
                    score = evaluate(self.objective, outcome.params, *scored)
                    next_lr = _lr_at(self.optimizer, n_updates + self.config.n_updates)
                    fetched = jax.device_get(
                        (
                            outcome.values,
                            outcome.weights,
                            outcome.grad_norms,
                            outcome.n_finite,
                            *score,
                            next_lr,
                        )
                    )
                except KeyboardInterrupt:
                    status = Status.INTERRUPTED
                    reason = f"interrupted during epoch {epoch + 1}; weights are from epoch {epoch}"
                    break
                values, weights, grad_norms, n_finite, score_loss, score_metric, next_lr = fetched
                params, opt_state = outcome.params, outcome.opt_state
                n_updates += int(n_finite)
                if n_finite < self.config.n_updates:
                    status, reason = Status.DIVERGED, self._diverged_reason(epoch, n_finite)
                    break
                record = {"loss": float(np.sum(values * weights) / np.sum(weights))}
                if prefix:
                    record["val_loss"] = float(score_loss)
                record[prefix + task_metric(model)] = float(score_metric)
                record["grad_norm"] = float(grad_norms[-1])
                record["lr"] = float(next_lr)
                record["time"] = time.perf_counter() - began
                for key, value in record.items():
                    history.setdefault(key, []).append(value)
                history.setdefault("epoch", []).append(epoch + 1)
                progress.update(epoch + 1, record)
                monitored = record.get("val_loss", record["loss"])
                if monitored < best.loss - self.min_delta:
                    best, waited = _Best(monitored, params, opt_state, epoch + 1), 0
                else:
                    waited += 1
                if self.tol is not None and record["grad_norm"] <= self.tol:
                    status = Status.CONVERGED
                    reason = f"gradient norm {record['grad_norm']:.3g} is below tol={self.tol:g}"
                    break
                if self.patience is not None and waited >= self.patience:
                    status, reason = Status.EARLY_STOPPING, self._early_reason(best)
                    if self.restore_best:
                        params, opt_state = best.params, best.opt_state
                    break
                arrays = _as_arrays(history)
                # Every callback sees every epoch, also when an earlier one asks to stop.
                stops = [callback(epoch + 1, arrays) is True for callback in self.callbacks]
                if any(stops):
                    status = Status.CALLBACK
                    reason = f"a callback stopped training after epoch {epoch + 1}"
                    break
        restored = status == Status.EARLY_STOPPING and self.restore_best
        return FitResult(
            model=model,
            params=jax.device_get(params),
            opt_state=jax.device_get(opt_state),
            optimizer=self.optimizer,
            loss=self.objective.loss_name or self.objective.loss,
            history=_as_arrays(history),
            n_updates=n_updates,
            n_epochs=len(history.get("epoch", [])),
            status=status.name.lower(),
            reason=reason,
            classes=prepared.classes,
            standardizer=prepared.standardizer,
            encoding=prepared.encoding,
            dtype=self.dtype,
            seed=self.seed,
            best_epoch=best.epoch if restored else None,
        )

    def _diverged_reason(self, epoch: int, n_finite: int) -> str:
        lr = self.optimizer.hyperparams.get("lr")
        advice = (
            f"; try a smaller learning rate, e.g. lr={lr / 10:g}"
            if isinstance(lr, (int, float))
            else "; try a smaller learning rate"
        )
        return (
            f"diverged: the loss or weights became non-finite at update {n_finite + 1} of epoch "
            f"{epoch + 1}; kept the last finite weights{advice}"
        )

    def _early_reason(self, best: _Best) -> str:
        monitored = "validation loss" if self.prepared.X_val is not None else "training loss"
        restored = f"; restored the weights of epoch {best.epoch}" if self.restore_best else ""
        return (
            f"early stopping: the {monitored} has not improved by more than "
            f"{self.min_delta:g} for {self.patience} epochs (best {best.loss:.6g} at epoch "
            f"{best.epoch}){restored}"
        )


def _as_dtype(leaf, dtype: str) -> jax.Array:
    """A saved leaf on the device, floating ones in the training ``dtype``."""
    leaf = np.asarray(leaf)
    return jnp.asarray(leaf, dtype=dtype if np.issubdtype(leaf.dtype, np.floating) else None)


def _restore_state(optimizer: Optimizer, params, saved_state):
    """The saved optimizer state in the structure (and dtypes) ``optimizer.init`` builds."""
    template = optimizer.init(params)
    leaves = jax.tree.leaves(saved_state)
    template_leaves, structure = jax.tree.flatten(template)
    if len(template_leaves) != len(leaves) or any(
        np.shape(leaf) != np.shape(like)
        for leaf, like in zip(leaves, template_leaves, strict=False)
    ):
        raise InputError(
            f"the checkpoint's optimizer state does not fit {optimizer!r}; resume with the "
            "optimizer it was trained with (or omit optimizer= to reuse it)"
        )
    return jax.tree.unflatten(
        structure,
        [
            jnp.asarray(leaf, dtype=like.dtype)
            for leaf, like in zip(leaves, template_leaves, strict=False)
        ],
    )


def _lr_at(optimizer: Optimizer, n_updates: int) -> jax.Array | float:
    """The learning rate of the next update (NaN for an optimizer without ``lr``)."""
    lr = optimizer.hyperparams.get("lr")
    if lr is None:
        return math.nan
    return optim.lr_at(lr, jnp.asarray(n_updates))


def _as_arrays(history: dict[str, list]) -> dict[str, np.ndarray]:
    return {key: np.asarray(values) for key, values in history.items()}


class _Progress:
    """A rich progress bar on a terminal (verbose=1) or one line per epoch (verbose=2)."""

    def __init__(self, verbose: int, epochs: int, start: int, n_samples: int):
        self.verbose, self.epochs, self.start, self.n_samples = verbose, epochs, start, n_samples
        self.bar = None
        if verbose == 1 and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("epoch {task.completed}/{task.total}"), BarColumn(),
                TextColumn("{task.fields[status]}"), TimeRemainingColumn(), transient=False,
            )  # fmt: skip
            self.task = self.bar.add_task("train", total=epochs, completed=start, status="")

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc_info):
        if self.bar is not None:
            self.bar.stop()

    def update(self, epoch: int, record: dict[str, float]) -> None:
        text = epoch_line(epoch, self.epochs, record, self.n_samples)
        if self.bar is not None:
            self.bar.update(self.task, completed=epoch, status=text.split(": ", 1)[1])
        elif self.verbose == 2:
            print(text, flush=True)


def epoch_line(epoch: int, epochs: int, record: dict[str, float], n_samples: int) -> str:
    """``epoch 3/10: loss 0.2301, val_loss 0.2411, val_accuracy 0.9412, 1.2e+06 samples/s``."""
    parts = [
        f"{key} {value:.4g}"
        for key, value in record.items()
        if key not in ("time", "lr", "grad_norm")
    ]
    rate = n_samples / record["time"] if record.get("time") else math.nan
    return f"epoch {epoch}/{epochs}: " + ", ".join(parts) + f", {rate:.3g} samples/s"
