"""What every command of the ``descend`` command line shares.

Exit codes, the parser that turns usage errors into one line, the library's messages
in the command line's words (:func:`in_command_line_words`), printing (JSON, tables,
numbers, points), and reading options from text (``--opt-args``, ``--x0``) without
evaluating anything.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from descend._json import jsonable
from descend.errors import DescendError, InputError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class HelpFormatter(argparse.HelpFormatter):
    """The standard formatter, with each option's default after its sentence
    (``(default: 32)``) unless the sentence already gives it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
            or "%(default)" in text
            or "(default" in text
            or _shown(default) in text
        ):
            return text
        return f"{text} (default: %(default)s)"


def _shown(value: Any) -> str:
    """A default as the help texts write it: ``64,32`` for a tuple of sizes."""
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2, and the help gives
    every option's default."""

    commands: dict[str, Parser]  # the root's: each command's parser

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # argparse names the function that read the value ("invalid float value: 'x'"):
        # say what the option takes instead.
        message = _INVALID.sub(
            lambda match: f"expected {_KINDS.get(match[1], 'another value')}, got {match[2]}",
            message,
        )
        raise InputError(f"{message} (see '{self.prog} --help')")


_INVALID = re.compile(r"invalid (\w+) value: (.*)$")
_KINDS = {"int": "a whole number", "float": "a number"}


def show_warning(
    message, category, filename, lineno, file=None, line=None, *, options: Options = None
) -> None:
    """Warnings as one line, ``descend: warning: ...``, without a source location."""
    print(f"descend: warning: {in_command_line_words(one_line(message), options)}", file=sys.stderr)


# ------------------------------------------------------------ the library's words, the CLI's

# An option of a command by the library argument it fills: {"nan_policy": ("--nan-policy",
# False)}, True for a switch (a flag without value), None for a flag that turns a library
# switch off ({"standardize": ("--no-standardize", None)}).
Options = Mapping[str, tuple[str, bool | None]] | None

# Library arguments a command's option fills under another name.
ALIASES = {"fraction": "validation_split"}  # train_validation_split's, from --validation-split
# Library switches a command's option turns off: standardize=False is --no-standardize.
NEGATED = {"standardize": "no_standardize"}

# Advice the library gives a Python caller that a command follows otherwise: (the option
# a command has where it applies, the Python words, the command line's; "" drops them).
PYTHON_ADVICE = (
    ("validation_split", r"pass validation=\(X_val, y_val\), or hold none out",
     "train one seed per command, or hold none out"),
    ("validation_split", r", or pass validation=\(X_val, y_val\)$", ""),
    ("resume", r"pass it again to resume: fit\(\.\.\., loss=your_loss, resume=\.\.\.\)",
     "a command cannot pass a function, so resume it from Python with the loss given again"),
    ("resume", r"ds\.load\(path, optimizer=\.\.\.\) or ", ""),
    ("stream", r"use fit\(model, path\) or convert", "leave out --stream, or convert"),
    ("target", r"^y has labels", "the target column has labels"),
    ("target", r"; pass labels as predict returns them \(a Dataset's y holds class codes: "
     r"\w+\(dataset\) uses its labels\)", "; give a target column of those labels"),
)  # fmt: skip

_KEYWORDS = r"\w+=[^(),]+(?:, \w+=[^(),]+)*"
_CALL = re.compile(rf"\b[\w.]+\(\.\.\., ({_KEYWORDS})\)")  # fit(..., dtype='float64')
_ASSIGNMENT = re.compile(
    r"(?<![\w.-])([a-z]\w*)=('[^']*'|\"[^\"]*\"|\[[^\]]*\]|\{[^}]*\}|[^\s,;)]+)"
)
_BARE = re.compile(r"(?<![\w.-])([a-z]\w*)=(?=[\s),;]|$)")  # "as lr= and": the name alone
_SUBJECT = re.compile(r"(^|; |: )([a-z]\w*)(?= must be | counts )")  # "epochs must be ..."
_IDENTIFIER = re.compile(r"(?<![\w.'\"-])([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?![\w=(])")
_PLAIN = re.compile(r"[\w.+-]+|\.\.\.")


def command_options(parser: argparse.ArgumentParser) -> dict[str, tuple[str, bool | None]]:
    """The long options of a command by the argument they fill (see :data:`Options`)."""
    options: dict[str, tuple[str, bool | None]] = {}
    for action in parser._actions:
        flags = [flag for flag in action.option_strings if flag.startswith("--")]
        if flags and action.dest != "help":
            options[action.dest] = (flags[0], action.nargs == 0)
    for alias, name in ALIASES.items():
        if name in options:
            options[alias] = options[name]
    for switch, name in NEGATED.items():
        if name in options:
            options[switch] = (options[name][0], None)
    return options


def in_command_line_words(text: str, options: Options) -> str:
    """A library message naming the command's options where it names Python arguments.

    The library speaks to Python callers (``nan_policy='drop'``, ``epochs=3``,
    ``validation_split must be ...``); printed by the command line, the arguments a
    command has options for are spelled as those options (``--nan-policy drop``,
    ``--epochs 3``, ``--validation-split must be ...``); advice a command follows
    otherwise (:data:`PYTHON_ADVICE`: ``validation=(X_val, y_val)``, which no option
    passes) is said as the command can follow it; a call such as
    ``ds.data.stream(..., chunk_rows=128)`` whose keywords are all options becomes the
    options; a name alone (``by lr= and``) becomes the option. Other names stay as they
    are, and so do a value the message echoes after "got" (``got dim=3``: what the
    library was given), ``name=None`` where the option takes no None, and keywords
    inside another call shown whole (``sgd(lr=0.1)``, also the syntax of ``compare
    --optimizers``). A switch is spelled present or "leave out"; ``standardize=False``
    is ``--no-standardize``.

    >>> options = {"nan_policy": ("--nan-policy", False), "epochs": ("--epochs", False)}
    >>> in_command_line_words("pass nan_policy='drop' or fix the data", options)
    'pass --nan-policy drop or fix the data'
    >>> in_command_line_words("epochs counts the 2 epochs trained, so epochs=2 ...", options)
    '--epochs counts the 2 epochs trained, so --epochs 2 ...'
    """
    if not options:
        return text

    def call(match: re.Match) -> str:
        keywords = [item.partition("=")[0] for item in match.group(1).split(", ")]
        return match.group(1).replace(", ", " ") if set(keywords) <= set(options) else match[0]

    def assignment(match: re.Match) -> str:
        name, value = match.groups()
        before = match.string[: match.start()]
        kept = (
            name not in options
            or before.endswith("got ")  # what the library was given, echoed
            or _in_call(before)  # a Python call shown whole: sgd(lr=0.1)
            or (value == "None" and options[name][1] is False)  # no option value says None
        )
        return match[0] if kept else _spelled(options[name], value)

    def bare(match: re.Match) -> str:
        name = match[1]
        kept = name not in options or _in_call(match.string[: match.start()])
        return match[0] if kept else options[name][0]

    def subject(match: re.Match) -> str:
        lead, name = match.groups()
        return lead + options[name][0] if name in options else match[0]

    def identifier(match: re.Match) -> str:
        return options[match[1]][0] if match[1] in options else match[0]

    for option, python, words in PYTHON_ADVICE:
        if option in options:
            text = re.sub(python, words, text)
    text = _CALL.sub(call, text)
    text = _ASSIGNMENT.sub(assignment, text)
    text = _BARE.sub(bare, text)
    text = _SUBJECT.sub(subject, text)
    return _IDENTIFIER.sub(identifier, text)


def _in_call(before: str) -> bool:
    """Whether text ending with ``before`` is inside the parentheses of a call, ``f(...``."""
    calls: list[bool] = []
    for i, char in enumerate(before):
        if char == "(":
            calls.append(i > 0 and (before[i - 1].isalnum() or before[i - 1] == "_"))
        elif char == ")" and calls:
            calls.pop()
    return bool(calls) and calls[-1]


def _spelled(option: tuple[str, bool | None], value: str) -> str:
    """``--flag value`` for a Python value as a message writes it (``'drop'``, ``3``,
    ``['a']``, ``{'x': 1}``)."""
    flag, switch = option
    if switch is None:  # an option that turns the library's switch off
        return flag if value == "False" else f"leave out {flag}"
    if switch:
        return flag if value == "True" else f"leave out {flag}"
    if value[:1] in ("'", '"'):
        value = value[1:-1]
    elif value.startswith("["):
        value = ",".join(item.strip(" '\"") for item in value[1:-1].split(","))
    elif value.startswith("{"):  # {'x': 1, 'y': 2}: the options' x=1,y=2
        pairs = (item.partition(":") for item in value[1:-1].split(","))
        value = ",".join(name.strip(" '\"") + "=" + number.strip() for name, _, number in pairs)
    if not _PLAIN.fullmatch(value):
        quoted = shlex.quote(value)
        # Punctuation alone reads better quoted, even where a shell would not need it.
        plain_punctuation = quoted == value and not any(c.isalnum() for c in value)
        value = f"'{value}'" if plain_punctuation else quoted
    return f"{flag} {value}"


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def add_json(parser: argparse.ArgumentParser, what: str = "one JSON object") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what}")


def add_optimizer_options(
    parser: argparse.ArgumentParser,
    default: str = "gd",
    *,
    resumable: bool = False,
    default_text: str | None = None,
    lr_text: str = "gd without --lr uses a line search",
) -> None:
    """``--optimizer``, ``--lr`` and ``--opt-args``; with ``resumable``, ``--optimizer``
    left out means the checkpoint's optimizer when resuming (else ``default``, described
    as ``default_text`` in the help)."""
    shown = default_text or default
    shown = f"{shown}, or the checkpoint's with --resume" if resumable else shown
    parser.add_argument(
        "--optimizer",
        default=None if resumable else default,
        help=f"algorithm name ({shown}; see 'descend optimizers')",
    )
    parser.add_argument("--lr", type=float, help=f"learning rate ({lr_text})")
    parser.add_argument(
        "--opt-args",
        default="",
        metavar="key=value,...",
        help="other hyperparameters, e.g. momentum=0.9,nesterov=true,betas=(0.9,0.99) "
        "(sequences in ( ) or [ ], text in quotes when it holds a comma); "
        "weight_decay=0.1,weight_decay_mask=weights decays the weights, not the biases",
    )


def listed(parse, single=None):
    """An option's type that also takes comma-separated values (a sweep), each parsed
    by ``parse``; a single value by ``single`` (default ``parse``)."""

    def parse_all(text: str):
        if "," in text:  # each value says what is wrong with it (ArgumentTypeError)
            return [parse(part.strip()) for part in text.split(",")]
        try:
            return (single or parse)(text)
        except (TypeError, ValueError):
            # ``single`` is looser than ``parse`` (the library checks the range): what it
            # refuses, ``parse`` refuses in the option's words (its ArgumentTypeError).
            parse(text)
            raise argparse.ArgumentTypeError(f"cannot read {text!r}") from None

    return parse_all


def accept_lists(parser: argparse.ArgumentParser, dest: str, parse) -> None:
    """Let the option of ``dest`` (added by a shared helper) take comma-separated values,
    each read by ``parse``; a single value is read as before (the library checks it)."""
    for action in parser._actions:
        if action.dest == dest:
            action.type = listed(parse, single=action.type)


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def grid_entry(text: str) -> tuple[str, list]:
    """``--param-grid NAME=V1,V2``: a hyperparameter and its values (a pair as A:B)."""
    name, equals, values = text.partition("=")
    if not (equals and name.strip().isidentifier() and values.strip()):
        raise argparse.ArgumentTypeError(
            f"expected NAME=V1,V2 such as momentum=0.5,0.9, got {text!r}"
        )

    def number(part: str):
        try:
            pieces = [float(piece) for piece in part.split(":")]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected numbers (a pair as 0.9:0.999) in {text!r}, got {part!r}"
            ) from None
        return pieces[0] if len(pieces) == 1 else tuple(pieces)

    return name.strip(), [number(part.strip()) for part in values.split(",")]


def rates_from_args(args: argparse.Namespace) -> list[float] | None:
    """The rates of a sweep given as ``--lr 0.01,0.1`` (then taken out of ``args``, so
    that the optimizer is built without a rate), or None for one rate or none."""
    if not isinstance(args.lr, list):
        return None
    if "lr" in parse_options(args.opt_args):
        raise InputError("lr is given twice: by --lr and in --opt-args")
    rates, args.lr = args.lr, None
    return rates


def param_grid_from_args(args: argparse.Namespace) -> dict[str, list] | None:
    """``--param-grid`` entries (:func:`grid_entry`) as ``fit``'s and ``minimize``'s
    ``param_grid``, or None when none was given."""
    if not args.param_grid:
        return None
    param_grid = dict(args.param_grid)
    if len(param_grid) < len(args.param_grid):
        raise InputError("--param-grid names a hyperparameter twice; give each once")
    opt_args = getattr(args, "opt_args", None)
    both = sorted(set(parse_options(opt_args)) & set(param_grid)) if opt_args else []
    if both:  # the grid's values would replace the one value, without a word
        raise InputError(
            f"{both[0]} is given twice: in --opt-args and in --param-grid; give it once"
        )
    return param_grid


def add_sweep_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--lr`` (added by :func:`add_optimizer_options`) taking comma-separated rates,
    and ``--param-grid``: the options of a sweep, ``what`` saying what runs at once."""
    accept_lists(parser, "lr", positive_number)
    parser.add_argument(
        "--param-grid", metavar="NAME=V1,V2", action="append", type=grid_entry,
        help="sweep a hyperparameter of the optimizer (repeat for more: a grid), e.g. "
        f"momentum=0.5,0.9 or betas=0.9:0.999,0.5:0.9; {what}",
    )  # fmt: skip


def optimizer_from_args(args: argparse.Namespace, default: str = "gd"):
    """Build the optimizer named by ``--optimizer``, ``--lr`` and ``--opt-args``
    (``default`` when ``--optimizer`` was left out)."""
    from descend import optim

    hyperparams = parse_options(args.opt_args)
    if args.lr is not None:
        if "lr" in hyperparams:
            raise InputError("lr is given twice: by --lr and in --opt-args")
        hyperparams["lr"] = args.lr
    try:
        return optim.get(args.optimizer or default, **hyperparams)
    except DescendError as error:
        # A hyperparameter given in --opt-args keeps its own name in the message, even
        # where the command has an option of that name (sophia's seed is not --seed).
        error.own_names = tuple(key for key in hyperparams if key != "lr" or args.lr is None)
        raise


def parse_options(text: str) -> dict[str, Any]:
    """Read ``"momentum=0.9,nesterov=true,betas=(0.9,0.99)"`` into a dict of Python values.

    Values are numbers, ``true``/``false``, ``none``, sequences in parentheses or
    brackets (``(0.9,0.99)`` or ``[0.9,0.99]``, read as tuples), text in quotes
    (``'weights'``, kept as it is, commas included) or bare words (kept as text).
    Nothing is evaluated.
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
    """``text`` split at the commas outside parentheses, brackets and quotes."""
    current: list[str]
    items, depth, current, quote = [], 0, [], ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        else:
            depth += {"(": 1, ")": -1, "[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0 and not quote:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    if quote or depth:
        raise InputError(
            f"unbalanced {'quote' if quote else 'parentheses or brackets'} in {text!r}; "
            "close each ( [ ' or \" that is opened"
        )
    items.append("".join(current))
    return [item for item in (i.strip() for i in items) if item]


def option_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if (text.startswith("(") and text.endswith(")")) or (
        text.startswith("[") and text.endswith("]")
    ):
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


_NUMBER = r"[+-]?(?:inf|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
_BOUND_ITEM = re.compile(
    rf"^\s*(?:(?P<name>[A-Za-z_]\w*)\s*=\s*)?(?P<low>{_NUMBER})?\s*:\s*(?P<high>{_NUMBER})?\s*$"
)


def bounds_from_text(text: str, names: Any, dim: int | None) -> Any:
    """Read ``--bounds``: ``"x=0:5,y=:3"`` (an expression) or ``"0:5,:3"`` (a test function).

    Each item is ``[name=]low:high``, either side left empty for no bound; the numbers are
    decimal literals or ``inf``, read by a regular expression (never evaluated). Returns
    ``{name: (low, high)}`` for an expression's ``names``, else one ``(low, high)`` pair
    per variable (``dim`` of them) for :func:`descend.minimize`'s ``bounds``.
    """
    pairs: dict[str, tuple[float | None, float | None]] = {}
    ordered: list[tuple[float | None, float | None]] = []
    for item in text.split(","):
        match = _BOUND_ITEM.match(item)
        if match is None:
            raise InputError(
                f"--bounds items are [name=]low:high with numbers (either side may be empty), "
                f"e.g. x=0:5,y=:3; got {item.strip()!r}"
            )
        low, high = (None if v is None else float(v) for v in match.group("low", "high"))
        name = match.group("name")
        if names is None:
            if name is not None:
                raise InputError(
                    f"--bounds for a test function are low:high pairs in variable order, "
                    f"without names; got {item.strip()!r}"
                )
            ordered.append((low, high))
            continue
        if name is None:
            raise InputError(
                f"--bounds for an expression name each variable, e.g. x=0:5; got {item.strip()!r}"
            )
        if name not in names:
            raise InputError(
                f"--bounds: {name!r} is not a variable (variables: {', '.join(names)})"
            )
        if name in pairs:
            raise InputError(f"--bounds gives {name!r} twice")
        pairs[name] = (low, high)
    if names is not None:
        return pairs
    if dim is not None and len(ordered) != dim:
        raise InputError(f"--bounds has {len(ordered)} pairs; the function has {dim} variables")
    return ordered


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

    functions.check_objective_text(text)
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
    # On a terminal the table fits its width; piped or redirected, rich would assume 80
    # columns and cut the cells: there the table takes the width its cells need.
    console = Console()
    if not console.is_terminal:
        needed = Console(width=10_000).measure(table).maximum
        console = Console(width=max(needed, 20))
    console.print(table)


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


def silence_stdout() -> None:
    """Point the standard output's file at nothing (its reader went away), so that the
    flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (stdout replaced): nothing to flush
        pass


class KeepWorking(io.TextIOBase):
    """The standard output for work that must finish (a model to save) even when the
    reader of its lines goes away (``descend train ... --save m.ckpt | head -3``): once
    the pipe is closed, writes go nowhere and the work goes on."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.closed_pipe = False

    def write(self, text: str) -> int:
        if not self.closed_pipe:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.closed_pipe:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self) -> None:
        self.closed_pipe = True
        silence_stdout()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding
