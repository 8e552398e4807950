"""The progress display of a run: a bar on a terminal, or one line per block.

``verbose=1`` draws a rich progress bar on stderr when stderr is a terminal (nothing
otherwise); ``verbose=2`` prints one line per block on stdout; ``verbose=0`` is silent.
A ``delay`` keeps the bar away from short runs: it appears once the run has taken that
long.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich import progress as rich_progress


class Progress:
    """Progress of a loop over blocks: ``update(done, text)`` after each block.

    Parameters
    ----------
    verbose:
        0 silent, 1 a bar on a terminal, 2 one line per block.
    unit, total:
        What a block counts (``"epoch"``, ``"iteration"``) and how many at most.
    start:
        Units already done (a resumed run).
    delay:
        Seconds before the bar appears (0: at once).
    """

    def __init__(self, verbose: int, *, unit: str, total: int, start: int = 0, delay: float = 0):
        self.verbose, self.unit, self.total, self.start = verbose, unit, total, start
        self.delay = delay
        self.began = time.perf_counter()
        self.bar: rich_progress.Progress | None = None
        self.task: rich_progress.TaskID | None = None

    def __enter__(self) -> Progress:
        if self.delay == 0:
            self._show_bar()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.stop()

    @property
    def shows(self) -> bool:
        """Whether it shows each block (a bar on a terminal, or a line at ``verbose=2``)."""
        return self.verbose == 2 or (self.verbose == 1 and sys.stderr.isatty())

    def _show_bar(self) -> None:
        if self.verbose != 1 or not self.shows or self.bar is not None:
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
        if self.bar is None and time.perf_counter() - self.began >= self.delay:
            self._show_bar()
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=done, status=text)
        elif self.verbose == 2:
            print(f"{self.unit} {done}/{self.total}: {text}", flush=True)
