"""Batch, stochastic and mini-batch gradient descent side by side: the runs and their picture.

The three update methods differ only in the batch size (all rows, one row, ``n``
rows), so :func:`compare_methods` trains the same model on the same data with the
same options three times, changing only ``batch_size``; :func:`draw_methods` draws the
loss of each against the updates made and against the epochs (passes over the data).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from descend.errors import DescendTypeError, InputError, check_int

#: The three methods, in the order drawn: (label, batch_size given to ``fit``).
METHODS = ("batch", "mini-batch", "stochastic")


def compare_methods(
    model: Any, X: Any, y: Any = None, *, batch_size: int = 32, **fit_options: Any
) -> dict[str, Any]:
    """Train ``model`` by batch, mini-batch and stochastic gradient descent.

    Parameters
    ----------
    model, X, y:
        As for :func:`descend.fit`.
    batch_size:
        The mini-batch size, an int >= 2 (default 32); batch gradient descent uses all
        the training rows (``batch_size=None``) and stochastic one (``batch_size=1``).
    **fit_options:
        Any other argument of :func:`descend.fit` (``optimizer``, ``lr``, ``epochs``,
        ``seed``, ``validation_split``, ...), the same for the three runs. ``verbose``
        defaults to 0; ``method``, ``resume`` and ``init`` are refused (the runs start
        afresh and differ only in the batch size).

    Returns
    -------
    dict
        ``{"batch": FitResult, "mini-batch": FitResult, "stochastic": FitResult}``, as
        :func:`descend.plot.methods` draws it.

    Raises
    ------
    InputError
        ``batch_size`` below 2, or ``method``, ``resume``, ``init`` or ``batch_size``
        among ``fit_options``; and whatever :func:`descend.fit` raises.

    Examples
    --------
    >>> import numpy as np
    >>> from descend.plot import compare_methods
    >>> X = np.random.default_rng(0).normal(size=(64, 2)); y = X @ [1.0, -1.0]
    >>> runs = compare_methods("linear", X, y, batch_size=8, epochs=3, patience=None)
    >>> {label: run.n_updates for label, run in runs.items()}
    {'batch': 3, 'mini-batch': 24, 'stochastic': 192}
    """
    batch_size = check_int("batch_size", batch_size, minimum=2)
    refused = sorted({"method", "resume", "init"} & set(fit_options))
    if refused:
        raise InputError(
            f"compare_methods trains three fresh runs that differ only in the batch size; "
            f"leave out {', '.join(refused)}"
        )
    from descend.training import fit

    fit_options.setdefault("verbose", 0)
    sizes = {"batch": None, "mini-batch": batch_size, "stochastic": 1}
    return {label: fit(model, X, y, batch_size=sizes[label], **fit_options) for label in METHODS}


def updates_per_epoch(result: Any) -> float:
    """Updates each epoch of ``result`` made (its updates over its epochs)."""
    return result.n_updates / result.n_epochs


def check_runs(results: Any) -> dict[str, Any]:
    """``{label: FitResult}`` with a loss per epoch each, or a clear error."""
    if not isinstance(results, Mapping) or not results:
        raise DescendTypeError(
            "methods draws a non-empty dict {label: FitResult} (what "
            f"descend.plot.compare_methods returns), got {type(results).__name__}"
        )
    for label, result in results.items():
        history = getattr(result, "history", None)
        if not isinstance(history, Mapping) or not hasattr(result, "n_updates"):
            raise DescendTypeError(
                f"methods draws results of descend.fit; {label!r} is a {type(result).__name__}"
            )
        if "loss" not in history or getattr(result, "n_epochs", 0) < 1:
            raise InputError(
                f"the run {label!r} has no epoch to draw (no 'loss' in its history); train "
                "at least one epoch"
            )
    return dict(results)


def draw_methods(
    updates_ax: Axes | None, epochs_ax: Axes | None, results: Mapping[str, Any], log_scale: bool
) -> None:
    """Each run's training loss per epoch, placed at its update count on ``updates_ax``
    (log scale) and at its epoch on ``epochs_ax``; one colour per run on both."""
    from descend.plot.draw import log_if_positive

    curves = []
    for i, (label, result) in enumerate(results.items()):
        loss = np.asarray(result.history["loss"], dtype=float).ravel()
        epochs = np.asarray(result.history.get("epoch", np.arange(1, loss.size + 1)), float)
        per_epoch = updates_per_epoch(result)
        every = max(1, loss.size // 30)  # markers for the epochs, not a solid bead
        name = f"{label} ({per_epoch:.4g} update{'s' if per_epoch != 1 else ''}/epoch)"
        if updates_ax is not None:
            updates_ax.plot(
                epochs * per_epoch, loss, "-o", ms=3, color=f"C{i}", label=name, markevery=every,
                gid=f"updates:{label}",
            )  # fmt: skip
        if epochs_ax is not None:
            epochs_ax.plot(
                epochs,
                loss,
                "-o",
                ms=3,
                color=f"C{i}",
                label=name,
                markevery=every,
                gid=f"epochs:{label}",
            )
        curves.append(loss)
    for ax, unit in ((updates_ax, "updates"), (epochs_ax, "epochs")):
        if ax is None:
            continue
        log_if_positive(ax, log_scale, *curves)
        if unit == "updates":
            ax.set_xscale("log")
        ax.set_xlabel(unit if unit == "epochs" else "updates (weight changes)")
        ax.set_ylabel("training loss")
        ax.set_title(f"loss against {unit}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
