r"""scikit-learn estimators that train by gradient descent with :func:`descend.fit`.

:class:`GDRegressor` and :class:`GDClassifier` follow scikit-learn's estimator contract
(``fit`` / ``partial_fit`` / ``predict`` / ``score``, ``get_params`` / ``set_params``,
``clone``, pickling), so they work in pipelines, grid searches and cross-validation.
Their constructors take descend's choices as plain parameters: the model (linear or
MLP), the loss, the optimizer by name with its learning rate, batch or mini-batch or
stochastic descent, and the stopping rule.

The objective is scikit-learn's ``SGDClassifier`` / ``SGDRegressor`` form, the weighted
mean loss plus an L2 penalty on the weight matrices (not on the biases):

.. math::

    J(\theta) = \frac{\sum_i s_i\, \ell(f_\theta(x_i), y_i)}{\sum_i s_i}
              + \frac{\alpha}{2} \sum_{\text{layers}} \lVert W \rVert_F^2

with sample weights :math:`s_i` (each update divides its rows' weighted loss by their
count times the data's mean weight, so that mini-batches estimate :math:`J`). The
penalty is :func:`descend.fit`'s ``l2``: part of the objective, its gradient
:math:`\alpha W` is added to the loss gradient before the optimizer's step (coupled, as
``weight_decay=`` in ``torch.optim.Adam``) and a line search (``lbfgs``) evaluates
:math:`J` itself, so every optimizer descends :math:`J`. An optimizer's own
``weight_decay`` (``optimizer="adamw"``, or ``optimizer_kwargs={"weight_decay": ...}``)
spares the biases as well (``weight_decay_mask="weights"``, see :mod:`descend.optim`),
unless ``optimizer_kwargs`` gives another ``weight_decay_mask``. The reported losses
(``loss_curve_``) and the stopping rule use the data term only, as ``SGDClassifier``'s
stopping rule does.

Requires scikit-learn >= 1.6: ``pip install "descend[sklearn]"``.

>>> from sklearn.datasets import load_iris
>>> from descend.sklearn import GDClassifier
>>> X, y = load_iris(return_X_y=True)
>>> clf = GDClassifier(learning_rate=0.05, max_epochs=30, tol=None, random_state=0)
>>> clf = clf.fit(X, y)
>>> clf.classes_.tolist(), clf.score(X, y) > 0.9
([0, 1, 2], True)
"""

from __future__ import annotations

try:
    import sklearn
except ImportError as error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        'descend.sklearn needs scikit-learn (>= 1.6): pip install "descend[sklearn]"'
    ) from error

import contextlib
import re
import warnings
from numbers import Integral, Real
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

if tuple(map(int, re.findall(r"\d+", sklearn.__version__)[:2])) < (1, 6):
    raise ImportError(
        f"descend.sklearn needs scikit-learn >= 1.6, found {sklearn.__version__}: "
        'pip install -U "descend[sklearn]"'
    )

from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from descend import models, optim
from descend.data.arrays import Standardizer
from descend.errors import DescendWarning
from descend.training import fit
from descend.training.result import FitResult, FitState

REGRESSION_LOSSES = ("mse", "mae", "huber", "smooth_l1", "log_cosh")
CLASSIFICATION_LOSSES = ("bce_with_logits", "cross_entropy", "hinge", "squared_hinge")
_PROBABILISTIC = (None, "bce_with_logits", "cross_entropy")


class _Scalers(NamedTuple):
    """The standardizations an estimator trains under: of the features, and of a
    regressor's targets (each None when not used)."""

    features: Standardizer | None
    targets: Standardizer | None

    @classmethod
    def fit(cls, X: np.ndarray, targets: np.ndarray | None, sample_weight) -> _Scalers:
        """Weighted by ``sample_weight``, so that a weight equals repeating the row."""
        y = None if targets is None else np.asarray(targets).reshape(len(targets), -1)
        scaled = Standardizer.fit(X, sample_weight=sample_weight)
        return cls(scaled, None if y is None else Standardizer.fit(y, sample_weight=sample_weight))

    def apply(self, X: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(X, targets)`` in the units the model trains in (shapes kept; floating)."""
        if self.features is not None:
            X = np.asarray(self.features.transform(np.asarray(X, np.float64)))
        if self.targets is not None:
            columns = np.asarray(targets, np.float64).reshape(len(targets), -1)
            targets = np.asarray(self.targets.transform(columns)).reshape(np.shape(targets))
        return X, targets

    def fold(self, coefs: list, intercepts: list) -> tuple[list, list]:
        r"""The layers' weights in the data's units: the feature scaling folded into the
        first layer, :math:`W/s` and :math:`b - (\mu/s) W`, the target scaling into the
        last, :math:`W\sigma` and :math:`b\sigma + m` (in float64, then each layer's
        dtype): the same predictions on unscaled data."""
        dtype = coefs[0].dtype
        coefs = [np.asarray(w, np.float64) for w in coefs]
        intercepts = [np.asarray(b, np.float64) for b in intercepts]
        if self.features is not None:
            mean, scale = self.features.mean, self.features.scale
            intercepts[0] = intercepts[0] - (mean / scale) @ coefs[0]
            coefs[0] = coefs[0] / scale[:, None]
        if self.targets is not None:
            mean, scale = self.targets.mean, self.targets.scale
            coefs[-1] = coefs[-1] * scale[None, :]
            intercepts[-1] = intercepts[-1] * scale + mean
        return [w.astype(dtype) for w in coefs], [b.astype(dtype) for b in intercepts]


class _GDBase(BaseEstimator):
    """Parameters, training and prediction shared by the regressor and the classifier."""

    _scales_targets = False  # the regressor standardizes its targets too

    _parameter_constraints: ClassVar[dict] = {
        "model": [StrOptions({"linear", "mlp"})],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(models.ACTIVATIONS))],
        "optimizer": [StrOptions(set(optim.names()))],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "optimizer_kwargs": [dict, None],
        "method": [StrOptions({"batch", "stochastic", "minibatch"}), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "alpha": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "adaptive": ["boolean"],
        "standardize": ["boolean"],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        model="linear",
        hidden_layer_sizes=(100,),
        activation="relu",
        loss=None,
        optimizer="adam",
        learning_rate=0.01,
        optimizer_kwargs=None,
        method=None,
        batch_size=32,
        max_epochs=200,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        alpha="auto",
        adaptive=False,
        standardize=True,
        shuffle=True,
        random_state=None,
        verbose=0,
    ):
        self.model = model
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.optimizer_kwargs = optimizer_kwargs
        self.method = method
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.alpha = alpha
        self.adaptive = adaptive
        self.standardize = standardize
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------ building blocks
    def _build_model(self) -> models.Model:
        if self.model == "linear":
            return models.linear()
        hidden = self.hidden_layer_sizes
        hidden = (hidden,) if isinstance(hidden, Integral) else tuple(int(h) for h in hidden)
        # A regression-task network: the classifier codes its labels itself (see
        # GDClassifier._targets), so every output column is a logit.
        return models.mlp(hidden=hidden, activation=self.activation, task="regression")

    def _build_optimizer(self) -> optim.Optimizer:
        kwargs = dict(self.optimizer_kwargs or {})
        if "lr" in kwargs:
            raise ValueError(
                "give the learning rate as learning_rate=, not in optimizer_kwargs "
                f"(got optimizer_kwargs={self.optimizer_kwargs!r})"
            )
        base = optim.get(self.optimizer, lr=self.learning_rate, **kwargs)
        if "weight_decay" in base.hyperparams and "weight_decay_mask" not in kwargs:
            # The optimizer's own weight decay (adamw's default 1e-2) spares the
            # intercepts too, as SGDClassifier's penalty does.
            base = optim.get(
                self.optimizer, lr=self.learning_rate, **kwargs, weight_decay_mask="weights"
            )
        # Its own stopping tolerances (lbfgs's), left unset, leave the stop to tol.
        base = optim.left_to_tol(base)
        if not self.adaptive:
            return base
        # fit's default rule: the rate cut by 5 after 3 epochs without improvement.
        return optim.reduce_on_plateau(base, factor=0.2, patience=3)

    def _fit_arguments(self, alpha: float) -> dict[str, Any]:
        # alpha's penalty alpha/2 |W|^2 on the weights (not the intercepts) is fit's l2:
        # part of the objective, which a line search (lbfgs's) evaluates too.
        return {
            "l2": alpha,
            "loss": self._loss_name(),
            "optimizer": self._build_optimizer(),
            "batch_size": self.batch_size,
            "method": self.method,
            "shuffle": self.shuffle,
            "verbose": min(int(self.verbose), 2),
        }

    def _loss_name(self):
        return "mse" if self.loss is None else self.loss

    # ------------------------------------------------------------ training
    def _train(self, X, targets, sample_weight, *, incremental: bool):
        dtype = "float32" if X.dtype == np.float32 else "float64"
        continuing = incremental and hasattr(self, "_model")
        if continuing:  # the penalty of the run being continued
            alpha = self._alpha
        else:  # "auto": one over the training rows' weight, as descend.fit's l2
            auto = self.alpha == "auto"
            alpha = 1.0 / float(np.sum(sample_weight)) if auto else float(self.alpha)
        arguments = self._fit_arguments(alpha)
        stopping: dict[str, Any]
        if continuing:
            dtype = self._dtype
            # One more epoch, continuing the run's count, shuffling and history.
            # The weights of the earlier calls' rows count in the mean weight that scales
            # the updates, so that a call's weights count against theirs (as
            # SGDRegressor.partial_fit weighs each step by the row's weight alone).
            seen = getattr(self, "_weights_seen", None)
            start = FitState(
                self._params(), self._opt_state, self.n_iter_, self.t_, self._history,
                weights_seen=seen,
            )  # fmt: skip
            model, seed, epochs = self._model, self._seed, self.n_iter_ + 1
            stopping, scalers = {"patience": None}, self._scalers
        else:
            start, model = None, self._build_model()
            seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            epochs = 1 if incremental else self.max_epochs
            stopping = {"patience": None} if incremental else self._stopping()
            scaled = targets if self._scales_targets else None
            scalers = _Scalers.fit(X, scaled, sample_weight)
            if incremental or not self.standardize:
                scalers = _Scalers(None, None)
        with warnings.catch_warnings():
            # A batch larger than the data is batch gradient descent, as documented.
            warnings.filterwarnings("ignore", "batch_size=", DescendWarning)
            # The estimators scale themselves (folded into coef_): fit does not.
            X_in, targets_in = scalers.apply(X, targets)
            result = fit(
                model, np.asarray(X_in, dtype=dtype), np.asarray(targets_in, dtype=dtype),
                epochs=epochs, seed=seed, sample_weight=sample_weight, dtype=dtype,
                init=start, standardize=False, **stopping, **arguments,
            )  # fmt: skip
        self._store(result, scalers)
        self._alpha: float = alpha
        seen = (0.0, 0) if start is None else (start.weights_seen or (0.0, 0))
        self._weights_seen = (seen[0] + float(np.sum(sample_weight)), seen[1] + len(X))
        losses = result.history.get("loss", np.empty(0))
        if result.status == "diverged":
            warnings.warn(result.reason, ConvergenceWarning, stacklevel=5)
        elif not incremental and len(losses) > 1 and losses[-1] > losses[0]:
            warnings.warn(
                f"the training loss rose from {losses[0]:.6g} to {losses[-1]:.6g} over "
                f"{len(losses)} epochs: the steps are too large; lower learning_rate "
                f"(now {self.learning_rate:g}) or scale the features (e.g. StandardScaler "
                "in a pipeline)",
                ConvergenceWarning,
                stacklevel=5,
            )
        elif not incremental and self.tol is not None and result.status == "max_epochs":
            warnings.warn(
                f"stopped after max_epochs={self.max_epochs} epochs while the loss was still "
                f"improving by more than tol={self.tol:g}; increase max_epochs or the "
                "learning_rate",
                ConvergenceWarning,
                stacklevel=5,
            )
        return self

    def _stopping(self) -> dict[str, Any]:
        """SGDClassifier's rule as fit's patience: stop when the monitored loss has not
        fallen below the best so far by more than tol for n_iter_no_change epochs."""
        if not self.early_stopping:
            if self.tol is None:
                return {"patience": None, "restore_best": False}
            return {
                "patience": self.n_iter_no_change,
                "min_delta": float(self.tol),
                "restore_best": False,
            }
        # As MLPClassifier: the weights of the best validation epoch are kept.
        return {
            "patience": self.n_iter_no_change,
            "min_delta": float(self.tol or 0.0),
            "restore_best": True,
            "validation_split": float(self.validation_fraction),
        }

    def _store(self, result: FitResult, scalers: _Scalers) -> None:
        """Keep the fitted state as NumPy values only, so the estimator pickles."""
        self._model, self._dtype, self._seed = result.model, result.dtype, result.seed
        self._opt_state = jax.tree.map(np.asarray, result.opt_state)
        self._history = {key: np.asarray(values) for key, values in result.history.items()}
        # The weights as trained (standardized units), which partial_fit continues.
        self._trained_params = jax.tree.map(np.asarray, result.params)
        self._scalers = scalers
        params = result.params
        layers = [params] if isinstance(params, dict) else list(params)
        coefs = [np.asarray(layer["w"]).reshape(len(layer["w"]), -1) for layer in layers]
        intercepts = [np.asarray(layer["b"]).reshape(-1) for layer in layers]
        self.coefs_, self.intercepts_ = scalers.fold(coefs, intercepts)
        self.n_iter_ = int(result.n_epochs)
        self.t_ = int(result.n_updates)
        self.loss_curve_ = [float(value) for value in self._history.get("loss", [])]
        val = self._history.get("val_loss")
        self.validation_loss_curve_ = None if val is None else [float(v) for v in val]

    def _params(self):
        """The descend parameter pytree as trained (what partial_fit continues)."""
        return self._trained_params

    def _data_params(self):
        """The descend parameter pytree in the data's units (from coefs_ / intercepts_)."""
        if self._model.name == "mlp":
            return [{"w": w, "b": b} for w, b in zip(self.coefs_, self.intercepts_, strict=True)]
        w, b = self.coefs_[0], self.intercepts_[0]
        return {"w": w[:, 0], "b": b[0]} if w.shape[1] == 1 else {"w": w, "b": b}

    def _outputs(self, X) -> np.ndarray:
        """Raw model outputs (values or logits) for new ``X``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        x64 = self._dtype == "float64"
        with jax.enable_x64(True) if x64 else contextlib.nullcontext():
            params = jax.tree.map(lambda leaf: jnp.asarray(leaf, self._dtype), self._data_params())
            outputs = self._model.apply(params, jnp.asarray(X, self._dtype))
            return np.asarray(outputs)

    def _validate(
        self, X: ArrayLike, y: ArrayLike, *, reset: bool, multi_output: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        return validate_data(
            self, X, y, reset=reset, dtype=[np.float64, np.float32], multi_output=multi_output,
            y_numeric=multi_output,
        )  # fmt: skip

    def _linear_attributes(self) -> None:
        """``coef_`` / ``intercept_`` in scikit-learn's layout for the linear model."""
        if self._model.name == "linear":
            self.coef_ = self.coefs_[0].T.copy()
            self.intercept_ = self.intercepts_[0].copy()


class GDRegressor(RegressorMixin, _GDBase):
    r"""Regression by gradient descent (:func:`descend.fit`) as a scikit-learn estimator.

    Minimizes :math:`\sum_i s_i \ell(f(x_i), y_i) / \sum_i s_i + \tfrac{\alpha}{2}
    \sum \lVert W\rVert^2` (see :mod:`descend.sklearn`) for a linear model
    :math:`f(x) = x^\top w + b` or an MLP. Targets may have several columns.

    Parameters
    ----------
    model : {"linear", "mlp"}, default="linear"
        The model; ``"mlp"`` uses ``hidden_layer_sizes`` and ``activation``.
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Sizes of the MLP's hidden layers (each >= 1).
    activation : {"relu", "tanh", "sigmoid", "gelu", "silu"}, default="relu"
        The MLP's hidden activation.
    loss : {"mse", "mae", "huber", "smooth_l1", "log_cosh"}, callable or None, default=None
        A :mod:`descend.losses` name, or ``loss(predictions, targets)`` returning one
        value per sample; None is ``"mse"``.
    optimizer : str, default="adam"
        A name from :func:`descend.optim.names` (hyperparameters as in ``torch.optim``).
    learning_rate : float > 0, default=0.01
        The optimizer's ``lr`` (``descend.fit``'s default; adam's own is 1e-3).
    optimizer_kwargs : dict or None, default=None
        Other hyperparameters of the optimizer, e.g. ``{"betas": (0.9, 0.99)}``. The
        optimizer's own ``weight_decay`` (``adamw``'s default is ``1e-2``) decays the
        weights and not the intercepts, as ``alpha`` does, unless a
        ``weight_decay_mask`` is given here (``None``: every parameter, as in
        ``torch.optim``).
    method : {"batch", "stochastic", "minibatch"} or None, default=None
        Batch (all samples), stochastic (1) or mini-batch (``batch_size``) descent;
        None decides from ``batch_size``.
    batch_size : int >= 1 or None, default=32
        Samples per update; None (or more than the data) is batch gradient descent.
    max_epochs : int >= 1, default=200
        Passes over the training data in ``fit``.
    tol : float >= 0 or None, default=1e-4
        Stop when the monitored loss (the training loss, or the validation loss with
        ``early_stopping``) has not fallen below the best one so far by more than ``tol``
        for ``n_iter_no_change`` consecutive epochs (``patience`` and ``min_delta`` of
        :func:`descend.fit`). None: run ``max_epochs`` epochs, or with ``early_stopping``
        count any decrease as an improvement.
    n_iter_no_change : int >= 1, default=10
        Epochs without improvement before stopping.
    early_stopping : bool, default=False
        Monitor the loss on a held-out ``validation_fraction`` of the data (and keep
        the weights of its best epoch) instead of the training loss.
    validation_fraction : float in (0, 1), default=0.1
        Share of the data held out when ``early_stopping``.
    alpha : float >= 0 or "auto", default="auto"
        L2 penalty on the weights (not the biases), in the standardized units when
        ``standardize``. ``"auto"``: one over the number of rows given to ``fit`` (or
        to the first ``partial_fit``), ``descend.fit``'s ``l2`` default; with
        ``sample_weight``, one over the weights' sum, as scikit-learn counts a weight as
        the row repeated (``descend.fit`` keeps :math:`1/n`, so that scaling every weight
        changes nothing there): the objective
        of ``LogisticRegression(C=1)`` for the log loss.
    adaptive : bool, default=False
        Cut the learning rate by 5 when the training loss (the validation loss with
        ``early_stopping``) has not improved for 3 epochs
        (:func:`descend.optim.reduce_on_plateau` around the optimizer;
        ``MLPClassifier(learning_rate="adaptive")`` divides by 5 too). ``descend.fit``
        does this by default; the estimators do not, because they keep the last epoch's
        weights (as ``SGDClassifier``) rather than the best one's, and measured on the
        tables of ``benchmarks/defaults.py`` a constant rate ends nearer scikit-learn's
        solution then (digits: within 0.008 over four seeds, against 0.011-0.014).
    standardize : bool, default=True
        ``fit`` trains on standardized features (and, for the regressor, standardized
        targets), as a ``StandardScaler`` in a pipeline (and a
        ``TransformedTargetRegressor``) would; ``coefs_``, ``intercepts_`` and
        predictions are in the data's own units (the scalings are folded into the first
        and last layers). ``partial_fit`` continues in the units of the last ``fit``;
        without one it trains on the data as given, as ``SGDRegressor.partial_fit``.
        The one default that :func:`descend.fit` shares in spirit but not in form:
        scikit-learn's estimators leave scaling to the pipeline, and descend's
        converge on unscaled data only when it is done.
    shuffle : bool, default=True
        Shuffle the rows every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds shuffling, the validation split and the MLP's initial weights.
    verbose : int, default=0
        0 silent; 1 a progress bar on a terminal or in Jupyter, plain lines in a log;
        2 one line per epoch.

    Attributes
    ----------
    coefs_, intercepts_ : list of ndarray
        Weight matrix ``(n_in, n_out)`` and bias ``(n_out,)`` of each layer.
    coef_, intercept_ : ndarray
        For ``model="linear"``: ``(n_features,)`` and ``(1,)`` for one target,
        ``(n_targets, n_features)`` and ``(n_targets,)`` for several.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has column names.
    n_outputs_ : int
        Number of targets.
    n_iter_ : int
        Epochs trained (all ``fit`` / ``partial_fit`` calls since the last ``fit``).
    t_ : int
        Optimizer updates made, as ``SGDRegressor.t_`` counts them.
    loss_curve_ : list of float
        Mean training loss of each epoch (the data term, without the penalty).
    validation_loss_curve_ : list of float or None
        Validation loss of each epoch when ``early_stopping``.

    See Also
    --------
    descend.fit : the training loop itself.
    sklearn.linear_model.SGDRegressor, sklearn.neural_network.MLPRegressor

    Examples
    --------
    >>> import numpy as np
    >>> from descend.sklearn import GDRegressor
    >>> X = np.random.default_rng(0).normal(size=(100, 2))
    >>> y = X @ [1.5, -2.0] + 0.5
    >>> reg = GDRegressor(learning_rate=0.1, method="batch", alpha=0.0,
    ...                   max_epochs=300, tol=None, random_state=0).fit(X, y)
    >>> np.round(reg.coef_, 2).tolist(), np.round(reg.intercept_, 2).tolist()
    ([1.5, -2.0], [0.5])
    """

    _scales_targets = True

    _parameter_constraints: ClassVar[dict] = {
        **_GDBase._parameter_constraints,
        "loss": [StrOptions(set(REGRESSION_LOSSES)), callable, None],
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> GDRegressor:
        """Train from scratch for up to ``max_epochs`` epochs; returns ``self``."""
        X, y = self._validate(X, y, reset=True, multi_output=True)
        return self._fit_targets(X, y, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> GDRegressor:
        """One epoch over ``(X, y)``, continuing from the current weights (if fitted).

        ``sample_weight`` counts against the weights of the rows of this and the earlier
        calls since the last ``fit``: each update is divided by the mean weight of all
        those rows (see :func:`descend.fit`), not by this call's alone, so rows weighted
        10 outweigh rows weighted 0.1 also when they come in different calls (as in
        ``SGDRegressor.partial_fit``, which weighs each step by its row's weight).
        """
        first = not hasattr(self, "_model")
        X, y = self._validate(X, y, reset=first, multi_output=True)
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if not first and n_outputs != self.n_outputs_:
            raise ValueError(
                f"y has {n_outputs} targets; the model was trained on {self.n_outputs_}"
            )
        return self._fit_targets(X, y, sample_weight, incremental=True)

    def _fit_targets(self, X, y, sample_weight, *, incremental):
        sample_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        self._train(X, y, sample_weight, incremental=incremental)
        self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        self._linear_attributes()
        if hasattr(self, "coef_") and self.n_outputs_ == 1:
            self.coef_ = self.coef_[0]
        return self

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predicted values, shape ``(n_samples,)`` or ``(n_samples, n_outputs_)``."""
        return self._outputs(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class GDClassifier(ClassifierMixin, _GDBase):
    r"""Classification by gradient descent (:func:`descend.fit`) as a scikit-learn estimator.

    Two classes train one logit :math:`z = f(x)` (logistic regression for the linear
    model); :math:`k > 2` classes train :math:`k` logits (softmax regression). The
    labels are coded 0/1 (one column per class for :math:`k > 2`) and the loss is
    applied to the logits; the objective is that of :mod:`descend.sklearn`.

    Parameters
    ----------
    loss : {"bce_with_logits", "cross_entropy", "hinge", "squared_hinge"}, callable or \
None, default=None
        None is the log loss: ``"bce_with_logits"`` for two classes,
        ``"cross_entropy"`` (softmax) for more. For two classes ``"cross_entropy"``
        means the same log loss. ``"bce_with_logits"`` with :math:`k > 2` classes is
        one-vs-rest logistic regression; ``"hinge"`` / ``"squared_hinge"`` are (one-vs-rest)
        linear SVMs, without ``predict_proba``. A callable gets the logits and the 0/1
        codes and returns one value per sample.
    model, hidden_layer_sizes, activation, optimizer, learning_rate, optimizer_kwargs, \
method, batch_size, max_epochs, tol, n_iter_no_change, early_stopping, \
validation_fraction, alpha, adaptive, standardize, shuffle, random_state, verbose
        As in :class:`GDRegressor` (``standardize`` scales the features only).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted.
    coef_, intercept_ : ndarray
        For ``model="linear"``: ``(1, n_features)`` and ``(1,)`` for two classes,
        ``(n_classes, n_features)`` and ``(n_classes,)`` for more.
    coefs_, intercepts_, n_features_in_, feature_names_in_, n_iter_, t_, loss_curve_, \
validation_loss_curve_
        As in :class:`GDRegressor`.

    See Also
    --------
    descend.fit : the training loop itself.
    sklearn.linear_model.SGDClassifier, sklearn.neural_network.MLPClassifier

    Examples
    --------
    >>> import numpy as np
    >>> from descend.sklearn import GDClassifier
    >>> X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    >>> clf = GDClassifier(learning_rate=0.1, max_epochs=50, tol=None, random_state=0)
    >>> clf.fit(X, ["no", "no", "yes", "yes"]).predict([[-3.0], [3.0]]).tolist()
    ['no', 'yes']
    """

    _parameter_constraints: ClassVar[dict] = {
        **_GDBase._parameter_constraints,
        "loss": [StrOptions(set(CLASSIFICATION_LOSSES)), callable, None],
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> GDClassifier:
        """Train from scratch for up to ``max_epochs`` epochs; returns ``self``."""
        X, y = self._validate(X, y, reset=True, multi_output=False)
        y = np.asarray(column_or_1d(y, warn=True))
        check_classification_targets(y)
        classes = np.unique(y)
        sample_weight = np.asarray(_check_sample_weight(sample_weight, X, ensure_non_negative=True))
        weighted = np.unique(y[sample_weight > 0])
        if len(classes) < 2 or len(weighted) < 2:
            which = "y has" if len(classes) < 2 else "the samples with sample_weight > 0 have"
            raise ValueError(
                f"{which} only one class ({weighted[0]!r}); a classifier needs samples of at "
                "least two classes"
            )
        return self._fit_classes(X, y, classes, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        classes: ArrayLike | None = None,
        sample_weight: ArrayLike | None = None,
    ) -> GDClassifier:
        """One epoch over ``(X, y)``, continuing from the current weights (if fitted).

        ``classes`` (all the labels the stream will contain) is required on the first
        call, as in ``SGDClassifier.partial_fit``; later calls may omit it.
        ``sample_weight`` counts against the weights of the rows of the earlier calls too
        (see :meth:`GDRegressor.partial_fit`).
        """
        first = not hasattr(self, "_model")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        X, y = self._validate(X, y, reset=first, multi_output=False)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        known = self.classes_ if not first else None
        if classes is not None:
            classes = np.asarray(unique_labels(classes))
            if known is not None and not np.array_equal(classes, known):
                raise ValueError(
                    f"classes={classes.tolist()!r} differs from the classes of earlier "
                    f"calls, {known.tolist()!r}"
                )
            if len(classes) < 2:
                raise ValueError(f"classes has only one class ({classes[0]!r}); give at least two")
        sample_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        classes = known if classes is None else classes
        return self._fit_classes(X, y, classes, sample_weight, incremental=True)

    def _fit_classes(self, X, y, classes, sample_weight, *, incremental):
        codes = np.searchsorted(classes, y)
        unknown = (codes >= len(classes)) | (classes[np.minimum(codes, len(classes) - 1)] != y)
        if np.any(unknown):
            raise ValueError(
                f"y has labels not in classes {classes.tolist()!r}: "
                f"{np.unique(y[unknown]).tolist()[:5]!r}"
            )
        self._n_classes = len(classes)
        # 0/1 codes for one logit, or one-hot rows for k logits.
        targets = codes.astype(np.float64) if len(classes) == 2 else np.eye(len(classes))[codes]
        self._train(X, targets, sample_weight, incremental=incremental)
        self.classes_ = classes
        self._linear_attributes()
        return self

    def _loss_name(self):
        binary = self._n_classes == 2
        if self.loss is None or (binary and self.loss == "cross_entropy"):
            return "bce_with_logits" if binary else "cross_entropy"
        return self.loss

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """Logits: shape ``(n_samples,)`` (of class ``classes_[1]``) for two classes,
        ``(n_samples, n_classes)`` for more."""
        return self._outputs(X)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The label of the largest logit (for two classes: ``classes_[1]`` where z > 0)."""
        outputs = self._outputs(X)
        codes = (outputs > 0).astype(int) if outputs.ndim == 1 else np.argmax(outputs, axis=1)
        return self.classes_[codes]

    def _has_proba(self) -> bool:
        return self.loss in _PROBABILISTIC

    @available_if(_has_proba)
    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        r"""Class probabilities, columns in ``classes_`` order.

        Two classes: :math:`(\sigma(-z), \sigma(z))`; more: the softmax of the logits
        (``"cross_entropy"``), or the one-vs-rest sigmoids normalized to sum to 1
        (``"bce_with_logits"``, as ``SGDClassifier``).
        """
        outputs = self._outputs(X)
        with jax.enable_x64(True) if self._dtype == "float64" else contextlib.nullcontext():
            probabilities = models.class_probabilities(
                jnp.asarray(outputs), one_vs_rest=self.loss == "bce_with_logits"
            )
            return np.asarray(probabilities)

    @available_if(_has_proba)
    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


__all__ = ["GDClassifier", "GDRegressor"]
