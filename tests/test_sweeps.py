"""Sweeps in one program: ``fit(..., lr=[...])`` and ``param_grid`` train every
configuration at once, and each equals the same fit run alone (descend.training.sweep,
descend.sweeps)."""

import math

import numpy as np
import pytest

import descend as ds
from descend import engine
from descend.errors import DescendTypeError, InputError
from descend.training import sweep as sweeping

rng = np.random.default_rng(0)
X = rng.normal(size=(96, 3))
LABELS = (X @ np.array([1.0, -2.0, 0.5]) + 0.5 * rng.normal(size=96) > 0).astype(int)
TARGETS = X @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.normal(size=96)
X_VAL = rng.normal(size=(40, 3))
Y_VAL = (X_VAL @ np.array([1.0, -2.0, 0.5]) > 0).astype(int)
COMMON = {"batch_size": 16, "epochs": 6, "verbose": 0}
TOLERANCE = {"float64": {"rtol": 1e-9, "atol": 1e-12}, "float32": {"rtol": 2e-4, "atol": 2e-6}}


def _alone(model, y, configuration, optimizer, **options):
    """The fit that configuration's run must equal: its values passed as fit's own."""
    options = {**COMMON, **options}
    own = {key: value for key, value in configuration.items() if key in ("seed", "l2")}
    hyper = {key: value for key, value in configuration.items() if key not in ("seed", "l2")}
    if optimizer is None:
        options["lr"] = hyper.pop("lr", None)
        assert not hyper
    else:
        options["optimizer"] = ds.optim.rebuild(optimizer, **hyper)
    return ds.fit(model, X, y, **own, **options)


def _check_equal(mine, alone, dtype):
    tolerance = TOLERANCE[dtype]
    assert mine.status == alone.status, (mine.reason, alone.reason)
    assert mine.n_epochs == alone.n_epochs and mine.n_updates == alone.n_updates
    assert mine.best_epoch == alone.best_epoch
    for got, want in zip(_leaves(mine.params), _leaves(alone.params), strict=True):
        np.testing.assert_allclose(got, want, **tolerance)
    for got, want in zip(_leaves(mine.opt_state), _leaves(alone.opt_state), strict=True):
        np.testing.assert_allclose(got, want, **tolerance)
    assert set(mine.history) == set(alone.history)
    for key in mine.history:
        if key != "time":
            np.testing.assert_allclose(mine.history[key], alone.history[key], **tolerance)
    if dtype == "float64":
        assert mine.reason == alone.reason
    assert mine.optimizer == alone.optimizer and mine.l2 == pytest.approx(alone.l2)


def _leaves(tree):
    import jax

    return [np.asarray(leaf, dtype=float) for leaf in jax.tree.leaves(tree)]


CASES = {
    "lr, the default optimizer": ({"lr": [1e-3, 3e-2, 0.3]}, None, {}),
    "lr and momentum": (
        {"lr": [0.01, 0.1], "param_grid": {"momentum": [0.5, 0.9]}},
        ds.optim.sgd(lr=0.05, momentum=0.1),
        {},
    ),
    "betas": ({"param_grid": {"betas": [(0.9, 0.999), (0.5, 0.9)]}}, ds.optim.adam(lr=0.05), {}),
    "weight_decay": (
        {"param_grid": {"weight_decay": [0.0, 0.1]}},
        ds.optim.adamw(lr=0.05),
        {"validation": (X_VAL, Y_VAL)},
    ),
    "seed": ({"seed": [0, 1, 2]}, ds.optim.sgd(lr=0.1), {"model_name": "mlp"}),
    "l2": ({"l2": [0.0, 0.01, "auto"]}, None, {"validation": (X_VAL, Y_VAL)}),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_configuration_equals_the_same_fit_run_alone(case, dtype):
    grid, optimizer, options = CASES[case]
    options = dict(options)
    model = options.pop("model_name", "logistic")
    y = TARGETS if model == "mlp" else LABELS
    if model == "mlp":
        model = ds.models.mlp(hidden=(4,))
    extra = {} if optimizer is None else {"optimizer": optimizer}
    sweep = ds.fit(model, X, y, **COMMON, **grid, **extra, **options, dtype=dtype)
    assert isinstance(sweep, ds.Sweep)
    assert len(sweep) == math.prod(len(v) for v in _lists(grid))
    for result, configuration in zip(sweep, sweep.configurations, strict=True):
        alone = _alone(model, y, configuration, optimizer, **options, dtype=dtype)
        _check_equal(result, alone, dtype)


def _lists(grid):
    for key, value in grid.items():
        if key == "param_grid":
            yield from value.values()
        else:
            yield value


def test_the_configurations_differ_and_come_in_parameter_grid_order():
    optimizer = ds.optim.sgd(lr=0.05, momentum=0.5)
    sweep = ds.fit("logistic", X, LABELS, **COMMON, lr=[0.01, 0.1], optimizer=optimizer,
                   param_grid={"momentum": [0.5, 0.9]}, dtype="float64")  # fmt: skip
    from sklearn.model_selection import ParameterGrid

    expected = list(ParameterGrid({"lr": [0.01, 0.1], "momentum": [0.5, 0.9]}))
    assert [dict(c) for c in sweep.configurations] == expected
    assert not np.allclose(sweep[0].params["w"], sweep[3].params["w"])


def test_fits_own_lists_pair_each_value_with_its_name():
    from sklearn.model_selection import ParameterGrid

    lists = {"lr": [0.01, 0.1], "l2": [0.0, 0.5], "seed": [3, 4]}
    sweep = ds.fit("logistic", X, LABELS, **COMMON, **lists, optimizer="sgd",
                   validation=(X_VAL, Y_VAL))  # fmt: skip
    assert [dict(c) for c in sweep.configurations] == list(ParameterGrid(lists))
    for configuration, result in zip(sweep.configurations, sweep, strict=True):
        assert result.optimizer.hyperparams["lr"] == configuration["lr"]
        assert result.l2 == configuration["l2"] and result.seed == configuration["seed"]


def test_a_diverging_configuration_is_frozen_and_reported_alone_while_the_others_finish():
    rates = [0.05, 1e60]  # non-finite within the first epoch: its replay keeps the last finite
    options = {**COMMON, "optimizer": "sgd", "dtype": "float64"}
    sweep = ds.fit("linear", X, TARGETS, lr=rates, **options)
    for result, lr in zip(sweep, rates, strict=True):
        alone = ds.fit("linear", X, TARGETS, lr=lr, **options)
        assert result.status == alone.status
        assert result.reason == alone.reason
        np.testing.assert_allclose(_leaves(result.params)[0], _leaves(alone.params)[0], rtol=1e-9)
    assert sweep[1].status == "diverged" and "non-finite" in sweep[1].reason
    assert sweep[0].status == "max_epochs" and sweep[0].n_epochs == COMMON["epochs"]
    assert sweep.best_index == 0 and sweep.ranking()[-1] == 1


def test_early_stopping_stops_each_configuration_on_its_own_epoch():
    options = {**COMMON, "epochs": 40, "patience": 2, "validation": (X_VAL, Y_VAL),
               "dtype": "float64"}  # fmt: skip
    rates = [1e-3, 0.5, 3.0]
    sweep = ds.fit("logistic", X, LABELS, lr=rates, **options)
    epochs = [result.n_epochs for result in sweep]
    for result, lr in zip(sweep, rates, strict=True):
        _check_equal(result, ds.fit("logistic", X, LABELS, lr=lr, **options), "float64")
    assert len(set(epochs)) > 1  # they stopped apart, each as it would alone


def test_the_progress_line_shows_the_score_the_sweep_ranks_by(capsys):
    options = {**COMMON, "epochs": 40, "patience": 2, "validation": (X_VAL, Y_VAL),
               "dtype": "float64", "verbose": 2}  # fmt: skip
    sweep = ds.fit("logistic", X, LABELS, lr=[1e-3, 0.5, 3.0], **options)
    assert len({result.n_epochs for result in sweep}) > 1  # one held its restored epoch
    last = capsys.readouterr().out.strip().splitlines()[-1]
    best = sweep.best.metrics()[sweep.ranked_by]
    shown = f"best {sweep.ranked_by} {best:.4g} ({ds.sweeps.label(sweep.best_configuration)})"
    assert sweep.ranked_by == "val_loss" and last.endswith(shown), last


def test_the_table_ranks_by_validation_loss_and_the_best_is_its_first_row():
    options = {**COMMON, "validation": (X_VAL, Y_VAL), "dtype": "float64"}
    sweep = ds.fit("logistic", X, LABELS, lr=[1e-3, 0.03, 0.3, 1.0], **options)
    losses = [result.metrics()["val_loss"] for result in sweep]
    order = sorted(range(len(losses)), key=losses.__getitem__)
    assert sweep.ranked_by == "val_loss"
    assert [row["lr"] for row in sweep.rows] == [sweep.configurations[i]["lr"] for i in order]
    assert [row["rank"] for row in sweep.rows] == [1, 2, 3, 4]
    assert sweep.table() == str(sweep) and isinstance(race_table(), str)
    assert sweep.best is sweep[order[0]]
    assert sweep.best_configuration == sweep.configurations[order[0]]
    np.testing.assert_array_equal(sweep.predict(X_VAL), sweep[order[0]].predict(X_VAL))
    assert sweep.score(X_VAL, Y_VAL) == sweep[order[0]].score(X_VAL, Y_VAL)
    text = str(sweep)
    assert text.splitlines()[0].split()[:2] == ["rank", "lr"] and len(text.splitlines()) == 5
    assert repr(sweep).startswith("Sweep(4 configurations of lr, best lr=")
    assert "<table" in sweep._repr_html_() and "<svg" in sweep._repr_html_()


def test_without_validation_the_training_loss_ranks():
    sweep = ds.fit("logistic", X, LABELS, lr=[1e-3, 0.1], **COMMON)
    losses = [result.metrics()["loss"] for result in sweep]
    assert sweep.ranked_by == "loss" and sweep.best_index == int(np.argmin(losses))


def test_a_second_sweep_of_the_same_shapes_compiles_nothing():
    options = {**COMMON, "optimizer": "adam"}
    ds.fit("logistic", X, LABELS, lr=[0.01, 0.02], **options)
    before = engine.compiled_sweep_epoch.cache_info().misses
    ended = sweeping._ended_program.cache_info().misses
    ds.fit("logistic", X, LABELS, lr=[0.5, 0.003], **options)
    assert engine.compiled_sweep_epoch.cache_info().misses == before
    assert sweeping._ended_program.cache_info().misses == ended


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"lr": []}, InputError, r"lr=\[\] sweeps no value; give at least one, e.g. "
         r"lr=\[0.01, 0.1\]$"),
        ({"seed": []}, InputError, r"seed=\[\] sweeps no value; give at least one, e.g. "
         r"seed=\[0, 1\]$"),
        ({"param_grid": {"momentum": []}}, InputError, r"param_grid\['momentum'\] is empty; "
         r"give at least one value, e.g. \{'momentum': \[0.5, 0.9\]\}$"),
        ({"param_grid": {"batch_size": [8, 16]}}, InputError, "cannot vary batch_size"),
        ({"param_grid": {"momentum": 0.9}}, InputError, "must be a list of values"),
        ({"param_grid": [("momentum", [0.9])]}, DescendTypeError, "must be a dict"),
        ({"lr": [0.1], "param_grid": {"lr": [0.2]}}, InputError, "lr is given twice"),
        ({"optimizer": "sgd", "param_grid": {"momentum": [0.0, 0.9]}}, InputError,
         "state of other shapes"),
        ({"optimizer": "adam", "param_grid": {"amsgrad": [True, False]}}, InputError,
         r"^amsgrad=\[True, False\] cannot vary inside one program"),
        ({"lr": [0.1, -1.0]}, InputError, r"configuration 1 \(lr=-1.0\)"),
        ({"seed": [0, -1]}, InputError, "seed"),
        ({"lr": [0.1, 0.2], "resume": "run.safetensors"}, InputError, "resume= cannot be used"),
        ({"lr": [0.1, 0.2], "callbacks": [lambda e, h: None]}, InputError, "callbacks= cannot"),
        ({"seed": [0, 1], "validation_split": 0.2}, InputError, "validation_split holds out"),
        ({"lr": [0.1, 0.1]}, InputError, r"^lr must be a list of distinct values: 0.1 is in "
         r"it more than once \(0.1, 0.1\); each value runs once, so remove the repeat$"),
        ({"seed": [0, 1, 0]}, InputError, "seed must be a list of distinct values: 0 is"),
        ({"lr": [1, 1.0]}, InputError, "lr must be a list of distinct values"),
        ({"optimizer": "sgd", "param_grid": {"momentum": [0.9, 0.5, 0.9]}}, InputError,
         "momentum must be a list of distinct values: 0.9"),
    ],
)  # fmt: skip
def test_a_sweep_one_program_cannot_run_is_refused_clearly(arguments, error, message):
    with pytest.raises(error, match=message):
        ds.fit("logistic", X, LABELS, **{**COMMON, **arguments})


def test_plot_sweep_draws_the_score_against_the_rate_and_each_loss_curve():
    from descend import plot

    sweep = ds.fit("logistic", X, LABELS, lr=[1e-3, 0.03, 0.3], **COMMON)
    figure = plot.sweep(sweep)
    score, curves = figure.axes[:2]
    assert score.get_xscale() == "log"
    (line,) = [line for line in score.get_lines() if line.get_gid() == "score"]
    np.testing.assert_allclose(line.get_xdata(), [1e-3, 0.03, 0.3])
    np.testing.assert_allclose(line.get_ydata(), sweep.values())
    assert len([line for line in curves.get_lines() if line.get_gid() == "curve"]) == 3


def race_table():
    """A race's table: the text a Sweep's ``table()`` gives too."""
    return ds.compare("booth", ["gd", "adam"], max_iter=5).table()


def test_the_rows_hold_float32_numbers_as_their_shortest_floats():
    sweep = ds.fit("logistic", X, LABELS, lr=[0.01, 0.1], **COMMON)  # float32
    for row, index in zip(sweep.rows, sweep.ranking(), strict=True):
        stored = sweep[index].metrics()
        for key in ("loss", "accuracy"):
            assert np.float32(row[key]) == np.float32(stored[key])  # the same float32
            assert repr(row[key]) == str(np.float32(stored[key]))  # shown as float32 shows it
    assert sweep.to_dict()["table"] == sweep.rows
