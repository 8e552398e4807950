"""The rows of the suite, one module each.

A module here registers its row with :func:`benchmarks.harness.row`; every module of
this package is imported by :func:`load_all`, so adding a row is adding a module::

    from benchmarks.harness import RowResult, Settings, row

    @row(7, "host-devices", "Training on forced host devices")
    def run(settings: Settings) -> RowResult:
        ...
"""

from __future__ import annotations

import importlib
import pkgutil


def load_all() -> None:
    """Import every row module of this package (each registers itself)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
