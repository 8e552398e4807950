"""The race animation: which iteration each frame shows, the frames drawn, the file written.

Frames follow one clock for every run (a race keeps one clock), spaced evenly in the
logarithm of the iteration: the first iterations, where every optimizer moves most, get
a frame each, and the long tail of a slow optimizer is sampled sparsely. With linear
spacing a race of a 42-step L-BFGS and a 3000-step Adam showed L-BFGS finished by the
second frame of 99.

A frame is drawn by blitting: the contours, colour bar, curves' axes and legend are
rendered once; each frame restores that background and draws only the artists that
move (paths, heads, value curves, the iteration counter and the value panel). That is
what makes rendering fast (see :func:`render`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text

from descend.plot import draw

READOUT_BOX = {"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1}


def frame_iterations(lengths: Sequence[int], max_frames: int) -> np.ndarray:
    """The iteration each frame shows, on one clock for all runs.

    Parameters
    ----------
    lengths:
        Points per run (iterations + 1), each >= 1.
    max_frames:
        Most frames, >= 2.

    Returns
    -------
    numpy.ndarray
        Increasing int64 iterations from 0 to ``max(lengths) - 1``: every iteration when
        there are at most ``max_frames``, else at most ``max_frames`` of them spaced
        evenly in ``log(1 + k)`` (rounded), so that the early iterations, where the
        steps are long, get the most frames.

    >>> frame_iterations([5], 10).tolist()
    [0, 1, 2, 3, 4]
    >>> frame_iterations([1000, 40], 12).tolist()
    [0, 1, 3, 6, 11, 22, 42, 80, 151, 284, 533, 999]
    """
    last = max(lengths) - 1
    if last + 1 <= max_frames:
        return np.arange(last + 1, dtype=np.int64)
    # log(1 + k) spacing rounds the first few to the same integer: ask for more points
    # while the distinct ones still fit in max_frames (a few tries: duplicates are few).
    count, best = max_frames, None
    while True:
        ks = np.unique(np.round(np.expm1(np.linspace(0.0, np.log1p(last), count))))
        if ks.size > max_frames:
            break
        best = ks
        if ks.size == max_frames:
            break
        count += max(1, (max_frames - ks.size) // 2)
    assert best is not None  # the first try has at most max_frames distinct points
    return best.astype(np.int64)


@dataclass
class Movie:
    """The figure of an animation and what moves in it.

    ``frames`` holds the iteration each frame shows; ``update(iteration)`` sets the moving
    artists (``moving``, in drawing order) to that iteration; ``heads`` are the runs'
    current points.
    """

    fig: Figure
    frames: np.ndarray
    update: Callable[[int], None]
    moving: list[Artist]
    heads: list[Any]


def head_index(length: int, iteration: int) -> int:
    """The point a run of ``length`` points shows at ``iteration``: a finished run stays
    at its last point."""
    return min(int(iteration), length - 1)


def build(
    scene: draw.Scene,
    *,
    size: tuple[float, float],
    levels: Any,
    log_levels: bool,
    title: str,
    max_frames: int,
    values: bool,
) -> Movie:
    """Lay out the animation's figure: the map (or curve) and, with ``values``, the panel of
    values per iteration; return it with the per-frame update."""
    lengths = [len(points) for points in scene.paths]
    frames = frame_iterations(lengths, max_frames)
    fig, axes = draw.new_figure(size, ncols=2 if values else 1)
    ax = axes[0] if isinstance(axes, list) else axes  # a list when values (two panels)
    draw.draw_background(ax, scene, levels, log_levels, colorbar=True)
    ax.set_title(title)
    heights = [
        points[:, 1] if scene.dim == 2 else draw.heights(scene, points, result)
        for points, (_, result) in zip(scene.paths, scene.runs, strict=True)
    ]
    trails, heads = [], []
    for i, (label, _) in enumerate(scene.runs):
        trails.append(
            ax.plot([], [], "-", lw=1.4, color=f"C{i}", label=label, gid=f"path:{label}")[0]
        )
        heads.append(ax.plot([], [], "o", ms=8, mec="black", color=f"C{i}", gid=f"head:{label}")[0])
    moving: list[Artist] = [*trails, *heads]
    tangent = None
    if scene.dim == 1 and scene.target is not None:
        tangent = ax.plot([], [], "--", color="0.4", lw=1.4, label="tangent", gid="tangent")[0]
        moving.append(tangent)
    if not values:  # with the value panel, its readouts name each run in its colour
        ax.legend(loc="upper right", fontsize="small", framealpha=0.85)
    longest = max(lengths)
    counter = fig.suptitle(f"iteration {longest - 1:,} of {longest - 1:,}", fontsize="medium")
    counter.set_gid("counter")
    moving.append(counter)
    curves: list[Line2D]
    readouts: list[Text]
    series: list[np.ndarray]
    curves, readouts, series = [], [], []
    if values:
        assert isinstance(axes, list)  # two panels
        value_ax = axes[1]
        series, unit = _value_series(scene)
        for i, (label, _) in enumerate(scene.runs):
            curves.append(value_ax.plot([], [], color=f"C{i}", lw=1.4, gid=f"values:{label}")[0])
        _value_axes(value_ax, series, unit, longest)
        # Bottom left: values fall with the iterations, so the curves rarely pass there.
        count = len(scene.runs)
        readouts = []
        for i, (label, _) in enumerate(scene.runs):
            text = value_ax.text(
                0.03, 0.04 + 0.07 * (count - 1 - i), "", transform=value_ax.transAxes,
                ha="left", va="bottom", family="monospace", fontsize="small",
                color=f"C{i}", gid=f"readout:{label}", bbox=READOUT_BOX,
            )  # fmt: skip
            readouts.append(text)
        moving += [*curves, *readouts]
    width = max((len(label) for label, _ in scene.runs), default=0)

    def update(iteration: int) -> None:
        counter.set_text(f"iteration {iteration:,} of {longest - 1:,}")
        for i, (points, y) in enumerate(zip(scene.paths, heights, strict=True)):
            k = head_index(len(points), iteration)
            trails[i].set_data(points[: k + 1, 0], y[: k + 1])
            heads[i].set_data(points[k : k + 1, 0], y[k : k + 1])
            if values:
                curve = series[i]
                curves[i].set_data(np.arange(k + 1), curve[: k + 1])
                done = " (done)" if k == len(points) - 1 else ""
                readouts[i].set_text(f"{scene.runs[i][0]:<{width}}  {curve[k]:9.3g}{done:7}")
        if tangent is not None:
            x = scene.paths[0][head_index(len(scene.paths[0]), iteration), 0]
            tangent.set_data(*draw.tangent_segment(scene, x)[:2])

    # What lies above the paths (the legend, the minimizer's star) is drawn with them, after
    # them, in each frame: in the background it would end up beneath them.
    # (Text is most of a frame's cost: the legend is kept off the map when it can be.)
    above: list[Artist] = [line for line in ax.get_lines() if line.get_gid() == "minimizers"]
    above += [legend] if (legend := ax.get_legend()) is not None else []
    moving = sorted(moving, key=Artist.get_zorder) + above
    for artist in moving:
        artist.set_animated(True)
    update(longest - 1)  # the widest texts, so that the layout leaves room for them
    # Lay the figure out once: frames differ only in the moving artists, not in margins.
    fig.canvas.draw()
    fig.set_layout_engine("none")
    return Movie(fig, frames, update, moving, heads)


def _value_series(scene: draw.Scene) -> tuple[list[np.ndarray], str]:
    """Each run's value per iteration, minus the known minimum when there is one."""
    target = scene.target
    minimum = None if target is None else target.minimum
    series = []
    for (_, result), points in zip(scene.runs, scene.paths, strict=True):
        recorded = result.history.get("value")
        value = (
            np.asarray(recorded, float)
            if recorded is not None and np.size(recorded) == len(points)
            else draw.evaluate(scene, points)
            if target is not None
            else np.full(len(points), np.nan)
        )
        series.append(value - (minimum or 0.0))
    return series, "f(x_k) - f*" if minimum is not None else "f(x_k)"


def _value_axes(ax: Any, series: list[np.ndarray], unit: str, longest: int) -> None:
    """Fixed limits (blitting redraws the curves, never the axes): every value, every
    iteration, on a log scale when the values allow it."""
    ax.set_xlim(0, max(longest - 1, 1))
    if longest > 20:
        ax.set_xscale("symlog", linthresh=10)
    finite = np.concatenate([s[np.isfinite(s)] for s in series] + [np.zeros(0)])
    if draw.log_if_positive(ax, True, finite):
        positive = finite[finite > 0]
        low, high = positive.min(), positive.max()
        ax.set_ylim(low / 3, high * 3 if high > low else low * 10)
    elif finite.size:
        low, high = finite.min(), finite.max()
        pad = 0.05 * (high - low) if high > low else 1.0
        ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("iteration")
    ax.set_ylabel(unit)
    ax.set_title("value per iteration")
    ax.grid(True, alpha=0.3)


def render(movie: Movie, progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """Every frame as an ``(height, width, 3)`` uint8 RGB array, drawn by blitting.

    The figure's background is drawn once; each frame restores it and draws the moving
    artists alone (measured on the README's race: see the notes in
    ``descend.plot.animate``). ``progress(done)`` is called after each frame.
    """
    fig = movie.fig
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)  # build made the figure with draw.new_figure
    background = canvas.copy_from_bbox(fig.bbox)
    images = []
    for done, iteration in enumerate(movie.frames, start=1):
        canvas.restore_region(background)
        movie.update(int(iteration))
        for artist in movie.moving:
            fig.draw_artist(artist)
        images.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
        if progress is not None:
            progress(done)
    return images


def write_gif(images: list[np.ndarray], path: str, fps: int, hold_s: float = 1.5) -> None:
    """Write ``images`` as a looping GIF with one palette, holding the last frame ``hold_s``.

    One palette for all frames, taken from the last (which shows every path in full):
    quantizing each frame on its own is slower and makes colours flicker between frames.
    """
    from PIL import Image

    last = Image.fromarray(images[-1]).quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    frames = [
        Image.fromarray(image).quantize(palette=last, dither=Image.Dither.NONE) for image in images
    ]
    duration = [round(1000 / fps)] * len(frames)
    duration[-1] = max(duration[-1], round(1000 * hold_s))
    frames[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        duration=duration,
        loop=0,
        disposal=1,
    )
