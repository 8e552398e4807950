"""The benchmark suite keeps running: every row on tiny sizes, the report, the CLI.

Structure only: timings are never asserted (speed lives in benchmarks/RESULTS.md).
"""

from __future__ import annotations

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

ROW_NUMBERS = [1, 2, 3, 4, 5, 6, 7, 8, 9]


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
    result = entry.run(tiny)
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


def test_cli_rejects_unknown_rows_and_bad_repeats(capsys):
    assert main(["--rows", "nope"]) == 2
    assert main(["--repeats", "0", "--rows", "1"]) == 2
    assert "unknown row 'nope'" in capsys.readouterr().err


def test_cli_lists_the_rows(capsys):
    assert main(["--list"]) == 0
    assert "minibatch" in capsys.readouterr().out
