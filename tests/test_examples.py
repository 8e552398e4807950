"""Every script in examples/ runs to the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import descend as ds

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(script, tmp_path):
    # The package from this checkout, also when it is not installed (PYTHONPATH=src).
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    process = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
        timeout=600, env={**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": path},
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stdout.strip()


# ------------------------------------------------------------------ the notebook

NOTEBOOK = ROOT / "examples" / "seed_story.ipynb"


@pytest.fixture
def kernel_of_this_interpreter(tmp_path, monkeypatch):
    """Jupyter's ``python3`` kernel on this interpreter and this checkout: a kernelspec
    found before any other (``JUPYTER_PATH``), running ``sys.executable``."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own: inline pictures


def _outputs(notebook) -> dict[str, list]:
    return {
        cell.metadata["tags"][0]: cell.outputs
        for cell in notebook.cells
        if cell.cell_type == "code" and cell.metadata.get("tags")
    }


def _text(outputs, name: str = "stdout") -> str:
    return "".join(o.text for o in outputs if o.output_type == "stream" and o.name == name)


def _data(outputs, kind: str) -> list[str]:
    return [o.data[kind] for o in outputs if kind in o.get("data", {})]


@pytest.mark.slow
def test_the_seed_story_notebook_runs_and_tells_the_seeds_numbers(
    kernel_of_this_interpreter, tmp_path
):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    sympy = pytest.importorskip("sympy")

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import sys, descend\nprint(sys.executable)\nprint(descend.__file__)",
        metadata={"tags": ["where"]},
    ))  # fmt: skip
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    out = _outputs(notebook)

    # The kernel ran this interpreter and this checkout's descend.
    executable, module = _text(out["where"]).split()
    assert executable == sys.executable
    assert Path(module).resolve().is_relative_to(ROOT / "src")

    # The seed's numbers, by SymPy: (5x^2)' = 10x is 10 at 1; the gradient of
    # 2x^2 + 6z^2 + 7m^3 at [1, 1, 1] is [4, 12, 21].
    x, z, m = sympy.symbols("x z m")
    slope = float(sympy.diff(5 * x**2, x).subs(x, 1))
    assert f"derivative of 5x^2 at x = 1: {slope}" in _text(out["derivative"])
    expression = 2 * x**2 + 6 * z**2 + 7 * m**3
    gradient = [float(sympy.diff(expression, v).subs({x: 1, z: 1, m: 1})) for v in (x, z, m)]
    assert f"gradient at [1, 1, 1]: {gradient}" in _text(out["gradient"])

    # One descent: its table, converged to SymPy's minimizer of 5x^2, and the tangents.
    (minimizer,) = sympy.solve(sympy.diff(5 * x**2, x), x)
    (descent,) = _data(out["descent"], "text/html")
    assert "MinimizeResult" in descent and "bracket" in descent and "<svg" in descent
    (plain,) = _data(out["descent"], "text/plain")
    assert "status='converged'" in plain and len(plain) < 300
    shown_x = float(plain.split("x=")[1].split(",")[0])
    assert abs(shown_x - float(minimizer)) < 1e-6
    assert _data(out["tangents"], "image/png")

    # The race: a table and a curve per optimizer, a best one, its picture.
    (race,) = _data(out["race"], "text/html")
    assert race.count("<polyline") == 3 and "* " in race
    assert "best=None" not in _data(out["race"], "text/plain")[0]
    assert _data(out["race-plot"], "image/png")

    # Batch, stochastic, mini-batch: one update an epoch, one a sample, one a batch of 32.
    n = len(ds.data.load_dataset("diabetes").y)
    lines = _text(out["methods"]).splitlines()
    updates = {line.split()[0]: int(line.split()[2]) for line in lines}
    assert updates == {"batch": 10, "stochastic": 10 * n, "mini-batch": 10 * -(-n // 32)}
    losses = [float(line.split("final loss")[1].split()[0]) for line in lines]
    assert all(0 < loss < 1 for loss in losses)  # standardized targets: below the variance
    assert _data(out["methods-plot"], "image/png")

    # Progress in the notebook's form (tqdm.auto: a widget, or its text bar without
    # ipywidgets), never a log's lines; nothing at verbose=0.
    progress = out["progress"]
    widget = _data(progress, "application/vnd.jupyter.widget-view+json")
    bar = _text(progress, "stderr")
    assert widget or ("epoch:" in bar and "%|" in bar)
    assert "epoch 1/" not in bar
    assert out["quiet"] == []
    (model,) = _data(out["model"], "text/html")
    assert "FitResult" in model and "loss per epoch" in model
