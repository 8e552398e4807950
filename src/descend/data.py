"""Data for training: files and arrays checked and turned into float matrices, the
shipped datasets, standardization, a train / validation split and batch indices.

The data layer knows NumPy (and, optionally, pandas and pyarrow); it knows nothing of
optimizers or the training loop.

>>> import descend as ds
>>> iris = ds.data.load_dataset("iris")
>>> iris.X.shape, iris.classes
((150, 4), ('setosa', 'versicolor', 'virginica'))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from descend._tabular import (
    Encoding,
    category_label,
    check_nan_policy,
    column_kind,
    float_dtype,
    handle_nonfinite,
    is_dataframe,
    parse_numbers,
    read_table,
    stray_text_error,
)
from descend.datasets import dataset_names, load_dataset
from descend.errors import DataError, check_in_range, check_int, suggest, unknown_name

TASKS = ("regression", "binary", "multiclass")

__all__ = [
    "ArrayData",
    "Dataset",
    "Encoding",
    "Standardizer",
    "as_arrays",
    "batch_indices",
    "dataset_names",
    "load",
    "load_dataset",
    "n_batches",
    "train_validation_split",
]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features and target read from a table, with the encoding that produced them.

    Attributes
    ----------
    X : numpy.ndarray, shape (n_samples, n_features)
        Float features (one-hot columns included).
    y : numpy.ndarray, shape (n_samples,)
        Float targets, or ``int32`` class codes ``0 … k-1`` when the target is text or
        categorical (then ``classes[y[i]]`` is the label of row ``i``).
    encoding : Encoding
        Column order, categories and classes; ``encoding.features(...)`` applies the same
        encoding to new data and ``encoding.to_dict()`` stores it in a checkpoint.
    """

    X: np.ndarray
    y: np.ndarray
    encoding: Encoding

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.encoding.feature_names

    @property
    def target_name(self) -> str | None:
        return self.encoding.target_name

    @property
    def categories(self) -> dict[str, tuple[str, ...]]:
        return dict(self.encoding.categories)

    @property
    def classes(self) -> tuple | None:
        return self.encoding.classes

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    def __repr__(self) -> str:
        classes = "" if self.classes is None else f", classes={self.classes!r}"
        return (
            f"Dataset(n_samples={self.n_samples}, n_features={self.n_features}, "
            f"target_name={self.target_name!r}{classes})"
        )


def load(
    source: Any,
    *,
    target: str | None = None,
    features: list[str] | None = None,
    categorical: str | list[str] = "auto",
    nan_policy: str = "raise",
    dtype: Any = "float32",
) -> Dataset:
    """Read a table into a :class:`Dataset` of float features and a target.

    Parameters
    ----------
    source : str, os.PathLike or pandas.DataFrame
        A file, its format told by the suffix: ``.csv`` (comma), ``.tsv`` (tab), ``.txt``
        (delimiter sniffed), ``.parquet`` / ``.pq``; the first line of a text file names
        the columns. Parquet files and DataFrames need pandas and pyarrow
        (``pip install "descend[data]"``); without pandas, text files are read with the
        standard :mod:`csv` module.
    target : str, optional
        The target column. Default: the last column.
    features : list of str, optional
        The feature columns, in order. Default: every column but the target.
    categorical : "auto" or list of str, default "auto"
        ``"auto"``: columns of text (or pandas ``category`` dtype) are one-hot encoded.
        A list: exactly these columns are one-hot encoded (numeric codes included), and
        any other column holding text is an error. A text target always becomes classes.
    nan_policy : {"raise", "drop", "impute_mean"}, default "raise"
        What to do with missing cells and ±inf: raise a DataError saying where they are,
        drop their rows, or replace a feature cell with its column's mean over the
        finite cells (a missing target is never imputed: only "drop" accepts it).
    dtype : floating dtype, default "float32"
        dtype of ``X`` (and of ``y`` for a numeric target).

    Returns
    -------
    Dataset
        ``y`` holds ``int32`` codes into ``classes`` (sorted labels, or the declared
        order of a pandas categorical) when the target is text, else floats.

    Notes
    -----
    A categorical column with categories ``c_1 … c_m`` becomes ``m`` columns
    ``x_k = [cell == c_k]`` named ``"column=c_k"``. A column of numbers with some text
    in it (more numbers than text) is taken as a mistake, not as categories: the
    DataError names the column and the first bad row. Rows in messages are numbered as
    a spreadsheet shows the file: the header is row 1, the first sample row 2 (blank
    lines not counted); DataFrame rows are named by their index label.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"size": [1.0, 2.0, 3.0], "color": ["red", "blue", "red"],
    ...                       "price": [10.0, 20.0, 31.0]})
    >>> data = load(frame)
    >>> data.feature_names, data.X.tolist()
    (('size', 'color=blue', 'color=red'), [[1.0, 0.0, 1.0], [2.0, 1.0, 0.0], [3.0, 0.0, 1.0]])
    """
    check_nan_policy(nan_policy)
    dtype = float_dtype(dtype)
    if categorical != "auto":
        if isinstance(categorical, str):
            raise DataError(
                f"categorical must be 'auto' or a list of column names, got {categorical!r}"
            )
        categorical = frozenset(categorical)
    table = read_table(source)
    names = table.names
    target = names[-1] if target is None else str(target)
    if target not in names:
        raise DataError(
            f"target column {target!r} is not in {table.origin}{suggest(target, names)} "
            f"(its columns: {', '.join(names)})"
        )
    features = _check_features(table, features, target, categorical)
    kinds = {name: column_kind(table, name, categorical) for name in features}
    categories = {
        name: table.declared.get(name) or _sorted_labels(table.columns[name])
        for name in features
        if kinds[name] == "categorical"
    }
    y, classes = _target(table, target, categorical)
    encoding = Encoding(tuple(features), categories, target, classes)
    X = encoding.features(table)
    sources = encoding.source_columns()
    X, y = handle_nonfinite(
        X, y, nan_policy, subject=table.origin, row=table.row,
        column=lambda j: f"column {sources[j]!r}",
    )  # fmt: skip
    y = y.astype(np.int32) if classes is not None else y.astype(dtype)
    return Dataset(X.astype(dtype), y, encoding)


def _check_features(table, features, target, categorical) -> list[str]:
    names = table.names
    if features is None:
        features = [name for name in names if name != target]
    else:
        features = [str(name) for name in features]
        for name in features:
            if name not in names:
                raise DataError(
                    f"feature column {name!r} is not in {table.origin}{suggest(name, names)} "
                    f"(its columns: {', '.join(names)})"
                )
        if target in features:
            raise DataError(f"the target {target!r} is also listed in features; remove it")
        if len(set(features)) != len(features):
            raise DataError(f"features lists a column twice: {features}")
    if not features:
        raise DataError(
            f"{table.origin} has no feature columns besides the target {target!r}; a model "
            "needs at least one"
        )
    if categorical != "auto":
        unknown = sorted(set(categorical) - set(features) - {target})
        if unknown:
            raise DataError(f"categorical names columns that are not features: {unknown}")
    return features


def _sorted_labels(values: np.ndarray) -> tuple[str, ...]:
    return tuple(sorted({category_label(v) for v in values if v is not None}))


def _target(table, target: str, categorical) -> tuple[np.ndarray, tuple | None]:
    """The target as floats (NaN where missing), and its classes when it is text."""
    values = table.columns[target]
    listed = categorical != "auto" and target in categorical
    if not listed and table.kinds[target] != "category":
        parsed = parse_numbers(values)
        if len(parsed.text_rows) == 0:
            return parsed.numbers, None
        if parsed.mostly_numeric:
            raise stray_text_error(table, target, parsed, "")
    classes = table.declared.get(target) or _sorted_labels(values)
    position = {label: k for k, label in enumerate(classes)}
    codes = [np.nan if v is None else position[category_label(v)] for v in values]
    return np.asarray(codes, dtype=np.float64), classes


class ArrayData(NamedTuple):
    """Checked arrays: ``X`` (float, 2-D), ``y`` and, for classification, ``classes``."""

    X: np.ndarray
    y: np.ndarray
    classes: np.ndarray | None


def as_arrays(
    X: Any, y: Any, *, task: str | None = None, nan_policy: str = "raise", dtype: Any = "float32"
) -> ArrayData:
    """Check features and labels held in memory and return them as NumPy arrays.

    Parameters
    ----------
    X : array-like, shape (n_samples, n_features)
        NumPy or JAX array, nested lists, or a numeric pandas DataFrame. 1-D input is
        refused (reshape with ``X.reshape(-1, 1)`` for one feature); so are complex and
        text values (use :func:`load` to one-hot encode text columns).
    y : array-like, shape (n_samples,) or (n_samples, n_outputs)
        Targets; 1-D for classification.
    task : {None, "regression", "binary", "multiclass"}, default None
        ``"binary"`` and ``"multiclass"`` encode the labels as in scikit-learn's
        ``LabelEncoder``: ``classes = sorted unique labels`` and ``y[i] = k`` where
        ``classes[k]`` is the label; binary needs exactly two classes, multiclass at
        least two. Otherwise ``y`` is returned as floats.
    nan_policy : {"raise", "drop", "impute_mean"}, default "raise"
        As in :func:`load`; positions in messages are 0-based ``(row, column)``.
    dtype : floating dtype, default "float32"

    Returns
    -------
    ArrayData
        ``(X, y, classes)``: ``y`` is ``int32`` codes and ``classes`` a NumPy array for
        classification, else ``y`` is float and ``classes`` is None.

    Examples
    --------
    >>> X, y, classes = as_arrays([[0.0], [1.0], [2.0]], ["no", "yes", "no"], task="binary")
    >>> y.tolist(), classes.tolist()
    ([0, 1, 0], ['no', 'yes'])
    """
    if task is not None and task not in TASKS:
        raise unknown_name("task", str(task), TASKS)
    check_nan_policy(nan_policy)
    dtype = float_dtype(dtype)
    X = _feature_matrix(X)
    y = np.asarray(y)
    if y.ndim == 0 or y.ndim > 2:
        raise DataError(f"y must be 1-D (one target per row), got shape {y.shape}")
    if len(y) != len(X):
        raise DataError(
            f"X has {len(X)} samples (rows) but y has {len(y)}; they need one target per row"
        )
    classification = task in ("binary", "multiclass")
    if classification and y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if classification and y.ndim != 1:
        raise DataError(f"y must be 1-D labels for task={task!r}, got shape {y.shape}")
    if not classification:
        y = _float_targets(y)
    elif y.dtype.kind in "iub":
        y = y.astype(np.float64)  # lets the NaN check below treat every label dtype alike
    X, y = handle_nonfinite(
        X, y, nan_policy, subject="X", row=lambda i: f"row {i}", column=lambda j: f"column {j}"
    )
    if not classification:
        return ArrayData(X.astype(dtype), y.astype(dtype), None)
    classes, codes = np.unique(y, return_inverse=True)
    if y.dtype.kind == "f" and np.all(classes == np.round(classes)):
        classes = classes.astype(np.int64)
    if len(classes) < 2:
        raise DataError(
            f"y has a single class ({classes.tolist()[0]!r}); {task} classification needs at least "
            "two, so add samples of another class"
        )
    if task == "binary" and len(classes) > 2:
        shown = ", ".join(map(repr, classes[:5].tolist())) + (", ..." if len(classes) > 5 else "")
        raise DataError(
            f"task='binary' needs two classes but y has {len(classes)} ({shown}); "
            "use task='multiclass'"
        )
    return ArrayData(X.astype(dtype), codes.astype(np.int32), classes)


def _feature_matrix(X: Any) -> np.ndarray:
    if is_dataframe(X):
        from pandas.api.types import is_bool_dtype, is_numeric_dtype

        numeric = [is_numeric_dtype(t) or is_bool_dtype(t) for t in X.dtypes]
        if not all(numeric):
            text = [str(c) for c, ok in zip(X.columns, numeric, strict=True) if not ok]
            raise DataError(
                f"X has non-numeric columns {text}; use descend.data.load(frame) to one-hot "
                "encode text columns"
            )
        X = X.to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        X = np.asarray(X)
    except ValueError as error:  # nested lists of unequal length
        raise DataError(f"X is not a rectangular array: {error}") from None
    if X.ndim == 1:
        raise DataError(
            f"X must be 2-D (n_samples, n_features), got 1-D shape {X.shape}; use "
            "X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample"
        )
    if X.ndim != 2:
        raise DataError(
            f"X must be 2-D (n_samples, n_features), got shape {X.shape}; flatten each "
            "sample with X.reshape(len(X), -1)"
        )
    if X.shape[1] == 0:
        raise DataError(f"X has zero features (shape {X.shape}); it needs at least one column")
    if X.shape[0] == 0:
        raise DataError(f"X has no samples (shape {X.shape})")
    if X.dtype.kind == "c":
        raise DataError("X holds complex numbers; use the real and imaginary parts as features")
    if X.dtype.kind in "biuf":
        return X
    try:
        return X.astype(np.float64)
    except (TypeError, ValueError):
        i, j = _first_unconvertible(X)
        raise DataError(
            f"X has dtype {X.dtype} and cannot become float: entry (row {i}, column {j}) is "
            f"{X[i, j]!r}; convert or encode it (descend.data.load one-hot encodes text)"
        ) from None


def _first_unconvertible(X: np.ndarray) -> tuple[int, int]:
    for (i, j), value in np.ndenumerate(X):
        try:
            float(value)
        except (TypeError, ValueError):
            return i, j
    return 0, 0


def _float_targets(y: np.ndarray) -> np.ndarray:
    if y.dtype.kind in "biuf":
        return y.astype(np.float64)
    try:
        return y.astype(np.float64)
    except (TypeError, ValueError):
        raise DataError(
            f"y has dtype {y.dtype} and cannot become float; for class labels pass "
            "task='binary' or task='multiclass'"
        ) from None


@dataclass(frozen=True, eq=False)
class Standardizer:
    """Per-feature standardization ``z = (x - mean) / scale``.

    ``mean`` and ``scale`` are the column means and population standard deviations
    (ddof = 0) of the data it was fitted on; a constant column gets ``scale = 1`` so
    it maps to 0 instead of dividing by zero. Matches scikit-learn's
    ``StandardScaler``. Works on NumPy and JAX arrays (inside ``jit`` too).

    Examples
    --------
    >>> scaler = Standardizer.fit([[1.0, 5.0], [3.0, 5.0]])
    >>> scaler.transform(np.array([[1.0, 5.0]])).tolist()
    [[-1.0, 0.0]]
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: Any) -> Standardizer:
        """Fit on ``X`` (2-D, finite): returns a new Standardizer."""
        X = _feature_matrix(X).astype(np.float64)
        if not np.isfinite(X).all():
            raise DataError(
                "Standardizer.fit needs finite X; clean it first, for example with "
                "as_arrays(X, y, nan_policy='drop')"
            )
        constant = X.max(axis=0) == X.min(axis=0)
        return cls(X.mean(axis=0), np.where(constant, 1.0, X.std(axis=0)))

    def _parameters(self, X):
        dtype = X.dtype if jnp.issubdtype(X.dtype, jnp.floating) else np.float64
        return np.asarray(self.mean, dtype), np.asarray(self.scale, dtype)

    def transform(self, X: Any) -> Any:
        X = X if isinstance(X, jax.Array) else np.asarray(X)
        mean, scale = self._parameters(X)
        return (X - mean) / scale

    def inverse_transform(self, Z: Any) -> Any:
        Z = Z if isinstance(Z, jax.Array) else np.asarray(Z)
        mean, scale = self._parameters(Z)
        return Z * scale + mean

    def to_dict(self) -> dict:
        """``{"mean": [...], "scale": [...]}`` (JSON-able, exact float64 round trip)."""
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Standardizer:
        try:
            mean = np.asarray(data["mean"], dtype=np.float64)
            scale = np.asarray(data["scale"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"not a Standardizer dict (from to_dict): {error!r}") from None
        if mean.shape != scale.shape or mean.ndim != 1 or np.any(scale <= 0):
            raise DataError("a Standardizer dict needs 'mean' and positive 'scale' of one length")
        return cls(mean, scale)


def train_validation_split(X: Any, y: Any, fraction: float = 0.2, seed: int = 0) -> tuple:
    """Split samples into a training and a validation part, reproducibly.

    The rule: ``perm = numpy.random.default_rng(seed).permutation(n_samples)``;
    the first ``ceil(fraction * n_samples)`` entries of ``perm`` are the validation
    rows, the others the training rows; each part keeps the original row order.
    (scikit-learn's ``train_test_split`` also rounds the held-out size up.)

    Parameters
    ----------
    X, y : array-like with the same first dimension
    fraction : float in (0, 1), default 0.2
        Share of the samples held out for validation. Both parts must be non-empty.
    seed : int >= 0, default 0

    Returns
    -------
    X_train, X_val, y_train, y_val : numpy.ndarray (scikit-learn's order)

    Examples
    --------
    >>> X_train, X_val, y_train, y_val = train_validation_split(np.eye(5), np.arange(5), 0.4)
    >>> len(X_train), len(X_val)
    (3, 2)
    """
    fraction = check_in_range("fraction", fraction, 0.0, 1.0)
    if fraction == 0.0:
        raise DataError("fraction must be in (0, 1), got 0.0; use fraction > 0")
    seed = check_int("seed", seed, minimum=0)
    X, y = np.asarray(X), np.asarray(y)
    n_samples = len(X)
    if len(y) != n_samples:
        raise DataError(f"X has {n_samples} samples (rows) but y has {len(y)}")
    n_validation = math.ceil(fraction * n_samples)
    if not 0 < n_validation < n_samples:
        raise DataError(
            f"fraction={fraction} of {n_samples} samples leaves an empty part; "
            "use more samples or another fraction"
        )
    perm = np.random.default_rng(seed).permutation(n_samples)
    validation = np.sort(perm[:n_validation])
    train = np.sort(perm[n_validation:])
    return X[train], X[validation], y[train], y[validation]


def n_batches(n_samples: int, batch_size: int, *, drop_last: bool = False) -> int:
    """Batches per epoch: ``ceil(n_samples / batch_size)`` (``floor`` with drop_last)."""
    n_samples = check_int("n_samples", n_samples)
    batch_size = _check_batch_size(batch_size, n_samples)
    return n_samples // batch_size if drop_last else -(-n_samples // batch_size)


def _check_batch_size(batch_size: int | None, n_samples: int) -> int:
    if batch_size is None:
        return n_samples
    batch_size = check_int("batch_size", batch_size)
    if batch_size > n_samples:
        raise DataError(
            f"batch_size={batch_size} is larger than the number of samples ({n_samples}); "
            "use batch_size=None for full-batch gradient descent"
        )
    return batch_size


def batch_indices(
    n_samples: int, batch_size: int | None, *, key: jax.Array | None = None, drop_last: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Row indices of each batch of one epoch, as one ``(n_batches, batch_size)`` array.

    With ``key``, the rows are a fresh permutation ``jax.random.permutation(key, n)``
    (sampling without replacement, as ``torch.utils.data.DataLoader(shuffle=True)``);
    without, they are in order. Every batch has the same shape, so one compiled step
    serves the whole epoch (a ``lax.scan`` over the rows of ``indices``): the last,
    short batch is padded with repeats of the first rows of the epoch, marked False in
    ``mask``. Weight per-sample losses by ``mask`` (``sum(mask * loss) / sum(mask)``).
    ``drop_last=True`` drops the short batch instead, as in PyTorch. ``batch_size=None``
    is one batch of all samples. The function is jit-able with static sizes.

    Returns
    -------
    indices : int32 array, shape (n_batches, batch_size)
    mask : bool array, shape (n_batches, batch_size)

    Examples
    --------
    >>> indices, mask = batch_indices(5, 2)
    >>> indices.tolist(), mask.tolist()
    ([[0, 1], [2, 3], [4, 0]], [[True, True], [True, True], [True, False]])
    """
    count = n_batches(n_samples, batch_size, drop_last=drop_last)
    batch_size = _check_batch_size(batch_size, n_samples)
    order = jnp.arange(n_samples, dtype=jnp.int32)
    if key is not None:
        order = jax.random.permutation(key, order)
    padded = count * batch_size
    position = jnp.arange(padded)
    indices = order[position % n_samples].reshape(count, batch_size)
    mask = (position < n_samples).reshape(count, batch_size)
    return indices, mask
