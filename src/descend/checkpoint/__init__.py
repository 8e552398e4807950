"""Checkpoints: named pytrees of arrays plus JSON metadata, in one checksummed file.

Saving is atomic (the file at ``path`` is always either the old checkpoint or the new
one, whole, even if the process is killed mid-save) and loading never unpickles.

File layout (integers little-endian)::

    magic      18 bytes  b"\\x89descend-ckpt\\r\\n\\x1a\\n"
    version    uint32    1
    header     uint64 n, then n bytes of UTF-8 JSON: metadata, tree structures, leaf table
    padding    zeros up to a multiple of 64 bytes
    payload    the raw bytes of every array (C order, little-endian), each 64-byte aligned
    checksum   32 bytes  SHA-256 of everything before it
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import sys
import tempfile
from collections import OrderedDict, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from descend.errors import CheckpointError, DescendTypeError, suggest

PyTree = Any

FORMAT_VERSION = 1
_MAGIC = b"\x89descend-ckpt\r\n\x1a\n"
_PREFIX = struct.Struct("<IQ")  # format version, header length
_ALIGN = 64
_DIGEST_SIZE = 32
_NUMPY_DTYPES = frozenset(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
     "float16", "float32", "float64", "complex64", "complex128"]
)  # fmt: skip

# Python leaves stored inline in the JSON header: type name -> (type, JSON types accepted).
_PYTHON_SCALARS = {"bool": (bool, bool), "int": (int, int), "float": (float, (float, int)),
                   "str": (str, str)}  # fmt: skip

__all__ = ["FORMAT_VERSION", "Checkpoint", "load_metadata", "load_tree", "save_tree"]


class Checkpoint(NamedTuple):
    """What :func:`load_tree` returns: ``trees`` by name and the ``metadata`` dict."""

    trees: dict[str, PyTree]
    metadata: dict


def save_tree(
    path: str | os.PathLike, trees: Mapping[str, PyTree], metadata: Mapping | None = None
) -> None:
    """Save named pytrees and JSON metadata to one file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file; its folder must exist. An existing file is replaced.
    trees : dict of str to pytree
        For example ``{"params": params, "opt_state": state, "key": key}``. A pytree is
        nested dicts (str keys), lists, tuples, NamedTuples and None, with leaves that
        are NumPy / JAX arrays (bool, int, uint, float, complex, bfloat16 and the other
        ml_dtypes types; typed PRNG keys from ``jax.random.key``), NumPy scalars or
        Python bool / int / float / complex / str. A NamedTuple is stored with its class
        and field names but cannot be rebuilt from a file alone (importing classes named
        in a file is unsafe): :func:`load_tree` returns it as a dict of its fields, or as
        the NamedTuple itself when given a ``like=`` template. Other registered pytree
        nodes are stored as the list of their children, with the same rule.
    metadata : dict, optional
        Anything ``json.dumps`` accepts (NumPy scalars are turned into Python numbers;
        tuples come back as lists, as always with JSON).

    Notes
    -----
    Arrays keep dtype and shape; JAX arrays are copied to the host first (so a sharded
    array must be fully addressable). The file is written under a temporary name in
    the same folder, flushed and fsync-ed, then renamed over ``path`` with
    ``os.replace`` and the folder is fsync-ed: a crash leaves the previous checkpoint
    whole (and at worst a stray ``.<name>.*.tmp`` file). Same role as
    ``orbax.checkpoint`` or ``torch.save``, without pickle.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
    >>> save_tree(path, {"params": {"w": np.ones(3, np.float32), "b": 0.5}}, {"epoch": 3})
    >>> trees, metadata = load_tree(path)
    >>> trees["params"]["w"], trees["params"]["b"], metadata
    (array([1., 1., 1.], dtype=float32), 0.5, {'epoch': 3})
    """
    if not isinstance(trees, Mapping) or not all(isinstance(k, str) and k for k in trees):
        raise DescendTypeError(
            "trees must be a dict of named pytrees such as {'params': params}, got "
            f"{type(trees).__name__}"
            + (f" with keys {list(trees)}" if isinstance(trees, Mapping) else "")
        )
    try:
        metadata_json = json.loads(json.dumps(dict(metadata or {}), default=_json_scalar))
    except (TypeError, ValueError) as error:
        raise DescendTypeError(
            f"metadata must be JSON-able (dicts, lists, str, numbers, bool, None): {error}"
        ) from None
    payload = _Payload()
    encoded = {name: _encode_tree(name, tree, payload) for name, tree in trees.items()}
    header = {"metadata": metadata_json, "trees": encoded, "payload_bytes": payload.size}
    _write_atomically(Path(path), json.dumps(header).encode(), payload)


def load_tree(path: str | os.PathLike, *, like: Mapping[str, PyTree] | None = None) -> Checkpoint:
    """Load the pytrees and metadata saved by :func:`save_tree`.

    Parameters
    ----------
    path : str or os.PathLike
    like : dict of str to pytree, optional
        Templates for some (or all) trees: each named tree comes back with exactly the
        template's structure (``jax.tree.unflatten(jax.tree.structure(template), leaves)``),
        NamedTuples and custom pytree nodes included. Template leaves may be arrays or
        ``jax.ShapeDtypeStruct``; the leaf count, keys, shapes and dtypes must match.

    Returns
    -------
    Checkpoint
        ``(trees, metadata)``. Without a template a tree comes back as nested dicts,
        lists, tuples and None; a NamedTuple as a dict of its fields; another pytree
        node as the list of its children. Arrays (and NumPy scalars, as 0-d arrays) are
        NumPy arrays, typed PRNG keys JAX key arrays, Python scalars themselves.

    Raises
    ------
    CheckpointError
        The file is missing, of another format (pickle files included: they are never
        read), truncated or modified (checksum mismatch), of a newer format version,
        or does not match a template.

    Examples
    --------
    >>> import os, tempfile, optax
    >>> path = os.path.join(tempfile.mkdtemp(), "state.ckpt")
    >>> state = optax.sgd(0.1, momentum=0.9).init({"w": np.zeros(2, np.float32)})
    >>> save_tree(path, {"opt_state": state})
    >>> load_tree(path).trees["opt_state"]
    ({'trace': {'w': array([0., 0.], dtype=float32)}}, {})
    >>> load_tree(path, like={"opt_state": state}).trees["opt_state"]
    (TraceState(trace={'w': array([0., 0.], dtype=float32)}), EmptyState())
    """
    header, payload = _read_verified(Path(path))
    trees = header.get("trees")
    if not isinstance(trees, dict):
        raise _malformed(path, "no tree table")
    like = dict(like or {})
    for name in like:
        if name not in trees:
            raise CheckpointError(
                f"{str(path)!r} has no tree named {name!r}{suggest(name, trees)} (it holds: "
                f"{', '.join(trees) or 'none'}); fix the names in like="
            )
    loaded = {}
    for name, encoded in trees.items():
        try:
            leaves = [_decode_leaf(entry, payload, path) for entry in encoded["leaves"]]
            if name in like:
                loaded[name] = _restore_like(path, name, encoded["leaves"], leaves, like[name])
            else:
                loaded[name] = _build(encoded["structure"], leaves)
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise _malformed(path, f"tree {name!r}: {error!r}") from None
    return Checkpoint(loaded, header.get("metadata", {}))


def load_metadata(path: str | os.PathLike) -> dict:
    """Only the metadata of a checkpoint (the whole file is still checksum-verified)."""
    header, _ = _read_verified(Path(path))
    return header.get("metadata", {})


# ---------------------------------------------------------------- writing


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic) or (
        isinstance(value, (np.ndarray, jax.Array)) and value.ndim == 0
    ):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-able")


class _Payload:
    """Arrays laid out at 64-byte aligned offsets."""

    def __init__(self):
        self.arrays: list[tuple[int, np.ndarray]] = []
        self.size = 0

    def add(self, array: np.ndarray) -> dict:
        if sys.byteorder == "big" or array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        if not array.flags.c_contiguous:
            array = array.copy(order="C")
        offset = _aligned(self.size)
        self.arrays.append((offset, array))
        self.size = offset + array.nbytes
        return {"dtype": array.dtype.name, "shape": list(array.shape), "offset": offset,
                "nbytes": array.nbytes}  # fmt: skip


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _is_namedtuple(node: Any) -> bool:
    return isinstance(node, tuple) and hasattr(type(node), "_fields")


def _encode_tree(name: str, tree: PyTree, payload: _Payload) -> dict:
    """JSON structure + leaf table; leaves are numbered in ``jax.tree.leaves`` order."""
    expected = iter(jax.tree_util.tree_flatten_with_path(tree)[0])
    leaves: list[dict] = []

    def visit(node):
        kind = type(node)
        if node is None:
            return None
        if kind in (dict, OrderedDict, defaultdict):
            bad = [key for key in node if not isinstance(key, str)]
            if bad:
                raise DescendTypeError(f"tree {name!r}: dict keys must be str, got {bad[0]!r}")
            # JAX sorts dict keys (OrderedDict keeps its order): visit in that order so
            # leaf numbers match jax.tree.leaves, but store the keys in insertion order.
            children = {
                key: visit(node[key]) for key in (node if kind is OrderedDict else sorted(node))
            }
            return {"dict": [[key, children[key]] for key in node]}
        if _is_namedtuple(node):
            items = [visit(child) for child in node]
            return {"namedtuple": kind.__name__, "fields": list(node._fields), "items": items}
        if kind in (list, tuple):
            return {kind.__name__: [visit(child) for child in node]}
        if jax.tree_util.treedef_is_leaf(jax.tree.structure(node)):
            path, leaf = next(expected)
            assert leaf is node  # the walk above must follow JAX's flattening order
            leaves.append(_encode_leaf(name, jax.tree_util.keystr(path), path, node, payload))
            return {"leaf": len(leaves) - 1}
        children = jax.tree.leaves(node, is_leaf=lambda child: child is not node)
        return {"node": kind.__qualname__, "items": [visit(child) for child in children]}

    structure = visit(tree)
    assert next(expected, None) is None
    return {"structure": structure, "leaves": leaves}


def _key_names(path) -> list:
    names = []
    for key in path:
        for attribute in ("key", "name", "idx"):
            if hasattr(key, attribute):
                names.append(getattr(key, attribute))
                break
    return names


def _encode_leaf(name: str, where: str, path, leaf: Any, payload: _Payload) -> dict:
    entry: dict[str, Any] = {"path": where, "keys": _key_names(path)}
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        entry["key_impl"] = str(jax.random.key_impl(leaf))
        leaf = jax.random.key_data(leaf)
    if isinstance(leaf, (np.ndarray, np.generic, jax.Array)):
        array = np.asarray(leaf)
        if _dtype_from_name(array.dtype.name) is None:
            raise DescendTypeError(
                f"tree {name!r}{where}: arrays of dtype {array.dtype} cannot be saved; "
                "checkpoints hold bool, integer, float and complex arrays"
            )
        return entry | payload.add(array)
    if isinstance(leaf, (bool, int, float, str)):
        return entry | {"python": type(leaf).__name__, "value": leaf}
    if isinstance(leaf, complex):
        return entry | {"python": "complex", "value": [leaf.real, leaf.imag]}
    raise DescendTypeError(
        f"tree {name!r}{where}: cannot save a {type(leaf).__name__}; leaves must be arrays, "
        "NumPy scalars or Python bool / int / float / complex / str"
    )


def _write_atomically(path: Path, header: bytes, payload: _Payload) -> None:
    folder = path.parent
    if not folder.is_dir():
        raise CheckpointError(
            f"cannot save {str(path)!r}: the folder {str(folder)!r} does not exist"
        )
    mode = _file_mode(path)
    temporary_name = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=folder, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as temporary:
            temporary_name = temporary.name
            digest = hashlib.sha256()

            def write(chunk) -> None:
                digest.update(chunk)
                temporary.write(chunk)

            write(_MAGIC + _PREFIX.pack(FORMAT_VERSION, len(header)) + header)
            position = len(_MAGIC) + _PREFIX.size + len(header)
            start = _aligned(position)
            for offset, array in payload.arrays:
                write(bytes(start + offset - position))
                write(array.reshape(-1).view(np.uint8))
                position = start + offset + array.nbytes
            write(bytes(start + payload.size - position))
            temporary.write(digest.digest())
            temporary.flush()
            os.fsync(temporary.fileno())
        os.chmod(temporary_name, mode)
        os.replace(temporary_name, path)
    except BaseException:
        if temporary_name is not None:
            Path(temporary_name).unlink(missing_ok=True)
        raise
    _fsync_folder(folder)


def _file_mode(path: Path) -> int:
    """Keep an existing file's permissions; else the usual ones for a new file (umask)."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0o022)  # reading the umask means setting it; restore at once
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    # Makes the rename durable on POSIX; folders cannot be opened like this on Windows.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# ---------------------------------------------------------------- reading


def _read_verified(path: Path) -> tuple[dict, memoryview]:
    """The header dict and the payload bytes of a checkpoint whose checksum is right."""
    name = repr(str(path))
    try:
        with open(path, "rb") as handle:
            data = bytearray(os.fstat(handle.fileno()).st_size)
            handle.readinto(data)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {name} does not exist; check the path") from None
    except IsADirectoryError:
        raise CheckpointError(f"{name} is a folder, not a checkpoint file") from None
    except PermissionError:
        raise CheckpointError(f"cannot read {name}: permission denied") from None
    if not data:
        raise CheckpointError(f"{name} is empty (0 bytes); it is not a descend checkpoint")
    if not data.startswith(_MAGIC):
        if _MAGIC.startswith(bytes(data)):
            raise _truncated(name)
        raise CheckpointError(
            f"{name} is not a descend checkpoint (it {_looks_like(bytes(data[:8]))}); load it "
            "with the program that wrote it"
        )
    fixed = len(_MAGIC) + _PREFIX.size
    if len(data) < fixed + _DIGEST_SIZE:
        raise _truncated(name)
    body = memoryview(data)[: len(data) - _DIGEST_SIZE]
    if hashlib.sha256(body).digest() != bytes(data[len(body) :]):
        raise _truncated(name)
    version, header_size = _PREFIX.unpack_from(data, len(_MAGIC))
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
        raise _malformed(path, f"unreadable header ({error})") from None
    if not isinstance(header, dict) or len(payload) != header["payload_bytes"]:
        raise _malformed(path, "the header does not match the file size")
    return header, payload


def _truncated(name: str) -> CheckpointError:
    return CheckpointError(
        f"{name} is truncated or was modified: checksum mismatch; re-save it or restore it "
        "from a backup"
    )


def _malformed(path, reason: str) -> CheckpointError:
    return CheckpointError(f"{str(path)!r} is not a valid descend checkpoint: {reason}")


def _looks_like(start: bytes) -> str:
    if start[:1] == b"\x80":
        return "looks like a pickle file, which descend never loads: unpickling can run code"
    if start.startswith(b"PK\x03\x04"):
        return "looks like a zip or .npz file"
    if start.startswith(b"\x93NUMPY"):
        return "looks like a .npy file"
    return f"starts with {start!r}"


def _dtype_from_name(name: str) -> np.dtype | None:
    """Only plain numeric dtypes (and ml_dtypes' floats / ints) resolve: never objects."""
    if name in _NUMPY_DTYPES:
        return np.dtype(name)
    import ml_dtypes  # installed with JAX; home of bfloat16 and the float8 types

    candidate = getattr(ml_dtypes, name, None) if isinstance(name, str) else None
    if isinstance(candidate, type) and issubclass(candidate, np.generic):
        return np.dtype(candidate)
    return None


def _decode_leaf(entry: dict, payload: memoryview, path) -> Any:
    if "python" in entry:
        kind, value = entry["python"], entry["value"]
        if kind == "complex":
            return complex(*value)
        if kind not in _PYTHON_SCALARS or not isinstance(value, _PYTHON_SCALARS[kind][1]):
            raise _malformed(path, f"leaf {entry['path']}: bad Python value {value!r}")
        return _PYTHON_SCALARS[kind][0](value)
    dtype = _dtype_from_name(entry["dtype"])
    if dtype is None:
        raise CheckpointError(
            f"{str(path)!r}: leaf {entry['path']} has dtype {entry['dtype']!r}, which descend "
            "refuses to load (only bool, integer, float and complex arrays, never objects)"
        )
    shape = tuple(int(n) for n in entry["shape"])
    count, offset = math.prod(shape), int(entry["offset"])
    if (
        min(shape, default=0) < 0
        or count * dtype.itemsize != entry["nbytes"]
        or (offset < 0 or offset + entry["nbytes"] > len(payload))
    ):
        raise _malformed(path, f"leaf {entry['path']} lies outside the payload")
    array = np.frombuffer(payload, dtype.newbyteorder("<") if dtype.isbuiltin else dtype,
                          count=count, offset=offset) if count else np.zeros(0, dtype)  # fmt: skip
    array = array.reshape(shape)
    if "key_impl" in entry:
        return jax.random.wrap_key_data(array, impl=entry["key_impl"])
    return array


def _build(node: Any, leaves: list) -> PyTree:
    if node is None:
        return None
    (kind,) = (k for k in node if k in ("leaf", "dict", "list", "tuple", "namedtuple", "node"))
    if kind == "leaf":
        return leaves[node["leaf"]]
    if kind == "dict":
        return {key: _build(child, leaves) for key, child in node["dict"]}
    if kind == "namedtuple":
        return {
            f: _build(child, leaves) for f, child in zip(node["fields"], node["items"], strict=True)
        }
    children = [_build(child, leaves) for child in node["items" if kind == "node" else kind]]
    return tuple(children) if kind == "tuple" else children


def _restore_like(path, name: str, entries: list, leaves: list, template: PyTree) -> PyTree:
    pairs, treedef = jax.tree_util.tree_flatten_with_path(template)
    where = f"{str(path)!r}, tree {name!r}"
    if len(pairs) != len(leaves):
        raise CheckpointError(
            f"{where} has {len(leaves)} leaves but the template in like= has {len(pairs)}; "
            f"saved leaves: {', '.join(e['path'] or '(root)' for e in entries[:8])}"
            + (", ..." if len(entries) > 8 else "")
        )
    for (template_path, template_leaf), leaf, entry in zip(pairs, leaves, entries, strict=True):
        if _key_names(template_path) != entry["keys"]:
            raise CheckpointError(
                f"{where}: the template's leaf {jax.tree_util.keystr(template_path)} stands "
                f"where the file has {entry['path']}; the structures differ"
            )
        shape = template_leaf.shape if hasattr(template_leaf, "shape") else np.shape(template_leaf)
        dtype = getattr(template_leaf, "dtype", None)
        mismatch = None
        if tuple(shape) != np.shape(leaf):
            mismatch = f"shape {np.shape(leaf)} in the file but {tuple(shape)} in the template"
        elif dtype is not None and hasattr(leaf, "dtype") and leaf.dtype != dtype:
            mismatch = f"dtype {leaf.dtype} in the file but {dtype} in the template"
        if mismatch:
            raise CheckpointError(f"{where}: leaf {entry['path']} has {mismatch}")
    return jax.tree.unflatten(treedef, leaves)
