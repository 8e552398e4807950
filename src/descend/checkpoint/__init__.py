"""Checkpoints: named pytrees of arrays plus JSON metadata, in one safetensors file.

Saving is atomic (the file at ``path`` is always either the old checkpoint or the new
one, whole, even if the process is killed mid-save) and loading never unpickles.

A checkpoint is a standard `safetensors <https://huggingface.co/docs/safetensors>`_
file: ``safetensors.numpy.load_file(path)`` or ``safetensors.torch.load_file(path)``
open its arrays without descend. Layout::

    8 bytes   little-endian length n of the JSON header
    n bytes   JSON header (padded with spaces to a multiple of 8 bytes):
              {"__metadata__": {"descend.checkpoint": ..., "descend.sha256": ...},
               tensor name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]},
               ...}
    the bytes of every tensor, C order, little-endian, back to back

**Tensor names.** Each array leaf is one tensor named by its pytree path:
``<tree>/<key>/<key>/...`` with the tree's name, then the dict keys, sequence indices
and NamedTuple / dataclass field names down to the leaf, e.g. ``params/w``,
``params/layers/0/b`` or ``opt_state/0/mu/w`` (an Optax chain state). A ``%`` or ``/``
inside a key is written ``%25`` or ``%2F``, so two leaves never share a name; a tree
that is itself an array is named ``<tree>``.

**Dtypes.** Bool, (u)int8-64, float16/32/64, bfloat16, float8_e4m3fn and float8_e5m2
arrays are stored as they are. Complex arrays, which safetensors lacks, are stored as
their real and imaginary parts: a float16 / float32 / float64 tensor (for ml_dtypes'
complex32, complex64, complex128) with one more axis of length 2. The other ml_dtypes
types (float8_e4m3fnuz, int4, ...) are stored as their raw bytes (U8). A typed PRNG
key (``jax.random.key``) is stored as its key data.
The leaf table records the original dtype and shape, so that all come back exactly.

**Metadata.** ``descend.checkpoint`` is one JSON string: ``{"version": 2, "metadata":
the user's metadata, "trees": {name: {"structure": the tree's nodes, "leaves": the leaf
table}}}``. A leaf entry gives the leaf's path and keys, then either its ``tensor``,
``dtype``, ``shape`` (plus ``stored``: ``"complex"`` or ``"bytes"``, and ``key_impl``
for a PRNG key) or, for a Python bool / int / float / complex / str leaf, its value.

**Integrity.** ``descend.sha256`` is the hex SHA-256 of that JSON string (UTF-8)
followed, for each tensor in leaf-table order, by ``"\\0name\\0dtype\\0shape\\0"`` (UTF-8,
the safetensors dtype, the shape as comma-separated numbers) and the tensor's bytes. It
is verified on every load, so a truncated or modified file is refused; it covers the
content only, so a file rewritten by another safetensors tool with the same tensors
and metadata still loads.

Files of descend 0.1.0 (its own container, see :mod:`descend.checkpoint.legacy`) are
still read; the format is told by the first bytes (``\\x89descend-ckpt`` there, an
8-byte length and ``{`` here).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from descend._tree import PyTree
from descend.checkpoint import _files, _safetensors, legacy
from descend.checkpoint._common import malformed
from descend.checkpoint._tree import build, encode_tree, restore_like
from descend.errors import CheckpointError, DescendTypeError, suggest

FORMAT_VERSION = _safetensors.FORMAT_VERSION

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
    The file is a safetensors file (see the module docstring): each array leaf is a
    tensor named by its path, such as ``params/w``, and the rest (metadata, tree
    structures, Python scalars, dtype notes, checksum) is JSON in its metadata header.
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
    tensors = _safetensors.Tensors()
    encoded = {name: encode_tree(name, tree, tensors.add) for name, tree in trees.items()}
    header = {"version": FORMAT_VERSION, "metadata": metadata_json, "trees": encoded}
    _safetensors.write(Path(path), json.dumps(header), tensors)


def load_tree(path: str | os.PathLike, *, like: Mapping[str, PyTree] | None = None) -> Checkpoint:
    """Load the pytrees and metadata saved by :func:`save_tree`.

    Files written by descend 0.1.0, in its own container format, load the same way.

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
    header, decode = _open(Path(path))
    trees = header.get("trees")
    if not isinstance(trees, dict):
        raise malformed(path, "no tree table")
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
            leaves = [decode(entry) for entry in encoded["leaves"]]
            if name in like:
                loaded[name] = restore_like(path, name, encoded["leaves"], leaves, like[name])
            else:
                loaded[name] = build(encoded["structure"], leaves)
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise malformed(path, f"tree {name!r}: {error!r}") from None
    return Checkpoint(loaded, header.get("metadata", {}))


def load_metadata(path: str | os.PathLike) -> dict:
    """Only the metadata of a checkpoint (the whole file is still checksum-verified)."""
    header, _ = _open(Path(path))
    return header.get("metadata", {})


# ---------------------------------------------------------------- helpers


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic) or (
        isinstance(value, (np.ndarray, jax.Array)) and value.ndim == 0
    ):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-able")


def _open(path: Path) -> tuple[dict, Callable[[dict], Any]]:
    """The verified header of a checkpoint of either format, and its leaf decoder."""
    data = _files.read_bytes(path)
    if legacy.is_legacy(data):
        return legacy.read(path, bytearray(data))  # its arrays are writable views of it
    if _safetensors.looks_like(data):
        return _safetensors.read(path, data)
    raise _files.foreign(path, data)
