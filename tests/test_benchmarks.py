"""The benchmark suite keeps running: every row on tiny sizes, the report, the CLI.

Structure only: timings are never asserted (speed lives in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))

from benchmarks import harness, problems, report  # noqa: E402
from benchmarks.__main__ import main  # noqa: E402

ROW_NUMBERS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]


@pytest.fixture
def tiny(tmp_path) -> harness.Settings:
    return harness.Settings.for_mode("tiny", strict=True, out_dir=tmp_path)


def _check_comparison(table: harness.Comparison) -> None:
    baseline = table.find(table.baseline)
    assert baseline is not None and baseline.timing is not None, table.title
    assert table.ratio(baseline) == pytest.approx(1.0)
    assert len(table.entries) >= 2, "a comparison needs descend and at least one peer"
    for entry in table.entries:
        if entry.timing is None:
            assert entry.skipped, f"{entry.tool} has neither numbers nor a reason"
            continue
        assert entry.timing.cold > 0 and entry.timing.warm
        assert all(t > 0 for t in entry.timing.warm)
        assert all(column.key in entry.values for column in table.columns), entry.tool
        numbers = [v for v in entry.values.values() if isinstance(v, (int, float))]
        assert all(math.isfinite(v) for v in numbers), (entry.tool, entry.values)
        assert table.ratio(entry) > 0 and table.ratio(entry, "cold") > 0


def _check_table(table: harness.Table) -> None:
    assert table.rows
    assert all(len(cells) == len(table.headers) for cells in table.rows)


@pytest.mark.parametrize("number", ROW_NUMBERS)
def test_row_runs_on_tiny_sizes_and_fills_its_tables(number, tiny):
    entry = {row.number: row for row in harness.rows()}[number]
    # First calls in new processes are checked on one row (3, the quickest to start).
    result = entry.run(tiny if number == 3 else dataclasses.replace(tiny, fresh_processes=False))
    assert (result.number, result.name) == (entry.number, entry.name)
    assert result.error is None and result.tables
    for table in result.tables:
        if isinstance(table, harness.Comparison):
            _check_comparison(table)
        else:
            _check_table(table)
    for figure in result.figures:
        assert figure.is_file() and figure.stat().st_size > 0
    text = "\n".join(report.row_lines(result, tiny.out_dir))
    assert text.startswith(f"## {number}. ")
    if number == 3:
        first = next(t for t in result.tables if t.title.startswith("A user's first call"))
        assert [cells[0] for cells in first.rows] == [
            "descend",
            "JAX, jit + fori_loop",
            "NumPy, gradient written out",
        ]


@pytest.mark.parametrize(
    "objective",
    [
        (problems.rosenbrock_jax, problems.rosenbrock_numpy, problems.rosenbrock_start(7)),
        "logistic",
    ],
    ids=["rosenbrock", "logistic"],
)
def test_numpy_objectives_match_jax_value_and_autodiff_gradient(objective, x64):
    import jax
    import numpy as np

    if objective == "logistic":
        logistic = problems.LogisticObjective(50, 4)
        theta = np.random.default_rng(0).normal(size=logistic.dim)
        objective = (logistic.jax_function(), logistic.numpy, theta)
    jax_fn, numpy_fn, x = objective
    value, grad = numpy_fn(x)
    expected_value, expected_grad = jax.value_and_grad(jax_fn)(x)
    np.testing.assert_allclose(value, float(expected_value), rtol=1e-12)
    np.testing.assert_allclose(grad, np.asarray(expected_grad), rtol=1e-10, atol=1e-12)


def test_registry_has_the_rows_with_unique_names():
    rows = harness.rows()
    assert [row.number for row in rows][: len(ROW_NUMBERS)] == ROW_NUMBERS
    assert len({row.name for row in rows}) == len(rows)


def test_select_accepts_numbers_and_names_without_duplicates():
    chosen = harness.select("1, minibatch,4")
    assert [row.number for row in chosen] == [1, 4]


def test_select_rejects_an_unknown_row_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown row '99'.*1 \(minibatch\)"):
        harness.select("99")


def test_measure_returns_the_first_result_and_one_time_per_call():
    calls = []
    timing, first = harness.measure(lambda: calls.append(len(calls)) or len(calls), repeats=2)
    assert first == 1 and len(calls) == 3
    assert len(timing.warm) == 2 and timing.cold > 0


def test_a_failing_peer_is_recorded_unless_strict(tiny):
    def broken() -> harness.Entry:
        raise RuntimeError("peer broke")

    table = harness.Comparison("t")
    table.add(harness.Settings.for_mode("tiny"), "peer", broken)
    assert table.entries[0].skipped == "failed: RuntimeError: peer broke"
    with pytest.raises(RuntimeError):
        table.add(tiny, "peer", broken)


def _fake_row(settings: harness.Settings) -> harness.RowResult:
    def timed(cold: float, warm: float, loss: float):
        return lambda: harness.Entry("", harness.Timing(cold, [warm]), {"loss": loss})

    table = harness.Comparison("fake problem", columns=[harness.Column("loss", "loss", "{:.2f}")])
    table.add(settings, "descend", timed(2.0, 1.0, 0.5))
    table.add(settings, "peer", timed(4.0, 3.0, 0.25))
    table.skip("absent peer", "not installed")
    return harness.RowResult(99, "fake", "A fake row", tables=[table], notes=["a note"])


def test_cli_runs_rows_and_writes_markdown_and_json(tmp_path, monkeypatch):
    monkeypatch.setitem(harness._ROWS, 99, harness.Row(99, "fake", "A fake row", _fake_row))
    out = tmp_path / "RESULTS.md"
    assert main(["--rows", "fake", "--out", str(out)]) == 0
    text = out.read_text()
    assert "## Machine" in text and "| CPU |" in text and "| jaxlib |" in text
    assert "| **descend** | 2.00 s | 1.00 s | 1 | 1.00× | 1.00× | 0.50 |" in text
    assert "| peer | 4.00 s | 3.00 s | 1 | 2.00× | 3.00× | 0.25 |" in text
    assert "*skipped: not installed*" in text
    raw = json.loads((tmp_path / "out" / "RESULTS.json").read_text())
    assert raw["rows"][0]["tables"][0]["entries"][1]["timing"]["warm"] == [3.0]


def test_cli_can_skip_the_first_calls_in_new_processes(tmp_path, monkeypatch):
    seen = []

    def fake_row(settings: harness.Settings) -> harness.RowResult:
        seen.append(settings.fresh_processes)
        return _fake_row(settings)

    monkeypatch.setitem(harness._ROWS, 99, harness.Row(99, "fake", "A fake row", fake_row))
    out = tmp_path / "RESULTS.md"
    assert main(["--rows", "fake", "--out", str(out)]) == 0
    assert main(["--rows", "fake", "--out", str(out), "--no-first-calls"]) == 0
    assert seen == [True, False]


def test_cli_rejects_unknown_rows_and_bad_repeats(capsys):
    assert main(["--rows", "nope"]) == 2
    assert main(["--repeats", "0", "--rows", "1"]) == 2
    assert "unknown row 'nope'" in capsys.readouterr().err


def test_cli_lists_the_rows(capsys):
    assert main(["--list"]) == 0
    assert "minibatch" in capsys.readouterr().out


# --------------------------------------------------------------------------- first calls

FIRST_NUMPY = "benchmarks.rows.row3_batch:first_call_numpy"
FIRST_JAX = "benchmarks.rows.row3_batch:first_call_jax"


def test_first_call_runs_in_a_new_process_and_fills_the_cache_folder(tiny, tmp_path):
    import jax

    cache = tmp_path / "jax-cache"
    before = jax.config.values.get("jax_compilation_cache_dir")
    seconds = harness.first_call(FIRST_JAX, tiny, cache=cache)
    assert seconds > 0
    written = {path.name for path in cache.iterdir() if not path.name.startswith(".")}
    assert written, "the new process compiled nothing into the cache folder"
    assert harness.first_call(FIRST_JAX, tiny, cache=cache) > 0
    assert {path.name for path in cache.iterdir() if not path.name.startswith(".")} == written
    # The parent's configuration is untouched: only the child used the folder.
    assert jax.config.values.get("jax_compilation_cache_dir") == before


def test_first_call_says_which_target_failed(tiny):
    with pytest.raises(RuntimeError, match=r"benchmarks\.rows\.row3_batch:no_such_function"):
        harness.first_call("benchmarks.rows.row3_batch:no_such_function", tiny)


def test_first_call_passes_its_arguments_to_the_new_process(tiny):
    with pytest.raises(RuntimeError, match="unexpected keyword argument 'steps'"):
        harness.first_call(FIRST_NUMPY, tiny, arguments={"steps": 4})


def test_first_call_table_gives_ratios_to_descend_and_leaves_out_skipped_tools(tiny, monkeypatch):
    calls = []
    times = {"a:descend": [2.0, 0.5], "a:peer": [4.0, 2.0]}

    def fake(target, settings, *, cache=None, arguments=None):
        calls.append((target, cache))
        assert arguments == ({"k": 1} if target == "a:peer" else None)
        return times[target][sum(1 for t, _ in calls if t == target) - 1]

    monkeypatch.setattr(harness, "first_call", fake)
    table = harness.Comparison("t")
    table.entries += [
        harness.Entry("descend", harness.Timing(1.0, [0.1])),
        harness.Entry("peer", harness.Timing(1.0, [0.3])),
        harness.Entry("absent", skipped="not installed"),
    ]
    targets = {"descend": "a:descend", "peer": ("a:peer", {"k": 1}), "absent": "a:absent"}
    first = harness.first_call_table(table, tiny, targets)
    assert [cells[0] for cells in first.rows] == ["descend", "peer"]
    assert first.rows[1][1:] == ["4.00 s", "2.00×", "2.00 s", "4.00×", "300 ms", "3.00×"]
    # The empty-cache and the warm-cache process of one tool share one new folder.
    folders = [cache for _, cache in calls]
    assert folders[0] == folders[1] != folders[2] == folders[3]
    _check_table(first)
    assert (
        harness.first_call_table(table, dataclasses.replace(tiny, fresh_processes=False), targets)
        is None
    )


# --------------------------------------------------------------------------- data, peers


def test_covertype_like_data_has_the_layout_of_the_benchmark_split():
    import numpy as np

    X, y = problems.covertype_like_data(20_000, seed=3)
    assert problems.COVERTYPE_SHAPE == (522_911, 54)
    assert X.shape == (20_000, 54) and X.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_allclose(X[:, :10].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(X[:, :10].std(axis=0), 1.0, atol=1e-4)
    one_hot = X[:, 10:]
    assert set(np.unique(one_hot)) == {0.0, 1.0} and set(np.unique(y)) == {0.0, 1.0}
    assert (one_hot[:, :4].sum(axis=1) == 1).all() and (one_hot[:, 4:].sum(axis=1) == 1).all()
    assert 0.32 < y.mean() < 0.41
    again, labels = problems.covertype_like_data(20_000, seed=3)
    assert np.array_equal(again, X) and np.array_equal(labels, y)
    assert not np.array_equal(problems.covertype_like_data(20_000, seed=4)[1], y)


def test_vowpal_wabbit_runs_plain_sgd_at_a_constant_rate(tmp_path):
    import numpy as np
    from benchmarks import peers

    pytest.importorskip("vowpalwabbit")
    X, y = problems.classification_data(300, 5)
    order = np.random.default_rng(0).permutation(len(X))
    path = tmp_path / "train.vw"
    peers.write_vw_text(path, X, y, order)
    trained = peers.vw_logistic(path, X.shape[1], lr=0.05)
    # The same pass written out: one logistic-loss gradient step per row, in order.
    w, b = np.zeros(X.shape[1]), 0.0
    for i in order:
        label = 1.0 if y[i] > 0 else -1.0
        slope = -label / (1.0 + np.exp(label * (X[i] @ w + b)))
        w -= 0.05 * slope * X[i]
        b -= 0.05 * slope
    assert trained.n_steps == len(X)
    np.testing.assert_allclose(trained.w, w, rtol=1e-4, atol=1e-5)
    assert trained.b == pytest.approx(b, rel=1e-4, abs=1e-5)


def test_keras_is_imported_on_jax_without_changing_jax_configuration(monkeypatch):
    import importlib.util
    import os

    import jax

    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed")
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    before = dict(jax.config.values)
    keras, missing = harness.keras_on_jax()
    if "keras" in sys.modules and keras is None:
        pytest.skip(missing)  # imported earlier in this process with another backend
    assert missing is None and keras.backend.backend() == "jax"
    assert dict(jax.config.values) == before
    assert os.environ["KERAS_BACKEND"] == "torch"


def test_keras_missing_is_a_reason_not_an_error(monkeypatch):
    import importlib.util

    monkeypatch.delitem(sys.modules, "keras", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    assert harness.keras_on_jax() == (None, "keras is not installed (pip install keras)")


def test_keras_steps_per_execution_picks_the_fastest_value_tried():
    import numpy as np
    from benchmarks import peers

    keras, missing = harness.keras_on_jax()
    if keras is None:
        pytest.skip(missing)
    X, y = problems.classification_data(64, 3)
    chosen, per_step = peers.keras_steps_per_execution(
        keras, X, y, algorithm="sgd", lr=0.1, batch_size=8, candidates=(1, 4)
    )
    assert set(per_step) == {1, 4} and per_step[chosen] == min(per_step.values())
    trainer = peers.KerasLogistic(keras, 3, algorithm="adam", lr=0.1, steps_per_execution=4)
    first = trainer.train(X, y, batch_size=8, epochs=2, shuffle=False)
    assert first.n_steps == 16 and first.w.shape == (3,)
    assert problems.log_loss(X, y, first.w, first.b) < math.log(2) - 0.01  # it learned
    # Each call starts again from zero weights and a fresh optimizer state.
    again = trainer.train(X, y, batch_size=8, epochs=2, shuffle=False)
    np.testing.assert_array_equal(again.w, first.w)
    assert again.b == first.b
