"""Bad input, faults and interruptions: clear messages, right exit codes, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import descend as ds
from descend.cli import main

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status, err, fragment, expected_status=2):
    assert status == expected_status
    assert err.startswith("descend: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert fragment in err, err


DATA_CASES = {
    "missing": (None, [], "does not exist"),
    "empty": ("", [], "is empty"),
    "header_only": ("a,b,y\n", [], "no data rows"),
    "ragged": ("a,b,y\n1,2,0\n3,4\n5,6,1\n", [], "line 3 has 2 fields"),
    "missing_target": ("a,b,y\n1,2,0\n3,4,1\n", ["--target", "yy"], "did you mean 'y'"),
    "text_in_numbers": ("a,b,y\n1,2,0\n3,x,1\n5,6,1\n", [], "row 3 has the text 'x'"),
    "nan_features": ("a,b,y\n1,2,0\n3,nan,1\n5,6,1\n4,4,0\n", [], "--nan-policy drop"),
    "inf_target": ("a,b,y\n1,2,0\n3,3,inf\n5,6,1\n4,4,0\n", [], "non-finite"),
    "single_class": (
        "a,b,y\n1,2,0\n3,3,0\n5,6,0\n2,2,0\n",
        ["--model", "logistic"],
        "single class",
    ),
    "three_labels_for_logistic": (
        "a,b,y\n1,2,0\n3,3,1\n5,6,2\n2,2,0\n",
        ["--model", "logistic"],
        "two classes",
    ),
    "zero_features": ("y\n1\n2\n3\n", [], "feature"),
    "ragged_semicolons": ("a;b;y\n1;2;0\n3;4;0;5\n", [], "split at ';'; every line"),
    "sep_is_named_as_the_option": ("a;b;y\n1;2;0\n3;4;0;5\n", [], "e.g. --sep ',')"),
    "wrong_sep": ("a;b;y\n1;2;0\n3;4;1\n", ["--sep", ","], "split at ';', give --sep ';'"),
    "bad_sep": ("a;b;y\n1;2;0\n", ["--sep", ";;"], "--sep must be one character"),
    "decimal_comma_and_point": ("a;b;y\n1,5;2;0\n2.5;3;1\n", [], "decimal point ('2.5')"),
    "thousands_or_decimal": ('a,b,y\n"1,500",2,0\n"2,250",3,1\n', [], "thousands separator"),
    "unlisted_text": (
        "city,b,y\nOslo,1,0\nRome,2,1\n",
        ["--categorical", "b"],
        "(--categorical b,city)",
    ),
    "stray_text": ("a,b,y\n1,2,0\n3,x,1\n5,6,1\n", [], "list the column in --categorical b if"),
}


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_data_file_is_one_line_exit_2(case, tmp_path, capsys):
    content, extra, fragment = DATA_CASES[case]
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_text(content)
    status, out, err = run_cli(capsys, "train", path, "--epochs", 1, *extra)
    assert_one_line_error(status, err, fragment)


def test_a_semicolon_file_with_decimal_commas_trains_on_numbers(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"price": rng.normal(size=40).round(2), "rooms": rng.integers(1, 5, 40)})
    frame["sold"] = (frame["price"] > 0).astype(int)
    path = tmp_path / "houses.csv"
    frame.to_csv(path, sep=";", decimal=",", index=False)
    status, out, err = run_cli(capsys, "train", path, "--epochs", 1, "--json")
    assert status == 0, err
    assert err.startswith("descend: warning: read column 'price' of") and err.count("\n") == 1
    assert "decimal comma" in err
    with pytest.warns(ds.errors.DescendWarning, match="decimal comma"):  # as Python sees it
        dataset = ds.data.load(path, dtype="float64")
    assert dataset.feature_names == ("price", "rooms")  # numbers, not one-hot categories
    oracle = pd.read_csv(path, sep=";", decimal=",")
    np.testing.assert_array_equal(dataset.X, oracle[["price", "rooms"]].to_numpy())


def test_nan_policy_drop_trains(tmp_path, capsys):
    path = tmp_path / "data.csv"
    rows = "\n".join(f"{i},{(i * 7) % 5},{i % 2}" for i in range(40))
    path.write_text("a,b,y\n" + rows + "\n3,nan,1\n")
    status, out, err = run_cli(
        capsys, "train", path, "--epochs", 2, "--nan-policy", "drop", "--json"
    )
    assert status == 0, err
    assert json.loads(out)["epochs"] == 2


HYPERPARAMETER_CASES = [
    (["--lr", "-1"], "lr must be a finite number > 0"),
    (["--lr", "nan"], "lr must be a finite number > 0"),
    (["--lr", "inf"], "lr must be a finite number > 0"),
    (["--optimizer", "sgd", "--opt-args", "momentum=-0.5"], "momentum"),
    (["--opt-args", "betas=(0.9,1.5)"], "betas"),
    (["--opt-args", "betas=(-0.1,0.9)"], "betas"),
    (["--batch-size", "0"], "--batch-size must be an integer >= 1"),
    (["--epochs", "0"], "--epochs must be an integer >= 1"),
    (["--validation-split", "1.5"], "--validation-split must be in [0.0, 1.0), got 1.5"),
    (["--optimizer", "adamm"], "did you mean 'adam'"),
    (["--loss", "mse2"], "did you mean 'mse'"),
    (["--model", "lineer"], "did you mean 'linear'"),
    (["--dataset", "iriss"], "did you mean 'iris'"),
    (["--opt-args", "nesterow=true", "--optimizer", "sgd"], "did you mean 'nesterov'"),
    (
        ["--optimizer", "adamw", "--opt-args", "weight_decay_mask=biases"],
        "weight_decay_mask must be a pytree of True / False, a function, or 'weights'",
    ),
    (["--optimizer", "rprop", "--opt-args", "weight_decay_mask=weights"], "weight_decay_mask"),
]


@pytest.mark.parametrize(("argv", "fragment"), HYPERPARAMETER_CASES)
def test_bad_hyperparameter_is_one_line_exit_2(argv, fragment, capsys):
    status, out, err = run_cli(capsys, "train", "--epochs", 1, *argv)
    assert_one_line_error(status, err, fragment)


SETTINGS_CASES = [
    (["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
    (["--accumulate", "-2"], "--accumulate must be an integer >= 1, got -2"),
    (["--patience", "-1"], "--patience must be an integer >= 0 (0 runs every epoch), got -1"),
    (["--tol", "-1"], "--tol must be a finite number >= 0"),
    (["--min-delta", "nan"], "--min-delta must be a finite number >= 0"),
    (["--validation-split", "1"], "--validation-split must be in [0.0, 1.0)"),
    (["--degree", "3"], "--degree shape --model polynomial, not the model chosen from the target"),
    (
        ["--model", "linear", "--hidden", "8", "--activation", "tanh"],
        "--hidden and --activation shape --model mlp, not --model linear: add --model mlp, or "
        "leave them out",
    ),
    (
        ["--optimizer", "sgd", "--opt-args", "momentum=0.3", "--param-grid", "momentum=0.5,0.9"],
        "momentum is given twice: in --opt-args and in --param-grid; give it once",
    ),
]


@pytest.mark.parametrize(("argv", "fragment"), SETTINGS_CASES)
def test_bad_settings_are_refused_before_the_data_is_read(argv, fragment, capsys, tmp_path):
    """The file does not exist: a message about the setting shows it was never opened."""
    status, out, err = run_cli(capsys, "train", tmp_path / "missing.csv", *argv)
    assert_one_line_error(status, err, fragment)
    assert out == ""


def test_batch_larger_than_data_says_what_is_used(capsys):
    status, out, err = run_cli(capsys, "train", "--batch-size", 100000, "--epochs", 1, "--json")
    assert status == 0
    assert err.startswith("descend: warning: --batch-size 100000 is larger than the 455")
    assert "using 455" in err and err.count("\n") == 1


def test_divergence_exits_1_and_names_a_smaller_lr(capsys):
    status, out, err = run_cli(
        capsys,
        "train",
        "--dataset",
        "diabetes",
        "--optimizer",
        "sgd",
        "--lr",
        1e6,
        "--no-standardize",
        "--epochs",
        3,
        "--json",
    )
    assert status == 1
    summary = json.loads(out)
    assert summary["status"] == "diverged"
    assert "smaller learning rate" in summary["reason"]


def test_divergence_keeps_last_finite_params_in_library():
    data = ds.data.load_dataset("diabetes")
    result = ds.fit("linear", data, optimizer="sgd", lr=1e6, epochs=3, verbose=0)
    assert result.status == "diverged"
    assert all(np.all(np.isfinite(leaf)) for leaf in (result.params["w"], result.params["b"]))


def test_float32_overflow_in_loss_is_divergence():
    X = np.full((64, 2), 3e18, dtype=np.float32)
    y = np.ones(64, dtype=np.float32)
    result = ds.fit("linear", X, y, optimizer="sgd", lr=1.0, epochs=2, verbose=0,
                    standardize=False)  # fmt: skip
    assert result.status == "diverged"


def test_custom_function_errors_in_minimize():
    with pytest.raises(ds.errors.FunctionError, match="single real scalar"):
        ds.minimize(lambda x: x * np.ones(3), 1.0)
    with pytest.raises(ds.errors.FunctionError, match="complex"):
        ds.minimize(lambda x: x * 1j, 1.0)


def wait_for_line(stream, prefix, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting with {prefix!r} within {timeout} s")


def test_ctrl_c_stops_after_epoch_saves_and_resume_matches(tmp_path):
    """SIGINT: stop after the current epoch, save, exit 130; --resume then matches."""
    common = [
        "train",
        "--dataset",
        "digits",
        "--model",
        "softmax",
        "--batch-size",
        "8",
        "--seed",
        "3",
    ]
    interrupted = tmp_path / "interrupted.ckpt"
    process = subprocess.Popen(
        [PYTHON, "-m", "descend", *common, "--epochs", "100000", "--save", str(interrupted)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # Ctrl-C at its default, as in a terminal (a shell's background job ignores it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_for_line(process.stdout, "epoch 2/", timeout=120)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted after epoch" in err and "--resume" in err
    stopped = ds.load(interrupted)
    assert stopped.n_epochs >= 2
    target_epochs = stopped.n_epochs + 2
    resumed, full = tmp_path / "resumed.ckpt", tmp_path / "full.ckpt"
    for argv in (
        [
            *common,
            "--epochs",
            str(target_epochs),
            "--resume",
            str(interrupted),
            "--save",
            str(resumed),
        ],
        [*common, "--epochs", str(target_epochs), "--save", str(full)],
    ):
        subprocess.run(
            [PYTHON, "-m", "descend", *argv, "--json"], check=True, capture_output=True, timeout=300
        )
    a, b = ds.load(resumed), ds.load(full)
    assert a.n_epochs == b.n_epochs == target_epochs
    np.testing.assert_array_equal(a.params["w"], b.params["w"])
    np.testing.assert_array_equal(a.params["b"], b.params["b"])


MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    import descend as ds

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    for _ in range(100):
        ds.fit("logistic", X, y, epochs=1, batch_size=16, verbose=0)
    before = rss_mb()
    for _ in range(1000):
        ds.fit("logistic", X, y, epochs=1, batch_size=16, verbose=0)
    print(rss_mb() - before)
    """
)


@pytest.mark.slow
def test_thousand_fits_do_not_grow_memory():
    out = subprocess.run(
        [PYTHON, "-c", MEMORY_SCRIPT], capture_output=True, text=True, timeout=600, check=True
    ).stdout
    growth_mb = float(out.strip().splitlines()[-1])
    assert growth_mb < 30, f"resident memory grew by {growth_mb:.1f} MB over 1000 fits"


@pytest.mark.slow
def test_atheris_fuzzes_parser_without_crash():
    pytest.importorskip("atheris")
    process = subprocess.run(
        [
            PYTHON,
            str(ROOT / "tests" / "fuzz" / "parse_fuzzer.py"),
            "-runs=2000",
            "-max_len=300",
            "-timeout=10",
            "-max_total_time=20",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-3000:]


def test_exploding_runs_exit_1_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "scaled.csv"
    x = np.linspace(100, 500, 21)
    path.write_text("x,y\n" + "\n".join(f"{a},{0.3 * a + 7}" for a in x) + "\n")
    status, out, err = run_cli(
        capsys, "train", path, "--model", "linear", "--optimizer", "sgd", "--lr", "1e-5",
        "--method", "batch", "--epochs", 300, "--no-standardize", "--validation-split", 0,
        "--patience", 0, "--json",
    )  # fmt: skip
    assert status == 1 and json.loads(out)["status"] == "diverged"
    status, out, err = run_cli(capsys, "minimize", "x**2", "--x0", "x=1", "--lr", 1.5, "--json")
    assert status == 1 and json.loads(out)["status"] == "diverged"


def test_cli_resume_keeps_the_checkpoints_optimizer_seed_and_early_stopping(tmp_path, capsys):
    """``--resume`` without ``--optimizer`` or ``--seed`` continues the saved run (it
    used to start adam at its default rate and seed 0); early stopping's count goes on."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    y = (X[:, 0] + 0.8 * rng.normal(size=300) > 0).astype(int)
    path = tmp_path / "labels.csv"
    rows = (",".join(map(str, [*row, label])) for row, label in zip(X, y, strict=True))
    path.write_text("a,b,c,d,e,f,y\n" + "\n".join(rows) + "\n")
    common = ["train", path, "--target", "y", "--batch-size", 16, "--validation-split", 0.3,
              "--patience", 3, "--dtype", "float64", "--json"]  # fmt: skip
    first, resumed, full = (tmp_path / f"{name}.ckpt" for name in ("first", "resumed", "full"))
    trained = ["--optimizer", "sgd", "--lr", 0.5, "--seed", 4]
    assert run_cli(capsys, *common, *trained, "--epochs", 6, "--save", first)[0] == 0
    assert run_cli(capsys, *common, "--epochs", 40, "--resume", first, "--save", resumed)[0] == 0
    assert run_cli(capsys, *common, *trained, "--epochs", 40, "--save", full)[0] == 0
    a, b = ds.load(resumed), ds.load(full)
    assert b.status == "early_stopping" and b.n_epochs < 40
    assert (a.status, a.n_epochs, a.best_epoch, a.seed) == (b.status, b.n_epochs, b.best_epoch, 4)
    assert a.optimizer == b.optimizer
    np.testing.assert_array_equal(a.params["w"], b.params["w"])
    status, out, err = run_cli(capsys, *common, "--epochs", 40, "--resume", first,
                               "--opt-args", "momentum=0.9")  # fmt: skip
    assert_one_line_error(status, err, "--opt-args with --resume needs --optimizer")
