"""Callbacks for :func:`descend.fit`: objects with Keras's hooks, and the ready ones.

``fit(..., callbacks=[...])`` takes plain functions ``callback(epoch, history)`` and
objects with any of Keras's three hooks, in one list, called in its order:

- ``on_train_begin(logs)`` before the first epoch (``logs`` is ``{}``);
- ``on_epoch_end(epoch, logs)`` after every epoch: ``epoch`` counts from 1, as
  ``history["epoch"]`` does (Keras counts from 0), and ``logs`` holds that epoch's
  numbers by the history's names (``loss``, ``accuracy`` or ``r2``, ``val_loss``,
  ``val_accuracy`` or ``val_r2``, ``grad_norm``, ``lr``, ``time``). Returning ``True``
  or raising ``StopIteration`` stops training after this epoch (status ``"callback"``),
  as a plain function does;
- ``on_train_end(logs)`` once training stopped by one of its rules (not when it
  raised), with the last epoch's ``logs``.

A hook the object lacks is skipped; :class:`Callback` has them all, doing nothing.

Ready callbacks: :class:`CSVLogger` (a CSV file of the history, with :mod:`csv`),
:class:`TensorBoard` (event files, with ``tensorboardX``: ``pip install
"descend[tensorboard]"``), and two that set up what ``fit`` itself does:
:class:`EarlyStopping` (``fit``'s ``patience``, ``min_delta`` and ``restore_best``) and
:class:`Checkpoint` (``descend.save``'s atomic files, written while training runs).

>>> import numpy as np, descend as ds
>>> class Stop(ds.callbacks.Callback):
...     def on_epoch_end(self, epoch, logs):
...         return epoch == 3
>>> X = np.arange(20.0).reshape(10, 2); y = X.sum(axis=1)
>>> result = ds.fit("linear", X, y, batch_size=None, epochs=50, callbacks=[Stop()], verbose=0)
>>> result.n_epochs, result.status
(3, 'callback')
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from descend.errors import DescendTypeError, InputError

HOOKS = ("on_train_begin", "on_epoch_end", "on_train_end")


class Callback:
    """The base of callback objects: each hook does nothing until overridden."""

    def on_train_begin(self, logs: dict[str, float]) -> None:
        """Called before the first epoch, with ``logs = {}``."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool | None:
        """Called after epoch ``epoch`` (from 1); ``True`` or ``StopIteration`` stops."""
        return None

    def on_train_end(self, logs: dict[str, float]) -> None:
        """Called once training stopped, with the last epoch's ``logs``."""


def has_hooks(callback: Any) -> bool:
    """Whether ``callback`` is an object with Keras's hooks (not a plain function)."""
    return any(callable(getattr(callback, hook, None)) for hook in HOOKS)


def check(callbacks: Any) -> tuple:
    """``fit``'s ``callbacks`` as a tuple: one callback or a list of them, each a
    function ``callback(epoch, history)`` or an object with hooks; a
    :class:`~descend.errors.DescendTypeError` for anything else."""
    if callable(callbacks) or has_hooks(callbacks):
        callbacks = (callbacks,)
    try:
        callbacks = tuple(callbacks)
    except TypeError:
        raise DescendTypeError(
            "callbacks must be a list of functions callback(epoch, history) or objects "
            f"with on_epoch_end(epoch, logs), got {type(callbacks).__name__}"
        ) from None
    for callback in callbacks:
        if isinstance(callback, type) and has_hooks(callback):
            raise DescendTypeError(
                f"callbacks holds the class {callback.__name__}; pass an object of it, "
                f"e.g. {callback.__name__}(...)"
            )
        if not (callable(callback) or has_hooks(callback)):
            raise DescendTypeError(
                "each callback must be a function callback(epoch, history) or an object "
                "with on_train_begin(logs), on_epoch_end(epoch, logs) or "
                f"on_train_end(logs), got {type(callback).__name__}"
            )
    return callbacks


class EarlyStopping(Callback):
    """``fit``'s early stopping, as an object (Keras's ``EarlyStopping``).

    ``fit(..., callbacks=[EarlyStopping(patience=5)])`` is ``fit(..., patience=5)``: the
    same rule, checked by the same table (``patience`` an integer >= 1, ``min_delta``
    >= 0), with the same result. Training stops when the validation loss (the training
    loss without validation data) has not improved by more than ``min_delta`` for
    ``patience`` epochs; with ``restore_best`` (Keras's ``restore_best_weights``) the
    best epoch's weights are returned. Defaults are ``fit``'s. Give early stopping one
    way: with this object in ``callbacks``, ``fit``'s own ``patience``, ``min_delta``
    and ``restore_best`` must be left at their defaults (or equal the object's).
    """

    def __init__(self, patience: int = 10, *, min_delta: float = 1e-4, restore_best: bool = True):
        self.patience, self.min_delta, self.restore_best = patience, min_delta, restore_best

    def settings(self) -> dict[str, Any]:
        """``fit``'s keywords that this object stands for."""
        return {
            "patience": self.patience,
            "min_delta": self.min_delta,
            "restore_best": self.restore_best,
        }

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(patience={self.patience!r}, min_delta={self.min_delta!r}, "
            f"restore_best={self.restore_best!r})"
        )


class Checkpoint(Callback):
    """Save the run with :func:`descend.save` while it trains (Keras's ``ModelCheckpoint``).

    After every ``every``-th epoch the run as it stands (weights, optimizer state,
    history, early stopping's count; status ``"running"``) replaces the file at
    ``path``, written atomically as ``save`` writes it (temp file, fsync, rename), so a
    crash leaves the last whole file and ``fit(..., resume=path)`` continues from it;
    when training stops, the file holds the result ``fit`` returns, the same file as
    ``descend.save(path, result)``.

    Parameters
    ----------
    path:
        The checkpoint file; its folder is created if needed.
    every:
        Epochs between two saves, an integer >= 1 (saving costs a copy of the weights
        to the host and a file write).
    """

    def __init__(self, path: str | os.PathLike, *, every: int = 1):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise InputError(f"every must be an integer >= 1, got {every!r}")
        self.path, self.every = Path(path), every

    def on_train_begin(self, logs: dict[str, float]) -> None:
        _make_folder(self.path.parent, f"the checkpoint {str(self.path)!r}")

    def due(self, epoch: int) -> bool:
        """Whether the run is saved after ``epoch``."""
        return epoch % self.every == 0

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r}, every={self.every})"


class CSVLogger(Callback):
    """Write each epoch's numbers as a row of a CSV file (Keras's ``CSVLogger``).

    The header is ``epoch`` and the history's names (``loss``, ``val_loss``, ...), one
    row per epoch, each number written with Python's shortest round-trip digits, so
    the file read back equals the result's ``history``. The file is opened for each row
    and closed again: a run that stops or crashes leaves every finished epoch's row.

    Parameters
    ----------
    path:
        The CSV file; its folder is created if needed.
    separator:
        The delimiter, one character (default ``","``).
    append:
        Add to an existing file (its header kept) instead of starting afresh: for a
        continued run (``resume=``, ``init=``), whose epochs go on counting.
    """

    def __init__(self, path: str | os.PathLike, *, separator: str = ",", append: bool = False):
        if not isinstance(separator, str) or len(separator) != 1:
            raise InputError(f"separator must be one character, got {separator!r}")
        self.path, self.separator, self.append = Path(path), separator, append

    def on_train_begin(self, logs: dict[str, float]) -> None:
        _make_folder(self.path.parent, f"the CSV log {str(self.path)!r}")
        if self.append:
            return
        try:
            self.path.write_text("")
        except OSError as error:
            raise _unwritable(f"the CSV log {str(self.path)!r}", error) from None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="") as handle:
            writer = csv.writer(handle, delimiter=self.separator)
            if fresh:
                writer.writerow(["epoch", *logs])
            writer.writerow([epoch, *(repr(float(value)) for value in logs.values())])

    def __repr__(self) -> str:
        return f"CSVLogger({str(self.path)!r})"


class TensorBoard(Callback):
    """Write each epoch's numbers as TensorBoard scalars (needs ``tensorboardX``).

    One event file in ``log_dir`` (``tensorboard --logdir DIR`` shows it): every number
    of the epoch's ``logs`` under its history name as the tag (``loss``, ``val_loss``,
    ``accuracy``, ``lr``, ...), at step ``epoch``. Events are flushed after every epoch,
    and the file is closed when training ends.

    Raises
    ------
    InputError
        ``tensorboardX`` is not installed (``pip install "descend[tensorboard]"``).
    """

    def __init__(self, log_dir: str | os.PathLike):
        _tensorboardx()  # say now, not after the first epoch, that it is missing
        self.writer: Any  # a tensorboardX SummaryWriter (untyped) from on_train_begin
        self.log_dir, self.writer = Path(log_dir), None

    def on_train_begin(self, logs: dict[str, float]) -> None:
        _make_folder(self.log_dir, f"the TensorBoard folder {str(self.log_dir)!r}")
        if self.writer is not None:
            self.writer.close()
        try:
            self.writer = _tensorboardx().SummaryWriter(logdir=str(self.log_dir))
        except OSError as error:
            raise _unwritable(f"the TensorBoard folder {str(self.log_dir)!r}", error) from None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        for tag, value in logs.items():
            self.writer.add_scalar(tag, float(value), global_step=epoch)
        self.writer.flush()

    def on_train_end(self, logs: dict[str, float]) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __repr__(self) -> str:
        return f"TensorBoard({str(self.log_dir)!r})"


def _tensorboardx():
    try:
        import tensorboardX
    except ImportError:
        raise InputError(
            'TensorBoard logs need the tensorboardX package: pip install "descend[tensorboard]"'
        ) from None
    return tensorboardX


def _make_folder(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _unwritable(what, error) from None
    if not os.access(folder, os.W_OK):
        raise _unwritable(what, PermissionError("permission denied"))


def _unwritable(what: str, error: OSError) -> InputError:
    reason = error.strerror or str(error)
    return InputError(f"cannot write {what}: {reason}; give a path in a folder you can write")


__all__ = [
    "CSVLogger",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "TensorBoard",
    "check",
    "has_hooks",
]
