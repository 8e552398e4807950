"""The pictures behind ``--plot``: saved by ``minimize``, ``functions`` and ``train``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_minimize(result: Any, target: Any, path: str) -> Path:
    """``descend minimize ... --plot PATH``: the path over the function (1 or 2 variables),
    else the value and gradient norm per iteration. Returns the path written."""
    from descend import plot

    recorded = result.history.get("x")
    drawable = isinstance(recorded, np.ndarray) and np.size(recorded[0]) in (1, 2)
    figure = plot.path(result, target) if drawable else plot.loss_curves(result)
    return plot.save(figure, path)


def plot_function(name: str, path: str, dim: int | None = None) -> Path:
    """``descend functions NAME --plot PATH``: the test function's contours and minimizers."""
    from descend import functions, plot

    return plot.save(plot.function(functions.get(name, dim)), path)


def plot_history(history: Any, path: str) -> Path:
    """``descend train ... --plot PATH``: loss curves (and lr, gradient norm when recorded)."""
    from descend import plot

    return plot.save(plot.loss_curves(history), path)


def check_methods_args(args: Any) -> None:
    """``descend train --compare-methods``: refuse what the three fresh runs cannot use,
    before reading any data."""
    from descend.cli.common import check_output_path
    from descend.errors import InputError

    given = [
        option
        for option, value in (
            ("--save", args.save), ("--resume", args.resume), ("--plot", args.plot),
            ("--method", args.method), ("--stream", args.stream),
        )
        if value
    ]  # fmt: skip
    if given:
        raise InputError(
            f"--compare-methods trains three fresh runs that differ only in the batch size "
            f"and saves their picture alone; leave out {', '.join(given)}"
        )
    if args.batch_size is None or args.batch_size < 2:
        raise InputError(
            "--compare-methods compares batch, mini-batch and stochastic (1 row) descent: "
            f"--batch-size is the mini-batch size and must be 2 or more, got {args.batch_size}"
        )
    check_output_path(args.compare_methods, None)


def plot_methods(args: Any, model: Any, dataset: Any, weights: Any, optimizer: Any, lr: Any) -> int:
    """``descend train --compare-methods PATH``: three runs, one picture, one line (or one
    JSON object)."""
    from descend import plot
    from descend.cli.common import EXIT_FAILED, EXIT_OK, print_json

    runs = plot.compare_methods(
        model, dataset, loss=args.loss, optimizer=optimizer, lr=lr,
        batch_size=args.batch_size, epochs=args.epochs, accumulate=args.accumulate,
        validation_split=args.validation_split or None, standardize=not args.no_standardize,
        tol=args.tol, patience=args.patience or None, min_delta=args.min_delta, l2=args.l2,
        seed=args.seed, dtype=args.dtype, nan_policy=args.nan_policy, sample_weight=weights,
    )  # fmt: skip
    written = plot.save(plot.methods(runs), args.compare_methods)
    summary = {
        label: {"epochs": run.n_epochs, "updates": run.n_updates, "loss": run.history["loss"][-1]}
        for label, run in runs.items()
    }
    if args.json:
        print_json({"plot": str(written), "runs": summary})
    else:
        told = "; ".join(
            f"{label} {s['updates']:,} updates in {s['epochs']} epochs, loss {s['loss']:.4g}"
            for label, s in summary.items()
        )
        print(f"methods picture saved to {written} ({told})")
    diverged = any(run.status == "diverged" for run in runs.values())
    return EXIT_FAILED if diverged else EXIT_OK
