"""``descend train --lr 1e-3,1e-2`` (and --seed, --l2 lists, --param-grid): the sweep
of descend.fit, its table, the best model saved and the sweep drawn."""

from __future__ import annotations

import json

import numpy as np
import pytest

import descend as ds
from descend.cli import main

COMMON = ["--dataset", "breast_cancer", "--epochs", "3", "--dtype", "float64"]


def run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_train_with_a_list_of_rates_prints_the_table_and_saves_the_best(capsys, tmp_path):
    saved, picture = tmp_path / "best.safetensors", tmp_path / "sweep.png"
    status, out, err = run(
        capsys, "train", *COMMON, "--optimizer", "sgd", "--lr", "0.01,0.1",
        "--param-grid", "momentum=0.5,0.9", "--save", str(saved), "--plot", str(picture),
    )  # fmt: skip
    assert status == 0, err
    lines = out.splitlines()
    header = next(n for n, line in enumerate(lines) if line.startswith("rank"))
    assert lines[header].split()[:3] == ["rank", "lr", "momentum"]
    rows = [line.split() for line in lines[header + 1 : header + 5]]
    # The library's sweep on the same data: the same order, the best saved.
    data = ds.data.load_dataset("breast_cancer", dtype="float64")
    sweep = ds.fit(
        "logistic", data, optimizer=ds.optim.sgd(),
        lr=[0.01, 0.1], param_grid={"momentum": [0.5, 0.9]}, epochs=3, dtype="float64",
        validation_split=0.2, verbose=0,
    )  # fmt: skip
    expected = [
        (c["lr"], c["momentum"]) for c in (sweep.configurations[i] for i in sweep.ranking())
    ]
    assert [(float(row[1]), float(row[2])) for row in rows] == expected
    loaded = ds.load(saved)
    np.testing.assert_allclose(loaded.params["w"], sweep.best.params["w"], rtol=1e-9)
    assert picture.stat().st_size > 0 and "best model saved to" in out


def test_train_sweep_json_gives_the_table(capsys):
    status, out, err = run(capsys, "train", *COMMON, "--lr", "0.001,0.1", "--json")
    assert status == 0, err
    summary = json.loads(out)
    assert summary["ranked_by"] == "val_loss" and len(summary["table"]) == 2
    assert summary["best"] == {"lr": summary["table"][0]["lr"]}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "0.1,-1"], "--lr: expected a number > 0, got '-1'"),
        (["--seed", "0,x"], "--seed: expected a whole number >= 0"),
        (["--lr", "abc"], "argument --lr: expected a number > 0, got 'abc'"),
        (["--lr", ""], "argument --lr: expected a number > 0, got ''"),
        (["--seed", "0.5"], "argument --seed: expected a whole number >= 0, got '0.5'"),
        (["--l2", "abc"], "argument --l2: expected 'auto' or a number >= 0, got 'abc'"),
        (["--epochs", "abc"], "argument --epochs: expected a whole number, got 'abc'"),
        (["--min-delta", "x"], "argument --min-delta: expected a number, got 'x'"),
        (["--param-grid", "momentum"], "expected NAME=V1,V2"),
        (["--param-grid", "momentum=a,b"], "expected numbers"),
        (["--lr", "0.1,0.2", "--resume", "m.safetensors"], "--resume cannot be used in a sweep"),
        (["--seed", "0,1"], "--validation-split holds out rows chosen by the seed"),
        (["--optimizer", "sgd", "--param-grid", "momentum=0,0.9"], "state of other shapes"),
        (["--lr", "0.1,0.1"], "--lr must be a list of distinct values: 0.1 is in it more"),
        (["--seed", "2,2"], "--seed must be a list of distinct values"),
        (["--optimizer", "sgd", "--param-grid", "momentum=0.5,0.5"], "momentum must be a list"),
    ],
)  # fmt: skip
def test_a_bad_sweep_is_one_line_and_exit_status_2(capsys, argv, message):
    status, out, err = run(capsys, "train", *COMMON, *argv)
    assert status == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_value_listed_twice_is_refused_before_the_data_is_read(capsys, tmp_path):
    missing = str(tmp_path / "missing.csv")  # never opened: the message is about --lr
    status, out, err = run(capsys, "train", missing, "--lr", "0.1,0.2,0.1")
    assert status == 2 and out == ""
    assert err.startswith("descend: --lr must be a list of distinct values: 0.1 is in it")
