r"""Models: pure ``init`` / ``apply`` pairs over parameter pytrees.

A :class:`Model` is a frozen value, equal and hashable by its settings (``linear() ==
linear()``), so a compiled training step can be cached on it. Its parameters live apart
from it, as a pytree of arrays::

    model = descend.models.mlp(hidden=(32,), task="multiclass")
    params = model.init(jax.random.key(0), n_features=4, n_outputs=3)
    logits = model.apply(params, X)            # X of shape (n_samples, 4)

``apply`` returns raw outputs: values for regression, logits for classifiers (shape
``(n,)`` for binary, ``(n, k)`` for ``k`` classes), which is what ``default_loss`` expects.
:func:`predict` and :func:`predict_proba` turn them into labels and probabilities. Inputs
``X`` are cast to the parameters' dtype, so the parameters set the precision.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from descend._tree import PyTree
from descend.errors import DescendTypeError, InputError, check_int, unknown_name

TASKS = ("regression", "binary", "multiclass")
_DEFAULT_LOSS = {"regression": "mse", "binary": "bce_with_logits", "multiclass": "cross_entropy"}
# torch.nn.GELU's default is the exact (erf) form; jax.nn.gelu defaults to the tanh approximation.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "gelu": partial(jax.nn.gelu, approximate=False),
    "silu": jax.nn.silu,
}


class _ByIdentity:
    """A custom model's params, compared by *which* object the user gave, not by values."""

    __slots__ = ("original", "value")

    def __init__(self, original: PyTree):
        self.original = original
        self.value = jax.tree.map(jnp.asarray, original)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.original is self.original

    def __hash__(self) -> int:
        return id(self.original)


@dataclass(frozen=True)
class Model:
    """A model: how to initialise parameters and how to map inputs to raw outputs.

    Build one with :func:`linear`, :func:`logistic`, :func:`softmax`, :func:`polynomial`,
    :func:`mlp`, :func:`custom` or :func:`get`, not directly.

    Attributes
    ----------
    name:
        The constructor's name (``"linear"``, ..., ``"custom"``).
    task:
        ``"regression"``, ``"binary"`` or ``"multiclass"``.
    default_loss:
        The name of the loss (see :mod:`descend.losses`) that fits the raw outputs.
    options:
        The constructor's settings as ``(name, value)`` pairs.
    """

    name: str
    task: str
    default_loss: str
    options: tuple[tuple[str, Any], ...] = ()
    user_apply: Callable[[PyTree, jax.Array], jax.Array] | None = field(default=None, repr=False)
    user_params: _ByIdentity | None = field(default=None, repr=False)

    def init(
        self,
        key: jax.Array | int | None,
        n_features: int,
        n_outputs: int = 1,
        *,
        dtype: DTypeLike = jnp.float32,
    ) -> PyTree:
        """Initial parameters for ``n_features`` inputs and ``n_outputs`` outputs.

        ``key`` is a ``jax.random`` key or an int seed (ignored by the zero-initialised
        models). ``n_outputs`` is the number of targets for regression, 1 for binary
        classifiers and the number of classes (>= 2) for multiclass ones. ``dtype`` must be
        floating (default float32; float64 needs ``jax.enable_x64``).
        """
        if self.user_params is not None:
            return self.user_params.value
        n_features = check_int("n_features", n_features)
        n_outputs = check_int("n_outputs", n_outputs)
        try:
            floating = jnp.issubdtype(dtype, jnp.floating)
        except TypeError:
            floating = False
        if not floating:
            raise InputError(f"dtype must be a floating dtype such as float32, got {dtype!r}")
        if self.task == "binary" and n_outputs != 1:
            raise InputError(
                f"a binary {self.name} model has one output (a logit), got n_outputs="
                f"{n_outputs}; for {n_outputs} classes use softmax() or task='multiclass'"
            )
        if self.task == "multiclass" and n_outputs < 2:
            raise InputError(
                f"a multiclass {self.name} model needs n_outputs = number of classes >= 2, "
                f"got {n_outputs}"
            )
        if self.name == "polynomial":
            if n_features != 1:
                raise InputError(
                    f"polynomial models take one input feature, got n_features={n_features}; "
                    "build the features yourself and use linear()"
                )
            n_features = self.settings["degree"]
        if self.name == "mlp":
            sizes = (n_features, *self.settings["hidden"], n_outputs)
            return _mlp_init(_as_key(key), sizes, self.settings["activation"], dtype)
        return _affine_zeros(n_features, n_outputs, dtype)

    def apply(self, params: PyTree, X: ArrayLike) -> jax.Array:
        """Raw outputs for inputs ``X`` of shape ``(n_samples, n_features)``.

        Values or logits of shape ``(n,)`` for one output, ``(n, n_outputs)`` otherwise.
        Polynomial models also take ``X`` of shape ``(n,)``.
        """
        if self.user_apply is not None:
            # The engine passes a jax.Array; a direct call passes X as given (not converted,
            # so that its dtype is kept).
            return self.user_apply(params, X)  # type: ignore[arg-type]
        if self.name == "mlp":
            return _mlp_apply(params, X, self.settings["activation"], self.task)
        if self.name == "polynomial":
            X = _powers(X, self.settings["degree"])
        return _affine_apply(params, X)

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.options)

    def config(self) -> dict[str, Any]:
        """A JSON-able description; :func:`from_config` rebuilds the model from it.

        A custom model's config is ``{"name": "custom", "task": ...}``; its function
        cannot be stored, so :func:`from_config` refuses it.
        """
        if self.name == "custom":
            return {"name": "custom", "task": self.task}
        settings = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options}
        return {"name": self.name, **settings}

    def __repr__(self) -> str:
        shown = self.options if self.name != "custom" else (("task", self.task),)
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in shown)})"


# ---------------------------------------------------------------- inner numerics
def _as_key(key) -> jax.Array:
    if isinstance(key, int) and not isinstance(key, bool):
        return jax.random.key(key)
    if key is None:
        raise InputError("mlp models need a random key: init(jax.random.key(0), ...) or a seed")
    return key


def _affine_zeros(n_features: int, n_outputs: int, dtype) -> dict[str, jax.Array]:
    # Zeros: the problems are convex, and scikit-learn's solvers start there too. Made in
    # NumPy and transferred: no small XLA program to compile on the first call.
    shapes = ((n_features,), ()) if n_outputs == 1 else ((n_features, n_outputs), (n_outputs,))
    return {
        name: jax.device_put(np.zeros(shape, dtype))
        for name, shape in zip("wb", shapes, strict=True)
    }


def _features(X, n_features: int, dtype) -> jax.Array:
    X = jnp.asarray(X)
    if X.ndim != 2 or X.shape[1] != n_features:
        hint = "; use X.reshape(-1, 1) for a single feature" if X.ndim == 1 else ""
        raise InputError(
            f"X must have shape (n_samples, {n_features}) for these params, got shape "
            f"{X.shape}{hint}"
        )
    return X.astype(dtype)


def _affine_apply(params: PyTree, X) -> jax.Array:
    if not isinstance(params, Mapping) or set(params) != {"w", "b"}:
        raise InputError("params must be a dict with keys 'w' and 'b', as init() returns")
    w, b = params["w"], params["b"]
    X = _features(X, w.shape[0], w.dtype)
    if w.ndim == 1 and X.shape[0] >= _SUM_ROWS:
        # One output on many rows: a row-wise multiply-and-sum rather than a
        # matrix-vector product. Its gradient, sum(g[:, None] * X, 0), is what XLA on the
        # CPU computes fastest there; the transpose of X @ w takes a slow vector-matrix
        # kernel (1,000,000 x 100 float32: 35 ms for value and gradient instead of 67 ms).
        return jnp.sum(X * w, axis=-1) + b
    return X @ w + b


# Rows from which a one-output model multiplies and sums (see _affine_apply). Measured on
# the CPU (100 features, float32, an SGD update's value and gradient): the product is
# faster below, 1.4 us against 8.0 at 32 rows and 5.1 against 12.8 at 256, even at 4,096
# (264 against 267 us), and under jax.vmap (a sweep's 16 configurations at 32 rows: 15.5
# against 110 us); the sum is faster on 200,000 rows alone (94 against 136 ms).
_SUM_ROWS = 8192


def _powers(X, degree: int) -> jax.Array:
    x = jnp.asarray(X)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        raise InputError(
            f"polynomial models take x of shape (n,) or (n, 1), got shape {x.shape}; "
            "for several features build them yourself and use linear()"
        )
    x = x.astype(jnp.result_type(x, float))
    return jnp.stack([x**power for power in range(1, degree + 1)], axis=1)


def _mlp_init(key, sizes: Sequence[int], activation: str, dtype) -> list[dict[str, jax.Array]]:
    layers = []
    n_layers = len(sizes) - 1
    keys = jax.random.split(key, n_layers)
    for index in range(n_layers):
        fan_in, fan_out = sizes[index], sizes[index + 1]
        hidden = index < n_layers - 1
        # He-uniform where the next function is ReLU-like, Glorot-uniform otherwise.
        if hidden and activation in ("relu", "gelu", "silu"):
            limit = (6.0 / fan_in) ** 0.5
        else:
            limit = (6.0 / (fan_in + fan_out)) ** 0.5
        w = jax.random.uniform(keys[index], (fan_in, fan_out), dtype, -limit, limit)
        layers.append({"w": w, "b": jnp.zeros((fan_out,), dtype)})
    return layers


def _mlp_apply(params: PyTree, X, activation: str, task: str) -> jax.Array:
    if not isinstance(params, Sequence) or not params:
        raise InputError("mlp params must be a list of layer dicts {'w', 'b'}, as init() returns")
    hidden = _features(X, params[0]["w"].shape[0], params[0]["w"].dtype)
    for layer in params[:-1]:
        hidden = ACTIVATIONS[activation](hidden @ layer["w"] + layer["b"])
    out = hidden @ params[-1]["w"] + params[-1]["b"]
    return out[:, 0] if out.shape[1] == 1 and task != "multiclass" else out


# ---------------------------------------------------------------- constructors
def _check_name(kind: str, name: Any, valid) -> None:
    if not isinstance(name, str) or name not in valid:
        raise unknown_name(kind, str(name), valid)


def linear() -> Model:
    r"""Linear regression, :math:`\hat y = X w + b`; default loss ``"mse"``.

    Params ``{"w": (d,), "b": ()}`` for one output, ``{"w": (d, m), "b": (m,)}`` for ``m``;
    zeros at init. As ``torch.nn.Linear`` / scikit-learn's ``LinearRegression``.

    >>> import jax.numpy as jnp
    >>> from descend import models
    >>> model = models.linear()
    >>> params = {"w": jnp.array([2.0]), "b": jnp.array(1.0)}
    >>> model.apply(params, jnp.array([[1.0], [3.0]])).tolist()
    [3.0, 7.0]
    """
    return Model("linear", "regression", "mse")


def logistic() -> Model:
    r"""Logistic regression: logit :math:`z = X w + b`, :math:`P(y=1) = \sigma(z)`.

    ``apply`` returns the logits, shape ``(n,)``; default loss ``"bce_with_logits"``.
    Params as :func:`linear` with one output, zeros at init (scikit-learn's
    ``LogisticRegression`` without penalty).

    >>> from descend import models
    >>> models.logistic().init(None, 3)["w"].shape
    (3,)
    """
    return Model("logistic", "binary", "bce_with_logits")


def softmax() -> Model:
    r"""Multinomial logistic (softmax) regression: logits :math:`Z = X W + b`.

    ``apply`` returns logits ``(n, k)`` for ``k = n_outputs`` classes; default loss
    ``"cross_entropy"``. Params ``{"w": (d, k), "b": (k,)}``, zeros at init.

    >>> from descend import models
    >>> models.softmax().init(None, 3, 4)["w"].shape
    (3, 4)
    """
    return Model("softmax", "multiclass", "cross_entropy")


def polynomial(degree: int) -> Model:
    r"""Polynomial regression in one variable, :math:`\hat y = b + \sum_{j=1}^{p} w_j x^j`.

    ``x`` has shape ``(n,)`` or ``(n, 1)``; the powers :math:`x, \dots, x^p` are built in
    ``apply``. ``degree`` :math:`p` is an integer >= 1. Params ``{"w": (p,), "b": ()}``,
    zeros at init; default loss ``"mse"``. The powers of a large ``x`` differ by orders of
    magnitude and make gradient descent crawl: standardise ``x`` first (mean 0, std 1).

    >>> import jax.numpy as jnp
    >>> from descend import models
    >>> params = {"w": jnp.array([0.0, 1.0]), "b": jnp.array(1.0)}
    >>> models.polynomial(2).apply(params, jnp.array([2.0, 3.0])).tolist()
    [5.0, 10.0]
    """
    return Model("polynomial", "regression", "mse", (("degree", check_int("degree", degree)),))


def mlp(
    hidden: Sequence[int] | int = (64,), activation: str = "relu", task: str = "regression"
) -> Model:
    r"""Multilayer perceptron: :math:`h_0 = X`, :math:`h_{l} = a(h_{l-1} W_l + b_l)`, a
    final affine layer without activation.

    Parameters
    ----------
    hidden:
        Sizes of the hidden layers, each an integer >= 1 (default ``(64,)``); an int is
        one layer; ``()`` gives a linear model.
    activation:
        ``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"gelu"`` (exact, as ``torch.nn.GELU``) or
        ``"silu"``.
    task:
        ``"regression"`` (loss ``"mse"``), ``"binary"`` (one logit, ``"bce_with_logits"``)
        or ``"multiclass"`` (``n_outputs`` logits, ``"cross_entropy"``).

    Notes
    -----
    Params are a list of layer dicts ``{"w": (fan_in, fan_out), "b": (fan_out,)}``. Weights
    start He-uniform, :math:`U(\pm\sqrt{6/\text{fan\_in}})`, in layers followed by relu,
    gelu or silu, Glorot-uniform :math:`U(\pm\sqrt{6/(\text{fan\_in}+\text{fan\_out})})`
    otherwise (tanh, sigmoid, the output layer); biases start at zero (He et al., 2015;
    Glorot & Bengio, 2010).

    Examples
    --------
    >>> from descend import models
    >>> params = models.mlp(hidden=(8,)).init(0, 3)
    >>> [layer["w"].shape for layer in params]
    [(3, 8), (8, 1)]
    """
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise InputError(f"hidden must be a sequence of layer sizes such as (64,), got {hidden!r}")
    hidden = tuple(check_int("hidden layer size", size) for size in hidden)
    _check_name("activation", activation, ACTIVATIONS)
    _check_name("task", task, TASKS)
    options = (("hidden", hidden), ("activation", activation), ("task", task))
    return Model("mlp", task, _DEFAULT_LOSS[task], options)


def custom(
    apply: Callable[[PyTree, jax.Array], jax.Array], params: PyTree, task: str = "regression"
) -> Model:
    """Wrap your own ``apply(params, X) -> outputs`` and its initial ``params``.

    ``init`` returns these ``params`` whatever key and shapes it is given. ``apply`` must
    be a pure JAX function returning raw outputs in the convention of ``task``: values,
    one logit per sample (binary) or ``(n, k)`` logits (multiclass). Two custom models are
    equal when they wrap the same function and the same params object.

    >>> import jax.numpy as jnp
    >>> from descend import models
    >>> model = models.custom(lambda p, X: X[:, 0] * p["scale"], {"scale": jnp.array(2.0)})
    >>> model.apply(model.init(None, 1), jnp.array([[1.0], [2.0]])).tolist()
    [2.0, 4.0]
    """
    if not callable(apply):
        raise DescendTypeError(f"apply must be a function apply(params, X), got {apply!r}")
    _check_name("task", task, TASKS)
    return Model("custom", task, _DEFAULT_LOSS[task], (), apply, _ByIdentity(params))


_CONSTRUCTORS: dict[str, Callable[..., Model]] = {
    "linear": linear,
    "logistic": logistic,
    "softmax": softmax,
    "polynomial": polynomial,
    "mlp": mlp,
}


def names() -> tuple[str, ...]:
    """The model names :func:`get` accepts, sorted."""
    return tuple(sorted(_CONSTRUCTORS))


def get(name: str, **options: Any) -> Model:
    """The model called ``name`` (see :func:`names`) built with ``options``.

    >>> from descend import models
    >>> models.get("polynomial", degree=3) == models.polynomial(3)
    True
    """
    if not isinstance(name, str):
        raise DescendTypeError(f"a model name must be a string, got {name!r}")
    if name not in _CONSTRUCTORS:
        raise unknown_name("model", name, _CONSTRUCTORS)
    constructor = _CONSTRUCTORS[name]
    signature = inspect.signature(constructor)
    try:
        signature.bind(**options)
    except TypeError as error:
        accepted = ", ".join(signature.parameters) or "none"
        raise InputError(f"model {name!r}: {error} (its options: {accepted})") from None
    return constructor(**options)


def from_config(config: Mapping[str, Any]) -> Model:
    """Rebuild a model from :meth:`Model.config`.

    >>> from descend import models
    >>> models.from_config(models.mlp(hidden=(8, 4)).config()) == models.mlp(hidden=(8, 4))
    True
    """
    if not isinstance(config, Mapping) or "name" not in config:
        raise InputError(f"a model config must be a dict with a 'name' key, got {config!r}")
    options = dict(config)
    name = options.pop("name")
    if name == "custom":
        raise InputError(
            "a custom model's function cannot be rebuilt from its config; call "
            "models.custom(apply, params) again and load the saved params into it"
        )
    return get(name, **options)


# ---------------------------------------------------------------- predictions
def _check_model(model: Model) -> None:
    if not isinstance(model, Model):
        raise DescendTypeError(f"model must be a descend Model, got {type(model).__name__}")


def predict(model: Model, params: PyTree, X: ArrayLike) -> jax.Array:
    """Predicted values (regression) or class labels (classifiers) for ``X``.

    Binary: label 1 where the logit is > 0 (probability > 0.5), else 0, as int32. Multiclass:
    the index of the largest logit. As scikit-learn's ``predict``.

    >>> import jax.numpy as jnp
    >>> from descend import models
    >>> params = {"w": jnp.array([1.0]), "b": jnp.array(-1.0)}
    >>> models.predict(models.logistic(), params, jnp.array([[0.0], [3.0]])).tolist()
    [0, 1]
    """
    _check_model(model)
    return predict_from_outputs(model, model.apply(params, X))


def predict_from_outputs(model: Model, outputs: jax.Array) -> jax.Array:
    """:func:`predict` from the model's raw outputs (values, or logits)."""
    if model.task == "regression":
        return outputs
    if model.task == "binary":
        return (jnp.reshape(outputs, (-1,)) > 0).astype(jnp.int32)
    return jnp.argmax(outputs, axis=-1)


def predict_proba(model: Model, params: PyTree, X: ArrayLike) -> jax.Array:
    r"""Class probabilities for ``X``, shape ``(n, 2)`` for binary, ``(n, k)`` for multiclass.

    Binary: columns :math:`(\sigma(-z), \sigma(z))` for logit :math:`z` (scikit-learn's
    column order, classes 0 then 1); multiclass: :math:`\operatorname{softmax}(Z)` by row.

    >>> import jax.numpy as jnp
    >>> from descend import models
    >>> params = {"w": jnp.array([1.0]), "b": jnp.array(0.0)}
    >>> models.predict_proba(models.logistic(), params, jnp.array([[0.0]])).tolist()
    [[0.5, 0.5]]
    """
    _check_model(model)
    if model.task == "regression":
        raise InputError(
            f"predict_proba needs a classifier, but {model!r} is a regression model; "
            "use predict for its values"
        )
    outputs = model.apply(params, X)
    return class_probabilities(jnp.reshape(outputs, (-1,)) if model.task == "binary" else outputs)


def class_probabilities(logits: jax.Array, *, one_vs_rest: bool = False) -> jax.Array:
    r"""Class probabilities from logits: ``(n,)`` (two classes) or ``(n, k)``.

    One logit :math:`z` per row gives the columns :math:`(\sigma(-z), \sigma(z))`
    (classes 0 then 1, scikit-learn's order). ``k`` logits give their softmax, or with
    ``one_vs_rest`` the ``k`` sigmoids normalized to sum to 1 (as scikit-learn's
    ``SGDClassifier`` does for one-vs-rest logistic losses). Returns shape ``(n, 2)``
    or ``(n, k)``.

    >>> import jax.numpy as jnp
    >>> class_probabilities(jnp.array([0.0])).tolist()
    [[0.5, 0.5]]
    """
    logits = jnp.asarray(logits)
    if logits.ndim == 1:
        return jnp.stack([jax.nn.sigmoid(-logits), jax.nn.sigmoid(logits)], axis=1)
    if one_vs_rest:
        probabilities = jax.nn.sigmoid(logits)
        return probabilities / jnp.sum(probabilities, axis=1, keepdims=True)
    return jax.nn.softmax(logits, axis=-1)
