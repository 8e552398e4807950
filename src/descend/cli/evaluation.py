"""``descend evaluate``: the metrics of a saved model on a table (:meth:`FitResult.evaluate`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from descend.cli.common import EXIT_OK, add_json, print_json
from descend.errors import InputError


def add_parsers(commands) -> None:
    """Add ``evaluate`` to the ``descend`` sub-command parsers."""
    evaluate = commands.add_parser(
        "evaluate", help="score a saved model on a table with its true targets",
        description="The metrics of a model saved by 'descend train --save' on FILE: "
        "accuracy, precision, recall, F1 (binary for two classes, macro-averaged for "
        "more), ROC AUC (one class against the rest for more than two), log-loss and "
        "the confusion matrix for a classifier; R², MAE and RMSE for a regression. "
        "Computed by scikit-learn when it is installed, else in NumPy.",
    )  # fmt: skip
    evaluate.add_argument("checkpoint", help="a model saved by 'descend train --save'")
    evaluate.add_argument(
        "file", help="a .csv / .tsv / .txt / .parquet file with the feature and target columns"
    )
    evaluate.add_argument(
        "--target",
        help="the target column of FILE (default: the one the model was trained on, else the last)",
    )
    evaluate.add_argument(
        "--sep", metavar="CHAR",
        help="the delimiter of a text FILE: , ; | or tab (default: detected from the file)",
    )  # fmt: skip
    add_json(evaluate)
    evaluate.set_defaults(handler=evaluate_command)


def evaluate_command(args: argparse.Namespace) -> int:
    from descend.data import Encoding, target_column
    from descend.data.tables import read_table
    from descend.training import load

    result = load(args.checkpoint)
    if args.sep is not None and Path(args.file).suffix.lower() in (".parquet", ".pq"):
        raise InputError("--sep is the delimiter of a text FILE, not of a Parquet file")
    table = read_table(args.file, "\t" if args.sep in ("tab", "\\t") else args.sep)
    encoding = result.encoding
    target = args.target
    if target is None:
        trained_on = None if encoding is None else encoding.target_name
        if trained_on is not None and trained_on not in table.names:
            raise InputError(
                f"{args.file} has no column {trained_on!r}, the target the model was "
                f"trained on: add it, or name the column of true values with --target"
            )
        target = table.names[-1] if trained_on is None else trained_on
    task = "regression" if result.classes is None else "classification"
    y = target_column(table, target, task)
    if encoding is None:  # trained on arrays: every other column is a feature, in order
        features = Encoding(tuple(name for name in table.names if name != target))
        X: Any = features.features(table, dtype=result.dtype)
    else:
        X = table  # encoded as in training; the target column is left out
    report = result.evaluate(X, y)
    summary = {"checkpoint": str(args.checkpoint), "file": str(args.file), "target": target}
    summary.update(report)
    if args.json:
        print_json(summary)
    else:
        for line in report_lines(summary):
            print(line)
    return EXIT_OK


def report_lines(summary: dict[str, Any]) -> list[str]:
    """The report in words: what was scored, the numbers, the confusion matrix."""
    task = summary["task"]
    kind = "regression" if task == "regression" else f"{task} classification"
    lines = [
        f"evaluated {summary['checkpoint']} on {summary['file']}: {summary['n_samples']} "
        f"rows, target {summary['target']!r} ({kind}; computed by {summary['computed_by']})"
    ]
    if task == "regression":
        names = ("r2", "mae", "rmse")
        lines.append("  " + ", ".join(f"{name} {_number(summary[name])}" for name in names))
        return lines
    if task == "binary":
        average = f"of the positive class {summary['labels'][1]!r}"
        auc = ""
    else:
        average = "macro average over the labels"
        auc = " (one class against the rest, macro average)"
    lines.append(f"  accuracy {_number(summary['accuracy'])}")
    lines.append(
        f"  precision {_number(summary['precision'])}, recall {_number(summary['recall'])}, "
        f"f1 {_number(summary['f1'])} ({average})"
    )
    lines.append(f"  roc_auc {_number(summary['roc_auc'])}{auc}")
    lines.append(f"  log_loss {_number(summary['log_loss'])}")
    lines.append("  confusion matrix (rows: true labels, columns: predicted):")
    labels = [str(label) for label in summary["labels"]]
    matrix = np.asarray(summary["confusion_matrix"])
    width = max(max(map(len, labels)), len(str(matrix.max(initial=0))))
    lines.append("    " + " " * width + "".join(f"  {label:>{width}}" for label in labels))
    for label, row in zip(labels, matrix.tolist(), strict=True):
        lines.append(f"    {label:>{width}}" + "".join(f"  {count:>{width}}" for count in row))
    return lines


def _number(value: float) -> str:
    return "nan (not defined for these rows)" if np.isnan(value) else f"{value:.4g}"
