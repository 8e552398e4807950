"""The rows of the suite, one module each.

A module here registers its row with :func:`benchmarks.harness.row`; every module of
this package is imported by :func:`load_all`, so adding a row is adding a module::

    from benchmarks.harness import RowResult, Settings, row

    @row(7, "host-devices", "Training on forced host devices")
    def run(settings: Settings) -> RowResult:
        ...

A row whose measurement needs settings fixed before JAX starts (``XLA_FLAGS`` such as
``--xla_force_host_platform_device_count=8``) runs that measurement in a child process
(``subprocess.run([sys.executable, "-c", ...], env=...)``) and returns its numbers in
the same tables: the suite's own process has already started JAX.
"""

from __future__ import annotations

import importlib
import pkgutil


def load_all() -> None:
    """Import every row module of this package (each registers itself)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
