"""The front door of ``fit``: its arguments, checked once, as one :class:`FitSpec`.

:data:`CONSTRAINTS` declares what every option accepts (scikit-learn's
``_parameter_constraints`` idea) and :data:`STREAM_REFUSES` what a stream cannot take;
:meth:`FitSpec.build` checks them all, resolves names (model, loss, optimizer), the
checkpoint or state to continue from and the devices, and returns a frozen
specification that the data preparation and the loop trust. The one rule for a batch
larger than the data is :meth:`FitSpec.batch_size_for`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from descend import callbacks as callback_objects
from descend import distributed, losses, models, optim
from descend._tree import PyTree
from descend.errors import (
    CheckpointError,
    DescendTypeError,
    DescendWarning,
    Either,
    Flag,
    InputError,
    Integer,
    Interval,
    Number,
    OneOf,
    Optional,
    check_all,
    warn,
)
from descend.optim.base import Optimizer, maximizes
from descend.training.result import FitResult, FitState, leaf_dtype

METHODS = ("batch", "stochastic", "minibatch")

# fit's learning rate when no optimizer is given (see default_optimizer).
DEFAULT_LR = 1e-2


def default_optimizer(lr: float | None = None) -> Optimizer:
    """fit's optimizer when none is given: Adam at ``lr`` (default 1e-2), its rate cut
    by 5 when the epoch's loss has not improved for 3 epochs.

    Measured by ``benchmarks/defaults.py`` on fourteen tables: Adam at torch's 1e-3
    stops far short of convergence within 200 epochs on small tables; at a constant
    1e-2 its noise leaves the held-out score up to 0.02 below scikit-learn's; cutting
    the rate on plateaus (as scikit-learn's ``MLPClassifier(learning_rate="adaptive")``
    divides it by 5) converges to within 0.01 of it on every table.
    """
    return optim.reduce_on_plateau(
        optim.adam(DEFAULT_LR if lr is None else lr), factor=0.2, patience=3
    )


# What each option of fit accepts; the messages follow descend.errors.invalid.
CONSTRAINTS = {
    "batch_size": Optional(Integer(1)),
    "method": Optional(OneOf(*METHODS)),
    "epochs": Integer(1),
    "accumulate": Integer(1),
    "drop_last": Flag(),
    "shuffle": Flag(),
    "seed": Optional(Integer(0)),
    "validation_split": Optional(Interval(0.0, 1.0)),
    "standardize": Flag(),
    "tol": Optional(Number(0.0)),
    "patience": Optional(Integer(1)),
    "min_delta": Number(0.0),
    "l2": Optional(Either(OneOf("auto"), Number(0.0))),
    "restore_best": Flag(),
    "verbose": OneOf(0, 1, 2),
    "dtype": Optional(OneOf("float32", "float64")),
    "nan_policy": OneOf("raise", "drop", "impute_mean"),
}

# Options a stream cannot take: (the value that means "not given", why, and what instead).
STREAM_REFUSES = {
    "y": (None, "a stream carries its own targets: fit(model, stream)"),
    "sample_weight": (None, "sample weights are not supported for streams yet"),
    "validation_split": (
        None,
        "a stream cannot hold rows out; pass validation=(X_val, y_val) held in memory",
    ),
    "target": (None, "name the target in ds.data.stream(..., target=)"),
    "features": (None, "name the features in ds.data.stream(..., features=)"),
    "nan_policy": (
        "raise",
        "a stream needs finite data (nan_policy='raise'); clean the source first",
    ),
}


@dataclass(frozen=True)
class FitSpec:
    """Everything ``fit`` was asked to do, checked (see :func:`descend.fit` for each field).

    ``batch_size`` is None for all rows (batch gradient descent); :meth:`batch_size_for`
    resolves it against the data. ``start`` is the state training continues from (a
    checkpoint's, or ``init``), ``resumed`` the checkpoint itself (its classes,
    standardization and table encoding are reused), ``placement`` the devices of a
    data-parallel run (None: one device).
    """

    model: models.Model
    loss: Callable[..., jax.Array]
    loss_name: str | None
    optimizer: Optimizer
    batch_size: int | None
    epochs: int
    accumulate: int
    drop_last: bool
    shuffle: bool
    seed: int
    validation_split: float | None
    standardize: bool
    tol: float | None
    patience: int | None
    min_delta: float
    restore_best: bool
    callbacks: tuple[Any, ...]  # functions callback(epoch, history) and hook objects
    verbose: int
    dtype: str
    target: str | None
    features: tuple[str, ...] | None
    nan_policy: str
    l2: float | str | None
    start: FitState | None = None
    resumed: FitResult | None = None
    placement: distributed.Placement | None = None

    @classmethod
    def build(cls, model: Any, data: dict[str, Any], options: dict[str, Any]) -> FitSpec:
        """The specification of ``fit(model, **data, **options)``.

        ``data`` holds ``X``, ``y``, ``sample_weight`` and ``validation`` (looked at here
        only to refuse what a stream cannot take), ``options`` every other keyword of
        :func:`descend.fit`.
        """
        from descend.data.streams import Stream

        options = dict(options)
        resume, init, devices = (options.pop(k) for k in ("resume", "init", "devices"))
        loss, optimizer, lr = (options.pop(k) for k in ("loss", "optimizer", "lr"))
        callbacks = _early_stopping(callback_objects.check(options.pop("callbacks")), options)
        options = check_all(CONSTRAINTS, options)
        if options["validation_split"] == 0:  # no rows held out, as Keras's default 0.0
            options["validation_split"] = None
        resumed = _resumed(resume, model, optimizer, lr)
        if resumed is not None and init is not None:
            raise InputError("give resume= or init=, not both: both say where training starts")
        if resumed is not None and model is None:
            model = resumed.model
        model = _model(model)
        if resumed is not None and model.name != "custom" and model != resumed.model:
            raise InputError(
                f"the checkpoint holds a {resumed.model!r} model, not {model!r}; resume with "
                "the same model, or name none to take the checkpoint's"
            )
        for name, fallback in (("seed", 0), ("dtype", "float32")):
            if options[name] is None:
                options[name] = getattr(resumed, name) if resumed is not None else fallback
        loss_fn, loss_name = _loss(loss, model, resumed)
        # Left unset, an optimizer's own stopping tolerances are 0: fit's rules decide.
        optimizer = optim.left_to_tol(_optimizer(optimizer, lr, resumed))
        if maximizes(optimizer):
            raise InputError(
                f"fit minimizes the loss, and {optimizer!r} ascends it (maximize=True); "
                "pass the optimizer without maximize=True"
            )
        placement = distributed.resolve(devices)
        if isinstance(data["X"], Stream):
            _check_stream(data["X"], options, data)
        options["callbacks"] = callbacks
        if options["features"] is not None:
            options["features"] = tuple(options["features"])
        if options["method"] is not None:
            options["batch_size"] = _batch_size_of_method(options["method"], options["batch_size"])
        del options["method"]
        spec = cls(
            model=model, loss=loss_fn, loss_name=loss_name, optimizer=optimizer,
            resumed=resumed, placement=placement, **options,
        )  # fmt: skip
        start = resumed.state if resumed is not None else init
        if start is not None:
            spec = spec._continuing(start)
        return spec

    def _continuing(self, start: Any) -> FitSpec:
        """This spec continuing from ``start`` (a FitState or a pair (params, opt_state))."""
        if isinstance(start, tuple) and len(start) == 2:
            start = FitState(*start)
        if not isinstance(start, FitState):
            raise DescendTypeError(
                "init must be a FitState (e.g. result.state) or a pair (params, opt_state), got "
                f"{type(start).__name__}"
            )
        if start.weights_seen is not None:
            try:
                total, count = map(float, start.weights_seen)
            except (TypeError, ValueError):
                total = count = -1.0
            if not (np.isfinite(total) and total >= 0 and count >= 0 and count == int(count)):
                raise InputError(
                    "init.weights_seen must be (sum, count) of the sample weights trained on "
                    f"before: a finite sum >= 0 and a whole count >= 0, got {start.weights_seen!r}"
                )
        if self.epochs <= start.n_epochs:
            raise InputError(
                f"epochs counts the {start.n_epochs} epochs already trained when resuming, so "
                f"epochs={self.epochs} leaves none to run; ask for more, e.g. "
                f"epochs={start.n_epochs + self.epochs}"
            )
        # The penalty the run trained with, unless this call names one.
        l2 = start.l2 if self.l2 is None and start.l2 is not None else self.l2
        return replace(self, start=start, l2=l2)

    @property
    def first_epoch(self) -> int:
        """The number (from 0) of the first epoch this run trains."""
        return 0 if self.start is None else self.start.n_epochs

    def batch_size_for(self, n_train: int) -> int:
        """The batch size for ``n_train`` rows: the one rule for every source of rows.

        ``None`` means all rows (batch gradient descent). A batch larger than the data
        is the data, with a :class:`~descend.errors.DescendWarning` saying so.
        """
        if self.batch_size is None:
            return n_train
        if self.batch_size > n_train:
            warnings.warn(
                f"batch_size={self.batch_size} is larger than the {n_train} training samples; "
                f"using {n_train} (batch gradient descent)",
                DescendWarning,
                stacklevel=5,
            )
            return n_train
        return self.batch_size

    def l2_strength(self, n_samples: float | None) -> float:
        """The L2 penalty's strength for ``n_samples`` training rows (``l2="auto"``:
        one over them for descend's models, as
        ``LogisticRegression(C=1)``; none for a custom model, whose weights are not
        known, nor for rows not counted before training, ``n_samples`` None)."""
        if self.l2 not in ("auto", None):  # None: a fresh run's default, "auto"
            return float(self.l2)
        if self.model.name == "custom" or n_samples is None:
            return 0.0
        return 1.0 / float(n_samples)

    def warn_past_horizon(self, updates_per_epoch: int) -> None:
        """Warn when this run can make more updates than its learning-rate schedule covers.

        A schedule runs inside the compiled epochs, where it cannot raise: ``one_cycle``
        past ``total_steps`` would hold its minimum rate, ``cosine_annealing`` past
        ``T_max`` climb back (:func:`descend.optim.schedules.past_horizon`). Checked
        once the updates of an epoch are known, before the run goes past the schedule.
        """
        done = 0 if self.start is None else self.start.n_updates
        epochs = self.epochs - self.first_epoch
        total = done + epochs * updates_per_epoch
        past = optim.schedules.past_horizon(self.optimizer, total)
        if past is None:
            return
        made = f" after the {done} already made" if done else ""
        warn(
            f"fit makes up to {total} updates ({epochs} epochs of {updates_per_epoch} updates"
            f"{made}), more than the learning-rate schedule covers: {past}, or train fewer "
            "epochs"
        )

    def initial_state(self, n_features: int, n_outputs: int) -> FitState:
        """The weights and optimizer state the first epoch starts from, in ``dtype``."""
        if self.start is None:
            # The seed itself: models that start at zero then need no random key.
            params = self.model.init(self.seed, n_features, n_outputs, dtype=self.dtype)
            if self.model.name == "custom":  # the user's own params, in the training dtype
                params = jax.tree.map(lambda leaf: _as_dtype(leaf, self.dtype), params)
            return FitState(params, optim.watch_epochs(self.optimizer.init(params)))
        params = jax.tree.map(lambda leaf: _as_dtype(leaf, self.dtype), self.start.params)
        if self.model.name != "custom":
            _check_fits(self.model, params, n_features, n_outputs, self.dtype)
        # Plateau rules read each epoch's loss in fit, not each batch's (Keras, torch).
        opt_state = optim.watch_epochs(_fitting_state(self.optimizer, params, self.start.opt_state))
        history = {key: list(values) for key, values in (self.start.history or {}).items()}
        best = self.start.best
        if best is not None and best.params is not None:  # in the training dtype, as params
            best = replace(
                best,
                params=jax.tree.map(lambda leaf: _as_dtype(leaf, self.dtype), best.params),
                opt_state=optim.watch_epochs(
                    _fitting_state(self.optimizer, params, best.opt_state)
                ),
            )
        start = self.start
        return FitState(params, opt_state, start.n_epochs, start.n_updates, history, best)


# ---------------------------------------------------------------- resolving names


def _resumed(resume: Any, model: Any, optimizer: Any, lr: Any = None) -> FitResult | None:
    if resume is None or isinstance(resume, FitResult):
        return resume
    from descend.training.saving import UnrebuiltOptimizer, load

    # The file cannot hold a custom model's function or a schedule's: use the ones given.
    # A named model is rebuilt from the file, and then compared with the one given.
    custom = isinstance(model, models.Model) and model.name == "custom"
    kept = model if custom else None
    loaded = load(
        resume, model=kept, optimizer=optimizer if isinstance(optimizer, Optimizer) else None
    )
    if isinstance(loaded.optimizer, UnrebuiltOptimizer) and isinstance(optimizer, str):
        # The file cannot rebuild it (sam, chain, ...): the one named gives its state's form.
        named = optim.get(optimizer) if lr is None else optim.get(optimizer, lr=lr)
        loaded = load(resume, model=kept, optimizer=named)
    return loaded


def _model(model: Any) -> models.Model:
    if isinstance(model, models.Model):
        return model
    if isinstance(model, str):
        return models.get(model)
    raise DescendTypeError(
        f"model must be a descend model (e.g. descend.models.linear()) or a name, got "
        f"{type(model).__name__}"
    )


def _loss(loss: Any, model: models.Model, resumed: FitResult | None):
    if loss is None and resumed is not None:
        if resumed.loss is None:
            raise InputError(
                "the checkpoint was trained with a loss function, which cannot be stored; "
                "pass it again to resume: fit(..., loss=your_loss, resume=...)"
            )
        loss = resumed.loss
    if loss is None:
        loss = model.default_loss
    if isinstance(loss, str):
        return losses.get(loss), loss
    if callable(loss):
        return loss, None
    raise DescendTypeError(f"loss must be a name or a function, got {type(loss).__name__}")


def _optimizer(optimizer: Any, lr: Any, resumed: FitResult | None) -> Optimizer:
    from descend.training.saving import UnrebuiltOptimizer

    if resumed is not None and isinstance(resumed.optimizer, UnrebuiltOptimizer):
        # Its state was kept as stored, with no optimizer to give it its structure.
        raise CheckpointError(resumed.optimizer.message)
    if optimizer is None and resumed is not None:
        if lr is None:
            return resumed.optimizer
        # A new rate for the algorithm being resumed (its state fits no other one).
        try:
            return optim.rebuild(resumed.optimizer, lr=lr)
        except (InputError, TypeError):
            raise InputError(
                f"cannot rebuild {resumed.optimizer!r} with lr={lr!r}; pass the optimizer "
                "with its new learning rate: fit(..., optimizer=..., resume=...)"
            ) from None
    if optimizer is None:
        return default_optimizer(lr)
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


def _batch_size_of_method(method: str, batch_size: int | None) -> int | None:
    if method == "batch":
        return None
    if method == "stochastic":
        return 1
    if batch_size is None:
        raise InputError("method='minibatch' needs a batch_size, e.g. batch_size=32")
    return batch_size


def _early_stopping(callbacks: tuple, options: dict[str, Any]) -> tuple:
    """``callbacks`` without an :class:`~descend.callbacks.EarlyStopping`, whose settings
    become ``options``' ``patience``, ``min_delta`` and ``restore_best`` (checked then
    with the others): the object and the keywords are one rule, given one way."""
    objects = [c for c in callbacks if isinstance(c, callback_objects.EarlyStopping)]
    if not objects:
        return callbacks
    if len(objects) > 1:
        raise InputError(f"callbacks holds {len(objects)} EarlyStopping objects; give one")
    (stopping,) = objects
    defaults = callback_objects.EarlyStopping().settings()
    for name, value in stopping.settings().items():
        if options[name] != defaults[name] and options[name] != value:
            raise InputError(
                f"early stopping is given twice: {name}={options[name]!r} and {stopping!r}; "
                f"give the object, or {name}= alone"
            )
        options[name] = value
    return tuple(c for c in callbacks if c is not stopping)


def _check_stream(stream: Any, options: dict, data_arguments: dict) -> None:
    given = {**options, **data_arguments}
    for name, (default, why) in STREAM_REFUSES.items():
        value = given[name]
        if value is not None if default is None else value != default:
            raise InputError(f"{name} cannot be used with a stream: {why}")
    if np.dtype(options["dtype"]) != stream.dtype:
        raise InputError(
            f"the stream reads {stream.dtype} and fit trains in {options['dtype']}; make them "
            f"the same: fit(..., dtype='{stream.dtype}') or "
            f"ds.data.stream(..., dtype='{options['dtype']}')"
        )


# ---------------------------------------------------------------- continuing a run


def _as_dtype(leaf: Any, dtype: str) -> jax.Array:
    """A saved leaf on the device, floating and complex ones in the training ``dtype``."""
    leaf = np.asarray(leaf)
    inexact = np.issubdtype(leaf.dtype, np.inexact)
    return jnp.asarray(leaf, dtype=leaf_dtype(leaf.dtype, dtype) if inexact else None)


def _check_fits(model: models.Model, params: PyTree, n_features: int, n_outputs: int, dtype):
    """The weights to continue from have the structure and shapes this model needs."""
    needed = jax.eval_shape(lambda: model.init(0, n_features, n_outputs, dtype=dtype))
    have = [np.shape(leaf) for leaf in jax.tree.leaves(params)]
    need = [leaf.shape for leaf in jax.tree.leaves(needed)]
    # mypy cannot resolve jax's PyTreeDef (an alias of a jaxlib extension type).
    if jax.tree.structure(params) != jax.tree.structure(needed) or have != need:  # type: ignore[operator]
        shapes = jax.tree.map(np.shape, params)
        raise InputError(
            f"the weights to continue from (init= or the checkpoint) have shapes "
            f"{shapes}, but {model!r} for {n_features} features and {n_outputs} outputs "
            f"needs {jax.tree.map(lambda s: s.shape, needed)}; continue with the model and "
            "data they were trained on"
        )


def _fitting_state(optimizer: Optimizer, params: PyTree, saved_state: PyTree) -> PyTree:
    """The saved optimizer state in the structure (and dtypes) ``optimizer.init`` builds."""
    template = optimizer.init(params)
    leaves = jax.tree.leaves(saved_state)
    template_leaves, structure = jax.tree.flatten(template)
    if len(template_leaves) != len(leaves) or any(
        np.shape(leaf) != np.shape(like)
        for leaf, like in zip(leaves, template_leaves, strict=False)
    ):
        raise InputError(
            f"the optimizer state to continue from (the checkpoint's, or init=) does not "
            f"fit {optimizer!r}; pass the optimizer it was made with (when resuming a "
            "checkpoint, omitting optimizer= reuses the checkpoint's)"
        )
    return jax.tree.unflatten(
        structure,
        [
            jnp.asarray(leaf, dtype=like.dtype)
            for leaf, like in zip(leaves, template_leaves, strict=True)
        ],
    )


__all__ = ["CONSTRAINTS", "METHODS", "STREAM_REFUSES", "FitSpec"]
