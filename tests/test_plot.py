"""descend.plot: what each picture holds, checked on the Figure, and the files it writes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib import animation
from matplotlib.figure import Figure
from PIL import Image

import descend as ds
from descend import plot
from descend.cli import pictures as cli_plot
from descend.errors import InputError
from descend.plot.racing import compare

ONE_VARIABLE = "(x-1)**2 + 0.1*x**4"


def one_variable(x):
    """ONE_VARIABLE in NumPy, the oracle for the curve and its derivative."""
    return (x - 1.0) ** 2 + 0.1 * x**4


def central_difference(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.fixture(scope="module")
def booth_race():
    return compare("booth", ["gd", ("momentum", {"lr": 0.01})], max_iter=300)


@pytest.fixture(scope="module")
def overshooting_run():
    # lr = 0.3 jumps over the minimum at first, so the derivative changes sign.
    return ds.minimize(ONE_VARIABLE, 3.0, optimizer=ds.optim.gd(lr=0.3), max_iter=200)


@pytest.fixture(scope="module")
def history():
    epochs = np.arange(1, 21)
    return {
        "epoch": epochs,
        "loss": 1.0 / epochs,
        "val_loss": 1.0 / epochs + 0.002 * epochs,
        "lr": 0.1 * 0.9**epochs,
        "grad_norm": np.exp(-epochs / 5.0),
        "time": 0.01 * epochs,
    }


def lines_by_gid(ax):
    return {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}


def assert_created_like_any_file(path):
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def assert_png(path, size):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGBA"
        assert image.size == size
        pixels = np.asarray(image, dtype=float)
    assert pixels.var() > 0  # not blank


def test_each_path_line_is_the_recorded_path(booth_race):
    fig = plot.path(booth_race.results, "booth")
    ax = fig.axes[0]
    lines = lines_by_gid(ax)
    for label, result in booth_race.results.items():
        path = np.asarray(result.history["x"])
        np.testing.assert_array_equal(lines[f"path:{label}"].get_xdata(), path[:, 0])
        np.testing.assert_array_equal(lines[f"path:{label}"].get_ydata(), path[:, 1])
        np.testing.assert_array_equal(lines[f"start:{label}"].get_xydata()[0], path[0])
        np.testing.assert_array_equal(lines[f"end:{label}"].get_xydata()[0], path[-1])
    minimizers = np.array(ds.functions.get("booth").minimizers)
    np.testing.assert_allclose(lines["minimizers"].get_xydata(), minimizers)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("x", "y", "booth")
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    for label, result in booth_race.results.items():
        assert f"{label}: {result.n_iter} iterations, f = {result.fun:.3g}" in legend
    assert "known minimizer" in legend and len(fig.axes) == 2  # the map and its colour bar


def test_contour_levels_are_log_spaced_over_the_grid_shifted_by_the_minimum():
    # A negative minimum (-5), so the levels must be shifted for the log to work.
    bowl = ds.functions.TestFunction(
        "bowl",
        "x^2 + 2 y^2 - 5",
        lambda x: x[0] ** 2 + 2 * x[1] ** 2 - 5.0,
        2,
        -5.0,
        (1.0, 1.0),
        ((-2.0, 2.0), (-1.0, 3.0)),
    )
    ax = plot.function(bowl, levels=12).axes[0]
    (contours,) = [c for c in ax.collections if c.get_gid() == "contours"]
    gx, gy = np.meshgrid(np.linspace(-2.0, 2.0, 200), np.linspace(-1.0, 3.0, 200))
    gap = gx**2 + 2 * gy**2 - 5.0 - min((gx**2 + 2 * gy**2 - 5.0).min(), -5.0)
    top = gap.max()
    low = max(gap[gap > 0].min(), top * 1e-8)
    np.testing.assert_allclose(contours.levels, np.geomspace(low, top, 12), rtol=1e-9)
    assert np.all(contours.levels > 0)


def test_one_variable_picture_has_curve_iterates_and_tangents(overshooting_run):
    ax = plot.path(overshooting_run, ONE_VARIABLE, tangents=3).axes[0]
    lines = lines_by_gid(ax)
    curve = lines["curve"]
    np.testing.assert_allclose(curve.get_ydata(), one_variable(curve.get_xdata()), rtol=1e-12)
    iterates = lines["iterates:gd"]
    path = np.ravel(overshooting_run.history["x"])
    np.testing.assert_array_equal(iterates.get_xdata(), path)
    np.testing.assert_allclose(iterates.get_ydata(), one_variable(path), rtol=1e-12)
    tangents = {gid: line for gid, line in lines.items() if gid.startswith("tangent:")}
    assert len(tangents) == 3
    signs = set()
    for gid, line in tangents.items():
        x_k = path[int(gid.rsplit(":", 1)[1])]
        (x0, x1), (y0, y1) = line.get_xdata(), line.get_ydata()
        slope = (y1 - y0) / (x1 - x0)
        assert slope == pytest.approx(central_difference(one_variable, x_k), rel=1e-6)
        assert (x0 + x1) / 2 == pytest.approx(x_k)
        assert (y0 + y1) / 2 == pytest.approx(one_variable(x_k))
        signs.add(np.sign(slope))
    assert signs == {-1.0, 1.0}  # the picture shows both "go left" and "go right"
    notes = [text.get_text() for text in ax.texts if text.get_text()]
    assert any("> 0: go left" in note for note in notes)
    assert any("< 0: go right" in note for note in notes)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "f(x)")


@pytest.mark.parametrize(
    ("keys", "panels"),
    [
        (("loss",), ["loss"]),
        (("loss", "val_loss"), ["loss"]),
        (("loss", "lr"), ["loss", "learning rate"]),
        (("loss", "accuracy", "val_accuracy"), ["loss", "accuracy"]),
        (("loss", "r2", "val_r2", "grad_norm"), ["loss", "R²", "gradient norm"]),
        (
            ("loss", "val_loss", "accuracy", "lr", "grad_norm"),
            ["loss", "accuracy", "learning rate", "gradient norm"],
        ),
    ],
)
def test_loss_curve_panels_follow_the_history(history, keys, panels):
    full = {**history, "accuracy": 1 - history["loss"] / 2, "val_accuracy": 1 - history["val_loss"]}
    full |= {"r2": full["accuracy"], "val_r2": full["val_accuracy"]}
    chosen = {key: full[key] for key in (*keys, "epoch")}
    fig = plot.loss_curves(SimpleNamespace(history=chosen))
    assert [ax.get_ylabel() for ax in fig.axes] == panels
    lines = lines_by_gid(fig.axes[0])
    np.testing.assert_array_equal(
        lines["loss"].get_xydata(), np.c_[history["epoch"], history["loss"]]
    )
    assert ("val_loss" in lines) == ("val_loss" in keys)
    for ax, panel in zip(fig.axes, panels, strict=True):
        assert ax.get_xlabel() == "epoch"
        assert ax.get_yscale() == ("linear" if panel in ("accuracy", "R²") else "log")
        drawn = {name: line for name, line in lines_by_gid(ax).items() if name in chosen}
        assert drawn, panel  # every panel draws its entries of the history
        for name, line in drawn.items():
            np.testing.assert_array_equal(line.get_ydata(), chosen[name])
    metric = next((key for key in ("accuracy", "r2") if key in keys), None)
    if metric:  # training and validation on the metric's panel
        assert set(lines_by_gid(fig.axes[1])) >= {metric, f"val_{metric}"} & set(keys)


def test_loss_curves_draw_a_fit_with_its_metric_and_mark_the_restored_epoch():
    from descend.data.datasets import load_dataset

    data = load_dataset("breast_cancer")
    result = ds.fit("logistic", data, epochs=6, validation_split=0.2, verbose=0, patience=None)
    fig = plot.loss_curves(result)
    names = [ax.get_ylabel() for ax in fig.axes]
    assert names[:2] == ["loss", "accuracy"]
    metric = lines_by_gid(fig.axes[1])
    for key in ("accuracy", "val_accuracy"):
        np.testing.assert_array_equal(metric[key].get_ydata(), result.history[key])
    best = int(np.argmin(result.history["val_loss"]))
    for ax in fig.axes:
        (mark,) = [line for line in ax.get_lines() if line.get_gid() == "best_epoch"]
        assert mark.get_xdata()[0] == result.history["epoch"][best]


def test_a_constant_learning_rate_gets_no_panel_but_a_title(history):
    constant = {**history, "lr": np.full(20, 0.01)}
    fig = plot.loss_curves(constant)
    assert "learning rate" not in [ax.get_ylabel() for ax in fig.axes]
    assert fig.axes[0].get_title() == "learning rate 0.01 throughout"
    changing = {**history, "lr": np.r_[np.full(19, 0.01), 0.002]}
    assert "learning rate" in [ax.get_ylabel() for ax in plot.loss_curves(changing).axes]


def test_drawing_into_given_axes_returns_its_figure(booth_race, history):
    fig = Figure()
    ax = fig.subplots()
    assert plot.path(booth_race, ax=ax) is fig and fig.axes == [ax]  # no colour bar added
    other = Figure()
    loss_ax = other.subplots()
    assert plot.loss_curves(history, ax=loss_ax) is other
    drawn = set(lines_by_gid(loss_ax))
    assert other.axes == [loss_ax] and drawn == {"loss", "val_loss", "best_val", "best_epoch"}


def test_race_draws_every_path_and_value_curve(booth_race):
    fig = plot.race(booth_race)
    map_ax, curves_ax = fig.axes[0], fig.axes[1]  # then the map's colour bar
    paths, curves = lines_by_gid(map_ax), lines_by_gid(curves_ax)
    for index, (label, result) in enumerate(booth_race.results.items()):
        np.testing.assert_array_equal(paths[f"path:{label}"].get_xydata(), result.history["x"])
        values = curves[f"values:{label}"]
        np.testing.assert_array_equal(values.get_ydata(), result.history["value"])
        assert values.get_color() == paths[f"path:{label}"].get_color() == f"C{index}"
    assert curves_ax.get_yscale() == "log" and curves_ax.get_xlabel() == "iteration"
    legend = [text.get_text() for text in curves_ax.get_legend().get_texts()]
    assert set(booth_race.results) <= set(legend)


def _picture(kind, race, run, history):
    if kind == "path, two variables":
        return plot.path(race.results, "booth")
    if kind == "path, one variable":
        return plot.path(run, ONE_VARIABLE)
    if kind == "function":
        return plot.function("booth")
    if kind == "loss curves":
        return plot.loss_curves(history)
    return plot.race(race)


@pytest.mark.parametrize(
    "kind", ["path, two variables", "path, one variable", "function", "loss curves", "race"]
)
def test_every_picture_renders_to_a_png_of_the_requested_size(
    kind, booth_race, overshooting_run, history, tmp_path
):
    fig = _picture(kind, booth_race, overshooting_run, history)
    before = tuple(fig.get_size_inches())
    written = plot.save(fig, tmp_path / "picture.png", size=(480, 360), dpi=80)
    assert_png(written, (480, 360))
    assert_created_like_any_file(written)
    assert tuple(fig.get_size_inches()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["picture.png"]  # no temporary left


@pytest.mark.parametrize("which", ["two variables", "one variable"])
def test_animation_is_a_gif_with_several_frames(which, booth_race, overshooting_run, tmp_path):
    target = tmp_path / "descent.gif"
    if which == "two variables":
        plot.animate(booth_race, path=target, max_frames=5, levels=6, dpi=40)
    else:
        plot.animate(overshooting_run, ONE_VARIABLE, path=target, max_frames=5, dpi=40)
    with Image.open(target) as image:
        assert image.format == "GIF" and image.n_frames >= 3
    assert_created_like_any_file(target)
    assert [p.name for p in tmp_path.iterdir()] == ["descent.gif"]


def test_files_that_cannot_be_written_are_refused(booth_race, monkeypatch, tmp_path):
    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    with pytest.raises(InputError, match="needs ffmpeg"):
        plot.animate(booth_race, path=tmp_path / "race.mp4")
    with pytest.raises(InputError, match=r"\.gif or \.mp4"):
        plot.animate(booth_race, path=tmp_path / "race.avi")
    figure = plot.loss_curves({"loss": [1.0, 0.5]})
    with pytest.raises(InputError, match="give a path ending in"):
        plot.save(figure, tmp_path / "curves.bmpx")
    with pytest.raises(InputError, match="does not exist"):
        plot.save(figure, tmp_path / "missing" / "curves.png")
    with pytest.raises(InputError, match="whole pixels"):
        plot.save(figure, tmp_path / "curves.png", size=(640.5, 480))
    assert list(tmp_path.iterdir()) == []


def test_runs_without_a_drawable_path_are_refused(booth_race):
    result = booth_race.results["gd"]
    unrecorded = dataclasses.replace(result, history={"value": result.history["value"]})
    with pytest.raises(InputError, match="keep_path=True"):
        plot.path(unrecorded, "booth")
    three = dataclasses.replace(result, history={**result.history, "x": np.zeros((4, 3))})
    with pytest.raises(InputError, match="1 or 2 variables"):
        plot.path(three)
    with pytest.raises(InputError, match="1 or 2 variables"):
        plot.function(ds.functions.get("rosenbrock", 3))


def test_cli_helpers_write_their_pictures(booth_race, history, tmp_path):
    booth = ds.functions.get("booth")
    result = booth_race.results["gd"]
    three = dataclasses.replace(result, history={**result.history, "x": np.zeros((301, 3))})
    written = [
        cli_plot.plot_minimize(result, booth, str(tmp_path / "minimize.png")),
        cli_plot.plot_minimize(three, None, str(tmp_path / "many.png")),  # value per iteration
        cli_plot.plot_function("booth", str(tmp_path / "booth.png")),
        cli_plot.plot_history(SimpleNamespace(history=history), str(tmp_path / "curves.png")),
    ]
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG" and np.asarray(image).var() > 0


def test_plotting_never_imports_pyplot():
    code = (
        "import sys, descend.plot as p; p.function('booth'); "
        "p.loss_curves({'loss': [1.0, 0.5]}); "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def slope_labels(ax):
    return [text for text in ax.texts if str(text.get_gid()).startswith("slope:")]


@pytest.mark.parametrize(
    ("expression", "x0", "lr"),
    [
        ("x**2 - x", 3.0, 0.9),  # the README's: two labels, one at the right edge
        (ONE_VARIABLE, 3.0, 0.3),  # three tangents
        ("x**4 - 3*x", 1.6, 0.02),  # iterates close together: labels stacked
    ],
)
def test_one_variable_labels_do_not_overlap_and_lie_inside_the_figure(expression, x0, lr):
    run = ds.minimize(expression, x0, optimizer=ds.optim.gd(lr=lr), max_iter=200)
    fig = plot.path(run, expression, tangents=3)
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = slope_labels(ax)
    assert len(labels) >= 2
    boxes = [text.get_window_extent(renderer) for text in labels]
    boxes.append(ax.get_legend().get_window_extent(renderer))
    inside = ax.get_window_extent(renderer)
    for i, box in enumerate(boxes):
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1, labels[min(i, len(labels) - 1)]
        assert inside.y0 <= box.y0 and box.y1 <= inside.y1
        assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)
        for other in boxes[i + 1 :]:
            assert not box.overlaps(other), (box, other)


def test_labels_overlap_without_placement(monkeypatch):
    # The check above can fail: the labels as first written (all above right) overlap.
    monkeypatch.setattr(plot.draw, "place_labels", lambda ax: None)
    run = ds.minimize("x**4 - 3*x", 1.6, optimizer=ds.optim.gd(lr=0.02), max_iter=200)
    fig = plot.path(run, "x**4 - 3*x", tangents=3)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [text.get_window_extent(renderer) for text in slope_labels(fig.axes[0])]
    inside = fig.axes[0].get_window_extent(renderer)
    overlapping = any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert overlapping or any(box.x1 > inside.x1 for box in boxes)


def test_refine_marks_the_sign_change_bracket_and_the_refined_minimizer():
    run = ds.minimize("x**2 - x", 3.0, optimizer=ds.optim.gd(lr=0.9), refine=True)
    assert run.status == "sign_change"
    ax = plot.path(run, "x**2 - x").axes[0]
    path = np.ravel(run.history["x"])
    (span,) = [p for p in ax.patches if p.get_gid() == "bracket:gd"]
    np.testing.assert_allclose(span.get_bbox().intervalx, sorted(path[-2:]), rtol=1e-12)
    refined = lines_by_gid(ax)["refined:gd"]
    x = float(run.x["x"])  # an expression's point is a dict by variable
    np.testing.assert_allclose(refined.get_xydata(), [[x, x**2 - x]], rtol=1e-12)
    assert run.bracket[0] <= x <= run.bracket[1]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any(t.startswith("refined minimizer x = 0.5") for t in legend)
    assert any(t.startswith("f' changed sign in [-1.5, 3]") for t in legend)
    # A run without refine that still crossed the minimum shades result.bracket.
    crossing = ds.minimize("x**2 - x", 3.0, optimizer=ds.optim.gd(lr=0.9), max_iter=5)
    ax = plot.path(crossing, "x**2 - x").axes[0]
    assert "refined:gd" not in lines_by_gid(ax)
    assert [p.get_gid() for p in ax.patches if p.get_gid()] == ["bracket:gd"]


def test_race_refuses_a_sequence_of_axes_other_than_a_pair():
    from descend.errors import DescendTypeError

    race = ds.compare("booth", ["gd", "momentum"], max_iter=50)
    axes = Figure().subplots(1, 3)
    with pytest.raises(DescendTypeError, match="one Axes or a pair"):
        ds.plot.race(race, ax=list(axes))
