"""HTML for notebooks: a table of key numbers and a small inline SVG curve.

What Jupyter shows for a result (``_repr_html_``), from Python and NumPy only: the
curve is an SVG polyline written here, not a matplotlib figure, because a repr runs on
every display. Measured: matplotlib's import takes 1.3 s and a 2.4 x 0.8 in SVG figure
24 ms warm (1.4 kB); this curve takes well under a millisecond (about 1.5 kB with 200
points).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

# matplotlib's default colours (tab10), so a curve here matches descend's figures.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
MAX_POINTS = 120  # points of a curve: longer histories are thinned evenly
_STYLE = "border-collapse:collapse;font-size:0.9em;margin:0 1em 0.5em 0"
_CELL = "text-align:left"


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 6) -> str:
    """A number as ``%.{digits}g``; anything else as ``str``."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}g}"
    return str(value)


def point(x: Any, *, limit: int = 80) -> str:
    """A point (an array, a number, or a dict of them) in at most about ``limit``
    characters: NumPy's summary of long arrays, 6 significant digits."""
    if isinstance(x, Mapping):
        text = "{" + ", ".join(f"{key}: {point(value, limit=limit)}" for key, value in x.items())
        text += "}"
    else:
        array = np.asarray(x)
        if array.dtype.kind in "fc" and array.ndim == 0:
            text = number(array.item())
        elif array.dtype.kind in "fciub":
            text = np.array2string(array, precision=6, threshold=6, edgeitems=2, separator=", ")
            text = " ".join(text.split())
        else:
            text = str(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def table(rows: Iterable[tuple[str, str]], *, caption: str = "") -> str:
    """A two-column table: a name and its value (both text, escaped here)."""
    body = "".join(
        f'<tr><th style="{_CELL}">{escape(name)}</th><td style="{_CELL}">{escape(value)}</td></tr>'
        for name, value in rows
    )
    head = f"<caption style='text-align:left'><b>{escape(caption)}</b></caption>" if caption else ""
    return f'<table style="{_STYLE}">{head}{body}</table>'


def grid(headings: Sequence[str], body: Sequence[Sequence[str]], *, caption: str = "",
         marks: Sequence[str] = ()) -> str:  # fmt: skip
    """A table with headings; ``marks[i]``, when given, is raw HTML put before row i's
    first cell (a colour swatch)."""
    head = "".join(f'<th style="{_CELL}">{escape(text)}</th>' for text in headings)
    rows = []
    for index, cells in enumerate(body):
        mark = marks[index] if index < len(marks) else ""
        tds = [f'<td style="{_CELL}">{mark if n == 0 else ""}{escape(text)}</td>'
               for n, text in enumerate(cells)]  # fmt: skip
        rows.append("<tr>" + "".join(tds) + "</tr>")
    top = f"<caption style='text-align:left'><b>{escape(caption)}</b></caption>" if caption else ""
    return f'<table style="{_STYLE}">{top}<tr>{head}</tr>{"".join(rows)}</table>'


def swatch(colour: str) -> str:
    return (
        f'<span style="display:inline-block;width:0.8em;height:0.8em;background:{colour};'
        'margin-right:0.4em"></span>'
    )


def curves(series: Mapping[str, Any], *, log: bool | None = None, title: str = "",
           first: int = 0, width: int = 260, height: int = 70) -> str:  # fmt: skip
    """An inline SVG of one or more curves against their index, on shared axes.

    ``series`` maps a label to a 1-D sequence of numbers (non-finite ones are skipped);
    colours follow :data:`COLOURS` in order. ``log``: a log scale (None: when every
    finite value is positive). The ends of the range are written at the left edge;
    ``title`` says what is drawn, in the SVG's ``<title>`` and in a legend line under
    it; ``first`` numbers the first point on the axis (1 for epochs). Empty text when
    nothing is finite.
    """
    arrays = {label: np.asarray(values, dtype=float).ravel() for label, values in series.items()}
    pieces = [a[np.isfinite(a)] for a in arrays.values()]
    finite = np.concatenate(pieces) if pieces else np.zeros(0)
    if finite.size == 0:
        return ""
    if log is None:
        log = bool(np.all(finite > 0))
    scaled = {label: _scale(a, log) for label, a in arrays.items()}
    every = np.concatenate([s[np.isfinite(s)] for s in scaled.values()])
    low, high = float(every.min()), float(every.max())
    if high - low < 1e-12:
        low, high = low - 1.0, high + 1.0
    length = max(len(a) for a in arrays.values())
    left, top, bottom, right = 48, 6, height - 14, width - 4
    lines = []
    for index, (_label, values) in enumerate(scaled.items()):
        keep = np.unique(np.linspace(0, len(values) - 1, min(len(values), MAX_POINTS)).astype(int))
        keep = keep[np.isfinite(values[keep])]
        if keep.size == 0:
            continue
        xs = left + (right - left) * keep / max(length - 1, 1)
        ys = bottom - (bottom - top) * (values[keep] - low) / (high - low)
        points = " ".join(f"{x:.2f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        colour = COLOURS[index % len(COLOURS)]
        lines.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'
        )
    unscale = (lambda v: 10.0**v) if log else (lambda v: v)
    scale = "log scale" if log else "linear scale"
    text = (
        f'<text x="{left - 3}" y="{top + 8}" text-anchor="end">{number(unscale(high), 2)}</text>'
        f'<text x="{left - 3}" y="{bottom}" text-anchor="end">{number(unscale(low), 2)}</text>'
        f'<text x="{left}" y="{height - 2}">{first}</text>'
        f'<text x="{right}" y="{height - 2}" text-anchor="end">{first + length - 1}</text>'
    )
    frame = (
        f'<path d="M{left},{top} V{bottom} H{right}" fill="none" stroke="#999" stroke-width="0.7"/>'
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-size="9" font-family="sans-serif" role="img">'
        f"<title>{escape(f'{title} ({scale})')}</title>{frame}{text}{''.join(lines)}</svg>"
    )
    legend = " ".join(
        swatch(COLOURS[index % len(COLOURS)]) + escape(label) for index, label in enumerate(arrays)
    )
    return f'{svg}<div style="font-size:0.8em">{escape(title)}, {scale}: {legend}</div>'


def _scale(values: np.ndarray, log: bool) -> np.ndarray:
    if not log:
        return values
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)


def block(*parts: str) -> str:
    """Parts side by side (a table and its curve), wrapping on a narrow page."""
    inner = "".join(f'<div style="margin-right:1em">{part}</div>' for part in parts if part)
    return f'<div style="display:flex;flex-wrap:wrap;align-items:flex-start">{inner}</div>'


def above_minimum(values: Any, minimum: float | None) -> np.ndarray:
    """``values - minimum`` (for a log scale of the distance to a known minimum), or the
    values themselves when the minimum is unknown or not finite."""
    values = np.asarray(values, dtype=float)
    if minimum is None or not math.isfinite(minimum):
        return values
    return values - minimum
