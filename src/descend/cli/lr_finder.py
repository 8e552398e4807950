"""``descend lr-find``: the command line of :func:`descend.lr_find`."""

from __future__ import annotations

import argparse
import sys

from descend.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    KeepWorking,
    add_json,
    check_output_path,
    optimizer_from_args,
    print_json,
)
from descend.cli.training import (
    WeightedDataset,
    _l2,
    add_data_options,
    add_model_options,
    check_model_options,
    dataset_of,
    model_of,
    read_line,
    task_line,
)


def add_parsers(commands) -> None:
    """Add ``lr-find`` to the ``descend`` sub-command parsers."""
    finder = commands.add_parser(
        "lr-find", help="find a learning rate: the loss as the rate grows (range test)",
        description="The learning-rate range test: train from the initial weights while "
        "the rate grows exponentially from --start-lr to --end-lr, record the loss of every "
        "update, and suggest the rate where the smoothed loss falls fastest. With no FILE: "
        "the shipped 'breast_cancer' dataset.",
    )  # fmt: skip
    add_data_options(finder)
    add_model_options(finder)
    finder.add_argument(
        "--optimizer",
        default="adam",
        help="algorithm name (default: adam; see 'descend optimizers')",
    )
    finder.add_argument(
        "--opt-args", default="", metavar="key=value,...",
        help="its other hyperparameters, e.g. momentum=0.9,nesterov=true (its lr is the test's)",
    )  # fmt: skip
    finder.add_argument("--start-lr", type=float, default=1e-7, help="the first rate")
    finder.add_argument("--end-lr", type=float, default=10.0, help="the last rate")
    finder.add_argument("--num-iter", type=int, default=300, help="updates, the rate growing")
    finder.add_argument(
        "--smooth-f", type=float, default=0.05,
        help="weight of the newest loss in the smoothed loss, in [0, 1); 0 for none",
    )  # fmt: skip
    finder.add_argument(
        "--diverge-th", type=float, default=5.0,
        help="stop when the smoothed loss exceeds this many times its least",
    )  # fmt: skip
    finder.add_argument("--batch-size", type=int, default=32, help="rows per update")
    finder.add_argument(
        "--accumulate", type=int, default=1, help="batches whose gradients make one update"
    )
    finder.add_argument(
        "--l2", type=_l2, default="auto",
        help="strength of the L2 penalty on the weights (auto: 1 / training rows, as "
        "train's default; 0 for none)",
    )  # fmt: skip
    finder.add_argument(
        "--no-standardize", action="store_true",
        help="keep the features (and a regression's targets) unscaled",
    )  # fmt: skip
    finder.add_argument(
        "--nan-policy", choices=("raise", "drop", "impute_mean"), default="raise",
        help="what to do with missing or non-finite cells: stop, drop their rows, or fill "
        "a feature cell with its column's mean",
    )  # fmt: skip
    finder.add_argument(
        "--seed", type=int, default=0, help="the seed of the shuffling and initial weights"
    )
    finder.add_argument(
        "--dtype", choices=("float32", "float64"), default="float32",
        help="the floating-point type of training",
    )  # fmt: skip
    finder.add_argument("--plot", metavar="PATH.png", help="draw the loss against the rate")
    add_json(finder)
    # What the shared readers of train's options look for, and lr-find does not take.
    finder.set_defaults(
        handler=lr_find_command, stream=False, chunk_rows=None, resume=None, lr=None
    )


def lr_find_command(args: argparse.Namespace) -> int:
    """``descend lr-find``; with --plot the picture is written even when the reader of
    its lines goes away (``| head``)."""
    if not args.plot:
        return _lr_find(args)
    kept = sys.stdout
    sys.stdout = KeepWorking(kept)
    try:
        return _lr_find(args)
    finally:
        sys.stdout = kept


def _lr_find(args: argparse.Namespace) -> int:
    from descend.plot.lr_finder import lr_find
    from descend.training.range_test import check_test

    # What can be checked before the data is read: the test's settings, the optimizer,
    # the picture's path.
    test = check_test(
        {
            "start_lr": args.start_lr, "end_lr": args.end_lr, "num_iter": args.num_iter,
            "smooth_f": args.smooth_f, "diverge_th": args.diverge_th,
        }
    )  # fmt: skip
    optimizer = optimizer_from_args(args, default="adam")
    check_model_options(args)
    if args.plot:
        check_output_path(args.plot, None)
    dataset, weights = dataset_of(args), None
    if isinstance(dataset, WeightedDataset):
        dataset, weights = dataset
    model = model_of(args, dataset)
    for line in (read_line(args, dataset), task_line(args, dataset)):
        if line is not None and not args.json:
            print(line, flush=True)
    result = lr_find(
        model, dataset, loss=args.loss, optimizer=optimizer, **test, batch_size=args.batch_size,
        accumulate=args.accumulate, standardize=not args.no_standardize, l2=args.l2,
        seed=args.seed, dtype=args.dtype, nan_policy=args.nan_policy, sample_weight=weights,
    )  # fmt: skip
    summary = result.to_dict()
    if args.plot:
        from descend import plot

        summary["plot"] = str(plot.save(result.plot(), args.plot))
    if args.json:
        print_json(summary)
    else:
        if result.suggestion is None:
            print("no suggested learning rate: the curve is too short to read (see below)")
        else:
            print(
                f"suggested learning rate: {result.suggestion:.3g} (where the smoothed loss "
                "falls fastest)"
            )
        rates = f"the rate from {result.start_lr:g} to {result.end_lr:g}"
        print(f"  {result.optimizer.name}, batches of {result.batch_size} rows, {rates}")
        print(f"  {args.in_words(result.reason)}")
        if args.plot:
            print(f"  plot: {summary['plot']}")
    return EXIT_OK if result.suggestion is not None else EXIT_FAILED
