"""``descend playground``: the browser page, served on this machine."""

from __future__ import annotations

import argparse
from typing import Any

from descend.cli.common import EXIT_OK
from descend.errors import InputError

DEFAULT_PORT = 8765


def add_parsers(commands: Any) -> argparse.ArgumentParser:
    """Add ``descend playground`` to ``commands`` (the result of ``add_subparsers``)."""
    parser = commands.add_parser(
        "playground",
        help="see gradient descent in the browser (a local server)",
        description="Serve the playground page and open it: race optimizers on any "
        "function, train by batch, stochastic and mini-batch descent. Needs the web extra: "
        'pip install "descend[web]".',
    )
    parser.add_argument(
        "--host", default="127.0.0.1",
        help="the address to serve on (default 127.0.0.1: this machine only; another "
        "address serves other machines too, with a warning)",
    )  # fmt: skip
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"the port (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--no-browser", action="store_true", help="print the URL without opening a browser"
    )
    parser.set_defaults(handler=playground_command)
    return parser


def playground_command(args: argparse.Namespace) -> int:
    """Run the server until Ctrl-C."""
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be in 1..65535, got {args.port}")
    try:
        from descend.web import serve
    except ImportError as error:
        raise InputError(
            f"the playground needs the web extra ({error.name} is missing): "
            'pip install "descend[web]"'
        ) from None
    serve(args.host, args.port, open_browser=not args.no_browser)
    return EXIT_OK
