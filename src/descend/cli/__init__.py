"""The ``descend`` command line: parse arguments, call the library, print.

Exit status: 0 when the command ran, 1 when a run failed (diverged, or an unexpected
error), 2 for bad input (one line on stderr, no traceback), 130 when interrupted.
Set ``DESCEND_DEBUG=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from descend._json import jsonable
from descend.errors import DescendError, InputError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{message} (see '{self.prog} --help')")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (also used as the console script)."""
    try:
        args = build_parser().parse_args(argv)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            status = args.handler(args)
    except DescendError as error:
        print(f"descend: {_one_line(error)}", file=sys.stderr)
        status = EXIT_USAGE
    except KeyboardInterrupt:
        print("descend: interrupted", file=sys.stderr)
        status = EXIT_INTERRUPTED
    except Exception as error:  # the last resort: one line, never a traceback by default
        if os.environ.get("DESCEND_DEBUG"):
            traceback.print_exc()
        print(
            f"descend: unexpected error: {type(error).__name__}: {_one_line(error)} "
            "(set DESCEND_DEBUG=1 to see where)",
            file=sys.stderr,
        )
        status = EXIT_FAILED
    return status


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line, ``descend: warning: ...``, without a source location."""
    print(f"descend: warning: {_one_line(message)}", file=sys.stderr)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="descend",
        description="Gradient descent: derivatives, minimization and training.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    grad = commands.add_parser("grad", help="partial derivatives and gradient of an expression")
    grad.add_argument("expression", help='e.g. "2*x**2 + 6*z**2 + 7*m**3"')
    grad.add_argument("--at", required=True, metavar="x=1,z=1,m=1", help="the point")
    _add_json(grad)
    grad.set_defaults(handler=_grad)

    minimize = commands.add_parser("minimize", help="minimize an expression or test function")
    minimize.add_argument("expression", help="an expression, or a test function name")
    minimize.add_argument(
        "--x0", metavar="x=0,y=0", help="start point (default: 0, or the test function's start)"
    )
    minimize.add_argument(
        "--dim", type=int, help="number of variables for n-dimensional test functions"
    )
    _add_optimizer_options(minimize)
    minimize.add_argument("--tol", type=float, default=1e-6, help="gradient-norm tolerance (1e-6)")
    minimize.add_argument("--max-iter", type=int, default=10_000, help="step budget (10000)")
    minimize.add_argument(
        "--refine", action="store_true", help="bisect a derivative sign change (1 variable)"
    )
    minimize.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    _add_json(minimize)
    minimize.set_defaults(handler=_minimize)

    functions = commands.add_parser("functions", help="list the built-in test functions")
    functions.add_argument("name", nargs="?", help="show one function")
    functions.add_argument("--dim", type=int, help="its number of variables (n-dimensional)")
    _add_json(functions)
    functions.set_defaults(handler=_functions)

    optimizers = commands.add_parser(
        "optimizers", help="list the optimizers and their hyperparameters"
    )
    _add_json(optimizers)
    optimizers.set_defaults(handler=_optimizers)

    from descend.cli import training as cli_train

    cli_train.add_parsers(commands, _add_json, _add_optimizer_options)
    from descend.cli import race as cli_plot

    cli_plot.add_compare_parser(commands)
    minimize.add_argument(
        "--plot", metavar="PATH.png",
        help="draw the path over the function (1-2 variables), else the value per iteration",
    )  # fmt: skip
    functions.add_argument("--plot", metavar="PATH.png", help="draw the named function")
    return parser


def _version() -> str:
    from descend import __version__

    return f"descend {__version__}"


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _add_optimizer_options(parser: argparse.ArgumentParser, default: str = "gd") -> None:
    parser.add_argument(
        "--optimizer", default=default, help=f"algorithm name ({default}; see 'descend optimizers')"
    )
    parser.add_argument(
        "--lr", type=float, help="learning rate (gd without --lr uses a line search)"
    )
    parser.add_argument(
        "--opt-args",
        default="",
        metavar="key=value,...",
        help="other hyperparameters, e.g. momentum=0.9,nesterov=true,betas=(0.9,0.99)",
    )


def optimizer_from_args(args: argparse.Namespace):
    """Build the optimizer named by ``--optimizer``, ``--lr`` and ``--opt-args``."""
    from descend import optim

    hyperparams = parse_options(args.opt_args)
    if args.lr is not None:
        if "lr" in hyperparams:
            raise InputError("lr is given twice: by --lr and in --opt-args")
        hyperparams["lr"] = args.lr
    return optim.get(args.optimizer, **hyperparams)


def parse_options(text: str) -> dict[str, Any]:
    """Read ``"momentum=0.9,nesterov=true,betas=(0.9,0.99)"`` into a dict of Python values.

    Values are numbers, ``true``/``false``, ``none``, tuples of numbers in parentheses,
    or bare words (kept as text). Nothing is evaluated.
    """
    options: dict[str, Any] = {}
    for item in _split_top_level(text):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InputError(f"expected key=value in --opt-args, got {item!r}")
        options[key] = _option_value(value.strip())
    return options


def _split_top_level(text: str) -> list[str]:
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


def _option_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    if text.startswith("(") and text.endswith(")"):
        return tuple(_option_value(part) for part in _split_top_level(text[1:-1]))
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _grad(args: argparse.Namespace) -> int:
    import jax

    from descend.calculus import gradient
    from descend.expr import parse, point_from_text

    expression = parse(args.expression)
    point = point_from_text(args.at, expression.variables)
    values = expression.bind(**point)
    with jax.enable_x64(True):
        grads = gradient(expression.function())(values)
    numbers = {name: float(grads[name]) for name in expression.variables}
    partials = expression.derivatives
    if args.json:
        _print_json(
            {
                "expression": expression.text,
                "variables": list(expression.variables),
                "at": values,
                "partials": partials,
                "values": numbers,
                "gradient": [numbers[name] for name in expression.variables],
            }
        )
        return EXIT_OK
    names = ", ".join(expression.variables)
    print(f"f({names}) = {expression.text.strip()}")
    for name in expression.variables:
        print(f"df/d{name} = {partials[name]} = {_number(numbers[name])}")
    where = ", ".join(f"{name}={_number(values[name])}" for name in expression.variables)
    gradient_text = ", ".join(_number(numbers[name]) for name in expression.variables)
    print(f"gradient at ({where}): [{gradient_text}]")
    return EXIT_OK


def _minimize(args: argparse.Namespace) -> int:
    from descend import functions
    from descend.expr import parse, point_from_text
    from descend.minimization import minimize

    optimizer = optimizer_from_args(args)
    if args.plot:
        from descend.cli.race import check_output_path

        check_output_path(args.plot, None)
    if functions.is_known(args.expression):
        target, x0 = _known_function_and_start(args.expression, args.x0, args.dim)
        label = target.name
    else:
        target = parse(args.expression)
        x0 = point_from_text(args.x0, target.variables) if args.x0 else {}
        x0 = {name: x0.get(name, 0.0) for name in target.variables}
        label = target.text
    result = minimize(
        target,
        x0,
        optimizer=optimizer,
        tol=args.tol,
        max_iter=args.max_iter,
        refine=args.refine,
        dtype=args.dtype,
    )
    status = EXIT_FAILED if result.status == "diverged" else EXIT_OK
    if args.plot:
        from descend.cli.race import plot_minimize

        plot_minimize(result, target, args.plot)
    if args.json:
        _print_json({"expression": label, **result.to_dict()})
        return status
    print(f"minimize {label} with {result.optimizer}")
    print(f"  minimizer: {_point_text(result.x)}")
    print(f"  f(x) = {result.fun:.10g}")
    print(f"  gradient norm = {result.grad_norm:.3g}")
    print(f"  iterations: {result.n_iter} ({result.n_fev} function evaluations)")
    print(f"  stopped: {result.reason}")
    if result.bracket is not None:
        print(
            "  derivative sign change bracket: "
            f"[{result.bracket[0]:.10g}, {result.bracket[1]:.10g}]"
        )
    for hint in result.hints:
        print(f"  hint: {hint}")
    return status


def _known_function_and_start(name: str, x0_text: str | None, dim: int | None):
    """The test function ``name`` and the start ``--x0`` as a list (``None`` when absent).

    Without ``--dim``, an n-dimensional function takes as many variables as ``--x0``
    has values, so its minimizers and minimum are those of that dimension.
    """
    from descend import functions

    function = functions.get(name, dim)
    if not x0_text:
        return function, None
    if dim is None and function.n_dimensional:
        function = function.with_dim(len(x0_text.split(",")))
    return function, _vector_from_text(x0_text, function.dim)


def _vector_from_text(text: str, dim: int) -> list[float]:
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


def _functions(args: argparse.Namespace) -> int:
    from descend import functions

    if args.plot:
        if not args.name:
            raise InputError(
                "--plot draws one function: give its name, e.g. "
                "'descend functions rosenbrock --plot f.png'"
            )
        from descend.cli.race import plot_function

        plot_function(args.name, args.plot, args.dim)
    if args.dim is not None and not args.name:
        raise InputError("--dim describes one function: give its name, e.g. 'rosenbrock --dim 10'")
    chosen = (
        [functions.get(args.name, args.dim)]
        if args.name
        else [functions.get(n) for n in functions.names()]
    )
    rows = [
        {
            "name": f.name,
            "formula": f.formula,
            "dim": f.dim,
            "minimum": f.minimum,
            "minimizers": [m.tolist() for m in f.minimizers],
            "start": list(f.start),
            "bounds": [list(b) for b in f.bounds],
        }
        for f in chosen
    ]
    if args.json:
        _print_json(rows[0] if args.name else rows)
        return EXIT_OK
    _print_table(
        "Test functions",
        ["name", "formula", "minimum", "minimizers", "start"],
        [
            [
                row["name"],
                row["formula"],
                f"{row['minimum']:.6g}",
                "; ".join(_point_text(m) for m in row["minimizers"]),
                _point_text(row["start"]),
            ]
            for row in rows
        ],
    )
    return EXIT_OK


def _optimizers(args: argparse.Namespace) -> int:
    from descend import optim

    table = optim.available()
    if args.json:
        _print_json(table)
        return EXIT_OK
    _print_table(
        "Optimizers",
        ["name", "hyperparameters (defaults)", "summary"],
        [
            [
                row["name"],
                ", ".join(f"{k}={v!r}" for k, v in row["hyperparams"].items()),
                row["summary"],
            ]
            for row in table
        ],
    )
    return EXIT_OK


def _print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def _number(value: float) -> str:
    return f"{value:.10g}"


def _point_text(point: Any) -> str:
    if isinstance(point, dict):
        return ", ".join(f"{name} = {_number(float(v))}" for name, v in point.items())
    values = np.ravel(np.asarray(point, dtype=float))
    return "(" + ", ".join(_number(v) for v in values) + ")"


def _print_json(payload: Any) -> None:
    print(json.dumps(jsonable(payload), allow_nan=False))


if __name__ == "__main__":
    sys.exit(main())
