"""Drawing helpers behind :mod:`descend.plot`: scenes of runs, contours, paths, tangents.

Everything here draws on a given Axes; :mod:`descend.plot` owns figures and files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, overload

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation
from matplotlib.ticker import LogFormatterSciNotation, LogLocator
from matplotlib.transforms import Bbox

from descend.errors import DescendTypeError, InputError, check_int
from descend.plot.target import Target, resolve

GRID = 200  # contour grid points per axis
CURVE = 400  # points on a one-variable curve
MARKERS = 200  # most markers drawn on one path line (the line keeps every point)
STAR: dict[str, Any] = {"marker": "*", "ls": "none", "mfc": "gold", "mec": "black", "zorder": 5}


@dataclass
class Scene:
    """What a picture of runs needs: the function (or None), the paths and the range."""

    target: Target | None
    runs: list[tuple[str, Any]]
    paths: list[np.ndarray]  # one (n_k + 1, dim) array per run, non-finite entries as NaN
    shape: tuple[int, ...]  # the shape of one point, as the function takes it
    dim: int
    bounds: list[tuple[float, float]]

    def axis_names(self) -> list[str]:
        if self.target is not None:
            return self.target.axis_labels()[: self.dim] or ["x", "y"][: self.dim]
        return ["x", "y"][: self.dim]


@overload
def new_figure(
    size: tuple[float, float], nrows: Literal[1] = 1, ncols: Literal[1] = 1
) -> tuple[Figure, Axes]: ...
@overload
def new_figure(
    size: tuple[float, float], nrows: Literal[1] = 1, *, ncols: Literal[2]
) -> tuple[Figure, list[Axes]]: ...
@overload
def new_figure(
    size: tuple[float, float], nrows: int = 1, ncols: int = 1
) -> tuple[Figure, Axes | list[Axes]]: ...
def new_figure(
    size: tuple[float, float], nrows: int = 1, ncols: int = 1
) -> tuple[Figure, Axes | list[Axes]]:
    """A Figure on the Agg canvas (no pyplot) and its axes: one, or a flat list."""
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    return fig, axes[0] if len(axes) == 1 else axes


def runs_of(results: Any) -> list[tuple[str, Any]]:
    """``[(label, result)]`` from a result, a list or dict of results, or a race."""
    if hasattr(results, "rows") and hasattr(results, "results"):
        return list(results.results.items())
    if isinstance(results, Mapping) and not hasattr(results, "history"):
        pairs = list(results.items())
    elif hasattr(results, "history"):
        pairs = [(None, results)]
    elif isinstance(results, Sequence) and not isinstance(results, str) and results:
        pairs = [(None, r) for r in results]
    else:
        raise DescendTypeError(
            "expected a result, a non-empty list or dict of results, or a race, "
            f"got {type(results).__name__}"
        )
    runs: list[tuple[str, Any]]
    seen: dict[str, int]
    runs, seen = [], {}
    for label, result in pairs:
        if label is None:  # "adam(lr=0.001, ...)" -> "adam"
            label = (getattr(result, "optimizer", "") or "run").split("(")[0]
        label = str(label)
        seen[label] = seen.get(label, 0) + 1
        runs.append((label if seen[label] == 1 else f"{label} #{seen[label]}", result))
    return runs


def scene_of(results: Any, f: Any, bounds: Sequence[tuple[float, float]] | None) -> Scene:
    runs = runs_of(results)
    if f is None and hasattr(results, "target"):
        f = results.target
    paths, shape = [], None
    for label, result in runs:
        recorded = getattr(result, "history", {}).get("x")
        if recorded is None or isinstance(recorded, Mapping) or not hasattr(recorded, "shape"):
            raise InputError(
                f"the run {label!r} has no recorded path (history['x'] as one array); run "
                "minimize with keep_path=True and x0 as a number or a vector"
            )
        points = np.asarray(recorded, dtype=float)
        shape = points.shape[1:] if shape is None else shape
        paths.append(np.where(np.isfinite(points), points, np.nan).reshape(len(points), -1))
    dims = {p.shape[1] for p in paths}
    if len(dims) != 1 or not dims <= {1, 2}:
        raise InputError(
            f"paths can be drawn for functions of 1 or 2 variables; these runs have "
            f"{', '.join(map(str, sorted(dims)))}"
        )
    target = None if f is None else resolve(f)
    dim = dims.pop()
    assert shape is not None  # set by the first run; runs_of never returns none
    return Scene(target, runs, paths, shape, dim, bounds_of(bounds, target, paths, dim))


def bounds_of(
    bounds: Sequence[tuple[float, float]] | None,
    target: Target | None,
    paths: Sequence[np.ndarray],
    dim: int,
) -> list[tuple[float, float]]:
    """The range drawn: as given, else the function's, else the paths' extent."""
    if bounds is not None:
        pairs = [tuple(float(v) for v in pair) for pair in bounds]
        if len(pairs) != dim or any(len(p) != 2 or not p[0] < p[1] for p in pairs):
            raise InputError(
                f"bounds must be {dim} pair(s) (low, high) with low < high, got {bounds!r}"
            )
        return cast(list[tuple[float, float]], pairs)  # each of length 2, checked above
    if target is not None and target.bounds is not None:
        pairs = [tuple(b) for b in target.bounds[:dim]]
        for p in paths:  # widen so that every start is on the picture
            pairs = [
                (min(lo, s - 0.05 * (hi - lo)), max(hi, s + 0.05 * (hi - lo)))
                if np.isfinite(s) and not lo <= s <= hi
                else (lo, hi)
                for (lo, hi), s in zip(pairs, p[0], strict=True)
            ]
        return cast(list[tuple[float, float]], pairs)  # pairs of target.bounds, widened
    known = [np.ravel(m)[:dim] for m in (target.minimizers if target else [])]
    points = np.concatenate([p[np.isfinite(p).all(axis=1)] for p in paths] + [np.zeros((0, dim))])
    points = np.concatenate([points, np.reshape(known, (-1, dim))])
    if points.size == 0:
        return [(-1.0, 1.0)] * dim
    low, high = points.min(axis=0), points.max(axis=0)
    pad = np.where(high > low, 0.1 * (high - low), 1.0)
    return [(float(a), float(b)) for a, b in zip(low - pad, high + pad, strict=True)]


def _scalar_fn(scene: Scene) -> Callable[[Any], jax.Array]:
    assert scene.target is not None  # only called for a scene with a function
    fn, shape = scene.target.fn, scene.shape
    return lambda point: jnp.reshape(fn(jnp.reshape(point, shape)), ())


def evaluate(scene: Scene, points: np.ndarray) -> np.ndarray:
    """``f`` at each row of ``points``, in float64 (JAX's global setting unchanged)."""
    with jax.enable_x64(True):
        values = jax.vmap(_scalar_fn(scene))(jnp.asarray(points, jnp.float64))
        return np.asarray(values, dtype=float)


def derivative(scene: Scene, x: float) -> float:
    """``f'(x)`` of a one-variable function, by JAX autodiff in float64."""
    with jax.enable_x64(True):
        return float(jax.grad(_scalar_fn(scene))(jnp.float64(x)))


def heights(scene: Scene, points: np.ndarray, result: Any) -> np.ndarray:
    """Where one-variable iterates sit: on the curve, else at their recorded values."""
    if scene.target is None:
        return np.asarray(result.history["value"], dtype=float)
    return evaluate(scene, points)


def draw_background(
    ax: Axes, scene: Scene, levels: int | Sequence[float], log_levels: bool, colorbar: bool
) -> None:
    """Axes, labels and the function: its curve (one variable) or contours (two)."""
    names = scene.axis_names()
    x_low, x_high = scene.bounds[0]
    ax.set_xlim(x_low, x_high)
    ax.set_xlabel(names[0])
    target = scene.target
    if scene.dim == 1:
        ax.set_ylabel(f"f({names[0]})")
        if target is not None:
            grid = np.linspace(x_low, x_high, CURVE)
            ax.plot(
                grid, evaluate(scene, grid[:, None]), color="0.25", lw=1.5, label="f", gid="curve"
            )
            if target.minimizers:
                m = np.array([np.ravel(v)[0] for v in target.minimizers])
                ax.plot(
                    m,
                    evaluate(scene, m[:, None]),
                    ms=15,
                    label="known minimizer",
                    gid="minimizers",
                    **STAR,
                )
        return
    y_low, y_high = scene.bounds[1]
    ax.set_ylim(y_low, y_high)
    ax.set_ylabel(names[1])
    if target is None:
        return
    gx, gy = np.meshgrid(np.linspace(x_low, x_high, GRID), np.linspace(y_low, y_high, GRID))
    z = evaluate(scene, np.stack([gx.ravel(), gy.ravel()], axis=1)).reshape(gx.shape)
    finite = np.isfinite(z)
    if not finite.any():
        raise InputError(f"{target.name!r} is not finite anywhere on the range {scene.bounds}")
    label = "f"
    if not isinstance(levels, (int, np.integer)):
        filled = ax.contourf(gx, gy, z, levels=np.asarray(levels, dtype=float), cmap="viridis")
    else:
        count = check_int("levels", levels, minimum=2)
        # Shift by the known minimum (or the grid's) so that log spacing works for any sign.
        floor = min(z[finite].min(), np.inf if target.minimum is None else target.minimum)
        gap = np.where(finite, z - floor, np.nan)
        top = np.nanmax(gap)
        if log_levels and top > 0:
            low = max(np.nanmin(np.where(gap > 0, gap, np.nan)), top * 1e-8)
            filled = ax.contourf(
                gx,
                gy,
                np.clip(gap, low, None),
                levels=np.geomspace(low, top, count),
                norm=LogNorm(low, top),
                cmap="viridis",
            )
            label = "f - f*" if target.minimum is not None else "f - (least f drawn)"
        else:
            filled = ax.contourf(gx, gy, z, levels=count, cmap="viridis")
    filled.set_gid("contours")
    if colorbar:
        log = isinstance(filled.norm, LogNorm)
        ticks, fmt = (LogLocator(), LogFormatterSciNotation()) if log else (None, None)
        ax.figure.colorbar(filled, ax=ax, label=label, ticks=ticks, format=fmt)
    if target.minimizers:
        m = np.array([np.ravel(v)[:2] for v in target.minimizers])
        ax.plot(m[:, 0], m[:, 1], ms=16, label="known minimizer", gid="minimizers", **STAR)


def run_label(label: str, result: Any) -> str:
    if not hasattr(result, "n_iter"):
        return label
    return f"{label}: {result.n_iter} iterations, f = {result.fun:.3g}"


def _every(n: int) -> int:
    return max(1, n // MARKERS)


def draw_paths(ax: Axes, scene: Scene) -> None:
    """Each run's path as a line through its points, with its start and end marked."""
    for i, ((label, result), points) in enumerate(zip(scene.runs, scene.paths, strict=True)):
        color = f"C{i}"
        ax.plot(
            points[:, 0],
            points[:, 1],
            "-o",
            ms=3,
            lw=1.4,
            color=color,
            zorder=3,
            markevery=_every(len(points)),
            label=run_label(label, result),
            gid=f"path:{label}",
        )
        ax.plot(*points[0], "s", ms=8, mfc="white", mec=color, gid=f"start:{label}", zorder=4)
        ax.plot(*points[-1], "X", ms=10, color=color, mec="black", gid=f"end:{label}", zorder=4)
    if scene.runs:
        ax.add_line(Line2D([], [], ls="none", marker="s", mfc="white", mec="black", label="start"))
        ax.add_line(Line2D([], [], ls="none", marker="X", color="gray", mec="black", label="end"))


def tangent_segment(scene: Scene, x: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """``(xs, ys, f(x), f'(x))``: a short piece of the tangent line at ``x``."""
    width = 0.12 * (scene.bounds[0][1] - scene.bounds[0][0])
    value, slope = float(evaluate(scene, np.array([[x]]))[0]), derivative(scene, x)
    xs = np.array([x - width, x + width])
    return xs, value + slope * (xs - x), value, slope


def _spread(xs: np.ndarray, count: int) -> list[int]:
    """Up to ``count`` iterate indices, in order, whose x are visibly apart."""
    finite = xs[np.isfinite(xs)]
    if count == 0 or finite.size == 0:
        return []
    gap = 0.1 * max(np.ptp(finite), 1e-12)
    chosen: list[int] = []
    for k, x in enumerate(xs):
        if np.isfinite(x) and all(abs(x - xs[j]) >= gap for j in chosen):
            chosen.append(k)
            if len(chosen) == count:
                break
    return chosen


def draw_iterates(ax: Axes, scene: Scene, tangents: int) -> None:
    """One variable: the iterates on the curve and the tangent at some of them."""
    for i, ((label, result), points) in enumerate(zip(scene.runs, scene.paths, strict=True)):
        color = f"C{i}"
        ax.plot(
            points[:, 0],
            heights(scene, points, result),
            ":o",
            ms=4,
            lw=0.8,
            color=color,
            markevery=_every(len(points)),
            label=run_label(label, result),
            gid=f"iterates:{label}",
            zorder=3,
        )
        if scene.target is None:
            continue
        for k in _spread(points[:, 0], tangents):
            x = float(points[k, 0])
            xs, ys, value, slope = tangent_segment(scene, x)
            ax.plot(xs, ys, "--", lw=1.6, color=color, gid=f"tangent:{label}:{k}")
            # Gradient descent steps against the derivative: f' > 0 means go left.
            sign, direction = (">", "go left") if slope > 0 else ("<", "go right")
            text = "f' = 0: stationary" if slope == 0 else f"f' = {slope:.3g} {sign} 0: {direction}"
            ax.annotate(
                text,
                (x, value),
                xytext=LABEL_SPOTS[0][:2],
                textcoords="offset points",
                ha=LABEL_SPOTS[0][2],
                va=LABEL_SPOTS[0][3],
                fontsize="x-small",
                color=color,
                gid=f"slope:{label}:{k}",
                bbox={"fc": "white", "ec": "none", "alpha": 0.75, "pad": 0.5},
            )
            if slope != 0:
                end = (x - np.sign(slope) * 0.6 * (xs[1] - x), value)
                ax.annotate("", end, (x, value), arrowprops={"arrowstyle": "->", "color": color})
        draw_refinement(ax, scene, label, result, color)


def draw_refinement(ax: Axes, scene: Scene, label: str, result: Any, color: str) -> None:
    """Where the derivative changed sign (shaded) and, after ``refine=True``, the minimizer
    that bisection found (a diamond on the curve)."""
    bracket = getattr(result, "bracket", None)
    if bracket is None:
        return
    path = np.ravel(result.history.get("x", []))
    refined = getattr(result, "status", None) == "sign_change" and path.size >= 2
    # refine=True stops at the first sign change, between the last two iterates, and
    # narrows it to result.bracket (too narrow to see): shade the iterates' interval.
    left, right = sorted((float(path[-2]), float(path[-1]))) if refined else sorted(bracket)
    ax.axvspan(
        left, right, color=color, alpha=0.08, lw=0, gid=f"bracket:{label}",
        label=f"f' changed sign in [{left:.4g}, {right:.4g}]",
    )  # fmt: skip
    if refined:
        x = float(np.ravel(_flat(result.x))[0])
        y = float(evaluate(scene, np.array([[x]]))[0]) if scene.target is not None else result.fun
        ax.plot(
            [x], [y], "D", ms=9, color=color, mec="black", zorder=6, gid=f"refined:{label}",
            label=f"refined minimizer x = {x:.6g} (bisection)",
        )  # fmt: skip


def _flat(x: Any) -> np.ndarray:
    """A point as one flat float array (a dict of one variable, as an expression gives)."""
    if isinstance(x, Mapping):
        return np.concatenate([np.ravel(np.asarray(v, float)) for v in x.values()])
    return np.ravel(np.asarray(x, float))


# Where a label may sit beside its point: (dx, dy) in points, horizontal and vertical
# alignment; tried in order, nearest first, until one overlaps nothing placed before.
Spot = tuple[int, int, Literal["left", "right"], Literal["bottom", "top"]]
LABEL_SPOTS: list[Spot] = [
    (dx, dy, "left" if dx > 0 else "right", "bottom" if dy > 0 else "top")
    for lift in (0, 14, 28, 42, 56)
    for dx, dy in ((6, 10 + lift), (-6, 10 + lift), (6, -10 - lift), (-6, -10 - lift))
]


def place_labels(ax: Axes) -> None:
    """Move the tangents' labels (``gid`` ``slope:...``) so that none overlaps another or
    the legend, and each lies inside the axes.

    Each label takes the first of :data:`LABEL_SPOTS` that fits, else the one that
    overlaps least. The layout is computed first (a draw without rendering), and the
    legend is then fixed where it was drawn, so that it cannot move onto a label later.
    """
    labels = [
        t for t in ax.texts if isinstance(t, Annotation) and str(t.get_gid()).startswith("slope:")
    ]
    if not labels:
        return
    fig = ax.figure
    assert isinstance(fig, Figure)  # a SubFigure cannot draw_without_rendering
    fig.draw_without_rendering()
    # Agg, Cairo and PGF canvases have get_renderer; FigureCanvasBase does not declare it.
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    legend = ax.get_legend()
    taken: list[Bbox] = []
    if legend is not None:
        taken.append(legend.get_window_extent(renderer))
        corner = legend.get_window_extent(renderer).transformed(ax.transAxes.inverted())
        if hasattr(legend, "set_loc"):  # matplotlib >= 3.8
            legend.set_loc((corner.x0, corner.y0))
    frame = ax.get_window_extent(renderer)

    def cost(box: Bbox) -> float:
        outside = (
            max(frame.x0 - box.x0, 0) + max(box.x1 - frame.x1, 0)
            + max(frame.y0 - box.y0, 0) + max(box.y1 - frame.y1, 0)
        )  # fmt: skip
        overlap = sum(_overlap_area(box, other) for other in taken)
        return outside * box.height + overlap

    for text in labels:
        best: tuple[float, Spot, Bbox] | None = None
        for spot in LABEL_SPOTS:
            text.xyann = spot[:2]
            text.set_horizontalalignment(spot[2])
            text.set_verticalalignment(spot[3])
            box = text.get_window_extent(renderer)
            score = cost(box)
            if best is None or score < best[0]:
                best = (score, spot, box)
            if score == 0:
                break
        assert best is not None  # LABEL_SPOTS is not empty
        _, spot, box = best
        text.xyann = spot[:2]
        text.set_horizontalalignment(spot[2])
        text.set_verticalalignment(spot[3])
        taken.append(box)


def _overlap_area(a: Bbox, b: Bbox) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(width, 0.0) * max(height, 0.0)


def draw_values(ax: Axes, race: Any) -> None:
    """Every run's value (minus the known minimum) per iteration, on a log scale."""
    minimum = race.target.minimum if race.target is not None else None
    shift = 0.0 if minimum is None else minimum
    values = {
        row["label"]: np.asarray(row["result"].history["value"], float) - shift for row in race.rows
    }
    for i, row in enumerate(race.rows):
        curve = values[row["label"]]
        suffix = " (diverged)" if row.get("diverged") else ""
        ax.plot(
            np.arange(curve.size),
            curve,
            color=f"C{i}",
            lw=1.4,
            label=row["label"] + suffix,
            gid=f"values:{row['label']}",
        )
        k = row.get("n_iter_to_tol")
        if k is not None and race.criterion == "value":
            ax.plot([k], [curve[k]], "o", color=f"C{i}", mec="black")
    starts = [abs(c[0]) for c in values.values() if np.isfinite(c[0]) and c[0] != 0]
    if log_if_positive(ax, True, *values.values()) and starts:
        ax.set_ylim(top=max(starts) * 1e3)  # diverging runs leave through the top
    if race.criterion == "value":
        ax.axhline(race.tol, color="gray", lw=0.8, ls=":", label=f"tol = {race.tol:g}")
    sizes = [c.size for c in values.values()]
    if max(sizes) > 20 * min(sizes):
        ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(left=0)
    ax.set_xlabel("iteration")
    ax.set_ylabel("f(x_k) - f*" if minimum is not None else "f(x_k)")
    ax.set_title(f"{race.problem}: value per iteration")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def log_if_positive(ax: Axes, log_scale: bool, *arrays: np.ndarray) -> bool:
    """Use a log y-axis when asked and the finite values are >= 0 with some > 0."""
    values = np.concatenate([np.ravel(a) for a in arrays])
    values = values[np.isfinite(values)]
    if log_scale and values.size and values.min() >= 0 and values.max() > 0:
        ax.set_yscale("log", nonpositive="mask")
        return True
    return False
