"""The host loop over compiled blocks, shared by every front end.

A *block* is one compiled program: some iterations of ``minimize``, or one epoch of
``fit``. Between blocks the host does what only it can: progress, callbacks, Ctrl-C,
agreement between processes, and the budget. :func:`run` is that loop, written once;
a front end brings a :class:`Block` that runs its programs and applies the rules that
need its numbers (the gradient tolerance, divergence, early stopping).

Ctrl-C: the first one lets the block in flight finish, then the run stops with
``INTERRUPTED`` and returns what it has (the CLI then saves it); a second one stops it
at once with the state of the last completed block. So does a ``KeyboardInterrupt``
raised otherwise (outside the main thread, or by a data source or a callback).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from descend.engine.progress import Progress
from descend.engine.status import Status


class Block(Protocol):
    """What :func:`run` needs from a front end."""

    def advance(self) -> Status:
        """Run the next block and the front end's own rules.

        Returns ``RUNNING`` to go on, or the status that ends the run. Must leave the
        state of the last completed block in place if it raises.
        """
        ...

    def done(self) -> int:
        """Units (iterations, epochs) completed so far."""
        ...

    def describe(self) -> str | None:
        """The numbers of the last block, for the progress display (None: nothing new)."""
        ...

    def spent(self) -> Status | None:
        """The budget status (``MAX_ITER``, ``MAX_EPOCHS``) once it is used up, else None."""
        ...

    def intact(self) -> bool:
        """Whether the state is whole after an interrupt (it can be returned)."""
        ...


def run(
    block: Block,
    *,
    callbacks: Sequence[Callable[[], Any]] = (),
    progress: Progress | None = None,
    agree: Callable[[bool, bool], tuple[bool, bool]] | None = None,
) -> Status:
    """Run ``block`` until a rule stops it; returns that :class:`Status`.

    After each block, in this order: the block's own rules (from ``advance``), the
    progress display, every callback (each sees every completed block, the last one
    too, also when an earlier callback asks to stop; not a block that diverged), Ctrl-C,
    then the budget. A callback asks to stop by returning
    ``True`` or raising ``StopIteration``. ``agree(stop, interrupted)`` makes the stop
    decisions of several processes one (any process asking stops them all).
    """
    progress = progress or Progress(0, unit="", total=0)
    with progress, _interrupts() as interrupts:
        while True:
            try:
                status = _next(block, callbacks, progress, agree, interrupts)
            except KeyboardInterrupt:
                if not block.intact():
                    raise
                return Status.INTERRUPTED
            if status != Status.RUNNING:
                return status


def _next(block: Block, callbacks, progress: Progress, agree, interrupts) -> Status:
    """One block and the rules after it: ``RUNNING`` or the status that ends the run."""
    status = block.advance()
    text = block.describe()
    if text is not None:
        progress.update(block.done(), text)
    if status == Status.DIVERGED:  # the block was undone: nothing new to show a callback
        return status
    # Callbacks see every completed block, the last one too (as SciPy's and Keras's do);
    # a rule that already stopped the run keeps its status.
    stop = _callbacks_ask_to_stop(callbacks)
    if status != Status.RUNNING:
        return status
    interrupted = interrupts.count > 0
    if agree is not None:
        stop, interrupted = agree(stop, interrupted)
    if interrupted:
        return Status.INTERRUPTED
    if stop:
        return Status.CALLBACK
    return block.spent() or Status.RUNNING


def _callbacks_ask_to_stop(callbacks: Sequence[Callable[[], Any]]) -> bool:
    stop = False
    for callback in callbacks:
        try:
            stop = (callback() is True) or stop
        except StopIteration:
            stop = True
    return stop


class _Interrupts:
    count = 0


@contextlib.contextmanager
def _interrupts() -> Iterator[_Interrupts]:
    """Count Ctrl-C presses instead of raising at the first one (main thread only).

    Python's default handler is replaced only while the loop runs, and only if it is
    the one installed: a program's own SIGINT handler is left alone.
    """
    seen = _Interrupts()
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield seen
        return

    def handler(signum, frame):
        seen.count += 1
        if seen.count > 1:  # asked twice: stop now, with the last completed block
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)
