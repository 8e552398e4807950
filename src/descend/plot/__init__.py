"""Pictures of gradient descent: paths on contour maps, tangents, loss curves, races.

Every function draws on a :class:`matplotlib.figure.Figure` with the Agg canvas, never
through ``pyplot``: it works without a display and leaves the user's backend alone.
Each returns the Figure; given ``ax=``, it draws into that Axes and returns its figure.

>>> import descend as ds
>>> from descend import plot
>>> result = ds.minimize("booth", optimizer="gd")
>>> fig = plot.path(result, "booth")
>>> sorted(line.get_gid() for line in fig.axes[0].get_lines() if line.get_gid())
['end:gd', 'minimizers', 'path:gd', 'start:gd']
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import animation
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from descend.errors import DescendTypeError, InputError, check_int
from descend.plot import draw, frames, updates
from descend.plot.target import resolve
from descend.plot.updates import compare_methods as compare_methods

Levels = int | Sequence[float]
Bounds = Sequence[tuple[float, float]]


def path(
    results: Any,
    f: Any = None,
    *,
    ax: Axes | None = None,
    levels: Levels = 30,
    log_levels: bool = True,
    bounds: Bounds | None = None,
    title: str | None = None,
    tangents: int = 3,
) -> Figure:
    r"""Draw each optimizer's path over the function it minimized.

    Two variables: filled contours of :math:`f - f_{\min}` on levels spaced evenly in
    :math:`\log(f - f_{\min})` between the least and greatest value on the grid
    (:math:`f_{\min}` is the known minimum, else the grid's least value), known
    minimizers as stars, each path as a line through its iterates, its start (square)
    and end (cross), and a legend with each optimizer, its iterations and final value.

    One variable: the curve, the iterates :math:`(x_k, f(x_k))` on it, and at up to
    ``tangents`` of them the tangent :math:`y = f(x_k) + f'(x_k)(x - x_k)` (derivative
    by JAX autodiff) with the step's direction: gradient descent moves against the
    derivative, left where :math:`f'(x_k) > 0` and right where :math:`f'(x_k) < 0`.

    Parameters
    ----------
    results:
        A :class:`~descend.MinimizeResult` with its path (``history["x"]``), a list of
        them, a dict ``{label: result}`` or a :class:`~descend.plot.racing.CompareResult`.
    f:
        The function: test-function name, expression text, ``TestFunction``,
        ``Expression`` or a function of one point. Default: a race's function, else none
        (the paths alone).
    ax:
        A matplotlib Axes to draw into (no colour bar is added). Default: a new figure.
    levels:
        Number of contour levels, >= 2 (default 30), or the levels themselves (values of f).
    log_levels:
        Space the levels logarithmically (default) or linearly.
    bounds:
        ``[(low, high)]`` per variable. Default: the test function's plotting range
        (widened to show every start), else the extent of the paths.
    title:
        Default: the function's name.
    tangents:
        Most tangents per run on a one-variable picture, >= 0 (default 3).

    Examples
    --------
    >>> import descend as ds
    >>> from descend import plot
    >>> result = ds.minimize("x**2 - 2*x", 3.0, optimizer=ds.optim.gd(lr=0.25))
    >>> fig = plot.path(result, "x**2 - 2*x")
    >>> [line.get_gid() for line in fig.axes[0].get_lines()][:3]
    ['curve', 'iterates:gd', 'tangent:gd:0']
    """
    scene = draw.scene_of(results, f, bounds)
    own = ax is None
    fig, ax = draw.new_figure((6.4, 5.2)) if ax is None else (_figure_of(ax), ax)
    draw.draw_background(ax, scene, levels, log_levels, colorbar=own)
    if scene.dim == 2:
        draw.draw_paths(ax, scene)
    else:
        draw.draw_iterates(ax, scene, check_int("tangents", tangents, minimum=0))
    ax.set_title(title if title is not None else (scene.target.name if scene.target else ""))
    ax.legend(loc="best", fontsize="small", framealpha=0.85)
    if scene.dim == 1:
        draw.place_labels(ax)
    return fig


def function(
    f: Any,
    *,
    ax: Axes | None = None,
    bounds: Bounds | None = None,
    levels: Levels = 30,
    log_levels: bool = True,
    title: str | None = None,
) -> Figure:
    """Draw a function of one or two variables alone: its contours (or curve) and minimizers.

    Parameters are as for :func:`path`. ``bounds`` is needed for an expression or a plain
    function (which have no plotting range); for a plain function it also gives the
    number of variables.

    Examples
    --------
    >>> from descend import plot
    >>> fig = plot.function("himmelblau")
    >>> len(fig.axes[0].get_lines()[0].get_xdata())  # its four minimizers
    4
    """
    target = resolve(f)
    dim = target.dim if target.dim is not None else None if bounds is None else len(bounds)
    if bounds is None and target.bounds is None:
        raise InputError(
            f"{target.name!r} has no plotting range: give bounds=[(low, high), ...], one "
            "pair per variable"
        )
    if dim not in (1, 2):
        raise InputError(f"function draws functions of 1 or 2 variables; {target.name!r} has {dim}")
    shape = () if target.dim is None and dim == 1 else (dim,)
    scene = draw.Scene(target, [], [], shape, dim, draw.bounds_of(bounds, target, [], dim))
    own = ax is None
    fig, ax = draw.new_figure((6.4, 5.2)) if ax is None else (_figure_of(ax), ax)
    draw.draw_background(ax, scene, levels, log_levels, colorbar=own)
    ax.set_title(title if title is not None else target.name)
    if target.minimizers:
        ax.legend(loc="best", fontsize="small", framealpha=0.85)
    return fig


METRIC_NAMES = {"accuracy": "accuracy", "r2": "R²"}


def loss_curves(history: Any, *, ax: Axes | None = None, log_scale: bool = True) -> Figure:
    """The story of a training run: loss and metric per epoch, training and validation.

    Panels, in reading order (two per row): the loss (training, validation, and the
    epoch of the best validation loss, which early stopping restores, marked on every
    panel); the metric the history holds (``accuracy`` or ``r2``, training and
    ``val_``-prefixed validation); the learning rate, only when it changes during the
    run (a constant rate is said in the loss panel's title instead); the gradient norm.

    Parameters
    ----------
    history:
        A dict of per-epoch arrays: ``"loss"`` and optionally ``"val_loss"``,
        ``"accuracy"`` / ``"r2"`` and ``"val_accuracy"`` / ``"val_r2"``, ``"lr"``,
        ``"grad_norm"``, ``"epoch"`` (the x-axis; default 1, 2, ...), or any object with
        such a ``.history`` (a :class:`~descend.FitResult`). A minimize history
        (``"value"`` and ``"grad_norm"`` per iteration) is drawn the same way, per
        iteration.
    ax:
        Draw only the loss panel into this Axes. Default: a new figure with every panel.
    log_scale:
        Log y-axes for the loss, learning rate and gradient norm where the values are
        >= 0 (default True); the metric is always linear.

    Raises
    ------
    DescendTypeError
        ``history`` is not a dict (nor has one as ``.history``).
    InputError
        It has no ``"loss"`` (nor ``"value"``) entry.

    Examples
    --------
    >>> from descend import plot
    >>> fig = plot.loss_curves({"loss": [1.0, 0.5, 0.3], "accuracy": [0.6, 0.8, 0.9],
    ...                         "lr": [0.1, 0.1, 0.01]})
    >>> [a.get_ylabel() for a in fig.axes]
    ['loss', 'accuracy', 'learning rate']
    """
    history = getattr(history, "history", history)
    if not isinstance(history, Mapping):
        raise DescendTypeError(
            "history must be a dict of arrays (or have one as .history), got "
            f"{type(history).__name__}"
        )
    key = "loss" if "loss" in history else "value" if "value" in history else None
    if key is None:
        raise InputError(f"history has no 'loss' entry; its keys: {', '.join(map(str, history))}")
    loss = np.asarray(history[key], dtype=float).ravel()
    unit = "epoch" if key == "loss" else "iteration"
    steps = np.asarray(history.get("epoch", np.arange(loss.size) + (key == "loss")), float)
    metric = next((name for name in METRIC_NAMES if name in history), None)
    rates = np.asarray(history.get("lr", []), dtype=float).ravel()
    finite_rates = rates[np.isfinite(rates)]
    rate_changes = finite_rates.size > 1 and bool(finite_rates.min() < finite_rates.max())
    panels = ["loss"]
    if ax is None:
        panels += [metric] if metric else []
        panels += ["lr"] if rate_changes else []
        panels += ["grad_norm"] if "grad_norm" in history else []
        ncols = min(len(panels), 2)
        nrows = -(-len(panels) // 2)
        fig, axes = draw.new_figure((5.2 * ncols, 3.4 * nrows), nrows=nrows, ncols=ncols)
        axes = axes if isinstance(axes, list) else [axes]
        for spare in axes[len(panels) :]:
            spare.remove()
        axes = axes[: len(panels)]
    else:
        fig, axes = _figure_of(ax), [ax]
    by_name = dict(zip(panels, axes, strict=True))
    loss_ax = by_name["loss"]
    label = "train" if key == "loss" else "f(x_k)"
    loss_ax.plot(steps, loss, color="C0", label=label, gid="loss")
    curves, best = [loss], None
    if "val_loss" in history:
        val = np.asarray(history["val_loss"], dtype=float).ravel()
        loss_ax.plot(steps[: val.size], val, color="C1", label="validation", gid="val_loss")
        if np.isfinite(val).any():
            best = int(np.nanargmin(np.where(np.isfinite(val), val, np.nan)))
            loss_ax.plot(steps[best], val[best], "o", color="C1", mec="black", gid="best_val")
        curves.append(val)
    draw.log_if_positive(loss_ax, log_scale, *curves)
    loss_ax.set_ylabel("loss" if key == "loss" else "value")
    if rates.size and not rate_changes and ax is None:
        loss_ax.set_title(f"learning rate {rates[0]:g} throughout", fontsize="small")
    if metric in by_name:
        _metric_panel(by_name[metric], history, metric, steps)
    names = {"lr": "learning rate", "grad_norm": "gradient norm"}
    for name in ("lr", "grad_norm"):
        if name in by_name:
            values = np.asarray(history[name], dtype=float).ravel()
            by_name[name].plot(steps[: values.size], values, color="C2", gid=name)
            by_name[name].set_ylabel(names[name])
            draw.log_if_positive(by_name[name], log_scale, values)
    for panel in axes:
        if best is not None:
            note = f"best validation loss ({unit} {steps[best]:g})" if panel is loss_ax else None
            panel.axvline(steps[best], color="0.5", ls=":", lw=1, label=note, gid="best_epoch")
        panel.set_xlabel(unit)
        panel.grid(True, alpha=0.3)
    loss_ax.legend(fontsize="small")
    return fig


def lr_find(result: Any, *, ax: Axes | None = None, suggestion: bool = True) -> Figure:
    """The learning-rate range test: the loss against the rate, on a log axis of rates.

    The loss of every update (thin, pale) and the smoothed loss (the curve read), from
    an :class:`~descend.plot.lr_finder.LRFinderResult` (:func:`descend.lr_find`); the
    suggested rate, where the smoothed loss falls fastest, is marked with a dot on the
    curve and named in the legend. The y-axis spans the smoothed loss: the raw losses'
    spikes beyond it are cut.

    Parameters
    ----------
    result:
        The range test's result (anything with ``lrs``, ``losses``, ``smoothed`` and
        ``suggestion_index``).
    ax:
        A matplotlib Axes to draw into. Default: a new figure.
    suggestion:
        Mark the suggested rate (default True).

    Raises
    ------
    DescendTypeError
        ``result`` is not a range test's result.

    Examples
    --------
    >>> import numpy as np, descend as ds
    >>> X = np.random.default_rng(0).normal(size=(128, 2)); y = X @ np.array([1.0, 2.0])
    >>> fig = ds.plot.lr_find(ds.lr_find("linear", X, y, optimizer="sgd", num_iter=60))
    >>> fig.axes[0].get_xscale(), fig.axes[0].get_xlabel()
    ('log', 'learning rate')
    """
    if not all(hasattr(result, name) for name in ("lrs", "losses", "smoothed")):
        raise DescendTypeError(
            "lr_find draws the result of descend.lr_find (with lrs, losses and smoothed), "
            f"got {type(result).__name__}"
        )
    lrs = np.asarray(result.lrs, dtype=float)
    losses = np.asarray(result.losses, dtype=float)
    smoothed = np.asarray(result.smoothed, dtype=float)
    if ax is None:
        fig, ax = draw.new_figure((5.6, 3.6))
    else:
        fig = _figure_of(ax)
    ax.plot(lrs, losses, color="C0", alpha=0.3, lw=0.8, label="loss", gid="losses")
    ax.plot(lrs, smoothed, color="C0", label="smoothed loss", gid="smoothed")
    index = getattr(result, "suggestion_index", None)
    if suggestion and index is not None:
        ax.plot(
            lrs[index], smoothed[index], "o", color="C3", mec="black", gid="suggestion",
            label=f"steepest descent: lr {lrs[index]:.3g}",
        )  # fmt: skip
    finite = smoothed[np.isfinite(smoothed)]
    if finite.size:  # the smoothed loss's span: the raw losses' spikes are cut
        low, high = float(finite.min()), float(finite.max())
        pad = 0.05 * (high - low) or 0.05 * abs(low) or 1.0
        ax.set_ylim(low - pad, high + pad)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def sweep(result: Any, *, by: str | None = None) -> Figure:
    """A sweep (:class:`~descend.Sweep`): its score against the hyperparameter, and the
    loss curve of every configuration.

    Left, each configuration's score (``by``, default the one it is ranked by:
    ``val_loss``, ``loss`` or ``fun``; for a fit, that of the weights it keeps, the
    restored epoch's with early stopping) against the first swept hyperparameter, on a
    log axis for rates and strengths (``lr``, ``weight_decay``, ``l2``, ``eps``), one
    line per combination of the others, the scores on a log axis too when they span
    more than two decades (a diverged configuration beside converged ones); the best
    configuration ringed. Right, the loss
    (``fit``: the validation loss where there is one, else the training loss; ``minimize``:
    the value) of every configuration per epoch or iteration, on a log axis where it is
    positive, the best one thick.

    Raises
    ------
    DescendTypeError
        ``result`` is not a Sweep.

    Examples
    --------
    >>> import numpy as np, descend as ds
    >>> from descend import plot
    >>> X = np.random.default_rng(0).normal(size=(40, 2)); y = X.sum(axis=1)
    >>> fig = plot.sweep(ds.fit("linear", X, y, lr=[0.01, 0.1], epochs=3, verbose=0))
    >>> fig.axes[0].get_xscale(), fig.axes[0].get_xlabel()
    ('log', 'lr')
    """
    from descend import sweeps

    if not isinstance(result, sweeps.Sweep):
        raise DescendTypeError(f"plot.sweep draws a Sweep, got {type(result).__name__}")
    key = by or result.ranked_by
    name, others = result.names[0], result.names[1:]
    fig, (score_ax, curves_ax) = draw.new_figure((11.0, 4.2), ncols=2)
    values = result.values(key)
    groups: dict[str, list[int]] = {}
    for index, configuration in enumerate(result.configurations):
        rest = {other: configuration[other] for other in others}
        groups.setdefault(sweeps.label(rest), []).append(index)
    numeric = all(np.ndim(c[name]) == 0 for c in result.configurations)
    for number, (label, members) in enumerate(groups.items()):
        xs = [result.configurations[i][name] if numeric else i for i in members]
        score_ax.plot(xs, values[members], "o-", color=f"C{number % 10}", label=label or None,
                      gid="score")  # fmt: skip
    best = result.best_index
    best_x = result.configurations[best][name] if numeric else best
    score_ax.plot([best_x], [values[best]], "o", ms=12, mfc="none", mec="black", gid="best")
    positive = numeric and all(float(c[name]) > 0 for c in result.configurations)
    if positive and name in sweeps.LOG_SCALED:
        score_ax.set_xscale("log")
    if not numeric:
        score_ax.set_xticks(range(len(result)))
        score_ax.set_xticklabels([sweeps.label({name: c[name]}) for c in result.configurations],
                                 rotation=30, fontsize="small")  # fmt: skip
    # Losses and values spanning decades (a diverged configuration's next to converged
    # ones) on a log axis, as the curves are; accuracy and R^2 stay linear.
    finite = values[np.isfinite(values)]
    spread = finite.size and finite.min() > 0 and finite.max() / finite.min() > 100
    draw.log_if_positive(score_ax, bool(spread) and key not in sweeps.HIGHER_IS_BETTER, values)
    score_ax.set_xlabel(name)
    score_ax.set_ylabel(f"{key} (of the weights kept)" if key != "fun" else "final value")
    if len(groups) > 1:
        score_ax.legend(fontsize="small")
    curve_key = "value"
    for index, (run, configuration) in enumerate(zip(result, result.configurations, strict=True)):
        curves = sweeps.curves(run)
        curve_key = "val_loss" if "val_loss" in curves else next(iter(curves), "loss")
        line = curves.get(curve_key, np.zeros(0))
        steps = np.arange(line.size) + (curve_key != "value")
        curves_ax.plot(steps, line, lw=2.5 if index == best else 1.0, color=f"C{index % 10}",
                       label=sweeps.label(configuration), gid="curve")  # fmt: skip
    draw.log_if_positive(curves_ax, True, *[sweeps.curves(run).get(curve_key, np.zeros(0))
                                            for run in result])  # fmt: skip
    curves_ax.set_xlabel("iteration" if curve_key == "value" else "epoch")
    curves_ax.set_ylabel(curve_key)
    curves_ax.legend(fontsize="x-small", ncols=1 + len(result) // 8)
    for ax in (score_ax, curves_ax):
        ax.grid(True, alpha=0.3)
    return fig


def _metric_panel(ax: Axes, history: Mapping, metric: str, steps: np.ndarray) -> None:
    """Training and validation metric per epoch, on a linear axis (R² may be negative)."""
    for name, color, label in ((metric, "C0", "train"), (f"val_{metric}", "C1", "validation")):
        if name in history:
            values = np.asarray(history[name], dtype=float).ravel()
            ax.plot(steps[: values.size], values, color=color, label=label, gid=name)
    ax.set_ylabel(METRIC_NAMES[metric])
    ax.legend(fontsize="small")


def race(result: Any, *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    r"""Draw an optimizer race: every path on one contour map, every value curve on one panel.

    The map (two-variable problems) is :func:`path` of all runs. The curves panel shows
    :math:`f(x_k) - f^*` per iteration (:math:`f(x_k)` when the minimum is unknown) on a
    log scale (linear if some values are negative), with the tolerance and the iteration
    each run met it; each run has the same colour in both panels.

    Parameters
    ----------
    result:
        A :class:`~descend.plot.racing.CompareResult`.
    ax:
        One Axes (the map for a two-variable problem, else the value curves) or a pair
        ``(map_ax, curves_ax)``. Default: a new figure with both panels.

    Examples
    --------
    >>> from descend import plot
    >>> from descend.plot.racing import compare
    >>> fig = plot.race(compare("booth", ["gd", "momentum"], max_iter=300))
    >>> len(fig.axes)  # map, its colour bar, value curves
    3
    """
    if not hasattr(result, "rows") or not hasattr(result, "results"):
        raise DescendTypeError(
            f"race draws the result of descend.compare, got {type(result).__name__}"
        )
    two_d = result.target is not None and all(
        np.ndim(r.history.get("x")) == 2 and np.shape(r.history["x"])[1] == 2
        for r in result.results.values()
    )
    if ax is None:
        fig, axes = draw.new_figure((12.8, 5.2) if two_d else (6.4, 4.8), ncols=1 + two_d)
        map_ax, curves_ax = (axes[0], axes[1]) if isinstance(axes, list) else (None, axes)
        colorbar = True
    elif isinstance(ax, Sequence) and len(ax) == 2:
        fig, (map_ax, curves_ax), colorbar = _figure_of(ax[0]), ax, False
    else:
        if isinstance(ax, Sequence):
            raise DescendTypeError(
                f"race draws into one Axes or a pair (map_ax, curves_ax), got a sequence of "
                f"{len(ax)}"
            )
        fig, map_ax, curves_ax, colorbar = _figure_of(ax), ax, None, False
        if not two_d:
            map_ax, curves_ax = None, ax
    if map_ax is not None and two_d:
        scene = draw.scene_of(result, result.target, None)
        draw.draw_background(map_ax, scene, 30, True, colorbar=colorbar)
        draw.draw_paths(map_ax, scene)
        map_ax.set_title(result.problem)
        map_ax.legend(loc="best", fontsize="small", framealpha=0.85)
    if curves_ax is not None:
        draw.draw_values(curves_ax, result)
    return fig


def animate(
    results: Any,
    f: Any = None,
    *,
    path: str | os.PathLike,
    fps: int = 15,
    max_frames: int = 150,
    dpi: int = 80,
    size: tuple[float, float] | None = None,
    bounds: Bounds | None = None,
    levels: Levels = 30,
    log_levels: bool = True,
    title: str | None = None,
    values: bool = True,
    verbose: int = 1,
) -> Figure:
    r"""Draw the paths growing step by step, on one clock for every run, and save the animation.

    Frames show iterations spaced evenly in :math:`\log(1 + k)` (see
    :func:`descend.plot.frames.frame_iterations`): each of the first iterations has its
    frame and a long run's tail is sampled sparsely, so a 40-step L-BFGS and a
    3000-step Adam both visibly move. The figure's title counts the iteration; the
    value panel beside the map draws each run's :math:`f(x_k) - f^*` (:math:`f(x_k)`
    when the minimum is unknown) up to the current iteration and prints its current
    value. A run that has finished stays at its last point.

    Parameters
    ----------
    results, f, bounds, levels, log_levels, title:
        As for the function ``path`` above.
    path:
        The file: ``.gif`` (written with Pillow) or ``.mp4`` (needs ffmpeg installed).
    fps:
        Frames per second, >= 1 (default 15). A GIF holds its last frame 1.5 s.
    max_frames:
        Most frames, >= 2 (default 150).
    dpi, size:
        Resolution and size in inches (default 80 and 11.2 x 4.4 with the value panel,
        6.4 x 5.2 without).
    values:
        Draw the value panel (default True).
    verbose:
        0 silent; 1 (default) a progress bar of the frames on stderr when it is a
        terminal; 2 one line per frame.

    Notes
    -----
    Returns the Figure as in its last frame. The file is complete or absent: it is
    written under a temporary name, then renamed.

    Examples
    --------
    >>> import descend as ds, tempfile, os
    >>> from descend import plot
    >>> result = ds.minimize("booth", optimizer="gd")
    >>> gif = os.path.join(tempfile.mkdtemp(), "booth.gif")
    >>> _ = plot.animate(result, "booth", path=gif, max_frames=3, levels=5)
    >>> os.path.getsize(gif) > 0
    True
    """
    from descend.engine.progress import Progress

    target_path = Path(path)
    suffix = target_path.suffix.lower()
    fps = check_int("fps", fps)
    if suffix == ".mp4" and not animation.writers.is_available("ffmpeg"):
        raise InputError(
            f"writing {target_path.name!r} needs ffmpeg, which is not installed; "
            "install it, or give a .gif path"
        )
    if suffix not in (".gif", ".mp4"):
        raise InputError(f"animate writes .gif or .mp4 files, got {target_path.name!r}")
    max_frames = check_int("max_frames", max_frames, minimum=2)
    verbose = check_int("verbose", verbose, minimum=0)
    scene = draw.scene_of(results, f, bounds)
    movie = frames.build(
        scene,
        size=size if size is not None else (11.2, 4.4) if values else (6.4, 5.2),
        levels=levels,
        log_levels=log_levels,
        title=title if title is not None else (scene.target.name if scene.target else ""),
        max_frames=max_frames,
        values=bool(values),
    )
    movie.fig.set_dpi(dpi)
    movie.fig.canvas.draw()  # at the file's resolution: the blitted background is its pixels

    def write(temporary: str) -> None:
        total = len(movie.frames)
        with Progress(verbose, unit="frame", total=total) as progress:

            def advance(done: int) -> None:
                progress.update(done, f"rendering {target_path.name}")

            if suffix == ".gif":
                images = frames.render(movie, advance)
                frames.write_gif(images, temporary, fps)
                return
            writer = animation.FFMpegWriter(fps=fps)
            with writer.saving(movie.fig, temporary, dpi):
                for done, iteration in enumerate(movie.frames, start=1):
                    movie.update(int(iteration))
                    writer.grab_frame()
                    advance(done)

    _write_atomically(target_path, write)
    return movie.fig


def methods(
    results: Mapping[str, Any],
    *,
    ax: Sequence[Axes] | None = None,
    log_scale: bool = True,
) -> Figure:
    """Batch, stochastic and mini-batch gradient descent: each run's loss against the
    updates it made and against the epochs it took.

    The left panel places each epoch's training loss at the number of updates made so
    far (log scale: batch descent makes one update an epoch, stochastic one per row);
    the right panel at the epoch. Per update, batch descent's steps are the surest;
    per epoch (per pass over the data, the cost of the gradients), stochastic and
    mini-batch descent get further.

    It takes finished runs, not a model and data, so that it draws any runs the way
    every other picture draws results (``loss_curves``, ``race``), and training stays
    where its many options are: :func:`compare_methods` trains the three runs
    (``descend train --compare-methods`` does both).

    Parameters
    ----------
    results:
        ``{label: FitResult}``, e.g. ``compare_methods(model, X, y)``; any number of
        runs, each with at least one epoch.
    ax:
        A pair ``(updates_ax, epochs_ax)`` to draw into. Default: a new figure with both.
    log_scale:
        Log y-axes where the losses are >= 0 (default True).

    Raises
    ------
    DescendTypeError
        ``results`` is not a non-empty dict of :class:`~descend.FitResult`.
    InputError
        A run without an epoch.

    Examples
    --------
    >>> import numpy as np
    >>> from descend import plot
    >>> X = np.random.default_rng(0).normal(size=(64, 2)); y = X @ [1.0, -1.0]
    >>> runs = plot.compare_methods("linear", X, y, batch_size=8, epochs=3)
    >>> fig = plot.methods(runs)
    >>> [a.get_xlabel() for a in fig.axes]
    ['updates (weight changes)', 'epochs']
    """
    runs = updates.check_runs(results)
    if ax is None:
        fig, (updates_ax, epochs_ax) = draw.new_figure((11.2, 4.2), ncols=2)
    elif isinstance(ax, Sequence) and len(ax) == 2:
        fig, (updates_ax, epochs_ax) = _figure_of(ax[0]), ax
    else:
        raise DescendTypeError(
            f"ax must be a pair (updates_ax, epochs_ax), got {type(ax).__name__}"
        )
    updates.draw_methods(updates_ax, epochs_ax, runs, log_scale)
    return fig


def save(
    fig: Figure, path: str | os.PathLike, *, size: tuple[int, int] | None = None, dpi: int = 100
) -> Path:
    """Save ``fig`` to ``path`` (format from the suffix: png, svg, pdf, ...); return the path.

    Parameters
    ----------
    fig:
        The figure (from this module, or any matplotlib figure).
    path:
        The file. Written under a temporary name in the same directory, then renamed, so
        it is never left half written.
    size:
        ``(width, height)`` of the image in pixels, >= 1 each. Default: the figure's own
        size. The figure's size is restored afterwards.
    dpi:
        Dots per inch, >= 1 (default 100).

    Examples
    --------
    >>> import tempfile, os
    >>> from descend import plot
    >>> png = os.path.join(tempfile.mkdtemp(), "booth.png")
    >>> plot.save(plot.function("booth"), png, size=(320, 240)).name
    'booth.png'
    """
    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    supported = FigureCanvasAgg(Figure()).get_supported_filetypes()
    if fmt not in supported:
        raise InputError(
            f"cannot save a figure as {target.name!r}: give a path ending in one of "
            f".{', .'.join(sorted(supported))}"
        )
    dpi = check_int("dpi", dpi)
    if size is not None and (
        len(size) != 2 or not all(float(v).is_integer() and v >= 1 for v in size)
    ):
        raise InputError(f"size must be (width, height) in whole pixels >= 1, got {size!r}")
    original = fig.get_size_inches().copy()
    try:
        if size is not None:
            # A quarter pixel more, so that rounding down to whole pixels keeps the size.
            fig.set_size_inches((size[0] + 0.25) / dpi, (size[1] + 0.25) / dpi)
        _write_atomically(target, lambda temporary: fig.savefig(temporary, format=fmt, dpi=dpi))
    finally:
        fig.set_size_inches(original[0], original[1])
    return target


def _figure_of(ax: Axes) -> Figure:
    """``ax.figure``, which a function given ``ax=`` returns (a SubFigure if ``ax`` is in one)."""
    # Typed as Figure as the functions document; a SubFigure is the one exception.
    return ax.figure  # type: ignore[return-value]


def _write_atomically(target: Path, write: Callable[[str], None]) -> None:
    directory = target.parent
    if not directory.is_dir():
        raise InputError(
            f"cannot write {str(target)!r}: the directory {str(directory)!r} does not exist"
        )
    while True:
        temporary = str(directory / f".{target.stem}-{secrets.token_hex(6)}{target.suffix}")
        try:
            # Mode 0o666 less the umask, as for any new file (mkstemp would give 0o600).
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        write(temporary)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
