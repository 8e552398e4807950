"""``descend.metrics``' reports and ``FitResult.evaluate``, against scikit-learn's metric
functions computed live: through scikit-learn, and through NumPy with scikit-learn's
import made to fail."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from sklearn import metrics as sk
from sklearn.exceptions import UndefinedMetricWarning

import descend as ds
from descend import metrics
from descend.errors import DataError


@pytest.fixture(params=["scikit-learn", "numpy"])
def path(request, monkeypatch):
    """Each report computed both ways: ``numpy`` when ``import sklearn.metrics`` fails."""
    if request.param == "numpy":
        monkeypatch.setitem(sys.modules, "sklearn.metrics", None)
    return request.param


def oracle(y, predicted, proba, classes):
    """What scikit-learn says, called as the report's docstring describes each number."""
    classes = np.asarray(classes)
    # scikit-learn takes the columns of probabilities in the sorted order of the labels.
    order = np.argsort(classes)
    sorted_labels, sorted_proba = classes[order], proba[:, order]
    if len(classes) == 2:
        ratios = dict(average="binary", pos_label=classes[1], labels=classes, zero_division=0)
    else:
        ratios = dict(average="macro", zero_division=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        try:
            if len(classes) == 2:
                roc_auc = sk.roc_auc_score(y == classes[1], proba[:, 1])
            else:
                roc_auc = sk.roc_auc_score(y, sorted_proba, multi_class="ovr", labels=sorted_labels)
        except ValueError:
            roc_auc = np.nan
        return {
            "accuracy": sk.accuracy_score(y, predicted),
            "precision": sk.precision_score(y, predicted, **ratios),
            "recall": sk.recall_score(y, predicted, **ratios),
            "f1": sk.f1_score(y, predicted, **ratios),
            "roc_auc": roc_auc,
            "log_loss": sk.log_loss(y, sorted_proba, labels=sorted_labels),
            "confusion_matrix": sk.confusion_matrix(y, predicted, labels=classes),
        }


def assert_matches(report, expected, rtol=1e-12):
    for key, value in expected.items():
        if key == "confusion_matrix":
            np.testing.assert_array_equal(report[key], value)
        else:
            np.testing.assert_allclose(report[key], value, rtol=rtol, atol=0, err_msg=key)


def random_classification(n, classes, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    k = len(classes)
    logits = rng.normal(size=(n, k))
    if ties:  # scores that repeat: ROC AUC counts a tie half
        logits = np.round(logits, 0)
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    classes = np.asarray(classes)
    y = classes[rng.integers(0, k, size=n)]
    predicted = classes[np.argmax(proba + rng.normal(scale=0.3, size=proba.shape), axis=1)]
    return y, predicted, proba


CASES = {
    "binary": ([0, 1], {}),
    "binary text labels, tied scores": (["no", "yes"], {"ties": True}),
    "four classes": ([1, 2, 3, 4], {}),
    "three text classes, tied scores": (["a", "b", "c"], {"ties": True}),
    "classes not sorted (a pandas categorical's order)": (["yes", "no", "maybe"], {}),
    "two classes not sorted": ([1, 0], {}),
}


@pytest.mark.parametrize("case", CASES)
def test_classification_report_equals_scikit_learn(path, case):
    classes, options = CASES[case]
    y, predicted, proba = random_classification(300, classes, **options)
    report = metrics.classification_report(y, predicted, proba, classes)
    assert report["computed_by"] == path
    assert report["average"] == ("binary" if len(classes) == 2 else "macro")
    assert report["labels"] == list(classes) and report["n_samples"] == 300
    assert_matches(report, oracle(y, predicted, proba, classes))


@pytest.mark.parametrize("classes", [[0, 1], ["a", "b", "c"]])
def test_one_class_in_y_gives_nan_roc_auc_and_the_rest_as_scikit_learn(path, classes):
    y, predicted, proba = random_classification(50, classes, seed=3)
    y = np.full_like(y, classes[0])
    report = metrics.classification_report(y, predicted, proba, classes)
    assert np.isnan(report["roc_auc"])
    assert_matches(report, oracle(y, predicted, proba, classes))


def test_macro_average_takes_the_labels_found_in_y_or_the_predictions(path):
    classes = ["a", "b", "c", "d"]  # "d" is in neither
    y, predicted, proba = random_classification(60, ["a", "b", "c"], seed=4)
    proba = np.c_[proba * 0.9, np.full(len(y), 0.1)]
    report = metrics.classification_report(y, predicted, proba, classes)
    assert report["confusion_matrix"].shape == (4, 4)
    assert_matches(report, oracle(y, predicted, proba, classes))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_loss_clips_probabilities_of_0_and_1_as_scikit_learn(path, dtype):
    y = np.array([0, 1, 1, 0, 1])
    proba = np.array([[1, 0], [0, 1], [1, 0], [0.3, 0.7], [0, 1]], dtype=dtype)  # one sure miss
    predicted = np.argmax(proba, axis=1)
    report = metrics.classification_report(y, predicted, proba, [0, 1])
    assert np.isfinite(report["log_loss"])
    rtol = 1e-12 if dtype == np.float64 else 1e-6  # scikit-learn sums in float32 too
    assert_matches(report, oracle(y, predicted, proba, [0, 1]), rtol=rtol)


def test_nothing_predicted_positive_counts_precision_0(path):
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.7, 0.3]])
    report = metrics.classification_report(y, np.zeros(4, int), proba, [0, 1])
    assert report["precision"] == 0.0 and report["f1"] == 0.0
    assert_matches(report, oracle(y, np.zeros(4, int), proba, [0, 1]))


def regression_oracle(y, predicted):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return {
            "r2": sk.r2_score(y, predicted),
            "mae": sk.mean_absolute_error(y, predicted),
            "rmse": sk.root_mean_squared_error(y, predicted),
        }


@pytest.mark.parametrize("outputs", [None, 3])
def test_regression_report_equals_scikit_learn(path, outputs):
    rng = np.random.default_rng(1)
    shape = (200,) if outputs is None else (200, outputs)
    y = rng.normal(size=shape) * 10 + 5
    predicted = y + rng.normal(size=shape)
    report = metrics.regression_report(y, predicted)
    assert report["computed_by"] == path and report["task"] == "regression"
    assert_matches(report, regression_oracle(y, predicted))


@pytest.mark.parametrize(
    "y, predicted",
    [([2.0], [3.0]), ([4.0, 4.0, 4.0], [4.0, 4.0, 4.0]), ([4.0, 4.0], [4.0, 5.0])],
    ids=["one row", "constant target, exact", "constant target, missed"],
)
def test_regression_edge_cases_are_scikit_learns(path, y, predicted):
    report = metrics.regression_report(np.array(y), np.array(predicted))
    expected = regression_oracle(y, predicted)
    for key, value in expected.items():
        np.testing.assert_equal(report[key], value)


# ------------------------------------------------------------ FitResult.evaluate


@pytest.fixture(scope="module")
def trained():
    iris = ds.data.load_dataset("iris")
    cancer = ds.data.load_dataset("breast_cancer")
    diabetes = ds.data.load_dataset("diabetes")
    quick = dict(epochs=5, verbose=0)
    return {
        "iris": (ds.fit("softmax", iris, **quick), iris),
        "breast_cancer": (ds.fit("logistic", cancer, **quick), cancer),
        "diabetes": (ds.fit("linear", diabetes, **quick), diabetes),
    }


@pytest.mark.parametrize("name", ["iris", "breast_cancer"])
def test_evaluate_a_classifier_equals_scikit_learn_on_its_predictions(path, trained, name):
    result, data = trained[name]
    labels = np.asarray(data.classes)[data.y]
    report = result.evaluate(data.X, labels)
    assert report["computed_by"] == path
    proba = result.predict_proba(data.X)
    expected = oracle(labels, result.predict(data.X), proba, result.classes)
    assert_matches(report, expected, rtol=1e-6)  # float32 probabilities
    # A Dataset gives its labels itself.
    assert result.evaluate(data)["accuracy"] == report["accuracy"] == result.score(data)


def test_evaluate_a_regression_in_the_targets_units(path, trained):
    result, data = trained["diabetes"]
    report = result.evaluate(data.X, data.y)
    assert_matches(report, regression_oracle(data.y, result.predict(data.X)), rtol=1e-6)
    assert report["r2"] == pytest.approx(result.score(data.X, data.y), rel=1e-6)
    assert report["mae"] > 10  # the targets' units (about 150), not standardized ones


def test_evaluate_refuses_labels_rows_and_features_the_model_does_not_fit(trained):
    result, data = trained["iris"]
    labels = np.asarray(data.classes)[data.y]
    with pytest.raises(DataError, match=r"labels the model was not trained on: \['rose'\]"):
        result.evaluate(data.X, np.where(labels == "setosa", "rose", labels))
    with pytest.raises(DataError, match="X has 150 samples but y has 149"):
        result.evaluate(data.X, labels[1:])
    with pytest.raises(DataError, match="X has 3 features; the model was trained on 4"):
        result.evaluate(data.X[:, :3], labels)
    with pytest.raises(DataError, match=r"evaluate\(X, y\) needs the targets y"):
        result.evaluate(data.X)
