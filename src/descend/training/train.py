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
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from descend import distributed, losses, models, optim
from descend.training.prepare import prepare_data
from descend.training.loop import EpochLoop
from descend.engine import EpochConfig
from descend.errors import (
    DescendTypeError,
    DescendWarning,
    InputError,
    check_int,
    check_positive,
    unknown_name,
)
from descend.training.result import FitResult
from descend.optim.base import Optimizer

PyTree = Any
METHODS = ("batch", "stochastic", "minibatch")


@dataclass(frozen=True)
class BatchObjective:
    r"""The loss of one batch: ``(params, X, y[, w]) -> (loss sum, (weight sum, metric sums))``.

    The loss sum is :math:`\sum_i w_i \ell_i` (the weight sum the number of rows when
    there are no sample weights); the metric sums are what the running training metric
    needs: correct predictions for classifiers, squared residuals per output for
    regression. Hashable by value (model and loss), so compiled epochs are reused.
    """

    model: models.Model
    loss: Callable[..., jax.Array]
    loss_name: str | None

    def per_sample(self, params, X, y) -> jax.Array:
        return self._per_sample(self.model.apply(params, X), y)

    def _per_sample(self, predictions, y) -> jax.Array:
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

    def __call__(self, params, X, y, w=None):
        predictions = self.model.apply(params, X)
        values = self._per_sample(predictions, y)
        if w is None:
            loss, weight = jnp.sum(values), jnp.asarray(values.shape[0], values.dtype)
        else:
            loss, weight = jnp.sum(w * values), jnp.sum(w)
        return loss, (weight, self._metric_sums(predictions, y, w, values.dtype))

    def _metric_sums(self, predictions, y, w, dtype) -> jax.Array:
        if self.model.task == "regression":
            residual = (jnp.reshape(y, predictions.shape) - predictions) ** 2
            if w is not None:
                residual = residual * jnp.reshape(w, (-1,) + (1,) * (residual.ndim - 1))
            return jnp.sum(residual, axis=0).astype(dtype)
        labels = models.predict_from_outputs(self.model, predictions)
        correct = (labels == y.astype(labels.dtype)).astype(dtype)
        return jnp.sum(correct if w is None else w * correct)


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
    devices: Any = None,
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
        Classifier labels may be any values; they are encoded as ``classes``. Or ``X``
        a :func:`descend.data.stream` (``y`` omitted) for data larger than memory.
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
    devices:
        Data-parallel training (see :mod:`descend.distributed`): ``"all"``, a list of
        jax devices, or a :class:`jax.sharding.Mesh` with a ``"batch"`` axis. Every
        batch is split evenly over the devices (``batch_size`` must be a multiple of
        their number; the short last batch is padded with rows of weight 0), the
        weights are replicated and their gradients summed over the devices. Default
        None: one device, or all devices of all processes after
        :func:`descend.distributed.initialize`, each process passing its own rows.

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
    placement = distributed.resolve(devices)

    context = jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()
    with context:
        prepared = prepare_data(
            model,
            X,
            y,
            sample_weight,
            validation,
            validation_split,
            standardize and placement is None,
            seed,
            target,
            features,
            nan_policy,
            dtype,
            previous,
        )
        if prepared.stream is not None and placement is not None:
            raise InputError(
                "devices= cannot be used with a stream yet; train a stream on one device"
            )
        if placement is not None:  # across processes: same shapes, one standardization
            prepared = placement.prepare(prepared, standardize)
        n_train = prepared.n_samples * (1 if placement is None else placement.n_processes)
        batch_size = _resolve_batch_size(batch_size, method, n_train)
        config = EpochConfig(
            n_samples=n_train,
            batch_size=batch_size,
            accumulate=accumulate,
            drop_last=bool(drop_last),
            # The order of the rows cannot change a full-batch gradient: no need to shuffle.
            shuffle=bool(shuffle) and batch_size < n_train,
            weighted=prepared.weights is not None,
            mesh=None if placement is None else placement.mesh,
        )
        if placement is not None:
            placement.check_batch_size(batch_size, n_train)
        source = None if placement is None else placement.source(prepared, config)
        if prepared.stream is not None:  # rows read chunk by chunk (descend.streaming)
            start = 0 if previous is None else previous.n_epochs
            source = prepared.stream.source(config, shuffle=bool(shuffle), epochs=epochs - start)
        objective = BatchObjective(model, loss_fn, loss_name)
        run = EpochLoop(
            objective=objective, optimizer=optimizer, config=config, prepared=prepared,
            seed=seed, epochs=epochs, tol=tol, patience=patience, min_delta=min_delta,
            restore_best=restore_best, callbacks=tuple(callbacks), verbose=verbose,
            dtype=dtype, previous=previous, placement=placement, source=source,
        )  # fmt: skip
        try:
            return run.train()
        finally:
            if prepared.stream is not None:  # ends the reading thread, also on errors
                source.close()


# ---------------------------------------------------------------- argument resolution


def _resolve_resume(resume, model, optimizer) -> FitResult | None:
    if resume is None or isinstance(resume, FitResult):
        return resume
    from descend.training.saving import load

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
