"""``python -m benchmarks.progress``: what a progress display costs an epoch in Jupyter.

Runs a notebook in a real kernel (nbclient, ``ipykernel``'s ``python3`` on this
interpreter) that trains a tiny model for many epochs, one compiled program an epoch,
and times the epochs with a callback that updates each candidate display:

- nothing (the floor: the callback alone);
- rich: ``rich.progress.Progress`` on a console that detects Jupyter (``is_jupyter``);
- tqdm.auto: ``tqdm.auto.tqdm`` (a widget with ipywidgets, a text bar on stderr without);
- a plain line on stderr per epoch.

Prints one line per display: milliseconds per epoch and the overhead over the floor.
Needs nbclient, nbformat and ipykernel; ipywidgets decides what the notebook displays
can draw (run once with and once without it on ``PYTHONPATH``).
"""

from __future__ import annotations

import json
import statistics
import sys

CELL = r"""
import json, sys, time, warnings
import numpy as np
import descend as ds

rng = np.random.default_rng(0)
X = rng.normal(size=(256, 5))
y = X @ np.arange(1.0, 6.0) + 0.1 * rng.normal(size=256)
EPOCHS = {epochs}

def timed(update, close=lambda: None):
    def callback(epoch, history):
        update(epoch, history)
    began, cpu = time.perf_counter(), time.process_time()
    ds.fit("linear", X, y, optimizer="sgd", lr=0.01, batch_size=None, epochs=EPOCHS,
           patience=None, verbose=0, callbacks=[callback], seed=0)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    close()
    return 1e3 * seconds / EPOCHS, 1e3 * cpu / EPOCHS

timed(lambda epoch, history: None)  # compile
results = {{}}
for _ in range({repeats}):
    results.setdefault("nothing", []).append(timed(lambda epoch, history: None))

    from rich.console import Console
    from rich.progress import Progress
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bar = Progress(console=Console())
        task = bar.add_task("epoch", total=EPOCHS)
        bar.start()
        results.setdefault("rich", []).append(timed(
            lambda epoch, history: bar.update(task, completed=epoch,
                                              description=f"loss {{history['loss'][-1]:.4g}}"),
            bar.stop))
    results["rich_jupyter"] = bar.console.is_jupyter
    results["rich_warned"] = sorted(set(results.get("rich_warned", []))
                                    | {{str(w.message)[:60] for w in caught}})

    from tqdm.auto import tqdm
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pbar = tqdm(total=EPOCHS, unit="epoch")
        results.setdefault("tqdm.auto", []).append(timed(
            lambda epoch, history: (pbar.update(1),
                                    pbar.set_postfix_str(f"loss {{history['loss'][-1]:.4g}}",
                                                         refresh=False)),
            pbar.close))
    results["tqdm_class"] = type(pbar).__module__
    results["tqdm_warned"] = sorted(set(results.get("tqdm_warned", []))
                                    | {{str(w.message)[:60] for w in caught}})

    results.setdefault("line", []).append(timed(
        lambda epoch, history: print(
            f"epoch {{epoch}}/{{EPOCHS}}: loss {{history['loss'][-1]:.4g}}",
            file=sys.stderr, flush=True)))

# The calls alone: an update per epoch, and a forced redraw (each library redraws at most
# ten times a second: rich from a thread, tqdm from the update that finds 0.1 s passed).
def per_call(call, n):
    began = time.perf_counter()
    for i in range(n):
        call(i)
    return 1e6 * (time.perf_counter() - began) / n

bar = Progress(console=Console(), auto_refresh=False)
task = bar.add_task("epoch", total=10**6)
bar.start()
results["rich update us"] = per_call(
    lambda i: bar.update(task, completed=i, description="loss 0.1"), 20000)
results["rich redraw us"] = per_call(lambda i: bar.refresh(), 200)
bar.stop()
pbar = tqdm(total=10**6)
results["tqdm update us"] = per_call(
    lambda i: (pbar.update(1), pbar.set_postfix_str("loss 0.1", refresh=False)), 20000)
results["tqdm redraw us"] = per_call(lambda i: pbar.refresh(), 200)
pbar.close()
print("RESULTS " + json.dumps(results))
"""


def measure(epochs: int = 500, repeats: int = 9) -> dict:
    """Run the notebook; the per-epoch times (ms) of each display, one per repeat."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(CELL.format(epochs=epochs, repeats=repeats))]
    NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    for output in notebook.cells[0].outputs:
        if output.get("name") == "stdout" and "RESULTS " in output.get("text", ""):
            line = next(t for t in output["text"].splitlines() if t.startswith("RESULTS "))
            return json.loads(line.removeprefix("RESULTS "))
    raise RuntimeError(f"no results in the notebook's outputs: {notebook.cells[0].outputs}")


def main() -> int:
    results = measure()
    floor = [statistics.median(t[i] for t in results["nothing"]) for i in (0, 1)]
    print(f"rich in Jupyter: {results['rich_jupyter']}; warnings: {results['rich_warned']}")
    print(f"tqdm.auto: {results['tqdm_class']}; warnings: {results['tqdm_warned']}")
    for name in ("nothing", "rich", "tqdm.auto", "line"):
        wall = statistics.median(t[0] for t in results[name])
        cpu = statistics.median(t[1] for t in results[name])
        print(
            f"{name:10s} wall {wall:6.3f} ms/epoch (+{1e3 * (wall - floor[0]):6.1f} us), "
            f"cpu {cpu:6.3f} ms/epoch (+{1e3 * (cpu - floor[1]):6.1f} us), "
            f"median of {len(results[name])}"
        )
    for name in ("rich", "tqdm"):
        print(
            f"{name}: {results[name + ' update us']:.1f} us an update, "
            f"{results[name + ' redraw us']:.0f} us a redraw"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
