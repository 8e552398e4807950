"""Row 6: time per epoch as the data grows and as the batch size changes."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks import peers, problems
from benchmarks.harness import (
    RowResult,
    Settings,
    Table,
    format_ratio,
    format_seconds,
    measure,
    optional,
    row,
    torch_device,
    torch_missing,
    torch_sync,
)

LR, SEED = 1e-3, 0


@dataclass(frozen=True)
class Sizes:
    n_features: int
    sample_counts: tuple[int, ...]  # at batch size BATCH_SIZE
    batch_size: int
    batch_sizes: tuple[int, ...]  # at batch_n samples
    batch_n: int
    loop_cap: int | None  # steps the PyTorch loop runs before its time is extrapolated


SIZES = {
    # (samples, batch) pairs that appear in both sweeps are compiled once.
    "tiny": Sizes(4, (200,), 32, (1, 32), 200, 5),
    "quick": Sizes(100, (1_000, 10_000), 32, (1, 32, 256), 10_000, 500),
    "default": Sizes(
        100, (10_000, 30_000, 100_000, 300_000, 1_000_000), 32,
        (1, 4, 16, 64, 256, 1_024, 4_096), 100_000, 2_000,
    ),
    "full": Sizes(
        100, (10_000, 30_000, 100_000, 300_000, 1_000_000), 32,
        (1, 4, 16, 64, 256, 1_024, 4_096), 100_000, None,
    ),
}  # fmt: skip

TOOLS = ("descend", "JAX + Optax, lax.scan", "PyTorch loop, fused Adam")


@row(6, "scaling", "Scaling: time per epoch against samples and batch size")
def run(settings: Settings) -> RowResult:
    sizes = settings.pick(SIZES)
    largest = max(*sizes.sample_counts, sizes.batch_n)
    X_all, y_all = problems.classification_data(largest, sizes.n_features)
    trainers, failures = _trainers(settings, sizes), []

    measured: dict[tuple[str, int, int], float | None] = {}

    def time_epoch(tool: str, n_samples: int, batch_size: int) -> float | None:
        """Seconds per epoch (warm), measured once per (tool, samples, batch size)."""
        if (tool, n_samples, batch_size) not in measured:
            measured[tool, n_samples, batch_size] = _time_epoch(tool, n_samples, batch_size)
        return measured[tool, n_samples, batch_size]

    def _time_epoch(tool: str, n_samples: int, batch_size: int) -> float | None:
        X, y = X_all[:n_samples], y_all[:n_samples]
        print(f"    {tool}, {n_samples:,} samples, batch {batch_size} ...", end="", flush=True)
        try:
            seconds = trainers[tool](X, y, batch_size)
        except Exception as error:  # recorded in the report, not swallowed
            if settings.strict:
                raise
            failures.append(f"{tool} at {n_samples:,} × batch {batch_size}: {error}"[:200])
            print(" failed")
            return None
        print(f" {format_seconds(seconds)}")
        return seconds

    available = [tool for tool in TOOLS if callable(trainers[tool])]
    by_samples = {
        n: {tool: time_epoch(tool, n, sizes.batch_size) for tool in available}
        for n in sizes.sample_counts
    }
    by_batch = {
        b: {tool: time_epoch(tool, sizes.batch_n, b) for tool in available}
        for b in sizes.batch_sizes
    }
    figure = settings.out_dir / ("scaling-gpu.png" if settings.device == "gpu" else "scaling.png")
    _plot(figure, by_samples, by_batch, sizes)

    notes = [
        f"Logistic regression, {sizes.n_features} float32 features, Adam lr={LR:g}, one "
        "epoch with shuffling; the warm time (median) of one epoch, from NumPy arrays to "
        "weights on the host.",
        "ratio = peer time / descend time (above 1: descend is faster).",
    ]
    if "PyTorch loop, fused Adam" in available and sizes.loop_cap is not None:
        notes.append(
            f"The PyTorch loop runs at most {sizes.loop_cap:,} steps per measurement; its "
            "epoch time is extrapolated from them (--full runs whole epochs)."
        )
    notes += [f"{tool}: {trainers[tool]}" for tool in TOOLS if isinstance(trainers[tool], str)]
    notes += [f"failed: {failure}" for failure in failures]
    return RowResult(
        6, "scaling", "Scaling",
        description="Time per epoch as the number of samples grows (batch size "
        f"{sizes.batch_size}) and as the batch size grows ({sizes.batch_n:,} samples).",
        tables=[
            _table(f"Time per epoch against the number of samples (batch {sizes.batch_size})",
                   "samples", by_samples, available, rate=True),
            _table(f"Time per epoch against the batch size ({sizes.batch_n:,} samples)",
                   "batch size", by_batch, available, rate=False),
        ],
        figures=[figure],
        notes=notes,
    )  # fmt: skip


def _trainers(settings: Settings, sizes: Sizes) -> dict:
    """``tool -> epoch_seconds(X, y, batch_size)``, or the reason the tool is missing."""
    import descend

    repeats = settings.heavy_repeats

    def descend_epoch(X, y, batch_size):
        def call():
            return descend.fit(
                "logistic", X, y, optimizer="adam", lr=LR, batch_size=batch_size, epochs=1,
                seed=SEED, verbose=0, **problems.PLAIN,
            )  # fmt: skip

        return measure(call, repeats=repeats)[0].warm_median

    trainers: dict = {"descend": descend_epoch}
    optax = optional("optax")
    if optax is None:
        trainers["JAX + Optax, lax.scan"] = "optax is not installed"
    else:
        scan_loops = {}

        def scan_epoch(X, y, batch_size):
            if batch_size not in scan_loops:
                scan_loops[batch_size] = peers.optax_scan_loop(optax.adam(LR), batch_size)
            train = scan_loops[batch_size]
            return measure(lambda: train(X, y, epochs=1, seed=SEED), repeats=repeats)[0].warm_median

        trainers["JAX + Optax, lax.scan"] = scan_epoch

    device = torch_device(settings)
    if device is None:
        trainers["PyTorch loop, fused Adam"] = torch_missing(settings)
    else:

        def torch_epoch(X, y, batch_size):
            def call():
                trained = peers.torch_logistic(
                    X, y, algorithm="adam", lr=LR, batch_size=batch_size, epochs=1,
                    seed=SEED, implementation="fused", device=device,
                    max_steps=sizes.loop_cap,
                )  # fmt: skip
                torch_sync(device)
                return trained

            timing, trained = measure(call, repeats=repeats)
            steps_per_epoch = -(-len(X) // batch_size)
            return timing.warm_median * steps_per_epoch / trained.n_steps

        trainers["PyTorch loop, fused Adam"] = torch_epoch
    return trainers


def _table(title: str, label: str, results: dict, tools: list[str], *, rate: bool) -> Table:
    """One line per size: each tool's time, each peer's ratio, and (``rate``) descend's
    samples per second, the line's key being the number of samples."""
    others = [tool for tool in tools if tool != "descend"]
    headers = [label, *(f"{tool} (s/epoch)" for tool in tools)]
    headers += [f"{tool} / descend" for tool in others]
    if rate:
        headers.append("descend samples/s")
    table = Table(title, headers)
    for key, times in results.items():
        base = times.get("descend")
        cells = [f"{key:,}"] + [format_seconds(times[tool]) for tool in tools]
        cells += [
            format_ratio(times[tool] / base if base and times[tool] else None) for tool in others
        ]
        if rate:
            cells.append(f"{key / base:,.0f}" if base else "–")
        table.rows.append(cells)
    return table


def _plot(path, by_samples: dict, by_batch: dict, sizes: Sizes) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = figure.subplots(1, 2)
    for axes, results, xlabel in (
        (left, by_samples, f"samples (batch {sizes.batch_size})"),
        (right, by_batch, f"batch size ({sizes.batch_n:,} samples)"),
    ):
        tools = {tool for times in results.values() for tool in times}
        for tool in TOOLS:
            if tool not in tools:
                continue
            points = [(key, times[tool]) for key, times in results.items() if times[tool]]
            if points:
                xs, ys = zip(*points, strict=True)
                style = "--" if tool.startswith("PyTorch") and sizes.loop_cap else "-"
                axes.plot(xs, ys, style, marker="o", label=tool)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel(xlabel)
        axes.set_ylabel("seconds per epoch")
        axes.grid(True, which="both", alpha=0.3)
    left.legend()
    if sizes.loop_cap:
        right.set_title(
            f"dashed: PyTorch, extrapolated from {sizes.loop_cap:,} steps when an epoch has more",
            fontsize=9,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
