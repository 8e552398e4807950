"""The pieces every row uses: settings, the row registry, timing, and result tables.

A row is a function ``run(settings) -> RowResult`` registered with :func:`row`. It
runs descend and its peers one after another on the same data and records, for each
tool, an :class:`Entry`: the cold time (the first call, compilation included), the warm
times (later calls), and whatever else the row reports (final loss, iterations).
Ratios are ``peer time / descend time``: above 1, descend is faster.
"""

from __future__ import annotations

import functools
import gc
import importlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

MODES = ("tiny", "quick", "default", "full")
DEVICES = ("cpu", "gpu")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """How big and how often: one value per run of the suite.

    ``mode`` picks the problem sizes each row declares (``tiny`` for the tests,
    ``quick`` for a smoke test, ``default``, ``full``). ``repeats`` warm calls are timed
    after the cold one (``heavy_repeats`` for rows whose single call takes seconds).
    ``strict`` re-raises a tool's failure instead of recording it in the table.
    """

    mode: str = "default"
    device: str = "cpu"
    repeats: int = 3
    heavy_repeats: int = 2
    out_dir: Path = Path("benchmarks")
    strict: bool = False
    threads: int | None = None

    @classmethod
    def for_mode(cls, mode: str, **overrides: Any) -> Settings:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        repeats = {"tiny": (1, 1), "quick": (1, 1), "default": (3, 2), "full": (5, 3)}[mode]
        settings = cls(mode=mode, repeats=repeats[0], heavy_repeats=repeats[1])
        return replace(settings, **overrides)

    def pick(self, sizes: dict[str, Any]) -> Any:
        """The entry of ``sizes`` (keyed by mode) for this run's mode."""
        return sizes[self.mode]

    @property
    def full(self) -> bool:
        return self.mode == "full"


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Row:
    number: int
    name: str
    title: str
    run: Callable[[Settings], RowResult]
    devices: tuple[str, ...] = DEVICES


_ROWS: dict[int, Row] = {}


def row(number: int, name: str, title: str, *, devices: Sequence[str] = DEVICES):
    """Register ``run(settings) -> RowResult`` as row ``number`` (also reachable by ``name``)."""

    def register(run: Callable[[Settings], RowResult]) -> Callable[[Settings], RowResult]:
        clash = _ROWS.get(number)
        if clash is not None and clash.run.__module__ != run.__module__:
            raise ValueError(f"row {number} is registered twice ({clash.name!r}, {name!r})")
        _ROWS[number] = Row(number, name, title, run, tuple(devices))
        return run

    return register


def rows() -> list[Row]:
    """Every registered row, by number (imports the modules of :mod:`benchmarks.rows`)."""
    from benchmarks import rows as package

    package.load_all()
    return [_ROWS[number] for number in sorted(_ROWS)]


def select(spec: str | None) -> list[Row]:
    """The rows named by ``spec``: ``"1,3"``, ``"minibatch,minimize"``, or None for all."""
    available = rows()
    if not spec:
        return available
    by_key = {str(r.number): r for r in available} | {r.name: r for r in available}
    chosen = []
    for key in (part.strip() for part in spec.split(",") if part.strip()):
        if key not in by_key:
            valid = ", ".join(f"{r.number} ({r.name})" for r in available)
            raise ValueError(f"unknown row {key!r}; the rows are {valid}")
        if by_key[key] not in chosen:
            chosen.append(by_key[key])
    return chosen


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Seconds of the first call (``cold``) and of each later call (``warm``)."""

    cold: float
    warm: list[float]

    @property
    def warm_median(self) -> float:
        return statistics.median(self.warm) if self.warm else self.cold

    def scaled(self, factor: float) -> Timing:
        """The same timing for ``factor`` times the work (an extrapolation)."""
        return Timing(self.cold * factor, [t * factor for t in self.warm])


def measure(
    call: Callable[[], Any], *, repeats: int, sync: Callable[[Any], Any] | None = None
) -> tuple[Timing, Any]:
    """Time ``call()`` once cold and ``repeats`` times warm; return the first call's result.

    ``sync(result)`` runs inside the timed region (e.g. ``jax.block_until_ready``), so
    asynchronous work is counted. Garbage is collected before each call, not during it.
    """
    times, first = [], None
    for attempt in range(1 + repeats):
        gc.collect()
        gc.disable()
        try:
            began = time.perf_counter()
            result = call()
            if sync is not None:
                sync(result)
            times.append(time.perf_counter() - began)
        finally:
            gc.enable()
        if attempt == 0:
            first = result
        del result
    return Timing(times[0], times[1:]), first


def block(tree: Any) -> Any:
    """Wait for every JAX array in ``tree``."""
    import jax

    return jax.block_until_ready(tree)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Column:
    """An extra column of a comparison: ``Entry.values[key]`` shown under ``header``."""

    key: str
    header: str
    fmt: str = "{}"


@dataclass
class Entry:
    """One tool's line in a comparison (``skipped`` says why it has no numbers)."""

    tool: str
    timing: Timing | None = None
    values: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    skipped: str | None = None


@dataclass
class Comparison:
    """Tools timed on one problem; ratios against the entry named ``baseline``."""

    title: str
    columns: list[Column] = field(default_factory=list)
    baseline: str = "descend"
    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, settings: Settings, tool: str, measure_tool: Callable[[], Entry]) -> Entry:
        """Run ``measure_tool()`` and keep its entry; a failure becomes a skipped entry.

        Peers are optional and may break on another version or device: the suite goes
        on and the table says what failed (``settings.strict`` re-raises instead).
        """
        print(f"    {tool} ...", end="", flush=True)
        try:
            entry = measure_tool()
        except Exception as error:  # recorded in the report, not swallowed
            if settings.strict:
                raise
            entry = Entry(tool, skipped=f"failed: {type(error).__name__}: {error}"[:300])
        entry.tool = tool
        self.entries.append(entry)
        if entry.timing is not None:
            timing = entry.timing
            print(f" cold {format_seconds(timing.cold)}, warm {format_seconds(timing.warm_median)}")
        else:
            print(f" skipped ({entry.skipped})")
        return entry

    def skip(self, tool: str, reason: str) -> None:
        print(f"    {tool}: skipped ({reason})")
        self.entries.append(Entry(tool, skipped=reason))

    def find(self, tool: str) -> Entry | None:
        return next((entry for entry in self.entries if entry.tool == tool), None)

    def ratio(self, entry: Entry, which: str = "warm") -> float | None:
        """``entry``'s time over the baseline's (None when either is missing)."""
        base = self.find(self.baseline)
        if base is None or base.timing is None or entry.timing is None:
            return None
        if which == "cold":
            return entry.timing.cold / base.timing.cold
        return entry.timing.warm_median / base.timing.warm_median


@dataclass
class Table:
    """A plain table: headers and rows of already formatted cells."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class RowResult:
    """What one row measured: tables, notes and figures, in the order they are shown."""

    number: int
    name: str
    title: str
    description: str = ""
    tables: list[Comparison | Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


# --------------------------------------------------------------------------- peers, devices


@functools.cache
def optional(module: str) -> Any:
    """The module, or None when it (an optional peer) is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def jax_device(settings: Settings):
    """The JAX device the row runs on (the first GPU for ``device="gpu"``)."""
    import jax

    if settings.device == "gpu":
        return jax.devices("gpu")[0]
    return jax.devices("cpu")[0]


def torch_device(settings: Settings) -> str | None:
    """``"cpu"``, ``"cuda"``, or None when torch cannot run on the chosen device."""
    torch = optional("torch")
    if torch is None:
        return None
    if settings.device == "gpu":
        return "cuda" if torch.cuda.is_available() else None
    return "cpu"


def torch_missing(settings: Settings) -> str:
    """Why the torch peers are skipped."""
    if optional("torch") is None:
        return "torch is not installed (pip install torch)"
    return "torch has no CUDA device here"


def torch_sync(device: str) -> None:
    if device == "cuda":
        optional("torch").cuda.synchronize()


# --------------------------------------------------------------------------- bandwidth


def read_bandwidth(array: np.ndarray, repeats: int = 3) -> float:
    """Bytes per second NumPy reads: ``array.nbytes`` over the median time of ``array.sum()``.

    ``sum`` reads every byte once and does little arithmetic, so its time is (nearly)
    the time to stream the array from memory, on one core.
    """
    array.sum()  # fault the pages in
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        array.sum()
        times.append(time.perf_counter() - began)
    return array.nbytes / statistics.median(times)


@functools.cache
def machine_read_bandwidth(n_bytes: int) -> float:
    """:func:`read_bandwidth` of a fresh float32 array of ``n_bytes`` (cached per size)."""
    array = np.ones(n_bytes // 4, dtype=np.float32)
    return read_bandwidth(array)


# --------------------------------------------------------------------------- formatting


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "–"
    if seconds >= 100:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def format_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "–"
    return f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.2g}×"
