"""The defaults' problem, against scikit-learn's: standardized features and regression
targets, l2="auto" (Ridge(alpha=0.5), LogisticRegression(C=1)), and the target's type
deciding the task as scikit-learn's type_of_target does."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import type_of_target

import descend as ds
from descend.sklearn import GDRegressor

# Batch gradient descent with a line search run to the minimizer, with the default
# problem (scaling and penalty).
CONVERGED = dict(optimizer="gd", lr=None, batch_size=None, epochs=3000, tol=1e-10,
                 patience=None, dtype="float64", verbose=0)  # fmt: skip


def prices(n=300, seed=0):
    """Features on scales 1e-2 to 1e3 and a target in the hundreds of thousands."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * [0.01, 1.0, 30.0, 1000.0] + [0.0, 5.0, -20.0, 3000.0]
    y = 2e5 + X @ [4e6, 3e4, 800.0, 40.0] + rng.normal(scale=2e4, size=n)
    return X, y


@pytest.mark.parametrize("optimizer", ["gd", "lbfgs"])
def test_a_regression_in_large_units_is_ridge_on_standardized_data(optimizer):
    """lbfgs too: its own tolerances (torch's 1e-7, 1e-9) left unset leave the stop to
    fit's tol (they stalled it at a gradient norm of 1.3e-5)."""
    X, y = prices()
    result = ds.fit("linear", X, y, **{**CONVERGED, "optimizer": optimizer})
    assert result.status == "converged", result.reason
    reference = make_pipeline(StandardScaler(), Ridge(alpha=0.5)).fit(X, y)
    assert result.target_standardizer is not None
    np.testing.assert_allclose(result.target_standardizer.mean, [y.mean()], rtol=1e-12)
    np.testing.assert_allclose(result.target_standardizer.scale, [y.std()], rtol=1e-12)
    X_new, _ = prices(50, seed=1)
    np.testing.assert_allclose(result.predict(X_new), reference.predict(X_new), rtol=1e-7)
    assert result.score(X, y) == pytest.approx(reference.score(X, y), abs=1e-9)
    # The history's loss is in the standardized units: about 1 - R² at the optimum.
    assert result.history["loss"][-1] == pytest.approx(1 - reference.score(X, y), rel=0.05)


def test_target_scaling_comes_back_from_a_checkpoint_and_continues(tmp_path):
    X, y = prices()
    first = ds.fit("linear", X, y, optimizer="adam", lr=0.05, epochs=3, verbose=0)
    ds.save(tmp_path / "prices.ckpt", first)
    loaded = ds.load(tmp_path / "prices.ckpt")
    np.testing.assert_array_equal(loaded.predict(X), first.predict(X))
    assert loaded.l2 == first.l2 == pytest.approx(1 / 300)  # 1/n of the training rows
    # A continued run keeps the scale it trained on, even on other rows.
    more = ds.fit(None, X[:100] * 2, y[:100] * 3, epochs=5, resume=tmp_path / "prices.ckpt",
                  verbose=0)  # fmt: skip
    np.testing.assert_array_equal(more.target_standardizer.mean, first.target_standardizer.mean)
    np.testing.assert_array_equal(more.standardizer.scale, first.standardizer.scale)
    assert more.l2 == first.l2


@pytest.mark.parametrize(
    "settings",
    [
        dict(optimizer="sgd", learning_rate=0.5, max_epochs=2000),
        dict(optimizer="lbfgs", learning_rate=1.0, max_epochs=60),  # its natural first step
    ],
    ids=["sgd", "lbfgs"],
)
def test_the_estimators_coefficients_are_ridges_in_the_data_units(settings):
    """alpha is fit's l2, in the objective that lbfgs's line search evaluates."""
    X, y = prices()
    reg = GDRegressor(method="batch", tol=None, **settings).fit(X, y)
    scaler = StandardScaler().fit(X)
    ridge = Ridge(alpha=0.5).fit(scaler.transform(X), y)
    np.testing.assert_allclose(reg.coef_, ridge.coef_ / scaler.scale_, rtol=1e-9)
    np.testing.assert_allclose(reg.predict(X), ridge.predict(scaler.transform(X)), rtol=1e-6)


@pytest.mark.parametrize("model", ["logistic", "softmax"])
def test_l2_auto_is_logistic_regressions_c_1(model):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 5)) * [1.0, 10.0, 0.1, 3.0, 100.0]
    scores = X / X.std(axis=0) @ rng.normal(size=(5, 3)) + rng.normal(size=(200, 3))
    y = np.argmax(scores[:, :2] if model == "logistic" else scores, axis=1)
    result = ds.fit(model, X, y, **CONVERGED)
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, tol=1e-12,
                                                                   max_iter=10_000))  # fmt: skip
    reference.fit(X, y)
    np.testing.assert_allclose(
        result.predict_proba(X), reference.predict_proba(X), rtol=1e-5, atol=1e-7
    )


# ------------------------------------------------------------ the target's type


@pytest.mark.parametrize(
    "labels",
    [
        np.array([0, 1] * 30),
        np.array([1, 2, 3] * 20),
        np.array([-1, 1] * 30),
        np.array([True, False] * 30),
        np.array(["cat", "dog", "cat"] * 20),
        np.arange(60) % 20,  # 20 distinct integers in 60 rows: still classes
        np.arange(60) % 31,  # more than half the rows distinct: counts, a regression
        np.linspace(0, 1, 60),
    ],
    ids=["0/1", "1/2/3", "-1/1", "bool", "text", "20 ints", "31 ints", "floats"],
)
def test_load_takes_the_task_of_the_target_as_type_of_target(tmp_path, labels):
    path = tmp_path / "t.csv"
    x = np.arange(len(labels), dtype=float)
    path.write_text("x,t\n" + "".join(f"{a},{b}\n" for a, b in zip(x, labels, strict=True)))
    dataset = ds.data.load(path)
    kind = type_of_target(labels)
    many = len(np.unique(labels)) > 20 or len(np.unique(labels)) > len(labels) / 2
    if kind in ("binary", "multiclass") and not many:
        assert dataset.classes is not None and len(dataset.classes) == len(np.unique(labels))
        if labels.dtype.kind in "if":  # numbers: the classes are the values, sorted
            assert list(dataset.classes) == sorted(np.unique(labels).tolist())
        np.testing.assert_array_equal(np.asarray(dataset.classes)[dataset.y].astype(str),
                                      _as_read(labels))  # fmt: skip
    else:
        assert dataset.classes is None
        np.testing.assert_allclose(dataset.y, labels.astype(float), rtol=1e-6)


def _as_read(labels):
    """The labels as the file holds them, compared as text (2.0 written 2)."""
    if labels.dtype.kind == "f":
        return np.asarray([f"{v:g}" for v in labels])
    return labels.astype(str)


def test_boolean_labels_come_back_as_booleans():
    X = np.random.default_rng(0).normal(size=(60, 2))
    y = X[:, 0] + 0.3 * X[:, 1] > 0
    result = ds.fit("logistic", X, y, epochs=5, verbose=0)
    reference = LogisticRegression().fit(X, y)
    assert result.classes.tolist() == reference.classes_.tolist() == [False, True]
    assert result.predict(X).dtype == bool and reference.predict(X).dtype == bool


def test_numbers_written_with_a_decimal_point_are_a_regression(tmp_path):
    """0.0 / 1.0 (scikit-learn's type_of_target says binary): a column written as
    floats is a measurement, a regression, unless task= says otherwise."""
    path = tmp_path / "t.csv"
    path.write_text("x,t\n" + "".join(f"{i},{i % 2}.0\n" for i in range(40)))
    assert ds.data.load(path).classes is None
    assert ds.data.load(path, task="classification").classes == (0, 1)


def test_task_overrides_the_choice(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,t\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    assert ds.data.load(path).classes == (0, 1)
    assert ds.data.load(path, task="regression").classes is None
    regression = ds.data.load(path, task="regression")
    np.testing.assert_array_equal(regression.y, [i % 2 for i in range(40)])
    with pytest.raises(ds.errors.InputError, match="did you mean 'regression'"):
        ds.data.load(path, task="regresion")
