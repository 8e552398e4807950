"""Batch, mini-batch and stochastic descent on one picture: plot.methods, compare_methods,
and ``descend train --compare-methods``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

import descend as ds
from descend import plot
from descend.cli import main
from descend.errors import DescendTypeError, InputError

ROWS, MINI = 64, 8


@pytest.fixture(scope="module")
def runs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=ROWS)
    return plot.compare_methods(
        "linear", X, y, batch_size=MINI, epochs=4, patience=None, optimizer="sgd", lr=0.05
    )


def test_the_three_runs_differ_only_in_their_updates_per_epoch(runs):
    assert list(runs) == ["batch", "mini-batch", "stochastic"]
    per_epoch = {"batch": 1, "mini-batch": math.ceil(ROWS / MINI), "stochastic": ROWS}
    for label, run in runs.items():
        assert run.n_epochs == 4 and run.n_updates == 4 * per_epoch[label]
    # Batch descent with plain SGD is deterministic: its first loss is the loss at the
    # starting weights, the same start every method has.
    assert runs["batch"].history["loss"][0] >= runs["stochastic"].history["loss"][0]


def test_each_loss_is_drawn_against_updates_and_against_epochs(runs):
    fig = plot.methods(runs)
    updates_ax, epochs_ax = fig.axes
    per_epoch = {"batch": 1, "mini-batch": math.ceil(ROWS / MINI), "stochastic": ROWS}
    by_updates = {line.get_gid(): line for line in updates_ax.get_lines()}
    by_epochs = {line.get_gid(): line for line in epochs_ax.get_lines()}
    for index, (label, run) in enumerate(runs.items()):
        epochs = np.arange(1, 5)
        np.testing.assert_array_equal(by_epochs[f"epochs:{label}"].get_xdata(), epochs)
        np.testing.assert_array_equal(
            by_updates[f"updates:{label}"].get_xdata(), epochs * per_epoch[label]
        )
        for line in (by_updates[f"updates:{label}"], by_epochs[f"epochs:{label}"]):
            np.testing.assert_array_equal(line.get_ydata(), run.history["loss"])
            assert line.get_color() == f"C{index}"
    assert updates_ax.get_xscale() == "log" and epochs_ax.get_xscale() == "linear"
    legend = [t.get_text() for t in updates_ax.get_legend().get_texts()]
    assert legend == [
        "batch (1 update/epoch)",
        f"mini-batch ({per_epoch['mini-batch']} updates/epoch)",
        f"stochastic ({ROWS} updates/epoch)",
    ]


def test_bad_input_is_refused_with_the_fix(runs):
    with pytest.raises(DescendTypeError, match=r"dict \{label: FitResult\}"):
        plot.methods(list(runs.values()))
    with pytest.raises(DescendTypeError, match=r"dict \{label: FitResult\}"):
        plot.methods({})
    with pytest.raises(DescendTypeError, match=r"results of descend\.fit; 'x' is a"):
        plot.methods({"x": ds.minimize("x**2", 1.0)})
    with pytest.raises(DescendTypeError, match="pair"):
        plot.methods(runs, ax=object())
    with pytest.raises(InputError, match="batch_size must be"):
        plot.compare_methods("linear", np.zeros((4, 1)), np.zeros(4), batch_size=1)
    with pytest.raises(InputError, match="leave out method, resume"):
        plot.compare_methods("linear", np.zeros((4, 1)), np.zeros(4), method="batch", resume="a")


def run_cli(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_train_compare_methods_writes_the_picture_and_says_so_in_one_line(capsys, tmp_path):
    target = tmp_path / "methods.png"
    status, out, err = run_cli(
        capsys, "train", "--dataset", "iris", "--epochs", "3", "--patience", "0",
        "--compare-methods", str(target),
    )  # fmt: skip
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"methods picture saved to {target} (batch 3 ")
    with Image.open(target) as image:
        assert image.format == "PNG" and np.asarray(image).var() > 0
    status, out, _ = run_cli(
        capsys, "train", "--dataset", "iris", "--epochs", "2", "--patience", "0",
        "--compare-methods", str(target), "--json",
    )  # fmt: skip
    payload = json.loads(out)
    assert status == 0 and payload["plot"] == str(target)
    # 120 training rows (20 % held out): 1, ceil(120 / 32) = 4 and 120 updates per epoch.
    assert {k: v["updates"] for k, v in payload["runs"].items()} == {
        "batch": 2,
        "mini-batch": 8,
        "stochastic": 240,
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--batch-size", "1"), "--batch-size is the mini-batch size and must be 2 or more"),
        (("--save", "m.ckpt"), "leave out --save"),
        (("--plot", "c.png"), "leave out --plot"),
        (("--method", "batch"), "leave out --method"),
    ],
)
def test_train_compare_methods_refuses_bad_input_in_one_line(capsys, tmp_path, extra, message):
    status, out, err = run_cli(
        capsys, "train", "--dataset", "iris", "--compare-methods", str(tmp_path / "m.png"), *extra
    )
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    status, _, err = run_cli(
        capsys, "train", "--dataset", "iris", "--compare-methods", str(tmp_path / "no" / "m.png")
    )
    assert status == 2 and "does not exist" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
