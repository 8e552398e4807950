"""The ``descend`` command line: parse arguments, call the library, print.

One module per group of commands, each adding its parsers: :mod:`~descend.cli.calculus`
(``grad``, ``minimize``, ``functions``, ``optimizers``), :mod:`~descend.cli.training`
(``train``, ``predict``), :mod:`~descend.cli.lr_finder` (``lr-find``),
:mod:`~descend.cli.evaluation` (``evaluate``),
:mod:`~descend.cli.race` (``compare``), :mod:`~descend.cli.playground`
(``playground``); what they share is
:mod:`~descend.cli.common`, the pictures behind ``--plot`` :mod:`~descend.cli.pictures`.

Exit status: 0 when the command ran, 1 when a run failed (diverged, or an unexpected
error), 2 for bad input (one line on stderr, no traceback), 130 when interrupted.
Set ``DESCEND_DEBUG=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import traceback
import warnings
from collections.abc import Sequence

from descend.cli import calculus, evaluation, lr_finder, playground, race, training
from descend.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Parser,
    command_options,
    in_command_line_words,
    one_line,
    parse_options,
    show_warning,
    silence_stdout,
)
from descend.errors import DescendError, InputError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (also used as the console script)."""
    parser = build_parser()
    options = None  # the command's options, once known: messages name them
    try:
        args = parser.parse_args(argv)
        options = command_options(parser.commands[args.command])
        args.in_words = functools.partial(in_command_line_words, options=options)
        with warnings.catch_warnings():
            warnings.showwarning = functools.partial(show_warning, options=options)
            _use_cache(args)
            status = args.handler(args)
    except DescendError as error:
        if options is not None:  # hyperparameters of --opt-args keep their names
            options = {key: flag for key, flag in options.items() if key not in error.own_names}
        print(f"descend: {in_command_line_words(one_line(error), options)}", file=sys.stderr)
        status = EXIT_USAGE
    except KeyboardInterrupt:
        print("descend: interrupted", file=sys.stderr)
        status = EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`descend ... | head`): what it wanted was written. Point
        # stdout at nothing so that the flush at exit does not fail again, and end quietly.
        silence_stdout()
        status = EXIT_OK
    except Exception as error:  # the last resort: one line, never a traceback by default
        if os.environ.get("DESCEND_DEBUG"):
            traceback.print_exc()
        print(
            f"descend: unexpected error: {type(error).__name__}: {one_line(error)} "
            "(set DESCEND_DEBUG=1 to see where)",
            file=sys.stderr,
        )
        status = EXIT_FAILED
    return status


def build_parser() -> Parser:
    """The ``descend`` parser with every command's sub-parser."""
    parser = Parser(
        prog="descend",
        description="Gradient descent: derivatives, minimization and training.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in (calculus, training, lr_finder, evaluation, race, playground):
        group.add_parsers(commands)
    for command in commands.choices.values():
        add_cache_options(command)
    parser.commands = commands.choices  # each command's parser, by name
    return parser


def add_cache_options(command: argparse.ArgumentParser) -> None:
    """Every command keeps its compiled programs between runs unless told otherwise."""
    group = command.add_argument_group("compilation cache")
    group.add_argument(
        "--cache-dir", metavar="PATH",
        help="keep JAX's compiled programs here, so that a later run skips compiling "
        "(default: $DESCEND_CACHE_DIR, else the user cache folder's descend/jax)",
    )  # fmt: skip
    group.add_argument(
        "--no-cache", action="store_true",
        help="compile afresh and keep nothing (also DESCEND_CACHE_DIR=off)",
    )  # fmt: skip


def _use_cache(args: argparse.Namespace) -> None:
    """The persistent compilation cache, unless --no-cache or DESCEND_CACHE_DIR=off; an
    unwritable folder is a warning, and the run goes on without it."""
    from descend import cache

    given = getattr(args, "cache_dir", None)  # a parser built without the options: none
    if getattr(args, "no_cache", False):
        if given:
            raise InputError("give --cache-dir or --no-cache, not both")
        return
    if given is None and cache.disabled_by_environment():
        return
    cache.use_compilation_cache(given)


def _version() -> str:
    from descend._version import __version__

    return f"descend {__version__}"


__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main",
           "parse_options"]  # fmt: skip

if __name__ == "__main__":
    sys.exit(main())
