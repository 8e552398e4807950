"""``descend compare``: race several optimizers on one function."""

from __future__ import annotations

import argparse
from typing import Any

from descend.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    check_output_path,
    parse_options,
    print_json,
    print_table,
    split_top_level,
    target_and_start,
)
from descend.errors import InputError

DEFAULT_OPTIMIZERS = "gd,momentum,adam,lbfgs"
_ANIMATIONS = (".gif", ".mp4")


def add_parsers(commands: Any) -> argparse.ArgumentParser:
    """Add ``descend compare`` to ``commands`` (the result of ``add_subparsers``)."""
    parser = commands.add_parser(
        "compare",
        help="race several optimizers on one function",
        description="Run several optimizers from the same start and compare them.",
    )
    parser.add_argument("expression", help="an expression, or a test function name")
    parser.add_argument(
        "--x0", metavar="x=0,y=0", help="start point (default: the test function's start, or 0)"
    )
    parser.add_argument(
        "--dim", type=int, help="number of variables for n-dimensional test functions"
    )
    parser.add_argument(
        "--optimizers",
        default=DEFAULT_OPTIMIZERS,
        metavar="NAME[(key=value,...)],...",
        help=f"optimizers to race, each with optional hyperparameters, e.g. "
        f"'gd,momentum(lr=0.001),adam(lr=0.05)' (default {DEFAULT_OPTIMIZERS})",
    )
    parser.add_argument(
        "--lr",
        metavar="LR[,LR...]",
        help="one learning rate for all optimizers, or one each ('none' keeps the "
        "default); with one optimizer, the rates to race it at, run as one program",
    )
    parser.add_argument(
        "--max-iter", type=int, default=10_000, help="step budget per optimizer (10000)"
    )
    parser.add_argument("--tol", type=float, default=1e-6, help="tolerance (1e-6), see --criterion")
    parser.add_argument(
        "--criterion",
        choices=("auto", "value", "grad_norm"),
        default="auto",
        help="what --tol bounds: f - f* (value; default for test functions) or the gradient norm",
    )
    parser.add_argument(
        "--dtype", choices=("float64", "float32"), default="float64",
        help="the precision of the iterates",
    )  # fmt: skip
    parser.add_argument(
        "--plot", metavar="PATH.png", help="save the race picture (paths and value curves)"
    )
    parser.add_argument(
        "--animate", metavar="PATH.gif", help="save the paths drawn step by step (.gif or .mp4)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=compare_command)
    return parser


def compare_command(args: argparse.Namespace) -> int:
    """Run ``descend compare``: race, print the table (or JSON), save the pictures."""
    from descend import plot
    from descend.plot.racing import compare

    specs = optimizers_from_text(args.optimizers)
    rates = learning_rates_from_text(args.lr, len(specs))
    if args.plot:
        check_output_path(args.plot, None)
    if args.animate:
        check_output_path(args.animate, _ANIMATIONS)
    target, x0, _ = target_and_start(args.expression, args.x0, args.dim)
    result = compare(
        target,
        specs,
        x0,
        lr=rates,
        max_iter=args.max_iter,
        tol=args.tol,
        criterion=args.criterion,
        dtype=args.dtype,
    )
    saved = {}
    if args.plot:
        saved["plot"] = str(plot.save(plot.race(result), args.plot))
    if args.animate:
        plot.animate(result, path=args.animate)
        saved["animation"] = args.animate
    status = EXIT_FAILED if all(row["diverged"] for row in result.rows) else EXIT_OK
    if args.json:
        print_json({**result.to_dict(), **saved})
        return status
    headings, rows = result.cells()
    measure = "f - f*" if result.criterion == "value" else "gradient norm"
    print_table(f"{result.problem}: iterations until {measure} <= {result.tol:g}", headings, rows)
    best = result.best
    if best is None:
        print(f"no optimizer reached {measure} <= {result.tol:g} within {args.max_iter} iterations")
    else:
        row = next(r for r in result.rows if r["label"] == best)
        print(f"fewest iterations to tolerance: {best} ({row['n_iter_to_tol']})")
    for kind, path in saved.items():
        print(f"{kind} saved to {path}")
    return status


def optimizers_from_text(text: str) -> list[Any]:
    """Read ``"gd,momentum(lr=0.001,nesterov=true),adam"`` into names and (name, options) pairs."""
    specs: list[Any] = []
    try:
        items = split_top_level(text)
    except InputError as error:
        raise InputError(f"expected name or name(key=value,...) in --optimizers: {error}") from None
    for item in items:
        name, paren, rest = item.partition("(")
        name = name.strip()
        if not name.isidentifier() or (paren and not rest.endswith(")")):
            raise InputError(f"expected name or name(key=value,...) in --optimizers, got {item!r}")
        specs.append((name, parse_options(rest[:-1])) if paren else name)
    if not specs:
        raise InputError(f"--optimizers names no optimizer, got {text!r}")
    return specs


def learning_rates_from_text(text: str | None, count: int) -> float | list[float | None] | None:
    """``--lr``: one number for all, or one per optimizer (``none`` keeps the default),
    or for one optimizer any number of rates (a row each)."""
    if text is None:
        return None
    values: list[float | None] = []
    for part in text.split(","):
        part = part.strip()
        if part.lower() in ("none", "-", ""):
            values.append(None)
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise InputError(f"--lr values must be numbers or 'none', got {part!r}") from None
    if len(values) == 1:
        return values[0]
    if len(values) != count and count != 1:  # one optimizer: raced at each rate
        raise InputError(
            f"--lr has {len(values)} values for {count} optimizers: give one, or one each"
        )
    return values
