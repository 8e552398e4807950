"""Row 7: time per epoch of data-parallel training on 1, 2 and 4 forced host devices,
for data in memory and for a stream of ``.npy`` shards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import problems
from benchmarks.harness import RowResult, Settings, Table, format_ratio, format_seconds, row

LR, SEED = 1e-3, 0
REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Sizes:
    n_samples: int
    n_features: int
    batch_sizes: tuple[int, ...]
    device_counts: tuple[int, ...]
    chunk_rows: int  # the stream's chunks (its shards hold 4 chunks' rows each)


SIZES = {
    "tiny": Sizes(256, 4, (32,), (1, 2), 128),
    "quick": Sizes(20_000, 100, (32, 1_024), (1, 2, 4), 4_096),
    "default": Sizes(200_000, 100, (32, 1_024), (1, 2, 4), 32_768),
    "full": Sizes(200_000, 100, (32, 256, 1_024, 4_096), (1, 2, 4, 8), 32_768),
}

# Run in a child process: the device count is fixed when JAX starts.
CHILD = """
import json, sys
import descend
from benchmarks import problems
from benchmarks.harness import measure

n_samples, n_features, batch_sizes, count, repeats, shards, chunk_rows = json.loads(sys.argv[1])
X, y = problems.classification_data(n_samples, n_features)
times = {}
for batch_size in batch_sizes:
    for kind in ("memory", "stream"):
        data = (X, y) if kind == "memory" else (descend.data.stream(shards, chunk_rows=chunk_rows),)
        def call():
            return descend.fit(
                "logistic", *data, optimizer="adam", lr=LR, batch_size=batch_size, epochs=1,
                seed=SEED, verbose=0, devices=None if count == 1 else "all",
                standardize=False, patience=None, l2=0.0,
            )
        timing, _ = measure(call, repeats=repeats)
        times[f"{kind} {batch_size}"] = [timing.cold, timing.warm_median]
print(json.dumps(times))
"""


@row(7, "host-devices", "Data parallelism: time per epoch on forced host devices", devices=("cpu",))
def run(settings: Settings) -> RowResult:
    sizes = settings.pick(SIZES)
    measured, failures = {}, []
    with tempfile.TemporaryDirectory() as shards:
        _write_shards(Path(shards), sizes)
        for count in sizes.device_counts:
            print(f"    {count} host device(s) ...", end="", flush=True)
            try:
                measured[count] = _child(sizes, count, settings.heavy_repeats, shards)
            except (subprocess.SubprocessError, ValueError) as error:
                if settings.strict:
                    raise
                failures.append(f"{count} devices: {error}"[:300])
                print(" failed")
                continue
            print(" " + ", ".join(format_seconds(warm) for _, warm in measured[count].values()))

    table = Table(
        f"Time per epoch, {sizes.n_samples:,} samples × {sizes.n_features} features",
        ["devices", "batch size", "s/epoch (warm)", "first epoch (compile)", "vs 1 device"],
    )
    streams = Table(
        f"Streams: time per epoch, the same rows in .npy shards, chunks of "
        f"{sizes.chunk_rows:,} rows",
        ["devices", "batch size", "s/epoch (warm)", "first epoch (compile)", "vs 1 device",
         "vs in memory"],
    )  # fmt: skip
    for batch_size in sizes.batch_sizes:
        base = measured.get(1, {}).get(f"memory {batch_size}")
        stream_base = measured.get(1, {}).get(f"stream {batch_size}")
        for count in sizes.device_counts:
            times = measured.get(count, {})
            cold, warm = times.get(f"memory {batch_size}", (None, None))
            ratio = base[1] / warm if base and warm else None
            table.rows.append(
                [str(count), f"{batch_size:,}", format_seconds(warm), format_seconds(cold),
                 format_ratio(ratio)]
            )  # fmt: skip
            stream_cold, stream_warm = times.get(f"stream {batch_size}", (None, None))
            ratio = stream_base[1] / stream_warm if stream_base and stream_warm else None
            memory = warm / stream_warm if warm and stream_warm else None
            streams.rows.append(
                [str(count), f"{batch_size:,}", format_seconds(stream_warm),
                 format_seconds(stream_cold), format_ratio(ratio), format_ratio(memory)]
            )  # fmt: skip
    notes = [
        f"Logistic regression, Adam lr={LR:g}, one shuffled epoch, float32; "
        '`ds.fit(..., devices="all")` in a child process started with '
        "XLA_FLAGS=--xla_force_host_platform_device_count=N (1 device: the plain "
        "single-device program, devices=None). vs 1 device: above 1, faster.",
        "What this shows: the cost of splitting every batch over N devices and of the "
        "all-reduce of the loss and gradient sums XLA adds to every update. What it does "
        "not show: a speed-up. Forced host devices are N XLA devices in one process on "
        "the same CPU cores and memory, so they compete for them, and a CPU all-reduce "
        "between them is a memory copy, not an interconnect. On GPUs each device brings "
        "its own compute and memory bandwidth and the all-reduce runs over NVLink or "
        "PCIe; there data parallelism pays when each device's share of a batch is large "
        "enough to hide one all-reduce per update (small batches stay latency-bound).",
        'Streams: `ds.fit("logistic", ds.data.stream(folder, chunk_rows=...), '
        'devices="all")` on the same rows written as .npy shards (read from the page '
        "cache), the same settings: each chunk is copied to every device and its batches "
        "split as data in memory are. vs in memory: the in-memory time on as many devices "
        "over the stream's (below 1, the stream is slower: reading, copying each chunk to "
        "the devices, one program call and one host wait per chunk). Forced host devices "
        "show what the splitting costs a stream, not a speed-up (see above).",
        f"This machine has {os.cpu_count()} CPU cores.",
    ]
    notes += [f"failed: {failure}" for failure in failures]
    return RowResult(
        7, "host-devices", "Data parallelism on forced host devices",
        description="Time per epoch of the same training on 1, 2 and 4 XLA host devices, "
        "each batch split evenly over them, for data in memory and streamed.",
        tables=[table, streams],
        notes=notes,
    )  # fmt: skip


def _write_shards(folder: Path, sizes: Sizes) -> None:
    """The benchmark's rows as .npy shards of four chunks each (the child's data)."""
    X, y = problems.classification_data(sizes.n_samples, sizes.n_features)
    rows = 4 * sizes.chunk_rows
    for index, start in enumerate(range(0, len(X), rows)):
        np.save(folder / f"X_{index:03d}.npy", X[start : start + rows])
        np.save(folder / f"y_{index:03d}.npy", y[start : start + rows])


def _child(sizes: Sizes, count: int, repeats: int, shards: str) -> dict[str, tuple[float, float]]:
    """``"memory B"`` / ``"stream B"`` -> (cold, warm) seconds for batch size ``B``,
    measured in a process with ``count`` devices."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(
        [env.get("XLA_FLAGS", ""), f"--xla_force_host_platform_device_count={count}"]
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPOSITORY), str(REPOSITORY / "src"), env.get("PYTHONPATH", "")]
    )
    code = CHILD.replace("LR", repr(LR)).replace("SEED", repr(SEED))
    arguments = json.dumps(
        [sizes.n_samples, sizes.n_features, sizes.batch_sizes, count, repeats, shards,
         sizes.chunk_rows]
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code, arguments], env=env, cwd=REPOSITORY, capture_output=True,
        text=True, timeout=1800, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ValueError(f"the child process failed: {done.stderr.strip()[-300:]}")
    return {key: tuple(times) for key, times in json.loads(done.stdout.splitlines()[-1]).items()}
