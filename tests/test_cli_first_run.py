"""The command line as a new user meets it: the task it chooses, what it says it read,
resuming without repeating oneself, usage errors, pipes, help texts and small words."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from sklearn.utils.multiclass import type_of_target

import descend as ds
from descend.cli import build_parser, main


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_usage_error(status, out, err, fragment):
    assert status == 2, err
    assert out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("descend: "), err
    assert fragment in err, err


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A ';'-separated table: two numbers, a text column, a weight column, a 0/1 label."""
    rng = np.random.default_rng(0)
    n = 120
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    city = rng.choice(["a", "b", "c"], n)
    weight = rng.uniform(0.5, 2.0, n)
    label = (x1 + 0.5 * x2 + (city == "a") > 0.3).astype(int)
    path = tmp_path_factory.mktemp("first") / "table.csv"
    lines = ["x1;x2;city;w;label"]
    lines += [
        f"{a:.4f};{b:.4f};{c};{w:.3f};{y}"
        for a, b, c, w, y in zip(x1, x2, city, weight, label, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------ the target decides the task


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([0, 1], "2 distinct integers: binary classification; --task regression to override"),
        ([1, 2, 3], "3 distinct integers: multiclass classification"),
        ([-1, 1], "2 distinct integers: binary classification"),
        (["no", "yes"], "2 labels: binary classification"),
        ([0.5, 1.25, 2.0, 3.5], "holds numbers"),
    ],
)
def test_the_first_line_says_which_task_the_target_chose_as_scikit_learn(
    capsys, tmp_path, labels, expected
):
    rng = np.random.default_rng(1)
    n = 80
    y = [labels[i % len(labels)] for i in range(n)]
    if isinstance(labels[0], float):
        y = list(rng.normal(size=n) * 3)  # many distinct floats: continuous
    path = tmp_path / "t.csv"
    x = rng.normal(size=n)
    path.write_text("x,target\n" + "".join(f"{a:.4f},{b}\n" for a, b in zip(x, y, strict=True)))
    status, out, err = run(capsys, "train", path, "--epochs", 1)
    assert status == 0, err
    first, second = out.splitlines()[:2]
    assert first.startswith(f"read {path}: {n} rows, 2 columns split at ','")
    assert second.startswith("target 'target' ") and expected in second
    sklearn_kind = type_of_target(np.asarray(y))
    chose = {"binary": "binary", "multiclass": "multiclass", "continuous": "regression"}
    assert chose[sklearn_kind] in second.replace("multiclass classification", "multiclass")


def test_task_overrides_the_choice(capsys, table):
    status, out, err = run(capsys, "train", table, "--task", "regression", "--epochs", 1)
    assert status == 0, err
    assert "target 'label' holds numbers (2 distinct values): regression, as --task says" in out
    assert "(the loss is the standardized target's; R² and predictions in its units)" in out
    assert "trained linear()" in out


# ------------------------------------------------------------ what was read, and how


def test_the_detected_delimiter_is_said_and_sep_overrides_it(capsys, table):
    status, out, _ = run(capsys, "train", table, "--epochs", 1)
    assert status == 0
    assert out.splitlines()[0] == (
        f"read {table}: 120 rows, 5 columns split at ';' (detected; --sep to override)"
    )
    status, out, _ = run(capsys, "train", table, "--sep", ";", "--epochs", 1)
    assert out.splitlines()[0].endswith("split at ';' (as --sep says)")
    status, out, err = run(capsys, "train", table, "--sep", ",", "--epochs", 1)
    assert status == 2 and out == ""


def test_weight_column_weighs_the_rows_as_fit_does(capsys, table, tmp_path):
    saved = tmp_path / "weighted.ckpt"
    argv = ["train", table, "--weight-column", "w", "--epochs", 3, "--validation-split", 0]
    status, out, err = run(capsys, *argv, "--dtype", "float64", "--save", saved, "--json")
    assert status == 0, err
    dataset = ds.data.load(table, target="label", sep=";", dtype="float64")
    j = list(dataset.feature_names).index("w")
    X, weights = np.delete(dataset.X, j, axis=1), dataset.X[:, j]
    expected = ds.fit(
        "logistic", X, dataset.y, sample_weight=weights, epochs=3, dtype="float64", verbose=0
    )
    loaded = ds.load(saved)
    assert "w" not in loaded.encoding.columns
    np.testing.assert_allclose(loaded.params["w"], expected.params["w"], rtol=1e-10)
    unweighted = ds.fit("logistic", X, dataset.y, epochs=3, dtype="float64", verbose=0)
    assert not np.allclose(loaded.params["w"], unweighted.params["w"], rtol=1e-6)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--weight-column", "label"], "--weight-column 'label' is the target"),
        (["--weight-column", "ww"], "--weight-column 'ww' is not a column of the file; did you"),
        (["--weight-column", "city"], "must hold numbers, not categories"),
    ],
)
def test_a_bad_weight_column_is_a_usage_error(capsys, table, argv, fragment):
    assert_usage_error(*run(capsys, "train", table, *argv, "--epochs", 1), fragment)


def test_predict_append_writes_the_input_rows_with_the_predictions(capsys, table, tmp_path):
    saved = tmp_path / "model.ckpt"
    status, _, err = run(capsys, "train", table, "--weight-column", "w", "--epochs", 2,
                         "--save", saved)  # fmt: skip
    assert status == 0, err
    status, out, err = run(capsys, "predict", saved, table, "--append")
    assert status == 0, err
    lines = out.splitlines()
    source = table.read_text().splitlines()
    assert lines[0] == source[0] + ";prediction"
    assert [line.rsplit(";", 1)[0] for line in lines[1:]] == source[1:]
    predictions = ds.load(saved).predict(str(table))
    assert [int(line.rsplit(";", 1)[1]) for line in lines[1:]] == predictions.tolist()


# ------------------------------------------------------------ resume without repeating


def test_resume_takes_model_and_optimizer_from_the_checkpoint(capsys, tmp_path):
    first, resumed, straight = (tmp_path / f"{name}.ckpt" for name in ("a", "b", "c"))
    common = ["--dataset", "iris", "--validation-split", 0.2, "--json"]
    tuned = ["--model", "mlp", "--hidden", "8", "--optimizer", "sgd", "--lr", 0.05,
             "--opt-args", "momentum=0.9"]  # fmt: skip
    assert run(capsys, "train", *common, *tuned, "--epochs", 2, "--save", first)[0] == 0
    status, out, err = run(capsys, "train", *common, "--epochs", 4, "--resume", first,
                           "--save", resumed)  # fmt: skip
    assert status == 0, err
    assert json.loads(out)["optimizer"].startswith("sgd(lr=0.05, momentum=0.9")
    assert run(capsys, "train", *common, *tuned, "--epochs", 4, "--save", straight)[0] == 0
    a, b = ds.load(resumed), ds.load(straight)
    assert a.model == b.model and a.optimizer == b.optimizer and a.n_epochs == 4
    for left, right in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(left, right)


def test_resume_names_what_the_checkpoint_holds(capsys, table, tmp_path):
    saved = tmp_path / "model.ckpt"
    assert run(capsys, "train", table, "--weight-column", "w", "--epochs", 1,
               "--save", saved)[0] == 0  # fmt: skip
    # Found once the table is read: the lines saying what was read come first.
    status, _, err = run(capsys, "train", table, "--weight-column", "w", "--model", "mlp",
                         "--epochs", 3, "--resume", saved)  # fmt: skip
    assert_usage_error(status, "", err, "the checkpoint holds a logistic() model, not mlp(")
    # the table read without --weight-column: its columns differ from the checkpoint's
    status, _, err = run(capsys, "train", table, "--epochs", 3, "--resume", saved)
    assert_usage_error(
        status, "", err,
        "the checkpoint was trained on the columns x1, x2, city (a, b, c); these data give "
        "x1, x2, city (a, b, c), w",
    )  # fmt: skip


# ------------------------------------------------------------ usage errors and typos


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["minimize", "rosenbrok"], "did you mean 'rosenbrock'?"),
        (["compare", "himelblau"], "did you mean 'himmelblau'?"),
        (["train", "--dataset", "iris", "--hidden", "64,x"], "--hidden: expected comma-separated"),
        (["train", "--dataset", "iris", "--l2", "big"], "--l2: expected 'auto' or a number"),
        (
            ["train", "--dataset", "iris", "--epochs", "x"],
            "--epochs: expected a whole number, got 'x'",
        ),
        (["train", "--dataset", "iris", "--task", "both"], "--task: invalid choice"),
        (["minimize", "x**2 +"], "needs something to follow it at column 6"),
    ],
)
def test_every_malformed_value_is_a_one_line_usage_error(capsys, argv, fragment):
    assert_usage_error(*run(capsys, *argv), fragment)


def test_a_value_fit_refuses_is_a_usage_error_in_cli_words(capsys):
    status, _, err = run(capsys, "train", "--dataset", "iris", "--validation-split", 1)
    assert_usage_error(status, "", err, "--validation-split must be in [0.0, 1.0), got 1.0")


def test_a_closed_pipe_ends_quietly():
    """`descend compare ... --json | head -c 10`: the reader goes away, descend exits 0."""
    process = subprocess.Popen(
        [sys.executable, "-m", "descend", "optimizers", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    process.stdout.close()  # nobody reads: the first write meets a closed pipe
    status = process.wait(timeout=120)
    error = process.stderr.read().decode()
    process.stderr.close()
    assert (status, error) == (0, "")


def test_a_run_that_saves_finishes_when_its_reader_goes_away(tmp_path):
    """`descend train ... --save m.ckpt | head -2`: the model is trained and saved."""
    saved = tmp_path / "model.ckpt"
    process = subprocess.Popen(
        [sys.executable, "-m", "descend", "train", "--dataset", "iris", "--epochs", "3",
         "--save", str(saved)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    process.stdout.close()
    status = process.wait(timeout=300)
    error = process.stderr.read().decode()
    process.stderr.close()
    assert (status, error) == (0, "")
    assert ds.load(saved).n_epochs == 3


def test_a_piped_table_is_never_truncated():
    done = subprocess.run(
        [sys.executable, "-m", "descend", "compare", "rosenbrock", "--optimizers",
         "gd,adam,lbfgs", "--max-iter", "200"],
        capture_output=True, text=True, timeout=300, env={"COLUMNS": "40", **_env()},
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    header = next(line for line in done.stdout.splitlines() if "optimizer" in line)
    for column in ("iters to tol", "final value", "distance to minimizer", "status"):
        assert column in header
    assert "…" not in done.stdout


def _env():
    import os

    return {key: value for key, value in os.environ.items() if key != "COLUMNS"}


# ------------------------------------------------------------ help texts


def _options(parser):
    commands = {
        name: sub
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name, sub in action.choices.items()
    }
    for name, sub in commands.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                yield name, action


@pytest.mark.parametrize("command", ["train", "predict", "minimize", "compare", "grad"])
def test_every_option_has_a_sentence_and_its_default(capsys, command):
    parser = build_parser()
    for name, action in _options(parser):
        if name != command:
            continue
        assert action.help and len(action.help) > 10, (name, action.option_strings)
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default:" in text or command == "grad"  # grad's options have no defaults
    if command == "train":
        for fragment in ("--epochs EPOCHS", "(default: 200)", "--patience", "(default: 10)",
                         "--min-delta", "(default: 0.0001)", "--l2"):  # fmt: skip
            assert fragment in text, fragment


def test_library_words_become_option_names_in_cli_messages(capsys, tmp_path):
    path = tmp_path / "holes.csv"
    path.write_text("x,y\n1,2\n,3\n4,5\n6,7\n")
    status, out, err = run(capsys, "train", path, "--epochs", 1)
    assert_usage_error(status, out, err, "--nan-policy drop")
    assert "nan_policy=" not in err


# ------------------------------------------------------------ the small words


def test_one_epoch_compiling_and_a_plot_confirmed(capsys, tmp_path):
    plot = tmp_path / "curves.png"
    status, out, err = run(capsys, "train", "--dataset", "iris", "--epochs", 1,
                           "--plot", plot)  # fmt: skip
    assert status == 0, err
    assert "  1 epoch, " in out and "1 epochs" not in out
    assert "stopped: completed 1 epoch" in out and out.rstrip().endswith(f"plot saved to {plot}")
    assert "s with compiling" in (out + err)
    assert plot.stat().st_size > 0
    picture = tmp_path / "booth.png"
    status, out, _ = run(capsys, "functions", "booth", "--plot", picture)
    assert status == 0 and out.rstrip().endswith(f"plot saved to {picture}")


def test_a_divergence_in_the_first_epoch_prints_no_empty_final_line(capsys):
    status, out, _ = run(capsys, "train", "--dataset", "diabetes", "--optimizer", "sgd",
                         "--lr", "1e9", "--epochs", 3, "--no-standardize")  # fmt: skip
    assert status == 1
    assert "final:" not in out and "stopped: diverged" in out
    assert all(line.strip() for line in out.splitlines())


def test_validation_split_zero_is_no_validation_in_fit_and_the_cli(capsys):
    X = np.random.default_rng(0).normal(size=(40, 2))
    result = ds.fit("linear", X, X @ [1.0, 2.0], validation_split=0, epochs=2, verbose=0)
    assert "val_loss" not in result.history
    status, out, _ = run(capsys, "train", "--dataset", "iris", "--validation-split", 0,
                         "--epochs", 1, "--json")  # fmt: skip
    assert status == 0 and "val_loss" not in json.loads(out)["metrics"]


@pytest.mark.parametrize(
    ("optimizer", "shown"),
    [
        (ds.optim.adam(lr=0.01), "adam(lr=0.01)"),
        (ds.optim.sgd(lr=0.1, momentum=0.9), "sgd(lr=0.1, momentum=0.9)"),
        (ds.optim.reduce_on_plateau(ds.optim.adam(lr=0.01), factor=0.2, patience=3),
         "reduce_on_plateau(adam(lr=0.01), factor=0.2, patience=3)"),
        (ds.optim.adamw(lr=1e-3, betas=(0.8, 0.999)), "adamw(lr=0.001, betas=(0.8, 0.999))"),
    ],
)  # fmt: skip
def test_the_summary_names_the_optimizer_by_what_differs_from_its_defaults(optimizer, shown):
    assert ds.optim.brief(optimizer) == shown


# ------------------------------------------------------------ what a new user tripped on


def test_resuming_a_run_that_had_stopped_early_says_so(capsys, tmp_path):
    saved = tmp_path / "stopped.ckpt"
    common = ["--dataset", "iris", "--epochs", 300]
    status, out, _ = run(capsys, "train", *common, "--save", saved)
    assert status == 0 and "stopped: early stopping" in out
    status, out, err = run(capsys, "train", *common, "--resume", saved)
    assert status == 0
    assert err.count("\n") == 1 and err.startswith("descend: warning: the run being continued")
    assert "no epoch is trained; to train on, pass a larger patience, e.g. --patience 20" in err
    status, out, err = run(capsys, "train", *common, "--resume", saved, "--patience", 20)
    assert status == 0 and err == "" and ds.load(saved).n_epochs < 300


def test_running_out_of_epochs_while_improving_is_said():
    X = np.random.default_rng(0).normal(size=(200, 3))
    y = (X @ [1.0, 2.0, 3.0] + np.random.default_rng(1).normal(size=200) > 0).astype(int)
    result = ds.fit("logistic", X, y, epochs=30, verbose=0)
    assert result.reason.startswith("completed 30 epochs, all of them: the training loss was")
    assert "so early stopping did not end the run" in result.reason
    assert result.reason.endswith("more epochs may lower it, e.g. epochs=60")
    plain = ds.fit("logistic", X, y, epochs=30, patience=None, verbose=0)
    assert plain.reason == "completed 30 epochs"
    # Best before the end, within patience: said so, and which weights the result holds.
    data = ds.data.load_dataset("breast_cancer")
    worse = ds.fit("logistic", data.X, data.y, lr=0.1, epochs=3, validation_split=0.2, verbose=0)
    best = int(np.argmin(worse.history["val_loss"])) + 1
    assert best < 3  # the last epoch was worse: the case this checks
    assert f"the validation loss was best at epoch {best}, {3 - best} epoch" in worse.reason
    assert "so early stopping did not end the run and the weights are the last epoch's" in (
        worse.reason
    )
    assert "still improving" not in worse.reason and worse.best_epoch is None
    assert "optimizer=reduce_on_plateau(adam(lr=0.01), factor=0.2, patience=3)" in repr(result)


@pytest.mark.parametrize(
    ("word", "operator"), [("rosenbrok", False), ("qwertyuiop", True)], ids=["close", "far"]
)
def test_a_misspelt_name_is_not_also_told_to_add_an_operator(capsys, word, operator):
    status, out, err = run(capsys, "minimize", word)
    assert status == 2
    assert ("needs an operator" in err) is operator


def test_predictions_print_the_shortest_digits_of_their_float32(capsys, tmp_path):
    saved = tmp_path / "prices.ckpt"
    path = tmp_path / "prices.csv"
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    path.write_text("x,price\n" + "".join(f"{a:.3f},{3e5 + 4e4 * a:.1f}\n" for a in x))
    assert run(capsys, "train", path, "--epochs", 5, "--save", saved)[0] == 0
    status, out, _ = run(capsys, "predict", saved, path)
    printed = out.splitlines()[1:]
    expected = ds.load(saved).predict(str(path))
    assert expected.dtype == np.float32
    assert printed == [str(value) for value in expected]  # numpy's shortest round trip


def test_a_lone_column_holding_another_delimiter_is_pointed_out(capsys, table):
    status, _, err = run(capsys, "train", table, "--sep", ",", "--target", "label")
    assert status == 2 and err.rstrip().endswith("if the file is split at ';', give --sep ';'")
