"""What a notebook shows for a result: ``_repr_html_`` parses as HTML, holds the key
numbers and a curve that is the run's history, and ``repr`` stays short.

The HTML is read back with the standard library's ``html.parser``; the numbers expected
are the result's own attributes, the curve's points are mapped back to the history.
"""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser

import numpy as np
import pytest

import descend as ds
from descend import _html

SHORT = 300  # characters of a result's repr, at most


class Page(HTMLParser):
    """The text, the elements (tag, attributes) and whether every element closes."""

    def __init__(self, markup: str):
        super().__init__(convert_charrefs=True)
        self.text, self.elements, self.open, self.errors = [], [], [], []
        self.feed(markup)
        self.close()
        if self.open:
            self.errors.append(f"never closed: {self.open}")

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()

    def handle_data(self, data):
        self.text.append(data)

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())

    def all(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.elements if name == tag]


class _Rows(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.cell, self.kind, self.key = {}, [], None, None

    def handle_starttag(self, tag, attrs):
        if tag in ("th", "td"):
            self.kind, self.cell = tag, []

    def handle_endtag(self, tag):
        if tag == "th":
            self.key = " ".join("".join(self.cell).split())
        elif tag == "td" and self.key is not None:
            self.rows[self.key] = " ".join("".join(self.cell).split())
            self.key = None
        if tag in ("th", "td"):
            self.kind = None

    def handle_data(self, data):
        if self.kind:
            self.cell.append(data)


def rows_of(markup: str) -> dict[str, str]:
    parser = _Rows()
    parser.feed(markup)
    return parser.rows


def parsed(markup: str) -> Page:
    page = Page(markup)
    assert page.errors == []
    return page


def polylines(page: Page) -> list[np.ndarray]:
    """Each curve's points as an (n, 2) array of SVG coordinates."""
    return [
        np.array([[float(v) for v in pair.split(",")] for pair in attrs["points"].split()])
        for attrs in page.all("polyline")
    ]


def assert_curve_is(points: np.ndarray, values: np.ndarray, *, log: bool, axis=None):
    """The curve's heights are the values (log10 for a log scale) up to one affine map,
    at the indices it kept, and it runs left to right. ``axis``: ``(x of index 0, x of
    the last index, that index)`` when curves share it (default: this curve's ends)."""
    assert np.all(np.diff(points[:, 0]) > 0)
    start, end, last = axis or (points[0, 0], points[-1, 0], len(values) - 1)
    index = np.rint((points[:, 0] - start) / (end - start) * last).astype(int)
    expected = np.log10(values[index]) if log else values[index]
    # y = a - b * value with b > 0 (SVG's y grows downwards); rounding to 0.1 px.
    slope, intercept = np.polyfit(expected, points[:, 1], 1)
    assert slope < 0
    np.testing.assert_allclose(points[:, 1], intercept + slope * expected, atol=0.11)


# ------------------------------------------------------------------ MinimizeResult


def test_minimize_result_html_holds_its_numbers_and_its_value_curve():
    result = ds.minimize("rosenbrock", optimizer="lbfgs", verbose=0)
    page = parsed(result._repr_html_())
    rows = rows_of(result._repr_html_())
    assert rows["status"] == f"{result.status} ({int(result.status)})"
    assert rows["reason"] == result.reason
    assert rows["fun"] == f"{result.fun:.10g}"
    assert rows["n_iter"] == str(result.n_iter) and rows["n_fev"] == str(result.n_fev)
    assert rows["grad_norm"] == f"{result.grad_norm:.3g}"
    np.testing.assert_allclose(
        [float(v) for v in rows["x"].strip("[]").split(",")], result.x, rtol=1e-5
    )
    (curve,) = polylines(page)
    values = np.asarray(result.history["value"])
    assert len(curve) == min(len(values), _html.MAX_POINTS)
    assert_curve_is(curve, values, log=bool(np.all(values > 0)))


def test_minimize_result_html_shows_the_bracket_of_a_sign_change():
    result = ds.minimize(lambda x: 5 * x**2, 1.0, optimizer=ds.optim.gd(lr=0.15), refine=True,
                         verbose=0)  # fmt: skip
    assert result.bracket is not None
    rows = rows_of(result._repr_html_())
    assert rows["bracket"] == ", ".join(f"{v:.8g}" for v in result.bracket)


@pytest.mark.parametrize(
    "case",
    [
        ("rosenbrock", None),
        ("(x-3)**2 + 10*(y+1)**2", {"x": 0.0, "y": 0.0}),
        (lambda x: ((x - 1.0) ** 2).sum(), np.zeros(5000)),
    ],
    ids=["test function", "expression", "5000 numbers"],
)
def test_minimize_result_repr_is_one_short_line(case):
    f, x0 = case
    result = ds.minimize(f, x0, verbose=0)
    text = repr(result)
    assert len(text) < SHORT and "\n" not in text
    assert text.startswith("MinimizeResult(status=") and f"n_iter={result.n_iter}" in text
    assert f"fun={result.fun:.10g}" in text


# ------------------------------------------------------------------ FitResult


def test_fit_result_html_holds_the_metrics_and_the_loss_curves():
    data = ds.data.load_dataset("breast_cancer")
    result = ds.fit("logistic", data, validation_split=0.2, epochs=30, verbose=0, seed=0)
    markup = result._repr_html_()
    page, rows = parsed(markup), rows_of(markup)
    assert rows["epochs"] == str(result.n_epochs) and rows["updates"] == str(result.n_updates)
    assert rows["status"] == result.status and rows["reason"] == result.reason
    held = "last epoch" if result.best_epoch is None else f"epoch {result.best_epoch}, restored"
    for key, value in result.metrics().items():
        assert rows[f"{key} ({held})"] == f"{value:.4g}"
    loss, val_loss, accuracy, val_accuracy = polylines(page)
    assert_curve_is(loss, result.history["loss"], log=True)
    assert_curve_is(val_loss, result.history["val_loss"], log=True)
    assert_curve_is(val_accuracy, result.history["val_accuracy"], log=False)
    text = repr(result)
    assert len(text) < SHORT and "\n" not in text and f"status={result.status!r}" in text


# ------------------------------------------------------------------ the race


def test_race_html_holds_the_table_and_a_curve_per_optimizer():
    race = ds.compare("rosenbrock", ["gd", ("momentum", {"lr": 1e-3}), "adam", "lbfgs"],
                      x0=(-1.5, 2), max_iter=3000)  # fmt: skip
    markup = race._repr_html_()
    page = parsed(markup)
    headings, body = race.cells()
    for heading in headings:
        assert heading in page.words
    for cells in body:
        for cell in cells:
            assert cell in page.words
    assert f"* {race.best}" in page.words
    curves = polylines(page)
    assert len(curves) == len(race.rows)
    gaps = [np.asarray(row["result"].history["value"]) - race.target.minimum for row in race.rows]
    longest = int(np.argmax([len(gap) for gap in gaps]))
    axis = (curves[longest][0, 0], curves[longest][-1, 0], len(gaps[longest]) - 1)
    for curve, gap in zip(curves, gaps, strict=True):
        if np.all(gap > 0):  # f - f* on a log scale, all four runs on one axis
            assert_curve_is(curve, gap, log=True, axis=axis)
    text = repr(race)
    assert len(text) < SHORT and "\n" not in text and repr(race.best) in text
    assert len(repr(race)) < len(str(race.to_dict())) / 4  # not the dict it was


# ------------------------------------------------------------------ test functions


@pytest.mark.parametrize("name", ["rosenbrock", "himmelblau", "styblinski_tang"])
def test_function_html_holds_formula_minimum_and_minimizers(name):
    f = dataclasses.replace(ds.functions.get(name))  # its minimizers not computed yet
    before = rows_of(f._repr_html_())
    assert before["minimizers"].count("≈") == len(f._minimizer_guesses)  # not computed yet
    assert before["formula"] == f.formula
    assert before["minimum"] == f"{f.minimum:.10g}"
    f.minimizers  # noqa: B018 (computed and cached)
    markup = f._repr_html_()
    parsed(markup)
    rows = rows_of(markup)
    shown = [
        np.array([float(v) for v in m.strip(" []").split(",")])
        for m in rows["minimizers"].split(";")
    ]
    for found, exact in zip(shown, f.minimizers, strict=True):
        np.testing.assert_allclose(found, exact, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(f(found), f.minimum, atol=1e-8)
    assert repr(f) == f"TestFunction({name!r}, dim={f.dim}, minimum={f.minimum:.10g})"


# ------------------------------------------------------------------ the pieces


def test_html_escapes_what_it_is_given():
    markup = _html.table([("<b>", "a < b & c")], caption="x<y")
    page = parsed(markup)
    assert page.all("b") == [{}]  # the caption's own <b> only
    assert "a < b & c" in page.words and "x<y" in page.words


def test_curves_are_small_whatever_the_history_and_skip_what_is_not_finite():
    values = np.concatenate([np.geomspace(10, 1e-9, 100_000), [np.nan, np.inf]])
    markup = _html.curves({"value": values}, title="f")
    (curve,) = polylines(parsed(markup))
    assert len(curve) <= _html.MAX_POINTS and np.all(np.isfinite(curve))
    assert len(markup) < 4000
    assert _html.curves({"value": [np.nan]}) == ""


@pytest.mark.parametrize("name", ["polyak_sgd", "cocob", "dog"])
def test_an_optimizer_without_a_learning_rate_shows_none(name, capsys):
    # Its history's lr is NaN (no rate to report): the summaries leave it out rather
    # than print "lr nan".
    X = np.random.default_rng(0).normal(size=(40, 2))
    result = ds.fit("logistic", X, (X[:, 0] > 0) * 1.0, optimizer=name, epochs=2, verbose=0)
    rate = ds.optim.lr_of(result.optimizer, result.opt_state, result.n_updates)
    assert np.isnan(result.history["lr"]).all() == np.isnan(rate)
    assert ("lr" in result.metrics()) != np.isnan(rate)
    assert "nan" not in repr(result) and "lr nan" not in result._repr_html_()
    assert "lr (last epoch)" not in rows_of(result._repr_html_()) or not np.isnan(rate)
