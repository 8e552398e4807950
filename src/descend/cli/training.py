"""``descend train`` and ``descend predict``: the command line of :func:`descend.fit`."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from descend.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    KeepWorking,
    add_json,
    add_optimizer_options,
    add_sweep_options,
    listed,
    optimizer_from_args,
    param_grid_from_args,
    print_json,
    rates_from_args,
)
from descend.errors import InputError
from descend.sweeps import Sweep, grid

DEFAULT_DATASET = "breast_cancer"


def add_parsers(commands) -> None:
    """Add ``train`` and ``predict`` to the ``descend`` sub-command parsers."""
    train = commands.add_parser(
        "train", help="train a model on a CSV / Parquet file or a shipped dataset",
        description="Train a model by gradient descent. With no arguments: logistic "
        f"regression on the shipped {DEFAULT_DATASET!r} dataset.",
    )  # fmt: skip
    add_data_options(train)
    train.add_argument(
        "--stream", action="store_true",
        help="read FILE (a Parquet file or folder, or a folder of X_<k>.npy / y_<k>.npy "
        "shards) chunk by chunk: for data larger than memory (no validation split)",
    )  # fmt: skip
    train.add_argument(
        "--chunk-rows", type=int, help="rows read per chunk with --stream (default: 65536)"
    )
    add_model_options(train)
    add_optimizer_options(
        train, default="adam", resumable=True,
        default_text="adam at lr 0.01, the rate cut by 5 after 3 epochs without progress",
        lr_text="0.01 with the default optimizer, else the named optimizer's own default",
    )  # fmt: skip
    add_sweep_options(
        train, "with --lr, --seed or --l2 given as lists (1e-3,1e-2) every configuration "
        "trains at once and the table is printed",
    )  # fmt: skip
    train.add_argument(
        "--method", choices=("batch", "stochastic", "minibatch"),
        help="batch (all rows), stochastic (one row) or mini-batch (--batch-size rows) "
        "updates (default: from --batch-size)",
    )  # fmt: skip
    train.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="rows per update (1: stochastic gradient descent)",
    )
    train.add_argument(
        "--epochs", type=int, default=200,
        help="the most passes over the data; early stopping usually ends sooner",
    )  # fmt: skip
    train.add_argument(
        "--accumulate",
        type=int,
        default=1,
        help="batches whose gradients are summed into one update",
    )
    train.add_argument(
        "--validation-split", type=float, default=None,
        help="share of the rows held out to score the model and stop early (default 0.2; "
        "0 holds none; a --stream holds none out)",
    )  # fmt: skip
    train.add_argument(
        "--patience", type=int, default=10,
        help="stop when the validation loss has not improved for this many epochs; 0 "
        "runs every epoch",
    )  # fmt: skip
    train.add_argument(
        "--min-delta", type=float, default=1e-4,
        help="the least decrease of the loss that counts as improving",
    )  # fmt: skip
    train.add_argument(
        "--l2", type=listed(_l2),
        help="strength of the L2 penalty on the weights (auto: 1 / training rows, as "
        "LogisticRegression(C=1); 0 for none) (default: auto, or the checkpoint's with "
        "--resume)",
    )  # fmt: skip
    train.add_argument(
        "--tol", type=float,
        help="stop when the gradient norm is below this (default: none; early stopping "
        "decides)",
    )  # fmt: skip
    train.add_argument(
        "--no-standardize", action="store_true",
        help="keep the features (and a regression's targets) unscaled",
    )  # fmt: skip
    train.add_argument(
        "--nan-policy", choices=("raise", "drop", "impute_mean"), default="raise",
        help="what to do with missing or non-finite cells: stop, drop their rows, or fill "
        "a feature cell with its column's mean",
    )  # fmt: skip
    train.add_argument(
        "--seed", type=listed(_seed, single=int),
        help="the seed of the shuffling, the split and the initial weights (default: 0, or "
        "the checkpoint's with --resume)",
    )  # fmt: skip
    train.add_argument(
        "--dtype", choices=("float32", "float64"),
        help="the floating-point type of training (default: float32, or the checkpoint's "
        "with --resume)",
    )  # fmt: skip
    train.add_argument("--save", metavar="PATH", help="save the trained model (atomically)")
    train.add_argument(
        "--resume", metavar="PATH",
        help="continue from a saved model (its model, optimizer, seed and penalty unless "
        "given; --epochs counts the epochs already trained)",
    )  # fmt: skip
    train.add_argument("--plot", metavar="PATH.png", help="draw the loss curves")
    train.add_argument(
        "--log-dir", metavar="DIR",
        help="write each epoch's numbers to DIR/history.csv and as TensorBoard events in "
        "DIR (tensorboard --logdir DIR; needs tensorboardX); with --resume the CSV goes on",
    )  # fmt: skip
    train.add_argument(
        "--compare-methods", metavar="PATH.png",
        help="train by batch, mini-batch (--batch-size rows) and stochastic gradient "
        "descent, otherwise alike, and draw their losses against updates and epochs",
    )  # fmt: skip
    several = train.add_argument_group(
        "several processes (each trains on its own FILE, or on its own files of one "
        "--stream folder; one model, saved by process 0)"
    )
    several.add_argument(
        "--coordinator", metavar="HOST:PORT", help="process 0's address (or DESCEND_COORDINATOR)"
    )
    several.add_argument(
        "--num-processes", type=int, metavar="N", help="processes (or DESCEND_NUM_PROCESSES)"
    )
    several.add_argument(
        "--process-id", type=int, metavar="I", help="this one, 0..N-1 (or DESCEND_PROCESS_ID)"
    )
    add_json(train)
    train.set_defaults(handler=train_command)

    predict = commands.add_parser("predict", help="predict with a saved model")
    predict.add_argument("checkpoint", help="a model saved by 'descend train --save'")
    predict.add_argument("file", help="a .csv / .parquet file with the feature columns")
    predict.add_argument("--output", metavar="PATH.csv", help="write here (default: stdout)")
    predict.add_argument(
        "--proba", action="store_true", help="write class probabilities instead of labels"
    )
    predict.add_argument(
        "--append", action="store_true",
        help="write FILE's rows with the prediction columns appended, split as FILE is",
    )  # fmt: skip
    predict.add_argument(
        "--sep", metavar="CHAR",
        help="the delimiter of a text FILE: , ; | or tab (default: detected from the file)",
    )  # fmt: skip
    add_json(predict)
    predict.set_defaults(handler=predict_command)


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """FILE, ``--dataset`` and the options that say how to read a table's columns
    (shared by ``train`` and ``lr-find``)."""
    parser.add_argument("file", nargs="?", help="a .csv / .tsv / .txt / .parquet file")
    parser.add_argument(
        "--dataset", help="a shipped dataset: breast_cancer, diabetes, digits, iris"
    )
    parser.add_argument("--target", help="the target column of FILE (default: the last)")
    parser.add_argument("--features", help="comma-separated feature columns (default: the others)")
    parser.add_argument(
        "--weight-column", metavar="COLUMN",
        help="a column of FILE holding each row's sample weight (not a feature)",
    )  # fmt: skip
    parser.add_argument(
        "--sep", metavar="CHAR",
        help="the delimiter of a text FILE: , ; | or tab (default: detected from the file)",
    )  # fmt: skip
    parser.add_argument(
        "--categorical", metavar="COLUMNS",
        help="comma-separated columns to one-hot encode, numbers included (default: the "
        "columns of text)",
    )  # fmt: skip
    parser.add_argument(
        "--task", choices=("auto", "classification", "regression"), default="auto",
        help="what the target is (default: decided from it, as scikit-learn does: text, "
        "booleans and integers with at most 20 distinct values are classes)",
    )  # fmt: skip


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model`` and its shape, and ``--loss`` (shared by ``train`` and ``lr-find``)."""
    from descend import models  # loaded with descend itself

    parser.add_argument(
        "--model", default="auto",
        help="linear | logistic | softmax | mlp | polynomial (default: from the target)",
    )  # fmt: skip
    parser.add_argument(
        "--hidden", type=layer_sizes, metavar="SIZES",
        help="the MLP's hidden layer sizes, comma-separated (e.g. 128,32; default: 64)",
    )  # fmt: skip
    parser.add_argument(
        "--activation", choices=tuple(models.ACTIVATIONS),
        help="the activation of the MLP's hidden layers (default: relu)",
    )  # fmt: skip
    parser.add_argument(
        "--degree", type=int, help="the degree of --model polynomial (default: 2)"
    )  # fmt: skip
    parser.add_argument(
        "--loss", metavar="NAME",
        help="the loss, by name (descend.losses: mse, mae, huber, bce_with_logits, "
        "cross_entropy, hinge, ...; default: the model's)",
    )  # fmt: skip


def dataset_of(args: argparse.Namespace):
    from descend import data

    if args.file and args.dataset:
        raise InputError("give a FILE or --dataset, not both")
    if args.sep is not None and (args.stream or not args.file):
        raise InputError("--sep is the delimiter of a text FILE read in memory (not --stream)")
    if args.stream:
        from descend.data.streams import DEFAULT_CHUNK_ROWS

        if args.categorical:
            raise InputError("--categorical cannot be used with --stream: streams take numbers")
        if args.weight_column:
            raise InputError(
                "--weight-column cannot be used with --stream (streams take no weights)"
            )
        if args.task != "auto":
            raise InputError(
                "--task cannot be used with --stream; choose the model instead (--model "
                "logistic or softmax for classes, linear for a regression)"
            )
        if not args.file:
            raise InputError("--stream reads a FILE or folder; a --dataset is read in memory")
        features = args.features.split(",") if args.features else None
        return data.stream(
            args.file, target=args.target, features=features, dtype=args.dtype or "float32",
            chunk_rows=DEFAULT_CHUNK_ROWS if args.chunk_rows is None else args.chunk_rows,
        )  # fmt: skip
    if args.chunk_rows is not None:
        raise InputError("--chunk-rows goes with --stream")
    if args.file:
        features = args.features.split(",") if args.features else None
        weight = args.weight_column
        if weight is not None and features is not None and weight not in features:
            features = [*features, weight]  # read with the features, then split off
        categorical = args.categorical.split(",") if args.categorical else "auto"
        dataset = data.load(
            args.file, target=args.target, features=features, nan_policy=args.nan_policy,
            dtype=args.dtype or "float32", sep=_separator(args.sep), categorical=categorical,
            task=args.task,
        )  # fmt: skip
        return dataset if weight is None else _without_weights(dataset, weight)
    if args.target or args.features or args.categorical or args.task != "auto":
        raise InputError(
            "--target, --features, --categorical and --task describe the columns of a FILE"
        )
    if args.weight_column:
        raise InputError("--weight-column names a column of a FILE")
    return data.load_dataset(args.dataset or DEFAULT_DATASET, dtype=args.dtype or "float32")


class WeightedDataset(NamedTuple):
    """A table's dataset, and the sample weights ``--weight-column`` took out of it."""

    dataset: Any
    weights: np.ndarray


def _without_weights(dataset, column: str) -> WeightedDataset:
    """``dataset`` without its feature ``column``, whose values become the weights."""
    from descend.data import Dataset
    from descend.errors import suggest

    encoding = dataset.encoding
    if column == encoding.target_name:
        raise InputError(f"--weight-column {column!r} is the target; name another column")
    if column not in encoding.columns:
        hint = suggest(column, encoding.columns)
        raise InputError(
            f"--weight-column {column!r} is not a column of the file{hint} (its columns: "
            f"{', '.join(encoding.columns)}, and the target)"
        )
    if column in encoding.categories:
        raise InputError(f"--weight-column {column!r} must hold numbers, not categories")
    j = list(dataset.feature_names).index(column)
    kept = dataclasses.replace(encoding, columns=tuple(c for c in encoding.columns if c != column))
    features = Dataset(np.delete(dataset.X, j, axis=1), dataset.y, kept, dataset.delimiter)
    return WeightedDataset(features, dataset.X[:, j])


def layer_sizes(text: str) -> tuple[int, ...]:
    """``--hidden``: comma-separated whole numbers >= 1 (a usage error otherwise)."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer sizes (whole numbers >= 1) such as 64,32, got {text!r}"
        )
    return tuple(int(part) for part in parts)


def _l2(text: str) -> float | str:
    """``--l2``: ``auto`` or a number >= 0 (a usage error otherwise)."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value >= 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number >= 0, got {text!r}")
    return value


def _seed(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def _separator(text: str | None) -> str | None:
    """``--sep``: a character, or a tab written ``tab`` or ``\\t`` (as shells pass it)."""
    return "\t" if text in ("tab", "\\t") else text


def model_of(args: argparse.Namespace, dataset):
    from descend import models

    name = args.model
    if name == "auto" and args.resume:
        return None  # the checkpoint's model
    if name == "auto" and getattr(dataset, "target_kind", None) in ("integer", "boolean"):
        # A stream's whole-number target may be classes or counts: telling them apart
        # (at most 20 distinct integers, as for a FILE read in memory) needs every row.
        target = f" {dataset.target!r}" if dataset.target else ""
        raise InputError(
            f"the stream's target{target} holds {dataset.target_kind} values, which may be "
            "class labels or quantities, and a stream is not read before training to tell "
            "which: give --model logistic (two classes), softmax (more classes) or linear "
            "(a regression)"
        )
    classes = getattr(dataset, "classes", None)  # a stream's labels are numbers: none
    n_classes = None if classes is None else len(classes)
    task = "regression" if n_classes is None else "binary" if n_classes == 2 else "multiclass"
    if name == "auto":
        name = {"regression": "linear", "binary": "logistic", "multiclass": "softmax"}[task]
    elif name == "logistic":
        _check_two_labels(dataset)
    if name == "mlp":
        hidden, activation = args.hidden or (64,), args.activation or "relu"
        return models.mlp(hidden=hidden, activation=activation, task=task)
    if name == "polynomial":
        return models.polynomial(2 if args.degree is None else args.degree)
    return models.get(name)


def check_model_options(args: argparse.Namespace) -> None:
    """Refuse the shape of a model that is not the one trained (``--degree`` without
    ``--model polynomial``): it would be ignored."""
    for model, options in (("mlp", ("hidden", "activation")), ("polynomial", ("degree",))):
        given = [f"--{name}" for name in options if getattr(args, name) is not None]
        if given and args.model != model:
            if args.model != "auto":
                trained = f"--model {args.model}"
            elif getattr(args, "resume", None):
                trained = "the checkpoint's model"
            else:
                trained = "the model chosen from the target (linear, logistic or softmax)"
            raise InputError(
                f"{' and '.join(given)} shape --model {model}, not {trained}: add --model "
                f"{model}, or leave {'them' if len(given) > 1 else 'it'} out"
            )


def read_line(args: argparse.Namespace, dataset) -> str | None:
    """What was read from a text FILE: rows, columns and the delimiter, and whether it
    was detected (None for Parquet, a built-in dataset or a stream)."""
    from descend.data.tables import delimiter_name

    delimiter = getattr(dataset, "delimiter", None)
    if delimiter is None:
        return None
    how = "as --sep says" if args.sep is not None else "detected; --sep to override"
    columns = len(dataset.encoding.columns) + 1 + (args.weight_column is not None)
    return (
        f"read {args.file}: {len(dataset.y)} rows, {columns} columns split at "
        f"{delimiter_name(delimiter)} ({how})"
    )


def task_line(args: argparse.Namespace, dataset) -> str | None:
    """Which task the target made ``--model auto`` choose, and why (None when the user
    chose the model or the checkpoint holds it)."""
    from descend.data import Dataset

    if args.model != "auto" or args.resume:
        return None
    if not isinstance(dataset, Dataset):  # a stream whose target is stored as floats
        column = f" {dataset.target!r}" if getattr(dataset, "target", None) else ""
        return (
            f"target{column} of the stream holds floating-point numbers: regression; --model "
            "to choose another"
        )
    name = dataset.encoding.target_name
    classes = dataset.classes
    if classes is None:
        task, other = "regression", "classification"
        distinct = len(np.unique(dataset.y))
        what = f"holds numbers ({distinct} distinct values)"
    else:
        task = "binary classification" if len(classes) == 2 else "multiclass classification"
        other = "regression"
        if all(isinstance(label, bool) for label in classes):
            what = "holds True and False" if len(classes) == 2 else "holds one boolean"
        elif all(isinstance(label, int) for label in classes):
            what = f"holds {len(classes)} distinct integers"
        elif all(isinstance(label, float) for label in classes):
            what = f"holds {len(classes)} distinct numbers"
        else:  # text: a regression cannot be asked for
            return f"target {name!r} holds {len(classes)} labels: {task}"
    line = f"target {name!r} {what}: {task}"
    line += ", as --task says" if args.task != "auto" else f"; --task {other} to override"
    if task == "regression" and not args.no_standardize:
        line += " (the loss is the standardized target's; R² and predictions in its units)"
    return line


def _check_two_labels(dataset) -> None:
    """``--model logistic`` on a target of more than two labels: say which model fits."""
    from descend.data import Dataset

    if not isinstance(dataset, Dataset):
        return  # a stream: fit says it after its first pass
    labels = dataset.classes or np.unique(dataset.y).tolist()
    if len(labels) > 2:
        shown = ", ".join(
            f"{label:g}" if isinstance(label, float) else str(label) for label in labels[:5]
        )
        shown += ", ..." if len(labels) > 5 else ""
        raise InputError(
            f"--model logistic is for two classes, but the target has {len(labels)} values "
            f"({shown}); use --model softmax for classes, or leave --model out to choose "
            "from the target"
        )


def train_command(args: argparse.Namespace) -> int:
    """``descend train``; with --save or --plot the run finishes and writes its files
    even when the reader of its lines goes away (``| head``)."""
    if not (args.save or args.plot):
        return _train(args)
    kept = sys.stdout
    sys.stdout = KeepWorking(kept)
    try:
        return _train(args)
    finally:
        sys.stdout = kept


def _train(args: argparse.Namespace) -> int:
    from descend import distributed
    from descend.training import save

    if args.stream and args.validation_split:
        raise InputError(
            "--validation-split holds out rows of a FILE read in memory; a --stream is read "
            "chunk by chunk and holds none out: leave out --validation-split, or train in "
            "memory without --stream"
        )
    if args.validation_split is None:
        args.validation_split = 0.0 if args.stream else 0.2
    if args.compare_methods:  # before any data is read
        from descend.cli.pictures import check_methods_args

        check_methods_args(args)
    _check_settings(args)  # before any data is read
    several = (args.coordinator, args.num_processes, args.process_id)
    if distributed.requested(*several):  # before JAX computes anything
        distributed.initialize(*several)

    from descend.training import fit

    dataset, weights = dataset_of(args), None
    if isinstance(dataset, WeightedDataset):
        dataset, weights = dataset
    model = model_of(args, dataset)
    for line in (read_line(args, dataset), task_line(args, dataset)):
        if line is not None and not (args.json or args.compare_methods):
            print(line, flush=True)
    rates = rates_from_args(args)  # a sweep of rates, or None
    if args.resume and args.optimizer is None:
        if args.opt_args:
            raise InputError(
                "--opt-args with --resume needs --optimizer: name the algorithm (the "
                "checkpoint's optimizer is used when --optimizer is left out)"
            )
        optimizer, lr = None, args.lr  # the checkpoint's, with a new rate if --lr is given
    elif args.optimizer is None and not args.opt_args:
        optimizer, lr = None, args.lr  # fit's default: Adam, cut on plateaus
    else:
        optimizer, lr = optimizer_from_args(args, default="adam"), None
    if rates is not None:
        lr = rates  # the named optimizer (or the default) with each rate
    verbose = 0 if args.json else (1 if sys.stderr.isatty() else 2)
    if args.compare_methods:
        from descend.cli.pictures import plot_methods

        return plot_methods(args, model, dataset, weights, optimizer, lr)
    param_grid = param_grid_from_args(args)
    swept = param_grid is not None or any(
        isinstance(value, list) for value in (args.lr, args.seed, args.l2)
    )
    if swept:
        for option, value in (("--resume", args.resume), ("--log-dir", args.log_dir),
                              ("--stream", args.stream)):  # fmt: skip
            if value:
                raise InputError(
                    f"{option} cannot be used in a sweep (lists of values or --param-grid): "
                    "it follows one run; train the configuration you choose alone"
                )
    began = time.perf_counter()
    # Ctrl-C stops training after the epoch in flight (status "interrupted"): see fit.
    result = fit(
        model, dataset, loss=args.loss, optimizer=optimizer, lr=lr, batch_size=args.batch_size,
        method=args.method, epochs=args.epochs, accumulate=args.accumulate,
        validation_split=args.validation_split or None,
        standardize=not args.no_standardize, tol=args.tol, patience=args.patience or None,
        min_delta=args.min_delta, l2=args.l2,
        seed=args.seed, verbose=verbose, dtype=args.dtype, resume=args.resume,
        nan_policy=args.nan_policy, sample_weight=weights, callbacks=_loggers(args),
        param_grid=param_grid,
    )  # fmt: skip
    seconds = time.perf_counter() - began
    if isinstance(result, Sweep):
        return _report_sweep(args, result, seconds)
    if args.save:
        save(args.save, result)
    if args.plot and distributed.is_first_process():  # one picture, not one per process
        from descend.cli.pictures import plot_history

        summary_plot = str(plot_history(result.history, args.plot))
    summary = {**result.to_dict(), "seconds": seconds}
    if args.save:
        summary["saved"] = str(args.save)
    if args.plot and distributed.is_first_process():
        summary["plot"] = summary_plot
    if args.log_dir:
        summary["log_dir"] = str(args.log_dir)
    if args.json:
        print_json({**summary, "history": result.history})
    else:
        from descend import optim

        # The optimizer with the hyperparameters that differ from the defaults (--json:
        # every one).
        shown = {**summary, "reason": args.in_words(summary["reason"])}
        for line in summary_lines({**shown, "optimizer": optim.brief(result.optimizer)}):
            print(line)
    if result.status == "interrupted":
        where = f"; continue with --resume {args.save}" if args.save else ""
        print(f"descend: interrupted after epoch {result.n_epochs}{where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if result.status == "diverged" else EXIT_OK


def _report_sweep(args: argparse.Namespace, sweep: Sweep, seconds: float) -> int:
    """A sweep's table (best first), the best configuration saved with --save and drawn
    with --plot; exit 1 when every configuration diverged."""
    from descend import plot, sweeps
    from descend.training import save

    best = sweep.best
    summary: dict[str, Any] = {**sweep.to_dict(), "seconds": seconds}
    if args.save:
        save(args.save, best)
        summary["saved"] = str(args.save)
    if args.plot:
        summary["plot"] = str(plot.save(plot.sweep(sweep), args.plot))
    if args.json:
        print_json(summary)
    else:
        print(f"swept {len(sweep)} configurations of {', '.join(sweep.names)} in one program, "
              f"{seconds:.2f} s; ranked by {sweep.ranked_by}")  # fmt: skip
        print(sweep)
        print(f"best: {sweeps.label(sweep.best_configuration)}: {args.in_words(best.reason)}")
        for key in ("saved", "plot"):
            if key in summary:
                print(f"  {'best model saved' if key == 'saved' else 'plot saved'} to "
                      f"{summary[key]}")  # fmt: skip
    if any(result.status == "interrupted" for result in sweep):
        print("descend: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if all(result.status == "diverged" for result in sweep) else EXIT_OK


def summary_lines(summary: dict[str, Any]) -> list[str]:
    from descend.engine.status import count

    metrics = ", ".join(
        f"{key} {'nan' if value is None else format(value, '.4g')}"
        for key, value in summary["metrics"].items()
    )
    epochs, updates = summary["epochs"], summary["updates"]
    lines = [
        f"trained {summary['model']} with {summary['optimizer']}",
        f"  {count(epochs, 'epoch')}, {count(updates, 'update')}, {summary['seconds']:.2f} s",
    ]
    if metrics:  # none when the first epoch diverged
        at = summary.get("metrics_epoch")
        restored = at is not None and at != epochs
        lines.append(f"  {f'epoch {at} (restored)' if restored else 'final'}: {metrics}")
    lines.append(f"  stopped: {summary['reason']}")
    if "saved" in summary:
        lines.append(f"  saved to {summary['saved']}")
    if "plot" in summary:
        lines.append(f"  plot saved to {summary['plot']}")
    if "log_dir" in summary:
        lines.append(f"  logs written to {summary['log_dir']}")
    return lines


def _check_settings(args: argparse.Namespace) -> None:
    """Refuse a bad number of epochs, batch size, patience ... or a swept value listed
    twice before the data is read: the library's own checks
    (:data:`descend.training.spec.CONSTRAINTS`, :func:`descend.sweeps.grid`), so the words
    are those ``fit`` would say."""
    from descend.errors import check_all
    from descend.training.spec import CONSTRAINTS

    check_model_options(args)
    if args.patience < 0:  # the library's None is 0 here
        raise InputError(
            f"--patience must be an integer >= 0 (0 runs every epoch), got {args.patience}"
        )
    swept = {
        name: value
        for name in ("lr", "seed", "l2")
        if isinstance(value := getattr(args, name), list)
    }
    grid({**swept, **(param_grid_from_args(args) or {})})  # a value listed twice
    check_all(CONSTRAINTS, {
        "batch_size": args.batch_size, "method": args.method, "epochs": args.epochs,
        "accumulate": args.accumulate, "validation_split": args.validation_split or None,
        "tol": args.tol, "patience": args.patience or None, "min_delta": args.min_delta,
    })  # fmt: skip


def _loggers(args: argparse.Namespace) -> list:
    """``--log-dir``: a CSV log and TensorBoard events (one process writes them); without
    tensorboardX, a warning and the CSV alone."""
    from descend import callbacks, distributed
    from descend.errors import warn

    if not args.log_dir or not distributed.is_first_process():
        return []
    folder = Path(args.log_dir)
    loggers: list = [callbacks.CSVLogger(folder / "history.csv", append=bool(args.resume))]
    try:
        loggers.append(callbacks.TensorBoard(folder))
    except InputError as error:
        warn(f"{error}; --log-dir writes {folder / 'history.csv'} only")
    return loggers


def predict_command(args: argparse.Namespace) -> int:
    from descend.data.tables import read_table
    from descend.training import load

    result = load(args.checkpoint)
    if args.sep is not None and Path(args.file).suffix.lower() in (".parquet", ".pq"):
        raise InputError("--sep is the delimiter of a text FILE, not of a Parquet file")
    table = read_table(args.file, _separator(args.sep))
    if args.proba:
        values = result.predict_proba(table)
        columns = [f"proba_{label}" for label in np.asarray(result.classes).tolist()]
    else:
        values = result.predict(table)
        columns = (
            ["prediction"]
            if values.ndim == 1
            else [f"prediction_{i}" for i in range(values.shape[1])]
        )
    values = np.asarray(values).reshape(len(values), -1)
    if values.dtype == np.float32:  # each value by its shortest float32 digits, not float64's
        rows = [[float(str(value)) for value in row] for row in values]
    else:
        rows = values.tolist()
    if args.json:
        if args.append:
            raise InputError("--append writes CSV rows; leave out --json")
        print_json({"columns": columns, "predictions": rows})
        return EXIT_OK
    if args.append:
        header, inputs = _input_rows(args.file, table.delimiter)
        columns = [_fresh(name, header) for name in columns]
        header_out, rows = header + columns, [a + b for a, b in zip(inputs, rows, strict=True)]
    else:
        header_out = columns
    buffer = io.StringIO()
    # Appended to the input's columns, the rows keep its delimiter.
    writer = csv.writer(buffer, delimiter=(args.append and table.delimiter) or ",")
    writer.writerow(header_out)
    writer.writerows(rows)
    if args.output:
        Path(args.output).write_text(buffer.getvalue())
        print(f"wrote {len(rows)} predictions to {args.output}")
    else:
        sys.stdout.write(buffer.getvalue())
    return EXIT_OK


def _input_rows(path: str, delimiter: str | None) -> tuple[list[str], list[list]]:
    """FILE's header and rows as written (text cells kept as they are), for ``--append``."""
    if delimiter is None:  # a Parquet file: its values, through pandas
        import pandas

        frame = pandas.read_parquet(path)
        return [str(c) for c in frame.columns], frame.astype(object).values.tolist()
    with open(path, newline="", encoding="utf-8-sig") as handle:
        records = [r for r in csv.reader(handle, delimiter=delimiter) if any(c.strip() for c in r)]
    return records[0], records[1:]


def _fresh(name: str, taken: list[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... when FILE already has such a column."""
    candidate, k = name, 1
    while candidate in taken:
        k += 1
        candidate = f"{name}_{k}"
    return candidate
