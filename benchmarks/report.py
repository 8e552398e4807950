"""RESULTS.md from the rows' results: machine description, tables, ratios, notes.

Everything in the file is generated from a run; nothing is typed in by hand.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    Comparison,
    RowResult,
    Settings,
    Table,
    format_ratio,
    format_seconds,
    optional,
)

REPOSITORY = Path(__file__).resolve().parent.parent
LIBRARIES = (
    "jax", "jaxlib", "numpy", "torch", "optax", "scipy", "scikit-learn", "keras",
    "vowpalwabbit", "matplotlib",
)  # fmt: skip

METHOD = """\
- Each row runs descend and its peers in this one process, one after another, on the
  same data (generated once, as NumPy arrays, from a fixed seed).
- **cold**: the first call in the process, compilation (JAX) and first-use
  initialization (PyTorch) included; measured once.
- **warm**: the median of the later calls (`n` of them) with the same shapes.
- **ratio** = peer time / descend time, cold and warm separately: above 1, descend is
  faster; below 1, the peer is.
- **first call in a new process** (rows 1-3): the cold time a user meets, measured in
  a new Python process (data prepared first, not timed), once with an empty JAX
  persistent compilation cache and once more with the cache that first process filled
  (`descend.cache.use_compilation_cache(folder)`), beside the warm time.
- Every call starts from the inputs in NumPy and ends with the result on the host,
  so conversions and transfers are counted for every tool alike.
- The machine may be shared: compare ratios measured in the same run, and see the load
  average in the machine description.
"""


# --------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    try:
        completed = subprocess.run(
            ["git", *args], cwd=REPOSITORY, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return completed.stdout.strip() if completed.returncode == 0 else ""


def machine(settings: Settings) -> dict[str, str]:
    """A description of the machine and the software, as ``{label: text}``."""
    import jax

    import descend

    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--", "src"):
        commit += " (with uncommitted changes in src/)"
    info = {
        "CPU": _cpu_model(),
        "cores": f"{cores} logical ({usable} usable by this process)",
        "memory": _memory(),
        "system": platform.platform(),
        "python": platform.python_version(),
    }
    info |= {name: _version(name) for name in LIBRARIES}
    info["descend"] = f"{descend.__version__}, commit {commit}"
    info["JAX devices"] = ", ".join(f"{d.platform}:{d.device_kind}" for d in jax.devices())
    info["thread limit"] = (
        f"--threads {settings.threads}" if settings.threads else "none (library defaults)"
    )
    threadpoolctl = optional("threadpoolctl")
    if threadpoolctl is not None:
        pools = threadpoolctl.threadpool_info()
        info["BLAS / OpenMP threads"] = (
            ", ".join(f"{pool['internal_api']} {pool['num_threads']}" for pool in pools) or "–"
        )
    torch = optional("torch")
    if torch is not None:
        info["torch threads"] = str(torch.get_num_threads())
        if settings.device == "gpu" and torch.cuda.is_available():
            info["torch CUDA device"] = torch.cuda.get_device_name(0)
    for variable in ("XLA_FLAGS", "XLA_PYTHON_CLIENT_PREALLOCATE"):
        if os.environ.get(variable):
            info[variable] = os.environ[variable]
    return info


# --------------------------------------------------------------------------- rendering


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(map(_cell, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(_cell, cells)) + " |" for cells in rows]
    return lines


def _format(fmt: str, value: Any) -> str:
    if value is None:
        return "–"
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def comparison_lines(table: Comparison) -> list[str]:
    headers = ["tool", "cold", "warm", "n", "ratio cold", "ratio warm"]
    headers += [column.header for column in table.columns] + ["notes"]
    rows = []
    for entry in table.entries:
        if entry.timing is None:
            cells = [entry.tool, "–", "–", "0", "–", "–"]
            cells += ["–"] * len(table.columns) + [f"*skipped: {entry.skipped}*"]
        else:
            cells = [
                f"**{entry.tool}**" if entry.tool == table.baseline else entry.tool,
                format_seconds(entry.timing.cold),
                format_seconds(entry.timing.warm_median),
                str(len(entry.timing.warm)),
                format_ratio(table.ratio(entry, "cold")),
                format_ratio(table.ratio(entry, "warm")),
            ]
            cells += [_format(c.fmt, entry.values.get(c.key)) for c in table.columns]
            cells.append(entry.note)
        rows.append(cells)
    return _markdown_table(headers, rows)


def row_lines(result: RowResult, figure_root: Path) -> list[str]:
    lines = [f"## {result.number}. {result.title}", ""]
    if result.description:
        lines += [result.description, ""]
    if result.error:
        lines += [f"**The row failed:** `{result.error}`", ""]
    for table in result.tables:
        lines += [f"**{table.title}**", ""]
        if isinstance(table, Comparison):
            lines += comparison_lines(table)
        elif isinstance(table, Table):
            lines += _markdown_table(table.headers, table.rows)
        lines.append("")
        lines += [f"- {note}" for note in table.notes]
        if table.notes:
            lines.append("")
    for figure in result.figures:
        relative = os.path.relpath(figure, figure_root)
        lines += [f"![{result.title}]({relative})", ""]
    if result.notes:
        lines += [f"- {note}" for note in result.notes] + [""]
    lines += [f"*Row time: {format_seconds(result.seconds)}.*", ""]
    return lines


TUNING = Path(__file__).with_name("TUNING.md")


def render(results: list[RowResult], settings: Settings, run: dict[str, Any], out: Path) -> str:
    """The whole RESULTS.md text."""
    device = "GPU" if settings.device == "gpu" else "CPU"
    lines = [
        f"# descend benchmarks ({device})",
        "",
        "Generated by `python -m benchmarks` — do not edit by hand; rerun it.",
        "",
        f"- command: `{run['command']}`",
        f"- mode: {settings.mode}, device: {settings.device}",
        f"- started: {run['started']} (UTC), total time {format_seconds(run.get('seconds'))}",
        f"- load average (1 min) at start / end: {run['load_start']} / {run.get('load_end', '–')}",
        "",
        "## Machine",
        "",
    ]
    lines += _markdown_table(["", ""], [[key, value] for key, value in run["machine"].items()])
    lines += ["", "## Method", "", METHOD]
    if settings.device == "cpu" and TUNING.exists():
        # The hand-written part: the targets, what was tried and what each change did.
        lines += ["", TUNING.read_text().rstrip()]
    for result in results:
        lines += row_lines(result, out.parent)
    return "\n".join(lines).rstrip() + "\n"


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {key: _jsonable(item) for key, item in vars(value).items()}
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    return value


def write(results: list[RowResult], settings: Settings, run: dict[str, Any], out: Path) -> Path:
    """Write the Markdown report to ``out`` and the raw numbers as JSON beside it.

    The JSON goes to the ``out/`` folder beside (or holding) the report, which is not
    committed. Returns the JSON path.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(results, settings, run, out))
    folder = out.parent if out.parent.name == "out" else out.parent / "out"
    raw = folder / f"{out.stem}.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(_jsonable({"run": run, "rows": results}), indent=1))
    return raw


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
