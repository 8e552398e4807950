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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

import jax

from descend import models
from descend.optim.base import Optimizer
from descend.sweeps import Sweep
from descend.training import sweep
from descend.training.loop import train
from descend.training.prepare import epoch_config, prepare, settle_weights
from descend.training.result import FitResult
from descend.training.sources import InMemory
from descend.training.spec import FitSpec
from descend.training.streams import prepare_stream, process_share


@overload
def fit(
    model: models.Model | str,
    X: Any,
    y: Any = ...,
    *,
    loss: str | Callable[..., jax.Array] | None = ...,
    optimizer: Optimizer | str | None = ...,
    lr: float | None = ...,
    batch_size: int | None = ...,
    method: str | None = ...,
    epochs: int = ...,
    accumulate: int = ...,
    drop_last: bool = ...,
    shuffle: bool = ...,
    seed: int | None = ...,
    sample_weight: Any = ...,
    validation: tuple[Any, Any] | None = ...,
    validation_split: float | None = ...,
    standardize: bool = ...,
    tol: float | None = ...,
    patience: int | None = ...,
    min_delta: float = ...,
    l2: float | str | None = ...,
    restore_best: bool = ...,
    callbacks: Sequence[Any] | Any = ...,
    verbose: int = ...,
    dtype: str | None = ...,
    resume: Any = ...,
    init: Any = ...,
    target: str | None = ...,
    features: Sequence[str] | None = ...,
    nan_policy: str = ...,
    devices: Any = ...,
    param_grid: None = ...,
) -> FitResult: ...


@overload
def fit(
    model: models.Model | str,
    X: Any,
    y: Any = ...,
    *,
    loss: str | Callable[..., jax.Array] | None = ...,
    optimizer: Optimizer | str | None = ...,
    lr: float | Sequence[float] | None = ...,
    batch_size: int | None = ...,
    method: str | None = ...,
    epochs: int = ...,
    accumulate: int = ...,
    drop_last: bool = ...,
    shuffle: bool = ...,
    seed: int | Sequence[int] | None = ...,
    sample_weight: Any = ...,
    validation: tuple[Any, Any] | None = ...,
    validation_split: float | None = ...,
    standardize: bool = ...,
    tol: float | None = ...,
    patience: int | None = ...,
    min_delta: float = ...,
    l2: float | str | Sequence[float | str] | None = ...,
    restore_best: bool = ...,
    callbacks: Sequence[Any] | Any = ...,
    verbose: int = ...,
    dtype: str | None = ...,
    resume: Any = ...,
    init: Any = ...,
    target: str | None = ...,
    features: Sequence[str] | None = ...,
    nan_policy: str = ...,
    devices: Any = ...,
    param_grid: Mapping[str, Sequence[Any]] | None = ...,
) -> FitResult | Sweep[FitResult]: ...


def fit(
    model: models.Model | str,
    X: Any,
    y: Any = None,
    *,
    loss: str | Callable[..., jax.Array] | None = None,
    optimizer: Optimizer | str | None = None,
    lr: float | Sequence[float] | None = None,
    batch_size: int | None = 32,
    method: str | None = None,
    epochs: int = 200,
    accumulate: int = 1,
    drop_last: bool = False,
    shuffle: bool = True,
    seed: int | Sequence[int] | None = None,
    sample_weight: Any = None,
    validation: tuple[Any, Any] | None = None,
    validation_split: float | None = None,
    standardize: bool = True,
    tol: float | None = None,
    patience: int | None = 10,
    min_delta: float = 1e-4,
    l2: float | str | Sequence[float | str] | None = None,
    restore_best: bool = True,
    callbacks: Sequence[Any] | Any = (),
    verbose: int = 1,
    dtype: str | None = None,
    resume: Any = None,
    init: Any = None,
    target: str | None = None,
    features: Sequence[str] | None = None,
    nan_policy: str = "raise",
    devices: Any = None,
    param_grid: Mapping[str, Sequence[Any]] | None = None,
) -> FitResult | Sweep[FitResult]:
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
        learning rate for it. Default: Adam with ``lr=1e-2``, the rate cut by 5 when the
        epoch's loss (validation loss with validation data) has not improved for 3 epochs
        (``reduce_on_plateau(adam(lr), factor=0.2, patience=3)``; see
        :func:`descend.training.spec.default_optimizer`). A named optimizer without
        ``lr`` has its own default (``"adam"``: torch's ``1e-3``).
    batch_size, method:
        ``batch_size=None`` (or ``method="batch"``) is batch gradient descent, ``1``
        (``method="stochastic"``) stochastic, ``n`` (``method="minibatch"``)
        mini-batch. The short last batch is used, its loss averaged over its own
        samples, unless ``drop_last=True``. A batch larger than the data is reduced to
        the data, with a warning.
    epochs:
        The most passes over the training data, >= 1; with the default early stopping
        (``patience=10``) training usually stops sooner, when the loss no longer falls.
        With ``resume`` or ``init``, the total including the epochs already trained.
    accumulate:
        Sum the gradients of ``accumulate`` consecutive batches before one update (the
        result equals one batch ``accumulate`` times larger).
    shuffle, seed:
        Shuffle the rows every epoch; the permutation of epoch ``e`` depends only on
        ``seed`` and ``e``, so the same seed gives bit-identical results. Default 0, or
        the checkpoint's seed when resuming.
    sample_weight:
        Per-sample weights :math:`w_i \ge 0`. Training minimizes the weighted mean loss
        :math:`\sum_i w_i l_i / \sum_i w_i`: each update of :math:`b` rows descends
        :math:`\sum_{i \in B} w_i l_i / (b \bar w)`, with :math:`\bar w` the mean
        weight of all the training rows (as scikit-learn's ``SGDRegressor`` weighs
        each row's step by :math:`w_i`), an unbiased estimate of it for every batch
        size; batch gradient descent uses it exactly. The history's ``loss`` and
        training metric are weighted too. Weights that are all equal are the same as
        none. With ``init=FitState(..., weights_seen=(sum, count))``, :math:`\bar w`
        also covers the rows trained on before (what ``partial_fit`` does).
    validation, validation_split:
        Validation data ``(X_val, y_val)``, or the share of the data to hold out for it,
        in ``[0, 1)`` (0, like None, holds none out).
        The rows held out by ``validation_split`` keep their ``sample_weight``:
        ``val_loss`` is then their weighted mean loss and the validation metric is
        weighted (as ``sklearn.metrics.r2_score`` / ``accuracy_score`` weigh it); a
        :class:`~descend.errors.DataError` if they all weigh 0.
    standardize:
        Standardize features with the training mean and standard deviation, and a
        regression's targets too (per output), as scikit-learn's ``StandardScaler``
        and ``TransformedTargetRegressor`` would: the scales are stored with the result
        and undone by ``predict`` and ``score``, which are in the targets' own units;
        ``params`` and the history's losses are in the standardized units (R² is the
        same in both). A continued run (``resume``, ``init``) keeps the scales it was
        trained with.
    tol:
        Stop when the gradient norm of an epoch's last update is at most ``tol`` (for
        batch gradient descent: the gradient is near zero).
    patience, min_delta, restore_best:
        Early stopping: stop when the validation loss (the training loss without
        validation data) has not improved by more than ``min_delta`` for ``patience``
        epochs; then, with ``restore_best``, return the best epoch's weights. The
        defaults (10 epochs, 1e-4: scikit-learn's ``n_iter_no_change`` and ``tol``) train
        until convergence; ``patience=None`` runs all ``epochs``.
    l2:
        Strength :math:`\lambda \ge 0` of an L2 penalty
        :math:`\tfrac{\lambda}{2}\sum \lVert w\rVert^2` on the weights (the leaves named
        ``w``, not the biases) added to every update's mean loss (the history's losses
        leave it out). ``"auto"``: :math:`1/n` for :math:`n` training rows (whatever
        their ``sample_weight``: scaling every weight changes nothing) with descend's models, which
        makes ``logistic`` and ``softmax`` minimize what scikit-learn's
        ``LogisticRegression(C=1)`` does and ``linear`` what ``Ridge(alpha=0.5)`` does
        (on the standardized data), and 0 for a custom model or a one-shot iterator
        (whose rows are not counted before training); 0 for none. None (the
        default): ``"auto"``, or when continuing (``resume=``, ``init=result.state``)
        the strength the run trained with (``FitResult.l2``).
    callbacks:
        A list (or one) of functions ``callback(epoch, history)``, called after every
        epoch with the epoch (from 1) and the history so far, and objects with Keras's
        hooks ``on_train_begin(logs)``, ``on_epoch_end(epoch, logs)`` and
        ``on_train_end(logs)`` (:mod:`descend.callbacks`: ``CSVLogger``,
        ``TensorBoard``, ``Checkpoint``, ``EarlyStopping``, or your own), called in the
        list's order. A function or ``on_epoch_end`` returning ``True`` (or raising
        ``StopIteration``) stops training after that epoch (status ``"callback"``).
    verbose:
        0 silent; 1 (default) progress on stderr: a bar on a terminal or in a Jupyter
        notebook (``tqdm.auto``, from the ``notebook`` extra), elsewhere (a log, a pipe)
        a line for the first epoch, every tenth of ``epochs`` or 10 s, and the last;
        2 one line per epoch on stdout.
    dtype:
        ``"float32"`` or ``"float64"`` (inside this call only). Default ``"float32"``,
        or the checkpoint's dtype when resuming.
    resume:
        A checkpoint path (or a :class:`FitResult`) to continue from: weights, optimizer
        state, standardization, classes and epoch count are taken from it, and so are
        the optimizer (``lr`` alone changes its rate), the loss, the seed and the dtype
        unless given. A loss given as a function is not stored in a file: pass it again.
    init:
        Where training starts instead: a :class:`~descend.training.FitState` (e.g.
        ``result.state``: weights, optimizer state, epochs and updates taken, history)
        or a pair ``(params, opt_state)``. Unlike ``resume``, the model, optimizer and
        data encoding are the ones given here.
    nan_policy:
        What to do with NaN / infinite values in the data: ``"raise"``, ``"drop"`` or
        ``"impute_mean"``.
    param_grid:
        A sweep of the optimizer's hyperparameters: a dict of names to lists of values,
        e.g. ``{"momentum": [0.5, 0.9], "betas": [(0.9, 0.999), (0.5, 0.9)]}``, as
        scikit-learn's ``GridSearchCV(param_grid=...)`` takes them. With it, or with a
        list for ``lr``, ``seed`` or ``l2``, ``fit`` trains every combination (as
        ``sklearn.model_selection.ParameterGrid`` lists them: names sorted, the last
        varying fastest) at once, in one compiled program per epoch, and returns a
        :class:`~descend.Sweep` (see "Sweeps" below).
    devices:
        Data-parallel training (see :mod:`descend.distributed`): ``"all"``, a number
        ``n`` (the first ``n`` devices, ``jax.devices()[:n]``), a list of jax devices,
        or a :class:`jax.sharding.Mesh` with a ``"batch"`` axis. Every
        batch is split evenly over the devices (``batch_size`` must be a multiple of
        their number; the short last batch is padded with rows of weight 0), the
        weights are replicated and their gradients summed over the devices. Default
        None: one device, or all devices of all processes after
        :func:`descend.distributed.initialize`, each process passing its own rows (or
        the same stream of a Parquet or ``.npy`` folder, of which each process reads
        its own files: see :mod:`descend.data.streams`). A stream's chunks are split
        over the devices as data in memory is.

    Returns
    -------
    FitResult
        ``params``, ``opt_state``, ``history`` (per-epoch arrays), ``n_updates``,
        ``reason``, and ``predict``, ``predict_proba``, ``score``. For a sweep, a
        :class:`~descend.Sweep`: one FitResult per configuration, ``configurations``,
        ``rows`` (dicts) and ``table()`` (text), ``best``.

    Sweeps
    -------
    ``lr=[1e-3, 1e-2, 1e-1]``, ``seed=[0, 1, 2]``, ``l2=[0.0, 1e-3, "auto"]`` and
    ``param_grid`` (numbers and pairs of numbers that keep the optimizer state's shapes:
    ``lr``, ``momentum``, ``betas``, ``weight_decay``, ``eps``, ...) make a sweep: the
    weights and optimizer states of every configuration are stacked and one vmapped
    program runs each epoch for all of them, over the same batches in the same shuffled
    order (a sweep of seeds: each its own start and order), so that they differ only by
    their values (:func:`descend.optim.inject_hyperparams`). Each configuration keeps
    its own stopping rules, history and validation scores: one that diverges is frozen
    and reported with its own reason while the others go on, early stopping and
    ``restore_best`` act on each, and each result equals the same ``fit`` run alone (to
    float rounding). ``lr`` with an optimizer object sets each configuration's rate in
    it. Refused with an :class:`~descend.errors.InputError` that names the fix: values
    that change the state's shapes or the code path (``momentum=0`` next to others for
    ``sgd``, ``amsgrad``, schedules), ``resume``, ``init``, ``callbacks``,
    ``devices``, streams, complex params, and a sweep of seeds with
    ``validation_split`` (whose held-out rows depend on the seed); the verbose display
    shows the configurations still training.

    With an optimizer evaluated elsewhere than it steps (``schedule_free_sgd``,
    ``schedule_free_adamw``), ``params`` (and ``predict``, the validation scores, early
    stopping's restored weights, a saved checkpoint's weights) are its evaluation point
    :math:`x` (:func:`~descend.optim.eval_point`); the epochs step :math:`y`, and the
    history's training ``loss`` and metric are :math:`y`'s, as each batch's loss is
    computed there. A continued run (``resume``, ``init``) starts from
    :func:`~descend.optim.train_point` of the weights given.

    Raises
    ------
    InputError, DataError
        An option out of its range (the message names it, its range and the value
        given), an unknown name (with the closest valid one), data that cannot be used.
    DescendTypeError
        An argument of the wrong type (a model, loss or optimizer that is none).

    Ctrl-C stops training after the epoch in flight (status ``"interrupted"``); the
    result holds the weights of the last whole epoch.

    Examples
    --------
    >>> import numpy as np, descend as ds
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> y = X @ np.array([1.0, -2.0, 0.5]) + 3.0
    >>> result = ds.fit("linear", X, y, optimizer="sgd", lr=0.1, batch_size=None,
    ...                 epochs=500, tol=1e-6, verbose=0,
    ...                 standardize=False, l2=0.0, patience=None)  # the problem as given
    >>> np.round(result.params["w"], 3).tolist(), round(float(result.params["b"]), 3)
    ([1.0, -2.0, 0.5], 3.0)
    >>> sweep = ds.fit("linear", X, y, optimizer="sgd", lr=[0.01, 0.1], batch_size=None,
    ...                epochs=50, verbose=0)  # both rates in one program
    >>> sweep.best_configuration, [r.status for r in sweep]
    ({'lr': 0.1}, ['max_epochs', 'early_stopping'])
    """
    # Every argument but the data becomes one checked specification (see FitSpec).
    options = dict(locals())
    data = {name: options.pop(name) for name in ("X", "y", "sample_weight", "validation")}
    configurations = sweep.configurations_of(options, options.pop("param_grid"))
    if configurations is not None:  # lists of values: every configuration at once
        return sweep.fit_sweep(options.pop("model"), data, options, configurations)
    spec = FitSpec.build(options.pop("model"), data, options)
    context = jax.enable_x64(True) if spec.dtype == "float64" else contextlib.nullcontext()
    with context:
        return _fit(spec, **data)


def _fit(spec: FitSpec, *, X: Any, y: Any, sample_weight: Any, validation: Any) -> FitResult:
    """The data prepared, cut into batches and placed, then the epochs (inside the dtype)."""
    from descend.data.streams import Stream

    placement = spec.placement
    if isinstance(X, Stream):
        if placement is not None and placement.n_processes > 1:
            X = process_share(placement, X, validation)  # its own files
        prepared = prepare_stream(spec, X, validation)
    else:
        prepared = prepare(spec, X, y, sample_weight, validation)
        if placement is not None:  # across processes: same shapes, one standardization
            fresh_regression = spec.model.task == "regression" and spec.start is None
            prepared = placement.prepare(prepared, spec.standardize, targets=fresh_regression)
    # The data-wide mean weight that scales every update (equal weights are dropped).
    seen = None if spec.start is None else spec.start.weights_seen
    prepared, mean_weight = settle_weights(prepared, placement, seen)
    config = epoch_config(spec, prepared, placement, seen)
    if prepared.stream is not None:  # rows read chunk by chunk (descend.data.streams)
        epochs = spec.epochs - spec.first_epoch
        source = prepared.stream.source(
            config, shuffle=spec.shuffle, epochs=epochs, placement=placement
        )
        try:
            return train(spec, prepared, source)
        finally:  # ends the reading thread, also on errors
            source.close()
    if placement is not None:
        placement.check_batch_size(config.batch_size, config.n_samples)
        return train(spec, prepared, placement.source(prepared, config, mean_weight))
    source = InMemory.of(prepared.X, prepared.y, prepared.weights, config, mean_weight)
    return train(spec, prepared, source)
