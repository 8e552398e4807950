"""Row 7: time per epoch of data-parallel training on 1, 2 and 4 forced host devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import RowResult, Settings, Table, format_ratio, format_seconds, row

LR, SEED = 1e-3, 0
REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Sizes:
    n_samples: int
    n_features: int
    batch_sizes: tuple[int, ...]
    device_counts: tuple[int, ...]


SIZES = {
    "tiny": Sizes(256, 4, (32,), (1, 2)),
    "quick": Sizes(20_000, 100, (32, 1_024), (1, 2, 4)),
    "default": Sizes(200_000, 100, (32, 1_024), (1, 2, 4)),
    "full": Sizes(200_000, 100, (32, 256, 1_024, 4_096), (1, 2, 4, 8)),
}

# Run in a child process: the device count is fixed when JAX starts.
CHILD = """
import json, sys
import descend
from benchmarks import problems
from benchmarks.harness import measure

n_samples, n_features, batch_sizes, count, repeats = json.loads(sys.argv[1])
X, y = problems.classification_data(n_samples, n_features)
times = {}
for batch_size in batch_sizes:
    def call():
        return descend.fit(
            "logistic", X, y, optimizer="adam", lr=LR, batch_size=batch_size, epochs=1,
            seed=SEED, verbose=0, devices=None if count == 1 else "all",
            standardize=False, patience=None, l2=0.0,
        )
    timing, _ = measure(call, repeats=repeats)
    times[batch_size] = [timing.cold, timing.warm_median]
print(json.dumps(times))
"""


@row(7, "host-devices", "Data parallelism: time per epoch on forced host devices", devices=("cpu",))
def run(settings: Settings) -> RowResult:
    sizes = settings.pick(SIZES)
    measured, failures = {}, []
    for count in sizes.device_counts:
        print(f"    {count} host device(s) ...", end="", flush=True)
        try:
            measured[count] = _child(sizes, count, settings.heavy_repeats)
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
    for batch_size in sizes.batch_sizes:
        base = measured.get(1, {}).get(batch_size)
        for count in sizes.device_counts:
            cold, warm = measured.get(count, {}).get(batch_size, (None, None))
            ratio = base[1] / warm if base and warm else None
            table.rows.append(
                [str(count), f"{batch_size:,}", format_seconds(warm), format_seconds(cold),
                 format_ratio(ratio)]
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
        f"This machine has {os.cpu_count()} CPU cores.",
    ]
    notes += [f"failed: {failure}" for failure in failures]
    return RowResult(
        7, "host-devices", "Data parallelism on forced host devices",
        description="Time per epoch of the same training on 1, 2 and 4 XLA host devices, "
        "each batch split evenly over them.",
        tables=[table],
        notes=notes,
    )  # fmt: skip


def _child(sizes: Sizes, count: int, repeats: int) -> dict[int, tuple[float, float]]:
    """``batch size -> (cold, warm) seconds`` measured in a process with ``count`` devices."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(
        [env.get("XLA_FLAGS", ""), f"--xla_force_host_platform_device_count={count}"]
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPOSITORY), str(REPOSITORY / "src"), env.get("PYTHONPATH", "")]
    )
    code = CHILD.replace("LR", repr(LR)).replace("SEED", repr(SEED))
    arguments = json.dumps([sizes.n_samples, sizes.n_features, sizes.batch_sizes, count, repeats])
    done = subprocess.run(
        [sys.executable, "-c", code, arguments], env=env, cwd=REPOSITORY, capture_output=True,
        text=True, timeout=1800, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ValueError(f"the child process failed: {done.stderr.strip()[-300:]}")
    return {int(batch): tuple(times) for batch, times in json.loads(done.stdout).items()}
