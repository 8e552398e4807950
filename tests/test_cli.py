"""The command line: outputs, --json, exit statuses, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import descend as ds
from descend.cli import main, parse_options
from descend.errors import InputError


def run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_grad_prints_partials_and_gradient_vector(capsys):
    status, out, err = run(capsys, "grad", "2*x**2 + 6*z**2 + 7*m**3", "--at", "x=1,z=1,m=1")
    assert status == 0 and err == ""
    assert "df/dx = 4*x = 4" in out
    assert "df/dz = 12*z = 12" in out
    assert "df/dm = 21*m**2 = 21" in out
    assert "[4, 12, 21]" in out


def test_grad_json(capsys):
    status, out, _ = run(
        capsys, "grad", "2*x**2 + 6*z**2 + 7*m**3", "--at", "x=1,z=1,m=1", "--json"
    )
    payload = json.loads(out)
    assert status == 0
    assert payload["gradient"] == [4.0, 12.0, 21.0]
    assert payload["partials"] == {"x": "4*x", "z": "12*z", "m": "21*m**2"}
    assert payload["variables"] == ["x", "z", "m"]


def test_minimize_expression_text(capsys):
    status, out, _ = run(
        capsys,
        "minimize",
        "(x-3)**2 + 10*(y+1)**2",
        "--x0",
        "x=0,y=0",
        "--optimizer",
        "gd",
        "--lr",
        "0.05",
        "--tol",
        "1e-8",
    )
    assert status == 0
    minimizer = dict(
        item.split(" = ") for item in out.split("minimizer: ")[1].splitlines()[0].split(", ")
    )
    assert float(minimizer["x"]) == pytest.approx(3.0, abs=1e-7)
    assert float(minimizer["y"]) == pytest.approx(-1.0, abs=1e-7)
    assert "stopped: gradient norm" in out and "iterations:" in out


def test_minimize_json_keys(capsys):
    status, out, _ = run(capsys, "minimize", "(x-3)**2 + 10*(y+1)**2", "--x0", "x=0,y=0", "--json")
    payload = json.loads(out)
    assert status == 0
    expected = {
        "expression",
        "x",
        "fun",
        "grad",
        "grad_norm",
        "n_iter",
        "n_fev",
        "converged",
        "status",
        "reason",
        "bracket",
        "n_overshoots",
        "hints",
        "optimizer",
    }
    assert set(payload) == expected
    assert payload["converged"] is True
    assert payload["x"]["x"] == pytest.approx(3.0, abs=1e-6)
    assert payload["x"]["y"] == pytest.approx(-1.0, abs=1e-6)


def test_minimize_named_test_function(capsys):
    status, out, _ = run(capsys, "minimize", "rosenbrock", "--json")
    payload = json.loads(out)
    assert status == 0 and payload["converged"]
    assert payload["x"] == pytest.approx([1.0, 1.0], abs=1e-5)


def test_minimize_with_opt_args(capsys):
    status, out, _ = run(
        capsys,
        "minimize",
        "x**2 + y**2",
        "--x0",
        "x=1,y=1",
        "--optimizer",
        "sgd",
        "--lr",
        "0.1",
        "--opt-args",
        "momentum=0.5,nesterov=true",
        "--json",
    )
    payload = json.loads(out)
    assert status == 0
    assert "nesterov=True" in payload["optimizer"] and "momentum=0.5" in payload["optimizer"]


def test_diverged_run_exits_1_with_reason(capsys):
    status, out, _ = run(capsys, "minimize", "sqrt(x)", "--x0", "x=1", "--lr", "10", "--json")
    assert status == 1
    assert json.loads(out)["status"] == "diverged"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["minimize", "__import__('os')"], "unsupported name '__import__' at column 1"),
        (["minimize", "x**2", "--optimizer", "adamm"], "unknown optimizer 'adamm'"),
        (["minimize", "x**2", "--lr", "-1"], "lr must be"),
        (["minimize", "x**2", "--x0", "q=1"], "not a variable"),
        (["minimize", "log(x)"], "not finite at x0"),
        (["minimize", "x**2", "--opt-args", "momentum"], "key=value"),
        (["minimize"], "required"),
        (["grad", "x**2"], "required"),
        (["grad", "x.__class__", "--at", "x=1"], "attribute access"),
        (["functions", "rosenbrok"], "did you mean 'rosenbrock'"),
        (["compare", "x**2", "--criterion", "value"], "(use --criterion grad_norm)"),
        (["minimize", "x**2 + y**2", "--refine"], "--refine bisects a sign change"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, fragment):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("descend: ")
    assert fragment in err
    assert "Traceback" not in err


def test_functions_listing_and_json(capsys):
    status, out, _ = run(capsys, "functions")
    assert status == 0 and "rosenbrock" in out and "himmelblau" in out
    status, out, _ = run(capsys, "functions", "himmelblau", "--json")
    payload = json.loads(out)
    assert payload["name"] == "himmelblau" and len(payload["minimizers"]) == 4


def test_functions_dim_shows_that_dimension(capsys):
    status, out, _ = run(capsys, "functions", "rosenbrock", "--dim", "4", "--json")
    payload = json.loads(out)
    assert status == 0 and payload["dim"] == 4
    assert payload["minimizers"] == [[1.0] * 4] and len(payload["start"]) == 4


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["functions", "--dim", "4"], "--dim describes one function"),
        (["functions", "booth", "--dim", "3"], "booth is a function of 2 variables, got dim=3"),
        (["minimize", "rosenbrock", "--dim", "1"], "rosenbrock is defined for dim >= 2"),
        (["minimize", "booth", "--x0", "1,2,3"], "--x0 has 3 values; the function has 2"),
        (["minimize", "sphere", "--dim", "3", "--x0", "1,2"], "--x0 has 2 values"),
    ],
)
def test_test_function_dimensions_are_checked(capsys, argv, fragment):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == "" and fragment in err


def test_minimize_takes_the_dimension_from_x0(capsys):
    argv = ["minimize", "rosenbrock", "--x0=-1,-1,-1,-1,-1", "--optimizer", "lbfgs", "--json"]
    status, out, _ = run(capsys, *argv)
    payload = json.loads(out)
    assert status == 0 and len(payload["x"]) == 5
    assert max(abs(v - 1.0) for v in payload["x"]) < 1e-4


def test_optimizers_listing_json(capsys):
    status, out, _ = run(capsys, "optimizers", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert status == 0 and {"gd", "sgd", "momentum"} <= set(rows)
    assert rows["lion"]["reference"] == "optax.lion"


def test_parse_options_reads_values_without_evaluating():
    options = parse_options(
        "momentum=0.9,nesterov=true,betas=(0.9,0.99),line_search_fn=strong_wolfe,n=3"
    )
    assert options == {
        "momentum": 0.9,
        "nesterov": True,
        "betas": (0.9, 0.99),
        "line_search_fn": "strong_wolfe",
        "n": 3,
    }
    assert parse_options("x=__import__('os')") == {"x": "__import__('os')"}


def test_parse_options_reads_lists_and_quoted_text(capsys):
    options = parse_options(
        """betas=[0.9, 0.99],weight_decay_mask='weights',label="a,b",eps=(none,1e-3)"""
    )
    assert options == {"betas": (0.9, 0.99), "weight_decay_mask": "weights", "label": "a,b",
                       "eps": (None, 1e-3)}  # fmt: skip
    assert parse_options("x='1'") == {"x": "1"}  # quoted: text, not a number
    for bad, what in [("betas=(0.9,0.99", "parentheses or brackets"), ("m='x", "quote")]:
        with pytest.raises(InputError, match=f"unbalanced {what}"):
            parse_options(bad)
    status, _, err = run(capsys, "minimize", "x**2", "--optimizer", "adam", "--opt-args",
                         "betas=[0.9, 0.99", "--max-iter", "3")  # fmt: skip
    assert status == 2 and "unbalanced" in err and "Traceback" not in err
    status, out, err = run(capsys, "minimize", "x**2", "--x0", "x=1", "--optimizer", "adam",
                           "--lr", "0.1", "--opt-args", "betas=[0.5, 0.9]", "--json")  # fmt: skip
    assert status == 0, err
    alone = ds.minimize("x**2", {"x": 1.0}, optimizer=ds.optim.adam(0.1, betas=(0.5, 0.9)),
                        verbose=0)  # fmt: skip
    assert json.loads(out)["n_iter"] == alone.nit


def test_console_entry_point_has_no_traceback_on_bad_input():
    process = subprocess.run(
        [sys.executable, "-m", "descend", "minimize", "__import__('os').system('echo hacked')"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 2
    assert process.stderr.startswith("descend: unsupported")
    assert process.stderr.count("\n") == 1
    assert "hacked" not in process.stdout


def test_train_with_a_weight_decay_mask_is_fit_with_it_and_resumes_with_it(capsys, tmp_path):
    """--opt-args weight_decay_mask=weights: the run is the library's fit with the mask
    (biases undecayed), the saved model keeps the mask and a resumed run continues it."""
    import numpy as np

    import descend as ds

    saved = tmp_path / "model.ckpt"
    common = ["--dataset", "breast_cancer", "--optimizer", "adamw", "--lr", "0.05"]
    common += ["--validation-split", "0", "--dtype", "float64", "--json"]
    mask_args = ["--opt-args", "weight_decay=0.5,weight_decay_mask=weights"]
    status, _, err = run(
        capsys, "train", *common, *mask_args, "--epochs", "2", "--save", str(saved)
    )
    assert status == 0, err
    loaded = ds.load(saved)
    optimizer = ds.optim.adamw(lr=0.05, weight_decay=0.5, weight_decay_mask="weights")
    assert loaded.optimizer == optimizer
    dataset = ds.data.load_dataset("breast_cancer", dtype="float64")
    settings = dict(
        optimizer=optimizer, batch_size=32, seed=0, standardize=True, dtype="float64", verbose=0
    )
    reference = ds.fit("logistic", dataset, epochs=2, **settings)
    np.testing.assert_allclose(loaded.params["w"], reference.params["w"], rtol=1e-12)
    np.testing.assert_allclose(loaded.params["b"], reference.params["b"], rtol=1e-12)
    unmasked = ds.fit("logistic", dataset, epochs=2, **{**settings, "optimizer": "adamw"})
    assert not np.allclose(unmasked.params["b"], reference.params["b"], rtol=1e-6)

    # --resume rebuilds the optimizer from the flags given again, mask included
    resumed_to = tmp_path / "resumed.ckpt"
    status, _, err = run(
        capsys, "train", *common, *mask_args, "--epochs", "4", "--resume", str(saved),
        "--save", str(resumed_to),
    )  # fmt: skip
    assert status == 0, err
    continued = ds.fit("logistic", dataset, epochs=4, **settings)
    np.testing.assert_allclose(ds.load(resumed_to).params["b"], continued.params["b"], rtol=1e-12)


def test_optimizers_listing_shows_the_weight_decay_mask(capsys):
    from descend import optim

    with_mask = [row["name"] for row in optim.available() if row["leaf_settings"]]
    assert "adamw" in with_mask and "rprop" not in with_mask
    status, out, _ = run(capsys, "optimizers")
    assert status == 0 and out.count("weight_decay_mask=None") == len(with_mask)
    status, out, _ = run(capsys, "optimizers", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["adamw"]["leaf_settings"] == {"weight_decay_mask": None}


def test_optimizers_listing_shows_plain_summaries(capsys):
    from descend import optim

    marked = [row for row in optim.available() if "``" in row["summary"]]
    assert marked  # the docstrings' markup that the listing drops
    status, out, _ = run(capsys, "optimizers")
    assert status == 0 and "``" not in out and ":func:" not in out
    assert "Gradient descent with (heavy-ball) momentum: sgd with momentum=0.9." in out
    for row in marked:
        assert row["summary"].replace("``", "").replace(":func:`", "").replace("`", "") in out


# ------------------------------------------------------------ the library's words, the CLI's


SPELLED = [
    ("train", "the validation loss is undefined; use another seed or validation_split, or pass "
     "validation=(X_val, y_val)",
     "the validation loss is undefined; use another seed or --validation-split"),
    ("train", "pass nan_policy='drop' to drop those rows or nan_policy='impute_mean'",
     "pass --nan-policy drop to drop those rows or --nan-policy impute_mean"),
    ("train", "batch_size=7 does not split evenly (e.g. batch_size=6)",
     "--batch-size 7 does not split evenly (e.g. --batch-size 6)"),
    ("train", "epochs=3 leaves none to run; ask for more, e.g. epochs=8",
     "--epochs 3 leaves none to run; ask for more, e.g. --epochs 8"),
    ("train", "validation_split must be in (0, 1)", "--validation-split must be in (0, 1)"),
    ("train", "fraction=0.01 of 10 samples", "--validation-split 0.01 of 10 samples"),
    ("train", "use a smaller batch_size or ds.data.stream(..., chunk_rows=200) or more",
     "use a smaller --batch-size or --chunk-rows 200 or more"),
    ("train", "make them the same: fit(..., dtype='float64')",
     "make them the same: --dtype float64"),
    ("train", "e.g. lr=1e-06, or standardize=True",
     "e.g. --lr 1e-06, or leave out --no-standardize"),
    ("train", "pass standardize=False", "pass --no-standardize"),
    ("train", "give it, e.g. sep=';'", "give it, e.g. --sep ';'"),
    ("train", "add it (categorical=['b', 'city'])", "add it (--categorical b,city)"),
    ("train", "cannot rebuild adam(lr=0.1) with lr=0.5",
     "cannot rebuild adam(lr=0.1) with --lr 0.5"),
    ("train", "(the checkpoint's, or init=) ...; omitting optimizer= reuses the checkpoint's",
     "(the checkpoint's, or init=) ...; omitting --optimizer reuses the checkpoint's"),
    ("compare", "lr is given twice for 'adam': by lr= and in its hyperparameters",
     "lr is given twice for 'adam': by --lr and in its hyperparameters"),
    ("minimize", "refine=True bisects", "--refine bisects"),
    ("minimize", "up to max_iter=80 steps; set T_max=80",
     "up to --max-iter 80 steps; set T_max=80"),
    ("minimize", "gradient norm 3e-07 is below tol=1e-06",
     "gradient norm 3e-07 is below --tol 1e-06"),
]  # fmt: skip

KEPT = [  # a Python call shown whole, a value echoed, None that no option takes, no option
    ("train", "for example chain(clip_by_global_norm(1.0), sgd(lr=0.1))"),
    ("train", "(batch_size=None, batch gradient descent)"),
    ("train", "load(path, optimizer=...)"),
    ("train", "name the target in ds.data.stream(..., target=)"),
    ("train", "one_cycle(total_steps=100); set total_steps=600"),
    ("minimize", "a function of 2 variables, got dim=3"),
    ("minimize", "pass nan_policy='drop'"),  # not an option of minimize
]


def command_words(command, message):
    from descend.cli import build_parser
    from descend.cli.common import command_options, in_command_line_words

    return in_command_line_words(message, command_options(build_parser().commands[command]))


@pytest.mark.parametrize(("command", "message", "expected"), SPELLED)
def test_library_messages_name_the_commands_options(command, message, expected):
    assert command_words(command, message) == expected


@pytest.mark.parametrize(("command", "message"), KEPT)
def test_library_messages_keep_what_no_option_says(command, message):
    assert command_words(command, message) == message


def test_a_minimize_hint_names_the_option(capsys):
    """The reason and hints printed by minimize speak of --max-iter, not max_iter=."""
    status, out, err = run(capsys, "minimize", "rosenbrock", "--optimizer", "sgd", "--lr", "1e-4",
                           "--max-iter", "5")  # fmt: skip
    assert "max_iter" not in out and "--max-iter" in out, out


def test_a_bad_hyperparameter_in_opt_args_keeps_its_name_not_the_commands_option(capsys):
    """sophia's seed is not --seed: the message names the hyperparameter as given."""
    status, _, err = run(
        capsys, "train", "--dataset", "iris", "--optimizer", "sophia", "--opt-args", "seed=-1",
        "--epochs", "1",
    )  # fmt: skip
    assert status == 2
    assert err.strip().splitlines()[-1] == "descend: seed must be an integer >= 0, got -1"
    status, _, err = run(capsys, "train", "--dataset", "iris", "--seed", "-1", "--epochs", "1")
    assert status == 2 and "--seed must be an integer >= 0" in err


@pytest.fixture(scope="module")
def python_checkpoints(tmp_path_factory):
    """A CSV, and checkpoints saved from Python that a command cannot resume alone: one
    trained with a loss function, one whose optimizer (sam) the file cannot rebuild."""
    import numpy as np

    folder = tmp_path_factory.mktemp("python-checkpoints")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] > 0).astype(int)
    table = folder / "data.csv"
    table.write_text(
        "a,b,label\n" + "".join(f"{a},{b},{c}\n" for (a, b), c in zip(X, y, strict=True))
    )
    squared = lambda p, t: (p - t) ** 2  # noqa: E731
    quick = {"epochs": 1, "verbose": 0}
    ds.save(folder / "custom.ckpt", ds.fit("logistic", X, y, loss=squared, **quick))
    ds.save(folder / "sam.ckpt", ds.fit("logistic", X, y, optimizer="sam", **quick))
    return folder


@pytest.mark.parametrize(
    ("argv", "fragment", "python"),
    [
        (["data.csv", "--seed", "0,1"], "would train each on other rows; train one seed per "
         "command, or hold none out (--validation-split 0)", "validation=("),
        (["data.csv", "--resume", "custom.ckpt"], "cannot be stored; a command cannot pass a "
         "function, so resume it from Python with the loss given again", "fit("),
        (["data.csv", "--resume", "sam.ckpt"], "--resume", "ds.load("),
        (["data.csv", "--stream"], "for a CSV that fits in memory leave out --stream, or "
         "convert it to Parquet", "fit("),
    ],
)  # fmt: skip
def test_library_advice_for_python_is_said_as_the_command_can_follow_it(
    capsys, python_checkpoints, monkeypatch, argv, fragment, python
):
    monkeypatch.chdir(python_checkpoints)
    status, out, err = run(capsys, "train", *argv, "--epochs", "2")
    assert status == 2 and err.count("\n") == 1, err
    assert fragment in err and python not in err
