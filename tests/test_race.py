"""compare(): optimizer races, their table and JSON form, and `descend compare`."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

import descend as ds
from descend import cli
from descend.cli import common
from descend.cli import race as cli_race
from descend.errors import DescendTypeError, InputError
from descend.optim import injection
from descend.plot.racing import CompareResult, compare

QUADRATIC = "(x-3)**2 + 10*(y+1)**2"
X0 = [0.0, 0.0]


def bowl(x):
    """QUADRATIC as a function of one vector: one object, so compiled loops are reused."""
    return (x[0] - 3.0) ** 2 + 10.0 * (x[1] + 1.0) ** 2


@pytest.fixture(scope="module")
def rosenbrock_race() -> CompareResult:
    return compare("rosenbrock", x0=(-1.5, 2), optimizers=["gd", "momentum", "adam", "lbfgs"])


def _first_meeting(measure, tol):
    hits = [k for k, value in enumerate(measure) if np.isfinite(value) and value <= tol]
    return hits[0] if hits else None


def test_lbfgs_reaches_tolerance_in_fewest_iterations_on_rosenbrock(rosenbrock_race):
    assert [row["label"] for row in rosenbrock_race.rows] == ["gd", "momentum", "adam", "lbfgs"]
    assert rosenbrock_race.criterion == "value"
    assert rosenbrock_race.best == "lbfgs"
    reached = {r["label"]: r["n_iter_to_tol"] for r in rosenbrock_race.rows if r["n_iter_to_tol"]}
    assert min(reached, key=reached.get) == "lbfgs"
    assert "* lbfgs" in rosenbrock_race.table()


def test_iterations_to_tolerance_and_distance_follow_from_each_history(rosenbrock_race):
    function = ds.functions.get("rosenbrock")
    for row in rosenbrock_race.rows:
        history = row["result"].history
        gap = np.asarray(history["value"]) - function.minimum
        assert row["n_iter_to_tol"] == _first_meeting(gap, 1e-6)
        assert row["n_iter"] == len(gap) - 1 == row["result"].n_iter
        with jax.enable_x64(True):
            final = float(function(history["x"][-1]))
        assert row["fun"] == row["result"].fun == pytest.approx(final)
        expected = min(np.linalg.norm(history["x"][-1] - m) for m in function.minimizers)
        assert row["distance"] == pytest.approx(expected)
        assert row["time_s"] > 0 and row["cold_time_s"] > 0


def test_each_row_is_the_run_minimize_gives(rosenbrock_race):
    row = rosenbrock_race.rows[0]
    direct = ds.minimize("rosenbrock", (-1.5, 2.0), optimizer="gd", tol=1e-6, max_iter=10_000)
    assert (row["n_iter"], row["status"]) == (direct.n_iter, direct.status)
    np.testing.assert_array_equal(row["result"].history["x"], direct.history["x"])


def test_divergence_is_flagged(rosenbrock_race):
    flags = {row["label"]: row["diverged"] for row in rosenbrock_race.rows}
    momentum = rosenbrock_race.results["momentum"]
    assert flags["momentum"] == (momentum.status == "diverged" or momentum.fun > 12.5)
    assert flags["momentum"] and not flags["gd"] and not flags["lbfgs"]


def test_json_form_carries_the_table_numbers(rosenbrock_race):
    payload = json.loads(json.dumps(rosenbrock_race.to_dict(), allow_nan=False))
    assert payload["best"] == rosenbrock_race.best
    assert payload["minimizers"] == [[1.0, 1.0]]
    for row, entry in zip(rosenbrock_race.rows, payload["rows"], strict=True):
        assert set(entry) == set(row) - {"result"}
        for key, value in entry.items():
            assert value == row[key], key
    headings, cells = rosenbrock_race.cells()
    for row, line in zip(rosenbrock_race.rows, cells, strict=True):
        assert line[headings.index("final value")] == f"{row['fun']:.6g}"
        expected = "-" if row["n_iter_to_tol"] is None else str(row["n_iter_to_tol"])
        assert line[headings.index("iters to tol")] == expected
    with_history = rosenbrock_race.to_dict(history=True)["rows"][3]["history"]
    np.testing.assert_allclose(with_history["x"], rosenbrock_race.results["lbfgs"].history["x"])


def test_without_a_known_minimum_the_race_is_on_the_gradient_norm():
    race = compare(bowl, ["gd", ("momentum", {"lr": 0.02})], X0, max_iter=300)
    assert race.criterion == "grad_norm" and race.to_dict()["minimum"] is None
    for row in race.rows:
        assert row["distance"] is None
        norms = row["result"].history["grad_norm"]
        assert row["n_iter_to_tol"] == _first_meeting(norms, 1e-6)
    with pytest.raises(InputError, match="known minimum"):
        compare(bowl, ["gd"], X0, criterion="value")


def test_repeated_optimizers_get_distinct_labels():
    optimizers = ["gd", "gd", ("gd", {"lr": 0.01}), ds.optim.momentum(lr=0.02)]
    race = compare(bowl, optimizers, X0, max_iter=300)
    labels = [row["label"] for row in race.rows]
    assert labels == ["gd", "gd #2", "gd(lr=0.01)", "momentum(lr=0.02)"]


@pytest.mark.parametrize(
    ("lr", "expected"),
    [
        (0.02, ["gd(lr=0.02", "momentum(lr=0.02"]),
        ([None, 0.02], ["gd(lr=None", "momentum(lr=0.02"]),
    ],
)
def test_lr_shortcut_sets_every_or_each_learning_rate(lr, expected):
    race = compare(bowl, ["gd", "momentum"], X0, lr=lr, max_iter=300)
    for row, start in zip(race.rows, expected, strict=True):
        assert row["result"].optimizer.startswith(start)


ROW_NUMBERS = ("n_iter_to_tol", "n_iter", "n_fev", "distance", "diverged", "converged",
               "status", "reason", "optimizer")  # fmt: skip


def assert_rows_of_runs_alone(race, optimizers):
    """Each row of ``race`` is the row of its optimizer raced alone."""
    for row, spec in zip(race.rows, optimizers, strict=True):
        (theirs,) = compare(bowl, [spec], X0, max_iter=300).rows
        assert {key: row[key] for key in ROW_NUMBERS} == {key: theirs[key] for key in ROW_NUMBERS}
        assert row["fun"] == pytest.approx(theirs["fun"], rel=1e-12, abs=1e-300)
        for key, values in theirs["result"].history.items():
            np.testing.assert_allclose(row["result"].history[key], values, rtol=1e-12)


def test_one_algorithm_at_several_rates_races_as_one_sweep_of_the_runs_alone():
    rates = [0.01, 0.05, 0.2]  # 0.2 diverges on the bowl (curvature 20)
    race = compare(bowl, ["momentum"], X0, lr=rates, max_iter=300)
    assert [row["label"] for row in race.rows] == [f"momentum(lr={r!r})" for r in rates]
    assert [row["sweep_size"] for row in race.rows] == [3, 3, 3]
    assert [row["diverged"] for row in race.rows] == [False, False, True]
    assert len({row["time_s"] for row in race.rows}) == 1  # the one program's time
    assert_rows_of_runs_alone(race, [("momentum", {"lr": rate}) for rate in rates])


def test_the_rates_of_one_algorithm_in_a_mixed_race_run_together_in_their_places():
    optimizers = ["gd", ("momentum", {"lr": 0.01}), "adam", ds.optim.momentum(lr=0.05)]
    race = compare(bowl, optimizers, X0, max_iter=300)
    assert [row["sweep_size"] for row in race.rows] == [1, 2, 1, 2]
    assert_rows_of_runs_alone(race, optimizers)


def test_rates_one_program_cannot_run_together_run_alone(monkeypatch):
    def refuse(*args, **kwargs):
        raise InputError("cannot vary inside one program")

    monkeypatch.setattr(injection, "check_configurations", refuse)
    optimizers = [("momentum", {"lr": 0.01}), ("momentum", {"lr": 0.05})]
    race = compare(bowl, optimizers, X0, max_iter=300)
    assert [row["sweep_size"] for row in race.rows] == [1, 1]
    assert_rows_of_runs_alone(race, optimizers)


def test_best_is_none_when_no_run_meets_the_tolerance():
    race = compare(bowl, [("gd", {"lr": 0.01})], X0, max_iter=300, tol=1e-300)
    assert race.best is None and race.rows[0]["n_iter_to_tol"] is None
    assert "-" in race.table().splitlines()[-1]


def test_expression_results_name_their_variables():
    race = compare(QUADRATIC, ["gd"], {"x": 0.0, "y": 0.0}, max_iter=300)
    result = race.results["gd"]
    assert set(result.x) == {"x", "y"} and result.variables == ("x", "y")
    assert result.x == pytest.approx({"x": 3.0, "y": -1.0})


@pytest.mark.parametrize(
    ("optimizers", "kwargs", "error", "fragment"),
    [
        (["gd", "adamm"], {}, InputError, "did you mean 'adam'"),
        ([], {}, InputError, "optimizers is empty"),
        ("gd", {}, DescendTypeError, "must be a list"),
        ([("gd", 0.1)], {}, DescendTypeError, "pair"),
        (["gd", "adam"], {"lr": [0.1]}, InputError, "lr has 1 values for 2"),
        ([ds.optim.gd(lr=0.1)], {"lr": 0.2}, InputError, "already built"),
        ([("gd", {"lr": 0.1})], {"lr": 0.2}, InputError, "given twice"),
        (["gd"], {"lr": -1.0}, InputError, "lr must be"),
        (["gd"], {"criterion": "speed"}, InputError, "criterion must be"),
    ],
)
def test_bad_arguments_are_refused_before_any_run(optimizers, kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        compare(bowl, optimizers, X0, **kwargs)


def _run_cli(argv, monkeypatch):
    """`descend compare` through cli.main, with the command added to the parser."""

    def build_parser():
        parser = common.Parser(prog="descend")
        commands = parser.add_subparsers(dest="command", required=True, parser_class=common.Parser)
        cli_race.add_parsers(commands)
        parser.commands = commands.choices  # as cli.build_parser: messages name the options
        return parser

    monkeypatch.setattr(cli, "build_parser", build_parser)
    return cli.main(argv)


def test_a_test_function_entry_races_in_the_dimension_of_the_start():
    race = compare(ds.functions.rosenbrock, ["gd", "lbfgs"], x0=np.zeros(5))
    assert race.problem == "rosenbrock" and race.criterion == "value"
    np.testing.assert_array_equal(race.target.minimizers, [np.ones(5)])
    for row in race.rows:
        final = np.asarray(row["result"].x)
        assert final.shape == (5,)
        assert row["distance"] == pytest.approx(np.linalg.norm(final - np.ones(5)))
        assert row["distance"] < 1e-3
    assert race.to_dict()["minimizers"] == [[1.0] * 5]


def test_a_two_variable_entry_refuses_a_start_of_another_length():
    with pytest.raises(InputError, match="booth is a function of 2 variables, got dim=3"):
        compare(ds.functions.booth, ["gd"], x0=np.zeros(3))


@pytest.mark.parametrize(
    ("f", "error", "fragment"),
    [
        (lambda x: lambda y: y, ds.errors.FunctionError, "got a function of type function"),
        (lambda x: None, ds.errors.FunctionError, "single real scalar, got None"),
        (ds.functions.get, DescendTypeError, "name of a test function"),
    ],
)
def test_an_objective_returning_no_number_is_refused_by_name(f, error, fragment):
    with pytest.raises(error, match=fragment):
        compare(f, ["gd"], x0=np.ones(2))


def test_cli_compare_json_has_the_race_numbers(capsys, monkeypatch, tmp_path):
    picture = tmp_path / "race.png"
    argv = [
        "compare",
        QUADRATIC,
        "--x0",
        "x=0,y=0",
        "--optimizers",
        "gd",
        "--max-iter",
        "300",
        "--json",
        "--plot",
        str(picture),
    ]
    assert _run_cli(argv, monkeypatch) == cli.EXIT_OK
    payload = json.loads(capsys.readouterr().out)
    assert payload["criterion"] == "grad_norm" and payload["best"] == "gd"
    (row,) = payload["rows"]
    assert row["label"] == "gd" and row["status"] == "converged"
    assert row["n_iter_to_tol"] == row["n_iter"]  # it stopped when the gradient norm met tol
    assert row["fun"] == pytest.approx(0.0, abs=1e-10)
    assert payload["plot"] == str(picture) and picture.stat().st_size > 0


def test_cli_compare_prints_a_table(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    argv = ["compare", "booth", "--optimizers", "gd,gd", "--lr", "0.01,none", "--max-iter", "300"]
    assert _run_cli(argv, monkeypatch) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "gd(lr=0.01)" in out and "fewest iterations to tolerance: gd (" in out


def test_cli_compare_races_one_optimizer_at_each_rate_as_one_sweep(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    argv = ["compare", "booth", "--optimizers", "momentum", "--lr", "0.001,0.01,0.5",
            "--max-iter", "300", "--json"]  # fmt: skip
    assert _run_cli(argv, monkeypatch) == cli.EXIT_OK
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [row["label"] for row in rows] == [f"momentum(lr={r})" for r in (0.001, 0.01, 0.5)]
    assert [row["sweep_size"] for row in rows] == [3, 3, 3]
    race = compare("booth", ["momentum"], lr=[0.001, 0.01, 0.5], max_iter=300)
    assert [row["n_iter"] for row in rows] == [row["n_iter"] for row in race.rows]
    assert [row["status"] for row in rows] == [row["status"] for row in race.rows]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--optimizers", "gd,adamm"], "unknown optimizer 'adamm'"),
        (["--optimizers", "gd(lr=0.1"], "expected name or name(key=value,...)"),
        (["--lr", "0.1,0.2,0.3"], "--lr has 3 values for 4 optimizers"),
        (["--plot", "race.bmpx"], "cannot write 'race.bmpx'"),
        (["--animate", "race.png"], "give a path ending in .gif, .mp4"),
    ],
)
def test_cli_compare_bad_input_is_one_line_and_exit_2(capsys, monkeypatch, extra, fragment):
    assert _run_cli(["compare", "rosenbrock", *extra], monkeypatch) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("descend: ")
    assert fragment in captured.err


def test_cli_option_readers():
    assert cli_race.optimizers_from_text("gd, momentum(lr=0.001,nesterov=true),adam") == [
        "gd",
        ("momentum", {"lr": 0.001, "nesterov": True}),
        "adam",
    ]
    assert cli_race.learning_rates_from_text("0.1", 3) == 0.1
    assert cli_race.learning_rates_from_text("0.1,none", 2) == [0.1, None]
    with pytest.raises(InputError, match="numbers or 'none'"):
        cli_race.learning_rates_from_text("fast", 1)
