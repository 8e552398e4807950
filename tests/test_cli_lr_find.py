"""``descend lr-find``: the same test as ``ds.lr_find``, its outputs, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

import descend as ds
from descend.cli import main


def run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=300)
    path = tmp_path / "data.csv"
    rows = "\n".join(",".join(f"{v:.6f}" for v in (*x, t)) for x, t in zip(X, y, strict=True))
    path.write_text("a,b,c,price\n" + rows + "\n")
    return path


def test_json_holds_the_curve_that_lr_find_computes_on_the_same_table(capsys, table):
    status, out, err = run(
        capsys, "lr-find", str(table), "--target", "price", "--optimizer", "sgd",
        "--opt-args", "momentum=0.9", "--num-iter", "120", "--end-lr", "1", "--json",
    )  # fmt: skip
    assert status == 0 and err == ""
    payload = json.loads(out)
    expected = ds.lr_find(
        "linear", str(table), target="price", optimizer=ds.optim.sgd(momentum=0.9),
        num_iter=120, end_lr=1.0,
    )  # fmt: skip
    np.testing.assert_allclose(payload["losses"], expected.losses, rtol=1e-6)
    np.testing.assert_allclose(payload["lrs"], expected.lrs, rtol=1e-6)
    assert payload["suggestion"] == pytest.approx(expected.suggestion, rel=1e-6)
    assert payload["n_iter"] == expected.n_iter and payload["status"] == expected.status
    assert payload["optimizer"].startswith("sgd(lr=exponential(")


def test_text_output_names_the_suggestion_and_writes_the_plot(capsys, tmp_path):
    picture = tmp_path / "lr.png"
    status, out, err = run(capsys, "lr-find", "--num-iter", "100", "--plot", str(picture))
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("target 'diagnosis'")  # the shipped default dataset
    assert lines[1].startswith("suggested learning rate: ")
    assert "adam, batches of 32 rows, the rate from 1e-07 to 10" in out
    assert f"plot: {picture}" in out
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_settings_are_refused_before_the_data_is_read(capsys):
    status, out, err = run(capsys, "lr-find", "--num-iter", "0")
    assert status == 2 and out == "" and "--num-iter must be" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--start-lr", "1", "--end-lr", "0.1"], "--start-lr must be less than --end-lr"),
        (["--num-iter", "1"], "--num-iter must be an integer >= 2, got 1"),
        (["--smooth-f", "1"], "--smooth-f must be in [0.0, 1.0), got 1.0"),
        (["--diverge-th", "0.5"], "--diverge-th must be a finite number > 1, got 0.5"),
        (["--optimizer", "polyak_sgd"], "cannot give it to polyak_sgd()"),
        (["--optimizer", "adamm"], "unknown optimizer 'adamm'; did you mean 'adam'?"),
        (["--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
        (["--degree", "3"], "--degree shape --model polynomial"),
        (["--batch-size", "200", "--accumulate", "3"], "than the 569 training rows"),
        (["missing.csv"], "does not exist"),
        (["--plot", "lr.txt"], "cannot write 'lr.txt': give a path ending in"),
        (["--dataset", "iris", "--target", "x"], "--target, --features, --categorical"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(capsys, argv, message):
    status, out, err = run(capsys, "lr-find", *argv)
    assert status == 2 and "suggested" not in out
    assert err.count("\n") == 1 and err.startswith("descend: ") and "Traceback" not in err
    assert message in err


def test_no_suggestion_is_exit_status_1_with_the_reason(capsys):
    status, out, _ = run(
        capsys, "lr-find", "--dataset", "diabetes", "--optimizer", "sgd", "--num-iter", "12",
    )  # fmt: skip
    assert status == 1
    assert "no suggested learning rate: the curve is too short to read (see below)\n" in out
    assert "too few points for a suggestion" in out  # the loss grew: a slower rate helps
    assert "lower --start-lr, or raise --num-iter, so that more updates run" in out


def test_a_short_test_that_ran_every_update_asks_for_more_updates(capsys, table):
    status, out, _ = run(capsys, "lr-find", str(table), "--num-iter", "5", "--end-lr", "0.01")
    assert status == 1 and "ran all 5 updates" in out
    assert "too few points for a suggestion" in out and "raise --num-iter to at least 17" in out
    assert "start-lr" not in out
