"""Plain JSON values from NumPy / JAX values and pytrees (for ``--json`` and ``to_dict``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """Dicts, lists and Python numbers in place of arrays; non-finite numbers become None."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, (np.ndarray, np.generic)) and np.ndim(value) > 0:
        return [jsonable(item) for item in np.asarray(value).tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if hasattr(value, "__array__"):
        return jsonable(np.asarray(value))
    return value


def shortest(value: Any, dtype: Any) -> Any:
    """``value`` (a Python float) as the shortest Python float that ``dtype`` reads back
    as the same number, for a floating ``dtype`` narrower than float64: float32's 0.98
    rather than its exact value as a double, 0.9800000190734863. Anything else (another
    dtype or None, a non-float, a non-finite value) is returned as it is."""
    if dtype is None or not isinstance(value, float) or not math.isfinite(value):
        return value
    dtype = np.dtype(dtype)
    if dtype.kind != "f" or dtype.itemsize >= 8:
        return value
    return float(str(dtype.type(value)))
