"""descend.plot.frames: the race animation of the README moves every optimizer early.

The README's race (gd, momentum, adam, lbfgs on Rosenbrock) is read from the README's
own command, so that the test follows the picture the README shows.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from descend import plot
from descend.cli.common import target_and_start
from descend.cli.race import optimizers_from_text
from descend.plot import draw, frames
from descend.plot.racing import compare

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_race_command() -> list[str]:
    """The ``descend compare ... --plot docs/race.png`` line under the README's race picture."""
    line = re.search(r"^`(descend compare [^`]*docs/race\.png[^`]*)`$", README.read_text(), re.M)
    assert line, "the README shows no 'descend compare ... docs/race.png' command"
    return shlex.split(line.group(1))


@pytest.fixture(scope="module")
def readme_race():
    argv = readme_race_command()
    option = {argv[i]: argv[i + 1] for i in range(3, len(argv) - 1) if argv[i].startswith("--")}
    target, x0, _ = target_and_start(argv[2], option.get("--x0"), None)
    return compare(target, optimizers_from_text(option["--optimizers"]), x0)


@pytest.fixture(scope="module")
def readme_gif(readme_race, tmp_path_factory):
    """The animation as ``descend compare ... --animate`` writes it (its defaults)."""
    path = tmp_path_factory.mktemp("race") / "race.gif"
    fig = plot.animate(readme_race, path=path, verbose=0)
    with Image.open(path) as image:
        pictures = []
        for index in range(image.n_frames):
            image.seek(index)
            pictures.append(np.asarray(image.convert("RGB"), dtype=np.int16))
    return fig, pictures


def head_pixels(fig, race, iterations):
    """Where each run's head is drawn in each frame, in pixels of the saved image
    (origin top left), from the recorded paths and the frames' iterations."""
    map_ax = fig.axes[0]
    height = fig.bbox.height
    heads = {}
    for label, result in race.results.items():
        path = np.asarray(result.history["x"], float)
        points = path[[frames.head_index(len(path), k) for k in iterations]]
        pixels = map_ax.transData.transform(points)
        heads[label] = np.c_[pixels[:, 0], height - pixels[:, 1]]
    return heads


def moves(race, fig, iterations):
    """Per run: the head's travel in pixels between consecutive frames, and whether the
    run is still going at the later frame."""
    heads = head_pixels(fig, race, iterations)
    out = {}
    for (label, pixels), result in zip(heads.items(), race.results.values(), strict=True):
        steps = np.linalg.norm(np.diff(pixels, axis=0), axis=1)
        out[label] = (steps, iterations[1:] <= len(result.history["x"]) - 1)
    return out


def assert_every_run_moves(race, fig, iterations):
    """In the frames given: every run moves (>= 0.5 pixel) in at least 12 of them, 20
    pixels in all, and never stalls (under 1 pixel in 5 frames) before it finishes.

    On the README's race, frames linear in the iteration fail this three ways (gd moves
    in 10 frames, lbfgs in 2, momentum stalls); log-spaced frames pass with adam, the
    slowest to leave its start, moving in 15.
    """
    for label, (steps, running) in moves(race, fig, iterations).items():
        assert (steps >= 0.5).sum() >= 12, (label, steps)
        assert steps.sum() >= 20, (label, steps.sum())
        live = steps[running]
        if live.size >= 5:
            windows = np.lib.stride_tricks.sliding_window_view(live, 5).sum(axis=1)
            assert windows.min() >= 1.0, (label, windows)


def test_every_optimizer_of_the_readme_race_moves_in_the_first_third(readme_race, readme_gif):
    fig, pictures = readme_gif
    lengths = [len(r.history["x"]) for r in readme_race.results.values()]
    iterations = frames.frame_iterations(lengths, 150)
    assert len(pictures) == len(iterations)
    first_third = iterations[: len(iterations) // 3 + 1]
    assert_every_run_moves(readme_race, fig, first_third)
    # The rendered frames change where each head arrives, each time it moves 3 pixels.
    for label, pixels in head_pixels(fig, readme_race, first_third).items():
        steps = np.linalg.norm(np.diff(pixels, axis=0), axis=1)
        for j in np.flatnonzero(steps >= 3.0):
            x, y = np.round(pixels[j + 1]).astype(int)
            before, after = (p[y - 4 : y + 5, x - 4 : x + 5] for p in pictures[j : j + 2])
            assert np.abs(after - before).sum() > 0, (label, j)


def test_frames_linear_in_the_iteration_fail_that_check(readme_race, readme_gif):
    fig, _ = readme_gif
    lengths = [len(r.history["x"]) for r in readme_race.results.values()]
    linear = np.unique(np.linspace(0, max(lengths) - 1, 150).round().astype(int))
    with pytest.raises(AssertionError):
        assert_every_run_moves(readme_race, fig, linear[: len(linear) // 3 + 1])


def test_the_animation_counts_iterations_and_shows_each_value(readme_race, readme_gif):
    fig, pictures = readme_gif
    longest = max(len(r.history["x"]) for r in readme_race.results.values())
    counter = next(t for t in fig.texts if t.get_gid() == "counter")
    assert counter.get_text() == f"iteration {longest - 1:,} of {longest - 1:,}"  # last frame
    value_ax = fig.axes[1]
    lines = {line.get_gid(): line for line in value_ax.get_lines()}
    texts = {text.get_gid(): text.get_text() for text in value_ax.texts}
    minimum = readme_race.target.minimum
    for label, result in readme_race.results.items():
        values = np.asarray(result.history["value"], float) - minimum
        np.testing.assert_array_equal(lines[f"values:{label}"].get_ydata(), values)
        assert f"{values[-1]:9.3g}" in texts[f"readout:{label}"]
    # The counter's strip at the top changes from the first frame to the second.
    top = int(0.06 * pictures[0].shape[0])
    assert np.abs(pictures[1][:top] - pictures[0][:top]).sum() > 0


def test_frame_iterations_start_dense_and_end_at_the_last_iteration():
    for lengths, most in (([5], 10), ([3187, 209, 43], 150), ([10**6], 200), ([202], 200)):
        ks = frames.frame_iterations(lengths, most)
        assert ks[0] == 0 and ks[-1] == max(lengths) - 1
        assert len(ks) == min(max(lengths), most) and np.all(np.diff(ks) > 0)
        gaps = np.diff(ks)
        assert np.all(np.diff(gaps) >= -1)  # the gaps only widen (up to rounding)


def test_rendering_reports_every_frame(readme_race, tmp_path, capsys):
    run = {"gd": readme_race.results["gd"]}
    plot.animate(run, "rosenbrock", path=tmp_path / "gd.gif", max_frames=6, dpi=30, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"frame {k}/6: rendering gd.gif" for k in range(1, 7)]


def test_blitted_frames_equal_full_redraws(readme_race):
    # Blitting draws the moving artists over a saved background: the pixels must be those
    # of drawing the whole figure at that frame (the legend and star above the paths).
    scene = draw.scene_of(readme_race, None, None)
    movie = frames.build(
        scene, size=(8, 3.5), levels=8, log_levels=True, title="t", max_frames=5, values=True
    )
    blitted = frames.render(movie)
    for iteration, picture in zip(movie.frames, blitted, strict=True):
        movie.update(int(iteration))
        for artist in movie.moving:
            artist.set_animated(False)
        movie.fig.canvas.draw()
        full = np.asarray(movie.fig.canvas.buffer_rgba())[..., :3]
        for artist in movie.moving:
            artist.set_animated(True)
        # Blitting draws a path over the axes' frame (spines) where a full draw puts the
        # frame on top: a few pixels differ where the paths touch it, no more.
        differ = np.abs(full.astype(int) - picture).max(axis=2) > 1
        assert differ.mean() < 1e-3, differ.sum()
