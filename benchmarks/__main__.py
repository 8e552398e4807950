"""``python -m benchmarks``: run the rows, write RESULTS.md (or RESULTS-gpu.md).

Exit status 0 when every row ran, 1 when a row failed (its section says why), 2 for a
bad argument or a missing device.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.harness import Row, RowResult, Settings

HERE = Path(__file__).resolve().parent
DEVICES = ("cpu", "gpu")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time descend against its peers (PyTorch, Optax, SciPy, scikit-learn, "
        "Keras, Vowpal Wabbit, NumPy) and write the results as Markdown.",
    )
    parser.add_argument("--rows", help="rows to run, by number or name: 1,3 or minibatch")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    size.add_argument("--full", action="store_true", help="more repeats; time the slow loops whole")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument(
        "--out", type=Path, help="the Markdown file (default benchmarks/RESULTS[-gpu].md)"
    )
    parser.add_argument("--repeats", type=int, help="warm calls per measurement")
    parser.add_argument(
        "--threads",
        type=int,
        help="limit BLAS, OpenMP, PyTorch (and XLA, for 1) to N threads; default: each "
        "library's own default. Use 1 on a machine shared with other work",
    )
    parser.add_argument(
        "--no-first-calls",
        action="store_true",
        help="skip the first calls timed in new processes (rows 1-3), which start several "
        "Python processes per row",
    )
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    return parser.parse_args(argv)


def default_out(mode: str, device: str) -> Path:
    suffix = "-gpu" if device == "gpu" else ""
    if mode in ("quick", "tiny"):
        return HERE / "out" / f"RESULTS-quick{suffix}.md"
    return HERE / f"RESULTS{suffix}.md"


def limit_threads(n_threads: int) -> None:
    """Thread limits that must be set before NumPy, SciPy, PyTorch and JAX start."""
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(n_threads)
    if n_threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        ).strip()


def run_row(row: Row, settings: Settings) -> RowResult:
    """Run one row; a crash becomes a result with the error (or is raised when strict)."""
    from benchmarks import harness

    print(f"[{row.number}] {row.title}", flush=True)
    began = time.perf_counter()
    if settings.device not in row.devices:
        result = harness.RowResult(
            row.number, row.name, row.title,
            notes=[f"Not run on the {settings.device.upper()}: this row is for "
                   f"{', '.join(d.upper() for d in row.devices)} only."],
        )  # fmt: skip
    else:
        try:
            result = row.run(settings)
        except Exception as error:
            if settings.strict:
                raise
            traceback.print_exc()
            result = harness.RowResult(
                row.number, row.name, row.title, error=f"{type(error).__name__}: {error}"
            )
    result.seconds = time.perf_counter() - began
    print(f"[{row.number}] done in {harness.format_seconds(result.seconds)}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            print(f"error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
            return 2
        limit_threads(args.threads)
    if args.device == "gpu":
        # JAX would otherwise take most of the GPU's memory at start, leaving little for
        # the PyTorch peers in the same process.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    from benchmarks import harness, report

    try:
        chosen = harness.select(args.rows)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.list:
        for entry in harness.rows():
            print(f"{entry.number}  {entry.name:<14} {entry.title}")
        return 0
    mode = "quick" if args.quick else "full" if args.full else "default"
    out = (args.out or default_out(mode, args.device)).resolve()
    overrides = {
        "device": args.device,
        "out_dir": out.parent,
        "fresh_processes": not args.no_first_calls,
    }
    if args.repeats is not None:
        if args.repeats < 1:
            print(f"error: --repeats must be >= 1, got {args.repeats}", file=sys.stderr)
            return 2
        overrides |= {"repeats": args.repeats, "heavy_repeats": args.repeats}
    settings = harness.Settings.for_mode(mode, threads=args.threads, **overrides)

    import jax

    try:
        device = harness.jax_device(settings)
    except RuntimeError:
        print(
            "error: --device gpu needs JAX with a GPU backend (e.g. pip install "
            "'jax[cuda12]'); JAX sees only " + ", ".join(map(str, jax.devices())),
            file=sys.stderr,
        )
        return 2
    torch = harness.optional("torch")
    if torch is not None and args.threads:
        torch.set_num_threads(args.threads)

    run = {
        "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
        "started": report.now(),
        "load_start": f"{os.getloadavg()[0]:.2f}",
        "machine": report.machine(settings),
    }
    began = time.perf_counter()
    results = []
    with jax.default_device(device):
        jax.numpy.zeros(()).block_until_ready()  # backend start-up is nobody's cold time
        for row in chosen:
            results.append(run_row(row, settings))
            run |= {"seconds": time.perf_counter() - began, "load_end": f"{os.getloadavg()[0]:.2f}"}
            raw = report.write(results, settings, run, out)
    print(f"wrote {out} and {raw} in {harness.format_seconds(run['seconds'])}")
    return 1 if any(result.error for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
