"""Sweeps of minimize (``lr=[...]``, ``param_grid=``): every configuration in one
compiled program, each equal to ``minimize`` run alone with the optimizer built with
its values."""

import ast
import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from descend import cli, engine
from descend.errors import DescendTypeError, InputError
from descend.optim import injection
from optax_oracle import compilations

ROSENBROCK = ds.functions.rosenbrock
START = [-1.2, 1.0]


def alone(f, x0, optimizer, **options):
    return ds.minimize(f, x0, optimizer=optimizer, verbose=0, **options)


def assert_same_run(mine, theirs, rtol=1e-12):
    """The sweep's run of a configuration is the run alone: the same iterates, count,
    stop and sentence (to float rounding)."""
    assert mine.n_iter == theirs.n_iter
    assert mine.n_fev == theirs.n_fev
    assert mine.status == theirs.status
    assert mine.reason == theirs.reason
    assert mine.hints == theirs.hints
    assert mine.optimizer == theirs.optimizer
    assert mine.converged == theirs.converged
    np.testing.assert_allclose(np.asarray(mine.x), np.asarray(theirs.x), rtol=rtol, atol=1e-300)
    np.testing.assert_allclose(mine.fun, theirs.fun, rtol=rtol, atol=1e-300)
    assert sorted(mine.history) == sorted(theirs.history)
    for key, values in theirs.history.items():
        np.testing.assert_allclose(mine.history[key], values, rtol=rtol, atol=1e-300)


CASES = {
    "gd rates": (ds.optim.gd(), {"lr": [1e-4, 1e-3, 2e-3]}, {}),
    "momentum rates": ("momentum", {"lr": [1e-4, 1e-3, 5e-3]}, {}),
    "sgd momentum grid": (ds.optim.sgd(lr=1e-3, momentum=0.5),
                          {"param_grid": {"momentum": [0.5, 0.9]}, "lr": [1e-4, 1e-3]}, {}),
    "adam betas": (ds.optim.adam(), {"lr": [0.01, 0.1],
                                     "param_grid": {"betas": [(0.9, 0.999), (0.5, 0.9)]}}, {}),
    "rmsprop": (ds.optim.rmsprop(momentum=0.5),
                {"lr": [1e-3, 1e-2], "param_grid": {"alpha": [0.9, 0.99]}}, {}),
    "bounds": (ds.optim.gd(), {"lr": [1e-3, 2e-3]}, {"bounds": [(None, 0.5), (-1, 2)]}),
    "schedule-free": (ds.optim.schedule_free_sgd(), {"lr": [1e-3, 3e-3]}, {}),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_each_configuration_equals_minimize_alone(case):
    optimizer, swept, options = CASES[case]
    sweep = ds.minimize(ROSENBROCK, START, optimizer=optimizer, max_iter=1500, verbose=0,
                        **swept, **options)  # fmt: skip
    assert isinstance(sweep, ds.Sweep)
    lists = {**swept.get("param_grid", {}), **({"lr": swept["lr"]} if "lr" in swept else {})}
    assert len(sweep) == int(np.prod([len(v) for v in lists.values()]))
    statuses = set()
    for result, configuration in zip(sweep, sweep.configurations, strict=True):
        built = ds.optim.rebuild(
            ds.optim.get(optimizer) if isinstance(optimizer, str) else optimizer,
            **configuration,
        )
        theirs = alone(ROSENBROCK, START, built, max_iter=1500, **options)
        assert_same_run(result, theirs, rtol=1e-9)
        statuses.add((result.status, result.n_iter))
    # The configurations ran runs of their own (not one run copied).
    assert len(statuses) > 1 or len({float(r.fun) for r in sweep}) == len(sweep)


def test_a_diverging_configuration_is_reported_alone_and_the_others_go_on():
    rates = [1e-3, 0.05, 2e-3]
    sweep = ds.minimize(ROSENBROCK, START, optimizer="momentum", lr=rates, max_iter=800,
                        patience=100, verbose=0)  # fmt: skip
    assert [r.status for r in sweep] == ["max_iter", "diverged", "no_decrease"]
    assert sweep[1].n_iter < sweep[0].n_iter  # frozen while the others went on
    assert "smaller learning rate than lr=0.05" in sweep[1].reason
    for result, rate in zip(sweep, rates, strict=True):
        assert_same_run(
            result,
            alone(ROSENBROCK, START, ds.optim.momentum(lr=rate), max_iter=800, patience=100),
        )
    assert sweep.best_configuration != {"lr": 0.05}
    assert sweep.ranking()[-1] == 1  # a diverged run ranks last


def test_an_expression_names_its_variables_and_a_one_variable_sign_change_is_refined():
    sweep = ds.minimize("(x-3)**2 + 10*(y+1)**2", {"x": 0, "y": 0}, lr=[0.01, 0.05],
                        max_iter=2000, verbose=0)  # fmt: skip
    for result, configuration in zip(sweep, sweep.configurations, strict=True):
        theirs = ds.minimize("(x-3)**2 + 10*(y+1)**2", {"x": 0, "y": 0}, max_iter=2000,
                             verbose=0, **configuration)  # fmt: skip
        assert result.x.keys() == {"x", "y"}
        assert result.x == pytest.approx(theirs.x, rel=1e-12)
        assert result.n_iter == theirs.n_iter and result.reason == theirs.reason

    def f(x):
        return jnp.cos(x) + 0.1 * x

    sweep = ds.minimize(f, 2.0, lr=[1.5, 1.8], refine=True, verbose=0)
    for result, rate in zip(sweep, [1.5, 1.8], strict=True):
        theirs = alone(f, 2.0, ds.optim.gd(lr=rate), refine=True)
        assert_same_run(result, theirs)
        assert result.bracket == pytest.approx(theirs.bracket, rel=1e-12)
    assert {r.status for r in sweep} == {"sign_change"}


def test_a_path_too_long_to_keep_is_left_out_as_alone():
    sweep = ds.minimize(ROSENBROCK, START, lr=[1e-3, 2e-3], keep_path=False, max_iter=50,
                        verbose=0)  # fmt: skip
    assert all("x" not in result.history for result in sweep)
    assert all(len(result.history["value"]) == result.n_iter + 1 for result in sweep)


def test_one_program_runs_every_configuration_and_a_second_sweep_compiles_nothing():
    def f(x):  # a function of its own: its programs are compiled in this test
        return jnp.sum((x - 1.0) ** 2) + 0.5 * jnp.sum(x**4)

    def sweep(rates):
        return ds.minimize(f, jnp.array([2.0, -1.0]), optimizer="adam", lr=rates,
                           max_iter=300, verbose=0)  # fmt: skip

    before = engine.iterate._batched_programs.cache_info().misses
    first = compilations(lambda: sweep([0.01, 0.1]))
    assert first > 0
    assert engine.iterate._batched_programs.cache_info().misses == before + 1  # one program
    # Other values, other optimizer objects, the same shapes: nothing is compiled again.
    assert compilations(lambda: sweep([0.02, 0.3])) == 0
    assert engine.iterate._batched_programs.cache_info().misses == before + 1


def test_the_sweep_is_ranked_by_value_and_shows_a_table():
    sweep = ds.minimize(ROSENBROCK, START, optimizer="momentum", lr=[1e-4, 1e-3],
                        max_iter=500, verbose=0)  # fmt: skip
    assert sweep.ranked_by == "fun"
    assert sweep.best is min(sweep, key=lambda r: r.fun)
    rows = sweep.rows
    assert [row["lr"] for row in rows] == [1e-3, 1e-4]
    assert {"rank", "lr", "fun", "n_iter", "status"} <= set(rows[0])
    assert "lr" in str(sweep) and "<table" in sweep._repr_html_()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"lr": []}, InputError, r"lr=\[\] sweeps no value; give at least one, e.g. lr=\[0.01"),
        ({"lr": [0.1, -1.0]}, InputError, r"configuration 1 \(lr=-1.0\): lr must be"),
        ({"lr": "0.1"}, DescendTypeError, "lr must be a number or a list"),
        ({"lr": [0.1, "fast"]}, InputError, "cannot vary inside one program"),
        ({"param_grid": [0.5, 0.9]}, DescendTypeError, "param_grid must be a dict"),
        ({"param_grid": {"momentum": 0.9}}, InputError, "must be a list of values"),
        ({"param_grid": {"momentum": []}}, InputError, r"e.g. \{'momentum': \[0.5, 0.9\]\}"),
        ({"optimizer": "adam", "param_grid": {"eps": []}}, InputError, r"\{'eps': \[1e-08\]\}"),
        ({"lr": [0.1], "param_grid": {"lr": [0.2]}}, InputError, "lr is given twice"),
        ({"lr": [1e-3, 0.001]}, InputError, "lr must be a list of distinct values: 0.001"),
        ({"optimizer": "adam", "param_grid": {"betas": [(0.9, 0.999), [0.9, 0.999]]}},
         InputError, r"betas must be a list of distinct values: \[0.9, 0.999\]"),
        ({"optimizer": "sgd", "param_grid": {"momentum": [0.0, 0.9]}}, InputError,
         "state of other shapes"),
        ({"optimizer": "adam", "param_grid": {"amsgrad": [True, False]}}, InputError,
         r"^amsgrad=\[True, False\] cannot vary inside one program \(True is no number\)"),
        ({"optimizer": "adam", "param_grid": {"momentum": [0.9]}}, InputError, "momentum"),
        ({"lr": [0.1], "batched": True}, InputError, "one start without a callback"),
        ({"lr": [0.1], "callback": print}, InputError, "one start without a callback"),
        ({"lr": [0.1], "optimizer": "lbfgs", "bounds": [(-2, 2), (-2, 2)]}, InputError,
         "projected L-BFGS"),
        ({"optimizer": ds.optim.chain(ds.optim.sgd()), "lr": [0.1]}, DescendTypeError,
         "not built by name"),
    ],
)  # fmt: skip
def test_a_sweep_that_cannot_run_is_refused_by_name(options, error, message):
    x0 = np.array([[-1.2, 1.0]]) if options.get("batched") else START
    with pytest.raises(error, match=message):
        ds.minimize(ROSENBROCK, x0, verbose=0, **options)


def test_one_rate_builds_the_optimizer_with_it():
    theirs = alone(ROSENBROCK, START, ds.optim.adam(lr=0.05), max_iter=200)
    mine = ds.minimize(ROSENBROCK, START, optimizer=ds.optim.adam(), lr=0.05, max_iter=200,
                       verbose=0)  # fmt: skip
    assert isinstance(mine, ds.MinimizeResult)
    assert_same_run(mine, theirs)
    with pytest.raises(InputError, match="lr must be"):
        ds.minimize(ROSENBROCK, START, lr=-0.1, verbose=0)


def test_a_sweep_leaves_the_start_point_alone():
    start = jnp.array(START)
    ds.minimize(ROSENBROCK, start, lr=[1e-3, 2e-3], max_iter=20, verbose=0)
    assert not start.is_deleted()
    np.testing.assert_array_equal(start, jnp.array(START))


@pytest.mark.parametrize("name", ds.optim.names())
def test_every_optimizer_with_a_numeric_rate_sweeps_it_in_one_program(name):
    # A check written as a Python comparison, or with jnp on a number, fails on the
    # traced value: each configuration is checked concretely instead.
    optimizer = ds.optim.get(name)
    rate = optimizer.hyperparams.get("lr")
    if not isinstance(rate, (int, float)):
        pytest.skip(f"{name} has no numeric lr (a line search, or a wrapper)")
    configurations = [{"lr": rate}, {"lr": 2 * rate}]
    built = injection.check_configurations(optimizer, configurations, jnp.ones((3, 2)))
    assert [b.hyperparams["lr"] for b in built] == [rate, 2 * rate]


# ------------------------------------------------------------ descend minimize --lr 0.01,0.1


def run_cli(capsys, *argv):
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_minimize_with_a_list_of_rates_prints_the_sweep_table(capsys, tmp_path):
    picture = tmp_path / "sweep.png"
    status, out, err = run_cli(
        capsys, "minimize", "rosenbrock", "--optimizer", "momentum", "--lr", "0.0001,0.001,0.05",
        "--max-iter", "800", "--plot", str(picture),
    )  # fmt: skip
    assert status == cli.EXIT_OK, err
    sweep = ds.minimize("rosenbrock", optimizer="momentum", lr=[1e-4, 1e-3, 0.05],
                        max_iter=800, verbose=0)  # fmt: skip
    lines = out.splitlines()
    header = next(n for n, line in enumerate(lines) if line.startswith("rank"))
    rows = [line.split() for line in lines[header + 1 : header + 4]]
    assert [float(row[1]) for row in rows] == [row["lr"] for row in sweep.rows]
    assert [row[-1] for row in rows] == [row["status"] for row in sweep.rows]
    assert f"f(x) = {sweep.best.fun:.10g}" in out
    assert picture.stat().st_size > 0


def test_cli_minimize_sweep_json_gives_each_run(capsys):
    status, out, err = run_cli(
        capsys, "minimize", "(x-3)**2 + 10*(y+1)**2", "--optimizer", "adam", "--lr", "0.01,0.1",
        "--param-grid", "betas=0.9:0.999,0.5:0.9", "--json",
    )  # fmt: skip
    assert status == cli.EXIT_OK, err
    payload = json.loads(out)
    assert [run["configuration"] for run in payload["runs"]] == [
        {"betas": [0.9, 0.999], "lr": 0.01}, {"betas": [0.9, 0.999], "lr": 0.1},
        {"betas": [0.5, 0.9], "lr": 0.01}, {"betas": [0.5, 0.9], "lr": 0.1},
    ]  # fmt: skip
    alone = ds.minimize("(x-3)**2 + 10*(y+1)**2", {"x": 0, "y": 0}, lr=0.1,
                        optimizer=ds.optim.adam(betas=(0.5, 0.9)), verbose=0)  # fmt: skip
    assert payload["runs"][3]["n_iter"] == alone.n_iter
    assert payload["runs"][3]["reason"] == alone.reason


def test_cli_minimize_sweep_where_every_rate_diverges_exits_1(capsys):
    status, out, _ = run_cli(capsys, "minimize", "rosenbrock", "--lr", "0.5,0.9")
    assert status == cli.EXIT_FAILED
    assert out.count("diverged") >= 2 and "--lr" in out  # the advice in the CLI's words


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--lr", "0.01,abc"], "argument --lr: expected a number > 0, got 'abc'"),
        (["--lr", "abc"], "argument --lr: expected a number > 0, got 'abc'"),
        (["--max-iter", "1.5"], "argument --max-iter: expected a whole number, got '1.5'"),
        (["--lr", "0.01,-1"], "argument --lr: expected a number > 0, got '-1'"),
        (["--param-grid", "momentum"], "expected NAME=V1,V2"),
        (["--optimizer", "sgd", "--param-grid", "momentum=0,0.9"], "a state of other shapes"),
        (["--param-grid", "momentum=0.5", "--param-grid", "momentum=0.9"], "twice"),
        (["--lr", "0.1,0.2", "--opt-args", "lr=0.1"], "lr is given twice"),
    ],
)
def test_cli_minimize_bad_sweep_is_one_line_and_exit_2(capsys, extra, fragment):
    status, out, err = run_cli(capsys, "minimize", "rosenbrock", *extra)
    assert status == cli.EXIT_USAGE
    assert out == "" and err.count("\n") == 1 and err.startswith("descend: ")
    assert fragment in err


def test_the_sweep_picture_puts_scores_spanning_decades_on_a_log_axis():
    sweep = ds.minimize("rosenbrock", optimizer="momentum", lr=[1e-4, 1e-3, 0.05], verbose=0,
                        max_iter=500)  # fmt: skip
    values = np.array([run.fun for run in sweep])
    assert values.max() / values.min() > 100  # 0.05 diverges beside the others
    fig = ds.plot.sweep(sweep)
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].get_ylabel() == "final value"
    close = ds.minimize("x**2 + y**2", {"x": 1.0, "y": 1.0}, optimizer="gd", lr=[0.1, 0.2],
                        max_iter=3, verbose=0)  # fmt: skip
    assert ds.plot.sweep(close).axes[0].get_yscale() == "linear"


def test_a_sweep_from_a_stationary_start_warns_that_every_configuration_ties():
    start = {"x": 0.0, "y": 0.0}  # the minimizer of the function itself
    ties = r"every configuration ties; start elsewhere, e.g. x0=\{'x': 1, 'y': 1\}$"
    with pytest.warns(ds.errors.DescendWarning, match="already a stationary point .* " + ties):
        sweep = ds.minimize("x**2 + 3*y**2", start, lr=[0.01, 0.1], verbose=0)
    assert {run.n_iter for run in sweep} == {0}
    with pytest.warns(ds.errors.DescendWarning, match="already a stationary point"):
        ds.minimize("x**2 + 3*y**2", start, lr=0.1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds.minimize("x**2 + 3*y**2", {"x": 1.0, "y": 1.0}, lr=[0.01, 0.1], verbose=0)


def test_cli_minimize_sweep_from_a_stationary_start_warns_in_one_line(capsys):
    status, out, err = run_cli(capsys, "minimize", "x**2 + 3*y**2", "--lr", "0.01,0.1,0.5")
    assert status == cli.EXIT_OK
    assert err.count("\n") == 1 and err.startswith("descend: warning: the start is already")
    assert err.endswith("start elsewhere, e.g. --x0 x=1,y=1\n")
    with pytest.warns(ds.errors.DescendWarning):
        sweep = ds.minimize("x**2 + 3*y**2", {"x": 0, "y": 0}, lr=[0.01, 0.1, 0.5], verbose=0)
    chosen = ds.optim.rebuild(ds.optim.get("gd"), **sweep.best_configuration)
    best = f"best: {ds.sweeps.label(sweep.best_configuration)}, with {ds.optim.brief(chosen)}"
    assert best in out.splitlines() and "maximize" not in out
    # The advice is a command that runs: from there the sweep takes steps, without a word.
    status, _, err = run_cli(capsys, "minimize", "x**2 + 3*y**2", "--lr", "0.01,0.1,0.5",
                             "--x0", "x=1,y=1")  # fmt: skip
    assert status == cli.EXIT_OK and err == ""


def test_cli_minimize_refuses_a_hyperparameter_in_opt_args_and_the_grid(capsys):
    status, out, err = run_cli(
        capsys, "minimize", "rosenbrock", "--optimizer", "momentum", "--opt-args",
        "momentum=0.3", "--param-grid", "momentum=0.5,0.9",
    )  # fmt: skip
    assert status == 2 and out == ""
    assert (
        err == "descend: momentum is given twice: in --opt-args and in --param-grid; give it once\n"
    )


@pytest.mark.parametrize(
    ("x0", "bounds", "advice"),
    [
        (np.zeros(2), None, "x0=[1, 1]"),
        (0.0, None, "x0=1"),
        (np.zeros(3, np.float32), None, "x0=[1, 1, 1]"),
        (np.zeros(7), None, "x0=... with each coordinate moved by 1"),  # too long to write
        (np.zeros(2), [(-0.5, 0.5), (-0.5, 0.5)], "x0=... with each coordinate moved by 1"),
        ({"a": np.zeros(2)}, None, "x0=... with each coordinate moved by 1"),
    ],
)  # fmt: skip
def test_a_stationary_start_is_answered_with_a_start_one_away(x0, bounds, advice):
    def f(x):
        return sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(x))

    with pytest.warns(ds.errors.DescendWarning) as caught:
        ds.minimize(f, x0, bounds=bounds, verbose=0)
    (message,) = [str(w.message) for w in caught]
    assert message.endswith("start elsewhere, e.g. " + advice), message
    if "..." not in advice:  # the start it names is not stationary
        suggested = ast.literal_eval(advice.removeprefix("x0="))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert ds.minimize(f, np.asarray(suggested, float), verbose=0).n_iter > 0


def test_a_race_from_a_stationary_start_warns_once_with_the_start_as_written(capsys):
    from descend.plot.racing import compare

    with pytest.warns(ds.errors.DescendWarning) as caught:
        compare("x**2 + y**2", ["gd", "adam", "momentum"], {"x": 0.0, "y": 0.0})
    (message,) = [str(w.message) for w in caught]
    assert message.endswith("every optimizer ties; start elsewhere, e.g. x0={'x': 1, 'y': 1}")
    status, _, err = run_cli(capsys, "compare", "x**2 + y**2")
    assert status == cli.EXIT_OK
    assert err.count("\n") == 1 and err.endswith("e.g. --x0 x=1,y=1\n")
