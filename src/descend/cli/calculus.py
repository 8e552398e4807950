"""``descend grad``, ``minimize``, ``functions`` and ``optimizers``: derivatives and
minimization of expressions and test functions."""

from __future__ import annotations

import argparse
import re
from typing import Any

from descend.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_json,
    add_optimizer_options,
    add_sweep_options,
    bounds_from_text,
    check_output_path,
    number,
    optimizer_from_args,
    param_grid_from_args,
    point_text,
    print_json,
    print_table,
    rates_from_args,
    target_and_start,
)
from descend.errors import InputError
from descend.sweeps import Sweep


def add_parsers(commands) -> None:
    """Add ``grad``, ``minimize``, ``functions`` and ``optimizers`` to the sub-commands."""
    grad = commands.add_parser("grad", help="partial derivatives and gradient of an expression")
    grad.add_argument("expression", help='e.g. "2*x**2 + 6*z**2 + 7*m**3"')
    grad.add_argument(
        "--at", required=True, metavar="x=1,z=1,m=1",
        help="the point where the gradient is taken, one value per variable",
    )  # fmt: skip
    add_json(grad)
    grad.set_defaults(handler=_grad)

    minimize = commands.add_parser("minimize", help="minimize an expression or test function")
    minimize.add_argument("expression", help="an expression, or a test function name")
    minimize.add_argument(
        "--x0", metavar="x=0,y=0", help="start point (default: 0, or the test function's start)"
    )
    minimize.add_argument(
        "--dim", type=int, help="number of variables for n-dimensional test functions"
    )
    add_optimizer_options(minimize)
    add_sweep_options(
        minimize, "with --lr given as a list (0.01,0.1,0.5) every configuration runs at "
        "once, in one program, and the table is printed",
    )  # fmt: skip
    minimize.add_argument("--tol", type=float, default=1e-6, help="gradient-norm tolerance (1e-6)")
    minimize.add_argument(
        "--max-iter", type=int, default=10_000, help="the most steps to take before stopping"
    )
    minimize.add_argument(
        "--refine", action="store_true", help="bisect a derivative sign change (1 variable)"
    )
    minimize.add_argument(
        "--bounds", metavar="x=0:5,y=:3",
        help="box bounds low:high per variable (either side may be empty); for a test "
        "function, pairs in variable order: 0:5,:3; a value that begins with '-' goes "
        "after '=': --bounds=-1:2,-1:2",
    )  # fmt: skip
    minimize.add_argument(
        "--dtype", choices=("float64", "float32"), default="float64",
        help="the precision of the iterates",
    )  # fmt: skip
    add_json(minimize)
    minimize.set_defaults(handler=_minimize)

    functions = commands.add_parser("functions", help="list the built-in test functions")
    functions.add_argument("name", nargs="?", help="show one function")
    functions.add_argument("--dim", type=int, help="its number of variables (n-dimensional)")
    add_json(
        functions,
        "a JSON list, one object per test function: name, formula, dim (null for any "
        "number of variables), minimum, minimizers, start and bounds",
    )
    functions.set_defaults(handler=_functions)

    optimizers = commands.add_parser(
        "optimizers", help="list the optimizers and their hyperparameters"
    )
    add_json(
        optimizers,
        "a JSON list, one object per algorithm: name, reference (the implementation it "
        "equals), hyperparams (each name with its default, named as in torch.optim or "
        "Optax), leaf_settings (per-leaf settings such as weight_decay_mask, with "
        "defaults) and summary",
    )
    optimizers.set_defaults(handler=_optimizers)

    minimize.add_argument(
        "--plot", metavar="PATH.png",
        help="draw the path over the function (1-2 variables), else the value per iteration",
    )  # fmt: skip
    functions.add_argument(
        "--plot", metavar="PATH.png",
        help="draw the named function to this file (contour map; curve in 1-D)",
    )  # fmt: skip


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
        print_json(
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
        print(f"df/d{name} = {partials[name]} = {number(numbers[name])}")
    where = ", ".join(f"{name}={number(values[name])}" for name in expression.variables)
    gradient_text = ", ".join(number(numbers[name]) for name in expression.variables)
    print(f"gradient at ({where}): [{gradient_text}]")
    return EXIT_OK


def _minimize(args: argparse.Namespace) -> int:
    from descend.minimization import MinimizeResult, minimize

    rates = rates_from_args(args)  # a sweep of rates, or None
    optimizer = optimizer_from_args(args)
    param_grid = param_grid_from_args(args)
    if args.plot:
        check_output_path(args.plot, None)
    target, x0, label = target_and_start(args.expression, args.x0, args.dim)
    bounds = None
    if args.bounds is not None:  # an empty text is refused by bounds_from_text, not skipped
        names = getattr(target, "variables", None)
        dim = None if names is not None else (len(x0) if x0 is not None else target.dim)
        bounds = bounds_from_text(args.bounds, names, dim)
    result = minimize(
        target,
        x0,
        optimizer=optimizer,
        lr=rates,
        param_grid=param_grid,
        bounds=bounds,
        tol=args.tol,
        max_iter=args.max_iter,
        refine=args.refine,
        dtype=args.dtype,
    )
    if isinstance(result, Sweep):
        return _report_sweep(args, result, optimizer, label)
    assert isinstance(result, MinimizeResult)  # one start (no batched=, no starts=)
    status = EXIT_FAILED if result.status == "diverged" else EXIT_OK
    if args.plot:
        from descend.cli.pictures import plot_minimize

        written = plot_minimize(result, target, args.plot)
    if args.json:
        saved = {"plot": str(written)} if args.plot else {}
        print_json({"expression": label, **result.to_dict(), **saved})
        return status
    print(f"minimize {label} with {result.optimizer}")
    print(f"  minimizer: {point_text(result.x)}")
    print(f"  f(x) = {result.fun:.10g}")
    print(f"  gradient norm = {result.grad_norm:.3g}")
    print(f"  iterations: {result.n_iter} ({result.n_fev} function evaluations)")
    if result.active_mask is not None:
        names = result.variables or [f"x{i + 1}" for i in range(len(result.active_mask))]
        held = [
            f"{name} at its {'lower' if side < 0 else 'upper'} bound"
            for name, side in zip(names, result.active_mask, strict=True)
            if side
        ]
        print(f"  active bounds: {', '.join(held) if held else 'none'}")
    print(f"  stopped: {args.in_words(result.reason)}")
    if result.bracket is not None:
        print(
            "  derivative sign change bracket: "
            f"[{result.bracket[0]:.10g}, {result.bracket[1]:.10g}]"
        )
    for hint in result.hints:
        print(f"  hint: {args.in_words(hint)}")
    if args.plot:
        print(f"  plot saved to {written}")
    return status


def _report_sweep(args: argparse.Namespace, sweep: Sweep, optimizer: Any, label: str) -> int:
    """A sweep's table (best first) and its best run, with the optimizer swept
    (``optimizer`` with the best values: the hyperparameters other than their defaults);
    ``--plot`` draws the sweep. Exit 1 when every configuration diverged."""
    from descend import optim, plot, sweeps

    best = sweep.best
    written = str(plot.save(plot.sweep(sweep), args.plot)) if args.plot else None
    if args.json:
        pairs = zip(sweep.configurations, sweep, strict=True)
        runs = [{"configuration": values, **result.to_dict()} for values, result in pairs]
        saved = {"plot": written} if written else {}
        print_json({"expression": label, **sweep.to_dict(), "runs": runs, **saved})
    else:
        print(f"minimize {label}: {len(sweep)} configurations of {', '.join(sweep.names)} in "
              f"one program, ranked by {sweep.ranked_by}")  # fmt: skip
        print(sweep)
        chosen = optim.rebuild(optimizer, **sweep.best_configuration)
        print(f"best: {sweeps.label(sweep.best_configuration)}, with {optim.brief(chosen)}")
        print(f"  minimizer: {point_text(best.x)}")
        print(f"  f(x) = {best.fun:.10g}")
        print(f"  stopped: {args.in_words(best.reason)}")
        if written:
            print(f"  plot saved to {written}")
    return EXIT_FAILED if all(result.status == "diverged" for result in sweep) else EXIT_OK


def _functions(args: argparse.Namespace) -> int:
    from descend import functions

    if args.plot:
        if not args.name:
            raise InputError(
                "--plot draws one function: give its name, e.g. "
                "'descend functions rosenbrock --plot f.png'"
            )
        from descend.cli.pictures import plot_function

        written = plot_function(args.name, args.plot, args.dim)
    if args.dim is not None and not args.name:
        raise InputError("--dim describes one function: give its name, e.g. 'rosenbrock --dim 10'")
    chosen = (
        [functions.get(args.name, args.dim)]
        if args.name
        else [functions.get(n) for n in functions.names()]
    )
    rows: list[dict[str, Any]] = [
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
        print_json(rows[0] if args.name else rows)
        return EXIT_OK
    print_table(
        "Test functions",
        ["name", "formula", "minimum", "minimizers", "start"],
        [
            [
                row["name"],
                row["formula"],
                f"{row['minimum']:.6g}",
                "; ".join(point_text(m) for m in row["minimizers"]),
                point_text(row["start"]),
            ]
            for row in rows
        ],
    )
    if args.plot:
        print(f"plot saved to {written}")
    return EXIT_OK


def _optimizers(args: argparse.Namespace) -> int:
    from descend import optim

    table = optim.available()
    if args.json:
        print_json(table)
        return EXIT_OK
    print_table(
        "Optimizers",
        ["name", "equals", "hyperparameters (defaults)", "summary"],
        [
            [
                row["name"],
                row["reference"] or "",
                ", ".join(
                    f"{k}={v!r}" for k, v in {**row["hyperparams"], **row["leaf_settings"]}.items()
                ),
                plain_text(row["summary"]),
            ]
            for row in table
        ],
    )
    return EXIT_OK


def plain_text(text: str) -> str:
    """A docstring line without its reStructuredText markup: ``:func:`~a.b``` as ``b``,
    ``:mod:`a.b``` as ``a.b``, double backquotes and emphasis dropped."""
    text = re.sub(r":\w+:`~?([^`<]*?)(?:\s*<[^>]*>)?`", _role, text)
    return re.sub(r"``([^`]*)``|\*\*([^*]*)\*\*|\*([^*]*)\*", _inner, text)


def _role(match: re.Match[str]) -> str:
    target = match.group(1)
    shown = match.group(0)
    return target.rsplit(".", 1)[-1] if ":`~" in shown else target


def _inner(match: re.Match[str]) -> str:
    return next(part for part in match.groups() if part is not None)
