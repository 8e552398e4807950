"""fit's front door: one table of what each option accepts, one wording, one batch rule."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import descend as ds
from descend.errors import DescendWarning, InputError
from descend.training.spec import CONSTRAINTS, STREAM_REFUSES

# A value each constraint refuses, and the requirement its message states.
BAD = {
    "batch_size": (0, "an integer >= 1"),
    "method": ("sometimes", "'batch', 'stochastic' or 'minibatch'"),
    "epochs": (2.5, "an integer >= 1"),
    "accumulate": (-1, "an integer >= 1"),
    "drop_last": ("yes", "True or False"),
    "shuffle": (1, "True or False"),
    "seed": (-3, "an integer >= 0"),
    "validation_split": (1.0, "in [0.0, 1.0)"),
    "standardize": (None, "True or False"),
    "tol": (-1e-3, "a finite number >= 0"),
    "patience": (0, "an integer >= 1"),
    "min_delta": (float("nan"), "a finite number >= 0"),
    "l2": (-1.0, "'auto' or a finite number >= 0"),
    "restore_best": ("no", "True or False"),
    "verbose": (3, "0, 1 or 2"),
    "dtype": ("float16", "'float32' or 'float64'"),
    "nan_policy": ("ignore", "'raise', 'drop' or 'impute_mean'"),
}


def _data(n=40):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 2))
    return X, X @ np.array([1.0, -1.0])


def test_every_constraint_has_a_refused_value_here():
    assert set(BAD) == set(CONSTRAINTS)


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_option_is_refused_in_the_one_wording(name):
    value, requirement = BAD[name]
    X, y = _data()
    arguments = {"epochs": 1, "verbose": 0, name: value}
    with pytest.raises(InputError) as error:
        ds.fit("linear", X, y, **arguments)
    assert str(error.value).startswith(f"{name} must be {requirement}, got {value!r}")


def test_nothing_runs_before_the_options_are_checked():
    """A bad option is refused before the data is read (a missing file is not opened)."""
    with pytest.raises(InputError, match="epochs must be"):
        ds.fit("linear", "/no/such/file.csv", epochs=0)


@pytest.mark.parametrize("name", sorted(STREAM_REFUSES))
def test_each_option_a_stream_refuses_says_what_to_do_instead(name):
    X, y = _data(300)
    stream = ds.data.stream([(X, y)], chunk_rows=256)
    given = {"y": y, "sample_weight": np.ones(300), "validation_split": 0.2, "target": "y",
             "features": ["a"], "nan_policy": "drop"}[name]  # fmt: skip
    arguments = {"epochs": 1, "verbose": 0, "batch_size": 16, name: given}
    with pytest.raises(InputError, match=f"^{name} cannot be used with a stream: "):
        ds.fit("linear", stream, **arguments)


def _warned_batch(fit):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit()
    messages = [str(w.message) for w in caught if issubclass(w.category, DescendWarning)]
    return result, messages


def test_a_batch_larger_than_the_data_is_the_data_for_arrays_tables_and_streams(tmp_path):
    """One rule everywhere: the data, with a warning that says what is used."""
    X, y = _data(40)
    path = tmp_path / "data.csv"
    rows = [f"{a},{b},{target}" for (a, b), target in zip(X, y, strict=True)]
    path.write_text("a,b,y\n" + "\n".join(rows) + "\n")
    common = dict(batch_size=64, epochs=2, verbose=0, shuffle=False)
    runs = {
        "arrays": lambda: ds.fit("linear", X, y, **common),
        "table": lambda: ds.fit("linear", str(path), **common),
        "stream": lambda: ds.fit("linear", ds.data.stream([(X, y)], chunk_rows=64), **common),
    }
    for where, run in runs.items():
        result, messages = _warned_batch(run)
        assert messages == [
            "batch_size=64 is larger than the 40 training samples; using 40 (batch gradient "
            "descent)"
        ], where
        assert result.n_updates == 2, where  # one update per epoch: batch gradient descent


def test_the_scikit_learn_estimators_follow_the_same_rule_quietly():
    """As documented there: a batch larger than the data is batch gradient descent."""
    from descend.sklearn import GDRegressor

    X, y = _data(20)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DescendWarning)
        reg = GDRegressor(batch_size=64, max_epochs=3, tol=None, random_state=0).fit(X, y)
    assert reg.t_ == 3


def test_init_weights_that_do_not_fit_the_model_are_refused_with_both_shapes():
    data = ds.data.load_dataset("breast_cancer")
    logistic = ds.fit("logistic", data, epochs=1, verbose=0)
    with pytest.raises(InputError, match=r"have shapes .* but softmax\(\) for 30 features"):
        ds.fit("softmax", data, epochs=2, verbose=0, init=logistic.state)


def test_an_optimizer_that_does_not_fit_the_state_is_named_without_blaming_a_checkpoint():
    X, y = _data()
    first = ds.fit("linear", X, y, epochs=1, verbose=0)  # adam
    with pytest.raises(InputError, match=r"\(the checkpoint's, or init=\) does not fit sgd"):
        ds.fit("linear", X, y, epochs=2, verbose=0, optimizer="sgd", init=first.state)


def test_score_of_class_codes_is_an_error_not_a_silent_zero():
    """A Dataset's y holds codes; predict returns labels (sklearn's accuracy is the oracle)."""
    from sklearn.metrics import accuracy_score

    data = ds.data.load_dataset("breast_cancer")
    result = ds.fit("logistic", data, epochs=3, verbose=0, standardize=True)
    labels = np.asarray(data.classes)[data.y]
    assert result.score(data) == pytest.approx(accuracy_score(labels, result.predict(data.X)))
    assert result.score(data.X, labels) == result.score(data)
    with pytest.raises(ds.errors.DataError, match="labels the model was not trained on"):
        result.score(data.X, data.y)


def test_a_classifier_scored_on_continuous_targets_says_so():
    import re

    data = ds.data.load_dataset("breast_cancer")
    result = ds.fit("logistic", data, epochs=1, verbose=0)
    continuous = data.X[:, 0]  # a measurement, not a label
    classes = re.escape(str(np.asarray(result.classes).tolist()))
    for method in (result.score, result.evaluate):
        with pytest.raises(ds.errors.DataError, match="^the targets are continuous .* but the "
                           rf"model is a classifier \(its classes: {classes}\)"):  # fmt: skip
            method(data.X, continuous)
