"""What both checkpoint formats share: dtype checks, Python leaves and error messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from descend.errors import CheckpointError

_NUMPY_DTYPES = frozenset(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
     "float16", "float32", "float64", "complex64", "complex128"]
)  # fmt: skip

# Python leaves stored inline in the JSON header: type name -> (type, JSON types accepted).
_PYTHON_SCALARS: dict[str, tuple[type, Any]]
_PYTHON_SCALARS = {"bool": (bool, bool), "int": (int, int), "float": (float, (float, int)),
                   "str": (str, str)}  # fmt: skip


def dtype_from_name(name: str) -> np.dtype | None:
    """Only plain numeric dtypes (and ml_dtypes' floats / ints) resolve: never objects."""
    if name in _NUMPY_DTYPES:
        return np.dtype(name)
    import ml_dtypes  # installed with JAX; home of bfloat16 and the float8 types

    candidate = getattr(ml_dtypes, name, None) if isinstance(name, str) else None
    if isinstance(candidate, type) and issubclass(candidate, np.generic):
        return np.dtype(candidate)
    return None


def encode_python(leaf: Any) -> dict | None:
    """The JSON entry of a Python bool / int / float / complex / str leaf, else None."""
    if isinstance(leaf, (bool, int, float, str)):
        return {"python": type(leaf).__name__, "value": leaf}
    if isinstance(leaf, complex):
        return {"python": "complex", "value": [leaf.real, leaf.imag]}
    return None


def decode_python(entry: dict, path) -> Any:
    kind, value = entry["python"], entry["value"]
    if kind == "complex":
        return complex(*value)
    if kind not in _PYTHON_SCALARS or not isinstance(value, _PYTHON_SCALARS[kind][1]):
        raise malformed(path, f"leaf {entry['path']}: bad Python value {value!r}")
    return _PYTHON_SCALARS[kind][0](value)


def refused_dtype(path, entry: dict) -> CheckpointError:
    return CheckpointError(
        f"{str(path)!r}: leaf {entry['path']} has dtype {entry['dtype']!r}, which descend "
        "refuses to load (only bool, integer, float and complex arrays, never objects)"
    )


def truncated(name: str) -> CheckpointError:
    return CheckpointError(
        f"{name} is truncated or was modified: checksum mismatch; re-save it or restore it "
        "from a backup"
    )


def malformed(path, reason: str) -> CheckpointError:
    return CheckpointError(f"{str(path)!r} is not a valid descend checkpoint: {reason}")


def decode_leaf(entry: dict, path: Any, read: Callable[[np.dtype, tuple], np.ndarray]) -> Any:
    """A leaf from its entry in the leaf table: a Python value, a PRNG key, or the array
    that ``read(dtype, shape)`` takes from the file (each format reads its own way)."""
    if "python" in entry:
        return decode_python(entry, path)
    dtype = dtype_from_name(entry["dtype"])
    if dtype is None:
        raise refused_dtype(path, entry)
    array = read(dtype, tuple(int(n) for n in entry["shape"]))
    if "key_impl" in entry:
        return jax.random.wrap_key_data(jax.numpy.asarray(array), impl=entry["key_impl"])
    return array
