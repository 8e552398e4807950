"""What every command of the ``descend`` command line shares.

Exit codes, the parser that turns usage errors into one line, printing (JSON, tables,
numbers, points), and reading options from text (``--opt-args``, ``--x0``) without
evaluating anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from descend._json import jsonable
from descend.errors import InputError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{message} (see '{self.prog} --help')")


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line, ``descend: warning: ...``, without a source location."""
    print(f"descend: warning: {one_line(message)}", file=sys.stderr)


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def add_optimizer_options(
    parser: argparse.ArgumentParser, default: str = "gd", *, resumable: bool = False
) -> None:
    """``--optimizer``, ``--lr`` and ``--opt-args``; with ``resumable``, ``--optimizer``
    left out means the checkpoint's optimizer when resuming (else ``default``)."""
    shown = f"{default}, or the checkpoint's with --resume" if resumable else default
    parser.add_argument(
        "--optimizer",
        default=None if resumable else default,
        help=f"algorithm name ({shown}; see 'descend optimizers')",
    )
    parser.add_argument(
        "--lr", type=float, help="learning rate (gd without --lr uses a line search)"
    )
    parser.add_argument(
        "--opt-args",
        default="",
        metavar="key=value,...",
        help="other hyperparameters, e.g. momentum=0.9,nesterov=true,betas=(0.9,0.99); "
        "weight_decay=0.1,weight_decay_mask=weights decays the weights, not the biases",
    )


def optimizer_from_args(args: argparse.Namespace, default: str = "gd"):
    """Build the optimizer named by ``--optimizer``, ``--lr`` and ``--opt-args``
    (``default`` when ``--optimizer`` was left out)."""
    from descend import optim

    hyperparams = parse_options(args.opt_args)
    if args.lr is not None:
        if "lr" in hyperparams:
            raise InputError("lr is given twice: by --lr and in --opt-args")
        hyperparams["lr"] = args.lr
    return optim.get(args.optimizer or default, **hyperparams)


def parse_options(text: str) -> dict[str, Any]:
    """Read ``"momentum=0.9,nesterov=true,betas=(0.9,0.99)"`` into a dict of Python values.

    Values are numbers, ``true``/``false``, ``none``, tuples of numbers in parentheses,
    or bare words (kept as text). Nothing is evaluated.
    """
    options: dict[str, Any] = {}
    for item in split_top_level(text):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InputError(f"expected key=value in --opt-args, got {item!r}")
        options[key] = option_value(value.strip())
    return options


def split_top_level(text: str) -> list[str]:
    items, depth, current = [], 0, []
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item for item in (i.strip() for i in items) if item]


def option_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    if text.startswith("(") and text.endswith(")"):
        return tuple(option_value(part) for part in split_top_level(text[1:-1]))
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def vector_from_text(text: str, dim: int) -> list[float]:
    from descend.expr import parse

    values = []
    for part in text.split(","):
        constant = parse(part.split("=")[-1].strip())
        if constant.variables:
            raise InputError(f"--x0 values must be numbers, got {part!r}")
        values.append(float(constant()))
    if len(values) != dim:
        raise InputError(f"--x0 has {len(values)} values; the function has {dim} variables")
    return values


def target_and_start(text: str, x0_text: str | None, dim: int | None) -> tuple[Any, Any, str]:
    """What ``minimize`` and ``compare`` run on: ``(function, start, label)``.

    ``text`` names a test function or is an expression. A test function's start is
    ``--x0`` as a list (``None`` when absent: its own start); without ``--dim`` an
    n-dimensional one takes as many variables as ``--x0`` has values, so its minimizers
    and minimum are those of that dimension. An expression's start is ``{variable:
    value}``, 0 for the variables ``--x0`` leaves out.
    """
    from descend import functions
    from descend.expr import parse, point_from_text

    if not functions.is_known(text):
        expression = parse(text)
        point = point_from_text(x0_text, expression.variables) if x0_text else {}
        start = {name: point.get(name, 0.0) for name in expression.variables}
        return expression, start, expression.text
    function = functions.get(text, dim)
    if not x0_text:
        return function, None, function.name
    if dim is None and function.n_dimensional:
        function = function.with_dim(len(x0_text.split(",")))
    return function, vector_from_text(x0_text, function.dim), function.name


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def number(value: float) -> str:
    return f"{value:.10g}"


def point_text(point: Any) -> str:
    if isinstance(point, dict):
        return ", ".join(f"{name} = {number(float(v))}" for name, v in point.items())
    values = np.ravel(np.asarray(point, dtype=float))
    return "(" + ", ".join(number(v) for v in values) + ")"


def print_json(payload: Any) -> None:
    print(json.dumps(jsonable(payload), allow_nan=False))


def check_output_path(path: str, suffixes: tuple[str, ...] | None) -> None:
    """Refuse an output path before the work that fills it, not after."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    target = Path(path)
    allowed = suffixes or tuple(
        "." + s for s in FigureCanvasAgg(Figure()).get_supported_filetypes()
    )
    if target.suffix.lower() not in allowed:
        raise InputError(f"cannot write {path!r}: give a path ending in {', '.join(allowed)}")
    if not target.parent.is_dir():
        raise InputError(
            f"cannot write {path!r}: the directory {str(target.parent)!r} does not exist"
        )
    if target.suffix.lower() == ".mp4":
        from matplotlib import animation

        if not animation.writers.is_available("ffmpeg"):
            raise InputError(
                f"writing {path!r} needs ffmpeg, which is not installed; give a .gif path"
            )
