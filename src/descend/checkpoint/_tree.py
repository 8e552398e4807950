"""Pytrees to a JSON structure plus a leaf table, and back (the same in both formats).

A tree is stored as a JSON ``structure`` (``{"dict": [[key, child], ...]}``,
``{"list": [...]}``, ``{"tuple": [...]}``, ``{"namedtuple": class name, "fields": [...],
"items": [...]}``, ``{"node": class name, "items": [...]}``, ``{"leaf": i}`` or None) and
a ``leaves`` table numbered in ``jax.tree.leaves`` order. Each leaf entry has its
``path`` (``jax.tree_util.keystr``, for messages) and ``keys`` (for ``like=`` checks);
a Python scalar's entry holds its value, an array's entry what the file format needs
to find its bytes.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from descend._tree import PyTree
from descend.checkpoint._common import dtype_from_name, encode_python
from descend.errors import CheckpointError, DescendTypeError

# store(tree name, keys, array) -> the entry fields that locate the array in the file.
Store = Callable[[str, list, np.ndarray], dict]


def _is_namedtuple(node: Any) -> bool:
    return isinstance(node, tuple) and hasattr(type(node), "_fields")


def encode_tree(name: str, tree: PyTree, store: Store) -> dict:
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
            visited = {
                key: visit(node[key]) for key in (node if kind is OrderedDict else sorted(node))
            }
            return {"dict": [[key, visited[key]] for key in node]}
        if _is_namedtuple(node):
            items = [visit(child) for child in node]
            return {"namedtuple": kind.__name__, "fields": list(node._fields), "items": items}
        if kind in (list, tuple):
            return {kind.__name__: [visit(child) for child in node]}
        structure = jax.tree.structure(node)
        # mypy cannot resolve jax's PyTreeDef (an alias of a jaxlib extension type).
        if structure.num_leaves == 0:  # type: ignore[attr-defined]  # a node of static data only
            return {"node": kind.__qualname__, "items": []}
        if jax.tree_util.treedef_is_leaf(structure):
            path, leaf = next(expected)
            assert leaf is node  # the walk above must follow JAX's flattening order
            leaves.append(_encode_leaf(name, path, node, store))
            return {"leaf": len(leaves) - 1}
        children = jax.tree.leaves(node, is_leaf=lambda child: child is not node)
        return {"node": kind.__qualname__, "items": [visit(child) for child in children]}

    structure = visit(tree)
    assert next(expected, None) is None
    return {"structure": structure, "leaves": leaves}


def key_names(path) -> list:
    names = []
    for key in path:
        for attribute in ("key", "name", "idx"):
            if hasattr(key, attribute):
                names.append(getattr(key, attribute))
                break
    return names


def _encode_leaf(name: str, path, leaf: Any, store: Store) -> dict:
    where = jax.tree_util.keystr(path)
    entry: dict[str, Any] = {"path": where, "keys": key_names(path)}
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        entry["key_impl"] = str(jax.random.key_impl(leaf))
        leaf = jax.random.key_data(leaf)
    if isinstance(leaf, (np.ndarray, np.generic, jax.Array)):
        array = np.asarray(leaf)
        if dtype_from_name(array.dtype.name) is None:
            raise DescendTypeError(
                f"tree {name!r}{where}: arrays of dtype {array.dtype} cannot be saved; "
                "checkpoints hold bool, integer, float and complex arrays"
            )
        return entry | store(name, entry["keys"], array)
    python = encode_python(leaf)
    if python is None:
        raise DescendTypeError(
            f"tree {name!r}{where}: cannot save a {type(leaf).__name__}; leaves must be "
            "arrays, NumPy scalars or Python bool / int / float / complex / str"
        )
    return entry | python


def build(node: Any, leaves: list) -> PyTree:
    """The tree without a template: dicts, lists, tuples and None (NamedTuples as dicts)."""
    if node is None:
        return None
    (kind,) = (k for k in node if k in ("leaf", "dict", "list", "tuple", "namedtuple", "node"))
    if kind == "leaf":
        return leaves[node["leaf"]]
    if kind == "dict":
        return {key: build(child, leaves) for key, child in node["dict"]}
    if kind == "namedtuple":
        return {
            f: build(child, leaves) for f, child in zip(node["fields"], node["items"], strict=True)
        }
    children = [build(child, leaves) for child in node["items" if kind == "node" else kind]]
    return tuple(children) if kind == "tuple" else children


def restore_like(path, name: str, entries: list, leaves: list, template: PyTree) -> PyTree:
    """The leaves in the template's structure, once keys, shapes and dtypes agree."""
    pairs, treedef = jax.tree_util.tree_flatten_with_path(template)
    where = f"{str(path)!r}, tree {name!r}"
    if len(pairs) != len(leaves):
        raise CheckpointError(
            f"{where} has {len(leaves)} leaves but the template in like= has {len(pairs)}; "
            f"saved leaves: {', '.join(e['path'] or '(root)' for e in entries[:8])}"
            + (", ..." if len(entries) > 8 else "")
        )
    for (template_path, template_leaf), leaf, entry in zip(pairs, leaves, entries, strict=True):
        if key_names(template_path) != entry["keys"]:
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
