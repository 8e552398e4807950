"""Arrays in memory: the feature-matrix checks, standardization and the train /
validation split. (Which rows each batch of an epoch takes is :mod:`descend.data.shuffle`.)"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from descend.data.tables import is_dataframe
from descend.errors import DataError, check_in_range, check_int


def feature_matrix(X: Any) -> np.ndarray:
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


ALIGNMENT = 64


def aligned_array(array: np.ndarray, dtype: Any = None) -> np.ndarray:
    """A copy of ``array`` (as ``dtype``) whose data starts on a 64-byte boundary.

    JAX's CPU client uses such memory in place instead of copying it to the device, so
    the training data is copied once (here) rather than twice. Already aligned arrays of
    the right dtype are returned as they are.
    """
    dtype = np.dtype(array.dtype if dtype is None else dtype)
    if array.dtype == dtype and array.ctypes.data % ALIGNMENT == 0 and array.flags.c_contiguous:
        return array
    size = int(np.prod(array.shape)) * dtype.itemsize
    buffer = np.empty(size + ALIGNMENT, dtype=np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    aligned = buffer[start : start + size].view(dtype).reshape(array.shape)
    np.copyto(aligned, array, casting="unsafe")
    return aligned


def _first_unconvertible(X: np.ndarray) -> tuple[int, int]:
    for (i, j), value in np.ndenumerate(X):
        try:
            float(value)
        except (TypeError, ValueError):
            return i, j
    return 0, 0


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
    def fit(cls, X: Any, sample_weight: Any = None) -> Standardizer:
        """Fit on ``X`` (2-D, finite): returns a new Standardizer.

        ``sample_weight`` (shape ``(n_samples,)``, >= 0, optional) weighs the rows, as
        ``StandardScaler.fit(X, sample_weight=...)``: a row of weight 2 counts as the row
        repeated; the mean and the variance are the weighted ones.
        """
        X = feature_matrix(X).astype(np.float64)
        if not np.isfinite(X).all():
            raise DataError(
                "Standardizer.fit needs finite X; clean it first, for example with "
                "as_arrays(X, y, nan_policy='drop')"
            )
        constant = X.max(axis=0) == X.min(axis=0)
        if sample_weight is not None:
            weights = np.asarray(sample_weight, np.float64)[:, None]
            mean = (weights * X).sum(axis=0) / weights.sum()
            variance = (weights * (X - mean) ** 2).sum(axis=0) / weights.sum()
            return cls(mean, np.where(constant, 1.0, np.sqrt(variance)))
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


def float_targets(y: np.ndarray) -> np.ndarray:
    """Regression targets as float64; complex and non-numeric ones raise ``DataError``."""
    if y.dtype.kind in "biuf":
        return y.astype(np.float64)
    if y.dtype.kind == "c":  # astype would drop the imaginary parts, with only a warning
        raise DataError(
            "y holds complex numbers; the losses compare real numbers: fit the real and "
            "imaginary parts as two outputs, y = np.stack([y.real, y.imag], axis=1) (a "
            "custom model may keep complex params and return z.real and z.imag)"
        )
    try:
        return y.astype(np.float64)
    except (TypeError, ValueError):
        raise DataError(
            f"y has dtype {y.dtype} and cannot become float; for class labels pass "
            "task='binary' or task='multiclass' (with fit: a classifier model such as "
            "'logistic' or 'softmax')"
        ) from None


def as_columns(y: np.ndarray) -> np.ndarray:
    """Targets as a 2-D array, one column per output."""
    return y.reshape(len(y), -1)


def standardized_targets(scaler: Standardizer, y: np.ndarray | None) -> np.ndarray | None:
    """``y`` standardized per output by ``scaler``, in its own shape and dtype (None stays)."""
    if y is None:
        return None
    return np.asarray(scaler.transform(as_columns(y)), dtype=y.dtype).reshape(y.shape)


def distinct_weights(weights: np.ndarray | None) -> np.ndarray | None:
    """Sample weights that weigh a standardization: None without weights or when all are
    equal (then the unweighted statistics, as training drops equal weights)."""
    if weights is None or len(weights) == 0 or np.all(weights == weights[0]):
        return None
    return weights
