"""``descend evaluate`` (scikit-learn's metrics of a saved model on a table) and
``descend train --log-dir`` (the CSV and TensorBoard logs of a run)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn import metrics as sk

import descend as ds
from descend.cli import main


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Iris as a CSV of text labels and a regression CSV, each with a model trained on
    it and saved, and a model trained on arrays (no column names)."""
    folder = tmp_path_factory.mktemp("evaluate")
    iris = ds.data.load_dataset("iris")
    labels = np.asarray(iris.classes)[iris.y]
    header = [name.split(" (")[0].replace(" ", "_") for name in iris.feature_names]
    iris_csv = write_csv(
        folder / "iris.csv", [*header, "species"],
        [[*x, label] for x, label in zip(iris.X.tolist(), labels, strict=True)],
    )  # fmt: skip
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    y = X @ np.array([3.0, -1.0]) + 10 + rng.normal(size=80)
    prices_csv = write_csv(folder / "prices.csv", ["a", "b", "price"], np.c_[X, y].tolist())
    quick = dict(epochs=4, verbose=0)
    ds.save(folder / "iris.ckpt", ds.fit("softmax", str(iris_csv), target="species", **quick))
    ds.save(folder / "prices.ckpt", ds.fit("linear", str(prices_csv), **quick))
    ds.save(folder / "arrays.ckpt", ds.fit("linear", np.c_[X, X[:, 0]], y, **quick))
    ds.save(folder / "binary.ckpt", ds.fit("logistic", X, (y > 10).astype(int), **quick))
    write_csv(folder / "codes.csv", ["a", "b", "label"], np.c_[X, np.arange(80) % 3].tolist())
    return folder


def test_evaluate_json_is_scikit_learns_metrics_of_the_models_predictions(capsys, files):
    status, out, err = run(capsys, "evaluate", files / "iris.ckpt", files / "iris.csv", "--json")
    assert status == 0 and err == ""
    report = json.loads(out)
    assert report["target"] == "species" and report["task"] == "multiclass"
    assert report["average"] == "macro" and report["computed_by"] == "scikit-learn"
    model = ds.load(files / "iris.ckpt")
    table = ds.data.tables.read_table(files / "iris.csv")
    y = table.columns["species"].astype(str)
    predicted, proba = model.predict(table), model.predict_proba(table)
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted), rel=1e-12)
    assert report["f1"] == pytest.approx(sk.f1_score(y, predicted, average="macro"), rel=1e-12)
    assert report["log_loss"] == pytest.approx(sk.log_loss(y, proba), rel=1e-6)
    assert report["roc_auc"] == pytest.approx(
        sk.roc_auc_score(y, proba, multi_class="ovr"), rel=1e-12
    )
    assert report["confusion_matrix"] == sk.confusion_matrix(y, predicted).tolist()


def test_evaluate_prints_the_numbers_and_the_confusion_matrix(capsys, files):
    status, out, _ = run(capsys, "evaluate", files / "iris.ckpt", files / "iris.csv")
    assert status == 0
    assert "150 rows, target 'species' (multiclass classification" in out
    assert "(macro average over the labels)" in out and "log_loss" in out
    matrix = out.split("columns: predicted):\n")[1].splitlines()
    assert matrix[0].split() == ["setosa", "versicolor", "virginica"]
    assert [line.split()[0] for line in matrix[1:]] == ["setosa", "versicolor", "virginica"]


def test_evaluate_a_regression_takes_the_last_column_by_default(capsys, files):
    status, out, _ = run(capsys, "evaluate", files / "prices.ckpt", files / "prices.csv", "--json")
    assert status == 0
    report = json.loads(out)
    model = ds.load(files / "prices.ckpt")
    table = ds.data.tables.read_table(files / "prices.csv")
    y, predicted = table.columns["price"], model.predict(table)
    assert report["target"] == "price" and set(report) >= {"r2", "mae", "rmse"}
    assert report["r2"] == pytest.approx(sk.r2_score(y, predicted), rel=1e-9)
    assert report["rmse"] == pytest.approx(sk.root_mean_squared_error(y, predicted), rel=1e-9)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["missing.ckpt", "iris.csv"], "checkpoint file 'missing.ckpt' does not exist"),
        (["iris.ckpt", "missing.csv"], "data file 'missing.csv' does not exist"),
        (["iris.ckpt", "iris.csv", "--target", "specie"], "did you mean 'species'?"),
        (["iris.ckpt", "prices.csv"], "has no column 'species', the target the model was"),
        (["iris.ckpt", "prices.csv", "--target", "price"], "lacks the feature column"),
        (["arrays.ckpt", "prices.csv"], "X has 2 features; the model was trained on 3"),
        (["prices.ckpt", "iris.csv", "--target", "species"], "holds text labels"),
        (["binary.ckpt", "prices.csv"],
         "...) but the model is a classifier (its classes: [0, 1]): score it on class "
         "labels, or score a regression model on these targets"),
        (["binary.ckpt", "codes.csv"], "the target column has labels the model was not trained "
         "on: [2] (its classes: [0, 1]); give a target column of those labels"),
    ],
)  # fmt: skip
def test_evaluate_bad_input_is_one_line_and_exit_2(capsys, files, monkeypatch, argv, fragment):
    monkeypatch.chdir(files)
    status, out, err = run(capsys, "evaluate", *argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("descend: ") and fragment in err
    assert not any(python in err for python in ("(dataset)", "y_val", "ds.", "fit("))


def test_train_log_dir_writes_the_csv_and_the_tensorboard_events(capsys, tmp_path):
    from test_callbacks import read_scalars

    logs = tmp_path / "logs"
    status, out, _ = run(capsys, "train", "--dataset", "iris", "--epochs", "3", "--log-dir",
                         logs, "--json")  # fmt: skip
    assert status == 0
    summary = json.loads(out)
    assert summary["log_dir"] == str(logs)
    history = summary["history"]
    with open(logs / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == history["epoch"] == [1, 2, 3]
    for key in ("loss", "val_loss", "accuracy", "val_accuracy", "lr"):
        assert [float(row[key]) for row in rows] == history[key]
    scalars = read_scalars(logs)
    np.testing.assert_array_equal(
        [value for _, value in scalars["val_loss"]], np.float32(history["val_loss"])
    )


def test_train_log_dir_that_cannot_be_written_is_one_line_and_exit_2(capsys, tmp_path):
    (tmp_path / "a_file").write_text("")
    status, _, err = run(capsys, "train", "--dataset", "iris", "--epochs", "1",
                         "--log-dir", tmp_path / "a_file" / "logs")  # fmt: skip
    assert status == 2
    assert err.count("\n") == 1 and "descend: cannot write" in err and "a_file" in err
