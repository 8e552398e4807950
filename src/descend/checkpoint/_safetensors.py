"""Checkpoint files in the safetensors format: tensors, metadata header, content checksum.

See the :mod:`descend.checkpoint` docstring for the layout. The ``safetensors`` package
does the format both ways. ``safetensors.numpy.save`` builds the file's bytes (header,
padding, tensor layout); ``_files.write_atomically`` writes them under a temporary name,
fsyncs and renames (``safetensors.numpy.save_file`` never fsyncs).
``safetensors.deserialize`` checks a file's bytes and splits them into tensors, each a
safetensors dtype code and a ``bytearray``: ``_DTYPES`` maps the codes to NumPy /
ml_dtypes dtypes, as ``safetensors.numpy.load`` has no bfloat16 and no float8. The
package reads the ``__metadata__`` entry only from a path (``safe_open``), so it is taken
from the header of the same bytes once ``deserialize`` has accepted them: the checksum
then compares one version of a file that another process may be replacing. The tests
check that ``safetensors.numpy`` and ``safetensors.torch`` open the files.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
import safetensors
import safetensors.numpy

from descend.checkpoint._common import decode_leaf, dtype_from_name, malformed
from descend.checkpoint._common import truncated as _truncated
from descend.checkpoint._files import write_atomically
from descend.errors import CheckpointError, DescendTypeError

FORMAT_VERSION = 2
HEADER_KEY = "descend.checkpoint"
DIGEST_KEY = "descend.sha256"
_MAX_HEADER = 100_000_000  # the safetensors limit on the JSON header
_RESERVED = "__metadata__"

# NumPy / ml_dtypes dtype name -> safetensors dtype: only those every safetensors release
# since 0.4 reads (``safetensors.numpy.save`` writes float8 since 0.4.2). Complex arrays
# are stored as real pairs, other ml_dtypes as bytes.
_CODES = {"bool": "BOOL", "uint8": "U8", "int8": "I8", "uint16": "U16", "int16": "I16",
          "uint32": "U32", "int32": "I32", "uint64": "U64", "int64": "I64", "float16": "F16",
          "bfloat16": "BF16", "float32": "F32", "float64": "F64",
          "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2"}  # fmt: skip

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


# safetensors dtype -> the NumPy / ml_dtypes dtype of its bytes (little-endian).
# Every name in _CODES resolves (dtype_from_name returns None only for unknown names).
_DTYPES = {code: _little(cast(np.dtype, dtype_from_name(name))) for name, code in _CODES.items()}


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
            array = array.reshape(-1).view(_DTYPES[code]).reshape(shape)
        self.items.append((name, code, array))
        return entry


def digest(header: str, tensors: Iterable[Tensor]) -> str:
    """SHA-256 of the header JSON, then per tensor in leaf-table order: NUL, name, NUL,
    dtype, NUL, shape (comma-separated), NUL and the bytes. It depends on the content
    only, not on where the tensors lie in the file."""
    content = hashlib.sha256(header.encode())
    for name, code, array in tensors:
        content.update(f"\0{name}\0{code}\0{','.join(map(str, array.shape))}\0".encode())
        # NumPy's stubs give ndarray the buffer protocol (__buffer__) only for Python >= 3.12.
        content.update(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
    return content.hexdigest()


def write(path: Path, header: str, tensors: Tensors) -> None:
    """The checksum covers the arrays, so it is computed from them before the file exists."""
    metadata = {HEADER_KEY: header, DIGEST_KEY: digest(header, tensors.items)}
    arrays = {name: array for name, _, array in tensors.items}
    write_atomically(path, [safetensors.numpy.save(arrays, metadata=metadata)])


# ---------------------------------------------------------------- reading


def looks_like(data: bytes) -> bool:
    """A safetensors file starts with the length of its JSON header, then ``{``."""
    return len(data) > 8 and data[8] == ord("{") and _header_size(data) <= _MAX_HEADER


def _header_size(data: bytes) -> int:
    return int.from_bytes(data[:8], "little")


def read(path: Path, data: bytes) -> tuple[dict, Callable[[dict], Any]]:
    """The header of a checkpoint whose checksum is right, and its leaf decoder."""
    name = repr(str(path))
    size = _header_size(data)
    raw = bytes(data[8 : 8 + size])
    try:
        parsed = safetensors.deserialize(data)
        metadata = json.loads(raw).get(_RESERVED)  # a JSON object: deserialize checked it
    except (safetensors.SafetensorError, ValueError):
        parsed = metadata = None
    if not isinstance(metadata, dict) or not all(
        isinstance(metadata.get(key), str) for key in (HEADER_KEY, DIGEST_KEY)
    ):
        if len(raw) < size or b"descend" in raw:  # a cut or damaged descend checkpoint
            raise _truncated(name)
        raise CheckpointError(
            f"{name} is a safetensors file but not a descend checkpoint (it has no "
            f"{HEADER_KEY!r} metadata); open it with safetensors.numpy.load_file or "
            "safetensors.torch.load_file"
        )
    tensors = _tensors(parsed)
    header = None if tensors is None else _verified(metadata, tensors)
    if tensors is None or header is None:
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


def _tensors(parsed: list) -> dict[str, tuple[str, np.ndarray]] | None:
    """Each tensor's dtype and array (writable: ``deserialize`` gives bytearrays), or None
    if one has a dtype that descend does not write."""
    found = {}
    for name, info in parsed:
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            return None
        found[name] = (info["dtype"], np.frombuffer(info["data"], dtype).reshape(info["shape"]))
    return found


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
    def read(dtype: np.dtype, shape: tuple) -> np.ndarray:
        code, stored_shape, note = stored_form(dtype, shape)
        tensor_code, tensor = tensors[entry["tensor"]]
        if (code, stored_shape, note) != (tensor_code, tensor.shape, entry.get("stored")):
            raise malformed(
                path,
                f"leaf {entry['path']}: the tensor {entry['tensor']!r} ({tensor_code} "
                f"{list(tensor.shape)}) cannot hold a {dtype.name} array of shape {list(shape)}",
            )
        return tensor if note is None else tensor.reshape(-1).view(_little(dtype)).reshape(shape)

    return decode_leaf(entry, path, read)
