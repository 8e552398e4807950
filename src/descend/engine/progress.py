"""The progress display of a run, in the form meant for where it runs.

``verbose=1`` shows, on stderr (stdout stays for results and pipes):

- on a terminal, a rich progress bar;
- in a Jupyter notebook, ``tqdm.auto``'s bar (a widget with ``ipywidgets``, else a
  text bar); without tqdm installed (``pip install 'descend[notebook]'``), lines as in a
  log;
- elsewhere (a log file, a pipe), plain lines at a sensible rate: the first block, then
  a line each time the run passes another tenth of its budget or :data:`LINE_SECONDS`
  have passed since the last line, and the last block.

``verbose=2`` prints one line per block on stdout; ``verbose=0`` is silent. A ``delay``
keeps the display away from short runs: it appears once the run has taken that long.

Why tqdm in notebooks and not rich's Jupyter support: both need ``ipywidgets`` for a live
bar, and an update costs both a few microseconds, but a redraw of rich's bar in a
notebook cost 3.7 ms against tqdm's 0.53 ms (each redraws at most ten times a second),
and without ``ipywidgets`` rich shows nothing while tqdm falls back to a text bar
(``python -m benchmarks.progress``; benchmarks/TUNING.md).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

LINE_SECONDS = 10.0  # in a log, a line at least this often while the run goes on
LINE_STEPS = 10  # ... and one each time it passes another tenth of its budget


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel: the test ``tqdm.autonotebook`` makes.

    True when ``ipykernel``'s shell is loaded and the IPython shell is not a Qt console
    or Spyder's (JupyterLab, classic notebooks, VS Code, Colab).
    """
    if "ipykernel.zmqshell" not in sys.modules:
        return False
    if any(name == "QT_API" or name.startswith("SPYDER") for name in os.environ):
        return False
    ipython = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    shell = type(ipython).__name__.lower()
    return ipython is not None and "qt" not in shell and "spyder" not in shell


def _notebook_bar() -> Any:
    """``tqdm.auto.tqdm`` in a notebook when tqdm is installed, else None."""
    if not in_notebook():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """Progress of a loop over blocks: ``update(done, text)`` after each block.

    Parameters
    ----------
    verbose:
        0 silent, 1 a display meant for where it runs (see the module), 2 one line per
        block on stdout.
    unit, total:
        What a block counts (``"epoch"``, ``"iteration"``) and how many at most.
    start:
        Units already done (a resumed run).
    delay:
        Seconds before the bar appears (0: at once).
    line_delay:
        Seconds before the first line of a log (default: ``delay``): a log need not
        hear of runs shorter than that.
    """

    def __init__(
        self, verbose: int, *, unit: str, total: int, start: int = 0, delay: float = 0,
        line_delay: float | None = None,
    ):  # fmt: skip
        self.verbose, self.unit, self.total, self.start = verbose, unit, total, start
        self.delay = delay
        self.line_delay = delay if line_delay is None else line_delay
        self.began = time.perf_counter()
        self.bar: Any = None
        self.task: Any = None
        self.tqdm: Any = None
        self.mode = "silent"
        if verbose == 2:
            self.mode = "lines"
        elif verbose == 1:
            self.tqdm = None if sys.stderr.isatty() else _notebook_bar()
            if sys.stderr.isatty():
                self.mode = "terminal"
            elif self.tqdm is not None:
                self.mode = "notebook"
            else:
                self.mode = "log"
        self.logged: tuple[float, int] | None = None  # (time, done) of the last log line
        self.last: tuple[int, str] | None = None  # the last block, not yet in the log

    def __enter__(self) -> Progress:
        if self.delay == 0:
            self._show_bar()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            if self.mode == "notebook":
                self.bar.close()
            else:
                self.bar.stop()
        if self.mode == "log" and self.logged is not None and self.last is not None:
            self._log(*self.last)  # a log ends with where the run stopped

    @property
    def shows(self) -> bool:
        """Whether it shows each block (a bar, or a line at ``verbose=2``); a log shows
        some only, and does not need each block to be run on its own."""
        return self.mode in ("terminal", "notebook", "lines")

    def _show_bar(self) -> None:
        if self.bar is not None or self.mode not in ("terminal", "notebook"):
            return
        if self.mode == "notebook":
            self.bar = self.tqdm(
                total=self.total, initial=self.start, unit=self.unit, desc=self.unit,
                leave=True,
            )  # fmt: skip
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        # On stderr, the terminal it was checked on: stdout stays for results and pipes.
        self.bar = Progress(
            TextColumn(f"{self.unit} {{task.completed}}/{{task.total}}"), BarColumn(),
            TextColumn("{task.fields[status]}"), TimeRemainingColumn(), transient=False,
            console=Console(stderr=True),
        )  # fmt: skip
        self.task = self.bar.add_task(self.unit, total=self.total, completed=self.start, status="")
        self.bar.start()

    def update(self, done: int, text: str) -> None:
        """``done`` units so far; ``text`` the numbers of the last block."""
        now = time.perf_counter()
        if self.bar is None and now - self.began >= self.delay:
            self._show_bar()
        if self.mode == "lines":
            print(f"{self.unit} {done}/{self.total}: {text}", flush=True)
        elif self.mode == "log":
            self._maybe_log(now, done, text)
        elif self.bar is not None and self.mode == "notebook":
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(done - self.bar.n)
        elif self.bar is not None:
            self.bar.update(self.task, completed=done, status=text)

    def _maybe_log(self, now: float, done: int, text: str) -> None:
        self.last = (done, text)
        if now - self.began < self.line_delay:
            return
        if self.logged is not None:
            at, before = self.logged
            step = max(self.total // LINE_STEPS, 1)
            if (
                now - at < LINE_SECONDS
                and (done - self.start) // step == (before - self.start) // step
            ):
                return
        self._log(done, text)

    def _log(self, done: int, text: str) -> None:
        print(f"{self.unit} {done}/{self.total}: {text}", file=sys.stderr, flush=True)
        self.logged, self.last = (time.perf_counter(), done), None
