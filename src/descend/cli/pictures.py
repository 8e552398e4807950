"""The pictures behind ``--plot``: saved by ``minimize``, ``functions`` and ``train``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_minimize(result: Any, target: Any, path: str) -> Path:
    """``descend minimize ... --plot PATH``: the path over the function (1 or 2 variables),
    else the value and gradient norm per iteration. Returns the path written."""
    from descend import plot

    recorded = result.history.get("x")
    drawable = isinstance(recorded, np.ndarray) and np.size(recorded[0]) in (1, 2)
    figure = plot.path(result, target) if drawable else plot.loss_curves(result)
    return plot.save(figure, path)


def plot_function(name: str, path: str, dim: int | None = None) -> Path:
    """``descend functions NAME --plot PATH``: the test function's contours and minimizers."""
    from descend import functions, plot

    return plot.save(plot.function(functions.get(name, dim)), path)


def plot_history(history: Any, path: str) -> Path:
    """``descend train ... --plot PATH``: loss curves (and lr, gradient norm when recorded)."""
    from descend import plot

    return plot.save(plot.loss_curves(history), path)
