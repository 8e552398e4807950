"""Data sets and objectives shared by the rows, with NumPy references for the checks.

Every tool in a row gets the same NumPy arrays; every tool's result is scored by the
same NumPy function (in float64), so "final loss" means the same thing for all.
"""

from __future__ import annotations

import numpy as np

# The problem every peer solves: the data as given, every epoch asked for, no penalty
# (descend.fit's defaults would standardize, stop early and add l2="auto").
PLAIN = {"standardize": False, "patience": None, "l2": 0.0}


def classification_data(
    n_samples: int, n_features: int, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal float32 features and 0/1 float32 labels from a logistic model.

    The true weights have norm about 2, so the classes overlap and the loss stays away
    from zero (the problem does not become separable).
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features), dtype=np.float32)
    w_true = 2.0 * rng.standard_normal(n_features) / np.sqrt(n_features)
    logits = X @ w_true.astype(np.float32) + 0.5
    y = (rng.random(n_samples) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    return X, y


def regression_data(
    n_samples: int, n_features: int, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal float32 features and a noisy linear float32 target."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features), dtype=np.float32)
    w_true = rng.standard_normal(n_features).astype(np.float32)
    y = X @ w_true + 1.0 + 0.1 * rng.standard_normal(n_samples, dtype=np.float32)
    return X, y.astype(np.float32)


COVERTYPE_SHAPE = (522_911, 54)  # scikit-learn's covertype SGD benchmark: its training split


def covertype_like_data(
    n_samples: int = COVERTYPE_SHAPE[0], *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Data shaped like the forest covertype set as scikit-learn's SGD benchmark uses it.

    The real set (UCI covertype, fetched by ``sklearn.datasets.fetch_covtype``) needs a
    download; this one is generated from ``seed``, with the same layout: 54 float32
    features, of which 10 are continuous (correlated, standardized, as that benchmark
    standardizes them) and 44 are two one-hot groups, 4 wilderness areas and 40 soil
    types of uneven frequency; and 0/1 float32 labels from a logistic model on all of
    them, with about 36% positives (class 1 against the rest is about 36% of covertype).
    """
    rng = np.random.default_rng(seed)
    n_continuous, n_areas, n_soils = 10, 4, 40
    mixing = rng.standard_normal((n_continuous, n_continuous)) / np.sqrt(n_continuous)
    continuous = rng.standard_normal((n_samples, n_continuous)) @ (np.eye(n_continuous) + mixing)
    continuous = (continuous - continuous.mean(axis=0)) / continuous.std(axis=0)
    areas = rng.choice(n_areas, n_samples, p=[0.45, 0.05, 0.44, 0.06])
    soil_weights = rng.gamma(0.5, size=n_soils)
    soils = rng.choice(n_soils, n_samples, p=soil_weights / soil_weights.sum())
    X = np.zeros((n_samples, n_continuous + n_areas + n_soils), dtype=np.float32)
    X[:, :n_continuous] = continuous
    X[np.arange(n_samples), n_continuous + areas] = 1.0
    X[np.arange(n_samples), n_continuous + n_areas + soils] = 1.0
    w_true = np.concatenate(
        [1.5 * rng.standard_normal(n_continuous) / np.sqrt(n_continuous),
         rng.normal(0.0, 1.0, n_areas), rng.normal(0.0, 1.5, n_soils)]
    )  # fmt: skip
    logits = X.astype(np.float64) @ w_true
    logits += np.quantile(-logits, 0.36)  # center so that about 36% are positive
    y = (rng.random(n_samples) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    return X, y


def _chunks(n: int, size: int = 65_536):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def log_loss(X: np.ndarray, y: np.ndarray, w: np.ndarray, b: float) -> float:
    """Mean binary cross-entropy of the logits ``X w + b`` (float64, in chunks)."""
    w = np.asarray(w, dtype=np.float64).ravel()
    total = 0.0
    for rows in _chunks(len(X)):
        z = X[rows].astype(np.float64) @ w + float(b)
        total += float(np.sum(np.logaddexp(0.0, z) - y[rows] * z))
    return total / len(X)


def mean_squared_error(X: np.ndarray, y: np.ndarray, w: np.ndarray, b: float) -> float:
    """Mean of ``(X w + b - y)^2`` (float64, in chunks)."""
    w = np.asarray(w, dtype=np.float64).ravel()
    total = 0.0
    for rows in _chunks(len(X)):
        residual = X[rows].astype(np.float64) @ w + float(b) - y[rows]
        total += float(residual @ residual)
    return total / len(X)


# ------------------------------------------------------------------- minimization problems


def rosenbrock_start(dim: int) -> np.ndarray:
    """The classic start (-1.2, 1, -1.2, 1, ...)."""
    return np.where(np.arange(dim) % 2 == 0, -1.2, 1.0)


def rosenbrock_jax(x):
    """:math:`\\sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2`, in JAX."""
    import jax.numpy as jnp

    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_numpy(x: np.ndarray) -> tuple[float, np.ndarray]:
    """Value and gradient of the Rosenbrock function, written out in NumPy."""
    head, tail = x[:-1], x[1:]
    gap = tail - head**2
    value = float(np.sum(100.0 * gap**2 + (1.0 - head) ** 2))
    grad = np.zeros_like(x)
    grad[:-1] = -400.0 * gap * head - 2.0 * (1.0 - head)
    grad[1:] += 200.0 * gap
    return value, grad


class LogisticObjective:
    """Mean log-loss of logistic regression plus :math:`\\frac{\\alpha}{2}\\lVert w\\rVert^2`.

    The variable is ``theta = (w, b)`` of size ``d + 1``; the intercept is not
    penalized. ``jax_function()`` builds the JAX function, ``numpy(theta)`` the value and
    gradient written out in NumPy (float64 both).
    """

    def __init__(self, n_samples: int, n_features: int, alpha: float = 1e-4, seed: int = 1):
        X, y = classification_data(n_samples, n_features, seed=seed)
        self.X = X.astype(np.float64)
        self.y = y.astype(np.float64)
        self.alpha = alpha
        self.dim = n_features + 1

    def start(self) -> np.ndarray:
        return np.zeros(self.dim)

    def jax_function(self):
        """The objective as a JAX function (call with float64 enabled)."""
        import jax.numpy as jnp

        # Device arrays, made once: jit passes them to the program instead of
        # embedding the data in it as constants.
        X, y, alpha = jnp.asarray(self.X), jnp.asarray(self.y), self.alpha

        def objective(theta):
            z = X @ theta[:-1] + theta[-1]
            data_term = jnp.mean(jnp.logaddexp(0.0, z) - y * z)
            return data_term + 0.5 * alpha * jnp.sum(theta[:-1] ** 2)

        return objective

    def numpy(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        z = self.X @ w + b
        value = np.mean(np.logaddexp(0.0, z) - self.y * z) + 0.5 * self.alpha * (w @ w)
        residual = (0.5 * (1.0 + np.tanh(0.5 * z)) - self.y) / len(z)  # sigmoid(z) - y, / n
        grad = np.empty_like(theta)
        grad[:-1] = self.X.T @ residual + self.alpha * w
        grad[-1] = residual.sum()
        return float(value), grad
