"""Checkpoint files in the safetensors format: tensors, metadata header, content checksum.

See the :mod:`descend.checkpoint` docstring for the layout. The file is written and
read here, following the format's specification, rather than through the
``safetensors`` package: writing hashes each array, then streams it into a temporary
file that is fsync-ed before the rename (the package writes to the final path itself),
and reading returns writable NumPy views of one buffer for every dtype, float8 included
(``safetensors.numpy`` copies each tensor and has no float8). The tests check that
``safetensors.numpy`` and ``safetensors.torch`` open the files.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from descend.checkpoint._common import decode_python, dtype_from_name, malformed, refused_dtype
from descend.checkpoint._common import truncated as _truncated
from descend.checkpoint._files import write_atomically
from descend.errors import CheckpointError, DescendTypeError

FORMAT_VERSION = 2
HEADER_KEY = "descend.checkpoint"
DIGEST_KEY = "descend.sha256"
_MAX_HEADER = 100_000_000  # the safetensors limit on the JSON header
_RESERVED = "__metadata__"

# NumPy / ml_dtypes dtype name -> safetensors dtype: only those every safetensors release
# since 0.4 reads. Complex arrays are stored as real pairs, other ml_dtypes as bytes.
_CODES = {"bool": "BOOL", "uint8": "U8", "int8": "I8", "uint16": "U16", "int16": "I16",
          "uint32": "U32", "int32": "I32", "uint64": "U64", "int64": "I64", "float16": "F16",
          "bfloat16": "BF16", "float32": "F32", "float64": "F64",
          "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2"}  # fmt: skip
_NAMES = {code: name for name, code in _CODES.items()}

Tensor = tuple[str, str, np.ndarray]  # name, safetensors dtype, the array as stored


def tensor_name(tree: str, keys: list) -> str:
    """``tree/key/key/...``: the tree's name, then the leaf's dict keys, sequence indices and
    field names, each with ``%`` and ``/`` written ``%25`` and ``%2F`` so that names stay
    unique; the one name safetensors reserves, ``__metadata__``, is written ``%5F_metadata__``.
    """
    name = "/".join(str(part).replace("%", "%25").replace("/", "%2F") for part in (tree, *keys))
    return "%5F_metadata__" if name == _RESERVED else name


def stored_form(dtype: np.dtype, shape: Iterable[int]) -> tuple[str, tuple, str | None]:
    """How an array is stored: safetensors dtype, shape and note (None, complex or bytes)."""
    shape = tuple(shape)
    if dtype.kind == "c":
        return _CODES[f"float{dtype.itemsize * 4}"], (*shape, 2), "complex"
    if dtype.name in _CODES:
        return _CODES[dtype.name], shape, None
    return "U8", (*shape, dtype.itemsize) if dtype.itemsize > 1 else shape, "bytes"


def _little(dtype: np.dtype) -> np.dtype:
    return dtype.newbyteorder("<") if dtype.isbuiltin else dtype


class Tensors:
    """The arrays of a checkpoint as safetensors stores them, in leaf-table order."""

    def __init__(self):
        self.items: list[Tensor] = []
        self._names: set[str] = set()

    def add(self, tree: str, keys: list, array: np.ndarray) -> dict:
        """Keep ``array``; return the leaf entry fields that find it again."""
        name = tensor_name(tree, keys)
        if name in self._names:
            raise DescendTypeError(
                f"tree {tree!r}: two leaves would be stored as the tensor {name!r}; give "
                "them keys that differ as text"
            )
        self._names.add(name)
        code, shape, note = stored_form(array.dtype, array.shape)
        entry = {"tensor": name, "dtype": array.dtype.name, "shape": list(array.shape)}
        if sys.byteorder == "big" or array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))  # safetensors is little-endian
        if not array.flags.c_contiguous:
            array = array.copy(order="C")
        if note is not None:
            entry["stored"] = note
            array = array.reshape(-1).view(_little(dtype_from_name(_NAMES[code]))).reshape(shape)
        self.items.append((name, code, array))
        return entry


def digest(header: str, tensors: Iterable[Tensor]) -> str:
    """SHA-256 of the header JSON, then per tensor in leaf-table order: NUL, name, NUL,
    dtype, NUL, shape (comma-separated), NUL and the bytes. It depends on the content
    only, not on where the tensors lie in the file."""
    content = hashlib.sha256(header.encode())
    for name, code, array in tensors:
        content.update(f"\0{name}\0{code}\0{','.join(map(str, array.shape))}\0".encode())
        content.update(array.reshape(-1).view(np.uint8))
    return content.hexdigest()


def write(path: Path, header: str, tensors: Tensors) -> None:
    items = tensors.items
    table: dict[str, Any] = {_RESERVED: {HEADER_KEY: header, DIGEST_KEY: digest(header, items)}}
    # Widest dtypes first: with the header padded to 8 bytes, every tensor is aligned.
    order = sorted(items, key=lambda item: -item[2].dtype.itemsize)
    offset = 0
    for name, code, array in order:
        table[name] = {"dtype": code, "shape": list(array.shape),
                       "data_offsets": [offset, offset + array.nbytes]}  # fmt: skip
        offset += array.nbytes
    text = json.dumps(table, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    chunks = [struct.pack("<Q", len(text)), text]
    write_atomically(path, chunks + [array.reshape(-1).view(np.uint8) for *_, array in order])


# ---------------------------------------------------------------- reading


def looks_like(data: bytearray) -> bool:
    """A safetensors file starts with the length of its JSON header, then ``{``."""
    return len(data) > 8 and data[8] == ord("{") and _header_size(data) <= _MAX_HEADER


def _header_size(data: bytearray) -> int:
    return int.from_bytes(data[:8], "little")


def read(path: Path, data: bytearray) -> tuple[dict, Callable[[dict], Any]]:
    """The header of a checkpoint whose checksum is right, and its leaf decoder."""
    name = repr(str(path))
    size = _header_size(data)
    if 8 + size > len(data):
        raise _truncated(name)
    raw = bytes(data[8 : 8 + size])
    try:
        table = json.loads(raw)
    except ValueError:
        table = None
    metadata = _metadata(table)
    if metadata is None:
        if b"descend" in raw:  # a descend checkpoint whose header was damaged
            raise _truncated(name)
        raise CheckpointError(
            f"{name} is a safetensors file but not a descend checkpoint (it has no "
            f"{HEADER_KEY!r} metadata); open it with safetensors.numpy.load_file or "
            "safetensors.torch.load_file"
        )
    tensors = _tensors(table, memoryview(data)[8 + size :])
    header = None if tensors is None else _verified(metadata, tensors)
    if header is None:
        raise _truncated(name)
    version = header.get("version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise CheckpointError(
            f"{name} is in checkpoint format version {version}, but this descend reads "
            f"versions up to {FORMAT_VERSION}; upgrade descend to read it"
        )
    if version != FORMAT_VERSION:
        raise malformed(path, f"unknown format version {version!r}")
    return header, lambda entry: _decode_leaf(entry, tensors, path)


def _metadata(table: Any) -> dict | None:
    metadata = table.get(_RESERVED) if isinstance(table, dict) else None
    if not isinstance(metadata, dict) or not all(
        isinstance(metadata.get(key), str) for key in (HEADER_KEY, DIGEST_KEY)
    ):
        return None
    return metadata


def _tensors(table: dict, buffer: memoryview) -> dict[str, tuple[str, np.ndarray]] | None:
    """Each tensor's dtype and array, or None unless they tile the buffer as in a valid
    safetensors file (no gap, no overlap, nothing after the last one)."""
    found, spans = {}, []
    for name, info in table.items():
        if name == _RESERVED:
            continue
        try:
            code, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            return None
        dtype = dtype_from_name(_NAMES.get(code, ""))
        numbers = [*shape, begin, end] if isinstance(shape, list) else [None]
        if dtype is None or not all(type(n) is int and n >= 0 for n in numbers):
            return None
        if end - begin != math.prod(shape) * dtype.itemsize:
            return None
        spans.append((begin, end))
        found[name] = (code, _array(buffer, _little(dtype), tuple(shape), begin))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            return None
        position = end
    return found if position == len(buffer) else None


def _array(buffer: memoryview, dtype: np.dtype, shape: tuple, offset: int) -> np.ndarray:
    count = math.prod(shape)
    if not count:
        return np.zeros(shape, dtype)
    if offset + count * dtype.itemsize > len(buffer):
        return np.zeros(0, dtype)  # the tiling check that follows refuses the file
    return np.frombuffer(buffer, dtype, count=count, offset=offset).reshape(shape)


def _verified(metadata: dict, tensors: dict) -> dict | None:
    """The descend header, if the content checksum over it and the tensors is right."""
    try:
        header = json.loads(metadata[HEADER_KEY])
        names = [entry["tensor"] for tree in header["trees"].values()
                 for entry in tree["leaves"] if "tensor" in entry]  # fmt: skip
        if len(set(names)) != len(names) or set(names) != set(tensors):
            return None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    items = [(name, *tensors[name]) for name in names]
    return header if digest(metadata[HEADER_KEY], items) == metadata[DIGEST_KEY] else None


def _decode_leaf(entry: dict, tensors: dict, path) -> Any:
    if "python" in entry:
        return decode_python(entry, path)
    dtype = dtype_from_name(entry["dtype"])
    if dtype is None:
        raise refused_dtype(path, entry)
    shape = tuple(int(n) for n in entry["shape"])
    code, stored_shape, note = stored_form(dtype, shape)
    tensor_code, tensor = tensors[entry["tensor"]]
    if (code, stored_shape, note) != (tensor_code, tensor.shape, entry.get("stored")):
        raise malformed(
            path,
            f"leaf {entry['path']}: the tensor {entry['tensor']!r} ({tensor_code} "
            f"{list(tensor.shape)}) cannot hold a {dtype.name} array of shape {list(shape)}",
        )
    array = tensor if note is None else tensor.reshape(-1).view(_little(dtype)).reshape(shape)
    if "key_impl" in entry:
        return jax.random.wrap_key_data(array, impl=entry["key_impl"])
    return array
