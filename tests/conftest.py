"""Shared fixtures: float64 inside a test without flipping JAX's global flag."""

from __future__ import annotations

import os

import jax
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def x64():
    """Run the test body with 64-bit floats enabled (restored afterwards)."""
    with jax.enable_x64(True):
        yield
