"""Shared fixtures: float64 inside a test without flipping JAX's global flag."""

from __future__ import annotations

import os

import jax
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# The command line keeps compiled programs on disk by default; the tests that call it
# must not write to the user's cache folder nor share programs between runs, except
# tests/test_startup.py, which turns the cache on in a folder of its own.
os.environ["DESCEND_CACHE_DIR"] = "off"


@pytest.fixture
def x64():
    """Run the test body with 64-bit floats enabled (restored afterwards)."""
    with jax.enable_x64(True):
        yield
