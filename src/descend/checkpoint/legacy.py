"""Reading the checkpoint container of descend 0.1.0 (nothing writes it any more).

File layout (integers little-endian)::

    magic      18 bytes  b"\\x89descend-ckpt\\r\\n\\x1a\\n"
    version    uint32    1
    header     uint64 n, then n bytes of UTF-8 JSON: metadata, tree structures, leaf table
    padding    zeros up to a multiple of 64 bytes
    payload    the raw bytes of every array (C order, little-endian), each 64-byte aligned
    checksum   32 bytes  SHA-256 of everything before it

The header is ``{"metadata": ..., "trees": {name: {"structure", "leaves"}},
"payload_bytes": n}``; an array leaf's entry has ``dtype``, ``shape``, ``offset`` and
``nbytes`` in the payload (and ``key_impl`` for a typed PRNG key).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from descend.checkpoint._common import (
    decode_leaf,
    malformed,
    truncated,
)
from descend.errors import CheckpointError

FORMAT_VERSION = 1
MAGIC = b"\x89descend-ckpt\r\n\x1a\n"
_PREFIX = struct.Struct("<IQ")  # format version, header length
_ALIGN = 64
_DIGEST_SIZE = 32


def is_legacy(data: bytes | bytearray) -> bool:
    """A 0.1.0 file, or the first bytes of one (then :func:`read` reports it truncated)."""
    return data.startswith(MAGIC) or MAGIC.startswith(bytes(data[: len(MAGIC)]))


def read(path: Path, data: bytearray) -> tuple[dict, Callable[[dict], Any]]:
    """The header of a 0.1.0 file whose checksum is right, and its leaf decoder."""
    name = repr(str(path))
    if not data.startswith(MAGIC):
        raise truncated(name)
    fixed = len(MAGIC) + _PREFIX.size
    if len(data) < fixed + _DIGEST_SIZE:
        raise truncated(name)
    body = memoryview(data)[: len(data) - _DIGEST_SIZE]
    if hashlib.sha256(body).digest() != bytes(data[len(body) :]):
        raise truncated(name)
    version, header_size = _PREFIX.unpack_from(data, len(MAGIC))
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{name} is in checkpoint format version {version}, but this descend reads "
            f"version {FORMAT_VERSION}; upgrade descend to read it"
        )
    try:
        header = json.loads(bytes(body[fixed : fixed + header_size]))
        start = _aligned(fixed + header_size)
        payload = body[start : start + int(header["payload_bytes"])]
    except (ValueError, KeyError, TypeError) as error:
        raise malformed(path, f"unreadable header ({error})") from None
    if not isinstance(header, dict) or len(payload) != header["payload_bytes"]:
        raise malformed(path, "the header does not match the file size")
    return header, lambda entry: _decode_leaf(entry, payload, path)


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _decode_leaf(entry: dict, payload: memoryview, path) -> Any:
    def read(dtype: np.dtype, shape: tuple) -> np.ndarray:
        count, offset = math.prod(shape), int(entry["offset"])
        if (
            min(shape, default=0) < 0
            or count * dtype.itemsize != entry["nbytes"]
            or (offset < 0 or offset + entry["nbytes"] > len(payload))
        ):
            raise malformed(path, f"leaf {entry['path']} lies outside the payload")
        little = dtype.newbyteorder("<") if dtype.isbuiltin else dtype
        array = np.frombuffer(payload, little, count=count, offset=offset) if count else None
        return (np.zeros(0, dtype) if array is None else array).reshape(shape)

    return decode_leaf(entry, path, read)
