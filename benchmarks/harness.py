"""The pieces every row uses: settings, the row registry, timing, and result tables.

A row is a function ``run(settings) -> RowResult`` registered with :func:`row`. It
runs descend and its peers one after another on the same data and records, for each
tool, an :class:`Entry`: the cold time (the first call, compilation included), the warm
times (later calls), and whatever else the row reports (final loss, iterations).
Ratios are ``peer time / descend time``: above 1, descend is faster.
:func:`first_call_table` adds a user's first call, timed in new processes with an
empty and with a warm persistent compilation cache.
"""

from __future__ import annotations

import functools
import gc
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
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
    ``fresh_processes`` times first calls in new processes (:func:`first_call_table`).
    """

    mode: str = "default"
    device: str = "cpu"
    repeats: int = 3
    heavy_repeats: int = 2
    out_dir: Path = Path("benchmarks")
    strict: bool = False
    threads: int | None = None
    fresh_processes: bool = True

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


def keras_on_jax() -> tuple[Any, str | None]:
    """Keras 3 on the JAX backend, or ``(None, reason)`` when it cannot be had here.

    Keras reads ``KERAS_BACKEND`` once, at import: it is set to ``jax`` for that import
    only (the previous value is put back). Importing Keras must not change JAX's
    configuration for the rows that run after it in this process: the configuration is
    compared before and after the import, and any value Keras changed is set back.
    """
    if "keras" not in sys.modules:
        if importlib.util.find_spec("keras") is None:
            return None, "keras is not installed (pip install keras)"
        import jax

        before = dict(jax.config.values)
        previous = os.environ.get("KERAS_BACKEND")
        os.environ["KERAS_BACKEND"] = "jax"
        try:
            importlib.import_module("keras")
        except ImportError as error:
            return None, f"keras does not import: {error}"
        finally:
            if previous is None:
                del os.environ["KERAS_BACKEND"]
            else:
                os.environ["KERAS_BACKEND"] = previous
        for name, value in before.items():
            if jax.config.values.get(name) != value:
                jax.config.update(name, value)
    keras = sys.modules["keras"]
    backend = keras.backend.backend()
    if backend != "jax":
        return None, f"keras was imported with the {backend} backend before this row"
    return keras, None


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


# --------------------------------------------------------------------------- first call


REPOSITORY = Path(__file__).resolve().parent.parent
_CHILD = "import sys; from benchmarks.harness import first_call_main; sys.exit(first_call_main())"


def first_call(
    target: str,
    settings: Settings,
    *,
    cache: Path | None = None,
    arguments: dict[str, Any] | None = None,
) -> float:
    """Seconds of the first call of ``target`` in a new Python process.

    ``target`` is ``"module:function"``: ``function(settings, **arguments)`` prepares
    the data (not timed) and returns the call to time (``arguments``: JSON values, such
    as a setting the parent tuned). ``cache`` is the folder of JAX's persistent
    compilation cache for that process (turned on by
    :func:`descend.cache.use_compilation_cache`); None runs without one. The parent's
    compiled programs, in memory, cannot reach the child: only the cache folder can.
    Importing JAX, starting its backend and preparing the data come before the timed
    call, as in :func:`measure`'s cold time.
    """
    command = [sys.executable, "-c", _CHILD, target, settings.mode, settings.device]
    command += ["--arguments", json.dumps(arguments or {})]
    if cache is not None:
        command += ["--cache", str(cache)]
    env = dict(os.environ)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # only the folder given here, if any
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPOSITORY)] + [entry for entry in sys.path if entry and Path(entry).is_dir()]
    )
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if completed.returncode != 0:
        tail = (completed.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"the new process for {target} failed: {tail}")
    return float(json.loads(completed.stdout.strip().splitlines()[-1])["seconds"])


def first_call_main(argv: Sequence[str] | None = None) -> int:
    """The new process's side of :func:`first_call`: prints one JSON line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    target, mode, device = argv[:3]
    cache = argv[argv.index("--cache") + 1] if "--cache" in argv else None
    arguments = json.loads(argv[argv.index("--arguments") + 1]) if "--arguments" in argv else {}
    import jax

    settings = Settings.for_mode(mode, device=device)
    with jax.default_device(jax_device(settings)):
        jax.numpy.zeros(()).block_until_ready()
        if cache is not None:
            from descend.cache import use_compilation_cache

            if use_compilation_cache(cache) is None:
                return 1
        module, name = target.split(":")
        call = getattr(importlib.import_module(module), name)(settings, **arguments)
        gc.collect()
        began = time.perf_counter()
        block(call())
        seconds = time.perf_counter() - began
    print(json.dumps({"seconds": seconds}))
    return 0


def first_call_table(
    table: Comparison, settings: Settings, targets: dict[str, str | tuple[str, dict[str, Any]]]
) -> Table | None:
    """A user's first call, beside the warm time: for each ``tool: "module:function"``
    (or ``tool: ("module:function", arguments)``) of ``targets``, the first call in a
    new process with an empty persistent compilation cache, then in another new process
    with the cache the first one filled (:func:`first_call`).

    Ratios are against the first target (descend). Tools that ``table`` skipped are left
    out; None when ``settings.fresh_processes`` is off.
    """
    if not settings.fresh_processes:
        return None
    rows, found = [], {}
    for tool, target in targets.items():
        target, arguments = (target, None) if isinstance(target, str) else target
        entry = table.find(tool)
        if entry is None or entry.timing is None:
            continue
        print(f"    {tool}, first call in a new process ...", end="", flush=True)
        try:
            with tempfile.TemporaryDirectory(prefix="jax-cache-") as folder:
                empty = first_call(target, settings, cache=Path(folder), arguments=arguments)
                cached = first_call(target, settings, cache=Path(folder), arguments=arguments)
        except (RuntimeError, subprocess.SubprocessError, ValueError) as error:
            if settings.strict:
                raise
            print(f" failed ({error})")
            continue
        print(f" empty cache {format_seconds(empty)}, warm cache {format_seconds(cached)}")
        found[tool] = (empty, cached, entry.timing.warm_median)
    if not found:
        return None
    base = next(iter(found.values()))
    for tool, times in found.items():
        cells = [tool]
        for column in range(3):
            cells += [format_seconds(times[column]), format_ratio(times[column] / base[column])]
        rows.append(cells)
    return Table(
        "A user's first call: cold in a new process, beside warm",
        ["tool", "new process, empty cache", "ratio", "new process, warm cache", "ratio",
         "warm (this process)", "ratio"],
        rows,
        notes=[
            "Each cold figure is the first call in a new Python process (`python -c`), "
            "data prepared first and not timed. Empty cache: JAX's persistent "
            "compilation cache turned on (`descend.cache.use_compilation_cache(folder)`) "
            "in a new empty folder, so the call compiles and writes its programs there. "
            "Warm cache: another new process with that folder, so the call loads them. "
            "Tools that do not use JAX do not use the cache: their two figures are two "
            "first calls.",
            "Importing JAX and the tool, starting JAX's backend and preparing the data "
            "come before the timed call, as for the cold column above.",
            "Ratio = tool time / descend time in the same column: above 1, descend is "
            "faster.",
        ],
    )  # fmt: skip


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
