"""fit(): batch, stochastic and mini-batch descent against live oracles.

Least squares from ``numpy.linalg.lstsq``; classifiers from scikit-learn; one epoch of
plain SGD from a NumPy loop and one of Adam from ``torch.optim.Adam``; batch counts
from ``torch.utils.data.DataLoader``; metrics from ``sklearn.metrics``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest
import scipy.special
import torch
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import StandardScaler

import descend as ds
from descend import engine, models
from descend.errors import DataError, DescendTypeError, DescendWarning, InputError
from descend.optim import schedules
from descend.training.objective import BatchObjective

TRUE_W = np.array([1.5, -0.5, 2.0])


# Tests share settings (and data shapes) where they can, so that one compiled epoch
# serves several of them.
SMALL = dict(optimizer="sgd", lr=0.05, batch_size=8, shuffle=False, dtype="float64", verbose=0)
# The plain problem an oracle solves: the data as given (no standardized features or
# targets), no early stopping, no L2 penalty.
PLAIN = dict(standardize=False, patience=None, l2=0.0)
BATCH_GD = dict(
    optimizer="sgd",
    lr=0.5,
    batch_size=None,
    standardize=True,
    dtype="float64",
    l2=0.0,
    patience=None,
)  # least squares with standardized features and targets: no penalty, no early stop


def regression_data(n=120, seed=0, noise=0.5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) * [1.0, 3.0, 0.5] + [1.0, -2.0, 0.0]
    y = X @ TRUE_W + 3.0 + noise * rng.normal(size=n)
    return X, y


def lstsq_coef(X, y):
    """Least-squares ``(w, b)`` with an intercept column, as one vector."""
    return np.linalg.lstsq(np.c_[X, np.ones(len(X))], y, rcond=None)[0]


def coef(params, standardizer=None, target=None):
    """``(w, b)`` of a linear model in the original feature space (and, with the
    ``target`` standardizer of a regression, the original target units)."""
    w, b = np.asarray(params["w"], float), float(params["b"])
    if standardizer is not None:
        w, b = w / standardizer.scale, b - np.sum(w * standardizer.mean / standardizer.scale)
    if target is not None:
        w, b = w * target.scale[0], b * target.scale[0] + target.mean[0]
    return np.r_[w, b]


def relative_error(estimate, reference):
    return np.linalg.norm(estimate - reference) / np.linalg.norm(reference)


def split_dataset(name, seed=0):
    data = ds.data.load_dataset(name)
    return ds.data.train_validation_split(data.X, data.y, 0.25, seed=seed)


# Each shipped classification set and its linear model, trained by batch descent.
CLASSIFIERS = {"breast_cancer": "logistic", "digits": "softmax", "iris": "softmax"}
# The penalty is regularized_adam's (scikit-learn's); all 300 epochs are run.
CLASSIFIER_SETTINGS = dict(
    batch_size=None, epochs=300, standardize=True, l2=0.0, patience=None, verbose=0
)


def regularized_adam(lr, n_samples):
    # scikit-learn's LogisticRegression minimises C * sum(loss) + |w|^2 / 2 (C = 1): the
    # mean loss plus |w|^2 / (2n), i.e. an L2 weight decay of 1/n on its gradient.
    return ds.optim.adam(lr=lr, weight_decay=1.0 / n_samples)


@pytest.fixture(scope="module")
def trained_classifiers():
    """Each shipped classification set: its split and a model trained as scikit-learn's."""
    trained = {}
    for name, model in CLASSIFIERS.items():
        X_train, X_val, y_train, y_val = split_dataset(name)
        optimizer = regularized_adam(0.05, len(X_train))
        result = ds.fit(model, X_train, y_train, optimizer=optimizer, **CLASSIFIER_SETTINGS)
        trained[name] = (X_train, X_val, y_train, y_val, result)
    return trained


def leaves_equal(a, b):
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


# ---------------------------------------------------------------- convergence


@pytest.mark.parametrize(
    ("optimizer", "lr"), [("sgd", 0.5), ("gd", None)], ids=["sgd-fixed-lr", "gd-line-search"]
)
def test_batch_gradient_descent_reaches_the_least_squares_solution(optimizer, lr):
    X, y = regression_data()
    settings = {**BATCH_GD, "optimizer": optimizer, "lr": lr}
    result = ds.fit("linear", X, y, epochs=2000, tol=1e-11, verbose=0, **settings)
    assert result.status == "converged", result.reason
    expected = lstsq_coef(X, y)
    assert (
        relative_error(
            coef(result.params, result.standardizer, result.target_standardizer), expected
        )
        < 1e-6
    )
    np.testing.assert_allclose(result.predict(X), np.c_[X, np.ones(len(X))] @ expected, rtol=1e-6)
    assert result.n_updates == result.n_epochs


@pytest.mark.parametrize(
    ("batch_size", "lr", "epochs"),
    [
        (16, schedules.inverse_scaling(0.1, power_t=0.5), 60),
        (1, lambda count: 0.05 / (1 + count * 1e-2), 40),
    ],
    ids=["minibatch-inverse-scaling", "stochastic-callable-decay"],
)
def test_minibatch_and_stochastic_descent_with_decaying_lr_approach_least_squares(
    batch_size, lr, epochs
):
    X, y = regression_data()
    result = ds.fit(
        "linear", X, y, optimizer="sgd", lr=lr, batch_size=batch_size, epochs=epochs,
        standardize=True, dtype="float64", seed=1, verbose=0,
    )  # fmt: skip
    assert (
        relative_error(
            coef(result.params, result.standardizer, result.target_standardizer), lstsq_coef(X, y)
        )
        < 1e-2
    )
    assert result.history["lr"][-1] < result.history["lr"][0]  # the rate did decay


# ---------------------------------------------------------------- update counts


@pytest.mark.parametrize(
    ("n_samples", "batch_size", "drop_last", "accumulate"),
    [
        (20, 4, False, 1),
        (21, 4, False, 1),
        (21, 4, True, 1),
        (23, 5, False, 2),
        (23, 5, True, 3),
    ],
)
def test_each_epoch_makes_one_update_per_batch_group(n_samples, batch_size, drop_last, accumulate):
    X, y = regression_data(n_samples)
    epochs = 2
    result = ds.fit(
        "linear", X, y, optimizer="sgd", lr=0.01, batch_size=batch_size, drop_last=drop_last,
        accumulate=accumulate, epochs=epochs, shuffle=False, verbose=0,
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(range(n_samples), batch_size, drop_last=drop_last)
    assert result.n_updates == epochs * math.ceil(len(loader) / accumulate)
    assert result.n_epochs == epochs


@pytest.mark.parametrize(
    ("method", "updates_per_epoch"), [("batch", 1), ("stochastic", 17), ("minibatch", 5)]
)
def test_methods_make_one_n_or_ceil_n_over_b_updates(method, updates_per_epoch):
    X, y = regression_data(17)
    result = ds.fit(
        "linear", X, y, method=method, batch_size=4, epochs=3, optimizer="sgd", lr=0.01,
        shuffle=False, verbose=0,
    )  # fmt: skip
    assert result.n_updates == 3 * updates_per_epoch


@pytest.mark.parametrize(("shuffle", "drop_last"), [(True, False), (False, True)])
def test_accumulating_k_batches_equals_one_batch_k_times_larger(shuffle, drop_last):
    X, y = regression_data(50)
    common = dict(
        optimizer="adam", lr=0.05, epochs=4, shuffle=shuffle, drop_last=drop_last, seed=3,
        dtype="float64", verbose=0,
    )  # fmt: skip
    accumulated = ds.fit("linear", X, y, batch_size=4, accumulate=3, **common)
    large = ds.fit("linear", X, y, batch_size=12, accumulate=1, **common)
    assert accumulated.n_updates == large.n_updates
    np.testing.assert_allclose(coef(accumulated.params), coef(large.params), rtol=1e-12)
    np.testing.assert_allclose(accumulated.history["loss"], large.history["loss"], rtol=1e-12)


def numpy_sgd_epoch(X, y, w, b, lr, batch_size, weights=None, drop_last=False):
    """One epoch of plain SGD on the mean squared error of ``X @ w + b``, rows in order.

    Each batch's weighted sums are divided by its rows times the mean weight of all the
    rows (scikit-learn's SGD weighs a row's step by its weight). Returns the new
    ``(w, b)`` and the epoch's loss (sample-weighted mean of each batch's loss before
    its update).
    """
    weights = np.ones(len(X)) if weights is None else weights
    stop = len(X) - len(X) % batch_size if drop_last else len(X)
    loss_total = weight_total = 0.0
    for start in range(0, stop, batch_size):
        rows = slice(start, min(start + batch_size, stop))
        Xb, yb, wb = X[rows], y[rows], weights[rows]
        residual = Xb @ w + b - yb
        loss_total += np.sum(wb * residual**2)
        weight_total += np.sum(wb)
        denominator = len(wb) * np.mean(weights)
        grad_w = 2 * Xb.T @ (wb * residual) / denominator
        grad_b = 2 * np.sum(wb * residual) / denominator
        w, b = w - lr * grad_w, b - lr * grad_b
    return w, b, loss_total / weight_total


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_epoch_matches_numpy_sgd_with_the_short_last_batch(drop_last, weighted):
    X, y = regression_data(23)
    weights = np.random.default_rng(5).uniform(0.2, 2.0, len(X)) if weighted else None
    result = ds.fit(
        "linear", X, y, optimizer="sgd", lr=0.01, batch_size=5, epochs=2, shuffle=False,
        drop_last=drop_last, sample_weight=weights, dtype="float64", verbose=0, **PLAIN,
    )  # fmt: skip
    w, b, losses = np.zeros(3), 0.0, []
    for _ in range(2):
        w, b, loss = numpy_sgd_epoch(X, y, w, b, 0.01, 5, weights, drop_last)
        losses.append(loss)
    np.testing.assert_allclose(coef(result.params), np.r_[w, b], rtol=1e-10)
    np.testing.assert_allclose(result.history["loss"], losses, rtol=1e-10)
    assert result.n_updates == 2 * (4 if drop_last else 5)


def test_one_epoch_of_minibatch_adam_matches_torch():
    data = ds.data.load_dataset("breast_cancer")
    X = StandardScaler().fit_transform(data.X.astype(np.float64))
    y = data.y.astype(np.float64)
    batch_size, lr = 64, 0.01  # 569 rows: 8 full batches and one of 57
    result = ds.fit(
        "logistic", X, y, optimizer="adam", lr=lr, batch_size=batch_size, epochs=1,
        shuffle=False, dtype="float64", verbose=0, **PLAIN,
    )  # fmt: skip
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    adam = torch.optim.Adam([w, b], lr=lr)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    for start in range(0, len(X), batch_size):
        adam.zero_grad()
        logits = X_t[start : start + batch_size] @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, y_t[start : start + batch_size]
        )
        loss.backward()
        adam.step()
    np.testing.assert_allclose(result.params["w"], w.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.params["b"], b.item(), rtol=1e-10, atol=1e-12)
    assert result.n_updates == 9


# ---------------------------------------------------------------- reproducibility


IRIS_MLP = dict(batch_size=16, lr=0.01, standardize=True, verbose=0)


def test_same_seed_gives_bit_identical_weights_and_another_seed_does_not():
    data = ds.data.load_dataset("iris")
    model = models.mlp(hidden=(6,), task="multiclass")

    def train(seed):
        return ds.fit(model, data, epochs=2, seed=seed, **IRIS_MLP)

    first, again, other = train(0), train(0), train(1)
    assert leaves_equal(first.params, again.params)
    assert first.history["loss"].tolist() == again.history["loss"].tolist()
    assert not np.array_equal(first.params[0]["w"], other.params[0]["w"])


@pytest.mark.parametrize("through", ["result", "file"])
def test_five_plus_five_resumed_epochs_equal_ten(through, tmp_path):
    data = ds.data.load_dataset("iris")
    model = models.mlp(hidden=(6,), task="multiclass")
    common = dict(seed=4, optimizer="adam", **IRIS_MLP)  # lr= rebuilds it when resuming
    ten = ds.fit(model, data, epochs=10, **common)
    five = ds.fit(model, data, epochs=5, **common)
    if through == "file":
        ds.save(tmp_path / "five.ckpt", five)
        five = tmp_path / "five.ckpt"
    resumed = ds.fit(model, data, epochs=10, resume=five, **common)
    assert leaves_equal(resumed.params, ten.params)
    assert leaves_equal(resumed.opt_state, ten.opt_state)
    assert (resumed.n_epochs, resumed.n_updates) == (ten.n_epochs, ten.n_updates)
    for key in ("epoch", "loss", "accuracy", "grad_norm", "lr"):
        np.testing.assert_array_equal(resumed.history[key], ten.history[key])


def test_resuming_a_float64_result_keeps_float64():
    X, y = regression_data(30)
    ten = ds.fit("linear", X, y, epochs=4, **SMALL)
    five = ds.fit("linear", X, y, epochs=2, **SMALL)
    resumed = ds.fit("linear", X, y, epochs=4, resume=five, **{**SMALL, "dtype": None})
    assert resumed.dtype == "float64" and resumed.params["w"].dtype == np.float64
    assert leaves_equal(resumed.params, ten.params)


def test_resuming_keeps_the_loss_and_lr_alone_changes_only_the_rate():
    X, y = regression_data(30)
    common = dict(batch_size=8, shuffle=False, dtype="float64", verbose=0)
    four = ds.fit("linear", X, y, loss="huber", optimizer="sgd", lr=0.05, epochs=4, **common)
    two = ds.fit("linear", X, y, loss="huber", optimizer="sgd", lr=0.05, epochs=2, **common)
    resumed = ds.fit("linear", X, y, epochs=4, resume=two, **common)
    assert resumed.loss == "huber" and leaves_equal(resumed.params, four.params)
    with pytest.raises(InputError, match="2 epochs already trained"):
        ds.fit("linear", X, y, epochs=2, resume=two, **common)
    with pytest.raises(InputError, match="holds a linear\\(\\) model, not polynomial"):
        ds.fit(models.polynomial(3), X[:, :1], y, epochs=4, resume=two, **common)
    slower = ds.fit("linear", X, y, epochs=4, lr=0.01, resume=two, **common)
    assert slower.optimizer == ds.optim.sgd(lr=0.01)
    np.testing.assert_allclose(slower.history["lr"][2:], 0.01)


# ---------------------------------------------------------------- sample weights, validation


def test_integer_sample_weights_equal_repeated_rows():
    X, y = regression_data(20)
    counts = np.random.default_rng(1).integers(1, 4, len(X))
    # Standardized with the weights (features and targets), as the repeated rows are; no
    # penalty: l2="auto" is 1/n of the rows given, whatever their weights.
    common = dict(
        optimizer="sgd", lr=0.02, batch_size=None, epochs=5, dtype="float64", verbose=0,
        standardize=True, patience=None, l2=0.0,
    )  # fmt: skip
    weighted = ds.fit("linear", X, y, sample_weight=counts, **common)
    repeated = ds.fit("linear", np.repeat(X, counts, 0), np.repeat(y, counts), **common)
    for scaler in ("standardizer", "target_standardizer"):
        left, right = getattr(weighted, scaler), getattr(repeated, scaler)
        np.testing.assert_allclose(left.mean, right.mean, rtol=1e-12)
        np.testing.assert_allclose(left.scale, right.scale, rtol=1e-12)
    np.testing.assert_allclose(
        coef(weighted.params, weighted.standardizer, weighted.target_standardizer),
        coef(repeated.params, repeated.standardizer, repeated.target_standardizer),
        rtol=1e-12,
    )
    np.testing.assert_allclose(weighted.history["loss"], repeated.history["loss"], rtol=1e-12)


def test_rows_dropped_for_missing_values_drop_their_sample_weights():
    X, y = regression_data(32)
    weights = np.random.default_rng(3).uniform(0.5, 2.0, len(X))
    X[[4, 17], [0, 2]] = np.nan
    keep = np.isfinite(X).all(axis=1)
    dropped = ds.fit("linear", X, y, sample_weight=weights, nan_policy="drop", epochs=2, **SMALL)
    clean = ds.fit("linear", X[keep], y[keep], sample_weight=weights[keep], epochs=2, **SMALL)
    assert leaves_equal(dropped.params, clean.params)


def test_weighted_least_squares_matches_scikit_learn():
    X, y = regression_data()
    weights = np.random.default_rng(2).uniform(0.1, 3.0, len(X))
    result = ds.fit(
        "linear", X, y, sample_weight=weights, epochs=2000, tol=1e-11, verbose=0, **BATCH_GD
    )
    reference = LinearRegression().fit(X, y, sample_weight=weights)
    expected = np.r_[reference.coef_, reference.intercept_]
    assert (
        relative_error(
            coef(result.params, result.standardizer, result.target_standardizer), expected
        )
        < 1e-6
    )


# ---------------------------------------------------------------- weights in every update


def two_populations(n=200, seed=0):
    """Rows of two linear laws in that order: the first half weighted about 10, the
    second about 0.1. Weighted least squares follows the first law; least squares
    without weights (as when each batch divides by its own weight sum) neither."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) * [1.0, 3.0, 0.5] + [1.0, -2.0, 0.0]
    heavy = np.arange(n) < n // 2
    y = np.where(heavy, X @ TRUE_W + 3.0, X @ -TRUE_W - 1.0) + 0.5 * rng.normal(size=n)
    weights = np.where(heavy, 10.0, 0.1) * rng.uniform(0.5, 1.5, n)
    return X, y, weights


def weighted_lstsq(X, y, weights):
    """Weighted least-squares ``(w, b)``: ``lstsq`` on the rows scaled by sqrt(weights)."""
    scale = np.sqrt(weights)
    return np.linalg.lstsq(np.c_[X, np.ones(len(X))] * scale[:, None], y * scale, rcond=None)[0]


DECAYING = schedules.inverse_scaling(0.2, power_t=0.75)

# Each way to cut the rows into updates, and how close it gets to weighted least squares
# (measured with standardized features and targets: 2e-13 batch, 4.5e-4 - 1.4e-3
# mini-batch, 2e-4 stochastic; earlier, with standardized features only: 5e-14 batch,
# 2.5e-4 - 1.4e-3 mini-batch, 2e-4 stochastic, and dividing each update by its own weight
# sum instead: 3e-3 shuffled mini-batches, 0.7 unshuffled, 0.8 stochastic).
WEIGHTED_DESCENT = {
    "batch": (dict(batch_size=None, lr=0.5, epochs=2000, tol=1e-11), 1e-9),
    "minibatch": (dict(batch_size=16), 1e-3),
    "accumulated": (dict(batch_size=4, accumulate=4), 1e-3),
    "drop_last": (dict(batch_size=16, drop_last=True), 1e-3),
    "unshuffled": (dict(batch_size=16, shuffle=False), 3e-3),
    "stochastic": (
        dict(batch_size=1, lr=lambda count: 0.05 / (1 + count * 1e-2), epochs=100),
        1e-3,
    ),
}


@pytest.mark.parametrize("case", WEIGHTED_DESCENT)
def test_weighted_descent_reaches_weighted_least_squares_at_every_batch_size(case):
    X, y, weights = two_populations()
    settings, tolerance = WEIGHTED_DESCENT[case]
    settings = {"lr": DECAYING, "epochs": 300, **settings}
    result = ds.fit(
        "linear", X, y, optimizer="sgd", standardize=True, l2=0.0, patience=None,
        sample_weight=weights, dtype="float64", verbose=0, **settings,
    )  # fmt: skip
    expected = weighted_lstsq(X, y, weights)
    unweighted = lstsq_coef(X, y)
    assert relative_error(unweighted, expected) > 0.5  # the weights matter here
    assert (
        relative_error(
            coef(result.params, result.standardizer, result.target_standardizer), expected
        )
        < tolerance
    )


@pytest.mark.parametrize(
    ("batch_size", "shuffle"), [(None, True), (50, True), (50, False), (1, True)]
)
def test_rows_weighted_10_outweigh_rows_weighted_a_tenth_with_any_batch(batch_size, shuffle):
    # y = 2x on the first half (weights 10), y = -2x on the second (weights 0.1): the
    # weighted least-squares slope is 1.947, the unweighted one -0.21.
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    first = np.arange(300) < 150
    y = np.where(first, 2 * x, -2 * x) + 0.1 * rng.normal(size=300)
    weights = np.where(first, 10.0, 0.1)
    expected = weighted_lstsq(x[:, None], y, weights)
    assert expected[0] == pytest.approx(1.947, abs=1e-3)
    lr = 0.5 if batch_size is None else DECAYING
    if batch_size == 1:
        lr = lambda count: 0.05 / (1 + count * 1e-2)  # noqa: E731
    result = ds.fit(
        "linear", x[:, None], y, optimizer="sgd", lr=lr, batch_size=batch_size,
        shuffle=shuffle, epochs=30 if batch_size == 1 else 200, sample_weight=weights,
        dtype="float64", verbose=0, **PLAIN,
    )  # fmt: skip
    np.testing.assert_allclose(coef(result.params), expected, atol=3e-3)


def test_accumulating_weighted_batches_equals_one_batch_k_times_larger():
    X, y, weights = two_populations(50)
    common = dict(
        optimizer="adam", lr=0.05, epochs=4, seed=3, sample_weight=weights, dtype="float64",
        verbose=0,
    )  # fmt: skip
    accumulated = ds.fit("linear", X, y, batch_size=4, accumulate=3, **common)
    large = ds.fit("linear", X, y, batch_size=12, **common)
    np.testing.assert_allclose(coef(accumulated.params), coef(large.params), rtol=1e-12)
    np.testing.assert_allclose(accumulated.history["loss"], large.history["loss"], rtol=1e-12)


@pytest.mark.parametrize(
    "settings",
    [
        dict(batch_size=None),
        dict(batch_size=1),
        dict(batch_size=7),
        dict(batch_size=4, accumulate=3),
        dict(batch_size=7, drop_last=True, shuffle=False),
    ],
    ids=["batch", "stochastic", "short-last-batch", "accumulated", "drop-last-unshuffled"],
)
def test_equal_weights_train_bit_for_bit_as_no_weights(settings):
    X, y = regression_data(30)
    common = dict(optimizer="adam", lr=0.05, epochs=3, verbose=0, **settings)
    plain = ds.fit("linear", X, y, **common)
    for value in (0.3, 7.0):
        equal = ds.fit("linear", X, y, sample_weight=np.full(len(X), value), **common)
        assert leaves_equal(equal.params, plain.params)
        assert leaves_equal(equal.opt_state, plain.opt_state)
        for key in ("loss", "r2", "grad_norm"):
            np.testing.assert_array_equal(equal.history[key], plain.history[key], err_msg=key)


def test_an_update_divides_by_its_rows_times_the_mean_weight_of_all_the_data():
    # One step of SGD with lr=1 from zero weights: minus the gradient of sum(w * loss)
    # over the update's rows, divided by b times the mean weight given for all the rows.
    # Over every row of the data, by their own weight sum (the same up to rounding); over
    # every row of a chunk of a larger epoch (a stream's), by b times the data's mean.
    X, y = regression_data(10)
    weights = np.random.default_rng(4).uniform(0.1, 3.0, len(X))
    gradient_sum = -2 * np.c_[X, np.ones(len(X))].T @ (weights * y)  # at zero weights
    objective = BatchObjective(models.linear(), ds.losses.get("mse"), "mse")
    optimizer = ds.optim.sgd(lr=1.0)
    with jax.enable_x64(True):
        params = models.linear().init(0, 3, 1, dtype="float64")
        data = tuple(jnp.asarray(a) for a in (X, y, weights))
        for chunk, denominator in ((False, weights.sum()), (True, len(X) * 5.0)):
            config = engine.EpochConfig(10, 10, shuffle=False, weighted=True, chunk=chunk)
            program = engine.compiled_epoch(objective, optimizer, config)
            outcome = program(params, optimizer.init(params), data, None, jnp.asarray(5.0))
            step = np.r_[outcome.params["w"], outcome.params["b"]]
            np.testing.assert_allclose(step, -gradient_sum / denominator, rtol=1e-12)


def test_full_batch_loss_history_is_the_weighted_mean_loss_of_the_data():
    # Batch descent: the loss of epoch k is that of the weights after epoch k - 1.
    X, y, weights = two_populations(60)
    common = dict(optimizer="sgd", lr=0.05, batch_size=None, sample_weight=weights,
                  dtype="float64", verbose=0, **PLAIN)  # fmt: skip
    before = ds.fit("linear", X, y, epochs=3, **common)
    after = ds.fit("linear", X, y, epochs=4, **common)
    residual = before.predict(X) - y
    expected = np.sum(weights * residual**2) / np.sum(weights)
    assert after.history["loss"][-1] == pytest.approx(expected, rel=1e-12)
    assert after.history["r2"][-1] == pytest.approx(
        r2_score(y, before.predict(X), sample_weight=weights), rel=1e-12
    )


@pytest.mark.parametrize("xp", [np, jnp], ids=["numpy", "jax"])
def test_weighted_r2_and_accuracy_match_scikit_learn(xp):
    rng = np.random.default_rng(2)
    weights = rng.uniform(0.0, 3.0, 40)
    y, predictions = rng.normal(size=(40, 2)), rng.normal(size=(40, 2))
    labels, guesses = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
    with jax.enable_x64(True):
        for targets, outputs in ((y, predictions), (y[:, 0], predictions[:, 0])):
            ours = ds.metrics.r2(targets, outputs, xp=xp, sample_weight=weights)
            assert float(ours) == pytest.approx(
                r2_score(targets, outputs, sample_weight=weights), rel=1e-12
            )
        ours = ds.metrics.accuracy(labels, guesses, xp=xp, sample_weight=weights)
        expected = accuracy_score(labels, guesses, sample_weight=weights)
        assert float(ours) == pytest.approx(expected, rel=1e-12)
        assert expected != pytest.approx(accuracy_score(labels, guesses), rel=1e-3)


@pytest.mark.parametrize("model", ["linear", "logistic"])
@pytest.mark.parametrize("batch_size", [None, 8, 1])
def test_validation_split_scores_the_held_out_rows_with_their_weights(model, batch_size):
    X, y, weights = two_populations(80)
    if model == "logistic":
        y = (y > np.median(y)).astype(int)
    result = ds.fit(
        model, X, y, validation_split=0.25, batch_size=batch_size, sample_weight=weights,
        epochs=2, seed=3, dtype="float64", verbose=0, **PLAIN,
    )  # fmt: skip
    rows = np.arange(len(X))
    _, val_rows, _, _ = ds.data.train_validation_split(rows, rows, 0.25, seed=3)
    X_val, y_val, w_val = X[val_rows], y[val_rows], weights[val_rows]
    if model == "linear":
        predictions = result.predict(X_val)
        losses = (predictions - y_val) ** 2
        metric = r2_score(y_val, predictions, sample_weight=w_val)
    else:
        p = result.predict_proba(X_val)[:, 1]
        losses = -(y_val * np.log(p) + (1 - y_val) * np.log1p(-p))
        metric = accuracy_score(y_val, result.predict(X_val), sample_weight=w_val)
    val_metric = result.history["val_r2" if model == "linear" else "val_accuracy"][-1]
    assert result.history["val_loss"][-1] == pytest.approx(np.average(losses, weights=w_val))
    assert val_metric == pytest.approx(metric, rel=1e-12)
    # Not the unweighted mean: the held-out rows weigh 10 or 0.1.
    assert result.history["val_loss"][-1] != pytest.approx(np.mean(losses), rel=1e-3)


def test_validation_split_with_equal_weights_scores_as_without_weights():
    X, y = regression_data(40)
    common = dict(validation_split=0.25, batch_size=8, epochs=2, seed=3, verbose=0, **PLAIN)
    plain = ds.fit("linear", X, y, **common)
    # Held-out rows all weigh 2: their weights are dropped (bit-for-bit the unweighted
    # scores), while the training rows' weights differ and are kept.
    weights = np.full(len(X), 2.0)
    rows = np.arange(len(X))
    train_rows, _, _, _ = ds.data.train_validation_split(rows, rows, 0.25, seed=3)
    weights[train_rows[:5]] = 0.5
    weighted = ds.fit("linear", X, y, sample_weight=weights, **common)
    equal = ds.fit("linear", X, y, sample_weight=np.full(len(X), 2.0), **common)
    for key in ("loss", "val_loss", "val_r2"):
        np.testing.assert_array_equal(equal.history[key], plain.history[key], err_msg=key)
    X_val = X[np.setdiff1d(rows, train_rows)]
    y_val = y[np.setdiff1d(rows, train_rows)]
    residual = weighted.predict(X_val) - y_val
    assert weighted.history["val_loss"][-1] == pytest.approx(np.mean(residual**2))


def test_held_out_rows_that_all_weigh_zero_are_refused():
    X, y = regression_data(40)
    rows = np.arange(len(X))
    _, val_rows, _, _ = ds.data.train_validation_split(rows, rows, 0.25, seed=3)
    weights = np.ones(len(X))
    weights[val_rows] = 0.0
    with pytest.raises(DataError, match="held out for validation has sample_weight 0"):
        ds.fit("linear", X, y, validation_split=0.25, seed=3, sample_weight=weights, verbose=0)


@pytest.mark.parametrize("batch_size", [None, 4])
def test_weights_seen_before_scale_the_updates_with_this_calls_weights(batch_size):
    # One epoch of SGD (lr=1) from zero weights, rows in order: every update divides by
    # its rows times the mean weight of the earlier rows (sum 30 over 10) and these
    # together, also the update over all the rows (batch_size=None).
    X, y = regression_data(8)
    weights = np.random.default_rng(4).uniform(0.1, 3.0, len(X))
    mean = (30.0 + weights.sum()) / (10 + len(X))
    params = {"w": np.zeros(3), "b": 0.0}
    state = ds.FitState(params, ds.optim.sgd(lr=1.0).init(params), weights_seen=(30.0, 10))
    result = ds.fit(
        "linear", X, y, optimizer="sgd", lr=1.0, batch_size=batch_size, shuffle=False,
        sample_weight=weights, init=state, epochs=1, dtype="float64", verbose=0, **PLAIN,
    )  # fmt: skip
    w, b = np.zeros(3), 0.0
    size = batch_size or len(X)
    for start in range(0, len(X), size):
        rows = slice(start, start + size)
        residual = X[rows] @ w + b - y[rows]
        scale = 2 * weights[rows] * residual / (len(residual) * mean)
        w, b = w - X[rows].T @ scale, b - np.sum(scale)
    np.testing.assert_allclose(coef(result.params), np.r_[w, b], rtol=1e-12)


def test_rows_without_weights_weigh_one_against_the_weights_seen_before():
    # Earlier rows of mean weight 4 (40 over 10), then 8 rows without weights: the mean
    # is (40 + 8) / (10 + 8) = 8/3, so every step is 3/8 of an unweighted one. After rows
    # of mean weight 1, they train exactly as without weights.
    X, y = regression_data(8)
    params = {"w": np.zeros(3), "b": 0.0}
    common = dict(optimizer="sgd", batch_size=4, epochs=1, dtype="float64", verbose=0, **PLAIN)
    for seen, lr in (((40.0, 10), 0.1 * 3 / 8), ((10.0, 10), 0.1)):
        state = ds.FitState(params, ds.optim.sgd(lr=0.1).init(params), weights_seen=seen)
        result = ds.fit("linear", X, y, init=state, lr=0.1, **common)
        expected = ds.fit("linear", X, y, init=(params, ds.optim.sgd(lr=lr).init(params)),
                          lr=lr, **common)  # fmt: skip
        np.testing.assert_allclose(coef(result.params), coef(expected.params), rtol=1e-12)


@pytest.mark.parametrize("seen", [(-1.0, 3), (1.0, 2.5), (float("nan"), 3), "much"])
def test_weights_seen_must_be_a_sum_and_a_count(seen):
    X, y = regression_data(8)
    params = {"w": np.zeros(3), "b": 0.0}
    state = ds.FitState(params, ds.optim.sgd(lr=0.1).init(params), weights_seen=seen)
    with pytest.raises(InputError, match=r"init.weights_seen must be \(sum, count\)"):
        ds.fit("linear", X, y, optimizer="sgd", init=state, verbose=0)


def test_validation_data_is_scored_with_the_final_weights():
    X, y = regression_data(30)
    X_val, y_val = regression_data(30, seed=9)
    result = ds.fit("linear", X, y, validation=(X_val, y_val), epochs=3, **SMALL, **PLAIN)
    predictions = result.predict(X_val)
    assert result.history["val_loss"][-1] == pytest.approx(np.mean((predictions - y_val) ** 2))
    assert result.history["val_r2"][-1] == pytest.approx(r2_score(y_val, predictions))
    assert len(result.history["val_loss"]) == 3
    # The training metric is the running one, gathered batch by batch during the epoch.
    assert np.all(np.isfinite(result.history["r2"]))


def test_validation_rows_with_missing_features_are_dropped_with_their_labels():
    X, y = regression_data(30)
    X_val, y_val = regression_data(10, seed=9)
    X_val[[2, 7], 1] = np.nan
    result = ds.fit(
        "linear", X, y, validation=(X_val, y_val), nan_policy="drop", epochs=2, **SMALL, **PLAIN
    )
    keep = np.isfinite(X_val).all(axis=1)
    residual = result.predict(X_val[keep]) - y_val[keep]
    assert result.history["val_loss"][-1] == pytest.approx(np.mean(residual**2))


def test_validation_split_holds_out_the_rows_of_train_validation_split():
    X, y = regression_data(50)
    result = ds.fit(
        "linear", X, y, validation_split=0.2, optimizer="sgd", lr=0.01, batch_size=1, epochs=1,
        seed=7, dtype="float64", verbose=0, **PLAIN,
    )  # fmt: skip
    X_train, X_val, _, y_val = ds.data.train_validation_split(X, y, 0.2, seed=7)
    assert result.n_updates == len(X_train) == 40
    predictions = result.predict(X_val)
    assert result.history["val_loss"][-1] == pytest.approx(np.mean((predictions - y_val) ** 2))


# ---------------------------------------------------------------- stopping rules


def overfitting_data():
    """Training targets y = 2x, validation targets y = x: the validation loss falls while
    the weight passes 1, then rises."""
    x = np.linspace(-1.0, 1.0, 40).reshape(-1, 1)
    return x, 2 * x[:, 0], (x, x[:, 0])


@pytest.mark.parametrize("restore_best", [True, False])
def test_early_stopping_waits_patience_epochs_and_restores_the_best(restore_best):
    X, y, validation = overfitting_data()
    common = dict(optimizer="sgd", lr=0.05, batch_size=None, dtype="float64", verbose=0)
    result = ds.fit(
        "linear", X, y, validation=validation, epochs=500, patience=3, min_delta=0.0,
        restore_best=restore_best, **common,
    )  # fmt: skip
    val_loss = result.history["val_loss"]
    best = int(np.argmin(val_loss)) + 1
    assert result.status == "early_stopping"
    assert result.n_epochs == best + 3 == len(val_loss)
    assert f"epoch {best}" in result.reason
    kept = best if restore_best else result.n_epochs
    assert result.best_epoch == (best if restore_best else None)
    reference = ds.fit("linear", X, y, epochs=kept, **common)
    assert leaves_equal(result.params, reference.params)
    assert leaves_equal(result.opt_state, reference.opt_state)


def test_min_delta_counts_only_improvements_larger_than_it():
    X, y, validation = overfitting_data()
    common = dict(
        optimizer="sgd", lr=0.05, batch_size=None, validation=validation, dtype="float64",
        verbose=0,
    )  # fmt: skip
    plain = ds.fit("linear", X, y, epochs=500, patience=3, **common)
    strict = ds.fit("linear", X, y, epochs=500, patience=3, min_delta=1e-2, **common)
    val_loss = strict.history["val_loss"]
    # The reference rule: epoch e improves when its loss is below best - min_delta.
    best, waited, stopped = math.inf, 0, None
    for epoch, loss in enumerate(val_loss, start=1):
        best, waited = (loss, 0) if loss < best - 1e-2 else (best, waited + 1)
        if waited == 3 and stopped is None:
            stopped = epoch
    assert strict.n_epochs == stopped < plain.n_epochs


def test_divergence_stops_and_keeps_the_last_finite_weights():
    X, y = regression_data(30)
    common = dict(optimizer="sgd", lr=1e3, batch_size=None, verbose=0)
    result = ds.fit("linear", X, y, epochs=200, **common)
    assert result.status == "diverged"
    assert "smaller learning rate" in result.reason and "lr=100" in result.reason
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(result.params))
    assert 0 < result.n_epochs < 200 and result.n_updates == result.n_epochs
    last_finite = ds.fit("linear", X, y, epochs=result.n_epochs, **common)
    assert leaves_equal(result.params, last_finite.params)


def test_divergence_in_mid_epoch_counts_only_the_finite_updates():
    X, y = regression_data(30)
    result = ds.fit("linear", X, y, optimizer="sgd", lr=1e3, batch_size=1, epochs=5, verbose=0)
    assert result.status == "diverged" and result.n_epochs == 0
    assert 0 < result.n_updates < 30
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(result.params))


def test_a_callback_returning_true_stops_training_after_all_callbacks_ran():
    X, y = regression_data(30)
    seen, also_seen = [], []

    def stop_at_three(epoch, history):
        seen.append((epoch, len(history["loss"])))
        return epoch == 3

    callbacks = [stop_at_three, lambda epoch, history: also_seen.append(epoch)]
    result = ds.fit("linear", X, y, epochs=10, callbacks=callbacks, **SMALL)
    assert result.status == "callback" and result.n_epochs == 3
    assert seen == [(1, 1), (2, 2), (3, 3)] and also_seen == [1, 2, 3]


def test_verbose_2_prints_one_line_per_epoch(capsys):
    X, y = regression_data(30)
    X_val, y_val = regression_data(30, seed=9)
    ds.fit("linear", X, y, epochs=3, validation=(X_val, y_val), **{**SMALL, "verbose": 2})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("val_loss" in line for line in lines)
    # The first epoch's time holds the compilation: no rate for it, a rate for the others.
    assert lines[0].endswith(" s with compiling") and "samples/s" not in lines[0]
    assert all(line.endswith(" samples/s") for line in lines[1:])


# A fit with the default verbose=1, its stderr a pipe; NOTEBOOK first makes this process
# look like a Jupyter kernel as tqdm.autonotebook tests it (ipykernel's shell loaded, a
# ZMQInteractiveShell from get_ipython), without ipywidgets (tqdm's text bar, then).
FIT_IN_A_PIPE = """
import sys, numpy as np, descend as ds
X = np.linspace(-1, 1, 64)[:, None]
ds.fit("linear", X, 3 * X[:, 0], optimizer="sgd", lr=0.1, batch_size=None, epochs=40,
       patience=None, verbose=int(sys.argv[1]),
       callbacks=[lambda epoch, history: None])  # one epoch a program, as with validation

"""
NOTEBOOK = """
import sys, types, IPython
class ZMQInteractiveShell:
    config = {"IPKernelApp": {}}
sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")
IPython.get_ipython = ZMQInteractiveShell
sys.modules["ipywidgets"] = None  # not installed
"""


def _fit_in_a_pipe(verbose: int, *, notebook: bool) -> subprocess.CompletedProcess:
    code = (NOTEBOOK if notebook else "") + FIT_IN_A_PIPE
    return subprocess.run(
        [sys.executable, "-c", code, str(verbose)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip


def test_fit_in_a_pipe_logs_plain_lines_of_progress_and_nothing_at_verbose_0():
    done = _fit_in_a_pipe(1, notebook=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    # The first epoch, every tenth of the 40 (4, 8, ...), the last: no bar, no escapes.
    expected = [f"epoch {n}/40" for n in (1, *range(4, 41, 4))]
    assert [line.split(":")[0] for line in lines] == expected
    assert all("loss" in line for line in lines)
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    quiet = _fit_in_a_pipe(0, notebook=False)
    assert quiet.returncode == 0 and quiet.stdout == quiet.stderr == ""


def test_fit_in_a_notebook_shows_tqdm_auto_bar_and_nothing_at_verbose_0():
    done = _fit_in_a_pipe(1, notebook=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    # tqdm.auto's bar (a text bar: ipywidgets is missing), not a log's lines.
    assert "epoch: 100%|" in done.stderr and "40/40 [" in done.stderr
    assert "epoch 1/40:" not in done.stderr
    quiet = _fit_in_a_pipe(0, notebook=True)
    assert quiet.returncode == 0 and quiet.stdout == quiet.stderr == ""


def test_tol_stops_when_the_gradient_norm_is_small():
    X, y = regression_data()
    result = ds.fit("linear", X, y, tol=1e-3, epochs=1000, verbose=0, **BATCH_GD)
    assert result.converged and result.n_epochs < 1000
    grad_norm = result.history["grad_norm"]
    assert grad_norm[-1] <= 1e-3 < grad_norm[-2]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(model="lienar"), "did you mean 'linear'"),
        (dict(loss="msee"), "did you mean 'mse'"),
        (dict(optimizer="sgdd"), "did you mean 'sgd'"),
        (dict(method="minibach"), "did you mean 'minibatch'"),
        (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
        (dict(epochs=0), "epochs must be an integer >= 1, got 0"),
        (dict(accumulate=0), "accumulate must be an integer >= 1"),
        (dict(dtype="float16"), "dtype must be 'float32' or 'float64'"),
        (dict(verbose=3), "verbose must be 0, 1 or 2"),
        (dict(patience=0), "patience must be an integer >= 1"),
        (dict(tol=-1.0), "tol must be a finite number >= 0"),
        (dict(validation_split=1.5), "validation_split must be in"),
        (dict(y=None), "y is required"),
        (dict(target="price"), "target= and features= name columns of a file"),
        (dict(y=np.zeros(7)), "X has 10 samples (rows) but y has 7"),
        (dict(sample_weight=np.ones(3)), "sample_weight must have shape (10,)"),
        (dict(sample_weight=-np.ones(10)), "sample_weight must be finite and >= 0"),
        (dict(validation=(np.ones((4, 2)), np.ones(4))), "validation X has 2 features"),
        (dict(validation=np.ones(3)), "validation must be a pair"),
        (dict(optimizer=ds.optim.sgd(lr=0.1), lr=0.1), "lr is given twice"),
        (dict(loss=lambda p, t: jnp.mean((p - t) ** 2)), "got a scalar"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_arguments_raise_input_errors_that_say_what_to_do(kwargs, message):
    X, y = regression_data(10)
    arguments = dict(model="linear", X=X, y=y, epochs=1, batch_size=None, verbose=0)
    arguments.update(kwargs)
    with pytest.raises(InputError) as error:
        ds.fit(arguments.pop("model"), arguments.pop("X"), arguments.pop("y"), **arguments)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(model=3), "model must be"),
        (dict(loss=3), "loss must be"),
        (dict(optimizer=3), "optimizer must be"),
    ],
)
def test_wrong_types_raise_type_errors(kwargs, message):
    X, y = regression_data(10)
    arguments = dict(model="linear", epochs=1, verbose=0)
    arguments.update(kwargs)
    with pytest.raises(DescendTypeError, match=message):
        ds.fit(arguments.pop("model"), X, y, **arguments)


def test_a_batch_larger_than_the_data_warns_and_uses_batch_descent():
    X, y = regression_data(10)
    with pytest.warns(DescendWarning, match="batch_size=64 is larger than the 10"):
        result = ds.fit("linear", X, y, batch_size=64, epochs=3, verbose=0)
    assert result.n_updates == 3


def test_unseen_validation_labels_are_a_data_error():
    X = np.arange(8.0).reshape(-1, 1)
    with pytest.raises(DataError, match="validation y has labels not seen in training"):
        ds.fit("logistic", X, [0, 1] * 4, validation=(X[:2], [0, 5]), epochs=1, verbose=0)


# ---------------------------------------------------------------- models, losses, dtypes


def test_custom_model_fits_its_own_least_squares_problem():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, size=(60, 1))
    y = 1.5 * x[:, 0] ** 2 - 0.5 + 0.1 * rng.normal(size=60)

    def apply(params, X):
        return params["a"] * X[:, 0] ** 2 + params["c"]

    model = models.custom(apply, {"a": np.zeros(()), "c": np.zeros(())})
    result = ds.fit(
        model, x, y, optimizer="sgd", lr=0.5, batch_size=None, epochs=5000, tol=1e-10,
        dtype="float64", verbose=0, **PLAIN,
    )  # fmt: skip
    expected = np.linalg.lstsq(np.c_[x[:, 0] ** 2, np.ones(60)], y, rcond=None)[0]
    np.testing.assert_allclose([result.params["a"], result.params["c"]], expected, rtol=1e-6)
    assert result.params["a"].dtype == np.float64


def test_a_loss_given_as_a_function_trains_as_the_named_loss():
    X, y = regression_data(30)
    named = ds.fit("linear", X, y, loss="mse", epochs=3, **SMALL)
    custom = ds.fit("linear", X, y, loss=lambda p, t: (p - t) ** 2, epochs=3, **SMALL)
    np.testing.assert_allclose(coef(custom.params), coef(named.params), rtol=1e-12)
    assert custom.loss is not None and named.loss == "mse"


def test_float64_is_scoped_to_the_call():
    X, y = regression_data(30)
    result = ds.fit("linear", X, y, epochs=1, **SMALL)
    assert result.params["w"].dtype == np.float64 and result.predict(X).dtype == np.float64
    assert jnp.zeros(1).dtype == jnp.float32  # the global flag is untouched
    single = ds.fit("linear", X, y, epochs=1, **{**SMALL, "dtype": "float32"})
    assert single.params["w"].dtype == np.float32 and single.predict(X).dtype == np.float32


# ---------------------------------------------------------------- classifiers


@pytest.mark.parametrize("dataset", sorted(CLASSIFIERS))
def test_linear_classifiers_match_scikit_learn_accuracy(dataset, trained_classifiers):
    X_train, X_val, y_train, y_val, result = trained_classifiers[dataset]
    scaler = StandardScaler().fit(X_train)
    reference = LogisticRegression(max_iter=5000).fit(scaler.transform(X_train), y_train)
    expected = reference.score(scaler.transform(X_val), y_val)
    assert abs(result.score(X_val, y_val) - expected) <= 0.01
    agreement = np.mean(result.predict(X_val) == reference.predict(scaler.transform(X_val)))
    assert agreement >= 0.98


def test_mlp_beats_softmax_regression_on_digits(trained_classifiers):
    X_train, X_val, y_train, y_val, softmax = trained_classifiers["digits"]
    mlp = ds.fit(
        models.mlp(hidden=(64,), task="multiclass"), X_train, y_train, batch_size=64,
        optimizer=regularized_adam(0.01, len(X_train)), epochs=15, standardize=True, verbose=0,
    )  # fmt: skip
    assert mlp.score(X_val, y_val) > softmax.score(X_val, y_val) + 0.005


def test_predictions_and_scores_agree_with_scikit_learn_metrics(trained_classifiers):
    X_train, X_val, y_train, y_val, result = trained_classifiers["iris"]
    labels = result.predict(X_val)
    assert result.score(X_val, y_val) == pytest.approx(accuracy_score(y_val, labels))
    probabilities = result.predict_proba(X_val)
    expected = scipy.special.softmax(result.decision_function(X_val).astype(float), axis=1)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5)
    np.testing.assert_array_equal(result.classes[np.argmax(probabilities, axis=1)], labels)
    assert result.history["accuracy"][-1] == pytest.approx(result.score(X_train, y_train))

    X, y = regression_data(30)
    regression = ds.fit("linear", X, y, epochs=5, **SMALL)
    assert regression.score(X, y) == pytest.approx(r2_score(y, regression.predict(X)))


def test_training_metric_is_gathered_during_the_epoch():
    """The history's training metric is the running one (as Keras reports): with one
    full-batch update per epoch it is the metric of the weights before that update."""
    X, y = regression_data(30)
    settings = {"optimizer": "sgd", "lr": 0.05, "batch_size": None, "verbose": 0, **PLAIN}
    five = ds.fit("linear", X, y, epochs=5, **settings)
    four = ds.fit("linear", X, y, epochs=4, **settings)
    assert five.history["r2"][-1] == pytest.approx(r2_score(y, four.predict(X)), rel=1e-5)
    assert five.history["loss"][-1] == pytest.approx(np.mean((four.predict(X) - y) ** 2), rel=1e-5)


def test_string_labels_come_back_from_predict(trained_classifiers):
    X_train, X_val, y_train, y_val, coded = trained_classifiers["breast_cancer"]
    names = np.array(["malignant", "benign"])
    optimizer = regularized_adam(0.05, len(X_train))
    result = ds.fit("logistic", X_train, names[y_train], optimizer=optimizer, **CLASSIFIER_SETTINGS)
    assert result.classes.tolist() == ["benign", "malignant"]  # sorted, as LabelEncoder
    predicted = result.predict(X_val)
    assert set(predicted) <= set(names)
    assert result.score(X_val, names[y_val]) == accuracy_score(names[y_val], predicted) > 0.9
    np.testing.assert_allclose(result.predict_proba(X_val).sum(axis=1), 1.0, rtol=1e-6)
    # The codes are swapped (benign is class 0 here, 1 in the dataset): the same model.
    np.testing.assert_array_equal(predicted, names[coded.predict(X_val)])


def test_csv_path_and_dataset_inputs_train_the_same_model(tmp_path):
    rng = np.random.default_rng(4)
    size = rng.uniform(1, 3, 40).tolist()
    color = rng.choice(["red", "blue"], 40)
    price = (2 * np.array(size) + (color == "red") + 0.05 * rng.normal(size=40)).tolist()
    path = tmp_path / "houses.csv"
    lines = ["size,color,price"] + [
        f"{s!r},{c},{p!r}" for s, c, p in zip(size, color, price, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    common = dict(optimizer="sgd", lr=0.1, batch_size=None, epochs=300, verbose=0)
    from_path = ds.fit("linear", str(path), target="price", **common)
    dataset = ds.data.load(path, target="price")
    from_dataset = ds.fit("linear", dataset, **common)
    assert leaves_equal(from_path.params, from_dataset.params)
    from_frame = ds.fit("linear", pd.read_csv(path), target="price", **common)
    assert leaves_equal(from_path.params, from_frame.params)
    np.testing.assert_array_equal(from_frame.predict(pd.read_csv(path)), from_path.predict(path))
    features = np.c_[size, color == "blue", color == "red"].astype(float)
    assert from_path.score(str(path), price) == pytest.approx(
        r2_score(price, np.c_[features, np.ones(40)] @ lstsq_coef(features, price)), abs=1e-3
    )
    np.testing.assert_allclose(from_path.predict(str(path)), from_path.predict(features))


# ---------------------------------------------------------------- compilation


def test_a_second_fit_with_the_same_shapes_does_not_recompile():
    X, y = regression_data(30)
    traces = []

    def squared_error(predictions, targets):
        traces.append(1)
        return (predictions - targets) ** 2

    common = dict(loss=squared_error, optimizer="sgd", lr=0.01, batch_size=8, verbose=0)
    ds.fit("linear", X, y, epochs=2, **common)
    first = len(traces)
    before = engine.compiled_epoch.cache_info()
    ds.fit("linear", X + 1.0, y, epochs=3, seed=5, **common)
    after = engine.compiled_epoch.cache_info()
    assert len(traces) == first > 0
    assert after.misses == before.misses and after.hits == before.hits + 3


def test_a_loss_that_explodes_while_finite_is_a_divergence():
    """The filed case: unscaled x in 100..500, lr=1e-5: the loss grows without bound."""
    x = np.linspace(100, 500, 21)
    y = 0.3 * x + 7
    result = ds.fit(
        "linear", x[:, None], y, optimizer="sgd", lr=1e-5, batch_size=None, epochs=300,
        verbose=0, **PLAIN,
    )  # fmt: skip
    assert result.status == "diverged" and result.n_epochs < 300
    assert "the loss grew from" in result.reason and "standardize=True" in result.reason
    assert "lr=1e-06" in result.reason
    assert result.history["loss"][-1] > 1e6 * result.history["loss"][0]


# ---------------------------------------------------------------- plateau rules in fit


def _torch_sgd_with_plateau_scheduler(X, y, *, lr, batch_size, epochs, patience, factor,
                                      validation=None):  # fmt: skip
    """SGD on a linear model with torch's ReduceLROnPlateau stepped once per epoch with
    the epoch's mean training loss (or the validation loss): the Keras/PyTorch idiom."""
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    sgd = torch.optim.SGD([w, b], lr=lr)
    # torch reduces when the bad count exceeds patience; descend's rule when it reaches it.
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        sgd, factor=factor, patience=patience - 1, threshold=1e-4, threshold_mode="rel"
    )
    rates = []
    for _ in range(epochs):
        total = 0.0
        for start in range(0, len(X), batch_size):
            sgd.zero_grad()
            batch = slice(start, start + batch_size)
            loss = torch.nn.functional.mse_loss(X_t[batch] @ w + b, y_t[batch])
            loss.backward()
            sgd.step()
            total += loss.item() * len(X_t[batch])
        watched = total / len(X)
        if validation is not None:
            with torch.no_grad():
                X_v, y_v = map(torch.from_numpy, validation)
                watched = torch.nn.functional.mse_loss(X_v @ w + b, y_v).item()
        scheduler.step(watched)
        rates.append(sgd.param_groups[0]["lr"])
    return w.detach().numpy(), b.item(), np.array(rates)


def test_a_float32_run_records_the_rate_the_user_gave_and_torchs_cuts():
    """In float32 the plateau rule's scale is a float32 number on the device; the history
    reads 0.01 for the user's 0.01 (not 0.009999999776), and each cut rate is torch's to
    float32 precision."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(size=400)
    settings = dict(lr=0.02, batch_size=16, epochs=12, patience=2, factor=0.5)
    opt = ds.optim.reduce_on_plateau(
        ds.optim.sgd(lr=settings["lr"]), patience=settings["patience"], factor=settings["factor"]
    )
    result = ds.fit(
        "linear", X, y, optimizer=opt, batch_size=16, epochs=12, shuffle=False,
        dtype="float32", verbose=0, **PLAIN,
    )  # fmt: skip
    _, _, rates = _torch_sgd_with_plateau_scheduler(X, y, validation=None, **settings)
    assert rates[-1] < settings["lr"]  # the rule fired
    recorded = result.history["lr"]
    assert recorded[0] == 0.02  # exactly the user's number
    np.testing.assert_allclose(recorded, rates, rtol=2e-7)
    assert all(r == float(str(np.float32(r))) for r in recorded)  # float32's shortest decimals


@pytest.mark.parametrize("with_validation", [False, True])
def test_reduce_on_plateau_in_fit_watches_epochs_like_torchs_scheduler(with_validation):
    """The filed case, scaled down: a plateau rule fed every mini-batch's loss cut the rate
    to nothing within the first epoch; fit feeds it each epoch's (validation) loss, as
    torch's ReduceLROnPlateau stepped per epoch is fed."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(size=400)
    validation = (X[:100] + 0.1, y[:100]) if with_validation else None
    settings = dict(lr=0.02, batch_size=16, epochs=12, patience=2, factor=0.5)
    opt = ds.optim.reduce_on_plateau(
        ds.optim.sgd(lr=settings["lr"]), patience=settings["patience"], factor=settings["factor"]
    )
    result = ds.fit(
        "linear", X, y, optimizer=opt, batch_size=16, epochs=12, shuffle=False,
        dtype="float64", verbose=0, validation=validation, **PLAIN,
    )  # fmt: skip
    w, b, rates = _torch_sgd_with_plateau_scheduler(X, y, validation=validation, **settings)
    assert rates[-1] < settings["lr"]  # the rule fired, so the comparison means something
    np.testing.assert_allclose(result.history["lr"], rates, rtol=1e-12)
    np.testing.assert_allclose(result.params["w"], w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.params["b"], b, rtol=1e-9, atol=1e-12)


def test_history_reports_the_effective_rate_of_wrapped_and_chained_optimizers():
    X, y = regression_data()
    schedule = schedules.cosine_annealing(0.05, T_max=200)
    chained = ds.optim.chain(ds.optim.clip_by_global_norm(100.0), ds.optim.sgd(lr=schedule))
    settings = {key: value for key, value in SMALL.items() if key not in ("optimizer", "lr")}
    result = ds.fit("linear", X, y, optimizer=chained, epochs=3, **settings)
    expected = [float(schedule(n)) for n in result.history["epoch"] * 15]  # 120 rows / 8
    np.testing.assert_allclose(result.history["lr"], expected, rtol=1e-6)
    wrapped = ds.optim.reduce_on_plateau(ds.optim.adam(lr=0.01))
    result = ds.fit("linear", X, y, optimizer=wrapped, epochs=2, **settings)
    np.testing.assert_array_equal(result.history["lr"], [0.01, 0.01])


def test_a_plateau_rule_stepped_by_hand_still_watches_each_step_unless_told_otherwise():
    """Optax's convention by hand and in minimize; watch_epochs + observe is fit's way."""
    opt = ds.optim.reduce_on_plateau(ds.optim.sgd(lr=1.0), patience=1, factor=0.5)
    reference = optax.contrib.reduce_on_plateau(patience=1, factor=0.5)
    state, ref_state = opt.init(0.0), reference.init(0.0)
    for loss in [1.0, 1.0, 1.0, 0.5]:
        _, state = opt.step(0.0, 1.0, state, value=loss)
        _, ref_state = reference.update(1.0, ref_state, value=loss)
    assert float(state.scale) == float(ref_state.scale) < 1
    epochs = ds.optim.watch_epochs(opt.init(0.0))
    for _ in range(5):  # steps alone never reduce in epoch mode
        _, epochs = opt.step(0.0, 1.0, epochs, value=1.0)
    assert float(epochs.scale) == 1.0
    for loss in [1.0, 1.0, 1.0]:
        epochs = ds.optim.observe(epochs, loss)
    assert float(epochs.scale) == 0.25


# ------------------------------------------------------------ schedules shorter than the run


def horizon_warnings(record):
    """The DescendWarnings' messages, each checked to point at the line that called fit."""
    ours = [w for w in record if issubclass(w.category, DescendWarning)]
    assert all(w.filename == __file__ for w in ours), [w.filename for w in ours]
    return [str(w.message) for w in ours]


@pytest.mark.parametrize("source", ["arrays", "stream"])
def test_fit_warns_before_running_past_its_schedule_with_the_numbers(source):
    X, y = regression_data(40)
    chunks = [(X[:20], y[:20]), (X[20:], y[20:])]
    data = (X, y) if source == "arrays" else (ds.data.stream(chunks, dtype="float64"),)
    common = dict(batch_size=10, shuffle=False, dtype="float64", verbose=0, epochs=5)
    plain = ds.fit("linear", *data, optimizer="sgd", lr=0.01, **common)  # the run's updates
    short = ds.optim.sgd(lr=schedules.one_cycle(0.01, total_steps=plain.n_updates - 1))
    with pytest.warns(DescendWarning) as record:
        ds.fit("linear", *data, optimizer=short, **common)
    (message,) = horizon_warnings(record)
    assert message.startswith(
        f"fit makes up to {plain.n_updates} updates (5 epochs of {plain.n_updates // 5} updates)"
    )
    assert f"set total_steps={plain.n_updates}" in message and "or train fewer epochs" in message
    enough = ds.optim.sgd(lr=schedules.one_cycle(0.01, total_steps=plain.n_updates))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DescendWarning)
        ds.fit("linear", *data, optimizer=enough, **common)


def test_a_resumed_fit_counts_the_updates_already_made_against_the_schedule():
    X, y = regression_data(40)
    common = dict(batch_size=10, shuffle=False, dtype="float64", verbose=0)
    opt = ds.optim.sgd(lr=schedules.cosine_annealing(0.01, T_max=20))
    two = ds.fit("linear", X, y, optimizer=opt, epochs=2, **common)  # 8 of its 21 steps
    expected = r"up to 24 updates \(4 epochs of 4 updates after the 8 already made\)"
    with pytest.warns(DescendWarning, match=expected):
        ds.fit("linear", X, y, epochs=6, resume=two, **common)


def test_minimize_warns_when_max_iter_can_pass_the_schedule():
    opt = ds.optim.sgd(lr=schedules.one_cycle(0.1, total_steps=50))
    f = lambda x: jnp.sum(x**2)  # noqa: E731
    with pytest.warns(DescendWarning, match=r"max_iter=80 steps, .*one_cycle\(total_steps=50\)"):
        ds.minimize(f, jnp.ones(2), optimizer=opt, max_iter=80)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DescendWarning)
        ds.minimize(f, jnp.ones(2), optimizer=opt, max_iter=50)


# ----------------------------------------------------------------- epochs read ahead


def _fit_counting_epochs(monkeypatch, run_ahead, *args, **kwargs):
    """``ds.fit(*args, **kwargs)`` with ``RUN_AHEAD`` set; also the epoch programs run."""
    from descend.training import loop

    monkeypatch.setattr(loop, "RUN_AHEAD", run_ahead)
    compiled = engine.compiled_epoch
    calls = []

    def counting(*key):
        program = compiled(*key)

        def run(*arguments):
            calls.append(key[2].checked)
            return program(*arguments)

        return run

    monkeypatch.setattr(engine, "compiled_epoch", counting)
    result = ds.fit(*args, **kwargs)
    monkeypatch.setattr(engine, "compiled_epoch", compiled)
    return result, calls


RUNS_AHEAD = {
    # early stopping with validation, the plateau rule cutting the rate on the device
    "defaults": dict(epochs=60, patience=4, validation_split=0.3, lr=0.5),
    "budget": dict(epochs=7, patience=None),
    "diverged": dict(epochs=20, optimizer="sgd", lr=1e6, standardize=False, patience=None),
    "converged": dict(
        epochs=200, optimizer="lbfgs", lr=1.0, batch_size=None, tol=1e-4, patience=None
    ),
    "callback": dict(epochs=30, patience=None, callbacks=[lambda epoch, history: epoch == 3]),
}


@pytest.mark.parametrize("case", sorted(RUNS_AHEAD))
def test_epochs_read_ahead_give_the_run_read_one_by_one(case, monkeypatch):
    """Dispatching epochs before reading the last changes no number, and runs no epoch
    past the budget or past early stopping; one past a stop that cannot be foreseen (the
    tolerance, divergence, a callback) is dropped unread."""
    data = ds.data.load_dataset("breast_cancer")
    X, y = data.X, data.y
    kwargs = dict(seed=3, verbose=0, **RUNS_AHEAD[case])
    (one, one_calls), (ahead, ahead_calls) = (
        _fit_counting_epochs(monkeypatch, depth, "logistic", X, y, **kwargs) for depth in (0, 4)
    )
    assert (ahead.status, ahead.reason, ahead.n_updates) == (one.status, one.reason, one.n_updates)
    assert jax.tree.all(jax.tree.map(np.array_equal, ahead.params, one.params))
    assert jax.tree.all(jax.tree.map(np.array_equal, ahead.opt_state, one.opt_state))
    for key in one.history:
        if key != "time":
            np.testing.assert_array_equal(ahead.history[key], one.history[key], err_msg=key)
    assert len(one_calls) == one.n_epochs + (one.status == "diverged") * 2
    if case in ("defaults", "budget"):
        assert ahead_calls == one_calls  # nothing ran that was not read
    else:
        assert len(ahead_calls) <= len(one_calls) + 4
    assert one.status == {"defaults": "early_stopping", "budget": "max_epochs"}.get(case, case)
    if case == "defaults":
        assert len(set(one.history["lr"])) > 1  # the plateau rule cut the rate


# ------------------------------------------- small updates: loss sums after the loop

KEPT_CASES = {
    "logistic": dict(model="logistic", data="breast_cancer", batch_size=1),
    "weighted": dict(model="logistic", data="breast_cancer", batch_size=3, weighted=True),
    "softmax mlp": dict(
        model=models.mlp(hidden=(5,), task="multiclass"), data="iris", batch_size=4
    ),
    "regression, two outputs": dict(model="linear", data="two outputs", batch_size=2),
}


@pytest.mark.parametrize("case", sorted(KEPT_CASES))
def test_small_updates_that_keep_their_outputs_give_the_run_that_sums_in_the_loop(
    case, monkeypatch
):
    """Updates of a few rows keep their outputs and sum the loss and metric after the
    loop (one pass over the rows); the weights and the history are the same as when
    every update adds its sums to the loop's carry, up to the order of the sums."""
    from descend.engine import epoch

    setting = dict(KEPT_CASES[case])
    model, data = setting.pop("model"), setting.pop("data")
    if data == "two outputs":
        rng = np.random.default_rng(0)
        X = rng.standard_normal((90, 3))
        y = np.stack([X @ [1.0, -2.0, 0.5], X @ [0.3, 0.0, 1.0]], axis=1) + 0.1
    else:
        loaded = ds.data.load_dataset(data)
        X, y = loaded.X, loaded.y
    if setting.pop("weighted", False):
        setting["sample_weight"] = np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    kept = []
    decide = epoch._keeps_outputs
    monkeypatch.setattr(
        epoch, "_keeps_outputs", lambda *args: kept.append(decide(*args)) or kept[-1]
    )
    runs = []
    for limit in (epoch.KEPT_BATCH_ROWS, 0):
        monkeypatch.setattr(epoch, "KEPT_BATCH_ROWS", limit)
        epoch.compiled_epoch.cache_clear()
        runs.append(ds.fit(model, X, y, epochs=3, seed=0, verbose=0, patience=None, **setting))
    epoch.compiled_epoch.cache_clear()
    assert kept == [True, False]
    keeping, summing = runs
    leaves = zip(jax.tree.leaves(keeping.params), jax.tree.leaves(summing.params), strict=True)
    for ours, theirs in leaves:
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    for key in ("loss", "accuracy" if "accuracy" in summing.history else "r2", "grad_norm"):
        np.testing.assert_allclose(keeping.history[key], summing.history[key], rtol=1e-6)


# ------------------------------------------------- several short epochs in one program

STRETCHES = {
    "full batch": dict(batch_size=None, shuffle=False, epochs=40, optimizer="sgd", lr=0.5),
    "shuffled, scheduled": dict(
        batch_size=64, epochs=30, optimizer=ds.optim.sgd(lr=schedules.cosine_annealing(0.3, 300))
    ),
    "noisy, best inside": dict(batch_size=8, epochs=25, optimizer="sgd", lr=2.0),
    "diverged": dict(batch_size=None, epochs=30, optimizer="sgd", lr=1e6, standardize=False),
    "weighted": dict(batch_size=32, epochs=12, optimizer="adam", lr=0.01, sample_weight="uniform"),
}


@pytest.mark.parametrize("case", sorted(STRETCHES))
def test_short_epochs_in_one_program_give_the_run_of_one_program_an_epoch(case, monkeypatch):
    """Epochs run several to a program (nothing on the host needing them one at a time)
    give the same weights, history and record of the best epoch, bit for bit, as one
    program an epoch; a divergence inside the stretch is found at the same update."""
    from descend.training import loop

    data = ds.data.load_dataset("breast_cancer")
    X, y = data.X, data.y
    kwargs = dict(STRETCHES[case], seed=5, verbose=0, patience=None)
    if kwargs.get("sample_weight") == "uniform":
        kwargs["sample_weight"] = np.random.default_rng(2).uniform(0.2, 3.0, len(X))
    stretched = []
    measure = loop.Epochs._stretch_length
    monkeypatch.setattr(
        loop.Epochs, "_stretch_length", lambda *a: stretched.append(measure(*a)) or stretched[-1]
    )
    runs = []
    for updates in (loop.STRETCH_UPDATES, 1):
        monkeypatch.setattr(loop, "STRETCH_UPDATES", updates)
        runs.append(ds.fit("logistic", X, y, **kwargs))
    assert stretched[0] > 1 and stretched[1] == 1
    together, apart = runs
    assert (together.status, together.reason, together.n_updates, together.n_epochs) == (
        apart.status, apart.reason, apart.n_updates, apart.n_epochs,
    )  # fmt: skip
    assert jax.tree.all(jax.tree.map(np.array_equal, together.params, apart.params))
    assert jax.tree.all(jax.tree.map(np.array_equal, together.opt_state, apart.opt_state))
    for key in apart.history:
        if key != "time":
            np.testing.assert_array_equal(together.history[key], apart.history[key], key)
    assert (together.best is None) == (apart.best is None)
    if apart.best is not None:
        assert (together.best.loss, together.best.epoch) == (apart.best.loss, apart.best.epoch)
        assert (together.best.params is None) == (apart.best.params is None)
        if apart.best.params is not None:
            assert jax.tree.all(
                jax.tree.map(np.array_equal, together.best.params, apart.best.params)
            )
    if case == "noisy, best inside":
        assert apart.best.epoch < apart.n_epochs  # the best epoch's weights were kept
    if case == "diverged":
        assert apart.status == "diverged"


def test_a_stretch_is_not_used_where_the_host_needs_each_epoch():
    """Early stopping, validation, a tolerance, callbacks and plateau rules read every
    epoch: their runs keep one program an epoch."""
    from descend.training import loop

    data = ds.data.load_dataset("iris")
    seen = []
    measure = loop.Epochs._stretch_length

    def spy(self, watched):
        seen.append(measure(self, watched))
        return seen[-1]

    common = dict(batch_size=None, epochs=20, verbose=0, optimizer="sgd", lr=0.1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop.Epochs, "_stretch_length", spy)
        ds.fit("softmax", data.X, data.y, patience=None, **common)
        for extra in (
            dict(patience=5),
            dict(patience=None, validation_split=0.2),
            dict(patience=None, tol=1e-9),
            dict(patience=None, callbacks=[lambda epoch, history: None]),
        ):
            ds.fit("softmax", data.X, data.y, **{**common, **extra})
        ds.fit("softmax", data.X, data.y, batch_size=None, epochs=20, verbose=0, patience=None)
    assert seen[0] == 20 and seen[1:] == [1] * 5
